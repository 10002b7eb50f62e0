//! `danegate tlsa`: the operator's side of TLSA records, for the receiving
//! end of a DANE deployment and for key rollovers.
//!
//! - `generate` prints a ready-to-publish zone-file line for a certificate
//!   or key: `_25._tcp.mx.example.net. 3600 IN TLSA 3 1 1 <hex>`. DANE-EE
//!   (usage 3) records designate the server certificate; DANE-TA (usage 2)
//!   records an issuer of it, by default the top of the chain given (the
//!   "current + issuer" rollover scheme of RFC 7671 §8.1), and it says on
//!   standard error which certificate it used. A public or private key file
//!   works too (selector 1 only), so the "next" key of a "current + next"
//!   rollover can be published before its certificate exists.
//! - `verify` judges a certificate chain against TLSA records, given on the
//!   command line or looked up (secure answers only) through danegate's
//!   resolver, with the very function the relay's certificate verifier uses
//!   ([`crate::tls::dane::verify_chain`]).
//! - `published` asks every authoritative name server address of the zone
//!   (the NS set through the configured resolver, then each name server's
//!   A and AAAA records) directly, without recursion, whether it serves a
//!   TLSA record matching a certificate or key, signed, and reports each
//!   one's TTL and RRSIG expiry. A new key may be deployed only when every
//!   one of them does: that is the check a rollover waits for.
//!
//! What it does not do: no TLS connections (that is `danegate check`), no
//! DNSSEC validation of what the authoritative servers say (they are asked
//! what they serve, not whether a resolver would believe it), no zone
//! editing.
//!
//! Exit status: 0 when the answer is yes (a match; served everywhere), 1
//! when it is no or DNS could not tell, 2 when the command line, a file or
//! the configuration is wrong.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use rustls::pki_types::pem::{PemObject, SectionKind};
use rustls::pki_types::{
    CertificateDer, PrivateKeyDer, PrivatePkcs1KeyDer, PrivatePkcs8KeyDer, PrivateSec1KeyDer,
    UnixTime,
};
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::x509::SubjectPublicKeyInfo;

use crate::config::{Config, Families};
use crate::dns::wire::AuthoritativeTlsa;
use crate::dns::{Lookup, Resolver, Tlsa};
use crate::ops::certs::{describe_cert, is_ca, parse_cert, short_record};
use crate::ops::dates::{now_secs, until, utc};
use crate::tls::dane::{select_records, verify_chain, DaneFailure, DaneMatch, ReferenceIds};
use crate::tls::tlsa;

/// `danegate tlsa ...`
#[derive(clap::Subcommand, Debug, Clone)]
pub enum TlsaCmd {
    /// Print a TLSA record for a certificate or key as a zone-file line.
    /// DANE-EE (3) designates the server certificate; DANE-TA (2) an issuer
    /// from its chain (default: the top), named on standard error.
    Generate(GenerateArgs),
    /// Check a certificate chain against TLSA records (given with --tlsa,
    /// or published: --dns), with the relay's own verifier. Exit 0 on a
    /// match, 1 otherwise.
    Verify(VerifyArgs),
    /// Ask every authoritative name server of the zone (each IPv4 and IPv6
    /// address, directly) whether it serves a signed TLSA record matching
    /// the certificate or key. Exit 0 only when all of them do.
    Published(PublishedArgs),
}

#[derive(clap::Args, Debug, Clone)]
pub struct GenerateArgs {
    /// The server certificate (PEM, optionally followed by its chain, or
    /// DER), or a public or private key file (PEM: PUBLIC KEY, PRIVATE KEY,
    /// EC PRIVATE KEY, RSA PRIVATE KEY) for selector 1.
    #[arg(long, value_name = "FILE", required_unless_present = "key")]
    pub cert: Option<PathBuf>,
    /// A public or private key file, for a key whose certificate does not
    /// exist yet (selector 1 only). Same as --cert with a key file.
    #[arg(long, value_name = "FILE", conflicts_with = "cert")]
    pub key: Option<PathBuf>,
    /// The issuer certificates (PEM), for --usage 2.
    #[arg(long, value_name = "FILE")]
    pub chain: Option<PathBuf>,
    /// 3 (DANE-EE: the server certificate or key) or 2 (DANE-TA: an
    /// issuer's).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(2..=3))]
    pub usage: u8,
    /// 1 (the public key) or 0 (the whole certificate).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=1))]
    pub selector: u8,
    /// 1 (SHA-256), 2 (SHA-512) or 0 (the data itself).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=2))]
    pub mtype: u8,
    /// For --usage 2: which certificate of the chain (1: the server
    /// certificate's issuer, 2: the issuer's issuer...). Default: the top
    /// of the chain.
    #[arg(long, value_name = "N")]
    pub depth: Option<usize>,
    /// The MX host name the record is for.
    #[arg(long, value_name = "HOST")]
    pub name: String,
    #[arg(long, default_value_t = 25)]
    pub port: u16,
    /// The record's TTL in the zone-file line.
    #[arg(long, default_value_t = 3600)]
    pub ttl: u32,
}

