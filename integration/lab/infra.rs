//! Checks of the lab itself, without danegate: the receiver speaks STARTTLS
//! and rejects unknown users, can be stopped and started; the legacy Postfix
//! and Exim deliver byte-exact messages to it directly; the fake MX hangs up
//! after DATA. When one of these fails, the relay tests cannot be trusted.

use std::process::Command;

use crate::exim::Exim;
use crate::fake::DropAfterData;
use crate::message;
use crate::postfix::{Postfix, LEGACY_DOMAIN};
use crate::util::{self, Lab};
use crate::Addrs;

fn swaks(args: &[&str]) -> (bool, String) {
    util::require_tool("swaks");
    let out = util::run_output(Command::new("swaks").args(args), None);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
#[ignore = "needs the integration lab: run integration/test-all"]
fn infra_receiver_starttls_rejects_and_restarts() {
    let lab = Lab::new("infra-receiver");
    let a = Addrs::new(1);
    let mut rx = Postfix::receiver(
        &lab,
        a.receiver(),
        &["example.test"],
        &["user@example.test"],
    );
    let server = a.receiver().to_string();

    let (ok, out) = swaks(&[
        "--server",
        &server,
        "--tls",
        "--helo",
        "client.lab.test",
        "--from",
        "sender@lab.test",
        "--to",
        "user@example.test",
    ]);
    assert!(ok, "swaks with STARTTLS failed:\n{out}");
    assert!(
        out.contains("=== TLS started with cipher"),
        "no TLS:\n{out}"
    );
    let msgs = rx.wait_messages("user@example.test", 1);
    let (fields, _) = message::split_prepended(&msgs[0], 4);
    assert_eq!(
        message::names(&fields),
        ["Return-Path", "X-Original-To", "Delivered-To", "Received"]
    );
    assert!(
        fields[3]
            .text
            .contains("by mx.example.test (Postfix) with ESMTPS"),
        "{}",
        fields[3].text
    );

    let (ok, out) = swaks(&[
        "--server",
        &server,
        "--helo",
        "client.lab.test",
        "--from",
        "sender@lab.test",
        "--to",
        "nobody@example.test",
    ]);
    assert!(!ok, "swaks to an unknown user succeeded:\n{out}");
    assert!(
        out.contains("<** 550 5.1.1 <nobody@example.test>: Recipient address rejected: User unknown in virtual mailbox table"),
        "{out}"
    );

    rx.stop();
    assert!(
        std::net::TcpStream::connect(a.receiver()).is_err(),
        "receiver still listening after stop"
    );
    rx.start();
    let (ok, out) = swaks(&[
        "--server",
        &server,
        "--tls",
        "--from",
        "sender@lab.test",
        "--to",
        "user@example.test",
    ]);
    assert!(ok, "swaks after restart failed:\n{out}");
    rx.wait_messages("user@example.test", 2);
}

#[test]
#[ignore = "needs the integration lab: run integration/test-all"]
fn infra_legacy_postfix_relays_to_receiver_directly() {
    let lab = Lab::new("infra-legacy-postfix");
    let a = Addrs::new(2);
    let rx = Postfix::receiver(
        &lab,
        a.receiver(),
        &["example.test"],
        &["user@example.test"],
    );
    let relayhost = format!("[{}]:{}", a.receiver().ip(), a.receiver().port());
    let legacy = Postfix::legacy(&lab, a.legacy(), &relayhost);
    let from = format!("sender@{LEGACY_DOMAIN}");

    let msg = message::tricky("infra-2", &from, &["user@example.test"]);
    let r = legacy.submit(&from, &["user@example.test", "nobody@example.test"], &msg);
    assert_eq!(r.code, 250, "{}", r.full());

    let delivered = rx.wait_messages("user@example.test", 1);
    let fields = message::assert_delivered_exactly(
        &delivered[0],
        &[
            "Return-Path",
            "X-Original-To",
            "Delivered-To",
            "Received",
            "Received",
        ],
        &msg,
    );
    assert!(
        fields[3]
            .text
            .contains("by mx.example.test (Postfix) with ESMTP id"),
        "{}",
        fields[3].text
    );
    assert!(
        fields[4]
            .text
            .contains("by mta.legacy.lab.test (Postfix) with ESMTP id"),
        "{}",
        fields[4].text
    );

    let hop = format!("relay={ip}[{ip}]:25", ip = a.receiver().ip());
    let sent = legacy.wait_status("user@example.test", "sent");
    assert!(
        sent.contains(&hop) && sent.contains("status=sent (250 2.0.0 Ok: queued as "),
        "{sent}"
    );
    let bounced = legacy.wait_status("nobody@example.test", "bounced");
    assert!(
        bounced.contains("said: 550 5.1.1 <nobody@example.test>: Recipient address rejected: User unknown in virtual mailbox table (in reply to RCPT TO command)"),
        "{bounced}"
    );
    // The bounce reaches the sender's mailbox at the legacy MTA.
    let dsn = legacy.wait_messages(&from, 1);
    let dsn = message::squash_whitespace(&String::from_utf8_lossy(&dsn[0]));
    assert!(
        dsn.contains("said: 550 5.1.1 <nobody@example.test>: Recipient address rejected: User unknown in virtual mailbox table"),
        "{dsn}"
    );
    legacy.wait_queue_empty();
}

#[test]
#[ignore = "needs the integration lab: run integration/test-all"]
fn infra_exim_relays_to_receiver_directly() {
    let lab = Lab::new("infra-exim");
    let a = Addrs::new(3);
    let rx = Postfix::receiver(
        &lab,
        a.receiver(),
        &["example.test"],
        &["user@example.test"],
    );
    let exim = Exim::new(&lab, a.receiver());
    let from = format!("sender@{LEGACY_DOMAIN}");

    let msg = message::tricky("infra-3", &from, &["user@example.test"]);
    exim.submit(&from, &["user@example.test"], &msg);
    assert_eq!(exim.queue_count(), 1, "{}", exim.queue_listing());
    exim.queue_run();

    let delivered = rx.wait_messages("user@example.test", 1);
    let fields = message::assert_delivered_exactly(
        &delivered[0],
        &[
            "Return-Path",
            "X-Original-To",
            "Delivered-To",
            "Received",
            "Received",
        ],
        &msg,
    );
    assert!(
        fields[4]
            .text
            .contains("by exim.legacy.lab.test with local (Exim "),
        "{}",
        fields[4].text
    );
    let hop = format!("H={ip} [{ip}]:25", ip = a.receiver().ip());
    // Postfix says "Ok: N bytes queued as" to BDAT, which Exim uses.
    let lines = exim.log_lines(&[
        "=> user@example.test",
        &hop,
        "C=\"250 2.0.0 Ok: ",
        "queued as ",
    ]);
    assert_eq!(
        lines.len(),
        1,
        "exim mainlog:\n{}\npaniclog:\n{}",
        exim.mainlog(),
        exim.paniclog()
    );
    assert_eq!(exim.queue_count(), 0, "{}", exim.queue_listing());
}

#[test]
#[ignore = "needs the integration lab: run integration/test-all"]
fn infra_fake_mx_hangs_up_after_data() {
    let lab = Lab::new("infra-fake");
    let a = Addrs::new(4);
    let fake = DropAfterData::start(a.receiver());
    let relayhost = format!("[{}]:{}", a.receiver().ip(), a.receiver().port());
    let legacy = Postfix::legacy(&lab, a.legacy(), &relayhost);
    let from = format!("sender@{LEGACY_DOMAIN}");

    let msg = message::simple("infra-4", &from, &["user@example.test"]);
    assert_eq!(legacy.submit(&from, &["user@example.test"], &msg).code, 250);
    let deferred = legacy.wait_status("user@example.test", "deferred");
    assert!(deferred.contains("lost connection with"), "{deferred}");
    assert!(deferred.contains("while sending end of data"), "{deferred}");
    let sessions = fake.sessions();
    assert!(sessions.iter().any(|s| s.got_final_dot), "{sessions:?}");
    assert_eq!(legacy.queue().len(), 1);
}
