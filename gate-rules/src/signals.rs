//! Signals: the numbers fetched for one train at one evaluation, and the values rules read.
//!
//! The engine fills a [`Signals`] from Prometheus (counts only: errors and total events over
//! windows); this module derives what the rule functions return — burn rate, error ratio,
//! budget remaining, error delta — using [`crate::math`] and [`crate::stats`]. Missing data,
//! zero traffic and non-finite numbers resolve to *no data* (`None`), which makes a rule
//! unknown: never a silent zero that could promote a train.
//!
//! One asymmetry a newcomer would question: `requests(...)` and `errors(...)` of a window with
//! no traffic are `0`, not no data, because zero events *is* a measurement (and rules like
//! `requests("x", "5m") == 0` must be able to see it). Ratios of zero traffic are undefined, so
//! burn rates, error ratios, budgets and deltas over zero traffic are no data. A missing series
//! is no data for every function. [`Signals::min_requests_shortfall`] is what
//! [`mod@crate::decide`] uses to call evidence inconclusive for lack of traffic.
//!
//! `error_delta` is the one value that depends on earlier evaluations: its anytime-valid
//! evidence comes from the train's [`crate::sequential`] test, which [`Signals::look`] advances
//! by one look per successful evaluation. A look is taken only when both the since-start and the
//! baseline counts are valid, so invalid counts make `error_delta` no data rather than showing
//! the previous look's evidence as if it were current.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::config::{Gate, Slo};
use crate::duration::PromDuration;
use crate::math;
use crate::sequential::{SequentialState, SequentialTest, Verdict};
use crate::vocab::{Counts, ErrorDelta, Resolve, Resolved, SignalRef};

/// Everything fetched for one train at one evaluation time. A key that is absent or maps to
/// `None` means Prometheus returned no series for it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Signals {
    /// Seconds since the train started, at the evaluation time.
    pub age_secs: f64,
    /// The train's counts per (SLO, window).
    pub windows: BTreeMap<(String, PromDuration), Option<Counts>>,
    /// The train's counts since it started, per SLO (for `min_requests` and `error_delta`).
    pub since_start: BTreeMap<String, Option<Counts>>,
    /// The baseline's counts over an equal window, per SLO (absent: no baseline configured).
    pub baseline: BTreeMap<String, Option<Counts>>,
    /// Service-wide counts over each SLO's period (for `budget_remaining`).
    pub service: BTreeMap<String, Option<Counts>>,
    /// Results of custom `query("...")` calls, by the PromQL as written in the rule.
    pub queries: BTreeMap<String, Option<f64>>,
    /// What the baseline was, for the evidence (e.g. `train t-122` or `before start`).
    pub baseline_desc: Option<String>,
}

/// Resolves signal references against fetched [`Signals`] for one gate.
#[derive(Debug, Clone, Copy)]
pub struct Resolver<'a> {
    /// The fetched numbers.
    pub signals: &'a Signals,
    /// The SLOs of the config (looked up by name).
    pub slos: &'a [Slo],
    /// The gate being evaluated.
    pub gate: &'a Gate,
    /// This evaluation's verdict of each SLO's sequential test (from [`Signals::look`]); an SLO
    /// without one has no `error_delta`.
    pub verdicts: &'a BTreeMap<String, Verdict>,
}

/// An SLO of a gate that has seen fewer events since the train started than `min_requests`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Shortfall {
    /// The SLO.
    pub slo: String,
    /// Events seen since the train started (0 when there is no data).
    pub seen: f64,
    /// The gate's `min_requests`.
    pub needed: u64,
}

impl Signals {
    /// The train's events since start for `slo`: `None` when there is no series or the total is
    /// NaN, infinite or negative. Zero is a real count.
    pub fn since_start_requests(&self, slo: &str) -> Option<f64> {
        self.since_start
            .get(slo)
            .copied()
            .flatten()
            .and_then(|c| count(c.total))
    }

    /// The first SLO of `gate` (in the gate's order) whose events since the train started are
    /// below `gate.min_requests`. Missing or invalid since-start data counts as 0 events, so it
    /// is a shortfall whenever `min_requests > 0`.
    pub fn min_requests_shortfall(&self, gate: &Gate) -> Option<Shortfall> {
        gate.slos.iter().find_map(|slo| {
            let seen = self.since_start_requests(slo).unwrap_or(0.0);
            (seen < gate.min_requests as f64).then(|| Shortfall {
                slo: slo.clone(),
                seen,
                needed: gate.min_requests,
            })
        })
    }

