//! `gate serve`: the daemon that evaluates every active train on a schedule and serves the
//! decisions over HTTP.
//!
//! The pieces, one job per file:
//!
//! * [`scheduler`] — one tokio task per gate: every `interval`, one planned batch of queries
//!   for all the gate's trains ([`crate::evaluate::fetch`]), a decision per train, the whole
//!   cycle written in one store transaction, then published;
//! * [`api`] — the HTTP API of SPEC §6 (axum), reading the in-memory state;
//! * `http` — the accept loop: each connection served with hyper's HTTP/1;
//! * [`live`] — `GET /v1/events`, the changes of every train as server-sent events;
//! * [`series`] — a train's signals over a time range, read from Prometheus on request;
//! * [`state`] — that in-memory state: one immutable view per train in a watch channel;
//! * [`metrics`] — the daemon's own metrics;
//! * [`limits`] — the bounds on open long-polls and active trains;
//! * `retention` — the hourly prune of old history (`store.retention`);
//! * [`role`] — on a PostgreSQL store shared by replicas: the leader lease (only the leader
//!   evaluates, delivers and prunes) and following the changes other replicas write;
//! * `delivery` — the webhook deliverer, restarted with the targets of each reload;
//!
//! This file holds what they share ([`Shared`]): the store, the clock, the trains, the
//! current config with its Prometheus client ([`Runtime`], swapped as a whole on reload), the
//! write lock and the shutdown signal; and [`Daemon`], which starts, reloads and stops them.
//!
//! Design choices a newcomer may question:
//!
//! * **Store first, then memory.** Every change (decision, lifecycle, registration,
//!   override, stop) is committed before it is published, under one async write lock held
//!   across commit-and-publish. A client never sees a decision that a crash could take back,
//!   and publishes happen in commit order, so a slow evaluation can never overwrite a newer
//!   override in memory. An evaluation that changes no decision is published at once and
//!   written at the next checkpoint (see [`scheduler`]): a crash can take back its reason and
//!   evidence, not a decision.
//! * **Reads never touch the store** for trains the daemon holds (every active train), so the
//!   decision endpoint is a map lookup and a pre-rendered body.
//! * **A reload swaps config, client and webhook targets together** ([`Runtime`]); a gate
//!   task picks up the new one at its next tick, and an evaluation in flight finishes with the
//!   config it started with. An invalid config (or one whose webhook secret is not set) is
//!   refused and the old one keeps running. The webhook deliverer follows [`Daemon::runtime`]
//!   and is restarted with the new targets.

pub mod api;
mod delivery;
mod http;
pub mod limits;
pub mod list;
pub mod live;
pub mod metrics;
mod retention;
pub mod role;
pub mod scheduler;
pub mod series;
pub mod state;
pub mod web;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use gate_rules::config::Config;
use gate_rules::Decision;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::prometheus::{AttemptOutcome, AttemptReport, PrometheusClient};
use crate::review;
use crate::store::{Outcome, Store, StoreError, TrainFilter, TrainRecord};
use crate::webhook::{self, Nudger, WebhookError, WebhookTarget};

pub use crate::clock::{Clock, ManualClock, SystemClock};
pub use metrics::Metrics;
pub use prometheus_client::registry::Registry;
pub use state::{TrainView, Trains};

/// Builds a Prometheus client for a config (the caller reads `bearer_token_env`). The daemon
/// installs its metrics observer on the result.
pub type ClientFactory = Arc<dyn Fn(&Config) -> Result<PrometheusClient, String> + Send + Sync>;

/// The config in force with what is built from it (Prometheus client, webhook targets),
/// replaced together on reload.
#[derive(Debug)]
pub struct Runtime {
    /// The validated config.
    pub config: Arc<Config>,
    /// The client for `config.prometheus`.
    pub client: Arc<PrometheusClient>,
    /// `config.webhooks` with their URLs parsed and secrets read from the environment.
    pub webhooks: Vec<WebhookTarget>,
}

/// Who may call the API.
#[derive(Debug, Clone, Default)]
pub struct ApiOptions {
    /// The known tokens (none: the API is open); see [`api::auth`].
    pub tokens: Vec<gate_rules::config::ApiToken>,
    /// Require the token for reads too (`/healthz` and `/readyz` stay open).
    pub auth_reads: bool,
    /// The bounds on open long-polls and active trains.
    pub limits: limits::Limits,
}

