//! `tlsa published`: every authoritative name server address of the zone
//! asked directly whether it serves a signed, usable TLSA record matching
//! a certificate or key, with its TTL and RRSIG expiry. [`judge`] is the
//! pure decision on one answer.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::material::{read_material, Designated};
use super::{block_on, load_config, short, tlsa_name, PublishedArgs, TlsaError};
use crate::config::{Config, Families};
use crate::dns::wire::AuthoritativeTlsa;
use crate::dns::{Lookup, Resolver, Tlsa};
use crate::ops::dates::{now_secs, until, utc};
use crate::tls::dane::select_records;
use crate::tls::tlsa;

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
    use crate::ops::tlsa::material::tests::self_signed;

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
