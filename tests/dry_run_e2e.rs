//! Dry-run rules and gates end to end: a real `gate serve` on a real Prometheus with
//! telemetry around the test's clock (the daemon evaluates at wall-clock time), a real
//! webhook receiver. A dry-run rule that would roll back leaves a burning train promoted and
//! shows `would_have: rollback` in `gate status` and `/metrics`; nothing is sent for it; a
//! gate in dry-run decides but never notifies.

mod common;

use std::time::{Duration, Instant};

use chrono::Utc;
use common::daemon::Daemon;
use common::fixtures::{Scenario, Traffic};
use common::prometheus::TestPrometheus;
use serde_json::Value;

const MINUTE: i64 = 60;
const AHEAD: i64 = 30 * MINUTE;

fn config(prometheus: &str, hook: &str) -> String {
    format!(
        r#"
prometheus:
  url: {prometheus}
  timeout: 5s
train_label: train_id
slos:
  - name: checkout-availability
    objective: 99.9
    errors: http_requests_total{{service="checkout", code=~"5.."}}
    total: http_requests_total{{service="checkout"}}
gates:
  - name: shadowed
    slos: [checkout-availability]
    interval: 1s
    verify_for: 10s
    min_requests: 100
    baseline: none
    on_inconclusive: pending
    rules:
      - name: fast-burn
        when: burn_rate("checkout-availability", "1h") > 14.4 && burn_rate("checkout-availability", "5m") > 14.4
        then: rollback
        dry_run: true
  - name: quiet
    slos: [checkout-availability]
    interval: 1s
    verify_for: 10s
    min_requests: 100
    baseline: none
    on_inconclusive: pending
    dry_run: true
    rules:
      - name: fast-burn
        when: burn_rate("checkout-availability", "1h") > 14.4 && burn_rate("checkout-availability", "5m") > 14.4
        then: rollback
webhooks:
  - name: deployer
    url: {hook}
    on: [rollback, pause, promote]
"#
    )
}

fn gate(args: &[&str]) -> (i32, Value) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gate"))
        .args(args)
        .output()
        .expect("run gate");
    (
        out.status.code().expect("exit code"),
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_rule_reports_what_it_would_have_done_and_changes_nothing() {
    let end = Utc::now().timestamp() + AHEAD;
    // Both trains burn at 50 (5 % errors, objective 99.9).
    let burning = |train: &str| {
        Traffic::new("checkout", train, -AHEAD - 30 * MINUTE, 0)
            .code(200, 1_140)
            .code(500, 60)
    };
    let scenario = Scenario::new(vec![burning("dr-burning"), burning("dr-quiet")]);
    let prometheus = TestPrometheus::start_rendered(&scenario, end - AHEAD - 60 * MINUTE, end, 5);
    let receiver = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .respond_with(wiremock::ResponseTemplate::new(204))
        .mount(&receiver)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("gate.yaml");
    std::fs::write(
        &config_path,
        config(prometheus.url(), &format!("{}/hook", receiver.uri())),
    )
    .unwrap();
    let (code, _) = gate(&["check", "--config", config_path.to_str().unwrap()]);
    assert_eq!(code, 0, "the config with dry_run validates");
    let daemon = Daemon::start(
        &config_path,
        &dir.path().join("gate.db"),
        dir.path().join("serve.log"),
    );
    let server = daemon.url("");
    let started = (Utc::now() - chrono::Duration::minutes(30)).to_rfc3339();
    for (id, g) in [("dr-burning", "shadowed"), ("dr-quiet", "quiet")] {
        let (code, _) = gate(&[
            "train",
            "start",
            id,
            "--gate",
            g,
            "--started-at",
            &started,
            "--server",
            &server,
        ]);
        assert_eq!(code, 0);
    }
    let status = |id: &str| gate(&["status", id, "--format", "json", "--server", &server]).1;
    let deadline = Instant::now() + Duration::from_secs(60);
    while status("dr-burning")["decision"] != "promote"
        || status("dr-quiet")["decision"] != "rollback"
    {
        assert!(Instant::now() < deadline, "no decisions: {}", daemon.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The burning train stays promoted; the dry-run rule fired and says what it would do.
    let s = status("dr-burning");
    assert_eq!(s["decision"], "promote", "{s:#}");
    let evaluation = &s["evaluation"];
    assert_eq!(evaluation["would_have"], "rollback", "{evaluation:#}");
    let rule = &evaluation["rules"][0];
    assert_eq!(
        (&rule["name"], &rule["fired"], &rule["dry_run"]),
        (
            &Value::from("fast-burn"),
            &Value::from(true),
            &Value::from(true)
        )
    );

    let http = reqwest::Client::new();
    let metrics = http
        .get(daemon.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(
            r#"gate_train_would_have{train="dr-burning",gate="shadowed",decision="rollback",dry_run="true"} 1"#
        ),
        "{metrics}"
    );
    assert!(
        !metrics.contains(r#"gate_train_would_have{train="dr-quiet""#),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            r#"gate_train_decision{train="dr-burning",gate="shadowed",decision="promote"} 1"#
        ),
        "{metrics}"
    );

    // Webhooks: the promotion is announced, the rollback that did not happen is not, and the
    // dry-run gate's rollback is not announced at all (nothing is queued for it).
    let deadline = Instant::now() + Duration::from_secs(30);
    let bodies = loop {
        let bodies: Vec<Value> = receiver
            .received_requests()
            .await
            .unwrap()
            .iter()
            .map(|r| serde_json::from_slice(&r.body).unwrap_or(Value::Null))
            .collect();
        if !bodies.is_empty() {
            break bodies;
        }
        assert!(
            Instant::now() < deadline,
            "no webhook arrived: {}",
            daemon.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let text: Vec<String> = bodies.iter().map(Value::to_string).collect();
    assert!(
        text.iter()
            .all(|b| b.contains("dr-burning") && b.contains("promote")),
        "{text:#?}"
    );
    assert!(text.iter().all(|b| !b.contains("dr-quiet")), "{text:#?}");
    let events: Value = http
        .get(daemon.url("/v1/trains/dr-quiet/events"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kinds: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["registered", "decision"],
        "no delivery queued: {events:#}"
    );
}
