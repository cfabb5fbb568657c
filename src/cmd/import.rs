//! `gate import openslo FILE...` and `gate import sloth FILE...`: SLOs written for other tools
//! as a gate config on stdout.
//!
//! The conversion is `gate_rules::import` (pure: text in, config text out); this command reads
//! the files, prints the config, and on refusal prints every `file:line: construct: reason`
//! and exits 2 without printing a config — a partial config would look complete. The printed
//! config is checked with the same loader as `gate check` before it is shown, so what the
//! command prints is always a config `gate check` accepts.

use std::path::PathBuf;

use anyhow::Context as _;
use gate_rules::import::{self, ImportError, Input};
use gate_rules::PromDuration;

use crate::exit;

/// Arguments of `gate import`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// OpenSLO v1 files: SLOs with their SLIs, data sources, alert policies and conditions
    /// (objects may be spread over the files).
    Openslo {
        /// The files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Sloth `prometheus/v1` specs (or `PrometheusServiceLevel` resources).
    Sloth {
        /// The SLO period, as Sloth's --default-slo-period (Sloth's default: 30d).
        #[arg(long)]
        period: Option<PromDuration>,
        /// The files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

/// Runs `gate import`.
pub fn run(args: Args) -> anyhow::Result<i32> {
    let (files, period) = match &args.command {
        Command::Openslo { files } => (files, None),
        Command::Sloth { files, period } => (files, *period),
    };
    let mut texts = Vec::with_capacity(files.len());
    for file in files {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {}", file.display()))
            .map_err(|e| exit::usage(format!("{e:#}")))?;
        texts.push((file.display().to_string(), text));
    }
    let inputs: Vec<Input<'_>> = texts
        .iter()
        .map(|(file, text)| Input { file, text })
        .collect();
    let result = match args.command {
        Command::Openslo { .. } => import::openslo::import(&inputs),
        Command::Sloth { .. } => import::sloth::import(&inputs, period),
    };
    match result {
        Ok(config) => {
            if let Err(err) = gate_rules::config::load_str("(imported)", &config) {
                return Err(anyhow::anyhow!(
                    "the imported config does not pass `gate check`:\n{}\n{config}",
                    err.render_plain()
                ));
            }
            print!("{config}");
            Ok(exit::OK)
        }
        Err(errors) => Err(exit::usage(refusal(&errors))),
    }
}

fn refusal(errors: &[ImportError]) -> String {
    let mut text = String::from("cannot import (nothing was printed):");
    for e in errors {
        text.push_str("\n  ");
        text.push_str(&e.to_string());
    }
    text
}
