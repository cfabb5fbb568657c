//! The store's share of an evaluation cycle at 10,000 trains, on SQLite and on PostgreSQL side
//! by side, in one run.
//!
//! For each database it registers N trains (one transaction each, as `POST /v1/trains` does),
//! then writes cycles of N evaluations with [`Store::record_evaluations`], one transaction per
//! cycle as the daemon does: first a cycle in which every train's decision changes (a history
//! row each), then cycles in which none does. It reports, per cycle kind, the wall time and
//! this process's CPU time (getrusage), medians with min–max over `--cycles` cycles; and the
//! time to load every train back (what the daemon does at start). PostgreSQL runs in a private
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
    EvaluationWrite, Evidence, Lifecycle, NewTrain, Store, TrainFilter, WriteOutcome,
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
    changed: (Duration, Duration),
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
    let writes: Vec<_> = (0..trains)
        .map(|i| write(i, 0, Decision::Promote, 15, &promote))
        .collect();
    let (outcomes, wall, cpu_time) = timed(|| store.record_evaluations(&writes).unwrap());
    assert!(outcomes
        .iter()
        .all(|o| matches!(o, WriteOutcome::Changed { seq: 1 })));
    let changed = (wall, cpu_time);
    let mut unchanged = Vec::new();
    for cycle in 0..cycles {
        let t = 30 + 15 * cycle as i64;
        let writes: Vec<_> = (0..trains)
            .map(|i| write(i, 1, Decision::Promote, t, &promote))
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
    println!(
        "| a cycle in which every decision changes: wall / CPU | {} / {} | {} / {} |",
        ms(sqlite.changed.0),
        ms(sqlite.changed.1),
        ms(postgres.changed.0),
        ms(postgres.changed.1)
    );
    let walls = |f: &Figures| f.unchanged.iter().map(|u| u.0).collect::<Vec<_>>();
    let cpus = |f: &Figures| f.unchanged.iter().map(|u| u.1).collect::<Vec<_>>();
    println!(
        "| a cycle in which none changes (n={cycles}): wall | {} | {} |",
        spread(walls(&sqlite)),
        spread(walls(&postgres))
    );
    println!(
        "| the same: CPU of gate's process | {} | {} |",
        spread(cpus(&sqlite)),
        spread(cpus(&postgres))
    );
    println!(
        "| load every active train (start-up; n={cycles}) | {} | {} |",
        spread(sqlite.load),
        spread(postgres.load)
    );
}
