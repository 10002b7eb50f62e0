//! The outbound side's part in TLS reporting (RFC 8460): each attempt to
//! open a session with one address, and each DNS failure of a plan,
//! turned into the [`Event`] that is counted for the recipient domain.
//!
//! Which policy a host is judged under: DANE (`tlsa`, the TLSA RRset at
//! the host's TLSA base domain) where a secure TLSA RRset exists, else
//! the domain's MTA-STS policy (`sts`, its text and `mx` patterns) where
//! it applies to the host, else `no-policy-found`. Which result type a failure gets follows RFC 8460
//! §4.3 (see the tables in the tests); the failure-reason-code is the
//! text danegate writes in its own deferral. Transport trouble that is
//! not about TLS (connect failures, timeouts before STARTTLS) is not
//! reported (§4.3.4: transient failures need not be).
//!
//! Only the attempt made under the host's own requirement is reported:
//! the plaintext retry after a failed opportunistic handshake and the
//! test-mode fallback after a failed DANE attempt are not sessions under
//! the policy.

use std::net::SocketAddr;

use crate::config::Config;
use crate::dns::{DnsFailure, FailureKind};
use crate::outbound::client::Client;
use crate::outbound::error::{OutboundError, Peer};
use crate::outbound::plan::{address_literal, Host, Plan, PlanError, SkipReason, Skipped};
use crate::outbound::stage::Stage;
use crate::outbound::Context;
use crate::policy::{Level, RefuseReason, StsStatus, StsTesting, TlsaStatus};
use crate::sts::apply::ForDomain;
use crate::sts::fetch::FetchError;
use crate::sts::{Applied, PolicyFailure};
use crate::tls::dane::{DaneFailure, PathProblem};
use crate::tls::webpki::WebPkiVerdict;
use crate::tls::TlsState;
use crate::tlsrpt::model::{Failure, Policy, PolicyType, ResultType};
use crate::tlsrpt::Event;

/// The domain whose `_smtp._tls` record gets the reports about mail to
/// `domain`: the domain itself (also behind a route to a fixed host: the
/// sessions are still its mail's), or the host of a `[routes]` entry that
/// looks up MX records (a smart host's domain, as RFC 8460 §1.1 says for
/// MTA-STS). An address literal has no domain to report to.
pub fn report_domain(config: &Config, domain: &str) -> Option<String> {
    if address_literal(domain).is_some() {
        return None;
    }
    match config.routes.iter().find(|(k, _)| k.0 == domain) {
        Some((_, r)) if r.mx_lookup => Some(r.host.clone()),
        _ => Some(domain.to_owned()),
    }
}

/// The policy a host's sessions are judged under: DANE first (as in
/// delivery), then the domain's MTA-STS policy where it applies to the
/// host, else none.
pub fn host_policy(report_domain: &str, sts: Option<&Applied>, host: &Host) -> Policy {
    match (host.tlsa, sts) {
        (TlsaStatus::Usable | TlsaStatus::AllUnusable, _) => Policy::tlsa(
            host.tlsa_base.as_deref().unwrap_or(&host.name),
            host.tlsa_records.iter().map(|r| r.to_string()),
        ),
        (_, Some(a)) if host.sts != StsStatus::None => sts_policy(a),
        _ => Policy::none(report_domain),
    }
}

/// An MTA-STS policy as reported: its text line by line, its patterns.
fn sts_policy(a: &Applied) -> Policy {
    Policy::sts(
        &a.domain,
        &a.text,
        a.policy.mx.iter().map(|p| p.to_string()).collect(),
    )
}

/// What one attempt came to.
pub enum Outcome<'a> {
    /// A conversation, protected as `state` says.
    Open(&'a TlsState),
    /// No conversation.
    Failed(&'a OutboundError),
}

/// What the certificate verifiers of an attempt found.
#[derive(Default, Clone, Copy)]
pub struct Findings<'a> {
    pub dane: Option<&'a DaneFailure>,
    pub webpki: Option<&'a WebPkiVerdict>,
}

