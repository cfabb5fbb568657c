//! `gate serve` end to end: the real binary as a separate process, a real Prometheus
//! backfilled with telemetry around the test's own clock, trains registered over HTTP.
//!
//! It checks what a pipeline relies on: a healthy train is promoted and a fast-burning one
//! rolled back; a long-poll returns as soon as the decision changes; an override is recorded;
//! and after SIGKILL a restarted daemon on the same store shows every train, decision, seq and
//! override unchanged and evaluates again. SIGTERM ends it with exit 0.
//!
//! The daemon evaluates at the wall-clock time, so the telemetry is rendered around the
//! test's start time (`now`), extending half an hour into the future so that every window
//! the rules read has samples whenever the daemon looks. Waits poll with deadlines.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use common::daemon::Daemon;
use common::fixtures::{Scenario, Traffic};
use common::prometheus::TestPrometheus;
use serde_json::{json, Value};

const MINUTE: i64 = 60;
/// How far into the future the telemetry runs.
const AHEAD: i64 = 30 * MINUTE;

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn config(prometheus_url: &str, webhook_url: &str) -> String {
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
gates:
  - name: checkout
    slos: [checkout-availability]
    interval: 1s
    verify_for: 10s
    watch_for: 2h
    min_requests: 100
    baseline: none
    on_inconclusive: pending
    rules:
      - name: fast-burn
        when: burn_rate("checkout-availability", "1h") > 14.4 && burn_rate("checkout-availability", "5m") > 14.4
        then: rollback
      - name: slow-burn
        when: burn_rate("checkout-availability", "6h") > 6 && burn_rate("checkout-availability", "30m") > 6
        then: pause
webhooks:
  - name: deployer
    url: {webhook_url}
    on: [rollback, pause, promote]
"#
    )
}

/// Trains relative to the rendered end (`now + AHEAD`): 0.05 % errors (burn 0.5) or 5 %
/// (burn 50), one instance each. `e2e-hold` has no series at all.
fn scenario() -> Scenario {
    let healthy = |train: &str, from: i64| {
        Traffic::new("checkout", train, from, 0)
            .code(200, 23_988)
            .code(500, 12)
    };
    Scenario::new(vec![
        // Started 30 minutes before now.
        healthy("e2e-healthy", -AHEAD - 30 * MINUTE),
        Traffic::new("checkout", "e2e-fastburn", -AHEAD - 30 * MINUTE, 0)
            .code(200, 1_140)
            .code(500, 60),
        // Serving since 10 minutes before now; registered without started_at.
        healthy("e2e-late", -AHEAD - 10 * MINUTE),
    ])
}

struct Api {
    http: reqwest::Client,
}

