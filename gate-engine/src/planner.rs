//! Query planning: one gate × many trains → the fewest PromQL queries, and their results
//! back into per-train [`Signals`].
//!
//! The plan issues one query per (SLI counter, window) for *all* trains of the gate, grouped
//! `by (<train_label>)`, never one per train: a cycle over 10,000 trains costs the same number
//! of queries as a cycle over one. The `error_delta` baseline's window differs per train (the
//! train's age, ending at its start), which no single instant query expresses:
//!
//! - `before_start` (service-wide) reads one **range query** per counter,
//!   `sum(increase(sel[1m]))` at every whole minute ([`BASELINE_STEP_SECS`]) over the span of
//!   all the trains' baseline windows, and sums each train's window out of those steps on the
//!   gate side ([`range_samples`], [`window_sum`]): O(1) queries whatever the number of trains,
//!   where an anchored term per train would read every series of the service once per train;
//! - `previous_train` anchors one term per train on the baseline train's own series,
//!   [`ANCHORED_TERMS_PER_QUERY`] terms per query, because Prometheus evaluates a query of n
//!   `or` terms in time growing with n².
//!
//! The signals the rules read decide what is queried:
//!
//! | signal | query (per counter: errors/good and total) |
//! |---|---|
//! | `burn_rate`, `error_ratio`, `requests`, `errors` (slo, w) | `sum by (train) (increase(sel{train=~…}[w]))` |
//! | events since start (always, for `min_requests` and `error_delta`) | the same over the oldest train's age: a train's series exist only since it started, so the long window measures each train's whole life |
//! | `error_delta` baseline, `previous_train` | `label_replace(... @ start) or ...` queries anchoring each train's equal-length baseline window at its start, [`ANCHORED_TERMS_PER_QUERY`] trains per query |
//! | `error_delta` baseline, `before_start` | `sum(increase(sel[1m]))` as a range query at whole minutes over the span of every train's window, summed per train |
//! | `budget_remaining` | `sum(increase(sel[period]))`, service-wide, shared by all trains |
//! | `service_burn_rate`, `service_error_ratio` (slo, w) | `sum(increase(sel[w]))`, service-wide (no train matcher), shared by all trains |
//! | `query("…")` | the custom query, train matcher added, `sum by (train)` |
//!
//! With few trains the selector carries a regex matcher listing them; past
//! [`REGEX_TRAIN_LIMIT`] trains the matcher is dropped (cheaper for Prometheus than a huge
//! regex) and results for trains not asked about are ignored.
//!
//! Mapping back is strict: a train absent from a result has *no data*; two series for one
//! train in a result is an error for that train, never a silent pick.
//!
//! **The stepped baseline.** A step at minute `t` holds `increase()` over `[t − 1m, t]`. A
//! train's baseline over `[start − age, start]` is the sum of the steps inside it, plus the
//! overlapping fraction of the two steps cut by its ends (counts assumed uniform within a
//! minute). Each step's `increase()` corrects counter resets and extrapolates to its own
//! minute's ends as Prometheus does, so the sum equals `sum(increase(sel[age] @ start))` up to
//! where extrapolation and the two cut minutes put a few samples' worth of counts (see
//! docs/decisions.md). It is **unknown**, never a smaller number, when a minute of the window
//! has no total (a scrape gap: no series with two samples in it) or ends after the
//! evaluation time (a train younger than the minute boundary after its start): a baseline
//! that is missing a part is not a baseline. A minute without an *error* series has zero
//! errors, as everywhere else.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, OnceLock};

use chrono::{DateTime, Utc};
use gate_rules::config::{BadOrGood, BaselineKind, Config, Gate, Slo};
use gate_rules::query::{self, Anchored, QueryError, TrainFilter};
use gate_rules::signals::Signals;
use gate_rules::SignalRef;
use gate_rules::{Counter, Counts};
use gate_rules::{PromDuration, TrainId};
use serde::Serialize;

use crate::report::{QueryReport, RuleParts};

/// Above this many trains the planner queries all trains of the label instead of listing
/// them in a regex matcher.
pub const REGEX_TRAIN_LIMIT: usize = 200;

/// Trains per anchored baseline query. Prometheus' cost for one query grows with the square
/// of its `or` terms (10,000 terms: about 37 s of CPU per query with Prometheus 2.42), so
/// baselines are fetched in queries of this many trains each, sent [`MAX_CONCURRENT_QUERIES`]
/// at a time. At 10,000 trains both counters' terms took 2.15 s in queries of 50, 2.81 s of
/// 100, 3.12 s of 250 and 2.72 s of 25 (`scripts/bench-or-terms --parallel`, BENCHMARKS.md
/// §2.3).
///
/// [`MAX_CONCURRENT_QUERIES`]: crate::evaluate::MAX_CONCURRENT_QUERIES
pub const ANCHORED_TERMS_PER_QUERY: usize = 50;

/// Seconds per step of the range-read `before_start` baseline. Each step needs two samples of
/// a series within its minute to count that series, so the baseline expects scrape intervals
/// of at most 30 s; with slower scrapes a minute may lack the total and the baseline is
/// unknown.
pub const BASELINE_STEP_SECS: i64 = 60;

/// Points per series Prometheus answers in one range query; longer ranges are read in
/// several requests.
pub const MAX_RANGE_POINTS: usize = 11_000;

/// The time grid of a range query: points at `start, start + step, …, end` (unix seconds,
/// `start` and `end` on the grid).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct RangeRead {
    /// First point.
    pub start: i64,
    /// Last point (inclusive).
    pub end: i64,
    /// Seconds between points.
    pub step: i64,
}

/// One series of a range query's answer: the train label's value (if any) and its points
/// `(unix seconds, value)` in time order.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeSeries {
    /// The train label's value, if the series has it.
    pub train: Option<String>,
    /// The points, in time order.
    pub points: Vec<(i64, f64)>,
}

