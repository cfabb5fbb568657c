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
    /// Daemon mode: the gate's `interval`, seconds.
    #[arg(long, default_value_t = 15)]
    interval: i64,
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

/// Replays every train from its start over `--replay-hours` at `--replay-step`, and reports
/// wall time, queries, this process's CPU and Prometheus' CPU, and the CPU per evaluated
/// step against `per_train_cycle_cpu_ms`, the batched daemon cycle's CPU per train.
fn replay_scenario(
    runtime: &tokio::runtime::Runtime,
    client: &Arc<PrometheusClient>,
    config: &Config,
    trains: &[TrainSpec],
    args: &Args,
    prometheus: &Prometheus,
    per_train_cycle_cpu_ms: f64,
) -> anyhow::Result<serde_json::Value> {
    let hours = chrono::Duration::hours(args.replay_hours);
    let replayed: Vec<replay::ReplayTrain> = trains
        .iter()
        .map(|t| replay::ReplayTrain {
            spec: t.clone(),
            from: t.started_at,
            to: t.started_at + hours,
        })
        .collect();
    let step = gate_rules::PromDuration::from_secs(args.replay_step);
    reset_peak_rss();
    let before = Probe::take(client, prometheus.pid());
    let t = Instant::now();
    let (results, stats) = runtime.block_on(replay::replay(
        client,
        config,
        &config.gates[0],
        &replayed,
        step,
        None,
    ))?;
    let wall_s = t.elapsed().as_secs_f64();
    let after = Probe::take(client, prometheus.pid());
    let c = CycleFigures::between(&before, &after, wall_s, wall_s);
    let mut finals: BTreeMap<String, usize> = BTreeMap::new();
    for r in &results {
        let d = r
            .final_decision
            .as_ref()
            .map_or("none", |f| f.decision.as_str());
        *finals.entry(d.to_string()).or_default() += 1;
    }
    let per_step_ms = c.cpu_ms / stats.evaluations as f64;
    println!(
        "replay: {} trains × {} h every {step}: wall {:.2} s, {} queries, {} evaluations, \
         CPU {:.0} ms ({:.3} ms per evaluated step; a batched daemon cycle costs {:.3} ms per \
         train), peak RSS {:.1} MB, Prometheus CPU {:.2} s; final decisions {finals:?}",
        trains.len(),
        args.replay_hours,
        c.wall_s,
        stats.queries,
        stats.evaluations,
        c.cpu_ms,
        per_step_ms,
        per_train_cycle_cpu_ms,
        c.peak_rss_mb,
        c.prometheus_cpu_s,
    );
    Ok(json!({
        "trains": trains.len(),
        "hours": args.replay_hours,
        "step_s": args.replay_step,
        "wall_s": c.wall_s,
        "queries": stats.queries,
        "evaluations": stats.evaluations,
        "cpu_ms": c.cpu_ms,
        "cpu_ms_per_step": per_step_ms,
        "daemon_cpu_ms_per_train_cycle": per_train_cycle_cpu_ms,
        "peak_rss_mb": c.peak_rss_mb,
        "prometheus_cpu_s": c.prometheus_cpu_s,
        "finals": finals,
    }))
}

