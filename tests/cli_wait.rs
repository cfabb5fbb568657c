//! The client commands end to end: the real `gate` binary as a pipeline runs it — `gate train
//! start`, `gate wait`, `gate status`, `gate override`, `gate train stop` — against a real
//! `gate serve` process that evaluates trains against a real Prometheus.
//!
//! `gate wait` must end with the verdict's exit code: 0 promote, 3 rollback, 4 pause with
//! `--fail-on-pause` (a pause is waited through without it), 5 at the timeout, 6 when no
//! server answers; and it must ride out a daemon killed and restarted on the same store and
//! port while it waits. Its JSON lines and `gate status --format json` are parsed back into
//! typed structs, so the documented shapes are checked, not just their presence.
//!
//! The daemon evaluates at the wall-clock time, so the telemetry is rendered around the test's
//! start and runs half an hour into the future: every window the rules read has samples
//! whenever the daemon looks. Waits poll with deadlines.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use common::fixtures::{Scenario, Traffic};
use common::prometheus::TestPrometheus;
use gate_engine::report::EvaluationReport;
use gate_rules::Decision;
use serde::Deserialize;

const MINUTE: i64 = 60;
const HOUR: i64 = 3600;
/// How far into the future the telemetry runs.
const AHEAD: i64 = 30 * MINUTE;
/// Sampling step of the rendered telemetry.
const STEP: i64 = 15;

/// One JSON line of `gate wait` (documented in `src/cmd/wait.rs` and `docs/ci.md`).
#[derive(Debug, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum WaitLine {
    Decision {
        train: String,
        decision: Decision,
        reason: String,
        seq: u64,
        evaluated_at: Option<DateTime<Utc>>,
    },
    Unreachable {
        train: String,
        error: String,
        retry_in_secs: f64,
    },
    Result {
        train: String,
        exit_code: i32,
        outcome: String,
        decision: Option<Decision>,
        reason: String,
        seq: Option<u64>,
    },
}

/// A train as `gate status [ID] --format json` prints it (the API object).
#[derive(Debug, Deserialize)]
struct TrainStatus {
    train: String,
    gate: String,
    state: String,
    decision: Decision,
    reason: String,
    rule: Option<String>,
    seq: u64,
    evaluated_at: Option<DateTime<Utc>>,
    started_at: DateTime<Utc>,
    baseline: Option<String>,
    /// Only with an ID.
    #[serde(default)]
    evaluation: Option<EvaluationReport>,
}

#[derive(Debug, Deserialize)]
struct TrainList {
    trains: Vec<TrainStatus>,
}

/// A `gate serve` process; killed on drop.
struct Daemon {
    child: Child,
    addr: String,
    log: PathBuf,
}

impl Daemon {
    /// Starts `gate serve` on `listen` (`127.0.0.1:0` for any free port) and returns once it
    /// printed its address, which it does when the API answers.
    fn start(config: &Path, db: &Path, listen: &str, log: PathBuf) -> Daemon {
        let stderr = std::fs::File::create(&log).expect("create the daemon log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_gate"))
            .arg("serve")
            .arg("--config")
            .arg(config)
            .arg("--db")
            .arg(db)
            .args(["--listen", listen])
            .env_remove("GATE_API_TOKEN")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("run gate serve");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("gate serve: listening on http://") {
                    let _ = tx.send(addr.trim().to_string());
                }
            }
        });
        let Ok(addr) = rx.recv_timeout(Duration::from_secs(60)) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "gate serve did not print its address; its log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        };
        Daemon { child, addr, log }
    }

    fn server(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn sigkill(&mut self) {
        self.child.kill().expect("SIGKILL the daemon");
        self.child.wait().expect("reap the daemon");
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The test config: gate `checkout` as in `fixtures/prometheus/gate-test.yaml` but evaluated
/// every second, and gate `quick` that promotes a healthy train 90 s after its start.
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
    verify_for: 30m
    watch_for: 2h
    min_requests: 500
    baseline: previous_train
    on_inconclusive: pause
    rules:
      - name: fast-burn
        when: burn_rate("checkout-availability", "1h") > 14.4 && burn_rate("checkout-availability", "5m") > 14.4
        then: rollback
      - name: slow-burn
        when: burn_rate("checkout-availability", "6h") > 6 && burn_rate("checkout-availability", "30m") > 6
        then: pause
      - name: regression
        when: error_delta("checkout-availability").significant && error_delta("checkout-availability").relative > 0.5
        then: rollback
  - name: quick
    slos: [checkout-availability]
    interval: 1s
    verify_for: 90s
    watch_for: 1h
    min_requests: 100
    baseline: none
    on_inconclusive: pending
    rules:
      - name: fast-burn
        when: burn_rate("checkout-availability", "1h") > 14.4 && burn_rate("checkout-availability", "5m") > 14.4
        then: rollback
"#
    )
}

