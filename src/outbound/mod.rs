//! The outbound side: from a recipient domain to an open, policy-checked
//! conversation with one of its hosts, and the conversation itself.
//!
//! Following the mail's path: [`plan`] turns a domain into the ordered
//! hosts to try with their TLS requirement (DNS and policy, no I/O of its
//! own); [`connect`] opens a conversation with the first host that takes
//! one; [`pool`] keeps idle verified conversations for reuse; [`client`]
//! opens the SMTP client conversation and [`transaction`] carries one mail
//! transaction through it as typed states (over the private `wire`, which
//! owns the bytes); [`stage`] holds every protocol state's timeout,
//! description and expected replies; [`failure`] says why an attempt
//! failed and how the legacy MTA hears it.

pub mod client;
pub mod connect;
pub mod error;
pub mod failure;
pub mod mtasts;
pub mod plan;
pub mod pool;
pub mod stage;
pub mod transaction;
mod wire;

use std::sync::Arc;
use std::time::Duration;

use crate::tls::ClientConfig;

use crate::config::{Config, Timeouts};
use crate::dns::Resolver;
use plan::Planner;
use pool::Pool;

/// What every session shares: configuration, resolver, TLS settings,
/// MTA-STS and the cache of idle outbound connections.
pub struct Context {
    pub config: Arc<Config>,
    pub resolver: Arc<dyn Resolver>,
    /// MTA-STS policies (shared across configuration reloads).
    pub sts: Arc<crate::sts::Sts>,
    pub planner: Planner,
    /// rustls without authentication, from `[tls] opportunistic_min_version`.
    pub tls_opportunistic: Arc<ClientConfig>,
    /// rustls without authentication where TLS is required, from `[tls]
    /// min_version`.
    pub tls_encrypt: Arc<ClientConfig>,
    pub timeouts: Arc<Timeouts>,
    pub pool: Arc<Pool>,
}

impl Context {
    /// A context whose MTA-STS cache lives in memory (tests, one-shot
    /// commands); the relay uses [`with_sts`](Self::with_sts).
    pub fn new(config: Config, resolver: Arc<dyn Resolver>) -> Context {
        let sts =
            crate::sts::from_config(&config, resolver.clone(), crate::state::Store::in_memory())
                .unwrap_or_else(|e| {
                    tracing::error!("MTA-STS is off: {e}");
                    crate::sts::disabled(resolver.clone())
                });
        Context::with_sts(config, resolver, sts)
    }

    pub fn with_sts(
        config: Config,
        resolver: Arc<dyn Resolver>,
        sts: Arc<crate::sts::Sts>,
    ) -> Context {
        let timeouts = Arc::new(config.timeouts.clone());
        let planner = Planner {
            sts: Some(sts.clone()),
            ..Planner::for_config(&config)
        };
        let pool = Pool::new(
            Duration::from_secs(config.timeouts.connection_cache),
            Duration::from_secs(config.timeouts.connection_reuse_limit),
        );
        let tls_opportunistic =
            crate::tls::opportunistic_config(config.tls.opportunistic_min_version);
        let tls_encrypt = crate::tls::opportunistic_config(config.tls.min_version);
        Context {
            config: Arc::new(config),
            resolver,
            sts,
            planner,
            pool,
            tls_opportunistic,
            tls_encrypt,
            timeouts,
        }
    }
}