/// Everything the daemon needs to start.
pub struct Options {
    /// The validated config.
    pub config: Config,
    /// The file it came from, read again on reload (`None`: reload is refused).
    pub config_path: Option<PathBuf>,
    /// The open store.
    pub store: Store,
    /// The clock evaluation times come from.
    pub clock: Arc<dyn Clock>,
    /// Builds Prometheus clients (at start and on reload).
    pub client_factory: ClientFactory,
    /// The daemon's metrics, registered in `registry`.
    pub metrics: Arc<Metrics>,
    /// The registry `GET /metrics` encodes (complete: nothing registers after start).
    pub registry: Arc<Registry>,
    /// API access.
    pub api: ApiOptions,
    /// Wakes the webhook deliverer after a commit that queued events (see also
    /// [`Daemon::set_webhook_nudger`]).
    pub webhooks: Option<Nudger>,
    /// The replica's ID and lease (used on a shared store; see [`role`]).
    pub ha: role::HaOptions,
}

/// The daemon could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DaemonError {
    /// The store could not be read.
    #[error("cannot load the trains from the store")]
    Store(#[from] StoreError),
    /// The Prometheus client could not be built.
    #[error("cannot build the Prometheus client: {0}")]
    Client(String),
    /// A webhook's URL or secret is unusable.
    #[error(transparent)]
    Webhooks(WebhookError),
    /// A blocking store task did not complete.
    #[error("a store task failed: {0}")]
    Task(String),
}

/// A reload was refused; the config in force keeps running.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReloadError {
    /// The daemon was started without a config file.
    #[error("the daemon has no config file to reload")]
    NoConfigFile,
    /// The new config is invalid (or unreadable).
    #[error("the new config is invalid ({} error(s)); the old config keeps running", messages.len())]
    Invalid {
        /// One line per problem, `file:line:col: message (hint)`.
        messages: Vec<String>,
    },
    /// The new Prometheus settings cannot make a client.
    #[error("cannot build a Prometheus client for the new config: {0}")]
    Client(String),
    /// A webhook of the new config is unusable (e.g. its `secret_env` is not set).
    #[error("the new config's webhooks are unusable: {0}; the old config keeps running")]
    Webhooks(WebhookError),
}

/// What a successful reload changed (the body of `POST /v1/reload`).
pub use gate_api::ReloadReport;

/// What the last contact with Prometheus said, for `/readyz`.
#[derive(Debug, Default)]
pub(crate) struct PromHealth {
    last: Mutex<Option<(Instant, bool)>>,
}

impl PromHealth {
    fn record(&self, outcome: AttemptOutcome) {
        let ok = outcome == AttemptOutcome::Success;
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some((Instant::now(), ok));
    }

    /// The last outcome if it is younger than `max_age`.
    pub(crate) fn recent(&self, max_age: Duration) -> Option<bool> {
        let last = *self.last.lock().unwrap_or_else(|p| p.into_inner());
        last.filter(|(at, _)| at.elapsed() <= max_age)
            .map(|(_, ok)| ok)
    }
}

/// What the scheduler and the API share.
pub struct Shared {
    pub(crate) store: Store,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) trains: Trains,
    pub(crate) runtime: watch::Sender<Arc<Runtime>>,
    /// Held across commit-and-publish of every change (see the module docs).
    pub(crate) write_lock: tokio::sync::Mutex<()>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) registry: Arc<Registry>,
    pub(crate) health: Arc<PromHealth>,
    pub(crate) shutdown: watch::Sender<bool>,
    pub(crate) api: ApiOptions,
    pub(crate) long_polls: Arc<limits::LongPolls>,
    webhooks: Mutex<Option<Nudger>>,
    config_path: Option<PathBuf>,
    client_factory: ClientFactory,
    reload_lock: tokio::sync::Mutex<()>,
    pub(crate) ha: role::HaOptions,
    /// Whether this replica leads (always, on SQLite), and who does.
    pub(crate) role: watch::Sender<role::Role>,
}

impl Shared {
    /// The config and client in force.
    pub(crate) fn runtime(&self) -> Arc<Runtime> {
        self.runtime.borrow().clone()
    }

