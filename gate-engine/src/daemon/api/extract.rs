//! Extractors whose rejections are API errors: axum's `Json`, `Query` and `Path` answer a
//! bad request with plain text; these wrappers answer with the API's error body and code
//! (`malformed_json`, `invalid_body`, `body_too_large`, `unsupported_media_type`,
//! `invalid_query`, `invalid_path`, `invalid_train_id`).

use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::Json;
use gate_rules::TrainId;
use serde::de::DeserializeOwned;

use super::ApiError;

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

/// A train ID from a request (400 `invalid_train_id` otherwise).
pub(crate) fn train_id(id: &str) -> Result<TrainId, ApiError> {
    gate_rules::train_id::validate(id)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_train_id", e.to_string()))
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;

    use super::*;
    use crate::daemon::api::tests::plain;
    use crate::daemon::tests::send;

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
}
