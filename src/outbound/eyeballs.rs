//! Happy Eyeballs (RFC 8305) for the TCP connection to one host: its
//! addresses ordered with the families alternating, and connection
//! attempts started one after another without waiting for the one before
//! to time out, the first to connect winning.
//!
//! Only the TCP connect is raced. What is said over the connection (EHLO,
//! STARTTLS, the policy of that address) is the caller's, on the winner;
//! the attempts still running are dropped.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::time::timeout;

/// How long an attempt has before the next one starts beside it (RFC 8305
/// §5, "Connection Attempt Delay": 250 ms recommended).
pub const ATTEMPT_DELAY: Duration = Duration::from_millis(250);

/// RFC 8305 §4: the families alternate, IPv6 first, each family in its
/// own order.
pub fn interleave<T: Clone>(items: &[T], ip: impl Fn(&T) -> IpAddr) -> Vec<T> {
    let (v6, v4): (Vec<&T>, Vec<&T>) = items.iter().partition(|t| ip(t).is_ipv6());
    let mut out = Vec::with_capacity(items.len());
    let (mut a, mut b) = (v6.into_iter(), v4.into_iter());
    loop {
        match (a.next(), b.next()) {
            (None, None) => return out,
            (x, y) => out.extend(x.into_iter().chain(y).cloned()),
        }
    }
}

/// What a race came to: the winner and its index, and the attempts that
/// failed before it (index, cause).
pub struct Raced<T> {
    pub won: Option<(T, usize)>,
    pub failed: Vec<(usize, String)>,
}

/// Connects to the first of `addrs` that answers: an attempt starts at
/// once, the next [`ATTEMPT_DELAY`] later while none has connected (or at
/// once when every attempt started has failed), each bounded by `limit`.
pub async fn race<T, F, Fut>(addrs: &[SocketAddr], limit: Duration, connect: F) -> Raced<T>
where
    F: Fn(SocketAddr) -> Fut,
    Fut: Future<Output = std::io::Result<T>>,
{
    let attempt = |i: usize| {
        let fut = connect(addrs[i]);
        async move {
            let r = match timeout(limit, fut).await {
                Err(_) => Err("connection timed out".to_owned()),
                Ok(Err(e)) => Err(e.to_string()),
                Ok(Ok(t)) => Ok(t),
            };
            (i, r)
        }
    };
    let mut running = FuturesUnordered::new();
    let mut next = 0;
    let mut failed = Vec::new();
    loop {
        if running.is_empty() {
            if next == addrs.len() {
                return Raced { won: None, failed };
            }
            running.push(attempt(next));
            next += 1;
        }
        let more = next < addrs.len();
        tokio::select! {
            Some((i, r)) = running.next() => match r {
                Ok(t) => return Raced { won: Some((t, i)), failed },
                Err(cause) => failed.push((i, cause)),
            },
            () = tokio::time::sleep(ATTEMPT_DELAY), if more => {
                running.push(attempt(next));
                next += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;
    use tokio::time::{sleep, Instant};

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn families_alternate_ipv6_first() {
        let ips: Vec<IpAddr> = [
            "192.0.2.1",
            "192.0.2.2",
            "2001:db8::1",
            "192.0.2.3",
            "2001:db8::2",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        let got: Vec<String> = interleave(&ips, |i| *i)
            .iter()
            .map(|i| i.to_string())
            .collect();
        assert_eq!(
            got,
            [
                "2001:db8::1",
                "192.0.2.1",
                "2001:db8::2",
                "192.0.2.2",
                "192.0.2.3"
            ]
        );
    }

    /// Each address answers after the given time (None: refused at once).
    async fn fake(addr: SocketAddr, plan: &[(SocketAddr, Option<u64>)]) -> io::Result<SocketAddr> {
        match plan.iter().find(|(x, _)| *x == addr).unwrap().1 {
            Some(ms) => {
                sleep(Duration::from_millis(ms)).await;
                Ok(addr)
            }
            None => Err(io::ErrorKind::ConnectionRefused.into()),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_first_address_costs_one_attempt_delay_not_its_timeout() {
        let plan = [
            (a("[2001:db8::1]:25"), Some(60_000)),
            (a("192.0.2.1:25"), Some(10)),
        ];
        let addrs: Vec<SocketAddr> = plan.iter().map(|p| p.0).collect();
        let start = Instant::now();
        let r = race(&addrs, Duration::from_secs(30), |x| fake(x, &plan)).await;
        assert_eq!(r.won, Some((plan[1].0, 1)));
        assert_eq!(start.elapsed(), Duration::from_millis(260));
        assert!(r.failed.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_attempt_starts_the_next_at_once() {
        let plan = [(a("192.0.2.1:25"), None), (a("192.0.2.2:25"), Some(5))];
        let addrs: Vec<SocketAddr> = plan.iter().map(|p| p.0).collect();
        let start = Instant::now();
        let r = race(&addrs, Duration::from_secs(30), |x| fake(x, &plan)).await;
        assert_eq!(r.won.map(|(_, i)| i), Some(1));
        assert_eq!(start.elapsed(), Duration::from_millis(5));
        assert_eq!(r.failed.len(), 1);
        assert_eq!(r.failed[0].0, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_address_wins_when_it_answers_in_time() {
        let plan = [(a("192.0.2.1:25"), Some(100)), (a("192.0.2.2:25"), Some(1))];
        let addrs: Vec<SocketAddr> = plan.iter().map(|p| p.0).collect();
        let r = race(&addrs, Duration::from_secs(30), |x| fake(x, &plan)).await;
        assert_eq!(r.won.map(|(_, i)| i), Some(0));
    }

    #[tokio::test(start_paused = true)]
    async fn every_attempt_failing_reports_each_cause() {
        let plan = [(a("192.0.2.1:25"), None), (a("192.0.2.2:25"), Some(60_000))];
        let addrs: Vec<SocketAddr> = plan.iter().map(|p| p.0).collect();
        let start = Instant::now();
        let r = race(&addrs, Duration::from_secs(30), |x| fake(x, &plan)).await;
        assert!(r.won.is_none());
        assert_eq!(start.elapsed(), Duration::from_secs(30));
        let mut causes: Vec<(usize, String)> = r.failed;
        causes.sort();
        assert_eq!(causes[1], (1, "connection timed out".to_owned()));
        assert_eq!(causes[0].0, 0);
    }
}
