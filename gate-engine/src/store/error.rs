//! The store's error type.
//!
//! SQLite failures carry what the store was doing (`context`); everything a caller may want
//! to answer differently (409 for a conflict, 404 for an unknown train) has its own variant.

use std::path::PathBuf;

use gate_rules::TrainId;

/// Why a registration conflicts with the stored train.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConflictReason {
    /// The ID is registered with a different body.
    DifferentBody,
    /// The ID belongs to a stopped train; a stopped train's ID is not reused, so its
    /// history stays unambiguous.
    Stopped,
}

impl std::fmt::Display for ConflictReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConflictReason::DifferentBody => f.write_str("it is registered with a different body"),
            ConflictReason::Stopped => {
                f.write_str("it belongs to a stopped train, and a stopped train's ID is not reused")
            }
        }
    }
}

/// An error from the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database file could not be opened or set up.
    #[error("cannot open the store {}", path.display())]
    Open {
        /// The database file.
        path: PathBuf,
        /// The SQLite error.
        #[source]
        source: rusqlite::Error,
    },
    /// SQLite refused WAL mode (e.g. on a network filesystem).
    #[error("the store {} cannot use WAL journaling (SQLite chose `{mode}`)", path.display())]
    JournalMode {
        /// The database file.
        path: PathBuf,
        /// The journal mode SQLite reported.
        mode: String,
    },
    /// Another process writes this store (`gate serve`, or `gate outbox redrive --db`).
    #[error(
        "store {} is in use by another gate serve{}; stop it, or point --db at another file",
        path.display(),
        pid.map(|p| format!(", pid {p}")).unwrap_or_default()
    )]
    InUse {
        /// The database file.
        path: PathBuf,
        /// The holder's process ID, when its lock file says.
        pid: Option<u32>,
    },
    /// The lock file next to the store could not be used.
    #[error("cannot lock the store: {}", path.display())]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file was written by a newer version of gate.
    #[error(
        "the store {} has schema version {found}, but this gate supports at most {supported}; \
         upgrade gate or point --db at another file",
        path.display()
    )]
    NewerSchema {
        /// The database file.
        path: PathBuf,
        /// The schema version in the file.
        found: i64,
        /// The newest schema this build knows.
        supported: i64,
    },
    /// The file is an SQLite database that gate did not create.
    #[error(
        "{} is not a gate store (it is an SQLite database with other content); \
         point --db at a new or existing gate store",
        path.display()
    )]
    ForeignDatabase {
        /// The database file.
        path: PathBuf,
    },
    /// An SQLite call failed.
    /// PostgreSQL did not accept a connection (the URL's password is not shown).
    #[error("cannot connect to the store {url}")]
    Connect {
        url: String,
        #[source]
        source: Box<postgres::Error>,
    },
    /// A PostgreSQL failure, with what the store was doing.
    #[error("store: {context}")]
    Postgres {
        context: &'static str,
        #[source]
        source: Box<postgres::Error>,
    },
    #[error("store: {context}")]
    Sqlite {
        /// What the store was doing.
        context: &'static str,
        /// The SQLite error.
        #[source]
        source: rusqlite::Error,
    },
    /// A registration conflicts with the stored train (HTTP 409).
    #[error("train {id} cannot be registered: {reason}")]
    Conflict {
        /// The train.
        id: TrainId,
        /// Why.
        reason: ConflictReason,
    },
    /// A leader-only write by a replica whose lease another replica has taken since.
    #[error(
        "replica {replica} no longer holds the leader lease (epoch {epoch}); another replica \
         leads, so this write was refused"
    )]
    Fenced {
        /// The replica that tried to write.
        replica: String,
        /// The epoch it held.
        epoch: u64,
    },
    /// No train with this ID.
    #[error("train {0} not found")]
    NotFound(TrainId),
    /// The train is stopped and cannot take this write.
    #[error("train {0} is stopped")]
    TrainStopped(TrainId),
    /// No pending webhook event with this ID.
    #[error("no pending webhook event {0}")]
    UnknownEvent(String),
    /// A value could not be encoded for storage.
    #[error("store: cannot encode {what}")]
    Encode {
        /// What was being encoded.
        what: &'static str,
        /// The encoding error.
        #[source]
        source: serde_json::Error,
    },
    /// A stored value could not be read back.
    #[error("store: corrupt {what}: {detail}")]
    Corrupt {
        /// Which value (table and column, with the row's key).
        what: String,
        /// What is wrong with it.
        detail: String,
    },
}

/// Adds context to SQLite errors.
pub(crate) trait SqlContext<T> {
    /// Wraps an SQLite error with what the store was doing.
    fn ctx(self, context: &'static str) -> Result<T, StoreError>;
}

impl<T> SqlContext<T> for rusqlite::Result<T> {
    fn ctx(self, context: &'static str) -> Result<T, StoreError> {
        self.map_err(|source| StoreError::Sqlite { context, source })
    }
}

impl StoreError {
    /// Whether the database could not be reached (PostgreSQL down or restarting, the
    /// connection lost): the request may succeed when retried.
    pub fn is_unavailable(&self) -> bool {
        super::sql::connection_lost(self)
    }
}