#[derive(clap::Args, Debug, Clone)]
pub struct VerifyArgs {
    /// The certificate chain as the server presents it (PEM, server
    /// certificate first).
    #[arg(long, value_name = "FILE")]
    pub chain: PathBuf,
    /// The MX host name: the TLSA base domain and the name a DANE-TA
    /// certificate must be issued for.
    #[arg(long, value_name = "HOST")]
    pub name: String,
    #[arg(long, default_value_t = 25)]
    pub port: u16,
    /// A TLSA record, "USAGE SELECTOR MTYPE HEX" (a whole zone-file line
    /// works too); repeat it for an RRset.
    #[arg(
        long = "tlsa",
        value_name = "RECORD",
        required_unless_present = "dns",
        conflicts_with = "dns"
    )]
    pub tlsa: Vec<String>,
    /// Use the records published at _PORT._tcp.HOST instead, looked up
    /// through danegate's resolver (see --config); the answer must be
    /// DNSSEC-secure.
    #[arg(long)]
    pub dns: bool,
    /// Configuration file (TOML), for --dns.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// The next-hop (recipient) domain, one more name a DANE-TA
    /// certificate may be issued for. Default: HOST only.
    #[arg(long, value_name = "DOMAIN")]
    pub nexthop: Option<String>,
}

#[derive(clap::Args, Debug, Clone)]
pub struct PublishedArgs {
    /// The MX host name: the records asked for are at _PORT._tcp.HOST.
    #[arg(long, value_name = "HOST")]
    pub name: String,
    #[arg(long, default_value_t = 25)]
    pub port: u16,
    /// The certificate whose record must be served (PEM or DER; the first
    /// certificate of the file).
    #[arg(long, value_name = "FILE", required_unless_present = "key")]
    pub cert: Option<PathBuf>,
    /// The key whose record must be served (PEM: public or private key).
    #[arg(long, value_name = "FILE", conflicts_with = "cert")]
    pub key: Option<PathBuf>,
    /// Configuration file (TOML): its [dns] name servers find the zone's
    /// NS records and their addresses (no DNSSEC needed for that).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
}

/// Why a command could not give its answer.
#[derive(Debug, thiserror::Error)]
pub enum TlsaError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A file that does not hold what it should.
    #[error("{}: {why}", path.display())]
    File { path: PathBuf, why: String },
    /// Options that do not go together, or a malformed value.
    #[error("{0}")]
    Usage(String),
    #[error("configuration error: {0}")]
    Config(String),
    /// DNS could not give the answer the command needs.
    #[error("{0}")]
    Dns(String),
}

impl TlsaError {
    fn exit_code(&self) -> ExitCode {
        match self {
            TlsaError::Dns(_) => ExitCode::from(1),
            _ => ExitCode::from(2),
        }
    }
}

/// Runs one `danegate tlsa` command: results on standard output, notes
/// and errors on standard error.
pub fn run(cmd: TlsaCmd) -> ExitCode {
    let (what, result) = match cmd {
        TlsaCmd::Generate(args) => ("generate", run_generate(&args)),
        TlsaCmd::Verify(args) => ("verify", run_verify(&args)),
        TlsaCmd::Published(args) => ("published", run_published(&args)),
    };
    result.unwrap_or_else(|e| {
        eprintln!("danegate tlsa {what}: {e}");
        e.exit_code()
    })
}

fn run_generate(args: &GenerateArgs) -> Result<ExitCode, TlsaError> {
    let generated = generate(args)?;
    for note in &generated.notes {
        eprintln!("{note}");
    }
    println!("{}", generated.line());
    Ok(ExitCode::SUCCESS)
}

