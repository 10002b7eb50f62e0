//! Sending the daily TLS reports (RFC 8460 §5): after each UTC day, for
//! every domain that had sessions that day and publishes a usable
//! `_smtp._tls` record, one report to each of its destinations.
//!
//! Each (day, domain) becomes a job in the state database ([`jobs`]) at a
//! random moment up to `send_delay` after the day ends (RFC 8460 §4.1
//! suggests spreading the load). At its first try the record is looked
//! up and the report frozen; each destination that takes it is marked
//! sent at once, so nothing goes out twice, also across restarts; the
//! others are retried with growing pauses until `retry_for` runs out
//! (§5.5). A domain without sessions that day gets no report.
//!
//! How a report travels is [`Deliver`]'s business ([`deliver`]: HTTPS
//! POST, and mail through danegate's own outbound path); the content is
//! `tlsrpt`'s. The clock is injected, so a test can end a day.

pub mod deliver;
pub mod jobs;
pub mod live;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::Rng;
use tracing::{info, warn};

use crate::dns::{BoxFuture, Lookup, Resolver};
use crate::metrics;
use crate::state::Store;
use crate::tlsrpt::counts::{self, DbError};
use crate::tlsrpt::day::{Clock, Day};
use crate::tlsrpt::message::{Dkim, Letter};
use crate::tlsrpt::report::{self, Reporter};
use crate::tlsrpt::txt::{self, Rua};
use jobs::{DestState, Destination, Job, Status};

/// The first pause before a retry; it doubles with every try.
const FIRST_RETRY: u64 = 300;
/// The longest pause between tries.
const MAX_RETRY: u64 = 4 * 3600;
/// Reports are made for days that ended at most this many days ago
/// (after a long outage, older days are only shown by `danegate report`).
const LOOKBACK: u32 = 2;
/// The longest sleep between looks at the jobs (a reload or a clock
/// change is noticed within it).
const MAX_SLEEP: Duration = Duration::from_secs(60);

/// How reports travel.
pub trait Deliver: Send + Sync {
    /// POSTs `body` (`application/tlsrpt+gzip`) to `url`; Ok: the
    /// server's status line.
    fn post<'a>(&'a self, url: &'a str, body: &'a [u8]) -> BoxFuture<'a, Result<String, String>>;
    /// Mails `message` from `from` to `to`; Ok: the destination's reply.
    fn mail<'a>(
        &'a self,
        from: &'a str,
        to: &'a str,
        message: &'a [u8],
    ) -> BoxFuture<'a, Result<String, String>>;
}

/// The `[tlsrpt]` settings in force (they change on reload).
#[derive(Clone)]
pub struct Settings {
    pub enabled: bool,
    pub reporter: Reporter,
    pub send_delay: u64,
    pub retry_for: u64,
    pub keep_days: u32,
    pub dkim: Option<Arc<Dkim>>,
    pub resolver: Arc<dyn Resolver>,
}

/// Where the settings come from: the running configuration.
pub trait Source: Send + Sync {
    fn settings(&self) -> Settings;
}

/// The daily sender.
pub struct Daily {
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    pub source: Arc<dyn Source>,
    pub deliver: Arc<dyn Deliver>,
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}

impl Daily {
    /// Runs until the process ends.
    pub async fn run(self) {
        loop {
            let wait = match self.tick().await {
                Ok(w) => w,
                Err(e) => {
                    warn!("TLS reporting: {e}");
                    MAX_SLEEP
                }
            };
            tokio::time::sleep(wait.min(MAX_SLEEP)).await;
        }
    }

    /// One look at the jobs: makes the jobs of days that ended, runs
    /// those that are due, prunes old data. Returns how long to wait.
    pub async fn tick(&self) -> Result<Duration, DbError> {
        let s = self.source.settings();
        let now = self.clock.now();
        let today = Day::of(now);
        let keep_from = Day(today.0.saturating_sub(s.keep_days));
        counts::prune(&self.store, keep_from)?;
        jobs::prune(&self.store, keep_from)?;
        if !s.enabled {
            return Ok(MAX_SLEEP);
        }
        let oldest = Day(today.0.saturating_sub(LOOKBACK));
        self.make_jobs(&s, oldest, today)?;
        let mut next = secs(today.end());
        for (day, domain, job) in jobs::since(&self.store, oldest)? {
            if job.status != Status::Pending {
                continue;
            }
            let job = if job.next_try <= secs(self.clock.now()) {
                self.attempt(&s, day, &domain, job).await?
            } else {
                job
            };
            if job.status == Status::Pending {
                next = next.min(job.next_try);
            }
        }
        Ok(
            Duration::from_secs(next.saturating_sub(secs(self.clock.now())))
                .max(Duration::from_millis(200)),
        )
    }

