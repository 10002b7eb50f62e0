//! Cut-through relaying against a scripted destination over real TCP on
//! loopback, with real STARTTLS (dane-rules §5: the final dot is answered
//! only with the destination's own reply; anything that goes wrong before
//! it leaves the destination without an end of data).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use danegate::dns::{FailureKind, Security};
use danegate::outbound::Context;

const MAIL_OK: &str = "250 2.1.0 Ok";
const RCPT_OK: &str = "250 2.1.5 Ok";
const GO_AHEAD: &str = "354 End data with <CR><LF>.<CR><LF>";
const BYE: &str = "221 2.0.0 relay.example.net closing connection";

/// A context routing `example.test` to `dest`.
fn ctx_for(dest: &FakeDest) -> Arc<Context> {
    ConfigBuilder::new()
        .route("example.test", &dest.route())
        .context(&Arc::new(TableResolver::new()))
}

/// A small message in wire form (CRLF, dot-stuffed), without the final dot.
fn small_message(subject: &str) -> Vec<u8> {
    format!("Subject: {subject}\r\n\r\nHello.\r\n").into_bytes()
}

/// Sends one complete DATA transaction and asserts each reply.
async fn transaction<S>(c: &mut SmtpClient<S>, from: &str, to: &str, content: &[u8], want: &str)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    c.cmd(&format!("MAIL FROM:<{from}>"), MAIL_OK).await;
    c.cmd(&format!("RCPT TO:<{to}>"), RCPT_OK).await;
    c.cmd("DATA", GO_AHEAD).await;
    c.send(content).await;
    c.send(".\r\n").await;
    c.expect(want).await;
}

