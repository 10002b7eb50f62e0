//! The crypto provider and the one rustls client configuration builder:
//! every outbound TLS configuration in danegate comes from one function
//! (`build`), so they differ only where they must.
//!
//! - [`opportunistic_config`]: the relay's shared configuration for hosts
//!   without DANE (any chain; session resumption on).
//! - [`dane_config`]: one configuration per DANE connection, around its
//!   own [`DaneVerifier`]; resumption off.
//! - [`sts_config`] and [`https_config`]: MTA-STS's MX connections and
//!   policy fetches, around WebPKI verifiers (`super::webpki`).
//! - [`probe_config`]: the `check` command's handshakes, around a
//!   [`Recorder`]; resumption off, and for the key probes only the
//!   signature schemes and TLS 1.2 suites of one key type ([`Keys`]).
//!
//! All offer TLS 1.3 and 1.2 and no client certificate. The verifier
//! decides how the chain is judged; none skips the handshake signatures.
//!
//! [`public_key_of`] is the provider's other service: the public half of
//! a private key (for `tlsa generate --key`).

use std::sync::Arc;

use rustls::client::danger::ServerCertVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::PrivateKeyDer;
use rustls::{ClientConfig, SignatureAlgorithm, SignatureScheme};

use super::dane::DaneVerifier;
use super::record::Recorder;
use super::version::TlsVersion;
use super::UnauthenticatedVerifier;

/// The crypto provider danegate uses everywhere.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The SubjectPublicKeyInfo (DER) of a private key, as the crypto
/// provider derives it (RSA, ECDSA P-256/P-384, Ed25519): an error when
/// the provider cannot use the key, none when it cannot derive the
/// public half.
pub fn public_key_of(key: &PrivateKeyDer<'_>) -> Result<Option<Vec<u8>>, rustls::Error> {
    let signing = rustls::crypto::ring::sign::any_supported_type(key)?;
    Ok(signing.public_key().map(|spki| spki.as_ref().to_vec()))
}

/// Which signature algorithms a handshake offers: all of them, or only
/// RSA or only ECDSA ones (a server with keys of both kinds then has to
/// present the other certificate).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keys {
    Any,
    Rsa,
    Ecdsa,
}

impl Keys {
    /// "any", "RSA", "ECDSA".
    pub fn name(self) -> &'static str {
        match self {
            Keys::Any => "any",
            Keys::Rsa => "RSA",
            Keys::Ecdsa => "ECDSA",
        }
    }

    /// Whether a handshake limited to these keys offers `scheme`.
    pub fn allows(self, scheme: SignatureScheme) -> bool {
        use SignatureScheme as S;
        match self {
            Keys::Any => true,
            Keys::Rsa => matches!(
                scheme,
                S::RSA_PKCS1_SHA1
                    | S::RSA_PKCS1_SHA256
                    | S::RSA_PKCS1_SHA384
                    | S::RSA_PKCS1_SHA512
                    | S::RSA_PSS_SHA256
                    | S::RSA_PSS_SHA384
                    | S::RSA_PSS_SHA512
            ),
            Keys::Ecdsa => matches!(
                scheme,
                S::ECDSA_SHA1_Legacy
                    | S::ECDSA_NISTP256_SHA256
                    | S::ECDSA_NISTP384_SHA384
                    | S::ECDSA_NISTP521_SHA512
            ),
        }
    }

    /// The TLS 1.2 suites' signature algorithm (TLS 1.3 suites name none).
    fn algorithm(self) -> Option<SignatureAlgorithm> {
        match self {
            Keys::Any => None,
            Keys::Rsa => Some(SignatureAlgorithm::RSA),
            Keys::Ecdsa => Some(SignatureAlgorithm::ECDSA),
        }
    }
}

/// Whether the connections made with one configuration may resume each
/// other's sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resume {
    /// rustls's in-memory session store, shared by every connection made
    /// with the configuration.
    Shared,
    /// Every handshake is a full one: a resumed session skips certificate
    /// verification and shows no certificate.
    Never,
}

/// The protocol versions rustls offers above a floor (`[tls]
/// min_version`): TLS 1.3 and 1.2, or TLS 1.3 alone. rustls speaks
/// nothing older; a floor below TLS 1.2 matters to the legacy engine only.
fn versions(floor: TlsVersion) -> &'static [&'static rustls::SupportedProtocolVersion] {
    static TLS13_ONLY: [&rustls::SupportedProtocolVersion; 1] = [&rustls::version::TLS13];
    static TLS13_AND_12: [&rustls::SupportedProtocolVersion; 2] =
        [&rustls::version::TLS13, &rustls::version::TLS12];
    if floor >= TlsVersion::Tls1_3 {
        &TLS13_ONLY
    } else {
        &TLS13_AND_12
    }
}

/// The one builder: TLS 1.3 and 1.2 (or 1.3 alone above a floor of 1.3)
/// around `verifier`, TLS 1.2 suites limited to those signing with
/// `keys`' algorithm, no client certificate.
fn build(
    verifier: Arc<dyn ServerCertVerifier>,
    keys: Keys,
    resume: Resume,
    floor: TlsVersion,
) -> Arc<ClientConfig> {
    let mut provider = (*provider()).clone();
    if let Some(alg) = keys.algorithm() {
        provider
            .cipher_suites
            .retain(|s| s.usable_for_signature_algorithm(alg));
    }
    let mut config = ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(versions(floor))
        .expect("ring supports TLS 1.2 and 1.3")
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    if resume == Resume::Never {
        config.resumption = rustls::client::Resumption::disabled();
    }
    Arc::new(config)
}

