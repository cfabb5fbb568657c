//! Trains: registration, evaluations, overrides, stop, and the audit trail.
//!
//! Every write here runs in one transaction on the writer connection; the history rows
//! (`decisions`, `overrides`) and webhook events (`outbox`) of a decision change are written in
//! the same transaction as the train row they explain. Unchanged evaluations only update the
//! train row: history holds changes, not every cycle.

use chrono::{DateTime, Utc};
use gate_rules::decide::TrainState;
use gate_rules::Decision;
use gate_rules::TrainId;
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::error::{ConflictReason, SqlContext, StoreError};
use super::model::{
    AuditEvent, EvaluationWrite, Evidence, Lifecycle, NewOutboxEvent, NewTrain, OverrideWrite,
    Registration, TrainFilter, TrainRecord, WriteOutcome,
};
use super::{encode, ms, outbox, seq_sql, Field, Store};

/// The columns [`RawTrain::from_row`] reads, in order.
const TRAIN_COLUMNS: &str = "id, gate, started_at, baseline, labels_json, lifecycle, decision, \
     seq, reason, rule, evaluated_at, state_json, evaluation_json, registered_at, promoted_at, \
     stopped_at";

/// Lifecycle states of trains the daemon no longer evaluates (see [`Lifecycle::is_active`]).
const INACTIVE: &str = "('done', 'stopped')";

/// The reason shown between registration and the first decision change.
const REGISTERED_REASON: &str = "registered; waiting for the first evaluation";

impl Store {
    /// Registers a train (`POST /v1/trains`), with decision `pending` and seq 0.
    ///
    /// Idempotent: the same body again returns [`Registration::Existing`] and changes nothing.
    /// A different body for a registered ID is [`StoreError::Conflict`], and so is any
    /// registration of a stopped train's ID (IDs are not reused). `now` is the registration
    /// time, and the start time when the body has none.
    pub fn register(
        &self,
        train: &NewTrain,
        now: DateTime<Utc>,
    ) -> Result<Registration, StoreError> {
        let body = encode(train, "registration")?;
        let labels = encode(&train.labels, "labels")?;
        let state = encode(&TrainState::default(), "train state")?;
        self.write("register a train", |tx| {
            let id = train.id.as_str();
            let existing: Option<(String, String)> = tx
                .prepare_cached("SELECT registration_json, lifecycle FROM trains WHERE id = ?1")
                .and_then(|mut st| {
                    st.query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
                        .optional()
                })
                .ctx("look up a train")?;
            if let Some((stored_body, lifecycle)) = existing {
                let field = |column| Field { column, key: id };
                let lifecycle: Lifecycle = field("trains.lifecycle").parse(&lifecycle)?;
                let stored: NewTrain = field("trains.registration_json").json(&stored_body)?;
                let reason = if lifecycle == Lifecycle::Stopped {
                    ConflictReason::Stopped
                } else if stored != *train {
                    ConflictReason::DifferentBody
                } else {
                    let record = load_train(tx, id)?.ok_or_else(|| not_found(&train.id))?;
                    return Ok(Registration::Existing(record));
                };
                return Err(StoreError::Conflict {
                    id: train.id.clone(),
                    reason,
                });
            }
            tx.prepare_cached(
                "INSERT INTO trains (id, gate, started_at, baseline, labels_json, \
                 registration_json, registered_at, lifecycle, decision, seq, reason, state_json) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 0, ?10, ?11)",
            )
            .and_then(|mut st| {
                st.execute(params![
                    id,
                    train.gate,
                    ms(train.started_at.unwrap_or(now)),
                    train.baseline.as_ref().map(TrainId::as_str),
                    labels,
                    body,
                    ms(now),
                    Lifecycle::Verifying.as_str(),
                    Decision::Pending.as_str(),
                    REGISTERED_REASON,
                    state,
                ])
            })
            .ctx("insert a train")?;
            let record = load_train(tx, id)?.ok_or_else(|| not_found(&train.id))?;
            Ok(Registration::Created(record))
        })
    }

    /// The train with this ID, if registered.
    pub fn train(&self, id: &TrainId) -> Result<Option<TrainRecord>, StoreError> {
        self.read("read a train", |tx| load_train(tx, id.as_str()))
    }

    /// Trains by start time, all or only the active ones (those the daemon evaluates; this is
    /// what it resumes after a restart).
    pub fn trains(&self, filter: TrainFilter) -> Result<Vec<TrainRecord>, StoreError> {
        let sql = match filter {
            TrainFilter::All => {
                format!("SELECT {TRAIN_COLUMNS} FROM trains ORDER BY started_at, id")
            }
            TrainFilter::Active => format!(
                "SELECT {TRAIN_COLUMNS} FROM trains WHERE lifecycle NOT IN {INACTIVE} \
                 ORDER BY started_at, id"
            ),
        };
        self.read("list trains", |tx| load_trains(tx, &sql, &[]))
    }

