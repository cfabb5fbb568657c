//! Passes 2–4: references, rule expressions, PromQL; then the validated model.
//!
//! Runs on the raw config of pass 1 ([`super::raw`]), on whatever it could make sense of:
//!
//! 2. **references** — SLO, gate, webhook names unique; rule names unique within a gate; every
//!    SLO a gate lists exists (with "did you mean");
//! 3. **rule expressions** — each `when` goes through [`crate::expr::compile`], which parses the
//!    CEL, checks gate's functions, SLO names (against every SLO in the file) and windows, and
//!    type-checks. Its errors are positioned inside the expression; [`super::yaml::offset_map`]
//!    turns them into file positions, whatever the quoting of the scalar. A rule may only read
//!    the SLOs its gate lists, because `min_requests` is checked on exactly those; when a gate
//!    omits `slos`, they default to the SLOs its rules read, and a gate that would read none is
//!    refused (it would promote on no evidence: never promote blind);
//! 4. **PromQL** — every selector and `*_query` parses ([`crate::query`]), and a `*_query` uses
//!    `$window` (otherwise every window would measure the same thing).
//!
//! The model ([`Config`]) is assembled only when no pass found a problem, defaults applied
//! here and nowhere else.

use super::diagnostic::{did_you_mean, Sink, Span};
use super::model::{
    BadOrGood, BaselineKind, Config, Gate, MetricsConfig, PrometheusConfig, Rule, Slo, StoreConfig,
    Webhook, WebhookFormat, DEFAULT_MAX_RESPONSE_MIB, DEFAULT_RETENTION_DAYS,
};
use super::raw::{At, Field, RawConfig, RawGate, RawRule, RawSlo, RawWebhook};
use super::yaml::offset_map;
use crate::duration::PromDuration;
use crate::expr::{self, CompiledExpr};
use crate::query;
use crate::vocab::{Counter, Decision, HoldDecision, SignalRef};

/// Default Prometheus URL.
const DEFAULT_PROMETHEUS_URL: &str = "http://127.0.0.1:9090";
/// Default label carrying the train ID.
const DEFAULT_TRAIN_LABEL: &str = "train_id";

/// Runs passes 2–4 and, when the whole file is clean, returns the model.
pub(super) fn validate(raw: &RawConfig, sink: &mut Sink<'_>) -> Option<Config> {
    // Pass 2: references.
    let slo_names = unique_names(sink, raw.slos.iter().map(|s| &s.name), "SLO");
    unique_names(sink, raw.gates.iter().map(|g| &g.name), "gate");
    unique_names(sink, raw.webhooks.iter().map(|w| &w.name), "webhook");
    for gate in &raw.gates {
        unique_names(sink, gate.rules.iter().map(|r| &r.name), "rule");
        check_gate_slos(sink, gate, &slo_names);
    }

    // Pass 3: rule expressions.
    let names: Vec<&str> = slo_names.iter().map(|n| n.value.as_str()).collect();
    let compiled: Vec<Vec<Option<CompiledExpr>>> = raw
        .gates
        .iter()
        .map(|gate| {
            gate.rules
                .iter()
                .map(|rule| compile_rule(sink, rule, &names))
                .collect()
        })
        .collect();
    let gate_slos: Vec<Option<Vec<String>>> = raw
        .gates
        .iter()
        .zip(&compiled)
        .map(|(gate, exprs)| resolve_gate_slos(sink, gate, exprs))
        .collect();
    for (gate, exprs) in raw.gates.iter().zip(&compiled) {
        check_rule_use(sink, gate, exprs);
    }

    // Pass 4: PromQL.
    let label = raw
        .train_label
        .value()
        .map_or(DEFAULT_TRAIN_LABEL, String::as_str);
    for slo in &raw.slos {
        check_promql(sink, slo, label);
    }

    if !sink.is_empty() {
        return None;
    }
    build(raw, compiled, gate_slos)
}

