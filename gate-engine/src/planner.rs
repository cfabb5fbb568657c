//! Query planning: one gate × many trains → the fewest PromQL queries, and their results
//! back into per-train [`Signals`].
//!
//! The plan issues one query per (SLI counter, window) for *all* trains of the gate, grouped
//! `by (<train_label>)`, never one per train: a cycle over 10,000 trains costs the same number
//! of queries as a cycle over one. The signals the rules read decide what is queried:
//!
//! | signal | query (per counter: errors/good and total) |
//! |---|---|
//! | `burn_rate`, `error_ratio`, `requests`, `errors` (slo, w) | `sum by (train) (increase(sel{train=~…}[w]))` |
//! | events since start (always, for `min_requests` and `error_delta`) | the same over the oldest train's age: a train's series exist only since it started, so the long window measures each train's whole life |
//! | `error_delta` baseline | one `label_replace(... @ start) or ...` query anchoring each train's equal-length baseline window at its start |
//! | `budget_remaining` | `sum(increase(sel[period]))`, service-wide, shared by all trains |
//! | `query("…")` | the custom query, train matcher added, `sum by (train)` |
//!
//! With few trains the selector carries a regex matcher listing them; past
//! [`REGEX_TRAIN_LIMIT`] trains the matcher is dropped (cheaper for Prometheus than a huge
//! regex) and results for trains not asked about are ignored.
//!
//! Mapping back is strict: a train absent from a result has *no data*; two series for one
//! train in a result is an error for that train, never a silent pick.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use gate_rules::config::{BadOrGood, BaselineKind, Config, Counter, Gate, Slo};
use gate_rules::expr::SignalRef;
use gate_rules::query::{self, Anchored, QueryError, TrainFilter};
use gate_rules::signals::{Counts, Signals};
use gate_rules::{PromDuration, TrainId};
use serde::Serialize;

/// Above this many trains the planner queries all trains of the label instead of listing
/// them in a regex matcher.
pub const REGEX_TRAIN_LIMIT: usize = 200;

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
                             build: &dyn Fn(&Counter) -> Result<String, QueryError>|
     -> Result<(), PlanError> {
        for (part, counter) in [(Part::Events, &slo.events), (Part::Total, &slo.total)] {
            queries.push(PlannedQuery {
                target: target.clone(),
                part: Some(part),
                promql: built(&slo.name, build(counter))?,
                per_train,
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
        push_counters(slo, target, true, &|c| {
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
            push_counters(slo, target, true, &|c| {
                query::window_query(c, window, label, filter)
            })?;
        }
    }

    if gate.baseline != BaselineKind::None && !needs.deltas.is_empty() {
        let anchored: Vec<Anchored<'_>> = trains
            .iter()
            .filter_map(|t| {
                let age = age_secs(t, at);
                let source = match gate.baseline {
                    BaselineKind::PreviousTrain => Some(t.baseline.as_ref()?),
                    _ => None,
                };
                (age > 0).then(|| Anchored {
                    train: &t.id,
                    source,
                    window: PromDuration::from_secs(age as u64),
                    at: t.started_at.timestamp(),
                })
            })
            .collect();
        if !anchored.is_empty() {
            for slo_name in &needs.deltas {
                let slo = slo_of(slo_name)?;
                let target = Target::Baseline {
                    slo: slo_name.clone(),
                };
                push_counters(slo, target, true, &|c| {
                    query::anchored_query(c, label, &anchored)
                })?;
            }
        }
    }

    for slo_name in &needs.budgets {
        let slo = slo_of(slo_name)?;
        let target = Target::Service {
            slo: slo_name.clone(),
        };
        push_counters(slo, target, false, &|c| query::service_query(c, slo.period))?;
    }

    for promql in &needs.custom {
        queries.push(PlannedQuery {
            target: Target::Custom {
                promql: promql.clone(),
            },
            part: None,
            promql: built(promql, query::custom_query(promql, label, filter))?,
            per_train: true,
        });
    }

    Ok(Plan {
        at,
        train_label: config.train_label.clone(),
        baseline: gate.baseline,
        queries,
    })
}

/// Per-train outcome of mapping a plan's results.
pub type TrainSignals = BTreeMap<TrainId, Result<Signals, String>>;

/// Maps the plan's results (in plan order) back to per-train [`Signals`].
///
/// `results[i]` is the outcome of `plan.queries[i]`: its samples, or the failure message. A
/// failed query fails every train of the batch (the evaluation is a telemetry error); a
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
    if let Some((q, err)) = plan
        .queries
        .iter()
        .zip(&results)
        .find_map(|(q, r)| r.as_ref().err().map(|e| (q, e)))
    {
        let msg = format!("query `{}` failed: {err}", q.promql);
        return trains
            .iter()
            .map(|t| (t.id.clone(), Err(msg.clone())))
            .collect();
    }

    let wanted: BTreeSet<&str> = trains.iter().map(|t| t.id.as_str()).collect();
    let mut failed: BTreeMap<&str, String> = BTreeMap::new();
    // Per query: train → value (per-train queries) or the one shared value.
    let mut per_train: Vec<BTreeMap<&str, f64>> = Vec::with_capacity(results.len());
    let mut shared: Vec<Option<f64>> = Vec::with_capacity(results.len());
    for (q, result) in plan.queries.iter().zip(&results) {
        let samples = result.as_ref().expect("errors handled above");
        let mut values = BTreeMap::new();
        let mut shared_value = None;
        if q.per_train {
            for s in samples {
                let Some(train) = s.train.as_deref().and_then(|t| wanted.get(t).copied()) else {
                    continue;
                };
                if values.insert(train, s.value).is_some() {
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
            for t in &wanted {
                failed.entry(t).or_insert_with(|| msg.clone());
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
            let mut signals = Signals {
                age_secs: age_secs(t, plan.at) as f64,
                baseline_desc: baseline_desc(gate, t),
                ..Signals::default()
            };
            let value = |i: usize| {
                if plan.queries[i].per_train {
                    per_train[i].get(id).copied()
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
                        if baseline_applies(gate, t) {
                            signals.baseline.insert(slo.clone(), counts);
                        }
                    }
                    Target::Service { slo } => {
                        signals.service.insert(slo.clone(), counts);
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
        | Target::Service { slo } => config.slo(slo)?,
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
    let age = age_secs(train, plan.at);
    let source = match plan.baseline {
        BaselineKind::PreviousTrain => Some(train.baseline.as_ref()?),
        BaselineKind::BeforeStart => None,
        BaselineKind::None => return None,
    };
    let item = Anchored {
        train: &train.id,
        source,
        window: PromDuration::from_secs(age.max(1) as u64),
        at: train.started_at.timestamp(),
    };
    query::anchored_query(counter, &plan.train_label, &[item]).ok()
}
