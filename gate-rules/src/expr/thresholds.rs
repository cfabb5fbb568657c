//! Thresholds: the comparisons of a signal against a constant in a rule's condition.
//!
//! `burn_rate("checkout", "1h") > 14.4` compares a signal with a threshold. People reading a
//! verdict want to see each burn rate next to the threshold it is held to, so
//! [`super::compile`] lists those comparisons once, from the AST it has just checked, in
//! [`super::CompiledExpr::thresholds`]. It recognises `call OP number` and `number OP call`
//! (normalised so the signal is on the left), plus field comparisons of `error_delta(...)` such
//! as `error_delta("x").relative > 0.5`. A signal is named by its canonical call, the key of
//! the rule's values.
//! Anything more complex is not a threshold and is simply not listed: the rule's values and
//! outcome remain the evidence.

use std::collections::HashMap;

use cel::common::ast::{operators, Expr, IdedExpr, LiteralValue};
use serde::Serialize;

use crate::vocab::SignalRef;

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

/// The thresholds of a checked expression, in order of appearance. `slots` maps each checked
/// call node to its index in `signals`.
pub(super) fn find(
    root: &IdedExpr,
    slots: &HashMap<u64, usize>,
    signals: &[SignalRef],
) -> Vec<Threshold> {
    let mut out = Vec::new();
    Walk { slots, signals }.walk(root, &mut out);
    out
}

struct Walk<'a> {
    slots: &'a HashMap<u64, usize>,
    signals: &'a [SignalRef],
}

impl Walk<'_> {
    fn walk(&self, e: &IdedExpr, out: &mut Vec<Threshold>) {
        match &e.expr {
            Expr::Call(call) => {
                if let (Some(op), [lhs, rhs]) = (comparison(&call.func_name), call.args.as_slice())
                {
                    if let (Some(signal), Some(value)) = (self.signal_text(lhs), number(rhs)) {
                        out.push(Threshold { signal, op, value });
                        return;
                    }
                    if let (Some(value), Some(signal)) = (number(lhs), self.signal_text(rhs)) {
                        out.push(Threshold {
                            signal,
                            op: mirror(op),
                            value,
                        });
                        return;
                    }
                }
                if let Some(target) = &call.target {
                    self.walk(target, out);
                }
                for arg in &call.args {
                    self.walk(arg, out);
                }
            }
            Expr::Select(select) => self.walk(&select.operand, out),
            _ => {}
        }
    }

    /// A checked call of a rule function as its canonical text, or a field of one.
    fn signal_text(&self, e: &IdedExpr) -> Option<String> {
        if let Some(&index) = self.slots.get(&e.id) {
            return self.signals.get(index).map(ToString::to_string);
        }
        match &e.expr {
            Expr::Select(select) => Some(format!(
                "{}.{}",
                self.signal_text(&select.operand)?,
                select.field
            )),
            _ => None,
        }
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

#[cfg(test)]
mod tests {
    use super::super::compile;
    use super::*;

    /// The thresholds of a condition over the SLOs `checkout`, `x` and `a`.
    fn thresholds(when: &str) -> Vec<Threshold> {
        compile(when, &["checkout", "x", "a"])
            .unwrap_or_else(|e| panic!("{when}: {e:#?}"))
            .thresholds
    }

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
        assert!(compile("burn_rate(", &["checkout"]).is_err());
        assert!(thresholds(r#"burn_rate("a", "1h") > burn_rate("a", "5m")"#).is_empty());
    }
}
