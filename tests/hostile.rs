//! Hostile input (issue 6, "Reliability and security evidence"): clients
//! that flood, stall, overrun limits, pipeline thousands of commands, send
//! binary garbage or try SMTP smuggling against a real [`Server`] on
//! loopback; destinations that break STARTTLS, never finish a handshake,
//! send enormous or endless replies, or reply before the data ends; a
//! resolver that fails mid-run and recovers.
//!
//! Every wait is bounded (inbound_idle and the STARTTLS timeout are 1 s
//! where a test waits for them), and each test asserts the exact reply the
//! client gets and what the destination saw.

mod common;

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use danegate::dns::{BoxFuture, FailureKind, LookupResult, Mx, Resolver, Security, Tlsa};
use danegate::outbound::Context;
use danegate::server::Server;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, Notify};
use tokio::task::{JoinHandle, JoinSet};

const MAIL_OK: &str = "250 2.1.0 Ok";
const RCPT_OK: &str = "250 2.1.5 Ok";
const GO_AHEAD: &str = "354 End data with <CR><LF>.<CR><LF>";
const BYE: &str = "221 2.0.0 relay.example.net closing connection";
const OK: &str = "250 2.0.0 Ok";
const TOO_BUSY: &str = "421 4.3.2 Too many connections, try again later";
const IDLE: &str = "421 4.4.2 Timeout exceeded, closing connection";
const TOO_MANY_ERRORS: &str = "421 4.7.0 Too many errors, closing connection";
const BARE_LF: &str = "550 5.5.2 Message refused: bare LF in message content (lines must end with CRLF, RFC 5321 section 2.3.8)";
const BARE_CR: &str = "550 5.5.2 Message refused: bare CR in message content (lines must end with CRLF, RFC 5321 section 2.3.8)";

// ---------------------------------------------------------------------------
// A real server on 127.0.0.1:0

struct Running {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

async fn serve(cfg: ConfigBuilder) -> Running {
    let ctx = cfg.context(&Arc::new(TableResolver::new()));
    let server = Server::bind(ctx).await.expect("bind");
    let addr = server.local_addrs()[0];
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async move {
        let _ = rx.await;
    }));
    Running {
        addr,
        stop: Some(tx),
        task,
    }
}

impl Running {
    /// Stops the server and checks that it ends (it did not crash).
    async fn stop(mut self) {
        self.stop
            .take()
            .expect("stopped once")
            .send(())
            .expect("the server is still running");
        bounded("the server to stop", self.task)
            .await
            .expect("the server task panicked");
    }
}

/// A server routing `example.test` to `dest`.
async fn serve_to(dest: &FakeDest, cfg: ConfigBuilder) -> Running {
    serve(cfg.route("example.test", &dest.route())).await
}

async fn connect(addr: SocketAddr) -> SmtpClient<TcpStream> {
    let s = bounded("connect", TcpStream::connect(addr))
        .await
        .expect("connect");
    SmtpClient::new(s)
}

