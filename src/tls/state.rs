//! How an outbound connection was protected, in Postfix's vocabulary
//! (`Verified`, `Trusted`, `Untrusted`, `Anonymous`, plaintext), with the
//! TLS engine that carried it (rustls, or the legacy engine: OpenSSL), and
//! the per-connection log line that says so. Summary lines name the
//! mechanism that verified a connection: `verified(dane)`,
//! `trusted(dane)`, `verified(sts)`, and `legacy` when OpenSSL carried it.
//! It records what the handshake and the verifier found; it decides
//! nothing.

use std::fmt;

use super::dane;

/// Which TLS engine carried a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// rustls, the primary engine.
    Rustls,
    /// OpenSSL, for servers rustls has nothing in common with
    /// ([`super::legacy`]).
    Legacy,
}

/// The negotiated parameters of a TLS connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub engine: Engine,
    /// `TLSv1.3`, `TLSv1.2`, ...
    pub protocol: String,
    /// rustls's or OpenSSL's name of the cipher suite.
    pub cipher: String,
}

impl Session {
    /// `TLSv1.3 TLS13_AES_256_GCM_SHA384`, or with the legacy engine
    /// `legacy TLSv1.2 ECDHE-RSA-AES256-SHA`: the summary line's words.
    fn words(&self) -> String {
        match self.engine {
            Engine::Rustls => format!("{} {}", self.protocol, self.cipher),
            Engine::Legacy => format!("legacy {} {}", self.protocol, self.cipher),
        }
    }

    /// `TLSv1.3 with cipher X`, `TLSv1.2 with cipher X by the legacy TLS
    /// engine (OpenSSL)`: the connection line's words.
    fn phrase(&self) -> String {
        let by = match self.engine {
            Engine::Rustls => "",
            Engine::Legacy => " by the legacy TLS engine (OpenSSL)",
        };
        format!("{} with cipher {}{by}", self.protocol, self.cipher)
    }
}

/// How an outbound connection was protected, in Postfix's vocabulary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsState {
    /// Plaintext.
    None,
    /// TLS without a server certificate (anonymous cipher suites, which
    /// only the legacy engine negotiates).
    Anonymous(Session),
    /// TLS, certificate not authenticated.
    Untrusted(Session),
    /// DANE matched, but the MX records were not DNSSEC-signed, so the
    /// host name itself is not authenticated.
    Trusted { session: Session, matched: String },
    /// DANE matched and the host name came from a secure MX RRset (or a
    /// static route).
    Verified { session: Session, matched: String },
    /// MTA-STS: the certificate is valid for the MX host name under the
    /// WebPKI, and the host is allowed by the domain's policy.
    VerifiedSts { session: Session, matched: String },
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
        TlsState::Untrusted(Session {
            engine: Engine::Rustls,
            protocol,
            cipher,
        })
    }

    /// The state of an established legacy (OpenSSL) connection.
    pub fn legacy(n: &super::legacy::Negotiated) -> TlsState {
        let session = Session {
            engine: Engine::Legacy,
            protocol: n.protocol.clone(),
            cipher: n.cipher.clone(),
        };
        if n.anonymous {
            TlsState::Anonymous(session)
        } else {
            TlsState::Untrusted(session)
        }
    }

    pub fn is_tls(&self) -> bool {
        !matches!(self, TlsState::None)
    }

    /// The negotiated parameters; none for plaintext.
    pub fn session(&self) -> Option<&Session> {
        match self {
            TlsState::None => None,
            TlsState::Anonymous(s)
            | TlsState::Untrusted(s)
            | TlsState::Trusted { session: s, .. }
            | TlsState::Verified { session: s, .. }
            | TlsState::VerifiedSts { session: s, .. } => Some(s),
        }
    }

    /// The protocol and cipher suite of a TLS connection; none for
    /// plaintext.
    pub fn protocol_and_cipher(&self) -> Option<(&str, &str)> {
        self.session()
            .map(|s| (s.protocol.as_str(), s.cipher.as_str()))
    }

    /// The same connection, authenticated by DANE: `Verified` when the
    /// MX host name is authenticated, `Trusted` otherwise.
    pub fn authenticated(&self, mx_secure: bool, matched: &dane::DaneMatch) -> TlsState {
        let Some(session) = self.session().cloned() else {
            return TlsState::None;
        };
        let matched = matched.to_string();
        if mx_secure {
            TlsState::Verified { session, matched }
        } else {
            TlsState::Trusted { session, matched }
        }
    }

    /// The same connection, its certificate valid under the WebPKI for
    /// an MTA-STS policy (`matched` says for what).
    pub fn sts_verified(&self, matched: String) -> TlsState {
        let Some(session) = self.session().cloned() else {
            return TlsState::None;
        };
        TlsState::VerifiedSts { session, matched }
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
    /// DANE-EE 3 1 1 2c8a4f01… at depth 0", with "by the legacy TLS engine
    /// (OpenSSL)" after the cipher when OpenSSL carried it.
    pub fn connection_line(&self, peer: &impl fmt::Display) -> String {
        match self {
            TlsState::None => format!("plaintext connection to {peer}"),
            TlsState::Anonymous(s) | TlsState::Untrusted(s) => format!(
                "{} TLS connection established to {peer}: {}",
                self.label(),
                s.phrase()
            ),
            TlsState::Trusted { session, matched }
            | TlsState::Verified { session, matched }
            | TlsState::VerifiedSts { session, matched } => format!(
                "{} TLS connection established to {peer}: {}; matched {matched}",
                self.label(),
                session.phrase()
            ),
        }
    }
}

impl fmt::Display for TlsState {
    /// The summary line's `tls=` value: `none`, `untrusted TLSv1.3 X`,
    /// `verified(dane) legacy TLSv1.2 ECDHE-RSA-AES256-SHA (DANE-EE 3 1 1 …)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsState::None => f.write_str("none"),
            TlsState::Anonymous(s) => write!(f, "anonymous {}", s.words()),
            TlsState::Untrusted(s) => write!(f, "untrusted {}", s.words()),
            TlsState::Trusted { session, matched } => {
                write!(f, "trusted(dane) {} ({matched})", session.words())
            }
            TlsState::Verified { session, matched } => {
                write!(f, "verified(dane) {} ({matched})", session.words())
            }
            TlsState::VerifiedSts { session, matched } => {
                write!(f, "verified(sts) {} ({matched})", session.words())
            }
        }
    }
}
