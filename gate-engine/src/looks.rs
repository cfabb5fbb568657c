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

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use gate_rules::config::{Config, Gate};
use gate_rules::sequential::SequentialState;
use gate_rules::TrainId;

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
    let looks = thinned(times(gate, train, at), max_looks);
    take_looks(client, config, gate, train, looks).await
}

/// [`catch_up`] for many trains at once, fetched together: each train's looks (thinned as
/// there) move to the next point of a grid shared by all of them, so that one batched fetch at
/// a grid time serves every train looking then. The grid is a multiple of the gate's interval
/// and at most `max_fetches` points span the looks, whatever the number of trains. The looks
/// stay fixed in advance (they depend on the start times and `at` only), so the tests stay
/// anytime-valid; they differ from [`before`]'s times by less than a grid step. A look moved
/// to `at` or past it is dropped: a train younger than a grid step takes none here, and its
/// evaluations from now on take its looks.
pub async fn catch_up_together(
    client: &Arc<PrometheusClient>,
    config: &Config,
    gate: &Gate,
    trains: &[TrainSpec],
    at: DateTime<Utc>,
    max_looks: usize,
    max_fetches: usize,
) -> Result<HashMap<TrainId, BTreeMap<String, SequentialState>>, PlanError> {
    let mut tests: HashMap<TrainId, BTreeMap<String, SequentialState>> = trains
        .iter()
        .map(|t| (t.id.clone(), BTreeMap::new()))
        .collect();
    let by_time = shared_looks(gate, trains, at, max_looks, max_fetches);
    for (t, specs) in by_time {
        let fetched = evaluate::fetch(client, config, gate, &specs, t).await?;
        if fetched.failure.as_ref().is_some_and(|e| e.is_unreachable()) {
            break;
        }
        for spec in &specs {
            if let (Some(Ok(signals)), Some(state)) =
                (fetched.signals.get(&spec.id), tests.get_mut(&spec.id))
            {
                signals.look(gate, state);
            }
        }
    }
    Ok(tests)
}

/// The trains looking at each time of [`catch_up_together`]'s grid, in time order.
fn shared_looks(
    gate: &Gate,
    trains: &[TrainSpec],
    at: DateTime<Utc>,
    max_looks: usize,
    max_fetches: usize,
) -> BTreeMap<DateTime<Utc>, Vec<TrainSpec>> {
    let own: Vec<Vec<DateTime<Utc>>> = trains
        .iter()
        .map(|t| thinned(times(gate, t, at), max_looks))
        .collect();
    let interval = (gate.interval.as_secs_f64() * 1000.0) as i64;
    let Some(earliest) = own.iter().filter_map(|l| l.first()).min() else {
        return BTreeMap::new();
    };
    let span = (at - *earliest).num_milliseconds().max(1) as u64;
    let interval = interval.max(1) as u64;
    let per_step = span.div_ceil(max_fetches.max(1) as u64);
    let grid = (per_step.div_ceil(interval).max(1) * interval) as i64;
    let mut by_time: BTreeMap<DateTime<Utc>, Vec<TrainSpec>> = BTreeMap::new();
    for (train, looks) in trains.iter().zip(own) {
        let snapped: std::collections::BTreeSet<i64> = looks
            .iter()
            .map(|t| t.timestamp_millis().div_euclid(grid) * grid + grid)
            .filter(|ms| *ms < at.timestamp_millis())
            .collect();
        for ms in snapped {
            if let Some(t) = DateTime::from_timestamp_millis(ms) {
                by_time.entry(t).or_default().push(train.clone());
            }
        }
    }
    by_time
}

/// The latest of `all` and every `every`-th before it, in time order: at most `max_looks`.
fn thinned(all: Vec<DateTime<Utc>>, max_looks: usize) -> Vec<DateTime<Utc>> {
    let every = all.len().div_ceil(max_looks.max(1)).max(1);
    let mut kept: Vec<_> = all.into_iter().rev().step_by(every).collect();
    kept.reverse();
    kept
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

    /// A config of one `before_start` gate evaluated every `interval`.
    fn config_every(interval: &str) -> Config {
        let yaml = format!(
            "prometheus:\n  url: http://localhost:9090\nslos:\n  - name: a\n    objective: 99.9\n    errors: e\n    total: t\ngates:\n  - name: g\n    slos: [a]\n    interval: {interval}\n    baseline: before_start\n    rules:\n      - name: r\n        when: error_delta(\"a\").significant\n        then: rollback\n"
        );
        gate_rules::config::load_str("t.yaml", &yaml).unwrap()
    }

    #[test]
    fn trains_catching_up_together_share_a_bounded_grid_of_looks() {
        let config = config_every("15s");
        let gate = &config.gates[0];
        let at: DateTime<Utc> = "2026-11-01T12:00:00Z".parse().unwrap();
        // 1,000 trains started one every 4 s over the last 67 minutes.
        let trains: Vec<TrainSpec> = (0..1000)
            .map(|i| TrainSpec {
                id: format!("t-{i}").parse::<TrainId>().unwrap(),
                started_at: at - Duration::seconds(4000 - 4 * i),
                baseline: None,
            })
            .collect();
        let by_time = shared_looks(gate, &trains, at, 12, 48);
        assert!(by_time.len() <= 49, "{} fetches", by_time.len());
        for (t, specs) in &by_time {
            assert!(*t < at);
            assert_eq!(t.timestamp_millis() % 15_000, 0, "on the interval's grid");
            assert!(
                specs.iter().all(|s| s.started_at < *t),
                "no look before a start"
            );
        }
        let looks_of = |id: &str| {
            by_time
                .values()
                .filter(|s| s.iter().any(|t| t.id.as_str() == id))
                .count()
        };
        assert!((6..=12).contains(&looks_of("t-0")), "{}", looks_of("t-0"));
        // Started 400 s before `at`, with the grid at 90 s: its looks land on 4 points.
        assert!(looks_of("t-900") >= 3, "{}", looks_of("t-900"));
        // Started 40 s before: its two looks move past `at`, and its evaluations take them.
        assert_eq!(looks_of("t-990"), 0);
    }

    #[test]
    fn times_step_from_the_start_and_stop_before_at() {
        let config = config_every("30s");
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