/// A `checkout` train on two instances that started `ago` seconds before now, with `ok` 2xx
/// and `errors_each` 500s and 503s per minute per instance; the rendered end is now + AHEAD.
fn train(id: &str, ago: i64, until_ago: i64, ok: u64, errors_each: u64) -> Traffic {
    Traffic::new("checkout", id, -AHEAD - ago, -AHEAD - until_ago)
        .instances(2)
        .code(200, ok)
        .code(500, errors_each)
        .code(503, errors_each)
}

/// Telemetry for the verdict test: the numbers of `fixtures/prometheus/README.md`, around now.
fn verdict_scenario() -> Scenario {
    Scenario::new(vec![
        // The train before w-healthy: 0.05 % errors, stopped an hour ago.
        train("w-prev", 3 * HOUR, HOUR, 15_992, 4),
        // 0.05 % errors for an hour: promote.
        train("w-healthy", HOUR, -AHEAD, 15_992, 4),
        // 5 % errors: rollback (fast-burn).
        train("w-fastburn", 30 * MINUTE, -AHEAD, 1_520, 40),
        // 0.8 % errors for 7 hours: burn 8, pause (slow-burn).
        train("w-slowburn", 7 * HOUR, -AHEAD, 992, 4),
        // Healthy but 10 minutes old: pending.
        train("w-young", 10 * MINUTE, -AHEAD, 15_992, 4),
    ])
}

fn now_secs() -> i64 {
    Utc::now().timestamp()
}

fn start_prometheus(scenario: &Scenario, now: i64) -> TestPrometheus {
    TestPrometheus::start_rendered(scenario, now - 8 * HOUR, now + AHEAD, STEP)
}

/// Runs `gate ARGS` against `server` (colour off) and returns its output.
fn gate(server: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gate"))
        .args(args)
        .env("GATE_SERVER", server)
        .env("NO_COLOR", "1")
        .env_remove("GATE_API_TOKEN")
        .stdin(Stdio::null())
        .output()
        .expect("run gate")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Parses every stdout line of `gate wait` as a [`WaitLine`].
fn wait_lines(out: &Output) -> Vec<WaitLine> {
    text(&out.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("not a documented wait line ({e}): {l}"))
        })
        .collect()
}

/// `gate wait ID ARGS…` piped (JSON lines): its exit code and lines. Asserts the last line is
/// the result and agrees with the exit code.
fn wait(server: &str, id: &str, extra: &[&str]) -> (i32, Vec<WaitLine>) {
    let mut args = vec!["wait", id];
    args.extend_from_slice(extra);
    let out = gate(server, &args);
    let code = out.status.code().expect("gate wait exited");
    let lines = wait_lines(&out);
    match lines.last() {
        Some(WaitLine::Result {
            train, exit_code, ..
        }) => {
            assert_eq!(train, id);
            assert_eq!(*exit_code, code, "result line vs exit code");
        }
        other => panic!(
            "gate wait {id} did not end with a result line: {other:?}\nstderr: {}",
            text(&out.stderr)
        ),
    }
    (code, lines)
}

