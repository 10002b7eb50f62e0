//! MTA-STS on the outbound side (RFC 8461 §4–5): the certificate check a
//! connection carries under a policy, what its outcome makes of the
//! connection, and how a host's failure under an `enforce` policy
//! reaches the legacy MTA.
//!
//! The planner decided which hosts a policy allows and what each one
//! requires (`policy::decide`); the WebPKI check itself is
//! `tls::webpki::StsVerifier`'s. Here: an `enforce` connection that
//! verified becomes `verified(sts)`, one that did not fails with the
//! policy named; a `testing` policy's check is logged as "would defer
//! (MTA-STS testing)" and changes nothing.

use std::sync::Arc;

use tokio::net::TcpStream;
use tracing::{info, warn};

use crate::metrics;
use crate::outbound::client::{Client, OutboundError, Peer};
use crate::outbound::failure::{Failure, StsFailure};
use crate::outbound::plan::{Host, Plan};
use crate::outbound::Context;
use crate::policy::{RefuseReason, Requirement, StsTesting};
use crate::sts::Applied;
use crate::tls::webpki::{StsVerifier, WebPkiVerdict};

/// The verifier for a connection to `host`: enforcing for an attempt
/// that requires MTA-STS (`enforce`), observing for a `testing` policy's
/// check, none otherwise.
pub fn verifier(ctx: &Context, host: &Host, enforce: bool) -> Option<Arc<StsVerifier>> {
    let observe = host.sts_testing == Some(StsTesting::Verify);
    (enforce || observe).then(|| Arc::new(StsVerifier::new(&ctx.sts.roots(), enforce)))
}

/// The end of an attempt made with an MTA-STS verifier.
pub fn conclude(
    result: Result<Client<TcpStream>, OutboundError>,
    verifier: &StsVerifier,
    enforce: bool,
    plan: &Plan,
    host: &Host,
) -> Result<Client<TcpStream>, OutboundError> {
    if enforce {
        return settle(result, verifier, plan, host);
    }
    result.map(|mut client| {
        observe(&mut client, verifier, plan, host);
        client
    })
}

/// "the MTA-STS policy of example.com (id X)".
fn policy_name(plan: &Plan) -> String {
    match plan.sts.active() {
        Some(a) => format!("the MTA-STS policy of {} (id {})", a.domain, a.id),
        None => "the MTA-STS policy".into(),
    }
}

fn policy_domain(plan: &Plan) -> String {
    plan.sts
        .active()
        .map(|a| a.domain.clone())
        .unwrap_or_else(|| plan.domain.clone())
}

/// What an `enforce` connection attempt comes to once its certificate
/// check is known.
pub fn settle(
    result: Result<Client<TcpStream>, OutboundError>,
    verifier: &StsVerifier,
    plan: &Plan,
    host: &Host,
) -> Result<Client<TcpStream>, OutboundError> {
    let domain = policy_domain(plan);
    match (result, verifier.verdict()) {
        (Ok(mut client), Some(WebPkiVerdict::Valid(m))) => {
            metrics::global().sts("verified");
            let state = client
                .tls_state()
                .sts_verified(format!("{m}; {}", policy_name(plan)));
            client.set_tls_state(state);
            Ok(client)
        }
        // The verifier refused nothing, yet saw no certificate: never
        // success.
        (Ok(client), _) => Err(OutboundError::Tls {
            peer: client.peer().clone(),
            cause: "handshake completed without a WebPKI check".into(),
        }),
        (Err(OutboundError::Tls { peer, cause }), verdict) => {
            metrics::global().sts("certificate_invalid");
            let why = match verdict {
                Some(WebPkiVerdict::Invalid(why)) => why,
                _ => cause,
            };
            Err(OutboundError::Tls {
                peer,
                cause: format!(
                    "certificate for {} does not match the MTA-STS policy of {domain}: {why}",
                    host.name
                ),
            })
        }
        (Err(e), _) => {
            if matches!(
                e,
                OutboundError::StartTlsMissing { .. } | OutboundError::StartTlsRefused { .. }
            ) {
                metrics::global().sts("starttls_missing");
            }
            Err(e)
        }
    }
}

/// A `testing` policy's check of a connection that went ahead: logged,
/// never enforced. A valid certificate makes the connection
/// `verified(sts)` all the same.
pub fn observe(client: &mut Client<TcpStream>, verifier: &StsVerifier, plan: &Plan, host: &Host) {
    let domain = policy_domain(plan);
    let peer = client.peer().clone();
    let problem = match verifier.verdict() {
        Some(WebPkiVerdict::Valid(m)) if client.tls_state().is_tls() => {
            let state = client
                .tls_state()
                .sts_verified(format!("{m}; {} in testing mode", policy_name(plan)));
            client.set_tls_state(state);
            metrics::global().sts("verified");
            return;
        }
        Some(WebPkiVerdict::Invalid(why)) if client.tls_state().is_tls() => format!(
            "certificate for {} does not match the MTA-STS policy of {domain}: {why}",
            host.name
        ),
        _ => format!("TLS is required by the MTA-STS policy of {domain}, but {peer} did not offer STARTTLS or it failed"),
    };
    metrics::global().sts("testing_would_defer");
    warn!(peer = %peer, "would defer (MTA-STS testing): {problem}; delivering, the policy of {domain} is in testing mode");
}

/// A `testing` policy that does not name the host: logged before the
/// connection is made.
pub fn observe_not_allowed(plan: &Plan, host: &Host, peer: &Peer) {
    if host.sts_testing == Some(StsTesting::MxNotAllowed) {
        metrics::global().sts("testing_would_defer");
        warn!(peer = %peer, "would defer (MTA-STS testing): MX host {} is not allowed by the MTA-STS policy of {}; delivering, the policy is in testing mode", host.name, policy_domain(plan));
    }
}

/// A failed host as the legacy MTA hears it: under an `enforce` policy
/// the failure names the policy (and carries its id for reports).
pub fn failure(plan: &Plan, host: &Host, e: OutboundError) -> Failure {
    let Some(applied) = plan.sts.active().cloned() else {
        return Failure::Outbound(e);
    };
    let Applied { domain, id, .. } = applied;
    match e {
        OutboundError::Refused {
            peer,
            reason: RefuseReason::StsMxNotAllowed,
        } => {
            metrics::global().sts("mx_not_allowed");
            Failure::Sts {
                failure: StsFailure::MxNotAllowed {
                    peer,
                    domain: domain.clone(),
                },
                domain,
                id,
            }
        }
        e @ (OutboundError::StartTlsMissing { .. }
        | OutboundError::StartTlsRefused { .. }
        | OutboundError::Tls { .. })
            if host.requirement == Requirement::StsRequired =>
        {
            Failure::Sts {
                domain,
                id,
                failure: StsFailure::Connection(e),
            }
        }
        e => Failure::Outbound(e),
    }
}

/// Logs which policy applies to a delivery, once per plan.
pub fn log_plan(session: &str, plan: &Plan) {
    use crate::sts::apply::ForDomain;
    match &plan.sts {
        ForDomain::Discovered(d) if d.applied.is_some() || d.problem.is_some() => {
            info!(session, domain = %plan.domain, "MTA-STS: {}", plan.sts.describe());
        }
        ForDomain::OptedOut {
            announced: true, ..
        } => {
            info!(session, domain = %plan.domain, "MTA-STS: {}", plan.sts.describe());
        }
        _ => {}
    }
}
