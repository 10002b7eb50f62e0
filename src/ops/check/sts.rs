//! MTA-STS in `danegate check`: the domain's policy as the plan found it
//! (TXT record, cached or fetched, age, mode, patterns), which mechanism
//! each host gets, and the WebPKI check of each address's certificate
//! for the MX host name where a policy applies (RFC 8461 §4.2).

use serde::Serialize;

use crate::outbound::plan::{Host, Plan};
use crate::policy::{Requirement, StsStatus};
use crate::sts::apply::ForDomain;
use crate::sts::discover::time_text;
use crate::sts::Txt;
use crate::tls::webpki::{verify_chain, Roots, WebPkiVerdict};
use crate::tls::{CertificateDer, UnixTime};

/// The `mta_sts` object of the report.
#[derive(Debug, Serialize)]
pub struct StsReport {
    /// One line: the policy applied, or why none is.
    pub summary: String,
    /// The `_mta-sts` TXT record's id, when one was found.
    pub txt_id: Option<String>,
    pub policy: Option<StsPolicyReport>,
    /// A fetch that failed (the TLS-RPT result type and why).
    pub fetch_error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct StsPolicyReport {
    pub id: String,
    pub mode: String,
    pub max_age: u64,
    pub mx: Vec<String>,
    /// "cached" or "fetched".
    pub source: &'static str,
    pub fetched_at: String,
    pub age_seconds: u64,
    pub expires_at: String,
}

/// The `webpki` object of an address: the certificate judged as MTA-STS
/// judges it.
#[derive(Debug, Serialize)]
pub struct WebPkiReport {
    pub valid: bool,
    pub detail: String,
}

pub(super) fn report(plan: &Plan, now: u64) -> StsReport {
    let (txt_id, policy, fetch_error) = match &plan.sts {
        ForDomain::Discovered(d) => (
            match &d.txt {
                Txt::Record(r) => Some(r.id.clone()),
                _ => None,
            },
            d.applied.as_ref().map(|a| StsPolicyReport {
                id: a.id.clone(),
                mode: a.policy.mode.to_string(),
                max_age: a.policy.max_age,
                mx: a.policy.mx.iter().map(|p| p.to_string()).collect(),
                source: a.source.as_str(),
                fetched_at: time_text(a.fetched_at),
                age_seconds: now.saturating_sub(a.fetched_at),
                expires_at: time_text(a.expires_at),
            }),
            d.problem
                .as_ref()
                .map(|p| format!("{}: {p}", p.kind().result_type())),
        ),
        _ => (None, None, None),
    };
    StsReport {
        summary: plan.sts.describe(),
        txt_id,
        policy,
        fetch_error,
    }
}

/// Which mechanism protects mail to `host`: "dane", "mta-sts", "none", or
/// "refused".
pub(super) fn mechanism(host: &Host) -> &'static str {
    match host.requirement {
        Requirement::DaneRequired => "dane",
        Requirement::StsRequired => "mta-sts",
        Requirement::Refuse(_) => "refused",
        Requirement::Opportunistic | Requirement::TlsRequired => "none",
    }
}

/// Whether the host's certificate is judged by MTA-STS: a policy names
/// the host and DANE does not apply to it.
pub(super) fn judged(host: &Host) -> bool {
    matches!(
        host.sts,
        StsStatus::Enforce { allowed: true } | StsStatus::Testing { allowed: true }
    ) && host.requirement != Requirement::DaneRequired
}

/// The WebPKI verdict on a presented chain for the host's name.
pub(super) fn judge(
    roots: &Roots,
    host: &Host,
    chain: &[CertificateDer<'static>],
    now: UnixTime,
) -> WebPkiReport {
    match verify_chain(roots, chain, &host.name, now) {
        WebPkiVerdict::Valid(detail) => WebPkiReport {
            valid: true,
            detail,
        },
        WebPkiVerdict::Invalid(detail) => WebPkiReport {
            valid: false,
            detail,
        },
    }
}
