//! SLO arithmetic: error ratio, burn rate, budget remaining, error delta.
//!
//! Pure functions over event counts. Each returns `None` where the answer would be
//! meaningless (zero traffic, NaN, negative counts from counter resets gone wrong), so callers
//! cannot mistake "no data" for "no errors".
//!
//! [`crate::signals`] calls these to turn the counts fetched from Prometheus into the values
//! rule functions return; [`crate::sequential`] supplies the evidence of [`error_delta`].
//!
//! Objectives are percentages as written in the config (`99.9`), so the error budget is
//! `1 - objective/100`. The config loader guarantees `0 < objective < 100`; these functions do
//! not re-check it.

use crate::duration::PromDuration;
use crate::sequential::Verdict;
use crate::vocab::{Counts, ErrorDelta};

/// How far errors may exceed the total (relative) before the counts are refused rather than
/// clamped: float noise from summing series, not a real excess.
const EXCESS_TOLERANCE: f64 = 1e-9;

/// `errors / total`, in `[0, 1]`.
///
/// `None` when there is no traffic (`total <= 0`), a count is NaN, infinite or negative, or
/// errors exceed the total by more than float noise (noise is clamped to a ratio of 1).
pub fn error_ratio(c: Counts) -> Option<f64> {
    let Counts { errors, total } = c;
    if !errors.is_finite() || !total.is_finite() || errors < 0.0 || total <= 0.0 {
        return None;
    }
    if errors > total * (1.0 + EXCESS_TOLERANCE) {
        return None;
    }
    Some((errors / total).min(1.0))
}

/// How fast the error budget burns: `ratio / (1 - objective/100)`. 1 spends exactly the
/// budget over the SLO period; 14.4 spends a 30-day budget in a little over two days.
pub fn burn_rate(ratio: f64, objective_percent: f64) -> f64 {
    ratio / budget_fraction(objective_percent)
}

/// The fraction of the error budget left over the period: `1 - ratio/(1 - objective/100)`,
/// from the service-wide counts over the SLO period. 1 is untouched, ≤ 0 is exhausted.
pub fn budget_remaining(service: Counts, objective_percent: f64) -> Option<f64> {
    error_ratio(service).map(|ratio| 1.0 - burn_rate(ratio, objective_percent))
}

/// The fraction of a period's error budget spent by burning at `burn_rate` for `window`:
/// `burn_rate × window / period`.
pub fn budget_spent(burn_rate: f64, window: PromDuration, period: PromDuration) -> f64 {
    burn_rate * window.as_secs_f64() / period.as_secs_f64()
}

/// The train since its start against its baseline, with the sequential test's `verdict` after
/// this evaluation's look (see [`crate::sequential`]). `None` when either side has no traffic or
/// invalid counts: the sequential test ignores such a look, so its verdict alone would be stale.
pub fn error_delta(train: Counts, baseline: Counts, verdict: &Verdict) -> Option<ErrorDelta> {
    let train_ratio = error_ratio(train)?;
    let baseline_ratio = error_ratio(baseline)?;
    let absolute = train_ratio - baseline_ratio;
    Some(ErrorDelta {
        absolute,
        relative: relative_change(absolute, train_ratio, baseline_ratio),
        e_value: verdict.e_value,
        p_value: verdict.p_value,
        significant: verdict.significant,
        ratio_lower: verdict.ratio_lower,
        looks: verdict.looks,
        dispersion: verdict.dispersion,
        train_ratio,
        baseline_ratio,
    })
}

fn relative_change(absolute: f64, train_ratio: f64, baseline_ratio: f64) -> f64 {
    if baseline_ratio > 0.0 {
        absolute / baseline_ratio
    } else if train_ratio > 0.0 {
        f64::INFINITY
    } else {
        0.0
    }
}

