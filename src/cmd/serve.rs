//! `gate serve`: the daemon. Evaluates every active train on its gate's interval, serves the
//! HTTP API of SPEC §6 and delivers webhooks.
//!
//! This file only wires things together: config, store, Prometheus client, webhook
//! deliverer, the engine's [`gate_engine::daemon::Daemon`], the listener, and the signals.
//! The order matters for the exit codes: the config is validated first (exit 2), then the
//! store is opened (exit 1 when it cannot be), and only once everything is up is the listen
//! address printed on stdout — a script (or a test) that reads that line knows the API
//! answers.
//!
//! Signals: SIGTERM and SIGINT stop accepting connections, end long-polls with the current
//! decision, let every gate's evaluation in flight finish and commit, let webhook attempts in
//! flight finish, then exit 0. That has a deadline (`--shutdown-timeout`, 30 s), and a second
//! SIGTERM/SIGINT ends the process at once (exit 1): an operator who asks twice means it.
//! Neither loses a committed decision: the store is only ever written in transactions. SIGHUP reloads the config (as `POST /v1/reload` does): an
//! invalid file is refused with its errors in the log and the old config keeps running.

use std::io::{IsTerminal as _, Write as _};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use gate_engine::daemon::api::auth::{all_scopes, SHARED_TOKEN_NAME};
use gate_engine::daemon::role::HaOptions;
use gate_engine::daemon::{
    limits, ApiOptions, ClientFactory, Daemon, Metrics, Options, Registry, SystemClock,
};
use gate_engine::webhook::{self, WebhookMetrics};
use gate_rules::config::ApiToken;

use super::eval::prometheus_client;
use super::load_config;
use crate::exit;

/// The variable holding the API token; when set, POST and DELETE require it.
pub const TOKEN_ENV: &str = "GATE_API_TOKEN";
/// The variable naming the tokens file (as `--tokens`).
pub const TOKENS_ENV: &str = "GATE_TOKENS_FILE";

/// Arguments of `gate serve`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The config file. SIGHUP or `POST /v1/reload` reads it again.
    #[arg(long, short, default_value = "gate.yaml")]
    pub config: PathBuf,
    /// Address to listen on (port 0: any free port; the address is printed when ready).
    #[arg(long, default_value = "127.0.0.1:9797")]
    pub listen: SocketAddr,
    /// The store (trains, decisions, overrides, webhook outbox): an SQLite file, or a
    /// PostgreSQL database as `postgres://user@host:port/db`.
    #[arg(long, env = "GATE_DB", default_value = "gate.db")]
    pub db: PathBuf,
    /// Require a token for reads too (with the `read` scope); /healthz, /readyz and
    /// /v1/openapi.json stay open.
    #[arg(long)]
    pub auth_reads: bool,
    /// Named API tokens with scopes (read, register, override, admin): a YAML list of
    /// `{name, sha256, scopes}`; `gate token hash` prints the sha256 line for a token.
    #[arg(long, env = TOKENS_ENV, value_name = "FILE")]
    pub tokens: Option<PathBuf>,
    /// Serve an API without any token on a non-loopback --listen address (anyone who can
    /// reach it may register, override and reload).
    #[arg(long)]
    pub allow_unauthenticated: bool,
    /// Open long-polls held at once; one more is answered 503 (Retry-After: 1).
    #[arg(long, default_value_t = limits::DEFAULT_MAX_LONG_POLLS, value_name = "N")]
    pub max_long_polls: usize,
    /// Active trains evaluated at once; registering one more is answered 503.
    #[arg(long, default_value_t = limits::DEFAULT_MAX_ACTIVE_TRAINS, value_name = "N")]
    pub max_active_trains: usize,
    /// How long a request may take before it is answered 503 `request_timeout` (a
    /// long-poll: its wait on top).
    #[arg(long, default_value = "30s", value_parser = super::wait::parse_timeout, value_name = "DURATION")]
    pub request_timeout: std::time::Duration,
    /// How long shutdown may take (evaluations, requests and webhook attempts in flight)
    /// before the process exits anyway.
    #[arg(long, default_value = "30s", value_parser = super::wait::parse_timeout, value_name = "DURATION")]
    pub shutdown_timeout: std::time::Duration,
    /// This replica's ID among the replicas of one PostgreSQL store (default:
    /// `<host name>:<pid>`). Shown in /readyz, the `gate_leader` metric and the lease; a
    /// replica restarted with the same ID takes its lease back at once.
    #[arg(long, env = "GATE_REPLICA", value_name = "ID")]
    pub replica: Option<String>,
    /// How long the leader's lease lasts unless renewed (every third of it). A failed leader
    /// is replaced within this plus a third of it plus one interval.
    #[arg(long, default_value = "15s", value_parser = super::wait::parse_timeout, value_name = "DURATION")]
    pub lease_ttl: std::time::Duration,
    /// Log lines on stderr: `text` for people, `json` (one object per line) for log
    /// collectors.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// How `gate serve` writes its log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event.
    Text,
    /// One JSON object per line: `timestamp`, `level`, `fields` (with `message`), `target`.
    Json,
}

