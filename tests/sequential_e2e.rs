//! The anytime-valid `error_delta` test end to end, against a real Prometheus.
//!
//! `noisy_trains_replayed_every_30s_for_2h`: Poisson-noisy counters (fixed seed, a Poisson
//! increment per sample and series, not a constant rate) for healthy trains — the same 0.1 %
//! error rate as their own previous train — and for trains at twice it, each replayed by the
//! replay engine (the daemon's evaluation loop over history) every 30 s for 2 h under
//! `error_delta(...).significant → rollback`. Healthy trains are rolled back no more often than
//! `alpha` allows; every regression is caught within 30 minutes.
//!
//! `daemon_and_eval_agree_on_a_late_registered_train`: a real `gate serve` evaluates a train
//! registered 150 s after it started: its first evaluation catches up the looks it missed
//! (`started_at + k·interval`), so its `e_value` equals what `gate eval --at` computes for the
//! same train at the same instant, rebuilding the same looks from Prometheus. The daemon runs
//! on the wall clock, so that test's telemetry is rendered around the test's start time.

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use common::daemon::{Api, Daemon};
use common::fixtures::{Scenario, Traffic};
use common::prometheus::TestPrometheus;
use gate_engine::planner::TrainSpec;
use gate_engine::prometheus::PrometheusClient;
use gate_engine::replay::{self, ReplayTrain};
use gate_rules::{Decision, PromDuration};
use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, Poisson};
use serde_json::{json, Value};

/// Healthy trains: their error rate equals their baseline's.
const HEALTHY: usize = 100;
/// Trains at twice their baseline's error rate.
const REGRESSED: usize = 20;
/// Requests per second of every train and baseline.
const RATE: f64 = 100.0;
/// The baseline's (and a healthy train's) share of errors.
const ERROR_SHARE: f64 = 0.001;
/// Seconds between samples.
const SCRAPE: i64 = 30;
/// Seconds each train (and each baseline before it) serves.
const SPAN: i64 = 2 * 3600;

fn config(prometheus_url: &str) -> String {
    format!(
        r#"
prometheus:
  url: {prometheus_url}
  timeout: 30s
slos:
  - name: availability
    objective: 99.9
    errors: http_requests_total{{code=~"5.."}}
    total: http_requests_total
gates:
  - name: checkout
    slos: [availability]
    interval: 30s
    verify_for: 30m
    watch_for: 90m
    min_requests: 100
    baseline: previous_train
    alpha: 0.01
    rules:
      - name: regression
        when: error_delta("availability").significant
        then: rollback
"#
    )
}

/// One counter pair (`code="200"`, `code="500"`) of `train` from `from` for [`SPAN`] seconds,
/// sampled every [`SCRAPE`] seconds, each sample adding independent Poisson counts.
fn write_train(
    out: &mut String,
    rng: &mut StdRng,
    train: &str,
    from: i64,
    error_share: f64,
) -> std::fmt::Result {
    use std::fmt::Write as _;
    let per_sample = RATE * SCRAPE as f64;
    let ok = Poisson::new(per_sample * (1.0 - error_share)).expect("positive rate");
    let errors = Poisson::new(per_sample * error_share).expect("positive rate");
    let (mut good, mut bad) = (0.0, 0.0);
    let mut good_lines = String::new();
    let mut bad_lines = String::new();
    for k in 0..=SPAN / SCRAPE {
        let t = from + k * SCRAPE;
        if k > 0 {
            good += ok.sample(rng);
            bad += errors.sample(rng);
        }
        writeln!(
            good_lines,
            "http_requests_total{{code=\"200\",train_id=\"{train}\"}} {good} {t}"
        )?;
        writeln!(
            bad_lines,
            "http_requests_total{{code=\"500\",train_id=\"{train}\"}} {bad} {t}"
        )?;
    }
    out.push_str(&good_lines);
    out.push_str(&bad_lines);
    Ok(())
}

