//! How an outbound connection was protected, in Postfix's vocabulary
//! (`Verified`, `Trusted`, `Untrusted`, `Anonymous`, plaintext), and the
//! per-connection log line that says so. Summary lines name the
//! mechanism that verified a connection: `verified(dane)`,
//! `trusted(dane)`, `verified(sts)`. It records what the handshake and
//! the verifier found; it decides nothing.

use std::fmt;

use super::dane;

/// How an outbound connection was protected, in Postfix's vocabulary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsState {
    /// Plaintext.
    None,
    /// TLS without a server certificate (anonymous cipher suites; rustls
    /// never negotiates these, the variant exists for the log vocabulary).
    Anonymous { protocol: String, cipher: String },
    /// TLS, certificate not authenticated.
    Untrusted { protocol: String, cipher: String },
    /// DANE matched, but the MX records were not DNSSEC-signed, so the
    /// host name itself is not authenticated.
    Trusted {
        protocol: String,
        cipher: String,
        matched: String,
    },
    /// DANE matched and the host name came from a secure MX RRset (or a
    /// static route).
    Verified {
        protocol: String,
        cipher: String,
        matched: String,
    },
    /// MTA-STS: the certificate is valid for the MX host name under the
    /// WebPKI, and the host is allowed by the domain's policy.
    VerifiedSts {
        protocol: String,
        cipher: String,
        matched: String,
    },
}

impl TlsState {
    /// The state of an established rustls connection.
    pub fn untrusted(conn: &rustls::ClientConnection) -> TlsState {
        let protocol = conn
            .protocol_version()
            .map(|v| match v {
                rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3".to_owned(),
                rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2".to_owned(),
                other => format!("{other:?}"),
            })
            .unwrap_or_else(|| "unknown".into());
        let cipher = conn
            .negotiated_cipher_suite()
            .map(|c| format!("{:?}", c.suite()))
            .unwrap_or_else(|| "unknown".into());
        TlsState::Untrusted { protocol, cipher }
    }

    pub fn is_tls(&self) -> bool {
        !matches!(self, TlsState::None)
    }

    /// The protocol and cipher suite of a TLS connection; none for
    /// plaintext.
    pub fn protocol_and_cipher(&self) -> Option<(&str, &str)> {
        match self {
            TlsState::Untrusted { protocol, cipher }
            | TlsState::Anonymous { protocol, cipher }
            | TlsState::Trusted {
                protocol, cipher, ..
            }
            | TlsState::Verified {
                protocol, cipher, ..
            }
            | TlsState::VerifiedSts {
                protocol, cipher, ..
            } => Some((protocol, cipher)),
            TlsState::None => None,
        }
    }

    /// The same connection, authenticated by DANE: `Verified` when the
    /// MX host name is authenticated, `Trusted` otherwise.
    pub fn authenticated(&self, mx_secure: bool, matched: &dane::DaneMatch) -> TlsState {
        let Some((protocol, cipher)) = self.protocol_and_cipher() else {
            return TlsState::None;
        };
        let (protocol, cipher) = (protocol.to_owned(), cipher.to_owned());
        let matched = matched.to_string();
        if mx_secure {
            TlsState::Verified {
                protocol,
                cipher,
                matched,
            }
        } else {
            TlsState::Trusted {
                protocol,
                cipher,
                matched,
            }
        }
    }

    /// The same connection, its certificate valid under the WebPKI for
    /// an MTA-STS policy (`matched` says for what).
    pub fn sts_verified(&self, matched: String) -> TlsState {
        let Some((protocol, cipher)) = self.protocol_and_cipher() else {
            return TlsState::None;
        };
        TlsState::VerifiedSts {
            protocol: protocol.to_owned(),
            cipher: cipher.to_owned(),
            matched,
        }
    }

    /// The `state` label of the TLS connection metric, naming the
    /// mechanism of a verified connection: `verified_dane`,
    /// `verified_sts`, `trusted`, `untrusted`, `anonymous`, `plaintext`.
    pub fn metric_label(&self) -> &'static str {
        match self {
            TlsState::None => "plaintext",
            TlsState::Anonymous { .. } => "anonymous",
            TlsState::Untrusted { .. } => "untrusted",
            TlsState::Trusted { .. } => "trusted",
            TlsState::Verified { .. } => "verified_dane",
            TlsState::VerifiedSts { .. } => "verified_sts",
        }
    }

    /// Postfix's word for the connection: `Verified`, `Trusted`,
    /// `Untrusted`, `Anonymous`, or none for plaintext.
    pub fn label(&self) -> &'static str {
        match self {
            TlsState::None => "plaintext",
            TlsState::Anonymous { .. } => "Anonymous",
            TlsState::Untrusted { .. } => "Untrusted",
            TlsState::Trusted { .. } => "Trusted",
            TlsState::Verified { .. } | TlsState::VerifiedSts { .. } => "Verified",
        }
    }

    /// The per-connection log line, e.g. "Verified TLS connection
    /// established to mx[192.0.2.1]:25: TLSv1.3 with cipher X; matched
    /// DANE-EE 3 1 1 2c8a4f01… at depth 0".
    pub fn connection_line(&self, peer: &impl fmt::Display) -> String {
        match self {
            TlsState::None => format!("plaintext connection to {peer}"),
            TlsState::Anonymous { protocol, cipher } | TlsState::Untrusted { protocol, cipher } => {
                format!(
                    "{} TLS connection established to {peer}: {protocol} with cipher {cipher}",
                    self.label()
                )
            }
            TlsState::Trusted {
                protocol,
                cipher,
                matched,
            }
            | TlsState::Verified {
                protocol,
                cipher,
                matched,
            }
            | TlsState::VerifiedSts {
                protocol,
                cipher,
                matched,
            } => format!(
                "{} TLS connection established to {peer}: {protocol} with cipher {cipher}; matched {matched}",
                self.label()
            ),
        }
    }
}

impl fmt::Display for TlsState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsState::None => f.write_str("none"),
            TlsState::Anonymous { protocol, cipher } => {
                write!(f, "anonymous {protocol} {cipher}")
            }
            TlsState::Untrusted { protocol, cipher } => {
                write!(f, "untrusted {protocol} {cipher}")
            }
            TlsState::Trusted {
                protocol,
                cipher,
                matched,
            } => write!(f, "trusted(dane) {protocol} {cipher} ({matched})"),
            TlsState::Verified {
                protocol,
                cipher,
                matched,
            } => write!(f, "verified(dane) {protocol} {cipher} ({matched})"),
            TlsState::VerifiedSts {
                protocol,
                cipher,
                matched,
            } => write!(f, "verified(sts) {protocol} {cipher} ({matched})"),
        }
    }
}
