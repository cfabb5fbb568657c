//! Pass 1, the schema: the YAML tree read into a spanned raw config.
//!
//! [`read`] walks the [`Node`] tree of [`super::yaml`] and fills the raw schema below, in which
//! every field is a [`Field`]: absent, invalid (already reported), or present with its value
//! already typed (durations parsed, decisions resolved) and its span kept for later passes.
//! Everything that can be judged from one field or one entry is judged here: unknown fields
//! (with "did you mean"), types, durations, ranges, enumerations, env var names, URLs,
//! required fields and the exactly-one-of counter rules. Nothing stops the walk: a bad field
//! becomes [`Field::Invalid`] and the rest of the entry is still read, so the later passes
//! ([`super::validate`]) can check references and expressions of the parts that made sense.
//!
//! The three-state [`Field`] is what keeps messages honest: a field present with a wrong value
//! is reported once, as wrong, and never again as missing.

use std::collections::BTreeMap;

mod fields;

use super::diagnostic::{closest, Sink, Span};
use super::model::{BaselineKind, WebhookFormat};
use super::yaml::{Key, Kind, Node};
use crate::duration::PromDuration;
use crate::vocab::{Decision, HoldDecision};

/// A value with the span of its source text.
#[derive(Debug, Clone)]
pub(super) struct At<T> {
    pub value: T,
    pub span: Span,
}

/// One field of the raw schema.
#[derive(Debug, Clone, Default)]
pub(super) enum Field<T> {
    /// Not in the file: the default applies (or it is missing, if required).
    #[default]
    Absent,
    /// In the file but wrong; already reported.
    Invalid,
    /// In the file and well-formed.
    Present(At<T>),
}

impl<T> Field<T> {
    pub(super) fn get(&self) -> Option<&At<T>> {
        match self {
            Field::Present(at) => Some(at),
            _ => None,
        }
    }

    pub(super) fn value(&self) -> Option<&T> {
        self.get().map(|at| &at.value)
    }

    pub(super) fn is_absent(&self) -> bool {
        matches!(self, Field::Absent)
    }

    /// The value, the default when absent, `None` when invalid.
    pub(super) fn or(&self, default: T) -> Option<T>
    where
        T: Clone,
    {
        match self {
            Field::Absent => Some(default),
            Field::Invalid => None,
            Field::Present(at) => Some(at.value.clone()),
        }
    }
}

/// The whole file.
#[derive(Debug)]
pub(super) struct RawConfig {
    pub prometheus: RawPrometheus,
    pub train_label: Field<String>,
    pub slos: Vec<RawSlo>,
    pub gates: Vec<RawGate>,
    pub webhooks: Vec<RawWebhook>,
    pub public_url: Field<String>,
    pub retention: Field<PromDuration>,
    pub metrics_per_train: Field<bool>,
}

#[derive(Debug, Default)]
pub(super) struct RawPrometheus {
    pub url: Field<String>,
    pub timeout: Field<PromDuration>,
    pub headers: Field<BTreeMap<String, String>>,
    pub bearer_token_env: Field<String>,
    pub external_url: Field<String>,
    pub max_response_mib: Field<u64>,
}

#[derive(Debug)]
pub(super) struct RawSlo {
    pub name: Field<String>,
    pub objective: Field<f64>,
    pub period: Field<PromDuration>,
    pub errors: Field<String>,
    pub good: Field<String>,
    pub errors_query: Field<String>,
    pub good_query: Field<String>,
    pub total: Field<String>,
    pub total_query: Field<String>,
}

