//! `gate status [ID]`: what the daemon decided, for people at a glance and for programs.
//!
//! Without an ID: one row per active train — decision, age, the worst burn rate against the
//! threshold the rules hold it to, and the deciding rule. With an ID: the verdict first and
//! why (the latest evaluation through [`render::evaluation`], the same view `gate eval`
//! prints), then the decision history with times and the webhook deliveries, so the on-call
//! engineer sees whether the deployer was told.
//!
//! The renderers are pure functions of the API objects and a `now`, which is what makes the
//! human output snapshot-testable; only [`run`] talks to the server and reads the clock.
//! `--format json` prints the server's train objects with the latest evaluation's `rules` and
//! `signals` lifted to the top level (SPEC §5: every train object carries them, as `gate eval`
//! prints them); the full evaluation stays under `evaluation`.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use comfy_table::{presets, Cell, Color, Table};
use gate_api::{DeliveryState, WorstBurn};
use gate_engine::report::{format_time, Num};
use gate_rules::Decision;

use super::{train_id, Format};
use crate::client::{Delivery, Event, ServerArgs, Train};
use crate::{exit, render};

/// How many decisions `status ID` lists.
const HISTORY: usize = 10;
/// Longest reason shown in the list table before it is cut.
const REASON_WIDTH: usize = 70;

/// Arguments of `gate status`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// A train ID: its verdict with the evidence. Without: every active train.
    pub id: Option<String>,
    /// Without an ID: include trains no longer watched (done, stopped).
    #[arg(long)]
    pub all: bool,
    /// Output format. Default: human on a terminal, json when piped.
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    #[command(flatten)]
    pub server: ServerArgs,
}

/// Runs `gate status`.
pub async fn run(args: Args) -> anyhow::Result<i32> {
    let client = args.server.client()?;
    let format = Format::resolve(args.format);
    let color = render::color_stdout();
    match args.id {
        None => match format {
            Format::Json => {
                let answer = client
                    .trains(args.all, true)
                    .await
                    .map_err(|e| e.into_exit())?;
                let trains: Vec<serde_json::Value> = answer
                    .value
                    .iter()
                    .map(|t| serde_json::to_value(t).map(|v| with_evidence(&v)))
                    .collect::<Result<_, _>>()?;
                write_json(&serde_json::json!({ "trains": trains }))?
            }
            Format::Human => {
                let answer = client
                    .trains(args.all, false)
                    .await
                    .map_err(|e| e.into_exit())?;
                render::write_stdout(&render_list(&answer.value, Utc::now(), color))?
            }
        },
        Some(id) => {
            let id = train_id(&id)?;
            let train = client.train(id.as_str()).await.map_err(|e| e.into_exit())?;
            match format {
                Format::Json => write_json(&with_evidence(&train.raw))?,
                Format::Human => {
                    let events = client
                        .events(id.as_str())
                        .await
                        .map_err(|e| e.into_exit())?;
                    render::write_stdout(&render_train(
                        &train.value,
                        &events.value,
                        Utc::now(),
                        color,
                    ))?
                }
            }
        }
    }
    Ok(exit::OK)
}

fn write_json(value: &serde_json::Value) -> anyhow::Result<()> {
    render::write_stdout(&(serde_json::to_string_pretty(value)? + "\n"))?;
    Ok(())
}

/// A train's worst burn rate as the list shows it: the burn rate against the threshold of
/// the rule it is closest to tripping (`50 > 14.4 (fast-burn)`). The server picks it
/// (`worst_burn` of `GET /v1/trains`); this only writes it.
pub fn burn_text(w: &WorstBurn) -> String {
    let op = if breached(w) { ">" } else { "≤" };
    format!("{} {op} {} ({})", Num(w.value), Num(w.threshold), w.rule)
}

/// Whether the burn rate is over its rule's threshold.
fn breached(w: &WorstBurn) -> bool {
    w.value > w.threshold
}

