//! The daemon's durable store: trains, their decisions, overrides and the webhook outbox, in
//! one SQLite file (the embedded default) or a PostgreSQL database ([`StoreAt`]).
//!
//! Neighbours: the scheduler writes one [`EvaluationWrite`] per train per cycle with
//! [`Store::record_evaluations`]; the HTTP API registers, reads, overrides and stops trains;
//! the webhook sender drains the outbox ([`Store::due_events`], [`Store::mark_delivered`], …).
//! The store never reads the clock: every time is passed in by the caller.
//!
//! Design choices a newcomer may question:
//!
//! * **Two databases, one store.** Every query is written once and runs on either database
//!   through `sql.rs`; only the schema (`schema.rs` for SQLite, `pg.rs`) and the
//!   connection set-up differ. The store's tests run against both.
//! * **Synchronous API.** rusqlite and the `postgres` client are blocking, and so is this API. Async callers run it on
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
//!   `schema.rs` and `pg.rs`. Times are stored as unix milliseconds.
//!

mod changes;
mod error;
mod history;
mod lease;
mod lock;
mod model;
mod outbox;
mod pg;
mod retention;
mod schema;
mod sql;
#[cfg(test)]
pub(crate) mod testing;
mod trains;

use std::cell::RefCell;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use rusqlite::{Connection, TransactionBehavior};
use serde::de::DeserializeOwned;
use serde::Serialize;

pub use changes::{Heard, TrainMark};
pub use error::{ConflictReason, StoreError};
pub use lease::{Claim, Fence, Lease};
pub use lock::{lock_path, WriterLock};
pub use model::{
    ApprovalWrite, AuditEvent, Delivery, DeliveryState, EvaluationWrite, Evidence, GateLeg,
    HistoryChange, Lifecycle, NewOutboxEvent, NewTrain, OutboxBacklog, OutboxEvent, Outcome,
    OverrideAction, OverrideWrite, Registration, TrainFilter, TrainHistory, TrainRecord,
    WriteOutcome,
};
pub use retention::Pruned;

use error::SqlContext;
use sql::{pg_error, PgConnection, PgTx, Tx};

/// Where a store lives: an SQLite file (the embedded default), or a PostgreSQL database
/// given as a `postgres://` (or `postgresql://`) URL.
#[derive(Clone, PartialEq, Eq)]
pub enum StoreAt {
    /// An SQLite file, created if missing.
    Sqlite(PathBuf),
    /// A PostgreSQL connection URL (libpq's URI form).
    Postgres(String),
}

impl StoreAt {
    /// Whether `text` names a PostgreSQL database rather than a file.
    pub fn is_postgres_url(text: &str) -> bool {
        text.starts_with("postgres://") || text.starts_with("postgresql://")
    }
}

impl From<&Path> for StoreAt {
    fn from(path: &Path) -> StoreAt {
        match path.to_str() {
            Some(text) if StoreAt::is_postgres_url(text) => StoreAt::Postgres(text.to_string()),
            _ => StoreAt::Sqlite(path.to_path_buf()),
        }
    }
}

impl From<&PathBuf> for StoreAt {
    fn from(path: &PathBuf) -> StoreAt {
        StoreAt::from(path.as_path())
    }
}

impl From<&str> for StoreAt {
    fn from(text: &str) -> StoreAt {
        StoreAt::from(Path::new(text))
    }
}

/// The file's path, or the URL without its password.
impl fmt::Display for StoreAt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreAt::Sqlite(path) => write!(f, "{}", path.display()),
            StoreAt::Postgres(url) => f.write_str(&pg::redacted(url)),
        }
    }
}

impl fmt::Debug for StoreAt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The durable store. Cheap to clone; all clones share the same connections.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    at: StoreAt,
    backend: Backend,
    /// Checked by every leader-only write (`lease.rs`).
    fence: Mutex<Option<Fence>>,
}

