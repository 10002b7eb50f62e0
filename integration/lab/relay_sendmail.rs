//! Sendmail as the legacy MTA in front of danegate, configured with the
//! README's lines: the byte-exact delivery and the one-domain-per-transaction
//! behaviour, as with Postfix and Exim; and what `[127.0.0.1]` as
//! SMART_HOST means to Sendmail on danegate's own host. Sendmail has no
//! daemon here: each delivery attempt is an explicit foreground queue run
//! (`sendmail -q -v`), whose transcript shows the SMTP dialogue.

use crate::danegate::{self, Config, Danegate};
use crate::message;
use crate::postfix::Postfix;
use crate::relay_postfix::PREPENDED;
use crate::relay_postfix::{self, assert_receiver_received, refused_then_relayed, sender};
use crate::sendmail::{self, Mc, Sendmail, HOSTNAME};
use crate::util::Lab;
use crate::Addrs;

/// Runs the queue until it is empty, at most `max` times; returns each
/// run's transcript.
fn run_until_empty(sm: &mut Sendmail, max: usize) -> Vec<String> {
    let mut runs = Vec::new();
    for _ in 0..max {
        runs.push(sm.queue_run());
        if sm.queue_count() == 0 {
            return runs;
        }
    }
    panic!(
        "sendmail queue not empty after {max} runs:\n{}\nmaillog:\n{}\ntranscripts:\n{}",
        sm.queue_listing(),
        sm.maillog(),
        runs.join("\n")
    );
}

/// The receiver's queue id for `rcpt` (its `status=sent` line).
fn receiver_id(rx: &Postfix, rcpt: &str) -> String {
    relay_postfix::queue_id(&rx.wait_status(rcpt, "sent"))
}

/// Sendmail's delivery-attempt lines for `rcpt` (`to=RCPT, ... relay=...`;
/// not the `stat=queued` line of the submission).
fn attempts(sm: &Sendmail, rcpt: &str) -> Vec<String> {
    sm.log_lines(&[&format!(": to={rcpt}, "), ", relay="])
}

/// Sendmail's log line for a message danegate relayed: the relay mailer to
/// `[127.0.0.1]`, and the text of danegate's 250 (the receiver's, passed
/// through: `Ok: queued as ID`) with its enhanced code as `dsn=`.
fn assert_sent_line(line: &str, qid: &str, rcpt: &str, receiver_id: &str) {
    assert!(line.contains(&format!(": {qid}: to={rcpt}, ")), "{line}");
    assert!(line.contains(", mailer=relay, "), "{line}");
    let (_, stat) = line
        .split_once(", relay=[127.0.0.1] [127.0.0.1], dsn=2.0.0, stat=Sent (")
        .unwrap_or_else(|| panic!("{line}"));
    assert!(
        relay_postfix::says_queued(stat, receiver_id, ")") && stat.ends_with(')'),
        "{line}"
    );
}

/// Sendmail's queue id for the message from `from` (its submission line).
fn submitted_id(sm: &Sendmail, from: &str) -> String {
    let lines = sm.log_lines(&[&format!(": from={from}, ")]);
    assert_eq!(lines.len(), 1, "sendmail maillog:\n{}", sm.maillog());
    sendmail::queue_id(&lines[0])
}

