//! The randomised fault run (issue 6): 1,000 messages (1,100 recipients)
//! from a client through a real legacy Postfix, danegate (enforce, DANE
//! required by the lab's signed `faults.test`) and a receiver that
//! misbehaves, while the DNS and the TLSA records change underneath:
//!
//! ```text
//!   submitters ─▶ legacy Postfix ─▶ danegate ─▶ fault receiver mx.faults.test (127.0.25.12)
//!                 127.0.53.23       │  DNS       resets/stalls before, during, after DATA,
//!                                   ▼            4xx, a TLS handshake that never completes
//!                       faulty resolver 127.0.53.56 ─▶ validating unbound ─▶ knotd
//!                       (silent / SERVFAIL phases)     (TLSA changed by knotc)
//! ```
//!
//! While the messages are submitted (about 30 s), the receiver injects a
//! fault into about a quarter of its connections and of its transactions
//! ([`Fault`]), and, in a random order with random gaps, the resolver stops
//! answering for a few seconds, answers SERVFAIL for a few seconds, the
//! TLSA RRset names a key the receiver does not have for a few seconds,
//! and the receiver's key is rolled over (new record published, key
//! switched, old record withdrawn). Then every fault clears and Postfix's
//! queue is flushed until it is empty.
//!
//! The invariant, checked per recipient: delivered exactly once (the
//! receiver kept it once, with byte-identical content), over verified TLS
//! (danegate logged `tls=verified(dane)` for it, the receiver never saw a
//! transaction without TLS), and Postfix logged exactly one `status=sent`
//! for it whose reply names the receiver's own queue ID of that very copy
//! (so no recipient was acknowledged without the destination's 250) and
//! no bounce. Every fault kind must have been injected and must have shown
//! up as a deferral at Postfix (the run proves nothing otherwise).
//!
//! The seed is printed; `DANEGATE_FAULT_SEED=N` repeats a run's random
//! choices (timing still varies).
//!
//! A second test here shows that a TLSA change reaches even a connection
//! kept warm by a steady flow of mail within `connection_reuse_limit`.

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use crate::client::Client;
use crate::dig;
use crate::faultdns::{DnsFault, FaultyResolver, FAULTY};
use crate::faultmx::{Fault, FaultMx};
use crate::gate::{self, Anchor, Dns, Running};
use crate::lab::*;
use crate::policyhost::{policy, set_txt, PolicyServer, StsPki};
use crate::postfix::{Postfix, LEGACY_DOMAIN};
use crate::util;

const MESSAGES: usize = 1000;
/// Every tenth message has a second recipient.
const RECIPIENTS: usize = MESSAGES + MESSAGES / 10;
const SUBMITTERS: usize = 4;
/// Pause between two submissions of one submitter: 1,000 messages over
/// about 30 s.
const PACE: Duration = Duration::from_millis(110);

const ZONE: &str = "faults.test.";
const TLSA_NAME: &str = "_25._tcp.mx.faults.test";
const RECEIVER: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(127, 0, 25, 12), 25));
const LEGACY_SMTPD: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(127, 0, 53, 23), 25));

/// The lab certificates the receiver can present, and one it never has.
const KEY_FIRST: &str = "mx.faults.test";
const KEY_NEXT: &str = "mx-next.faults.test";
const KEY_WRONG: &str = "mx-wrong.faults.test";

/// danegate's timeouts in the run: short, so stalls cost seconds.
const TIMEOUTS: &str = "[timeouts]\nconnect = 2\ngreeting = 3\nehlo = 3\nstarttls = 3\n\
                        mail = 3\nrcpt = 3\ndata_init = 3\ndata_block = 3\ndata_done = 3\n\
                        rset = 3\nquit = 2\n";

/// The MTA-STS domain of the run: the same receiver as mx-sts.faults.test
/// (no TLSA records: MTA-STS decides), its policy at the lab's policy
/// server, which goes down and comes back while mail flows.
const STS_DOMAIN: &str = "sts.faults.test";
const STS_MX: &str = "mx-sts.faults.test";
const STS_POLICY_HOST: &str = "mta-sts.sts.faults.test";

