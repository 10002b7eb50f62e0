//! Discovery against a table resolver, a table fetcher and a clock the
//! test moves.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use super::*;
use crate::dns::{BoxFuture, FailureKind, LookupResult, Mx, Security};
use crate::state::Store;

const DOMAIN: &str = "example.com";

#[derive(Default)]
struct Dns {
    txt: Mutex<HashMap<String, LookupResult<Vec<u8>>>>,
}

impl Dns {
    fn set(&self, id: Option<&str>) {
        let answer = match id {
            Some(id) => Ok(Lookup::Records {
                records: vec![format!("v=STSv1; id={id}").into_bytes()],
                security: Security::Insecure,
                canonical: None,
            }),
            None => Ok(Lookup::NxDomain {
                security: Security::Insecure,
            }),
        };
        lock(&self.txt).insert(format!("_mta-sts.{DOMAIN}"), answer);
    }

    fn fail(&self) {
        lock(&self.txt).insert(
            format!("_mta-sts.{DOMAIN}"),
            Err(DnsFailure {
                name: format!("_mta-sts.{DOMAIN}"),
                rtype: "TXT",
                kind: FailureKind::ServFail,
            }),
        );
    }
}

impl Resolver for Dns {
    fn mx<'a>(&'a self, _: &'a str) -> BoxFuture<'a, LookupResult<Mx>> {
        unreachable!("discovery asks for TXT only")
    }
    fn ipv4<'a>(&'a self, _: &'a str) -> BoxFuture<'a, LookupResult<std::net::Ipv4Addr>> {
        unreachable!("discovery asks for TXT only")
    }
    fn ipv6<'a>(&'a self, _: &'a str) -> BoxFuture<'a, LookupResult<std::net::Ipv6Addr>> {
        unreachable!("discovery asks for TXT only")
    }
    fn txt<'a>(&'a self, name: &'a str) -> BoxFuture<'a, LookupResult<Vec<u8>>> {
        let answer = lock(&self.txt)
            .get(name)
            .cloned()
            .unwrap_or(Ok(Lookup::NoData {
                security: Security::Insecure,
            }));
        Box::pin(async move { answer })
    }
}

/// Serves one body (or failure) and counts fetches; `gate` holds every
/// fetch until the test opens it.
struct Server {
    body: Mutex<Result<String, FetchError>>,
    fetches: AtomicUsize,
    gate: tokio::sync::Semaphore,
}

impl Server {
    fn new() -> Server {
        Server {
            body: Mutex::new(Ok(policy_text("enforce", 86400))),
            fetches: AtomicUsize::new(0),
            gate: tokio::sync::Semaphore::new(1000),
        }
    }

    fn serve(&self, body: Result<String, FetchError>) {
        *lock(&self.body) = body;
    }

