//! TLS interoperability (issue 12): danegate against real Postfix
//! receivers with the TLS settings mail servers have in the wild, compared
//! with a Postfix 3.7 DANE relay on the same receivers.
//!
//! ```text
//!   test ─▶ legacy Postfix 127.0.53.26 ─▶ danegate (enforce, validate) ─┐
//!   test ─▶ Postfix DANE relay 127.0.53.27 (from 127.0.53.28) ──────────┤
//!                                                                       ▼
//!        one Postfix receiver instance, one smtpd per row of RECEIVERS on
//!        127.0.25.1xx:25, each with its own `-o` TLS settings and certificate
//! ```
//!
//! Every receiver has a secure MX in the signed zone `interop.test.` (made
//! from `interop_cases::DOMAINS`): `dane-NAME.interop.test` with a
//! TLSA record that matches (DANE required), `notlsa-NAME.interop.test`
//! with none (opportunistic TLS), and a few more: a TLSA record that names
//! another key (mismatch), and a receiver that presents a certificate whose
//! key it does not hold (replay). The same message goes through both
//! relays to every domain; for each, the test compares the outcome (sent
//! or deferred), how the relay says the connection was protected
//! (Verified, Untrusted, Anonymous, plaintext) and the TLS protocol and
//! cipher the receiver itself wrote into its `Received:` header.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use crate::dane::{message, start_gate};
use crate::gate::{self, Running};
use crate::interop_cases::*;
use crate::lab::*;
use crate::postfix::{Options, Postfix, Role, LEGACY_DOMAIN};
use crate::util;

/// Where the legacy Postfix (→ danegate) listens.
const LEGACY_SMTPD: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(127, 0, 53, 26), 25));
/// Where the Postfix DANE relay listens, and the address it connects from.
const REFERENCE_SMTPD: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(127, 0, 53, 27), 25));
const REFERENCE_BIND: Ipv4Addr = Ipv4Addr::new(127, 0, 53, 28);
/// The receiver instance's own (plain default) smtpd.
const RECEIVER_MAIN: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(127, 0, 25, 100), 25));

/// The receiver instance: a plain smtpd of its own, plus one per
/// [`RECEIVERS`] row with its certificate and TLS overrides; mailboxes
/// `user@` every interop domain. Started.
fn receivers(scratch: &util::Lab, lab: &DnsLab) -> Postfix {
    let mut p = Postfix::create(
        scratch,
        Options {
            name: "interop-receivers".into(),
            hostname: "mx.interop.test".into(),
            smtpd: RECEIVER_MAIN,
            role: Role::Receiver,
            domains: DOMAINS.iter().map(Domain::name).collect(),
            mailboxes: DOMAINS.iter().map(Domain::rcpt).collect(),
            rejects: Vec::new(),
        },
    );
    for r in RECEIVERS {
        let cert = lab.cert(&r.cert_name());
        let mut o = vec![format!(
            "smtpd_tls_chain_files={},{}",
            cert.key_pem.display(),
            cert.chain_pem.display()
        )];
        o.extend(r.overrides.iter().map(|s| s.to_string()));
        p.add_smtpd(r.addr(), &o);
    }
    p.start();
    p
}

/// The Postfix DANE relay, resolving through the lab's validating unbound.
fn reference(scratch: &util::Lab) -> Postfix {
    let mut p = Postfix::create(
        scratch,
        Options {
            name: "postfix-dane-relay".into(),
            hostname: "postfix-relay.lab.test".into(),
            smtpd: REFERENCE_SMTPD,
            role: Role::DaneRelay {
                resolver: VALIDATING.ip(),
                bind: REFERENCE_BIND.into(),
            },
            domains: vec![LEGACY_DOMAIN.into()],
            mailboxes: vec![format!("sender@{LEGACY_DOMAIN}")],
            rejects: Vec::new(),
        },
    );
    p.start();
    p
}

/// What one relay did for one domain.
#[derive(Debug, Clone)]
struct Seen {
    outcome: Outcome,
    /// Protocol and cipher from the receiver's `Received:` header.
    receiver_tls: Option<(String, String)>,
    /// The relay's own words: its TLS state, or its deferral.
    relay_says: String,
}

impl Seen {
    fn cell(&self) -> String {
        let tls = self
            .receiver_tls
            .as_ref()
            .map(|(p, c)| format!(" {p} {c}"))
            .unwrap_or_default();
        match self.outcome {
            Outcome::Deferred => format!("deferred: {}", self.relay_says),
            o => format!("{o:?}{tls} ({})", self.relay_says),
        }
    }
}