/// A train as the planner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrainSpec {
    /// The train ID.
    pub id: TrainId,
    /// When the train started.
    pub started_at: DateTime<Utc>,
    /// The baseline train for `baseline: previous_train`.
    pub baseline: Option<TrainId>,
}

/// Which counter of an SLI a query reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Part {
    /// The errors (or good) counter.
    Events,
    /// The total counter.
    Total,
}

/// What a query's result fills in.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Target {
    /// The train's counts over a window.
    Window {
        /// SLO name.
        slo: String,
        /// Window.
        window: PromDuration,
    },
    /// The train's counts since its start.
    SinceStart {
        /// SLO name.
        slo: String,
    },
    /// The baseline's counts over an equal window ending at the train's start.
    Baseline {
        /// SLO name.
        slo: String,
    },
    /// Service-wide counts over the SLO period.
    Service {
        /// SLO name.
        slo: String,
    },
    /// Service-wide counts over a window.
    ServiceWindow {
        /// SLO name.
        slo: String,
        /// Window.
        window: PromDuration,
    },
    /// A custom `query("…")` from a rule.
    Custom {
        /// The PromQL as written in the rule.
        promql: String,
    },
}

/// One query of a plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlannedQuery {
    /// What the result fills in.
    pub target: Target,
    /// Which counter (none for custom queries).
    pub part: Option<Part>,
    /// The exact PromQL sent.
    pub promql: String,
    /// Whether the result is per train (grouped by the train label) or one shared value.
    pub per_train: bool,
    /// For a range query, its grid; `None` for an instant query at the plan's time. A range
    /// query's answer becomes per-train values through [`range_samples`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub range: Option<RangeRead>,
}

/// The queries for one gate and a set of trains at one evaluation time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    /// The evaluation time.
    pub at: DateTime<Utc>,
    /// The label carrying train IDs.
    pub train_label: String,
    /// The gate's baseline kind.
    pub baseline: BaselineKind,
    /// The queries, in a stable order.
    pub queries: Vec<PlannedQuery>,
    /// The evidence's list of queries when it is the same for every train of the plan (no
    /// baseline term, no range read), built by the first report and shared by the others.
    #[serde(skip)]
    pub shared_report_queries: OnceLock<Arc<[QueryReport]>>,
    /// The parts of the evidence's rule reports that are the same for every train (name,
    /// condition, thresholds), built by the first report and shared by the others.
    #[serde(skip)]
    pub shared_rule_parts: OnceLock<Vec<RuleParts>>,
}

/// A plan could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    /// The gate names an SLO the config does not have (cannot happen for a validated config).
    #[error("gate `{gate}` reads unknown SLO `{slo}`")]
    UnknownSlo {
        /// Gate name.
        gate: String,
        /// SLO name.
        slo: String,
    },
    /// PromQL could not be built.
    #[error("cannot build PromQL for SLO `{slo}`: {source}")]
    Query {
        /// SLO name (or the custom query).
        slo: String,
        /// The builder's error.
        source: QueryError,
    },
}

/// One sample of a query result, reduced to what mapping needs.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultSample {
    /// The train label's value, if the series has it.
    pub train: Option<String>,
    /// The sample value.
    pub value: f64,
}

/// The signals every train of a gate needs, derived from its rules.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Needs {
    /// (SLO, window) pairs read by window functions.
    pub windows: BTreeSet<(String, PromDuration)>,
    /// SLOs whose `error_delta` is read.
    pub deltas: BTreeSet<String>,
    /// SLOs whose `budget_remaining` is read.
    pub budgets: BTreeSet<String>,
    /// (SLO, window) pairs read by the service-wide window functions.
    pub service_windows: BTreeSet<(String, PromDuration)>,
    /// Custom queries.
    pub custom: BTreeSet<String>,
}

impl Needs {
    /// Collects what the rules of `gate` read.
    pub fn of(gate: &Gate) -> Needs {
        let mut needs = Needs::default();
        for signal in gate.rules.iter().flat_map(|r| r.expr.signals.iter()) {
            match signal {
                SignalRef::BurnRate { slo, window }
                | SignalRef::ErrorRatio { slo, window }
                | SignalRef::Requests { slo, window }
                | SignalRef::Errors { slo, window } => {
                    needs.windows.insert((slo.clone(), *window));
                }
                SignalRef::ServiceBurnRate { slo, window }
                | SignalRef::ServiceErrorRatio { slo, window } => {
                    needs.service_windows.insert((slo.clone(), *window));
                }
                SignalRef::BudgetRemaining { slo } => {
                    needs.budgets.insert(slo.clone());
                }
                SignalRef::ErrorDelta { slo } => {
                    needs.deltas.insert(slo.clone());
                }
                SignalRef::Query { promql } => {
                    needs.custom.insert(promql.clone());
                }
                SignalRef::Age => {}
            }
        }
        needs
    }
}

/// Age of a train at `at`, in whole seconds (0 when it has not started yet).
pub fn age_secs(train: &TrainSpec, at: DateTime<Utc>) -> i64 {
    (at - train.started_at).num_seconds().max(0)
}

