//! Connection settings and schema migrations.
//!
//! The schema version is SQLite's `PRAGMA user_version`: the number of [`MIGRATIONS`] applied.
//! At open, the missing steps run in order, each in its own transaction together with the
//! version bump, so a crash leaves the file at a whole version. A file written by an older gate
//! is migrated forward and never dropped; a file from a newer gate is refused before anything
//! is written to it. Steps are append-only: once released, a step's SQL never changes, and a
//! change to the schema is a new step at the end.
//!
//! `PRAGMA application_id` marks the file as gate's, so `--db` pointed at someone else's SQLite
//! file is refused instead of having tables added to it.
//!
//! Durability: WAL with `synchronous = FULL`. `NORMAL` would already keep every committed
//! transaction across a SIGKILL of the process (the WAL is in the OS page cache, which
//! outlives the process), but after a power loss or kernel crash it may lose the last commits.
//! A decision may already have been served to a pipeline or sent to a webhook when it is
//! committed, so it must not be forgotten by any crash; `FULL` fsyncs the WAL at each commit
//! and closes that window. The price is one fsync per transaction, and transactions are few:
//! one per evaluation cycle (all trains), one per override, one per webhook delivery.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior};

use super::error::{SqlContext, StoreError};

/// `PRAGMA application_id` of a gate store: "gate" in ASCII.
pub(crate) const APPLICATION_ID: i32 = 0x6761_7465;

/// How long a connection waits for a lock held by another connection before failing.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest size the WAL file is truncated back to after a checkpoint (a cycle of 10,000
/// evaluations writes tens of megabytes; without a limit the file stays at its peak).
const JOURNAL_SIZE_LIMIT: i64 = 64 * 1024 * 1024;

