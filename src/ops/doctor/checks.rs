//! The checks of `danegate doctor`, one function each, each judging what
//! the DNS layer's self-test questions (`dns::selftest`) and the resolver
//! danegate would use bring back. Each returns [`Check`]s; none panics or
//! waits longer than its limit.

use std::net::SocketAddr;
use std::time::Duration;

use super::listener::{self, Kind};
use super::{Check, Status};
use crate::dns::selftest::{self, Question, Served, Transport};
use crate::dns::{cache::CachingResolver, FailureKind, Probe};

/// A signature time (seconds since 1970) as the reports write it.
fn utc(secs: u32) -> String {
    crate::ops::dates::utc(i64::from(secs))
}

fn check(name: &'static str, server: Option<SocketAddr>, status: Status, detail: String) -> Check {
    Check {
        check: name,
        server: server.map(|s| s.to_string()),
        status,
        detail,
    }
}

fn failed(e: &FailureKind, limit: Duration) -> String {
    match e {
        FailureKind::Timeout => format!("no answer within {} s", limit.as_secs()),
        other => other.to_string(),
    }
}

/// Does `server` answer a plain question over `transport`?
pub async fn transport(
    server: SocketAddr,
    transport: Transport,
    zone: &str,
    limit: Duration,
) -> Check {
    let name = if transport == Transport::Tcp {
        "tcp"
    } else {
        "udp"
    };
    let q = Question {
        name: zone.to_owned(),
        rtype: "SOA",
        dnssec_ok: false,
        checking_disabled: false,
    };
    match selftest::ask(server, transport, &q, limit).await {
        Ok(s) if s.rcode == "NOERROR" => check(
            name,
            Some(server),
            Status::Ok,
            format!(
                "answered the SOA question for {zone} in {:.1} ms",
                s.elapsed.as_secs_f64() * 1000.0
            ),
        ),
        Ok(s) => check(
            name,
            Some(server),
            Status::Fail,
            format!("answered {} to the SOA question for {zone}", s.rcode),
        ),
        Err(e) => check(name, Some(server), Status::Fail, failed(&e, limit)),
    }
}

/// Does `server` hand out DNSSEC records when asked (DO), unvalidated
/// (CD)? Returns the check and the answer, whose signatures the clock
/// check reads.
pub async fn dnssec_records(
    server: SocketAddr,
    zone: &str,
    limit: Duration,
) -> (Check, Option<Served>) {
    let q = Question {
        name: zone.to_owned(),
        rtype: "DNSKEY",
        dnssec_ok: true,
        checking_disabled: true,
    };
    let name = "dnssec-records";
    match selftest::ask(server, Transport::Any, &q, limit).await {
        Ok(s) if s.records > 0 && s.signatures > 0 => (
            check(
                name,
                Some(server),
                Status::Ok,
                format!(
                    "passes DNSSEC records: {} DNSKEY and {} RRSIG for {zone}",
                    s.records, s.signatures
                ),
            ),
            Some(s),
        ),
        Ok(s) if s.records > 0 => (
            check(
                name,
                Some(server),
                Status::Fail,
                format!("strips DNSSEC records: the DNSKEY answer for {zone} (DO bit set) has no RRSIG, so nothing can be validated"),
            ),
            Some(s),
        ),
        Ok(s) => (
            check(
                name,
                Some(server),
                Status::Fail,
                format!("no DNSKEY records for {zone} ({}): the DO bit is not honoured, or the zone is not served", s.rcode),
            ),
            None,
        ),
        Err(e) => (check(name, Some(server), Status::Fail, failed(&e, limit)), None),
    }
}