#[derive(Debug)]
pub(super) struct RawGate {
    pub span: Span,
    pub name: Field<String>,
    pub slos: Field<Vec<At<String>>>,
    pub interval: Field<PromDuration>,
    pub verify_for: Field<PromDuration>,
    pub watch_for: Field<PromDuration>,
    pub min_requests: Field<u64>,
    pub baseline: Field<BaselineKind>,
    pub on_inconclusive: Field<HoldDecision>,
    pub on_telemetry_error: Field<HoldDecision>,
    pub max_consecutive_errors: Field<u32>,
    pub resume_after: Field<u32>,
    pub alpha: Field<f64>,
    pub dry_run: Field<bool>,
    pub min_effect: Field<f64>,
    pub evaluation_delay: Field<std::time::Duration>,
    pub max_train_age: Field<PromDuration>,
    pub rules: Vec<RawRule>,
    /// `false` when `rules` itself was malformed (reported), so the gate cannot be built.
    pub rules_ok: bool,
}

#[derive(Debug)]
pub(super) struct RawRule {
    pub name: Field<String>,
    pub when: Field<String>,
    pub then: Field<Decision>,
    pub for_evaluations: Field<u32>,
    pub dry_run: Field<bool>,
}

#[derive(Debug)]
pub(super) struct RawWebhook {
    pub name: Field<String>,
    pub url: Field<String>,
    pub on: Field<Vec<At<Decision>>>,
    pub format: Field<WebhookFormat>,
    pub secret_env: Field<String>,
    pub timeout: Field<PromDuration>,
    pub max_attempts: Field<u32>,
}

const TOP_FIELDS: &[&str] = &[
    "prometheus",
    "train_label",
    "slos",
    "gates",
    "webhooks",
    "public_url",
    "store",
    "metrics",
];
const STORE_FIELDS: &[&str] = &["retention"];
const METRICS_FIELDS: &[&str] = &["per_train"];
const PROMETHEUS_FIELDS: &[&str] = &[
    "url",
    "timeout",
    "headers",
    "bearer_token_env",
    "external_url",
    "max_response_mib",
];
const SLO_FIELDS: &[&str] = &[
    "name",
    "objective",
    "period",
    "errors",
    "good",
    "errors_query",
    "good_query",
    "total",
    "total_query",
];
const GATE_FIELDS: &[&str] = &[
    "name",
    "slos",
    "interval",
    "verify_for",
    "watch_for",
    "min_requests",
    "baseline",
    "on_inconclusive",
    "on_telemetry_error",
    "max_consecutive_errors",
    "resume_after",
    "alpha",
    "min_effect",
    "evaluation_delay",
    "max_train_age",
    "rules",
    "dry_run",
];
const RULE_FIELDS: &[&str] = &["name", "when", "then", "for", "dry_run"];
const WEBHOOK_FIELDS: &[&str] = &[
    "name",
    "url",
    "on",
    "format",
    "secret_env",
    "timeout",
    "max_attempts",
];

/// Reads the tree into the raw schema, reporting every schema problem to `sink`.
/// `None` only when the document is not a mapping at all.
pub(super) fn read(root: &Node, sink: &mut Sink<'_>) -> Option<RawConfig> {
    match &root.kind {
        Kind::Null => {
            sink.error(
                Span::new(0, 0),
                "the config is empty",
                Some("define the SLOs under `slos` and the gates under `gates`".to_string()),
            );
            return None;
        }
        Kind::Map(_) => {}
        other => {
            sink.error(
                root.span,
                format!("the config must be a mapping, found {}", other.describe()),
                Some("start with `slos:` and `gates:` at the top level".to_string()),
            );
            return None;
        }
    }
    let fields = Fields::read(sink, root, "at the top level", TOP_FIELDS)?;
    let prometheus = match fields.get("prometheus") {
        Some(entry) => read_prometheus(sink, entry),
        None => RawPrometheus::default(),
    };
    let store = match fields.get("store") {
        Some((_, node)) if !matches!(node.kind, Kind::Null) => {
            Fields::read(sink, node, "in `store`", STORE_FIELDS)
        }
        _ => None,
    };
    let mut r = Reader { sink };
    let retention = match &store {
        Some(store) => r.duration(store.get("retention")),
        None => Field::Absent,
    };
    let train_label = r.label_name(fields.get("train_label"));
    let public_url = r.url(fields.get("public_url"));
    let metrics_per_train = match fields.get("metrics") {
        Some((_, node)) if !matches!(node.kind, Kind::Null) => {
            match Fields::read(r.sink, node, "in `metrics`", METRICS_FIELDS) {
                Some(metrics) => r.boolean(metrics.get("per_train")),
                None => Field::Invalid,
            }
        }
        _ => Field::Absent,
    };
    let slos = r.list(fields.get("slos"), "slos", |r, node| r.slo(node));
    let gates = r.list(fields.get("gates"), "gates", |r, node| r.gate(node));
    let webhooks = r.list(fields.get("webhooks"), "webhooks", |r, node| {
        r.webhook(node)
    });
    Some(RawConfig {
        prometheus,
        train_label,
        slos: slos.unwrap_or_default(),
        gates: gates.unwrap_or_default(),
        webhooks: webhooks.unwrap_or_default(),
        public_url,
        retention,
        metrics_per_train,
    })
}

