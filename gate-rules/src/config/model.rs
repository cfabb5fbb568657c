//! The validated configuration: what the rest of gate reads.
//!
//! These types are produced only by [`crate::config::load_str`] after every validation pass
//! succeeded, so their invariants hold everywhere else: SLO names referenced by gates exist,
//! rules compiled, selectors parse, durations are positive. They serialize back to YAML-shaped
//! JSON for `gate check --effective`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::duration::PromDuration;
use crate::expr::CompiledExpr;
use crate::vocab::{Counter, Decision, HoldDecision};

/// The whole configuration file, defaults applied.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    /// Where the telemetry comes from.
    pub prometheus: PrometheusConfig,
    /// The label carrying the train ID on SLI series (default `train_id`).
    pub train_label: String,
    /// Service-level objectives, by name, in file order.
    pub slos: Vec<Slo>,
    /// Gates, in file order.
    pub gates: Vec<Gate>,
    /// Webhook receivers, in file order.
    pub webhooks: Vec<Webhook>,
    /// Where users reach this gate's HTTP API (e.g. `https://gate.example`), without a
    /// trailing `/`; chat notifications link a train's page under it. `None`: no links.
    pub public_url: Option<String>,
    /// The store of `gate serve`.
    pub store: StoreConfig,
    /// What the daemon exports on `/metrics`.
    pub metrics: MetricsConfig,
}

/// The store of `gate serve`.
#[derive(Debug, Clone, Serialize)]
pub struct StoreConfig {
    /// How long finished trains (done or stopped), their decisions and overrides, and
    /// delivered webhook events are kept (default `90d`).
    pub retention: PromDuration,
}

/// The default of [`StoreConfig::retention`]: 90 days.
pub const DEFAULT_RETENTION_DAYS: u64 = 90;

/// The Prometheus-compatible query API.
#[derive(Debug, Clone, Serialize)]
pub struct PrometheusConfig {
    /// Base URL, including any path prefix (e.g. Mimir's `/prometheus`). Default `http://127.0.0.1:9090`.
    pub url: String,
    /// Per-query timeout (default `10s`).
    pub timeout: PromDuration,
    /// Extra headers sent on every query (e.g. `X-Scope-OrgID`).
    pub headers: BTreeMap<String, String>,
    /// Environment variable holding a bearer token, if any.
    pub bearer_token_env: Option<String>,
    /// Where people open Prometheus in a browser (links from the web page). Default: `url`.
    pub external_url: String,
    /// The largest answer read, in MiB (default 256): a larger one is a telemetry error, so a
    /// runaway query cannot exhaust the memory.
    pub max_response_mib: u64,
}

/// The default of [`PrometheusConfig::max_response_mib`].
pub const DEFAULT_MAX_RESPONSE_MIB: u64 = 256;

/// What the first counter of an SLI counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BadOrGood {
    /// The counter counts bad events (`errors`, `errors_query`).
    Errors,
    /// The counter counts good events (`good`, `good_query`); errors = total − good.
    Good,
}

/// A service-level objective.
#[derive(Debug, Clone, Serialize)]
pub struct Slo {
    /// Unique name, referenced by gates and rules.
    pub name: String,
    /// Percent of events that must be good, in (0, 100).
    pub objective: f64,
    /// Error-budget period (default `30d`).
    pub period: PromDuration,
    /// Whether `events` counts errors or good events.
    pub counts: BadOrGood,
    /// The errors (or good) counter.
    pub events: Counter,
    /// The total counter.
    pub total: Counter,
}

impl Slo {
    /// The error budget as a fraction: `1 - objective/100`.
    pub fn budget(&self) -> f64 {
        1.0 - self.objective / 100.0
    }
}

/// How a train's error rate is compared for `error_delta`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BaselineKind {
    /// The baseline train's counts over an equal window ending at this train's start.
    PreviousTrain,
    /// The service-wide counts over an equal window before this train's start.
    BeforeStart,
    /// No baseline: `error_delta` is always unknown.
    None,
}

