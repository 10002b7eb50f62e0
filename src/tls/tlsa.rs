//! DANE record semantics (RFC 6698, RFC 7671, RFC 7672): which TLSA
//! records SMTP can use, and what a record's data is for a given
//! certificate or key (the one definition of matching that the DANE
//! verifier, `check` and `tlsa` share). What a presented chain proves is
//! the certificate verifier's decision ([`super::dane`]), not this
//! module's.

use sha2::{Digest, Sha256, Sha512};
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::x509::SubjectPublicKeyInfo;

use crate::dns::Tlsa;

/// Why a TLSA record cannot be used for SMTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unusable {
    /// Usages 0 (PKIX-TA) and 1 (PKIX-EE) need a public CA set, which
    /// SMTP does not have (RFC 7672 §3.1.3).
    PkixUsage,
    UnknownUsage,
    UnknownSelector,
    UnknownMatchingType,
    /// A digest of the wrong length for its matching type.
    BadDigestLength,
    /// Matching type 0 whose data is not a certificate (selector 0) or a
    /// SubjectPublicKeyInfo (selector 1).
    BadFullData,
}

impl std::fmt::Display for Unusable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Unusable::PkixUsage => "PKIX usage (0/1) is not usable for SMTP",
            Unusable::UnknownUsage => "unknown certificate usage",
            Unusable::UnknownSelector => "unknown selector",
            Unusable::UnknownMatchingType => "unknown matching type",
            Unusable::BadDigestLength => "digest length does not fit the matching type",
            Unusable::BadFullData => "full data does not parse as a certificate or public key",
        })
    }
}

/// dane-rules §2.3: usage 2 or 3, selector 0 or 1, matching type 0, 1 or
/// 2 with data of the right shape.
pub fn usability(t: &Tlsa) -> Result<(), Unusable> {
    match t.usage {
        2 | 3 => {}
        0 | 1 => return Err(Unusable::PkixUsage),
        _ => return Err(Unusable::UnknownUsage),
    }
    if t.selector > 1 {
        return Err(Unusable::UnknownSelector);
    }
    match (t.mtype, t.data.len()) {
        (1, 32) | (2, 64) => Ok(()),
        (1 | 2, _) => Err(Unusable::BadDigestLength),
        (0, _) => {
            let parses = if t.selector == 0 {
                X509Certificate::from_der(&t.data).is_ok_and(|(rest, _)| rest.is_empty())
            } else {
                SubjectPublicKeyInfo::from_der(&t.data).is_ok_and(|(rest, _)| rest.is_empty())
            };
            if parses {
                Ok(())
            } else {
                Err(Unusable::BadFullData)
            }
        }
        _ => Err(Unusable::UnknownMatchingType),
    }
}

/// The certificate association data of matching type `mtype` for the
/// selected certificate or SubjectPublicKeyInfo (RFC 6698 §2.1.3): the
/// bytes themselves (0), their SHA-256 (1) or SHA-512 (2) digest; none
/// for an unknown type.
pub fn association_data(mtype: u8, selected: &[u8]) -> Option<Vec<u8>> {
    match mtype {
        0 => Some(selected.to_vec()),
        1 => Some(Sha256::digest(selected).to_vec()),
        2 => Some(Sha512::digest(selected).to_vec()),
        _ => None,
    }
}

/// Whether a record's data designates a certificate (`cert`: its whole
/// DER, for selector 0) or its key (`spki`: its SubjectPublicKeyInfo DER,
/// for selector 1), whatever the record's usage. A missing part matches
/// nothing.
pub fn matches(record: &Tlsa, cert: Option<&[u8]>, spki: Option<&[u8]>) -> bool {
    let selected = match record.selector {
        0 => cert,
        1 => spki,
        _ => None,
    };
    selected
        .and_then(|s| association_data(record.mtype, s))
        .is_some_and(|data| data == record.data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(usage: u8, selector: u8, mtype: u8, len: usize) -> Tlsa {
        Tlsa {
            usage,
            selector,
            mtype,
            data: vec![0xab; len],
        }
    }

    #[test]
    fn usability_table() {
        let cases = [
            (t(3, 1, 1, 32), Ok(())),
            (t(3, 0, 1, 32), Ok(())),
            (t(2, 0, 1, 32), Ok(())),
            (t(2, 1, 2, 64), Ok(())),
            (t(3, 1, 1, 31), Err(Unusable::BadDigestLength)),
            (t(3, 1, 2, 32), Err(Unusable::BadDigestLength)),
            (t(1, 1, 1, 32), Err(Unusable::PkixUsage)),
            (t(0, 0, 1, 32), Err(Unusable::PkixUsage)),
            (t(4, 1, 1, 32), Err(Unusable::UnknownUsage)),
            (t(3, 2, 1, 32), Err(Unusable::UnknownSelector)),
            (t(3, 1, 3, 32), Err(Unusable::UnknownMatchingType)),
            (t(3, 1, 0, 32), Err(Unusable::BadFullData)),
            (t(2, 0, 0, 100), Err(Unusable::BadFullData)),
        ];
        for (rec, want) in cases {
            assert_eq!(usability(&rec), want, "{rec}");
        }
    }

    #[test]
    fn full_data_records_parse() {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["mx.example".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let full_cert = Tlsa {
            usage: 2,
            selector: 0,
            mtype: 0,
            data: cert.der().to_vec(),
        };
        assert_eq!(usability(&full_cert), Ok(()));
        let spki = Tlsa {
            usage: 3,
            selector: 1,
            mtype: 0,
            data: key.public_key_der(),
        };
        assert_eq!(usability(&spki), Ok(()));
    }

    #[test]
    fn matching_by_selector_and_type() {
        let cert = b"certificate".as_slice();
        let spki = b"key".as_slice();
        let rec = |selector: u8, mtype: u8, of: &[u8]| Tlsa {
            usage: 3,
            selector,
            mtype,
            data: association_data(mtype, of).unwrap(),
        };
        assert!(matches(&rec(0, 0, cert), Some(cert), Some(spki)));
        assert!(matches(&rec(0, 1, cert), Some(cert), None));
        assert!(matches(&rec(1, 1, spki), Some(cert), Some(spki)));
        assert!(matches(&rec(1, 2, spki), None, Some(spki)));
        // The wrong part, a missing part, another usage's record of the
        // same data (usage is not judged here), unknown selector or type.
        assert!(!matches(&rec(0, 1, spki), Some(cert), Some(spki)));
        assert!(!matches(&rec(1, 1, spki), Some(cert), None));
        assert!(!matches(&rec(0, 2, cert), None, Some(spki)));
        assert!(matches(
            &Tlsa {
                usage: 1,
                ..rec(1, 1, spki)
            },
            None,
            Some(spki)
        ));
        assert!(!matches(
            &Tlsa {
                selector: 2,
                ..rec(1, 1, spki)
            },
            Some(cert),
            Some(spki)
        ));
        assert_eq!(association_data(3, cert), None);
        assert_eq!(association_data(1, spki).map(|d| d.len()), Some(32));
        assert_eq!(association_data(2, spki).map(|d| d.len()), Some(64));
    }
}
