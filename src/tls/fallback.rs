//! When a failed rustls handshake may be repeated with the legacy engine
//! (OpenSSL): only when it failed for lack of a common protocol version,
//! cipher suite, key exchange or signature algorithm. Never after the
//! verifier refused the certificate, a handshake signature failed with a
//! key rustls supports, a timeout, or a lost connection: those are verdicts
//! on the server or the path, and the legacy engine would only repeat them
//! with the same verifier.
//!
//! Why this cannot weaken a connection: an attacker who forces the rustls
//! handshake to fail (an injected alert) only makes danegate ask again with
//! OpenSSL, which offers TLS 1.3 and AEAD suites first, judges the chain
//! with the same verifier and checks the same signatures; the second
//! handshake is protected by its own Finished messages, so its parameters
//! are the best both sides support. What the attacker gains is OpenSSL
//! instead of rustls, nothing else.

use std::fmt;

use rustls::{AlertDescription, Error, PeerIncompatible, PeerMisbehaved};

use super::keys::{KeyType, UnsupportedKey};

/// Why rustls could not talk to the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mismatch {
    /// The server offers no TLS version rustls speaks (1.2, 1.3).
    Version,
    /// No cipher suite, key exchange group or signature scheme in common
    /// (or the server chose one rustls never offered).
    Parameters,
    /// The server's key is of a type rustls with *ring* does not verify.
    Key(KeyType),
}

impl Mismatch {
    /// The `reason` label of `danegate_tls_fallbacks_total`.
    pub fn metric_word(&self) -> &'static str {
        match self {
            Mismatch::Version => "version",
            Mismatch::Parameters => "parameters",
            Mismatch::Key(_) => "key",
        }
    }
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mismatch::Version => f.write_str(
                "no TLS version in common with the server (it offers none of those the primary engine speaks, TLSv1.2 and TLSv1.3)",
            ),
            Mismatch::Parameters => f.write_str(
                "no TLS version or cipher suite in common with the server (the primary engine offers TLSv1.2 and TLSv1.3 with ECDHE and AEAD suites only)",
            ),
            Mismatch::Key(k) => write!(
                f,
                "server key type {k} is not supported by the primary TLS engine"
            ),
        }
    }
}

