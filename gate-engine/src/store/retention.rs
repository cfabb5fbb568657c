//! Retention: what the store forgets once it is old enough.
//!
//! [`Store::prune`] deletes, in one transaction, the webhook events delivered before the
//! cutoff, then every finished train (`done` or `stopped`) whose last change (registration,
//! evaluation, stop) is older than the cutoff, with its decisions, overrides and approvals. A finished
//! train that still has webhook events (pending, dead-lettered, or delivered after the
//! cutoff) is kept until they are gone too: nothing is pruned that a receiver has not seen.
//! Active trains are never pruned, however old.
//!
//! The daemon prunes periodically and `gate store prune --db` does it offline; the cutoff is
//! passed in (the store never reads the clock).

use super::error::StoreError;
use super::sql::Param;
use super::{ms, Store};
use chrono::{DateTime, Utc};

/// What one [`Store::prune`] deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pruned {
    /// Finished trains.
    pub trains: u64,
    /// Their decision history rows.
    pub decisions: u64,
    /// Their overrides.
    pub overrides: u64,
    /// Delivered webhook events.
    pub events: u64,
}

impl Store {
    /// Deletes what is older than `cutoff` (see the module docs).
    pub fn prune(&self, cutoff: DateTime<Utc>) -> Result<Pruned, StoreError> {
        let cutoff = ms(cutoff);
        self.leader_write("prune the store", |tx| {
            let events = tx.execute(
                "prune delivered events",
                "DELETE FROM outbox WHERE state = 'delivered' AND delivered_at < ?1",
                &[&cutoff],
            )?;
            let run = |sql: &str, params: &[&dyn Param]| tx.execute("prune trains", sql, params);
            run(
                "CREATE TEMP TABLE IF NOT EXISTS pruned_trains (id TEXT PRIMARY KEY)",
                &[],
            )?;
            run("DELETE FROM pruned_trains", &[])?;
            run(
                &format!(
                    "INSERT INTO pruned_trains (id) \
                     SELECT id FROM trains t \
                     WHERE lifecycle IN ('done', 'stopped') \
                       AND {greatest}(registered_at, coalesce(evaluated_at, 0), \
                               coalesce(stopped_at, 0), \
                               coalesce((SELECT max(at) FROM overrides o WHERE o.train = t.id), 0)) \
                           < ?1 \
                       AND NOT EXISTS (SELECT 1 FROM outbox e WHERE e.train = t.id)",
                    greatest = tx.dialect().greatest()
                ),
                &[&cutoff],
            )?;
            let decisions = run(
                "DELETE FROM decisions WHERE train IN (SELECT id FROM pruned_trains)",
                &[],
            )?;
            let overrides = run(
                "DELETE FROM overrides WHERE train IN (SELECT id FROM pruned_trains)",
                &[],
            )?;
            run(
                "DELETE FROM approvals WHERE train IN (SELECT id FROM pruned_trains)",
                &[],
            )?;
            let trains = run(
                "DELETE FROM trains WHERE id IN (SELECT id FROM pruned_trains)",
                &[],
            )?;
            run("DELETE FROM pruned_trains", &[])?;
            Ok(Pruned {
                trains,
                decisions,
                overrides,
                events,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use gate_rules::Decision;

    use super::*;
    use crate::store::testing::{eval, event, new_train, on_both_stores, t, tid};
    use crate::store::TrainFilter;

    on_both_stores!(old_finished_trains_and_delivered_events_go_active_and_undelivered_stay);
    fn old_finished_trains_and_delivered_events_go_active_and_undelivered_stay(store: Store) {
        for id in [
            "old-stopped",
            "old-undelivered",
            "old-active",
            "new-stopped",
        ] {
            store.register(&new_train(id), t(0)).unwrap();
        }
        // A decision with an event for each; delivered for all but one.
        for id in [
            "old-stopped",
            "old-undelivered",
            "old-active",
            "new-stopped",
        ] {
            let write = eval(
                id,
                0,
                Decision::Pause,
                t(10),
                vec![event(&format!("e-{id}"), "hook")],
            );
            store
                .record_evaluations(std::slice::from_ref(&write))
                .unwrap();
        }
        for due in store.due_events(t(20), 100).unwrap() {
            if due.train.as_str() != "old-undelivered" {
                store.mark_delivered(&due.event_id, 200, t(20)).unwrap();
            }
        }
        store.stop(&tid("old-stopped"), t(30)).unwrap();
        store.stop(&tid("old-undelivered"), t(30)).unwrap();
        store.stop(&tid("new-stopped"), t(5000)).unwrap();

        let pruned = store.prune(t(1000)).unwrap();
        assert_eq!(
            pruned,
            Pruned {
                trains: 1,
                decisions: 1,
                overrides: 0,
                events: 3,
            }
        );
        let left: Vec<String> = store
            .trains(TrainFilter::All)
            .unwrap()
            .iter()
            .map(|r| r.id.to_string())
            .collect();
        assert_eq!(left.len(), 3, "{left:?}");
        assert!(!left.contains(&"old-stopped".to_string()), "{left:?}");
        assert!(store.train(&tid("old-stopped")).unwrap().is_none());
        assert!(store.train(&tid("old-undelivered")).unwrap().is_some());
        // Nothing more to prune at the same cutoff.
        assert_eq!(store.prune(t(1000)).unwrap(), Pruned::default());
    }
}