/// The schema, one step per version: step `i` takes the file from version `i` to `i + 1`.
pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: trains, the decisions that changed them, operator overrides.
    r#"
    PRAGMA application_id = 1734440037;

    CREATE TABLE trains (
        id                TEXT    NOT NULL PRIMARY KEY,
        gate              TEXT    NOT NULL,
        started_at        INTEGER NOT NULL,
        baseline          TEXT,
        labels_json       TEXT    NOT NULL,
        registration_json TEXT    NOT NULL,
        registered_at     INTEGER NOT NULL,
        lifecycle         TEXT    NOT NULL CHECK (lifecycle IN
                              ('verifying', 'promoted', 'paused', 'rolled_back', 'done', 'stopped')),
        decision          TEXT    NOT NULL CHECK (decision IN ('pending', 'promote', 'pause', 'rollback')),
        seq               INTEGER NOT NULL CHECK (seq >= 0),
        reason            TEXT    NOT NULL,
        rule              TEXT,
        evaluated_at      INTEGER,
        state_json        TEXT    NOT NULL,
        evaluation_json   TEXT,
        promoted_at       INTEGER,
        stopped_at        INTEGER
    ) STRICT;
    CREATE INDEX trains_by_gate ON trains (gate, lifecycle);

    CREATE TABLE decisions (
        train         TEXT    NOT NULL REFERENCES trains (id),
        seq           INTEGER NOT NULL CHECK (seq > 0),
        decision      TEXT    NOT NULL CHECK (decision IN ('pending', 'promote', 'pause', 'rollback')),
        previous      TEXT    NOT NULL CHECK (previous IN ('pending', 'promote', 'pause', 'rollback')),
        reason        TEXT    NOT NULL,
        rule          TEXT,
        evaluated_at  INTEGER NOT NULL,
        evidence_json TEXT    NOT NULL,
        PRIMARY KEY (train, seq)
    ) STRICT;

    CREATE TABLE overrides (
        train    TEXT    NOT NULL REFERENCES trains (id),
        seq      INTEGER NOT NULL CHECK (seq > 0),
        action   TEXT    NOT NULL CHECK (action IN ('promote', 'pause', 'rollback', 'resume')),
        decision TEXT    NOT NULL CHECK (decision IN ('pending', 'promote', 'pause', 'rollback')),
        previous TEXT    NOT NULL CHECK (previous IN ('pending', 'promote', 'pause', 'rollback')),
        reason   TEXT    NOT NULL,
        actor    TEXT    NOT NULL,
        at       INTEGER NOT NULL,
        PRIMARY KEY (train, seq)
    ) STRICT;
    "#,
    // 2: the webhook outbox.
    r#"
    CREATE TABLE outbox (
        id              INTEGER PRIMARY KEY,
        event_id        TEXT    NOT NULL UNIQUE,
        train           TEXT    NOT NULL REFERENCES trains (id),
        seq             INTEGER NOT NULL,
        webhook         TEXT    NOT NULL,
        payload_json    TEXT    NOT NULL,
        created_at      INTEGER NOT NULL,
        state           TEXT    NOT NULL CHECK (state IN ('pending', 'delivered', 'dead')),
        attempts        INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
        next_attempt_at INTEGER NOT NULL,
        last_error      TEXT,
        last_status     INTEGER,
        delivered_at    INTEGER,
        dead_at         INTEGER
    ) STRICT;
    CREATE INDEX outbox_pending_order ON outbox (train, webhook, id) WHERE state = 'pending';
    CREATE INDEX outbox_pending_due ON outbox (next_attempt_at) WHERE state = 'pending';
    CREATE INDEX outbox_by_train ON outbox (train, id);
    CREATE INDEX outbox_dead ON outbox (train) WHERE state = 'dead';
    "#,
    // 3: whom a named token's override was made for.
    r#"
    ALTER TABLE overrides ADD COLUMN on_behalf_of TEXT;
    "#,
    // 4: approvals of trains whose gate has `approval: required`.
    r#"
    CREATE TABLE approvals (
        train  TEXT    NOT NULL REFERENCES trains (id),
        seq    INTEGER NOT NULL CHECK (seq > 0),
        reason TEXT    NOT NULL,
        actor  TEXT    NOT NULL,
        at     INTEGER NOT NULL,
        PRIMARY KEY (train, seq)
    ) STRICT;
    "#,
    // 5: trains judged by several gates keep each gate's part (decision, state, evaluation)
    // as JSON beside the train's verdict; NULL for a train of one gate.
    r#"
    ALTER TABLE trains ADD COLUMN gates_json TEXT;
    "#,
    // 6: how each finished train ended (the review's `finished`), kept by a trigger on every
    // change of lifecycle, whoever writes it: `done` is `promoted`, `rolled_back` is
    // `rolled_back`, an open state clears it (an operator took the train out of a rollback),
    // and a stop keeps the outcome the train had (`stopped` only for an open train). Existing
    // trains get theirs from their state. And the trains by start time (the review's range).
    r#"
    ALTER TABLE trains ADD COLUMN outcome TEXT
        CHECK (outcome IN ('promoted', 'rolled_back', 'stopped'));
    UPDATE trains SET outcome = CASE lifecycle
        WHEN 'done' THEN 'promoted'
        WHEN 'rolled_back' THEN 'rolled_back'
        WHEN 'stopped' THEN CASE decision WHEN 'rollback' THEN 'rolled_back' ELSE 'stopped' END
    END;
    CREATE TRIGGER trains_outcome AFTER UPDATE OF lifecycle ON trains
    WHEN NEW.lifecycle IS NOT OLD.lifecycle
    BEGIN
        UPDATE trains SET outcome = CASE NEW.lifecycle
            WHEN 'done' THEN 'promoted'
            WHEN 'rolled_back' THEN 'rolled_back'
            WHEN 'stopped' THEN coalesce(OLD.outcome, 'stopped')
            ELSE NULL
        END
        WHERE id = NEW.id;
    END;
    CREATE INDEX trains_by_start ON trains (started_at);
    "#,
    // 7: the leader lease (`lease.rs`): one row, nobody's (epoch 0) until claimed.
    r#"
    CREATE TABLE lease (
        name       TEXT    NOT NULL PRIMARY KEY,
        holder     TEXT    NOT NULL,
        epoch      INTEGER NOT NULL CHECK (epoch >= 0),
        expires_at INTEGER NOT NULL
    ) STRICT;
    INSERT INTO lease (name, holder, epoch, expires_at) VALUES ('leader', '', 0, 0);
    "#,
];

/// The newest schema version this build knows.
pub(crate) fn supported_version() -> i64 {
    MIGRATIONS.len() as i64
}

/// Opens the writer connection: checks that the file is a gate store gate can read, sets it up
/// (WAL, durability, foreign keys) and migrates it to the newest schema.
pub(crate) fn open_writer(path: &Path) -> Result<Connection, StoreError> {
    open_writer_at_version(path, MIGRATIONS.len())
}

