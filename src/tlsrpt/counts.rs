//! The day's counts in the state database: sessions per (day, report
//! domain, policy) and failed sessions per failure detail, written in
//! redb transactions that are durable when they commit.
//!
//! Distinct failure details are capped per domain and day
//! ([`Limits::max_details`]): past the cap a failed session still counts
//! in its policy's summary, and in the domain's overflow counter, but
//! adds no detail. Nothing here decides what is recorded or sent.

use std::collections::BTreeMap;

use redb::{ReadableDatabase, ReadableTable, TableDefinition};

use super::day::Day;
use super::model::{Failure, FailureDetail, Policy, PolicyResult, Summary};
use crate::state::Store;

/// (day, report domain, policy JSON) → (successful, failed sessions).
const SESSIONS: TableDefinition<(u32, &str, &str), (u64, u64)> =
    TableDefinition::new("tlsrpt_sessions");
/// (day, report domain, policy JSON, failure JSON) → failed sessions.
const DETAILS: TableDefinition<(u32, &str, &str, &str), u64> =
    TableDefinition::new("tlsrpt_details");
/// (day, report domain) → (distinct failure details, failed sessions
/// past the cap).
const LIMITS: TableDefinition<(u32, &str), (u64, u64)> = TableDefinition::new("tlsrpt_limits");

/// One session's outcome, as the outbound side reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The domain whose `_smtp._tls` record gets the report (the
    /// recipient domain, or a route's MX-looked-up host).
    pub domain: String,
    pub policy: Policy,
    /// None: a session that met its policy.
    pub failure: Option<Failure>,
}

impl Event {
    pub fn success(domain: &str, policy: Policy) -> Event {
        Event {
            domain: domain.to_owned(),
            policy,
            failure: None,
        }
    }

    pub fn failure(domain: &str, policy: Policy, failure: Failure) -> Event {
        Event {
            domain: domain.to_owned(),
            policy,
            failure: Some(failure),
        }
    }
}

/// Bounds on what one domain and day may hold.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_details: u64,
}

/// A state database error, in words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("state database: {0}")]
pub struct DbError(pub String);

fn db<E: std::fmt::Display>(e: E) -> DbError {
    DbError(e.to_string())
}

/// Adds `events` (each on its day) in one durable transaction.
pub fn add(store: &Store, events: &[(Day, Event)], limits: Limits) -> Result<(), DbError> {
    let tx = store.db().begin_write().map_err(db)?;
    {
        let mut sessions = tx.open_table(SESSIONS).map_err(db)?;
        let mut details = tx.open_table(DETAILS).map_err(db)?;
        let mut caps = tx.open_table(LIMITS).map_err(db)?;
        for (day, e) in events {
            let policy = e.policy.key();
            let key = (day.0, e.domain.as_str(), policy.as_str());
            let (ok, failed) = sessions
                .get(key)
                .map_err(db)?
                .map(|v| v.value())
                .unwrap_or((0, 0));
            let counts = match e.failure {
                None => (ok + 1, failed),
                Some(_) => (ok, failed + 1),
            };
            sessions.insert(key, counts).map_err(db)?;
            let Some(f) = &e.failure else { continue };
            let detail = f.key();
            let dkey = (day.0, e.domain.as_str(), policy.as_str(), detail.as_str());
            let cap_key = (day.0, e.domain.as_str());
            let known = details.get(dkey).map_err(db)?.map(|v| v.value());
            let (distinct, overflow) = caps
                .get(cap_key)
                .map_err(db)?
                .map(|v| v.value())
                .unwrap_or((0, 0));
            match known {
                Some(n) => {
                    details.insert(dkey, n + 1).map_err(db)?;
                }
                None if distinct < limits.max_details => {
                    details.insert(dkey, 1).map_err(db)?;
                    caps.insert(cap_key, (distinct + 1, overflow)).map_err(db)?;
                }
                None => {
                    caps.insert(cap_key, (distinct, overflow + 1)).map_err(db)?;
                }
            }
        }
    }
    tx.commit().map_err(db)
}

