//! The rule language: CEL expressions over gate's signal functions.
//!
//! A rule's `when` is a CEL expression such as
//! `burn_rate("checkout-availability", "1h") > 14.4 && error_delta("checkout-availability").significant`.
//! [`compile`] runs when the config is loaded (`config::validate` turns its [`ExprError`]s into
//! positioned diagnostics); [`CompiledExpr::evaluate`] runs in the decision function for every
//! rule of every train at every evaluation, reading values through a [`Resolve`] (the real one
//! is [`crate::signals::Resolver`]).
//!
//! Compiling checks what CEL itself only finds at run time: every call names one of gate's
//! functions with the right number of **string literal** arguments (so the engine knows every
//! query a rule needs before evaluating it), SLO names exist, windows are durations, `query()`
//! PromQL parses, identifiers do not exist (rules have no variables), and a small type check
//! over the AST: numbers are `double` (comparing them with `int` literals is fine, CEL 0.15
//! compares across numeric types; *arithmetic* across them fails at run time, so it is
//! refused), `error_delta(...)` has the fields of [`crate::math::ErrorDelta`], and the whole
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
//! ([`Truth::Unknown`] naming the call) — never a default number.
//!
//! Three-valued logic comes from CEL's error semantics, which cel 0.15 implements
//! commutatively (tests below): `false && unknown`, `unknown && false` are false;
//! `true || unknown`, `unknown || true` are true; anything else touching an unknown is unknown.
//! A NaN number, and a NaN field of `error_delta`, count as no data, because CEL's `!=` would
//! otherwise call NaN different from everything.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, LazyLock};

use cel::common::ast::operators;
use cel::common::ast::{CallExpr, EntryExpr, Expr, LiteralValue, SelectExpr, SourceInfo};
use cel::common::types::CelDouble;
use cel::common::value::{CowVal, Val};
use cel::context::VariableResolver;
use cel::{Context, Env, ExecutionError, IdedExpr, ParseErrors, Value};
use serde::Serialize;

use crate::duration::PromDuration;
use crate::math::ErrorDelta;
use crate::query;
use crate::signals::{Resolved, Resolver};

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

/// The canonical call, as used for the keys of [`CompiledExpr::evaluate`]'s values:
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
            SignalRef::BudgetRemaining { slo } => write!(f, "budget_remaining({})", Quoted(slo)),
            SignalRef::ErrorDelta { slo } => write!(f, "error_delta({})", Quoted(slo)),
            SignalRef::Age => f.write_str("age()"),
            SignalRef::Query { promql } => write!(f, "query({})", Quoted(promql)),
        }
    }
}

/// A string as a double-quoted CEL literal.
struct Quoted<'a>(&'a str);

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

/// Where [`CompiledExpr::evaluate`] gets signal values from.
///
/// [`Resolver`] is the real implementation; tests use a table.
pub trait Resolve {
    /// The value of one signal at this evaluation.
    fn resolve(&self, signal: &SignalRef) -> Resolved;
}

impl Resolve for Resolver<'_> {
    fn resolve(&self, signal: &SignalRef) -> Resolved {
        Resolver::resolve(self, signal)
    }
}

