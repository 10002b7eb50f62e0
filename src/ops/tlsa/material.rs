//! Certificate and key files as `tlsa` reads them (PEM or DER; a private
//! key gives only its public half), the issuance path of a chain, and the
//! certificate or key a record designates, with its records.

use std::path::Path;

use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::x509::SubjectPublicKeyInfo;

use super::TlsaError;
use crate::dns::Tlsa;
use crate::ops::certs::{describe_cert, parse_cert};
use crate::tls::pki_types::pem::{PemObject, SectionKind};
use crate::tls::pki_types::{
    PrivateKeyDer, PrivatePkcs1KeyDer, PrivatePkcs8KeyDer, PrivateSec1KeyDer,
};
use crate::tls::{tlsa, CertificateDer};

/// What a certificate or key file holds.
#[derive(Debug, Clone)]
pub enum Material {
    /// Certificates in file order (the first is the one meant).
    Certificates(Vec<CertificateDer<'static>>),
    /// A public key (SubjectPublicKeyInfo, DER): from a PUBLIC KEY file, or
    /// the public half of a private key.
    Key { spki: Vec<u8>, from_private: bool },
}

/// Reads a certificate or key file (see [`parse_material`]).
pub fn read_material(path: &Path) -> Result<Material, TlsaError> {
    let bytes = std::fs::read(path).map_err(|source| TlsaError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse_material(&bytes).map_err(|why| TlsaError::File {
        path: path.to_owned(),
        why,
    })
}

/// PEM with certificates (a key in the same file is then ignored), or a
/// public or private key; or a DER certificate or SubjectPublicKeyInfo.
/// A private key gives only its public half.
pub fn parse_material(bytes: &[u8]) -> Result<Material, String> {
    let mut sections = Vec::new();
    for section in <(SectionKind, Vec<u8>)>::pem_slice_iter(bytes) {
        sections.push(section.map_err(|e| format!("bad PEM: {e}"))?);
    }
    if sections.is_empty() {
        return parse_der(bytes);
    }
    let certs: Vec<CertificateDer<'static>> = sections
        .iter()
        .filter(|(kind, _)| *kind == SectionKind::Certificate)
        .map(|(_, der)| CertificateDer::from(der.clone()))
        .collect();
    if !certs.is_empty() {
        for (i, cert) in certs.iter().enumerate() {
            parse_cert(cert).map_err(|e| format!("certificate {} of the file: {e}", i + 1))?;
        }
        return Ok(Material::Certificates(certs));
    }
    let (kind, der) = sections
        .into_iter()
        .find(|(kind, _)| {
            matches!(
                kind,
                SectionKind::PublicKey
                    | SectionKind::PrivateKey
                    | SectionKind::RsaPrivateKey
                    | SectionKind::EcPrivateKey
            )
        })
        .ok_or("no certificate or key in it")?;
    let private = match kind {
        SectionKind::PublicKey => {
            check_spki(&der)?;
            return Ok(Material::Key {
                spki: der,
                from_private: false,
            });
        }
        SectionKind::RsaPrivateKey => PrivateKeyDer::Pkcs1(PrivatePkcs1KeyDer::from(der)),
        SectionKind::EcPrivateKey => PrivateKeyDer::Sec1(PrivateSec1KeyDer::from(der)),
        _ => PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(der)),
    };
    Ok(Material::Key {
        spki: public_half(&private)?,
        from_private: true,
    })
}

/// A file without a PEM section we know: DER, or a PEM label we do not
/// read (said so, with what to do about it).
fn parse_der(bytes: &[u8]) -> Result<Material, String> {
    let text = String::from_utf8_lossy(bytes);
    if let Some(label) = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("-----BEGIN "))
        .and_then(|l| l.strip_suffix("-----"))
    {
        return Err(match label {
            "ENCRYPTED PRIVATE KEY" => "an encrypted private key: give its certificate, or its public key (`openssl pkey -in FILE -pubout`)".to_owned(),
            "RSA PUBLIC KEY" => "a PKCS#1 RSA public key: convert it with `openssl rsa -RSAPublicKey_in -in FILE -pubout`".to_owned(),
            other => format!("no certificate or key in it (a PEM \"{other}\" section)"),
        });
    }
    if X509Certificate::from_der(bytes).is_ok_and(|(rest, _)| rest.is_empty()) {
        return Ok(Material::Certificates(vec![CertificateDer::from(
            bytes.to_vec(),
        )]));
    }
    if SubjectPublicKeyInfo::from_der(bytes).is_ok_and(|(rest, _)| rest.is_empty()) {
        return Ok(Material::Key {
            spki: bytes.to_vec(),
            from_private: false,
        });
    }
    Err("neither PEM nor a DER certificate or public key".to_owned())
}