/// Reports repeated names; returns the first occurrence of each.
fn unique_names<'r>(
    sink: &mut Sink<'_>,
    names: impl Iterator<Item = &'r Field<String>>,
    kind: &str,
) -> Vec<&'r At<String>> {
    let mut seen: Vec<&At<String>> = Vec::new();
    for name in names.filter_map(Field::get) {
        if let Some(first) = seen.iter().find(|s| s.value == name.value) {
            let (line, _) = sink.index().line_col(sink.text(), first.span.start);
            sink.error(
                name.span,
                format!(
                    "duplicate {kind} name `{}`, first defined on line {line}",
                    name.value
                ),
                Some(format!("{kind} names must be unique; rename or remove one")),
            );
        } else {
            seen.push(name);
        }
    }
    seen
}

fn check_gate_slos(sink: &mut Sink<'_>, gate: &RawGate, slo_names: &[&At<String>]) {
    let Some(listed) = gate.slos.get() else {
        return;
    };
    let gate_name = gate.name.value().map_or("", String::as_str);
    for (i, slo) in listed.value.iter().enumerate() {
        if listed.value[..i].iter().any(|s| s.value == slo.value) {
            sink.error(
                slo.span,
                format!("SLO `{}` is listed twice in gate `{gate_name}`", slo.value),
                None,
            );
            continue;
        }
        if slo_names.iter().any(|n| n.value == slo.value) {
            continue;
        }
        let hint = did_you_mean(&slo.value, slo_names.iter().map(|n| n.value.as_str()))
            .unwrap_or_else(|| defined_slos(slo_names));
        sink.error(
            slo.span,
            format!("unknown SLO `{}` in gate `{gate_name}`", slo.value),
            Some(hint),
        );
    }
}

fn defined_slos(slo_names: &[&At<String>]) -> String {
    if slo_names.is_empty() {
        "no SLO is defined: add it under `slos`".to_string()
    } else {
        let names: Vec<&str> = slo_names.iter().map(|n| n.value.as_str()).collect();
        format!("defined SLOs: {}", names.join(", "))
    }
}

/// The file span of `len` bytes at `offset` inside a string scalar's decoded value.
fn inner_span(text: &str, scalar: &At<String>, offset: usize, len: usize) -> Span {
    let raw = text
        .get(scalar.span.start..scalar.span.start + scalar.span.len)
        .unwrap_or_default();
    let map = offset_map(raw, &scalar.value);
    let last = map.len().saturating_sub(1);
    let start = map.get(offset.min(last)).copied().unwrap_or(0);
    let end = map
        .get(offset.saturating_add(len).min(last))
        .copied()
        .unwrap_or(start)
        .max(start);
    Span::new(scalar.span.start + start, end - start)
}

fn compile_rule(sink: &mut Sink<'_>, rule: &RawRule, slo_names: &[&str]) -> Option<CompiledExpr> {
    let when = rule.when.get()?;
    match expr::compile(&when.value, slo_names) {
        Ok(compiled) => Some(compiled),
        Err(errors) => {
            for error in errors {
                let span = inner_span(sink.text(), when, error.offset, error.len);
                let message = match rule.name.value() {
                    Some(name) => format!("rule `{name}`: {}", error.message),
                    None => error.message,
                };
                sink.error(span, message, error.hint);
            }
            None
        }
    }
}

/// The SLO a signal reads, if it reads one.
fn signal_slo(signal: &SignalRef) -> Option<&str> {
    match signal {
        SignalRef::BurnRate { slo, .. }
        | SignalRef::ErrorRatio { slo, .. }
        | SignalRef::Requests { slo, .. }
        | SignalRef::Errors { slo, .. }
        | SignalRef::BudgetRemaining { slo }
        | SignalRef::ErrorDelta { slo } => Some(slo),
        SignalRef::Age | SignalRef::Query { .. } => None,
    }
}

