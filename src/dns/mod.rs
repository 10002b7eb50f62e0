//! The DNS layer, in the project's own terms.
//!
//! Every answer is classified as [`Security::Secure`] or
//! [`Security::Insecure`], or the lookup failed with a [`DnsFailure`]
//! (bogus, SERVFAIL, timeout...). A failure never downgrades to "no
//! records": callers defer. Nothing outside this module names a hickory
//! type: [`hickory`] is the one place that knows the library, and the
//! [`Resolver`] trait lets tests swap it for a table.
//!
//! This module answers questions about names; deciding what to do with the
//! answers is `nexthop`'s job.

pub mod anchors;
pub mod cache;
mod chain;
pub mod ede;
pub mod explain;
mod forward;
pub mod hickory;
pub mod idn;
mod nsec3;
pub mod selftest;
pub mod wire;

use std::fmt;
use std::future::Future;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::pin::Pin;

/// A boxed future, so that [`Resolver`] can be used as a trait object.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Whether an answer was validated by DNSSEC up to a trust anchor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    Secure,
    Insecure,
}

impl Security {
    pub fn is_secure(self) -> bool {
        self == Security::Secure
    }

    /// The weaker of two: a chain is only as secure as its weakest link.
    pub fn and(self, other: Security) -> Security {
        if self.is_secure() && other.is_secure() {
            Security::Secure
        } else {
            Security::Insecure
        }
    }
}

impl fmt::Display for Security {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Security::Secure => "secure",
            Security::Insecure => "insecure",
        })
    }
}

/// The outcome of a lookup that did not fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup<T> {
    /// At least one record. `canonical` is set when the queried name was
    /// an alias (CNAME chain) for the name that owns the records.
    /// `security` covers the whole answer, chain included.
    Records {
        records: Vec<T>,
        security: Security,
        canonical: Option<Alias>,
    },
    /// The name exists but has no records of this type.
    NoData { security: Security },
    /// The name does not exist.
    NxDomain { security: Security },
}

impl<T> Lookup<T> {
    pub fn security(&self) -> Security {
        match self {
            Lookup::Records { security, .. }
            | Lookup::NoData { security }
            | Lookup::NxDomain { security } => *security,
        }
    }

    /// The records, or an empty slice for a denial.
    pub fn records(&self) -> &[T] {
        match self {
            Lookup::Records { records, .. } => records,
            _ => &[],
        }
    }
}

/// Where a CNAME chain ended, and whether every link of it was secure
/// (dane-rules §2.1: the TLSA base domain may be the expanded name only
/// then).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alias {
    pub name: String,
    pub secure: bool,
}

/// Why a lookup failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailureKind {
    /// DNSSEC validation failed (the answer is bogus), with the cause when
    /// it is known: danegate's own finding in `validate` mode (an expired
    /// RRSIG, a DS naming no key...), the resolver's Extended DNS Error
    /// text in `trust-ad` mode.
    Bogus(Option<String>),
    /// The resolver answered SERVFAIL.
    ServFail,
    /// The resolver answered SERVFAIL with an Extended DNS Error (RFC
    /// 8914) that is not about DNSSEC: its text (e.g. `22 (No Reachable
    /// Authority): ...`).
    ServFailBecause(String),
    /// No answer in time.
    Timeout,
    /// The resolver refused the query.
    Refused,
    /// Anything else (network error, malformed answer...).
    Other(String),
}

impl FailureKind {
    /// The answer failed DNSSEC validation (metrics: `dns_bogus`).
    pub fn is_bogus(&self) -> bool {
        matches!(self, FailureKind::Bogus(_))
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailureKind::Bogus(None) => f.write_str("DNSSEC validation failed (bogus)"),
            FailureKind::Bogus(Some(cause)) => write!(f, "DNSSEC validation failed: {cause}"),
            FailureKind::ServFail => f.write_str("server failure (SERVFAIL)"),
            FailureKind::ServFailBecause(ede) => write!(f, "server failure (SERVFAIL): EDE {ede}"),
            FailureKind::Timeout => f.write_str("timed out"),
            FailureKind::Refused => f.write_str("query refused"),
            FailureKind::Other(s) => f.write_str(s),
        }
    }
}