fn paint(text: &str, code: &str, color: bool) -> String {
    if color {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

fn decision_color(d: Decision) -> Color {
    match d {
        Decision::Promote => Color::Green,
        Decision::Rollback => Color::Red,
        Decision::Pause => Color::Yellow,
        Decision::Pending => Color::Cyan,
    }
}

fn cut(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        text.to_string()
    } else {
        let mut s: String = text.chars().take(width.saturating_sub(1)).collect();
        s.push('…');
        s
    }
}

/// The table of trains: train, gate, decision, age, worst burn rate against its threshold,
/// deciding rule and reason.
pub fn render_list(trains: &[Train], now: DateTime<Utc>, color: bool) -> String {
    if trains.is_empty() {
        return "no active trains (register one with `gate train start ID --gate NAME`)\n"
            .to_string();
    }
    let mut table = Table::new();
    table.load_preset(presets::NOTHING).set_header(vec![
        "TRAIN",
        "GATE",
        "DECISION",
        "AGE",
        "WORST BURN RATE",
        "RULE",
        "REASON",
    ]);
    if color {
        table.enforce_styling();
    } else {
        table.force_no_tty();
    }
    for t in trains {
        let mut decision = Cell::new(t.decision.as_str().to_uppercase());
        if color {
            decision = decision.fg(decision_color(t.decision));
        }
        let worst = t.worst_burn.clone().flatten();
        let burn = match &worst {
            None if t.evaluated_at.is_none() => "not evaluated yet".to_string(),
            None => "-".to_string(),
            Some(w) => burn_text(w),
        };
        let mut burn_cell = Cell::new(burn);
        if color && worst.as_ref().is_some_and(breached) {
            burn_cell = burn_cell.fg(Color::Red);
        }
        let age = (now - t.started_at).num_seconds();
        let mut state = render::short_duration(age);
        if !t.lifecycle.is_active() {
            state = format!("{state} ({})", t.lifecycle);
        }
        let gate = match &t.gates {
            Some(gates) => gates
                .iter()
                .map(|g| g.gate.as_str())
                .collect::<Vec<_>>()
                .join(","),
            None => t.gate.clone(),
        };
        table.add_row(vec![
            Cell::new(&t.id),
            Cell::new(gate),
            decision,
            Cell::new(state),
            burn_cell,
            Cell::new(t.rule.as_deref().unwrap_or("-")),
            Cell::new(cut(&t.reason, REASON_WIDTH)),
        ]);
    }
    let mut out = String::new();
    for line in table.to_string().lines() {
        let _ = writeln!(out, "{}", line.trim_end());
    }
    out
}

/// One train for people: the verdict and why, the decision history and webhook deliveries.
pub fn render_train(train: &Train, events: &[Event], now: DateTime<Utc>, color: bool) -> String {
    let mut out = String::new();
    if let Some(gates) = &train.gates {
        render_gates(&mut out, train, gates, color);
        render_rest(&mut out, train, events, now, color);
        return out;
    }
    let overridden = train
        .evaluation()
        .is_none_or(|e| e.decision != train.decision || e.evaluated_at < last_override_at(events));
    if overridden {
        let _ = writeln!(
            out,
            "{}  train {}  (gate {})",
            render::verdict(train.decision, color),
            train.id,
            train.gate
        );
        let _ = writeln!(out, "  {}", train.reason);
        match train.evaluation() {
            None => {
                let _ = writeln!(
                    out,
                    "  not evaluated yet · started {} ({} ago)",
                    format_time(train.started_at),
                    render::short_duration((now - train.started_at).num_seconds())
                );
            }
            Some(e) => {
                let _ = writeln!(
                    out,
                    "\n  the latest evaluation ({}) said {}:\n",
                    format_time(e.evaluated_at),
                    e.decision.as_str()
                );
                for line in render::evaluation(e, color).lines() {
                    let _ = writeln!(out, "  {line}");
                }
            }
        }
    } else if let Some(e) = train.evaluation() {
        out.push_str(&render::evaluation(e, color));
    }
    render_rest(&mut out, train, events, now, color);
    out
}

/// A train of several gates: the train's verdict and reason, then each gate's decision with
/// its latest evaluation.
fn render_gates(
    out: &mut String,
    train: &Train,
    gates: &[gate_api::TrainGate<gate_engine::report::EvaluationReport>],
    color: bool,
) {
    let names: Vec<&str> = gates.iter().map(|g| g.gate.as_str()).collect();
    let _ = writeln!(
        out,
        "{}  train {}  (gates {})",
        render::verdict(train.decision, color),
        train.id,
        names.join(", ")
    );
    let _ = writeln!(out, "  {}", train.reason);
    for gate in gates {
        let _ = writeln!(
            out,
            "\n  gate {}: {}  {}",
            gate.gate,
            decision_word(gate.decision, color),
            gate.reason
        );
        if let Some(e) = gate.evaluation() {
            for line in render::evaluation(e, color).lines() {
                let _ = writeln!(out, "    {line}");
            }
        }
    }
}

/// The facts, history and webhook deliveries below a train's verdict.
fn render_rest(out: &mut String, train: &Train, events: &[Event], now: DateTime<Utc>, color: bool) {
    let mut facts = vec![
        format!("state {}", train.lifecycle),
        format!("seq {}", train.seq),
    ];
    facts.push(format!("started {}", format_time(train.started_at)));
    if let Some(b) = &train.baseline {
        facts.push(format!("baseline {b}"));
    }
    if let Some(at) = train.stopped_at {
        facts.push(format!("stopped {}", format_time(at)));
    }
    if !train.labels.is_empty() {
        let labels: Vec<String> = train
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        facts.push(format!("labels {}", labels.join(",")));
    }
    let _ = writeln!(out, "\n  {}", facts.join(" · "));

    let history: Vec<String> = events
        .iter()
        .rev()
        .filter_map(|e| history_line(e, color))
        .take(HISTORY)
        .collect();
    let _ = writeln!(out, "\nDecisions (latest first):");
    if history.is_empty() {
        let _ = writeln!(out, "  none yet: the train is pending since registration");
    }
    for line in history {
        let _ = writeln!(out, "  {line}");
    }

    let deliveries: Vec<&Delivery> = events
        .iter()
        .filter_map(|e| match e {
            Event::Delivery(d) => Some(d),
            _ => None,
        })
        .collect();
    let _ = writeln!(out, "\nWebhooks:");
    if deliveries.is_empty() {
        let _ = writeln!(out, "  none queued for this train");
    }
    for d in deliveries.iter().rev() {
        let decision = decision_of_seq(events, d.seq)
            .map(|d| format!(" {}", d.as_str()))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  {} #{}{decision}: {}",
            d.webhook,
            d.seq,
            delivery_state(d, now, color)
        );
    }
}