fn show(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn message_is_relayed_byte_for_byte_over_starttls_and_answered_after_the_destination() {
    let gate = Gate::new();
    let dest = FakeDest::start(DestScript {
        hold: Some(gate.clone()),
        ..DestScript::default()
    })
    .await;
    let ctx = ctx_for(&dest);
    let mut s = start_session(&ctx);
    let c = &mut s.client;

    // Wire form as the legacy MTA sends it: ".leading dot" and "." are
    // dot-stuffed, 8-bit UTF-8 text, a 998-octet line (RFC 5321 maximum).
    let mut content = Vec::new();
    content.extend_from_slice(b"From: <sender@legacy.test>\r\n");
    content.extend_from_slice(b"To: <rcpt@example.test>\r\n");
    content.extend_from_slice(b"Subject: cut-through\r\n");
    content.extend_from_slice(b"Content-Type: text/plain; charset=utf-8\r\n");
    content.extend_from_slice(b"Content-Transfer-Encoding: 8bit\r\n\r\n");
    content.extend_from_slice(b"..leading dot\r\n");
    content.extend_from_slice(b"..\r\n");
    content.extend_from_slice("Grüße aus Köln, ½ € – 日本語\r\n".as_bytes());
    content.extend_from_slice(&[b'a'; 998]);
    content.extend_from_slice(b"\r\n");
    content.extend_from_slice(b"  indented . line\r\n\r\nlast line\r\n");
    let size = content.len();

    c.hello(DEFAULT_MAX_SIZE).await;
    c.cmd(
        &format!("MAIL FROM:<sender@legacy.test> SIZE={size} BODY=8BITMIME"),
        MAIL_OK,
    )
    .await;
    c.cmd("RCPT TO:<rcpt@example.test>", RCPT_OK).await;
    c.cmd("DATA", GO_AHEAD).await;
    c.send(&content).await;
    c.send(".\r\n").await;

    // The destination has the whole message and sits on its reply:
    // danegate must not answer the dot before it does.
    dest.wait_for("the final dot", |c| {
        c.len() == 1 && c[0].messages.first().is_some_and(|m| m.complete())
    })
    .await;
    c.expect_silence(Duration::from_millis(300)).await;
    gate.open();
    c.expect("250 2.0.0 Ok: queued as Q1").await;
    c.cmd("QUIT", BYE).await;
    c.expect_closed().await;

    let conns = dest.wait_closed(1).await;
    let conn = &conns[0];
    assert!(conn.tls, "STARTTLS handshake completed");
    // Routed by address literal: no host name to send as SNI.
    assert_eq!(conn.sni, None);
    let mail = format!("MAIL FROM:<sender@legacy.test> SIZE={size} BODY=8BITMIME");
    assert_eq!(
        conn.commands_tls(),
        vec![
            ("EHLO relay.example.net", false),
            ("STARTTLS", false),
            ("EHLO relay.example.net", true),
            (mail.as_str(), true),
            ("RCPT TO:<rcpt@example.test>", true),
            ("DATA", true),
            ("QUIT", true),
        ]
    );
    assert_eq!(conn.messages.len(), 1);
    let (bytes, terminated) = conn.messages[0].data();
    assert!(terminated);
    assert_eq!(show(bytes), show(&content));
    assert_eq!(bytes, &content[..]);
    s.ended().await;
}

#[tokio::test]
async fn destination_without_starttls_gets_plaintext() {
    let dest = FakeDest::start(DestScript {
        starttls: false,
        ..DestScript::default()
    })
    .await;
    let mut s = start_session(&ctx_for(&dest));
    let c = &mut s.client;
    c.hello(DEFAULT_MAX_SIZE).await;
    let msg = small_message("plain");
    transaction(
        c,
        "sender@legacy.test",
        "rcpt@example.test",
        &msg,
        "250 2.0.0 Ok: queued as Q1",
    )
    .await;
    c.cmd("QUIT", BYE).await;
    let conns = dest.wait_closed(1).await;
    assert!(!conns[0].tls);
    assert_eq!(
        conns[0].commands_tls(),
        vec![
            ("EHLO relay.example.net", false),
            ("MAIL FROM:<sender@legacy.test>", false),
            ("RCPT TO:<rcpt@example.test>", false),
            ("DATA", false),
            ("QUIT", false),
        ]
    );
    assert_eq!(
        conns[0].messages,
        vec![Message::Data {
            bytes: msg,
            terminated: true
        }]
    );
}

#[tokio::test]
async fn refused_starttls_continues_in_plaintext_on_the_same_connection() {
    let dest = FakeDest::start(DestScript {
        starttls_reply: "454 4.7.0 TLS not available due to local problem".into(),
        ..DestScript::default()
    })
    .await;
    let mut s = start_session(&ctx_for(&dest));
    let c = &mut s.client;
    c.hello(DEFAULT_MAX_SIZE).await;
    transaction(
        c,
        "sender@legacy.test",
        "rcpt@example.test",
        &small_message("refused tls"),
        "250 2.0.0 Ok: queued as Q1",
    )
    .await;
    c.cmd("QUIT", BYE).await;
    let conns = dest.wait_closed(1).await;
    assert!(!conns[0].tls);
    assert_eq!(
        conns[0].commands_tls(),
        vec![
            ("EHLO relay.example.net", false),
            ("STARTTLS", false),
            ("MAIL FROM:<sender@legacy.test>", false),
            ("RCPT TO:<rcpt@example.test>", false),
            ("DATA", false),
            ("QUIT", false),
        ]
    );
}

#[tokio::test]
async fn failed_opportunistic_handshake_is_retried_without_tls() {
    let dest = FakeDest::start(DestScript {
        break_tls: true,
        ..DestScript::default()
    })
    .await;
    let mut s = start_session(&ctx_for(&dest));
    let c = &mut s.client;
    c.hello(DEFAULT_MAX_SIZE).await;
    transaction(
        c,
        "sender@legacy.test",
        "rcpt@example.test",
        &small_message("retry"),
        "250 2.0.0 Ok: queued as Q1",
    )
    .await;
    c.cmd("QUIT", BYE).await;
    let conns = dest.wait_closed(2).await;
    assert_eq!(
        conns[0].commands(),
        vec!["EHLO relay.example.net", "STARTTLS"]
    );
    assert!(!conns[0].tls);
    assert_eq!(
        conns[1].commands_tls(),
        vec![
            ("EHLO relay.example.net", false),
            ("MAIL FROM:<sender@legacy.test>", false),
            ("RCPT TO:<rcpt@example.test>", false),
            ("DATA", false),
            ("QUIT", false),
        ]
    );
}

#[tokio::test]
async fn sni_is_the_mx_host_name_and_replies_name_it() {
    let dest = FakeDest::start(DestScript::default().rcpt(
        "nobody@viamx.test",
        "550 5.1.1 <nobody@viamx.test>: Recipient address rejected: User unknown",
    ))
    .await;
    let resolver = Arc::new(
        TableResolver::new()
            .mx_records(
                "mx-host.test",
                &[(10, "mx1.mx-host.test")],
                Security::Insecure,
            )
            .host(
                "mx1.mx-host.test",
                &[std::net::Ipv4Addr::LOCALHOST],
                Security::Insecure,
            ),
    );
    let ctx = ConfigBuilder::new()
        .route("viamx.test", &format!("mx-host.test:{}", dest.port()))
        .context(&resolver);
    let mut s = start_session(&ctx);
    let c = &mut s.client;
    c.hello(DEFAULT_MAX_SIZE).await;
    c.cmd("MAIL FROM:<sender@legacy.test>", MAIL_OK).await;
    c.cmd(
        "RCPT TO:<nobody@viamx.test>",
        &format!(
            "550 5.1.1 mx1.mx-host.test[127.0.0.1]:{} said: <nobody@viamx.test>: Recipient address rejected: User unknown",
            dest.port()
        ),
    )
    .await;
    c.cmd("RCPT TO:<rcpt@viamx.test>", RCPT_OK).await;
    c.cmd("DATA", GO_AHEAD).await;
    c.send(small_message("via mx")).await;
    c.send(".\r\n").await;
    c.expect("250 2.0.0 Ok: queued as Q1").await;
    c.cmd("QUIT", BYE).await;
    let conns = dest.wait_closed(1).await;
    assert!(conns[0].tls);
    assert_eq!(conns[0].sni.as_deref(), Some("mx1.mx-host.test"));
    let mut queries = resolver.queries();
    queries.sort();
    assert_eq!(
        queries,
        vec![
            "A mx1.mx-host.test",
            "AAAA mx1.mx-host.test",
            "MX mx-host.test",
            // MTA-STS discovery (RFC 8461 §3.1): no policy published.
            "TXT _mta-sts.mx-host.test"
        ]
    );
}

#[tokio::test]
async fn recipient_of_a_second_domain_is_deferred_with_452() {
    let dest = FakeDest::start(DestScript::default()).await;
    let other = FakeDest::start(DestScript::default()).await;
    let ctx = ConfigBuilder::new()
        .route("example.test", &dest.route())
        .route("other.test", &other.route())
        .context(&Arc::new(TableResolver::new()));
    let mut s = start_session(&ctx);
    let c = &mut s.client;
    c.hello(DEFAULT_MAX_SIZE).await;
    c.cmd("MAIL FROM:<sender@legacy.test>", MAIL_OK).await;
    c.cmd("RCPT TO:<one@example.test>", RCPT_OK).await;
    c.cmd(
        "RCPT TO:<two@other.test>",
        "452 4.5.3 Too many recipient domains: this transaction goes to example.test; send recipients of other domains in a new transaction",
    )
    .await;
    c.cmd("DATA", GO_AHEAD).await;
    let msg = small_message("first domain");
    c.send(&msg).await;
    c.send(".\r\n").await;
    c.expect("250 2.0.0 Ok: queued as Q1").await;
    assert!(other.conns().is_empty(), "nothing went to other.test");

    // The deferred recipient in its own transaction goes to its own
    // destination.
    transaction(
        c,
        "sender@legacy.test",
        "two@other.test",
        &msg,
        "250 2.0.0 Ok: queued as Q1",
    )
    .await;
    c.cmd("QUIT", BYE).await;
    let conns = dest.wait_closed(1).await;
    assert_eq!(
        conns[0].commands(),
        vec![
            "EHLO relay.example.net",
            "STARTTLS",
            "EHLO relay.example.net",
            "MAIL FROM:<sender@legacy.test>",
            "RCPT TO:<one@example.test>",
            "DATA",
            "QUIT",
        ]
    );
    assert!(conns[0].messages[0].complete());
    let oconns = other.wait_closed(1).await;
    assert_eq!(
        oconns[0].commands()[3..],
        [
            "MAIL FROM:<sender@legacy.test>",
            "RCPT TO:<two@other.test>",
            "DATA",
            "QUIT"
        ]
    );
}

#[tokio::test]
async fn rejected_recipient_gets_the_destination_reply_and_data_proceeds() {
    let dest = FakeDest::start(DestScript::default().rcpt(
        "bad@example.test",
        "550 5.1.1 <bad@example.test>: Recipient address rejected: User unknown in virtual mailbox table",
    ))
    .await;
    let mut s = start_session(&ctx_for(&dest));
    let c = &mut s.client;
    c.hello(DEFAULT_MAX_SIZE).await;
    c.cmd("MAIL FROM:<sender@legacy.test>", MAIL_OK).await;
    c.cmd(
        "RCPT TO:<bad@example.test>",
        &format!(
            "550 5.1.1 {} said: <bad@example.test>: Recipient address rejected: User unknown in virtual mailbox table",
            dest.peer()
        ),
    )
    .await;
    c.cmd("RCPT TO:<good@example.test>", RCPT_OK).await;
    c.cmd("DATA", GO_AHEAD).await;
    let msg = small_message("one of two");
    c.send(&msg).await;
    c.send(".\r\n").await;
    c.expect("250 2.0.0 Ok: queued as Q1").await;
    c.cmd("QUIT", BYE).await;
    let conns = dest.wait_closed(1).await;
    assert_eq!(
        conns[0].commands()[3..],
        [
            "MAIL FROM:<sender@legacy.test>",
            "RCPT TO:<bad@example.test>",
            "RCPT TO:<good@example.test>",
            "DATA",
            "QUIT"
        ]
    );
    assert_eq!(
        conns[0].messages,
        vec![Message::Data {
            bytes: msg,
            terminated: true
        }]
    );
}

#[tokio::test]
async fn pipelined_transaction_is_answered_in_order() {
    let dest = FakeDest::start(
        DestScript::default().rcpt("bad@example.test", "550 5.1.1 <bad@example.test>: unknown"),
    )
    .await;
    let mut s = start_session(&ctx_for(&dest));
    let c = &mut s.client;
    c.hello(DEFAULT_MAX_SIZE).await;
    c.send(
        "MAIL FROM:<sender@legacy.test>\r\nRCPT TO:<a@example.test>\r\nRCPT TO:<bad@example.test>\r\nRCPT TO:<b@example.test>\r\nDATA\r\n",
    )
    .await;
    c.expect(MAIL_OK).await;
    c.expect(RCPT_OK).await;
    c.expect(&format!(
        "550 5.1.1 {} said: <bad@example.test>: unknown",
        dest.peer()
    ))
    .await;
    c.expect(RCPT_OK).await;
    c.expect(GO_AHEAD).await;
    c.send(b"Subject: pipelined\r\n\r\nbody\r\n.\r\nQUIT\r\n")
        .await;
    c.expect("250 2.0.0 Ok: queued as Q1").await;
    c.expect(BYE).await;
    c.expect_closed().await;
    let conns = dest.wait_closed(1).await;
    assert_eq!(
        conns[0].messages,
        vec![Message::Data {
            bytes: b"Subject: pipelined\r\n\r\nbody\r\n".to_vec(),
            terminated: true
        }]
    );
}

#[tokio::test]
async fn too_many_recipients_are_deferred() {
    let dest = FakeDest::start(DestScript::default()).await;
    let ctx = ConfigBuilder::new()
        .server("max_recipients", "2")
        .route("example.test", &dest.route())
        .context(&Arc::new(TableResolver::new()));
    let mut s = start_session(&ctx);
    let c = &mut s.client;
    c.hello(DEFAULT_MAX_SIZE).await;
    c.cmd("MAIL FROM:<sender@legacy.test>", MAIL_OK).await;
    c.cmd("RCPT TO:<r1@example.test>", RCPT_OK).await;
    c.cmd("RCPT TO:<r2@example.test>", RCPT_OK).await;
    c.cmd("RCPT TO:<r3@example.test>", "452 4.5.3 Too many recipients")
        .await;
    c.cmd("QUIT", BYE).await;
    let conns = dest.wait_closed(1).await;
    assert_eq!(
        conns[0].commands()[3..],
        [
            "MAIL FROM:<sender@legacy.test>",
            "RCPT TO:<r1@example.test>",
            "RCPT TO:<r2@example.test>",
            "RSET",
            "QUIT"
        ]
    );
}

#[tokio::test]
async fn dsn_parameters_pass_only_to_a_destination_with_dsn() {
    for dsn in [true, false] {
        let dest = FakeDest::start(DestScript {
            dsn,
            ..DestScript::default()
        })
        .await;
        let mut s = start_session(&ctx_for(&dest));
        let c = &mut s.client;
        c.hello(DEFAULT_MAX_SIZE).await;
        c.cmd(
            "MAIL FROM:<sender@legacy.test> RET=HDRS ENVID=QQ314159",
            MAIL_OK,
        )
        .await;
        c.cmd(
            "RCPT TO:<rcpt@example.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;rcpt@example.test",
            RCPT_OK,
        )
        .await;
        c.cmd("QUIT", BYE).await;
        let conns = dest.wait_closed(1).await;
        let want: [&str; 2] = if dsn {
            [
                "MAIL FROM:<sender@legacy.test> RET=HDRS ENVID=QQ314159",
                "RCPT TO:<rcpt@example.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;rcpt@example.test",
            ]
        } else {
            [
                "MAIL FROM:<sender@legacy.test>",
                "RCPT TO:<rcpt@example.test>",
            ]
        };
        assert_eq!(conns[0].commands()[3..5], want, "dsn={dsn}");
    }
}

#[tokio::test]
async fn destination_closing_after_the_content_defers_with_lost_connection() {
    let dest = FakeDest::start(DestScript {
        end_of_data: EndOfData::Close,
        ..DestScript::default()
    })
    .await;
    let mut s = start_session(&ctx_for(&dest));
    let c = &mut s.client;
    c.hello(DEFAULT_MAX_SIZE).await;
    transaction(
        c,
        "sender@legacy.test",
        "rcpt@example.test",
        &small_message("lost"),
        &format!(
            "451 4.4.2 lost connection with {} while sending end of data -- message may be sent more than once: connection closed by server",
            dest.peer()
        ),
    )
    .await;
    let conns = dest.wait_closed(1).await;
    assert!(conns[0].messages[0].complete());
    // The session goes on, and the next transaction gets a new connection.
    c.cmd("NOOP", "250 2.0.0 Ok").await;
    c.cmd("MAIL FROM:<sender@legacy.test>", MAIL_OK).await;
    c.cmd("RCPT TO:<rcpt@example.test>", RCPT_OK).await;
    dest.wait_for("a second connection", |c| c.len() == 2).await;
}

#[tokio::test]
async fn client_disconnecting_mid_data_leaves_the_destination_without_an_end_of_data() {
    let dest = FakeDest::start(DestScript::default()).await;
    let mut s = start_session(&ctx_for(&dest));
    let c = &mut s.client;
    c.hello(DEFAULT_MAX_SIZE).await;
    c.cmd("MAIL FROM:<sender@legacy.test>", MAIL_OK).await;
    c.cmd("RCPT TO:<rcpt@example.test>", RCPT_OK).await;
    c.cmd("DATA", GO_AHEAD).await;
    let sent = b"Subject: partial\r\n\r\nfirst line\r\nsecond line\r\n".to_vec();
    c.send(&sent).await;
    // The content streams through before the end of data.
    dest.wait_for("the start of the content", |c| {
        c.first()
            .and_then(|c| c.messages.first())
            .is_some_and(|m| m.data().0.len() >= b"Subject: partial\r\n".len())
    })
    .await;
    drop(s.client);
    let conns = dest.wait_closed(1).await;
    let (bytes, terminated) = conns[0].messages[0].data();
    assert!(!terminated, "the destination must not get an end of data");
    assert!(
        sent.starts_with(bytes),
        "received {:?}, not a prefix of what was sent",
        show(bytes)
    );
    // Dropped, not QUIT (a QUIT would be message content here).
    assert_eq!(
        conns[0].commands(),
        vec![
            "EHLO relay.example.net",
            "STARTTLS",
            "EHLO relay.example.net",
            "MAIL FROM:<sender@legacy.test>",
            "RCPT TO:<rcpt@example.test>",
            "DATA",
        ]
    );
    bounded("the session to end", s.task).await.unwrap();
}

/// The smuggling cases: a clean prefix (sent and streamed first), then the
/// rest of the content up to and including the real CRLF.CRLF.
const BARE_LINE_ENDS: &[(&str, &[u8], &[u8], &str)] = &[
    (
        "smuggling with \\n.\\r\\n",
        b"Subject: smuggle\r\n\r\n",
        b"hello\n.\r\nMAIL FROM:<evil@attacker.test>\r\nRCPT TO:<victim@example.test>\r\nDATA\r\nsmuggled\r\n.\r\n",
        "550 5.5.2 Message refused: bare LF in message content (lines must end with CRLF, RFC 5321 section 2.3.8)",
    ),
    (
        "plain bare LF",
        b"Subject: bare lf\r\n\r\n",
        b"line one\nline two\r\n.\r\n",
        "550 5.5.2 Message refused: bare LF in message content (lines must end with CRLF, RFC 5321 section 2.3.8)",
    ),
    (
        "smuggling with \\r.\\r",
        b"Subject: smuggle cr\r\n\r\n",
        b"hello\r.\rMAIL FROM:<evil@attacker.test>\r\n.\r\n",
        "550 5.5.2 Message refused: bare CR in message content (lines must end with CRLF, RFC 5321 section 2.3.8)",
    ),
    (
        "bare LF right after the prefix",
        b"Subject: lf.\r\n\r\n",
        b"\n.\r\nmore\r\n.\r\n",
        "550 5.5.2 Message refused: bare LF in message content (lines must end with CRLF, RFC 5321 section 2.3.8)",
    ),
];

#[tokio::test]
async fn bare_line_ends_in_data_are_refused_and_never_reach_the_destination() {
    for &(name, prefix, rest, want) in BARE_LINE_ENDS {
        let dest = FakeDest::start(DestScript::default()).await;
        let mut s = start_session(&ctx_for(&dest));
        let c = &mut s.client;
        c.hello(DEFAULT_MAX_SIZE).await;
        c.cmd("MAIL FROM:<sender@legacy.test>", MAIL_OK).await;
        c.cmd("RCPT TO:<rcpt@example.test>", RCPT_OK).await;
        c.cmd("DATA", GO_AHEAD).await;
        c.send(prefix).await;
        dest.wait_for("the clean prefix", |c| {
            c.first()
                .and_then(|c| c.messages.first())
                .is_some_and(|m| m.data().0.len() >= b"Subject: ".len())
        })
        .await;
        c.send(rest).await;
        c.expect(want).await;
        // The session stays in step: a next transaction is delivered.
        let msg = small_message("after");
        transaction(
            c,
            "sender@legacy.test",
            "rcpt@example.test",
            &msg,
            "250 2.0.0 Ok: queued as Q1",
        )
        .await;
        c.cmd("QUIT", BYE).await;
        let conns = dest.wait_closed(2).await;
        let (bytes, terminated) = conns[0].messages[0].data();
        assert!(!terminated, "{name}: the destination got an end of data");
        assert!(
            prefix.starts_with(bytes),
            "{name}: forwarded {:?} beyond the clean prefix",
            show(bytes)
        );
        assert_eq!(
            conns[0].commands(),
            vec![
                "EHLO relay.example.net",
                "STARTTLS",
                "EHLO relay.example.net",
                "MAIL FROM:<sender@legacy.test>",
                "RCPT TO:<rcpt@example.test>",
                "DATA",
            ],
            "{name}"
        );
        assert_eq!(
            conns[1].messages,
            vec![Message::Data {
                bytes: msg,
                terminated: true
            }],
            "{name}"
        );
    }
}

#[tokio::test]
async fn message_over_the_size_limit_is_refused_without_an_end_of_data() {
    let dest = FakeDest::start(DestScript::default()).await;
    let ctx = ConfigBuilder::new()
        .server("max_message_size", "1000")
        .route("example.test", &dest.route())
        .context(&Arc::new(TableResolver::new()));
    let mut s = start_session(&ctx);
    let c = &mut s.client;
    c.hello(1000).await;
    c.cmd("MAIL FROM:<sender@legacy.test>", MAIL_OK).await;
    c.cmd("RCPT TO:<rcpt@example.test>", RCPT_OK).await;
    c.cmd("DATA", GO_AHEAD).await;
    let line = format!("{}\r\n", "x".repeat(70));
    for _ in 0..30 {
        c.send(&line).await;
    }
    c.send(".\r\n").await;
    c.expect("552 5.3.4 Message size exceeds fixed limit of 1000 octets")
        .await;
    let msg = small_message("small enough");
    transaction(
        c,
        "sender@legacy.test",
        "rcpt@example.test",
        &msg,
        "250 2.0.0 Ok: queued as Q1",
    )
    .await;
    c.cmd("QUIT", BYE).await;
    let conns = dest.wait_closed(2).await;
    let (bytes, terminated) = conns[0].messages[0].data();
    assert!(!terminated);
    assert!(
        bytes.len() <= 1000,
        "{} octets forwarded past the limit",
        bytes.len()
    );
    assert!(conns[1].messages[0].complete());
}

#[tokio::test]
async fn bdat_chunks_reach_a_chunking_destination_unchanged() {
    let dest = FakeDest::start(DestScript {
        chunking: true,
        ..DestScript::default()
    })
    .await;
    let mut s = start_session(&ctx_for(&dest));
    let c = &mut s.client;
    c.hello(DEFAULT_MAX_SIZE).await;
    c.cmd("MAIL FROM:<sender@legacy.test>", MAIL_OK).await;
    c.cmd("RCPT TO:<rcpt@example.test>", RCPT_OK).await;
    // Raw content: no dot-stuffing in BDAT, so ".\r\n" is just content.
    let chunk1: &[u8] = b"Subject: bdat\r\n\r\n.\r\n.leading dot\r\n";
    let chunk2: &[u8] = b"line\r\n.\r\n";
    let chunk3: &[u8] = b"bare\nLF is raw here\r\n";
    // Everything pipelined in one write.
    let mut wire = Vec::new();
    wire.extend_from_slice(format!("BDAT {}\r\n", chunk1.len()).as_bytes());
    wire.extend_from_slice(chunk1);
    wire.extend_from_slice(format!("BDAT {}\r\n", chunk2.len()).as_bytes());
    wire.extend_from_slice(chunk2);
    wire.extend_from_slice(format!("BDAT {} LAST\r\n", chunk3.len()).as_bytes());
    wire.extend_from_slice(chunk3);
    c.send(&wire).await;
    c.expect(&format!(
        "250 2.0.0 chunk 1 of {} octets stored",
        chunk1.len()
    ))
    .await;
    c.expect(&format!(
        "250 2.0.0 chunk 2 of {} octets stored",
        chunk2.len()
    ))
    .await;
    c.expect("250 2.0.0 Ok: queued as Q1").await;
    c.cmd("QUIT", BYE).await;
    let conns = dest.wait_closed(1).await;
    assert_eq!(
        conns[0].commands()[3..],
        [
            "MAIL FROM:<sender@legacy.test>".to_owned(),
            "RCPT TO:<rcpt@example.test>".to_owned(),
            format!("BDAT {}", chunk1.len()),
            format!("BDAT {}", chunk2.len()),
            format!("BDAT {} LAST", chunk3.len()),
            "QUIT".to_owned(),
        ]
    );
    assert_eq!(
        conns[0].messages,
        vec![Message::Bdat {
            chunks: vec![
                Chunk {
                    bytes: chunk1.to_vec(),
                    last: false
                },
                Chunk {
                    bytes: chunk2.to_vec(),
                    last: false
                },
                Chunk {
                    bytes: chunk3.to_vec(),
                    last: true
                },
            ]
        }]
    );
}

/// BDAT chunks → the dot-stuffed DATA stream a non-CHUNKING destination
/// must receive (without the final ".\r\n").
/// (case name, raw chunks, expected DATA stream)
type Conversion = (&'static str, &'static [&'static [u8]], &'static [u8]);

const BDAT_TO_DATA: &[Conversion] = &[
    (
        "leading dots, CRLF split across chunks",
        &[b"Subject: conv\r\n\r\n.first\r\nline\r", b"\n.\r\nlast\r\n"],
        b"Subject: conv\r\n\r\n..first\r\nline\r\n..\r\nlast\r\n",
    ),
    (
        "dot at the start of the next chunk",
        &[b"Subject: conv\r\n\r\nx\r\n", b".y\r\n"],
        b"Subject: conv\r\n\r\nx\r\n..y\r\n",
    ),
    (
        "no final CRLF",
        &[b"Subject: conv\r\n\r\nbody"],
        b"Subject: conv\r\n\r\nbody\r\n",
    ),
    (
        "bare LF and bare CR become CRLF",
        &[b"Subject: conv\r\n\r\na\nb\rc\r\n", b".d"],
        b"Subject: conv\r\n\r\na\r\nb\r\nc\r\n..d\r\n",
    ),
    (
        "CR held at the end of the last chunk",
        &[b"Subject: conv\r\n\r\nbody\r"],
        b"Subject: conv\r\n\r\nbody\r\n",
    ),
    (
        "terminator-looking content",
        &[b"Subject: conv\r\n\r\n.\r\n", b"\r\n.\r\n"],
        b"Subject: conv\r\n\r\n..\r\n\r\n..\r\n",
    ),
];

#[tokio::test]
async fn bdat_to_a_destination_without_chunking_becomes_dot_stuffed_data() {
    let dest = FakeDest::start(DestScript {
        chunking: false,
        ..DestScript::default()
    })
    .await;
    let mut s = start_session(&ctx_for(&dest));
    let c = &mut s.client;
    c.hello(DEFAULT_MAX_SIZE).await;
    for (n, &(name, chunks, want)) in BDAT_TO_DATA.iter().enumerate() {
        c.cmd("MAIL FROM:<sender@legacy.test>", MAIL_OK).await;
        c.cmd("RCPT TO:<rcpt@example.test>", RCPT_OK).await;
        let mut total = 0;
        for (i, chunk) in chunks.iter().enumerate() {
            total += chunk.len();
            let last = i + 1 == chunks.len();
            let mut wire = format!(
                "BDAT {}{}\r\n",
                chunk.len(),
                if last { " LAST" } else { "" }
            )
            .into_bytes();
            wire.extend_from_slice(chunk);
            c.send(&wire).await;
            let reply = c.reply().await;
            let expected = if last {
                format!("250 2.0.0 Ok: queued as Q{}", n + 1)
            } else {
                format!("250 2.0.0 {total} octets received")
            };
            assert_eq!(reply, expected, "{name}: chunk {i}");
        }
        let conns = dest.conns();
        assert_eq!(conns.len(), 1, "{name}: one connection for all");
        assert_eq!(
            conns[0].messages.get(n),
            Some(&Message::Data {
                bytes: want.to_vec(),
                terminated: true
            }),
            "{name}: received {:?}",
            conns[0].messages.get(n).map(|m| show(m.data().0))
        );
    }
    c.cmd("QUIT", BYE).await;
    let conns = dest.wait_closed(1).await;
    let data_count = conns[0].commands().iter().filter(|l| **l == "DATA").count();
    assert_eq!(data_count, BDAT_TO_DATA.len());
    assert!(!conns[0].commands().iter().any(|l| l.starts_with("BDAT")));
}

#[tokio::test]
async fn smtputf8_message_to_a_destination_without_smtputf8_is_refused() {
    let dest = FakeDest::start(DestScript {
        smtputf8: false,
        ..DestScript::default()
    })
    .await;
    let mut s = start_session(&ctx_for(&dest));
    let c = &mut s.client;
    c.hello(DEFAULT_MAX_SIZE).await;
    c.cmd("MAIL FROM:<sender@legacy.test> SMTPUTF8", MAIL_OK)
        .await;
    let refusal = format!(
        "553 5.6.7 {} does not support SMTPUTF8, which this message requires",
        dest.peer()
    );
    c.cmd("RCPT TO:<rcpt@example.test>", &refusal).await;
    c.cmd("RCPT TO:<other@example.test>", &refusal).await;
    c.cmd("DATA", "554 5.5.1 No valid recipients").await;
    c.cmd("QUIT", BYE).await;
    let conns = dest.wait_closed(1).await;
    assert_eq!(
        conns[0].commands(),
        vec![
            "EHLO relay.example.net",
            "STARTTLS",
            "EHLO relay.example.net",
            "QUIT"
        ]
    );
}

#[tokio::test]
async fn smtputf8_message_to_a_destination_with_smtputf8_keeps_the_parameter() {
    let dest = FakeDest::start(DestScript::default()).await;
    let mut s = start_session(&ctx_for(&dest));
    let c = &mut s.client;
    c.hello(DEFAULT_MAX_SIZE).await;
    c.cmd("MAIL FROM:<jörg@legacy.test> SMTPUTF8", MAIL_OK)
        .await;
    c.cmd("RCPT TO:<zoë@example.test>", RCPT_OK).await;
    c.cmd("QUIT", BYE).await;
    let conns = dest.wait_closed(1).await;
    assert_eq!(
        conns[0].commands()[3..],
        [
            "MAIL FROM:<jörg@legacy.test> SMTPUTF8",
            "RCPT TO:<zoë@example.test>",
            "RSET",
            "QUIT"
        ]
    );
}

#[tokio::test]
async fn declared_size_above_the_destination_limit_is_refused() {
    let dest = FakeDest::start(DestScript {
        size: Some(1000),
        ..DestScript::default()
    })
    .await;
    let mut s = start_session(&ctx_for(&dest));
    let c = &mut s.client;
    c.hello(DEFAULT_MAX_SIZE).await;
    c.cmd("MAIL FROM:<sender@legacy.test> SIZE=5000", MAIL_OK)
        .await;
    c.cmd(
        "RCPT TO:<rcpt@example.test>",
        &format!(
            "552 5.3.4 Message size exceeds the limit of 1000 octets announced by {}",
            dest.peer()
        ),
    )
    .await;
    c.cmd("RSET", "250 2.0.0 Ok").await;
    // At the limit is fine, and SIZE is passed on.
    c.cmd("MAIL FROM:<sender@legacy.test> SIZE=1000", MAIL_OK)
        .await;
    c.cmd("RCPT TO:<rcpt@example.test>", RCPT_OK).await;
    c.cmd("QUIT", BYE).await;
    let conns = dest.wait_closed(1).await;
    assert_eq!(
        conns[0].commands()[3..],
        [
            "MAIL FROM:<sender@legacy.test> SIZE=1000",
            "RCPT TO:<rcpt@example.test>",
            "RSET",
            "QUIT"
        ]
    );
}

#[tokio::test]
async fn negative_end_of_data_replies_pass_through_with_the_destination_named() {
    let cases = [
        (
            "554 5.7.1 Message rejected as spam",
            "554 5.7.1 {peer} said: Message rejected as spam",
        ),
        (
            "451 4.3.0 Temporary local problem, try again",
            "451 4.3.0 {peer} said: Temporary local problem, try again",
        ),
        (
            "452 Insufficient system storage",
            "452 4.0.0 {peer} said: Insufficient system storage",
        ),
        (
            "550-5.7.1 first line\n550 5.7.1 second line",
            "550 5.7.1 {peer} said: first line second line",
        ),
    ];
    for (reply, want) in cases {
        let dest = FakeDest::start(DestScript {
            end_of_data: EndOfData::Reply(reply.to_owned()),
            ..DestScript::default()
        })
        .await;
        let mut s = start_session(&ctx_for(&dest));
        let c = &mut s.client;
        c.hello(DEFAULT_MAX_SIZE).await;
        let want = want.replace("{peer}", &dest.peer());
        transaction(
            c,
            "sender@legacy.test",
            "rcpt@example.test",
            &small_message("refused"),
            &want,
        )
        .await;
        // The conversation is still usable for the next message.
        c.cmd("MAIL FROM:<sender@legacy.test>", MAIL_OK).await;
        c.cmd("RCPT TO:<rcpt@example.test>", RCPT_OK).await;
        c.cmd("QUIT", BYE).await;
        let conns = dest.wait_closed(1).await;
        assert!(conns[0].messages[0].complete(), "{reply}");
    }
}

#[tokio::test]
async fn negative_reply_to_bdat_last_passes_through() {
    let dest = FakeDest::start(DestScript {
        chunking: true,
        end_of_data: EndOfData::Reply("554 5.6.0 Message content rejected".into()),
        ..DestScript::default()
    })
    .await;
    let mut s = start_session(&ctx_for(&dest));
    let c = &mut s.client;
    c.hello(DEFAULT_MAX_SIZE).await;
    c.cmd("MAIL FROM:<sender@legacy.test>", MAIL_OK).await;
    c.cmd("RCPT TO:<rcpt@example.test>", RCPT_OK).await;
    c.send(b"BDAT 5 LAST\r\nhello").await;
    c.expect(&format!(
        "554 5.6.0 {} said: Message content rejected",
        dest.peer()
    ))
    .await;
    c.cmd("NOOP", "250 2.0.0 Ok").await;
}

/// The connection cache: a session that ends leaves its idle, verified
/// connection for the next session's transaction to the same domain, which
/// skips the TCP and TLS handshakes; the cache says QUIT once the
/// connection has been idle for `connection_cache` seconds.
#[tokio::test]
async fn sessions_share_cached_connections_until_they_expire() {
    let dest = FakeDest::start(DestScript::default()).await;
    let ctx = ConfigBuilder::new()
        .route("example.test", &dest.route())
        .timeout("connection_cache", 1)
        .context(&Arc::new(TableResolver::new()));
    for (n, want) in [
        (1, "250 2.0.0 Ok: queued as Q1"),
        (2, "250 2.0.0 Ok: queued as Q2"),
    ] {
        let mut s = start_session(&ctx);
        let c = &mut s.client;
        c.hello(DEFAULT_MAX_SIZE).await;
        let m = small_message(&format!("session {n}"));
        transaction(
            c,
            "sender@legacy.test",
            &format!("rcpt{n}@example.test"),
            &m,
            want,
        )
        .await;
        c.cmd("QUIT", BYE).await;
        bounded("the session to end", s.task).await.unwrap();
    }
    let started = std::time::Instant::now();
    let conns = dest.wait_closed(1).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the cached connection was closed after {:?}",
        started.elapsed()
    );
    assert_eq!(
        conns[0].commands(),
        vec![
            "EHLO relay.example.net",
            "STARTTLS",
            "EHLO relay.example.net",
            "MAIL FROM:<sender@legacy.test>",
            "RCPT TO:<rcpt1@example.test>",
            "DATA",
            "MAIL FROM:<sender@legacy.test>",
            "RCPT TO:<rcpt2@example.test>",
            "DATA",
            "QUIT",
        ]
    );
    assert!(conns[0].tls);
}

/// `connection_reuse_limit`: a connection established longer ago is not
/// used for another transaction, neither within its inbound session nor
/// from the cache (it gets QUIT), so that TLSA changes reach every
/// connection in bounded time; a younger one is reused.
#[tokio::test]
async fn connections_are_not_reused_past_the_reuse_limit() {
    let dest = FakeDest::start(DestScript::default()).await;
    let ctx = ConfigBuilder::new()
        .route("example.test", &dest.route())
        .timeout("connection_cache", 1)
        .timeout("connection_reuse_limit", 1)
        .context(&Arc::new(TableResolver::new()));
    let send = |n: u32| async move {
        (
            small_message(&format!("message {n}")),
            format!("rcpt{n}@example.test"),
            format!("250 2.0.0 Ok: queued as Q{n}"),
        )
    };
    // Session A: two transactions 1.2 s apart: the second needs a new
    // connection, the first gets QUIT.
    let mut a = start_session(&ctx);
    a.client.hello(DEFAULT_MAX_SIZE).await;
    let (m, r, want) = send(1).await;
    transaction(&mut a.client, "sender@legacy.test", &r, &m, &want).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let (m, r, want) = send(2).await;
    transaction(&mut a.client, "sender@legacy.test", &r, &m, &want).await;
    a.client.cmd("QUIT", BYE).await;
    bounded("session A to end", a.task).await.unwrap();
    // Session B at once: the second connection is young: reused.
    let mut b = start_session(&ctx);
    b.client.hello(DEFAULT_MAX_SIZE).await;
    let (m, r, want) = send(3).await;
    transaction(&mut b.client, "sender@legacy.test", &r, &m, &want).await;
    b.client.cmd("QUIT", BYE).await;
    bounded("session B to end", b.task).await.unwrap();

    let mut conns = dest.wait_closed(2).await;
    // In order of their first transaction.
    conns.sort_by_key(|c| c.commands().get(4).map(|s| s.to_string()));
    let handshake = [
        "EHLO relay.example.net",
        "STARTTLS",
        "EHLO relay.example.net",
    ];
    let txn = |n: u32| {
        vec![
            "MAIL FROM:<sender@legacy.test>".to_owned(),
            format!("RCPT TO:<rcpt{n}@example.test>"),
            "DATA".to_owned(),
        ]
    };
    let want = |ns: &[u32]| {
        let mut v: Vec<String> = handshake.iter().map(|s| s.to_string()).collect();
        for &n in ns {
            v.extend(txn(n));
        }
        v.push("QUIT".to_owned());
        v
    };
    let got: Vec<Vec<String>> = conns
        .iter()
        .map(|c| c.commands().iter().map(|s| s.to_string()).collect())
        .collect();
    assert_eq!(got, vec![want(&[1]), want(&[2, 3])]);
}

#[tokio::test]
async fn two_transactions_to_one_domain_share_the_outbound_connection() {
    let dest = FakeDest::start(DestScript::default()).await;
    let mut s = start_session(&ctx_for(&dest));
    let c = &mut s.client;
    c.hello(DEFAULT_MAX_SIZE).await;
    let m1 = small_message("first");
    let m2 = small_message("second");
    transaction(
        c,
        "first@legacy.test",
        "rcpt1@example.test",
        &m1,
        "250 2.0.0 Ok: queued as Q1",
    )
    .await;
    transaction(
        c,
        "second@legacy.test",
        "rcpt2@example.test",
        &m2,
        "250 2.0.0 Ok: queued as Q2",
    )
    .await;
    c.cmd("QUIT", BYE).await;
    let conns = dest.wait_closed(1).await;
    assert_eq!(
        conns[0].commands(),
        vec![
            "EHLO relay.example.net",
            "STARTTLS",
            "EHLO relay.example.net",
            "MAIL FROM:<first@legacy.test>",
            "RCPT TO:<rcpt1@example.test>",
            "DATA",
            "MAIL FROM:<second@legacy.test>",
            "RCPT TO:<rcpt2@example.test>",
            "DATA",
            "QUIT",
        ]
    );
    assert_eq!(
        conns[0].messages,
        vec![
            Message::Data {
                bytes: m1,
                terminated: true
            },
            Message::Data {
                bytes: m2,
                terminated: true
            },
        ]
    );
}

#[tokio::test]
async fn rset_mid_transaction_is_relayed_and_the_connection_reused() {
    let dest = FakeDest::start(DestScript::default()).await;
    let mut s = start_session(&ctx_for(&dest));
    let c = &mut s.client;
    c.hello(DEFAULT_MAX_SIZE).await;
    c.cmd("MAIL FROM:<sender@legacy.test>", MAIL_OK).await;
    c.cmd("RCPT TO:<rcpt@example.test>", RCPT_OK).await;
    c.cmd("RSET", "250 2.0.0 Ok").await;
    transaction(
        c,
        "sender@legacy.test",
        "rcpt@example.test",
        &small_message("after rset"),
        "250 2.0.0 Ok: queued as Q1",
    )
    .await;
    c.cmd("QUIT", BYE).await;
    let conns = dest.wait_closed(1).await;
    assert_eq!(
        conns[0].commands()[3..],
        [
            "MAIL FROM:<sender@legacy.test>",
            "RCPT TO:<rcpt@example.test>",
            "RSET",
            "MAIL FROM:<sender@legacy.test>",
            "RCPT TO:<rcpt@example.test>",
            "DATA",
            "QUIT"
        ]
    );
}

#[tokio::test]
async fn connect_failure_defers_naming_host_and_address() {
    let port = closed_port().await;
    let ctx = ConfigBuilder::new()
        .route("example.test", &format!("[127.0.0.1]:{port}"))
        .context(&Arc::new(TableResolver::new()));
    let mut s = start_session(&ctx);
    let c = &mut s.client;
    c.hello(DEFAULT_MAX_SIZE).await;
    c.cmd("MAIL FROM:<sender@legacy.test>", MAIL_OK).await;
    let want = format!(
        "451 4.4.1 connect to 127.0.0.1[127.0.0.1]:{port}: Connection refused (os error 111)"
    );
    c.cmd("RCPT TO:<rcpt@example.test>", &want).await;
    c.cmd("RCPT TO:<rcpt2@example.test>", &want).await;
    c.cmd("DATA", "554 5.5.1 No valid recipients").await;
    c.cmd("QUIT", BYE).await;
}

#[tokio::test]
async fn destination_refusing_the_greeting_defers() {
    let dest = FakeDest::start(DestScript {
        greeting: "554 5.7.1 No service for you".into(),
        ..DestScript::default()
    })
    .await;
    let mut s = start_session(&ctx_for(&dest));
    let c = &mut s.client;
    c.hello(DEFAULT_MAX_SIZE).await;
    c.cmd("MAIL FROM:<sender@legacy.test>", MAIL_OK).await;
    c.cmd(
        "RCPT TO:<rcpt@example.test>",
        &format!(
            "451 4.7.1 {} said: 554 5.7.1 No service for you (while receiving the initial server greeting)",
            dest.peer()
        ),
    )
    .await;
}

#[tokio::test]
async fn dns_outcomes_become_replies() {
    let resolver = Arc::new(
        TableResolver::new()
            .mx_records("null.test", &[(0, ".")], Security::Secure)
            .mx_answer("nx.test", nxdomain(Security::Secure))
            .mx_answer(
                "fail.test",
                dns_failure("fail.test", "MX", FailureKind::ServFail),
            )
            .mx_records("noaddr.test", &[(10, "mx.noaddr.test")], Security::Insecure)
            .a_answer("mx.noaddr.test", nodata(Security::Insecure))
            .aaaa_answer("mx.noaddr.test", nodata(Security::Insecure)),
    );
    let ctx = ConfigBuilder::new().context(&resolver);
    let mut s = start_session(&ctx);
    let c = &mut s.client;
    c.hello(DEFAULT_MAX_SIZE).await;
    let cases = [
        (
            "a@null.test",
            "556 5.1.10 domain null.test does not accept mail (null MX)",
        ),
        ("a@nx.test", "550 5.1.2 domain nx.test does not exist"),
        (
            "a@fail.test",
            "451 4.4.3 MX lookup for fail.test failed: server failure (SERVFAIL)",
        ),
        (
            "a@noaddr.test",
            "550 5.4.4 no usable host for noaddr.test: mx.noaddr.test: host has no address records",
        ),
    ];
    for (rcpt, want) in cases {
        c.cmd("MAIL FROM:<sender@legacy.test>", MAIL_OK).await;
        c.cmd(&format!("RCPT TO:<{rcpt}>"), want).await;
        c.cmd("RSET", "250 2.0.0 Ok").await;
    }
    let mut q = resolver.queries();
    q.sort();
    assert_eq!(
        q,
        vec![
            "A mx.noaddr.test",
            "AAAA mx.noaddr.test",
            "MX fail.test",
            "MX noaddr.test",
            "MX null.test",
            "MX nx.test",
        ]
    );
}

/// The next transaction on a reused connection must not meet a
/// transaction the destination still holds open.
async fn next_transaction_is_delivered<S>(c: &mut SmtpClient<S>, dest: &FakeDest, queued: &str)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let msg = small_message("next");
    transaction(c, "next@legacy.test", "rcpt@example.test", &msg, queued).await;
    let conns = dest.conns();
    let last = conns.last().expect("a connection");
    let m = last.messages.last().expect("a message");
    // As DATA, or as BDAT to a destination with CHUNKING.
    assert!(m.complete(), "{m:?}");
    assert_eq!(m.content(), msg);
}