/// Builds the plan for `gate` over `trains` at `at`.
pub fn plan(
    config: &Config,
    gate: &Gate,
    trains: &[TrainSpec],
    at: DateTime<Utc>,
) -> Result<Plan, PlanError> {
    if trains.is_empty() {
        return Ok(Plan {
            at,
            train_label: config.train_label.clone(),
            baseline: gate.baseline,
            queries: Vec::new(),
            shared_report_queries: OnceLock::new(),
            shared_rule_parts: OnceLock::new(),
        });
    }
    let needs = Needs::of(gate);
    let ids: Vec<TrainId> = trains.iter().map(|t| t.id.clone()).collect();
    let filter = if ids.len() > REGEX_TRAIN_LIMIT {
        TrainFilter::All
    } else {
        TrainFilter::Trains(&ids)
    };
    let label = config.train_label.as_str();
    let slo_of = |name: &str| {
        config.slo(name).ok_or_else(|| PlanError::UnknownSlo {
            gate: gate.name.clone(),
            slo: name.to_string(),
        })
    };
    let built = |slo: &str, r: Result<String, QueryError>| {
        r.map_err(|source| PlanError::Query {
            slo: slo.to_string(),
            source,
        })
    };

    let mut queries = Vec::new();
    let mut push_counters = |slo: &Slo,
                             target: Target,
                             per_train: bool,
                             range: Option<RangeRead>,
                             build: &dyn Fn(&Counter) -> Result<String, QueryError>|
     -> Result<(), PlanError> {
        for (part, counter) in [(Part::Events, &slo.events), (Part::Total, &slo.total)] {
            queries.push(PlannedQuery {
                target: target.clone(),
                part: Some(part),
                promql: built(&slo.name, build(counter))?,
                per_train,
                range,
            });
        }
        Ok(())
    };

    for (slo_name, window) in &needs.windows {
        let slo = slo_of(slo_name)?;
        let target = Target::Window {
            slo: slo_name.clone(),
            window: *window,
        };
        push_counters(slo, target, true, None, &|c| {
            query::window_query(c, *window, label, filter)
        })?;
    }

    // Events since start, for every SLO of the gate: the oldest train's age covers them all.
    let max_age = trains.iter().map(|t| age_secs(t, at)).max().unwrap_or(0);
    if max_age > 0 {
        let window = PromDuration::from_secs(max_age as u64);
        for slo_name in &gate.slos {
            let slo = slo_of(slo_name)?;
            let target = Target::SinceStart {
                slo: slo_name.clone(),
            };
            push_counters(slo, target, true, None, &|c| {
                query::window_query(c, window, label, filter)
            })?;
        }
    }

    if gate.baseline == BaselineKind::PreviousTrain && !needs.deltas.is_empty() {
        let anchored: Vec<Anchored<'_>> = trains
            .iter()
            .filter_map(|t| {
                let age = age_secs(t, at);
                let source = t.baseline.as_ref()?;
                (age > 0).then(|| Anchored {
                    train: &t.id,
                    source: Some(source),
                    window: PromDuration::from_secs(age as u64),
                    at: t.started_at.timestamp(),
                })
            })
            .collect();
        for slo_name in &needs.deltas {
            let slo = slo_of(slo_name)?;
            for chunk in anchored.chunks(ANCHORED_TERMS_PER_QUERY) {
                let target = Target::Baseline {
                    slo: slo_name.clone(),
                };
                push_counters(slo, target, true, None, &|c| {
                    query::anchored_query(c, label, chunk)
                })?;
            }
        }
    }
    if gate.baseline == BaselineKind::BeforeStart && !needs.deltas.is_empty() {
        if let Some(range) = baseline_range(trains, at) {
            let step = PromDuration::from_secs(BASELINE_STEP_SECS as u64);
            for slo_name in &needs.deltas {
                let slo = slo_of(slo_name)?;
                let target = Target::Baseline {
                    slo: slo_name.clone(),
                };
                push_counters(slo, target, true, Some(range), &|c| {
                    query::service_query(c, step)
                })?;
            }
        }
    }

    for slo_name in &needs.budgets {
        let slo = slo_of(slo_name)?;
        let target = Target::Service {
            slo: slo_name.clone(),
        };
        push_counters(slo, target, false, None, &|c| {
            query::service_query(c, slo.period)
        })?;
    }

    for (slo_name, window) in &needs.service_windows {
        let slo = slo_of(slo_name)?;
        let target = Target::ServiceWindow {
            slo: slo_name.clone(),
            window: *window,
        };
        push_counters(slo, target, false, None, &|c| {
            query::service_query(c, *window)
        })?;
    }

    for promql in &needs.custom {
        queries.push(PlannedQuery {
            target: Target::Custom {
                promql: promql.clone(),
            },
            part: None,
            promql: built(promql, query::custom_query(promql, label, filter))?,
            per_train: true,
            range: None,
        });
    }

    Ok(Plan {
        at,
        train_label: config.train_label.clone(),
        baseline: gate.baseline,
        queries,
        shared_report_queries: OnceLock::new(),
        shared_rule_parts: OnceLock::new(),
    })
}

/// Per-train outcome of mapping a plan's results.
pub type TrainSignals = BTreeMap<TrainId, Result<Signals, String>>;