    /// One look of the sequential test of every SLO of `gate` that has valid since-start and
    /// baseline counts, advancing `tests` (a test starts at its first look, with the gate's
    /// `alpha` and `min_effect`). Returns the verdicts of the SLOs that took a look.
    pub fn look(
        &self,
        gate: &Gate,
        tests: &mut BTreeMap<String, SequentialState>,
    ) -> BTreeMap<String, Verdict> {
        let Ok(test) = SequentialTest::new(gate.alpha, gate.min_effect) else {
            return BTreeMap::new();
        };
        let mut verdicts = BTreeMap::new();
        for slo in &gate.slos {
            let counts = |map: &BTreeMap<String, Option<Counts>>| {
                map.get(slo)
                    .copied()
                    .flatten()
                    .filter(|c| math::error_ratio(*c).is_some())
            };
            let (Some(train), Some(baseline)) = (counts(&self.since_start), counts(&self.baseline))
            else {
                continue;
            };
            let state = tests.entry(slo.clone()).or_insert_with(|| test.start());
            verdicts.insert(slo.clone(), state.observe(train, baseline));
        }
        verdicts
    }

    fn window(&self, slo: &str, window: PromDuration) -> Option<Counts> {
        self.windows
            .get(&(slo.to_string(), window))
            .copied()
            .flatten()
    }
}

/// A count as data: finite and non-negative (zero included).
fn count(x: f64) -> Option<f64> {
    (x.is_finite() && x >= 0.0).then_some(x)
}

/// A derived number as data: finite only.
fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

impl Resolver<'_> {
    /// The value a rule function returns for `signal`.
    ///
    /// No data (`None`) when the series is missing, a count is NaN, infinite or negative, the
    /// SLO is unknown, or — for ratios, burn rates, budgets and deltas — there was no traffic.
    /// `requests` and `errors` of a window without traffic are `0`: a real zero count.
    pub fn resolve(&self, signal: &SignalRef) -> Resolved {
        match signal {
            SignalRef::BurnRate { slo, window } => Resolved::Number(self.burn_rate(slo, *window)),
            SignalRef::ErrorRatio { slo, window } => Resolved::Number(
                self.signals
                    .window(slo, *window)
                    .and_then(math::error_ratio),
            ),
            SignalRef::Requests { slo, window } => Resolved::Number(
                self.signals
                    .window(slo, *window)
                    .and_then(|c| count(c.total)),
            ),
            SignalRef::Errors { slo, window } => Resolved::Number(
                self.signals
                    .window(slo, *window)
                    .and_then(|c| count(c.errors)),
            ),
            SignalRef::BudgetRemaining { slo } => Resolved::Number(self.budget_remaining(slo)),
            SignalRef::ErrorDelta { slo } => Resolved::Delta(self.error_delta(slo)),
            SignalRef::Age => Resolved::Number(count(self.signals.age_secs)),
            SignalRef::Query { promql } => Resolved::Number(
                self.signals
                    .queries
                    .get(promql)
                    .copied()
                    .flatten()
                    .and_then(finite),
            ),
        }
    }

    fn objective(&self, slo: &str) -> Option<f64> {
        self.slos
            .iter()
            .find(|s| s.name == slo)
            .map(|s| s.objective)
    }

    fn burn_rate(&self, slo: &str, window: PromDuration) -> Option<f64> {
        let ratio = math::error_ratio(self.signals.window(slo, window)?)?;
        finite(math::burn_rate(ratio, self.objective(slo)?))
    }

    fn budget_remaining(&self, slo: &str) -> Option<f64> {
        let service = self.signals.service.get(slo).copied().flatten()?;
        finite(math::budget_remaining(service, self.objective(slo)?)?)
    }

    fn error_delta(&self, slo: &str) -> Option<ErrorDelta> {
        let train = self.signals.since_start.get(slo).copied().flatten()?;
        let baseline = self.signals.baseline.get(slo).copied().flatten()?;
        math::error_delta(train, baseline, self.verdicts.get(slo)?)
    }
}

