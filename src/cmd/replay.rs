//! `gate replay`: the daemon's evaluation loop over past data ([`gate_engine::replay`]).
//!
//! Three forms: one train (`--train`, exit code = its final decision), a JSON-lines file of
//! trains (`--trains`, one JSON object per train in file order; an invalid line is reported
//! as `file:line`, the rest is replayed, and the command exits 2 at the end), and every train
//! a daemon's store knows (`--db`, the daemon's decision next to the one the given config
//! would have made, and a summary of what would change). The JSON object of one train is
//! [`gate_engine::replay::TrainReplay`], documented in docs/cli.md.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use gate_api::{Lifecycle, Train};
use gate_engine::offline::OfflineError;
use gate_engine::planner::TrainSpec;
use gate_engine::replay::{self, ReplayError, ReplayTrain, TrainReplay};
use gate_engine::report::{format_time, EvaluationReport};
use gate_engine::store::StoreAt;
use gate_rules::config::{Config, Gate};
use gate_rules::{Decision, PromDuration};
use serde::Deserialize;

use super::eval::{find_gate, prometheus_client};
use super::{load_config, parse_time, train_id, Format};
use crate::{exit, render};

/// Arguments of `gate replay`.
#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["train", "trains", "db"])))]
pub struct Args {
    /// The config file whose rules are replayed.
    #[arg(long, short, default_value = "gate.yaml")]
    pub config: PathBuf,
    /// The gate whose rules apply (with --db: only this gate's trains).
    #[arg(long, required_unless_present = "db")]
    pub gate: Option<String>,
    /// Replay one train.
    #[arg(long, requires = "started_at")]
    pub train: Option<String>,
    /// When the train started (RFC 3339 or unix seconds).
    #[arg(long, value_parser = parse_time, requires = "train")]
    pub started_at: Option<DateTime<Utc>>,
    /// The baseline train for `baseline: previous_train`.
    #[arg(long, requires = "train")]
    pub baseline: Option<String>,
    /// First evaluation. Default: the train's start.
    #[arg(long, value_parser = parse_time, requires = "train")]
    pub from: Option<DateTime<Utc>>,
    /// No evaluation after this. Default: now minus the gate's `evaluation_delay` (the replay
    /// ends earlier at a rollback, or when `watch_for` has passed after a promotion).
    #[arg(long, value_parser = parse_time, conflicts_with = "db")]
    pub to: Option<DateTime<Utc>>,
    /// Time between evaluations. Default: the gate's `interval`.
    #[arg(long)]
    pub step: Option<PromDuration>,
    /// Replay the trains of a JSON-lines file: `{"id": "...", "started_at": "...",
    /// "baseline": "..."}` per line (`baseline` optional).
    #[arg(long)]
    pub trains: Option<PathBuf>,
    /// Replay every train of a daemon's store with this config, next to what the daemon
    /// decided.
    #[arg(long)]
    pub db: Option<PathBuf>,
    /// With --db: the trains started within this long before now.
    #[arg(long, default_value = "7d", requires = "db")]
    pub since: PromDuration,
    /// Output format. Default: human on a terminal, json when piped.
    #[arg(long, value_enum)]
    pub format: Option<Format>,
}

/// Runs `gate replay`.
pub async fn run(args: Args) -> anyhow::Result<i32> {
    let config = load_config(&args.config)?;
    let format = Format::resolve(args.format);
    let now = Utc::now();
    let client = Arc::new(prometheus_client(&config)?);
    if let Some(db) = &args.db {
        return run_db(&args, &config, &client, db, now, format).await;
    }
    let gate = find_gate(&config, args.gate.as_deref().unwrap_or_default())?;
    let step = args.step.unwrap_or(gate.interval);
    let to = args.to.unwrap_or(gate.evaluation_time(now));

    if let Some(path) = &args.trains {
        let (trains, bad_lines) = read_trains(path)?;
        for line in &bad_lines {
            eprintln!("error: {line}");
        }
        let trains: Vec<ReplayTrain> = trains
            .into_iter()
            .map(|spec| ReplayTrain {
                from: spec.started_at,
                to,
                spec,
            })
            .collect();
        let replays = run_replay(&client, &config, gate, &trains, step).await?;
        for r in &replays {
            print(r, format)?;
        }
        return Ok(if bad_lines.is_empty() {
            exit::OK
        } else {
            eprintln!(
                "error: {} invalid line(s) in {}; the other trains were replayed",
                bad_lines.len(),
                path.display()
            );
            exit::USAGE
        });
    }

    let id = train_id(args.train.as_deref().unwrap_or_default())?;
    let started_at = args
        .started_at
        .expect("clap requires --started-at with --train");
    let spec = TrainSpec {
        id,
        started_at,
        baseline: args.baseline.as_deref().map(train_id).transpose()?,
    };
    let train = ReplayTrain {
        from: args.from.unwrap_or(started_at),
        to,
        spec,
    };
    let replays = run_replay(&client, &config, gate, std::slice::from_ref(&train), step).await?;
    let r = &replays[0];
    print(r, format)?;
    Ok(r.final_decision
        .as_ref()
        .map_or(exit::PENDING, |f| exit::for_decision(f.decision)))
}

