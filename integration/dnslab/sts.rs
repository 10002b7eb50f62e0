//! MTA-STS end to end through the lab (RFC 8461, danegate's precedence):
//! a legacy Postfix relays to danegate (validate mode, the validating
//! unbound), which discovers `_mta-sts` TXT records in the knotd zones,
//! fetches policies from the lab's HTTPS policy server (`policyhost.rs`,
//! trusted through `[mta_sts] ca_file`) and delivers to a real Postfix
//! receiver on mx.sts.test (127.0.25.13) presenting certificates of the
//! lab's MTA-STS CA, or not.
//!
//! One test in stages, on one legacy Postfix and one queue (what each
//! stage checks is in its comment); one test for DANE's precedence.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::dane::wait_new_status;
use crate::gate::{self, Anchor, Dns, Running};
use crate::lab::*;
use crate::policyhost::{policy, set_txt, Identity, PolicyServer, StsPki};
use crate::postfix::{Options, Postfix, Role, LEGACY_DOMAIN};
use crate::util;

/// This test's legacy Postfix (others use .21 to .25).
const LEGACY_SMTPD: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(127, 0, 53, 26), 25));
const MX: &str = "mx.sts.test";
const MX_ADDR: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(127, 0, 25, 13), 25));
const PEER: &str = "mx.sts.test[127.0.25.13]:25";
/// The receiver's domains: every MTA-STS domain of `sts.test`.
const DOMAINS: &[&str] = &[
    "sts.test",
    "testing.sts.test",
    "notlisted.sts.test",
    "big.sts.test",
    "redirect.sts.test",
];

/// What the receiver presents.
enum ReceiverTls<'a> {
    Identity(&'a Identity),
    NoStartTls,
}

fn receiver(scratch: &util::Lab, name: &str, tls: ReceiverTls) -> Postfix {
    let mut p = Postfix::create(
        scratch,
        Options {
            name: name.into(),
            hostname: MX.into(),
            smtpd: MX_ADDR,
            role: Role::Receiver,
            domains: DOMAINS.iter().map(|d| d.to_string()).collect(),
            mailboxes: DOMAINS.iter().map(|d| format!("user@{d}")).collect(),
            rejects: Vec::new(),
        },
    );
    let main_cf = p.conf.join("main.cf");
    match tls {
        ReceiverTls::Identity(id) => {
            util::write_file(&p.conf.join("key.pem"), read_text(&id.key_pem));
            util::write_file(&p.conf.join("cert.pem"), read_text(&id.chain_pem));
        }
        ReceiverTls::NoStartTls => {
            let text = read_text(&main_cf);
            let may = "smtpd_tls_security_level = may\n";
            assert!(text.contains(may), "receiver main.cf changed:\n{text}");
            util::write_file(
                &main_cf,
                text.replace(may, "smtpd_tls_security_level = none\n"),
            );
        }
    }
    util::backdate(&main_cf);
    p.start();
    p
}

/// A message whose subject is its id.
fn message(rcpt: &str, id: &str) -> String {
    crate::dane::message(rcpt, id, id)
}

#[track_caller]
fn log_line(gate: &Running, needles: &[&str]) -> String {
    let log = gate.log();
    log.lines()
        .find(|l| needles.iter().all(|n| l.contains(n)))
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("no danegate log line with {needles:?}; log:\n{log}"))
}

/// danegate trusting the MTA-STS CA, its state database in `state`.
/// `refresh_interval = 48`: a failed fetch is retried after 2 s (one
/// 24th), not the default's 5 minutes, so that stages follow quickly.
fn start_gate(lab: &DnsLab, listen: SocketAddr, name: &str, ca: &Path, state: &Path) -> Running {
    let dns = Dns::Validate {
        via: VALIDATING,
        anchor: Anchor::Dnskey,
    };
    let extra = format!(
        "[mta_sts]\nca_file = {:?}\nfetch_timeout = 5\nrefresh_interval = 48\n\n[state]\ndir = {:?}\n",
        ca.display().to_string(),
        state.display().to_string()
    );
    let text = gate::config(lab, listen, dns, "enforce", &extra).replacen(
        "[dns]\n",
        "[dns]\nfamilies = \"ipv4\"\n",
        1,
    );
    let mut gate = Running::start(&gate::write_config(lab, name, &text));
    gate.wait_log(&format!("listening on {listen}"), Duration::from_secs(15));
    gate
}