/// The event for one attempt with `peer` under `host`'s policy, or none
/// when the outcome is not about TLS.
pub fn attempt_event(
    report_domain: &str,
    sts: Option<&Applied>,
    host: &Host,
    peer: &Peer,
    local: Option<SocketAddr>,
    outcome: Outcome<'_>,
    found: Findings<'_>,
) -> Option<Event> {
    let policy = host_policy(report_domain, sts, host);
    let failure = match outcome {
        Outcome::Open(state) if !state.is_tls() => Some(Failure::new(
            ResultType::StarttlsNotSupported,
            format!("{peer} did not offer STARTTLS"),
        )),
        // TLS without authentication because no TLSA record is usable
        // (Postfix reports this as a failure too).
        Outcome::Open(_) if host.tlsa == TlsaStatus::AllUnusable => Some(Failure::new(
            ResultType::TlsaInvalid,
            format!(
                "none of the TLSA records of {} is usable for SMTP",
                policy.domain
            ),
        )),
        // A `testing` MTA-STS policy: its findings, although delivery
        // went on.
        Outcome::Open(_) if policy.kind == PolicyType::Sts => sts_testing_failure(host, found),
        Outcome::Open(_) => None,
        Outcome::Failed(e) => Some(failure_of(e, found)?),
    };
    let Some(mut failure) = failure else {
        return Some(Event::success(report_domain, policy));
    };
    failure.sending_ip = local.map(|a| a.ip().to_string());
    failure.mx_host = Some(peer.host.clone());
    failure.receiving_ip = Some(peer.addr.ip().to_string());
    Some(Event::failure(report_domain, policy, failure))
}

/// What a `testing` MTA-STS policy found wrong with a session that went
/// ahead: the host is not among its `mx`, or the certificate failed.
fn sts_testing_failure(host: &Host, found: Findings<'_>) -> Option<Failure> {
    if host.sts_testing == Some(StsTesting::MxNotAllowed) {
        return Some(Failure::new(
            ResultType::ValidationFailure,
            format!("MX host {} is not allowed by the MTA-STS policy", host.name),
        ));
    }
    match found.webpki {
        Some(WebPkiVerdict::Invalid(why)) => Some(Failure::new(webpki_result(why), why)),
        _ => None,
    }
}

/// RFC 8460 §4.3 for a failed attempt; none for failures that are not
/// about TLS.
pub fn failure_of(e: &OutboundError, found: Findings<'_>) -> Option<Failure> {
    let webpki_invalid = match found.webpki {
        Some(WebPkiVerdict::Invalid(why)) => Some(why.as_str()),
        _ => None,
    };
    let result = match e {
        OutboundError::StartTlsMissing { .. } | OutboundError::StartTlsRefused { .. } => {
            ResultType::StarttlsNotSupported
        }
        OutboundError::Dane { .. } => found
            .dane
            .map(dane_result)
            .unwrap_or(ResultType::ValidationFailure),
        OutboundError::Tls { .. } => webpki_invalid
            .map(webpki_result)
            .unwrap_or(ResultType::ValidationFailure),
        OutboundError::Timeout { stage, .. } | OutboundError::Lost { stage, .. }
            if matches!(stage, Stage::StartTls | Stage::TlsHandshake) =>
        {
            ResultType::ValidationFailure
        }
        OutboundError::Refused { reason, .. } => match reason {
            RefuseReason::InsecureMx | RefuseReason::NoSecureTlsa => ResultType::DaneRequired,
            RefuseReason::AllTlsaUnusable => ResultType::TlsaInvalid,
            RefuseReason::StsMxNotAllowed => ResultType::ValidationFailure,
        },
        _ => return None,
    };
    let reason = match (e, found.dane, webpki_invalid) {
        // The verifiers' own words, without the peer (it has its field).
        (OutboundError::Dane { .. }, Some(f), _) => f.to_string(),
        (OutboundError::Tls { .. }, _, Some(why)) => {
            format!("certificate not valid for the MTA-STS policy: {why}")
        }
        (OutboundError::Tls { cause, .. }, _, _) => format!("TLS handshake failed: {cause}"),
        (OutboundError::Refused { reason, .. }, _, _) => reason.to_string(),
        _ => e.to_string(),
    };
    Some(Failure::new(result, reason))
}

/// A WebPKI verdict's words (`tls::webpki::describe`) as a result type.
pub fn webpki_result(why: &str) -> ResultType {
    if why.contains("has expired") || why.contains("not valid yet") {
        ResultType::CertificateExpired
    } else if why.contains("not valid for the name") {
        ResultType::CertificateHostMismatch
    } else {
        ResultType::CertificateNotTrusted
    }
}

