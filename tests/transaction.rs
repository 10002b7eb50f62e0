//! The cut-through transaction as one state machine (cut-through.md):
//! each defect found by trying danegate as a hostile or crashing client
//! would, as a named regression test. The destination is the strict,
//! byte-logging [`StrictDest`]: it flags a nested MAIL and anything
//! outside the DATA/BDAT framing, and the tests also read its raw bytes.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::strict::{polite, scripted, Act, Caps, Point, StrictDest};
use common::*;
use danegate::outbound::Context;
use danegate::server::Server;
use tokio::net::TcpStream;
use tokio::sync::oneshot;

const MAIL_OK: &str = "250 2.1.0 Ok";
const RCPT_OK: &str = "250 2.1.5 Ok";
const GO_AHEAD: &str = "354 End data with <CR><LF>.<CR><LF>";
const QUEUED: &str = "250 2.0.0 Ok: queued";
const BYE: &str = "221 2.0.0 relay.example.net closing connection";

const PLAIN: Caps = Caps {
    pipelining: true,
    chunking: false,
};
const CHUNKING: Caps = Caps {
    pipelining: true,
    chunking: true,
};

/// A context routing `example.test` to `dest`, caching idle connections.
fn ctx_to(dest: &StrictDest, max_size: Option<u64>) -> Arc<Context> {
    let mut cfg = ConfigBuilder::new()
        .route("example.test", &dest.route())
        .timeout("connection_cache", 5);
    if let Some(max) = max_size {
        cfg = cfg.server("max_message_size", &max.to_string());
    }
    cfg.context(&Arc::new(TableResolver::new()))
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// A message from a well-behaved client; returns the final reply.
async fn message<S>(c: &mut SmtpClient<S>, from: &str, to: &str, body: &str) -> String
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    c.cmd(&format!("MAIL FROM:<{from}>"), MAIL_OK).await;
    c.cmd(&format!("RCPT TO:<{to}>"), RCPT_OK).await;
    c.cmd("DATA", GO_AHEAD).await;
    c.send(format!("Subject: {body}\r\n\r\n{body}\r\n.\r\n"))
        .await;
    c.reply().await
}

/// Session 1 abandons a transaction after RCPT; session 2 must get a
/// conversation of its own, never one inside session 1's transaction.
#[tokio::test]
async fn abandoned_transaction_is_never_pooled_into_the_next_session() {
    let dest = StrictDest::start(PLAIN, Arc::new(polite)).await;
    let ctx = ctx_to(&dest, None);
    let mut s1 = start_session(&ctx);
    s1.client.hello(DEFAULT_MAX_SIZE).await;
    s1.client
        .cmd("MAIL FROM:<attacker@evil.test>", MAIL_OK)
        .await;
    s1.client
        .cmd("RCPT TO:<victim@example.test>", RCPT_OK)
        .await;
    // The client vanishes mid-transaction.
    drop(s1.client);
    bounded("session 1 to end", s1.task).await.unwrap();

    let mut s2 = start_session(&ctx);
    let c = &mut s2.client;
    c.hello(DEFAULT_MAX_SIZE).await;
    let r = message(c, "innocent@legacy.test", "friend@example.test", "hello").await;
    assert_eq!(r, QUEUED);
    c.cmd("QUIT", BYE).await;
    bounded("session 2 to end", s2.task).await.unwrap();
    drop(ctx);

    let conns = dest.wait_all_closed().await;
    assert_eq!(dest.violations(), Vec::<String>::new());
    assert_eq!(conns.len(), 2, "{conns:#?}");
    assert_eq!(
        conns[0].commands,
        [
            "EHLO relay.example.net",
            "MAIL FROM:<attacker@evil.test>",
            "RCPT TO:<victim@example.test>",
            "QUIT"
        ]
    );
    assert!(!contains(&conns[0].bytes, b"innocent"));
    assert_eq!(conns[1].messages.len(), 1);
    assert_eq!(
        conns[1].messages[0].rcpts,
        ["RCPT TO:<friend@example.test>"]
    );
}

