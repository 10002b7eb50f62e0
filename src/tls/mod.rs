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

    /// The same connection, authenticated by DANE: `Verified` when the
    /// MX host name is authenticated, `Trusted` otherwise.
    pub fn authenticated(&self, mx_secure: bool, matched: &dane::DaneMatch) -> TlsState {
        let (protocol, cipher) = match self {
            TlsState::Untrusted { protocol, cipher }
            | TlsState::Anonymous { protocol, cipher }
            | TlsState::Trusted {
                protocol, cipher, ..
            }
            | TlsState::Verified {
                protocol, cipher, ..
            } => (protocol.clone(), cipher.clone()),
            TlsState::None => return TlsState::None,
        };
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
            } => write!(f, "trusted {protocol} {cipher} ({matched})"),
            TlsState::Verified {
                protocol,
                cipher,
                matched,
            } => write!(f, "verified {protocol} {cipher} ({matched})"),
        }
    }
}
