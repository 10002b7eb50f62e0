//! Finding a destination for a recipient domain and opening a
//! conversation with it: the plan from `plan`, then each host and each
//! address in turn until one accepts (RFC 5321 §5.1, dane-rules §3.7).
//!
//! A handshake that fails because rustls and the server have nothing in
//! common is tried again with the legacy TLS engine (OpenSSL), with the
//! same verification. Opportunistic TLS that fails in the handshake (with
//! every engine) is retried on a new connection without TLS (Postfix does
//! the same); a host that requires TLS is never retried in plaintext.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpStream;
use tokio::time::timeout;
use tracing::{info, warn};

use crate::metrics;
use crate::outbound::client::{sni_for, Client, Hello, OutboundError, Peer, TlsMode};
use crate::outbound::failure::Failure;
use crate::outbound::mtasts;
use crate::outbound::plan::{Host, Plan, SkipReason};
use crate::outbound::pool::Destination;
use crate::outbound::stage::Stage;
use crate::outbound::Context;
use crate::policy::{Mode, Requirement, TlsaStatus};
use crate::tls::dane::{DaneVerifier, ReferenceIds};
use crate::tls::legacy::{Floor, LegacyConfig};
use crate::tls::stream::Connector;
use crate::tls::version::TlsVersion;
use crate::tls::webpki::StsVerifier;
use crate::tls::Engine;

/// Plans `domain` and opens a conversation with the first host that
/// takes one. `session` tags log lines.
pub async fn connect(ctx: &Context, session: &str, domain: &str) -> Result<Destination, Failure> {
    let plan = ctx
        .planner
        .plan(ctx.resolver.as_ref(), &ctx.config, domain)
        .await?;
    if plan.unicode != plan.domain {
        info!(
            session,
            domain, "internationalised domain {} is {} in DNS", plan.unicode, plan.domain
        );
    }
    mtasts::log_plan(session, &plan);
    for skipped in &plan.skipped {
        info!(session, domain, "skipping MX host: {skipped}");
        if matches!(&skipped.reason, SkipReason::Dns(e) if e.rtype == "TLSA") {
            metrics::global().dane("lookup_failed");
        }
    }
    let mut worst: Option<Failure> = None;
    for host in &plan.hosts {
        match try_host(ctx, &plan, host).await {
            Ok(client) => {
                let state = client.tls_state();
                let word = state.metric_label();
                metrics::global().tls(word);
                if let Some(s) = state.session().filter(|s| s.engine == Engine::Legacy) {
                    metrics::global().tls_legacy(word, &s.protocol, &s.cipher);
                }
                let note = test_note(ctx);
                info!(
                    session,
                    domain,
                    "{}{note}",
                    client.tls_state().connection_line(client.peer())
                );
                return Ok(Destination {
                    domain: domain.to_owned(),
                    client,
                });
            }
            Err(e) => {
                let f = mtasts::failure(&plan, host, e);
                warn!(session, domain, "delivery attempt failed: {f}");
                if worst
                    .as_ref()
                    .is_none_or(|w| f.specificity() >= w.specificity())
                {
                    worst = Some(f);
                }
            }
        }
    }
    Err(worst.expect("a plan has at least one host"))
}

/// Appended to log lines in test mode, so that none reads as if
/// protection was in force.
pub fn test_note(ctx: &Context) -> &'static str {
    if ctx.config.policy.mode == Mode::Test {
        " [test mode: nothing enforced]"
    } else {
        ""
    }
}

/// How one attempt protects the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protection {
    /// No STARTTLS (the retry after a failed opportunistic handshake).
    Off,
    /// STARTTLS when offered, any certificate.
    Opportunistic,
    /// STARTTLS required, any certificate.
    Encrypt,
    /// STARTTLS required, certificate matched against TLSA records.
    Dane,
    /// STARTTLS required, certificate valid for the MX host name under
    /// the WebPKI (an MTA-STS `enforce` policy).
    Sts,
}

/// A TLS problem that enforcement would defer for (4.7.4, 4.7.5).
fn tls_problem(e: &OutboundError) -> bool {
    matches!(
        e,
        OutboundError::StartTlsMissing { .. }
            | OutboundError::StartTlsRefused { .. }
            | OutboundError::Tls { .. }
            | OutboundError::Dane { .. }
            | OutboundError::Timeout {
                stage: Stage::TlsHandshake,
                ..
            }
    )
}

/// A handshake that failed after STARTTLS was accepted.
fn handshake_failed(e: &OutboundError) -> bool {
    matches!(
        e,
        OutboundError::Tls { .. }
            | OutboundError::Dane { .. }
            | OutboundError::Timeout {
                stage: Stage::TlsHandshake,
                ..
            }
    )
}

