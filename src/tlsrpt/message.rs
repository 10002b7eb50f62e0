//! A report as mail (RFC 8460 §5.3): a `multipart/report;
//! report-type="tlsrpt"` message with a human-readable part and the
//! gzipped report (`application/tlsrpt+gzip`), the `TLS-Report-Domain`
//! and `TLS-Report-Submitter` header fields, the Subject of §5.3, and the
//! DKIM signature of the submitter's domain that §3 requires ("Reports
//! lacking such a signature MUST be ignored by the recipient"; no `l=`).
//!
//! The MIME structure is mail-builder's, the signature mail-auth's.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::{Canonicalization, DkimSigner, Done};
use mail_builder::headers::content_type::ContentType;
use mail_builder::headers::date::Date;
use mail_builder::headers::message_id::MessageId;
use mail_builder::headers::raw::Raw;
use mail_builder::mime::MimePart;
use mail_builder::MessageBuilder;

use super::day::Day;
use super::report::Reporter;
use crate::tls::pki_types::pem::PemObject;
use crate::tls::pki_types::PrivateKeyDer;

/// The header fields the signature covers (§5.3: the TLS-Report ones
/// SHOULD be among them).
const SIGNED: [&str; 9] = [
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "MIME-Version",
    "Content-Type",
    "TLS-Report-Domain",
    "TLS-Report-Submitter",
];

/// A DKIM signer for the submitter's domain.
pub enum Dkim {
    Rsa(DkimSigner<RsaKey<Sha256>, Done>),
    Ed25519(DkimSigner<Ed25519Key, Done>),
}

impl std::fmt::Debug for Dkim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Dkim::Rsa(_) => "Dkim(rsa-sha256)",
            Dkim::Ed25519(_) => "Dkim(ed25519-sha256)",
        })
    }
}

impl Dkim {
    /// The signer for `domain` with `selector`, its key read from a PEM
    /// file (RSA in PKCS#1 or PKCS#8, Ed25519 in PKCS#8).
    pub fn load(path: &Path, domain: &str, selector: &str) -> Result<Dkim, String> {
        let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Dkim::from_pem(&pem, domain, selector).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn from_pem(pem: &[u8], domain: &str, selector: &str) -> Result<Dkim, String> {
        let key =
            PrivateKeyDer::from_pem_slice(pem).map_err(|e| format!("no PEM private key: {e}"))?;
        if let PrivateKeyDer::Pkcs8(der) = &key {
            if let Ok(k) = Ed25519Key::from_pkcs8_der(der.secret_pkcs8_der()) {
                return Ok(Dkim::Ed25519(finish(
                    DkimSigner::from_key(k),
                    domain,
                    selector,
                )));
            }
        }
        let k = RsaKey::<Sha256>::from_key_der(key)
            .map_err(|e| format!("not an RSA or Ed25519 private key: {e}"))?;
        Ok(Dkim::Rsa(finish(DkimSigner::from_key(k), domain, selector)))
    }

    /// The DKIM-Signature header field for `message` (CRLF-terminated).
    pub fn sign(&self, message: &[u8]) -> Result<String, String> {
        let sig = match self {
            Dkim::Rsa(s) => s.sign(message),
            Dkim::Ed25519(s) => s.sign(message),
        };
        sig.map(|s| s.to_header())
            .map_err(|e| format!("DKIM signing failed: {e}"))
    }
}

fn finish<T: mail_auth::common::crypto::SigningKey>(
    s: DkimSigner<T>,
    domain: &str,
    selector: &str,
) -> DkimSigner<T, Done> {
    s.domain(domain)
        .selector(selector)
        .headers(SIGNED)
        .header_canonicalization(Canonicalization::Relaxed)
        .body_canonicalization(Canonicalization::Relaxed)
        .body_length(false)
}

/// One mailed report.
pub struct Letter<'a> {
    pub reporter: &'a Reporter,
    pub day: Day,
    /// The policy domain the report is about.
    pub domain: &'a str,
    /// The recipient (a `mailto:` rua).
    pub to: &'a str,
    /// The gzipped report.
    pub gzip: &'a [u8],
    pub now: SystemTime,
}