/// [`open_writer`], applying migrations only up to `version` (tests simulate older gates).
pub(crate) fn open_writer_at_version(
    path: &Path,
    version: usize,
) -> Result<Connection, StoreError> {
    let open_err = |source| StoreError::Open {
        path: path.to_path_buf(),
        source,
    };
    let mut conn = Connection::open(path).map_err(open_err)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
    check_identity(&conn, path)?;

    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(open_err)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::JournalMode {
            path: path.to_path_buf(),
            mode,
        });
    }
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(open_err)?;
    conn.pragma_update(None, "foreign_keys", true)
        .map_err(open_err)?;
    conn.pragma_update(None, "journal_size_limit", JOURNAL_SIZE_LIMIT)
        .map_err(open_err)?;
    conn.set_prepared_statement_cache_capacity(64);

    migrate(&mut conn, path, version)?;
    Ok(conn)
}

/// Opens a read-only connection on a store already set up by [`open_writer`].
pub(crate) fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let open_err = |source| StoreError::Open {
        path: path.to_path_buf(),
        source,
    };
    let conn = Connection::open(path).map_err(open_err)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
    conn.pragma_update(None, "query_only", true)
        .map_err(open_err)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// Refuses files that are not gate stores, and gate stores from a newer gate.
fn check_identity(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let open_err = |source| StoreError::Open {
        path: path.to_path_buf(),
        source,
    };
    let app_id: i32 = conn
        .pragma_query_value(None, "application_id", |row| row.get(0))
        .map_err(open_err)?;
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(open_err)?;
    let objects: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_schema", [], |row| row.get(0))
        .map_err(open_err)?;
    let foreign = if app_id == 0 {
        // A new file, or one that is not ours: ours have the ID from the first step on.
        version != 0 || objects != 0
    } else {
        app_id != APPLICATION_ID
    };
    if foreign {
        return Err(StoreError::ForeignDatabase {
            path: path.to_path_buf(),
        });
    }
    if version > supported_version() {
        return Err(StoreError::NewerSchema {
            path: path.to_path_buf(),
            found: version,
            supported: supported_version(),
        });
    }
    Ok(())
}

/// Applies the missing steps up to `target`, each in one transaction with its version bump.
fn migrate(conn: &mut Connection, path: &Path, target: usize) -> Result<(), StoreError> {
    for (step, sql) in MIGRATIONS.iter().enumerate().take(target) {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx("begin migration")?;
        // Read inside the write lock: another process may have migrated meanwhile.
        let version: i64 = tx
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .ctx("read schema version")?;
        if version > supported_version() {
            return Err(StoreError::NewerSchema {
                path: path.to_path_buf(),
                found: version,
                supported: supported_version(),
            });
        }
        if version > step as i64 {
            continue;
        }
        tx.execute_batch(sql).ctx("apply schema migration")?;
        tx.pragma_update(None, "user_version", (step + 1) as i64)
            .ctx("set schema version")?;
        tx.commit().ctx("commit migration")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn application_id_in_first_step_matches_constant() {
        assert!(MIGRATIONS[0].contains(&format!("application_id = {APPLICATION_ID};")));
    }

    #[test]
    fn fresh_file_gets_every_step_and_wal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gate.db");
        let conn = open_writer(&path).unwrap();
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, supported_version());
        let mode: String = conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let sync: i64 = conn
            .pragma_query_value(None, "synchronous", |r| r.get(0))
            .unwrap();
        assert_eq!(sync, 2, "synchronous = FULL");
        let fk: i64 = conn
            .pragma_query_value(None, "foreign_keys", |r| r.get(0))
            .unwrap();
        assert_eq!(fk, 1);
    }

    #[test]
    fn foreign_sqlite_file_is_refused_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("other.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch("CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('x');")
                .unwrap();
        }
        let err = open_writer(&path).unwrap_err();
        assert!(matches!(err, StoreError::ForeignDatabase { .. }), "{err:?}");
        let conn = Connection::open(&path).unwrap();
        let tables: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))
            .unwrap();
        assert_eq!(tables, 1);
    }

    #[test]
    fn reader_cannot_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gate.db");
        let _writer = open_writer(&path).unwrap();
        let reader = open_reader(&path).unwrap();
        assert!(reader.execute("DELETE FROM trains", []).is_err());
    }
}