fn last_override_at(events: &[Event]) -> DateTime<Utc> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Override { at, .. } => Some(*at),
            _ => None,
        })
        .max()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

fn history_line(e: &Event, color: bool) -> Option<String> {
    match e {
        Event::Decision {
            seq,
            decision,
            previous,
            reason,
            rule,
            evaluated_at,
            ..
        } => Some(format!(
            "{}  #{seq}  {} → {}  {}{}",
            format_time(*evaluated_at),
            previous.as_str(),
            decision_word(*decision, color),
            rule.as_deref()
                .map(|r| format!("[{r}] "))
                .unwrap_or_default(),
            reason
        )),
        Event::Override {
            seq,
            action,
            decision,
            previous,
            reason,
            actor,
            on_behalf_of,
            at,
        } => Some(format!(
            "{}  #{seq}  {} → {}  override {action} by {}: {reason}",
            format_time(*at),
            previous.as_str(),
            decision_word(*decision, color),
            gate_api::override_by(actor, on_behalf_of.as_deref()),
        )),
        Event::Approval {
            seq,
            reason,
            actor,
            at,
        } => Some(format!(
            "{}  #{seq}  approved by {actor}: {reason}",
            format_time(*at)
        )),
        Event::Stopped { at } => Some(format!("{}  stopped: no longer watched", format_time(*at))),
        _ => None,
    }
}