/// The BDAT variant: a chunk converted into DATA leaves the destination
/// inside a DATA stream; the next session's MAIL must never be written
/// into it.
#[tokio::test]
async fn abandoned_converted_bdat_is_dropped_and_the_next_session_gets_its_own() {
    let dest = StrictDest::start(PLAIN, Arc::new(polite)).await;
    let ctx = ctx_to(&dest, None);
    let mut s1 = start_session(&ctx);
    s1.client.hello(DEFAULT_MAX_SIZE).await;
    s1.client
        .cmd("MAIL FROM:<attacker@evil.test>", MAIL_OK)
        .await;
    s1.client
        .cmd("RCPT TO:<victim@example.test>", RCPT_OK)
        .await;
    s1.client.send("BDAT 7\r\nabc\r\nde").await;
    assert_eq!(s1.client.reply().await, "250 2.0.0 7 octets received");
    drop(s1.client);
    bounded("session 1 to end", s1.task).await.unwrap();

    let mut s2 = start_session(&ctx);
    let c = &mut s2.client;
    c.hello(DEFAULT_MAX_SIZE).await;
    let r = message(c, "innocent@legacy.test", "friend@example.test", "hello").await;
    assert_eq!(r, QUEUED);
    c.cmd("QUIT", BYE).await;
    bounded("session 2 to end", s2.task).await.unwrap();
    drop(ctx);

    let conns = dest.wait_all_closed().await;
    assert_eq!(dest.violations(), Vec::<String>::new());
    assert_eq!(conns.len(), 2, "{conns:#?}");
    // Session 1's destination got DATA and the chunk, then lost the
    // connection: no end of data, no message.
    assert!(
        conns[0].bytes.ends_with(b"DATA\r\nabc\r\nde"),
        "{:?}",
        String::from_utf8_lossy(&conns[0].bytes)
    );
    assert!(conns[0].messages.is_empty());
    assert_eq!(conns[1].messages.len(), 1);
    assert!(!contains(&conns[0].bytes, b"innocent"));
}

/// A real server, for the end-to-end variant with two TCP clients.
async fn serve(
    ctx: Arc<Context>,
) -> (SocketAddr, oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let server = Server::bind(ctx).await.expect("bind");
    let addr = server.local_addrs()[0];
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async move {
        let _ = rx.await;
    }));
    (addr, tx, task)
}

#[tokio::test]
async fn two_real_clients_crash_then_deliver_and_the_destination_sees_two_transactions_apart() {
    let dest = StrictDest::start(PLAIN, Arc::new(polite)).await;
    let (addr, stop, task) = serve(ctx_to(&dest, None)).await;

    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut c1 = SmtpClient::new(tcp);
    c1.hello(DEFAULT_MAX_SIZE).await;
    c1.cmd("MAIL FROM:<attacker@evil.test>", MAIL_OK).await;
    c1.cmd("RCPT TO:<victim@example.test>", RCPT_OK).await;
    drop(c1);

    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut c2 = SmtpClient::new(tcp);
    c2.hello(DEFAULT_MAX_SIZE).await;
    let r = message(&mut c2, "innocent@legacy.test", "friend@example.test", "hi").await;
    assert_eq!(r, QUEUED);
    c2.cmd("QUIT", BYE).await;
    stop.send(()).unwrap();
    bounded("the server to stop", task).await.unwrap();

    let conns = dest.wait_all_closed().await;
    assert_eq!(dest.violations(), Vec::<String>::new());
    let delivered: Vec<_> = conns.iter().flat_map(|c| c.messages.clone()).collect();
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0].rcpts, ["RCPT TO:<friend@example.test>"]);
    for c in &conns {
        let mails = c.commands.iter().filter(|l| l.starts_with("MAIL")).count();
        assert!(mails <= 1 || c.messages.len() + 1 >= mails, "{c:#?}");
        assert!(
            !(contains(&c.bytes, b"attacker") && contains(&c.bytes, b"innocent")),
            "{c:#?}"
        );
    }
}

