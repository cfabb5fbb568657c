//! The replay's data: the planner's per-(SLI counter, window) queries turned into reads over
//! a span of evaluation steps, and each step's answers cut back out of them.
//!
//! At every step the replay asks the planner for the plan the daemon would run
//! ([`crate::planner::plan`]) and needs, for each planned query, exactly the samples an
//! instant query at that step would return. [`ChunkData`] reads them in bulk for one chunk of
//! steps on one grid (`start, start + step, …`) and for all the replayed trains at once:
//!
//! | planned query | read once per chunk as | exact? |
//! |---|---|---|
//! | fixed window, service budget, service-wide window, custom `query()` | the same PromQL as a range query (`/api/v1/query_range`) on the step grid | yes: a range query evaluates the expression at each step as an instant query does |
//! | events since start | the counter's raw samples since the oldest train's start | yes, for Prometheus 2.x windows (see [`super::increase`]) |
//! | equal-length baseline before the start, `previous_train` | the baseline series' raw samples before the starts | yes, as above |
//! | equal-length baseline before the start, `before_start` | the planner's own range query of per-minute steps, over the span of every step's windows | yes: the daemon sends the same range query and sums each window out of it with the same [`planner::range_samples`]; a step's value depends only on its time |
//! | since start / baseline of a `*_query` SLI | nothing: an instant query at each step | yes, but one query per step |
//!
//! The growing windows are why raw samples are read: the window of "since start" is each
//! train's age, different at every step, and a range query has one fixed window. The raw
//! samples of the trains' own series reproduce `increase(x[age])` at every step exactly,
//! including its extrapolation at the window's ends, where a range query of the longest
//! window would differ. Each train gets its own age as the window, as `gate eval` does for a
//! single train.
//!
//! A chunk spans at most [`MAX_POINTS`] steps: Prometheus refuses range queries of more than
//! 11,000 points per series, so longer replays are cut into chunks, never refused. Raw
//! samples since start accumulate across chunks (each chunk reads only what is new).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use gate_rules::config::{BaselineKind, Config, Gate};
use gate_rules::query::{self, TrainFilter};
use gate_rules::Counter;
use gate_rules::{PromDuration, TrainId};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::ReplayError;
use crate::evaluate::{self, MAX_CONCURRENT_QUERIES};
use crate::planner::{
    self, Part, Plan, PlannedQuery, RangeRead, RangeSeries, ResultSample, Target, TrainSpec,
};
use crate::prometheus::{Labels, PrometheusClient, QueryData, QueryResponse};
use crate::replay::increase::{sum_increase, RawSeries};

/// Most steps in one chunk: Prometheus' limit of points per series in a range query.
pub const MAX_POINTS: usize = 11_000;

/// Raw samples of one counter, by series, in label order (the order Prometheus sums in).
#[derive(Debug, Default)]
struct RawSet {
    series: BTreeMap<Labels, RawSeries>,
    /// Series positions by train label value, in label order.
    by_train: HashMap<String, Vec<Labels>>,
}

impl RawSet {
    fn add(&mut self, data: QueryData, label: &str) -> Result<(), String> {
        let QueryData::Matrix(series) = data else {
            return Err(format!(
                "expected a range vector of raw samples, Prometheus returned a {}",
                data.kind()
            ));
        };
        for s in series {
            let points = s
                .values
                .iter()
                .map(|p| ((p.timestamp * 1000.0).round() as i64, p.value));
            let train = s.metric.get(label).cloned();
            let entry = self.series.entry(s.metric.clone()).or_default();
            let new = entry.is_empty();
            entry.extend(points);
            if let (true, Some(train)) = (new, train) {
                let list = self.by_train.entry(train).or_default();
                list.push(s.metric);
                list.sort();
            }
        }
        Ok(())
    }

    /// `sum(increase(...))` over the series of `train` (all series when `None`).
    fn sum(&self, train: Option<&str>, start: i64, end: i64) -> Option<f64> {
        match train {
            Some(train) => sum_increase(
                self.by_train
                    .get(train)
                    .into_iter()
                    .flatten()
                    .filter_map(|labels| self.series.get(labels)),
                start,
                end,
            ),
            None => sum_increase(self.series.values(), start, end),
        }
    }
}

/// A grid of evaluation times: `start + k × step`.
#[derive(Debug, Clone, Copy)]
pub struct Grid {
    /// The first time.
    pub start: DateTime<Utc>,
    /// The step.
    pub step: Duration,
}

