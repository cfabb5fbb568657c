//! The daemon's in-memory view of its trains: what the API serves and the scheduler evaluates.
//!
//! Each train is one immutable [`TrainView`] (its stored record plus the pre-rendered body of
//! `GET /v1/trains/{id}/decision`) behind an `Arc`, held in a `tokio::sync::watch` channel per
//! train. Readers clone the `Arc` under a short read lock and never touch the store, so a slow
//! Prometheus or a busy writer cannot slow the API down; long-polls subscribe to the train's
//! channel and wake on the next publish, without polling.
//!
//! The view only ever follows the store: writers (scheduler, API) commit first and publish
//! after, under the daemon's write lock, so what a client sees is always stored and the
//! order of publishes is the order of commits.
//!
//! Besides the per-train channels, one broadcast channel carries every change of any train
//! ([`Trains::changes`]) for the live overview (`GET /v1/events`).
//!
//! The map holds every active train (loaded at start) and any other train that was read or
//! written since; trains that are done or stopped stay until the daemon restarts, which keeps
//! a finished train answerable without a store read.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use axum::body::Bytes;
use gate_api::{DecisionBody, GateDecision, Train, TrainGate};
use gate_rules::TrainId;
use tokio::sync::{broadcast, watch};

use crate::store::{Evidence, GateLeg, Lifecycle, TrainRecord};

/// Whether the scheduler evaluates a train in this lifecycle state: verifying, promoted (while
/// watched) and paused. A rollback is latched and a done or stopped train is finished.
pub fn is_evaluated(lifecycle: Lifecycle) -> bool {
    matches!(
        lifecycle,
        Lifecycle::Verifying | Lifecycle::Promoted | Lifecycle::Paused
    )
}

/// One train as the API serves it: immutable, replaced as a whole on every change.
#[derive(Debug)]
pub struct TrainView {
    /// The train as stored.
    pub record: TrainRecord,
    decision_body: Bytes,
}

impl TrainView {
    /// A view of a stored train.
    pub fn new(record: TrainRecord) -> Arc<TrainView> {
        // Exactly as long as the body: `to_vec`'s spare capacity would stay with every view.
        let decision_body = Bytes::from(
            serde_json::to_vec(&decision_body(&record))
                .unwrap_or_else(|_| b"{}".to_vec())
                .into_boxed_slice(),
        );
        Arc::new(TrainView {
            record,
            decision_body,
        })
    }

    /// The train's ID.
    pub fn id(&self) -> &TrainId {
        &self.record.id
    }

    /// The body of `GET /v1/trains/{id}/decision`, rendered once per change.
    pub fn decision_body(&self) -> Bytes {
        self.decision_body.clone()
    }

    /// The train for `GET /v1/trains` (`evaluation: false`) or `GET /v1/trains/{id}`
    /// (`evaluation: true`, the latest evaluation report or `null`). `evaluating` says whether
    /// the daemon evaluates the train (an evaluated state and a gate in the config).
    pub fn summary(&self, evaluating: bool, evaluation: bool) -> Train<Evidence> {
        train_body(&self.record, evaluating, evaluation)
    }
}

/// The compact decision of a stored train (`GET /v1/trains/{id}/decision`).
pub fn decision_body(r: &TrainRecord) -> DecisionBody {
    DecisionBody {
        train: r.id.clone(),
        gate: r.gate.clone(),
        decision: r.decision,
        reason: r.reason.clone(),
        rule: r.rule.clone(),
        seq: r.seq,
        evaluated_at: r.evaluated_at,
        state: r.lifecycle,
        gates: (!r.gates.is_empty()).then(|| gate_decisions(&r.gates)),
    }
}

/// Each gate's decision of a train of several gates (the decision body, webhooks).
pub fn gate_decisions(legs: &[GateLeg]) -> Vec<GateDecision> {
    legs.iter()
        .map(|leg| GateDecision {
            gate: leg.gate.clone(),
            decision: leg.decision,
            reason: leg.reason.clone(),
            rule: leg.rule.clone(),
        })
        .collect()
}

/// A stored train as the API shows it; see [`TrainView::summary`].
pub fn train_body(r: &TrainRecord, evaluating: bool, evaluation: bool) -> Train<Evidence> {
    let mut train = train_with(r, evaluating, evaluation.then(|| r.evaluation.clone()));
    if let (true, Some(gates)) = (evaluation, train.gates.as_mut()) {
        for (gate, leg) in gates.iter_mut().zip(&r.gates) {
            gate.evaluation = Some(leg.evaluation.clone());
        }
    }
    train
}