/// Runs `gate serve` until SIGTERM or SIGINT.
pub async fn run(args: Args) -> anyhow::Result<i32> {
    init_tracing(args.log_format);
    let config = load_config(&args.config)?;
    // Fails early (exit 2) on a bearer token variable that is not set or a bad URL.
    prometheus_client(&config)?;
    webhook::resolve_webhooks(&config.webhooks, |var| std::env::var(var).ok())
        .map_err(|e| exit::usage(e.to_string()))?;
    let tokens = api_tokens(&args)?;
    if args.auth_reads && tokens.is_empty() {
        return Err(exit::usage(format!(
            "--auth-reads needs an API token: set {TOKEN_ENV} or give --tokens"
        )));
    }
    if tokens.is_empty() && !args.listen.ip().is_loopback() && !args.allow_unauthenticated {
        return Err(exit::usage(format!(
            "refusing to serve an API without a token on {}: anyone who can reach it could \
             override decisions\n  hint: set {TOKEN_ENV}, give --tokens FILE ({TOKENS_ENV}), \
             listen on 127.0.0.1, or pass --allow-unauthenticated if the network is trusted",
            args.listen
        )));
    }

    // The store's error names the file and why (exit 1).
    let db = args.db.clone();
    let store = tokio::task::spawn_blocking(move || gate_engine::daemon::open_store(&db))
        .await
        .context("open the store")??;
    let store_at = store.at().to_string();

    let replica = replica_id(args.replica.as_deref());
    let mut registry = Registry::default();
    let metrics = Arc::new(Metrics::register(&mut registry));
    let webhook_metrics = WebhookMetrics::register(&mut registry);
    let factory: ClientFactory =
        Arc::new(|config| prometheus_client(config).map_err(|e| e.to_string()));
    let daemon = Arc::new(
        Daemon::start(Options {
            config,
            config_path: Some(args.config.clone()),
            store,
            clock: Arc::new(SystemClock),
            client_factory: factory,
            metrics,
            registry: Arc::new(registry),
            api: ApiOptions {
                tokens,
                auth_reads: args.auth_reads,
                limits: limits::Limits {
                    max_long_polls: args.max_long_polls,
                    max_active_trains: args.max_active_trains,
                    request_timeout: args.request_timeout,
                },
            },
            webhooks: None,
            ha: HaOptions {
                replica: replica.clone(),
                lease_ttl: args.lease_ttl,
            },
        })
        .await
        .context("cannot start the daemon")?,
    );

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener
        .local_addr()
        .context("cannot read the listen address")?;

    daemon.spawn_scheduler();
    daemon.spawn_retention();
    let delivery = tokio::spawn(Arc::clone(&daemon).deliver_webhooks(webhook_metrics));
    tokio::spawn(handle_signals(Arc::clone(&daemon), args.shutdown_timeout));

    let role = daemon.role();
    tracing::info!(
        %addr,
        store = %store_at,
        replica = %replica,
        role = if role.leading { "leader" } else { "follower (until it claims the lease)" },
        trains = daemon.trains().filter(|v| v.record.lifecycle.is_active()).len(),
        "gate serve ready"
    );
    println!("gate serve: listening on http://{addr}");
    let _ = std::io::stdout().flush();

    let served = daemon.serve(listener).await;
    // Whatever ended the server, the evaluations in flight finish and commit.
    daemon.shutdown().await;
    if let Err(e) = delivery.await {
        tracing::error!("the webhook deliverer failed: {e}");
    }
    served.context("the HTTP server failed")?;
    tracing::info!("gate serve stopped");
    Ok(exit::OK)
}

