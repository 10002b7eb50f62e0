//! Server key types, and which of them the primary TLS engine (rustls with
//! the *ring* provider) can verify handshake signatures with: RSA keys of
//! 2048 to 8192 bits, ECDSA on P-256 and P-384, Ed25519. Anything else (RSA
//! 1024, ECDSA P-521, Ed448, DSA, ...) is reached through the legacy engine
//! (OpenSSL), which verifies the same signatures itself.
//!
//! The point of knowing this before verifying: a signature the primary
//! engine cannot check is "unsupported", not "bad". Only a key the engine
//! supports and a signature that does not verify mean the server does not
//! hold the key of its certificate.

use std::fmt;

use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::public_key::PublicKey;

/// A public key type, as an operator names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyType {
    Rsa {
        bits: usize,
    },
    Ec {
        curve: &'static str,
    },
    Ed25519,
    Ed448,
    Dsa,
    /// Anything else, by algorithm (and curve) OID.
    Other(String),
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyType::Rsa { bits } => write!(f, "RSA {bits}"),
            KeyType::Ec { curve } => write!(f, "ECDSA {curve}"),
            KeyType::Ed25519 => f.write_str("Ed25519"),
            KeyType::Ed448 => f.write_str("Ed448"),
            KeyType::Dsa => f.write_str("DSA"),
            KeyType::Other(oid) => write!(f, "OID {oid}"),
        }
    }
}

impl KeyType {
    /// The key of a DER certificate; `None` when it does not parse.
    pub fn of_certificate(der: &[u8]) -> Option<KeyType> {
        let (_, cert) = X509Certificate::from_der(der).ok()?;
        let spki = cert.public_key();
        let alg = spki.algorithm.algorithm.to_id_string();
        let param = || {
            spki.algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|o| o.to_id_string())
                .unwrap_or_default()
        };
        Some(match alg.as_str() {
            "1.2.840.113549.1.1.1" | "1.2.840.113549.1.1.10" => match spki.parsed() {
                Ok(PublicKey::RSA(rsa)) => KeyType::Rsa {
                    bits: modulus_bits(rsa.modulus),
                },
                _ => KeyType::Other(alg),
            },
            "1.2.840.10045.2.1" => match param().as_str() {
                "1.2.840.10045.3.1.7" => KeyType::Ec { curve: "P-256" },
                "1.3.132.0.34" => KeyType::Ec { curve: "P-384" },
                "1.3.132.0.35" => KeyType::Ec { curve: "P-521" },
                "1.3.132.0.10" => KeyType::Ec { curve: "secp256k1" },
                other => KeyType::Other(format!("{alg} {other}")),
            },
            "1.3.101.112" => KeyType::Ed25519,
            "1.3.101.113" => KeyType::Ed448,
            "1.2.840.10040.4.1" => KeyType::Dsa,
            _ => KeyType::Other(alg),
        })
    }

    /// Whether rustls with *ring* verifies handshake signatures made with
    /// this key (its `signature_verification_algorithms`).
    pub fn primary_engine_verifies(&self) -> bool {
        match self {
            KeyType::Rsa { bits } => (2048..=8192).contains(bits),
            KeyType::Ec { curve } => matches!(*curve, "P-256" | "P-384"),
            KeyType::Ed25519 => true,
            _ => false,
        }
    }
}

/// Significant bits of a big-endian unsigned integer.
fn modulus_bits(be: &[u8]) -> usize {
    let digits: &[u8] = match be.iter().position(|&b| b != 0) {
        Some(first) => &be[first..],
        None => return 0,
    };
    digits.len() * 8 - digits[0].leading_zeros() as usize
}

/// The server's certificate holds a key the primary engine cannot verify
/// signatures with: the handshake goes to the legacy engine instead (this
/// is never a verdict on the server).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("server key type {0} is not supported by the primary TLS engine")]
pub struct UnsupportedKey(pub KeyType);

/// `Err` when the primary engine cannot verify signatures of the key of
/// the certificate `der`. A certificate that does not parse is left to
/// the signature check, which fails on it.
pub fn check_primary(der: &[u8]) -> Result<(), UnsupportedKey> {
    match KeyType::of_certificate(der) {
        Some(k) if !k.primary_engine_verifies() => Err(UnsupportedKey(k)),
        _ => Ok(()),
    }
}

/// A failed handshake-signature check in the primary engine, as it is
/// reported: [`UnsupportedKey`] (as `rustls::Error::Other`) when the
/// certificate's key is of a type the engine does not verify, `e` itself
/// otherwise. Costs nothing on success: it runs only after a failure.
pub fn unsupported_or(
    cert: &rustls::pki_types::CertificateDer<'_>,
    e: rustls::Error,
) -> rustls::Error {
    match check_primary(cert.as_ref()) {
        Err(unsupported) => {
            rustls::Error::Other(rustls::OtherError(std::sync::Arc::new(unsupported)))
        }
        Ok(()) => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modulus_bits_ignores_leading_zeros() {
        assert_eq!(modulus_bits(&[0x00, 0x80, 0x00]), 16);
        assert_eq!(modulus_bits(&[0x01, 0x00]), 9);
        assert_eq!(modulus_bits(&[0x00, 0x00]), 0);
        assert_eq!(modulus_bits(&[]), 0);
    }

    /// Certificates of each key type (made with OpenSSL), classified and
    /// judged as the table says.
    #[test]
    fn key_types_and_what_the_primary_engine_verifies() {
        use crate::tls::testpki::{self_signed, TestKey};
        let table: &[(TestKey, &str, bool)] = &[
            (TestKey::Rsa(1024), "RSA 1024", false),
            (TestKey::Rsa(2048), "RSA 2048", true),
            (TestKey::Rsa(4096), "RSA 4096", true),
            (TestKey::Ec("P-256"), "ECDSA P-256", true),
            (TestKey::Ec("P-384"), "ECDSA P-384", true),
            (TestKey::Ec("P-521"), "ECDSA P-521", false),
            (TestKey::Ed25519, "Ed25519", true),
            (TestKey::Ed448, "Ed448", false),
        ];
        for (key, name, primary) in table {
            let (der, _) = self_signed(*key, "mx.example.net");
            let kind = KeyType::of_certificate(&der).expect("parses");
            assert_eq!(kind.to_string(), *name);
            assert_eq!(kind.primary_engine_verifies(), *primary, "{name}");
            assert_eq!(check_primary(&der).is_ok(), *primary, "{name}");
        }
        let (der, _) = self_signed(TestKey::Ec("P-521"), "mx.example.net");
        assert_eq!(
            check_primary(&der).unwrap_err().to_string(),
            "server key type ECDSA P-521 is not supported by the primary TLS engine"
        );
        assert_eq!(KeyType::of_certificate(b"junk"), None);
        assert!(check_primary(b"junk").is_ok());
    }
}
