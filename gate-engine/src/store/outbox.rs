//! The webhook outbox: events queued with decision changes, handed to the sender in order.
//!
//! Events are inserted by the decision-change transactions in `trains.rs` and never deleted:
//! a delivered or dead event is the delivery record shown in the train's audit trail. The
//! sender asks for due events, tries them, and reports each outcome; per (train, webhook) only
//! the oldest pending event is ever due, which is what keeps delivery in order per train. The
//! row id (insertion order) is that order: within a train, a later seq is always inserted later.

use super::error::StoreError;
use super::model::{Delivery, NewOutboxEvent, OutboxBacklog, OutboxEvent};
use super::sql::{Param, Row, Tx};
use super::{ms, Field, Store};
use chrono::{DateTime, Utc};
use gate_rules::TrainId;

impl Store {
    /// Pending events whose next attempt is due at `now`, at most `limit`, oldest first — only
    /// the oldest pending event of each (train, webhook): a later event waits for the earlier
    /// one to be delivered or dead-lettered, even when its own time has come.
    pub fn due_events(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<OutboxEvent>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read("list due webhook events", |tx| {
            let rows = tx.query(
                "list due webhook events",
                "SELECT o.event_id, o.train, o.seq, o.webhook, o.payload_json, o.created_at, \
                 o.attempts FROM outbox o \
                 WHERE o.state = 'pending' AND o.next_attempt_at <= ?1 \
                 AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.state = 'pending' \
                     AND p.train = o.train AND p.webhook = o.webhook AND p.id < o.id) \
                 ORDER BY o.next_attempt_at, o.id LIMIT ?2",
                &[&ms(now), &limit],
            )?;
            let mut due = Vec::new();
            for row in rows {
                let event_id: String = row.get(0)?;
                let field = |column| Field {
                    column,
                    key: &event_id,
                };
                due.push(OutboxEvent {
                    train: field("outbox.train").parse(&row.get::<String>(1)?)?,
                    seq: field("outbox.seq").count(row.get::<i64>(2)?)?,
                    webhook: row.get(3)?,
                    payload: field("outbox.payload_json").json(&row.get::<String>(4)?)?,
                    created_at: field("outbox.created_at").time(row.get(5)?)?,
                    attempts: field("outbox.attempts").count(row.get::<i64>(6)?)?,
                    event_id,
                });
            }
            Ok(due)
        })
    }

    /// Records a successful delivery (a 2xx with this `status`).
    pub fn mark_delivered(
        &self,
        event_id: &str,
        status: u16,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.update_pending(
            "mark a webhook event delivered",
            event_id,
            "UPDATE outbox SET state = 'delivered', attempts = attempts + 1, last_status = ?2, \
             delivered_at = ?3 WHERE event_id = ?1 AND state = 'pending'",
            &[&event_id, &i64::from(status), &ms(at)],
        )
    }

    /// Records a failed attempt (`status` if a response came back) and when to try again.
    pub fn mark_failed(
        &self,
        event_id: &str,
        error: &str,
        status: Option<u16>,
        next_attempt_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.update_pending(
            "mark a webhook attempt failed",
            event_id,
            "UPDATE outbox SET attempts = attempts + 1, last_error = ?2, last_status = ?3, \
             next_attempt_at = ?4 WHERE event_id = ?1 AND state = 'pending'",
            &[
                &event_id,
                &error,
                &status.map(i64::from),
                &ms(next_attempt_at),
            ],
        )
    }

    /// Records the final failed attempt and dead-letters the event; the next event of the same
    /// train and webhook becomes due.
    pub fn mark_dead(
        &self,
        event_id: &str,
        error: &str,
        status: Option<u16>,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.update_pending(
            "dead-letter a webhook event",
            event_id,
            "UPDATE outbox SET state = 'dead', attempts = attempts + 1, last_error = ?2, \
             last_status = ?3, dead_at = ?4 WHERE event_id = ?1 AND state = 'pending'",
            &[&event_id, &error, &status.map(i64::from), &ms(at)],
        )
    }

