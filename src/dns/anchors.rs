//! DNSSEC trust anchors: read from a zone-file-syntax file (DNSKEY or DS
//! records, like unbound's `trust-anchor-file`) or the IANA root keys
//! built into hickory, then completed against the live zone.
//!
//! Completion: for each anchored zone we fetch its DNSKEY RRset (with CD,
//! so a validating upstream hands it over as is), find the keys the
//! anchors name (a DNSKEY equal to an anchored key, or one a DS anchor
//! covers), check that one of them signs the RRset, and then trust every
//! key of the RRset. That turns DS anchors into keys, and spares the
//! validator from looking for the anchor zone's own DS when a zone has
//! more keys than were anchored (KSK + ZSK), which it cannot find above a
//! trust anchor.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use base64::Engine;
use hickory_resolver::proto::dnssec::rdata::{DNSSECRData, DNSKEY, DS};
use hickory_resolver::proto::dnssec::{
    Algorithm, DigestType, PublicKey, PublicKeyBuf, TrustAnchors, Verifier,
};
use hickory_resolver::proto::rr::{DNSClass, LowerName, Name, RData, Record, RecordType};

use super::wire::{exchange, query_message};

/// What one anchor line said.
#[derive(Clone)]
enum Anchor {
    Key(PublicKeyBuf),
    Ds(DS),
}

/// The anchors of one zone, and the trusted key set they yield.
pub struct Anchors {
    /// The zone whose DNSKEY answer the start-up probe checks.
    pub zone: Name,
    pub trust: TrustAnchors,
    /// The trusted keys, per anchored zone.
    pub zones: Vec<ZoneKeys>,
    /// How many keys are trusted, per zone, for the log.
    pub summary: String,
}

/// The keys trusted for one anchored zone.
#[derive(Debug, Clone)]
pub struct ZoneKeys {
    pub zone: Name,
    pub keys: Vec<PublicKeyBuf>,
}

impl ZoneKeys {
    /// Whether `key` is one of the trusted keys.
    pub fn trusts(&self, key: &DNSKEY) -> bool {
        let pk = key.public_key();
        self.keys
            .iter()
            .any(|k| k.algorithm() == pk.algorithm() && k.public_bytes() == pk.public_bytes())
    }
}

