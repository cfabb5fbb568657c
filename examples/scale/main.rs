//! The 10,000-train scale scenario: batched evaluation against a real Prometheus, and the
//! same evaluation done the way per-rollout analysis tools do it (one query per metric per
//! train), side by side.
//!
//! ```text
//! cargo run --release --example scale -- [--trains 10000] [--cycles 5] [--baseline none]
//!     [--per-train-cycles 1] [--data-dir DIR]
//! ```
//!
//! What it does, timing each step:
//!
//! 1. writes OpenMetrics for N concurrently active trains: `http_requests_total` of
//!    `service="checkout"`, one instance, codes 200 and 500, every 15 s, each train started
//!    5 to 70 minutes before the evaluation time T (one in a hundred has 5 % errors, the rest
//!    0.2 %);
//! 2. backfills it with `promtool tsdb create-blocks-from openmetrics` and starts
//!    `prometheus` on a free loopback port;
//! 3. runs `--cycles` batched cycles of a gate whose rules read 5m, 30m and 1h burn rates
//!    (plus `error_delta` unless `--baseline none`): `gate_engine::evaluate::fetch`, then
//!    `decide_train` and the report's JSON for every train, as the daemon does;
//! 4. runs the per-train way: every train planned on its own (so its queries carry
//!    `train_id="X"`), all those queries through one client with the same bound on queries in
//!    flight (`MAX_CONCURRENT_QUERIES`), then the same decisions, which must agree.
//!
//! Per cycle it reports wall time, queries sent, this process's CPU time (getrusage) and peak
//! RSS (VmHWM, reset between phases through `/proc/self/clear_refs`), and Prometheus' CPU
//! time. The last line is one JSON object with every figure, for scripts.
//!
//! Needs `prometheus` and `promtool` (`apt-get install -y prometheus`; or PROMETHEUS_BIN /
//! PROMTOOL_BIN). Linux only (getrusage layout, /proc).

mod daemon;
mod data;
mod figures;
mod per_train;
mod prometheus;
mod replayed;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use clap::Parser;
use gate_engine::evaluate::{self, MAX_CONCURRENT_QUERIES};
use gate_engine::planner::{self, ResultSample, TrainSpec};
use gate_engine::prometheus::{PrometheusClient, QueryData, RetryPolicy};
use gate_engine::replay;
use gate_rules::config::Config;
use gate_rules::decide::{Mode, TrainState};
use gate_rules::Decision;
use serde_json::json;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use daemon::*;
use data::*;
use figures::*;
use per_train::*;
use prometheus::*;
use replayed::*;

/// The evaluation time T: 2026-11-01T12:00:00Z. Data ends here.
const EVAL_TIME: i64 = 1_793_534_400;
/// Sampling step of the generated counters.
const STEP: i64 = 15;
/// The oldest train's age, minutes; the youngest is 5 minutes old.
const MAX_AGE_MIN: i64 = 70;
const MIN_AGE_MIN: i64 = 5;