async fn run_replay(
    client: &Arc<gate_engine::prometheus::PrometheusClient>,
    config: &Config,
    gate: &Gate,
    trains: &[ReplayTrain],
    step: PromDuration,
) -> anyhow::Result<Vec<TrainReplay>> {
    replay::replay(client, config, gate, trains, step, None)
        .await
        .map(|(replays, _)| replays)
        .map_err(replay_error)
}

/// Maps a replay failure to its exit code: bad input 2, Prometheus 6.
fn replay_error(e: ReplayError) -> anyhow::Error {
    match e {
        ReplayError::Range { .. } | ReplayError::Plan(_) => exit::usage(e.to_string()),
        e => exit::unreachable(format!("cannot read the history from Prometheus: {e}")),
    }
}

/// One line of a `--trains` file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TrainLine {
    id: String,
    started_at: String,
    #[serde(default)]
    baseline: Option<String>,
}

/// The valid trains of a JSON-lines file, and a `file:line: why` for each invalid line.
fn read_trains(path: &Path) -> anyhow::Result<(Vec<TrainSpec>, Vec<String>)> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| exit::usage(format!("cannot read {}: {e}", path.display())))?;
    let mut trains = Vec::new();
    let mut bad = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let parsed = serde_json::from_str::<TrainLine>(line)
            .map_err(|e| e.to_string())
            .and_then(|t| {
                let id = gate_rules::train_id::validate(&t.id).map_err(|e| e.to_string())?;
                let started_at = parse_time(&t.started_at).map_err(|e| e.to_string())?;
                let baseline = t
                    .baseline
                    .as_deref()
                    .map(gate_rules::train_id::validate)
                    .transpose()
                    .map_err(|e| format!("baseline: {e}"))?;
                Ok(TrainSpec {
                    id,
                    started_at,
                    baseline,
                })
            });
        match parsed {
            Ok(t) if trains.iter().any(|s: &TrainSpec| s.id == t.id) => bad.push(format!(
                "{}:{}: train {} is listed twice",
                path.display(),
                n + 1,
                t.id
            )),
            Ok(t) => trains.push(t),
            Err(e) => bad.push(format!("{}:{}: {e}", path.display(), n + 1)),
        }
    }
    Ok((trains, bad))
}

fn print(r: &TrainReplay, format: Format) -> anyhow::Result<()> {
    let text = match format {
        Format::Json => serde_json::to_string(r)? + "\n",
        Format::Human => human(r),
    };
    render::write_stdout(&text)?;
    Ok(())
}

/// The timeline a person reads: verdict, then each change with the numbers against the
/// thresholds, then the per-rule summary.
fn human(r: &TrainReplay) -> String {
    let color = render::color_stdout();
    let mut out = String::new();
    match &r.final_decision {
        Some(f) => {
            let _ = writeln!(
                out,
                "{}  train {} (gate {}) at {}: {}",
                render::verdict(f.decision, color),
                r.train,
                r.gate,
                format_time(f.at),
                f.reason
            );
        }
        None => {
            let _ = writeln!(out, "no evaluation: train {} (gate {})", r.train, r.gate);
        }
    }
    let _ = writeln!(
        out,
        "replayed {} evaluation(s) every {} from {} to {}\n",
        r.evaluations,
        r.step,
        format_time(r.from),
        format_time(r.to)
    );
    for (change, report) in r.changes.iter().zip(&r.change_reports) {
        let _ = writeln!(
            out,
            "  {}  {:<8}  {:<16}  {}",
            format_time(change.at),
            change.decision.as_str(),
            change.rule.as_deref().unwrap_or("-"),
            numbers(report)
        );
    }
    let _ = writeln!(out, "\nrules:");
    for rule in &r.rules {
        let _ = match rule.first_fired_at {
            Some(at) => writeln!(
                out,
                "  {:<16}  fired at {} evaluation(s), first at {}",
                rule.name,
                rule.fired_evaluations,
                format_time(at)
            ),
            None => writeln!(out, "  {:<16}  never fired", rule.name),
        };
    }
    out
}

