//! Deferred evaluations: the store's write-behind for evaluations that change no decision.
//!
//! Most evaluations change nothing a client acts on: the train is evaluated again, its reason,
//! streaks, anytime-valid tests, evaluation time and evidence move, its decision, seq,
//! lifecycle and rule do not. Writing every train's row with its full evidence every cycle
//! cost most of the daemon's CPU and tens of megabytes of fsynced writes a minute at 10,000
//! trains, for data that the next cycle replaces. Such an evaluation is *deferred* instead
//! ([`Store::defer_evaluations`]): held here in memory, replacing the train's previous
//! deferred one, and written by the next [`Store::checkpoint`], one transaction for all of
//! them. The daemon checkpoints every [`crate::daemon::scheduler::CHECKPOINT_EVERY`] and at
//! shutdown. An evaluation that changes the decision, the lifecycle or the rule is never
//! deferred: it goes through [`Store::record_evaluations`] and is committed before it is
//! published, with its history row and webhook events.
//!
//! **What a SIGKILL (or power loss) can lose:** the deferred evaluations since the last
//! checkpoint — the latest reason, evaluation time and evidence of trains whose decision did
//! not change, and what the decision function carried between those evaluations (rule
//! streaks, the error streak, the anytime-valid tests' looks). After a restart the trains
//! carry on from the checkpoint, as if the daemon had been down since. **What it cannot
//! lose:** a decision, a seq, a lifecycle change, a webhook event or a history row: those
//! are written at once.
//!
//! **Guards.** A deferred evaluation is written only while the train's row still has the seq,
//! decision and lifecycle the evaluation was computed from and no later evaluation time: an
//! `UPDATE … WHERE id = ? AND seq = ? AND decision = ? AND lifecycle = ? AND evaluated_at <= ?`
//! whose changed-row count says whether it applied. So a deferred evaluation never overwrites
//! an override, an approval, a stop or a later change, and never changes a decision without
//! its history and events. Overrides, approvals and stops write the train's deferred
//! evaluation first, in their own transaction, so the row they leave has the latest evaluation.
//!
//! **Reads in this process see it.** [`Store::train`] and [`Store::trains`] return a train with
//! its deferred evaluation applied (under the same guard), so the daemon reads back what it
//! has shown. Another process reading the store (`gate report --db`, `gate replay --db`, another
//! replica on the same PostgreSQL database) sees the last checkpoint.
//!
//! **Fencing.** A checkpoint is a leader's write ([`Store::leader_write`]): a replica that lost
//! the lease writes none of its deferred evaluations (they stay deferred). The write of a
//! train's deferred evaluation inside an override, approval or stop — writes any replica
//! makes — checks the fence too and drops the evaluation when it no longer holds.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use gate_rules::TrainId;

use super::error::StoreError;
use super::model::{EvaluationWrite, TrainRecord};
use super::sql::{Dialect, Tx};
use super::trains::encode_gates;
use super::{encode, lease, ms, pg_batch, seq_sql, Store};

/// What one [`Store::checkpoint`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Checkpointed {
    /// Deferred evaluations written.
    pub written: u64,
    /// Deferred evaluations dropped by the guard: their train's seq, decision or lifecycle
    /// had moved on (an override, an approval, a stop, a later change) or was gone.
    pub skipped: u64,
}

/// The deferred evaluations, one per train: the latest.
#[derive(Debug, Default)]
pub(crate) struct Deferred {
    inner: Mutex<Buffer>,
}

#[derive(Debug, Default)]
struct Buffer {
    writes: HashMap<TrainId, Arc<EvaluationWrite>>,
    /// When the oldest evaluation not yet checkpointed was deferred.
    since: Option<DateTime<Utc>>,
}

/// Trains per statement of a checkpoint on PostgreSQL (≈ 3 MB of evidence).
const CHECKPOINT_CHUNK: usize = 1_000;
impl Deferred {
    fn lock(&self) -> MutexGuard<'_, Buffer> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The deferred evaluation of `id`, if any.
    pub(crate) fn get(&self, id: &TrainId) -> Option<Arc<EvaluationWrite>> {
        self.lock().writes.get(id).cloned()
    }

    /// Every deferred evaluation (shared, not copied).
    pub(crate) fn snapshot(&self) -> HashMap<TrainId, Arc<EvaluationWrite>> {
        self.lock().writes.clone()
    }

