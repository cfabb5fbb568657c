//! CEL rule compile + evaluation over arbitrary signal values.
//!
//! Input: the `when` expression, a NUL byte, then bytes that `arbitrary` turns into the values
//! of the signals the expression reads (numbers including NaN and ±Inf, error deltas, no data).
//! Properties, beside "no panic":
//!
//! * a NaN number evaluates exactly like no data (the rule language's documented contract);
//! * no data never decides: when the condition is true or false with every signal missing, it
//!   is the same with the values filled in (three-valued logic is monotone), so a verdict
//!   reached without data cannot be one that data would contradict.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use gate_rules::vocab::{ErrorDelta, Resolve, Resolved, SignalRef, Truth};
use libfuzzer_sys::fuzz_target;

const SLOS: &[&str] = &["checkout-availability", "latency", "a"];

#[derive(Debug, Clone, Arbitrary)]
enum Value {
    Missing,
    Number(f64),
    Special(Special),
    Delta(Delta),
}

#[derive(Debug, Clone, Copy, Arbitrary)]
enum Special {
    Nan,
    PosInf,
    NegInf,
    Zero,
    One,
    Big,
}

#[derive(Debug, Clone, Arbitrary)]
struct Delta {
    absolute: f64,
    relative: f64,
    e_value: f64,
    p_value: f64,
    significant: bool,
    ratio_lower: f64,
    looks: u64,
    dispersion: f64,
    train_ratio: f64,
    baseline_ratio: f64,
}

impl Special {
    fn number(self) -> f64 {
        match self {
            Special::Nan => f64::NAN,
            Special::PosInf => f64::INFINITY,
            Special::NegInf => f64::NEG_INFINITY,
            Special::Zero => 0.0,
            Special::One => 1.0,
            Special::Big => 1e300,
        }
    }
}

/// Values by position in the compiled expression's signal list, shaped as the real resolver
/// shapes them: `error_delta` gives a delta, every other function a number.
struct Table<'a> {
    signals: &'a [SignalRef],
    values: Vec<Value>,
}

impl Table<'_> {
    fn resolved(&self, index: usize, signal: &SignalRef) -> Resolved {
        let value = self.values.get(index).cloned().unwrap_or(Value::Missing);
        let is_delta = matches!(signal, SignalRef::ErrorDelta { .. });
        match (value, is_delta) {
            (Value::Missing, false) => Resolved::Number(None),
            (Value::Missing, true) => Resolved::Delta(None),
            (Value::Number(x), false) => Resolved::Number(Some(x)),
            (Value::Special(s), false) => Resolved::Number(Some(s.number())),
            (Value::Delta(d), false) => Resolved::Number(Some(d.absolute)),
            (Value::Delta(d), true) => Resolved::Delta(Some(ErrorDelta {
                absolute: d.absolute,
                relative: d.relative,
                e_value: d.e_value,
                p_value: d.p_value,
                significant: d.significant,
                ratio_lower: d.ratio_lower,
                looks: d.looks,
                dispersion: d.dispersion,
                train_ratio: d.train_ratio,
                baseline_ratio: d.baseline_ratio,
            })),
            (Value::Number(x), true) => Resolved::Delta(Some(ErrorDelta {
                absolute: x,
                relative: x,
                e_value: x,
                p_value: x,
                significant: x < 0.05,
                ratio_lower: x,
                looks: 1,
                dispersion: 1.0,
                train_ratio: x,
                baseline_ratio: x,
            })),
            (Value::Special(s), true) => {
                let x = s.number();
                Resolved::Delta(Some(ErrorDelta {
                    absolute: x,
                    relative: x,
                    e_value: x,
                    p_value: x,
                    significant: false,
                    ratio_lower: x,
                    looks: 0,
                    dispersion: x,
                    train_ratio: x,
                    baseline_ratio: x,
                }))
            }
        }
    }
}

impl Resolve for Table<'_> {
    fn resolve(&self, signal: &SignalRef) -> Resolved {
        let index = self
            .signals
            .iter()
            .position(|s| s == signal)
            .expect("the evaluator resolves only the signals it listed");
        self.resolved(index, signal)
    }
}

/// Number signals whose value is NaN become no data.
fn nan_as_missing(values: &[Value]) -> Vec<Value> {
    values
        .iter()
        .map(|v| match v {
            Value::Number(x) if x.is_nan() => Value::Missing,
            Value::Special(Special::Nan) => Value::Missing,
            other => other.clone(),
        })
        .collect()
}

fn definite(truth: &Truth) -> Option<bool> {
    match truth {
        Truth::True => Some(true),
        Truth::False => Some(false),
        Truth::Unknown(_) => None,
    }
}

fuzz_target!(|data: &[u8]| {
    let (text, rest) = match data.iter().position(|&b| b == 0) {
        Some(nul) => (&data[..nul], &data[nul + 1..]),
        None => (data, &[][..]),
    };
    let Ok(when) = std::str::from_utf8(text) else {
        return;
    };
    let Ok(compiled) = gate_rules::expr::compile(when, SLOS) else {
        return;
    };
    let mut u = Unstructured::new(rest);
    let values: Vec<Value> = (0..compiled.signals.len())
        .map(|_| Value::arbitrary(&mut u).unwrap_or(Value::Missing))
        .collect();
    let signals = &compiled.signals;

    let given = Table {
        signals,
        values: values.clone(),
    };
    let (truth, read) = compiled.evaluate(&given);
    assert_eq!(read.len(), signals.len(), "every signal is reported once");

    // Only number signals are NaN-mapped; a delta's NaN fields are covered by its own rules.
    let numbers_only: Vec<Value> = values
        .iter()
        .zip(signals)
        .map(|(v, s)| match s {
            SignalRef::ErrorDelta { .. } => v.clone(),
            _ => nan_as_missing(std::slice::from_ref(v)).remove(0),
        })
        .collect();
    let (truth_nan_missing, _) = compiled.evaluate(&Table {
        signals,
        values: numbers_only,
    });
    assert_eq!(
        definite(&truth),
        definite(&truth_nan_missing),
        "`{when}`: NaN gave {truth:?} but no data gave {truth_nan_missing:?}"
    );

    let (truth_blind, _) = compiled.evaluate(&Table {
        signals,
        values: Vec::new(),
    });
    if let Some(blind) = definite(&truth_blind) {
        assert_eq!(
            Some(blind),
            definite(&truth),
            "`{when}`: with no data the condition is {blind}, with data {truth:?}"
        );
    }
});
