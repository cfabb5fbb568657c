//! The daemon's durable store: trains, their decisions, overrides and the webhook outbox, in
//! one SQLite file.
//!
//! Neighbours: the scheduler writes one [`EvaluationWrite`] per train per cycle with
//! [`Store::record_evaluations`]; the HTTP API registers, reads, overrides and stops trains;
//! the webhook sender drains the outbox ([`Store::due_events`], [`Store::mark_delivered`], …).
//! The store never reads the clock: every time is passed in by the caller.
//!
//! Design choices a newcomer may question:
//!
//! * **Synchronous API.** rusqlite is blocking, and so is this API. Async callers run it on
//!   tokio's blocking pool (`tokio::task::spawn_blocking(move || store.train(&id))`);
//!   [`Store`] is `Clone + Send + Sync` (an `Arc` inside) so a clone moves into the closure.
//! * **One writer.** All writes go through one connection behind a mutex, each in one
//!   `BEGIN IMMEDIATE` transaction, so writers never deadlock on SQLite's lock upgrade and
//!   nothing is visible before the commit: a decision change, its history row and its webhook
//!   events appear together or not at all. Reads use a second, read-only connection; in WAL
//!   mode they see the last commit and do not wait for the writer.
//! * **Edge detection is the store's.** A write is a decision change when its decision differs
//!   from the stored one; only then is `seq` bumped (registration is seq 0 `pending`, the first
//!   change seq 1) and history and webhook events written. Overrides always bump `seq`.
//!   Evaluations carry the seq they started from and are skipped as
//!   [`WriteOutcome::Stale`] when an override landed meanwhile, so an override's state is never
//!   overwritten by an evaluation computed before it.
//! * **Outbox order.** [`Store::due_events`] hands out only the oldest pending event of each
//!   (train, webhook) pair, so a later decision is never delivered before an earlier one, even
//!   when the earlier one is backing off. A dead-lettered event no longer holds the line.
//! * **Durability** (WAL, `synchronous = FULL`) and **migrations** are explained in
//!   `schema.rs`. Times are stored as unix milliseconds.
//!
//! A mutex poisoned by a panic is taken over: an unfinished transaction rolls back when it is
//! dropped, so the connection is consistent.

mod error;
mod model;
mod outbox;
mod schema;
mod trains;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use rusqlite::{Connection, Transaction, TransactionBehavior};
use serde::de::DeserializeOwned;
use serde::Serialize;

pub use error::{ConflictReason, StoreError};
pub use model::{
    AuditEvent, Delivery, DeliveryState, EvaluationWrite, Lifecycle, NewOutboxEvent, NewTrain,
    OutboxBacklog, OutboxEvent, OverrideAction, OverrideWrite, Registration, TrainFilter,
    TrainRecord, WriteOutcome,
};

use error::SqlContext;

/// The durable store. Cheap to clone; all clones share the same connections.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    writer: Mutex<Connection>,
    reader: Mutex<Connection>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (creating if needed) the store at `path` and migrates it to the current schema.
    ///
    /// Refuses a file written by a newer gate ([`StoreError::NewerSchema`]) and an SQLite file
    /// that is not a gate store ([`StoreError::ForeignDatabase`]) without changing them.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let writer = schema::open_writer(path)?;
        Self::with_writer(path, writer)
    }

    fn with_writer(path: &Path, writer: Connection) -> Result<Store, StoreError> {
        let reader = schema::open_reader(path)?;
        Ok(Store {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                writer: Mutex::new(writer),
                reader: Mutex::new(reader),
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Checks that the store answers a query (readiness).
    pub fn ping(&self) -> Result<(), StoreError> {
        self.reader()
            .query_row("SELECT count(*) FROM trains", [], |_| Ok(()))
            .ctx("ping")
    }

    fn writer(&self) -> MutexGuard<'_, Connection> {
        self.inner
            .writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn reader(&self) -> MutexGuard<'_, Connection> {
        self.inner
            .reader
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `f` in one write transaction and commits it if `f` succeeds.
    fn write<T>(
        &self,
        context: &'static str,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.writer();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx(context)?;
        let value = f(&tx)?;
        tx.commit().ctx(context)?;
        Ok(value)
    }

    /// Runs `f` in one read transaction (a consistent snapshot).
    fn read<T>(
        &self,
        context: &'static str,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.reader();
        let tx = conn.transaction().ctx(context)?;
        f(&tx)
    }
}

/// A time as stored: unix milliseconds.
fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// Names a stored value for [`StoreError::Corrupt`]; formatted only on error.
#[derive(Clone, Copy)]
struct Field<'a> {
    column: &'static str,
    key: &'a str,
}

impl Field<'_> {
    fn corrupt(self, detail: impl fmt::Display) -> StoreError {
        StoreError::Corrupt {
            what: format!("{} of {}", self.column, self.key),
            detail: detail.to_string(),
        }
    }

    fn time(self, ms: i64) -> Result<DateTime<Utc>, StoreError> {
        DateTime::from_timestamp_millis(ms)
            .ok_or_else(|| self.corrupt(format!("{ms} is not a time in unix milliseconds")))
    }

    fn opt_time(self, ms: Option<i64>) -> Result<Option<DateTime<Utc>>, StoreError> {
        ms.map(|ms| self.time(ms)).transpose()
    }

    fn parse<T>(self, s: &str) -> Result<T, StoreError>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        s.parse().map_err(|e| self.corrupt(e))
    }

    fn json<T: DeserializeOwned>(self, s: &str) -> Result<T, StoreError> {
        serde_json::from_str(s).map_err(|e| self.corrupt(e))
    }

    fn count<T: TryFrom<i64>>(self, n: i64) -> Result<T, StoreError> {
        T::try_from(n).map_err(|_| self.corrupt(format!("{n} is out of range")))
    }
}

fn encode<T: Serialize + ?Sized>(value: &T, what: &'static str) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|source| StoreError::Encode { what, source })
}

/// A `u64` seq as stored (SQLite integers are `i64`).
fn seq_sql(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}
