//! The next-hop planner: from a recipient domain to the ordered list of
//! hosts to try, each with its addresses and the TLS requirement the
//! policy imposes on each address (dane-rules §1–2), or the reason the
//! domain must be deferred or rejected.
//!
//! dane-rules §2 per address, as Postfix keeps the DNSSEC status per
//! address record:
//! 1. A and AAAA are looked up separately; every address carries the
//!    security of the RRset it came from. A family that does not exist
//!    (NODATA) contributes no addresses; a family whose lookup failed
//!    contributes none either, and the host is skipped only when no family
//!    gave an address (with the failure as the reason, never "no host").
//! 2. DANE applies to an address from a secure RRset, or to any address
//!    of a host name that is a secure CNAME. TLSA records are looked up
//!    when DANE applies to at least one address, so one family's insecure
//!    answer (an NSEC3 denial above the iteration limit, an unsigned
//!    zone) never takes DANE away from the other's secure addresses.
//! 3. An address DANE applies to gets the host's requirement (§2.4: DANE
//!    required, TLS required, or opportunistic); any other address gets
//!    what the policy level asks without TLSA records (opportunistic under
//!    `dane`, refused under `dane-only`).
//!
//! Recipient domains in U-labels are planned in their A-label form
//! (`dns::idn`). The planner asks DNS through the [`Resolver`] trait and
//! decides through `policy::decide`; it does not connect anywhere.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use rand::seq::SliceRandom;

use crate::config::{Config, Route};
use crate::dns::idn::{self, BadDomain};
use crate::dns::{Alias, DnsFailure, Lookup, Resolver, Security, Tlsa};
use crate::policy::{self, Level, Requirement, StsStatus, StsTesting, TlsaStatus};
use crate::sts::{self, apply::ForDomain};
use crate::tls::tlsa;

/// Which address families to connect over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Families {
    Both,
    Ipv4Only,
    Ipv6Only,
}

impl From<crate::config::Families> for Families {
    fn from(f: crate::config::Families) -> Self {
        match f {
            crate::config::Families::Both => Families::Both,
            crate::config::Families::Ipv4 => Families::Ipv4Only,
            crate::config::Families::Ipv6 => Families::Ipv6Only,
        }
    }
}

/// Where mail for one domain goes.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The recipient domain in A-labels, as DNS was asked (also the
    /// next-hop reference identifier of DANE-TA name checks).
    pub domain: String,
    /// The same domain in U-labels where it is internationalised, for
    /// people to read (equal to `domain` otherwise).
    pub unicode: String,
    pub level: Level,
    /// Security of the MX RRset (secure for a static route).
    pub mx_security: Security,
    /// How the hosts were found.
    pub source: Source,
    /// Hosts in the order to try.
    pub hosts: Vec<Host>,
    /// Hosts that were left out, with why (for deferral texts and logs).
    pub skipped: Vec<Skipped>,
    /// The MTA-STS policy applied to the hosts, or why none is.
    pub sts: ForDomain,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A `[routes]` entry.
    Route,
    /// MX records of the domain.
    Mx,
    /// No MX records: the domain itself (RFC 5321 §5.1 implicit MX).
    ImplicitMx,
    /// The recipient domain was an address literal.
    Literal,
}

/// One host to try.
#[derive(Debug, Clone, PartialEq)]
pub struct Host {
    pub name: String,
    pub port: u16,
    pub preference: u16,
    /// The addresses in the order to try, each with the security of the
    /// RRset it came from and what a connection to it must achieve
    /// (dane-rules §2 per address).
    pub addresses: Vec<Address>,
    /// Where the host name's CNAME chain led, if it is an alias.
    pub alias: Option<Alias>,
    pub tlsa: TlsaStatus,
    /// The TLSA base domain whose records were found (dane-rules §2.2):
    /// also the SNI name and a reference identifier.
    pub tlsa_base: Option<String>,
    /// Every TLSA record found at the base (usable or not), in a secure
    /// RRset; empty otherwise.
    pub tlsa_records: Vec<Tlsa>,
    /// What connections to the addresses DANE applies to must achieve
    /// (each address has its own in `addresses`).
    pub requirement: Requirement,
    /// What the domain's MTA-STS policy says about this host.
    pub sts: StsStatus,
    /// A `testing` policy's check to make and log, never enforce.
    pub sts_testing: Option<StsTesting>,
}

impl Host {
    /// Whether every address came from a secure RRset.
    pub fn all_secure(&self) -> bool {
        self.addresses.iter().all(|a| a.security.is_secure())
    }

    /// The usable TLSA records.
    pub fn usable_tlsa(&self) -> impl Iterator<Item = &Tlsa> {
        self.tlsa_records
            .iter()
            .filter(|t| tlsa::usability(t).is_ok())
    }
}

/// One address of a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Address {
    pub ip: IpAddr,
    /// Security of the A or AAAA RRset it came from.
    pub security: Security,
    /// What a connection to it must achieve: the host's requirement when
    /// DANE applies to it, else the policy's without TLSA records.
    pub requirement: Requirement,
}

/// A host that cannot be used, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Skipped {
    pub name: String,
    pub reason: SkipReason,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SkipReason {
    /// The address lookup failed.
    Dns(DnsFailure),
    /// The host name has no A/AAAA records (of the allowed families).
    NoAddress,
}

impl fmt::Display for Skipped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.reason {
            SkipReason::Dns(e) => write!(f, "{e}"),
            SkipReason::NoAddress => write!(f, "{}: host has no address records", self.name),
        }
    }
}

