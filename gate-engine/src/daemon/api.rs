//! The HTTP API of `gate serve` (SPEC §6), on axum.
//!
//! | method | path | success | errors |
//! |---|---|---|---|
//! | POST | `/v1/trains` | 201 registered, 200 same body again | 400 bad ID/JSON, 409 different body, 422 unknown gate |
//! | GET | `/v1/trains?state=active\|all` | 200 `{trains: [...]}` | 400 |
//! | GET | `/v1/trains/{id}` | 200 train with `evaluation` | 404 |
//! | GET | `/v1/trains/{id}/decision?wait=30s&after_seq=N` | 200 `{train, decision, reason, seq, evaluated_at, …}` | 404 |
//! | POST | `/v1/trains/{id}/override` | 200 the new decision | 404, 409 stopped / nothing to resume, 422 |
//! | GET | `/v1/trains/{id}/events` | 200 `{train, events: [...]}` | 404 |
//! | DELETE | `/v1/trains/{id}` | 200 the stopped train | 404 |
//! | POST | `/v1/reload` | 200 `{gates, unevaluated_trains}` | 422 invalid config (old one kept) |
//! | GET | `/metrics`, `/healthz`, `/readyz` | 200 | 503 not ready |
//!
//! Every error is `{"error": {"code": "...", "message": "..."}}` (plus `details` for a
//! refused config), also for what axum itself rejects — malformed JSON (400), a missing
//! `Content-Type` (415), a body over [`BODY_LIMIT`] (413), an unknown route (404) or method
//! (405) — through the extractor wrappers [`ApiJson`], [`ApiQuery`] and [`TrainPath`].
//!
//! Reads are served from memory ([`super::state`]); the store is read only for trains the
//! daemon does not hold (finished before the last restart) and for the audit trail. Writes go
//! to the store first and are published after, under the daemon's write lock.
//!
//! Long-polls (`wait` + `after_seq`) subscribe to the train's watch channel: they return as
//! soon as a change with a higher seq is published, at the deadline (at most [`MAX_WAIT`]),
//! or when the daemon shuts down — always with the current decision and status 200.
//!
//! When `GATE_API_TOKEN` is set, POST and DELETE need `Authorization: Bearer <token>` (reads
//! too with `--auth-reads`, except `/healthz` and `/readyz`). Tokens are compared through an
//! HMAC of each, in constant time, so neither their content nor their length leaks through
//! timing.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, WWW_AUTHENTICATE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use gate_rules::decide;
use gate_rules::Decision;
use gate_rules::{PromDuration, TrainId};
use hmac::{Hmac, Mac};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::json;
use sha2::Sha256;

use super::list::ListFilter;
use super::scheduler::webhook_events;
use super::state::TrainView;
use super::{BlockingError, ReloadError, Shared};
use crate::store::{
    ConflictReason, Evidence, Lifecycle, NewTrain, OverrideAction, OverrideWrite, Registration,
    StoreError, TrainFilter,
};
use crate::webhook::DecisionChange;

/// Largest request body accepted.
pub const BODY_LIMIT: usize = 64 * 1024;
/// Longest long-poll.
pub const MAX_WAIT: Duration = Duration::from_secs(300);
/// How long a Prometheus outcome counts for `/readyz` before it is probed again.
const READY_FRESHNESS: Duration = Duration::from_secs(30);
/// Timeout of the `/readyz` probe query.
const READY_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The API router over the daemon's shared state.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/trains", post(register).get(list))
        .route("/v1/trains/{id}", get(show).delete(stop))
        .route("/v1/trains/{id}/decision", get(decision))
        .route("/v1/trains/{id}/override", post(override_train))
        .route("/v1/trains/{id}/events", get(events))
        .route("/v1/reload", post(reload))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .merge(super::series::router())
        .merge(super::live::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(Arc::clone(&shared), auth))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .merge(super::web::router())
        .with_state(shared)
}

type AppState = State<Arc<Shared>>;

// ---------------------------------------------------------------------------------------
// Errors

/// An API error: `{"error": {"code", "message", "details"?}}` with its status.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    details: Vec<String>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            details: Vec::new(),
        }
    }

    fn not_found(id: &TrainId) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "train_not_found",
            format!("train {id} is not registered"),
        )
    }

    fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

impl From<BlockingError> for ApiError {
    fn from(e: BlockingError) -> Self {
        match e {
            BlockingError::Store(StoreError::NotFound(id)) => ApiError::not_found(&id),
            BlockingError::Store(e @ StoreError::Conflict { .. }) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", e.to_string())
            }
            BlockingError::Store(e @ StoreError::TrainStopped(_)) => {
                ApiError::new(StatusCode::CONFLICT, "train_stopped", e.to_string())
            }
            other => {
                tracing::error!("store: {}", error_chain(&other));
                ApiError::internal(error_chain(&other))
            }
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = json!({"code": self.code, "message": self.message});
        if !self.details.is_empty() {
            error["details"] = json!(self.details);
        }
        let mut response = (self.status, Json(json!({ "error": error }))).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let status = rejection.status();
        let code = match status {
            StatusCode::BAD_REQUEST => "malformed_json",
            StatusCode::PAYLOAD_TOO_LARGE => "body_too_large",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
            StatusCode::UNPROCESSABLE_ENTITY => "invalid_body",
            _ => "bad_request",
        };
        let message = match status {
            StatusCode::PAYLOAD_TOO_LARGE => {
                format!("the request body is larger than {} KiB", BODY_LIMIT / 1024)
            }
            StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                "expected a JSON body with `Content-Type: application/json`".to_string()
            }
            _ => rejection.body_text(),
        };
        ApiError::new(status, code, message)
    }
}

