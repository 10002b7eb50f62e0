//! The benchmark's legacy MTA (run by `bench/run`): S persistent plain SMTP
//! sessions to a relay, each sending messages back to back the way
//! Postfix, Exim and Sendmail deliver to a relayhost that offers
//! PIPELINING (RFC 2920): MAIL FROM, RCPT TO and DATA in one write, then,
//! after the 354, the content and the final dot in one write. It measures
//! what the legacy MTA sees: each message's latency from its MAIL FROM to
//! the reply to its final dot.
//!
//! A run has two phases. First every session sends one message: with no
//! connection to the destination cached at the relay, this is the cold
//! message (`first_ms`). When every session has had its reply, the timed
//! phase sends `--messages` more, the sessions taking the next message
//! from a shared count (as `smtp-source` does), on connections the relay
//! now keeps warm. `accept_*` is the rate at which the relay answered the
//! timed messages; with `--counter` (the receiver's control address) the
//! run also waits until the receiver has counted every message, for the
//! end-to-end rate of a store-and-forward relay (`e2e_*`: messages counted
//! at the receiver during the timed phase / its length). One JSON object
//! is printed on standard output.

#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::Barrier;
use tokio::time::{timeout, Instant};

/// How long any reply may take.
const REPLY_WAIT: Duration = Duration::from_secs(300);
/// Longest reply line read.
const MAX_LINE: usize = 4096;
/// How long the receiver may take to count every message after the last
/// reply (a store-and-forward relay still delivering its queue).
const DRAIN_WAIT: Duration = Duration::from_secs(600);

#[derive(Parser)]
#[command(about = "A legacy MTA for the benchmark: persistent pipelining sessions")]
struct Args {
    /// The relay, e.g. 127.0.26.2:25.
    #[arg(long)]
    server: SocketAddr,
    /// Concurrent sessions.
    #[arg(long, default_value_t = 1)]
    sessions: u64,
    /// Messages in the timed phase (after one first message per session).
    #[arg(long, default_value_t = 10)]
    messages: u64,
    /// Message size in bytes (headers included).
    #[arg(long, default_value_t = 10240)]
    size: usize,
    #[arg(long, default_value = "sender@legacy.bench.test")]
    from: String,
    #[arg(long)]
    to: String,
    #[arg(long, default_value = "legacy.bench.test")]
    helo: String,
    /// The receiver's control address (one line `messages=N ...` per
    /// connection): wait until it has counted every message.
    #[arg(long)]
    counter: Option<SocketAddr>,
}

/// What one session saw.
#[derive(Default)]
struct Seen {
    first_ms: Option<f64>,
    /// The first message's MAIL FROM to its reply: the first 250.
    first_250_ms: Option<f64>,
    lat_ms: Vec<f64>,
    failed: u64,
    error: Option<String>,
    /// QUIT to its 221.
    quit_ms: Option<f64>,
}

struct Shared {
    args: Args,
    /// Timed-phase messages not yet taken by a session.
    left: AtomicU64,
    /// Every session's first message answered.
    barrier: Barrier,
    /// Every session done with its timed messages.
    done: Barrier,
    /// When the last timed-phase reply arrived, in µs after `epoch`.
    last_reply_us: AtomicU64,
    epoch: Instant,
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = Args::parse();
    let base = match args.counter {
        Some(c) => Some(count(c).await.expect("read the receiver's counter")),
        None => None,
    };
    let s = args.sessions.max(1);
    let shared = Arc::new(Shared {
        left: AtomicU64::new(args.messages),
        barrier: Barrier::new(s as usize + 1),
        done: Barrier::new(s as usize + 1),
        last_reply_us: AtomicU64::new(0),
        epoch: Instant::now(),
        args,
    });
    let tasks: Vec<_> = (0..s)
        .map(|i| tokio::spawn(session(shared.clone(), i)))
        .collect();
    // Every session has had its first message answered (or failed).
    shared.barrier.wait().await;
    let t_timed = Instant::now();
    let at_barrier = match shared.args.counter {
        Some(c) => Some(count(c).await.expect("read the receiver's counter")),
        None => None,
    };
    // Every session has sent its last timed message (QUIT follows, and
    // is not part of the end-to-end time).
    shared.done.wait().await;
    let t_last = shared.epoch + Duration::from_micros(shared.last_reply_us.load(Relaxed));
    let accept_secs = (t_last.max(t_timed) - t_timed).as_secs_f64();
    let sent_total = s + shared.args.messages;
    let e2e = match (shared.args.counter, base, at_barrier) {
        (Some(c), Some(base), Some(at)) => Some(drain(c, base, at, sent_total, t_timed).await),
        _ => None,
    };
    let mut seen = Vec::new();
    for t in tasks {
        seen.push(t.await.expect("session task"));
    }
    println!("{}", report(&shared.args, &seen, accept_secs, e2e));
}

