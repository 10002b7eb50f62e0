//! The DANE certificate verifier (RFC 7672 §3, RFC 7671; dane-rules §3):
//! judges a server's certificate chain against the host's TLSA records,
//! inside the rustls handshake.
//!
//! What it does:
//! - [`select_records`] keeps the usable records (dane-rules §2.3, via
//!   [`crate::tls::tlsa::usability`]) and applies digest agility (RFC 7671 §9):
//!   among the records of one usage and selector, when both SHA-256 (1) and
//!   SHA-512 (2) records are present only the SHA-512 ones are used, so a
//!   stale or wrong SHA-256 record next to a SHA-512 one never matches.
//!   Full-data records (matching type 0) are not digests and always stay.
//! - [`verify_chain`] is the pure decision, no I/O. DANE-EE (3) records are
//!   matched against the leaf only: no chain, no name check, no validity
//!   dates. DANE-TA (2) records name a trust anchor: a presented certificate
//!   other than the leaf, or, for `2 0 0` / `2 1 0`, the certificate or bare
//!   public key published in DNS even when the server does not send it. The
//!   path leaf → anchor is then built from the presented certificates (in
//!   any order) and verified with rustls-webpki: signatures, validity dates,
//!   CA basic constraints, path length and name constraints, and the
//!   server-auth extended key usage when the extension is present. Finally a
//!   SAN dNSName of the leaf must equal one of the reference identifiers
//!   ([`ReferenceIds`]); a wildcard is allowed in the left-most label only
//!   and stands for exactly one label. The subject CN is never used.
//! - [`DaneVerifier`] is the rustls `ServerCertVerifier` around it. It
//!   remembers what matched (for the "Verified"/"Trusted" log line) or why
//!   nothing did (for the 4.7.5 deferral text), and delegates the handshake
//!   signatures to the crypto provider, always: a server replaying someone
//!   else's certificate without the key fails the handshake.
//!
//! What it does not do:
//! - No DNS: the records come from the caller, already known to be secure.
//! - No PKIX: usages 0 and 1 are unusable for SMTP and never match.
//! - No revocation checks (none in DANE for SMTP) and no checks on the
//!   trust anchor itself: as RFC 5280 §6.1.1 treats trust anchor
//!   information, only its name and key are used, so its own validity
//!   dates and basic constraints are not examined (OpenSSL's DANE does the
//!   same for the certificate a TA record designates). A usage-2 record
//!   that matches the leaf itself designates no trust anchor.
//! - No session caching policy: a resumed TLS session skips certificate
//!   verification in rustls, so a configuration built around a
//!   `DaneVerifier` must not resume sessions made under other records.

use std::fmt;
use std::sync::{Arc, Mutex};

use rustls::client::danger::{ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{
    CertificateDer, Der, DnsName, ServerName, SignatureVerificationAlgorithm, TrustAnchor, UnixTime,
};
use rustls::{CertificateError, OtherError};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::dns::Tlsa;

const DANE_TA: u8 = 2;
const DANE_EE: u8 = 3;

/// The names a DANE-TA certificate may be issued for (dane-rules §3.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferenceIds {
    pub tlsa_base: String,
    pub mx_host: String,
    pub nexthop: String,
}

impl ReferenceIds {
    /// The distinct names, in the order TLSA base, MX host, next hop,
    /// without trailing dots.
    fn distinct(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for name in [&self.tlsa_base, &self.mx_host, &self.nexthop] {
            let name = name.trim_end_matches('.');
            if !name.is_empty() && !out.iter().any(|n| n.eq_ignore_ascii_case(name)) {
                out.push(name.to_owned());
            }
        }
        out
    }
}

/// What matched: the record, and the depth of the certificate it matched
/// in the verified path (0 = leaf). For a DANE-TA anchor published in DNS
/// and absent from the chain, `depth` is where it anchored the path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaneMatch {
    pub usage: u8,
    pub selector: u8,
    pub mtype: u8,
    pub data: Vec<u8>,
    pub depth: usize,
    pub from_dns: bool,
}

impl DaneMatch {
    fn new(record: &Tlsa, depth: usize, from_dns: bool) -> DaneMatch {
        DaneMatch {
            usage: record.usage,
            selector: record.selector,
            mtype: record.mtype,
            data: record.data.clone(),
            depth,
            from_dns,
        }
    }
}

