//! The service-wide budget policy end to end: `service_burn_rate` and `service_error_ratio`
//! read by the real binary (`gate eval`, `gate replay`) from a real Prometheus, with the
//! example config `fixtures/examples/service-policy.yaml`.
//!
//! The telemetry: the service's old release `t-base` answers 10,000 requests a minute with
//! 0.8 % errors; three new trains answer 7,996 a minute each with 4 errors (healthy on
//! their own, burn 0.5). Service-wide over the last hour that is 92 errors in 33,988 requests a
//! minute, a burn rate of 2.7068… against the 99.9 % objective: above the policy's 2, so every
//! new train is paused by `service-burning`, although none of them burns on its own.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::fixtures::{Scenario, Traffic, EVAL_TIME};
use common::prometheus::TestPrometheus;
use serde_json::Value;

const T: &str = "2026-11-01T12:00:00Z";
const HOUR: i64 = 3600;
const SLO: &str = "checkout-availability";
const NEW_TRAINS: [&str; 3] = ["t-a", "t-b", "t-c"];
/// Requests a minute service-wide over the last hour: errors and total.
const ERRORS_PER_MINUTE: f64 = 80.0 + 3.0 * 4.0;
const TOTAL_PER_MINUTE: f64 = 10_000.0 + 3.0 * 7_996.0;

fn scenario() -> Scenario {
    let mut traffic = vec![Traffic::new("checkout", "t-base", -2 * HOUR, 0)
        .code(200, 9_920)
        .code(500, 80)];
    for train in NEW_TRAINS {
        traffic.push(
            Traffic::new("checkout", train, -HOUR, 0)
                .code(200, 7_992)
                .code(500, 4),
        );
    }
    Scenario::new(traffic)
}

struct Setup {
    prometheus: TestPrometheus,
    dir: tempfile::TempDir,
    config: PathBuf,
}

/// The example config with its Prometheus URL replaced, and `replace` applied.
fn config(dir: &Path, prometheus_url: &str, name: &str, replace: (&str, &str)) -> PathBuf {
    let example = common::repo_root().join("fixtures/examples/service-policy.yaml");
    let text = std::fs::read_to_string(example).expect("read the example");
    let placeholder = "url: http://127.0.0.1:9090";
    assert!(text.contains(placeholder) && text.contains(replace.0));
    let text = text
        .replacen(placeholder, &format!("url: {prometheus_url}"), 1)
        .replacen(replace.0, replace.1, 1);
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write the config");
    path
}

fn setup() -> Setup {
    let prometheus =
        TestPrometheus::start_rendered(&scenario(), EVAL_TIME - 2 * HOUR, EVAL_TIME, 30);
    let dir = tempfile::tempdir().unwrap();
    let config = config(
        dir.path(),
        prometheus.url(),
        "policy.yaml",
        ("then: pause", "then: pause"),
    );
    Setup {
        prometheus,
        dir,
        config,
    }
}

fn eval(config: &Path, train: &str) -> (i32, Value) {
    eval_at(config, train, T, "2026-11-01T11:00:00Z")
}

/// The service-wide 1h error ratio as Prometheus computes it, asked directly.
async fn prometheus_ratio(url: &str) -> f64 {
    let promql = r#"sum(increase(http_requests_total{service="checkout",code=~"5.."}[1h])) / sum(increase(http_requests_total{service="checkout"}[1h]))"#;
    let body: Value = reqwest::Client::new()
        .post(format!("{url}/api/v1/query"))
        .form(&[("query", promql), ("time", &EVAL_TIME.to_string())])
        .send()
        .await
        .expect("query Prometheus")
        .json()
        .await
        .expect("Prometheus JSON");
    body["data"]["result"][0]["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no ratio in {body:#}"))
}

