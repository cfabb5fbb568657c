//! Trains: registration, evaluations, overrides, stop, and the audit trail.
//!
//! Every write here runs in one transaction on the writer connection; the history rows
//! (`decisions`, `overrides`) and webhook events (`outbox`) of a decision change are written in
//! the same transaction as the train row they explain. Unchanged evaluations only update the
//! train row: history holds changes, not every cycle.

use chrono::{DateTime, Utc};
use gate_rules::decide::{Decision, TrainState};
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
                write.action, write.actor, write.reason
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
                "INSERT INTO overrides (train, seq, action, decision, previous, reason, actor, at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
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
                    "SELECT seq, action, decision, previous, reason, actor, at \
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
                    ))
                })
                .ctx("read overrides")?;
            for row in rows {
                let (seq, action, decision, previous, reason, actor, at) =
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
