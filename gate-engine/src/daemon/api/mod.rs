//! The HTTP API of `gate serve` (SPEC §6), on axum.
//!
//! | method | path | success | errors |
//! |---|---|---|---|
//! | POST | `/v1/trains` | 201 registered, 200 same body again | 400 bad ID/JSON, 409 different body, 422 unknown gate |
//! | GET | `/v1/trains?state=&gate=&limit=&cursor=` | 200 `{trains: [...], next_cursor}` | 400 |
//! | GET | `/v1/trains/{id}` | 200 train with `evaluation` | 404 |
//! | GET | `/v1/trains/{id}/decision?wait=30s&after_seq=N` | 200 `{train, decision, reason, seq, evaluated_at, …}` | 404 |
//! | POST | `/v1/trains/{id}/override` | 200 the new decision | 404, 409 stopped / nothing to resume, 422 |
//! | GET | `/v1/trains/{id}/events` | 200 `{train, events: [...]}` | 404 |
//! | DELETE | `/v1/trains/{id}` | 200 the stopped train | 404 |
//! | POST | `/v1/reload` | 200 `{gates, unevaluated_trains}` | 422 invalid config (old one kept) |
//! | POST | `/v1/outbox/redrive` | 200 `{redriven}` | 400 bad train ID |
//! | GET | `/metrics`, `/healthz`, `/readyz` | 200 | 503 not ready |
//! | GET | `/v1/openapi.json` | 200 the OpenAPI 3.1 document | |
//!
//! Every error is `{"error": {"code": "...", "message": "..."}}` (plus `details` for a
//! refused config), also for what axum itself rejects — malformed JSON (400), a missing
//! `Content-Type` (415), a body over [`BODY_LIMIT`] (413), an unknown route (404) or method
//! (405) — through the extractor wrappers in [`extract`].
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
//!
//! The bodies are the wire types of the `gate-api` crate, shared with the CLI's client; the
//! OpenAPI document ([`openapi`]) is generated from them and from the route annotations on
//! the handlers.
//!
//! One job per file: [`error`] (the error body and its statuses), [`extract`] (extractors
//! whose rejections are API errors), [`auth`] (the bearer token), [`trains`] (the train
//! routes), [`ops`] (reload, metrics, probes), [`openapi`] (the document).

pub mod auth;
pub mod error;
pub mod extract;
pub mod openapi;
pub mod ops;
pub mod trains;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Serialize;

pub use error::ApiError;
pub use extract::{ApiJson, ApiQuery, TrainPath};

use super::Shared;

/// Largest request body accepted.
pub const BODY_LIMIT: usize = 64 * 1024;
/// Longest long-poll.
pub const MAX_WAIT: Duration = Duration::from_secs(300);

/// The API router over the daemon's shared state.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/trains", post(trains::register).get(trains::list))
        .route("/v1/trains/{id}", get(trains::show).delete(trains::stop))
        .route("/v1/trains/{id}/decision", get(trains::decision))
        .route("/v1/trains/{id}/override", post(trains::override_train))
        .route("/v1/trains/{id}/events", get(trains::events))
        .route("/v1/reload", post(ops::reload))
        .route("/v1/outbox/redrive", post(ops::redrive))
        .route("/v1/openapi.json", get(ops::openapi))
        .route("/metrics", get(ops::metrics))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .merge(super::series::router())
        .merge(super::live::router())
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(middleware::from_fn_with_state(
            Arc::clone(&shared),
            auth::auth,
        ))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&shared),
            super::limits::request_time,
        ))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .merge(super::web::router())
        .with_state(shared)
}

pub(crate) type AppState = State<Arc<Shared>>;

/// A JSON response with `status`.
pub(crate) fn json_body(status: StatusCode, body: &impl Serialize) -> Response {
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

#[cfg(test)]
pub(super) mod tests {
    use serde_json::{json, Value};

    use crate::daemon::tests::{config_yaml, harness, Harness};
    use crate::daemon::ApiOptions;

    pub(crate) const UNREACHABLE: &str = "http://127.0.0.1:9";

    pub(crate) async fn plain() -> Harness {
        harness(&config_yaml(UNREACHABLE), ApiOptions::default()).await
    }

    pub(crate) fn train(id: &str) -> Value {
        json!({"id": id, "gate": "checkout", "started_at": "2026-11-01T11:00:00Z",
               "labels": {"team": "payments"}})
    }
}