/// A stored train as the API shows it, with `evaluation` as given (`None`: absent).
pub fn train_with<E>(r: &TrainRecord, evaluating: bool, evaluation: Option<Option<E>>) -> Train<E> {
    Train {
        id: r.id.clone(),
        gate: r.gate.clone(),
        lifecycle: r.lifecycle,
        decision: r.decision,
        reason: r.reason.clone(),
        rule: r.rule.clone(),
        seq: r.seq,
        evaluated_at: r.evaluated_at,
        started_at: r.started_at,
        baseline: r.baseline.clone(),
        labels: r.labels.clone(),
        registered_at: r.registered_at,
        promoted_at: r.promoted_at,
        stopped_at: r.stopped_at,
        pinned: r.state.pinned,
        consecutive_errors: r.state.consecutive_errors,
        evaluating,
        evaluation,
        worst_burn: None,
        gates: (!r.gates.is_empty()).then(|| {
            r.gates
                .iter()
                .map(|g| TrainGate {
                    gate: g.gate.clone(),
                    state: g.lifecycle,
                    decision: g.decision,
                    reason: g.reason.clone(),
                    rule: g.rule.clone(),
                    evaluated_at: g.evaluated_at,
                    evaluation: None,
                })
                .collect()
        }),
    }
}

/// How many changes a slow subscriber of [`Trains::changes`] may fall behind before it is
/// told it missed some.
pub const CHANGES_BUFFER: usize = 4096;

/// Every train the daemon holds, each in its own watch channel.
#[derive(Debug)]
pub struct Trains {
    map: RwLock<HashMap<TrainId, watch::Sender<Arc<TrainView>>>>,
    changes: broadcast::Sender<Arc<TrainView>>,
}

impl Default for Trains {
    fn default() -> Self {
        Trains {
            map: RwLock::default(),
            changes: broadcast::Sender::new(CHANGES_BUFFER),
        }
    }
}

impl Trains {
    /// An empty set.
    pub fn new() -> Self {
        Trains::default()
    }

    /// A receiver of every later change of any train: a train seen for the first time, a new
    /// `seq` (decision change or override) or a new lifecycle state. Evaluations that change
    /// nothing of these are not sent. A receiver that falls more than [`CHANGES_BUFFER`]
    /// changes behind gets `RecvError::Lagged` and should read the list again.
    pub fn changes(&self) -> broadcast::Receiver<Arc<TrainView>> {
        self.changes.subscribe()
    }

    fn read(
        &self,
    ) -> std::sync::RwLockReadGuard<'_, HashMap<TrainId, watch::Sender<Arc<TrainView>>>> {
        self.map.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The current view of a train, if held.
    pub fn get(&self, id: &TrainId) -> Option<Arc<TrainView>> {
        self.read().get(id).map(|tx| tx.borrow().clone())
    }

    /// A receiver that sees every later view of the train.
    pub fn subscribe(&self, id: &TrainId) -> Option<watch::Receiver<Arc<TrainView>>> {
        self.read().get(id).map(|tx| tx.subscribe())
    }

    /// How many receivers watch the train (long-polls in flight).
    pub fn watchers(&self, id: &TrainId) -> usize {
        self.read().get(id).map_or(0, |tx| tx.receiver_count())
    }

    /// Makes `view` the train's current view and wakes its watchers. Returns the view it
    /// replaced, if any.
    pub fn publish(&self, view: Arc<TrainView>) -> Option<Arc<TrainView>> {
        let old = self.replace(Arc::clone(&view));
        let changed = old.as_ref().is_none_or(|old| {
            old.record.seq != view.record.seq || old.record.lifecycle != view.record.lifecycle
        });
        if changed {
            // No receiver is not an error: nobody is watching.
            let _ = self.changes.send(view);
        }
        old
    }

    fn replace(&self, view: Arc<TrainView>) -> Option<Arc<TrainView>> {
        if let Some(tx) = self.read().get(view.id()) {
            return Some(tx.send_replace(view));
        }
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        match map.get(view.id()) {
            Some(tx) => Some(tx.send_replace(view)),
            None => {
                map.insert(view.id().clone(), watch::Sender::new(view));
                None
            }
        }
    }

    /// Forgets a train (pruned from the store); its watchers see the channel close.
    pub fn remove(&self, id: &TrainId) {
        self.map
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }

