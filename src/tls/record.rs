//! The recording certificate verifier of the `check` command: it accepts
//! any chain (so the chain is always seen, whatever it is) and remembers
//! it, to be judged afterwards with the same pure DANE check the relay's
//! verifier uses. It offers only the signature schemes of its [`Keys`], so
//! a server with an RSA and an ECDSA certificate can be made to present
//! either. The handshake signatures are verified by the crypto provider,
//! as in every verifier.
//!
//! Not for mail: a handshake made with it authenticates nothing.

use std::sync::{Arc, Mutex};

use rustls::client::danger::{ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::SignatureScheme;

use super::config::{provider, Keys};

/// Any chain accepted (handshake signatures always verified), only the
/// schemes of `keys` offered, the presented chain remembered.
#[derive(Debug)]
pub struct Recorder {
    provider: Arc<CryptoProvider>,
    keys: Keys,
    chain: Mutex<Vec<CertificateDer<'static>>>,
}

impl Recorder {
    pub fn new(keys: Keys) -> Recorder {
        Recorder {
            provider: provider(),
            keys,
            chain: Mutex::new(Vec::new()),
        }
    }

    /// The key types the handshake offers.
    pub fn keys(&self) -> Keys {
        self.keys
    }

    /// The chain the server presented, leaf first (empty when it
    /// presented none).
    pub fn chain(&self) -> Vec<CertificateDer<'static>> {
        self.chain.lock().map(|c| c.clone()).unwrap_or_default()
    }

    fn offers(&self, scheme: SignatureScheme) -> bool {
        self.keys.allows(scheme)
    }
}

impl ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Ok(mut chain) = self.chain.lock() {
            *chain = std::iter::once(end_entity)
                .chain(intermediates)
                .map(|c| c.clone().into_owned())
                .collect();
        }
        // Judged afterwards by the caller, from `chain()`.
        Ok(ServerCertVerified::assertion())
    }

    super::handshake_signatures_verified!(offering offers);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::{probe_config, UnauthenticatedVerifier};

    #[test]
    fn probe_schemes_are_only_those_of_the_key_type() {
        let all = UnauthenticatedVerifier::new(crate::tls::provider()).supported_verify_schemes();
        let rsa = Recorder::new(Keys::Rsa).supported_verify_schemes();
        let ecdsa = Recorder::new(Keys::Ecdsa).supported_verify_schemes();
        assert_eq!(Recorder::new(Keys::Any).supported_verify_schemes(), all);
        assert!(rsa.contains(&SignatureScheme::RSA_PSS_SHA256), "{rsa:?}");
        assert!(
            rsa.iter().all(|s| format!("{s:?}").starts_with("RSA_")),
            "{rsa:?}"
        );
        assert!(
            ecdsa.contains(&SignatureScheme::ECDSA_NISTP256_SHA256),
            "{ecdsa:?}"
        );
        assert!(
            ecdsa.iter().all(|s| format!("{s:?}").starts_with("ECDSA_")),
            "{ecdsa:?}"
        );
        // The TLS 1.2 suites follow: ECDHE_RSA ones for RSA only.
        let config = probe_config(Arc::new(Recorder::new(Keys::Rsa)));
        let suites: Vec<String> = config
            .crypto_provider()
            .cipher_suites
            .iter()
            .map(|s| format!("{:?}", s.suite()))
            .collect();
        assert!(suites.iter().any(|s| s.contains("ECDHE_RSA")), "{suites:?}");
        assert!(!suites.iter().any(|s| s.contains("ECDSA")), "{suites:?}");
        assert!(suites.iter().any(|s| s.starts_with("TLS13_")), "{suites:?}");
        // No resumption: every handshake must show its certificate.
        let resumption = format!("{:?}", config.resumption);
        assert!(
            resumption.contains("NoClientSessionStorage"),
            "{resumption}"
        );
    }
}