/// The recipients of message `n`: every fifth message (n = 3 mod 5) goes
/// to the MTA-STS domain.
fn recipients(n: usize) -> Vec<String> {
    if n % 5 == 3 {
        vec![format!("u{n}@{STS_DOMAIN}")]
    } else if n.is_multiple_of(10) {
        vec![format!("u{n}a@faults.test"), format!("u{n}b@faults.test")]
    } else {
        vec![format!("u{n}@faults.test")]
    }
}

fn message_id(n: usize) -> String {
    format!("<fault-{n}@{LEGACY_DOMAIN}>")
}

/// The body of message `n` as it travels (CRLF lines): 3 to 402 lines of
/// 60-odd bytes, some starting with a dot (dot-stuffed on the wire).
fn body(n: usize) -> String {
    let lines = 3 + (n * 7919) % 400;
    let mut s = String::with_capacity(lines * 72);
    for i in 0..lines {
        let dot = if i % 37 == 5 { "." } else { "" };
        s.push_str(&format!(
            "{dot}message {n} line {i}: the quick brown fox jumps over the lazy dog\r\n"
        ));
    }
    s
}

fn message(n: usize) -> String {
    let to = recipients(n)
        .iter()
        .map(|r| format!("<{r}>"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "From: <sender@{LEGACY_DOMAIN}>\r\nTo: {to}\r\nSubject: fault run {n}\r\nMessage-ID: {}\r\n\r\n{}",
        message_id(n),
        body(n)
    )
}

/// The receiver's judgement of a kept message: its body is message `n`'s,
/// byte for byte (Postfix adds headers, never touches the body).
fn content_ok(message_id: &str, content: &[u8]) -> bool {
    let Some(n) = message_id
        .strip_prefix("<fault-")
        .and_then(|s| s.split_once('@'))
        .and_then(|(n, _)| n.parse::<usize>().ok())
    else {
        return false;
    };
    let text = String::from_utf8_lossy(content);
    text.split_once("\r\n\r\n")
        .is_some_and(|(_, b)| b == body(n))
}

/// Replaces the TLSA RRset of the receiver with `3 1 1` records for the
/// SPKI digests given, in one knotd transaction (knotd re-signs), and
/// waits until the authoritative server serves exactly them.
fn publish_tlsa(lab: &DnsLab, spkis: &[&str]) {
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
    run(&["zone-unset", ZONE, &format!("{TLSA_NAME}."), "TLSA"]);
    for spki in spkis {
        run(&[
            "zone-set",
            ZONE,
            &format!("{TLSA_NAME}."),
            "2",
            "TLSA",
            "3",
            "1",
            "1",
            spki,
        ]);
    }
    run(&["zone-commit", ZONE]);
    let mut want: Vec<String> = spkis
        .iter()
        .map(|s| format!("3 1 1 {}", s.to_ascii_uppercase()))
        .collect();
    want.sort();
    wait_for(&format!("knotd to serve the TLSA RRset {want:?}"), || {
        let a = dig::query(Server::Leaf.addr(), TLSA_NAME, "TLSA", Ask::AUTHORITATIVE);
        let got: Vec<String> = a
            .data("TLSA")
            .iter()
            .map(|d| {
                let f: Vec<&str> = d.split_whitespace().collect();
                format!(
                    "{} {}",
                    f[..3].join(" "),
                    f[3..].concat().to_ascii_uppercase()
                )
            })
            .collect();
        (got == want && a.signed()).then_some(())
    });
}

/// The receiver for faults.test with the first key, faults off, and the
/// TLSA RRset naming that key (a rerun against a kept lab may find
/// another RRset).
fn start_receiver(lab: &DnsLab, seed: u64) -> FaultMx {
    publish_tlsa(lab, &[&lab.cert(KEY_FIRST).spki_sha256]);
    let cert = lab.cert(KEY_FIRST);
    FaultMx::start(
        RECEIVER,
        KEY_FIRST,
        &cert.chain_pem,
        &cert.key_pem,
        seed,
        content_ok,
    )
}

/// danegate (enforce, validate mode through `via`, IPv4, `dns_extra`
/// added to `[dns]`, then `timeouts`), listening, and a legacy Postfix on
/// `smtpd` relaying to it.
fn start_relays(
    lab: &DnsLab,
    scratch: &util::Lab,
    name: &str,
    via: SocketAddr,
    dns_extra: &str,
    timeouts: &str,
    smtpd: SocketAddr,
) -> (Running, Postfix) {
    let listen = gate::next_listen();
    let dns = Dns::Validate {
        via,
        anchor: Anchor::Dnskey,
    };
    let text = gate::config(lab, listen, dns, "enforce", timeouts).replacen(
        "[dns]\n",
        &format!("[dns]\nfamilies = \"ipv4\"\n{dns_extra}"),
        1,
    );
    let mut danegate = Running::start(&gate::write_config(lab, name, &text));
    danegate.wait_log(&format!("listening on {listen}"), Duration::from_secs(15));
    let legacy = Postfix::legacy(
        scratch,
        smtpd,
        &format!("[{}]:{}", listen.ip(), listen.port()),
    );
    (danegate, legacy)
}

/// An SMTP session with the legacy Postfix, past EHLO.
fn submission(smtpd: SocketAddr) -> Client {
    let mut c = Client::connect(smtpd);
    let greeting = c.read_reply().expect("greeting from the legacy Postfix");
    assert_eq!(greeting.code, 220, "{}", greeting.full());
    c.expect("EHLO submitter.lab.test", 250);
    c
}

/// Submits message `n`; the legacy Postfix must accept it.
fn submit_one(c: &mut Client, n: usize) {
    c.expect(&format!("MAIL FROM:<sender@{LEGACY_DOMAIN}>"), 250);
    for r in recipients(n) {
        c.expect(&format!("RCPT TO:<{r}>"), 250);
    }
    c.expect("DATA", 354);
    let reply = c.send_data(message(n).as_bytes());
    assert_eq!(reply.code, 250, "message {n}: {}", reply.full());
    // Keep the transcript small: one session carries many messages.
    c.transcript.clear();
}

/// Flushes the legacy queue every 3 s until the receiver has `total`
/// recipients and the queue is empty (at most `limit`).
fn drain(mx: &FaultMx, legacy: &Postfix, total: usize, limit: Duration) {
    let mut flushed = Instant::now();
    util::wait_for_within(
        limit,
        "every recipient delivered and the legacy queue empty",
        || {
            if flushed.elapsed() >= Duration::from_secs(3) {
                legacy.flush();
                flushed = Instant::now();
            }
            (mx.delivered() >= total && legacy.queue().is_empty()).then_some(())
        },
    );
}

/// One disturbance of the schedule.
#[derive(Debug, Clone, Copy)]
enum Event {
    DnsSilent,
    DnsServfail,
    TlsaMismatch,
    Rollover,
    /// The MTA-STS policy host is down and the policy id changes (every
    /// delivery then tries a fetch, and the refreshes fail): the cached
    /// policy must stay in force. It comes back with the new id.
    PolicyHostDown,
}

/// Submits messages `first, first + SUBMITTERS, ...` to the legacy Postfix
/// over one SMTP session; every one must be accepted.
fn submit(first: usize, submitted: &AtomicUsize) {
    let mut c = submission(LEGACY_SMTPD);
    for n in (first..MESSAGES).step_by(SUBMITTERS) {
        submit_one(&mut c, n);
        submitted.fetch_add(1, Relaxed);
        std::thread::sleep(PACE);
    }
    let _ = c.cmd("QUIT");
}

/// Postfix's `status=` lines, by recipient.
fn postfix_statuses(log: &str) -> HashMap<String, Vec<String>> {
    let mut by_rcpt: HashMap<String, Vec<String>> = HashMap::new();
    for l in log.lines().filter(|l| l.contains(" status=")) {
        if let Some(to) = l
            .split_once(" to=<")
            .and_then(|(_, r)| r.split_once('>'))
            .map(|(a, _)| a)
        {
            by_rcpt
                .entry(to.to_string())
                .or_default()
                .push(l.to_string());
        }
    }
    by_rcpt
}

#[test]
#[ignore = "needs the integration lab: run integration/test-all"]
fn thousand_messages_through_postfix_survive_faults() {
    // Declared first, dropped last: a failure keeps Postfix's dir.
    let scratch = util::Lab::new("dnslab-faultrun");
    let lab = DnsLab::shared();
    let seed = std::env::var("DANEGATE_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
    eprintln!("fault run: seed {seed} (DANEGATE_FAULT_SEED={seed} repeats the random choices)");
    let mut rng = StdRng::seed_from_u64(seed);
    let spki = |host: &str| lab.cert(host).spki_sha256.clone();
    let (first, next, wrong) = (spki(KEY_FIRST), spki(KEY_NEXT), spki(KEY_WRONG));

    let resolver = FaultyResolver::start();
    let mx = start_receiver(&lab, rng.gen());
    let pki = StsPki::new(&scratch.subdir("sts-pki"));
    let sts_cert = pki.issue("mx-sts", &[STS_MX]);
    mx.set_sni_certificate(STS_MX, &sts_cert.chain_pem, &sts_cert.key_pem);
    let mut policy_host = PolicyServer::start_in(&scratch.subdir("policy-server"), &pki);
    policy_host.serve(
        STS_POLICY_HOST,
        policy("enforce", &[STS_MX], 86400).as_bytes(),
    );
    set_txt(
        &lab,
        ZONE,
        &format!("_mta-sts.{STS_DOMAIN}"),
        "v=STSv1; id=f1",
    );
    // refresh_interval 2: the cached policy is fetched again every 2 s
    // (failed fetches retried after 1 s), so the outage meets refreshes.
    let sts_config = format!(
        "{TIMEOUTS}\n[mta_sts]\nca_file = {:?}\nfetch_timeout = 2\nrefresh_interval = 2\n",
        pki.ca_pem.display().to_string()
    );
    let (mut danegate, legacy) = start_relays(
        &lab,
        &scratch,
        "faultrun",
        FAULTY,
        "timeout = 2\n",
        &sts_config,
        LEGACY_SMTPD,
    );

    // The MTA-STS policy is in danegate's cache before the first message
    // (asked through its control socket): from then on every message to
    // the domain needs it, whatever happens to DNS or the policy host.
    let primed = Command::new(gate::BIN)
        .args(["sts", "refresh", STS_DOMAIN, "--config"])
        .arg(lab.dir().join("danegate/faultrun.toml"))
        .env("NO_COLOR", "1")
        .output()
        .expect("run danegate sts refresh");
    let out = String::from_utf8_lossy(&primed.stdout);
    assert!(
        primed.status.success()
            && out.contains("cached policy")
            && out.contains("id f1, mode enforce"),
        "danegate sts refresh: {out}{}",
        String::from_utf8_lossy(&primed.stderr)
    );

    // Chaos while the messages are submitted.
    let started = Instant::now();
    mx.set_rate(0.25);
    let submitted = Arc::new(AtomicUsize::new(0));
    let submitters: Vec<_> = (0..SUBMITTERS)
        .map(|i| {
            let s = submitted.clone();
            std::thread::spawn(move || submit(i, &s))
        })
        .collect();
    let mut events = [
        Event::DnsSilent,
        Event::DnsServfail,
        Event::TlsaMismatch,
        Event::Rollover,
        Event::PolicyHostDown,
    ];
    let mut policy_id = 1;
    events.shuffle(&mut rng);
    let mut current = first.clone();
    let mut current_key = KEY_FIRST;
    let mut timeline = Vec::new();
    let secs = |rng: &mut StdRng, lo: f64, hi: f64| Duration::from_secs_f64(rng.gen_range(lo..hi));
    for event in events {
        std::thread::sleep(secs(&mut rng, 1.5, 3.5));
        let during = secs(&mut rng, 4.0, 7.0);
        timeline.push(format!(
            "{:5.1}s {event:?} for {:.1}s",
            started.elapsed().as_secs_f64(),
            during.as_secs_f64()
        ));
        match event {
            Event::DnsSilent | Event::DnsServfail => {
                resolver.set(match event {
                    Event::DnsSilent => DnsFault::Silent,
                    _ => DnsFault::Servfail,
                });
                std::thread::sleep(during);
                resolver.set(DnsFault::None);
            }
            Event::TlsaMismatch => {
                publish_tlsa(&lab, &[&wrong]);
                std::thread::sleep(during);
                publish_tlsa(&lab, &[&current]);
            }
            Event::Rollover => {
                // Publish the next key beside the current one, wait out
                // the TTL, switch the receiver, withdraw the old record.
                let (new, new_key) = if current_key == KEY_FIRST {
                    (next.clone(), KEY_NEXT)
                } else {
                    (first.clone(), KEY_FIRST)
                };
                publish_tlsa(&lab, &[&current, &new]);
                std::thread::sleep(during / 2);
                let c = lab.cert(new_key);
                mx.set_certificate(new_key, &c.chain_pem, &c.key_pem);
                std::thread::sleep(during / 2);
                publish_tlsa(&lab, &[&new]);
                current = new;
                current_key = new_key;
            }
            Event::PolicyHostDown => {
                policy_host.stop();
                policy_id += 1;
                let txt = format!("v=STSv1; id=f{policy_id}");
                set_txt(&lab, ZONE, &format!("_mta-sts.{STS_DOMAIN}"), &txt);
                std::thread::sleep(during);
                policy_host.start();
            }
        }
    }
    for s in submitters {
        s.join().expect("a submitter failed");
    }
    assert_eq!(submitted.load(Relaxed), MESSAGES);
    let chaos = started.elapsed();

    // Every fault clears; the queue must drain.
    mx.set_rate(0.0);
    resolver.set(DnsFault::None);
    drain(&mx, &legacy, RECIPIENTS, Duration::from_secs(240));
    let drained = started.elapsed();
    // Let late duplicates, if any, arrive before judging.
    std::thread::sleep(Duration::from_secs(3));

    let report = mx.report();
    let maillog = legacy.maillog();
    let statuses = postfix_statuses(&maillog);
    let log = danegate.log();
    assert!(
        danegate.exited().is_none(),
        "danegate exited during the run:\n{}",
        util::tail(&log, 40)
    );

    // What happened, for the test output.
    let mut deferrals: BTreeMap<String, usize> = BTreeMap::new();
    for lines in statuses.values() {
        for l in lines.iter().filter(|l| l.contains("status=deferred")) {
            *deferrals.entry(deferral_kind(l)).or_default() += 1;
        }
    }
    eprintln!(
        "fault run: {MESSAGES} messages, {RECIPIENTS} recipients; chaos {:.1}s, drained at {:.1}s",
        chaos.as_secs_f64(),
        drained.as_secs_f64()
    );
    for t in &timeline {
        eprintln!("fault run: {t}");
    }
    eprintln!(
        "fault run: receiver: {} connections, {} TLS handshakes, injected {:?}",
        report.connections, report.handshakes, report.injected
    );
    let mut by_key: BTreeMap<&str, usize> = BTreeMap::new();
    for k in &report.kept {
        *by_key.entry(&k.certificate).or_default() += k.rcpts.len();
    }
    eprintln!("fault run: recipients delivered by receiver key: {by_key:?}");
    eprintln!("fault run: resolver: {:?}", resolver.counts());
    eprintln!("fault run: Postfix deferrals by cause: {deferrals:#?}");

    // 1. The receiver kept every recipient exactly once, intact, over TLS.
    assert_eq!(
        report.plaintext_mail, 0,
        "a transaction was tried without TLS"
    );
    let mut kept: HashMap<String, Vec<(usize, &str)>> = HashMap::new();
    for (i, k) in report.kept.iter().enumerate() {
        assert!(k.content_ok, "message {} arrived altered", k.message_id);
        for r in &k.rcpts {
            kept.entry(r.clone())
                .or_default()
                .push((i + 1, &k.message_id));
        }
    }
    let mut problems = Vec::new();
    for n in 0..MESSAGES {
        for r in recipients(n) {
            let copies = kept.get(&r).map(Vec::as_slice).unwrap_or(&[]);
            let id = message_id(n);
            match copies {
                [(queue_id, got)] if *got == id => {
                    // 2. Postfix: one `sent`, acknowledged with that copy's
                    // 250 (the receiver's queue ID), no bounce.
                    let lines = statuses.get(&r).map(Vec::as_slice).unwrap_or(&[]);
                    let sent: Vec<&String> =
                        lines.iter().filter(|l| l.contains("status=sent")).collect();
                    let ack = format!("Ok: queued as F{queue_id})");
                    if sent.len() != 1 || !sent[0].contains(&ack) {
                        problems.push(format!(
                            "{r}: Postfix sent lines {sent:#?}, want one with {ack:?}"
                        ));
                    }
                    if let Some(b) = lines
                        .iter()
                        .find(|l| l.contains("status=bounced") || l.contains("status=expired"))
                    {
                        problems.push(format!("{r}: {b}"));
                    }
                }
                other => problems.push(format!("{r} ({id}): kept {other:?}")),
            }
            // 3. danegate: delivered once, DANE-verified (MTA-STS-verified
            // for the MTA-STS domain).
            let delivered: Vec<&str> = log
                .lines()
                .filter(|l| l.contains(&format!("to=<{r}>")) && l.contains("delivered"))
                .collect();
            let want = if r.ends_with(STS_DOMAIN) {
                " tls=\"verified(sts) "
            } else {
                " tls=\"verified(dane) "
            };
            if delivered.len() != 1 || !delivered[0].contains(want) {
                problems.push(format!("{r}: danegate delivered lines {delivered:#?}"));
            }
        }
    }
    let unexpected = report.kept.iter().map(|k| k.rcpts.len()).sum::<usize>() - RECIPIENTS;
    assert!(
        problems.is_empty() && unexpected == 0,
        "{} problems, {unexpected} extra copies:\n{}",
        problems.len(),
        problems[..problems.len().min(30)].join("\n")
    );

    // 4. The faults happened, and each showed up as a deferral.
    for f in Fault::CONNECTION.iter().chain(&Fault::TRANSACTION) {
        assert!(
            report.injected.get(f).copied().unwrap_or(0) > 0,
            "{f:?} was never injected: {:?}",
            report.injected
        );
    }
    // The rollover happened while mail flowed: both keys delivered.
    assert!(
        by_key.get(KEY_FIRST).is_some_and(|&n| n > 0)
            && by_key.get(KEY_NEXT).is_some_and(|&n| n > 0),
        "{by_key:?}"
    );
    let counts = resolver.counts();
    assert!(counts.dropped > 0 && counts.servfailed > 0, "{counts:?}");
    // The policy host's outage was met (fetches failed, the cached policy
    // stayed) and its return too (the new id was fetched).
    let failed_fetch = format!("MTA-STS policy fetch for {STS_DOMAIN} failed: ");
    assert!(
        log.lines()
            .any(|l| l.contains(&failed_fetch) && l.contains("the cached policy (id f")),
        "no failed policy fetch with the cached policy kept"
    );
    let refetched =
        format!("MTA-STS policy of {STS_DOMAIN} fetched: id f{policy_id}, mode enforce");
    assert!(log.contains(&refetched), "no fetch of the new policy id");
    assert!(
        by_key.get(STS_MX).is_some_and(|&n| n == MESSAGES / 5),
        "{by_key:?}"
    );
    for (cause, _) in CAUSES {
        if *cause == "MAIL stall" {
            // Mostly on reused connections, where danegate reconnects
            // instead of deferring; too rare a deferral to require.
            continue;
        }
        assert!(
            deferrals.contains_key(*cause),
            "no Postfix deferral caused by {cause:?}: {deferrals:#?}"
        );
    }
    // Every deferral was danegate's 4xx with an enhanced status code.
    for lines in statuses.values() {
        for l in lines.iter().filter(|l| l.contains("status=deferred")) {
            let said = l.split_once(" said: ").map(|(_, s)| s).unwrap_or("");
            let b = said.as_bytes();
            let coded = b.len() > 10
                && b[0] == b'4'
                && b[3] == b' '
                && b[4] == b'4'
                && b[5] == b'.'
                && said[..3].bytes().all(|c| c.is_ascii_digit());
            assert!(
                coded,
                "not a 4xx reply with an enhanced code from danegate: {l}"
            );
        }
    }
    assert!(
        !log.contains("panicked"),
        "danegate panicked:\n{}",
        util::tail(&log, 40)
    );
    danegate.stop();
}

/// The causes of deferral the run must produce, each named by what
/// danegate's reply to Postfix says: `(cause, alternatives)`, where a line
/// shows the cause when it contains every needle of one alternative. A
/// receiver's `AfterDataReset` produces none (danegate reconnects when a
/// reused connection is gone), so it is not listed.
const CAUSES: &[(&str, &[&[&str]])] = &[
    ("resolver silent", &[&["451 4.4.3 ", " failed: timed out"]]),
    (
        "resolver SERVFAIL",
        &[&["451 4.4.3 ", " failed: server failure (SERVFAIL)"]],
    ),
    (
        "TLSA mismatch",
        &[&["451 4.7.5 TLS handshake with mx.faults.test[127.0.25.12]:25 failed: \
             no TLSA record of _25._tcp.mx.faults.test matches the certificate chain"]],
    ),
    (
        "greeting stall",
        &[&["451 4.4.2 ", "timed out while receiving the initial server greeting"]],
    ),
    (
        "greeting reset",
        &[
            &["451 4.4.1 connect to mx.faults.test[127.0.25.12]:25: Connection reset by peer"],
            &["451 4.4.2 lost connection with mx.faults.test[127.0.25.12]:25 \
               while receiving the initial server greeting: Connection reset by peer"],
        ],
    ),
    ("EHLO stall", &[&["451 4.4.2 ", "timed out while sending EHLO"]]),
    (
        "handshake stall",
        &[&["451 4.4.2 ", "timed out while performing the TLS handshake"]],
    ),
    ("MAIL stall", &[&["451 4.4.2 ", "timed out while sending MAIL FROM"]]),
    (
        "RCPT reset",
        &[&["451 4.4.2 ", "while sending RCPT TO: Connection reset by peer"]],
    ),
    ("RCPT stall", &[&["451 4.4.2 ", "timed out while sending RCPT TO"]]),
    (
        "RCPT 451",
        &[&["451 4.3.0 mx.faults.test[127.0.25.12]:25 said: \
             Temporary failure (fault injected) (in reply to RCPT TO command)"]],
    ),
    ("DATA stall", &[&["451 4.4.2 ", "timed out while sending DATA"]]),
    (
        "content reset",
        &[
            &["451 4.4.2 lost connection with mx.faults.test[127.0.25.12]:25 while sending message content"],
            &["451 4.4.2 lost connection with mx.faults.test[127.0.25.12]:25 while sending end of data"],
        ],
    ),
    (
        "final dot stall",
        &[&[
            "451 4.4.2 ",
            "timed out while sending end of data -- message may be sent more than once",
        ]],
    ),
    (
        "final dot 451",
        &[&["451 4.3.0 mx.faults.test[127.0.25.12]:25 said: \
             Temporary failure after the data (fault injected) (in reply to end of DATA command)"]],
    ),
];

/// The cause of a Postfix deferral line (see [`CAUSES`]), or `other: ...`.
fn deferral_kind(line: &str) -> String {
    CAUSES
        .iter()
        .find(|(_, alternatives)| {
            alternatives
                .iter()
                .any(|needles| needles.iter().all(|n| line.contains(n)))
        })
        .map(|(cause, _)| cause.to_string())
        .unwrap_or_else(|| {
            let said = line.split_once("said: ").map(|(_, s)| s).unwrap_or(line);
            format!("other: {said}")
        })
}

/// Where the legacy Postfix of the reuse-limit test listens.
const LEGACY_SMTPD_REUSE: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(127, 0, 53, 25), 25));

