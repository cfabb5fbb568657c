//! Signals: the numbers fetched for one train at one evaluation, and the values rules read.
//!
//! The engine fills a [`Signals`] from Prometheus (counts only: errors and total events over
//! windows); this module derives what the rule functions return — burn rate, error ratio,
//! budget remaining, error delta — using [`crate::math`] and [`crate::stats`]. Missing data,
//! zero traffic and non-finite numbers resolve to *no data* (`None`), which makes a rule
//! unknown: never a silent zero that could promote a train.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::config::{Gate, Slo};
use crate::duration::PromDuration;
use crate::expr::SignalRef;
use crate::math::ErrorDelta;

/// Error and total event counts over some window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Counts {
    /// Bad events.
    pub errors: f64,
    /// All events.
    pub total: f64,
}

/// Everything fetched for one train at one evaluation time. A key that is absent or maps to
/// `None` means Prometheus returned no series for it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Signals {
    /// Seconds since the train started, at the evaluation time.
    pub age_secs: f64,
    /// The train's counts per (SLO, window).
    pub windows: BTreeMap<(String, PromDuration), Option<Counts>>,
    /// The train's counts since it started, per SLO (for `min_requests` and `error_delta`).
    pub since_start: BTreeMap<String, Option<Counts>>,
    /// The baseline's counts over an equal window, per SLO (absent: no baseline configured).
    pub baseline: BTreeMap<String, Option<Counts>>,
    /// Service-wide counts over each SLO's period (for `budget_remaining`).
    pub service: BTreeMap<String, Option<Counts>>,
    /// Results of custom `query("...")` calls, by the PromQL as written in the rule.
    pub queries: BTreeMap<String, Option<f64>>,
    /// What the baseline was, for the evidence (e.g. `train t-122` or `before start`).
    pub baseline_desc: Option<String>,
}

/// A resolved signal value as a rule function returns it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Resolved {
    /// A number, or `None` for no data.
    Number(Option<f64>),
    /// An error delta, or `None` when it cannot be computed.
    Delta(Option<ErrorDelta>),
}

/// Resolves signal references against fetched [`Signals`] for one gate.
#[derive(Debug, Clone, Copy)]
pub struct Resolver<'a> {
    /// The fetched numbers.
    pub signals: &'a Signals,
    /// The SLOs of the config (looked up by name).
    pub slos: &'a [Slo],
    /// The gate being evaluated (for `alpha`).
    pub gate: &'a Gate,
}

impl Resolver<'_> {
    /// The value a rule function returns for `signal`.
    pub fn resolve(&self, signal: &SignalRef) -> Resolved {
        let _ = signal;
        todo!("signals::Resolver::resolve")
    }
}
