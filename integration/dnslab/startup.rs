//! `danegate run`'s start-up probe against the lab's resolvers: the
//! anchored zone's DNSKEY answer must validate. Behind a resolver that
//! does not validate (trust-ad mode) or that strips signatures (any
//! mode), `policy.mode = "enforce"` refuses to start and `"test"` starts
//! with a loud warning; behind a working validator it starts and says so;
//! with no DNS at all it starts (every lookup fails and defers, which is
//! safe) and logs an error. A trust-ad config naming a non-loopback
//! resolver is refused before anything starts.

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::dig;
use crate::gate::{self, Anchor, Dns, Running};
use crate::lab::*;
use crate::strip::{StrippingResolver, STRIPPING};

/// How long danegate may take to refuse or to start: the probe asks with
/// a 5 s timeout, the lab's resolvers answer at once.
const LIMIT: Duration = Duration::from_secs(15);

fn start(lab: &DnsLab, what: &str, dns: Dns, mode: &str) -> (Running, SocketAddr) {
    let listen = gate::next_listen();
    let config = gate::write_config(
        lab,
        &format!("run-{what}-{}-{mode}", dns.label()),
        &gate::config(lab, listen, dns, mode, ""),
    );
    (Running::start(&config), listen)
}

/// Runs `check` for each mode, all of them even when some fail; then
/// fails naming every mode that did (each one's panic message is above).
fn for_each_mode(modes: &[Dns], check: impl Fn(Dns)) {
    let failed: Vec<String> = modes
        .iter()
        .filter(|dns| {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(**dns))).is_err()
        })
        .map(|dns| dns.label())
        .collect();
    assert!(failed.is_empty(), "failed for {failed:?} (see above)");
}

/// danegate must exit with status 1 within [`LIMIT`], having said why and
/// never listened.
#[track_caller]
fn assert_refuses(run: &mut Running, listen: SocketAddr, dns: Dns) {
    let Some(status) = run.wait_exit(LIMIT) else {
        panic!(
            "{}: still running after {LIMIT:?}, expected a refusal; log:\n{}",
            dns.label(),
            run.log()
        );
    };
    let log = run.log();
    assert_eq!(
        status.code(),
        Some(1),
        "{}: {status}; log:\n{log}",
        dns.label()
    );
    let line = log
        .lines()
        .find(|l| l.contains("ERROR") && l.contains("DNSSEC does not work"))
        .unwrap_or_else(|| panic!("{}: no ERROR naming the cause:\n{log}", dns.label()));
    assert!(
        line.contains("refusing to start in enforce mode"),
        "{}: {line}",
        dns.label()
    );
    assert!(!log.contains("listening on"), "{}: {log}", dns.label());
    assert!(
        TcpStream::connect(listen).is_err(),
        "{}: {listen} answers",
        dns.label()
    );
}

/// danegate must log `listening on ADDR` within [`LIMIT`] and accept a
/// connection; returns its log up to then.
#[track_caller]
fn assert_starts(run: &mut Running, listen: SocketAddr) -> String {
    run.wait_log(&format!("listening on {listen}"), LIMIT);
    TcpStream::connect(listen).unwrap_or_else(|e| panic!("connect to {listen}: {e}"));
    assert!(run.exited().is_none(), "exited after start:\n{}", run.log());
    run.log()
}

/// trust-ad behind the non-validating unbound: answers come without AD,
/// nothing could ever be proven secure.
#[test]
#[ignore = "needs the integration lab: run integration/test-all"]
fn enforce_refuses_to_start_behind_a_non_validating_resolver() {
    let lab = DnsLab::shared();
    let dns = Dns::TrustAd {
        via: NON_VALIDATING,
    };
    let (mut run, listen) = start(&lab, "refuse", dns, "enforce");
    assert_refuses(&mut run, listen, dns);
    let log = run.log();
    assert!(
        log.contains(
            "DNSSEC does not work: the name servers serve the DNSKEY records of ., but the answer is insecure"
        ),
        "{log}"
    );
}

/// A resolver that strips signatures defeats danegate's own validator as
/// well: every mode must refuse.
#[test]
#[ignore = "needs the integration lab: run integration/test-all"]
fn enforce_refuses_to_start_behind_a_stripping_resolver() {
    let lab = DnsLab::shared();
    let _proxy = StrippingResolver::start();
    let stripped = dig::query(STRIPPING, ".", "DNSKEY", Ask::RESOLVER);
    assert!(
        stripped.rcode == "NOERROR" && !stripped.ad && !stripped.signed(),
        "the proxy does not strip:\n{}",
        stripped.text
    );
    for_each_mode(
        &[
            Dns::TrustAd { via: STRIPPING },
            Dns::Validate {
                via: STRIPPING,
                anchor: Anchor::Dnskey,
            },
            Dns::Validate {
                via: STRIPPING,
                anchor: Anchor::Ds,
            },
        ],
        |dns| {
            let (mut run, listen) = start(&lab, "refuse", dns, "enforce");
            assert_refuses(&mut run, listen, dns);
        },
    );
}

