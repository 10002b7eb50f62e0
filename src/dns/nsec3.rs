//! One NSEC3 question hickory 0.26.3 answers differently from unbound:
//! an NXDOMAIN whose "next closer" name (RFC 5155 §8.4) is covered by an
//! NSEC3 record with the opt-out flag. The span of such a record may hold
//! unsigned delegations (RFC 5155 §6), so the name might exist in one:
//! unbound calls the denial insecure, hickory secure. danegate follows
//! unbound, the reference of the lab's zoo. (For mail it changes nothing:
//! NXDOMAIN is a bounce either way, RFC 5321 §5.1.)

use data_encoding::BASE32HEX_NOPAD;
use hickory_resolver::proto::dnssec::rdata::{DNSSECRData, NSEC3};
use hickory_resolver::proto::rr::{Name, RData, Record};

/// Whether the NSEC3 records of a name error for `qname` cover its next
/// closer name with an opt-out record.
pub(super) fn nxdomain_opt_out(qname: &Name, authorities: &[Record]) -> bool {
    let nsec3s: Vec<(String, &NSEC3)> = authorities
        .iter()
        .filter_map(|r| match &r.data {
            RData::DNSSEC(DNSSECRData::NSEC3(n)) => Some((first_label(&r.name)?, n)),
            _ => None,
        })
        .collect();
    let Some((_, params)) = nsec3s.first() else {
        return false;
    };
    let hashed = |name: &Name| -> Option<String> {
        let digest = params
            .hash_algorithm()
            .hash(params.salt(), name, params.iterations())
            .ok()?;
        Some(BASE32HEX_NOPAD.encode(digest.as_ref()).to_ascii_lowercase())
    };
    // The closest encloser is the nearest ancestor with an NSEC3 of its
    // own; the next closer name is one label below it.
    let mut next_closer = qname.clone();
    let closest_found = loop {
        if next_closer.is_root() {
            break false;
        }
        let ancestor = next_closer.base_name();
        let Some(h) = hashed(&ancestor) else {
            return false;
        };
        if nsec3s.iter().any(|(owner, _)| *owner == h) {
            break true;
        }
        next_closer = ancestor;
    };
    let Some(h) = hashed(&next_closer).filter(|_| closest_found) else {
        return false;
    };
    nsec3s.iter().any(|(owner, n)| {
        let Some(next) = n.next_hashed_owner_name_base32() else {
            return false;
        };
        n.opt_out() && covers(owner, &next.to_ascii().to_ascii_lowercase(), &h)
    })
}

/// The first label of a name, lowercase (an NSEC3 owner's hash).
fn first_label(name: &Name) -> Option<String> {
    name.iter()
        .next()
        .map(|l| String::from_utf8_lossy(l).to_ascii_lowercase())
}

/// Whether `hash` lies strictly between `owner` and `next` in the hash
/// order, the last record wrapping around to the first (base32hex keeps
/// the order of the bytes).
fn covers(owner: &str, next: &str, hash: &str) -> bool {
    if owner < next {
        owner < hash && hash < next
    } else {
        hash > owner || hash < next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_and_the_wrap_around() {
        let table = [
            ("b", "d", "c", true),
            ("b", "d", "b", false),
            ("b", "d", "d", false),
            ("b", "d", "e", false),
            // the last NSEC3 of the chain covers past the end and the start
            ("x", "b", "z", true),
            ("x", "b", "a", true),
            ("x", "b", "m", false),
        ];
        for (owner, next, hash, want) in table {
            assert_eq!(covers(owner, next, hash), want, "{owner} {next} {hash}");
        }
    }
}