/// One session: connect, EHLO, the first message, the barrier, then
/// timed messages until none are left, the second barrier, QUIT.
async fn session(sh: Arc<Shared>, id: u64) -> Seen {
    let mut seen = Seen::default();
    let mut conn = match Conn::open(&sh.args).await {
        Ok(c) => Some(c),
        Err(e) => {
            seen.error = Some(e);
            None
        }
    };
    if let Some(c) = conn.as_mut() {
        match c.message(&sh.args, id, 0).await {
            Ok((ms, mail_ms)) => {
                seen.first_ms = Some(ms);
                seen.first_250_ms = Some(mail_ms);
            }
            Err(e) => {
                seen.failed += 1;
                seen.error = Some(e);
                conn = None;
            }
        }
    }
    sh.barrier.wait().await;
    if let Some(c) = conn.as_mut() {
        if let Err(e) = timed(&sh, c, id, &mut seen).await {
            seen.failed += 1;
            seen.error = Some(e);
            conn = None;
        }
    }
    sh.done.wait().await;
    if let Some(mut c) = conn {
        seen.quit_ms = c.quit().await;
    }
    seen
}

/// Timed messages until none are left (or one fails).
async fn timed(sh: &Shared, c: &mut Conn, id: u64, seen: &mut Seen) -> Result<(), String> {
    let mut n = 1;
    while sh
        .left
        .fetch_update(Relaxed, Relaxed, |v| v.checked_sub(1))
        .is_ok()
    {
        let (ms, _) = c.message(&sh.args, id, n).await?;
        seen.lat_ms.push(ms);
        let us = sh.epoch.elapsed().as_micros() as u64;
        sh.last_reply_us.fetch_max(us, Relaxed);
        n += 1;
    }
    Ok(())
}

struct Conn {
    r: BufReader<TcpStream>,
    pipelining: bool,
    line: Vec<u8>,
}

impl Conn {
    async fn open(a: &Args) -> Result<Conn, String> {
        let s = TcpStream::connect(a.server)
            .await
            .map_err(|e| format!("connect {}: {e}", a.server))?;
        s.set_nodelay(true).map_err(|e| e.to_string())?;
        let mut c = Conn {
            r: BufReader::new(s),
            pipelining: false,
            line: Vec::new(),
        };
        c.expect("greeting", b'2').await?;
        c.send(format!("EHLO {}\r\n", a.helo).as_bytes()).await?;
        let ehlo = c.expect("EHLO", b'2').await?;
        c.pipelining = ehlo.lines().any(|l| {
            l.get(4..)
                .is_some_and(|k| k.eq_ignore_ascii_case("PIPELINING"))
        });
        Ok(c)
    }

    /// Sends one message; its latency in ms, MAIL FROM to the final reply,
    /// and MAIL FROM to its own reply.
    async fn message(&mut self, a: &Args, session: u64, n: u64) -> Result<(f64, f64), String> {
        let start = Instant::now();
        let mail = format!("MAIL FROM:<{}>\r\n", a.from);
        let rcpt = format!("RCPT TO:<{}>\r\n", a.to);
        if self.pipelining {
            self.send(format!("{mail}{rcpt}DATA\r\n").as_bytes())
                .await?;
        } else {
            self.send(mail.as_bytes()).await?;
        }
        self.expect("MAIL FROM", b'2').await?;
        let mail_ms = ms_since(start);
        if !self.pipelining {
            self.send(rcpt.as_bytes()).await?;
        }
        self.expect("RCPT TO", b'2').await?;
        if !self.pipelining {
            self.send(b"DATA\r\n").await?;
        }
        self.expect("DATA", b'3').await?;
        self.send(&content(a, session, n)).await?;
        self.expect("end of data", b'2').await?;
        Ok((ms_since(start), mail_ms))
    }