/// A gate: the SLOs and rules a train must pass.
#[derive(Debug, Clone, Serialize)]
pub struct Gate {
    /// Unique name.
    pub name: String,
    /// SLOs this gate reads (each must exist).
    pub slos: Vec<String>,
    /// Daemon evaluation interval (default `30s`).
    pub interval: PromDuration,
    /// Earliest promotion after the train started (default `30m`).
    pub verify_for: PromDuration,
    /// How long a promoted train is still watched (default `2h`).
    pub watch_for: PromDuration,
    /// Minimum events since start, per SLO, for conclusive evidence (default `100`).
    pub min_requests: u64,
    /// Baseline for `error_delta` (default `previous_train`).
    pub baseline: BaselineKind,
    /// Decision when evidence is inconclusive after `verify_for` (default `pause`).
    pub on_inconclusive: HoldDecision,
    /// Decision after `max_consecutive_errors` telemetry failures (default `pause`).
    pub on_telemetry_error: HoldDecision,
    /// Telemetry failures in a row before `on_telemetry_error` applies (default `3`).
    pub max_consecutive_errors: u32,
    /// Clean evaluations that lift a rule-caused pause (default `4`).
    pub resume_after: u32,
    /// Significance level of `error_delta(...).significant` (default `0.01`): the chance
    /// that a healthy train is ever flagged, however often it is evaluated.
    pub alpha: f64,
    /// Relative margin of `error_delta(...)` (default `0.05`): a train whose error rate is at
    /// most `1 + min_effect` times the baseline's counts as healthy.
    pub min_effect: f64,
    /// How far behind now the gate evaluates (default `0s`): for backends whose last seconds
    /// are not queryable yet (remote write into Mimir, Thanos Receive, Grafana Cloud).
    pub evaluation_delay: std::time::Duration,
    /// The oldest `started_at` a registration may carry (default `7d`).
    pub max_train_age: PromDuration,
    /// Rules, in file order.
    pub rules: Vec<Rule>,
    /// The whole gate in dry-run: it decides and reports, but never notifies (default `false`).
    pub dry_run: bool,
}

/// A gate rule.
#[derive(Debug, Clone, Serialize)]
pub struct Rule {
    /// Name, unique within its gate.
    pub name: String,
    /// The CEL condition as written.
    pub when: String,
    /// The decision when the condition holds: `rollback`, `pause` or `promote`.
    pub then: Decision,
    /// Consecutive evaluations the condition must hold before it takes effect (daemon; default 1).
    #[serde(rename = "for")]
    pub for_evaluations: u32,
    /// A dry-run rule is evaluated and reported like any other, but never changes the
    /// decision; the evaluation's `would_have` says what it would have decided (default `false`).
    pub dry_run: bool,
    /// The compiled condition.
    #[serde(skip)]
    pub expr: CompiledExpr,
}

/// Payload format of a webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookFormat {
    /// gate's own JSON body.
    Json,
    /// CloudEvents 1.0 structured mode with CDEvents types.
    Cloudevents,
    /// A Slack incoming-webhook message (`text` + Block Kit `blocks`).
    Slack,
}

/// A webhook receiver.
#[derive(Debug, Clone, Serialize)]
pub struct Webhook {
    /// Unique name.
    pub name: String,
    /// Receiver URL (may carry credentials; never logged in full).
    pub url: String,
    /// Decisions that are sent (default: all four).
    pub on: Vec<Decision>,
    /// Payload format (default `json`).
    pub format: WebhookFormat,
    /// Environment variable holding the HMAC secret, if any.
    pub secret_env: Option<String>,
    /// Per-attempt timeout (default `10s`).
    pub timeout: PromDuration,
    /// Attempts before dead-lettering; `None` keeps trying for 24 h.
    pub max_attempts: Option<u32>,
}

impl Gate {
    /// The time this gate evaluates at when the clock reads `now`: `now − evaluation_delay`
    /// (the daemon, `gate eval` without `--at`, and `gate replay`'s default end).
    pub fn evaluation_time(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        chrono::Duration::from_std(self.evaluation_delay)
            .ok()
            .and_then(|delay| now.checked_sub_signed(delay))
            .unwrap_or(now)
    }
}

/// `metrics:` — what the daemon exports on `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MetricsConfig {
    /// Per-train series (`gate_train_decision`, `gate_train_burn_rate`,
    /// `gate_train_would_have`); the per-gate aggregates are always exported. Default `true`.
    pub per_train: bool,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig { per_train: true }
    }
}

impl Config {
    /// The SLO with this name.
    pub fn slo(&self, name: &str) -> Option<&Slo> {
        self.slos.iter().find(|s| s.name == name)
    }

    /// The gate with this name.
    pub fn gate(&self, name: &str) -> Option<&Gate> {
        self.gates.iter().find(|g| g.name == name)
    }
}