/// trust-ad: does `server` itself set AD on the anchor's DNSKEY set?
pub async fn authenticates(server: SocketAddr, zone: &str, limit: Duration) -> Check {
    let q = Question {
        name: zone.to_owned(),
        rtype: "DNSKEY",
        dnssec_ok: true,
        checking_disabled: false,
    };
    let name = "validates";
    match selftest::ask(server, Transport::Any, &q, limit).await {
        Ok(s) if s.rcode == "NOERROR" && s.authenticated => check(
            name,
            Some(server),
            Status::Ok,
            format!("sets the AD bit on the DNSKEY set of {zone}"),
        ),
        Ok(s) if s.rcode == "NOERROR" => check(
            name,
            Some(server),
            Status::Fail,
            format!("does not validate: the DNSKEY set of {zone} comes back without the AD bit (validation is off, or the trust anchor is missing), so no answer would ever count as secure"),
        ),
        Ok(s) => check(
            name,
            Some(server),
            Status::Fail,
            format!("answered {} to the DNSKEY question for {zone}", s.rcode),
        ),
        Err(e) => check(name, Some(server), Status::Fail, failed(&e, limit)),
    }
}

/// trust-ad: is `server` a validator on this host, or a forwarder that
/// relays someone else's AD bit?
pub async fn local_validator(server: SocketAddr, limit: Duration) -> Check {
    let name = "local-validator";
    let software = selftest::software(server, limit).await;
    let program = listener::program(server);
    let forwarder = |what: String| {
        check(
            name,
            Some(server),
            Status::Warn,
            format!("{what}: a forwarder, whose AD bit is its upstream's, set on a path nobody checks; run a validating resolver on this host (unbound, BIND) and name it in dns.nameservers, or use mode = \"validate\""),
        )
    };
    if let Some(stub) = listener::known_stub(server) {
        return forwarder(format!("{server} is {stub}"));
    }
    let by_program = program.as_ref().map(|p| (kind(&p.name), p));
    if let Some((Kind::Forwarder, p)) = by_program {
        return forwarder(format!("{server} is served by {} (pid {})", p.name, p.pid));
    }
    if let Some(s) = software.as_deref().filter(|s| kind(s) == Kind::Forwarder) {
        return forwarder(format!("{server} calls itself {s:?}"));
    }
    if let Some((Kind::Validator, p)) = by_program {
        return check(
            name,
            Some(server),
            Status::Ok,
            format!(
                "{server} is served by {} (pid {}), a resolver that validates itself (when configured to: see `validates`)",
                p.name, p.pid
            ),
        );
    }
    if let Some(s) = software.as_deref().filter(|s| kind(s) == Kind::Validator) {
        return check(
            name,
            Some(server),
            Status::Ok,
            format!("{server} calls itself {s:?}, a resolver that validates itself (when configured to: see `validates`)"),
        );
    }
    check(
        name,
        Some(server),
        Status::Warn,
        format!(
            "cannot tell which program answers on {server} ({}; version.bind: {}): make sure it validates DNSSEC itself and is not a forwarder",
            program.map_or("not visible: run doctor as root".to_owned(), |p| format!("{} (pid {})", p.name, p.pid)),
            software.unwrap_or_else(|| "no answer".to_owned())
        ),
    )
}

fn kind(s: &str) -> Kind {
    listener::kind(s)
}

/// The start-up probe: the anchored zone's DNSKEY set validates.
pub fn trust_anchor(probe: &Probe, anchors: &str) -> Check {
    match probe {
        Probe::Validated => check(
            "trust-anchor",
            None,
            Status::Ok,
            format!("the trust anchor's DNSKEY set validates (trust anchors: {anchors})"),
        ),
        Probe::NotValidated(e) | Probe::Unreachable(e) => {
            check("trust-anchor", None, Status::Fail, e.clone())
        }
    }
}

/// A name that must come back secure.
pub async fn secure_name(resolver: &CachingResolver, name: &str) -> Check {
    match resolver.soa_security(name).await {
        Ok(s) if s.is_secure() => check(
            "secure-name",
            None,
            Status::Ok,
            format!("{name} comes back secure"),
        ),
        Ok(_) => check(
            "secure-name",
            None,
            Status::Fail,
            format!(
                "{name} comes back insecure, but it is signed: DNSSEC answers are not validated"
            ),
        ),
        Err(e) => check("secure-name", None, Status::Fail, e.to_string()),
    }
}

