//! MTA-STS (RFC 8461): SMTP MTA Strict Transport Security.
pub mod cache;
pub mod discover;
pub mod fetch;
pub mod pattern;
pub mod policy;
pub mod record;

/// What went wrong with a domain's policy, in TLS reporting's words
/// (RFC 8460 §4.3.2.2), for logs, metrics and a report recorder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyFailure {
    /// The policy could not be fetched (connection, HTTP status,
    /// redirect, content type, size, time).
    FetchError,
    /// The policy was fetched but is not a valid policy.
    Invalid,
    /// The policy host's certificate did not validate (WebPKI).
    WebPkiInvalid,
}

impl PolicyFailure {
    /// The TLS-RPT `result-type`.
    pub fn result_type(self) -> &'static str {
        match self {
            PolicyFailure::FetchError => "sts-policy-fetch-error",
            PolicyFailure::Invalid => "sts-policy-invalid",
            PolicyFailure::WebPkiInvalid => "sts-webpki-invalid",
        }
    }
}

pub use discover::{Applied, Discovery, Source, Sts, Txt};
