//! The scheduler: one tokio task per gate, one evaluation cycle per `interval`.
//!
//! A cycle of a gate ([`run_cycle`]):
//!
//! 1. takes the gate's evaluated trains from memory (verifying, promoted while watched,
//!    paused — see [`super::state::is_evaluated`]);
//! 2. runs ONE planned batch of queries for all of them at the clock's now
//!    ([`crate::evaluate::fetch`]) — a thousand trains cost the queries of one;
//! 3. decides each train from its stored [`gate_rules::decide::TrainState`]
//!    ([`crate::evaluate::decide_train`], [`Mode::Daemon`]) and works out its lifecycle:
//!    `verifying` → `promoted` (then `done` at the first successful evaluation once `watch_for`
//!    has passed since the promotion),
//!    `paused` ⇄ `verifying`, or `rolled_back`;
//! 4. writes the cycle's changes — decision changes with their history and webhook events,
//!    lifecycle and rule changes — in one store transaction
//!    ([`crate::store::Store::record_evaluations`]), and defers the evaluations that changed
//!    none of these ([`crate::store::Store::defer_evaluations`]): a cycle in which nothing
//!    changes writes nothing;
//! 5. only then publishes the new views to the API and its long-polls;
//! 6. every [`CHECKPOINT_EVERY`] (by the daemon's clock), writes the deferred evaluations of
//!    every train in one transaction ([`crate::store::Store::checkpoint`]); the daemon also
//!    checkpoints at shutdown.
//!
//! Why defer: at 10,000 trains, rewriting every train's row with its evidence every cycle was
//! 40 % of the daemon's CPU and about 112 MB of fsynced writes a minute at a 15 s interval,
//! for data the next cycle replaces. What a SIGKILL can lose is then the deferred evaluations
//! since the last checkpoint (at most a minute of reasons, evidence, streaks and anytime-valid
//! looks of trains whose decision did not change); never a decision, seq, lifecycle, rule,
//! history row or webhook event, which are committed before they are published (the store's
//! `deferred.rs` has the details).
//!
//! Each gate has its own task, so a gate whose Prometheus queries hang or fail delays only
//! itself; the API reads memory and is never blocked by a cycle. Ticking uses tokio time
//! (tests pause it), evaluation times come from the daemon's [`super::Clock`]. A tick that
//! comes due while a cycle is still running is delayed, not bunched up. On shutdown a task
//! finishes the cycle in flight (its write commits) and stops; so does the task of a gate a
//! reload removed, and it is awaited at shutdown like the others.
//!
//! Supervision: each cycle runs in a task of its own, so a panic in it ends that cycle only;
//! it is logged, counted (`gate_task_panics_total`), and the gate evaluates again after a
//! backoff that doubles with each panic in a row.
//!
//! An evaluation computed while an override landed is refused by the store as stale (it
//! carries the seq it started from); the train's view is then refreshed from the store.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use gate_rules::config::{BaselineKind, Config, Gate};
use gate_rules::decide::{train_verdict, GateDecision, Mode, TrainState};
use gate_rules::sequential::SequentialState;
use gate_rules::Decision;
use gate_rules::TrainId;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{interval, interval_at, Instant, Interval, MissedTickBehavior};

use super::metrics::{self, BurnRate};
use super::state::{gate_decisions, is_evaluated, TrainView};
use super::{BlockingError, Shared};
use crate::backoff::Backoff;
use crate::evaluate;
use crate::looks;
use crate::planner::TrainSpec;
use crate::store::{
    EvaluationWrite, Evidence, GateLeg, Lifecycle, NewOutboxEvent, TrainRecord, WriteOutcome,
};
use crate::webhook::{self, DecisionChange};

/// The webhook events announcing a decision change, written in the change's transaction.
pub(crate) fn webhook_events(config: &Config, change: &DecisionChange) -> Vec<NewOutboxEvent> {
    webhook::events_for_change(config, change)
}

/// What one cycle did (for logs and tests).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CycleReport {
    /// Trains evaluated.
    pub evaluated: usize,
    /// Decision changes written: (train, previous, new).
    pub changes: Vec<(TrainId, Decision, Decision)>,
    /// Why the cycle (or its telemetry) failed, if it did.
    pub failure: Option<String>,
}

/// Runs the gate tasks until shutdown, starting a task for each gate in the config and
/// stopping the tasks of gates that a reload removed.
pub(crate) async fn run(shared: Arc<Shared>) {
    struct Task {
        stop: watch::Sender<bool>,
        handle: JoinHandle<()>,
    }
    let mut runtime = shared.runtime.subscribe();
    let mut shutdown = shared.shutdown.subscribe();
    let mut tasks: HashMap<String, Task> = HashMap::new();
    let mut retired: Vec<JoinHandle<()>> = Vec::new();
    loop {
        let config = runtime.borrow_and_update().config.clone();
        // A removed gate's task finishes its cycle in flight; it is awaited at shutdown.
        for name in tasks
            .keys()
            .filter(|name| config.gate(name).is_none())
            .cloned()
            .collect::<Vec<_>>()
        {
            if let Some(task) = tasks.remove(&name) {
                task.stop.send_replace(true);
                retired.push(task.handle);
            }
        }
        for gate in &config.gates {
            if !tasks.contains_key(&gate.name) {
                let (stop, stop_rx) = watch::channel(false);
                let handle =
                    tokio::spawn(gate_task(Arc::clone(&shared), gate.name.clone(), stop_rx));
                tasks.insert(gate.name.clone(), Task { stop, handle });
            }
        }
        retired.retain(|h| !h.is_finished());
        tokio::select! {
            changed = runtime.changed() => if changed.is_err() { break },
            _ = shutdown.wait_for(|down| *down) => break,
        }
    }
    for handle in tasks.into_values().map(|t| t.handle).chain(retired) {
        if let Err(e) = handle.await {
            tracing::error!("a gate task failed: {e}");
        }
    }
}

fn ticker(period: Duration, first: Instant) -> Interval {
    let mut ticker = if first <= Instant::now() {
        interval(period)
    } else {
        interval_at(first, period)
    };
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    ticker
}

