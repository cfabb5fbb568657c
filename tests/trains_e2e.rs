//! Release trains end to end: trains judged by several gates, departure windows, freezes and
//! approvals, on a real Prometheus (backfilled with telemetry of known rates), a real SQLite
//! store and the daemon's real HTTP API — with an explicit clock. The daemon runs in this
//! process on a [`ManualClock`] and each test runs the gates' evaluation cycles itself
//! ([`run_cycle`]) at the times it sets, so "the window opens" is a clock step, not a wait.
//! `gate wait` is the real binary, pointed at that API.

mod common;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use common::fixtures::{Scenario, Traffic};
use common::prometheus::TestPrometheus;
use gate_engine::daemon::scheduler::run_cycle;
use gate_engine::daemon::{
    ApiOptions, ClientFactory, Daemon, ManualClock, Metrics, Options, Registry,
};
use gate_engine::prometheus::PrometheusClient;
use serde_json::{json, Value};

/// The end of the telemetry: Tue 2026-12-01 09:00 UTC (10:00 in Berlin).
fn data_end() -> DateTime<Utc> {
    "2026-12-01T09:00:00Z".parse().unwrap()
}

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

const HOUR: i64 = 3600;
/// Every train started at 06:00 UTC.
const STARTED: &str = "2026-12-01T06:00:00Z";

/// Burn rate 0.2 against 99.9 %: 8 errors in 40,000 requests a minute.
fn healthy(service: &str, train: &str) -> Traffic {
    Traffic::new(service, train, -3 * HOUR, 0)
        .code(200, 39_992)
        .code(500, 8)
}

/// Burn rate 100: 10 % errors.
fn burning(service: &str, train: &str) -> Traffic {
    Traffic::new(service, train, -3 * HOUR, 0)
        .code(200, 36_000)
        .code(500, 4_000)
}

fn config(prometheus: &str) -> String {
    let rules = r#"
    rules:
      - name: fast-burn
        when: burn_rate("{slo}", "1h") > 14.4 && burn_rate("{slo}", "5m") > 14.4
        then: rollback"#;
    let gate = |name: &str, slo: &str, verify_for: &str, extra: &str| {
        format!(
            "  - name: {name}\n    slos: [{slo}]\n    verify_for: {verify_for}\n    min_requests: 100\n    baseline: none\n    on_inconclusive: pending\n{extra}{}\n",
            rules.replace("{slo}", slo)
        )
    };
    let mut text = format!(
        r#"prometheus:
  url: {prometheus}
  timeout: 5s
train_label: train_id
slos:
  - name: checkout-availability
    objective: 99.9
    errors: http_requests_total{{service="checkout", code=~"5.."}}
    total: http_requests_total{{service="checkout"}}
  - name: pricing-availability
    objective: 99.9
    errors: http_requests_total{{service="pricing", code=~"5.."}}
    total: http_requests_total{{service="pricing"}}
gates:
"#
    );
    text.push_str(&gate("checkout", "checkout-availability", "30m", ""));
    text.push_str(&gate("pricing", "pricing-availability", "100m", ""));
    text.push_str(&gate(
        "windowed",
        "checkout-availability",
        "30m",
        "    departures:\n      - days: [tue, wed]\n        from: \"09:00\"\n        to: \"16:00\"\n        timezone: Europe/Berlin\n",
    ));
    text.push_str(&gate(
        "frozen",
        "checkout-availability",
        "30m",
        "    freezes:\n      - from: 2026-12-01T07:00:00Z\n        to: 2026-12-01T07:45:00Z\n        reason: payment provider migration\n",
    ));
    text.push_str(&gate(
        "approved",
        "checkout-availability",
        "30m",
        "    approval: required\n",
    ));
    // Events are queued in the outbox with each change; no deliverer runs in these tests.
    text.push_str("webhooks:\n  - name: deployer\n    url: http://127.0.0.1:9/hook\n");
    text
}

