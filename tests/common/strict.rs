//! A strict destination that logs every byte it receives and checks the
//! client's conversation against the protocol (RFC 5321, RFC 2920
//! pipelining, RFC 3030 BDAT), the way a careful real server would, and
//! answers each command as a script says.
//!
//! What it calls a violation is what cut-through.md forbids danegate to
//! do to a destination: a MAIL inside a transaction (a nested
//! transaction), bytes outside the DATA/BDAT framing that are not a
//! command, content or a command of one transaction carried into another.
//! Plaintext only (no STARTTLS): what it checks is the conversation, not
//! the TLS.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// What the destination does when a command needs an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Act {
    /// Answer this (lines separated by `\n`).
    Reply(String),
    /// Close the connection without answering.
    Close,
}

impl Act {
    pub fn reply(s: &str) -> Act {
        Act::Reply(s.to_owned())
    }
}

/// Where an answer is needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Point {
    /// A new connection: the greeting (anything but 220 ends it).
    Greeting,
    Mail,
    Rcpt,
    /// DATA with at least one accepted recipient.
    Data,
    /// The end of a message (the final dot, or BDAT LAST).
    EndOfData,
    /// A BDAT chunk that is not the last.
    Chunk,
}

/// Decides the answers; called in order for every answer needed.
pub type Script = Arc<dyn Fn(Point) -> Act + Send + Sync>;

/// The answers a well-behaved server gives.
pub fn polite(p: Point) -> Act {
    match p {
        Point::Greeting => Act::reply("220 strict.test ESMTP"),
        Point::Mail => Act::reply("250 2.1.0 Ok"),
        Point::Rcpt => Act::reply("250 2.1.5 Ok"),
        Point::Data => Act::reply("354 End data with <CR><LF>.<CR><LF>"),
        Point::EndOfData => Act::reply("250 2.0.0 Ok: queued"),
        Point::Chunk => Act::reply("250 2.0.0 chunk stored"),
    }
}

/// A script answering from a list (in order, then politely).
pub fn scripted(acts: Vec<(Point, Act)>) -> Script {
    let acts = Mutex::new(VecDeque::from(acts));
    Arc::new(move |p| {
        let mut acts = acts.lock().unwrap();
        match acts.front() {
            Some((q, _)) if *q == p => acts.pop_front().unwrap().1,
            _ => polite(p),
        }
    })
}

/// How a message reached the destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// The content, dot-stuffing removed (DATA) or the chunks joined
    /// (BDAT).
    pub content: Vec<u8>,
    /// The destination's answer to its end: positive or not.
    pub accepted: bool,
    /// The recipients accepted in its transaction.
    pub rcpts: Vec<String>,
}

/// One connection as the destination saw it.
#[derive(Debug, Clone, Default)]
pub struct StrictConn {
    /// Every byte received, in order.
    pub bytes: Vec<u8>,
    /// The same bytes as the reads that got them: what arrived together.
    pub reads: Vec<Vec<u8>>,
    /// Command lines, in order.
    pub commands: Vec<String>,
    pub violations: Vec<String>,
    /// Messages whose end arrived.
    pub messages: Vec<Delivered>,
    pub closed: bool,
}

/// Capabilities the destination announces.
#[derive(Debug, Clone, Copy)]
pub struct Caps {
    pub pipelining: bool,
    pub chunking: bool,
}

pub struct StrictDest {
    pub addr: SocketAddr,
    conns: Arc<Mutex<Vec<StrictConn>>>,
    task: JoinHandle<()>,
}

