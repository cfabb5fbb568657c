//! The HTTP API in-process: request lines, headers, query strings and bodies through the axum
//! router, driven with `tower::ServiceExt::oneshot` on a current-thread runtime.
//!
//! Input: a raw request, `METHOD URI` on the first line, `Name: value` header lines, an empty
//! line, then the body. Every input gets a fresh daemon over a copy of one store that holds a
//! registered train (`v1`, gate `checkout`), so runs are reproducible. The runtime's clock is
//! paused: a long-poll's deadline passes as soon as nothing else can run.
//!
//! Properties, beside "no panic": no 5xx, except the documented `503`s (`/readyz` while
//! Prometheus has not answered; a bound reached, which carries `Retry-After`); every `/v1`
//! error is the API's one JSON error body.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Method, Request, StatusCode};
use gate_engine::daemon::{
    ApiOptions, ClientFactory, Daemon, ManualClock, Metrics, Options, Registry,
};
use gate_engine::prometheus::{PrometheusClient, RetryPolicy};
use gate_engine::store::Store;
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

const CONFIG: &str = r#"
prometheus:
  url: http://127.0.0.1:9
  timeout: 2s
slos:
  - name: avail
    objective: 99
    errors: http_requests_total{service="checkout", code=~"5.."}
    total: http_requests_total{service="checkout"}
gates:
  - name: checkout
    slos: [avail]
    interval: 30s
    verify_for: 10m
    watch_for: 1h
    min_requests: 100
    baseline: none
    rules:
      - name: fast-burn
        when: burn_rate("avail", "1h") > 14.4 && burn_rate("avail", "5m") > 14.4
        then: rollback
webhooks:
  - name: deployer
    url: http://127.0.0.1:9/hook
    on: [rollback, pause, promote]
"#;

const BODY_READ_LIMIT: usize = 16 * 1024 * 1024;

struct World {
    runtime: tokio::runtime::Runtime,
    /// A config file and a store holding train `v1`, copied for every input.
    template: tempfile::TempDir,
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime")
}

fn client_factory() -> ClientFactory {
    Arc::new(|config: &gate_rules::Config| {
        PrometheusClient::new(&config.prometheus, None)
            .map(|c| c.with_retry_policy(RetryPolicy::no_retries()))
            .map_err(|e| e.to_string())
    })
}

async fn daemon(dir: &Path) -> Daemon {
    let config_path = dir.join("gate.yaml");
    let config = gate_rules::config::load_file(&config_path).expect("the fuzz config loads");
    let store = Store::open(&dir.join("gate.db")).expect("the store opens");
    let clock = Arc::new(ManualClock::new(
        chrono::DateTime::parse_from_rfc3339("2026-11-01T12:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc),
    ));
    let mut registry = Registry::default();
    let metrics = Arc::new(Metrics::register(&mut registry));
    Daemon::start(Options {
        config,
        config_path: Some(config_path),
        store,
        clock,
        client_factory: client_factory(),
        metrics,
        registry: Arc::new(registry),
        api: ApiOptions::default(),
        webhooks: None,
    })
    .await
    .expect("the daemon starts")
}

static WORLD: LazyLock<World> = LazyLock::new(|| {
    let template = tempfile::tempdir().expect("a temp dir");
    std::fs::write(template.path().join("gate.yaml"), CONFIG).unwrap();
    let runtime = runtime();
    runtime.block_on(async {
        let daemon = daemon(template.path()).await;
        let request = Request::post("/v1/trains")
            .header("content-type", "application/json")
            .body(Body::from(
                r#"{"id":"v1","gate":"checkout","started_at":"2026-11-01T11:00:00Z","labels":{"team":"payments"}}"#,
            ))
            .unwrap();
        let response = daemon.router().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::CREATED, "registering v1");
    });
    World { runtime, template }
});

/// Copies the template's files into a fresh directory.
fn fresh_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("a temp dir");
    for entry in std::fs::read_dir(WORLD.template.path()).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    let path = dir.path().to_path_buf();
    (dir, path)
}

/// Parses the raw request; `None` when it is not one `http` can represent.
fn request(data: &[u8]) -> Option<(Request<Body>, String)> {
    let (head, body) = match data.windows(2).position(|w| w == b"\n\n") {
        Some(at) => (&data[..at], &data[at + 2..]),
        None => (data, &[][..]),
    };
    let head = std::str::from_utf8(head).ok()?;
    let mut lines = head.split('\n');
    let (method, uri) = lines.next()?.split_once(' ')?;
    let method = Method::from_bytes(method.as_bytes()).ok()?;
    let mut builder = Request::builder().method(method).uri(uri);
    for line in lines {
        let (name, value) = line.split_once(':')?;
        let name = HeaderName::from_bytes(name.trim().as_bytes()).ok()?;
        let value = HeaderValue::from_str(value.trim()).ok()?;
        builder = builder.header(name, value);
    }
    let request = builder.body(Body::from(body.to_vec())).ok()?;
    let path = request.uri().path().to_string();
    Some((request, path))
}

fuzz_target!(|data: &[u8]| {
    let Some((request, path)) = request(data) else {
        return;
    };
    let world = &*WORLD;
    let (_dir, dir) = fresh_dir();
    world.runtime.block_on(async move {
        let daemon = daemon(&dir).await;
        let response = daemon
            .router()
            .oneshot(request)
            .await
            .expect("the router is infallible");
        let status = response.status();
        let retry_after = response.headers().contains_key("retry-after");
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body = axum::body::to_bytes(response.into_body(), BODY_READ_LIMIT)
            .await
            .expect("the response body reads");
        let text = String::from_utf8_lossy(&body);
        if status.is_server_error() {
            let documented =
                status == StatusCode::SERVICE_UNAVAILABLE && (path == "/readyz" || retry_after);
            assert!(documented, "{status} for {path}: {text}");
        }
        if path.starts_with("/v1/") && (status.is_client_error() || status.is_server_error()) {
            assert!(
                content_type.starts_with("application/json"),
                "{status} for {path} with content-type {content_type:?}: {text}"
            );
            let value: serde_json::Value = serde_json::from_slice(&body)
                .unwrap_or_else(|e| panic!("{status} for {path}: not JSON ({e}): {text}"));
            assert!(
                value["error"]["code"].is_string() && value["error"]["message"].is_string(),
                "{status} for {path}: not the error body: {text}"
            );
        }
    });
});
