//! `tlsa verify`: a certificate chain judged against TLSA records, given
//! as text or looked up (secure answers only), with the relay's own
//! [`verify_chain`].

use super::material::{read_material, Material};
use super::{block_on, load_config, short, tlsa_name, TlsaError, VerifyArgs};
use crate::config::Config;
use crate::dns::{Lookup, Resolver, Tlsa};
use crate::tls::dane::{select_records, verify_chain, DaneFailure, DaneMatch, ReferenceIds};
use crate::tls::{tlsa, UnixTime};

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