/// A compiled `when` condition.
#[derive(Debug, Clone)]
pub struct CompiledExpr {
    /// The expression as written.
    pub source: String,
    /// Every signal it reads, deduplicated, in order of first appearance.
    pub signals: Vec<SignalRef>,
    /// The CEL AST with every gate call replaced by its slot, `@<index into signals>`.
    expr: Arc<IdedExpr>,
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

/// The standard CEL environment every rule is parsed and evaluated with, built once.
static ENV: LazyLock<Arc<Env>> = LazyLock::new(|| Arc::new(Env::stdlib()));

/// Compiles a `when` expression: CEL parse, then checks of every call to gate's functions
/// (known function, arity, literal string arguments, SLO names among `slos`, windows are
/// durations, PromQL in `query()` parses) and a type check (the result must be a bool).
/// Returns every problem found.
pub fn compile(when: &str, slos: &[&str]) -> Result<CompiledExpr, Vec<ExprError>> {
    let program = ENV.compile(when).map_err(|e| parse_errors(when, &e))?;
    let root = program.expression();
    let mut checker = Checker {
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
    let mut expr = root.clone();
    bind_slots(&mut expr, &checker.slots);
    Ok(CompiledExpr {
        source: when.to_string(),
        signals: checker.signals,
        expr: Arc::new(expr),
    })
}

impl CompiledExpr {
    /// Evaluates the condition. Returns its truth and the value of every signal read, keyed by
    /// the call as written (e.g. `burn_rate("checkout", "1h")`).
    ///
    /// Each signal is resolved once. Values are JSON numbers (`"NaN"`, `"+Inf"`, `"-Inf"` as
    /// strings), `error_delta` objects, or `null` for no data.
    pub fn evaluate(&self, resolver: &dyn Resolve) -> (Truth, BTreeMap<String, serde_json::Value>) {
        let mut values = BTreeMap::new();
        let mut slots = Slots {
            values: Vec::with_capacity(self.signals.len()),
            nan: Vec::new(),
        };
        for (index, signal) in self.signals.iter().enumerate() {
            let resolved = resolver.resolve(signal);
            values.insert(signal.to_string(), resolved_json(&resolved));
            if matches!(resolved, Resolved::Number(Some(x)) if x.is_nan()) {
                slots.nan.push(index);
            }
            slots.values.push(bind(&resolved));
        }
        let mut context = Context::with_env(Arc::clone(&ENV));
        context.set_variable_resolver(&slots);
        let truth = match Value::resolve(&self.expr, &context) {
            Ok(Value::Bool(true)) => Truth::True,
            Ok(Value::Bool(false)) => Truth::False,
            Ok(other) => Truth::Unknown(format!("the condition gave {other:?}, not a bool")),
            Err(error) => Truth::Unknown(self.reason(&error, &slots)),
        };
        (truth, values)
    }

    /// Why an evaluation failed, naming the call without data where there is one.
    fn reason(&self, error: &ExecutionError, slots: &Slots) -> String {
        match error {
            ExecutionError::UndeclaredReference(name) => match slot_index(name)
                .and_then(|i| Some((self.signals.get(i)?, slots.nan.contains(&i))))
            {
                Some((signal, true)) => format!("no data: {signal} is NaN"),
                Some((signal, false)) => format!("no data: {signal}"),
                None => format!("evaluation error: {error}"),
            },
            ExecutionError::NoSuchKey(field) => {
                format!("no data: `.{field}` of error_delta is not a number")
            }
            other => format!("evaluation error: {other}"),
        }
    }
}

/// The values of one evaluation's slots; `None` is no data.
struct Slots {
    values: Vec<Option<Box<dyn Val>>>,
    /// Slots left unbound because their number was NaN.
    nan: Vec<usize>,
}

impl VariableResolver for Slots {
    fn resolve<'b>(&'b self, variable: &str) -> Option<CowVal<'b, 'b>> {
        let value = self.values.get(slot_index(variable)?)?.as_deref()?;
        Some(CowVal::Borrowed(value))
    }
}

fn slot_name(index: usize) -> String {
    format!("@{index}")
}

fn slot_index(name: &str) -> Option<usize> {
    name.strip_prefix('@')?.parse().ok()
}

/// The CEL value of a resolved signal; `None` (unbound) for no data and NaN.
fn bind(resolved: &Resolved) -> Option<Box<dyn Val>> {
    match resolved {
        Resolved::Number(Some(x)) if !x.is_nan() => Some(Box::new(CelDouble::from(*x))),
        Resolved::Number(_) | Resolved::Delta(None) => None,
        Resolved::Delta(Some(delta)) => {
            let mut fields: HashMap<String, Value> = HashMap::with_capacity(6);
            for (name, value) in delta_numbers(delta) {
                // A NaN field is left out: reading it is a CEL error, so the rule is unknown.
                if !value.is_nan() {
                    fields.insert(name.to_string(), Value::Float(value));
                }
            }
            fields.insert("significant".to_string(), Value::Bool(delta.significant));
            Box::<dyn Val>::try_from(Value::from(fields)).ok()
        }
    }
}

fn delta_numbers(delta: &ErrorDelta) -> [(&'static str, f64); 5] {
    [
        ("absolute", delta.absolute),
        ("relative", delta.relative),
        ("p_value", delta.p_value),
        ("train_ratio", delta.train_ratio),
        ("baseline_ratio", delta.baseline_ratio),
    ]
}

/// A resolved signal as evidence JSON.
fn resolved_json(resolved: &Resolved) -> serde_json::Value {
    match resolved {
        Resolved::Number(Some(x)) => number_json(*x),
        Resolved::Number(None) | Resolved::Delta(None) => serde_json::Value::Null,
        Resolved::Delta(Some(delta)) => {
            let mut object = serde_json::Map::new();
            for (name, value) in delta_numbers(delta) {
                object.insert(name.to_string(), number_json(value));
            }
            object.insert(
                "significant".to_string(),
                serde_json::Value::Bool(delta.significant),
            );
            serde_json::Value::Object(object)
        }
    }
}

/// A number as JSON; NaN and infinities (which JSON lacks) as Prometheus spells them.
fn number_json(x: f64) -> serde_json::Value {
    if x.is_nan() {
        "NaN".into()
    } else if x == f64::INFINITY {
        "+Inf".into()
    } else if x == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        serde_json::Number::from_f64(x).map_or(serde_json::Value::Null, serde_json::Value::Number)
    }
}

/// Replaces every checked gate call by a reference to its slot.
fn bind_slots(expr: &mut IdedExpr, slots: &HashMap<u64, usize>) {
    if let Some(&slot) = slots.get(&expr.id) {
        expr.expr = Expr::Ident(slot_name(slot));
        return;
    }
    match &mut expr.expr {
        Expr::Call(call) => {
            if let Some(target) = &mut call.target {
                bind_slots(target, slots);
            }
            for arg in &mut call.args {
                bind_slots(arg, slots);
            }
        }
        Expr::Select(select) => bind_slots(&mut select.operand, slots),
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------------
// Parse errors

/// CEL's parse errors, positioned in bytes.
fn parse_errors(src: &str, errors: &ParseErrors) -> Vec<ExprError> {
    const ANY_EXPRESSION: &str = "{'[', '{', '(', '.', '-', '!', 'true', 'false', 'null', \
                                  NUM_FLOAT, NUM_INT, NUM_UINT, STRING, BYTES, IDENTIFIER}";
    let syntax = errors
        .errors
        .iter()
        .any(|e| e.msg.starts_with("Syntax error"));
    let mut out: Vec<ExprError> = Vec::new();
    for error in &errors.errors {
        // "Incomplete ..." follows a syntax error and says nothing more.
        if syntax && error.msg.starts_with("Incomplete") {
            continue;
        }
        let offset = byte_offset(src, error.pos.0, error.pos.1);
        let message = error
            .msg
            .replace("Syntax error: ", "syntax error: ")
            .replace(ANY_EXPRESSION, "an expression");
        let len = src[offset..].chars().next().map_or(0, char::len_utf8);
        if !out
            .iter()
            .any(|e| e.offset == offset && e.message == message)
        {
            out.push(ExprError {
                offset,
                len,
                message,
                hint: None,
            });
        }
    }
    if out.is_empty() {
        out.push(ExprError {
            offset: 0,
            len: src.len(),
            message: "the expression does not parse".to_string(),
            hint: None,
        });
    }
    out
}

/// The byte offset of a 1-based (line, character column) position.
fn byte_offset(src: &str, line: isize, column: isize) -> usize {
    let (Ok(line), Ok(column)) = (usize::try_from(line), usize::try_from(column)) else {
        return 0;
    };
    if line == 0 {
        return 0;
    }
    let mut start = 0;
    for (index, text) in src.split_inclusive('\n').enumerate() {
        if index + 1 == line {
            let within = text
                .char_indices()
                .nth(column.saturating_sub(1))
                .map_or(text.len(), |(b, _)| b);
            return start + within;
        }
        start += text.len();
    }
    src.len()
}

// ---------------------------------------------------------------------------------------------
// Checks

/// gate's rule functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Func {
    BurnRate,
    ErrorRatio,
    Requests,
    Errors,
    BudgetRemaining,
    ErrorDelta,
    Age,
    Query,
}

/// What an argument of a gate function is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Param {
    Slo,
    Window,
    Promql,
}

impl Param {
    fn name(self) -> &'static str {
        match self {
            Param::Slo => "slo",
            Param::Window => "window",
            Param::Promql => "promql",
        }
    }
}

impl Func {
    const ALL: [Func; 8] = [
        Func::BurnRate,
        Func::ErrorRatio,
        Func::Requests,
        Func::Errors,
        Func::BudgetRemaining,
        Func::ErrorDelta,
        Func::Age,
        Func::Query,
    ];

    fn name(self) -> &'static str {
        match self {
            Func::BurnRate => "burn_rate",
            Func::ErrorRatio => "error_ratio",
            Func::Requests => "requests",
            Func::Errors => "errors",
            Func::BudgetRemaining => "budget_remaining",
            Func::ErrorDelta => "error_delta",
            Func::Age => "age",
            Func::Query => "query",
        }
    }

    fn params(self) -> &'static [Param] {
        match self {
            Func::BurnRate | Func::ErrorRatio | Func::Requests | Func::Errors => {
                &[Param::Slo, Param::Window]
            }
            Func::BudgetRemaining | Func::ErrorDelta => &[Param::Slo],
            Func::Age => &[],
            Func::Query => &[Param::Promql],
        }
    }

    fn returns(self) -> Ty {
        match self {
            Func::ErrorDelta => Ty::Delta,
            _ => Ty::Double,
        }
    }

    fn by_name(name: &str) -> Option<Func> {
        Func::ALL.into_iter().find(|f| f.name() == name)
    }

    /// `burn_rate(slo, window)`.
    fn signature(self) -> String {
        let params: Vec<&str> = self.params().iter().map(|p| p.name()).collect();
        format!("{}({})", self.name(), params.join(", "))
    }

    fn signal(self, args: &[String]) -> Option<SignalRef> {
        let slo = || args.first().cloned();
        let window = || args.get(1)?.parse::<PromDuration>().ok();
        Some(match self {
            Func::BurnRate => SignalRef::BurnRate {
                slo: slo()?,
                window: window()?,
            },
            Func::ErrorRatio => SignalRef::ErrorRatio {
                slo: slo()?,
                window: window()?,
            },
            Func::Requests => SignalRef::Requests {
                slo: slo()?,
                window: window()?,
            },
            Func::Errors => SignalRef::Errors {
                slo: slo()?,
                window: window()?,
            },
            Func::BudgetRemaining => SignalRef::BudgetRemaining { slo: slo()? },
            Func::ErrorDelta => SignalRef::ErrorDelta { slo: slo()? },
            Func::Age => SignalRef::Age,
            Func::Query => SignalRef::Query {
                promql: args.first()?.clone(),
            },
        })
    }
}