/// `--replica`, or `<host name>:<pid>`: two processes never share an ID by default, since two
/// replicas with one ID would take the lease from each other.
fn replica_id(given: Option<&str>) -> String {
    if let Some(id) = given.map(str::trim).filter(|id| !id.is_empty()) {
        return id.to_string();
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "gate".to_string());
    format!("{host}:{}", std::process::id())
}

/// The tokens of `--tokens` and `GATE_API_TOKEN` (named `GATE_API_TOKEN`, every scope).
/// A bad tokens file is a usage error with every problem at its position (exit 2).
fn api_tokens(args: &Args) -> anyhow::Result<Vec<ApiToken>> {
    let mut tokens = match &args.tokens {
        None => Vec::new(),
        Some(path) => {
            let file = path.display().to_string();
            let text = std::fs::read_to_string(path)
                .map_err(|e| exit::usage(format!("cannot read the tokens file {file}: {e}")))?;
            gate_rules::config::tokens_from_str(&file, &text).map_err(|err| {
                let text = super::check::render_errors(&err, std::io::stderr().is_terminal());
                exit::usage(text.trim_end().to_string())
            })?
        }
    };
    if let Some(token) = std::env::var(TOKEN_ENV).ok().filter(|t| !t.is_empty()) {
        if tokens.iter().any(|t| t.name == SHARED_TOKEN_NAME) {
            return Err(exit::usage(format!(
                "the tokens file names a token `{SHARED_TOKEN_NAME}`, the name {TOKEN_ENV} is \
                 known by: rename it"
            )));
        }
        tokens.push(all_scopes(SHARED_TOKEN_NAME, &token));
    }
    Ok(tokens)
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .with_target(false)
            .try_init(),
        LogFormat::Json => builder.json().with_ansi(false).try_init(),
    };
}

/// SIGTERM/SIGINT begin shutdown; SIGHUP reloads the config. Once shutdown has begun, a
/// second SIGTERM/SIGINT, or the shutdown deadline, ends the process at once (exit 1).
#[cfg(unix)]
fn handle_signals(
    daemon: Arc<Daemon>,
    deadline: std::time::Duration,
) -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    // Installed now, before the daemon says it is listening: a SIGTERM sent as soon as the
    // address is printed must begin a clean shutdown, not kill the process.
    let signals = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    );
    async move {
        let (Ok(term), Ok(int), Ok(hup)) = signals else {
            tracing::error!("cannot install signal handlers; stop the daemon with SIGKILL");
            return;
        };
        on_signals(daemon, deadline, term, int, hup).await;
    }
}

#[cfg(unix)]
async fn on_signals(
    daemon: Arc<Daemon>,
    deadline: std::time::Duration,
    mut term: tokio::signal::unix::Signal,
    mut int: tokio::signal::unix::Signal,
    mut hup: tokio::signal::unix::Signal,
) {
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => match daemon.reload().await {
                Ok(report) => tracing::info!(gates = ?report.gates, "SIGHUP: config reloaded"),
                Err(e) => {
                    let details = match &e {
                        gate_engine::daemon::ReloadError::Invalid { messages } => messages.join("\n  "),
                        _ => String::new(),
                    };
                    tracing::error!("SIGHUP: {e}\n  {details}");
                }
            },
        }
    }
    tracing::info!(
        "shutting down: finishing the evaluations in flight (at most {}; a second signal exits at once)",
        format!("{deadline:?}")
    );
    daemon.begin_shutdown();
    let why = tokio::select! {
        _ = term.recv() => "a second signal",
        _ = int.recv() => "a second signal",
        _ = tokio::time::sleep(deadline) => "the shutdown deadline passed",
    };
    tracing::error!("{why}: exiting without finishing the work in flight");
    std::process::exit(exit::INTERNAL);
}

#[cfg(not(unix))]
async fn handle_signals(daemon: Arc<Daemon>, deadline: std::time::Duration) {
    let _ = tokio::signal::ctrl_c().await;
    daemon.begin_shutdown();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = tokio::time::sleep(deadline) => {}
    }
    std::process::exit(exit::INTERNAL);
}
