//! `danegate resolve DOMAIN --json` against every row of `cases::CASES`
//! (the zoo included), in each resolver mode: the whole plan must be what
//! dane-rules §1–2 make of the lab's DNS data, field by field (MX source
//! and security, hosts in preference order, every address with its own
//! security and requirement, CNAME target, TLSA status, base and records
//! with their usability, requirement, skipped hosts with their reasons, the
//! reply for an undeliverable domain) and the exit status (0 deliverable,
//! 1 deferred or rejected). Then every DNS lookup danegate reports making
//! is compared with the validating unbound's answer to the same question
//! (kdig: AD for secure, no AD for insecure, SERVFAIL for failed, the same
//! records): danegate and unbound agree RRset by RRset.
//!
//! The expected plan is built from the table, the TLSA records from what
//! kdig gets from the validating unbound (so the digests made this run are
//! compared, not copied), and the failure texts from the mode: `validate`
//! asks its upstream with the CD bit and says why data is bogus (the DS
//! naming no DNSKEY, the expired RRSIG with its date, the signature that
//! does not verify); `trust-ad` passes unbound's Extended DNS Error on
//! (its code and text vary with unbound's cache, so only "EDE" is
//! compared).

use serde_json::{json, Value};

use crate::gate::{self, Anchor, Dns};
use crate::lab::*;

/// The lab zone `name` lies in.
fn zone_of(name: &str) -> &'static Zone {
    let fqdn = format!("{name}.");
    ZONES
        .iter()
        .filter(|z| z.name == fqdn || z.name == "." || fqdn.ends_with(&format!(".{}", z.name)))
        .max_by_key(|z| z.name.len())
        .unwrap_or_else(|| panic!("{name} is in no lab zone"))
}

/// The expiry of the RRSIG over `name`/`rtype`, as danegate writes it
/// (`2026-11-29 12:07:25 UTC`), from the authoritative server.
fn rrsig_expiry(name: &str, rtype: &str) -> String {
    let zone = zone_of(name);
    let a = crate::dig::query(zone.server.addr(), name, rtype, Ask::AUTHORITATIVE);
    let sig = a
        .answer
        .iter()
        .find(|r| r.rtype == "RRSIG" && r.data.starts_with(&format!("{rtype} ")))
        .unwrap_or_else(|| panic!("no RRSIG over {name} {rtype}:\n{}", a.text));
    let t = sig.data.split_whitespace().nth(4).unwrap_or_default();
    assert_eq!(t.len(), 14, "RRSIG expiration {t:?} in {}", sig.data);
    format!(
        "{}-{}-{} {}:{}:{} UTC",
        &t[0..4],
        &t[4..6],
        &t[6..8],
        &t[8..10],
        &t[10..12],
        &t[12..14]
    )
}

