//! Why an answer is bogus. hickory's validator says only *that* an answer
//! failed validation; this walks the same chain of trust again (RFC 4035
//! §5) over raw data fetched with the CD bit and reports the first thing
//! that is wrong, in words an operator can act on:
//!
//! - `RRSIG of _25._tcp.mx1.example.net TLSA expired 2026-11-30 00:00:00 UTC`
//! - `RRSIG of ... by key 4242 of example.net does not verify`
//! - `DS for example.net names no DNSKEY (DS key tag 1111; DNSKEY key tag 2222)`
//! - `no DNSKEY answer for example.net from 127.0.0.1:53 (NOERROR, no records)`
//! - `MX of example.net has no RRSIG, but its zone example.net is signed`
//!
//! It never decides: the verdict is the validator's. When it finds
//! nothing, the answer stays "bogus" without a cause. Every question is
//! bounded by the resolver's timeout and the whole walk by the caller.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::Duration;

use hickory_resolver::proto::dnssec::rdata::{DNSSECRData, DNSKEY, DS, RRSIG};
use hickory_resolver::proto::dnssec::Verifier;
use hickory_resolver::proto::op::{Message, ResponseCode};
use hickory_resolver::proto::rr::{DNSClass, Name, RData, Record, RecordType, SerialNumber};

use super::anchors::ZoneKeys;
use super::chain::synthesising_dname;
use super::{forward, wire, BoxFuture, FailureKind};

/// What was found wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    /// The data does not validate (bogus), and this is why.
    Bogus(String),
    /// A question validation needs got no usable answer (a failure, not
    /// bogus data).
    Unanswered(String),
}

pub struct Explainer {
    servers: Vec<SocketAddr>,
    timeout: Duration,
    anchors: Vec<ZoneKeys>,
}

/// One RRset of a response with the signatures over it.
struct RrSet {
    name: Name,
    rtype: RecordType,
    records: Vec<Record>,
    sigs: Vec<Record>,
}

/// A zone's DNSKEY RRset and the RRSIGs over it.
#[derive(Clone)]
struct Keys {
    records: Vec<Record>,
    sigs: Vec<Record>,
}

/// Most zones or RRsets one explanation looks at.
const MAX_STEPS: usize = 40;

impl Explainer {
    pub fn new(servers: Vec<SocketAddr>, timeout: Duration, anchors: Vec<ZoneKeys>) -> Self {
        Explainer {
            servers,
            timeout,
            anchors,
        }
    }

    /// The first problem with the answer to `name`/`rtype`, if one is
    /// found.
    pub async fn explain(&self, name: &Name, rtype: RecordType) -> Option<Cause> {
        let mut walk = Walk {
            ex: self,
            now: SerialNumber::new(now()),
            keys: HashMap::new(),
            checked: HashSet::new(),
            steps: 0,
        };
        walk.message(name.clone(), rtype).await
    }

    /// Asks the servers in turn (CD set), returning who answered.
    async fn ask(&self, name: &Name, rtype: RecordType) -> Result<(SocketAddr, Message), String> {
        let mut query = forward::cd_query(&Message::query());
        query.add_query(hickory_resolver::proto::op::Query::query(
            name.clone(),
            rtype,
        ));
        let mut last = "no nameservers configured".to_owned();
        for server in &self.servers {
            match wire::exchange(*server, &query, self.timeout).await {
                Ok(m) => return Ok((*server, m)),
                Err(FailureKind::Timeout) => last = format!("{server} did not answer in time"),
                Err(e) => last = format!("{server}: {e}"),
            }
        }
        Err(last)
    }

    fn anchored(&self, zone: &Name) -> Option<&ZoneKeys> {
        self.anchors.iter().find(|z| &z.zone == zone)
    }
}

fn now() -> u32 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    // RRSIG times are 32-bit serial numbers (RFC 4034 §3.1.5).
    (secs & 0xffff_ffff) as u32
}

struct Walk<'a> {
    ex: &'a Explainer,
    now: SerialNumber,
    keys: HashMap<Name, Result<Keys, Cause>>,
    checked: HashSet<Name>,
    steps: usize,
}