enum Backend {
    Sqlite {
        /// Held by a store opened with [`Store::open_exclusive`].
        _lock: Option<WriterLock>,
        writer: Mutex<Connection>,
        reader: Mutex<Connection>,
    },
    Postgres {
        url: String,
        /// The writer connection holds the writer lock ([`Store::open_exclusive`]).
        exclusive: bool,
        writer: Mutex<PgConnection>,
        reader: Mutex<PgConnection>,
    },
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("at", &self.inner.at)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (creating if needed) the store and migrates it to the current schema.
    ///
    /// Refuses a store written by a newer gate ([`StoreError::NewerSchema`]) and a database
    /// that is not a gate store ([`StoreError::ForeignDatabase`]) without changing them.
    pub fn open(at: impl Into<StoreAt>) -> Result<Store, StoreError> {
        Self::open_with(at.into(), false)
    }

    /// [`Store::open`] for the one process that writes the store (the daemon): refuses with
    /// [`StoreError::InUse`] while another holds the store (an SQLite file's [`WriterLock`],
    /// a PostgreSQL database's writer lock), and holds it until the last clone of the store
    /// is dropped.
    pub fn open_exclusive(at: impl Into<StoreAt>) -> Result<Store, StoreError> {
        Self::open_with(at.into(), true)
    }

    fn open_with(at: StoreAt, exclusive: bool) -> Result<Store, StoreError> {
        let backend = match &at {
            StoreAt::Sqlite(path) => {
                let lock = exclusive.then(|| WriterLock::acquire(path)).transpose()?;
                let writer = schema::open_writer(path)?;
                let reader = schema::open_reader(path)?;
                Backend::Sqlite {
                    _lock: lock,
                    writer: Mutex::new(writer),
                    reader: Mutex::new(reader),
                }
            }
            StoreAt::Postgres(url) => {
                let mut writer = PgConnection::new(pg::connect(url)?);
                pg::migrate(writer.client(), url)?;
                if exclusive {
                    pg::lock_writer(writer.client(), url)?;
                }
                let reader = PgConnection::new(pg::connect(url)?);
                Backend::Postgres {
                    url: url.clone(),
                    exclusive,
                    writer: Mutex::new(writer),
                    reader: Mutex::new(reader),
                }
            }
        };
        Ok(Store {
            inner: Arc::new(Inner {
                at,
                backend,
                fence: Mutex::new(None),
            }),
        })
    }

    /// Where the store lives.
    pub fn at(&self) -> &StoreAt {
        &self.inner.at
    }

    /// Checks that the store answers a query (readiness).
    pub fn ping(&self) -> Result<(), StoreError> {
        self.read("ping", |tx| {
            tx.query_one("ping", "SELECT count(*) FROM trains", &[])
                .map(|_| ())
        })
    }

