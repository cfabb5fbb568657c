//! One evaluation cycle of one gate: plan → concurrent queries → signals → decisions.
//!
//! Both `gate eval` (one train, stateless) and the daemon's scheduler (every active train of
//! a gate, with state) go through [`fetch`] and [`decide_train`], so a single train and ten
//! thousand trains are evaluated by the same code, with the same number of queries.
//!
//! Queries run concurrently, at most [`MAX_CONCURRENT_QUERIES`] at a time. A query that
//! fails — including one whose answer carries warnings, which Thanos and Mimir use to flag
//! partial data — fails the whole batch: the evaluation is a telemetry error for every train
//! of the gate, never a decision on partial evidence.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use gate_rules::config::{Config, Gate};
use gate_rules::decide::{self, Evaluation, Mode, Telemetry, TrainState};
use gate_rules::signals::{Resolver, Signals};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::planner::{self, Plan, PlanError, ResultSample, TrainSignals, TrainSpec};
use crate::prometheus::{PromError, PrometheusClient, QueryData};
use crate::report::{self, EvaluationReport, ReportInput};

/// Queries of one plan in flight at once.
pub const MAX_CONCURRENT_QUERIES: usize = 8;

/// The outcome of fetching one gate's signals.
#[derive(Debug)]
pub struct Fetched {
    /// The plan that was executed.
    pub plan: Plan,
    /// Per train: its signals, or why its telemetry failed.
    pub signals: TrainSignals,
    /// The first query failure, if any (all trains failed with it).
    pub failure: Option<PromError>,
}

/// Plans and runs the queries for `trains` of `gate` at `at`.
pub async fn fetch(
    client: &Arc<PrometheusClient>,
    config: &Config,
    gate: &Gate,
    trains: &[TrainSpec],
    at: DateTime<Utc>,
) -> Result<Fetched, PlanError> {
    let plan = planner::plan(config, gate, trains, at)?;
    let label = config.train_label.clone();
    // The same PromQL can serve two targets (a 1h window and the events since start of a
    // train that is exactly 1h old): each distinct query is sent once.
    let mut distinct: Vec<&str> = Vec::new();
    let mut slot_of: Vec<usize> = Vec::with_capacity(plan.queries.len());
    for q in &plan.queries {
        let slot = match distinct.iter().position(|d| *d == q.promql) {
            Some(i) => i,
            None => {
                distinct.push(&q.promql);
                distinct.len() - 1
            }
        };
        slot_of.push(slot);
    }
    let limit = Arc::new(Semaphore::new(MAX_CONCURRENT_QUERIES));
    let mut tasks = JoinSet::new();
    for (i, promql) in distinct.iter().enumerate() {
        let client = Arc::clone(client);
        let limit = Arc::clone(&limit);
        let promql = promql.to_string();
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await.expect("semaphore never closed");
            (i, client.query(&promql, at).await)
        });
    }
    let mut answers: Vec<Option<Result<Vec<ResultSample>, String>>> = vec![None; distinct.len()];
    let mut failure = None;
    while let Some(joined) = tasks.join_next().await {
        let (i, result) = joined.expect("query task panicked");
        answers[i] = Some(match result {
            Ok(r) if r.warnings.is_empty() => {
                samples(r.data, &label).map_err(|e| format!("{e}; query: {}", distinct[i]))
            }
            Ok(r) => Err(format!(
                "Prometheus answered with warnings (the data may be partial): {}; query: {}",
                r.warnings.join("; "),
                distinct[i]
            )),
            Err(e) => {
                let msg = e.to_string();
                failure.get_or_insert(e);
                Err(msg)
            }
        });
    }
    let results = slot_of
        .iter()
        .map(|&slot| answers[slot].clone().expect("every query joined"))
        .collect();
    let signals = planner::assemble(config, gate, trains, &plan, results);
    Ok(Fetched {
        plan,
        signals,
        failure,
    })
}

/// Reduces a query's data to samples keyed by train label.
pub(crate) fn samples(data: QueryData, label: &str) -> Result<Vec<ResultSample>, String> {
    match data {
        QueryData::Vector(samples) => Ok(samples
            .into_iter()
            .map(|mut s| ResultSample {
                train: s.metric.remove(label),
                value: s.value,
            })
            .collect()),
        QueryData::Scalar(p) => Ok(vec![ResultSample {
            train: None,
            value: p.value,
        }]),
        other => Err(format!(
            "expected an instant vector, Prometheus returned a {}",
            other.kind()
        )),
    }
}

/// Decides one train from its fetched signals and builds the report. A new promotion is
/// held at the plan's time by the gate's approval, freezes and departure windows
/// ([`decide::hold`]).
pub fn decide_train(
    config: &Config,
    gate: &Gate,
    train: &TrainSpec,
    plan: &Plan,
    signals: &Result<Signals, String>,
    prev: &TrainState,
    mode: Mode,
) -> (Evaluation, EvaluationReport) {
    let departed = prev.decision == Some(gate_rules::Decision::Promote);
    decide_part(config, gate, train, plan, signals, prev, mode, departed)
}

/// [`decide_train`] for one gate's part of a train, `departed` saying whether the train as a
/// whole has promoted (for a train of several gates: its verdict, not this gate's part).
#[allow(clippy::too_many_arguments)]
pub fn decide_part(
    config: &Config,
    gate: &Gate,
    train: &TrainSpec,
    plan: &Plan,
    signals: &Result<Signals, String>,
    prev: &TrainState,
    mode: Mode,
    departed: bool,
) -> (Evaluation, EvaluationReport) {
    let age = planner::age_secs(train, plan.at) as f64;
    let telemetry = match signals {
        Ok(s) => Telemetry::Ok(s),
        Err(msg) => Telemetry::Failed(msg),
    };
    let evaluation = decide::hold(
        gate,
        prev,
        departed,
        plan.at,
        decide::decide(gate, &config.slos, age, telemetry, prev, mode),
    );
    let resolver = signals.as_ref().ok().map(|s| Resolver {
        signals: s,
        slos: &config.slos,
        gate,
        verdicts: &evaluation.verdicts,
    });
    let report = report::build(ReportInput {
        train,
        gate,
        slos: &config.slos,
        resolver,
        plan,
        evaluation: &evaluation,
    });
    (evaluation, report)
}