impl<'a> Walk<'a> {
    /// The response to `name`/`rtype` and every RRset in it.
    fn message(&mut self, name: Name, rtype: RecordType) -> BoxFuture<'_, Option<Cause>> {
        Box::pin(async move {
            let (server, m) = match self.ex.ask(&name, rtype).await {
                Ok(x) => x,
                Err(e) => {
                    return Some(Cause::Unanswered(format!(
                        "{rtype} of {}: {e}",
                        show(&name)
                    )))
                }
            };
            match m.metadata.response_code {
                ResponseCode::NoError | ResponseCode::NXDomain => {}
                code => {
                    return Some(Cause::Unanswered(format!(
                        "{server} answered {code} to {rtype} of {}",
                        show(&name)
                    )))
                }
            }
            for set in rrsets(&m) {
                if let Some(c) = self.rrset(&set).await {
                    return Some(c);
                }
            }
            None
        })
    }

    /// One RRset: its signatures, the keys that made them, and the chain
    /// of trust above those keys.
    fn rrset<'s>(&'s mut self, set: &'s RrSet) -> BoxFuture<'s, Option<Cause>> {
        Box::pin(async move {
            self.steps += 1;
            if self.steps > MAX_STEPS {
                return None;
            }
            if set.sigs.is_empty() {
                return self.unsigned(set).await;
            }
            let mut problem = None;
            for sig in set.sigs.iter().filter_map(rrsig) {
                let input = sig.input();
                if let Some(p) = self.time_problem(set, sig) {
                    problem.get_or_insert(Cause::Bogus(p));
                    continue;
                }
                if !input.algorithm.is_supported() {
                    // Unsupported algorithms make data insecure, not bogus.
                    return None;
                }
                let keys = match self.dnskeys(&input.signer_name).await {
                    Ok(k) => k,
                    Err(c) => return Some(c),
                };
                match verify(set, sig, &keys.records) {
                    Ok(()) => return self.zone_keys(input.signer_name.clone(), keys).await,
                    Err(p) => {
                        problem.get_or_insert(Cause::Bogus(p));
                    }
                }
            }
            problem
        })
    }

    /// An RRset without RRSIG is wrong only in a signed zone.
    async fn unsigned(&mut self, set: &RrSet) -> Option<Cause> {
        let (_, m) = self.ex.ask(&set.name, RecordType::SOA).await.ok()?;
        let zone = m
            .answers
            .iter()
            .chain(m.authorities.iter())
            .find(|r| r.record_type() == RecordType::SOA)
            .map(|r| r.name.clone())?;
        let (_, ds) = self.ex.ask(&zone, RecordType::DS).await.ok()?;
        let signed = self.ex.anchored(&zone).is_some()
            || ds
                .answers
                .iter()
                .any(|r| r.record_type() == RecordType::DS && r.name == zone);
        signed.then(|| {
            Cause::Bogus(format!(
                "{} of {} has no RRSIG, but its zone {} is signed",
                set.rtype,
                show(&set.name),
                show(&zone)
            ))
        })
    }

    fn time_problem(&self, set: &RrSet, sig: &RRSIG) -> Option<String> {
        let input = sig.input();
        let what = format!("RRSIG of {} {}", show(&set.name), set.rtype);
        if self.now > input.sig_expiration {
            return Some(format!(
                "{what} expired {}",
                utc(input.sig_expiration.get())
            ));
        }
        if self.now < input.sig_inception {
            return Some(format!(
                "{what} not valid before {}",
                utc(input.sig_inception.get())
            ));
        }
        None
    }

    /// The DNSKEY RRset of `zone`, fetched once per walk.
    async fn dnskeys(&mut self, zone: &Name) -> Result<Keys, Cause> {
        if let Some(k) = self.keys.get(zone) {
            return k.clone();
        }
        let keys = match self.ex.ask(zone, RecordType::DNSKEY).await {
            Err(e) => Err(Cause::Unanswered(format!(
                "no DNSKEY answer for {}: {e}",
                show(zone)
            ))),
            Ok((server, m)) => {
                let (records, sigs) = rrset_at(&m, zone, RecordType::DNSKEY);
                if records.is_empty() {
                    Err(Cause::Bogus(format!(
                        "no DNSKEY answer for {} from {server} ({}, no records)",
                        show(zone),
                        m.metadata.response_code
                    )))
                } else {
                    Ok(Keys { records, sigs })
                }
            }
        };
        self.keys.insert(zone.clone(), keys.clone());
        keys
    }

    /// Whether `zone`'s keys are trusted: by an anchor, or by a DS in the
    /// parent that is itself validated.
    fn zone_keys(&mut self, zone: Name, keys: Keys) -> BoxFuture<'_, Option<Cause>> {
        Box::pin(async move {
            if !self.checked.insert(zone.clone()) {
                return None;
            }
            if let Some(anchor) = self.ex.anchored(&zone) {
                let trusted = keys
                    .records
                    .iter()
                    .filter(|r| dnskey(r).is_some_and(|k| anchor.trusts(k)))
                    .filter_map(|r| dnskey(r).and_then(|k| k.calculate_key_tag().ok()))
                    .collect::<Vec<u16>>();
                if trusted.is_empty() {
                    return Some(Cause::Bogus(format!(
                        "no DNSKEY of {} is a trust anchor",
                        show(&zone)
                    )));
                }
                return self.keys_signed(&zone, &keys, &trusted, "a trust anchor");
            }
            let (_, m) = match self.ex.ask(&zone, RecordType::DS).await {
                Ok(x) => x,
                Err(e) => return Some(Cause::Unanswered(format!("DS of {}: {e}", show(&zone)))),
            };
            let (ds_records, ds_sigs) = rrset_at(&m, &zone, RecordType::DS);
            if ds_records.is_empty() {
                // No DS: an unsigned delegation, if its denial validates.
                for set in rrsets(&m) {
                    if let Some(c) = self.rrset(&set).await {
                        return Some(c);
                    }
                }
                return None;
            }
            let set = RrSet {
                name: zone.clone(),
                rtype: RecordType::DS,
                records: ds_records.clone(),
                sigs: ds_sigs,
            };
            if let Some(c) = self.rrset(&set).await {
                return Some(c);
            }
            self.ds_matches(&zone, &keys, &ds_records)
        })
    }

    /// The DS records must name a key of the set, and that key must sign
    /// the set.
    fn ds_matches(&self, zone: &Name, keys: &Keys, ds_records: &[Record]) -> Option<Cause> {
        let ds: Vec<&DS> = ds_records.iter().filter_map(ds).collect();
        let usable: Vec<&&DS> = ds
            .iter()
            .filter(|d| d.algorithm().is_supported() && d.digest_type().is_supported())
            .collect();
        if usable.is_empty() {
            // Only algorithms or digests nobody implements: insecure.
            return None;
        }
        let named: Vec<u16> = keys
            .records
            .iter()
            .filter_map(dnskey)
            .filter(|k| usable.iter().any(|d| d.covers(zone, k).unwrap_or(false)))
            .filter_map(|k| k.calculate_key_tag().ok())
            .collect();
        if named.is_empty() {
            let tags = |v: Vec<u16>| {
                let v: Vec<String> = v.iter().map(u16::to_string).collect();
                v.join(", ")
            };
            return Some(Cause::Bogus(format!(
                "DS for {} names no DNSKEY (DS key tag {}; DNSKEY key tag {})",
                show(zone),
                tags(usable.iter().map(|d| d.key_tag()).collect()),
                tags(
                    keys.records
                        .iter()
                        .filter_map(dnskey)
                        .filter_map(|k| k.calculate_key_tag().ok())
                        .collect()
                ),
            )));
        }
        self.keys_signed(zone, keys, &named, "a DS record")
    }

    /// One of the `trusted` keys must sign the DNSKEY RRset itself.
    fn keys_signed(&self, zone: &Name, keys: &Keys, trusted: &[u16], by: &str) -> Option<Cause> {
        let set = RrSet {
            name: zone.clone(),
            rtype: RecordType::DNSKEY,
            records: keys.records.clone(),
            sigs: keys.sigs.clone(),
        };
        let mut problem = None;
        for sig in keys.sigs.iter().filter_map(rrsig) {
            if !trusted.contains(&sig.input().key_tag) {
                continue;
            }
            if let Some(p) = self.time_problem(&set, sig) {
                problem.get_or_insert(Cause::Bogus(p));
                continue;
            }
            match verify(&set, sig, &keys.records) {
                Ok(()) => return None,
                Err(p) => {
                    problem.get_or_insert(Cause::Bogus(p));
                }
            }
        }
        problem.or_else(|| {
            Some(Cause::Bogus(format!(
                "no key of {} named by {by} signs its DNSKEY set",
                show(zone)
            )))
        })
    }
}