/// A DANE verification failure as a result type.
pub fn dane_result(f: &DaneFailure) -> ResultType {
    match f {
        DaneFailure::NoUsableRecords { .. } => ResultType::TlsaInvalid,
        DaneFailure::NoMatch { .. } => ResultType::CertificateNotTrusted,
        DaneFailure::NameMismatch { .. } => ResultType::CertificateHostMismatch,
        DaneFailure::TaPath(PathProblem::Expired) => ResultType::CertificateExpired,
        DaneFailure::TaPath(_) => ResultType::CertificateNotTrusted,
    }
}

/// dnssec-invalid for a lookup that came back bogus or SERVFAIL (other
/// failures, timeouts above all, are transient: not reported).
fn dnssec_invalid(e: &DnsFailure) -> Option<Failure> {
    // A SERVFAIL whose Extended DNS Error names another cause (no
    // reachable authority...) is not about DNSSEC.
    (e.kind.is_bogus() || e.kind == FailureKind::ServFail)
        .then(|| Failure::new(ResultType::DnssecInvalid, e))
}

/// The events for a plan that failed on DNS: the MX lookup itself, or
/// every host of the domain.
pub fn plan_failure_events(report_domain: &str, level: Level, e: &PlanError) -> Vec<Event> {
    match e {
        PlanError::Dns(f) => dnssec_invalid(f)
            .map(|failure| {
                let policy = if level.wants_tlsa() {
                    Policy::tlsa(report_domain, [])
                } else {
                    Policy::none(report_domain)
                };
                vec![Event::failure(report_domain, policy, failure)]
            })
            .unwrap_or_default(),
        PlanError::NoHost { problems, .. } => skipped_events(report_domain, problems),
        PlanError::NxDomain { .. } | PlanError::NullMx { .. } | PlanError::BadDomain(_) => {
            Vec::new()
        }
    }
}

/// The events for hosts left out of a plan because a lookup failed:
/// under DANE's policy at the host (its TLSA RRset could not be had).
pub fn skipped_events(report_domain: &str, skipped: &[Skipped]) -> Vec<Event> {
    skipped
        .iter()
        .filter_map(|s| {
            let SkipReason::Dns(e) = &s.reason else {
                return None;
            };
            let mut failure = dnssec_invalid(e)?;
            failure.mx_host = Some(s.name.clone());
            let base = if e.rtype == "TLSA" {
                tlsa_base(&e.name)
            } else {
                &s.name
            };
            Some(Event::failure(
                report_domain,
                Policy::tlsa(base, []),
                failure,
            ))
        })
        .collect()
}

/// `mx.example` of `_25._tcp.mx.example`.
fn tlsa_base(name: &str) -> &str {
    name.strip_prefix('_')
        .and_then(|n| n.split_once("._tcp."))
        .map(|(_, base)| base)
        .unwrap_or(name)
}

/// Records the attempt with `peer` under `host`'s policy (the hook in
/// `connect`).
#[allow(clippy::too_many_arguments)]
pub fn record_attempt<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send>(
    ctx: &Context,
    plan: &Plan,
    host: &Host,
    peer: &Peer,
    local: Option<SocketAddr>,
    result: &Result<Client<S>, OutboundError>,
    dane: Option<&DaneFailure>,
    webpki: Option<&WebPkiVerdict>,
) {
    let Some(domain) = report_domain(&ctx.config, &plan.domain) else {
        return;
    };
    let outcome = match result {
        Ok(c) => Outcome::Open(c.tls_state()),
        Err(e) => Outcome::Failed(e),
    };
    let found = Findings { dane, webpki };
    if let Some(e) = attempt_event(
        &domain,
        plan.sts.active(),
        host,
        peer,
        local,
        outcome,
        found,
    ) {
        ctx.tlsrpt.record(e);
    }
}

/// Records a host the policy refused to use (`dane-only`, an MTA-STS
/// `enforce` policy that does not name it).
pub fn record_refusal(ctx: &Context, plan: &Plan, host: &Host, peer: &Peer, reason: RefuseReason) {
    let Some(domain) = report_domain(&ctx.config, &plan.domain) else {
        return;
    };
    let e = OutboundError::Refused {
        peer: peer.clone(),
        reason,
    };
    let outcome = Outcome::Failed(&e);
    let sts = plan.sts.active();
    if let Some(e) = attempt_event(&domain, sts, host, peer, None, outcome, Findings::default()) {
        ctx.tlsrpt.record(e);
    }
}

