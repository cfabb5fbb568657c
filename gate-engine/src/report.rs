//! The evaluation report: one train's decision with all its evidence, as JSON.
//!
//! This is the object `gate eval --format json` prints, `GET /v1/trains/{id}` returns as the
//! latest evaluation, the store keeps with every decision change and webhooks carry as
//! `evidence`. One type for all of them keeps the outputs identical (SPEC §5).
//!
//! Numbers that JSON cannot represent (`+Inf` relative deltas, NaN from a misbehaving
//! backend) are written as the strings `"+Inf"`, `"-Inf"`, `"NaN"` — the way Prometheus
//! writes them — through [`Num`], never silently as `null`, which means *no data*.

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use gate_rules::config::Slo;
use gate_rules::decide::Evaluation;
use gate_rules::signals::{Resolver, Signals};
use gate_rules::Decision;
use gate_rules::Resolved;
use gate_rules::SignalRef;
use gate_rules::SignalValues;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::planner::{Plan, PlannedQuery, TrainSpec};

/// A number that keeps NaN and ±Inf in JSON (as Prometheus-style strings).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Num(pub f64);

impl Serialize for Num {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let v = self.0;
        if v.is_nan() {
            s.serialize_str("NaN")
        } else if v == f64::INFINITY {
            s.serialize_str("+Inf")
        } else if v == f64::NEG_INFINITY {
            s.serialize_str("-Inf")
        } else {
            s.serialize_f64(v)
        }
    }
}

impl<'de> Deserialize<'de> for Num {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(f64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(v) => Ok(Num(v)),
            Raw::S(s) => match s.as_str() {
                "NaN" => Ok(Num(f64::NAN)),
                "+Inf" | "Inf" => Ok(Num(f64::INFINITY)),
                "-Inf" => Ok(Num(f64::NEG_INFINITY)),
                other => other.parse().map(Num).map_err(serde::de::Error::custom),
            },
        }
    }
}

impl fmt::Display for Num {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.0;
        if v.is_nan() {
            f.write_str("NaN")
        } else if v.is_infinite() {
            f.write_str(if v > 0.0 { "+Inf" } else { "-Inf" })
        } else if v.fract() == 0.0 && v.abs() < 1e15 {
            write!(f, "{}", v as i64)
        } else if v != 0.0 && (v.abs() < 0.001 || v.abs() >= 1e6) {
            write!(f, "{v:.3e}")
        } else {
            let s = format!("{v:.3}");
            f.write_str(s.trim_end_matches('0').trim_end_matches('.'))
        }
    }
}

/// The error delta as reported.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DeltaReport {
    /// Train ratio − baseline ratio.
    pub absolute: Num,
    /// Relative change (`+Inf` when the baseline had no errors).
    pub relative: Num,
    /// The e-value of the anytime-valid test (rate ratio above `1 + min_effect`).
    pub e_value: Num,
    /// Anytime-valid p-value: the minimum over looks of `1 / e_value`, at most 1.
    pub p_value: Num,
    /// `p_value < alpha`; `null` when the p-value is NaN (unknown).
    pub significant: Option<bool>,
    /// Anytime-valid lower confidence bound (level `1 − alpha`) on train rate ÷ baseline rate;
    /// 0 while no ratio is ruled out.
    pub ratio_lower: Num,
    /// Evaluations that carried new traffic on both sides.
    pub looks: u64,
    /// The estimated dispersion of the error counts (1 for Poisson noise).
    pub dispersion: Num,
    /// The train's error ratio since start.
    pub train_ratio: Num,
    /// The baseline's error ratio.
    pub baseline_ratio: Num,
}

/// Events seen since the train started, per SLO.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SinceStart {
    /// All events.
    pub requests: Num,
    /// Bad events.
    pub errors: Num,
}

/// A report's map keyed by SLO, window or PromQL, in key order (a JSON object).
///
/// A sorted vector rather than a `BTreeMap`: each holds one to three entries, and every
/// train's latest report keeps a dozen of them — a `BTreeMap` node is sized for eleven
/// (BENCHMARKS.md §11).
pub type Keyed<V> = litemap::LiteMap<String, V>;