/// Waits for a danegate log line with every needle, asking the legacy
/// MTA to retry every 3 s meanwhile (TTLs and caches take seconds).
#[track_caller]
fn wait_log_line(gate: &Running, legacy: &Postfix, needles: &[&str]) -> String {
    let mut flushed = Instant::now();
    util::wait_for(&format!("danegate to log {needles:?}"), || {
        let found = gate
            .log()
            .lines()
            .find(|l| needles.iter().all(|n| l.contains(n)))
            .map(str::to_owned);
        if found.is_none() && flushed.elapsed() >= Duration::from_secs(3) {
            legacy.flush();
            flushed = Instant::now();
        }
        found
    })
}

/// The receiver's client connections that gave a command.
fn disconnects(p: &Postfix) -> Vec<String> {
    util::lines_with(&p.maillog(), &["disconnect from"])
        .into_iter()
        .filter(|l| !l.ends_with(" commands=0/0"))
        .map(String::from)
        .collect()
}

#[test]
#[ignore = "needs the integration lab: run integration/test-all"]
fn sts_enforce_testing_failures_cache_restart_and_id_change_through_postfix() {
    let scratch = util::Lab::new("dnslab-sts");
    let started = Instant::now();
    let lab = DnsLab::shared();
    let pki = StsPki::new(&scratch.subdir("sts-pki"));
    let valid = pki.issue("mx", &[MX]);
    let misnamed = pki.issue("mx-misnamed", &["other.sts.test"]);
    let self_signed = pki.self_signed("mx-self", &[MX]);
    let mut server = PolicyServer::start_in(&scratch.subdir("policy-server"), &pki);
    server.serve(
        "mta-sts.sts.test",
        policy("enforce", &[MX], 86400).as_bytes(),
    );
    server.serve(
        "mta-sts.testing.sts.test",
        policy("testing", &[MX], 86400).as_bytes(),
    );
    server.serve(
        "mta-sts.notlisted.sts.test",
        policy("enforce", &["mx.elsewhere.test"], 86400).as_bytes(),
    );
    let mut big = policy("enforce", &[MX], 86400).into_bytes();
    while big.len() <= 64 * 1024 {
        big.extend_from_slice(format!("x-padding: {}\r\n", "p".repeat(1000)).as_bytes());
    }
    server.serve("mta-sts.big.sts.test", &big);
    server.redirect(
        "mta-sts.redirect.sts.test",
        "https://mta-sts.sts.test/.well-known/mta-sts.txt",
    );
    let state = scratch.subdir("danegate-state");
    let listen = gate::next_listen();
    let mut danegate = start_gate(&lab, listen, "sts-enforce", &pki.ca_pem, &state);
    let legacy = Postfix::legacy(
        &scratch,
        LEGACY_SMTPD,
        &format!("[{}]:{}", listen.ip(), listen.port()),
    );
    let from = format!("sender@{LEGACY_DOMAIN}");
    let relay = format!("relay={ip}[{ip}]:{}", listen.port(), ip = listen.ip());
    let submit = |rcpt: &str, id: &str| {
        let r = legacy.submit(&from, &[rcpt], message(rcpt, id).as_bytes());
        assert_eq!(r.code, 250, "{}", r.full());
    };
    let rcpt = "user@sts.test";

    // 1. enforce, a certificate of the MTA-STS CA for mx.sts.test:
    // delivered over TLS, logged verified(sts).
    let mut good = receiver(
        &scratch,
        "receiver-sts-valid",
        ReceiverTls::Identity(&valid),
    );
    submit(rcpt, "sts-ok");
    let sent = wait_new_status(&legacy, rcpt, 0, &["status=sent"]);
    // "Ok: queued as" (DATA) or "Ok: N bytes queued as" (BDAT).
    assert!(
        sent.contains(&relay)
            && sent.contains("status=sent (250 2.0.0 Ok: ")
            && sent.contains(" queued as "),
        "{sent}"
    );
    let got = good.wait_messages(rcpt, 1);
    let text = String::from_utf8_lossy(&got[0]);
    assert!(
        text.contains("Message-ID: <sts-ok@lab.test>")
            && text.contains("(using TLSv1.3 with cipher "),
        "{text}"
    );
    let matched = format!(
        "WebPKI: {MX} issued by CN=danegate lab MTA-STS CA; the MTA-STS policy of sts.test (id 1)"
    );
    let line = log_line(
        &danegate,
        &[&format!(
            "Verified TLS connection established to {PEER}: TLSv1.3 with cipher "
        )],
    );
    assert!(line.contains(&format!("; matched {matched}")), "{line}");
    let summary = log_line(&danegate, &[&format!("to=<{rcpt}>"), "delivered"]);
    assert!(
        summary.contains(&format!("relay={PEER} tls=\"verified(sts) TLSv1.3 ")),
        "{summary}"
    );
    log_line(
        &danegate,
        &["MTA-STS policy of sts.test fetched: id 1, mode enforce, max_age 86400, mx mx.sts.test"],
    );
    good.stop();

    // 2. A certificate for another name: 451 4.7.5 naming the policy,
    // kept queued; the receiver never saw MAIL.
    let mut wrong = receiver(
        &scratch,
        "receiver-sts-misnamed",
        ReceiverTls::Identity(&misnamed),
    );
    let seen = legacy.statuses(rcpt).len();
    submit(rcpt, "sts-kept");
    let misnamed_cause = format!("451 4.7.5 TLS handshake with {PEER} failed: certificate for {MX} does not match the MTA-STS policy of sts.test: the certificate is not valid for the name (no matching SAN dNSName)");
    let deferred = wait_new_status(&legacy, rcpt, seen, &["status=deferred", &relay]);
    assert!(
        deferred.contains(&format!(
            "said: {misnamed_cause} (in reply to RCPT TO command)"
        )),
        "{deferred}"
    );
    assert_eq!(legacy.queue().len(), 1);
    assert!(wrong.messages(rcpt).is_empty());
    assert!(
        disconnects(&wrong).iter().all(|l| !l.contains("mail=")),
        "{:#?}",
        disconnects(&wrong)
    );
    // The policy came from the cache: fetched once so far.
    assert_eq!(server.requests("mta-sts.sts.test"), 1);

    // 3. testing, the same misnamed certificate: delivered, logged
    // `would defer (MTA-STS testing)`.
    let t_rcpt = "user@testing.sts.test";
    submit(t_rcpt, "sts-testing");
    wait_new_status(&legacy, t_rcpt, 0, &["status=sent"]);
    wrong.wait_messages(t_rcpt, 1);
    log_line(&danegate, &[&format!("WARN would defer (MTA-STS testing): certificate for {MX} does not match the MTA-STS policy of testing.sts.test: the certificate is not valid for the name")]);
    wrong.stop();

    // 4. A self-signed certificate: the queued message's retry defers.
    let mut selfs = receiver(
        &scratch,
        "receiver-sts-self",
        ReceiverTls::Identity(&self_signed),
    );
    let seen = legacy.statuses(rcpt).len();
    legacy.flush();
    wait_new_status(&legacy, rcpt, seen, &["status=deferred", &format!("certificate for {MX} does not match the MTA-STS policy of sts.test: the certificate chain does not lead to a trusted root")]);
    selfs.stop();

    // 5. STARTTLS stripped: 4.7.4.
    let mut plain = receiver(&scratch, "receiver-sts-plain", ReceiverTls::NoStartTls);
    let seen = legacy.statuses(rcpt).len();
    legacy.flush();
    wait_new_status(
        &legacy,
        rcpt,
        seen,
        &[
            "status=deferred",
            &format!("451 4.7.4 TLS is required, but {PEER} did not offer STARTTLS"),
        ],
    );
    assert!(plain.messages(rcpt).is_empty());

    // 6. MX host not in the policy: deferred without a connection.
    let n_rcpt = "user@notlisted.sts.test";
    let before = disconnects(&plain).len();
    submit(n_rcpt, "sts-notlisted");
    wait_new_status(
        &legacy,
        n_rcpt,
        0,
        &[
            "status=deferred",
            &format!(
                "451 4.7.5 MX host {MX} is not allowed by the MTA-STS policy of notlisted.sts.test"
            ),
        ],
    );
    assert_eq!(
        disconnects(&plain).len(),
        before,
        "{:#?}",
        disconnects(&plain)
    );

    // 7. A policy body over 64 KiB, and one behind a redirect: refused
    // with the reason, no policy applied (delivered as without MTA-STS,
    // here in plaintext: the receiver offers no STARTTLS).
    let b_rcpt = "user@big.sts.test";
    submit(b_rcpt, "sts-big");
    wait_new_status(&legacy, b_rcpt, 0, &["status=sent"]);
    log_line(&danegate, &["WARN MTA-STS policy fetch for big.sts.test failed: https://mta-sts.big.sts.test/.well-known/mta-sts.txt: the body is larger than the limit of 65536 octets; no cached policy, so big.sts.test is treated as having none"]);
    let r_rcpt = "user@redirect.sts.test";
    submit(r_rcpt, "sts-redirect");
    wait_new_status(&legacy, r_rcpt, 0, &["status=sent"]);
    log_line(&danegate, &["WARN MTA-STS policy fetch for redirect.sts.test failed: https://mta-sts.redirect.sts.test/.well-known/mta-sts.txt: answered HTTP 301 redirecting to \"https://mta-sts.sts.test/.well-known/mta-sts.txt\"; a policy is not fetched through a redirect (RFC 8461 §3.3)"]);
    plain.stop();
    // The notlisted message stays queued; drop it from the queue's count
    // below by delivering it later is not possible (its policy forbids
    // the only MX): it must still be queued at the end.

    // 8. The policy host goes down and the TXT id changes: the fetch
    // fails and the cached policy stays in force (misnamed certificate:
    // still deferred with the policy's cause).
    server.stop();
    set_txt(&lab, "sts.test.", "_mta-sts.sts.test", "v=STSv1; id=2");
    wrong.start();
    legacy.flush();
    wait_log_line(&danegate, &legacy, &["WARN MTA-STS policy fetch for sts.test failed: https://mta-sts.sts.test/.well-known/mta-sts.txt: ", "the cached policy (id 1, fetched "]);
    let seen = legacy.statuses(rcpt).len();
    legacy.flush();
    wait_new_status(&legacy, rcpt, seen, &["status=deferred", &misnamed_cause]);

    // 9. ... also after a restart: the policy comes from the state
    // database.
    danegate.stop();
    danegate = start_gate(&lab, listen, "sts-restarted", &pki.ca_pem, &state);
    let seen = legacy.statuses(rcpt).len();
    legacy.flush();
    wait_new_status(&legacy, rcpt, seen, &["status=deferred", &misnamed_cause]);
    log_line(
        &danegate,
        &["MTA-STS: enforce policy of sts.test (id 1, cached, max_age 86400, mx: mx.sts.test)"],
    );
    assert!(wrong.messages(rcpt).is_empty());

    // 10. The host is back with a new policy for the new id (testing):
    // fetched, and the queued message is delivered with `would defer`.
    server.serve(
        "mta-sts.sts.test",
        policy("testing", &[MX], 86400).as_bytes(),
    );
    server.start();
    let seen = legacy.statuses(rcpt).len();
    legacy.flush();
    wait_new_status(&legacy, rcpt, seen, &["status=sent", &relay]);
    log_line(
        &danegate,
        &["MTA-STS policy of sts.test fetched: id 2, mode testing"],
    );
    log_line(&danegate, &[&format!("would defer (MTA-STS testing): certificate for {MX} does not match the MTA-STS policy of sts.test")]);
    let got = wrong.wait_messages(rcpt, 1);
    assert!(String::from_utf8_lossy(&got[0]).contains("Message-ID: <sts-kept@lab.test>"));
    wrong.stop();

    // Nothing lost, nothing twice: every message sent once except the
    // one whose policy forbids its only MX host, which stays queued.
    for (r, n) in [(rcpt, 2), (t_rcpt, 1), (b_rcpt, 1), (r_rcpt, 1)] {
        let sent = legacy
            .statuses(r)
            .into_iter()
            .filter(|l| l.contains("status=sent"))
            .count();
        assert_eq!(sent, n, "{r}");
    }
    let queue = legacy.queue();
    assert_eq!(queue.len(), 1, "{queue:?}");
    assert!(queue[0].contains(n_rcpt), "{queue:?}");
    // Back to the published id for the other tests of this lab.
    set_txt(&lab, "sts.test.", "_mta-sts.sts.test", "v=STSv1; id=1");
    eprintln!("sts: {:.1} s", started.elapsed().as_secs_f64());
}

