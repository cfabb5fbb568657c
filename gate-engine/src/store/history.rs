//! The trains' histories for the monthly review (`gate report`, `GET /v1/report`): every
//! train started in a time range, with its decision changes and overrides, read in one
//! snapshot.
//!
//! The store already keeps what the review needs — the `decisions` and `overrides` tables
//! hold every change with its time, rule and seq, the train row its lifecycle and stop — so
//! nothing but each train's outcome is kept for the review: its figures are computed from
//! this history by [`crate::review`]. Two queries serve any number of trains (not one per
//! train), merged by train and seq here.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::error::StoreError;
use super::model::{GateLeg, HistoryChange, Lifecycle, Outcome, TrainHistory};
use super::{ms, Field, Store};

impl Store {
    /// The trains started in `[from, to]`, by start time then ID, each with its decision
    /// changes and overrides in seq order.
    pub fn histories(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<TrainHistory>, StoreError> {
        self.read("read the trains' histories", |tx| {
            let mut trains = Vec::new();
            let mut index: HashMap<String, usize> = HashMap::new();
            let rows = tx.query(
                "read trains",
                "SELECT id, gate, started_at, lifecycle, outcome, stopped_at, gates_json \
                 FROM trains \
                 WHERE started_at >= ?1 AND started_at <= ?2 ORDER BY started_at, id",
                &[&ms(from), &ms(to)],
            )?;
            for row in rows {
                let id: String = row.get(0)?;
                let gate: String = row.get(1)?;
                let started_at: i64 = row.get(2)?;
                let lifecycle: String = row.get(3)?;
                let outcome: Option<String> = row.get(4)?;
                let stopped_at: Option<i64> = row.get(5)?;
                let legs: Option<String> = row.get(6)?;
                let field = |column| Field { column, key: &id };
                let legs: Vec<GateLeg> = legs
                    .map(|g| field("trains.gates_json").json(&g))
                    .transpose()?
                    .unwrap_or_default();
                let gates = if legs.is_empty() {
                    vec![gate.clone()]
                } else {
                    legs.into_iter().map(|leg| leg.gate).collect()
                };
                let history = TrainHistory {
                    id: field("trains.id").parse(&id)?,
                    gate,
                    gates,
                    started_at: field("trains.started_at").time(started_at)?,
                    lifecycle: field("trains.lifecycle").parse::<Lifecycle>(&lifecycle)?,
                    outcome: outcome
                        .map(|o| field("trains.outcome").parse::<Outcome>(&o))
                        .transpose()?,
                    stopped_at: field("trains.stopped_at").opt_time(stopped_at)?,
                    changes: Vec::new(),
                };
                index.insert(id, trains.len());
                trains.push(history);
            }
            if trains.is_empty() {
                return Ok(trains);
            }

            // Decision changes and overrides in one read: an override has an action and no
            // rule.
            let in_range = "SELECT id FROM trains WHERE started_at >= ?1 AND started_at <= ?2";
            let rows = tx.query(
                "read decisions and overrides",
                &format!(
                    "SELECT train, seq, previous, decision, rule, NULL, evaluated_at FROM decisions \
                     WHERE train IN ({in_range}) \
                     UNION ALL \
                     SELECT train, seq, previous, decision, NULL, action, at FROM overrides \
                     WHERE train IN ({in_range})"
                ),
                &[&ms(from), &ms(to)],
            )?;
            for row in rows {
                let train: String = row.get(0)?;
                let seq: i64 = row.get(1)?;
                let previous: String = row.get(2)?;
                let decision: String = row.get(3)?;
                let rule: Option<String> = row.get(4)?;
                let action: Option<String> = row.get(5)?;
                let at: i64 = row.get(6)?;
                let field = |column| Field {
                    column,
                    key: &train,
                };
                let change = HistoryChange {
                    seq: field("decisions.seq").count(seq)?,
                    at: field("decisions.evaluated_at").time(at)?,
                    previous: field("decisions.previous").parse(&previous)?,
                    decision: field("decisions.decision").parse(&decision)?,
                    rule,
                    override_action: action
                        .map(|a| field("overrides.action").parse(&a))
                        .transpose()?,
                };
                if let Some(&k) = index.get(&train) {
                    trains[k].changes.push(change);
                }
            }
            for train in &mut trains {
                train.changes.sort_by_key(|c| c.seq);
            }
            Ok(trains)
        })
    }
}

#[cfg(test)]
mod tests {
    use gate_rules::Decision;

    use super::*;
    use crate::store::testing::{change, new_train, on_both_stores, t, tid};
    use crate::store::{OverrideAction, OverrideWrite};

