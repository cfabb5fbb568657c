//! `gate serve` end to end, for what an operator watches and what a receiver relies on:
//!
//! * `/metrics`, parsed with `prometheus-parse` after the daemon has evaluated trains of three
//!   gates (one promoted, one rolled back, one paused while burning, one whose queries
//!   Prometheus rejects, one stopped): every series the daemon documents exists with the
//!   value the situation implies, and a stopped train leaves no per-train series behind;
//! * the webhook outbox across a SIGKILL that lands after a decision was stored but before
//!   its webhook event could be delivered: the restarted daemon sends the stored event, with
//!   the same event ID, signed, with the SPEC §7 body, and records it as delivered.
//!
//! As in `daemon_e2e.rs`, the daemon evaluates at the wall-clock time, so the telemetry is
//! rendered around the test's start (`now`), running half an hour into the future. Every wait
//! polls with a deadline.

mod common;

use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use common::daemon::{Api, Daemon};
use common::fixtures::{Scenario, Traffic};
use common::prometheus::TestPrometheus;
use hmac::{Hmac, Mac};
use prometheus_parse::{Sample, Scrape, Value as PromValue};
use serde_json::{json, Value};
use sha2::Sha256;

const MINUTE: i64 = 60;
/// How far into the future the telemetry runs.
const AHEAD: i64 = 30 * MINUTE;
/// Deadline of each wait for the daemon.
const WAIT: Duration = Duration::from_secs(30);

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Trains relative to the rendered end (`now + AHEAD`), one instance each: 0.05 % errors
/// (burn 0.5) or 5 % (burn 50).
fn scenario() -> Scenario {
    let healthy = |train: &str, from: i64| {
        Traffic::new("checkout", train, from, 0)
            .code(200, 23_988)
            .code(500, 12)
    };
    let burning = |train: &str| {
        Traffic::new("checkout", train, -AHEAD - 30 * MINUTE, 0)
            .code(200, 1_140)
            .code(500, 60)
    };
    Scenario::new(vec![
        healthy("m-healthy", -AHEAD - 30 * MINUTE),
        burning("m-fastburn"),
        burning("m-burning"),
        healthy("m-broken", -AHEAD - 30 * MINUTE),
        healthy("m-stopped", -AHEAD - 10 * MINUTE),
    ])
}

fn start_prometheus(now: DateTime<Utc>) -> TestPrometheus {
    let end = now.timestamp() + AHEAD;
    TestPrometheus::start_rendered(&scenario(), end - AHEAD - 60 * MINUTE, end, 5)
}

/// The SLO and the fast-burn rule both tests use.
fn slo_and_prometheus(prometheus_url: &str) -> String {
    format!(
        r#"
prometheus:
  url: {prometheus_url}
  timeout: 5s
train_label: train_id
slos:
  - name: checkout-availability
    objective: 99.9
    errors: http_requests_total{{service="checkout", code=~"5.."}}
    total: http_requests_total{{service="checkout"}}
"#
    )
}

const FAST_BURN: &str = r#"burn_rate("checkout-availability", "1h") > 14.4 && burn_rate("checkout-availability", "5m") > 14.4"#;

// ---------------------------------------------------------------------------------------
// /metrics