/// `timeouts.connection_reuse_limit` in the lab: mail flows steadily to
/// faults.test, so danegate keeps reusing one verified connection from
/// its cache; then the TLSA RRset is replaced by one naming a key the
/// receiver lacks. Without the limit the warm connection, verified under
/// the old record, would carry mail for as long as the flow lasts; with a
/// limit of 4 s nothing may be delivered from 4 s (the limit) + 2 s (the
/// TTL) + 2 s (slack) after the change, and Postfix must log 4.7.5
/// deferrals. Restoring the record delivers everything exactly once.
#[test]
#[ignore = "needs the integration lab: run integration/test-all"]
fn tlsa_change_reaches_warm_connections_within_the_reuse_limit() {
    const LIMIT: u64 = 4;
    let scratch = util::Lab::new("dnslab-reuse-limit");
    let lab = DnsLab::shared();
    let first = lab.cert(KEY_FIRST).spki_sha256.clone();
    let wrong = lab.cert(KEY_WRONG).spki_sha256.clone();
    let mx = start_receiver(&lab, 1);
    let timeouts = format!("[timeouts]\nconnection_cache = 30\nconnection_reuse_limit = {LIMIT}\n");
    let (mut danegate, legacy) = start_relays(
        &lab,
        &scratch,
        "reuse-limit",
        VALIDATING,
        "",
        &timeouts,
        LEGACY_SMTPD_REUSE,
    );

    // One message every 250 ms: 3 s before the change, 12 s after it.
    let mut c = submission(LEGACY_SMTPD_REUSE);
    let started = Instant::now();
    let mut changed: Option<Instant> = None;
    let mut n = 0;
    while started.elapsed() < Duration::from_secs(15) {
        if changed.is_none() && started.elapsed() >= Duration::from_secs(3) {
            publish_tlsa(&lab, &[&wrong]);
            changed = Some(Instant::now());
        }
        if n % 5 == 3 {
            // Only faults.test here: the MTA-STS domain's connections
            // would count as handshakes of their own.
            n += 1;
        }
        submit_one(&mut c, n);
        n += 1;
        std::thread::sleep(Duration::from_millis(250));
    }
    let _ = c.cmd("QUIT");
    let changed = changed.expect("the record was changed");
    let deadline = changed + Duration::from_secs(LIMIT + 4);
    let during = mx.report();
    publish_tlsa(&lab, &[&first]);

    // Before the change: delivered, over few connections (they were reused).
    let before = during.kept.iter().filter(|k| k.at < changed).count();
    assert!(before >= 8, "only {before} delivered before the change");
    assert!(
        during.handshakes <= 3,
        "{} TLS handshakes: the connection was not reused",
        during.handshakes
    );
    // From LIMIT + TTL + slack after the change: nothing delivered.
    let late: Vec<String> = during
        .kept
        .iter()
        .filter(|k| k.at > deadline)
        .map(|k| format!("{} at +{:?}", k.message_id, k.at - changed))
        .collect();
    assert!(
        late.is_empty(),
        "delivered under the withdrawn TLSA record more than {LIMIT} s + TTL after the change: {late:#?}"
    );
    let mismatch = "said: 451 4.7.5 TLS handshake with mx.faults.test[127.0.25.12]:25 failed: \
                    no TLSA record of _25._tcp.mx.faults.test matches the certificate chain";
    let deferred = util::lines_with(&legacy.maillog(), &["status=deferred", mismatch]).len();
    assert!(deferred > 0, "no 4.7.5 deferral at Postfix");

    // The record restored: everything delivered, exactly once.
    let submitted = || (0..n).filter(|i| i % 5 != 3);
    let total: usize = submitted().map(|i| recipients(i).len()).sum();
    drain(&mx, &legacy, total, Duration::from_secs(60));
    let report = mx.report();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for k in &report.kept {
        assert!(k.content_ok, "{} arrived altered", k.message_id);
        for r in &k.rcpts {
            *seen.entry(r.as_str()).or_default() += 1;
        }
    }
    for i in submitted() {
        for r in recipients(i) {
            assert_eq!(seen.get(r.as_str()), Some(&1), "{r}");
        }
    }
    assert_eq!(seen.len(), total);
    eprintln!(
        "reuse limit: {n} messages; {before} delivered before the change over {} handshakes; \
         {deferred} deferred 4.7.5; last delivery under the old record at +{:?}",
        during.handshakes,
        during
            .kept
            .iter()
            .filter(|k| k.at >= changed)
            .map(|k| k.at - changed)
            .max()
    );
    danegate.stop();
}