/// The signals the rules read, by kind, SLO and window. `null` means no data.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SignalsReport {
    /// `burn_rate[slo][window]`.
    pub burn_rate: Keyed<Keyed<Option<Num>>>,
    /// `error_ratio[slo][window]`.
    pub error_ratio: Keyed<Keyed<Option<Num>>>,
    /// `requests[slo][window]`: events over each window the rules read.
    pub requests: Keyed<Keyed<Option<Num>>>,
    /// `errors[slo][window]`: bad events over each window the rules read.
    pub errors: Keyed<Keyed<Option<Num>>>,
    /// `budget_remaining[slo]` (service-wide).
    pub budget_remaining: Keyed<Option<Num>>,
    /// `service_burn_rate[slo][window]` (service-wide), present when a rule reads one.
    #[serde(default, skip_serializing_if = "Keyed::is_empty")]
    pub service_burn_rate: Keyed<Keyed<Option<Num>>>,
    /// `service_error_ratio[slo][window]` (service-wide), present when a rule reads one.
    #[serde(default, skip_serializing_if = "Keyed::is_empty")]
    pub service_error_ratio: Keyed<Keyed<Option<Num>>>,
    /// `error_delta[slo]`.
    pub error_delta: Keyed<Option<DeltaReport>>,
    /// Events since the train started, per SLO of the gate (`null`: no series).
    pub since_start: Keyed<Option<SinceStart>>,
    /// Custom `query("…")` results.
    #[serde(default, skip_serializing_if = "Keyed::is_empty")]
    pub query: Keyed<Option<Num>>,
}

/// One rule's outcome as reported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleReport {
    /// Rule name.
    pub name: Arc<str>,
    /// Its `then`.
    pub then: Decision,
    /// Its condition as written.
    pub when: Arc<str>,
    /// `true`, `false`, or `null` (unknown).
    pub fired: Option<bool>,
    /// Each signal it read, keyed by the call as written.
    pub values: SignalValues,
    /// Why it is unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unknown_reason: Option<String>,
    /// Consecutive evaluations its condition held, against `for`.
    pub streak: u32,
    /// The rule's `for`.
    #[serde(rename = "for")]
    pub for_evaluations: u32,
    /// The comparisons of a signal against a constant in its condition, e.g.
    /// `burn_rate("x", "1h") > 14.4`: what the human table shows as thresholds.
    #[serde(default, skip_serializing_if = "<[_]>::is_empty")]
    pub thresholds: Arc<[ThresholdReport]>,
    /// A dry-run rule: evaluated and reported, never deciding.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
}

/// A signal compared against a constant in a rule's condition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThresholdReport {
    /// The call as written, the key of `values` (e.g. `burn_rate("x", "1h")`).
    pub signal: String,
    /// The comparison operator, signal on the left (`>`, `>=`, `<`, `<=`, `==`, `!=`).
    pub op: String,
    /// The constant.
    pub value: f64,
}

/// A query that was sent, for the evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueryReport {
    /// What it measured, e.g. `window checkout-availability 1h (total)`.
    pub purpose: String,
    /// The exact PromQL.
    pub promql: String,
}

/// One train's evaluation with its evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvaluationReport {
    /// Train ID.
    pub train: String,
    /// Gate name.
    pub gate: String,
    /// The decision.
    pub decision: Decision,
    /// One-line reason.
    pub reason: String,
    /// The deciding rule, if any.
    pub rule: Option<String>,
    /// Evaluation time (RFC 3339).
    #[serde(with = "rfc3339")]
    pub evaluated_at: DateTime<Utc>,
    /// When the train started (RFC 3339).
    #[serde(with = "rfc3339")]
    pub started_at: DateTime<Utc>,
    /// Seconds since start at the evaluation.
    pub age_secs: i64,
    /// `verify_for` of the gate, in seconds.
    pub verify_for_secs: u64,
    /// The baseline train, if any.
    pub baseline: Option<String>,
    /// How the baseline was measured.
    pub baseline_desc: Option<String>,
    /// Evidence was inconclusive (unknown rule or too little traffic).
    pub inconclusive: bool,
    /// The telemetry failure, if the evaluation was an error.
    pub telemetry_error: Option<String>,
    /// What the decision would have been with the dry-run rules enforced, when that differs
    /// (`null` otherwise).
    #[serde(default)]
    pub would_have: Option<Decision>,
    /// The gate is in dry-run: it decides and reports, never notifies.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
    /// Every rule's outcome.
    pub rules: Vec<RuleReport>,
    /// The signals the rules read.
    pub signals: SignalsReport,
    /// The queries sent for this evaluation (shared by the trains of one batch when they are
    /// the same for each).
    pub queries: Arc<[QueryReport]>,
}

/// RFC 3339 with seconds precision and `Z`.
pub mod rfc3339 {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serializes as RFC 3339.
    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
    }

    /// Parses RFC 3339.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}

