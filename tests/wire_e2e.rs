//! The wire types of `gate-api`, which the CLI's client reads, against the answers of a real
//! `gate serve` (the binary, a real Prometheus, a real SQLite store).
//!
//! Every answer is parsed strictly — the response types deny unknown fields — *and*
//! serialized back, which must give the very JSON the server sent: a field renamed, added or
//! dropped on either side fails here. The served OpenAPI document must be the committed
//! `docs/openapi.json`.

mod common;

use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use common::daemon::{Api, Daemon};
use common::fixtures::{Scenario, Traffic};
use common::prometheus::TestPrometheus;
use gate_api::{
    DecisionBody, ErrorBody, Event, EventList, Health, Readiness, ReloadReport, Train, TrainList,
};
use gate_engine::report::EvaluationReport;
use gate_rules::Decision;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

const MINUTE: i64 = 60;

fn config(prometheus_url: &str) -> String {
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
    verify_for: 10m
    watch_for: 2h
    min_requests: 100
    baseline: none
    on_inconclusive: pending
    rules:
      - name: fast-burn
        when: burn_rate("checkout-availability", "1h") > 14.4 && burn_rate("checkout-availability", "5m") > 14.4
        then: rollback
webhooks:
  - name: deployer
    url: http://127.0.0.1:9/hook
    on: [rollback, pause, promote]
"#
    )
}

/// Parses `raw` as `T` and checks that `T` writes exactly `raw` back.
fn strict<T: DeserializeOwned + Serialize>(what: &str, raw: &Value) -> T {
    let typed: T = serde_json::from_value(raw.clone())
        .unwrap_or_else(|e| panic!("{what}: the wire type does not read the answer: {e}\n{raw:#}"));
    let back = serde_json::to_value(&typed).unwrap();
    assert_eq!(
        &back, raw,
        "{what}: the wire type does not write the answer back"
    );
    typed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wire_types_read_and_write_every_answer_exactly() {
    let now = Utc::now();
    let end = now.timestamp() + 30 * MINUTE;
    let burning = Scenario::new(vec![Traffic::new("checkout", "w-burn", -60 * MINUTE, 0)
        .code(200, 19_000)
        .code(500, 1_000)]);
    let prometheus = TestPrometheus::start_rendered(&burning, end - 90 * MINUTE, end, 5);
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("gate.yaml");
    std::fs::write(&config_path, config(prometheus.url())).unwrap();
    let daemon = Daemon::start(
        &config_path,
        &dir.path().join("gate.db"),
        dir.path().join("serve.log"),
    );
    let api = Api::default();
    let started = (now - chrono::Duration::minutes(30)).to_rfc3339_opts(SecondsFormat::Secs, true);

    let (status, raw) = api
        .post(
            &daemon.url("/v1/trains"),
            json!({"id": "w-burn", "gate": "checkout", "started_at": started,
                   "labels": {"team": "payments"}}),
        )
        .await;
    assert_eq!(status, 201, "{raw}");
    let registered: Train<EvaluationReport> = strict("POST /v1/trains", &raw);
    assert_eq!(registered.evaluation, Some(None));

    let raw = api
        .until(
            &daemon.url("/v1/trains/w-burn/decision"),
            "w-burn rolled back",
            Duration::from_secs(60),
            |d| d["decision"] == "rollback",
        )
        .await;
    let decided: DecisionBody = strict("GET /v1/trains/{id}/decision", &raw);
    assert_eq!(decided.rule.as_deref(), Some("fast-burn"));

    let raw = api.get(&daemon.url("/v1/trains/w-burn")).await;
    let detail: Train<EvaluationReport> = strict("GET /v1/trains/{id}", &raw);
    let report = detail.evaluation().expect("the latest evaluation");
    assert_eq!(report.decision, Decision::Rollback);

    let (status, raw) = api
        .post(
            &daemon.url("/v1/trains/w-burn/override"),
            json!({"decision": "resume", "reason": "fixed forward", "actor": "alice"}),
        )
        .await;
    assert_eq!(status, 200, "{raw}");
    let resumed: DecisionBody = strict("POST /v1/trains/{id}/override", &raw);
    assert!(resumed.seq > decided.seq);

    let raw = api.get(&daemon.url("/v1/trains/w-burn/events")).await;
    let events: EventList = strict("GET /v1/trains/{id}/events", &raw);
    let kinds: Vec<&str> = events
        .events
        .iter()
        .map(|e| match e {
            Event::Registered { .. } => "registered",
            Event::Decision { .. } => "decision",
            Event::Override { .. } => "override",
            Event::Delivery(_) => "delivery",
            Event::Stopped { .. } => "stopped",
        })
        .collect();
    for kind in ["registered", "decision", "override", "delivery"] {
        assert!(kinds.contains(&kind), "no {kind} event in {kinds:?}");
    }

    let (status, raw) = api.delete(&daemon.url("/v1/trains/w-burn")).await;
    assert_eq!(status, 200, "{raw}");
    let stopped: Train<EvaluationReport> = strict("DELETE /v1/trains/{id}", &raw);
    assert_eq!(stopped.lifecycle, gate_api::Lifecycle::Stopped);
    let raw = api.get(&daemon.url("/v1/trains?state=all")).await;
    let all: TrainList<EvaluationReport> = strict("GET /v1/trains", &raw);
    assert_eq!(all.trains.len(), 1);
    assert_eq!(all.trains[0].evaluation, None, "lists carry no evaluation");
    let worst = all.trains[0].worst_burn.clone().flatten();
    assert_eq!(
        worst.map(|w| w.rule).as_deref(),
        Some("fast-burn"),
        "a list entry carries its worst burn rate"
    );
    assert_eq!(all.next_cursor, None);
    // With `evaluation=true` the list carries every train's evaluation: the one a train's own
    // answer carries, with the same worst burn rate.
    let raw = api
        .get(&daemon.url("/v1/trains?state=all&evaluation=true"))
        .await;
    let detailed: TrainList<EvaluationReport> = strict("GET /v1/trains?evaluation=true", &raw);
    let raw = api.get(&daemon.url("/v1/trains/w-burn")).await;
    let one: Train<EvaluationReport> = strict("GET /v1/trains/{id}", &raw);
    assert!(one.evaluation().is_some());
    assert_eq!(detailed.trains[0].evaluation, one.evaluation);
    assert_eq!(detailed.trains[0].worst_burn, one.worst_burn);

    let (status, raw) = api.send(api.http.post(daemon.url("/v1/reload"))).await;
    assert_eq!(status, 200, "{raw}");
    let reload: ReloadReport = strict("POST /v1/reload", &raw);
    assert_eq!(reload.gates, ["checkout"]);
    let health: Health = strict("GET /healthz", &api.get(&daemon.url("/healthz")).await);
    assert_eq!(health.status, "ok");
    let (_, raw) = api.send(api.http.get(daemon.url("/readyz"))).await;
    let _: Readiness = strict("GET /readyz", &raw);

    let (status, raw) = api.send(api.http.get(daemon.url("/v1/trains/w-404"))).await;
    assert_eq!(status, 404);
    let error: ErrorBody = strict("404", &raw);
    assert_eq!(error.error.code, "train_not_found");
    let (status, raw) = api.post(&daemon.url("/v1/reload/x"), json!({})).await;
    assert_eq!(status, 404);
    let _: ErrorBody = strict("unknown route", &raw);

    let served = api.get(&daemon.url("/v1/openapi.json")).await;
    let committed: Value = serde_json::from_str(
        &std::fs::read_to_string(common::repo_root().join("docs/openapi.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        served, committed,
        "the served document is docs/openapi.json"
    );
}
