//! The store's share of an evaluation cycle at 10,000 trains, on SQLite and on PostgreSQL side
//! by side, in one run.
//!
//! For each database it registers N trains (one transaction each, as `POST /v1/trains` does),
//! then writes cycles of N evaluations as the daemon does:
//!
//! * cycles in which every train's decision changes (promote and pause in turn: a history row
//!   and a webhook event each), written with [`Store::record_evaluations`] in one transaction;
//! * cycles in which none changes, as the daemon writes them: deferred
//!   ([`Store::defer_evaluations`], no write), and the checkpoint that writes them once a
//!   minute ([`Store::checkpoint`], one transaction for all);
//! * for comparison, cycles in which none changes written with `record_evaluations` (every
//!   row every cycle, what the daemon did before deferring).
//!
//! It reports, per kind, the wall time and this process's CPU time (getrusage), medians with
//! min–max over `--cycles` cycles; and the time to load every train back (what the daemon
//! does at start). PostgreSQL runs in a private
//! cluster on loopback (`tests/common/postgres.rs`: initdb + pg_ctl, `fsync=off` is *not*
//! set here: commits are durable as in production).
//!
//! ```text
//! cargo bench --bench store_cycle -- [--trains 10000] [--cycles 5]
//! ```
//!
//! Needs PostgreSQL's server binaries (`apt-get install postgresql`). Linux only (getrusage).

#[allow(dead_code)]
#[path = "../tests/common/postgres.rs"]
mod postgres_cluster;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use gate_engine::store::{
    EvaluationWrite, Evidence, Lifecycle, NewOutboxEvent, NewTrain, Store, TrainFilter,
    WriteOutcome,
};
use gate_rules::decide::TrainState;
use gate_rules::Decision;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse().expect("a number"))
        .unwrap_or(default)
}

/// This process's user + system CPU time.
fn cpu() -> Duration {
    // SAFETY: getrusage fills the zeroed `rusage` it is given for RUSAGE_SELF.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        assert_eq!(libc::getrusage(libc::RUSAGE_SELF, &mut usage), 0);
        usage
    };
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

fn at(secs: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap() + chrono::Duration::seconds(secs)
}

fn id(i: usize) -> gate_rules::TrainId {
    gate_rules::train_id::validate(&format!("bench-{i:05}")).unwrap()
}

/// An evidence document of the size the daemon stores per train (≈ 2.8 KB).
fn evidence(decision: Decision) -> Evidence {
    let windows: Vec<_> = ["5m", "30m", "1h", "6h"]
        .iter()
        .map(|w| {
            serde_json::json!({
                "window": w,
                "errors": 12.0, "total": 23988.0, "burn_rate": 0.5002501250625313,
                "query": format!("sum by (train_id) (increase(http_requests_total{{service=\"checkout\", code=~\"5..\", train_id=~\"bench-.*\"}}[{w}]))"),
            })
        })
        .collect();
    Evidence::encode(&serde_json::json!({
        "decision": decision,
        "reason": "all rules pass; verified for 30m",
        "rules": [
            {"name": "fast-burn", "result": false, "values": {"burn_rate(\"checkout-availability\", \"1h\")": 0.5}},
            {"name": "slow-burn", "result": false, "values": {"burn_rate(\"checkout-availability\", \"6h\")": 0.5}},
        ],
        "signals": {"windows": windows},
    }))
    .unwrap()
}

fn write(i: usize, seq: u64, decision: Decision, t: i64, evidence: &Evidence) -> EvaluationWrite {
    EvaluationWrite {
        train: id(i),
        based_on_seq: seq,
        decision,
        reason: format!("{decision}: all rules pass"),
        rule: None,
        evaluated_at: at(t),
        state: TrainState {
            decision: Some(decision),
            ..TrainState::default()
        },
        evidence: evidence.clone(),
        lifecycle: match decision {
            Decision::Promote => Lifecycle::Promoted,
            _ => Lifecycle::Verifying,
        },
        events: Vec::new(),
        gates: None,
    }
}

struct Figures {
    register: Duration,
    changed: Vec<(Duration, Duration)>,
    deferred: Vec<(Duration, Duration)>,
    checkpoint: Vec<(Duration, Duration)>,
    unchanged: Vec<(Duration, Duration)>,
    load: Vec<Duration>,
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration, Duration) {
    let (wall, cpu0) = (Instant::now(), cpu());
    let value = f();
    (value, wall.elapsed(), cpu() - cpu0)
}