/// Rules that can never work as written: `error_delta` on a gate with `baseline: none` is
/// unknown at every evaluation, so the gate could never conclude (an error). A `then: promote`
/// rule does not gate promotion (a warning): a train promotes after `verify_for` on clean,
/// conclusive evidence whether or not the rule holds.
fn check_rule_use(sink: &mut Sink<'_>, gate: &RawGate, exprs: &[Option<CompiledExpr>]) {
    let gate_name = gate.name.value().map_or("", String::as_str);
    let no_baseline = gate.baseline.value() == Some(&BaselineKind::None);
    for (rule, expr) in gate.rules.iter().zip(exprs) {
        let rule_name = rule.name.value().map_or("", String::as_str);
        if let (true, Some(expr), Some(when)) = (no_baseline, expr, rule.when.get()) {
            let reads_delta = expr
                .signals
                .iter()
                .any(|s| matches!(s, SignalRef::ErrorDelta { .. }));
            if reads_delta {
                let span = match when.value.find("error_delta") {
                    Some(offset) => inner_span(sink.text(), when, offset, "error_delta".len()),
                    None => when.span,
                };
                sink.error(
                    span,
                    format!(
                        "rule `{rule_name}` reads `error_delta`, but gate `{gate_name}` has `baseline: none`: it would be unknown at every evaluation"
                    ),
                    Some(
                        "set the gate's `baseline` to `previous_train` or `before_start`, or compare burn rates instead"
                            .to_string(),
                    ),
                );
            }
        }
        if let Some(then) = rule.then.get() {
            if then.value == Decision::Promote {
                sink.warn(
                    then.span,
                    format!(
                        "rule `{rule_name}` (`then: promote`) does not gate promotion: a train promotes after `verify_for` when no rollback or pause rule fires and the evidence is conclusive, whether or not this rule holds"
                    ),
                    Some(
                        "to hold promotion until a condition holds, write its negation as a `then: pause` rule"
                            .to_string(),
                    ),
                );
            }
        }
    }
}

/// The SLOs of a gate: as listed (every rule's SLOs must be among them), or by default the
/// SLOs its rules read. `None` when that cannot be known (a problem was reported).
fn resolve_gate_slos(
    sink: &mut Sink<'_>,
    gate: &RawGate,
    exprs: &[Option<CompiledExpr>],
) -> Option<Vec<String>> {
    let gate_name = gate.name.value().map_or("", String::as_str);
    let listed: Option<Vec<String>> = match &gate.slos {
        Field::Invalid => return None,
        Field::Absent => None,
        Field::Present(at) => Some(at.value.iter().map(|s| s.value.clone()).collect()),
    };
    let mut read: Vec<String> = Vec::new();
    for (rule, expr) in gate.rules.iter().zip(exprs) {
        let (Some(expr), Some(when)) = (expr, rule.when.get()) else {
            continue;
        };
        for slo in expr.signals.iter().filter_map(signal_slo) {
            if let Some(listed) = &listed {
                if !listed.iter().any(|s| s == slo) && !read.iter().any(|s| s == slo) {
                    let rule_name = rule.name.value().map_or("", String::as_str);
                    sink.error(
                        slo_mention(sink.text(), when, slo),
                        format!(
                            "rule `{rule_name}` reads SLO `{slo}`, which gate `{gate_name}` does not list in `slos`"
                        ),
                        Some(format!(
                            "add `{slo}` to the gate's `slos`: min_requests is checked on those"
                        )),
                    );
                }
            }
            if !read.iter().any(|s| s == slo) {
                read.push(slo.to_string());
            }
        }
    }
    let all_compiled = exprs.iter().all(Option::is_some)
        && gate.rules.iter().all(|r| r.when.get().is_some())
        && gate.rules_ok;
    let slos = match listed {
        Some(listed) => listed,
        None if !all_compiled => return None,
        None => read,
    };
    if slos.is_empty() {
        let at = gate.name.get().map_or(gate.span, |n| n.span);
        sink.error(
            at,
            format!("gate `{gate_name}` reads no SLO: it would promote on no evidence"),
            Some("list the SLOs it checks in `slos`, or write rules that read them".to_string()),
        );
        return None;
    }
    Some(slos)
}

