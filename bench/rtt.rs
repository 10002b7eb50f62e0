//! The benchmark's destinations at a round-trip time: for each RTT R (in
//! milliseconds) the domain `rttR.secure.test`, whose MX host
//! `mx.rttR.secure.test` has the address of a delay proxy (`delay.rs`,
//! 127.0.27.N:25) in front of the TLS receiver, and a `3 1 1` TLSA record
//! of the receiver's key. The records are added to the lab's signed
//! `secure.test` zone at run time, in one knotd transaction (knotd
//! re-signs at once), so every relay resolves them through the validating
//! resolver and verifies DANE exactly as for `secure.test` itself.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;
use std::time::Duration;

use crate::alarm::{Alarm, Clock};
use crate::dig::{self, Ask};
use crate::lab::{require_tool, run_output, wait_for, DnsLab, Server, VALIDATING};

/// The zone the records go to (signed, served by the leaf knotd).
const ZONE: &str = "secure.test.";
/// Long enough that no answer expires during a benchmark: "DNS cached".
const TTL: &str = "86400";
/// Most destinations (addresses 127.0.27.1 to .N).
const MAX_DESTINATIONS: usize = 32;
/// Largest RTT accepted, in milliseconds.
const MAX_RTT_MS: u64 = 10_000;

/// One destination at a round-trip time.
pub struct Destination {
    pub rtt: Duration,
    /// `rttR.secure.test`: the recipient domain.
    pub domain: String,
    /// `mx.rttR.secure.test`: its MX host.
    pub host: String,
    /// The proxy's address, the host's A record.
    pub addr: SocketAddr,
}

/// Parses a list like `0,10,50,100` into destinations 127.0.27.1, .2, ...
pub fn destinations(list: &str) -> Result<Vec<Destination>, String> {
    let mut out: Vec<Destination> = Vec::new();
    for (i, word) in list.split([',', ' ']).filter(|w| !w.is_empty()).enumerate() {
        let ms: u64 = word
            .parse()
            .map_err(|_| format!("RTT `{word}` is not a number of milliseconds"))?;
        if ms > MAX_RTT_MS {
            return Err(format!("RTT {ms} ms is above {MAX_RTT_MS} ms"));
        }
        if out.iter().any(|d| d.rtt.as_millis() == u128::from(ms)) {
            return Err(format!("RTT {ms} ms is listed twice"));
        }
        if i >= MAX_DESTINATIONS {
            return Err(format!("more than {MAX_DESTINATIONS} RTTs"));
        }
        let domain = format!("rtt{ms}.secure.test");
        out.push(Destination {
            rtt: Duration::from_millis(ms),
            host: format!("mx.{domain}"),
            domain,
            addr: SocketAddr::from((Ipv4Addr::new(127, 0, 27, i as u8 + 1), 25)),
        });
    }
    Ok(out)
}

/// Adds every destination's MX, A and TLSA records (the TLSA digest is
/// `spki`, the SHA-256 of the receiver's public key) to the lab's
/// `secure.test` zone and waits until the validating resolver answers
/// each of them securely.
pub fn publish(lab: &DnsLab, dests: &[Destination], spki: &str) {
    if dests.is_empty() {
        return;
    }
    let knotc = require_tool("knotc");
    let conf = lab.dir().join(Server::Leaf.dir_name()).join("knot.conf");
    let run = |args: &[&str]| {
        let out = run_output(Command::new(&knotc).arg("-c").arg(&conf).args(args), None);
        assert!(
            out.status.success(),
            "knotc {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&["zone-begin", ZONE]);
    for d in dests {
        let host = format!("{}.", d.host);
        let ip = d.addr.ip().to_string();
        run(&[
            "zone-set",
            ZONE,
            &format!("{}.", d.domain),
            TTL,
            "MX",
            "10",
            &host,
        ]);
        run(&["zone-set", ZONE, &host, TTL, "A", &ip]);
        let tlsa = format!("_25._tcp.{host}");
        run(&["zone-set", ZONE, &tlsa, TTL, "TLSA", "3", "1", "1", spki]);
    }
    run(&["zone-commit", ZONE]);
    for d in dests {
        let tlsa = format!("_25._tcp.{}", d.host);
        let ip = d.addr.ip().to_string();
        let want = [
            (d.domain.as_str(), "MX", format!("10 {}.", d.host)),
            (d.host.as_str(), "A", ip),
            (
                tlsa.as_str(),
                "TLSA",
                format!("3 1 1 {}", spki.to_ascii_uppercase()),
            ),
        ];
        for (name, rtype, data) in want {
            wait_for(&format!("a secure answer for {name} {rtype}"), || {
                let a = dig::query(VALIDATING, name, rtype, Ask::RESOLVER);
                let got: Vec<String> = a.data(rtype).iter().map(|s| normalise(s)).collect();
                (a.ad && got == [normalise(&data)]).then_some(())
            });
        }
    }
}

/// Record data compared without case or spaces inside the digest.
fn normalise(data: &str) -> String {
    data.split_whitespace()
        .collect::<Vec<_>>()
        .join("")
        .to_ascii_uppercase()
}

/// Starts a delay proxy for each destination, in front of `upstream`,
/// all timed by one precise alarm.
pub async fn start_proxies(dests: &[Destination], upstream: SocketAddr) {
    if dests.is_empty() {
        return;
    }
    let clock = Clock::Precise(Alarm::start());
    for d in dests {
        if let Err(e) = crate::delay::listen(d.addr, upstream, d.rtt, clock.clone()).await {
            panic!("{e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_are_numbered_and_named_by_their_rtt() {
        let d = destinations("0,10 50,100").unwrap();
        let got: Vec<(u128, &str, &str, String)> = d
            .iter()
            .map(|d| {
                (
                    d.rtt.as_millis(),
                    d.domain.as_str(),
                    d.host.as_str(),
                    d.addr.to_string(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (
                    0,
                    "rtt0.secure.test",
                    "mx.rtt0.secure.test",
                    "127.0.27.1:25".to_string()
                ),
                (
                    10,
                    "rtt10.secure.test",
                    "mx.rtt10.secure.test",
                    "127.0.27.2:25".to_string()
                ),
                (
                    50,
                    "rtt50.secure.test",
                    "mx.rtt50.secure.test",
                    "127.0.27.3:25".to_string()
                ),
                (
                    100,
                    "rtt100.secure.test",
                    "mx.rtt100.secure.test",
                    "127.0.27.4:25".to_string()
                ),
            ]
        );
        assert!(destinations("").unwrap().is_empty());
    }

    #[test]
    fn bad_lists_are_refused_with_a_reason() {
        for (list, why) in [
            ("ten", "RTT `ten` is not a number of milliseconds"),
            ("10001", "RTT 10001 ms is above 10000 ms"),
            ("10,10", "RTT 10 ms is listed twice"),
        ] {
            assert_eq!(destinations(list).err().as_deref(), Some(why), "{list}");
        }
    }
}