fn run_verify(args: &VerifyArgs) -> Result<ExitCode, TlsaError> {
    let verified = verify(args)?;
    for note in verified.notes() {
        eprintln!("{note}");
    }
    println!("{}", verified.verdict());
    Ok(if verified.result.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn run_published(args: &PublishedArgs) -> Result<ExitCode, TlsaError> {
    let report = published(args)?;
    print!("{}", report.text());
    Ok(if report.all_served() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

// ---------------------------------------------------------------------
// Certificates and keys
// ---------------------------------------------------------------------

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

/// The SubjectPublicKeyInfo of a private key, as rustls's *ring* provider
/// derives it (RSA, ECDSA P-256/P-384, Ed25519).
fn public_half(key: &PrivateKeyDer<'_>) -> Result<Vec<u8>, String> {
    let signing = rustls::crypto::ring::sign::any_supported_type(key).map_err(|e| {
        format!("cannot use the private key ({e}); give its certificate, or its public key (`openssl pkey -in FILE -pubout`)")
    })?;
    signing
        .public_key()
        .map(|spki| spki.as_ref().to_vec())
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

// ---------------------------------------------------------------------
// generate
// ---------------------------------------------------------------------

/// A record ready to publish.
#[derive(Debug, Clone)]
pub struct Generated {
    /// `_25._tcp.mx.example.net.`
    pub owner: String,
    pub ttl: u32,
    pub record: Tlsa,
    /// Which certificate or key the record designates, and warnings: for
    /// standard error.
    pub notes: Vec<String>,
}

impl Generated {
    /// `_25._tcp.mx.example.net. 3600 IN TLSA 3 1 1 <hex>`
    pub fn line(&self) -> String {
        format!("{} {} IN TLSA {}", self.owner, self.ttl, self.record)
    }
}

/// `_PORT._tcp.HOST`, without a trailing dot.
pub fn tlsa_name(host: &str, port: u16) -> Result<String, TlsaError> {
    let host = host.trim().trim_end_matches('.');
    if host.is_empty() || host.contains(char::is_whitespace) || host.contains("..") {
        return Err(TlsaError::Usage(format!("bad host name {host:?}")));
    }
    Ok(format!("_{port}._tcp.{host}"))
}

pub fn generate(args: &GenerateArgs) -> Result<Generated, TlsaError> {
    let owner = format!("{}.", tlsa_name(&args.name, args.port)?);
    let path = args
        .cert
        .as_deref()
        .or(args.key.as_deref())
        .ok_or_else(|| TlsaError::Usage("give --cert FILE or --key FILE".to_owned()))?;
    let material = read_material(path)?;
    let mut notes = Vec::new();
    let designated = match material {
        Material::Certificates(mut certs) => {
            if let Some(chain) = &args.chain {
                match read_material(chain)? {
                    Material::Certificates(more) => certs.extend(more),
                    Material::Key { .. } => {
                        return Err(TlsaError::File {
                            path: chain.clone(),
                            why: "a key, not certificates".to_owned(),
                        })
                    }
                }
            }
            pick_certificate(args, certs, &mut notes)?
        }
        key @ Material::Key { .. } => {
            if args.depth.is_some() || args.chain.is_some() {
                return Err(TlsaError::Usage(format!(
                    "{} holds a key, not certificates: --chain and --depth pick a certificate",
                    path.display()
                )));
            }
            let d = Designated::from_material(key, path)?;
            notes.push(format!(
                "TLSA {} {} {} for {}",
                args.usage, args.selector, args.mtype, d.about
            ));
            d
        }
    };
    let record = designated.record(args.usage, args.selector, args.mtype)?;
    Ok(Generated {
        owner,
        ttl: args.ttl,
        record,
        notes,
    })
}

/// The certificate a record designates: the server certificate for
/// DANE-EE, an issuer from the chain for DANE-TA.
fn pick_certificate(
    args: &GenerateArgs,
    certs: Vec<CertificateDer<'static>>,
    notes: &mut Vec<String>,
) -> Result<Designated, TlsaError> {
    let (path, unused) = issuance_path(certs);
    for cert in &unused {
        notes.push(format!(
            "note: ignoring a certificate that is not in the chain of the server certificate: {}",
            describe_cert(cert)
        ));
    }
    let what = format!("TLSA {} {} {}", args.usage, args.selector, args.mtype);
    let depth = match args.usage {
        3 => {
            if args.depth.is_some_and(|d| d != 0) {
                return Err(TlsaError::Usage(
                    "--depth picks an issuer for --usage 2; a DANE-EE record (usage 3) designates the server certificate".to_owned(),
                ));
            }
            0
        }
        _ => ta_depth(args.depth, &path, !unused.is_empty())?,
    };
    let cert = path[depth].clone();
    let about = describe_cert(&cert);
    let place = match (args.usage, depth) {
        (3, _) => "the server certificate".to_owned(),
        (_, 0) => {
            notes.push("note: a DANE-TA record must designate an issuer of the server certificate, never the server certificate itself (that is usage 3)".to_owned());
            "the CA certificate given".to_owned()
        }
        (_, d) if d + 1 == path.len() => {
            format!("the certificate at depth {d}, the top of the chain")
        }
        (_, d) => format!("the certificate at depth {d} of the chain"),
    };
    notes.push(format!("{what} for {place}: {about}"));
    Designated::certificate(cert, about).map_err(TlsaError::Usage)
}

/// Which certificate of the issuance path a DANE-TA record designates.
fn ta_depth(
    depth: Option<usize>,
    path: &[CertificateDer<'static>],
    others_given: bool,
) -> Result<usize, TlsaError> {
    if path.len() == 1 {
        // A CA certificate on its own: the operator named the anchor.
        if is_ca(&path[0]) && depth.unwrap_or(0) == 0 && !others_given {
            return Ok(0);
        }
        let why = if others_given {
            "none of the certificates given issued it (by name): give the chain from the server certificate up"
        } else {
            "none is given: add the chain (in the same file or with --chain FILE)"
        };
        return Err(TlsaError::Usage(format!(
            "a DANE-TA record (usage 2) designates an issuer of the server certificate, and {why}"
        )));
    }
    let depth = depth.unwrap_or(path.len() - 1);
    if depth == 0 {
        return Err(TlsaError::Usage(
            "depth 0 is the server certificate itself; a DANE-TA record designates an issuer (depth 1 or more), and a record for the server certificate is usage 3".to_owned(),
        ));
    }
    if depth >= path.len() {
        let list: Vec<String> = path
            .iter()
            .enumerate()
            .map(|(i, c)| format!("  depth {i}: {}", describe_cert(c)))
            .collect();
        return Err(TlsaError::Usage(format!(
            "no certificate at depth {depth}; the chain is:\n{}",
            list.join("\n")
        )));
    }
    Ok(depth)
}

// ---------------------------------------------------------------------
// verify
// ---------------------------------------------------------------------

/// Parses `USAGE SELECTOR MTYPE HEX` (hex may be split by spaces, as in
/// zone files); a whole zone-file line is accepted, from its `TLSA`.
pub fn parse_tlsa(text: &str) -> Result<Tlsa, String> {
    let fields: Vec<&str> = text
        .split_whitespace()
        .filter(|f| *f != "(" && *f != ")")
        .collect();
    let fields = match fields.iter().position(|f| f.eq_ignore_ascii_case("TLSA")) {
        Some(i) => &fields[i + 1..],
        None => &fields[..],
    };
    let [usage, selector, mtype, hex @ ..] = fields else {
        return Err(format!(
            "not a TLSA record: {text:?} (want \"USAGE SELECTOR MTYPE HEX\")"
        ));
    };
    let number = |what: &str, s: &str| {
        s.parse::<u8>()
            .map_err(|_| format!("bad {what} {s:?} in {text:?}"))
    };
    let hex = hex.concat();
    if hex.is_empty() {
        return Err(format!("no data in {text:?}"));
    }
    Ok(Tlsa {
        usage: number("usage", usage)?,
        selector: number("selector", selector)?,
        mtype: number("matching type", mtype)?,
        data: from_hex(&hex).ok_or_else(|| format!("bad hex data in {text:?}"))?,
    })
}

fn from_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok())
        .collect()
}

/// The outcome of `tlsa verify`.
#[derive(Debug, Clone)]
pub struct Verified {
    pub tlsa_name: String,
    pub records: Vec<Tlsa>,
    /// What [`verify_chain`] said.
    pub result: Result<DaneMatch, DaneFailure>,
}

impl Verified {
    /// `match: DANE-EE 3 1 1 2c8a4f01… at depth 0`, or `fail: ` and why.
    pub fn verdict(&self) -> String {
        match &self.result {
            Ok(m) => format!("match: {m}"),
            Err(f) => format!("fail: {f}"),
        }
    }

    /// The records the verifier does not use, and why.
    pub fn notes(&self) -> Vec<String> {
        unused_records(&self.records)
    }
}

/// Unusable records and records digest agility sets aside, one line each.
fn unused_records(records: &[Tlsa]) -> Vec<String> {
    let used = select_records(records);
    records
        .iter()
        .filter_map(|r| match tlsa::usability(r) {
            Err(why) => Some(format!("note: {} is unusable for SMTP: {why}", short(r))),
            Ok(()) if !used.contains(r) => Some(format!(
                "note: {} is not used: a SHA-512 record of the same usage and selector is present (digest agility, RFC 7671 §9)",
                short(r)
            )),
            Ok(()) => None,
        })
        .collect()
}

/// `3 1 1 2c8a4f01…`
fn short(r: &Tlsa) -> String {
    short_record(&r.to_string(), 8)
}

/// The reference identifiers of `tlsa verify`: HOST as TLSA base and MX
/// host, the next hop when given (else HOST again).
pub fn reference_ids(host: &str, nexthop: Option<&str>) -> ReferenceIds {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    ReferenceIds {
        tlsa_base: host.clone(),
        mx_host: host.clone(),
        nexthop: nexthop.map_or(host, |n| n.trim_end_matches('.').to_ascii_lowercase()),
    }
}

pub fn verify(args: &VerifyArgs) -> Result<Verified, TlsaError> {
    let tlsa_name = tlsa_name(&args.name, args.port)?;
    let certs = match read_material(&args.chain)? {
        Material::Certificates(certs) => certs,
        Material::Key { .. } => {
            return Err(TlsaError::File {
                path: args.chain.clone(),
                why: "a key, not a certificate chain".to_owned(),
            })
        }
    };
    let records = if args.dns {
        let config = load_config(args.config.as_deref())?;
        block_on(published_records(&config, &tlsa_name))??
    } else {
        args.tlsa
            .iter()
            .map(|t| parse_tlsa(t))
            .collect::<Result<Vec<_>, _>>()
            .map_err(TlsaError::Usage)?
    };
    let names = reference_ids(&args.name, args.nexthop.as_deref());
    let (leaf, rest) = certs.split_first().ok_or_else(|| TlsaError::File {
        path: args.chain.clone(),
        why: "no certificate in it".to_owned(),
    })?;
    let result = verify_chain(&records, args.port, &names, leaf, rest, UnixTime::now());
    Ok(Verified {
        tlsa_name,
        records,
        result,
    })
}

/// The TLSA records at `name`, which must be a secure answer: only those
/// would a DANE sender use.
async fn published_records(config: &Config, name: &str) -> Result<Vec<Tlsa>, TlsaError> {
    let built = crate::dns::build(&config.dns)
        .await
        .map_err(TlsaError::Config)?;
    let lookup = built
        .resolver
        .tlsa(name)
        .await
        .map_err(|e| TlsaError::Dns(e.to_string()))?;
    match lookup {
        Lookup::Records {
            records,
            security,
            ..
        } if security.is_secure() => Ok(records),
        Lookup::Records { .. } => Err(TlsaError::Dns(format!(
            "the TLSA records at {name} are not DNSSEC-secure (insecure answer): no sending MTA would use them"
        ))),
        Lookup::NoData { security } | Lookup::NxDomain { security } => Err(TlsaError::Dns(
            format!("no TLSA records at {name} ({security} answer)"),
        )),
    }
}

fn load_config(path: Option<&Path>) -> Result<Config, TlsaError> {
    match path {
        Some(p) => Config::load(p).map_err(|e| TlsaError::Config(e.to_string())),
        None => Ok(Config::default()),
    }
}

/// Runs a future on a runtime of its own (the commands are synchronous).
fn block_on<F: std::future::Future>(future: F) -> Result<F::Output, TlsaError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| TlsaError::Dns(format!("cannot start the runtime: {e}")))?;
    Ok(rt.block_on(future))
}

// ---------------------------------------------------------------------
// published
// ---------------------------------------------------------------------

/// How long one authoritative server has to answer one query (asked
/// twice at most).
const AUTH_TIMEOUT: Duration = Duration::from_secs(3);

/// What one name server address serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Served {
    /// A matching, usable, signed record.
    Yes {
        record: Tlsa,
        ttl: u32,
        /// The latest expiration of the RRSIGs over the TLSA set.
        rrsig_expires: u32,
    },
    /// Not (or not usably) served, and why.
    No(String),
}

/// One row of the report: a name server address, or a name server
/// without one.
#[derive(Debug, Clone)]
pub struct ServerRow {
    pub ns: String,
    pub addr: Option<IpAddr>,
    pub served: Served,
}

/// The outcome of `tlsa published`.
#[derive(Debug, Clone)]
pub struct PublishedReport {
    pub tlsa_name: String,
    pub zone: String,
    pub wanted: String,
    /// Example of a matching record (3 1 1), for the operator's eye.
    pub example: Tlsa,
    pub notes: Vec<String>,
    pub rows: Vec<ServerRow>,
}

impl PublishedReport {
    /// True when every name server address serves a matching record.
    pub fn all_served(&self) -> bool {
        !self.rows.is_empty()
            && self
                .rows
                .iter()
                .all(|r| matches!(r.served, Served::Yes { .. }))
    }

    /// The rows that do not serve it, as `NS ADDRESS`.
    pub fn missing(&self) -> Vec<String> {
        self.rows
            .iter()
            .filter(|r| !matches!(r.served, Served::Yes { .. }))
            .map(ServerRow::label)
            .collect()
    }

    pub fn text(&self) -> String {
        let mut out = format!(
            "{}: zone {}, name servers {}\nlooking for a TLSA record matching {}\n  such as {}\n",
            self.tlsa_name,
            self.zone,
            self.ns_names().join(", "),
            self.wanted,
            self.example
        );
        for note in &self.notes {
            out.push_str(&format!("{note}\n"));
        }
        let now = now_secs();
        for row in &self.rows {
            let line = match &row.served {
                Served::Yes {
                    record,
                    ttl,
                    rrsig_expires,
                } => format!(
                    "ok       {}: {} TTL {ttl}, RRSIG expires {} ({})",
                    row.label(),
                    short(record),
                    utc(i64::from(*rrsig_expires)),
                    until(now, u64::from(*rrsig_expires))
                ),
                Served::No(why) => format!("MISSING  {}: {why}", row.label()),
            };
            out.push_str(&line);
            out.push('\n');
        }
        let missing = self.missing();
        if self.rows.is_empty() {
            out.push_str("FAILED: no name server to ask\n");
        } else if missing.is_empty() {
            out.push_str(&format!(
                "served by all {} name server addresses\n",
                self.rows.len()
            ));
        } else {
            out.push_str(&format!(
                "FAILED: not served by {} of {} name server addresses: {}\n",
                missing.len(),
                self.rows.len(),
                missing.join(", ")
            ));
        }
        out
    }

    fn ns_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.rows.iter().map(|r| r.ns.clone()).collect();
        names.dedup();
        names
    }
}

