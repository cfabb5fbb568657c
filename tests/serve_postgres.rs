//! `gate serve` on PostgreSQL: a real cluster (`initdb` + `pg_ctl`, tests/common/postgres.rs),
//! a real Prometheus backfilled around the test's start, the real binary.
//!
//! It checks what a team moving its store to PostgreSQL relies on: trains registered through
//! the API are evaluated and decided as on SQLite; after a SIGKILL the next daemon carries on
//! with every decision, seq and webhook event the first one committed; the offline commands
//! (`gate report --db`) read the same database; and the URL's password never reaches the log.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use common::daemon::{Api, Daemon};
use common::fixtures::Scenario;
use common::live::{self, checkout_config};
use common::postgres::pg_database;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(60);

fn scenario() -> Scenario {
    Scenario::new(vec![
        live::healthy("pg-healthy"),
        live::burning("pg-fastburn"),
    ])
}

fn gate(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_gate"))
        .args(args)
        .env_remove("GATE_API_TOKEN")
        .stdin(Stdio::null())
        .output()
        .expect("run gate")
}

fn decision(list: &Value, id: &str) -> Option<(String, u64)> {
    list["trains"]
        .as_array()?
        .iter()
        .find(|t| t["train"] == id)
        .map(|t| {
            (
                t["decision"].as_str().unwrap().to_string(),
                t["seq"].as_u64().unwrap(),
            )
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_on_postgres_decides_and_survives_sigkill() {
    let now = Utc::now();
    let prometheus = live::prometheus(&scenario());
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("gate.yaml");
    std::fs::write(&config_path, checkout_config(prometheus.url(), None)).unwrap();
    let (_db, url) = pg_database();
    // Trust authentication ignores the password; it is here to be kept out of the log.
    let url = url.replacen("postgres://gate@", "postgres://gate:s3cret-pw@", 1);
    let db = std::path::Path::new(&url);

    let mut first = Daemon::start(&config_path, db, dir.path().join("first.log"));
    let api = Api::default();
    let started = (now - chrono::Duration::minutes(30)).to_rfc3339_opts(SecondsFormat::Secs, true);
    for id in ["pg-healthy", "pg-fastburn"] {
        let (status, body) = api
            .post(
                &first.url("/v1/trains"),
                json!({"id": id, "gate": "checkout", "started_at": started}),
            )
            .await;
        assert_eq!(status, 201, "{id}: {body}");
    }
    let decided = api
        .until(&first.url("/v1/trains"), "both decided", WAIT, |b| {
            decision(b, "pg-healthy").is_some_and(|(d, _)| d == "promote")
                && decision(b, "pg-fastburn").is_some_and(|(d, _)| d == "rollback")
        })
        .await;

    // SIGKILL: the next daemon has every committed decision, with its seq and events.
    let before: Vec<Value> = {
        let mut trains = Vec::new();
        for id in ["pg-healthy", "pg-fastburn"] {
            trains.push(
                api.get(&first.url(&format!("/v1/trains/{id}/events")))
                    .await,
            );
        }
        trains
    };
    first.sigkill();
    let log = first.log();
    assert!(log.contains("gate:***@"), "the store is logged: {log}");
    assert!(!log.contains("s3cret-pw"), "the password in the log: {log}");

    let mut next = Daemon::start(&config_path, db, dir.path().join("next.log"));
    let list = api.get(&next.url("/v1/trains")).await;
    for id in ["pg-healthy", "pg-fastburn"] {
        let (was, seq) = decision(&decided, id).unwrap();
        let (now_, seq_now) = decision(&list, id).unwrap();
        assert_eq!(now_, was, "{id}");
        assert!(
            seq_now >= seq,
            "{id}: seq went back from {seq} to {seq_now}"
        );
    }
    for (id, before) in ["pg-healthy", "pg-fastburn"].iter().zip(&before) {
        let after = api.get(&next.url(&format!("/v1/trains/{id}/events"))).await;
        let changes = |events: &Value| -> Vec<Value> {
            events["events"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| e["kind"] == "decision")
                .map(|e| json!([e["seq"], e["decision"]]))
                .collect()
        };
        assert!(!changes(before).is_empty(), "{id}: {before}");
        assert_eq!(
            changes(&after)[..changes(before).len()],
            changes(before)[..],
            "{id}: the history survives"
        );
    }

    // Offline readers use the same database while the daemon runs.
    let report = gate(&["report", "--db", &url, "--since", "1d", "--format", "json"]);
    assert_eq!(
        report.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&report.stderr)
    );
    let report: Value = serde_json::from_slice(&report.stdout).unwrap();
    assert_eq!(report["overall"]["started"], 2, "{report}");
    assert_eq!(next.sigterm(), 0, "{}", next.log());
}
