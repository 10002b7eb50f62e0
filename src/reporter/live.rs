//! The daily sender as the relay runs it: its settings from the running
//! configuration (they follow reloads), HTTPS POST with reqwest over
//! danegate's own rustls configuration and resolver, mail through the
//! outbound path of the current context.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing::error;

use super::{deliver, Daily, Deliver, Settings, Source};
use crate::dns::BoxFuture;
use crate::outbound::Context;
use crate::server::Handle;
use crate::state::Store;
use crate::sts::fetch::{chain, ViaResolver};
use crate::tlsrpt::counts::DbError;
use crate::tlsrpt::day::Clock;
use crate::tlsrpt::message::Dkim;
use crate::tlsrpt::report::Reporter;

/// How long one HTTPS POST may take.
const POST_TIMEOUT: Duration = Duration::from_secs(60);

/// Starts the daily sender on the relay's state database.
pub fn spawn(store: Store, clock: Arc<dyn Clock>, handle: Handle) -> Result<(), DbError> {
    let instance = super::jobs::instance_id(&store)?;
    let daily = Daily {
        store,
        clock,
        source: Arc::new(Running {
            handle: handle.clone(),
            instance,
            dkim: Mutex::new(None),
        }),
        deliver: Arc::new(Live { handle }),
    };
    tokio::spawn(daily.run());
    Ok(())
}

/// The settings of the running configuration.
struct Running {
    handle: Handle,
    instance: String,
    /// The DKIM signer of (key file, selector, domain), loaded once.
    dkim: Mutex<Option<(DkimKey, Option<Arc<Dkim>>)>>,
}

type DkimKey = (PathBuf, String, String);

impl Running {
    fn dkim(&self, key: Option<DkimKey>) -> Option<Arc<Dkim>> {
        let key = key?;
        let mut cached = self.dkim.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((k, signer)) = cached.as_ref() {
            if *k == key {
                return signer.clone();
            }
        }
        let signer = match Dkim::load(&key.0, &key.2, &key.1) {
            Ok(d) => Some(Arc::new(d)),
            Err(e) => {
                error!("TLS reporting: tlsrpt.dkim_key {e}; mailed reports are not sent");
                None
            }
        };
        *cached = Some((key, signer.clone()));
        signer
    }
}

impl Source for Running {
    fn settings(&self) -> Settings {
        let ctx = self.handle.current();
        let t = &ctx.config.tlsrpt;
        let submitter = t.submitter().unwrap_or_default();
        let key = match (&t.dkim_key, &t.dkim_selector) {
            (Some(k), Some(s)) => Some((k.clone(), s.clone(), submitter.clone())),
            _ => None,
        };
        Settings {
            enabled: t.enabled && t.missing().is_empty(),
            reporter: Reporter {
                organization: t.organization_name.clone(),
                contact: t.contact_info.clone(),
                submitter,
                instance: self.instance.clone(),
            },
            send_delay: t.send_delay,
            retry_for: t.retry_for,
            keep_days: t.keep_days,
            dkim: self.dkim(key),
            resolver: ctx.resolver.clone(),
        }
    }
}

/// Reports on their way, through the current context.
struct Live {
    handle: Handle,
}

impl Deliver for Live {
    fn post<'a>(&'a self, url: &'a str, body: &'a [u8]) -> BoxFuture<'a, Result<String, String>> {
        Box::pin(async move { post(&self.handle.current(), url, body).await })
    }

    fn mail<'a>(
        &'a self,
        from: &'a str,
        to: &'a str,
        message: &'a [u8],
    ) -> BoxFuture<'a, Result<String, String>> {
        Box::pin(async move { deliver::mail(&self.handle.current(), from, to, message).await })
    }
}

/// POSTs a gzipped report (RFC 8460 §5.4): `application/tlsrpt+gzip`,
/// the collector's certificate checked against the WebPKI (the system
/// roots and `[mta_sts] ca_file`), names resolved by danegate's
/// resolver, no redirects, no proxy. Ok: the 2xx status.
pub async fn post(ctx: &Context, url: &str, body: &[u8]) -> Result<String, String> {
    let client = reqwest::Client::builder()
        .tls_backend_preconfigured(crate::tls::webpki::https_config(&ctx.sts.roots()))
        .dns_resolver(Arc::new(ViaResolver(ctx.resolver.clone(), 0)))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .http1_only()
        .timeout(POST_TIMEOUT)
        .connect_timeout(POST_TIMEOUT)
        .user_agent(concat!("danegate/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot build the HTTPS client: {}", chain(&e)))?;
    let resp = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/tlsrpt+gzip")
        .body(body.to_vec())
        .send()
        .await
        .map_err(|e| chain(&e))?;
    let status = resp.status();
    if status.is_success() {
        Ok(format!("HTTP {}", status.as_u16()))
    } else {
        Err(format!("HTTP {}", status.as_u16()))
    }
}

/// Loads the DKIM key the settings name (for `config check`).
pub fn check_dkim(t: &crate::config::TlsRpt) -> Result<(), String> {
    match (&t.dkim_key, &t.dkim_selector) {
        (Some(k), Some(s)) => Dkim::load(k, &t.submitter().unwrap_or_default(), s)
            .map(|_| ())
            .map_err(|e| format!("tlsrpt.dkim_key {e}")),
        _ => Ok(()),
    }
}

/// What `config check` says about TLS reporting: off, or on and what
/// mailed reports still need.
pub fn notes(t: &crate::config::TlsRpt) -> Vec<String> {
    if !t.enabled {
        let mut n = vec!["tlsrpt: TLS reports are not sent (tlsrpt.enabled = false); session outcomes are still counted for `danegate report`".to_owned()];
        let missing = t.missing();
        if !missing.is_empty() {
            n.push(format!(
                "tlsrpt: to send reports set tlsrpt.enabled = true and fix: {}",
                missing.join("; ")
            ));
        }
        return n;
    }
    let mut n = vec![format!(
        "tlsrpt: TLS reports are sent as {} <{}>, submitter {}",
        t.organization_name,
        t.contact_info,
        t.submitter().unwrap_or_default()
    )];
    if !t.can_mail() {
        n.push("tlsrpt: mailto: destinations get no reports: set tlsrpt.dkim_key and tlsrpt.dkim_selector (RFC 8460 §3: receivers ignore unsigned reports)".to_owned());
    }
    n
}