impl Grid {
    /// The `k`-th time.
    pub fn at(&self, k: usize) -> DateTime<Utc> {
        self.start + chrono::Duration::milliseconds(self.step.as_millis() as i64 * k as i64)
    }

    /// The index of `t`, which must be on the grid.
    fn index(&self, t_ms: i64) -> Option<usize> {
        let step = self.step.as_millis() as i64;
        let offset = t_ms - self.start.timestamp_millis();
        (offset >= 0 && offset % step == 0).then(|| (offset / step) as usize)
    }
}

/// Everything read for one chunk of steps `first..=last` of a grid.
#[derive(Debug, Default)]
pub struct ChunkData {
    first: usize,
    /// Range-query answers by (target, part), per step of the chunk.
    ranges: BTreeMap<(Target, Option<Part>), Vec<Vec<ResultSample>>>,
    /// Baseline raw samples by (SLO, part), read for this chunk.
    baselines: BTreeMap<(String, Part), RawSet>,
    /// Planned range queries' answers by (target, part), over the chunk's span.
    stepped: BTreeMap<(Target, Option<Part>), Vec<RangeSeries>>,
}

/// The raw samples since start, kept across the chunks of one grid.
#[derive(Debug, Default)]
pub struct SinceStartData {
    sets: BTreeMap<(String, Part), RawSet>,
    /// Samples up to this time (unix ms) have been read.
    read_until: Option<i64>,
}