fn read_prometheus(sink: &mut Sink<'_>, (_, node): (&Key, &Node)) -> RawPrometheus {
    if matches!(node.kind, Kind::Null) {
        return RawPrometheus::default();
    }
    let Some(fields) = Fields::read(sink, node, "in `prometheus`", PROMETHEUS_FIELDS) else {
        return RawPrometheus::default();
    };
    let mut r = Reader { sink };
    RawPrometheus {
        url: r.url(fields.get("url")),
        timeout: r.duration(fields.get("timeout")),
        headers: r.headers(fields.get("headers")),
        bearer_token_env: r.env_name(fields.get("bearer_token_env")),
        external_url: r.url(fields.get("external_url")),
        max_response_mib: r.whole(fields.get("max_response_mib"), 1),
    }
}

/// The known entries of one mapping, unknown and repeated keys reported.
struct Fields<'n> {
    entries: Vec<(&'static str, &'n Key, &'n Node)>,
    /// Known fields suggested for a misspelt key: their absence is already explained.
    suggested: Vec<&'static str>,
}

impl<'n> Fields<'n> {
    /// Reads a mapping node; `what` places it in messages ("in SLO `x`").
    /// A null node is an empty mapping. `None` (reported) when the node is not a mapping.
    fn read(
        sink: &mut Sink<'_>,
        node: &'n Node,
        what: &str,
        known: &[&'static str],
    ) -> Option<Fields<'n>> {
        let entries = match &node.kind {
            Kind::Map(entries) => entries.as_slice(),
            Kind::Null => &[],
            other => {
                sink.error(
                    node.span,
                    format!("expected a mapping, found {}", other.describe()),
                    Some(format!("known fields: {}", known.join(", "))),
                );
                return None;
            }
        };
        let mut fields = Fields {
            entries: Vec::new(),
            suggested: Vec::new(),
        };
        for (key, value) in entries {
            let Some(&name) = known.iter().find(|k| **k == key.name) else {
                let close = closest(&key.name, known.iter().copied());
                fields.suggested.extend(close);
                let hint = close.map_or_else(
                    || format!("known fields: {}", known.join(", ")),
                    |c| format!("did you mean `{c}`?"),
                );
                sink.error(
                    key.span,
                    format!("unknown field `{}` {what}", key.name),
                    Some(hint),
                );
                continue;
            };
            if let Some((_, first, _)) = fields.entries.iter().find(|(n, _, _)| *n == name) {
                let (line, _) = sink.index().line_col(sink.text(), first.span.start);
                sink.error(
                    key.span,
                    format!("`{name}` is given twice, first on line {line}"),
                    Some("remove one of them".to_string()),
                );
                continue;
            }
            fields.entries.push((name, key, value));
        }
        Some(fields)
    }

    /// Whether a missing `name` was already explained by a misspelt key.
    fn explains_missing(fields: &Option<Fields<'_>>, name: &str) -> bool {
        fields.as_ref().is_none_or(|f| f.suggested.contains(&name))
    }

    fn get(&self, name: &str) -> Option<(&'n Key, &'n Node)> {
        self.entries
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|(_, k, v)| (*k, *v))
    }
}

