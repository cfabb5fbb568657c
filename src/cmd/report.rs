//! `gate report [--since 30d] [--gate NAME] [--format human|json]`: the monthly review of the
//! trains — per gate and overall, how many started, were promoted, rolled back, paused and
//! overridden, the release success rate, rollback frequency and change failure rate, the time
//! from start to verdict, and the rules behind the rollbacks (`docs/report.md` defines them).
//!
//! It asks the running daemon (`GET /v1/report` on `--server`), or with `--db` reads the
//! store file directly through `gate_engine::offline` (a daemon may be running on it: the
//! report only reads). Both answer the same [`gate_api::Report`], and `--format json` prints
//! it as it is, so the two are interchangeable in scripts.

use std::fmt::Write as _;
use std::path::PathBuf;

use chrono::Utc;
use comfy_table::{presets, Table};
use gate_api::{Figures, Report};
use gate_engine::offline::OfflineError;
use gate_engine::report::format_time;
use gate_engine::store::StoreAt;
use gate_rules::PromDuration;

use super::Format;
use crate::client::ServerArgs;
use crate::{exit, render};

/// Arguments of `gate report`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Count the trains started within this long before now (a Prometheus duration: 30d,
    /// 12h, 2w).
    #[arg(long, default_value = "30d")]
    pub since: PromDuration,
    /// Only the trains of this gate.
    #[arg(long)]
    pub gate: Option<String>,
    /// Output format. Default: human on a terminal, json when piped.
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Read this store file (the one `gate serve --db` uses) instead of asking --server.
    #[arg(long)]
    pub db: Option<PathBuf>,
    #[command(flatten)]
    pub server: ServerArgs,
}

/// Runs `gate report`.
pub async fn run(args: Args) -> anyhow::Result<i32> {
    let report = match &args.db {
        Some(db) => gate_engine::offline::report(db, args.since, args.gate.as_deref(), Utc::now())
            .map_err(|e| match e {
                OfflineError::Missing(_) => exit::usage(e.to_string()),
                e => exit::usage(format!("{}: not a gate store: {e}", StoreAt::from(db))),
            })?,
        None => {
            args.server
                .client()?
                .report(&args.since.to_string(), args.gate.as_deref())
                .await
                .map_err(|e| e.into_exit())?
                .value
        }
    };
    let text = match Format::resolve(args.format) {
        Format::Json => serde_json::to_string_pretty(&report)? + "\n",
        Format::Human => render_report(&report),
    };
    render::write_stdout(&text)?;
    Ok(exit::OK)
}

fn percent(rate: Option<f64>) -> String {
    rate.map_or_else(|| "—".to_string(), |r| format!("{:.0}%", r * 100.0))
}

fn duration(secs: Option<f64>) -> String {
    secs.map_or_else(
        || "—".to_string(),
        |s| render::short_duration(s.round() as i64),
    )
}