/// Checks `sig` over `set` with the key it names among `keys`.
fn verify(set: &RrSet, sig: &RRSIG, keys: &[Record]) -> Result<(), String> {
    let input = sig.input();
    let what = format!("RRSIG of {} {}", show(&set.name), set.rtype);
    let candidates: Vec<&DNSKEY> = keys
        .iter()
        .filter_map(dnskey)
        .filter(|k| {
            k.zone_key()
                && k.algorithm() == input.algorithm
                && k.calculate_key_tag().ok() == Some(input.key_tag)
        })
        .collect();
    if candidates.is_empty() {
        return Err(format!(
            "{what} names key {} (algorithm {}), which is not in the DNSKEY set of {}",
            input.key_tag,
            u8::from(input.algorithm),
            show(&input.signer_name)
        ));
    }
    let ok = candidates.iter().any(|k| {
        k.verify_rrsig(&set.name, DNSClass::IN, sig, set.records.iter())
            .is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{what} by key {} of {} does not verify",
            input.key_tag,
            show(&input.signer_name)
        ))
    }
}

/// The RRsets of a response worth checking: every answer RRset (but a
/// CNAME a DNAME of the answer synthesises, which carries no signature by
/// design), and the SOA, NSEC and NSEC3 RRsets of the authority section.
fn rrsets(m: &Message) -> Vec<RrSet> {
    let answers = m.answers.iter().filter(|r| {
        r.record_type() != RecordType::CNAME || synthesising_dname(r, &m.answers).is_none()
    });
    let authority = m.authorities.iter().filter(|r| {
        matches!(
            r.record_type(),
            RecordType::SOA | RecordType::NSEC | RecordType::NSEC3
        )
    });
    let mut sets: Vec<RrSet> = Vec::new();
    for r in answers.chain(authority) {
        if r.record_type() == RecordType::RRSIG {
            continue;
        }
        if sets
            .iter()
            .any(|s| s.name == r.name && s.rtype == r.record_type())
        {
            continue;
        }
        let all = m.answers.iter().chain(m.authorities.iter());
        let (records, sigs) = split(all, &r.name, r.record_type());
        sets.push(RrSet {
            name: r.name.clone(),
            rtype: r.record_type(),
            records,
            sigs,
        });
    }
    sets
}

