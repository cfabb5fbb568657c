//! The operations routes: config reload, outbox redrive, the daemon's metrics, the liveness and readiness
//! probes, and the OpenAPI document.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use gate_api::{ErrorBody, Health, Readiness, RedriveReport, RedriveRequest, ReloadReport, Role};

use super::extract::train_id;
use super::{json_body, ApiError, ApiJson, AppState};
use crate::daemon::ReloadError;

/// How long a Prometheus outcome counts for `/readyz` before it is probed again.
const READY_FRESHNESS: Duration = Duration::from_secs(30);
/// Timeout of the `/readyz` probe query.
const READY_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

#[utoipa::path(
    post, path = "/v1/reload", tag = "operations",
    description = "Reads the config file again (as SIGHUP does). An invalid file, or a webhook whose `secret_env` is unset, is refused and the old config keeps running.",
    responses(
        (status = 200, description = "The new gates and the active trains whose gate is gone", body = ReloadReport),
        (status = 401, description = "Token missing or wrong (`unauthorized`)", body = ErrorBody),
        (status = 403, description = "The token lacks the `admin` scope (`forbidden`)", body = ErrorBody),
        (status = 409, description = "The daemon has no config file to reload (`reload_unavailable`)", body = ErrorBody),
        (status = 422, description = "The file was refused (`invalid_config`); `details` has one line per problem", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn reload(State(shared): AppState) -> Result<Response, ApiError> {
    match crate::daemon::reload(&shared).await {
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

#[utoipa::path(
    post, path = "/v1/outbox/redrive", tag = "operations",
    description = "Puts dead-lettered webhook events (every train's, or one train's) back in the queue, each in its place in its train's order with its attempts reset, and wakes the deliverer. Sent with their original event IDs and bodies.",
    request_body = RedriveRequest,
    responses(
        (status = 200, description = "How many events were queued again", body = RedriveReport),
        (status = 400, description = "A bad train ID or body (`invalid_train_id`, `invalid_json`)", body = ErrorBody),
        (status = 401, description = "Token missing or wrong (`unauthorized`)", body = ErrorBody),
        (status = 500, description = "The store failed (`internal`)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn redrive(
    State(shared): AppState,
    ApiJson(body): ApiJson<RedriveRequest>,
) -> Result<Response, ApiError> {
    let train = body.train.as_deref().map(train_id).transpose()?;
    let now = shared.clock.now();
    // Nothing in memory changes: the store's own writer serializes this with the others.
    let redriven = shared
        .blocking(move |store| store.redrive_dead(train.as_ref(), now))
        .await?;
    if redriven > 0 {
        tracing::info!(redriven, "dead-lettered webhook events queued again");
        shared.nudge_webhooks();
    }
    Ok(json_body(StatusCode::OK, &RedriveReport { redriven }))
}

/// `GET /v1/openapi.json`: the API's OpenAPI 3.1 document.
#[utoipa::path(
    get, path = "/v1/openapi.json", tag = "operations",
    description = "This document. Needs no token.",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json", body = Object)),
)]
pub(crate) async fn openapi() -> Response {
    json_body(StatusCode::OK, &super::openapi::document())
}

#[utoipa::path(
    get, path = "/metrics", tag = "operations",
    description = "The daemon's metrics.",
    responses(
        (status = 200, description = "OpenMetrics text", content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8", body = String),
        (status = 401, description = "Token missing or wrong (`unauthorized`)", body = ErrorBody),
        (status = 403, description = "The token lacks the `read` scope (`forbidden`)", body = ErrorBody),
    ),
    security((), ("bearer" = []))
)]
pub(crate) async fn metrics(State(shared): AppState) -> Response {
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

#[utoipa::path(
    get, path = "/healthz", tag = "operations",
    description = "200 while the process runs. Needs no token.",
    responses((status = 200, description = "Alive", body = Health)),
)]
pub(crate) async fn healthz() -> Response {
    json_body(
        StatusCode::OK,
        &Health {
            status: "ok".to_string(),
        },
    )
}

#[utoipa::path(
    get, path = "/readyz", tag = "operations",
    description = "200 when the store answers and Prometheus was reachable (the last query within 30 s succeeded, or a `vector(1)` probe with a 2 s timeout does). Says the replica's role (`leader` or `follower`) and which replica leads. Needs no token.",
    responses(
        (status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "Not ready, or shutting down", body = Readiness),
    ),
)]
pub(crate) async fn readyz(State(shared): AppState) -> Response {
    if shared.shutting_down() {
        return json_body(
            StatusCode::SERVICE_UNAVAILABLE,
            &Readiness {
                ready: false,
                store: "shutting down".to_string(),
                prometheus: "shutting down".to_string(),
                ..role_of(&shared)
            },
        );
    }
    let store = match shared.blocking(|store| store.ping()).await {
        Ok(()) => Ok(()),
        Err(e) => Err(gate_rules::error_chain(&e)),
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
        &Readiness {
            ready,
            store: show(&store),
            prometheus: show(&prometheus),
            ..role_of(&shared)
        },
    )
}

