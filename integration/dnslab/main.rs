//! danegate's DNS lab: a private DNSSEC hierarchy (knotd) behind a
//! validating unbound, on loopback, for the DNS layer's integration tests.
//!
//! The tests in this file are the lab's self-tests, without danegate: each lab
//! domain classifies through the validating unbound as `cases::CASES`
//! says (AD for secure answers, no AD for insecure ones, SERVFAIL for
//! failures), the non-validating unbound never sets AD, and the trust
//! anchors and certificates are what the zones publish. When one of these
//! fails, tests of danegate against the lab cannot be trusted.
//!
//! All of them share one lab ([`lab::DnsLab::shared`]), started by the first
//! test. They need root, knot, unbound, ldnsutils and openssl, so they are
//! `#[ignore]`d; run them with
//! `cargo test --test dnslab -- --ignored --test-threads=1`
//! (see integration/dnslab/README.md).
//!
//! Modules: `lab` (the lab: files, daemons, waits; re-exports the rest),
//! `zones` (the zone data and key/certificate generation), `cases` (the
//! expected classification of each domain), `dig` (kdig as the yardstick).
//!
//! danegate itself against the lab: `gate` (runs the binary: configs per
//! resolver mode, `resolve --json`, `run`), `strip` (a resolver that strips
//! DNSSEC), and the tests `resolve` (every case, every resolver mode),
//! `startup` (the start-up probe: enforce refuses, test warns), `relay`
//! (legacy Postfix → danegate → a bogus domain: 451 4.4.3, kept queued)
//! and `dane` (legacy Postfix → danegate → a Postfix receiver on
//! mx1.secure.test: Verified, TLSA mismatch 4.7.5, no STARTTLS 4.7.4, test
//! mode delivering; Postfix from the `lab` target's modules),
//! `interop` (14 real Postfix receivers with the TLS settings of issue 12,
//! danegate compared with a Postfix DANE relay on each) and `faultrun`
//! (1,000 messages through a legacy Postfix and danegate while the
//! receiver, the resolver and the TLSA records fail at random).

#![forbid(unsafe_code)]

mod cases;
mod dig;
mod lab;
mod zones;

// danegate against the lab.
// `check`: `danegate check` against receivers the tests start on the MX
// addresses (good, mismatching, no STARTTLS, dual-key, insecure, expiring).
mod check;
mod dane;
// `doctor`: the resolver self-test against every kind of resolver, with
// dnsmasq as a loopback forwarder and a silent address (`forwarder`).
mod doctor;
mod examples;
// `faultrun`: 1,000 messages through a legacy Postfix and danegate while a
// receiver (`faultmx`), the resolver (`faultdns`) and the TLSA records fail.
mod faultdns;
mod faultmx;
mod faultrun;
mod forwarder;
mod gate;
// `interop`: real Postfix receivers with every TLS setting of issue 12,
// danegate compared with a Postfix DANE relay on each (`interop_cases`: the
// receivers and domains as data; `interop_pki`: their certificates).
mod interop;
mod interop_cases;
mod interop_pki;
mod policyhost;
mod published;
mod relay;
mod resolve;
mod startup;
mod strip;
mod sts;
// `zoo_relay`: the DNAME, mixed-family and IDN (SMTPUTF8) zoo cases end to
// end through a legacy Postfix and danegate to a Postfix receiver.
mod zoo_relay;

// The `lab` target's Postfix instances, for the end-to-end tests in `relay`
// and `dane`.
#[path = "../lab/client.rs"]
#[allow(dead_code)]
mod client;
#[path = "../lab/message.rs"]
#[allow(dead_code)]
mod message;
#[path = "../lab/postfix.rs"]
#[allow(dead_code)]
mod postfix;
#[path = "../lab/util.rs"]
#[allow(dead_code)]
mod util;

use std::process::Command;
use std::time::Duration;

use lab::*;

