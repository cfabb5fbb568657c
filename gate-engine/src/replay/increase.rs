//! Prometheus' `increase()` over raw samples held in memory.
//!
//! A replay evaluates windows that grow with every step — a train's events since its start,
//! the baseline's equal-length window before that start — and no range query has a window
//! that changes from step to step. So the replay reads those counters' raw samples once
//! ([`gate_rules::query::samples_query`]) and computes, for each step, what
//! `increase(x[w])` evaluated at that step returns: the same samples (Prometheus 2.x takes
//! `[t − w, t]`, both ends included), the same counter-reset correction and the same
//! extrapolation towards the window's ends (`extrapolatedRate` in Prometheus'
//! `promql/functions.go`), in the same floating-point order. A series with fewer than two
//! samples in the window yields nothing, as in Prometheus.
//!
//! Finding a window's samples is a binary search; resets are counted by a prefix sum, so a
//! step costs O(log n) per series unless its window holds a reset.

/// One series' samples, in time order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawSeries {
    /// Sample times, unix milliseconds, increasing.
    times: Vec<i64>,
    /// Sample values.
    values: Vec<f64>,
    /// `resets[i]`: counter resets among samples `0..=i`.
    resets: Vec<u32>,
}

impl RawSeries {
    /// Appends samples later than the last one held (earlier or equal ones are skipped, so
    /// overlapping reads of consecutive chunks do not double samples).
    pub fn extend(&mut self, samples: impl IntoIterator<Item = (i64, f64)>) {
        for (t, v) in samples {
            if self.times.last().is_some_and(|&last| t <= last) {
                continue;
            }
            let reset = self.values.last().is_some_and(|&prev| v < prev);
            let before = self.resets.last().copied().unwrap_or(0);
            self.times.push(t);
            self.values.push(v);
            self.resets.push(before + u32::from(reset));
        }
    }

    /// Whether the series holds no sample.
    pub fn is_empty(&self) -> bool {
        self.times.is_empty()
    }

    /// `increase()` over `[start, end]` (unix ms, both included), evaluated at `end`; `None`
    /// when fewer than two samples fall in the window.
    pub fn increase(&self, start: i64, end: i64) -> Option<f64> {
        let first = self.times.partition_point(|&t| t < start);
        let stop = self.times.partition_point(|&t| t <= end);
        if stop < first + 2 {
            return None;
        }
        let last = stop - 1;
        let (t0, v0) = (self.times[first], self.values[first]);
        let (tn, vn) = (self.times[last], self.values[last]);
        let mut result = vn - v0;
        if self.resets[last] != self.resets[first] {
            // Prometheus adds the value before each reset, starting from 0, in order.
            let mut last_value = 0.0;
            for &v in &self.values[first..=last] {
                if v < last_value {
                    result += last_value;
                }
                last_value = v;
            }
        }
        let mut duration_to_start = (t0 - start) as f64 / 1000.0;
        let duration_to_end = (end - tn) as f64 / 1000.0;
        let sampled_interval = (tn - t0) as f64 / 1000.0;
        let average_between_samples = sampled_interval / (last - first) as f64;
        if result > 0.0 && v0 >= 0.0 {
            // A counter does not go below zero: extrapolate at most to its zero point.
            let duration_to_zero = sampled_interval * (v0 / result);
            if duration_to_zero < duration_to_start {
                duration_to_start = duration_to_zero;
            }
        }
        let threshold = average_between_samples * 1.1;
        let mut extrapolate_to = sampled_interval;
        extrapolate_to += if duration_to_start < threshold {
            duration_to_start
        } else {
            average_between_samples / 2.0
        };
        extrapolate_to += if duration_to_end < threshold {
            duration_to_end
        } else {
            average_between_samples / 2.0
        };
        Some(result * (extrapolate_to / sampled_interval))
    }
}

/// `sum(increase(...))` over `series` in their order: `None` when no series yields a value.
pub fn sum_increase<'a>(
    series: impl IntoIterator<Item = &'a RawSeries>,
    start: i64,
    end: i64,
) -> Option<f64> {
    let mut sum: Option<f64> = None;
    for s in series {
        if let Some(v) = s.increase(start, end) {
            sum = Some(sum.map_or(v, |acc| acc + v));
        }
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(points: &[(i64, f64)]) -> RawSeries {
        let mut s = RawSeries::default();
        s.extend(points.iter().copied());
        s
    }

    #[test]
    fn a_window_on_the_sample_grid_is_not_extrapolated() {
        // 10 per 30 s from 0: over [0, 300 s] exactly 100.
        let s = series(
            &(0..=20)
                .map(|i| (i * 30_000, i as f64 * 10.0))
                .collect::<Vec<_>>(),
        );
        assert_eq!(s.increase(0, 300_000), Some(100.0));
        assert_eq!(s.increase(60_000, 120_000), Some(20.0));
    }

    #[test]
    fn fewer_than_two_samples_is_no_value() {
        let s = series(&[(0, 1.0), (30_000, 2.0)]);
        assert_eq!(s.increase(10_000, 40_000), None);
        assert_eq!(s.increase(0, 30_000), Some(1.0));
        assert_eq!(
            sum_increase([&s, &RawSeries::default()], 10_000, 40_000),
            None
        );
    }

    #[test]
    fn extrapolates_like_prometheus() {
        // Samples at 10 s and 40 s (values 100, 130) in a [0, 60 s] window: both ends are
        // within 1.1 × 30 s, so the 30-s increase is stretched to the 60-s window: 60.
        let s = series(&[(10_000, 100.0), (40_000, 130.0)]);
        assert_eq!(s.increase(0, 60_000), Some(60.0));
        // A start far before the first sample (and its zero point, 100 s before it)
        // extrapolates half an interval there: 30 × (30 + 15 + 20) / 30.
        assert_eq!(s.increase(-120_000, 60_000), Some(65.0));
        // A counter near zero extrapolates at most to its zero point: 10 → 40 over 30 s,
        // zero at 10 s before the first sample.
        let z = series(&[(20_000, 10.0), (50_000, 40.0)]);
        assert_eq!(z.increase(0, 50_000), Some(30.0 * 40.0 / 30.0));
    }

    #[test]
    fn counter_resets_add_the_value_before_the_reset() {
        let s = series(&[(0, 5.0), (30_000, 10.0), (60_000, 2.0), (90_000, 6.0)]);
        // 10 − 5 + 6 (after reset from 10: +10 − 0) → (6 − 5) + 10 = 11.
        assert_eq!(s.increase(0, 90_000), Some(11.0));
        // A window after the reset sees none.
        assert_eq!(s.increase(60_000, 90_000), Some(4.0));
    }

    #[test]
    fn overlapping_extends_keep_each_sample_once() {
        let mut s = series(&[(0, 1.0), (30_000, 2.0)]);
        s.extend([(30_000, 2.0), (60_000, 3.0)]);
        assert_eq!(s.times, vec![0, 30_000, 60_000]);
        assert_eq!(s.increase(0, 60_000), Some(2.0));
    }
}
