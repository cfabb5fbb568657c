//! Calibration and power of the error-delta tests: 2,000 simulated trains per scenario, the
//! table of `docs/statistics.md`. Run with
//!
//! ```text
//! cargo run --release -p gate-rules --example sequential_sim [trains]
//! ```

#[allow(dead_code)] // the fast test uses the rest
#[path = "../tests/sim/mod.rs"]
mod sim;

use sim::{Detector, LOOKS, LOOKS_30M};

fn main() {
    let trains: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("trains: a positive integer"))
        .unwrap_or(2000);
    println!(
        "{trains} trains per scenario, {} looks of {} s, alpha = {}, min_effect = {}, seed {}\n",
        LOOKS,
        sim::LOOK_SECS,
        sim::ALPHA,
        sim::MIN_EFFECT,
        sim::SEED
    );
    print!("| scenario |");
    for d in Detector::ALL {
        print!(" {}: by 30 min / by 2 h / median |", d.label());
    }
    println!();
    println!("|---|---|---|---|");
    for (i, s) in sim::scenarios().iter().enumerate() {
        let outcome = sim::simulate(s, i, trains);
        let healthy = if s.healthy() { " (healthy)" } else { "" };
        print!("| {}{healthy} |", s.name);
        for d in Detector::ALL {
            let median = outcome
                .median_minutes(d)
                .map_or("—".to_owned(), |m| format!("{m} min"));
            print!(
                " {} / {} / {median} |",
                percent(outcome.share_by(d, LOOKS_30M)),
                percent(outcome.share_by(d, LOOKS))
            );
        }
        println!();
    }
}

fn percent(x: f64) -> String {
    format!("{:.1} %", 100.0 * x)
}