/// One gate's loop: a cycle now, then one every `interval`, until stopped or shut down.
async fn gate_task(shared: Arc<Shared>, gate: String, mut stop: watch::Receiver<bool>) {
    let mut runtime = shared.runtime.subscribe();
    let mut shutdown = shared.shutdown.subscribe();
    let interval_of = |rt: &super::Runtime| rt.config.gate(&gate).map(|g| g.interval.as_duration());
    let mut period = interval_of(&runtime.borrow_and_update()).unwrap_or(Duration::from_secs(30));
    let mut ticks = ticker(period, Instant::now());
    let mut role = shared.role.subscribe();
    let mut panics = 0u32;
    loop {
        tokio::select! {
            biased;
            _ = shutdown.wait_for(|down| *down) => break,
            _ = stop.wait_for(|stop| *stop) => break,
            changed = role.changed() => {
                if changed.is_err() {
                    break;
                }
                // A replica that just took the lease evaluates at once, then every period.
                if !role.borrow_and_update().leading {
                    continue;
                }
                ticks = ticker(period, Instant::now() + period);
            }
            changed = runtime.changed() => {
                if changed.is_err() {
                    break;
                }
                // A missing gate keeps its old period; the supervisor stops this task.
                let new = interval_of(&runtime.borrow_and_update());
                if let Some(new) = new.filter(|p| *p != period) {
                    period = new;
                    ticks = ticker(period, Instant::now() + period);
                }
                continue;
            }
            _ = ticks.tick() => {}
        }
        // Only the leader evaluates (see `role.rs`); a follower keeps the beat.
        if !role.borrow_and_update().leading {
            continue;
        }
        // The cycle runs in its own task so that a panic in it is caught here: logged,
        // counted, and the gate evaluates again after a backoff instead of going silent.
        let cycle = tokio::spawn({
            let (shared, gate) = (Arc::clone(&shared), gate.clone());
            async move {
                run_cycle(&shared, &gate).await;
            }
        });
        match cycle.await {
            Ok(()) => panics = 0,
            Err(e) => {
                panics += 1;
                let wait = PANIC_BACKOFF.ceiling(panics);
                let why = panic_message(e);
                tracing::error!(
                    gate,
                    panics,
                    "the evaluation cycle of gate {gate} panicked: {why}; evaluating again in \
                     {wait:?} at the earliest"
                );
                shared.metrics.task_panicked(&gate);
                tokio::select! {
                    _ = shutdown.wait_for(|down| *down) => break,
                    _ = stop.wait_for(|stop| *stop) => break,
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        }
    }
}

/// How long a gate waits after a panicking cycle: doubling with each panic in a row.
const PANIC_BACKOFF: Backoff = Backoff {
    initial: Duration::from_secs(1),
    max: Duration::from_secs(300),
};

fn panic_message(e: tokio::task::JoinError) -> String {
    if !e.is_panic() {
        return e.to_string();
    }
    let payload = e.into_panic();
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_string())
}

/// How often the evaluations that changed no decision are written to the store (see the
/// module docs): at most this much of them is lost to a crash.
pub const CHECKPOINT_EVERY: Duration = Duration::from_secs(60);

/// The most looks the scheduler takes to catch up a train registered long after its start.
const CATCH_UP_LOOKS: usize = 12;
/// Up to this many trains catching up in one cycle take their own looks, one fetch each.
const CATCH_UP_ALONE: usize = 8;
/// The most fetches of trains catching up together (`looks::catch_up_together`).
const CATCH_UP_FETCHES: usize = 48;

/// One evaluation cycle of `gate_name` (see the module docs). `None` when the gate is not
/// configured or has no train to evaluate.
pub async fn run_cycle(shared: &Shared, gate_name: &str) -> Option<CycleReport> {
    #[cfg(test)]
    supervision_tests::inject_panic(gate_name);
    let runtime = shared.runtime();
    let config = &runtime.config;
    let gate = config.gate(gate_name)?;
    let views = shared
        .trains
        .filter(|v| is_evaluated(v.record.lifecycle) && evaluated_by(&v.record, gate_name));
    if views.is_empty() {
        return None;
    }
    let started = std::time::Instant::now();
    let at = gate.evaluation_time(shared.clock.now());
    let specs: Vec<TrainSpec> = views
        .iter()
        .map(|v| TrainSpec {
            id: v.record.id.clone(),
            started_at: v.record.started_at,
            baseline: v.record.baseline.clone(),
        })
        .collect();
    let mut report = CycleReport {
        evaluated: views.len(),
        ..CycleReport::default()
    };
    let n = views.len() as u64;

    // A train evaluated here for the first time long after its start (registered late) takes
    // the looks its anytime-valid tests missed, once, as `gate eval` does: otherwise its whole
    // history would be one look, which can never be significant, and it could promote on
    // verification before its error delta is seen.
    // A few such trains take their own looks (those `gate eval` takes, up to CATCH_UP_LOOKS);
    // more than that at once share a grid of looks fetched in batches.
    let mut seeded: HashMap<TrainId, BTreeMap<String, SequentialState>> = HashMap::new();
    if gate.baseline != BaselineKind::None {
        let late: Vec<TrainSpec> = views
            .iter()
            .zip(&specs)
            .filter(|(view, spec)| {
                gate_state(&view.record, gate_name).decision.is_none()
                    && looks::times(gate, spec, at).len() > 1
            })
            .map(|(_, spec)| spec.clone())
            .collect();
        if late.len() > CATCH_UP_ALONE {
            let together = looks::catch_up_together(
                &runtime.client,
                config,
                gate,
                &late,
                at,
                CATCH_UP_LOOKS,
                CATCH_UP_FETCHES,
            );
            if let Ok(tests) = together.await {
                seeded = tests;
            }
        } else {
            for spec in &late {
                if let Ok(tests) =
                    looks::catch_up(&runtime.client, config, gate, spec, at, CATCH_UP_LOOKS).await
                {
                    seeded.insert(spec.id.clone(), tests);
                }
            }
        }
    }

    let fetched = match evaluate::fetch(&runtime.client, config, gate, &specs, at).await {
        Ok(fetched) => fetched,
        Err(e) => {
            tracing::error!(
                gate = gate_name,
                "cannot plan the queries of gate {gate_name}: {e}"
            );
            shared.metrics.evaluated(gate_name, n, n);
            shared
                .metrics
                .cycle(gate_name, started.elapsed().as_secs_f64());
            report.failure = Some(e.to_string());
            return Some(report);
        }
    };

    // Deciding thousands of trains is CPU work: keep it off the API's async workers.
    let decided = {
        let runtime = Arc::clone(&runtime);
        let gate_name = gate_name.to_string();
        tokio::task::spawn_blocking(move || {
            let gate = runtime.config.gate(&gate_name)?;
            Some(decide_all(
                &runtime.config,
                gate,
                &views,
                &specs,
                &fetched,
                &seeded,
                at,
            ))
        })
        .await
    };
    let Decided {
        writes,
        mut errors,
        failure,
    } = match decided {
        Ok(Some(decided)) => decided,
        Ok(None) => return None,
        Err(e) => {
            tracing::error!(gate = gate_name, "gate {gate_name}: deciding failed: {e}");
            shared.metrics.evaluated(gate_name, n, n);
            report.failure = Some(format!("deciding failed: {e}"));
            return Some(report);
        }
    };
    report.failure = failure;
    if errors > 0 {
        tracing::warn!(
            gate = gate_name,
            "gate {gate_name}: evaluation failed for {errors} of {n} train(s): {}",
            report.failure.as_deref().unwrap_or("unknown error")
        );
    }

    let committed = commit(shared, gate_name, writes, &mut report).await;
    if let Err(e) = committed {
        tracing::error!(
            gate = gate_name,
            "gate {gate_name}: cannot store the cycle: {e}"
        );
        report.failure = Some(e.to_string());
        errors = n;
    }
    shared.metrics.evaluated(gate_name, n, errors);
    shared
        .metrics
        .cycle(gate_name, started.elapsed().as_secs_f64());
    Some(report)
}

/// Whether `gate` evaluates `record` now: its only gate, or one of its gates whose part is
/// still evaluated (a gate's part that is done after its watch is not).
fn evaluated_by(record: &TrainRecord, gate: &str) -> bool {
    if record.gates.is_empty() {
        return record.gate == gate;
    }
    record
        .leg(gate)
        .is_some_and(|leg| is_evaluated(leg.lifecycle))
}

/// What `gate` remembers about `record`: the train's state, or its gate's part's.
fn gate_state<'a>(record: &'a TrainRecord, gate: &str) -> &'a TrainState {
    record.leg(gate).map_or(&record.state, |leg| &leg.state)
}

