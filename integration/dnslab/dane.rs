//! DANE end to end through the lab's DNS (dane-rules §3–5): a legacy
//! Postfix relays to danegate (`validate` mode through the validating
//! unbound, anchored at the lab root), which delivers `user@secure.test`
//! to a real Postfix receiver on mx1.secure.test's lab address
//! (127.0.25.1:25), whose `3 1 1` TLSA record is published in the signed
//! zone. mx2.secure.test (127.0.25.2) has no server: connections to it are
//! refused, so mx1 decides every outcome.
//!
//! One test in stages, on one legacy Postfix and one queue:
//! 1. the receiver presents the certificate its TLSA record names:
//!    delivered, danegate logs `Verified` with the matched record;
//! 2. the receiver presents another (self-signed) certificate: Postfix
//!    logs `451 4.7.5 ... no TLSA record of _25._tcp.mx1.secure.test
//!    matches ...`, keeps the message queued and retries;
//! 3. the receiver offers no STARTTLS: the retries now defer with 4.7.4;
//! 4. danegate in test mode, the receiver with the wrong certificate
//!    again: the queued message is delivered over unauthenticated TLS and
//!    danegate logs `TEST MODE: would defer: ...`; nothing is lost.
//!
//! The Postfix instances are the `lab` target's (`../lab/postfix.rs`), in
//! a scratch dir under /tmp that a failing test keeps.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use crate::gate::{self, Anchor, Dns, Running};
use crate::lab::*;
use crate::postfix::{Options, Postfix, Role, LEGACY_DOMAIN};
use crate::util;

/// Where this test's legacy Postfix listens (`relay`'s uses 127.0.53.21).
const LEGACY_SMTPD: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(127, 0, 53, 22), 25));
const MX1: &str = "mx1.secure.test";
const RCPT: &str = "user@secure.test";
/// How danegate names the receiver.
const PEER: &str = "mx1.secure.test[127.0.25.1]:25";
const TEST_NOTE: &str = " [test mode: nothing enforced]";

/// What a receiver does about TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReceiverTls {
    /// STARTTLS with the lab's certificate and key for its host name: the
    /// ones its TLSA records name.
    LabCertificate,
    /// STARTTLS with a self-signed certificate for its host name made by
    /// `Postfix::create`, which no TLSA record names.
    OtherCertificate,
    /// No STARTTLS (`smtpd_tls_security_level = none`).
    NoStartTls,
}