/// The fields of `error_delta(...)` and their types.
const DELTA_FIELDS: [(&str, Ty); 6] = [
    ("absolute", Ty::Double),
    ("relative", Ty::Double),
    ("p_value", Ty::Double),
    ("significant", Ty::Bool),
    ("train_ratio", Ty::Double),
    ("baseline_ratio", Ty::Double),
];

/// The static type of a sub-expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ty {
    Bool,
    Int,
    Uint,
    Double,
    String,
    Bytes,
    Null,
    /// `error_delta(...)`.
    Delta,
    /// Not known: a problem was already reported for it, so it is compatible with anything.
    Unknown,
}

impl Ty {
    fn numeric(self) -> bool {
        matches!(self, Ty::Int | Ty::Uint | Ty::Double)
    }

    /// "a double", "an int", ...
    fn article(self) -> &'static str {
        match self {
            Ty::Bool => "a bool",
            Ty::Int => "an int",
            Ty::Uint => "a uint",
            Ty::Double => "a double",
            Ty::String => "a string",
            Ty::Bytes => "bytes",
            Ty::Null => "null",
            Ty::Delta => "an error_delta",
            Ty::Unknown => "unknown",
        }
    }

    /// How to turn a value of this type into the bool a condition needs.
    fn bool_hint(self) -> Option<String> {
        match self {
            Ty::Int | Ty::Uint | Ty::Double => {
                Some("compare it with a threshold, e.g. `burn_rate(\"slo\", \"1h\") > 14.4`".into())
            }
            Ty::Delta => {
                Some("use one of its fields, e.g. `.significant` or `.relative > 0.5`".into())
            }
            _ => None,
        }
    }
}

fn is_operator(name: &str) -> bool {
    name.starts_with('_')
        || name.starts_with('@')
        || name == operators::LOGICAL_NOT
        || name == operators::NEGATE
}

/// An operator as written in CEL source.
fn operator_text(name: &str) -> &str {
    match name {
        operators::LOGICAL_NOT => "!",
        operators::NEGATE => "-",
        operators::IN => "in",
        operators::INDEX | operators::OPT_INDEX => "[]",
        operators::OPT_SELECT => ".?",
        operators::CONDITIONAL => "?:",
        _ => name.trim_matches('_'),
    }
}

/// The closest candidate to `word`, if it is close enough to be a likely typo.
fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    crate::hint::closest(word, candidates, 2)
}

fn all_functions() -> String {
    Func::ALL
        .iter()
        .map(|f| f.signature())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Walks the CEL AST once: checks calls, infers types, collects signals and the call nodes
/// that become slots.
struct Checker<'a> {
    src: &'a str,
    info: &'a SourceInfo,
    slos: &'a [&'a str],
    errors: Vec<ExprError>,
    signals: Vec<SignalRef>,
    /// Call node id → index into `signals`.
    slots: HashMap<u64, usize>,
}

