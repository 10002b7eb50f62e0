//! `danegate doctor` against every kind of resolver the lab can put in
//! front of it: the validating unbound (ok, in both modes), the
//! non-validating unbound in trust-ad mode (fails, naming the missing AD
//! bit), the stripping proxy (fails: no RRSIG), a silent address (fails
//! with a timeout, within its bound), and dnsmasq forwarding to the
//! validating unbound (works, but warns: the AD bit is not its own).
//! Exit status 0/1/2 and the JSON report are checked; and `danegate run`
//! logs the same verdict at start-up.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::forwarder::{Dnsmasq, Silent, FORWARDER, SILENT};
use crate::gate::{self, Anchor, Dns, Running};
use crate::lab::*;
use crate::strip::{StrippingResolver, STRIPPING};

/// A config for `dns`, with the known-secure and known-bogus names of the
/// lab and a per-question timeout of 2 s.
fn config(lab: &DnsLab, name: &str, dns: Dns) -> std::path::PathBuf {
    config_listening(lab, name, dns, gate::NOT_LISTENING)
}

/// The same, for a `danegate run` listening on `listen`.
fn config_listening(
    lab: &DnsLab,
    name: &str,
    dns: Dns,
    listen: std::net::SocketAddr,
) -> std::path::PathBuf {
    let text = gate::config(lab, listen, dns, "enforce", "").replace(
        "[dns]\n",
        "[dns]\ntimeout = 2\ndoctor_secure_name = \"secure.test\"\ndoctor_bogus_name = \"bogus.test\"\n",
    );
    gate::write_config(lab, &format!("doctor-{name}"), &text)
}

/// The status of check `name` (for `server`, when given) in a JSON report.
fn status<'a>(
    report: &'a Value,
    name: &str,
    server: Option<std::net::SocketAddr>,
) -> (&'a str, &'a str) {
    let server = server.map(|s| s.to_string());
    report["checks"]
        .as_array()
        .and_then(|cs| {
            cs.iter()
                .find(|c| c["check"] == name && server.as_deref().is_none_or(|s| c["server"] == s))
        })
        .map(|c| {
            (
                c["status"].as_str().unwrap_or_default(),
                c["detail"].as_str().unwrap_or_default(),
            )
        })
        .unwrap_or_else(|| panic!("no check {name} in {report:#}"))
}

#[test]
#[ignore = "needs the integration lab: run integration/test-all"]
fn doctor_passes_behind_the_validating_unbound_in_both_modes() {
    let lab = DnsLab::shared();
    for dns in [
        Dns::Validate {
            via: VALIDATING,
            anchor: Anchor::Ds,
        },
        Dns::TrustAd { via: VALIDATING },
    ] {
        let got = gate::doctor(&config(&lab, &dns.label(), dns), &["--json"]);
        let r = &got.json;
        assert_eq!(got.status, Some(0), "{}: {r:#}\n{}", dns.label(), got.log);
        assert_eq!(r["verdict"], "ok", "{r:#}");
        let mut names = vec![
            "udp",
            "tcp",
            "dnssec-records",
            "trust-anchor",
            "secure-name",
            "bogus-name",
            "clock",
        ];
        if let Dns::TrustAd { .. } = dns {
            names.extend(["validates", "local-validator"]);
        }
        for name in names {
            assert_eq!(
                status(r, name, None).0,
                "ok",
                "{}: {name}: {r:#}",
                dns.label()
            );
        }
        let bogus = status(r, "bogus-name", None).1;
        assert!(
            bogus
                .starts_with("bogus.test fails validation, as it must: DNSSEC validation failed: "),
            "{bogus}"
        );
        assert_eq!(
            status(r, "secure-name", None).1,
            "secure.test comes back secure"
        );
        if let Dns::TrustAd { .. } = dns {
            let who = status(r, "local-validator", Some(VALIDATING)).1;
            assert!(who.contains("is served by unbound (pid "), "{who}");
        }
    }
}

#[test]
#[ignore = "needs the integration lab: run integration/test-all"]
fn doctor_fails_behind_a_non_validating_resolver_in_trust_ad_mode() {
    let lab = DnsLab::shared();
    let dns = Dns::TrustAd {
        via: NON_VALIDATING,
    };
    let got = gate::doctor(&config(&lab, "non-validating", dns), &["--json"]);
    let r = &got.json;
    assert_eq!(got.status, Some(2), "{r:#}\n{}", got.log);
    assert_eq!(r["verdict"], "fail");
    assert_eq!(status(r, "udp", Some(NON_VALIDATING)).0, "ok");
    assert_eq!(status(r, "dnssec-records", Some(NON_VALIDATING)).0, "ok");
    assert_eq!(
        status(r, "validates", Some(NON_VALIDATING)),
        (
            "fail",
            "does not validate: the DNSKEY set of . comes back without the AD bit (validation is off, or the trust anchor is missing), so no answer would ever count as secure"
        )
    );
    assert_eq!(status(r, "trust-anchor", None).0, "fail");
    assert_eq!(
        status(r, "secure-name", None),
        (
            "fail",
            "secure.test comes back insecure, but it is signed: DNSSEC answers are not validated"
        )
    );
    assert_eq!(
        status(r, "bogus-name", None),
        (
            "fail",
            "bogus.test comes back insecure: data that fails validation is accepted"
        )
    );
    // The text form says the same, one line per check.
    let text = gate::doctor(&config(&lab, "non-validating", dns), &[]);
    let out = text.json.as_str().unwrap_or_default();
    assert!(
        out.lines()
            .any(|l| l.starts_with("  FAIL  validates 127.0.53.54:53: does not validate")),
        "{out}"
    );
    assert!(out.ends_with("verdict: fail\n"), "{out}");
}