/// Formats a time as gate prints it everywhere.
pub fn format_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn num(v: Option<f64>) -> Option<Num> {
    v.map(Num)
}

/// Everything needed to build a report.
#[derive(Debug, Clone, Copy)]
pub struct ReportInput<'a> {
    /// The train.
    pub train: &'a TrainSpec,
    /// Its gate.
    pub gate: &'a gate_rules::config::Gate,
    /// The config's SLOs.
    pub slos: &'a [Slo],
    /// The resolver over the train's signals (`None` when telemetry failed).
    pub resolver: Option<Resolver<'a>>,
    /// The plan that was executed.
    pub plan: &'a Plan,
    /// The decision function's result.
    pub evaluation: &'a Evaluation,
}

/// Builds the report for one train.
pub fn build(input: ReportInput<'_>) -> EvaluationReport {
    let ReportInput {
        train,
        gate,
        slos,
        resolver,
        plan,
        evaluation,
    } = input;
    let mut signals = SignalsReport::default();
    if let Some(r) = resolver {
        fill_signals(&mut signals, &r);
    }
    let parts = plan
        .shared_rule_parts
        .get_or_init(|| gate.rules.iter().map(RuleParts::of).collect());
    let rules = evaluation
        .rules
        .iter()
        .map(|o| {
            let rule = parts.iter().find(|r| *r.name == *o.name);
            RuleReport {
                name: rule.map_or_else(|| o.name.as_str().into(), |r| Arc::clone(&r.name)),
                then: o.then,
                when: rule.map_or_else(|| "".into(), |r| Arc::clone(&r.when)),
                fired: o.fired,
                values: o.values.clone(),
                unknown_reason: o.unknown_reason.clone(),
                streak: o.streak,
                for_evaluations: rule.map_or(1, |r| r.for_evaluations),
                thresholds: rule.map_or_else(|| Arc::from([]), |r| Arc::clone(&r.thresholds)),
                dry_run: o.dry_run,
            }
        })
        .collect();
    EvaluationReport {
        train: train.id.to_string(),
        gate: gate.name.clone(),
        decision: evaluation.decision,
        reason: evaluation.reason.clone(),
        rule: evaluation.rule.clone(),
        evaluated_at: plan.at,
        started_at: train.started_at,
        age_secs: crate::planner::age_secs(train, plan.at),
        verify_for_secs: gate.verify_for.as_duration().as_secs(),
        baseline: train.baseline.as_ref().map(|b| b.to_string()),
        baseline_desc: resolver.and_then(|r| r.signals.baseline_desc.clone()),
        inconclusive: evaluation.inconclusive,
        telemetry_error: evaluation.telemetry_error.clone(),
        would_have: evaluation.would_have,
        dry_run: gate.dry_run,
        rules,
        signals,
        queries: queries_for(plan, slos, train),
    }
}

/// The parts of a rule's report that are the same for every train: built once per plan and
/// shared by the reports of its trains.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleParts {
    name: Arc<str>,
    when: Arc<str>,
    for_evaluations: u32,
    thresholds: Arc<[ThresholdReport]>,
}

impl RuleParts {
    fn of(rule: &gate_rules::config::Rule) -> RuleParts {
        RuleParts {
            name: rule.name.as_str().into(),
            when: rule.when.as_str().into(),
            for_evaluations: rule.for_evaluations,
            thresholds: thresholds_of(rule).into(),
        }
    }
}

/// A rule's thresholds, as its compiled condition lists them.
pub fn thresholds_of(rule: &gate_rules::config::Rule) -> Vec<ThresholdReport> {
    rule.expr
        .thresholds
        .iter()
        .map(|t| ThresholdReport {
            signal: t.signal.clone(),
            op: t.op.to_string(),
            value: t.value,
        })
        .collect()
}