    /// A job, at a random moment after the day's end, for every domain
    /// with sessions on a day that ended.
    fn make_jobs(&self, s: &Settings, oldest: Day, today: Day) -> Result<(), DbError> {
        for day in counts::days(&self.store)? {
            if day < oldest || day >= today {
                continue;
            }
            for d in counts::day(&self.store, day, None)? {
                if jobs::get(&self.store, day, &d.domain)?.is_some() {
                    continue;
                }
                let delay = rand::thread_rng().gen_range(0..=s.send_delay);
                jobs::put(
                    &self.store,
                    day,
                    &d.domain,
                    &Job::new(secs(day.end()) + delay),
                )?;
            }
        }
        Ok(())
    }

    /// One try of one job; the job as it is afterwards (stored).
    async fn attempt(
        &self,
        s: &Settings,
        day: Day,
        domain: &str,
        mut job: Job,
    ) -> Result<Job, DbError> {
        let now = secs(self.clock.now());
        job.tries += 1;
        let first = *job.first_try.get_or_insert(now);
        if job.json.is_none() {
            match self.freeze(s, day, domain).await? {
                Frozen::Report(json, destinations) => {
                    job.json = Some(json);
                    job.destinations = destinations;
                    job.last_error = None;
                }
                Frozen::NoPolicy(why) => {
                    info!("TLS report for {domain} ({day}) not sent: {why}");
                    job.status = Status::NoPolicy(why);
                }
                Frozen::Retry(why) => job.last_error = Some(why),
            }
            jobs::put(&self.store, day, domain, &job)?;
        }
        let gzip = job.json.as_ref().map(|j| report::gzip(j.as_bytes()));
        for i in 0..job.destinations.len() {
            let (Some(gzip), DestState::Pending) = (&gzip, job.destinations[i].state) else {
                continue;
            };
            let result = self
                .send(s, day, domain, &job.destinations[i].uri, gzip)
                .await;
            let dest = &mut job.destinations[i];
            dest.attempts += 1;
            let method = if dest.uri.starts_with("mailto:") {
                "mailto"
            } else {
                "https"
            };
            match result {
                Ok(said) => {
                    metrics::global().tlsrpt_report(method, "sent");
                    info!(
                        "TLS report for {domain} ({day}) sent to {}: {said}",
                        dest.uri
                    );
                    dest.state = DestState::Sent;
                    dest.sent_at = Some(secs(self.clock.now()));
                    dest.last_error = None;
                }
                Err(e) => {
                    metrics::global().tlsrpt_report(method, "failed");
                    warn!(
                        "TLS report for {domain} ({day}) to {} failed (try {}): {e}",
                        dest.uri, dest.attempts
                    );
                    dest.last_error = Some(e);
                }
            }
            // Marked sent before anything else is tried.
            jobs::put(&self.store, day, domain, &job)?;
        }
        self.settle(s, &mut job, first, now, day, domain);
        jobs::put(&self.store, day, domain, &job)?;
        Ok(job)
    }

    /// Done, retried later, or given up.
    fn settle(&self, s: &Settings, job: &mut Job, first: u64, now: u64, day: Day, domain: &str) {
        if job.status != Status::Pending {
            return;
        }
        let pending = job.json.is_none()
            || job
                .destinations
                .iter()
                .any(|d| d.state == DestState::Pending);
        if !pending {
            job.status = Status::Done;
            return;
        }
        if now.saturating_sub(first) >= s.retry_for {
            for d in &mut job.destinations {
                if d.state == DestState::Pending {
                    d.state = DestState::Failed;
                }
            }
            match job.json {
                Some(_) => job.status = Status::Done,
                None => job.status = Status::GaveUp(job.last_error.clone().unwrap_or_default()),
            }
            warn!(
                "TLS report for {domain} ({day}): giving up after {} tries",
                job.tries
            );
            return;
        }
        let pause = FIRST_RETRY
            .saturating_mul(1u64 << job.tries.saturating_sub(1).min(20))
            .min(MAX_RETRY);
        job.next_try = now + pause;
    }