/// Three gates on one Prometheus:
///
/// * `checkout` rolls back a fast burn;
/// * `canary` only pauses on the same rule, so a burning train stays evaluated and its burn
///   rates stay exported;
/// * `broken` reads an SLO whose query Prometheus refuses at execution (a many-to-many
///   match: each train has a 200 and a 500 series on the right-hand side), so every one of
///   its evaluations is an error; `on_telemetry_error: pending` keeps its decision unchanged.
///
/// Webhooks: `receiver` answers 204 to every decision; `nowhere` (rollbacks only) points at
/// a port that refuses connections and gives up after 3 attempts.
fn metrics_config(prometheus_url: &str, receiver_url: &str, nowhere_url: &str) -> String {
    format!(
        r#"{slo}
  - name: broken-availability
    objective: 99.9
    errors_query: increase(http_requests_total{{service="checkout", code=~"5.."}}[$window]) * on(train_id) increase(http_requests_total{{service="checkout"}}[$window])
    total: http_requests_total{{service="checkout"}}
gates:
  - name: checkout
    slos: [checkout-availability]
    interval: 1s
    verify_for: 30s
    watch_for: 2h
    min_requests: 100
    baseline: none
    on_inconclusive: pending
    rules:
      - name: fast-burn
        when: {FAST_BURN}
        then: rollback
  - name: canary
    slos: [checkout-availability]
    interval: 1s
    verify_for: 30s
    min_requests: 100
    baseline: none
    on_inconclusive: pending
    rules:
      - name: fast-burn
        when: {FAST_BURN}
        then: pause
  - name: broken
    slos: [broken-availability]
    interval: 1s
    verify_for: 30s
    min_requests: 100
    baseline: none
    on_inconclusive: pending
    on_telemetry_error: pending
    rules:
      - name: fast-burn
        when: burn_rate("broken-availability", "5m") > 14.4
        then: pause
webhooks:
  - name: receiver
    url: {receiver_url}
  - name: nowhere
    url: {nowhere_url}
    on: [rollback]
    timeout: 2s
    max_attempts: 3
"#,
        slo = slo_and_prometheus(prometheus_url),
    )
}

/// A parsed `/metrics` scrape.
struct Metrics {
    text: String,
    scrape: Scrape,
}

impl Metrics {
    fn parse(text: String) -> Metrics {
        let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
            .expect("parse the /metrics text");
        Metrics { text, scrape }
    }

    /// The samples of `metric`.
    fn series(&self, metric: &str) -> Vec<&Sample> {
        self.scrape
            .samples
            .iter()
            .filter(|s| s.metric == metric)
            .collect()
    }

    /// The sample of `metric` whose labels are exactly `labels`, if any.
    fn sample(&self, metric: &str, labels: &[(&str, &str)]) -> Option<&Sample> {
        let found: Vec<&Sample> = self
            .series(metric)
            .into_iter()
            .filter(|s| {
                s.labels.len() == labels.len()
                    && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v))
            })
            .collect();
        assert!(
            found.len() <= 1,
            "{metric}{labels:?} appears {} times:\n{}",
            found.len(),
            self.text
        );
        found.into_iter().next()
    }

    /// The value of a counter, gauge or untyped sample with exactly `labels`, if present.
    fn value(&self, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.sample(metric, labels).map(|s| number(&s.value))
    }

    /// [`Metrics::value`], which must be present.
    fn get(&self, metric: &str, labels: &[(&str, &str)]) -> f64 {
        self.value(metric, labels)
            .unwrap_or_else(|| panic!("no series {metric}{labels:?} in /metrics:\n{}", self.text))
    }

    /// Series of `metric` whose label `label` is `value`.
    fn with_label(&self, metric: &str, label: &str, value: &str) -> Vec<&Sample> {
        self.series(metric)
            .into_iter()
            .filter(|s| s.labels.get(label) == Some(value))
            .collect()
    }

    /// Checks a histogram with exactly `labels` and returns its count: cumulative buckets that
    /// never decrease, a `+Inf` bucket equal to `_count`, and a `_sum` that is not negative.
    fn histogram(&self, metric: &str, labels: &[(&str, &str)]) -> f64 {
        let sample = self
            .sample(metric, labels)
            .unwrap_or_else(|| panic!("no histogram {metric}{labels:?}:\n{}", self.text));
        let PromValue::Histogram(buckets) = &sample.value else {
            panic!("{metric} is not a histogram: {:?}", sample.value);
        };
        assert!(!buckets.is_empty(), "{metric} has no buckets");
        let mut buckets = buckets.clone();
        buckets.sort_by(|a, b| a.less_than.total_cmp(&b.less_than));
        for pair in buckets.windows(2) {
            assert!(
                pair[0].count <= pair[1].count,
                "{metric}: bucket le={} has {} > le={} with {}",
                pair[0].less_than,
                pair[0].count,
                pair[1].less_than,
                pair[1].count
            );
        }
        let last = buckets.last().expect("at least one bucket");
        assert_eq!(last.less_than, f64::INFINITY, "{metric} has no +Inf bucket");
        let count = self.get(&format!("{metric}_count"), labels);
        let sum = self.get(&format!("{metric}_sum"), labels);
        assert_eq!(last.count, count, "{metric}: +Inf bucket vs _count");
        assert!(sum >= 0.0, "{metric}_sum = {sum}");
        count
    }
}