/// Reads one chunk: range queries for the fixed windows, raw samples for the growing ones.
/// Returns the data and the number of queries sent.
pub async fn read_chunk(
    client: &Arc<PrometheusClient>,
    config: &Config,
    gate: &Gate,
    trains: &[TrainSpec],
    grid: Grid,
    (first, last): (usize, usize),
    since: &mut SinceStartData,
) -> Result<ChunkData, ReplayError> {
    let (start, end) = (grid.at(first), grid.at(last));
    let label = config.train_label.as_str();
    let template = planner::plan(config, gate, trains, end)?;
    let ids: Vec<TrainId> = trains.iter().map(|t| t.id.clone()).collect();
    let filter = if ids.len() > planner::REGEX_TRAIN_LIMIT {
        TrainFilter::All
    } else {
        TrainFilter::Trains(&ids)
    };

    let mut jobs: Vec<Job> = Vec::new();
    // Targets whose PromQL another target already reads (e.g. a service-wide window equal to
    // the SLO period): read once, answered for both.
    let mut aliases = Vec::new();
    for q in &template.queries {
        if let Some(range) = q.range {
            jobs.push(Job::Stepped {
                key: (q.target.clone(), q.part),
                promql: q.promql.clone(),
                range,
            });
            continue;
        }
        if !matches!(
            q.target,
            Target::Window { .. }
                | Target::Service { .. }
                | Target::ServiceWindow { .. }
                | Target::Custom { .. }
        ) {
            continue;
        }
        let key = (q.target.clone(), q.part);
        let same = jobs.iter().find_map(|j| match j {
            Job::Range { key, promql } if *promql == q.promql => Some(key.clone()),
            _ => None,
        });
        match same {
            Some(read) => aliases.push((key, read)),
            None => jobs.push(Job::Range {
                key,
                promql: q.promql.clone(),
            }),
        }
    }
    let end_ms = end.timestamp_millis();
    // Events since start: only what is new since the previous chunk.
    let oldest = trains.iter().map(|t| t.started_at).min().unwrap_or(start);
    let from_ms = since
        .read_until
        .unwrap_or_else(|| oldest.timestamp_millis().min(start.timestamp_millis()) - 1000);
    if end_ms > from_ms {
        for slo_name in &gate.slos {
            let Some(slo) = config.slo(slo_name) else {
                continue;
            };
            for (part, counter) in [(Part::Events, &slo.events), (Part::Total, &slo.total)] {
                let range = secs_covering(end_ms - from_ms);
                if let Some(promql) = samples_query(counter, label, filter, range, slo_name)? {
                    jobs.push(Job::Since {
                        key: (slo_name.clone(), part),
                        promql,
                        at: end,
                    });
                }
            }
        }
    }
    // Baselines: the source series over the longest equal-length window before any start.
    let needs = planner::Needs::of(gate);
    let sources: Vec<TrainId> = trains.iter().filter_map(|t| t.baseline.clone()).collect();
    let baseline_filter = match gate.baseline {
        BaselineKind::PreviousTrain if !sources.is_empty() => Some(TrainFilter::Trains(&sources)),
        _ => None,
    };
    if let (Some(bfilter), false) = (baseline_filter, needs.deltas.is_empty()) {
        let latest = trains.iter().map(|t| t.started_at.timestamp()).max();
        let earliest = trains
            .iter()
            .map(|t| t.started_at.timestamp() - planner::age_secs(t, end))
            .min();
        if let (Some(latest), Some(earliest)) = (latest, earliest) {
            let at = DateTime::from_timestamp(latest, 0).unwrap_or(end);
            for slo_name in &needs.deltas {
                let Some(slo) = config.slo(slo_name) else {
                    continue;
                };
                for (part, counter) in [(Part::Events, &slo.events), (Part::Total, &slo.total)] {
                    let range = PromDuration::from_secs((latest - earliest).max(1) as u64);
                    if let Some(promql) = samples_query(counter, label, bfilter, range, slo_name)? {
                        jobs.push(Job::Baseline {
                            key: (slo_name.clone(), part),
                            promql,
                            at,
                        });
                    }
                }
            }
        }
    }

    let answers = run(client, &jobs, grid, (start, end), label).await?;
    let mut data = ChunkData {
        first,
        ..ChunkData::default()
    };
    let steps = last - first + 1;
    for (job, answer) in jobs.into_iter().zip(answers) {
        let promql = job.promql().to_string();
        let fail = |e: String| ReplayError::Data {
            message: format!("{e}; query: {promql}"),
        };
        let answer = match (job, answer) {
            (Job::Stepped { key, .. }, Read::Stepped(series)) => {
                data.stepped.insert(key, series);
                continue;
            }
            (job, Read::Data(answer)) => (job, answer),
            (_, Read::Stepped(_)) => unreachable!("only stepped jobs read series"),
        };
        let (job, answer) = answer;
        match job {
            Job::Range { key, .. } => {
                let mut per_step = vec![Vec::new(); steps];
                let QueryData::Matrix(series) = answer else {
                    return Err(fail(format!(
                        "expected a range vector, Prometheus returned a {}",
                        answer.kind()
                    )));
                };
                for s in series {
                    let train = s.metric.get(label).cloned();
                    for p in s.values {
                        let t_ms = (p.timestamp * 1000.0).round() as i64;
                        let Some(k) = grid.index(t_ms).and_then(|k| k.checked_sub(first)) else {
                            continue;
                        };
                        if let Some(slot) = per_step.get_mut(k) {
                            slot.push(ResultSample {
                                train: train.clone(),
                                value: p.value,
                            });
                        }
                    }
                }
                data.ranges.insert(key, per_step);
            }
            Job::Since { key, .. } => {
                since
                    .sets
                    .entry(key)
                    .or_default()
                    .add(answer, label)
                    .map_err(fail)?;
            }
            Job::Baseline { key, .. } => {
                data.baselines
                    .entry(key)
                    .or_default()
                    .add(answer, label)
                    .map_err(fail)?;
            }
            Job::Stepped { .. } => unreachable!("handled above"),
        }
    }
    since.read_until = Some(end_ms.max(from_ms));
    for (key, read) in aliases {
        if let Some(per_step) = data.ranges.get(&read).cloned() {
            data.ranges.insert(key, per_step);
        }
    }
    Ok(data)
}

fn samples_query(
    counter: &Counter,
    label: &str,
    filter: TrainFilter<'_>,
    range: PromDuration,
    slo: &str,
) -> Result<Option<String>, ReplayError> {
    query::samples_query(counter, label, filter, range).map_err(|source| {
        ReplayError::Plan(planner::PlanError::Query {
            slo: slo.to_string(),
            source,
        })
    })
}

/// Whole seconds covering `ms` milliseconds (at least one).
fn secs_covering(ms: i64) -> PromDuration {
    PromDuration::from_secs((ms.max(1) as u64).div_ceil(1000))
}

/// One read of a chunk.
enum Job {
    Range {
        key: (Target, Option<Part>),
        promql: String,
    },
    Since {
        key: (String, Part),
        promql: String,
        at: DateTime<Utc>,
    },
    Baseline {
        key: (String, Part),
        promql: String,
        at: DateTime<Utc>,
    },
    /// A range query of the plan itself (its own grid), read as the daemon reads it.
    Stepped {
        key: (Target, Option<Part>),
        promql: String,
        range: RangeRead,
    },
}