fn fill_signals(out: &mut SignalsReport, r: &Resolver<'_>) {
    let signals: &Signals = r.signals;
    for rule in &r.gate.rules {
        for s in &rule.expr.signals {
            let value = r.resolve(s);
            let number = match &value {
                Resolved::Number(n) => *n,
                Resolved::Delta(_) => None,
            };
            match s {
                SignalRef::BurnRate { slo, window } => {
                    put2(&mut out.burn_rate, slo, window.to_string(), num(number))
                }
                SignalRef::ErrorRatio { slo, window } => {
                    put2(&mut out.error_ratio, slo, window.to_string(), num(number))
                }
                SignalRef::Requests { slo, window } => {
                    put2(&mut out.requests, slo, window.to_string(), num(number))
                }
                SignalRef::Errors { slo, window } => {
                    put2(&mut out.errors, slo, window.to_string(), num(number))
                }
                SignalRef::ServiceBurnRate { slo, window } => put2(
                    &mut out.service_burn_rate,
                    slo,
                    window.to_string(),
                    num(number),
                ),
                SignalRef::ServiceErrorRatio { slo, window } => put2(
                    &mut out.service_error_ratio,
                    slo,
                    window.to_string(),
                    num(number),
                ),
                SignalRef::BudgetRemaining { slo } => {
                    out.budget_remaining.insert(slo.clone(), num(number));
                }
                SignalRef::ErrorDelta { slo } => {
                    let delta = match value {
                        Resolved::Delta(Some(d)) => Some(DeltaReport {
                            absolute: Num(d.absolute),
                            relative: Num(d.relative),
                            e_value: Num(d.e_value),
                            p_value: Num(d.p_value),
                            significant: (!d.p_value.is_nan()).then_some(d.significant),
                            ratio_lower: Num(d.ratio_lower),
                            looks: d.looks,
                            dispersion: Num(d.dispersion),
                            train_ratio: Num(d.train_ratio),
                            baseline_ratio: Num(d.baseline_ratio),
                        }),
                        _ => None,
                    };
                    out.error_delta.insert(slo.clone(), delta);
                }
                SignalRef::Query { promql } => {
                    out.query.insert(promql.clone(), num(number));
                }
                SignalRef::Age => {}
            }
        }
    }
    for slo in &r.gate.slos {
        let counts = signals.since_start.get(slo).copied().flatten();
        out.since_start.insert(
            slo.clone(),
            counts.map(|c| SinceStart {
                requests: Num(c.total),
                errors: Num(c.errors),
            }),
        );
    }
}

fn put2(map: &mut Keyed<Keyed<Option<Num>>>, slo: &str, window: String, v: Option<Num>) {
    match map.get_mut(slo) {
        Some(windows) => {
            windows.insert(window, v);
        }
        None => {
            map.insert(slo.to_string(), Keyed::from_iter([(window, v)]));
        }
    }
}

/// The queries of a plan as evidence for one train. Anchored baseline queries combine every
/// train's term; only this train's term is shown, and a train without a term (no baseline
/// train) lists no baseline query: the batch's query, one term per train of the gate, can be
/// megabytes long and says nothing about this train. A range query (the stepped
/// `before_start` baseline) is shown as sent, its purpose naming its grid and the window
/// summed out of it for this train.
fn queries_for(plan: &Plan, slos: &[Slo], train: &TrainSpec) -> Arc<[QueryReport]> {
    let per_train = |q: &PlannedQuery| {
        q.range.is_some() || matches!(q.target, crate::planner::Target::Baseline { .. })
    };
    if plan.queries.iter().any(per_train) {
        return queries_of_train(plan, slos, train).into();
    }
    Arc::clone(
        plan.shared_report_queries
            .get_or_init(|| queries_of_train(plan, slos, train).into()),
    )
}

fn queries_of_train(plan: &Plan, slos: &[Slo], train: &TrainSpec) -> Vec<QueryReport> {
    // Baselines come in several queries of many trains each: the train's term once per
    // (SLO, counter).
    let mut baselines_shown = Vec::new();
    plan.queries
        .iter()
        .filter_map(|q: &PlannedQuery| {
            if let Some(range) = q.range {
                let time =
                    |secs: i64| format_time(DateTime::from_timestamp(secs, 0).unwrap_or_default());
                let window = crate::planner::baseline_window(train, plan.at)
                    .map(|(from, to)| format!(", summed over {} – {}", time(from), time(to)))
                    .unwrap_or_default();
                return Some(QueryReport {
                    purpose: format!(
                        "{}: range query every {} s from {} to {}{window}",
                        purpose(q),
                        range.step,
                        time(range.start),
                        time(range.end)
                    ),
                    promql: q.promql.clone(),
                });
            }
            let promql = match q.target {
                crate::planner::Target::Baseline { .. } => {
                    if baselines_shown.contains(&(&q.target, q.part)) {
                        return None;
                    }
                    baselines_shown.push((&q.target, q.part));
                    crate::planner::baseline_term(plan, q, slos, train)?
                }
                _ => q.promql.clone(),
            };
            Some(QueryReport {
                purpose: purpose(q),
                promql,
            })
        })
        .collect()
}