/// `(using TLSv1.2 with cipher ECDHE-RSA-AES256-SHA (256/256 bits))`
/// from the `Received:` header the receiver added to the message with
/// Message-ID `id`.
fn received_tls(rx: &Postfix, rcpt: &str, id: &str) -> Option<Option<(String, String)>> {
    let want = format!("Message-ID: <{id}@lab.test>");
    let msg = rx
        .messages(rcpt)
        .into_iter()
        .map(|m| String::from_utf8_lossy(&m).into_owned())
        .find(|m| m.contains(&want))?;
    let head = msg.split("\n\n").next().unwrap_or("");
    let tls = head.split("(using ").nth(1).and_then(|rest| {
        let mut w = rest.split_whitespace();
        let protocol = w.next()?.to_string();
        let (with, cipher) = (w.next()?, w.next()?);
        let cipher = w.next().filter(|_| with == "with" && cipher == "cipher")?;
        Some((protocol, cipher.to_string()))
    });
    Some(tls)
}

/// The value of `name=` in a danegate log line: up to the next space, or
/// quoted when it holds spaces.
fn field(line: &str, name: &str) -> Option<String> {
    let rest = line.split(&format!(" {name}=")).nth(1)?;
    match rest.strip_prefix('"') {
        Some(quoted) => quoted.split('"').next().map(str::to_owned),
        None => rest.split(' ').next().map(str::to_owned),
    }
}

/// danegate's view: its summary line for the recipient: the delivery,
/// or the second deferral (a retry met the same verdict).
fn danegate_seen(gate: &Running, rx: &Postfix, d: &Domain) -> Option<Seen> {
    let to = format!("to=<{}>", d.rcpt());
    let log = gate::strip_ansi(&gate.log());
    let mine: Vec<&str> = log.lines().filter(|l| l.contains(&to)).collect();
    let delivered = mine.iter().find(|l| l.contains(" delivered "));
    let Some(line) = delivered else {
        let deferred: Vec<&&str> = mine.iter().filter(|l| l.contains(" deferred ")).collect();
        let line = deferred.get(1)?;
        let says = field(line, "status").unwrap_or_else(|| line.to_string());
        return Some(Seen {
            outcome: Outcome::Deferred,
            receiver_tls: None,
            relay_says: says,
        });
    };
    let tls = field(line, "tls").unwrap_or_else(|| "?".into());
    let receiver_tls = received_tls(rx, &d.rcpt(), &format!("dg-{}", d.label))?;
    // `verified(dane) ...`: the word before the mechanism.
    let word = tls.split([' ', '(']).next();
    let outcome = match word {
        Some("verified") => Outcome::Verified,
        Some("untrusted") => Outcome::Untrusted,
        Some("anonymous") => Outcome::Anonymous,
        Some("none") => Outcome::Plaintext,
        _ => panic!("unexpected tls= in {line}"),
    };
    Some(Seen {
        outcome,
        receiver_tls,
        relay_says: format!("tls={tls}"),
    })
}

/// The Postfix DANE relay's view: its delivery, or its second deferral
/// (Postfix falls back to plaintext after a failed opportunistic
/// handshake only on a retry), and its TLS connection line for the MX host.
fn reference_seen(pf: &Postfix, rx: &Postfix, d: &Domain) -> Option<Seen> {
    let statuses = pf.statuses(&d.rcpt());
    let sent = statuses.iter().find(|l| l.contains("status=sent"));
    if sent.is_none() {
        let status = statuses
            .iter()
            .filter(|l| l.contains("status=deferred"))
            .nth(1)?;
        let says = status.split("status=deferred ").nth(1).unwrap_or(status);
        return Some(Seen {
            outcome: Outcome::Deferred,
            receiver_tls: None,
            relay_says: says.to_string(),
        });
    }
    let receiver_tls = received_tls(rx, &d.rcpt(), &format!("pf-{}", d.label))?;
    let log = pf.maillog();
    let established = format!("TLS connection established to {}[", d.mx());
    let line = log.lines().rfind(|l| l.contains(&established));
    let (outcome, says) = match line {
        None => (Outcome::Plaintext, "no TLS".to_string()),
        Some(l) => {
            let word = l
                .split(&established)
                .next()
                .and_then(|h| h.split_whitespace().last())
                .unwrap_or("?");
            let outcome = match word {
                "Verified" | "Trusted" => Outcome::Verified,
                "Untrusted" => Outcome::Untrusted,
                "Anonymous" => Outcome::Anonymous,
                other => panic!("unexpected Postfix TLS word {other} in {l}"),
            };
            let rest = l.split("]:25: ").nth(1).unwrap_or("");
            (outcome, format!("{word}: {rest}"))
        }
    };
    Some(Seen {
        outcome,
        receiver_tls,
        relay_says: says,
    })
}

