//! Alias chains in an answer section: CNAME records, and the CNAMEs a
//! resolver synthesises from a DNAME (RFC 6672), from the name asked for
//! to the name that owns the records.
//!
//! A synthesised CNAME carries no signature by design: it is proven by the
//! DNAME it was made from (RFC 6672 §5.3.1). A link is therefore secure
//! when its CNAME was validated, or when a validated DNAME of the same
//! answer synthesises exactly that CNAME (same owner below the DNAME's
//! owner, target = owner with the DNAME's owner replaced by its target).

use hickory_resolver::proto::dnssec::Proof;
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};
use hickory_resolver::proto::serialize::binary::BinDecodable;

use super::Alias;

/// One link: where it leads, its proof, and its TTL.
#[derive(Debug, Clone)]
struct Link {
    proof: Proof,
    ttl: u32,
}

/// The chain from a query name through an answer section.
#[derive(Debug, Clone)]
pub(super) struct Chain {
    /// The name at the end of the chain (the query name when no alias).
    owner: Name,
    links: Vec<Link>,
}

impl Chain {
    /// Follows CNAMEs (and DNAMEs) from `qname`. A question for CNAME or
    /// DNAME records is answered at `qname` itself.
    pub fn follow(qname: &Name, rtype: RecordType, answers: &[Record]) -> Chain {
        let mut chain = Chain {
            owner: qname.clone(),
            links: Vec::new(),
        };
        if matches!(rtype, RecordType::CNAME | RecordType::DNAME) {
            return chain;
        }
        // Bounded: a chain cannot be longer than the answer section.
        for _ in 0..answers.len() {
            let next = answers
                .iter()
                .find(|r| r.record_type() == RecordType::CNAME && r.name == chain.owner);
            let (target, link) = match next {
                Some(cname) => {
                    let RData::CNAME(target) = &cname.data else {
                        break;
                    };
                    let link = match synthesising_dname(cname, answers) {
                        // A synthesised CNAME stands or falls with its
                        // DNAME, and lives as long (RFC 6672 §3.1).
                        Some(d) if cname.proof != Proof::Secure => Link {
                            proof: d.proof,
                            ttl: d.ttl,
                        },
                        _ => Link {
                            proof: cname.proof,
                            ttl: cname.ttl,
                        },
                    };
                    (target.0.clone(), link)
                }
                // A DNAME without the synthesised CNAME (RFC 6672 §3.4
                // lets a resolver leave it out for DNAME-aware clients).
                None => match dname_above(&chain.owner, answers) {
                    Some((d, target)) => (
                        target,
                        Link {
                            proof: d.proof,
                            ttl: d.ttl,
                        },
                    ),
                    None => break,
                },
            };
            chain.links.push(link);
            chain.owner = target;
        }
        chain
    }

    pub fn is_alias(&self) -> bool {
        !self.links.is_empty()
    }

    /// A link failed validation.
    pub fn bogus(&self) -> bool {
        self.links.iter().any(|l| l.proof == Proof::Bogus)
    }

    /// Every link was validated (true for no links).
    pub fn secure(&self) -> bool {
        self.links.iter().all(|l| l.proof == Proof::Secure)
    }

    /// The shortest TTL of the links (`u32::MAX` for no links).
    pub fn ttl(&self) -> u32 {
        self.links.iter().map(|l| l.ttl).min().unwrap_or(u32::MAX)
    }

    /// The name at the end of the chain.
    pub fn end(&self) -> Name {
        self.owner.clone()
    }

    /// The name at the end, lowercase, without trailing dot.
    pub fn target(&self) -> String {
        host(&self.owner)
    }

    pub fn alias(&self) -> Option<Alias> {
        self.is_alias().then(|| Alias {
            name: self.target(),
            secure: self.secure(),
        })
    }

    /// The records of `rtype` owned by the end of the chain.
    pub fn records<'a>(&self, rtype: RecordType, answers: &'a [Record]) -> Vec<&'a Record> {
        answers
            .iter()
            .filter(|r| r.record_type() == rtype && r.name == self.owner)
            .collect()
    }
}

fn host(name: &Name) -> String {
    name.to_ascii().trim_end_matches('.').to_ascii_lowercase()
}

/// The DNAME of `answers` that synthesises exactly `cname`, if any.
pub(super) fn synthesising_dname<'a>(cname: &Record, answers: &'a [Record]) -> Option<&'a Record> {
    let RData::CNAME(target) = &cname.data else {
        return None;
    };
    answers.iter().find(|d| {
        dname_target(d)
            .and_then(|t| synthesise(&cname.name, &d.name, &t))
            .is_some_and(|t| t == target.0)
    })
}

/// A DNAME of `answers` above `name`, and the name it makes of `name`.
fn dname_above<'a>(name: &Name, answers: &'a [Record]) -> Option<(&'a Record, Name)> {
    answers.iter().find_map(|d| {
        let target = dname_target(d)?;
        synthesise(name, &d.name, &target).map(|t| (d, t))
    })
}

/// The target of a DNAME record. hickory 0.26.3 has no DNAME type: it
/// keeps the RDATA as bytes, a domain name in wire form (never
/// compressed, RFC 6672 §2.5).
pub(super) fn dname_target(r: &Record) -> Option<Name> {
    match &r.data {
        RData::Unknown {
            code: RecordType::DNAME,
            rdata,
        } => Name::from_bytes(&rdata.anything).ok(),
        _ => None,
    }
}

