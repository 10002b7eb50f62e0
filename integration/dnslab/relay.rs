//! End to end through the lab's DNS: a legacy Postfix relays to danegate
//! (`validate` mode, anchored at the lab root), which must defer a
//! recipient in the bogus zone with `451 4.4.3` naming the failed lookup;
//! Postfix keeps the message queued and retries (dane-rules §1, §5). A
//! domain whose hosts definitely have no address is refused with
//! `550 5.4.4`, and Postfix bounces it, as Postfix itself would.
//!
//! danegate forwards to the non-validating unbound here, so the verdict
//! "bogus" and its cause are its own validator's. The Postfix instance is the `lab` target's
//! (`../lab/postfix.rs`), with its scratch dir under /tmp.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use crate::gate::{self, Anchor, Dns, Running};
use crate::lab::*;
use crate::postfix::{Postfix, LEGACY_DOMAIN};
use crate::util;

/// Where the legacy Postfix's smtpd listens (the `lab` target's addresses
/// are 127.0.N.x with N ≠ 53).
const LEGACY_SMTPD: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(127, 0, 53, 21), 25));

#[test]
#[ignore = "needs the integration lab: run integration/test-all"]
fn relay_defers_a_bogus_domain_and_postfix_keeps_the_message() {
    // Declared first, dropped last: a failure keeps Postfix's dir and logs.
    let scratch = util::Lab::new("dnslab-relay-bogus");
    let lab = DnsLab::shared();
    let listen = gate::next_listen();
    let dns = Dns::Validate {
        via: NON_VALIDATING,
        anchor: Anchor::Dnskey,
    };
    let config = gate::write_config(
        &lab,
        "relay-bogus",
        &gate::config(&lab, listen, dns, "enforce", ""),
    );
    let mut danegate = Running::start(&config);
    danegate.wait_log(&format!("listening on {listen}"), Duration::from_secs(15));
    let legacy = Postfix::legacy(
        &scratch,
        LEGACY_SMTPD,
        &format!("[{}]:{}", listen.ip(), listen.port()),
    );

    let from = format!("sender@{LEGACY_DOMAIN}");
    let rcpt = "user@bogus.test";
    let msg = format!(
        "From: <{from}>\r\nTo: <{rcpt}>\r\nSubject: bogus destination\r\nMessage-ID: <bogus@lab.test>\r\n\r\nThis must stay queued.\r\n"
    );
    let r = legacy.submit(&from, &[rcpt], msg.as_bytes());
    assert_eq!(r.code, 250, "{}", r.full());

    // The cause, found by danegate's validator: the DS names a key the
    // zone does not have.
    let cause = format!(
        "MX lookup for bogus.test failed: DNSSEC validation failed: DS for bogus.test names no DNSKEY (DS key tag {}; DNSKEY key tag {})",
        lab.ds_key_tag("bogus.test"),
        lab.key_tags("bogus.test")[0]
    );
    let want = format!("said: 451 4.4.3 {cause} (in reply to RCPT TO command)");
    let want = want.as_str();
    let first = legacy.wait_status(rcpt, "deferred");
    assert!(first.contains(want), "{first}\nwant {want:?}");
    let relay = format!("relay={ip}[{ip}]:{}", listen.port(), ip = listen.ip());
    assert!(first.contains(&relay), "{first}");
    // Postfix retries (backoff 1-2 s): deferred again, never bounced or sent.
    util::wait_for("a second deferral (a retry)", || {
        (legacy.statuses(rcpt).len() >= 2).then_some(())
    });
    let statuses = legacy.statuses(rcpt);
    assert!(
        statuses
            .iter()
            .all(|l| l.contains("status=deferred") && l.contains(want)),
        "{statuses:#?}"
    );
    let queue = legacy.queue();
    assert_eq!(queue.len(), 1, "{queue:?}");
    assert!(queue[0].contains(rcpt), "{}", queue[0]);
    assert!(queue[0].contains(&cause), "{}", queue[0]);

    // danegate's summary line names the recipient and the cause.
    let log = danegate.log();
    assert!(
        log.lines().any(|l| l.contains("deferred")
            && l.contains(&format!("to=<{rcpt}>"))
            && l.contains(&format!("451 4.4.3 {cause}"))),
        "{log}"
    );
    danegate.stop();
}

