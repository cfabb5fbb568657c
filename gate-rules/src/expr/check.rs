//! The compile-time checks of a `when` expression: CEL's parse errors positioned in bytes, and
//! one walk over the AST that checks every call of gate's functions (name, arity, literal
//! arguments, SLO names, windows, PromQL), infers static types, and collects the signals and
//! the call nodes that become slots. Every problem becomes an [`ExprError`] with its span.

use std::collections::HashMap;

use cel::common::ast::operators;
use cel::common::ast::{CallExpr, EntryExpr, Expr, LiteralValue, SelectExpr, SourceInfo};
use cel::{IdedExpr, ParseErrors};

use super::functions::{
    all_functions, closest, is_operator, operator_text, Func, Param, Ty, DELTA_FIELDS,
};
use super::ExprError;
use crate::duration::PromDuration;
use crate::query;
use crate::vocab::{Quoted, SignalRef};

/// CEL's parse errors, positioned in bytes.
pub(super) fn parse_errors(src: &str, errors: &ParseErrors) -> Vec<ExprError> {
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

/// Walks the CEL AST once: checks calls, infers types, collects signals and the call nodes
/// that become slots.
pub(super) struct Checker<'a> {
    pub(super) src: &'a str,
    pub(super) info: &'a SourceInfo,
    pub(super) slos: &'a [&'a str],
    pub(super) errors: Vec<ExprError>,
    pub(super) signals: Vec<SignalRef>,
    /// Call node id → index into `signals`.
    pub(super) slots: HashMap<u64, usize>,
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

    pub(super) fn check(&mut self, expr: &IdedExpr) -> Ty {
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
    pub(super) fn check_condition(&mut self, root: &IdedExpr, ty: Ty) {
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
    use super::super::testing::*;
    use super::super::ExprError;
    use crate::vocab::SignalRef;

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
    fn service_functions_are_signals_with_checked_arguments() {
        let c = compiled(
            r#"service_burn_rate("checkout-availability", "1h") > 2 || service_error_ratio("search-latency", "90m") > 0.01"#,
        );
        assert_eq!(
            c.signals,
            vec![
                SignalRef::ServiceBurnRate {
                    slo: "checkout-availability".into(),
                    window: "1h".parse().unwrap()
                },
                SignalRef::ServiceErrorRatio {
                    slo: "search-latency".into(),
                    window: "90m".parse().unwrap()
                },
            ]
        );
        let (e, text) = error(r#"service_burn_rate("checkout-availabilty", "1h") > 2"#);
        assert_eq!(text, r#""checkout-availabilty""#);
        assert_eq!(e.message, "unknown SLO `checkout-availabilty`");
        assert_eq!(
            e.hint.as_deref(),
            Some("did you mean `checkout-availability`?")
        );
        let (e, text) = error(r#"service_error_ratio("checkout-availability", "1 hour") > 0.1"#);
        assert_eq!(text, r#""1 hour""#);
        assert!(e.message.starts_with("bad window:"), "{}", e.message);
        let (e, _) = error(r#"service_burn_rate("checkout-availability") > 2"#);
        assert_eq!(
            e.message,
            "`service_burn_rate` takes 2 arguments, but 1 was given"
        );
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
            "e_value",
            "p_value",
            "ratio_lower",
            "looks",
            "dispersion",
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
