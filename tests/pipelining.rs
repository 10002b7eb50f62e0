//! Round trips to the destination (cut-through.md, "Round trips"): a
//! pipelined group of the legacy MTA goes on as one write (RFC 2920), its
//! replies come back in order and stay the destination's own; with
//! CHUNKING, DATA is answered 354 here and the content goes as BDAT (RFC
//! 3030), so a warm connection costs two round trips per message. The
//! destination is the strict, byte-logging [`StrictDest`], whose reads
//! show what arrived together.

mod common;

use std::sync::Arc;

use common::strict::{polite, scripted, Act, Caps, Point, StrictDest};
use common::*;
use danegate::outbound::Context;

const MAIL_OK: &str = "250 2.1.0 Ok";
const RCPT_OK: &str = "250 2.1.5 Ok";
const GO_AHEAD: &str = "354 End data with <CR><LF>.<CR><LF>";
const BYE: &str = "221 2.0.0 relay.example.net closing connection";

fn ctx_to(dest: &StrictDest) -> Arc<Context> {
    ConfigBuilder::new()
        .route("example.test", &dest.route())
        .timeout("connection_cache", 5)
        .context(&Arc::new(TableResolver::new()))
}

fn caps(pipelining: bool, chunking: bool) -> Caps {
    Caps {
        pipelining,
        chunking,
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The reads after EHLO, as text.
fn reads_after_ehlo(c: &common::strict::StrictConn) -> Vec<String> {
    let i = c
        .reads
        .iter()
        .position(|r| r.starts_with(b"EHLO"))
        .expect("EHLO");
    c.reads[i + 1..].iter().map(|r| text(r)).collect()
}

const GROUP: &str =
    "MAIL FROM:<a@legacy.test>\r\nRCPT TO:<b@example.test>\r\nRCPT TO:<c@example.test>\r\nDATA\r\n";

/// A pipelined group without CHUNKING at the destination: MAIL, both
/// RCPTs and DATA in one write; the replies in order.
#[tokio::test]
async fn a_pipelined_group_goes_on_as_one_write_and_its_replies_come_back_in_order() {
    let dest = StrictDest::start(caps(true, false), Arc::new(polite)).await;
    let ctx = ctx_to(&dest);
    let mut s = start_session(&ctx);
    let c = &mut s.client;
    c.hello(DEFAULT_MAX_SIZE).await;
    c.send(GROUP).await;
    for want in [MAIL_OK, RCPT_OK, RCPT_OK, GO_AHEAD] {
        assert_eq!(c.reply().await, want);
    }
    c.send("Subject: one\r\n\r\n..dot\r\n.\r\n").await;
    assert_eq!(c.reply().await, "250 2.0.0 Ok: queued");
    c.cmd("QUIT", BYE).await;
    s.ended().await;
    drop(ctx);
    let conns = dest.wait_all_closed().await;
    assert_eq!(dest.violations(), Vec::<String>::new());
    assert_eq!(
        reads_after_ehlo(&conns[0]),
        [GROUP, "Subject: one\r\n\r\n..dot\r\n.\r\n",]
    );
    assert_eq!(
        conns[0].messages[0].content,
        b"Subject: one\r\n\r\n.dot\r\n"
    );
}

/// A recipient refused inside the group: its reply is the destination's
/// refusal, in its place; the others go on.
#[tokio::test]
async fn a_recipient_refused_inside_the_group_gets_the_refusal_in_its_place() {
    let dest = StrictDest::start(
        caps(true, false),
        scripted(vec![
            (Point::Rcpt, Act::reply("250 2.1.5 Ok")),
            (
                Point::Rcpt,
                Act::reply("550 5.1.1 <c@example.test>: unknown"),
            ),
        ]),
    )
    .await;
    let ctx = ctx_to(&dest);
    let mut s = start_session(&ctx);
    let c = &mut s.client;
    c.hello(DEFAULT_MAX_SIZE).await;
    c.send(GROUP).await;
    let peer = format!("127.0.0.1[127.0.0.1]:{}", dest.addr.port());
    for want in [
        MAIL_OK.to_owned(),
        RCPT_OK.to_owned(),
        format!("550 5.1.1 {peer} said: <c@example.test>: unknown"),
        GO_AHEAD.to_owned(),
    ] {
        assert_eq!(c.reply().await, want);
    }
    c.send("hi\r\n.\r\n").await;
    assert_eq!(c.reply().await, "250 2.0.0 Ok: queued");
    c.cmd("QUIT", BYE).await;
    s.ended().await;
    drop(ctx);
    let conns = dest.wait_all_closed().await;
    assert_eq!(dest.violations(), Vec::<String>::new());
    assert_eq!(conns[0].messages[0].rcpts, ["RCPT TO:<b@example.test>"]);
}

/// Without PIPELINING at the destination, each command waits for its
/// reply (lock-step), whatever the client does.
#[tokio::test]
async fn without_pipelining_at_the_destination_each_command_waits_for_its_reply() {
    let dest = StrictDest::start(caps(false, false), Arc::new(polite)).await;
    let ctx = ctx_to(&dest);
    let mut s = start_session(&ctx);
    let c = &mut s.client;
    c.hello(DEFAULT_MAX_SIZE).await;
    c.send(GROUP).await;
    for want in [MAIL_OK, RCPT_OK, RCPT_OK, GO_AHEAD] {
        assert_eq!(c.reply().await, want);
    }
    c.send("hi\r\n.\r\n").await;
    assert_eq!(c.reply().await, "250 2.0.0 Ok: queued");
    c.cmd("QUIT", BYE).await;
    s.ended().await;
    drop(ctx);
    let conns = dest.wait_all_closed().await;
    assert_eq!(dest.violations(), Vec::<String>::new());
    assert_eq!(
        reads_after_ehlo(&conns[0]),
        [
            "MAIL FROM:<a@legacy.test>\r\n",
            "RCPT TO:<b@example.test>\r\n",
            "RCPT TO:<c@example.test>\r\n",
            "DATA\r\n",
            "hi\r\n.\r\n",
        ]
    );
}

/// With CHUNKING: DATA is answered 354 here; the content goes as BDAT,
/// dot-stuffing removed, byte for byte, and BDAT LAST only after the
/// client's end of data. The group costs one write, the content another.
#[tokio::test]
async fn with_chunking_data_is_answered_here_and_the_content_goes_as_bdat_byte_for_byte() {
    let dest = StrictDest::start(caps(true, true), Arc::new(polite)).await;
    let ctx = ctx_to(&dest);
    let mut s = start_session(&ctx);
    let c = &mut s.client;
    c.hello(DEFAULT_MAX_SIZE).await;
    c.send(GROUP).await;
    for want in [MAIL_OK, RCPT_OK, RCPT_OK, GO_AHEAD] {
        assert_eq!(c.reply().await, want);
    }
    let content = "Subject: dots\r\n\r\n.\r\n..\r\n.leading\r\nend\r\n";
    let stuffed = "Subject: dots\r\n\r\n..\r\n...\r\n..leading\r\nend\r\n";
    c.send(format!("{stuffed}.\r\n")).await;
    assert_eq!(c.reply().await, "250 2.0.0 Ok: queued");
    c.cmd("QUIT", BYE).await;
    s.ended().await;
    drop(ctx);
    let conns = dest.wait_all_closed().await;
    assert_eq!(dest.violations(), Vec::<String>::new());
    assert_eq!(
        reads_after_ehlo(&conns[0]),
        [
            "MAIL FROM:<a@legacy.test>\r\nRCPT TO:<b@example.test>\r\nRCPT TO:<c@example.test>\r\n"
                .to_owned(),
            format!("BDAT {} LAST\r\n{content}", content.len()),
        ]
    );
    assert_eq!(text(&conns[0].messages[0].content), content);
}

/// A large message as BDAT: several chunks, pipelined, LAST at the end;
/// the chunks joined are the content exactly.
#[tokio::test]
async fn a_large_message_goes_as_several_pipelined_chunks() {
    let dest = StrictDest::start(caps(true, true), Arc::new(polite)).await;
    let ctx = ctx_to(&dest);
    let mut s = start_session(&ctx);
    let c = &mut s.client;
    c.hello(DEFAULT_MAX_SIZE).await;
    c.cmd("MAIL FROM:<a@legacy.test>", MAIL_OK).await;
    c.cmd("RCPT TO:<b@example.test>", RCPT_OK).await;
    c.cmd("DATA", GO_AHEAD).await;
    let mut content = String::new();
    for i in 0..6000 {
        content.push_str(&format!(
            "{}line {i} of the message, some text\r\n",
            if i % 7 == 0 { "." } else { "" }
        ));
    }
    let stuffed: String = content
        .split_inclusive("\r\n")
        .map(|l| {
            if l.starts_with('.') {
                format!(".{l}")
            } else {
                l.to_owned()
            }
        })
        .collect();
    c.send(format!("{stuffed}.\r\n")).await;
    assert_eq!(c.reply().await, "250 2.0.0 Ok: queued");
    c.cmd("QUIT", BYE).await;
    s.ended().await;
    drop(ctx);
    let conns = dest.wait_all_closed().await;
    assert_eq!(dest.violations(), Vec::<String>::new());
    assert_eq!(conns[0].messages.len(), 1);
    assert_eq!(text(&conns[0].messages[0].content), content);
    let bdats: Vec<&String> = conns[0]
        .commands
        .iter()
        .filter(|l| l.starts_with("BDAT"))
        .collect();
    assert!(bdats.len() >= 3, "{bdats:?}");
    assert!(bdats.last().unwrap().ends_with(" LAST"));
    assert!(bdats[..bdats.len() - 1]
        .iter()
        .all(|b| !b.ends_with("LAST")));
}

/// The destination refuses the content after our own 354: the final dot
/// gets its refusal, nothing is delivered, the connection serves on.
#[tokio::test]
async fn a_destination_refusing_the_content_after_our_354_answers_the_final_dot() {
    let dest = StrictDest::start(
        caps(true, true),
        scripted(vec![(
            Point::EndOfData,
            Act::reply("554 5.7.1 content refused"),
        )]),
    )
    .await;
    let ctx = ctx_to(&dest);
    let mut s = start_session(&ctx);
    let c = &mut s.client;
    c.hello(DEFAULT_MAX_SIZE).await;
    c.cmd("MAIL FROM:<a@legacy.test>", MAIL_OK).await;
    c.cmd("RCPT TO:<b@example.test>", RCPT_OK).await;
    c.cmd("DATA", GO_AHEAD).await;
    c.send("Subject: x\r\n\r\nbad\r\n.\r\n").await;
    let peer = format!("127.0.0.1[127.0.0.1]:{}", dest.addr.port());
    assert_eq!(
        c.reply().await,
        format!("554 5.7.1 {peer} said: content refused")
    );
    // The same connection takes the next message.
    c.cmd("MAIL FROM:<a@legacy.test>", MAIL_OK).await;
    c.cmd("RCPT TO:<b@example.test>", RCPT_OK).await;
    c.cmd("DATA", GO_AHEAD).await;
    c.send("Subject: y\r\n\r\ngood\r\n.\r\n").await;
    assert_eq!(c.reply().await, "250 2.0.0 Ok: queued");
    c.cmd("QUIT", BYE).await;
    s.ended().await;
    drop(ctx);
    let conns = dest.wait_all_closed().await;
    assert_eq!(dest.violations(), Vec::<String>::new());
    assert_eq!(conns.len(), 1);
    let accepted: Vec<bool> = conns[0].messages.iter().map(|m| m.accepted).collect();
    assert_eq!(accepted, [false, true]);
}

/// A chunk refused in the middle of a long message sent as BDAT: nothing
/// more is sent, no BDAT LAST, the final dot gets the refusal.
#[tokio::test]
async fn a_chunk_refused_mid_message_stops_the_content_and_answers_the_final_dot() {
    let dest = StrictDest::start(
        caps(true, true),
        scripted(vec![(Point::Chunk, Act::reply("552 5.3.4 too much"))]),
    )
    .await;
    let ctx = ctx_to(&dest);
    let mut s = start_session(&ctx);
    let c = &mut s.client;
    c.hello(DEFAULT_MAX_SIZE).await;
    c.cmd("MAIL FROM:<a@legacy.test>", MAIL_OK).await;
    c.cmd("RCPT TO:<b@example.test>", RCPT_OK).await;
    c.cmd("DATA", GO_AHEAD).await;
    let line = "x".repeat(998) + "\r\n";
    for _ in 0..400 {
        c.send(&line).await;
    }
    c.send(".\r\n").await;
    let peer = format!("127.0.0.1[127.0.0.1]:{}", dest.addr.port());
    assert_eq!(c.reply().await, format!("552 5.3.4 {peer} said: too much"));
    c.cmd("QUIT", BYE).await;
    s.ended().await;
    drop(ctx);
    let conns = dest.wait_all_closed().await;
    assert_eq!(dest.violations(), Vec::<String>::new());
    assert!(
        conns[0].messages.is_empty(),
        "{:?}",
        conns[0].messages.len()
    );
    assert!(!conns[0].commands.iter().any(|l| l.ends_with("LAST")));
    assert!(conns[0].commands.iter().any(|l| l == "RSET"));
}

/// On a warm connection, a message costs two turns at the destination:
/// the envelope, then the content with its end.
#[tokio::test]
async fn a_warm_connection_costs_two_writes_per_message() {
    let dest = StrictDest::start(caps(true, true), Arc::new(polite)).await;
    let ctx = ctx_to(&dest);
    let mut s = start_session(&ctx);
    let c = &mut s.client;
    c.hello(DEFAULT_MAX_SIZE).await;
    for n in 0..3 {
        c.send(format!(
            "MAIL FROM:<a@legacy.test>\r\nRCPT TO:<b{n}@example.test>\r\nDATA\r\n"
        ))
        .await;
        for want in [MAIL_OK, RCPT_OK, GO_AHEAD] {
            assert_eq!(c.reply().await, want);
        }
        c.send(format!("Subject: {n}\r\n\r\nhi\r\n.\r\n")).await;
        assert_eq!(c.reply().await, "250 2.0.0 Ok: queued");
    }
    c.cmd("QUIT", BYE).await;
    s.ended().await;
    drop(ctx);
    let conns = dest.wait_all_closed().await;
    assert_eq!(dest.violations(), Vec::<String>::new());
    let reads = reads_after_ehlo(&conns[0]);
    // Two reads per message (the conversation then waits in the cache).
    assert_eq!(reads.len(), 3 * 2, "{reads:#?}");
    for n in 0..3 {
        assert_eq!(
            reads[2 * n],
            format!("MAIL FROM:<a@legacy.test>\r\nRCPT TO:<b{n}@example.test>\r\n")
        );
        assert!(reads[2 * n + 1].starts_with("BDAT ") && reads[2 * n + 1].contains(" LAST\r\n"));
    }
}
