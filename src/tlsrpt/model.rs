//! The vocabulary of RFC 8460: result types (§4.3), policies and failure
//! details as danegate records them, and the JSON report (§4.4) as it is
//! sent. Field names are the RFC's, spelled out with serde renames; the
//! types both serialise and parse, so the RFC's own example is a test.

use std::fmt;

use serde::{Deserialize, Serialize};

/// RFC 8460 §4.3 result types (the IANA "STARTTLS Validation Result
/// Types" registry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResultType {
    StarttlsNotSupported,
    CertificateHostMismatch,
    CertificateExpired,
    CertificateNotTrusted,
    ValidationFailure,
    TlsaInvalid,
    DnssecInvalid,
    DaneRequired,
    StsPolicyFetchError,
    StsPolicyInvalid,
    StsWebpkiInvalid,
}

impl ResultType {
    pub const ALL: [ResultType; 11] = [
        ResultType::StarttlsNotSupported,
        ResultType::CertificateHostMismatch,
        ResultType::CertificateExpired,
        ResultType::CertificateNotTrusted,
        ResultType::ValidationFailure,
        ResultType::TlsaInvalid,
        ResultType::DnssecInvalid,
        ResultType::DaneRequired,
        ResultType::StsPolicyFetchError,
        ResultType::StsPolicyInvalid,
        ResultType::StsWebpkiInvalid,
    ];

    /// The registry's name, e.g. `starttls-not-supported`.
    pub fn name(self) -> &'static str {
        match self {
            ResultType::StarttlsNotSupported => "starttls-not-supported",
            ResultType::CertificateHostMismatch => "certificate-host-mismatch",
            ResultType::CertificateExpired => "certificate-expired",
            ResultType::CertificateNotTrusted => "certificate-not-trusted",
            ResultType::ValidationFailure => "validation-failure",
            ResultType::TlsaInvalid => "tlsa-invalid",
            ResultType::DnssecInvalid => "dnssec-invalid",
            ResultType::DaneRequired => "dane-required",
            ResultType::StsPolicyFetchError => "sts-policy-fetch-error",
            ResultType::StsPolicyInvalid => "sts-policy-invalid",
            ResultType::StsWebpkiInvalid => "sts-webpki-invalid",
        }
    }
}

impl fmt::Display for ResultType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `policy-type` (§4.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PolicyType {
    /// DANE: the TLSA RRset of one MX host.
    Tlsa,
    /// MTA-STS: the domain's policy.
    Sts,
    /// Neither.
    NoPolicyFound,
}

impl PolicyType {
    pub fn name(self) -> &'static str {
        match self {
            PolicyType::Tlsa => "tlsa",
            PolicyType::Sts => "sts",
            PolicyType::NoPolicyFound => "no-policy-found",
        }
    }
}

/// The policy a session was judged under (§4.4 `policy`): also the key
/// that sessions are counted under.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    #[serde(rename = "policy-type")]
    pub kind: PolicyType,
    /// TLSA records in presentation format, or the MTA-STS policy's
    /// lines (§4.5); none for `no-policy-found`.
    #[serde(
        rename = "policy-string",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub strings: Vec<String>,
    /// The TLSA base domain (DANE), the MTA-STS policy domain, or the
    /// recipient domain (no policy); A-labels.
    #[serde(rename = "policy-domain")]
    pub domain: String,
    /// MTA-STS `mx` patterns (an array since erratum 6241 of RFC 8460).
    #[serde(rename = "mx-host", default, skip_serializing_if = "Vec::is_empty")]
    pub mx_host: Vec<String>,
}

impl Policy {
    /// `no-policy-found` for `domain`.
    pub fn none(domain: &str) -> Policy {
        Policy {
            kind: PolicyType::NoPolicyFound,
            strings: Vec::new(),
            domain: domain.to_owned(),
            mx_host: Vec::new(),
        }
    }

