//! `gate train start|list|stop`: registering trains with the daemon, listing them, and
//! stopping the watch of one.
//!
//! `start` is what a pipeline calls when a train departs; it is idempotent on the server for
//! the same body, so a retried pipeline step is harmless, and a different body for an ID
//! already registered is refused (exit 2) rather than silently changing what is judged.
//! `list` is the short listing; `gate status` is the one with the evidence.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::{parse_time, status, train_id, Format};
use crate::client::{RegisterRequest, ServerArgs};
use crate::{exit, render};

/// Arguments of `gate train`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Register a train with the daemon, which starts judging it.
    Start {
        /// The train ID (as carried by the train label on its telemetry).
        id: String,
        /// The gate whose rules apply.
        #[arg(long)]
        gate: String,
        /// When the train started (RFC 3339 or unix seconds). Default: now, as the server
        /// registers it.
        #[arg(long, value_parser = parse_time)]
        started_at: Option<DateTime<Utc>>,
        /// The baseline train for `baseline: previous_train`.
        #[arg(long)]
        baseline: Option<String>,
        /// A label shown with the train, `key=value`; repeat for more.
        #[arg(long = "label", value_parser = parse_label)]
        labels: Vec<(String, String)>,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// List the active trains with their decisions (every train with --all).
    List {
        /// Include trains no longer watched (done, stopped).
        #[arg(long)]
        all: bool,
        /// Output format. Default: human on a terminal, json when piped.
        #[arg(long, value_enum)]
        format: Option<Format>,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Stop watching a train; it stays in the history.
    Stop {
        /// The train ID.
        id: String,
        #[command(flatten)]
        server: ServerArgs,
    },
}

/// Parses `key=value`.
fn parse_label(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("`{s}` is not a label: use key=value")),
    }
}

/// Runs `gate train`.
pub async fn run(args: Args) -> anyhow::Result<i32> {
    match args.command {
        Command::Start {
            id,
            gate,
            started_at,
            baseline,
            labels,
            server,
        } => {
            let body = RegisterRequest {
                id: train_id(&id)?.to_string(),
                gate,
                started_at,
                baseline: baseline
                    .as_deref()
                    .map(train_id)
                    .transpose()?
                    .map(|b| b.to_string()),
                labels: labels.into_iter().collect::<BTreeMap<_, _>>(),
            };
            let client = server.client()?;
            let answer = client.register(&body).await.map_err(|e| e.into_exit())?;
            let t = answer.value;
            let verb = if answer.status == reqwest::StatusCode::CREATED {
                "registered"
            } else {
                "already registered (same body):"
            };
            render::write_stdout(&format!(
                "{verb} train {} (gate {}, started {}{}) with {}: {}\n",
                t.id,
                t.gate,
                gate_engine::report::format_time(t.started_at),
                t.baseline
                    .as_ref()
                    .map(|b| format!(", baseline {b}"))
                    .unwrap_or_default(),
                client.server(),
                t.decision.as_str(),
            ))?;
            Ok(exit::OK)
        }
        Command::List {
            all,
            format,
            server,
        } => {
            let client = server.client()?;
            match Format::resolve(format) {
                Format::Json => {
                    let answer = client.trains(all, false).await.map_err(|e| e.into_exit())?;
                    render::write_stdout(&(serde_json::to_string_pretty(&answer.raw)? + "\n"))?
                }
                Format::Human => {
                    let answer = client.trains(all, false).await.map_err(|e| e.into_exit())?;
                    render::write_stdout(&status::render_list(
                        &answer.value,
                        Utc::now(),
                        render::color_stdout(),
                    ))?
                }
            }
            Ok(exit::OK)
        }
        Command::Stop { id, server } => {
            let id = train_id(&id)?;
            let client = server.client()?;
            client.stop(id.as_str()).await.map_err(|e| e.into_exit())?;
            render::write_stdout(&format!(
                "stopped watching train {id}; it stays in the history\n"
            ))?;
            Ok(exit::OK)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_key_equals_value() {
        assert_eq!(
            parse_label("team=payments").unwrap(),
            ("team".to_string(), "payments".to_string())
        );
        assert_eq!(
            parse_label("url=http://x/?a=b").unwrap(),
            ("url".to_string(), "http://x/?a=b".to_string())
        );
        assert!(parse_label("team").is_err());
        assert!(parse_label("=x").is_err());
    }
}
