//! Significance test for the error delta: is the train's error proportion higher than the
//! baseline's, beyond noise?
//!
//! [`train_worse`] answers with a one-sided p-value for the hypothesis "the train's error
//! proportion is greater than the baseline's", computed on event *counts*. [`crate::math`]
//! uses it for `error_delta(...).p_value`; the rule compares it against the gate's `alpha`.
//!
//! Two tests, chosen by the size of the table (design choice a newcomer would question):
//!
//! * **Fisher's exact test** (one-sided, `greater`) when the counts are small: at most
//!   [`FISHER_MAX_EVENTS`] events in all, or any expected cell of the 2×2 table below
//!   [`MIN_EXPECTED_CELL`] — where the normal approximation is poor. It is exact but its cost
//!   grows with the counts, so it is not used for millions of events.
//! * **Pooled two-proportion z-test** otherwise: constant time, accurate at large counts, no
//!   overflow at 10⁹ events.
//!
//! Fisher's cost is the length of one tail sum, which grows with the smaller of "train good
//! events" and "baseline errors". In the rare table that has a tiny expected cell *and* more
//! than [`FISHER_MAX_TERMS`] terms to sum (e.g. a 10⁵-event canary against 10¹⁰ service events
//! with 10⁶ errors), the z-test is used anyway: a slightly approximate p-value beats an
//! evaluation that takes seconds.
//!
//! Prometheus' `increase()` extrapolates, so counts arrive as floats; they are rounded to the
//! nearest integer (errors clamped to the total) before testing.

use serde::Serialize;
use statrs::function::erf::erfc;
use statrs::stats_tests::{fishers_exact, Alternative};

use crate::vocab::Counts;

/// Tables with at most this many events in all (train + baseline) use Fisher's exact test.
pub const FISHER_MAX_EVENTS: u64 = 10_000;

/// Tables where any expected cell is below this use Fisher's exact test (the usual rule of
/// thumb for the normal approximation).
pub const MIN_EXPECTED_CELL: f64 = 5.0;

/// Fisher's exact test is skipped (z-test instead) when its tail sum would exceed this many
/// terms.
pub const FISHER_MAX_TERMS: u64 = 100_000;

/// Which test produced a p-value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Fisher's exact test, one-sided (`greater`).
    FisherExact,
    /// Pooled two-proportion z-test, one-sided.
    PooledZ,
}

/// A one-sided p-value and the test that produced it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TestOutcome {
    /// P(a difference at least this large in the train's disfavour | no real difference).
    /// Near 0: the train is worse; near 1: the train is no worse (or better).
    pub p_value: f64,
    /// The test used.
    pub method: Method,
}

/// Event counts rounded to integers, errors ≤ total.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Table {
    /// Train errors.
    a: u64,
    /// Train good events.
    b: u64,
    /// Baseline errors.
    c: u64,
    /// Baseline good events.
    d: u64,
}

/// Rounds a count to an integer, refusing NaN, ±Inf, negatives and values beyond `u64`.
fn to_count(x: f64) -> Option<u64> {
    let r = x.round();
    // Below 2^63: the train total plus the baseline total still fits in a u64.
    (0.0..9.2e18).contains(&r).then_some(r as u64)
}

/// Rounds both sides; `None` when a side has no (rounded) traffic or a count is invalid.
fn table(train: Counts, baseline: Counts) -> Option<Table> {
    let side = |c: Counts| -> Option<(u64, u64)> {
        let total = to_count(c.total)?;
        let errors = to_count(c.errors)?.min(total);
        (total > 0).then_some((errors, total - errors))
    };
    let (a, b) = side(train)?;
    let (c, d) = side(baseline)?;
    Some(Table { a, b, c, d })
}

impl Table {
    fn n(&self) -> f64 {
        (self.a + self.b + self.c + self.d) as f64
    }

    /// The smallest expected cell count under the null hypothesis (equal proportions).
    fn min_expected(&self) -> f64 {
        let n = self.n();
        let rows = [(self.a + self.b) as f64, (self.c + self.d) as f64];
        let cols = [(self.a + self.c) as f64, (self.b + self.d) as f64];
        rows.iter()
            .flat_map(|r| cols.iter().map(move |c| r * c / n))
            .fold(f64::INFINITY, f64::min)
    }