/// The text danegate gives for a failed lookup of `name`/`rtype` in mode
/// `dns`.
fn failure_text(lab: &DnsLab, dns: Dns, name: &str, rtype: &str) -> String {
    let zone = zone_of(name);
    let zname = zone.name.trim_end_matches('.');
    if !zone.signing.is_bogus() {
        // A dead delegation: SERVFAIL in about 2 s, in every mode.
        return "server failure (SERVFAIL)".to_owned();
    }
    if let Dns::TrustAd { .. } = dns {
        return "DNSSEC validation failed: EDE".to_owned();
    }
    let tags = |v: Vec<u16>| {
        let v: Vec<String> = v.iter().map(u16::to_string).collect();
        v.join(", ")
    };
    match zone.signing {
        Signing::CskWrongDs => format!(
            "DNSSEC validation failed: DS for {zname} names no DNSKEY (DS key tag {}; DNSKEY key tag {})",
            lab.ds_key_tag(zname),
            tags(lab.key_tags(zname))
        ),
        Signing::Presigned(_, _, crate::zones::Fault::Expired) => format!(
            "DNSSEC validation failed: RRSIG of {name} {rtype} expired {}",
            rrsig_expiry(name, rtype)
        ),
        Signing::Presigned(_, _, crate::zones::Fault::TlsaSignature) => format!(
            "DNSSEC validation failed: RRSIG of {name} {rtype} by key {} of {zname} does not verify",
            tags(lab.key_tags(zname))
        ),
        other => panic!("{name}: no failure text for {other:?}"),
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

fn requirement(r: Requirement) -> &'static str {
    match r {
        Requirement::DaneRequired => "DANE required",
        Requirement::TlsRequired => "TLS required (no authentication)",
        Requirement::NoDane => "opportunistic TLS",
        Requirement::Failed => panic!("a failed host has no plan entry"),
    }
}

/// Every address of `h` with its own security and requirement: the host's
/// requirement where DANE applies (a secure RRset, or a secure CNAME),
/// opportunistic TLS elsewhere (dane-rules §2 per address).
fn addresses_json(h: &Host) -> Vec<Value> {
    let Lookup::Answered(a_sec) = h.addrs else {
        panic!("{}: a failed host has no plan entry", h.name);
    };
    let aaaa_sec = match h.aaaa.unwrap_or(h.addrs) {
        Lookup::Answered(s) => s,
        Lookup::Failed => a_sec,
    };
    let cname_secure = h.cname.is_some() && a_sec == Sec::Secure;
    let one = |ip: &str, s: Sec| {
        let dane = s == Sec::Secure || cname_secure;
        json!({
            "address": ip,
            "security": sec(s),
            "requirement": if dane { requirement(h.requirement) } else { "opportunistic TLS" },
        })
    };
    let mut v: Vec<Value> = h
        .ipv6
        .iter()
        .map(|ip| one(ip, aaaa_sec))
        .chain(h.ipv4.iter().map(|ip| one(ip, a_sec)))
        .collect();
    v.sort_by(|x, y| x["address"].as_str().cmp(&y["address"].as_str()));
    v
}

fn host_json(lab: &DnsLab, h: &Host) -> Value {
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
    let cname_secure = h.addrs == Lookup::Answered(Sec::Secure);
    json!({
        "name": h.name,
        "port": 25,
        "preference": h.preference,
        "addresses": addresses_json(h),
        "cname": h.cname.map(|t| json!({"target": t, "secure": cname_secure})),
        "tlsa_status": status,
        "tlsa_base": base,
        "tlsa": tlsa,
        "requirement": requirement(h.requirement),
        "mta_sts": "none",
    })
}

/// A host whose address lookups answered, with no records.
fn no_address(h: &Host) -> bool {
    matches!(h.addrs, Lookup::Answered(_)) && h.ipv4.is_empty() && h.ipv6.is_empty()
}

/// Why a failed host is skipped. Addresses: AAAA is asked first, then A;
/// when both fail the A failure is the one reported.
fn skip_reason(lab: &DnsLab, dns: Dns, h: &Host) -> String {
    match (h.addrs, h.tlsa) {
        (Lookup::Failed, _) => format!(
            "A lookup for {} failed: {}",
            h.name,
            failure_text(lab, dns, h.name, "A")
        ),
        (_, Tlsa::Failed { name }) => format!(
            "TLSA lookup for {name} failed: {}",
            failure_text(lab, dns, name, "TLSA")
        ),
        _ if no_address(h) => format!("{}: host has no address records", h.name),
        _ => panic!("{}: not a failed host", h.name),
    }
}

/// The JSON `danegate resolve` must print for `case` (its `lookups`
/// aside, which are compared with unbound), and its exit status.
fn expected(lab: &DnsLab, dns: Dns, case: &Case) -> (Value, i32) {
    let d = case.domain;
    let dnssec = match dns {
        // The DNSKEY or DS anchor of the root KSK, completed to the root's
        // KSK and ZSK.
        Dns::Validate { .. } => "validated (trust anchors: 2 key(s) for .)",
        Dns::TrustAd { .. } => "validated (trust anchors: the resolver's own)",
    };
    let unicode = if d == "xn--bcher-kva.test" {
        "bücher.test"
    } else {
        d
    };
    let mut v = json!({
        "domain": d, "ascii": d, "unicode": unicode, "policy": "dane", "dnssec": dnssec,
        "mx": null, "hosts": [], "skipped": [], "mta_sts": null, "error": null,
    });
    let (source, mx_sec) = match case.mx {
        Mx::Failed => {
            v["error"] = json!(format!(
                "451 4.4.3 MX lookup for {d} failed: {}",
                failure_text(lab, dns, d, "MX")
            ));
            return (v, 1);
        }
        Mx::NxDomain(_) => {
            v["error"] = json!(format!("550 5.1.2 domain {d} does not exist"));
            return (v, 1);
        }
        Mx::Null(_) => {
            v["error"] = json!(format!(
                "556 5.1.10 domain {d} does not accept mail (null MX)"
            ));
            return (v, 1);
        }
        Mx::Records(s) => ("mx", s),
        Mx::Implicit(s) => ("implicit-mx", s),
    };
    // The MX RRset's security is reported whether or not a host is usable.
    v["mx"] = json!({"source": source, "security": sec(mx_sec)});
    let (failed, usable): (Vec<&Host>, Vec<&Host>) = case
        .hosts
        .iter()
        .partition(|h| h.requirement == Requirement::Failed);
    let reasons: Vec<String> = failed.iter().map(|h| skip_reason(lab, dns, h)).collect();
    v["skipped"] = failed
        .iter()
        .zip(&reasons)
        .map(|(h, r)| json!({"name": h.name, "reason": r}))
        .collect();
    if usable.is_empty() {
        // Every host definitely without an address: permanent, as Postfix
        // bounces it; any failed lookup makes it a deferral.
        let code = if failed.iter().all(|h| no_address(h)) {
            "550 5.4.4"
        } else {
            "451 4.4.3"
        };
        v["error"] = json!(format!(
            "{code} no usable host for {d}: {}",
            reasons.join("; ")
        ));
        return (v, 1);
    }
    v["hosts"] = usable.iter().map(|h| host_json(lab, h)).collect();
    // No lab zone publishes an _mta-sts record.
    v["mta_sts"] = json!(format!("none published by {d}"));
    (v, 0)
}

/// `text` with every Extended DNS Error after "DNSSEC validation failed: "
/// cut to "EDE" (unbound's code and text depend on its cache).
fn without_ede_text(text: &str) -> String {
    let marker = "DNSSEC validation failed: EDE";
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find(marker) {
        out.push_str(&rest[..at + marker.len()]);
        rest = &rest[at + marker.len()..];
        // The EDE text runs to the next problem ("; ") or the end.
        rest = rest.find("; ").map_or("", |end| &rest[end..]);
    }
    out.push_str(rest);
    out
}

/// danegate's output with the orders that carry no meaning fixed
/// (addresses and TLSA records sorted), EDE texts cut (see
/// [`without_ede_text`]), and `lookups` taken out.
fn normalized(mut v: Value) -> (Value, Value) {
    let lookups = v
        .as_object_mut()
        .and_then(|o| o.remove("lookups"))
        .unwrap_or(Value::Null);
    if let Some(hosts) = v.get_mut("hosts").and_then(Value::as_array_mut) {
        for h in hosts {
            if let Some(a) = h.get_mut("addresses").and_then(Value::as_array_mut) {
                a.sort_by(|x, y| x["address"].as_str().cmp(&y["address"].as_str()));
            }
            if let Some(t) = h.get_mut("tlsa").and_then(Value::as_array_mut) {
                t.sort_by(|x, y| x["record"].as_str().cmp(&y["record"].as_str()));
            }
        }
    }
    if let Some(e) = v.get("error").and_then(Value::as_str) {
        v["error"] = json!(without_ede_text(e));
    }
    if let Some(skipped) = v.get_mut("skipped").and_then(Value::as_array_mut) {
        for s in skipped {
            if let Some(r) = s.get("reason").and_then(Value::as_str) {
                s["reason"] = json!(without_ede_text(r));
            }
        }
    }
    (v, lookups)
}

/// Each lookup danegate made, against the validating unbound's answer to
/// the same question; the differences.
fn lookups_against_unbound(lab: &DnsLab, lookups: &Value) -> Vec<String> {
    let mut wrong = Vec::new();
    let list = lookups.as_array().cloned().unwrap_or_default();
    if list.is_empty() {
        wrong.push("no lookups reported".to_owned());
    }
    for l in list {
        let name = l["name"].as_str().unwrap_or_default();
        let rtype = l["type"].as_str().unwrap_or_default();
        let result = l["result"].as_str().unwrap_or_default();
        let a = lab.resolve(name, rtype);
        let want_rcode = match result {
            "nxdomain" => "NXDOMAIN",
            "failed" => "SERVFAIL",
            _ => "NOERROR",
        };
        let secure = l["security"] == "secure";
        let mut unbound: Vec<String> = match rtype {
            "TLSA" => crate::tlsa_norm(&a.data("TLSA")),
            // names without their final dot, but the root ("0 .") itself
            _ => a
                .data(rtype)
                .iter()
                .map(|r| match r.strip_suffix('.') {
                    Some(t) if !t.ends_with(' ') => t.to_owned(),
                    _ => r.clone(),
                })
                .collect(),
        };
        unbound.sort();
        let mut ours: Vec<String> = l["records"]
            .as_array()
            .map(|r| {
                r.iter()
                    .filter_map(|x| x.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        ours.sort();
        let agrees = a.rcode == want_rcode
            && (result == "failed" || a.ad == secure)
            && (result == "failed" || ours == unbound);
        if !agrees {
            wrong.push(format!(
                "{rtype} {name}: danegate {result} {} {ours:?}, unbound {} AD={} {unbound:?}",
                l["security"], a.rcode, a.ad
            ));
        }
    }
    wrong
}

/// Runs every case in mode `dns`; panics listing every case that differs.
fn check_every_case(dns: Dns) {
    let lab = DnsLab::shared();
    let config = gate::write_config(
        &lab,
        &format!("resolve-{}", dns.label()),
        &gate::config(&lab, gate::NOT_LISTENING, dns, "enforce", ""),
    );
    let mut wrong = Vec::new();
    for case in CASES {
        let (want, want_status) = expected(&lab, dns, case);
        let got = gate::resolve(&config, case.domain, &["--json"]);
        let (json, lookups) = normalized(got.json.clone());
        let unbound = lookups_against_unbound(&lab, &lookups);
        if json != want || got.status != Some(want_status) || !unbound.is_empty() {
            wrong.push(format!(
                "{} ({}): exit {:?} (want {want_status}) after {:?}\n--- lookups unbound disagrees with: {unbound:#?}\n--- got:\n{}\n--- want:\n{}\n--- log:\n{}",
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

/// The zoo, verdict by verdict: unbound's (kdig AD/SERVFAIL on the MX
/// question), danegate's in `validate` and in `trust-ad` mode (the MX
/// RRset's security, or the failure, and each host's requirement), next to
/// the RFC expectation of the row. Printed as a table; any disagreement
/// among the three fails.
#[test]
#[ignore = "needs the integration lab: run integration/test-all"]
fn zoo_verdicts_agree_with_unbound() {
    let lab = DnsLab::shared();
    let modes = [
        Dns::Validate {
            via: VALIDATING,
            anchor: Anchor::Ds,
        },
        Dns::TrustAd { via: VALIDATING },
    ];
    let configs: Vec<_> = modes
        .iter()
        .map(|dns| {
            gate::write_config(
                &lab,
                &format!("zoo-{}", dns.label()),
                &gate::config(&lab, gate::NOT_LISTENING, *dns, "enforce", ""),
            )
        })
        .collect();
    let mut table = vec![
        "| domain | unbound (MX) | validate | trust-ad | RFC expectation |".to_owned(),
        "|---|---|---|---|---|".to_owned(),
    ];
    let mut wrong = Vec::new();
    for domain in ZOO {
        let case = Case::get(domain);
        let mx = lab.resolve(domain, "MX");
        let unbound = match (mx.rcode.as_str(), mx.ad) {
            ("SERVFAIL", _) => "failed".to_owned(),
            (rcode, ad) => format!("{rcode} {}", if ad { "secure" } else { "insecure" }),
        };
        let verdicts: Vec<String> = configs
            .iter()
            .map(|c| verdict(&gate::resolve(c, domain, &["--json"]).json))
            .collect();
        if verdicts[0] != verdicts[1] {
            wrong.push(format!(
                "{domain}: validate {} but trust-ad {}",
                verdicts[0], verdicts[1]
            ));
        }
        let unbound = format!("MX {unbound}");
        let mx_verdict = verdicts[0].split(';').next().unwrap_or_default();
        if mx_verdict != unbound {
            wrong.push(format!(
                "{domain}: unbound {unbound}, danegate {}",
                verdicts[0]
            ));
        }
        table.push(format!(
            "| {domain} | {unbound} | {} | {} | {} |",
            verdicts[0], verdicts[1], case.rfc
        ));
    }
    eprintln!("{}", table.join("\n"));
    assert!(wrong.is_empty(), "{wrong:#?}\n{}", table.join("\n"));
}

/// "MX secure; mx.example: DANE required", "MX failed", ...: a plan's
/// verdict in a few words, the MX RRset's security first.
fn verdict(v: &Value) -> String {
    let mx = match &v["mx"] {
        Value::Null if v["error"].as_str().is_some_and(|e| e.contains("MX lookup")) => {
            "MX failed".to_owned()
        }
        Value::Null => {
            // NXDOMAIN or null MX: the lookup's own outcome and security.
            let l = &v["lookups"][0];
            let rcode = match l["result"].as_str() {
                Some("nxdomain") => "NXDOMAIN",
                Some("failed") => "failed",
                _ => "NOERROR",
            };
            format!("MX {rcode} {}", l["security"].as_str().unwrap_or_default())
        }
        mx => format!("MX NOERROR {}", mx["security"].as_str().unwrap_or_default()),
    };
    let hosts: Vec<String> = v["hosts"]
        .as_array()
        .map(|hs| {
            hs.iter()
                .map(|h| {
                    format!(
                        "{}: {}",
                        h["name"].as_str().unwrap_or_default(),
                        h["requirement"].as_str().unwrap_or_default()
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let skipped: Vec<String> = v["skipped"]
        .as_array()
        .map(|s| {
            s.iter()
                .map(|x| format!("{}: skipped", x["name"].as_str().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    [vec![mx], hosts, skipped].concat().join("; ")
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
    let base = gate::config(&lab, gate::NOT_LISTENING, dns, "enforce", "");
    let dane =
        |ip: &str| json!([{"address": ip, "security": "secure", "requirement": "DANE required"}]);
    for (family, mx1, mx2) in [
        ("ipv4", dane("127.0.25.1"), Some(dane("127.0.25.2"))),
        ("ipv6", dane("::1"), None),
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
/// the requirement, the reply for an undeliverable domain, and every
/// lookup with its security.
#[test]
#[ignore = "needs the integration lab: run integration/test-all"]
fn resolve_text_output_marks_every_answer() {
    let lab = DnsLab::shared();
    let dns = Dns::TrustAd { via: VALIDATING };
    let config = gate::write_config(
        &lab,
        "resolve-text",
        &gate::config(&lab, gate::NOT_LISTENING, dns, "enforce", ""),
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
        "  DNS lookups:",
        "    MX unusable.test: records (secure): 10 mx.unusable.test",
        "    AAAA mx.unusable.test: nodata (secure)",
        "    A mx.unusable.test: records (secure): 127.0.25.9",
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
    let line = text
        .lines()
        .find(|l| l.starts_with("  cannot deliver: "))
        .unwrap_or_default();
    assert!(
        line.starts_with("  cannot deliver: 451 4.4.3 MX lookup for bogus.test failed: DNSSEC validation failed: EDE "),
        "{text}"
    );
    // An internationalised domain shows both forms.
    let got = gate::resolve(&config, "bücher.test", &[]);
    let text = got.json.as_str().unwrap_or_default().to_string();
    assert_eq!(got.status, Some(0), "{text}\n{}", got.log);
    assert!(
        text.starts_with("domain bücher.test (xn--bcher-kva.test): policy dane;"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l == "    MX xn--bcher-kva.test: records (secure): 10 mx.xn--bcher-kva.test"),
        "{text}"
    );
}

/// IDN: the U-label and the A-label form plan the same; a domain that is
/// no domain name gets the permanent reply with the reason.
#[test]
#[ignore = "needs the integration lab: run integration/test-all"]
fn resolve_internationalised_domains() {
    let lab = DnsLab::shared();
    let dns = Dns::Validate {
        via: VALIDATING,
        anchor: Anchor::Ds,
    };
    let config = gate::write_config(
        &lab,
        "resolve-idn",
        &gate::config(&lab, gate::NOT_LISTENING, dns, "enforce", ""),
    );
    let (want, _) = expected(&lab, dns, Case::get("xn--bcher-kva.test"));
    for written in ["bücher.test", "BÜCHER.test", "xn--bcher-kva.test"] {
        let got = gate::resolve(&config, written, &["--json"]);
        let (mut json, _) = normalized(got.json.clone());
        assert_eq!(got.status, Some(0), "{written}: {json:#}\n{}", got.log);
        assert_eq!(json["ascii"], "xn--bcher-kva.test", "{written}");
        assert_eq!(json["unicode"], "bücher.test", "{written}");
        json["domain"] = want["domain"].clone();
        assert_eq!(json, want, "{written}");
    }
    let got = gate::resolve(&config, "bü_cher.test", &["--json"]);
    assert_eq!(got.status, Some(1), "{:#}", got.json);
    assert_eq!(
        got.json["error"],
        "553 5.1.2 recipient domain bü_cher.test is not a valid domain name: label bü_cher: _ (U+005F) is not allowed in a domain name"
    );
    assert_eq!(
        got.json["lookups"],
        json!([]),
        "no DNS question for a bad name"
    );
}