/// `SLO `name`` for messages, or `SLO #n` when the entry has no usable name.
fn entity(kind: &str, node: &Node, position: usize) -> String {
    if let Kind::Map(entries) = &node.kind {
        if let Some((_, value)) = entries.iter().find(|(k, _)| k.name == "name") {
            if let Kind::Str(name) = &value.kind {
                if !name.is_empty() {
                    return format!("{kind} `{name}`");
                }
            }
        }
    }
    format!("{kind} #{}", position + 1)
}

/// Field readers; each reports its own problems and returns a [`Field`].
struct Reader<'s, 't> {
    sink: &'s mut Sink<'t>,
}

type Entry<'n> = Option<(&'n Key, &'n Node)>;

impl Reader<'_, '_> {
    fn slo(&mut self, (position, node): (usize, &Node)) -> RawSlo {
        let what = entity("SLO", node, position);
        let fields = Fields::read(self.sink, node, &format!("in {what}"), SLO_FIELDS);
        let get = |name: &str| fields.as_ref().and_then(|f| f.get(name));
        let mut slo = RawSlo {
            name: self.string(get("name")),
            objective: self.number(get("objective")),
            period: self.duration(get("period")),
            errors: self.string(get("errors")),
            good: self.string(get("good")),
            errors_query: self.string(get("errors_query")),
            good_query: self.string(get("good_query")),
            total: self.string(get("total")),
            total_query: self.string(get("total_query")),
        };
        if fields.is_none() {
            return slo;
        }
        let explained = |name: &str| Fields::explains_missing(&fields, name);
        let at = slo.name.get().map_or(node.span, |n| n.span);
        if slo.name.is_absent() && !explained("name") {
            self.error(
                at,
                format!("{what} has no `name`"),
                Some("add `name: <slo name>`; rules refer to SLOs by name".to_string()),
            );
        }
        if let Some(objective) = slo.objective.get() {
            let value = objective.value;
            if !(value > 0.0 && value < 100.0) {
                let hint = if value == 100.0 {
                    "an objective of 100 leaves no error budget; use e.g. 99.9"
                } else {
                    "the percent of events that must be good, e.g. 99.9"
                };
                self.error(
                    objective.span,
                    format!(
                        "`objective` must be between 0 and 100 (exclusive), got {}",
                        self.source_text(objective.span)
                    ),
                    Some(hint.to_string()),
                );
                slo.objective = Field::Invalid;
            }
        } else if slo.objective.is_absent() && !explained("objective") {
            self.error(
                at,
                format!("{what} has no `objective`"),
                Some("add `objective: <percent of good events>`, e.g. 99.9".to_string()),
            );
        }
        self.exactly_one(
            &what,
            at,
            &explained,
            &[
                ("errors", &slo.errors),
                ("good", &slo.good),
                ("errors_query", &slo.errors_query),
                ("good_query", &slo.good_query),
            ],
            "add `errors: <selector of failed events>`, or one of `good`, `errors_query`, `good_query`",
        );
        self.exactly_one(
            &what,
            at,
            &explained,
            &[("total", &slo.total), ("total_query", &slo.total_query)],
            "add `total: <selector of all events>`, or `total_query`",
        );
        slo
    }

    fn source_text(&self, span: Span) -> String {
        self.sink
            .text()
            .get(span.start..span.start + span.len)
            .unwrap_or_default()
            .to_string()
    }

