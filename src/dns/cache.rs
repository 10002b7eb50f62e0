//! The caching front of the DNS layer: implements [`Resolver`] over a
//! [`Backend`] (validating or trust-ad), with a timeout on every lookup
//! and a bounded cache that keeps answers for their TTL (denials for the
//! SOA minimum). Failures are never cached: the next lookup asks again.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Mutex;
use std::time::Duration;

use hickory_resolver::proto::rr::{RData, RecordType};
use tokio::time::Instant;

use super::{
    Alias, BoxFuture, DnsFailure, FailureKind, Lookup, LookupResult, Mx, Resolver, Security, Tlsa,
};

/// What kind of answer a backend got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawKind {
    Records,
    NoData,
    NxDomain,
}

/// A backend's answer, before it is typed.
#[derive(Debug, Clone)]
pub struct RawAnswer {
    pub kind: RawKind,
    pub records: Vec<RData>,
    pub security: Security,
    pub alias: Option<Alias>,
    /// Seconds this answer may be cached.
    pub ttl: u32,
}

/// One way of getting answers (see `hickory` and `wire`).
pub trait Backend: Send + Sync {
    fn query<'a>(
        &'a self,
        name: &'a str,
        rtype: RecordType,
    ) -> BoxFuture<'a, Result<RawAnswer, FailureKind>>;
}

/// Longest time an answer is kept, whatever its TTL says.
const MAX_TTL: u32 = 3600;

struct Entry {
    expires: Instant,
    answer: RawAnswer,
}

pub struct CachingResolver {
    backend: Box<dyn Backend>,
    cache: Mutex<HashMap<(String, RecordType), Entry>>,
    max_entries: usize,
    timeout: Duration,
}

impl CachingResolver {
    pub fn new(backend: Box<dyn Backend>, timeout: Duration, max_entries: usize) -> Self {
        CachingResolver {
            backend,
            cache: Mutex::new(HashMap::new()),
            max_entries: max_entries.max(1),
            timeout,
        }
    }

    /// A lookup through the cache. Public for the start-up probe and
    /// `danegate resolve`, which ask for DNSKEY.
    pub async fn raw(&self, name: &str, rtype: RecordType) -> Result<RawAnswer, DnsFailure> {
        let key = (name.trim_end_matches('.').to_ascii_lowercase(), rtype);
        let now = Instant::now();
        if let Some(e) = self.lock().get(&key) {
            if e.expires > now {
                return Ok(e.answer.clone());
            }
        }
        let fail = |kind| DnsFailure {
            name: if key.0.is_empty() {
                ".".to_owned()
            } else {
                key.0.clone()
            },
            rtype: rtype_label(rtype),
            kind,
        };
        let started = Instant::now();
        let answer =
            match tokio::time::timeout(self.timeout, self.backend.query(&key.0, rtype)).await {
                Err(_) => return Err(fail(FailureKind::Timeout)),
                Ok(Err(kind)) => return Err(fail(kind)),
                Ok(Ok(a)) => a,
            };
        crate::metrics::global().dns_lookup(started.elapsed());
        let ttl = answer.ttl.min(MAX_TTL);
        if ttl > 0 {
            let mut cache = self.lock();
            if cache.len() >= self.max_entries {
                cache.retain(|_, e| e.expires > now);
                if cache.len() >= self.max_entries {
                    // Still full of live entries: start afresh rather than
                    // grow; the cache is an optimisation, not a store.
                    cache.clear();
                }
            }
            cache.insert(
                key,
                Entry {
                    expires: now + Duration::from_secs(ttl.into()),
                    answer: answer.clone(),
                },
            );
        }
        Ok(answer)
    }

    /// The security of the SOA answer at `name` (records or a denial):
    /// the self-test's question whether a name validates.
    pub async fn soa_security(&self, name: &str) -> Result<Security, DnsFailure> {
        self.raw(name, RecordType::SOA).await.map(|a| a.security)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, RecordType), Entry>> {
        // A panic while holding the lock cannot leave the map inconsistent
        // (every operation is a single call), so a poisoned lock is usable.
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn typed<T>(
        &self,
        name: &str,
        rtype: RecordType,
        pick: impl Fn(&RData) -> Option<T>,
    ) -> LookupResult<T> {
        let a = self.raw(name, rtype).await?;
        Ok(match a.kind {
            RawKind::NxDomain => Lookup::NxDomain {
                security: a.security,
            },
            RawKind::NoData => Lookup::NoData {
                security: a.security,
            },
            RawKind::Records => {
                let records: Vec<T> = a.records.iter().filter_map(pick).collect();
                if records.is_empty() {
                    Lookup::NoData {
                        security: a.security,
                    }
                } else {
                    Lookup::Records {
                        records,
                        security: a.security,
                        canonical: a.alias,
                    }
                }
            }
        })
    }
}

pub fn rtype_label(rtype: RecordType) -> &'static str {
    match rtype {
        RecordType::MX => "MX",
        RecordType::A => "A",
        RecordType::AAAA => "AAAA",
        RecordType::TLSA => "TLSA",
        RecordType::DNSKEY => "DNSKEY",
        RecordType::DS => "DS",
        RecordType::CNAME => "CNAME",
        RecordType::NS => "NS",
        RecordType::TXT => "TXT",
        RecordType::SOA => "SOA",
        _ => "other",
    }
}

