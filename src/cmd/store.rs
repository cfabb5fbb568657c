//! `gate store prune`: deletes old history from the store file, as `gate serve` does every
//! hour — finished trains (done or stopped) whose last change is older than `--retention`,
//! with their decisions and overrides, and webhook events delivered before then. Active
//! trains and events not yet delivered are kept. It works on the file directly, daemon up or
//! down (SQLite in WAL mode: the two do not block each other for longer than a write).

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use gate_rules::duration::PromDuration;

use crate::exit;

/// Arguments of `gate store`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Delete finished trains and delivered webhook events older than --retention.
    Prune {
        /// The daemon's store.
        #[arg(long, default_value = "gate.db")]
        db: PathBuf,
        /// What is kept: history younger than this (the config's `store.retention`).
        #[arg(long, default_value = "90d", value_parser = parse_retention)]
        retention: PromDuration,
    },
}

fn parse_retention(s: &str) -> Result<PromDuration, String> {
    s.parse::<PromDuration>().map_err(|e| e.to_string())
}

/// Runs `gate store`.
pub fn run(args: Args) -> anyhow::Result<i32> {
    match args.command {
        Command::Prune { db, retention } => {
            let line = prune(&db, retention, Utc::now())?;
            println!("{line}");
            Ok(exit::OK)
        }
    }
}

/// Prunes the store at `db` as of `now`; returns the summary line.
fn prune(db: &Path, retention: PromDuration, now: DateTime<Utc>) -> anyhow::Result<String> {
    let cutoff = now
        - chrono::TimeDelta::from_std(retention.as_duration()).unwrap_or(chrono::TimeDelta::MAX);
    let pruned = gate_engine::offline::prune(db, cutoff).map_err(super::offline_error)?;
    Ok(format!(
        "pruned {} finished train(s) ({} decision(s), {} override(s)) and {} delivered \
         webhook event(s) older than {retention}",
        pruned.trains, pruned.decisions, pruned.overrides, pruned.events
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_store_is_a_usage_error_and_is_not_created() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.db");
        let err = prune(&missing, "90d".parse().unwrap(), Utc::now()).unwrap_err();
        assert_eq!(err.downcast_ref::<exit::Exit>().unwrap().code, exit::USAGE);
        assert!(!missing.exists());
    }
}