/// Maps the plan's results (in plan order) back to per-train [`Signals`].
///
/// `results[i]` is the outcome of `plan.queries[i]`: its samples, or the failure message
/// (which names the query). A failed query fails every train of the batch (the evaluation is a telemetry error); a
/// result with two series for one train fails that train only.
pub fn assemble(
    config: &Config,
    gate: &Gate,
    trains: &[TrainSpec],
    plan: &Plan,
    results: Vec<Result<Vec<ResultSample>, String>>,
) -> TrainSignals {
    assert_eq!(
        results.len(),
        plan.queries.len(),
        "one result per planned query"
    );
    if let Some(msg) = results.iter().find_map(|r| r.as_ref().err().cloned()) {
        return trains
            .iter()
            .map(|t| (t.id.clone(), Err(msg.clone())))
            .collect();
    }

    // Trains by position (a train listed twice keeps its first): results are mapped to
    // positions once, so each train's lookups compare integers, not IDs.
    let mut index: HashMap<&str, usize> = HashMap::with_capacity(trains.len());
    for (k, t) in trains.iter().enumerate() {
        index.entry(t.id.as_str()).or_insert(k);
    }
    let mut failed: BTreeMap<&str, String> = BTreeMap::new();
    // Per query: (train position, value) sorted by position (per-train queries), or the one
    // shared value.
    let mut per_train: Vec<Vec<(usize, f64)>> = Vec::with_capacity(results.len());
    let mut shared: Vec<Option<f64>> = Vec::with_capacity(results.len());
    for (q, result) in plan.queries.iter().zip(&results) {
        let samples = result.as_ref().expect("errors handled above");
        let mut values = Vec::new();
        let mut shared_value = None;
        if q.per_train {
            values = samples
                .iter()
                .filter_map(|s| Some((*index.get(s.train.as_deref()?)?, s.value)))
                .collect();
            values.sort_by_key(|&(k, _)| k);
            for pair in values.windows(2) {
                if pair[0].0 == pair[1].0 {
                    let train = trains[pair[0].0].id.as_str();
                    failed.entry(train).or_insert_with(|| {
                        format!(
                            "query `{}` returned more than one series for train {train}; \
                             the SLI selector must yield one series per train after \
                             `sum by ({})`",
                            q.promql, config.train_label
                        )
                    });
                }
            }
        } else if samples.len() > 1 {
            let msg = format!(
                "query `{}` returned {} series where one was expected",
                q.promql,
                samples.len()
            );
            for t in trains {
                failed.entry(t.id.as_str()).or_insert_with(|| msg.clone());
            }
        } else {
            shared_value = samples.first().map(|s| s.value);
        }
        per_train.push(values);
        shared.push(shared_value);
    }

    trains
        .iter()
        .map(|t| {
            let id = t.id.as_str();
            if let Some(msg) = failed.get(id) {
                return (t.id.clone(), Err(msg.clone()));
            }
            let position = index[id];
            let mut signals = Signals {
                age_secs: age_secs(t, plan.at) as f64,
                baseline_desc: baseline_desc(gate, t),
                ..Signals::default()
            };
            let value = |i: usize| {
                if plan.queries[i].per_train {
                    let values = &per_train[i];
                    values
                        .binary_search_by_key(&position, |&(k, _)| k)
                        .ok()
                        .map(|j| values[j].1)
                } else {
                    shared[i]
                }
            };
            let mut i = 0;
            while i < plan.queries.len() {
                let q = &plan.queries[i];
                if q.part.is_none() {
                    if let Target::Custom { promql } = &q.target {
                        signals.queries.insert(promql.clone(), value(i));
                    }
                    i += 1;
                    continue;
                }
                // Counter queries come in (events, total) pairs for the same target.
                let counts = counts_of(config, &q.target, value(i), value(i + 1));
                match &q.target {
                    Target::Window { slo, window } => {
                        signals.windows.insert((slo.clone(), *window), counts);
                    }
                    Target::SinceStart { slo } => {
                        signals.since_start.insert(slo.clone(), counts);
                    }
                    Target::Baseline { slo } => {
                        // The train's term is in one chunk of the baseline queries; the
                        // other chunks have no series for it and must not erase its counts.
                        if baseline_applies(gate, t) {
                            match signals.baseline.get_mut(slo) {
                                Some(slot) => {
                                    if counts.is_some() {
                                        *slot = counts;
                                    }
                                }
                                None => {
                                    signals.baseline.insert(slo.clone(), counts);
                                }
                            }
                        }
                    }
                    Target::Service { slo } => {
                        signals.service.insert(slo.clone(), counts);
                    }
                    Target::ServiceWindow { slo, window } => {
                        signals
                            .service_windows
                            .insert((slo.clone(), *window), counts);
                    }
                    Target::Custom { .. } => unreachable!("custom queries have no part"),
                }
                i += 2;
            }
            (t.id.clone(), Ok(signals))
        })
        .collect()
}

/// Combines an events and a total value into [`Counts`] according to the SLO's kind.
fn counts_of(
    config: &Config,
    target: &Target,
    events: Option<f64>,
    total: Option<f64>,
) -> Option<Counts> {
    let slo = match target {
        Target::Window { slo, .. }
        | Target::SinceStart { slo }
        | Target::Baseline { slo }
        | Target::Service { slo }
        | Target::ServiceWindow { slo, .. } => config.slo(slo)?,
        Target::Custom { .. } => return None,
    };
    let total = total?;
    let events = match (events, slo.counts) {
        (Some(e), BadOrGood::Errors) => e,
        (Some(good), BadOrGood::Good) => (total - good).max(0.0),
        // No error series for a train that has traffic means no errors happened: Prometheus
        // has no series for a counter that never incremented with that label set.
        (None, BadOrGood::Errors) => 0.0,
        (None, BadOrGood::Good) => return None,
    };
    Some(Counts {
        errors: events,
        total,
    })
}

fn baseline_applies(gate: &Gate, train: &TrainSpec) -> bool {
    match gate.baseline {
        BaselineKind::PreviousTrain => train.baseline.is_some(),
        BaselineKind::BeforeStart => true,
        BaselineKind::None => false,
    }
}

fn baseline_desc(gate: &Gate, train: &TrainSpec) -> Option<String> {
    match gate.baseline {
        BaselineKind::PreviousTrain => train
            .baseline
            .as_ref()
            .map(|b| format!("train {b} over an equal window before this train's start")),
        BaselineKind::BeforeStart => {
            Some("service-wide, over an equal window before the train's start".to_string())
        }
        BaselineKind::None => None,
    }
}