#[tokio::test]
async fn all_recipients_rejected_then_data_leaves_no_open_transaction_at_the_destination() {
    let dest = FakeDest::start(
        DestScript::default().rcpt("bad@example.test", "550 5.1.1 <bad@example.test>: unknown"),
    )
    .await;
    let mut s = start_session(&ctx_for(&dest));
    let c = &mut s.client;
    c.hello(DEFAULT_MAX_SIZE).await;
    // A pipelining client sends DATA whatever the RCPT replies.
    c.cmd("MAIL FROM:<sender@legacy.test>", MAIL_OK).await;
    c.cmd(
        "RCPT TO:<bad@example.test>",
        &format!(
            "550 5.1.1 {} said: <bad@example.test>: unknown",
            dest.peer()
        ),
    )
    .await;
    c.cmd("DATA", "554 5.5.1 No valid recipients").await;
    // The destination accepted MAIL FROM: danegate must reset (or drop)
    // that transaction before the next MAIL FROM, or the next message
    // meets "503 nested MAIL command" and bounces.
    next_transaction_is_delivered(c, &dest, "250 2.0.0 Ok: queued as Q1").await;
}

#[tokio::test]
async fn all_recipients_rejected_then_rset_resets_the_destination() {
    let dest = FakeDest::start(
        DestScript::default().rcpt("bad@example.test", "550 5.1.1 <bad@example.test>: unknown"),
    )
    .await;
    let mut s = start_session(&ctx_for(&dest));
    let c = &mut s.client;
    c.hello(DEFAULT_MAX_SIZE).await;
    c.cmd("MAIL FROM:<sender@legacy.test>", MAIL_OK).await;
    c.cmd(
        "RCPT TO:<bad@example.test>",
        &format!(
            "550 5.1.1 {} said: <bad@example.test>: unknown",
            dest.peer()
        ),
    )
    .await;
    c.cmd("RSET", "250 2.0.0 Ok").await;
    next_transaction_is_delivered(c, &dest, "250 2.0.0 Ok: queued as Q1").await;
}