/// The deciding rule's signals against its thresholds (or those of the rules whose
/// condition held), e.g. `burn_rate("x", "1h") = 50 > 14.4`.
fn numbers(report: &EvaluationReport) -> String {
    let rules: Vec<_> = report
        .rules
        .iter()
        .filter(|r| Some(&*r.name) == report.rule.as_deref())
        .chain(
            report
                .rules
                .iter()
                .filter(|r| report.rule.is_none() && r.fired == Some(true)),
        )
        .collect();
    let parts: Vec<String> = rules
        .iter()
        .flat_map(|r| {
            r.thresholds.iter().map(|t| {
                let value = r
                    .values
                    .get(t.signal.as_str())
                    .map(|v| match v.as_f64() {
                        Some(n) => gate_engine::report::Num(n).to_string(),
                        None => v.to_string(),
                    })
                    .unwrap_or_else(|| "no data".into());
                format!("{} = {value} {} {}", t.signal, t.op, t.value)
            })
        })
        .collect();
    if parts.is_empty() {
        report.reason.clone()
    } else {
        parts.join(", ")
    }
}

/// `--db`: every train of the store started within `--since`, replayed with this config.
async fn run_db(
    args: &Args,
    config: &Config,
    client: &Arc<gate_engine::prometheus::PrometheusClient>,
    db: &Path,
    now: DateTime<Utc>,
    format: Format,
) -> anyhow::Result<i32> {
    let records = gate_engine::offline::trains(db).map_err(|e| match e {
        OfflineError::Missing(_) => exit::usage(e.to_string()),
        e => exit::usage(format!("{}: not a gate store: {e}", StoreAt::from(db))),
    })?;
    if let Some(name) = &args.gate {
        find_gate(config, name)?;
    }
    let since =
        chrono::Duration::from_std(args.since.as_duration()).unwrap_or(chrono::Duration::MAX);
    let cutoff = now
        .checked_sub_signed(since)
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    let mut by_gate: BTreeMap<&str, Vec<&Train>> = BTreeMap::new();
    for r in records.iter().filter(|r| r.started_at >= cutoff) {
        if args.gate.as_deref().is_some_and(|g| g != r.gate) {
            continue;
        }
        by_gate.entry(r.gate.as_str()).or_default().push(r);
    }
    let mut rows: Vec<(&Train, TrainReplay)> = Vec::new();
    for (name, records) in by_gate {
        let Some(gate) = config.gate(name) else {
            eprintln!(
                "warning: {} train(s) of gate `{name}`, which the config does not have, were skipped",
                records.len()
            );
            continue;
        };
        let trains: Vec<ReplayTrain> = records
            .iter()
            .map(|r| ReplayTrain {
                spec: TrainSpec {
                    id: r.id.clone(),
                    started_at: r.started_at,
                    baseline: r.baseline.clone(),
                },
                from: r.started_at,
                // A stopped train was evaluated until it was stopped; the others as long as
                // the new rules keep them evaluated.
                to: match r.lifecycle {
                    Lifecycle::Stopped => r
                        .stopped_at
                        .map(|t| gate.evaluation_time(t))
                        .or(r.evaluated_at)
                        .unwrap_or(gate.evaluation_time(now)),
                    _ => gate.evaluation_time(now),
                }
                .max(r.started_at),
            })
            .collect();
        let step = args.step.unwrap_or(gate.interval);
        let replays = run_replay(client, config, gate, &trains, step).await?;
        rows.extend(records.into_iter().zip(replays));
    }

    let changed: Vec<(Decision, Decision)> = rows
        .iter()
        .filter_map(|(record, r)| {
            let new = r.final_decision.as_ref()?.decision;
            (new != record.decision).then_some((record.decision, new))
        })
        .collect();
    let summary = summary(rows.len(), &changed);
    match format {
        Format::Json => {
            for (record, r) in &rows {
                let mut value = serde_json::to_value(r)?;
                value["daemon"] = serde_json::json!({
                    "decision": record.decision,
                    "lifecycle": record.lifecycle.as_str(),
                    "reason": record.reason,
                });
                render::write_stdout(&(serde_json::to_string(&value)? + "\n"))?;
            }
            eprintln!("{summary}");
        }
        Format::Human => {
            let mut out = String::new();
            let _ = writeln!(
                out,
                "{:<24}  {:<12}  {:<9}  {:<9}  replayed reason",
                "train", "gate", "daemon", "replayed"
            );
            for (record, r) in &rows {
                let (new, reason) = r
                    .final_decision
                    .as_ref()
                    .map_or(("-", "no evaluation"), |f| {
                        (f.decision.as_str(), f.reason.as_str())
                    });
                let mark = if new != record.decision.as_str() {
                    "*"
                } else {
                    " "
                };
                let _ = writeln!(
                    out,
                    "{:<24}  {:<12}  {:<9}  {mark}{:<8}  {reason}",
                    record.id.as_str(),
                    record.gate,
                    record.decision.as_str(),
                    new
                );
            }
            let _ = writeln!(out, "\n{summary}");
            render::write_stdout(&out)?;
        }
    }
    Ok(exit::OK)
}