    on_both_stores!(
        histories_hold_the_trains_started_in_range_with_changes_and_overrides_in_seq_order
    );
    fn histories_hold_the_trains_started_in_range_with_changes_and_overrides_in_seq_order(
        store: Store,
    ) {
        for (id, start) in [("early", 0), ("a", 100), ("b", 200), ("late", 900)] {
            let mut train = new_train(id);
            train.started_at = Some(t(start));
            store.register(&train, t(start)).unwrap();
        }
        change(&store, "a", 0, Decision::Pause, t(150), vec![]);
        store
            .record_override(&OverrideWrite {
                train: tid("a"),
                action: OverrideAction::Promote,
                decision: Decision::Promote,
                reason: "verified by hand".into(),
                actor: "alice".into(),
                at: t(160),
                state: Default::default(),
                lifecycle: Lifecycle::Promoted,
                events: vec![],
                on_behalf_of: None,
                gates: None,
            })
            .unwrap();
        change(&store, "a", 2, Decision::Rollback, t(170), vec![]);
        store.stop(&tid("b"), t(300)).unwrap();

        let got = store.histories(t(100), t(500)).unwrap();
        let ids: Vec<&str> = got.iter().map(|h| h.id.as_str()).collect();
        assert_eq!(ids, ["a", "b"]);
        let a = &got[0];
        assert_eq!(a.started_at, t(100));
        let changes: Vec<(u64, Decision, Decision, Option<OverrideAction>)> = a
            .changes
            .iter()
            .map(|c| (c.seq, c.previous, c.decision, c.override_action))
            .collect();
        assert_eq!(
            changes,
            [
                (1, Decision::Pending, Decision::Pause, None),
                (
                    2,
                    Decision::Pause,
                    Decision::Promote,
                    Some(OverrideAction::Promote)
                ),
                (3, Decision::Promote, Decision::Rollback, None),
            ]
        );
        assert_eq!(a.changes[1].at, t(160));
        assert_eq!(got[1].lifecycle, Lifecycle::Stopped);
        assert_eq!(got[1].outcome, Some(Outcome::Stopped));
        assert_eq!(a.outcome, Some(Outcome::RolledBack));
        assert_eq!(got[1].stopped_at, Some(t(300)));
        assert!(got[1].changes.is_empty());
        assert!(store.histories(t(1000), t(2000)).unwrap().is_empty());
    }

    on_both_stores!(the_outcome_follows_the_lifecycle_and_a_stop_keeps_it);
    fn the_outcome_follows_the_lifecycle_and_a_stop_keeps_it(store: Store) {
        for id in ["rolled", "open", "done", "resumed"] {
            store.register(&new_train(id), t(0)).unwrap();
        }
        change(&store, "rolled", 0, Decision::Rollback, t(10), vec![]);
        change(&store, "done", 0, Decision::Promote, t(10), vec![]);
        let mut watched = crate::store::testing::eval("done", 1, Decision::Promote, t(20), vec![]);
        watched.lifecycle = Lifecycle::Done;
        store.record_evaluation(&watched).unwrap();
        change(&store, "resumed", 0, Decision::Rollback, t(10), vec![]);
        let outcome = |id: &str| {
            store
                .histories(t(-3600), t(3600))
                .unwrap()
                .into_iter()
                .find(|h| h.id.as_str() == id)
                .unwrap()
                .outcome
        };
        assert_eq!(outcome("rolled"), Some(Outcome::RolledBack));
        assert_eq!(outcome("open"), None);
        assert_eq!(outcome("done"), Some(Outcome::Promoted));
        assert_eq!(outcome("resumed"), Some(Outcome::RolledBack));
        // Each as the daemon's metric names a train finishing from an open state.
        assert_eq!(
            Outcome::on_finishing(Lifecycle::RolledBack),
            outcome("rolled")
        );
        assert_eq!(Outcome::on_finishing(Lifecycle::Done), outcome("done"));

        let mut resume = crate::store::testing::override_write(
            "resumed",
            OverrideAction::Resume,
            Decision::Pending,
        );
        resume.lifecycle = Lifecycle::Verifying;
        store.record_override(&resume).unwrap();
        assert_eq!(outcome("resumed"), None, "open again");

        for id in ["rolled", "open", "done"] {
            store.stop(&tid(id), t(30)).unwrap();
        }
        assert_eq!(outcome("rolled"), Some(Outcome::RolledBack));
        assert_eq!(outcome("open"), Some(Outcome::Stopped));
        assert_eq!(Outcome::on_finishing(Lifecycle::Stopped), outcome("open"));
        assert_eq!(outcome("done"), Some(Outcome::Promoted));
    }

    #[test]
    fn a_store_from_before_the_outcome_gets_it_from_the_trains_state() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gate.db");
        {
            let writer = crate::store::schema::open_writer_at_version(&path, 5).unwrap();
            let old = Store::with_sqlite_writer(&path, writer).unwrap();
            for id in ["rolled", "stopped", "done"] {
                old.register(&new_train(id), t(0)).unwrap();
            }
            change(&old, "rolled", 0, Decision::Rollback, t(10), vec![]);
            old.stop(&tid("rolled"), t(20)).unwrap();
            old.stop(&tid("stopped"), t(20)).unwrap();
            change(&old, "done", 0, Decision::Promote, t(10), vec![]);
            let mut watched =
                crate::store::testing::eval("done", 1, Decision::Promote, t(20), vec![]);
            watched.lifecycle = Lifecycle::Done;
            old.record_evaluation(&watched).unwrap();
        }
        let store = Store::open(&path).unwrap();
        let outcomes: Vec<(String, Option<Outcome>)> = store
            .histories(t(-3600), t(3600))
            .unwrap()
            .into_iter()
            .map(|h| (h.id.to_string(), h.outcome))
            .collect();
        assert_eq!(
            outcomes,
            [
                ("done".to_string(), Some(Outcome::Promoted)),
                ("rolled".to_string(), Some(Outcome::RolledBack)),
                ("stopped".to_string(), Some(Outcome::Stopped)),
            ]
        );
    }
}