fn assert_answer(a: &Answer, rcode: &str, ad: bool, what: &str) {
    assert!(
        a.rcode == rcode && a.ad == ad,
        "{what}: expected {rcode} with AD={ad}, got {} with AD={}:\n{}",
        a.rcode,
        a.ad,
        a.text
    );
}

/// Whether one TLSA record (`usage selector mtype hex`) is usable for SMTP
/// (dane-rules §2.3); a type-0 record counts as usable when it is non-empty
/// (the lab publishes none).
fn tlsa_usable(data: &str) -> bool {
    let f: Vec<&str> = data.split_whitespace().collect();
    let [usage, selector, mtype, hex @ ..] = f.as_slice() else {
        return false;
    };
    let len = hex.concat().len();
    matches!(*usage, "2" | "3")
        && matches!(*selector, "0" | "1")
        && match *mtype {
            "0" => len > 0,
            "1" => len == 64,
            "2" => len == 128,
            _ => false,
        }
}

/// Checks one case against the validating resolver, lookup by lookup.
fn check_case(lab: &DnsLab, case: &Case) {
    let what = format!("{} ({})", case.domain, case.about);
    let mx = lab.resolve(case.domain, "MX");
    match case.mx {
        Mx::Records(sec) => {
            assert_answer(&mx, "NOERROR", sec == Sec::Secure, &format!("{what}: MX"));
            let mut want: Vec<String> = case
                .hosts
                .iter()
                .map(|h| format!("{} {}.", h.preference, h.name))
                .collect();
            want.sort();
            assert_eq!(mx.data("MX"), want, "{what}: MX records");
        }
        Mx::Implicit(sec) => {
            assert_answer(&mx, "NOERROR", sec == Sec::Secure, &format!("{what}: MX"));
            assert!(
                mx.data("MX").is_empty(),
                "{what}: expected NODATA:\n{}",
                mx.text
            );
            assert_eq!(case.hosts.len(), 1, "{what}: an implicit MX is one host");
            assert_eq!(case.hosts[0].name, case.domain);
        }
        Mx::Null(sec) => {
            assert_answer(&mx, "NOERROR", sec == Sec::Secure, &format!("{what}: MX"));
            assert_eq!(mx.data("MX"), ["0 ."], "{what}: null MX");
        }
        Mx::NxDomain(sec) => {
            assert_answer(&mx, "NXDOMAIN", sec == Sec::Secure, &format!("{what}: MX"));
        }
        Mx::Failed => assert_answer(&mx, "SERVFAIL", false, &format!("{what}: MX")),
    }
    for host in case.hosts {
        check_host(lab, &what, host);
    }
}