    /// Runs `f` in one write transaction and commits it if `f` succeeds.
    ///
    /// SQLite: `BEGIN IMMEDIATE` on the one writer connection, so writers never deadlock on
    /// the lock upgrade. PostgreSQL: a read-committed transaction; rows read before they are
    /// written are locked (`FOR UPDATE`). A lost PostgreSQL connection is opened again.
    fn write<T>(
        &self,
        context: &'static str,
        f: impl FnOnce(&Tx<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        match &self.inner.backend {
            Backend::Sqlite { writer, .. } => {
                let mut conn = lock(writer);
                let tx = conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .ctx(context)?;
                let value = f(&Tx::Sqlite(&tx))?;
                tx.commit().ctx(context)?;
                Ok(value)
            }
            Backend::Postgres {
                url,
                exclusive,
                writer,
                ..
            } => {
                let mut conn = lock(writer);
                pg::reconnect_if_closed(&mut conn, url, *exclusive)?;
                let result = pg_write(&mut conn, context, f);
                conn.observe(&result);
                result
            }
        }
    }

    /// Runs `f` in one read transaction (a consistent snapshot).
    fn read<T>(
        &self,
        context: &'static str,
        f: impl FnOnce(&Tx<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        match &self.inner.backend {
            Backend::Sqlite { reader, .. } => {
                let mut conn = lock(reader);
                let tx = conn.transaction().ctx(context)?;
                let sql = Tx::Sqlite(&tx);
                let value = f(&sql);
                value
            }
            Backend::Postgres { url, reader, .. } => {
                // A read is retried once on a new connection when the old one was lost (a
                // server restart): reading twice changes nothing.
                let mut conn = lock(reader);
                pg::reconnect_if_closed(&mut conn, url, false)?;
                let mut f = Some(f);
                let result = pg_read(&mut conn, context, &mut f);
                conn.observe(&result);
                if result.as_ref().is_err_and(sql::connection_lost) && f.is_some() {
                    pg::reconnect_if_closed(&mut conn, url, false)?;
                    let result = pg_read(&mut conn, context, &mut f);
                    conn.observe(&result);
                    return result;
                }
                result
            }
        }
    }

    /// A store on an SQLite writer connection opened by the caller (tests simulate older
    /// gates with it).
    #[cfg(test)]
    fn with_sqlite_writer(path: &Path, writer: Connection) -> Result<Store, StoreError> {
        let reader = schema::open_reader(path)?;
        Ok(Store {
            inner: Arc::new(Inner {
                at: StoreAt::Sqlite(path.to_path_buf()),
                backend: Backend::Sqlite {
                    _lock: None,
                    writer: Mutex::new(writer),
                    reader: Mutex::new(reader),
                },
                fence: Mutex::new(None),
            }),
        })
    }

    #[cfg(test)]
    fn sqlite_writer(&self) -> MutexGuard<'_, Connection> {
        match &self.inner.backend {
            Backend::Sqlite { writer, .. } => lock(writer),
            Backend::Postgres { .. } => panic!("not an SQLite store"),
        }
    }

    #[cfg(test)]
    fn sqlite_reader(&self) -> MutexGuard<'_, Connection> {
        match &self.inner.backend {
            Backend::Sqlite { reader, .. } => lock(reader),
            Backend::Postgres { .. } => panic!("not an SQLite store"),
        }
    }
}