fn run(store: &Store, trains: usize, cycles: usize) -> Figures {
    let (_, register, _) = timed(|| {
        for i in 0..trains {
            store
                .register(
                    &NewTrain {
                        id: id(i),
                        gate: "checkout".to_string(),
                        gates: Vec::new(),
                        started_at: Some(at(-1800)),
                        baseline: None,
                        labels: BTreeMap::new(),
                    },
                    at(0),
                )
                .unwrap();
        }
    });
    let promote = evidence(Decision::Promote);
    let pause = evidence(Decision::Pause);
    let mut seq = 0;
    let mut t = 0;
    let mut changed = Vec::new();
    for cycle in 0..cycles {
        t += 15;
        let (decision, evidence) = if cycle % 2 == 0 {
            (Decision::Promote, &promote)
        } else {
            (Decision::Pause, &pause)
        };
        // Each change queues one webhook event, as a train with one webhook does.
        let writes: Vec<_> = (0..trains)
            .map(|i| EvaluationWrite {
                events: vec![NewOutboxEvent {
                    event_id: format!("bench-{i:05}-{}", seq + 1),
                    webhook: "deployer".to_string(),
                    payload: serde_json::json!({"train": id(i).as_str(), "seq": seq + 1}),
                }],
                ..write(i, seq, decision, t, evidence)
            })
            .collect();
        let (outcomes, wall, cpu_time) = timed(|| store.record_evaluations(&writes).unwrap());
        seq += 1;
        assert!(outcomes.iter().all(|o| *o == WriteOutcome::Changed { seq }));
        changed.push((wall, cpu_time));
    }
    let last = if cycles % 2 == 1 {
        (Decision::Promote, &promote)
    } else {
        (Decision::Pause, &pause)
    };
    let mut deferred = Vec::new();
    let mut checkpoint = Vec::new();
    for _ in 0..cycles {
        t += 15;
        let writes: Vec<_> = (0..trains)
            .map(|i| write(i, seq, last.0, t, last.1))
            .collect();
        let (_, wall, cpu_time) = timed(|| store.defer_evaluations(writes, at(t)));
        deferred.push((wall, cpu_time));
        let (done, wall, cpu_time) = timed(|| store.checkpoint().unwrap());
        assert_eq!(done.written, trains as u64);
        checkpoint.push((wall, cpu_time));
    }
    let mut unchanged = Vec::new();
    for _ in 0..cycles {
        t += 15;
        let writes: Vec<_> = (0..trains)
            .map(|i| write(i, seq, last.0, t, last.1))
            .collect();
        let (outcomes, wall, cpu_time) = timed(|| store.record_evaluations(&writes).unwrap());
        assert!(outcomes.iter().all(|o| *o == WriteOutcome::Unchanged));
        unchanged.push((wall, cpu_time));
    }
    let load = (0..cycles)
        .map(|_| {
            let (records, wall, _) = timed(|| store.trains(TrainFilter::Active).unwrap());
            assert_eq!(records.len(), trains);
            wall
        })
        .collect();
    Figures {
        register,
        changed,
        deferred,
        checkpoint,
        unchanged,
        load,
    }
}

fn ms(d: Duration) -> String {
    format!("{:.0}", d.as_secs_f64() * 1000.0)
}

/// "median (min–max)" in milliseconds.
fn spread(mut values: Vec<Duration>) -> String {
    values.sort();
    let median = values[values.len() / 2];
    format!(
        "{} ({}–{})",
        ms(median),
        ms(values[0]),
        ms(*values.last().unwrap())
    )
}

fn main() {
    let trains = arg("--trains", 10_000);
    let cycles = arg("--cycles", 5);
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Store::open(dir.path().join("gate.db").as_path()).unwrap();
    let sqlite = run(&sqlite, trains, cycles);

    let (_db, url) = postgres_cluster::pg_database();
    let postgres = std::thread::spawn(move || {
        let store = Store::open(url.as_str()).unwrap();
        run(&store, trains, cycles)
    })
    .join()
    .unwrap();

    println!("| {trains} trains, ms | SQLite | PostgreSQL |");
    println!("|---|---|---|");
    println!(
        "| register every train (one transaction each) | {} | {} |",
        ms(sqlite.register),
        ms(postgres.register)
    );
    let rows: [(&str, fn(&Figures) -> &Vec<(Duration, Duration)>); 4] = [
        ("a cycle in which every decision changes", |f| &f.changed),
        (
            "a cycle in which none changes, deferred (the daemon)",
            |f| &f.deferred,
        ),
        ("the checkpoint of every train's deferred evaluation", |f| {
            &f.checkpoint
        }),
        ("a cycle in which none changes, every row written", |f| {
            &f.unchanged
        }),
    ];
    for (what, kind) in rows {
        let walls = |f: &Figures| kind(f).iter().map(|u| u.0).collect::<Vec<_>>();
        let cpus = |f: &Figures| kind(f).iter().map(|u| u.1).collect::<Vec<_>>();
        println!(
            "| {what} (n={cycles}): wall | {} | {} |",
            spread(walls(&sqlite)),
            spread(walls(&postgres))
        );
        println!(
            "| the same: CPU of gate's process | {} | {} |",
            spread(cpus(&sqlite)),
            spread(cpus(&postgres))
        );
    }
    println!(
        "| load every active train (start-up; n={cycles}) | {} | {} |",
        spread(sqlite.load),
        spread(postgres.load)
    );
}
