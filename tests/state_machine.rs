//! The cut-through transaction under random input (proptest): random
//! sessions of a legacy MTA (commands one at a time and in pipelined
//! groups, DATA and BDAT and RSET mixed, oversize chunks, garbage,
//! abrupt EOF, several sessions sharing cached connections) through a real
//! danegate server to a strict, byte-logging destination that answers at
//! random (accepts, refuses, replies of the wrong class, closes).
//!
//! After every run:
//! - the destination saw no MAIL inside a transaction and no bytes outside
//!   the DATA/BDAT framing;
//! - every message whose end reached the destination is one whose end the
//!   legacy MTA sent, with the same content (no end of data the legacy MTA
//!   did not send);
//! - the messages the legacy MTA got 2xx for are exactly those the
//!   destination accepted (no success the destination did not give);
//! - every reply to the legacy MTA is well-formed, with an enhanced status
//!   code of the right class where one is due;
//! - nothing panicked, and `sessions_active` is back to 0.
//!
//! `PROPTEST_CASES` sets the number of runs (256 by default).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::strict::{Act, Caps, Point, Script, StrictDest};
use common::*;
use danegate::server::Server;
use proptest::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const MAX_SIZE: u64 = 2_000;
const DOMAINS: [&str; 3] = ["example.test", "other.test", "unrouted.test"];

/// One thing the legacy MTA does.
#[derive(Debug, Clone)]
enum Step {
    Ehlo,
    Helo,
    Mail(u8),
    Rcpt {
        domain: usize,
        user: u8,
    },
    /// DATA, then the content lines; `end`: the final dot follows,
    /// otherwise the client vanishes inside the content.
    Data {
        lines: Vec<String>,
        end: bool,
    },
    /// One BDAT chunk of whole lines.
    Bdat {
        lines: Vec<String>,
        last: bool,
    },
    /// A chunk declaring more octets than the limit allows.
    BigBdat {
        last: bool,
    },
    /// A whole, well-formed transaction as a legacy MTA sends it: MAIL,
    /// the recipients and DATA (pipelined in one group, or one at a
    /// time), then the content; or the content as one BDAT LAST.
    Message {
        domain: usize,
        rcpts: u8,
        lines: Vec<String>,
        pipelined: bool,
        bdat: bool,
    },
    Rset,
    Noop,
    Quit,
    Garbage(String),
    /// MAIL/RCPT/RSET/NOOP written at once (RFC 2920), DATA last when
    /// given (with the content that follows a 354).
    Group(Vec<Step>, Option<Vec<String>>),
    Eof,
}

fn line() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9 ]{0,40}",
        Just(".".to_owned()),
        Just("..".to_owned()),
        Just(".hidden dot".to_owned()),
        Just(String::new()),
        "[.]{1,3}[a-z]{0,5}",
    ]
}

fn lines() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(line(), 0..12)
}

fn simple() -> impl Strategy<Value = Step> {
    prop_oneof![
        any::<u8>().prop_map(Step::Mail),
        (0..DOMAINS.len(), any::<u8>()).prop_map(|(domain, user)| Step::Rcpt { domain, user }),
        Just(Step::Rset),
        Just(Step::Noop),
    ]
}

fn message() -> impl Strategy<Value = Step> {
    (
        prop_oneof![4 => Just(0usize), 1 => 1..DOMAINS.len()],
        1u8..4,
        lines(),
        any::<bool>(),
        prop::bool::weighted(0.2),
    )
        .prop_map(|(domain, rcpts, lines, pipelined, bdat)| Step::Message {
            domain,
            rcpts,
            lines,
            pipelined,
            bdat,
        })
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        12 => message(),
        1 => Just(Step::Ehlo),
        1 => Just(Step::Helo),
        4 => any::<u8>().prop_map(Step::Mail),
        6 => (0..DOMAINS.len(), any::<u8>()).prop_map(|(domain, user)| Step::Rcpt { domain, user }),
        4 => (lines(), prop::bool::weighted(0.9)).prop_map(|(lines, end)| Step::Data { lines, end }),
        3 => (lines(), any::<bool>()).prop_map(|(lines, last)| Step::Bdat { lines, last }),
        1 => any::<bool>().prop_map(|last| Step::BigBdat { last }),
        2 => Just(Step::Rset),
        1 => Just(Step::Noop),
        1 => Just(Step::Quit),
        1 => "[A-Z]{1,6}( [a-z:<>@.]{0,20})?".prop_map(Step::Garbage),
        3 => (prop::collection::vec(simple(), 2..6), prop::option::of(lines()))
            .prop_map(|(steps, data)| Step::Group(steps, data)),
        1 => Just(Step::Eof),
    ]
}