/// Why a domain cannot be planned.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlanError {
    /// The recipient domain is not a valid (internationalised) domain name.
    #[error("{0}")]
    BadDomain(BadDomain),
    #[error("{0}")]
    Dns(DnsFailure),
    #[error("domain {domain} does not exist")]
    NxDomain { domain: String },
    #[error("domain {domain} does not accept mail (null MX)")]
    NullMx { domain: String },
    /// No host of the domain could be resolved; `problems` says why each
    /// one was skipped.
    #[error("no usable host for {domain}: {}", join(problems))]
    NoHost {
        domain: String,
        /// How the hosts were found, and the MX RRset's security, which
        /// `resolve` and `check` report even when no host is usable.
        origin: Source,
        mx_security: Security,
        problems: Vec<Skipped>,
        /// Every problem was a definite "no such host" (not a failure).
        definite: bool,
    },
}

fn join(problems: &[Skipped]) -> String {
    problems
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

/// The planner's view of the configuration.
#[derive(Clone)]
pub struct Planner {
    pub families: Families,
    /// Most MX hosts considered (Postfix's `smtp_mx_address_limit` idea).
    pub max_hosts: usize,
    /// MTA-STS discovery (none: no policy is applied).
    pub sts: Option<Arc<sts::Sts>>,
}

impl fmt::Debug for Planner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Planner")
            .field("families", &self.families)
            .field("max_hosts", &self.max_hosts)
            .field("sts", &self.sts.is_some())
            .finish()
    }
}

impl Default for Planner {
    fn default() -> Self {
        Planner {
            families: Families::Both,
            max_hosts: 10,
            sts: None,
        }
    }
}

impl Planner {
    /// The planner a configuration asks for.
    pub fn for_config(config: &Config) -> Self {
        Planner {
            families: config.dns.families.into(),
            ..Planner::default()
        }
    }
}

/// A candidate host before address resolution.
struct Candidate {
    name: String,
    port: u16,
    preference: u16,
}

/// A candidate whose addresses and TLSA records were found.
struct Found {
    candidate: Candidate,
    addresses: Addresses,
    tlsa: TlsaFound,
}

/// dane-rules §2.4 and §4 for one host, per address: the requirement of
/// the addresses DANE applies to, and what the policy asks of the others
/// (as if no TLSA lookup had been made), MTA-STS included.
fn host(level: Level, mx_security: Security, sts: &ForDomain, f: Found) -> Host {
    let Found {
        candidate: c,
        addresses: found,
        tlsa,
    } = f;
    let sts_status = sts.status_for(&c.name);
    let mx_secure = mx_security.is_secure();
    let with_dane = policy::decide(level, mx_secure, tlsa.status, sts_status);
    let without_dane = policy::decide(level, mx_secure, TlsaStatus::NotLooked, sts_status);
    let addresses: Vec<Address> = found
        .list
        .iter()
        .map(|&(ip, security)| Address {
            ip,
            security,
            requirement: if found.dane_applies(security) {
                with_dane.requirement
            } else {
                without_dane.requirement
            },
        })
        .collect();
    let sts_testing = if found.any_dane() {
        with_dane.sts_testing
    } else {
        without_dane.sts_testing
    };
    Host {
        name: c.name,
        port: c.port,
        preference: c.preference,
        addresses,
        alias: found.alias,
        tlsa: tlsa.status,
        tlsa_base: tlsa.base,
        tlsa_records: tlsa.records,
        requirement: with_dane.requirement,
        sts: sts_status,
        sts_testing,
    }
}

impl Planner {
    /// Plans delivery for `domain` as the legacy MTA wrote it (lowercase,
    /// U-labels or A-labels; no trailing dot). An internationalised domain
    /// is looked up in its A-label form (`dns::idn`).
    pub async fn plan(
        &self,
        resolver: &dyn Resolver,
        config: &Config,
        domain: &str,
    ) -> Result<Plan, PlanError> {
        let name = idn::parse(domain).map_err(PlanError::BadDomain)?;
        let domain = name.ascii.as_str();
        let level = config.policy.level_for(domain);
        let route = config
            .routes
            .iter()
            .find(|(k, _)| k.0 == domain)
            .map(|(_, r)| r.clone());
        let policy_domain = match &route {
            Some(r) if r.mx_lookup => Some(r.host.clone()),
            Some(_) => None,
            None if address_literal(domain).is_some() => None,
            None => Some(domain.to_owned()),
        };
        let (source, mx_security, candidates) = self.candidates(resolver, route, domain).await?;
        let (found, skipped) = self.lookups(resolver, level, candidates).await;
        if found.is_empty() {
            let definite = skipped
                .iter()
                .all(|s| matches!(s.reason, SkipReason::NoAddress));
            return Err(PlanError::NoHost {
                domain: domain.to_owned(),
                origin: source,
                mx_security,
                problems: skipped,
                definite,
            });
        }
        // MTA-STS only once there is a host to deliver to.
        let sts =
            sts::apply::for_domain(self.sts.as_deref(), level, policy_domain.as_deref()).await;
        let hosts = found
            .into_iter()
            .map(|f| host(level, mx_security, &sts, f))
            .collect();
        Ok(Plan {
            domain: domain.to_owned(),
            unicode: name.unicode,
            level,
            mx_security,
            source,
            hosts,
            skipped,
            sts,
        })
    }