/// `policy.mode = "test"` starts where enforce refuses, and says loudly
/// that nothing is enforced.
#[test]
#[ignore = "needs the integration lab: run integration/test-all"]
fn test_mode_starts_without_validation_and_warns() {
    let lab = DnsLab::shared();
    let _proxy = StrippingResolver::start();
    for_each_mode(
        &[
            Dns::TrustAd {
                via: NON_VALIDATING,
            },
            Dns::TrustAd { via: STRIPPING },
            Dns::Validate {
                via: STRIPPING,
                anchor: Anchor::Dnskey,
            },
            Dns::Validate {
                via: STRIPPING,
                anchor: Anchor::Ds,
            },
        ],
        |dns| {
            let (mut run, listen) = start(&lab, "warn", dns, "test");
            let log = assert_starts(&mut run, listen);
            let warnings: Vec<&str> = log
                .lines()
                .filter(|l| l.contains("WARN") && l.contains("TEST MODE"))
                .collect();
            assert!(
                warnings.iter().any(|l| l.contains("DNSSEC does not work")),
                "{}: no TEST MODE warning naming the cause:\n{log}",
                dns.label()
            );
            assert!(
                warnings.iter().any(|l| l.contains("nothing is enforced")),
                "{}: no TEST MODE warning that nothing is enforced:\n{log}",
                dns.label()
            );
            assert!(!log.contains("DNSSEC validation works"), "{log}");
        },
    );
}

/// Behind a validating resolver, or forwarding to a resolver that passes
/// signatures through (danegate validates them itself), enforce mode
/// starts and logs that validation works.
#[test]
#[ignore = "needs the integration lab: run integration/test-all"]
fn enforce_starts_where_validation_works() {
    let lab = DnsLab::shared();
    for (dns, anchors) in [
        (
            Dns::Validate {
                via: VALIDATING,
                anchor: Anchor::Dnskey,
            },
            "2 key(s) for .",
        ),
        (
            Dns::Validate {
                via: VALIDATING,
                anchor: Anchor::Ds,
            },
            "2 key(s) for .",
        ),
        (
            Dns::Validate {
                via: NON_VALIDATING,
                anchor: Anchor::Dnskey,
            },
            "2 key(s) for .",
        ),
        (Dns::TrustAd { via: VALIDATING }, "the resolver's own"),
    ] {
        let (mut run, listen) = start(&lab, "start", dns, "enforce");
        let log = assert_starts(&mut run, listen);
        let want = format!("INFO DNSSEC validation works (trust anchors: {anchors})");
        assert!(log.contains(&want), "{}: no {want:?}:\n{log}", dns.label());
        assert!(
            !log.contains("ERROR") && !log.contains("WARN"),
            "{}:\n{log}",
            dns.label()
        );
    }
}

/// No DNS at all (nothing listens at the lab's dead address): danegate
/// starts, since every lookup then fails and defers, and logs an error.
#[test]
#[ignore = "needs the integration lab: run integration/test-all"]
fn unreachable_dns_starts_with_an_error() {
    let lab = DnsLab::shared();
    for_each_mode(
        &[
            Dns::TrustAd { via: DEAD_NS },
            Dns::Validate {
                via: DEAD_NS,
                anchor: Anchor::Dnskey,
            },
            Dns::Validate {
                via: DEAD_NS,
                anchor: Anchor::Ds,
            },
        ],
        |dns| {
            let (mut run, listen) = start(&lab, "nodns", dns, "enforce");
            let log = assert_starts(&mut run, listen);
            assert!(
                log.lines()
                    .any(|l| l.contains("ERROR") && l.contains("DNS does not answer")),
                "{}: no ERROR about DNS:\n{log}",
                dns.label()
            );
        },
    );
}

/// trust-ad trusts a flag anyone on the path can set: only a loopback
/// resolver will do, and the error names the key.
#[test]
#[ignore = "needs the integration lab: run integration/test-all"]
fn trust_ad_with_a_remote_nameserver_is_a_config_error() {
    let lab = DnsLab::shared();
    let listen = gate::next_listen();
    let remote: SocketAddr = "192.0.2.53:53".parse().expect("literal address");
    let dns = Dns::TrustAd { via: remote };
    let config = gate::write_config(
        &lab,
        "run-trust-ad-remote",
        &gate::config(&lab, listen, dns, "enforce", ""),
    );
    let mut run = Running::start(&config);
    let status = run
        .wait_exit(LIMIT)
        .unwrap_or_else(|| panic!("still running after {LIMIT:?}:\n{}", run.log()));
    let log = run.log();
    assert_eq!(status.code(), Some(2), "{status}:\n{log}");
    let want = format!(
        "ERROR configuration error: {}: dns.nameservers: 192.0.2.53:53 is not a loopback address; mode \"trust-ad\" trusts the resolver's AD bit",
        config.display()
    );
    assert!(log.contains(&want), "no {want:?} in:\n{log}");
    assert!(!log.contains("listening on"), "{log}");
}