#[test]
#[ignore = "needs the integration lab: run integration/test-all"]
fn doctor_fails_behind_a_stripping_resolver() {
    let lab = DnsLab::shared();
    let _strip = StrippingResolver::start();
    for dns in [
        Dns::Validate {
            via: STRIPPING,
            anchor: Anchor::Dnskey,
        },
        Dns::TrustAd { via: STRIPPING },
    ] {
        let got = gate::doctor(&config(&lab, &dns.label(), dns), &["--json"]);
        let r = &got.json;
        assert_eq!(got.status, Some(2), "{r:#}\n{}", got.log);
        assert_eq!(status(r, "udp", Some(STRIPPING)).0, "ok", "{r:#}");
        assert_eq!(
            status(r, "dnssec-records", Some(STRIPPING)),
            (
                "fail",
                "strips DNSSEC records: the DNSKEY answer for . (DO bit set) has no RRSIG, so nothing can be validated"
            ),
            "{}",
            dns.label()
        );
        assert_eq!(status(r, "trust-anchor", None).0, "fail", "{r:#}");
        assert_eq!(status(r, "secure-name", None).0, "fail", "{r:#}");
        assert_eq!(status(r, "clock", None).0, "skip", "{r:#}");
    }
}

#[test]
#[ignore = "needs the integration lab: run integration/test-all"]
fn doctor_fails_with_a_timeout_at_a_silent_address() {
    let lab = DnsLab::shared();
    let _silent = Silent::start();
    let dns = Dns::TrustAd { via: SILENT };
    let started = Instant::now();
    let got = gate::doctor(&config(&lab, "silent", dns), &["--json"]);
    let took = started.elapsed();
    let r = &got.json;
    assert_eq!(got.status, Some(2), "{r:#}\n{}", got.log);
    for t in ["udp", "tcp"] {
        assert_eq!(
            status(r, t, Some(SILENT)),
            ("fail", "no answer within 2 s"),
            "{r:#}"
        );
    }
    assert_eq!(
        status(r, "the remaining checks", None),
        ("skip", "no name server answers")
    );
    // UDP and TCP are asked at once: one timeout, not one per check.
    assert!(took < Duration::from_secs(5), "took {took:?}");
}

#[test]
#[ignore = "needs the integration lab: run integration/test-all"]
fn doctor_warns_about_a_loopback_forwarder() {
    let lab = DnsLab::shared();
    let _dnsmasq = Dnsmasq::start();
    let dns = Dns::TrustAd { via: FORWARDER };
    let cfg = config_listening(&lab, "forwarder", dns, gate::next_listen());
    let got = gate::doctor(&cfg, &["--json"]);
    let r = &got.json;
    assert_eq!(got.status, Some(1), "{r:#}\n{}", got.log);
    assert_eq!(r["verdict"], "warn");
    // Validation works through it...
    for name in ["validates", "trust-anchor", "secure-name", "bogus-name"] {
        assert_eq!(status(r, name, None).0, "ok", "{name}: {r:#}");
    }
    // ... but the AD bit is unbound's, relayed.
    let (s, detail) = status(r, "local-validator", Some(FORWARDER));
    assert_eq!(s, "warn");
    assert!(
        detail.starts_with("127.0.53.58:53 is served by dnsmasq (pid ")
            && detail.contains("a forwarder, whose AD bit is its upstream's"),
        "{detail}"
    );

    // `danegate run` logs the same verdict at start-up, and starts.
    let mut run = Running::start(&cfg);
    run.wait_log(
        "resolver self-test (danegate doctor): warnings",
        Duration::from_secs(15),
    );
    let log = run.log();
    assert!(
        log.lines().any(|l| l.contains("WARN")
            && l.contains("resolver self-test: local-validator 127.0.53.58:53: 127.0.53.58:53 is served by dnsmasq")),
        "{log}"
    );
    run.stop();
}

/// Behind the validating unbound the start-up verdict is ok.
#[test]
#[ignore = "needs the integration lab: run integration/test-all"]
fn run_logs_the_doctor_verdict_at_start() {
    let lab = DnsLab::shared();
    let dns = Dns::Validate {
        via: VALIDATING,
        anchor: Anchor::Ds,
    };
    let mut run = Running::start(&config_listening(&lab, "run-ok", dns, gate::next_listen()));
    let line = run.wait_log(
        "resolver self-test (danegate doctor): ok",
        Duration::from_secs(15),
    );
    assert!(
        line.contains("INFO") && line.ends_with("ok, 7 checks"),
        "{line}"
    );
    run.stop();
}
