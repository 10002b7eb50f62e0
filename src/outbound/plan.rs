//! The next-hop planner: from a recipient domain to the ordered list of
//! hosts to try, each with its addresses and the TLS requirement the
//! policy imposes on it (dane-rules §1–2), or the reason the domain must be
//! deferred or rejected.
//!
//! The planner asks DNS through the [`Resolver`] trait and decides through
//! `policy::decide`; it does not connect anywhere.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use rand::seq::SliceRandom;

use crate::config::{Config, Route};
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
    pub domain: String,
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
    pub addresses: Vec<IpAddr>,
    /// Security of the address records (and of any CNAME chain).
    pub address_security: Security,
    /// Where the host name's CNAME chain led, if it is an alias.
    pub alias: Option<Alias>,
    pub tlsa: TlsaStatus,
    /// The TLSA base domain whose records were found (dane-rules §2.2):
    /// also the SNI name and a reference identifier.
    pub tlsa_base: Option<String>,
    /// Every TLSA record found at the base (usable or not), in a secure
    /// RRset; empty otherwise.
    pub tlsa_records: Vec<Tlsa>,
    pub requirement: Requirement,
    /// What the domain's MTA-STS policy says about this host.
    pub sts: StsStatus,
    /// A `testing` policy's check to make and log, never enforce.
    pub sts_testing: Option<StsTesting>,
}

impl Host {
    /// The usable TLSA records.
    pub fn usable_tlsa(&self) -> impl Iterator<Item = &Tlsa> {
        self.tlsa_records
            .iter()
            .filter(|t| tlsa::usability(t).is_ok())
    }
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

impl Planner {
    /// Plans delivery for `domain` (lowercase, no trailing dot).
    pub async fn plan(
        &self,
        resolver: &dyn Resolver,
        config: &Config,
        domain: &str,
    ) -> Result<Plan, PlanError> {
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
        let (source, mx_security, candidates) = match route {
            Some(Route {
                host,
                port,
                mx_lookup: false,
            }) => (
                Source::Route,
                Security::Secure,
                vec![Candidate {
                    name: host,
                    port,
                    preference: 0,
                }],
            ),
            Some(Route {
                host,
                port,
                mx_lookup: true,
            }) => {
                let (src, sec, c) = self.mx_candidates(resolver, &host, port).await?;
                // The route itself is local config; the MX lookup of its
                // host keeps its own security.
                (
                    if src == Source::Mx {
                        Source::Route
                    } else {
                        src
                    },
                    sec,
                    c,
                )
            }
            None => self.mx_candidates(resolver, domain, 25).await?,
        };
        let mut found_hosts = Vec::new();
        let mut skipped = Vec::new();
        for c in candidates.into_iter().take(self.max_hosts) {
            let found = match self.addresses(resolver, &c.name).await {
                Ok(found) => found,
                Err(reason) => {
                    skipped.push(Skipped {
                        name: c.name,
                        reason,
                    });
                    continue;
                }
            };
            let tlsa = if level.wants_tlsa() {
                match self.tlsa(resolver, &c.name, c.port, &found).await {
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
            found_hosts.push((c, found, tlsa));
        }
        if found_hosts.is_empty() {
            let definite = skipped
                .iter()
                .all(|s| matches!(s.reason, SkipReason::NoAddress));
            return Err(PlanError::NoHost {
                domain: domain.to_owned(),
                problems: skipped,
                definite,
            });
        }
        // MTA-STS only once there is a host to deliver to.
        let sts =
            sts::apply::for_domain(self.sts.as_deref(), level, policy_domain.as_deref()).await;
        let hosts = found_hosts
            .into_iter()
            .map(|(c, found, tlsa)| {
                let sts_status = sts.status_for(&c.name);
                let decision =
                    policy::decide(level, mx_security.is_secure(), tlsa.status, sts_status);
                Host {
                    name: c.name,
                    port: c.port,
                    preference: c.preference,
                    addresses: found.addresses,
                    address_security: found.security,
                    alias: found.alias,
                    tlsa: tlsa.status,
                    tlsa_base: tlsa.base,
                    tlsa_records: tlsa.records,
                    requirement: decision.requirement,
                    sts: sts_status,
                    sts_testing: decision.sts_testing,
                }
            })
            .collect();
        Ok(Plan {
            domain: domain.to_owned(),
            level,
            mx_security,
            source,
            hosts,
            skipped,
            sts,
        })
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
        let secure_alias = found.alias.as_ref().filter(|a| a.secure);
        if !found.security.is_secure() && secure_alias.is_none() {
            // Insecure addresses: no TLSA lookup at all, so that unsigned
            // zones which fail on unknown types cannot block delivery.
            return Ok(TlsaFound::not_looked());
        }
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

    /// dane-rules §2.1: A and AAAA of one host.
    async fn addresses(
        &self,
        resolver: &dyn Resolver,
        name: &str,
    ) -> Result<Addresses, SkipReason> {
        if let Ok(ip) = name.parse::<IpAddr>() {
            return Ok(Addresses {
                addresses: vec![ip],
                security: Security::Secure,
                alias: None,
            });
        }
        let mut addresses = Vec::new();
        let mut security = Security::Secure;
        let mut failure = None;
        let mut alias = None;
        if self.families != Families::Ipv4Only {
            match resolver.ipv6(name).await {
                Ok(l) => {
                    security = security.and(l.security());
                    alias = alias.or_else(|| canonical(&l));
                    addresses.extend(l.records().iter().map(|a| IpAddr::V6(*a)));
                }
                Err(e) => failure = Some(e),
            }
        }
        if self.families != Families::Ipv6Only {
            match resolver.ipv4(name).await {
                Ok(l) => {
                    security = security.and(l.security());
                    alias = alias.or_else(|| canonical(&l));
                    addresses.extend(l.records().iter().map(|a| IpAddr::V4(*a)));
                }
                Err(e) => failure = Some(e),
            }
        }
        if let Some(e) = failure {
            // A failed lookup never counts as "no such record": the host
            // is skipped with the failure remembered.
            return Err(SkipReason::Dns(e));
        }
        if addresses.is_empty() {
            return Err(SkipReason::NoAddress);
        }
        Ok(Addresses {
            addresses,
            security,
            alias,
        })
    }
}

/// A host's addresses and how they were found.
struct Addresses {
    addresses: Vec<IpAddr>,
    security: Security,
    alias: Option<Alias>,
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

    #[tokio::test]
    async fn mx_hosts_in_preference_order_with_both_families() {
        let p = plan("two.example", &Config::default()).await.unwrap();
        assert_eq!(p.source, Source::Mx);
        let names: Vec<_> = p.hosts.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["mx1.two.example", "mx2.two.example"]);
        assert_eq!(
            p.hosts[1].addresses,
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
            p.hosts[0].addresses,
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
            .all(|h| h.addresses.iter().all(|a| a.is_ipv4())));
    }

    #[tokio::test]
    async fn address_literal_recipient_domain() {
        let p = plan("[192.0.2.3]", &Config::default()).await.unwrap();
        assert_eq!(p.source, Source::Literal);
        assert_eq!(
            p.hosts[0].addresses,
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
    use std::net::Ipv4Addr;

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
            kind: FailureKind::Bogus,
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