    /// Whether the daemon evaluates this train now: an evaluated state and every one of its
    /// gates configured.
    pub(crate) fn evaluating(&self, view: &TrainView, config: &Config) -> bool {
        state::is_evaluated(view.record.lifecycle)
            && view
                .record
                .gate_names()
                .iter()
                .all(|g| config.gate(g).is_some())
    }

    /// Makes `view` current (after its change was committed) and updates its metrics, its
    /// burn rates read back from its stored evidence.
    pub(crate) fn publish(&self, view: Arc<TrainView>) {
        let config = self.runtime().config.clone();
        let evaluated = self.evaluating(&view, &config);
        let rates = match (&view.record.evaluation, evaluated) {
            (Some(evidence), true) => metrics::burn_rates_in(evidence),
            _ => Vec::new(),
        };
        self.publish_with(view, evaluated, &rates);
    }

    /// [`Shared::publish`] of a view just evaluated, with the burn rates of its report.
    pub(crate) fn publish_evaluated(&self, view: Arc<TrainView>, burn_rates: &[metrics::BurnRate]) {
        let config = self.runtime().config.clone();
        let evaluated = self.evaluating(&view, &config);
        self.publish_with(view, evaluated, burn_rates);
    }

    fn publish_with(
        &self,
        view: Arc<TrainView>,
        evaluated: bool,
        burn_rates: &[metrics::BurnRate],
    ) {
        let r = &view.record;
        let (gate, lifecycle) = (r.gate.clone(), r.lifecycle);
        let config = self.runtime().config.clone();
        // Read back only for gates that have dry-run rules: the others have nothing to show.
        let shadows = |config: &Config| {
            config
                .gate(&r.gate)
                .is_some_and(|g| g.rules.iter().any(|rule| rule.dry_run))
        };
        let would_have = match &r.evaluation {
            Some(evidence) if evaluated && config.metrics.per_train && shadows(&config) => {
                metrics::would_have_in(evidence)
            }
            _ => None,
        };
        self.metrics.set_train(&metrics::TrainGauges {
            train: &r.id,
            gate: &r.gate,
            decision: r.decision,
            lifecycle: r.lifecycle,
            evaluated,
            burn_rates,
            would_have,
            exported: config.metrics.per_train,
        });
        let old = self.trains.publish(view);
        // A train seen finishing: its lifecycle moved from an open state to a finished one.
        if let Some(old) = old {
            if Outcome::on_finishing(old.record.lifecycle).is_none() {
                if let Some(outcome) = Outcome::on_finishing(lifecycle) {
                    self.metrics.train_finished(&gate, outcome.as_str());
                }
            }
        }
    }

    /// Logs a decision change of `prev` to `decision` at `at` and counts it; a train's first
    /// verdict is observed in `gate_time_to_verdict_seconds`.
    pub(crate) fn decision_changed(
        &self,
        prev: &TrainRecord,
        decision: Decision,
        reason: &str,
        at: DateTime<Utc>,
    ) {
        let (train, gate, previous) = (&prev.id, prev.gate.as_str(), prev.decision);
        let first_verdict = review::is_verdict(decision)
            && !review::is_verdict(previous)
            && prev.promoted_at.is_none();
        if first_verdict {
            let secs = (at - prev.started_at).num_milliseconds().max(0) as f64 / 1000.0;
            self.metrics.verdict(gate, secs);
        }
        tracing::info!(
            train = %train,
            gate,
            previous = %previous,
            decision = %decision,
            "train {train} (gate {gate}): {previous} → {decision}: {reason}"
        );
        self.metrics.decision_changed(gate, decision);
    }

    /// Tells the webhook deliverer that a commit queued events.
    pub(crate) fn nudge_webhooks(&self) {
        let nudger = self.webhooks.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(nudger) = nudger.as_ref() {
            nudger.nudge();
        }
    }

    /// Runs a store call on the blocking pool.
    pub(crate) async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, BlockingError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|e| BlockingError::Task(e.to_string()))?
            .map_err(BlockingError::Store)
    }

    fn client_for(&self, config: &Config) -> Result<Arc<PrometheusClient>, String> {
        build_client(&self.client_factory, config, &self.metrics, &self.health)
    }

    /// Whether shutdown has begun.
    pub(crate) fn shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }
}

