//! The bearer token: when `GATE_API_TOKEN` is set, POST and DELETE need
//! `Authorization: Bearer <token>` (reads too with `--auth-reads`, except `/healthz`,
//! `/readyz` and `/v1/openapi.json`). Tokens are compared through an HMAC of each, in
//! constant time, so neither their content nor their length leaks through timing.

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{ApiError, AppState};

/// The HMAC key tokens are compared under; any fixed key makes the comparison independent
/// of the tokens' length and content.
const TOKEN_KEY: &[u8] = b"gate api token comparison";

fn token_tag(token: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(TOKEN_KEY).expect("HMAC takes any key length");
    mac.update(token);
    mac
}

pub(crate) fn authorized(headers: &HeaderMap, token: &str) -> bool {
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

/// The middleware that checks the token.
pub(crate) async fn auth(State(shared): AppState, req: Request, next: Next) -> Response {
    let Some(token) = shared.api.token.as_deref() else {
        return next.run(req).await;
    };
    let read = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let probe = matches!(
        req.uri().path(),
        "/healthz" | "/readyz" | "/v1/openapi.json"
    );
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
#[cfg(test)]
mod tests {

    use super::*;
    use crate::daemon::api::tests::{train, UNREACHABLE};
    use crate::daemon::tests::{config_yaml, harness};
    use crate::daemon::ApiOptions;

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
}
