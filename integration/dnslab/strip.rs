//! A resolver that strips DNSSEC: a UDP proxy on [`STRIPPING`] that hands
//! each query to the non-validating unbound and removes every DNSSEC
//! record (RRSIG, NSEC, NSEC3, DS...) from the answer that the query did not
//! ask for, and the AD flag; what a DNSSEC-unaware resolver or middlebox
//! hands on. Behind it no answer can be validated, so danegate's start-up
//! probe must notice in `validate` mode as well.
//!
//! It parses messages with the DNS library danegate already depends on
//! (through `hickory_resolver::proto`). UDP only: stripped answers are
//! small. It stops when dropped.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use hickory_resolver::proto::op::Message;

use crate::lab::NON_VALIDATING;

/// Where the stripping proxy listens.
pub const STRIPPING: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(127, 0, 53, 55), 53));

pub struct StrippingResolver {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl StrippingResolver {
    pub fn start() -> StrippingResolver {
        let socket = UdpSocket::bind(STRIPPING)
            .unwrap_or_else(|e| panic!("bind the stripping proxy to {STRIPPING}: {e}"));
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("set read timeout");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while !flag.load(Ordering::Relaxed) {
                let Ok((n, client)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                if let Some(answer) = forward(&buf[..n]) {
                    let _ = socket.send_to(&answer, client);
                }
            }
        });
        StrippingResolver {
            stop,
            thread: Some(thread),
        }
    }
}

/// Asks the non-validating unbound; returns the stripped answer.
fn forward(query: &[u8]) -> Option<Vec<u8>> {
    let upstream = UdpSocket::bind("127.0.0.1:0").ok()?;
    upstream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .ok()?;
    upstream.send_to(query, NON_VALIDATING).ok()?;
    let mut buf = [0u8; 4096];
    let n = upstream.recv(&mut buf).ok()?;
    let mut answer = Message::from_vec(&buf[..n])
        .ok()?
        .maybe_strip_dnssec_records(false);
    answer.metadata.authentic_data = false;
    answer.to_vec().ok()
}

impl Drop for StrippingResolver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