/// A store call on the blocking pool failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BlockingError {
    #[error(transparent)]
    Store(StoreError),
    #[error("a store task failed: {0}")]
    Task(String),
}

fn build_client(
    factory: &ClientFactory,
    config: &Config,
    metrics: &Arc<Metrics>,
    health: &Arc<PromHealth>,
) -> Result<Arc<PrometheusClient>, String> {
    let metrics = Arc::clone(metrics);
    let health = Arc::clone(health);
    let client = factory(config)?.with_observer(move |report: &AttemptReport<'_>| {
        metrics.observe_query(report);
        health.record(report.outcome);
    });
    Ok(Arc::new(client))
}

/// The config's webhooks, secrets read from the environment.
fn resolve_webhooks(config: &Config) -> Result<Vec<WebhookTarget>, WebhookError> {
    webhook::resolve_webhooks(&config.webhooks, |var| std::env::var(var).ok())
}

/// Opens (or creates) the store at `path` (a file, or a `postgres://` URL) for
/// [`Options::store`]. An SQLite file is opened as its one writer: a second daemon on the
/// same file is refused ([`StoreError::InUse`], naming the first one's pid). A PostgreSQL
/// store is shared by the replicas, one of which leads ([`role`]).
pub fn open_store(path: &std::path::Path) -> Result<Store, StoreError> {
    match crate::store::StoreAt::from(path) {
        at @ crate::store::StoreAt::Sqlite(_) => Store::open_exclusive(at),
        at @ crate::store::StoreAt::Postgres(_) => Store::open(at),
    }
}

/// The running daemon: its shared state and its scheduler.
pub struct Daemon {
    shared: Arc<Shared>,
    scheduler: Mutex<Option<JoinHandle<()>>>,
}

impl Daemon {
    /// Loads every active train from the store (state, seq, streaks, latest evaluation) and
    /// prepares the daemon. Nothing is evaluated until [`Daemon::spawn_scheduler`].
    pub async fn start(opts: Options) -> Result<Daemon, DaemonError> {
        let health = Arc::new(PromHealth::default());
        let config = Arc::new(opts.config);
        let client = build_client(&opts.client_factory, &config, &opts.metrics, &health)
            .map_err(DaemonError::Client)?;
        let webhooks = resolve_webhooks(&config).map_err(DaemonError::Webhooks)?;
        let (shutdown, _) = watch::channel(false);
        // The only writer of an SQLite file leads from the start; replicas of a shared store
        // learn their role from the lease.
        let role = if opts.store.is_shared() {
            role::Role::unknown()
        } else {
            role::Role {
                leading: true,
                leader: Some(opts.ha.replica.clone()),
                epoch: 0,
            }
        };
        opts.metrics.set_leader(&opts.ha.replica, role.leading);
        let shared = Arc::new(Shared {
            store: opts.store,
            clock: opts.clock,
            trains: Trains::new(),
            runtime: watch::Sender::new(Arc::new(Runtime {
                config,
                client,
                webhooks,
            })),
            write_lock: tokio::sync::Mutex::new(()),
            metrics: opts.metrics,
            registry: opts.registry,
            health,
            shutdown,
            api: opts.api,
            long_polls: Arc::default(),
            webhooks: Mutex::new(opts.webhooks),
            config_path: opts.config_path,
            client_factory: opts.client_factory,
            reload_lock: tokio::sync::Mutex::new(()),
            ha: opts.ha,
            role: watch::Sender::new(role),
        });
        let records = shared
            .blocking(|store| store.trains(TrainFilter::Active))
            .await
            .map_err(|e| match e {
                BlockingError::Store(e) => DaemonError::Store(e),
                BlockingError::Task(e) => DaemonError::Task(e),
            })?;
        let config = shared.runtime().config.clone();
        let mut unevaluated = Vec::new();
        for record in records {
            if record.gate_names().iter().any(|g| config.gate(g).is_none()) {
                unevaluated.push(format!("{} (gate {})", record.id, record.gate));
            }
            shared.publish(TrainView::new(record));
        }
        if !unevaluated.is_empty() {
            tracing::warn!(
                "{} active train(s) belong to gates not in the config and are not evaluated: {}",
                unevaluated.len(),
                unevaluated.join(", ")
            );
        }
        Ok(Daemon {
            shared,
            scheduler: Mutex::new(None),
        })
    }