impl ServerRow {
    fn label(&self) -> String {
        match self.addr {
            Some(a) => format!("{} {a}", self.ns),
            None => self.ns.clone(),
        }
    }
}

pub fn published(args: &PublishedArgs) -> Result<PublishedReport, TlsaError> {
    let tlsa_name = tlsa_name(&args.name, args.port)?;
    let path = args
        .cert
        .as_deref()
        .or(args.key.as_deref())
        .ok_or_else(|| TlsaError::Usage("give --cert FILE or --key FILE".to_owned()))?;
    let wanted = Designated::from_material(read_material(path)?, path)?;
    let config = load_config(args.config.as_deref())?;
    block_on(published_async(&config, tlsa_name, wanted))?
}

async fn published_async(
    config: &Config,
    tlsa_name: String,
    wanted: Designated,
) -> Result<PublishedReport, TlsaError> {
    // The NS set and the addresses need no DNSSEC: the servers are asked
    // what they serve, and a wrong address only fails the check.
    let resolver = crate::dns::insecure(&config.dns).map_err(TlsaError::Config)?;
    let (zone, ns) = find_zone(&resolver, &tlsa_name).await?;
    let mut notes = Vec::new();
    let (targets, mut rows) =
        ns_addresses(resolver.as_ref(), &ns, config.dns.families, &mut notes).await;
    let mut tasks = tokio::task::JoinSet::new();
    for (i, (ns, addr)) in targets.iter().cloned().enumerate() {
        let name = tlsa_name.clone();
        tasks.spawn(async move { (i, ns, addr, ask_twice(addr, &name).await) });
    }
    let mut asked = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let (i, ns, addr, answer) =
            joined.map_err(|e| TlsaError::Dns(format!("a query task failed: {e}")))?;
        let served = match answer {
            Ok(a) => judge(&a, &wanted, now_secs()),
            Err(why) => Served::No(format!("no answer: {why}")),
        };
        asked.push((
            i,
            ServerRow {
                ns,
                addr: Some(addr),
                served,
            },
        ));
    }
    asked.sort_by_key(|(i, _)| *i);
    rows.splice(0..0, asked.into_iter().map(|(_, r)| r));
    rows.sort_by(|a, b| a.ns.cmp(&b.ns));
    let example = wanted.record(3, 1, 1)?;
    Ok(PublishedReport {
        tlsa_name,
        zone,
        wanted: wanted.about,
        example,
        notes,
        rows,
    })
}

