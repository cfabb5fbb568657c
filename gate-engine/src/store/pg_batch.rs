//! A cycle's writes on PostgreSQL: one statement per table for all trains, not one per train.
//!
//! SQLite runs in the daemon's process, so a statement per train costs microseconds; to
//! PostgreSQL each is a network round trip, and a cycle of 500 trains took six times as long
//! as on SQLite. Here the same writes are sent as arrays (`unnest($1::text[], …)`), so a cycle
//! costs a handful of round trips whatever its size:
//!
//! 1. `SELECT … WHERE id = ANY($1) ORDER BY id FOR UPDATE` locks the cycle's trains (in one
//!    order, so two writers of many rows cannot deadlock) and reads what each write is checked
//!    against: unknown, stopped, stale (the seq moved) or a decision change;
//! 2. one `UPDATE trains … FROM unnest(…)` writes the accepted evaluations, still guarded by
//!    `seq`; it must change exactly the rows it was given, or the transaction is rolled back;
//! 3. one `INSERT INTO decisions … SELECT FROM unnest(…)` writes the history rows, and one
//!    `INSERT INTO outbox …` the webhook events, in the cycle's order.
//!
//! The outcomes, the rows written and the all-or-nothing transaction are those of the
//! per-train path (`trains.rs`), which SQLite keeps and which also serves a cycle that names
//! a train twice. [`checkpoint`] writes the deferred evaluations (`deferred.rs`) the same way,
//! with their guard in the `UPDATE`'s `WHERE`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::deferred::EncodedDeferred;
use super::error::StoreError;
use super::model::{EvaluationWrite, Lifecycle, WriteOutcome};
use super::sql::{Dialect, Tx};
use super::trains::{current_from_row, Current, EncodedEvaluation};
use super::{ms, seq_sql};

/// Whether a cycle of `writes` goes through [`write_evaluations`] on this transaction.
pub(super) fn applies(tx: &Tx<'_>, writes: &[EvaluationWrite]) -> bool {
    if tx.dialect() != Dialect::Postgres || writes.len() < 2 {
        return false;
    }
    let mut ids = HashSet::with_capacity(writes.len());
    writes.iter().all(|w| ids.insert(w.train.as_str()))
}

/// The accepted evaluations' columns, one array each.
#[derive(Default)]
struct Updates<'a> {
    id: Vec<&'a str>,
    based_on: Vec<i64>,
    seq: Vec<i64>,
    lifecycle: Vec<&'static str>,
    decision: Vec<&'static str>,
    reason: Vec<&'a str>,
    rule: Vec<Option<&'a str>>,
    at: Vec<i64>,
    state: Vec<&'a str>,
    evidence: Vec<&'a str>,
    gates: Vec<Option<&'a str>>,
}

#[derive(Default)]
struct History<'a> {
    train: Vec<&'a str>,
    seq: Vec<i64>,
    decision: Vec<&'static str>,
    previous: Vec<&'static str>,
    reason: Vec<&'a str>,
    rule: Vec<Option<&'a str>>,
    at: Vec<i64>,
    evidence: Vec<&'a str>,
}

#[derive(Default)]
struct Events<'a> {
    event_id: Vec<&'a str>,
    train: Vec<&'a str>,
    seq: Vec<i64>,
    webhook: Vec<&'a str>,
    payload: Vec<&'a str>,
    at: Vec<i64>,
}

