//! The HTTP client for the Prometheus query API: instant queries, retries, typed errors.
//!
//! This module talks HTTP to a Prometheus-compatible server (Prometheus, Thanos Query, Mimir,
//! VictoriaMetrics) and nothing else. The planner hands it PromQL strings and an evaluation
//! time; it hands back parsed results ([`QueryResponse`]) or a [`PromError`] that says, in one
//! line a person understands, what went wrong, where (the URL, never its credentials) and for
//! which query. It knows nothing about trains, SLOs or decisions.
//!
//! Design choices a newcomer may question:
//!
//! * **POST with a form body**, not GET: the planner batches many trains into one regex
//!   matcher, so queries can be longer than the URL limits of proxies in front of Prometheus.
//!   The query API accepts both.
//! * **Retries only for transient failures** (connection errors, timeouts, 502/503/504 and
//!   errors while sending), bounded both by a number of attempts and by a total time budget
//!   ([`RetryPolicy`]), so one evaluation can never hang a scheduler tick. A 4xx (a bad query,
//!   an execution error) is the same on every attempt and is reported at once.
//! * **Our own per-attempt timeout** (a tokio timer around sending *and* reading the body)
//!   rather than reqwest's: the same clock drives the backoff sleeps and the budget, and the
//!   timeout is also sent as Prometheus' `timeout` parameter so the server stops evaluating a
//!   query nobody waits for any more.
//! * **Hand-written deserialization of sample pairs**: a `[1793534400.0, "0.5"]` pair is read
//!   straight into two `f64`s without allocating the value string, because a cycle of the daemon
//!   parses vectors of thousands of series. Only the label maps allocate.
//! * **No environment access**: the bearer token is passed in by the caller, who reads
//!   `bearer_token_env`; the client stays testable and free of globals.
//!
//! The files: `client` sends queries and retries them; `retry` is the retry policy (attempts,
//! backoff, time budget); `response` reads the query API's JSON into [`QueryData`]; `error`
//! holds [`PromError`] and what one failed attempt came to.

mod client;
mod error;
mod response;
mod retry;

pub use client::{AttemptReport, PrometheusClient};
pub use error::{AttemptOutcome, PromError};
pub use response::{parse_response_body, Labels, Point, QueryData, QueryResponse, Sample, Series};
pub use retry::RetryPolicy;