/// `name` with `owner` (a proper ancestor) replaced by `target` (RFC 6672
/// §2.2); `None` when `owner` is not above `name` or the result is not a
/// name.
fn synthesise(name: &Name, owner: &Name, target: &Name) -> Option<Name> {
    if owner.is_root() || !owner.zone_of(name) || name.num_labels() <= owner.num_labels() {
        return None;
    }
    let name = name.to_ascii().to_ascii_lowercase();
    let owner = owner.to_ascii().to_ascii_lowercase();
    let prefix = name.strip_suffix(&owner)?;
    if !prefix.ends_with('.') {
        return None;
    }
    let target = target.to_ascii();
    let joined = if target == "." {
        prefix.to_string()
    } else {
        format!("{prefix}{target}")
    };
    Name::from_ascii(joined).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_resolver::proto::rr::rdata::{CNAME, MX, NULL};
    use hickory_resolver::proto::serialize::binary::BinEncodable;

    fn n(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    fn rec(owner: &str, data: RData, proof: Proof) -> Record {
        let mut r = Record::from_rdata(n(owner), 300, data);
        r.proof = proof;
        r
    }

    fn dname(owner: &str, target: &str, proof: Proof) -> Record {
        let rdata = NULL::with(n(target).to_bytes().unwrap());
        rec(
            owner,
            RData::Unknown {
                code: RecordType::DNAME,
                rdata,
            },
            proof,
        )
    }

    fn cname(owner: &str, target: &str, proof: Proof) -> Record {
        rec(owner, RData::CNAME(CNAME(n(target))), proof)
    }

    fn mx(owner: &str, proof: Proof) -> Record {
        rec(owner, RData::MX(MX::new(10, n("mx.example."))), proof)
    }

    #[test]
    fn synthesis_replaces_the_owner_suffix() {
        let table = [
            (
                "shop.dname.example.",
                "dname.example.",
                "target.example.",
                Some("shop.target.example."),
            ),
            ("a.b.dname.example.", "dname.example.", "t.", Some("a.b.t.")),
            (
                "SHOP.Dname.Example.",
                "dname.example.",
                "target.example.",
                Some("shop.target.example."),
            ),
            // the owner itself is not redirected (RFC 6672 §2.3)
            ("dname.example.", "dname.example.", "target.example.", None),
            // not below the owner
            (
                "shop.other.example.",
                "dname.example.",
                "target.example.",
                None,
            ),
            (
                "shopdname.example.",
                "dname.example.",
                "target.example.",
                None,
            ),
        ];
        for (name, owner, target, want) in table {
            assert_eq!(
                synthesise(&n(name), &n(owner), &n(target)),
                want.map(n),
                "{name} under {owner} DNAME {target}"
            );
        }
    }

    /// (answer section, secure?, bogus?, end of the chain)
    #[test]
    fn chains_table() {
        use Proof::{Bogus, Insecure, Secure};
        let q = n("shop.dname.example.");
        let cases: Vec<(&str, Vec<Record>, bool, bool, &str)> = vec![
            (
                "signed DNAME, unsigned synthesised CNAME: secure",
                vec![
                    dname("dname.example.", "target.example.", Secure),
                    cname("shop.dname.example.", "shop.target.example.", Bogus),
                    mx("shop.target.example.", Secure),
                ],
                true,
                false,
                "shop.target.example",
            ),
            (
                "a CNAME the DNAME does not synthesise stays bogus",
                vec![
                    dname("dname.example.", "target.example.", Secure),
                    cname("shop.dname.example.", "evil.example.", Bogus),
                    mx("evil.example.", Secure),
                ],
                false,
                true,
                "evil.example",
            ),
            (
                "an unvalidated DNAME does not vouch for anything",
                vec![
                    dname("dname.example.", "target.example.", Bogus),
                    cname("shop.dname.example.", "shop.target.example.", Bogus),
                ],
                false,
                true,
                "shop.target.example",
            ),
            (
                "insecure DNAME: insecure chain",
                vec![
                    dname("dname.example.", "target.example.", Insecure),
                    cname("shop.dname.example.", "shop.target.example.", Insecure),
                ],
                false,
                false,
                "shop.target.example",
            ),
            (
                "DNAME without the CNAME: synthesised here",
                vec![
                    dname("dname.example.", "target.example.", Secure),
                    mx("shop.target.example.", Secure),
                ],
                true,
                false,
                "shop.target.example",
            ),
            (
                "signed CNAME after the DNAME's target",
                vec![
                    dname("dname.example.", "target.example.", Secure),
                    cname("shop.dname.example.", "shop.target.example.", Bogus),
                    cname("shop.target.example.", "final.example.", Secure),
                ],
                true,
                false,
                "final.example",
            ),
            (
                "no alias",
                vec![mx("shop.dname.example.", Secure)],
                true,
                false,
                "shop.dname.example",
            ),
        ];
        for (what, answers, secure, bogus, end) in cases {
            let c = Chain::follow(&q, RecordType::MX, &answers);
            assert_eq!(
                (c.secure(), c.bogus(), c.target().as_str()),
                (secure, bogus, end),
                "{what}"
            );
        }
    }
}