    /// Drops the views of finished trains (done or stopped) that nobody watches; returns how
    /// many. The API reads such a train from the store again when asked for it.
    pub fn evict_finished(&self) -> usize {
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        let before = map.len();
        map.retain(|_, tx| tx.borrow().record.lifecycle.is_active() || tx.receiver_count() > 0);
        before - map.len()
    }

    /// The views matching `keep`, by start time then ID.
    pub fn filter(&self, keep: impl Fn(&TrainView) -> bool) -> Vec<Arc<TrainView>> {
        let mut views: Vec<Arc<TrainView>> = self
            .read()
            .values()
            .map(|tx| tx.borrow().clone())
            .filter(|v| keep(v))
            .collect();
        views.sort_by(|a, b| {
            (a.record.started_at, &a.record.id).cmp(&(b.record.started_at, &b.record.id))
        });
        views
    }

    /// Trains held, by lifecycle state.
    pub fn count_by_lifecycle(&self) -> HashMap<Lifecycle, i64> {
        let mut counts = HashMap::new();
        for tx in self.read().values() {
            *counts.entry(tx.borrow().record.lifecycle).or_insert(0) += 1;
        }
        counts
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeMap;

    use chrono::{TimeZone, Utc};
    use gate_rules::decide::TrainState;
    use gate_rules::Decision;

    use super::*;

    pub(crate) fn record(id: &str, seq: u64, decision: Decision) -> TrainRecord {
        let t = Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap();
        TrainRecord {
            id: gate_rules::train_id::validate(id).unwrap(),
            gate: "checkout".into(),
            started_at: t,
            baseline: None,
            labels: BTreeMap::new(),
            lifecycle: Lifecycle::Verifying,
            decision,
            seq,
            reason: "why".into(),
            rule: None,
            evaluated_at: Some(t),
            state: TrainState::default(),
            evaluation: None,
            registered_at: t,
            promoted_at: None,
            stopped_at: None,
            gates: Vec::new(),
        }
    }

    #[test]
    fn decision_body_is_compact_json() {
        let view = TrainView::new(record("t-1", 3, Decision::Pause));
        let body: serde_json::Value = serde_json::from_slice(&view.decision_body()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"train": "t-1", "gate": "checkout", "decision": "pause",
                "reason": "why", "rule": null, "seq": 3,
                "evaluated_at": "2026-11-01T12:00:00Z", "state": "verifying"})
        );
    }

    #[tokio::test]
    async fn publish_replaces_the_view_and_wakes_watchers() {
        let trains = Trains::new();
        assert!(trains
            .publish(TrainView::new(record("t-1", 0, Decision::Pending)))
            .is_none());
        let id = gate_rules::train_id::validate("t-1").unwrap();
        let mut rx = trains.subscribe(&id).unwrap();
        let waiter = tokio::spawn(async move {
            rx.wait_for(|v| v.record.seq > 0)
                .await
                .unwrap()
                .record
                .decision
        });
        let old = trains.publish(TrainView::new(record("t-1", 1, Decision::Rollback)));
        assert_eq!(old.unwrap().record.seq, 0);
        assert_eq!(waiter.await.unwrap(), Decision::Rollback);
        assert_eq!(trains.get(&id).unwrap().record.seq, 1);
        assert_eq!(trains.count_by_lifecycle()[&Lifecycle::Verifying], 1);
    }

    #[tokio::test]
    async fn changes_carry_new_trains_seqs_and_states_but_not_plain_evaluations() {
        let trains = Trains::new();
        let mut rx = trains.changes();
        trains.publish(TrainView::new(record("t-1", 0, Decision::Pending)));
        // Evaluated again, nothing changed but the evaluation: no change to send.
        trains.publish(TrainView::new(record("t-1", 0, Decision::Pending)));
        trains.publish(TrainView::new(record("t-1", 1, Decision::Pause)));
        let mut done = record("t-1", 1, Decision::Pause);
        done.lifecycle = Lifecycle::Stopped;
        trains.publish(TrainView::new(done));
        let mut seen = Vec::new();
        while let Ok(view) = rx.try_recv() {
            seen.push((view.record.seq, view.record.lifecycle));
        }
        assert_eq!(
            seen,
            [
                (0, Lifecycle::Verifying),
                (1, Lifecycle::Verifying),
                (1, Lifecycle::Stopped)
            ]
        );
    }
}