#[derive(Parser, Debug)]
#[command(about = "10,000-train scale scenario against a real Prometheus")]
struct Args {
    /// Concurrently active trains.
    #[arg(long, default_value_t = 10_000)]
    trains: usize,
    /// Batched cycles to run.
    #[arg(long, default_value_t = 5)]
    cycles: usize,
    /// Per-train cycles to run (0 skips the comparison).
    #[arg(long, default_value_t = 1)]
    per_train_cycles: usize,
    /// The gate's baseline: none, before_start or previous_train (these two add
    /// `error_delta` to the rules).
    #[arg(long, default_value = "none")]
    baseline: String,
    /// Keep the generated data and TSDB here instead of a temporary directory.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Measure the real daemon instead: this `gate` binary runs `gate serve` with every
    /// train registered over the API (data then ends in the future, trains started before
    /// now).
    #[arg(long)]
    daemon: Option<PathBuf>,
    /// Daemon mode: the store `gate serve` uses — a `postgres://` URL (an empty database of
    /// its own), or by default an SQLite file in the data directory.
    #[arg(long)]
    db: Option<String>,
    /// Daemon mode: the gate's `interval`, seconds.
    #[arg(long, default_value_t = 15)]
    interval: i64,
    /// Daemon mode: run every cycle with `metrics.per_train: false` (by default only the
    /// second series of scrapes is).
    #[arg(long)]
    no_per_train_metrics: bool,
    /// Daemon mode: long-polls to hold open at once for the memory figure (0 skips).
    #[arg(long, default_value_t = 10_000)]
    long_polls: usize,
    /// Replay mode: replay every train over this many hours after its start
    /// (`gate_engine::replay`, with `watch_for` set to the same), after the batched cycles
    /// that give the daemon's per-train cost to compare with. 0: no replay.
    #[arg(long, default_value_t = 0)]
    replay_hours: i64,
    /// Replay mode: seconds between evaluations.
    #[arg(long, default_value_t = 30)]
    replay_step: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let scratch = tempfile::Builder::new().prefix("gate-scale-").tempdir()?;
    let dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| scratch.path().to_path_buf());
    std::fs::create_dir_all(&dir)?;
    println!(
        "machine: {} cores, {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu_model()
    );

    // 1. Generate. The daemon evaluates at the wall clock: its data runs past the cycles.
    let (now, end) = match args.daemon {
        // Replay: trains start `replay_hours` before T, so each has that much data.
        None if args.replay_hours > 0 => (EVAL_TIME - args.replay_hours * 3600, EVAL_TIME),
        None => (EVAL_TIME, EVAL_TIME),
        Some(_) => {
            let now = chrono::Utc::now().timestamp() / STEP * STEP;
            let cycles = args.cycles as i64 + 3;
            (now, now + 900 + cycles * args.interval)
        }
    };
    let om = dir.join("trains.om");
    let t = Instant::now();
    let (series, samples) = write_openmetrics(&om, args.trains, now, end)?;
    let generate_s = t.elapsed().as_secs_f64();
    let om_bytes = std::fs::metadata(&om)?.len();
    println!(
        "generate: {} trains, {series} series, {samples} samples, {:.0} MB in {generate_s:.1} s",
        args.trains,
        om_bytes as f64 / 1e6
    );

    // 2. Backfill and start Prometheus.
    let data = dir.join("tsdb");
    std::fs::create_dir_all(&data)?;
    let t = Instant::now();
    let status = Command::new(binary("PROMTOOL_BIN", "promtool"))
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&om)
        .arg(&data)
        .stdout(Stdio::null())
        .status()?;
    anyhow::ensure!(status.success(), "promtool failed: {status}");
    let backfill_s = t.elapsed().as_secs_f64();
    std::fs::remove_file(&om)?;
    let t = Instant::now();
    let prometheus = Prometheus::start(&dir, &data)?;
    let startup_s = t.elapsed().as_secs_f64();
    println!(
        "backfill: {backfill_s:.1} s; Prometheus ready in {startup_s:.1} s at {}",
        prometheus.url
    );

    let trains = trains(args.trains, now);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if let Some(gate) = &args.daemon {
        let mut summary =
            runtime.block_on(daemon_scenario(gate, &dir, &prometheus, &args, &trains))?;
        summary["generate_s"] = json!(generate_s);
        summary["backfill_s"] = json!(backfill_s);
        summary["om_megabytes"] = json!(om_bytes as f64 / 1e6);
        summary["samples"] = json!(samples);
        println!("{summary}");
        return Ok(());
    }
    let mut text = config_text(&prometheus.url, &args.baseline, args.interval);
    if args.replay_hours > 0 {
        text = text.replace(
            "verify_for: 30m",
            &format!("verify_for: 30m\n    watch_for: {}h", args.replay_hours),
        );
    }
    let config =
        gate_rules::config::load_str("scale.yaml", &text).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let client = Arc::new(
        PrometheusClient::new(&config.prometheus, None)?
            .with_retry_policy(RetryPolicy::no_retries()),
    );
    let at = DateTime::from_timestamp(EVAL_TIME, 0).expect("valid time");

    // 3. Batched cycles.
    let mut batched = Vec::new();
    let mut states: BTreeMap<_, TrainState> = BTreeMap::new();
    let mut decisions = BTreeMap::new();
    reset_peak_rss();
    for cycle in 0..args.cycles {
        let before = Probe::take(&client, prometheus.pid());
        let t = Instant::now();
        let fetched = runtime.block_on(evaluate::fetch(
            &client,
            &config,
            &config.gates[0],
            &trains,
            at,
        ))?;
        let fetch_s = t.elapsed().as_secs_f64();
        if let Some(failure) = &fetched.failure {
            anyhow::bail!("cycle {cycle}: a query failed: {failure}");
        }
        let gate = &config.gates[0];
        let mut json_bytes = 0usize;
        for train in &trains {
            let prev = states.remove(&train.id).unwrap_or_default();
            let (evaluation, report) = evaluate::decide_train(
                &config,
                gate,
                train,
                &fetched.plan,
                &fetched.signals[&train.id],
                &prev,
                Mode::Daemon,
            );
            json_bytes += serde_json::to_vec(&report)?.len();
            decisions.insert(train.id.clone(), evaluation.decision);
            states.insert(train.id.clone(), evaluation.state);
        }
        let wall_s = t.elapsed().as_secs_f64();
        let after = Probe::take(&client, prometheus.pid());
        let c = CycleFigures::between(&before, &after, wall_s, fetch_s);
        println!(
            "batched cycle {cycle}: wall {:.3} s (queries {:.3} s), {} queries, CPU {:.0} ms, \
             peak RSS {:.1} MB, Prometheus CPU {:.2} s; decisions {:?} ({:.1} MB of report JSON)",
            c.wall_s,
            c.fetch_s,
            c.queries,
            c.cpu_ms,
            c.peak_rss_mb,
            c.prometheus_cpu_s,
            tally(&decisions),
            json_bytes as f64 / 1e6
        );
        batched.push(c);
    }
    let batched_decisions = decisions;

    // 4. Per-train cycles.
    let mut per_train = Vec::new();
    let mut disagreements = 0;
    reset_peak_rss();
    for cycle in 0..args.per_train_cycles {
        let before = Probe::take(&client, prometheus.pid());
        let t = Instant::now();
        let (decisions, fetch_s) =
            runtime.block_on(per_train_cycle(&client, &config, &trains, at))?;
        let wall_s = t.elapsed().as_secs_f64();
        let after = Probe::take(&client, prometheus.pid());
        let c = CycleFigures::between(&before, &after, wall_s, fetch_s);
        disagreements = trains
            .iter()
            .filter(|t| decisions.get(&t.id) != batched_decisions.get(&t.id))
            .count();
        println!(
            "per-train cycle {cycle}: wall {:.3} s (queries {:.3} s), {} queries, CPU {:.0} ms, \
             peak RSS {:.1} MB, Prometheus CPU {:.2} s; decisions {:?}, {disagreements} differ \
             from the batched cycle",
            c.wall_s,
            c.fetch_s,
            c.queries,
            c.cpu_ms,
            c.peak_rss_mb,
            c.prometheus_cpu_s,
            tally(&decisions)
        );
        per_train.push(c);
    }

    let replay = if args.replay_hours > 0 {
        let per_train_cycle_cpu_ms =
            median_of(&batched, |c| c.cpu_ms).unwrap_or(f64::NAN) / args.trains as f64;
        Some(replay_scenario(
            &runtime,
            &client,
            &config,
            &trains,
            &args,
            &prometheus,
            per_train_cycle_cpu_ms,
        )?)
    } else {
        None
    };

    let summary = json!({
        "replay": replay,
        "trains": args.trains,
        "baseline": args.baseline,
        "cores": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "cpu_model": cpu_model(),
        "generate_s": generate_s,
        "om_megabytes": om_bytes as f64 / 1e6,
        "series": series,
        "samples": samples,
        "backfill_s": backfill_s,
        "prometheus_startup_s": startup_s,
        "batched": batched.iter().map(CycleFigures::json).collect::<Vec<_>>(),
        "per_train": per_train.iter().map(CycleFigures::json).collect::<Vec<_>>(),
        "decisions": tally(&batched_decisions),
        "per_train_disagreements": disagreements,
    });
    if let (Some(b), Some(p)) = (
        median_of(&batched, |c| c.wall_s),
        median_of(&per_train, |c| c.wall_s),
    ) {
        let bq = median_of(&batched, |c| c.queries as f64).unwrap_or(f64::NAN);
        let pq = median_of(&per_train, |c| c.queries as f64).unwrap_or(f64::NAN);
        println!(
            "per-train / batched: {:.0}× the queries, {:.1}× the wall time",
            pq / bq,
            p / b
        );
    }
    println!("{summary}");
    drop(prometheus);
    Ok(())
}