#[tokio::test]
async fn the_service_wide_burn_rate_pauses_healthy_trains() {
    let s = setup();
    let expected_ratio = ERRORS_PER_MINUTE / TOTAL_PER_MINUTE;
    let from_prometheus = prometheus_ratio(s.prometheus.url()).await;
    assert!(
        (from_prometheus - expected_ratio).abs() < 1e-9 * expected_ratio,
        "Prometheus says {from_prometheus}, the fixture {expected_ratio}"
    );
    let objective = 99.9;
    let expected_burn = from_prometheus / (1.0 - objective / 100.0);
    assert!(
        expected_burn > 2.0 && expected_burn < 3.0,
        "{expected_burn}"
    );

    for train in NEW_TRAINS {
        let (code, r) = eval(&s.config, train);
        let service = r["signals"]["service_burn_rate"][SLO]["1h"]
            .as_f64()
            .unwrap_or_else(|| panic!("no service burn rate: {r:#}"));
        assert!(
            (service - expected_burn).abs() < 1e-9,
            "{train}: service_burn_rate {service}, expected {expected_burn}"
        );
        // The train on its own is healthy: 4 errors in 7,996 requests a minute, burn 0.5.
        let own = r["signals"]["burn_rate"][SLO]["1h"].as_f64().unwrap();
        let expected_own = 4.0 / 7_996.0 / (1.0 - objective / 100.0);
        assert!((own - expected_own).abs() < 1e-9, "{train}: own burn {own}");
        assert_eq!(
            (code, r["decision"].as_str(), r["rule"].as_str()),
            (4, Some("pause"), Some("service-burning")),
            "{r:#}"
        );
        // One query per counter for the window, without the train matcher.
        let service_queries: Vec<&str> = r["queries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|q| {
                q["purpose"]
                    .as_str()
                    .unwrap()
                    .contains("service-wide over 1h")
            })
            .map(|q| q["promql"].as_str().unwrap())
            .collect();
        assert_eq!(
            service_queries,
            [
                r#"sum(increase(http_requests_total{code=~"5..",service="checkout"}[1h]))"#,
                r#"sum(increase(http_requests_total{service="checkout"}[1h]))"#,
            ],
            "{r:#}"
        );
    }

    // The same trains against a policy of 3×: the rule holds nothing, and they promote.
    let lenient = config(
        s.dir.path(),
        s.prometheus.url(),
        "lenient.yaml",
        ("\"1h\") > 2", "\"1h\") > 3"),
    );
    let (code, r) = eval(&lenient, "t-a");
    assert_eq!(
        (code, r["decision"].as_str()),
        (0, Some("promote")),
        "{r:#}"
    );

    // The ratio itself, through a rule that reads it.
    let ratio = config(
        s.dir.path(),
        s.prometheus.url(),
        "ratio.yaml",
        (
            r#"service_burn_rate("checkout-availability", "1h") > 2"#,
            r#"service_error_ratio("checkout-availability", "1h") > 0.002"#,
        ),
    );
    let (code, r) = eval(&ratio, "t-b");
    let got = r["signals"]["service_error_ratio"][SLO]["1h"]
        .as_f64()
        .unwrap_or_else(|| panic!("no service error ratio: {r:#}"));
    assert!(
        (got - from_prometheus).abs() < 1e-12,
        "{got} vs {from_prometheus}"
    );
    assert_eq!(
        (code, r["rule"].as_str()),
        (4, Some("service-burning")),
        "{r:#}"
    );

    // No service-wide data (before the first sample): no data, never a zero; not a promotion.
    let (code, r) = eval_at(
        &s.config,
        "t-c",
        "2026-11-01T09:30:00Z",
        "2026-11-01T09:00:00Z",
    );
    assert_eq!(
        r["signals"]["service_burn_rate"][SLO]["1h"],
        Value::Null,
        "{r:#}"
    );
    let rule = r["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|rule| rule["name"] == "service-burning")
        .unwrap();
    assert_eq!(rule["fired"], Value::Null, "unknown: {r:#}");
    assert_ne!(r["decision"], "promote", "{r:#}");
    assert_ne!(code, 0);

    // gate replay reads the same values as range queries: the three trains together, one
    // step at T, each paused by the policy.
    let trains = s.dir.path().join("trains.jsonl");
    let lines: Vec<String> = NEW_TRAINS
        .iter()
        .map(|t| format!(r#"{{"id": "{t}", "started_at": "2026-11-01T11:00:00Z"}}"#))
        .collect();
    std::fs::write(&trains, lines.join("\n")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_gate"))
        .args(["replay", "--gate", "checkout", "--to", T, "--step", "30m"])
        .arg("--config")
        .arg(&s.config)
        .arg("--trains")
        .arg(&trains)
        .output()
        .expect("run gate replay");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let finals: Vec<(String, String, String)> = stdout
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("a JSON line");
            (
                v["train"].as_str().unwrap().to_string(),
                v["final"]["decision"]
                    .as_str()
                    .unwrap_or("none")
                    .to_string(),
                v["final"]["rule"].as_str().unwrap_or("none").to_string(),
            )
        })
        .collect();
    let want: Vec<(String, String, String)> = NEW_TRAINS
        .iter()
        .map(|t| (t.to_string(), "pause".into(), "service-burning".into()))
        .collect();
    assert_eq!(finals, want, "{stdout}");
}

fn eval_at(config: &Path, train: &str, at: &str, started_at: &str) -> (i32, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_gate"))
        .args(["eval", "--gate", "checkout", "--train", train, "--at", at])
        .args(["--started-at", started_at, "--format", "json"])
        .arg("--config")
        .arg(config)
        .output()
        .expect("run gate eval");
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "gate eval {train}: {e}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().expect("exit code"), json)
}