/// Where a `when` expression names an SLO: its first quoted mention, else the whole scalar.
fn slo_mention(text: &str, when: &At<String>, slo: &str) -> Span {
    for quote in ['"', '\''] {
        let needle = format!("{quote}{slo}{quote}");
        if let Some(offset) = when.value.find(&needle) {
            return inner_span(text, when, offset, needle.len());
        }
    }
    when.span
}

fn check_promql(sink: &mut Sink<'_>, slo: &RawSlo, label: &str) {
    let selectors = [
        ("errors", &slo.errors),
        ("good", &slo.good),
        ("total", &slo.total),
    ];
    for (field, value) in selectors {
        let Some(at) = value.get() else { continue };
        if let Err(err) = query::validate_selector(&at.value) {
            let span = match err.offset {
                Some(offset) => inner_span(sink.text(), at, offset, 1),
                None => at.span,
            };
            // A syntax error says nothing about what the field takes; a refused shape does.
            let hint = err.message.starts_with("invalid PromQL").then(|| {
                format!("`{field}` takes a counter selector such as `http_requests_total{{code=~\"5..\"}}`")
            });
            sink.error(span, format!("`{field}`: {}", err.message), hint);
        }
    }
    let queries = [
        ("errors_query", &slo.errors_query),
        ("good_query", &slo.good_query),
        ("total_query", &slo.total_query),
    ];
    for (field, value) in queries {
        let Some(at) = value.get() else { continue };
        if !at.value.contains(query::WINDOW_PLACEHOLDER) {
            sink.error(
                at.span,
                format!("`{field}` does not use `$window`"),
                Some(
                    "write the range as `[$window]`, e.g. `sum(increase(x_total[$window]))`"
                        .to_string(),
                ),
            );
            continue;
        }
        if let Err(err) = query::validate_counter_query(&at.value, label) {
            let span = match err.offset {
                Some(offset) => inner_span(sink.text(), at, unsubstituted(&at.value, offset), 1),
                None => at.span,
            };
            let hint = if err.message.contains("train label") {
                Some(format!(
                    "gate computes the query per train and keeps `{label}` through aggregations; do not drop or overwrite that label"
                ))
            } else if err.message.contains("@ modifier") {
                Some(
                    "remove the `@`: gate sets the evaluation time and anchors baselines itself"
                        .to_string(),
                )
            } else {
                None
            };
            sink.error(span, format!("`{field}`: {}", err.message), hint);
        }
    }
}

/// An offset in a query as validated (each `$window` replaced by a sample window) mapped back
/// to the query as written.
fn unsubstituted(written: &str, offset: usize) -> usize {
    const SAMPLE: &str = "5m";
    let mut shift = 0;
    for (at, _) in written.match_indices(query::WINDOW_PLACEHOLDER) {
        let substituted_at = at - shift;
        if offset < substituted_at + SAMPLE.len() {
            break;
        }
        shift += query::WINDOW_PLACEHOLDER.len() - SAMPLE.len();
    }
    offset + shift
}

