//! Fixtures shared by the store's tests: fixed times, a store in a temporary directory, and
//! ready-made registrations, evaluations and overrides.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

use chrono::{DateTime, TimeZone, Utc};
use gate_rules::decide::{PauseCause, TrainState};
use gate_rules::Decision;
use gate_rules::TrainId;
use serde_json::json;

use super::sql::Param;
use super::{
    EvaluationWrite, Evidence, Lifecycle, NewOutboxEvent, NewTrain, OverrideAction, OverrideWrite,
    Store, WriteOutcome,
};

/// A fixed time: 2026-11-01T12:00:00Z plus `secs`.
pub(crate) fn t(secs: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap() + chrono::Duration::seconds(secs)
}

pub(crate) fn tid(id: &str) -> TrainId {
    gate_rules::train_id::validate(id).unwrap()
}

pub(crate) fn temp_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("gate.db")).unwrap();
    (dir, store)
}

pub(crate) fn new_train(id: &str) -> NewTrain {
    NewTrain {
        id: tid(id),
        gate: "checkout".to_string(),
        gates: Vec::new(),
        started_at: Some(t(-60)),
        baseline: Some(tid("t-0")),
        labels: BTreeMap::from([("team".to_string(), "payments".to_string())]),
    }
}

pub(crate) fn event(id: &str, webhook: &str) -> NewOutboxEvent {
    NewOutboxEvent {
        event_id: id.to_string(),
        webhook: webhook.to_string(),
        payload: json!({"id": id, "type": "gate.decision"}),
    }
}

pub(crate) fn eval(
    train: &str,
    based_on_seq: u64,
    decision: Decision,
    at: DateTime<Utc>,
    events: Vec<NewOutboxEvent>,
) -> EvaluationWrite {
    let lifecycle = match decision {
        Decision::Pending => Lifecycle::Verifying,
        Decision::Promote => Lifecycle::Promoted,
        Decision::Pause => Lifecycle::Paused,
        Decision::Rollback => Lifecycle::RolledBack,
    };
    EvaluationWrite {
        train: tid(train),
        based_on_seq,
        decision,
        reason: format!("{decision} at {at}"),
        rule: (decision != Decision::Pending).then(|| "fast-burn".to_string()),
        evaluated_at: at,
        state: TrainState {
            decision: Some(decision),
            consecutive_errors: 1,
            streaks: BTreeMap::from([("fast-burn".to_string(), 2)]),
            clean_streak: 0,
            pause_cause: (decision == Decision::Pause).then_some(PauseCause::Rule),
            pinned: None,
            ..TrainState::default()
        },
        evidence: Evidence::encode(&json!({"decision": decision, "rules": [{"name": "fast-burn", "values": {"burn_rate(\"a\", \"1h\")": 15.5}}]})).unwrap(),
        lifecycle,
        events,
        gates: None,
    }
}

/// Changes a train's decision (the caller's view must be at `seq`) and returns the new seq.
pub(crate) fn change(
    store: &Store,
    train: &str,
    seq: u64,
    decision: Decision,
    at: DateTime<Utc>,
    events: Vec<NewOutboxEvent>,
) -> u64 {
    match store
        .record_evaluation(&eval(train, seq, decision, at, events))
        .unwrap()
    {
        WriteOutcome::Changed { seq: new } => new,
        other => panic!("expected a change, got {other:?}"),
    }
}

pub(crate) fn override_write(
    train: &str,
    action: OverrideAction,
    decision: Decision,
) -> OverrideWrite {
    OverrideWrite {
        train: tid(train),
        action,
        decision,
        reason: "hotfix verified by hand".to_string(),
        actor: "alice".to_string(),
        on_behalf_of: None,
        at: t(300),
        state: TrainState {
            decision: Some(decision),
            pinned: Some(decision),
            ..TrainState::default()
        },
        lifecycle: Lifecycle::Promoted,
        events: vec![event("ov-1", "deployer")],
        gates: None,
    }
}

pub(crate) fn decision_rows(store: &Store, train: &str) -> i64 {
    count(
        store,
        "SELECT count(*) FROM decisions WHERE train = ?1",
        &[&train],
    )
}

pub(crate) fn outbox_rows(store: &Store) -> i64 {
    count(store, "SELECT count(*) FROM outbox", &[])
}

fn count(store: &Store, sql: &str, params: &[&dyn Param]) -> i64 {
    store
        .read("count", |tx| tx.query_one("count", sql, params)?.get(0))
        .unwrap()
}

/// Runs a store test, a function `name(store: Store)` of the same module, once on each
/// database: as the tests `name::sqlite` (a file in a temporary directory) and
/// `name::postgres` (a database of its own on [`pg_cluster`]).
macro_rules! on_both_stores {
    ($name:ident) => {
        mod $name {
            #[test]
            fn sqlite() {
                let (_dir, store) = $crate::store::testing::temp_store();
                super::$name(store);
            }

            #[test]
            fn postgres() {
                let (_db, store) = $crate::store::testing::pg_store();
                super::$name(store);
            }
        }
    };
}
pub(crate) use on_both_stores;