/// A client configuration (TLS 1.2 and 1.3) around a verifier. Session
/// resumption uses rustls's in-memory store, shared by every connection
/// made with the returned configuration.
pub fn client_config(
    verifier: Arc<dyn ServerCertVerifier>,
    floor: TlsVersion,
) -> Arc<ClientConfig> {
    build(verifier, Keys::Any, Resume::Shared, floor)
}

/// The configuration for TLS without authentication, from `floor` on:
/// opportunistic TLS (`[tls] opportunistic_min_version`) or TLS required
/// without authentication (`[tls] min_version`).
pub fn opportunistic_config(floor: TlsVersion) -> Arc<ClientConfig> {
    client_config(Arc::new(UnauthenticatedVerifier::new(provider())), floor)
}

/// A configuration for one DANE connection, from `floor` (`[tls]
/// min_version`) on. Session resumption is off: a resumed session skips
/// certificate verification, and every DANE connection must match its
/// TLSA records afresh (they may have changed).
pub fn dane_config(verifier: Arc<DaneVerifier>, floor: TlsVersion) -> Arc<ClientConfig> {
    build(verifier, Keys::Any, Resume::Never, floor)
}

/// A configuration for one MTA-STS connection around its verifier
/// (`webpki::StsVerifier`): TLS 1.2 and 1.3 (RFC 8461 §4.2 asks for 1.2
/// or later; TLS 1.3 alone above a `floor` of 1.3), no session resumption
/// (a resumed session skips the certificate check).
pub fn sts_config(
    verifier: Arc<super::webpki::StsVerifier>,
    floor: TlsVersion,
) -> Arc<ClientConfig> {
    build(
        verifier,
        Keys::Any,
        Resume::Never,
        floor.max(TlsVersion::Tls1_2),
    )
}

/// The configuration of HTTPS policy fetches around a WebPKI verifier
/// (by value: the HTTP client takes ownership); resumption as rustls
/// keeps it per configuration.
pub fn https_config(verifier: Arc<dyn ServerCertVerifier>) -> ClientConfig {
    Arc::unwrap_or_clone(build(
        verifier,
        Keys::Any,
        Resume::Shared,
        TlsVersion::Tls1_2,
    ))
}

/// A configuration for one handshake of the `check` command: the
/// recorder's key types only, no session resumption (a resumed session
/// shows no certificate).
pub fn probe_config(recorder: Arc<Recorder>) -> Arc<ClientConfig> {
    let keys = recorder.keys();
    build(recorder, keys, Resume::Never, TlsVersion::Tls1_2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::dane::ReferenceIds;

    fn suites(config: &ClientConfig) -> Vec<String> {
        config
            .crypto_provider()
            .cipher_suites
            .iter()
            .map(|s| format!("{:?}", s.suite()))
            .collect()
    }

    #[test]
    fn a_floor_of_tls13_offers_tls13_alone() {
        let offered = |floor| {
            versions(floor)
                .iter()
                .map(|v| format!("{:?}", v.version))
                .collect::<Vec<_>>()
        };
        assert_eq!(offered(TlsVersion::Tls1_3), ["TLSv1_3"]);
        for floor in [TlsVersion::Tls1_0, TlsVersion::Tls1_1, TlsVersion::Tls1_2] {
            assert_eq!(offered(floor), ["TLSv1_3", "TLSv1_2"]);
        }
    }

    #[test]
    fn configurations_differ_only_where_they_must() {
        let all: Vec<String> = provider()
            .cipher_suites
            .iter()
            .map(|s| format!("{:?}", s.suite()))
            .collect();
        let names = ReferenceIds {
            tlsa_base: "mx.example".into(),
            mx_host: "mx.example".into(),
            nexthop: "example".into(),
        };
        let opportunistic = opportunistic_config(TlsVersion::Tls1_0);
        let dane = dane_config(
            Arc::new(DaneVerifier::new(Vec::new(), 25, names, provider())),
            TlsVersion::Tls1_2,
        );
        let any = probe_config(Arc::new(Recorder::new(Keys::Any)));
        let ecdsa = probe_config(Arc::new(Recorder::new(Keys::Ecdsa)));
        for config in [&opportunistic, &dane, &any] {
            assert_eq!(suites(config), all);
        }
        let ecdsa_suites = suites(&ecdsa);
        assert!(ecdsa_suites.iter().any(|s| s.contains("ECDHE_ECDSA")));
        assert!(!ecdsa_suites.iter().any(|s| s.contains("_RSA_")));
        // Only the relay's opportunistic configuration resumes sessions.
        let resumption = |c: &ClientConfig| format!("{:?}", c.resumption);
        assert!(
            !resumption(&opportunistic).contains("NoClientSessionStorage"),
            "{}",
            resumption(&opportunistic)
        );
        for config in [&dane, &any, &ecdsa] {
            assert!(
                resumption(config).contains("NoClientSessionStorage"),
                "{}",
                resumption(config)
            );
        }
    }
}