    /// Says QUIT; how long its 221 took, if it came.
    async fn quit(&mut self) -> Option<f64> {
        let start = Instant::now();
        self.send(b"QUIT\r\n").await.ok()?;
        self.expect("QUIT", b'2').await.ok()?;
        Some(ms_since(start))
    }

    async fn send(&mut self, bytes: &[u8]) -> Result<(), String> {
        let w = self.r.get_mut();
        w.write_all(bytes).await.map_err(|e| format!("write: {e}"))
    }

    /// Reads one (multi-line) reply; an error unless it starts with `class`.
    async fn expect(&mut self, what: &str, class: u8) -> Result<String, String> {
        let mut reply = String::new();
        loop {
            self.line.clear();
            let mut limited = (&mut self.r).take(MAX_LINE as u64);
            let read = limited.read_until(b'\n', &mut self.line);
            match timeout(REPLY_WAIT, read).await {
                Err(_) => return Err(format!("no reply to {what} in {REPLY_WAIT:?}")),
                Ok(Err(e)) => return Err(format!("reading the reply to {what}: {e}")),
                Ok(Ok(0)) => return Err(format!("connection closed before the reply to {what}")),
                Ok(Ok(_)) => {}
            }
            let text = String::from_utf8_lossy(&self.line);
            reply.push_str(text.trim_end());
            reply.push('\n');
            if self.line.get(3) != Some(&b'-') {
                break;
            }
        }
        if reply.as_bytes().first() == Some(&class) {
            Ok(reply)
        } else {
            Err(format!("{what}: {}", reply.trim_end()))
        }
    }
}

fn ms_since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

/// A message of `a.size` bytes (headers, then 78-byte lines), with the
/// final dot; no line starts with a dot.
fn content(a: &Args, session: u64, n: u64) -> Vec<u8> {
    let mut m = format!(
        "From: <{}>\r\nTo: <{}>\r\nSubject: benchmark message {session}.{n}\r\n\
         Message-ID: <bench-{}-{session}-{n}@{}>\r\n\r\n",
        a.from,
        a.to,
        std::process::id(),
        a.helo
    )
    .into_bytes();
    let line = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcd\r\n";
    while m.len() + line.len() <= a.size {
        m.extend_from_slice(line);
    }
    let rest = a.size.saturating_sub(m.len() + 2);
    if rest > 0 {
        m.extend_from_slice(&line[..rest]);
        m.extend_from_slice(b"\r\n");
    }
    m.extend_from_slice(b".\r\n");
    m
}

/// The receiver's counters: messages, and the delay proxies' chunks and
/// their summed lateness (µs).
#[derive(Clone, Copy, Default)]
struct Count {
    messages: u64,
    chunks: u64,
    late_us: u64,
}

async fn count(addr: SocketAddr) -> Result<Count, String> {
    let mut s = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let mut line = String::new();
    timeout(Duration::from_secs(10), s.read_to_string(&mut line))
        .await
        .map_err(|_| "the counter did not answer".to_string())?
        .map_err(|e| e.to_string())?;
    let field = |key: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
            .and_then(|n| n.parse::<u64>().ok())
    };
    Ok(Count {
        messages: field("messages").ok_or_else(|| format!("no messages= in {line:?}"))?,
        chunks: field("proxy_chunks").unwrap_or(0),
        late_us: field("proxy_late_us").unwrap_or(0),
    })
}

/// What the receiver counted in the timed phase.
struct Drained {
    messages: u64,
    secs: f64,
    /// The delay proxies' mean lateness per chunk, in µs.
    late_us: Option<f64>,
}

