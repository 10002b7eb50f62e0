//! The zoo end to end: a legacy Postfix relays through danegate (`validate`
//! mode through the validating unbound, DS anchor) to a real Postfix
//! receiver on the lab address of the zoo host, for the shapes that used
//! to go wrong:
//! - `shop.dname.test`, reached through a signed DNAME (its MX host too):
//!   delivered, DANE-verified against the TLSA record at the DNAME's
//!   target (it was "server failure (SERVFAIL)" for ever);
//! - `mixed.test`, whose host has a secure A and an AAAA NODATA proven
//!   with 200 NSEC3 iterations (insecure): DANE applies to the IPv4
//!   address with both address families on (it used to be opportunistic
//!   TLS): a wrong certificate is deferred 4.7.5, the right one verified;
//! - `bücher.test`, an internationalised domain: an SMTPUTF8 message to
//!   `user@bücher.test` arrives byte for byte (DNS asked for
//!   xn--bcher-kva.test, DANE-verified), and is refused `553 5.6.7` once
//!   the receiver no longer offers SMTPUTF8 (the legacy Postfix bounces it).

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use crate::client::Client;
use crate::dane::{log_line, message, receiver, wait_new_status, ReceiverTls};
use crate::gate::{self, Anchor, Dns, Running};
use crate::lab::*;
use crate::message as msg;
use crate::postfix::{Postfix, LEGACY_DOMAIN};
use crate::util;

/// The legacy MTAs of these tests (the other tests use 127.0.53.21–27).
const LEGACY_DNAME: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(127, 0, 53, 28), 25));
const LEGACY_MIXED: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(127, 0, 53, 29), 25));
const LEGACY_IDN: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(127, 0, 53, 30), 25));

/// Header fields the receiver finds before the message: its virtual(8)
/// adds three, each MTA one Received (danegate adds none).
const PREPENDED: [&str; 5] = [
    "Return-Path",
    "X-Original-To",
    "Delivered-To",
    "Received",
    "Received",
];

/// danegate in validate mode (both address families), listening.
fn start_gate(lab: &DnsLab, name: &str) -> (Running, SocketAddr) {
    let listen = gate::next_listen();
    let dns = Dns::Validate {
        via: VALIDATING,
        anchor: Anchor::Ds,
    };
    let config = gate::write_config(lab, name, &gate::config(lab, listen, dns, "enforce", ""));
    let mut run = Running::start(&config);
    run.wait_log(&format!("listening on {listen}"), Duration::from_secs(15));
    (run, listen)
}

/// A `status=sent` line whose reply is the receiver's own (Postfix says
/// `Ok: queued as ID` after DATA, `Ok: N bytes queued as ID` after BDAT).
fn sent_by_the_receiver(status: &str) -> bool {
    status.contains("status=sent (250 2.0.0 Ok: ") && status.contains(" queued as ")
}

fn relayhost(listen: SocketAddr) -> String {
    format!("[{}]:{}", listen.ip(), listen.port())
}

fn matched(lab: &DnsLab, cert: &str) -> String {
    format!(
        "DANE-EE 3 1 1 {}… at depth 0",
        &lab.cert(cert).spki_sha256[..8]
    )
}

#[test]
#[ignore = "needs the integration lab: run integration/test-all"]
fn relay_through_a_signed_dname_is_dane_verified() {
    let scratch = util::Lab::new("dnslab-dname");
    let lab = DnsLab::shared();
    let (gate, listen) = start_gate(&lab, "relay-dname");
    let rcpt = "user@shop.dname.test";
    let mx = (
        "mx.dname-target.test",
        SocketAddr::from(([127, 0, 25, 40], 25)),
        "shop.dname.test",
    );
    let rx = receiver(
        &scratch,
        &lab,
        "receiver-dname",
        mx,
        ReceiverTls::LabCertificate,
    );
    let legacy = Postfix::legacy(&scratch, LEGACY_DNAME, &relayhost(listen));
    let from = format!("sender@{LEGACY_DOMAIN}");
    let m = message(rcpt, "dname", "through a DNAME");
    assert_eq!(legacy.submit(&from, &[rcpt], m.as_bytes()).code, 250);
    let sent = wait_new_status(&legacy, rcpt, 0, &["status=sent"]);
    assert!(sent_by_the_receiver(&sent), "{sent}");
    let got = rx.wait_messages(rcpt, 1);
    assert!(String::from_utf8_lossy(&got[0]).contains("Message-ID: <dname@lab.test>"));
    // The MX host is mx.dname.test (named through the DNAME); the TLSA
    // record is the one at the end of the chain.
    let line = log_line(
        &gate,
        &["Verified TLS connection established to mx.dname.test[127.0.25.40]:25"],
    );
    assert!(
        line.contains(&matched(&lab, "mx.dname-target.test")),
        "{line}"
    );
    let summary = log_line(&gate, &[&format!("to=<{rcpt}>"), "delivered"]);
    assert!(
        summary.contains("tls=\"verified(dane) TLSv1.3"),
        "{summary}"
    );
}