/// Splits zone-file text into records: comments dropped, parentheses
/// joined, one token list per record.
fn records(text: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut current: Vec<String> = Vec::new();
    let mut depth = 0usize;
    for line in text.lines() {
        let line = line.split(';').next().unwrap_or("");
        for token in line
            .replace('(', " ( ")
            .replace(')', " ) ")
            .split_whitespace()
        {
            match token {
                "(" => depth += 1,
                ")" => depth = depth.saturating_sub(1),
                t => current.push(t.to_owned()),
            }
        }
        if depth == 0 && !current.is_empty() {
            out.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

fn hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// One anchor record: `owner [ttl] [class] DNSKEY|DS rdata`.
fn anchor(tokens: &[String]) -> Result<(Name, Anchor), String> {
    let owner = tokens.first().ok_or("empty record")?;
    if !owner.ends_with('.') {
        return Err(format!(
            "{owner}: the owner name must be absolute (end with a dot)"
        ));
    }
    let name = Name::from_ascii(owner).map_err(|e| format!("{owner}: {e}"))?;
    let mut rest = &tokens[1..];
    while let Some(t) = rest.first() {
        if t.parse::<u32>().is_ok() || t.eq_ignore_ascii_case("IN") {
            rest = &rest[1..];
        } else {
            break;
        }
    }
    let (rtype, rdata) = rest
        .split_first()
        .ok_or(format!("{owner}: no record type"))?;
    let num = |i: usize, what: &str| -> Result<u16, String> {
        rdata
            .get(i)
            .and_then(|t| t.parse::<u16>().ok())
            .ok_or(format!("{owner} {rtype}: bad or missing {what}"))
    };
    match rtype.to_ascii_uppercase().as_str() {
        "DNSKEY" => {
            let algorithm = Algorithm::from_u8(num(2, "algorithm")? as u8);
            let b64: String = rdata.get(3..).unwrap_or_default().concat();
            let key = base64::engine::general_purpose::STANDARD
                .decode(b64.as_bytes())
                .map_err(|e| format!("{owner} DNSKEY: bad base64 key: {e}"))?;
            Ok((name, Anchor::Key(PublicKeyBuf::new(key, algorithm))))
        }
        "DS" => {
            let key_tag = num(0, "key tag")?;
            let algorithm = Algorithm::from_u8(num(1, "algorithm")? as u8);
            let digest_type = DigestType::from(num(2, "digest type")? as u8);
            let digest = hex(&rdata.get(3..).unwrap_or_default().concat())
                .ok_or(format!("{owner} DS: bad hex digest"))?;
            Ok((
                name,
                Anchor::Ds(DS::new(key_tag, algorithm, digest_type, digest)),
            ))
        }
        other => Err(format!(
            "{owner} {other}: only DNSKEY and DS records can be trust anchors"
        )),
    }
}

fn parse(text: &str, origin: &str) -> Result<BTreeMap<Name, Vec<Anchor>>, String> {
    let mut out: BTreeMap<Name, Vec<Anchor>> = BTreeMap::new();
    for tokens in records(text) {
        let (name, a) = anchor(&tokens).map_err(|e| format!("{origin}: {e}"))?;
        out.entry(name).or_default().push(a);
    }
    if out.is_empty() {
        return Err(format!("{origin}: no DNSKEY or DS records"));
    }
    Ok(out)
}

/// The anchors from `file`, or the built-in root keys, completed against
/// the zone through `servers`.
pub async fn load(
    file: Option<&Path>,
    servers: &[SocketAddr],
    timeout: Duration,
) -> Result<Anchors, String> {
    let zones = match file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read trust anchor file {}: {e}", path.display()))?;
            parse(&text, &path.display().to_string())?
        }
        None => {
            let root = TrustAnchors::default();
            let keys = (0..root.len())
                .filter_map(|i| root.get(i).cloned())
                .map(Anchor::Key)
                .collect();
            BTreeMap::from([(Name::root(), keys)])
        }
    };
    let mut trust = TrustAnchors::empty();
    let mut summary = Vec::new();
    let mut trusted = Vec::new();
    for (zone, anchors) in &zones {
        let keys = complete(zone, anchors, servers, timeout).await?;
        summary.push(format!("{} key(s) for {}", keys.len(), zone));
        for key in &keys {
            trust.insert_with_name(key, LowerName::from(zone));
        }
        trusted.push(ZoneKeys {
            zone: zone.clone(),
            keys,
        });
    }
    let zone = zones.keys().next().cloned().unwrap_or_else(Name::root);
    Ok(Anchors {
        zone,
        trust,
        zones: trusted,
        summary: summary.join(", "),
    })
}

fn matches(anchor: &Anchor, zone: &Name, key: &DNSKEY) -> bool {
    match anchor {
        Anchor::Key(k) => {
            let pk = key.public_key();
            pk.algorithm() == k.algorithm() && pk.public_bytes() == k.public_bytes()
        }
        Anchor::Ds(ds) => ds.covers(zone, key).unwrap_or(false),
    }
}

/// The keys to trust for `zone`.
async fn complete(
    zone: &Name,
    anchors: &[Anchor],
    servers: &[SocketAddr],
    timeout: Duration,
) -> Result<Vec<PublicKeyBuf>, String> {
    let given: Vec<PublicKeyBuf> = anchors
        .iter()
        .filter_map(|a| match a {
            Anchor::Key(k) => Some(k.clone()),
            Anchor::Ds(_) => None,
        })
        .collect();
    // Completion problems do not stop danegate here: it goes on with the
    // keys it was given (none, for DS anchors), and the start-up probe
    // then says whether validation works.
    let fallback = |why: String| {
        if given.is_empty() {
            tracing::error!("cannot turn the DS trust anchor of {zone} into keys: {why}; nothing validates until danegate restarts with a DNS that serves the zone's signed DNSKEY set");
        } else {
            tracing::warn!("{why}; trusting the anchored keys of {zone} as given");
        }
        Ok(given.clone())
    };
    let (keys, sigs) = match fetch_dnskeys(zone, servers, timeout).await {
        Ok(x) => x,
        Err(e) => return fallback(format!("cannot fetch the DNSKEY set of {zone} ({e})")),
    };
    let dnskeys: Vec<&DNSKEY> = keys
        .iter()
        .filter_map(|r| match &r.data {
            RData::DNSSEC(DNSSECRData::DNSKEY(k)) => Some(k),
            _ => None,
        })
        .collect();
    let anchored: Vec<&DNSKEY> = dnskeys
        .iter()
        .copied()
        .filter(|k| anchors.iter().any(|a| matches(a, zone, k)))
        .collect();
    let signed = sigs.iter().any(|sig| {
        let RData::DNSSEC(DNSSECRData::RRSIG(rrsig)) = &sig.data else {
            return false;
        };
        anchored.iter().any(|k| {
            k.calculate_key_tag().ok() == Some(rrsig.input().key_tag)
                && k.verify_rrsig(zone, DNSClass::IN, rrsig, keys.iter())
                    .is_ok()
        })
    });
    if !signed {
        return fallback(format!(
            "no key of the DNSKEY set of {zone} that the trust anchors name signs that set ({} keys, {} anchored, {} signatures)",
            dnskeys.len(),
            anchored.len(),
            sigs.len()
        ));
    }
    Ok(dnskeys
        .iter()
        .map(|k| {
            let pk = k.public_key();
            PublicKeyBuf::new(pk.public_bytes().to_vec(), pk.algorithm())
        })
        .collect())
}

/// The DNSKEY RRset of `zone` and the RRSIGs over it.
async fn fetch_dnskeys(
    zone: &Name,
    servers: &[SocketAddr],
    timeout: Duration,
) -> Result<(Vec<Record>, Vec<Record>), String> {
    let query = query_message(zone, RecordType::DNSKEY, true);
    let mut last = "no nameservers".to_owned();
    for server in servers {
        match exchange(*server, &query, timeout).await {
            Ok(m) => {
                let keys: Vec<Record> = m
                    .answers
                    .iter()
                    .filter(|r| r.record_type() == RecordType::DNSKEY && r.name == *zone)
                    .cloned()
                    .collect();
                let sigs: Vec<Record> = m
                    .answers
                    .iter()
                    .filter(|r| match &r.data {
                        RData::DNSSEC(DNSSECRData::RRSIG(s)) => {
                            s.input().type_covered == RecordType::DNSKEY
                        }
                        _ => false,
                    })
                    .cloned()
                    .collect();
                if keys.is_empty() {
                    last = format!("{server} returned no DNSKEY records");
                    continue;
                }
                return Ok((keys, sigs));
            }
            Err(e) => last = format!("{server}: {e}"),
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_dnskey_and_ds_lines() {
        let text = "\
; a comment
. 3600 IN DNSKEY 257 3 13 mdsswUyr3DPW132mOi8V9xESWE8jTo0dxCjjnopKl+GqJxpVXckHAeF+KkxLbxILfDLUT0rAK9iUzy1L53eKGQ==
example. 3600 IN DS 12345 13 2 ( 3490A6806D47F17A34C29E2CE80E8A99
    99FFBE4BE3490A6806D47F17A34C29E2 )
";
        let zones = parse(text, "test").unwrap();
        assert_eq!(zones.len(), 2);
        assert!(matches!(zones[&Name::root()][0], Anchor::Key(_)));
        let ex = Name::from_ascii("example.").unwrap();
        assert!(matches!(zones[&ex][0], Anchor::Ds(_)));
    }

    #[test]
    fn refuses_other_record_types_and_empty_files() {
        let e = parse("example. 3600 IN A 192.0.2.1\n", "anchors")
            .err()
            .unwrap();
        assert_eq!(
            e,
            "anchors: example. A: only DNSKEY and DS records can be trust anchors"
        );
        let e = parse("example 3600 IN DS 1 13 2 00\n", "anchors")
            .err()
            .unwrap();
        assert_eq!(
            e,
            "anchors: example: the owner name must be absolute (end with a dot)"
        );
        let e = parse("; nothing\n", "anchors").err().unwrap();
        assert_eq!(e, "anchors: no DNSKEY or DS records");
    }
}
