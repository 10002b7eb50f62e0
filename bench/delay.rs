//! The delay proxy: a destination at a chosen round-trip time on loopback.
//!
//! These machines have no `netem`, so the benchmark puts this proxy
//! between the relay under test (danegate or the Postfix relay) and the
//! TLS receiver. Each chunk read from one side is held for RTT/2 before it
//! is written to the other, in order, in both directions; the proxy does
//! not look into the bytes (TLS passes through untouched).
//!
//! The connection model: a user-space proxy cannot delay the client's TCP
//! handshake (the kernel completes it at once on loopback), so the proxy
//! charges it where the client notices it, in the wait for the greeting.
//! On a real path with round-trip time R, `connect()` returns after one R
//! (SYN, SYN-ACK); the server's `accept()` returns when the client's ACK
//! arrives, half an R later, and its greeting needs another half R to come
//! back: the client reads the greeting 2 R after it sent its SYN. The proxy
//! connects to the receiver 1.5 R after it accepted the client, and the
//! greeting then travels the delayed server-to-client direction (R/2): the
//! client reads it 2 R after it connected, as on a real path. What the
//! model does not reproduce: bytes a client sends before the greeting
//! (SMTP clients do not) wait for the upstream connection; bandwidth and
//! TCP windows are not modelled (only latency).
//!
//! Chunks go out when due by the precise [`Clock`] of `alarm.rs`; how late
//! they still go out is counted in [`LATENESS`] (the receiver's control
//! line shows it), so the benchmark can tell its own error from the
//! relay's.
//!
//! Bounded: at most [`IN_FLIGHT`] bytes held per direction per connection
//! (the reader waits for the writer: backpressure), at most
//! [`MAX_CONNECTIONS`] connections, every read bounded by [`IDLE`].
//! Loopback only: it refuses to listen on, or forward to, any other
//! address.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio::time::{timeout, Instant};

use crate::alarm::Clock;

/// Most bytes held (read, not yet written) per direction of one connection.
pub const IN_FLIGHT: usize = 1 << 20;
/// Largest single read, so a chunk never exceeds the in-flight cap.
const CHUNK: usize = 64 * 1024;
/// Most connections relayed at once; more wait in the listen queue.
pub const MAX_CONNECTIONS: usize = 4096;
/// A side silent this long ends the connection.
const IDLE: Duration = Duration::from_secs(600);

/// How late the proxy wrote its chunks, over every connection.
#[derive(Default)]
pub struct Lateness {
    /// Chunks written (ends of stream included).
    pub chunks: AtomicU64,
    /// Their lateness summed, in microseconds.
    pub late_us: AtomicU64,
    /// The latest one, in microseconds.
    pub max_us: AtomicU64,
}

pub static LATENESS: Lateness = Lateness {
    chunks: AtomicU64::new(0),
    late_us: AtomicU64::new(0),
    max_us: AtomicU64::new(0),
};

impl Lateness {
    fn record(&self, due: Instant) {
        let us = Instant::now().saturating_duration_since(due).as_micros() as u64;
        self.chunks.fetch_add(1, Relaxed);
        self.late_us.fetch_add(us, Relaxed);
        self.max_us.fetch_max(us, Relaxed);
    }
}

/// Why a proxy cannot be set up.
#[derive(Debug)]
pub enum SetupError {
    NotLoopback(SocketAddr),
    Bind(SocketAddr, io::Error),
}

impl std::fmt::Display for SetupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SetupError::NotLoopback(a) => {
                write!(f, "delay proxy: {a} is not a loopback address; refusing")
            }
            SetupError::Bind(a, e) => write!(f, "delay proxy: cannot listen on {a}: {e}"),
        }
    }
}

/// Listens on `listen` and relays every connection to `upstream` with
/// `rtt` added, until the runtime stops. Both addresses must be loopback.
pub async fn listen(
    listen: SocketAddr,
    upstream: SocketAddr,
    rtt: Duration,
    clock: Clock,
) -> Result<(), SetupError> {
    for a in [listen, upstream] {
        if !a.ip().is_loopback() {
            return Err(SetupError::NotLoopback(a));
        }
    }
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| SetupError::Bind(listen, e))?;
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    tokio::spawn(async move {
        loop {
            let Ok(permit) = slots.clone().acquire_owned().await else {
                return;
            };
            let (client, peer) = match listener.accept().await {
                Ok(c) => c,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            if !peer.ip().is_loopback() {
                continue;
            }
            let _ = client.set_nodelay(true);
            let clock = clock.clone();
            tokio::spawn(async move {
                let connect = async move {
                    let s = TcpStream::connect(upstream).await?;
                    s.set_nodelay(true)?;
                    Ok(s)
                };
                relay(client, connect, rtt, clock).await;
                drop(permit);
            });
        }
    });
    Ok(())
}