/// `Json<T>` whose rejections are API errors.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        Json::<T>::from_request(req, state)
            .await
            .map(|Json(v)| ApiJson(v))
            .map_err(ApiError::from)
    }
}

/// `Query<T>` whose rejections are API errors.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(v)| ApiQuery(v))
            .map_err(|r| ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", r.body_text()))
    }
}

/// The `{id}` of a train route, validated as a train ID (400 otherwise).
#[derive(Debug)]
pub struct TrainPath(pub TrainId);

impl<S: Send + Sync> FromRequestParts<S> for TrainPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(id) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|r| ApiError::new(StatusCode::BAD_REQUEST, "invalid_path", r.body_text()))?;
        train_id(&id).map(TrainPath)
    }
}

fn train_id(id: &str) -> Result<TrainId, ApiError> {
    gate_rules::train_id::validate(id)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_train_id", e.to_string()))
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not take that method",
    )
}

// ---------------------------------------------------------------------------------------
// Auth

/// The HMAC key tokens are compared under; any fixed key makes the comparison independent
/// of the tokens' length and content.
const TOKEN_KEY: &[u8] = b"gate api token comparison";

fn token_tag(token: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(TOKEN_KEY).expect("HMAC takes any key length");
    mac.update(token);
    mac
}

pub(super) fn authorized(headers: &HeaderMap, token: &str) -> bool {
    let Some(value) = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let Some((scheme, given)) = value.split_once(' ') else {
        return false;
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return false;
    }
    let expected = token_tag(token.as_bytes()).finalize().into_bytes();
    token_tag(given.trim().as_bytes())
        .verify_slice(&expected)
        .is_ok()
}

async fn auth(State(shared): AppState, req: Request, next: Next) -> Response {
    let Some(token) = shared.api.token.as_deref() else {
        return next.run(req).await;
    };
    let read = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let probe = matches!(req.uri().path(), "/healthz" | "/readyz");
    let needed = !read || (shared.api.auth_reads && !probe);
    if needed && !authorized(req.headers(), token) {
        let message = if req.headers().contains_key(AUTHORIZATION) {
            "the bearer token is not valid"
        } else {
            "this endpoint requires `Authorization: Bearer <token>` (GATE_API_TOKEN)"
        };
        return ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message).into_response();
    }
    next.run(req).await
}

// ---------------------------------------------------------------------------------------
// Trains

fn json_body(status: StatusCode, body: &impl Serialize) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => (
            status,
            [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
            bytes,
        )
            .into_response(),
        Err(e) => ApiError::internal(format!("cannot encode the response: {e}")).into_response(),
    }
}

fn summary_response(shared: &Shared, status: StatusCode, view: &TrainView) -> Response {
    let config = shared.runtime().config.clone();
    json_body(
        status,
        &view.summary(shared.evaluating(view, &config), true),
    )
}

/// The view of a train: from memory, or loaded from the store (and then held).
async fn view_of(shared: &Shared, id: &TrainId) -> Result<Arc<TrainView>, ApiError> {
    if let Some(view) = shared.trains.get(id) {
        return Ok(view);
    }
    let _lock = shared.write_lock.lock().await;
    if let Some(view) = shared.trains.get(id) {
        return Ok(view);
    }
    let key = id.clone();
    let record = shared.blocking(move |store| store.train(&key)).await?;
    let record = record.ok_or_else(|| ApiError::not_found(id))?;
    let view = TrainView::new(record);
    shared.publish(Arc::clone(&view));
    Ok(view)
}

/// `POST /v1/trains` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RegisterBody {
    id: String,
    gate: String,
    #[serde(default, deserialize_with = "time_or_unix")]
    started_at: Option<DateTime<Utc>>,
    #[serde(default)]
    baseline: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

/// An RFC 3339 string or unix seconds.
fn time_or_unix<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Text(String),
        Unix(f64),
    }
    let invalid = |what: &str| {
        serde::de::Error::custom(format!(
            "started_at: `{what}` is not a time: use RFC 3339 (2026-11-01T12:00:00Z) or unix seconds"
        ))
    };
    let secs = match Option::<Raw>::deserialize(d)? {
        None => return Ok(None),
        Some(Raw::Text(s)) => match DateTime::parse_from_rfc3339(&s) {
            Ok(t) => return Ok(Some(crate::clock::truncate_ms(t.with_timezone(&Utc)))),
            Err(_) => s.parse::<f64>().map_err(|_| invalid(&s))?,
        },
        Some(Raw::Unix(secs)) => secs,
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(invalid(&secs.to_string()));
    }
    DateTime::from_timestamp_millis((secs * 1000.0).round() as i64)
        .map(Some)
        .ok_or_else(|| invalid(&secs.to_string()))
}