/// dane-rules §3–4 for one host: each address in turn with the protection
/// the policy requires of that address; in test mode, what enforcement would defer is
/// logged and delivery goes on with the best connection available.
async fn try_host(
    ctx: &Context,
    plan: &Plan,
    host: &Host,
) -> Result<Client<TcpStream>, OutboundError> {
    let test = ctx.config.policy.mode == Mode::Test;
    let mut last = None;
    // Each address with its own requirement: DANE applies to addresses
    // from secure RRsets (plan.rs, dane-rules §2 per address).
    for address in &host.addresses {
        let peer = Peer {
            host: host.name.clone(),
            addr: SocketAddr::new(address.ip, host.port),
        };
        let wanted = match address.requirement {
            Requirement::Refuse(reason) if test => {
                metrics::global().would_defer("policy");
                warn!(peer = %peer, "TEST MODE: would defer: {reason}; delivering anyway, nothing enforced");
                Protection::Opportunistic
            }
            Requirement::Refuse(reason) => {
                last = Some(OutboundError::Refused { peer, reason });
                continue;
            }
            Requirement::Opportunistic => Protection::Opportunistic,
            Requirement::TlsRequired => Protection::Encrypt,
            Requirement::DaneRequired => Protection::Dane,
            Requirement::StsRequired => Protection::Sts,
        };
        mtasts::observe_not_allowed(plan, host, &peer);
        let e = match attempt(ctx, plan, host, &peer, wanted).await {
            Ok(c) => return Ok(c),
            Err(e) => e,
        };
        let fallback = if wanted == Protection::Opportunistic && handshake_failed(&e) {
            info!(peer = %peer, "TLS handshake failed ({e}); retrying without TLS (opportunistic TLS)");
            Some(Protection::Off)
        } else if test && wanted != Protection::Opportunistic && tls_problem(&e) {
            metrics::global().would_defer(Failure::Outbound(e.clone()).reason());
            warn!(peer = %peer, "TEST MODE: would defer: {e}; delivering with the best connection available, nothing enforced");
            Some(Protection::Opportunistic)
        } else {
            None
        };
        let Some(fallback) = fallback else {
            last = Some(e);
            continue;
        };
        match attempt(ctx, plan, host, &peer, fallback).await {
            Ok(c) => return Ok(c),
            Err(e2) if fallback == Protection::Opportunistic && handshake_failed(&e2) => {
                match attempt(ctx, plan, host, &peer, Protection::Off).await {
                    Ok(c) => return Ok(c),
                    Err(e3) => last = Some(e3),
                }
            }
            Err(e2) => last = Some(e2),
        }
    }
    Err(last.expect("a planned host has at least one address"))
}

/// One connection to one address with the given protection: with rustls,
/// and once more with the legacy engine (OpenSSL) when rustls and the
/// server had no protocol version, cipher suite, key exchange or
/// signature algorithm in common and `[tls] legacy` is on
/// ([`crate::tls::fallback`]). The same verifiers judge the chain either
/// way; a verification failure is never tried again.
async fn attempt(
    ctx: &Context,
    plan: &Plan,
    host: &Host,
    peer: &Peer,
    protection: Protection,
) -> Result<Client<TcpStream>, OutboundError> {
    let (hello, mut verifiers) = hello_for(ctx, plan, host, protection, Engine::Rustls);
    let mut result = try_address(ctx, peer, &hello).await;
    if let (Err(e @ OutboundError::Tls { peer, cause }), Some(mismatch)) =
        (&result, hello.tls_config.mismatch())
    {
        if ctx.config.tls.legacy.is_on() {
            metrics::global().tls_fallback(mismatch.metric_word());
            info!(peer = %peer, "{e}; trying again with the legacy TLS engine (OpenSSL)");
            let (hello, v) = hello_for(ctx, plan, host, protection, Engine::Legacy);
            result = try_address(ctx, peer, &hello).await;
            verifiers = v;
        } else {
            result = Err(OutboundError::Tls {
                peer: peer.clone(),
                cause: format!("{cause}; the legacy TLS engine is off ([tls] legacy)"),
            });
        }
    }
    judge(plan, host, protection, verifiers, result)
}

/// The verifiers of one attempt, to ask afterwards what they proved.
struct Verifiers {
    dane: Option<Arc<DaneVerifier>>,
    /// Under an MTA-STS policy the connection carries its WebPKI check
    /// (RFC 8461 §4.2: of the MX host name, also the SNI).
    sts: Option<Arc<StsVerifier>>,
}

