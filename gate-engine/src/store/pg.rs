//! The store on PostgreSQL: connections, the schema and its migrations, the writer lock.
//!
//! The schema is the SQLite store's (`schema.rs`) in PostgreSQL's types: every integer is a
//! `BIGINT` (the store binds `i64`), every text `TEXT`, the outbox's row id an identity column,
//! and the trigger that keeps each train's `outcome` a PL/pgSQL function. Its version lives in
//! the one-row table `gate_schema`; [`MIGRATIONS`] are applied at open, each in one
//! transaction with its version bump, under an advisory lock so that replicas starting
//! together migrate once. As for SQLite, a database from a newer gate is refused before
//! anything is written to it, and a database with tables that are not gate's is refused (a
//! gate store gets a database, or a schema through the URL's `options=-c search_path=…`, of
//! its own).
//!
//! Durability is PostgreSQL's: a transaction is on disk when `COMMIT` returns (with the
//! server's default `synchronous_commit = on`), which is what the store relies on before a
//! decision is published.
//!
//! Connections carry the application name `gate (pid N)`, so a refusal can say which process
//! holds the writer lock, and so an operator can find gate's sessions in
//! `pg_stat_activity`. TLS is not offered: connect over loopback, a private network or a
//! local socket (`host=/run/postgresql`).

use std::path::PathBuf;
use std::time::Duration;

use postgres::{Client, NoTls};

use super::error::StoreError;
use super::sql::{pg_error, PgConnection};

/// Advisory lock keys, in the `gate` range ("gate" in ASCII, then a purpose).
const MIGRATION_LOCK: i64 = 0x6761_7465_01;
const WRITER_LOCK: i64 = 0x6761_7465_02;