/// The rule language reads values through this: a compiled condition does not know where
/// numbers come from.
impl Resolve for Resolver<'_> {
    fn resolve(&self, signal: &SignalRef) -> Resolved {
        Resolver::resolve(self, signal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{BadOrGood, BaselineKind};
    use crate::vocab::{Counter, HoldDecision};

    const SLO: &str = "checkout-availability";

    fn slo() -> Slo {
        Slo {
            name: SLO.into(),
            objective: 99.9,
            period: d("30d"),
            counts: BadOrGood::Errors,
            events: Counter::Selector(r#"http_requests_total{code=~"5.."}"#.into()),
            total: Counter::Selector("http_requests_total".into()),
        }
    }

    fn gate(min_requests: u64) -> Gate {
        Gate {
            name: "checkout".into(),
            slos: vec![SLO.into(), "latency".into()],
            interval: d("30s"),
            verify_for: d("30m"),
            watch_for: d("2h"),
            min_requests,
            baseline: BaselineKind::PreviousTrain,
            on_inconclusive: HoldDecision::Pause,
            on_telemetry_error: HoldDecision::Pause,
            max_consecutive_errors: 3,
            resume_after: 4,
            alpha: 0.01,
            min_effect: 0.05,
            evaluation_delay: std::time::Duration::ZERO,
            max_train_age: PromDuration::from_secs(7 * 24 * 3600),
            rules: vec![],
            dry_run: false,
        }
    }

    fn d(s: &str) -> PromDuration {
        s.parse().unwrap()
    }

    fn c(errors: f64, total: f64) -> Option<Counts> {
        Some(Counts { errors, total })
    }

    fn window_signals(counts: Option<Counts>) -> Signals {
        let mut s = Signals::default();
        s.windows.insert((SLO.into(), d("1h")), counts);
        s
    }

    fn number(signals: &Signals, signal: SignalRef) -> Option<f64> {
        let slos = [slo()];
        let gate = gate(100);
        let r = Resolver {
            signals,
            slos: &slos,
            gate: &gate,
            verdicts: &BTreeMap::new(),
        };
        match r.resolve(&signal) {
            Resolved::Number(n) => n,
            other => panic!("{signal:?} resolved to {other:?}"),
        }
    }

    /// `error_delta` after one look of fresh tests at `signals`.
    fn delta(signals: &Signals) -> Option<ErrorDelta> {
        let slos = [slo()];
        let gate = gate(100);
        let verdicts = signals.look(&gate, &mut BTreeMap::new());
        let r = Resolver {
            signals,
            slos: &slos,
            gate: &gate,
            verdicts: &verdicts,
        };
        match r.resolve(&SignalRef::ErrorDelta { slo: SLO.into() }) {
            Resolved::Delta(d) => d,
            other => panic!("error_delta resolved to {other:?}"),
        }
    }

    fn burn(slo: &str) -> SignalRef {
        SignalRef::BurnRate {
            slo: slo.into(),
            window: d("1h"),
        }
    }
    fn ratio() -> SignalRef {
        SignalRef::ErrorRatio {
            slo: SLO.into(),
            window: d("1h"),
        }
    }
    fn requests() -> SignalRef {
        SignalRef::Requests {
            slo: SLO.into(),
            window: d("1h"),
        }
    }
    fn errors() -> SignalRef {
        SignalRef::Errors {
            slo: SLO.into(),
            window: d("1h"),
        }
    }

    #[test]
    fn window_functions_read_their_window() {
        // 30 errors in 1000: ratio 0.03, burn 0.03 / 0.001 = 30.
        let s = window_signals(c(30.0, 1000.0));
        let burn_1h = number(&s, burn(SLO)).unwrap();
        assert!((burn_1h - 30.0).abs() < 1e-9, "{burn_1h}");
        assert_eq!(number(&s, ratio()), Some(0.03));
        assert_eq!(number(&s, requests()), Some(1000.0));
        assert_eq!(number(&s, errors()), Some(30.0));
        // Another window of the same SLO is not fetched: no data.
        let other = SignalRef::BurnRate {
            slo: SLO.into(),
            window: d("5m"),
        };
        assert_eq!(number(&s, other), None);
    }

    #[test]
    fn missing_series_is_no_data() {
        for s in [Signals::default(), window_signals(None)] {
            for signal in [burn(SLO), ratio(), requests(), errors()] {
                assert_eq!(number(&s, signal.clone()), None, "{signal:?}");
            }
        }
    }

    #[test]
    fn zero_traffic_is_no_data_for_ratios_but_zero_for_counts() {
        let s = window_signals(c(0.0, 0.0));
        assert_eq!(number(&s, burn(SLO)), None);
        assert_eq!(number(&s, ratio()), None);
        assert_eq!(number(&s, requests()), Some(0.0));
        assert_eq!(number(&s, errors()), Some(0.0));
    }

    #[test]
    fn non_finite_counts_are_no_data() {
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let s = window_signals(c(bad, bad));
            for signal in [burn(SLO), ratio(), requests(), errors()] {
                assert_eq!(number(&s, signal.clone()), None, "{bad} {signal:?}");
            }
            // A bad error count spoils the ratio but not the request count.
            let s = window_signals(c(bad, 100.0));
            assert_eq!(number(&s, ratio()), None);
            assert_eq!(number(&s, requests()), Some(100.0));
        }
    }

    #[test]
    fn unknown_slo_is_no_data() {
        let mut s = window_signals(c(1.0, 10.0));
        s.windows.insert(("nope".into(), d("1h")), c(1.0, 10.0));
        assert_eq!(number(&s, burn("nope")), None, "no objective to divide by");
    }

    #[test]
    fn budget_remaining_reads_service_counts() {
        let mut s = Signals::default();
        // 500 errors in 1e6 = 0.0005; burn 0.5; remaining 0.5.
        s.service.insert(SLO.into(), c(500.0, 1e6));
        let budget = SignalRef::BudgetRemaining { slo: SLO.into() };
        let left = number(&s, budget.clone()).unwrap();
        assert!((left - 0.5).abs() < 1e-9, "{left}");
        s.service.insert(SLO.into(), c(0.0, 0.0));
        assert_eq!(number(&s, budget.clone()), None, "no service traffic");
        s.service.insert(SLO.into(), None);
        assert_eq!(number(&s, budget), None);
    }

    #[test]
    fn error_delta_uses_since_start_and_baseline_with_the_look() {
        let mut s = Signals::default();
        s.since_start.insert(SLO.into(), c(150.0, 1e4));
        assert_eq!(delta(&s), None, "no baseline");
        s.baseline.insert(SLO.into(), c(100.0, 1e4));
        let got = delta(&s).unwrap();
        let test = SequentialTest::new(0.01, 0.05).unwrap();
        let verdict = test
            .start()
            .observe(c(150.0, 1e4).unwrap(), c(100.0, 1e4).unwrap());
        let want =
            math::error_delta(c(150.0, 1e4).unwrap(), c(100.0, 1e4).unwrap(), &verdict).unwrap();
        assert_eq!(got, want);
        assert_eq!(got.looks, 1);
        s.baseline.insert(SLO.into(), c(0.0, 0.0));
        assert_eq!(delta(&s), None, "baseline without traffic");
        s.baseline.insert(SLO.into(), c(0.0, f64::NAN));
        assert_eq!(delta(&s), None);
    }

    #[test]
    fn look_advances_only_on_valid_counts() {
        let g = gate(100);
        let mut tests = BTreeMap::new();
        let mut s = Signals::default();
        s.since_start.insert(SLO.into(), c(10.0, 1e4));
        s.baseline.insert(SLO.into(), c(10.0, 1e4));
        assert_eq!(s.look(&g, &mut tests)[SLO].looks, 1);
        // Invalid train counts: no look, no verdict (so error_delta is no data), state kept.
        let kept = tests.clone();
        s.since_start.insert(SLO.into(), c(-1.0, 2e4));
        assert!(s.look(&g, &mut tests).is_empty());
        s.since_start.insert(SLO.into(), c(f64::NAN, 2e4));
        assert!(s.look(&g, &mut tests).is_empty());
        assert_eq!(tests, kept);
        s.since_start.insert(SLO.into(), c(20.0, 2e4));
        s.baseline.insert(SLO.into(), c(20.0, 2e4));
        assert_eq!(s.look(&g, &mut tests)[SLO].looks, 2);
        // `latency` has no baseline: no test for it.
        assert!(!tests.contains_key("latency"));
    }

    #[test]
    fn age_and_queries() {
        let mut s = Signals {
            age_secs: 600.0,
            ..Signals::default()
        };
        s.queries.insert("up".into(), Some(0.0));
        s.queries.insert("nan".into(), Some(f64::NAN));
        s.queries.insert("none".into(), None);
        assert_eq!(number(&s, SignalRef::Age), Some(600.0));
        let q = |p: &str| SignalRef::Query { promql: p.into() };
        assert_eq!(number(&s, q("up")), Some(0.0));
        assert_eq!(number(&s, q("nan")), None);
        assert_eq!(number(&s, q("none")), None);
        assert_eq!(number(&s, q("absent")), None);
        s.age_secs = f64::NAN;
        assert_eq!(number(&s, SignalRef::Age), None);
    }

    #[test]
    fn min_requests_shortfall_checks_every_slo_of_the_gate() {
        let g = gate(500);
        let mut s = Signals::default();
        s.since_start.insert(SLO.into(), c(0.0, 1000.0));
        // `latency` has no since-start data: it counts as 0 events.
        assert_eq!(
            s.min_requests_shortfall(&g),
            Some(Shortfall {
                slo: "latency".into(),
                seen: 0.0,
                needed: 500
            })
        );
        s.since_start.insert("latency".into(), c(0.0, 499.0));
        assert_eq!(s.min_requests_shortfall(&g).map(|f| f.seen), Some(499.0));
        s.since_start.insert("latency".into(), c(0.0, 500.0));
        assert_eq!(s.min_requests_shortfall(&g), None, "500 is enough");
        s.since_start.insert(SLO.into(), c(0.0, f64::NAN));
        assert_eq!(
            s.min_requests_shortfall(&g).map(|f| f.slo),
            Some(SLO.to_string())
        );
        assert_eq!(s.min_requests_shortfall(&gate(0)), None, "min_requests 0");
    }
}