    /// Puts dead-lettered events (of one train, or all) back in the queue, due at `now` with
    /// their attempts reset; returns how many. A redriven event goes back to its place in its
    /// train's order, so it is delivered before any later event still pending; events already
    /// delivered after it stay delivered.
    pub fn redrive_dead(
        &self,
        train: Option<&TrainId>,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        self.write("redrive dead webhook events", |tx| {
            tx.execute(
                "redrive dead webhook events",
                "UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_at = ?2, \
                 dead_at = NULL WHERE state = 'dead' AND (CAST(?1 AS TEXT) IS NULL OR train = ?1)",
                &[&train.map(TrainId::as_str), &ms(now)],
            )
        })
    }

    /// How many events are pending and dead-lettered (for `/metrics` and `status`).
    pub fn outbox_backlog(&self) -> Result<OutboxBacklog, StoreError> {
        self.read("count the webhook backlog", |tx| {
            let count = |state: &str| -> Result<u64, StoreError> {
                let n: i64 = tx
                    .query_one(
                        "count the webhook backlog",
                        "SELECT count(*) FROM outbox WHERE state = ?1",
                        &[&state],
                    )?
                    .get(0)?;
                Ok(u64::try_from(n).unwrap_or(0))
            };
            Ok(OutboxBacklog {
                pending: count("pending")?,
                dead: count("dead")?,
            })
        })
    }

    /// Every webhook event of a train with its delivery state, in queue order (empty for an
    /// unknown train).
    pub fn delivery_states(&self, train: &TrainId) -> Result<Vec<Delivery>, StoreError> {
        self.read("read webhook deliveries", |tx| {
            Ok(load_deliveries(tx, train)?
                .into_iter()
                .map(|(_, delivery)| delivery)
                .collect())
        })
    }

    fn update_pending(
        &self,
        context: &'static str,
        event_id: &str,
        sql: &str,
        params: &[&dyn Param],
    ) -> Result<(), StoreError> {
        self.leader_write(context, |tx| {
            let n = tx.execute(context, sql, params)?;
            if n == 0 {
                return Err(StoreError::UnknownEvent(event_id.to_string()));
            }
            Ok(())
        })
    }
}

/// Queues webhook events for a decision change, inside the caller's transaction. `payloads`
/// are the events' payloads, already encoded.
pub(super) fn insert_events(
    tx: &Tx<'_>,
    train: &TrainId,
    seq: u64,
    at: i64,
    events: &[NewOutboxEvent],
    payloads: &[String],
) -> Result<(), StoreError> {
    for (event, payload) in events.iter().zip(payloads) {
        tx.execute(
            "queue a webhook event",
            "INSERT INTO outbox (event_id, train, seq, webhook, payload_json, created_at, state, \
             attempts, next_attempt_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending', 0, ?6)",
            &[
                &event.event_id,
                &train.as_str(),
                &super::seq_sql(seq),
                &event.webhook,
                payload,
                &at,
            ],
        )?;
    }
    Ok(())
}

/// A train's webhook events with their row ids (queue order).
pub(super) fn load_deliveries(
    tx: &Tx<'_>,
    train: &TrainId,
) -> Result<Vec<(i64, Delivery)>, StoreError> {
    tx.query(
        "read webhook deliveries",
        "SELECT id, event_id, webhook, seq, state, attempts, created_at, next_attempt_at, \
         last_error, last_status, delivered_at, dead_at FROM outbox WHERE train = ?1 \
         ORDER BY id",
        &[&train.as_str()],
    )?
    .iter()
    .map(|row| {
        let raw = RawDelivery::from_row(row)?;
        Ok((raw.id, raw.decode()?))
    })
    .collect()
}