fn purpose(q: &PlannedQuery) -> String {
    use crate::planner::{Part, Target};
    let part = match q.part {
        Some(Part::Events) => " (errors)",
        Some(Part::Total) => " (total)",
        None => "",
    };
    match &q.target {
        Target::Window { slo, window } => format!("{slo} over {window}{part}"),
        Target::SinceStart { slo } => format!("{slo} since start{part}"),
        Target::Baseline { slo } => format!("{slo} baseline{part}"),
        Target::Service { slo } => format!("{slo} service-wide over the SLO period{part}"),
        Target::ServiceWindow { slo, window } => {
            format!("{slo} service-wide over {window}{part}")
        }
        Target::Custom { promql } => format!("query({promql:?})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::planner::{self, Target};
    use chrono::Duration;
    use gate_rules::decide::{self, Mode, Telemetry, TrainState};

    fn config() -> gate_rules::Config {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../fixtures/examples/gate.yaml"
        );
        gate_rules::config::load_file(std::path::Path::new(path)).expect("example config loads")
    }

    #[test]
    fn each_train_lists_its_own_baseline_term_and_no_other_trains_terms() {
        let config = config();
        let gate = config.gate("checkout").unwrap();
        let at = DateTime::from_timestamp(1_793_534_400, 0).unwrap();
        let trains: Vec<TrainSpec> = (0..3)
            .map(|i| TrainSpec {
                id: format!("t-{i}").parse().unwrap(),
                started_at: at - Duration::minutes(40),
                // t-0 has no baseline train; t-1 and t-2 follow their predecessor.
                baseline: (i > 0).then(|| format!("t-{}", i - 1).parse().unwrap()),
            })
            .collect();
        let plan = planner::plan(&config, gate, &trains, at).unwrap();
        let batch = plan
            .queries
            .iter()
            .filter(|q| matches!(q.target, Target::Baseline { .. }))
            .count();
        assert_eq!(batch, 2, "errors and total baseline queries");
        let evaluation = decide::decide(
            gate,
            &config.slos,
            2400.0,
            Telemetry::Failed("test"),
            &TrainState::default(),
            Mode::Stateless,
        );
        let report_of = |train: &TrainSpec| {
            build(ReportInput {
                train,
                gate,
                slos: &config.slos,
                resolver: None,
                plan: &plan,
                evaluation: &evaluation,
            })
        };
        let baseline_queries = |r: &EvaluationReport| -> Vec<String> {
            r.queries
                .iter()
                .filter(|q| q.purpose.contains("baseline"))
                .map(|q| q.promql.clone())
                .collect()
        };

        let without = report_of(&trains[0]);
        assert_eq!(baseline_queries(&without), Vec::<String>::new());
        assert_eq!(without.queries.len(), plan.queries.len() - batch);

        let with = baseline_queries(&report_of(&trains[2]));
        assert_eq!(with.len(), 2);
        for promql in &with {
            assert!(promql.contains(r#"train_id="t-1""#), "{promql}");
            assert!(!promql.contains("t-0"), "another train's term: {promql}");
            assert!(!promql.contains(" or "), "the whole batch: {promql}");
        }
    }

    #[test]
    fn chunked_baseline_queries_show_the_train_term_once_per_counter() {
        let config = config();
        let gate = config.gate("checkout").unwrap();
        let at = DateTime::from_timestamp(1_793_534_400, 0).unwrap();
        let n = 2 * planner::ANCHORED_TERMS_PER_QUERY + 1;
        let trains: Vec<TrainSpec> = (0..n)
            .map(|i| TrainSpec {
                id: format!("t-{i}").parse().unwrap(),
                started_at: at - Duration::minutes(40),
                baseline: Some(format!("b-{i}").parse().unwrap()),
            })
            .collect();
        let plan = planner::plan(&config, gate, &trains, at).unwrap();
        let evaluation = decide::decide(
            gate,
            &config.slos,
            2400.0,
            Telemetry::Failed("test"),
            &TrainState::default(),
            Mode::Stateless,
        );
        let last = &trains[n - 1];
        let report = build(ReportInput {
            train: last,
            gate,
            slos: &config.slos,
            resolver: None,
            plan: &plan,
            evaluation: &evaluation,
        });
        let shown: Vec<&QueryReport> = report
            .queries
            .iter()
            .filter(|q| q.purpose.contains("baseline"))
            .collect();
        assert_eq!(shown.len(), 2, "{shown:#?}");
        assert!(shown[0].purpose.contains("errors") && shown[1].purpose.contains("total"));
        for q in shown {
            assert!(
                q.promql.contains(&format!("\"{}\"", last.id)),
                "{}",
                q.promql
            );
        }
    }
}
