//! `--daemon`: the real `gate serve` with every train registered over the API; its cycle,
//! memory, long-polls and decision API measured from outside.

use super::*;

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

/// Opens `n` long-polls (`?wait=60s&after_seq=<current>`, one per train, cycling through
/// the trains), waits until the daemon holds them all (its open sockets), reads its memory,
/// then drops them.
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
