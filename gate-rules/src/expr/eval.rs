//! Evaluating a compiled condition: resolve every signal once, bind the values to the slots
//! `compile` left in the AST, evaluate against the shared environment, and turn CEL's errors
//! into [`Truth::Unknown`] naming the call without data. See the module docs of
//! [`crate::expr`] for why gate's functions are slots rather than registered functions.

use std::collections::HashMap;
use std::sync::Arc;

use cel::common::ast::Expr;
use cel::common::types::CelDouble;
use cel::common::value::{CowVal, Val};
use cel::context::VariableResolver;
use cel::{Context, ExecutionError, IdedExpr, Value};

use super::{CompiledExpr, ENV};
use crate::vocab::{ErrorDelta, Resolve, Resolved, SignalValues, Truth};

impl CompiledExpr {
    /// Evaluates the condition. Returns its truth and the value of every signal read, keyed by
    /// the call as written (e.g. `burn_rate("checkout", "1h")`).
    ///
    /// Each signal is resolved once. Values are JSON numbers (`"NaN"`, `"+Inf"`, `"-Inf"` as
    /// strings), `error_delta` objects, or `null` for no data.
    pub fn evaluate(&self, resolver: &dyn Resolve) -> (Truth, SignalValues) {
        let mut values = SignalValues::with_capacity(self.signals.len());
        let mut slots = Slots {
            values: Vec::with_capacity(self.signals.len()),
            nan: Vec::new(),
        };
        for (index, (signal, name)) in self.signals.iter().zip(&self.names).enumerate() {
            let resolved = resolver.resolve(signal);
            values.insert(Arc::clone(name), resolved_json(&resolved));
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
            // `significant` of a NaN p-value is unknown, not false.
            if !delta.p_value.is_nan() {
                fields.insert("significant".to_string(), Value::Bool(delta.significant));
            }
            Box::<dyn Val>::try_from(Value::from(fields)).ok()
        }
    }
}

fn delta_numbers(delta: &ErrorDelta) -> [(&'static str, f64); 9] {
    [
        ("absolute", delta.absolute),
        ("relative", delta.relative),
        ("e_value", delta.e_value),
        ("p_value", delta.p_value),
        ("ratio_lower", delta.ratio_lower),
        ("looks", delta.looks as f64),
        ("dispersion", delta.dispersion),
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
            // `null` when the p-value is NaN: unknown, as rules see it.
            let significant = if delta.p_value.is_nan() {
                serde_json::Value::Null
            } else {
                serde_json::Value::Bool(delta.significant)
            };
            object.insert("significant".to_string(), significant);
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
pub(super) fn bind_slots(expr: &mut IdedExpr, slots: &HashMap<u64, usize>) {
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

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use crate::vocab::{Resolved, SignalRef, Truth};

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
    fn significant_of_a_nan_p_value_is_unknown() {
        let mut nan_p = delta(2.0, false);
        if let Resolved::Delta(Some(d)) = &mut nan_p {
            d.p_value = f64::NAN;
        }
        let table = Table::default().with(delta_ref(), nan_p);
        for when in [
            r#"error_delta("checkout-availability").significant"#,
            r#"!error_delta("checkout-availability").significant"#,
        ] {
            let (t, values) = compiled(when).evaluate(&table);
            assert!(matches!(t, Truth::Unknown(_)), "{when}: {t:?}");
            let evidence = &values
                .get(r#"error_delta("checkout-availability")"#)
                .unwrap();
            assert_eq!(evidence["significant"], serde_json::Value::Null);
            assert_eq!(evidence["p_value"], "NaN");
        }
        // The other fields still evaluate.
        let t = truth(
            r#"error_delta("checkout-availability").relative > 1.0"#,
            &table,
        );
        assert_eq!(t, Truth::True);
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
            serde_json::to_value(&values).unwrap(),
            serde_json::json!({
                r#"burn_rate("checkout-availability", "1h")"#: "+Inf",
                r#"error_delta("checkout-availability")"#: {
                    "absolute": 0.25, "relative": "+Inf", "e_value": 1000.0, "p_value": 0.001,
                    "significant": true, "ratio_lower": 1.7, "looks": 40.0, "dispersion": 1.0,
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
        use crate::config::{BadOrGood, BaselineKind, Gate, Slo};
        use crate::signals::{Resolver, Signals};
        use crate::vocab::{Counter, Counts, HoldDecision};

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
            min_effect: 0.05,
            evaluation_delay: std::time::Duration::ZERO,
            max_train_age: "7d".parse().unwrap(),
            departures: Vec::new(),
            freezes: Vec::new(),
            approval: crate::config::Approval::None,
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
            verdicts: &std::collections::BTreeMap::new(),
        };
        let (t, values) = c.evaluate(&resolver);
        assert_eq!(
            t,
            Truth::Unknown(r#"no data: burn_rate("checkout-availability", "5m")"#.into())
        );
        let burn_1h = values
            .get(r#"burn_rate("checkout-availability", "1h")"#)
            .unwrap()
            .as_f64()
            .unwrap();
        assert!((burn_1h - 20.0).abs() < 1e-9, "{burn_1h}");
        assert_eq!(
            *values
                .get(r#"burn_rate("checkout-availability", "5m")"#)
                .unwrap(),
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
            verdicts: &std::collections::BTreeMap::new(),
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
}
