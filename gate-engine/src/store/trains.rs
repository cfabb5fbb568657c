//! Trains: registration, evaluations, overrides, approvals, stop, and the audit trail.
//!
//! Every write here runs in one transaction on the writer connection; the history rows
//! (`decisions`, `overrides`) and webhook events (`outbox`) of a decision change are written in
//! the same transaction as the train row they explain. Unchanged evaluations only update the
//! train row: history holds changes, not every cycle (and the daemon defers most of them:
//! `deferred.rs`).
//!
//! An evaluation is written without reading the row first: its history row is inserted only
//! if the stored decision at the seq it started from differs (`INSERT … SELECT … WHERE id = ?
//! AND seq = ? AND decision <> ?`, taking `previous` from the row), then the row is updated
//! under `WHERE id = ? AND seq = ?`; a changed-row count of 0 means unknown, stopped or stale,
//! and only then is the row read to say which.

use chrono::{DateTime, Utc};
use gate_rules::decide::TrainState;
use gate_rules::Decision;
use gate_rules::TrainId;

use super::deferred::overlay;
use super::error::{ConflictReason, StoreError};
use super::model::{
    ApprovalWrite, AuditEvent, EvaluationWrite, Evidence, GateLeg, Lifecycle, NewOutboxEvent,
    NewTrain, OverrideWrite, Registration, TrainFilter, TrainRecord, WriteOutcome,
};
use super::sql::{Param, Row, Tx};
use super::{encode, ms, outbox, pg_batch, seq_sql, Field, Store};

