//! OpenSLO v1 → gate SLOs.
//!
//! All files are read together, as one set of objects, because OpenSLO objects refer to each
//! other by name: an `SLO` to its `SLI` (`indicatorRef`) and `AlertPolicy`s
//! (`alertPolicyRef`), a policy to its `AlertCondition`s (`conditionRef`), a metric source to
//! its `DataSource` (`metricSourceRef`). Inline objects work the same way. A file may hold one
//! object, a list of objects, or several `---` documents.
//!
//! Each objective of each `SLO` becomes a gate SLO (`<slo>` or, with several objectives,
//! `<slo>-<objective>`): `target` (0–1) or `targetPercent` → `objective` percent,
//! `timeWindow` (rolling) → `period`, the ratio metric's Prometheus queries → selectors
//! (`good:`/`errors:`/`total:`, for a plain counter selector) or `*_query` (for a query over
//! `{{.window}}`, see [`super::window_query`]). Its gate gets Sloth's window-pair rules
//! ([`super::burn`]) and one rule per `burnrate` `AlertCondition` of its alert policies:
//! `burn_rate(<slo>, <lookbackWindow>) > <threshold>`, `rollback` for severity `page` or
//! `critical`, `pause` otherwise, with `alertAfter` as `for` (evaluations of the default 30 s
//! interval).
//!
//! Refused, each with its line: other `apiVersion`s, `Timeslices`/`RatioTimeslices`
//! budgeting, calendar (non-rolling) windows and month/quarter/year durations, non-Prometheus
//! sources, `thresholdMetric`s and `raw` ratios (no event counts), gauge ratios
//! (`counter: false` with a plain selector), composite objectives, alert conditions other than
//! `burnrate` with `gt`/`gte`, and references to objects not in the files.

use std::collections::HashMap;

use super::node::{At, Doc};
use super::{
    check_unique, render, window_query, ImportError, ImportedRule, ImportedSlo, Input, Origin, Sli,
};
use crate::duration::PromDuration;

/// The gate interval `alertAfter` is counted in (the config's default `interval`).
const INTERVAL_SECS: u64 = 30;