/// Whether danegate's outcome is what the reference's requires: the same
/// verdict; an unauthenticated TLS connection counts as one whether its
/// suite was anonymous or not (both are Postfix's `may`).
fn same_protection(reference: Outcome, danegate: Outcome) -> bool {
    use Outcome::*;
    match reference {
        Untrusted | Anonymous => matches!(danegate, Untrusted | Anonymous),
        r => r == danegate,
    }
}

/// Where danegate serves its metrics in this test.
const METRICS: &str = "127.0.53.29:9425";

/// Where the receiver's cipher may differ from the reference's, and why.
const CIPHER_MAY_DIFFER: &[(&str, &str)] = &[(
    "notlsa-tls11",
    "the reference's OpenSSL runs at Debian's security level 2, which forbids the SHA-1 signatures TLS 1.1 needs, so only an anonymous suite is left to it; danegate's opportunistic legacy engine runs at level 0 and gets an authenticated suite",
)];

/// Both relays' verdicts for every domain (`(reference, danegate)`),
/// flushing both queues while waiting.
fn verdicts(
    pf: &Postfix,
    legacy: &Postfix,
    danegate: &Running,
    rx: &Postfix,
) -> BTreeMap<&'static str, (Seen, Seen)> {
    let mut seen: BTreeMap<&str, (Option<Seen>, Option<Seen>)> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut flushed = Instant::now();
    loop {
        for d in DOMAINS {
            let e = seen.entry(d.label).or_default();
            if e.0.is_none() {
                e.0 = reference_seen(pf, rx, d);
            }
            if e.1.is_none() {
                e.1 = danegate_seen(danegate, rx, d);
            }
        }
        let missing: Vec<&str> = seen
            .iter()
            .filter(|(_, (a, b))| a.is_none() || b.is_none())
            .map(|(l, _)| *l)
            .collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no verdict within 120 s for {missing:?}\ndanegate log:\n{}\nPostfix relay log:\n{}",
            util::tail(&danegate.log(), 80),
            util::tail(&pf.maillog(), 80)
        );
        if flushed.elapsed() > Duration::from_secs(3) {
            legacy.flush();
            pf.flush();
            flushed = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    seen.into_iter()
        .map(|(l, (r, g))| (l, (r.expect("seen"), g.expect("seen"))))
        .collect()
}

/// The comparison as a markdown table.
fn table(seen: &BTreeMap<&str, (Seen, Seen)>) -> String {
    let mut t = String::from(
        "| domain | receiver | TLSA | Postfix DANE relay | danegate |\n|---|---|---|---|---|\n",
    );
    for d in DOMAINS {
        let (r, g) = &seen[d.label];
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} | {} |",
            d.label,
            d.receiver().about,
            d.record.map_or("none".into(), |r| format!("{r:?}")),
            r.cell(),
            g.cell()
        );
    }
    t
}

/// Everything that differs from the table or from the reference.
fn differences(seen: &BTreeMap<&str, (Seen, Seen)>, rx: &Postfix) -> Vec<String> {
    let mut wrong = Vec::new();
    for d in DOMAINS {
        let (r, g) = &seen[d.label];
        let proto = |s: &Seen| s.receiver_tls.as_ref().map(|(p, _)| p.clone());
        let cipher = |s: &Seen| s.receiver_tls.as_ref().map(|(_, c)| c.clone());
        if r.outcome != d.reference || proto(r).as_deref() != d.protocol {
            wrong.push(format!(
                "{}: the Postfix DANE relay did {}, the table says {:?} {:?}",
                d.label,
                r.cell(),
                d.reference,
                d.protocol
            ));
        }
        let cipher_may_differ = CIPHER_MAY_DIFFER.iter().any(|(l, _)| *l == d.label);
        if !same_protection(r.outcome, g.outcome)
            || proto(g) != proto(r)
            || (!cipher_may_differ && cipher(g) != cipher(r))
        {
            wrong.push(format!(
                "{}: danegate did {}, the Postfix DANE relay {}",
                d.label,
                g.cell(),
                r.cell()
            ));
        }
        let legacy_used = g.relay_says.contains(" legacy ");
        let encrypted = !matches!(g.outcome, Outcome::Deferred | Outcome::Plaintext);
        if encrypted && legacy_used != d.legacy {
            wrong.push(format!(
                "{}: danegate's legacy TLS engine used: {legacy_used}, the table says {}: {}",
                d.label,
                d.legacy,
                g.cell()
            ));
        }
        if let Some(why) = d.deferral {
            if !g.relay_says.contains(why) {
                wrong.push(format!(
                    "{}: danegate's deferral does not say {why:?}: {}",
                    d.label,
                    g.cell()
                ));
            }
        }
        // A refusal is a refusal: the receiver never got that message.
        if g.outcome == Outcome::Deferred
            && received_tls(rx, &d.rcpt(), &format!("dg-{}", d.label)).is_some()
        {
            wrong.push(format!("{}: deferred, yet delivered", d.label));
        }
    }
    wrong
}

