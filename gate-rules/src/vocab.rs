//! The shared vocabulary: the types several modules of `gate-rules` (and the engine, the
//! store, the API and the CLI) speak to one another.
//!
//! This module is a **leaf**: it imports nothing from the crate except [`crate::duration`]
//! (itself a leaf), so every other module can depend on it without creating a cycle. The data
//! flows one way — `config` → `expr` → `query`, `signals` → `math` → `stats`, and `decide` on
//! top — and each of those modules needs some word the others use; those words live here.
//!
//! What belongs here: plain data types that cross module boundaries, with their names,
//! parsing and printing ([`Decision`] and its lowercase spelling, [`SignalRef`] and its
//! canonical call text), and the one trait that lets the rule language read values without
//! knowing where they come from ([`Resolve`]).
//!
//! What does not: behaviour with a single owner. Computing an [`ErrorDelta`] is
//! [`crate::math`]'s job, resolving a [`SignalRef`] against fetched numbers is
//! [`crate::signals`]'s, compiling and evaluating conditions is [`crate::expr`]'s, and the
//! decision table is [`mod@crate::decide`]'s. A type used by one module only stays in that
//! module.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::duration::PromDuration;

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
            .ok_or_else(|| {
                format!("unknown decision `{s}` (expected pending, promote, pause or rollback)")
            })
    }
}

/// What an inconclusive or failing evaluation turns into. Never `promote`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HoldDecision {
    /// Hold the train.
    Pause,
    /// Keep waiting.
    Pending,
}

impl HoldDecision {
    /// The decision this hold maps to.
    pub fn decision(self) -> Decision {
        match self {
            HoldDecision::Pause => Decision::Pause,
            HoldDecision::Pending => Decision::Pending,
        }
    }
}

/// One counter of an SLI: either a selector (the engine wraps it in `increase(...[window])`)
/// or full PromQL containing `$window`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", content = "promql", rename_all = "snake_case")]
pub enum Counter {
    /// A counter selector such as `http_requests_total{code=~"5.."}`.
    Selector(String),
    /// Full PromQL with a `$window` placeholder, e.g. `sum(increase(x[$window])) - sum(...)`.
    Query(String),
}

/// Error and total event counts over some window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Counts {
    /// Bad events.
    pub errors: f64,
    /// All events.
    pub total: f64,
}

/// The train since its start against its baseline over an equal window: the value of
/// `error_delta(slo)`, computed by [`crate::math::error_delta`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ErrorDelta {
    /// `train_ratio - baseline_ratio`.
    pub absolute: f64,
    /// `absolute / baseline_ratio`; `+Inf` when the baseline has no errors and the train has some.
    pub relative: f64,
    /// The e-value of the anytime-valid test that the train's error rate exceeds
    /// `1 + min_effect` times the baseline's, at this evaluation (see `docs/statistics.md`).
    pub e_value: f64,
    /// Anytime-valid p-value: the minimum over the train's looks of `1 / e_value`, at most 1.
    pub p_value: f64,
    /// `p_value < alpha`; unknown to rules when `p_value` is NaN.
    pub significant: bool,
    /// Anytime-valid lower confidence bound (level `1 − alpha`) on the train's error rate
    /// divided by the baseline's; 0 while no ratio is ruled out.
    pub ratio_lower: f64,
    /// Evaluations that carried new traffic on both sides.
    pub looks: u64,
    /// The estimated dispersion of the error counts (1 for Poisson noise); above 1.25 each look
    /// counts less.
    pub dispersion: f64,
    /// The train's error ratio since start.
    pub train_ratio: f64,
    /// The baseline's error ratio.
    pub baseline_ratio: f64,
}

