//! SLO arithmetic: error ratio, burn rate, budget remaining, error delta.
//!
//! Pure functions over event counts. Each returns `None` where the answer would be
//! meaningless (zero traffic, NaN, negative counts from counter resets gone wrong), so callers
//! cannot mistake "no data" for "no errors".
//!
//! [`crate::signals`] calls these to turn the counts fetched from Prometheus into the values
//! rule functions return; [`crate::stats`] supplies the p-value of [`error_delta`].
//!
//! Objectives are percentages as written in the config (`99.9`), so the error budget is
//! `1 - objective/100`. The config loader guarantees `0 < objective < 100`; these functions do
//! not re-check it.

use crate::duration::PromDuration;
use crate::stats;
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

/// The train since its start against its baseline. `None` when either side has no traffic or
/// invalid counts. The p-value is one-sided (train worse than baseline), see [`crate::stats`].
pub fn error_delta(train: Counts, baseline: Counts, alpha: f64) -> Option<ErrorDelta> {
    let train_ratio = error_ratio(train)?;
    let baseline_ratio = error_ratio(baseline)?;
    let p_value = stats::train_worse(train, baseline)?.p_value;
    let absolute = train_ratio - baseline_ratio;
    Some(ErrorDelta {
        absolute,
        relative: relative_change(absolute, train_ratio, baseline_ratio),
        p_value,
        significant: p_value < alpha,
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

    #[test]
    fn error_delta_regression() {
        // Train 150/10000 = 0.015, baseline 100/10000 = 0.010.
        // absolute = 0.005, relative = 0.005 / 0.010 = 0.5.
        // p from the pooled z-test: 0.00073 (see stats tests) < alpha 0.01 → significant.
        let delta = error_delta(counts(150.0, 1e4), counts(100.0, 1e4), 0.01).unwrap();
        assert!(close(delta.train_ratio, 0.015));
        assert!(close(delta.baseline_ratio, 0.010));
        assert!(close(delta.absolute, 0.005));
        assert!(close(delta.relative, 0.5));
        assert!((delta.p_value - 0.0007307307251609891).abs() < 1e-9);
        assert!(delta.significant);
    }

    #[test]
    fn error_delta_small_sample_not_significant() {
        // Train 5/100 = 0.05, baseline 1/100 = 0.01: absolute 0.04, relative 4.
        // Fisher p = 0.1058 (stats tests) ≥ 0.01 → not significant despite relative 400%.
        let delta = error_delta(counts(5.0, 100.0), counts(1.0, 100.0), 0.01).unwrap();
        assert!(close(delta.absolute, 0.04));
        assert!(close(delta.relative, 4.0));
        assert!(!delta.significant, "p = {}", delta.p_value);
        // With alpha 0.2, the same p = 0.1058 is significant.
        assert!(
            error_delta(counts(5.0, 100.0), counts(1.0, 100.0), 0.2)
                .unwrap()
                .significant
        );
    }

    #[test]
    fn error_delta_improvement_is_negative() {
        // Train 50/10000 = 0.005, baseline 100/10000 = 0.01: absolute −0.005, relative −0.5.
        let delta = error_delta(counts(50.0, 1e4), counts(100.0, 1e4), 0.01).unwrap();
        assert!(close(delta.absolute, -0.005));
        assert!(close(delta.relative, -0.5));
        assert!(delta.p_value > 0.99, "p = {}", delta.p_value);
        assert!(!delta.significant);
    }

    #[test]
    fn error_delta_relative_against_clean_baseline() {
        // Baseline has no errors, train has 3: relative is +Inf.
        let delta = error_delta(counts(3.0, 1000.0), counts(0.0, 1000.0), 0.01).unwrap();
        assert_eq!(delta.relative, f64::INFINITY);
        assert!(close(delta.absolute, 0.003));
        // Neither has errors: relative 0, p = 1.
        let delta = error_delta(counts(0.0, 1000.0), counts(0.0, 1000.0), 0.01).unwrap();
        assert_eq!(delta.relative, 0.0);
        assert_eq!(delta.absolute, 0.0);
        assert_eq!(delta.p_value, 1.0);
        assert!(!delta.significant);
    }

    #[test]
    fn error_delta_needs_traffic_on_both_sides() {
        let some = counts(1.0, 100.0);
        assert_eq!(error_delta(counts(0.0, 0.0), some, 0.01), None);
        assert_eq!(error_delta(some, counts(0.0, 0.0), 0.01), None);
        assert_eq!(error_delta(counts(f64::NAN, 100.0), some, 0.01), None);
        assert_eq!(error_delta(some, counts(1.0, f64::INFINITY), 0.01), None);
    }
}
