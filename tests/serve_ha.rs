//! Several `gate serve` replicas on one PostgreSQL store: a real cluster
//! (tests/common/postgres.rs), a real Prometheus backfilled around the test's start, a real
//! webhook receiver, the real binary three times.
//!
//! It checks what a team running replicas behind a load balancer relies on: one replica leads
//! and every `/readyz` agrees which; a train registered through a follower is evaluated by
//! the leader and every replica answers for it; when the leader is SIGKILLed (mid-cycle, then
//! again with a webhook in flight) a follower takes over, and `gate wait` against a follower
//! rides the failover out; every decision change reaches the receiver under one event ID (a
//! redelivery repeats the ID, never a new one);
//! and a leader frozen past its lease (SIGSTOP) and woken again (SIGCONT) writes nothing and
//! follows.
//!
//! Leases are short here (`--lease-ttl 3s`) so that takeovers happen within seconds; waits
//! poll with generous deadlines, and the takeover times are printed, not asserted.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{SecondsFormat, Utc};
use common::daemon::{Api, Daemon};
use common::fixtures::Scenario;
use common::live::{self, checkout_config};
use common::postgres::pg_database;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(90);

fn scenario(healthy: &[&str], burning: &[&str]) -> Scenario {
    let healthy = healthy.iter().map(|id| live::healthy(id));
    Scenario::new(
        healthy
            .chain(burning.iter().map(|id| live::burning(id)))
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

fn started() -> String {
    (Utc::now() - chrono::Duration::minutes(30)).to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The replica `/readyz` names as leader, once one leads and `daemon` knows it.
async fn leader_seen_by(api: &Api, daemon: &Daemon, deadline: Duration) -> String {
    let ready = api
        .until(&daemon.url("/readyz"), "a leader", deadline, |b| {
            b["leader"].is_string()
        })
        .await;
    ready["leader"].as_str().unwrap().to_string()
}

async fn role(api: &Api, daemon: &Daemon) -> Value {
    api.get(&daemon.url("/readyz")).await
}

fn decision_of(list: &Value, id: &str) -> Option<String> {
    list["trains"]
        .as_array()?
        .iter()
        .find(|t| t["train"] == id)
        .map(|t| t["decision"].as_str().unwrap().to_string())
}

/// Every decision change of `ids` as the store keeps it: (train, seq, decision).
async fn changes(api: &Api, daemon: &Daemon, ids: &[&str]) -> BTreeSet<(String, u64, String)> {
    let mut out = BTreeSet::new();
    for id in ids {
        let events = api
            .get(&daemon.url(&format!("/v1/trains/{id}/events")))
            .await;
        let mut last = 0;
        for e in events["events"].as_array().unwrap() {
            if e["kind"] != "decision" {
                continue;
            }
            let seq = e["seq"].as_u64().unwrap();
            assert!(seq > last, "{id}: seq {seq} after {last}: {events}");
            last = seq;
            out.insert((
                id.to_string(),
                seq,
                e["decision"].as_str().unwrap().to_string(),
            ));
        }
    }
    out
}

/// The webhook requests received: event ID → (train, seq, decision), and how many times
/// each ID arrived.
async fn received(
    receiver: &wiremock::MockServer,
) -> (
    BTreeMap<String, (String, u64, String)>,
    BTreeMap<String, usize>,
) {
    let mut events = BTreeMap::new();
    let mut times = BTreeMap::new();
    for request in receiver.received_requests().await.unwrap_or_default() {
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        let id = request
            .headers
            .get("x-gate-event-id")
            .expect("X-Gate-Event-Id")
            .to_str()
            .unwrap()
            .to_string();
        assert_eq!(body["id"], id, "{body}");
        let change = (
            body["train"].as_str().unwrap().to_string(),
            body["seq"].as_u64().unwrap(),
            body["decision"].as_str().unwrap().to_string(),
        );
        if let Some(seen) = events.insert(id.clone(), change.clone()) {
            assert_eq!(seen, change, "one event ID, two changes");
        }
        *times.entry(id).or_insert(0) += 1;
    }
    (events, times)
}

/// Waits until every change in `want` reached the receiver; then checks that no change
/// arrived under two event IDs.
async fn delivered(receiver: &wiremock::MockServer, want: &BTreeSet<(String, u64, String)>) {
    let deadline = Instant::now() + WAIT;
    loop {
        let (events, times) = received(receiver).await;
        let got: BTreeSet<_> = events.values().cloned().collect();
        if want.is_subset(&got) {
            let mut ids_per_change: BTreeMap<&(String, u64, String), usize> = BTreeMap::new();
            for change in events.values() {
                *ids_per_change.entry(change).or_insert(0) += 1;
            }
            for (change, ids) in &ids_per_change {
                assert_eq!(*ids, 1, "{change:?} was sent under {ids} event IDs");
            }
            let duplicates: usize = times.values().map(|n| n - 1).sum();
            eprintln!(
                "webhooks: {} change(s) delivered, {duplicates} redelivery(ies) of an ID",
                got.len()
            );
            return;
        }
        assert!(
            Instant::now() < deadline,
            "changes not delivered: {:?}",
            want.difference(&got).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn hook_receiver() -> wiremock::MockServer {
    let receiver = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .respond_with(wiremock::ResponseTemplate::new(204))
        .mount(&receiver)
        .await;
    receiver
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_one_leader_and_a_killed_leader_is_replaced() {
    let healthy = ["ha-healthy", "ha-late", "ha-slow"];
    let burning = ["ha-fastburn"];
    let prometheus = live::prometheus(&scenario(&healthy, &burning));
    let receiver = hook_receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("gate.yaml");
    std::fs::write(
        &config_path,
        checkout_config(prometheus.url(), Some(&format!("{}/hook", receiver.uri()))),
    )
    .unwrap();
    let (_db, url) = pg_database();
    let api = Api::default();

    let mut replicas: BTreeMap<String, Daemon> = ["r1", "r2", "r3"]
        .into_iter()
        .map(|name| {
            (
                name.to_string(),
                replica(&config_path, &url, dir.path(), name),
            )
        })
        .collect();
    // One leader, and every replica agrees which.
    let leader = agreed_leader(&api, &replicas).await;
    for (name, daemon) in &replicas {
        let ready = role(&api, daemon).await;
        let want = if *name == leader {
            "leader"
        } else {
            "follower"
        };
        assert_eq!(ready["role"], want, "{name}: {ready}");
        assert_eq!(ready["replica"], name.as_str(), "{ready}");
        let metrics = api.get_text(&daemon.url("/metrics")).await;
        let gauge = format!(
            "gate_leader{{replica=\"{name}\"}} {}",
            u8::from(*name == leader)
        );
        assert!(metrics.contains(&gauge), "{name}: {metrics}");
    }
    let followers: Vec<String> = replicas.keys().filter(|n| **n != leader).cloned().collect();

    // Registered through a follower: the leader evaluates them; every replica answers.
    for id in ["ha-healthy", "ha-fastburn"] {
        let (status, body) = api
            .post(
                &replicas[&followers[0]].url("/v1/trains"),
                json!({"id": id, "gate": "checkout", "started_at": started()}),
            )
            .await;
        assert_eq!(status, 201, "{id}: {body}");
    }
    for daemon in replicas.values() {
        api.until(&daemon.url("/v1/trains"), "both decided", WAIT, |b| {
            decision_of(b, "ha-healthy").as_deref() == Some("promote")
                && decision_of(b, "ha-fastburn").as_deref() == Some("rollback")
        })
        .await;
    }

    // A train registered just before the leader is killed (its cycle in flight), with
    // `gate wait` held on a follower across the failover.
    let (status, body) = api
        .post(
            &replicas[&followers[1]].url("/v1/trains"),
            json!({"id": "ha-late", "gate": "checkout", "started_at": started()}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let waiting = Command::new(env!("CARGO_BIN_EXE_gate"))
        .args([
            "wait",
            "ha-late",
            "--timeout",
            "120s",
            "--server",
            &replicas[&followers[1]].url(""),
        ])
        .env_remove("GATE_API_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let new_leader = kill_leader(&api, &mut replicas, &leader).await;
    let waited = tokio::task::spawn_blocking(move || waiting.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        waited.status.code(),
        Some(0),
        "gate wait across the failover: {}{}",
        String::from_utf8_lossy(&waited.stdout),
        String::from_utf8_lossy(&waited.stderr)
    );
    let log = replicas[&new_leader].log();
    assert!(
        log.contains(&format!("replica {new_leader} leads")),
        "{log}"
    );

    // Killed again while a webhook is in flight (the receiver holds it for 3 s): the last
    // replica sends it again under the same event ID.
    wiremock::Mock::given(wiremock::matchers::body_string_contains("ha-slow"))
        .respond_with(wiremock::ResponseTemplate::new(204).set_delay(Duration::from_secs(3)))
        .with_priority(1)
        .mount(&receiver)
        .await;
    let follower = replicas.keys().find(|n| **n != new_leader).unwrap().clone();
    let (status, body) = api
        .post(
            &replicas[&follower].url("/v1/trains"),
            json!({"id": "ha-slow", "gate": "checkout", "started_at": started()}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let deadline = Instant::now() + WAIT;
    while !received(&receiver)
        .await
        .0
        .values()
        .any(|(train, _, _)| train == "ha-slow")
    {
        assert!(Instant::now() < deadline, "ha-slow's webhook never left");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let last = kill_leader(&api, &mut replicas, &new_leader).await;
    assert_eq!(last, follower);

    // Every change the store holds reached the receiver under exactly one event ID.
    let ids = ["ha-healthy", "ha-fastburn", "ha-late", "ha-slow"];
    let want = changes(&api, &replicas[&last], &ids).await;
    assert_eq!(
        want.iter()
            .filter(|(_, _, d)| d == "promote" || d == "rollback")
            .count(),
        4,
        "{want:?}"
    );
    delivered(&receiver, &want).await;
    for mut daemon in replicas.into_values() {
        assert_eq!(daemon.sigterm(), 0, "{}", daemon.log());
    }
}

/// The leader, once every replica's `/readyz` names the same one.
async fn agreed_leader(api: &Api, replicas: &BTreeMap<String, Daemon>) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let mut named = BTreeSet::new();
        for daemon in replicas.values() {
            named.insert(
                role(api, daemon).await["leader"]
                    .as_str()
                    .map(str::to_string),
            );
        }
        if let [Some(leader)] = named.into_iter().collect::<Vec<_>>().as_slice() {
            return leader.clone();
        }
        assert!(
            Instant::now() < deadline,
            "the replicas never agreed on a leader"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// SIGKILLs `leader`, waits until another replica leads and every remaining replica says so;
/// returns the new leader.
async fn kill_leader(api: &Api, replicas: &mut BTreeMap<String, Daemon>, leader: &str) -> String {
    let killed_at = Instant::now();
    let mut old = replicas.remove(leader).unwrap();
    old.sigkill();
    let deadline = Instant::now() + WAIT;
    let new_leader = loop {
        let mut leading = None;
        for (name, daemon) in replicas.iter() {
            if role(api, daemon).await["role"] == "leader" {
                leading = Some(name.clone());
            }
        }
        if let Some(name) = leading {
            break name;
        }
        assert!(Instant::now() < deadline, "nobody took over; {}", old.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    eprintln!(
        "failover: {new_leader} leads {:.1} s after {leader} was killed",
        killed_at.elapsed().as_secs_f64()
    );
    // The others learn it at their next claim.
    for daemon in replicas.values() {
        api.until(&daemon.url("/readyz"), "the new leader", WAIT, |b| {
            b["leader"] == new_leader.as_str()
        })
        .await;
    }
    new_leader
}

fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_frozen_past_its_lease_writes_nothing_and_follows() {
    let healthy = ["fz-before", "fz-after"];
    let prometheus = live::prometheus(&scenario(&healthy, &[]));
    let receiver = hook_receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("gate.yaml");
    std::fs::write(
        &config_path,
        checkout_config(prometheus.url(), Some(&format!("{}/hook", receiver.uri()))),
    )
    .unwrap();
    let (_db, url) = pg_database();
    let api = Api::default();

    let r_a = replica(&config_path, &url, dir.path(), "a");
    let r_b = replica(&config_path, &url, dir.path(), "b");
    let first = leader_seen_by(&api, &r_a, WAIT).await;
    let (mut frozen, a) = if first == "a" { (r_a, r_b) } else { (r_b, r_a) };
    let (status, _) = api
        .post(
            &frozen.url("/v1/trains"),
            json!({"id": "fz-before", "gate": "checkout", "started_at": started()}),
        )
        .await;
    assert_eq!(status, 201);
    api.until(&a.url("/v1/trains"), "decided", WAIT, |b| {
        decision_of(b, "fz-before").as_deref() == Some("promote")
    })
    .await;

    signal(frozen.pid(), "-STOP");
    let taken = leader_seen_by_name(&api, &a, WAIT).await;
    assert_ne!(taken, first);
    let (status, _) = api
        .post(
            &a.url("/v1/trains"),
            json!({"id": "fz-after", "gate": "checkout", "started_at": started()}),
        )
        .await;
    assert_eq!(status, 201);
    api.until(&a.url("/v1/trains"), "decided", WAIT, |b| {
        decision_of(b, "fz-after").as_deref() == Some("promote")
    })
    .await;
    let before = changes(&api, &a, &healthy).await;

    // Woken up, the old leader finds a newer epoch: it follows and has written nothing.
    signal(frozen.pid(), "-CONT");
    api.until(&frozen.url("/readyz"), "following", WAIT, |b| {
        b["role"] == "follower" && b["leader"] == taken.as_str()
    })
    .await;
    // A few more of its intervals pass: still nothing of its own in the store.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(changes(&api, &a, &healthy).await, before);
    let log = frozen.log();
    assert!(
        log.contains(&format!("replica {first} lost the lease to {taken}")),
        "{log}"
    );
    delivered(&receiver, &before).await;
    assert_eq!(frozen.sigterm(), 0, "{}", frozen.log());
}

/// The leader `/readyz` of `daemon` names once `daemon` itself leads.
async fn leader_seen_by_name(api: &Api, daemon: &Daemon, deadline: Duration) -> String {
    let ready = api
        .until(&daemon.url("/readyz"), "leading", deadline, |b| {
            b["role"] == "leader"
        })
        .await;
    ready["leader"].as_str().unwrap().to_string()
}