#[test]
#[ignore = "needs the integration lab: run integration/test-all"]
fn sts_domain_with_tlsa_uses_dane() {
    let scratch = util::Lab::new("dnslab-sts-dane");
    let lab = DnsLab::shared();
    let pki = StsPki::new(&scratch.subdir("sts-pki"));
    let server = PolicyServer::start_in(&scratch.subdir("policy-server"), &pki);
    // A policy that names no host of the domain: were it applied, nothing
    // could be delivered.
    server.serve(
        "mta-sts.sts.secure.test",
        policy("enforce", &["mx.elsewhere.test"], 86400).as_bytes(),
    );
    let listen = gate::next_listen();
    let state = scratch.subdir("danegate-state");
    let danegate = start_gate(&lab, listen, "sts-dane", &pki.ca_pem, &state);
    let legacy = Postfix::legacy(
        &scratch,
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(127, 0, 53, 27), 25)),
        &format!("[{}]:{}", listen.ip(), listen.port()),
    );
    let rcpt = "user@sts.secure.test";
    let mx1 = lab.cert("mx1.secure.test");
    let mut p = Postfix::create(
        &scratch,
        Options {
            name: "receiver-mx1".into(),
            hostname: "mx1.secure.test".into(),
            smtpd: SocketAddr::from(([127, 0, 25, 1], 25)),
            role: Role::Receiver,
            domains: vec!["sts.secure.test".into()],
            mailboxes: vec![rcpt.into()],
            rejects: Vec::new(),
        },
    );
    util::write_file(&p.conf.join("key.pem"), read_text(&mx1.key_pem));
    util::write_file(&p.conf.join("cert.pem"), read_text(&mx1.chain_pem));
    util::backdate(&p.conf.join("main.cf"));
    p.start();
    let from = format!("sender@{LEGACY_DOMAIN}");
    let r = legacy.submit(&from, &[rcpt], message(rcpt, "sts-dane").as_bytes());
    assert_eq!(r.code, 250, "{}", r.full());
    wait_new_status(&legacy, rcpt, 0, &["status=sent"]);
    p.wait_messages(rcpt, 1);
    let summary = log_line(&danegate, &[&format!("to=<{rcpt}>"), "delivered"]);
    assert!(
        summary.contains("tls=\"verified(dane) TLSv1.3 "),
        "{summary}"
    );
    log_line(
        &danegate,
        &["MTA-STS: enforce policy of sts.secure.test (id dane1, fetched"],
    );
    assert!(
        !danegate.log().contains("not allowed by the MTA-STS policy"),
        "{}",
        danegate.log()
    );
    p.stop();
}

