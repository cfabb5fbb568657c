//! `gate eval` and `gate replay` against a real VictoriaMetrics holding the committed
//! fixtures (`fixtures/prometheus/README.md`), evaluated at the fixtures' time T: the same
//! decisions as against Prometheus, and never a promote without data.
//!
//! VictoriaMetrics computes `increase()` without Prometheus' extrapolation, so burn rates are
//! compared within a few percent of the fixtures' error ratios, not to Prometheus' digits.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::victoriametrics::TestVictoriaMetrics;
use serde_json::Value;

const T: &str = "2026-11-01T12:00:00Z";

fn gate(args: &[&str]) -> (i32, Option<Value>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_gate"))
        .args(args)
        .output()
        .expect("run gate");
    (
        out.status.code().expect("exit code"),
        serde_json::from_slice(&out.stdout).ok(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn eval(config: &Path, train: &str, extra: &[&str]) -> (i32, Value) {
    let config = config.to_str().unwrap();
    let mut args = vec![
        "eval", "--config", config, "--gate", "checkout", "--train", train, "--at", T, "--format",
        "json",
    ];
    args.extend_from_slice(extra);
    let (code, json, stderr) = gate(&args);
    (
        code,
        json.unwrap_or_else(|| panic!("no JSON report: {stderr}")),
    )
}

fn burn(report: &Value, window: &str) -> f64 {
    report["signals"]["burn_rate"]["checkout-availability"][window]
        .as_f64()
        .unwrap_or_else(|| panic!("burn rate {window} in {report:#}"))
}

fn assert_near(actual: f64, expected: f64, what: &str) {
    assert!(
        (actual - expected).abs() <= expected * 0.05,
        "{what}: {actual} is not within 5% of {expected}"
    );
}

#[test]
fn decisions_against_a_real_victoriametrics() {
    let files = common::committed_om_files();
    let paths: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let vm = TestVictoriaMetrics::start(&paths);
    let dir = tempfile::tempdir().unwrap();
    let config = common::gate_test_config(dir.path(), vm.url());

    // Healthy (0.05 % errors): burn 0.5, not worse than its baseline train → promote.
    let (code, r) = eval(&config, "t-healthy", &["--baseline", "t-prev"]);
    assert_eq!(
        (code, r["decision"].as_str()),
        (0, Some("promote")),
        "{r:#}\n{}",
        vm.log()
    );
    for w in ["5m", "30m", "1h", "6h"] {
        assert_near(burn(&r, w), 0.5, w);
    }
    assert_eq!(
        r["signals"]["error_delta"]["checkout-availability"]["significant"], false,
        "{r:#}"
    );

    // Fast burn (5 %): burn 50 on both windows → rollback by fast-burn.
    let (code, r) = eval(&config, "t-fastburn", &[]);
    assert_eq!(
        (code, r["decision"].as_str()),
        (3, Some("rollback")),
        "{r:#}"
    );
    assert_eq!(r["rule"], "fast-burn");
    assert_near(burn(&r, "1h"), 50.0, "fast burn 1h");

    // Slow burn (0.8 %): burn 8 → pause by slow-burn.
    let (code, r) = eval(&config, "t-slowburn", &[]);
    assert_eq!((code, r["decision"].as_str()), (4, Some("pause")), "{r:#}");
    assert_eq!(r["rule"], "slow-burn");
    assert_near(burn(&r, "6h"), 8.0, "slow burn 6h");

    // 10× its baseline's error ratio: the anchored baseline query (`@`) works → rollback.
    let (code, r) = eval(&config, "t-regress", &["--baseline", "t-prev"]);
    assert_eq!(
        (code, r["decision"].as_str()),
        (3, Some("rollback")),
        "{r:#}"
    );
    assert_eq!(r["rule"], "regression", "{r:#}");

    // Never promote blind: too little traffic, and no series at all.
    let (code, r) = eval(&config, "t-lowtraffic", &["--baseline", "t-prev"]);
    assert_eq!((code, r["decision"].as_str()), (4, Some("pause")), "{r:#}");
    let (code, r) = eval(
        &config,
        "t-missing",
        &[
            "--baseline",
            "t-prev",
            "--started-at",
            "2026-11-01T10:00:00Z",
        ],
    );
    assert_ne!(r["decision"], "promote", "{r:#}");
    assert_ne!(code, 0);

    // Replay reads ranges (query_range): the fast-burning train is rolled back, the
    // healthy one promoted.
    let config_arg = config.to_str().unwrap();
    let (code, json, stderr) = gate(&[
        "replay",
        "--config",
        config_arg,
        "--gate",
        "checkout",
        "--train",
        "t-fastburn",
        "--started-at",
        "2026-11-01T11:30:00Z",
        "--to",
        T,
        "--format",
        "json",
    ]);
    assert_eq!(code, 3, "{json:#?}\n{stderr}");
    let (code, json, stderr) = gate(&[
        "replay",
        "--config",
        config_arg,
        "--gate",
        "checkout",
        "--train",
        "t-healthy",
        "--baseline",
        "t-prev",
        "--started-at",
        "2026-11-01T11:00:00Z",
        "--to",
        T,
        "--format",
        "json",
    ]);
    assert_eq!(code, 0, "{json:#?}\n{stderr}");
}
