//! `gate report` end to end: a real store file written with known trains at explicit times,
//! read by the real binary offline (`--db`), by a real `gate serve` (`GET /v1/report`) and
//! by the binary through that server (`--server`): the same figures all three ways, exact.
//!
//! The trains are placed two days before the test's start, so that they fall in the default
//! 30-day range; every figure is a count, a ratio of counts, or a difference of the explicit
//! times, so none depends on when the test runs. The daemon's config has only the `checkout`
//! gate and every `checkout` train is finished, so the daemon evaluates nothing and the store
//! stays as written (the `search` train still verifying belongs to a gate the config does
//! not have: kept, not evaluated).

mod common;

use std::path::Path;
use std::process::Command;

use chrono::{DateTime, Duration, DurationRound, Utc};
use common::daemon::{Api, Daemon};
use gate_engine::store::{
    EvaluationWrite, Evidence, Lifecycle, NewTrain, OverrideAction, OverrideWrite, Store,
};
use gate_rules::decide::TrainState;
use gate_rules::{Decision, TrainId};
use serde_json::{json, Value};

fn tid(id: &str) -> TrainId {
    id.parse().expect("a train ID")
}

struct Known {
    base: DateTime<Utc>,
    store: Store,
}

impl Known {
    fn at(&self, secs: i64) -> DateTime<Utc> {
        self.base + Duration::seconds(secs)
    }

    fn register(&self, id: &str, gate: &str) {
        let train = NewTrain {
            id: tid(id),
            gate: gate.to_string(),
            started_at: Some(self.base),
            baseline: None,
            labels: Default::default(),
            gates: Vec::new(),
        };
        self.store.register(&train, self.base).expect("register");
    }

    /// An evaluation of `id` (at `seq`) deciding `decision` by `rule` at `secs`.
    fn evaluate(
        &self,
        id: &str,
        seq: u64,
        decision: Decision,
        rule: Option<&str>,
        secs: i64,
        lifecycle: Lifecycle,
    ) {
        let write = EvaluationWrite {
            train: tid(id),
            based_on_seq: seq,
            decision,
            reason: format!("{decision}"),
            rule: rule.map(str::to_string),
            evaluated_at: self.at(secs),
            state: TrainState::default(),
            evidence: Evidence::encode(&json!({"decision": decision})).unwrap(),
            lifecycle,
            events: vec![],
            gates: None,
        };
        self.store.record_evaluation(&write).expect("record");
    }
}

/// Five `checkout` trains and one `search` train; the figures they give are asserted below.
fn write_store(path: &Path) {
    let base = (Utc::now() - Duration::days(2))
        .duration_trunc(Duration::seconds(1))
        .unwrap();
    let k = Known {
        base,
        store: Store::open(path).expect("open the store"),
    };
    use Decision::{Pause, Pending, Promote, Rollback};
    use Lifecycle::{Done, Paused, Promoted, RolledBack, Verifying};
    // c1: promoted at +30 min, watched to the end.
    k.register("c1", "checkout");
    k.evaluate("c1", 0, Promote, None, 1800, Promoted);
    k.evaluate("c1", 1, Promote, None, 9000, Done);
    // c2: paused from +10 to +20 min, promoted at +40 min, watched to the end.
    k.register("c2", "checkout");
    k.evaluate("c2", 0, Pause, Some("slow-burn"), 600, Paused);
    k.evaluate("c2", 1, Pending, None, 1200, Verifying);
    k.evaluate("c2", 2, Promote, None, 2400, Promoted);
    k.evaluate("c2", 3, Promote, None, 9600, Done);
    // c3: rolled back by fast-burn at +5 min.
    k.register("c3", "checkout");
    k.evaluate("c3", 0, Rollback, Some("fast-burn"), 300, RolledBack);
    // c4: promoted at +30 min, rolled back by regression during the watch at +50 min.
    k.register("c4", "checkout");
    k.evaluate("c4", 0, Promote, None, 1800, Promoted);
    k.evaluate("c4", 1, Rollback, Some("regression"), 3000, RolledBack);
    // c5: rolled back by an operator at +15 min.
    k.register("c5", "checkout");
    k.store
        .record_override(&OverrideWrite {
            train: tid("c5"),
            action: OverrideAction::Rollback,
            decision: Rollback,
            reason: "bad config pushed".into(),
            actor: "alice".into(),
            at: k.at(900),
            state: TrainState::default(),
            lifecycle: RolledBack,
            events: vec![],
            on_behalf_of: None,
            gates: None,
        })
        .expect("override");
    // s1: a train of a gate the daemon's config does not have, still verifying.
    k.register("s1", "search");
}

fn config(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("gate.yaml");
    std::fs::write(
        &path,
        r#"
prometheus:
  url: http://127.0.0.1:9
slos:
  - name: checkout-availability
    objective: 99.9
    errors: http_requests_total{code=~"5.."}
    total: http_requests_total
gates:
  - name: checkout
    slos: [checkout-availability]
    rules:
      - name: fast-burn
        when: burn_rate("checkout-availability", "1h") > 14.4
        then: rollback
"#,
    )
    .unwrap();
    path
}

