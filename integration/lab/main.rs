//! danegate's integration lab: real MTAs around the real binary.
//!
//! Every test here starts its own components on its own loopback addresses
//! under a fresh scratch dir, and stops them when it ends (also on panic):
//!
//! ```text
//!   test client ──SMTP──▶ legacy MTA ──plain SMTP──▶ danegate ──STARTTLS──▶ receiver
//!                      (Postfix 127.0.N.21:25     (127.0.0.1:101NN)      (Postfix 127.0.N.31:25,
//!                       or Exim, Sendmail,                                maildirs)
//!                       no daemon)
//! ```
//!
//! `N` is the test's number (see `Addrs`). danegate's `[routes]` send every
//! test domain to the receiver, so no DNS is involved.
//!
//! The tests need root, Postfix, swaks and an unpacked Exim and Sendmail;
//! they are all `#[ignore]`d so a plain `cargo test` skips them.
//! `integration/test-all` installs what they need and runs them with
//! `cargo test --test lab -- --ignored --test-threads=1`. A missing tool
//! fails a test, never skips it. See integration/README.md.
//!
//! Modules: `util` (scratch dir, bounded waits, commands), `client` (an SMTP
//! client for exact bytes and exact replies), `message` (test messages and
//! checks of delivered files), `postfix`, `exim`, `sendmail`, `danegate`
//! (the components), `fake` (a destination that hangs up after DATA); the
//! tests are in `infra` (the lab without danegate), `relay_postfix`,
//! `relay_exim`, `relay_sendmail` and `listener`.

#![forbid(unsafe_code)]

mod client;
mod danegate;
mod exim;
mod fake;
mod message;
mod postfix;
mod sendmail;
mod util;

mod infra;
mod listener;
mod relay_exim;
mod relay_postfix;
mod relay_sendmail;

use std::net::{Ipv4Addr, SocketAddr};

/// The addresses of test number `n`: each test has its own, so a leftover
/// of one test can never answer another.
pub struct Addrs {
    pub n: u8,
}

impl Addrs {
    pub fn new(n: u8) -> Addrs {
        assert!((1..=99).contains(&n), "test number {n} out of range");
        // 127.0.25.x and 127.0.53.x are the DNS lab's (integration/dnslab).
        assert!(![25, 53].contains(&n), "test number {n} is the DNS lab's");
        Addrs { n }
    }

    /// Where the legacy Postfix's smtpd listens.
    pub fn legacy(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::new(127, 0, self.n, 21), 25))
    }

    /// Where the receiver (or the fake MX in its place) listens.
    pub fn receiver(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::new(127, 0, self.n, 31), 25))
    }

    /// Where danegate listens (127.0.0.1, so the legacy MTAs' relayhost is
    /// `[127.0.0.1]:PORT` as in production).
    pub fn danegate(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, 10100 + u16::from(self.n)))
    }

    /// The legacy Postfix's `relayhost` value pointing at danegate.
    pub fn relayhost(&self) -> String {
        format!("[127.0.0.1]:{}", self.danegate().port())
    }
}