    /// Starts one evaluation task per gate (and follows reloads); on a shared store also the
    /// lease and the following of other replicas' changes ([`role`]): the gate tasks evaluate
    /// only while this replica leads.
    pub fn spawn_scheduler(&self) {
        if self.shared.store.is_shared() {
            tokio::spawn(role::run(Arc::clone(&self.shared)));
            tokio::spawn(role::follow(Arc::clone(&self.shared)));
        }
        let handle = tokio::spawn(scheduler::run(Arc::clone(&self.shared)));
        *self.scheduler.lock().unwrap_or_else(|p| p.into_inner()) = Some(handle);
    }

    /// Starts the hourly prune of history older than `store.retention` (until shutdown).
    pub fn spawn_retention(&self) {
        tokio::spawn(retention::run(Arc::clone(&self.shared)));
    }

    /// Wakes this deliverer after commits that queue webhook events (the deliverer is
    /// replaced when a reload changes the webhooks).
    pub fn set_webhook_nudger(&self, nudger: Nudger) {
        *self
            .shared
            .webhooks
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(nudger);
    }

    /// The HTTP API.
    pub fn router(&self) -> axum::Router {
        api::router(Arc::clone(&self.shared))
    }

    /// Serves the API on `listener` until shutdown begins, then lets the requests in flight
    /// finish (long-polls return at once with the current decision).
    ///
    /// Each connection gets a clone of the one router (an `Arc`), never route tables of its
    /// own: they would cost 5 KB for as long as the connection stays open — a held long-poll
    /// included. How connections are served: `http`.
    pub async fn serve(&self, listener: tokio::net::TcpListener) -> std::io::Result<()> {
        http::serve(listener, self.router(), self.shutdown_started()).await
    }

    /// The shared state (for the webhook deliverer and tests).
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The trains held.
    pub fn trains(&self) -> &Trains {
        &self.shared.trains
    }

    /// Follows the config in force (and its client) across reloads.
    pub fn runtime(&self) -> watch::Receiver<Arc<Runtime>> {
        self.shared.runtime.subscribe()
    }

    /// Becomes `true` when shutdown begins.
    pub fn shutdown_receiver(&self) -> watch::Receiver<bool> {
        self.shared.shutdown.subscribe()
    }

    /// Reads the config file again and, if it is valid, puts it in force.
    pub async fn reload(&self) -> Result<ReloadReport, ReloadError> {
        reload(&self.shared).await
    }

    /// Begins shutdown: the API stops long-polls, gate tasks stop after their cycle in flight.
    pub fn begin_shutdown(&self) {
        self.shared.shutdown.send_replace(true);
    }

    /// Resolves once shutdown has begun (for `axum::serve(..).with_graceful_shutdown`).
    pub fn shutdown_started(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.shared.shutdown.subscribe();
        async move {
            let _ = rx.wait_for(|down| *down).await;
        }
    }

    /// Begins shutdown if needed, waits until every gate task has finished its cycle in
    /// flight and committed it, then writes the evaluations the scheduler deferred.
    pub async fn shutdown(&self) {
        self.begin_shutdown();
        let handle = self
            .scheduler
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(handle) = handle {
            if let Err(e) = handle.await {
                tracing::error!("the scheduler failed: {e}");
            }
        }
        // Only the leader writes; a follower's deferred evaluations were never its own.
        if self.shared.role.borrow().leading {
            if let Err(e) = self.shared.blocking(|store| store.checkpoint()).await {
                tracing::error!("cannot write the deferred evaluations at shutdown: {e}");
            }
        }
        if self.shared.store.is_shared() {
            role::release(&self.shared).await;
        }
    }

    /// This replica's role: whether it leads, and who does.
    pub fn role(&self) -> role::Role {
        self.shared.role.borrow().clone()
    }
}