    /// The active trains of one gate, by start time.
    pub fn active_trains_of_gate(&self, gate: &str) -> Result<Vec<TrainRecord>, StoreError> {
        let sql = format!(
            "SELECT {TRAIN_COLUMNS} FROM trains WHERE gate = ?1 AND lifecycle NOT IN {INACTIVE} \
             ORDER BY started_at, id"
        );
        self.read("list the trains of a gate", |tx| {
            load_trains(tx, &sql, &[&gate])
        })
    }

    /// Writes one evaluation; see [`Store::record_evaluations`].
    pub fn record_evaluation(&self, write: &EvaluationWrite) -> Result<WriteOutcome, StoreError> {
        let encoded = EncodedEvaluation::new(write)?;
        self.write("record an evaluation", |tx| {
            write_evaluation(tx, write, &encoded)
        })
    }

    /// Writes a cycle of evaluations in one transaction.
    ///
    /// For each write, in order: a train that is unknown, stopped, or whose seq moved since
    /// the evaluation started ([`EvaluationWrite::based_on_seq`]) is skipped and reported so.
    /// Otherwise the train row takes the latest evaluation, state, reason and lifecycle; if the
    /// decision differs from the stored one, seq is bumped, the change is added to the history
    /// and the write's webhook events are queued under the new seq. If anything fails, nothing
    /// of the cycle is written.
    pub fn record_evaluations(
        &self,
        writes: &[EvaluationWrite],
    ) -> Result<Vec<WriteOutcome>, StoreError> {
        let encoded = writes
            .iter()
            .map(EncodedEvaluation::new)
            .collect::<Result<Vec<_>, _>>()?;
        self.write("record evaluations", |tx| {
            writes
                .iter()
                .zip(&encoded)
                .map(|(write, encoded)| write_evaluation(tx, write, encoded))
                .collect()
        })
    }