    /// The record lookup and the report as it will be sent.
    async fn freeze(&self, s: &Settings, day: Day, domain: &str) -> Result<Frozen, DbError> {
        let name = format!("_smtp._tls.{domain}");
        let txts = match s.resolver.txt(&name).await {
            Err(e) => return Ok(Frozen::Retry(e.to_string())),
            Ok(Lookup::Records { records, .. }) => records,
            Ok(_) => return Ok(Frozen::NoPolicy(format!("no TXT record at {name}"))),
        };
        let record = match txt::select(&txts) {
            Ok(r) => r,
            Err(e) => return Ok(Frozen::NoPolicy(format!("{name}: {e}"))),
        };
        let Some(counts) = counts::day(&self.store, day, Some(domain))?.pop() else {
            return Ok(Frozen::NoPolicy("no sessions that day".into()));
        };
        let json = String::from_utf8(report::to_json(&s.reporter.report(day, &counts)))
            .expect("JSON is UTF-8");
        let destinations = record
            .rua
            .iter()
            .map(|rua| {
                let skipped = matches!(rua, Rua::Mailto(_)) && s.dkim.is_none();
                Destination {
                    uri: rua.to_string(),
                    state: if skipped { DestState::Skipped } else { DestState::Pending },
                    attempts: 0,
                    last_error: skipped.then(|| {
                        "no DKIM key (tlsrpt.dkim_key): RFC 8460 §3 has receivers ignore unsigned mailed reports".to_owned()
                    }),
                    sent_at: None,
                }
            })
            .collect();
        Ok(Frozen::Report(json, destinations))
    }

    async fn send(
        &self,
        s: &Settings,
        day: Day,
        domain: &str,
        uri: &str,
        gzip: &[u8],
    ) -> Result<String, String> {
        match uri.strip_prefix("mailto:") {
            None => self.deliver.post(uri, gzip).await,
            Some(to) => {
                let letter = Letter {
                    reporter: &s.reporter,
                    day,
                    domain,
                    to,
                    gzip,
                    now: self.clock.now(),
                };
                let message = letter.compose(s.dkim.as_deref())?;
                self.deliver.mail(&s.reporter.contact, to, &message).await
            }
        }
    }
}

