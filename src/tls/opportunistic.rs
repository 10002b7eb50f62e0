//! The opportunistic certificate verifier: encryption without
//! authentication, as Postfix's "may" and "encrypt" levels do. Any chain
//! is accepted unjudged; the handshake signatures are still verified
//! against the presented leaf key by the crypto provider.

use std::sync::Arc;

use rustls::client::danger::{ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

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

    super::handshake_signatures_verified!();
}
