//! Outbound TLS: every rustls type danegate uses lives below this module.
//!
//! - [`config`]: the crypto provider and the one builder every client
//!   configuration comes from (the relay's opportunistic one, the
//!   per-connection DANE one, the `check` command's probes).
//! - The certificate verifiers, which differ only in how they judge the
//!   presented chain: [`opportunistic`] (any chain, no authentication:
//!   Postfix's "Untrusted"), [`dane`] (the chain must match the host's
//!   TLSA records, RFC 7672) and [`record`] (any chain, remembered for the
//!   `check` command to judge afterwards).
//! - [`webpki`]: WebPKI validation for MTA-STS (the trusted roots, the
//!   HTTPS configuration of policy fetches, the MX certificate verifier).
//! - [`tlsa`]: TLSA record semantics (usability, what a record's data is
//!   for a certificate or key).
//! - [`stream`]: the STARTTLS stream and its handshake with either TLS
//!   engine; [`state`]: how a connection was protected (and by which
//!   engine), for logs and metrics.
//! - The legacy engine: [`legacy`] (OpenSSL, for servers rustls has nothing
//!   in common with, judged by the same verifiers), [`fallback`] (when a
//!   failed rustls handshake may be repeated with it), [`keys`] (the key
//!   types rustls with *ring* verifies), [`chain_algs`] (the signature
//!   algorithms certificate paths are verified with, by both engines),
//!   [`version`] (protocol versions as `[tls]` names them).
//!
//! Every verifier delegates the handshake signature checks to the crypto
//! provider, always: a server must prove it holds the key of the
//! certificate it presents. Their signature methods come from one macro.
//!
//! What it does not do: no DNS (the records come from the caller, already
//! known to be secure), no server side (danegate only listens in
//! plaintext; the peers that need TLS are its destinations).

/// The handshake-signature methods of a [`ServerCertVerifier`] whose
/// struct has a `provider: Arc<CryptoProvider>` field: every signature
/// (TLS 1.2 and 1.3) is checked with the provider's algorithms, so a
/// server must prove it holds the key of the certificate it presents.
/// A signature that fails with a key type the provider does not verify
/// (RSA below 2048 bits, P-521, ...) is reported as
/// [`keys::UnsupportedKey`], not as a bad signature: the legacy engine
/// can check it ([`fallback`]). Every verifier uses this one definition.
///
/// `handshake_signatures_verified!(offering allows)` offers (in the
/// ClientHello) only the schemes for which the verifier's method
/// `allows(&self, SignatureScheme) -> bool` is true; the signatures are
/// still checked by the provider.
///
/// [`ServerCertVerifier`]: rustls::client::danger::ServerCertVerifier
macro_rules! handshake_signatures_verified {
    () => {
        $crate::tls::handshake_signatures_verified!(@verify);

        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.provider
                .signature_verification_algorithms
                .supported_schemes()
        }
    };
    (offering $allows:ident) => {
        $crate::tls::handshake_signatures_verified!(@verify);

        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.provider
                .signature_verification_algorithms
                .supported_schemes()
                .into_iter()
                .filter(|scheme| self.$allows(*scheme))
                .collect()
        }
    };
    (@verify) => {
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
    };
}
pub(crate) use handshake_signatures_verified;

pub mod chain_algs;
pub mod config;
pub mod dane;
pub mod fallback;
pub mod keys;
pub mod legacy;
pub mod opportunistic;
pub mod record;
pub mod state;
pub mod stream;
#[cfg(test)]
pub(crate) mod testpki;
pub mod tlsa;
pub mod version;
pub mod webpki;

pub use config::{client_config, dane_config, opportunistic_config, probe_config, provider, Keys};
pub use opportunistic::UnauthenticatedVerifier;
/// The certificate and key data types (DER, PEM sections), for code
/// outside this module that handles certificates as data.
pub use rustls::pki_types;
pub use rustls::pki_types::{CertificateDer, UnixTime};
pub use rustls::ClientConfig;
pub use state::{Engine, Session, TlsState};
