//! `gate outbox redrive`: puts dead-lettered webhook events back in the queue.
//!
//! It works on the store file directly (`--db`), not through the HTTP API, so it also helps
//! when the daemon is down; a running `gate serve` on the same file picks the events up at its
//! next poll (the store is SQLite in WAL mode: the two processes do not block each other for
//! longer than a write). Each redriven event goes back to its place in its train's order with
//! its attempts reset, and is sent with its original ID and body.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use gate_engine::store::Store;

use super::train_id;
use crate::exit;

/// Arguments of `gate outbox`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Send dead-lettered webhook events again (every train's, or one train's).
    Redrive {
        /// Only this train's events.
        #[arg(long)]
        train: Option<String>,
        /// The daemon's store.
        #[arg(long, default_value = "gate.db")]
        db: PathBuf,
    },
}

/// Runs `gate outbox`.
pub fn run(args: Args) -> anyhow::Result<i32> {
    match args.command {
        Command::Redrive { train, db } => {
            let n = redrive(&db, train.as_deref(), Utc::now())?;
            let scope = train.map_or_else(String::new, |t| format!(" of train {t}"));
            let noun = if n == 1 { "event" } else { "events" };
            println!("{n} dead-lettered webhook {noun}{scope} queued again");
            Ok(exit::OK)
        }
    }
}

/// Requeues the dead letters of `train` (or all) in the store at `db`, due at `now`.
fn redrive(db: &Path, train: Option<&str>, now: DateTime<Utc>) -> anyhow::Result<u64> {
    let train = train.map(train_id).transpose()?;
    if !db.exists() {
        return Err(exit::usage(format!(
            "no gate store at {} (point --db at the file `gate serve` uses)",
            db.display()
        )));
    }
    let store = Store::open(db)?;
    Ok(store.redrive_dead(train.as_ref(), now)?)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chrono::TimeZone;
    use gate_engine::store::{
        DeliveryState, EvaluationWrite, Evidence, Lifecycle, NewOutboxEvent, NewTrain,
    };
    use gate_rules::decide::TrainState;
    use gate_rules::Decision;

    use super::*;

    fn t(secs: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap() + chrono::Duration::seconds(secs)
    }

    /// A store where trains `a` and `b` each have one dead-lettered event.
    fn store_with_dead_letters(path: &Path) {
        let store = Store::open(path).unwrap();
        for train in ["a", "b"] {
            let id = gate_rules::train_id::validate(train).unwrap();
            let body = NewTrain {
                id: id.clone(),
                gate: "checkout".to_string(),
                started_at: Some(t(0)),
                baseline: None,
                labels: BTreeMap::new(),
            };
            store.register(&body, t(0)).unwrap();
            let event_id = format!("{train}-1");
            store
                .record_evaluation(&EvaluationWrite {
                    train: id,
                    based_on_seq: 0,
                    decision: Decision::Rollback,
                    reason: "fast-burn".to_string(),
                    rule: Some("fast-burn".to_string()),
                    evaluated_at: t(10),
                    state: TrainState::default(),
                    evidence: Evidence::encode(&serde_json::json!({})).unwrap(),
                    lifecycle: Lifecycle::RolledBack,
                    events: vec![NewOutboxEvent {
                        event_id: event_id.clone(),
                        webhook: "deployer".to_string(),
                        payload: serde_json::json!({"id": event_id}),
                    }],
                })
                .unwrap();
            store
                .mark_dead(&event_id, "HTTP 500", Some(500), t(20))
                .unwrap();
        }
    }

    fn state(path: &Path, train: &str) -> DeliveryState {
        let id = gate_rules::train_id::validate(train).unwrap();
        Store::open(path).unwrap().delivery_states(&id).unwrap()[0].state
    }

    #[test]
    fn redrive_requeues_one_train_or_all() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gate.db");
        store_with_dead_letters(&path);

        assert_eq!(redrive(&path, Some("a"), t(30)).unwrap(), 1);
        assert_eq!(state(&path, "a"), DeliveryState::Pending);
        assert_eq!(state(&path, "b"), DeliveryState::Dead);
        assert_eq!(redrive(&path, None, t(40)).unwrap(), 1);
        assert_eq!(state(&path, "b"), DeliveryState::Pending);
        assert_eq!(redrive(&path, None, t(50)).unwrap(), 0);
    }

    #[test]
    fn a_missing_store_or_a_bad_train_id_is_a_usage_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.db");
        let err = redrive(&missing, None, t(0)).unwrap_err();
        let exit = err.downcast_ref::<exit::Exit>().unwrap();
        assert_eq!(exit.code, exit::USAGE);
        assert!(exit.message.contains("nope.db"), "{}", exit.message);
        assert!(!missing.exists(), "no store is created by a typo");

        let path = dir.path().join("gate.db");
        store_with_dead_letters(&path);
        let err = redrive(&path, Some("not a train id!"), t(0)).unwrap_err();
        assert_eq!(err.downcast_ref::<exit::Exit>().unwrap().code, exit::USAGE);
        assert_eq!(state(&path, "a"), DeliveryState::Dead);
    }
}