#[tokio::test]
async fn data_refused_by_the_destination_then_next_transaction_is_delivered() {
    let dest = FakeDest::start(DestScript {
        data_replies: vec!["451 4.3.0 Error: queue file write error".into()],
        ..DestScript::default()
    })
    .await;
    let mut s = start_session(&ctx_for(&dest));
    let c = &mut s.client;
    c.hello(DEFAULT_MAX_SIZE).await;
    c.cmd("MAIL FROM:<sender@legacy.test>", MAIL_OK).await;
    c.cmd("RCPT TO:<rcpt@example.test>", RCPT_OK).await;
    c.cmd(
        "DATA",
        &format!(
            "451 4.3.0 {} said: Error: queue file write error",
            dest.peer()
        ),
    )
    .await;
    next_transaction_is_delivered(c, &dest, "250 2.0.0 Ok: queued as Q1").await;
}

#[tokio::test]
async fn bdat_chunk_refused_by_the_destination_then_next_transaction_is_delivered() {
    let dest = FakeDest::start(DestScript {
        chunking: true,
        bdat_chunk_reply: Some("452 4.3.1 Insufficient system storage".into()),
        ..DestScript::default()
    })
    .await;
    let mut s = start_session(&ctx_for(&dest));
    let c = &mut s.client;
    c.hello(DEFAULT_MAX_SIZE).await;
    c.cmd("MAIL FROM:<sender@legacy.test>", MAIL_OK).await;
    c.cmd("RCPT TO:<rcpt@example.test>", RCPT_OK).await;
    c.send("BDAT 5\r\nhello").await;
    c.expect(&format!(
        "452 4.3.1 {} said: Insufficient system storage",
        dest.peer()
    ))
    .await;
    // RFC 3030: no more chunks go to the destination; the client's are
    // read and refused.
    c.send("BDAT 5 LAST\r\nworld").await;
    c.expect(
        "503 5.5.1 Bad sequence of commands: an earlier BDAT of this message failed; send RSET",
    )
    .await;
    next_transaction_is_delivered(c, &dest, "250 2.0.0 Ok: queued as Q1").await;
    assert_eq!(
        dest.conns()[0].messages[0].chunks(),
        &[Chunk {
            bytes: b"hello".to_vec(),
            last: false
        }]
    );
}