impl fmt::Display for DaneMatch {
    /// `DANE-EE 3 1 1 2c8a4f01… at depth 0`,
    /// `DANE-TA 2 1 0 30593013… at depth 2 (from DNS)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.usage {
            DANE_TA => f.write_str("DANE-TA")?,
            DANE_EE => f.write_str("DANE-EE")?,
            other => write!(f, "usage-{other}")?,
        }
        write!(f, " {} {} {} ", self.usage, self.selector, self.mtype)?;
        for b in self.data.iter().take(4) {
            write!(f, "{b:02x}")?;
        }
        if self.data.len() > 4 {
            f.write_str("…")?;
        }
        write!(f, " at depth {}", self.depth)?;
        if self.from_dns {
            f.write_str(" (from DNS)")?;
        }
        Ok(())
    }
}

/// Why a chain did not verify. The texts go into deferral replies and log
/// lines as they are.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DaneFailure {
    /// Every record was unusable (or there were none): nothing can match.
    #[error("no usable TLSA record at {tlsa_name}")]
    NoUsableRecords { tlsa_name: String },
    /// No DANE-EE record matched the leaf and no DANE-TA record designated
    /// a trust anchor.
    #[error("no TLSA record of {tlsa_name} matches the certificate chain")]
    NoMatch { tlsa_name: String },
    /// A DANE-TA anchor was found but no path from the leaf to it verified
    /// (the most specific problem over all matched anchors).
    #[error("DANE-TA path to the matched trust anchor does not verify: {0}")]
    TaPath(PathProblem),
    /// The path verified but the leaf is not issued for any reference
    /// identifier.
    #[error("certificate name does not match any of {} (DANE-TA)", names.join(", "))]
    NameMismatch { names: Vec<String> },
}

/// What is wrong with a DANE-TA path, in rustls-webpki's terms made
/// readable. Ordered from least to most specific (see `rank`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathProblem {
    #[error("no chain of the presented certificates leads to the trust anchor")]
    NoPathToAnchor,
    #[error("{0}")]
    Other(String),
    #[error("malformed certificate: {0}")]
    Malformed(String),
    #[error("the server certificate is a CA certificate")]
    LeafIsCa,
    #[error("an issuing certificate is not a CA")]
    IssuerNotCa,
    #[error("path length constraint exceeded")]
    PathLength,
    #[error("name constraints of an issuer exclude the certificate")]
    NameConstraints,
    #[error("extended key usage does not allow TLS server authentication")]
    NotForServerAuth,
    #[error("unsupported certificate signature algorithm")]
    UnsupportedAlgorithm,
    #[error("a certificate signature does not verify")]
    BadSignature,
    #[error("a certificate is not yet valid")]
    NotYetValid,
    #[error("a certificate has expired")]
    Expired,
}

impl PathProblem {
    fn from_webpki(err: &webpki::Error) -> PathProblem {
        use webpki::Error as E;
        #[allow(deprecated)]
        match err {
            E::UnknownIssuer => PathProblem::NoPathToAnchor,
            E::CertExpired { .. } => PathProblem::Expired,
            E::CertNotValidYet { .. } => PathProblem::NotYetValid,
            E::InvalidSignatureForPublicKey => PathProblem::BadSignature,
            E::UnsupportedSignatureAlgorithm
            | E::UnsupportedSignatureAlgorithmContext(_)
            | E::UnsupportedSignatureAlgorithmForPublicKey
            | E::UnsupportedSignatureAlgorithmForPublicKeyContext(_)
            | E::SignatureAlgorithmMismatch => PathProblem::UnsupportedAlgorithm,
            E::RequiredEkuNotFound | E::RequiredEkuNotFoundContext(_) | E::EmptyEkuExtension => {
                PathProblem::NotForServerAuth
            }
            E::NameConstraintViolation => PathProblem::NameConstraints,
            E::PathLenConstraintViolated => PathProblem::PathLength,
            E::EndEntityUsedAsCa => PathProblem::IssuerNotCa,
            E::CaUsedAsEndEntity => PathProblem::LeafIsCa,
            E::BadDer
            | E::BadDerTime
            | E::TrailingData(_)
            | E::MalformedExtensions
            | E::ExtensionValueInvalid
            | E::InvalidCertValidity
            | E::InvalidSerialNumber
            | E::UnsupportedCertVersion => PathProblem::Malformed(err.to_string()),
            other => PathProblem::Other(other.to_string()),
        }
    }

