//! The connection cache: idle outbound conversations kept for the next
//! transaction to the same domain, from any inbound session.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::outbound::client::Client;

/// Most idle connections kept per destination domain.
const POOL_PER_DOMAIN: usize = 16;

/// Idle outbound connections, each ready for MAIL FROM and established
/// under the policy of the context it belongs to (a reload makes a new
/// context with an empty pool), kept for `timeouts.connection_cache`
/// seconds so that the next transaction to the same domain, from any
/// inbound session, skips the TCP and TLS handshakes (Postfix's
/// connection cache). Expired connections get QUIT from a janitor task.
pub struct Pool {
    ttl: Duration,
    /// Connections established longer ago are not reused.
    reuse_limit: Duration,
    idle: Mutex<HashMap<String, Vec<(Instant, Destination)>>>,
    janitor: std::sync::Once,
}

impl Pool {
    pub fn new(ttl: Duration, reuse_limit: Duration) -> Arc<Pool> {
        Arc::new(Pool {
            ttl,
            reuse_limit,
            idle: Mutex::new(HashMap::new()),
            janitor: std::sync::Once::new(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<(Instant, Destination)>>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether another transaction may still use `dest`: it was established
    /// less than `timeouts.connection_reuse_limit` ago.
    pub fn reusable(&self, dest: &Destination) -> bool {
        dest.established.elapsed() < self.reuse_limit
    }

    /// The freshest idle connection for `domain`, if any.
    pub fn take(&self, domain: &str) -> Option<Destination> {
        let now = Instant::now();
        let mut idle = self.lock();
        let list = idle.get_mut(domain)?;
        while let Some((since, dest)) = list.pop() {
            if now.duration_since(since) < self.ttl && self.reusable(&dest) {
                return Some(dest);
            }
            tokio::spawn(dest.client.quit());
        }
        None
    }

    /// Keeps an idle connection, or says QUIT when the cache is off or
    /// full.
    pub async fn put(self: &Arc<Self>, dest: Destination) {
        if self.ttl.is_zero() || !self.reusable(&dest) {
            return dest.client.quit().await;
        }
        self.janitor.call_once(|| {
            tokio::spawn(sweep(Arc::downgrade(self)));
        });
        let rejected = {
            let mut idle = self.lock();
            let list = idle.entry(dest.domain.clone()).or_default();
            if list.len() < POOL_PER_DOMAIN {
                list.push((Instant::now(), dest));
                None
            } else {
                Some(dest)
            }
        };
        if let Some(dest) = rejected {
            dest.client.quit().await;
        }
    }
}

/// Says QUIT to expired idle connections until the pool is gone.
async fn sweep(pool: std::sync::Weak<Pool>) {
    loop {
        let period = match pool.upgrade() {
            Some(p) => (p.ttl / 2).max(Duration::from_millis(100)),
            None => return,
        };
        tokio::time::sleep(period).await;
        let Some(p) = pool.upgrade() else { return };
        let now = Instant::now();
        let expired: Vec<Destination> = {
            let mut idle = p.lock();
            let mut out = Vec::new();
            for list in idle.values_mut() {
                let (old, fresh): (Vec<_>, Vec<_>) = std::mem::take(list)
                    .into_iter()
                    .partition(|(since, _)| now.duration_since(*since) >= p.ttl);
                *list = fresh;
                out.extend(old.into_iter().map(|(_, d)| d));
            }
            idle.retain(|_, l| !l.is_empty());
            out
        };
        for dest in expired {
            tokio::spawn(dest.client.quit());
        }
    }
}

/// An open conversation for one destination domain.
pub struct Destination {
    pub domain: String,
    pub client: Client<TcpStream>,
    /// When the connection was established (TCP connect).
    pub established: Instant,
}
