//! Policy discovery and the cache's life (RFC 8461 §3, §5.1): which
//! policy applies to a recipient domain right now.
//!
//! For each delivery: look up `_mta-sts.<domain>` TXT; a cached,
//! unexpired policy fetched for the same `id` applies as it is; a new
//! `id` (or no cached policy) means a fetch, coalesced per domain; a
//! fetch that fails leaves the cached policy in force until its
//! `max_age` runs out (§3.3: "the sender MUST apply that cached
//! policy"), and without one the domain is treated as having no policy.
//! A TXT record that is gone or a DNS failure changes nothing about a
//! cached policy either. In the background, cached policies are fetched
//! again before they expire ([`Sts::sweep`]), so that an attacker who
//! blocks the policy host for a while cannot make them lapse.
//!
//! This module decides when to fetch and logs what it fetched; what a
//! policy means for a host is `policy::decide`'s business.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tracing::{debug, info, warn};

use crate::dns::{DnsFailure, Lookup, Resolver};
use crate::sts::cache::{Cache, Entry};
use crate::sts::fetch::{self, Fetch, FetchError};
use crate::sts::policy::{self, Mode, Policy};
use crate::sts::record::{self, Record, RecordError};
use crate::tls::webpki::Roots;

/// How discovery behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// `[mta_sts] enabled`.
    pub enabled: bool,
    /// Seconds after which a cached policy is fetched again although its
    /// `id` did not change (at most half its `max_age`).
    pub refresh_interval: u64,
}

impl Settings {
    /// How long a failed fetch of one `id` is not tried again, and how
    /// often the background refresh looks at the cache.
    pub fn retry_after(&self) -> u64 {
        (self.refresh_interval / 24).clamp(1, 300)
    }
}

/// What `_mta-sts.<domain>` said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Txt {
    Record(Record),
    /// No record that starts with `v=STSv1` (or no TXT at all).
    Absent,
    Invalid(RecordError),
    Failed(DnsFailure),
}

/// Where an applied policy came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Cache,
    Fetched,
}

impl Source {
    /// How `resolve`, `check` and the logs say it.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Cache => "cached",
            Source::Fetched => "fetched",
        }
    }
}

/// A policy in force for a domain: what a TLS report records (text,
/// id) and what delivery needs (the parsed policy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub domain: String,
    pub id: String,
    pub text: String,
    pub policy: Policy,
    pub fetched_at: u64,
    pub expires_at: u64,
    pub source: Source,
}

impl Applied {
    fn from_entry(e: Entry, policy: Policy, source: Source) -> Applied {
        Applied {
            expires_at: e.expires_at(),
            domain: e.domain,
            id: e.id,
            text: e.text,
            policy,
            fetched_at: e.fetched_at,
            source,
        }
    }

    /// Whether the policy asks for anything (mode `none` does not).
    pub fn is_active(&self) -> bool {
        self.policy.mode != Mode::None
    }
}

/// What discovery found for one domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovery {
    pub domain: String,
    pub txt: Txt,
    /// The policy in force, if any (possibly of mode `none`).
    pub applied: Option<Applied>,
    /// A fetch that failed this time (the cached policy, if any, stays).
    pub problem: Option<FetchError>,
}

/// The parts discovery works with; replaced as a whole on reload.
struct Parts {
    resolver: Arc<dyn Resolver>,
    fetcher: Arc<dyn Fetch>,
    roots: Roots,
    settings: Settings,
}

/// Unix seconds, from the wall clock (cached policies outlive the
/// process, so monotonic time will not do).
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

fn wall_clock() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// MTA-STS for the whole process: the cache, the fetcher, and the
/// bookkeeping that keeps fetches of one domain from piling up.
pub struct Sts {
    cache: Cache,
    parts: RwLock<Arc<Parts>>,
    /// One lock per domain while a fetch for it is under way.
    fetching: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// The last failed fetch per domain: (when, for which id, why).
    failures: Mutex<HashMap<String, (u64, String, FetchError)>>,
    clock: Clock,
}

impl Sts {
    /// `roots` are the trust anchors of MX certificate checks (the
    /// fetcher has its own copy).
    pub fn new(
        cache: Cache,
        resolver: Arc<dyn Resolver>,
        fetcher: Arc<dyn Fetch>,
        roots: Roots,
        settings: Settings,
    ) -> Sts {
        Sts::with_clock(
            cache,
            resolver,
            fetcher,
            roots,
            settings,
            Arc::new(wall_clock),
        )
    }

    pub fn with_clock(
        cache: Cache,
        resolver: Arc<dyn Resolver>,
        fetcher: Arc<dyn Fetch>,
        roots: Roots,
        settings: Settings,
        clock: Clock,
    ) -> Sts {
        Sts {
            cache,
            parts: RwLock::new(Arc::new(Parts {
                resolver,
                fetcher,
                roots,
                settings,
            })),
            fetching: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
            clock,
        }
    }

