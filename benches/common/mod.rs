//! Inputs shared by the criterion benchmarks: the example config, a population of trains and
//! the synthetic query results a Prometheus would return for them.
//!
//! The trains mirror the scale scenario of `examples/scale/`: ages spread from 5 to 70
//! minutes, each with the previous train as its baseline, one in a hundred burning its budget
//! fast. Results are built for the planner's own queries, so `assemble` and the decision see
//! exactly the shapes a real cycle produces (every train present in every per-train query).
#![allow(dead_code)]

use chrono::{DateTime, Duration, Utc};
use gate_engine::planner::{Part, Plan, ResultSample, Target, TrainSpec, ANCHORED_TERMS_PER_QUERY};
use gate_rules::config::{Config, Gate};

/// The evaluation time of every benchmark: 2026-11-01T12:00:00Z.
pub fn at() -> DateTime<Utc> {
    DateTime::from_timestamp(1_793_534_400, 0).expect("valid timestamp")
}

/// `fixtures/examples/gate.yaml`: the SPEC example with its four rules.
pub fn example_config() -> Config {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/examples/gate.yaml");
    gate_rules::config::load_file(&path).expect("the example config loads")
}

/// The example's `checkout` gate.
pub fn gate(config: &Config) -> &Gate {
    config
        .gate("checkout")
        .expect("the example has a checkout gate")
}

/// `n` trains `t-00000`…, started 5 to 70 minutes before [`at`], each with the previous train
/// as its baseline.
pub fn trains(n: usize) -> Vec<TrainSpec> {
    (0..n)
        .map(|i| TrainSpec {
            id: train_id(i).parse().expect("valid train ID"),
            started_at: at() - Duration::minutes(5 + (i % 66) as i64),
            baseline: (i > 0).then(|| train_id(i - 1).parse().expect("valid train ID")),
        })
        .collect()
}

/// The ID of train `i`.
pub fn train_id(i: usize) -> String {
    format!("t-{i:05}")
}

/// Whether train `i` burns fast (5 % errors) rather than being healthy (0.2 %).
pub fn failing(i: usize) -> bool {
    i % 100 == 7
}

/// What Prometheus would answer to every query of `plan` for `trains`: 2,000 requests a
/// minute per train over each window (or its age, if shorter), 0.2 % or 5 % of them errors;
/// shared (service-wide) queries get one unlabelled sample.
pub fn results(plan: &Plan, trains: &[TrainSpec]) -> Vec<Result<Vec<ResultSample>, String>> {
    // Baseline queries hold the terms of ANCHORED_TERMS_PER_QUERY trains each, in train order
    // among the trains with a baseline: the n-th (errors, total) pair answers for chunk n.
    let mut chunk_of = vec![None; trains.len()];
    let with_baseline = (0..trains.len()).filter(|&i| trains[i].baseline.is_some());
    for (k, i) in with_baseline.enumerate() {
        chunk_of[i] = Some(k / ANCHORED_TERMS_PER_QUERY);
    }
    let mut baseline_queries = 0;
    plan.queries
        .iter()
        .map(|q| {
            let chunk = matches!(q.target, Target::Baseline { .. }).then(|| {
                baseline_queries += 1;
                (baseline_queries - 1) / 2
            });
            if !q.per_train {
                let value = if q.part == Some(Part::Total) {
                    8.6e7
                } else {
                    4.0e4
                };
                return Ok(vec![ResultSample { train: None, value }]);
            }
            let window_secs = match &q.target {
                Target::Window { window, .. } => Some(window.as_duration().as_secs_f64()),
                _ => None,
            };
            Ok(trains
                .iter()
                .enumerate()
                .filter(|&(i, _)| chunk.is_none() || chunk_of[i] == chunk)
                .map(|(i, t)| {
                    let age = (at() - t.started_at).num_seconds() as f64;
                    let minutes = window_secs.unwrap_or(age).min(age) / 60.0;
                    let total = 2_000.0 * minutes;
                    let value = match q.part {
                        Some(Part::Events) if failing(i) => total * 0.05,
                        Some(Part::Events) => total * 0.002,
                        _ => total,
                    };
                    ResultSample {
                        train: Some(t.id.to_string()),
                        value,
                    }
                })
                .collect())
        })
        .collect()
}

/// A Prometheus query API body holding an instant vector of `n` series grouped by `train_id`,
/// as `sum by (train_id) (increase(...))` returns it.
pub fn vector_body(n: usize) -> Vec<u8> {
    let mut body = String::with_capacity(n * 80 + 100);
    body.push_str(r#"{"status":"success","data":{"resultType":"vector","result":["#);
    for i in 0..n {
        if i > 0 {
            body.push(',');
        }
        let value = 2_000.0 * (5 + i % 66) as f64 * if failing(i) { 0.05 } else { 0.002 };
        body.push_str(&format!(
            r#"{{"metric":{{"train_id":"{}"}},"value":[1793534400,"{}"]}}"#,
            train_id(i),
            value
        ));
    }
    body.push_str("]}}");
    body.into_bytes()
}