    /// Reports a missing group (at `at`) or every member given after the first.
    fn exactly_one(
        &mut self,
        what: &str,
        at: Span,
        explained: &dyn Fn(&str) -> bool,
        group: &[(&str, &Field<String>)],
        missing_hint: &str,
    ) {
        let given: Vec<(&str, Option<Span>)> = group
            .iter()
            .filter(|(_, f)| !f.is_absent())
            .map(|(n, f)| (*n, f.get().map(|a| a.span)))
            .collect();
        let names: Vec<&str> = group.iter().map(|(n, _)| *n).collect();
        match given.as_slice() {
            [] if names.iter().any(|n| explained(n)) => {}
            [] => {
                let message = if names.len() == 2 {
                    format!("{what} has no `{}`", names[0])
                } else {
                    format!("{what} has no `{}` or `{}`", names[0], names[1])
                };
                self.error(at, message, Some(missing_hint.to_string()));
            }
            [_] => {}
            [(first, _), rest @ ..] => {
                for (name, span) in rest {
                    self.error(
                        span.unwrap_or(at),
                        format!("{what} has both `{first}` and `{name}`"),
                        Some(format!("give exactly one of {}", or_list(&names))),
                    );
                }
            }
        }
    }

    fn gate(&mut self, (position, node): (usize, &Node)) -> RawGate {
        let what = entity("gate", node, position);
        let fields = Fields::read(self.sink, node, &format!("in {what}"), GATE_FIELDS);
        let get = |name: &str| fields.as_ref().and_then(|f| f.get(name));
        let rules = self.list(get("rules"), "rules", |r, item| r.rule(item));
        let rules_ok = rules.is_some() || get("rules").is_none();
        let mut gate = RawGate {
            span: node.span,
            name: self.string(get("name")),
            slos: self.string_list(get("slos")),
            interval: self.duration(get("interval")),
            verify_for: self.duration(get("verify_for")),
            watch_for: self.duration(get("watch_for")),
            min_requests: self.whole(get("min_requests"), 0),
            baseline: self.choice(
                get("baseline"),
                &[
                    ("previous_train", BaselineKind::PreviousTrain),
                    ("before_start", BaselineKind::BeforeStart),
                    ("none", BaselineKind::None),
                ],
            ),
            on_inconclusive: self.hold(get("on_inconclusive")),
            on_telemetry_error: self.hold(get("on_telemetry_error")),
            max_consecutive_errors: self.count(get("max_consecutive_errors"), 1),
            resume_after: self.count(get("resume_after"), 1),
            alpha: self.number(get("alpha")),
            dry_run: self.boolean(get("dry_run")),
            min_effect: self.number(get("min_effect")),
            evaluation_delay: self.duration_or_zero(get("evaluation_delay")),
            max_train_age: self.duration(get("max_train_age")),
            rules: rules.unwrap_or_default(),
            rules_ok,
        };
        if let Some(alpha) = gate.alpha.get() {
            if !(alpha.value > 0.0 && alpha.value < 1.0) {
                self.error(
                    alpha.span,
                    format!(
                        "`alpha` must be between 0 and 1 (exclusive), got {}",
                        self.source_text(alpha.span)
                    ),
                    Some("the significance level of error_delta, e.g. 0.01".to_string()),
                );
                gate.alpha = Field::Invalid;
            }
        }
        if let Some(min_requests) = gate.min_requests.get() {
            if min_requests.value == 0 {
                self.error(
                    min_requests.span,
                    "`min_requests` must be at least 1, got 0".to_string(),
                    Some(
                        "with 0, a train that saw no traffic at all would count as verified and promote; use e.g. 100"
                            .to_string(),
                    ),
                );
                gate.min_requests = Field::Invalid;
            }
        }
        if let Some(min_effect) = gate.min_effect.get() {
            if !(min_effect.value.is_finite() && min_effect.value >= 0.0) {
                self.error(
                    min_effect.span,
                    format!(
                        "`min_effect` must be a number ≥ 0, got {}",
                        self.source_text(min_effect.span)
                    ),
                    Some(
                        "the relative increase of the error rate error_delta tolerates, e.g. 0.05 for 5 %"
                            .to_string(),
                    ),
                );
                gate.min_effect = Field::Invalid;
            }
        }
        if gate.name.is_absent() && !Fields::explains_missing(&fields, "name") {
            self.error(
                node.span,
                format!("{what} has no `name`"),
                Some("add `name: <gate name>`; trains are registered against it".to_string()),
            );
        }
        gate
    }