#[tokio::test]
async fn connection_closed_by_the_destination_between_transactions_is_reopened() {
    let dest = FakeDest::start(DestScript {
        close_after_end_of_data: true,
        ..DestScript::default()
    })
    .await;
    let mut s = start_session(&ctx_for(&dest));
    let c = &mut s.client;
    c.hello(DEFAULT_MAX_SIZE).await;
    let msg = small_message("one");
    transaction(
        c,
        "sender@legacy.test",
        "rcpt@example.test",
        &msg,
        "250 2.0.0 Ok: queued as Q1",
    )
    .await;
    dest.wait_closed(1).await;
    transaction(
        c,
        "sender@legacy.test",
        "rcpt@example.test",
        &msg,
        "250 2.0.0 Ok: queued as Q2",
    )
    .await;
    let conns = dest.wait_closed(2).await;
    assert!(conns[1].messages[0].complete());
}

#[tokio::test]
async fn destination_without_ehlo_gets_helo_and_no_parameters() {
    let dest = FakeDest::start(DestScript {
        ehlo: false,
        ..DestScript::default()
    })
    .await;
    let mut s = start_session(&ctx_for(&dest));
    let c = &mut s.client;
    c.hello(DEFAULT_MAX_SIZE).await;
    c.cmd(
        "MAIL FROM:<sender@legacy.test> SIZE=100 BODY=8BITMIME",
        MAIL_OK,
    )
    .await;
    c.cmd("RCPT TO:<rcpt@example.test> NOTIFY=NEVER", RCPT_OK)
        .await;
    c.cmd("DATA", GO_AHEAD).await;
    c.send(small_message("helo")).await;
    c.send(".\r\n").await;
    c.expect("250 2.0.0 Ok: queued as Q1").await;
    c.cmd("QUIT", BYE).await;
    let conns = dest.wait_closed(1).await;
    assert_eq!(
        conns[0].commands(),
        vec![
            "EHLO relay.example.net",
            "HELO relay.example.net",
            "MAIL FROM:<sender@legacy.test>",
            "RCPT TO:<rcpt@example.test>",
            "DATA",
            "QUIT"
        ]
    );
}

