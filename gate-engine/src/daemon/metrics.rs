//! The daemon's own metrics, served at `GET /metrics` in the Prometheus text format.
//!
//! [`Metrics::register`] adds gate's metrics to a `prometheus-client` [`Registry`] the caller
//! owns, so other parts of the daemon (the webhook deliverer) register theirs in the same
//! registry before it is shared, read-only, with the API. The scheduler, the API and the
//! Prometheus client's observer update the metrics; nothing here reads the store.
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `gate_evaluations_total` | counter | `gate` — train evaluations |
//! | `gate_evaluation_errors_total` | counter | `gate` — train evaluations that failed (telemetry, plan or store) |
//! | `gate_decisions_total` | counter | `gate`, `decision` — decision changes, overrides included |
//! | `gate_prometheus_queries_total` | counter | `outcome` — HTTP attempts to Prometheus |
//! | `gate_prometheus_query_duration_seconds` | histogram | — one HTTP attempt |
//! | `gate_evaluation_cycle_seconds` | histogram | `gate` — one cycle: queries, decisions, write |
//! | `gate_pruned_total` | counter | `kind` — rows pruned by the retention: `trains`, `decisions`, `overrides`, `events` |
//! | `gate_train_views_evicted_total` | counter | — in-memory views of finished trains dropped |
//! | `gate_trains` | gauge | `state` — trains by lifecycle state, counted at scrape |
//! | `gate_trains_finished_total` | counter | `gate`, `outcome` — trains that finished: `promoted` (watched to the end), `rolled_back`, `stopped` ([`crate::store::Outcome`]) |
//! | `gate_time_to_verdict_seconds` | histogram | `gate` — from a train's start to its first `promote` or `rollback` |
//! | `gate_leader` | gauge | `replica` — 1 while this replica leads (evaluates and delivers), 0 while it follows |
//! | `gate_lease_renewals_total` | counter | — leader lease claims that succeeded (taken or renewed) |
//! | `gate_lease_failures_total` | counter | — leader lease claims that failed (store unreachable) |
//! | `gate_train_decision` | gauge | `train`, `gate`, `decision` — 1 for the current decision |
//! | `gate_train_burn_rate` | gauge | `train`, `slo`, `window` — the burn rates the rules read |
//! | `gate_train_would_have` | gauge | `train`, `gate`, `decision`, `dry_run="true"` — 1 for the decision the train's dry-run rules would have made, while it differs from the actual one |
//!
//! Cardinality is bounded by the active trains: the per-train series of a train are removed
//! when it leaves the set they describe (`gate_train_decision`: done or stopped;
//! `gate_train_burn_rate`: no longer evaluated), and a burn rate with no data has no series
//! rather than a made-up value.
//!
//! The scheduler hands over the burn rates of each cycle from the typed report
//! ([`burn_rates`]); only a view published outside a cycle (start-up, an override) has them
//! read from its evidence ([`burn_rates_in`]): from the report when this process built it,
//! else from the stored text, skipping everything else in it without building a JSON tree.
//! A cycle that changes only the values sets each train's gauges through handles it kept,
//! without building labels or looking series up.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;

