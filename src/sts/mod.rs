//! MTA-STS (RFC 8461): SMTP MTA Strict Transport Security.
pub mod apply;
pub mod cache;
pub mod discover;
pub mod fetch;
pub mod pattern;
pub mod policy;
pub mod record;

/// What went wrong with a domain's policy, in TLS reporting's words
/// (RFC 8460 §4.3.2.2), for logs, metrics and a report recorder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyFailure {
    /// The policy could not be fetched (connection, HTTP status,
    /// redirect, content type, size, time).
    FetchError,
    /// The policy was fetched but is not a valid policy.
    Invalid,
    /// The policy host's certificate did not validate (WebPKI).
    WebPkiInvalid,
}

impl PolicyFailure {
    /// The TLS-RPT `result-type`.
    pub fn result_type(self) -> &'static str {
        match self {
            PolicyFailure::FetchError => "sts-policy-fetch-error",
            PolicyFailure::Invalid => "sts-policy-invalid",
            PolicyFailure::WebPkiInvalid => "sts-webpki-invalid",
        }
    }
}

pub use discover::{Applied, Discovery, Source, Sts, Txt};

use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;
use crate::dns::Resolver;
use crate::state::Store;
use crate::tls::webpki::Roots;

/// The trust anchors, the fetcher and the settings `config` asks for.
fn parts(
    config: &Config,
    resolver: Arc<dyn Resolver>,
) -> Result<(Arc<dyn fetch::Fetch>, Roots, discover::Settings), String> {
    let c = &config.mta_sts;
    let roots = Roots::load(c.ca_file.as_deref(), true).map_err(|e| e.to_string())?;
    let fetcher = fetch::HttpsFetcher::new(&roots, resolver, Duration::from_secs(c.fetch_timeout))?;
    let settings = discover::Settings {
        enabled: c.enabled,
        refresh_interval: c.refresh_interval,
    };
    Ok((Arc::new(fetcher), roots, settings))
}

/// MTA-STS as `config` asks for, its cache in `store`. Err: an unusable
/// `[mta_sts] ca_file` (a configuration error).
pub fn from_config(
    config: &Config,
    resolver: Arc<dyn Resolver>,
    store: Store,
) -> Result<Arc<Sts>, String> {
    let (fetcher, roots, settings) = parts(config, resolver.clone())?;
    Ok(Arc::new(Sts::new(
        cache::Cache::new(store),
        resolver,
        fetcher,
        roots,
        settings,
    )))
}

/// Applies a reloaded configuration to a running [`Sts`] (its cache
/// stays). Err: the new configuration is not usable; nothing changed.
pub fn reconfigure(sts: &Sts, config: &Config, resolver: Arc<dyn Resolver>) -> Result<(), String> {
    let (fetcher, roots, settings) = parts(config, resolver.clone())?;
    sts.reconfigure(resolver, fetcher, roots, settings);
    Ok(())
}

/// MTA-STS switched off (`enabled = false`, no roots, nothing fetched):
/// for when the configured one cannot be built.
pub fn disabled(resolver: Arc<dyn Resolver>) -> Arc<Sts> {
    struct Never;
    impl fetch::Fetch for Never {
        fn fetch<'a>(
            &'a self,
            domain: &'a str,
        ) -> crate::dns::BoxFuture<'a, Result<Vec<u8>, fetch::FetchError>> {
            Box::pin(async move {
                Err(fetch::FetchError::Connect {
                    url: fetch::url(domain),
                    cause: "MTA-STS is off".into(),
                })
            })
        }
    }
    Arc::new(Sts::new(
        cache::Cache::new(Store::in_memory()),
        resolver,
        Arc::new(Never),
        Roots::none(),
        discover::Settings {
            enabled: false,
            refresh_interval: 86400,
        },
    ))
}