/// The zone `name` is in and its name servers: the closest enclosing name
/// (the name itself included, the root excluded) that has NS records.
async fn find_zone(
    resolver: &crate::dns::cache::CachingResolver,
    name: &str,
) -> Result<(String, Vec<String>), TlsaError> {
    let mut candidate = name.trim_end_matches('.');
    while !candidate.is_empty() {
        let lookup = crate::dns::wire::ns_names(resolver, candidate)
            .await
            .map_err(|e| TlsaError::Dns(format!("looking for the zone of {name}: {e}")))?;
        if let Lookup::Records { mut records, .. } = lookup {
            records.sort();
            records.dedup();
            return Ok((candidate.to_owned(), records));
        }
        candidate = candidate.split_once('.').map_or("", |(_, parent)| parent);
    }
    Err(TlsaError::Dns(format!(
        "no zone with NS records found above {name}"
    )))
}

/// Every address of every name server (the families the configuration
/// allows); rows for name servers without any.
async fn ns_addresses(
    resolver: &dyn Resolver,
    ns: &[String],
    families: Families,
    notes: &mut Vec<String>,
) -> (Vec<(String, IpAddr)>, Vec<ServerRow>) {
    let (v4, v6) = match families {
        Families::Both => (true, true),
        Families::Ipv4 => (true, false),
        Families::Ipv6 => (false, true),
    };
    if !v6 {
        notes.push("note: IPv6 addresses not asked (dns.families = \"ipv4\")".to_owned());
    }
    if !v4 {
        notes.push("note: IPv4 addresses not asked (dns.families = \"ipv6\")".to_owned());
    }
    let mut targets = Vec::new();
    let mut rows = Vec::new();
    for host in ns {
        let mut problems = Vec::new();
        let before = targets.len();
        if v4 {
            match resolver.ipv4(host).await {
                Ok(l) => targets.extend(l.records().iter().map(|a| (host.clone(), IpAddr::V4(*a)))),
                Err(e) => problems.push(e.to_string()),
            }
        }
        if v6 {
            match resolver.ipv6(host).await {
                Ok(l) => targets.extend(l.records().iter().map(|a| (host.clone(), IpAddr::V6(*a)))),
                Err(e) => problems.push(e.to_string()),
            }
        }
        let why = if targets.len() == before {
            Some(if problems.is_empty() {
                "no address records".to_owned()
            } else {
                format!("no address: {}", problems.join("; "))
            })
        } else if !problems.is_empty() {
            // Some addresses are known, but not all can be: the check
            // cannot say "every server".
            Some(problems.join("; "))
        } else {
            None
        };
        if let Some(why) = why {
            rows.push(ServerRow {
                ns: host.clone(),
                addr: None,
                served: Served::No(why),
            });
        }
    }
    (targets, rows)
}

