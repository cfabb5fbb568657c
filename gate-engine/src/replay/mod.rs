//! `gate replay`: the daemon's evaluation loop run over past data.
//!
//! For each replayed train, evaluations at `from`, `from + step`, … up to `to`, each one the
//! daemon's: the planner's plan for the trains evaluated at that instant
//! ([`crate::planner::plan`]), its results mapped back to signals
//! ([`crate::planner::assemble`]), the decision function in [`Mode::Daemon`] with the
//! [`TrainState`] the previous step returned ([`crate::evaluate::decide_train`]), and the
//! scheduler's lifecycle ([`crate::daemon::scheduler`]): a rollback ends the train's replay,
//! a promotion ends it once `watch_for` has passed, a pause goes on being evaluated. Whatever
//! the decision function remembers between evaluations (`for` streaks, `resume_after`, the
//! rollback latch, consecutive telemetry errors and anything added to [`TrainState`] later)
//! flows from step to step because the state is passed through whole, never picked apart.
//!
//! Only the way answers arrive differs from the daemon: instead of one instant query per
//! planned query and step, [`range_plan`] reads a chunk of steps for all trains at once and
//! cuts each step's answers out of it, so the signals at every step are the ones
//! `gate eval --at <step>` computes (see [`range_plan`] for how, and where that is exact).
//!
//! Trains whose steps fall on the same grid (the same `from` modulo `step`) are replayed
//! together and share every read; trains on different grids are replayed one grid after the
//! other. A failed read fails the replay ([`ReplayError`]): history that cannot be read is
//! not turned into decisions.

pub mod increase;
pub mod range_plan;
pub mod series;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use gate_rules::config::{Config, Gate};
use gate_rules::decide::{Mode, TrainState};
use gate_rules::Decision;
use gate_rules::PromDuration;
use serde::Serialize;

use crate::daemon::scheduler::lifecycle_for;
use crate::evaluate;
use crate::planner::{self, PlanError, TrainSpec};
use crate::prometheus::{PromError, PrometheusClient};
use crate::report::{rfc3339, EvaluationReport};
use crate::store::Lifecycle;
use range_plan::{ChunkData, Grid, SinceStartData, MAX_POINTS};

/// A chunk spans at most this much time (and at most [`MAX_POINTS`] steps): trains usually
/// end (promoted and watched, or rolled back) within the first chunk, so a replay up to
/// "now" of an old train does not read weeks it never evaluates.
pub const CHUNK_SPAN: Duration = Duration::from_secs(6 * 3600);

/// A replay could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    /// The queries could not be planned.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// Prometheus failed to answer.
    #[error(transparent)]
    Prometheus(#[from] PromError),
    /// Prometheus answered with something unusable.
    #[error("{message}")]
    Data {
        /// What was wrong, with the query.
        message: String,
    },
    /// The time range is empty.
    #[error("train {train}: --from {from} is after --to {to}")]
    Range {
        /// The train.
        train: String,
        /// Its first evaluation time.
        from: String,
        /// Its last.
        to: String,
    },
}

impl ReplayError {
    /// Whether Prometheus could not be reached at all.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, ReplayError::Prometheus(e) if e.is_unreachable())
    }
}

/// One train to replay.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayTrain {
    /// The train as the planner sees it.
    pub spec: TrainSpec,
    /// The first evaluation.
    pub from: DateTime<Utc>,
    /// No evaluation after this.
    pub to: DateTime<Utc>,
}

/// A decision at a step: the first one, a change, or the final one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DecisionAt {
    /// When.
    #[serde(with = "rfc3339")]
    pub at: DateTime<Utc>,
    /// The decision.
    pub decision: Decision,
    /// The decision before it (`null` for the first evaluation). Not part of `final`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous: Option<Option<Decision>>,
    /// Why.
    pub reason: String,
    /// The deciding rule.
    pub rule: Option<String>,
}

/// How often a rule's condition held during the replay.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleSummary {
    /// Rule name.
    pub name: String,
    /// The first evaluation at which its condition was true.
    #[serde(serialize_with = "opt_time")]
    pub first_fired_at: Option<DateTime<Utc>>,
    /// Evaluations at which its condition was true.
    pub fired_evaluations: u64,
}