/// A signal a rule reads: one call of a rule function with literal arguments.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(tag = "fn", rename_all = "snake_case")]
pub enum SignalRef {
    /// `burn_rate(slo, window)`
    BurnRate {
        /// SLO name.
        slo: String,
        /// Window.
        window: PromDuration,
    },
    /// `error_ratio(slo, window)`
    ErrorRatio {
        /// SLO name.
        slo: String,
        /// Window.
        window: PromDuration,
    },
    /// `requests(slo, window)`
    Requests {
        /// SLO name.
        slo: String,
        /// Window.
        window: PromDuration,
    },
    /// `errors(slo, window)`
    Errors {
        /// SLO name.
        slo: String,
        /// Window.
        window: PromDuration,
    },
    /// `service_burn_rate(slo, window)`: service-wide, not train-scoped.
    ServiceBurnRate {
        /// SLO name.
        slo: String,
        /// Window.
        window: PromDuration,
    },
    /// `service_error_ratio(slo, window)`: service-wide, not train-scoped.
    ServiceErrorRatio {
        /// SLO name.
        slo: String,
        /// Window.
        window: PromDuration,
    },
    /// `budget_remaining(slo)`
    BudgetRemaining {
        /// SLO name.
        slo: String,
    },
    /// `error_delta(slo)`
    ErrorDelta {
        /// SLO name.
        slo: String,
    },
    /// `age()`
    Age,
    /// `query("promql")`
    Query {
        /// The PromQL as written.
        promql: String,
    },
}

/// The canonical call, as used for the keys of a rule's evaluated values:
/// `burn_rate("checkout-availability", "1h")`, `error_delta("x")`, `age()`, `query("...")`.
/// Windows print in their canonical form (`"90m"` prints as `"1h30m"`).
impl fmt::Display for SignalRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignalRef::BurnRate { slo, window } => {
                write!(f, "burn_rate({}, \"{window}\")", Quoted(slo))
            }
            SignalRef::ErrorRatio { slo, window } => {
                write!(f, "error_ratio({}, \"{window}\")", Quoted(slo))
            }
            SignalRef::Requests { slo, window } => {
                write!(f, "requests({}, \"{window}\")", Quoted(slo))
            }
            SignalRef::Errors { slo, window } => {
                write!(f, "errors({}, \"{window}\")", Quoted(slo))
            }
            SignalRef::ServiceBurnRate { slo, window } => {
                write!(f, "service_burn_rate({}, \"{window}\")", Quoted(slo))
            }
            SignalRef::ServiceErrorRatio { slo, window } => {
                write!(f, "service_error_ratio({}, \"{window}\")", Quoted(slo))
            }
            SignalRef::BudgetRemaining { slo } => write!(f, "budget_remaining({})", Quoted(slo)),
            SignalRef::ErrorDelta { slo } => write!(f, "error_delta({})", Quoted(slo)),
            SignalRef::Age => f.write_str("age()"),
            SignalRef::Query { promql } => write!(f, "query({})", Quoted(promql)),
        }
    }
}

/// A string as a double-quoted CEL literal.
pub(crate) struct Quoted<'a>(pub(crate) &'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"")?;
        for c in self.0.chars() {
            match c {
                '"' => f.write_str("\\\"")?,
                '\\' => f.write_str("\\\\")?,
                '\n' => f.write_str("\\n")?,
                '\r' => f.write_str("\\r")?,
                '\t' => f.write_str("\\t")?,
                c if c.is_control() => write!(f, "\\u{:04x}", c as u32)?,
                c => write!(f, "{c}")?,
            }
        }
        f.write_str("\"")
    }
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

/// Where a compiled condition gets signal values from.
///
/// [`crate::signals::Resolver`] is the real implementation; tests use a table.
pub trait Resolve {
    /// The value of one signal at this evaluation.
    fn resolve(&self, signal: &SignalRef) -> Resolved;
}

/// The three-valued result of a condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Truth {
    /// The condition holds.
    True,
    /// The condition does not hold.
    False,
    /// A signal it needed had no data; the reason names it.
    Unknown(String),
}

/// The value of every signal a rule read, keyed by the call as written, in the order of the
/// calls' text (as a JSON object).
///
/// A sorted vector rather than a `BTreeMap`: a rule reads two or three signals, and every
/// train's latest report keeps one of these per rule — a `BTreeMap` node sized for eleven
/// entries, and a key string of its own, for each (BENCHMARKS.md §11). The keys are the
/// compiled condition's names, shared by every evaluation of the rule.
pub type SignalValues = litemap::LiteMap<Arc<str>, serde_json::Value>;