    /// Forgets the deferred evaluations of `written` that are still the ones given (a newer
    /// one deferred meanwhile stays).
    pub(crate) fn forget<'a>(&self, written: impl IntoIterator<Item = &'a Arc<EvaluationWrite>>) {
        let mut buffer = self.lock();
        for write in written {
            if buffer
                .writes
                .get(&write.train)
                .is_some_and(|held| Arc::ptr_eq(held, write))
            {
                buffer.writes.remove(&write.train);
            }
        }
        if buffer.writes.is_empty() {
            buffer.since = None;
        }
    }

    /// Forgets whatever is deferred for `ids`, which were just written with newer data.
    pub(crate) fn supersede<'a>(&self, ids: impl IntoIterator<Item = &'a TrainId>) {
        let mut buffer = self.lock();
        if buffer.writes.is_empty() {
            return;
        }
        for id in ids {
            buffer.writes.remove(id);
        }
        if buffer.writes.is_empty() {
            buffer.since = None;
        }
    }
}

impl Store {
    /// Defers evaluations that change neither decision, lifecycle nor rule (see the module
    /// docs): each replaces its train's previous deferred evaluation and is written by the
    /// next [`Store::checkpoint`]. `now` is when they were deferred ([`Store::deferred_since`]).
    ///
    /// An evaluation that would change the decision or the lifecycle is never written from
    /// here (the checkpoint's guard drops it): such a change goes through
    /// [`Store::record_evaluations`].
    pub fn defer_evaluations(&self, writes: Vec<EvaluationWrite>, now: DateTime<Utc>) {
        if writes.is_empty() {
            return;
        }
        let mut buffer = self.inner.deferred.lock();
        buffer.since.get_or_insert(now);
        for write in writes {
            buffer.writes.insert(write.train.clone(), Arc::new(write));
        }
    }

    /// When the oldest deferred evaluation not yet checkpointed was deferred; `None` when
    /// nothing waits.
    pub fn deferred_since(&self) -> Option<DateTime<Utc>> {
        self.inner.deferred.lock().since
    }

    /// How many trains have a deferred evaluation waiting for the next checkpoint.
    pub fn deferred_len(&self) -> usize {
        self.inner.deferred.lock().writes.len()
    }

    /// Forgets every deferred evaluation without writing it: for a replica that lost the
    /// leader lease (its checkpoints are refused, [`StoreError::Fenced`]; the replica that
    /// leads now evaluates the trains). Returns how many were dropped.
    pub fn discard_deferred(&self) -> usize {
        let mut buffer = self.inner.deferred.lock();
        buffer.since = None;
        std::mem::take(&mut buffer.writes).len()
    }

    /// Writes every deferred evaluation in one transaction, each under the guard of the
    /// module docs, and forgets them. If the transaction fails, they stay deferred.
    pub fn checkpoint(&self) -> Result<Checkpointed, StoreError> {
        let writes: Vec<Arc<EvaluationWrite>> =
            self.inner.deferred.snapshot().into_values().collect();
        if writes.is_empty() {
            return Ok(Checkpointed::default());
        }
        let encoded = writes
            .iter()
            .map(|w| EncodedDeferred::new(w))
            .collect::<Result<Vec<_>, _>>()?;
        let done = self.leader_write("checkpoint deferred evaluations", |tx| {
            let mut done = Checkpointed::default();
            if tx.dialect() == Dialect::Postgres {
                // Statements of a bounded size: the client keeps the buffer of its largest.
                for (writes, encoded) in writes
                    .chunks(CHECKPOINT_CHUNK)
                    .zip(encoded.chunks(CHECKPOINT_CHUNK))
                {
                    done.written += pg_batch::checkpoint(tx, writes, encoded)?;
                }
                done.skipped = writes.len() as u64 - done.written;
                return Ok(done);
            }
            for (write, encoded) in writes.iter().zip(&encoded) {
                if write_deferred(tx, write, encoded)? {
                    done.written += 1;
                } else {
                    done.skipped += 1;
                }
            }
            Ok(done)
        })?;
        self.inner.deferred.forget(&writes);
        Ok(done)
    }

    /// Writes the deferred evaluation of `id`, if any, inside the caller's transaction (an
    /// override, approval or stop about to change the row); returns it, to be forgotten once
    /// the transaction commits.
    ///
    /// The caller's write is not fenced (any replica makes it), the deferred evaluation is a
    /// leader's: it is written only if this replica's fence still holds, and forgotten
    /// otherwise (the replica that leads now evaluates the train).
    pub(crate) fn write_deferred_of(
        &self,
        tx: &Tx<'_>,
        id: &TrainId,
    ) -> Result<Option<Arc<EvaluationWrite>>, StoreError> {
        let Some(write) = self.inner.deferred.get(id) else {
            return Ok(None);
        };
        let fenced = match self.fence() {
            Some(fence) => match lease::check(tx, &fence) {
                Ok(()) => false,
                Err(StoreError::Fenced { .. }) => true,
                Err(e) => return Err(e),
            },
            None => false,
        };
        if !fenced {
            write_deferred(tx, &write, &EncodedDeferred::new(&write)?)?;
        }
        Ok(Some(write))
    }
}