fn session() -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec(step(), 1..14)
}

fn act(point: Point, pick: u8) -> Act {
    let (ok, wrong) = match point {
        Point::Greeting => ("220 strict.test ESMTP", "250 hello"),
        Point::Mail => ("250 2.1.0 Ok", "354 not now"),
        Point::Rcpt => ("250 2.1.5 Ok", "354 go ahead"),
        Point::Data => ("354 go ahead", "250 2.0.0 Ok"),
        Point::EndOfData => ("250 2.0.0 Ok: queued", "354 more?"),
        Point::Chunk => ("250 2.0.0 chunk", "334 what"),
    };
    // Mostly success, so that whole transactions (and reused
    // connections) are common; every kind of trouble still comes up.
    match pick % 32 {
        0 => Act::reply("451 4.3.0 try later"),
        1 => Act::reply("550 5.7.1 no"),
        2 => Act::reply(wrong),
        3 => Act::reply("421 4.4.2 closing"),
        4 => Act::Close,
        5 if point == Point::EndOfData => Act::reply("250 2.0.0 ONE\n250 2.0.0 TWO"),
        _ => Act::reply(ok),
    }
}

/// A destination script answering from `picks` in turn.
fn script(picks: Vec<u8>) -> Script {
    let n = Mutex::new(0usize);
    Arc::new(move |p| {
        let mut i = n.lock().unwrap();
        let pick = picks.get(*i % picks.len().max(1)).copied().unwrap_or(9);
        *i += 1;
        act(p, pick)
    })
}

/// What the legacy MTA observed.
#[derive(Default, Debug)]
struct Legacy {
    /// Contents of messages whose end it sent.
    completed: Vec<Vec<u8>>,
    /// Contents of messages it got 2xx for at their end.
    accepted: Vec<Vec<u8>>,
    /// Every reply, as received.
    replies: Vec<String>,
}

/// The content as the destination will have it: CRLF lines.
fn content(lines: &[String]) -> Vec<u8> {
    lines
        .iter()
        .flat_map(|l| format!("{l}\r\n").into_bytes())
        .collect()
}

fn stuffed(lines: &[String]) -> Vec<u8> {
    lines
        .iter()
        .flat_map(|l| {
            let dot = if l.starts_with('.') { "." } else { "" };
            format!("{dot}{l}\r\n").into_bytes()
        })
        .collect()
}

struct Client {
    c: SmtpClient<TcpStream>,
    /// BDAT content since the transaction began.
    chunks: Vec<u8>,
    legacy: Arc<Mutex<Legacy>>,
}

impl Client {
    /// One reply; None when the connection is gone.
    async fn reply(&mut self) -> Option<String> {
        match self.c.reply_within(Duration::from_secs(15)).await {
            Ok(r) => {
                self.legacy.lock().unwrap().replies.push(r.clone());
                Some(r)
            }
            Err(NoReply::Closed { .. }) => None,
            Err(e) => panic!("no reply within 15 s: {e:?}"),
        }
    }

    /// Sends and reads `n` replies; false when the session is over.
    async fn exchange(&mut self, bytes: &[u8], n: usize) -> Option<Vec<String>> {
        self.c.send(bytes).await;
        let mut out = Vec::new();
        for _ in 0..n {
            let r = self.reply().await?;
            let closing = r.starts_with("421") || r.starts_with("221");
            out.push(r);
            if closing {
                return None;
            }
        }
        Some(out)
    }

    fn line(step: &Step) -> String {
        match step {
            Step::Mail(n) => format!("MAIL FROM:<s{n}@legacy.test>\r\n"),
            Step::Rcpt { domain, user } => format!("RCPT TO:<u{user}@{}>\r\n", DOMAINS[*domain]),
            Step::Rset => "RSET\r\n".into(),
            Step::Noop => "NOOP\r\n".into(),
            Step::Ehlo => "EHLO legacy.test\r\n".into(),
            Step::Helo => "HELO legacy.test\r\n".into(),
            Step::Quit => "QUIT\r\n".into(),
            Step::Garbage(g) => format!("{g}\r\n"),
            _ => String::new(),
        }
    }