/// One domain's day: its policies with counts and details, and how many
/// failed sessions went past the cap on details.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainDay {
    pub domain: String,
    pub policies: Vec<PolicyResult>,
    pub overflow: u64,
}

impl DomainDay {
    pub fn sessions(&self) -> Summary {
        Summary::total(&self.policies)
    }
}

/// Every domain with sessions on `day` (or only `only`), in name order;
/// policies and details in a stable order (policies by JSON, details by
/// count, most first).
pub fn day(store: &Store, day: Day, only: Option<&str>) -> Result<Vec<DomainDay>, DbError> {
    let tx = store.db().begin_read().map_err(db)?;
    let sessions = match tx.open_table(SESSIONS) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(db(e)),
    };
    let details = tx.open_table(DETAILS).map_err(db)?;
    let caps = tx.open_table(LIMITS).map_err(db)?;
    let mut out: BTreeMap<String, DomainDay> = BTreeMap::new();
    for row in sessions
        .range((day.0, "", "")..(day.0 + 1, "", ""))
        .map_err(db)?
    {
        let (k, v) = row.map_err(db)?;
        let (_, domain, policy_json) = k.value();
        if only.is_some_and(|d| d != domain) {
            continue;
        }
        let (successful, failed) = v.value();
        let policy: Policy = serde_json::from_str(policy_json).map_err(db)?;
        let mut failure_details = Vec::new();
        let from = (day.0, domain, policy_json, "");
        for row in details.range(from..).map_err(db)? {
            let (dk, dv) = row.map_err(db)?;
            let (d, dom, pol, detail) = dk.value();
            if d != day.0 || dom != domain || pol != policy_json {
                break;
            }
            let failure: Failure = serde_json::from_str(detail).map_err(db)?;
            failure_details.push(FailureDetail {
                failure,
                count: dv.value(),
            });
        }
        failure_details.sort_by(|a, b| b.count.cmp(&a.count).then(a.failure.cmp(&b.failure)));
        let entry = out.entry(domain.to_owned()).or_insert_with(|| DomainDay {
            domain: domain.to_owned(),
            policies: Vec::new(),
            overflow: caps
                .get((day.0, domain))
                .ok()
                .flatten()
                .map(|v| v.value().1)
                .unwrap_or(0),
        });
        entry.policies.push(PolicyResult {
            policy,
            summary: Summary { successful, failed },
            failure_details,
        });
    }
    Ok(out.into_values().collect())
}

/// The days that have any sessions, oldest first.
pub fn days(store: &Store) -> Result<Vec<Day>, DbError> {
    let tx = store.db().begin_read().map_err(db)?;
    let sessions = match tx.open_table(SESSIONS) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(db(e)),
    };
    let mut days = Vec::new();
    let mut next = 0u32;
    // Jump from day to day instead of walking every row.
    loop {
        let mut range = sessions.range((next, "", "")..).map_err(db)?;
        let Some(row) = range.next() else { break };
        let (k, _) = row.map_err(db)?;
        let d = k.value().0;
        days.push(Day(d));
        match d.checked_add(1) {
            Some(n) => next = n,
            None => break,
        }
    }
    Ok(days)
}