/// One train's result of a cycle.
enum CycleWrite {
    /// A train of one gate: its evaluation, ready to store.
    Train(Arc<TrainView>, Vec<BurnRate>, EvaluationWrite),
    /// A train of several gates: this gate's new part; the train's verdict is worked out
    /// under the write lock, from the other gates' latest parts.
    Leg(Arc<TrainView>, Vec<BurnRate>, GateLeg),
}

/// The decisions of one cycle: a store write per train.
struct Decided {
    writes: Vec<CycleWrite>,
    /// Trains whose evaluation failed.
    errors: u64,
    /// The first failure.
    failure: Option<String>,
}

/// Decides every train of the cycle from the fetched signals and its stored state.
fn decide_all(
    config: &Config,
    gate: &Gate,
    views: &[Arc<TrainView>],
    specs: &[TrainSpec],
    fetched: &evaluate::Fetched,
    seeded: &HashMap<TrainId, BTreeMap<String, SequentialState>>,
    at: DateTime<Utc>,
) -> Decided {
    let mut failure: Option<String> = None;
    let mut writes = Vec::with_capacity(views.len());
    let mut errors = 0u64;
    for (view, spec) in views.iter().zip(specs) {
        let missing;
        let signals = match fetched.signals.get(&spec.id) {
            Some(s) => s,
            None => {
                missing = Err("no signals were assembled for the train".to_string());
                &missing
            }
        };
        if let Err(msg) = signals {
            errors += 1;
            failure.get_or_insert_with(|| msg.clone());
        }
        let prev = &view.record;
        let caught_up;
        let prev_state = match seeded.get(&spec.id) {
            Some(tests) => {
                let mut state = gate_state(prev, &gate.name).clone();
                state.sequential = tests.clone();
                caught_up = state;
                &caught_up
            }
            None => gate_state(prev, &gate.name),
        };
        let (evaluation, evaluation_report) = evaluate::decide_part(
            config,
            gate,
            spec,
            &fetched.plan,
            signals,
            prev_state,
            Mode::Daemon,
            prev.decision == Decision::Promote,
        );
        let burn_rates = metrics::burn_rates(&evaluation_report.signals);
        let evidence = Evidence::of_report(evaluation_report);
        let lifecycle = lifecycle_after(gate, prev, &evaluation, at);
        if let Some(leg) = prev.leg(&gate.name) {
            writes.push(CycleWrite::Leg(
                Arc::clone(view),
                burn_rates,
                GateLeg {
                    gate: leg.gate.clone(),
                    lifecycle,
                    decision: evaluation.decision,
                    reason: evaluation.reason,
                    rule: evaluation.rule,
                    evaluated_at: Some(at),
                    state: evaluation.state,
                    evaluation: Some(evidence),
                },
            ));
            continue;
        }
        // A gate in dry-run decides and reports, but never notifies.
        let events = if evaluation.decision != prev.decision && !gate.dry_run {
            webhook_events(
                config,
                &DecisionChange {
                    train: prev.id.clone(),
                    gate: prev.gate.clone(),
                    decision: evaluation.decision,
                    previous: prev.decision,
                    reason: evaluation.reason.clone(),
                    rule: evaluation.rule.clone(),
                    evaluated_at: at,
                    seq: prev.seq + 1,
                    evidence: evidence.to_value(),
                    artifact: prev.labels.get("artifact").cloned(),
                    gates: Vec::new(),
                },
            )
        } else {
            Vec::new()
        };
        writes.push(CycleWrite::Train(
            Arc::clone(view),
            burn_rates,
            EvaluationWrite {
                train: prev.id.clone(),
                based_on_seq: prev.seq,
                decision: evaluation.decision,
                reason: evaluation.reason,
                rule: evaluation.rule,
                evaluated_at: at,
                state: evaluation.state,
                evidence,
                lifecycle,
                events,
                gates: None,
            },
        ));
    }
    Decided {
        writes,
        errors,
        failure,
    }
}

/// Writes the cycle's changes in one transaction and defers the rest, then publishes, under
/// the write lock; checkpoints the deferred evaluations when one is due.
async fn commit(
    shared: &Shared,
    gate_name: &str,
    writes: Vec<CycleWrite>,
    report: &mut CycleReport,
) -> Result<(), BlockingError> {
    let _lock = shared.write_lock.lock().await;
    // Under the lock the held views are what the store has: a train of several gates takes
    // its verdict from the latest parts of its other gates.
    let config = shared.runtime().config.clone();
    let mut refresh = Vec::new();
    let writes: Vec<(Arc<TrainView>, Vec<BurnRate>, EvaluationWrite)> = writes
        .into_iter()
        .filter_map(|write| match write {
            CycleWrite::Train(view, rates, write) => Some((view, rates, write)),
            CycleWrite::Leg(view, rates, leg) => {
                let fresh = shared
                    .trains
                    .get(view.id())
                    .unwrap_or_else(|| Arc::clone(&view));
                let decided_from = view.record.leg(gate_name).map(|l| &l.state);
                let unchanged = fresh.record.leg(gate_name).map(|l| &l.state) == decided_from;
                if !unchanged || !is_evaluated(fresh.record.lifecycle) {
                    refresh.push(fresh.record.id.clone());
                    return None;
                }
                let write = train_write(&config, &fresh.record, leg);
                Some((fresh, rates, write))
            }
        })
        .collect();
    let mut now = (Vec::new(), Vec::new());
    let mut deferred = (Vec::new(), Vec::new());
    for (view, rates, write) in writes {
        if changes_what_is_shown(&view.record, &write) {
            now.0.push((view, rates));
            now.1.push(write);
            continue;
        }
        // An evaluation computed before an override, approval or stop of its train is
        // dropped: the held view, published after that write, says so without a store read.
        let current = shared.trains.get(view.id());
        let moved_on = current.is_none_or(|c| {
            c.record.seq != write.based_on_seq || c.record.lifecycle != view.record.lifecycle
        });
        if moved_on {
            continue;
        }
        deferred.0.push((view, rates));
        deferred.1.push(write);
    }
    let (now_views, now_writes) = now;
    let (now_writes, outcomes) = if now_writes.is_empty() {
        (now_writes, Vec::new())
    } else {
        shared
            .blocking(move |store| {
                let outcomes = store.record_evaluations(&now_writes)?;
                Ok((now_writes, outcomes))
            })
            .await?
    };
    let mut queued = false;
    for (((view, rates), write), outcome) in now_views.into_iter().zip(now_writes).zip(outcomes) {
        let prev = &view.record;
        let seq = match outcome {
            WriteOutcome::Unchanged => prev.seq,
            WriteOutcome::Changed { seq } => {
                shared.decision_changed(prev, write.decision, &write.reason, write.evaluated_at);
                report
                    .changes
                    .push((prev.id.clone(), prev.decision, write.decision));
                queued |= !write.events.is_empty();
                seq
            }
            WriteOutcome::Stale { .. } | WriteOutcome::Stopped | WriteOutcome::UnknownTrain => {
                refresh.push(prev.id.clone());
                continue;
            }
        };
        shared.publish_evaluated(TrainView::new(apply(prev, &write, seq)), &rates);
    }
    let (deferred_views, deferred_writes) = deferred;
    // Each train's previous view is let go as its new one is published, not at the end.
    for ((view, rates), write) in deferred_views.into_iter().zip(&deferred_writes) {
        let prev = &view.record;
        shared.publish_evaluated(TrainView::new(apply(prev, write, prev.seq)), &rates);
    }
    let now = shared.clock.now();
    shared.store.defer_evaluations(deferred_writes, now);
    if queued {
        shared.nudge_webhooks();
    }
    let due = shared.store.deferred_since().is_some_and(|since| {
        chrono::Duration::from_std(CHECKPOINT_EVERY).is_ok_and(|every| now - since >= every)
    });
    if due {
        let done = shared.blocking(|store| store.checkpoint()).await?;
        tracing::debug!(
            written = done.written,
            skipped = done.skipped,
            "checkpointed the evaluations that changed no decision"
        );
    }
    if !refresh.is_empty() {
        let records = shared
            .blocking(move |store| {
                refresh
                    .iter()
                    .map(|id| store.train(id))
                    .collect::<Result<Vec<_>, _>>()
            })
            .await?;
        for record in records.into_iter().flatten() {
            shared.publish(TrainView::new(record));
        }
    }
    Ok(())
}

