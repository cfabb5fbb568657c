//! The committed Prometheus fixtures, checked three ways: the files are what the generator
//! renders, the test config loads, and a real Prometheus backfilled with them answers the
//! gate's queries with the numbers documented in `fixtures/prometheus/README.md`.
//!
//! Regenerate the fixture files after changing `tests/common/fixtures.rs`:
//! `GATE_UPDATE_FIXTURES=1 cargo test --test prometheus_fixtures committed_fixtures`.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, Utc};
use common::fixtures::{self, Scenario, Traffic, EVAL_TIME, FIXTURE_START, FIXTURE_STEP};
use common::prometheus::TestPrometheus;
use gate_engine::prometheus::{PrometheusClient, QueryData};
use gate_rules::config::PrometheusConfig;
use gate_rules::PromDuration;

const HOUR: i64 = 3600;

fn at(unix: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(unix, 0).expect("valid unix time")
}

fn client(url: &str) -> PrometheusClient {
    let config = PrometheusConfig {
        url: url.to_string(),
        timeout: PromDuration::from_secs(10),
        headers: BTreeMap::new(),
        bearer_token_env: None,
        external_url: url.to_string(),
        max_response_mib: 256,
    };
    PrometheusClient::new(&config, None).expect("client for the test Prometheus")
}

/// Runs `promql` at `time` and returns the value per `train_id` (or `""` for no label).
async fn by_train(client: &PrometheusClient, promql: &str, time: i64) -> BTreeMap<String, f64> {
    let response = client
        .query(promql, at(time))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(response.warnings.is_empty(), "{:?}", response.warnings);
    let QueryData::Vector(samples) = response.data else {
        panic!("`{promql}` did not return a vector");
    };
    samples
        .into_iter()
        .map(|s| {
            (
                s.metric.get("train_id").cloned().unwrap_or_default(),
                s.value,
            )
        })
        .collect()
}

fn assert_close(what: &str, actual: f64, expected: f64) {
    let tolerance = 1e-9 * expected.abs().max(1.0);
    assert!(
        (actual - expected).abs() <= tolerance,
        "{what}: Prometheus says {actual}, expected {expected}"
    );
}

