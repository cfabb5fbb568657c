//! Thresholds: the comparisons of a signal against a constant in a rule's condition.
//!
//! `burn_rate("checkout", "1h") > 14.4` compares a signal with a threshold. People reading a
//! verdict want to see each burn rate next to the threshold it is held to, so this module
//! finds those comparisons in a `when` expression. It reads the CEL AST of the source
//! (parsed again here, once per rule — callers cache the result) and recognises
//! `call OP number` and `number OP call` (normalised so the signal is on the left), plus field
//! comparisons of `error_delta(...)` such as `error_delta("x").relative > 0.5`.
//! Anything more complex is not a threshold and is simply not listed: the rule's values and
//! outcome remain the evidence.

use cel::common::ast::{operators, Expr, IdedExpr, LiteralValue};
use serde::Serialize;

/// A signal compared against a constant.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Threshold {
    /// The signal as written canonically, e.g. `burn_rate("checkout", "1h")` or
    /// `error_delta("checkout").relative`.
    pub signal: String,
    /// The operator with the signal on the left: `>`, `>=`, `<`, `<=`, `==`, `!=`.
    pub op: &'static str,
    /// The constant.
    pub value: f64,
}

/// The thresholds in a `when` expression, in order of appearance. An expression that does
/// not parse has none.
pub fn thresholds(when: &str) -> Vec<Threshold> {
    let Ok(program) = cel::Program::compile(when) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    walk(program.expression(), &mut out);
    out
}

fn walk(e: &IdedExpr, out: &mut Vec<Threshold>) {
    match &e.expr {
        Expr::Call(call) => {
            if let (Some(op), [lhs, rhs]) = (comparison(&call.func_name), call.args.as_slice()) {
                if let (Some(signal), Some(value)) = (signal_text(lhs), number(rhs)) {
                    out.push(Threshold { signal, op, value });
                    return;
                }
                if let (Some(value), Some(signal)) = (number(lhs), signal_text(rhs)) {
                    out.push(Threshold {
                        signal,
                        op: mirror(op),
                        value,
                    });
                    return;
                }
            }
            if let Some(target) = &call.target {
                walk(target, out);
            }
            for arg in &call.args {
                walk(arg, out);
            }
        }
        Expr::Select(select) => walk(&select.operand, out),
        _ => {}
    }
}

fn comparison(func: &str) -> Option<&'static str> {
    Some(match func {
        operators::GREATER => ">",
        operators::GREATER_EQUALS => ">=",
        operators::LESS => "<",
        operators::LESS_EQUALS => "<=",
        operators::EQUALS => "==",
        operators::NOT_EQUALS => "!=",
        _ => return None,
    })
}

fn mirror(op: &'static str) -> &'static str {
    match op {
        ">" => "<",
        ">=" => "<=",
        "<" => ">",
        "<=" => ">=",
        other => other,
    }
}

fn number(e: &IdedExpr) -> Option<f64> {
    match &e.expr {
        Expr::Literal(LiteralValue::Double(d)) => Some(*d.inner()),
        Expr::Literal(LiteralValue::Int(i)) => Some(*i.inner() as f64),
        Expr::Literal(LiteralValue::UInt(u)) => Some(*u.inner() as f64),
        Expr::Call(call) if call.func_name == operators::NEGATE && call.args.len() == 1 => {
            number(&call.args[0]).map(|v| -v)
        }
        _ => None,
    }
}

/// `fn("a", "b")` with literal string arguments, or a field of one.
fn signal_text(e: &IdedExpr) -> Option<String> {
    match &e.expr {
        Expr::Call(call) if call.target.is_none() && !call.func_name.starts_with('_') => {
            let args: Option<Vec<String>> = call
                .args
                .iter()
                .map(|a| match &a.expr {
                    Expr::Literal(LiteralValue::String(s)) => Some(format!("{:?}", s.inner())),
                    _ => None,
                })
                .collect();
            Some(format!("{}({})", call.func_name, args?.join(", ")))
        }
        Expr::Select(select) => Some(format!(
            "{}.{}",
            signal_text(&select.operand)?,
            select.field
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_signal_comparisons_in_either_order() {
        let t = thresholds(
            r#"burn_rate("checkout", "1h") > 14.4 && 6 <= burn_rate("checkout", "30m") || budget_remaining("checkout") <= 0"#,
        );
        assert_eq!(
            t,
            vec![
                Threshold {
                    signal: r#"burn_rate("checkout", "1h")"#.into(),
                    op: ">",
                    value: 14.4
                },
                Threshold {
                    signal: r#"burn_rate("checkout", "30m")"#.into(),
                    op: ">=",
                    value: 6.0
                },
                Threshold {
                    signal: r#"budget_remaining("checkout")"#.into(),
                    op: "<=",
                    value: 0.0
                },
            ]
        );
    }

    #[test]
    fn finds_delta_fields_and_negative_constants() {
        let t = thresholds(
            r#"error_delta("x").significant && error_delta("x").relative > 0.5 && budget_remaining("x") > -1"#,
        );
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].signal, r#"error_delta("x").relative"#);
        assert_eq!(t[0].value, 0.5);
        assert_eq!(t[1].value, -1.0);
    }

    #[test]
    fn no_thresholds_in_unparsable_or_opaque_conditions() {
        assert!(thresholds("burn_rate(").is_empty());
        assert!(thresholds(r#"burn_rate("a", "1h") > burn_rate("a", "5m")"#).is_empty());
    }
}