/// What the verifiers of an attempt proved (or why they refused), on top
/// of the attempt's result; counts the DANE result.
fn judge(
    plan: &Plan,
    host: &Host,
    protection: Protection,
    verifiers: Verifiers,
    result: Result<Client<TcpStream>, OutboundError>,
) -> Result<Client<TcpStream>, OutboundError> {
    let Some(v) = verifiers.dane else {
        if protection != Protection::Off {
            metrics::global().dane(match host.tlsa {
                TlsaStatus::AllUnusable => "unusable",
                TlsaStatus::NoSecureTlsa => "insecure",
                _ => "not_applicable",
            });
        }
        return match &verifiers.sts {
            Some(v) => mtasts::conclude(result, v, protection == Protection::Sts, plan, host),
            None => result,
        };
    };
    metrics::global().dane(if v.matched().is_some() {
        "ok"
    } else {
        "mismatch"
    });
    match result {
        Ok(mut client) => match v.matched() {
            Some(m) => {
                let state = client
                    .tls_state()
                    .authenticated(plan.mx_security.is_secure(), &m);
                client.set_tls_state(state);
                Ok(client)
            }
            // The verifier accepted nothing, yet the handshake completed:
            // impossible, and never to be mistaken for success.
            None => Err(OutboundError::Tls {
                peer: client.peer().clone(),
                cause: "handshake completed without a DANE match".into(),
            }),
        },
        Err(OutboundError::Tls { peer, cause }) => match v.failure() {
            Some(f) => Err(OutboundError::Dane {
                peer,
                cause: f.to_string(),
            }),
            None => Err(OutboundError::Tls { peer, cause }),
        },
        Err(e) => Err(e),
    }
}

/// The conversation settings for one attempt with one TLS engine, and its
/// own verifiers (DANE, MTA-STS).
fn hello_for(
    ctx: &Context,
    plan: &Plan,
    host: &Host,
    protection: Protection,
    engine: Engine,
) -> (Hello, Verifiers) {
    let tls = match protection {
        Protection::Off => TlsMode::Off,
        Protection::Opportunistic => TlsMode::Opportunistic,
        Protection::Encrypt | Protection::Dane | Protection::Sts => TlsMode::Required,
    };
    let base = host.tlsa_base.as_ref().unwrap_or(&host.name);
    let dane = (protection == Protection::Dane).then(|| {
        let ids = ReferenceIds {
            tlsa_base: base.clone(),
            mx_host: host.name.clone(),
            nexthop: plan.domain.clone(),
        };
        Arc::new(DaneVerifier::new(
            host.tlsa_records.clone(),
            host.port,
            ids,
            crate::tls::provider(),
        ))
    });
    let sts = match dane {
        None => mtasts::verifier(ctx, host, protection == Protection::Sts),
        Some(_) => None,
    };
    let tls_config = connector(ctx, engine, tls, &dane, &sts, protection);
    // dane-rules §3.2: SNI is the TLSA base domain.
    let sni = if dane.is_some() { base } else { &host.name };
    let hello = Hello {
        hostname: ctx.config.server.hostname.0.clone(),
        tls_config,
        sni: sni_for(sni),
        tls,
        timeouts: ctx.timeouts.clone(),
    };
    (hello, Verifiers { dane, sts })
}

/// The handshake's engine and verifier: DANE's, MTA-STS's, or none
/// (opportunistic TLS, TLS required without authentication).
fn connector(
    ctx: &Context,
    engine: Engine,
    tls: TlsMode,
    dane: &Option<Arc<DaneVerifier>>,
    sts: &Option<Arc<StsVerifier>>,
    protection: Protection,
) -> Connector {
    let min = ctx.config.tls.min_version;
    match engine {
        Engine::Rustls => Connector::primary(match (dane, sts) {
            (Some(v), _) => crate::tls::dane_config(v.clone(), min),
            (None, Some(v)) => crate::tls::webpki::sts_config(v.clone(), min),
            (None, None) if tls == TlsMode::Required => ctx.tls_encrypt.clone(),
            (None, None) => ctx.tls_opportunistic.clone(),
        }),
        Engine::Legacy => {
            let floor = Floor::for_policy(tls == TlsMode::Required, &ctx.config.tls);
            Connector::legacy(match (dane, sts) {
                (Some(v), _) => LegacyConfig::dane(v.clone(), floor),
                // An `enforce` policy's check must pass, over TLS 1.2 or
                // later whatever the configured floor (RFC 8461 §4.2); a
                // `testing` policy's only observes.
                (None, Some(v)) if protection == Protection::Sts => {
                    let min_version = ctx.config.tls.min_version.max(TlsVersion::Tls1_2);
                    LegacyConfig::sts(v.clone(), true, Floor::Mandatory { min_version })
                }
                (None, Some(v)) => LegacyConfig::sts(v.clone(), false, floor),
                (None, None) => LegacyConfig::unauthenticated(floor),
            })
        }
    }
}

async fn try_address(
    ctx: &Context,
    peer: &Peer,
    hello: &Hello,
) -> Result<Client<TcpStream>, OutboundError> {
    let limit = Stage::Connect.timeout(&ctx.timeouts);
    let stream = match timeout(limit, TcpStream::connect(peer.addr)).await {
        Err(_) => {
            return Err(OutboundError::Connect {
                peer: peer.clone(),
                cause: "connection timed out".into(),
            })
        }
        Ok(Err(e)) => {
            return Err(OutboundError::Connect {
                peer: peer.clone(),
                cause: e.to_string(),
            })
        }
        Ok(Ok(s)) => s,
    };
    let _ = stream.set_nodelay(true);
    Client::open(stream, peer.clone(), hello).await
}