impl Drop for StrictDest {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl StrictDest {
    pub async fn start(caps: Caps, script: Script) -> StrictDest {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let conns: Arc<Mutex<Vec<StrictConn>>> = Arc::default();
        let c = conns.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let idx = {
                    let mut v = c.lock().unwrap();
                    v.push(StrictConn::default());
                    v.len() - 1
                };
                tokio::spawn(serve(tcp, idx, c.clone(), caps, script.clone()));
            }
        });
        StrictDest { addr, conns, task }
    }

    /// `[127.0.0.1]:PORT`, for a `[routes]` entry.
    pub fn route(&self) -> String {
        format!("[127.0.0.1]:{}", self.addr.port())
    }

    pub fn conns(&self) -> Vec<StrictConn> {
        self.conns.lock().unwrap().clone()
    }

    /// Every violation on every connection, tagged with its connection.
    pub fn violations(&self) -> Vec<String> {
        self.conns()
            .iter()
            .enumerate()
            .flat_map(|(i, c)| c.violations.iter().map(move |v| format!("conn {i}: {v}")))
            .collect()
    }

    /// Waits (bounded) until every connection is closed.
    pub async fn wait_all_closed(&self) -> Vec<StrictConn> {
        super::bounded("the strict destination's connections to close", async {
            loop {
                let conns = self.conns();
                if conns.iter().all(|c| c.closed) {
                    return conns;
                }
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        })
        .await
    }
}

struct Peer {
    tcp: TcpStream,
    buf: Vec<u8>,
    idx: usize,
    conns: Arc<Mutex<Vec<StrictConn>>>,
}

impl Peer {
    fn note(&self, f: impl FnOnce(&mut StrictConn)) {
        f(&mut self.conns.lock().unwrap()[self.idx]);
    }

    fn violation(&self, v: String) {
        self.note(|c| c.violations.push(v));
    }

    /// Reads more; false at the end.
    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 16 * 1024];
        match self.tcp.read(&mut chunk).await {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.note(|c| {
                    c.bytes.extend_from_slice(&chunk[..n]);
                    c.reads.push(chunk[..n].to_vec());
                });
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    /// The next line, which must end with CRLF.
    async fn line(&mut self) -> Option<String> {
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let raw: Vec<u8> = self.buf.drain(..=i).collect();
                if raw.len() < 2 || raw[raw.len() - 2] != b'\r' {
                    self.violation(format!(
                        "line without CRLF: {:?}",
                        String::from_utf8_lossy(&raw)
                    ));
                }
                let text = String::from_utf8_lossy(&raw).trim_end().to_owned();
                return Some(text);
            }
            if !self.fill().await {
                return None;
            }
        }
    }

    async fn exact(&mut self, n: usize) -> Option<Vec<u8>> {
        while self.buf.len() < n {
            if !self.fill().await {
                return None;
            }
        }
        Some(self.buf.drain(..n).collect())
    }

    /// Reads a DATA stream up to CRLF.CRLF; the content unstuffed.
    async fn data(&mut self) -> Option<Vec<u8>> {
        let mut content = Vec::new();
        loop {
            let line = loop {
                if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                    break self.buf.drain(..i + 2).collect::<Vec<u8>>();
                }
                if !self.fill().await {
                    return None;
                }
            };
            if line == b".\r\n" {
                return Some(content);
            }
            let line = line.strip_prefix(b".").unwrap_or(&line);
            content.extend_from_slice(line);
        }
    }

    async fn send(&mut self, act: &Act) -> bool {
        match act {
            Act::Close => false,
            Act::Reply(text) => {
                let mut out = Vec::new();
                for l in text.split('\n') {
                    out.extend_from_slice(l.as_bytes());
                    out.extend_from_slice(b"\r\n");
                }
                self.tcp.write_all(&out).await.is_ok()
            }
        }
    }
}

/// The transaction a strict server keeps.
#[derive(Default)]
struct Txn {
    open: bool,
    rcpts: Vec<String>,
    chunks: Vec<u8>,
}

fn positive(act: &Act, want: char) -> bool {
    matches!(act, Act::Reply(r) if r.starts_with(want))
}

async fn serve(
    tcp: TcpStream,
    idx: usize,
    conns: Arc<Mutex<Vec<StrictConn>>>,
    caps: Caps,
    script: Script,
) {
    let mut p = Peer {
        tcp,
        buf: Vec::new(),
        idx,
        conns,
    };
    let greeting = script(Point::Greeting);
    if p.send(&greeting).await && positive(&greeting, '2') {
        converse(&mut p, caps, &script).await;
    }
    p.note(|c| c.closed = true);
}