/// One question to one authoritative address, asked again once on a
/// timeout or network error (UDP may lose a datagram).
async fn ask_twice(addr: IpAddr, name: &str) -> Result<AuthoritativeTlsa, String> {
    let server = SocketAddr::new(addr, 53);
    let mut last = String::new();
    for _ in 0..2 {
        match crate::dns::wire::ask_authoritative_tlsa(server, name, AUTH_TIMEOUT).await {
            Ok(a) => return Ok(a),
            Err(e) => last = e.to_string(),
        }
    }
    Err(last)
}

/// Whether an authoritative answer serves a record matching `wanted`,
/// usably and signed, at `now` (seconds since 1970). Pure.
pub fn judge(answer: &AuthoritativeTlsa, wanted: &Designated, now: u64) -> Served {
    if answer.rcode != "NOERROR" {
        return Served::No(match answer.rcode.as_str() {
            "NXDOMAIN" => "answered NXDOMAIN: the name does not exist there".to_owned(),
            "REFUSED" => "answered REFUSED: it does not serve the zone".to_owned(),
            other => format!("answered {other}"),
        });
    }
    if !answer.authoritative {
        return Served::No(
            "answered without authority (AA flag clear): it does not serve the zone".to_owned(),
        );
    }
    if let Some(target) = &answer.cname {
        return Served::No(format!(
            "the name is a CNAME to {target}; ask the servers of the target's zone"
        ));
    }
    let records: Vec<Tlsa> = answer.records.iter().map(|s| s.record.clone()).collect();
    let matching: Vec<&Tlsa> = records
        .iter()
        .filter(|r| tlsa::usability(r).is_ok() && wanted.matches(r))
        .collect();
    if matching.is_empty() {
        return Served::No(match records.len() {
            0 => "no TLSA records".to_owned(),
            1 => "1 TLSA record, which does not match".to_owned(),
            n => format!("{n} TLSA records, none matches"),
        });
    }
    let used = select_records(&records);
    let Some(record) = matching.iter().find(|r| used.contains(r)) else {
        return Served::No(format!(
            "{} matches, but validators do not use it: a SHA-512 record of the same usage and selector is present (digest agility, RFC 7671 §9)",
            short(matching[0])
        ));
    };
    let Some(expires) = answer.rrsig_expirations.iter().copied().max() else {
        return Served::No(format!(
            "{} is served without an RRSIG: validators cannot find it secure (is the zone signed?)",
            short(record)
        ));
    };
    if u64::from(expires) <= now {
        return Served::No(format!(
            "{} is served, but its RRSIG expired {}",
            short(record),
            utc(i64::from(expires))
        ));
    }
    let ttl = answer
        .records
        .iter()
        .filter(|s| &&s.record == record)
        .map(|s| s.ttl)
        .min()
        .unwrap_or(0);
    Served::Yes {
        record: (*record).clone(),
        ttl,
        rrsig_expires: expires,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::wire::ServedTlsa;

    fn self_signed(sans: &[&str], ca: bool) -> (CertificateDer<'static>, rcgen::KeyPair) {
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
    fn tlsa_text_parses() {
        let ok = [
            ("3 1 1 0aFF", (3, 1, 1, vec![0x0a, 0xff])),
            ("2 0 2 0a ff 01", (2, 0, 2, vec![0x0a, 0xff, 0x01])),
            (
                "_25._tcp.mx.example.net. 3600 IN TLSA 3 1 1 abcd",
                (3, 1, 1, vec![0xab, 0xcd]),
            ),
            ("3 1 1 ( ab\n cd )", (3, 1, 1, vec![0xab, 0xcd])),
        ];
        for (text, (usage, selector, mtype, data)) in ok {
            assert_eq!(
                parse_tlsa(text),
                Ok(Tlsa {
                    usage,
                    selector,
                    mtype,
                    data
                }),
                "{text}"
            );
        }
        for bad in [
            "",
            "3 1 1",
            "3 1 x ab",
            "3 1 1 abc",
            "3 1 1 zz",
            "300 1 1 ab",
        ] {
            assert!(parse_tlsa(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn owner_names() {
        assert_eq!(
            tlsa_name("mx.example.net.", 25).unwrap(),
            "_25._tcp.mx.example.net"
        );
        assert_eq!(
            tlsa_name("mx.example.net", 465).unwrap(),
            "_465._tcp.mx.example.net"
        );
        assert!(tlsa_name("", 25).is_err());
        assert!(tlsa_name("mx example", 25).is_err());
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

    fn answer(records: Vec<Tlsa>, rrsig: Option<u32>) -> AuthoritativeTlsa {
        AuthoritativeTlsa {
            rcode: "NOERROR".into(),
            authoritative: true,
            records: records
                .into_iter()
                .map(|record| ServedTlsa { record, ttl: 300 })
                .collect(),
            rrsig_expirations: rrsig.into_iter().collect(),
            cname: None,
        }
    }

    #[test]
    fn judging_authoritative_answers() {
        let (cert, _) = self_signed(&["mx.example"], false);
        let wanted = Designated::certificate(cert, "c".into()).unwrap();
        let (other_cert, _) = self_signed(&["mx.example"], false);
        let other = Designated::certificate(other_cert, "o".into()).unwrap();
        let now = 1_000_000;
        let r311 = wanted.record(3, 1, 1).unwrap();
        let r301 = wanted.record(3, 0, 1).unwrap();
        let r212 = wanted.record(2, 1, 2).unwrap();
        let yes = |record: &Tlsa| Served::Yes {
            record: record.clone(),
            ttl: 300,
            rrsig_expires: 2_000_000,
        };
        let no = |s: &'static str| move |served: &Served| matches!(served, Served::No(w) if w.contains(s));
        let other311 = other.record(3, 1, 1).unwrap();
        let other312 = other.record(3, 1, 2).unwrap();
        let mut refused = answer(vec![], None);
        refused.rcode = "REFUSED".into();
        let mut lame = answer(vec![r311.clone()], Some(2_000_000));
        lame.authoritative = false;
        let mut cname = answer(vec![], None);
        cname.cname = Some("x.example".into());
        let unusable = Tlsa {
            usage: 1,
            ..r311.clone()
        };
        type Check = Box<dyn Fn(&Served) -> bool>;
        let cases: Vec<(&str, AuthoritativeTlsa, Check)> = vec![
            ("3 1 1", answer(vec![r311.clone()], Some(2_000_000)), {
                let y = yes(&r311);
                Box::new(move |s| *s == y)
            }),
            (
                "3 0 1 among others",
                answer(vec![other311.clone(), r301.clone()], Some(2_000_000)),
                {
                    let y = yes(&r301);
                    Box::new(move |s| *s == y)
                },
            ),
            (
                "2 1 2 of the key",
                answer(vec![r212.clone()], Some(2_000_000)),
                {
                    let y = yes(&r212);
                    Box::new(move |s| *s == y)
                },
            ),
            (
                "other key only",
                answer(vec![other311.clone()], Some(2_000_000)),
                Box::new(no("1 TLSA record, which does not match")),
            ),
            (
                "none",
                answer(vec![], None),
                Box::new(no("no TLSA records")),
            ),
            (
                "unusable usage",
                answer(vec![unusable], Some(2_000_000)),
                Box::new(no("does not match")),
            ),
            (
                "agility",
                answer(vec![r311.clone(), other312], Some(2_000_000)),
                Box::new(no("digest agility")),
            ),
            (
                "unsigned",
                answer(vec![r311.clone()], None),
                Box::new(no("without an RRSIG")),
            ),
            (
                "expired",
                answer(vec![r311.clone()], Some(999_999)),
                Box::new(no("RRSIG expired 1970-01-12")),
            ),
            ("refused", refused, Box::new(no("REFUSED"))),
            ("lame", lame, Box::new(no("AA flag clear"))),
            ("cname", cname, Box::new(no("CNAME to x.example"))),
        ];
        for (what, a, check) in cases {
            let got = judge(&a, &wanted, now);
            assert!(check(&got), "{what}: {got:?}");
        }
    }

    #[test]
    fn report_names_the_missing() {
        let record = Tlsa {
            usage: 3,
            selector: 1,
            mtype: 1,
            data: vec![0xab; 32],
        };
        let report = PublishedReport {
            tlsa_name: "_25._tcp.mx.example".into(),
            zone: "example".into(),
            wanted: "the key".into(),
            example: record.clone(),
            notes: vec![],
            rows: vec![
                ServerRow {
                    ns: "ns1.example".into(),
                    addr: Some("192.0.2.1".parse().unwrap()),
                    served: Served::Yes {
                        record,
                        ttl: 300,
                        rrsig_expires: u32::MAX,
                    },
                },
                ServerRow {
                    ns: "ns2.example".into(),
                    addr: Some("2001:db8::2".parse().unwrap()),
                    served: Served::No("no TLSA records".into()),
                },
            ],
        };
        assert!(!report.all_served());
        assert_eq!(report.missing(), ["ns2.example 2001:db8::2"]);
        let text = report.text();
        assert!(text.contains("ok       ns1.example 192.0.2.1: 3 1 1 abababab… TTL 300, RRSIG expires 2106-02-07 06:28:15 UTC"), "{text}");
        assert!(
            text.contains("MISSING  ns2.example 2001:db8::2: no TLSA records"),
            "{text}"
        );
        assert!(
            text.ends_with(
                "FAILED: not served by 1 of 2 name server addresses: ns2.example 2001:db8::2\n"
            ),
            "{text}"
        );
    }
}