/// A train's baseline window at `at`, `[start − age, start]` in unix seconds, as the
/// anchored query `increase(sel[age] @ start)` spans it; `None` while the train has no age.
pub fn baseline_window(train: &TrainSpec, at: DateTime<Utc>) -> Option<(i64, i64)> {
    let age = age_secs(train, at);
    let end = train.started_at.timestamp();
    (age > 0).then_some((end - age, end))
}

/// The first and last grid points (multiples of `step`) whose steps `[t − step, t]` overlap
/// `[from, to]` by more than an instant.
fn steps_over((from, to): (i64, i64), step: i64) -> (i64, i64) {
    let first = (from.div_euclid(step) + 1) * step;
    let last = (to + step - 1).div_euclid(step) * step;
    (first, last)
}

/// The grid of the `before_start` baseline's range query at `at`: every whole step that
/// overlaps some train's window, none after `at`. `None` when no train has such a step.
fn baseline_range(trains: &[TrainSpec], at: DateTime<Utc>) -> Option<RangeRead> {
    let step = BASELINE_STEP_SECS;
    let latest = at.timestamp().div_euclid(step) * step;
    let (first, last) = trains
        .iter()
        .filter_map(|t| baseline_window(t, at))
        .map(|w| steps_over(w, step))
        .reduce(|(a0, a1), (b0, b1)| (a0.min(b0), a1.max(b1)))?;
    let end = last.min(latest);
    (first <= end).then_some(RangeRead {
        start: first,
        end,
        step,
    })
}

/// A window's count from per-step counts: the sum, over the steps overlapping `[from, to]`,
/// of each step's value times the fraction of its interval `[t − step, t]` inside the window.
/// `points` are `(t, value)` in time order on the grid of `step`.
///
/// `None` when a step of the window ends after `until` (its data is not all there yet), when
/// no step of it has a point, and — with `complete` — when any step lacks one: a count that
/// misses a part of its window is unknown, not smaller.
pub fn window_sum(
    points: &[(i64, f64)],
    step: i64,
    window: (i64, i64),
    until: i64,
    complete: bool,
) -> Option<f64> {
    let (from, to) = window;
    let (first, last) = steps_over(window, step);
    if last > until {
        return None;
    }
    let mut i = points.partition_point(|&(t, _)| t < first);
    let mut sum: Option<f64> = None;
    let mut t = first;
    while t <= last {
        while i < points.len() && points[i].0 < t {
            i += 1;
        }
        match points.get(i).filter(|p| p.0 == t) {
            Some(&(_, value)) => {
                let inside = (t.min(to) - (t - step).max(from)) as f64 / step as f64;
                sum = Some(sum.unwrap_or(0.0) + value * inside);
            }
            None if complete => return None,
            None => {}
        }
        t += step;
    }
    sum
}

/// Per-train values at `at` of a range query of the plan (`query.range` set) from its answer: each
/// train's baseline window summed out of the service-wide steps ([`window_sum`]). The total
/// counter must cover every step of a train's window; a step without an errors (or good)
/// series counts none. Trains without a known value are left out (no data).
pub fn range_samples(
    at: DateTime<Utc>,
    query: &PlannedQuery,
    trains: &[TrainSpec],
    series: &[RangeSeries],
) -> Result<Vec<ResultSample>, String> {
    let Some(range) = query.range else {
        return Err(format!("query `{}` is not a range query", query.promql));
    };
    if series.len() > 1 {
        return Err(format!(
            "query `{}` returned {} series where one was expected",
            query.promql,
            series.len()
        ));
    }
    let points = series.first().map_or(&[][..], |s| s.points.as_slice());
    let complete = query.part == Some(Part::Total);
    let until = at.timestamp();
    Ok(trains
        .iter()
        .filter_map(|t| {
            let window = baseline_window(t, at)?;
            let value = window_sum(points, range.step, window, until, complete)?;
            Some(ResultSample {
                train: Some(t.id.to_string()),
                value,
            })
        })
        .collect())
}

