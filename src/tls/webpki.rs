//! WebPKI (PKIX) validation for MTA-STS (RFC 8461 §3.3, §4.2): the
//! trusted roots (the system trust store plus `[mta_sts] ca_file`), the
//! client configuration of HTTPS policy fetches, and telling a
//! certificate failure apart from other trouble in an error chain.
//!
//! Names are checked by rustls-webpki: a SAN dNSName must match the name
//! asked for, a wildcard only as the whole left-most label, the subject
//! CN is never used. Handshake signatures are always verified.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};

/// The trust anchors WebPKI validation uses.
#[derive(Clone)]
pub struct Roots {
    store: Arc<RootCertStore>,
    /// How many came from the system store and from `ca_file`.
    pub system: usize,
    pub extra: usize,
}

impl std::fmt::Debug for Roots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Roots({} system, {} from ca_file)",
            self.system, self.extra
        )
    }
}

/// Why the roots could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum RootsError {
    #[error("mta_sts.ca_file {path}: {cause}")]
    CaFile { path: PathBuf, cause: String },
}

impl Roots {
    /// The system trust store (as OpenSSL finds it: `SSL_CERT_FILE`,
    /// `SSL_CERT_DIR`, else the distribution's bundle) plus every
    /// certificate of the PEM file `ca_file`. An unreadable or empty
    /// `ca_file` is an error; an empty system store is not (the caller
    /// warns when there are no roots at all).
    pub fn load(ca_file: Option<&Path>, system: bool) -> Result<Roots, RootsError> {
        let mut store = RootCertStore::empty();
        let mut n_system = 0;
        if system {
            let found = rustls_native_certs::load_native_certs();
            let (added, _ignored) = store.add_parsable_certificates(found.certs);
            n_system = added;
        }
        let mut extra = 0;
        if let Some(path) = ca_file {
            let fail = |cause: String| RootsError::CaFile {
                path: path.to_owned(),
                cause,
            };
            let pem = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<_, _>>()
                .map_err(|e| fail(format!("not PEM certificates: {e}")))?;
            if certs.is_empty() {
                return Err(fail("holds no PEM certificate".into()));
            }
            for c in certs {
                store
                    .add(c)
                    .map_err(|e| fail(format!("not a usable trust anchor: {e}")))?;
                extra += 1;
            }
        }
        Ok(Roots {
            store: Arc::new(store),
            system: n_system,
            extra,
        })
    }

    /// No trust anchor at all: every WebPKI check fails.
    pub fn none() -> Roots {
        Roots {
            store: Arc::new(RootCertStore::empty()),
            system: 0,
            extra: 0,
        }
    }

    /// Roots from PEM text (tests and the lab's CA).
    pub fn from_pem(pem: &[u8]) -> Result<Roots, String> {
        let mut store = RootCertStore::empty();
        let mut extra = 0;
        for c in CertificateDer::pem_slice_iter(pem) {
            store
                .add(c.map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?;
            extra += 1;
        }
        Ok(Roots {
            store: Arc::new(store),
            system: 0,
            extra,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.store.is_empty()
    }

    /// rustls's WebPKI verifier over these roots (`None` without roots:
    /// nothing can be validated).
    pub(crate) fn verifier(&self) -> Option<Arc<WebPkiServerVerifier>> {
        WebPkiServerVerifier::builder_with_provider(self.store.clone(), super::provider())
            .build()
            .ok()
    }
}

/// The client configuration of HTTPS policy fetches: WebPKI validation
/// of `mta-sts.<domain>` against `roots`, TLS 1.2 and 1.3. Without roots
/// every certificate fails validation.
pub fn https_config(roots: &Roots) -> ClientConfig {
    let verifier: Arc<dyn rustls::client::danger::ServerCertVerifier> = match roots.verifier() {
        Some(v) => v,
        None => Arc::new(NoRoots {
            provider: super::provider(),
        }),
    };
    super::config::https_config(verifier)
}

/// A verifier for when no root is trusted: every chain fails.
#[derive(Debug)]
struct NoRoots {
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl rustls::client::danger::ServerCertVerifier for NoRoots {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Err(rustls::Error::InvalidCertificate(
            rustls::CertificateError::UnknownIssuer,
        ))
    }

    super::handshake_signatures_verified!();
}

/// If a certificate check is what failed somewhere in `err`'s chain of
/// causes, a description of it ("invalid peer certificate: UnknownIssuer").
pub fn certificate_problem(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(r) = e.downcast_ref::<rustls::Error>() {
            return match r {
                rustls::Error::InvalidCertificate(c) => Some(describe(c)),
                _ => None,
            };
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if let Some(inner) = io.get_ref() {
                if let Some(found) = certificate_problem(inner) {
                    return Some(found);
                }
            }
        }
        cur = e.source();
    }
    None
}

/// An operator's description of a certificate error.
pub fn describe(e: &rustls::CertificateError) -> String {
    use rustls::CertificateError as C;
    match e {
        C::UnknownIssuer => "the certificate chain does not lead to a trusted root".into(),
        C::Expired | C::ExpiredContext { .. } => "the certificate has expired".into(),
        C::NotValidYet | C::NotValidYetContext { .. } => "the certificate is not valid yet".into(),
        C::NotValidForName | C::NotValidForNameContext { .. } => {
            "the certificate is not valid for the name (no matching SAN dNSName)".into()
        }
        C::BadSignature => "a certificate signature does not verify".into(),
        C::Revoked => "the certificate is revoked".into(),
        other => format!("certificate error: {other:?}"),
    }
}

/// How an MTA-STS MX certificate check ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebPkiVerdict {
    /// The chain leads to a trusted root and the leaf is valid for the
    /// host name: what was matched ("mx.example.com, issued by ...").
    Valid(String),
    /// Why not.
    Invalid(String),
}

/// The MX certificate check of MTA-STS (RFC 8461 §4.2): the chain must
/// lead to a trusted root, be within its validity dates, and the leaf
/// must carry a SAN dNSName matching the MX host name (the name the
/// connection was made for), a wildcard only as the whole left-most
/// label. Handshake signatures are always verified.
///
/// `enforce`: a failed check fails the handshake. Otherwise (a `testing`
/// policy) the check is made and remembered, and any chain is accepted.
#[derive(Debug)]
pub struct StsVerifier {
    inner: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
    enforce: bool,
    verdict: std::sync::Mutex<Option<WebPkiVerdict>>,
}

impl StsVerifier {
    pub fn new(roots: &Roots, enforce: bool) -> StsVerifier {
        StsVerifier {
            inner: roots.verifier(),
            provider: super::provider(),
            enforce,
            verdict: std::sync::Mutex::new(None),
        }
    }