/// One cycle the per-rollout way: every train planned alone (`train_id="X"` matchers), all
/// queries through one client, at most `MAX_CONCURRENT_QUERIES` in flight; then each train's
/// decision from its own answers. Returns the decisions and the time the queries took.
async fn per_train_cycle(
    client: &Arc<PrometheusClient>,
    config: &Config,
    trains: &[TrainSpec],
    at: DateTime<Utc>,
) -> anyhow::Result<(BTreeMap<gate_rules::TrainId, Decision>, f64)> {
    let gate = &config.gates[0];
    let started = Instant::now();
    let plans = trains
        .iter()
        .map(|t| planner::plan(config, gate, std::slice::from_ref(t), at))
        .collect::<Result<Vec<_>, _>>()?;
    let limit = Arc::new(Semaphore::new(MAX_CONCURRENT_QUERIES));
    let mut tasks = JoinSet::new();
    for (ti, plan) in plans.iter().enumerate() {
        for (qi, q) in plan.queries.iter().enumerate() {
            let client = Arc::clone(client);
            let limit = Arc::clone(&limit);
            let promql = q.promql.clone();
            tasks.spawn(async move {
                let _permit = limit.acquire_owned().await.expect("semaphore never closed");
                (ti, qi, client.query(&promql, at).await)
            });
        }
    }
    let mut answers: Vec<Vec<Option<Answer>>> =
        plans.iter().map(|p| vec![None; p.queries.len()]).collect();
    while let Some(joined) = tasks.join_next().await {
        let (ti, qi, result) = joined?;
        answers[ti][qi] = Some(match result {
            Ok(r) => samples(r.data, &config.train_label),
            Err(e) => anyhow::bail!("per-train query failed: {e}"),
        });
    }
    let fetch_s = started.elapsed().as_secs_f64();
    let mut decisions = BTreeMap::new();
    for ((train, plan), answers) in trains.iter().zip(&plans).zip(answers) {
        let results = answers
            .into_iter()
            .map(|a| a.expect("every query joined"))
            .collect();
        let one = std::slice::from_ref(train);
        let mut signals = planner::assemble(config, gate, one, plan, results);
        let signals = signals.remove(&train.id).expect("train assembled");
        let (evaluation, report) = evaluate::decide_train(
            config,
            gate,
            train,
            plan,
            &signals,
            &TrainState::default(),
            Mode::Daemon,
        );
        std::hint::black_box(serde_json::to_vec(&report)?);
        decisions.insert(train.id.clone(), evaluation.decision);
    }
    Ok((decisions, fetch_s))
}