/// Whether `write` changes what the decision endpoint and webhooks show of `prev` — decision
/// (with its webhook events), lifecycle, rule, or a gate's decision, lifecycle or rule for a
/// train of several gates — and so is committed before it is published. Otherwise it only
/// moves the latest evaluation and is deferred.
fn changes_what_is_shown(prev: &TrainRecord, write: &EvaluationWrite) -> bool {
    let legs_moved = write.gates.as_ref().is_some_and(|legs| {
        legs.len() != prev.gates.len()
            || legs.iter().zip(&prev.gates).any(|(new, old)| {
                (new.decision, new.lifecycle, &new.rule) != (old.decision, old.lifecycle, &old.rule)
            })
    });
    write.decision != prev.decision
        || write.lifecycle != prev.lifecycle
        || write.rule != prev.rule
        || !write.events.is_empty()
        || legs_moved
}

/// The lifecycle state after `evaluation` at `at`.
fn lifecycle_after(
    gate: &Gate,
    prev: &TrainRecord,
    evaluation: &gate_rules::decide::Evaluation,
    at: DateTime<Utc>,
) -> Lifecycle {
    lifecycle_for(gate, prev.decision, prev.promoted_at, evaluation, at)
}

/// The lifecycle state of a train that was `previous` (promoted at `promoted_at`, if it was)
/// after `evaluation` at `at`: the daemon's rule, which `gate replay` follows too. A promoted
/// train's watch ends (`done`) at the first evaluation at or after `watch_for` that
/// *succeeded*: on a telemetry failure the last stretch of the watch was not seen, so the
/// train stays watched until an evaluation sees it.
pub(crate) fn lifecycle_for(
    gate: &Gate,
    previous: Decision,
    promoted_at: Option<DateTime<Utc>>,
    evaluation: &gate_rules::decide::Evaluation,
    at: DateTime<Utc>,
) -> Lifecycle {
    let seen = evaluation.telemetry_error.is_none();
    match evaluation.decision {
        Decision::Pending => Lifecycle::Verifying,
        Decision::Pause => Lifecycle::Paused,
        Decision::Rollback => Lifecycle::RolledBack,
        Decision::Promote => {
            let since = match (previous, promoted_at) {
                (Decision::Promote, Some(promoted_at)) => promoted_at,
                _ => at,
            };
            let watch = chrono::Duration::from_std(gate.watch_for.as_duration())
                .unwrap_or(chrono::Duration::MAX);
            match since.checked_add_signed(watch) {
                Some(end) if at >= end && seen => Lifecycle::Done,
                _ => Lifecycle::Promoted,
            }
        }
    }
}

/// The record after `write` was stored (or deferred) with `seq`: the same columns the store
/// updates.
fn apply(prev: &TrainRecord, write: &EvaluationWrite, seq: u64) -> TrainRecord {
    let newly_promoted = write.decision == Decision::Promote && prev.decision != Decision::Promote;
    TrainRecord {
        id: prev.id.clone(),
        gate: prev.gate.clone(),
        started_at: prev.started_at,
        baseline: prev.baseline.clone(),
        labels: prev.labels.clone(),
        lifecycle: write.lifecycle,
        decision: write.decision,
        seq,
        reason: write.reason.clone(),
        rule: write.rule.clone(),
        evaluated_at: Some(write.evaluated_at),
        state: write.state.clone(),
        evaluation: Some(write.evidence.clone()),
        registered_at: prev.registered_at,
        promoted_at: if newly_promoted {
            Some(write.evaluated_at)
        } else {
            prev.promoted_at
        },
        stopped_at: prev.stopped_at,
        gates: write.gates.clone().unwrap_or_else(|| prev.gates.clone()),
    }
}