/// The replay of one train: the JSON object `gate replay` prints (docs/cli.md).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrainReplay {
    /// Train ID.
    pub train: String,
    /// Gate name.
    pub gate: String,
    /// The first evaluation time.
    #[serde(with = "rfc3339")]
    pub from: DateTime<Utc>,
    /// The last evaluation time (earlier than asked when a rollback or the end of
    /// `watch_for` ended the replay).
    #[serde(with = "rfc3339")]
    pub to: DateTime<Utc>,
    /// The step.
    pub step: PromDuration,
    /// Evaluations made.
    pub evaluations: u64,
    /// The last decision (`null` when no evaluation was made).
    #[serde(rename = "final")]
    pub final_decision: Option<DecisionAt>,
    /// The first decision and every change after it.
    pub changes: Vec<DecisionAt>,
    /// Per rule of the gate, in file order.
    pub rules: Vec<RuleSummary>,
    /// The full evaluation at each change, for the human timeline.
    #[serde(skip)]
    pub change_reports: Vec<EvaluationReport>,
}

fn opt_time<S: serde::Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => rfc3339::serialize(t, s),
        None => s.serialize_none(),
    }
}

/// What a replay did, besides its results.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplayStats {
    /// Queries sent (range, raw-sample and instant fallbacks).
    pub queries: u64,
    /// Evaluations made, over all trains.
    pub evaluations: u64,
}

/// Called after every evaluation with the train and its full report (for tests and tools
/// that compare steps).
pub type StepObserver<'a> = &'a mut (dyn FnMut(&TrainSpec, &EvaluationReport) + Send);

/// A train's progress through the replay.
struct Progress {
    train: ReplayTrain,
    /// First grid index of the train.
    first: usize,
    /// Last grid index (inclusive).
    last: usize,
    state: TrainState,
    decision: Decision,
    promoted_at: Option<DateTime<Utc>>,
    ended: bool,
    out: TrainReplay,
}

/// Replays `trains` of `gate` every `step`. Results are in the order of `trains`.
pub async fn replay(
    client: &Arc<PrometheusClient>,
    config: &Config,
    gate: &Gate,
    trains: &[ReplayTrain],
    step: PromDuration,
    mut observer: Option<StepObserver<'_>>,
) -> Result<(Vec<TrainReplay>, ReplayStats), ReplayError> {
    let step_ms = step.as_duration().as_millis() as i64;
    for t in trains {
        if t.from > t.to {
            return Err(ReplayError::Range {
                train: t.spec.id.to_string(),
                from: crate::report::format_time(t.from),
                to: crate::report::format_time(t.to),
            });
        }
    }
    let sent_before = client.queries_sent();
    let mut stats = ReplayStats::default();
    // Trains by grid phase, in order of first appearance.
    let mut groups: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
    for (i, t) in trains.iter().enumerate() {
        groups
            .entry(t.from.timestamp_millis().rem_euclid(step_ms))
            .or_default()
            .push(i);
    }
    let mut results: Vec<Option<TrainReplay>> = vec![None; trains.len()];
    for members in groups.values() {
        let group: Vec<&ReplayTrain> = members.iter().map(|&i| &trains[i]).collect();
        let done = replay_grid(
            client,
            config,
            gate,
            &group,
            step,
            &mut observer,
            &mut stats,
        )
        .await?;
        for (&i, r) in members.iter().zip(done) {
            results[i] = Some(r);
        }
    }
    stats.queries += client.queries_sent() - sent_before;
    Ok((
        results
            .into_iter()
            .map(|r| r.expect("every train replayed"))
            .collect(),
        stats,
    ))
}

/// Replays trains whose steps share one grid.
async fn replay_grid(
    client: &Arc<PrometheusClient>,
    config: &Config,
    gate: &Gate,
    trains: &[&ReplayTrain],
    step: PromDuration,
    observer: &mut Option<StepObserver<'_>>,
    stats: &mut ReplayStats,
) -> Result<Vec<TrainReplay>, ReplayError> {
    let start = trains
        .iter()
        .map(|t| t.from)
        .min()
        .expect("a grid has trains");
    let grid = Grid {
        start,
        step: step.as_duration(),
    };
    let step_ms = step.as_duration().as_millis() as i64;
    let index = |t: DateTime<Utc>| ((t - start).num_milliseconds() / step_ms) as usize;
    let mut progress: Vec<Progress> = trains
        .iter()
        .map(|t| Progress {
            train: (*t).clone(),
            first: index(t.from),
            last: index(t.to),
            state: TrainState::default(),
            decision: Decision::Pending,
            promoted_at: None,
            ended: false,
            out: TrainReplay {
                train: t.spec.id.to_string(),
                gate: gate.name.clone(),
                from: t.from,
                to: t.from,
                step,
                evaluations: 0,
                final_decision: None,
                changes: Vec::new(),
                rules: gate
                    .rules
                    .iter()
                    .map(|r| RuleSummary {
                        name: r.name.clone(),
                        first_fired_at: None,
                        fired_evaluations: 0,
                    })
                    .collect(),
                change_reports: Vec::new(),
            },
        })
        .collect();
    let chunk_steps = (CHUNK_SPAN.as_millis() as usize / step_ms as usize).clamp(1, MAX_POINTS);
    let mut since = SinceStartData::default();
    let mut chunk_first = 0usize;
    loop {
        let open: Vec<&Progress> = progress
            .iter()
            .filter(|p| !p.ended && p.last >= chunk_first)
            .collect();
        if open.is_empty() {
            break;
        }
        let chunk_last = chunk_first + chunk_steps - 1;
        if open.iter().all(|p| p.first > chunk_last) {
            chunk_first += chunk_steps;
            continue;
        }
        let last_needed = open.iter().map(|p| p.last).max().unwrap_or(chunk_last);
        let chunk_last = chunk_last.min(last_needed);
        let specs: Vec<TrainSpec> = open.iter().map(|p| p.train.spec.clone()).collect();
        let data = range_plan::read_chunk(
            client,
            config,
            gate,
            &specs,
            grid,
            (chunk_first, chunk_last),
            &mut since,
        )
        .await?;
        for k in chunk_first..=chunk_last {
            step_all(
                client,
                config,
                gate,
                &data,
                &since,
                &mut progress,
                grid,
                k,
                observer,
                stats,
            )
            .await?;
        }
        chunk_first = chunk_last + 1;
    }
    Ok(progress.into_iter().map(|p| p.out).collect())
}