    /// A DANE policy: the TLSA RRset at `base`, each record as
    /// "usage selector mtype hex" (§4.5), in a stable order.
    pub fn tlsa(base: &str, records: impl IntoIterator<Item = String>) -> Policy {
        let mut strings: Vec<String> = records.into_iter().collect();
        strings.sort();
        strings.dedup();
        Policy {
            kind: PolicyType::Tlsa,
            strings,
            domain: base.to_owned(),
            mx_host: Vec::new(),
        }
    }

    /// An MTA-STS policy of `domain`: its text as lines (§4.5: each
    /// `mx` on a line of its own), and its `mx` patterns.
    pub fn sts(domain: &str, text: &str, mx: Vec<String>) -> Policy {
        let strings = text
            .lines()
            .map(|l| l.trim())
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect();
        Policy {
            kind: PolicyType::Sts,
            strings,
            domain: domain.to_owned(),
            mx_host: mx,
        }
    }

    /// The canonical JSON of the policy: the key sessions are counted
    /// under.
    pub fn key(&self) -> String {
        serde_json::to_string(self).expect("a policy always serialises")
    }
}

/// What went wrong in one session, without its count: the key failed
/// sessions are counted under (§4.4 `failure-details`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Failure {
    #[serde(rename = "result-type")]
    pub result: ResultType,
    #[serde(
        rename = "sending-mta-ip",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub sending_ip: Option<String>,
    #[serde(
        rename = "receiving-mx-hostname",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub mx_host: Option<String>,
    #[serde(
        rename = "receiving-mx-helo",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub mx_helo: Option<String>,
    #[serde(
        rename = "receiving-ip",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub receiving_ip: Option<String>,
    #[serde(
        rename = "additional-information",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub additional: Option<String>,
    /// danegate's own words for the failure, as in its deferral replies.
    #[serde(
        rename = "failure-reason-code",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub reason: Option<String>,
}

/// The longest failure-reason-code kept (a deferral text is shorter).
pub const MAX_REASON: usize = 300;

impl Failure {
    /// A failure of `result` with danegate's `reason` (bounded, control
    /// characters replaced: it ends up in other people's mail).
    pub fn new(result: ResultType, reason: impl fmt::Display) -> Failure {
        Failure {
            result,
            sending_ip: None,
            mx_host: None,
            mx_helo: None,
            receiving_ip: None,
            additional: None,
            reason: Some(clean(&reason.to_string())),
        }
    }

    pub fn key(&self) -> String {
        serde_json::to_string(self).expect("a failure always serialises")
    }
}

/// `text` without control characters, at most [`MAX_REASON`] characters.
pub fn clean(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_REASON)
        .collect()
}

/// One failure detail of a report: the failure and how many sessions
/// failed so.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureDetail {
    #[serde(flatten)]
    pub failure: Failure,
    #[serde(rename = "failed-session-count")]
    pub count: u64,
}

/// §4.4 `summary`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Summary {
    #[serde(rename = "total-successful-session-count")]
    pub successful: u64,
    #[serde(rename = "total-failure-session-count")]
    pub failed: u64,
}

impl Summary {
    /// The sessions of all `policies` together.
    pub fn total(policies: &[PolicyResult]) -> Summary {
        let mut s = Summary::default();
        for p in policies {
            s.successful += p.summary.successful;
            s.failed += p.summary.failed;
        }
        s
    }
}

/// One entry of `policies`: a policy, its counts and failure details.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyResult {
    pub policy: Policy,
    pub summary: Summary,
    #[serde(rename = "failure-details", default)]
    pub failure_details: Vec<FailureDetail>,
}

/// §4.4 `date-range`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DateRange {
    #[serde(rename = "start-datetime")]
    pub start: String,
    #[serde(rename = "end-datetime")]
    pub end: String,
}

/// The report (§4.4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Report {
    #[serde(rename = "organization-name")]
    pub organization: String,
    #[serde(rename = "date-range")]
    pub date_range: DateRange,
    #[serde(rename = "contact-info")]
    pub contact: String,
    #[serde(rename = "report-id")]
    pub report_id: String,
    pub policies: Vec<PolicyResult>,
}