fn host(name: &hickory_resolver::proto::rr::Name) -> String {
    let s = name.to_ascii().trim_end_matches('.').to_ascii_lowercase();
    if s.is_empty() {
        ".".to_owned()
    } else {
        s
    }
}

impl Resolver for CachingResolver {
    fn mx<'a>(&'a self, name: &'a str) -> BoxFuture<'a, LookupResult<Mx>> {
        Box::pin(self.typed(name, RecordType::MX, |r| match r {
            RData::MX(mx) => Some(Mx {
                preference: mx.preference,
                exchange: host(&mx.exchange),
            }),
            _ => None,
        }))
    }

    fn ipv4<'a>(&'a self, name: &'a str) -> BoxFuture<'a, LookupResult<Ipv4Addr>> {
        Box::pin(self.typed(name, RecordType::A, |r| match r {
            RData::A(a) => Some(a.0),
            _ => None,
        }))
    }

    fn ipv6<'a>(&'a self, name: &'a str) -> BoxFuture<'a, LookupResult<Ipv6Addr>> {
        Box::pin(self.typed(name, RecordType::AAAA, |r| match r {
            RData::AAAA(a) => Some(a.0),
            _ => None,
        }))
    }

    fn tlsa<'a>(&'a self, name: &'a str) -> BoxFuture<'a, LookupResult<Tlsa>> {
        Box::pin(self.typed(name, RecordType::TLSA, |r| match r {
            RData::TLSA(t) => Some(Tlsa {
                usage: u8::from(t.cert_usage),
                selector: u8::from(t.selector),
                mtype: u8::from(t.matching),
                data: t.cert_data.clone(),
            }),
            _ => None,
        }))
    }

    fn txt<'a>(&'a self, name: &'a str) -> BoxFuture<'a, LookupResult<Vec<u8>>> {
        Box::pin(self.typed(name, RecordType::TXT, |r| match r {
            RData::TXT(t) => Some(t.txt_data.concat()),
            _ => None,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// Answers every query with one A record of the given TTL, or fails,
    /// counting the queries.
    struct Counting {
        calls: Arc<AtomicUsize>,
        ttl: u32,
        fail: bool,
        delay: Duration,
    }

    impl Backend for Counting {
        fn query<'a>(
            &'a self,
            _name: &'a str,
            _rtype: RecordType,
        ) -> BoxFuture<'a, Result<RawAnswer, FailureKind>> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move {
                tokio::time::sleep(self.delay).await;
                if self.fail {
                    return Err(FailureKind::ServFail);
                }
                Ok(RawAnswer {
                    kind: RawKind::Records,
                    records: vec![RData::A(Ipv4Addr::new(192, 0, 2, 1).into())],
                    security: Security::Secure,
                    alias: None,
                    ttl: self.ttl,
                })
            })
        }
    }

    fn resolver(ttl: u32, fail: bool, delay: Duration) -> (CachingResolver, Arc<AtomicUsize>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let backend = Counting {
            calls: calls.clone(),
            ttl,
            fail,
            delay,
        };
        (
            CachingResolver::new(Box::new(backend), Duration::from_secs(5), 2),
            calls,
        )
    }

    #[tokio::test(start_paused = true)]
    async fn answers_are_cached_for_their_ttl() {
        let (r, calls) = resolver(30, false, Duration::ZERO);
        r.ipv4("a.example").await.unwrap();
        r.ipv4("A.Example.").await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        tokio::time::advance(Duration::from_secs(31)).await;
        r.ipv4("a.example").await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn failures_are_not_cached_and_timeouts_fail() {
        let (r, calls) = resolver(30, true, Duration::ZERO);
        let e = r.ipv4("a.example").await.unwrap_err();
        assert_eq!(
            e.to_string(),
            "A lookup for a.example failed: server failure (SERVFAIL)"
        );
        r.ipv4("a.example").await.unwrap_err();
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        let (slow, _) = resolver(30, false, Duration::from_secs(6));
        let e = slow.tlsa("_25._tcp.mx.example").await.unwrap_err();
        assert_eq!(e.kind, FailureKind::Timeout);
        assert_eq!(e.rtype, "TLSA");
    }

    #[tokio::test(start_paused = true)]
    async fn cache_is_bounded() {
        let (r, calls) = resolver(300, false, Duration::ZERO);
        for name in ["a.example", "b.example", "c.example", "a.example"] {
            r.ipv4(name).await.unwrap();
        }
        assert!(r.lock().len() <= 2);
        // a.example was evicted when c.example came in.
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }
}
