//! danegate's listener as a client sees it: refusal of clients outside
//! `allow_clients`, and the README's example config relaying a message that
//! swaks submits.

use std::net::IpAddr;
use std::process::Command;
use std::time::Duration;

use crate::client::Client;
use crate::danegate::{self, Config, Danegate};
use crate::message;
use crate::postfix::Postfix;
use crate::relay_postfix::{assert_receiver_received, sender};
use crate::util::{self, Lab};
use crate::Addrs;

/// (f) A client outside allow_clients gets `554 5.7.1` as greeting and is
/// disconnected; an allowed client gets 220.
#[test]
#[ignore = "needs the integration lab: run integration/test-all"]
fn client_outside_allow_clients_gets_554_and_is_closed() {
    let lab = Lab::new("allow-clients");
    let a = Addrs::new(31);
    let mut config = Config::example(a.danegate(), a.receiver(), &["example.test"]);
    config.allow_clients = vec!["127.0.0.1/32".into()];
    let dg = Danegate::start(&lab, &config);

    let outsider: IpAddr = "127.0.0.2".parse().unwrap();
    let mut c = Client::connect_from(outsider, a.danegate());
    let greeting = c
        .read_reply()
        .unwrap_or_else(|e| panic!("no greeting for {outsider}: {e}\nlog:\n{}", dg.log()));
    assert_eq!(greeting.code, 554, "{}", c.transcript());
    assert_eq!(greeting.lines.len(), 1, "{}", c.transcript());
    assert!(
        greeting.lines[0].starts_with("554 5.7.1 "),
        "{}",
        c.transcript()
    );
    assert!(
        c.is_closed_by_peer(Duration::from_secs(10)),
        "connection from {outsider} still open after the 554:\n{}",
        c.transcript()
    );

    let mut ok = Client::connect_from("127.0.0.1".parse().unwrap(), a.danegate());
    let greeting = ok.read_reply().expect("greeting for 127.0.0.1");
    assert_eq!(greeting.code, 220, "{}", ok.transcript());
    ok.expect("QUIT", 221);
}

/// (g) `danegate run` with the README's example config starts, logs its
/// listen address, and relays a message swaks submits to a route.
#[test]
#[ignore = "needs the integration lab: run integration/test-all"]
fn readme_config_relays_a_swaks_message() {
    util::require_tool("swaks");
    let lab = Lab::new("readme-swaks");
    let a = Addrs::new(32);
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
    dg.wait_log(&[&format!("listening on {}", a.danegate())]);

    let out = util::run_output(
        Command::new("swaks").args([
            "--server",
            &a.danegate().to_string(),
            "--helo",
            "client.lab.test",
            "--from",
            &sender(),
            "--to",
            "user@example.test",
            "--header",
            "Subject: danegate lab swaks",
        ]),
        None,
    );
    let transcript = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "swaks failed ({}):\n{transcript}{}\ndanegate log:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        dg.log()
    );
    // The reply to the final dot is the line after swaks's " -> ." line.
    let lines: Vec<&str> = transcript.lines().collect();
    let dot = lines
        .iter()
        .position(|l| l.trim_end() == " -> .")
        .unwrap_or_else(|| panic!("no final dot in swaks output:\n{transcript}"));
    assert!(lines[dot + 1].starts_with("<-  250 2.0.0 "), "{transcript}");

    let delivered = rx.wait_messages("user@example.test", 1);
    let (fields, rest) = message::split_prepended(&delivered[0], 4);
    assert_eq!(
        message::names(&fields),
        ["Return-Path", "X-Original-To", "Delivered-To", "Received"],
        "{}",
        String::from_utf8_lossy(&delivered[0])
    );
    assert_receiver_received(&fields[3]);
    assert!(String::from_utf8_lossy(rest).contains("Subject: danegate lab swaks\n"));

    let summary = dg.wait_log(&[&danegate::rcpt("user@example.test"), "status=\"250 2.0.0"]);
    let relay = format!("[{}]:25", a.receiver().ip());
    assert!(
        summary.contains("relay=") && summary.contains(&relay),
        "{summary}"
    );
    assert!(summary.contains("tls=\"untrusted"), "{summary}");
}