fn sli(service: &str, errors: bool, window: &str) -> String {
    let code = if errors { r#",code=~"5..""# } else { "" };
    format!(
        r#"sum by (train_id) (increase(http_requests_total{{service="{service}"{code}}}[{window}]))"#
    )
}

fn service_wide(service: &str, errors: bool, window: &str) -> String {
    let code = if errors { r#",code=~"5..""# } else { "" };
    format!(r#"sum(increase(http_requests_total{{service="{service}"{code}}}[{window}]))"#)
}

#[test]
fn committed_fixtures_match_the_generator() {
    let update = std::env::var_os("GATE_UPDATE_FIXTURES").is_some();
    for (name, scenario) in fixtures::committed_fixtures() {
        let rendered = fixtures::render(&scenario, FIXTURE_START, EVAL_TIME, FIXTURE_STEP);
        let path = common::prometheus_fixture(name);
        if update {
            std::fs::write(&path, &rendered).expect("write fixture");
            continue;
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == rendered,
            "{} differs from what tests/common/fixtures.rs renders; regenerate it with \
             GATE_UPDATE_FIXTURES=1 cargo test --test prometheus_fixtures committed_fixtures",
            path.display()
        );
    }
    let total: u64 = common::committed_om_files()
        .iter()
        .map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .sum();
    assert!(total < 5_000_000, "fixtures take {total} bytes");
}

#[test]
fn the_test_config_is_valid() {
    let config = gate_rules::config::load_file(&common::prometheus_fixture("gate-test.yaml"))
        .unwrap_or_else(|e| panic!("gate-test.yaml is invalid: {e:?}"));
    let gates: Vec<&str> = config.gates.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(gates, ["checkout", "payments"]);
    let periods: Vec<(String, f64)> = config
        .slos
        .iter()
        .map(|s| (s.name.clone(), s.period.as_secs_f64()))
        .collect();
    assert_eq!(
        periods,
        [
            ("checkout-availability".to_string(), 30.0 * 86400.0),
            ("payments-availability".to_string(), 6.0 * 3600.0)
        ]
    );
}

#[test]
fn counters_start_at_zero_and_grow_at_the_given_rate() {
    let scenario = Scenario::new(vec![Traffic::new("s", "t", -120, 0).code(200, 60)]);
    let text = fixtures::render(&scenario, 1000 - 600, 1000, 30);
    assert!(text.starts_with("# HELP http_requests "));
    assert!(text.contains("# TYPE http_requests counter\n"));
    assert!(text.ends_with("# EOF\n"));
    assert_eq!(
        samples(&text),
        [(880, 0), (910, 30), (940, 60), (970, 90), (1000, 120)]
    );
    assert!(text.contains(
        r#"http_requests_total{code="200",instance="s-0:8080",service="s",train_id="t"} 30 910"#
    ));
}

#[test]
fn series_clipped_by_the_range_keep_their_running_total() {
    // Started an hour before the end at 4 requests a minute, stopped a minute before the end;
    // only the last two minutes are rendered.
    let scenario = Scenario::new(vec![Traffic::new("s", "t", -HOUR, -60).code(500, 4)]);
    let end = 1_000_000;
    let text = fixtures::render(&scenario, end - 120, end, 60);
    assert_eq!(samples(&text), [(end - 120, 232), (end - 60, 236)]);
}

#[test]
fn the_scenarios_have_the_documented_error_ratios() {
    let checkout = Scenario::checkout();
    let ratio = |name: &str| checkout.train(name).expect(name).error_ratio();
    assert_eq!(ratio("t-base"), 0.0001);
    assert_eq!(ratio("t-healthy"), 0.0005);
    assert_eq!(ratio("t-prev"), 0.0005);
    assert_eq!(ratio("t-young"), 0.0005);
    assert_eq!(ratio("t-regress"), 0.005);
    assert_eq!(ratio("t-slowburn"), 0.008);
    assert_eq!(ratio("t-fastburn"), 0.05);
    assert_eq!(ratio("t-clean"), 0.0);
    assert_eq!(
        checkout
            .train("t-lowtraffic")
            .expect("low")
            .total_per_minute(),
        2
    );
    assert!(checkout.train("t-missing").is_none());
    let payments = Scenario::payments();
    assert_eq!(
        payments.train("t-payments").expect("train").error_ratio(),
        0.0005
    );
    assert_eq!(
        payments
            .train("t-payments-prev")
            .expect("prev")
            .error_ratio(),
        0.004
    );
}

/// `(timestamp, value)` of every sample line.
fn samples(text: &str) -> Vec<(i64, i64)> {
    text.lines()
        .filter(|l| l.starts_with("http_requests_total{"))
        .map(|l| {
            let mut parts = l.rsplitn(3, ' ');
            let t = parts
                .next()
                .and_then(|s| s.parse().ok())
                .expect("timestamp");
            let v = parts.next().and_then(|s| s.parse().ok()).expect("value");
            (t, v)
        })
        .collect()
}

/// Every number of the README's tables, asked of a real Prometheus.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_answers_the_documented_numbers() {
    let files = common::committed_om_files();
    let paths: Vec<&Path> = files.iter().map(|p| p.as_path()).collect();
    let prometheus = TestPrometheus::start(&paths);
    let client = client(prometheus.url());
    let t = EVAL_TIME;

    // The SPEC query for errors over 1h, and its total twin.
    let errors_1h = by_train(&client, &sli("checkout", true, "1h"), t).await;
    let expected_errors_1h = BTreeMap::from([
        ("t-base".to_string(), 960.0),
        ("t-slowburn".to_string(), 960.0),
        ("t-healthy".to_string(), 960.0),
        ("t-regress".to_string(), 9_600.0),
        ("t-fastburn".to_string(), 4_800.0),
        ("t-young".to_string(), 160.0),
    ]);
    assert_eq!(
        errors_1h.keys().collect::<Vec<_>>(),
        expected_errors_1h.keys().collect::<Vec<_>>(),
        "trains with 5xx over the last hour (t-prev stopped at T-1h; t-clean and \
         t-lowtraffic have no 5xx series)"
    );
    for (train, expected) in &expected_errors_1h {
        assert_close(
            &format!("errors[1h] of {train}"),
            errors_1h[train],
            *expected,
        );
    }
    let total_1h = by_train(&client, &sli("checkout", false, "1h"), t).await;
    let expected_total_1h = [
        ("t-base", 9_600_000.0),
        ("t-slowburn", 120_000.0),
        ("t-healthy", 1_920_000.0),
        ("t-regress", 1_920_000.0),
        ("t-fastburn", 96_000.0),
        ("t-young", 320_000.0),
        ("t-clean", 1_920_000.0),
        ("t-lowtraffic", 120.0),
    ];
    assert_eq!(total_1h.len(), expected_total_1h.len(), "{total_1h:?}");
    for (train, expected) in expected_total_1h {
        assert_close(&format!("total[1h] of {train}"), total_1h[train], expected);
    }

    // Burn rates (objective 99.9 %: budget 0.001) on every window the rules read.
    let expected_burn = [
        ("t-base", 0.1),
        ("t-slowburn", 8.0),
        ("t-healthy", 0.5),
        ("t-regress", 5.0),
        ("t-fastburn", 50.0),
        ("t-young", 0.5),
    ];
    for window in ["5m", "30m", "1h", "6h"] {
        let errors = by_train(&client, &sli("checkout", true, window), t).await;
        let total = by_train(&client, &sli("checkout", false, window), t).await;
        for (train, burn) in expected_burn {
            let ratio = errors[train] / total[train];
            assert_close(&format!("burn[{window}] of {train}"), ratio / 0.001, burn);
        }
        assert!(!errors.contains_key("t-clean") && total["t-clean"] > 0.0);
    }

    // Requests since start, as min_requests reads them.
    let low = by_train(&client, &sli("checkout", false, "2h"), t).await;
    assert_close(
        "requests since start of t-lowtraffic",
        low["t-lowtraffic"],
        240.0,
    );
    let young = by_train(&client, &sli("checkout", false, "10m"), t).await;
    assert_close(
        "requests since start of t-young",
        young["t-young"],
        320_000.0,
    );

    // The regression baseline: t-prev over the hour before t-regress and t-healthy started.
    let prev_errors = by_train(&client, &sli("checkout", true, "1h"), t - HOUR).await;
    let prev_total = by_train(&client, &sli("checkout", false, "1h"), t - HOUR).await;
    assert_close("baseline errors of t-prev", prev_errors["t-prev"], 960.0);
    assert_close(
        "baseline total of t-prev",
        prev_total["t-prev"],
        1_920_000.0,
    );

    // Service-wide budgets. t-prev and t-payments-prev stopped an hour before T, so Prometheus
    // extrapolates their increase half a step (15 s) past their last sample.
    let checkout_errors = by_train(&client, &service_wide("checkout", true, "30d"), t).await[""];
    let checkout_total = by_train(&client, &service_wide("checkout", false, "30d"), t).await[""];
    assert_close("checkout errors[30d]", checkout_errors, 31_844.0);
    assert_close("checkout total[30d]", checkout_total, 87_664_240.0);
    let remaining = 1.0 - (checkout_errors / checkout_total) / 0.001;
    assert!(
        (remaining - 0.63675).abs() < 1e-4,
        "checkout budget remaining {remaining}"
    );

    let payments_errors = by_train(&client, &service_wide("payments", true, "6h"), t).await[""];
    let payments_total = by_train(&client, &service_wide("payments", false, "6h"), t).await[""];
    assert_close("payments errors[6h]", payments_errors, 10_568.0);
    assert_close("payments total[6h]", payments_total, 4_322_000.0);
    let remaining = 1.0 - (payments_errors / payments_total) / 0.001;
    assert!(
        (remaining + 1.4452).abs() < 1e-4,
        "payments budget remaining {remaining}"
    );
    let payments_burn = by_train(&client, &sli("payments", true, "1h"), t).await["t-payments"]
        / by_train(&client, &sli("payments", false, "1h"), t).await["t-payments"]
        / 0.001;
    assert_close("burn[1h] of t-payments", payments_burn, 0.5);

    // No train is called t-missing.
    let missing = by_train(
        &client,
        r#"sum by (train_id) (increase(http_requests_total{train_id="t-missing"}[8h]))"#,
        t,
    )
    .await;
    assert!(missing.is_empty(), "{missing:?}");
    assert!(client.queries_sent() > 20);
}

/// Data rendered at test start, relative to an end time the test chooses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_rendered_serves_data_ending_at_the_given_time() {
    let end = EVAL_TIME + 86_400;
    let scenario = Scenario::new(vec![Traffic::new("checkout", "t-now", -20 * 60, 0)
        .instances(2)
        .code(200, 592)
        .code(500, 8)]);
    let prometheus = TestPrometheus::start_rendered(&scenario, end - HOUR, end, 15);
    let client = client(prometheus.url());
    let errors = by_train(&client, &sli("checkout", true, "5m"), end).await;
    let total = by_train(&client, &sli("checkout", false, "5m"), end).await;
    // 2 instances × 8 errors a minute × 5 minutes, of 2 × 600 × 5.
    assert_close("errors[5m] of t-now", errors["t-now"], 80.0);
    assert_close("total[5m] of t-now", total["t-now"], 6_000.0);
    // Ten seconds after the last sample, Prometheus extrapolates both counters alike.
    let later = by_train(&client, &sli("checkout", true, "5m"), end + 10).await["t-now"]
        / by_train(&client, &sli("checkout", false, "5m"), end + 10).await["t-now"];
    assert_close(
        "error ratio 10 s after the data ends",
        later,
        80.0 / 6_000.0,
    );
    assert!(
        prometheus.log().contains("Server is ready"),
        "{}",
        prometheus.log()
    );
}
