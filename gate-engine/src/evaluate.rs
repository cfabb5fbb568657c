//! One evaluation cycle of one gate: plan → concurrent queries → signals → decisions.
//!
//! Both `gate eval` (one train, stateless) and the daemon's scheduler (every active train of
//! a gate, with state) go through [`fetch`] and [`decide_train`], so a single train and ten
//! thousand trains are evaluated by the same code, with the same number of queries.
//!
//! Queries run concurrently, at most [`MAX_CONCURRENT_QUERIES`] at a time. Most are instant
//! queries at the evaluation time; a planned range query (the stepped `before_start`
//! baseline) is read with [`read_range`] and turned into per-train values by
//! [`planner::range_samples`], the same functions `gate replay` uses. A query that
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

use crate::planner::{
    self, Plan, PlanError, PlannedQuery, RangeRead, RangeSeries, ResultSample, TrainSignals,
    TrainSpec, MAX_RANGE_POINTS,
};
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
    let mut distinct: Vec<&PlannedQuery> = Vec::new();
    let mut slot_of: Vec<usize> = Vec::with_capacity(plan.queries.len());
    for q in &plan.queries {
        let same = |d: &&PlannedQuery| d.promql == q.promql && d.range == q.range;
        let slot = match distinct.iter().position(same) {
            Some(i) => i,
            None => {
                distinct.push(q);
                distinct.len() - 1
            }
        };
        slot_of.push(slot);
    }
    let limit = Arc::new(Semaphore::new(MAX_CONCURRENT_QUERIES));
    let mut tasks = JoinSet::new();
    for (i, q) in distinct.iter().enumerate() {
        let client = Arc::clone(client);
        let limit = Arc::clone(&limit);
        let promql = q.promql.clone();
        let range = q.range;
        let label = label.clone();
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await.expect("semaphore never closed");
            let read = match range {
                None => client
                    .query(&promql, at)
                    .await
                    .map(|r| usable(r, &promql).and_then(|d| instant(d, &label, &promql))),
                Some(range) => read_range(&client, &promql, range, &label)
                    .await
                    .map(|r| r.map(Read::Range)),
            };
            (i, read)
        });
    }
    let mut answers: Vec<Option<Result<Read, String>>> =
        (0..distinct.len()).map(|_| None).collect();
    let mut failure = None;
    while let Some(joined) = tasks.join_next().await {
        let (i, result) = joined.expect("query task panicked");
        answers[i] = Some(result.unwrap_or_else(|e| {
            let msg = e.to_string();
            failure.get_or_insert(e);
            Err(msg)
        }));
    }
    let results = plan
        .queries
        .iter()
        .zip(&slot_of)
        .map(
            |(q, &slot)| match answers[slot].as_ref().expect("every query joined") {
                Ok(Read::Instant(samples)) => Ok(samples.clone()),
                Ok(Read::Range(series)) => planner::range_samples(plan.at, q, trains, series),
                Err(msg) => Err(msg.clone()),
            },
        )
        .collect();
    let signals = planner::assemble(config, gate, trains, &plan, results);
    Ok(Fetched {
        plan,
        signals,
        failure,
    })
}

/// One query's answer as read.
enum Read {
    /// An instant query's samples.
    Instant(Vec<ResultSample>),
    /// A range query's series.
    Range(Vec<RangeSeries>),
}

/// A response's data, or why it is unusable: warnings mean the data may be partial.
fn usable(response: crate::prometheus::QueryResponse, promql: &str) -> Result<QueryData, String> {
    if response.warnings.is_empty() {
        Ok(response.data)
    } else {
        Err(format!(
            "Prometheus answered with warnings (the data may be partial): {}; query: {promql}",
            response.warnings.join("; ")
        ))
    }
}

fn instant(data: QueryData, label: &str, promql: &str) -> Result<Read, String> {
    samples(data, label)
        .map(Read::Instant)
        .map_err(|e| format!("{e}; query: {promql}"))
}

/// Reads a range query on the grid `range`, in requests of at most [`MAX_RANGE_POINTS`]
/// points (Prometheus' limit per series), its series keyed by the train label's value.
/// `Err` when Prometheus failed; `Ok(Err(message))` when it answered with warnings or
/// something other than a range vector (the message names the query).
pub async fn read_range(
    client: &PrometheusClient,
    promql: &str,
    range: RangeRead,
    label: &str,
) -> Result<Result<Vec<RangeSeries>, String>, PromError> {
    let time = |secs: i64| DateTime::from_timestamp(secs, 0).unwrap_or_default();
    let step = range.step.max(1);
    let per_request = (MAX_RANGE_POINTS as i64 - 1) * step;
    // By the series' full label set: requests of one range continue the same series.
    let mut series: std::collections::BTreeMap<_, RangeSeries> = Default::default();
    let mut start = range.start;
    while start <= range.end {
        let end = (start + per_request).min(range.end);
        let response = client
            .query_range(
                promql,
                time(start),
                time(end),
                std::time::Duration::from_secs(step as u64),
            )
            .await?;
        let data = match usable(response, promql) {
            Ok(QueryData::Matrix(data)) => data,
            Ok(other) => {
                return Ok(Err(format!(
                    "expected a range vector, Prometheus returned a {}; query: {promql}",
                    other.kind()
                )))
            }
            Err(e) => return Ok(Err(e)),
        };
        for s in data {
            let points = s
                .values
                .iter()
                .map(|p| (p.timestamp.round() as i64, p.value));
            let entry = series
                .entry(s.metric.clone())
                .or_insert_with(|| RangeSeries {
                    train: s.metric.get(label).cloned(),
                    points: Vec::new(),
                });
            entry.points.extend(points);
        }
        start = end + step;
    }
    Ok(Ok(series.into_values().collect()))
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
