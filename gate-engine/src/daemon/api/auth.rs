//! Who may call the API: named bearer tokens with scopes.
//!
//! The daemon knows tokens only by the SHA-256 of each (`gate serve --tokens FILE`, read by
//! [`gate_rules::config::tokens_from_str`]); `GATE_API_TOKEN` is one more token, named
//! `GATE_API_TOKEN`, with every scope ([`all_scopes`]). With no token at all the API is open.
//!
//! Each route needs one scope ([`required_scope`]): reads `read` (checked only with
//! `--auth-reads`; `/healthz`, `/readyz` and `/v1/openapi.json` stay open), registering and
//! stopping trains `register`, overrides `override`, reload `admin`. A missing or unknown
//! token is 401 `unauthorized`; a known token without the scope is 403 `forbidden`. The
//! caller's token name goes into the request ([`Caller`]) for the audit trail.
//!
//! A presented token is hashed, and the digest compared with every known digest through an
//! HMAC of each, in constant time, scanning them all: neither the tokens' content, their
//! length, nor which one matched leaks through timing.

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use gate_rules::config::{ApiToken, Scope};
use hmac::{Hmac, Mac};
use sha2::{Digest as _, Sha256};

use super::{ApiError, AppState};
use crate::daemon::ApiOptions;

/// The HMAC key digests are compared under; any fixed key makes the comparison independent
/// of their content.
const TOKEN_KEY: &[u8] = b"gate api token comparison";

/// The name `GATE_API_TOKEN` is known by in the audit trail.
pub const SHARED_TOKEN_NAME: &str = "GATE_API_TOKEN";

/// Who made a request, for the handlers: the name of the token that authenticated it.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub(crate) name: String,
}

/// A token given in full (`GATE_API_TOKEN`) as a named token with every scope.
pub fn all_scopes(name: &str, token: &str) -> ApiToken {
    ApiToken {
        name: name.to_string(),
        sha256: sha256(token),
        scopes: Scope::ALL.into_iter().collect(),
    }
}

/// The SHA-256 of a token, as the tokens file stores it.
pub fn sha256(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn digest_tag(digest: &[u8; 32]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(TOKEN_KEY).expect("HMAC takes any key length");
    mac.update(digest);
    mac
}

/// The token the `Authorization: Bearer` header names, if it is a known one.
pub(crate) fn authenticate<'t>(
    headers: &HeaderMap,
    tokens: &'t [ApiToken],
) -> Option<&'t ApiToken> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, given) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let given = digest_tag(&sha256(given.trim())).finalize().into_bytes();
    let mut found = None;
    for token in tokens {
        if digest_tag(&token.sha256).verify_slice(&given).is_ok() {
            found = Some(token);
        }
    }
    found
}

/// The scope a request needs, by method and route (an unknown route needs `admin`, so it is
/// never an open door; it answers 404 once authorized).
pub(crate) fn required_scope(method: &Method, route: Option<&str>) -> Scope {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return Scope::Read;
    }
    match (method.as_str(), route) {
        ("POST", Some("/v1/trains")) | ("DELETE", Some("/v1/trains/{id}")) => Scope::Register,
        ("POST", Some("/v1/trains/{id}/override")) => Scope::Override,
        _ => Scope::Admin,
    }
}

/// Whether `headers` carry a token with `scope`: `Ok(None)` when no token is needed (no
/// tokens known, or an open read), `Ok(Some(caller))` when a token with the scope was given.
pub(crate) fn check(
    api: &ApiOptions,
    headers: &HeaderMap,
    scope: Scope,
) -> Result<Option<Caller>, ApiError> {
    if api.tokens.is_empty() || (scope == Scope::Read && !api.auth_reads) {
        return Ok(None);
    }
    let Some(token) = authenticate(headers, &api.tokens) else {
        let message = if headers.contains_key(AUTHORIZATION) {
            "the bearer token is not valid"
        } else {
            "this endpoint requires `Authorization: Bearer <token>` (GATE_API_TOKEN or a token of --tokens)"
        };
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            message,
        ));
    };
    if !token.scopes.contains(&scope) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("the token `{}` lacks the `{scope}` scope", token.name),
        ));
    }
    Ok(Some(Caller {
        name: token.name.clone(),
    }))
}

/// The middleware that checks the token and its scope.
pub(crate) async fn auth(State(shared): AppState, mut req: Request, next: Next) -> Response {
    let probe = matches!(
        req.uri().path(),
        "/healthz" | "/readyz" | "/v1/openapi.json"
    );
    if probe {
        return next.run(req).await;
    }
    let route = req.extensions().get::<MatchedPath>().map(|p| p.as_str());
    let scope = required_scope(req.method(), route);
    match check(&shared.api, req.headers(), scope) {
        Err(e) => e.into_response(),
        Ok(caller) => {
            if let Some(caller) = caller {
                req.extensions_mut().insert(caller);
            }
            next.run(req).await
        }
    }
}

#[cfg(test)]
mod tests {

    use serde_json::json;

    use super::*;
    use crate::daemon::api::tests::{train, UNREACHABLE};
    use crate::daemon::tests::{config_yaml, harness};
    use crate::daemon::ApiOptions;

