//! `gate outbox redrive`: puts dead-lettered webhook events back in the queue.
//!
//! Against a running daemon it goes through the API (`POST /v1/outbox/redrive`, `--server`),
//! which wakes the deliverer at once. With `--db` it works on the store file of a stopped
//! daemon; while a daemon runs on that file it is refused (the daemon is the store's one
//! writer), so an operator cannot race it. Each redriven event goes back to its place in its
//! train's order with its attempts reset, and is sent with its original ID and body.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use gate_api::RedriveRequest;

use super::train_id;
use crate::client::ServerArgs;
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
        /// The store file of a stopped daemon; without it, the running daemon at --server.
        #[arg(long)]
        db: Option<PathBuf>,
        #[command(flatten)]
        server: ServerArgs,
    },
}

/// Runs `gate outbox`.
pub async fn run(args: Args) -> anyhow::Result<i32> {
    match args.command {
        Command::Redrive { train, db, server } => {
            let n = match db {
                Some(db) => redrive(&db, train.as_deref(), Utc::now())?,
                None => {
                    let request = RedriveRequest {
                        train: train
                            .as_deref()
                            .map(train_id)
                            .transpose()?
                            .map(|id| id.to_string()),
                    };
                    server
                        .client()?
                        .redrive(&request)
                        .await
                        .map_err(|e| e.into_exit())?
                        .value
                        .redriven
                }
            };
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
