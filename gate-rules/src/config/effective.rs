//! The effective config: a validated [`Config`] written back as a config file, every default
//! spelled out (`gate check --effective`).
//!
//! The model's own `Serialize` describes the model (`events` with a `kind`, `counts`), which is
//! what an API consumer wants; an engineer checking defaults wants their file back. So this
//! module mirrors the file format of SPEC §3 field by field, in the file's order, and the output
//! loads again into the same config — except the values of `prometheus.headers`, written as
//! [`REDACTED`]: they often carry credentials, and this output is pasted into tickets and chats.

use std::collections::BTreeMap;

use serde::Serialize;

use super::model::{BadOrGood, BaselineKind, Config, Gate, Slo, Webhook, WebhookFormat};
use crate::duration::PromDuration;
use crate::vocab::{Counter, Decision, HoldDecision};

/// What `gate check --effective` writes for a header's value.
pub const REDACTED: &str = "<redacted>";

/// The config as YAML in the file format, defaults included.
pub fn effective_yaml(config: &Config) -> String {
    let file = File::from(config);
    serde_saphyr::to_string(&file)
        .unwrap_or_else(|_| serde_json::to_string_pretty(&file).unwrap_or_default())
}

#[derive(Serialize)]
struct File<'a> {
    prometheus: Prometheus<'a>,
    train_label: &'a str,
    slos: Vec<SloFile<'a>>,
    gates: Vec<GateFile<'a>>,
    webhooks: Vec<WebhookFile<'a>>,
    store: StoreFile,
    #[serde(skip_serializing_if = "Option::is_none")]
    public_url: Option<&'a str>,
    metrics: MetricsFile,
}

#[derive(Serialize)]
struct MetricsFile {
    per_train: bool,
}

#[derive(Serialize)]
struct StoreFile {
    retention: String,
}

#[derive(Serialize)]
struct Prometheus<'a> {
    url: &'a str,
    timeout: String,
    headers: BTreeMap<&'a str, &'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bearer_token_env: Option<&'a str>,
    /// Written only when it differs from `url` (its default).
    #[serde(skip_serializing_if = "Option::is_none")]
    external_url: Option<&'a str>,
    max_response_mib: u64,
}

#[derive(Serialize)]
struct SloFile<'a> {
    name: &'a str,
    objective: f64,
    period: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    good: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    errors_query: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    good_query: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    total: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    total_query: Option<&'a str>,
}

#[derive(Serialize)]
struct GateFile<'a> {
    name: &'a str,
    slos: &'a [String],
    interval: String,
    verify_for: String,
    watch_for: String,
    min_requests: u64,
    baseline: BaselineKind,
    on_inconclusive: HoldDecision,
    on_telemetry_error: HoldDecision,
    max_consecutive_errors: u32,
    resume_after: u32,
    alpha: f64,
    min_effect: f64,
    evaluation_delay: String,
    max_train_age: String,
    rules: Vec<RuleFile<'a>>,
}

#[derive(Serialize)]
struct RuleFile<'a> {
    name: &'a str,
    when: &'a str,
    then: Decision,
    #[serde(rename = "for")]
    for_evaluations: u32,
}

#[derive(Serialize)]
struct WebhookFile<'a> {
    name: &'a str,
    url: &'a str,
    on: &'a [Decision],
    format: WebhookFormat,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret_env: Option<&'a str>,
    timeout: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_attempts: Option<u32>,
}

impl<'a> From<&'a Config> for File<'a> {
    fn from(c: &'a Config) -> Self {
        File {
            prometheus: Prometheus {
                url: &c.prometheus.url,
                timeout: c.prometheus.timeout.to_string(),
                headers: c
                    .prometheus
                    .headers
                    .keys()
                    .map(|name| (name.as_str(), REDACTED))
                    .collect(),
                bearer_token_env: c.prometheus.bearer_token_env.as_deref(),
                external_url: (c.prometheus.external_url != c.prometheus.url)
                    .then_some(c.prometheus.external_url.as_str()),
                max_response_mib: c.prometheus.max_response_mib,
            },
            train_label: &c.train_label,
            slos: c.slos.iter().map(SloFile::from).collect(),
            gates: c.gates.iter().map(GateFile::from).collect(),
            webhooks: c.webhooks.iter().map(WebhookFile::from).collect(),
            store: StoreFile {
                retention: c.store.retention.to_string(),
            },
            public_url: c.public_url.as_deref(),
            metrics: MetricsFile {
                per_train: c.metrics.per_train,
            },
        }
    }
}

impl<'a> From<&'a Slo> for SloFile<'a> {
    fn from(s: &'a Slo) -> Self {
        let mut file = SloFile {
            name: &s.name,
            objective: s.objective,
            period: s.period.to_string(),
            errors: None,
            good: None,
            errors_query: None,
            good_query: None,
            total: None,
            total_query: None,
        };
        let slot = match (&s.events, s.counts) {
            (Counter::Selector(p), BadOrGood::Errors) => (&mut file.errors, p),
            (Counter::Selector(p), BadOrGood::Good) => (&mut file.good, p),
            (Counter::Query(p), BadOrGood::Errors) => (&mut file.errors_query, p),
            (Counter::Query(p), BadOrGood::Good) => (&mut file.good_query, p),
        };
        *slot.0 = Some(slot.1.as_str());
        match &s.total {
            Counter::Selector(p) => file.total = Some(p),
            Counter::Query(p) => file.total_query = Some(p),
        }
        file
    }
}

impl<'a> From<&'a Gate> for GateFile<'a> {
    fn from(g: &'a Gate) -> Self {
        GateFile {
            name: &g.name,
            slos: &g.slos,
            interval: g.interval.to_string(),
            verify_for: g.verify_for.to_string(),
            watch_for: g.watch_for.to_string(),
            min_requests: g.min_requests,
            baseline: g.baseline,
            on_inconclusive: g.on_inconclusive,
            on_telemetry_error: g.on_telemetry_error,
            max_consecutive_errors: g.max_consecutive_errors,
            resume_after: g.resume_after,
            alpha: g.alpha,
            min_effect: g.min_effect,
            evaluation_delay: PromDuration::from_duration(g.evaluation_delay)
                .map_or_else(|_| "0s".to_string(), |d| d.to_string()),
            max_train_age: g.max_train_age.to_string(),
            rules: g
                .rules
                .iter()
                .map(|r| RuleFile {
                    name: &r.name,
                    when: &r.when,
                    then: r.then,
                    for_evaluations: r.for_evaluations,
                })
                .collect(),
        }
    }
}

impl<'a> From<&'a Webhook> for WebhookFile<'a> {
    fn from(w: &'a Webhook) -> Self {
        WebhookFile {
            name: &w.name,
            url: &w.url,
            on: &w.on,
            format: w.format,
            secret_env: w.secret_env.as_deref(),
            timeout: w.timeout.to_string(),
            max_attempts: w.max_attempts,
        }
    }
}