/// The columns [`RawTrain::from_row`] reads, in order.
const TRAIN_COLUMNS: &str = "id, gate, started_at, baseline, labels_json, lifecycle, decision, \
     seq, reason, rule, evaluated_at, state_json, evaluation_json, registered_at, promoted_at, \
     stopped_at, gates_json";

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
        let gates = if train.gates.is_empty() {
            None
        } else {
            let legs: Vec<GateLeg> = train
                .gates
                .iter()
                .map(|g| GateLeg::registered(g, REGISTERED_REASON))
                .collect();
            Some(encode(&legs, "gates")?)
        };
        self.write("register a train", |tx| {
            let id = train.id.as_str();
            let existing = tx.query_opt(
                "look up a train",
                &format!(
                    "SELECT registration_json, lifecycle FROM trains WHERE id = ?1{}",
                    tx.dialect().for_update()
                ),
                &[&id],
            )?;
            if let Some(row) = existing {
                let stored_body: String = row.get(0)?;
                let lifecycle: String = row.get(1)?;
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
            tx.execute(
                "insert a train",
                "INSERT INTO trains (id, gate, started_at, baseline, labels_json, \
                 registration_json, registered_at, lifecycle, decision, seq, reason, state_json, \
                 gates_json) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 0, ?10, ?11, ?12)",
                &[
                    &id,
                    &train.gate,
                    &ms(train.started_at.unwrap_or(now)),
                    &train.baseline.as_ref().map(TrainId::as_str),
                    &labels,
                    &body,
                    &ms(now),
                    &Lifecycle::Verifying.as_str(),
                    &Decision::Pending.as_str(),
                    &REGISTERED_REASON,
                    &state,
                    &gates,
                ],
            )?;
            let record = load_train(tx, id)?.ok_or_else(|| not_found(&train.id))?;
            Ok(Registration::Created(record))
        })
    }

    /// The train with this ID, if registered.
    ///
    /// In this process, with its deferred evaluation applied (see `deferred.rs`).
    pub fn train(&self, id: &TrainId) -> Result<Option<TrainRecord>, StoreError> {
        let deferred = self.inner.deferred.get(id);
        let record = self.read("read a train", |tx| load_train(tx, id.as_str()))?;
        Ok(match (record, deferred) {
            (Some(record), Some(deferred)) => Some(overlay(record, &deferred)),
            (record, _) => record,
        })
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
        self.read_trains("list trains", &sql, &[])
    }

    /// The trains `sql` selects, each with its deferred evaluation applied.
    fn read_trains(
        &self,
        context: &'static str,
        sql: &str,
        params: &[&dyn Param],
    ) -> Result<Vec<TrainRecord>, StoreError> {
        let deferred = self.inner.deferred.snapshot();
        let trains = self.read(context, |tx| load_trains(tx, sql, params))?;
        if deferred.is_empty() {
            return Ok(trains);
        }
        Ok(trains
            .into_iter()
            .map(|record| match deferred.get(&record.id) {
                Some(write) => overlay(record, write),
                None => record,
            })
            .collect())
    }

    /// The active trains of one gate, by start time.
    pub fn active_trains_of_gate(&self, gate: &str) -> Result<Vec<TrainRecord>, StoreError> {
        let sql = format!(
            "SELECT {TRAIN_COLUMNS} FROM trains WHERE gate = ?1 AND lifecycle NOT IN {INACTIVE} \
             ORDER BY started_at, id"
        );
        self.read_trains("list the trains of a gate", &sql, &[&gate])
    }

    /// Writes one evaluation; see [`Store::record_evaluations`].
    pub fn record_evaluation(&self, write: &EvaluationWrite) -> Result<WriteOutcome, StoreError> {
        let encoded = EncodedEvaluation::new(write)?;
        let outcome = self.leader_write("record an evaluation", |tx| {
            write_evaluation(tx, write, &encoded)
        })?;
        self.inner.deferred.supersede([&write.train]);
        Ok(outcome)
    }

    /// Writes a cycle of evaluations in one transaction.
    ///
    /// For each write, in order: a train that is unknown, stopped, or whose seq moved since
    /// the evaluation started ([`EvaluationWrite::based_on_seq`]) is skipped and reported so.
    /// Otherwise the train row takes the latest evaluation, state, reason and lifecycle; if the
    /// decision differs from the stored one, seq is bumped, the change is added to the history
    /// and the write's webhook events are queued under the new seq. If anything fails, nothing
    /// of the cycle is written. A deferred evaluation of a train written here is dropped (it
    /// is older).
    pub fn record_evaluations(
        &self,
        writes: &[EvaluationWrite],
    ) -> Result<Vec<WriteOutcome>, StoreError> {
        let encoded = writes
            .iter()
            .map(EncodedEvaluation::new)
            .collect::<Result<Vec<_>, _>>()?;
        let outcomes = self.leader_write("record evaluations", |tx| {
            if pg_batch::applies(tx, writes) {
                return pg_batch::write_evaluations(tx, writes, &encoded);
            }
            writes
                .iter()
                .zip(&encoded)
                .map(|(write, encoded)| write_evaluation(tx, write, encoded))
                .collect::<Result<Vec<_>, _>>()
        })?;
        // What was deferred for these trains is older than what was just written.
        self.inner
            .deferred
            .supersede(writes.iter().map(|w| &w.train));
        Ok(outcomes)
    }

    /// Writes an operator override and returns the train's new seq.
    ///
    /// Always a new seq, even if the decision stays the same (the override pins or unpins it).
    /// The override wins over any evaluation in flight (those become
    /// [`WriteOutcome::Stale`]). The train's reason becomes the override's, with who gave it.
    pub fn record_override(&self, write: &OverrideWrite) -> Result<u64, StoreError> {
        let state = encode(&write.state, "train state")?;
        let gates = encode_gates(write.gates.as_deref())?;
        let events = encode_events(&write.events)?;
        let (seq, deferred) = self.write("record an override", |tx| {
            let deferred = self.write_deferred_of(tx, &write.train)?;
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
            tx.execute(
                "update the overridden train",
                "UPDATE trains SET lifecycle = ?2, decision = ?3, seq = ?4, reason = ?5, \
                 rule = NULL, state_json = ?6, gates_json = coalesce(?8, gates_json), \
                 promoted_at = CASE WHEN ?3 = 'promote' AND decision <> 'promote' \
                     THEN ?7 ELSE promoted_at END, \
                 stopped_at = CASE WHEN ?2 = 'stopped' THEN coalesce(stopped_at, ?7) \
                     ELSE stopped_at END \
                 WHERE id = ?1",
                &[
                    &write.train.as_str(),
                    &write.lifecycle.as_str(),
                    &write.decision.as_str(),
                    &seq_sql(seq),
                    &reason,
                    &state,
                    &at,
                    &gates,
                ],
            )?;
            tx.execute(
                "insert an override",
                "INSERT INTO overrides \
                 (train, seq, action, decision, previous, reason, actor, at, on_behalf_of) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                &[
                    &write.train.as_str(),
                    &seq_sql(seq),
                    &write.action.as_str(),
                    &write.decision.as_str(),
                    &current.decision.as_str(),
                    &write.reason,
                    &write.actor,
                    &at,
                    &write.on_behalf_of,
                ],
            )?;
            outbox::insert_events(tx, &write.train, seq, at, &write.events, &events)?;
            Ok((seq, deferred))
        })?;
        self.inner.deferred.forget(&deferred);
        Ok(seq)
    }

    /// Writes an approval and returns the train's new seq.
    ///
    /// A new seq (in-flight evaluations computed without the approval become
    /// [`WriteOutcome::Stale`]); the decision and its reason stay: the next evaluation
    /// promotes if the train is verified.
    pub fn record_approval(&self, write: &ApprovalWrite) -> Result<u64, StoreError> {
        let state = encode(&write.state, "train state")?;
        let gates = encode_gates(write.gates.as_deref())?;
        let (seq, deferred) = self.write("record an approval", |tx| {
            let deferred = self.write_deferred_of(tx, &write.train)?;
            let current = current(tx, &write.train)?.ok_or_else(|| not_found(&write.train))?;
            if current.lifecycle == Lifecycle::Stopped {
                return Err(StoreError::TrainStopped(write.train.clone()));
            }
            let seq = current.seq + 1;
            tx.execute(
                "update the approved train",
                "UPDATE trains SET seq = ?2, state_json = ?3, gates_json = coalesce(?4, gates_json) \
                 WHERE id = ?1",
                &[&write.train.as_str(), &seq_sql(seq), &state, &gates],
            )?;
            tx.execute(
                "insert an approval",
                "INSERT INTO approvals (train, seq, reason, actor, at) VALUES (?1, ?2, ?3, ?4, ?5)",
                &[
                    &write.train.as_str(),
                    &seq_sql(seq),
                    &write.reason,
                    &write.actor,
                    &ms(write.at),
                ],
            )?;
            Ok((seq, deferred))
        })?;
        self.inner.deferred.forget(&deferred);
        Ok(seq)
    }

    /// Stops watching a train (`DELETE /v1/trains/{id}`): lifecycle `stopped`, history and
    /// pending webhook events kept. Stopping a stopped train changes nothing.
    pub fn stop(&self, id: &TrainId, at: DateTime<Utc>) -> Result<TrainRecord, StoreError> {
        let (record, deferred) = self.write("stop a train", |tx| {
            let deferred = self.write_deferred_of(tx, id)?;
            let updated = tx.execute(
                "stop a train",
                "UPDATE trains SET lifecycle = 'stopped', stopped_at = coalesce(stopped_at, ?2) \
                 WHERE id = ?1",
                &[&id.as_str(), &ms(at)],
            )?;
            if updated == 0 {
                return Err(not_found(id));
            }
            let record = load_train(tx, id.as_str())?.ok_or_else(|| not_found(id))?;
            Ok((record, deferred))
        })?;
        self.inner.deferred.forget(&deferred);
        Ok(record)
    }

    /// The train's audit trail: registration, decision changes with their evidence,
    /// overrides, webhook deliveries and stop, in seq order (each delivery after the change it
    /// announces).
    pub fn events(&self, id: &TrainId) -> Result<Vec<AuditEvent>, StoreError> {
        self.read("read a train's events", |tx| {
            let key = id.as_str();
            let field = |column| Field { column, key };
            let head = tx
                .query_opt(
                    "read a train",
                    "SELECT registration_json, registered_at, stopped_at FROM trains WHERE id = ?1",
                    &[&key],
                )?
                .ok_or_else(|| not_found(id))?;
            let registration: String = head.get(0)?;
            let registered_at: i64 = head.get(1)?;
            let stopped_at: Option<i64> = head.get(2)?;

            // (seq, rank within the seq, tie-break) → event
            let mut events: Vec<((u64, u8, i64), AuditEvent)> = vec![(
                (0, 0, 0),
                AuditEvent::Registered {
                    at: field("trains.registered_at").time(registered_at)?,
                    registration: field("trains.registration_json").json(&registration)?,
                },
            )];

            for row in tx.query(
                "read decisions",
                "SELECT seq, decision, previous, reason, rule, evaluated_at, evidence_json \
                 FROM decisions WHERE train = ?1",
                &[&key],
            )? {
                let seq: u64 = field("decisions.seq").count(row.get::<i64>(0)?)?;
                events.push((
                    (seq, 1, 0),
                    AuditEvent::Decision {
                        seq,
                        decision: field("decisions.decision").parse(&row.get::<String>(1)?)?,
                        previous: field("decisions.previous").parse(&row.get::<String>(2)?)?,
                        reason: row.get(3)?,
                        rule: row.get(4)?,
                        evaluated_at: field("decisions.evaluated_at").time(row.get(5)?)?,
                        evidence: field("decisions.evidence_json").json(&row.get::<String>(6)?)?,
                    },
                ));
            }

            for row in tx.query(
                "read overrides",
                "SELECT seq, action, decision, previous, reason, actor, at, on_behalf_of \
                 FROM overrides WHERE train = ?1",
                &[&key],
            )? {
                let seq: u64 = field("overrides.seq").count(row.get::<i64>(0)?)?;
                events.push((
                    (seq, 1, 0),
                    AuditEvent::Override {
                        seq,
                        action: field("overrides.action").parse(&row.get::<String>(1)?)?,
                        decision: field("overrides.decision").parse(&row.get::<String>(2)?)?,
                        previous: field("overrides.previous").parse(&row.get::<String>(3)?)?,
                        reason: row.get(4)?,
                        actor: row.get(5)?,
                        on_behalf_of: row.get(7)?,
                        at: field("overrides.at").time(row.get(6)?)?,
                    },
                ));
            }

            for row in tx.query(
                "read approvals",
                "SELECT seq, reason, actor, at FROM approvals WHERE train = ?1",
                &[&key],
            )? {
                let seq: u64 = field("approvals.seq").count(row.get::<i64>(0)?)?;
                events.push((
                    (seq, 1, 0),
                    AuditEvent::Approval {
                        seq,
                        reason: row.get(1)?,
                        actor: row.get(2)?,
                        at: field("approvals.at").time(row.get(3)?)?,
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
pub(super) struct EncodedEvaluation {
    pub(super) state: String,
    pub(super) events: Vec<String>,
    pub(super) gates: Option<String>,
    pub(super) evidence: String,
}

impl EncodedEvaluation {
    fn new(write: &EvaluationWrite) -> Result<Self, StoreError> {
        Ok(EncodedEvaluation {
            evidence: write.evidence.json().into_owned(),
            state: encode(&write.state, "train state")?,
            events: encode_events(&write.events)?,
            gates: encode_gates(write.gates.as_deref())?,
        })
    }
}

/// The gates' parts of a train of several gates as JSON; `None` for a train of one gate.
pub(super) fn encode_gates(gates: Option<&[GateLeg]>) -> Result<Option<String>, StoreError> {
    gates.map(|g| encode(&g, "gates")).transpose()
}

fn encode_events(events: &[NewOutboxEvent]) -> Result<Vec<String>, StoreError> {
    events
        .iter()
        .map(|e| encode(&e.payload, "webhook payload"))
        .collect()
}

/// The stored values an evaluation or override is checked against; on PostgreSQL the row
/// stays locked until the transaction ends.
pub(super) struct Current {
    pub(super) decision: Decision,
    pub(super) seq: u64,
    pub(super) lifecycle: Lifecycle,
}

fn current(tx: &Tx<'_>, id: &TrainId) -> Result<Option<Current>, StoreError> {
    let sql = format!(
        "SELECT decision, seq, lifecycle FROM trains WHERE id = ?1{}",
        tx.dialect().for_update()
    );
    tx.query_opt("read a train's decision", &sql, &[&id.as_str()])?
        .map(|row| current_from_row(&row, id.as_str()))
        .transpose()
}

/// [`Current`] from a row whose first columns are `decision, seq, lifecycle` of train `key`.
pub(super) fn current_from_row(row: &Row, key: &str) -> Result<Current, StoreError> {
    let field = |column| Field { column, key };
    Ok(Current {
        decision: field("trains.decision").parse(&row.get::<String>(0)?)?,
        seq: field("trains.seq").count(row.get::<i64>(1)?)?,
        lifecycle: field("trains.lifecycle").parse(&row.get::<String>(2)?)?,
    })
}

fn write_evaluation(
    tx: &Tx<'_>,
    write: &EvaluationWrite,
    encoded: &EncodedEvaluation,
) -> Result<WriteOutcome, StoreError> {
    let id = write.train.as_str();
    let based_on = seq_sql(write.based_on_seq);
    let at = ms(write.evaluated_at);
    // The history row of a decision change, if it is one: the stored decision at the seq the
    // evaluation started from differs (and becomes `previous`). On PostgreSQL the row is
    // locked if it is one, so the update below cannot then be refused by a concurrent write.
    let changed = tx.execute(
        "insert a decision",
        &format!(
            "INSERT INTO decisions (train, seq, decision, previous, reason, rule, evaluated_at, \
             evidence_json) \
             SELECT id, seq + 1, ?3, decision, ?4, ?5, ?6, ?7 FROM trains \
             WHERE id = ?1 AND seq = ?2 AND lifecycle <> 'stopped' AND decision <> ?3{}",
            tx.dialect().for_update()
        ),
        &[
            &id,
            &based_on,
            &write.decision.as_str(),
            &write.reason,
            &write.rule,
            &at,
            &encoded.evidence,
        ],
    )? == 1;
    let updated = tx.execute(
        "update a train's evaluation",
        "UPDATE trains SET lifecycle = ?3, decision = ?4, seq = seq + ?5, reason = ?6, \
         rule = ?7, evaluated_at = ?8, state_json = ?9, evaluation_json = ?10, \
         gates_json = coalesce(?11, gates_json), \
         promoted_at = CASE WHEN ?4 = 'promote' AND decision <> 'promote' \
             THEN ?8 ELSE promoted_at END, \
         stopped_at = CASE WHEN ?3 = 'stopped' THEN coalesce(stopped_at, ?8) \
             ELSE stopped_at END \
         WHERE id = ?1 AND seq = ?2 AND lifecycle <> 'stopped'",
        &[
            &id,
            &based_on,
            &write.lifecycle.as_str(),
            &write.decision.as_str(),
            &i64::from(changed),
            &write.reason,
            &write.rule,
            &at,
            &encoded.state,
            &encoded.evidence,
            &encoded.gates,
        ],
    )?;
    if updated == 0 {
        return refused(tx, &write.train);
    }
    if !changed {
        return Ok(WriteOutcome::Unchanged);
    }
    let seq = write.based_on_seq + 1;
    outbox::insert_events(tx, &write.train, seq, at, &write.events, &encoded.events)?;
    Ok(WriteOutcome::Changed { seq })
}

/// Why an evaluation's guarded update changed no row: no such train, a stopped one, or one
/// whose seq moved on.
fn refused(tx: &Tx<'_>, id: &TrainId) -> Result<WriteOutcome, StoreError> {
    Ok(match current(tx, id)? {
        None => WriteOutcome::UnknownTrain,
        Some(current) if current.lifecycle == Lifecycle::Stopped => WriteOutcome::Stopped,
        Some(current) => WriteOutcome::Stale { seq: current.seq },
    })
}

fn load_train(tx: &Tx<'_>, id: &str) -> Result<Option<TrainRecord>, StoreError> {
    let row = tx.query_opt(
        "read a train",
        &format!("SELECT {TRAIN_COLUMNS} FROM trains WHERE id = ?1"),
        &[&id],
    )?;
    row.map(|row| RawTrain::from_row(&row)?.decode())
        .transpose()
}

fn load_trains(
    tx: &Tx<'_>,
    sql: &str,
    params: &[&dyn Param],
) -> Result<Vec<TrainRecord>, StoreError> {
    tx.query("list trains", sql, params)?
        .iter()
        .map(|row| RawTrain::from_row(row)?.decode())
        .collect()
}

/// A `trains` row as the database returns it, before the store's own decoding.
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
    gates: Option<String>,
}

impl RawTrain {
    fn from_row(r: &Row) -> Result<RawTrain, StoreError> {
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
            gates: r.get(16)?,
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
            gates,
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
            gates: gates
                .map(|g| field("trains.gates_json").json(&g))
                .transpose()?
                .unwrap_or_default(),
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

    on_both_stores!(register_creates_pending_seq_0_and_is_idempotent);
    fn register_creates_pending_seq_0_and_is_idempotent(store: Store) {
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

    on_both_stores!(register_with_a_different_body_conflicts);
    fn register_with_a_different_body_conflicts(store: Store) {
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

    on_both_stores!(a_stopped_train_id_is_not_reused);
    fn a_stopped_train_id_is_not_reused(store: Store) {
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

    on_both_stores!(seq_moves_only_on_changes_and_overrides);
    fn seq_moves_only_on_changes_and_overrides(store: Store) {
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
                AuditEvent::Decision { seq, .. }
                | AuditEvent::Override { seq, .. }
                | AuditEvent::Approval { seq, .. } => Some(*seq),
                _ => None,
            })
            .collect();
        assert_eq!(seqs, [1, 2, 3]);
    }

    on_both_stores!(a_refused_evaluation_changes_no_row);
    fn a_refused_evaluation_changes_no_row(store: Store) {
        store.register(&new_train("t-1"), t(0)).unwrap();
        store
            .record_override(&override_write(
                "t-1",
                OverrideAction::Pause,
                Decision::Pause,
            ))
            .unwrap();
        let before = store.train(&tid("t-1")).unwrap();
        let outbox = outbox_rows(&store);
        let changes = sqlite_changes(&store);
        let cycle = [
            eval(
                "t-1",
                0,
                Decision::Rollback,
                t(30),
                vec![event("late", "deployer")],
            ),
            eval("nope", 0, Decision::Rollback, t(30), vec![]),
        ];
        assert_eq!(
            store.record_evaluations(&cycle).unwrap(),
            [WriteOutcome::Stale { seq: 1 }, WriteOutcome::UnknownTrain]
        );
        assert_eq!(
            sqlite_changes(&store),
            changes,
            "the seq guard refused the writes: no history row, no update, no event"
        );
        assert_eq!(decision_rows(&store, "t-1"), 0);
        assert_eq!(outbox_rows(&store), outbox);
        assert_eq!(store.train(&tid("t-1")).unwrap(), before);
    }

    on_both_stores!(a_change_its_history_and_its_events_appear_together);
    fn a_change_its_history_and_its_events_appear_together(store: Store) {
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

    on_both_stores!(a_failing_write_leaves_nothing_behind);
    fn a_failing_write_leaves_nothing_behind(store: Store) {
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
            Err(StoreError::Sqlite { .. } | StoreError::Postgres { .. })
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

    on_both_stores!(a_cycle_reports_each_write);
    fn a_cycle_reports_each_write(store: Store) {
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

    on_both_stores!(a_cycle_writes_history_and_events_in_its_order);
    fn a_cycle_writes_history_and_events_in_its_order(store: Store) {
        for id in ["a", "b", "c"] {
            store.register(&new_train(id), t(0)).unwrap();
        }
        let cycle = [
            eval(
                "c",
                0,
                Decision::Rollback,
                t(30),
                vec![event("c1", "deployer")],
            ),
            eval(
                "a",
                0,
                Decision::Pause,
                t(30),
                vec![event("a1", "deployer"), event("a2", "audit")],
            ),
            eval("b", 0, Decision::Pending, t(30), vec![]),
        ];
        assert_eq!(
            store.record_evaluations(&cycle).unwrap(),
            [
                WriteOutcome::Changed { seq: 1 },
                WriteOutcome::Changed { seq: 1 },
                WriteOutcome::Unchanged,
            ]
        );
        let due: Vec<String> = store
            .due_events(t(30), 10)
            .unwrap()
            .into_iter()
            .map(|e| e.event_id)
            .collect();
        assert_eq!(due, ["c1", "a1", "a2"], "queued in the cycle's order");
        let a = store.train(&tid("a")).unwrap().unwrap();
        assert_eq!(
            (a.decision, a.seq, a.lifecycle, a.evaluated_at),
            (Decision::Pause, 1, Lifecycle::Paused, Some(t(30)))
        );
        assert!(store.events(&tid("a")).unwrap().iter().any(|e| matches!(
            e,
            AuditEvent::Decision {
                seq: 1,
                decision: Decision::Pause,
                previous: Decision::Pending,
                ..
            }
        )));
        let b = store.train(&tid("b")).unwrap().unwrap();
        assert_eq!((b.seq, b.evaluated_at), (0, Some(t(30))));
        assert_eq!(decision_rows(&store, "b"), 0);

        // A cycle that names a train twice: the second write saw the seq the first moved.
        let twice = [
            eval("b", 0, Decision::Promote, t(60), vec![]),
            eval("b", 0, Decision::Promote, t(61), vec![]),
        ];
        assert_eq!(
            store.record_evaluations(&twice).unwrap(),
            [
                WriteOutcome::Changed { seq: 1 },
                WriteOutcome::Stale { seq: 1 }
            ]
        );
        let b = store.train(&tid("b")).unwrap().unwrap();
        assert_eq!(
            (b.decision, b.seq, b.promoted_at),
            (Decision::Promote, 1, Some(t(60)))
        );
    }

    on_both_stores!(active_filters_skip_done_and_stopped_trains);
    fn active_filters_skip_done_and_stopped_trains(store: Store) {
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

    on_both_stores!(overrides_need_a_live_train);
    fn overrides_need_a_live_train(store: Store) {
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

    on_both_stores!(audit_trail_is_in_seq_order_and_serializes);
    fn audit_trail_is_in_seq_order_and_serializes(store: Store) {
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

    on_both_stores!(corrupt_rows_are_reported_not_panicked);
    fn corrupt_rows_are_reported_not_panicked(store: Store) {
        store.register(&new_train("t-1"), t(0)).unwrap();
        store
            .write("corrupt a row", |tx| {
                tx.execute(
                    "corrupt a row",
                    "UPDATE trains SET state_json = '{not json' WHERE id = 't-1'",
                    &[],
                )
            })
            .unwrap();
        let err = store.train(&tid("t-1")).unwrap_err();
        assert!(
            matches!(&err, StoreError::Corrupt { what, .. } if what.contains("state_json") && what.contains("t-1")),
            "{err:?}"
        );
    }

    on_both_stores!(a_train_of_several_gates_keeps_each_gates_part);
    fn a_train_of_several_gates_keeps_each_gates_part(store: Store) {
        let body = NewTrain {
            gates: vec!["checkout".into(), "pricing".into()],
            ..new_train("t-1")
        };
        let rec = store.register(&body, t(0)).unwrap().record().clone();
        assert_eq!(rec.gate, "checkout");
        assert_eq!(rec.gate_names(), ["checkout", "pricing"]);
        assert!(rec
            .gates
            .iter()
            .all(|g| g.decision == Decision::Pending && g.evaluated_at.is_none()));

        // One gate's part changes, the verdict stays: no new seq, the part is kept.
        let mut legs = rec.gates.clone();
        legs[0].decision = Decision::Promote;
        legs[0].evaluated_at = Some(t(60));
        legs[0].evaluation =
            Some(Evidence::encode(&serde_json::json!({"decision": "promote"})).unwrap());
        let mut write = eval("t-1", 0, Decision::Pending, t(60), vec![]);
        write.gates = Some(legs.clone());
        assert_eq!(
            store.record_evaluation(&write).unwrap(),
            WriteOutcome::Unchanged
        );
        let stored = store.train(&tid("t-1")).unwrap().unwrap();
        assert_eq!(stored.gates, legs);
        assert_eq!(stored.seq, 0);

        // An approval bumps the seq, keeps the decision, and is in the trail with its actor.
        let seq = store
            .record_approval(&ApprovalWrite {
                train: tid("t-1"),
                reason: "notes reviewed".into(),
                actor: "alice".into(),
                at: t(90),
                state: TrainState {
                    approved_by: Some("alice: notes reviewed".into()),
                    ..TrainState::default()
                },
                gates: None,
            })
            .unwrap();
        assert_eq!(seq, 1);
        let stored = store.train(&tid("t-1")).unwrap().unwrap();
        assert_eq!(stored.decision, Decision::Pending);
        assert_eq!(
            stored.gates, legs,
            "an approval without gates keeps the parts"
        );
        let approval = store
            .events(&tid("t-1"))
            .unwrap()
            .into_iter()
            .find(|e| matches!(e, AuditEvent::Approval { .. }))
            .unwrap();
        assert_eq!(
            approval,
            AuditEvent::Approval {
                seq: 1,
                reason: "notes reviewed".into(),
                actor: "alice".into(),
                at: t(90),
            }
        );
        // A train of one gate has no parts stored.
        store.register(&new_train("t-2"), t(0)).unwrap();
        let gates_json: Option<String> = store
            .read("read gates_json", |tx| {
                tx.query_one(
                    "read gates_json",
                    "SELECT gates_json FROM trains WHERE id = 't-2'",
                    &[],
                )?
                .get(0)
            })
            .unwrap();
        assert_eq!(gates_json, None);
    }
}