#[test]
fn noisy_trains_replayed_every_30s_for_2h() {
    let start: DateTime<Utc> = "2026-11-02T00:00:00Z".parse().unwrap();
    let t0 = start.timestamp();
    let trains: Vec<(String, f64)> = (0..HEALTHY)
        .map(|i| (format!("healthy-{i}"), ERROR_SHARE))
        .chain((0..REGRESSED).map(|i| (format!("doubled-{i}"), 2.0 * ERROR_SHARE)))
        .collect();
    let prometheus = TestPrometheus::start_with(|dir| {
        let mut rng = StdRng::seed_from_u64(20261102);
        let mut om = String::from("# TYPE http_requests counter\n");
        for (train, share) in &trains {
            // The previous train served the 2 h before this one started.
            write_train(
                &mut om,
                &mut rng,
                &format!("{train}-prev"),
                t0 - SPAN,
                ERROR_SHARE,
            )
            .unwrap();
            write_train(&mut om, &mut rng, train, t0, *share).unwrap();
        }
        om.push_str("# EOF\n");
        let path: PathBuf = dir.join("noisy.om");
        std::fs::write(&path, om).unwrap();
        vec![path]
    });

    let config = gate_rules::config::load_str("noisy.yaml", &config(prometheus.url())).unwrap();
    let gate = config.gate("checkout").unwrap();
    let client = Arc::new(PrometheusClient::new(&config.prometheus, None).unwrap());
    let replayed: Vec<ReplayTrain> = trains
        .iter()
        .map(|(train, _)| ReplayTrain {
            spec: TrainSpec {
                id: train.parse().unwrap(),
                started_at: start,
                baseline: Some(format!("{train}-prev").parse().unwrap()),
            },
            from: start,
            to: start + Duration::seconds(SPAN),
        })
        .collect();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (replays, stats) = runtime
        .block_on(replay::replay(
            &client,
            &config,
            gate,
            &replayed,
            PromDuration::from_secs(30),
            None,
        ))
        .unwrap_or_else(|e| panic!("{e}\n{}", prometheus.log()));
    assert_eq!(replays.len(), trains.len());

    let rolled_back_at = |i: usize| {
        replays[i]
            .changes
            .iter()
            .find(|c| c.decision == Decision::Rollback)
            .map(|c| c.at - start)
    };
    let mut false_rollbacks = Vec::new();
    for i in 0..HEALTHY {
        let r = &replays[i];
        match rolled_back_at(i) {
            Some(after) => false_rollbacks.push(format!("{} after {after}", r.train)),
            None => {
                // Not rolled back: promoted on conclusive evidence and watched to the end.
                let last = r.final_decision.as_ref().unwrap();
                assert_eq!(
                    last.decision,
                    Decision::Promote,
                    "{}: {}",
                    r.train,
                    last.reason
                );
                assert_eq!(r.to, start + Duration::seconds(SPAN), "{}", r.train);
            }
        }
    }
    // Each healthy train is rolled back with probability at most alpha = 0.01, however many
    // looks (Ville's inequality), and the trains are independent (each has its own baseline and
    // noise), so the count is at most Binomial(100, 0.01): P(X ≥ 6) = 5.4e-4. More than 5
    // false rollbacks would mean the test is not anytime-valid. (The fixed-horizon test it
    // replaced rolls back 7–10 % of healthy trains: about 7–10 of these 100.)
    assert!(
        false_rollbacks.len() <= 5,
        "{} healthy trains rolled back: {false_rollbacks:?}",
        false_rollbacks.len()
    );

    let mut caught = Vec::new();
    for i in HEALTHY..trains.len() {
        let after = rolled_back_at(i)
            .unwrap_or_else(|| panic!("{} was never rolled back", replays[i].train));
        assert!(
            after <= Duration::minutes(30),
            "{} rolled back only after {after}",
            replays[i].train
        );
        caught.push(after.num_seconds());
    }
    caught.sort_unstable();
    println!(
        "{} of {HEALTHY} healthy trains rolled back; regressions caught after {:?} s \
         (median {} s); {} evaluations, {} queries",
        false_rollbacks.len(),
        caught,
        caught[caught.len() / 2],
        stats.evaluations,
        stats.queries
    );
    drop(prometheus);
}