/// A failed lookup of `name`/`rtype`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{rtype} lookup for {name} failed: {kind}")]
pub struct DnsFailure {
    pub name: String,
    pub rtype: &'static str,
    pub kind: FailureKind,
}

/// One MX record. A null MX (RFC 7505) has exchange ".".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mx {
    pub preference: u16,
    /// Host name, lowercase, no trailing dot ("." for a null MX).
    pub exchange: String,
}

/// One TLSA record (RFC 6698), usable or not: judging it is the caller's
/// job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tlsa {
    pub usage: u8,
    pub selector: u8,
    pub mtype: u8,
    pub data: Vec<u8>,
}

impl fmt::Display for Tlsa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {} ", self.usage, self.selector, self.mtype)?;
        for b in &self.data {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

pub type LookupResult<T> = Result<Lookup<T>, DnsFailure>;

/// The questions danegate asks of DNS. Names are fully qualified (no
/// search list), without trailing dot.
pub trait Resolver: Send + Sync {
    fn mx<'a>(&'a self, name: &'a str) -> BoxFuture<'a, LookupResult<Mx>>;
    fn ipv4<'a>(&'a self, name: &'a str) -> BoxFuture<'a, LookupResult<Ipv4Addr>>;
    fn ipv6<'a>(&'a self, name: &'a str) -> BoxFuture<'a, LookupResult<Ipv6Addr>>;
    /// TLSA records at `name` (e.g. `_25._tcp.mx1.example.net`). The
    /// default answers "none, insecure", for resolvers that cannot know.
    fn tlsa<'a>(&'a self, name: &'a str) -> BoxFuture<'a, LookupResult<Tlsa>> {
        let _ = name;
        Box::pin(async {
            Ok(Lookup::NoData {
                security: Security::Insecure,
            })
        })
    }
    /// TXT records at `name` (e.g. `_mta-sts.example.com`), each the
    /// concatenation of its character-strings, as MTA-STS (RFC 8461 §3.1)
    /// and TLS reporting (RFC 8460 §3) read them. The default answers
    /// "none, insecure", for resolvers that cannot know.
    fn txt<'a>(&'a self, name: &'a str) -> BoxFuture<'a, LookupResult<Vec<u8>>> {
        let _ = name;
        Box::pin(async {
            Ok(Lookup::NoData {
                security: Security::Insecure,
            })
        })
    }
}

/// The name servers to use: the configured ones, or those of
/// /etc/resolv.conf.
pub fn nameservers(dns: &crate::config::Dns) -> Result<Vec<std::net::SocketAddr>, String> {
    if !dns.nameservers.is_empty() {
        return Ok(dns.nameservers.clone());
    }
    let text = std::fs::read_to_string("/etc/resolv.conf")
        .map_err(|e| format!("cannot read /etc/resolv.conf: {e}"))?;
    let servers: Vec<_> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|a| a.trim().parse::<std::net::IpAddr>().ok())
        .map(|ip| std::net::SocketAddr::new(ip, 53))
        .collect();
    if servers.is_empty() {
        return Err("/etc/resolv.conf names no nameserver; set dns.nameservers".into());
    }
    Ok(servers)
}

/// The resolver the configuration asks for, and the zone whose DNSKEY
/// answer proves that validation works.
pub struct Built {
    pub resolver: std::sync::Arc<cache::CachingResolver>,
    /// The name servers asked (configured or from /etc/resolv.conf).
    pub servers: Vec<std::net::SocketAddr>,
    pub probe_zone: String,
    /// What the anchors are, for the start-up log.
    pub anchors: String,
}

/// Most cached answers.
const CACHE_ENTRIES: usize = 20_000;