    /// The hosts to try: the domain's `[routes]` entry, else its MX hosts
    /// (dane-rules §1).
    async fn candidates(
        &self,
        resolver: &dyn Resolver,
        route: Option<Route>,
        domain: &str,
    ) -> Result<(Source, Security, Vec<Candidate>), PlanError> {
        match route {
            Some(Route {
                host,
                port,
                mx_lookup: false,
            }) => Ok((
                Source::Route,
                Security::Secure,
                vec![Candidate {
                    name: host,
                    port,
                    preference: 0,
                }],
            )),
            Some(Route {
                host,
                port,
                mx_lookup: true,
            }) => {
                let (src, sec, c) = self.mx_candidates(resolver, &host, port).await?;
                // The route itself is local config; the MX lookup of its
                // host keeps its own security.
                let src = if src == Source::Mx {
                    Source::Route
                } else {
                    src
                };
                Ok((src, sec, c))
            }
            None => self.mx_candidates(resolver, domain, 25).await,
        }
    }

    /// dane-rules §2.1–2.2 for each candidate: its addresses and TLSA
    /// records, or why it is skipped.
    async fn lookups(
        &self,
        resolver: &dyn Resolver,
        level: Level,
        candidates: Vec<Candidate>,
    ) -> (Vec<Found>, Vec<Skipped>) {
        let mut found = Vec::new();
        let mut skipped = Vec::new();
        for c in candidates.into_iter().take(self.max_hosts) {
            let addresses = match self.addresses(resolver, &c.name).await {
                Ok(a) => a,
                Err(reason) => {
                    skipped.push(Skipped {
                        name: c.name,
                        reason,
                    });
                    continue;
                }
            };
            let tlsa = if level.wants_tlsa() {
                match self.tlsa(resolver, &c.name, c.port, &addresses).await {
                    Ok(t) => t,
                    Err(e) => {
                        skipped.push(Skipped {
                            name: c.name,
                            reason: SkipReason::Dns(e),
                        });
                        continue;
                    }
                }
            } else {
                TlsaFound::not_looked()
            };
            found.push(Found {
                candidate: c,
                addresses,
                tlsa,
            });
        }
        (found, skipped)
    }

    /// dane-rules §1: MX lookup, sorting, shuffling, implicit and null MX.
    async fn mx_candidates(
        &self,
        resolver: &dyn Resolver,
        domain: &str,
        port: u16,
    ) -> Result<(Source, Security, Vec<Candidate>), PlanError> {
        if let Some(lit) = address_literal(domain) {
            return Ok((
                Source::Literal,
                Security::Secure,
                vec![Candidate {
                    name: lit.to_string(),
                    port,
                    preference: 0,
                }],
            ));
        }
        match resolver.mx(domain).await.map_err(PlanError::Dns)? {
            Lookup::NxDomain { .. } => Err(PlanError::NxDomain {
                domain: domain.to_owned(),
            }),
            Lookup::NoData { security } => Ok((
                Source::ImplicitMx,
                security,
                vec![Candidate {
                    name: domain.to_owned(),
                    port,
                    preference: 0,
                }],
            )),
            Lookup::Records {
                records, security, ..
            } => {
                if records.iter().any(|mx| mx.exchange == ".") {
                    // RFC 7505 §3: a null MX is the only record; a domain
                    // that publishes one does not take mail.
                    return Err(PlanError::NullMx {
                        domain: domain.to_owned(),
                    });
                }
                let mut mxs = records;
                mxs.sort_by_key(|mx| mx.preference);
                mxs.dedup_by(|a, b| a.exchange == b.exchange);
                let mut rng = rand::thread_rng();
                for group in mxs.chunk_by_mut(|a, b| a.preference == b.preference) {
                    group.shuffle(&mut rng);
                }
                let candidates = mxs
                    .into_iter()
                    .map(|mx| Candidate {
                        name: mx.exchange,
                        port,
                        preference: mx.preference,
                    })
                    .collect();
                Ok((Source::Mx, security, candidates))
            }
        }
    }

    /// dane-rules §2.2–2.4: the TLSA records of one host, or the failed
    /// lookup that makes the host unusable.
    async fn tlsa(
        &self,
        resolver: &dyn Resolver,
        name: &str,
        port: u16,
        found: &Addresses,
    ) -> Result<TlsaFound, DnsFailure> {
        if name.parse::<IpAddr>().is_ok() {
            return Ok(TlsaFound::not_looked());
        }
        if !found.any_dane() {
            // No address DANE applies to: no TLSA lookup at all, so that
            // unsigned zones which fail on unknown types cannot block
            // delivery.
            return Ok(TlsaFound::not_looked());
        }
        let secure_alias = found.alias.as_ref().filter(|a| a.secure);
        let mut bases = Vec::new();
        if let Some(a) = secure_alias {
            bases.push(a.name.clone());
        }
        bases.push(name.to_owned());
        for base in bases {
            let qname = format!("_{port}._tcp.{base}");
            // A failure is final: no fallback to the next base.
            match resolver.tlsa(&qname).await? {
                Lookup::Records {
                    records,
                    security: Security::Secure,
                    ..
                } => {
                    let status = if records.iter().any(|t| tlsa::usability(t).is_ok()) {
                        TlsaStatus::Usable
                    } else {
                        TlsaStatus::AllUnusable
                    };
                    return Ok(TlsaFound {
                        status,
                        base: Some(base),
                        records,
                    });
                }
                // A secure denial: try the next base.
                Lookup::NoData {
                    security: Security::Secure,
                }
                | Lookup::NxDomain {
                    security: Security::Secure,
                } => continue,
                // An insecure answer counts as no TLSA at all.
                _ => break,
            }
        }
        Ok(TlsaFound {
            status: TlsaStatus::NoSecureTlsa,
            base: None,
            records: Vec::new(),
        })
    }

