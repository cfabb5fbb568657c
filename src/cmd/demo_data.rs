//! `gate demo-data` (hidden): the telemetry of `scripts/demo`, as OpenMetrics text for
//! `promtool tsdb create-blocks-from openmetrics`, ending at `--end` (default now).
//!
//! Five trains of a `checkout` service, each answering requests at a known constant rate per
//! status code, with counters sampled every 15 s on a grid anchored at the end time — the same
//! shape and labels as the test fixtures (`tests/common/fixtures.rs`), so the demo config
//! (`fixtures/demo/gate.yaml`) reads them like the tests do:
//!
//! | train | started | errors | expected verdict (gate `checkout`, verify_for 5m) |
//! |---|---|---|---|
//! | `r-100` | 3h ago | 0.05 % | the stable release, the baseline of the others; not registered |
//! | `r-101` | 20m ago | 0.05 % (burn 0.5) | promote |
//! | `r-102` | 12m ago | 5 % (burn 50) | rollback by `fast-burn` |
//! | `r-103` | 25m ago | 0.5 % (burn 5, 10× r-100) | rollback by `regression` |
//! | `r-104` | 3m ago | 0.05 % | pending, then promote once 5m old |
//!
//! The output is a pure function of the end time, so a demo run can be replayed. Besides the
//! file, the command prints the trains to register, one per line, tab-separated:
//! `id  gate  started_at (unix seconds)  baseline  expectation`.
//!
//! Why a copy of the generator rather than the test one: the binary must not depend on test
//! code, and the demo needs only this one scenario.

use std::fmt::Write as _;
use std::path::PathBuf;

use chrono::{DateTime, Utc};

use super::parse_time;
use crate::{exit, render};

/// Sampling step, in seconds.
const STEP: i64 = 15;
/// Hours of data before the end.
const HOURS: i64 = 4;
const MINUTE: i64 = 60;
const HOUR: i64 = 3600;

/// Arguments of `gate demo-data`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The end of the data: `now`, RFC 3339 or unix seconds.
    #[arg(long, default_value = "now")]
    pub end: String,
    /// Where to write the OpenMetrics text.
    #[arg(long)]
    pub out: PathBuf,
}

/// One demo train: requests per minute on each of two instances, between two instants
/// relative to the end.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoTrain {
    /// Train ID.
    pub id: &'static str,
    /// Start, seconds relative to the end (< 0).
    pub from: i64,
    /// Last sample, seconds relative to the end (≤ 0).
    pub until: i64,
    /// 2xx per minute per instance.
    pub ok: u64,
    /// 500s and 503s each, per minute per instance.
    pub errors_each: u64,
    /// Registered by the demo (the baseline train is not).
    pub register: bool,
    /// What the demo shows for it.
    pub expect: &'static str,
}

/// The baseline train of the others.
pub const BASELINE: &str = "r-100";
/// The gate of the demo config.
pub const GATE: &str = "checkout";
const INSTANCES: u32 = 2;

/// The demo's trains.
pub fn trains() -> Vec<DemoTrain> {
    let t = |id, from, until, ok, errors_each, register, expect| DemoTrain {
        id,
        from,
        until,
        ok,
        errors_each,
        register,
        expect,
    };
    vec![
        t(
            BASELINE,
            -3 * HOUR,
            0,
            15_992,
            4,
            false,
            "the stable release (baseline)",
        ),
        t(
            "r-101",
            -20 * MINUTE,
            0,
            15_992,
            4,
            true,
            "healthy: promote",
        ),
        t(
            "r-102",
            -12 * MINUTE,
            0,
            1_520,
            40,
            true,
            "5% errors: rollback (fast-burn)",
        ),
        t(
            "r-103",
            -25 * MINUTE,
            0,
            15_920,
            40,
            true,
            "10x the baseline's errors: rollback (regression)",
        ),
        t(
            "r-104",
            -3 * MINUTE,
            0,
            15_992,
            4,
            true,
            "healthy but young: pending, promote at 5m",
        ),
    ]
}