/// One job's answer.
enum Read {
    Data(QueryData),
    Stepped(Vec<RangeSeries>),
}

impl Job {
    fn promql(&self) -> &str {
        match self {
            Job::Range { promql, .. }
            | Job::Since { promql, .. }
            | Job::Baseline { promql, .. }
            | Job::Stepped { promql, .. } => promql,
        }
    }
}

/// Runs the jobs, at most [`MAX_CONCURRENT_QUERIES`] at a time; any failure fails the chunk.
async fn run(
    client: &Arc<PrometheusClient>,
    jobs: &[Job],
    grid: Grid,
    (start, end): (DateTime<Utc>, DateTime<Utc>),
    label: &str,
) -> Result<Vec<Read>, ReplayError> {
    let limit = Arc::new(Semaphore::new(MAX_CONCURRENT_QUERIES));
    let mut tasks = JoinSet::new();
    for (i, job) in jobs.iter().enumerate() {
        let client = Arc::clone(client);
        let limit = Arc::clone(&limit);
        let promql = job.promql().to_string();
        let label = label.to_string();
        let how = match job {
            Job::Range { .. } => How::Range,
            Job::Since { at, .. } | Job::Baseline { at, .. } => How::Instant(*at),
            Job::Stepped { range, .. } => How::Stepped(*range),
        };
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await.expect("semaphore never closed");
            let result = match how {
                How::Range => complete(
                    client.query_range(&promql, start, end, grid.step).await,
                    &promql,
                )
                .map(Read::Data),
                How::Instant(at) => {
                    complete(client.query(&promql, at).await, &promql).map(Read::Data)
                }
                How::Stepped(range) => stepped(&client, &promql, range, &label)
                    .await
                    .map(Read::Stepped),
            };
            (i, result)
        });
    }
    let mut answers: Vec<Option<Read>> = (0..jobs.len()).map(|_| None).collect();
    while let Some(joined) = tasks.join_next().await {
        let (i, result) = joined.expect("query task panicked");
        answers[i] = Some(result?);
    }
    Ok(answers
        .into_iter()
        .map(|a| a.expect("every job joined"))
        .collect())
}

/// How a job is sent.
enum How {
    Range,
    Instant(DateTime<Utc>),
    Stepped(RangeRead),
}

/// A planned range query, read as [`evaluate::fetch`] reads it.
async fn stepped(
    client: &PrometheusClient,
    promql: &str,
    range: RangeRead,
    label: &str,
) -> Result<Vec<RangeSeries>, ReplayError> {
    evaluate::read_range(client, promql, range, label)
        .await?
        .map_err(|message| ReplayError::Data { message })
}

/// A response's data, or the error that makes it unusable (warnings mean partial data).
fn complete(
    result: Result<QueryResponse, crate::prometheus::PromError>,
    promql: &str,
) -> Result<QueryData, ReplayError> {
    let response = result?;
    if !response.warnings.is_empty() {
        return Err(ReplayError::Data {
            message: format!(
                "Prometheus answered with warnings (the data may be partial): {}; query: {promql}",
                response.warnings.join("; ")
            ),
        });
    }
    Ok(response.data)
}

impl ChunkData {
    /// The answers to `plan` (made at grid step `k` for `trains`), in plan order. `None` for
    /// a query the chunk cannot answer: the caller sends it as an instant query.
    pub fn answer(
        &self,
        since: &SinceStartData,
        gate: &Gate,
        plan: &Plan,
        trains: &[TrainSpec],
        k: usize,
    ) -> Vec<Option<Vec<ResultSample>>> {
        let t_ms = plan.at.timestamp_millis();
        let mut memo: BTreeMap<(&Target, Option<Part>), Option<Vec<ResultSample>>> =
            BTreeMap::new();
        plan.queries
            .iter()
            .map(|q| {
                memo.entry((&q.target, q.part))
                    .or_insert_with(|| self.answer_one(since, gate, plan, q, trains, k, t_ms))
                    .clone()
            })
            .collect()
    }