async fn register(
    State(shared): AppState,
    ApiJson(body): ApiJson<RegisterBody>,
) -> Result<Response, ApiError> {
    let id = train_id(&body.id)?;
    let baseline = body
        .baseline
        .as_deref()
        .map(|b| {
            train_id(b).map_err(|mut e| {
                e.message = format!("baseline: {}", e.message);
                e
            })
        })
        .transpose()?;
    if let Some(artifact) = body.labels.get("artifact") {
        if !crate::webhook::purl::is_purl(artifact) {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_label",
                format!(
                    "labels.artifact: `{artifact}` is not a package URL \
                     (pkg:<type>/<name>[@<version>], e.g. pkg:oci/checkout@sha256%3Aab12…)"
                ),
            ));
        }
    }
    let config = shared.runtime().config.clone();
    if config.gate(&body.gate).is_none() {
        let names: Vec<&str> = config.gates.iter().map(|g| g.name.as_str()).collect();
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_gate",
            format!(
                "unknown gate `{}`; the config has: {}",
                body.gate,
                names.join(", ")
            ),
        ));
    }
    let train = NewTrain {
        id,
        gate: body.gate,
        started_at: body.started_at,
        baseline,
        labels: body.labels,
    };
    let now = shared.clock.now();
    let _lock = shared.write_lock.lock().await;
    let registration = shared
        .blocking(move |store| store.register(&train, now))
        .await
        .map_err(|e| match e {
            BlockingError::Store(StoreError::Conflict { id, reason }) => ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                match reason {
                    ConflictReason::DifferentBody => format!(
                        "train {id} is already registered with a different body; \
                         register it with the same body, or use another ID"
                    ),
                    _ => format!("train {id} cannot be registered: {reason}"),
                },
            ),
            other => other.into(),
        })?;
    let (status, record) = match registration {
        Registration::Created(r) => {
            tracing::info!(train = %r.id, gate = %r.gate, "train {} registered (gate {})", r.id, r.gate);
            (StatusCode::CREATED, r)
        }
        Registration::Existing(r) => (StatusCode::OK, r),
    };
    let view = match shared.trains.get(&record.id) {
        Some(held) if status == StatusCode::OK => held,
        _ => {
            let view = TrainView::new(record);
            shared.publish(Arc::clone(&view));
            view
        }
    };
    Ok(summary_response(&shared, status, &view))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    gate: Option<String>,
    #[serde(default)]
    limit: Option<String>,
    #[serde(default)]
    cursor: Option<String>,
}

async fn list(
    State(shared): AppState,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Response, ApiError> {
    let filter = ListFilter::parse(
        query.state.as_deref(),
        query.gate.as_deref(),
        query.limit.as_deref(),
        query.cursor.as_deref(),
    )
    .map_err(|m| ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", m))?;
    let config = shared.runtime().config.clone();
    if filter.needs_store() {
        let records = shared
            .blocking(|store| store.trains(TrainFilter::All))
            .await?;
        let (trains, next_cursor) = super::list::page(
            records.iter().map(|r| {
                let evaluating =
                    super::state::is_evaluated(r.lifecycle) && config.gate(&r.gate).is_some();
                (r, evaluating)
            }),
            &filter,
        );
        Ok(json_body(
            StatusCode::OK,
            &json!({ "trains": trains, "next_cursor": next_cursor }),
        ))
    } else {
        let views = shared.trains.filter(|v| v.record.lifecycle.is_active());
        let (trains, next_cursor) = super::list::page(
            views
                .iter()
                .map(|v| (&v.record, shared.evaluating(v, &config))),
            &filter,
        );
        Ok(json_body(
            StatusCode::OK,
            &json!({ "trains": trains, "next_cursor": next_cursor }),
        ))
    }
}

async fn show(State(shared): AppState, TrainPath(id): TrainPath) -> Result<Response, ApiError> {
    let view = view_of(&shared, &id).await?;
    Ok(summary_response(&shared, StatusCode::OK, &view))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DecisionQuery {
    #[serde(default)]
    wait: Option<String>,
    #[serde(default)]
    after_seq: Option<u64>,
}

/// `30s`, `5m`, `500ms`, plain seconds, or `0`.
fn parse_wait(s: &str) -> Result<Duration, ApiError> {
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    if matches!(s, "0s" | "0ms" | "0m") {
        return Ok(Duration::ZERO);
    }
    s.parse::<PromDuration>()
        .map(|d| d.as_duration())
        .map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_query",
                format!("wait: {e}"),
            )
        })
}

