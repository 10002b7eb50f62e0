//! The listener: binds the configured addresses, admits clients (the
//! allow list, the connection limit), spawns a session per connection and
//! runs the shutdown sequence.
//!
//! On shutdown the listeners keep answering for the grace period, but
//! only with `421 4.3.2`; sessions finish the transaction in flight and
//! are told 421 at their next command. After the grace period whatever is
//! left is dropped: a destination never received an end of data it was not
//! meant to, so dropping is safe.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tracing::{error, info, warn};

use crate::inbound::answer::Answer;
use crate::inbound::session::Session;
use crate::metrics;
use crate::outbound::Context;

/// A bound, not yet running server.
pub struct Server {
    ctx: Arc<watch::Sender<Arc<Context>>>,
    listeners: Vec<TcpListener>,
    limit: Arc<Semaphore>,
    max: Arc<AtomicUsize>,
}

/// Replaces the configuration of a running server (SIGHUP): new sessions
/// get the new context, sessions in flight keep the one they started with.
#[derive(Clone)]
pub struct Handle {
    ctx: Arc<watch::Sender<Arc<Context>>>,
    limit: Arc<Semaphore>,
    max: Arc<AtomicUsize>,
}

impl Handle {
    /// The context new sessions get.
    pub fn current(&self) -> Arc<Context> {
        self.ctx.borrow().clone()
    }

    pub fn replace(&self, ctx: Arc<Context>) {
        let new = ctx.config.server.max_connections;
        let old = self.max.swap(new, Ordering::SeqCst);
        if new > old {
            self.limit.add_permits(new - old);
        } else if old > new {
            // Only idle permits can be forgotten: with more sessions in
            // flight than the new limit, the limit comes down only as far
            // as the idle capacity allows. `max` records the real total,
            // which the shutdown wait counts on.
            let forgotten = self.limit.forget_permits(old - new);
            self.max.store(old - forgotten, Ordering::SeqCst);
        }
        self.ctx.send_replace(ctx);
    }
}

static NEXT_SESSION: AtomicU64 = AtomicU64::new(1);

fn session_id() -> String {
    let n = NEXT_SESSION.fetch_add(1, Ordering::Relaxed);
    format!("{:X}{:05X}", std::process::id() & 0xfff, n)
}

/// Connections the kernel queues for `accept` before it drops SYNs (capped
/// by `net.core.somaxconn`). The standard library's 128 overflows when a
/// legacy MTA opens a few hundred delivery connections at once, and every
/// dropped SYN costs its client a one-second retransmission.
const LISTEN_BACKLOG: u32 = 1024;

/// A listening socket on `addr` (address reuse on, as the standard
/// library sets it) with [`LISTEN_BACKLOG`].
fn listen_on(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

impl Server {
    /// Binds every `server.listen` address.
    pub async fn bind(ctx: Arc<Context>) -> std::io::Result<Server> {
        let mut listeners = Vec::new();
        for addr in &ctx.config.server.listen {
            let l = listen_on(*addr).map_err(|e| {
                std::io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}"))
            })?;
            listeners.push(l);
        }
        let max = ctx.config.server.max_connections;
        let (tx, _) = watch::channel(ctx);
        Ok(Server {
            ctx: Arc::new(tx),
            listeners,
            limit: Arc::new(Semaphore::new(max)),
            max: Arc::new(AtomicUsize::new(max)),
        })
    }

    pub fn handle(&self) -> Handle {
        Handle {
            ctx: self.ctx.clone(),
            limit: self.limit.clone(),
            max: self.max.clone(),
        }
    }

    /// The addresses actually bound (useful with port 0).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect()
    }

    /// Serves until `stop` resolves, then shuts down gracefully.
    pub async fn run(self, stop: impl std::future::Future<Output = ()>) {
        let (tx, rx) = watch::channel(false);
        let limit = self.limit.clone();
        let mut acceptors = JoinSet::new();
        for listener in self.listeners {
            if let Ok(addr) = listener.local_addr() {
                info!("listening on {addr}");
            }
            acceptors.spawn(accept_loop(
                listener,
                self.ctx.subscribe(),
                limit.clone(),
                rx.clone(),
            ));
        }
        stop.await;
        info!("shutting down: finishing transactions in flight");
        let _ = tx.send(true);
        let grace = Duration::from_secs(self.ctx.borrow().timeouts.shutdown_grace);
        let max = self.max.load(Ordering::SeqCst) as u32;
        let all_done = async {
            // Every permit back means every session ended.
            let _ = limit.acquire_many(max).await;
        };
        if tokio::time::timeout(grace, all_done).await.is_err() {
            warn!("grace period over: dropping the remaining sessions");
        }
        acceptors.abort_all();
        info!("stopped");
    }
}

async fn accept_loop(
    listener: TcpListener,
    contexts: watch::Receiver<Arc<Context>>,
    limit: Arc<Semaphore>,
    shutdown: watch::Receiver<bool>,
) {
    let mut sessions = JoinSet::new();
    let mut backoff = Duration::from_millis(10);
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => { backoff = Duration::from_millis(10); x }
                Err(e) => {
                    // Out of file descriptors and the like: wait, retry.
                    error!("accept failed: {e}; retrying in {backoff:?}");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    continue;
                }
            },
            Some(done) = sessions.join_next(), if !sessions.is_empty() => {
                // A panic stays inside its task: the client loses its
                // connection (and retries; nothing was acknowledged), the
                // process goes on. It is a bug, so it is logged as one.
                if let Err(e) = done {
                    if e.is_panic() {
                        error!("session task panicked (bug): {e}");
                    }
                }
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let ctx = contexts.borrow().clone();
        if !ctx.config.server.allows(peer.ip()) {
            info!(client = %peer, "client not in allow_clients: refused");
            metrics::global().connection("not_allowed");
            let reply = Answer::NotAllowed { client: peer.ip() }.reply();
            sessions.spawn(refuse(stream, reply.to_wire()));
            continue;
        }
        if *shutdown.borrow() {
            metrics::global().connection("shutting_down");
            sessions.spawn(refuse(stream, Answer::ShuttingDown.reply().to_wire()));
            continue;
        }
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            warn!(client = %peer, "connection limit reached: refused");
            metrics::global().connection("busy");
            sessions.spawn(refuse(stream, Answer::TooBusy.reply().to_wire()));
            continue;
        };
        let shutdown = shutdown.clone();
        metrics::global().connection("accepted");
        sessions.spawn(async move {
            let id = session_id();
            // Counted down however the task ends, a panic included.
            let _active = metrics::ActiveSession::new();
            info!(session = %id, client = %peer, "connect");
            Session::new(stream, ctx, id.clone(), peer, shutdown)
                .run()
                .await;
            info!(session = %id, client = %peer, "disconnect");
            drop(permit);
        });
    }
}

/// Writes one reply and closes, within a short bound.
async fn refuse(mut stream: TcpStream, reply: Vec<u8>) {
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        stream.write_all(&reply).await?;
        stream.shutdown().await
    })
    .await;
}
