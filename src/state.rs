//! danegate's durable state: one embedded database (redb) in
//! `[state] dir` that survives restarts and crashes.
//!
//! This module only opens the database and hands it out; each feature
//! defines its own tables next to its code and writes through redb's
//! transactions, which are durable when they commit. When the directory
//! cannot be used, [`Store::open_or_memory`] falls back to an in-memory
//! database so that mail keeps flowing, and says so.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::backends::InMemoryBackend;
use redb::Database;

/// The file name inside `[state] dir`.
pub const FILE_NAME: &str = "danegate.redb";

/// Why the state database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot create state directory {dir}: {cause}")]
    Dir { dir: PathBuf, cause: std::io::Error },
    #[error("cannot open state database {path}: {cause}")]
    Open { path: PathBuf, cause: String },
}

/// A handle on the database; cheap to clone and shared by every session.
#[derive(Clone)]
pub struct Store {
    db: Arc<Database>,
    /// The file, or `None` for an in-memory database.
    path: Option<PathBuf>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Store({})", self.location())
    }
}

impl Store {
    /// Opens (or creates) `dir/danegate.redb`, creating `dir` (mode 0700)
    /// when missing. A second process on the same directory is refused by
    /// redb's own lock.
    pub fn open(dir: &Path) -> Result<Store, StateError> {
        create_dir(dir)?;
        let path = dir.join(FILE_NAME);
        let db = Database::create(&path).map_err(|e| StateError::Open {
            path: path.clone(),
            cause: e.to_string(),
        })?;
        Ok(Store {
            db: Arc::new(db),
            path: Some(path),
        })
    }

    /// A database that lives as long as the process: for tests, and for
    /// when the state directory cannot be used.
    pub fn in_memory() -> Store {
        let db = Database::builder()
            .create_with_backend(InMemoryBackend::new())
            .expect("an in-memory redb database always opens");
        Store {
            db: Arc::new(db),
            path: None,
        }
    }

    /// [`open`](Self::open), or an in-memory database with the reason it
    /// had to be one.
    pub fn open_or_memory(dir: &Path) -> (Store, Option<StateError>) {
        match Store::open(dir) {
            Ok(s) => (s, None),
            Err(e) => (Store::in_memory(), Some(e)),
        }
    }

    pub fn db(&self) -> &Database {
        &self.db
    }

    /// Whether what is written here survives a restart.
    pub fn is_durable(&self) -> bool {
        self.path.is_some()
    }

    /// The file, or "memory", for log lines.
    pub fn location(&self) -> String {
        match &self.path {
            Some(p) => p.display().to_string(),
            None => "memory (not kept across restarts)".to_owned(),
        }
    }
}

fn create_dir(dir: &Path) -> Result<(), StateError> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|cause| StateError::Dir {
            dir: dir.to_owned(),
            cause,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::{ReadableDatabase, ReadableTable, TableDefinition};

    const T: TableDefinition<&str, u64> = TableDefinition::new("test");

    fn put(store: &Store, key: &str, value: u64) {
        let tx = store.db().begin_write().unwrap();
        tx.open_table(T).unwrap().insert(key, value).unwrap();
        tx.commit().unwrap();
    }

    fn get(store: &Store, key: &str) -> Option<u64> {
        let tx = store.db().begin_read().unwrap();
        let table = tx.open_table(T).ok()?;
        table.get(key).unwrap().map(|v| v.value())
    }

    #[test]
    fn what_is_committed_survives_reopening() {
        let dir = std::env::temp_dir().join(format!("danegate-state-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let nested = dir.join("a/b");
        {
            let store = Store::open(&nested).unwrap();
            assert!(store.is_durable());
            put(&store, "k", 7);
            // A second open of the same file is refused while the first
            // is open.
            assert!(matches!(Store::open(&nested), Err(StateError::Open { .. })));
        }
        let store = Store::open(&nested).unwrap();
        assert_eq!(get(&store, "k"), Some(7));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_unusable_directory_gives_a_memory_store_and_the_reason() {
        let file = std::env::temp_dir().join(format!("danegate-state-file-{}", std::process::id()));
        std::fs::write(&file, b"not a directory").unwrap();
        let (store, err) = Store::open_or_memory(&file.join("sub"));
        assert!(!store.is_durable());
        let err = err.expect("a path under a file cannot be a directory");
        assert!(
            err.to_string().starts_with("cannot create state directory"),
            "{err}"
        );
        put(&store, "k", 1);
        assert_eq!(get(&store, "k"), Some(1));
        let _ = std::fs::remove_file(&file);
    }
}