/// A Postfix receiver named `name` for `host` at `addr`, final destination
/// of `user@DOMAIN`, started.
pub(crate) fn receiver(
    scratch: &util::Lab,
    lab: &DnsLab,
    name: &str,
    (host, addr, domain): (&str, SocketAddr, &str),
    tls: ReceiverTls,
) -> Postfix {
    let mut p = Postfix::create(
        scratch,
        Options {
            name: name.into(),
            hostname: host.into(),
            smtpd: addr,
            role: Role::Receiver,
            domains: vec![domain.into()],
            mailboxes: vec![format!("user@{domain}")],
            rejects: Vec::new(),
        },
    );
    let main_cf = p.conf.join("main.cf");
    match tls {
        ReceiverTls::LabCertificate => {
            let cert = lab.cert(host);
            util::write_file(&p.conf.join("key.pem"), read_text(&cert.key_pem));
            util::write_file(&p.conf.join("cert.pem"), read_text(&cert.chain_pem));
        }
        ReceiverTls::OtherCertificate => {}
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

/// A lab MX host: name, address (port 25), the domain it receives for.
fn mx(
    host: &'static str,
    ip: [u8; 4],
    domain: &'static str,
) -> (&'static str, SocketAddr, &'static str) {
    (host, SocketAddr::from((ip, 25)), domain)
}

/// mx1.secure.test (`zones.rs`): TLSA `3 1 1` of its lab key.
fn mx1() -> (&'static str, SocketAddr, &'static str) {
    mx(MX1, [127, 0, 25, 1], "secure.test")
}

/// A message to `rcpt` with a Message-ID of its own.
pub(crate) fn message(rcpt: &str, id: &str, subject: &str) -> String {
    format!(
        "From: <sender@{LEGACY_DOMAIN}>\r\nTo: <{rcpt}>\r\nSubject: {subject}\r\nMessage-ID: <{id}@lab.test>\r\n\r\n{subject}.\r\n"
    )
}

/// Waits for the legacy MTA's first status line for `rcpt` that contains
/// every needle and was not among the first `seen` ones. Retries are
/// asked for (`postqueue -f`) every 3 s rather than left to Postfix's
/// backoff timers: a deferral that races a queue scan ("skipped, still
/// being delivered") can leave a message waiting far beyond
/// `maximal_backoff_time`.
#[track_caller]
pub(crate) fn wait_new_status(
    legacy: &Postfix,
    rcpt: &str,
    seen: usize,
    needles: &[&str],
) -> String {
    let mut flushed = Instant::now();
    util::wait_for(
        &format!("legacy Postfix to log a status line for <{rcpt}> with {needles:?}"),
        || {
            let found = legacy
                .statuses(rcpt)
                .into_iter()
                .skip(seen)
                .find(|l| needles.iter().all(|n| l.contains(n)));
            if found.is_none() && flushed.elapsed() >= Duration::from_secs(3) {
                legacy.flush();
                flushed = Instant::now();
            }
            found
        },
    )
}

/// danegate (validate mode through the validating unbound, DNSKEY anchor,
/// IPv4 only: mx1.secure.test also has AAAA ::1, where nothing of the lab
/// listens) listening on `listen`, started and listening.
pub(crate) fn start_gate(
    lab: &DnsLab,
    listen: SocketAddr,
    name: &str,
    mode: &str,
    extra: &str,
) -> Running {
    let dns = Dns::Validate {
        via: VALIDATING,
        anchor: Anchor::Dnskey,
    };
    let text = gate::config(lab, listen, dns, mode, extra).replacen(
        "[dns]\n",
        "[dns]\nfamilies = \"ipv4\"\n",
        1,
    );
    let mut gate = Running::start(&gate::write_config(lab, name, &text));
    gate.wait_log(&format!("listening on {listen}"), Duration::from_secs(15));
    gate
}

/// The danegate log line containing every needle; panics with the log.
#[track_caller]
pub(crate) fn log_line(gate: &Running, needles: &[&str]) -> String {
    let log = gate.log();
    log.lines()
        .find(|l| needles.iter().all(|n| l.contains(n)))
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("no danegate log line with {needles:?}; log:\n{log}"))
}

/// The receiver's `disconnect from` lines: which commands each client
/// connection used (`ehlo=1 starttls=1 mail=1 ...`). Connections without
/// a command (`commands=0/0`: the lab's own probe that the port listens)
/// are left out.
fn disconnects(p: &Postfix) -> Vec<String> {
    util::lines_with(&p.maillog(), &["disconnect from"])
        .into_iter()
        .filter(|l| !l.ends_with(" commands=0/0"))
        .map(String::from)
        .collect()
}

#[test]
#[ignore = "needs the integration lab: run integration/test-all"]
fn dane_receiver_verified_then_mismatch_and_stripped_starttls_deferred_then_test_mode_delivers() {
    // Declared first, dropped last: a failure keeps every Postfix's dir.
    let scratch = util::Lab::new("dnslab-dane");
    let started = Instant::now();
    let lab = DnsLab::shared();
    let spki = lab.cert(MX1).spki_sha256.clone();
    let matched = format!("DANE-EE 3 1 1 {}… at depth 0", &spki[..8]);
    let listen = gate::next_listen();
    let mut danegate = start_gate(&lab, listen, "dane-enforce", "enforce", "");
    let legacy = Postfix::legacy(
        &scratch,
        LEGACY_SMTPD,
        &format!("[{}]:{}", listen.ip(), listen.port()),
    );
    let from = format!("sender@{LEGACY_DOMAIN}");
    let relay = format!("relay={ip}[{ip}]:{}", listen.port(), ip = listen.ip());
    let mismatch_cause = format!(
        "TLS handshake with {PEER} failed: no TLSA record of _25._tcp.{MX1} matches the certificate chain"
    );

    // 1. The certificate the TLSA record names: delivered, Verified.
    let mut good = receiver(
        &scratch,
        &lab,
        "receiver-dane",
        mx1(),
        ReceiverTls::LabCertificate,
    );
    let msg = message(RCPT, "dane-ok", "verified");
    let r = legacy.submit(&from, &[RCPT], msg.as_bytes());
    assert_eq!(r.code, 250, "{}", r.full());
    let sent = wait_new_status(&legacy, RCPT, 0, &["status=sent"]);
    assert!(sent.contains(&relay), "{sent}");
    assert!(
        sent.contains("status=sent (250 2.0.0 Ok: ") && sent.contains(" queued as "),
        "{sent}"
    );
    let got = good.wait_messages(RCPT, 1);
    let text = String::from_utf8_lossy(&got[0]);
    assert!(text.contains("Message-ID: <dane-ok@lab.test>"), "{text}");
    // The receiver's Received header: the message came over TLS.
    assert!(text.contains("(using TLSv1.3 with cipher "), "{text}");
    let line = log_line(
        &danegate,
        &[&format!(
            "Verified TLS connection established to {PEER}: TLSv1.3 with cipher "
        )],
    );
    assert!(
        line.contains(&format!("; matched {matched}")),
        "{line}\nwant {matched:?}"
    );
    let summary = log_line(&danegate, &[&format!("to=<{RCPT}>"), "delivered"]);
    assert!(
        summary.contains(&format!("relay={PEER} tls=\"verified(dane) TLSv1.3 "))
            && summary.contains(&format!("({matched})")),
        "{summary}"
    );
    good.stop();

    // 2. Another certificate: 451 4.7.5, kept queued, retried.
    let mut wrong = receiver(
        &scratch,
        &lab,
        "receiver-wrong-cert",
        mx1(),
        ReceiverTls::OtherCertificate,
    );
    let seen = legacy.statuses(RCPT).len();
    let msg = message(RCPT, "dane-kept", "kept");
    let r = legacy.submit(&from, &[RCPT], msg.as_bytes());
    assert_eq!(r.code, 250, "{}", r.full());
    let mismatch = format!("said: 451 4.7.5 {mismatch_cause} (in reply to RCPT TO command)");
    let deferred = wait_new_status(&legacy, RCPT, seen, &["status=deferred", &relay]);
    assert!(
        deferred.contains(&mismatch),
        "{deferred}\nwant {mismatch:?}"
    );
    // A retry meets the same verdict.
    legacy.flush();
    wait_new_status(&legacy, RCPT, seen + 1, &["status=deferred", &mismatch]);
    let queue = legacy.queue();
    assert_eq!(queue.len(), 1, "{queue:?}");
    assert!(queue[0].contains(RCPT), "{}", queue[0]);
    assert!(wrong.messages(RCPT).is_empty());
    // The receiver saw STARTTLS fail and never a MAIL command.
    let d = disconnects(&wrong);
    assert!(!d.is_empty(), "{}", wrong.maillog());
    assert!(
        d.iter()
            .all(|l| l.contains(" ehlo=1 starttls=0/1 ") && !l.contains("mail=")),
        "{d:#?}"
    );
    log_line(
        &danegate,
        &[&format!("delivery attempt failed: {mismatch_cause}")],
    );
    wrong.stop();

    // 3. No STARTTLS: the queued message's retries defer with 4.7.4.
    let mut plain = receiver(
        &scratch,
        &lab,
        "receiver-no-tls",
        mx1(),
        ReceiverTls::NoStartTls,
    );
    let seen = legacy.statuses(RCPT).len();
    legacy.flush();
    let stripped = format!(
        "said: 451 4.7.4 TLS is required, but {PEER} did not offer STARTTLS (in reply to RCPT TO command)"
    );
    wait_new_status(&legacy, RCPT, seen, &["status=deferred", &stripped]);
    assert_eq!(legacy.queue().len(), 1);
    assert!(plain.messages(RCPT).is_empty());
    let d = disconnects(&plain);
    assert!(!d.is_empty(), "{}", plain.maillog());
    assert!(
        d.iter()
            .all(|l| l.contains(" ehlo=1 ") && !l.contains("mail=") && !l.contains("starttls")),
        "{d:#?}"
    );
    plain.stop();

    // 4. Test mode, the wrong certificate again: the queued message is
    // delivered, and the log says enforcement would have deferred it.
    danegate.stop();
    let mut testing = start_gate(&lab, listen, "dane-test-mode", "test", "");
    wrong.start();
    let seen = legacy.statuses(RCPT).len();
    legacy.flush();
    let sent = wait_new_status(&legacy, RCPT, seen, &["status=sent", &relay]);
    assert!(
        sent.contains("status=sent (250 2.0.0 Ok: ") && sent.contains(" queued as "),
        "{sent}"
    );
    let got = wrong.wait_messages(RCPT, 1);
    let text = String::from_utf8_lossy(&got[0]);
    assert!(text.contains("Message-ID: <dane-kept@lab.test>"), "{text}");
    assert!(text.contains("(using TLSv1.3 with cipher "), "{text}");
    // Nothing lost, nothing twice: two messages, each sent once.
    assert!(legacy.queue().is_empty(), "{:?}", legacy.queue());
    let sent: Vec<String> = legacy
        .statuses(RCPT)
        .into_iter()
        .filter(|l| l.contains("status=sent"))
        .collect();
    assert_eq!(sent.len(), 2, "{sent:#?}");
    log_line(
        &testing,
        &[&format!(
            "WARN TEST MODE: would defer: {mismatch_cause}; delivering with the best connection available, nothing enforced"
        )],
    );
    let line = log_line(
        &testing,
        &[&format!(
            "Untrusted TLS connection established to {PEER}: TLSv1.3 with cipher "
        )],
    );
    assert!(line.contains(TEST_NOTE), "{line}");
    let summary = log_line(&testing, &[&format!("to=<{RCPT}>"), "delivered"]);
    assert!(
        summary.contains("tls=\"untrusted TLSv1.3 ") && summary.contains(TEST_NOTE),
        "{summary}"
    );
    let log = testing.log();
    assert!(
        !log.contains("Verified") && !log.contains("Trusted TLS"),
        "test mode logged an authenticated connection:\n{log}"
    );
    testing.stop();
    wrong.stop();
    eprintln!("dnslab dane: took {:?}", started.elapsed());
}

/// The other DANE outcomes of the lab's zones, through one legacy Postfix
/// and one danegate (enforce; `notlsa.test` at `dane-only`), one message
/// per domain:
/// - secure.test: mx1 presents a certificate its TLSA record does not
///   name, mx2 (`2 0 1`, the lab CA) its lab chain: delivered via mx2,
///   `Verified`, DANE-TA at depth 1;
/// - cname.test: `mx.cname.test` is a CNAME for `mx-target.secure.test`,
///   whose TLSA record (not the alias's) names the receiver's key;
/// - unusable.test: only unusable TLSA records: TLS required, any
///   certificate (`Untrusted`);
/// - unsigned.test: an unsigned zone: opportunistic TLS (`Untrusted`);
/// - notlsa.test under dane-only: a signed denial of TLSA: deferred 4.7.5
///   without a connection (nothing listens there: a connection attempt
///   would defer with 4.4.1).
#[test]
#[ignore = "needs the integration lab: run integration/test-all"]
fn dane_outcomes_second_mx_cname_unusable_unsigned_and_dane_only() {
    let scratch = util::Lab::new("dnslab-dane-domains");
    let started = Instant::now();
    let lab = DnsLab::shared();
    let listen = gate::next_listen();
    let danegate = start_gate(
        &lab,
        listen,
        "dane-domains",
        "enforce",
        "[policy.domains]\n\"notlsa.test\" = \"dane-only\"\n",
    );
    let legacy = Postfix::legacy(
        &scratch,
        LEGACY_SMTPD,
        &format!("[{}]:{}", listen.ip(), listen.port()),
    );
    let receivers = [
        ("mx1-wrong-cert", mx1(), ReceiverTls::OtherCertificate),
        (
            "mx2-lab-ca",
            mx("mx2.secure.test", [127, 0, 25, 2], "secure.test"),
            ReceiverTls::LabCertificate,
        ),
        (
            "cname-target",
            mx("mx-target.secure.test", [127, 0, 25, 6], "cname.test"),
            ReceiverTls::LabCertificate,
        ),
        (
            "unusable",
            mx("mx.unusable.test", [127, 0, 25, 9], "unusable.test"),
            ReceiverTls::OtherCertificate,
        ),
        (
            "unsigned",
            mx("mx.unsigned.test", [127, 0, 25, 3], "unsigned.test"),
            ReceiverTls::OtherCertificate,
        ),
    ];
    let receivers: Vec<Postfix> = receivers
        .into_iter()
        .map(|(name, host, tls)| receiver(&scratch, &lab, name, host, tls))
        .collect();
    let [mx1_wrong, mx2, cname_target, unusable, unsigned] = &receivers[..] else {
        unreachable!()
    };
    let from = format!("sender@{LEGACY_DOMAIN}");
    let domains = [
        "secure.test",
        "cname.test",
        "unusable.test",
        "unsigned.test",
        "notlsa.test",
    ];
    for domain in domains {
        let rcpt = format!("user@{domain}");
        let id = format!("dane-{domain}");
        let r = legacy.submit(&from, &[&rcpt], message(&rcpt, &id, domain).as_bytes());
        assert_eq!(r.code, 250, "{domain}: {}", r.full());
    }
    for (domain, receiver) in [
        ("secure.test", mx2),
        ("cname.test", cname_target),
        ("unusable.test", unusable),
        ("unsigned.test", unsigned),
    ] {
        let rcpt = format!("user@{domain}");
        let sent = wait_new_status(&legacy, &rcpt, 0, &["status=sent"]);
        assert!(
            sent.contains("status=sent (250 2.0.0 Ok: ") && sent.contains(" queued as "),
            "{sent}"
        );
        let got = receiver.wait_messages(&rcpt, 1);
        let text = String::from_utf8_lossy(&got[0]);
        assert!(
            text.contains(&format!("Message-ID: <dane-{domain}@lab.test>")),
            "{text}"
        );
        assert!(
            text.contains("(using TLSv1.3 with cipher "),
            "{domain}: {text}"
        );
    }
    assert!(mx1_wrong.messages("user@secure.test").is_empty());

    let deferred = wait_new_status(&legacy, "user@notlsa.test", 0, &["status=deferred"]);
    let want = "said: 451 4.7.5 mx-notlsa.secure.test[127.0.25.7]:25: policy dane-only: no DNSSEC-signed TLSA records (in reply to RCPT TO command)";
    assert!(deferred.contains(want), "{deferred}\nwant {want:?}");

    // secure.test: mx1 failed, mx2 matched the lab CA at depth 1.
    log_line(
        &danegate,
        &[&format!(
            "delivery attempt failed: TLS handshake with {PEER} failed: no TLSA record of _25._tcp.{MX1} matches the certificate chain"
        )],
    );
    let ca = &lab.cert("ca").cert_sha256;
    let line = log_line(
        &danegate,
        &["Verified TLS connection established to mx2.secure.test[127.0.25.2]:25: TLSv1.3 with cipher "],
    );
    let want = format!("; matched DANE-TA 2 0 1 {}… at depth 1", &ca[..8]);
    assert!(line.contains(&want), "{line}\nwant {want:?}");
    // cname.test: the peer is named by the MX host, the record is the
    // CNAME target's.
    let target = &lab.cert("mx-target.secure.test").spki_sha256;
    let line = log_line(
        &danegate,
        &["Verified TLS connection established to mx.cname.test[127.0.25.6]:25: TLSv1.3 with cipher "],
    );
    let want = format!("; matched DANE-EE 3 1 1 {}… at depth 0", &target[..8]);
    assert!(line.contains(&want), "{line}\nwant {want:?}");
    // unusable.test and unsigned.test: TLS without authentication.
    for peer in [
        "mx.unusable.test[127.0.25.9]:25",
        "mx.unsigned.test[127.0.25.3]:25",
    ] {
        log_line(
            &danegate,
            &[&format!(
                "Untrusted TLS connection established to {peer}: TLSv1.3 with cipher "
            )],
        );
    }
    for (rcpt, tls) in [
        ("user@unusable.test", "tls=\"untrusted TLSv1.3 "),
        ("user@unsigned.test", "tls=\"untrusted TLSv1.3 "),
        ("user@secure.test", "tls=\"verified(dane) TLSv1.3 "),
        ("user@cname.test", "tls=\"verified(dane) TLSv1.3 "),
    ] {
        log_line(&danegate, &[&format!("to=<{rcpt}>"), "delivered", tls]);
    }
    eprintln!("dnslab dane domains: took {:?}", started.elapsed());
}
