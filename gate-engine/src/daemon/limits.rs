//! The daemon's bounds on what clients can make it hold: open long-polls, active trains and
//! the time one request may take.
//!
//! Each bound has a default sized for one daemon with room to spare, a `gate serve` flag, a
//! refusal a client can act on (`503` with `Retry-After`, and a stable error code) and a
//! metric (`gate_long_polls` open now, `gate_limit_refusals_total{limit}`). Refusing is the
//! point: past these numbers the daemon would run out of memory or file descriptors and
//! fail every client at once instead of telling the newest one to come back later.
//!
//! A long-poll holds a [`LongPollSlot`] while it waits; the slot is given back when the
//! request ends, however it ends (its future dropped included).
//!
//! The request-time bound ([`request_time`]) answers `503 request_timeout` when a handler has
//! not answered in time (a store stalled behind a long write, a slow Prometheus behind
//! `series`). A long-poll's own wait does not count against it: its bound is its `wait` (at
//! most 5 minutes) plus the request time. A write whose answer timed out may still have been
//! committed — the store call finishes on its own thread — so a client retries
//! idempotently (registration) or reads the train before retrying (override).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::api::{ApiError, AppState, MAX_WAIT};
use super::Metrics;

/// Open long-polls (`GET …/decision?wait=`) allowed at once, by default.
pub const DEFAULT_MAX_LONG_POLLS: usize = 20_000;
/// Active trains (neither done nor stopped) allowed at once, by default.
pub const DEFAULT_MAX_ACTIVE_TRAINS: usize = 50_000;
/// How long a request may take, by default (a long-poll: its wait on top).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The bounds in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Open long-polls at once; one more answers `503 too_many_long_polls`.
    pub max_long_polls: usize,
    /// Active trains; registering one more answers `503 too_many_trains`.
    pub max_active_trains: usize,
    /// How long a request may take before it answers `503 request_timeout`.
    pub request_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_long_polls: DEFAULT_MAX_LONG_POLLS,
            max_active_trains: DEFAULT_MAX_ACTIVE_TRAINS,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }
}

/// The middleware that bounds the time of a request: the handler's future is dropped and the
/// client answered `503 request_timeout` (`Retry-After: 1`) once the bound passes.
pub(crate) async fn request_time(State(shared): AppState, req: Request, next: Next) -> Response {
    let mut bound = shared.api.limits.request_timeout;
    if req
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str)
        == Some("/v1/trains/{id}/decision")
    {
        bound += MAX_WAIT;
    }
    match tokio::time::timeout(bound, next.run(req)).await {
        Ok(response) => response,
        Err(_) => {
            shared.metrics.limit_refused("request_time");
            let mut response = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "request_timeout",
                format!(
                    "the request took longer than {}s (--request-timeout); a write may still \
                     have been committed: read before retrying",
                    bound.as_secs()
                ),
            )
            .into_response();
            response
                .headers_mut()
                .insert("retry-after", HeaderValue::from_static("1"));
            response
        }
    }
}

/// The open long-polls, counted against [`Limits::max_long_polls`].
#[derive(Debug, Default)]
pub(crate) struct LongPolls {
    open: AtomicUsize,
}

/// One open long-poll; dropping it frees the slot.
#[derive(Debug)]
pub(crate) struct LongPollSlot {
    polls: Arc<LongPolls>,
    metrics: Arc<Metrics>,
}

impl LongPolls {
    /// A slot, or `None` when `max` long-polls are open (the refusal is counted).
    pub(crate) fn acquire(
        self: &Arc<Self>,
        max: usize,
        metrics: &Arc<Metrics>,
    ) -> Option<LongPollSlot> {
        let taken = self
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                (open < max).then_some(open + 1)
            });
        match taken {
            Ok(_) => {
                metrics.long_polls_add(1);
                Some(LongPollSlot {
                    polls: Arc::clone(self),
                    metrics: Arc::clone(metrics),
                })
            }
            Err(_) => {
                metrics.limit_refused("long_polls");
                None
            }
        }
    }
}