/// Relays one accepted client through `connect`'s stream with `rtt`
/// added: the connection is made 1.5 RTT after the accept, and each chunk
/// is delivered RTT/2 after it was read, in order. Returns when both
/// directions have ended (end of stream passed on, or an error).
pub async fn relay<C, U, F>(client: C, connect: F, rtt: Duration, clock: Clock)
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
    F: Future<Output = io::Result<U>>,
{
    let accepted = Instant::now();
    let half = rtt / 2;
    let (client_r, client_w) = tokio::io::split(client);
    let (up_tx, up_rx) = held();
    let (down_tx, down_rx) = held();
    let upward_reader = read_side(client_r, half, up_tx);
    let rest = async move {
        let clock = &clock;
        clock.until(accepted + rtt + half).await;
        let Ok(upstream) = connect.await else {
            // Nothing to relay to: the client sees the connection close.
            return;
        };
        let (up_r, up_w) = tokio::io::split(upstream);
        tokio::join!(
            write_side(up_rx, up_w, clock),
            read_side(up_r, half, down_tx),
            write_side(down_rx, client_w, clock),
        );
    };
    tokio::join!(upward_reader, rest);
}

/// A chunk and when it may be written; `None` data is the end of stream.
struct Held {
    due: Instant,
    data: Option<Vec<u8>>,
}

/// One direction's queue: chunks in order, bytes bounded by a semaphore.
struct Sender {
    tx: mpsc::UnboundedSender<Held>,
    room: Arc<Semaphore>,
}

struct Receiver {
    rx: mpsc::UnboundedReceiver<Held>,
    room: Arc<Semaphore>,
}

fn held() -> (Sender, Receiver) {
    let (tx, rx) = mpsc::unbounded_channel();
    let room = Arc::new(Semaphore::new(IN_FLIGHT));
    (
        Sender {
            tx,
            room: room.clone(),
        },
        Receiver { rx, room },
    )
}

/// Reads chunks while there is room for them and queues each with its
/// due time; the end of stream (or a read error) is queued last.
async fn read_side<R: AsyncRead + Unpin>(mut r: R, delay: Duration, side: Sender) {
    let mut buf = vec![0u8; CHUNK];
    loop {
        // Room for a whole chunk before reading: the cap is never exceeded.
        let Ok(permit) = side.room.acquire_many(CHUNK as u32).await else {
            return;
        };
        permit.forget();
        // Stops when the other side has gone (its writer failed).
        let n = tokio::select! {
            read = timeout(IDLE, r.read(&mut buf)) => match read {
                Ok(Ok(n)) => n,
                _ => 0,
            },
            () = side.tx.closed() => return,
        };
        side.room.add_permits(CHUNK - n);
        let data = (n > 0).then(|| buf[..n].to_vec());
        let end = data.is_none();
        let due = Instant::now() + delay;
        if side.tx.send(Held { due, data }).is_err() || end {
            return;
        }
    }
}

/// Writes each chunk when it is due, in order; passes the end of stream
/// on as a shutdown. A write error stops it (the reader then stops too).
async fn write_side<W: AsyncWrite + Unpin>(mut side: Receiver, mut w: W, clock: &Clock) {
    while let Some(h) = side.rx.recv().await {
        clock.until(h.due).await;
        LATENESS.record(h.due);
        let Some(data) = h.data else {
            let _ = w.shutdown().await;
            return;
        };
        if w.write_all(&data).await.is_err() || w.flush().await.is_err() {
            side.room.close();
            return;
        }
        side.room.add_permits(data.len());
    }
}

#[cfg(test)]
mod tests {
    //! Timing and order on tokio's paused clock (no real time passes).
    use super::*;
    use tokio::io::duplex;

    const RTT: Duration = Duration::from_millis(100);

    /// Reads exactly `n` bytes and returns them with the (virtual) time
    /// they had all arrived.
    async fn read_n<R: AsyncRead + Unpin>(r: &mut R, n: usize) -> (Vec<u8>, Instant) {
        let mut buf = vec![0u8; n];
        r.read_exact(&mut buf).await.expect("read");
        (buf, Instant::now())
    }

