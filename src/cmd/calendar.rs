//! `gate calendar`: when each gate may promote — whether it is open now, the next departure
//! windows (7 days) and the freezes to come — as the server computes them from its config.

use std::fmt::Write as _;

use chrono::SecondsFormat;

use super::Format;
use crate::client::{Calendar, ServerArgs};
use crate::exit;
use crate::render;

/// Arguments of `gate calendar`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Only this gate.
    #[arg(long)]
    pub gate: Option<String>,
    /// Output format (default: human on a terminal, json when piped).
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    #[command(flatten)]
    pub server: ServerArgs,
}

/// Runs `gate calendar`.
pub async fn run(args: Args) -> anyhow::Result<i32> {
    let client = args.server.client()?;
    let answer = client
        .calendar(args.gate.as_deref())
        .await
        .map_err(|e| e.into_exit())?;
    let text = match Format::resolve(args.format) {
        Format::Json => serde_json::to_string_pretty(&answer.raw)? + "\n",
        Format::Human => human(&answer.value),
    };
    render::write_stdout(&text)?;
    Ok(exit::OK)
}

fn time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// The calendar for people: per gate, open or why not, then windows and freezes.
pub fn human(calendar: &Calendar) -> String {
    let mut out = String::new();
    for (i, gate) in calendar.gates.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let now = match &gate.hold {
            None => "open now".to_string(),
            Some(hold) => hold.clone(),
        };
        let _ = writeln!(out, "gate {}: {now}", gate.gate);
        if gate.approval_required {
            let _ = writeln!(out, "  approval required (gate approve ID --reason TEXT)");
        }
        if gate.windows.is_empty() {
            let _ = writeln!(out, "  departures: any time");
        } else {
            let _ = writeln!(out, "  departures until {}:", time(calendar.until));
            for w in &gate.windows {
                let _ = writeln!(
                    out,
                    "    {}  {} – {}  ({})",
                    w.local,
                    time(w.opens),
                    time(w.closes),
                    w.timezone
                );
            }
        }
        for f in &gate.freezes {
            let _ = writeln!(
                out,
                "  freeze {} – {}: {}",
                time(f.from),
                time(f.to),
                f.reason
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use gate_api::calendar::{Freeze, Window};
    use gate_api::GateCalendar;

    fn t(s: &str) -> chrono::DateTime<chrono::Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn the_hold_comes_first_then_windows_and_freezes() {
        let calendar = Calendar {
            at: t("2026-12-01T07:30:00Z"),
            until: t("2026-12-08T07:30:00Z"),
            gates: vec![
                GateCalendar {
                    gate: "checkout".into(),
                    open: false,
                    hold: Some("holding for the departure window: opens Tue 09:00 CET".into()),
                    next_departure: Some(t("2026-12-01T08:00:00Z")),
                    approval_required: true,
                    windows: vec![Window {
                        opens: t("2026-12-01T08:00:00Z"),
                        closes: t("2026-12-01T15:00:00Z"),
                        timezone: "Europe/Berlin".into(),
                        local: "Tue 09:00 CET".into(),
                    }],
                    freezes: vec![Freeze {
                        from: t("2026-12-20T00:00:00Z"),
                        to: t("2027-01-04T00:00:00Z"),
                        reason: "year-end freeze".into(),
                    }],
                },
                GateCalendar {
                    gate: "pricing".into(),
                    open: true,
                    hold: None,
                    next_departure: Some(t("2026-12-01T07:30:00Z")),
                    approval_required: false,
                    windows: vec![],
                    freezes: vec![],
                },
            ],
        };
        assert_eq!(
            human(&calendar),
            "gate checkout: holding for the departure window: opens Tue 09:00 CET\n\
             \x20 approval required (gate approve ID --reason TEXT)\n\
             \x20 departures until 2026-12-08T07:30:00Z:\n\
             \x20   Tue 09:00 CET  2026-12-01T08:00:00Z – 2026-12-01T15:00:00Z  (Europe/Berlin)\n\
             \x20 freeze 2026-12-20T00:00:00Z – 2027-01-04T00:00:00Z: year-end freeze\n\
             \n\
             gate pricing: open now\n\
             \x20 departures: any time\n"
        );
    }
}
