//! `--daemon`: the real `gate serve` with every train registered over the API; its cycle,
//! memory, `/metrics` scrape, long-polls and decision API measured from outside.
//!
//! The phases, in order: registration; `--cycles` full cycles (per-train series on, the
//! default); ten `/metrics` scrapes; a reload with `metrics.per_train: false`, one cycle to
//! drop the per-train series, ten scrapes again; `wrk` on the decision API; `--long-polls`
//! long-polls held open. CPU figures are the daemon's own (all its threads, from
//! `/proc/<pid>/task/*/schedstat`, nanoseconds; a cycle's from `/proc/<pid>/stat`, whose
//! 10 ms ticks are fine at that size), memory is its VmRSS.

use super::*;

/// The config's section that drops the per-train `/metrics` series.
const PER_TRAIN_OFF: &str = "\nmetrics:\n  per_train: false\n";

/// Daemon mode: `gate serve` with every train registered; figures per full cycle from the
/// daemon's `/metrics` and `/proc/<pid>`; then the decision API under `wrk` (when installed)
/// and the daemon's memory with `--long-polls` long-polls open.
pub(crate) async fn daemon_scenario(
    gate_bin: &Path,
    dir: &Path,
    prometheus: &Prometheus,
    args: &Args,
    trains: &[TrainSpec],
) -> anyhow::Result<serde_json::Value> {
    let config_path = dir.join("gate.yaml");
    let mut text = config_text(&prometheus.url, &args.baseline, args.interval);
    if args.no_per_train_metrics {
        text.push_str(PER_TRAIN_OFF);
    }
    std::fs::write(&config_path, text)?;
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
            .arg(
                args.db
                    .clone()
                    .map_or_else(|| dir.join("gate.db"), PathBuf::from),
            )
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
    while cycles.len() < args.cycles {
        cycle_end(&http, &decision_url, &mut last_seen, patience).await?;
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

    // The scrape's CPU, finely, with the per-train series and without them (a reload with
    // `metrics.per_train: false`, then a cycle that publishes every train again).
    let scrape_per_train = scrape_cost(&http, &base, pid, SCRAPES).await?;
    println!("daemon /metrics with per-train series: {scrape_per_train}");
    let mut text = std::fs::read_to_string(&config_path)?;
    if !args.no_per_train_metrics {
        text.push_str(PER_TRAIN_OFF);
    }
    std::fs::write(&config_path, text)?;
    let reload = http.post(format!("{base}/v1/reload")).send().await?;
    anyhow::ensure!(reload.status().is_success(), "reload: {}", reload.status());
    cycle_end(&http, &decision_url, &mut last_seen, patience).await?;
    let scrape_aggregates = scrape_cost(&http, &base, pid, SCRAPES).await?;
    println!("daemon /metrics without per-train series: {scrape_aggregates}");

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
        "metrics_scrape": {"per_train": scrape_per_train, "aggregates_only": scrape_aggregates},
        "wrk": wrk,
        "long_polls": long_polls,
        "vm_hwm_mb": status_kb(&format!("/proc/{pid}/status"), "VmHWM:") as f64 / 1024.0,
    }))
}

/// Scrapes of `/metrics` measured one by one.
const SCRAPES: usize = 10;

