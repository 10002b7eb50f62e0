//! `danegate resolve DOMAIN --json` against every row of `cases::CASES`,
//! in each resolver mode: the whole plan must be what dane-rules §1–2 make
//! of the lab's DNS data, field by field (MX source and security, hosts in
//! preference order, addresses and their security, CNAME target, TLSA
//! status, base and records with their usability, requirement, skipped
//! hosts with their reasons, the reply for an undeliverable domain) and
//! the exit status (0 deliverable, 1 deferred or rejected).
//!
//! The expected plan is built from the table, the TLSA records from what
//! kdig gets from the validating unbound (so the digests made this run are
//! compared, not copied), and the failure texts from the mode: where the
//! validator is unbound, bogus data reaches danegate as SERVFAIL: in
//! trust-ad mode danegate reads unbound's Extended DNS Error and says
//! "bogus"; forwarding through hickory to the validating unbound only the
//! SERVFAIL is seen. danegate's own validator, behind the non-validating
//! unbound, says "bogus" too.

use serde_json::{json, Value};

use crate::gate::{self, Anchor, Dns};
use crate::lab::*;

/// Why a lookup under `name` fails in the lab: a zone whose DNSSEC is
/// broken (bogus DS, expired signatures), or a delegation to nowhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cause {
    Bogus,
    Unreachable,
}

fn cause(name: &str) -> Cause {
    let fqdn = format!("{name}.");
    let zone = ZONES
        .iter()
        .filter(|z| z.name == fqdn || z.name == "." || fqdn.ends_with(&format!(".{}", z.name)))
        .max_by_key(|z| z.name.len())
        .unwrap_or_else(|| panic!("{name} is in no lab zone"));
    match zone.signing {
        Signing::CskWrongDs | Signing::Expired => Cause::Bogus,
        _ => Cause::Unreachable,
    }
}

/// The text danegate gives for a failed lookup under `name` in mode `dns`.
fn failure_text(dns: Dns, name: &str) -> &'static str {
    match (cause(name), dns) {
        // danegate's own validator behind the non-validating unbound.
        (
            Cause::Bogus,
            Dns::Validate {
                via: NON_VALIDATING,
                ..
            },
        ) => "DNSSEC validation failed (bogus)",
        // trust-ad: unbound answers SERVFAIL with an Extended DNS Error
        // saying why (RFC 8914), and danegate reads it.
        (Cause::Bogus, Dns::TrustAd { .. }) => "DNSSEC validation failed (bogus)",
        // hickory forwarding to the validating unbound sees only the
        // SERVFAIL; a dead delegation is SERVFAIL in about 2 s.
        _ => "server failure (SERVFAIL)",
    }
}

fn sec(s: Sec) -> &'static str {
    match s {
        Sec::Secure => "secure",
        Sec::Insecure => "insecure",
    }
}

/// Why danegate calls a lab TLSA record (`u s m hex`) unusable, if it does
/// (dane-rules §2.3; the lab publishes only these shapes).
fn unusable_reason(record: &str) -> Option<&'static str> {
    if crate::tlsa_usable(record) {
        return None;
    }
    let usage = record.split_whitespace().next();
    Some(match usage {
        Some("0" | "1") => "PKIX usage (0/1) is not usable for SMTP",
        Some("2" | "3") => "digest length does not fit the matching type",
        _ => panic!("the lab publishes no TLSA record like {record}"),
    })
}

/// The TLSA records at `_25._tcp.BASE` as the validating unbound gives them.
fn tlsa_records(lab: &DnsLab, base: &str) -> Value {
    let answer = lab.resolve(&format!("_25._tcp.{base}"), "TLSA");
    let mut records = crate::tlsa_norm(&answer.data("TLSA"));
    records.sort();
    records
        .iter()
        .map(|r| {
            json!({
                "record": r,
                "usable": crate::tlsa_usable(r),
                "unusable_reason": unusable_reason(r),
            })
        })
        .collect()
}