fn decision_response(view: &TrainView) -> Response {
    (
        [
            (CONTENT_TYPE, HeaderValue::from_static("application/json")),
            (CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        view.decision_body(),
    )
        .into_response()
}

async fn decision(
    State(shared): AppState,
    TrainPath(id): TrainPath,
    ApiQuery(query): ApiQuery<DecisionQuery>,
) -> Result<Response, ApiError> {
    let wait = query.wait.as_deref().map(parse_wait).transpose()?;
    let view = view_of(&shared, &id).await?;
    let Some(wait) = wait.filter(|w| !w.is_zero()) else {
        return Ok(decision_response(&view));
    };
    let after = query.after_seq.unwrap_or(view.record.seq);
    if view.record.seq > after {
        return Ok(decision_response(&view));
    }
    let Some(mut rx) = shared.trains.subscribe(&id) else {
        return Ok(decision_response(&view));
    };
    let mut shutdown = shared.shutdown.subscribe();
    let changed = async {
        let _ = rx.wait_for(|v| v.record.seq > after).await;
    };
    tokio::select! {
        _ = tokio::time::timeout(wait.min(MAX_WAIT), changed) => {}
        _ = shutdown.wait_for(|down| *down) => {}
    }
    let current = shared.trains.get(&id).unwrap_or(view);
    Ok(decision_response(&current))
}

/// `POST /v1/trains/{id}/override` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OverrideBody {
    decision: OverrideAction,
    reason: String,
    actor: String,
}

async fn override_train(
    State(shared): AppState,
    TrainPath(id): TrainPath,
    ApiJson(body): ApiJson<OverrideBody>,
) -> Result<Response, ApiError> {
    let reason = body.reason.trim().to_string();
    let actor = body.actor.trim().to_string();
    if reason.is_empty() || actor.is_empty() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            "an override needs a non-empty `reason` and `actor`: they are recorded in the audit trail",
        ));
    }
    let held = view_of(&shared, &id).await?;
    let _lock = shared.write_lock.lock().await;
    // Under the lock the held view is what the store has.
    let view = shared.trains.get(&id).unwrap_or(held);
    let prev = &view.record;
    if prev.lifecycle == Lifecycle::Stopped {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "train_stopped",
            format!("train {id} is stopped; a stopped train takes no override"),
        ));
    }
    let mut state = prev.state.clone();
    let text = format!("override {} by {actor}: {reason}", body.decision);
    let decision = match body.decision {
        OverrideAction::Resume => {
            let resumable = matches!(prev.decision, Decision::Pause | Decision::Rollback)
                || state.pinned.is_some();
            if !resumable {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "nothing_to_resume",
                    format!(
                        "train {id} is {} and not pinned by an override: there is nothing to resume",
                        prev.decision
                    ),
                ));
            }
            decide::resume(&mut state);
            Decision::Pending
        }
        action => {
            let pinned = match action {
                OverrideAction::Promote => Decision::Promote,
                OverrideAction::Pause => Decision::Pause,
                _ => Decision::Rollback,
            };
            state.pinned = Some(pinned);
            state.decision = Some(pinned);
            state.pause_cause = None;
            state.clean_streak = 0;
            state.decided_reason = Some(text.clone());
            state.decided_rule = None;
            pinned
        }
    };
    let lifecycle = match decision {
        Decision::Pending => Lifecycle::Verifying,
        Decision::Promote => Lifecycle::Promoted,
        Decision::Pause => Lifecycle::Paused,
        Decision::Rollback => Lifecycle::RolledBack,
    };
    let at = shared.clock.now();
    let events = if decision != prev.decision {
        let config = shared.runtime().config.clone();
        webhook_events(
            &config,
            &DecisionChange {
                train: id.clone(),
                gate: prev.gate.clone(),
                decision,
                previous: prev.decision,
                reason: text.clone(),
                rule: None,
                evaluated_at: at,
                seq: prev.seq + 1,
                evidence: prev
                    .evaluation
                    .as_ref()
                    .map_or(serde_json::Value::Null, Evidence::to_value),

                artifact: prev.labels.get("artifact").cloned(),
            },
        )
    } else {
        Vec::new()
    };
    let queued = !events.is_empty();
    let write = OverrideWrite {
        train: id.clone(),
        action: body.decision,
        decision,
        reason,
        actor,
        at,
        state,
        lifecycle,
        events,
    };
    let record = shared
        .blocking(move |store| {
            store.record_override(&write)?;
            store
                .train(&write.train)?
                .ok_or_else(|| StoreError::NotFound(write.train.clone()))
        })
        .await?;
    if record.decision != prev.decision {
        shared.decision_changed(
            &id,
            &prev.gate,
            prev.decision,
            record.decision,
            &record.reason,
        );
    } else {
        tracing::info!(train = %id, "train {id}: {}", record.reason);
    }
    if queued {
        shared.nudge_webhooks();
    }
    let view = TrainView::new(record);
    shared.publish(Arc::clone(&view));
    Ok(decision_response(&view))
}

async fn events(State(shared): AppState, TrainPath(id): TrainPath) -> Result<Response, ApiError> {
    let key = id.clone();
    let events = shared.blocking(move |store| store.events(&key)).await?;
    Ok(json_body(
        StatusCode::OK,
        &json!({ "train": id, "events": events }),
    ))
}

async fn stop(State(shared): AppState, TrainPath(id): TrainPath) -> Result<Response, ApiError> {
    let at = shared.clock.now();
    let _lock = shared.write_lock.lock().await;
    let key = id.clone();
    let record = shared.blocking(move |store| store.stop(&key, at)).await?;
    tracing::info!(train = %id, "train {id} stopped; its history is kept");
    let view = TrainView::new(record);
    shared.publish(Arc::clone(&view));
    Ok(summary_response(&shared, StatusCode::OK, &view))
}

