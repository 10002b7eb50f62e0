//! A resolver that can fail on command: a UDP proxy on [`FAULTY`] that
//! hands each query to the validating unbound and its answer back
//! ([`DnsFault::None`]), or stops answering at all ([`DnsFault::Silent`]:
//! a resolver that died or a path that drops packets), or answers every
//! query with SERVFAIL ([`DnsFault::Servfail`]: a resolver whose upstream
//! is unreachable). The fault run (`faultrun.rs`) switches it while mail
//! flows; danegate must then defer (4.4.3), never deliver without the
//! protection the DNS would have required.
//!
//! UDP only (the lab's answers are small: ECDSA keys); each query is
//! forwarded from a thread of its own so that one slow lookup does not
//! hold up the others. It counts what it did, and stops when dropped.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use hickory_resolver::proto::op::{Message, ResponseCode};

use crate::lab::VALIDATING;

/// Where the faulty resolver listens.
pub const FAULTY: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(127, 0, 53, 56), 53));

/// What the proxy does with a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DnsFault {
    /// Forwards it and passes the answer on unchanged.
    None = 0,
    /// Drops it: no answer ever comes.
    Silent = 1,
    /// Answers SERVFAIL at once.
    Servfail = 2,
}

/// How many queries each mode handled.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DnsCounts {
    pub forwarded: u64,
    pub dropped: u64,
    pub servfailed: u64,
}

#[derive(Default)]
struct Shared {
    mode: AtomicU8,
    stop: AtomicBool,
    forwarded: AtomicU64,
    dropped: AtomicU64,
    servfailed: AtomicU64,
}

pub struct FaultyResolver {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl FaultyResolver {
    /// Starts forwarding faithfully ([`DnsFault::None`]).
    pub fn start() -> FaultyResolver {
        let socket = UdpSocket::bind(FAULTY)
            .unwrap_or_else(|e| panic!("bind the faulty resolver to {FAULTY}: {e}"));
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("set read timeout");
        let socket = Arc::new(socket);
        let shared = Arc::new(Shared::default());
        let s = shared.clone();
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while !s.stop.load(Relaxed) {
                let Ok((n, client)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                let query = buf[..n].to_vec();
                match s.mode.load(Relaxed) {
                    1 => {
                        s.dropped.fetch_add(1, Relaxed);
                    }
                    2 => {
                        s.servfailed.fetch_add(1, Relaxed);
                        if let Some(answer) = servfail(&query) {
                            let _ = socket.send_to(&answer, client);
                        }
                    }
                    _ => {
                        s.forwarded.fetch_add(1, Relaxed);
                        let socket = socket.clone();
                        std::thread::spawn(move || {
                            if let Some(answer) = forward(&query) {
                                let _ = socket.send_to(&answer, client);
                            }
                        });
                    }
                }
            }
        });
        FaultyResolver {
            shared,
            thread: Some(thread),
        }
    }

    pub fn set(&self, fault: DnsFault) {
        self.shared.mode.store(fault as u8, Relaxed);
    }

    pub fn counts(&self) -> DnsCounts {
        DnsCounts {
            forwarded: self.shared.forwarded.load(Relaxed),
            dropped: self.shared.dropped.load(Relaxed),
            servfailed: self.shared.servfailed.load(Relaxed),
        }
    }
}

/// Asks the validating unbound; returns its answer as it is.
fn forward(query: &[u8]) -> Option<Vec<u8>> {
    let upstream = UdpSocket::bind("127.0.0.1:0").ok()?;
    upstream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .ok()?;
    upstream.send_to(query, VALIDATING).ok()?;
    let mut buf = [0u8; 4096];
    let n = upstream.recv(&mut buf).ok()?;
    Some(buf[..n].to_vec())
}

/// SERVFAIL for `query`, its question echoed.
fn servfail(query: &[u8]) -> Option<Vec<u8>> {
    let q = Message::from_vec(query).ok()?;
    let mut answer = Message::error_msg(q.metadata.id, q.metadata.op_code, ResponseCode::ServFail);
    answer.metadata.recursion_desired = q.metadata.recursion_desired;
    answer.metadata.recursion_available = true;
    answer.metadata.checking_disabled = q.metadata.checking_disabled;
    answer.add_queries(q.queries.iter().cloned());
    answer.to_vec().ok()
}

impl Drop for FaultyResolver {
    fn drop(&mut self) {
        self.shared.stop.store(true, Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
