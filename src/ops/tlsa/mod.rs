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
//!
//! The files follow the commands: `material.rs` reads certificate and key
//! files and says what a record designates, `generate.rs`, `verify.rs`
//! and `published.rs` are the three commands; this file holds their
//! command line, errors and exit statuses.

mod generate;
mod material;
mod published;
mod verify;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::config::Config;
use crate::dns::Tlsa;
use crate::ops::certs::short_record;

pub use generate::{generate, Generated};
pub use material::{issuance_path, parse_material, read_material, Designated, Material};
pub use published::{judge, published, PublishedReport, Served, ServerRow};
pub use verify::{parse_tlsa, reference_ids, verify, Verified};

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
    /// Configuration file (TOML): its `[dns]` name servers find the zone's
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

/// `_PORT._tcp.HOST`, without a trailing dot.
pub fn tlsa_name(host: &str, port: u16) -> Result<String, TlsaError> {
    let host = host.trim().trim_end_matches('.');
    if host.is_empty() || host.contains(char::is_whitespace) || host.contains("..") {
        return Err(TlsaError::Usage(format!("bad host name {host:?}")));
    }
    Ok(format!("_{port}._tcp.{host}"))
}

/// `3 1 1 2c8a4f01…`
fn short(r: &Tlsa) -> String {
    short_record(&r.to_string(), 8)
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
