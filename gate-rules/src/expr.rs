//! The rule language: CEL expressions over gate's signal functions.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use crate::duration::PromDuration;
use crate::signals::Resolver;

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

/// A compiled `when` condition.
#[derive(Debug, Clone)]
pub struct CompiledExpr {
    /// The expression as written.
    pub source: String,
    /// Every signal it reads, deduplicated, in order of first appearance.
    pub signals: Vec<SignalRef>,
    program: Arc<cel::Program>,
}

/// A problem in a `when` expression, positioned within the expression text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExprError {
    /// Byte offset of the problem within the expression.
    pub offset: usize,
    /// Byte length of the offending text (at least 1 where there is text).
    pub len: usize,
    /// What is wrong.
    pub message: String,
    /// How to fix it, e.g. "did you mean `checkout-availability`?".
    pub hint: Option<String>,
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

/// Compiles a `when` expression: CEL parse, then checks of every call to gate's functions
/// (known function, arity, literal string arguments, SLO names among `slos`, windows are
/// durations, PromQL in `query()` parses) and a type check (the result must be a bool).
/// Returns every problem found.
pub fn compile(when: &str, slos: &[&str]) -> Result<CompiledExpr, Vec<ExprError>> {
    let _ = (when, slos);
    todo!("expr::compile")
}

impl CompiledExpr {
    /// Evaluates the condition. Returns its truth and the value of every signal read, keyed by
    /// the call as written (e.g. `burn_rate("checkout", "1h")`).
    pub fn evaluate(&self, resolver: &Resolver<'_>) -> (Truth, BTreeMap<String, serde_json::Value>) {
        let _ = (resolver, &self.program);
        todo!("CompiledExpr::evaluate")
    }
}