/// The daemon in this process, on a manual clock, serving its API on a free port.
struct Harness {
    daemon: Arc<Daemon>,
    clock: Arc<ManualClock>,
    base: String,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
    _prometheus: TestPrometheus,
}

impl Harness {
    async fn start(scenario: Scenario, now: &str) -> Harness {
        let end = data_end().timestamp();
        let prometheus = TestPrometheus::start_rendered(&scenario, end - 4 * HOUR, end, 30);
        let config = gate_rules::config::load_str("gate.yaml", &config(prometheus.url()))
            .unwrap_or_else(|e| panic!("{}", e.render_plain()));
        let dir = tempfile::tempdir().unwrap();
        let store = gate_engine::daemon::open_store(&dir.path().join("gate.db")).unwrap();
        let clock = Arc::new(ManualClock::new(at(now)));
        let mut registry = Registry::default();
        let metrics = Arc::new(Metrics::register(&mut registry));
        let factory: ClientFactory = Arc::new(|config: &gate_rules::Config| {
            PrometheusClient::new(&config.prometheus, None).map_err(|e| e.to_string())
        });
        let daemon = Arc::new(
            Daemon::start(Options {
                config,
                config_path: None,
                store,
                clock: clock.clone(),
                client_factory: factory,
                metrics,
                registry: Arc::new(registry),
                api: ApiOptions::default(),
                webhooks: None,
                ha: Default::default(),
            })
            .await
            .unwrap(),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let serving = Arc::clone(&daemon);
        tokio::spawn(async move { serving.serve(listener).await });
        Harness {
            daemon,
            clock,
            base,
            http: reqwest::Client::new(),
            _dir: dir,
            _prometheus: prometheus,
        }
    }

    fn at(&self, now: &str) {
        self.clock.set(at(now));
    }

    async fn cycle(&self, gate: &str) {
        let report = run_cycle(self.daemon.shared(), gate)
            .await
            .unwrap_or_else(|| panic!("gate {gate} had nothing to evaluate"));
        assert_eq!(report.failure, None, "gate {gate}: {report:?}");
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn register(&self, body: Value) -> Value {
        let (status, train) = self.post("/v1/trains", body).await;
        assert_eq!(status, 201, "{train}");
        train
    }

    async fn train(&self, id: &str) -> Value {
        let (status, train) = self.get(&format!("/v1/trains/{id}")).await;
        assert_eq!(status, 200, "{train}");
        train
    }

    async fn events(&self, id: &str) -> Vec<Value> {
        let (status, body) = self.get(&format!("/v1/trains/{id}/events")).await;
        assert_eq!(status, 200, "{body}");
        body["events"].as_array().unwrap().clone()
    }
}

fn gate_decisions(train: &Value) -> Vec<(String, String)> {
    train["gates"]
        .as_array()
        .unwrap_or_else(|| panic!("no gates in {train}"))
        .iter()
        .map(|g| {
            (
                g["gate"].as_str().unwrap().to_string(),
                g["decision"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_two_gate_train_rolls_back_as_a_whole_when_one_service_burns() {
    let h = Harness::start(
        Scenario::new(vec![
            healthy("checkout", "t-burn"),
            burning("pricing", "t-burn"),
        ]),
        "2026-12-01T07:30:00Z",
    )
    .await;
    let train = h
        .register(json!({"id": "t-burn", "gates": ["checkout", "pricing"], "started_at": STARTED}))
        .await;
    assert_eq!(train["gate"], "checkout");
    assert_eq!(
        gate_decisions(&train),
        [
            ("checkout".into(), "pending".into()),
            ("pricing".into(), "pending".into())
        ]
    );

    // checkout alone is verified and would promote: the train waits for pricing.
    h.cycle("checkout").await;
    let train = h.train("t-burn").await;
    assert_eq!(train["decision"], "pending", "{train}");
    assert_eq!(
        train["seq"], 0,
        "a gate's change that leaves the verdict is no new seq"
    );
    assert_eq!(
        gate_decisions(&train),
        [
            ("checkout".into(), "promote".into()),
            ("pricing".into(), "pending".into())
        ]
    );

    // pricing burns at 100× its budget: the whole train rolls back.
    h.cycle("pricing").await;
    let train = h.train("t-burn").await;
    assert_eq!(train["decision"], "rollback", "{train}");
    assert_eq!(train["state"], "rolled_back");
    assert_eq!(train["rule"], "fast-burn");
    assert!(
        train["reason"]
            .as_str()
            .unwrap()
            .starts_with("pricing: rollback: fast-burn"),
        "{}",
        train["reason"]
    );
    assert_eq!(train["seq"], 1);
    assert_eq!(
        gate_decisions(&train),
        [
            ("checkout".into(), "promote".into()),
            ("pricing".into(), "rollback".into())
        ]
    );
    // Each gate's evidence is shown with its decision.
    let pricing = &train["gates"][1]["evaluation"];
    assert_eq!(pricing["decision"], "rollback", "{pricing}");
    assert_eq!(train["gates"][0]["evaluation"]["decision"], "promote");

    let (status, decision) = h.get("/v1/trains/t-burn/decision").await;
    assert_eq!(status, 200);
    assert_eq!(decision["decision"], "rollback");
    assert_eq!(decision["gates"][1]["decision"], "rollback");

    // One decision change in the trail: the train's, not each gate's.
    let events = h.events("t-burn").await;
    let changes: Vec<&Value> = events.iter().filter(|e| e["kind"] == "decision").collect();
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0]["previous"], "pending");
    assert_eq!(changes[0]["decision"], "rollback");
    // One webhook event, for the change of the train's verdict (seq 1); none for checkout's
    // own change to promote.
    let deliveries: Vec<u64> = events
        .iter()
        .filter(|e| e["kind"] == "delivery")
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(deliveries, [1], "{events:?}");

    // A rolled-back train is evaluated no more, by either gate.
    assert!(run_cycle(h.daemon.shared(), "checkout").await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_two_gate_train_promotes_only_when_both_gates_verified() {
    let h = Harness::start(
        Scenario::new(vec![
            healthy("checkout", "t-ok"),
            healthy("pricing", "t-ok"),
            healthy("checkout", "t-one"),
        ]),
        "2026-12-01T07:30:00Z",
    )
    .await;
    h.register(json!({"id": "t-ok", "gates": ["checkout", "pricing"], "started_at": STARTED}))
        .await;
    h.register(json!({"id": "t-one", "gate": "checkout", "started_at": STARTED}))
        .await;
    // 90 minutes in: checkout (30m) has verified, pricing (100m) has not.
    h.cycle("checkout").await;
    h.cycle("pricing").await;
    let train = h.train("t-ok").await;
    assert_eq!(train["decision"], "pending", "{train}");
    assert!(
        train["reason"].as_str().unwrap().starts_with("pricing: "),
        "{}",
        train["reason"]
    );
    assert_eq!(
        gate_decisions(&train),
        [
            ("checkout".into(), "promote".into()),
            ("pricing".into(), "pending".into())
        ]
    );
    // Queries stay batched per gate: checkout's cycle sent the same queries for the train of
    // two gates as for the train of one, one per (SLI, window).
    let one = h.train("t-one").await;
    assert_eq!(one["decision"], "promote", "{one}");
    let queries = &train["gates"][0]["evaluation"]["queries"];
    assert_eq!(queries, &one["evaluation"]["queries"]);
    let promql: Vec<&str> = queries
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["promql"].as_str().unwrap())
        .collect();
    let distinct: std::collections::BTreeSet<&str> = promql.iter().copied().collect();
    assert_eq!(distinct.len(), promql.len(), "{promql:?}");

    // 105 minutes in: both verified.
    h.at("2026-12-01T07:45:00Z");
    h.cycle("checkout").await;
    h.cycle("pricing").await;
    let train = h.train("t-ok").await;
    assert_eq!(train["decision"], "promote", "{train}");
    assert_eq!(train["state"], "promoted");
    assert_eq!(train["reason"], "every gate promotes (checkout, pricing)");
    assert_eq!(train["promoted_at"], "2026-12-01T07:45:00Z");

    // `gate wait` reads the train's verdict: promote, exit 0.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_gate"))
        .args([
            "wait",
            "t-ok",
            "--server",
            &h.base,
            "--timeout",
            "10s",
            "--format",
            "human",
        ])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("PROMOTE"), "{stdout}");
    assert!(stdout.contains("gate pricing: promote"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gate_wait_returns_a_multi_gate_trains_rollback() {
    let h = Harness::start(
        Scenario::new(vec![healthy("checkout", "t-w"), burning("pricing", "t-w")]),
        "2026-12-01T07:30:00Z",
    )
    .await;
    h.register(json!({"id": "t-w", "gates": ["checkout", "pricing"], "started_at": STARTED}))
        .await;
    h.cycle("checkout").await;
    h.cycle("pricing").await;
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_gate"))
        .args([
            "wait",
            "t-w",
            "--server",
            &h.base,
            "--timeout",
            "10s",
            "--format",
            "json",
        ])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{stdout}");
    let last: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(last["decision"], "rollback", "{last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_departure_window_holds_a_verified_train_until_it_opens() {
    let h = Harness::start(
        Scenario::new(vec![healthy("checkout", "t-win")]),
        // Tue 08:30 in Berlin: the window opens at 09:00 CET.
        "2026-12-01T07:30:00Z",
    )
    .await;
    h.register(json!({"id": "t-win", "gate": "windowed", "started_at": STARTED}))
        .await;
    h.cycle("windowed").await;
    let train = h.train("t-win").await;
    assert_eq!(train["decision"], "pending", "{train}");
    assert_eq!(
        train["reason"],
        "holding for the departure window: opens Tue 09:00 CET"
    );
    // The evidence is a verified train's.
    assert_eq!(train["evaluation"]["inconclusive"], false, "{train}");

    let (status, calendar) = h.get("/v1/calendar?gate=windowed").await;
    assert_eq!(status, 200, "{calendar}");
    let windowed = &calendar["gates"][0];
    assert_eq!(windowed["open"], false);
    assert_eq!(windowed["next_departure"], "2026-12-01T08:00:00Z");
    assert_eq!(windowed["windows"][0]["opens"], "2026-12-01T08:00:00Z");
    assert_eq!(windowed["windows"][0]["closes"], "2026-12-01T15:00:00Z");
    assert_eq!(windowed["windows"][0]["local"], "Tue 09:00 CET");
    // Seven days from Tue 07:30 UTC: this Tuesday and Wednesday; next Tuesday's opens at
    // 08:00 UTC, after the 7 days.
    assert_eq!(windowed["windows"][1]["local"], "Wed 09:00 CET");
    assert_eq!(
        windowed["windows"].as_array().unwrap().len(),
        2,
        "{windowed}"
    );

    // 09:00 in Berlin: the first evaluation inside the window promotes.
    h.at("2026-12-01T08:00:00Z");
    h.cycle("windowed").await;
    let train = h.train("t-win").await;
    assert_eq!(train["decision"], "promote", "{}", train["reason"]);
    assert_eq!(train["promoted_at"], "2026-12-01T08:00:00Z");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_freeze_holds_a_promotion_but_a_rollback_inside_it_still_fires() {
    let h = Harness::start(
        Scenario::new(vec![
            healthy("checkout", "t-frz"),
            burning("checkout", "t-hot"),
        ]),
        "2026-12-01T07:30:00Z",
    )
    .await;
    for id in ["t-frz", "t-hot"] {
        h.register(json!({"id": id, "gate": "frozen", "started_at": STARTED}))
            .await;
    }
    h.cycle("frozen").await;
    let held = h.train("t-frz").await;
    assert_eq!(held["decision"], "pending", "{held}");
    assert_eq!(
        held["reason"],
        "frozen: payment provider migration until 2026-12-01T07:45:00Z"
    );
    let hot = h.train("t-hot").await;
    assert_eq!(hot["decision"], "rollback", "{hot}");
    assert_eq!(hot["rule"], "fast-burn");

    h.at("2026-12-01T07:45:00Z");
    h.cycle("frozen").await;
    assert_eq!(h.train("t-frz").await["decision"], "promote");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_gate_holds_a_verified_train_until_someone_approves() {
    let h = Harness::start(
        Scenario::new(vec![
            healthy("checkout", "t-appr"),
            burning("checkout", "t-bad"),
            healthy("checkout", "t-plain"),
        ]),
        "2026-12-01T07:30:00Z",
    )
    .await;
    for (id, gate) in [
        ("t-appr", "approved"),
        ("t-bad", "approved"),
        ("t-plain", "checkout"),
    ] {
        h.register(json!({"id": id, "gate": gate, "started_at": STARTED}))
            .await;
    }
    h.cycle("approved").await;
    h.cycle("approved").await;
    let train = h.train("t-appr").await;
    assert_eq!(train["decision"], "pending", "{train}");
    assert_eq!(train["reason"], "verified; awaiting approval");

    let approve = |reason: &str| json!({"reason": reason, "actor": "alice"});
    let (status, body) = h
        .post("/v1/trains/t-appr/approve", approve("notes reviewed"))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["seq"], 1);
    assert_eq!(body["decision"], "pending", "the next evaluation promotes");
    h.cycle("approved").await;
    let train = h.train("t-appr").await;
    assert_eq!(train["decision"], "promote", "{}", train["reason"]);

    let approvals: Vec<Value> = h
        .events("t-appr")
        .await
        .into_iter()
        .filter(|e| e["kind"] == "approval")
        .collect();
    assert_eq!(approvals.len(), 1);
    assert_eq!(approvals[0]["actor"], "alice");
    assert_eq!(approvals[0]["reason"], "notes reviewed");
    assert_eq!(approvals[0]["seq"], 1);

    // A rolled-back train takes no approval; a gate without approval needs none.
    assert_eq!(h.train("t-bad").await["decision"], "rollback");
    let (status, body) = h.post("/v1/trains/t-bad/approve", approve("go")).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "train_rolled_back");
    let (status, body) = h.post("/v1/trains/t-plain/approve", approve("go")).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "approval_not_required");
    let (status, body) = h
        .post(
            "/v1/trains/t-appr/approve",
            json!({"reason": " ", "actor": "a"}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registration_with_an_unknown_gate_among_several_registers_nothing() {
    let h = Harness::start(
        Scenario::new(vec![healthy("checkout", "t-x")]),
        "2026-12-01T07:30:00Z",
    )
    .await;
    let (status, body) = h
        .post(
            "/v1/trains",
            json!({"id": "t-x", "gates": ["checkout", "pricng"], "started_at": STARTED}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "unknown_gate");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`pricng`"),
        "{body}"
    );
    let (status, _) = h.get("/v1/trains/t-x").await;
    assert_eq!(status, 404, "nothing half-registered");

    for bad in [
        json!({"id": "t-x", "gate": "checkout", "gates": ["pricing"]}),
        json!({"id": "t-x", "gates": []}),
        json!({"id": "t-x", "gates": ["checkout", "checkout"]}),
        json!({"id": "t-x"}),
    ] {
        let (status, body) = h.post("/v1/trains", bad.clone()).await;
        assert_eq!(status, 422, "{bad} → {body}");
        assert_eq!(body["error"]["code"], "invalid_body", "{bad}");
    }
    // `gates` of one is the same train as `gate`.
    let one = h
        .register(json!({"id": "t-x", "gates": ["checkout"], "started_at": STARTED}))
        .await;
    assert_eq!(one["gate"], "checkout");
    assert!(one.get("gates").is_none(), "{one}");
    let (status, _) = h
        .post(
            "/v1/trains",
            json!({"id": "t-x", "gate": "checkout", "started_at": STARTED}),
        )
        .await;
    assert_eq!(status, 200, "the same body");
}