/// A decision in lower case, coloured like [`render::verdict`].
fn decision_word(d: Decision, color: bool) -> String {
    let code = match d {
        Decision::Promote => "32",
        Decision::Rollback => "31",
        Decision::Pause => "33",
        Decision::Pending => "36",
    };
    paint(d.as_str(), code, color)
}

fn decision_of_seq(events: &[Event], seq: u64) -> Option<Decision> {
    events.iter().find_map(|e| match e {
        Event::Decision {
            seq: s, decision, ..
        }
        | Event::Override {
            seq: s, decision, ..
        } if *s == seq => Some(*decision),
        _ => None,
    })
}

fn attempts(n: u32) -> String {
    if n == 1 {
        "1 attempt".to_string()
    } else {
        format!("{n} attempts")
    }
}

fn delivery_state(d: &Delivery, now: DateTime<Utc>, color: bool) -> String {
    let last_error = || {
        let status = d.last_status.map(|s| format!("HTTP {s}"));
        match (status, d.last_error.as_deref()) {
            (Some(s), Some(e)) => format!("{s}: {e}"),
            (Some(s), None) => s,
            (None, Some(e)) => e.to_string(),
            (None, None) => "unknown".to_string(),
        }
    };
    match d.state {
        DeliveryState::Delivered => format!(
            "{} {}({})",
            paint("delivered", "32", color),
            d.delivered_at
                .map(|t| format!("at {} ", format_time(t)))
                .unwrap_or_default(),
            attempts(d.attempts)
        ),
        DeliveryState::Pending if d.attempts == 0 => paint("queued, not sent yet", "36", color),
        DeliveryState::Pending => {
            let t = d.next_attempt_at;
            let secs = (t - now).num_seconds();
            let next = if secs > 0 {
                format!(
                    "next attempt at {} (in {})",
                    format_time(t),
                    render::short_duration(secs)
                )
            } else {
                format!("next attempt due since {}", format_time(t))
            };
            format!(
                "{} after {}, last error: {}; {next}",
                paint("retrying", "33", color),
                attempts(d.attempts),
                last_error()
            )
        }
        DeliveryState::Dead => format!(
            "{} {}after {}, last error: {}",
            paint("DEAD-LETTERED", "1;31", color),
            d.dead_at
                .map(|t| format!("at {} ", format_time(t)))
                .unwrap_or_default(),
            attempts(d.attempts),
            last_error()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gate_api::{Lifecycle, OverrideAction};
    use gate_engine::report::{EvaluationReport, RuleReport, SignalsReport, ThresholdReport};
    use std::collections::BTreeMap;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    const NOW: &str = "2026-11-01T12:00:00Z";

    fn rule(
        name: &str,
        then: Decision,
        fired: Option<bool>,
        thresholds: &[(&str, f64)],
    ) -> RuleReport {
        RuleReport {
            name: name.into(),
            then,
            when: "".into(),
            fired,
            values: Default::default(),
            unknown_reason: None,
            streak: 0,
            for_evaluations: 1,
            dry_run: false,
            thresholds: thresholds
                .iter()
                .map(|(signal, value)| ThresholdReport {
                    signal: signal.to_string(),
                    op: ">".into(),
                    value: *value,
                })
                .collect(),
        }
    }

    fn report(
        train: &str,
        decision: Decision,
        reason: &str,
        burns: &[(&str, Option<f64>)],
    ) -> EvaluationReport {
        let mut signals = SignalsReport::default();
        for (w, v) in burns {
            signals
                .burn_rate
                .entry("checkout-availability".into())
                .or_default()
                .insert(w.to_string(), v.map(Num));
        }
        EvaluationReport {
            train: train.into(),
            gate: "checkout".into(),
            decision,
            reason: reason.into(),
            rule: None,
            evaluated_at: t("2026-11-01T11:59:55Z"),
            started_at: t("2026-11-01T11:00:00Z"),
            age_secs: 3595,
            verify_for_secs: 1800,
            baseline: None,
            baseline_desc: None,
            inconclusive: false,
            telemetry_error: None,
            would_have: None,
            dry_run: false,
            rules: vec![
                rule(
                    "fast-burn",
                    Decision::Rollback,
                    Some(false),
                    &[
                        (r#"burn_rate("checkout-availability", "1h")"#, 14.4),
                        (r#"burn_rate("checkout-availability", "5m")"#, 14.4),
                    ],
                ),
                rule(
                    "slow-burn",
                    Decision::Pause,
                    Some(false),
                    &[
                        (r#"burn_rate("checkout-availability", "6h")"#, 6.0),
                        (r#"burn_rate("checkout-availability", "30m")"#, 6.0),
                    ],
                ),
            ],
            signals,
            queries: Vec::new().into(),
        }
    }

    fn train(
        id: &str,
        decision: Decision,
        started: &str,
        rule: Option<&str>,
        reason: &str,
        eval: Option<EvaluationReport>,
    ) -> Train {
        Train {
            id: gate_rules::train_id::validate(id).unwrap(),
            gate: "checkout".into(),
            started_at: t(started),
            baseline: None,
            labels: BTreeMap::new(),
            lifecycle: match decision {
                Decision::Promote => Lifecycle::Promoted,
                Decision::Rollback => Lifecycle::RolledBack,
                Decision::Pause => Lifecycle::Paused,
                Decision::Pending => Lifecycle::Verifying,
            },
            decision,
            seq: 1,
            reason: reason.into(),
            rule: rule.map(String::from),
            evaluated_at: eval.as_ref().map(|e| e.evaluated_at),
            evaluation: Some(eval),
            registered_at: t(started),
            promoted_at: None,
            stopped_at: None,
            pinned: None,
            consecutive_errors: 0,
            evaluating: true,
            worst_burn: None,
            gates: None,
        }
    }

    fn fleet() -> Vec<Train> {
        let healthy = report(
            "r-101",
            Decision::Promote,
            "verification passed",
            &[
                ("1h", Some(0.5)),
                ("5m", Some(0.52)),
                ("6h", Some(0.5)),
                ("30m", Some(0.5)),
            ],
        );
        let burning = report(
            "r-102",
            Decision::Rollback,
            "fast-burn fired",
            &[
                ("1h", Some(50.0)),
                ("5m", Some(48.0)),
                ("6h", Some(50.0)),
                ("30m", Some(50.0)),
            ],
        );
        let nodata = report(
            "r-105",
            Decision::Pending,
            "inconclusive: no data",
            &[("1h", None), ("5m", None)],
        );
        let burn = |window: &str, value: f64| {
            Some(Some(WorstBurn {
                signal: format!("burn_rate(\"checkout-availability\", \"{window}\")"),
                value,
                threshold: 6.0,
                rule: "slow-burn".into(),
            }))
        };
        let mut fleet = vec![
            train("r-101", Decision::Promote, "2026-11-01T11:30:00Z", None, "verification passed: no rule fired for 30m", Some(healthy)),
            train("r-102", Decision::Rollback, "2026-11-01T11:50:00Z", Some("fast-burn"), "fast-burn: burn_rate(\"checkout-availability\", \"1h\") = 50 > 14.4 and burn_rate(\"checkout-availability\", \"5m\") = 48 > 14.4", Some(burning)),
            train("r-104", Decision::Pending, "2026-11-01T11:58:30Z", None, "registered", None),
            train("r-105", Decision::Pending, "2026-11-01T11:57:00Z", None, "inconclusive: no data", Some(nodata)),
        ];
        fleet[0].worst_burn = burn("6h", 0.5);
        fleet[1].worst_burn = burn("6h", 50.0);
        fleet[3].worst_burn = Some(None);
        fleet
    }

    #[test]
    fn the_worst_burn_reads_value_threshold_and_rule() {
        let mut w = WorstBurn {
            signal: r#"burn_rate("checkout-availability", "6h")"#.into(),
            value: 5.9,
            threshold: 6.0,
            rule: "slow-burn".into(),
        };
        assert!(!breached(&w));
        assert_eq!(burn_text(&w), "5.9 ≤ 6 (slow-burn)");
        w.value = 50.0;
        assert!(breached(&w));
        assert_eq!(burn_text(&w), "50 > 6 (slow-burn)");
    }

    #[test]
    fn list_table_snapshot() {
        insta::assert_snapshot!(render_list(&fleet(), t(NOW), false));
    }

    #[test]
    fn list_table_colours_decisions_only_when_asked() {
        let plain = render_list(&fleet(), t(NOW), false);
        assert!(!plain.contains('\x1b'));
        let colored = render_list(&fleet(), t(NOW), true);
        assert!(colored.contains('\x1b'), "{colored}");
    }

    #[test]
    fn empty_list_says_how_to_register() {
        assert!(render_list(&[], t(NOW), false).contains("gate train start"));
    }

    fn history() -> Vec<Event> {
        vec![
            Event::Registered {
                at: t("2026-11-01T11:50:00Z"),
                registration: gate_api::RegisterRequest {
                    id: "r-102".into(),
                    gate: Some("checkout".into()),
                    gates: None,
                    started_at: None,
                    baseline: None,
                    labels: BTreeMap::new(),
                },
            },
            Event::Decision {
                seq: 1,
                decision: Decision::Rollback,
                previous: Decision::Pending,
                reason: "fast-burn fired".into(),
                rule: Some("fast-burn".into()),
                evaluated_at: t("2026-11-01T11:50:05Z"),
                evidence: serde_json::Value::Null,
            },
            Event::Delivery(Delivery {
                event_id: "e1".into(),
                webhook: "deployer".into(),
                seq: 1,
                state: DeliveryState::Delivered,
                attempts: 1,
                created_at: t("2026-11-01T11:50:05Z"),
                next_attempt_at: t("2026-11-01T11:50:05Z"),
                last_error: None,
                last_status: Some(200),
                delivered_at: Some(t("2026-11-01T11:50:06Z")),
                dead_at: None,
            }),
            Event::Delivery(Delivery {
                event_id: "e2".into(),
                webhook: "pager".into(),
                seq: 1,
                state: DeliveryState::Pending,
                attempts: 3,
                created_at: t("2026-11-01T11:50:05Z"),
                next_attempt_at: t("2026-11-01T12:00:40Z"),
                last_error: Some("connection refused".into()),
                last_status: None,
                delivered_at: None,
                dead_at: None,
            }),
            Event::Delivery(Delivery {
                event_id: "e3".into(),
                webhook: "audit".into(),
                seq: 1,
                state: DeliveryState::Dead,
                attempts: 8,
                created_at: t("2026-11-01T11:50:05Z"),
                next_attempt_at: t("2026-11-01T11:58:00Z"),
                last_error: Some("bad request".into()),
                last_status: Some(400),
                delivered_at: None,
                dead_at: Some(t("2026-11-01T11:58:00Z")),
            }),
        ]
    }

    #[test]
    fn train_view_puts_the_verdict_first_then_history_and_webhooks() {
        let trains = fleet();
        let out = render_train(&trains[1], &history(), t(NOW), false);
        assert!(out.starts_with("ROLLBACK  train r-102"), "{out}");
        let decisions = out.find("Decisions (latest first):").expect("history");
        let webhooks = out.find("Webhooks:").expect("webhooks");
        assert!(decisions < webhooks);
        assert!(
            out.contains(
                "2026-11-01T11:50:05Z  #1  pending → rollback  [fast-burn] fast-burn fired"
            ),
            "{out}"
        );
        assert!(
            out.contains("deployer #1 rollback: delivered at 2026-11-01T11:50:06Z (1 attempt)"),
            "{out}"
        );
        assert!(out.contains("pager #1 rollback: retrying after 3 attempts, last error: connection refused; next attempt at 2026-11-01T12:00:40Z (in 40s)"), "{out}");
        assert!(out.contains("audit #1 rollback: DEAD-LETTERED at 2026-11-01T11:58:00Z after 8 attempts, last error: HTTP 400: bad request"), "{out}");
    }

    #[test]
    fn an_override_is_the_verdict_with_the_evaluation_below_it() {
        let mut trains = fleet();
        let mut r102 = trains.remove(1);
        r102.decision = Decision::Promote;
        r102.reason = "override promote by alice: false alarm".into();
        let mut events = history();
        events.push(Event::Override {
            seq: 2,
            action: OverrideAction::Promote,
            decision: Decision::Promote,
            previous: Decision::Rollback,
            reason: "false alarm".into(),
            actor: "alice".into(),
            on_behalf_of: None,
            at: t("2026-11-01T11:59:58Z"),
        });
        let out = render_train(&r102, &events, t(NOW), false);
        assert!(out.starts_with("PROMOTE  train r-102"), "{out}");
        assert!(
            out.contains("the latest evaluation (2026-11-01T11:59:55Z) said rollback"),
            "{out}"
        );
        assert!(
            out.contains("#2  rollback → promote  override promote by alice: false alarm"),
            "{out}"
        );
    }

    #[test]
    fn an_unevaluated_train_says_so() {
        let trains = fleet();
        let out = render_train(&trains[2], &[], t(NOW), false);
        assert!(out.starts_with("PENDING  train r-104"), "{out}");
        assert!(
            out.contains("not evaluated yet · started 2026-11-01T11:58:30Z (1m ago)"),
            "{out}"
        );
        assert!(out.contains("none queued for this train"), "{out}");
    }
}

/// A train object as `status --format json` prints it: the API object, plus the latest
/// evaluation's `rules` and `signals` at the top level (empty before the first evaluation).
fn with_evidence(train: &serde_json::Value) -> serde_json::Value {
    let mut out = train.clone();
    let evaluation = train.get("evaluation").cloned().unwrap_or_default();
    if let Some(obj) = out.as_object_mut() {
        for key in ["rules", "signals"] {
            let value = evaluation.get(key).cloned().unwrap_or_else(|| match key {
                "rules" => serde_json::json!([]),
                _ => serde_json::json!({
                    "burn_rate": {}, "error_ratio": {}, "requests": {}, "errors": {},
                    "budget_remaining": {}, "error_delta": {}, "since_start": {}
                }),
            });
            obj.insert(key.to_string(), value);
        }
    }
    out
}

#[cfg(test)]
mod evidence_tests {
    use super::*;

    #[test]
    fn status_json_lifts_rules_and_signals_to_the_top() {
        let api = serde_json::json!({
            "train": "t-1", "decision": "rollback",
            "evaluation": {"rules": [{"name": "fast-burn"}], "signals": {"burn_rate": {"a": {"1h": 50.0}}}}
        });
        let shown = with_evidence(&api);
        assert_eq!(shown["rules"][0]["name"], "fast-burn");
        assert_eq!(shown["signals"]["burn_rate"]["a"]["1h"], 50.0);
        assert_eq!(shown["evaluation"], api["evaluation"]);
        let fresh = with_evidence(&serde_json::json!({"train": "t-2", "evaluation": null}));
        assert_eq!(fresh["rules"], serde_json::json!([]));
        assert_eq!(fresh["signals"]["burn_rate"], serde_json::json!({}));
    }
}