/// Waits until the receiver has counted every message sent (`total`
/// after `base`); the messages it counted after `at` (the start of the
/// timed phase, `t_timed`) and the seconds that took.
async fn drain(c: SocketAddr, base: Count, at: Count, total: u64, t_timed: Instant) -> Drained {
    let deadline = Instant::now() + DRAIN_WAIT;
    let mut now = count(c).await.unwrap_or(at);
    while now.messages < base.messages + total && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(1)).await;
        now = count(c).await.unwrap_or(now);
    }
    let secs = t_timed.elapsed().as_secs_f64();
    let chunks = now.chunks.saturating_sub(at.chunks);
    Drained {
        messages: now.messages - at.messages,
        secs,
        late_us: (chunks > 0)
            .then(|| now.late_us.saturating_sub(at.late_us) as f64 / chunks as f64),
    }
}

/// Nearest-rank percentile.
fn pctl(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    Some(sorted[i])
}

fn report(a: &Args, seen: &[Seen], accept_secs: f64, e2e: Option<Drained>) -> String {
    let mut lat: Vec<f64> = seen.iter().flat_map(|s| s.lat_ms.iter().copied()).collect();
    lat.sort_by(|x, y| x.total_cmp(y));
    let first: Vec<f64> = seen.iter().filter_map(|s| s.first_ms).collect();
    let first_250: Vec<f64> = seen.iter().filter_map(|s| s.first_250_ms).collect();
    let mut first_sorted = first.clone();
    first_sorted.sort_by(|x, y| x.total_cmp(y));
    let failed: u64 = seen.iter().map(|s| s.failed).sum();
    let mut quit: Vec<f64> = seen.iter().filter_map(|s| s.quit_ms).collect();
    quit.sort_by(|x, y| x.total_cmp(y));
    let errors: Vec<&str> = seen
        .iter()
        .filter_map(|s| s.error.as_deref())
        .take(5)
        .collect();
    let rate = |n: u64, secs: f64| if secs > 0.0 { n as f64 / secs } else { 0.0 };
    let mut v = serde_json::json!({
        "sessions": a.sessions,
        "messages": a.messages,
        "size": a.size,
        "ok": first.len() + lat.len(),
        "failed": failed,
        "errors": errors,
        "first_ms": first,
        "first_p50_ms": pctl(&first_sorted, 0.5),
        "first_250_ms": first_250,
        "lat_p50_ms": pctl(&lat, 0.5),
        "lat_p99_ms": pctl(&lat, 0.99),
        "lat_mean_ms": if lat.is_empty() { None } else { Some(lat.iter().sum::<f64>() / lat.len() as f64) },
        "quit_p50_ms": pctl(&quit, 0.5),
        "quit_max_ms": quit.last(),
        "accept_secs": accept_secs,
        "accept_rate": rate(lat.len() as u64, accept_secs),
    });
    if let Some(d) = e2e {
        v["e2e_msgs"] = d.messages.into();
        v["e2e_secs"] = d.secs.into();
        v["e2e_rate"] = rate(d.messages, d.secs).into();
        v["proxy_late_mean_us"] = d.late_us.into();
    }
    v.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(size: usize) -> Args {
        Args::parse_from([
            "benchload",
            "--server",
            "127.0.0.1:25",
            "--to",
            "user@rtt50.secure.test",
            "--size",
            &size.to_string(),
        ])
    }

    #[test]
    fn content_has_the_size_asked_and_ends_with_the_dot() {
        for size in [0, 200, 1024, 10240, 10241, 102400] {
            let c = content(&args(size), 3, 7);
            let body = &c[..c.len() - 3];
            assert_eq!(&c[c.len() - 3..], b".\r\n");
            assert!(body.ends_with(b"\r\n"));
            if size >= 200 {
                assert_eq!(body.len(), size, "size {size}");
            }
            assert!(!body.windows(3).any(|w| w == b"\n.\r" || w == b"\n.."));
            assert!(body.split(|b| *b == b'\n').all(|l| l.len() <= 1000));
        }
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(pctl(&v, 0.5), Some(50.0));
        assert_eq!(pctl(&v, 0.99), Some(99.0));
        assert_eq!(pctl(&[7.0], 0.99), Some(7.0));
        assert_eq!(pctl(&[], 0.5), None);
    }
}
