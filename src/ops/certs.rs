//! Certificate facts as the operator commands write them: a parsed DER
//! certificate, its DNS names, its key's algorithm and size, a one-line
//! description; digests in hex and TLSA records cut short for text
//! output. Shared by `check` and `tlsa`.
//!
//! What it does not do: judge anything. Whether a record matches a
//! certificate is [`crate::tls::tlsa::matches`]; what a chain proves is
//! [`crate::tls::dane::verify_chain`].

use std::fmt::Write as _;

use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
use x509_parser::public_key::PublicKey;
use x509_parser::x509::SubjectPublicKeyInfo;

use super::dates::utc;

/// A DER certificate with nothing after it.
pub fn parse_cert(der: &[u8]) -> Result<X509Certificate<'_>, String> {
    match X509Certificate::from_der(der) {
        Ok(([], cert)) => Ok(cert),
        Ok(_) => Err("trailing data after the certificate".to_owned()),
        Err(e) => Err(format!("not a certificate: {e}")),
    }
}

/// The dNSName entries of the subject alternative name extension.
pub fn dns_names(cert: &X509Certificate<'_>) -> Vec<String> {
    match cert.subject_alternative_name() {
        Ok(Some(san)) => san
            .value
            .general_names
            .iter()
            .filter_map(|n| match n {
                GeneralName::DNSName(d) => Some((*d).to_owned()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// "subject CN=…, issuer CN=…, valid until 2030-01-01 00:00:00 UTC"; a
/// certificate without a subject name is named by its DNS names.
pub fn describe_cert(der: &[u8]) -> String {
    let Ok(cert) = parse_cert(der) else {
        return "an unreadable certificate".to_owned();
    };
    let subject = cert.subject().to_string();
    let subject = if subject.is_empty() {
        let names = dns_names(&cert);
        if names.is_empty() {
            "no subject name".to_owned()
        } else {
            format!("no subject name, DNS names {}", names.join(", "))
        }
    } else {
        format!("subject {subject}")
    };
    format!(
        "{subject}, issuer {}, valid until {}",
        cert.issuer(),
        utc(cert.validity().not_after.timestamp())
    )
}

/// Whether a certificate says it is a CA (basic constraints).
pub fn is_ca(der: &[u8]) -> bool {
    parse_cert(der)
        .ok()
        .and_then(|c| c.basic_constraints().ok().flatten().map(|bc| bc.value.ca))
        .unwrap_or(false)
}

/// "RSA 2048", "ECDSA P-256", "Ed25519"...
pub fn key_algorithm(spki: &SubjectPublicKeyInfo<'_>) -> String {
    let oid = spki.algorithm.algorithm.to_id_string();
    match oid.as_str() {
        "1.2.840.113549.1.1.1" => match spki.parsed() {
            Ok(PublicKey::RSA(k)) => format!("RSA {}", bit_length(k.modulus)),
            _ => "RSA".into(),
        },
        "1.2.840.113549.1.1.10" => "RSA-PSS".into(),
        "1.2.840.10045.2.1" => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|o| o.to_id_string());
            match curve.as_deref() {
                Some("1.2.840.10045.3.1.7") => "ECDSA P-256".into(),
                Some("1.3.132.0.34") => "ECDSA P-384".into(),
                Some("1.3.132.0.35") => "ECDSA P-521".into(),
                Some(other) => format!("ECDSA (curve {other})"),
                None => "ECDSA".into(),
            }
        }
        "1.3.101.112" => "Ed25519".into(),
        "1.3.101.113" => "Ed448".into(),
        other => format!("unknown ({other})"),
    }
}

/// The bit length of a big-endian unsigned integer.
fn bit_length(n: &[u8]) -> usize {
    let n = match n.iter().position(|&b| b != 0) {
        Some(i) => &n[i..],
        None => return 0,
    };
    n.len() * 8 - n[0].leading_zeros() as usize
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// `3 1 1 2c8a4f01…`: a record written `usage selector mtype hex` with its
/// data cut to `hex_chars` characters, for text output.
pub fn short_record(record: &str, hex_chars: usize) -> String {
    let mut fields = record.splitn(4, ' ');
    let head: Vec<&str> = fields.by_ref().take(3).collect();
    match fields.next() {
        Some(data) if data.len() > hex_chars => {
            format!("{} {}…", head.join(" "), &data[..hex_chars])
        }
        Some(data) => format!("{} {data}", head.join(" ")),
        None => record.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_lengths() {
        assert_eq!(bit_length(&[]), 0);
        assert_eq!(bit_length(&[0, 0]), 0);
        assert_eq!(bit_length(&[1]), 1);
        // A DER INTEGER's leading zero byte does not count.
        let mut modulus = vec![0u8, 0xc3];
        modulus.extend([0u8; 255]);
        assert_eq!(bit_length(&modulus), 2048);
        assert_eq!(bit_length(&[0x7f, 0xff]), 15);
    }

    #[test]
    fn short_records() {
        assert_eq!(
            short_record(&format!("3 1 1 {}", "ab".repeat(32)), 16),
            "3 1 1 abababababababab…"
        );
        assert_eq!(short_record("3 1 1 abcd", 16), "3 1 1 abcd");
        assert_eq!(short_record("3 1 1 abcdef01", 8), "3 1 1 abcdef01");
        assert_eq!(short_record("3 1 1 abcdef0123", 8), "3 1 1 abcdef01…");
        assert_eq!(short_record("3 1 1 ", 8), "3 1 1 ");
    }
}