/// Daemon mode: `gate serve` with every train registered; figures per full cycle from the
/// daemon's `/metrics` and `/proc/<pid>`; then the decision API under `wrk` (when installed)
/// and the daemon's memory with `--long-polls` long-polls open.
async fn daemon_scenario(
    gate_bin: &Path,
    dir: &Path,
    prometheus: &Prometheus,
    args: &Args,
    trains: &[TrainSpec],
) -> anyhow::Result<serde_json::Value> {
    let config_path = dir.join("gate.yaml");
    std::fs::write(
        &config_path,
        config_text(&prometheus.url, &args.baseline, args.interval),
    )?;
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let base = format!("http://127.0.0.1:{port}");
    let log = File::create(dir.join("gate.log"))?;
    let daemon = Killed(
        Command::new(gate_bin)
            .arg("serve")
            .arg("--config")
            .arg(&config_path)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--db")
            .arg(dir.join("gate.db"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?,
    );
    let pid = daemon.0.id();
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !http
        .get(format!("{base}/readyz"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        anyhow::ensure!(
            Instant::now() < deadline,
            "gate serve not ready in 60 s; see gate.log"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Register every train, eight requests in flight.
    let t = Instant::now();
    let limit = Arc::new(Semaphore::new(8));
    let mut tasks = JoinSet::new();
    for train in trains {
        let body = json!({
            "id": train.id.as_str(),
            "gate": "checkout",
            "started_at": train.started_at.timestamp(),
            "baseline": train.baseline.as_ref().map(|b| b.as_str()),
        });
        let (http, url, limit) = (
            http.clone(),
            format!("{base}/v1/trains"),
            Arc::clone(&limit),
        );
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await.expect("semaphore never closed");
            let response = http.post(url).json(&body).send().await?;
            anyhow::ensure!(
                response.status().is_success(),
                "registration: {}",
                response.status()
            );
            anyhow::Ok(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    let register_s = t.elapsed().as_secs_f64();
    println!(
        "daemon: {} trains registered in {register_s:.1} s ({:.0}/s)",
        trains.len(),
        trains.len() as f64 / register_s
    );

    // Cycles: a cycle has ended when the first train's evaluated_at moves. The daemon's CPU
    // between two ends, less what the /metrics scrape in between cost, is one cycle's.
    let decision_url = format!("{base}/v1/trains/{}/decision", trains[0].id);
    let mut cycles = Vec::new();
    let mut scrapes = Vec::new();
    let mut last_seen: Option<String> = None;
    let mut previous: Option<(Snapshot, u64)> = None;
    let patience = Duration::from_secs(3 * args.interval as u64 + 60);
    let mut deadline = Instant::now() + patience;
    while cycles.len() < args.cycles {
        anyhow::ensure!(
            Instant::now() < deadline,
            "no full cycles seen; see gate.log"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        let body: serde_json::Value = http.get(&decision_url).send().await?.json().await?;
        let seen = body["evaluated_at"].as_str().map(str::to_string);
        if seen.is_none() || seen == last_seen {
            continue;
        }
        last_seen = seen;
        deadline = Instant::now() + patience;
        // The cycle's counters are updated around its publication: let it finish.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let cpu_before = stat_cpu_ticks(&format!("/proc/{pid}/stat"));
        let text = http
            .get(format!("{base}/metrics"))
            .send()
            .await?
            .text()
            .await?;
        let cpu_after = stat_cpu_ticks(&format!("/proc/{pid}/stat"));
        scrapes.push(((cpu_after - cpu_before) * 10, text.len()));
        let snapshot = Snapshot::parse(&text);
        if let Some((before, cpu_then)) = previous.take() {
            let evaluated = snapshot.evaluations - before.evaluations;
            // Rolled-back trains are latched and no longer evaluated: a full cycle is one
            // that evaluated every other train.
            if snapshot.cycles - before.cycles == 1.0 && evaluated >= trains.len() as f64 * 0.95 {
                let cycle = json!({
                    "wall_s": snapshot.cycle_seconds - before.cycle_seconds,
                    "queries": snapshot.queries - before.queries,
                    "cpu_ms": (cpu_before - cpu_then) * 10,
                    "evaluated": evaluated,
                    "vm_hwm_mb": status_kb(&format!("/proc/{pid}/status"), "VmHWM:") as f64 / 1024.0,
                    "vm_rss_mb": status_kb(&format!("/proc/{pid}/status"), "VmRSS:") as f64 / 1024.0,
                });
                println!("daemon cycle: {cycle}");
                cycles.push(cycle);
            } else {
                println!(
                    "daemon: skipped a partial observation ({} cycles, {evaluated} evaluations)",
                    snapshot.cycles - before.cycles
                );
            }
        }
        previous = Some((snapshot, cpu_after));
    }
    let (scrape_cpu_ms, metrics_bytes) = scrapes.last().copied().unwrap_or_default();
    println!("daemon /metrics: {metrics_bytes} bytes, {scrape_cpu_ms} ms CPU a scrape");

    let wrk = wrk(&format!(
        "{base}/v1/trains/{}/decision",
        trains[trains.len() / 2].id
    ));
    if let Some(w) = &wrk {
        println!("wrk: {w}");
    }
    let long_polls = hold_long_polls(&http, &base, trains, args.long_polls, pid).await?;
    if let Some(l) = &long_polls {
        println!("long-polls: {l}");
    }
    Ok(json!({
        "mode": "daemon",
        "trains": trains.len(),
        "baseline": args.baseline,
        "interval_s": args.interval,
        "cores": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "cpu_model": cpu_model(),
        "register_s": register_s,
        "cycles": cycles,
        "metrics_bytes": metrics_bytes,
        "metrics_scrape_cpu_ms": scrape_cpu_ms,
        "wrk": wrk,
        "long_polls": long_polls,
        "vm_hwm_mb": status_kb(&format!("/proc/{pid}/status"), "VmHWM:") as f64 / 1024.0,
    }))
}

/// `wrk -t2 -c50 -d10s --latency` against `url`: requests/s and latency percentiles, or
/// `None` when wrk is not installed.
fn wrk(url: &str) -> Option<serde_json::Value> {
    let out = Command::new("wrk")
        .args(["-t2", "-c50", "-d10s", "--latency", url])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let field = |prefix: &str| {
        text.lines()
            .map(str::trim)
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.split_whitespace().nth(1).map(str::to_string))
    };
    Some(json!({
        "command": format!("wrk -t2 -c50 -d10s --latency {url}"),
        "requests_per_s": field("Requests/sec:"),
        "p50": field("50%"),
        "p90": field("90%"),
        "p99": field("99%"),
        "non_2xx": field("Non-2xx"),
        "errors": field("Socket errors:"),
        "raw": text,
    }))
}

/// Opens `n` long-polls (`?wait=60s&after_seq=<current>`, one per train, cycling through
/// the trains), waits until the daemon holds them all (its open sockets), reads its memory,
/// then drops them.
async fn hold_long_polls(
    http: &reqwest::Client,
    base: &str,
    trains: &[TrainSpec],
    n: usize,
    pid: u32,
) -> anyhow::Result<Option<serde_json::Value>> {
    if n == 0 {
        return Ok(None);
    }
    let rss_before = status_kb(&format!("/proc/{pid}/status"), "VmRSS:");
    let fds_before = open_fds(pid);
    let mut polls = JoinSet::new();
    for i in 0..n {
        let train = &trains[i % trains.len()];
        let url = format!("{base}/v1/trains/{}/decision", train.id);
        let http = http.clone();
        polls.spawn(async move {
            let seq = http
                .get(&url)
                .send()
                .await?
                .json::<serde_json::Value>()
                .await?["seq"]
                .as_u64()
                .unwrap_or(0);
            http.get(format!("{url}?wait=60s&after_seq={}", seq + 1_000_000))
                .send()
                .await?
                .bytes()
                .await?;
            anyhow::Ok(())
        });
    }
    let deadline = Instant::now() + Duration::from_secs(50);
    let mut held = 0;
    while Instant::now() < deadline {
        held = open_fds(pid).saturating_sub(fds_before);
        if held >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Give the last requests time to reach their wait.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss = status_kb(&format!("/proc/{pid}/status"), "VmRSS:");
    let hwm = status_kb(&format!("/proc/{pid}/status"), "VmHWM:");
    polls.abort_all();
    Ok(Some(json!({
        "requested": n,
        "sockets_held": held,
        "rss_before_mb": rss_before as f64 / 1024.0,
        "rss_with_polls_mb": rss as f64 / 1024.0,
        "vm_hwm_mb": hwm as f64 / 1024.0,
        "kb_per_poll": (rss.saturating_sub(rss_before)) as f64 / n as f64,
    })))
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// The daemon's counters that delimit a cycle.
#[derive(Debug, Default)]
struct Snapshot {
    cycles: f64,
    cycle_seconds: f64,
    evaluations: f64,
    queries: f64,
}

impl Snapshot {
    fn parse(text: &str) -> Snapshot {
        let sum = |name: &str| -> f64 {
            text.lines()
                .filter(|l| !l.starts_with('#'))
                .filter(|l| {
                    l.strip_prefix(name)
                        .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
                })
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum()
        };
        Snapshot {
            cycles: sum("gate_evaluation_cycle_seconds_count"),
            cycle_seconds: sum("gate_evaluation_cycle_seconds_sum"),
            evaluations: sum("gate_evaluations_total"),
            queries: sum("gate_prometheus_queries_total"),
        }
    }
}

/// A child process killed on drop.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One query's samples, or why it failed.
type Answer = Result<Vec<ResultSample>, String>;

fn samples(data: QueryData, label: &str) -> Answer {
    match data {
        QueryData::Vector(v) => Ok(v
            .into_iter()
            .map(|mut s| ResultSample {
                train: s.metric.remove(label),
                value: s.value,
            })
            .collect()),
        QueryData::Scalar(p) => Ok(vec![ResultSample {
            train: None,
            value: p.value,
        }]),
        other => Err(format!("unexpected {}", other.kind())),
    }
}

/// The config of the scenario: one SLO, one gate reading 5m, 30m and 1h burn rates.
fn config_text(url: &str, baseline: &str, interval_secs: i64) -> String {
    let delta_rule = if baseline == "none" {
        ""
    } else {
        r#"
      - name: regression
        when: error_delta("checkout-availability").significant && error_delta("checkout-availability").relative > 0.5
        then: rollback"#
    };
    format!(
        r#"
prometheus:
  url: {url}
  timeout: 120s
train_label: train_id
slos:
  - name: checkout-availability
    objective: 99.9
    period: 30d
    errors: http_requests_total{{service="checkout", code=~"5.."}}
    total:  http_requests_total{{service="checkout"}}
gates:
  - name: checkout
    slos: [checkout-availability]
    interval: {interval_secs}s
    verify_for: 30m
    min_requests: 500
    baseline: {baseline}
    rules:
      - name: fast-burn
        when: burn_rate("checkout-availability", "1h") > 14.4 && burn_rate("checkout-availability", "5m") > 14.4
        then: rollback
      - name: slow-burn
        when: burn_rate("checkout-availability", "1h") > 6 && burn_rate("checkout-availability", "30m") > 6
        then: pause{delta_rule}
"#
    )
}

/// Train `i` is `t-<i>`, started `5 + i mod 66` minutes before `now`; its baseline train is
/// the next one, a minute older.
fn trains(n: usize, now: i64) -> Vec<TrainSpec> {
    (0..n)
        .map(|i| TrainSpec {
            id: train_name(i).parse().expect("valid train ID"),
            started_at: DateTime::from_timestamp(now - age_secs(i), 0).expect("valid time"),
            baseline: Some(train_name(i + 1).parse().expect("valid train ID")),
        })
        .collect()
}

fn train_name(i: usize) -> String {
    format!("t-{i:05}")
}

fn age_secs(i: usize) -> i64 {
    60 * (MIN_AGE_MIN + (i as i64) % (MAX_AGE_MIN - MIN_AGE_MIN + 1))
}

/// Writes the counters of `n` trains (and of train `n`, the last one's baseline) as
/// OpenMetrics: train `i` started `age_secs(i)` before `now` and runs until `end`.
/// Returns (series, samples).
fn write_openmetrics(path: &Path, n: usize, now: i64, end: i64) -> std::io::Result<(usize, usize)> {
    let mut out = BufWriter::with_capacity(1 << 20, File::create(path)?);
    writeln!(out, "# HELP http_requests Requests served.")?;
    writeln!(out, "# TYPE http_requests counter")?;
    let (mut series, mut samples) = (0, 0);
    for i in 0..=n {
        let start = now - age_secs(i);
        // Requests per minute by code; rates are multiples of 4, so 15 s steps are whole.
        let codes: [(u16, i64); 2] = if i % 100 == 7 {
            [(200, 1900), (500, 100)]
        } else {
            [(200, 1996), (500, 4)]
        };
        let train = train_name(i);
        for (code, per_minute) in codes {
            series += 1;
            let mut t = start;
            while t <= end {
                let value = per_minute * (t - start) / 60;
                writeln!(
                    out,
                    "http_requests_total{{code=\"{code}\",instance=\"checkout-0:8080\",service=\"checkout\",train_id=\"{train}\"}} {value} {t}"
                )?;
                samples += 1;
                t += STEP;
            }
        }
    }
    writeln!(out, "# EOF")?;
    out.flush()?;
    Ok((series, samples))
}

/// A Prometheus serving the backfilled TSDB on a free loopback port; killed on drop.
struct Prometheus {
    child: Child,
    url: String,
}

impl Prometheus {
    fn start(dir: &Path, data: &Path) -> anyhow::Result<Prometheus> {
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            "global:\n  scrape_interval: 1m\nscrape_configs: []\n",
        )?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let log = File::create(dir.join("prometheus.log"))?;
        let child = Command::new(binary("PROMETHEUS_BIN", "prometheus"))
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", data.display()))
            .arg("--storage.tsdb.retention.time=100y")
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        let mut prometheus = Prometheus {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        let ready = format!("{}/-/ready", prometheus.url);
        loop {
            if let Some(status) = prometheus.child.try_wait()? {
                anyhow::bail!(
                    "Prometheus exited ({status}); see {}",
                    dir.join("prometheus.log").display()
                );
            }
            if blocking_get_ok(&ready) {
                return Ok(prometheus);
            }
            anyhow::ensure!(Instant::now() < deadline, "Prometheus not ready in 120 s");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plain HTTP/1.0 GET answered 200.
fn blocking_get_ok(url: &str) -> bool {
    use std::io::Read;
    let rest = url.trim_start_matches("http://");
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let Ok(mut stream) = std::net::TcpStream::connect(host) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if write!(stream, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.") && &head[9..12] == b"200"
}

fn binary(env: &str, name: &str) -> PathBuf {
    std::env::var_os(env)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(name))
}

/// Counters read before and after a cycle.
struct Probe {
    queries: u64,
    cpu: Duration,
    peak_rss_kb: u64,
    prometheus_cpu_ticks: u64,
}

impl Probe {
    fn take(client: &PrometheusClient, prometheus_pid: u32) -> Probe {
        Probe {
            queries: client.queries_sent(),
            cpu: self_cpu(),
            peak_rss_kb: status_kb("/proc/self/status", "VmHWM:"),
            prometheus_cpu_ticks: stat_cpu_ticks(&format!("/proc/{prometheus_pid}/stat")),
        }
    }
}

/// One cycle's figures.
struct CycleFigures {
    wall_s: f64,
    fetch_s: f64,
    queries: u64,
    cpu_ms: f64,
    peak_rss_mb: f64,
    prometheus_cpu_s: f64,
}

impl CycleFigures {
    fn between(before: &Probe, after: &Probe, wall_s: f64, fetch_s: f64) -> CycleFigures {
        CycleFigures {
            wall_s,
            fetch_s,
            queries: after.queries - before.queries,
            cpu_ms: (after.cpu - before.cpu).as_secs_f64() * 1e3,
            peak_rss_mb: after.peak_rss_kb as f64 / 1024.0,
            // /proc/<pid>/stat counts clock ticks: 100 a second on Linux.
            prometheus_cpu_s: (after.prometheus_cpu_ticks - before.prometheus_cpu_ticks) as f64
                / 100.0,
        }
    }

    fn json(&self) -> serde_json::Value {
        json!({
            "wall_s": self.wall_s,
            "fetch_s": self.fetch_s,
            "queries": self.queries,
            "cpu_ms": self.cpu_ms,
            "peak_rss_mb": self.peak_rss_mb,
            "prometheus_cpu_s": self.prometheus_cpu_s,
        })
    }
}

fn median_of(cycles: &[CycleFigures], f: impl Fn(&CycleFigures) -> f64) -> Option<f64> {
    let mut v: Vec<f64> = cycles.iter().map(f).collect();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied()
}

fn tally(decisions: &BTreeMap<gate_rules::TrainId, Decision>) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for d in decisions.values() {
        *counts.entry(d.to_string()).or_default() += 1;
    }
    counts
}

/// `getrusage(RUSAGE_SELF)` user + system time.
fn self_cpu() -> Duration {
    #[repr(C)]
    struct Timeval {
        sec: i64,
        usec: i64,
    }
    #[repr(C)]
    struct Rusage {
        utime: Timeval,
        stime: Timeval,
        // ru_maxrss and the 13 other longs of the Linux LP64 layout.
        rest: [i64; 14],
    }
    extern "C" {
        fn getrusage(who: i32, usage: *mut Rusage) -> i32;
    }
    let mut usage = Rusage {
        utime: Timeval { sec: 0, usec: 0 },
        stime: Timeval { sec: 0, usec: 0 },
        rest: [0; 14],
    };
    // SAFETY: `usage` matches `struct rusage` on 64-bit Linux and outlives the call.
    let rc = unsafe { getrusage(0, &mut usage) };
    assert_eq!(rc, 0, "getrusage failed");
    let micros = |t: &Timeval| t.sec as u64 * 1_000_000 + t.usec as u64;
    Duration::from_micros(micros(&usage.utime) + micros(&usage.stime))
}

/// Resets this process's peak RSS (VmHWM) to its current RSS.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// A `kB` field of a `/proc/<pid>/status` file.
fn status_kb(path: &str, field: &str) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// utime + stime of a `/proc/<pid>/stat` file, in clock ticks.
fn stat_cpu_ticks(path: &str) -> u64 {
    let Ok(stat) = std::fs::read_to_string(path) else {
        return 0;
    };
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |i: usize| {
        fields
            .get(i - 3)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(14) + field(15)
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".to_string())
}
