//! `gate eval`: one stateless evaluation of one train, straight against Prometheus.
//!
//! It runs exactly the code path of the daemon's scheduler ([`gate_engine::evaluate`]) for a
//! single train at `--at`, with a fresh state: `for` and `resume_after` do not apply. The one
//! thing rebuilt is the history of the `error_delta` tests: [`gate_engine::looks`] takes the
//! looks the daemon takes, at every `interval` from the train's start, so both agree. The exit
//! code is the verdict (0 promote, 3 rollback, 4 pause, 5 pending) or 6 when Prometheus could
//! not be queried — a telemetry failure is never turned into a verdict here.

use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use gate_engine::planner::TrainSpec;
use gate_engine::prometheus::PrometheusClient;
use gate_engine::{evaluate, looks};
use gate_rules::config::Config;
use gate_rules::decide::{Mode, TrainState};

use super::{load_config, parse_time, train_id, Format};
use crate::{exit, render};

/// Arguments of `gate eval`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The config file.
    #[arg(long, short, default_value = "gate.yaml")]
    pub config: PathBuf,
    /// The train to evaluate.
    #[arg(long)]
    pub train: String,
    /// The gate whose rules apply.
    #[arg(long)]
    pub gate: String,
    /// When the train started (RFC 3339 or unix seconds). Default: the first sample of the
    /// train's total counter, looked up in Prometheus.
    #[arg(long, value_parser = parse_time)]
    pub started_at: Option<DateTime<Utc>>,
    /// The baseline train for `baseline: previous_train`.
    #[arg(long)]
    pub baseline: Option<String>,
    /// Evaluation time (RFC 3339 or unix seconds), taken as given. Default: now minus the
    /// gate's `evaluation_delay`.
    #[arg(long, value_parser = parse_time)]
    pub at: Option<DateTime<Utc>>,
    /// Output format. Default: human on a terminal, json when piped.
    #[arg(long, value_enum)]
    pub format: Option<Format>,
}

/// Runs `gate eval`.
pub async fn run(args: Args) -> anyhow::Result<i32> {
    let config = load_config(&args.config)?;
    let gate = find_gate(&config, &args.gate)?;
    let id = train_id(&args.train)?;
    let baseline = args.baseline.as_deref().map(train_id).transpose()?;
    let at = args.at.unwrap_or_else(|| gate.evaluation_time(Utc::now()));
    let client = Arc::new(prometheus_client(&config)?);

    let started_at = match args.started_at {
        Some(t) => t,
        None => discover_start(&client, &config, gate, &id, at).await?,
    };
    let train = TrainSpec {
        id,
        started_at,
        baseline,
    };
    let trains = std::slice::from_ref(&train);
    let prev = TrainState {
        sequential: looks::before(&client, &config, gate, &train, at)
            .await
            .map_err(|e| exit::usage(e.to_string()))?,
        ..TrainState::default()
    };
    let fetched = evaluate::fetch(&client, &config, gate, trains, at)
        .await
        .map_err(|e| exit::usage(e.to_string()))?;
    let signals = &fetched.signals[&train.id];
    let (evaluation, report) = evaluate::decide_train(
        &config,
        gate,
        &train,
        &fetched.plan,
        signals,
        &prev,
        Mode::Stateless,
    );

    let format = Format::resolve(args.format);
    match format {
        Format::Json => render::write_stdout(&(serde_json::to_string_pretty(&report)? + "\n"))?,
        Format::Human => {
            render::write_stdout(&render::evaluation(&report, render::color_stdout()))?
        }
    }
    if let Err(msg) = signals {
        let unreachable = fetched.failure.as_ref().is_some_and(|e| e.is_unreachable());
        let what = if unreachable {
            "Prometheus unreachable"
        } else {
            "telemetry failed"
        };
        // The human report already shows the message; JSON readers get it on stderr.
        match format {
            Format::Human => eprintln!("error: {what}; no decision was made"),
            Format::Json => eprintln!("error: {what}: {msg}"),
        }
        return Ok(exit::UNREACHABLE);
    }
    Ok(exit::for_decision(evaluation.decision))
}

/// The gate named `name`, or a usage error with the closest name.
pub fn find_gate<'a>(
    config: &'a Config,
    name: &str,
) -> anyhow::Result<&'a gate_rules::config::Gate> {
    config.gate(name).ok_or_else(|| {
        let names: Vec<&str> = config.gates.iter().map(|g| g.name.as_str()).collect();
        let hint = gate_rules::hint::closest(name, names.iter().copied(), 2)
            .map(|n| format!(" (did you mean `{n}`?)"))
            .unwrap_or_default();
        exit::usage(format!(
            "unknown gate `{name}`{hint}; the config has: {}",
            names.join(", ")
        ))
    })
}

/// Builds the Prometheus client, reading the bearer token from its variable.
pub fn prometheus_client(config: &Config) -> anyhow::Result<PrometheusClient> {
    let token = match &config.prometheus.bearer_token_env {
        Some(var) => Some(std::env::var(var).map_err(|_| {
            exit::usage(format!(
                "prometheus.bearer_token_env names `{var}`, which is not set"
            ))
        })?),
        None => None,
    };
    PrometheusClient::new(&config.prometheus, token).map_err(|e| exit::usage(e.to_string()))
}

/// Finds when a train started: the first sample of its total counter within the gate's
/// verification and watch windows (at least a day) before `at`.
async fn discover_start(
    client: &PrometheusClient,
    config: &Config,
    gate: &gate_rules::config::Gate,
    train: &gate_rules::TrainId,
    at: DateTime<Utc>,
) -> anyhow::Result<DateTime<Utc>> {
    let lookback_secs = (gate.verify_for.as_duration() + gate.watch_for.as_duration())
        .as_secs()
        .max(86_400);
    let mut earliest: Option<f64> = None;
    for slo_name in &gate.slos {
        let Some(slo) = config.slo(slo_name) else {
            continue;
        };
        let promql = gate_rules::query::first_seen_query(
            &slo.total,
            &config.train_label,
            train,
            gate_rules::PromDuration::from_secs(lookback_secs),
        )
        .map_err(|e| exit::usage(e.to_string()))?;
        let response = client.query(&promql, at).await.map_err(|e| {
            if e.is_unreachable() {
                exit::unreachable(e.to_string())
            } else {
                anyhow::Error::new(e)
            }
        })?;
        if let Some(samples) = response.data.into_vector() {
            for s in samples.iter().filter(|s| s.value.is_finite()) {
                earliest = Some(earliest.map_or(s.value, |e: f64| e.min(s.value)));
            }
        }
    }
    let secs = earliest.ok_or_else(|| {
        exit::usage(format!(
            "no series for train {train} in the last {}: pass --started-at to evaluate it anyway",
            gate_rules::PromDuration::from_secs(lookback_secs)
        ))
    })?;
    DateTime::from_timestamp_millis((secs * 1000.0) as i64)
        .ok_or_else(|| anyhow::anyhow!("Prometheus returned an invalid start time {secs}"))
}
