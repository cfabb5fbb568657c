//! `--replay-hours`: every train replayed over its life, the cost per evaluated step set
//! against the batched daemon cycle's cost per train.

use super::*;

/// Replays every train from its start over `--replay-hours` at `--replay-step`, and reports
/// wall time, queries, this process's CPU and Prometheus' CPU, and the CPU per evaluated
/// step against `per_train_cycle_cpu_ms`, the batched daemon cycle's CPU per train.
pub(crate) fn replay_scenario(
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
