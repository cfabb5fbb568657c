//! The delivery worker: drains the store's outbox, one HTTP POST per attempt.
//!
//! The [`Deliverer`] asks the store for due events ([`Store::due_events`]) on every tick of
//! [`DeliveryOptions::poll_interval`], when nudged ([`Nudger::nudge`], after the daemon
//! committed new events) and whenever an attempt finishes. It sends up to
//! [`DeliveryOptions::concurrency`] events at once and records each outcome in the store
//! before it takes the next event of the same train:
//!
//! * a 2xx: delivered;
//! * a 410 Gone: the receiver asks not to be called again. The webhook is disabled (until the
//!   daemon restarts) with a loud error, and its events are dead-lettered, this one at once,
//!   the others as they come due, without being sent;
//! * anything else (another status — redirects are not followed —, a timeout, a connection
//!   error): the attempt failed. The next attempt is due after an exponential backoff with
//!   full jitter ([`crate::backoff::Backoff`]); the time is stored, so it holds across restarts. After the
//!   webhook's `max_attempts` attempts, or when it has none, once
//!   [`DeliveryOptions::give_up_after`] passed since the event was queued, the event is
//!   dead-lettered with the last error. A `429` or `503` with `Retry-After` (seconds or an
//!   HTTP-date) is honoured: the next attempt is not before the time it names
//!   ([`retry_after`]), even when that is later than the backoff.
//!
//! Design choices a newcomer may question:
//!
//! * **Order comes from the store, not from the worker.** The store hands out only the oldest
//!   pending event of each (train, webhook), and an event in flight is still pending, so the
//!   worker can send everything it is given concurrently without ever overtaking an earlier
//!   event of the same train: the next one becomes due only once this one is recorded.
//! * **No in-memory queue.** The store is asked again after every finished attempt. That costs
//!   one small indexed query per delivery and buys crash safety: a killed worker leaves
//!   nothing behind that the store does not know.
//! * **A failed store write backs off too.** If an outcome cannot be recorded, the event is
//!   still pending and due; the worker leaves it alone for 30 s instead of sending it again
//!   in a tight loop while the store is unwell.
//! * **The clock is injected** ([`crate::clock::Clock`]): stored times (`next_attempt_at`, dead-letter
//!   times) and the signed `X-Gate-Timestamp` come from it, so tests step time by hand; only
//!   the poll tick and per-attempt timeouts use tokio's timers.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use reqwest::header::{CONTENT_TYPE, RETRY_AFTER, USER_AGENT};
use reqwest::StatusCode;
use tokio::sync::Notify;
use tokio::task::JoinSet;

use super::payload::content_type;
use super::sign::{signature, EVENT_ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use super::{WebhookError, WebhookTarget};
use crate::backoff::Backoff;
use crate::clock::{Clock, SystemClock};
use crate::store::{OutboxEvent, Store, StoreError};

/// The longest excerpt of a failed response's body kept in the error.
const MAX_BODY_EXCERPT: usize = 200;
/// How long an event whose outcome could not be recorded (the store failed) is left alone:
/// it is still pending and due, and would otherwise be sent again at once, in a loop.
const UNRECORDED_COOLDOWN: Duration = Duration::from_secs(30);

/// How the worker runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryOptions {
    /// How often the outbox is polled when nothing nudges the worker (retries come due on
    /// these ticks; the backlog gauge is refreshed on them).
    pub poll_interval: Duration,
    /// Attempts in flight at once, across trains and webhooks (at least 1).
    pub concurrency: usize,
    /// Waits between attempts.
    pub backoff: Backoff,
    /// For webhooks without `max_attempts`: how long after it was queued an event is
    /// dead-lettered at its next failure.
    pub give_up_after: Duration,
}

