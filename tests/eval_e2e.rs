//! `gate eval` end to end: the real binary against a real Prometheus backfilled with the
//! committed fixtures (`fixtures/prometheus/README.md` documents every train), evaluated at
//! the fixtures' fixed time T. Plus the faults a real Prometheus will not produce on demand,
//! from a wiremock Prometheus: none of them may promote.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::prometheus::TestPrometheus;
use serde_json::Value;

const T: &str = "2026-11-01T12:00:00Z";

struct Outcome {
    code: i32,
    json: Option<Value>,
    stderr: String,
}

fn eval(config: &Path, args: &[&str]) -> Outcome {
    let out = Command::new(env!("CARGO_BIN_EXE_gate"))
        .arg("eval")
        .arg("--config")
        .arg(config)
        .args(["--at", T, "--format", "json"])
        .args(args)
        .output()
        .expect("run gate");
    Outcome {
        code: out.status.code().expect("exit code"),
        json: serde_json::from_slice(&out.stdout).ok(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn burn(report: &Value, window: &str) -> f64 {
    report["signals"]["burn_rate"]["checkout-availability"][window]
        .as_f64()
        .unwrap_or_else(|| panic!("burn rate {window} in {report:#}"))
}

fn assert_close(actual: f64, expected: f64, what: &str) {
    assert!(
        (actual - expected).abs() <= expected.abs() * 0.02 + 1e-9,
        "{what}: {actual} is not within 2% of {expected}"
    );
}

struct Setup {
    _prometheus: TestPrometheus,
    _dir: tempfile::TempDir,
    config: PathBuf,
}

fn setup() -> Setup {
    let files = common::committed_om_files();
    let paths: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let prometheus = TestPrometheus::start(&paths);
    let dir = tempfile::tempdir().unwrap();
    let config = common::gate_test_config(dir.path(), prometheus.url());
    Setup {
        _prometheus: prometheus,
        _dir: dir,
        config,
    }
}

/// Every scenario against one Prometheus (starting it is the slow part).
#[test]
fn decisions_and_burn_rates_against_a_real_prometheus() {
    let s = setup();
    let c = s.config.as_path();
    let checkout = ["--gate", "checkout"];

    // Healthy: 0.05 % errors → burn 0.5 on every window, promote.
    let o = eval(
        c,
        &[
            &checkout[..],
            &["--train", "t-healthy", "--baseline", "t-prev"],
        ]
        .concat(),
    );
    let r = o.json.expect("json report");
    assert_eq!(
        (o.code, r["decision"].as_str()),
        (0, Some("promote")),
        "{r:#}"
    );
    for w in ["5m", "30m", "1h", "6h"] {
        assert_close(burn(&r, w), 0.5, w);
    }
    assert_eq!(r["train"], "t-healthy");
    assert_eq!(r["evaluated_at"], T);
    assert!(r["queries"].as_array().unwrap().iter().any(|q| q["promql"]
        .as_str()
        .unwrap()
        .contains(r#"train_id="t-healthy""#)));

    // Fast burn: 5 % errors → burn 50 → rollback by fast-burn.
    let o = eval(c, &[&checkout[..], &["--train", "t-fastburn"]].concat());
    let r = o.json.expect("json report");
    assert_eq!(
        (o.code, r["decision"].as_str()),
        (3, Some("rollback")),
        "{r:#}"
    );
    assert_eq!(r["rule"], "fast-burn");
    assert_close(burn(&r, "1h"), 50.0, "fast burn 1h");
    assert_close(burn(&r, "5m"), 50.0, "fast burn 5m");

    // Slow burn: 0.8 % → burn 8: above 6, below 14.4 → pause by slow-burn.
    let o = eval(c, &[&checkout[..], &["--train", "t-slowburn"]].concat());
    let r = o.json.expect("json report");
    assert_eq!(
        (o.code, r["decision"].as_str()),
        (4, Some("pause")),
        "{r:#}"
    );
    assert_eq!(r["rule"], "slow-burn");
    assert_close(burn(&r, "6h"), 8.0, "slow burn 6h");
    assert_close(burn(&r, "30m"), 8.0, "slow burn 30m");

    // Young: 10 minutes old, healthy → pending, exit 5.
    let o = eval(
        c,
        &[
            &checkout[..],
            &["--train", "t-young", "--baseline", "t-prev"],
        ]
        .concat(),
    );
    let r = o.json.expect("json report");
    assert_eq!(
        (o.code, r["decision"].as_str()),
        (5, Some("pending")),
        "{r:#}"
    );

    // Too little traffic: 240 requests since start < min_requests 500 → not promote.
    let o = eval(
        c,
        &[
            &checkout[..],
            &["--train", "t-lowtraffic", "--baseline", "t-prev"],
        ]
        .concat(),
    );
    let r = o.json.expect("json report");
    assert_eq!(r["decision"], "pause", "{r:#}");
    assert_eq!(o.code, 4);
    assert!(
        r["reason"].as_str().unwrap().contains("too little traffic"),
        "{r:#}"
    );

    // No series at all → inconclusive, not promote.
    let o = eval(
        c,
        &[
            &checkout[..],
            &[
                "--train",
                "t-missing",
                "--baseline",
                "t-prev",
                "--started-at",
                "2026-11-01T10:00:00Z",
            ],
        ]
        .concat(),
    );
    let r = o.json.expect("json report");
    assert_eq!(
        (o.code, r["decision"].as_str()),
        (4, Some("pause")),
        "{r:#}"
    );
    assert_eq!(r["inconclusive"], true);

    // Regression vs the previous train: 0.5 % vs 0.05 %, significant → rollback by regression.
    let o = eval(
        c,
        &[
            &checkout[..],
            &["--train", "t-regress", "--baseline", "t-prev"],
        ]
        .concat(),
    );
    let r = o.json.expect("json report");
    assert_eq!(
        (o.code, r["decision"].as_str()),
        (3, Some("rollback")),
        "{r:#}"
    );
    assert_eq!(r["rule"], "regression");
    let delta = &r["signals"]["error_delta"]["checkout-availability"];
    assert_close(delta["train_ratio"].as_f64().unwrap(), 0.005, "train ratio");
    assert_close(
        delta["baseline_ratio"].as_f64().unwrap(),
        0.0005,
        "baseline ratio",
    );
    assert_eq!(delta["significant"], true);

    // Exhausted service budget on payments → pause by budget-exhausted.
    let o = eval(c, &["--gate", "payments", "--train", "t-payments"]);
    let r = o.json.expect("json report");
    assert_eq!(
        (o.code, r["decision"].as_str()),
        (4, Some("pause")),
        "{r:#}"
    );
    assert_eq!(r["rule"], "budget-exhausted");
    assert!(
        r["signals"]["budget_remaining"]["payments-availability"]
            .as_f64()
            .unwrap()
            <= 0.0
    );

    // Without --started-at the start is found from the train's first sample (T−1h).
    let o = eval(
        c,
        &[
            &checkout[..],
            &["--train", "t-healthy", "--baseline", "t-prev"],
        ]
        .concat(),
    );
    assert_eq!(o.json.unwrap()["started_at"], "2026-11-01T11:00:00Z");
}

#[test]
fn hostile_train_ids_exit_2_before_any_query() {
    let dir = tempfile::tempdir().unwrap();
    let config = common::gate_test_config(dir.path(), "http://127.0.0.1:9");
    for id in [
        r#"t"} or vector(1) #"#,
        "t\"x",
        "a{b}",
        "x\ny",
        "a b",
        r"a\b",
    ] {
        let o = eval(
            &config,
            &["--gate", "checkout", "--train", id, "--started-at", T],
        );
        assert_eq!(o.code, 2, "{id:?}: {}", o.stderr);
        assert!(o.stderr.contains("train ID"), "{id:?}: {}", o.stderr);
    }
}

#[test]
fn unreachable_prometheus_exits_6_with_a_clear_message() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dir = tempfile::tempdir().unwrap();
    let config = common::gate_test_config(dir.path(), &format!("http://127.0.0.1:{port}"));
    let o = eval(
        &config,
        &[
            "--gate",
            "checkout",
            "--train",
            "t-1",
            "--started-at",
            "2026-11-01T11:00:00Z",
        ],
    );
    assert_eq!(o.code, 6, "{}", o.stderr);
    assert!(o.stderr.contains("unreachable"), "{}", o.stderr);
    assert!(
        o.stderr.contains(&port.to_string()),
        "names the URL: {}",
        o.stderr
    );
    assert_ne!(
        o.json.map(|r| r["decision"].clone()),
        Some("promote".into())
    );
}

mod wiremock_prometheus {
    use super::*;
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, Request, ResponseTemplate};

    fn vector(train: &str, value: &str) -> Value {
        serde_json::json!({"status": "success", "data": {"resultType": "vector", "result": [
            {"metric": {"train_id": train}, "value": [1793534400.0, value]}
        ]}})
    }

    async fn run(server: &MockServer, extra: &[&str]) -> Outcome {
        let dir = tempfile::tempdir().unwrap();
        let config = common::gate_test_config(dir.path(), &server.uri());
        let mut args = vec![
            "--gate",
            "checkout",
            "--train",
            "t-1",
            "--started-at",
            "2026-11-01T11:00:00Z",
        ];
        args.extend_from_slice(extra);
        let config2 = config.clone();
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        tokio::task::spawn_blocking(move || {
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            eval(&config2, &refs)
        })
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn one_query_per_counter_and_window_in_use() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/api/v1/query"))
            .respond_with(ResponseTemplate::new(200).set_body_json(vector("t-1", "1000")))
            .mount(&server)
            .await;
        let o = run(&server, &["--baseline", "t-0"]).await;
        assert_ne!(o.code, 1, "{}", o.stderr);
        let requests = server.received_requests().await.unwrap();
        // The evaluation at 12:00 itself (the earlier ones rebuild the error_delta test's looks).
        // checkout gate: windows 5m, 30m, 1h, 6h; since start; baseline; budget — × 2 counters.
        // The train is exactly 1h old: "since start" is the 1h window, sent once.
        let mut bodies: Vec<String> = requests
            .iter()
            .map(|r: &Request| String::from_utf8_lossy(&r.body).into_owned())
            .filter(|body| body.contains("time=1793534400"))
            .collect();
        assert_eq!(bodies.len(), 12, "{bodies:#?}");
        bodies.sort();
        bodies.dedup();
        assert_eq!(bodies.len(), 12, "no query is sent twice");
    }

    #[tokio::test]
    async fn faults_never_promote() {
        let garbage = ResponseTemplate::new(200).set_body_string("{not json");
        let nan = ResponseTemplate::new(200).set_body_json(vector("t-1", "NaN"));
        let empty = ResponseTemplate::new(200).set_body_json(
            serde_json::json!({"status": "success", "data": {"resultType": "vector", "result": []}}),
        );
        let two_series = ResponseTemplate::new(200).set_body_json(serde_json::json!({
        "status": "success", "data": {"resultType": "vector", "result": [
            {"metric": {"train_id": "t-1"}, "value": [1793534400.0, "1"]},
            {"metric": {"train_id": "t-1"}, "value": [1793534400.0, "2"]}
        ]}}));
        let mut with_warnings = vector("t-1", "1000");
        with_warnings["warnings"] = serde_json::json!(["partial response: store down"]);
        let warnings = ResponseTemplate::new(200).set_body_json(with_warnings);
        let unprocessable = ResponseTemplate::new(422).set_body_json(serde_json::json!(
            {"status": "error", "errorType": "execution", "error": "query too expensive"}));
        for (name, response) in [
            ("garbage", garbage),
            ("NaN", nan),
            ("empty", empty),
            ("two series", two_series),
            ("warnings", warnings),
            ("422", unprocessable),
        ] {
            let server = MockServer::start().await;
            Mock::given(method("POST"))
                .respond_with(response)
                .mount(&server)
                .await;
            let o = run(&server, &["--baseline", "t-0"]).await;
            assert_ne!(o.code, 0, "{name}: exit 0 means promote");
            assert_ne!(o.code, 1, "{name}: internal error: {}", o.stderr);
            if let Some(r) = &o.json {
                assert_ne!(r["decision"], "promote", "{name}");
            }
        }
    }
}