    /// Writes an operator override and returns the train's new seq.
    ///
    /// Always a new seq, even if the decision stays the same (the override pins or unpins it).
    /// The override wins over any evaluation in flight (those become
    /// [`WriteOutcome::Stale`]). The train's reason becomes the override's, with who gave it.
    pub fn record_override(&self, write: &OverrideWrite) -> Result<u64, StoreError> {
        let state = encode(&write.state, "train state")?;
        let events = encode_events(&write.events)?;
        self.write("record an override", |tx| {
            let current = current(tx, &write.train)?.ok_or_else(|| not_found(&write.train))?;
            if current.lifecycle == Lifecycle::Stopped {
                return Err(StoreError::TrainStopped(write.train.clone()));
            }
            let seq = current.seq + 1;
            let at = ms(write.at);
            let reason = format!(
                "override {} by {}: {}",
                write.action,
                gate_api::override_by(&write.actor, write.on_behalf_of.as_deref()),
                write.reason
            );
            tx.prepare_cached(
                "UPDATE trains SET lifecycle = ?2, decision = ?3, seq = ?4, reason = ?5, \
                 rule = NULL, state_json = ?6, \
                 promoted_at = CASE WHEN ?3 = 'promote' AND decision <> 'promote' \
                     THEN ?7 ELSE promoted_at END, \
                 stopped_at = CASE WHEN ?2 = 'stopped' THEN coalesce(stopped_at, ?7) \
                     ELSE stopped_at END \
                 WHERE id = ?1",
            )
            .and_then(|mut st| {
                st.execute(params![
                    write.train.as_str(),
                    write.lifecycle.as_str(),
                    write.decision.as_str(),
                    seq_sql(seq),
                    reason,
                    state,
                    at,
                ])
            })
            .ctx("update the overridden train")?;
            tx.prepare_cached(
                "INSERT INTO overrides \
                 (train, seq, action, decision, previous, reason, actor, at, on_behalf_of) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )
            .and_then(|mut st| {
                st.execute(params![
                    write.train.as_str(),
                    seq_sql(seq),
                    write.action.as_str(),
                    write.decision.as_str(),
                    current.decision.as_str(),
                    write.reason,
                    write.actor,
                    at,
                    write.on_behalf_of,
                ])
            })
            .ctx("insert an override")?;
            outbox::insert_events(tx, &write.train, seq, at, &write.events, &events)?;
            Ok(seq)
        })
    }

    /// Stops watching a train (`DELETE /v1/trains/{id}`): lifecycle `stopped`, history and
    /// pending webhook events kept. Stopping a stopped train changes nothing.
    pub fn stop(&self, id: &TrainId, at: DateTime<Utc>) -> Result<TrainRecord, StoreError> {
        self.write("stop a train", |tx| {
            let updated = tx
                .prepare_cached(
                    "UPDATE trains SET lifecycle = 'stopped', stopped_at = coalesce(stopped_at, ?2) \
                     WHERE id = ?1",
                )
                .and_then(|mut st| st.execute(params![id.as_str(), ms(at)]))
                .ctx("stop a train")?;
            if updated == 0 {
                return Err(not_found(id));
            }
            load_train(tx, id.as_str())?.ok_or_else(|| not_found(id))
        })
    }

    /// The train's audit trail: registration, decision changes with their evidence,
    /// overrides, webhook deliveries and stop, in seq order (each delivery after the change it
    /// announces).
    pub fn events(&self, id: &TrainId) -> Result<Vec<AuditEvent>, StoreError> {
        self.read("read a train's events", |tx| {
            let key = id.as_str();
            let field = |column| Field { column, key };
            let head: Option<(String, i64, Option<i64>)> = tx
                .prepare_cached(
                    "SELECT registration_json, registered_at, stopped_at FROM trains WHERE id = ?1",
                )
                .and_then(|mut st| {
                    st.query_row([key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                        .optional()
                })
                .ctx("read a train")?;
            let (registration, registered_at, stopped_at) = head.ok_or_else(|| not_found(id))?;

            // (seq, rank within the seq, tie-break) → event
            let mut events: Vec<((u64, u8, i64), AuditEvent)> = vec![(
                (0, 0, 0),
                AuditEvent::Registered {
                    at: field("trains.registered_at").time(registered_at)?,
                    registration: field("trains.registration_json").json(&registration)?,
                },
            )];

            let mut st = tx
                .prepare_cached(
                    "SELECT seq, decision, previous, reason, rule, evaluated_at, evidence_json \
                     FROM decisions WHERE train = ?1",
                )
                .ctx("read decisions")?;
            let rows = st
                .query_map([key], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, Option<String>>(4)?,
                        r.get::<_, i64>(5)?,
                        r.get::<_, String>(6)?,
                    ))
                })
                .ctx("read decisions")?;
            for row in rows {
                let (seq, decision, previous, reason, rule, at, evidence) =
                    row.ctx("read decisions")?;
                let seq: u64 = field("decisions.seq").count(seq)?;
                events.push((
                    (seq, 1, 0),
                    AuditEvent::Decision {
                        seq,
                        decision: field("decisions.decision").parse(&decision)?,
                        previous: field("decisions.previous").parse(&previous)?,
                        reason,
                        rule,
                        evaluated_at: field("decisions.evaluated_at").time(at)?,
                        evidence: field("decisions.evidence_json").json(&evidence)?,
                    },
                ));
            }

            let mut st = tx
                .prepare_cached(
                    "SELECT seq, action, decision, previous, reason, actor, at, on_behalf_of \
                     FROM overrides WHERE train = ?1",
                )
                .ctx("read overrides")?;
            let rows = st
                .query_map([key], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, String>(4)?,
                        r.get::<_, String>(5)?,
                        r.get::<_, i64>(6)?,
                        r.get::<_, Option<String>>(7)?,
                    ))
                })
                .ctx("read overrides")?;
            for row in rows {
                let (seq, action, decision, previous, reason, actor, at, on_behalf_of) =
                    row.ctx("read overrides")?;
                let seq: u64 = field("overrides.seq").count(seq)?;
                events.push((
                    (seq, 1, 0),
                    AuditEvent::Override {
                        seq,
                        action: field("overrides.action").parse(&action)?,
                        decision: field("overrides.decision").parse(&decision)?,
                        previous: field("overrides.previous").parse(&previous)?,
                        reason,
                        actor,
                        on_behalf_of,
                        at: field("overrides.at").time(at)?,
                    },
                ));
            }

            for (row_id, delivery) in outbox::load_deliveries(tx, id)? {
                events.push(((delivery.seq, 2, row_id), AuditEvent::Delivery(delivery)));
            }
            if let Some(at) = stopped_at {
                events.push((
                    (u64::MAX, 0, 0),
                    AuditEvent::Stopped {
                        at: field("trains.stopped_at").time(at)?,
                    },
                ));
            }
            events.sort_by_key(|(key, _)| *key);
            Ok(events.into_iter().map(|(_, event)| event).collect())
        })
    }
}

fn not_found(id: &TrainId) -> StoreError {
    StoreError::NotFound(id.clone())
}

/// JSON encoded before the writer lock is taken (the evidence is already JSON text).
struct EncodedEvaluation {
    state: String,
    events: Vec<String>,
}

