//! A presented certificate as the report describes it (names, key, dates,
//! digests, the host's TLSA records that match it) and the warnings its
//! dates call for.

use sha2::{Digest, Sha256};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::report::CertReport;
use crate::dns::Tlsa;
use crate::ops::certs::{dns_names, hex, key_algorithm};
use crate::ops::dates::rfc3339;
use crate::tls::{tlsa, UnixTime};

/// A certificate that expires within this many days is a warning.
pub const EXPIRY_WARNING_DAYS: i64 = 30;

/// What one presented certificate is, and which of `records` match it.
pub(super) fn cert_report(depth: usize, der: &[u8], records: &[Tlsa], now: UnixTime) -> CertReport {
    let cert_sha256 = hex(&Sha256::digest(der));
    let parsed = X509Certificate::from_der(der).ok().map(|(_, c)| c);
    let Some(cert) = parsed else {
        return CertReport {
            depth,
            subject: "(certificate does not parse)".into(),
            issuer: String::new(),
            dns_names: Vec::new(),
            key_algorithm: "unknown".into(),
            not_before: String::new(),
            not_after: String::new(),
            expires_in_days: 0,
            spki_sha256: String::new(),
            cert_sha256,
            tlsa_matches: records
                .iter()
                .filter(|r| tlsa::matches(r, Some(der), None))
                .map(|r| r.to_string())
                .collect(),
        };
    };
    let spki = cert.tbs_certificate.subject_pki.raw;
    let not_after = cert.validity().not_after.timestamp();
    let now = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
    CertReport {
        depth,
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        dns_names: dns_names(&cert),
        key_algorithm: key_algorithm(cert.public_key()),
        not_before: rfc3339(cert.validity().not_before.timestamp()),
        not_after: rfc3339(not_after),
        expires_in_days: (not_after - now).div_euclid(86_400),
        spki_sha256: hex(&Sha256::digest(spki)),
        cert_sha256,
        tlsa_matches: records
            .iter()
            .filter(|r| tlsa::matches(r, Some(der), Some(spki)))
            .map(|r| r.to_string())
            .collect(),
    }
}

/// Warnings for certificates that expire soon, have expired, or are not
/// valid yet. `dane_ee_leaf`: DANE-EE matched the leaf, which makes its
/// dates irrelevant to DANE.
pub(super) fn expiry_warnings(
    chain: &[CertReport],
    dane_ee_leaf: bool,
    what: &str,
    out: &mut Vec<String>,
) {
    for c in chain {
        let which = format!("{what}certificate at depth {} ({})", c.depth, c.subject);
        let ignored = if dane_ee_leaf && c.depth == 0 {
            " (DANE-EE ignores dates, so it still verifies)"
        } else {
            ""
        };
        if c.expires_in_days < 0 {
            out.push(format!("{which} expired on {}{ignored}", c.not_after));
        } else if c.expires_in_days < EXPIRY_WARNING_DAYS {
            out.push(format!(
                "{which} expires on {}, in {} days{ignored}",
                c.not_after, c.expires_in_days
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Sha512;

    fn tlsa(usage: u8, selector: u8, mtype: u8, data: Vec<u8>) -> Tlsa {
        Tlsa {
            usage,
            selector,
            mtype,
            data,
        }
    }

    /// A certificate for `mx.example` and its key (rcgen: ECDSA P-256).
    fn ecdsa_cert() -> (rcgen::Certificate, rcgen::KeyPair) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["mx.example".into()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "mx.example");
        let cert = params.self_signed(&key).unwrap();
        (cert, key)
    }

    #[test]
    fn certificate_report_names_key_dates_and_matching_records() {
        let (cert, key) = ecdsa_cert();
        let der = cert.der().to_vec();
        let spki = key.public_key_der();
        let records = [
            tlsa(3, 1, 1, Sha256::digest(&spki).to_vec()),
            tlsa(3, 0, 2, Sha512::digest(&der).to_vec()),
            tlsa(2, 1, 0, spki.clone()),
            tlsa(3, 1, 1, vec![0; 32]),
            tlsa(1, 1, 1, Sha256::digest(&spki).to_vec()),
        ];
        let now = UnixTime::since_unix_epoch(std::time::Duration::from_secs(1_700_000_000));
        let r = cert_report(0, &der, &records, now);
        assert_eq!(r.subject, "CN=mx.example");
        assert_eq!(r.issuer, "CN=mx.example");
        assert_eq!(r.dns_names, ["mx.example"]);
        assert_eq!(r.key_algorithm, "ECDSA P-256");
        // rcgen's defaults: 1975 to 4096.
        assert_eq!(r.not_before, "1975-01-01T00:00:00Z");
        assert_eq!(r.not_after, "4096-01-01T00:00:00Z");
        assert_eq!(r.expires_in_days, (67_090_118_400 - 1_700_000_000) / 86_400);
        assert_eq!(r.spki_sha256, hex(&Sha256::digest(&spki)));
        assert_eq!(r.cert_sha256, hex(&Sha256::digest(&der)));
        // Every record whose data matches, the PKIX-EE one included; not
        // the wrong digest.
        let want: Vec<String> = [0, 1, 2, 4]
            .iter()
            .map(|&i| records[i].to_string())
            .collect();
        assert_eq!(r.tlsa_matches, want);
    }

    #[test]
    fn an_unparsable_certificate_is_reported_not_fatal() {
        let junk = b"not a certificate";
        let records = [tlsa(3, 0, 1, Sha256::digest(junk).to_vec())];
        let r = cert_report(1, junk, &records, UnixTime::now());
        assert_eq!(r.depth, 1);
        assert_eq!(r.subject, "(certificate does not parse)");
        // Selector 0 needs no parsing: the whole DER still matches.
        assert_eq!(r.tlsa_matches, [records[0].to_string()]);
    }

    fn cert(depth: usize, days: i64) -> CertReport {
        CertReport {
            depth,
            subject: format!("CN=c{depth}"),
            issuer: String::new(),
            dns_names: Vec::new(),
            key_algorithm: "ECDSA P-256".into(),
            not_before: "2020-01-01T00:00:00Z".into(),
            not_after: "2030-01-01T00:00:00Z".into(),
            expires_in_days: days,
            spki_sha256: String::new(),
            cert_sha256: String::new(),
            tlsa_matches: Vec::new(),
        }
    }

    #[test]
    fn expiry_warnings_table() {
        let mut out = Vec::new();
        expiry_warnings(&[cert(0, 400), cert(1, 30)], false, "", &mut out);
        assert!(out.is_empty(), "{out:?}");
        expiry_warnings(&[cert(0, 29), cert(1, -1)], false, "", &mut out);
        assert_eq!(
            out,
            [
                "certificate at depth 0 (CN=c0) expires on 2030-01-01T00:00:00Z, in 29 days",
                "certificate at depth 1 (CN=c1) expired on 2030-01-01T00:00:00Z",
            ]
        );
        out.clear();
        expiry_warnings(&[cert(0, -5), cert(1, 3)], true, "RSA key's ", &mut out);
        assert_eq!(
            out,
            [
                "RSA key's certificate at depth 0 (CN=c0) expired on 2030-01-01T00:00:00Z (DANE-EE ignores dates, so it still verifies)",
                "RSA key's certificate at depth 1 (CN=c1) expires on 2030-01-01T00:00:00Z, in 3 days",
            ]
        );
    }
}
