//! Webhook delivery end to end: decision changes stored with their outbox events, a real
//! `Deliverer` and a real HTTP receiver (axum on 127.0.0.1) that the tests make healthy,
//! failing, gone or unreachable.
//!
//! Time: the worker reads a `StepClock` that the tests move forward by hand, so backoff and
//! dead-letter deadlines are exact and no test sleeps for them; tests poll with a deadline.
//!
//! Formats: the bodies the worker really sends are checked against their specs — CloudEvents
//! against the official CDEvents 0.5.1 JSON schemas and the binding rules ([`cdevents`]),
//! Slack messages against Block Kit's structure and limits.

mod cdevents;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use chrono::{DateTime, TimeZone, Utc};
use gate_engine::clock::Clock;
use gate_engine::store::{
    Delivery, DeliveryState, EvaluationWrite, Evidence, Lifecycle, NewTrain, Store, WriteOutcome,
};
use gate_engine::webhook::{
    events_for_change, resolve_webhooks, sign, DecisionChange, Deliverer, DeliveryOptions, Nudger,
    Secret,
};
use gate_rules::config::Config;
use gate_rules::decide::TrainState;
use gate_rules::Decision;
use gate_rules::TrainId;
use prometheus_client::registry::Registry;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const SECRET: &str = "test-secret-Zq8";
/// Credentials in the receiver URL; they must never show up in logs.
const USERINFO: &str = "hookuser:Pw-n0t-in-logs";
const QUERY_TOKEN: &str = "tok-n0t-in-logs";
/// The secret part of a Slack-style webhook URL path.
const SLACK_PATH_SECRET: &str = "T000-B000-Sl4ckS3cret";

// ---------------------------------------------------------------------------------------------
// Time

struct StepClock(Mutex<DateTime<Utc>>);

impl StepClock {
    fn new(at: DateTime<Utc>) -> Arc<StepClock> {
        Arc::new(StepClock(Mutex::new(at)))
    }

    fn advance(&self, by: chrono::Duration) {
        *self.0.lock().unwrap() += by;
    }
}

impl Clock for StepClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

/// 2026-11-01T12:00:00Z plus `secs`.
fn t(secs: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap() + chrono::Duration::seconds(secs)
}

// ---------------------------------------------------------------------------------------------
// The receiver

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Status(u16),
    /// 429 Too Many Requests with this `Retry-After`.
    TooMany(&'static str),
    /// Accept the request and never answer.
    Hang,
}

#[derive(Clone, Debug)]
struct Received {
    webhook: String,
    headers: HeaderMap,
    body: Bytes,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name} header"))
            .to_str()
            .unwrap()
    }

    fn event_id(&self) -> String {
        self.header(sign::EVENT_ID_HEADER).to_string()
    }

    /// (train, seq) of the event, whatever its format.
    fn train_seq(&self) -> (String, u64) {
        let body = self.json();
        let gate_body = if body.get("specversion").is_some() {
            body["data"]["customData"].clone()
        } else {
            body
        };
        (
            gate_body["train"].as_str().unwrap().to_string(),
            gate_body["seq"].as_u64().unwrap(),
        )
    }
}

#[derive(Default)]
struct ReceiverState {
    /// Per webhook path segment; `Status(200)` when absent.
    modes: Mutex<HashMap<String, Mode>>,
    requests: Mutex<Vec<Received>>,
}

#[derive(Clone)]
struct Receiver {
    addr: SocketAddr,
    state: Arc<ReceiverState>,
}

impl Receiver {
    /// Starts a receiver on `listener`.
    fn start(listener: TcpListener, state: Arc<ReceiverState>) -> Receiver {
        let addr = listener.local_addr().unwrap();
        let app = Router::new()
            .route("/hook/{webhook}", post(receive))
            .with_state(Arc::clone(&state));
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver { addr, state }
    }

    async fn bind() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Receiver::start(listener, Arc::default())
    }

    fn set(&self, webhook: &str, mode: Mode) {
        self.state
            .modes
            .lock()
            .unwrap()
            .insert(webhook.to_string(), mode);
    }

    fn requests(&self) -> Vec<Received> {
        self.state.requests.lock().unwrap().clone()
    }

    fn requests_for(&self, webhook: &str) -> Vec<Received> {
        self.requests()
            .into_iter()
            .filter(|r| r.webhook == webhook)
            .collect()
    }
}

async fn receive(
    State(state): State<Arc<ReceiverState>>,
    UrlPath(webhook): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, HeaderMap, &'static str) {
    let mode = state
        .modes
        .lock()
        .unwrap()
        .get(&webhook)
        .copied()
        .unwrap_or(Mode::Status(200));
    state.requests.lock().unwrap().push(Received {
        webhook,
        headers,
        body,
    });
    match mode {
        Mode::TooMany(retry_after) => {
            let mut headers = HeaderMap::new();
            headers.insert("retry-after", retry_after.parse().unwrap());
            (StatusCode::TOO_MANY_REQUESTS, headers, "slow down")
        }
        Mode::Status(code) => (
            StatusCode::from_u16(code).unwrap(),
            HeaderMap::new(),
            if code == 503 {
                "down for\nmaintenance"
            } else {
                ""
            },
        ),
        Mode::Hang => std::future::pending().await,
    }
}

/// A URL for `webhook` on `addr`, with credentials and a token that must not be logged.
fn hook_url(addr: SocketAddr, webhook: &str) -> String {
    format!("http://{USERINFO}@{addr}/hook/{webhook}?token={QUERY_TOKEN}")
}

// ---------------------------------------------------------------------------------------------
// Logs: every test's log lines, to check that no credentials leak.

struct Capture(Arc<Mutex<String>>);

