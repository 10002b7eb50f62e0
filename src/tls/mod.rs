//! Outbound TLS: the rustls client configuration and the certificate
//! verifier slot.
//!
//! Every verifier here delegates the handshake signature checks to the
//! crypto provider, always: a server must prove it holds the key of the
//! certificate it presents. What differs between verifiers is only how the
//! certificate chain is judged: the opportunistic one here (any chain, no
//! authentication: Postfix's "Untrusted"), the DANE one in [`dane`]. The
//! signature methods of both come from one macro.

/// The handshake-signature methods of a [`ServerCertVerifier`] whose
/// struct has a `provider: Arc<CryptoProvider>` field: every signature
/// (TLS 1.2 and 1.3) is checked with the provider's algorithms, so a
/// server must prove it holds the key of the certificate it presents.
/// A signature that fails with a key type the provider does not verify
/// (RSA below 2048 bits, P-521, ...) is reported as
/// [`keys::UnsupportedKey`], not as a bad signature: the legacy engine
/// can check it ([`fallback`]). Both verifiers use this one definition.
macro_rules! handshake_signatures_verified {
    () => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &rustls::pki_types::CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                message,
                cert,
                dss,
                &self.provider.signature_verification_algorithms,
            )
            .map_err(|e| $crate::tls::keys::unsupported_or(cert, e))
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &rustls::pki_types::CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                message,
                cert,
                dss,
                &self.provider.signature_verification_algorithms,
            )
            .map_err(|e| $crate::tls::keys::unsupported_or(cert, e))
        }

        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.provider
                .signature_verification_algorithms
                .supported_schemes()
        }
    };
}
pub(crate) use handshake_signatures_verified;

pub mod chain_algs;
pub mod dane;
pub mod fallback;
pub mod keys;
pub mod legacy;
pub mod stream;
#[cfg(test)]
pub(crate) mod testpki;
pub mod tlsa;
pub mod version;

use std::fmt;
use std::sync::Arc;

use rustls::client::danger::{ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
pub use rustls::pki_types::CertificateDer;
use rustls::pki_types::{ServerName, UnixTime};
pub use rustls::ClientConfig;

/// The crypto provider danegate uses everywhere.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Accepts any certificate chain without authenticating it, but verifies
/// the handshake signatures against the presented leaf key.
#[derive(Debug)]
pub struct UnauthenticatedVerifier {
    provider: Arc<CryptoProvider>,
}

impl UnauthenticatedVerifier {
    pub fn new(provider: Arc<CryptoProvider>) -> Self {
        UnauthenticatedVerifier { provider }
    }
}

impl ServerCertVerifier for UnauthenticatedVerifier {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // Opportunistic TLS: encryption without authentication, as
        // Postfix's "may"/"encrypt" levels do.
        Ok(ServerCertVerified::assertion())
    }

    handshake_signatures_verified!();
}

/// A client configuration (TLS 1.2 and 1.3) around a verifier. Session
/// resumption uses rustls's in-memory store, shared by every connection
/// made with the returned configuration.
pub fn client_config(verifier: Arc<dyn ServerCertVerifier>) -> Arc<ClientConfig> {
    let config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .expect("ring supports TLS 1.2 and 1.3")
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Arc::new(config)
}

/// A configuration for one DANE connection. Session resumption is off:
/// a resumed session skips certificate verification, and every DANE
/// connection must match its TLSA records afresh (they may have changed).
pub fn dane_config(verifier: Arc<dane::DaneVerifier>) -> Arc<ClientConfig> {
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .expect("ring supports TLS 1.2 and 1.3")
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.resumption = rustls::client::Resumption::disabled();
    Arc::new(config)
}

/// The opportunistic client configuration.
pub fn opportunistic_config() -> Arc<ClientConfig> {
    client_config(Arc::new(UnauthenticatedVerifier::new(provider())))
}

/// Which TLS engine carried a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// rustls, the primary engine.
    Rustls,
    /// OpenSSL, for servers rustls has nothing in common with
    /// ([`legacy`]).
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
    pub fn legacy(n: &legacy::Negotiated) -> TlsState {
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
            | TlsState::Verified { session: s, .. } => Some(s),
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

    /// Postfix's word for the connection: `Verified`, `Trusted`,
    /// `Untrusted`, `Anonymous`, or none for plaintext.
    pub fn label(&self) -> &'static str {
        match self {
            TlsState::None => "plaintext",
            TlsState::Anonymous { .. } => "Anonymous",
            TlsState::Untrusted { .. } => "Untrusted",
            TlsState::Trusted { .. } => "Trusted",
            TlsState::Verified { .. } => "Verified",
        }
    }

    /// The per-connection log line, e.g. "Verified TLS connection
    /// established to mx[192.0.2.1]:25: TLSv1.3 with cipher X; matched
    /// DANE-EE 3 1 1 2c8a4f01… at depth 0".
    pub fn connection_line(&self, peer: &impl fmt::Display) -> String {
        match self {
            TlsState::None => format!("plaintext connection to {peer}"),
            TlsState::Anonymous(s) | TlsState::Untrusted(s) => format!(
                "{} TLS connection established to {peer}: {}",
                self.label(),
                s.phrase()
            ),
            TlsState::Trusted { session, matched } | TlsState::Verified { session, matched } => {
                format!(
                    "{} TLS connection established to {peer}: {}; matched {matched}",
                    self.label(),
                    session.phrase()
                )
            }
        }
    }
}

impl fmt::Display for TlsState {
    /// The summary line's `tls=` value: `none`, `untrusted TLSv1.3 X`,
    /// `verified legacy TLSv1.2 ECDHE-RSA-AES256-SHA (DANE-EE 3 1 1 …)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsState::None => f.write_str("none"),
            TlsState::Anonymous(s) => write!(f, "anonymous {}", s.words()),
            TlsState::Untrusted(s) => write!(f, "untrusted {}", s.words()),
            TlsState::Trusted { session, matched } => {
                write!(f, "trusted {} ({matched})", session.words())
            }
            TlsState::Verified { session, matched } => {
                write!(f, "verified {} ({matched})", session.words())
            }
        }
    }
}