async fn reload(shared: &Arc<Shared>) -> Result<ReloadReport, ReloadError> {
    let path = shared
        .config_path
        .clone()
        .ok_or(ReloadError::NoConfigFile)?;
    let loaded = tokio::task::spawn_blocking(move || gate_rules::config::load_file(&path))
        .await
        .map_err(|e| ReloadError::Invalid {
            messages: vec![format!("the config could not be read: {e}")],
        })?;
    let config = loaded.map_err(|e| ReloadError::Invalid {
        messages: e
            .render_plain()
            .lines()
            .map(str::to_string)
            .filter(|l| !l.is_empty())
            .collect(),
    })?;
    let client = shared.client_for(&config).map_err(ReloadError::Client)?;
    let webhooks = resolve_webhooks(&config).map_err(ReloadError::Webhooks)?;
    let _one_at_a_time = shared.reload_lock.lock().await;
    let config = Arc::new(config);
    shared.runtime.send_replace(Arc::new(Runtime {
        config: Arc::clone(&config),
        client,
        webhooks,
    }));
    let orphans = shared.trains.filter(|v| {
        v.record.lifecycle.is_active()
            && v.record
                .gate_names()
                .iter()
                .any(|g| config.gate(g).is_none())
    });
    // Burn-rate series of trains that are no longer evaluated go away.
    for view in &orphans {
        shared.publish(Arc::clone(view));
    }
    let report = ReloadReport {
        gates: config.gates.iter().map(|g| g.name.clone()).collect(),
        unevaluated_trains: orphans.iter().map(|v| v.id().clone()).collect(),
    };
    tracing::info!(gates = ?report.gates, "config reloaded");
    if !orphans.is_empty() {
        let list: Vec<String> = orphans
            .iter()
            .map(|v| format!("{} (gate {})", v.id(), v.record.gate))
            .collect();
        tracing::warn!(
            "{} active train(s) belong to gates no longer in the config; they keep their state \
             but are not evaluated: {}",
            list.len(),
            list.join(", ")
        );
    }
    Ok(report)
}

#[cfg(test)]
pub(crate) mod tests {
    //! A daemon over a temporary store and config file, with a manual clock, for the tests of
    //! the API and the scheduler.

    use std::collections::HashMap;

    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use chrono::TimeZone;
    use tower::ServiceExt;

    use gate_rules::TrainId;

    use super::*;
    use crate::prometheus::RetryPolicy;

    /// 2026-11-01T12:00:00Z
    pub(crate) fn t0() -> chrono::DateTime<chrono::Utc> {
        chrono::Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap()
    }

    pub(crate) fn tid(id: &str) -> TrainId {
        gate_rules::train_id::validate(id).unwrap()
    }

    /// A config with one SLO and the gate `checkout` (verify 10m, watch 1h, interval 30s).
    pub(crate) fn config_yaml(prometheus_url: &str) -> String {
        format!(
            r#"
prometheus:
  url: {prometheus_url}
  timeout: 2s
slos:
  - name: avail
    objective: 99
    errors: http_requests_total{{service="checkout", code=~"5.."}}
    total: http_requests_total{{service="checkout"}}
gates:
  - name: checkout
    slos: [avail]
    interval: 30s
    verify_for: 10m
    watch_for: 1h
    min_requests: 100
    baseline: none
    max_consecutive_errors: 3
    rules:
      - name: fast-burn
        when: burn_rate("avail", "1h") > 14.4 && burn_rate("avail", "5m") > 14.4
        then: rollback
webhooks:
  - name: deployer
    url: http://127.0.0.1:9/hook
    on: [rollback, pause, promote]
"#
        )
    }

    pub(crate) struct Harness {
        pub dir: tempfile::TempDir,
        pub daemon: Daemon,
        pub clock: Arc<ManualClock>,
        pub router: axum::Router,
    }

    impl Harness {
        pub(crate) fn config_path(&self) -> std::path::PathBuf {
            self.dir.path().join("gate.yaml")
        }

        pub(crate) fn shared(&self) -> &Arc<Shared> {
            self.daemon.shared()
        }

        /// Sends a request to the API and returns the status and the JSON body (`Null` when
        /// the body is not JSON).
        pub(crate) async fn call(
            &self,
            method: &str,
            uri: &str,
            body: Option<serde_json::Value>,
            token: Option<&str>,
        ) -> (StatusCode, serde_json::Value) {
            let mut req = Request::builder().method(method).uri(uri);
            if let Some(token) = token {
                req = req.header("authorization", format!("Bearer {token}"));
            }
            let req = match body {
                Some(body) => req
                    .header("content-type", "application/json")
                    .body(Body::from(body.to_string())),
                None => req.body(Body::empty()),
            }
            .unwrap();
            send(&self.router, req).await
        }
    }