/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The schema, one step per version: step `i` takes the database from version `i` to `i + 1`.
/// Append-only, as for SQLite.
pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: the schema of SQLite's first six steps at once.
    r#"
    CREATE TABLE trains (
        id                TEXT   NOT NULL PRIMARY KEY,
        gate              TEXT   NOT NULL,
        started_at        BIGINT NOT NULL,
        baseline          TEXT,
        labels_json       TEXT   NOT NULL,
        registration_json TEXT   NOT NULL,
        registered_at     BIGINT NOT NULL,
        lifecycle         TEXT   NOT NULL CHECK (lifecycle IN
                              ('verifying', 'promoted', 'paused', 'rolled_back', 'done', 'stopped')),
        decision          TEXT   NOT NULL CHECK (decision IN ('pending', 'promote', 'pause', 'rollback')),
        seq               BIGINT NOT NULL CHECK (seq >= 0),
        reason            TEXT   NOT NULL,
        rule              TEXT,
        evaluated_at      BIGINT,
        state_json        TEXT   NOT NULL,
        evaluation_json   TEXT,
        promoted_at       BIGINT,
        stopped_at        BIGINT,
        gates_json        TEXT,
        outcome           TEXT   CHECK (outcome IN ('promoted', 'rolled_back', 'stopped'))
    );
    CREATE INDEX trains_by_gate ON trains (gate, lifecycle);
    CREATE INDEX trains_by_start ON trains (started_at);

    CREATE TABLE decisions (
        train         TEXT   NOT NULL REFERENCES trains (id),
        seq           BIGINT NOT NULL CHECK (seq > 0),
        decision      TEXT   NOT NULL CHECK (decision IN ('pending', 'promote', 'pause', 'rollback')),
        previous      TEXT   NOT NULL CHECK (previous IN ('pending', 'promote', 'pause', 'rollback')),
        reason        TEXT   NOT NULL,
        rule          TEXT,
        evaluated_at  BIGINT NOT NULL,
        evidence_json TEXT   NOT NULL,
        PRIMARY KEY (train, seq)
    );

    CREATE TABLE overrides (
        train        TEXT   NOT NULL REFERENCES trains (id),
        seq          BIGINT NOT NULL CHECK (seq > 0),
        action       TEXT   NOT NULL CHECK (action IN ('promote', 'pause', 'rollback', 'resume')),
        decision     TEXT   NOT NULL CHECK (decision IN ('pending', 'promote', 'pause', 'rollback')),
        previous     TEXT   NOT NULL CHECK (previous IN ('pending', 'promote', 'pause', 'rollback')),
        reason       TEXT   NOT NULL,
        actor        TEXT   NOT NULL,
        at           BIGINT NOT NULL,
        on_behalf_of TEXT,
        PRIMARY KEY (train, seq)
    );

    CREATE TABLE approvals (
        train  TEXT   NOT NULL REFERENCES trains (id),
        seq    BIGINT NOT NULL CHECK (seq > 0),
        reason TEXT   NOT NULL,
        actor  TEXT   NOT NULL,
        at     BIGINT NOT NULL,
        PRIMARY KEY (train, seq)
    );

    CREATE TABLE outbox (
        id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        event_id        TEXT   NOT NULL UNIQUE,
        train           TEXT   NOT NULL REFERENCES trains (id),
        seq             BIGINT NOT NULL,
        webhook         TEXT   NOT NULL,
        payload_json    TEXT   NOT NULL,
        created_at      BIGINT NOT NULL,
        state           TEXT   NOT NULL CHECK (state IN ('pending', 'delivered', 'dead')),
        attempts        BIGINT NOT NULL DEFAULT 0 CHECK (attempts >= 0),
        next_attempt_at BIGINT NOT NULL,
        last_error      TEXT,
        last_status     BIGINT,
        delivered_at    BIGINT,
        dead_at         BIGINT
    );
    CREATE INDEX outbox_pending_order ON outbox (train, webhook, id) WHERE state = 'pending';
    CREATE INDEX outbox_pending_due ON outbox (next_attempt_at) WHERE state = 'pending';
    CREATE INDEX outbox_by_train ON outbox (train, id);
    CREATE INDEX outbox_dead ON outbox (train) WHERE state = 'dead';

    -- How each finished train ended, kept on every change of lifecycle whoever writes it
    -- (see SQLite's step 6).
    CREATE FUNCTION gate_trains_outcome() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        NEW.outcome := CASE NEW.lifecycle
            WHEN 'done' THEN 'promoted'
            WHEN 'rolled_back' THEN 'rolled_back'
            WHEN 'stopped' THEN coalesce(OLD.outcome, 'stopped')
            ELSE NULL
        END;
        RETURN NEW;
    END
    $$;
    CREATE TRIGGER trains_outcome BEFORE UPDATE OF lifecycle ON trains
    FOR EACH ROW WHEN (NEW.lifecycle IS DISTINCT FROM OLD.lifecycle)
    EXECUTE FUNCTION gate_trains_outcome();
    "#,
    // 2: the leader lease (`lease.rs`): one row, nobody's (epoch 0) until claimed.
    r#"
    CREATE TABLE lease (
        name       TEXT   NOT NULL PRIMARY KEY,
        holder     TEXT   NOT NULL,
        epoch      BIGINT NOT NULL CHECK (epoch >= 0),
        expires_at BIGINT NOT NULL
    );
    INSERT INTO lease (name, holder, epoch, expires_at) VALUES ('leader', '', 0, 0);
    "#,
    // 3: every replica hears of train changes (`changes.rs`): NOTIFY gate_trains with the ID.
    r#"
    CREATE FUNCTION gate_trains_notify() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_notify('gate_trains', NEW.id);
        RETURN NULL;
    END
    $$;
    CREATE TRIGGER trains_notify_insert AFTER INSERT ON trains
    FOR EACH ROW EXECUTE FUNCTION gate_trains_notify();
    CREATE TRIGGER trains_notify_update AFTER UPDATE ON trains
    FOR EACH ROW WHEN (NEW.seq IS DISTINCT FROM OLD.seq OR NEW.lifecycle IS DISTINCT FROM OLD.lifecycle)
    EXECUTE FUNCTION gate_trains_notify();
    "#,
];

/// The newest schema version this build knows.
pub(crate) fn supported_version() -> i64 {
    MIGRATIONS.len() as i64
}

/// `url` without its password, for messages.
pub(crate) fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{user}:***@{host}"),
            None => authority.to_string(),
        },
        None => authority.to_string(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((key, _)) if key == "password" => format!("{key}=***"),
                    _ => pair.to_string(),
                })
                .collect();
            format!("{path}?{}", query.join("&"))
        }
        None => tail.to_string(),
    };
    format!("{scheme}://{authority}{tail}")
}

fn where_(url: &str) -> PathBuf {
    PathBuf::from(redacted(url))
}

