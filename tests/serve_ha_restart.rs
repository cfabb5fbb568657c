//! PostgreSQL restarted under two `gate serve` replicas (its own test binary: the cluster of
//! this process is stopped and started again, which no other test may see).
//!
//! While the database is down a write answers `503 store_unavailable`, reads of the trains
//! held are served from memory, and no decision is published that was not stored; `gate wait`
//! held on a replica rides the outage out. Once the database is back the replicas reconnect,
//! one leads again, and the pending train is decided and recorded with contiguous seqs.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use common::daemon::{Api, Daemon};
use common::fixtures::Scenario;
use common::live::{self, checkout_config};
use common::postgres::{pg_cluster, pg_database};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(90);

fn scenario() -> Scenario {
    Scenario::new(
        ["rs-before", "rs-during", "rs-after"]
            .iter()
            .map(|id| live::healthy(id))
            .collect(),
    )
}

fn replica(config: &Path, db: &str, dir: &Path, name: &str) -> Daemon {
    Daemon::start_with(
        config,
        Path::new(db),
        dir.join(format!("{name}.log")),
        &[],
        &["--replica", name, "--lease-ttl", "3s"],
    )
}

fn register(id: &str, started_at: &str) -> Value {
    json!({"id": id, "gate": "checkout", "started_at": started_at})
}

fn decision_of(list: &Value, id: &str) -> Option<String> {
    list["trains"]
        .as_array()?
        .iter()
        .find(|t| t["train"] == id)
        .map(|t| t["decision"].as_str().unwrap().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_ride_out_a_postgres_restart() {
    let now = Utc::now();
    let prometheus = live::prometheus(&scenario());
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("gate.yaml");
    std::fs::write(&config_path, checkout_config(prometheus.url(), None)).unwrap();
    let (_db, url) = pg_database();
    let api = Api::default();
    let old_start =
        (now - chrono::Duration::minutes(30)).to_rfc3339_opts(SecondsFormat::Secs, true);

    let mut a = replica(&config_path, &url, dir.path(), "a");
    let mut b = replica(&config_path, &url, dir.path(), "b");
    let (status, body) = api
        .post(&a.url("/v1/trains"), register("rs-before", &old_start))
        .await;
    assert_eq!(status, 201, "{body}");
    api.until(&b.url("/v1/trains"), "decided", WAIT, |l| {
        decision_of(l, "rs-before").as_deref() == Some("promote")
    })
    .await;
    // Registered just before the outage, started now: its verification lasts 10 s, longer
    // than the database stays up.
    let fresh_start = Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true);
    let (status, body) = api
        .post(&b.url("/v1/trains"), register("rs-during", &fresh_start))
        .await;
    assert_eq!(status, 201, "{body}");
    api.until(&a.url("/v1/trains"), "both replicas hold it", WAIT, |l| {
        decision_of(l, "rs-during").is_some()
    })
    .await;
    let waiting = Command::new(env!("CARGO_BIN_EXE_gate"))
        .args([
            "wait",
            "rs-during",
            "--timeout",
            "120s",
            "--server",
            &a.url(""),
        ])
        .env_remove("GATE_API_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    pg_cluster().stop();
    for daemon in [&a, &b] {
        let (status, body) = api
            .post(&daemon.url("/v1/trains"), register("rs-after", &old_start))
            .await;
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["error"]["code"], "store_unavailable", "{body}");
        // The trains held are still served.
        let during = api.get(&daemon.url("/v1/trains/rs-during")).await;
        assert_eq!(during["decision"], "pending", "{during}");
    }
    // Past the verification: nothing can be stored, so nothing is published.
    tokio::time::sleep(Duration::from_secs(12)).await;
    for daemon in [&a, &b] {
        let during = api.get(&daemon.url("/v1/trains/rs-during")).await;
        assert_eq!(
            during["decision"], "pending",
            "published unstored: {during}"
        );
    }
    pg_cluster().start_again();

    // Back: one leads, the pending train is decided and stored, writes are accepted again.
    api.until(
        &a.url("/v1/trains"),
        "decided after the restart",
        WAIT,
        |l| decision_of(l, "rs-during").as_deref() == Some("promote"),
    )
    .await;
    let waited = tokio::task::spawn_blocking(move || waiting.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        waited.status.code(),
        Some(0),
        "gate wait across the restart: {}{}",
        String::from_utf8_lossy(&waited.stdout),
        String::from_utf8_lossy(&waited.stderr)
    );
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let (status, body) = api
            .post(&b.url("/v1/trains"), register("rs-after", &old_start))
            .await;
        if status == 201 {
            break;
        }
        assert_eq!(status, 503, "{body}");
        assert!(std::time::Instant::now() < deadline, "{body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let ready_a = api.get(&a.url("/readyz")).await;
    let ready_b = api.get(&b.url("/readyz")).await;
    assert_eq!(ready_a["leader"], ready_b["leader"], "{ready_a} {ready_b}");
    let events = api.get(&b.url("/v1/trains/rs-during/events")).await;
    let seqs: Vec<u64> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "decision")
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as u64).collect::<Vec<_>>(),
        "{events}"
    );
    assert_eq!(a.sigterm(), 0, "{}", a.log());
    assert_eq!(b.sigterm(), 0, "{}", b.log());
}