    /// New resolver, fetcher or settings (a configuration reload); the
    /// cache stays.
    pub fn reconfigure(
        &self,
        resolver: Arc<dyn Resolver>,
        fetcher: Arc<dyn Fetch>,
        roots: Roots,
        settings: Settings,
    ) {
        let parts = Arc::new(Parts {
            resolver,
            fetcher,
            roots,
            settings,
        });
        *self.parts.write().unwrap_or_else(|p| p.into_inner()) = parts;
    }

    fn parts(&self) -> Arc<Parts> {
        self.parts.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// Whether MTA-STS is on (`[mta_sts] enabled`).
    pub fn enabled(&self) -> bool {
        self.parts().settings.enabled
    }

    /// The trust anchors for MX certificates.
    pub fn roots(&self) -> Roots {
        self.parts().roots.clone()
    }

    pub fn now(&self) -> u64 {
        (self.clock)()
    }

    /// The policy that applies to `domain` for a delivery now (§5.1).
    pub async fn discover(&self, domain: &str) -> Discovery {
        let txt = self.txt(domain).await;
        let mut found = Discovery {
            domain: domain.to_owned(),
            txt,
            applied: self
                .live(domain)
                .map(|(e, p)| Applied::from_entry(e, p, Source::Cache)),
            problem: None,
        };
        let Txt::Record(rec) = &found.txt else {
            return found;
        };
        if found.applied.as_ref().is_some_and(|a| a.id == rec.id) {
            return found;
        }
        let id = rec.id.clone();
        match self.fetch(domain, &id, true).await {
            Ok(applied) => found.applied = Some(applied),
            Err(problem) => found.problem = Some(problem),
        }
        found
    }

    /// Fetches `domain`'s policy now, whatever the cache holds (the
    /// operator's `sts refresh`). Without a valid TXT record nothing is
    /// fetched and the cache stays as it is.
    pub async fn refresh(&self, domain: &str) -> Discovery {
        let txt = self.txt(domain).await;
        let mut found = Discovery {
            domain: domain.to_owned(),
            txt,
            applied: self
                .live(domain)
                .map(|(e, p)| Applied::from_entry(e, p, Source::Cache)),
            problem: None,
        };
        if let Txt::Record(rec) = &found.txt {
            let id = rec.id.clone();
            match self.fetch(domain, &id, false).await {
                Ok(applied) => found.applied = Some(applied),
                Err(problem) => found.problem = Some(problem),
            }
        }
        found
    }

    /// Removes `domain`'s cached policy; whether there was one.
    pub fn forget(&self, domain: &str) -> Result<bool, String> {
        lock(&self.failures).remove(domain);
        self.cache.remove(domain)
    }

    /// The `_mta-sts` TXT record of `domain`.
    pub async fn txt(&self, domain: &str) -> Txt {
        let name = format!("_mta-sts.{domain}");
        let resolver = self.parts().resolver.clone();
        match resolver.txt(&name).await {
            Ok(Lookup::Records { records, .. }) => match record::select(&records) {
                Ok(Some(r)) => Txt::Record(r),
                Ok(None) => Txt::Absent,
                Err(e) => Txt::Invalid(e),
            },
            Ok(_) => Txt::Absent,
            Err(e) => Txt::Failed(e),
        }
    }

    /// The cached entry of `domain` with its policy, if unexpired.
    fn live(&self, domain: &str) -> Option<(Entry, Policy)> {
        let entry = match self.cache.get(domain) {
            Ok(e) => e?,
            Err(e) => {
                warn!(
                    domain,
                    "MTA-STS cache: {e}; continuing as if nothing were cached"
                );
                return None;
            }
        };
        if entry.is_expired(self.now()) {
            return None;
        }
        let policy = entry.policy().ok()?;
        Some((entry, policy))
    }

    /// Fetches and caches the policy of `domain` for TXT `id`, one fetch
    /// per domain at a time. `reuse`: a fetch that another task finished
    /// meanwhile for the same id counts, and a recent failure for this
    /// id is not retried yet.
    async fn fetch(&self, domain: &str, id: &str, reuse: bool) -> Result<Applied, FetchError> {
        let gate = lock(&self.fetching)
            .entry(domain.to_owned())
            .or_default()
            .clone();
        let _held = gate.lock().await;
        let parts = self.parts();
        if reuse {
            if let Some((e, p)) = self.live(domain).filter(|(e, _)| e.id == id) {
                return Ok(Applied::from_entry(e, p, Source::Fetched));
            }
            if let Some(err) = self.recent_failure(domain, id, &parts.settings) {
                return Err(err);
            }
        }
        let now = self.now();
        let result = parts.fetcher.fetch(domain).await.and_then(|body| {
            let policy = policy::parse(&body).map_err(|error| FetchError::Invalid {
                url: fetch::url(domain),
                error,
            })?;
            let text = String::from_utf8(body).expect("a parsed policy is UTF-8");
            Ok((text, policy))
        });
        lock(&self.fetching).remove(domain);
        match result {
            Ok((text, policy)) => Ok(self.fetched(domain, id, now, text, policy)),
            Err(e) => {
                self.failed(domain, id, now, &e);
                Err(e)
            }
        }
    }

    fn recent_failure(&self, domain: &str, id: &str, settings: &Settings) -> Option<FetchError> {
        let failures = lock(&self.failures);
        let (at, failed_id, err) = failures.get(domain)?;
        let recent = self.now() < at.saturating_add(settings.retry_after());
        (recent && failed_id == id).then(|| err.clone())
    }

    fn fetched(&self, domain: &str, id: &str, now: u64, text: String, policy: Policy) -> Applied {
        lock(&self.failures).remove(domain);
        let entry = Entry {
            domain: domain.to_owned(),
            id: id.to_owned(),
            text,
            fetched_at: now,
            max_age: policy.max_age,
            refresh_failure: None,
        };
        let mx: Vec<String> = policy.mx.iter().map(|p| p.to_string()).collect();
        info!(
            domain,
            "MTA-STS policy of {domain} fetched: id {id}, mode {}, max_age {}, mx {}",
            policy.mode,
            policy.max_age,
            if mx.is_empty() {
                "none".into()
            } else {
                mx.join(" ")
            }
        );
        for note in &policy.notes {
            info!(domain, "MTA-STS policy of {domain}: {note}");
        }
        crate::metrics::global().sts_fetch("ok");
        if let Err(e) = self.cache.put(&entry) {
            warn!(
                domain,
                "MTA-STS cache: cannot store the policy of {domain}: {e}"
            );
        }
        Applied::from_entry(entry, policy, Source::Fetched)
    }

    fn failed(&self, domain: &str, id: &str, now: u64, e: &FetchError) {
        crate::metrics::global().sts_fetch(e.kind().result_type());
        lock(&self.failures).insert(domain.to_owned(), (now, id.to_owned(), e.clone()));
        let cached = self.cache.get(domain).ok().flatten();
        match cached.filter(|c| !c.is_expired(now)) {
            Some(mut c) => {
                let quiet = c.policy().is_ok_and(|p| p.mode == Mode::None);
                let text = format!(
                    "MTA-STS policy fetch for {domain} failed: {e}; the cached policy (id {}, fetched {}) stays in force until {}",
                    c.id,
                    time_text(c.fetched_at),
                    time_text(c.expires_at())
                );
                if quiet {
                    debug!(domain, "{text}");
                } else {
                    warn!(domain, "{text}");
                }
                c.refresh_failure = Some((now, e.to_string()));
                let _ = self.cache.put(&c);
            }
            None => warn!(
                domain,
                "MTA-STS policy fetch for {domain} failed: {e}; no cached policy, so {domain} is treated as having none"
            ),
        }
    }

    /// One pass of the background refresh: every cached policy due for a
    /// refresh (and not failed a moment ago) is fetched again; expired
    /// ones that could not be refreshed are dropped.
    pub async fn sweep(&self) {
        let entries = match self.cache.all() {
            Ok(e) => e,
            Err(e) => {
                warn!("MTA-STS cache: {e}");
                return;
            }
        };
        let settings = self.parts().settings;
        for entry in entries {
            let now = self.now();
            if now < entry.refresh_at(settings.refresh_interval) {
                continue;
            }
            let failed_recently = lock(&self.failures)
                .get(&entry.domain)
                .is_some_and(|(at, _, _)| now < at.saturating_add(settings.retry_after()));
            if !failed_recently {
                debug!(domain = %entry.domain, "refreshing the MTA-STS policy of {}", entry.domain);
                self.refresh(&entry.domain).await;
            }
            if entry.is_expired(self.now()) && self.live(&entry.domain).is_none() {
                info!(domain = %entry.domain, "MTA-STS policy of {} expired and was not refreshed; removed from the cache", entry.domain);
                let _ = self.cache.remove(&entry.domain);
            }
        }
    }

    /// Runs [`sweep`](Self::sweep) for ever, every `retry_after` seconds.
    pub fn spawn_refresher(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let sts = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let Some(sts) = sts.upgrade() else { return };
                let period = sts.parts().settings.retry_after();
                sts.sweep().await;
                drop(sts);
                tokio::time::sleep(Duration::from_secs(period)).await;
            }
        })
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Unix seconds as an RFC 3339 UTC time, "2026-12-01T10:00:00Z".
pub fn time_text(secs: u64) -> String {
    let t = i64::try_from(secs)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok());
    match t.and_then(|t| {
        t.format(&time::format_description::well_known::Rfc3339)
            .ok()
    }) {
        Some(text) => text,
        None => format!("{secs} (Unix time)"),
    }
}

#[cfg(test)]
#[path = "discover_tests.rs"]
mod tests;