    pub(crate) async fn send(
        router: &axum::Router,
        req: Request<Body>,
    ) -> (StatusCode, serde_json::Value) {
        let response = router.clone().oneshot(req).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        (status, json)
    }

    /// A daemon (scheduler not started) over a new store, with `yaml` as its config file.
    pub(crate) async fn harness(yaml: &str, api: ApiOptions) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        harness_in(dir, yaml, api).await
    }

    /// A daemon over the store and config file in `dir` (a restart when they exist).
    pub(crate) async fn harness_in(dir: tempfile::TempDir, yaml: &str, api: ApiOptions) -> Harness {
        let config_path = dir.path().join("gate.yaml");
        if !config_path.exists() {
            std::fs::write(&config_path, yaml).unwrap();
        }
        let config = gate_rules::config::load_file(&config_path).unwrap();
        let store = Store::open(&dir.path().join("gate.db")).unwrap();
        let clock = Arc::new(ManualClock::new(t0()));
        let mut registry = Registry::default();
        let metrics = Arc::new(Metrics::register(&mut registry));
        let daemon = Daemon::start(Options {
            config,
            config_path: Some(config_path),
            store,
            clock: clock.clone(),
            client_factory: test_client_factory(),
            metrics,
            registry: Arc::new(registry),
            api,
            webhooks: None,
            ha: Default::default(),
        })
        .await
        .unwrap();
        let router = daemon.router();
        Harness {
            dir,
            daemon,
            clock,
            router,
        }
    }

    pub(crate) fn test_client_factory() -> ClientFactory {
        Arc::new(|config: &Config| {
            PrometheusClient::new(&config.prometheus, None)
                .map(|c| c.with_retry_policy(RetryPolicy::no_retries()))
                .map_err(|e| e.to_string())
        })
    }

    /// A Prometheus stand-in answering every instant query with one sample per train: the
    /// train's errors for queries of the errors selector, its total otherwise.
    #[derive(Clone, Default)]
    pub(crate) struct FakeData {
        pub per_train: Arc<Mutex<HashMap<String, (f64, f64)>>>,
    }

    impl FakeData {
        pub(crate) fn set(&self, train: &str, errors: f64, total: f64) {
            self.per_train
                .lock()
                .unwrap()
                .insert(train.to_string(), (errors, total));
        }
    }

    impl wiremock::Respond for FakeData {
        fn respond(&self, request: &wiremock::Request) -> wiremock::ResponseTemplate {
            let query = form_value(&request.body, "query").unwrap_or_default();
            let errors = query.contains("5..");
            let result: Vec<serde_json::Value> = self
                .per_train
                .lock()
                .unwrap()
                .iter()
                .map(|(train, (e, t))| {
                    let v = if errors { *e } else { *t };
                    serde_json::json!({"metric": {"train_id": train}, "value": [1793534400.0, v.to_string()]})
                })
                .collect();
            wiremock::ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "status": "success",
                "data": {"resultType": "vector", "result": result}
            }))
        }
    }

    /// The value of `key` in an `application/x-www-form-urlencoded` body.
    pub(crate) fn form_value(body: &[u8], key: &str) -> Option<String> {
        let text = std::str::from_utf8(body).ok()?;
        text.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            (k == key).then(|| percent_decode(v))
        })
    }

    fn percent_decode(s: &str) -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < bytes.len() => {
                    let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                    match u8::from_str_radix(hex, 16) {
                        Ok(b) => {
                            out.push(b);
                            i += 2;
                        }
                        Err(_) => out.push(b'%'),
                    }
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Starts a fake Prometheus serving `data`.
    pub(crate) async fn fake_prometheus(data: &FakeData) -> wiremock::MockServer {
        let server = wiremock::MockServer::start().await;
        wiremock::Mock::given(wiremock::matchers::method("POST"))
            .and(wiremock::matchers::path("/api/v1/query"))
            .respond_with(data.clone())
            .mount(&server)
            .await;
        server
    }
}
