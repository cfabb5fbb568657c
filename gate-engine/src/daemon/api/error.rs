//! The API's one error body, `{"error": {"code", "message", "details"?}}` ([`ErrorBody`]),
//! with its HTTP status: what handlers return, what the store's and axum's own failures
//! become, and the fallbacks for unknown routes and methods.

use axum::extract::rejection::JsonRejection;
use axum::http::header::{RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use gate_api::ErrorBody;
use gate_rules::TrainId;

use super::BODY_LIMIT;
use crate::daemon::BlockingError;
use crate::store::StoreError;

/// An API error: `{"error": {"code", "message", "details"?}}` with its status.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    pub(crate) message: String,
    pub(crate) details: Vec<String>,
    retry_after: Option<u64>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            details: Vec::new(),
            retry_after: None,
        }
    }

    /// A `503` for a bound that was reached, with `Retry-After: <secs>`.
    pub(crate) fn overloaded(code: &'static str, message: impl Into<String>, secs: u64) -> Self {
        ApiError {
            retry_after: Some(secs),
            ..Self::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
        }
    }

    pub(crate) fn not_found(id: &TrainId) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "train_not_found",
            format!("train {id} is not registered"),
        )
    }

    pub(crate) fn internal(message: impl Into<String>) -> Self {
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
            BlockingError::Store(e) if e.is_unavailable() => {
                tracing::warn!("store unavailable: {}", gate_rules::error_chain(&e));
                ApiError::overloaded(
                    "store_unavailable",
                    format!(
                        "the store cannot be reached, retry shortly: {}",
                        gate_rules::error_chain(&e)
                    ),
                    1,
                )
            }
            other => {
                tracing::error!("store: {}", gate_rules::error_chain(&other));
                ApiError::internal(gate_rules::error_chain(&other))
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody::new(self.code, self.message, self.details);
        let mut response = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(secs));
        }
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

/// The fallback for an unknown route.
pub(crate) async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

/// The fallback for a known route with another method.
pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not take that method",
    )
}