/// A private PostgreSQL cluster for this test process: `initdb` and `pg_ctl` in a temporary
/// directory, listening on a free loopback port, stopped and removed by a watcher when the
/// process ends (however it ends). As root, the cluster runs as the `postgres` user (initdb
/// refuses root). Needs PostgreSQL's server binaries: on PATH, or Debian's
/// `/usr/lib/postgresql/<version>/bin` (`apt-get install postgresql`; scripts/test does).
pub(crate) struct PgCluster {
    port: u16,
}

impl PgCluster {
    /// A URL for database `db` of the cluster.
    pub(crate) fn url(&self, db: &str) -> String {
        format!("postgres://gate@127.0.0.1:{}/{db}", self.port)
    }

    fn start() -> PgCluster {
        let initdb = pg_bin("initdb");
        let pg_ctl = pg_bin("pg_ctl");
        let dir = tempfile::Builder::new()
            .prefix("gate-pg-")
            .tempdir()
            .unwrap()
            .keep();
        let as_root = running_as_root();
        if as_root {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir)
                .status()
                .unwrap();
            assert!(status.success(), "chown the cluster directory to postgres");
        }
        let data = dir.join("data");
        let run = |program: &Path, args: &[&std::ffi::OsStr]| {
            let mut cmd = if as_root {
                let mut cmd = Command::new("runuser");
                cmd.args(["-u", "postgres", "--"]).arg(program);
                cmd
            } else {
                Command::new(program)
            };
            cmd.args(args);
            cmd
        };
        let out = run(
            &initdb,
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-U".as_ref(),
                "gate".as_ref(),
                "--auth=trust".as_ref(),
                "--no-sync".as_ref(),
                "-E".as_ref(),
                "UTF8".as_ref(),
            ],
        )
        .output()
        .unwrap();
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
            dir.display()
        );
        let log = dir.join("postgres.log");
        let out = run(
            &pg_ctl,
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-o".as_ref(),
                options.as_ref(),
                "-l".as_ref(),
                log.as_os_str(),
                "-w".as_ref(),
                "start".as_ref(),
            ],
        )
        .output()
        .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl start: {}{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        // The watcher: once this process is gone, stop the cluster and remove its directory.
        let script = format!(
            "while [ -d /proc/{pid} ]; do sleep 1; done; \
             '{pg_ctl}' -D '{data}' -m immediate stop >/dev/null 2>&1; rm -rf '{dir}'",
            pid = std::process::id(),
            pg_ctl = pg_ctl.display(),
            data = data.display(),
            dir = dir.display(),
        );
        run(Path::new("/bin/sh"), &["-c".as_ref(), script.as_ref()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        PgCluster { port }
    }
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|out| out.stdout.trim_ascii() == b"0")
        .unwrap_or(false)
}

/// A PostgreSQL server binary: on PATH, else the newest Debian installation.
pub(crate) fn pg_bin(name: &str) -> PathBuf {
    if let Some(path) = std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
    {
        return path;
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path().join("bin").join(name))
        .filter(|p| p.is_file())
        .collect();
    versions.sort_by_key(|p| {
        p.components()
            .nth(3)
            .and_then(|c| c.as_os_str().to_str()?.parse::<u32>().ok())
    });
    versions.pop().unwrap_or_else(|| {
        panic!(
            "PostgreSQL's `{name}` is neither on PATH nor in /usr/lib/postgresql/*/bin: \
             install Debian's `postgresql` (scripts/test does)"
        )
    })
}

/// The cluster of this test process, started on first use.
pub(crate) fn pg_cluster() -> &'static PgCluster {
    static CLUSTER: OnceLock<PgCluster> = OnceLock::new();
    CLUSTER.get_or_init(PgCluster::start)
}

/// A database of its own, dropped with the guard.
pub(crate) struct PgDatabase {
    name: String,
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        if let Ok(mut admin) =
            postgres::Client::connect(&pg_cluster().url("postgres"), postgres::NoTls)
        {
            let _ = admin.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

/// A new, empty database on [`pg_cluster`] and its URL.
pub(crate) fn pg_database() -> (PgDatabase, String) {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let name = format!("t{}", NEXT.fetch_add(1, Ordering::Relaxed));
    let cluster = pg_cluster();
    let mut admin = postgres::Client::connect(&cluster.url("postgres"), postgres::NoTls).unwrap();
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .unwrap();
    let url = cluster.url(&name);
    (PgDatabase { name }, url)
}

/// A store on a new PostgreSQL database.
pub(crate) fn pg_store() -> (PgDatabase, Store) {
    let (db, url) = pg_database();
    let store = Store::open(url.as_str()).unwrap();
    (db, store)
}