    /// How useful the problem is to an operator; the most specific one is
    /// reported when several anchors fail.
    fn rank(&self) -> u8 {
        match self {
            PathProblem::NoPathToAnchor => 0,
            PathProblem::Other(_) => 1,
            PathProblem::Malformed(_) => 2,
            PathProblem::LeafIsCa | PathProblem::IssuerNotCa => 3,
            PathProblem::PathLength => 4,
            PathProblem::NameConstraints => 5,
            PathProblem::NotForServerAuth => 6,
            PathProblem::UnsupportedAlgorithm => 7,
            PathProblem::BadSignature => 8,
            PathProblem::NotYetValid | PathProblem::Expired => 9,
        }
    }
}

/// Usability (dane-rules §2.3) and digest agility (RFC 7671 §9): the
/// records actually used, in their original order.
pub fn select_records(records: &[Tlsa]) -> Vec<Tlsa> {
    let usable: Vec<&Tlsa> = records
        .iter()
        .filter(|r| crate::tls::tlsa::usability(r).is_ok())
        .collect();
    let has = |usage: u8, selector: u8, mtype: u8| {
        usable
            .iter()
            .any(|r| r.usage == usage && r.selector == selector && r.mtype == mtype)
    };
    usable
        .iter()
        .filter(|r| !(r.mtype == 1 && has(r.usage, r.selector, 2)))
        .map(|r| (*r).clone())
        .collect()
}

/// Pure check, no I/O: `records` are the host's TLSA records (unusable
/// ones are dropped and digest agility applied here), the chain is as
/// presented (leaf first, then the rest in any order). Path signatures are
/// checked with [`crate::tls::chain_algs::chain_algorithms`].
pub fn verify_chain(
    records: &[Tlsa],
    port: u16,
    names: &ReferenceIds,
    end_entity: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    now: UnixTime,
) -> Result<DaneMatch, DaneFailure> {
    let algs = super::chain_algs::chain_algorithms();
    let tlsa_name = format!("_{port}._tcp.{}", names.tlsa_base.trim_end_matches('.'));
    let records = select_records(records);
    if records.is_empty() {
        return Err(DaneFailure::NoUsableRecords { tlsa_name });
    }
    let leaf = Presented::new(end_entity);

    // DANE-EE: the leaf alone decides.
    if let Some(r) = records
        .iter()
        .find(|r| r.usage == DANE_EE && leaf.matches(r))
    {
        return Ok(DaneMatch::new(r, 0, false));
    }

    let anchors = ta_candidates(&records, &leaf, intermediates);
    if anchors.is_empty() {
        return Err(DaneFailure::NoMatch { tlsa_name });
    }
    let ee = webpki::EndEntityCert::try_from(end_entity)
        .map_err(|e| DaneFailure::TaPath(PathProblem::from_webpki(&e)))?;
    let mut worst: Option<PathProblem> = None;
    for anchor in &anchors {
        match anchor.verify_path(algs, &ee, intermediates, now) {
            Ok(depth) => {
                check_names(&ee, names)?;
                return Ok(DaneMatch::new(anchor.record, depth, anchor.is_from_dns()));
            }
            Err(problem) => {
                if worst.as_ref().is_none_or(|w| problem.rank() > w.rank()) {
                    worst = Some(problem);
                }
            }
        }
    }
    Err(DaneFailure::TaPath(
        worst.unwrap_or(PathProblem::NoPathToAnchor),
    ))
}

/// A presented certificate and, when it parses, its SubjectPublicKeyInfo.
struct Presented<'a> {
    der: &'a [u8],
    spki: Option<&'a [u8]>,
}