/// Removes every count of days before `keep_from`.
pub fn prune(store: &Store, keep_from: Day) -> Result<(), DbError> {
    let tx = store.db().begin_write().map_err(db)?;
    {
        let mut t = tx.open_table(SESSIONS).map_err(db)?;
        t.retain_in((0, "", "")..(keep_from.0, "", ""), |_, _| false)
            .map_err(db)?;
        let mut t = tx.open_table(DETAILS).map_err(db)?;
        t.retain_in((0, "", "", "")..(keep_from.0, "", "", ""), |_, _| false)
            .map_err(db)?;
        let mut t = tx.open_table(LIMITS).map_err(db)?;
        t.retain_in((0, "")..(keep_from.0, ""), |_, _| false)
            .map_err(db)?;
    }
    tx.commit().map_err(db)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tlsrpt::model::ResultType;

    fn fail(result: ResultType, mx: &str) -> Failure {
        Failure {
            mx_host: Some(mx.into()),
            sending_ip: Some("192.0.2.1".into()),
            ..Failure::new(result, "why")
        }
    }

    #[test]
    fn sessions_and_details_add_up_per_day_domain_and_policy() {
        let store = Store::in_memory();
        let d = Day(20_000);
        let tlsa = Policy::tlsa("mx.a.example", ["3 1 1 aa".to_owned()]);
        let none = Policy::none("b.example");
        let ev = vec![
            (d, Event::success("a.example", tlsa.clone())),
            (d, Event::success("a.example", tlsa.clone())),
            (
                d,
                Event::failure(
                    "a.example",
                    tlsa.clone(),
                    fail(ResultType::CertificateNotTrusted, "mx.a.example"),
                ),
            ),
            (
                d,
                Event::failure(
                    "b.example",
                    none.clone(),
                    fail(ResultType::StarttlsNotSupported, "mx.b.example"),
                ),
            ),
            (d.next(), Event::success("a.example", tlsa.clone())),
        ];
        add(&store, &ev, Limits { max_details: 10 }).unwrap();
        add(&store, &ev[2..3], Limits { max_details: 10 }).unwrap();
        let got = day(&store, d, None).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].domain, "a.example");
        assert_eq!(got[0].policies.len(), 1);
        assert_eq!(got[0].policies[0].policy, tlsa);
        assert_eq!(
            got[0].policies[0].summary,
            Summary {
                successful: 2,
                failed: 2
            }
        );
        assert_eq!(got[0].policies[0].failure_details.len(), 1);
        assert_eq!(got[0].policies[0].failure_details[0].count, 2);
        assert_eq!(got[1].domain, "b.example");
        assert_eq!(
            got[1].sessions(),
            Summary {
                successful: 0,
                failed: 1
            }
        );
        assert_eq!(day(&store, d, Some("b.example")).unwrap().len(), 1);
        assert_eq!(
            day(&store, d.next(), None).unwrap()[0]
                .sessions()
                .successful,
            1
        );
        assert_eq!(days(&store).unwrap(), vec![d, d.next()]);
        prune(&store, d.next()).unwrap();
        assert_eq!(days(&store).unwrap(), vec![d.next()]);
        assert!(day(&store, d, None).unwrap().is_empty());
    }

    #[test]
    fn distinct_details_are_capped_and_the_rest_overflows() {
        let store = Store::in_memory();
        let d = Day(20_001);
        let p = Policy::none("c.example");
        let ev: Vec<_> = (0..5)
            .map(|i| {
                (
                    d,
                    Event::failure(
                        "c.example",
                        p.clone(),
                        fail(ResultType::ValidationFailure, &format!("mx{i}.c.example")),
                    ),
                )
            })
            .collect();
        add(&store, &ev, Limits { max_details: 3 }).unwrap();
        // A known detail still counts after the cap.
        add(&store, &ev[..1], Limits { max_details: 3 }).unwrap();
        let got = &day(&store, d, None).unwrap()[0];
        assert_eq!(got.sessions().failed, 6);
        assert_eq!(got.overflow, 2);
        let counts: Vec<u64> = got.policies[0]
            .failure_details
            .iter()
            .map(|f| f.count)
            .collect();
        assert_eq!(counts, vec![2, 1, 1]);
    }

    #[test]
    fn an_empty_database_has_no_days() {
        let store = Store::in_memory();
        assert!(days(&store).unwrap().is_empty());
        assert!(day(&store, Day(1), None).unwrap().is_empty());
    }
}