/// A name that must fail validation.
pub async fn bogus_name(resolver: &CachingResolver, name: &str) -> Check {
    match resolver.soa_security(name).await {
        Err(e) if e.kind.is_bogus() => check(
            "bogus-name",
            None,
            Status::Ok,
            format!("{name} fails validation, as it must: {}", e.kind),
        ),
        Err(e) => check(
            "bogus-name",
            None,
            Status::Warn,
            format!("{name} fails, but not as bogus (is it still broken on purpose?): {e}"),
        ),
        Ok(security) => check(
            "bogus-name",
            None,
            Status::Fail,
            format!("{name} comes back {security}: data that fails validation is accepted"),
        ),
    }
}

/// Signatures are only valid between their inception and expiration: is
/// the system clock inside the window of the anchor's DNSKEY signatures?
pub fn clock(served: Option<&Served>, zone: &str, now: u32) -> Check {
    let Some(windows) = served.map(|s| &s.windows).filter(|w| !w.is_empty()) else {
        return check(
            "clock",
            None,
            Status::Skip,
            format!("no signatures over the DNSKEY set of {zone} to compare the clock with"),
        );
    };
    // Serial number arithmetic (RFC 4034 §3.1.5): a is before b.
    let before = |a: u32, b: u32| a != b && b.wrapping_sub(a) < 0x8000_0000;
    let inside = windows
        .iter()
        .any(|&(from, to)| !before(now, from) && !before(to, now));
    let (from, to) = windows[0];
    let window = format!("{} to {}", utc(from), utc(to));
    if inside {
        check(
            "clock",
            None,
            Status::Ok,
            format!("the system clock ({}) is inside the validity of the DNSKEY signatures of {zone} ({window})", utc(now)),
        )
    } else if windows.iter().all(|&(from, _)| before(now, from)) {
        check(
            "clock",
            None,
            Status::Fail,
            format!("the system clock ({}) is behind: the DNSKEY signatures of {zone} are not valid yet ({window}); every signature check fails until the clock is set", utc(now)),
        )
    } else {
        check(
            "clock",
            None,
            Status::Fail,
            format!("the system clock ({}) is past the DNSKEY signatures of {zone} ({window}): the clock is ahead, or the resolver serves stale data", utc(now)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn served(windows: Vec<(u32, u32)>) -> Served {
        Served {
            rcode: "NOERROR".into(),
            authenticated: false,
            records: 2,
            signatures: windows.len(),
            windows,
            elapsed: Duration::ZERO,
        }
    }

    #[test]
    fn clock_against_signature_windows() {
        let day = 86_400;
        let now = 1_800_000_000u32;
        let table = [
            (vec![(now - day, now + day)], Status::Ok),
            (vec![(now + day, now + 2 * day)], Status::Fail),
            (vec![(now - 2 * day, now - day)], Status::Fail),
            // one good signature of two is enough
            (
                vec![(now - 2 * day, now - day), (now - day, now + day)],
                Status::Ok,
            ),
            (vec![], Status::Skip),
        ];
        for (windows, want) in table {
            let c = clock(Some(&served(windows.clone())), ".", now);
            assert_eq!(c.status, want, "{windows:?}: {}", c.detail);
        }
        let behind = clock(Some(&served(vec![(now + day, now + 2 * day)])), ".", now);
        assert!(behind.detail.contains("is behind"), "{}", behind.detail);
        // across the 32-bit wrap in 2106
        let c = clock(Some(&served(vec![(u32::MAX - day, day)])), ".", 5);
        assert_eq!(c.status, Status::Ok, "{}", c.detail);
    }
}
