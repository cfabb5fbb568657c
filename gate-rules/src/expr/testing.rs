//! Shared fixtures of the rule-language tests: compiled conditions over two SLOs and a table
//! of signal values that records what was resolved.

use std::cell::RefCell;

pub(super) use super::{compile, CompiledExpr};
use crate::vocab::{ErrorDelta, Resolve, Resolved, SignalRef, Truth};

pub(super) const SLOS: &[&str] = &["checkout-availability", "search-latency"];

pub(super) fn compiled(when: &str) -> CompiledExpr {
    compile(when, SLOS).unwrap_or_else(|e| panic!("{when}: {e:#?}"))
}

pub(super) fn burn(window: &str) -> SignalRef {
    SignalRef::BurnRate {
        slo: "checkout-availability".into(),
        window: window.parse().unwrap(),
    }
}

pub(super) fn delta_ref() -> SignalRef {
    SignalRef::ErrorDelta {
        slo: "checkout-availability".into(),
    }
}

/// A table of signal values that counts how often each is resolved.
#[derive(Default)]
pub(super) struct Table {
    values: Vec<(SignalRef, Resolved)>,
    pub(super) calls: RefCell<Vec<SignalRef>>,
}

impl Table {
    pub(super) fn with(mut self, signal: SignalRef, value: Resolved) -> Self {
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

pub(super) fn num(x: f64) -> Resolved {
    Resolved::Number(Some(x))
}

pub(super) fn delta(relative: f64, significant: bool) -> Resolved {
    Resolved::Delta(Some(ErrorDelta {
        absolute: 0.25,
        relative,
        e_value: if significant { 1000.0 } else { 2.5 },
        p_value: if significant { 0.001 } else { 0.4 },
        significant,
        ratio_lower: if significant { 1.7 } else { 0.0 },
        looks: 40,
        dispersion: 1.0,
        train_ratio: 0.5,
        baseline_ratio: 0.25,
    }))
}

pub(super) fn truth(when: &str, table: &Table) -> Truth {
    compiled(when).evaluate(table).0
}
