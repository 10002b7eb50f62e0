//! DANE end to end inside one process (dane-rules §3–5): a client talks to
//! danegate's inbound session, danegate plans with TLSA records from a
//! [`TableResolver`] and connects over real TCP and STARTTLS to a
//! [`FakeDest`] that presents a certificate chain generated here.
//!
//! Each test asserts the exact reply the legacy MTA gets, what the
//! destination saw (connections, TLS, SNI, commands, whether a MAIL ever
//! arrived), and the log facts (the per-connection line in Postfix's
//! vocabulary, `TEST MODE: would defer` warnings, the per-recipient summary
//! line).
//!
//! Routing: `example.test` goes to `[mx.example.test]:PORT` (a static route
//! without MX lookup counts as a secure MX; the host name is resolved
//! through the table and its TLSA records are looked up at
//! `_PORT._tcp.mx.example.test`), or to `example.test:PORT` where MX
//! records matter (several hosts, an unsigned MX RRset).

mod common;
mod dane_support;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use common::*;
use dane_support::{corrupt, impostor_key, key, private_key, tlsa_for, Alg, Issued, Pki, Spec};
use danegate::dns::{Security, Tlsa};
use danegate::outbound::Context;
use tracing::Level;

const MX: &str = "mx.example.test";
const TEST_NOTE: &str = " [test mode: nothing enforced]";

// ---------------------------------------------------------------------------
// Certificates and records

/// A self-signed ECDSA certificate for `names` (what a DANE-EE server
/// typically has).
fn self_signed(names: &[&str]) -> Issued {
    let key = key(Alg::EcdsaP256);
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let params = rcgen::CertificateParams::new(names).expect("certificate parameters");
    Issued {
        cert: params.self_signed(&key).expect("self-signed certificate"),
        key,
    }
}