    fn wants_fisher(&self) -> bool {
        let small = self.a + self.b + self.c + self.d <= FISHER_MAX_EVENTS;
        let sparse = self.min_expected() < MIN_EXPECTED_CELL;
        (small || sparse) && self.b.min(self.c) <= FISHER_MAX_TERMS
    }

    /// One-sided Fisher's exact test. statrs sums the `greater` tail over `table[1]`'s range,
    /// so the table is laid out (transposing if needed; the odds ratio is unchanged) to put the
    /// smaller of `b` and `c` there.
    fn fisher(&self) -> Option<f64> {
        let Table { a, b, c, d } = *self;
        let layout = if c <= b { [a, c, b, d] } else { [a, b, c, d] };
        fishers_exact(&layout, Alternative::Greater).ok()
    }

    /// One-sided pooled two-proportion z-test.
    fn pooled_z(&self) -> f64 {
        let n1 = (self.a + self.b) as f64;
        let n2 = (self.c + self.d) as f64;
        let p1 = self.a as f64 / n1;
        let p2 = self.c as f64 / n2;
        let pooled = (self.a + self.c) as f64 / (n1 + n2);
        let se = (pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2)).sqrt();
        if se <= 0.0 || !se.is_finite() {
            // Both sides all good (or all bad): no difference to test.
            return 1.0;
        }
        let z = (p1 - p2) / se;
        // Upper tail of the standard normal, via erfc for accuracy far in the tail.
        0.5 * erfc(z / std::f64::consts::SQRT_2)
    }
}