fn decisions(lines: &[WaitLine]) -> Vec<Decision> {
    lines
        .iter()
        .filter_map(|l| match l {
            WaitLine::Decision { decision, .. } => Some(*decision),
            _ => None,
        })
        .collect()
}

fn result_of(lines: &[WaitLine]) -> (&str, Option<Decision>) {
    match lines.last() {
        Some(WaitLine::Result {
            outcome, decision, ..
        }) => (outcome.as_str(), *decision),
        other => panic!("no result line: {other:?}"),
    }
}

fn register(server: &str, id: &str, gate_name: &str, started_at: i64, baseline: Option<&str>) {
    let started = started_at.to_string();
    let mut args = vec![
        "train",
        "start",
        id,
        "--gate",
        gate_name,
        "--started-at",
        &started,
    ];
    if let Some(b) = baseline {
        args.extend(["--baseline", b]);
    }
    let out = gate(server, &args);
    assert!(
        out.status.success(),
        "gate train start {id}: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(text(&out.stdout).contains(&format!("registered train {id}")));
}

#[test]
fn wait_exits_with_the_verdict_and_status_shows_it() {
    let now = now_secs();
    let prometheus = start_prometheus(&verdict_scenario(), now);
    let dir = tempfile::tempdir().expect("temp dir");
    let config_path = dir.path().join("gate.yaml");
    std::fs::write(&config_path, config(prometheus.url())).expect("write config");
    let daemon = Daemon::start(
        &config_path,
        &dir.path().join("gate.db"),
        "127.0.0.1:0",
        dir.path().join("serve.log"),
    );
    let server = daemon.server();

    register(&server, "w-healthy", "checkout", now - HOUR, Some("w-prev"));
    register(&server, "w-fastburn", "checkout", now - 30 * MINUTE, None);
    register(&server, "w-slowburn", "checkout", now - 7 * HOUR, None);
    register(
        &server,
        "w-young",
        "checkout",
        now - 10 * MINUTE,
        Some("w-prev"),
    );

    // Promote: 0. The first line may be `pending` (not evaluated yet); the last is promote.
    let (code, lines) = wait(&server, "w-healthy", &["--timeout", "90s"]);
    assert_eq!(code, 0, "{lines:?}\n{}", daemon.log());
    assert_eq!(decisions(&lines).last(), Some(&Decision::Promote));
    assert_eq!(result_of(&lines), ("promote", Some(Decision::Promote)));

    // Rollback: 3.
    let (code, lines) = wait(&server, "w-fastburn", &["--timeout", "90s"]);
    assert_eq!(code, 3, "{lines:?}");
    assert_eq!(result_of(&lines), ("rollback", Some(Decision::Rollback)));
    let Some(WaitLine::Decision {
        reason,
        seq,
        evaluated_at,
        ..
    }) = lines
        .iter()
        .rev()
        .find(|l| matches!(l, WaitLine::Decision { .. }))
    else {
        panic!("no decision line: {lines:?}");
    };
    assert!(reason.contains("fast-burn"), "{reason}");
    assert!(*seq >= 1);
    assert!(evaluated_at.is_some_and(|t| t.timestamp() >= now));

    // Pause with --fail-on-pause: 4.
    let (code, lines) = wait(
        &server,
        "w-slowburn",
        &["--timeout", "90s", "--fail-on-pause"],
    );
    assert_eq!(code, 4, "{lines:?}");
    assert_eq!(result_of(&lines), ("pause", Some(Decision::Pause)));
    // Without it, a pause is waited through: the timeout ends the wait (5), still paused.
    let (code, lines) = wait(&server, "w-slowburn", &["--timeout", "2s"]);
    assert_eq!(code, 5, "{lines:?}");
    assert_eq!(result_of(&lines), ("timeout", Some(Decision::Pause)));

    // Pending at the timeout: 5.
    let started = Instant::now();
    let (code, lines) = wait(&server, "w-young", &["--timeout", "2s"]);
    assert_eq!(code, 5, "{lines:?}");
    assert_eq!(result_of(&lines), ("timeout", Some(Decision::Pending)));
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the timeout was honoured"
    );

    // An unknown train is refused at once: 2.
    let (code, lines) = wait(&server, "w-nope", &["--timeout", "60s"]);
    assert_eq!(code, 2, "{lines:?}");
    assert_eq!(result_of(&lines).0, "error");

    // `gate status ID --format json`: the API object with its latest evaluation.
    let out = gate(&server, &["status", "w-fastburn", "--format", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown: TrainStatus = serde_json::from_slice(&out.stdout).expect("status JSON");
    assert_eq!(
        (shown.train.as_str(), shown.gate.as_str()),
        ("w-fastburn", "checkout")
    );
    assert_eq!(shown.decision, Decision::Rollback);
    assert_eq!(shown.state, "rolled_back");
    assert_eq!(shown.rule.as_deref(), Some("fast-burn"));
    assert_eq!(shown.started_at.timestamp(), now - 30 * MINUTE);
    let evaluation = shown.evaluation.expect("the latest evaluation");
    assert_eq!(evaluation.decision, Decision::Rollback);
    let fast = evaluation
        .rules
        .iter()
        .find(|r| &*r.name == "fast-burn")
        .expect("fast-burn in the evaluation");
    assert_eq!(fast.fired, Some(true));
    let burn_1h = evaluation
        .signals
        .burn_rate
        .get("checkout-availability")
        .and_then(|w| *w.get("1h")?)
        .expect("1h burn rate")
        .0;
    assert!((burn_1h - 50.0).abs() < 0.5, "burn 50, got {burn_1h}");

    // `gate status --format json`: the list.
    let out = gate(&server, &["status", "--format", "json"]);
    let list: TrainList = serde_json::from_slice(&out.stdout).expect("status list JSON");
    let mut listed: Vec<(String, Decision)> = list
        .trains
        .iter()
        .map(|t| (t.train.clone(), t.decision))
        .collect();
    listed.sort();
    assert_eq!(
        listed,
        [
            ("w-fastburn".to_string(), Decision::Rollback),
            ("w-healthy".to_string(), Decision::Promote),
            ("w-slowburn".to_string(), Decision::Pause),
            ("w-young".to_string(), Decision::Pending),
        ]
    );
    assert!(list.trains.iter().all(|t| t.evaluated_at.is_some()));
    let healthy = list.trains.iter().find(|t| t.train == "w-healthy").unwrap();
    assert_eq!(healthy.baseline.as_deref(), Some("w-prev"));
    assert!(healthy.seq >= 1 && !healthy.reason.is_empty());

    // The human table: one row per train with its decision, no colour under NO_COLOR.
    let out = gate(&server, &["status", "--format", "human"]);
    let table = text(&out.stdout);
    assert!(!table.contains('\x1b'), "{table}");
    let rows: Vec<(String, String)> = table
        .lines()
        .skip(1)
        .map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            (cols[0].to_string(), cols[2].to_string())
        })
        .collect();
    for (train, decision) in [
        ("w-healthy", "PROMOTE"),
        ("w-fastburn", "ROLLBACK"),
        ("w-slowburn", "PAUSE"),
        ("w-young", "PENDING"),
    ] {
        assert!(
            rows.contains(&(train.to_string(), decision.to_string())),
            "{train} {decision} in\n{table}"
        );
    }

    // One train for people: the verdict first, then why, history and webhooks.
    let out = gate(&server, &["status", "w-fastburn", "--format", "human"]);
    let view = text(&out.stdout);
    assert!(view.starts_with("ROLLBACK  train w-fastburn"), "{view}");
    assert!(view.contains("Decisions (latest first):") && view.contains("Webhooks:"));

    // An override is a verdict too: forced rollback of the paused train ends its wait with 3.
    let out = gate(
        &server,
        &[
            "override",
            "w-slowburn",
            "--decision",
            "rollback",
            "--reason",
            "test: give up",
            "--actor",
            "ci",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("ROLLBACK  train w-slowburn"));
    let (code, _) = wait(&server, "w-slowburn", &["--timeout", "30s"]);
    assert_eq!(code, 3);
    let out = gate(&server, &["status", "w-slowburn", "--format", "human"]);
    assert!(
        text(&out.stdout).contains("pause → rollback  override rollback by ci: test: give up"),
        "{}",
        text(&out.stdout)
    );

    // A stopped train has no final decision coming: its wait ends with 5, outcome stopped.
    let out = gate(&server, &["train", "stop", "w-young"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (code, lines) = wait(&server, "w-young", &["--timeout", "60s"]);
    assert_eq!(code, 5, "{lines:?}");
    assert_eq!(result_of(&lines).0, "stopped");
}

#[test]
fn wait_without_a_server_ends_unreachable() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    // The listener is gone: nothing answers on the port.
    let server = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    let (code, lines) = wait(&server, "t-1", &["--timeout", "2s"]);
    assert_eq!(code, 6, "{lines:?}");
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(
        matches!(&lines[0], WaitLine::Unreachable { error, retry_in_secs, .. }
            if error.contains("unreachable") && *retry_in_secs > 0.0),
        "{lines:?}"
    );
    assert_eq!(result_of(&lines), ("unreachable", None));

    // The other client commands say so with exit 6 too.
    for args in [
        &["status"][..],
        &["status", "t-1"],
        &["train", "list"],
        &["train", "start", "t-1", "--gate", "g"],
    ] {
        let out = gate(&server, args);
        assert_eq!(out.status.code(), Some(6), "gate {args:?}");
        assert!(
            text(&out.stderr).contains("unreachable"),
            "{}",
            text(&out.stderr)
        );
    }
}

#[test]
fn wait_rides_out_a_daemon_restart() {
    let now = now_secs();
    // One healthy train serving since ten minutes ago.
    let scenario = Scenario::new(vec![train("w-quick", 10 * MINUTE, -AHEAD, 15_992, 4)]);
    let prometheus = start_prometheus(&scenario, now);
    let dir = tempfile::tempdir().expect("temp dir");
    let config_path = dir.path().join("gate.yaml");
    let db = dir.path().join("gate.db");
    std::fs::write(&config_path, config(prometheus.url())).expect("write config");
    let mut daemon = Daemon::start(
        &config_path,
        &db,
        "127.0.0.1:0",
        dir.path().join("serve-1.log"),
    );
    let server = daemon.server();
    let addr = daemon.addr.clone();

    // Registered as started 60 s ago: gate `quick` promotes it 30 s from now.
    let registered = now_secs();
    register(&server, "w-quick", "quick", registered - 60, None);

    let mut waiter = Command::new(env!("CARGO_BIN_EXE_gate"))
        .args(["wait", "w-quick", "--timeout", "3m", "--format", "json"])
        .env("GATE_SERVER", &server)
        .env_remove("GATE_API_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run gate wait");
    let stdout = waiter.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let next_line = |what: &str| -> WaitLine {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("gate wait printed no {what} line"));
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
    };

    // The wait is under way: its first line is the current decision, still pending.
    let first = next_line("first decision");
    assert!(
        matches!(
            first,
            WaitLine::Decision {
                decision: Decision::Pending,
                ..
            }
        ),
        "{first:?}"
    );

    // The daemon dies; the wait notices and keeps retrying.
    daemon.sigkill();
    let outage = next_line("unreachable");
    assert!(
        matches!(&outage, WaitLine::Unreachable { train, .. } if train == "w-quick"),
        "{outage:?}"
    );
    assert!(
        waiter.try_wait().expect("poll gate wait").is_none(),
        "gate wait must keep waiting through the outage"
    );

    // Back on the same store and port: the train is resumed and promoted on schedule.
    let restarted = Daemon::start(&config_path, &db, &addr, dir.path().join("serve-2.log"));
    let deadline = Instant::now() + Duration::from_secs(150);
    let status = loop {
        if let Some(status) = waiter.try_wait().expect("poll gate wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "gate wait did not end after the restart; daemon log:\n{}",
            restarted.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    reader.join().expect("reader thread");
    let rest: Vec<WaitLine> = rx
        .try_iter()
        .map(|l| serde_json::from_str(&l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(status.code(), Some(0), "{rest:?}\n{}", restarted.log());
    let promoted = rest
        .iter()
        .find_map(|l| match l {
            WaitLine::Decision {
                decision: Decision::Promote,
                seq,
                evaluated_at,
                ..
            } => Some((*seq, *evaluated_at)),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no promote line: {rest:?}"));
    assert!(promoted.0 >= 1, "{rest:?}");
    assert!(
        promoted.1.is_some_and(|t| t.timestamp() >= registered + 30),
        "promoted no earlier than verify_for after the start: {rest:?}"
    );
    assert!(
        matches!(rest.last(), Some(WaitLine::Result { exit_code: 0, outcome, .. }) if outcome == "promote"),
        "{rest:?}"
    );
}

/// `gate status` of every train is one request, however many trains there are: the table
/// (and the JSON with every train's evidence) comes from `GET /v1/trains` alone. The server
/// here answers only that request; any other would fail the command, and the count is read
/// back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_of_every_train_is_one_request() {
    const TRAINS: usize = 2_000;
    let trains: Vec<serde_json::Value> = (0..TRAINS)
        .map(|i| {
            serde_json::json!({
                "train": format!("t-{i:05}"), "gate": "checkout", "state": "verifying",
                "decision": "pending", "reason": "verifying for 30m", "rule": null,
                "seq": 1, "evaluated_at": "2026-01-01T10:00:00Z",
                "started_at": "2026-01-01T09:50:00Z", "baseline": null, "labels": {},
                "registered_at": "2026-01-01T09:50:00Z", "promoted_at": null,
                "stopped_at": null, "pinned": null, "consecutive_errors": 0,
                "evaluating": true, "evaluation": null,
                "worst_burn": {"signal": "burn_rate(\"availability\", \"5m\")", "value": 0.5,
                               "threshold": 14.4, "rule": "fast-burn"},
            })
        })
        .collect();
    let server = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::method("GET"))
        .and(wiremock::matchers::path("/v1/trains"))
        .respond_with(
            wiremock::ResponseTemplate::new(200)
                .set_body_json(serde_json::json!({"trains": trains, "next_cursor": null})),
        )
        .mount(&server)
        .await;
    for (n, format) in ["human", "json"].into_iter().enumerate() {
        let url = server.uri();
        let out = tokio::task::spawn_blocking(move || gate(&url, &["status", "--format", format]))
            .await
            .unwrap();
        assert!(out.status.success(), "{format}: {}", text(&out.stderr));
        // Requests so far: one per command.
        let requests = server.received_requests().await.unwrap();
        assert_eq!(requests.len(), n + 1, "{format}: {requests:?}");
        assert_eq!(
            requests[n].url.query(),
            Some(if format == "json" {
                "state=active&evaluation=true"
            } else {
                "state=active"
            })
        );
        let shown = text(&out.stdout);
        let rows = match format {
            "json" => serde_json::from_str::<TrainList>(&shown)
                .expect("status list JSON")
                .trains
                .len(),
            _ => shown
                .lines()
                .filter(|l| l.trim_start().starts_with("t-"))
                .count(),
        };
        assert_eq!(rows, TRAINS, "{format}");
    }
}
