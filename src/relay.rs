//! Finding a destination for a recipient domain and opening a
//! conversation with it: the plan from `nexthop`, then each host and each
//! address in turn until one accepts (RFC 5321 §5.1, dane-rules §3.7).
//!
//! Opportunistic TLS that fails in the handshake is retried on a new
//! connection without TLS (Postfix does the same); a host that requires TLS
//! is never retried in plaintext.

use std::net::SocketAddr;
use std::sync::Arc;

use rustls::ClientConfig;
use tokio::net::TcpStream;
use tokio::time::timeout;
use tracing::{info, warn};

use crate::config::{Config, Timeouts};
use crate::dns::Resolver;
use crate::nexthop::{Host, Planner};
use crate::outbound::{sni_for, Client, Hello, OutboundError, Peer, TlsMode};
use crate::policy::Requirement;
use crate::reply_map::Failure;
use crate::stage::Stage;

/// What every session shares: configuration, resolver, TLS settings.
pub struct Context {
    pub config: Arc<Config>,
    pub resolver: Arc<dyn Resolver>,
    pub planner: Planner,
    pub tls_opportunistic: Arc<ClientConfig>,
    pub timeouts: Arc<Timeouts>,
}

impl Context {
    pub fn new(config: Config, resolver: Arc<dyn Resolver>) -> Context {
        let timeouts = Arc::new(config.timeouts.clone());
        let planner = Planner::for_config(&config);
        Context {
            config: Arc::new(config),
            resolver,
            planner,
            tls_opportunistic: crate::tls::opportunistic_config(),
            timeouts,
        }
    }
}

/// An open conversation for one destination domain.
pub struct Destination {
    pub domain: String,
    pub client: Client<TcpStream>,
}

/// Plans `domain` and opens a conversation with the first host that
/// takes one. `session` tags log lines.
pub async fn connect(ctx: &Context, session: &str, domain: &str) -> Result<Destination, Failure> {
    let plan = ctx
        .planner
        .plan(ctx.resolver.as_ref(), &ctx.config, domain)
        .await?;
    for skipped in &plan.skipped {
        info!(session, domain, "skipping MX host: {skipped}");
    }
    let mut worst: Option<Failure> = None;
    for host in &plan.hosts {
        match try_host(ctx, host).await {
            Ok(client) => {
                return Ok(Destination {
                    domain: domain.to_owned(),
                    client,
                })
            }
            Err(e) => {
                warn!(session, domain, "delivery attempt failed: {e}");
                let f = Failure::Outbound(e);
                if worst
                    .as_ref()
                    .is_none_or(|w| f.specificity() >= w.specificity())
                {
                    worst = Some(f);
                }
            }
        }
    }
    Err(worst.expect("a plan has at least one host"))
}

async fn try_host(ctx: &Context, host: &Host) -> Result<Client<TcpStream>, OutboundError> {
    let mut last = None;
    for ip in &host.addresses {
        let peer = Peer {
            host: host.name.clone(),
            addr: SocketAddr::new(*ip, host.port),
        };
        if let Requirement::Refuse(reason) = host.requirement {
            return Err(OutboundError::Refused { peer, reason });
        }
        let mode = match host.requirement {
            Requirement::Opportunistic => TlsMode::Opportunistic,
            _ => TlsMode::Required,
        };
        match try_address(ctx, host, &peer, mode).await {
            Ok(c) => return Ok(c),
            Err(
                OutboundError::Tls { .. }
                | OutboundError::Timeout {
                    stage: Stage::TlsHandshake,
                    ..
                },
            ) if mode == TlsMode::Opportunistic => {
                info!(peer = %peer, "TLS handshake failed; retrying without TLS (opportunistic TLS)");
                match try_address(ctx, host, &peer, TlsMode::Off).await {
                    Ok(c) => return Ok(c),
                    Err(e) => last = Some(e),
                }
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.expect("a planned host has at least one address"))
}

async fn try_address(
    ctx: &Context,
    host: &Host,
    peer: &Peer,
    tls: TlsMode,
) -> Result<Client<TcpStream>, OutboundError> {
    let limit = Stage::Connect.timeout(&ctx.timeouts);
    let stream = match timeout(limit, TcpStream::connect(peer.addr)).await {
        Err(_) => {
            return Err(OutboundError::Connect {
                peer: peer.clone(),
                cause: "connection timed out".into(),
            })
        }
        Ok(Err(e)) => {
            return Err(OutboundError::Connect {
                peer: peer.clone(),
                cause: e.to_string(),
            })
        }
        Ok(Ok(s)) => s,
    };
    let _ = stream.set_nodelay(true);
    let hello = Hello {
        hostname: ctx.config.server.hostname.0.clone(),
        tls_config: ctx.tls_opportunistic.clone(),
        sni: sni_for(&host.name),
        tls,
        timeouts: ctx.timeouts.clone(),
    };
    Client::open(stream, peer.clone(), &hello).await
}