fn number(value: &PromValue) -> f64 {
    match value {
        PromValue::Counter(v) | PromValue::Gauge(v) | PromValue::Untyped(v) => *v,
        other => panic!("not a single number: {other:?}"),
    }
}

async fn scrape(api: &Api, daemon: &Daemon) -> Metrics {
    Metrics::parse(api.get_text(&daemon.url("/metrics")).await)
}

/// Scrapes until `done` holds, or panics after [`WAIT`].
async fn scrape_until(
    api: &Api,
    daemon: &Daemon,
    what: &str,
    done: impl Fn(&Metrics) -> bool,
) -> Metrics {
    let deadline = Instant::now() + WAIT;
    loop {
        let metrics = scrape(api, daemon).await;
        if done(&metrics) {
            return metrics;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {WAIT:?}; /metrics:\n{}\ndaemon log:\n{}",
            metrics.text,
            daemon.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A 127.0.0.1 port bound but not listening: connections to it are refused for as long as
/// the socket lives, and no other process can take the port meanwhile.
fn refusing_port() -> tokio::net::TcpSocket {
    let socket = tokio::net::TcpSocket::new_v4().expect("create a socket");
    socket
        .bind("127.0.0.1:0".parse().unwrap())
        .expect("bind a port on 127.0.0.1");
    socket
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_show_evaluations_decisions_queries_trains_and_webhooks() {
    let started = Instant::now();
    let now = Utc::now();
    let prometheus = start_prometheus(now);
    let dir = tempfile::tempdir().unwrap();

    let receiver = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .respond_with(wiremock::ResponseTemplate::new(204))
        .mount(&receiver)
        .await;
    let nowhere = refusing_port();
    let nowhere_url = format!("http://{}/hook", nowhere.local_addr().unwrap());
    let config_path = dir.path().join("gate.yaml");
    std::fs::write(
        &config_path,
        metrics_config(
            prometheus.url(),
            &format!("{}/hook", receiver.uri()),
            &nowhere_url,
        ),
    )
    .unwrap();
    let daemon = Daemon::start(
        &config_path,
        &dir.path().join("gate.db"),
        dir.path().join("serve.log"),
    );
    let api = Api::default();

    let half_hour_ago = rfc3339(now - chrono::Duration::minutes(30));
    for (id, gate, started_at) in [
        ("m-healthy", "checkout", Some(&half_hour_ago)),
        ("m-fastburn", "checkout", Some(&half_hour_ago)),
        ("m-burning", "canary", Some(&half_hour_ago)),
        ("m-broken", "broken", Some(&half_hour_ago)),
        // Starts now: pending for verify_for (30 s), long enough to be stopped before that.
        ("m-stopped", "checkout", None),
    ] {
        let mut body = json!({"id": id, "gate": gate});
        if let Some(at) = started_at {
            body["started_at"] = json!(at);
        }
        let (status, train) = api.post(&daemon.url("/v1/trains"), body).await;
        assert_eq!(status, 201, "{id}: {train}");
    }

    let train = |id: &str| daemon.url(&format!("/v1/trains/{id}"));
    for (id, decision) in [
        ("m-healthy", "promote"),
        ("m-fastburn", "rollback"),
        ("m-burning", "pause"),
    ] {
        api.until(&train(id), &format!("{id} decided {decision}"), WAIT, |t| {
            t["decision"] == decision
        })
        .await;
    }
    let broken = api
        .until(
            &train("m-broken"),
            "m-broken evaluated and failing",
            WAIT,
            |t| t["consecutive_errors"].as_u64() >= Some(2),
        )
        .await;
    assert_eq!(broken["decision"], "pending", "{broken:#}");
    api.until(&train("m-stopped"), "m-stopped evaluated", WAIT, |t| {
        t["evaluated_at"].is_string()
    })
    .await;

    // Before it is stopped, the young train has its per-train series.
    let before = scrape_until(&api, &daemon, "m-stopped's burn rates exported", |m| {
        !m.with_label("gate_train_burn_rate", "train", "m-stopped")
            .is_empty()
    })
    .await;
    assert_eq!(
        before.value(
            "gate_train_decision",
            &[
                ("train", "m-stopped"),
                ("gate", "checkout"),
                ("decision", "pending")
            ]
        ),
        Some(1.0),
        "{}",
        before.text
    );
    let young_burn = before.get(
        "gate_train_burn_rate",
        &[
            ("train", "m-stopped"),
            ("slo", "checkout-availability"),
            ("window", "1h"),
        ],
    );
    assert!(
        (young_burn - 0.5).abs() < 0.05,
        "m-stopped 1h burn rate {young_burn}"
    );

    let (status, stopped) = api.delete(&train("m-stopped")).await;
    assert_eq!(
        (status, stopped["state"].as_str()),
        (200, Some("stopped")),
        "{stopped}"
    );
    // A whole checkout cycle that began after the stop: two more cycles ended.
    let cycles = |m: &Metrics| {
        m.value(
            "gate_evaluation_cycle_seconds_count",
            &[("gate", "checkout")],
        )
        .unwrap_or(0.0)
    };
    let cycles_at_stop = cycles(&scrape(&api, &daemon).await);
    scrape_until(&api, &daemon, "two checkout cycles after the stop", |m| {
        cycles(m) >= cycles_at_stop + 2.0
    })
    .await;

    // The webhooks settle: three decisions delivered to `receiver`; the rollback dead-lettered
    // for `nowhere` after its 3 attempts, and the backlog gauge (refreshed every second)
    // caught up.
    let m = scrape_until(&api, &daemon, "webhook deliveries settled", |m| {
        m.value(
            "gate_webhook_deliveries_total",
            &[("webhook", "receiver"), ("outcome", "delivered")],
        ) == Some(3.0)
            && m.value("gate_webhook_outbox_backlog", &[("state", "dead")]) == Some(1.0)
    })
    .await;
    let text = &m.text;

    // Every documented family is exposed under its documented name.
    for family in [
        "gate_evaluations",
        "gate_evaluation_errors",
        "gate_decisions",
        "gate_prometheus_queries",
        "gate_prometheus_query_duration_seconds",
        "gate_evaluation_cycle_seconds",
        "gate_trains",
        "gate_train_decision",
        "gate_train_burn_rate",
        "gate_webhook_deliveries",
        "gate_webhook_retries",
        "gate_webhook_outbox_backlog",
    ] {
        assert!(
            m.scrape.docs.contains_key(family),
            "no HELP for {family}:\n{text}"
        );
    }

    // Evaluations per gate; only the broken gate's fail, every one of them.
    for gate in ["checkout", "canary", "broken"] {
        let n = m.get("gate_evaluations_total", &[("gate", gate)]);
        assert!(n >= 2.0, "{gate}: {n} evaluations:\n{text}");
    }
    let broken_evaluations = m.get("gate_evaluations_total", &[("gate", "broken")]);
    let broken_errors = m.get("gate_evaluation_errors_total", &[("gate", "broken")]);
    // Every one failed. The two counters are encoded one after the other, so a cycle that
    // ends in between may show in one and not yet, or already, in the other.
    assert!(
        broken_errors >= 2.0 && (broken_errors - broken_evaluations).abs() <= 1.0,
        "broken: {broken_errors} errors of {broken_evaluations} evaluations:\n{text}"
    );
    for gate in ["checkout", "canary"] {
        assert_eq!(
            m.value("gate_evaluation_errors_total", &[("gate", gate)])
                .unwrap_or(0.0),
            0.0,
            "{gate} had errors:\n{text}"
        );
    }

    // Decision changes: exactly one promote and one rollback on checkout, one pause on canary;
    // the failing gate changed nothing, and stopping a train is no decision.
    let decisions: Vec<(String, String, f64)> = m
        .series("gate_decisions_total")
        .iter()
        .map(|s| {
            (
                s.labels.get("gate").unwrap_or_default().to_string(),
                s.labels.get("decision").unwrap_or_default().to_string(),
                number(&s.value),
            )
        })
        .filter(|(_, _, n)| *n > 0.0)
        .collect();
    let mut decisions = decisions;
    decisions.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    assert_eq!(
        decisions,
        [
            ("canary".to_string(), "pause".to_string(), 1.0),
            ("checkout".to_string(), "promote".to_string(), 1.0),
            ("checkout".to_string(), "rollback".to_string(), 1.0),
        ],
        "{text}"
    );

    // Prometheus queries: answered ones and the ones Prometheus refused (the broken gate's),
    // and the latency histogram of those attempts.
    let succeeded = m.get("gate_prometheus_queries_total", &[("outcome", "success")]);
    let refused = m.get(
        "gate_prometheus_queries_total",
        &[("outcome", "http_error")],
    );
    assert!(succeeded >= 3.0, "{succeeded} successful queries:\n{text}");
    assert!(refused >= 2.0, "{refused} refused queries:\n{text}");
    let timed = m.histogram("gate_prometheus_query_duration_seconds", &[]);
    assert!(timed >= 3.0, "{timed} timed queries:\n{text}");
    for gate in ["checkout", "canary", "broken"] {
        let n = m.histogram("gate_evaluation_cycle_seconds", &[("gate", gate)]);
        assert!(n >= 2.0, "{gate}: {n} cycles:\n{text}");
    }

    // Active trains by state; the stopped train is not counted, and no `stopped` or `done`
    // series exist.
    for (state, n) in [
        ("verifying", 1.0),
        ("promoted", 1.0),
        ("paused", 1.0),
        ("rolled_back", 1.0),
    ] {
        assert_eq!(
            m.get("gate_trains", &[("state", state)]),
            n,
            "{state}:\n{text}"
        );
    }
    for state in ["stopped", "done"] {
        assert!(
            m.with_label("gate_trains", "state", state).is_empty(),
            "{state}:\n{text}"
        );
    }

    // One decision series per active train, 1 for its current decision.
    let mut current: Vec<(String, String, String, f64)> = m
        .series("gate_train_decision")
        .iter()
        .map(|s| {
            let label = |k: &str| s.labels.get(k).unwrap_or_default().to_string();
            (
                label("train"),
                label("gate"),
                label("decision"),
                number(&s.value),
            )
        })
        .collect();
    current.sort_by(|a, b| a.0.cmp(&b.0));
    let expected = [
        ("m-broken", "broken", "pending"),
        ("m-burning", "canary", "pause"),
        ("m-fastburn", "checkout", "rollback"),
        ("m-healthy", "checkout", "promote"),
    ]
    .map(|(t, g, d)| (t.to_string(), g.to_string(), d.to_string(), 1.0));
    assert_eq!(current, expected, "{text}");

    // Burn rates of the trains still evaluated: the burning (paused) train's ≈ 50, the
    // healthy (watched) train's ≈ 0.5, on every window the rules read. The rolled-back train
    // is no longer evaluated, the broken one has no data: no series, not a made-up value.
    for window in ["1h", "5m"] {
        for (id, expected) in [("m-burning", 50.0), ("m-healthy", 0.5)] {
            let burn = m.get(
                "gate_train_burn_rate",
                &[
                    ("train", id),
                    ("slo", "checkout-availability"),
                    ("window", window),
                ],
            );
            assert!(
                (burn - expected).abs() <= expected * 0.05,
                "{id} {window} burn rate {burn}, expected ≈ {expected}"
            );
        }
    }
    let mut exported: Vec<&str> = m
        .series("gate_train_burn_rate")
        .iter()
        .filter_map(|s| s.labels.get("train"))
        .collect();
    exported.sort();
    exported.dedup();
    assert_eq!(exported, ["m-burning", "m-healthy"], "{text}");

    // Bounded cardinality: nothing about the stopped train is left.
    assert!(
        !text.contains("m-stopped"),
        "the stopped train still has series:\n{text}"
    );

    // Webhooks: every decision delivered to `receiver` at the first attempt; the rollback to
    // `nowhere` failed twice (one first attempt, one retry), then its third attempt (the
    // second retry) dead-lettered it.
    let deliveries = |webhook: &str, outcome: &str| {
        m.value(
            "gate_webhook_deliveries_total",
            &[("webhook", webhook), ("outcome", outcome)],
        )
        .unwrap_or(0.0)
    };
    assert_eq!(
        [
            deliveries("receiver", "delivered"),
            deliveries("receiver", "failed"),
            deliveries("receiver", "dead"),
        ],
        [3.0, 0.0, 0.0],
        "{text}"
    );
    assert_eq!(
        [
            deliveries("nowhere", "delivered"),
            deliveries("nowhere", "failed"),
            deliveries("nowhere", "dead"),
        ],
        [0.0, 2.0, 1.0],
        "{text}"
    );
    assert_eq!(
        m.value("gate_webhook_retries_total", &[("webhook", "nowhere")]),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        m.value("gate_webhook_retries_total", &[("webhook", "receiver")])
            .unwrap_or(0.0),
        0.0,
        "{text}"
    );
    assert_eq!(
        m.get("gate_webhook_outbox_backlog", &[("state", "pending")]),
        0.0,
        "{text}"
    );
    assert_eq!(
        wiremock_bodies(&receiver).await.len(),
        3,
        "the receiver got each decision once"
    );
    // The audit trail agrees with the counters.
    let events = api.get(&daemon.url("/v1/trains/m-fastburn/events")).await;
    let mut outcomes: Vec<(String, String, u64)> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "delivery")
        .map(|e| {
            (
                e["webhook"].as_str().unwrap().to_string(),
                e["state"].as_str().unwrap().to_string(),
                e["attempts"].as_u64().unwrap(),
            )
        })
        .collect();
    outcomes.sort();
    assert_eq!(
        outcomes,
        [
            ("nowhere".to_string(), "dead".to_string(), 3),
            ("receiver".to_string(), "delivered".to_string(), 1),
        ],
        "{events:#}"
    );

    drop(nowhere);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(60), "the test took {took:?}");
}

async fn wiremock_bodies(server: &wiremock::MockServer) -> Vec<Value> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter_map(|r| serde_json::from_slice(&r.body).ok())
        .collect()
}

// ---------------------------------------------------------------------------------------
// SIGKILL between storing a decision and delivering its webhook

const SECRET_ENV: &str = "GATE_E2E_WEBHOOK_SECRET";
const SECRET: &str = "e2e-s3cret";

fn outbox_config(prometheus_url: &str, webhook_url: &str) -> String {
    format!(
        r#"{slo}
gates:
  - name: checkout
    slos: [checkout-availability]
    interval: 1s
    verify_for: 30s
    min_requests: 100
    baseline: none
    on_inconclusive: pending
    rules:
      - name: fast-burn
        when: {FAST_BURN}
        then: rollback
webhooks:
  - name: deployer
    url: {webhook_url}
    on: [rollback]
    format: json
    secret_env: {SECRET_ENV}
    timeout: 2s
"#,
        slo = slo_and_prometheus(prometheus_url),
    )
}

/// The train's webhook deliveries in its audit trail.
fn deliveries(events: &Value) -> Vec<Value> {
    events["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["kind"] == "delivery")
        .cloned()
        .collect()
}

fn header<'a>(request: &'a wiremock::Request, name: &str) -> &'a str {
    request
        .headers
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .expect("an ASCII header")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_event_stored_before_sigkill_is_delivered_after_restart() {
    let started = Instant::now();
    let now = Utc::now();
    let prometheus = start_prometheus(now);
    let dir = tempfile::tempdir().unwrap();

    // The receiver's port, held but refusing connections until the receiver starts.
    let port = refusing_port();
    let receiver_addr = port.local_addr().unwrap();
    let config_path = dir.path().join("gate.yaml");
    std::fs::write(
        &config_path,
        outbox_config(prometheus.url(), &format!("http://{receiver_addr}/hook")),
    )
    .unwrap();
    let db = dir.path().join("gate.db");
    let env = [(SECRET_ENV, SECRET)];
    let mut daemon =
        Daemon::start_with_env(&config_path, &db, dir.path().join("serve-1.log"), &env);
    let api = Api::default();

    let (status, train) = api
        .post(
            &daemon.url("/v1/trains"),
            json!({"id": "m-fastburn", "gate": "checkout",
                   "started_at": rfc3339(now - chrono::Duration::minutes(30))}),
        )
        .await;
    assert_eq!(status, 201, "{train}");

    // The rollback is stored (the API shows only what was committed) ...
    let decided = api
        .until(
            &daemon.url("/v1/trains/m-fastburn/decision"),
            "rollback decided",
            WAIT,
            |d| d["decision"] == "rollback",
        )
        .await;
    assert_eq!(decided["seq"], 1, "{decided:#}");
    // ... and its webhook event is waiting for a retry: tried, refused, not delivered.
    let events_url = daemon.url("/v1/trains/m-fastburn/events");
    let events = api
        .until(
            &events_url,
            "a failed delivery attempt recorded",
            WAIT,
            |e| {
                deliveries(e)
                    .iter()
                    .any(|d| d["state"] == "pending" && d["attempts"].as_u64() >= Some(1))
            },
        )
        .await;
    let pending = deliveries(&events);
    assert_eq!(pending.len(), 1, "{events:#}");
    let pending = &pending[0];
    assert_eq!(
        (pending["webhook"].as_str(), pending["seq"].as_u64()),
        (Some("deployer"), Some(1)),
        "{pending:#}"
    );
    assert!(
        pending["last_error"].is_string() && pending["delivered_at"].is_null(),
        "{pending:#}"
    );
    let event_id = pending["event_id"].as_str().expect("event_id").to_string();
    let attempts_seen = pending["attempts"].as_u64().unwrap();

    daemon.sigkill();

    // Now the receiver listens on that port, recording every request.
    let listener = port.listen(64).expect("listen on the receiver's port");
    let receiver = wiremock::MockServer::builder()
        .listener(listener.into_std().expect("a std listener"))
        .start()
        .await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .and(wiremock::matchers::path("/hook"))
        .respond_with(wiremock::ResponseTemplate::new(204))
        .mount(&receiver)
        .await;
    assert_eq!(receiver.address(), &receiver_addr);

    let daemon = Daemon::start_with_env(&config_path, &db, dir.path().join("serve-2.log"), &env);

    // The restarted daemon sends the stored event.
    let deadline = Instant::now() + WAIT;
    let requests = loop {
        let requests = receiver.received_requests().await.unwrap_or_default();
        if !requests.is_empty() {
            break requests;
        }
        assert!(
            Instant::now() < deadline,
            "the stored event was not delivered within {WAIT:?} of the restart \
             (before the kill: {pending:#}); daemon log:\n{}",
            daemon.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let request = &requests[0];
    assert_eq!(request.method.as_str(), "POST");
    assert_eq!(header(request, "X-Gate-Event-Id"), event_id);
    assert_eq!(header(request, "Content-Type"), "application/json");
    let timestamp = header(request, "X-Gate-Timestamp");
    let sent_at: i64 = timestamp.parse().expect("unix seconds");
    assert!(
        (sent_at - Utc::now().timestamp()).abs() < 60,
        "X-Gate-Timestamp {sent_at} is not the time of sending"
    );
    let signature = header(request, "X-Gate-Signature-256");
    let hex_mac = signature
        .strip_prefix("sha256=")
        .unwrap_or_else(|| panic!("signature {signature} has no sha256= prefix"));
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(&request.body);
    mac.verify_slice(&hex::decode(hex_mac).expect("hex signature"))
        .expect("the signature verifies with the secret");
    let mut wrong = Hmac::<Sha256>::new_from_slice(b"another secret").unwrap();
    wrong.update(timestamp.as_bytes());
    wrong.update(b".");
    wrong.update(&request.body);
    assert!(
        wrong.verify_slice(&hex::decode(hex_mac).unwrap()).is_err(),
        "the signature depends on the secret"
    );

    // The SPEC §7 body of the stored decision.
    let body: Value = serde_json::from_slice(&request.body).expect("a JSON body");
    assert_eq!(body["id"], event_id.as_str(), "{body:#}");
    assert_eq!(
        (
            body["type"].as_str(),
            body["train"].as_str(),
            body["gate"].as_str(),
            body["decision"].as_str(),
            body["previous"].as_str(),
            body["rule"].as_str(),
            body["seq"].as_u64(),
        ),
        (
            Some("gate.decision"),
            Some("m-fastburn"),
            Some("checkout"),
            Some("rollback"),
            Some("pending"),
            Some("fast-burn"),
            Some(1),
        ),
        "{body:#}"
    );
    assert_eq!(body["reason"], decided["reason"], "{body:#}");
    assert_eq!(body["evaluated_at"], decided["evaluated_at"], "{body:#}");
    let burn = body["evidence"]["signals"]["burn_rate"]["checkout-availability"]["1h"]
        .as_f64()
        .expect("the evidence carries the 1h burn rate");
    assert!((burn - 50.0).abs() < 2.5, "evidence 1h burn rate {burn}");

    // The delivery is recorded: same event, delivered by the attempt after the restart.
    let events = api
        .until(
            &daemon.url("/v1/trains/m-fastburn/events"),
            "delivery recorded",
            WAIT,
            |e| deliveries(e).iter().any(|d| d["state"] == "delivered"),
        )
        .await;
    let delivered = deliveries(&events);
    assert_eq!(delivered.len(), 1, "{events:#}");
    let delivered = &delivered[0];
    assert_eq!(delivered["event_id"], event_id.as_str(), "{delivered:#}");
    assert_eq!(delivered["last_status"], 204, "{delivered:#}");
    assert!(delivered["delivered_at"].is_string(), "{delivered:#}");
    assert!(
        delivered["attempts"].as_u64() > Some(attempts_seen),
        "attempts before the kill {attempts_seen}, after: {delivered:#}"
    );
    // The decision itself is unchanged by the restart, and was sent once.
    let decision = api.get(&daemon.url("/v1/trains/m-fastburn/decision")).await;
    assert_eq!(
        (decision["decision"].as_str(), decision["seq"].as_u64()),
        (Some("rollback"), Some(1))
    );
    assert_eq!(
        receiver.received_requests().await.unwrap_or_default().len(),
        1,
        "the event was delivered once"
    );

    let took = started.elapsed();
    assert!(took < Duration::from_secs(60), "the test took {took:?}");
}
