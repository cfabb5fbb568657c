//! Costs paid per query batch at 10,000 trains: planning the queries, parsing a
//! 10,000-series answer, mapping the answers back to per-train signals, and the whole CPU
//! part of a cycle (assemble, decide and report every train, as the daemon does after its
//! queries return).
//!
//! Run with `cargo bench --bench batch`.

mod common;

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use gate_engine::evaluate;
use gate_engine::planner;
use gate_engine::prometheus;
use gate_rules::config::BaselineKind;
use gate_rules::decide::{Mode, TrainState};

const TRAINS: usize = 10_000;

fn bench(c: &mut Criterion) {
    let config = common::example_config();
    let gate = common::gate(&config);
    let trains = common::trains(TRAINS);
    let at = common::at();

    let mut group = c.benchmark_group("batch_10000");
    group.throughput(Throughput::Elements(TRAINS as u64));

    group.bench_function("plan/previous_train", |b| {
        b.iter(|| planner::plan(&config, gate, black_box(&trains), at).expect("plan"))
    });
    let mut no_baseline = gate.clone();
    no_baseline.baseline = BaselineKind::None;
    group.bench_function("plan/baseline_none", |b| {
        b.iter(|| planner::plan(&config, &no_baseline, black_box(&trains), at).expect("plan"))
    });

    let body = common::vector_body(TRAINS);
    group.bench_function("parse_response_body", |b| {
        b.iter(|| prometheus::parse_response_body(black_box(&body)).expect("parses"))
    });

    let plan = planner::plan(&config, gate, &trains, at).expect("plan");
    let results = common::results(&plan, &trains);
    group.bench_function("assemble", |b| {
        b.iter_batched(
            || results.clone(),
            |results| planner::assemble(&config, gate, &trains, &plan, results),
            BatchSize::LargeInput,
        )
    });

    // Everything a cycle computes once the answers are in, for every train: signals, the
    // decision with carried state, the report and its JSON.
    let prev = TrainState::default();
    group.bench_function("assemble_decide_report_json", |b| {
        b.iter_batched(
            || results.clone(),
            |results| {
                let signals = planner::assemble(&config, gate, &trains, &plan, results);
                let mut bytes = 0;
                for train in &trains {
                    let (evaluation, report) = evaluate::decide_train(
                        &config,
                        gate,
                        train,
                        &plan,
                        &signals[&train.id],
                        &prev,
                        Mode::Daemon,
                    );
                    black_box(evaluation);
                    bytes += serde_json::to_vec(&report)
                        .expect("report serializes")
                        .len();
                }
                bytes
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(4))
        .sample_size(10);
    targets = bench
}
criterion_main!(benches);
