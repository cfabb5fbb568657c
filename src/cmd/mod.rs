//! One module per `gate` subcommand. Each `run` returns the process exit code; errors
//! bubble up to `main`, which maps them to exit codes in one place.

pub mod approve;
pub mod calendar;
pub mod check;
pub mod completions;
pub mod demo_data;
pub mod eval;
pub mod import;
pub mod outbox;
pub mod override_;
pub mod replay;
pub mod report;
pub mod serve;
pub mod status;
pub mod store;
pub mod token;
pub mod train;
pub mod wait;

use std::io::IsTerminal;
use std::path::Path;

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

/// A failure on a store file: a missing file is a usage error (exit 2).
pub fn offline_error(e: gate_engine::offline::OfflineError) -> anyhow::Error {
    match e {
        gate_engine::offline::OfflineError::Missing(_) => exit::usage(e.to_string()),
        e => e.into(),
    }
}

/// Parses a time given on the command line: RFC 3339 or unix seconds, to the millisecond
/// (the same parser as the API's `started_at`).
pub use gate_rules::time::parse_time;

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