/// `danegate CMD ARGS --config FILE`: exit status and standard output.
fn run_command(args: &[&str], config: &Path) -> (Option<i32>, String, String) {
    let out = std::process::Command::new(gate::BIN)
        .args(args)
        .arg("--config")
        .arg(config)
        .env("NO_COLOR", "1")
        .output()
        .expect("run danegate");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
#[ignore = "needs the integration lab: run integration/test-all"]
fn sts_resolve_check_and_show_name_the_policy_and_the_mechanism() {
    let scratch = util::Lab::new("dnslab-sts-ops");
    let lab = DnsLab::shared();
    // The published id (another test changes it), past the resolvers'
    // caches (TTL 2 s).
    set_txt(&lab, "sts.test.", "_mta-sts.sts.test", "v=STSv1; id=1");
    std::thread::sleep(Duration::from_secs(3));
    let pki = StsPki::new(&scratch.subdir("sts-pki"));
    let valid = pki.issue("mx", &[MX]);
    let misnamed = pki.issue("mx-misnamed", &["other.sts.test"]);
    let server = PolicyServer::start_in(&scratch.subdir("policy-server"), &pki);
    server.serve(
        "mta-sts.sts.test",
        policy("enforce", &[MX], 86400).as_bytes(),
    );
    server.serve(
        "mta-sts.notlisted.sts.test",
        policy("enforce", &["mx.elsewhere.test"], 86400).as_bytes(),
    );
    let dns = Dns::Validate {
        via: VALIDATING,
        anchor: Anchor::Dnskey,
    };
    let state = scratch.subdir("state");
    let extra = format!(
        "[mta_sts]\nca_file = {:?}\n\n[state]\ndir = {:?}\n",
        pki.ca_pem.display().to_string(),
        state.display().to_string()
    );
    let text = gate::config(&lab, gate::next_listen(), dns, "enforce", &extra).replacen(
        "[dns]\n",
        "[dns]\nfamilies = \"ipv4\"\n",
        1,
    );
    let config = gate::write_config(&lab, "sts-ops", &text);

    // resolve: the policy (fetched, then cached in the state database)
    // and each host's requirement.
    let (code, out, err) = run_command(&["resolve", "sts.test"], &config);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("  MTA-STS: enforce policy of sts.test (id 1, fetched, max_age 86400, mx: mx.sts.test)\n"), "{out}");
    assert!(out.contains("  host mx.sts.test port 25 preference 10: MTA-STS required (WebPKI certificate for the host name)\n"), "{out}");
    assert!(out.contains("    MTA-STS: enforce: allowed\n"), "{out}");
    let (_, out, _) = run_command(&["resolve", "sts.test"], &config);
    assert!(out.contains("(id 1, cached, max_age 86400"), "{out}");
    let (_, out, _) = run_command(&["resolve", "notlisted.sts.test"], &config);
    assert!(
        out.contains("refused: the MX host is not allowed by the domain's MTA-STS policy"),
        "{out}"
    );

    // sts show: the cached policy and its text.
    let (code, out, err) = run_command(&["sts", "show", "sts.test"], &config);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.starts_with("MTA-STS for sts.test\n  TXT _mta-sts.sts.test: v=STSv1; id=1\n"),
        "{out}"
    );
    assert!(out.contains("  cached policy ("), "{out}");
    assert!(
        out.contains("): id 1, mode enforce, max_age 86400, fetched "),
        "{out}"
    );
    assert!(
        out.contains("    mx: mx.sts.test\n    policy text:\n      version: STSv1\n"),
        "{out}"
    );
    let (code, out, _) = run_command(&["sts", "show", "sts.test", "--json"], &config);
    assert_eq!(code, Some(0));
    let j: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(j["txt"]["id"], "1", "{j:#}");
    assert_eq!(j["cached"]["mode"], "enforce", "{j:#}");
    assert_eq!(
        j["cached"]["mx"],
        serde_json::json!(["mx.sts.test"]),
        "{j:#}"
    );

    // check: the MX certificate judged against the policy.
    let mut good = receiver(
        &scratch,
        "receiver-check-valid",
        ReceiverTls::Identity(&valid),
    );
    let (code, out, err) = run_command(&["check", "sts.test", "--json"], &config);
    let j: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}{err}"));
    assert_eq!(code, Some(0), "{j:#}");
    assert_eq!(j["verdict"], "ok", "{j:#}");
    assert_eq!(j["mta_sts"]["policy"]["mode"], "enforce", "{j:#}");
    assert_eq!(j["mta_sts"]["policy"]["source"], "cached", "{j:#}");
    let h = &j["hosts"][0];
    assert_eq!(h["mechanism"], "mta-sts", "{j:#}");
    let a = &h["addresses"][0];
    assert_eq!(a["webpki"]["valid"], true, "{j:#}");
    assert_eq!(
        a["webpki"]["detail"], "WebPKI: mx.sts.test issued by CN=danegate lab MTA-STS CA",
        "{j:#}"
    );
    good.stop();
    let mut wrong = receiver(
        &scratch,
        "receiver-check-misnamed",
        ReceiverTls::Identity(&misnamed),
    );
    let (code, out, _) = run_command(&["check", "sts.test", "--json"], &config);
    let j: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(code, Some(1), "{j:#}");
    assert_eq!(j["verdict"], "failed", "{j:#}");
    assert_eq!(
        j["problems"],
        serde_json::json!([format!("{PEER}: certificate is not valid for MTA-STS: the certificate is not valid for the name (no matching SAN dNSName)")]),
        "{j:#}"
    );
    wrong.stop();

    // sts forget: gone, and shown as gone.
    let (code, out, _) = run_command(&["sts", "forget", "sts.test"], &config);
    assert_eq!(
        (code, out.as_str()),
        (Some(0), "forgot the cached MTA-STS policy of sts.test\n")
    );
    let (_, out, _) = run_command(&["sts", "show", "sts.test"], &config);
    assert!(out.contains("  cached policy: none ("), "{out}");
    let (code, out, _) = run_command(&["sts", "refresh", "sts.test"], &config);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("): id 1, mode enforce, max_age 86400, fetched "),
        "{out}"
    );
}