struct Fields<'a>(&'a mut String);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, "{}={:?} ", field.name(), value);
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut line = String::new();
        event.record(&mut Fields(&mut line));
        let mut logs = self.0.lock().unwrap();
        logs.push_str(&line);
        logs.push('\n');
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

fn logs() -> &'static Arc<Mutex<String>> {
    static LOGS: OnceLock<Arc<Mutex<String>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Arc::new(Mutex::new(String::new()));
        tracing::subscriber::set_global_default(Capture(Arc::clone(&logs))).unwrap();
        logs
    })
}

fn assert_no_credentials_logged() {
    let logs = logs().lock().unwrap();
    for secret in [
        "Pw-n0t-in-logs",
        "hookuser",
        QUERY_TOKEN,
        SECRET,
        SLACK_PATH_SECRET,
    ] {
        assert!(!logs.contains(secret), "`{secret}` was logged:\n{logs}");
    }
}

// ---------------------------------------------------------------------------------------------
// Store, config and worker

const CONFIG_HEAD: &str = r#"
slos:
  - name: availability
    objective: 99.9
    errors: http_requests_total{code=~"5.."}
    total: http_requests_total
gates:
  - name: checkout
    rules:
      - name: fast-burn
        when: burn_rate("availability", "1h") > 14.4
        then: rollback
webhooks:
"#;

/// A config with `webhooks` (YAML list items) appended.
fn config(webhooks: &str) -> Config {
    let text = format!("{CONFIG_HEAD}{webhooks}");
    gate_rules::config::load_str("gate.yaml", &text).unwrap()
}

fn tid(id: &str) -> TrainId {
    gate_rules::train_id::validate(id).unwrap()
}

fn register(store: &Store, train: &str) {
    register_with(store, train, BTreeMap::new());
}

fn register_with(store: &Store, train: &str, labels: BTreeMap<String, String>) {
    let body = NewTrain {
        id: tid(train),
        gate: "checkout".to_string(),
        gates: Vec::new(),
        started_at: Some(t(0)),
        baseline: None,
        labels,
    };
    store.register(&body, t(0)).unwrap();
}

/// What the daemon does when a train's decision changes from `seq`: the decision and its
/// webhook events in one write. Returns the events' IDs.
fn change(
    store: &Store,
    config: &Config,
    train: &str,
    seq: u64,
    previous: Decision,
    decision: Decision,
    at: DateTime<Utc>,
) -> Vec<String> {
    let change = DecisionChange {
        train: tid(train),
        gate: "checkout".to_string(),
        decision,
        previous,
        reason: format!("{previous} -> {decision}"),
        rule: (decision == Decision::Rollback).then(|| "fast-burn".to_string()),
        evaluated_at: at,
        seq: seq + 1,
        evidence: json!({"rules": [{
            "name": "fast-burn", "then": "rollback", "fired": decision == Decision::Rollback,
            "when": "burn_rate(\"availability\", \"1h\") > 14.4",
            "values": {"burn_rate(\"availability\", \"1h\")": 15.5},
            "streak": 1, "for": 1,
            "thresholds": [{"signal": "burn_rate(\"availability\", \"1h\")", "op": ">", "value": 14.4}],
        }]}),
        artifact: store
            .train(&tid(train))
            .unwrap()
            .and_then(|r| r.labels.get("artifact").cloned()),
        gates: Vec::new(),
    };
    let events = events_for_change(config, &change);
    let ids = events.iter().map(|e| e.event_id.clone()).collect();
    let write = EvaluationWrite {
        train: tid(train),
        based_on_seq: seq,
        decision,
        reason: change.reason.clone(),
        rule: change.rule.clone(),
        evaluated_at: at,
        state: TrainState {
            decision: Some(decision),
            ..TrainState::default()
        },
        evidence: Evidence::encode(&change.evidence).unwrap(),
        lifecycle: match decision {
            Decision::Pending => Lifecycle::Verifying,
            Decision::Promote => Lifecycle::Promoted,
            Decision::Pause => Lifecycle::Paused,
            Decision::Rollback => Lifecycle::RolledBack,
        },
        events,
        gates: None,
    };
    assert_eq!(
        store.record_evaluation(&write).unwrap(),
        WriteOutcome::Changed { seq: seq + 1 }
    );
    ids
}

/// Registers `train` and gives it `decisions` in turn, from `pending`, `at` one second apart.
fn history(
    store: &Store,
    config: &Config,
    train: &str,
    decisions: &[Decision],
    at: i64,
) -> Vec<String> {
    register(store, train);
    decide_in_turn(store, config, train, decisions, at)
}

/// Gives the registered `train` `decisions` in turn, from `pending`.
fn decide_in_turn(
    store: &Store,
    config: &Config,
    train: &str,
    decisions: &[Decision],
    at: i64,
) -> Vec<String> {
    let mut previous = Decision::Pending;
    let mut ids = Vec::new();
    for (seq, &decision) in decisions.iter().enumerate() {
        let when = t(at + seq as i64);
        ids.extend(change(
            store, config, train, seq as u64, previous, decision, when,
        ));
        previous = decision;
    }
    ids
}

fn options() -> DeliveryOptions {
    DeliveryOptions {
        poll_interval: Duration::from_millis(20),
        concurrency: 4,
        ..DeliveryOptions::default()
    }
}