fn build(
    raw: &RawConfig,
    compiled: Vec<Vec<Option<CompiledExpr>>>,
    gate_slos: Vec<Option<Vec<String>>>,
) -> Option<Config> {
    let url = raw.prometheus.url.or(DEFAULT_PROMETHEUS_URL.to_string())?;
    let prometheus = PrometheusConfig {
        external_url: raw.prometheus.external_url.or(url.clone())?,
        url,
        timeout: raw.prometheus.timeout.or(PromDuration::from_secs(10))?,
        headers: raw.prometheus.headers.or(Default::default())?,
        bearer_token_env: optional(&raw.prometheus.bearer_token_env)?,
        max_response_mib: raw
            .prometheus
            .max_response_mib
            .or(DEFAULT_MAX_RESPONSE_MIB)?,
    };
    let slos = raw.slos.iter().map(build_slo).collect::<Option<Vec<_>>>()?;
    let gates = raw
        .gates
        .iter()
        .zip(compiled)
        .zip(gate_slos)
        .map(|((gate, exprs), slos)| build_gate(gate, exprs, slos?))
        .collect::<Option<Vec<_>>>()?;
    let webhooks = raw
        .webhooks
        .iter()
        .map(build_webhook)
        .collect::<Option<Vec<_>>>()?;
    Some(Config {
        prometheus,
        train_label: raw.train_label.or(DEFAULT_TRAIN_LABEL.to_string())?,
        slos,
        gates,
        webhooks,
        public_url: optional(&raw.public_url)?.map(|u| u.trim_end_matches('/').to_string()),
        store: StoreConfig {
            retention: raw
                .retention
                .or(PromDuration::from_secs(DEFAULT_RETENTION_DAYS * 86_400))?,
        },
        metrics: MetricsConfig {
            per_train: raw.metrics_per_train.or(true)?,
        },
    })
}

/// `Some(None)` when absent, `Some(Some(v))` when present, `None` when invalid.
fn optional<T: Clone>(field: &Field<T>) -> Option<Option<T>> {
    match field {
        Field::Absent => Some(None),
        Field::Invalid => None,
        Field::Present(at) => Some(Some(at.value.clone())),
    }
}

fn build_slo(raw: &RawSlo) -> Option<Slo> {
    let selector = |f: &Field<String>| f.value().map(|v| Counter::Selector(v.clone()));
    let query = |f: &Field<String>| f.value().map(|v| Counter::Query(v.clone()));
    let (counts, events) = None
        .or(selector(&raw.errors).map(|c| (BadOrGood::Errors, c)))
        .or(selector(&raw.good).map(|c| (BadOrGood::Good, c)))
        .or(query(&raw.errors_query).map(|c| (BadOrGood::Errors, c)))
        .or(query(&raw.good_query).map(|c| (BadOrGood::Good, c)))?;
    Some(Slo {
        name: raw.name.value()?.clone(),
        objective: *raw.objective.value()?,
        period: raw.period.or(PromDuration::from_secs(30 * 86_400))?,
        counts,
        events,
        total: selector(&raw.total).or(query(&raw.total_query))?,
    })
}

fn build_gate(raw: &RawGate, exprs: Vec<Option<CompiledExpr>>, slos: Vec<String>) -> Option<Gate> {
    let rules = raw
        .rules
        .iter()
        .zip(exprs)
        .map(|(rule, expr)| {
            Some(Rule {
                name: rule.name.value()?.clone(),
                when: rule.when.value()?.clone(),
                then: *rule.then.value()?,
                for_evaluations: rule.for_evaluations.or(1)?,
                dry_run: rule.dry_run.or(false)?,
                expr: expr?,
            })
        })
        .collect::<Option<Vec<_>>>()?;
    Some(Gate {
        name: raw.name.value()?.clone(),
        slos,
        interval: raw.interval.or(PromDuration::from_secs(30))?,
        verify_for: raw.verify_for.or(PromDuration::from_secs(30 * 60))?,
        watch_for: raw.watch_for.or(PromDuration::from_secs(2 * 3600))?,
        min_requests: raw.min_requests.or(100)?,
        baseline: raw.baseline.or(BaselineKind::PreviousTrain)?,
        on_inconclusive: raw.on_inconclusive.or(HoldDecision::Pause)?,
        on_telemetry_error: raw.on_telemetry_error.or(HoldDecision::Pause)?,
        max_consecutive_errors: raw.max_consecutive_errors.or(3)?,
        resume_after: raw.resume_after.or(4)?,
        alpha: raw.alpha.or(0.01)?,
        min_effect: raw.min_effect.or(0.05)?,
        evaluation_delay: raw.evaluation_delay.or(std::time::Duration::ZERO)?,
        max_train_age: raw
            .max_train_age
            .or(PromDuration::from_secs(7 * 24 * 3600))?,
        rules,
        dry_run: raw.dry_run.or(false)?,
    })
}