use gate_rules::Decision;
use gate_rules::TrainId;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::prometheus::AttemptReport;
use crate::report::{Keyed, Num, SignalsReport};
use crate::store::{Evidence, Lifecycle};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GateLabels {
    gate: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LimitLabels {
    limit: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GateDecisionLabels {
    gate: String,
    decision: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GateOutcomeLabels {
    gate: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReplicaLabels {
    replica: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TrainDecisionLabels {
    train: String,
    gate: String,
    decision: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WouldHaveLabels {
    train: String,
    gate: String,
    decision: String,
    dry_run: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BurnRateLabels {
    train: String,
    slo: String,
    window: String,
}

type GateHistograms = Family<GateLabels, Histogram, fn() -> Histogram>;

fn cycle_histogram() -> Histogram {
    // 10 ms … ~20 s
    Histogram::new(exponential_buckets(0.01, 2.0, 12))
}

fn verdict_histogram() -> Histogram {
    // 1 min … ~34 h
    Histogram::new(exponential_buckets(60.0, 2.0, 12))
}

/// The series one train currently has, so they can be replaced or removed.
#[derive(Debug, Default)]
struct TrainSeries {
    decision: Option<TrainDecisionLabels>,
    would_have: Option<WouldHaveLabels>,
    /// Each burn-rate series with its gauge, which the family shares: a cycle that changes
    /// only the values sets them without building labels or looking the series up.
    burn_rates: Vec<(BurnRateLabels, Gauge<f64, AtomicU64>)>,
}

/// What a train's per-train series should show (from its current view).
#[derive(Debug, Clone, PartialEq)]
pub struct TrainGauges<'a> {
    /// The train.
    pub train: &'a TrainId,
    /// Its gate.
    pub gate: &'a str,
    /// Its current decision.
    pub decision: Decision,
    /// Its lifecycle state.
    pub lifecycle: Lifecycle,
    /// Whether the daemon still evaluates it.
    pub evaluated: bool,
    /// The burn rates with data of its latest evaluation (exported while it is evaluated).
    pub burn_rates: &'a [BurnRate],
    /// What the train's dry-run rules would have decided, when that differs.
    pub would_have: Option<Decision>,
    /// Whether per-train series are exported at all (`metrics.per_train`); when not, the
    /// train's series are removed.
    pub exported: bool,
}

/// One burn rate with data: `(slo, window, value)`.
pub type BurnRate = (String, String, f64);

/// The daemon's metrics. Shared behind an `Arc`; every method takes `&self`.
#[derive(Debug)]
pub struct Metrics {
    evaluations: Family<GateLabels, Counter>,
    evaluation_errors: Family<GateLabels, Counter>,
    task_panics: Family<GateLabels, Counter>,
    long_polls: Gauge,
    limit_refusals: Family<LimitLabels, Counter>,
    pruned: Family<KindLabels, Counter>,
    views_evicted: Counter,
    decisions: Family<GateDecisionLabels, Counter>,
    queries: Family<OutcomeLabels, Counter>,
    query_duration: Histogram,
    cycle_seconds: GateHistograms,
    trains: Family<StateLabels, Gauge>,
    finished: Family<GateOutcomeLabels, Counter>,
    time_to_verdict: GateHistograms,
    leader: Family<ReplicaLabels, Gauge>,
    lease_renewals: Counter,
    lease_failures: Counter,
    train_decision: Family<TrainDecisionLabels, Gauge>,
    train_would_have: Family<WouldHaveLabels, Gauge>,
    train_burn_rate: Family<BurnRateLabels, Gauge<f64, AtomicU64>>,
    per_train: Mutex<HashMap<TrainId, TrainSeries>>,
}

impl Metrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &mut Registry) -> Metrics {
        let metrics = Metrics {
            evaluations: Family::default(),
            evaluation_errors: Family::default(),
            task_panics: Family::default(),
            long_polls: Gauge::default(),
            limit_refusals: Family::default(),
            pruned: Family::default(),
            views_evicted: Counter::default(),
            decisions: Family::default(),
            queries: Family::default(),
            // 5 ms … ~10 s
            query_duration: Histogram::new(exponential_buckets(0.005, 2.0, 12)),
            cycle_seconds: Family::new_with_constructor(cycle_histogram as fn() -> Histogram),
            trains: Family::default(),
            finished: Family::default(),
            time_to_verdict: Family::new_with_constructor(verdict_histogram as fn() -> Histogram),
            leader: Family::default(),
            lease_renewals: Counter::default(),
            lease_failures: Counter::default(),
            train_decision: Family::default(),
            train_would_have: Family::default(),
            train_burn_rate: Family::default(),
            per_train: Mutex::new(HashMap::new()),
        };
        registry.register(
            "gate_evaluations",
            "Train evaluations by the scheduler",
            metrics.evaluations.clone(),
        );
        registry.register(
            "gate_evaluation_errors",
            "Train evaluations that failed (telemetry, query planning or store write)",
            metrics.evaluation_errors.clone(),
        );
        registry.register(
            "gate_task_panics",
            "Evaluation cycles of a gate that panicked (the gate evaluates again after a backoff)",
            metrics.task_panics.clone(),
        );
        registry.register(
            "gate_long_polls",
            "Long-polls of a decision open now",
            metrics.long_polls.clone(),
        );
        registry.register(
            "gate_limit_refusals",
            "Requests refused because a bound was reached (long_polls, active_trains, request_time)",
            metrics.limit_refusals.clone(),
        );
        registry.register(
            "gate_pruned",
            "Rows the retention pruned from the store: finished trains, their decisions and overrides, delivered webhook events",
            metrics.pruned.clone(),
        );
        registry.register(
            "gate_train_views_evicted",
            "In-memory views of finished trains dropped (read from the store again when asked for)",
            metrics.views_evicted.clone(),
        );
        registry.register(
            "gate_decisions",
            "Decision changes (evaluations and overrides), by new decision",
            metrics.decisions.clone(),
        );
        registry.register(
            "gate_prometheus_queries",
            "HTTP attempts to the Prometheus query API, by outcome",
            metrics.queries.clone(),
        );
        registry.register(
            "gate_prometheus_query_duration_seconds",
            "Duration of one HTTP attempt to the Prometheus query API",
            metrics.query_duration.clone(),
        );
        registry.register(
            "gate_evaluation_cycle_seconds",
            "Duration of one evaluation cycle of a gate (queries, decisions, store write)",
            metrics.cycle_seconds.clone(),
        );
        registry.register(
            "gate_trains",
            "Trains the daemon holds, by lifecycle state",
            metrics.trains.clone(),
        );
        registry.register(
            "gate_trains_finished",
            "Trains that finished, by gate and outcome: promoted (watched to the end of \
             watch_for), rolled_back or stopped",
            metrics.finished.clone(),
        );
        registry.register(
            "gate_time_to_verdict_seconds",
            "Time from a train's start to its first promote or rollback decision",
            metrics.time_to_verdict.clone(),
        );
        registry.register(
            "gate_leader",
            "1 while this replica leads (evaluates trains and delivers webhooks), 0 while it follows",
            metrics.leader.clone(),
        );
        registry.register(
            "gate_lease_renewals",
            "Leader lease claims that succeeded (taken or renewed)",
            metrics.lease_renewals.clone(),
        );
        registry.register(
            "gate_lease_failures",
            "Leader lease claims that failed (the store did not answer)",
            metrics.lease_failures.clone(),
        );
        registry.register(
            "gate_train_decision",
            "1 for the current decision of each active train",
            metrics.train_decision.clone(),
        );
        registry.register(
            "gate_train_would_have",
            "1 for the decision an active train's dry-run rules would have made, while it \
             differs from the actual decision",
            metrics.train_would_have.clone(),
        );
        registry.register(
            "gate_train_burn_rate",
            "Burn rates read by the rules, per evaluated train, SLO and window",
            metrics.train_burn_rate.clone(),
        );
        metrics
    }

    /// Whether `replica` leads now.
    pub fn set_leader(&self, replica: &str, leading: bool) {
        self.leader
            .get_or_create(&ReplicaLabels {
                replica: replica.to_string(),
            })
            .set(i64::from(leading));
    }

    /// A lease claim succeeded (`true`: this replica leads, or still does) or failed.
    pub fn lease_claimed(&self, ok: bool) {
        if ok {
            self.lease_renewals.inc();
        } else {
            self.lease_failures.inc();
        }
    }

    /// `n` trains of `gate` were evaluated, `errors` of them failed.
    pub fn evaluated(&self, gate: &str, n: u64, errors: u64) {
        let labels = GateLabels {
            gate: gate.to_string(),
        };
        self.evaluations.get_or_create(&labels).inc_by(n);
        // Created at 0 with the first evaluation, so `increase()` sees the first error.
        self.evaluation_errors.get_or_create(&labels).inc_by(errors);
        for decision in Decision::ALL {
            let _ = self.decisions.get_or_create(&GateDecisionLabels {
                gate: gate.to_string(),
                decision: decision.as_str().to_string(),
            });
        }
    }

    /// An evaluation cycle of `gate` panicked.
    pub fn task_panicked(&self, gate: &str) {
        self.task_panics
            .get_or_create(&GateLabels {
                gate: gate.to_string(),
            })
            .inc();
    }

    /// A long-poll opened (`+1`) or ended (`-1`).
    pub fn long_polls_add(&self, delta: i64) {
        self.long_polls.inc_by(delta);
    }

    /// The retention pruned these rows.
    pub fn pruned(&self, pruned: &crate::store::Pruned) {
        for (kind, n) in [
            ("trains", pruned.trains),
            ("decisions", pruned.decisions),
            ("overrides", pruned.overrides),
            ("events", pruned.events),
        ] {
            self.pruned.get_or_create(&KindLabels { kind }).inc_by(n);
        }
    }

    /// `n` views of finished trains were dropped from memory.
    pub fn views_evicted(&self, n: u64) {
        self.views_evicted.inc_by(n);
    }

    /// A request was refused because the bound `limit` was reached.
    pub fn limit_refused(&self, limit: &str) {
        self.limit_refusals
            .get_or_create(&LimitLabels {
                limit: limit.to_string(),
            })
            .inc();
    }

    /// A decision of a train of `gate` changed to `decision`.
    pub fn decision_changed(&self, gate: &str, decision: Decision) {
        self.decisions
            .get_or_create(&GateDecisionLabels {
                gate: gate.to_string(),
                decision: decision.as_str().to_string(),
            })
            .inc();
    }

    /// A train of `gate` finished with `outcome` (see [`crate::store::Outcome`]).
    pub fn train_finished(&self, gate: &str, outcome: &str) {
        self.finished
            .get_or_create(&GateOutcomeLabels {
                gate: gate.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
    }

    /// A train of `gate` reached its first verdict `secs` seconds after it started.
    pub fn verdict(&self, gate: &str, secs: f64) {
        self.time_to_verdict
            .get_or_create(&GateLabels {
                gate: gate.to_string(),
            })
            .observe(secs);
    }

    /// A cycle of `gate` took `secs` seconds.
    pub fn cycle(&self, gate: &str, secs: f64) {
        self.cycle_seconds
            .get_or_create(&GateLabels {
                gate: gate.to_string(),
            })
            .observe(secs);
    }

    /// Records one HTTP attempt to Prometheus (installed as the client's observer).
    pub fn observe_query(&self, report: &AttemptReport<'_>) {
        self.queries
            .get_or_create(&OutcomeLabels {
                outcome: report.outcome.as_str().to_string(),
            })
            .inc();
        self.query_duration.observe(report.elapsed.as_secs_f64());
    }

    /// Sets `gate_trains` from counts by lifecycle state; states not given are 0.
    pub fn set_train_counts(&self, counts: &HashMap<Lifecycle, i64>) {
        for state in Lifecycle::ALL.into_iter().filter(|s| s.is_active()) {
            self.trains
                .get_or_create(&StateLabels {
                    state: state.as_str().to_string(),
                })
                .set(counts.get(&state).copied().unwrap_or(0));
        }
    }

    /// Brings a train's per-train series in line with its current view.
    pub fn set_train(&self, train: &TrainGauges<'_>) {
        let mut per_train = self.per_train.lock().unwrap_or_else(|p| p.into_inner());
        if !per_train.contains_key(train.train) {
            per_train.insert(train.train.clone(), TrainSeries::default());
        }
        let Some(series) = per_train.get_mut(train.train) else {
            return;
        };

        let shown = train.exported && train.lifecycle.is_active();
        let decision_now = shown.then_some((train.gate, train.decision.as_str()));
        let decision_was = series
            .decision
            .as_ref()
            .map(|l| (l.gate.as_str(), l.decision.as_str()));
        if decision_now != decision_was {
            if let Some(old) = series.decision.take() {
                self.train_decision.remove(&old);
            }
            series.decision = decision_now.map(|(gate, decision)| TrainDecisionLabels {
                train: train.train.to_string(),
                gate: gate.to_string(),
                decision: decision.to_string(),
            });
            if let Some(new) = &series.decision {
                self.train_decision.get_or_create(new).set(1);
            }
        }

        let would_have = train.would_have.filter(|_| shown).map(|d| WouldHaveLabels {
            train: train.train.to_string(),
            gate: train.gate.to_string(),
            decision: d.as_str().to_string(),
            dry_run: "true".to_string(),
        });
        if series.would_have != would_have {
            if let Some(old) = series.would_have.take() {
                self.train_would_have.remove(&old);
            }
            if let Some(new) = &would_have {
                self.train_would_have.get_or_create(new).set(1);
            }
            series.would_have = would_have;
        }

        let rates = if train.evaluated && train.exported {
            train.burn_rates
        } else {
            &[]
        };
        let same_series = series.burn_rates.len() == rates.len()
            && series
                .burn_rates
                .iter()
                .zip(rates)
                .all(|((l, _), (slo, window, _))| l.slo == *slo && l.window == *window);
        if same_series {
            for ((_, gauge), (_, _, value)) in series.burn_rates.iter().zip(rates) {
                gauge.set(*value);
            }
        } else {
            for (old, _) in series.burn_rates.drain(..) {
                self.train_burn_rate.remove(&old);
            }
            for (slo, window, value) in rates {
                let labels = BurnRateLabels {
                    train: train.train.to_string(),
                    slo: slo.clone(),
                    window: window.clone(),
                };
                let gauge = self.train_burn_rate.get_or_create(&labels).clone();
                gauge.set(*value);
                series.burn_rates.push((labels, gauge));
            }
        }

        if series.decision.is_none() && series.would_have.is_none() && series.burn_rates.is_empty()
        {
            per_train.remove(train.train);
        }
    }
}

/// The `would_have` of an evaluation's stored evidence (`None` when absent or unreadable).
pub fn would_have_in(evidence: &Evidence) -> Option<Decision> {
    #[derive(serde::Deserialize)]
    struct Report {
        #[serde(default)]
        would_have: Option<Decision>,
    }
    if let Some(report) = evidence.report() {
        return report.would_have;
    }
    serde_json::from_str::<Report>(&evidence.json())
        .ok()
        .and_then(|r| r.would_have)
}

/// The burn rates with data in an evaluation's signals.
pub fn burn_rates(signals: &SignalsReport) -> Vec<BurnRate> {
    flatten(&signals.burn_rate)
}

/// The burn rates with data in an evaluation's stored evidence (the report as JSON text).
/// Evidence that does not hold a readable `signals.burn_rate` has none.
pub fn burn_rates_in(evidence: &Evidence) -> Vec<BurnRate> {
    #[derive(serde::Deserialize)]
    struct Report {
        #[serde(default)]
        signals: Signals,
    }
    #[derive(serde::Deserialize, Default)]
    struct Signals {
        #[serde(default)]
        burn_rate: Keyed<Keyed<Option<Num>>>,
    }
    if let Some(report) = evidence.report() {
        return burn_rates(&report.signals);
    }
    match serde_json::from_str::<Report>(&evidence.json()) {
        Ok(report) => flatten(&report.signals.burn_rate),
        Err(_) => Vec::new(),
    }
}

fn flatten(by_slo: &Keyed<Keyed<Option<Num>>>) -> Vec<BurnRate> {
    by_slo
        .iter()
        .flat_map(|(slo, windows)| {
            windows.iter().filter_map(move |(window, value)| {
                value.map(|Num(v)| (slo.clone(), window.clone(), v))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use prometheus_client::encoding::text::encode;
    use serde_json::json;

    use super::*;
    use crate::prometheus::AttemptOutcome;

    fn scrape(registry: &Registry) -> String {
        let mut out = String::new();
        encode(&mut out, registry).unwrap();
        out
    }

    fn tid(s: &str) -> TrainId {
        gate_rules::train_id::validate(s).unwrap()
    }

    #[test]
    fn counters_and_histograms_are_exposed_with_their_names() {
        let mut registry = Registry::default();
        let m = Metrics::register(&mut registry);
        m.evaluated("checkout", 3, 1);
        m.decision_changed("checkout", Decision::Rollback);
        m.cycle("checkout", 0.2);
        m.observe_query(&AttemptReport {
            query: "vector(1)",
            attempt: 1,
            elapsed: Duration::from_millis(12),
            outcome: AttemptOutcome::Timeout,
        });
        m.set_train_counts(&HashMap::from([(Lifecycle::Verifying, 2)]));
        let text = scrape(&registry);
        for line in [
            "gate_evaluations_total{gate=\"checkout\"} 3",
            "gate_evaluation_errors_total{gate=\"checkout\"} 1",
            "gate_decisions_total{gate=\"checkout\",decision=\"rollback\"} 1",
            "gate_prometheus_queries_total{outcome=\"timeout\"} 1",
            "gate_prometheus_query_duration_seconds_count 1",
            "gate_evaluation_cycle_seconds_count{gate=\"checkout\"} 1",
            "gate_trains{state=\"verifying\"} 2",
            "gate_trains{state=\"paused\"} 0",
        ] {
            assert!(text.contains(line), "missing `{line}` in:\n{text}");
        }
        assert!(!text.contains("state=\"done\""), "{text}");
    }

    #[test]
    fn burn_rates_from_the_report_and_from_its_stored_text_agree() {
        let signals = SignalsReport {
            burn_rate: Keyed::from_iter([(
                "avail".to_string(),
                Keyed::from_iter([
                    ("1h".to_string(), Some(Num(20.5))),
                    ("5m".to_string(), None),
                    ("6h".to_string(), Some(Num(f64::INFINITY))),
                ]),
            )]),
            error_ratio: Keyed::from_iter([(
                "avail".to_string(),
                Keyed::from_iter([("1h".to_string(), Some(Num(0.2)))]),
            )]),
            ..SignalsReport::default()
        };
        let typed = burn_rates(&signals);
        assert_eq!(
            typed,
            [
                ("avail".to_string(), "1h".to_string(), 20.5),
                ("avail".to_string(), "6h".to_string(), f64::INFINITY),
            ]
        );
        let evidence =
            Evidence::encode(&json!({"train": "t-1", "signals": signals, "rules": []})).unwrap();
        assert_eq!(burn_rates_in(&evidence), typed);
        let unreadable = Evidence::encode(&json!({"signals": {"burn_rate": 3}})).unwrap();
        assert!(burn_rates_in(&unreadable).is_empty());
    }

    #[test]
    fn per_train_series_follow_the_train_and_disappear_when_inactive() {
        let mut registry = Registry::default();
        let m = Metrics::register(&mut registry);
        let id = tid("t-1");
        let evidence = Evidence::encode(
            &json!({"signals": {"burn_rate": {"avail": {"1h": 20.5, "5m": null, "6h": "+Inf"}}}}),
        )
        .unwrap();
        let rates = burn_rates_in(&evidence);
        let mut gauges = TrainGauges {
            train: &id,
            gate: "checkout",
            decision: Decision::Pending,
            lifecycle: Lifecycle::Verifying,
            evaluated: true,
            burn_rates: &rates,
            would_have: None,
            exported: true,
        };
        m.set_train(&gauges);
        let text = scrape(&registry);
        assert!(
            text.contains(
                "gate_train_decision{train=\"t-1\",gate=\"checkout\",decision=\"pending\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("gate_train_burn_rate{train=\"t-1\",slo=\"avail\",window=\"1h\"} 20.5"),
            "{text}"
        );
        let inf = text
            .lines()
            .find_map(|l| {
                l.strip_prefix("gate_train_burn_rate{train=\"t-1\",slo=\"avail\",window=\"6h\"} ")
            })
            .expect("a series for the +Inf burn rate");
        assert_eq!(inf.parse::<f64>().unwrap(), f64::INFINITY);
        assert!(
            !text.contains("window=\"5m\""),
            "no data, no series:\n{text}"
        );

        gauges.decision = Decision::Rollback;
        gauges.lifecycle = Lifecycle::RolledBack;
        gauges.evaluated = false;
        m.set_train(&gauges);
        let text = scrape(&registry);
        assert!(text.contains("decision=\"rollback\"} 1"), "{text}");
        assert!(!text.contains("decision=\"pending\"} 1"), "{text}");
        assert!(!text.contains("gate_train_burn_rate{"), "{text}");

        gauges.lifecycle = Lifecycle::Stopped;
        m.set_train(&gauges);
        let text = scrape(&registry);
        assert!(!text.contains("gate_train_decision{"), "{text}");
        assert!(m.per_train.lock().unwrap().is_empty());
    }

    #[test]
    fn per_train_false_removes_a_train_s_series_and_exports_none() {
        let mut registry = Registry::default();
        let m = Metrics::register(&mut registry);
        let id = tid("t-1");
        let rates = vec![("avail".to_string(), "1h".to_string(), 2.0)];
        let mut gauges = TrainGauges {
            train: &id,
            gate: "checkout",
            decision: Decision::Pending,
            lifecycle: Lifecycle::Verifying,
            evaluated: true,
            burn_rates: &rates,
            would_have: Some(Decision::Rollback),
            exported: true,
        };
        m.set_train(&gauges);
        assert!(scrape(&registry).contains("gate_train_burn_rate{"));
        gauges.exported = false;
        m.set_train(&gauges);
        let text = scrape(&registry);
        for family in [
            "gate_train_decision{",
            "gate_train_burn_rate{",
            "gate_train_would_have{",
        ] {
            assert!(!text.contains(family), "{family} left:\n{text}");
        }
        assert!(m.per_train.lock().unwrap().is_empty());
        m.decision_changed("checkout", Decision::Rollback);
        assert!(
            scrape(&registry).contains("gate_decisions_total{"),
            "the per-gate aggregates stay"
        );
    }
}
