//! End to end through the lab's DNS: a legacy Postfix relays to danegate
//! (`validate` mode, anchored at the lab root), which must defer a
//! recipient in the bogus zone with `451 4.4.3` naming the failed lookup;
//! Postfix keeps the message queued and retries (dane-rules §1, §5).
//!
//! danegate forwards to the non-validating unbound here, so the verdict
//! "bogus" is its own validator's (behind the validating unbound it would
//! only see SERVFAIL). The Postfix instance is the `lab` target's
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

    let want = "said: 451 4.4.3 MX lookup for bogus.test failed: DNSSEC validation failed (bogus) (in reply to RCPT TO command)";
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
    assert!(
        queue[0].contains("MX lookup for bogus.test failed: DNSSEC validation failed (bogus)"),
        "{}",
        queue[0]
    );

    // danegate's own log names the recipient and the reason.
    let log = danegate.log();
    assert!(
        log.lines()
            .any(|l| l.contains(rcpt) && l.contains("451 4.4.3 MX lookup for bogus.test failed")),
        "{log}"
    );
    danegate.stop();
}