struct Worker {
    nudger: Nudger,
    registry: Arc<Registry>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Worker {
    fn start(store: &Store, config: &Config, clock: &Arc<StepClock>) -> Worker {
        let targets = resolve_webhooks(&config.webhooks, |var| {
            (var == "HOOK_SECRET").then(|| SECRET.to_string())
        })
        .unwrap();
        let mut registry = Registry::default();
        let clock: Arc<dyn Clock> = Arc::clone(clock) as Arc<dyn Clock>;
        let deliverer = Deliverer::new(store.clone(), targets, &mut registry, options())
            .unwrap()
            .with_clock(clock);
        let nudger = deliverer.nudger();
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(deliverer.run(async move {
            let _ = stopped.await;
        }));
        Worker {
            nudger,
            registry: Arc::new(registry),
            stop: Some(stop),
            task,
        }
    }

    /// The value of one metric line (`name{labels}`), 0 when absent.
    fn metric(&self, series: &str) -> f64 {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .map_or(0.0, |v| v.trim().parse().unwrap())
    }

    async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("the worker stops")
            .unwrap();
    }
}

fn deliveries(store: &Store, trains: &[&str]) -> Vec<Delivery> {
    trains
        .iter()
        .flat_map(|t| store.delivery_states(&tid(t)).unwrap())
        .collect()
}