    fn count(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

impl Fetch for Server {
    fn fetch<'a>(&'a self, domain: &'a str) -> BoxFuture<'a, Result<Vec<u8>, FetchError>> {
        assert_eq!(domain, DOMAIN);
        Box::pin(async move {
            self.fetches.fetch_add(1, Ordering::SeqCst);
            let _pass = self.gate.acquire().await.unwrap();
            lock(&self.body).clone().map(String::into_bytes)
        })
    }
}

fn policy_text(mode: &str, max_age: u64) -> String {
    format!("version: STSv1\nmode: {mode}\nmx: mx1.example.com\nmx: *.example.net\nmax_age: {max_age}\n")
}

fn down() -> FetchError {
    FetchError::Connect {
        url: fetch::url(DOMAIN),
        cause: "connection refused".into(),
    }
}

struct World {
    dns: Arc<Dns>,
    server: Arc<Server>,
    clock: Arc<AtomicU64>,
    sts: Arc<Sts>,
}

fn world_on(store: Store) -> World {
    let dns = Arc::new(Dns::default());
    let server = Arc::new(Server::new());
    let clock = Arc::new(AtomicU64::new(1_000_000));
    let c = clock.clone();
    let sts = Arc::new(Sts::with_clock(
        Cache::new(store),
        dns.clone(),
        server.clone(),
        crate::tls::webpki::Roots::none(),
        Settings {
            enabled: true,
            refresh_interval: 86400,
        },
        Arc::new(move || c.load(Ordering::SeqCst)),
    ));
    World {
        dns,
        server,
        clock,
        sts,
    }
}

fn world() -> World {
    world_on(Store::in_memory())
}

impl World {
    fn advance(&self, secs: u64) {
        self.clock.fetch_add(secs, Ordering::SeqCst);
    }
}

fn applied(d: &Discovery) -> Option<(&str, Source, Mode)> {
    d.applied
        .as_ref()
        .map(|a| (a.id.as_str(), a.source, a.policy.mode))
}

#[tokio::test]
async fn no_record_no_cache_means_no_policy_and_no_fetch() {
    let w = world();
    let d = w.sts.discover(DOMAIN).await;
    assert_eq!(d.txt, Txt::Absent);
    assert_eq!(d.applied, None);
    assert_eq!(d.problem, None);
    assert_eq!(w.server.count(), 0);
}

#[tokio::test]
async fn a_policy_is_fetched_once_then_served_from_the_cache() {
    let w = world();
    w.dns.set(Some("A1"));
    let d = w.sts.discover(DOMAIN).await;
    assert_eq!(applied(&d), Some(("A1", Source::Fetched, Mode::Enforce)));
    let a = d.applied.unwrap();
    assert_eq!(a.text, policy_text("enforce", 86400));
    assert_eq!(a.expires_at, a.fetched_at + 86400);
    w.advance(100);
    let d = w.sts.discover(DOMAIN).await;
    assert_eq!(applied(&d), Some(("A1", Source::Cache, Mode::Enforce)));
    assert_eq!(w.server.count(), 1);
}

#[tokio::test]
async fn a_new_txt_id_fetches_the_new_policy() {
    let w = world();
    w.dns.set(Some("A1"));
    w.sts.discover(DOMAIN).await;
    w.dns.set(Some("B2"));
    w.server.serve(Ok(policy_text("testing", 3600)));
    let d = w.sts.discover(DOMAIN).await;
    assert_eq!(applied(&d), Some(("B2", Source::Fetched, Mode::Testing)));
    assert_eq!(w.sts.cache().get(DOMAIN).unwrap().unwrap().id, "B2");
    assert_eq!(w.server.count(), 2);
}

#[tokio::test]
async fn a_failed_fetch_keeps_the_cached_policy_until_max_age() {
    let w = world();
    w.dns.set(Some("A1"));
    w.sts.discover(DOMAIN).await;
    // The id changes while the policy host is down.
    w.dns.set(Some("B2"));
    w.server.serve(Err(down()));
    w.advance(86400 - 1);
    let d = w.sts.discover(DOMAIN).await;
    assert_eq!(applied(&d), Some(("A1", Source::Cache, Mode::Enforce)));
    assert_eq!(d.problem, Some(down()));
    let cached = w.sts.cache().get(DOMAIN).unwrap().unwrap();
    assert_eq!(cached.refresh_failure.unwrap().1, down().to_string());
    // At max_age it no longer applies.
    w.advance(1);
    let d = w.sts.discover(DOMAIN).await;
    assert_eq!(d.applied, None);
    assert_eq!(d.problem, Some(down()));
}

#[tokio::test]
async fn a_failed_fetch_without_a_cache_means_no_policy_and_is_not_retried_at_once() {
    let w = world();
    w.dns.set(Some("A1"));
    w.server.serve(Err(down()));
    let d = w.sts.discover(DOMAIN).await;
    assert_eq!(d.applied, None);
    assert_eq!(
        d.problem.as_ref().map(|p| p.kind()),
        Some(crate::sts::PolicyFailure::FetchError)
    );
    // Within retry_after (300 s for a day's refresh interval) the
    // failure is remembered, not fetched again.
    w.server.serve(Ok(policy_text("enforce", 86400)));
    w.advance(10);
    let d = w.sts.discover(DOMAIN).await;
    assert_eq!(d.problem, Some(down()));
    assert_eq!(w.server.count(), 1);
    // After it, the next delivery fetches.
    w.advance(300);
    let d = w.sts.discover(DOMAIN).await;
    assert_eq!(applied(&d), Some(("A1", Source::Fetched, Mode::Enforce)));
    assert_eq!(w.server.count(), 2);
}

#[tokio::test]
async fn an_invalid_policy_is_not_cached_and_says_why() {
    let w = world();
    w.dns.set(Some("A1"));
    w.server
        .serve(Ok("version: STSv1\nmode: enforce\nmax_age: 60\n".into()));
    let d = w.sts.discover(DOMAIN).await;
    assert_eq!(d.applied, None);
    let p = d.problem.unwrap();
    assert_eq!(p.kind(), crate::sts::PolicyFailure::Invalid);
    assert_eq!(
        p.to_string(),
        "https://mta-sts.example.com/.well-known/mta-sts.txt: invalid policy: mode enforce needs at least one `mx` field"
    );
    assert_eq!(w.sts.cache().get(DOMAIN), Ok(None));
}

#[tokio::test]
async fn a_vanished_or_failing_txt_record_leaves_the_cached_policy_in_force() {
    let w = world();
    w.dns.set(Some("A1"));
    w.sts.discover(DOMAIN).await;
    w.dns.set(None);
    let d = w.sts.discover(DOMAIN).await;
    assert_eq!(d.txt, Txt::Absent);
    assert_eq!(applied(&d), Some(("A1", Source::Cache, Mode::Enforce)));
    w.dns.fail();
    let d = w.sts.discover(DOMAIN).await;
    assert!(matches!(d.txt, Txt::Failed(_)));
    assert_eq!(applied(&d), Some(("A1", Source::Cache, Mode::Enforce)));
    assert_eq!(w.server.count(), 1);
}

#[tokio::test]
async fn mode_none_is_cached_and_inactive() {
    let w = world();
    w.dns.set(Some("A1"));
    w.server
        .serve(Ok("version: STSv1\nmode: none\nmax_age: 600\n".into()));
    let d = w.sts.discover(DOMAIN).await;
    let a = d.applied.unwrap();
    assert!(!a.is_active());
    assert!(w.sts.cache().get(DOMAIN).unwrap().is_some());
}

#[tokio::test]
async fn concurrent_deliveries_share_one_fetch() {
    let w = world();
    w.dns.set(Some("A1"));
    let held = w.server.gate.acquire_many(1000).await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let sts = w.sts.clone();
        tasks.push(tokio::spawn(async move { sts.discover(DOMAIN).await }));
    }
    // Let every task reach the fetch or its lock.
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
    drop(held);
    for t in tasks {
        let d = t.await.unwrap();
        assert_eq!(d.applied.map(|a| a.id), Some("A1".to_owned()));
    }
    assert_eq!(w.server.count(), 1);
}

#[tokio::test]
async fn the_sweep_refreshes_before_expiry_and_drops_what_expired() {
    let w = world();
    w.dns.set(Some("A1"));
    w.server.serve(Ok(policy_text("enforce", 7200)));
    w.sts.discover(DOMAIN).await;
    // Not due yet (half of 7200 s).
    w.advance(3599);
    w.sts.sweep().await;
    assert_eq!(w.server.count(), 1);
    // Due: fetched again with the same id, which renews max_age.
    w.advance(1);
    w.sts.sweep().await;
    assert_eq!(w.server.count(), 2);
    let e = w.sts.cache().get(DOMAIN).unwrap().unwrap();
    assert_eq!(e.fetched_at, w.sts.now());
    // The host goes down: refreshes fail, the policy stays until it
    // expires, then it is dropped.
    w.server.serve(Err(down()));
    w.advance(3600);
    w.sts.sweep().await;
    assert_eq!(w.server.count(), 3);
    assert!(w.sts.cache().get(DOMAIN).unwrap().is_some());
    let d = w.sts.discover(DOMAIN).await;
    assert_eq!(applied(&d), Some(("A1", Source::Cache, Mode::Enforce)));
    w.advance(3600);
    w.sts.sweep().await;
    assert_eq!(w.sts.cache().get(DOMAIN), Ok(None));
}

#[tokio::test]
async fn refresh_fetches_even_when_cached_and_forget_removes() {
    let w = world();
    w.dns.set(Some("A1"));
    w.sts.discover(DOMAIN).await;
    let d = w.sts.refresh(DOMAIN).await;
    assert_eq!(applied(&d), Some(("A1", Source::Fetched, Mode::Enforce)));
    assert_eq!(w.server.count(), 2);
    assert_eq!(w.sts.forget(DOMAIN), Ok(true));
    assert_eq!(w.sts.forget(DOMAIN), Ok(false));
    w.dns.set(None);
    let d = w.sts.refresh(DOMAIN).await;
    assert_eq!(d.applied, None);
    assert_eq!(w.server.count(), 2);
}

#[tokio::test]
async fn the_cache_survives_a_restart() {
    let dir = std::env::temp_dir().join(format!("danegate-sts-discover-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    {
        let w = world_on(Store::open(&dir).unwrap());
        w.dns.set(Some("A1"));
        w.sts.discover(DOMAIN).await;
    }
    let w = world_on(Store::open(&dir).unwrap());
    w.dns.set(Some("A1"));
    w.server.serve(Err(down()));
    let d = w.sts.discover(DOMAIN).await;
    assert_eq!(applied(&d), Some(("A1", Source::Cache, Mode::Enforce)));
    assert_eq!(w.server.count(), 0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn times_read_as_rfc3339() {
    assert_eq!(time_text(0), "1970-01-01T00:00:00Z");
    assert_eq!(time_text(1_798_761_600), "2027-01-01T00:00:00Z");
}