pub async fn build(dns: &crate::config::Dns) -> Result<Built, String> {
    use crate::config::DnsMode;
    let servers = nameservers(dns)?;
    let timeout = std::time::Duration::from_secs(dns.timeout.max(1));
    let (backend, probe_zone, anchors): (Box<dyn cache::Backend>, String, String) = match dns.mode {
        DnsMode::Validate => {
            let a = anchors::load(dns.trust_anchor_file.as_deref(), &servers, timeout).await?;
            let backend = hickory::ValidatingBackend::new(
                servers.clone(),
                timeout,
                std::sync::Arc::new(a.trust),
                a.zones,
            );
            (Box::new(backend), a.zone.to_ascii(), a.summary)
        }
        DnsMode::TrustAd => {
            if let Some(ns) = servers.iter().find(|s| !s.ip().is_loopback()) {
                return Err(format!(
                    "dns mode \"trust-ad\" needs a validating resolver on this host, but {ns} (from /etc/resolv.conf) is not a loopback address; set dns.nameservers"
                ));
            }
            let zone = match &dns.trust_anchor_file {
                Some(path) => anchor_zone(path)?,
                None => ".".to_owned(),
            };
            let backend = wire::AdBackend::new(servers.clone(), timeout, true);
            (Box::new(backend), zone, "the resolver's own".to_owned())
        }
    };
    Ok(Built {
        resolver: std::sync::Arc::new(cache::CachingResolver::new(backend, timeout, CACHE_ENTRIES)),
        servers,
        probe_zone,
        anchors,
    })
}

/// The owner of the first record of an anchor file.
fn anchor_zone(path: &std::path::Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read trust anchor file {}: {e}", path.display()))?;
    text.lines()
        .map(|l| l.split(';').next().unwrap_or("").trim())
        .find(|l| !l.is_empty())
        .and_then(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .ok_or_else(|| format!("{}: no records", path.display()))
}

/// What the start-up probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// The anchored zone's DNSKEY answer validated.
    Validated,
    /// DNSSEC data comes back but does not validate: a resolver that
    /// strips signatures or does not validate. Nothing could ever be
    /// proven secure, so DANE would silently never apply.
    NotValidated(String),
    /// The name servers give no DNSKEY answer at all (unreachable, or
    /// cut off from the zone): every lookup fails and mail is deferred,
    /// which is safe, so this does not stop danegate.
    Unreachable(String),
}

/// Checks that validation works: the name servers must hand out the
/// anchored zone's DNSKEY set (asked with CD, unvalidated), and the
/// resolver must then find that answer secure.
pub async fn probe(built: &Built) -> Probe {
    use hickory_resolver::proto::rr::{Name, RecordType};
    let zone = &built.probe_zone;
    let name = match Name::from_ascii(zone) {
        Ok(n) => n,
        Err(e) => return Probe::NotValidated(format!("bad anchor zone {zone}: {e}")),
    };
    let query = wire::query_message(&name, RecordType::DNSKEY, true);
    let timeout = std::time::Duration::from_secs(5);
    let mut seen = Vec::new();
    let mut served = false;
    for server in &built.servers {
        match wire::exchange(*server, &query, timeout).await {
            Ok(m)
                if m.answers
                    .iter()
                    .any(|r| r.record_type() == RecordType::DNSKEY) =>
            {
                served = true;
                break;
            }
            Ok(m) => seen.push(format!(
                "{server} answered {} with no DNSKEY records",
                m.metadata.response_code
            )),
            Err(e) => seen.push(format!("{server}: {e}")),
        }
    }
    if !served {
        return Probe::Unreachable(format!(
            "DNS does not answer: no DNSKEY records for {zone} ({})",
            seen.join("; ")
        ));
    }
    match built.resolver.raw(zone, RecordType::DNSKEY).await {
        Ok(a) if a.security.is_secure() && a.kind == cache::RawKind::Records => Probe::Validated,
        Ok(a) => Probe::NotValidated(format!(
            "DNSSEC does not work: the name servers serve the DNSKEY records of {zone}, but the answer is {}; the resolver strips DNSSEC records or does not validate, so no answer could ever be proven secure",
            a.security
        )),
        Err(e) => Probe::NotValidated(format!(
            "DNSSEC does not work: the name servers serve the DNSKEY records of {zone}, but {e}"
        )),
    }
}

/// A resolver that asks the configured name servers and reports every
/// answer insecure: what test mode falls back to when DNSSEC does not
/// work, so that mail still flows (without DANE, and logged as such).
pub fn insecure(
    dns: &crate::config::Dns,
) -> Result<std::sync::Arc<cache::CachingResolver>, String> {
    let servers = nameservers(dns)?;
    let timeout = std::time::Duration::from_secs(dns.timeout.max(1));
    let backend = wire::AdBackend::new(servers, timeout, false);
    Ok(std::sync::Arc::new(cache::CachingResolver::new(
        Box::new(backend),
        timeout,
        CACHE_ENTRIES,
    )))
}
