//! SLO arithmetic: error ratio, burn rate, budget remaining, error delta.
//!
//! Pure functions over event counts. Each returns `None` where the answer would be
//! meaningless (zero traffic, NaN, negative counts from counter resets gone wrong), so callers
//! cannot mistake "no data" for "no errors".

use serde::Serialize;

/// The train since its start against its baseline over an equal window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ErrorDelta {
    /// `train_ratio - baseline_ratio`.
    pub absolute: f64,
    /// `absolute / baseline_ratio`; `+Inf` when the baseline has no errors and the train has some.
    pub relative: f64,
    /// One-sided p-value for "the train's error ratio is higher than the baseline's".
    pub p_value: f64,
    /// `p_value < alpha`.
    pub significant: bool,
    /// The train's error ratio since start.
    pub train_ratio: f64,
    /// The baseline's error ratio.
    pub baseline_ratio: f64,
}