fn check_spki(der: &[u8]) -> Result<(), String> {
    match SubjectPublicKeyInfo::from_der(der) {
        Ok(([], _)) => Ok(()),
        _ => Err("the PUBLIC KEY section is not a SubjectPublicKeyInfo".to_owned()),
    }
}

/// The SubjectPublicKeyInfo of a private key, as the crypto provider
/// derives it (RSA, ECDSA P-256/P-384, Ed25519).
fn public_half(key: &PrivateKeyDer<'_>) -> Result<Vec<u8>, String> {
    crate::tls::config::public_key_of(key)
        .map_err(|e| {
            format!("cannot use the private key ({e}); give its certificate, or its public key (`openssl pkey -in FILE -pubout`)")
        })?
        .ok_or_else(|| "cannot derive the public key of this private key".to_owned())
}

/// The certificates ordered along the issuance path from the first one
/// (each next one issued the previous, by name), and those not on it.
pub fn issuance_path(
    certs: Vec<CertificateDer<'static>>,
) -> (Vec<CertificateDer<'static>>, Vec<CertificateDer<'static>>) {
    let names = |der: &CertificateDer<'_>| {
        parse_cert(der)
            .map(|c| (c.subject().as_raw().to_vec(), c.issuer().as_raw().to_vec()))
            .ok()
    };
    let mut rest = certs;
    if rest.is_empty() {
        return (Vec::new(), Vec::new());
    }
    let mut path = vec![rest.remove(0)];
    while let Some((subject, issuer)) = path.last().and_then(names) {
        if subject == issuer {
            break; // self-issued: the top
        }
        let next = rest
            .iter()
            .position(|c| names(c).is_some_and(|(s, _)| s == issuer));
        match next {
            Some(i) => path.push(rest.remove(i)),
            None => break,
        }
    }
    (path, rest)
}

/// The certificate or bare public key a record designates.
#[derive(Debug, Clone)]
pub struct Designated {
    /// The whole certificate, when it is one.
    pub cert: Option<CertificateDer<'static>>,
    /// Its SubjectPublicKeyInfo (DER).
    pub spki: Vec<u8>,
    /// What it is, for messages.
    pub about: String,
}

impl Designated {
    pub fn certificate(cert: CertificateDer<'static>, about: String) -> Result<Self, String> {
        let spki = parse_cert(&cert)?.tbs_certificate.subject_pki.raw.to_vec();
        Ok(Designated {
            cert: Some(cert),
            spki,
            about,
        })
    }

    pub fn key(spki: Vec<u8>, about: String) -> Self {
        Designated {
            cert: None,
            spki,
            about,
        }
    }

    /// The first certificate of a file, or its key.
    pub fn from_material(material: Material, path: &Path) -> Result<Self, TlsaError> {
        match material {
            Material::Certificates(certs) => {
                let file_error = |why: String| TlsaError::File {
                    path: path.to_owned(),
                    why,
                };
                let first = certs
                    .into_iter()
                    .next()
                    .ok_or_else(|| file_error("no certificate in it".to_owned()))?;
                let about = format!(
                    "the certificate in {} ({})",
                    path.display(),
                    describe_cert(&first)
                );
                Designated::certificate(first, about).map_err(file_error)
            }
            Material::Key { spki, from_private } => {
                let about = if from_private {
                    format!("the public key of the private key in {}", path.display())
                } else {
                    format!("the public key in {}", path.display())
                };
                Ok(Designated::key(spki, about))
            }
        }
    }

    /// What `selector` selects, if this has it (a bare key has no
    /// certificate for selector 0).
    pub fn selected(&self, selector: u8) -> Option<&[u8]> {
        match selector {
            0 => self.cert.as_ref().map(|c| c.as_ref()),
            1 => Some(&self.spki),
            _ => None,
        }
    }