impl Checker<'_> {
    fn error(&mut self, span: (usize, usize), message: String, hint: Option<String>) {
        let (start, end) = span;
        self.errors.push(ExprError {
            offset: start,
            len: end.saturating_sub(start),
            message,
            hint,
        });
    }

    /// The byte range `[start, end)` of one node's token.
    fn token(&self, id: u64) -> Option<(usize, usize)> {
        let (start, stop) = self.info.offset_for(id)?;
        let (start, end) = (start as usize, stop as usize + 1);
        (end <= self.src.len()
            && self.src.is_char_boundary(start)
            && self.src.is_char_boundary(end))
        .then_some((start, end))
    }

    /// The whole expression, where a node has no position.
    fn everything(&self) -> (usize, usize) {
        (0, self.src.len())
    }

    /// The function name of a global call (its node sits on the `(`).
    fn name_span(&self, expr: &IdedExpr, name: &str) -> Option<(usize, usize)> {
        let (paren, _) = self.token(expr.id)?;
        let before = self.src[..paren].trim_end();
        before
            .ends_with(name)
            .then(|| (before.len() - name.len(), before.len()))
    }

    /// The field name of a selection (its node sits on the `.`).
    fn field_span(&self, expr: &IdedExpr, field: &str) -> Option<(usize, usize)> {
        let (_, dot_end) = self.token(expr.id)?;
        let after = &self.src[dot_end..];
        let start = dot_end + (after.len() - after.trim_start().len());
        self.src[start..]
            .starts_with(field)
            .then(|| (start, start + field.len()))
    }

    /// The byte range of a whole sub-expression (without enclosing parentheses).
    fn extent(&self, expr: &IdedExpr) -> (usize, usize) {
        let (mut start, mut end) = self.token(expr.id).unwrap_or((usize::MAX, 0));
        let mut include = |(s, e): (usize, usize)| {
            start = start.min(s);
            end = end.max(e);
        };
        match &expr.expr {
            Expr::Call(call) => {
                if let Some(target) = &call.target {
                    include(self.extent(target));
                }
                for arg in &call.args {
                    include(self.extent(arg));
                }
                if !is_operator(&call.func_name) {
                    if call.target.is_none() {
                        if let Some(span) = self.name_span(expr, &call.func_name) {
                            include(span);
                        }
                    }
                    end = self.closing(end, ')');
                }
            }
            Expr::Select(select) => {
                include(self.extent(&select.operand));
                if let Some(span) = self.field_span(expr, &select.field) {
                    include(span);
                }
            }
            Expr::List(list) => {
                for element in &list.elements {
                    include(self.extent(element));
                }
                end = self.closing(end, ']');
            }
            Expr::Map(map) => {
                for entry in &map.entries {
                    if let EntryExpr::MapEntry(entry) = &entry.expr {
                        include(self.extent(&entry.key));
                        include(self.extent(&entry.value));
                    }
                }
                end = self.closing(end, '}');
            }
            _ => {}
        }
        if start > end {
            self.everything()
        } else {
            (start, end)
        }
    }

    /// `end` moved past `bracket` when only whitespace comes before it.
    fn closing(&self, end: usize, bracket: char) -> usize {
        let rest = self.src.get(end..).unwrap_or_default();
        let trimmed = rest.trim_start();
        if trimmed.starts_with(bracket) {
            end + (rest.len() - trimmed.len()) + bracket.len_utf8()
        } else {
            end
        }
    }

    fn check(&mut self, expr: &IdedExpr) -> Ty {
        match &expr.expr {
            Expr::Literal(literal) => match literal {
                LiteralValue::Boolean(_) => Ty::Bool,
                LiteralValue::Int(_) => Ty::Int,
                LiteralValue::UInt(_) => Ty::Uint,
                LiteralValue::Double(_) => Ty::Double,
                LiteralValue::String(_) => Ty::String,
                LiteralValue::Bytes(_) => Ty::Bytes,
                LiteralValue::Null => Ty::Null,
            },
            Expr::Ident(name) => {
                self.unknown_identifier(expr, name);
                Ty::Unknown
            }
            Expr::Select(select) => self.check_select(expr, select),
            Expr::Call(call) => self.check_call(expr, call),
            Expr::List(_) => self.unsupported(expr, "lists are"),
            Expr::Map(_) => self.unsupported(expr, "maps are"),
            Expr::Struct(_) => self.unsupported(expr, "messages are"),
            Expr::Comprehension(_) => {
                self.unsupported(expr, "macros such as all(), exists() and map() are")
            }
            Expr::Unspecified => self.unsupported(expr, "this expression is"),
        }
    }

    fn unsupported(&mut self, expr: &IdedExpr, what: &str) -> Ty {
        let span = self.extent(expr);
        self.error(span, format!("{what} not supported in gate rules"), None);
        Ty::Unknown
    }

    fn unknown_identifier(&mut self, expr: &IdedExpr, name: &str) {
        let span = self.token(expr.id).unwrap_or_else(|| self.everything());
        let hint = if let Some(func) = Func::by_name(name) {
            format!("call it: `{}`", func.signature())
        } else if let Some(literal) = ["true", "false", "null"]
            .into_iter()
            .find(|l| l.eq_ignore_ascii_case(name))
        {
            format!("did you mean `{literal}`?")
        } else if let Some(func) = closest(name, Func::ALL.iter().map(|f| f.name())) {
            let func = Func::by_name(func).map_or_else(String::new, Func::signature);
            format!("did you mean `{func}`?")
        } else {
            format!(
                "rules have no variables; they read signals with {}",
                all_functions()
            )
        };
        self.error(span, format!("unknown name `{name}`"), Some(hint));
    }

    fn check_select(&mut self, expr: &IdedExpr, select: &SelectExpr) -> Ty {
        if select.test {
            return self.unsupported(expr, "has() is");
        }
        let operand = self.check(&select.operand);
        let field = select.field.as_str();
        let span = self
            .field_span(expr, field)
            .unwrap_or_else(|| self.extent(expr));
        match operand {
            Ty::Delta => {
                if let Some((_, ty)) = DELTA_FIELDS.iter().find(|(name, _)| *name == field) {
                    return *ty;
                }
                let names = DELTA_FIELDS.iter().map(|(name, _)| *name);
                let hint = match closest(field, names.clone()) {
                    Some(name) => format!("did you mean `{name}`?"),
                    None => format!("its fields are {}", names.collect::<Vec<_>>().join(", ")),
                };
                self.error(
                    span,
                    format!("error_delta has no field `{field}`"),
                    Some(hint),
                );
            }
            Ty::Unknown => {}
            other => self.error(
                span,
                format!(
                    "`.{field}` on {}: only error_delta(...) has fields",
                    other.article()
                ),
                None,
            ),
        }
        Ty::Unknown
    }

    fn check_call(&mut self, expr: &IdedExpr, call: &CallExpr) -> Ty {
        let name = call.func_name.as_str();
        let args = &call.args;
        if call.target.is_none() {
            if let Some(func) = Func::by_name(name) {
                return self.check_gate_call(expr, call, func);
            }
        }
        match (name, args.len(), &call.target) {
            (operators::LOGICAL_AND | operators::LOGICAL_OR, 2, None) => {
                for arg in args {
                    let ty = self.check(arg);
                    self.expect_bool(arg, ty, operator_text(name));
                }
                Ty::Bool
            }
            (operators::LOGICAL_NOT, 1, None) => {
                let ty = self.check(&args[0]);
                self.expect_bool(&args[0], ty, "!");
                Ty::Bool
            }
            (operators::NEGATE, 1, None) => match self.check(&args[0]) {
                ty @ (Ty::Int | Ty::Double | Ty::Unknown) => ty,
                ty => {
                    let span = self.extent(expr);
                    self.error(span, format!("cannot negate {}", ty.article()), None);
                    Ty::Unknown
                }
            },
            (operators::CONDITIONAL, 3, None) => {
                let cond = self.check(&args[0]);
                self.expect_bool(&args[0], cond, "?:");
                let (a, b) = (self.check(&args[1]), self.check(&args[2]));
                match (a, b) {
                    _ if a == b => a,
                    (Ty::Unknown, other) | (other, Ty::Unknown) => other,
                    _ => {
                        let span = self.extent(expr);
                        self.error(
                            span,
                            format!(
                                "the branches of `?:` have different types: {} and {}",
                                a.article(),
                                b.article()
                            ),
                            a.numeric()
                                .then(|| "write numbers as doubles, e.g. `1.0`".to_string()),
                        );
                        Ty::Unknown
                    }
                }
            }
            (operators::EQUALS | operators::NOT_EQUALS, 2, None) => {
                let (a, b) = (self.check(&args[0]), self.check(&args[1]));
                let fine = a == b && a != Ty::Delta
                    || a.numeric() && b.numeric()
                    || a == Ty::Unknown
                    || b == Ty::Unknown;
                if !fine {
                    self.compare_error(expr, name, a, b);
                }
                Ty::Bool
            }
            (
                operators::LESS
                | operators::LESS_EQUALS
                | operators::GREATER
                | operators::GREATER_EQUALS,
                2,
                None,
            ) => {
                let (a, b) = (self.check(&args[0]), self.check(&args[1]));
                let fine = a.numeric() && b.numeric()
                    || a == b && matches!(a, Ty::String | Ty::Bytes)
                    || a == Ty::Unknown
                    || b == Ty::Unknown;
                if !fine {
                    self.compare_error(expr, name, a, b);
                }
                Ty::Bool
            }
            (
                operators::ADD
                | operators::SUBSTRACT
                | operators::MULTIPLY
                | operators::DIVIDE
                | operators::MODULO,
                2,
                None,
            ) => {
                let (a, b) = (self.check(&args[0]), self.check(&args[1]));
                self.check_arithmetic(expr, name, a, b)
            }
            _ => {
                let span = if is_operator(name) {
                    self.extent(expr)
                } else if call.target.is_none() {
                    self.name_span(expr, name)
                        .unwrap_or_else(|| self.extent(expr))
                } else {
                    self.method_span(expr, call)
                };
                if is_operator(name) {
                    self.error(
                        span,
                        format!("`{}` is not supported in gate rules", operator_text(name)),
                        None,
                    );
                } else if let Some(func) = Func::by_name(name) {
                    self.error(
                        span,
                        format!("`{name}` is a function, not a method"),
                        Some(format!("call it as `{}`", func.signature())),
                    );
                } else {
                    let hint = match closest(name, Func::ALL.iter().map(|f| f.name())) {
                        Some(close) => format!("did you mean `{close}`?"),
                        None => format!("gate's functions are {}", all_functions()),
                    };
                    self.error(span, format!("unknown function `{name}`"), Some(hint));
                }
                if let Some(target) = &call.target {
                    self.check(target);
                }
                for arg in args {
                    self.check(arg);
                }
                Ty::Unknown
            }
        }
    }

    /// The name of a method call `x.name(...)`: between the target and the `(`.
    fn method_span(&self, expr: &IdedExpr, call: &CallExpr) -> (usize, usize) {
        let Some((paren, _)) = self.token(expr.id) else {
            return self.extent(expr);
        };
        let before = self.src[..paren].trim_end();
        if before.ends_with(call.func_name.as_str()) {
            (before.len() - call.func_name.len(), before.len())
        } else {
            self.extent(expr)
        }
    }

    fn expect_bool(&mut self, arg: &IdedExpr, ty: Ty, operator: &str) {
        if ty != Ty::Bool && ty != Ty::Unknown {
            let span = self.extent(arg);
            self.error(
                span,
                format!(
                    "`{operator}` needs a bool here, but this is {}",
                    ty.article()
                ),
                ty.bool_hint(),
            );
        }
    }

    fn compare_error(&mut self, expr: &IdedExpr, name: &str, a: Ty, b: Ty) {
        let span = self.extent(expr);
        let hint = if a == Ty::Delta || b == Ty::Delta {
            Some(
                "compare one of its fields, e.g. `error_delta(\"slo\").relative > 0.5`".to_string(),
            )
        } else if a == Ty::Bool || b == Ty::Bool {
            Some("use the bool directly, e.g. `error_delta(\"slo\").significant`".to_string())
        } else {
            None
        };
        self.error(
            span,
            format!(
                "`{}` cannot compare {} with {}",
                operator_text(name),
                a.article(),
                b.article()
            ),
            hint,
        );
    }

    fn check_arithmetic(&mut self, expr: &IdedExpr, name: &str, a: Ty, b: Ty) -> Ty {
        let op = operator_text(name);
        match (a, b) {
            (Ty::Unknown, other) | (other, Ty::Unknown) => other,
            _ if a == b && a.numeric() => {
                if name == operators::MODULO && a == Ty::Double {
                    let span = self.extent(expr);
                    self.error(span, "`%` needs integers, not doubles".to_string(), None);
                    return Ty::Unknown;
                }
                a
            }
            (Ty::String, Ty::String) | (Ty::Bytes, Ty::Bytes) if name == operators::ADD => a,
            _ if a.numeric() && b.numeric() => {
                let span = self.extent(expr);
                self.error(
                    span,
                    format!(
                        "`{op}` mixes {} and {}: CEL does not convert numbers in arithmetic",
                        a.article(),
                        b.article()
                    ),
                    Some("write whole numbers as doubles, e.g. `2.0` instead of `2`".to_string()),
                );
                if a == Ty::Double || b == Ty::Double {
                    Ty::Double
                } else {
                    Ty::Unknown
                }
            }
            _ => {
                let span = self.extent(expr);
                self.error(
                    span,
                    format!("`{op}` cannot combine {} and {}", a.article(), b.article()),
                    None,
                );
                Ty::Unknown
            }
        }
    }

    /// Checks a call of one of gate's functions; a valid one becomes a signal and a slot.
    fn check_gate_call(&mut self, expr: &IdedExpr, call: &CallExpr, func: Func) -> Ty {
        let params = func.params();
        let name_span = self
            .name_span(expr, func.name())
            .unwrap_or_else(|| self.extent(expr));
        if call.args.len() != params.len() {
            let expected = match params.len() {
                0 => "no arguments".to_string(),
                1 => "1 argument".to_string(),
                n => format!("{n} arguments"),
            };
            self.error(
                name_span,
                format!(
                    "`{}` takes {expected}, but {} {} given",
                    func.name(),
                    call.args.len(),
                    if call.args.len() == 1 { "was" } else { "were" }
                ),
                Some(format!("write `{}`", self.example(func))),
            );
            for arg in &call.args {
                if string_literal(arg).is_none() {
                    self.check(arg);
                }
            }
            return func.returns();
        }

        let mut values = Vec::with_capacity(params.len());
        let mut valid = true;
        for (arg, param) in call.args.iter().zip(params) {
            let Some(value) = string_literal(arg) else {
                valid = false;
                self.check(arg);
                let span = self.extent(arg);
                self.error(
                    span,
                    format!(
                        "the {} of `{}` must be a string literal, e.g. {}",
                        param.name(),
                        func.name(),
                        self.param_example(*param)
                    ),
                    Some(
                        "gate plans every query before evaluating a rule, so arguments cannot be computed"
                            .to_string(),
                    ),
                );
                continue;
            };
            let span = self.token(arg.id).unwrap_or_else(|| self.extent(arg));
            valid &= self.check_argument(*param, value, span);
            values.push(value.to_string());
        }
        if valid {
            if let Some(signal) = func.signal(&values) {
                let index = match self.signals.iter().position(|s| *s == signal) {
                    Some(index) => index,
                    None => {
                        self.signals.push(signal);
                        self.signals.len() - 1
                    }
                };
                self.slots.insert(expr.id, index);
            }
        }
        func.returns()
    }

    /// Checks one literal argument; reports and returns `false` when it is invalid.
    fn check_argument(&mut self, param: Param, value: &str, span: (usize, usize)) -> bool {
        match param {
            Param::Slo => {
                if self.slos.contains(&value) {
                    return true;
                }
                let hint = match closest(value, self.slos.iter().copied()) {
                    Some(close) => format!("did you mean `{close}`?"),
                    None if self.slos.is_empty() => "no SLOs are defined".to_string(),
                    None => format!("known SLOs: {}", self.slos.join(", ")),
                };
                self.error(span, format!("unknown SLO `{value}`"), Some(hint));
                false
            }
            Param::Window => match value.parse::<PromDuration>() {
                Ok(_) => true,
                Err(error) => {
                    self.error(span, format!("bad window: {error}"), None);
                    false
                }
            },
            Param::Promql => {
                if value.contains(query::WINDOW_PLACEHOLDER) {
                    self.error(
                        span,
                        format!("`{}` has no value in query()", query::WINDOW_PLACEHOLDER),
                        Some("write the range, e.g. `rate(x[5m])`".to_string()),
                    );
                    return false;
                }
                match query::validate_query(value) {
                    Ok(()) => true,
                    Err(error) => {
                        self.error(span, format!("query(): {error}"), None);
                        false
                    }
                }
            }
        }
    }

    fn param_example(&self, param: Param) -> String {
        match param {
            Param::Slo => Quoted(self.slos.first().copied().unwrap_or("my-slo")).to_string(),
            Param::Window => "\"1h\"".to_string(),
            Param::Promql => "\"sum(rate(http_requests_total[5m]))\"".to_string(),
        }
    }

    /// `burn_rate("checkout-availability", "1h")`.
    fn example(&self, func: Func) -> String {
        let args: Vec<String> = func
            .params()
            .iter()
            .map(|p| self.param_example(*p))
            .collect();
        format!("{}({})", func.name(), args.join(", "))
    }

    /// The condition as a whole must be a bool.
    fn check_condition(&mut self, root: &IdedExpr, ty: Ty) {
        if ty != Ty::Bool && ty != Ty::Unknown {
            let span = self.extent(root);
            self.error(
                span,
                format!("the condition must be a bool, but this is {}", ty.article()),
                ty.bool_hint(),
            );
        }
    }
}