    fn rule(&mut self, (position, node): (usize, &Node)) -> RawRule {
        let what = entity("rule", node, position);
        let fields = Fields::read(self.sink, node, &format!("in {what}"), RULE_FIELDS);
        let get = |name: &str| fields.as_ref().and_then(|f| f.get(name));
        let rule = RawRule {
            name: self.string(get("name")),
            when: self.string(get("when")),
            then: self.then(get("then")),
            for_evaluations: self.count(get("for"), 1),
            dry_run: self.boolean(get("dry_run")),
        };
        let explained = |name: &str| Fields::explains_missing(&fields, name);
        {
            let at = rule.name.get().map_or(node.span, |n| n.span);
            if rule.name.is_absent() && !explained("name") {
                self.error(at, format!("{what} has no `name`"), None);
            }
            if rule.when.is_absent() && !explained("when") {
                self.error(
                    at,
                    format!("{what} has no `when`"),
                    Some(
                        "add the condition, e.g. `when: burn_rate(\"my-slo\", \"1h\") > 14.4`"
                            .to_string(),
                    ),
                );
            }
            if rule.then.is_absent() && !explained("then") {
                self.error(
                    at,
                    format!("{what} has no `then`"),
                    Some("add `then: rollback`, `pause` or `promote`".to_string()),
                );
            }
        }
        rule
    }

    fn webhook(&mut self, (position, node): (usize, &Node)) -> RawWebhook {
        let what = entity("webhook", node, position);
        let fields = Fields::read(self.sink, node, &format!("in {what}"), WEBHOOK_FIELDS);
        let get = |name: &str| fields.as_ref().and_then(|f| f.get(name));
        let webhook = RawWebhook {
            name: self.string(get("name")),
            url: self.url(get("url")),
            on: self.decisions(get("on")),
            format: self.choice(
                get("format"),
                &[
                    ("json", WebhookFormat::Json),
                    ("cloudevents", WebhookFormat::Cloudevents),
                    ("slack", WebhookFormat::Slack),
                ],
            ),
            secret_env: self.env_name(get("secret_env")),
            timeout: self.duration(get("timeout")),
            max_attempts: self.count(get("max_attempts"), 1),
        };
        let explained = |name: &str| Fields::explains_missing(&fields, name);
        {
            let at = webhook.name.get().map_or(node.span, |n| n.span);
            if webhook.name.is_absent() && !explained("name") {
                self.error(at, format!("{what} has no `name`"), None);
            }
            if webhook.url.is_absent() && !explained("url") {
                self.error(
                    at,
                    format!("{what} has no `url`"),
                    Some("add `url: http://…` of the receiver".to_string()),
                );
            }
        }
        webhook
    }
}