impl Api {
    async fn send(&self, req: reqwest::RequestBuilder) -> (u16, Value) {
        let response = req.send().await.expect("request to gate serve");
        let status = response.status().as_u16();
        let body = response.bytes().await.expect("response body");
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    async fn get(&self, url: &str) -> Value {
        let (status, body) = self.send(self.http.get(url)).await;
        assert_eq!(status, 200, "GET {url}: {body}");
        body
    }

    async fn post(&self, url: &str, body: Value) -> (u16, Value) {
        self.send(self.http.post(url).json(&body)).await
    }

    /// Polls `GET url` until `done` holds for its body, or panics at the deadline.
    async fn until(&self, url: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let body = self.get(url).await;
            if done(&body) {
                return body;
            }
            assert!(Instant::now() < deadline, "{what}: still {body:#}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// What must survive a restart: per train, its decision, seq, state and pin, and its audit
/// trail.
async fn snapshot(api: &Api, daemon: &Daemon) -> BTreeMap<String, Value> {
    let all = api.get(&daemon.url("/v1/trains?state=all")).await;
    let mut out = BTreeMap::new();
    for t in all["trains"].as_array().expect("trains") {
        let id = t["train"].as_str().expect("train id").to_string();
        let events = api
            .get(&daemon.url(&format!("/v1/trains/{id}/events")))
            .await;
        out.insert(
            id,
            json!({
                "decision": t["decision"], "seq": t["seq"], "state": t["state"],
                "pinned": t["pinned"], "rule": t["rule"], "started_at": t["started_at"],
                "events": events["events"],
            }),
        );
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_decides_long_polls_and_survives_sigkill() {
    let now = Utc::now();
    let end = now.timestamp() + AHEAD;
    let prometheus = TestPrometheus::start_rendered(&scenario(), end - AHEAD - 60 * MINUTE, end, 5);
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("gate.yaml");
    let receiver = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .respond_with(wiremock::ResponseTemplate::new(204))
        .mount(&receiver)
        .await;
    let hook_url = format!("{}/hook", receiver.uri());
    std::fs::write(&config_path, config(prometheus.url(), &hook_url)).unwrap();
    let db = dir.path().join("gate.db");
    let api = Api {
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .unwrap(),
    };

    let mut daemon = Daemon::start(&config_path, &db, dir.path().join("serve-1.log"));
    let (status, _) = api.send(api.http.get(daemon.url("/healthz"))).await;
    assert_eq!(status, 200);

    // Register: two trains that started 30 minutes ago, two that start now.
    let started = rfc3339(now - chrono::Duration::minutes(30));
    for (id, body) in [
        (
            "e2e-healthy",
            json!({"id": "e2e-healthy", "gate": "checkout", "started_at": started}),
        ),
        (
            "e2e-fastburn",
            json!({"id": "e2e-fastburn", "gate": "checkout", "started_at": started}),
        ),
        (
            "e2e-hold",
            json!({"id": "e2e-hold", "gate": "checkout", "labels": {"team": "e2e"}}),
        ),
    ] {
        let (status, train) = api.post(&daemon.url("/v1/trains"), body.clone()).await;
        assert_eq!(status, 201, "{id}: {train}");
        let (status, again) = api.post(&daemon.url("/v1/trains"), body).await;
        assert_eq!((status, &again["train"]), (200, &json!(id)), "idempotent");
    }
    let (status, late) = api
        .post(
            &daemon.url("/v1/trains"),
            json!({"id": "e2e-late", "gate": "checkout"}),
        )
        .await;
    assert_eq!(status, 201, "{late}");
    assert_eq!(
        (late["decision"].as_str(), late["seq"].as_u64()),
        (Some("pending"), Some(0))
    );

    // A long-poll on the young train returns when it is promoted (verify_for is 10 s), well
    // before its 60 s deadline.
    let asked = Instant::now();
    let (status, decided) = api
        .send(
            api.http
                .get(daemon.url("/v1/trains/e2e-late/decision?wait=60s&after_seq=0")),
        )
        .await;
    let waited = asked.elapsed();
    assert_eq!(status, 200);
    assert_eq!(
        decided["decision"],
        "promote",
        "{decided:#}\n{}",
        daemon.log()
    );
    assert_eq!(decided["seq"], 1);
    assert!(
        waited < Duration::from_secs(55),
        "the long-poll ran to its deadline: {waited:?}"
    );
    assert!(
        waited >= Duration::from_secs(5),
        "promoted before verify_for: {waited:?}"
    );

    let healthy = api
        .until(
            &daemon.url("/v1/trains/e2e-healthy"),
            "healthy promoted",
            |t| t["decision"] == "promote",
        )
        .await;
    assert_eq!(healthy["state"], "promoted");
    assert_eq!(healthy["seq"], 1);
    let burn = healthy["evaluation"]["signals"]["burn_rate"]["checkout-availability"]["1h"]
        .as_f64()
        .expect("1h burn rate");
    assert!((burn - 0.5).abs() < 0.05, "healthy 1h burn rate {burn}");

    let bad = api
        .until(
            &daemon.url("/v1/trains/e2e-fastburn"),
            "fast burn rolled back",
            |t| t["decision"] == "rollback",
        )
        .await;
    assert_eq!(
        (bad["state"].as_str(), bad["rule"].as_str()),
        (Some("rolled_back"), Some("fast-burn"))
    );
    assert_eq!(bad["seq"], 1);
    let burn = bad["evaluation"]["signals"]["burn_rate"]["checkout-availability"]["5m"]
        .as_f64()
        .expect("5m burn rate");
    assert!((burn - 50.0).abs() < 2.5, "fast burn 5m burn rate {burn}");

    // The train without telemetry is evaluated but stays pending; an operator pauses it.
    api.until(&daemon.url("/v1/trains/e2e-hold"), "hold evaluated", |t| {
        t["evaluated_at"].is_string()
    })
    .await;
    let (status, paused) = api
        .post(
            &daemon.url("/v1/trains/e2e-hold/override"),
            json!({"decision": "pause", "reason": "e2e: hold for the freeze", "actor": "alice"}),
        )
        .await;
    assert_eq!(status, 200, "{paused}");
    assert_eq!(
        (paused["decision"].as_str(), paused["seq"].as_u64()),
        (Some("pause"), Some(1))
    );

    // Every train is now where it stays: promote (watched), rollback (latched), pause (pinned).
    let metrics = api
        .http
        .get(daemon.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("gate_decisions_total{gate=\"checkout\",decision=\"rollback\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "gate_train_decision{train=\"e2e-fastburn\",gate=\"checkout\",decision=\"rollback\"} 1"
        ),
        "{metrics}"
    );

    // Each decision change reached the webhook, in the change's own words.
    let deadline = Instant::now() + Duration::from_secs(30);
    let hooks = loop {
        let received = receiver.received_requests().await.unwrap_or_default();
        let bodies: Vec<Value> = received
            .iter()
            .filter_map(|r| serde_json::from_slice(&r.body).ok())
            .collect();
        if bodies.len() >= 4 {
            break bodies;
        }
        assert!(Instant::now() < deadline, "webhooks so far: {bodies:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut told: Vec<(String, String)> = hooks
        .iter()
        .map(|b| {
            (
                b["train"].as_str().unwrap().to_string(),
                b["decision"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    told.sort();
    assert_eq!(
        told,
        [
            ("e2e-fastburn".to_string(), "rollback".to_string()),
            ("e2e-healthy".to_string(), "promote".to_string()),
            ("e2e-hold".to_string(), "pause".to_string()),
            ("e2e-late".to_string(), "promote".to_string()),
        ]
    );
    // Wait for the deliveries to be recorded, so that the snapshot below is final.
    for id in ["e2e-fastburn", "e2e-healthy", "e2e-hold", "e2e-late"] {
        api.until(
            &daemon.url(&format!("/v1/trains/{id}/events")),
            "delivery recorded",
            |e| {
                e["events"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|e| e["kind"] == "delivery" && e["state"] == "delivered")
            },
        )
        .await;
    }

    let before = snapshot(&api, &daemon).await;
    assert_eq!(before.len(), 4);
    let healthy_evaluated: DateTime<Utc> = serde_json::from_value(
        api.get(&daemon.url("/v1/trains/e2e-healthy")).await["evaluated_at"].clone(),
    )
    .unwrap();
    let hold_events = before["e2e-hold"]["events"].as_array().unwrap();
    assert!(
        hold_events
            .iter()
            .any(|e| e["kind"] == "override" && e["actor"] == "alice"),
        "{hold_events:#?}"
    );

    daemon.sigkill();
    let mut daemon = Daemon::start(&config_path, &db, dir.path().join("serve-2.log"));
    let after = snapshot(&api, &daemon).await;
    assert_eq!(after, before, "the restart changed what was stored");

    // Evaluation resumed: the watched train is evaluated again, its decision unchanged.
    let resumed = api
        .until(
            &daemon.url("/v1/trains/e2e-healthy"),
            "evaluation resumed",
            |t| {
                serde_json::from_value::<DateTime<Utc>>(t["evaluated_at"].clone())
                    .is_ok_and(|at| at > healthy_evaluated)
            },
        )
        .await;
    assert_eq!(
        (resumed["decision"].as_str(), resumed["seq"].as_u64()),
        (Some("promote"), Some(1))
    );
    let hold = api.get(&daemon.url("/v1/trains/e2e-hold/decision")).await;
    assert_eq!(
        (hold["decision"].as_str(), hold["seq"].as_u64()),
        (Some("pause"), Some(1))
    );
    // Nothing changes: a long-poll past the current seq runs to its (short) deadline.
    let (_, same) = api
        .send(
            api.http
                .get(daemon.url("/v1/trains/e2e-fastburn/decision?wait=2s&after_seq=1")),
        )
        .await;
    assert_eq!(
        (same["decision"].as_str(), same["seq"].as_u64()),
        (Some("rollback"), Some(1))
    );

    assert_eq!(
        receiver.received_requests().await.unwrap_or_default().len(),
        4,
        "no webhook was sent again after the restart"
    );

    assert_eq!(
        daemon.sigterm(),
        0,
        "SIGTERM is a clean exit; log:\n{}",
        daemon.log()
    );
    drop(prometheus);
}

/// Throughput and latency of `GET /v1/trains/{id}/decision` on loopback, against the real
/// binary as built (a debug build unless `--release`), with a minimal keep-alive HTTP/1.1
/// client so the numbers are the server's. Run by hand:
/// `cargo test --test daemon_e2e decision_endpoint_load -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a check; run by hand"]
async fn decision_endpoint_load() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("gate.yaml");
    // Nothing listens on port 9: evaluations fail fast and change nothing.
    std::fs::write(
        &config_path,
        config("http://127.0.0.1:9", "http://127.0.0.1:9/hook"),
    )
    .unwrap();
    let daemon = Daemon::start(
        &config_path,
        &dir.path().join("gate.db"),
        dir.path().join("serve.log"),
    );
    let api = Api {
        http: reqwest::Client::new(),
    };
    let (status, _) = api
        .post(
            &daemon.url("/v1/trains"),
            json!({"id": "t-load", "gate": "checkout"}),
        )
        .await;
    assert_eq!(status, 201);

    let connections: usize = std::env::var("GATE_LOAD_CONNECTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(16);
    let run_for = Duration::from_secs(5);
    let request = format!(
        "GET /v1/trains/t-load/decision HTTP/1.1\r\nHost: {}\r\n\r\n",
        daemon.addr()
    );
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let addr = daemon.addr().to_string();
        let request = request.clone();
        tasks.push(tokio::spawn(async move {
            let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
            stream.set_nodelay(true).unwrap();
            let mut latencies = Vec::new();
            let mut buf = vec![0u8; 8192];
            let start = Instant::now();
            while start.elapsed() < run_for {
                let sent = Instant::now();
                stream.write_all(request.as_bytes()).await.unwrap();
                let mut have = 0;
                loop {
                    let n = stream.read(&mut buf[have..]).await.unwrap();
                    assert!(n > 0, "connection closed");
                    have += n;
                    let text = std::str::from_utf8(&buf[..have]).unwrap_or("");
                    if let Some(head_end) = text.find("\r\n\r\n") {
                        let len: usize = text[..head_end]
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse().unwrap())
                            })
                            .unwrap();
                        if have >= head_end + 4 + len {
                            assert!(text.starts_with("HTTP/1.1 200"), "{text}");
                            break;
                        }
                    }
                }
                latencies.push(sent.elapsed());
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort();
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)];
    println!(
        "decision endpoint: {} connections, {} requests in {:?}: {:.0} req/s, p50 {:?}, p99 {:?}, max {:?}",
        connections,
        all.len(),
        run_for,
        all.len() as f64 / run_for.as_secs_f64(),
        pct(0.50),
        pct(0.99),
        all.last().unwrap()
    );
}