enum Frozen {
    Report(String, Vec<Destination>),
    NoPolicy(String),
    Retry(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::{DnsFailure, FailureKind, LookupResult, Mx, Security};
    use crate::tlsrpt::counts::{Event, Limits};
    use crate::tlsrpt::model::{Failure, Policy, ResultType};
    use std::collections::HashMap;
    use std::net::{Ipv4Addr, Ipv6Addr};
    use std::sync::Mutex;

    struct TxtTable(HashMap<String, LookupResult<Vec<u8>>>);

    impl Resolver for TxtTable {
        fn mx<'a>(&'a self, name: &'a str) -> BoxFuture<'a, LookupResult<Mx>> {
            Box::pin(async move {
                Err(DnsFailure {
                    name: name.into(),
                    rtype: "MX",
                    kind: FailureKind::Refused,
                })
            })
        }
        fn ipv4<'a>(&'a self, name: &'a str) -> BoxFuture<'a, LookupResult<Ipv4Addr>> {
            Box::pin(async move {
                Err(DnsFailure {
                    name: name.into(),
                    rtype: "A",
                    kind: FailureKind::Refused,
                })
            })
        }
        fn ipv6<'a>(&'a self, name: &'a str) -> BoxFuture<'a, LookupResult<Ipv6Addr>> {
            Box::pin(async move {
                Err(DnsFailure {
                    name: name.into(),
                    rtype: "AAAA",
                    kind: FailureKind::Refused,
                })
            })
        }
        fn txt<'a>(&'a self, name: &'a str) -> BoxFuture<'a, LookupResult<Vec<u8>>> {
            let answer = self.0.get(name).cloned().unwrap_or(Ok(Lookup::NxDomain {
                security: Security::Insecure,
            }));
            Box::pin(async move { answer })
        }
    }

    fn txt(record: &str) -> LookupResult<Vec<u8>> {
        Ok(Lookup::Records {
            records: vec![record.as_bytes().to_vec()],
            security: Security::Insecure,
            canonical: None,
        })
    }

    #[derive(Default)]
    struct Recorded {
        posts: Vec<(String, Vec<u8>)>,
        mails: Vec<(String, String, Vec<u8>)>,
        /// URLs that fail, and how many more times.
        failing: HashMap<String, u32>,
    }

    struct FakeDeliver(Mutex<Recorded>);

    impl Deliver for FakeDeliver {
        fn post<'a>(
            &'a self,
            url: &'a str,
            body: &'a [u8],
        ) -> BoxFuture<'a, Result<String, String>> {
            let mut r = self.0.lock().unwrap();
            r.posts.push((url.to_owned(), body.to_vec()));
            let fail = match r.failing.get_mut(url) {
                Some(n) if *n > 0 => {
                    *n -= 1;
                    true
                }
                _ => false,
            };
            Box::pin(async move {
                if fail {
                    Err("HTTP 503".into())
                } else {
                    Ok("HTTP 200".into())
                }
            })
        }
        fn mail<'a>(
            &'a self,
            from: &'a str,
            to: &'a str,
            message: &'a [u8],
        ) -> BoxFuture<'a, Result<String, String>> {
            self.0
                .lock()
                .unwrap()
                .mails
                .push((from.to_owned(), to.to_owned(), message.to_vec()));
            Box::pin(async { Ok("250 2.0.0 Ok: queued".into()) })
        }
    }

    struct FixedClock(Mutex<SystemTime>);
    impl Clock for FixedClock {
        fn now(&self) -> SystemTime {
            *self.0.lock().unwrap()
        }
    }

    struct Fixed(Settings);
    impl Source for Fixed {
        fn settings(&self) -> Settings {
            self.0.clone()
        }
    }

    fn settings(resolver: Arc<dyn Resolver>, dkim: bool) -> Settings {
        let dkim = dkim.then(|| {
            let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
            Arc::new(Dkim::from_pem(kp.serialize_pem().as_bytes(), "example.com", "s").unwrap())
        });
        Settings {
            enabled: true,
            reporter: Reporter {
                organization: "Example".into(),
                contact: "tlsrpt@example.com".into(),
                submitter: "example.com".into(),
                instance: "00000000000000aa".into(),
            },
            send_delay: 0,
            retry_for: 3600,
            keep_days: 14,
            dkim,
            resolver,
        }
    }

    struct World {
        daily: Daily,
        clock: Arc<FixedClock>,
        deliver: Arc<FakeDeliver>,
        day: Day,
    }

    fn world(store: Store, dkim: bool, failing: &[(&str, u32)]) -> World {
        let resolver = Arc::new(TxtTable(HashMap::from([
            (
                "_smtp._tls.a.example".to_owned(),
                txt("v=TLSRPTv1; rua=https://r.a.example/v1,mailto:tlsrpt@a.example"),
            ),
            (
                "_smtp._tls.c.example".to_owned(),
                txt("v=TLSRPTv1; rua=ftp://r.c.example/"),
            ),
            (
                "_smtp._tls.d.example".to_owned(),
                txt("v=TLSRPTv1; rua=https://r.d.example/"),
            ),
            (
                "_smtp._tls.e.example".to_owned(),
                txt("v=TLSRPTv1; rua=https://r.e.example/"),
            ),
            (
                "_smtp._tls.f.example".to_owned(),
                Err(DnsFailure {
                    name: "_smtp._tls.f.example".into(),
                    rtype: "TXT",
                    kind: FailureKind::ServFail,
                }),
            ),
        ])));
        let day = Day::parse("2026-12-06").unwrap();
        let clock = Arc::new(FixedClock(Mutex::new(
            day.start() + Duration::from_secs(43200),
        )));
        let deliver = Arc::new(FakeDeliver(Mutex::new(Recorded {
            failing: failing.iter().map(|(u, n)| (u.to_string(), *n)).collect(),
            ..Default::default()
        })));
        let daily = Daily {
            store,
            clock: clock.clone(),
            source: Arc::new(Fixed(settings(resolver, dkim))),
            deliver: deliver.clone(),
        };
        World {
            daily,
            clock,
            deliver,
            day,
        }
    }

    fn traffic(store: &Store, day: Day) {
        let fail = Failure::new(ResultType::StarttlsNotSupported, "no STARTTLS");
        let mut ev = Vec::new();
        for d in [
            "a.example",
            "b.example",
            "c.example",
            "e.example",
            "f.example",
        ] {
            ev.push((day, Event::success(d, Policy::none(d))));
            ev.push((day, Event::failure(d, Policy::none(d), fail.clone())));
        }
        counts::add(store, &ev, Limits { max_details: 10 }).unwrap();
    }

    impl World {
        fn at(&self, t: SystemTime) {
            *self.clock.0.lock().unwrap() = t;
        }
        fn sent(&self) -> (Vec<String>, Vec<String>) {
            let r = self.deliver.0.lock().unwrap();
            (
                r.posts.iter().map(|p| p.0.clone()).collect(),
                r.mails.iter().map(|m| m.1.clone()).collect(),
            )
        }
    }

    #[tokio::test]
    async fn reports_go_out_once_after_the_day_and_never_again() {
        let store = Store::in_memory();
        let w = world(store.clone(), true, &[("https://r.e.example/", 1)]);
        traffic(&store, w.day);
        // During the day: nothing.
        w.daily.tick().await.unwrap();
        assert_eq!(w.sent(), (vec![], vec![]));
        // The day ends.
        w.at(w.day.end() + Duration::from_secs(1));
        w.daily.tick().await.unwrap();
        let (posts, mails) = w.sent();
        assert_eq!(
            posts,
            vec!["https://r.a.example/v1", "https://r.e.example/"]
        );
        assert_eq!(mails, vec!["tlsrpt@a.example"]);
        // The report sent is the day's, for a.example, as gzip.
        let body = w.deliver.0.lock().unwrap().posts[0].1.clone();
        let mut json = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&body[..]), &mut json)
            .unwrap();
        let r: crate::tlsrpt::model::Report = serde_json::from_slice(&json).unwrap();
        assert_eq!(
            r.report_id,
            "2026-12-06.00000000000000aa.a.example@example.com"
        );
        assert_eq!(r.policies[0].summary.successful, 1);
        assert_eq!(r.policies[0].summary.failed, 1);
        let b = jobs::get(&store, w.day, "b.example").unwrap().unwrap();
        assert_eq!(
            b.status,
            Status::NoPolicy("no TXT record at _smtp._tls.b.example".into())
        );
        let c = jobs::get(&store, w.day, "c.example").unwrap().unwrap();
        assert!(
            matches!(c.status, Status::NoPolicy(ref why) if why.contains("no rua URI has a scheme")),
            "{c:?}"
        );
        // d.example publishes a record but had no traffic: no job at all.
        assert_eq!(jobs::get(&store, w.day, "d.example").unwrap(), None);
        // e.example failed once: retried after the first pause.
        let e = jobs::get(&store, w.day, "e.example").unwrap().unwrap();
        assert_eq!(e.status, Status::Pending);
        assert_eq!(e.destinations[0].last_error.as_deref(), Some("HTTP 503"));
        w.daily.tick().await.unwrap();
        assert_eq!(w.sent().0.len(), 2, "nothing again before the pause ends");
        w.at(w.day.end() + Duration::from_secs(1 + FIRST_RETRY));
        w.daily.tick().await.unwrap();
        assert_eq!(
            w.sent().0,
            vec![
                "https://r.a.example/v1",
                "https://r.e.example/",
                "https://r.e.example/"
            ]
        );
        let e = jobs::get(&store, w.day, "e.example").unwrap().unwrap();
        assert_eq!(
            (
                e.status,
                e.destinations[0].state,
                e.destinations[0].attempts
            ),
            (Status::Done, DestState::Sent, 2)
        );
        // A restart (a new sender on the same database) sends nothing twice.
        let again = world(store.clone(), true, &[]);
        again.at(w.day.end() + Duration::from_secs(7200));
        again.daily.tick().await.unwrap();
        assert_eq!(again.sent(), (vec![], vec![]));
        // f.example's record lookup fails until retry_for runs out.
        let f = jobs::get(&store, w.day, "f.example").unwrap().unwrap();
        assert_eq!(
            f.status,
            Status::GaveUp(
                "TXT lookup for _smtp._tls.f.example failed: server failure (SERVFAIL)".into()
            )
        );
    }

    #[tokio::test]
    async fn mailto_without_a_dkim_key_is_skipped_and_the_delay_is_bounded() {
        let store = Store::in_memory();
        let mut w = world(store.clone(), false, &[]);
        let mut s = w.daily.source.settings();
        s.send_delay = 600;
        w.daily.source = Arc::new(Fixed(s));
        traffic(&store, w.day);
        w.at(w.day.end());
        w.daily.tick().await.unwrap();
        for (_, _, job) in jobs::since(&store, w.day).unwrap() {
            assert!(job.next_try >= secs(w.day.end()) && job.next_try <= secs(w.day.end()) + 600);
        }
        w.at(w.day.end() + Duration::from_secs(601));
        w.daily.tick().await.unwrap();
        // Each at its own random moment: in any order.
        let (mut posts, mails) = w.sent();
        posts.sort();
        assert_eq!(
            (posts, mails),
            (
                vec![
                    "https://r.a.example/v1".to_owned(),
                    "https://r.e.example/".to_owned()
                ],
                vec![]
            )
        );
        w.daily.tick().await.unwrap();
        assert_eq!(
            w.sent(),
            (
                vec![
                    "https://r.a.example/v1".to_owned(),
                    "https://r.e.example/".to_owned()
                ],
                vec![]
            )
        );
        let a = jobs::get(&store, w.day, "a.example").unwrap().unwrap();
        assert_eq!(a.status, Status::Done);
        assert_eq!(a.destinations[1].state, DestState::Skipped);
        assert!(a.destinations[1]
            .last_error
            .as_deref()
            .unwrap()
            .contains("RFC 8460 §3"));
    }
}