// ---------------------------------------------------------------------------------------
// Operations

async fn reload(State(shared): AppState) -> Result<Response, ApiError> {
    match super::reload(&shared).await {
        Ok(report) => Ok(json_body(StatusCode::OK, &report)),
        Err(e @ ReloadError::Invalid { .. }) => {
            let ReloadError::Invalid { messages } = &e else {
                unreachable!()
            };
            tracing::warn!("config reload refused: {}", messages.join("; "));
            let mut err = ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_config",
                e.to_string(),
            );
            err.details = messages.clone();
            Err(err)
        }
        Err(e @ (ReloadError::Client(_) | ReloadError::Webhooks(_))) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_config",
            e.to_string(),
        )),
        Err(e) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "reload_unavailable",
            e.to_string(),
        )),
    }
}

async fn metrics(State(shared): AppState) -> Response {
    shared
        .metrics
        .set_train_counts(&shared.trains.count_by_lifecycle());
    let mut text = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &shared.registry) {
        return ApiError::internal(format!("cannot encode the metrics: {e}")).into_response();
    }
    (
        [(
            CONTENT_TYPE,
            HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        )],
        Bytes::from(text),
    )
        .into_response()
}

async fn healthz() -> Response {
    json_body(StatusCode::OK, &json!({"status": "ok"}))
}