/// The report for people: the headline first, then one row per gate and the total, then
/// what caused the rollbacks.
pub fn render_report(r: &Report) -> String {
    let mut out = String::new();
    let scope = r
        .gate
        .as_deref()
        .map_or_else(String::new, |g| format!(" of gate {g}"));
    let o = &r.overall;
    let _ = writeln!(
        out,
        "{} trains{scope} started in the last {} ({} to {})",
        o.started,
        r.since,
        format_time(r.from),
        format_time(r.to)
    );
    if o.started == 0 {
        return out;
    }
    let _ = writeln!(
        out,
        "release success {} ({} of {} finished), rollback frequency {}, change failure rate {}",
        percent(o.release_success_rate),
        o.succeeded,
        o.finished,
        percent(o.rollback_frequency),
        percent(o.change_failure_rate),
    );

    let mut table = Table::new();
    table.load_preset(presets::NOTHING).set_header(vec![
        "GATE",
        "STARTED",
        "PROMOTED",
        "ROLLED BACK",
        "PAUSED (TIME)",
        "OVERRIDDEN",
        "SUCCESS",
        "ROLLBACK FREQ",
        "CHANGE FAIL",
        "VERDICT MEDIAN / P90",
    ]);
    let row = |name: &str, f: &Figures| {
        vec![
            name.to_string(),
            f.started.to_string(),
            f.promoted.to_string(),
            match f.rolled_back_after_promotion {
                0 => f.rolled_back.to_string(),
                n => format!("{} ({n} after promotion)", f.rolled_back),
            },
            format!(
                "{} ({})",
                f.paused,
                render::short_duration(f.paused_secs.round() as i64)
            ),
            f.overridden.to_string(),
            format!(
                "{} ({}/{})",
                percent(f.release_success_rate),
                f.succeeded,
                f.finished
            ),
            percent(f.rollback_frequency),
            percent(f.change_failure_rate),
            format!(
                "{} / {}",
                duration(f.time_to_verdict.median_secs),
                duration(f.time_to_verdict.p90_secs)
            ),
        ]
    };
    for (gate, f) in &r.gates {
        table.add_row(row(gate, f));
    }
    if r.gates.len() > 1 {
        table.add_row(row("all", o));
    }
    let _ = writeln!(out);
    for line in table.to_string().lines() {
        let _ = writeln!(out, "  {}", line.trim_end());
    }

    let causes: Vec<String> = r
        .gates
        .iter()
        .filter(|(_, f)| f.rolled_back > 0)
        .map(|(gate, f)| {
            let mut parts: Vec<String> = f
                .rollback_rules
                .iter()
                .map(|(rule, n)| format!("{rule} {n}"))
                .collect();
            if f.override_rollbacks > 0 {
                parts.push(format!("by operator {}", f.override_rollbacks));
            }
            format!("  {gate}: {}", parts.join(", "))
        })
        .collect();
    if !causes.is_empty() {
        let _ = writeln!(out, "\nRollbacks by rule:");
        for line in causes {
            let _ = writeln!(out, "{line}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chrono::{DateTime, TimeZone};
    use gate_api::TimeToVerdict;

    use super::*;

    fn t(secs: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap() + chrono::Duration::seconds(secs)
    }

    fn figures(started: u64) -> Figures {
        Figures {
            started,
            promoted: 3,
            rolled_back: 3,
            rolled_back_after_promotion: 1,
            paused: 1,
            paused_secs: 600.0,
            overridden: 1,
            finished: 5,
            succeeded: 2,
            stopped: 0,
            release_success_rate: Some(0.4),
            rollback_frequency: Some(0.6),
            change_failure_rate: Some(1.0 / 3.0),
            time_to_verdict: TimeToVerdict {
                trains: 5,
                median_secs: Some(1800.0),
                p90_secs: Some(2160.0),
            },
            rollback_rules: BTreeMap::from([("fast-burn".to_string(), 2)]),
            override_rollbacks: 1,
        }
    }

    #[test]
    fn the_human_report_leads_with_the_headline_then_the_gates_and_the_causes() {
        let report = Report {
            since: "30d".into(),
            from: t(-30 * 86_400),
            to: t(0),
            gate: None,
            overall: figures(5),
            gates: BTreeMap::from([("checkout".to_string(), figures(5))]),
        };
        insta::assert_snapshot!(render_report(&report));
    }

    #[test]
    fn an_empty_range_says_so_and_nothing_more() {
        let mut empty = figures(0);
        empty.release_success_rate = None;
        let report = Report {
            since: "7d".into(),
            from: t(-7 * 86_400),
            to: t(0),
            gate: Some("search".into()),
            overall: empty,
            gates: BTreeMap::new(),
        };
        assert_eq!(
            render_report(&report),
            "0 trains of gate search started in the last 7d (2026-10-25T12:00:00Z to 2026-11-01T12:00:00Z)\n"
        );
    }
}