/// Where the legacy Postfix of the no-address test listens.
const LEGACY_SMTPD_NOADDR: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(127, 0, 53, 24), 25));

#[test]
#[ignore = "needs the integration lab: run integration/test-all"]
fn relay_rejects_a_domain_whose_hosts_have_no_address_and_postfix_bounces() {
    let scratch = util::Lab::new("dnslab-relay-noaddr");
    let lab = DnsLab::shared();
    let listen = gate::next_listen();
    let dns = Dns::Validate {
        via: VALIDATING,
        anchor: Anchor::Dnskey,
    };
    let config = gate::write_config(
        &lab,
        "relay-noaddr",
        &gate::config(&lab, listen, dns, "enforce", ""),
    );
    let mut danegate = Running::start(&config);
    danegate.wait_log(&format!("listening on {listen}"), Duration::from_secs(15));
    let legacy = Postfix::legacy(
        &scratch,
        LEGACY_SMTPD_NOADDR,
        &format!("[{}]:{}", listen.ip(), listen.port()),
    );

    let from = format!("sender@{LEGACY_DOMAIN}");
    for (rcpt, host) in [
        ("user@noaddr.test", "mx.noaddr.test"),
        ("user@bare.noaddr.test", "bare.noaddr.test"),
    ] {
        let domain = rcpt.split_once('@').map(|(_, d)| d).unwrap_or_default();
        let msg = format!(
            "From: <{from}>\r\nTo: <{rcpt}>\r\nSubject: no address\r\nMessage-ID: <{host}@lab.test>\r\n\r\nThis must bounce.\r\n"
        );
        let r = legacy.submit(&from, &[rcpt], msg.as_bytes());
        assert_eq!(r.code, 250, "{}", r.full());
        let want = format!(
            "said: 550 5.4.4 no usable host for {domain}: {host}: host has no address records (in reply to RCPT TO command)"
        );
        let bounced = legacy.wait_status(rcpt, "bounced");
        assert!(bounced.contains(&want), "{bounced}\nwant {want:?}");
        assert!(bounced.contains("dsn=5.4.4"), "{bounced}");
        let statuses = legacy.statuses(rcpt);
        assert_eq!(statuses.len(), 1, "{statuses:#?}");
        let log = danegate.log();
        assert!(
            log.lines().any(|l| l.contains(&format!("to=<{rcpt}>"))
                && l.contains("550 5.4.4 no usable host for")),
            "{log}"
        );
    }
    // The bounces reach the sender (a mailbox of the legacy MTA itself).
    // (Same-second maildir names do not sort by time: match by recipient.)
    let bounces: Vec<String> = legacy
        .wait_messages(&from, 2)
        .iter()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .collect();
    for rcpt in ["user@noaddr.test", "user@bare.noaddr.test"] {
        // Maildir files have LF line ends.
        let final_rcpt = format!("Final-Recipient: rfc822; {rcpt}");
        let text = bounces
            .iter()
            .find(|t| t.lines().any(|l| l == final_rcpt))
            .unwrap_or_else(|| panic!("no bounce for {rcpt}: {bounces:#?}"));
        assert!(
            text.contains("Subject: Undelivered Mail Returned to Sender"),
            "{text}"
        );
        assert!(text.lines().any(|l| l == "Status: 5.4.4"), "{text}");
        assert!(text.contains("said: 550 5.4.4 no"), "{text}");
    }
    assert!(legacy.queue().is_empty(), "{:?}", legacy.queue());
    danegate.stop();
}
