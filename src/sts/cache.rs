//! The policy cache (RFC 8461 §3.3, §5.1) in danegate's state database,
//! so that it survives restarts: without it every restart would open
//! the trust-on-first-use window again.
//!
//! One redb table, `mta_sts_policies`: recipient domain → the policy as
//! fetched (its text, the TXT `id` it was fetched for, when), as JSON.
//! This module stores and reads entries and answers "expired?" and
//! "due for a refresh?"; when to fetch is `discover`'s business.

use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::state::Store;
use crate::sts::policy::{self, Policy, PolicyError};

const TABLE: TableDefinition<&str, &[u8]> = TableDefinition::new("mta_sts_policies");

/// One cached policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The recipient (policy) domain, lowercase.
    pub domain: String,
    /// The `id` of the TXT record the policy was fetched for.
    pub id: String,
    /// The body exactly as fetched (valid when stored).
    pub text: String,
    /// When it was fetched (Unix seconds).
    pub fetched_at: u64,
    /// The policy's `max_age` (seconds).
    pub max_age: u64,
    /// The last failed attempt to refresh it: when, and why.
    #[serde(default)]
    pub refresh_failure: Option<(u64, String)>,
}

impl Entry {
    /// The policy (the text was valid when stored).
    pub fn policy(&self) -> Result<Policy, PolicyError> {
        policy::parse(self.text.as_bytes())
    }

    /// When the policy stops applying: `max_age` after the fetch.
    pub fn expires_at(&self) -> u64 {
        self.fetched_at.saturating_add(self.max_age)
    }

    pub fn is_expired(&self, now: u64) -> bool {
        now >= self.expires_at()
    }

    /// When to fetch it again although its `id` did not change: after
    /// `interval`, or half its `max_age` if that is sooner, so that a
    /// refresh is tried well before it expires (§3.3, §10.2).
    pub fn refresh_at(&self, interval: u64) -> u64 {
        self.fetched_at
            .saturating_add(interval.min(self.max_age / 2))
    }
}

/// The cache, on a [`Store`].
#[derive(Clone, Debug)]
pub struct Cache {
    store: Store,
}

/// A database error, as text for logs (the cache then acts as empty).
pub type CacheResult<T> = Result<T, String>;

impl Cache {
    pub fn new(store: Store) -> Cache {
        Cache { store }
    }

    /// Where the entries live ("memory ..." when not kept).
    pub fn location(&self) -> String {
        self.store.location()
    }

    pub fn is_durable(&self) -> bool {
        self.store.is_durable()
    }

    pub fn get(&self, domain: &str) -> CacheResult<Option<Entry>> {
        let tx = self.store.db().begin_read().map_err(|e| e.to_string())?;
        let table = match tx.open_table(TABLE) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(e.to_string()),
        };
        let Some(v) = table.get(domain).map_err(|e| e.to_string())? else {
            return Ok(None);
        };
        let entry = serde_json::from_slice(v.value())
            .map_err(|e| format!("cached policy of {domain} is unreadable: {e}"))?;
        Ok(Some(entry))
    }

    pub fn put(&self, entry: &Entry) -> CacheResult<()> {
        let json = serde_json::to_vec(entry).map_err(|e| e.to_string())?;
        let tx = self.store.db().begin_write().map_err(|e| e.to_string())?;
        {
            let mut table = tx.open_table(TABLE).map_err(|e| e.to_string())?;
            table
                .insert(entry.domain.as_str(), json.as_slice())
                .map_err(|e| e.to_string())?;
        }
        tx.commit().map_err(|e| e.to_string())
    }

    /// Removes a domain's entry; whether there was one.
    pub fn remove(&self, domain: &str) -> CacheResult<bool> {
        let tx = self.store.db().begin_write().map_err(|e| e.to_string())?;
        let existed = {
            let mut table = tx.open_table(TABLE).map_err(|e| e.to_string())?;
            let old = table.remove(domain).map_err(|e| e.to_string())?;
            old.is_some()
        };
        tx.commit().map_err(|e| e.to_string())?;
        Ok(existed)
    }

    /// Every entry, in domain order (unreadable ones left out).
    pub fn all(&self) -> CacheResult<Vec<Entry>> {
        let tx = self.store.db().begin_read().map_err(|e| e.to_string())?;
        let table = match tx.open_table(TABLE) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(e.to_string()),
        };
        let mut out = Vec::new();
        for item in table.iter().map_err(|e| e.to_string())? {
            let (_, v) = item.map_err(|e| e.to_string())?;
            if let Ok(entry) = serde_json::from_slice::<Entry>(v.value()) {
                out.push(entry);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(domain: &str, fetched_at: u64, max_age: u64) -> Entry {
        Entry {
            domain: domain.into(),
            id: "id1".into(),
            text: format!("version: STSv1\nmode: enforce\nmx: mx.{domain}\nmax_age: {max_age}\n"),
            fetched_at,
            max_age,
            refresh_failure: None,
        }
    }

    #[test]
    fn expiry_and_refresh_times() {
        let e = entry("example.com", 1000, 86400 * 7);
        assert_eq!(e.expires_at(), 1000 + 604_800);
        assert!(!e.is_expired(1000 + 604_799));
        assert!(e.is_expired(1000 + 604_800));
        // A day, since half the max_age is longer.
        assert_eq!(e.refresh_at(86400), 1000 + 86400);
        // Half of a short max_age.
        let short = entry("example.com", 1000, 600);
        assert_eq!(short.refresh_at(86400), 1300);
        // max_age 0: expired at once.
        assert!(entry("example.com", 1000, 0).is_expired(1000));
        assert_eq!(e.policy().unwrap().max_age, 604_800);
    }

    #[test]
    fn entries_are_stored_replaced_listed_and_removed() {
        let cache = Cache::new(Store::in_memory());
        assert_eq!(cache.get("example.com"), Ok(None));
        assert_eq!(cache.all(), Ok(vec![]));
        assert_eq!(cache.remove("example.com"), Ok(false));
        let a = entry("example.com", 1, 100);
        cache.put(&a).unwrap();
        assert_eq!(cache.get("example.com"), Ok(Some(a.clone())));
        let mut b = a.clone();
        b.id = "id2".into();
        b.refresh_failure = Some((5, "timed out".into()));
        cache.put(&b).unwrap();
        cache.put(&entry("b.example", 1, 100)).unwrap();
        let all = cache.all().unwrap();
        assert_eq!(
            all.iter().map(|e| e.domain.as_str()).collect::<Vec<_>>(),
            ["b.example", "example.com"]
        );
        assert_eq!(cache.get("example.com"), Ok(Some(b)));
        assert_eq!(cache.remove("example.com"), Ok(true));
        assert_eq!(cache.get("example.com"), Ok(None));
    }

    #[test]
    fn entries_survive_reopening_the_database() {
        let dir = std::env::temp_dir().join(format!("danegate-sts-cache-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        {
            let cache = Cache::new(Store::open(&dir).unwrap());
            cache.put(&entry("example.com", 7, 100)).unwrap();
        }
        let cache = Cache::new(Store::open(&dir).unwrap());
        assert_eq!(cache.get("example.com").unwrap().unwrap().fetched_at, 7);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