/// The JSON of a deferred evaluation, encoded at the checkpoint rather than every cycle.
pub(super) struct EncodedDeferred {
    pub(super) state: String,
    pub(super) gates: Option<String>,
    pub(super) evidence: String,
}

impl EncodedDeferred {
    fn new(write: &EvaluationWrite) -> Result<Self, StoreError> {
        Ok(EncodedDeferred {
            state: encode(&write.state, "train state")?,
            gates: encode_gates(write.gates.as_deref())?,
            evidence: write.evidence.json().into_owned(),
        })
    }
}

/// The guarded write of one deferred evaluation; `false` when the guard refused it.
fn write_deferred(
    tx: &Tx<'_>,
    write: &EvaluationWrite,
    encoded: &EncodedDeferred,
) -> Result<bool, StoreError> {
    let changed = tx.execute(
        "write a deferred evaluation",
        "UPDATE trains SET reason = ?5, rule = ?6, evaluated_at = ?7, state_json = ?8, \
         evaluation_json = ?9, gates_json = coalesce(?10, gates_json) \
         WHERE id = ?1 AND seq = ?2 AND decision = ?3 AND lifecycle = ?4 \
           AND coalesce(evaluated_at, ?7) <= ?7",
        &[
            &write.train.as_str(),
            &seq_sql(write.based_on_seq),
            &write.decision.as_str(),
            &write.lifecycle.as_str(),
            &write.reason,
            &write.rule,
            &ms(write.evaluated_at),
            &encoded.state,
            &encoded.evidence,
            &encoded.gates,
        ],
    )?;
    Ok(changed == 1)
}

/// `record` with `deferred` applied if it still applies (the guard of the module docs).
pub(crate) fn overlay(mut record: TrainRecord, deferred: &EvaluationWrite) -> TrainRecord {
    let applies = record.seq == deferred.based_on_seq
        && record.decision == deferred.decision
        && record.lifecycle == deferred.lifecycle
        && record
            .evaluated_at
            .is_none_or(|at| at <= deferred.evaluated_at);
    if applies {
        record.reason = deferred.reason.clone();
        record.rule = deferred.rule.clone();
        record.evaluated_at = Some(deferred.evaluated_at);
        record.state = deferred.state.clone();
        record.evaluation = Some(deferred.evidence.clone());
        if let Some(gates) = &deferred.gates {
            record.gates = gates.clone();
        }
    }
    record
}

#[cfg(test)]
mod tests {
    use gate_rules::Decision;

    use super::super::testing::*;
    use super::super::{Lifecycle, OverrideAction, WriteOutcome};
    use super::*;