    #[tokio::test]
    async fn a_token_guards_writes_and_with_auth_reads_also_reads() {
        let api = ApiOptions {
            tokens: vec![all_scopes(SHARED_TOKEN_NAME, "s3cret")],
            auth_reads: false,
            ..ApiOptions::default()
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
            tokens: vec![all_scopes(SHARED_TOKEN_NAME, "s3cret")],
            auth_reads: true,
            ..ApiOptions::default()
        };
        let h = harness(&config_yaml(UNREACHABLE), api).await;
        let (status, _) = h.call("GET", "/v1/trains", None, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, _) = h.call("GET", "/v1/trains", None, Some("s3cret")).await;
        assert_eq!(status, StatusCode::OK);
        let (status, _) = h.call("GET", "/healthz", None, None).await;
        assert_eq!(status, StatusCode::OK, "probes stay open");
    }

    fn named(name: &str, token: &str, scopes: &[Scope]) -> ApiToken {
        ApiToken {
            name: name.to_string(),
            sha256: sha256(token),
            scopes: scopes.iter().copied().collect(),
        }
    }

    #[tokio::test]
    async fn each_scope_opens_its_routes_and_only_those() {
        let api = ApiOptions {
            tokens: vec![
                named("reader", "t-read", &[Scope::Read]),
                named("pipeline", "t-register", &[Scope::Register]),
                named("oncall", "t-override", &[Scope::Override]),
                named("ops", "t-admin", &[Scope::Admin]),
            ],
            auth_reads: true,
            ..ApiOptions::default()
        };
        let h = harness(&config_yaml(UNREACHABLE), api).await;
        let ov = json!({"decision": "pause", "reason": "incident", "actor": "alice"});
        // (method, path, body, the scope it needs)
        let routes: Vec<(&str, &str, Option<serde_json::Value>, &str)> = vec![
            ("GET", "/v1/trains", None, "t-read"),
            ("GET", "/metrics", None, "t-read"),
            ("GET", "/web/settings.json", None, "t-read"),
            ("POST", "/v1/trains", Some(train("t-1")), "t-register"),
            (
                "POST",
                "/v1/trains/t-1/override",
                Some(ov.clone()),
                "t-override",
            ),
            ("POST", "/v1/reload", None, "t-admin"),
            ("POST", "/v1/outbox/redrive", Some(json!({})), "t-admin"),
            ("DELETE", "/v1/trains/t-1", None, "t-register"),
        ];
        let all = ["t-read", "t-register", "t-override", "t-admin"];
        for (method, path, body, needed) in &routes {
            for token in all.iter().filter(|t| *t != needed) {
                let (status, err) = h.call(method, path, body.clone(), Some(token)).await;
                assert_eq!(
                    status,
                    StatusCode::FORBIDDEN,
                    "{method} {path} with {token}"
                );
                assert_eq!(err["error"]["code"], "forbidden");
                let message = err["error"]["message"].as_str().unwrap();
                assert!(message.contains("lacks the"), "{message}");
            }
            let (status, err) = h.call(method, path, body.clone(), Some("t-unknown")).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}");
            assert_eq!(err["error"]["code"], "unauthorized");
            let (status, answer) = h.call(method, path, body.clone(), Some(needed)).await;
            assert!(
                status.is_success(),
                "{method} {path} with {needed}: {status} {answer}"
            );
        }
        let (status, _) = h.call("GET", "/readyz", None, None).await;
        assert_ne!(status, StatusCode::UNAUTHORIZED, "probes need no token");
    }

    #[tokio::test]
    async fn the_audit_trail_names_the_token_and_keeps_the_body_actor_as_on_behalf_of() {
        let api = ApiOptions {
            tokens: vec![
                named("deploy-bot", "t-bot", &[Scope::Register, Scope::Override]),
                all_scopes(SHARED_TOKEN_NAME, "s3cret"),
            ],
            auth_reads: false,
            ..ApiOptions::default()
        };
        let h = harness(&config_yaml(UNREACHABLE), api).await;
        let (status, _) = h
            .call("POST", "/v1/trains", Some(train("t-1")), Some("t-bot"))
            .await;
        assert_eq!(status, StatusCode::CREATED);
        let overrides = [
            ("t-bot", "pause", "alice"),
            ("t-bot", "resume", "deploy-bot"),
            ("s3cret", "pause", "bob"),
        ];
        for (token, decision, actor) in overrides {
            let body = json!({"decision": decision, "reason": "why", "actor": actor});
            let (status, answer) = h
                .call("POST", "/v1/trains/t-1/override", Some(body), Some(token))
                .await;
            assert_eq!(status, StatusCode::OK, "{answer}");
        }
        let (_, decision) = h.call("GET", "/v1/trains/t-1/decision", None, None).await;
        assert_eq!(
            decision["reason"],
            "override pause by GATE_API_TOKEN (on behalf of bob): why"
        );
        let (_, trail) = h.call("GET", "/v1/trains/t-1/events", None, None).await;
        let overrides: Vec<_> = trail["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "override")
            .map(|e| (e["actor"].clone(), e["on_behalf_of"].clone()))
            .collect();
        assert_eq!(
            overrides,
            [
                (json!("deploy-bot"), json!("alice")),
                (json!("deploy-bot"), json!(null)),
                (json!("GATE_API_TOKEN"), json!("bob")),
            ]
        );
    }
}