    #[tokio::test(start_paused = true)]
    async fn greeting_after_two_rtt_then_half_rtt_each_way_in_order() {
        let (mut client, proxy_client) = duplex(1 << 16);
        let (mut server, proxy_server) = duplex(1 << 16);
        let start = Instant::now();
        let connected = Arc::new(std::sync::Mutex::new(None));
        let c = connected.clone();
        let connect = async move {
            *c.lock().unwrap() = Some(Instant::now());
            Ok(proxy_server)
        };
        tokio::spawn(relay(proxy_client, connect, RTT, Clock::Tokio));

        // The server greets as soon as it is connected.
        server.write_all(b"220 hi\r\n").await.unwrap();
        let (g, at) = read_n(&mut client, 8).await;
        assert_eq!(g, b"220 hi\r\n");
        assert_eq!(connected.lock().unwrap().unwrap() - start, RTT * 3 / 2);
        assert_eq!(at - start, RTT * 2);

        // Two commands written back to back arrive RTT/2 later, in order.
        client.write_all(b"EHLO a\r\n").await.unwrap();
        client.write_all(b"NOOP\r\n").await.unwrap();
        let (cmds, at) = read_n(&mut server, 14).await;
        assert_eq!(cmds, b"EHLO a\r\nNOOP\r\n");
        assert_eq!(at - start, RTT * 5 / 2);

        // A reply needs another RTT/2: one round trip for the command.
        server.write_all(b"250 ok\r\n").await.unwrap();
        let (r, at) = read_n(&mut client, 8).await;
        assert_eq!(r, b"250 ok\r\n");
        assert_eq!(at - start, RTT * 3);
    }

    #[tokio::test(start_paused = true)]
    async fn chunks_keep_their_order_and_their_own_delay() {
        let (mut client, proxy_client) = duplex(1 << 16);
        let (mut server, proxy_server) = duplex(1 << 16);
        tokio::spawn(relay(
            proxy_client,
            async { Ok(proxy_server) },
            RTT,
            Clock::Tokio,
        ));
        let start = Instant::now();
        tokio::time::sleep(RTT * 2).await;
        // Sent 10 ms apart: each arrives RTT/2 after it was sent.
        for i in 0..5u8 {
            client.write_all(&[b'a' + i]).await.unwrap();
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        for i in 0..5u8 {
            let (b, at) = read_n(&mut server, 1).await;
            assert_eq!(b, [b'a' + i]);
            let sent = RTT * 2 + Duration::from_millis(10) * u32::from(i);
            assert_eq!(at - start, sent + RTT / 2, "chunk {i}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn end_of_stream_is_passed_on_after_the_delay() {
        let (mut client, proxy_client) = duplex(1 << 16);
        let (mut server, proxy_server) = duplex(1 << 16);
        let done = tokio::spawn(relay(
            proxy_client,
            async { Ok(proxy_server) },
            RTT,
            Clock::Tokio,
        ));
        tokio::time::sleep(RTT * 2).await;
        let start = Instant::now();
        client.write_all(b"QUIT\r\n").await.unwrap();
        client.shutdown().await.unwrap();
        let mut got = Vec::new();
        server.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"QUIT\r\n");
        assert_eq!(Instant::now() - start, RTT / 2);
        server.write_all(b"221 bye\r\n").await.unwrap();
        server.shutdown().await.unwrap();
        let mut got = Vec::new();
        client.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"221 bye\r\n");
        done.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_reader_holds_at_most_the_cap() {
        let (mut client, proxy_client) = duplex(1 << 16);
        // The upstream pipe holds little and nobody reads it.
        let (server, proxy_server) = duplex(1024);
        tokio::spawn(relay(
            proxy_client,
            async { Ok(proxy_server) },
            RTT,
            Clock::Tokio,
        ));
        let mut sent = 0usize;
        let block = vec![b'x'; 8192];
        // Write until the proxy stops taking bytes (virtual time runs on).
        while let Ok(Ok(())) = timeout(RTT * 10, client.write_all(&block)).await {
            sent += block.len();
            assert!(sent <= IN_FLIGHT + 1024 + (1 << 16) + block.len() * 2);
        }
        assert!(
            sent >= IN_FLIGHT,
            "the proxy should hold up to its cap: {sent}"
        );
        drop(server);
    }

    #[tokio::test]
    async fn refuses_addresses_off_loopback() {
        let lo: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let far: SocketAddr = "192.0.2.1:25".parse().unwrap();
        assert!(matches!(
            listen(far, lo, RTT, Clock::Tokio).await,
            Err(SetupError::NotLoopback(a)) if a == far
        ));
        assert!(matches!(
            listen(lo, far, RTT, Clock::Tokio).await,
            Err(SetupError::NotLoopback(a)) if a == far
        ));
    }
}