/// [`super::Store::record_evaluations`]'s writes as a few statements (see the module docs);
/// the outcomes in the order of `writes`, whose train IDs are distinct ([`applies`]).
pub(super) fn write_evaluations(
    tx: &Tx<'_>,
    writes: &[EvaluationWrite],
    encoded: &[EncodedEvaluation],
) -> Result<Vec<WriteOutcome>, StoreError> {
    let ids: Vec<&str> = writes.iter().map(|w| w.train.as_str()).collect();
    let locked = tx.query_pg(
        "lock the cycle's trains",
        "SELECT decision, seq, lifecycle, id FROM trains WHERE id = ANY($1) \
         ORDER BY id FOR UPDATE",
        &[&ids],
    )?;
    let mut current: HashMap<String, Current> = HashMap::with_capacity(locked.len());
    for row in &locked {
        let id: String = row.get(3)?;
        let found = current_from_row(row, &id)?;
        current.insert(id, found);
    }

    let mut outcomes = Vec::with_capacity(writes.len());
    let mut rows = Updates::default();
    let mut history = History::default();
    let mut events = Events::default();
    for (write, encoded) in writes.iter().zip(encoded) {
        let id = write.train.as_str();
        let stored = match current.get(id) {
            None => {
                outcomes.push(WriteOutcome::UnknownTrain);
                continue;
            }
            Some(c) if c.lifecycle == Lifecycle::Stopped => {
                outcomes.push(WriteOutcome::Stopped);
                continue;
            }
            Some(c) if c.seq != write.based_on_seq => {
                outcomes.push(WriteOutcome::Stale { seq: c.seq });
                continue;
            }
            Some(c) => c,
        };
        let changed = stored.decision != write.decision;
        let seq = write.based_on_seq + u64::from(changed);
        let at = ms(write.evaluated_at);
        rows.id.push(id);
        rows.based_on.push(seq_sql(write.based_on_seq));
        rows.seq.push(seq_sql(seq));
        rows.lifecycle.push(write.lifecycle.as_str());
        rows.decision.push(write.decision.as_str());
        rows.reason.push(&write.reason);
        rows.rule.push(write.rule.as_deref());
        rows.at.push(at);
        rows.state.push(&encoded.state);
        rows.evidence.push(&encoded.evidence);
        rows.gates.push(encoded.gates.as_deref());
        if !changed {
            outcomes.push(WriteOutcome::Unchanged);
            continue;
        }
        history.train.push(id);
        history.seq.push(seq_sql(seq));
        history.decision.push(write.decision.as_str());
        history.previous.push(stored.decision.as_str());
        history.reason.push(&write.reason);
        history.rule.push(write.rule.as_deref());
        history.at.push(at);
        history.evidence.push(&encoded.evidence);
        for (event, payload) in write.events.iter().zip(&encoded.events) {
            events.event_id.push(&event.event_id);
            events.train.push(id);
            events.seq.push(seq_sql(seq));
            events.webhook.push(&event.webhook);
            events.payload.push(payload);
            events.at.push(at);
        }
        outcomes.push(WriteOutcome::Changed { seq });
    }

    if !rows.id.is_empty() {
        let updated = tx.execute_pg(
            "update the cycle's trains",
            "UPDATE trains SET lifecycle = v.lifecycle, decision = v.decision, seq = v.seq, \
             reason = v.reason, rule = v.rule, evaluated_at = v.at, state_json = v.state, \
             evaluation_json = v.evidence, gates_json = coalesce(v.gates, trains.gates_json), \
             promoted_at = CASE WHEN v.decision = 'promote' AND trains.decision <> 'promote' \
                 THEN v.at ELSE trains.promoted_at END, \
             stopped_at = CASE WHEN v.lifecycle = 'stopped' \
                 THEN coalesce(trains.stopped_at, v.at) ELSE trains.stopped_at END \
             FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::text[], $5::text[], \
                 $6::text[], $7::text[], $8::bigint[], $9::text[], $10::text[], $11::text[]) \
                 AS v(id, based_on, seq, lifecycle, decision, reason, rule, at, state, \
                 evidence, gates) \
             WHERE trains.id = v.id AND trains.seq = v.based_on \
               AND trains.lifecycle <> 'stopped'",
            &[
                &rows.id,
                &rows.based_on,
                &rows.seq,
                &rows.lifecycle,
                &rows.decision,
                &rows.reason,
                &rows.rule,
                &rows.at,
                &rows.state,
                &rows.evidence,
                &rows.gates,
            ],
        )?;
        if updated != rows.id.len() as u64 {
            // The rows are locked: only a bug gets here, and the cycle is rolled back.
            return Err(StoreError::Corrupt {
                what: "the cycle's trains".to_string(),
                detail: format!("{updated} of {} locked rows were updated", rows.id.len()),
            });
        }
    }
    if !history.train.is_empty() {
        tx.execute_pg(
            "insert the cycle's decisions",
            "INSERT INTO decisions (train, seq, decision, previous, reason, rule, evaluated_at, \
             evidence_json) \
             SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], \
                 $6::text[], $7::bigint[], $8::text[])",
            &[
                &history.train,
                &history.seq,
                &history.decision,
                &history.previous,
                &history.reason,
                &history.rule,
                &history.at,
                &history.evidence,
            ],
        )?;
    }
    if !events.event_id.is_empty() {
        // Queue order is the outbox's identity order: the cycle's order.
        tx.execute_pg(
            "queue the cycle's webhook events",
            "INSERT INTO outbox (event_id, train, seq, webhook, payload_json, created_at, state, \
             attempts, next_attempt_at) \
             SELECT event_id, train, seq, webhook, payload, at, 'pending', 0, at \
             FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], \
                 $6::bigint[]) WITH ORDINALITY \
                 AS v(event_id, train, seq, webhook, payload, at, n) \
             ORDER BY n",
            &[
                &events.event_id,
                &events.train,
                &events.seq,
                &events.webhook,
                &events.payload,
                &events.at,
            ],
        )?;
    }
    Ok(outcomes)
}

