//! Synthetic SLI telemetry as OpenMetrics text, for `promtool tsdb create-blocks-from openmetrics`.
//!
//! A [`Scenario`] is a list of [`Traffic`] blocks: one release train of one service, served by
//! a few instances, answering requests at a KNOWN CONSTANT RATE per status code between two
//! instants. [`render`] turns it into `http_requests_total` counters sampled every `step`
//! seconds on a grid anchored at the end time, so every burn rate the gate computes from the
//! data is known in advance (see `fixtures/prometheus/README.md`).
//!
//! The committed `fixtures/prometheus/*.om` files are `render` of [`Scenario::checkout`] and
//! [`Scenario::payments`] over [`FIXTURE_START`]..[`EVAL_TIME`]; the test
//! `committed_fixtures_match_the_generator` in `tests/prometheus_fixtures.rs` fails when they
//! drift and rewrites them when run with `GATE_UPDATE_FIXTURES=1`. Daemon tests call `render`
//! with an end time near their own clock instead.
//!
//! Why the numbers come out exact: every counter starts at 0 at its train's start and grows by
//! a whole number of requests per step (rates are requests per minute, multiples of 4, so
//! steps of 15 s and 30 s both give integers). Prometheus 2.x `increase()` then extrapolates
//! nothing when a window's start falls on a sample (windows include their start) or before a
//! series' first, zero-valued sample, so `increase()` equals rate × time exactly. The only
//! approximations are windows that reach past the end of a train that stopped (Prometheus adds
//! half a step there), documented per case in the README.

use std::fmt::Write as _;

/// The evaluation time T of the committed fixtures: 2026-11-01T12:00:00Z.
pub const EVAL_TIME: i64 = 1_793_534_400;
/// Hours of data before [`EVAL_TIME`] in the committed fixtures.
pub const FIXTURE_HOURS: i64 = 8;
/// First sample time of the committed fixtures: T − 8h.
pub const FIXTURE_START: i64 = EVAL_TIME - FIXTURE_HOURS * 3600;
/// Sampling step of the committed fixtures, in seconds.
pub const FIXTURE_STEP: i64 = 30;
/// The metric family every scenario writes: samples are `http_requests_total`.
pub const FAMILY: &str = "http_requests";

const MINUTE: i64 = 60;
const HOUR: i64 = 3600;

/// One train of one service serving requests at constant rates.
#[derive(Debug, Clone, PartialEq)]
pub struct Traffic {
    /// `service` label.
    pub service: String,
    /// `train_id` label.
    pub train: String,
    /// Start, in seconds relative to the rendered end time (≤ 0): the counters are 0 here.
    pub from: i64,
    /// Last instant with samples, in seconds relative to the end time (≤ 0 for data ending
    /// at the end time; 0 = still running).
    pub until: i64,
    /// Number of instances (`instance="<service>-<n>:8080"`), each serving `codes`.
    pub instances: u32,
    /// Requests per minute per instance, by status code. A code absent here has no series.
    pub codes: Vec<(u16, u64)>,
}

impl Traffic {
    /// A train of `service` running from `from` to `until` (seconds relative to the end time),
    /// on one instance, with no requests yet.
    pub fn new(service: &str, train: &str, from: i64, until: i64) -> Self {
        assert!(
            from < until,
            "traffic for {train} must start before it stops"
        );
        Traffic {
            service: service.to_string(),
            train: train.to_string(),
            from,
            until,
            instances: 1,
            codes: Vec::new(),
        }
    }

    /// Served by `n` instances.
    pub fn instances(mut self, n: u32) -> Self {
        self.instances = n;
        self
    }

    /// Each instance answers `per_minute` requests a minute with status `code`.
    pub fn code(mut self, code: u16, per_minute: u64) -> Self {
        self.codes.push((code, per_minute));
        self
    }

    /// Requests per minute over all instances and codes.
    pub fn total_per_minute(&self) -> u64 {
        self.instances as u64 * self.codes.iter().map(|(_, r)| r).sum::<u64>()
    }

    /// Requests per minute answered with a 5xx, over all instances.
    pub fn errors_per_minute(&self) -> u64 {
        self.instances as u64
            * self
                .codes
                .iter()
                .filter(|(c, _)| (500..600).contains(c))
                .map(|(_, r)| r)
                .sum::<u64>()
    }

    /// Errors ÷ total.
    pub fn error_ratio(&self) -> f64 {
        self.errors_per_minute() as f64 / self.total_per_minute() as f64
    }
}

/// A set of trains rendered together.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Scenario {
    /// The trains.
    pub traffic: Vec<Traffic>,
}

impl Scenario {
    /// A scenario of these trains.
    pub fn new(traffic: Vec<Traffic>) -> Self {
        Scenario { traffic }
    }

    /// The traffic of train `train`, if any.
    pub fn train(&self, train: &str) -> Option<&Traffic> {
        self.traffic.iter().find(|t| t.train == train)
    }