/// One-sided test that the train's error proportion exceeds the baseline's.
///
/// `None` when either side has no traffic (total rounds to 0) or a count is NaN, infinite or
/// negative. Zero errors on both sides gives p = 1.
pub fn train_worse(train: Counts, baseline: Counts) -> Option<TestOutcome> {
    let t = table(train, baseline)?;
    let outcome = if t.wants_fisher() {
        TestOutcome {
            p_value: t.fisher()?,
            method: Method::FisherExact,
        }
    } else {
        TestOutcome {
            p_value: t.pooled_z(),
            method: Method::PooledZ,
        }
    };
    Some(TestOutcome {
        p_value: outcome.p_value.clamp(0.0, 1.0),
        ..outcome
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(errors: f64, total: f64) -> Counts {
        Counts { errors, total }
    }

    fn check(train: (u64, u64), baseline: (u64, u64), want: f64, method: Method) {
        let got = train_worse(
            counts(train.0 as f64, train.1 as f64),
            counts(baseline.0 as f64, baseline.1 as f64),
        )
        .expect("both sides have traffic");
        assert_eq!(got.method, method, "{train:?} vs {baseline:?}");
        let rel = (got.p_value - want).abs() / want.max(1e-300);
        assert!(
            rel < 1e-6,
            "{train:?} vs {baseline:?}: p = {} want {want} (rel err {rel:e})",
            got.p_value
        );
    }

    // Reference p-values from SciPy 1.17.1:
    // `scipy.stats.fisher_exact([[a, n1 - a], [c, n2 - c]], alternative="greater").pvalue`.
    #[test]
    fn fisher_matches_scipy_on_small_tables() {
        use Method::FisherExact as F;
        check((5, 100), (1, 100), 0.10582392634786585, F);
        check((3, 50), (4, 500), 0.019081861619953396, F);
        check((2, 10), (0, 10), 0.2368421052631579, F);
        check((12, 4000), (5, 4000), 0.07151902637447304, F);
        // Train better than baseline: p near 1.
        check((1, 1000), (10, 1000), 0.9995250325342492, F);
    }

    // Large total but a sparse table (expected train errors ≈ 0.1): still Fisher.
    // SciPy 1.17.1: fisher_exact([[3, 19997], [2, 999998]], alternative="greater").
    #[test]
    fn sparse_large_table_uses_fisher() {
        check(
            (3, 20_000),
            (2, 1_000_000),
            7.317550551267822e-05,
            Method::FisherExact,
        );
    }

    // Reference: the pooled z statistic computed in Python, p = `scipy.stats.norm.sf(z)`
    // (SciPy 1.17.1). For (150/10000 vs 100/10000): z = 3.1822291367029196.
    #[test]
    fn z_test_matches_scipy_on_large_tables() {
        use Method::PooledZ as Z;
        check((150, 10_000), (100, 10_000), 0.0007307307251609891, Z);
        // Train better: z = -0.3598, p = 0.64.
        check((95, 10_000), (100, 10_000), 0.6405075699937129, Z);
    }

    // 10^9 and 10^12 events: no overflow, no NaN, and the z-test answers at once.
    // z = 7.05700319410774 → p = 8.506585734767214e-13; z = 0.2237 → p = 0.41148832031628557
    // (SciPy 1.17.1 `norm.sf`).
    #[test]
    fn huge_counts_do_not_overflow() {
        use Method::PooledZ as Z;
        check(
            (1_010_000, 1_000_000_000),
            (1_000_000, 1_000_000_000),
            8.506585734767214e-13,
            Z,
        );
        check(
            (1_000_010_000, 1_000_000_000_000),
            (1_000_000_000, 1_000_000_000_000),
            0.41148832031628557,
            Z,
        );
    }

    #[test]
    fn zero_errors_on_both_sides_is_p_one() {
        for total in [10.0, 100_000.0, 1e9] {
            let p = train_worse(counts(0.0, total), counts(0.0, total)).unwrap();
            assert_eq!(p.p_value, 1.0, "total {total}");
        }
    }

    #[test]
    fn all_errors_on_both_sides_is_p_one() {
        let p = train_worse(counts(1e6, 1e6), counts(2e6, 2e6)).unwrap();
        assert_eq!(p.p_value, 1.0);
    }

    #[test]
    fn no_traffic_or_invalid_counts_is_none() {
        let ok = counts(1.0, 100.0);
        assert!(train_worse(counts(0.0, 0.0), ok).is_none());
        assert!(
            train_worse(ok, counts(0.0, 0.4)).is_none(),
            "0.4 events rounds to none"
        );
        assert!(train_worse(counts(f64::NAN, 100.0), ok).is_none());
        assert!(train_worse(ok, counts(1.0, f64::INFINITY)).is_none());
        assert!(train_worse(counts(-1.0, 100.0), ok).is_none());
    }

    #[test]
    fn fractional_counts_are_rounded() {
        let exact = train_worse(counts(5.0, 100.0), counts(1.0, 100.0)).unwrap();
        let fuzzy = train_worse(counts(4.6, 100.3), counts(1.2, 99.8)).unwrap();
        assert_eq!(exact, fuzzy);
    }

    #[test]
    fn errors_above_total_are_clamped() {
        let clamped = train_worse(counts(101.0, 100.0), counts(1.0, 100.0)).unwrap();
        let full = train_worse(counts(100.0, 100.0), counts(1.0, 100.0)).unwrap();
        assert_eq!(clamped, full);
    }

    #[test]
    fn table_layout_does_not_change_fisher() {
        // c <= b and c > b take different layouts; both must equal the direct computation.
        for (a, b, c, d) in [(5, 95, 1, 99), (40, 10, 45, 5)] {
            let t = Table { a, b, c, d };
            let direct = fishers_exact(&[a, b, c, d], Alternative::Greater).unwrap();
            let got = t.fisher().unwrap();
            assert!(
                (got - direct).abs() < 1e-12,
                "{a} {b} {c} {d}: {got} vs {direct}"
            );
        }
    }

    #[test]
    fn method_choice_follows_documented_thresholds() {
        let t = |a, n1: u64, c, n2: u64| Table {
            a,
            b: n1 - a,
            c,
            d: n2 - c,
        };
        assert!(t(10, 5_000, 10, 5_000).wants_fisher(), "10k events in all");
        assert!(
            !t(100, 5_001, 100, 5_000).wants_fisher(),
            "over 10k, cells large"
        );
        assert!(
            t(1, 100_000, 100, 10_000_000).wants_fisher(),
            "expected cell ≈ 1"
        );
        // Sparse but both tail candidates exceed FISHER_MAX_TERMS.
        assert!(!t(5, 200_000, 1_000_000, 10_000_000_000).wants_fisher());
    }

    #[test]
    fn more_train_errors_never_raise_the_p_value() {
        let base = counts(20.0, 10_000.0);
        let mut last = 1.0;
        for errors in [0.0, 10.0, 20.0, 30.0, 40.0, 60.0] {
            let p = train_worse(counts(errors, 10_000.0), base).unwrap().p_value;
            assert!(p <= last + 1e-12, "{errors} errors: p {p} after {last}");
            last = p;
        }
        assert!(
            last < 0.01,
            "60 vs 20 errors in 10k is significant, p = {last}"
        );
    }
}