async fn converse(p: &mut Peer, caps: Caps, script: &Script) {
    let mut txn = Txn::default();
    while let Some(line) = p.line().await {
        p.note(|c| c.commands.push(line.clone()));
        let upper = line.to_ascii_uppercase();
        let verb = upper.split([' ', ':']).next().unwrap_or("").to_owned();
        let act = match verb.as_str() {
            "EHLO" => {
                txn = Txn::default();
                let mut r = "250-strict.test".to_owned();
                if caps.pipelining {
                    r.push_str("\n250-PIPELINING");
                }
                if caps.chunking {
                    r.push_str("\n250-CHUNKING");
                }
                r.push_str("\n250 8BITMIME");
                Act::Reply(r)
            }
            "MAIL" if txn.open => {
                p.violation(format!("nested MAIL: {line}"));
                Act::reply("503 5.5.1 Error: nested MAIL command")
            }
            "MAIL" => {
                let act = script(Point::Mail);
                txn.open = positive(&act, '2');
                act
            }
            "RCPT" if !txn.open => Act::reply("503 5.5.1 Error: need MAIL command"),
            "RCPT" => {
                let act = script(Point::Rcpt);
                if positive(&act, '2') {
                    txn.rcpts.push(line.clone());
                }
                act
            }
            "DATA" if !txn.open || txn.rcpts.is_empty() => {
                Act::reply("554 5.5.1 Error: no valid recipients")
            }
            "DATA" => {
                let act = script(Point::Data);
                if !positive(&act, '3') {
                    act
                } else if !p.send(&act).await {
                    return;
                } else {
                    let Some(content) = p.data().await else {
                        return;
                    };
                    end_of_message(p, script, &mut txn, content)
                }
            }
            "BDAT" => match bdat(p, &line, &upper, script, &mut txn).await {
                Some(act) => act,
                None => return,
            },
            "RSET" => {
                txn = Txn::default();
                Act::reply("250 2.0.0 Ok")
            }
            "NOOP" => Act::reply("250 2.0.0 Ok"),
            "QUIT" => {
                let _ = p.send(&Act::reply("221 2.0.0 Bye")).await;
                return;
            }
            _ => {
                p.violation(format!("not a command: {line:?}"));
                Act::reply("500 5.5.2 Error: command not recognized")
            }
        };
        if !p.send(&act).await {
            return;
        }
    }
}

/// A BDAT command and its chunk. None: the connection ends.
async fn bdat(
    p: &mut Peer,
    line: &str,
    upper: &str,
    script: &Script,
    txn: &mut Txn,
) -> Option<Act> {
    let mut words = upper.split_whitespace().skip(1);
    let size = words.next().and_then(|w| w.parse::<usize>().ok());
    let last = words.next() == Some("LAST");
    let Some(size) = size else {
        p.violation(format!("malformed BDAT: {line:?}"));
        return Some(Act::reply("501 5.5.4 Syntax: BDAT size [LAST]"));
    };
    let chunk = p.exact(size).await?;
    if !txn.open || txn.rcpts.is_empty() {
        return Some(Act::reply("503 5.5.1 Error: no valid recipients"));
    }
    txn.chunks.extend_from_slice(&chunk);
    if last {
        let content = std::mem::take(&mut txn.chunks);
        return Some(end_of_message(p, script, txn, content));
    }
    Some(script(Point::Chunk))
}

fn end_of_message(p: &Peer, script: &Script, txn: &mut Txn, content: Vec<u8>) -> Act {
    let act = script(Point::EndOfData);
    let rcpts = std::mem::take(&mut txn.rcpts);
    p.note(|c| {
        c.messages.push(Delivered {
            content,
            accepted: positive(&act, '2'),
            rcpts,
        })
    });
    *txn = Txn::default();
    act
}