impl Letter<'_> {
    /// The message, signed when `dkim` is given: CRLF line ends, lines
    /// under 78 octets (base64, folded header fields).
    pub fn compose(&self, dkim: Option<&Dkim>) -> Result<Vec<u8>, String> {
        let r = self.reporter;
        let report_id = r.report_id(self.day, self.domain);
        let text = format!(
            "This is an aggregate TLS report (RFC 8460) from {}\r\n\
             ({}) about {} for {} UTC.\r\n\
             The report is the attached application/tlsrpt+gzip file.\r\n",
            r.organization.replace(['\r', '\n'], " "),
            r.submitter,
            self.domain,
            self.day
        );
        let body = MimePart::new(
            ContentType::new("multipart/report").attribute("report-type", "tlsrpt"),
            vec![
                MimePart::new(
                    ContentType::new("text/plain").attribute("charset", "us-ascii"),
                    text,
                ),
                MimePart::new(ContentType::new("application/tlsrpt+gzip"), self.gzip)
                    .attachment(r.filename(self.day, self.domain)),
            ],
        );
        let secs = self
            .now
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let unique = format!(
            "{:016x}.{}.{}@{}",
            rand::random::<u64>(),
            self.day,
            r.instance,
            r.submitter
        );
        let unsigned = MessageBuilder::new()
            .from(r.contact.as_str())
            .to(self.to)
            // Not RFC 2047-encoded: §5.3's ABNF, folded at its spaces.
            .header(
                "Subject",
                Raw::new(format!(
                    "Report Domain: {} Submitter: {} Report-ID: <{report_id}>",
                    self.domain, r.submitter
                )),
            )
            .date(Date::new(secs as i64))
            .message_id(MessageId::new(unique))
            .header("TLS-Report-Domain", Raw::new(self.domain))
            .header("TLS-Report-Submitter", Raw::new(r.submitter.as_str()))
            .body(body)
            .write_to_vec()
            .map_err(|e| format!("cannot compose the report message: {e}"))?;
        let Some(dkim) = dkim else {
            return Ok(unsigned);
        };
        let mut signed = dkim.sign(&unsigned)?.into_bytes();
        signed.extend_from_slice(&unsigned);
        Ok(signed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use mail_auth::common::parse::TxtRecordParser;
    use mail_auth::common::verify::DomainKey;
    use mail_auth::{
        AuthenticatedMessage, DkimResult, MessageAuthenticator, Parameters, ResolverCache, Txt,
    };
    use mail_parser::MimeHeaders;
    use std::borrow::Borrow;
    use std::collections::HashMap;
    use std::hash::Hash;
    use std::io::Read;
    use std::sync::{Arc, Mutex};
    use std::time::Instant;

    /// A DNS answer the verifier finds in its cache: the published key.
    struct Published(Mutex<HashMap<Box<str>, Txt>>);

    impl ResolverCache<Box<str>, Txt> for Published {
        fn get<Q>(&self, name: &Q) -> Option<Txt>
        where
            Box<str>: Borrow<Q>,
            Q: Hash + Eq + ?Sized,
        {
            self.0.lock().unwrap().get(name).cloned()
        }
        fn remove<Q>(&self, name: &Q) -> Option<Txt>
        where
            Box<str>: Borrow<Q>,
            Q: Hash + Eq + ?Sized,
        {
            self.0.lock().unwrap().remove(name)
        }
        fn insert(&self, key: Box<str>, value: Txt, _: Instant) {
            self.0.lock().unwrap().insert(key, value);
        }
    }

    fn reporter() -> Reporter {
        Reporter {
            organization: "Example Org".into(),
            contact: "tlsrpt@example.com".into(),
            submitter: "example.com".into(),
            instance: "0123456789abcdef".into(),
        }
    }

    fn rsa_key() -> (Vec<u8>, String) {
        use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey};
        let key = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap();
        let pem = key.to_pkcs8_pem(rsa::pkcs8::LineEnding::LF).unwrap();
        let spki = key.to_public_key().to_public_key_der().unwrap();
        let p = base64::engine::general_purpose::STANDARD.encode(spki.as_bytes());
        (
            pem.as_bytes().to_vec(),
            format!("v=DKIM1; k=rsa; s=tlsrpt; p={p}"),
        )
    }

    fn ed25519_key() -> (Vec<u8>, String) {
        let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let p = base64::engine::general_purpose::STANDARD.encode(kp.public_key_raw());
        (
            kp.serialize_pem().into_bytes(),
            format!("v=DKIM1; k=ed25519; s=tlsrpt; p={p}"),
        )
    }

    async fn verify(message: &[u8], record: &str) -> DkimResult {
        let published = Published(Mutex::new(HashMap::new()));
        let key = Txt::DomainKey(Arc::new(DomainKey::parse(record.as_bytes()).unwrap()));
        for name in ["sel._domainkey.example.com.", "sel._domainkey.example.com"] {
            published.insert(name.into(), key.clone(), Instant::now());
        }
        let auth = MessageAuthenticator::new_system_conf().unwrap();
        let parsed = AuthenticatedMessage::parse(message).unwrap();
        let out = auth
            .verify_dkim(Parameters::new(&parsed).with_txt_cache(&published))
            .await;
        assert_eq!(out.len(), 1);
        out[0].result().clone()
    }

    fn letter<'a>(r: &'a Reporter, gz: &'a [u8]) -> Letter<'a> {
        Letter {
            reporter: r,
            day: Day::parse("2026-12-06").unwrap(),
            domain: "secure.test",
            to: "tlsrpt@secure.test",
            gzip: gz,
            now: crate::tlsrpt::day::parse_rfc3339("2026-12-07T01:02:03Z").unwrap(),
        }
    }

    #[test]
    fn the_message_has_what_section_5_3_asks_for() {
        let r = reporter();
        let json = br#"{"report":"x"}"#;
        let gz = crate::tlsrpt::report::gzip(json);
        let msg = letter(&r, &gz).compose(None).unwrap();
        let text = String::from_utf8(msg.clone()).unwrap();
        assert!(
            !text.contains("\n") || text.split("\r\n").all(|l| !l.contains('\n')),
            "bare LF"
        );
        // Lines within 78 octets, but for the attachment's file name
        // (a quoted string cannot be folded), which is within 998.
        assert!(
            text.split("\r\n")
                .all(|l| l.len() <= 78 || (l.len() <= 998 && l.starts_with(" filename="))),
            "{text}"
        );
        // §5.3's Subject as plain text (folded at spaces), not RFC 2047.
        assert!(
            text.contains("\r\nSubject: Report Domain: secure.test Submitter: example.com"),
            "{text}"
        );
        assert!(!text.contains("=?"), "{text}");
        let parsed = mail_parser::MessageParser::default().parse(&msg).unwrap();
        assert_eq!(
            parsed.from().unwrap().first().unwrap().address(),
            Some("tlsrpt@example.com")
        );
        assert_eq!(
            parsed.to().unwrap().first().unwrap().address(),
            Some("tlsrpt@secure.test")
        );
        assert_eq!(
            parsed.subject(),
            Some("Report Domain: secure.test Submitter: example.com Report-ID: <2026-12-06.0123456789abcdef.secure.test@example.com>")
        );
        assert_eq!(
            parsed.header_raw("TLS-Report-Domain").map(str::trim),
            Some("secure.test")
        );
        assert_eq!(
            parsed.header_raw("TLS-Report-Submitter").map(str::trim),
            Some("example.com")
        );
        assert_eq!(parsed.date().unwrap().to_rfc3339(), "2026-12-07T01:02:03Z");
        let ct = parsed.content_type().unwrap();
        assert_eq!((ct.ctype(), ct.subtype()), ("multipart", Some("report")));
        assert_eq!(ct.attribute("report-type"), Some("tlsrpt"));
        let human = parsed.part(1).unwrap();
        assert_eq!(human.content_type().unwrap().subtype(), Some("plain"));
        assert!(parsed
            .body_text(0)
            .unwrap()
            .contains("aggregate TLS report (RFC 8460) from Example Org\r\n(example.com) about secure.test for 2026-12-06 UTC"));
        let att = parsed.attachment(0).unwrap();
        let act = att.content_type().unwrap();
        assert_eq!(
            (act.ctype(), act.subtype()),
            ("application", Some("tlsrpt+gzip"))
        );
        assert_eq!(
            att.attachment_name(),
            Some("example.com!secure.test!1796515200!1796601599!0123456789abcdef.json.gz")
        );
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(att.contents())
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, json);
    }

    #[tokio::test]
    async fn signed_with_rsa_or_ed25519_and_the_signature_verifies() {
        let r = reporter();
        let gz = crate::tlsrpt::report::gzip(b"{}");
        for (pem, record) in [rsa_key(), ed25519_key()] {
            let dkim = Dkim::from_pem(&pem, "example.com", "sel").unwrap();
            let msg = letter(&r, &gz).compose(Some(&dkim)).unwrap();
            let head = String::from_utf8_lossy(&msg[..msg.len().min(2000)]).to_string();
            assert!(head.starts_with("DKIM-Signature: "), "{head}");
            let sig_field = head
                .split("\r\n")
                .take_while(|l| !l.starts_with("From:"))
                .collect::<String>();
            assert!(
                sig_field.contains("d=example.com") && sig_field.contains("s=sel"),
                "{sig_field}"
            );
            assert!(
                !sig_field.contains(" l="),
                "no body length limit: {sig_field}"
            );
            for h in [
                "tls-report-domain",
                "tls-report-submitter",
                "subject",
                "from",
            ] {
                assert!(
                    sig_field.to_ascii_lowercase().contains(h),
                    "{h} signed: {sig_field}"
                );
            }
            assert_eq!(verify(&msg, &record).await, DkimResult::Pass, "{dkim:?}");
            // The signature covers the report: a changed byte fails it.
            let mut tampered = msg.clone();
            let at = tampered.len() - 60;
            tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
            assert_ne!(verify(&tampered, &record).await, DkimResult::Pass);
        }
    }

    #[test]
    fn bad_keys_are_refused_with_the_reason() {
        assert!(Dkim::from_pem(b"not pem", "example.com", "s")
            .unwrap_err()
            .starts_with("no PEM private key"));
        let cert = rcgen::generate_simple_self_signed(vec!["x.example".into()]).unwrap();
        assert!(Dkim::from_pem(cert.cert.pem().as_bytes(), "example.com", "s").is_err());
        let ec = rcgen::KeyPair::generate().unwrap().serialize_pem();
        assert!(Dkim::from_pem(ec.as_bytes(), "example.com", "s")
            .unwrap_err()
            .starts_with("not an RSA or Ed25519 private key"));
    }
}