/// How far into the future the daemon test's telemetry runs.
const AHEAD: i64 = 30 * 60;

fn daemon_config(prometheus_url: &str) -> String {
    format!(
        r#"
prometheus:
  url: {prometheus_url}
  timeout: 5s
slos:
  - name: availability
    objective: 99.9
    errors: http_requests_total{{service="checkout", code=~"5.."}}
    total: http_requests_total{{service="checkout"}}
gates:
  - name: checkout
    slos: [availability]
    interval: 30s
    verify_for: 1h
    baseline: before_start
    rules:
      - name: regression
        when: error_delta("availability").significant
        then: rollback
"#
    )
}

fn run_gate(args: &[&str]) -> Value {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gate"))
        .args(args)
        .output()
        .expect("run gate");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_and_eval_agree_on_a_late_registered_train() {
    let now = Utc::now();
    let end = now.timestamp() + AHEAD;
    // The train started 150 s before now: five looks at 30 s by now, and up to twelve (the
    // catch-up's most) while Prometheus and the daemon start, so the daemon takes every look
    // `gate eval` takes.
    let started = end - AHEAD - 150;
    let scenario = Scenario::new(vec![
        // The service before the train: 0.1 % errors.
        Traffic::new("checkout", "previous", -AHEAD - 3 * 3600, -AHEAD - 150)
            .code(200, 5_994)
            .code(500, 6),
        // The train: 0.3 % errors.
        Traffic::new("checkout", "late", -AHEAD - 150, 0)
            .code(200, 5_982)
            .code(500, 18),
    ]);
    let prometheus = TestPrometheus::start_rendered(&scenario, end - AHEAD - 3 * 3600, end, 5);
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("gate.yaml");
    std::fs::write(&config_path, daemon_config(prometheus.url())).unwrap();
    let daemon = Daemon::start(
        &config_path,
        &dir.path().join("gate.db"),
        dir.path().join("serve.log"),
    );
    let api = Api::default();
    let started_at = DateTime::<Utc>::from_timestamp(started, 0)
        .unwrap()
        .to_rfc3339_opts(SecondsFormat::Secs, true);
    let (status, body) = api
        .post(
            &daemon.url("/v1/trains"),
            json!({"id": "late", "gate": "checkout", "started_at": started_at}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let train = api
        .until(
            &daemon.url("/v1/trains/late"),
            "the first evaluation",
            std::time::Duration::from_secs(60),
            |t| !t["evaluation"].is_null(),
        )
        .await;
    let evaluation = &train["evaluation"];
    let evaluated_at = evaluation["evaluated_at"].as_str().unwrap().to_string();
    let served = &evaluation["signals"]["error_delta"]["availability"];
    assert!(
        evaluation["telemetry_error"].is_null(),
        "{evaluation:#}\n{}",
        daemon.log()
    );

    let config = config_path.to_str().unwrap();
    let eval = run_gate(&[
        "eval",
        "--config",
        config,
        "--gate",
        "checkout",
        "--train",
        "late",
        "--started-at",
        &started_at,
        "--at",
        &evaluated_at,
        "--format",
        "json",
    ]);
    let evaluated = &eval["signals"]["error_delta"]["availability"];
    let looks = served["looks"].as_u64().unwrap();
    assert!(
        looks >= 5,
        "the daemon caught up the looks before its first evaluation: {served:#}"
    );
    assert_eq!(
        served["looks"], evaluated["looks"],
        "{served:#} vs {evaluated:#}"
    );
    let e = |v: &Value| v["e_value"].as_f64().unwrap();
    assert!(
        e(served) > 1.0,
        "a 3× train has evidence against it: {served:#}"
    );
    assert!(
        (e(served) - e(evaluated)).abs() <= 1e-9 * e(evaluated).abs(),
        "daemon e_value {} at {evaluated_at}, gate eval {}",
        e(served),
        e(evaluated)
    );
    assert_eq!(served["p_value"], evaluated["p_value"]);
    assert_eq!(served["significant"], evaluated["significant"]);
    drop(daemon);
    drop(prometheus);
}