    /// Runs one step; false when the session is over.
    async fn step(&mut self, step: &Step) -> bool {
        match step {
            Step::Data { lines, end } => self.data(lines, *end).await,
            Step::Bdat { lines, last } => {
                let body = content(lines);
                self.bdat(&body, body.len() as u64, *last).await
            }
            Step::BigBdat { last } => {
                let body = vec![b'x'; MAX_SIZE as usize + 10];
                self.bdat(&body, body.len() as u64, *last).await
            }
            Step::Group(steps, data) => {
                let mut bytes: String = steps.iter().map(Self::line).collect();
                let n = steps.len() + usize::from(data.is_some());
                if data.is_some() {
                    bytes.push_str("DATA\r\n");
                }
                let Some(replies) = self.exchange(bytes.as_bytes(), n).await else {
                    return false;
                };
                for (s, r) in steps.iter().zip(&replies) {
                    self.note(s, r);
                }
                match data {
                    Some(lines) => self.content(&replies[n - 1], lines, true).await,
                    None => true,
                }
            }
            Step::Message {
                domain,
                rcpts,
                lines,
                pipelined,
                bdat,
            } => {
                self.message(*domain, *rcpts, lines, *pipelined, *bdat)
                    .await
            }
            Step::Eof => false,
            other => {
                let Some(r) = self.exchange(Self::line(other).as_bytes(), 1).await else {
                    return false;
                };
                self.note(other, &r[0]);
                !matches!(other, Step::Quit)
            }
        }
    }

    async fn message(
        &mut self,
        domain: usize,
        rcpts: u8,
        lines: &[String],
        pipelined: bool,
        bdat: bool,
    ) -> bool {
        let mut envelope = vec![Step::Mail(0)];
        envelope.extend((0..rcpts).map(|user| Step::Rcpt { domain, user }));
        if bdat {
            let group = Step::Group(envelope, None);
            if !Box::pin(self.step(&group)).await {
                return false;
            }
            let body = content(lines);
            return self.bdat(&body, body.len() as u64, true).await;
        }
        if pipelined {
            return Box::pin(self.step(&Step::Group(envelope, Some(lines.to_vec())))).await;
        }
        for s in &envelope {
            if !Box::pin(self.step(s)).await {
                return false;
            }
        }
        self.data(lines, true).await
    }

    /// What a reply means for the BDAT content kept here.
    fn note(&mut self, step: &Step, reply: &str) {
        match step {
            Step::Mail(_) if reply.starts_with("250") => self.chunks.clear(),
            Step::Rset | Step::Ehlo | Step::Helo => self.chunks.clear(),
            _ => {}
        }
    }

    async fn data(&mut self, lines: &[String], end: bool) -> bool {
        let Some(r) = self.exchange(b"DATA\r\n", 1).await else {
            return false;
        };
        self.content(&r[0], lines, end).await
    }

    /// After the reply to DATA: the content when it is 354.
    async fn content(&mut self, reply: &str, lines: &[String], end: bool) -> bool {
        if !reply.starts_with("354") {
            // A refused DATA leaves the transaction (and BDAT content
            // already sent) as it was.
            return true;
        }
        self.chunks.clear();
        self.c.send(stuffed(lines)).await;
        if !end {
            return false;
        }
        self.legacy.lock().unwrap().completed.push(content(lines));
        let Some(r) = self.exchange(b".\r\n", 1).await else {
            return false;
        };
        if r[0].starts_with('2') {
            self.legacy.lock().unwrap().accepted.push(content(lines));
        }
        true
    }

    async fn bdat(&mut self, body: &[u8], size: u64, last: bool) -> bool {
        let mut bytes = format!("BDAT {size}{}\r\n", if last { " LAST" } else { "" }).into_bytes();
        bytes.extend_from_slice(body);
        self.chunks.extend_from_slice(body);
        if last {
            self.legacy
                .lock()
                .unwrap()
                .completed
                .push(self.chunks.clone());
        }
        let Some(r) = self.exchange(&bytes, 1).await else {
            return false;
        };
        if last {
            if r[0].starts_with('2') {
                self.legacy
                    .lock()
                    .unwrap()
                    .accepted
                    .push(self.chunks.clone());
            }
            self.chunks.clear();
        }
        true
    }
}

