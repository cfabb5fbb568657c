//! `gate outbox redrive`: puts dead-lettered webhook events back in the queue.
//!
//! It works on the store file directly (`--db`), not through the HTTP API, so it also helps
//! when the daemon is down; a running `gate serve` on the same file picks the events up at its
//! next poll (the store is SQLite in WAL mode: the two processes do not block each other for
//! longer than a write). Each redriven event goes back to its place in its train's order with
//! its attempts reset, and is sent with its original ID and body.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use super::train_id;
use crate::exit;

/// Arguments of `gate outbox`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Send dead-lettered webhook events again (every train's, or one train's).
    Redrive {
        /// Only this train's events.
        #[arg(long)]
        train: Option<String>,
        /// The daemon's store.
        #[arg(long, default_value = "gate.db")]
        db: PathBuf,
    },
}

/// Runs `gate outbox`.
pub fn run(args: Args) -> anyhow::Result<i32> {
    match args.command {
        Command::Redrive { train, db } => {
            let n = redrive(&db, train.as_deref(), Utc::now())?;
            let scope = train.map_or_else(String::new, |t| format!(" of train {t}"));
            let noun = if n == 1 { "event" } else { "events" };
            println!("{n} dead-lettered webhook {noun}{scope} queued again");
            Ok(exit::OK)
        }
    }
}

/// Requeues the dead letters of `train` (or all) in the store at `db`, due at `now`.
fn redrive(db: &Path, train: Option<&str>, now: DateTime<Utc>) -> anyhow::Result<u64> {
    let train = train.map(train_id).transpose()?;
    gate_engine::offline::redrive(db, train.as_ref(), now).map_err(super::offline_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_store_or_a_bad_train_id_is_a_usage_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.db");
        let err = redrive(&missing, None, Utc::now()).unwrap_err();
        let exit = err.downcast_ref::<exit::Exit>().unwrap();
        assert_eq!(exit.code, exit::USAGE);
        assert!(exit.message.contains("nope.db"), "{}", exit.message);
        let err = redrive(&missing, Some("not a train id!"), Utc::now()).unwrap_err();
        assert_eq!(err.downcast_ref::<exit::Exit>().unwrap().code, exit::USAGE);
        assert!(!missing.exists(), "no store is created by a typo");
    }
}