fn check_host(lab: &DnsLab, what: &str, host: &Host) {
    let what = format!("{what}: host {}", host.name);
    for (rtype, want) in [("A", host.ipv4), ("AAAA", host.ipv6)] {
        let a = lab.resolve(host.name, rtype);
        let lookup = match rtype {
            "AAAA" => host.aaaa.unwrap_or(host.addrs),
            _ => host.addrs,
        };
        match lookup {
            Lookup::Answered(sec) => {
                assert_answer(
                    &a,
                    "NOERROR",
                    sec == Sec::Secure,
                    &format!("{what}: {rtype}"),
                );
                let mut want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
                want.sort();
                assert_eq!(a.data(rtype), want, "{what}: {rtype} records");
                let cname = host
                    .cname
                    .map(|c| vec![format!("{c}.")])
                    .unwrap_or_default();
                assert_eq!(a.data("CNAME"), cname, "{what}: CNAME");
            }
            Lookup::Failed => assert_answer(&a, "SERVFAIL", false, &format!("{what}: {rtype}")),
        }
    }
    let tlsa_at = |base: &str| lab.resolve(&format!("_25._tcp.{base}"), "TLSA");
    match host.tlsa {
        Tlsa::NotLookedUp => assert!(
            host.addrs != Lookup::Answered(Sec::Secure)
                || host.cname.is_some()
                || host.ipv4.is_empty() && host.ipv6.is_empty(),
            "{what}: secure addresses, yet no TLSA lookup"
        ),
        Tlsa::Found {
            base,
            usable,
            total,
        } => {
            if let Some(target) = host.cname.filter(|&t| t != base) {
                // Falling back to the alias is right only after a secure denial.
                let t = tlsa_at(target);
                assert!(
                    t.ad && (t.rcode == "NXDOMAIN"
                        || t.rcode == "NOERROR" && t.data("TLSA").is_empty()),
                    "{what}: fallback from {target} without a secure denial there:\n{}",
                    t.text
                );
            }
            let t = tlsa_at(base);
            assert_answer(&t, "NOERROR", true, &format!("{what}: TLSA at {base}"));
            let records = t.data("TLSA");
            assert_eq!(
                records.len(),
                total,
                "{what}: TLSA records at {base}: {records:?}"
            );
            let n = records.iter().filter(|r| tlsa_usable(r)).count();
            assert_eq!(
                n, usable,
                "{what}: usable TLSA records at {base}: {records:?}"
            );
        }
        Tlsa::None => {
            for base in host.cname.into_iter().chain([host.name]) {
                let t = tlsa_at(base);
                assert!(
                    t.ad && t.data("TLSA").is_empty()
                        && (t.rcode == "NXDOMAIN" || t.rcode == "NOERROR"),
                    "{what}: expected a secure denial of TLSA at {base}:\n{}",
                    t.text
                );
            }
        }
        Tlsa::Insecure { name } => {
            let t = lab.resolve(name, "TLSA");
            assert_answer(&t, "NOERROR", false, &format!("{what}: TLSA at {name}"));
            assert!(
                !t.data("TLSA").is_empty(),
                "{what}: no TLSA at {name}:\n{}",
                t.text
            );
        }
        Tlsa::Failed { name } => {
            let t = lab.resolve(name, "TLSA");
            assert_answer(&t, "SERVFAIL", false, &format!("{what}: TLSA at {name}"));
        }
    }
}

#[test]
#[ignore = "needs the integration lab: run integration/test-all"]
fn every_case_classifies_as_the_table_says() {
    let lab = DnsLab::shared();
    for case in CASES {
        check_case(&lab, case);
    }
}

/// Each zone is served by its server, signed or not as declared, and its
/// delegation is secure: a validated DS for signed children (the bogus
/// zone's included: the DS is fine, the key it names is absent), a
/// validated denial of DS for unsigned ones (that is what makes them
/// provably insecure rather than bogus).
fn check_zone(lab: &DnsLab, zone: &Zone) {
    let what = format!("zone {} ({:?})", zone.name, zone.signing);
    let soa = dig::query(zone.server.addr(), zone.name, "SOA", Ask::AUTHORITATIVE);
    assert!(
        soa.rcode == "NOERROR" && soa.aa,
        "{what}: SOA from {:?}:\n{}",
        zone.server,
        soa.text
    );
    assert_eq!(
        soa.signed(),
        zone.signing != Signing::Unsigned,
        "{what}:\n{}",
        soa.text
    );
    if zone.name == "." {
        return;
    }
    let ds = lab.resolve(zone.name, "DS");
    // Under an opt-out parent an unsigned delegation has no NSEC3 record
    // of its own: the denial of its DS is an opt-out NSEC3 covering it,
    // which proves only that no signed delegation exists (RFC 5155 §6,
    // §8.6): insecure.
    let under_opt_out = matches!(
        zones::parent_zone(zone.name).map(|p| p.signing),
        Some(Signing::Knot(_, Denial::Nsec3 { opt_out: true, .. }))
    );
    let secure = !(under_opt_out && zone.signing == Signing::Unsigned);
    assert_answer(&ds, "NOERROR", secure, &format!("{what}: DS"));
    let want = usize::from(zone.signing != Signing::Unsigned);
    assert_eq!(
        ds.data("DS").len(),
        want,
        "{what}: DS records:\n{}",
        ds.text
    );
}