    /// dane-rules §2.1, per address: A and AAAA of one host, each address
    /// with the security of its own RRset. A family whose lookup failed
    /// contributes no addresses (as in Postfix); the host is skipped only
    /// when no family gave an address, with the failure when there was
    /// one (a failure never counts as "no such host").
    async fn addresses(
        &self,
        resolver: &dyn Resolver,
        name: &str,
    ) -> Result<Addresses, SkipReason> {
        if let Ok(ip) = name.parse::<IpAddr>() {
            // An address literal (a route or the recipient domain) comes
            // from local configuration or the envelope, not from DNS.
            return Ok(Addresses {
                list: vec![(ip, Security::Secure)],
                alias: None,
            });
        }
        let mut list = Vec::new();
        let mut failure = None;
        let mut alias = None;
        if self.families != Families::Ipv4Only {
            match resolver.ipv6(name).await {
                Ok(l) => {
                    alias = alias.or_else(|| canonical(&l));
                    list.extend(l.records().iter().map(|a| (IpAddr::V6(*a), l.security())));
                }
                Err(e) => failure = Some(e),
            }
        }
        if self.families != Families::Ipv6Only {
            match resolver.ipv4(name).await {
                Ok(l) => {
                    alias = alias.or_else(|| canonical(&l));
                    list.extend(l.records().iter().map(|a| (IpAddr::V4(*a), l.security())));
                }
                Err(e) => failure = Some(e),
            }
        }
        if list.is_empty() {
            return Err(failure.map_or(SkipReason::NoAddress, SkipReason::Dns));
        }
        Ok(Addresses { list, alias })
    }
}

/// A host's addresses, each with the security of its RRset, and where
/// the host name's CNAME chain led.
struct Addresses {
    list: Vec<(IpAddr, Security)>,
    alias: Option<Alias>,
}

impl Addresses {
    /// dane-rules §2.1: TLSA records apply to connections to an address
    /// from a secure RRset, or to any address of a name that is a secure
    /// CNAME (its TLSA records are then asked at the alias).
    fn dane_applies(&self, security: Security) -> bool {
        security.is_secure() || self.alias.as_ref().is_some_and(|a| a.secure)
    }

    fn any_dane(&self) -> bool {
        self.list.iter().any(|&(_, s)| self.dane_applies(s))
    }
}

fn canonical<T>(l: &Lookup<T>) -> Option<Alias> {
    match l {
        Lookup::Records { canonical, .. } => canonical.clone(),
        _ => None,
    }
}

/// The outcome of the TLSA step for one host.
struct TlsaFound {
    status: TlsaStatus,
    base: Option<String>,
    records: Vec<Tlsa>,
}

impl TlsaFound {
    fn not_looked() -> Self {
        TlsaFound {
            status: TlsaStatus::NotLooked,
            base: None,
            records: Vec::new(),
        }
    }
}