#[tokio::test]
async fn data_sent_with_the_starttls_reply_is_not_taken_as_tls() {
    // STARTTLS command injection: a reply and more bytes in one segment.
    let dest = FakeDest::start(DestScript {
        starttls_reply: "220 2.0.0 Ready to start TLS\n250 2.0.0 injected".into(),
        ..DestScript::default()
    })
    .await;
    let mut s = start_session(&ctx_for(&dest));
    let c = &mut s.client;
    c.hello(DEFAULT_MAX_SIZE).await;
    transaction(
        c,
        "sender@legacy.test",
        "rcpt@example.test",
        &small_message("injection"),
        "250 2.0.0 Ok: queued as Q1",
    )
    .await;
    c.cmd("QUIT", BYE).await;
    let conns = dest.wait_closed(2).await;
    assert_eq!(
        conns[0].commands(),
        vec!["EHLO relay.example.net", "STARTTLS"]
    );
    assert!(!conns[0].tls, "no handshake after an injected reply");
    assert_eq!(
        conns[1].commands()[0..2],
        ["EHLO relay.example.net", "MAIL FROM:<sender@legacy.test>"]
    );
}

/// A route `"multi.test" = "multi-mx.test:PORT"` whose MX hosts have the
/// given addresses (all on the destination's port).
fn multi_mx(dest: &FakeDest, hosts: &[(u16, &str, [u8; 4])]) -> (Arc<Context>, Arc<TableResolver>) {
    let mxs: Vec<(u16, &str)> = hosts.iter().map(|&(p, h, _)| (p, h)).collect();
    let mut r = TableResolver::new().mx_records("multi-mx.test", &mxs, Security::Insecure);
    for &(_, h, ip) in hosts {
        r = r.host(h, &[ip.into()], Security::Insecure);
    }
    let r = Arc::new(r);
    let ctx = ConfigBuilder::new()
        .route("multi.test", &format!("multi-mx.test:{}", dest.port()))
        .context(&r);
    (ctx, r)
}

#[tokio::test]
async fn unreachable_mx_host_falls_back_to_the_next() {
    let dest = FakeDest::start(DestScript::default()).await;
    // Nothing listens on 127.0.0.3 at the destination's port.
    let (ctx, _) = multi_mx(
        &dest,
        &[
            (10, "down.multi-mx.test", [127, 0, 0, 3]),
            (20, "up.multi-mx.test", [127, 0, 0, 1]),
        ],
    );
    let mut s = start_session(&ctx);
    let c = &mut s.client;
    c.hello(DEFAULT_MAX_SIZE).await;
    c.cmd("MAIL FROM:<sender@legacy.test>", MAIL_OK).await;
    c.cmd("RCPT TO:<rcpt@multi.test>", RCPT_OK).await;
    c.cmd("QUIT", BYE).await;
    let conns = dest.wait_closed(1).await;
    assert_eq!(conns[0].sni.as_deref(), Some("up.multi-mx.test"));
}

#[tokio::test]
async fn every_mx_host_unreachable_defers_naming_the_last_one() {
    let dest = FakeDest::start(DestScript::default()).await;
    let (ctx, _) = multi_mx(
        &dest,
        &[
            (10, "down1.multi-mx.test", [127, 0, 0, 3]),
            (20, "down2.multi-mx.test", [127, 0, 0, 4]),
        ],
    );
    let mut s = start_session(&ctx);
    let c = &mut s.client;
    c.hello(DEFAULT_MAX_SIZE).await;
    c.cmd("MAIL FROM:<sender@legacy.test>", MAIL_OK).await;
    c.cmd(
        "RCPT TO:<rcpt@multi.test>",
        &format!(
            "451 4.4.1 connect to down2.multi-mx.test[127.0.0.4]:{}: Connection refused (os error 111)",
            dest.port()
        ),
    )
    .await;
    assert!(dest.conns().is_empty());
}

#[tokio::test]
async fn second_address_of_a_host_is_tried() {
    let dest = FakeDest::start(DestScript::default()).await;
    let r = Arc::new(
        TableResolver::new()
            .mx_records(
                "multi-mx.test",
                &[(10, "mx.multi-mx.test")],
                Security::Insecure,
            )
            .host(
                "mx.multi-mx.test",
                &[[127, 0, 0, 3].into(), [127, 0, 0, 1].into()],
                Security::Insecure,
            ),
    );
    let ctx = ConfigBuilder::new()
        .route("multi.test", &format!("multi-mx.test:{}", dest.port()))
        .context(&r);
    let mut s = start_session(&ctx);
    let c = &mut s.client;
    c.hello(DEFAULT_MAX_SIZE).await;
    c.cmd("MAIL FROM:<sender@legacy.test>", MAIL_OK).await;
    c.cmd("RCPT TO:<rcpt@multi.test>", RCPT_OK).await;
}

/// Happy Eyeballs (RFC 8305): an address whose TCP handshake never
/// completes (a listener whose accept queue is full drops the SYN) does
/// not hold delivery up until the connect timeout (30 s here): the next
/// address is tried 250 ms later and wins.
#[tokio::test]
async fn a_silent_address_does_not_wait_for_the_connect_timeout() {
    let dest = FakeDest::start(DestScript::default()).await;
    // 127.0.0.4 on the destination's port, never accepting, its queue
    // filled by connections of our own.
    let silent = tokio::net::TcpSocket::new_v4().unwrap();
    silent
        .bind(std::net::SocketAddr::new(
            [127, 0, 0, 4].into(),
            dest.port(),
        ))
        .unwrap();
    let listener = silent.listen(0).unwrap();
    let mut fill = Vec::new();
    for _ in 0..4 {
        let s = tokio::net::TcpSocket::new_v4().unwrap();
        let c = tokio::time::timeout(
            Duration::from_millis(300),
            s.connect(listener.local_addr().unwrap()),
        )
        .await;
        fill.push(c);
    }
    let r = Arc::new(
        TableResolver::new()
            .mx_records(
                "multi-mx.test",
                &[(10, "mx.multi-mx.test")],
                Security::Insecure,
            )
            .host(
                "mx.multi-mx.test",
                &[[127, 0, 0, 4].into(), [127, 0, 0, 1].into()],
                Security::Insecure,
            ),
    );
    let ctx = ConfigBuilder::new()
        .route("multi.test", &format!("multi-mx.test:{}", dest.port()))
        .timeout("connect", 30)
        .context(&r);
    let mut s = start_session(&ctx);
    let c = &mut s.client;
    c.hello(DEFAULT_MAX_SIZE).await;
    c.cmd("MAIL FROM:<sender@legacy.test>", MAIL_OK).await;
    // Within the client's wait (10 s), far below the connect timeout.
    c.cmd("RCPT TO:<rcpt@multi.test>", RCPT_OK).await;
    assert_eq!(dest.conns().len(), 1);
    drop(fill);
}