    /// The train's row as committed, read past the store (no deferred evaluation applied):
    /// (decision, seq, evaluated_at, evaluation_json).
    fn row(store: &Store, id: &str) -> (String, i64, Option<i64>, Option<String>) {
        store
            .read("read a row", |tx| {
                let r = tx.query_one(
                    "read a row",
                    "SELECT decision, seq, evaluated_at, evaluation_json FROM trains WHERE id = ?1",
                    &[&id],
                )?;
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .unwrap()
    }

    /// `store` with `t-1` paused at seq 1 (evaluated at t(30)).
    fn paused(store: &Store) {
        store.register(&new_train("t-1"), t(0)).unwrap();
        change(store, "t-1", 0, Decision::Pause, t(30), vec![]);
    }

    on_both_stores!(a_deferred_evaluation_writes_nothing_until_the_checkpoint);
    fn a_deferred_evaluation_writes_nothing_until_the_checkpoint(store: Store) {
        paused(&store);
        let before = row(&store, "t-1");
        let changes = sqlite_changes(&store);

        let later = eval("t-1", 1, Decision::Pause, t(60), vec![]);
        store.defer_evaluations(vec![later.clone()], t(60));
        assert_eq!(sqlite_changes(&store), changes, "deferring writes no row");
        assert_eq!(row(&store, "t-1"), before);
        assert_eq!(store.deferred_since(), Some(t(60)));
        // Read in this process, the train has its latest evaluation.
        let seen = store.train(&tid("t-1")).unwrap().unwrap();
        assert_eq!(seen.evaluated_at, Some(t(60)));
        assert_eq!(seen.evaluation.as_ref(), Some(&later.evidence));
        assert_eq!(seen.seq, 1);
        assert_eq!(
            store.trains(crate::store::TrainFilter::All).unwrap(),
            [seen.clone()]
        );

        // A later one replaces it: one row written at the checkpoint, not two.
        let latest = eval("t-1", 1, Decision::Pause, t(90), vec![]);
        store.defer_evaluations(vec![latest.clone()], t(90));
        assert_eq!(store.deferred_since(), Some(t(60)), "the oldest waiting");
        assert_eq!(
            store.checkpoint().unwrap(),
            Checkpointed {
                written: 1,
                skipped: 0
            }
        );
        assert_eq!(sqlite_changes(&store), changes.map(|n| n + 1));
        let (decision, seq, at, evidence) = row(&store, "t-1");
        assert_eq!((decision.as_str(), seq), ("pause", 1));
        assert_eq!(at, Some(ms(t(90))));
        assert_eq!(evidence.as_deref(), Some(latest.evidence.json().as_ref()));
        assert_eq!(store.deferred_since(), None);
        assert_eq!(store.deferred_len(), 0);
        assert_eq!(decision_rows(&store, "t-1"), 1, "no history for it");
        assert_eq!(store.checkpoint().unwrap(), Checkpointed::default());
    }

    on_both_stores!(an_override_writes_the_deferred_evaluation_first_and_a_stale_one_is_refused);
    fn an_override_writes_the_deferred_evaluation_first_and_a_stale_one_is_refused(store: Store) {
        paused(&store);
        let deferred = eval("t-1", 1, Decision::Pause, t(60), vec![]);
        store.defer_evaluations(vec![deferred.clone()], t(60));
        let seq = store
            .record_override(&override_write(
                "t-1",
                OverrideAction::Promote,
                Decision::Promote,
            ))
            .unwrap();
        assert_eq!(seq, 2);
        let (decision, seq, at, evidence) = row(&store, "t-1");
        assert_eq!((decision.as_str(), seq), ("promote", 2));
        assert_eq!(
            at,
            Some(ms(t(60))),
            "the override's row has the latest evaluation"
        );
        assert_eq!(evidence.as_deref(), Some(deferred.evidence.json().as_ref()));
        assert_eq!(store.deferred_len(), 0);

        // An evaluation computed from seq 1, deferred after the override: the guard drops it.
        store.defer_evaluations(vec![eval("t-1", 1, Decision::Pause, t(90), vec![])], t(90));
        let seen = store.train(&tid("t-1")).unwrap().unwrap();
        assert_eq!((seen.decision, seen.seq), (Decision::Promote, 2));
        assert_eq!(
            seen.evaluated_at,
            Some(t(60)),
            "not applied on reads either"
        );
        assert_eq!(
            store.checkpoint().unwrap(),
            Checkpointed {
                written: 0,
                skipped: 1
            }
        );
        assert_eq!(row(&store, "t-1").0, "promote");
        assert_eq!(row(&store, "t-1").2, Some(ms(t(60))));
    }

    on_both_stores!(a_deferred_evaluation_never_changes_a_decision_or_a_lifecycle);
    fn a_deferred_evaluation_never_changes_a_decision_or_a_lifecycle(store: Store) {
        paused(&store);
        let before = row(&store, "t-1");
        // A different decision from the same seq: never written from here.
        store.defer_evaluations(
            vec![eval("t-1", 1, Decision::Rollback, t(60), vec![])],
            t(60),
        );
        assert_eq!(
            store.train(&tid("t-1")).unwrap().unwrap().decision,
            Decision::Pause
        );
        // The same decision, another lifecycle: neither.
        let mut resumed = eval("t-1", 1, Decision::Pause, t(61), vec![]);
        resumed.train = tid("t-2");
        store.register(&new_train("t-2"), t(0)).unwrap();
        change(&store, "t-2", 0, Decision::Pause, t(30), vec![]);
        resumed.lifecycle = Lifecycle::Verifying;
        store.defer_evaluations(vec![resumed], t(61));
        assert_eq!(
            store.checkpoint().unwrap(),
            Checkpointed {
                written: 0,
                skipped: 2
            }
        );
        assert_eq!(row(&store, "t-1"), before);
        assert_eq!(decision_rows(&store, "t-1"), 1);
        assert_eq!(outbox_rows(&store), 0);
        assert_eq!(
            store.train(&tid("t-2")).unwrap().unwrap().lifecycle,
            Lifecycle::Paused
        );
    }

    on_both_stores!(a_recorded_evaluation_supersedes_the_deferred_one);
    fn a_recorded_evaluation_supersedes_the_deferred_one(store: Store) {
        paused(&store);
        store.defer_evaluations(vec![eval("t-1", 1, Decision::Pause, t(60), vec![])], t(60));
        let rollback = eval("t-1", 1, Decision::Rollback, t(90), vec![]);
        assert_eq!(
            store.record_evaluations(&[rollback.clone()]).unwrap(),
            [WriteOutcome::Changed { seq: 2 }]
        );
        assert_eq!(store.deferred_len(), 0);
        assert_eq!(store.checkpoint().unwrap(), Checkpointed::default());
        let (decision, seq, at, evidence) = row(&store, "t-1");
        assert_eq!(
            (decision.as_str(), seq, at),
            ("rollback", 2, Some(ms(t(90))))
        );
        assert_eq!(evidence.as_deref(), Some(rollback.evidence.json().as_ref()));
    }

    on_both_stores!(a_stop_keeps_the_latest_evaluation);
    fn a_stop_keeps_the_latest_evaluation(store: Store) {
        paused(&store);
        let deferred = eval("t-1", 1, Decision::Pause, t(60), vec![]);
        store.defer_evaluations(vec![deferred.clone()], t(60));
        let stopped = store.stop(&tid("t-1"), t(70)).unwrap();
        assert_eq!(stopped.lifecycle, Lifecycle::Stopped);
        assert_eq!(stopped.evaluated_at, Some(t(60)));
        assert_eq!(stopped.evaluation, Some(deferred.evidence));
        assert_eq!(store.deferred_len(), 0);
    }

    /// Two handles on one store play two replicas (as in `lease.rs`): the deferred
    /// evaluations of a leader that lost its lease are not written, by its checkpoint or by an
    /// override it serves.
    fn a_fenced_leader_checkpoints_nothing(old: Store, new: Store) {
        use super::super::{Claim, Fence};
        let ttl = chrono::Duration::seconds(15);
        let fence = |store: &Store, replica: &str, claim: Claim| match claim {
            Claim::Leader(lease) => store.set_fence(Some(Fence {
                holder: replica.into(),
                epoch: lease.epoch,
            })),
            other => panic!("expected to lead, got {other:?}"),
        };
        fence(&old, "r1", old.claim_lease("r1", None, t(0), ttl).unwrap());
        paused(&old);
        old.defer_evaluations(vec![eval("t-1", 1, Decision::Pause, t(40), vec![])], t(40));
        fence(&new, "r2", new.claim_lease("r2", None, t(50), ttl).unwrap());

        let err = old.checkpoint().unwrap_err();
        assert!(matches!(err, StoreError::Fenced { .. }), "{err:?}");
        assert_eq!(old.deferred_len(), 1, "kept: nothing was written");
        assert_eq!(row(&new, "t-1").2, Some(ms(t(30))));
        // Told it follows, the old leader drops them; until then its reads show them.
        assert_eq!(
            old.train(&tid("t-1")).unwrap().unwrap().evaluated_at,
            Some(t(40))
        );
        let kept = eval("t-1", 1, Decision::Pause, t(45), vec![]);
        old.defer_evaluations(vec![kept], t(45));
        assert_eq!(old.discard_deferred(), 1);
        assert_eq!((old.deferred_len(), old.deferred_since()), (0, None));
        assert_eq!(
            old.train(&tid("t-1")).unwrap().unwrap().evaluated_at,
            Some(t(30))
        );
        assert_eq!(old.checkpoint().unwrap(), Checkpointed::default());
        old.defer_evaluations(vec![eval("t-1", 1, Decision::Pause, t(46), vec![])], t(46));

        // An override is anyone's write; the old leader's deferred evaluation is not.
        let seq = old
            .record_override(&override_write(
                "t-1",
                OverrideAction::Promote,
                Decision::Promote,
            ))
            .unwrap();
        assert_eq!(seq, 2);
        let (decision, seq, at, _) = row(&new, "t-1");
        assert_eq!(
            (decision.as_str(), seq, at),
            ("promote", 2, Some(ms(t(30))))
        );
        assert_eq!(old.deferred_len(), 0);
    }

    #[test]
    fn a_fenced_leader_checkpoints_nothing_on_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gate.db");
        a_fenced_leader_checkpoints_nothing(
            Store::open(path.as_path()).unwrap(),
            Store::open(path.as_path()).unwrap(),
        );
    }

    #[test]
    fn a_fenced_leader_checkpoints_nothing_on_postgres() {
        let (_db, url) = pg_database();
        a_fenced_leader_checkpoints_nothing(
            Store::open(url.as_str()).unwrap(),
            Store::open(url.as_str()).unwrap(),
        );
    }
}