/// Waits until the train behind `decision_url` shows a new `evaluated_at` (a cycle
/// published it), then 300 ms more for the cycle's counters.
async fn cycle_end(
    http: &reqwest::Client,
    decision_url: &str,
    last_seen: &mut Option<String>,
    patience: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + patience;
    loop {
        anyhow::ensure!(
            Instant::now() < deadline,
            "no cycle ended in {patience:?}; see gate.log"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        let body: serde_json::Value = http.get(decision_url).send().await?.json().await?;
        let seen = body["evaluated_at"].as_str().map(str::to_string);
        if seen.is_some() && seen != *last_seen {
            *last_seen = seen;
            break;
        }
    }
    // The cycle's counters are updated around its publication: let it finish.
    tokio::time::sleep(Duration::from_millis(300)).await;
    Ok(())
}

/// `n` scrapes of `/metrics`, one after another: the daemon's CPU for each (median, min,
/// max, ms) and the body's size.
async fn scrape_cost(
    http: &reqwest::Client,
    base: &str,
    pid: u32,
    n: usize,
) -> anyhow::Result<serde_json::Value> {
    let (mut cpu_ms, mut bytes, mut series) = (Vec::new(), 0, 0);
    for _ in 0..n {
        let before = cpu_ns(pid);
        let text = http
            .get(format!("{base}/metrics"))
            .send()
            .await?
            .text()
            .await?;
        cpu_ms.push(cpu_ns(pid).saturating_sub(before) as f64 / 1e6);
        bytes = text.len();
        series = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .count();
    }
    cpu_ms.sort_by(f64::total_cmp);
    Ok(json!({
        "bytes": bytes,
        "samples": series,
        "cpu_ms_median": cpu_ms[n / 2],
        "cpu_ms_min": cpu_ms[0],
        "cpu_ms_max": cpu_ms[n - 1],
        "n": n,
    }))
}

/// The CPU time of every live thread of `pid`, nanoseconds: the first field of each
/// `/proc/<pid>/task/*/schedstat` (the scheduler's own accounting, not 10 ms ticks).
pub(crate) fn cpu_ns(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .filter_map(Result::ok)
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// `wrk -t2 -c50 -d10s --latency` against `url`: requests/s and latency percentiles, or
/// `None` when wrk is not installed.
pub(crate) fn wrk(url: &str) -> Option<serde_json::Value> {
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

/// Opens `n` long-polls (`?wait=5m&after_seq=10¹²`, one per train, cycling
/// through the trains), waits until the daemon holds them all (its `gate_long_polls` gauge),
/// reads its memory, then drops them and reads its memory again once it has let them go.
pub(crate) async fn hold_long_polls(
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
    let opened = Instant::now();
    let mut polls = JoinSet::new();
    for i in 0..n {
        let train = &trains[i % trains.len()];
        let url = format!("{base}/v1/trains/{}/decision", train.id);
        let http = http.clone();
        // No train's seq gets near 10¹²: each waits for its whole `wait`, on a connection of
        // its own (no earlier request leaves an idle keep-alive connection behind).
        polls.spawn(async move {
            http.get(format!("{url}?wait=5m&after_seq=1000000000000"))
                .send()
                .await?
                .bytes()
                .await?;
            anyhow::Ok(())
        });
    }
    let waiting = |http: reqwest::Client| async move {
        let text = http
            .get(format!("{base}/metrics"))
            .send()
            .await?
            .text()
            .await?;
        anyhow::Ok(gauge(&text, "gate_long_polls") as usize)
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut held = 0;
    while Instant::now() < deadline {
        held = waiting(http.clone()).await?;
        if held >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let open_s = opened.elapsed().as_secs_f64();
    // Let the allocator and the kernel settle.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss = status_kb(&format!("/proc/{pid}/status"), "VmRSS:");
    let hwm = status_kb(&format!("/proc/{pid}/status"), "VmHWM:");
    let sockets = open_fds(pid).saturating_sub(fds_before);
    polls.abort_all();
    while polls.join_next().await.is_some() {}
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline && waiting(http.clone()).await? > 0 {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_after = status_kb(&format!("/proc/{pid}/status"), "VmRSS:");
    Ok(Some(json!({
        "requested": n,
        "held": held,
        "sockets_held": sockets,
        "open_s": open_s,
        "rss_before_mb": rss_before as f64 / 1024.0,
        "rss_with_polls_mb": rss as f64 / 1024.0,
        "rss_after_release_mb": rss_after as f64 / 1024.0,
        "vm_hwm_mb": hwm as f64 / 1024.0,
        "kb_per_poll": (rss.saturating_sub(rss_before)) as f64 / n as f64,
    })))
}

/// The value of an unlabelled gauge in a `/metrics` text (0 when absent).
fn gauge(text: &str, name: &str) -> f64 {
    text.lines()
        .filter_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .find_map(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

pub(crate) fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// The daemon's counters that delimit a cycle.
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    pub(crate) cycles: f64,
    pub(crate) cycle_seconds: f64,
    pub(crate) evaluations: f64,
    pub(crate) queries: f64,
}

impl Snapshot {
    pub(crate) fn parse(text: &str) -> Snapshot {
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
pub(crate) struct Killed(pub(crate) Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