impl EncodedEvaluation {
    fn new(write: &EvaluationWrite) -> Result<Self, StoreError> {
        Ok(EncodedEvaluation {
            state: encode(&write.state, "train state")?,
            events: encode_events(&write.events)?,
        })
    }
}

fn encode_events(events: &[NewOutboxEvent]) -> Result<Vec<String>, StoreError> {
    events
        .iter()
        .map(|e| encode(&e.payload, "webhook payload"))
        .collect()
}

/// The stored values an evaluation or override is checked against.
struct Current {
    decision: Decision,
    seq: u64,
    lifecycle: Lifecycle,
}

fn current(conn: &Connection, id: &TrainId) -> Result<Option<Current>, StoreError> {
    let row: Option<(String, i64, String)> = conn
        .prepare_cached("SELECT decision, seq, lifecycle FROM trains WHERE id = ?1")
        .and_then(|mut st| {
            st.query_row([id.as_str()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .optional()
        })
        .ctx("read a train's decision")?;
    let Some((decision, seq, lifecycle)) = row else {
        return Ok(None);
    };
    let field = |column| Field {
        column,
        key: id.as_str(),
    };
    Ok(Some(Current {
        decision: field("trains.decision").parse(&decision)?,
        seq: field("trains.seq").count(seq)?,
        lifecycle: field("trains.lifecycle").parse(&lifecycle)?,
    }))
}

fn write_evaluation(
    conn: &Connection,
    write: &EvaluationWrite,
    encoded: &EncodedEvaluation,
) -> Result<WriteOutcome, StoreError> {
    let Some(current) = current(conn, &write.train)? else {
        return Ok(WriteOutcome::UnknownTrain);
    };
    if current.lifecycle == Lifecycle::Stopped {
        return Ok(WriteOutcome::Stopped);
    }
    if current.seq != write.based_on_seq {
        return Ok(WriteOutcome::Stale { seq: current.seq });
    }
    let id = write.train.as_str();
    let at = ms(write.evaluated_at);
    if current.decision == write.decision {
        conn.prepare_cached(
            "UPDATE trains SET lifecycle = ?2, reason = ?3, rule = ?4, evaluated_at = ?5, \
             state_json = ?6, evaluation_json = ?7, \
             stopped_at = CASE WHEN ?2 = 'stopped' THEN coalesce(stopped_at, ?5) \
                 ELSE stopped_at END \
             WHERE id = ?1",
        )
        .and_then(|mut st| {
            st.execute(params![
                id,
                write.lifecycle.as_str(),
                write.reason,
                write.rule,
                at,
                encoded.state,
                write.evidence.as_str(),
            ])
        })
        .ctx("update a train's evaluation")?;
        return Ok(WriteOutcome::Unchanged);
    }

    let seq = current.seq + 1;
    conn.prepare_cached(
        "UPDATE trains SET lifecycle = ?2, decision = ?3, seq = ?4, reason = ?5, rule = ?6, \
         evaluated_at = ?7, state_json = ?8, evaluation_json = ?9, \
         promoted_at = CASE WHEN ?3 = 'promote' AND decision <> 'promote' \
             THEN ?7 ELSE promoted_at END, \
         stopped_at = CASE WHEN ?2 = 'stopped' THEN coalesce(stopped_at, ?7) \
             ELSE stopped_at END \
         WHERE id = ?1",
    )
    .and_then(|mut st| {
        st.execute(params![
            id,
            write.lifecycle.as_str(),
            write.decision.as_str(),
            seq_sql(seq),
            write.reason,
            write.rule,
            at,
            encoded.state,
            write.evidence.as_str(),
        ])
    })
    .ctx("update a train's decision")?;
    conn.prepare_cached(
        "INSERT INTO decisions (train, seq, decision, previous, reason, rule, evaluated_at, \
         evidence_json) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )
    .and_then(|mut st| {
        st.execute(params![
            id,
            seq_sql(seq),
            write.decision.as_str(),
            current.decision.as_str(),
            write.reason,
            write.rule,
            at,
            write.evidence.as_str(),
        ])
    })
    .ctx("insert a decision")?;
    outbox::insert_events(conn, &write.train, seq, at, &write.events, &encoded.events)?;
    Ok(WriteOutcome::Changed { seq })
}

fn load_train(conn: &Connection, id: &str) -> Result<Option<TrainRecord>, StoreError> {
    let raw = conn
        .prepare_cached(&format!("SELECT {TRAIN_COLUMNS} FROM trains WHERE id = ?1"))
        .and_then(|mut st| st.query_row([id], RawTrain::from_row).optional())
        .ctx("read a train")?;
    raw.map(RawTrain::decode).transpose()
}

fn load_trains(
    conn: &Connection,
    sql: &str,
    params: &[&dyn rusqlite::ToSql],
) -> Result<Vec<TrainRecord>, StoreError> {
    let mut st = conn.prepare_cached(sql).ctx("list trains")?;
    let rows = st
        .query_map(params, RawTrain::from_row)
        .ctx("list trains")?;
    let mut trains = Vec::new();
    for raw in rows {
        trains.push(raw.ctx("list trains")?.decode()?);
    }
    Ok(trains)
}

/// A `trains` row as SQLite returns it, before the store's own decoding.
struct RawTrain {
    id: String,
    gate: String,
    started_at: i64,
    baseline: Option<String>,
    labels: String,
    lifecycle: String,
    decision: String,
    seq: i64,
    reason: String,
    rule: Option<String>,
    evaluated_at: Option<i64>,
    state: String,
    evaluation: Option<String>,
    registered_at: i64,
    promoted_at: Option<i64>,
    stopped_at: Option<i64>,
}

impl RawTrain {
    fn from_row(r: &Row<'_>) -> rusqlite::Result<RawTrain> {
        Ok(RawTrain {
            id: r.get(0)?,
            gate: r.get(1)?,
            started_at: r.get(2)?,
            baseline: r.get(3)?,
            labels: r.get(4)?,
            lifecycle: r.get(5)?,
            decision: r.get(6)?,
            seq: r.get(7)?,
            reason: r.get(8)?,
            rule: r.get(9)?,
            evaluated_at: r.get(10)?,
            state: r.get(11)?,
            evaluation: r.get(12)?,
            registered_at: r.get(13)?,
            promoted_at: r.get(14)?,
            stopped_at: r.get(15)?,
        })
    }

    fn decode(self) -> Result<TrainRecord, StoreError> {
        let RawTrain {
            id,
            gate,
            started_at,
            baseline,
            labels,
            lifecycle,
            decision,
            seq,
            reason,
            rule,
            evaluated_at,
            state,
            evaluation,
            registered_at,
            promoted_at,
            stopped_at,
        } = self;
        let field = |column| Field { column, key: &id };
        Ok(TrainRecord {
            id: field("trains.id").parse(&id)?,
            gate,
            started_at: field("trains.started_at").time(started_at)?,
            baseline: baseline
                .as_deref()
                .map(|b| field("trains.baseline").parse(b))
                .transpose()?,
            labels: field("trains.labels_json").json(&labels)?,
            lifecycle: field("trains.lifecycle").parse(&lifecycle)?,
            decision: field("trains.decision").parse(&decision)?,
            seq: field("trains.seq").count(seq)?,
            reason,
            rule,
            evaluated_at: field("trains.evaluated_at").opt_time(evaluated_at)?,
            state: field("trains.state_json").json(&state)?,
            evaluation: evaluation
                .map(|e| {
                    Evidence::from_json(e).map_err(|e| field("trains.evaluation_json").corrupt(e))
                })
                .transpose()?,
            registered_at: field("trains.registered_at").time(registered_at)?,
            promoted_at: field("trains.promoted_at").opt_time(promoted_at)?,
            stopped_at: field("trains.stopped_at").opt_time(stopped_at)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use gate_rules::decide::TrainState;
    use gate_rules::Decision;

    use super::super::testing::*;
    use super::*;
    use crate::store::{
        DeliveryState, Lifecycle, OverrideAction, StoreError, TrainFilter, WriteOutcome,
    };

    #[test]
    fn register_creates_pending_seq_0_and_is_idempotent() {
        let (_dir, store) = temp_store();
        let mut body = new_train("t-1");
        body.started_at = None;
        let created = store.register(&body, t(0)).unwrap();
        assert!(created.is_created());
        let rec = created.record().clone();
        assert_eq!(rec.decision, Decision::Pending);
        assert_eq!(rec.seq, 0);
        assert_eq!(rec.lifecycle, Lifecycle::Verifying);
        assert_eq!(rec.started_at, t(0), "no started_at: the registration time");
        assert_eq!(rec.registered_at, t(0));
        assert_eq!(rec.labels, body.labels);
        assert_eq!(rec.baseline, Some(tid("t-0")));
        assert_eq!(rec.state, TrainState::default());
        assert_eq!(rec.evaluation, None);

        // A retry of the same body later (still without started_at) is the same train.
        let again = store.register(&body, t(90)).unwrap();
        assert_eq!(again, Registration::Existing(rec.clone()));
        assert_eq!(store.train(&tid("t-1")).unwrap(), Some(rec));
    }

    #[test]
    fn register_with_a_different_body_conflicts() {
        let (_dir, store) = temp_store();
        let body = new_train("t-1");
        store.register(&body, t(0)).unwrap();
        let variants = [
            NewTrain {
                gate: "search".to_string(),
                ..body.clone()
            },
            NewTrain {
                started_at: Some(t(-61)),
                ..body.clone()
            },
            NewTrain {
                started_at: None,
                ..body.clone()
            },
            NewTrain {
                baseline: None,
                ..body.clone()
            },
            NewTrain {
                labels: BTreeMap::new(),
                ..body.clone()
            },
        ];
        for other in variants {
            let err = store.register(&other, t(1)).unwrap_err();
            assert!(
                matches!(
                    err,
                    StoreError::Conflict {
                        ref id,
                        reason: ConflictReason::DifferentBody
                    } if *id == body.id
                ),
                "{other:?}: {err:?}"
            );
        }
        assert_eq!(store.train(&body.id).unwrap().unwrap().gate, "checkout");
    }

    #[test]
    fn a_stopped_train_id_is_not_reused() {
        let (_dir, store) = temp_store();
        let body = new_train("t-1");
        store.register(&body, t(0)).unwrap();
        let stopped = store.stop(&body.id, t(10)).unwrap();
        assert_eq!(stopped.lifecycle, Lifecycle::Stopped);
        assert_eq!(stopped.stopped_at, Some(t(10)));
        // Stopping again keeps the first stop time.
        assert_eq!(store.stop(&body.id, t(20)).unwrap().stopped_at, Some(t(10)));
        let err = store.register(&body, t(30)).unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::Conflict {
                    reason: ConflictReason::Stopped,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(matches!(
            store.stop(&tid("nope"), t(0)),
            Err(StoreError::NotFound(_))
        ));
    }

    #[test]
    fn seq_moves_only_on_changes_and_overrides() {
        let (_dir, store) = temp_store();
        store.register(&new_train("t-1"), t(0)).unwrap();

        let same = eval(
            "t-1",
            0,
            Decision::Pending,
            t(30),
            vec![event("x", "deployer")],
        );
        assert_eq!(
            store.record_evaluation(&same).unwrap(),
            WriteOutcome::Unchanged
        );
        let rec = store.train(&tid("t-1")).unwrap().unwrap();
        assert_eq!(rec.seq, 0);
        assert_eq!(rec.evaluated_at, Some(t(30)));
        assert_eq!(
            rec.state, same.state,
            "unchanged evaluations still keep the state"
        );
        assert_eq!(rec.evaluation, Some(same.evidence.clone()));
        assert_eq!(
            decision_rows(&store, "t-1"),
            0,
            "no history for an unchanged decision"
        );
        assert_eq!(
            outbox_rows(&store),
            0,
            "no webhook for an unchanged decision"
        );

        let s1 = change(
            &store,
            "t-1",
            0,
            Decision::Pause,
            t(60),
            vec![event("e1", "deployer")],
        );
        assert_eq!(s1, 1);
        let again = eval("t-1", 1, Decision::Pause, t(90), vec![]);
        assert_eq!(
            store.record_evaluation(&again).unwrap(),
            WriteOutcome::Unchanged
        );
        let s2 = change(&store, "t-1", 1, Decision::Promote, t(120), vec![]);
        assert_eq!(s2, 2);
        let rec = store.train(&tid("t-1")).unwrap().unwrap();
        assert_eq!(rec.promoted_at, Some(t(120)));
        assert_eq!(rec.lifecycle, Lifecycle::Promoted);

        let s3 = store
            .record_override(&override_write(
                "t-1",
                OverrideAction::Promote,
                Decision::Promote,
            ))
            .unwrap();
        assert_eq!(s3, 3, "an override bumps seq even when the decision stays");
        let rec = store.train(&tid("t-1")).unwrap().unwrap();
        assert_eq!(
            rec.promoted_at,
            Some(t(120)),
            "already promoted: not re-promoted"
        );
        assert_eq!(rec.state.pinned, Some(Decision::Promote));
        assert!(rec.reason.contains("alice"), "{}", rec.reason);

        // An evaluation computed before the override must not overwrite it.
        let late = eval(
            "t-1",
            2,
            Decision::Rollback,
            t(330),
            vec![event("e9", "deployer")],
        );
        assert_eq!(
            store.record_evaluation(&late).unwrap(),
            WriteOutcome::Stale { seq: 3 }
        );
        let rec = store.train(&tid("t-1")).unwrap().unwrap();
        assert_eq!((rec.decision, rec.seq), (Decision::Promote, 3));
        assert_eq!(rec.state.pinned, Some(Decision::Promote));

        let seqs: Vec<u64> = store
            .events(&tid("t-1"))
            .unwrap()
            .iter()
            .filter_map(|e| match e {
                AuditEvent::Decision { seq, .. } | AuditEvent::Override { seq, .. } => Some(*seq),
                _ => None,
            })
            .collect();
        assert_eq!(seqs, [1, 2, 3]);
    }

    #[test]
    fn a_change_its_history_and_its_events_appear_together() {
        let (_dir, store) = temp_store();
        store.register(&new_train("t-1"), t(0)).unwrap();
        let write = eval(
            "t-1",
            0,
            Decision::Rollback,
            t(30),
            vec![event("e1", "deployer"), event("e1-audit", "audit")],
        );
        assert_eq!(
            store.record_evaluation(&write).unwrap(),
            WriteOutcome::Changed { seq: 1 }
        );
        let rec = store.train(&tid("t-1")).unwrap().unwrap();
        assert_eq!((rec.decision, rec.seq), (Decision::Rollback, 1));
        assert_eq!(rec.rule.as_deref(), Some("fast-burn"));
        let events = store.events(&tid("t-1")).unwrap();
        assert!(events.iter().any(|e| matches!(e,
            AuditEvent::Decision { seq: 1, decision: Decision::Rollback, previous: Decision::Pending, evidence, .. }
                if *evidence == write.evidence.to_value())));
        let deliveries = store.delivery_states(&tid("t-1")).unwrap();
        assert_eq!(deliveries.len(), 2);
        assert!(deliveries
            .iter()
            .all(|d| d.seq == 1 && d.state == DeliveryState::Pending));
        let due = store.due_events(t(30), 10).unwrap();
        assert_eq!(due.len(), 2);
        assert_eq!(due[0].payload, write.events[0].payload);
    }

    #[test]
    fn a_failing_write_leaves_nothing_behind() {
        let (_dir, store) = temp_store();
        store.register(&new_train("t-1"), t(0)).unwrap();
        store.register(&new_train("t-2"), t(0)).unwrap();
        change(
            &store,
            "t-2",
            0,
            Decision::Pause,
            t(10),
            vec![event("dup", "deployer")],
        );
        let before_1 = store.train(&tid("t-1")).unwrap();
        let before_2 = store.train(&tid("t-2")).unwrap();
        let before_outbox = outbox_rows(&store);

        // The second event reuses an event ID: the whole write must roll back.
        let single = eval(
            "t-1",
            0,
            Decision::Rollback,
            t(30),
            vec![event("fresh", "deployer"), event("dup", "audit")],
        );
        assert!(matches!(
            store.record_evaluation(&single),
            Err(StoreError::Sqlite { .. })
        ));
        assert_eq!(store.train(&tid("t-1")).unwrap(), before_1);
        assert_eq!(decision_rows(&store, "t-1"), 0);
        assert_eq!(outbox_rows(&store), before_outbox);

        // In a cycle, a failure in the last write undoes the earlier ones too.
        let cycle = [
            eval(
                "t-1",
                0,
                Decision::Pause,
                t(40),
                vec![event("ok", "deployer")],
            ),
            eval(
                "t-2",
                1,
                Decision::Rollback,
                t(40),
                vec![event("dup", "deployer")],
            ),
        ];
        assert!(store.record_evaluations(&cycle).is_err());
        assert_eq!(store.train(&tid("t-1")).unwrap(), before_1);
        assert_eq!(store.train(&tid("t-2")).unwrap(), before_2);
        assert_eq!(decision_rows(&store, "t-1"), 0);
        assert_eq!(outbox_rows(&store), before_outbox);

        // The store is still usable after the rollback.
        assert_eq!(change(&store, "t-1", 0, Decision::Pause, t(50), vec![]), 1);
    }

    #[test]
    fn a_cycle_reports_each_write() {
        let (_dir, store) = temp_store();
        for id in ["a", "b", "c", "d"] {
            store.register(&new_train(id), t(0)).unwrap();
        }
        store.stop(&tid("c"), t(5)).unwrap();
        change(&store, "d", 0, Decision::Pause, t(5), vec![]);
        let cycle = [
            eval("a", 0, Decision::Pending, t(30), vec![]),
            eval(
                "b",
                0,
                Decision::Promote,
                t(30),
                vec![event("b1", "deployer")],
            ),
            eval(
                "c",
                0,
                Decision::Rollback,
                t(30),
                vec![event("c1", "deployer")],
            ),
            eval(
                "d",
                0,
                Decision::Rollback,
                t(30),
                vec![event("d1", "deployer")],
            ),
            eval(
                "zz",
                0,
                Decision::Rollback,
                t(30),
                vec![event("z1", "deployer")],
            ),
        ];
        assert_eq!(
            store.record_evaluations(&cycle).unwrap(),
            [
                WriteOutcome::Unchanged,
                WriteOutcome::Changed { seq: 1 },
                WriteOutcome::Stopped,
                WriteOutcome::Stale { seq: 1 },
                WriteOutcome::UnknownTrain,
            ]
        );
        let c = store.train(&tid("c")).unwrap().unwrap();
        assert_eq!(
            (c.lifecycle, c.decision, c.evaluated_at),
            (Lifecycle::Stopped, Decision::Pending, None)
        );
        let ids: Vec<String> = store
            .due_events(t(30), 10)
            .unwrap()
            .into_iter()
            .map(|e| e.event_id)
            .collect();
        assert_eq!(ids, ["b1"]);
    }

    #[test]
    fn active_filters_skip_done_and_stopped_trains() {
        let (_dir, store) = temp_store();
        for (id, gate) in [
            ("a", "checkout"),
            ("b", "checkout"),
            ("c", "search"),
            ("d", "checkout"),
        ] {
            store
                .register(
                    &NewTrain {
                        gate: gate.to_string(),
                        started_at: Some(t(id.as_bytes()[0] as i64)),
                        ..new_train(id)
                    },
                    t(0),
                )
                .unwrap();
        }
        store.stop(&tid("b"), t(10)).unwrap();
        let mut done = eval("d", 0, Decision::Pending, t(10), vec![]);
        done.lifecycle = Lifecycle::Done;
        store.record_evaluation(&done).unwrap();

        let ids = |trains: Vec<TrainRecord>| -> Vec<String> {
            trains.into_iter().map(|t| t.id.to_string()).collect()
        };
        assert_eq!(
            ids(store.trains(TrainFilter::All).unwrap()),
            ["a", "b", "c", "d"]
        );
        assert_eq!(ids(store.trains(TrainFilter::Active).unwrap()), ["a", "c"]);
        assert_eq!(ids(store.active_trains_of_gate("checkout").unwrap()), ["a"]);
    }

    #[test]
    fn overrides_need_a_live_train() {
        let (_dir, store) = temp_store();
        let ov = override_write("t-1", OverrideAction::Pause, Decision::Pause);
        assert!(matches!(
            store.record_override(&ov),
            Err(StoreError::NotFound(_))
        ));
        store.register(&new_train("t-1"), t(0)).unwrap();
        store.stop(&tid("t-1"), t(1)).unwrap();
        assert!(matches!(
            store.record_override(&ov),
            Err(StoreError::TrainStopped(_))
        ));
        assert_eq!(store.train(&tid("t-1")).unwrap().unwrap().seq, 0);
        assert_eq!(outbox_rows(&store), 0);
    }

    #[test]
    fn audit_trail_is_in_seq_order_and_serializes() {
        let (_dir, store) = temp_store();
        store.register(&new_train("t-1"), t(0)).unwrap();
        change(
            &store,
            "t-1",
            0,
            Decision::Pause,
            t(30),
            vec![event("e1", "deployer")],
        );
        store.mark_delivered("e1", 204, t(31)).unwrap();
        store
            .record_override(&override_write(
                "t-1",
                OverrideAction::Promote,
                Decision::Promote,
            ))
            .unwrap();
        store.stop(&tid("t-1"), t(400)).unwrap();

        let events = store.events(&tid("t-1")).unwrap();
        let kinds: Vec<String> = events
            .iter()
            .map(|e| {
                serde_json::to_value(e).unwrap()["kind"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "registered",
                "decision",
                "delivery",
                "override",
                "delivery",
                "stopped"
            ]
        );
        let delivery = serde_json::to_value(&events[2]).unwrap();
        assert_eq!(delivery["event_id"], "e1");
        assert_eq!(delivery["state"], "delivered");
        assert_eq!(delivery["last_status"], 204);
        let ov = serde_json::to_value(&events[3]).unwrap();
        assert_eq!(ov["action"], "promote");
        assert_eq!(ov["actor"], "alice");
        assert_eq!(ov["previous"], "pause");
        assert!(matches!(
            store.events(&tid("nope")),
            Err(StoreError::NotFound(_))
        ));
    }

    #[test]
    fn corrupt_rows_are_reported_not_panicked() {
        let (_dir, store) = temp_store();
        store.register(&new_train("t-1"), t(0)).unwrap();
        store
            .writer()
            .execute(
                "UPDATE trains SET state_json = '{not json' WHERE id = 't-1'",
                [],
            )
            .unwrap();
        let err = store.train(&tid("t-1")).unwrap_err();
        assert!(
            matches!(&err, StoreError::Corrupt { what, .. } if what.contains("state_json") && what.contains("t-1")),
            "{err:?}"
        );
    }
}