/// The gate config for the OpenSLO v1 objects in `inputs`.
pub fn import(inputs: &[Input<'_>]) -> Result<String, Vec<ImportError>> {
    let slos = read(inputs)?;
    let files: Vec<&str> = inputs.iter().map(|i| i.file).collect();
    Ok(render("gate import openslo", &files, &slos))
}

/// The SLOs of the OpenSLO v1 objects in `inputs`, or every construct that cannot be imported.
pub fn read(inputs: &[Input<'_>]) -> Result<Vec<ImportedSlo>, Vec<ImportError>> {
    let mut errors = Vec::new();
    let mut parsed = Vec::new();
    for input in inputs {
        match Doc::parse(*input) {
            Ok(p) => parsed.push(p),
            Err(e) => errors.push(e),
        }
    }
    let mut objects: Vec<At<'_>> = Vec::new();
    for (doc, nodes) in &parsed {
        for node in nodes {
            let root = doc.at(node);
            let items = if root.items().is_empty() {
                vec![root]
            } else {
                root.items()
            };
            for object in items {
                let api = object.str(&["apiVersion"]).unwrap_or_default();
                if api == "openslo/v1" {
                    objects.push(object);
                } else {
                    errors.push(object.error(
                        format!("apiVersion: {api}"),
                        if api.starts_with("openslo/") {
                            "gate imports OpenSLO v1 (`apiVersion: openslo/v1`) only"
                        } else {
                            "not an OpenSLO object"
                        },
                    ));
                }
            }
        }
    }
    let set = Objects::new(&objects);
    let mut slos = Vec::new();
    let slo_objects: Vec<At<'_>> = objects
        .iter()
        .copied()
        .filter(|o| kind(o) == "SLO")
        .collect();
    if slo_objects.is_empty() && errors.is_empty() {
        for input in inputs {
            errors.push(ImportError {
                file: input.file.to_string(),
                line: 1,
                construct: "file".to_string(),
                reason: "no `kind: SLO` object: there is nothing to gate on (SLIs, alert \
                         policies and data sources are read only as the SLOs refer to them)"
                    .to_string(),
            });
        }
    }
    for slo in slo_objects {
        match read_slo(slo, &set) {
            Ok(mut imported) => slos.append(&mut imported),
            Err(mut e) => errors.append(&mut e),
        }
    }
    check_unique(&slos, &mut errors);
    if errors.is_empty() {
        Ok(slos)
    } else {
        Err(errors)
    }
}

fn kind(object: &At<'_>) -> String {
    object.str(&["kind"]).unwrap_or_default()
}

fn name(object: &At<'_>) -> String {
    object
        .get(&["metadata"])
        .and_then(|m| m.str(&["name"]))
        .unwrap_or_default()
}

/// The named objects of the input, by kind and name.
struct Objects<'d> {
    by_name: HashMap<(String, String), At<'d>>,
}

impl<'d> Objects<'d> {
    fn new(objects: &[At<'d>]) -> Self {
        let by_name = objects.iter().map(|o| ((kind(o), name(o)), *o)).collect();
        Objects { by_name }
    }

    fn get(&self, kind: &str, name: &str) -> Option<At<'d>> {
        self.by_name
            .get(&(kind.to_string(), name.to_string()))
            .copied()
    }

    /// An inline object (`{kind, metadata, spec}` or a bare `spec`) or the one `ref_key`
    /// names.
    fn resolve(
        &self,
        node: At<'d>,
        kind: &str,
        ref_key: &str,
    ) -> Result<(String, At<'d>), ImportError> {
        if let Some(reference) = node.str(&[ref_key]) {
            return self
                .get(kind, &reference)
                .map(|o| (reference.clone(), o))
                .ok_or_else(|| {
                    node.error(
                        format!("{ref_key}: {reference}"),
                        format!("no {kind} named `{reference}` in the files; pass the file that defines it too"),
                    )
                });
        }
        Ok((name(&node), node))
    }
}

fn read_slo(slo: At<'_>, set: &Objects<'_>) -> Result<Vec<ImportedSlo>, Vec<ImportError>> {
    let slo_name = name(&slo);
    let what = format!("OpenSLO SLO `{slo_name}`");
    let Some(spec) = slo.get(&["spec"]) else {
        return Err(vec![slo.error(&what, "it has no `spec`")]);
    };
    let mut errors = Vec::new();
    let method = spec.str(&["budgetingMethod"]).unwrap_or_default();
    if method != "Occurrences" {
        let at = spec.get(&["budgetingMethod"]).unwrap_or(spec);
        errors.push(at.error(
            format!("{what}: budgetingMethod: {method}"),
            "gate budgets by occurrences (events): time-slice budgets count good minutes, \
             not events, and would be a different SLO",
        ));
    }
    let (period, period_note) = match read_window(spec, &what) {
        Ok(p) => p,
        Err(e) => {
            errors.push(e);
            (PromDuration::from_secs(30 * 86_400), String::new())
        }
    };
    let sli = match read_indicator(spec, set, &what) {
        Ok(sli) => Some(sli),
        Err(e) => {
            errors.push(e);
            None
        }
    };
    let rules = match read_alert_policies(spec, set, &slo_name, &what) {
        Ok(r) => r,
        Err(mut e) => {
            errors.append(&mut e);
            Vec::new()
        }
    };
    let objectives = spec
        .get(&["objectives"])
        .map(|o| o.items())
        .unwrap_or_default();
    if objectives.is_empty() {
        errors.push(spec.error(format!("{what}: objectives"), "the SLO has no objectives"));
    }
    let mut out = Vec::new();
    for (i, objective) in objectives.iter().enumerate() {
        match read_objective(*objective, &what) {
            Ok(target) => {
                let gate_name = if objectives.len() == 1 {
                    slo_name.clone()
                } else {
                    let label = objective
                        .str(&["name", "displayName"])
                        .map(|n| slug(&n))
                        .filter(|n| !n.is_empty())
                        .unwrap_or_else(|| (i + 1).to_string());
                    format!("{slo_name}-{label}")
                };
                let mut notes = Vec::new();
                if let Some(d) = spec.str(&["description"]) {
                    notes.push(d.lines().collect::<Vec<_>>().join(" "));
                }
                if let Some(sli) = &sli {
                    let rules = rules
                        .iter()
                        .map(|r| ImportedRule {
                            when: r.when.replace(
                                &serde_json::to_string(&slo_name).unwrap_or_default(),
                                &serde_json::to_string(&gate_name).unwrap_or_default(),
                            ),
                            ..r.clone()
                        })
                        .collect();
                    out.push(ImportedSlo {
                        name: gate_name,
                        origin: Origin {
                            file: objective.doc.file.to_string(),
                            line: objective.line(),
                            what: format!("{what}, objective {}", i + 1),
                        },
                        objective: target,
                        period,
                        period_note: period_note.clone(),
                        sli: sli.clone(),
                        page_rules: true,
                        ticket_rules: true,
                        rules,
                        notes,
                    });
                }
            }
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// Lowercase letters, digits and `-`.
fn slug(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_string()
}

/// The period from `timeWindow`: the first window, rolling, of a fixed-length unit.
fn read_window(spec: At<'_>, what: &str) -> Result<(PromDuration, String), ImportError> {
    let Some(window) = spec
        .get(&["timeWindow"])
        .and_then(|w| w.items().first().copied())
    else {
        return Ok((
            PromDuration::from_secs(30 * 86_400),
            "no timeWindow in the source: gate's default period".to_string(),
        ));
    };
    let rolling = window.get(&["isRolling"]).is_some_and(|r| r.is_true());
    if !rolling || window.get(&["calendar"]).is_some() {
        return Err(window.error(
            format!("{what}: timeWindow (calendar)"),
            "gate's budget period is rolling; a calendar-aligned window (isRolling: false) \
             resets at fixed dates, which gate cannot express",
        ));
    }
    let text = window.str(&["duration"]).unwrap_or_default();
    let duration = opensl_duration(&text).map_err(|reason| {
        window
            .get(&["duration"])
            .unwrap_or(window)
            .error(format!("{what}: timeWindow.duration: {text}"), reason)
    })?;
    Ok((duration, format!("OpenSLO timeWindow {text}, rolling")))
}

/// An OpenSLO duration (`<n><unit>`, unit one of `m h d w M Q Y`) of fixed length.
fn opensl_duration(text: &str) -> Result<PromDuration, String> {
    let unit = text.chars().last().unwrap_or(' ');
    if matches!(unit, 'M' | 'Q' | 'Y') {
        return Err(format!(
            "`{unit}` (month, quarter, year) has no fixed length; write the period in days, \
             e.g. 30d"
        ));
    }
    text.parse::<PromDuration>()
        .map_err(|e| format!("not a duration: {e}"))
}

/// The objective as percent.
fn read_objective(objective: At<'_>, what: &str) -> Result<f64, ImportError> {
    if objective.get(&["indicator", "indicatorRef"]).is_some() {
        return Err(objective.error(
            format!("{what}: composite objective"),
            "objectives with their own indicator (composite SLOs) are not supported",
        ));
    }
    if objective
        .get(&["timeSliceTarget", "timeSliceWindow"])
        .is_some()
    {
        return Err(objective.error(
            format!("{what}: timeSliceTarget"),
            "time-slice objectives count good minutes, not events",
        ));
    }
    let percent = match (
        objective.get(&["target"]).and_then(|t| t.number()),
        objective.get(&["targetPercent"]).and_then(|t| t.number()),
    ) {
        (Some(t), _) => t * 100.0,
        (None, Some(p)) => p,
        (None, None) => {
            return Err(objective.error(format!("{what}: objective"), "no `target`"));
        }
    };
    // 0.999 × 100 is 99.9 only after rounding away binary noise.
    let percent = (percent * 1e9).round() / 1e9;
    if percent > 0.0 && percent < 100.0 {
        Ok(percent)
    } else {
        Err(objective.error(
            format!("{what}: target"),
            "gate needs a target strictly between 0 and 1 (100 % leaves no error budget)",
        ))
    }
}

fn read_indicator(spec: At<'_>, set: &Objects<'_>, what: &str) -> Result<Sli, ImportError> {
    let (sli_name, sli) = if let Some(inline) = spec.get(&["indicator"]) {
        (name(&inline), inline)
    } else if spec.get(&["indicatorRef"]).is_some() {
        set.resolve(spec, "SLI", "indicatorRef")?
    } else {
        return Err(spec.error(format!("{what}: indicator"), "the SLO has no indicator"));
    };
    let what = format!("{what}, SLI `{sli_name}`");
    let Some(sli_spec) = sli.get(&["spec"]) else {
        return Err(sli.error(&what, "the SLI has no `spec`"));
    };
    if let Some(threshold) = sli_spec.get(&["thresholdMetric"]) {
        return Err(threshold.error(
            format!("{what}: thresholdMetric"),
            "a threshold metric compares a value against a threshold; gate needs a ratio of \
             event counts (ratioMetric with good or bad, and total)",
        ));
    }
    let Some(ratio) = sli_spec.get(&["ratioMetric"]) else {
        return Err(sli_spec.error(&what, "no ratioMetric"));
    };
    if let Some(raw) = ratio.get(&["raw"]) {
        return Err(raw.error(
            format!("{what}: ratioMetric.raw"),
            "a raw ratio has no event counts; gate needs good (or bad) and total events",
        ));
    }
    let counter = ratio.get(&["counter"]).map_or(true, |c| c.is_true());
    let source = |key: &str| -> Result<(String, At<'_>, String), ImportError> {
        let node = ratio
            .get(&[key])
            .ok_or_else(|| ratio.error(format!("{what}: ratioMetric"), format!("no `{key}`")))?;
        metric(node, set, counter, &format!("{what}: ratioMetric.{key}"))
    };
    let (events_field, events) = match (ratio.get(&["good"]), ratio.get(&["bad"])) {
        (Some(_), _) => ("good", source("good")?),
        (None, Some(_)) => ("errors", source("bad")?),
        (None, None) => {
            return Err(ratio.error(format!("{what}: ratioMetric"), "neither `good` nor `bad`"));
        }
    };
    let total = source("total")?;
    let field = |base: &'static str, kind: &str| -> &'static str {
        match (base, kind) {
            ("good", "query") => "good_query",
            ("errors", "query") => "errors_query",
            ("total", "query") => "total_query",
            (base, _) => base,
        }
    };
    Ok(Sli {
        events: (field(events_field, &events.0), events.2),
        total: (field("total", &total.0), total.2),
    })
}

/// A metric source as gate counter: (`selector` or `query`, the node, the gate text).
fn metric<'d>(
    node: At<'d>,
    set: &Objects<'d>,
    counter: bool,
    what: &str,
) -> Result<(String, At<'d>, String), ImportError> {
    let source = node.get(&["metricSource"]).unwrap_or(node);
    let source_type = match source.str(&["type"]) {
        Some(t) => t,
        None => match source.str(&["metricSourceRef"]) {
            Some(_) => {
                let (_, data_source) = set.resolve(source, "DataSource", "metricSourceRef")?;
                data_source
                    .get(&["spec"])
                    .and_then(|s| s.str(&["type"]))
                    .unwrap_or_default()
            }
            None => String::new(),
        },
    };
    if !source_type.eq_ignore_ascii_case("prometheus") {
        return Err(source.error(
            format!("{what}: metricSource type {source_type}"),
            "gate reads Prometheus (or a Prometheus-compatible API); other sources cannot be \
             queried",
        ));
    }
    let query_node = source
        .get(&["spec"])
        .and_then(|s| s.get(&["query", "promql"]))
        .ok_or_else(|| source.error(format!("{what}: metricSource.spec"), "no `query`"))?;
    let query = query_node.text().unwrap_or_default();
    let query = query.trim();
    if window_query::has_window(query) {
        let converted = window_query::convert(query)
            .map_err(|reason| query_node.error(format!("{what}: query"), reason))?;
        return Ok(("query".to_string(), query_node, converted));
    }
    if crate::query::validate_selector(query).is_ok() {
        if !counter {
            return Err(query_node.error(
                format!("{what}: counter: false"),
                "a gauge has no event count over a window; gate needs counters (counter: true)",
            ));
        }
        return Ok(("selector".to_string(), query_node, query.to_string()));
    }
    Err(query_node.error(
        format!("{what}: query `{query}`"),
        "gate needs a plain counter selector (it adds increase(…[window]) itself) or a query \
         over {{.window}}, e.g. sum(rate(x[{{.window}}])); an aggregated instant query has no \
         window to evaluate over",
    ))
}

fn read_alert_policies(
    spec: At<'_>,
    set: &Objects<'_>,
    slo_name: &str,
    what: &str,
) -> Result<Vec<ImportedRule>, Vec<ImportError>> {
    let mut rules = Vec::new();
    let mut errors = Vec::new();
    let policies = spec
        .get(&["alertPolicies"])
        .map(|p| p.items())
        .unwrap_or_default();
    for policy in policies {
        let (policy_name, policy) = match set.resolve(policy, "AlertPolicy", "alertPolicyRef") {
            Ok(p) => p,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        let Some(policy_spec) = policy.get(&["spec"]) else {
            errors.push(policy.error(format!("{what}: alert policy"), "no `spec`"));
            continue;
        };
        if policy_spec
            .get(&["alertWhenBreaching"])
            .is_some_and(|b| !b.is_true())
        {
            errors.push(policy_spec.error(
                format!("{what}: alert policy `{policy_name}`: alertWhenBreaching: false"),
                "gate acts when the budget burns; a policy that does not alert on breaches has \
                 no gate rule",
            ));
            continue;
        }
        let conditions = policy_spec
            .get(&["conditions"])
            .map(|c| c.items())
            .unwrap_or_default();
        for condition in conditions {
            match set
                .resolve(condition, "AlertCondition", "conditionRef")
                .and_then(|(n, c)| condition_rule(c, &n, &policy_name, slo_name, what))
            {
                Ok(rule) if rules.iter().any(|r: &ImportedRule| r.name == rule.name) => {}
                Ok(rule) => rules.push(rule),
                Err(e) => errors.push(e),
            }
        }
    }
    if errors.is_empty() {
        Ok(rules)
    } else {
        Err(errors)
    }
}

fn condition_rule(
    condition: At<'_>,
    condition_name: &str,
    policy: &str,
    slo_name: &str,
    what: &str,
) -> Result<ImportedRule, ImportError> {
    let what = format!("{what}: alert condition `{condition_name}`");
    let spec = condition
        .get(&["spec"])
        .ok_or_else(|| condition.error(&what, "no `spec`"))?;
    let body = spec
        .get(&["condition"])
        .ok_or_else(|| spec.error(&what, "no `condition`"))?;
    let kind = body.str(&["kind"]).unwrap_or_default();
    if kind != "burnrate" {
        return Err(body.error(
            format!("{what}: kind {kind}"),
            "only `burnrate` alert conditions have a gate rule",
        ));
    }
    let op = match body.str(&["op"]).as_deref() {
        Some("gt") => ">",
        Some("gte") => ">=",
        other => {
            return Err(body.error(
                format!("{what}: op {}", other.unwrap_or("(none)")),
                "a burn-rate rule holds a train when the budget burns faster than the \
                 threshold: use gt or gte",
            ));
        }
    };
    let threshold = body
        .get(&["threshold"])
        .and_then(|t| t.number())
        .ok_or_else(|| body.error(format!("{what}: threshold"), "missing or not a number"))?;
    let window_text = body.str(&["lookbackWindow"]).unwrap_or_default();
    let window = opensl_duration(&window_text)
        .map_err(|reason| body.error(format!("{what}: lookbackWindow {window_text}"), reason))?;
    let for_evaluations = match body.str(&["alertAfter"]) {
        Some(text) => {
            let after = opensl_duration(&text)
                .map_err(|reason| body.error(format!("{what}: alertAfter {text}"), reason))?;
            let n = after.as_duration().as_secs().div_ceil(INTERVAL_SECS);
            u32::try_from(n).ok().filter(|&n| n > 1)
        }
        None => None,
    };
    let severity = spec.str(&["severity"]).unwrap_or_default();
    let then = if matches!(severity.to_ascii_lowercase().as_str(), "page" | "critical") {
        "rollback"
    } else {
        "pause"
    };
    let mut comment = vec![format!(
        "{}:{} OpenSLO alert condition `{condition_name}` (policy `{policy}`), severity {}",
        condition.doc.file,
        condition.line(),
        if severity.is_empty() {
            "none"
        } else {
            &severity
        }
    )];
    if let Some(n) = for_evaluations {
        comment.push(format!(
            "alertAfter {} = {n} evaluations of the default {INTERVAL_SECS}s interval",
            body.str(&["alertAfter"]).unwrap_or_default()
        ));
    }
    Ok(ImportedRule {
        name: condition_name.to_string(),
        comment,
        when: format!(
            "burn_rate({}, \"{window}\") {op} {threshold}",
            serde_json::to_string(slo_name).unwrap_or_default()
        ),
        then,
        for_evaluations,
    })
}