    #[allow(clippy::too_many_arguments)]
    fn answer_one(
        &self,
        since: &SinceStartData,
        gate: &Gate,
        plan: &Plan,
        q: &PlannedQuery,
        trains: &[TrainSpec],
        k: usize,
        t_ms: i64,
    ) -> Option<Vec<ResultSample>> {
        let per_train = |value: &dyn Fn(&TrainSpec) -> Option<f64>| -> Vec<ResultSample> {
            trains
                .iter()
                .filter_map(|t| {
                    Some(ResultSample {
                        train: Some(t.id.to_string()),
                        value: value(t)?,
                    })
                })
                .collect()
        };
        if q.range.is_some() {
            // What the chunk did not read (or cannot map) is read again by the caller, which
            // reports the failure.
            let series = self.stepped.get(&(q.target.clone(), q.part))?;
            return planner::range_samples(plan.at, q, trains, series).ok();
        }
        match (&q.target, q.part) {
            (
                Target::Window { .. }
                | Target::Service { .. }
                | Target::ServiceWindow { .. }
                | Target::Custom { .. },
                part,
            ) => self
                .ranges
                .get(&(q.target.clone(), part))?
                .get(k.checked_sub(self.first)?)
                .cloned(),
            (Target::SinceStart { slo }, Some(part)) => {
                let set = since.sets.get(&(slo.clone(), part))?;
                Some(per_train(&|t| {
                    let age = planner::age_secs(t, plan_time(t_ms));
                    (age > 0)
                        .then(|| set.sum(Some(t.id.as_str()), t_ms - age * 1000, t_ms))
                        .flatten()
                }))
            }
            (Target::Baseline { slo }, Some(part)) => {
                let set = self.baselines.get(&(slo.clone(), part))?;
                Some(per_train(&|t| {
                    let age = planner::age_secs(t, plan_time(t_ms));
                    let end = t.started_at.timestamp() * 1000;
                    let source = match gate.baseline {
                        BaselineKind::PreviousTrain => Some(t.baseline.as_ref()?.as_str()),
                        _ => None,
                    };
                    (age > 0)
                        .then(|| set.sum(source, end - age * 1000, end))
                        .flatten()
                }))
            }
            _ => None,
        }
    }
}

fn plan_time(t_ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(t_ms).unwrap_or_default()
}

/// The plan at grid step `k` (time `at`) for `trains`, all due at it, and the signals
/// assembled from the chunk's answers to it (instant queries for what the chunk cannot
/// answer): one evaluation step's telemetry, as the daemon would have fetched it.
#[allow(clippy::too_many_arguments)]
pub async fn step_signals(
    client: &PrometheusClient,
    config: &Config,
    gate: &Gate,
    data: &ChunkData,
    since: &SinceStartData,
    trains: &[TrainSpec],
    at: DateTime<Utc>,
    k: usize,
) -> Result<(Plan, planner::TrainSignals), ReplayError> {
    let plan = planner::plan(config, gate, trains, at)?;
    let answers = data.answer(since, gate, &plan, trains, k);
    let (results, _) =
        complete_answers(client, &config.train_label, &plan, trains, answers).await?;
    let signals = planner::assemble(config, gate, trains, &plan, results);
    Ok((plan, signals))
}

/// Per query of a plan: the chunk's answer or, for what it cannot answer, an instant query
/// at the plan's time (the same function the daemon's fetch uses to read the answer).
pub async fn complete_answers(
    client: &PrometheusClient,
    label: &str,
    plan: &Plan,
    trains: &[TrainSpec],
    answers: Vec<Option<Vec<ResultSample>>>,
) -> Result<(Vec<Result<Vec<ResultSample>, String>>, u64), ReplayError> {
    let mut out = Vec::with_capacity(answers.len());
    let mut sent = 0;
    for (q, answer) in plan.queries.iter().zip(answers) {
        out.push(Ok(match (answer, q.range) {
            (Some(samples), _) => samples,
            (None, Some(range)) => {
                sent += 1;
                let series = stepped(client, &q.promql, range, label).await?;
                planner::range_samples(plan.at, q, trains, &series)
                    .map_err(|message| ReplayError::Data { message })?
            }
            (None, None) => {
                sent += 1;
                let data = complete(client.query(&q.promql, plan.at).await, &q.promql)?;
                evaluate::samples(data, label).map_err(|message| ReplayError::Data {
                    message: format!("{message}; query: {}", q.promql),
                })?
            }
        }));
    }
    Ok((out, sent))
}
