//! What one evaluation returns: the decision with its reason, every rule's outcome (the
//! evidence people and webhooks read) and the state to keep.

use std::collections::BTreeMap;

use serde::Serialize;

use super::TrainState;
use crate::sequential::Verdict as TestVerdict;
use crate::vocab::{Decision, SignalValues};

/// One rule's outcome in an evaluation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleOutcome {
    /// Rule name.
    pub name: String,
    /// Its `then`.
    pub then: Decision,
    /// The condition: `true`, `false`, or `None` when unknown (a signal had no data).
    pub fired: Option<bool>,
    /// Whether the rule took effect: its condition held for `for` consecutive evaluations
    /// (daemon) or is true (stateless).
    pub in_effect: bool,
    /// Every signal the rule read, by the call as written (e.g. `burn_rate("x", "1h")`), with
    /// its value (`null` for no data).
    pub values: SignalValues,
    /// Why the rule is unknown, if it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unknown_reason: Option<String>,
    /// Consecutive evaluations the condition held (daemon), against the rule's `for`.
    pub streak: u32,
    /// A dry-run rule: reported, never deciding.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
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
    /// What the decision would have been with the dry-run rules enforced, when that differs.
    pub would_have: Option<Decision>,
    /// This evaluation's verdict of each SLO's sequential test (empty when telemetry failed).
    #[serde(skip)]
    pub verdicts: BTreeMap<String, TestVerdict>,
    /// The state to remember for the next evaluation.
    #[serde(skip)]
    pub state: TrainState,
}
