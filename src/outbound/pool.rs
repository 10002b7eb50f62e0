//! The connection cache: idle outbound conversations kept for the next
//! transaction to the same domain, from any inbound session.
//!
//! Only a [`Client`] can be cached, and a transaction gives one back only
//! after the destination's final reply or its 250 to RSET (see
//! `transaction`). On top of that the cache checks that the conversation
//! is quiet twice: when it is put (nothing unread, nothing more on the
//! socket) and again when it is taken, since the server may have spoken
//! or closed while it waited. A conversation that is not quiet is closed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::outbound::client::Client;

/// Most idle connections kept per destination domain.
const POOL_PER_DOMAIN: usize = 16;

/// An open conversation for one destination domain, ready for MAIL FROM.
pub struct Destination {
    pub domain: String,
    pub client: Client<TcpStream>,
}

type Idle = HashMap<String, Vec<(Instant, Client<TcpStream>)>>;

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
    idle: Mutex<Idle>,
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

    fn lock(&self) -> std::sync::MutexGuard<'_, Idle> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether another transaction may still use `client`: it was
    /// established less than `timeouts.connection_reuse_limit` ago.
    pub fn reusable(&self, client: &Client<TcpStream>) -> bool {
        client.established().elapsed() < self.reuse_limit
    }

    /// The freshest quiet idle connection for `domain`, if any; the others
    /// found on the way (expired, or no longer quiet) are closed.
    pub async fn take(&self, domain: &str) -> Option<Destination> {
        loop {
            let (since, mut client) = self.lock().get_mut(domain)?.pop()?;
            if since.elapsed() < self.ttl && self.reusable(&client) && client.is_clean().await {
                return Some(Destination {
                    domain: domain.to_owned(),
                    client,
                });
            }
            tokio::spawn(client.quit());
        }
    }

    /// Keeps an idle connection, or says QUIT when the cache is off or
    /// full, or the connection is too old or not quiet.
    pub async fn put(self: &Arc<Self>, dest: Destination) {
        let Destination { domain, mut client } = dest;
        if self.ttl.is_zero() || !self.reusable(&client) || !client.is_clean().await {
            return client.quit().await;
        }
        self.janitor.call_once(|| {
            tokio::spawn(sweep(Arc::downgrade(self)));
        });
        let rejected = {
            let mut idle = self.lock();
            let list = idle.entry(domain).or_default();
            if list.len() < POOL_PER_DOMAIN {
                list.push((Instant::now(), client));
                None
            } else {
                Some(client)
            }
        };
        if let Some(client) = rejected {
            client.quit().await;
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
        let expired: Vec<Client<TcpStream>> = {
            let mut idle = p.lock();
            let mut out = Vec::new();
            for list in idle.values_mut() {
                let (old, fresh): (Vec<_>, Vec<_>) = std::mem::take(list)
                    .into_iter()
                    .partition(|(since, _)| now.duration_since(*since) >= p.ttl);
                *list = fresh;
                out.extend(old.into_iter().map(|(_, c)| c));
            }
            idle.retain(|_, l| !l.is_empty());
            out
        };
        for client in expired {
            tokio::spawn(client.quit());
        }
    }
}