/// Records a plan that failed on DNS.
pub fn record_plan_error(ctx: &Context, domain: &str, e: &PlanError) {
    let Some(rd) = report_domain(&ctx.config, domain) else {
        return;
    };
    for ev in plan_failure_events(&rd, ctx.config.policy.level_for(domain), e) {
        ctx.tlsrpt.record(ev);
    }
}

/// Records what a plan found wrong before any connection: hosts left
/// out because a lookup failed, and an MTA-STS policy that could not be
/// fetched or was invalid.
pub fn record_plan(ctx: &Context, plan: &Plan) {
    let Some(rd) = report_domain(&ctx.config, &plan.domain) else {
        return;
    };
    for ev in skipped_events(&rd, &plan.skipped) {
        ctx.tlsrpt.record(ev);
    }
    if let ForDomain::Discovered(d) = &plan.sts {
        if let Some(problem) = &d.problem {
            ctx.tlsrpt
                .record(sts_problem_event(&rd, &d.domain, problem));
        }
    }
}

/// An MTA-STS policy fetch that failed (RFC 8460 §4.3.2.2).
pub fn sts_problem_event(report_domain: &str, policy_domain: &str, e: &FetchError) -> Event {
    let result = match e.kind() {
        PolicyFailure::FetchError => ResultType::StsPolicyFetchError,
        PolicyFailure::Invalid => ResultType::StsPolicyInvalid,
        PolicyFailure::WebPkiInvalid => ResultType::StsWebpkiInvalid,
    };
    let policy = Policy {
        kind: PolicyType::Sts,
        strings: Vec::new(),
        domain: policy_domain.to_owned(),
        mx_host: Vec::new(),
    };
    Event::failure(report_domain, policy, Failure::new(result, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::{Security, Tlsa};
    use crate::policy::Requirement;
    use crate::smtp::reply::Reply;

    fn peer() -> Peer {
        Peer {
            host: "mx.example.net".into(),
            addr: "192.0.2.25:25".parse().unwrap(),
        }
    }

    fn host(tlsa: TlsaStatus) -> Host {
        Host {
            name: "mx.example.net".into(),
            port: 25,
            preference: 10,
            addresses: vec![crate::outbound::plan::Address {
                ip: "192.0.2.25".parse().unwrap(),
                security: Security::Secure,
                requirement: Requirement::DaneRequired,
            }],
            alias: None,
            tlsa,
            tlsa_base: Some("mx.example.net".into()),
            tlsa_records: vec![Tlsa {
                usage: 3,
                selector: 1,
                mtype: 1,
                data: vec![0xab; 32],
            }],
            requirement: Requirement::DaneRequired,
            sts: StsStatus::None,
            sts_testing: None,
        }
    }

    fn tls() -> TlsState {
        TlsState::Untrusted(crate::tls::state::Session {
            engine: crate::tls::Engine::Rustls,
            protocol: "TLSv1.3".into(),
            cipher: "X".into(),
        })
    }

    /// (error, DANE finding, result type and failure-reason-code; None:
    /// not reported).
    type Case = (
        OutboundError,
        Option<DaneFailure>,
        Option<(ResultType, &'static str)>,
    );

    #[test]
    fn failure_table() {
        let p = peer();
        let tlsa_name = "_25._tcp.mx.example.net".to_owned();
        let cases: Vec<Case> = vec![
            (
                OutboundError::StartTlsMissing { peer: p.clone() },
                None,
                Some((ResultType::StarttlsNotSupported, "TLS is required, but mx.example.net[192.0.2.25]:25 did not offer STARTTLS")),
            ),
            (
                OutboundError::StartTlsRefused { peer: p.clone(), reply: Reply::new(454, None, "not now") },
                None,
                Some((ResultType::StarttlsNotSupported, "TLS is required, but mx.example.net[192.0.2.25]:25 refused STARTTLS: 454 not now")),
            ),
            (
                OutboundError::Dane { peer: p.clone(), cause: "x".into() },
                Some(DaneFailure::NoMatch { tlsa_name: tlsa_name.clone() }),
                Some((ResultType::CertificateNotTrusted, "no TLSA record of _25._tcp.mx.example.net matches the certificate chain")),
            ),
            (
                OutboundError::Dane { peer: p.clone(), cause: "x".into() },
                Some(DaneFailure::NoUsableRecords { tlsa_name: tlsa_name.clone() }),
                Some((ResultType::TlsaInvalid, "no usable TLSA record at _25._tcp.mx.example.net")),
            ),
            (
                OutboundError::Dane { peer: p.clone(), cause: "x".into() },
                Some(DaneFailure::NameMismatch { names: vec!["mx.example.net".into()] }),
                Some((ResultType::CertificateHostMismatch, "certificate name does not match any of mx.example.net (DANE-TA)")),
            ),
            (
                OutboundError::Dane { peer: p.clone(), cause: "x".into() },
                Some(DaneFailure::TaPath(PathProblem::Expired)),
                Some((ResultType::CertificateExpired, "DANE-TA path to the matched trust anchor does not verify: a certificate has expired")),
            ),
            (
                OutboundError::Dane { peer: p.clone(), cause: "x".into() },
                Some(DaneFailure::TaPath(PathProblem::BadSignature)),
                Some((ResultType::CertificateNotTrusted, "DANE-TA path to the matched trust anchor does not verify: a certificate signature does not verify")),
            ),
            (
                OutboundError::Tls { peer: p.clone(), cause: "received fatal alert: HandshakeFailure".into() },
                None,
                Some((ResultType::ValidationFailure, "TLS handshake failed: received fatal alert: HandshakeFailure")),
            ),
            (
                OutboundError::Timeout { peer: p.clone(), stage: Stage::TlsHandshake },
                None,
                Some((ResultType::ValidationFailure, "conversation with mx.example.net[192.0.2.25]:25 timed out while performing the TLS handshake")),
            ),
            (
                OutboundError::Refused { peer: p.clone(), reason: RefuseReason::NoSecureTlsa },
                None,
                Some((ResultType::DaneRequired, "policy dane-only: no DNSSEC-signed TLSA records")),
            ),
            (
                OutboundError::Refused { peer: p.clone(), reason: RefuseReason::InsecureMx },
                None,
                Some((ResultType::DaneRequired, "policy dane-only: the MX records are not DNSSEC-signed")),
            ),
            (
                OutboundError::Refused { peer: p.clone(), reason: RefuseReason::AllTlsaUnusable },
                None,
                Some((ResultType::TlsaInvalid, "policy dane-only: none of the TLSA records is usable for SMTP")),
            ),
            (OutboundError::Connect { peer: p.clone(), cause: "refused".into() }, None, None),
            (OutboundError::Timeout { peer: p.clone(), stage: Stage::Greeting }, None, None),
            (
                OutboundError::Rejected { peer: p.clone(), stage: Stage::Ehlo, reply: Reply::new(554, None, "no") },
                None,
                None,
            ),
        ];
        for (e, dane, want) in cases {
            let found = Findings {
                dane: dane.as_ref(),
                webpki: None,
            };
            let got = failure_of(&e, found).map(|f| (f.result, f.reason.unwrap()));
            let want = want.map(|(r, t)| (r, t.to_owned()));
            assert_eq!(got, want, "for {e:?} / {dane:?}");
        }
    }

    #[test]
    fn webpki_findings_as_result_types() {
        use crate::tls::webpki::describe;
        use rustls::CertificateError as C;
        let table = [
            (C::Expired, ResultType::CertificateExpired),
            (C::NotValidYet, ResultType::CertificateExpired),
            (C::NotValidForName, ResultType::CertificateHostMismatch),
            (C::UnknownIssuer, ResultType::CertificateNotTrusted),
            (C::BadSignature, ResultType::CertificateNotTrusted),
        ];
        for (e, want) in table {
            assert_eq!(webpki_result(&describe(&e)), want, "{e:?}");
        }
        let verdict = WebPkiVerdict::Invalid(describe(&C::NotValidForName));
        let e = OutboundError::Tls {
            peer: peer(),
            cause: "invalid peer certificate".into(),
        };
        let found = Findings {
            dane: None,
            webpki: Some(&verdict),
        };
        let f = failure_of(&e, found).unwrap();
        assert_eq!(f.result, ResultType::CertificateHostMismatch);
        assert_eq!(
            f.reason.as_deref(),
            Some("certificate not valid for the MTA-STS policy: the certificate is not valid for the name (no matching SAN dNSName)")
        );
    }

    #[test]
    fn attempts_become_events_under_the_hosts_policy() {
        let p = peer();
        let local: SocketAddr = "198.51.100.7:40000".parse().unwrap();
        let h = host(TlsaStatus::Usable);
        let none = Findings::default();
        let ok = attempt_event(
            "example.net",
            None,
            &h,
            &p,
            Some(local),
            Outcome::Open(&tls()),
            none,
        )
        .unwrap();
        assert_eq!(ok.domain, "example.net");
        assert_eq!(ok.policy.kind, crate::tlsrpt::model::PolicyType::Tlsa);
        assert_eq!(ok.policy.domain, "mx.example.net");
        assert_eq!(
            ok.policy.strings,
            vec![format!("3 1 1 {}", "ab".repeat(32))]
        );
        assert!(ok.failure.is_none());

        let e = OutboundError::Dane {
            peer: p.clone(),
            cause: "x".into(),
        };
        let f = DaneFailure::NoMatch {
            tlsa_name: "_25._tcp.mx.example.net".into(),
        };
        let found = Findings {
            dane: Some(&f),
            webpki: None,
        };
        let bad = attempt_event(
            "example.net",
            None,
            &h,
            &p,
            Some(local),
            Outcome::Failed(&e),
            found,
        )
        .unwrap();
        let failure = bad.failure.unwrap();
        assert_eq!(failure.sending_ip.as_deref(), Some("198.51.100.7"));
        assert_eq!(failure.mx_host.as_deref(), Some("mx.example.net"));
        assert_eq!(failure.receiving_ip.as_deref(), Some("192.0.2.25"));

        // No secure TLSA: no-policy-found for the recipient domain; a
        // plaintext session is STARTTLS not supported.
        let h = host(TlsaStatus::NoSecureTlsa);
        let plain = attempt_event(
            "example.net",
            None,
            &h,
            &p,
            None,
            Outcome::Open(&TlsState::None),
            none,
        )
        .unwrap();
        assert_eq!(plain.policy, Policy::none("example.net"));
        assert_eq!(
            plain.failure.unwrap().result,
            ResultType::StarttlsNotSupported
        );

        // All TLSA records unusable: TLS without authentication is a
        // tlsa-invalid failure.
        let h = host(TlsaStatus::AllUnusable);
        let weak = attempt_event(
            "example.net",
            None,
            &h,
            &p,
            None,
            Outcome::Open(&tls()),
            none,
        )
        .unwrap();
        assert_eq!(weak.failure.unwrap().result, ResultType::TlsaInvalid);

        // Not about TLS: nothing.
        let e = OutboundError::Connect {
            peer: p.clone(),
            cause: "refused".into(),
        };
        let failed = Outcome::Failed(&e);
        assert!(attempt_event("example.net", None, &h, &p, None, failed, none).is_none());
    }

    #[test]
    fn mta_sts_sessions_are_judged_under_the_policy() {
        let text = "version: STSv1\r\nmode: enforce\r\nmx: mx.example.net\r\nmx: *.backup.example.net\r\nmax_age: 86400\r\n";
        let applied = Applied {
            domain: "example.net".into(),
            id: "20261206".into(),
            text: text.into(),
            policy: crate::sts::policy::parse(text.as_bytes()).unwrap(),
            fetched_at: 0,
            expires_at: 86400,
            source: crate::sts::Source::Fetched,
        };
        let p = peer();
        let mut h = host(TlsaStatus::NoSecureTlsa);
        h.sts = StsStatus::Enforce { allowed: true };
        h.requirement = Requirement::StsRequired;
        let none = Findings::default();
        let ok = attempt_event(
            "example.net",
            Some(&applied),
            &h,
            &p,
            None,
            Outcome::Open(&tls()),
            none,
        )
        .unwrap();
        assert_eq!(
            serde_json::to_value(&ok.policy).unwrap(),
            serde_json::json!({
                "policy-type": "sts",
                "policy-string": ["version: STSv1", "mode: enforce", "mx: mx.example.net", "mx: *.backup.example.net", "max_age: 86400"],
                "policy-domain": "example.net",
                "mx-host": ["mx.example.net", "*.backup.example.net"]
            })
        );
        assert!(ok.failure.is_none());
        // DANE first: a host with usable TLSA records is judged by them.
        let mut dane = host(TlsaStatus::Usable);
        dane.sts = StsStatus::Enforce { allowed: true };
        assert_eq!(
            host_policy("example.net", Some(&applied), &dane).kind,
            PolicyType::Tlsa
        );
        // A testing policy whose WebPKI check failed: reported, although
        // the session went ahead.
        let mut testing = host(TlsaStatus::NoSecureTlsa);
        testing.sts = StsStatus::Testing { allowed: true };
        testing.sts_testing = Some(StsTesting::Verify);
        let verdict = WebPkiVerdict::Invalid("the certificate has expired".into());
        let found = Findings {
            dane: None,
            webpki: Some(&verdict),
        };
        let ev = attempt_event(
            "example.net",
            Some(&applied),
            &testing,
            &p,
            None,
            Outcome::Open(&tls()),
            found,
        )
        .unwrap();
        assert_eq!(ev.failure.unwrap().result, ResultType::CertificateExpired);
        // A testing policy that does not name the host.
        testing.sts = StsStatus::Testing { allowed: false };
        testing.sts_testing = Some(StsTesting::MxNotAllowed);
        let ev = attempt_event(
            "example.net",
            Some(&applied),
            &testing,
            &p,
            None,
            Outcome::Open(&tls()),
            none,
        )
        .unwrap();
        let f = ev.failure.unwrap();
        assert_eq!(f.result, ResultType::ValidationFailure);
        assert_eq!(
            f.reason.as_deref(),
            Some("MX host mx.example.net is not allowed by the MTA-STS policy")
        );
        // A policy fetch that failed.
        let e = FetchError::Status {
            url: crate::sts::fetch::url("example.net"),
            status: 404,
        };
        let ev = sts_problem_event("example.net", "example.net", &e);
        assert_eq!(ev.policy.kind, PolicyType::Sts);
        let f = ev.failure.unwrap();
        assert_eq!(f.result, ResultType::StsPolicyFetchError);
        assert_eq!(
            f.reason.as_deref(),
            Some("https://mta-sts.example.net/.well-known/mta-sts.txt: answered HTTP 404, not 200")
        );
    }

    #[test]
    fn dns_failures_are_dnssec_invalid_when_bogus_or_servfail() {
        let fail = |name: &str, rtype, kind| DnsFailure {
            name: name.into(),
            rtype,
            kind,
        };
        let ev = plan_failure_events(
            "bogus.example",
            Level::Dane,
            &PlanError::Dns(fail("bogus.example", "MX", FailureKind::Bogus(None))),
        );
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].policy, Policy::tlsa("bogus.example", []));
        let f = ev[0].failure.as_ref().unwrap();
        assert_eq!(f.result, ResultType::DnssecInvalid);
        assert_eq!(
            f.reason.as_deref(),
            Some("MX lookup for bogus.example failed: DNSSEC validation failed (bogus)")
        );
        assert!(plan_failure_events(
            "slow.example",
            Level::Dane,
            &PlanError::Dns(fail("slow.example", "MX", FailureKind::Timeout))
        )
        .is_empty());
        let skipped = vec![
            Skipped {
                name: "mx.tlsa-fail.example".into(),
                reason: SkipReason::Dns(fail(
                    "_25._tcp.mx.tlsa-fail.example",
                    "TLSA",
                    FailureKind::ServFail,
                )),
            },
            Skipped {
                name: "mx.none.example".into(),
                reason: SkipReason::NoAddress,
            },
        ];
        let ev = skipped_events("x.example", &skipped);
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].policy, Policy::tlsa("mx.tlsa-fail.example", []));
        assert_eq!(
            ev[0].failure.as_ref().unwrap().mx_host.as_deref(),
            Some("mx.tlsa-fail.example")
        );
    }

    #[test]
    fn reports_go_to_the_recipient_domain_or_a_routes_mx_host() {
        let c = Config::parse(
            "[routes]\n\"fixed.example\" = \"[10.1.2.3]:25\"\n\"smart.example\" = \"relay.example:25\"\n",
            "t",
        )
        .unwrap();
        assert_eq!(
            report_domain(&c, "example.net").as_deref(),
            Some("example.net")
        );
        assert_eq!(
            report_domain(&c, "fixed.example").as_deref(),
            Some("fixed.example")
        );
        assert_eq!(
            report_domain(&c, "smart.example").as_deref(),
            Some("relay.example")
        );
        assert_eq!(report_domain(&c, "[192.0.2.1]"), None);
    }
}