impl Default for DeliveryOptions {
    /// 1 s polls, 16 in flight, 1 s → 5 min backoff, 24 h without `max_attempts`.
    fn default() -> Self {
        DeliveryOptions {
            poll_interval: Duration::from_secs(1),
            concurrency: 16,
            backoff: Backoff {
                initial: Duration::from_secs(1),
                max: Duration::from_secs(300),
            },
            give_up_after: Duration::from_secs(24 * 3600),
        }
    }
}

/// Wakes the worker to look for due events now (after a commit that queued some, or a
/// redrive). Cheap to clone; a nudge while the worker is busy is remembered.
#[derive(Debug, Clone)]
pub struct Nudger(Arc<Notify>);

impl Nudger {
    /// Asks the worker to poll the outbox.
    pub fn nudge(&self) {
        self.0.notify_one();
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Outcome {
    Delivered,
    Failed,
    Dead,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Delivered => "delivered",
            Outcome::Failed => "failed",
            Outcome::Dead => "dead",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct DeliveryLabels {
    webhook: String,
    outcome: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct WebhookLabel {
    webhook: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

/// The worker's metrics:
///
/// * `gate_webhook_deliveries_total{webhook, outcome}` — attempts by outcome: `delivered`
///   (2xx), `failed` (will be retried), `dead` (dead-lettered);
/// * `gate_webhook_retries_total{webhook}` — attempts of events that had failed before;
/// * `gate_webhook_outbox_backlog{state}` — events `pending` and `dead` in the outbox.
#[derive(Debug, Clone, Default)]
pub struct WebhookMetrics {
    deliveries: Family<DeliveryLabels, Counter>,
    retries: Family<WebhookLabel, Counter>,
    backlog: Family<StateLabel, Gauge>,
}

impl WebhookMetrics {
    /// New metrics, registered on `registry`.
    pub fn register(registry: &mut Registry) -> WebhookMetrics {
        let metrics = WebhookMetrics::default();
        registry.register(
            "gate_webhook_deliveries",
            "Webhook delivery attempts by outcome (delivered, failed, dead)",
            metrics.deliveries.clone(),
        );
        registry.register(
            "gate_webhook_retries",
            "Webhook delivery attempts of events that had failed before",
            metrics.retries.clone(),
        );
        registry.register(
            "gate_webhook_outbox_backlog",
            "Webhook events in the outbox not delivered, by state (pending, dead)",
            metrics.backlog.clone(),
        );
        metrics
    }

    fn count(&self, webhook: &str, outcome: Outcome) {
        self.deliveries
            .get_or_create(&DeliveryLabels {
                webhook: webhook.to_string(),
                outcome: outcome.as_str(),
            })
            .inc();
    }

    fn retried(&self, webhook: &str) {
        self.retries
            .get_or_create(&WebhookLabel {
                webhook: webhook.to_string(),
            })
            .inc();
    }

    fn set_backlog(&self, pending: u64, dead: u64) {
        for (state, n) in [("pending", pending), ("dead", dead)] {
            self.backlog
                .get_or_create(&StateLabel { state })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }
}

/// A target and whether a 410 disabled it.
struct Target {
    target: WebhookTarget,
    shown_url: String,
    disabled: AtomicBool,
}

struct Shared {
    store: Store,
    targets: HashMap<String, Target>,
    client: reqwest::Client,
    clock: Arc<dyn Clock>,
    options: DeliveryOptions,
    metrics: WebhookMetrics,
}

/// The webhook delivery worker. Build it with [`Deliverer::new`], keep a [`Nudger`], then
/// `tokio::spawn(deliverer.run(shutdown))`.
pub struct Deliverer {
    shared: Shared,
    nudge: Arc<Notify>,
}

impl std::fmt::Debug for Deliverer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deliverer")
            .field("store", &self.shared.store)
            .field("webhooks", &self.shared.targets.keys().collect::<Vec<_>>())
            .field("options", &self.shared.options)
            .finish_non_exhaustive()
    }
}

/// How one attempt ended.
enum Attempt {
    /// A response with this status (and, when not a success, a body excerpt and its
    /// `Retry-After` header).
    Response(StatusCode, String, Option<String>),
    /// No response: a connection error or a timeout.
    NoResponse(String),
}

impl Deliverer {
    /// A worker sending `store`'s outbox events to `targets` (from
    /// [`super::resolve_webhooks`]), with its metrics registered on `registry`.
    pub fn new(
        store: Store,
        targets: Vec<WebhookTarget>,
        registry: &mut Registry,
        options: DeliveryOptions,
    ) -> Result<Deliverer, WebhookError> {
        Self::with_metrics(store, targets, WebhookMetrics::register(registry), options)
    }

    /// [`Deliverer::new`] with metrics registered by the caller.
    pub fn with_metrics(
        store: Store,
        targets: Vec<WebhookTarget>,
        metrics: WebhookMetrics,
        options: DeliveryOptions,
    ) -> Result<Deliverer, WebhookError> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(WebhookError::Client)?;
        let targets = targets
            .into_iter()
            .map(|target| {
                let name = target.name.clone();
                let shown_url = target.shown_url();
                (
                    name,
                    Target {
                        target,
                        shown_url,
                        disabled: AtomicBool::new(false),
                    },
                )
            })
            .collect();
        Ok(Deliverer {
            shared: Shared {
                store,
                targets,
                client,
                clock: Arc::new(SystemClock),
                options: DeliveryOptions {
                    concurrency: options.concurrency.max(1),
                    ..options
                },
                metrics,
            },
            nudge: Arc::new(Notify::new()),
        })
    }

    /// Reads the time from `clock` instead of the system clock.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Deliverer {
        self.shared.clock = clock;
        self
    }

    /// A handle that wakes the worker.
    pub fn nudger(&self) -> Nudger {
        Nudger(Arc::clone(&self.nudge))
    }

    /// Delivers until `shutdown` completes, then lets the attempts in flight finish (each is
    /// bounded by its webhook's timeout) and returns. Dropping the future instead abandons
    /// the attempts in flight; their events stay pending in the store and are sent again.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let Deliverer { shared, nudge } = self;
        let shared = Arc::new(shared);
        let concurrency = shared.options.concurrency;
        tokio::pin!(shutdown);
        let mut tasks: JoinSet<bool> = JoinSet::new();
        let mut in_flight: HashMap<tokio::task::Id, String> = HashMap::new();
        let mut cooldown: HashMap<String, tokio::time::Instant> = HashMap::new();
        let mut ticker = tokio::time::interval(shared.options.poll_interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // Every wake-up (a finished attempt, a nudge, a tick) is a reason to look again.
            if in_flight.len() < concurrency {
                let busy: HashSet<String> = in_flight.values().cloned().collect();
                let instant = tokio::time::Instant::now();
                cooldown.retain(|_, until| *until > instant);
                let limit = concurrency + busy.len() + cooldown.len();
                let now = shared.clock.now();
                let due = blocking(&shared.store, move |store| store.due_events(now, limit)).await;
                match due {
                    Ok(due) => {
                        let fresh: Vec<OutboxEvent> = due
                            .into_iter()
                            .filter(|e| {
                                !busy.contains(&e.event_id) && !cooldown.contains_key(&e.event_id)
                            })
                            .take(concurrency - in_flight.len())
                            .collect();
                        for event in fresh {
                            let id = event.event_id.clone();
                            let handle = tasks.spawn(attempt(Arc::clone(&shared), event));
                            in_flight.insert(handle.id(), id);
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot read the webhook outbox"),
                }
            }
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                Some(done) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                    let (id, recorded) = match done {
                        Ok((id, recorded)) => (id, recorded),
                        Err(e) => {
                            tracing::error!(error = %e, "a webhook delivery task failed");
                            (e.id(), false)
                        }
                    };
                    if let Some(event_id) = in_flight.remove(&id) {
                        if !recorded {
                            let until = tokio::time::Instant::now() + UNRECORDED_COOLDOWN;
                            cooldown.insert(event_id, until);
                        }
                    }
                }
                () = nudge.notified() => {}
                _ = ticker.tick() => refresh_backlog(&shared).await,
            }
        }
        while tasks.join_next().await.is_some() {}
    }
}

/// Runs a store call on tokio's blocking pool.
async fn blocking<T: Send + 'static>(
    store: &Store,
    f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    let store = store.clone();
    match tokio::task::spawn_blocking(move || f(&store)).await {
        Ok(result) => result,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

async fn refresh_backlog(shared: &Shared) {
    match blocking(&shared.store, |store| store.outbox_backlog()).await {
        Ok(backlog) => shared.metrics.set_backlog(backlog.pending, backlog.dead),
        Err(e) => tracing::warn!(error = %e, "cannot count the webhook backlog"),
    }
}

/// One attempt at one event, with its outcome recorded; false when the store could not
/// record it.
async fn attempt(shared: Arc<Shared>, event: OutboxEvent) -> bool {
    let Some(target) = shared.targets.get(&event.webhook) else {
        let error = format!("webhook `{}` is no longer in the config", event.webhook);
        return dead_letter(&shared, &event, error, None).await;
    };
    if target.disabled.load(Ordering::Relaxed) {
        let error = format!(
            "webhook `{}` is disabled: its receiver answered 410 Gone",
            event.webhook
        );
        return dead_letter(&shared, &event, error, None).await;
    }
    if event.attempts > 0 {
        shared.metrics.retried(&event.webhook);
    }
    let sent_at = shared.clock.now();
    let result = send(&shared.client, &target.target, &event, sent_at.timestamp()).await;
    match result {
        Attempt::Response(status, _, _) if status.is_success() => {
            let now = shared.clock.now();
            let id = event.event_id.clone();
            let code = status.as_u16();
            shared.metrics.count(&event.webhook, Outcome::Delivered);
            let recorded = blocking(&shared.store, move |s| s.mark_delivered(&id, code, now)).await;
            match recorded {
                Ok(()) => {
                    tracing::debug!(
                        webhook = %event.webhook, event_id = %event.event_id,
                        train = %event.train, status = code, "webhook delivered"
                    );
                    true
                }
                Err(e) => store_failed(&event, &e),
            }
        }
        Attempt::Response(StatusCode::GONE, _, _) => {
            if !target.disabled.swap(true, Ordering::Relaxed) {
                tracing::error!(
                    webhook = %event.webhook, url = %target.shown_url,
                    "the webhook receiver answered 410 Gone: webhook disabled until gate \
                     restarts; its pending events are dead-lettered (gate outbox redrive \
                     sends them again)"
                );
            }
            let error = format!(
                "HTTP 410 Gone: webhook `{}` disabled by its receiver",
                event.webhook
            );
            dead_letter(&shared, &event, error, Some(410)).await
        }
        Attempt::Response(status, excerpt, retry_after_header) => {
            let error = if excerpt.is_empty() {
                format!("HTTP {status}")
            } else {
                format!("HTTP {status}: {excerpt}")
            };
            let not_before = match (status, retry_after_header) {
                (StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE, Some(h)) => {
                    retry_after(&h, shared.clock.now())
                }
                _ => None,
            };
            let status = Some(status.as_u16());
            failed(&shared, target, &event, error, status, not_before).await
        }
        Attempt::NoResponse(error) => failed(&shared, target, &event, error, None, None).await,
    }
}

/// Records a failed attempt: retried later (not before `not_before`, the receiver's
/// `Retry-After`), or dead-lettered when out of attempts or time.
async fn failed(
    shared: &Shared,
    target: &Target,
    event: &OutboxEvent,
    error: String,
    status: Option<u16>,
    not_before: Option<DateTime<Utc>>,
) -> bool {
    let now = shared.clock.now();
    let attempts = event.attempts.saturating_add(1);
    let deadline = event.created_at
        + chrono::Duration::from_std(shared.options.give_up_after).unwrap_or(chrono::Duration::MAX);
    let out_of_attempts = match target.target.max_attempts {
        Some(max) => attempts >= max,
        None => now >= deadline,
    };
    if out_of_attempts {
        return dead_letter(shared, event, error, status).await;
    }
    let delay = shared
        .options
        .backoff
        .delay(attempts, rand::random::<f64>());
    let mut next = now + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
    if target.target.max_attempts.is_none() {
        // The last attempt happens at the deadline, not after it.
        next = next.min(deadline);
    }
    // The receiver's `Retry-After` wins over the backoff and the deadline: calling earlier
    // than it asked would break the CloudEvents webhook contract.
    next = next.max(not_before.unwrap_or(next));
    tracing::warn!(
        webhook = %event.webhook, event_id = %event.event_id, train = %event.train,
        url = %target.shown_url, attempts, %error, next_attempt_at = %next,
        "webhook attempt failed; will retry"
    );
    shared.metrics.count(&event.webhook, Outcome::Failed);
    let id = event.event_id.clone();
    let recorded = blocking(&shared.store, move |s| {
        s.mark_failed(&id, &error, status, next)
    })
    .await;
    recorded.map_or_else(|e| store_failed(event, &e), |()| true)
}

async fn dead_letter(
    shared: &Shared,
    event: &OutboxEvent,
    error: String,
    status: Option<u16>,
) -> bool {
    let now = shared.clock.now();
    tracing::error!(
        webhook = %event.webhook, event_id = %event.event_id, train = %event.train,
        attempts = event.attempts.saturating_add(1), %error,
        "webhook event dead-lettered (gate outbox redrive sends it again)"
    );
    shared.metrics.count(&event.webhook, Outcome::Dead);
    let id = event.event_id.clone();
    let recorded = blocking(&shared.store, move |s| {
        s.mark_dead(&id, &error, status, now)
    })
    .await;
    recorded.map_or_else(|e| store_failed(event, &e), |()| true)
}

/// Logs a failure to record an outcome; returns false (not recorded).
fn store_failed(event: &OutboxEvent, e: &StoreError) -> bool {
    tracing::warn!(
        webhook = %event.webhook, event_id = %event.event_id, error = %e,
        "cannot record a webhook outcome; the event stays pending and is sent again later"
    );
    false
}

/// POSTs the event's payload, signed, within the target's timeout.
async fn send(
    client: &reqwest::Client,
    target: &WebhookTarget,
    event: &OutboxEvent,
    timestamp: i64,
) -> Attempt {
    // A `Value` always serializes; the store decoded it from JSON.
    let body = serde_json::to_vec(&event.payload).unwrap_or_default();
    let mut request = client
        .post(target.url.clone())
        .header(CONTENT_TYPE, content_type(target.format))
        .header(USER_AGENT, concat!("gate/", env!("CARGO_PKG_VERSION")))
        .header(EVENT_ID_HEADER, &event.event_id)
        .header(TIMESTAMP_HEADER, timestamp.to_string());
    if let Some(secret) = &target.secret {
        request = request.header(SIGNATURE_HEADER, signature(secret, timestamp, &body));
    }
    let exchange = async {
        let mut response = request.body(body).send().await?;
        let status = response.status();
        let retry_after_header = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let mut excerpt = Vec::new();
        if !status.is_success() {
            // The body is only for the error message: a failure to read it is ignored.
            while excerpt.len() < MAX_BODY_EXCERPT {
                match response.chunk().await {
                    Ok(Some(chunk)) => excerpt.extend_from_slice(&chunk),
                    Ok(None) | Err(_) => break,
                }
            }
        }
        Ok::<_, reqwest::Error>((status, excerpt, retry_after_header))
    };
    match tokio::time::timeout(target.timeout, exchange).await {
        Ok(Ok((status, excerpt, retry_after))) => {
            Attempt::Response(status, excerpt_text(&excerpt), retry_after)
        }
        Ok(Err(e)) => Attempt::NoResponse(describe(e)),
        Err(_) => Attempt::NoResponse(format!("no response within {}", humanize(target.timeout))),
    }
}

/// A reqwest error with its causes, without the URL (which may carry credentials).
fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        let line = cause.to_string();
        if !text.ends_with(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        source = cause.source();
    }
    text
}

fn excerpt_text(bytes: &[u8]) -> String {
    let cut = &bytes[..bytes.len().min(MAX_BODY_EXCERPT)];
    let text = String::from_utf8_lossy(cut);
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if bytes.len() > MAX_BODY_EXCERPT {
        format!("{text}…")
    } else {
        text
    }
}

/// The time a `Retry-After` header value names, read at `now`: a number of seconds
/// (`120`) or an HTTP-date (`Wed, 21 Oct 2026 07:28:00 GMT`, RFC 9110 §10.2.3). `None` when
/// the value is neither (the backoff alone decides then).
fn retry_after(value: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        let secs = value.parse::<i64>().ok()?;
        return now.checked_add_signed(chrono::Duration::try_seconds(secs)?);
    }
    DateTime::parse_from_rfc2822(value)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn humanize(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let b = DeliveryOptions::default().backoff;
        let ceilings: Vec<u64> = (1..=11).map(|n| b.ceiling(n).as_secs()).collect();
        assert_eq!(ceilings, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(b.ceiling(0), Duration::from_secs(1));
        assert_eq!(b.ceiling(u32::MAX), Duration::from_secs(300));
    }

    #[test]
    fn retry_after_is_seconds_or_an_http_date() {
        let now = DateTime::parse_from_rfc3339("2026-11-01T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        assert_eq!(retry_after("120", now), Some(at("2026-11-01T12:02:00Z")));
        assert_eq!(retry_after(" 0 ", now), Some(now));
        assert_eq!(
            retry_after("Sun, 01 Nov 2026 13:30:00 GMT", now),
            Some(at("2026-11-01T13:30:00Z"))
        );
        for unusable in ["", "-5", "1.5", "soon", "99999999999999999999"] {
            assert_eq!(retry_after(unusable, now), None, "{unusable:?}");
        }
    }

    #[test]
    fn excerpts_are_short_single_lines() {
        assert_eq!(excerpt_text(b"upstream\n  down\n"), "upstream down");
        let long = vec![b'x'; 300];
        let shown = excerpt_text(&long);
        assert_eq!(shown.chars().count(), MAX_BODY_EXCERPT + 1);
        assert!(shown.ends_with('…'));
        assert_eq!(humanize(Duration::from_secs(10)), "10s");
        assert_eq!(humanize(Duration::from_millis(1500)), "1500ms");
    }

    #[test]
    fn metrics_are_exposed_under_their_names() {
        let mut registry = Registry::default();
        let metrics = WebhookMetrics::register(&mut registry);
        metrics.count("deployer", Outcome::Delivered);
        metrics.count("deployer", Outcome::Dead);
        metrics.retried("deployer");
        metrics.set_backlog(3, 1);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for line in [
            "gate_webhook_deliveries_total{webhook=\"deployer\",outcome=\"delivered\"} 1",
            "gate_webhook_deliveries_total{webhook=\"deployer\",outcome=\"dead\"} 1",
            "gate_webhook_retries_total{webhook=\"deployer\"} 1",
            "gate_webhook_outbox_backlog{state=\"pending\"} 3",
            "gate_webhook_outbox_backlog{state=\"dead\"} 1",
        ] {
            assert!(text.contains(line), "missing `{line}` in\n{text}");
        }
    }
}