/// The records of `rtype` at `name` in the answer section, and their RRSIGs.
fn rrset_at(m: &Message, name: &Name, rtype: RecordType) -> (Vec<Record>, Vec<Record>) {
    split(m.answers.iter(), name, rtype)
}

fn split<'r>(
    records: impl Iterator<Item = &'r Record>,
    name: &Name,
    rtype: RecordType,
) -> (Vec<Record>, Vec<Record>) {
    let mut set = Vec::new();
    let mut sigs = Vec::new();
    for r in records.filter(|r| &r.name == name) {
        if r.record_type() == rtype {
            set.push(r.clone());
        } else if rrsig(r).is_some_and(|s| s.input().type_covered == rtype) {
            sigs.push(r.clone());
        }
    }
    (set, sigs)
}

fn rrsig(r: &Record) -> Option<&RRSIG> {
    match &r.data {
        RData::DNSSEC(DNSSECRData::RRSIG(s)) => Some(s),
        _ => None,
    }
}

fn dnskey(r: &Record) -> Option<&DNSKEY> {
    match &r.data {
        RData::DNSSEC(DNSSECRData::DNSKEY(k)) => Some(k),
        _ => None,
    }
}

fn ds(r: &Record) -> Option<&DS> {
    match &r.data {
        RData::DNSSEC(DNSSECRData::DS(d)) => Some(d),
        _ => None,
    }
}

/// A name as operators write it: no trailing dot, "." for the root.
fn show(name: &Name) -> String {
    let s = name.to_ascii();
    match s.trim_end_matches('.') {
        "" => ".".to_owned(),
        t => t.to_ascii_lowercase(),
    }
}

/// `2026-11-30 00:00:00 UTC` for an RRSIG time (seconds since 1970, as
/// a 32-bit serial number: read in the 136 years around now).
fn utc(secs: u32) -> String {
    match time::OffsetDateTime::from_unix_timestamp(i64::from(secs)) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => format!("{secs} (seconds since 1970)"),
    }
}
