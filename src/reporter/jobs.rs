//! The sending state of each (day, domain) report in the state database:
//! when to try next, the report frozen at the first try (so every retry
//! sends the same bytes and report-id), and which destinations took it.
//! A report marked sent is never sent again, also across restarts.

use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::state::Store;
use crate::tlsrpt::counts::DbError;
use crate::tlsrpt::day::Day;

/// (day, domain) → job JSON.
const JOBS: TableDefinition<(u32, &str), &str> = TableDefinition::new("tlsrpt_jobs");
/// name → value: this instance's id.
const META: TableDefinition<&str, &str> = TableDefinition::new("tlsrpt_meta");

/// One destination of a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Destination {
    /// `https://...` or `mailto:...`.
    pub uri: String,
    pub state: DestState,
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When it was delivered (seconds since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DestState {
    Pending,
    Sent,
    /// Not attempted (a mailto: destination without a DKIM key).
    Skipped,
    /// Retried until `retry_for` ran out.
    Failed,
}

/// Where a report stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Not yet tried, or destinations still pending.
    Pending,
    /// Every destination settled (sent, skipped or failed).
    Done,
    /// The domain publishes no usable `_smtp._tls` record: nothing sent.
    NoPolicy(String),
    /// The record could not be looked up until `retry_for` ran out.
    GaveUp(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    pub status: Status,
    /// Not before this time (seconds since the epoch).
    pub next_try: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_try: Option<u64>,
    pub tries: u32,
    /// The report as first sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json: Option<String>,
    #[serde(default)]
    pub destinations: Vec<Destination>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

impl Job {
    pub fn new(next_try: u64) -> Job {
        Job {
            status: Status::Pending,
            next_try,
            first_try: None,
            tries: 0,
            json: None,
            destinations: Vec::new(),
            last_error: None,
        }
    }
}

fn db<E: std::fmt::Display>(e: E) -> DbError {
    DbError(e.to_string())
}

pub fn get(store: &Store, day: Day, domain: &str) -> Result<Option<Job>, DbError> {
    let tx = store.db().begin_read().map_err(db)?;
    let t = match tx.open_table(JOBS) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(e) => return Err(db(e)),
    };
    let v = t.get((day.0, domain)).map_err(db)?;
    v.map(|v| serde_json::from_str(v.value()).map_err(db))
        .transpose()
}

/// Stores `job` (durably, before anything is sent on its strength).
pub fn put(store: &Store, day: Day, domain: &str, job: &Job) -> Result<(), DbError> {
    let json = serde_json::to_string(job).map_err(db)?;
    let tx = store.db().begin_write().map_err(db)?;
    tx.open_table(JOBS)
        .map_err(db)?
        .insert((day.0, domain), json.as_str())
        .map_err(db)?;
    tx.commit().map_err(db)
}

/// Every job from `from` on, in (day, domain) order.
pub fn since(store: &Store, from: Day) -> Result<Vec<(Day, String, Job)>, DbError> {
    let tx = store.db().begin_read().map_err(db)?;
    let t = match tx.open_table(JOBS) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(db(e)),
    };
    let mut out = Vec::new();
    for row in t.range((from.0, "")..).map_err(db)? {
        let (k, v) = row.map_err(db)?;
        let (d, domain) = k.value();
        let job = serde_json::from_str(v.value()).map_err(db)?;
        out.push((Day(d), domain.to_owned(), job));
    }
    Ok(out)
}

/// Removes the jobs of days before `keep_from`.
pub fn prune(store: &Store, keep_from: Day) -> Result<(), DbError> {
    let tx = store.db().begin_write().map_err(db)?;
    tx.open_table(JOBS)
        .map_err(db)?
        .retain_in((0, "")..(keep_from.0, ""), |_, _| false)
        .map_err(db)?;
    tx.commit().map_err(db)
}

/// This instance's id, if it has one yet.
pub fn existing_instance_id(store: &Store) -> Result<Option<String>, DbError> {
    let tx = store.db().begin_read().map_err(db)?;
    let Ok(t) = tx.open_table(META) else {
        return Ok(None);
    };
    let v = t.get("instance").map_err(db)?;
    Ok(v.map(|v| v.value().to_owned()))
}

/// This instance's id, made on first use and kept.
pub fn instance_id(store: &Store) -> Result<String, DbError> {
    if let Some(id) = existing_instance_id(store)? {
        return Ok(id);
    }
    let id = crate::tlsrpt::report::new_instance_id();
    let tx = store.db().begin_write().map_err(db)?;
    tx.open_table(META)
        .map_err(db)?
        .insert("instance", id.as_str())
        .map_err(db)?;
    tx.commit().map_err(db)?;
    Ok(id)
}
