//! What the daemon remembers about a train between evaluations ([`TrainState`]): the current
//! decision and why, rule streaks, the pause's cause, an operator's pin and what watches it,
//! and each SLO's anytime-valid test. Stored with the train as JSON; every field has a
//! default, so a state written by an older gate still loads.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::sequential::SequentialState;
use crate::vocab::Decision;

/// What is remembered about a train between evaluations.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
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
    /// Why the train reached its current decision: set when the decision changes, kept while it
    /// stands (a latched rollback keeps reporting the reason that caused it).
    pub decided_reason: Option<String>,
    /// The rule behind the current decision (the rollback or the pause), set with
    /// `decided_reason`.
    pub decided_rule: Option<String>,
    /// Per SLO: the anytime-valid test behind `error_delta`, one look per successful
    /// evaluation. Kept for the train's whole life: restarting it would be a new test.
    pub sequential: BTreeMap<String, SequentialState>,
    /// While a promote override pins the train: which rollback conditions were false since.
    pub pin_watch: Option<PinWatch>,
}

/// The rollback conditions seen false since a promote override: one of them that holds again
/// breaks the pin (a regression that appeared after the operator's call, not the one they
/// overrode).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PinWatch {
    /// The override watched, as recorded in the train's reason (`override promote by …: …`):
    /// a new override starts a new watch.
    pub by: String,
    /// Rollback rules whose condition was false at an evaluation since the override.
    pub seen_false: BTreeSet<String>,
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