/// This train's own term of an anchored baseline query (which combines every train's), for
/// the evidence. `None` for other queries or a train without a baseline.
pub fn baseline_term(
    plan: &Plan,
    query: &PlannedQuery,
    slos: &[Slo],
    train: &TrainSpec,
) -> Option<String> {
    let (Target::Baseline { slo }, Some(part)) = (&query.target, query.part) else {
        return None;
    };
    let slo = slos.iter().find(|s| &s.name == slo)?;
    let counter = match part {
        Part::Events => &slo.events,
        Part::Total => &slo.total,
    };
    if query.range.is_some() || plan.baseline != BaselineKind::PreviousTrain {
        return None;
    }
    let age = age_secs(train, plan.at);
    let item = Anchored {
        train: &train.id,
        source: Some(train.baseline.as_ref()?),
        window: PromDuration::from_secs(age.max(1) as u64),
        at: train.started_at.timestamp(),
    };
    query::anchored_query(counter, &plan.train_label, &[item]).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../fixtures/examples/gate.yaml"
        );
        gate_rules::config::load_file(std::path::Path::new(path)).expect("example config loads")
    }

    fn at() -> DateTime<Utc> {
        DateTime::from_timestamp(1_793_534_400, 0).unwrap()
    }

    fn trains(n: usize) -> Vec<TrainSpec> {
        (0..n)
            .map(|i| TrainSpec {
                id: format!("t-{i}").parse().unwrap(),
                started_at: at() - chrono::Duration::minutes(40 + i as i64 % 20),
                baseline: (i > 0).then(|| format!("t-{}", i - 1).parse().unwrap()),
            })
            .collect()
    }

    #[test]
    fn query_count_does_not_depend_on_the_number_of_trains() {
        let config = config();
        let gate = config.gate("checkout").unwrap();
        let one = plan(&config, gate, &trains(2)[1..], at()).unwrap();
        let many = plan(&config, gate, &trains(10_000), at()).unwrap();
        // 4 windows (5m, 30m, 1h, 6h) + since start + baseline + service budget, two counters each.
        assert_eq!(one.queries.len(), 14, "{:#?}", one.queries);
        // Baselines, one window per train, come in chunks: 9,999 trains have a baseline train.
        let chunks = 9_999_usize.div_ceil(ANCHORED_TERMS_PER_QUERY);
        assert_eq!(many.queries.len(), 12 + 2 * chunks);
        let mut none = gate.clone();
        none.baseline = BaselineKind::None;
        let one = plan(&config, &none, &trains(2)[1..], at()).unwrap();
        let many = plan(&config, &none, &trains(10_000), at()).unwrap();
        assert_eq!(one.queries.len(), 12);
        assert_eq!(many.queries.len(), 12);
    }

    fn before_start(config: &Config) -> Gate {
        let mut gate = config.gate("checkout").unwrap().clone();
        gate.baseline = BaselineKind::BeforeStart;
        gate
    }

    #[test]
    fn before_start_baselines_are_two_range_queries_at_one_and_at_ten_thousand_trains() {
        let config = config();
        let gate = before_start(&config);
        let one = plan(&config, &gate, &trains(1), at()).unwrap();
        let many = plan(&config, &gate, &trains(10_000), at()).unwrap();
        // 4 windows + since start + baseline + service budget, two counters each.
        assert_eq!(one.queries.len(), 14, "{:#?}", one.queries);
        assert_eq!(many.queries.len(), 14);
        let stepped = |p: &Plan| -> Vec<PlannedQuery> {
            p.queries
                .iter()
                .filter(|q| matches!(q.target, Target::Baseline { .. }))
                .cloned()
                .collect()
        };
        let (one, many) = (stepped(&one), stepped(&many));
        assert_eq!(one.len(), 2);
        assert_eq!(
            one[1].promql,
            r#"sum(increase(http_requests_total{service="checkout"}[1m]))"#
        );
        // The same queries; only the span grows with the oldest train (40–59 minutes old).
        assert_eq!(one[0].promql, many[0].promql);
        let t = at().timestamp();
        assert_eq!(
            one[0].range,
            Some(RangeRead {
                start: t - 80 * 60 + 60,
                end: t - 40 * 60,
                step: 60
            })
        );
        assert_eq!(
            many[0].range,
            Some(RangeRead {
                start: t - 2 * 59 * 60 + 60,
                end: t - 40 * 60,
                step: 60
            })
        );
    }

    #[test]
    fn window_sums_take_whole_steps_and_the_cut_parts_of_the_edge_steps() {
        // Steps at 60, 120, …, 600 s, step k holding 10·k.
        let points: Vec<(i64, f64)> = (1..=10).map(|k| (60 * k, 10.0 * k as f64)).collect();
        // [60, 180]: the steps ending at 120 and 180, whole.
        assert_eq!(window_sum(&points, 60, (60, 180), 600, true), Some(50.0));
        // [90, 210]: half of the step ending at 120, all of 180, half of 240.
        assert_eq!(
            window_sum(&points, 60, (90, 210), 600, true),
            Some(10.0 + 30.0 + 20.0)
        );
        // A window whose last step ends after `until` is not all there yet.
        assert_eq!(window_sum(&points, 60, (90, 210), 239, true), None);
        assert_eq!(window_sum(&points, 60, (90, 210), 240, true), Some(60.0));
        // A missing step: unknown for the total, none counted for errors.
        let gap: Vec<(i64, f64)> = points.iter().copied().filter(|p| p.0 != 180).collect();
        assert_eq!(window_sum(&gap, 60, (90, 210), 600, true), None);
        assert_eq!(window_sum(&gap, 60, (90, 210), 600, false), Some(30.0));
        // No step at all: unknown either way.
        assert_eq!(window_sum(&[], 60, (90, 210), 600, false), None);
        assert_eq!(window_sum(&points, 60, (900, 1000), 2000, false), None);
    }

    #[test]
    fn stepped_baselines_map_to_each_trains_window_and_young_trains_wait_for_their_step() {
        let config = config();
        let gate = before_start(&config);
        // Evaluated half a minute past a whole minute `t`.
        let t = at().timestamp();
        let now = DateTime::from_timestamp(t + 30, 0).unwrap();
        let spec = |id: &str, started: i64| TrainSpec {
            id: id.parse().unwrap(),
            started_at: DateTime::from_timestamp(started, 0).unwrap(),
            baseline: None,
        };
        // 10 minutes old, started mid-minute; 90 s old, started on a minute; 20 s old, the
        // minute after its start not over yet; not started.
        let ts = vec![
            spec("old", t - 570),
            spec("mid", t - 60),
            spec("young", t + 10),
            spec("future", t + 90),
        ];
        let p = plan(&config, &gate, &ts, now).unwrap();
        let q: Vec<&PlannedQuery> = p
            .queries
            .iter()
            .filter(|q| matches!(q.target, Target::Baseline { .. }))
            .collect();
        let range = q[1].range.unwrap();
        // From the old train's first minute to the last whole minute before `now`.
        assert_eq!((range.start, range.end), (t - 1140, t));
        // 100 requests and 1 error per minute, every minute of the span.
        let per_minute = |v: f64| RangeSeries {
            train: None,
            points: (0..)
                .map(|k| range.start + 60 * k)
                .take_while(|&m| m <= range.end)
                .map(|m| (m, v))
                .collect(),
        };
        let total = range_samples(now, q[1], &ts, &[per_minute(100.0)]).unwrap();
        let errors = range_samples(now, q[0], &ts, &[per_minute(1.0)]).unwrap();
        let value = |r: &[ResultSample], id: &str| {
            r.iter()
                .find(|s| s.train.as_deref() == Some(id))
                .map(|s| s.value)
        };
        assert_eq!(value(&total, "old"), Some(1000.0));
        assert_eq!(value(&errors, "old"), Some(10.0));
        assert_eq!(value(&total, "mid"), Some(150.0));
        assert_eq!(
            value(&total, "young"),
            None,
            "its start's minute ends after `now`"
        );
        assert_eq!(value(&total, "future"), None);
        // Through assemble: the young train's error_delta has no baseline.
        let results: Vec<Result<Vec<ResultSample>, String>> = p
            .queries
            .iter()
            .map(|q| match q.range {
                Some(_) => range_samples(
                    now,
                    q,
                    &ts,
                    &[per_minute(if q.part == Some(Part::Total) {
                        100.0
                    } else {
                        1.0
                    })],
                ),
                None => Ok(Vec::new()),
            })
            .collect();
        let signals = assemble(&config, &gate, &ts, &p, results);
        let baseline = |id: &str| {
            signals[&id.parse::<TrainId>().unwrap()]
                .as_ref()
                .unwrap()
                .baseline
                .get("checkout-availability")
                .copied()
                .flatten()
        };
        assert_eq!(
            baseline("mid"),
            Some(Counts {
                errors: 1.5,
                total: 150.0
            })
        );
        assert_eq!(baseline("young"), None);
        // Two series for a service-wide sum cannot be mapped.
        assert!(range_samples(now, q[1], &ts, &[per_minute(1.0), per_minute(2.0)]).is_err());
    }

    #[test]
    fn chunked_baselines_map_back_to_every_train() {
        let config = config();
        let gate = config.gate("checkout").unwrap();
        let n = 2 * ANCHORED_TERMS_PER_QUERY + 3;
        let ts = trains(n);
        let p = plan(&config, gate, &ts, at()).unwrap();
        let baseline: Vec<&PlannedQuery> = p
            .queries
            .iter()
            .filter(|q| matches!(q.target, Target::Baseline { .. }))
            .collect();
        assert_eq!(baseline.len(), 2 * 3, "three chunks of two counters");
        // Each baseline query answers for the trains whose term it holds; train i's baseline
        // has i errors out of 1000 + i requests.
        let r = results(&p, |q| {
            let in_query = |t: &TrainSpec| q.promql.contains(&format!("\"{}\", \"\"", t.id));
            ts.iter()
                .enumerate()
                .filter(|(_, t)| !matches!(q.target, Target::Baseline { .. }) || in_query(t))
                .map(|(i, t)| match q.part {
                    Some(Part::Events) => sample(t.id.as_str(), i as f64),
                    _ => sample(t.id.as_str(), 1000.0 + i as f64),
                })
                .collect()
        });
        let signals = assemble(&config, gate, &ts, &p, r);
        for (i, t) in ts.iter().enumerate() {
            let s = signals[&t.id].as_ref().unwrap();
            let expected = (i > 0).then_some(Counts {
                errors: i as f64,
                total: 1000.0 + i as f64,
            });
            assert_eq!(
                s.baseline.get("checkout-availability").copied().flatten(),
                expected,
                "train {i}"
            );
        }
    }

    #[test]
    fn few_trains_get_a_regex_matcher_many_get_none() {
        let config = config();
        let gate = config.gate("checkout").unwrap();
        let few = plan(&config, gate, &trains(3), at()).unwrap();
        let window = &few.queries[0];
        assert_eq!(
            window.promql,
            r#"sum by (train_id) (increase(http_requests_total{code=~"5..",service="checkout",train_id=~"t-0|t-1|t-2"}[5m]))"#
        );
        let many = plan(&config, gate, &trains(REGEX_TRAIN_LIMIT + 1), at()).unwrap();
        assert!(!many.queries[0].promql.contains("train_id=~"));
        assert!(many.queries[0].promql.starts_with("sum by (train_id)"));
    }

    #[test]
    fn since_start_covers_the_oldest_train_and_budget_is_service_wide() {
        let config = config();
        let gate = config.gate("checkout").unwrap();
        let p = plan(&config, gate, &trains(3), at()).unwrap();
        let since: Vec<_> = p
            .queries
            .iter()
            .filter(|q| matches!(q.target, Target::SinceStart { .. }))
            .collect();
        assert_eq!(since.len(), 2);
        assert!(since[0].promql.contains("[42m]"), "{}", since[0].promql);
        let budget: Vec<_> = p.queries.iter().filter(|q| !q.per_train).collect();
        assert_eq!(budget.len(), 2);
        assert_eq!(
            budget[1].promql,
            r#"sum(increase(http_requests_total{service="checkout"}[30d]))"#
        );
    }

    #[test]
    fn service_windows_are_one_query_pair_per_window_for_any_number_of_trains() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../fixtures/examples/service-policy.yaml"
        ))
        .unwrap();
        let text = text.replace(
            r#"service_burn_rate("checkout-availability", "1h") > 2"#,
            r#"service_burn_rate("checkout-availability", "1h") > 2 || service_error_ratio("checkout-availability", "1h") > 0.01 || service_burn_rate("checkout-availability", "5m") > 2"#,
        );
        let config = gate_rules::config::load_str("service-policy.yaml", &text).unwrap();
        let gate = config.gate("checkout").unwrap();
        let service = |p: &Plan| -> Vec<PlannedQuery> {
            p.queries
                .iter()
                .filter(|q| matches!(q.target, Target::ServiceWindow { .. }))
                .cloned()
                .collect()
        };
        let one = service(&plan(&config, gate, &trains(1), at()).unwrap());
        let many = service(&plan(&config, gate, &trains(10_000), at()).unwrap());
        // Two windows (5m, 1h) read by two functions: one (errors, total) pair per window.
        assert_eq!(one.len(), 4, "{one:#?}");
        assert_eq!(one, many);
        assert!(one.iter().all(|q| !q.per_train));
        assert_eq!(
            one[3].promql,
            r#"sum(increase(http_requests_total{service="checkout"}[1h]))"#
        );

        // Both functions read the same service-wide counts, apart from the train's own.
        let ts = trains(2);
        let p = plan(&config, gate, &ts, at()).unwrap();
        let r = results(&p, |q| match q.part {
            Some(Part::Events) => vec![sample("t-0", 1.0), sample("t-1", 2.0)],
            _ => vec![sample("t-0", 1000.0), sample("t-1", 1000.0)],
        });
        let signals = assemble(&config, gate, &ts, &p, r);
        for t in &ts {
            let s = signals[&t.id].as_ref().unwrap();
            assert_eq!(
                s.service_windows[&(
                    "checkout-availability".to_string(),
                    PromDuration::from_secs(3600)
                )],
                Some(Counts {
                    errors: 10.0,
                    total: 1e6
                })
            );
        }
    }

    fn sample(train: &str, value: f64) -> ResultSample {
        ResultSample {
            train: Some(train.to_string()),
            value,
        }
    }

    /// Results for every query of `p`: per-train queries get `per_train(query)`, shared ones
    /// one unlabelled sample.
    fn results(
        p: &Plan,
        per_train: impl Fn(&PlannedQuery) -> Vec<ResultSample>,
    ) -> Vec<Result<Vec<ResultSample>, String>> {
        p.queries
            .iter()
            .map(|q| {
                Ok(if q.per_train {
                    per_train(q)
                } else {
                    vec![ResultSample {
                        train: None,
                        value: if q.part == Some(Part::Total) {
                            1e6
                        } else {
                            10.0
                        },
                    }]
                })
            })
            .collect()
    }

    #[test]
    fn results_map_back_by_train_label() {
        let config = config();
        let gate = config.gate("checkout").unwrap();
        let ts = trains(3);
        let p = plan(&config, gate, &ts, at()).unwrap();
        // t-0 has traffic and errors; t-1 has traffic but no error series; t-2 has nothing.
        let r = results(&p, |q| match q.part {
            Some(Part::Events) => vec![sample("t-0", 5.0), sample("other", 1.0)],
            _ => vec![sample("t-0", 1000.0), sample("t-1", 800.0)],
        });
        let signals = assemble(&config, gate, &ts, &p, r);
        let s0 = signals[&ts[0].id].as_ref().unwrap();
        let w1h = (
            "checkout-availability".to_string(),
            PromDuration::from_secs(3600),
        );
        assert_eq!(
            s0.windows[&w1h],
            Some(Counts {
                errors: 5.0,
                total: 1000.0
            })
        );
        assert_eq!(
            s0.service["checkout-availability"],
            Some(Counts {
                errors: 10.0,
                total: 1e6
            })
        );
        assert_eq!(s0.age_secs, 40.0 * 60.0);
        let s1 = signals[&ts[1].id].as_ref().unwrap();
        assert_eq!(
            s1.windows[&w1h],
            Some(Counts {
                errors: 0.0,
                total: 800.0
            }),
            "traffic without an error series is zero errors"
        );
        assert_eq!(
            s1.baseline_desc
                .as_deref()
                .map(|d| d.starts_with("train t-0")),
            Some(true)
        );
        let s2 = signals[&ts[2].id].as_ref().unwrap();
        assert_eq!(s2.windows[&w1h], None, "no series is no data");
        assert_eq!(s2.since_start["checkout-availability"], None);
    }

    #[test]
    fn two_series_for_one_train_fail_that_train_only() {
        let config = config();
        let gate = config.gate("checkout").unwrap();
        let ts = trains(2);
        let p = plan(&config, gate, &ts, at()).unwrap();
        let r = results(&p, |_| {
            vec![sample("t-0", 1.0), sample("t-0", 2.0), sample("t-1", 3.0)]
        });
        let signals = assemble(&config, gate, &ts, &p, r);
        let err = signals[&ts[0].id].as_ref().unwrap_err();
        assert!(err.contains("more than one series for train t-0"), "{err}");
        assert!(signals[&ts[1].id].is_ok());
    }

    #[test]
    fn a_failed_query_fails_every_train() {
        let config = config();
        let gate = config.gate("checkout").unwrap();
        let ts = trains(2);
        let p = plan(&config, gate, &ts, at()).unwrap();
        let mut r = results(&p, |_| vec![sample("t-0", 1.0)]);
        r[3] = Err("HTTP 503; query: q3".into());
        let signals = assemble(&config, gate, &ts, &p, r);
        for t in &ts {
            assert_eq!(signals[&t.id].as_ref().unwrap_err(), "HTTP 503; query: q3");
        }
    }

    #[test]
    fn baseline_terms_anchor_each_train_at_its_start() {
        let config = config();
        let gate = config.gate("checkout").unwrap();
        let ts = trains(2);
        let p = plan(&config, gate, &ts, at()).unwrap();
        let q = p
            .queries
            .iter()
            .find(|q| matches!(q.target, Target::Baseline { .. }) && q.part == Some(Part::Total))
            .unwrap();
        // Only t-1 has a baseline train (t-0).
        let start = ts[1].started_at.timestamp();
        assert_eq!(
            baseline_term(&p, q, &config.slos, &ts[1]).unwrap(),
            format!(
                r#"label_replace(sum(increase(http_requests_total{{service="checkout",train_id="t-0"}}[41m] @ {start}.000)), "train_id", "t-1", "", "")"#
            )
        );
        assert_eq!(
            q.promql,
            baseline_term(&p, q, &config.slos, &ts[1]).unwrap()
        );
        assert_eq!(baseline_term(&p, q, &config.slos, &ts[0]), None);
    }
}