#[tokio::test]
async fn end_of_data_timeout_defers_and_drops_the_connection() {
    let gate = Gate::new();
    let dest = FakeDest::start(DestScript {
        hold: Some(gate.clone()),
        ..DestScript::default()
    })
    .await;
    let ctx = ConfigBuilder::new()
        .timeout("data_done", 1)
        .route("example.test", &dest.route())
        .context(&Arc::new(TableResolver::new()));
    let mut s = start_session(&ctx);
    let c = &mut s.client;
    c.hello(DEFAULT_MAX_SIZE).await;
    transaction(
        c,
        "sender@legacy.test",
        "rcpt@example.test",
        &small_message("slow"),
        &format!(
            "451 4.4.2 conversation with {} timed out while sending end of data -- message may be sent more than once",
            dest.peer()
        ),
    )
    .await;
    // A late reply must not be taken for the next transaction's.
    gate.open();
    gate.open();
    transaction(
        c,
        "sender@legacy.test",
        "rcpt@example.test",
        &small_message("next"),
        "250 2.0.0 Ok: queued as Q2",
    )
    .await;
    let conns = dest
        .wait_for("conn 0 closed, conn 1 open", |c| {
            c.len() == 2 && c[0].closed
        })
        .await;
    assert_eq!(conns[1].messages.len(), 1);
}

#[tokio::test]
async fn idle_client_in_data_gets_421_and_the_destination_no_end_of_data() {
    let dest = FakeDest::start(DestScript::default()).await;
    let ctx = ConfigBuilder::new()
        .timeout("inbound_idle", 1)
        .route("example.test", &dest.route())
        .context(&Arc::new(TableResolver::new()));
    let mut s = start_session(&ctx);
    let c = &mut s.client;
    c.hello(DEFAULT_MAX_SIZE).await;
    c.cmd("MAIL FROM:<sender@legacy.test>", MAIL_OK).await;
    c.cmd("RCPT TO:<rcpt@example.test>", RCPT_OK).await;
    c.cmd("DATA", GO_AHEAD).await;
    c.send("Subject: stalled\r\n\r\n").await;
    // Postfix's smtpd answers a timeout in any state with 421 4.4.2.
    let r = c.reply_within(Duration::from_secs(5)).await;
    let conns = dest.wait_closed(1).await;
    assert!(!conns[0].messages[0].complete());
    assert_eq!(
        r,
        Ok("421 4.4.2 Timeout exceeded, closing connection".to_owned())
    );
    c.expect_closed().await;
}

#[tokio::test]
async fn empty_message_and_terminator_split_across_writes() {
    let dest = FakeDest::start(DestScript::default()).await;
    let mut s = start_session(&ctx_for(&dest));
    let c = &mut s.client;
    c.hello(DEFAULT_MAX_SIZE).await;
    // Empty content: the final dot straight after DATA.
    transaction(
        c,
        "sender@legacy.test",
        "rcpt@example.test",
        b"",
        "250 2.0.0 Ok: queued as Q1",
    )
    .await;
    // The end of data in pieces; each piece is held until settled.
    c.cmd("MAIL FROM:<sender@legacy.test>", MAIL_OK).await;
    c.cmd("RCPT TO:<rcpt@example.test>", RCPT_OK).await;
    c.cmd("DATA", GO_AHEAD).await;
    let pieces: [&[u8]; 7] = [
        b"Subject: split\r\n\r\nbody\r",
        b"\n.",
        b".dot line\r\n",
        b".",
        b"\r",
        b"\n",
        b"QUIT\r\n",
    ];
    for (i, p) in pieces.iter().enumerate() {
        c.send(p).await;
        if i < 5 {
            c.expect_silence(Duration::from_millis(50)).await;
        }
    }
    c.expect("250 2.0.0 Ok: queued as Q2").await;
    c.expect(BYE).await;
    let conns = dest.wait_closed(1).await;
    assert_eq!(
        conns[0].messages,
        vec![
            Message::Data {
                bytes: vec![],
                terminated: true
            },
            Message::Data {
                bytes: b"Subject: split\r\n\r\nbody\r\n..dot line\r\n".to_vec(),
                terminated: true
            }
        ]
    );
}

/// A message of about 2 MB with stuffed dots, CRLF at write boundaries
/// and 8-bit text.
fn large_message() -> Vec<u8> {
    let mut m = b"Subject: large\r\n\r\n".to_vec();
    for i in 0..20_000 {
        match i % 4 {
            0 => m.extend_from_slice(format!("..{i} stuffed dot line\r\n").as_bytes()),
            1 => m.extend_from_slice("Ünïcödé line with some 8-bit text ★\r\n".as_bytes()),
            2 => m.extend_from_slice(&[b'z'; 70]),
            _ => m.extend_from_slice(b"\r\n"),
        }
    }
    m
}

#[tokio::test]
async fn large_message_streams_through_unchanged() {
    let dest = FakeDest::start(DestScript::default()).await;
    let mut s = start_session(&ctx_for(&dest));
    let c = &mut s.client;
    c.hello(DEFAULT_MAX_SIZE).await;
    let m = large_message();
    c.cmd("MAIL FROM:<sender@legacy.test>", MAIL_OK).await;
    c.cmd("RCPT TO:<rcpt@example.test>", RCPT_OK).await;
    c.cmd("DATA", GO_AHEAD).await;
    for piece in m.chunks(7001) {
        c.send(piece).await;
    }
    c.send(".\r\n").await;
    c.expect("250 2.0.0 Ok: queued as Q1").await;
    let conns = dest.conns();
    let (bytes, terminated) = conns[0].messages[0].data();
    assert!(terminated);
    assert_eq!(bytes.len(), m.len());
    assert!(bytes == &m[..], "content differs");
}

/// A TLS destination that reads slowly, so that danegate's writes keep
/// finding the socket full and TLS records wait in rustls's buffer.
fn slow_reader(chunking: bool) -> DestScript {
    DestScript {
        chunking,
        read_pause: Some(Duration::from_millis(2)),
        ..DestScript::default()
    }
}

/// About 8.5 MB of [`large_message`] content, in wire form: more than
/// the largest send buffer Linux gives a socket by default (4 MiB).
fn larger_message() -> Vec<u8> {
    large_message().repeat(12)
}

/// The legacy MTA's DATA to a slow reader, as DATA (no CHUNKING) or as
/// BDAT (CHUNKING): every octet and the end of data must reach it, and the
/// final reply must be its own. Through a full socket tokio-rustls leaves
/// records of a write in rustls's buffer; whether the *last* write does
/// depends on timing, so this end-to-end test only sometimes meets that
/// case (as the benchmark did): `held_writes.rs` makes it certain.
async fn data_to_a_slow_reader(chunking: bool) {
    let dest = FakeDest::start(slow_reader(chunking)).await;
    let mut s = start_session(&ctx_for(&dest));
    let c = &mut s.client;
    c.hello(DEFAULT_MAX_SIZE).await;
    let m = larger_message();
    c.cmd("MAIL FROM:<sender@legacy.test>", MAIL_OK).await;
    c.cmd("RCPT TO:<rcpt@example.test>", RCPT_OK).await;
    c.cmd("DATA", GO_AHEAD).await;
    let mut wire = m.clone();
    wire.extend_from_slice(b".\r\n");
    c.send(&wire).await;
    c.expect("250 2.0.0 Ok: queued as Q1").await;
    c.cmd("QUIT", BYE).await;
    let conns = dest.wait_closed(1).await;
    assert!(conns[0].tls, "{:#?}", conns[0]);
    let msg = &conns[0].messages[0];
    assert_eq!(matches!(msg, Message::Bdat { .. }), chunking);
    assert!(msg.complete());
    let want_content = Message::Data {
        bytes: m,
        terminated: true,
    }
    .content();
    assert_eq!(msg.content().len(), want_content.len());
    assert!(msg.content() == want_content, "content differs");
}

#[tokio::test]
async fn data_to_a_slow_tls_reader_reaches_its_end_of_data() {
    data_to_a_slow_reader(false).await;
}

#[tokio::test]
async fn data_relayed_as_bdat_to_a_slow_tls_reader_reaches_bdat_last() {
    data_to_a_slow_reader(true).await;
}

/// The legacy MTA's BDAT LAST to a slow reader, which takes BDAT or only
/// DATA: the same, through the chunk path.
async fn bdat_to_a_slow_reader(chunking: bool) {
    let dest = FakeDest::start(slow_reader(chunking)).await;
    let mut s = start_session(&ctx_for(&dest));
    let c = &mut s.client;
    c.hello(DEFAULT_MAX_SIZE).await;
    let m = larger_message();
    c.cmd("MAIL FROM:<sender@legacy.test>", MAIL_OK).await;
    c.cmd("RCPT TO:<rcpt@example.test>", RCPT_OK).await;
    let mut wire = format!("BDAT {} LAST\r\n", m.len()).into_bytes();
    wire.extend_from_slice(&m);
    c.send(&wire).await;
    c.expect("250 2.0.0 Ok: queued as Q1").await;
    c.cmd("QUIT", BYE).await;
    let conns = dest.wait_closed(1).await;
    assert!(conns[0].tls, "{:#?}", conns[0]);
    let msg = &conns[0].messages[0];
    assert_eq!(matches!(msg, Message::Bdat { .. }), chunking);
    assert!(msg.complete());
    assert_eq!(msg.content().len(), m.len());
    assert!(msg.content() == m, "content differs");
}