    /// The `service="checkout"` trains of the committed fixtures (times relative to T).
    ///
    /// Every train runs on 2 instances; 5xx are split evenly between 500 and 503.
    pub fn checkout() -> Self {
        let checkout = |train: &str, from: i64, until: i64, ok: u64, errors_each: u64| {
            let t = Traffic::new("checkout", train, from, until)
                .instances(2)
                .code(200, ok);
            if errors_each == 0 {
                t
            } else {
                t.code(500, errors_each).code(503, errors_each)
            }
        };
        Scenario::new(vec![
            // Steady production traffic: the bulk of the service's requests, 0.01 % errors.
            checkout("t-base", -8 * HOUR, 0, 79_992, 4),
            // 0.8 % errors for 7 h: burn 8 on every window.
            checkout("t-slowburn", -7 * HOUR, 0, 992, 4),
            // The train before t-healthy and t-regress: 0.05 % errors, stopped at T − 1h.
            checkout("t-prev", -3 * HOUR, -HOUR, 15_992, 4),
            // 0.05 % errors: burn 0.5.
            checkout("t-healthy", -HOUR, 0, 15_992, 4),
            // 0.5 % errors: burn 5, ten times t-prev's error ratio.
            checkout("t-regress", -HOUR, 0, 15_920, 40),
            // 5 % errors: burn 50.
            checkout("t-fastburn", -30 * MINUTE, 0, 1_520, 40),
            // Healthy but only 10 minutes old.
            checkout("t-young", -10 * MINUTE, 0, 15_992, 4),
            // No 5xx at all: the errors selector matches no series for this train.
            checkout("t-clean", -HOUR, 0, 16_000, 0),
            // 2 requests a minute on one instance: 240 requests in 2 h, no errors.
            Traffic::new("checkout", "t-lowtraffic", -2 * HOUR, 0).code(200, 2),
        ])
    }

    /// The `service="payments"` trains of the committed fixtures (times relative to T).
    pub fn payments() -> Self {
        Scenario::new(vec![
            // 0.4 % errors until T − 1h: exhausts a 6 h budget of a 99.9 % objective.
            Traffic::new("payments", "t-payments-prev", -8 * HOUR, -HOUR)
                .instances(2)
                .code(200, 3_984)
                .code(500, 8)
                .code(503, 8),
            // Healthy (0.05 %) train on a service whose budget is spent.
            Traffic::new("payments", "t-payments", -HOUR, 0)
                .instances(2)
                .code(200, 15_992)
                .code(500, 4)
                .code(503, 4),
        ])
    }
}

/// The committed fixture files: `(file name under fixtures/prometheus/, scenario)`.
pub fn committed_fixtures() -> Vec<(&'static str, Scenario)> {
    vec![
        ("checkout.om", Scenario::checkout()),
        ("payments.om", Scenario::payments()),
    ]
}

/// Renders `scenario` as OpenMetrics text with samples every `step_secs` seconds on the grid
/// `end_unix − k·step_secs` within `[start_unix, end_unix]`.
///
/// Each traffic block's times are relative to `end_unix`. A counter is
/// `⌊requests per minute × seconds since the train's start ÷ 60⌋`, so it starts at 0 at the
/// train's start (when that lies inside the rendered range) and never decreases. Series are
/// written one after the other, each in time order, as the OpenMetrics format requires.
pub fn render(scenario: &Scenario, start_unix: i64, end_unix: i64, step_secs: i64) -> String {
    assert!(step_secs > 0, "step must be positive");
    assert!(start_unix <= end_unix, "start must not be after end");
    let mut out = String::new();
    writeln!(
        out,
        "# HELP {FAMILY} Requests served, by service, train, instance and status code."
    )
    .expect("write to String");
    writeln!(out, "# TYPE {FAMILY} counter").expect("write to String");
    for traffic in &scenario.traffic {
        let train_start = end_unix + traffic.from;
        let train_stop = end_unix + traffic.until;
        let first = start_unix.max(train_start);
        let last = end_unix.min(train_stop);
        if first > last {
            continue;
        }
        // First grid point at or after `first`; the grid is anchored at `end_unix`.
        let first_k = (end_unix - first).div_euclid(step_secs);
        let last_k = (end_unix - last + step_secs - 1).div_euclid(step_secs);
        for instance in 0..traffic.instances {
            for &(code, per_minute) in &traffic.codes {
                let labels = format!(
                    "code=\"{code}\",instance=\"{service}-{instance}:8080\",service=\"{service}\",train_id=\"{train}\"",
                    service = traffic.service,
                    train = traffic.train,
                );
                for k in (last_k..=first_k).rev() {
                    let t = end_unix - k * step_secs;
                    if t < first || t > last {
                        continue;
                    }
                    let value = (per_minute as i128 * (t - train_start) as i128) / 60;
                    writeln!(out, "{FAMILY}_total{{{labels}}} {value} {t}")
                        .expect("write to String");
                }
            }
        }
    }
    out.push_str("# EOF\n");
    out
}