    /// The record of `usage selector mtype` for this.
    pub fn record(&self, usage: u8, selector: u8, mtype: u8) -> Result<Tlsa, TlsaError> {
        let selected = self.selected(selector).ok_or_else(|| {
            if selector > 1 {
                return TlsaError::Usage(format!("unknown selector {selector}"));
            }
            TlsaError::Usage(format!(
                "selector {selector} designates the whole certificate, but {} is a key, not a certificate; use selector 1 (the public key): that is how the next key of a \"current + next\" rollover is published before its certificate exists",
                self.about
            ))
        })?;
        let data = tlsa::association_data(mtype, selected)
            .ok_or_else(|| TlsaError::Usage(format!("unknown matching type {mtype}")))?;
        Ok(Tlsa {
            usage,
            selector,
            mtype,
            data,
        })
    }

    /// Whether the record's data is this certificate's or key's, for the
    /// record's own selector and matching type (its usage is not judged).
    pub fn matches(&self, record: &Tlsa) -> bool {
        tlsa::matches(record, self.cert.as_deref(), Some(&self.spki))
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(in crate::ops::tlsa) fn self_signed(
        sans: &[&str],
        ca: bool,
    ) -> (CertificateDer<'static>, rcgen::KeyPair) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params =
            rcgen::CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        if ca {
            params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        }
        let cert = params.self_signed(&key).unwrap();
        (cert.der().clone(), key)
    }

    #[test]
    fn unreadable_files_say_why() {
        let cases = [
            (
                "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
                "encrypted private key",
            ),
            (
                "-----BEGIN RSA PUBLIC KEY-----\nAAAA\n-----END RSA PUBLIC KEY-----\n",
                "-RSAPublicKey_in",
            ),
            (
                "-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n",
                "no certificate or key",
            ),
            ("hello", "neither PEM nor"),
            ("", "neither PEM nor"),
        ];
        for (text, want) in cases {
            let err = parse_material(text.as_bytes()).unwrap_err();
            assert!(err.contains(want), "{text:?}: {err}");
        }
    }

    #[test]
    fn private_key_gives_the_certificates_public_key() {
        let (cert, key) = self_signed(&["mx.example"], false);
        let from_key = match parse_material(key.serialize_pem().as_bytes()).unwrap() {
            Material::Key { spki, from_private } => {
                assert!(from_private);
                spki
            }
            other => panic!("{other:?}"),
        };
        let d = Designated::certificate(cert.clone(), String::new()).unwrap();
        assert_eq!(from_key, d.spki);
        assert_eq!(from_key, key.public_key_der());
        // Ed25519 in ring's PKCS#8 v2 (OpenSSL's v1 is tested in
        // tests/tlsa_ops.rs).
        let ed = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        assert!(matches!(
            parse_material(ed.serialize_pem().as_bytes()).unwrap(),
            Material::Key { spki, .. } if spki == ed.public_key_der()
        ));
        // DER certificates are read too.
        assert!(matches!(
            parse_material(cert.as_ref()).unwrap(),
            Material::Certificates(c) if c == vec![cert.clone()]
        ));
    }

    #[test]
    fn selector_0_needs_a_certificate() {
        let (_, key) = self_signed(&["mx.example"], false);
        let d = Designated::key(key.public_key_der(), "the public key in k.pem".into());
        let err = d.record(3, 0, 1).unwrap_err().to_string();
        assert!(err.contains("use selector 1"), "{err}");
        assert!(d.record(3, 1, 1).is_ok());
    }

    #[test]
    fn path_follows_issuer_names() {
        let root_key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.distinguished_name.push(rcgen::DnType::CommonName, "Root");
        let root = p.self_signed(&root_key).unwrap();
        let int_key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.distinguished_name.push(rcgen::DnType::CommonName, "Int");
        let int = p.signed_by(&int_key, &root, &root_key).unwrap();
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(vec!["mx.example".to_string()]).unwrap();
        p.distinguished_name = rcgen::DistinguishedName::new();
        let leaf = p.signed_by(&leaf_key, &int, &int_key).unwrap();
        let (stray, _) = self_signed(&["other.example"], true);
        let (path, unused) = issuance_path(vec![
            leaf.der().clone(),
            root.der().clone(),
            stray.clone(),
            int.der().clone(),
        ]);
        assert_eq!(
            path,
            vec![leaf.der().clone(), int.der().clone(), root.der().clone()]
        );
        assert_eq!(unused, vec![stray]);
        assert!(
            describe_cert(root.der()).starts_with("subject CN=Root, issuer CN=Root, valid until ")
        );
        assert!(describe_cert(leaf.der())
            .starts_with("no subject name, DNS names mx.example, issuer CN=Int"));
    }
}