/// "3 trains would have been rolled back that were promoted; 1 promoted that was paused".
fn summary(replayed: usize, changed: &[(Decision, Decision)]) -> String {
    if changed.is_empty() {
        return format!(
            "no decision would change ({replayed} train{} replayed)",
            plural(replayed)
        );
    }
    let mut counts: BTreeMap<(Decision, Decision), usize> = BTreeMap::new();
    for pair in changed {
        *counts.entry(*pair).or_default() += 1;
    }
    let mut counts: Vec<_> = counts.into_iter().collect();
    counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let parts: Vec<String> = counts
        .iter()
        .enumerate()
        .map(|(i, ((was, would), n))| {
            let lead = if i == 0 {
                format!("{n} train{} would have been", plural(*n))
            } else {
                n.to_string()
            };
            let verb = if *n == 1 { "was" } else { "were" };
            format!("{lead} {} that {verb} {}", past(*would), past(*was))
        })
        .collect();
    format!(
        "{} (of {replayed} train{} replayed)",
        parts.join("; "),
        plural(replayed)
    )
}

fn past(d: Decision) -> &'static str {
    match d {
        Decision::Promote => "promoted",
        Decision::Rollback => "rolled back",
        Decision::Pause => "paused",
        Decision::Pending => "pending",
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_names_each_kind_of_change() {
        use Decision::*;
        let changed = [
            (Promote, Rollback),
            (Promote, Rollback),
            (Promote, Rollback),
            (Pause, Promote),
        ];
        assert_eq!(
            summary(10, &changed),
            "3 trains would have been rolled back that were promoted; 1 promoted that was \
             paused (of 10 trains replayed)"
        );
        assert_eq!(
            summary(1, &[]),
            "no decision would change (1 train replayed)"
        );
    }

    #[test]
    fn invalid_lines_are_reported_with_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trains.jsonl");
        std::fs::write(
            &path,
            concat!(
                r#"{"id": "t-1", "started_at": "2026-11-01T11:00:00Z"}"#,
                "\n\n",
                r#"{"id": "t-2", "started_at": "yesterday"}"#,
                "\n",
                "not json\n",
                r#"{"id": "t-3", "started_at": "2026-11-01T11:00:00Z", "baseline": "t-1"}"#,
                "\n",
            ),
        )
        .unwrap();
        let (trains, bad) = read_trains(&path).unwrap();
        let ids: Vec<&str> = trains.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(ids, ["t-1", "t-3"]);
        assert_eq!(trains[1].baseline.as_ref().unwrap().as_str(), "t-1");
        assert_eq!(bad.len(), 2, "{bad:?}");
        assert!(bad[0].ends_with(":3: `yesterday` is not a time: use RFC 3339 (2026-11-01T12:00:00Z) or unix seconds"), "{}", bad[0]);
        assert!(bad[1].contains("trains.jsonl:4: "), "{}", bad[1]);
    }
}
