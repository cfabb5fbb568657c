//! `GET /v1/report`: the trains of a time range in figures, per gate and overall, for a
//! monthly review. `gate report --format json` prints the same object, from the server or
//! from a store file. `docs/report.md` defines every figure and its denominator.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The report over the trains started from `from` to `to`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Report {
    /// The range asked for, as given (`?since=`, `--since`), e.g. `30d`.
    #[schema(example = "30d")]
    pub since: String,
    /// The start of the range: trains started at or after it are counted.
    #[schema(value_type = String, format = DateTime)]
    pub from: DateTime<Utc>,
    /// The end of the range: when the report was made.
    #[schema(value_type = String, format = DateTime)]
    pub to: DateTime<Utc>,
    /// The one gate asked for (`?gate=`), or `null` for every gate.
    pub gate: Option<String>,
    /// Every counted train once.
    pub overall: Figures,
    /// Per gate, by name: the trains the gate judged.
    pub gates: BTreeMap<String, Figures>,
}

/// The figures of a set of trains (a gate's, or all).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Figures {
    /// Trains started in the range.
    pub started: u64,
    /// Of those, trains whose decision became `promote` at least once.
    pub promoted: u64,
    /// Trains whose decision became `rollback` at least once.
    pub rolled_back: u64,
    /// Trains whose decision became `rollback` after it had been `promote`.
    pub rolled_back_after_promotion: u64,
    /// Trains whose decision became `pause` at least once.
    pub paused: u64,
    /// Seconds the trains spent with the decision `pause`, summed over the trains (a pause
    /// still on counts up to `to`, or to the train's stop).
    pub paused_secs: f64,
    /// Trains with at least one operator override.
    pub overridden: u64,
    /// Trains whose outcome is known: watched to the end of `watch_for` after promotion,
    /// rolled back, or stopped.
    pub finished: u64,
    /// Trains watched to the end of `watch_for` after their promotion (lifecycle `done`).
    pub succeeded: u64,
    /// Trains stopped by an operator before either outcome.
    pub stopped: u64,
    /// `succeeded / finished`; `null` when no train finished.
    pub release_success_rate: Option<f64>,
    /// `rolled_back / started`; `null` when no train started.
    pub rollback_frequency: Option<f64>,
    /// `rolled_back_after_promotion / promoted`; `null` when no train was promoted.
    pub change_failure_rate: Option<f64>,
    /// Time from a train's start to its verdict.
    pub time_to_verdict: TimeToVerdict,
    /// Rollbacks by the rule that caused them (a train rolled back twice counts twice).
    pub rollback_rules: BTreeMap<String, u64>,
    /// Rollbacks an operator forced (`gate override --decision rollback`).
    pub override_rollbacks: u64,
}

/// The time from each train's start to its verdict: the first time its decision became
/// `promote` or `rollback`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TimeToVerdict {
    /// Trains that reached a verdict.
    pub trains: u64,
    /// The median, in seconds; `null` without trains.
    pub median_secs: Option<f64>,
    /// The 90th percentile, in seconds; `null` without trains.
    pub p90_secs: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_are_refused() {
        let err = serde_json::from_value::<TimeToVerdict>(serde_json::json!({
            "trains": 0, "median_secs": null, "p90_secs": null, "mean_secs": 1
        }))
        .unwrap_err();
        assert!(err.to_string().contains("mean_secs"), "{err}");
    }
}