/// danegate's metrics text.
fn metrics_text() -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(METRICS).expect("danegate metrics listen");
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n\r\n")
        .expect("metrics request");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// The value of one sample line of the metrics text, 0 when absent.
fn sample(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0)
}

/// `danegate check` says which engine each address needed and why.
fn check_names_the_engine(lab: &DnsLab) {
    use crate::check::{check_config, run_check};
    let config = check_config(lab, "check-interop");
    let c = run_check(&config, "dane-cbc.interop.test", true);
    let a = c.address("mx.dane-cbc.interop.test", "127.0.25.109");
    assert_eq!(c.status, Some(0), "{}", c.context());
    assert_eq!(a["tls"]["engine"], "legacy", "{}", c.context());
    assert_eq!(a["tls"]["authentication"], "Verified", "{}", c.context());
    assert_eq!(a["tls"]["protocol"], "TLSv1.2", "{}", c.context());
    assert_eq!(
        a["tls"]["cipher"],
        "ECDHE-RSA-AES256-SHA",
        "{}",
        c.context()
    );
    assert_eq!(
        a["tls"]["primary_engine_failure"],
        "no TLS version or cipher suite in common with the server (the primary engine offers TLSv1.2 and TLSv1.3 with ECDHE and AEAD suites only)",
        "{}",
        c.context()
    );
    assert_eq!(a["dane"]["verified"], true, "{}", c.context());
    let c = run_check(&config, "dane-p521.interop.test", true);
    let a = c.address("mx.dane-p521.interop.test", "127.0.25.111");
    assert_eq!(c.status, Some(0), "{}", c.context());
    assert_eq!(a["tls"]["engine"], "legacy", "{}", c.context());
    assert_eq!(a["tls"]["protocol"], "TLSv1.3", "{}", c.context());
    let c = run_check(&config, "dane-tls13-p256.interop.test", true);
    let a = c.address("mx.dane-tls13-p256.interop.test", "127.0.25.101");
    assert_eq!(c.status, Some(0), "{}", c.context());
    assert_eq!(a["tls"]["engine"], "rustls", "{}", c.context());
    assert_eq!(a["tls"]["primary_engine_failure"], serde_json::Value::Null);
    let c = run_check(&config, "dane-tls11.interop.test", true);
    let a = c.address("mx.dane-tls11.interop.test", "127.0.25.108");
    assert_eq!(c.status, Some(1), "{}", c.context());
    assert_eq!(
        a["error"],
        "TLS handshake failed: no TLS version in common with the server (it offers none of TLSv1.2 to TLSv1.3; [tls] min_version where TLS is required)",
        "{}",
        c.context()
    );
    let text = run_check(&config, "dane-cbc.interop.test", false);
    assert!(
        text.stdout_text().contains("      needs the legacy TLS engine (OpenSSL): rustls: no TLS version or cipher suite in common with the server"),
        "{}",
        text.context()
    );
}