/// (f) The byte-exact message, with Sendmail as the legacy MTA and the
/// README's settings (`SMART_HOST` `[127.0.0.1]`, the mailers' `TCP $h
/// PORT`).
#[test]
#[ignore = "needs the integration lab: run integration/test-all"]
fn sendmail_message_arrives_byte_for_byte() {
    let lab = Lab::new("sendmail-byte-exact");
    let a = Addrs::new(23);
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
    let mut sm = Sendmail::new(&lab, a.danegate());
    let from = sender();
    let to = "user@example.test";

    let msg = message::tricky("s1", &from, &[to]);
    sm.submit(&from, &[to], &msg);
    assert_eq!(sm.queue_count(), 1, "{}", sm.queue_listing());
    let runs = run_until_empty(&mut sm, 1);
    let qid = submitted_id(&sm, &from);

    let delivered = rx.wait_messages(to, 1);
    let fields = message::assert_delivered_exactly(&delivered[0], &PREPENDED, &msg);
    assert_eq!(fields[0].text, format!("Return-Path: <{from}>\n"));
    assert_receiver_received(&fields[3]);
    assert!(
        fields[4].text.starts_with(&format!(
            "Received: (from root@localhost)\n\tby {HOSTNAME} (8."
        )),
        "{}",
        fields[4].text
    );
    assert!(
        fields[4].text.contains(&format!(") id {qid}\n")),
        "{}",
        fields[4].text
    );

    let rx_id = receiver_id(&rx, to);
    let port = a.danegate().port();
    assert!(
        runs[0].contains(&format!(
            "{to}... Connecting to [127.0.0.1] port {port} via relay...\n"
        )),
        "{}",
        runs[0]
    );
    assert!(
        relay_postfix::says_queued(runs[0].as_str(), &rx_id, "\n"),
        "{}",
        runs[0]
    );
    let sent = attempts(&sm, to);
    assert_eq!(sent.len(), 1, "sendmail maillog:\n{}", sm.maillog());
    assert_sent_line(&sent[0], &qid, to, &rx_id);
    dg.wait_log(&[&danegate::rcpt(to), "status=\"250 2.0.0"]);
    assert_eq!(rx.messages(to).len(), 1);
}

/// (f) Two domains with Sendmail: after the second domain's 452 4.5.3,
/// Sendmail delivers that recipient in a new transaction. Sendmail 8.17
/// does not retry it on the same connection: it logs it deferred, and the
/// next queue run sends it alone.
#[test]
#[ignore = "needs the integration lab: run integration/test-all"]
fn sendmail_two_domains_go_in_two_transactions() {
    let lab = Lab::new("sendmail-two-domains");
    let a = Addrs::new(24);
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
    let mut sm = Sendmail::new(&lab, a.danegate());
    let from = sender();
    let rcpts = ["a@one.test", "b@two.test"];

    let msg = message::simple("s2", &from, &rcpts);
    sm.submit(&from, &rcpts, &msg);
    let runs = run_until_empty(&mut sm, 3);
    let qid = submitted_id(&sm, &from);

    for r in rcpts {
        let delivered = rx.wait_messages(r, 1);
        message::assert_delivered_exactly(&delivered[0], &PREPENDED, &msg);
    }
    // danegate refused one domain with 452 4.5.3, then relayed it in a
    // later transaction.
    for r in rcpts {
        // danegate may log just after it passed the 250 on.
        dg.wait_log(&[&danegate::rcpt(r), "status=\"250 2.0.0"]);
    }
    let second = refused_then_relayed(&dg.log(), &rcpts);
    let first = *rcpts.iter().find(|r| **r != second).unwrap();
    let (first_id, second_id) = (receiver_id(&rx, first), receiver_id(&rx, &second));
    assert_ne!(
        first_id,
        second_id,
        "one transaction for both domains:\n{}",
        rx.maillog()
    );

    // Run 1: one transaction with both RCPTs; the second gets the 452,
    // Sendmail defers it and sends the message to the first.
    assert_eq!(
        runs.len(),
        2,
        "expected the deferred recipient to go in the second queue run:\n{}",
        runs.join("\n")
    );
    let (run1, run2) = (&runs[0], &runs[1]);
    assert_eq!(run1.matches(">>> MAIL From:").count(), 1, "{run1}");
    assert_eq!(run1.matches(">>> RCPT To:").count(), 2, "{run1}");
    assert!(
        run1.contains(&format!(
            "\n{second}... Deferred: 452 4.5.3 Too many recipient domains: "
        )),
        "{run1}"
    );
    assert!(
        relay_postfix::says_queued(run1.as_str(), &first_id, ")\n")
            && run1.contains(&format!("\n{first}... Sent (Ok: ")),
        "{run1}"
    );
    // Run 2: a new connection and transaction for the second alone.
    assert_eq!(run2.matches(">>> MAIL From:").count(), 1, "{run2}");
    assert_eq!(run2.matches(">>> RCPT To:").count(), 1, "{run2}");
    assert!(
        run2.contains(&format!(">>> RCPT To:<{second}>\n")),
        "{run2}"
    );
    assert!(
        relay_postfix::says_queued(run2.as_str(), &second_id, ")\n")
            && run2.contains(&format!("\n{second}... Sent (Ok: ")),
        "{run2}"
    );

    // Sendmail's log: the first sent once; the second deferred with the
    // 452, then sent.
    let log = sm.maillog();
    let st = attempts(&sm, first);
    assert_eq!(st.len(), 1, "{log}");
    assert_sent_line(&st[0], &qid, first, &first_id);
    let st = attempts(&sm, &second);
    assert_eq!(st.len(), 2, "{log}");
    assert!(
        st[0].contains(", mailer=relay, ")
            && st[0].contains(
                ", relay=[127.0.0.1] [127.0.0.1], dsn=4.5.3, reply=452 4.5.3 Too many recipient domains: "
            )
            && st[0].contains(", stat=Deferred: 452 4.5.3 Too many recipient domains: "),
        "{log}"
    );
    assert_sent_line(&st[1], &qid, &second, &second_id);

    // Each arrived exactly once.
    assert_eq!(rx.messages("a@one.test").len(), 1);
    assert_eq!(rx.messages("b@two.test").len(), 1);
}