    /// The outcome of the last certificate check (none before the
    /// server's certificate arrived).
    pub fn verdict(&self) -> Option<WebPkiVerdict> {
        self.verdict
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn judge(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &rustls::pki_types::ServerName<'_>,
        ocsp: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> WebPkiVerdict {
        use rustls::client::danger::ServerCertVerifier;
        let Some(inner) = &self.inner else {
            return WebPkiVerdict::Invalid("no trusted root certificate is configured".into());
        };
        match inner.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Ok(_) => WebPkiVerdict::Valid(format!(
                "WebPKI: {} issued by {}",
                server_name.to_str(),
                issuer(end_entity)
            )),
            Err(rustls::Error::InvalidCertificate(c)) => WebPkiVerdict::Invalid(describe(&c)),
            Err(e) => WebPkiVerdict::Invalid(e.to_string()),
        }
    }
}

/// The issuer's distinguished name of a DER certificate, for logs.
fn issuer(der: &CertificateDer<'_>) -> String {
    match x509_parser::parse_x509_certificate(der.as_ref()) {
        Ok((_, cert)) => cert.issuer().to_string(),
        Err(_) => "an unparsable issuer".into(),
    }
}

impl rustls::client::danger::ServerCertVerifier for StsVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &rustls::pki_types::ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        let verdict = self.judge(end_entity, intermediates, server_name, ocsp_response, now);
        let valid = matches!(verdict, WebPkiVerdict::Valid(_));
        *self.verdict.lock().unwrap_or_else(|p| p.into_inner()) = Some(verdict);
        if valid || !self.enforce {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    super::handshake_signatures_verified!();
}

pub use super::config::sts_config;

/// The MTA-STS certificate check of a chain seen elsewhere (the `check`
/// command): leaf first, valid for `name` under `roots` at `now`.
pub fn verify_chain(
    roots: &Roots,
    chain: &[CertificateDer<'static>],
    name: &str,
    now: rustls::pki_types::UnixTime,
) -> WebPkiVerdict {
    use rustls::client::danger::ServerCertVerifier;
    let Some((leaf, rest)) = chain.split_first() else {
        return WebPkiVerdict::Invalid("no certificate was presented".into());
    };
    let Ok(server_name) = rustls::pki_types::ServerName::try_from(name.to_owned()) else {
        return WebPkiVerdict::Invalid(format!("{name:?} is not a host name"));
    };
    let Some(inner) = roots.verifier() else {
        return WebPkiVerdict::Invalid("no trusted root certificate is configured".into());
    };
    match inner.verify_server_cert(leaf, rest, &server_name, &[], now) {
        Ok(_) => WebPkiVerdict::Valid(format!("WebPKI: {name} issued by {}", issuer(leaf))),
        Err(rustls::Error::InvalidCertificate(c)) => WebPkiVerdict::Invalid(describe(&c)),
        Err(e) => WebPkiVerdict::Invalid(e.to_string()),
    }
}