/// An oversized BDAT chunk, then RCPT: once answered by a panic, now a
/// bad sequence; the session goes on and delivers the next message.
#[tokio::test]
async fn rcpt_after_an_oversized_chunk_is_a_bad_sequence_not_a_panic() {
    let dest = StrictDest::start(CHUNKING, Arc::new(polite)).await;
    let ctx = ctx_to(&dest, Some(100_000));
    let mut s = start_session(&ctx);
    let c = &mut s.client;
    c.hello(100_000).await;
    c.cmd("MAIL FROM:<a@legacy.test>", MAIL_OK).await;
    c.cmd("RCPT TO:<b@example.test>", RCPT_OK).await;
    let mut chunk = b"BDAT 150000\r\n".to_vec();
    chunk.resize(chunk.len() + 150_000, b'x');
    c.send(&chunk).await;
    assert_eq!(
        c.reply().await,
        "552 5.3.4 Message size exceeds fixed limit of 100000 octets"
    );
    c.cmd(
        "RCPT TO:<v@example.test>",
        "503 5.5.1 Bad sequence of commands: RCPT after BDAT",
    )
    .await;
    c.send("BDAT 3 LAST\r\nabc").await;
    assert_eq!(
        c.reply().await,
        "503 5.5.1 Bad sequence of commands: an earlier BDAT of this message failed; send RSET"
    );
    c.cmd(
        "RCPT TO:<v@example.test>",
        "503 5.5.1 Bad sequence of commands: need MAIL first",
    )
    .await;
    let r = message(c, "a@legacy.test", "c@example.test", "after").await;
    assert_eq!(r, QUEUED);
    c.cmd("QUIT", BYE).await;
    bounded("the session to end", s.task)
        .await
        .expect("the session ends without a panic");
    let conns = dest.wait_all_closed().await;
    assert_eq!(dest.violations(), Vec::<String>::new());
    // The oversized chunk never reached a destination.
    assert!(conns.iter().all(|c| !contains(&c.bytes, b"BDAT 150000")));
}

/// RSET, EHLO, HELO, QUIT and RCPT between chunks converted into DATA: the
/// command is answered, never written into the message content, and the
/// destination's DATA stream is dropped without an end of data.
#[tokio::test]
async fn commands_during_a_converted_bdat_never_reach_the_content() {
    let cases: &[(&str, &str)] = &[
        ("RSET", "250 2.0.0 Ok"),
        ("EHLO legacy.test", "250-relay.example.net greets 127.0.0.1"),
        ("HELO legacy.test", "250 relay.example.net"),
        ("QUIT", BYE),
        (
            "RCPT TO:<z@example.test>",
            "503 5.5.1 Bad sequence of commands: RCPT after BDAT",
        ),
    ];
    for &(cmd, want) in cases {
        let dest = StrictDest::start(PLAIN, Arc::new(polite)).await;
        let ctx = ctx_to(&dest, None);
        let mut s = start_session(&ctx);
        let c = &mut s.client;
        c.hello(DEFAULT_MAX_SIZE).await;
        c.cmd("MAIL FROM:<a@legacy.test>", MAIL_OK).await;
        c.cmd("RCPT TO:<b@example.test>", RCPT_OK).await;
        c.send("BDAT 5\r\nabc\r\n").await;
        assert_eq!(c.reply().await, "250 2.0.0 5 octets received", "{cmd}");
        let started = std::time::Instant::now();
        c.send(format!("{cmd}\r\n")).await;
        let r = c.reply().await;
        assert!(r.starts_with(want), "{cmd}: got {r:?}");
        // Answered at once, not after a destination timeout.
        assert!(started.elapsed() < Duration::from_secs(2), "{cmd}");
        drop(s.client);
        bounded("the session to end", s.task).await.unwrap();
        drop(ctx);
        let conns = dest.wait_all_closed().await;
        assert_eq!(dest.violations(), Vec::<String>::new(), "{cmd}");
        let word = cmd.split(' ').next().unwrap();
        assert!(
            !contains(&conns[0].bytes[conns[0].bytes.len() - 5..], word.as_bytes()),
            "{cmd}: {:?}",
            String::from_utf8_lossy(&conns[0].bytes)
        );
        assert!(conns[0].bytes.ends_with(b"DATA\r\nabc\r\n"), "{cmd}");
        assert!(conns[0].messages.is_empty(), "{cmd}");
    }
}