#[test]
#[ignore = "needs the integration lab: run integration/test-all"]
fn every_zone_is_served_and_delegated_as_declared() {
    let lab = DnsLab::shared();
    for zone in ZONES {
        check_zone(&lab, zone);
    }
}

#[test]
#[ignore = "needs the integration lab: run integration/test-all"]
fn secure_answers_carry_ad() {
    let lab = DnsLab::shared();
    let case = Case::get("secure.test");
    let mx = lab.resolve(case.domain, "MX");
    assert_answer(&mx, "NOERROR", true, "secure.test MX");
    assert_eq!(
        mx.data("MX"),
        ["10 mx1.secure.test.", "20 mx2.secure.test."]
    );
    assert_eq!(case.hosts.len(), 2);
    assert!(mx.signed(), "DO was set, yet no RRSIG:\n{}", mx.text);

    let spki = &lab.cert("mx1.secure.test").spki_sha256;
    let t = lab.resolve("_25._tcp.mx1.secure.test", "TLSA");
    assert_answer(&t, "NOERROR", true, "mx1 TLSA");
    assert_eq!(tlsa_norm(&t.data("TLSA")), [format!("3 1 1 {spki}")]);

    let ca = &lab.cert("ca").cert_sha256;
    let t = lab.resolve("_25._tcp.mx2.secure.test", "TLSA");
    assert_answer(&t, "NOERROR", true, "mx2 TLSA");
    assert_eq!(tlsa_norm(&t.data("TLSA")), [format!("2 0 1 {ca}")]);

    let a = lab.resolve("mx1.secure.test", "AAAA");
    assert_answer(&a, "NOERROR", true, "mx1 AAAA");
    assert_eq!(a.data("AAAA"), ["::1"]);
}

/// TLSA data as `u s m hex` with the hex in one lower-case run.
fn tlsa_norm(records: &[String]) -> Vec<String> {
    records
        .iter()
        .map(|r| {
            let f: Vec<&str> = r.split_whitespace().collect();
            format!(
                "{} {} {} {}",
                f[0],
                f[1],
                f[2],
                f[3..].concat().to_ascii_lowercase()
            )
        })
        .collect()
}

#[test]
#[ignore = "needs the integration lab: run integration/test-all"]
fn unsigned_answers_lack_ad() {
    let lab = DnsLab::shared();
    for (name, rtype) in [
        ("unsigned.test", "MX"),
        ("mx.unsigned.test", "A"),
        ("_25._tcp.mx.unsigned.test", "TLSA"),
        ("secure-mx.unsigned.test", "MX"),
        ("_25._tcp.mx.tlsa-insecure.test", "TLSA"),
    ] {
        let a = lab.resolve(name, rtype);
        assert_answer(&a, "NOERROR", false, &format!("{name} {rtype}"));
        assert!(
            !a.data(rtype).is_empty(),
            "{name} {rtype}: no records:\n{}",
            a.text
        );
    }
    let a = lab.resolve("nosuch.unsigned.test", "MX");
    assert_answer(&a, "NXDOMAIN", false, "nosuch.unsigned.test MX");
}

