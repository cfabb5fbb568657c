//! `gate replay` end to end against a real Prometheus backfilled with the committed fixtures
//! (`fixtures/prometheus/README.md`): the signals at every step equal what `gate eval --at`
//! computes for that instant, the decisions change where the data says they must, and bad
//! input is refused clearly.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use common::prometheus::TestPrometheus;
use gate_engine::evaluate;
use gate_engine::planner::TrainSpec;
use gate_engine::prometheus::PrometheusClient;
use gate_engine::replay::{self, ReplayTrain};
use gate_rules::decide::{Mode, TrainState};
use gate_rules::PromDuration;
use serde_json::Value;

fn time(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_utc()
}

trait WithUtc {
    fn with_utc(self) -> DateTime<Utc>;
}
impl WithUtc for DateTime<chrono::FixedOffset> {
    fn with_utc(self) -> DateTime<Utc> {
        self.with_timezone(&Utc)
    }
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}\nstderr: {}", self.stdout, self.stderr))
    }
}

fn cli(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_gate"))
        .args(args)
        .output()
        .expect("run gate");
    Run {
        code: out.status.code().expect("exit code"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Numbers equal within a relative 1e-9 (the replay sums per-series increases in
/// Prometheus' order; the tolerance only absorbs a different summation order), everything
/// else equal.
fn assert_same(a: &Value, b: &Value, path: &str) {
    assert_same_but(a, b, path, &[]);
}

/// The sequential test's fields of `error_delta`: they depend on the looks taken before the
/// evaluation, so a stateless evaluation with a fresh state has its own.
const SEQUENTIAL_FIELDS: &[&str] = &[
    "e_value",
    "p_value",
    "significant",
    "ratio_lower",
    "looks",
    "dispersion",
];

/// [`assert_same`], with the fields named in `skip` left out of the comparison.
fn assert_same_but(a: &Value, b: &Value, path: &str, skip: &[&str]) {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            assert!(
                (x - y).abs() <= 1e-9 * y.abs().max(1.0),
                "{path}: replay {x} != eval {y}"
            );
        }
        (Value::Object(x), Value::Object(y)) => {
            let keys: Vec<_> = x.keys().collect();
            assert_eq!(keys, y.keys().collect::<Vec<_>>(), "{path}: keys");
            for k in keys {
                if skip.contains(&k.as_str()) {
                    continue;
                }
                assert_same_but(&x[k], &y[k], &format!("{path}.{k}"), skip);
            }
        }
        _ => assert_eq!(a, b, "{path}"),
    }
}

struct Setup {
    prometheus: TestPrometheus,
    _dir: tempfile::TempDir,
    config: PathBuf,
}

impl Setup {
    fn config(&self) -> &str {
        self.config.to_str().unwrap()
    }
}

fn setup() -> Setup {
    let files = common::committed_om_files();
    let paths: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let prometheus = TestPrometheus::start(&paths);
    let dir = tempfile::tempdir().unwrap();
    let config = common::gate_test_config(dir.path(), prometheus.url());
    Setup {
        prometheus,
        _dir: dir,
        config,
    }
}

fn spec(id: &str, started_at: &str, baseline: Option<&str>) -> TrainSpec {
    TrainSpec {
        id: id.parse().unwrap(),
        started_at: time(started_at),
        baseline: baseline.map(|b| b.parse().unwrap()),
    }
}

/// Several trains replayed together (one batch of reads) compared, step by step, with a
/// stateless evaluation of the train alone at that instant: the code `gate eval` runs.
#[test]
fn signals_at_every_step_equal_gate_eval() {
    let s = setup();
    let config = gate_rules::config::load_file(&s.config).unwrap();
    let gate = config.gate("checkout").unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = Arc::new(PrometheusClient::new(&config.prometheus, None).unwrap());
    let to = time("2026-11-01T12:00:00Z");
    let trains: Vec<ReplayTrain> = [
        spec("t-healthy", "2026-11-01T11:00:00Z", Some("t-prev")),
        spec("t-regress", "2026-11-01T11:00:00Z", Some("t-prev")),
        spec("t-fastburn", "2026-11-01T11:30:00Z", None),
        spec("t-young", "2026-11-01T11:50:00Z", Some("t-prev")),
        spec("t-lowtraffic", "2026-11-01T10:00:00Z", None),
        spec("t-clean", "2026-11-01T11:00:00Z", Some("t-prev")),
    ]
    .into_iter()
    .map(|spec| ReplayTrain {
        from: spec.started_at,
        to,
        spec,
    })
    .collect();
    let steps: Arc<Mutex<Vec<(TrainSpec, DateTime<Utc>, Value)>>> = Arc::default();
    let seen = Arc::clone(&steps);
    let mut observe = move |spec: &TrainSpec, report: &gate_engine::report::EvaluationReport| {
        seen.lock().unwrap().push((
            spec.clone(),
            report.evaluated_at,
            serde_json::to_value(&report.signals).unwrap(),
        ));
    };
    let (replays, stats) = runtime
        .block_on(replay::replay(
            &client,
            &config,
            gate,
            &trains,
            PromDuration::from_secs(30),
            Some(&mut observe),
        ))
        .unwrap();
    let steps = steps.lock().unwrap().clone();
    assert_eq!(stats.evaluations as usize, steps.len());
    assert_eq!(
        replays.iter().map(|r| r.evaluations).sum::<u64>() as usize,
        steps.len()
    );
    // Batched: the reads of one 2-hour chunk, not one query per step and train.
    assert!(
        stats.queries < 30,
        "{} queries for {} evaluations",
        stats.queries,
        steps.len()
    );
    assert!(steps.len() > 400, "{} evaluations", steps.len());

    let mut compared_with_binary = 0;
    for (i, (spec, at, signals)) in steps.iter().enumerate() {
        let fetched = runtime
            .block_on(evaluate::fetch(
                &client,
                &config,
                gate,
                std::slice::from_ref(spec),
                *at,
            ))
            .unwrap();
        let (_, report) = evaluate::decide_train(
            &config,
            gate,
            spec,
            &fetched.plan,
            &fetched.signals[&spec.id],
            &TrainState::default(),
            Mode::Stateless,
        );
        let expected = serde_json::to_value(&report.signals).unwrap();
        // The counts and ratios against a stateless evaluation at that instant; the sequential
        // test's fields against `gate eval`, which rebuilds the same looks (below).
        assert_same_but(
            signals,
            &expected,
            &format!("{} at {at}", spec.id),
            SEQUENTIAL_FIELDS,
        );
        // And through the binary, every 25th step.
        if i % 25 == 0 {
            let mut args = vec![
                "eval".to_string(),
                "--config".into(),
                s.config().into(),
                "--gate".into(),
                "checkout".into(),
                "--train".into(),
                spec.id.to_string(),
                "--started-at".into(),
                spec.started_at.to_rfc3339(),
                "--at".into(),
                at.to_rfc3339(),
                "--format".into(),
                "json".into(),
            ];
            if let Some(b) = &spec.baseline {
                args.extend(["--baseline".into(), b.to_string()]);
            }
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let eval = cli(&args).json();
            assert_same(
                signals,
                &eval["signals"],
                &format!("gate eval {} at {at}", spec.id),
            );
            compared_with_binary += 1;
        }
    }
    assert!(compared_with_binary > 10);
    // The replay ended each train where the daemon would have stopped evaluating it.
    let by_id = |id: &str| replays.iter().find(|r| r.train == id).unwrap();
    assert_eq!(
        by_id("t-fastburn")
            .final_decision
            .as_ref()
            .unwrap()
            .decision
            .as_str(),
        "rollback"
    );
    assert_eq!(
        by_id("t-regress")
            .final_decision
            .as_ref()
            .unwrap()
            .decision
            .as_str(),
        "rollback"
    );
    assert_eq!(
        by_id("t-healthy")
            .final_decision
            .as_ref()
            .unwrap()
            .decision
            .as_str(),
        "promote"
    );
    drop(s.prometheus);
}

fn replay_json(s: &Setup, args: &[&str]) -> (Run, Value) {
    let mut all = vec![
        "replay",
        "--config",
        s.config(),
        "--gate",
        "checkout",
        "--format",
        "json",
    ];
    all.extend_from_slice(args);
    let run = cli(&all);
    let json = run.json();
    (run, json)
}

fn changes(v: &Value) -> Vec<(String, String)> {
    v["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["at"].as_str().unwrap().to_string(),
                c["decision"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn burn(report: &Value, window: &str) -> Option<f64> {
    report["signals"]["burn_rate"]["checkout-availability"][window].as_f64()
}

#[test]
fn decisions_change_where_the_data_says_and_exit_codes_follow() {
    let s = setup();
    let eval_at = |train: &str, started: &str, at: DateTime<Utc>| {
        cli(&[
            "eval",
            "--config",
            s.config(),
            "--gate",
            "checkout",
            "--train",
            train,
            "--started-at",
            started,
            "--at",
            &at.to_rfc3339(),
            "--format",
            "json",
        ])
        .json()
    };

    // Fast burn: pending, then rollback at the first step where both windows exceed 14.4;
    // the rollback ends the replay.
    let (run, v) = replay_json(
        &s,
        &[
            "--train",
            "t-fastburn",
            "--started-at",
            "2026-11-01T11:30:00Z",
            "--to",
            "2026-11-01T12:00:00Z",
        ],
    );
    assert_eq!(run.code, 3, "{}", run.stderr);
    let start = time("2026-11-01T11:30:00Z");
    let first_burning = (0..60)
        .map(|k| start + Duration::seconds(30 * k))
        .find(|&at| {
            let e = eval_at("t-fastburn", "2026-11-01T11:30:00Z", at);
            burn(&e, "1h").is_some_and(|b| b > 14.4) && burn(&e, "5m").is_some_and(|b| b > 14.4)
        })
        .expect("the fast burn shows");
    assert!(
        first_burning > start,
        "the first step has one sample: no data yet"
    );
    let fmt = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
    assert_eq!(
        changes(&v),
        [
            (fmt(start), "pending".to_string()),
            (fmt(first_burning), "rollback".to_string())
        ]
    );
    assert_eq!(v["changes"][0]["previous"], Value::Null);
    assert_eq!(v["changes"][1]["previous"], "pending");
    assert_eq!(v["changes"][1]["rule"], "fast-burn");
    assert_eq!(v["final"]["decision"], "rollback");
    assert_eq!(v["to"], fmt(first_burning), "a rollback ends the replay");
    assert_eq!(v["step"], "30s");
    let evaluations = (first_burning - start).num_seconds() / 30 + 1;
    assert_eq!(v["evaluations"], evaluations);
    let fast = v["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "fast-burn")
        .unwrap();
    assert_eq!(fast["first_fired_at"], fmt(first_burning));
    assert_eq!(fast["fired_evaluations"], 1);

    // Healthy: promote within one step of started_at + verify_for (30m), then watched.
    let (run, v) = replay_json(
        &s,
        &[
            "--train",
            "t-healthy",
            "--started-at",
            "2026-11-01T11:00:00Z",
            "--baseline",
            "t-prev",
            "--to",
            "2026-11-01T12:00:00Z",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let c = changes(&v);
    assert_eq!(c.len(), 2, "{c:?}");
    assert_eq!(
        c[0],
        ("2026-11-01T11:00:00Z".to_string(), "pending".to_string())
    );
    assert_eq!(c[1].1, "promote");
    let promoted = time(&c[1].0);
    let due = time("2026-11-01T11:30:00Z");
    assert!(
        promoted >= due && promoted <= due + Duration::seconds(30),
        "{promoted}"
    );
    assert_eq!(v["evaluations"], 121, "watched until --to");

    // Slow burn: pauses, and stays paused (exit 4).
    let (run, v) = replay_json(
        &s,
        &[
            "--train",
            "t-slowburn",
            "--started-at",
            "2026-11-01T05:00:00Z",
            "--to",
            "2026-11-01T06:00:00Z",
        ],
    );
    assert_eq!(run.code, 4, "{}", run.stderr);
    let c = changes(&v);
    assert_eq!(c.last().unwrap().1, "pause", "{c:?}");
    assert_eq!(
        v["changes"].as_array().unwrap().last().unwrap()["rule"],
        "slow-burn"
    );
    assert_eq!(v["evaluations"], 121, "a pause does not end the replay");

    // Young train replayed up to T: still verifying (exit 5).
    let (run, v) = replay_json(
        &s,
        &[
            "--train",
            "t-young",
            "--started-at",
            "2026-11-01T11:50:00Z",
            "--to",
            "2026-11-01T12:00:00Z",
        ],
    );
    assert_eq!(run.code, 5, "{}", run.stderr);
    assert_eq!(v["final"]["decision"], "pending");

    // The human timeline: verdict first, the change with its numbers, the rule summary.
    let run = cli(&[
        "replay",
        "--config",
        s.config(),
        "--gate",
        "checkout",
        "--train",
        "t-fastburn",
        "--started-at",
        "2026-11-01T11:30:00Z",
        "--to",
        "2026-11-01T12:00:00Z",
        "--format",
        "human",
    ]);
    assert_eq!(run.code, 3);
    let first_line = run.stdout.lines().next().unwrap();
    assert!(
        first_line.starts_with("ROLLBACK  train t-fastburn"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains(r#"burn_rate("checkout-availability", "1h") = 50 > 14.4"#),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("slow-burn"), "{}", run.stdout);
}

#[test]
fn a_trains_file_replays_in_file_order_and_reports_bad_lines() {
    let s = setup();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("trains.jsonl");
    std::fs::write(
        &file,
        [
            r#"{"id": "t-regress", "started_at": "2026-11-01T11:00:00Z", "baseline": "t-prev"}"#,
            r#"{"id": "t-fastburn", "started_at": "2026-11-01T11:30:00Z"}"#,
            r#"{"id": "bad id with spaces", "started_at": "2026-11-01T11:30:00Z"}"#,
            r#"{"id": "t-healthy", "started_at": "2026-11-01T11:00:00Z", "baseline": "t-prev"}"#,
        ]
        .join("\n"),
    )
    .unwrap();
    let run = cli(&[
        "replay",
        "--config",
        s.config(),
        "--gate",
        "checkout",
        "--trains",
        file.to_str().unwrap(),
        "--to",
        "2026-11-01T12:00:00Z",
        "--format",
        "json",
    ]);
    assert_eq!(
        run.code, 2,
        "an invalid line fails the command at the end: {}",
        run.stderr
    );
    assert!(run.stderr.contains("trains.jsonl:3: "), "{}", run.stderr);
    let lines: Vec<Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let got: Vec<(&str, &str)> = lines
        .iter()
        .map(|l| {
            (
                l["train"].as_str().unwrap(),
                l["final"]["decision"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("t-regress", "rollback"),
            ("t-fastburn", "rollback"),
            ("t-healthy", "promote")
        ]
    );

    // Without the bad line: exit 0.
    let good = dir.path().join("good.jsonl");
    let text = std::fs::read_to_string(&file).unwrap();
    let kept: Vec<&str> = text.lines().filter(|l| !l.contains("spaces")).collect();
    std::fs::write(&good, kept.join("\n")).unwrap();
    let run = cli(&[
        "replay",
        "--config",
        s.config(),
        "--gate",
        "checkout",
        "--trains",
        good.to_str().unwrap(),
        "--to",
        "2026-11-01T12:00:00Z",
        "--format",
        "json",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout.lines().count(), 3);
}

#[test]
fn a_step_finer_than_prometheus_resolution_is_chunked_not_refused() {
    let s = setup();
    // 1 s steps over 3.5 h: 12,601 points per series, more than the 11,000 one range query
    // may return.
    let (run, v) = replay_json(
        &s,
        &[
            "--train",
            "t-slowburn",
            "--started-at",
            "2026-11-01T05:00:00Z",
            "--to",
            "2026-11-01T08:30:00Z",
            "--step",
            "1s",
        ],
    );
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert_eq!(v["evaluations"], 12_601);
    assert_eq!(v["step"], "1s");
}

#[test]
fn bad_input_is_refused_clearly() {
    let s = setup();
    let base = [
        "replay",
        "--config",
        s.config(),
        "--gate",
        "checkout",
        "--train",
        "t-healthy",
        "--started-at",
        "2026-11-01T11:00:00Z",
    ];
    let with = |extra: &[&str]| {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        cli(&args)
    };
    let run = with(&[
        "--from",
        "2026-11-01T12:00:00Z",
        "--to",
        "2026-11-01T11:30:00Z",
    ]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("is after --to"), "{}", run.stderr);
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);

    let run = with(&["--step", "0s"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("greater than zero"), "{}", run.stderr);

    let dir = tempfile::tempdir().unwrap();
    let not_a_store = dir.path().join("notes.db");
    std::fs::write(&not_a_store, "these are my notes, not SQLite\n".repeat(200)).unwrap();
    let run = cli(&[
        "replay",
        "--config",
        s.config(),
        "--db",
        not_a_store.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("not a gate store"), "{}", run.stderr);
    assert_eq!(
        std::fs::read_to_string(&not_a_store).unwrap().len(),
        "these are my notes, not SQLite\n".len() * 200,
        "left untouched"
    );
    let run = cli(&[
        "replay",
        "--config",
        s.config(),
        "--db",
        dir.path().join("missing.db").to_str().unwrap(),
    ]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("no such file"), "{}", run.stderr);

    // Prometheus down: exit 6.
    let down = dir.path().join("down.yaml");
    let text = std::fs::read_to_string(&s.config).unwrap();
    std::fs::write(
        &down,
        text.replace(s.prometheus.url(), "http://127.0.0.1:9"),
    )
    .unwrap();
    let run = cli(&[
        "replay",
        "--config",
        down.to_str().unwrap(),
        "--gate",
        "checkout",
        "--train",
        "t-healthy",
        "--started-at",
        "2026-11-01T11:00:00Z",
        "--to",
        "2026-11-01T12:00:00Z",
    ]);
    assert_eq!(run.code, 6, "{}", run.stderr);
}

/// A real daemon decides on telemetry around the test's clock (it evaluates at wall-clock
/// time), then `gate replay --db` replays its store with a stricter config.
#[test]
fn replaying_a_daemon_store_with_a_stricter_config_lists_what_would_change() {
    use common::daemon::Daemon;
    use common::fixtures::{Scenario, Traffic};
    const MINUTE: i64 = 60;
    const AHEAD: i64 = 30 * MINUTE;
    let now = Utc::now();
    let end = now.timestamp() + AHEAD;
    let scenario = Scenario::new(vec![
        // Burn 0.5: promoted by the daemon, rolled back by the stricter rule.
        Traffic::new("checkout", "db-healthy", -AHEAD - 30 * MINUTE, 0)
            .code(200, 23_988)
            .code(500, 12),
        // Burn 50: rolled back either way.
        Traffic::new("checkout", "db-fastburn", -AHEAD - 30 * MINUTE, 0)
            .code(200, 1_140)
            .code(500, 60),
    ]);
    let prometheus = TestPrometheus::start_rendered(&scenario, end - AHEAD - 60 * MINUTE, end, 5);
    let dir = tempfile::tempdir().unwrap();
    let config = |extra_rule: &str| {
        format!(
            r#"
prometheus:
  url: {}
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
    interval: 5s
    verify_for: 10s
    watch_for: 2h
    min_requests: 100
    baseline: none
    on_inconclusive: pending
    rules:
      - name: fast-burn
        when: burn_rate("checkout-availability", "1h") > 14.4 && burn_rate("checkout-availability", "5m") > 14.4
        then: rollback
{extra_rule}"#,
            prometheus.url()
        )
    };
    let served = dir.path().join("served.yaml");
    std::fs::write(&served, config("")).unwrap();
    let stricter = dir.path().join("stricter.yaml");
    std::fs::write(
        &stricter,
        config(
            r#"      - name: strict-burn
        when: burn_rate("checkout-availability", "5m") > 0.2
        then: rollback
"#,
        ),
    )
    .unwrap();
    let db = dir.path().join("gate.db");
    let mut daemon = Daemon::start(&served, &db, dir.path().join("serve.log"));
    let server = daemon.url("");
    let started = (now - Duration::minutes(30)).to_rfc3339();
    for id in ["db-healthy", "db-fastburn"] {
        let run = cli(&[
            "train",
            "start",
            id,
            "--gate",
            "checkout",
            "--started-at",
            &started,
            "--server",
            &server,
        ]);
        assert_eq!(run.code, 0, "{}", run.stderr);
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let decision = |id: &str| {
        cli(&["status", id, "--format", "json", "--server", &server]).json()["decision"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    while decision("db-healthy") != "promote" || decision("db-fastburn") != "rollback" {
        assert!(
            std::time::Instant::now() < deadline,
            "the daemon did not decide: {}",
            daemon.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert_eq!(daemon.sigterm(), 0);

    let run = cli(&[
        "replay",
        "--config",
        stricter.to_str().unwrap(),
        "--db",
        db.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let rows: Vec<Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let row = |id: &str| {
        rows.iter()
            .find(|r| r["train"] == id)
            .unwrap_or_else(|| panic!("{id}: {}", run.stdout))
    };
    assert_eq!(row("db-healthy")["daemon"]["decision"], "promote");
    assert_eq!(row("db-healthy")["final"]["decision"], "rollback");
    assert_eq!(row("db-healthy")["final"]["rule"], "strict-burn");
    assert_eq!(row("db-fastburn")["daemon"]["decision"], "rollback");
    assert_eq!(row("db-fastburn")["final"]["decision"], "rollback");
    assert!(
        run.stderr.contains(
            "1 train would have been rolled back that was promoted (of 2 trains replayed)"
        ),
        "{}",
        run.stderr
    );

    let run = cli(&[
        "replay",
        "--config",
        stricter.to_str().unwrap(),
        "--db",
        db.to_str().unwrap(),
        "--format",
        "human",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let changed: Vec<&str> = run.stdout.lines().filter(|l| l.contains(" *")).collect();
    assert_eq!(changed.len(), 1, "{}", run.stdout);
    assert!(changed[0].starts_with("db-healthy"), "{}", run.stdout);
    assert!(
        run.stdout.trim_end().ends_with("(of 2 trains replayed)"),
        "{}",
        run.stdout
    );
    // The same config as the daemon's changes nothing.
    let run = cli(&[
        "replay",
        "--config",
        served.to_str().unwrap(),
        "--db",
        db.to_str().unwrap(),
        "--format",
        "human",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout
            .contains("no decision would change (2 trains replayed)"),
        "{}",
        run.stdout
    );
}