fn budget_fraction(objective_percent: f64) -> f64 {
    1.0 - objective_percent / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(errors: f64, total: f64) -> Counts {
        Counts { errors, total }
    }

    fn d(s: &str) -> PromDuration {
        s.parse().unwrap()
    }

    fn close(got: f64, want: f64) -> bool {
        (got - want).abs() <= 1e-9 * want.abs().max(1.0)
    }

    #[test]
    fn error_ratio_divides() {
        // 25 errors in 1000 events: 25/1000 = 0.025.
        assert_eq!(error_ratio(counts(25.0, 1000.0)), Some(0.025));
        assert_eq!(error_ratio(counts(0.0, 1000.0)), Some(0.0));
        assert_eq!(error_ratio(counts(1000.0, 1000.0)), Some(1.0));
    }

    #[test]
    fn error_ratio_refuses_meaningless_counts() {
        assert_eq!(error_ratio(counts(0.0, 0.0)), None, "no traffic");
        assert_eq!(error_ratio(counts(1.0, -5.0)), None, "negative total");
        assert_eq!(error_ratio(counts(-1.0, 5.0)), None, "negative errors");
        assert_eq!(error_ratio(counts(f64::NAN, 5.0)), None);
        assert_eq!(error_ratio(counts(1.0, f64::NAN)), None);
        assert_eq!(error_ratio(counts(1.0, f64::INFINITY)), None);
        assert_eq!(error_ratio(counts(f64::NEG_INFINITY, 5.0)), None);
        assert_eq!(error_ratio(counts(11.0, 10.0)), None, "errors beyond total");
    }

    #[test]
    fn error_ratio_clamps_float_noise() {
        // 0.1 + 0.2 summed series give 0.30000000000000004 errors against 0.3 total.
        assert_eq!(error_ratio(counts(0.1 + 0.2, 0.3)), Some(1.0));
    }

    #[test]
    fn burn_rate_divides_by_budget() {
        // 99.9% objective: budget 0.001. Ratio 0.0144 / 0.001 = 14.4.
        assert!(close(burn_rate(0.0144, 99.9), 14.4));
        // 99% objective: budget 0.01. Ratio 0.01 / 0.01 = 1.
        assert!(close(burn_rate(0.01, 99.0), 1.0));
        assert_eq!(burn_rate(0.0, 99.9), 0.0);
    }

    #[test]
    fn budget_remaining_from_service_counts() {
        // 99.9%: budget 0.001. 400 errors in 1,000,000 = 0.0004 → burn 0.4 → 0.6 left.
        let left = budget_remaining(counts(400.0, 1e6), 99.9).unwrap();
        assert!(close(left, 0.6), "{left}");
        // 2000 errors in 1,000,000 = 0.002 → burn 2 → −1 (exhausted twice over).
        let left = budget_remaining(counts(2000.0, 1e6), 99.9).unwrap();
        assert!(close(left, -1.0), "{left}");
        assert_eq!(budget_remaining(counts(0.0, 0.0), 99.9), None);
    }

    // The Google SRE workbook's multiwindow alert table (chapter "Alerting on SLOs").
    #[test]
    fn budget_spent_matches_sre_workbook() {
        // 14.4 × 1h / 720h = 0.02: 2% of a 30-day budget.
        assert!(close(budget_spent(14.4, d("1h"), d("30d")), 0.02));
        // 6 × 6h / 720h = 0.05: 5%.
        assert!(close(budget_spent(6.0, d("6h"), d("30d")), 0.05));
        // 1 × 72h / 720h = 0.10: 10%.
        assert!(close(budget_spent(1.0, d("3d"), d("30d")), 0.10));
    }

    /// The verdict of a test with one look at these counts.
    fn one_look(train: Counts, baseline: Counts) -> Verdict {
        let test = crate::sequential::SequentialTest::new(0.01, 0.05).unwrap();
        test.start().observe(train, baseline)
    }

    #[test]
    fn error_delta_carries_ratios_and_the_verdict() {
        // Train 150/10000 = 0.015, baseline 100/10000 = 0.010.
        // absolute = 0.005, relative = 0.005 / 0.010 = 0.5.
        let (train, baseline) = (counts(150.0, 1e4), counts(100.0, 1e4));
        let verdict = one_look(train, baseline);
        let delta = error_delta(train, baseline, &verdict).unwrap();
        assert!(close(delta.train_ratio, 0.015));
        assert!(close(delta.baseline_ratio, 0.010));
        assert!(close(delta.absolute, 0.005));
        assert!(close(delta.relative, 0.5));
        assert_eq!(delta.e_value, verdict.e_value);
        assert_eq!(delta.p_value, verdict.p_value);
        assert_eq!(delta.significant, verdict.significant);
        assert_eq!(delta.ratio_lower, verdict.ratio_lower);
        assert_eq!(delta.looks, 1);
        assert_eq!(delta.dispersion, verdict.dispersion);
        // One look adds at most 1.5 nats: e^1.5 = 4.48 < 1/alpha = 100, however strong.
        assert!(delta.e_value <= 1.5f64.exp() + 1e-9, "{}", delta.e_value);
        assert!(!delta.significant);
    }

    #[test]
    fn error_delta_improvement_is_negative() {
        // Train 50/10000 = 0.005, baseline 100/10000 = 0.01: absolute −0.005, relative −0.5.
        let (train, baseline) = (counts(50.0, 1e4), counts(100.0, 1e4));
        let delta = error_delta(train, baseline, &one_look(train, baseline)).unwrap();
        assert!(close(delta.absolute, -0.005));
        assert!(close(delta.relative, -0.5));
        assert_eq!(delta.p_value, 1.0);
        assert!(!delta.significant);
    }

    #[test]
    fn error_delta_relative_against_clean_baseline() {
        // Baseline has no errors, train has 3: relative is +Inf.
        let (train, baseline) = (counts(3.0, 1000.0), counts(0.0, 1000.0));
        let delta = error_delta(train, baseline, &one_look(train, baseline)).unwrap();
        assert_eq!(delta.relative, f64::INFINITY);
        assert!(close(delta.absolute, 0.003));
        // Neither has errors: relative 0.
        let none = counts(0.0, 1000.0);
        let delta = error_delta(none, none, &one_look(none, none)).unwrap();
        assert_eq!(delta.relative, 0.0);
        assert_eq!(delta.absolute, 0.0);
        assert!(!delta.significant);
    }

    #[test]
    fn error_delta_needs_traffic_on_both_sides() {
        let some = counts(1.0, 100.0);
        let v = one_look(some, some);
        assert_eq!(error_delta(counts(0.0, 0.0), some, &v), None);
        assert_eq!(error_delta(some, counts(0.0, 0.0), &v), None);
        assert_eq!(error_delta(counts(f64::NAN, 100.0), some, &v), None);
        assert_eq!(error_delta(some, counts(1.0, f64::INFINITY), &v), None);
        assert_eq!(error_delta(counts(-1.0, 100.0), some, &v), None);
    }
}