/// The text of a string literal argument.
fn string_literal(expr: &IdedExpr) -> Option<&str> {
    match &expr.expr {
        Expr::Literal(LiteralValue::String(s)) => Some(s.inner()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;

    const SLOS: &[&str] = &["checkout-availability", "search-latency"];

    fn compiled(when: &str) -> CompiledExpr {
        compile(when, SLOS).unwrap_or_else(|e| panic!("{when}: {e:#?}"))
    }

    fn errors(when: &str) -> Vec<ExprError> {
        match compile(when, SLOS) {
            Ok(_) => panic!("{when} compiled"),
            Err(errors) => errors,
        }
    }

    /// The only error of `when`, with the text it points at.
    fn error(when: &str) -> (ExprError, &str) {
        let mut all = errors(when);
        assert_eq!(all.len(), 1, "{when}: {all:#?}");
        let e = all.remove(0);
        let text = &when[e.offset..e.offset + e.len];
        (e, text)
    }

    fn burn(window: &str) -> SignalRef {
        SignalRef::BurnRate {
            slo: "checkout-availability".into(),
            window: window.parse().unwrap(),
        }
    }

    fn delta_ref() -> SignalRef {
        SignalRef::ErrorDelta {
            slo: "checkout-availability".into(),
        }
    }

    /// A table of signal values that counts how often each is resolved.
    #[derive(Default)]
    struct Table {
        values: Vec<(SignalRef, Resolved)>,
        calls: RefCell<Vec<SignalRef>>,
    }

    impl Table {
        fn with(mut self, signal: SignalRef, value: Resolved) -> Self {
            self.values.push((signal, value));
            self
        }
    }

    impl Resolve for Table {
        fn resolve(&self, signal: &SignalRef) -> Resolved {
            self.calls.borrow_mut().push(signal.clone());
            self.values
                .iter()
                .find(|(s, _)| s == signal)
                .map_or(Resolved::Number(None), |(_, v)| v.clone())
        }
    }

    fn num(x: f64) -> Resolved {
        Resolved::Number(Some(x))
    }

    fn delta(relative: f64, significant: bool) -> Resolved {
        Resolved::Delta(Some(ErrorDelta {
            absolute: 0.25,
            relative,
            p_value: if significant { 0.001 } else { 0.4 },
            significant,
            train_ratio: 0.5,
            baseline_ratio: 0.25,
        }))
    }

    fn truth(when: &str, table: &Table) -> Truth {
        compiled(when).evaluate(table).0
    }

    // --- compile ------------------------------------------------------------------------------

    #[test]
    fn collects_signals_deduplicated_in_order() {
        let c = compiled(
            r#"burn_rate("checkout-availability", "1h") > 14.4 && burn_rate("checkout-availability", "5m") > 14.4
               || burn_rate("checkout-availability", "60m") > 2.0 && error_delta("checkout-availability").significant
               || age() > 3600.0 && query("sum(rate(x[5m]))") > 1.0 && budget_remaining("search-latency") <= 0.0
               || requests("search-latency", "1d") < 10.0 || errors("search-latency", "1d") > 1.0
               || error_ratio("search-latency", "90m") > 0.1"#,
        );
        assert_eq!(
            c.signals,
            vec![
                burn("1h"),
                burn("5m"),
                delta_ref(),
                SignalRef::Age,
                SignalRef::Query {
                    promql: "sum(rate(x[5m]))".into()
                },
                SignalRef::BudgetRemaining {
                    slo: "search-latency".into()
                },
                SignalRef::Requests {
                    slo: "search-latency".into(),
                    window: "1d".parse().unwrap()
                },
                SignalRef::Errors {
                    slo: "search-latency".into(),
                    window: "1d".parse().unwrap()
                },
                SignalRef::ErrorRatio {
                    slo: "search-latency".into(),
                    window: "90m".parse().unwrap()
                },
            ]
        );
        assert!(c.source.starts_with("burn_rate("));
    }

    #[test]
    fn unknown_function_with_hint() {
        let (e, text) = error(r#"burn_rat("checkout-availability", "1h") > 1.0"#);
        assert_eq!(text, "burn_rat");
        assert_eq!(e.message, "unknown function `burn_rat`");
        assert_eq!(e.hint.as_deref(), Some("did you mean `burn_rate`?"));

        let (e, text) = error(r#"true && size("abc") > 2"#);
        assert_eq!(text, "size");
        assert!(
            e.hint.unwrap().contains("burn_rate(slo, window)"),
            "lists the functions"
        );
    }

    #[test]
    fn unknown_slo_with_hint_at_the_literal() {
        let when = r#"age() > 1.0 && burn_rate("checkout-availabilty", "1h") > 14.4"#;
        let (e, text) = error(when);
        assert_eq!(text, r#""checkout-availabilty""#);
        assert_eq!(e.offset, when.find(r#""checkout-availabilty""#).unwrap());
        assert_eq!(e.message, "unknown SLO `checkout-availabilty`");
        assert_eq!(
            e.hint.as_deref(),
            Some("did you mean `checkout-availability`?")
        );

        let (e, _) = error(r#"budget_remaining("payments") < 0.0"#);
        assert_eq!(
            e.hint.as_deref(),
            Some("known SLOs: checkout-availability, search-latency")
        );
    }

    #[test]
    fn offsets_are_bytes_after_multibyte_text() {
        let when = r#""é☃" == "é☃" && burn_rate("nope", "1h") > 1.0"#;
        let (_, text) = error(when);
        assert_eq!(text, r#""nope""#);
        let (e, _) = error(r#""é☃" == "é☃" && )"#);
        assert_eq!(e.offset, r#""é☃" == "é☃" && "#.len());
        assert_eq!(e.len, 1);
        assert!(e.message.starts_with("syntax error"), "{}", e.message);
    }

    #[test]
    fn bad_window() {
        let (e, text) = error(r#"burn_rate("checkout-availability", "1x") > 1.0"#);
        assert_eq!(text, r#""1x""#);
        assert!(e.message.contains("not a duration"), "{}", e.message);
        let (e, _) = error(r#"requests("checkout-availability", "0s") > 1.0"#);
        assert!(e.message.contains("greater than zero"), "{}", e.message);
    }

    #[test]
    fn arguments_must_be_string_literals() {
        let when = r#"burn_rate("checkout-availability", "1" + "h") > 1.0"#;
        let (e, text) = error(when);
        assert_eq!(text, r#""1" + "h""#);
        assert!(
            e.message.contains("must be a string literal"),
            "{}",
            e.message
        );

        let (_, text) = error(r#"error_delta(1).significant"#);
        assert_eq!(text, "1");
        let (_, text) =
            error(r#"burn_rate(error_delta("checkout-availability").relative, "1h") > 1.0"#);
        assert_eq!(text, r#"error_delta("checkout-availability").relative"#);
    }

    #[test]
    fn wrong_arity() {
        let (e, text) = error(r#"burn_rate("checkout-availability") > 1.0"#);
        assert_eq!(text, "burn_rate");
        assert_eq!(e.message, "`burn_rate` takes 2 arguments, but 1 was given");
        assert_eq!(
            e.hint.as_deref(),
            Some(r#"write `burn_rate("checkout-availability", "1h")`"#)
        );
        let (e, _) = error(r#"age(1) > 1.0"#);
        assert_eq!(e.message, "`age` takes no arguments, but 1 was given");
    }

    #[test]
    fn query_promql_is_validated() {
        assert!(compile(r#"query("sum(rate(x[5m]))") > 1.0"#, SLOS).is_ok());
        let (e, text) = error(r#"query("sum(rate(x[5m])") > 1.0"#);
        assert_eq!(text, r#""sum(rate(x[5m])""#);
        assert!(
            e.message.starts_with("query(): invalid PromQL"),
            "{}",
            e.message
        );
        let (e, _) = error(r#"query("sum(rate(x[$window]))") > 1.0"#);
        assert!(e.message.contains("$window"), "{}", e.message);
    }

    #[test]
    fn type_errors() {
        let b = r#"burn_rate("checkout-availability", "1h")"#;
        for (when, offending, needle) in [
            (
                format!("{b} && true"),
                b.to_string(),
                "`&&` needs a bool here, but this is a double",
            ),
            (
                b.to_string(),
                b.to_string(),
                "the condition must be a bool, but this is a double",
            ),
            (format!("!{b}"), b.to_string(), "`!` needs a bool"),
            (
                r#"error_delta("checkout-availability").significant > 1"#.to_string(),
                r#"error_delta("checkout-availability").significant > 1"#.to_string(),
                "`>` cannot compare a bool with an int",
            ),
            (
                r#"error_delta("checkout-availability") > 0.5"#.to_string(),
                r#"error_delta("checkout-availability") > 0.5"#.to_string(),
                "cannot compare an error_delta with a double",
            ),
            (
                format!("{b} * 2 > 10.0"),
                format!("{b} * 2"),
                "`*` mixes a double and an int",
            ),
            (
                format!("{b} > \"1\""),
                format!("{b} > \"1\""),
                "cannot compare a double with a string",
            ),
            (
                format!("{b} == true"),
                format!("{b} == true"),
                "cannot compare a double with a bool",
            ),
            (format!("{b}.x > 1.0"), "x".to_string(), "`.x` on a double"),
            (
                format!("[{b}] == 1.0"),
                format!("[{b}]"),
                "lists are not supported",
            ),
            (
                format!("{{'a': {b}}} == 1.0"),
                format!("{{'a': {b}}}"),
                "maps are not supported",
            ),
            (
                format!("{b} > 1.0 ? 1.0 : 2"),
                format!("{b} > 1.0 ? 1.0 : 2"),
                "different types",
            ),
        ] {
            let (e, text) = error(&when);
            assert_eq!(text, offending, "{when}");
            assert!(e.message.contains(needle), "{when}: {}", e.message);
        }
    }

    #[test]
    fn error_delta_fields() {
        for field in [
            "absolute",
            "relative",
            "p_value",
            "train_ratio",
            "baseline_ratio",
        ] {
            compiled(&format!(
                r#"error_delta("checkout-availability").{field} > 0.5"#
            ));
        }
        compiled(r#"error_delta("checkout-availability").significant"#);
        let (e, text) = error(r#"error_delta("checkout-availability").relativ > 0.5"#);
        assert_eq!(text, "relativ");
        assert_eq!(e.message, "error_delta has no field `relativ`");
        assert_eq!(e.hint.as_deref(), Some("did you mean `relative`?"));
    }

    #[test]
    fn identifiers_are_errors() {
        let (e, text) = error("age > 3600.0");
        assert_eq!(text, "age");
        assert_eq!(e.hint.as_deref(), Some("call it: `age()`"));
        let (e, _) = error("True");
        assert_eq!(e.hint.as_deref(), Some("did you mean `true`?"));
        let (e, text) = error("threshold < 2.0");
        assert_eq!(text, "threshold");
        assert_eq!(e.message, "unknown name `threshold`");
    }

    #[test]
    fn reports_every_problem_at_once() {
        let when = r#"burn_rat("checkout-availability", "1h") > 1.0 && burn_rate("nope", "1x") > 2.0 && error_delta("search-latency").foo"#;
        let all = errors(when);
        let texts: Vec<&str> = all
            .iter()
            .map(|e| &when[e.offset..e.offset + e.len])
            .collect();
        assert_eq!(
            texts,
            ["burn_rat", r#""nope""#, r#""1x""#, "foo"],
            "{all:#?}"
        );
    }

    #[test]
    fn parse_errors_are_positioned() {
        let when = r#"burn_rate("checkout-availability", "1h") >"#;
        let all = errors(when);
        assert_eq!(all[0].offset, when.len(), "{all:#?}");
        assert!(
            all[0].message.contains("an expression"),
            "{}",
            all[0].message
        );
        let all = errors("a &&\n (b");
        assert_eq!(all[0].offset, "a &&\n (b".len(), "{all:#?}");
    }

    // --- evaluate -----------------------------------------------------------------------------

    #[test]
    fn evaluates_true_false_and_unknown() {
        let when = r#"burn_rate("checkout-availability", "1h") > 14.4"#;
        assert_eq!(
            truth(when, &Table::default().with(burn("1h"), num(20.0))),
            Truth::True
        );
        assert_eq!(
            truth(when, &Table::default().with(burn("1h"), num(1.0))),
            Truth::False
        );
        assert_eq!(
            truth(when, &Table::default()),
            Truth::Unknown(r#"no data: burn_rate("checkout-availability", "1h")"#.into())
        );
        assert_eq!(
            truth(when, &Table::default().with(burn("1h"), num(f64::NAN))),
            Truth::Unknown(r#"no data: burn_rate("checkout-availability", "1h") is NaN"#.into())
        );
        // NaN is unknown even where CEL would call it different from everything.
        let ne = r#"burn_rate("checkout-availability", "1h") != 0.0"#;
        assert!(matches!(
            truth(ne, &Table::default().with(burn("1h"), num(f64::NAN))),
            Truth::Unknown(_)
        ));
    }

    #[test]
    fn short_circuit_in_both_orders() {
        let low = Table::default().with(burn("5m"), num(0.5)); // 1h has no data
        let high = Table::default().with(burn("5m"), num(50.0));
        let unknown = r#"burn_rate("checkout-availability", "1h") > 1.0"#;
        let known = r#"burn_rate("checkout-availability", "5m") > 1.0"#;

        assert_eq!(truth(&format!("{known} && {unknown}"), &low), Truth::False);
        assert_eq!(truth(&format!("{unknown} && {known}"), &low), Truth::False);
        assert_eq!(truth(&format!("{known} || {unknown}"), &high), Truth::True);
        assert_eq!(truth(&format!("{unknown} || {known}"), &high), Truth::True);

        for when in [
            format!("{known} && {unknown}"),
            format!("{unknown} && {known}"),
        ] {
            let t = truth(&when, &high);
            assert_eq!(
                t,
                Truth::Unknown(r#"no data: burn_rate("checkout-availability", "1h")"#.into()),
                "{when}"
            );
        }
        for when in [
            format!("{known} || {unknown}"),
            format!("{unknown} || {known}"),
        ] {
            assert!(matches!(truth(&when, &low), Truth::Unknown(_)), "{when}");
        }
        assert!(matches!(
            truth(&format!("!({unknown})"), &low),
            Truth::Unknown(_)
        ));
    }

    #[test]
    fn numbers_compare_across_int_and_double() {
        let when = r#"burn_rate("checkout-availability", "1h") > 14"#;
        assert_eq!(
            truth(when, &Table::default().with(burn("1h"), num(14.5))),
            Truth::True
        );
        assert_eq!(
            truth(when, &Table::default().with(burn("1h"), num(14.0))),
            Truth::False
        );
        let when = r#"burn_rate("checkout-availability", "1h") >= 14u && burn_rate("checkout-availability", "1h") == 14"#;
        assert_eq!(
            truth(when, &Table::default().with(burn("1h"), num(14.0))),
            Truth::True
        );
        let when = r#"-burn_rate("checkout-availability", "1h") * 2.0 < -1"#;
        assert_eq!(
            truth(when, &Table::default().with(burn("1h"), num(1.0))),
            Truth::True
        );
    }

    #[test]
    fn error_delta_fields_evaluate() {
        let when = r#"error_delta("checkout-availability").significant && error_delta("checkout-availability").relative > 0.5"#;
        assert_eq!(
            truth(
                when,
                &Table::default().with(delta_ref(), delta(f64::INFINITY, true))
            ),
            Truth::True
        );
        assert_eq!(
            truth(when, &Table::default().with(delta_ref(), delta(0.4, true))),
            Truth::False
        );
        assert_eq!(
            truth(when, &Table::default().with(delta_ref(), delta(9.0, false))),
            Truth::False
        );
        assert_eq!(
            truth(
                when,
                &Table::default().with(delta_ref(), Resolved::Delta(None))
            ),
            Truth::Unknown(r#"no data: error_delta("checkout-availability")"#.into())
        );
        let t = truth(
            r#"error_delta("checkout-availability").p_value < 0.01"#,
            &Table::default().with(delta_ref(), delta(f64::NAN, true)),
        );
        assert_eq!(t, Truth::True, "a NaN field does not spoil the others");
        let t = truth(
            r#"error_delta("checkout-availability").relative < 0.5"#,
            &Table::default().with(delta_ref(), delta(f64::NAN, true)),
        );
        assert!(
            matches!(t, Truth::Unknown(ref r) if r.contains("relative")),
            "{t:?}"
        );
        let when = r#"error_delta("checkout-availability").train_ratio - error_delta("checkout-availability").baseline_ratio == error_delta("checkout-availability").absolute"#;
        assert_eq!(
            truth(when, &Table::default().with(delta_ref(), delta(1.0, true))),
            Truth::True
        );
    }

    #[test]
    fn values_are_keyed_by_canonical_call_and_resolved_once() {
        let c = compiled(
            r#"burn_rate("checkout-availability", "60m") > 1.0 && burn_rate("checkout-availability", "1h") > 2.0
               || error_delta("checkout-availability").relative > 0.5 || age() > 1.0
               || query("sum(rate(x{a=\"b\"}[5m]))") > 1.0"#,
        );
        let table = Table::default()
            .with(burn("1h"), num(f64::INFINITY))
            .with(delta_ref(), delta(f64::INFINITY, true))
            .with(SignalRef::Age, num(f64::NAN));
        let (t, values) = c.evaluate(&table);
        assert_eq!(t, Truth::True);
        assert_eq!(table.calls.borrow().len(), 4, "{:?}", table.calls.borrow());
        assert_eq!(
            serde_json::Value::Object(values.into_iter().collect()),
            serde_json::json!({
                r#"burn_rate("checkout-availability", "1h")"#: "+Inf",
                r#"error_delta("checkout-availability")"#: {
                    "absolute": 0.25, "relative": "+Inf", "p_value": 0.001, "significant": true,
                    "train_ratio": 0.5, "baseline_ratio": 0.25
                },
                "age()": "NaN",
                r#"query("sum(rate(x{a=\"b\"}[5m]))")"#: null,
            })
        );
    }

    #[test]
    fn signal_display_round_trips_through_compile() {
        let odd = SignalRef::Query {
            promql: "sum(rate(x{a=\"\\\\\"}[5m]))".into(),
        };
        let text = format!("{odd} > 1.0");
        assert_eq!(compiled(&text).signals, vec![odd]);
        assert_eq!(
            burn("90m").to_string(),
            r#"burn_rate("checkout-availability", "1h30m")"#
        );
        assert_eq!(SignalRef::Age.to_string(), "age()");
    }

    #[test]
    fn evaluates_through_the_real_resolver() {
        use crate::config::{BadOrGood, BaselineKind, Counter, Gate, HoldDecision, Slo};
        use crate::signals::{Counts, Signals};

        let slo = Slo {
            name: "checkout-availability".into(),
            objective: 99.0,
            period: "30d".parse().unwrap(),
            counts: BadOrGood::Errors,
            events: Counter::Selector("errors_total".into()),
            total: Counter::Selector("requests_total".into()),
        };
        let c = compiled(
            r#"burn_rate("checkout-availability", "1h") > 14.4 && burn_rate("checkout-availability", "5m") > 14.4"#,
        );
        let gate = Gate {
            name: "checkout".into(),
            slos: vec![slo.name.clone()],
            interval: "30s".parse().unwrap(),
            verify_for: "30m".parse().unwrap(),
            watch_for: "2h".parse().unwrap(),
            min_requests: 100,
            baseline: BaselineKind::None,
            on_inconclusive: HoldDecision::Pause,
            on_telemetry_error: HoldDecision::Pause,
            max_consecutive_errors: 3,
            resume_after: 4,
            alpha: 0.01,
            rules: Vec::new(),
            dry_run: false,
        };
        let mut signals = Signals::default();
        let counts = Counts {
            errors: 200.0,
            total: 1000.0,
        };
        signals
            .windows
            .insert((slo.name.clone(), "1h".parse().unwrap()), Some(counts));
        let slos = [slo];
        let resolver = Resolver {
            signals: &signals,
            slos: &slos,
            gate: &gate,
        };
        let (t, values) = c.evaluate(&resolver);
        assert_eq!(
            t,
            Truth::Unknown(r#"no data: burn_rate("checkout-availability", "5m")"#.into())
        );
        let burn_1h = values[r#"burn_rate("checkout-availability", "1h")"#]
            .as_f64()
            .unwrap();
        assert!((burn_1h - 20.0).abs() < 1e-9, "{burn_1h}");
        assert_eq!(
            values[r#"burn_rate("checkout-availability", "5m")"#],
            serde_json::Value::Null
        );

        let mut signals = signals.clone();
        signals.windows.insert(
            (slos[0].name.clone(), "5m".parse().unwrap()),
            Some(Counts {
                errors: 1.0,
                total: 1000.0,
            }),
        );
        let resolver = Resolver {
            signals: &signals,
            slos: &slos,
            gate: &gate,
        };
        assert_eq!(c.evaluate(&resolver).0, Truth::False);
    }

    #[test]
    fn compiled_expressions_can_be_shared_across_threads() {
        fn send_sync<T: Send + Sync>(_: &T) {}
        let c = compiled(r#"age() > 60"#);
        send_sync(&c);
        let handle = std::thread::spawn(move || {
            c.evaluate(&Table::default().with(SignalRef::Age, num(61.0)))
                .0
        });
        assert_eq!(handle.join().unwrap(), Truth::True);
    }

    proptest::proptest! {
        /// Whatever the text, compiling reports errors or succeeds; it never panics, and every
        /// error span lies within the text.
        #[test]
        fn compile_never_panics(when in proptest::prelude::any::<String>(), tail in "[ a-z_(\"),.!&|<>=0-9]{0,40}") {
            for text in [when.clone(), format!("burn_rate({tail}"), format!("{when} && {tail}")] {
                if let Err(errors) = compile(&text, SLOS) {
                    proptest::prop_assert!(!errors.is_empty());
                    for e in errors {
                        proptest::prop_assert!(text.get(e.offset..e.offset + e.len).is_some(), "{text:?}: {e:?}");
                    }
                }
            }
        }
    }
}
