//! The decision function of SPEC §4: one evaluation of one train.
//!
//! It is a pure function from (gate, train age, telemetry outcome, previous state) to a
//! decision with its evidence. The daemon keeps the returned [`TrainState`] between
//! evaluations (for `for`, `resume_after`, consecutive telemetry errors and the rollback latch);
//! `gate eval` calls it in [`Mode::Stateless`] with a fresh state.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::config::{Gate, Slo};
use crate::signals::Signals;

/// What gate tells the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Still verifying.
    Pending,
    /// Verification passed.
    Promote,
    /// Hold the train.
    Pause,
    /// Undo the train (latched).
    Rollback,
}

impl Decision {
    /// All decisions, in severity order.
    pub const ALL: [Decision; 4] = [
        Decision::Pending,
        Decision::Promote,
        Decision::Pause,
        Decision::Rollback,
    ];

    /// The lowercase name used in config, API and CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Pending => "pending",
            Decision::Promote => "promote",
            Decision::Pause => "pause",
            Decision::Rollback => "rollback",
        }
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Decision {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Decision::ALL
            .into_iter()
            .find(|d| d.as_str() == s)
            .ok_or_else(|| format!("unknown decision `{s}` (expected pending, promote, pause or rollback)"))
    }
}

/// Whether `for` and `resume_after` apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `gate eval`: one evaluation, `for`/`resume_after` do not apply.
    Stateless,
    /// `gate serve`: state carries over between evaluations.
    Daemon,
}

/// The outcome of fetching telemetry for one train.
#[derive(Debug, Clone, Copy)]
pub enum Telemetry<'a> {
    /// All queries succeeded (individual series may still be missing).
    Ok(&'a Signals),
    /// A query failed; the message says which and why.
    Failed(&'a str),
}

/// What is remembered about a train between evaluations.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TrainState {
    /// The current decision.
    pub decision: Option<Decision>,
    /// Telemetry failures in a row.
    pub consecutive_errors: u32,
    /// Per rule: consecutive evaluations its condition held.
    pub streaks: BTreeMap<String, u32>,
    /// Clean evaluations in a row while paused by a rule.
    pub clean_streak: u32,
    /// Why the train is paused, if it is.
    pub pause_cause: Option<PauseCause>,
    /// A decision pinned by an operator override (`promote`, `pause`, `rollback`).
    pub pinned: Option<Decision>,
}

/// Why a train is paused: decides how the pause lifts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PauseCause {
    /// A rule fired: lifts after `resume_after` clean evaluations.
    Rule,
    /// Evidence was inconclusive: lifts as soon as it is conclusive.
    Inconclusive,
    /// Telemetry failed repeatedly: lifts at the next successful evaluation.
    Telemetry,
}

/// One rule's outcome in an evaluation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleOutcome {
    /// Rule name.
    pub name: String,
    /// Its `then`.
    pub then: Decision,
    /// `true`, `false`, or `None` when unknown (a signal had no data).
    pub fired: Option<bool>,
    /// Every signal the rule read, by the call as written (e.g. `burn_rate("x", "1h")`), with
    /// its value (`null` for no data).
    pub values: BTreeMap<String, serde_json::Value>,
    /// Why the rule is unknown, if it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unknown_reason: Option<String>,
    /// Consecutive evaluations the condition held (daemon), against the rule's `for`.
    pub streak: u32,
}

/// The result of one evaluation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evaluation {
    /// The decision.
    pub decision: Decision,
    /// One line a person reads at 3 a.m.
    pub reason: String,
    /// The rule that decided, if one did.
    pub rule: Option<String>,
    /// Every rule's outcome.
    pub rules: Vec<RuleOutcome>,
    /// Whether the evidence was inconclusive (unknown rule or too little traffic).
    pub inconclusive: bool,
    /// The telemetry failure, if the evaluation was an error.
    pub telemetry_error: Option<String>,
    /// The state to remember for the next evaluation.
    #[serde(skip)]
    pub state: TrainState,
}

/// Decides one evaluation of one train. See the module docs and SPEC §4.
pub fn decide(
    gate: &Gate,
    slos: &[Slo],
    age_secs: f64,
    telemetry: Telemetry<'_>,
    prev: &TrainState,
    mode: Mode,
) -> Evaluation {
    let _ = (gate, slos, age_secs, telemetry, prev, mode);
    todo!("decide")
}