impl<'a> Presented<'a> {
    fn new(der: &'a [u8]) -> Presented<'a> {
        let spki = X509Certificate::from_der(der)
            .ok()
            .map(|(_, cert)| cert.tbs_certificate.subject_pki.raw);
        Presented { der, spki }
    }

    fn matches(&self, record: &Tlsa) -> bool {
        super::tlsa::matches(record, Some(self.der), self.spki)
    }
}

/// A trust anchor a DANE-TA record designates.
struct Anchor<'r, 'c> {
    record: &'r Tlsa,
    source: AnchorSource<'c>,
}

enum AnchorSource<'c> {
    /// A presented certificate other than the leaf.
    Chain(&'c CertificateDer<'c>),
    /// `2 0 0`: a full certificate from DNS.
    DnsCert,
    /// `2 1 0`: a bare SubjectPublicKeyInfo from DNS; its subject name is
    /// unknown, so each issuer name of the presented certificates is tried.
    DnsKey { subjects: Vec<Vec<u8>> },
}

/// The trust anchors designated by usage-2 records: presented certificates
/// first (in presented order), then full data from DNS not presented.
fn ta_candidates<'r, 'c>(
    records: &'r [Tlsa],
    leaf: &Presented<'_>,
    intermediates: &'c [CertificateDer<'c>],
) -> Vec<Anchor<'r, 'c>> {
    let ta_records = || records.iter().filter(|r| r.usage == DANE_TA);
    let chain: Vec<(&CertificateDer<'_>, Presented<'_>)> = intermediates
        .iter()
        .filter(|c| c.as_ref() != leaf.der)
        .map(|c| (c, Presented::new(c)))
        .collect();
    let mut anchors = Vec::new();
    for (der, presented) in &chain {
        for record in ta_records().filter(|r| presented.matches(r)) {
            anchors.push(Anchor {
                record,
                source: AnchorSource::Chain(der),
            });
        }
    }
    for record in ta_records().filter(|r| r.mtype == 0) {
        if leaf.matches(record) || chain.iter().any(|(_, p)| p.matches(record)) {
            continue;
        }
        let source = if record.selector == 0 {
            AnchorSource::DnsCert
        } else {
            let mut subjects: Vec<Vec<u8>> = Vec::new();
            for der in std::iter::once(leaf.der).chain(chain.iter().map(|(_, p)| p.der)) {
                if let Some(issuer) = issuer_name(der) {
                    if !subjects.contains(&issuer) {
                        subjects.push(issuer);
                    }
                }
            }
            AnchorSource::DnsKey { subjects }
        };
        anchors.push(Anchor { record, source });
    }
    anchors
}

impl Anchor<'_, '_> {
    fn is_from_dns(&self) -> bool {
        !matches!(self.source, AnchorSource::Chain(_))
    }

    /// Builds and verifies the path leaf → this anchor; the anchor's depth.
    fn verify_path(
        &self,
        algs: &[&dyn SignatureVerificationAlgorithm],
        ee: &webpki::EndEntityCert<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<usize, PathProblem> {
        let dns_cert;
        let anchors: Vec<TrustAnchor<'_>> = match &self.source {
            AnchorSource::Chain(der) => vec![anchor_from_cert(der)?],
            AnchorSource::DnsCert => {
                dns_cert = CertificateDer::from(self.record.data.as_slice());
                vec![anchor_from_cert(&dns_cert)?]
            }
            AnchorSource::DnsKey { subjects } => {
                let spki = der_contents(&self.record.data).ok_or_else(|| {
                    PathProblem::Malformed("TLSA public key is not a DER SEQUENCE".into())
                })?;
                subjects
                    .iter()
                    .map(|subject| TrustAnchor {
                        subject: Der::from_slice(subject),
                        subject_public_key_info: Der::from_slice(spki),
                        name_constraints: None,
                    })
                    .collect()
            }
        };
        let guessed_subject = matches!(self.source, AnchorSource::DnsKey { .. });
        let mut worst: Option<PathProblem> = None;
        // One anchor at a time, so that a wrong subject guess for a bare key
        // cannot hide the verdict on the right one.
        for anchor in &anchors {
            let result = ee.verify_for_usage(
                algs,
                std::slice::from_ref(anchor),
                intermediates,
                now,
                webpki::KeyUsage::server_auth(),
                None,
                None,
            );
            match result {
                Ok(path) => return Ok(path.intermediate_certificates().count() + 1),
                Err(err) => {
                    let mut problem = PathProblem::from_webpki(&err);
                    // Under a guessed subject, a signature the key does not
                    // verify only means the guess named the wrong issuer.
                    if guessed_subject
                        && matches!(
                            problem,
                            PathProblem::BadSignature | PathProblem::UnsupportedAlgorithm
                        )
                    {
                        problem = PathProblem::NoPathToAnchor;
                    }
                    if worst.as_ref().is_none_or(|w| problem.rank() > w.rank()) {
                        worst = Some(problem);
                    }
                }
            }
        }
        Err(worst.unwrap_or(PathProblem::NoPathToAnchor))
    }
}

