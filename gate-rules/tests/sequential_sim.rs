//! Calibration and power of the error-delta tests on simulated trains (the fast version of
//! `examples/sequential_sim.rs`, with fewer trains per scenario). Fixed seeds: the figures are
//! the same on every run.

#[allow(dead_code)] // the example uses the rest
#[path = "sim/mod.rs"]
mod sim;

use sim::{Detector, Outcome, Scenario, ALPHA, LOOKS, LOOKS_30M, LOOKS_5M};

/// Trains per scenario (2,000 in the example). α + 3 standard errors at 200 trains is
/// 0.01 + 3·0.0070 = 3.1 %.
const TRAINS: usize = 200;

fn run(name: &str) -> (Scenario, Outcome) {
    let all = sim::scenarios();
    let (i, s) = all
        .iter()
        .enumerate()
        .find(|(_, s)| s.name == name)
        .unwrap_or_else(|| panic!("no scenario {name}"));
    (*s, sim::simulate(s, i, TRAINS))
}

#[test]
fn healthy_trains_are_flagged_no_more_often_than_alpha_allows() {
    let bound = ALPHA + 3.0 * (ALPHA * (1.0 - ALPHA) / TRAINS as f64).sqrt();
    let healthy: Vec<_> = sim::scenarios()
        .into_iter()
        .filter(|s| s.healthy())
        .collect();
    assert!(healthy.len() >= 7, "every null scenario is checked");
    for s in healthy {
        let (_, outcome) = run(s.name);
        let share = outcome.share_by(Detector::Sequential, LOOKS);
        assert!(
            share <= bound,
            "{}: {share} of healthy trains flagged (bound {bound})",
            s.name
        );
    }
}

#[test]
fn the_fixed_horizon_test_flags_healthy_trains() {
    let (_, outcome) = run("ρ = 1");
    let share = outcome.share_by(Detector::FixedHorizon, LOOKS);
    assert!(share >= 0.05, "re-tested at every look: {share}");
}

#[test]
fn twice_the_errors_is_caught_within_30_minutes() {
    let (_, outcome) = run("ρ = 2");
    let share = outcome.share_by(Detector::Sequential, LOOKS_30M);
    assert!(share >= 0.99, "{share}");
    let median = outcome
        .median_minutes(Detector::Sequential)
        .expect("most detected");
    assert!(median <= 10.0, "median {median} min");
}

#[test]
fn five_times_the_errors_is_caught_within_5_minutes() {
    let (_, outcome) = run("ρ = 5");
    assert_eq!(outcome.share_by(Detector::Sequential, LOOKS_5M), 1.0);
}

#[test]
fn one_and_a_half_times_the_errors_is_caught_within_2_hours() {
    let (_, outcome) = run("ρ = 1.5");
    let by_30m = outcome.share_by(Detector::Sequential, LOOKS_30M);
    let by_2h = outcome.share_by(Detector::Sequential, LOOKS);
    assert!(by_30m >= 0.70, "by 30 min: {by_30m}");
    assert!(by_2h >= 0.99, "by 2 h: {by_2h}");
}