fn build_webhook(raw: &RawWebhook) -> Option<Webhook> {
    let on = match &raw.on {
        Field::Absent => Decision::ALL.to_vec(),
        Field::Invalid => return None,
        Field::Present(at) => at.value.iter().map(|d| d.value).collect(),
    };
    Some(Webhook {
        name: raw.name.value()?.clone(),
        url: raw.url.value()?.clone(),
        on,
        format: raw.format.or(WebhookFormat::Json)?,
        secret_env: optional(&raw.secret_env)?,
        timeout: raw.timeout.or(PromDuration::from_secs(10))?,
        max_attempts: optional(&raw.max_attempts)?,
    })
}

#[cfg(test)]
mod tests {
    use super::super::load_str;
    use super::*;

    fn errors(text: &str) -> Vec<String> {
        match load_str("t.yaml", text) {
            Ok(_) => Vec::new(),
            Err(err) => err.diagnostics().iter().map(|d| d.render_plain()).collect(),
        }
    }

    const SLOS: &str = "slos:\n  - name: checkout\n    objective: 99.9\n    errors: x_total{code=\"500\"}\n    total: x_total\n";

    #[test]
    fn defaults_fill_every_optional_field() {
        let text = format!("{SLOS}gates:\n  - name: g\n    slos: [checkout]\nwebhooks:\n  - name: w\n    url: http://h/x\n");
        let config = load_str("t.yaml", &text).expect("valid");
        assert_eq!(config.prometheus.url, "http://127.0.0.1:9090");
        assert_eq!(config.prometheus.timeout, PromDuration::from_secs(10));
        assert!(config.prometheus.headers.is_empty());
        assert_eq!(config.prometheus.bearer_token_env, None);
        assert_eq!(config.train_label, "train_id");
        let slo = &config.slos[0];
        assert_eq!(slo.period, PromDuration::from_secs(30 * 86_400));
        assert_eq!(slo.counts, BadOrGood::Errors);
        assert_eq!(
            slo.events,
            Counter::Selector("x_total{code=\"500\"}".into())
        );
        assert_eq!(slo.total, Counter::Selector("x_total".into()));
        let gate = &config.gates[0];
        assert_eq!(gate.slos, ["checkout"]);
        assert_eq!(gate.interval, PromDuration::from_secs(30));
        assert_eq!(gate.verify_for, PromDuration::from_secs(1800));
        assert_eq!(gate.watch_for, PromDuration::from_secs(7200));
        assert_eq!(gate.min_requests, 100);
        assert_eq!(gate.baseline, BaselineKind::PreviousTrain);
        assert_eq!(gate.on_inconclusive, HoldDecision::Pause);
        assert_eq!(gate.on_telemetry_error, HoldDecision::Pause);
        assert_eq!(gate.max_consecutive_errors, 3);
        assert_eq!(gate.resume_after, 4);
        assert_eq!(gate.alpha, 0.01);
        assert_eq!(gate.evaluation_delay, std::time::Duration::ZERO);
        assert_eq!(gate.max_train_age, PromDuration::from_secs(7 * 86_400));
        let hook = &config.webhooks[0];
        assert_eq!(hook.on, Decision::ALL.to_vec());
        assert_eq!(hook.format, WebhookFormat::Json);
        assert_eq!(hook.timeout, PromDuration::from_secs(10));
        assert_eq!(hook.max_attempts, None);
        assert_eq!(hook.secret_env, None);
    }