fn host_json(lab: &DnsLab, h: &Host) -> Value {
    let Lookup::Answered(addr_sec) = h.addrs else {
        panic!("{}: a failed host has no plan entry", h.name);
    };
    let mut addresses: Vec<String> = h.ipv4.iter().chain(h.ipv6).map(|s| s.to_string()).collect();
    addresses.sort();
    let (status, base, tlsa) = match h.tlsa {
        Tlsa::NotLookedUp => ("not-looked-up", None, json!([])),
        Tlsa::None | Tlsa::Insecure { .. } => ("none-secure", None, json!([])),
        Tlsa::Found { base, usable, .. } => (
            if usable > 0 { "usable" } else { "all-unusable" },
            Some(base),
            tlsa_records(lab, base),
        ),
        Tlsa::Failed { .. } => panic!("{}: a failed host has no plan entry", h.name),
    };
    let requirement = match h.requirement {
        Requirement::DaneRequired => "DANE required",
        Requirement::TlsRequired => "TLS required (no authentication)",
        Requirement::NoDane => "opportunistic TLS",
        Requirement::Failed => panic!("{}: a failed host has no plan entry", h.name),
    };
    json!({
        "name": h.name,
        "port": 25,
        "preference": h.preference,
        "addresses": addresses,
        "address_security": sec(addr_sec),
        "cname": h.cname.map(|t| json!({"target": t, "secure": addr_sec == Sec::Secure})),
        "tlsa_status": status,
        "tlsa_base": base,
        "tlsa": tlsa,
        "requirement": requirement,
        "mta_sts": "none",
    })
}

/// A host whose address lookups answered, with no records.
fn no_address(h: &Host) -> bool {
    matches!(h.addrs, Lookup::Answered(_)) && h.ipv4.is_empty() && h.ipv6.is_empty()
}

/// Why a failed host is skipped. Addresses: AAAA is asked first, then A;
/// when both fail the A failure is the one reported.
fn skip_reason(dns: Dns, h: &Host) -> String {
    match (h.addrs, h.tlsa) {
        (Lookup::Failed, _) => format!(
            "A lookup for {} failed: {}",
            h.name,
            failure_text(dns, h.name)
        ),
        (_, Tlsa::Failed { name }) => {
            format!("TLSA lookup for {name} failed: {}", failure_text(dns, name))
        }
        _ if no_address(h) => format!("{}: host has no address records", h.name),
        _ => panic!("{}: not a failed host", h.name),
    }
}

/// The JSON `danegate resolve` must print for `case`, and its exit status.
fn expected(lab: &DnsLab, dns: Dns, case: &Case) -> (Value, i32) {
    let d = case.domain;
    let dnssec = match dns {
        // The DNSKEY or DS anchor of the root KSK, completed to the root's
        // KSK and ZSK.
        Dns::Validate { .. } => "validated (trust anchors: 2 key(s) for .)",
        Dns::TrustAd { .. } => "validated (trust anchors: the resolver's own)",
    };
    let refused = |error: String| {
        json!({
            "domain": d, "policy": "dane", "dnssec": dnssec, "mx": null,
            "hosts": [], "skipped": [], "mta_sts": null, "error": error,
        })
    };
    let (source, mx_sec) = match case.mx {
        Mx::Failed => {
            let e = format!(
                "451 4.4.3 MX lookup for {d} failed: {}",
                failure_text(dns, d)
            );
            return (refused(e), 1);
        }
        Mx::NxDomain(_) => return (refused(format!("550 5.1.2 domain {d} does not exist")), 1),
        Mx::Null(_) => {
            let e = format!("556 5.1.10 domain {d} does not accept mail (null MX)");
            return (refused(e), 1);
        }
        Mx::Records(s) => ("mx", s),
        Mx::Implicit(s) => ("implicit-mx", s),
    };
    let (failed, usable): (Vec<&Host>, Vec<&Host>) = case
        .hosts
        .iter()
        .partition(|h| h.requirement == Requirement::Failed);
    let skipped: Vec<Value> = failed
        .iter()
        .map(|h| json!({"name": h.name, "reason": skip_reason(dns, h)}))
        .collect();
    if usable.is_empty() {
        let reasons: Vec<String> = failed.iter().map(|h| skip_reason(dns, h)).collect();
        // Every host definitely without an address: permanent, as Postfix
        // bounces it; any failed lookup makes it a deferral.
        let code = if failed.iter().all(|h| no_address(h)) {
            "550 5.4.4"
        } else {
            "451 4.4.3"
        };
        let mut v = refused(format!(
            "{code} no usable host for {d}: {}",
            reasons.join("; ")
        ));
        v["skipped"] = Value::Array(skipped);
        return (v, 1);
    }
    let hosts: Vec<Value> = usable.iter().map(|h| host_json(lab, h)).collect();
    let v = json!({
        "domain": d, "policy": "dane", "dnssec": dnssec,
        "mx": {"source": source, "security": sec(mx_sec)},
        "hosts": hosts, "skipped": skipped,
        // No lab zone publishes an _mta-sts record.
        "mta_sts": format!("none published by {d}"),
        "error": null,
    });
    (v, 0)
}