impl Drop for LongPollSlot {
    fn drop(&mut self) {
        self.polls.open.fetch_sub(1, Ordering::AcqRel);
        self.metrics.long_polls_add(-1);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt as _;

    use super::*;
    use crate::daemon::api::tests::{train, UNREACHABLE};
    use crate::daemon::tests::{config_yaml, harness, send};
    use crate::daemon::ApiOptions;

    fn limited(max_long_polls: usize, max_active_trains: usize) -> ApiOptions {
        ApiOptions {
            limits: Limits {
                max_long_polls,
                max_active_trains,
                ..Limits::default()
            },
            ..ApiOptions::default()
        }
    }

    fn metrics_text(h: &crate::daemon::tests::Harness) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &h.shared().registry).unwrap();
        text
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_poll_over_the_bound_is_refused_until_one_ends() {
        let h = harness(&config_yaml(UNREACHABLE), limited(2, 10)).await;
        let (status, _) = h.call("POST", "/v1/trains", Some(train("t-1")), None).await;
        assert_eq!(status, StatusCode::CREATED);
        let poll = "/v1/trains/t-1/decision?wait=60s&after_seq=0";
        let held: Vec<_> = (0..2)
            .map(|_| {
                let router = h.router.clone();
                let req = Request::get(poll).body(Body::empty()).unwrap();
                tokio::spawn(async move { send(&router, req).await.0 })
            })
            .collect();
        // Both are open once the gauge says so.
        while !metrics_text(&h).contains("gate_long_polls 2\n") {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let (status, err) = h.call("GET", poll, None, None).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(err["error"]["code"], "too_many_long_polls");
        let (status, _) = h.call("GET", "/v1/trains/t-1/decision", None, None).await;
        assert_eq!(status, StatusCode::OK, "a plain read is no long-poll");
        let text = metrics_text(&h);
        assert!(
            text.contains("gate_limit_refusals_total{limit=\"long_polls\"} 1\n"),
            "{text}"
        );
        for poll in held {
            assert_eq!(
                poll.await.unwrap(),
                StatusCode::OK,
                "answered at the deadline"
            );
        }
        assert!(metrics_text(&h).contains("gate_long_polls 0\n"));
        let (status, _) = h
            .call(
                "GET",
                "/v1/trains/t-1/decision?wait=1s&after_seq=0",
                None,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "slots are given back");
    }

    #[tokio::test]
    async fn registration_over_the_active_bound_is_refused_with_retry_after() {
        let h = harness(&config_yaml(UNREACHABLE), limited(10, 2)).await;
        for id in ["t-1", "t-2"] {
            let (status, _) = h.call("POST", "/v1/trains", Some(train(id)), None).await;
            assert_eq!(status, StatusCode::CREATED);
        }
        let req = Request::post("/v1/trains")
            .header("content-type", "application/json")
            .body(Body::from(train("t-3").to_string()))
            .unwrap();
        let response = h.router.clone().oneshot(req).await.unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()["retry-after"], "60");
        let (status, err) = h.call("POST", "/v1/trains", Some(train("t-3")), None).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(err["error"]["code"], "too_many_trains");
        // The same body again is still idempotent; a stopped train frees its place.
        let (status, _) = h.call("POST", "/v1/trains", Some(train("t-1")), None).await;
        assert_eq!(status, StatusCode::OK);
        let (status, _) = h.call("DELETE", "/v1/trains/t-2", None, None).await;
        assert_eq!(status, StatusCode::OK);
        let (status, _) = h.call("POST", "/v1/trains", Some(train("t-3")), None).await;
        assert_eq!(status, StatusCode::CREATED);
        let text = metrics_text(&h);
        assert!(
            text.contains("gate_limit_refusals_total{limit=\"active_trains\"} 2\n"),
            "{text}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_over_the_time_bound_is_answered_503_but_a_long_poll_may_wait() {
        // A Prometheus that accepts connections and never answers.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", silent.local_addr().unwrap());
        let api = ApiOptions {
            limits: Limits {
                request_timeout: Duration::from_secs(2),
                ..Limits::default()
            },
            ..ApiOptions::default()
        };
        let h = harness(&config_yaml(&url), api).await;
        let (status, _) = h.call("POST", "/v1/trains", Some(train("t-1")), None).await;
        assert_eq!(status, StatusCode::CREATED);
        let req = Request::get("/v1/trains/t-1/series")
            .body(Body::empty())
            .unwrap();
        let response = h.router.clone().oneshot(req).await.unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()["retry-after"], "1");
        let (status, err) = h.call("GET", "/v1/trains/t-1/series", None, None).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(err["error"]["code"], "request_timeout");
        assert!(
            metrics_text(&h).contains("gate_limit_refusals_total{limit=\"request_time\"} 2\n"),
            "{}",
            metrics_text(&h)
        );
        // A long-poll's wait does not count against the bound.
        let started = tokio::time::Instant::now();
        let (status, _) = h
            .call(
                "GET",
                "/v1/trains/t-1/decision?wait=10s&after_seq=0",
                None,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        assert!(started.elapsed() >= Duration::from_secs(10));
        drop(silent);
    }
}