/// One evaluation step `k` of every train due at it.
#[allow(clippy::too_many_arguments)]
async fn step_all(
    client: &Arc<PrometheusClient>,
    config: &Config,
    gate: &Gate,
    data: &ChunkData,
    since: &SinceStartData,
    progress: &mut [Progress],
    grid: Grid,
    k: usize,
    observer: &mut Option<StepObserver<'_>>,
    stats: &mut ReplayStats,
) -> Result<(), ReplayError> {
    let at = grid.at(k);
    let due: Vec<usize> = (0..progress.len())
        .filter(|&i| !progress[i].ended && progress[i].first <= k && k <= progress[i].last)
        .collect();
    if due.is_empty() {
        return Ok(());
    }
    // Trains at age 0 get the plan `gate eval` makes for them (no since-start or baseline
    // queries), the others one plan together.
    let (young, old): (Vec<usize>, Vec<usize>) = due
        .into_iter()
        .partition(|&i| planner::age_secs(&progress[i].train.spec, at) == 0);
    for members in [young, old] {
        if members.is_empty() {
            continue;
        }
        let specs: Vec<TrainSpec> = members
            .iter()
            .map(|&i| progress[i].train.spec.clone())
            .collect();
        let (plan, signals) =
            range_plan::step_signals(client, config, gate, data, since, &specs, at, k).await?;
        for (&i, spec) in members.iter().zip(&specs) {
            let p = &mut progress[i];
            let missing = Err("no signals were assembled for the train".to_string());
            let s = signals.get(&spec.id).unwrap_or(&missing);
            let (evaluation, report) =
                evaluate::decide_train(config, gate, spec, &plan, s, &p.state, Mode::Daemon);
            stats.evaluations += 1;
            if let Some(observe) = observer.as_mut() {
                observe(spec, &report);
            }
            p.record(gate, at, evaluation, report);
        }
    }
    Ok(())
}

impl Progress {
    /// Folds one evaluation into the train's replay, as the daemon's cycle would store it.
    fn record(
        &mut self,
        gate: &Gate,
        at: DateTime<Utc>,
        evaluation: gate_rules::decide::Evaluation,
        report: EvaluationReport,
    ) {
        let lifecycle = lifecycle_for(gate, self.decision, self.promoted_at, &evaluation, at);
        let out = &mut self.out;
        out.evaluations += 1;
        out.to = at;
        for (summary, outcome) in out.rules.iter_mut().zip(&evaluation.rules) {
            if outcome.fired == Some(true) {
                summary.fired_evaluations += 1;
                summary.first_fired_at.get_or_insert(at);
            }
        }
        let first = out.changes.is_empty();
        if first || evaluation.decision != self.decision {
            out.changes.push(DecisionAt {
                at,
                decision: evaluation.decision,
                previous: Some((!first).then_some(self.decision)),
                reason: evaluation.reason.clone(),
                rule: evaluation.rule.clone(),
            });
            out.change_reports.push(report);
        }
        out.final_decision = Some(DecisionAt {
            at,
            decision: evaluation.decision,
            previous: None,
            reason: evaluation.reason,
            rule: evaluation.rule,
        });
        if evaluation.decision == Decision::Promote && self.decision != Decision::Promote {
            self.promoted_at = Some(at);
        }
        self.decision = evaluation.decision;
        self.state = evaluation.state;
        self.ended = matches!(lifecycle, Lifecycle::RolledBack | Lifecycle::Done);
    }
}