/// Connects to the database at `url`.
pub(crate) fn connect(url: &str) -> Result<Client, StoreError> {
    let connect_err = |source| StoreError::Connect {
        url: redacted(url),
        source: Box::new(source),
    };
    let mut config: postgres::Config = url.parse().map_err(connect_err)?;
    if config.get_application_name().is_none() {
        config.application_name(&format!("gate (pid {})", std::process::id()));
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    config.connect(NoTls).map_err(connect_err)
}

/// Opens the connection again if the server closed it (a restart, a dropped network); the
/// prepared statements go with the old one. The writer lock, if this connection held it, is
/// taken again or the store refuses to write.
pub(crate) fn reconnect_if_closed(
    conn: &mut PgConnection,
    url: &str,
    exclusive: bool,
) -> Result<(), StoreError> {
    if !conn.needs_reconnect() {
        return Ok(());
    }
    let mut client = connect(url)?;
    if exclusive {
        lock_writer(&mut client, url)?;
    }
    conn.reset(client);
    Ok(())
}

/// Checks that the database is a gate store (or empty) from a gate no newer than this one,
/// and applies the missing steps.
pub(crate) fn migrate(client: &mut Client, url: &str) -> Result<(), StoreError> {
    migrate_to(client, url, MIGRATIONS.len())
}

pub(crate) fn migrate_to(client: &mut Client, url: &str, target: usize) -> Result<(), StoreError> {
    let mut tx = client
        .transaction()
        .map_err(|e| pg_error("begin migration", e))?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .map_err(|e| pg_error("lock the schema", e))?;
    let ours: bool = tx
        .query_one("SELECT to_regclass('gate_schema') IS NOT NULL", &[])
        .and_then(|row| row.try_get(0))
        .map_err(|e| pg_error("read schema version", e))?;
    if !ours {
        let tables: i64 = tx
            .query_one(
                "SELECT count(*) FROM pg_catalog.pg_tables WHERE schemaname = current_schema()",
                &[],
            )
            .and_then(|row| row.try_get(0))
            .map_err(|e| pg_error("read schema version", e))?;
        if tables > 0 {
            return Err(StoreError::ForeignDatabase { path: where_(url) });
        }
        tx.batch_execute(
            "CREATE TABLE gate_schema (\
                 one     BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one), \
                 version BIGINT  NOT NULL); \
             INSERT INTO gate_schema (version) VALUES (0);",
        )
        .map_err(|e| pg_error("create the schema version", e))?;
    }
    let version: i64 = tx
        .query_one("SELECT version FROM gate_schema", &[])
        .and_then(|row| row.try_get(0))
        .map_err(|e| pg_error("read schema version", e))?;
    if version > supported_version() {
        return Err(StoreError::NewerSchema {
            path: where_(url),
            found: version,
            supported: supported_version(),
        });
    }
    for (step, sql) in MIGRATIONS.iter().enumerate().take(target) {
        if version > step as i64 {
            continue;
        }
        tx.batch_execute(sql)
            .map_err(|e| pg_error("apply schema migration", e))?;
        tx.execute("UPDATE gate_schema SET version = $1", &[&(step as i64 + 1)])
            .map_err(|e| pg_error("set schema version", e))?;
    }
    tx.commit().map_err(|e| pg_error("commit migration", e))
}

/// Takes the writer lock (a session-level advisory lock, released by the server when the
/// connection ends, however the process ends), or says which gate holds it.
pub(crate) fn lock_writer(client: &mut Client, url: &str) -> Result<(), StoreError> {
    let taken: bool = client
        .query_one("SELECT pg_try_advisory_lock($1)", &[&WRITER_LOCK])
        .and_then(|row| row.try_get(0))
        .map_err(|e| pg_error("take the writer lock", e))?;
    if taken {
        return Ok(());
    }
    let holder: Option<String> = client
        .query_opt(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
             WHERE l.locktype = 'advisory' AND l.granted \
               AND ((l.classid::bigint << 32) | l.objid::bigint) = $1",
            &[&WRITER_LOCK],
        )
        .map_err(|e| pg_error("find the writer lock's holder", e))?
        .and_then(|row| row.try_get(0).ok());
    let pid = holder.as_deref().and_then(|name| {
        name.strip_prefix("gate (pid ")?
            .strip_suffix(')')?
            .parse()
            .ok()
    });
    Err(StoreError::InUse {
        path: where_(url),
        pid,
    })
}

#[cfg(test)]
mod tests {
    use gate_rules::Decision;

    use super::*;
    use crate::store::testing::{change, event, new_train, pg_database, t, tid};
    use crate::store::{Store, StoreAt};

    fn admin(url: &str) -> Client {
        Client::connect(url, NoTls).unwrap()
    }

    #[test]
    fn a_new_database_gets_every_step_and_keeps_what_is_written() {
        let (_db, url) = pg_database();
        let store = Store::open(url.as_str()).unwrap();
        assert_eq!(store.at(), &StoreAt::Postgres(url.clone()));
        store.register(&new_train("t-1"), t(0)).unwrap();
        change(
            &store,
            "t-1",
            0,
            Decision::Rollback,
            t(30),
            vec![event("e1", "deployer")],
        );
        drop(store);
        let version: i64 = admin(&url)
            .query_one("SELECT version FROM gate_schema", &[])
            .unwrap()
            .get(0);
        assert_eq!(version, supported_version());
        // Opened again (a restart, another replica): migrations are not re-run, data stays.
        let store = Store::open(url.as_str()).unwrap();
        let rec = store.train(&tid("t-1")).unwrap().unwrap();
        assert_eq!((rec.decision, rec.seq), (Decision::Rollback, 1));
        assert_eq!(store.due_events(t(30), 10).unwrap()[0].event_id, "e1");
    }

    #[test]
    fn a_database_with_other_tables_is_refused_untouched() {
        let (_db, url) = pg_database();
        admin(&url)
            .batch_execute("CREATE TABLE invoices (id BIGINT PRIMARY KEY)")
            .unwrap();
        let err = Store::open(url.as_str()).unwrap_err();
        assert!(matches!(err, StoreError::ForeignDatabase { .. }), "{err:?}");
        let tables: Vec<String> = admin(&url)
            .query(
                "SELECT tablename::text FROM pg_tables WHERE schemaname = current_schema()",
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(tables, ["invoices"]);
    }

    #[test]
    fn a_store_from_a_newer_gate_is_refused_untouched() {
        let (_db, url) = pg_database();
        Store::open(url.as_str()).unwrap();
        let newer = supported_version() + 1;
        admin(&url)
            .execute("UPDATE gate_schema SET version = $1", &[&newer])
            .unwrap();
        let err = Store::open(url.as_str()).unwrap_err();
        match &err {
            StoreError::NewerSchema {
                found, supported, ..
            } => assert_eq!((*found, *supported), (newer, supported_version())),
            other => panic!("expected NewerSchema, got {other:?}"),
        }
        assert!(err.to_string().contains("upgrade gate"), "{err}");
    }

    #[test]
    fn a_second_writer_is_refused_until_the_first_is_gone() {
        let (_db, url) = pg_database();
        let first = Store::open_exclusive(url.as_str()).unwrap();
        let err = Store::open_exclusive(url.as_str()).unwrap_err();
        match &err {
            StoreError::InUse { pid, .. } => assert_eq!(*pid, Some(std::process::id())),
            other => panic!("expected InUse, got {other:?}"),
        }
        assert!(
            err.to_string().contains("in use by another gate serve"),
            "{err}"
        );
        // Readers (reports, replays) are not writers.
        Store::open(url.as_str()).unwrap();
        drop(first);
        Store::open_exclusive(url.as_str()).unwrap();
    }

    #[test]
    fn a_lost_connection_fails_one_call_and_is_opened_again() {
        let (_db, url) = pg_database();
        let store = Store::open_exclusive(url.as_str()).unwrap();
        store.register(&new_train("t-1"), t(0)).unwrap();
        // What a server restart does to the store's sessions: this test's only (the tests
        // running beside it share the application name and the cluster).
        admin(&url)
            .execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE application_name = $1 AND datname = current_database()",
                &[&format!("gate (pid {})", std::process::id())],
            )
            .unwrap();
        let mut failures = 0;
        let mut registered = None;
        for _ in 0..3 {
            match store.register(&new_train("t-2"), t(1)) {
                Ok(r) => {
                    registered = Some(r);
                    break;
                }
                Err(StoreError::Postgres { .. }) => failures += 1,
                Err(other) => panic!("unexpected {other:?}"),
            }
        }
        assert!(registered.is_some_and(|r| r.is_created()));
        assert!(failures <= 1, "{failures} failed writes");
        assert_eq!(
            store.trains(crate::store::TrainFilter::All).unwrap().len(),
            2
        );
        // The reconnected writer holds the writer lock again.
        assert!(matches!(
            Store::open_exclusive(url.as_str()),
            Err(StoreError::InUse { .. })
        ));
    }

    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(
            redacted("postgres://gate:s3cret@db.example:5432/gate?sslmode=disable"),
            "postgres://gate:***@db.example:5432/gate?sslmode=disable"
        );
        assert_eq!(
            redacted("postgresql://gate@db/gate?password=s3cret&application_name=x"),
            "postgresql://gate@db/gate?password=***&application_name=x"
        );
        assert_eq!(redacted("postgres://db/gate"), "postgres://db/gate");
    }
}