    #[test]
    fn evaluation_delay_may_be_zero_and_sets_the_evaluation_time() {
        let with = |delay: &str| {
            let text = format!(
                "{SLOS}gates:\n  - name: g\n    slos: [checkout]\n    evaluation_delay: {delay}\n    max_train_age: 1d\n"
            );
            load_str("t.yaml", &text).map(|c| c.gates[0].clone())
        };
        let zero = with("0s").expect("0s is allowed");
        assert_eq!(zero.evaluation_delay, std::time::Duration::ZERO);
        assert_eq!(zero.max_train_age, PromDuration::from_secs(86_400));
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-01T12:00:00Z")
            .unwrap()
            .to_utc();
        assert_eq!(zero.evaluation_time(now), now);
        let late = with("1m30s").expect("valid");
        assert_eq!(
            late.evaluation_time(now),
            now - chrono::Duration::seconds(90)
        );
        assert!(with("soon").is_err());
        assert!(with("90").is_err());
    }

    #[test]
    fn good_and_query_counters_are_kept_as_written() {
        let text = "slos:\n  - name: s\n    objective: 99\n    good_query: sum(increase(ok_total[$window]))\n    total: all_total\ngates:\n  - name: g\n    slos: [s]\n";
        let config = load_str("t.yaml", text).expect("valid");
        assert_eq!(config.slos[0].counts, BadOrGood::Good);
        assert_eq!(
            config.slos[0].events,
            Counter::Query("sum(increase(ok_total[$window]))".into())
        );
    }

    #[test]
    fn references_and_duplicates_are_reported_with_positions() {
        let text = format!("{SLOS}  - name: checkout\n    objective: 99\n    errors: e\n    total: t\ngates:\n  - name: g\n    slos: [checkot, checkout, checkout, zzz]\n  - name: g\n    slos: [checkout]\n");
        assert_eq!(
            errors(&text),
            [
                "t.yaml:6:11: duplicate SLO name `checkout`, first defined on line 2 (SLO names must be unique; rename or remove one)",
                "t.yaml:12:12: unknown SLO `checkot` in gate `g` (did you mean `checkout`?)",
                "t.yaml:12:31: SLO `checkout` is listed twice in gate `g`",
                "t.yaml:12:41: unknown SLO `zzz` in gate `g` (defined SLOs: checkout)",
                "t.yaml:13:11: duplicate gate name `g`, first defined on line 11 (gate names must be unique; rename or remove one)",
            ]
        );
    }

    #[test]
    fn a_gate_without_slos_or_rules_would_promote_blind() {
        let text = format!("{SLOS}gates:\n  - name: g\n    slos: []\n");
        assert_eq!(
            errors(&text),
            ["t.yaml:7:11: gate `g` reads no SLO: it would promote on no evidence (list the SLOs it checks in `slos`, or write rules that read them)"]
        );
    }

    #[test]
    fn promql_problems_point_into_the_selector() {
        let text = "slos:\n  - name: s\n    objective: 99\n    errors: 'x_total{code=\"5\"'\n    total_query: sum(rate(x[$window])) +\ngates:\n  - name: g\n    slos: [s]\n";
        let lines = errors(text);
        assert_eq!(lines.len(), 2, "{lines:#?}");
        assert!(
            lines[0].starts_with("t.yaml:4:13: `errors`: invalid PromQL"),
            "{lines:#?}"
        );
        assert!(
            lines[0].ends_with(
                "(`errors` takes a counter selector such as `http_requests_total{code=~\"5..\"}`)"
            ),
            "{lines:#?}"
        );
        assert!(
            lines[1].starts_with("t.yaml:5:18: `total_query`: invalid PromQL"),
            "{lines:#?}"
        );
    }

    #[test]
    fn query_offsets_are_mapped_back_across_window_placeholders() {
        let written = "a[$window] + b[$window] + c";
        let substituted = written.replace("$window", "5m");
        for needle in ["a[", "] + b", "b[", "] + c", "c"] {
            let s = substituted.rfind(needle).unwrap();
            let w = written.rfind(needle).unwrap();
            assert_eq!(unsubstituted(written, s), w, "{needle}");
        }
    }
}