/// danegate's output with the orders that carry no meaning fixed:
/// addresses sorted (IPv6 or IPv4 first is not a rule), TLSA records
/// sorted (an RRset is a set). Host order is kept: every lab case has
/// distinct preferences.
fn normalized(mut v: Value) -> Value {
    if let Some(hosts) = v.get_mut("hosts").and_then(Value::as_array_mut) {
        for h in hosts {
            if let Some(a) = h.get_mut("addresses").and_then(Value::as_array_mut) {
                a.sort_by(|x, y| x.as_str().cmp(&y.as_str()));
            }
            if let Some(t) = h.get_mut("tlsa").and_then(Value::as_array_mut) {
                t.sort_by(|x, y| x["record"].as_str().cmp(&y["record"].as_str()));
            }
        }
    }
    v
}

/// Runs every case in mode `dns`; panics listing every case that differs.
fn check_every_case(dns: Dns) {
    let lab = DnsLab::shared();
    let config = gate::write_config(
        &lab,
        &format!("resolve-{}", dns.label()),
        &gate::config(&lab, gate::next_listen(), dns, "enforce", ""),
    );
    let mut wrong = Vec::new();
    for case in CASES {
        let (want, want_status) = expected(&lab, dns, case);
        let got = gate::resolve(&config, case.domain, &["--json"]);
        let json = normalized(got.json.clone());
        if json != want || got.status != Some(want_status) {
            wrong.push(format!(
                "{} ({}): exit {:?} (want {want_status}) after {:?}\n--- got:\n{}\n--- want:\n{}\n--- log:\n{}",
                case.domain,
                case.about,
                got.status,
                got.elapsed,
                serde_json::to_string_pretty(&got.json).unwrap_or_default(),
                serde_json::to_string_pretty(&want).unwrap_or_default(),
                got.log
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "danegate resolve ({}, config {}) differs from the table in {} of {} cases:\n\n{}",
        dns.label(),
        config.display(),
        wrong.len(),
        CASES.len(),
        wrong.join("\n\n")
    );
}

#[test]
#[ignore = "needs the integration lab: run integration/test-all"]
fn resolve_every_case_validate_dnskey_anchor() {
    check_every_case(Dns::Validate {
        via: VALIDATING,
        anchor: Anchor::Dnskey,
    });
}

#[test]
#[ignore = "needs the integration lab: run integration/test-all"]
fn resolve_every_case_validate_ds_anchor() {
    check_every_case(Dns::Validate {
        via: VALIDATING,
        anchor: Anchor::Ds,
    });
}

/// danegate's own validator decides: the resolver it forwards to passes
/// signatures through without judging them.
#[test]
#[ignore = "needs the integration lab: run integration/test-all"]
fn resolve_every_case_validate_behind_non_validating_resolver() {
    check_every_case(Dns::Validate {
        via: NON_VALIDATING,
        anchor: Anchor::Dnskey,
    });
}

#[test]
#[ignore = "needs the integration lab: run integration/test-all"]
fn resolve_every_case_trust_ad() {
    check_every_case(Dns::TrustAd { via: VALIDATING });
}

/// `[dns] families` restricts the addresses looked up: with IPv6 only,
/// mx2.secure.test (no AAAA) is skipped; with IPv4 only, mx1 loses ::1.
#[test]
#[ignore = "needs the integration lab: run integration/test-all"]
fn resolve_honours_address_families() {
    let lab = DnsLab::shared();
    let dns = Dns::Validate {
        via: VALIDATING,
        anchor: Anchor::Dnskey,
    };
    let base = gate::config(&lab, gate::next_listen(), dns, "enforce", "");
    for (family, mx1, mx2) in [
        ("ipv4", json!(["127.0.25.1"]), Some(json!(["127.0.25.2"]))),
        ("ipv6", json!(["::1"]), None),
    ] {
        let text = base.replace("[dns]\n", &format!("[dns]\nfamilies = \"{family}\"\n"));
        let config = gate::write_config(&lab, &format!("families-{family}"), &text);
        let got = gate::resolve(&config, "secure.test", &["--json"]);
        let j = &got.json;
        assert_eq!(got.status, Some(0), "{family}: {j:#}\n{}", got.log);
        assert_eq!(j["hosts"][0]["name"], "mx1.secure.test", "{family}: {j:#}");
        assert_eq!(j["hosts"][0]["addresses"], mx1, "{family}: {j:#}");
        match mx2 {
            Some(a) => {
                assert_eq!(j["hosts"][1]["addresses"], a, "{family}: {j:#}");
                assert_eq!(j["skipped"], json!([]), "{family}: {j:#}");
            }
            None => {
                assert_eq!(j["hosts"].as_array().map(Vec::len), Some(1), "{j:#}");
                assert_eq!(
                    j["skipped"],
                    json!([{"name": "mx2.secure.test",
                            "reason": "mx2.secure.test: host has no address records"}]),
                    "{family}: {j:#}"
                );
            }
        }
    }
}

/// The text form names the security of each answer, the TLSA records and
/// the requirement, and the reply for an undeliverable domain.
#[test]
#[ignore = "needs the integration lab: run integration/test-all"]
fn resolve_text_output_marks_every_answer() {
    let lab = DnsLab::shared();
    let dns = Dns::TrustAd { via: VALIDATING };
    let config = gate::write_config(
        &lab,
        "resolve-text",
        &gate::config(&lab, gate::next_listen(), dns, "enforce", ""),
    );
    let got = gate::resolve(&config, "unusable.test", &[]);
    let text = got.json.as_str().unwrap_or_default().to_string();
    assert_eq!(got.status, Some(0), "{text}\n{}", got.log);
    for line in [
        "domain unusable.test: policy dane; DNSSEC validated (trust anchors: the resolver's own)",
        "  next hops from mx (secure)",
        "  host mx.unusable.test port 25 preference 10: TLS required (no authentication)",
        "    addresses (secure): 127.0.25.9",
        "    TLSA at _25._tcp.mx.unusable.test (secure): all-unusable",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "no line {line:?} in:\n{text}"
        );
    }
    let unusable = text.lines().filter(|l| l.contains(" unusable: ")).count();
    assert_eq!(unusable, 3, "{text}");

    let got = gate::resolve(&config, "bogus.test", &[]);
    let text = got.json.as_str().unwrap_or_default().to_string();
    assert_eq!(got.status, Some(1), "{text}\n{}", got.log);
    assert!(
        text.lines().any(|l| l
            == "  cannot deliver: 451 4.4.3 MX lookup for bogus.test failed: DNSSEC validation failed (bogus)"),
        "{text}"
    );
}
