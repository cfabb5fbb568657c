//! Fixtures shared by the store's tests: fixed times, a store in a temporary directory, and
//! ready-made registrations, evaluations and overrides.

use std::collections::BTreeMap;

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
/// `name::postgres` (a database of its own on the test cluster, see `tests/common/postgres.rs`).
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

/// The private PostgreSQL cluster of the end-to-end tests, shared with the store's tests.
/// (The end-to-end tests also restart it; the store's tests do not.)
#[path = "../../../tests/common/postgres.rs"]
#[allow(dead_code)]
mod cluster;
pub(crate) use cluster::{pg_database, PgDatabase};

/// A store on a new PostgreSQL database.
pub(crate) fn pg_store() -> (PgDatabase, Store) {
    let (db, url) = pg_database();
    let store = Store::open(url.as_str()).unwrap();
    (db, store)
}