/// Replies of a class their command can never get are a protocol error
/// of the destination: 451 4.5.0 with its text, a deferral in the summary
/// line, and the connection is not used again.
#[tokio::test]
async fn replies_of_the_wrong_class_defer_4_5_0_and_are_never_counted_as_deliveries() {
    let cases: &[(Point, &str, &str)] = &[
        (Point::Data, "250 2.0.0 Ok", "DATA command"),
        (Point::Data, "221 2.0.0 Bye", "DATA command"),
        (Point::Rcpt, "354 go ahead", "RCPT TO command"),
        (Point::Mail, "334 VXNlcm5hbWU6", "MAIL FROM command"),
    ];
    for &(point, bad, command) in cases {
        let logs = LogCapture::start();
        let dest = StrictDest::start(PLAIN, scripted(vec![(point, Act::reply(bad))])).await;
        let ctx = ctx_to(&dest, None);
        let mut s = start_session(&ctx);
        let c = &mut s.client;
        c.hello(DEFAULT_MAX_SIZE).await;
        let peer = format!("127.0.0.1[127.0.0.1]:{}", dest.addr.port());
        let want = format!(
            "451 4.5.0 protocol error: {peer} answered the {command} with an unexpected reply: {bad}"
        );
        c.cmd("MAIL FROM:<a@legacy.test>", MAIL_OK).await;
        if point == Point::Data {
            c.cmd("RCPT TO:<b@example.test>", RCPT_OK).await;
            c.cmd("DATA", &want).await;
        } else {
            c.cmd("RCPT TO:<b@example.test>", &want).await;
        }
        // The next transaction goes over a new connection.
        c.cmd("RSET", "250 2.0.0 Ok").await;
        let r = message(c, "a@legacy.test", "c@example.test", "next").await;
        assert_eq!(r, QUEUED, "{bad}");
        c.cmd("QUIT", BYE).await;
        bounded("the session to end", s.task).await.unwrap();
        drop(ctx);
        let conns = dest.wait_all_closed().await;
        assert_eq!(dest.violations(), Vec::<String>::new(), "{bad}");
        assert_eq!(conns.len(), 2, "{bad}: {conns:#?}");
        assert!(conns[0].messages.is_empty(), "{bad}");
        let summary = logs.summary("b@example.test");
        assert_eq!(summary.message, "deferred", "{bad}");
        assert_eq!(summary.field("status"), Some(want.as_str()));
    }
}

/// A destination that answers the final dot twice: the second reply is
/// stale, and the connection it sits on is never used again (neither by
/// the session nor through the cache).
#[tokio::test]
async fn a_stale_reply_never_answers_the_next_transaction() {
    let dest = StrictDest::start(
        PLAIN,
        scripted(vec![(
            Point::EndOfData,
            Act::reply("250 2.0.0 ONE\n250 2.0.0 TWO"),
        )]),
    )
    .await;
    let ctx = ctx_to(&dest, None);
    let mut s = start_session(&ctx);
    let c = &mut s.client;
    c.hello(DEFAULT_MAX_SIZE).await;
    assert_eq!(
        message(c, "a@legacy.test", "b@example.test", "one").await,
        "250 2.0.0 ONE"
    );
    assert_eq!(
        message(c, "a@legacy.test", "c@example.test", "two").await,
        QUEUED
    );
    c.cmd("QUIT", BYE).await;
    bounded("the session to end", s.task).await.unwrap();
    drop(ctx);
    let conns = dest.wait_all_closed().await;
    assert_eq!(dest.violations(), Vec::<String>::new());
    assert_eq!(conns.len(), 2, "{conns:#?}");
    assert_eq!(conns[0].messages.len(), 1);
    assert_eq!(conns[1].messages.len(), 1);
    assert_eq!(conns[1].messages[0].rcpts, ["RCPT TO:<c@example.test>"]);
}

/// BDAT sizes are added with a check: 10 + 2^64-1 overflows, which is as
/// much past the limit as anything; nothing more reaches the destination.
#[tokio::test]
async fn bdat_sizes_that_overflow_are_too_big_and_nothing_more_is_relayed() {
    let dest = StrictDest::start(CHUNKING, Arc::new(polite)).await;
    let ctx = ctx_to(&dest, Some(100_000));
    let mut s = start_session(&ctx);
    let c = &mut s.client;
    c.hello(100_000).await;
    c.cmd("MAIL FROM:<a@legacy.test>", MAIL_OK).await;
    c.cmd("RCPT TO:<b@example.test>", RCPT_OK).await;
    c.send("BDAT 10\r\n0123456789").await;
    assert_eq!(c.reply().await, "250 2.0.0 chunk stored");
    let mut big = b"BDAT 18446744073709551615\r\n".to_vec();
    big.resize(big.len() + 300_000, b'y');
    c.send(&big).await;
    c.expect_silence(Duration::from_millis(300)).await;
    drop(s.client);
    bounded("the session to end", s.task).await.unwrap();
    drop(ctx);
    let conns = dest.wait_all_closed().await;
    assert_eq!(dest.violations(), Vec::<String>::new());
    assert_eq!(conns.len(), 1);
    let received = String::from_utf8_lossy(&conns[0].bytes).into_owned();
    assert!(received.ends_with("BDAT 10\r\n0123456789"), "{received:?}");
    assert!(conns[0].messages.is_empty());
}