fn anchor_from_cert<'a>(der: &'a CertificateDer<'a>) -> Result<TrustAnchor<'a>, PathProblem> {
    webpki::anchor_from_trusted_cert(der).map_err(|e| PathProblem::from_webpki(&e))
}

/// The issuer Name of a certificate, without its SEQUENCE header (the form
/// webpki compares with a trust anchor's subject).
fn issuer_name(cert_der: &[u8]) -> Option<Vec<u8>> {
    let (_, cert) = X509Certificate::from_der(cert_der).ok()?;
    der_contents(cert.tbs_certificate.issuer.as_raw()).map(<[u8]>::to_vec)
}

/// The contents of a DER SEQUENCE that spans all of `der`.
fn der_contents(der: &[u8]) -> Option<&[u8]> {
    let (&tag, rest) = der.split_first()?;
    if tag != 0x30 {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let (bytes, rest) = rest.split_at(n);
        let len = bytes
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, rest)
    };
    (rest.len() == len).then_some(rest)
}

/// A SAN dNSName must equal one of the reference identifiers (webpki:
/// SAN only, wildcard in the left-most label for exactly one label).
fn check_names(ee: &webpki::EndEntityCert<'_>, names: &ReferenceIds) -> Result<(), DaneFailure> {
    let wanted = names.distinct();
    // Only DNS names: an address literal (a `[192.0.2.1]` route) is no
    // reference identifier for DANE.
    let matched = wanted.iter().any(|name| {
        DnsName::try_from(name.as_str()).is_ok_and(|dns| {
            ee.verify_is_valid_for_subject_name(&ServerName::DnsName(dns))
                .is_ok()
        })
    });
    if matched {
        Ok(())
    } else {
        Err(DaneFailure::NameMismatch { names: wanted })
    }
}

/// The last verdict of a [`DaneVerifier`].
#[derive(Debug, Clone, Default)]
enum Verdict {
    #[default]
    Pending,
    Matched(DaneMatch),
    Failed(DaneFailure),
}

/// The rustls verifier for a host that requires DANE. Make one per
/// connection: it remembers the verdict of the last chain it judged.
///
/// The chain is judged by [`verify_chain`]; a failure becomes
/// `rustls::Error::InvalidCertificate(CertificateError::Other(..))`
/// carrying the [`DaneFailure`]. The handshake signatures are always
/// verified by the crypto provider.
#[derive(Debug)]
pub struct DaneVerifier {
    records: Vec<Tlsa>,
    port: u16,
    names: ReferenceIds,
    provider: Arc<CryptoProvider>,
    verdict: Mutex<Verdict>,
}

impl DaneVerifier {
    pub fn new(
        records: Vec<Tlsa>,
        port: u16,
        names: ReferenceIds,
        provider: Arc<CryptoProvider>,
    ) -> Self {
        DaneVerifier {
            records,
            port,
            names,
            provider,
            verdict: Mutex::new(Verdict::Pending),
        }
    }

    /// What matched in the last verification, if it succeeded.
    pub fn matched(&self) -> Option<DaneMatch> {
        match self.verdict() {
            Verdict::Matched(m) => Some(m),
            _ => None,
        }
    }

    /// Why the last verification failed, if it did.
    pub fn failure(&self) -> Option<DaneFailure> {
        match self.verdict() {
            Verdict::Failed(f) => Some(f),
            _ => None,
        }
    }