/// The mismatch behind a failed rustls handshake, if that is what it was.
pub fn mismatch(e: &Error) -> Option<Mismatch> {
    match e {
        Error::AlertReceived(AlertDescription::ProtocolVersion) => Some(Mismatch::Version),
        Error::AlertReceived(
            AlertDescription::HandshakeFailure | AlertDescription::InsufficientSecurity,
        ) => Some(Mismatch::Parameters),
        Error::PeerIncompatible(
            PeerIncompatible::ServerDoesNotSupportTls12Or13
            | PeerIncompatible::ServerTlsVersionIsDisabledByOurConfig,
        ) => Some(Mismatch::Version),
        Error::PeerIncompatible(PeerIncompatible::ServerRejectedEncryptedClientHello(_)) => None,
        Error::PeerIncompatible(_) => Some(Mismatch::Parameters),
        Error::PeerMisbehaved(
            PeerMisbehaved::SelectedUnofferedCipherSuite
            | PeerMisbehaved::SelectedUnofferedKxGroup
            | PeerMisbehaved::SelectedUnusableCipherSuiteForVersion
            | PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme,
        ) => Some(Mismatch::Parameters),
        Error::Other(other) => other
            .0
            .downcast_ref::<UnsupportedKey>()
            .map(|u| Mismatch::Key(u.0.clone())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rustls::{CertificateError, OtherError};

    use super::*;

    /// Every kind of failure the rules name, and what it means.
    #[test]
    fn truth_table() {
        let key = |k: KeyType| Error::Other(OtherError(Arc::new(UnsupportedKey(k))));
        let p521 = KeyType::Ec { curve: "P-521" };
        let table: Vec<(Error, Option<Mismatch>)> = vec![
            (
                Error::AlertReceived(AlertDescription::ProtocolVersion),
                Some(Mismatch::Version),
            ),
            (
                Error::AlertReceived(AlertDescription::HandshakeFailure),
                Some(Mismatch::Parameters),
            ),
            (
                Error::AlertReceived(AlertDescription::InsufficientSecurity),
                Some(Mismatch::Parameters),
            ),
            (
                Error::PeerIncompatible(PeerIncompatible::ServerDoesNotSupportTls12Or13),
                Some(Mismatch::Version),
            ),
            (
                Error::PeerIncompatible(PeerIncompatible::NoCipherSuitesInCommon),
                Some(Mismatch::Parameters),
            ),
            (
                Error::PeerIncompatible(PeerIncompatible::NoKxGroupsInCommon),
                Some(Mismatch::Parameters),
            ),
            (
                Error::PeerMisbehaved(PeerMisbehaved::SelectedUnofferedCipherSuite),
                Some(Mismatch::Parameters),
            ),
            (
                Error::PeerMisbehaved(PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme),
                Some(Mismatch::Parameters),
            ),
            (key(p521.clone()), Some(Mismatch::Key(p521))),
            // Verdicts on the server: never retried.
            (
                Error::InvalidCertificate(CertificateError::BadSignature),
                None,
            ),
            (
                Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(
                    crate::tls::dane::DaneFailure::NoMatch {
                        tlsa_name: "_25._tcp.mx".into(),
                    },
                )))),
                None,
            ),
            (Error::AlertReceived(AlertDescription::BadCertificate), None),
            (Error::AlertReceived(AlertDescription::DecryptError), None),
            (Error::AlertReceived(AlertDescription::InternalError), None),
            (Error::DecryptError, None),
            (
                Error::PeerMisbehaved(PeerMisbehaved::TooMuchEarlyDataReceived),
                None,
            ),
            (Error::General("oops".into()), None),
        ];
        for (e, want) in table {
            assert_eq!(mismatch(&e), want, "{e:?}");
        }
    }

    #[test]
    fn texts() {
        assert_eq!(
            Mismatch::Key(KeyType::Rsa { bits: 1024 }).to_string(),
            "server key type RSA 1024 is not supported by the primary TLS engine"
        );
        assert!(Mismatch::Parameters
            .to_string()
            .starts_with("no TLS version or cipher suite in common with the server"));
    }

    /// rustls itself against OpenSSL servers with each setting: the error
    /// it reports is classified as the table says; where rustls can talk,
    /// nothing is a mismatch.
    #[tokio::test]
    async fn rustls_meets_openssl_servers() {
        use crate::tls::testpki::{self, ServerTls, TestKey};
        use openssl::ssl::SslVersion;

        struct Row {
            key: TestKey,
            max: Option<SslVersion>,
            ciphers: Option<&'static str>,
            forged: bool,
            want: Result<(), Option<Mismatch>>,
        }
        let row = |key, max, ciphers, want| Row {
            key,
            max,
            ciphers,
            forged: false,
            want,
        };
        let t12 = Some(SslVersion::TLS1_2);
        let rows = [
            row(TestKey::Ec("P-256"), None, None, Ok(())),
            row(
                TestKey::Rsa(2048),
                t12,
                Some("ECDHE-RSA-AES256-GCM-SHA384"),
                Ok(()),
            ),
            row(
                TestKey::Rsa(2048),
                t12,
                Some("ECDHE-RSA-AES256-SHA"),
                Err(Some(Mismatch::Parameters)),
            ),
            row(
                TestKey::Rsa(2048),
                t12,
                Some("DHE-RSA-AES256-GCM-SHA384"),
                Err(Some(Mismatch::Parameters)),
            ),
            row(
                TestKey::Rsa(2048),
                t12,
                Some("aNULL:@SECLEVEL=0"),
                Err(Some(Mismatch::Parameters)),
            ),
            row(
                TestKey::Rsa(2048),
                Some(SslVersion::TLS1_1),
                None,
                Err(Some(Mismatch::Version)),
            ),
            row(
                TestKey::Ec("P-521"),
                None,
                None,
                Err(Some(Mismatch::Parameters)),
            ),
            row(
                TestKey::Ec("P-521"),
                t12,
                None,
                // OpenSSL matches the curve to the signature scheme in
                // TLS 1.2 too: no scheme in common.
                Err(Some(Mismatch::Parameters)),
            ),
            row(
                TestKey::Rsa(1024),
                None,
                None,
                Err(Some(Mismatch::Key(KeyType::Rsa { bits: 1024 }))),
            ),
            row(
                TestKey::Rsa(1024),
                t12,
                None,
                Err(Some(Mismatch::Key(KeyType::Rsa { bits: 1024 }))),
            ),
            Row {
                key: TestKey::Rsa(2048),
                max: None,
                ciphers: None,
                forged: true,
                want: Err(None),
            },
        ];
        let config = crate::tls::opportunistic_config(crate::tls::version::TlsVersion::Tls1_0);
        for r in rows {
            let key = testpki::key(r.key);
            let cert = testpki::certificate(&key, "mx.example.net");
            let signing = if r.forged {
                testpki::forged(&key)
            } else {
                key.clone()
            };
            let mut tls = ServerTls::new(&cert, &signing);
            tls.max = r.max;
            tls.ciphers = r.ciphers;
            let (c, s) = tokio::io::duplex(64 * 1024);
            let name = rustls::pki_types::ServerName::try_from("mx.example.net").unwrap();
            let connector = tokio_rustls::TlsConnector::from(config.clone());
            let (client, _) = tokio::join!(connector.connect(name, c), testpki::accept(s, &tls));
            let got = match client {
                Ok(_) => Ok(()),
                Err(e) => Err(e
                    .get_ref()
                    .and_then(|i| i.downcast_ref::<Error>())
                    .and_then(mismatch)),
            };
            assert_eq!(
                got, r.want,
                "{:?} max {:?} ciphers {:?} forged {}",
                r.key, r.max, r.ciphers, r.forged
            );
        }
    }
}