/// `a, b or c`.
fn or_list(names: &[&str]) -> String {
    match names {
        [] => String::new(),
        [one] => one.to_string(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::super::diagnostic::Sink;
    use super::super::yaml;
    use super::*;

    /// Runs the schema pass alone; returns the raw config and the plain error lines.
    fn schema(text: &str) -> (Option<RawConfig>, Vec<String>) {
        let mut sink = Sink::new("t.yaml", text);
        let root = yaml::parse(text, sink.index()).expect("test YAML parses");
        let raw = read(&root, &mut sink);
        let lines = sink.finish().iter().map(|d| d.render_plain()).collect();
        (raw, lines)
    }

    const SLO: &str = "slos:\n  - name: a\n    objective: 99.9\n    errors: e\n    total: t\n";

    #[test]
    fn a_valid_file_has_no_schema_errors_and_keeps_values() {
        let text = format!(
            "{SLO}gates:\n  - name: g\n    verify_for: 1h\n    on_inconclusive: pending\n    rules:\n      - name: r\n        when: x\n        then: rollback\n        for: 2\nwebhooks:\n  - name: w\n    url: https://h/x\n    on: [pause, rollback]\n    secret_env: S_1\n"
        );
        let (raw, errors) = schema(&text);
        assert_eq!(errors, Vec::<String>::new());
        let raw = raw.unwrap();
        assert_eq!(raw.slos[0].objective.value(), Some(&99.9));
        let gate = &raw.gates[0];
        assert_eq!(
            gate.verify_for.value(),
            Some(&PromDuration::from_secs(3600))
        );
        assert_eq!(gate.on_inconclusive.value(), Some(&HoldDecision::Pending));
        assert!(gate.interval.is_absent());
        assert_eq!(gate.rules[0].then.value(), Some(&Decision::Rollback));
        assert_eq!(gate.rules[0].for_evaluations.value(), Some(&2));
        let on: Vec<Decision> = raw.webhooks[0]
            .on
            .value()
            .unwrap()
            .iter()
            .map(|d| d.value)
            .collect();
        assert_eq!(on, [Decision::Pause, Decision::Rollback]);
    }

    #[test]
    fn every_unknown_field_is_reported_with_did_you_mean() {
        let text = "slo: []\npromethues:\n  url: http://x\nslos:\n  - name: a\n    objectve: 99\n    errors: e\n    total: t\n    colour: red\n";
        let (_, errors) = schema(text);
        // The misspelt `objectve` explains the missing `objective`: reported once.
        assert_eq!(
            errors,
            [
                "t.yaml:1:1: unknown field `slo` at the top level (did you mean `slos`?)",
                "t.yaml:2:1: unknown field `promethues` at the top level (did you mean `prometheus`?)",
                "t.yaml:6:5: unknown field `objectve` in SLO `a` (did you mean `objective`?)",
                "t.yaml:9:5: unknown field `colour` in SLO `a` (known fields: name, objective, period, errors, good, errors_query, good_query, total, total_query)",
            ]
        );
    }

    #[test]
    fn values_are_checked_by_type_and_range() {
        let text = "prometheus:\n  timeout: 10\n  url: localhost:9090\n  bearer_token_env: \"abc def\"\ntrain_label: __x\nslos:\n  - name: a\n    objective: 100\n    period: 30days\n    errors: e\n    total: t\n  - name: b\n    objective: \"99\"\n    errors: e\n    total: t\ngates:\n  - name: g\n    interval: [1]\n    min_requests: -1\n    alpha: 1.5\n    max_consecutive_errors: 0\n    baseline: previous\n";
        let (_, errors) = schema(text);
        let expected = [
            "t.yaml:2:12: `timeout` is not a duration: `10` has no unit (add a unit, e.g. `10s` or `10m`)",
            "t.yaml:3:8: `url` must start with http:// or https://: `localhost:9090` (e.g. http://127.0.0.1:9090)",
            "t.yaml:4:21: `bearer_token_env` must name an environment variable, not hold a value (letters, digits and `_`, e.g. GATE_WEBHOOK_SECRET; the secret itself goes in that variable)",
            "t.yaml:5:14: `train_label` is not a valid Prometheus label name: `__x` (letters, digits and `_`, not starting with a digit or `__`)",
            "t.yaml:8:16: `objective` must be between 0 and 100 (exclusive), got 100 (an objective of 100 leaves no error budget; use e.g. 99.9)",
            "t.yaml:9:13: `period` is not a duration: `30days` (use a number and a unit: ms, s, m, h, d, w or y, e.g. 30s, 5m, 1h30m, 30d)",
            "t.yaml:13:16: `objective` must be a number, found a string (remove the quotes)",
            "t.yaml:18:15: `interval` must be a duration, found a list (use a number and a unit: ms, s, m, h, d, w or y, e.g. 30s, 5m, 1h30m, 30d)",
            "t.yaml:19:19: `min_requests` must be at least 0, got -1",
            "t.yaml:20:12: `alpha` must be between 0 and 1 (exclusive), got 1.5 (the significance level of error_delta, e.g. 0.01)",
            "t.yaml:21:29: `max_consecutive_errors` must be at least 1, got 0",
            "t.yaml:22:15: `previous` is not a valid `baseline` (did you mean `previous_train`? expected previous_train, before_start or none)",
        ];
        assert_eq!(errors, expected);
    }

    #[test]
    fn decisions_are_restricted_and_promote_is_never_a_fallback() {
        let text = format!(
            "{SLO}gates:\n  - name: g\n    on_inconclusive: promote\n    on_telemetry_error: wait\n    rules:\n      - name: r\n        when: x\n        then: promote-ish\n      - name: s\n        when: x\n        then: pending\nwebhooks:\n  - name: w\n    url: http://h\n    on: [pause, pause, rolback]\n    format: xml\n"
        );
        let (_, errors) = schema(&text);
        let expected = [
            "t.yaml:8:22: `on_inconclusive` cannot be `promote`: gate never promotes blind (use `pause` to hold the train or `pending` to keep waiting)",
            "t.yaml:9:25: `wait` is not a valid `on_telemetry_error` (expected pause or pending)",
            "t.yaml:13:15: `promote-ish` is not a valid `then` (did you mean `promote`? expected rollback, pause or promote)",
            "t.yaml:16:15: a rule cannot decide `pending`: it is what no rule firing means (expected rollback, pause or promote)",
            "t.yaml:20:17: `pause` is listed twice in `on`",
            "t.yaml:20:24: `rolback` is not a decision (did you mean `rollback`? expected pending, promote, pause or rollback)",
            "t.yaml:21:13: `xml` is not a valid `format` (expected json, cloudevents or slack)",
        ];
        assert_eq!(errors, expected);
    }

    #[test]
    fn counters_exactly_one_and_required_fields() {
        let text = "slos:\n  - name: a\n    objective: 99\n    errors: e\n    good: g\n    total: t\n    total_query: q\n  - objective: 99\n  - name: c\n    objective: 99\n    errors: [1]\n    total: t\ngates:\n  - rules:\n      - then: pause\nwebhooks:\n  - name: w\n";
        let (_, errors) = schema(text);
        let expected = [
            "t.yaml:5:11: SLO `a` has both `errors` and `good` (give exactly one of errors, good, errors_query or good_query)",
            "t.yaml:7:18: SLO `a` has both `total` and `total_query` (give exactly one of total or total_query)",
            "t.yaml:8:5: SLO #2 has no `name` (add `name: <slo name>`; rules refer to SLOs by name)",
            "t.yaml:8:5: SLO #2 has no `errors` or `good` (add `errors: <selector of failed events>`, or one of `good`, `errors_query`, `good_query`)",
            "t.yaml:8:5: SLO #2 has no `total` (add `total: <selector of all events>`, or `total_query`)",
            "t.yaml:11:13: `errors` must be a string, found a list",
            "t.yaml:14:5: gate #1 has no `name` (add `name: <gate name>`; trains are registered against it)",
            "t.yaml:15:9: rule #1 has no `name`",
            "t.yaml:15:9: rule #1 has no `when` (add the condition, e.g. `when: burn_rate(\"my-slo\", \"1h\") > 14.4`)",
            "t.yaml:17:11: webhook `w` has no `url` (add `url: http://…` of the receiver)",
        ];
        assert_eq!(errors, expected);
    }

    #[test]
    fn repeated_keys_are_reported_once_with_the_first_position() {
        let text = "slos:\n  - name: a\n    objective: 99\n    objective: 98\n    errors: e\n    total: t\n";
        let (raw, errors) = schema(text);
        assert_eq!(
            errors,
            ["t.yaml:4:5: `objective` is given twice, first on line 3 (remove one of them)"]
        );
        assert_eq!(raw.unwrap().slos[0].objective.value(), Some(&99.0));
    }

    #[test]
    fn an_empty_or_scalar_document_is_one_error() {
        assert_eq!(
            schema("").1,
            ["t.yaml:1:1: the config is empty (define the SLOs under `slos` and the gates under `gates`)"]
        );
        assert_eq!(
            schema("hello\n").1,
            ["t.yaml:1:1: the config must be a mapping, found a string (start with `slos:` and `gates:` at the top level)"]
        );
    }
}