struct RawDelivery {
    id: i64,
    event_id: String,
    webhook: String,
    seq: i64,
    state: String,
    attempts: i64,
    created_at: i64,
    next_attempt_at: i64,
    last_error: Option<String>,
    last_status: Option<i64>,
    delivered_at: Option<i64>,
    dead_at: Option<i64>,
}

impl RawDelivery {
    fn from_row(r: &Row) -> Result<RawDelivery, StoreError> {
        Ok(RawDelivery {
            id: r.get(0)?,
            event_id: r.get(1)?,
            webhook: r.get(2)?,
            seq: r.get(3)?,
            state: r.get(4)?,
            attempts: r.get(5)?,
            created_at: r.get(6)?,
            next_attempt_at: r.get(7)?,
            last_error: r.get(8)?,
            last_status: r.get(9)?,
            delivered_at: r.get(10)?,
            dead_at: r.get(11)?,
        })
    }

    fn decode(self) -> Result<Delivery, StoreError> {
        let RawDelivery {
            id: _,
            event_id,
            webhook,
            seq,
            state,
            attempts,
            created_at,
            next_attempt_at,
            last_error,
            last_status,
            delivered_at,
            dead_at,
        } = self;
        let field = |column| Field {
            column,
            key: &event_id,
        };
        Ok(Delivery {
            webhook,
            seq: field("outbox.seq").count(seq)?,
            state: field("outbox.state").parse(&state)?,
            attempts: field("outbox.attempts").count(attempts)?,
            created_at: field("outbox.created_at").time(created_at)?,
            next_attempt_at: field("outbox.next_attempt_at").time(next_attempt_at)?,
            last_error,
            last_status: last_status
                .map(|s| field("outbox.last_status").count(s))
                .transpose()?,
            delivered_at: field("outbox.delivered_at").opt_time(delivered_at)?,
            dead_at: field("outbox.dead_at").opt_time(dead_at)?,
            event_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use gate_rules::Decision;

    use super::super::testing::{change, event, new_train, on_both_stores, t, tid};
    use super::*;
    use crate::store::{DeliveryState, StoreError};

    fn due_ids(store: &Store, now: DateTime<Utc>) -> Vec<String> {
        store
            .due_events(now, 100)
            .unwrap()
            .into_iter()
            .map(|e| e.event_id)
            .collect()
    }

    /// Train `a` gets a1 then a2 (deployer and audit each), train `b` gets b1.
    fn two_trains(store: &Store) {
        store.register(&new_train("a"), t(0)).unwrap();
        store.register(&new_train("b"), t(0)).unwrap();
        change(
            &store,
            "a",
            0,
            Decision::Pause,
            t(10),
            vec![event("a1", "deployer"), event("a1-audit", "audit")],
        );
        change(
            &store,
            "a",
            1,
            Decision::Rollback,
            t(20),
            vec![event("a2", "deployer"), event("a2-audit", "audit")],
        );
        change(
            &store,
            "b",
            0,
            Decision::Pause,
            t(15),
            vec![event("b1", "deployer")],
        );
    }

    on_both_stores!(a_later_event_waits_for_the_earlier_one_of_its_train_and_webhook);
    fn a_later_event_waits_for_the_earlier_one_of_its_train_and_webhook(store: Store) {
        two_trains(&store);
        assert!(
            due_ids(&store, t(5)).is_empty(),
            "nothing is due before it was queued"
        );
        assert_eq!(due_ids(&store, t(30)), ["a1", "a1-audit", "b1"]);

        // a1 fails and backs off until t(100); a2's own time (t(20)) has passed, but it
        // must not overtake a1. The audit webhook and train b are not held up.
        store
            .mark_failed("a1", "HTTP 503", Some(503), t(100))
            .unwrap();
        store.mark_delivered("a1-audit", 200, t(31)).unwrap();
        store.mark_delivered("b1", 204, t(31)).unwrap();
        assert_eq!(due_ids(&store, t(60)), ["a2-audit"]);
        assert_eq!(due_ids(&store, t(100)), ["a2-audit", "a1"]);

        let a1 = store.due_events(t(100), 100).unwrap().pop().unwrap();
        assert_eq!((a1.event_id.as_str(), a1.attempts, a1.seq), ("a1", 1, 1));
        assert_eq!(a1.train, tid("a"));
        store.mark_delivered("a1", 200, t(101)).unwrap();
        assert_eq!(due_ids(&store, t(101)), ["a2", "a2-audit"]);

        let states = store.delivery_states(&tid("a")).unwrap();
        let a1 = states.iter().find(|d| d.event_id == "a1").unwrap();
        assert_eq!(a1.state, DeliveryState::Delivered);
        assert_eq!(a1.attempts, 2);
        assert_eq!(a1.last_status, Some(200));
        assert_eq!(a1.last_error.as_deref(), Some("HTTP 503"));
        assert_eq!(a1.delivered_at, Some(t(101)));
    }

    on_both_stores!(limit_caps_the_batch_oldest_first);
    fn limit_caps_the_batch_oldest_first(store: Store) {
        two_trains(&store);
        let due: Vec<String> = store
            .due_events(t(30), 2)
            .unwrap()
            .into_iter()
            .map(|e| e.event_id)
            .collect();
        assert_eq!(due, ["a1", "a1-audit"]);
    }

    on_both_stores!(dead_letters_release_the_line_and_can_be_redriven);
    fn dead_letters_release_the_line_and_can_be_redriven(store: Store) {
        two_trains(&store);
        store.mark_dead("a1", "HTTP 500", Some(500), t(40)).unwrap();
        store.mark_dead("b1", "timeout", None, t(40)).unwrap();
        assert_eq!(
            store.outbox_backlog().unwrap(),
            OutboxBacklog {
                pending: 3,
                dead: 2
            }
        );
        // The dead a1 no longer holds back a2.
        assert_eq!(due_ids(&store, t(40)), ["a1-audit", "a2"]);
        let a1 = store
            .delivery_states(&tid("a"))
            .unwrap()
            .into_iter()
            .find(|d| d.event_id == "a1")
            .unwrap();
        assert_eq!(
            (a1.state, a1.attempts, a1.dead_at),
            (DeliveryState::Dead, 1, Some(t(40)))
        );
        assert!(matches!(
            store.mark_delivered("a1", 200, t(41)),
            Err(StoreError::UnknownEvent(id)) if id == "a1"
        ));

        // Redrive one train: a1 is pending again, fresh, and back in front of a2.
        assert_eq!(store.redrive_dead(Some(&tid("a")), t(50)).unwrap(), 1);
        assert_eq!(
            store.outbox_backlog().unwrap(),
            OutboxBacklog {
                pending: 4,
                dead: 1
            }
        );
        let due = store.due_events(t(50), 100).unwrap();
        let a1 = due.iter().find(|e| e.event_id == "a1").unwrap();
        assert_eq!(a1.attempts, 0);
        assert!(!due.iter().any(|e| e.event_id == "a2"));
        assert!(
            due_ids(&store, t(49)).iter().all(|id| id != "a1"),
            "due at the redrive time"
        );

        // Redrive all: b1 comes back; nothing left to redrive afterwards.
        assert_eq!(store.redrive_dead(None, t(60)).unwrap(), 1);
        assert_eq!(store.redrive_dead(None, t(60)).unwrap(), 0);
        assert!(due_ids(&store, t(60)).contains(&"b1".to_string()));
    }

    on_both_stores!(marking_an_unknown_event_is_an_error);
    fn marking_an_unknown_event_is_an_error(store: Store) {
        two_trains(&store);
        for result in [
            store.mark_delivered("nope", 200, t(1)),
            store.mark_failed("nope", "x", None, t(1)),
            store.mark_dead("nope", "x", None, t(1)),
        ] {
            assert!(matches!(result, Err(StoreError::UnknownEvent(id)) if id == "nope"));
        }
        assert!(store.delivery_states(&tid("nope")).unwrap().is_empty());
    }
}
