//! Why a legacy (OpenSSL) handshake failed, in words that are true: the
//! verifier's own verdict when it refused the chain; "no TLS version in
//! common" or "no cipher suite ... in common" only when OpenSSL or the
//! server said so (by OpenSSL's error reasons, kept as a table); "does not
//! hold that key" only when OpenSSL, which supports the key, found the
//! handshake signature bad.

use openssl::ssl::{Error, ErrorCode};

use super::{Floor, LegacyConfig};
use crate::tls::version::TlsVersion;

/// A failed legacy handshake.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LegacyFailure {
    /// The verifier refused the certificate chain; its words.
    #[error("{0}")]
    Rejected(String),
    /// The server offers no protocol version danegate accepts here.
    #[error(
        "no TLS version in common with the server (it offers none of {floor} to TLSv1.3{why})"
    )]
    NoCommonVersion {
        floor: TlsVersion,
        why: &'static str,
    },
    /// Versions overlap, but no cipher suite, key exchange or signature
    /// algorithm does.
    #[error("no cipher suite, key exchange or signature algorithm in common with the server (it accepts none that OpenSSL offers from {floor} on at security level {level}{anon})")]
    NoCommonCipher {
        floor: TlsVersion,
        level: u32,
        anon: &'static str,
    },
    /// A handshake signature does not verify with the certificate's key,
    /// a key OpenSSL supports.
    #[error("the server's handshake signature does not verify with its certificate's key (it does not hold that key)")]
    BadSignature,
    /// The connection failed under the handshake.
    #[error("{0}")]
    Transport(String),
    #[error("{0}")]
    Other(String),
}

impl LegacyFailure {
    /// Whether this is a verdict on the server's certificate or key (never
    /// to be retried with less protection).
    pub fn is_verification(&self) -> bool {
        matches!(
            self,
            LegacyFailure::Rejected(_) | LegacyFailure::BadSignature
        )
    }
}

/// What an OpenSSL error reason means here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Meaning {
    Version,
    Cipher,
    Signature,
}

/// OpenSSL 3 error reason strings (`ERR_reason_error_string`), received
/// alerts included, and what each means. Unlisted reasons are reported as
/// OpenSSL words them.
const REASONS: &[(&str, Meaning)] = &[
    ("unsupported protocol", Meaning::Version),
    ("tlsv1 alert protocol version", Meaning::Version),
    ("no protocols available", Meaning::Version),
    ("version too low", Meaning::Version),
    ("sslv3 alert handshake failure", Meaning::Cipher),
    ("tlsv1 alert insufficient security", Meaning::Cipher),
    ("no ciphers available", Meaning::Cipher),
    ("no shared cipher", Meaning::Cipher),
    ("wrong cipher returned", Meaning::Cipher),
    ("no suitable signature algorithm", Meaning::Cipher),
    ("wrong signature type", Meaning::Cipher),
    ("legacy sigalg disallowed or unsupported", Meaning::Cipher),
    ("dh key too small", Meaning::Cipher),
    ("wrong curve", Meaning::Cipher),
    ("bad signature", Meaning::Signature),
];

fn meaning(reason: &str) -> Option<Meaning> {
    REASONS
        .iter()
        .find(|(r, _)| r.eq_ignore_ascii_case(reason))
        .map(|(_, m)| *m)
}

/// A verifier's refusal in its own words (rustls shows the error a
/// verifier wraps in `CertificateError::Other` only in debug form).
fn refusal_text(e: &rustls::Error) -> String {
    match e {
        rustls::Error::InvalidCertificate(rustls::CertificateError::Other(o)) => o.0.to_string(),
        other => other.to_string(),
    }
}

/// Classifies a failed handshake. `judged` is the verifier's verdict if it
/// was asked; a refusal there is the cause whatever OpenSSL reports.
pub(super) fn classify(
    e: &Error,
    judged: Option<Result<(), rustls::Error>>,
    config: &LegacyConfig,
) -> LegacyFailure {
    if let Some(Err(refusal)) = judged {
        return LegacyFailure::Rejected(refusal_text(&refusal));
    }
    let reasons: Vec<String> = e
        .ssl_error()
        .map(|stack| {
            stack
                .errors()
                .iter()
                .filter_map(|r| r.reason().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let meanings: Vec<Meaning> = reasons.iter().filter_map(|r| meaning(r)).collect();
    let (floor, level) = (config.floor.min_version(), config.floor.security_level());
    if meanings.contains(&Meaning::Signature) {
        return LegacyFailure::BadSignature;
    }
    if meanings.contains(&Meaning::Version) {
        let why = match config.floor {
            Floor::Mandatory { .. } => "; [tls] min_version where TLS is required",
            Floor::Opportunistic { .. } => "",
        };
        return LegacyFailure::NoCommonVersion { floor, why };
    }
    if meanings.contains(&Meaning::Cipher) {
        let anon = if config.authenticate {
            ", anonymous suites excluded"
        } else {
            ""
        };
        return LegacyFailure::NoCommonCipher { floor, level, anon };
    }
    if let Some(io) = e.io_error() {
        return LegacyFailure::Transport(io.to_string());
    }
    match (e.code(), reasons.first()) {
        (_, Some(reason)) => LegacyFailure::Other(format!("TLS error: {reason}")),
        (ErrorCode::SYSCALL | ErrorCode::ZERO_RETURN, None) => {
            LegacyFailure::Transport("connection closed by server".into())
        }
        _ => LegacyFailure::Other(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_has_one_meaning() {
        for (reason, _) in REASONS {
            assert_eq!(
                REASONS.iter().filter(|(r, _)| r == reason).count(),
                1,
                "{reason}"
            );
        }
        assert_eq!(meaning("BAD SIGNATURE"), Some(Meaning::Signature));
        assert_eq!(meaning("certificate verify failed"), None);
    }

    #[test]
    fn texts() {
        let v = LegacyFailure::NoCommonVersion {
            floor: TlsVersion::Tls1_2,
            why: "; [tls] min_version where TLS is required",
        };
        assert_eq!(
            v.to_string(),
            "no TLS version in common with the server (it offers none of TLSv1.2 to TLSv1.3; [tls] min_version where TLS is required)"
        );
        let c = LegacyFailure::NoCommonCipher {
            floor: TlsVersion::Tls1_2,
            level: 2,
            anon: ", anonymous suites excluded",
        };
        assert_eq!(
            c.to_string(),
            "no cipher suite, key exchange or signature algorithm in common with the server (it accepts none that OpenSSL offers from TLSv1.2 on at security level 2, anonymous suites excluded)"
        );
        assert!(LegacyFailure::BadSignature.is_verification());
        assert!(!c.is_verification());
    }
}