#[test]
#[ignore = "needs the integration lab: run integration/test-all"]
fn bogus_and_expired_zones_servfail_with_a_reason() {
    let lab = DnsLab::shared();
    for (name, rtype) in [
        ("bogus.test", "MX"),
        ("mx.bogus.test", "A"),
        ("_25._tcp.mx.bogus.test", "TLSA"),
        ("expired.test", "MX"),
        ("mx.expired.test", "A"),
        ("_25._tcp.mx.expired.test", "TLSA"),
    ] {
        let a = lab.resolve(name, rtype);
        assert_answer(&a, "SERVFAIL", false, &format!("{name} {rtype}"));
        // unbound's extended DNS errors (RFC 8914): 9 DNSKEY Missing for the
        // DS naming a key the zone does not have, 7 Signature Expired; 6
        // DNSSEC Bogus for later names of a zone whose keys already failed.
        let code = a.ede.as_deref().and_then(|e| e.split_whitespace().next());
        let want: &[&str] = if name.contains("bogus") {
            &["9", "6"]
        } else {
            &["7", "6"]
        };
        assert!(
            code.is_some_and(|c| want.contains(&c)),
            "{name} {rtype}: EDE {:?}, want one of {want:?}:\n{}",
            a.ede,
            a.text
        );
    }
    // Without validation the same data arrives (what a signature-ignoring
    // resolver would hand on): the failure above is the validator's doing.
    for name in ["bogus.test", "expired.test"] {
        let a = lab.resolve_unvalidated(name, "MX");
        assert_answer(&a, "NOERROR", false, &format!("{name} MX unvalidated"));
        assert_eq!(a.data("MX"), [format!("10 mx.{name}.")]);
    }
}

#[test]
#[ignore = "needs the integration lab: run integration/test-all"]
fn dead_delegations_servfail_within_seconds() {
    let lab = DnsLab::shared();
    for (name, rtype) in [
        ("dead.test", "MX"),
        ("mx.dead.test", "A"),
        ("_25._tcp.mx.tlsa-fail.test", "TLSA"),
    ] {
        let a = lab.resolve(name, rtype);
        assert_answer(&a, "SERVFAIL", false, &format!("{name} {rtype}"));
        assert!(
            a.elapsed < Duration::from_secs(5),
            "{name} {rtype}: SERVFAIL took {:?}",
            a.elapsed
        );
    }
    // The failure is confined to the dead zone: its parent's data is fine.
    let a = lab.resolve("mx.tlsa-fail.test", "A");
    assert_answer(&a, "NOERROR", true, "mx.tlsa-fail.test A");
}

#[test]
#[ignore = "needs the integration lab: run integration/test-all"]
fn denials_are_secure() {
    let lab = DnsLab::shared();
    let a = lab.resolve("nosuch.secure.test", "MX");
    assert_answer(&a, "NXDOMAIN", true, "nosuch.secure.test MX");
    let a = lab.resolve("nomx.test", "MX");
    assert_answer(&a, "NOERROR", true, "nomx.test MX");
    assert!(
        a.answer.is_empty(),
        "nomx.test MX: expected NODATA:\n{}",
        a.text
    );
    let a = lab.resolve("_25._tcp.mx-notlsa.secure.test", "TLSA");
    assert!(
        a.ad && a.data("TLSA").is_empty(),
        "no secure TLSA denial:\n{}",
        a.text
    );
    let a = lab.resolve("nullmx.test", "MX");
    assert_answer(&a, "NOERROR", true, "nullmx.test MX");
    assert_eq!(a.data("MX"), ["0 ."]);
}

#[test]
#[ignore = "needs the integration lab: run integration/test-all"]
fn cname_chains_resolve_to_their_targets() {
    let lab = DnsLab::shared();
    for (alias, target, ip) in [
        ("mx.cname.test", "mx-target.secure.test", "127.0.25.6"),
        (
            "mx-fallback.cname.test",
            "mx-notlsa.secure.test",
            "127.0.25.7",
        ),
        (
            "mx-nofallback.cname.test",
            "mx.tlsa-fail.test",
            "127.0.25.10",
        ),
    ] {
        let a = lab.resolve(alias, "A");
        assert_answer(&a, "NOERROR", true, &format!("{alias} A"));
        assert_eq!(a.data("CNAME"), [format!("{target}.")], "{alias}");
        assert_eq!(a.data("A"), [ip], "{alias}");
    }
    // Each alias has TLSA of its own, with a different key than the target's.
    let alias = lab.resolve("_25._tcp.mx.cname.test", "TLSA");
    let target = lab.resolve("_25._tcp.mx-target.secure.test", "TLSA");
    assert_answer(&alias, "NOERROR", true, "alias TLSA");
    assert_answer(&target, "NOERROR", true, "target TLSA");
    assert_ne!(alias.data("TLSA"), target.data("TLSA"));
}