/// Writes deferred evaluations in one guarded `UPDATE` (the guard of `deferred.rs`); returns
/// how many it wrote.
pub(super) fn checkpoint(
    tx: &Tx<'_>,
    writes: &[Arc<EvaluationWrite>],
    encoded: &[EncodedDeferred],
) -> Result<u64, StoreError> {
    let id: Vec<&str> = writes.iter().map(|w| w.train.as_str()).collect();
    let seq: Vec<i64> = writes.iter().map(|w| seq_sql(w.based_on_seq)).collect();
    let decision: Vec<&str> = writes.iter().map(|w| w.decision.as_str()).collect();
    let lifecycle: Vec<&str> = writes.iter().map(|w| w.lifecycle.as_str()).collect();
    let reason: Vec<&str> = writes.iter().map(|w| w.reason.as_str()).collect();
    let rule: Vec<Option<&str>> = writes.iter().map(|w| w.rule.as_deref()).collect();
    let at: Vec<i64> = writes.iter().map(|w| ms(w.evaluated_at)).collect();
    let state: Vec<&str> = encoded.iter().map(|e| e.state.as_str()).collect();
    let evidence: Vec<&str> = encoded.iter().map(|e| e.evidence.as_str()).collect();
    let gates: Vec<Option<&str>> = encoded.iter().map(|e| e.gates.as_deref()).collect();
    tx.execute_pg(
        "checkpoint deferred evaluations",
        "UPDATE trains SET reason = v.reason, rule = v.rule, evaluated_at = v.at, \
         state_json = v.state, evaluation_json = v.evidence, \
         gates_json = coalesce(v.gates, trains.gates_json) \
         FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], \
             $6::text[], $7::bigint[], $8::text[], $9::text[], $10::text[]) \
             AS v(id, seq, decision, lifecycle, reason, rule, at, state, evidence, gates) \
         WHERE trains.id = v.id AND trains.seq = v.seq AND trains.decision = v.decision \
           AND trains.lifecycle = v.lifecycle AND coalesce(trains.evaluated_at, v.at) <= v.at",
        &[
            &id, &seq, &decision, &lifecycle, &reason, &rule, &at, &state, &evidence, &gates,
        ],
    )
}