fn gate_report(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_gate"))
        .arg("report")
        .args(args)
        .env_remove("GATE_API_TOKEN")
        .output()
        .expect("run gate report");
    (
        out.status.code().expect("exit code"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The report without its range (`from`, `to`: the time of each request).
fn figures(mut report: Value) -> Value {
    let object = report.as_object_mut().expect("an object");
    assert!(object.remove("from").is_some() && object.remove("to").is_some());
    report
}

#[tokio::test]
async fn the_report_is_exact_and_the_same_offline_from_the_api_and_through_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("gate.db");
    write_store(&db);
    let db_arg = db.to_str().unwrap();

    // Offline, from the file.
    let (code, stdout, stderr) = gate_report(&["--db", db_arg, "--format", "json"]);
    assert_eq!(code, 0, "{stderr}");
    let offline: gate_api::Report = serde_json::from_str(&stdout).expect("a report");
    let c = &offline.gates["checkout"];
    assert_eq!(
        (
            c.started,
            c.promoted,
            c.rolled_back,
            c.rolled_back_after_promotion
        ),
        (5, 3, 3, 1)
    );
    assert_eq!((c.paused, c.paused_secs, c.overridden), (1, 600.0, 1));
    assert_eq!((c.finished, c.succeeded, c.stopped), (5, 2, 0));
    assert_eq!(c.release_success_rate, Some(2.0 / 5.0));
    assert_eq!(c.rollback_frequency, Some(3.0 / 5.0));
    assert_eq!(c.change_failure_rate, Some(1.0 / 3.0));
    // Verdicts after 300, 900, 1800, 1800, 2400 s.
    assert_eq!(c.time_to_verdict.median_secs, Some(1800.0));
    assert_eq!(c.time_to_verdict.p90_secs, Some(2160.0));
    assert_eq!(
        c.rollback_rules,
        [("fast-burn".to_string(), 1), ("regression".to_string(), 1)].into()
    );
    assert_eq!(c.override_rollbacks, 1);
    let s = &offline.gates["search"];
    assert_eq!(
        (s.started, s.finished, s.release_success_rate),
        (1, 0, None)
    );
    assert_eq!(offline.overall.started, 6);
    assert_eq!(offline.overall.release_success_rate, Some(2.0 / 5.0));
    assert_eq!(offline.overall.rollback_frequency, Some(3.0 / 6.0));
    assert_eq!(offline.to - offline.from, Duration::days(30));

    // One gate only: the overall figures follow it.
    let (_, stdout, _) = gate_report(&["--db", db_arg, "--gate", "search", "--format", "json"]);
    let search: gate_api::Report = serde_json::from_str(&stdout).unwrap();
    assert_eq!(search.overall.started, 1);
    assert_eq!(search.gates.keys().collect::<Vec<_>>(), ["search"]);
    // A range that ends before the trains started holds none of them.
    let (_, stdout, _) = gate_report(&["--db", db_arg, "--since", "1d", "--format", "json"]);
    let recent: gate_api::Report = serde_json::from_str(&stdout).unwrap();
    assert_eq!(recent.overall.started, 0);
    assert_eq!(recent.overall.release_success_rate, None);

    // The daemon on the same store, and the CLI through it.
    let daemon = Daemon::start(&config(dir.path()), &db, dir.path().join("serve.log"));
    let api = Api::default();
    let served = api.get(&daemon.url("/v1/report?since=30d")).await;
    let offline_json = serde_json::to_value(&offline).unwrap();
    assert_eq!(
        figures(served.clone()),
        figures(offline_json.clone()),
        "{}",
        daemon.log()
    );
    let (code, stdout, stderr) = gate_report(&["--server", &daemon.url(""), "--format", "json"]);
    assert_eq!(code, 0, "{stderr}");
    let through: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(figures(through), figures(offline_json));
    let served = api.get(&daemon.url("/v1/report?gate=search")).await;
    assert_eq!(
        figures(served),
        figures(serde_json::to_value(&search).unwrap())
    );

    // A bad range: 400 with a code from the API, exit 2 from the CLI (both ways).
    let (status, body) = api
        .send(api.http.get(daemon.url("/v1/report?since=30")))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_query")),
        "{body}"
    );
    for args in [
        vec!["--db", db_arg, "--since", "30"],
        vec!["--server", &daemon.url(""), "--since", "a month"],
    ] {
        let (code, _, stderr) = gate_report(&args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(stderr.contains("--since"), "{stderr}");
    }
    let (code, _, stderr) = gate_report(&["--db", dir.path().join("nope.db").to_str().unwrap()]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("nope.db"), "{stderr}");

    // The human report leads with the headline.
    let (code, stdout, _) = gate_report(&["--db", db_arg, "--format", "human"]);
    assert_eq!(code, 0);
    assert!(
        stdout.starts_with("6 trains started in the last 30d ("),
        "{stdout}"
    );
    assert!(
        stdout.contains("release success 40% (2 of 5 finished), rollback frequency 50%, change failure rate 33%"),
        "{stdout}"
    );
    assert!(
        stdout.contains("checkout: fast-burn 1, regression 1, by operator 1"),
        "{stdout}"
    );
}