/// The demo telemetry ending at `end` (unix seconds) as OpenMetrics text.
pub fn render_openmetrics(end: i64) -> String {
    let start = end - HOURS * HOUR;
    let mut out = String::new();
    out.push_str(
        "# HELP http_requests Requests served, by service, train, instance and status code.\n",
    );
    out.push_str("# TYPE http_requests counter\n");
    for train in trains() {
        let train_start = end + train.from;
        let first = start.max(train_start);
        let last = end + train.until;
        let mut codes = vec![(200u16, train.ok)];
        if train.errors_each > 0 {
            codes.push((500, train.errors_each));
            codes.push((503, train.errors_each));
        }
        for instance in 0..INSTANCES {
            for &(code, per_minute) in &codes {
                let labels = format!(
                    "code=\"{code}\",instance=\"checkout-{instance}:8080\",service=\"checkout\",train_id=\"{}\"",
                    train.id
                );
                // The grid end − k·STEP, oldest first, within [first, last].
                let mut k = (end - first).div_euclid(STEP);
                while end - k * STEP <= last {
                    let t = end - k * STEP;
                    if t >= first {
                        let value = per_minute as i64 * (t - train_start) / 60;
                        let _ = writeln!(out, "http_requests_total{{{labels}}} {value} {t}");
                    }
                    if k == 0 {
                        break;
                    }
                    k -= 1;
                }
            }
        }
    }
    out.push_str("# EOF\n");
    out
}

/// The registration lines printed for `scripts/demo`.
pub fn manifest(end: i64) -> String {
    let mut out = String::new();
    for t in trains().into_iter().filter(|t| t.register) {
        let _ = writeln!(
            out,
            "{}\t{GATE}\t{}\t{BASELINE}\t{}",
            t.id,
            end + t.from,
            t.expect
        );
    }
    out
}

/// Runs `gate demo-data`.
pub fn run(args: Args) -> anyhow::Result<i32> {
    let end: DateTime<Utc> = if args.end == "now" {
        Utc::now()
    } else {
        parse_time(&args.end).map_err(|e| exit::usage(e.to_string()))?
    };
    let end = end.timestamp();
    std::fs::write(&args.out, render_openmetrics(end))
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", args.out.display()))?;
    render::write_stdout(&manifest(end))?;
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    const END: i64 = 1_793_534_400;

    /// `(labels, value, t)` of every sample.
    fn samples(text: &str) -> Vec<(String, i64, i64)> {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| {
                let (series, rest) = l.split_once("} ").unwrap();
                let (v, t) = rest.split_once(' ').unwrap();
                (
                    format!("{series}}}"),
                    v.parse().unwrap(),
                    t.parse().unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn the_output_depends_only_on_the_end_time() {
        assert_eq!(render_openmetrics(END), render_openmetrics(END));
        assert_ne!(render_openmetrics(END), render_openmetrics(END + 15));
        assert!(render_openmetrics(END).ends_with("# EOF\n"));
    }

    #[test]
    fn counters_start_at_zero_grow_at_the_stated_rate_and_end_at_the_end() {
        let all = samples(&render_openmetrics(END));
        let series = |train: &str, code: u16| -> Vec<(i64, i64)> {
            all.iter()
                .filter(|(l, ..)| {
                    l.contains(&format!("train_id=\"{train}\""))
                        && l.contains(&format!("code=\"{code}\""))
                        && l.contains("checkout-0:8080")
                })
                .map(|(_, v, t)| (*v, *t))
                .collect()
        };
        let ok = series("r-101", 200);
        assert_eq!(ok.first(), Some(&(0, END - 20 * MINUTE)));
        assert_eq!(ok.last(), Some(&(15_992 * 20, END)));
        assert!(ok
            .windows(2)
            .all(|w| w[1].1 - w[0].1 == STEP && w[1].0 >= w[0].0));
        // The baseline serves from three hours before the end, to the end.
        let baseline = series(BASELINE, 500);
        assert_eq!(baseline.first(), Some(&(0, END - 3 * HOUR)));
        assert_eq!(baseline.last().map(|s| s.1), Some(END));
        // The fast-burning train's error ratio is 5 %.
        let r102 = trains().into_iter().find(|t| t.id == "r-102").unwrap();
        let ratio = (2 * r102.errors_each) as f64 / (r102.ok + 2 * r102.errors_each) as f64;
        assert!((ratio - 0.05).abs() < 1e-12, "{ratio}");
        // Every sample lies on the grid of the end time, within the last four hours.
        assert!(all
            .iter()
            .all(|(_, _, t)| (END - t) % STEP == 0 && *t <= END && *t >= END - HOURS * HOUR));
    }

    #[test]
    fn the_manifest_lists_the_registered_trains_with_their_start() {
        let m = manifest(END);
        let lines: Vec<Vec<&str>> = m.lines().map(|l| l.split('\t').collect()).collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(
            lines[0][..4],
            [
                "r-101",
                "checkout",
                &(END - 20 * MINUTE).to_string(),
                "r-100"
            ]
        );
        assert!(lines.iter().all(|l| l.len() == 5 && l[0] != BASELINE));
    }
}