/// Checks one reply to the legacy MTA.
fn well_formed(r: &str) -> Result<(), String> {
    let first = r.lines().next().unwrap_or("");
    let code: u16 = first
        .get(..3)
        .and_then(|c| c.parse().ok())
        .ok_or(format!("no code: {r:?}"))?;
    if !(200..600).contains(&code) {
        return Err(format!("code out of range: {r:?}"));
    }
    for l in r.lines() {
        if l.get(..3) != Some(&first[..3]) || l.bytes().any(|b| b < 0x20 && b != b'\t') {
            return Err(format!("malformed line {l:?} in {r:?}"));
        }
    }
    // The greeting, EHLO/HELO and 354 carry no enhanced code; every other
    // reply does, of the reply's class.
    let exempt = code == 220
        || code == 354
        || (code == 250 && (r.contains(" greets ") || r == "250 relay.example.net"));
    if exempt {
        return Ok(());
    }
    let ec = first.get(4..).unwrap_or("").split(' ').next().unwrap_or("");
    let parts: Vec<&str> = ec.split('.').collect();
    let ok = parts.len() == 3
        && parts[0] == (code / 100).to_string()
        && parts[1..]
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()));
    if ok {
        Ok(())
    } else {
        Err(format!("no enhanced code of class {}: {r:?}", code / 100))
    }
}

static PANICS: AtomicUsize = AtomicUsize::new(0);

fn count_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, Ordering::SeqCst);
            previous(info);
        }));
    });
}

async fn run(sessions: Vec<Vec<Step>>, caps: Caps, picks: Vec<u8>) -> Result<(), String> {
    let dest = StrictDest::start(caps, script(picks)).await;
    let ctx = ConfigBuilder::new()
        .server("max_message_size", &MAX_SIZE.to_string())
        .route(DOMAINS[0], &dest.route())
        .route(DOMAINS[1], &dest.route())
        .timeout("connection_cache", 5)
        .context(&Arc::new(TableResolver::new()));
    let server = Server::bind(ctx).await.map_err(|e| e.to_string())?;
    let addr = server.local_addrs()[0];
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    let legacy = Arc::new(Mutex::new(Legacy::default()));
    for steps in &sessions {
        let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let mut c = Client {
            c: SmtpClient::new(tcp),
            chunks: Vec::new(),
            legacy: legacy.clone(),
        };
        c.reply().await.ok_or("no greeting")?;
        let mut open = true;
        for s in steps {
            if !c.step(s).await {
                open = false;
                break;
            }
        }
        if open {
            c.exchange(b"QUIT\r\n", 1).await;
        }
        // Reads what is left, so the session has ended before the next.
        let mut io = c.c.into_inner();
        let _ = io.shutdown().await;
        let mut sink = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(15), io.read_to_end(&mut sink)).await;
    }
    let _ = stop.send(());
    bounded("the server to stop", task)
        .await
        .map_err(|e| e.to_string())?;
    let conns = dest.wait_all_closed().await;

    let violations = dest.violations();
    if !violations.is_empty() {
        return Err(format!("destination violations: {violations:?}"));
    }
    let legacy = legacy.lock().unwrap();
    let mut reached: Vec<Vec<u8>> = Vec::new();
    let mut accepted: Vec<Vec<u8>> = Vec::new();
    for m in conns.iter().flat_map(|c| &c.messages) {
        reached.push(m.content.clone());
        if m.accepted {
            accepted.push(m.content.clone());
        }
    }
    for m in &reached {
        if !legacy.completed.contains(m) {
            return Err(format!(
                "the destination got the end of a message the client never ended: {:?}",
                String::from_utf8_lossy(m)
            ));
        }
    }
    let mut want = legacy.accepted.clone();
    want.sort();
    accepted.sort();
    if want != accepted {
        return Err(format!(
            "client got 2xx for {} messages, the destination accepted {}",
            want.len(),
            accepted.len()
        ));
    }
    for r in &legacy.replies {
        well_formed(r)?;
        if r.contains("Local error in processing") {
            return Err(format!("a reply was left unknown (a bug): {r}"));
        }
    }
    Ok(())
}

fn caps() -> impl Strategy<Value = Caps> {
    (any::<bool>(), any::<bool>()).prop_map(|(pipelining, chunking)| Caps {
        pipelining,
        chunking,
    })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256),
        failure_persistence: None,
        .. ProptestConfig::default()
    })]

    #[test]
    fn random_sessions_keep_the_transaction_one_transaction(
        sessions in prop::collection::vec(session(), 1..4),
        caps in caps(),
        picks in prop::collection::vec(any::<u8>(), 1..40),
    ) {
        count_panics();
        let before = PANICS.load(Ordering::SeqCst);
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let result = rt.block_on(run(sessions, caps, picks));
        drop(rt);
        prop_assert_eq!(PANICS.load(Ordering::SeqCst), before, "a panic happened");
        prop_assert_eq!(danegate::metrics::global().sessions_active.get(), 0);
        prop_assert!(result.is_ok(), "{}", result.unwrap_err());
    }
}