    fn verdict(&self) -> Verdict {
        self.verdict
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    fn set_verdict(&self, verdict: Verdict) {
        *self
            .verdict
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = verdict;
    }
}

impl ServerCertVerifier for DaneVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // The reference identifiers come from the records' owner, not from
        // the SNI rustls was given.
        // Paths are judged with the same algorithms whichever engine runs
        // the handshake (the legacy engine calls this method too).
        let result = verify_chain(
            &self.records,
            self.port,
            &self.names,
            end_entity,
            intermediates,
            now,
        );
        match result {
            Ok(matched) => {
                self.set_verdict(Verdict::Matched(matched));
                Ok(ServerCertVerified::assertion())
            }
            Err(failure) => {
                self.set_verdict(Verdict::Failed(failure.clone()));
                Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                    OtherError(Arc::new(failure)),
                )))
            }
        }
    }

    super::handshake_signatures_verified!();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(usage: u8, selector: u8, mtype: u8, fill: u8) -> Tlsa {
        let len = match mtype {
            1 => 32,
            _ => 64,
        };
        Tlsa {
            usage,
            selector,
            mtype,
            data: vec![fill; len],
        }
    }

    #[test]
    fn agility_prefers_sha512_per_usage_and_selector() {
        let records = vec![
            rec(3, 1, 1, 1),
            rec(3, 1, 2, 2),
            rec(3, 0, 1, 3),
            rec(2, 1, 1, 4),
            rec(2, 0, 2, 5),
            rec(1, 1, 1, 6),
            rec(3, 1, 1, 7),
        ];
        let selected: Vec<u8> = select_records(&records).iter().map(|r| r.data[0]).collect();
        // 3 1 1 records drop (a 3 1 2 exists); 3 0 1 and 2 1 1 stay (no
        // SHA-512 of their usage/selector); usage 1 is unusable.
        assert_eq!(selected, vec![2, 3, 4, 5]);
    }

    #[test]
    fn match_display() {
        let m = DaneMatch {
            usage: 3,
            selector: 1,
            mtype: 1,
            data: vec![0x2c, 0x8a, 0x4f, 0x01, 0xff],
            depth: 0,
            from_dns: false,
        };
        assert_eq!(m.to_string(), "DANE-EE 3 1 1 2c8a4f01… at depth 0");
        let m = DaneMatch {
            usage: 2,
            selector: 1,
            mtype: 0,
            data: vec![0x30, 0x59, 0x30, 0x13, 0x06],
            depth: 2,
            from_dns: true,
        };
        assert_eq!(
            m.to_string(),
            "DANE-TA 2 1 0 30593013… at depth 2 (from DNS)"
        );
    }

    #[test]
    fn failure_display() {
        let cases = [
            (
                DaneFailure::NoMatch {
                    tlsa_name: "_25._tcp.mx1.example.net".into(),
                },
                "no TLSA record of _25._tcp.mx1.example.net matches the certificate chain",
            ),
            (
                DaneFailure::NoUsableRecords {
                    tlsa_name: "_25._tcp.mx1.example.net".into(),
                },
                "no usable TLSA record at _25._tcp.mx1.example.net",
            ),
            (
                DaneFailure::TaPath(PathProblem::Expired),
                "DANE-TA path to the matched trust anchor does not verify: a certificate has expired",
            ),
            (
                DaneFailure::NameMismatch {
                    names: vec!["mx1.example.net".into(), "example.net".into()],
                },
                "certificate name does not match any of mx1.example.net, example.net (DANE-TA)",
            ),
        ];
        for (failure, text) in cases {
            assert_eq!(failure.to_string(), text);
        }
    }

    #[test]
    fn reference_ids_are_distinct() {
        let ids = ReferenceIds {
            tlsa_base: "mx1.example.net.".into(),
            mx_host: "MX1.example.net".into(),
            nexthop: "example.net".into(),
        };
        assert_eq!(ids.distinct(), vec!["mx1.example.net", "example.net"]);
    }

    #[test]
    fn der_sequence_contents() {
        assert_eq!(der_contents(&[0x30, 0x02, 1, 2]), Some(&[1u8, 2][..]));
        assert_eq!(der_contents(&[0x30, 0x03, 1, 2]), None);
        assert_eq!(der_contents(&[0x31, 0x02, 1, 2]), None);
        let mut long = vec![0x30, 0x82, 0x01, 0x00];
        long.extend(std::iter::repeat_n(7u8, 256));
        assert_eq!(der_contents(&long).map(<[u8]>::len), Some(256));
        assert_eq!(der_contents(&[]), None);
    }
}