async fn readyz(State(shared): AppState) -> Response {
    if shared.shutting_down() {
        return json_body(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({"ready": false, "store": "shutting down", "prometheus": "shutting down"}),
        );
    }
    let store = match shared.blocking(|store| store.ping()).await {
        Ok(()) => Ok(()),
        Err(e) => Err(error_chain(&e)),
    };
    let prometheus = match shared.health.recent(READY_FRESHNESS) {
        Some(true) => Ok(()),
        Some(false) => Err("the last query to Prometheus failed".to_string()),
        None => {
            let client = shared.runtime().client.clone();
            let probe = client.query("vector(1)", shared.clock.now());
            match tokio::time::timeout(READY_PROBE_TIMEOUT, probe).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err(format!(
                    "Prometheus did not answer within {}s",
                    READY_PROBE_TIMEOUT.as_secs()
                )),
            }
        }
    };
    let ready = store.is_ok() && prometheus.is_ok();
    let show = |r: &Result<(), String>| match r {
        Ok(()) => "ok".to_string(),
        Err(e) => e.clone(),
    };
    json_body(
        if ready {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        &json!({"ready": ready, "store": show(&store), "prometheus": show(&prometheus)}),
    )
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use serde_json::{json, Value};

    use super::*;
    use crate::daemon::tests::{config_yaml, harness, send, t0, tid, Harness};
    use crate::daemon::ApiOptions;

    const UNREACHABLE: &str = "http://127.0.0.1:9";

    async fn plain() -> Harness {
        harness(&config_yaml(UNREACHABLE), ApiOptions::default()).await
    }

    fn train(id: &str) -> Value {
        json!({"id": id, "gate": "checkout", "started_at": "2026-11-01T11:00:00Z",
               "labels": {"team": "payments"}})
    }

    #[tokio::test]
    async fn registration_is_idempotent_and_a_different_body_conflicts() {
        let h = plain().await;
        let (status, body) = h.call("POST", "/v1/trains", Some(train("t-1")), None).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(body["train"], "t-1");
        assert_eq!(body["decision"], "pending");
        assert_eq!(body["state"], "verifying");
        assert_eq!(body["seq"], 0);
        assert_eq!(body["started_at"], "2026-11-01T11:00:00Z");
        assert_eq!(body["evaluating"], true);
        assert_eq!(body["evaluation"], Value::Null);

        let (status, again) = h.call("POST", "/v1/trains", Some(train("t-1")), None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(again, body);

        let mut other = train("t-1");
        other["started_at"] = json!("2026-11-01T11:30:00Z");
        let (status, err) = h.call("POST", "/v1/trains", Some(other), None).await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(err["error"]["code"], "conflict");
        assert!(err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("different body"));
    }

    #[tokio::test]
    async fn registration_without_started_at_starts_now_and_accepts_unix_seconds() {
        let h = plain().await;
        let (status, body) = h
            .call(
                "POST",
                "/v1/trains",
                Some(json!({"id": "t-now", "gate": "checkout"})),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(
            body["started_at"], "2026-11-01T12:00:00Z",
            "the clock's now"
        );
        // A retry later, still without started_at, is the same registration.
        h.clock.advance(Duration::from_secs(90));
        let (status, _) = h
            .call(
                "POST",
                "/v1/trains",
                Some(json!({"id": "t-now", "gate": "checkout"})),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK);

        let (status, body) = h
            .call(
                "POST",
                "/v1/trains",
                Some(json!({"id": "t-unix", "gate": "checkout", "started_at": 1793530800})),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(body["started_at"], "2026-11-01T11:00:00Z");
    }

    #[tokio::test]
    async fn invalid_train_ids_are_400_and_unknown_gates_422() {
        let h = plain().await;
        for id in ["", "a b", "x\" or vector(1)", &"x".repeat(129)] {
            let (status, err) = h
                .call(
                    "POST",
                    "/v1/trains",
                    Some(json!({"id": id, "gate": "checkout"})),
                    None,
                )
                .await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{id:?}: {err}");
            assert_eq!(err["error"]["code"], "invalid_train_id");
        }
        let (status, err) = h
            .call(
                "POST",
                "/v1/trains",
                Some(json!({"id": "t-1", "gate": "checkout", "baseline": "no way"})),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(err["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("baseline: "));

        let (status, err) = h
            .call(
                "POST",
                "/v1/trains",
                Some(json!({"id": "t-1", "gate": "chekout"})),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(err["error"]["code"], "unknown_gate");
        assert!(err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("checkout"));

        let (status, err) = h.call("GET", "/v1/trains/a%20b/decision", None, None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(err["error"]["code"], "invalid_train_id");

        let (status, err) = h.call("GET", "/v1/trains/t-404", None, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(err["error"]["code"], "train_not_found");
    }

    #[tokio::test]
    async fn train_ids_with_a_slash_work_percent_encoded() {
        let h = plain().await;
        let (status, _) = h
            .call(
                "POST",
                "/v1/trains",
                Some(json!({"id": "team/checkout:42", "gate": "checkout"})),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
        let (status, body) = h
            .call("GET", "/v1/trains/team%2Fcheckout:42/decision", None, None)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["train"], "team/checkout:42");
    }

    #[tokio::test]
    async fn malformed_bodies_are_json_errors() {
        let h = plain().await;
        let raw = |body: Vec<u8>, content_type: Option<&str>| {
            let mut req = Request::builder().method("POST").uri("/v1/trains");
            if let Some(ct) = content_type {
                req = req.header("content-type", ct);
            }
            req.body(Body::from(body)).unwrap()
        };
        let (status, err) = send(
            &h.router,
            raw(b"{\"id\": \"t-1\",".to_vec(), Some("application/json")),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(err["error"]["code"], "malformed_json");

        let (status, err) = send(
            &h.router,
            raw(b"{\"id\": 5}".to_vec(), Some("application/json")),
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(err["error"]["code"], "invalid_body");

        let (status, err) = send(
            &h.router,
            raw(
                br#"{"id": "t-1", "gate": "checkout", "startd_at": "x"}"#.to_vec(),
                Some("application/json"),
            ),
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            err["error"]["message"]
                .as_str()
                .unwrap()
                .contains("startd_at"),
            "{err}"
        );

        // 1 MiB of garbage, with and without a JSON content type.
        let garbage: Vec<u8> = (0..1024 * 1024).map(|i| (i * 7 % 251) as u8).collect();
        let (status, err) = send(&h.router, raw(garbage.clone(), Some("application/json"))).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(err["error"]["code"], "body_too_large");
        let (status, err) = send(&h.router, raw(garbage, None)).await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert_eq!(err["error"]["code"], "unsupported_media_type");

        let (status, err) = h.call("GET", "/v1/nothing", None, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(err["error"]["code"], "not_found");
        let (status, err) = h.call("PUT", "/v1/trains", None, None).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(err["error"]["code"], "method_not_allowed");
        let (status, err) = h.call("GET", "/v1/trains?state=bogus", None, None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(err["error"]["code"], "invalid_query");

        // Still serving.
        let (status, _) = h.call("GET", "/healthz", None, None).await;
        assert_eq!(status, StatusCode::OK);
    }

    #[tokio::test]
    async fn a_token_guards_writes_and_with_auth_reads_also_reads() {
        let api = ApiOptions {
            token: Some("s3cret".into()),
            auth_reads: false,
        };
        let h = harness(&config_yaml(UNREACHABLE), api).await;
        let (status, err) = h.call("POST", "/v1/trains", Some(train("t-1")), None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(err["error"]["code"], "unauthorized");
        for wrong in ["s3cre", "s3cret2", "S3CRET", ""] {
            let (status, _) = h
                .call("POST", "/v1/trains", Some(train("t-1")), Some(wrong))
                .await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{wrong:?}");
        }
        let (status, _) = h.call("DELETE", "/v1/trains/t-1", None, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, _) = h
            .call("POST", "/v1/trains", Some(train("t-1")), Some("s3cret"))
            .await;
        assert_eq!(status, StatusCode::CREATED);
        let (status, _) = h.call("GET", "/v1/trains/t-1/decision", None, None).await;
        assert_eq!(status, StatusCode::OK, "reads are open by default");

        let api = ApiOptions {
            token: Some("s3cret".into()),
            auth_reads: true,
        };
        let h = harness(&config_yaml(UNREACHABLE), api).await;
        let (status, _) = h.call("GET", "/v1/trains", None, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, _) = h.call("GET", "/v1/trains", None, Some("s3cret")).await;
        assert_eq!(status, StatusCode::OK);
        let (status, _) = h.call("GET", "/healthz", None, None).await;
        assert_eq!(status, StatusCode::OK, "probes stay open");
    }

    #[tokio::test(start_paused = true)]
    async fn long_poll_returns_as_soon_as_the_decision_changes() {
        let h = plain().await;
        h.call("POST", "/v1/trains", Some(train("t-1")), None).await;
        let router = h.router.clone();
        let started = tokio::time::Instant::now();
        let poll = tokio::spawn(async move {
            let req = Request::get("/v1/trains/t-1/decision?wait=30s&after_seq=0")
                .body(Body::empty())
                .unwrap();
            let out = send(&router, req).await;
            (out, started.elapsed())
        });
        // The poll is parked on the train's channel before anything changes.
        while h.shared().trains.watchers(&tid("t-1")) < 1 {
            tokio::task::yield_now().await;
        }
        let (status, _) = h
            .call(
                "POST",
                "/v1/trains/t-1/override",
                Some(json!({"decision": "pause", "reason": "incident INC-7", "actor": "alice"})),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        let ((status, body), waited) = poll.await.unwrap();
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["seq"], 1);
        assert_eq!(body["decision"], "pause");
        assert!(
            waited < Duration::from_secs(30),
            "returned at the deadline: {waited:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn long_poll_returns_the_current_decision_at_the_deadline() {
        let h = plain().await;
        h.call("POST", "/v1/trains", Some(train("t-1")), None).await;
        let started = tokio::time::Instant::now();
        let (status, body) = h
            .call(
                "GET",
                "/v1/trains/t-1/decision?wait=20s&after_seq=0",
                None,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["seq"], 0);
        assert_eq!(body["decision"], "pending");
        assert!(started.elapsed() >= Duration::from_secs(20));

        // Already past after_seq: no wait at all.
        let (_, body) = h
            .call("GET", "/v1/trains/t-1/decision?wait=5m", None, None)
            .await;
        assert_eq!(body["seq"], 0);
        let (status, err) = h
            .call(
                "GET",
                "/v1/trains/t-1/decision?wait=soon&after_seq=0",
                None,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(err["error"]["code"], "invalid_query");
    }

    #[tokio::test]
    async fn overrides_are_recorded_with_who_and_why_and_resume_clears_them() {
        let h = plain().await;
        h.call("POST", "/v1/trains", Some(train("t-1")), None).await;
        h.clock.advance(Duration::from_secs(60));
        let (status, body) = h
            .call(
                "POST",
                "/v1/trains/t-1/override",
                Some(
                    json!({"decision": "pause", "reason": "freeze for the sale", "actor": "alice"}),
                ),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["decision"], "pause");
        assert_eq!(body["seq"], 1);
        assert_eq!(body["state"], "paused");
        assert!(body["reason"].as_str().unwrap().contains("alice"));

        let (_, shown) = h.call("GET", "/v1/trains/t-1", None, None).await;
        assert_eq!(shown["pinned"], "pause");

        let (status, body) = h
            .call(
                "POST",
                "/v1/trains/t-1/override",
                Some(json!({"decision": "resume", "reason": "sale over", "actor": "bob"})),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["decision"], "pending");
        assert_eq!(body["seq"], 2);
        let (_, shown) = h.call("GET", "/v1/trains/t-1", None, None).await;
        assert_eq!(shown["pinned"], Value::Null);

        let (status, err) = h
            .call(
                "POST",
                "/v1/trains/t-1/override",
                Some(json!({"decision": "resume", "reason": "again", "actor": "bob"})),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(err["error"]["code"], "nothing_to_resume");

        let (status, err) = h
            .call(
                "POST",
                "/v1/trains/t-1/override",
                Some(json!({"decision": "promote", "reason": " ", "actor": "bob"})),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
        let (status, _) = h
            .call(
                "POST",
                "/v1/trains/t-1/override",
                Some(json!({"decision": "ship-it", "reason": "x", "actor": "bob"})),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

        let (status, events) = h.call("GET", "/v1/trains/t-1/events", None, None).await;
        assert_eq!(status, StatusCode::OK);
        let overrides: Vec<&Value> = events["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "override")
            .collect();
        assert_eq!(overrides.len(), 2, "{events}");
        assert_eq!(overrides[0]["actor"], "alice");
        assert_eq!(overrides[0]["reason"], "freeze for the sale");
        assert_eq!(overrides[0]["decision"], "pause");
        assert_eq!(overrides[0]["previous"], "pending");
        assert_eq!(overrides[1]["action"], "resume");
        assert_eq!(overrides[1]["actor"], "bob");
        // The pause changed the decision, so the deployer webhook was queued with it.
        let deliveries: Vec<&Value> = events["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "delivery")
            .collect();
        assert_eq!(deliveries.len(), 1, "{events}");
        assert_eq!(deliveries[0]["webhook"], "deployer");
        assert_eq!(deliveries[0]["seq"], 1);
    }

    #[tokio::test]
    async fn stopping_keeps_history_and_refuses_later_overrides() {
        let h = plain().await;
        h.call("POST", "/v1/trains", Some(train("t-1")), None).await;
        h.call("POST", "/v1/trains", Some(train("t-2")), None).await;
        let (status, body) = h.call("DELETE", "/v1/trains/t-1", None, None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["state"], "stopped");
        assert_eq!(body["evaluating"], false);
        let (status, _) = h.call("DELETE", "/v1/trains/t-1", None, None).await;
        assert_eq!(status, StatusCode::OK, "stopping twice is harmless");
        let (status, _) = h.call("DELETE", "/v1/trains/t-9", None, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);

        let (_, active) = h.call("GET", "/v1/trains", None, None).await;
        let ids: Vec<&Value> = active["trains"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| &t["train"])
            .collect();
        assert_eq!(ids, [&json!("t-2")]);
        let (_, all) = h.call("GET", "/v1/trains?state=all", None, None).await;
        assert_eq!(all["trains"].as_array().unwrap().len(), 2);

        let (status, err) = h
            .call(
                "POST",
                "/v1/trains/t-1/override",
                Some(json!({"decision": "promote", "reason": "x", "actor": "bob"})),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(err["error"]["code"], "train_stopped");
        let (_, events) = h.call("GET", "/v1/trains/t-1/events", None, None).await;
        assert_eq!(
            events["events"].as_array().unwrap().last().unwrap()["kind"],
            "stopped"
        );
    }

    #[tokio::test]
    async fn metrics_and_readiness() {
        let h = plain().await;
        h.call("POST", "/v1/trains", Some(train("t-1")), None).await;
        let response = h
            .router
            .clone()
            .oneshot_request(Request::get("/metrics").body(Body::empty()).unwrap())
            .await;
        assert_eq!(response.0, StatusCode::OK);
        assert!(
            response.1.contains("gate_trains{state=\"verifying\"} 1"),
            "{}",
            response.1
        );
        assert!(response.1.contains(
            "gate_train_decision{train=\"t-1\",gate=\"checkout\",decision=\"pending\"} 1"
        ));

        let (status, body) = h.call("GET", "/readyz", None, None).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(body["store"], "ok");
        assert_ne!(body["prometheus"], "ok");
    }

    #[tokio::test]
    async fn a_train_finished_before_a_restart_is_read_from_the_store() {
        let h = plain().await;
        h.call("POST", "/v1/trains", Some(train("t-1")), None).await;
        h.call("DELETE", "/v1/trains/t-1", None, None).await;
        let dir = h.dir;
        drop(h.daemon);
        let h = crate::daemon::tests::harness_in(dir, "", ApiOptions::default()).await;
        assert!(
            h.shared().trains.get(&tid("t-1")).is_none(),
            "only active trains are loaded"
        );
        let (status, body) = h.call("GET", "/v1/trains/t-1/decision", None, None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["state"], "stopped");
        assert!(
            h.shared().trains.get(&tid("t-1")).is_some(),
            "held after the first read"
        );
        let _ = t0();
    }

    #[tokio::test]
    async fn reload_refuses_an_invalid_config_and_reports_orphaned_trains() {
        let h = plain().await;
        h.call("POST", "/v1/trains", Some(train("t-1")), None).await;
        std::fs::write(
            h.config_path(),
            "gates: [{name: x, rules: [{when: 'nope(', then: rollback}]}]",
        )
        .unwrap();
        let (status, err) = h.call("POST", "/v1/reload", None, None).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
        assert_eq!(err["error"]["code"], "invalid_config");
        assert!(
            !err["error"]["details"].as_array().unwrap().is_empty(),
            "{err}"
        );
        assert!(
            h.shared().runtime().config.gate("checkout").is_some(),
            "old config kept"
        );

        let secretless = config_yaml(UNREACHABLE).replace(
            "on: [rollback, pause, promote]",
            "on: [rollback]\n    secret_env: GATE_TEST_SECRET_THAT_IS_NEVER_SET",
        );
        std::fs::write(h.config_path(), secretless).unwrap();
        let (status, err) = h.call("POST", "/v1/reload", None, None).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
        assert!(
            err["error"]["message"]
                .as_str()
                .unwrap()
                .contains("GATE_TEST_SECRET_THAT_IS_NEVER_SET"),
            "{err}"
        );
        assert_eq!(h.shared().runtime().webhooks.len(), 1);
        assert_eq!(
            h.shared().runtime().config.webhooks[0].on.len(),
            3,
            "old config kept"
        );

        let renamed = config_yaml(UNREACHABLE).replace("name: checkout", "name: search");
        std::fs::write(h.config_path(), renamed).unwrap();
        let (status, report) = h.call("POST", "/v1/reload", None, None).await;
        assert_eq!(status, StatusCode::OK, "{report}");
        assert_eq!(report["gates"], json!(["search"]));
        assert_eq!(report["unevaluated_trains"], json!(["t-1"]));
        let (_, shown) = h.call("GET", "/v1/trains/t-1", None, None).await;
        assert_eq!(shown["evaluating"], false);
        assert_eq!(shown["state"], "verifying", "state kept");
    }

    trait OneshotText {
        async fn oneshot_request(self, req: Request<Body>) -> (StatusCode, String);
    }

    impl OneshotText for axum::Router {
        async fn oneshot_request(self, req: Request<Body>) -> (StatusCode, String) {
            use tower::ServiceExt;
            let response = self.oneshot(req).await.unwrap();
            let status = response.status();
            let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap();
            (status, String::from_utf8(bytes.to_vec()).unwrap())
        }
    }
}
