//! Human output: an evaluation as a person reads it at 3 a.m.
//!
//! Verdict first (decision, train, gate, one-line reason), then why: each SLO's burn rate per
//! window against the threshold the rules hold it to, each rule's outcome, the evidence
//! behind `min_requests`, budget and error delta, and last what to do. Colour only when
//! writing to a terminal and `NO_COLOR` is unset.

use std::fmt::Write;
use std::io::IsTerminal;

use comfy_table::{presets, Cell, CellAlignment, Table};
use gate_engine::report::{EvaluationReport, Num, RuleReport};
use gate_rules::Decision;

/// Whether stdout gets colour: a terminal, and `NO_COLOR` unset.
pub fn color_stdout() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// A decision, upper-cased and coloured for the verdict line.
pub fn verdict(d: Decision, color: bool) -> String {
    let text = d.as_str().to_uppercase();
    if !color {
        return text;
    }
    let code = match d {
        Decision::Promote => "1;32",
        Decision::Rollback => "1;31",
        Decision::Pause => "1;33",
        Decision::Pending => "1;36",
    };
    format!("\x1b[{code}m{text}\x1b[0m")
}

/// `12m`, `1h05m`, `2d3h`: a short age.
pub fn short_duration(secs: i64) -> String {
    let secs = secs.max(0);
    let (d, h, m, s) = (secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d}d{h}h")
    } else if h > 0 {
        format!("{h}h{m:02}m")
    } else if m > 0 {
        format!("{m}m")
    } else {
        format!("{s}s")
    }
}

fn num(v: Option<Num>) -> String {
    v.map(|n| n.to_string()).unwrap_or_else(|| "no data".into())
}

/// The threshold a signal is held to by the rules, as `> 14.4 (fast-burn → rollback)`.
fn thresholds_for(rules: &[RuleReport], signal: &str) -> Vec<(String, bool)> {
    rules
        .iter()
        .flat_map(|r| {
            r.thresholds
                .iter()
                .filter(move |t| t.signal == signal)
                .map(move |t| {
                    (
                        format!("{} {} ({} → {})", t.op, Num(t.value), r.name, r.then),
                        r.fired == Some(true),
                    )
                })
        })
        .collect()
}

fn breached(value: Option<Num>, rules: &[RuleReport], signal: &str) -> Option<bool> {
    let v = value?.0;
    let mut any = None;
    for t in rules
        .iter()
        .flat_map(|r| r.thresholds.iter())
        .filter(|t| t.signal == signal)
    {
        let hit = match t.op.as_str() {
            ">" => v > t.value,
            ">=" => v >= t.value,
            "<" => v < t.value,
            "<=" => v <= t.value,
            "==" => v == t.value,
            _ => v != t.value,
        };
        any = Some(any.unwrap_or(false) || hit);
    }
    any
}

