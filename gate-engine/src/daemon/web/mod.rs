//! The web page of `gate serve`: an overview of the active trains and a page per train, for
//! the on-call engineer who would rather look than read JSON.
//!
//! The page is three static files compiled into the binary (`include_str!`), so the daemon
//! needs no separate server, no build step and no other host: it works in an air-gapped
//! cluster. Every response carries `Content-Security-Policy: default-src 'self'`, which
//! forbids inline scripts and styles and any request to another origin; the script and the
//! stylesheet are therefore files of their own. The page is a client of the JSON API
//! (`/v1/...`) on the same listener and renders everything in the browser, charts included,
//! as SVG built with the DOM.
//!
//! These routes are merged outside the API's authentication layer: the files hold no data,
//! and with `--auth-reads` the page asks for the token once, keeps it in `sessionStorage`
//! and sends it as `Authorization: Bearer` on every API call — never in a URL.
//!
//! `/web/settings.json` tells the page what the API does not: where people open Prometheus
//! (`prometheus.external_url`, for the links from each query). It is a read like any other
//! and needs the token under `--auth-reads`.
//!
//! `/` and `/trains/{id}` both serve the same document; the script picks the view from the
//! path, so a train page's URL can be shared and reloaded.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use gate_rules::config::Scope;
use serde_json::json;

use super::Shared;
use crate::redact;

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");
const ICON_SVG: &str = include_str!("assets/icon.svg");

/// The policy of every page response: only this origin, for everything.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'";

/// The page's routes, to merge into the daemon's router.
pub fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/", get(index))
        .route("/trains/{id}", get(index))
        .route("/web/app.js", get(app_js))
        .route("/web/app.css", get(app_css))
        .route("/web/icon.svg", get(icon))
        .route("/web/settings.json", get(settings))
}

async fn settings(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if let Err(e) = super::api::auth::check(&shared.api, &headers, Scope::Read) {
        return e.into_response();
    }
    let runtime = shared.runtime();
    let body =
        json!({ "prometheus_url": redact::url_text(&runtime.config.prometheus.external_url) });
    let mut response = axum::Json(body).into_response();
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

async fn app_js() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

async fn app_css() -> Response {
    asset("text/css; charset=utf-8", APP_CSS)
}

async fn icon() -> Response {
    asset("image/svg+xml", ICON_SVG)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                HeaderName::from_static("content-security-policy"),
                HeaderValue::from_static(CONTENT_SECURITY_POLICY),
            ),
            (
                HeaderName::from_static("x-content-type-options"),
                HeaderValue::from_static("nosniff"),
            ),
            (
                HeaderName::from_static("referrer-policy"),
                HeaderValue::from_static("no-referrer"),
            ),
            (CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}