/// Values from the wire cannot forge summary-line fields, and control
/// bytes in a destination's reply are replaced for the client and escaped
/// in the log.
#[tokio::test]
async fn summary_lines_cannot_be_forged_and_control_bytes_are_escaped() {
    let logs = LogCapture::start();
    let dest = StrictDest::start(
        PLAIN,
        scripted(vec![(
            Point::Rcpt,
            Act::reply("550 5.1.1 no\0such\x1b[31muser"),
        )]),
    )
    .await;
    let ctx = ctx_to(&dest, None);
    let mut s = start_session(&ctx);
    let c = &mut s.client;
    c.hello(DEFAULT_MAX_SIZE).await;
    c.cmd(
        "MAIL FROM:<\"x relay=none status=250 2.0.0 fake\"@client.test>",
        MAIL_OK,
    )
    .await;
    let peer = format!("127.0.0.1[127.0.0.1]:{}", dest.addr.port());
    c.cmd(
        "RCPT TO:<v@example.test>",
        &format!("550 5.1.1 {peer} said: no?such?[31muser"),
    )
    .await;
    c.cmd("QUIT", BYE).await;
    bounded("the session to end", s.task).await.unwrap();
    let line = logs.summary("v@example.test");
    assert_eq!(
        line.raw_field("from"),
        Some(r#""<\"x relay=none status=250 2.0.0 fake\"@client.test>""#)
    );
    assert_eq!(
        line.raw_field("status"),
        Some(format!("\"550 5.1.1 {peer} said: no\\x00such\\x1b[31muser\"").as_str())
    );
    // Read back as a log reader would (logfmt), the line has each field
    // once, with the values that were logged.
    let text: String = line.raw.iter().map(|(k, v)| format!("{k}={v} ")).collect();
    let fields = logfmt(&text);
    let keys: Vec<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        ["session", "client", "from", "to", "relay", "tls", "delay", "status"]
    );
    assert_eq!(fields[4].1, peer);
}

/// Splits `k=v k="quoted \" v"` pairs as logfmt readers do.
fn logfmt(line: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = line.trim();
    while let Some(eq) = rest.find('=') {
        let key = rest[..eq].trim().to_owned();
        rest = &rest[eq + 1..];
        let (value, after) = if let Some(body) = rest.strip_prefix('"') {
            let mut end = 0;
            let b = body.as_bytes();
            while end < b.len() && b[end] != b'"' {
                end += if b[end] == b'\\' { 2 } else { 1 };
            }
            (
                unquote(&rest[..end + 2]),
                &body[(end + 1).min(body.len())..],
            )
        } else {
            let end = rest.find(' ').unwrap_or(rest.len());
            (rest[..end].to_owned(), &rest[end..])
        };
        out.push((key, value));
        rest = after.trim_start();
    }
    out
}

/// A cached conversation the server closes at MAIL FROM (421) is replaced
/// by a new one; when that new connection fails too, the recipient gets
/// the failure, in its place, and the session goes on (it once waited for
/// ever: the replies owed were lost on the way).
#[tokio::test]
async fn a_failed_reconnect_after_a_closed_cached_conversation_answers_the_recipient() {
    let dest = StrictDest::start(
        PLAIN,
        scripted(vec![
            (Point::Mail, Act::reply("250 2.1.0 Ok")),
            (Point::Mail, Act::reply("421 4.4.2 closing")),
            (Point::Greeting, Act::Close),
        ]),
    )
    .await;
    let ctx = ctx_to(&dest, None);
    let mut s = start_session(&ctx);
    let c = &mut s.client;
    c.hello(DEFAULT_MAX_SIZE).await;
    assert_eq!(
        message(c, "a@legacy.test", "b@example.test", "one").await,
        QUEUED
    );
    c.cmd("MAIL FROM:<a@legacy.test>", MAIL_OK).await;
    let peer = format!("127.0.0.1[127.0.0.1]:{}", dest.addr.port());
    c.cmd(
        "RCPT TO:<c@example.test>",
        &format!("451 4.4.2 lost connection with {peer} while receiving the initial server greeting: connection closed by server"),
    )
    .await;
    c.cmd("RSET", "250 2.0.0 Ok").await;
    c.cmd("QUIT", BYE).await;
    bounded("the session to end", s.task).await.unwrap();
    drop(ctx);
    let conns = dest.wait_all_closed().await;
    assert_eq!(dest.violations(), Vec::<String>::new());
    assert_eq!(conns.len(), 2);
}
