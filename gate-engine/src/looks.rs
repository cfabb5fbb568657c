//! The looks a train's anytime-valid tests took before an evaluation time, rebuilt from
//! Prometheus for a stateless evaluation.
//!
//! The daemon advances each train's `error_delta` test by one look per successful evaluation
//! (`gate_rules::signals::Signals::look`) and stores it with the train. `gate eval` has no
//! stored state, so it rebuilds the same process: it fetches the train's signals at every
//! `started_at + k·interval` before `--at` through the same [`evaluate::fetch`] the daemon
//! uses, and takes a look at each. A daemon whose evaluations ran at those times took the same
//! looks, so both report the same `e_value`; a daemon that evaluated at other times took other
//! looks — each sequence is valid on its own, the numbers differ a little.
//!
//! A fetch that fails takes no look, as a failed evaluation of the daemon does; its counts
//! merge into the next look.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use gate_rules::config::{Config, Gate};
use gate_rules::sequential::SequentialState;

use crate::evaluate;
use crate::planner::{PlanError, TrainSpec};
use crate::prometheus::PrometheusClient;

/// The evaluation times before `at` of a train evaluated every `gate.interval` from its start:
/// `started_at + k·interval` for `k ≥ 1`, strictly before `at` and no later than the end of
/// its watch (`verify_for + watch_for`), after which the daemon evaluates it no more.
pub fn times(gate: &Gate, train: &TrainSpec, at: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    let millis = |secs: f64| Duration::milliseconds((secs * 1000.0) as i64);
    let step = millis(gate.interval.as_secs_f64());
    if step <= Duration::zero() {
        return Vec::new();
    }
    let watched =
        train.started_at + millis(gate.verify_for.as_secs_f64() + gate.watch_for.as_secs_f64());
    let mut out = Vec::new();
    let mut t = train.started_at + step;
    while t < at && t <= watched {
        out.push(t);
        t += step;
    }
    out
}

/// The train's sequential tests after the looks at [`times`] before `at`.
pub async fn before(
    client: &Arc<PrometheusClient>,
    config: &Config,
    gate: &Gate,
    train: &TrainSpec,
    at: DateTime<Utc>,
) -> Result<BTreeMap<String, SequentialState>, PlanError> {
    take_looks(client, config, gate, train, times(gate, train, at)).await
}

/// The daemon's catch-up for a train first evaluated long after its start: the looks of
/// [`before`], thinned to at most `max_looks` of them evenly spread over the train's life, so
/// that the cost of a late registration is bounded. Any schedule of looks fixed in advance
/// keeps the test anytime-valid; fewer looks only take longer to reach significance.
pub async fn catch_up(
    client: &Arc<PrometheusClient>,
    config: &Config,
    gate: &Gate,
    train: &TrainSpec,
    at: DateTime<Utc>,
    max_looks: usize,
) -> Result<BTreeMap<String, SequentialState>, PlanError> {
    let all = times(gate, train, at);
    let every = all.len().div_ceil(max_looks.max(1)).max(1);
    // Keep the latest look and every `every`-th before it, in time order.
    let mut thinned: Vec<_> = all.into_iter().rev().step_by(every).collect();
    thinned.reverse();
    take_looks(client, config, gate, train, thinned).await
}

/// One look at each of `times`, in order.
async fn take_looks(
    client: &Arc<PrometheusClient>,
    config: &Config,
    gate: &Gate,
    train: &TrainSpec,
    times: Vec<DateTime<Utc>>,
) -> Result<BTreeMap<String, SequentialState>, PlanError> {
    let mut tests = BTreeMap::new();
    let trains = std::slice::from_ref(train);
    for t in times {
        let fetched = evaluate::fetch(client, config, gate, trains, t).await?;
        if fetched.failure.as_ref().is_some_and(|e| e.is_unreachable()) {
            // Every later look would wait out the same retries; the evaluation itself
            // reports the failure.
            break;
        }
        if let Some(Ok(signals)) = fetched.signals.get(&train.id) {
            signals.look(gate, &mut tests);
        }
    }
    Ok(tests)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gate_rules::TrainId;

    #[test]
    fn times_step_from_the_start_and_stop_before_at() {
        let yaml = "prometheus:\n  url: http://localhost:9090\nslos:\n  - name: a\n    objective: 99.9\n    errors: e\n    total: t\ngates:\n  - name: g\n    slos: [a]\n    interval: 30s\n    baseline: before_start\n    rules:\n      - name: r\n        when: error_delta(\"a\").significant\n        then: rollback\n";
        let config = gate_rules::config::load_str("t.yaml", yaml).unwrap();
        let gate = &config.gates[0];
        let start: DateTime<Utc> = "2026-11-01T10:00:00Z".parse().unwrap();
        let train = TrainSpec {
            id: "t-1".parse::<TrainId>().unwrap(),
            started_at: start,
            baseline: None,
        };
        let at = start + Duration::seconds(120);
        let got = times(gate, &train, at);
        let secs: Vec<i64> = got.iter().map(|t| (*t - start).num_seconds()).collect();
        assert_eq!(
            secs,
            [30, 60, 90],
            "the look at `at` itself is the evaluation's own"
        );
        assert_eq!(times(gate, &train, start).len(), 0);
        assert_eq!(times(gate, &train, at + Duration::seconds(1)).len(), 4);
        // Defaults verify_for 30m + watch_for 2h: 300 looks at most, however late `at` is.
        let late = times(gate, &train, start + Duration::days(30));
        assert_eq!(late.len(), 300);
        assert_eq!(
            late[299],
            start + Duration::hours(2) + Duration::minutes(30)
        );
    }
}