#[test]
#[ignore = "needs the integration lab: run integration/test-all"]
fn non_validating_resolver_never_sets_ad() {
    let lab = DnsLab::shared();
    for (name, rtype) in [
        (".", "DNSKEY"),
        ("secure.test", "MX"),
        ("_25._tcp.mx1.secure.test", "TLSA"),
        ("unsigned.test", "MX"),
    ] {
        let a = lab.resolve_unvalidated(name, rtype);
        assert_answer(&a, "NOERROR", false, &format!("{name} {rtype} unvalidated"));
        // The signatures are there; nobody checked them.
        if !name.contains("unsigned") {
            assert!(a.signed(), "{name} {rtype}: no RRSIG:\n{}", a.text);
        }
    }
    let a = lab.resolve_unvalidated("nosuch.secure.test", "MX");
    assert_answer(&a, "NXDOMAIN", false, "nosuch.secure.test unvalidated");
}

#[test]
#[ignore = "needs the integration lab: run integration/test-all"]
fn trust_anchor_files_name_the_served_root_ksk() {
    let lab = DnsLab::shared();
    assert!(lab.anchor_dnskey_file().starts_with(lab.dir()));
    assert_eq!(lab.validating(), VALIDATING);
    assert_eq!(lab.non_validating(), NON_VALIDATING);
    let dnskey = read_text(&lab.anchor_dnskey_file());
    let ds = read_text(&lab.anchor_ds_file());
    assert!(dnskey.starts_with(". 3600 IN DNSKEY 257 3 13 "), "{dnskey}");
    let bind = read_text(&lab.anchor_bind_file());
    assert!(
        bind.starts_with("trust-anchors { . static-key 257 3 13 \""),
        "{bind}"
    );
    assert!(ds.starts_with(". 3600 IN DS "), "{ds}");
    assert_eq!(dnskey.trim(), lab.root_dnskey());
    assert_eq!(ds.trim(), lab.root_ds());
    assert_eq!(dnskey.lines().count(), 1);
    assert_eq!(ds.lines().count(), 1);

    let keys = lab.resolve(".", "DNSKEY");
    assert_answer(&keys, "NOERROR", true, ". DNSKEY");
    let records: Vec<&Record> = keys.answer.iter().filter(|r| r.rtype == "DNSKEY").collect();
    assert!(records.iter().all(|r| r.name == "."), "{records:?}");
    let served = keys.data("DNSKEY");
    assert_eq!(served.len(), 2, "the root has a KSK and a ZSK: {served:?}");
    let anchored = dnskey
        .trim()
        .split_once(" DNSKEY ")
        .map(|(_, r)| r)
        .unwrap_or("");
    let compact = |s: &str| s.split_whitespace().collect::<String>();
    assert!(
        served.iter().any(|k| compact(k) == compact(anchored)),
        "anchored key {anchored} not among served {served:?}"
    );
    assert!(
        served.iter().any(|k| k.starts_with("256 ")),
        "no ZSK served: {served:?}"
    );
}

#[test]
#[ignore = "needs the integration lab: run integration/test-all"]
fn certificates_match_their_tlsa_digests() {
    let lab = DnsLab::shared();
    let openssl = require_tool("openssl");
    let sh = |script: String| run_ok(Command::new("sh").args(["-c", &script]));
    let o = openssl.display();
    for &(host, issuer) in zones::CERTS {
        let cert = lab.cert(host);
        assert_eq!((cert.name.as_str(), cert.issuer), (host, issuer));
        // An independent SPKI digest: openssl, from the certificate file,
        // and from the private key (so the pair belongs together).
        let from_cert = sh(format!(
            "{o} x509 -in '{}' -noout -pubkey | {o} pkey -pubin -outform DER | {o} dgst -sha256 -r",
            cert.chain_pem.display()
        ));
        let from_key = sh(format!(
            "{o} pkey -in '{}' -pubout -outform DER | {o} dgst -sha256 -r",
            cert.key_pem.display()
        ));
        for out in [from_cert, from_key] {
            assert_eq!(
                out.split_whitespace().next(),
                Some(cert.spki_sha256.as_str()),
                "{host}"
            );
        }
    }
    // mx2's chain verifies against the lab CA (what DANE-TA 2 0 1 names).
    let mx2 = lab.cert("mx2.secure.test");
    assert_eq!(mx2.issuer, Issuer::LabCa);
    let out = run_ok(
        Command::new(&openssl)
            .arg("verify")
            .arg("-CAfile")
            .arg(&lab.cert("ca").chain_pem)
            .arg(&mx2.chain_pem),
    );
    assert!(out.contains(": OK"), "{out}");
}