#[test]
#[ignore = "needs the integration lab: run integration/test-all"]
fn relay_to_a_mixed_family_host_requires_dane_for_its_secure_address() {
    let scratch = util::Lab::new("dnslab-mixed");
    let lab = DnsLab::shared();
    let (gate, listen) = start_gate(&lab, "relay-mixed");
    let rcpt = "user@mixed.test";
    let mx = (
        "mx.mixed.test",
        SocketAddr::from(([127, 0, 25, 41], 25)),
        "mixed.test",
    );
    let legacy = Postfix::legacy(&scratch, LEGACY_MIXED, &relayhost(listen));
    let from = format!("sender@{LEGACY_DOMAIN}");

    // A certificate no TLSA record names: DANE applies, so it is deferred
    // (opportunistic TLS would have delivered it).
    let mut wrong = receiver(
        &scratch,
        &lab,
        "receiver-mixed-wrong",
        mx,
        ReceiverTls::OtherCertificate,
    );
    let m = message(rcpt, "mixed", "secure A, insecure AAAA");
    assert_eq!(legacy.submit(&from, &[rcpt], m.as_bytes()).code, 250);
    let deferred = wait_new_status(&legacy, rcpt, 0, &["status=deferred"]);
    assert!(
        deferred.contains("said: 451 4.7.5 TLS handshake with mx.mixed.test[127.0.25.41]:25 failed: no TLSA record of _25._tcp.mx.mixed.test matches the certificate chain"),
        "{deferred}"
    );
    assert!(wrong.messages(rcpt).is_empty());
    wrong.stop();
    drop(wrong);

    // The certificate the TLSA record names: delivered, Verified.
    let good = receiver(
        &scratch,
        &lab,
        "receiver-mixed",
        mx,
        ReceiverTls::LabCertificate,
    );
    let seen = legacy.statuses(rcpt).len();
    let sent = wait_new_status(&legacy, rcpt, seen, &["status=sent"]);
    assert!(sent_by_the_receiver(&sent), "{sent}");
    assert_eq!(good.wait_messages(rcpt, 1).len(), 1);
    let line = log_line(
        &gate,
        &["Verified TLS connection established to mx.mixed.test[127.0.25.41]:25"],
    );
    assert!(line.contains(&matched(&lab, "mx.mixed.test")), "{line}");
}

/// Submits `message` to `user@bücher.test` with SMTPUTF8 over SMTP.
fn submit_smtputf8(legacy: &Postfix, from: &str, rcpt: &str, message: &[u8]) {
    let mut c = Client::connect(legacy.opts.smtpd);
    assert_eq!(c.read_reply().map(|r| r.code).ok(), Some(220));
    c.expect("EHLO lab-client.lab.test", 250);
    c.expect(&format!("MAIL FROM:<{from}> SMTPUTF8"), 250);
    c.expect(&format!("RCPT TO:<{rcpt}>"), 250);
    c.expect("DATA", 354);
    let r = c.send_data(message);
    assert_eq!(r.code, 250, "{}\n{}", r.full(), c.transcript());
    let _ = c.cmd("QUIT");
}

#[test]
#[ignore = "needs the integration lab: run integration/test-all"]
fn smtputf8_mail_to_an_idn_domain_arrives_byte_for_byte() {
    let scratch = util::Lab::new("dnslab-idn");
    let lab = DnsLab::shared();
    let (gate, listen) = start_gate(&lab, "relay-idn");
    let rcpt = "user@bücher.test";
    let mx = (
        "mx.xn--bcher-kva.test",
        SocketAddr::from(([127, 0, 25, 44], 25)),
        "bücher.test",
    );
    let mut rx = receiver(
        &scratch,
        &lab,
        "receiver-idn",
        mx,
        ReceiverTls::LabCertificate,
    );
    let legacy = Postfix::legacy(&scratch, LEGACY_IDN, &relayhost(listen));
    let from = format!("sender@{LEGACY_DOMAIN}");
    let m = format!(
        "From: Jürgen <{from}>\nTo: <{rcpt}>\nSubject: Grüße nach Köln\nDate: Sun, 6 Dec 2026 12:00:00 +0000\nMessage-ID: <idn@lab.test>\nMIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\nÄpfel, Öl und Übermut.\n.ein Punkt am Zeilenanfang\n"
    );
    submit_smtputf8(&legacy, &from, rcpt, m.as_bytes());
    let sent = wait_new_status(&legacy, rcpt, 0, &["status=sent"]);
    assert!(sent_by_the_receiver(&sent), "{sent}");
    let got = rx.wait_messages(rcpt, 1);
    msg::assert_delivered_exactly(&got[0], &PREPENDED, m.as_bytes());
    log_line(
        &gate,
        &["internationalised domain bücher.test is xn--bcher-kva.test in DNS"],
    );
    let line = log_line(
        &gate,
        &["Verified TLS connection established to mx.xn--bcher-kva.test[127.0.25.44]:25"],
    );
    assert!(
        line.contains(&matched(&lab, "mx.xn--bcher-kva.test")),
        "{line}"
    );

    // The destination stops offering SMTPUTF8: the message cannot go
    // there as it is, the legacy MTA gets 553 5.6.7 and bounces it.
    rx.stop();
    let main_cf = rx.conf.join("main.cf");
    util::write_file(
        &main_cf,
        format!("{}smtputf8_enable = no\n", read_text(&main_cf)),
    );
    util::backdate(&main_cf);
    rx.start();
    let m2 = m.replace("<idn@lab.test>", "<idn-2@lab.test>");
    submit_smtputf8(&legacy, &from, rcpt, m2.as_bytes());
    let bounced = legacy.wait_status(rcpt, "bounced");
    assert!(
        bounced.contains("said: 553 5.6.7 mx.xn--bcher-kva.test[127.0.25.44]:25 does not support SMTPUTF8, which this message requires"),
        "{bounced}"
    );
    assert_eq!(rx.messages(rcpt).len(), 1);
}
