//! Postfix as the legacy MTA, danegate as its relayhost, a Postfix receiver
//! as the destination: what the legacy MTA sees for each outcome
//! (dane-rules.md §5), and what arrives.

use crate::danegate::{self, Config, Danegate};
use crate::fake::DropAfterData;
use crate::message::{self, Field};
use crate::postfix::{Postfix, LEGACY_DOMAIN};
use crate::util::{self, Lab};
use crate::Addrs;

/// Header fields prepended to a relayed message, outermost first: the
/// receiver's virtual(8) adds three, each MTA one Received. danegate adds
/// none.
pub const PREPENDED: [&str; 5] = [
    "Return-Path",
    "X-Original-To",
    "Delivered-To",
    "Received",
    "Received",
];

pub fn sender() -> String {
    format!("sender@{LEGACY_DOMAIN}")
}

/// The receiver's Received field shows danegate's EHLO name, TLS, and that
/// it was the destination.
pub fn assert_receiver_received(f: &Field) {
    assert!(
        f.text.starts_with("Received: from relay.example.net ("),
        "{}",
        f.text
    );
    assert!(
        f.text
            .contains("by mx.example.test (Postfix) with ESMTPS id "),
        "{}",
        f.text
    );
}

/// Postfix's acknowledgement of a message, `Ok: queued as ID` to the end
/// of DATA or `Ok: N bytes queued as ID` to BDAT LAST, followed by `tail`,
/// somewhere in `text`.
pub fn says_queued(text: &str, id: &str, tail: &str) -> bool {
    text.match_indices("Ok: ").any(|(i, _)| {
        let rest = &text[i + 4..];
        let rest = match rest.split_once(" bytes ") {
            Some((n, r)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => r,
            _ => rest,
        };
        rest.starts_with(&format!("queued as {id}{tail}"))
    })
}

/// The queue id a Postfix log line is about (`... smtpd[1]: 3F1A2B: to=...`).
pub fn queue_id(line: &str) -> String {
    line.split(": ")
        .nth(1)
        .unwrap_or_else(|| panic!("no queue id in {line:?}"))
        .to_string()
}

/// Checks danegate's log for "one destination domain per transaction":
/// exactly one of `rcpts` has a summary line with `452 4.5.3`, and a later
/// one with `status=250 2.0.0` (its new transaction). Returns it.
pub fn refused_then_relayed(log: &str, rcpts: &[&str]) -> String {
    let refused: Vec<(&str, usize)> = rcpts
        .iter()
        .filter_map(|r| line_index(log, &[&danegate::rcpt(r), "452 4.5.3"]).map(|i| (*r, i)))
        .collect();
    assert_eq!(
        refused.len(),
        1,
        "expected one of {rcpts:?} refused with 452 4.5.3 in danegate's log:\n{log}"
    );
    let (second, at) = refused[0];
    let rcpt = danegate::rcpt(second);
    assert!(
        log.lines()
            .skip(at + 1)
            .any(|l| l.contains(&rcpt) && l.contains("status=\"250 2.0.0")),
        "{second} not relayed after its 452 4.5.3:\n{log}"
    );
    second.to_string()
}

/// Index of the first line of `log` containing every needle.
fn line_index(log: &str, needles: &[&str]) -> Option<usize> {
    log.lines()
        .position(|l| needles.iter().all(|n| l.contains(n)))
}

/// (a) A message with awkward content arrives byte for byte; the legacy MTA
/// logs `status=sent` with danegate as relay.
#[test]
#[ignore = "needs the integration lab: run integration/test-all"]
fn postfix_message_arrives_byte_for_byte() {
    let lab = Lab::new("postfix-byte-exact");
    let a = Addrs::new(11);
    let rx = Postfix::receiver(
        &lab,
        a.receiver(),
        &["example.test"],
        &["user@example.test"],
    );
    let dg = Danegate::start(
        &lab,
        &Config::example(a.danegate(), a.receiver(), &["example.test"]),
    );
    let legacy = Postfix::legacy(&lab, a.legacy(), &a.relayhost());
    let from = sender();

    let msg = message::tricky("a", &from, &["user@example.test"]);
    let r = legacy.submit(&from, &["user@example.test"], &msg);
    assert_eq!(r.code, 250, "{}", r.full());

    let delivered = rx.wait_messages("user@example.test", 1);
    let fields = message::assert_delivered_exactly(&delivered[0], &PREPENDED, &msg);
    assert_eq!(fields[0].text, format!("Return-Path: <{from}>\n"));
    assert_receiver_received(&fields[3]);
    assert!(
        fields[4]
            .text
            .contains("by mta.legacy.lab.test (Postfix) with ESMTP id "),
        "{}",
        fields[4].text
    );
    rx.wait_log(&["TLS connection established from localhost[127.0.0.1]"]);

    let sent = legacy.wait_status("user@example.test", "sent");
    let relay = format!("relay=127.0.0.1[127.0.0.1]:{}", a.danegate().port());
    assert!(sent.contains(&relay), "{sent}");
    assert!(sent.contains("status=sent (250 2.0.0 "), "{sent}");
    assert_eq!(
        legacy.statuses("user@example.test").len(),
        1,
        "{}",
        legacy.maillog()
    );

    let summary = dg.wait_log(&[&danegate::rcpt("user@example.test"), "status=\"250 2.0.0"]);
    assert!(
        summary.contains(&format!("[{}]:25", a.receiver().ip())),
        "{summary}"
    );
    // The receiver offers CHUNKING, so the legacy MTA's DATA went on as
    // BDAT (RFC 3030) with danegate's own 354.
    let stats = rx.wait_log(&["disconnect from localhost[127.0.0.1]", " mail=1 "]);
    assert!(
        stats.contains(" bdat=1 ") && !stats.contains(" data="),
        "{stats}"
    );
    legacy.wait_queue_empty();
}

/// (a') The same message to a receiver without CHUNKING: MAIL, RCPT and
/// DATA go as one pipelined group (RFC 2920), the content after the
/// receiver's 354, byte for byte.
#[test]
#[ignore = "needs the integration lab: run integration/test-all"]
fn postfix_message_arrives_byte_for_byte_over_pipelined_data() {
    let lab = Lab::new("postfix-byte-exact-data");
    let a = Addrs::new(15);
    let rx = Postfix::receiver_with(
        &lab,
        a.receiver(),
        &["example.test"],
        &["user@example.test"],
        &[
            "smtpd_discard_ehlo_keywords = chunking",
            "smtpd_tls_loglevel = 1",
        ],
    );
    let dg = Danegate::start(
        &lab,
        &Config::example(a.danegate(), a.receiver(), &["example.test"]),
    );
    let legacy = Postfix::legacy(&lab, a.legacy(), &a.relayhost());
    let from = sender();
    let msg = message::tricky("a", &from, &["user@example.test"]);
    let r = legacy.submit(&from, &["user@example.test"], &msg);
    assert_eq!(r.code, 250, "{}", r.full());
    let delivered = rx.wait_messages("user@example.test", 1);
    let fields = message::assert_delivered_exactly(&delivered[0], &PREPENDED, &msg);
    assert_receiver_received(&fields[3]);
    legacy.wait_status("user@example.test", "sent");
    dg.wait_log(&[&danegate::rcpt("user@example.test"), "status=\"250 2.0.0"]);
    let stats = rx.wait_log(&["disconnect from localhost[127.0.0.1]", " mail=1 "]);
    assert!(
        stats.contains(" data=1 ") && !stats.contains(" bdat="),
        "{stats}"
    );
    legacy.wait_queue_empty();
}

/// (b) Two recipient domains in one submission: danegate takes the first
/// domain and answers `452 4.5.3` to the second, which the legacy MTA then
/// sends in a transaction of its own.
#[test]
#[ignore = "needs the integration lab: run integration/test-all"]
fn postfix_two_domains_go_in_two_transactions() {
    let lab = Lab::new("postfix-two-domains");
    let a = Addrs::new(12);
    let rx = Postfix::receiver(
        &lab,
        a.receiver(),
        &["one.test", "two.test"],
        &["a@one.test", "b@two.test"],
    );
    let dg = Danegate::start(
        &lab,
        &Config::example(a.danegate(), a.receiver(), &["one.test", "two.test"]),
    );
    let legacy = Postfix::legacy(&lab, a.legacy(), &a.relayhost());
    let from = sender();
    let rcpts = ["a@one.test", "b@two.test"];

    let msg = message::simple("b", &from, &rcpts);
    assert_eq!(legacy.submit(&from, &rcpts, &msg).code, 250);

    for r in rcpts {
        let delivered = rx.wait_messages(r, 1);
        let fields = message::assert_delivered_exactly(&delivered[0], &PREPENDED, &msg);
        assert_receiver_received(&fields[3]);
        let sent = legacy.wait_status(r, "sent");
        assert!(sent.contains("status=sent (250 2.0.0 "), "{sent}");
    }
    // The receiver got them as two transactions (two queue ids).
    let ids: Vec<String> = rcpts
        .iter()
        .map(|r| queue_id(&rx.wait_status(r, "sent")))
        .collect();
    assert_ne!(
        ids[0],
        ids[1],
        "one transaction for both domains:\n{}",
        rx.maillog()
    );

    // danegate refused the second domain, then relayed it later; Postfix
    // logged that 452 as a deferral and retried the recipient alone.
    for r in rcpts {
        // danegate may log just after it passed the 250 on.
        dg.wait_log(&[&danegate::rcpt(r), "status=\"250 2.0.0"]);
    }
    let second = refused_then_relayed(&dg.log(), &rcpts);
    let first = rcpts.iter().find(|r| **r != second).unwrap();
    let st = legacy.statuses(&second);
    assert_eq!(st.len(), 2, "{st:?}");
    assert!(
        st[0].contains("status=deferred (host 127.0.0.1[127.0.0.1] said: 452 4.5.3 "),
        "{st:?}"
    );
    assert!(st[0].contains("(in reply to RCPT TO command)"), "{st:?}");
    assert!(st[1].contains("status=sent (250 2.0.0 "), "{st:?}");
    assert_eq!(legacy.statuses(first).len(), 1, "{}", legacy.maillog());
    assert_eq!(rx.messages("a@one.test").len(), 1);
    assert_eq!(rx.messages("b@two.test").len(), 1);
    legacy.wait_queue_empty();
}

/// (c) The receiver rejects one recipient with 550: the legacy MTA bounces
/// that one, with the receiver's reply behind `host[ip]:port said:`, and
/// delivers the other.
#[test]
#[ignore = "needs the integration lab: run integration/test-all"]
fn postfix_receiver_550_bounces_that_recipient_only() {
    let lab = Lab::new("postfix-550");
    let a = Addrs::new(13);
    let rx = Postfix::receiver(
        &lab,
        a.receiver(),
        &["example.test"],
        &["user@example.test"],
    );
    let dg = Danegate::start(
        &lab,
        &Config::example(a.danegate(), a.receiver(), &["example.test"]),
    );
    let legacy = Postfix::legacy(&lab, a.legacy(), &a.relayhost());
    let from = sender();
    let rcpts = ["user@example.test", "nobody@example.test"];

    let msg = message::simple("c", &from, &rcpts);
    assert_eq!(legacy.submit(&from, &rcpts, &msg).code, 250);

    let receiver_said = format!("{}]:25 said: ", a.receiver().ip());
    let rejection =
        "<nobody@example.test>: Recipient address rejected: User unknown in virtual mailbox table";
    let bounced = legacy.wait_status("nobody@example.test", "bounced");
    let relay = format!("relay=127.0.0.1[127.0.0.1]:{}", a.danegate().port());
    for want in [
        relay.as_str(),
        "said: 550 5.1.1 ",
        receiver_said.as_str(),
        rejection,
        "(in reply to RCPT TO command)",
    ] {
        assert!(bounced.contains(want), "{want:?} missing from:\n{bounced}");
    }

    let delivered = rx.wait_messages("user@example.test", 1);
    message::assert_delivered_exactly(&delivered[0], &PREPENDED, &msg);
    let sent = legacy.wait_status("user@example.test", "sent");
    assert!(sent.contains("status=sent (250 2.0.0 "), "{sent}");

    // The sender gets a bounce naming the destination and its reply.
    let dsn = legacy.wait_messages(&from, 1);
    let dsn = message::squash_whitespace(&String::from_utf8_lossy(&dsn[0]));
    assert!(dsn.contains(receiver_said.trim_end()), "{dsn}");
    assert!(dsn.contains(rejection), "{dsn}");

    let line = dg.wait_log(&[&danegate::rcpt("nobody@example.test")]);
    assert!(line.contains("550 5.1.1"), "{line}");
    assert!(rx.messages("nobody@example.test").is_empty());
    legacy.wait_queue_empty();
}

/// (d) The destination hangs up after DATA: the legacy MTA defers with
/// `451 4.4.2` and keeps the message; once the real receiver is back, a
/// flush delivers it exactly once.
#[test]
#[ignore = "needs the integration lab: run integration/test-all"]
fn postfix_hangup_after_data_defers_then_delivers_once() {
    let lab = Lab::new("postfix-hangup");
    let a = Addrs::new(14);
    let mut rx = Postfix::create(
        &lab,
        crate::postfix::Options {
            name: "receiver".into(),
            hostname: "mx.example.test".into(),
            smtpd: a.receiver(),
            role: crate::postfix::Role::Receiver,
            domains: vec!["example.test".into()],
            mailboxes: vec!["user@example.test".into()],
            rejects: Vec::new(),
        },
    );
    let mut fake = DropAfterData::start(a.receiver());
    let _dg = Danegate::start(
        &lab,
        &Config::example(a.danegate(), a.receiver(), &["example.test"]),
    );
    let legacy = Postfix::legacy(&lab, a.legacy(), &a.relayhost());
    let from = sender();

    let msg = message::tricky("d", &from, &["user@example.test"]);
    assert_eq!(legacy.submit(&from, &["user@example.test"], &msg).code, 250);

    let deferred = legacy.wait_status("user@example.test", "deferred");
    assert!(deferred.contains("said: 451 4.4.2 "), "{deferred}");
    assert!(
        deferred.contains("(in reply to end of DATA command)"),
        "{deferred}"
    );
    // Still queued, with the 451 as the reason (polled: between retries the
    // entry may briefly be in the active queue).
    let queue = util::wait_for("the legacy queue to show the 451 4.4.2", || {
        let q = legacy.queue();
        q.iter().any(|m| m.contains("451 4.4.2")).then_some(q)
    });
    assert_eq!(queue.len(), 1, "{queue:?}");
    assert!(
        queue[0].contains("\"address\": \"user@example.test\""),
        "{queue:?}"
    );
    let sessions = util::wait_for("a fake MX session that got the whole message", || {
        let s = fake.sessions();
        s.iter().any(|s| s.got_final_dot).then_some(s)
    });
    assert!(!sessions.is_empty());

    fake.stop();
    util::wait_free(a.receiver(), "fake MX");
    rx.start();
    legacy.flush();
    legacy.wait_status("user@example.test", "sent");
    legacy.wait_queue_empty();
    let delivered = rx.wait_messages("user@example.test", 1);
    message::assert_delivered_exactly(&delivered[0], &PREPENDED, &msg);
    // Longer than the legacy's retry timers: nothing else arrives.
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert_eq!(
        rx.messages("user@example.test").len(),
        1,
        "delivered more than once"
    );
    let sent: Vec<String> = legacy
        .statuses("user@example.test")
        .into_iter()
        .filter(|l| l.contains("status=sent"))
        .collect();
    assert_eq!(sent.len(), 1, "{sent:?}");
}