/// A second, independent validator (BIND's delv, validating itself from
/// the lab's anchor with the CD bit set) agrees with unbound on every MX
/// answer of the table.
#[test]
#[ignore = "needs the integration lab: run integration/test-all"]
fn delv_agrees_on_every_mx_answer() {
    let lab = DnsLab::shared();
    let delv = require_tool("delv");
    for case in CASES {
        let out = run_output(
            Command::new(&delv)
                .arg(format!("@{}", lab.validating().ip()))
                .arg("-a")
                .arg(lab.anchor_bind_file())
                .args(["+root=.", case.domain, "MX"]),
            None,
        );
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // RFC 5155 leaves an NXDOMAIN under an opt-out span open: BIND
        // calls it secure, unbound (the lab's reference) insecure.
        let mx = match (case.domain, case.mx) {
            ("nosuch.optout.test", Mx::NxDomain(Sec::Insecure)) => Mx::NxDomain(Sec::Secure),
            (_, mx) => mx,
        };
        let want = match mx {
            Mx::Records(Sec::Secure) | Mx::Null(Sec::Secure) => "; fully validated",
            Mx::Records(Sec::Insecure) | Mx::Null(Sec::Insecure) => "; unsigned answer",
            Mx::Implicit(Sec::Secure) | Mx::NxDomain(Sec::Secure) => {
                "; negative response, fully validated"
            }
            Mx::Implicit(Sec::Insecure) | Mx::NxDomain(Sec::Insecure) => {
                "; negative response, unsigned answer"
            }
            Mx::Failed => ";; resolution failed: failure",
        };
        assert!(
            text.lines().any(|l| l == want),
            "{}: delv does not say {want:?}:\n{text}",
            case.domain
        );
    }
}

/// The table is consistent with the rules it encodes (no lab needed).
#[test]
fn cases_table_is_consistent() {
    for case in CASES {
        let hosts_expected = matches!(case.mx, Mx::Records(_) | Mx::Implicit(_));
        assert_eq!(!case.hosts.is_empty(), hosts_expected, "{}", case.domain);
        let mut prefs: Vec<u16> = case.hosts.iter().map(|h| h.preference).collect();
        prefs.sort();
        assert_eq!(
            prefs,
            case.hosts.iter().map(|h| h.preference).collect::<Vec<_>>()
        );
        for h in case.hosts {
            let no_address = h.ipv4.is_empty() && h.ipv6.is_empty();
            let want = match (h.addrs, h.tlsa) {
                (Lookup::Failed, _) | (_, Tlsa::Failed { .. }) => Requirement::Failed,
                (Lookup::Answered(_), _) if no_address => Requirement::Failed,
                (_, Tlsa::Found { usable: 0, .. }) => Requirement::TlsRequired,
                (_, Tlsa::Found { .. }) => Requirement::DaneRequired,
                _ => Requirement::NoDane,
            };
            assert_eq!(h.requirement, want, "{} {}", case.domain, h.name);
            if h.addrs == Lookup::Answered(Sec::Insecure) && h.cname.is_none() {
                assert_eq!(h.tlsa, Tlsa::NotLookedUp, "{} {}", case.domain, h.name);
            }
        }
    }
}