/// A destination presenting `cert` alone, with its own key.
fn presenting(cert: &Issued) -> DestScript {
    DestScript {
        identity: Some(identity(vec![cert.der()], cert.private_key())),
        ..DestScript::default()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// How danegate names a matched record: `DANE-EE 3 1 1 0a1b2c3d… at depth 0`
/// (the first four octets of the data).
fn matched(r: &Tlsa, depth: usize) -> String {
    let kind = match r.usage {
        2 => "DANE-TA",
        3 => "DANE-EE",
        other => panic!("usage {other} never matches"),
    };
    format!(
        "{kind} {} {} {} {}… at depth {depth}",
        r.usage,
        r.selector,
        r.mtype,
        hex(&r.data[..4])
    )
}

// ---------------------------------------------------------------------------
// DNS and configuration

/// The TLSA owner name of `host` at the destination's port.
fn tlsa_name(dest: &FakeDest, host: &str) -> String {
    format!("_{}._tcp.{host}", dest.port())
}

/// `mx.example.test` at 127.0.0.1 (signed), with `tlsa` at its TLSA name
/// (None: a signed denial, "no TLSA records").
fn resolver(dest: &FakeDest, tlsa: Option<Vec<Tlsa>>) -> TableResolver {
    let r = TableResolver::new().host(MX, &[Ipv4Addr::LOCALHOST], Security::Secure);
    match tlsa {
        Some(records) => r.tlsa_secure(&tlsa_name(dest, MX), records),
        None => r.tlsa_answer(&tlsa_name(dest, MX), nodata(Security::Secure)),
    }
}

/// A context routing `example.test` to `route`, with `[policy]` lines.
fn context_via(route: &str, resolver: &Arc<TableResolver>, policy: &[&str]) -> Arc<Context> {
    let mut b = ConfigBuilder::new().route("example.test", route);
    for line in policy {
        b = b.policy(line);
    }
    b.context(resolver)
}

/// A context routing `example.test` to `[mx.example.test]:PORT`.
fn context(dest: &FakeDest, resolver: &Arc<TableResolver>, policy: &[&str]) -> Arc<Context> {
    context_via(&format!("[{MX}]:{}", dest.port()), resolver, policy)
}

/// Two destinations on the same port, at 127.0.0.2 and 127.0.0.3 (MX
/// hosts share the port of their route).
async fn two_dests(first: DestScript, second: DestScript) -> (FakeDest, FakeDest) {
    for _ in 0..20 {
        let a = FakeDest::start_on(SocketAddr::from(([127, 0, 0, 2], 0)), first.clone()).await;
        let same_port = SocketAddr::from(([127, 0, 0, 3], a.port()));
        if std::net::TcpListener::bind(same_port).is_ok() {
            let b = FakeDest::start_on(same_port, second.clone()).await;
            return (a, b);
        }
    }
    panic!("no port free on both 127.0.0.2 and 127.0.0.3");
}

// ---------------------------------------------------------------------------
// Sessions

/// The content of the test message (wire form, without the final dot).
fn message() -> Vec<u8> {
    b"Subject: DANE\r\n\r\nHello over DANE.\r\n".to_vec()
}

/// A session delivering the test message to RCPT: every reply positive,
/// the final dot answered with the destination's `queued as Q1`.
async fn delivered(ctx: &Arc<Context>) {
    delivered_with(ctx, &message(), QUEUED).await
}

/// The commands of a connection that carried the test message, each with
/// whether it came through TLS.
fn delivery_commands(tls: bool) -> Vec<(String, bool)> {
    let mut v = vec![("EHLO relay.example.net".to_owned(), false)];
    if tls {
        v.push(("STARTTLS".to_owned(), false));
        v.push(("EHLO relay.example.net".to_owned(), true));
    }
    for cmd in [
        format!("MAIL FROM:<{FROM}>"),
        format!("RCPT TO:<{RCPT}>"),
        "DATA".to_owned(),
        "QUIT".to_owned(),
    ] {
        v.push((cmd, tls));
    }
    v
}

fn owned(commands: Vec<(&str, bool)>) -> Vec<(String, bool)> {
    commands
        .into_iter()
        .map(|(c, t)| (c.to_owned(), t))
        .collect()
}

/// Asserts that `conn` carried the test message completely, over TLS or
/// not as `tls` says.
#[track_caller]
fn assert_carried(conn: &Conn, tls: bool) {
    assert_eq!(conn.tls, tls, "TLS on the delivering connection: {conn:#?}");
    assert_eq!(owned(conn.commands_tls()), delivery_commands(tls));
    assert_eq!(conn.messages.len(), 1, "{conn:#?}");
    let (bytes, terminated) = conn.messages[0].data();
    assert!(terminated);
    assert_eq!(bytes, &message()[..]);
}

/// Asserts that `conn` never got as far as a MAIL command, in TLS or not.
#[track_caller]
fn assert_no_mail(conn: &Conn) {
    assert!(
        !conn.commands().iter().any(|c| c.starts_with("MAIL")),
        "the destination got a MAIL command: {conn:#?}"
    );
    assert!(conn.messages.is_empty(), "{conn:#?}");
}

/// `TLSv1.3 with cipher X`, as the destination negotiated it.
fn negotiated(conn: &Conn) -> (String, String) {
    (
        conn.protocol.clone().expect("a negotiated protocol"),
        conn.cipher.clone().expect("a negotiated cipher suite"),
    )
}

/// Asserts no WARN or ERROR event was logged.
#[track_caller]
fn assert_no_warnings(logs: &LogCapture) {
    let bad: Vec<String> = logs
        .events()
        .iter()
        .filter(|e| e.level == Level::WARN || e.level == Level::ERROR)
        .map(|e| e.to_string())
        .collect();
    assert!(bad.is_empty(), "unexpected warnings: {bad:#?}");
}

/// Asserts no connection line was logged (nothing was established).
#[track_caller]
fn assert_no_connection_line(logs: &LogCapture) {
    assert!(
        !logs.contains("connection established") && !logs.contains("plaintext connection"),
        "a connection line was logged:\n{}",
        logs.dump()
    );
}

/// The summary line of the refused recipient: `deferred`, no relay, the
/// reply as status.
#[track_caller]
fn assert_deferred_summary(logs: &LogCapture, status: &str) {
    let summary = logs.summary(RCPT);
    assert_eq!(summary.message, "deferred", "{summary}");
    assert_eq!(summary.field("status"), Some(status), "{summary}");
}

/// Asserts the one WARN event `message`, with the given `peer` field.
#[track_caller]
fn assert_warning(logs: &LogCapture, message: &str) -> LogEvent {
    let e = logs.one(message);
    assert_eq!(e.level, Level::WARN, "{e}");
    e
}

// ---------------------------------------------------------------------------
// DANE-EE

#[tokio::test]
async fn dane_ee_match_is_delivered_verified() {
    let logs = LogCapture::start();
    let cert = self_signed(&[MX]);
    let dest = FakeDest::start(presenting(&cert)).await;
    let record = tlsa_for(&cert, 3, 1, 1);
    let r = Arc::new(resolver(&dest, Some(vec![record.clone()])));
    delivered(&context(&dest, &r, &[])).await;

    let conns = dest.wait_closed(1).await;
    assert_carried(&conns[0], true);
    // dane-rules §3.2: SNI is the TLSA base domain.
    assert_eq!(conns[0].sni.as_deref(), Some(MX));
    let (protocol, cipher) = negotiated(&conns[0]);
    assert_eq!(protocol, "TLSv1.3");
    let m = matched(&record, 0);
    let peer = dest.peer_as(MX);
    let line = logs.one(&format!(
        "Verified TLS connection established to {peer}: {protocol} with cipher {cipher}; matched {m}"
    ));
    assert_eq!(line.level, Level::INFO);
    assert_eq!(line.field("domain"), Some("example.test"));
    let summary = logs.summary(RCPT);
    assert_eq!(summary.message, "delivered");
    assert_eq!(summary.field("relay"), Some(peer.as_str()));
    assert_eq!(
        summary.field("tls"),
        Some(format!("verified(dane) {protocol} {cipher} ({m})").as_str())
    );
    assert_eq!(summary.field("status"), Some(QUEUED));
    assert_no_warnings(&logs);
    let mut queries = r.queries();
    queries.sort();
    assert_eq!(
        queries,
        [
            format!("A {MX}"),
            format!("AAAA {MX}"),
            format!("TLSA {}", tlsa_name(&dest, MX)),
        ]
    );
}

#[tokio::test]
async fn dane_ee_full_certificate_sha512_over_tls12_ignores_unusable_and_wrong_records() {
    let logs = LogCapture::start();
    let cert = self_signed(&[MX]);
    let dest = FakeDest::start(DestScript {
        tls12_only: true,
        ..presenting(&cert)
    })
    .await;
    let record = tlsa_for(&cert, 3, 0, 2);
    let records = vec![
        // PKIX-EE: unusable for SMTP (dane-rules §2.3), never matches.
        tlsa_for(&cert, 1, 1, 1),
        corrupt(tlsa_for(&cert, 3, 1, 1)),
        record.clone(),
    ];
    let r = Arc::new(resolver(&dest, Some(records)));
    delivered(&context(&dest, &r, &[])).await;

    let conns = dest.wait_closed(1).await;
    assert_carried(&conns[0], true);
    let (protocol, cipher) = negotiated(&conns[0]);
    assert_eq!(protocol, "TLSv1.2");
    logs.one(&format!(
        "Verified TLS connection established to {}: {protocol} with cipher {cipher}; matched {}",
        dest.peer_as(MX),
        matched(&record, 0)
    ));
    assert_no_warnings(&logs);
}

#[tokio::test]
async fn tlsa_mismatch_defers_4_7_5_and_the_destination_gets_no_mail() {
    let logs = LogCapture::start();
    let cert = self_signed(&[MX]);
    let other = self_signed(&[MX]);
    let dest = FakeDest::start(presenting(&cert)).await;
    let r = Arc::new(resolver(&dest, Some(vec![tlsa_for(&other, 3, 1, 1)])));
    let peer = dest.peer_as(MX);
    let cause = format!(
        "TLS handshake with {peer} failed: no TLSA record of {} matches the certificate chain",
        tlsa_name(&dest, MX)
    );
    let want = format!("451 4.7.5 {cause}");
    refused(&context(&dest, &r, &[]), &want).await;

    // One connection, given up in the handshake: never plaintext after a
    // failed STARTTLS on a host that requires DANE.
    let conns = dest.wait_closed(1).await;
    assert_eq!(
        conns[0].commands_tls(),
        [("EHLO relay.example.net", false), ("STARTTLS", false)]
    );
    assert!(!conns[0].tls);
    assert_no_mail(&conns[0]);
    let w = assert_warning(&logs, &format!("delivery attempt failed: {cause}"));
    assert_eq!(w.field("domain"), Some("example.test"));
    assert_no_connection_line(&logs);
    assert_deferred_summary(&logs, &want);
    // The summary names the host that was tried, not "none".
    let summary = logs.summary(RCPT);
    assert_eq!(
        summary.field("relay"),
        Some(dest.peer_as(MX).as_str()),
        "{summary}"
    );
}

/// RFC 7671 §9 end to end: a SHA-512 record of the same usage and selector
/// retires the SHA-256 one, so a right SHA-256 digest next to a wrong
/// SHA-512 one does not match.
#[tokio::test]
async fn digest_agility_retires_a_matching_sha256_record_next_to_a_sha512_one() {
    let cert = self_signed(&[MX]);
    let dest = FakeDest::start(presenting(&cert)).await;
    let records = vec![tlsa_for(&cert, 3, 1, 1), corrupt(tlsa_for(&cert, 3, 1, 2))];
    let r = Arc::new(resolver(&dest, Some(records)));
    let want = format!(
        "451 4.7.5 TLS handshake with {} failed: no TLSA record of {} matches the certificate chain",
        dest.peer_as(MX),
        tlsa_name(&dest, MX)
    );
    refused(&context(&dest, &r, &[]), &want).await;
    let conns = dest.wait_closed(1).await;
    assert_no_mail(&conns[0]);
}

#[tokio::test]
async fn destination_without_starttls_defers_4_7_4_and_gets_no_plaintext_mail() {
    let logs = LogCapture::start();
    let cert = self_signed(&[MX]);
    let dest = FakeDest::start(DestScript {
        starttls: false,
        ..presenting(&cert)
    })
    .await;
    let r = Arc::new(resolver(&dest, Some(vec![tlsa_for(&cert, 3, 1, 1)])));
    let cause = format!(
        "TLS is required, but {} did not offer STARTTLS",
        dest.peer_as(MX)
    );
    let want = format!("451 4.7.4 {cause}");
    refused(&context(&dest, &r, &[]), &want).await;

    let conns = dest.wait_closed(1).await;
    assert_eq!(conns[0].commands(), ["EHLO relay.example.net", "QUIT"]);
    assert_no_mail(&conns[0]);
    assert_warning(&logs, &format!("delivery attempt failed: {cause}"));
    assert_no_connection_line(&logs);
    assert_deferred_summary(&logs, &want);
}

#[tokio::test]
async fn refused_starttls_defers_4_7_4_and_the_destination_gets_no_plaintext_mail() {
    let logs = LogCapture::start();
    let cert = self_signed(&[MX]);
    let dest = FakeDest::start(DestScript {
        starttls_reply: "454 4.7.0 TLS not available due to local problem".to_owned(),
        ..presenting(&cert)
    })
    .await;
    let r = Arc::new(resolver(&dest, Some(vec![tlsa_for(&cert, 3, 1, 1)])));
    let cause = format!(
        "TLS is required, but {} refused STARTTLS: 454 4.7.0 TLS not available due to local problem",
        dest.peer_as(MX)
    );
    let want = format!("451 4.7.4 {cause}");
    refused(&context(&dest, &r, &[]), &want).await;

    let conns = dest.wait_closed(1).await;
    assert_eq!(
        conns[0].commands(),
        ["EHLO relay.example.net", "STARTTLS", "QUIT"]
    );
    assert_no_mail(&conns[0]);
    assert_warning(&logs, &format!("delivery attempt failed: {cause}"));
    assert_deferred_summary(&logs, &want);
}

#[tokio::test]
async fn broken_handshake_under_dane_defers_4_7_5_without_a_plaintext_retry() {
    let cert = self_signed(&[MX]);
    let dest = FakeDest::start(DestScript {
        break_tls: true,
        ..presenting(&cert)
    })
    .await;
    let r = Arc::new(resolver(&dest, Some(vec![tlsa_for(&cert, 3, 1, 1)])));
    let ctx = context(&dest, &r, &[]);
    let mut s = start_session(&ctx);
    let got = rcpt_reply(&mut s.client).await;
    let prefix = format!("451 4.7.5 TLS handshake with {} failed: ", dest.peer_as(MX));
    assert!(got.starts_with(&prefix), "{got:?}, want {prefix:?}...");
    s.client.cmd("QUIT", BYE).await;
    s.ended().await;
    // Opportunistic TLS would retry in plaintext on a new connection; DANE
    // must not.
    let conns = dest.wait_closed(1).await;
    assert_no_mail(&conns[0]);
}

/// A server that replays the matching certificate without its private key
/// fails the handshake signature, whatever the records say.
#[tokio::test]
async fn replayed_certificate_without_its_key_defers_4_7_5() {
    let cert = self_signed(&[MX]);
    let dest = FakeDest::start(DestScript {
        identity: Some(identity(
            vec![cert.der()],
            private_key(&impostor_key(Alg::EcdsaP256)),
        )),
        ..DestScript::default()
    })
    .await;
    let r = Arc::new(resolver(&dest, Some(vec![tlsa_for(&cert, 3, 1, 1)])));
    let want = format!(
        "451 4.7.5 TLS handshake with {} failed: the server's handshake signature does not verify with its certificate's key (it does not hold that key)",
        dest.peer_as(MX)
    );
    refused(&context(&dest, &r, &[]), &want).await;
    let conns = dest.wait_closed(1).await;
    assert_eq!(conns.len(), 1);
    assert_no_mail(&conns[0]);
}

// ---------------------------------------------------------------------------
// TLSA records that are all unusable: TLS required, no authentication

#[tokio::test]
async fn only_unusable_tlsa_delivers_over_unauthenticated_tls() {
    let logs = LogCapture::start();
    let cert = self_signed(&["somewhere.else.test"]);
    let dest = FakeDest::start(presenting(&cert)).await;
    // PKIX-TA and PKIX-EE records, even of this very certificate: unusable.
    let records = vec![tlsa_for(&cert, 0, 0, 1), tlsa_for(&cert, 1, 1, 1)];
    let r = Arc::new(resolver(&dest, Some(records)));
    delivered(&context(&dest, &r, &[])).await;

    let conns = dest.wait_closed(1).await;
    assert_carried(&conns[0], true);
    let (protocol, cipher) = negotiated(&conns[0]);
    logs.one(&format!(
        "Untrusted TLS connection established to {}: {protocol} with cipher {cipher}",
        dest.peer_as(MX)
    ));
    let summary = logs.summary(RCPT);
    assert_eq!(
        summary.field("tls"),
        Some(format!("untrusted {protocol} {cipher}").as_str())
    );
    assert_no_warnings(&logs);
}

#[tokio::test]
async fn only_unusable_tlsa_without_starttls_defers_4_7_4() {
    let cert = self_signed(&[MX]);
    let dest = FakeDest::start(DestScript {
        starttls: false,
        ..presenting(&cert)
    })
    .await;
    let r = Arc::new(resolver(&dest, Some(vec![tlsa_for(&cert, 1, 1, 1)])));
    let want = format!(
        "451 4.7.4 TLS is required, but {} did not offer STARTTLS",
        dest.peer_as(MX)
    );
    refused(&context(&dest, &r, &[]), &want).await;
    let conns = dest.wait_closed(1).await;
    assert_eq!(conns[0].commands(), ["EHLO relay.example.net", "QUIT"]);
}

// ---------------------------------------------------------------------------
// dane-only

#[tokio::test]
async fn dane_only_without_usable_secure_tlsa_defers_4_7_5_without_connecting() {
    let cert = self_signed(&[MX]);
    let dest = FakeDest::start(presenting(&cert)).await;
    let dane_only = r#"domains = { "example.test" = "dane-only" }"#;
    let peer = dest.peer_as(MX);
    // (TLSA answer, MX answer signed, expected reason)
    let cases: Vec<(Option<Vec<Tlsa>>, bool, &str)> = vec![
        (
            None,
            true,
            "policy dane-only: no DNSSEC-signed TLSA records",
        ),
        (
            Some(vec![tlsa_for(&cert, 1, 1, 1)]),
            true,
            "policy dane-only: none of the TLSA records is usable for SMTP",
        ),
        (
            Some(vec![tlsa_for(&cert, 3, 1, 1)]),
            false,
            "policy dane-only: the MX records are not DNSSEC-signed",
        ),
    ];
    for (tlsa, mx_secure, reason) in cases {
        let logs = LogCapture::start();
        let mut r = resolver(&dest, tlsa);
        let ctx = if mx_secure {
            context(&dest, &Arc::new(r), &[dane_only])
        } else {
            r = r.mx_records("example.test", &[(10, MX)], Security::Insecure);
            context_via(
                &format!("example.test:{}", dest.port()),
                &Arc::new(r),
                &[dane_only],
            )
        };
        let want = format!("451 4.7.5 {peer}: {reason}");
        refused(&ctx, &want).await;
        assert!(dest.conns().is_empty(), "{reason}: connected anyway");
        assert_deferred_summary(&logs, &want);
    }
}

// ---------------------------------------------------------------------------
// Test mode: everything verified, nothing enforced

#[tokio::test]
async fn test_mode_delivers_a_tlsa_mismatch_over_unauthenticated_tls_and_says_so() {
    let logs = LogCapture::start();
    let cert = self_signed(&[MX]);
    let other = self_signed(&[MX]);
    let dest = FakeDest::start(presenting(&cert)).await;
    let r = Arc::new(resolver(&dest, Some(vec![tlsa_for(&other, 3, 1, 1)])));
    delivered(&context(&dest, &r, &["mode = \"test\""])).await;

    // The DANE attempt fails in the handshake; a second connection
    // delivers with any certificate.
    let conns = dest.wait_closed(2).await;
    assert_eq!(
        conns[0].commands_tls(),
        [("EHLO relay.example.net", false), ("STARTTLS", false)]
    );
    assert_no_mail(&conns[0]);
    assert_carried(&conns[1], true);
    let peer = dest.peer_as(MX);
    let w = assert_warning(
        &logs,
        &format!(
            "TEST MODE: would defer: TLS handshake with {peer} failed: no TLSA record of {} matches the certificate chain; delivering with the best connection available, nothing enforced",
            tlsa_name(&dest, MX)
        ),
    );
    assert_eq!(w.field("peer"), Some(peer.as_str()));
    let (protocol, cipher) = negotiated(&conns[1]);
    logs.one(&format!(
        "Untrusted TLS connection established to {peer}: {protocol} with cipher {cipher}{TEST_NOTE}"
    ));
    let summary = logs.summary(RCPT);
    assert_eq!(summary.message, "delivered");
    assert_eq!(
        summary.field("tls"),
        Some(format!("untrusted {protocol} {cipher}{TEST_NOTE}").as_str())
    );
    assert_test_mode_lines_say_so(&logs);
}

#[tokio::test]
async fn test_mode_delivers_in_plaintext_when_starttls_is_missing_and_says_so() {
    let logs = LogCapture::start();
    let cert = self_signed(&[MX]);
    let dest = FakeDest::start(DestScript {
        starttls: false,
        ..presenting(&cert)
    })
    .await;
    let r = Arc::new(resolver(&dest, Some(vec![tlsa_for(&cert, 3, 1, 1)])));
    delivered(&context(&dest, &r, &["mode = \"test\""])).await;

    let conns = dest.wait_closed(2).await;
    assert_eq!(conns[0].commands(), ["EHLO relay.example.net", "QUIT"]);
    assert_carried(&conns[1], false);
    let peer = dest.peer_as(MX);
    assert_warning(
        &logs,
        &format!(
            "TEST MODE: would defer: TLS is required, but {peer} did not offer STARTTLS; delivering with the best connection available, nothing enforced"
        ),
    );
    logs.one(&format!("plaintext connection to {peer}{TEST_NOTE}"));
    assert_eq!(
        logs.summary(RCPT).field("tls"),
        Some(format!("none{TEST_NOTE}").as_str())
    );
    assert_test_mode_lines_say_so(&logs);
}

#[tokio::test]
async fn test_mode_delivers_what_dane_only_would_refuse_and_says_so() {
    let logs = LogCapture::start();
    let cert = self_signed(&[MX]);
    let dest = FakeDest::start(presenting(&cert)).await;
    let r = Arc::new(resolver(&dest, None));
    let policy = ["mode = \"test\"", "default = \"dane-only\""];
    delivered(&context(&dest, &r, &policy)).await;

    let conns = dest.wait_closed(1).await;
    assert_carried(&conns[0], true);
    let peer = dest.peer_as(MX);
    assert_warning(
        &logs,
        "TEST MODE: would defer: policy dane-only: no DNSSEC-signed TLSA records; delivering anyway, nothing enforced",
    );
    let (protocol, cipher) = negotiated(&conns[0]);
    logs.one(&format!(
        "Untrusted TLS connection established to {peer}: {protocol} with cipher {cipher}{TEST_NOTE}"
    ));
    assert_test_mode_lines_say_so(&logs);
}

#[tokio::test]
async fn test_mode_dane_match_is_logged_as_not_enforced() {
    let logs = LogCapture::start();
    let cert = self_signed(&[MX]);
    let dest = FakeDest::start(presenting(&cert)).await;
    let record = tlsa_for(&cert, 3, 1, 1);
    let r = Arc::new(resolver(&dest, Some(vec![record.clone()])));
    delivered(&context(&dest, &r, &["mode = \"test\""])).await;

    let conns = dest.wait_closed(1).await;
    assert_carried(&conns[0], true);
    let (protocol, cipher) = negotiated(&conns[0]);
    let m = matched(&record, 0);
    logs.one(&format!(
        "Verified TLS connection established to {}: {protocol} with cipher {cipher}; matched {m}{TEST_NOTE}",
        dest.peer_as(MX)
    ));
    assert_eq!(
        logs.summary(RCPT).field("tls"),
        Some(format!("verified(dane) {protocol} {cipher} ({m}){TEST_NOTE}").as_str())
    );
    assert_no_warnings(&logs);
}

/// In test mode no connection or summary line may read as if protection
/// was in force: each carries the test-mode note.
#[track_caller]
fn assert_test_mode_lines_say_so(logs: &LogCapture) {
    for e in logs.events() {
        let is_connection =
            e.message.contains("connection established") || e.message.contains("connection to");
        if is_connection {
            assert!(e.message.ends_with(TEST_NOTE), "{e}");
        }
        if let Some(tls) = e.field("tls") {
            assert!(tls.ends_with(TEST_NOTE), "{e}");
        }
        if e.level == Level::WARN {
            assert!(
                e.message.starts_with("TEST MODE: would defer: ")
                    && e.message.ends_with("nothing enforced"),
                "{e}"
            );
        }
    }
}

// ---------------------------------------------------------------------------
// Several MX hosts

#[tokio::test]
async fn first_mx_mismatching_second_matching_is_delivered_via_the_second() {
    let logs = LogCapture::start();
    let cert1 = self_signed(&["mx1.example.test"]);
    let cert2 = self_signed(&["mx2.example.test"]);
    let wrong = self_signed(&["mx1.example.test"]);
    let (d1, d2) = two_dests(presenting(&cert1), presenting(&cert2)).await;
    let record2 = tlsa_for(&cert2, 3, 1, 1);
    let r = Arc::new(
        TableResolver::new()
            .mx_records(
                "example.test",
                &[(10, "mx1.example.test"), (20, "mx2.example.test")],
                Security::Secure,
            )
            .host(
                "mx1.example.test",
                &[[127, 0, 0, 2].into()],
                Security::Secure,
            )
            .host(
                "mx2.example.test",
                &[[127, 0, 0, 3].into()],
                Security::Secure,
            )
            .tlsa_secure(
                &tlsa_name(&d1, "mx1.example.test"),
                vec![tlsa_for(&wrong, 3, 1, 1)],
            )
            .tlsa_secure(&tlsa_name(&d2, "mx2.example.test"), vec![record2.clone()]),
    );
    let ctx = context_via(&format!("example.test:{}", d1.port()), &r, &[]);
    delivered(&ctx).await;

    let c1 = d1.wait_closed(1).await;
    assert_eq!(
        c1[0].commands_tls(),
        [("EHLO relay.example.net", false), ("STARTTLS", false)]
    );
    assert_no_mail(&c1[0]);
    let c2 = d2.wait_closed(1).await;
    assert_carried(&c2[0], true);
    assert_eq!(c2[0].sni.as_deref(), Some("mx2.example.test"));

    let peer1 = d1.peer_as("mx1.example.test");
    let peer2 = d2.peer_as("mx2.example.test");
    assert_warning(
        &logs,
        &format!(
            "delivery attempt failed: TLS handshake with {peer1} failed: no TLSA record of {} matches the certificate chain",
            tlsa_name(&d1, "mx1.example.test")
        ),
    );
    let (protocol, cipher) = negotiated(&c2[0]);
    logs.one(&format!(
        "Verified TLS connection established to {peer2}: {protocol} with cipher {cipher}; matched {}",
        matched(&record2, 0)
    ));
    assert_eq!(logs.summary(RCPT).field("relay"), Some(peer2.as_str()));
}

#[tokio::test]
async fn every_mx_failing_defers_naming_the_last_host_and_its_cause() {
    let cert1 = self_signed(&["mx1.example.test"]);
    let cert2 = self_signed(&["mx2.example.test"]);
    let wrong = self_signed(&["mx2.example.test"]);
    let (d1, d2) = two_dests(
        DestScript {
            starttls: false,
            ..presenting(&cert1)
        },
        presenting(&cert2),
    )
    .await;
    let r = Arc::new(
        TableResolver::new()
            .mx_records(
                "example.test",
                &[(10, "mx1.example.test"), (20, "mx2.example.test")],
                Security::Secure,
            )
            .host(
                "mx1.example.test",
                &[[127, 0, 0, 2].into()],
                Security::Secure,
            )
            .host(
                "mx2.example.test",
                &[[127, 0, 0, 3].into()],
                Security::Secure,
            )
            .tlsa_secure(
                &tlsa_name(&d1, "mx1.example.test"),
                vec![tlsa_for(&cert1, 3, 1, 1)],
            )
            .tlsa_secure(
                &tlsa_name(&d2, "mx2.example.test"),
                vec![tlsa_for(&wrong, 3, 1, 1)],
            ),
    );
    let ctx = context_via(&format!("example.test:{}", d1.port()), &r, &[]);
    let want = format!(
        "451 4.7.5 TLS handshake with {} failed: no TLSA record of {} matches the certificate chain",
        d2.peer_as("mx2.example.test"),
        tlsa_name(&d2, "mx2.example.test")
    );
    refused(&ctx, &want).await;
    assert_no_mail(&d1.wait_closed(1).await[0]);
    assert_no_mail(&d2.wait_closed(1).await[0]);
}

// ---------------------------------------------------------------------------
// The TLSA base domain: CNAME'd MX hosts

#[tokio::test]
async fn cname_mx_host_uses_the_target_tlsa_and_sends_the_target_as_sni() {
    let logs = LogCapture::start();
    let target = "mx.hosting.test";
    let cert = self_signed(&[target]);
    let other = self_signed(&[MX]);
    let dest = FakeDest::start(presenting(&cert)).await;
    let record = tlsa_for(&cert, 3, 1, 1);
    let r = Arc::new(
        TableResolver::new()
            .alias_host(MX, target, true, &[Ipv4Addr::LOCALHOST], Security::Secure)
            .tlsa_secure(&tlsa_name(&dest, target), vec![record.clone()])
            // The alias's own records are not the ones that apply.
            .tlsa_secure(&tlsa_name(&dest, MX), vec![tlsa_for(&other, 3, 1, 1)]),
    );
    delivered(&context(&dest, &r, &[])).await;

    let conns = dest.wait_closed(1).await;
    assert_carried(&conns[0], true);
    assert_eq!(conns[0].sni.as_deref(), Some(target));
    let (protocol, cipher) = negotiated(&conns[0]);
    logs.one(&format!(
        "Verified TLS connection established to {}: {protocol} with cipher {cipher}; matched {}",
        dest.peer_as(MX),
        matched(&record, 0)
    ));
    let queries = r.queries();
    assert!(
        queries.contains(&format!("TLSA {}", tlsa_name(&dest, target))),
        "{queries:?}"
    );
    assert!(
        !queries.contains(&format!("TLSA {}", tlsa_name(&dest, MX))),
        "{queries:?}"
    );
}

#[tokio::test]
async fn cname_mx_host_without_target_tlsa_falls_back_to_the_alias() {
    let logs = LogCapture::start();
    let target = "mx.hosting.test";
    let cert = self_signed(&[MX]);
    let dest = FakeDest::start(presenting(&cert)).await;
    let record = tlsa_for(&cert, 3, 1, 1);
    let r = Arc::new(
        TableResolver::new()
            .alias_host(MX, target, true, &[Ipv4Addr::LOCALHOST], Security::Secure)
            .tlsa_answer(&tlsa_name(&dest, target), nodata(Security::Secure))
            .tlsa_secure(&tlsa_name(&dest, MX), vec![record.clone()]),
    );
    delivered(&context(&dest, &r, &[])).await;

    let conns = dest.wait_closed(1).await;
    assert_carried(&conns[0], true);
    assert_eq!(conns[0].sni.as_deref(), Some(MX));
    let (protocol, cipher) = negotiated(&conns[0]);
    logs.one(&format!(
        "Verified TLS connection established to {}: {protocol} with cipher {cipher}; matched {}",
        dest.peer_as(MX),
        matched(&record, 0)
    ));
}

// ---------------------------------------------------------------------------
// DANE-TA

/// A PKI whose leaf has `sans`; the destination presents leaf,
/// intermediate and root.
async fn ta_dest(sans: &[&str]) -> (Pki, FakeDest) {
    let pki = Pki::with(Spec {
        leaf_sans: sans.iter().map(|s| s.to_string()).collect(),
        ..Spec::default()
    });
    let chain = vec![pki.leaf.der(), pki.intermediate.der(), pki.root.der()];
    let dest = FakeDest::start(DestScript {
        identity: Some(identity(chain, pki.leaf.private_key())),
        ..DestScript::default()
    })
    .await;
    (pki, dest)
}

#[tokio::test]
async fn dane_ta_with_the_mx_name_is_delivered_verified() {
    // The MX host name itself, and a wildcard covering it.
    for san in [MX, "*.example.test"] {
        let logs = LogCapture::start();
        let (pki, dest) = ta_dest(&[san]).await;
        let record = tlsa_for(&pki.root, 2, 0, 1);
        let r = Arc::new(resolver(&dest, Some(vec![record.clone()])));
        delivered(&context(&dest, &r, &[])).await;
        let conns = dest.wait_closed(1).await;
        assert_carried(&conns[0], true);
        let (protocol, cipher) = negotiated(&conns[0]);
        logs.one(&format!(
            "Verified TLS connection established to {}: {protocol} with cipher {cipher}; matched {}",
            dest.peer_as(MX),
            matched(&record, 2)
        ));
        assert_no_warnings(&logs);
    }
}

#[tokio::test]
async fn dane_ta_with_a_wrong_name_defers_4_7_5_naming_the_reference_identifiers() {
    let logs = LogCapture::start();
    let (pki, dest) = ta_dest(&["mail.elsewhere.test"]).await;
    let r = Arc::new(resolver(&dest, Some(vec![tlsa_for(&pki.root, 2, 0, 1)])));
    let cause = format!(
        "TLS handshake with {} failed: certificate name does not match any of {MX}, example.test (DANE-TA)",
        dest.peer_as(MX)
    );
    let want = format!("451 4.7.5 {cause}");
    refused(&context(&dest, &r, &[]), &want).await;
    let conns = dest.wait_closed(1).await;
    assert_no_mail(&conns[0]);
    assert_warning(&logs, &format!("delivery attempt failed: {cause}"));
}

// ---------------------------------------------------------------------------
// MX security: Verified vs Trusted, and unsigned hosts

#[tokio::test]
async fn insecure_mx_with_secure_tlsa_is_trusted_not_verified() {
    let logs = LogCapture::start();
    let cert = self_signed(&[MX]);
    let dest = FakeDest::start(presenting(&cert)).await;
    let record = tlsa_for(&cert, 3, 1, 1);
    let r = Arc::new(resolver(&dest, Some(vec![record.clone()])).mx_records(
        "example.test",
        &[(10, MX)],
        Security::Insecure,
    ));
    let ctx = context_via(&format!("example.test:{}", dest.port()), &r, &[]);
    delivered(&ctx).await;

    let conns = dest.wait_closed(1).await;
    assert_carried(&conns[0], true);
    let (protocol, cipher) = negotiated(&conns[0]);
    let m = matched(&record, 0);
    logs.one(&format!(
        "Trusted TLS connection established to {}: {protocol} with cipher {cipher}; matched {m}",
        dest.peer_as(MX)
    ));
    assert_eq!(
        logs.summary(RCPT).field("tls"),
        Some(format!("trusted(dane) {protocol} {cipher} ({m})").as_str())
    );
    assert!(!logs.contains("Verified"), "{}", logs.dump());
}

#[tokio::test]
async fn unsigned_host_is_delivered_opportunistically_without_tlsa_lookup() {
    let logs = LogCapture::start();
    let cert = self_signed(&["whatever.test"]);
    let dest = FakeDest::start(presenting(&cert)).await;
    let r = Arc::new(TableResolver::new().host(MX, &[Ipv4Addr::LOCALHOST], Security::Insecure));
    delivered(&context(&dest, &r, &[])).await;

    let conns = dest.wait_closed(1).await;
    assert_carried(&conns[0], true);
    let (protocol, cipher) = negotiated(&conns[0]);
    logs.one(&format!(
        "Untrusted TLS connection established to {}: {protocol} with cipher {cipher}",
        dest.peer_as(MX)
    ));
    assert!(
        !r.queries().iter().any(|q| q.starts_with("TLSA")),
        "{:?}",
        r.queries()
    );
    assert_no_warnings(&logs);
}
