//! Per-train CPU costs of an evaluation cycle, for the four rules of
//! `fixtures/examples/gate.yaml`: the CEL conditions, the decision function, the evidence
//! report (and its JSON, which the daemon stores and serves), and the HMAC signature of a
//! webhook body.
//!
//! A cycle over N trains pays these N times; `benches/batch.rs` measures the costs paid once
//! per query. Run with `cargo bench --bench per_train`.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicIsize, Ordering};

use criterion::{criterion_group, criterion_main, Criterion};
use gate_engine::evaluate;
use gate_engine::planner::{self, TrainSpec};
use gate_engine::report::{self, ReportInput};
use gate_engine::webhook::{self, sign, DecisionChange, Secret};
use gate_rules::decide::{self, Mode, Telemetry, TrainState};
use gate_rules::signals::{Resolver, Signals};

/// The signals of one healthy and one failing train, from a 100-train batch.
fn fixture() -> (
    gate_rules::Config,
    Vec<TrainSpec>,
    planner::Plan,
    Vec<Signals>,
) {
    let config = common::example_config();
    let trains = common::trains(100);
    let gate = common::gate(&config);
    let plan = planner::plan(&config, gate, &trains, common::at()).expect("plan");
    let results = common::results(&plan, &trains);
    let mut assembled = planner::assemble(&config, gate, &trains, &plan, results);
    // Train 8 is healthy; train 7 fails (see `common::failing`).
    let picked = [8, 7]
        .iter()
        .map(|&i| {
            assembled
                .remove(&trains[i].id)
                .expect("train assembled")
                .expect("train has signals")
        })
        .collect();
    let trains = vec![trains[8].clone(), trains[7].clone()];
    (config, trains, plan, picked)
}

fn bench(c: &mut Criterion) {
    let (config, trains, plan, signals) = fixture();
    let gate = common::gate(&config);
    let prev = TrainState::default();

    for (label, train, signals) in [
        ("healthy", &trains[0], &signals[0]),
        ("failing", &trains[1], &signals[1]),
    ] {
        let verdicts = signals.look(gate, &mut prev.sequential.clone());
        let resolver = Resolver {
            signals,
            slos: &config.slos,
            gate,
            verdicts: &verdicts,
        };
        let age = planner::age_secs(train, plan.at) as f64;

        c.bench_function(&format!("cel/4_rules/{label}"), |b| {
            b.iter(|| {
                for rule in &gate.rules {
                    black_box(rule.expr.evaluate(black_box(&resolver)));
                }
            })
        });

        c.bench_function(&format!("decide/{label}"), |b| {
            b.iter(|| {
                decide::decide(
                    gate,
                    &config.slos,
                    age,
                    Telemetry::Ok(black_box(signals)),
                    &prev,
                    Mode::Daemon,
                )
            })
        });

        let evaluation = decide::decide(
            gate,
            &config.slos,
            age,
            Telemetry::Ok(signals),
            &prev,
            Mode::Daemon,
        );
        let input = ReportInput {
            train,
            gate,
            slos: &config.slos,
            resolver: Some(resolver),
            plan: &plan,
            evaluation: &evaluation,
        };
        c.bench_function(&format!("report/build/{label}"), |b| {
            b.iter(|| report::build(black_box(input)))
        });
        let built = report::build(input);
        c.bench_function(&format!("report/json/{label}"), |b| {
            b.iter(|| serde_json::to_vec(black_box(&built)).expect("report serializes"))
        });

        let signals = Ok(signals.clone());
        c.bench_function(&format!("decide_train/{label}"), |b| {
            b.iter(|| {
                evaluate::decide_train(
                    &config,
                    gate,
                    train,
                    &plan,
                    black_box(&signals),
                    &prev,
                    Mode::Daemon,
                )
            })
        });
    }

    // The evidence as the daemon keeps it (a `serde_json::Value` per train) against the
    // report's own JSON text.
    let (_, built) = evaluate::decide_train(
        &config,
        gate,
        &trains[0],
        &plan,
        &Ok(signals[0].clone()),
        &prev,
        Mode::Daemon,
    );
    c.bench_function("report/to_value_then_string", |b| {
        b.iter(|| {
            let value = serde_json::to_value(black_box(&built)).expect("report encodes");
            serde_json::to_string(&value).expect("value encodes")
        })
    });
    let (value, value_heap) = heap_held_by(|| serde_json::to_value(&built).expect("encodes"));
    let (text, text_heap) = heap_held_by(|| serde_json::to_string(&built).expect("encodes"));
    let (_, report_heap) = heap_held_by(|| built.clone());
    eprintln!(
        "heap held by one healthy train's evidence: {value_heap} B as serde_json::Value, \
         {report_heap} B as EvaluationReport, {text_heap} B as JSON text ({} B long)",
        text.len()
    );
    drop(value);

    // A rollback webhook as the outbox sends it: the JSON body with the full evidence.
    let (evaluation, report) = evaluate::decide_train(
        &config,
        gate,
        &trains[1],
        &plan,
        &Ok(signals[1].clone()),
        &prev,
        Mode::Daemon,
    );
    let change = DecisionChange {
        train: trains[1].id.clone(),
        gate: gate.name.clone(),
        decision: evaluation.decision,
        previous: gate_rules::Decision::Pending,
        reason: evaluation.reason.clone(),
        rule: evaluation.rule.clone(),
        evaluated_at: plan.at,
        seq: 2,
        evidence: serde_json::to_value(&report).expect("report serializes"),
        artifact: None,
        gates: Vec::new(),
    };
    let hook = &config.webhooks[0];
    let event_id = webhook::new_event_id(plan.at, [7; 10]);
    let body =
        serde_json::to_vec(&webhook::render(hook, &event_id, &change, None)).expect("payload");
    let secret = Secret::new(b"a-webhook-secret-of-32-bytes-len".to_vec());
    let timestamp = plan.at.timestamp();
    c.bench_function(&format!("webhook/sign/{}_bytes", body.len()), |b| {
        b.iter(|| sign::signature(&secret, timestamp, black_box(&body)))
    });
}

/// Counts the bytes allocated and not yet freed, to tell what a value holds on the heap.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The value `make` returns and the heap bytes it holds (measured on this thread alone, with
/// nothing else allocating meanwhile).
fn heap_held_by<T>(make: impl FnOnce() -> T) -> (T, isize) {
    let before = LIVE.load(Ordering::Relaxed);
    let value = make();
    (value, LIVE.load(Ordering::Relaxed) - before)
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2))
        .sample_size(30);
    targets = bench
}
criterion_main!(benches);
