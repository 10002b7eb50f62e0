//! Outbound TLS: the rustls client configuration and the certificate
//! verifier slot.
//!
//! Every verifier here delegates the handshake signature checks to the
//! crypto provider, always: a server must prove it holds the key of the
//! certificate it presents. What differs between verifiers is only how the
//! certificate chain is judged. This release has the opportunistic one
//! (any chain, no authentication: Postfix's "Untrusted"); the DANE verifier
//! plugs into the same slot.

pub mod dane;

use std::fmt;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};

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

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
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
        }
    }
}