/// The role part of [`Readiness`].
fn role_of(shared: &crate::daemon::Shared) -> Readiness {
    let role = shared.role.borrow().clone();
    Readiness {
        ready: false,
        store: String::new(),
        prometheus: String::new(),
        role: if role.leading {
            Role::Leader
        } else {
            Role::Follower
        },
        leader: role.leader,
        replica: shared.ha.replica.clone(),
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use serde_json::json;

    use super::*;
    use crate::daemon::api::tests::{plain, train, UNREACHABLE};
    use crate::daemon::tests::{config_yaml, harness};
    use crate::daemon::ApiOptions;

    #[tokio::test]
    async fn redrive_requeues_dead_letters_of_one_train_or_all() {
        use crate::store::testing::{change, event, t};
        use crate::store::DeliveryState;
        use gate_rules::Decision;

        let h = plain().await;
        let store = h.shared().store.clone();
        for id in ["t-1", "t-2"] {
            h.call("POST", "/v1/trains", Some(train(id)), None).await;
            let event_id = format!("{id}-1");
            change(
                &store,
                id,
                0,
                Decision::Rollback,
                t(10),
                vec![event(&event_id, "deployer")],
            );
            store
                .mark_dead(&event_id, "HTTP 500", Some(500), t(20))
                .unwrap();
        }
        let states = |id: &str| -> Vec<DeliveryState> {
            let id = gate_rules::train_id::validate(id).unwrap();
            store
                .delivery_states(&id)
                .unwrap()
                .iter()
                .map(|d| d.state)
                .collect()
        };

        let (status, body) = h
            .call(
                "POST",
                "/v1/outbox/redrive",
                Some(json!({"train": "t-1"})),
                None,
            )
            .await;
        assert_eq!((status, body), (StatusCode::OK, json!({"redriven": 1})));
        assert_eq!(states("t-1"), [DeliveryState::Pending]);
        assert_eq!(states("t-2"), [DeliveryState::Dead]);
        let (status, body) = h
            .call("POST", "/v1/outbox/redrive", Some(json!({})), None)
            .await;
        assert_eq!((status, body), (StatusCode::OK, json!({"redriven": 1})));
        assert_eq!(states("t-2"), [DeliveryState::Pending]);

        let (status, body) = h
            .call(
                "POST",
                "/v1/outbox/redrive",
                Some(json!({"train": "bad id!"})),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body["error"]["code"], "invalid_train_id");
        let (status, body) = h
            .call(
                "POST",
                "/v1/outbox/redrive",
                Some(json!({"trains": []})),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
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

    #[tokio::test]
    async fn the_openapi_document_is_served_without_a_token() {
        let api = ApiOptions {
            tokens: vec![crate::daemon::api::auth::all_scopes(
                "GATE_API_TOKEN",
                "s3cret",
            )],
            auth_reads: true,
            ..ApiOptions::default()
        };
        let h = harness(&config_yaml(UNREACHABLE), api).await;
        let (status, doc) = h.call("GET", "/v1/openapi.json", None, None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(doc["openapi"], "3.1.0");
        assert_eq!(
            doc,
            serde_json::to_value(super::super::openapi::document()).unwrap()
        );
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