/// Sendmail on danegate's own host. A default install adds its interfaces'
/// addresses to its own names (class w), 127.0.0.1 included, and drops a
/// SMART_HOST that is itself: `[127.0.0.1]` sends the mail straight to the
/// recipient domain's MX, past danegate. Naming the mailer
/// (`relay:[127.0.0.1]`) keeps the smart host, and relays through danegate.
#[test]
#[ignore = "needs the integration lab: run integration/test-all"]
fn sendmail_smart_host_on_loopback_needs_the_mailer_named() {
    let lab = Lab::new("sendmail-loopback");
    let a = Addrs::new(26);
    let mc = |smart_host: &str, probe_interfaces: bool| Mc {
        smart_host: smart_host.to_string(),
        port: a.danegate().port(),
        probe_interfaces,
    };
    let to = "user@example.test";

    let probed = Sendmail::with_mc(&lab, "sendmail-probed", &mc("[127.0.0.1]", true));
    assert_eq!(
        probed.parse(to),
        "mailer esmtp, host example.test., user user@example.test"
    );
    // The relay tests' config: interfaces not probed, so 127.0.0.1 stands
    // for another host, as `[danegate.internal]` in the README.
    let unprobed = Sendmail::with_mc(&lab, "sendmail-unprobed", &mc("[127.0.0.1]", false));
    assert_eq!(
        unprobed.parse(to),
        "mailer relay, host [127.0.0.1], user user@example.test"
    );
    let mut sm = Sendmail::with_mc(&lab, "sendmail", &mc("relay:[127.0.0.1]", true));
    assert_eq!(
        sm.parse(to),
        "mailer relay, host [127.0.0.1], user user@example.test"
    );

    // And it delivers.
    let rx = Postfix::receiver(&lab, a.receiver(), &["example.test"], &[to]);
    let dg = Danegate::start(
        &lab,
        &Config::example(a.danegate(), a.receiver(), &["example.test"]),
    );
    let from = sender();
    let msg = message::simple("s3", &from, &[to]);
    sm.submit(&from, &[to], &msg);
    run_until_empty(&mut sm, 1);
    let qid = submitted_id(&sm, &from);
    let delivered = rx.wait_messages(to, 1);
    message::assert_delivered_exactly(&delivered[0], &PREPENDED, &msg);
    let sent = attempts(&sm, to);
    assert_eq!(sent.len(), 1, "sendmail maillog:\n{}", sm.maillog());
    assert_sent_line(&sent[0], &qid, to, &receiver_id(&rx, to));
    dg.wait_log(&[&danegate::rcpt(to), "status=\"250 2.0.0"]);
}