/// The write of a train of several gates after one gate's new `leg`: the other gates' parts
/// as they are, the train's verdict over all of them (the most severe), and the webhook events
/// when the verdict changed. The train's evidence is the deciding gate's latest evaluation.
fn train_write(config: &Config, prev: &TrainRecord, leg: GateLeg) -> EvaluationWrite {
    let at = leg.evaluated_at.unwrap_or(prev.registered_at);
    let fallback = leg.evaluation.clone();
    let legs: Vec<GateLeg> = prev
        .gates
        .iter()
        .map(|l| {
            if l.gate == leg.gate {
                leg.clone()
            } else {
                l.clone()
            }
        })
        .collect();
    let decisions: Vec<GateDecision<'_>> = legs
        .iter()
        .map(|l| GateDecision {
            gate: &l.gate,
            decision: l.decision,
            reason: &l.reason,
            rule: l.rule.as_deref(),
        })
        .collect();
    let verdict = train_verdict(&decisions);
    let deciding = &legs[verdict.deciding.min(legs.len() - 1)];
    let evidence = deciding
        .evaluation
        .clone()
        .or(fallback)
        .unwrap_or_else(|| Evidence::encode(&serde_json::Value::Null).expect("null is JSON"));
    let lifecycle = match verdict.decision {
        Decision::Pending => Lifecycle::Verifying,
        Decision::Pause => Lifecycle::Paused,
        Decision::Rollback => Lifecycle::RolledBack,
        Decision::Promote if legs.iter().all(|l| l.lifecycle == Lifecycle::Done) => Lifecycle::Done,
        Decision::Promote => Lifecycle::Promoted,
    };
    // A gate in dry-run decides and reports, but never notifies: nor does a train it decides.
    let dry_run = config.gate(&deciding.gate).is_some_and(|g| g.dry_run);
    let events = if verdict.decision != prev.decision && !dry_run {
        webhook_events(
            config,
            &DecisionChange {
                train: prev.id.clone(),
                gate: prev.gate.clone(),
                decision: verdict.decision,
                previous: prev.decision,
                reason: verdict.reason.clone(),
                rule: verdict.rule.clone(),
                evaluated_at: at,
                seq: prev.seq + 1,
                evidence: evidence.to_value(),
                artifact: prev.labels.get("artifact").cloned(),
                gates: gate_decisions(&legs),
            },
        )
    } else {
        Vec::new()
    };
    let mut state = prev.state.clone();
    state.decision = Some(verdict.decision);
    EvaluationWrite {
        train: prev.id.clone(),
        based_on_seq: prev.seq,
        decision: verdict.decision,
        reason: verdict.reason,
        rule: verdict.rule,
        evaluated_at: at,
        state,
        evidence,
        lifecycle,
        events,
        gates: Some(legs),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::daemon::tests::{config_yaml, fake_prometheus, harness, t0, tid, FakeData, Harness};
    use crate::daemon::ApiOptions;

    /// `POST /v1/trains` of `id` in gate `checkout`, started at `started_at`.
    async fn post_train(
        h: &Harness,
        id: &str,
        started_at: DateTime<Utc>,
    ) -> (axum::http::StatusCode, serde_json::Value) {
        let started = crate::report::format_time(started_at);
        let body = json!({"id": id, "gate": "checkout", "started_at": started});
        h.call("POST", "/v1/trains", Some(body), None).await
    }

    async fn register(h: &Harness, id: &str, started_secs_before_t0: i64) {
        let started = t0() - chrono::Duration::seconds(started_secs_before_t0);
        let (status, body) = post_train(h, id, started).await;
        assert!(status.is_success(), "{body}");
    }

    fn view(h: &Harness, id: &str) -> Arc<TrainView> {
        h.shared().trains.get(&tid(id)).unwrap()
    }

    /// A harness over [`FakeData`] whose gate `checkout` also has `field` (`name: value`).
    async fn harness_with_gate_field(field: &str) -> (FakeData, wiremock::MockServer, Harness) {
        let data = FakeData::default();
        let server = fake_prometheus(&data).await;
        let yaml = config_yaml(&server.uri()).replace(
            "    interval: 30s\n",
            &format!("    interval: 30s\n    {field}\n"),
        );
        let h = harness(&yaml, ApiOptions::default()).await;
        (data, server, h)
    }

    /// The kinds of the train's audit-trail events, in order.
    async fn event_kinds(h: &Harness, id: &str) -> Vec<String> {
        let key = tid(id);
        let events = h.shared().blocking(move |s| s.events(&key)).await.unwrap();
        events
            .iter()
            .map(|e| {
                serde_json::to_value(e).unwrap()["kind"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    }

    /// The memory view equals what the store holds.
    async fn assert_mirrors_store(h: &Harness, id: &str) {
        let key = tid(id);
        let stored = h
            .shared()
            .blocking(move |s| s.train(&key))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(view(h, id).record, stored);
    }

    /// The train's `evaluated_at` as committed to the file, read past the daemon's store.
    fn committed_evaluated_at(h: &Harness, id: &str) -> Option<i64> {
        rusqlite::Connection::open(h.dir.path().join("gate.db"))
            .unwrap()
            .query_row("SELECT evaluated_at FROM trains WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .unwrap()
    }

    #[tokio::test]
    async fn a_cycle_that_changes_no_decision_writes_nothing_until_the_checkpoint() {
        let data = FakeData::default();
        let server = fake_prometheus(&data).await;
        let h = harness(&config_yaml(&server.uri()), ApiOptions::default()).await;
        register(&h, "t-1", 60).await;
        data.set("t-1", 0.0, 1_000.0);
        let store = h.shared().store.clone();
        let changes = store.total_changes();
        for _ in 0..2 {
            let report = run_cycle(h.shared(), "checkout").await.unwrap();
            assert_eq!((report.evaluated, report.failure), (1, None));
            assert!(report.changes.is_empty(), "{:?}", report.changes);
            assert_eq!(
                store.total_changes(),
                changes,
                "a cycle that changes no decision writes no row"
            );
            h.clock.advance(Duration::from_secs(30));
        }
        let shown = view(&h, "t-1");
        assert_eq!(shown.record.decision, Decision::Pending);
        assert_eq!(
            shown.record.evaluated_at,
            Some(t0() + chrono::Duration::seconds(30))
        );
        assert!(shown.record.evaluation.is_some());
        assert_eq!(committed_evaluated_at(&h, "t-1"), None);
        // Read back in the daemon, the store has what the API shows.
        assert_mirrors_store(&h, "t-1").await;

        // A minute after the first deferred evaluation, the cycle checkpoints: one row.
        run_cycle(h.shared(), "checkout").await.unwrap();
        assert_eq!(store.total_changes(), changes + 1);
        assert_eq!(
            committed_evaluated_at(&h, "t-1"),
            Some((t0() + chrono::Duration::seconds(60)).timestamp_millis())
        );
        assert_eq!(store.deferred_len(), 0);
        assert_mirrors_store(&h, "t-1").await;
    }

    #[tokio::test]
    async fn shutdown_writes_the_deferred_evaluations() {
        let data = FakeData::default();
        let server = fake_prometheus(&data).await;
        let h = harness(&config_yaml(&server.uri()), ApiOptions::default()).await;
        register(&h, "t-1", 60).await;
        data.set("t-1", 0.0, 1_000.0);
        run_cycle(h.shared(), "checkout").await.unwrap();
        assert_eq!(committed_evaluated_at(&h, "t-1"), None);
        h.daemon.shutdown().await;
        assert_eq!(
            committed_evaluated_at(&h, "t-1"),
            Some(t0().timestamp_millis())
        );
    }

    #[tokio::test]
    async fn one_cycle_for_many_trains_sends_the_queries_of_one() {
        let data = FakeData::default();
        let server = fake_prometheus(&data).await;
        let h = harness(&config_yaml(&server.uri()), ApiOptions::default()).await;
        register(&h, "t-0", 3600).await;
        data.set("t-0", 1.0, 10_000.0);
        let report = run_cycle(h.shared(), "checkout").await.unwrap();
        assert_eq!(report.evaluated, 1);
        let for_one = server.received_requests().await.unwrap().len();
        assert!(for_one > 0);

        for i in 1..50 {
            let id = format!("t-{i}");
            register(&h, &id, 3600).await;
            data.set(&id, 1.0, 10_000.0);
        }
        let report = run_cycle(h.shared(), "checkout").await.unwrap();
        assert_eq!(report.evaluated, 50);
        assert_eq!(report.failure, None);
        let for_fifty = server.received_requests().await.unwrap().len() - for_one;
        assert_eq!(for_fifty, for_one, "50 trains cost the queries of 1");
        for i in 0..50 {
            assert!(view(&h, &format!("t-{i}")).record.evaluated_at.is_some());
        }
    }

    #[tokio::test]
    async fn a_healthy_train_promotes_after_verify_for_then_is_done_after_watch_for() {
        let data = FakeData::default();
        let server = fake_prometheus(&data).await;
        let h = harness(&config_yaml(&server.uri()), ApiOptions::default()).await;
        register(&h, "t-ok", 60).await; // started 1 min before t0; verify_for is 10m
        data.set("t-ok", 1.0, 10_000.0); // 0.01 % errors: burn 0.01

        let report = run_cycle(h.shared(), "checkout").await.unwrap();
        assert!(report.changes.is_empty(), "{report:?}");
        let v = view(&h, "t-ok");
        assert_eq!((v.record.decision, v.record.seq), (Decision::Pending, 0));
        assert_eq!(v.record.evaluated_at, Some(t0()));
        let evaluation = v.record.evaluation.as_ref().unwrap().to_value();
        assert_eq!(evaluation["decision"], "pending");
        assert_eq!(evaluation["train"], "t-ok");
        assert_mirrors_store(&h, "t-ok").await;

        h.clock.advance(Duration::from_secs(10 * 60));
        let report = run_cycle(h.shared(), "checkout").await.unwrap();
        assert_eq!(
            report.changes,
            vec![(tid("t-ok"), Decision::Pending, Decision::Promote)]
        );
        let v = view(&h, "t-ok");
        assert_eq!(v.record.seq, 1);
        assert_eq!(v.record.lifecycle, Lifecycle::Promoted);
        let promoted_at = t0() + chrono::Duration::minutes(10);
        assert_eq!(v.record.promoted_at, Some(promoted_at));
        assert_mirrors_store(&h, "t-ok").await;

        // Watched for watch_for (1h) after the promotion, then done.
        h.clock.advance(Duration::from_secs(59 * 60));
        run_cycle(h.shared(), "checkout").await.unwrap();
        assert_eq!(view(&h, "t-ok").record.lifecycle, Lifecycle::Promoted);
        h.clock.advance(Duration::from_secs(60));
        let report = run_cycle(h.shared(), "checkout").await.unwrap();
        assert!(report.changes.is_empty());
        let v = view(&h, "t-ok");
        assert_eq!(v.record.lifecycle, Lifecycle::Done);
        assert_eq!((v.record.decision, v.record.seq), (Decision::Promote, 1));
        assert_mirrors_store(&h, "t-ok").await;
        assert!(
            run_cycle(h.shared(), "checkout").await.is_none(),
            "a done train is no longer evaluated"
        );
    }

    /// [`FakeData`] that answers 500 while `failing` is set.
    #[derive(Clone)]
    struct Flaky {
        data: FakeData,
        failing: Arc<std::sync::atomic::AtomicBool>,
    }

    impl wiremock::Respond for Flaky {
        fn respond(&self, request: &wiremock::Request) -> wiremock::ResponseTemplate {
            if self.failing.load(std::sync::atomic::Ordering::SeqCst) {
                wiremock::ResponseTemplate::new(500).set_body_string("down")
            } else {
                self.data.respond(request)
            }
        }
    }

    #[tokio::test]
    async fn the_watch_ends_only_at_an_evaluation_that_succeeded() {
        let flaky = Flaky {
            data: FakeData::default(),
            failing: Arc::default(),
        };
        let server = wiremock::MockServer::start().await;
        wiremock::Mock::given(wiremock::matchers::method("POST"))
            .respond_with(flaky.clone())
            .mount(&server)
            .await;
        let h = harness(&config_yaml(&server.uri()), ApiOptions::default()).await;
        register(&h, "t-ok", 600).await; // verify_for (10m) is over at t0
        flaky.data.set("t-ok", 1.0, 10_000.0);
        let report = run_cycle(h.shared(), "checkout").await.unwrap();
        assert_eq!(
            report.changes,
            vec![(tid("t-ok"), Decision::Pending, Decision::Promote)]
        );

        // watch_for (1h) has passed, but Prometheus is down: the end was not seen.
        h.clock.advance(Duration::from_secs(3600));
        flaky
            .failing
            .store(true, std::sync::atomic::Ordering::SeqCst);
        for _ in 0..4 {
            let report = run_cycle(h.shared(), "checkout").await.unwrap();
            assert!(report.failure.is_some(), "{report:?}");
            let v = view(&h, "t-ok");
            assert_eq!(v.record.lifecycle, Lifecycle::Promoted);
            assert_eq!(v.record.decision, Decision::Promote);
            h.clock.advance(Duration::from_secs(30));
        }
        assert_mirrors_store(&h, "t-ok").await;

        flaky
            .failing
            .store(false, std::sync::atomic::Ordering::SeqCst);
        let report = run_cycle(h.shared(), "checkout").await.unwrap();
        assert_eq!(report.failure, None);
        assert_eq!(view(&h, "t-ok").record.lifecycle, Lifecycle::Done);
        assert_mirrors_store(&h, "t-ok").await;
    }

    #[tokio::test]
    async fn a_fast_burn_rolls_back_once_and_the_rollback_is_latched() {
        let data = FakeData::default();
        let server = fake_prometheus(&data).await;
        let h = harness(&config_yaml(&server.uri()), ApiOptions::default()).await;
        register(&h, "t-bad", 1800).await;
        register(&h, "t-ok", 60).await; // still verifying
        data.set("t-bad", 2_000.0, 10_000.0); // 20 % errors, objective 99: burn 20
        data.set("t-ok", 1.0, 10_000.0);

        let report = run_cycle(h.shared(), "checkout").await.unwrap();
        assert_eq!(
            report.changes,
            vec![(tid("t-bad"), Decision::Pending, Decision::Rollback)]
        );
        let v = view(&h, "t-bad");
        assert_eq!(v.record.lifecycle, Lifecycle::RolledBack);
        assert_eq!(v.record.rule.as_deref(), Some("fast-burn"));
        assert!(v.record.reason.contains("fast-burn"), "{}", v.record.reason);
        assert_mirrors_store(&h, "t-bad").await;

        // The change and its webhook event are in the audit trail.
        assert_eq!(
            event_kinds(&h, "t-bad").await,
            ["registered", "decision", "delivery"]
        );

        // Only the healthy train is evaluated from now on.
        data.set("t-bad", 0.0, 10_000.0);
        let report = run_cycle(h.shared(), "checkout").await.unwrap();
        assert_eq!(report.evaluated, 1);
        assert_eq!(view(&h, "t-bad").record.seq, 1);
    }

    #[tokio::test]
    async fn failing_telemetry_pauses_after_max_consecutive_errors() {
        let server = wiremock::MockServer::start().await;
        wiremock::Mock::given(wiremock::matchers::any())
            .respond_with(wiremock::ResponseTemplate::new(500).set_body_string("boom"))
            .mount(&server)
            .await;
        let h = harness(&config_yaml(&server.uri()), ApiOptions::default()).await;
        register(&h, "t-1", 60).await;
        for expected in 1..=2 {
            let report = run_cycle(h.shared(), "checkout").await.unwrap();
            assert!(
                report.failure.as_deref().unwrap().contains("500"),
                "{report:?}"
            );
            let v = view(&h, "t-1");
            assert_eq!(v.record.decision, Decision::Pending);
            assert_eq!(v.record.state.consecutive_errors, expected);
        }
        let report = run_cycle(h.shared(), "checkout").await.unwrap();
        assert_eq!(
            report.changes,
            vec![(tid("t-1"), Decision::Pending, Decision::Pause)]
        );
        let v = view(&h, "t-1");
        assert!(
            v.record.reason.starts_with("telemetry unavailable"),
            "{}",
            v.record.reason
        );
        assert_eq!(v.record.lifecycle, Lifecycle::Paused);
        assert_mirrors_store(&h, "t-1").await;

        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &h.shared().registry).unwrap();
        assert!(
            text.contains("gate_evaluation_errors_total{gate=\"checkout\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("gate_prometheus_queries_total{outcome=\"http_error\"}"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn an_evaluation_that_raced_an_override_does_not_overwrite_it() {
        let data = FakeData::default();
        let server = wiremock::MockServer::start().await;
        wiremock::Mock::given(wiremock::matchers::method("POST"))
            .respond_with(SlowData(data.clone()))
            .mount(&server)
            .await;
        let h = harness(&config_yaml(&server.uri()), ApiOptions::default()).await;
        register(&h, "t-1", 1800).await;
        data.set("t-1", 2_000.0, 10_000.0); // would roll back

        let shared = Arc::clone(h.shared());
        let cycle = tokio::spawn(async move { run_cycle(&shared, "checkout").await });
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while server.received_requests().await.unwrap().is_empty() {
            assert!(std::time::Instant::now() < deadline, "no query arrived");
            tokio::task::yield_now().await;
        }
        let (status, _) = h
            .call(
                "POST",
                "/v1/trains/t-1/override",
                Some(json!({"decision": "promote", "reason": "known noisy canary", "actor": "carol"})),
                None,
            )
            .await;
        assert_eq!(status, axum::http::StatusCode::OK);
        let report = cycle.await.unwrap().unwrap();
        assert!(
            report.changes.is_empty(),
            "the stale write was skipped: {report:?}"
        );
        let v = view(&h, "t-1");
        assert_eq!((v.record.decision, v.record.seq), (Decision::Promote, 1));
        assert_eq!(v.record.state.pinned, Some(Decision::Promote));
        assert_mirrors_store(&h, "t-1").await;

        // The next cycle starts from the override: pinned, it stays promoted.
        let report = run_cycle(h.shared(), "checkout").await.unwrap();
        assert!(report.changes.is_empty());
        let v = view(&h, "t-1");
        assert_eq!(v.record.decision, Decision::Promote);
        assert!(
            v.record.reason.starts_with("override: promote"),
            "{}",
            v.record.reason
        );
    }

    #[tokio::test]
    async fn a_rollback_that_newly_holds_breaks_a_promote_override_and_is_announced() {
        let data = FakeData::default();
        let server = fake_prometheus(&data).await;
        let h = harness(&config_yaml(&server.uri()), ApiOptions::default()).await;
        register(&h, "t-1", 1800).await;
        data.set("t-1", 2_000.0, 10_000.0); // fast-burn holds
        let (status, body) = h
            .call(
                "POST",
                "/v1/trains/t-1/override",
                Some(json!({"decision": "promote", "reason": "known noisy canary", "actor": "carol"})),
                None,
            )
            .await;
        assert_eq!(status, axum::http::StatusCode::OK, "{body}");

        // The rollback the operator overrode: the pin stands.
        let report = run_cycle(h.shared(), "checkout").await.unwrap();
        assert!(report.changes.is_empty(), "{report:?}");
        data.set("t-1", 1.0, 10_000.0);
        let report = run_cycle(h.shared(), "checkout").await.unwrap();
        assert!(report.changes.is_empty(), "{report:?}");

        // fast-burn was false since the override: it now holds anew and breaks the pin.
        h.clock.advance(Duration::from_secs(30));
        data.set("t-1", 2_000.0, 10_000.0);
        let report = run_cycle(h.shared(), "checkout").await.unwrap();
        assert_eq!(
            report.changes,
            vec![(tid("t-1"), Decision::Promote, Decision::Rollback)]
        );
        let v = view(&h, "t-1");
        assert_eq!(v.record.lifecycle, Lifecycle::RolledBack);
        assert_eq!(v.record.state.pinned, None);
        assert_eq!(v.record.rule.as_deref(), Some("fast-burn"));
        assert!(
            v.record
                .reason
                .contains("override promote by carol: known noisy canary"),
            "{}",
            v.record.reason
        );
        assert_mirrors_store(&h, "t-1").await;

        assert_eq!(
            event_kinds(&h, "t-1").await,
            ["registered", "override", "delivery", "decision", "delivery"],
            "the override and the rollback each queued a webhook"
        );
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &h.shared().registry).unwrap();
        assert!(
            text.contains("gate_decisions_total{gate=\"checkout\",decision=\"rollback\"} 1"),
            "{text}"
        );
        assert!(
            run_cycle(h.shared(), "checkout").await.is_none(),
            "a rolled-back train is no longer evaluated"
        );
    }

    #[tokio::test]
    async fn a_start_in_the_future_or_beyond_max_train_age_is_refused_and_never_evaluated() {
        let (data, _server, h) = harness_with_gate_field("max_train_age: 1d").await;
        let at = |secs: i64| t0() + chrono::Duration::seconds(secs);
        for (id, started, refused) in [
            ("t-ahead", at(61), Some("started_at_in_future")),
            ("t-stale", at(-86_401), Some("started_at_too_old")),
            // Within a minute of skew and within max_train_age: registered.
            ("t-skewed", at(60), None),
            ("t-old", at(-86_400), None),
        ] {
            let (status, body) = post_train(&h, id, started).await;
            match refused {
                Some(code) => {
                    assert_eq!(status.as_u16(), 422, "{id}: {body}");
                    assert_eq!(body["error"]["code"], code, "{body}");
                    assert!(h.shared().trains.get(&tid(id)).is_none());
                }
                None => assert!(status.is_success(), "{id}: {body}"),
            }
        }
        data.set("t-skewed", 0.0, 0.0);
        data.set("t-old", 1.0, 10_000.0);
        let report = run_cycle(h.shared(), "checkout").await.unwrap();
        assert_eq!(report.evaluated, 2);
    }

    #[tokio::test]
    async fn a_gate_with_an_evaluation_delay_evaluates_that_far_behind_the_clock() {
        let (data, server, h) = harness_with_gate_field("evaluation_delay: 2m").await;
        register(&h, "t-1", 600).await;
        data.set("t-1", 1.0, 10_000.0);
        run_cycle(h.shared(), "checkout").await.unwrap();
        let at = t0() - chrono::Duration::minutes(2);
        let v = view(&h, "t-1");
        assert_eq!(v.record.evaluated_at, Some(at));
        // 8 minutes old at the evaluation time: still verifying (verify_for 10m).
        assert_eq!(v.record.decision, Decision::Pending, "{}", v.record.reason);
        let requests = server.received_requests().await.unwrap();
        assert!(!requests.is_empty());
        for request in &requests {
            let time = crate::daemon::tests::form_value(&request.body, "time").unwrap();
            assert_eq!(
                time.parse::<f64>().unwrap(),
                at.timestamp() as f64,
                "{time}"
            );
        }
        h.clock.advance(Duration::from_secs(120));
        run_cycle(h.shared(), "checkout").await.unwrap();
        assert_eq!(view(&h, "t-1").record.decision, Decision::Promote);
    }

    /// [`FakeData`] answering after a delay, so that an override can land mid-cycle.
    struct SlowData(FakeData);

    impl wiremock::Respond for SlowData {
        fn respond(&self, request: &wiremock::Request) -> wiremock::ResponseTemplate {
            self.0
                .respond(request)
                .set_delay(Duration::from_millis(300))
        }
    }

    #[tokio::test(start_paused = true)]
    async fn gate_tasks_tick_at_their_interval_and_stop_on_shutdown() {
        // Nothing listens on port 9: every cycle fails fast, and counts.
        let h = harness(&config_yaml("http://127.0.0.1:9"), ApiOptions::default()).await;
        register(&h, "t-1", 60).await;
        h.daemon.spawn_scheduler();
        let errors = || view(&h, "t-1").record.state.consecutive_errors;
        // A cycle at once, then one every 30 s.
        for expected in 1..=3u32 {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(29);
            while errors() < expected {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "cycle {expected} did not come"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            assert_eq!(errors(), expected, "one cycle per interval");
            if expected < 3 {
                tokio::time::sleep(Duration::from_secs(25)).await;
                assert_eq!(errors(), expected, "no cycle before the interval");
            }
        }
        h.daemon.shutdown().await;
        let after = errors();
        tokio::time::sleep(Duration::from_secs(120)).await;
        assert_eq!(errors(), after, "no cycle after shutdown");
    }

    #[tokio::test(start_paused = true)]
    async fn a_reload_that_changes_the_interval_retimes_the_gate_task() {
        let h = harness(&config_yaml("http://127.0.0.1:9"), ApiOptions::default()).await;
        register(&h, "t-1", 60).await;
        h.daemon.spawn_scheduler();
        let errors = || view(&h, "t-1").record.state.consecutive_errors;
        while errors() < 1 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let faster = config_yaml("http://127.0.0.1:9").replace("interval: 30s", "interval: 5s");
        std::fs::write(h.config_path(), faster).unwrap();
        h.daemon.reload().await.unwrap();
        let start = tokio::time::Instant::now();
        while errors() < 3 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{:?}",
            start.elapsed()
        );
        h.daemon.shutdown().await;
    }
}

#[cfg(test)]
mod shutdown_tests {
    use std::time::Duration;

    use serde_json::json;

    use crate::daemon::tests::{config_yaml, harness, tid, FakeData, Harness};
    use crate::daemon::ApiOptions;

    /// [`FakeData`] answering after a delay: a cycle is surely in flight when shutdown begins.
    struct Slow(FakeData);

    impl wiremock::Respond for Slow {
        fn respond(&self, request: &wiremock::Request) -> wiremock::ResponseTemplate {
            self.0
                .respond(request)
                .set_delay(Duration::from_millis(500))
        }
    }

    /// A daemon whose first cycle (of train `t-1`, gate `checkout`, rolling back) is in
    /// flight, with the Prometheus it queries.
    async fn cycle_in_flight() -> (Harness, wiremock::MockServer) {
        let data = FakeData::default();
        let server = wiremock::MockServer::start().await;
        wiremock::Mock::given(wiremock::matchers::method("POST"))
            .respond_with(Slow(data.clone()))
            .mount(&server)
            .await;
        let h = harness(&config_yaml(&server.uri()), ApiOptions::default()).await;
        let (status, _) = h
            .call(
                "POST",
                "/v1/trains",
                Some(
                    json!({"id": "t-1", "gate": "checkout", "started_at": "2026-11-01T11:30:00Z"}),
                ),
                None,
            )
            .await;
        assert!(status.is_success());
        data.set("t-1", 2_000.0, 10_000.0);
        h.daemon.spawn_scheduler();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while server.received_requests().await.unwrap().is_empty() {
            assert!(std::time::Instant::now() < deadline, "no cycle started");
            tokio::task::yield_now().await;
        }
        (h, server)
    }

    #[tokio::test]
    async fn shutdown_lets_the_cycle_in_flight_commit() {
        let (h, _server) = cycle_in_flight().await;
        h.daemon.shutdown().await;
        let stored = h
            .shared()
            .blocking(|s| s.train(&tid("t-1")))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            stored.decision,
            gate_rules::Decision::Rollback,
            "{stored:?}"
        );
        assert_eq!(stored.seq, 1);
        assert_eq!(h.shared().trains.get(&tid("t-1")).unwrap().record, stored);
    }

    #[tokio::test]
    async fn the_cycle_of_a_gate_removed_by_a_reload_commits_before_shutdown_returns() {
        let (h, server) = cycle_in_flight().await;
        let renamed = config_yaml(&server.uri()).replace("name: checkout", "name: search");
        std::fs::write(h.config_path(), renamed).unwrap();
        h.daemon.reload().await.unwrap();
        h.daemon.shutdown().await;
        let stored = h
            .shared()
            .blocking(|s| s.train(&tid("t-1")))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.seq, 1, "the cycle in flight committed: {stored:?}");
    }
}

#[cfg(test)]
mod scale_tests {
    use std::time::{Duration, Instant};

    use crate::daemon::tests::{config_yaml, fake_prometheus, harness, t0, tid, FakeData};
    use crate::daemon::{ApiOptions, TrainView};
    use crate::store::NewTrain;

    /// How long one cycle over many trains takes, and that it sends the queries of one.
    /// Run by hand: `cargo test -p gate-engine --lib scale_tests -- --ignored --nocapture`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "a measurement, not a check; run by hand"]
    async fn one_cycle_over_ten_thousand_trains() {
        let n: usize = std::env::var("GATE_SCALE_TRAINS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(10_000);
        let data = FakeData::default();
        let server = fake_prometheus(&data).await;
        let h = harness(&config_yaml(&server.uri()), ApiOptions::default()).await;
        let registered = Instant::now();
        let ids: Vec<String> = (0..n).map(|i| format!("t-{i}")).collect();
        let records = h
            .shared()
            .blocking(move |store| {
                ids.iter()
                    .map(|id| {
                        store
                            .register(
                                &NewTrain {
                                    id: tid(id),
                                    gate: "checkout".into(),
                                    gates: Vec::new(),
                                    started_at: Some(t0() - chrono::Duration::minutes(30)),
                                    baseline: None,
                                    labels: Default::default(),
                                },
                                t0(),
                            )
                            .map(|r| r.record().clone())
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .await
            .unwrap();
        for record in records {
            data.set(record.id.as_str(), 1.0, 10_000.0);
            h.shared().publish(TrainView::new(record));
        }
        println!("registered {n} trains in {:?}", registered.elapsed());

        for round in 0..2 {
            let before = server.received_requests().await.unwrap().len();
            let started = Instant::now();
            let report = super::run_cycle(h.shared(), "checkout").await.unwrap();
            let took = started.elapsed();
            let queries = server.received_requests().await.unwrap().len() - before;
            assert_eq!(report.evaluated, n);
            assert_eq!(report.failure, None);
            println!(
                "cycle {round}: {n} trains, {queries} queries, {took:?}, {} changes",
                report.changes.len()
            );
            h.clock.advance(Duration::from_secs(30));
        }
    }
}

#[cfg(test)]
pub(crate) mod supervision_tests {
    use std::collections::HashMap;
    use std::sync::Mutex;
    use std::time::Duration;

    use serde_json::json;

    use crate::daemon::tests::{config_yaml, harness, tid};
    use crate::daemon::ApiOptions;

    /// Gates whose next cycles panic, with how many of them do.
    static PANICS: Mutex<Option<HashMap<String, u32>>> = Mutex::new(None);

    /// Panics when a panic is queued for `gate`.
    pub(crate) fn inject_panic(gate: &str) {
        let mut panics = PANICS.lock().unwrap_or_else(|p| p.into_inner());
        let left = panics
            .get_or_insert_with(HashMap::new)
            .entry(gate.to_string())
            .or_default();
        if *left > 0 {
            *left -= 1;
            drop(panics);
            panic!("injected panic in gate {gate}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_panicking_cycle_is_counted_and_the_gate_evaluates_again() {
        // Its own gate name: the injected panics touch no other test's gate.
        let yaml = config_yaml("http://127.0.0.1:9").replace("name: checkout", "name: panicky");
        let h = harness(&yaml, ApiOptions::default()).await;
        let (status, body) = h
            .call(
                "POST",
                "/v1/trains",
                Some(json!({"id": "t-1", "gate": "panicky", "started_at": "2026-11-01T11:00:00Z"})),
                None,
            )
            .await;
        assert!(status.is_success(), "{body}");
        PANICS
            .lock()
            .unwrap()
            .get_or_insert_with(HashMap::new)
            .insert("panicky".into(), 2);
        h.daemon.spawn_scheduler();
        // Two cycles panic; the third runs (and fails: nothing listens on port 9).
        let errors = || {
            h.shared()
                .trains
                .get(&tid("t-1"))
                .unwrap()
                .record
                .state
                .consecutive_errors
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
        while errors() < 1 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the gate never evaluated again"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &h.shared().registry).unwrap();
        assert!(
            text.contains("gate_task_panics_total{gate=\"panicky\"} 2\n"),
            "{text}"
        );
        h.daemon.shutdown().await;
    }
}
