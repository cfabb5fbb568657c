//! One module per `gate` subcommand. Each `run` returns the process exit code; errors
//! bubble up to `main`, which maps them to exit codes in one place.

pub mod check;
pub mod completions;
pub mod demo_data;
pub mod eval;
pub mod import;
pub mod outbox;
pub mod override_;
pub mod replay;
pub mod serve;
pub mod status;
pub mod train;
pub mod wait;

use std::io::IsTerminal;
use std::path::Path;

use chrono::{DateTime, Utc};
use gate_rules::config::Config;

use crate::exit;

/// Loads a config for a command that needs a valid one: on errors, prints them all (as
/// `gate check` does) and fails with exit 2.
pub fn load_config(path: &Path) -> anyhow::Result<Config> {
    gate_rules::config::load_file(path).map_err(|err| {
        let text = check::render_errors(&err, std::io::stderr().is_terminal());
        exit::usage(text.trim_end().to_string())
    })
}

/// Parses a time given on the command line: RFC 3339 or unix seconds.
pub fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(secs) = s.parse::<f64>() {
        if secs.is_finite() && secs >= 0.0 {
            let millis = (secs * 1000.0).round() as i64;
            if let Some(t) = DateTime::from_timestamp_millis(millis) {
                return Ok(t);
            }
        }
    }
    Err(format!(
        "`{s}` is not a time: use RFC 3339 (2026-11-01T12:00:00Z) or unix seconds"
    ))
}

/// Validates a train ID from the command line (exit 2 when invalid).
pub fn train_id(s: &str) -> anyhow::Result<gate_rules::TrainId> {
    gate_rules::train_id::validate(s).map_err(|e| exit::usage(e.to_string()))
}

/// Output format of `eval`, `status` and `wait`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A table for people (the default on a terminal).
    Human,
    /// JSON for programs (the default when piped).
    Json,
}

impl Format {
    /// The explicit choice, or `human` on a terminal and `json` when stdout is piped.
    pub fn resolve(choice: Option<Format>) -> Format {
        choice.unwrap_or(if std::io::stdout().is_terminal() {
            Format::Human
        } else {
            Format::Json
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_as_rfc3339_or_unix_seconds() {
        let t = parse_time("2026-11-01T12:00:00Z").unwrap();
        assert_eq!(t.timestamp(), 1_793_534_400);
        assert_eq!(parse_time("1793534400").unwrap(), t);
        assert_eq!(parse_time("2026-11-01T13:00:00+01:00").unwrap(), t);
        assert!(parse_time("yesterday").is_err());
        assert!(parse_time("-5").is_err());
    }
}