#[tokio::test]
async fn bdat_to_a_slow_tls_reader_reaches_bdat_last() {
    bdat_to_a_slow_reader(true).await;
}

#[tokio::test]
async fn bdat_to_a_slow_tls_reader_without_chunking_reaches_its_end_of_data() {
    bdat_to_a_slow_reader(false).await;
}

#[tokio::test]
async fn destination_closing_mid_content_defers_after_the_client_finishes() {
    let dest = FakeDest::start(DestScript {
        close_during_data_after: Some(10_000),
        ..DestScript::default()
    })
    .await;
    let mut s = start_session(&ctx_for(&dest));
    let c = &mut s.client;
    c.hello(DEFAULT_MAX_SIZE).await;
    c.cmd("MAIL FROM:<sender@legacy.test>", MAIL_OK).await;
    c.cmd("RCPT TO:<rcpt@example.test>", RCPT_OK).await;
    c.cmd("DATA", GO_AHEAD).await;
    for piece in large_message().chunks(7001) {
        c.send(piece).await;
    }
    c.send(".\r\n").await;
    let reply = c.reply().await;
    // Where the loss shows depends on the kernel's buffers: a write of the
    // content fails, or every write fits and the final read finds the
    // connection closed. Either way a deferral naming the destination.
    let in_content = format!(
        "451 4.4.2 lost connection with {} while sending message content: ",
        dest.peer()
    );
    let at_end = format!(
        "451 4.4.2 lost connection with {} while sending end of data -- message may be sent more than once: connection closed by server",
        dest.peer()
    );
    assert!(
        reply.starts_with(&in_content) || reply == at_end,
        "got {reply:?}, want {in_content:?}... or {at_end:?}"
    );
    // In step with the client: the next command is a command.
    c.cmd("NOOP", "250 2.0.0 Ok").await;
    let conns = dest.wait_closed(1).await;
    assert!(!conns[0].messages[0].complete());
}

#[tokio::test]
async fn bdat_over_the_size_limit_is_refused_and_later_chunks_too() {
    let dest = FakeDest::start(DestScript {
        chunking: true,
        ..DestScript::default()
    })
    .await;
    let ctx = ConfigBuilder::new()
        .server("max_message_size", "1000")
        .route("example.test", &dest.route())
        .context(&Arc::new(TableResolver::new()));
    let mut s = start_session(&ctx);
    let c = &mut s.client;
    c.hello(1000).await;
    let too_big = "552 5.3.4 Message size exceeds fixed limit of 1000 octets";
    // Over the limit with the LAST chunk.
    c.cmd("MAIL FROM:<sender@legacy.test>", MAIL_OK).await;
    c.cmd("RCPT TO:<rcpt@example.test>", RCPT_OK).await;
    let mut wire = b"BDAT 600\r\n".to_vec();
    wire.extend_from_slice(&[b'a'; 600]);
    c.send(&wire).await;
    c.expect("250 2.0.0 chunk 1 of 600 octets stored").await;
    let mut wire = b"BDAT 600 LAST\r\n".to_vec();
    wire.extend_from_slice(&[b'b'; 600]);
    c.send(&wire).await;
    c.expect(too_big).await;
    // Over the limit with a chunk that is not the last one.
    c.cmd("MAIL FROM:<sender@legacy.test>", MAIL_OK).await;
    c.cmd("RCPT TO:<rcpt@example.test>", RCPT_OK).await;
    let mut wire = b"BDAT 1200\r\n".to_vec();
    wire.extend_from_slice(&[b'c'; 1200]);
    c.send(&wire).await;
    c.expect(too_big).await;
    c.send("BDAT 5 LAST\r\nhello").await;
    c.expect(
        "503 5.5.1 Bad sequence of commands: an earlier BDAT of this message failed; send RSET",
    )
    .await;
    c.cmd("QUIT", BYE).await;
    let conns = dest.wait_closed(2).await;
    assert_eq!(
        conns[0].messages[0].chunks(),
        &[Chunk {
            bytes: vec![b'a'; 600],
            last: false
        }]
    );
    for conn in &conns {
        assert!(conn.messages.iter().all(|m| !m.complete()));
    }
}

#[tokio::test]
async fn data_after_bdat_is_a_bad_sequence() {
    let dest = FakeDest::start(DestScript {
        chunking: true,
        ..DestScript::default()
    })
    .await;
    let mut s = start_session(&ctx_for(&dest));
    let c = &mut s.client;
    c.hello(DEFAULT_MAX_SIZE).await;
    c.cmd("MAIL FROM:<sender@legacy.test>", MAIL_OK).await;
    c.cmd("RCPT TO:<rcpt@example.test>", RCPT_OK).await;
    c.send("BDAT 5\r\nhello").await;
    c.expect("250 2.0.0 chunk 1 of 5 octets stored").await;
    c.cmd(
        "DATA",
        "503 5.5.1 Bad sequence of commands: DATA after BDAT",
    )
    .await;
    c.send("BDAT 0 LAST\r\n").await;
    c.expect("250 2.0.0 Ok: queued as Q1").await;
    let conns = dest.conns();
    assert_eq!(
        conns[0].messages[0].chunks(),
        &[
            Chunk {
                bytes: b"hello".to_vec(),
                last: false
            },
            Chunk {
                bytes: vec![],
                last: true
            }
        ]
    );
}

#[tokio::test]
async fn mail_from_refused_by_the_destination_answers_each_recipient() {
    let dest = FakeDest::start(DestScript {
        mail_reply: "553 5.7.1 <sender@legacy.test>: Sender address rejected: Access denied".into(),
        ..DestScript::default()
    })
    .await;
    let mut s = start_session(&ctx_for(&dest));
    let c = &mut s.client;
    c.hello(DEFAULT_MAX_SIZE).await;
    c.cmd("MAIL FROM:<sender@legacy.test>", MAIL_OK).await;
    let want = format!(
        "553 5.7.1 {} said: <sender@legacy.test>: Sender address rejected: Access denied",
        dest.peer()
    );
    c.cmd("RCPT TO:<a@example.test>", &want).await;
    c.cmd("RCPT TO:<b@example.test>", &want).await;
    c.cmd("DATA", "554 5.5.1 No valid recipients").await;
    c.cmd("QUIT", BYE).await;
    let conns = dest.wait_closed(1).await;
    // The first RCPT went in one group with MAIL (RFC 2920), before its
    // refusal was known; once it was, nothing more was asked.
    let rcpts: Vec<&str> = conns[0]
        .commands()
        .into_iter()
        .filter(|l| l.starts_with("RCPT"))
        .collect();
    assert_eq!(rcpts, ["RCPT TO:<a@example.test>"]);
}

#[tokio::test]
async fn positive_destination_replies_without_enhanced_codes_get_them() {
    // danegate announces ENHANCEDSTATUSCODES, so RFC 2034 §3 has it
    // prefix every 2xx/4xx/5xx reply (greeting and EHLO/HELO aside) with
    // an enhanced code, also when the destination gave none.
    let dest = FakeDest::start(DestScript {
        enhancedstatuscodes: false,
        rcpt_reply: "250 Ok".into(),
        end_of_data: EndOfData::Reply("250 Ok: queued as NOCODE1".into()),
        ..DestScript::default()
    })
    .await;
    let mut s = start_session(&ctx_for(&dest));
    let c = &mut s.client;
    c.hello(DEFAULT_MAX_SIZE).await;
    c.cmd("MAIL FROM:<sender@legacy.test>", MAIL_OK).await;
    c.cmd("RCPT TO:<rcpt@example.test>", "250 2.1.5 Ok").await;
    c.cmd("DATA", GO_AHEAD).await;
    c.send(small_message("no codes")).await;
    c.send(".\r\n").await;
    c.expect("250 2.0.0 Ok: queued as NOCODE1").await;
}

#[tokio::test]
async fn destination_421_to_rcpt_is_not_passed_on_as_421() {
    // A 421 tells the client that *this* server closes the session
    // (RFC 5321 §3.8, §4.2.2); danegate keeps its session open, so the
    // destination's 421 must reach the client as an ordinary 4xx (451).
    let dest = FakeDest::start(DestScript::default().rcpt(
        "busy@example.test",
        "421 4.7.0 mx.example.test Service not available, closing transmission channel",
    ))
    .await;
    let mut s = start_session(&ctx_for(&dest));
    let c = &mut s.client;
    c.hello(DEFAULT_MAX_SIZE).await;
    c.cmd("MAIL FROM:<sender@legacy.test>", MAIL_OK).await;
    c.cmd(
        "RCPT TO:<busy@example.test>",
        &format!(
            "451 4.7.0 {} said: mx.example.test Service not available, closing transmission channel",
            dest.peer()
        ),
    )
    .await;
    c.cmd("NOOP", "250 2.0.0 Ok").await;
}

#[tokio::test]
async fn addresses_are_forwarded_as_written() {
    let dest = FakeDest::start(DestScript::default()).await;
    let mut s = start_session(&ctx_for(&dest));
    let c = &mut s.client;
    c.hello(DEFAULT_MAX_SIZE).await;
    // Null sender (a bounce), a quoted local part, a domain in capitals
    // (routed case-insensitively), a source route (dropped, RFC 5321
    // §4.1.1.3).
    c.cmd("MAIL FROM:<>", MAIL_OK).await;
    c.cmd("RCPT TO:<\"john doe\"@example.test>", RCPT_OK).await;
    c.cmd("RCPT TO:<Rcpt@EXAMPLE.Test>", RCPT_OK).await;
    c.cmd("RCPT TO:<@hop.example.net:routed@example.test>", RCPT_OK)
        .await;
    c.cmd("DATA", GO_AHEAD).await;
    c.send(small_message("bounce")).await;
    c.send(".\r\n").await;
    c.expect("250 2.0.0 Ok: queued as Q1").await;
    c.cmd("QUIT", BYE).await;
    let conns = dest.wait_closed(1).await;
    assert_eq!(
        conns[0].commands()[3..],
        [
            "MAIL FROM:<>",
            "RCPT TO:<\"john doe\"@example.test>",
            "RCPT TO:<Rcpt@EXAMPLE.Test>",
            "RCPT TO:<routed@example.test>",
            "DATA",
            "QUIT"
        ]
    );
}