/// `[192.0.2.1]` or `[IPv6:2001:db8::1]` → the address.
pub fn address_literal(domain: &str) -> Option<IpAddr> {
    let inner = domain.strip_prefix('[')?.strip_suffix(']')?;
    let inner = inner
        .strip_prefix("IPv6:")
        .or_else(|| inner.strip_prefix("ipv6:"))
        .map(|v6| v6.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6))
        .unwrap_or_else(|| inner.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4));
    inner
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::dns::{BoxFuture, FailureKind, LookupResult, Mx};
    use std::collections::HashMap;
    use std::net::{Ipv4Addr, Ipv6Addr};

    /// A resolver answering from a table keyed by (name, type).
    #[derive(Default)]
    pub struct TableResolver {
        pub mx: HashMap<String, LookupResult<Mx>>,
        pub a: HashMap<String, LookupResult<Ipv4Addr>>,
        pub aaaa: HashMap<String, LookupResult<Ipv6Addr>>,
        pub tlsa: HashMap<String, LookupResult<Tlsa>>,
    }

    fn absent<T>() -> LookupResult<T> {
        Ok(Lookup::NxDomain {
            security: Security::Insecure,
        })
    }

    impl Resolver for TableResolver {
        fn mx<'a>(&'a self, name: &'a str) -> BoxFuture<'a, LookupResult<Mx>> {
            let r = self.mx.get(name).cloned().unwrap_or_else(absent);
            Box::pin(async move { r })
        }
        fn ipv4<'a>(&'a self, name: &'a str) -> BoxFuture<'a, LookupResult<Ipv4Addr>> {
            let r = self.a.get(name).cloned().unwrap_or(Ok(Lookup::NoData {
                security: Security::Insecure,
            }));
            Box::pin(async move { r })
        }
        fn ipv6<'a>(&'a self, name: &'a str) -> BoxFuture<'a, LookupResult<Ipv6Addr>> {
            let r = self.aaaa.get(name).cloned().unwrap_or(Ok(Lookup::NoData {
                security: Security::Insecure,
            }));
            Box::pin(async move { r })
        }
        fn tlsa<'a>(&'a self, name: &'a str) -> BoxFuture<'a, LookupResult<Tlsa>> {
            // A TLSA name the table does not know must never be asked.
            let r = self.tlsa.get(name).cloned().unwrap_or_else(|| {
                failure(name, "TLSA", FailureKind::Other("not in the table".into()))
            });
            Box::pin(async move { r })
        }
    }

    fn records<T>(records: Vec<T>) -> LookupResult<T> {
        Ok(Lookup::Records {
            records,
            security: Security::Insecure,
            canonical: None,
        })
    }

    fn mx(pref: u16, host: &str) -> Mx {
        Mx {
            preference: pref,
            exchange: host.to_owned(),
        }
    }

    fn failure<T>(name: &str, rtype: &'static str, kind: FailureKind) -> LookupResult<T> {
        Err(DnsFailure {
            name: name.into(),
            rtype,
            kind,
        })
    }

    fn lab() -> TableResolver {
        let mut r = TableResolver::default();
        r.mx.insert(
            "two.example".into(),
            records(vec![mx(20, "mx2.two.example"), mx(10, "mx1.two.example")]),
        );
        r.a.insert(
            "mx1.two.example".into(),
            records(vec![Ipv4Addr::new(192, 0, 2, 1)]),
        );
        r.a.insert(
            "mx2.two.example".into(),
            records(vec![Ipv4Addr::new(192, 0, 2, 2)]),
        );
        r.aaaa.insert(
            "mx2.two.example".into(),
            records(vec!["2001:db8::2".parse().unwrap()]),
        );
        r.mx.insert("null.example".into(), records(vec![mx(0, ".")]));
        r.mx.insert(
            "implicit.example".into(),
            Ok(Lookup::NoData {
                security: Security::Insecure,
            }),
        );
        r.a.insert(
            "implicit.example".into(),
            records(vec![Ipv4Addr::new(192, 0, 2, 9)]),
        );
        r.mx.insert(
            "fail.example".into(),
            failure("fail.example", "MX", FailureKind::ServFail),
        );
        r.mx.insert(
            "halfbroken.example".into(),
            records(vec![
                mx(10, "bad.halfbroken.example"),
                mx(20, "good.halfbroken.example"),
            ]),
        );
        r.a.insert(
            "bad.halfbroken.example".into(),
            failure("bad.halfbroken.example", "A", FailureKind::Timeout),
        );
        r.a.insert(
            "good.halfbroken.example".into(),
            records(vec![Ipv4Addr::new(192, 0, 2, 7)]),
        );
        r.mx.insert(
            "noaddr.example".into(),
            records(vec![mx(10, "ghost.noaddr.example")]),
        );
        r
    }

    async fn plan(domain: &str, config: &Config) -> Result<Plan, PlanError> {
        Planner::default().plan(&lab(), config, domain).await
    }

    fn ips(h: &Host) -> Vec<IpAddr> {
        h.addresses.iter().map(|a| a.ip).collect()
    }

    #[tokio::test]
    async fn mx_hosts_in_preference_order_with_both_families() {
        let p = plan("two.example", &Config::default()).await.unwrap();
        assert_eq!(p.source, Source::Mx);
        let names: Vec<_> = p.hosts.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["mx1.two.example", "mx2.two.example"]);
        assert_eq!(
            ips(&p.hosts[1]),
            vec![
                "2001:db8::2".parse::<IpAddr>().unwrap(),
                "192.0.2.2".parse().unwrap()
            ]
        );
        assert_eq!(p.hosts[0].requirement, Requirement::Opportunistic);
        assert_eq!(p.mx_security, Security::Insecure);
    }

    #[tokio::test]
    async fn table_of_domain_outcomes() {
        let c = Config::default();
        assert_eq!(
            plan("missing.example", &c).await,
            Err(PlanError::NxDomain {
                domain: "missing.example".into()
            })
        );
        assert_eq!(
            plan("null.example", &c).await,
            Err(PlanError::NullMx {
                domain: "null.example".into()
            })
        );
        assert_eq!(
            plan("fail.example", &c).await,
            Err(PlanError::Dns(DnsFailure {
                name: "fail.example".into(),
                rtype: "MX",
                kind: FailureKind::ServFail
            }))
        );
        let implicit = plan("implicit.example", &c).await.unwrap();
        assert_eq!(implicit.source, Source::ImplicitMx);
        assert_eq!(implicit.hosts[0].name, "implicit.example");
        let half = plan("halfbroken.example", &c).await.unwrap();
        assert_eq!(half.hosts.len(), 1);
        assert_eq!(half.hosts[0].name, "good.halfbroken.example");
        assert_eq!(
            half.skipped[0].to_string(),
            "A lookup for bad.halfbroken.example failed: timed out"
        );
        match plan("noaddr.example", &c).await {
            Err(PlanError::NoHost {
                definite, problems, ..
            }) => {
                assert!(definite);
                assert_eq!(problems[0].name, "ghost.noaddr.example");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test]
    async fn internationalised_domains_are_looked_up_in_a_labels() {
        let mut r = lab();
        r.mx.insert(
            "xn--bcher-kva.example".into(),
            records(vec![mx(10, "mx.xn--bcher-kva.example")]),
        );
        r.a.insert(
            "mx.xn--bcher-kva.example".into(),
            records(vec![Ipv4Addr::new(192, 0, 2, 44)]),
        );
        for written in ["bücher.example", "xn--bcher-kva.example"] {
            let p = Planner::default()
                .plan(&r, &Config::default(), written)
                .await
                .unwrap_or_else(|e| panic!("{written}: {e}"));
            assert_eq!(p.domain, "xn--bcher-kva.example", "{written}");
            assert_eq!(p.unicode, "bücher.example", "{written}");
            assert_eq!(p.hosts[0].name, "mx.xn--bcher-kva.example");
        }
        match Planner::default()
            .plan(&r, &Config::default(), "bü\u{0}cher.example")
            .await
        {
            Err(PlanError::BadDomain(e)) => assert_eq!(
                e.to_string(),
                "recipient domain bü\\u{0}cher.example is not a valid domain name: label bü\\u{0}cher: \\u{0} (U+0000) is not allowed in a domain name"
            ),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test]
    async fn equal_preferences_are_shuffled() {
        let mut r = TableResolver::default();
        let hosts: Vec<String> = (0..6).map(|i| format!("mx{i}.eq.example")).collect();
        r.mx.insert(
            "eq.example".into(),
            records(hosts.iter().map(|h| mx(10, h)).collect()),
        );
        for h in &hosts {
            r.a.insert(h.clone(), records(vec![Ipv4Addr::new(192, 0, 2, 1)]));
        }
        let mut orders = std::collections::HashSet::new();
        for _ in 0..40 {
            let p = Planner::default()
                .plan(&r, &Config::default(), "eq.example")
                .await
                .unwrap();
            orders.insert(p.hosts.iter().map(|h| h.name.clone()).collect::<Vec<_>>());
        }
        // 6! orders: 40 draws giving a single one would be a broken shuffle.
        assert!(orders.len() > 1);
    }

    #[tokio::test]
    async fn static_route_is_secure_and_skips_mx() {
        let c = Config::parse(
            "[routes]\n\"two.example\" = \"[192.0.2.55]:2525\"\n",
            "test",
        )
        .unwrap();
        let p = plan("two.example", &c).await.unwrap();
        assert_eq!(p.source, Source::Route);
        assert_eq!(p.mx_security, Security::Secure);
        assert_eq!(p.hosts[0].port, 2525);
        assert_eq!(
            ips(&p.hosts[0]),
            vec!["192.0.2.55".parse::<IpAddr>().unwrap()]
        );
    }

    #[tokio::test]
    async fn families_switch() {
        let p = Planner {
            families: Families::Ipv4Only,
            ..Planner::default()
        }
        .plan(&lab(), &Config::default(), "two.example")
        .await
        .unwrap();
        assert!(p
            .hosts
            .iter()
            .all(|h| h.addresses.iter().all(|a| a.ip.is_ipv4())));
    }

    #[tokio::test]
    async fn address_literal_recipient_domain() {
        let p = plan("[192.0.2.3]", &Config::default()).await.unwrap();
        assert_eq!(p.source, Source::Literal);
        assert_eq!(
            ips(&p.hosts[0]),
            vec!["192.0.2.3".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(
            address_literal("[IPv6:2001:db8::5]"),
            Some("2001:db8::5".parse().unwrap())
        );
        assert_eq!(address_literal("[bogus]"), None);
    }

    #[tokio::test]
    async fn dane_only_refuses_insecure_mx() {
        let c = Config::parse("[policy]\ndefault = \"dane-only\"\n", "test").unwrap();
        let p = plan("two.example", &c).await.unwrap();
        assert_eq!(
            p.hosts[0].requirement,
            Requirement::Refuse(policy::RefuseReason::InsecureMx)
        );
    }
}

#[cfg(test)]
mod tlsa_rules {
    //! dane-rules §1.4 and §2 as a table: one domain per rule.
    use super::tests::TableResolver;
    use super::*;
    use crate::dns::{FailureKind, LookupResult, Mx};
    use crate::policy::RefuseReason;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn sec<T>(records: Vec<T>) -> LookupResult<T> {
        Ok(Lookup::Records {
            records,
            security: Security::Secure,
            canonical: None,
        })
    }
    fn insec<T>(records: Vec<T>) -> LookupResult<T> {
        Ok(Lookup::Records {
            records,
            security: Security::Insecure,
            canonical: None,
        })
    }
    fn aliased<T>(
        records: Vec<T>,
        target: &str,
        chain_secure: bool,
        all: Security,
    ) -> LookupResult<T> {
        Ok(Lookup::Records {
            records,
            security: all,
            canonical: Some(Alias {
                name: target.into(),
                secure: chain_secure,
            }),
        })
    }
    fn nodata<T>(security: Security) -> LookupResult<T> {
        Ok(Lookup::NoData { security })
    }
    fn fail<T>(name: &str, rtype: &'static str) -> LookupResult<T> {
        Err(DnsFailure {
            name: name.into(),
            rtype,
            kind: FailureKind::Bogus(None),
        })
    }
    fn ee() -> Tlsa {
        Tlsa {
            usage: 3,
            selector: 1,
            mtype: 1,
            data: vec![7; 32],
        }
    }
    fn pkix() -> Tlsa {
        Tlsa {
            usage: 1,
            selector: 1,
            mtype: 1,
            data: vec![7; 32],
        }
    }
    const IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 25);

    /// One domain `d`, MX `mx.d` (secure unless `mx_insecure`), A as
    /// given, TLSA entries as given.
    fn domain(
        r: &mut TableResolver,
        d: &str,
        mx_insecure: bool,
        a: LookupResult<Ipv4Addr>,
        tlsa: Vec<(&str, LookupResult<Tlsa>)>,
    ) {
        let mx = vec![Mx {
            preference: 10,
            exchange: format!("mx.{d}"),
        }];
        r.mx.insert(d.into(), if mx_insecure { insec(mx) } else { sec(mx) });
        r.a.insert(format!("mx.{d}"), a);
        r.aaaa.insert(format!("mx.{d}"), nodata(Security::Secure));
        for (name, answer) in tlsa {
            r.tlsa.insert(name.into(), answer);
        }
    }

    fn lab() -> TableResolver {
        let mut r = TableResolver::default();
        domain(
            &mut r,
            "usable.example",
            false,
            sec(vec![IP]),
            vec![("_25._tcp.mx.usable.example", sec(vec![ee()]))],
        );
        domain(
            &mut r,
            "unusable.example",
            false,
            sec(vec![IP]),
            vec![("_25._tcp.mx.unusable.example", sec(vec![pkix()]))],
        );
        domain(
            &mut r,
            "none.example",
            false,
            sec(vec![IP]),
            vec![("_25._tcp.mx.none.example", nodata(Security::Secure))],
        );
        domain(
            &mut r,
            "insecure-tlsa.example",
            false,
            sec(vec![IP]),
            vec![("_25._tcp.mx.insecure-tlsa.example", insec(vec![ee()]))],
        );
        // Insecure addresses: the TLSA name is not in the table, so a
        // lookup would fail the host.
        domain(
            &mut r,
            "insecure-addr.example",
            false,
            insec(vec![IP]),
            vec![],
        );
        domain(
            &mut r,
            "cname.example",
            false,
            aliased(vec![IP], "target.example", true, Security::Secure),
            vec![("_25._tcp.target.example", sec(vec![ee()]))],
        );
        domain(
            &mut r,
            "cname-fallback.example",
            false,
            aliased(vec![IP], "target2.example", true, Security::Secure),
            vec![
                ("_25._tcp.target2.example", nodata(Security::Secure)),
                ("_25._tcp.mx.cname-fallback.example", sec(vec![ee()])),
            ],
        );
        domain(
            &mut r,
            "cname-fail.example",
            false,
            aliased(vec![IP], "target3.example", true, Security::Secure),
            vec![
                (
                    "_25._tcp.target3.example",
                    fail("_25._tcp.target3.example", "TLSA"),
                ),
                ("_25._tcp.mx.cname-fail.example", sec(vec![ee()])),
            ],
        );
        // A secure alias whose target's addresses are unsigned: TLSA is
        // still looked up, at the target first.
        domain(
            &mut r,
            "cname-unsigned-target.example",
            false,
            aliased(vec![IP], "target4.example", true, Security::Insecure),
            vec![
                ("_25._tcp.target4.example", nodata(Security::Secure)),
                ("_25._tcp.mx.cname-unsigned-target.example", sec(vec![ee()])),
            ],
        );
        domain(
            &mut r,
            "cname-insecure.example",
            false,
            aliased(vec![IP], "target5.example", false, Security::Insecure),
            vec![],
        );
        domain(
            &mut r,
            "insecure-mx.example",
            true,
            sec(vec![IP]),
            vec![("_25._tcp.mx.insecure-mx.example", sec(vec![ee()]))],
        );
        r
    }

    /// (domain, policy, tlsa status, tlsa base, requirement)
    const TABLE: &[(&str, &str, TlsaStatus, Option<&str>, Requirement)] = &[
        (
            "usable.example",
            "dane",
            TlsaStatus::Usable,
            Some("mx.usable.example"),
            Requirement::DaneRequired,
        ),
        (
            "unusable.example",
            "dane",
            TlsaStatus::AllUnusable,
            Some("mx.unusable.example"),
            Requirement::TlsRequired,
        ),
        (
            "none.example",
            "dane",
            TlsaStatus::NoSecureTlsa,
            None,
            Requirement::Opportunistic,
        ),
        (
            "insecure-tlsa.example",
            "dane",
            TlsaStatus::NoSecureTlsa,
            None,
            Requirement::Opportunistic,
        ),
        (
            "insecure-addr.example",
            "dane",
            TlsaStatus::NotLooked,
            None,
            Requirement::Opportunistic,
        ),
        (
            "cname.example",
            "dane",
            TlsaStatus::Usable,
            Some("target.example"),
            Requirement::DaneRequired,
        ),
        (
            "cname-fallback.example",
            "dane",
            TlsaStatus::Usable,
            Some("mx.cname-fallback.example"),
            Requirement::DaneRequired,
        ),
        (
            "cname-unsigned-target.example",
            "dane",
            TlsaStatus::Usable,
            Some("mx.cname-unsigned-target.example"),
            Requirement::DaneRequired,
        ),
        (
            "cname-insecure.example",
            "dane",
            TlsaStatus::NotLooked,
            None,
            Requirement::Opportunistic,
        ),
        (
            "insecure-mx.example",
            "dane",
            TlsaStatus::Usable,
            Some("mx.insecure-mx.example"),
            Requirement::DaneRequired,
        ),
        (
            "insecure-mx.example",
            "dane-only",
            TlsaStatus::Usable,
            Some("mx.insecure-mx.example"),
            Requirement::Refuse(RefuseReason::InsecureMx),
        ),
        (
            "none.example",
            "dane-only",
            TlsaStatus::NoSecureTlsa,
            None,
            Requirement::Refuse(RefuseReason::NoSecureTlsa),
        ),
        (
            "usable.example",
            "may",
            TlsaStatus::NotLooked,
            None,
            Requirement::Opportunistic,
        ),
        (
            "usable.example",
            "encrypt",
            TlsaStatus::NotLooked,
            None,
            Requirement::TlsRequired,
        ),
    ];

    #[tokio::test]
    async fn per_host_rules() {
        let r = lab();
        for &(domain, level, status, base, requirement) in TABLE {
            let config = Config::parse(&format!("[policy]\ndefault = \"{level}\"\n"), "t").unwrap();
            let plan = Planner::default().plan(&r, &config, domain).await;
            let plan = plan.unwrap_or_else(|e| panic!("{domain}/{level}: {e}"));
            let h = &plan.hosts[0];
            assert_eq!(
                (h.tlsa, h.tlsa_base.as_deref(), h.requirement),
                (status, base, requirement),
                "{domain} under {level}"
            );
        }
    }

    const IP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x25);

    /// Per-address domains: `mx.D` with the given A and AAAA answers and
    /// a secure, usable TLSA record.
    fn families_lab() -> TableResolver {
        let mut r = lab();
        let rows: [(&str, LookupResult<Ipv4Addr>, LookupResult<Ipv6Addr>); 6] = [
            (
                "aaaa-nodata-insecure.example",
                sec(vec![IP]),
                nodata(Security::Insecure),
            ),
            ("aaaa-insecure.example", sec(vec![IP]), insec(vec![IP6])),
            ("a-insecure.example", insec(vec![IP]), sec(vec![IP6])),
            (
                "aaaa-fails.example",
                sec(vec![IP]),
                fail("mx.aaaa-fails.example", "AAAA"),
            ),
            ("both-insecure.example", insec(vec![IP]), insec(vec![IP6])),
            ("both-secure.example", sec(vec![IP]), sec(vec![IP6])),
        ];
        for (d, a, aaaa) in rows {
            domain(
                &mut r,
                d,
                false,
                a,
                vec![(&format!("_25._tcp.mx.{d}"), sec(vec![ee()]))],
            );
            r.aaaa.insert(format!("mx.{d}"), aaaa);
        }
        r
    }

    /// (domain, policy, each address in the order tried: address,
    /// security, requirement)
    type PerAddress = (
        &'static str,
        &'static str,
        &'static [(&'static str, Security, Requirement)],
    );

    const PER_ADDRESS: &[PerAddress] = &[
        (
            "aaaa-nodata-insecure.example",
            "dane",
            &[("192.0.2.25", Security::Secure, Requirement::DaneRequired)],
        ),
        (
            "aaaa-insecure.example",
            "dane",
            &[
                (
                    "2001:db8::25",
                    Security::Insecure,
                    Requirement::Opportunistic,
                ),
                ("192.0.2.25", Security::Secure, Requirement::DaneRequired),
            ],
        ),
        (
            "aaaa-insecure.example",
            "dane-only",
            &[
                (
                    "2001:db8::25",
                    Security::Insecure,
                    Requirement::Refuse(RefuseReason::NoSecureTlsa),
                ),
                ("192.0.2.25", Security::Secure, Requirement::DaneRequired),
            ],
        ),
        (
            "a-insecure.example",
            "dane",
            &[
                ("2001:db8::25", Security::Secure, Requirement::DaneRequired),
                ("192.0.2.25", Security::Insecure, Requirement::Opportunistic),
            ],
        ),
        (
            "aaaa-fails.example",
            "dane",
            &[("192.0.2.25", Security::Secure, Requirement::DaneRequired)],
        ),
        (
            "both-insecure.example",
            "dane",
            &[
                (
                    "2001:db8::25",
                    Security::Insecure,
                    Requirement::Opportunistic,
                ),
                ("192.0.2.25", Security::Insecure, Requirement::Opportunistic),
            ],
        ),
        (
            "both-insecure.example",
            "encrypt",
            &[
                ("2001:db8::25", Security::Insecure, Requirement::TlsRequired),
                ("192.0.2.25", Security::Insecure, Requirement::TlsRequired),
            ],
        ),
        (
            "both-secure.example",
            "dane",
            &[
                ("2001:db8::25", Security::Secure, Requirement::DaneRequired),
                ("192.0.2.25", Security::Secure, Requirement::DaneRequired),
            ],
        ),
    ];

    #[tokio::test]
    async fn per_address_rules() {
        let r = families_lab();
        for &(domain, level, want) in PER_ADDRESS {
            let config = Config::parse(&format!("[policy]\ndefault = \"{level}\"\n"), "t").unwrap();
            let plan = Planner::default().plan(&r, &config, domain).await;
            let plan = plan.unwrap_or_else(|e| panic!("{domain}/{level}: {e}"));
            let got: Vec<(String, Security, Requirement)> = plan.hosts[0]
                .addresses
                .iter()
                .map(|a| (a.ip.to_string(), a.security, a.requirement))
                .collect();
            let want: Vec<(String, Security, Requirement)> = want
                .iter()
                .map(|&(ip, s, q)| (ip.to_owned(), s, q))
                .collect();
            assert_eq!(got, want, "{domain} under {level}");
            // The TLSA records are looked up (and usable) whenever DANE
            // applies to one address.
            let any_secure = want.iter().any(|(_, s, _)| s.is_secure());
            let looked = plan.hosts[0].tlsa != TlsaStatus::NotLooked;
            assert_eq!(
                looked,
                any_secure && level.starts_with("dane"),
                "{domain} under {level}"
            );
        }
    }

    #[tokio::test]
    async fn failed_tlsa_lookup_fails_the_host_without_fallback() {
        let config = Config::default();
        match Planner::default()
            .plan(&lab(), &config, "cname-fail.example")
            .await
        {
            Err(PlanError::NoHost {
                problems, definite, ..
            }) => {
                assert!(!definite);
                assert_eq!(
                    problems[0].to_string(),
                    "TLSA lookup for _25._tcp.target3.example failed: DNSSEC validation failed (bogus)"
                );
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test]
    async fn insecure_mx_is_recorded_for_trusted_logging() {
        let plan = Planner::default()
            .plan(&lab(), &Config::default(), "insecure-mx.example")
            .await
            .unwrap();
        assert_eq!(plan.mx_security, Security::Insecure);
        assert_eq!(plan.hosts[0].usable_tlsa().count(), 1);
    }
}