/// Connects until a session slot is free (a slot is released just after
/// the previous session's connection closes), returning the greeted client.
async fn connect_admitted(addr: SocketAddr) -> SmtpClient<TcpStream> {
    bounded("a free session slot", async {
        loop {
            let mut c = connect(addr).await;
            let r = c.reply().await;
            if r == greeting() {
                return c;
            }
            assert_eq!(r, TOO_BUSY, "first reply");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

/// One message from an already greeted client; returns the final reply.
async fn send_message<S>(c: &mut SmtpClient<S>, subject: &str) -> String
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    c.cmd("EHLO legacy.test", &ehlo_reply(DEFAULT_MAX_SIZE))
        .await;
    c.cmd("MAIL FROM:<sender@legacy.test>", MAIL_OK).await;
    c.cmd("RCPT TO:<rcpt@example.test>", RCPT_OK).await;
    c.cmd("DATA", GO_AHEAD).await;
    c.send(format!("Subject: {subject}\r\n\r\nHello.\r\n.\r\n"))
        .await;
    c.reply().await
}

/// A well-behaved client delivers one message through `addr`.
async fn well_behaved(addr: SocketAddr, subject: &str) {
    let mut c = connect_admitted(addr).await;
    let r = send_message(&mut c, subject).await;
    assert!(r.starts_with("250 2.0.0 Ok: queued as Q"), "{subject}: {r}");
    c.cmd("QUIT", BYE).await;
    c.expect_closed().await;
}

/// True when some connection to `dest` holds the complete message with
/// this subject.
fn delivered(conns: &[Conn], subject: &str) -> bool {
    let want = format!("Subject: {subject}\r\n");
    conns.iter().flat_map(|c| &c.messages).any(|m| {
        m.complete() && {
            let (bytes, _) = m.data();
            bytes.starts_with(want.as_bytes())
        }
    })
}

// ---------------------------------------------------------------------------
// Hostile clients

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_flood_past_max_connections_gets_421_and_service_goes_on() {
    let dest = FakeDest::start(DestScript::default()).await;
    let srv = serve_to(&dest, ConfigBuilder::new().server("max_connections", "20")).await;

    // 20 sessions hold every slot.
    let mut held = Vec::new();
    for _ in 0..20 {
        let mut c = connect(srv.addr).await;
        c.expect(&greeting()).await;
        held.push(c);
    }

    // 200 more at once: each gets exactly the 421 and is closed.
    let mut flood = JoinSet::new();
    for _ in 0..200 {
        let addr = srv.addr;
        flood.spawn(async move {
            let mut c = connect(addr).await;
            c.expect(TOO_BUSY).await;
            c.expect_closed().await;
        });
    }
    while let Some(r) = bounded("the flood", flood.join_next()).await {
        r.expect("a flood client failed");
    }

    // The held sessions still work.
    for c in &mut held {
        c.cmd("NOOP", OK).await;
    }

    // During the flood: one slot frees, a well-behaved client takes it and
    // delivers while a second flood is refused.
    let mut first = held.pop().expect("a held session");
    first.cmd("QUIT", BYE).await;
    first.expect_closed().await;
    let mut flood = JoinSet::new();
    for _ in 0..50 {
        let addr = srv.addr;
        flood.spawn(async move {
            let mut c = connect(addr).await;
            // The freed slot may go to a flood client rather than to the
            // well-behaved one; then that client is simply served.
            let r = c.reply().await;
            assert!(r == TOO_BUSY || r == greeting(), "{r}");
            if r == TOO_BUSY {
                c.expect_closed().await;
            }
        });
    }
    while let Some(r) = bounded("the second flood", flood.join_next()).await {
        r.expect("a flood client failed");
    }
    well_behaved(srv.addr, "during the flood").await;

    // Afterwards: every slot back, delivery goes on.
    for mut c in held {
        c.cmd("QUIT", BYE).await;
        c.expect_closed().await;
    }
    well_behaved(srv.addr, "after the flood").await;
    let conns = dest
        .wait_for("both messages", |c| {
            delivered(c, "during the flood") && delivered(c, "after the flood")
        })
        .await;
    let complete = conns
        .iter()
        .flat_map(|c| &c.messages)
        .filter(|m| m.complete())
        .count();
    assert_eq!(complete, 2);
    srv.stop().await;
}

/// Asserts the 421 idle reply comes about `idle` after `since`, then the
/// close.
async fn assert_idle_close(c: &mut SmtpClient<TcpStream>, since: Instant, state: &str) {
    let r = c.reply().await;
    let took = since.elapsed();
    assert_eq!(r, IDLE, "{state}");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "{state}: closed after {took:?}, inbound_idle is 1 s"
    );
    c.expect_closed().await;
}

/// A client that trickles a command line one octet at a time, each well
/// within inbound_idle, is still cut off once the whole line has taken
/// longer than inbound_idle (a per-record deadline, as Postfix's
/// smtpd_per_record_deadline): otherwise it could hold its slot for days.
#[tokio::test]
async fn trickling_a_command_line_is_cut_off_at_inbound_idle() {
    let dest = FakeDest::start(DestScript::default()).await;
    let srv = serve_to(
        &dest,
        ConfigBuilder::new()
            .server("max_connections", "1")
            .timeout("inbound_idle", 1),
    )
    .await;
    let mut c = connect_admitted(srv.addr).await;
    let since = Instant::now();
    // Four octets 200 ms apart: each read well within inbound_idle.
    for b in "MAIL".bytes() {
        c.send([b]).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let r = c.reply().await;
    let took = since.elapsed();
    assert_eq!(r, IDLE);
    // A timeout per read would answer 1 s after the last octet (about
    // 1.8 s); the per-line deadline answers about 1 s after the greeting.
    assert!(
        took < Duration::from_millis(1500),
        "cut off after {took:?}: the line deadline did not hold"
    );
    c.expect_closed().await;
    well_behaved(srv.addr, "after the trickling client").await;
}

#[tokio::test]
async fn slowloris_in_every_state_gets_421_at_inbound_idle_and_frees_the_slot() {
    let dest = FakeDest::start(DestScript::default()).await;
    let srv = serve_to(
        &dest,
        ConfigBuilder::new()
            .server("max_connections", "1")
            .timeout("inbound_idle", 1),
    )
    .await;

    // Waiting for the first command after the greeting.
    let mut c = connect_admitted(srv.addr).await;
    assert_idle_close(&mut c, Instant::now(), "after the greeting").await;

    // Half a command line.
    let mut c = connect_admitted(srv.addr).await;
    c.send("MAIL FROM:<sender@leg").await;
    assert_idle_close(&mut c, Instant::now(), "mid-command line").await;

    // Inside DATA.
    let mut c = connect_admitted(srv.addr).await;
    c.cmd("EHLO legacy.test", &ehlo_reply(DEFAULT_MAX_SIZE))
        .await;
    c.cmd("MAIL FROM:<sender@legacy.test>", MAIL_OK).await;
    c.cmd("RCPT TO:<rcpt@example.test>", RCPT_OK).await;
    c.cmd("DATA", GO_AHEAD).await;
    c.send("Subject: slow\r\n\r\nhalf a mess").await;
    let since = Instant::now();
    assert_idle_close(&mut c, since, "inside DATA").await;

    // Inside a BDAT chunk.
    let mut c = connect_admitted(srv.addr).await;
    c.cmd("EHLO legacy.test", &ehlo_reply(DEFAULT_MAX_SIZE))
        .await;
    c.cmd("MAIL FROM:<sender@legacy.test>", MAIL_OK).await;
    c.cmd("RCPT TO:<rcpt@example.test>", RCPT_OK).await;
    c.send("BDAT 100 LAST\r\nSubject: slow bdat\r\n").await;
    let since = Instant::now();
    assert_idle_close(&mut c, since, "inside a BDAT chunk").await;

    // The destination never got an end of data from either stalled
    // transaction, and its connections were dropped.
    let conns = dest.wait_closed(2).await;
    for conn in &conns {
        assert!(
            conn.messages.iter().all(|m| !m.complete()),
            "{:?}",
            conn.messages
        );
    }

    // The only slot is free again.
    well_behaved(srv.addr, "after the slowloris").await;
    srv.stop().await;
}

#[tokio::test]
async fn ten_megabyte_line_gets_500_and_the_session_keeps_serving() {
    let dest = FakeDest::start(DestScript::default()).await;
    let srv = serve_to(&dest, ConfigBuilder::new()).await;
    let mut c = connect_admitted(srv.addr).await;
    let mut line = vec![b'A'; 10 * 1024 * 1024];
    line.extend_from_slice(b"\r\n");
    c.send(&line).await;
    c.expect("500 5.5.2 Line too long").await;
    c.cmd("NOOP", OK).await;
    // A line of exactly 4096 octets with its CRLF is still too long for a
    // command; the session stays in step after it too.
    let mut long = b"NOOP ".to_vec();
    long.resize(4096, b'x');
    long.extend_from_slice(b"\r\n");
    c.send(&long).await;
    c.expect("500 5.5.2 Line too long").await;
    let r = send_message(&mut c, "after the long line").await;
    assert!(r.starts_with("250 2.0.0 Ok: queued as Q"), "{r}");
    c.cmd("QUIT", BYE).await;
    srv.stop().await;
}

#[tokio::test]
async fn oversized_messages_get_552() {
    let dest = FakeDest::start(DestScript::default()).await;
    let srv = serve_to(
        &dest,
        ConfigBuilder::new().server("max_message_size", "1000"),
    )
    .await;
    let too_big = "552 5.3.4 Message size exceeds fixed limit of 1000 octets";
    let mut c = connect_admitted(srv.addr).await;
    c.cmd("EHLO legacy.test", &ehlo_reply(1000)).await;
    // Declared.
    c.cmd("MAIL FROM:<sender@legacy.test> SIZE=1001", too_big)
        .await;
    // Actual, in DATA.
    c.cmd("MAIL FROM:<sender@legacy.test>", MAIL_OK).await;
    c.cmd("RCPT TO:<rcpt@example.test>", RCPT_OK).await;
    c.cmd("DATA", GO_AHEAD).await;
    let mut body = b"Subject: big\r\n\r\n".to_vec();
    for _ in 0..100 {
        body.extend_from_slice(b"0123456789012345678901234567890123456789\r\n");
    }
    c.send(&body).await;
    c.send(".\r\n").await;
    c.expect(too_big).await;
    // Actual, in BDAT.
    c.cmd("MAIL FROM:<sender@legacy.test>", MAIL_OK).await;
    c.cmd("RCPT TO:<rcpt@example.test>", RCPT_OK).await;
    c.send(format!("BDAT {} LAST\r\n", body.len())).await;
    c.send(&body).await;
    c.expect(too_big).await;
    c.cmd("NOOP", OK).await;
    c.cmd("QUIT", BYE).await;
    let conns = dest.wait_closed(2).await;
    assert!(conns
        .iter()
        .flat_map(|c| &c.messages)
        .all(|m| !m.complete()));
    srv.stop().await;
}

#[tokio::test]
async fn thousands_of_pipelined_commands_with_garbage_are_answered_in_order() {
    let dest = FakeDest::start(DestScript::default()).await;
    let srv = serve_to(&dest, ConfigBuilder::new()).await;
    let mut c = connect_admitted(srv.addr).await;
    c.cmd("EHLO legacy.test", &ehlo_reply(DEFAULT_MAX_SIZE))
        .await;
    let mut batch = Vec::new();
    let mut want = Vec::new();
    for i in 0..5000 {
        if i % 350 == 7 {
            // 15 garbage lines: fewer than the 20 errors that end a session.
            batch.extend_from_slice(b"XYZZY plugh\r\n");
            want.push("500 5.5.2 Command not recognized");
        } else if i % 2 == 0 {
            batch.extend_from_slice(b"NOOP\r\n");
            want.push(OK);
        } else {
            batch.extend_from_slice(b"RSET\r\n");
            want.push(OK);
        }
    }
    assert_eq!(want.iter().filter(|w| w.starts_with('5')).count(), 15);
    c.send(&batch).await;
    for (i, w) in want.iter().enumerate() {
        let got = c.reply().await;
        assert_eq!(&got, w, "reply {i}");
    }
    // Still in step.
    let r = send_message(&mut c, "after the pipeline").await;
    assert!(r.starts_with("250 2.0.0 Ok: queued as Q"), "{r}");
    c.cmd("QUIT", BYE).await;
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_garbage_gets_500s_then_421_and_others_are_served() {
    let dest = FakeDest::start(DestScript::default()).await;
    let srv = serve_to(&dest, ConfigBuilder::new()).await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(6);
    let mut bad = connect_admitted(srv.addr).await;
    // A well-behaved client is in the middle of a session meanwhile.
    let mut good = connect_admitted(srv.addr).await;
    good.cmd("EHLO legacy.test", &ehlo_reply(DEFAULT_MAX_SIZE))
        .await;

    // Exactly 20 lines of random octets (NUL, 0xFF and all the rest but
    // CR and LF), so that the server has read everything when it closes.
    let mut garbage = Vec::new();
    for i in 0..20 {
        garbage.push(if i % 2 == 0 { 0x00 } else { 0xff });
        let n = rng.gen_range(1..300);
        for _ in 0..n {
            let b: u8 = rng.gen();
            garbage.push(if b == b'\r' || b == b'\n' { 0 } else { b });
        }
        garbage.extend_from_slice(b"\r\n");
    }
    bad.send(&garbage).await;
    for i in 0..20 {
        let r = bad.reply().await;
        assert!(
            r == "500 5.5.2 Command is not valid UTF-8" || r == "500 5.5.2 Command not recognized",
            "reply {i}: {r}"
        );
    }
    bad.expect(TOO_MANY_ERRORS).await;
    bad.expect_closed().await;

    // The other session goes on, and new ones are served.
    good.cmd("MAIL FROM:<sender@legacy.test>", MAIL_OK).await;
    good.cmd("RCPT TO:<rcpt@example.test>", RCPT_OK).await;
    good.cmd("DATA", GO_AHEAD).await;
    good.send("Subject: good\r\n\r\nHello.\r\n.\r\n").await;
    let r = good.reply().await;
    assert!(r.starts_with("250 2.0.0 Ok: queued as Q"), "{r}");
    good.cmd("QUIT", BYE).await;
    well_behaved(srv.addr, "after the garbage").await;
    srv.stop().await;
}

/// The fake end of data, the smuggled transaction after it, and the
/// reply the client must get (only after the real CRLF.CRLF).
const SMUGGLING: &[(&str, &[u8], &str)] = &[
    ("LF.CRLF", b"\n.\r\n", BARE_LF),
    ("CR.CR", b"\r.\r", BARE_CR),
    ("CRLF.LF", b"\r\n.\n", BARE_LF),
    ("LF.LF", b"\n.\n", BARE_LF),
    ("CRLF.CRCRLF", b"\r\n.\r\r\n", BARE_CR),
];

#[tokio::test]
async fn smuggling_variants_never_reach_the_destination() {
    for &(name, fake_end, want) in SMUGGLING {
        let dest = FakeDest::start(DestScript::default()).await;
        let srv = serve_to(&dest, ConfigBuilder::new()).await;
        let mut c = connect_admitted(srv.addr).await;
        c.cmd("EHLO legacy.test", &ehlo_reply(DEFAULT_MAX_SIZE))
            .await;
        c.cmd("MAIL FROM:<sender@legacy.test>", MAIL_OK).await;
        c.cmd("RCPT TO:<rcpt@example.test>", RCPT_OK).await;
        c.cmd("DATA", GO_AHEAD).await;
        let mut content = b"Subject: innocent\r\n\r\nbody".to_vec();
        content.extend_from_slice(fake_end);
        content.extend_from_slice(
            b"MAIL FROM:<smuggled@evil.test>\r\nRCPT TO:<victim@example.test>\r\nDATA\r\n\
              Subject: smuggled\r\n\r\nsmuggled body\r\n",
        );
        c.send(&content).await;
        // The fake terminator ends nothing: no reply yet.
        c.expect_silence(Duration::from_millis(300)).await;
        c.send(".\r\n").await;
        assert_eq!(c.reply().await, want, "{name}");
        // danegate read the smuggled lines as content, not commands.
        c.cmd("NOOP", OK).await;
        c.cmd("QUIT", BYE).await;
        c.expect_closed().await;
        let conns = dest.wait_closed(1).await;
        let conn = &conns[0];
        assert_eq!(
            conn.commands(),
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
        assert_eq!(conn.messages.len(), 1, "{name}");
        let (bytes, terminated) = conn.messages[0].data();
        assert!(!terminated, "{name}: the destination got an end of data");
        assert!(
            b"Subject: innocent\r\n\r\nbody".starts_with(bytes),
            "{name}: forwarded {:?}",
            String::from_utf8_lossy(bytes)
        );
        srv.stop().await;
    }
}

// ---------------------------------------------------------------------------
// Hostile servers: a raw scripted listener

/// What a [`RawDest`] does wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trick {
    /// Offers STARTTLS, answers it 220, then answers the ClientHello in
    /// plaintext SMTP.
    PlaintextAfterStartTls,
    /// Offers STARTTLS, answers it 220, then says nothing.
    SilentAfterStartTls,
    /// Answers MAIL FROM with a 1 MiB reply line.
    HugeReplyLine,
    /// Answers EHLO with `250-x` lines, forever.
    EndlessReply,
    /// Answers `250` as soon as the first content octets arrive, then its
    /// real verdict (554) to the end of data.
    EarlyReply,
}

/// A destination scripted at the byte level. Each connection's log holds
/// the command lines received, and markers in angle brackets.
struct RawDest {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<Vec<String>>>>,
    /// Notified when the early reply has been written.
    early: Arc<Notify>,
    task: JoinHandle<()>,
}

impl Drop for RawDest {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RawDest {
    async fn start(trick: Trick) -> RawDest {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let log: Arc<Mutex<Vec<Vec<String>>>> = Arc::default();
        let early = Arc::new(Notify::new());
        let (l, e) = (log.clone(), early.clone());
        let task = tokio::spawn(async move {
            let mut conns = JoinSet::new();
            loop {
                tokio::select! {
                    r = listener.accept() => {
                        let Ok((tcp, _)) = r else { continue };
                        let idx = {
                            let mut log = l.lock().unwrap();
                            log.push(Vec::new());
                            log.len() - 1
                        };
                        conns.spawn(raw_serve(tcp, trick, idx, l.clone(), e.clone()));
                    }
                    Some(_) = conns.join_next(), if !conns.is_empty() => {}
                }
            }
        });
        RawDest {
            addr,
            log,
            early,
            task,
        }
    }

    fn route(&self) -> String {
        format!("[127.0.0.1]:{}", self.addr.port())
    }

    fn peer(&self) -> String {
        format!("127.0.0.1[127.0.0.1]:{}", self.addr.port())
    }

    fn log(&self) -> Vec<Vec<String>> {
        self.log.lock().unwrap().clone()
    }

    /// Waits until `n` connections ended (each log ends with `<closed>`).
    async fn wait_closed(&self, n: usize) -> Vec<Vec<String>> {
        bounded("the raw destination's connections to close", async {
            loop {
                let log = self.log();
                if log.len() == n
                    && log
                        .iter()
                        .all(|c| c.last().is_some_and(|l| l == "<closed>"))
                {
                    return log;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
    }
}

async fn raw_serve(
    mut tcp: TcpStream,
    trick: Trick,
    idx: usize,
    log: Arc<Mutex<Vec<Vec<String>>>>,
    early: Arc<Notify>,
) {
    let note = |s: &str| log.lock().unwrap()[idx].push(s.to_owned());
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let offers_tls = matches!(
        trick,
        Trick::PlaintextAfterStartTls | Trick::SilentAfterStartTls
    );
    let _ = tcp.write_all(b"220 raw.test ESMTP\r\n").await;
    'conn: loop {
        let line = loop {
            if let Some(i) = buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = buf.drain(..=i).collect();
                break String::from_utf8_lossy(&line).trim_end().to_owned();
            }
            match tcp.read(&mut chunk).await {
                Ok(0) | Err(_) => break 'conn,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        note(&line);
        let verb = line
            .split([' ', ':'])
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        let reply: Vec<u8> = match verb.as_str() {
            "EHLO" if trick == Trick::EndlessReply => {
                let lines = b"250-x\r\n".repeat(8 * 1024);
                while tcp.write_all(&lines).await.is_ok() {}
                note("<endless reply cut off>");
                break 'conn;
            }
            "EHLO" if offers_tls => b"250-raw.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n".to_vec(),
            "EHLO" => b"250-raw.test\r\n250 PIPELINING\r\n".to_vec(),
            "STARTTLS" => {
                let _ = tcp.write_all(b"220 2.0.0 Ready to start TLS\r\n").await;
                loop {
                    match tcp.read(&mut chunk).await {
                        Ok(0) | Err(_) => break 'conn,
                        Ok(_) if trick == Trick::PlaintextAfterStartTls => {
                            note("<TLS octets, answered in plaintext>");
                            let _ = tcp
                                .write_all(b"500 5.5.2 Error: command not recognized\r\n")
                                .await;
                        }
                        Ok(_) => note("<TLS octets, ignored>"),
                    }
                }
            }
            "MAIL" if trick == Trick::HugeReplyLine => {
                let mut r = b"250 ".to_vec();
                r.resize(1024 * 1024, b'x');
                r.extend_from_slice(b"\r\n");
                r
            }
            "MAIL" => b"250 2.1.0 Ok\r\n".to_vec(),
            "RCPT" => b"250 2.1.5 Ok\r\n".to_vec(),
            "RSET" | "NOOP" => b"250 2.0.0 Ok\r\n".to_vec(),
            "QUIT" => {
                let _ = tcp.write_all(b"221 2.0.0 Bye\r\n").await;
                break 'conn;
            }
            "DATA" => {
                let _ = tcp.write_all(b"354 go ahead\r\n").await;
                let mut replied_early = false;
                let end = loop {
                    if trick == Trick::EarlyReply && !buf.is_empty() && !replied_early {
                        replied_early = true;
                        let _ = tcp
                            .write_all(b"250 2.0.0 early: accepted before the end of data\r\n")
                            .await;
                        note("<early 250 sent>");
                        early.notify_one();
                    }
                    if let Some(i) = buf.windows(5).position(|w| w == b"\r\n.\r\n") {
                        break i + 5;
                    }
                    match tcp.read(&mut chunk).await {
                        Ok(0) | Err(_) => {
                            note(&format!("<data: {} octets, unterminated>", buf.len()));
                            break 'conn;
                        }
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                };
                buf.drain(..end);
                note(&format!("<data: {} octets, terminated>", end - 3));
                if trick == Trick::EarlyReply {
                    b"554 5.7.1 real verdict after the end of data: rejected\r\n".to_vec()
                } else {
                    b"250 2.0.0 Ok: queued as R1\r\n".to_vec()
                }
            }
            _ => b"502 5.5.2 Error: command not recognized\r\n".to_vec(),
        };
        if tcp.write_all(&reply).await.is_err() {
            break;
        }
    }
    note("<closed>");
}

const MX: &str = "mx.example.test";

/// A context routing `example.test` to the raw destination: by address
/// (opportunistic TLS), or as `mx.example.test` with a secure TLSA record
/// (DANE required), with a STARTTLS timeout of 1 s.
fn raw_ctx(dest: &RawDest, dane: bool) -> Arc<Context> {
    let cfg = ConfigBuilder::new().timeout("starttls", 1);
    if !dane {
        return cfg
            .route("example.test", &dest.route())
            .context(&Arc::new(TableResolver::new()));
    }
    let resolver = TableResolver::new()
        .host(MX, &[Ipv4Addr::LOCALHOST], Security::Secure)
        .tlsa_secure(
            &format!("_{}._tcp.{MX}", dest.addr.port()),
            vec![Tlsa {
                usage: 3,
                selector: 1,
                mtype: 1,
                data: vec![0x42; 32],
            }],
        );
    cfg.route("example.test", &format!("[{MX}]:{}", dest.addr.port()))
        .context(&Arc::new(resolver))
}

/// Greets, sends MAIL and RCPT; returns the reply to RCPT.
async fn rcpt_reply(s: &mut InboundSession) -> String {
    let c = &mut s.client;
    c.hello(DEFAULT_MAX_SIZE).await;
    c.cmd("MAIL FROM:<sender@legacy.test>", MAIL_OK).await;
    c.send("RCPT TO:<rcpt@example.test>\r\n").await;
    c.reply().await
}

const PLAIN_DELIVERY: &[&str] = &[
    "EHLO relay.example.net",
    "MAIL FROM:<sender@legacy.test>",
    "RCPT TO:<rcpt@example.test>",
    "DATA",
    "<data: 26 octets, terminated>",
    "QUIT",
    "<closed>",
];

/// Opportunistic TLS: the failed (or endless) handshake is given up and
/// the message goes in plaintext on a new connection, as Postfix does.
async fn opportunistic_retry_delivers(trick: Trick, max_wait: Duration) {
    let dest = RawDest::start(trick).await;
    let mut s = start_session(&raw_ctx(&dest, false));
    let started = Instant::now();
    assert_eq!(rcpt_reply(&mut s).await, RCPT_OK);
    assert!(started.elapsed() < max_wait, "{:?}", started.elapsed());
    let c = &mut s.client;
    c.cmd("DATA", GO_AHEAD).await;
    c.send("Subject: retry\r\n\r\nHello.\r\n.\r\n").await;
    c.expect("250 2.0.0 Ok: queued as R1").await;
    c.cmd("QUIT", BYE).await;
    s.ended().await;
    let log = dest.wait_closed(2).await;
    assert_eq!(&log[0][..2], ["EHLO relay.example.net", "STARTTLS"]);
    assert!(
        log[0][2..]
            .iter()
            .all(|l| l.starts_with("<TLS octets") || l == "<closed>"),
        "{log:?}"
    );
    assert_eq!(log[1], PLAIN_DELIVERY);
}

/// DANE required: the broken handshake defers, and nothing is sent in
/// plaintext. Returns the reply to RCPT, how long it took and the
/// destination's port.
async fn dane_defers(trick: Trick) -> (String, Duration, u16) {
    let dest = RawDest::start(trick).await;
    let mut s = start_session(&raw_ctx(&dest, true));
    let started = Instant::now();
    let got = rcpt_reply(&mut s).await;
    let took = started.elapsed();
    s.client.cmd("QUIT", BYE).await;
    s.ended().await;
    let log = dest.wait_closed(1).await;
    assert_eq!(&log[0][..2], ["EHLO relay.example.net", "STARTTLS"]);
    assert!(
        !log[0].iter().any(|l| l.starts_with("MAIL")),
        "plaintext MAIL after a failed DANE handshake: {log:?}"
    );
    (got, took, dest.addr.port())
}

#[tokio::test]
async fn plaintext_after_starttls_220_fails_the_handshake_then_opportunistic_retries_without_tls() {
    opportunistic_retry_delivers(Trick::PlaintextAfterStartTls, Duration::from_secs(3)).await;
}

#[tokio::test]
async fn plaintext_after_starttls_220_under_dane_defers_4_7_5() {
    let (got, _, port) = dane_defers(Trick::PlaintextAfterStartTls).await;
    let want = format!("451 4.7.5 TLS handshake with {MX}[127.0.0.1]:{port} failed: ");
    assert!(got.starts_with(&want), "{got:?}, want {want:?}...");
}

#[tokio::test]
async fn handshake_that_never_completes_is_bounded_then_opportunistic_retries_without_tls() {
    // starttls = 1 s: the retry comes after about a second.
    opportunistic_retry_delivers(Trick::SilentAfterStartTls, Duration::from_secs(4)).await;
}

#[tokio::test]
async fn handshake_that_never_completes_under_dane_defers_after_the_starttls_timeout() {
    let (got, took, port) = dane_defers(Trick::SilentAfterStartTls).await;
    assert_eq!(
        got,
        format!(
            "451 4.4.2 conversation with {MX}[127.0.0.1]:{port} timed out while performing the TLS handshake"
        )
    );
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "{took:?}"
    );
}

#[tokio::test]
async fn one_megabyte_reply_line_defers_4_5_0_and_the_session_goes_on() {
    let dest = RawDest::start(Trick::HugeReplyLine).await;
    let mut s = start_session(&raw_ctx(&dest, false));
    let got = rcpt_reply(&mut s).await;
    assert_eq!(
        got,
        format!(
            "451 4.5.0 malformed reply from {} while sending MAIL FROM: reply line longer than 4096 octets",
            dest.peer()
        )
    );
    s.client.cmd("RSET", OK).await;
    s.client.cmd("QUIT", BYE).await;
    s.ended().await;
    let log = dest.wait_closed(1).await;
    // MAIL and RCPT went as one pipelined group (RFC 2920).
    assert_eq!(
        log[0],
        [
            "EHLO relay.example.net",
            "MAIL FROM:<sender@legacy.test>",
            "RCPT TO:<rcpt@example.test>",
            "<closed>"
        ]
    );
}

#[tokio::test]
async fn endless_multiline_reply_defers_4_5_0() {
    let dest = RawDest::start(Trick::EndlessReply).await;
    let mut s = start_session(&raw_ctx(&dest, false));
    let got = rcpt_reply(&mut s).await;
    assert_eq!(
        got,
        format!(
            "451 4.5.0 malformed reply from {} while sending EHLO: reply with more than 128 lines",
            dest.peer()
        )
    );
    s.client.cmd("QUIT", BYE).await;
    s.ended().await;
    let log = dest.wait_closed(1).await;
    assert_eq!(
        log[0],
        [
            "EHLO relay.example.net",
            "<endless reply cut off>",
            "<closed>"
        ]
    );
}

/// Sends a message to a destination that replies 250 after the first
/// content octets; returns the client's reply to its own end of data.
async fn early_reply_transaction(s: &mut InboundSession, dest: &RawDest) -> String {
    assert_eq!(rcpt_reply(s).await, RCPT_OK);
    let c = &mut s.client;
    c.cmd("DATA", GO_AHEAD).await;
    c.send("Subject: early\r\n\r\nfirst half\r\n").await;
    bounded("the early reply", dest.early.notified()).await;
    // Nothing is answered before the client's own end of data.
    c.expect_silence(Duration::from_millis(300)).await;
    c.send("second half\r\n.\r\n").await;
    c.reply().await
}

#[tokio::test]
async fn early_250_from_the_destination_is_not_answered_before_the_clients_end_of_data() {
    let dest = RawDest::start(Trick::EarlyReply).await;
    let mut s = start_session(&raw_ctx(&dest, false));
    let _ = early_reply_transaction(&mut s, &dest).await;
    s.client.cmd("QUIT", BYE).await;
    s.ended().await;
}

/// A reply the destination sends before the end of data is a protocol
/// violation: it must never stand for the reply to the final dot (it
/// once did: the early 250 reached the client and the real 554 was read
/// as the reply to the next command). The destination connection is
/// dropped without the final dot and the client gets 451 4.5.0.
#[tokio::test]
async fn early_250_from_the_destination_is_never_the_final_reply() {
    let dest = RawDest::start(Trick::EarlyReply).await;
    let mut s = start_session(&raw_ctx(&dest, false));
    let got = early_reply_transaction(&mut s, &dest).await;
    assert!(
        got.starts_with("451 4.5.0 malformed reply from ")
            && got.ends_with(
                " while sending message content: malformed reply: the server replied before the end of data"
            ),
        "the client got {got:?} for a message the destination answered before its end of data"
    );
    s.client.cmd("QUIT", BYE).await;
    s.ended().await;
}

// ---------------------------------------------------------------------------
// A resolver that fails mid-run

/// A [`TableResolver`] that can be switched to fail every lookup of some
/// record types with a given failure.
struct FlakyResolver {
    inner: TableResolver,
    /// (record types that fail, how).
    failing: Mutex<Option<(&'static [&'static str], FailureKind)>>,
}

impl FlakyResolver {
    fn set(&self, failing: Option<(&'static [&'static str], FailureKind)>) {
        *self.failing.lock().unwrap() = failing;
    }

    fn failure<T>(&self, name: &str, rtype: &'static str) -> Option<LookupResult<T>> {
        let f = self.failing.lock().unwrap();
        match &*f {
            Some((types, kind)) if types.contains(&rtype) => {
                Some(dns_failure(name, rtype, kind.clone()))
            }
            _ => None,
        }
    }
}

impl Resolver for FlakyResolver {
    fn mx<'a>(&'a self, name: &'a str) -> BoxFuture<'a, LookupResult<Mx>> {
        match self.failure(name, "MX") {
            Some(f) => Box::pin(async move { f }),
            None => self.inner.mx(name),
        }
    }

    fn ipv4<'a>(&'a self, name: &'a str) -> BoxFuture<'a, LookupResult<Ipv4Addr>> {
        match self.failure(name, "A") {
            Some(f) => Box::pin(async move { f }),
            None => self.inner.ipv4(name),
        }
    }

    fn ipv6<'a>(&'a self, name: &'a str) -> BoxFuture<'a, LookupResult<Ipv6Addr>> {
        match self.failure(name, "AAAA") {
            Some(f) => Box::pin(async move { f }),
            None => self.inner.ipv6(name),
        }
    }

    fn tlsa<'a>(&'a self, name: &'a str) -> BoxFuture<'a, LookupResult<Tlsa>> {
        match self.failure(name, "TLSA") {
            Some(f) => Box::pin(async move { f }),
            None => self.inner.tlsa(name),
        }
    }
}

#[tokio::test]
async fn resolver_failing_mid_run_defers_4_4_3_and_recovery_delivers() {
    let dest = FakeDest::start(DestScript::default()).await;
    let resolver = Arc::new(FlakyResolver {
        inner: TableResolver::new()
            .mx_records("example.test", &[(10, MX)], Security::Insecure)
            .host(MX, &[Ipv4Addr::LOCALHOST], Security::Insecure),
        failing: Mutex::new(None),
    });
    let r: Arc<dyn Resolver> = resolver.clone();
    let cfg = ConfigBuilder::new()
        .route("example.test", &format!("example.test:{}", dest.port()))
        .build();
    let ctx = Arc::new(Context::new(cfg, r));

    async fn attempt(ctx: &Arc<Context>, subject: &str) -> String {
        let mut s = start_session(ctx);
        let c = &mut s.client;
        c.hello(DEFAULT_MAX_SIZE).await;
        c.cmd("MAIL FROM:<sender@legacy.test>", MAIL_OK).await;
        c.send("RCPT TO:<rcpt@example.test>\r\n").await;
        let r = c.reply().await;
        if r == RCPT_OK {
            c.cmd("DATA", GO_AHEAD).await;
            c.send(format!("Subject: {subject}\r\n\r\nHello.\r\n.\r\n"))
                .await;
            let done = c.reply().await;
            c.cmd("QUIT", BYE).await;
            s.ended().await;
            return done;
        }
        // Nothing accepted: the DATA that a pipelining client sends anyway
        // is refused.
        c.cmd("DATA", "554 5.5.1 No valid recipients").await;
        c.cmd("QUIT", BYE).await;
        s.ended().await;
        r
    }

    assert_eq!(attempt(&ctx, "m1").await, "250 2.0.0 Ok: queued as Q1");
    let cases: [(&'static [&'static str], FailureKind, &str); 3] = [
        (
            &["MX"],
            FailureKind::ServFail,
            "451 4.4.3 MX lookup for example.test failed: server failure (SERVFAIL)",
        ),
        (
            &["MX"],
            FailureKind::Timeout,
            "451 4.4.3 MX lookup for example.test failed: timed out",
        ),
        (
            &["A", "AAAA"],
            FailureKind::ServFail,
            "451 4.4.3 no usable host for example.test: A lookup for mx.example.test failed: server failure (SERVFAIL)",
        ),
    ];
    for (types, kind, want) in cases {
        resolver.set(Some((types, kind)));
        assert_eq!(attempt(&ctx, "deferred").await, want);
    }
    resolver.set(None);
    assert_eq!(attempt(&ctx, "m2").await, "250 2.0.0 Ok: queued as Q2");

    let conns = dest.wait_closed(2).await;
    for (conn, subject) in conns.iter().zip(["m1", "m2"]) {
        assert_eq!(conn.messages.len(), 1);
        assert!(delivered(std::slice::from_ref(conn), subject));
    }
}
