//! The rule language: CEL expressions over gate's signal functions.
//!
//! A rule's `when` is a CEL expression such as
//! `burn_rate("checkout-availability", "1h") > 14.4 && error_delta("checkout-availability").significant`.
//! [`compile`] runs when the config is loaded (`config::validate` turns its [`ExprError`]s into
//! positioned diagnostics); [`CompiledExpr::evaluate`] runs in the decision function for every
//! rule of every train at every evaluation, reading values through a
//! [`crate::vocab::Resolve`] (the real one is [`crate::signals::Resolver`]).
//!
//! Compiling checks what CEL itself only finds at run time: every call names one of gate's
//! functions with the right number of **string literal** arguments (so the engine knows every
//! query a rule needs before evaluating it), SLO names exist, windows are durations, `query()`
//! PromQL parses, identifiers do not exist (rules have no variables), and a small type check
//! over the AST: numbers are `double` (comparing them with `int` literals is fine, CEL 0.15
//! compares across numeric types; *arithmetic* across them fails at run time, so it is
//! refused), `error_delta(...)` has the fields of [`crate::vocab::ErrorDelta`], and the whole
//! condition is a `bool`. Every problem is reported, with its byte span in the expression.
//!
//! The design choice a newcomer would question: gate's functions are **not registered on a CEL
//! context**. Because every argument is a literal, each call is a constant of the evaluation,
//! so [`compile`] rewrites each call node into a reference to a hidden slot (`@0`, `@1`, …,
//! names no CEL source can spell) and [`CompiledExpr::evaluate`] resolves every signal once,
//! binds the slots through a `VariableResolver`, and evaluates against one shared standard
//! `Env`. Per evaluation this costs one `Context` (an `Arc` clone) and one boxed value per
//! signal: no function registry is built for each of the 10,000 trains of a cycle. A slot with
//! no data stays unbound, so reading it is a CEL error, which makes the condition *unknown*
//! ([`crate::vocab::Truth::Unknown`] naming the call) — never a default number.
//!
//! Three-valued logic comes from CEL's error semantics, which cel 0.15 implements
//! commutatively (tests below): `false && unknown`, `unknown && false` are false;
//! `true || unknown`, `unknown || true` are true; anything else touching an unknown is unknown.
//! A NaN number, and a NaN field of `error_delta`, count as no data, because CEL's `!=` would
//! otherwise call NaN different from everything.
//!
//! The same pass lists the rule's [`Threshold`]s (`burn_rate(...) > 14.4`) from the checked AST,
//! so reports show each signal next to the constant it is held to without parsing the rule
//! again.
//!
//! The files: `functions` is the table of gate's rule functions, their parameters and the
//! static types; `check` walks the CEL AST once (positions, calls, types) and turns CEL's parse
//! errors into positioned [`ExprError`]s; `thresholds` reads the comparisons out of the checked
//! AST; `eval` binds resolved values to slots and evaluates.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use cel::{Env, IdedExpr};

use crate::vocab::SignalRef;

mod check;
mod eval;
mod functions;
#[cfg(test)]
mod testing;
mod thresholds;

pub use thresholds::Threshold;

/// A compiled `when` condition.
#[derive(Debug, Clone)]
pub struct CompiledExpr {
    /// The expression as written.
    pub source: String,
    /// Every signal it reads, deduplicated, in order of first appearance.
    pub signals: Vec<SignalRef>,
    /// The comparisons of a signal against a constant, in order of appearance.
    pub thresholds: Vec<Threshold>,
    /// The CEL AST with every gate call replaced by its slot, `@<index into signals>`.
    expr: Arc<IdedExpr>,
    /// Each signal's call as written, the key of its value: formatted once, not per
    /// evaluation.
    names: Vec<Arc<str>>,
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

/// The standard CEL environment every rule is parsed and evaluated with, built once.
static ENV: LazyLock<Arc<Env>> = LazyLock::new(|| Arc::new(Env::stdlib()));

/// Compiles a `when` expression: CEL parse, then checks of every call to gate's functions
/// (known function, arity, literal string arguments, SLO names among `slos`, windows are
/// durations, PromQL in `query()` parses) and a type check (the result must be a bool).
/// Returns every problem found.
pub fn compile(when: &str, slos: &[&str]) -> Result<CompiledExpr, Vec<ExprError>> {
    let program = ENV
        .compile(when)
        .map_err(|e| check::parse_errors(when, &e))?;
    let root = program.expression();
    let mut checker = check::Checker {
        src: when,
        info: program.source_info(),
        slos,
        errors: Vec::new(),
        signals: Vec::new(),
        slots: HashMap::new(),
    };
    let ty = checker.check(root);
    checker.check_condition(root, ty);
    if !checker.errors.is_empty() {
        let mut errors = checker.errors;
        errors.sort_by_key(|e| (e.offset, e.len));
        return Err(errors);
    }
    let thresholds = thresholds::find(root, &checker.slots, &checker.signals);
    let mut expr = root.clone();
    eval::bind_slots(&mut expr, &checker.slots);
    Ok(CompiledExpr {
        source: when.to_string(),
        names: checker
            .signals
            .iter()
            .map(|s| s.to_string().into())
            .collect(),
        signals: checker.signals,
        thresholds,
        expr: Arc::new(expr),
    })
}