/// Steps the clock by `step` and nudges the worker until `done` holds; fails after 20 s.
async fn until(
    what: &str,
    clock: &StepClock,
    step: chrono::Duration,
    nudger: &Nudger,
    mut done: impl FnMut() -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        clock.advance(step);
        nudger.nudge();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Checks what the receiver got: valid signatures, header ID = body ID, per (webhook, train)
/// never an earlier seq after a later one, and every copy of an event byte-identical.
fn check_received(requests: &[Received]) {
    let secret = Secret::new(SECRET);
    let mut last_seq: HashMap<(String, String), u64> = HashMap::new();
    let mut bodies: HashMap<String, Bytes> = HashMap::new();
    for r in requests {
        let ts: i64 = r.header(sign::TIMESTAMP_HEADER).parse().unwrap();
        let sig = r.header(sign::SIGNATURE_HEADER);
        let expected = {
            use hmac::Mac;
            let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
            mac.update(format!("{ts}.").as_bytes());
            mac.update(&r.body);
            format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
        };
        assert_eq!(sig, expected, "signature of {}", r.event_id());
        assert!(sign::verify(&secret, ts, &r.body, sig));
        assert_eq!(r.json()["id"], r.event_id().as_str());

        let (train, seq) = r.train_seq();
        let key = (r.webhook.clone(), train);
        let last = last_seq.entry(key.clone()).or_insert(0);
        assert!(seq >= *last, "{key:?}: seq {seq} after seq {last}");
        *last = seq;

        let first = bodies.entry(r.event_id()).or_insert_with(|| r.body.clone());
        assert_eq!(
            first,
            &r.body,
            "a retry of {} changed its body",
            r.event_id()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Tests

#[tokio::test]
async fn events_arrive_in_order_per_train_signed_and_in_both_formats() {
    logs();
    let receiver = Receiver::bind().await;
    let config = config(&format!(
        "  - name: deployer\n    url: {}\n    secret_env: HOOK_SECRET\n\
         \x20 - name: audit\n    url: {}\n    format: cloudevents\n    secret_env: HOOK_SECRET\n    on: [rollback, promote]\n",
        hook_url(receiver.addr, "deployer"),
        hook_url(receiver.addr, "audit"),
    ));
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("gate.db")).unwrap();
    let path = [
        Decision::Pause,
        Decision::Pending,
        Decision::Promote,
        Decision::Rollback,
    ];
    let trains = ["t-1", "t-2", "t-3", "t-4", "t-5", "t-6"];
    let mut all_ids = HashSet::new();
    for (i, train) in trains.iter().enumerate() {
        all_ids.extend(history(&store, &config, train, &path, i as i64 * 10));
    }
    // Per train: 4 events to `deployer`, 2 (promote, rollback) to `audit`.
    assert_eq!(all_ids.len(), trains.len() * 6);

    let clock = StepClock::new(t(3600));
    let worker = Worker::start(&store, &config, &clock);
    until(
        "every event delivered",
        &clock,
        chrono::Duration::zero(),
        &worker.nudger,
        || {
            deliveries(&store, &trains)
                .iter()
                .all(|d| d.state == DeliveryState::Delivered)
        },
    )
    .await;

    let requests = receiver.requests();
    check_received(&requests);
    let received: Vec<String> = requests.iter().map(Received::event_id).collect();
    assert_eq!(
        received.len(),
        all_ids.len(),
        "a healthy receiver gets each event once"
    );
    assert_eq!(received.into_iter().collect::<HashSet<_>>(), all_ids);
    for train in trains {
        let seqs: Vec<u64> = receiver
            .requests_for("deployer")
            .iter()
            .map(Received::train_seq)
            .filter(|(t, _)| t == train)
            .map(|(_, seq)| seq)
            .collect();
        assert_eq!(seqs, [1, 2, 3, 4], "{train}");
    }

    // The json format with its headers and the credentials of the URL as basic auth.
    let json = &receiver.requests_for("deployer")[0];
    assert_eq!(json.header("content-type"), "application/json");
    assert_eq!(json.json()["type"], "gate.decision");
    // base64("hookuser:Pw-n0t-in-logs")
    assert_eq!(
        json.header("authorization"),
        "Basic aG9va3VzZXI6UHctbjB0LWluLWxvZ3M="
    );

    // The CloudEvents format: every required attribute and the CDEvents type.
    for ce in receiver.requests_for("audit") {
        assert_eq!(ce.header("content-type"), "application/cloudevents+json");
        let body = ce.json();
        assert_eq!(body["specversion"], "1.0");
        assert_eq!(body["id"], ce.event_id().as_str());
        assert_eq!(body["source"], "/gate/checkout");
        let decision = body["data"]["customData"]["decision"].as_str().unwrap();
        let expected = match decision {
            "rollback" => "dev.cdevents.service.rolledback.0.3.0",
            "promote" => "dev.cdevents.service.deployed.0.3.0",
            other => panic!("audit listens only for rollback and promote, got {other}"),
        };
        assert_eq!(body["type"], expected);
        assert_eq!(body["data"]["context"]["type"], expected);
        assert_eq!(body["subject"], body["data"]["subject"]["id"]);
    }

    assert_eq!(
        worker.metric(r#"gate_webhook_deliveries_total{webhook="deployer",outcome="delivered"}"#),
        24.0
    );
    assert_eq!(
        worker.metric(r#"gate_webhook_deliveries_total{webhook="audit",outcome="delivered"}"#),
        12.0
    );
    worker.shutdown().await;
    assert_no_credentials_logged();
}

#[tokio::test]
async fn an_outage_then_500s_lose_nothing() {
    logs();
    // A port with nothing listening: connections are refused.
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap()
    };
    let config = config(&format!(
        "  - name: deployer\n    url: {}\n    secret_env: HOOK_SECRET\n",
        hook_url(port, "deployer")
    ));
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("gate.db")).unwrap();
    let trains = ["a", "b", "c"];
    let mut all_ids = HashSet::new();
    for (i, train) in trains.iter().enumerate() {
        let path = [Decision::Pause, Decision::Pending, Decision::Rollback];
        all_ids.extend(history(&store, &config, train, &path, i as i64));
    }
    let clock = StepClock::new(t(60));
    let worker = Worker::start(&store, &config, &clock);
    let step = chrono::Duration::seconds(30);

    until(
        "three refused attempts per train",
        &clock,
        step,
        &worker.nudger,
        || {
            let d = deliveries(&store, &trains);
            d.iter().filter(|d| d.attempts >= 3).count() >= trains.len()
        },
    )
    .await;
    let first = &store.delivery_states(&tid("a")).unwrap()[0];
    assert_eq!(first.state, DeliveryState::Pending);
    assert_eq!(first.last_status, None);
    let error = first.last_error.as_deref().unwrap();
    assert!(error.to_lowercase().contains("connect"), "{error}");
    assert!(
        !error.contains("Pw-n0t") && !error.contains(QUERY_TOKEN),
        "{error}"
    );

    // The receiver comes up, answering 500.
    let state = Arc::new(ReceiverState::default());
    let receiver = Receiver::start(TcpListener::bind(port).await.unwrap(), state);
    receiver.set("deployer", Mode::Status(500));
    until("500s for every train", &clock, step, &worker.nudger, || {
        let seen: HashSet<String> = receiver
            .requests()
            .iter()
            .map(|r| r.train_seq().0)
            .collect();
        seen.len() == trains.len() && receiver.requests().len() >= 6
    })
    .await;
    assert!(deliveries(&store, &trains)
        .iter()
        .any(|d| d.last_status == Some(500)));

    // Healthy again: everything arrives.
    receiver.set("deployer", Mode::Status(204));
    until("all delivered", &clock, step, &worker.nudger, || {
        deliveries(&store, &trains)
            .iter()
            .all(|d| d.state == DeliveryState::Delivered)
    })
    .await;

    let requests = receiver.requests();
    check_received(&requests);
    let received: HashSet<String> = requests.iter().map(Received::event_id).collect();
    assert_eq!(received, all_ids, "nothing lost, nothing invented");
    for d in deliveries(&store, &trains) {
        assert_eq!(d.last_status, Some(204), "{}", d.event_id);
    }
    assert!(
        worker.metric(r#"gate_webhook_deliveries_total{webhook="deployer",outcome="failed"}"#)
            >= 9.0
    );
    assert!(worker.metric(r#"gate_webhook_retries_total{webhook="deployer"}"#) >= 9.0);
    assert_eq!(
        worker.metric(r#"gate_webhook_deliveries_total{webhook="deployer",outcome="dead"}"#),
        0.0
    );
    worker.shutdown().await;
    assert_no_credentials_logged();
}

#[tokio::test]
async fn gone_disables_the_webhook_and_dead_letters_its_events() {
    logs();
    let receiver = Receiver::bind().await;
    receiver.set("gone", Mode::Status(410));
    let config = config(&format!(
        "  - name: gone\n    url: {}\n  - name: fine\n    url: {}\n",
        hook_url(receiver.addr, "gone"),
        hook_url(receiver.addr, "fine"),
    ));
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("gate.db")).unwrap();
    let path = [Decision::Pause, Decision::Pending, Decision::Rollback];
    history(&store, &config, "t-1", &path, 0);
    let clock = StepClock::new(t(60));
    let worker = Worker::start(&store, &config, &clock);
    let settled = |store: &Store| {
        store
            .delivery_states(&tid("t-1"))
            .unwrap()
            .iter()
            .all(|d| d.state != DeliveryState::Pending)
    };
    until(
        "all settled",
        &clock,
        chrono::Duration::zero(),
        &worker.nudger,
        || settled(&store),
    )
    .await;

    // A later change after the 410: dead-lettered without a request.
    change(
        &store,
        &config,
        "t-1",
        3,
        Decision::Rollback,
        Decision::Pause,
        t(100),
    );
    until(
        "the later change settled",
        &clock,
        chrono::Duration::seconds(1),
        &worker.nudger,
        || settled(&store),
    )
    .await;

    assert_eq!(
        receiver.requests_for("gone").len(),
        1,
        "called once, then never"
    );
    assert_eq!(receiver.requests_for("fine").len(), 4);
    let states = store.delivery_states(&tid("t-1")).unwrap();
    for d in &states {
        match d.webhook.as_str() {
            "gone" => {
                assert_eq!(d.state, DeliveryState::Dead, "{d:?}");
                let error = d.last_error.as_deref().unwrap();
                assert!(error.contains("410"), "{error}");
            }
            _ => assert_eq!(d.state, DeliveryState::Delivered, "{d:?}"),
        }
    }
    let first_gone = states.iter().find(|d| d.webhook == "gone").unwrap();
    assert_eq!((first_gone.seq, first_gone.last_status), (1, Some(410)));
    assert_eq!(
        worker.metric(r#"gate_webhook_deliveries_total{webhook="gone",outcome="dead"}"#),
        4.0
    );
    // The loud error names the webhook by its URL without credentials or query.
    let shown = format!("url=http://{}/hook/gone ", receiver.addr);
    assert!(
        logs().lock().unwrap().contains(&shown),
        "no `{shown}` in the logs"
    );
    worker.shutdown().await;
    assert_no_credentials_logged();
}

#[tokio::test]
async fn max_attempts_dead_letters_with_the_last_error_and_redrive_delivers() {
    logs();
    let receiver = Receiver::bind().await;
    receiver.set("deployer", Mode::Status(503));
    let config = config(&format!(
        "  - name: deployer\n    url: {}\n    secret_env: HOOK_SECRET\n    max_attempts: 3\n",
        hook_url(receiver.addr, "deployer")
    ));
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("gate.db")).unwrap();
    let ids = history(
        &store,
        &config,
        "t-1",
        &[Decision::Pause, Decision::Rollback],
        0,
    );
    let clock = StepClock::new(t(60));
    let worker = Worker::start(&store, &config, &clock);
    let step = chrono::Duration::seconds(10);
    until("both dead", &clock, step, &worker.nudger, || {
        store
            .delivery_states(&tid("t-1"))
            .unwrap()
            .iter()
            .all(|d| d.state == DeliveryState::Dead)
    })
    .await;

    for d in store.delivery_states(&tid("t-1")).unwrap() {
        assert_eq!(d.attempts, 3);
        assert_eq!(d.last_status, Some(503));
        assert_eq!(
            d.last_error.as_deref(),
            Some("HTTP 503 Service Unavailable: down for maintenance")
        );
        assert!(d.dead_at.is_some());
    }
    let sent: Vec<String> = receiver.requests().iter().map(Received::event_id).collect();
    let expected: Vec<String> = [&ids[0], &ids[0], &ids[0], &ids[1], &ids[1], &ids[1]]
        .into_iter()
        .cloned()
        .collect();
    assert_eq!(
        sent, expected,
        "three attempts each, the earlier event first"
    );
    assert_eq!(store.outbox_backlog().unwrap().dead, 2);

    receiver.set("deployer", Mode::Status(200));
    assert_eq!(
        store.redrive_dead(Some(&tid("t-1")), clock.now()).unwrap(),
        2
    );
    worker.nudger.nudge();
    until(
        "redriven and delivered",
        &clock,
        step,
        &worker.nudger,
        || {
            store
                .delivery_states(&tid("t-1"))
                .unwrap()
                .iter()
                .all(|d| d.state == DeliveryState::Delivered)
        },
    )
    .await;
    let after: Vec<String> = receiver.requests()[6..]
        .iter()
        .map(Received::event_id)
        .collect();
    assert_eq!(after, ids, "redriven in order");
    // A redrive starts the train's order again; each round is in order.
    check_received(&receiver.requests()[..6]);
    check_received(&receiver.requests()[6..]);
    assert_eq!(
        worker.metric(r#"gate_webhook_deliveries_total{webhook="deployer",outcome="dead"}"#),
        2.0
    );
    worker.shutdown().await;
    assert_no_credentials_logged();
}

#[tokio::test]
async fn without_max_attempts_an_event_is_dead_lettered_after_24_hours() {
    logs();
    let receiver = Receiver::bind().await;
    receiver.set("deployer", Mode::Status(500));
    let config = config(&format!(
        "  - name: deployer\n    url: {}\n",
        hook_url(receiver.addr, "deployer")
    ));
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("gate.db")).unwrap();
    history(&store, &config, "t-1", &[Decision::Rollback], 0);
    let clock = StepClock::new(t(0));
    let worker = Worker::start(&store, &config, &clock);
    until(
        "dead",
        &clock,
        chrono::Duration::minutes(10),
        &worker.nudger,
        || store.delivery_states(&tid("t-1")).unwrap()[0].state == DeliveryState::Dead,
    )
    .await;
    let d = &store.delivery_states(&tid("t-1")).unwrap()[0];
    let dead_at = d.dead_at.unwrap();
    assert!(
        dead_at >= d.created_at + chrono::Duration::hours(24),
        "{d:?}"
    );
    // The worker may lag a few clock steps behind the test.
    assert!(
        dead_at < d.created_at + chrono::Duration::hours(30),
        "{d:?}"
    );
    assert!(d.attempts > 10, "retried all along: {d:?}");
    assert_eq!(
        d.last_error.as_deref(),
        Some("HTTP 500 Internal Server Error")
    );
    worker.shutdown().await;
}

#[tokio::test]
async fn a_new_worker_on_the_same_file_delivers_what_a_killed_one_left() {
    logs();
    let receiver = Receiver::bind().await;
    receiver.set("deployer", Mode::Hang);
    let config = config(&format!(
        "  - name: deployer\n    url: {}\n    secret_env: HOOK_SECRET\n    timeout: 1h\n",
        hook_url(receiver.addr, "deployer")
    ));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gate.db");
    let store = Store::open(&path).unwrap();
    let ids = history(
        &store,
        &config,
        "t-1",
        &[Decision::Pause, Decision::Rollback],
        0,
    );
    let clock = StepClock::new(t(60));

    // The first worker sends the first event and is killed while waiting for the answer.
    let first = Worker::start(&store, &config, &clock);
    until(
        "the first attempt in flight",
        &clock,
        chrono::Duration::zero(),
        &first.nudger,
        || !receiver.requests().is_empty(),
    )
    .await;
    first.task.abort();
    assert!(first.task.await.unwrap_err().is_cancelled());
    drop(store);
    let pending = Store::open(&path)
        .unwrap()
        .delivery_states(&tid("t-1"))
        .unwrap();
    assert!(pending.iter().all(|d| d.state == DeliveryState::Pending));

    // A new process: a new store handle on the same file, a new worker.
    receiver.set("deployer", Mode::Status(200));
    reopened_delivers(&path, &config, &clock, &receiver).await;

    let sent: Vec<String> = receiver.requests().iter().map(Received::event_id).collect();
    assert_eq!(
        sent,
        [ids[0].clone(), ids[0].clone(), ids[1].clone()],
        "the interrupted event again, then the next, in order"
    );
    check_received(&receiver.requests());
}

async fn reopened_delivers(
    path: &Path,
    config: &Config,
    clock: &Arc<StepClock>,
    receiver: &Receiver,
) {
    let store = Store::open(path).unwrap();
    let worker = Worker::start(&store, config, clock);
    until(
        "delivered after the restart",
        clock,
        chrono::Duration::zero(),
        &worker.nudger,
        || {
            store
                .delivery_states(&tid("t-1"))
                .unwrap()
                .iter()
                .all(|d| d.state == DeliveryState::Delivered)
        },
    )
    .await;
    assert_eq!(receiver.requests().len(), 3);
    worker.shutdown().await;
}

#[tokio::test]
async fn the_python_receiver_in_the_docs_verifies_our_signature() {
    logs();
    let receiver = Receiver::bind().await;
    let config = config(&format!(
        "  - name: deployer\n    url: {}\n    secret_env: HOOK_SECRET\n",
        hook_url(receiver.addr, "deployer")
    ));
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("gate.db")).unwrap();
    history(&store, &config, "t-1", &[Decision::Rollback], 0);
    let clock = StepClock::new(t(60));
    let worker = Worker::start(&store, &config, &clock);
    until(
        "delivered",
        &clock,
        chrono::Duration::zero(),
        &worker.nudger,
        || !receiver.requests().is_empty(),
    )
    .await;
    worker.shutdown().await;
    let request = &receiver.requests()[0];
    let timestamp: i64 = request.header(sign::TIMESTAMP_HEADER).parse().unwrap();
    assert_eq!(timestamp, t(60).timestamp(), "sent at the worker's clock");

    // The snippet between the markers of docs/webhooks.md, as a module.
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/webhooks.md"))
            .unwrap();
    let snippet = doc
        .split("<!-- verify-example:start -->")
        .nth(1)
        .and_then(|rest| rest.split("<!-- verify-example:end -->").next())
        .expect("markers in docs/webhooks.md");
    let code = snippet
        .trim()
        .strip_prefix("```python")
        .and_then(|c| c.strip_suffix("```"))
        .expect("a python code block between the markers");
    std::fs::write(dir.path().join("receiver.py"), code).unwrap();

    let headers = json!({
        "X-Gate-Timestamp": request.header(sign::TIMESTAMP_HEADER),
        "X-Gate-Signature-256": request.header(sign::SIGNATURE_HEADER),
    });
    let run = |body: &[u8], now: i64| -> String {
        let driver = "import json, os, sys\n\
                      sys.path.insert(0, os.environ['SNIPPET_DIR'])\n\
                      from receiver import verify\n\
                      ok = verify(os.environ['SECRET'].encode(), json.loads(os.environ['HEADERS']),\n\
                      \x20           sys.stdin.buffer.read(), now=int(os.environ['NOW']))\n\
                      print('valid' if ok else 'invalid')\n";
        let mut child = std::process::Command::new("python3")
            .arg("-c")
            .arg(driver)
            .env("SNIPPET_DIR", dir.path())
            .env("SECRET", SECRET)
            .env("HEADERS", headers.to_string())
            .env("NOW", now.to_string())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("python3 runs");
        use std::io::Write;
        child.stdin.take().unwrap().write_all(body).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "python failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };

    assert_eq!(run(&request.body, timestamp + 30), "valid");
    let mut tampered = request.body.to_vec();
    let at = tampered.iter().position(|&b| b == b'r').unwrap();
    tampered[at] = b'R';
    assert_eq!(run(&tampered, timestamp + 30), "invalid", "tampered body");
    assert_eq!(
        run(&request.body, timestamp + 3600),
        "invalid",
        "replayed an hour later"
    );
}

// ---------------------------------------------------------------------------------------------
// Formats

/// `text` between `<!-- {marker}:start -->` and `<!-- {marker}:end -->` in docs/webhooks.md,
/// without the code fence.
fn docs_example(marker: &str) -> Value {
    let docs =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/webhooks.md"))
            .unwrap();
    let start = format!("<!-- {marker}:start -->");
    let end = format!("<!-- {marker}:end -->");
    let block = &docs[docs.find(&start).unwrap() + start.len()..docs.find(&end).unwrap()];
    let json = block
        .trim()
        .strip_prefix("```json")
        .and_then(|b| b.strip_suffix("```"))
        .unwrap_or_else(|| panic!("{marker}: not one ```json block"));
    serde_json::from_str(json).unwrap_or_else(|e| panic!("{marker}: {e}"))
}

/// Block Kit's structure and limits for an incoming-webhook message; every problem found.
fn slack_violations(body: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let chars = |v: &Value| v.as_str().map_or(usize::MAX, |s| s.chars().count());
    if !(1..=3000).contains(&chars(&body["text"])) {
        out.push("`text` missing, empty or over 3000 characters".to_string());
    }
    let Some(blocks) = body["blocks"].as_array() else {
        out.push("no `blocks` array".to_string());
        return out;
    };
    if blocks.is_empty() || blocks.len() > 50 {
        out.push(format!("{} blocks", blocks.len()));
    }
    let mrkdwn = |v: &Value, max: usize, what: &str, out: &mut Vec<String>| {
        if v["type"] != "mrkdwn" && v["type"] != "plain_text" {
            out.push(format!("{what}: text type {}", v["type"]));
        }
        if !(1..=max).contains(&chars(&v["text"])) {
            out.push(format!("{what}: text empty or over {max} characters"));
        }
    };
    for (i, block) in blocks.iter().enumerate() {
        match block["type"].as_str() {
            Some("header") => {
                if block["text"]["type"] != "plain_text" {
                    out.push(format!("block {i}: a header's text must be plain_text"));
                }
                mrkdwn(&block["text"], 150, &format!("header {i}"), &mut out);
            }
            Some("section") => {
                if block.get("text").is_none() && block.get("fields").is_none() {
                    out.push(format!("section {i} has neither text nor fields"));
                }
                if let Some(text) = block.get("text") {
                    mrkdwn(text, 3000, &format!("section {i}"), &mut out);
                }
                if let Some(fields) = block.get("fields") {
                    let fields = fields.as_array().cloned().unwrap_or_default();
                    if fields.is_empty() || fields.len() > 10 {
                        out.push(format!("section {i}: {} fields", fields.len()));
                    }
                    for f in &fields {
                        mrkdwn(f, 2000, &format!("section {i} field"), &mut out);
                    }
                }
            }
            Some("context") => {
                let elements = block["elements"].as_array().cloned().unwrap_or_default();
                if elements.is_empty() || elements.len() > 10 {
                    out.push(format!("context {i}: {} elements", elements.len()));
                }
                for e in &elements {
                    mrkdwn(e, 3000, &format!("context {i} element"), &mut out);
                }
            }
            other => out.push(format!(
                "block {i}: type {other:?} is not header, section or context"
            )),
        }
    }
    out
}

#[tokio::test]
async fn every_format_s_real_body_follows_its_spec() {
    logs();
    let receiver = Receiver::bind().await;
    let chat = format!("chat-{SLACK_PATH_SECRET}");
    let text = format!(
        "public_url: https://gate.example/\n{CONFIG_HEAD}\
         \x20 - name: plain\n    url: {}\n    secret_env: HOOK_SECRET\n\
         \x20 - name: cdevents\n    url: {}\n    format: cloudevents\n    secret_env: HOOK_SECRET\n\
         \x20 - name: chat\n    url: http://{}/hook/{chat}\n    format: slack\n",
        hook_url(receiver.addr, "plain"),
        hook_url(receiver.addr, "cdevents"),
        receiver.addr,
    );
    let config = gate_rules::config::load_str("gate.yaml", &text).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("gate.db")).unwrap();
    let artifact = "pkg:oci/checkout@sha256%3Aab12cd?repository_url=ghcr.io/acme";
    register_with(
        &store,
        "t-art",
        BTreeMap::from([("artifact".to_string(), artifact.to_string())]),
    );
    register(&store, "team/t:2");
    let path = [
        Decision::Pause,
        Decision::Pending,
        Decision::Promote,
        Decision::Rollback,
    ];
    decide_in_turn(&store, &config, "t-art", &path, 0);
    decide_in_turn(&store, &config, "team/t:2", &path, 10);

    // The chat receiver fails at first, so the worker logs its URL (which must not show the
    // path), then recovers.
    receiver.set(&chat, Mode::Status(500));
    let clock = StepClock::new(t(3600));
    let worker = Worker::start(&store, &config, &clock);
    let trains = ["t-art", "team/t:2"];
    until(
        "a failed chat attempt",
        &clock,
        chrono::Duration::zero(),
        &worker.nudger,
        || {
            deliveries(&store, &trains)
                .iter()
                .any(|d| d.webhook == "chat" && d.attempts > 0)
        },
    )
    .await;
    receiver.set(&chat, Mode::Status(200));
    until(
        "every event delivered",
        &clock,
        chrono::Duration::minutes(10),
        &worker.nudger,
        || {
            deliveries(&store, &trains)
                .iter()
                .all(|d| d.state == DeliveryState::Delivered)
        },
    )
    .await;
    worker.shutdown().await;

    // CloudEvents: the official schemas and the binding, on every body sent.
    let schemas = cdevents::Schemas::load();
    let sent = receiver.requests_for("cdevents");
    assert_eq!(sent.len(), 8);
    for request in &sent {
        assert_eq!(
            request.header("content-type"),
            "application/cloudevents+json"
        );
        let body = request.json();
        let problems = schemas.violations(&body);
        assert!(problems.is_empty(), "{problems:#?}\n{body:#}");
        let train = body["subject"].as_str().unwrap();
        let decision = body["data"]["customData"]["decision"].as_str().unwrap();
        let expected_type = match decision {
            "rollback" => "dev.cdevents.service.rolledback.0.3.0",
            "promote" => "dev.cdevents.service.deployed.0.3.0",
            "pause" => "dev.cdeventsx.gate-decision.paused.0.1.0",
            _ => "dev.cdeventsx.gate-decision.pending.0.1.0",
        };
        assert_eq!(body["type"], expected_type);
        if matches!(decision, "rollback" | "promote") {
            let expected_artifact = if train == "t-art" {
                artifact
            } else {
                "pkg:generic/team%2Ft%3A2"
            };
            assert_eq!(
                body["data"]["subject"]["content"]["artifactId"],
                expected_artifact
            );
            assert_eq!(
                body["data"]["subject"]["content"]["environment"]["id"],
                "checkout"
            );
        }
    }
    // A body that breaks the facts is caught: the checks can fail.
    let mut broken = sent[0].json();
    broken["data"]["context"]["version"] = json!("0.5.0");
    broken["data"]["subject"]["type"] = json!("service");
    broken["time"] = json!("2020-01-01T00:00:00Z");
    let problems = schemas.violations(&broken);
    for expected in ["context has `version`", "subject has `type`", "time ≠"] {
        assert!(
            problems.iter().any(|p| p.contains(expected)),
            "{expected} not in {problems:#?}"
        );
    }
    assert!(
        problems.iter().any(|p| p.starts_with("schema:")),
        "{problems:#?}"
    );

    // json: gate's own body.
    for request in receiver.requests_for("plain") {
        assert_eq!(request.header("content-type"), "application/json");
        assert_eq!(request.json()["type"], "gate.decision");
    }

    // Slack: Block Kit, the verdict first, the link to the train under public_url.
    let messages: Vec<Received> = receiver
        .requests()
        .into_iter()
        .filter(|r| r.webhook == chat && r.headers.get("x-gate-event-id").is_some())
        .collect();
    let distinct: HashSet<String> = messages.iter().map(Received::event_id).collect();
    assert_eq!(distinct.len(), 8);
    for request in &messages {
        assert_eq!(request.header("content-type"), "application/json");
        let body = request.json();
        let problems = slack_violations(&body);
        assert!(problems.is_empty(), "{problems:#?}\n{body:#}");
        let header = body["blocks"][0]["text"]["text"].as_str().unwrap();
        let verdict = ["ROLLBACK", "PAUSE", "PROMOTE", "PENDING"]
            .into_iter()
            .find(|v| header.contains(v))
            .unwrap_or_else(|| panic!("no verdict first: {header}"));
        assert!(body["text"].as_str().unwrap().contains(verdict));
        let shown = body.to_string();
        assert!(
            shown.contains("https://gate.example/v1/trains/t-art")
                || shown.contains("https://gate.example/v1/trains/team%2Ft%3A2"),
            "{body:#}"
        );
        if verdict == "ROLLBACK" {
            assert!(
                shown.contains("*15.5* &gt; 14.4"),
                "the numbers against thresholds: {body:#}"
            );
        }
    }
    assert_no_credentials_logged();
}

#[test]
fn the_docs_examples_follow_their_specs() {
    let schemas = cdevents::Schemas::load();
    let cloudevent = docs_example("cloudevents-example");
    let problems = schemas.violations(&cloudevent);
    assert!(problems.is_empty(), "docs/webhooks.md: {problems:#?}");
    let slack = docs_example("slack-example");
    let problems = slack_violations(&slack);
    assert!(problems.is_empty(), "docs/webhooks.md: {problems:#?}");
}

#[tokio::test]
async fn a_429_with_retry_after_waits_for_the_time_it_names() {
    logs();
    let receiver = Receiver::bind().await;
    receiver.set("busy-secs", Mode::TooMany("120"));
    receiver.set("busy-date", Mode::TooMany("Sun, 01 Nov 2026 14:00:00 GMT"));
    let config = config(&format!(
        "  - name: busy-secs\n    url: {}\n    on: [rollback]\n\
         \x20 - name: busy-date\n    url: {}\n    on: [pause]\n",
        hook_url(receiver.addr, "busy-secs"),
        hook_url(receiver.addr, "busy-date"),
    ));
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("gate.db")).unwrap();
    history(&store, &config, "t-1", &[Decision::Rollback], 0);
    history(&store, &config, "t-2", &[Decision::Pause], 0);

    let clock = StepClock::new(t(3600));
    let worker = Worker::start(&store, &config, &clock);
    until(
        "both answered 429",
        &clock,
        chrono::Duration::zero(),
        &worker.nudger,
        || {
            deliveries(&store, &["t-1", "t-2"])
                .iter()
                .all(|d| d.attempts == 1)
        },
    )
    .await;
    let next: HashMap<String, DateTime<Utc>> = deliveries(&store, &["t-1", "t-2"])
        .into_iter()
        .map(|d| (d.webhook, d.next_attempt_at))
        .collect();
    // The backoff alone would retry within a second.
    assert_eq!(next["busy-secs"], t(3600 + 120));
    assert_eq!(next["busy-date"], t(7200));

    receiver.set("busy-secs", Mode::Status(200));
    receiver.set("busy-date", Mode::Status(200));
    // Just before the named times: no new attempt.
    clock.advance(chrono::Duration::seconds(119));
    worker.nudger.nudge();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        receiver.requests().len(),
        2,
        "called again before Retry-After"
    );
    until(
        "busy-secs delivered",
        &clock,
        chrono::Duration::seconds(1),
        &worker.nudger,
        || deliveries(&store, &["t-1"])[0].state == DeliveryState::Delivered,
    )
    .await;
    assert!(clock.now() >= t(3600 + 120));
    assert_eq!(
        deliveries(&store, &["t-2"])[0].state,
        DeliveryState::Pending
    );
    until(
        "busy-date delivered",
        &clock,
        chrono::Duration::minutes(5),
        &worker.nudger,
        || deliveries(&store, &["t-2"])[0].state == DeliveryState::Delivered,
    )
    .await;
    assert!(clock.now() >= t(7200));
    worker.shutdown().await;
}