/// [`Store::write`] on PostgreSQL: `f` in a read-committed transaction, committed if it
/// succeeds.
fn pg_write<T>(
    conn: &mut PgConnection,
    context: &'static str,
    f: impl FnOnce(&Tx<'_>) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let tx = PgTx::new(conn.begin(false).map_err(|e| pg_error(context, e))?);
    let tx = Tx::Postgres(RefCell::new(tx));
    let value = f(&tx)?;
    let Tx::Postgres(tx) = tx else {
        unreachable!("a PostgreSQL transaction")
    };
    tx.into_inner()
        .tx
        .commit()
        .map_err(|e| pg_error(context, e))?;
    Ok(value)
}

/// [`Store::read`] on PostgreSQL: `f` (taken from the option once the snapshot is open, so
/// that a failure to open it leaves `f` for a retry) in a read-only snapshot.
fn pg_read<T, F>(
    conn: &mut PgConnection,
    context: &'static str,
    f: &mut Option<F>,
) -> Result<T, StoreError>
where
    F: FnOnce(&Tx<'_>) -> Result<T, StoreError>,
{
    let tx = PgTx::new(conn.begin(true).map_err(|e| pg_error(context, e))?);
    let sql = Tx::Postgres(RefCell::new(tx));
    let f = f.take().expect("a read runs once per attempt");
    let value = f(&sql);
    value
}

/// A mutex poisoned by a panic is taken over: an unfinished transaction rolls back when it is
/// dropped, so the connection is consistent.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
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

#[cfg(test)]
mod tests {
    use gate_rules::Decision;

    use super::testing::*;
    use super::*;

    #[test]
    fn store_is_shareable_across_threads() {
        fn assert_shareable<T: Clone + Send + Sync + 'static>() {}
        assert_shareable::<Store>();
    }

    #[test]
    fn a_reopened_store_has_everything() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gate.db");
        let store = Store::open(&path).unwrap();
        store.register(&new_train("t-1"), t(0)).unwrap();
        store.register(&new_train("t-2"), t(1)).unwrap();
        store.register(&new_train("t-3"), t(2)).unwrap();
        change(
            &store,
            "t-1",
            0,
            Decision::Pause,
            t(30),
            vec![event("a1", "deployer")],
        );
        change(
            &store,
            "t-1",
            1,
            Decision::Rollback,
            t(60),
            vec![event("a2", "deployer")],
        );
        change(
            &store,
            "t-2",
            0,
            Decision::Promote,
            t(30),
            vec![event("b1", "deployer")],
        );
        store
            .record_override(&override_write(
                "t-3",
                OverrideAction::Promote,
                Decision::Promote,
            ))
            .unwrap();
        store
            .record_evaluation(&eval("t-2", 1, Decision::Promote, t(90), vec![]))
            .unwrap();
        store
            .mark_failed("a1", "connection refused", None, t(100))
            .unwrap();
        store.mark_dead("b1", "HTTP 500", Some(500), t(95)).unwrap();
        store.mark_delivered("ov-1", 200, t(301)).unwrap();
        store.stop(&tid("t-2"), t(500)).unwrap();

        let trains = store.trains(TrainFilter::All).unwrap();
        let events: Vec<_> = ["t-1", "t-2", "t-3"]
            .iter()
            .map(|id| store.events(&tid(id)).unwrap())
            .collect();
        let backlog = store.outbox_backlog().unwrap();
        let due = store.due_events(t(1000), 10).unwrap();
        drop(store);

        let store = Store::open(&path).unwrap();
        assert_eq!(store.trains(TrainFilter::All).unwrap(), trains);
        for (id, before) in ["t-1", "t-2", "t-3"].iter().zip(&events) {
            assert_eq!(&store.events(&tid(id)).unwrap(), before, "{id}");
        }
        assert_eq!(store.outbox_backlog().unwrap(), backlog);
        assert_eq!(
            backlog,
            OutboxBacklog {
                pending: 2,
                dead: 1
            }
        );
        assert_eq!(store.due_events(t(1000), 10).unwrap(), due);
        let t1 = store.train(&tid("t-1")).unwrap().unwrap();
        assert_eq!((t1.decision, t1.seq), (Decision::Rollback, 2));
        // The order per train survives too: a2 still waits for a1.
        assert_eq!(
            due.iter().map(|e| e.event_id.as_str()).collect::<Vec<_>>(),
            ["a1"]
        );
        // And the seq carries on from where it was.
        let mut next = eval("t-1", 2, Decision::Pause, t(1100), vec![]);
        next.lifecycle = Lifecycle::Paused;
        assert_eq!(
            store.record_evaluation(&next).unwrap(),
            WriteOutcome::Changed { seq: 3 }
        );
    }

    #[test]
    fn an_older_store_is_migrated_with_its_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gate.db");
        {
            // What a gate that knew only the first schema step wrote: a train registered at
            // t(0), paused at t(30).
            let writer = schema::open_writer_at_version(&path, 1).unwrap();
            let version: i64 = writer
                .pragma_query_value(None, "user_version", |r| r.get(0))
                .unwrap();
            assert_eq!(version, 1);
            let registration = serde_json::to_string(&new_train("t-1")).unwrap();
            writer
                .execute(
                    "INSERT INTO trains (id, gate, started_at, baseline, labels_json, \
                     registration_json, registered_at, lifecycle, decision, seq, reason, rule, \
                     evaluated_at, state_json, evaluation_json) VALUES ('t-1', 'checkout', ?1, \
                     't-0', '{\"team\":\"payments\"}', ?2, ?3, 'paused', 'pause', 1, \
                     'pause at t30', 'fast-burn', ?4, '{\"decision\":\"pause\"}', '{}')",
                    rusqlite::params![ms(t(-60)), registration, ms(t(0)), ms(t(30))],
                )
                .unwrap();
            writer
                .execute(
                    "INSERT INTO decisions (train, seq, decision, previous, reason, rule, \
                     evaluated_at, evidence_json) VALUES ('t-1', 1, 'pause', 'pending', \
                     'pause at t30', 'fast-burn', ?1, '{}')",
                    [ms(t(30))],
                )
                .unwrap();
            assert!(
                writer.prepare("SELECT id FROM outbox").is_err(),
                "the first step has no outbox"
            );
        }
        let store = Store::open(&path).unwrap();
        let version: i64 = store
            .sqlite_reader()
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, schema::supported_version());
        let rec = store.train(&tid("t-1")).unwrap().unwrap();
        assert_eq!(
            (rec.decision, rec.seq, rec.evaluated_at),
            (Decision::Pause, 1, Some(t(30)))
        );
        assert_eq!(rec.labels, new_train("t-1").labels);
        assert!(
            rec.gates.is_empty(),
            "a train of one gate has no gates' parts"
        );
        // Registering the same body again is the same train: the stored form did not change.
        assert!(!store
            .register(&new_train("t-1"), t(90))
            .unwrap()
            .is_created());
        assert!(store.events(&tid("t-1")).unwrap().iter().any(|e| matches!(
            e,
            AuditEvent::Decision {
                seq: 1,
                decision: Decision::Pause,
                ..
            }
        )));
        // The migrated store takes the newer data.
        change(
            &store,
            "t-1",
            1,
            Decision::Rollback,
            t(60),
            vec![event("e2", "deployer")],
        );
        assert_eq!(store.due_events(t(60), 10).unwrap().len(), 1);
    }

    #[test]
    fn a_store_from_a_newer_gate_is_refused_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gate.db");
        let newer = schema::supported_version() + 1;
        {
            let store = Store::open(&path).unwrap();
            store.register(&new_train("t-1"), t(0)).unwrap();
            store
                .sqlite_writer()
                .pragma_update(None, "user_version", newer)
                .unwrap();
        }
        let err = Store::open(&path).unwrap_err();
        match &err {
            StoreError::NewerSchema {
                found, supported, ..
            } => assert_eq!((*found, *supported), (newer, schema::supported_version())),
            other => panic!("expected NewerSchema, got {other:?}"),
        }
        assert!(err.to_string().contains("upgrade gate"), "{err}");
        let conn = Connection::open(&path).unwrap();
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, newer);
        let trains: i64 = conn
            .query_row("SELECT count(*) FROM trains", [], |r| r.get(0))
            .unwrap();
        assert_eq!(trains, 1);
    }

    /// Set for the child process of [`a_commit_survives_sigkill`]: the store file to write.
    const SIGKILL_DB_ENV: &str = "GATE_STORE_TEST_SIGKILL_DB";

    /// The child half of [`a_commit_survives_sigkill`]: commits a decision change, says so,
    /// and waits to be killed. Does nothing when run on its own.
    #[test]
    #[ignore = "run by a_commit_survives_sigkill in a child process"]
    fn sigkill_child() {
        let Some(path) = std::env::var_os(SIGKILL_DB_ENV) else {
            return;
        };
        let store = Store::open(Path::new(&path)).unwrap();
        store.register(&new_train("t-1"), t(0)).unwrap();
        let seq = change(
            &store,
            "t-1",
            0,
            Decision::Rollback,
            t(30),
            vec![event("e1", "deployer")],
        );
        println!("committed seq={seq}");
        loop {
            std::thread::park();
        }
    }

    #[test]
    fn a_commit_survives_sigkill() {
        use std::io::{BufRead, BufReader};
        use std::process::{Command, Stdio};

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gate.db");
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "store::tests::sigkill_child",
                "--ignored",
                "--nocapture",
            ])
            .env(SIGKILL_DB_ENV, &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let committed = BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find(|line| line.starts_with("committed"));
        child.kill().unwrap(); // SIGKILL: no destructor, no checkpoint, the WAL stays as is
        child.wait().unwrap();
        assert_eq!(committed.as_deref(), Some("committed seq=1"));

        let store = Store::open(&path).unwrap();
        let rec = store.train(&tid("t-1")).unwrap().unwrap();
        assert_eq!((rec.decision, rec.seq), (Decision::Rollback, 1));
        let due = store.due_events(t(30), 10).unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].event_id, "e1");
    }
}