/// Renders one evaluation for people.
pub fn evaluation(r: &EvaluationReport, color: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}  train {}  (gate {})",
        verdict(r.decision, color),
        r.train,
        r.gate
    );
    let _ = writeln!(out, "  {}", r.reason);
    let _ = writeln!(
        out,
        "  age {} of verify_for {} · evaluated at {}",
        short_duration(r.age_secs),
        short_duration(r.verify_for_secs as i64),
        gate_engine::report::format_time(r.evaluated_at)
    );
    if let Some(err) = &r.telemetry_error {
        if !r.reason.contains(err.as_str()) {
            let _ = writeln!(out, "  telemetry error: {err}");
        }
        // Without telemetry there are no values to show: what to do is all that is left.
        let _ = writeln!(out);
        let _ = writeln!(out, "  next: {}", next_step(r));
        return out;
    }

    if !r.signals.burn_rate.is_empty() {
        let mut table = Table::new();
        table.load_preset(presets::NOTHING).set_header(vec![
            "SLO",
            "WINDOW",
            "BURN RATE",
            "THRESHOLD",
            "VERDICT",
        ]);
        for (slo, windows) in &r.signals.burn_rate {
            let mut windows: Vec<_> = windows.iter().collect();
            windows.sort_by_key(|(w, _)| w.parse::<gate_rules::PromDuration>().ok());
            for (window, value) in windows {
                let signal = format!("burn_rate({slo:?}, {window:?})");
                let thresholds = thresholds_for(&r.rules, &signal);
                let verdict = match breached(*value, &r.rules, &signal) {
                    None if value.is_none() => "no data",
                    None => "-",
                    Some(true) => "OVER",
                    Some(false) => "ok",
                };
                table.add_row(vec![
                    Cell::new(slo),
                    Cell::new(window),
                    Cell::new(num(*value)).set_alignment(CellAlignment::Right),
                    Cell::new(
                        thresholds
                            .iter()
                            .map(|(t, _)| t.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                    ),
                    Cell::new(verdict),
                ]);
            }
        }
        let _ = writeln!(out);
        for line in table.to_string().lines() {
            let _ = writeln!(out, "  {}", line.trim_end());
        }
    }

    if !r.rules.is_empty() {
        let mut table = Table::new();
        table
            .load_preset(presets::NOTHING)
            .set_header(vec!["RULE", "THEN", "RESULT", "VALUES"]);
        for rule in &r.rules {
            let result = match rule.fired {
                Some(true) if rule.for_evaluations > 1 => {
                    format!("FIRED ({}/{})", rule.streak, rule.for_evaluations)
                }
                Some(true) => "FIRED".to_string(),
                Some(false) => "no".to_string(),
                None => "unknown".to_string(),
            };
            let values = rule
                .values
                .iter()
                .map(|(k, v)| format!("{k} = {}", short_json(v)))
                .collect::<Vec<_>>()
                .join("; ");
            let values = match &rule.unknown_reason {
                Some(reason) => format!("{reason}; {values}"),
                None => values,
            };
            let then = if rule.dry_run {
                format!("{} (dry run)", rule.then)
            } else {
                rule.then.to_string()
            };
            table.add_row(vec![rule.name.to_string(), then, result, values]);
        }
        let _ = writeln!(out);
        for line in table.to_string().lines() {
            let _ = writeln!(out, "  {}", line.trim_end());
        }
    }

    let mut facts = Vec::new();
    for (slo, since) in &r.signals.since_start {
        facts.push(match since {
            // increase() extrapolates to the window's edges: whole events read better.
            Some(s) => format!(
                "{slo}: {:.0} requests, {:.0} errors since start",
                s.requests.0, s.errors.0
            ),
            None => format!("{slo}: no series since start"),
        });
    }
    for (slo, b) in &r.signals.budget_remaining {
        facts.push(match b {
            Some(v) => format!("{slo}: {:.1}% of the error budget left", v.0 * 100.0),
            None => format!("{slo}: budget unknown (no data)"),
        });
    }
    for (slo, windows) in &r.signals.service_burn_rate {
        for (window, v) in windows {
            facts.push(match v {
                Some(v) => format!("{slo}: service-wide burn rate {v} over {window}"),
                None => format!("{slo}: service-wide burn rate over {window} unknown (no data)"),
            });
        }
    }
    for (slo, windows) in &r.signals.service_error_ratio {
        for (window, v) in windows {
            facts.push(match v {
                Some(v) => format!("{slo}: service-wide error ratio {v} over {window}"),
                None => format!("{slo}: service-wide error ratio over {window} unknown (no data)"),
            });
        }
    }
    for (slo, d) in &r.signals.error_delta {
        let baseline = r.baseline_desc.as_deref().unwrap_or("no baseline");
        facts.push(match d {
            Some(d) => format!(
                "{slo}: error ratio {} vs baseline {} (relative {}, e = {}, anytime-valid p = {}{}, ratio ≥ {}, {} looks) — baseline: {baseline}",
                d.train_ratio,
                d.baseline_ratio,
                d.relative,
                d.e_value,
                d.p_value,
                match d.significant {
                    Some(true) => ", significant",
                    Some(false) => "",
                    None => ", significance unknown",
                },
                d.ratio_lower,
                d.looks,
            ),
            None => format!("{slo}: error delta unknown — baseline: {baseline}"),
        });
    }
    if !facts.is_empty() {
        let _ = writeln!(out);
        for f in facts {
            let _ = writeln!(out, "  {f}");
        }
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "  next: {}", next_step(r));
    out
}

fn short_json(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "no data".into(),
        serde_json::Value::Number(n) => n
            .as_f64()
            .map(|f| Num(f).to_string())
            .unwrap_or_else(|| n.to_string()),
        serde_json::Value::Object(map) => {
            let pick = |k: &str| map.get(k).map(short_json).unwrap_or_default();
            format!(
                "{{relative {}, p {}, significant {}}}",
                pick("relative"),
                pick("p_value"),
                pick("significant")
            )
        }
        other => other.to_string(),
    }
}

fn next_step(r: &EvaluationReport) -> &'static str {
    if r.telemetry_error.is_some() && r.decision != Decision::Rollback {
        return "check that Prometheus is reachable and answers the queries above; nothing is promoted without telemetry";
    }
    match r.decision {
        Decision::Promote => "the train may proceed; gate keeps watching it for rollback rules",
        Decision::Rollback => "undo the train; rollback is latched (override only by `gate override`)",
        Decision::Pause if r.telemetry_error.is_some() => {
            "fix telemetry (Prometheus reachable? queries valid?); the pause lifts at the next good evaluation"
        }
        Decision::Pause if r.inconclusive => {
            "the evidence is inconclusive (no data or too little traffic); check the train label on the SLI series"
        }
        Decision::Pause => "hold the train and investigate the rule above; it resumes after clean evaluations or `gate override --decision resume`",
        Decision::Pending => "keep waiting: verification is still running",
    }
}

/// Writes to stdout, returning an error instead of panicking when the reader went away
/// (`gate status | head`): `main` turns a broken pipe into a clean exit.
pub fn write_stdout(text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()
}
