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