#[test]
#[ignore = "needs the integration lab: run integration/test-all"]
fn interop_receivers_danegate_matches_the_postfix_dane_relay() {
    let scratch = util::Lab::new("dnslab-interop");
    let started = Instant::now();
    let lab = DnsLab::shared();
    let rx = receivers(&scratch, &lab);
    let listen = gate::next_listen();
    let extra = format!("[metrics]\nlisten = \"{METRICS}\"\n");
    let mut danegate = start_gate(&lab, listen, "interop", "enforce", &extra);
    let legacy = Postfix::legacy(
        &scratch,
        LEGACY_SMTPD,
        &format!("[{}]:{}", listen.ip(), listen.port()),
    );
    let pf = reference(&scratch);
    let from = format!("sender@{LEGACY_DOMAIN}");
    for d in DOMAINS {
        let rcpt = d.rcpt();
        for (relay, tag) in [(&legacy, "dg"), (&pf, "pf")] {
            let id = format!("{tag}-{}", d.label);
            let r = relay.submit(&from, &[&rcpt], message(&rcpt, &id, d.label).as_bytes());
            assert_eq!(r.code, 250, "{}: {}", d.label, r.full());
        }
    }
    let seen = verdicts(&pf, &legacy, &danegate, &rx);
    let table = table(&seen);
    eprintln!("interop results:\n{table}");
    let wrong = differences(&seen, &rx);
    assert!(wrong.is_empty(), "{}\n\n{table}", wrong.join("\n"));
    // The reference's connections came from its own address.
    let from_reference = format!("[{REFERENCE_BIND}]");
    assert!(
        rx.maillog().contains(&from_reference),
        "the receivers never saw the Postfix relay's address"
    );

    // The metrics say which destinations needed the legacy engine.
    let m = metrics_text();
    let legacy_cbc = "danegate_tls_legacy_connections_total{state=\"verified_dane\",protocol=\"TLSv1.2\",cipher=\"ECDHE-RSA-AES256-SHA\"}";
    assert!(sample(&m, legacy_cbc) >= 1, "{m}");
    let anonymous = "danegate_tls_legacy_connections_total{state=\"anonymous\",protocol=\"TLSv1.2\",cipher=\"ADH-AES256-GCM-SHA384\"}";
    assert!(sample(&m, anonymous) >= 1, "{m}");
    for reason in ["version", "parameters", "key"] {
        let series = format!("danegate_tls_fallbacks_total{{reason=\"{reason}\"}}");
        assert!(sample(&m, &series) >= 1, "{series}:\n{m}");
    }
    check_names_the_engine(&lab);
    // The connection line names the engine.
    crate::dane::log_line(
        &danegate,
        &["Verified TLS connection established to mx.dane-cbc.interop.test[127.0.25.109]:25: TLSv1.2 with cipher ECDHE-RSA-AES256-SHA by the legacy TLS engine (OpenSSL); matched DANE-EE 3 1 1 "],
    );
    danegate.stop();

    // `[tls] legacy = "off"`: rustls only. The DANE destination defers
    // with the true cause; the opportunistic one gets plaintext.
    let off = start_gate(
        &lab,
        listen,
        "interop-legacy-off",
        "enforce",
        "[tls]\nlegacy = \"off\"\n",
    );
    for label in ["dane-cbc", "notlsa-cbc"] {
        let rcpt = format!("user@{label}.interop.test");
        let id = format!("off-{label}");
        let r = legacy.submit(&from, &[&rcpt], message(&rcpt, &id, label).as_bytes());
        assert_eq!(r.code, 250, "{}", r.full());
    }
    let deferred = crate::dane::wait_new_status(
        &legacy,
        "user@dane-cbc.interop.test",
        1,
        &["status=deferred"],
    );
    let want = "451 4.7.5 TLS handshake with mx.dane-cbc.interop.test[127.0.25.109]:25 failed: no TLS version or cipher suite in common with the server (the primary engine offers TLSv1.2 and TLSv1.3 with ECDHE and AEAD suites only); the legacy TLS engine is off ([tls] legacy)";
    assert!(deferred.contains(want), "{deferred}\nwant {want:?}");
    let plain = util::wait_for("the plaintext delivery with legacy off", || {
        received_tls(&rx, "user@notlsa-cbc.interop.test", "off-notlsa-cbc")
    });
    assert_eq!(plain, None, "delivered over TLS with the legacy engine off");
    let log = off.log();
    assert!(
        !log.contains("by the legacy TLS engine") && !log.contains("trying again with the legacy"),
        "{log}"
    );
    eprintln!("dnslab interop: took {:?}", started.elapsed());
}

/// The tables hold together (no lab needed): every domain names a
/// receiver, labels and addresses are unique, every receiver is used.
#[test]
fn interop_tables_are_consistent() {
    let mut labels: Vec<&str> = DOMAINS.iter().map(|d| d.label).collect();
    labels.sort();
    labels.dedup();
    assert_eq!(labels.len(), DOMAINS.len(), "duplicate domain label");
    let mut ips: Vec<u8> = RECEIVERS.iter().map(|r| r.ip).collect();
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), RECEIVERS.len(), "duplicate receiver address");
    for r in RECEIVERS {
        assert!(
            DOMAINS.iter().any(|d| d.receiver == r.name),
            "{} has no domain",
            r.name
        );
        assert!(r.ip > 100, "{}: 127.0.25.1..100 are other tests'", r.name);
    }
    for d in DOMAINS {
        let _ = d.receiver();
        assert_eq!(
            d.protocol.is_some(),
            !matches!(d.reference, Outcome::Deferred | Outcome::Plaintext),
            "{}",
            d.label
        );
        if d.reference == Outcome::Deferred {
            assert!(d.deferral.is_some(), "{}: say why it defers", d.label);
        }
    }
}
