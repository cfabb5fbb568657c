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

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use gate_rules::config::PrometheusConfig;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION};
use reqwest::{StatusCode, Url};
use serde::de::{self, Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde::Deserialize;
use tokio::time::Instant;

/// The longest query text shown in an error message; longer queries are shortened with `…`.
const MAX_QUERY_IN_MESSAGE: usize = 240;
/// The longest body excerpt shown in an error message.
const MAX_BODY_IN_MESSAGE: usize = 200;

/// How a query is retried after a transient failure.
///
/// Attempt `n` (1-based) that fails transiently is followed by a sleep of
/// `initial_backoff × 2^(n−1)`, capped at `max_backoff`, then attempt `n+1`, as long as fewer
/// than `max_attempts` attempts were made and the total time stays within `max_elapsed`. Each
/// attempt's timeout is the configured timeout, shortened to what is left of `max_elapsed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, including the first (at least 1).
    pub max_attempts: u32,
    /// Sleep after the first failed attempt.
    pub initial_backoff: Duration,
    /// Upper bound of one sleep.
    pub max_backoff: Duration,
    /// Total time budget for all attempts and sleeps; `None` means twice the per-attempt
    /// timeout.
    pub max_elapsed: Option<Duration>,
}

impl Default for RetryPolicy {
    /// Three attempts, backoff 250 ms then 500 ms, within twice the per-attempt timeout.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(2),
            max_elapsed: None,
        }
    }
}

impl RetryPolicy {
    /// A policy that makes exactly one attempt.
    pub fn no_retries() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        }
    }

    /// The sleep after failed attempt number `failed_attempt` (1-based).
    pub fn backoff(&self, failed_attempt: u32) -> Duration {
        let doublings = failed_attempt.saturating_sub(1).min(31);
        self.initial_backoff
            .saturating_mul(1u32 << doublings)
            .min(self.max_backoff)
    }

    /// The total time budget for a client whose per-attempt timeout is `timeout`.
    pub fn budget(&self, timeout: Duration) -> Duration {
        self.max_elapsed.unwrap_or(timeout.saturating_mul(2))
    }
}

/// The parsed answer to an instant query.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryResponse {
    /// The result, by result type.
    pub data: QueryData,
    /// Warnings the server attached (e.g. partial responses from Thanos or Mimir).
    pub warnings: Vec<String>,
    /// Informational notices the server attached (newer Prometheus versions).
    pub infos: Vec<String>,
    /// Time from the first attempt to the parsed answer, retries and backoff included.
    pub elapsed: Duration,
    /// How many HTTP requests this answer took (1 when the first one succeeded).
    pub attempts: u32,
}

/// The `data` of a successful query, by `resultType`.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryData {
    /// An instant vector: one sample per series.
    Vector(Vec<Sample>),
    /// A range vector: several points per series.
    Matrix(Vec<Series>),
    /// A single number.
    Scalar(Point),
    /// A string literal result.
    String {
        /// Unix time of the result, in seconds.
        timestamp: f64,
        /// The string.
        value: String,
    },
}

impl QueryData {
    /// The Prometheus name of the result type: `vector`, `matrix`, `scalar` or `string`.
    pub fn kind(&self) -> &'static str {
        match self {
            QueryData::Vector(_) => "vector",
            QueryData::Matrix(_) => "matrix",
            QueryData::Scalar(_) => "scalar",
            QueryData::String { .. } => "string",
        }
    }

    /// The samples, if this is an instant vector.
    pub fn into_vector(self) -> Option<Vec<Sample>> {
        match self {
            QueryData::Vector(samples) => Some(samples),
            _ => None,
        }
    }

    /// The value, if this is a scalar.
    pub fn scalar(&self) -> Option<f64> {
        match self {
            QueryData::Scalar(point) => Some(point.value),
            _ => None,
        }
    }
}

/// One series of an instant vector.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The series' labels (including `__name__` when the query keeps it).
    pub metric: BTreeMap<String, String>,
    /// Unix time of the sample, in seconds.
    pub timestamp: f64,
    /// The value; may be NaN or ±Inf.
    pub value: f64,
}

/// One series of a range vector.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The series' labels.
    pub metric: BTreeMap<String, String>,
    /// The points, in time order.
    pub values: Vec<Point>,
}

/// A timestamped number.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// Unix time, in seconds.
    pub timestamp: f64,
    /// The value; may be NaN or ±Inf.
    pub value: f64,
}

/// What one HTTP attempt came to, for the daemon's metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AttemptOutcome {
    /// A successful, parsed answer.
    Success,
    /// The server answered with this non-success status (or 2xx with `status: error`).
    HttpStatus(u16),
    /// No complete answer within the attempt's timeout.
    Timeout,
    /// The connection could not be established (refused, DNS, TLS handshake).
    Connect,
    /// The request or the response body failed in transit.
    Transport,
    /// The server answered 2xx with a body that is not a valid query response.
    BadResponse,
}

impl AttemptOutcome {
    /// A short, stable label for metrics: `success`, `http_error`, `timeout`, `connect_error`,
    /// `transport_error` or `bad_response`.
    pub fn as_str(&self) -> &'static str {
        match self {
            AttemptOutcome::Success => "success",
            AttemptOutcome::HttpStatus(_) => "http_error",
            AttemptOutcome::Timeout => "timeout",
            AttemptOutcome::Connect => "connect_error",
            AttemptOutcome::Transport => "transport_error",
            AttemptOutcome::BadResponse => "bad_response",
        }
    }
}

/// One HTTP attempt, reported to the observer installed with
/// [`PrometheusClient::with_observer`].
#[derive(Debug, Clone, Copy)]
pub struct AttemptReport<'a> {
    /// The PromQL sent.
    pub query: &'a str,
    /// Attempt number within this query, from 1.
    pub attempt: u32,
    /// Time from sending the request to the outcome.
    pub elapsed: Duration,
    /// What the attempt came to.
    pub outcome: AttemptOutcome,
}

type Observer = Arc<dyn Fn(&AttemptReport<'_>) + Send + Sync>;

/// Why a query failed. Every message names the endpoint (without credentials) and the query.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PromError {
    /// The client could not be built from the configuration.
    #[error("invalid Prometheus client configuration: {reason}")]
    Config {
        /// What is wrong.
        reason: String,
    },
    /// No connection could be made (refused, DNS failure, TLS handshake).
    #[error("cannot connect to Prometheus at {url}: {reason}{}; query: {}", attempts_note(*.attempts), shorten(.query))]
    Connect {
        /// The endpoint, without credentials.
        url: String,
        /// The PromQL.
        query: String,
        /// The innermost cause, e.g. `Connection refused (os error 111)`.
        reason: String,
        /// HTTP attempts made.
        attempts: u32,
        /// The transport error (its URL removed).
        #[source]
        source: reqwest::Error,
    },
    /// No complete answer within the timeout.
    #[error("Prometheus at {url} did not answer within {}{}; query: {}", fmt_duration(*.timeout), attempts_note(*.attempts), shorten(.query))]
    Timeout {
        /// The endpoint, without credentials.
        url: String,
        /// The PromQL.
        query: String,
        /// The timeout of the last attempt.
        timeout: Duration,
        /// HTTP attempts made.
        attempts: u32,
    },
    /// The request or response failed in transit after connecting.
    #[error("request to Prometheus at {url} failed: {reason}{}; query: {}", attempts_note(*.attempts), shorten(.query))]
    Transport {
        /// The endpoint, without credentials.
        url: String,
        /// The PromQL.
        query: String,
        /// The innermost cause.
        reason: String,
        /// HTTP attempts made.
        attempts: u32,
        /// The transport error (its URL removed).
        #[source]
        source: reqwest::Error,
    },
    /// The server refused the query: a non-2xx status, or `status: "error"` in the body.
    #[error("Prometheus at {url} answered HTTP {status}{}: {message}{}; query: {}", error_type_note(.error_type), attempts_note(*.attempts), shorten(.query))]
    Http {
        /// The endpoint, without credentials.
        url: String,
        /// The PromQL.
        query: String,
        /// The HTTP status code.
        status: u16,
        /// Prometheus' `errorType` (`bad_data`, `execution`, `timeout`, ...), when given.
        error_type: Option<String>,
        /// Prometheus' `error` text, or an excerpt of the body when it is not a Prometheus
        /// error document.
        message: String,
        /// HTTP attempts made.
        attempts: u32,
    },
    /// The server answered 2xx with something that is not a query response.
    #[error("Prometheus at {url} sent an unreadable answer (HTTP {status}): {reason}; query: {}", shorten(.query))]
    BadResponse {
        /// The endpoint, without credentials.
        url: String,
        /// The PromQL.
        query: String,
        /// The HTTP status code.
        status: u16,
        /// What is wrong with the body.
        reason: String,
    },
}

impl PromError {
    /// Whether Prometheus could not be reached at all: connection failures (refused, DNS),
    /// timeouts, failures in transit, and gateway statuses 502/503/504 that persisted through
    /// the retries. The CLI maps these to exit code 6.
    pub fn is_unreachable(&self) -> bool {
        match self {
            PromError::Connect { .. } | PromError::Timeout { .. } | PromError::Transport { .. } => {
                true
            }
            PromError::Http { status, .. } => is_gateway_status(*status),
            PromError::Config { .. } | PromError::BadResponse { .. } => false,
        }
    }

    /// The PromQL that failed, if the error concerns a query.
    pub fn query(&self) -> Option<&str> {
        match self {
            PromError::Connect { query, .. }
            | PromError::Timeout { query, .. }
            | PromError::Transport { query, .. }
            | PromError::Http { query, .. }
            | PromError::BadResponse { query, .. } => Some(query),
            PromError::Config { .. } => None,
        }
    }

    /// The HTTP status the server answered with, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            PromError::Http { status, .. } | PromError::BadResponse { status, .. } => Some(*status),
            _ => None,
        }
    }
}

fn attempts_note(attempts: u32) -> String {
    if attempts > 1 {
        format!(" (after {attempts} attempts)")
    } else {
        String::new()
    }
}

fn error_type_note(error_type: &Option<String>) -> String {
    match error_type {
        Some(t) if !t.is_empty() => format!(" ({t})"),
        _ => String::new(),
    }
}

/// A query shortened for a one-line message.
fn shorten(query: &str) -> String {
    let one_line: String = query.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.char_indices().nth(MAX_QUERY_IN_MESSAGE) {
        Some((cut, _)) => format!("{}…", &one_line[..cut]),
        None => one_line,
    }
}

fn fmt_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 && d.as_secs() > 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

fn is_gateway_status(status: u16) -> bool {
    matches!(status, 502..=504)
}

/// A client for one Prometheus-compatible query API.
///
/// Cheap to share behind an `Arc`: it holds a connection pool and an atomic counter.
pub struct PrometheusClient {
    http: reqwest::Client,
    query_url: Url,
    range_url: Url,
    shown_url: String,
    timeout: Duration,
    headers: HeaderMap,
    retry: RetryPolicy,
    observer: Option<Observer>,
    queries_sent: AtomicU64,
}

impl fmt::Debug for PrometheusClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrometheusClient")
            .field("url", &self.shown_url)
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl PrometheusClient {
    /// Builds a client for `config`, sending `bearer_token` (already read from
    /// `bearer_token_env` by the caller) as `Authorization: Bearer …` when given.
    ///
    /// Fails on a URL that is not `http(s)://…`, or on header names or values HTTP forbids.
    pub fn new(config: &PrometheusConfig, bearer_token: Option<String>) -> Result<Self, PromError> {
        let config_error = |reason: String| PromError::Config { reason };
        let base = Url::parse(&config.url).map_err(|e| {
            config_error(format!(
                "`{}` is not a URL: {e}",
                strip_userinfo_str(&config.url)
            ))
        })?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(config_error(format!(
                "`{}` must start with http:// or https://",
                strip_userinfo(&base)
            )));
        }
        let query_url = join_api_path(&base, "api/v1/query");
        let range_url = join_api_path(&base, "api/v1/query_range");

        let mut headers = HeaderMap::new();
        for (name, value) in &config.headers {
            let header_name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| config_error(format!("`{name}` is not a valid HTTP header name")))?;
            let header_value = HeaderValue::from_str(value).map_err(|_| {
                config_error(format!(
                    "the value of header `{name}` is not a valid HTTP header value"
                ))
            })?;
            headers.insert(header_name, header_value);
        }
        if let Some(token) = bearer_token {
            let mut value =
                HeaderValue::from_str(&format!("Bearer {}", token.trim())).map_err(|_| {
                    config_error(
                        "the bearer token contains characters not allowed in an HTTP header".into(),
                    )
                })?;
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }

        let timeout = config.timeout.as_duration();
        let http = reqwest::Client::builder()
            .connect_timeout(timeout)
            .build()
            .map_err(|e| {
                config_error(format!(
                    "cannot build the HTTP client: {}",
                    innermost_cause(&e)
                ))
            })?;

        Ok(PrometheusClient {
            http,
            shown_url: strip_userinfo(&query_url),
            query_url,
            range_url,
            timeout,
            headers,
            retry: RetryPolicy::default(),
            observer: None,
            queries_sent: AtomicU64::new(0),
        })
    }

    /// Replaces the retry policy.
    pub fn with_retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Installs a callback invoked after every HTTP attempt (latency and outcome), for metrics.
    pub fn with_observer(
        mut self,
        observer: impl Fn(&AttemptReport<'_>) + Send + Sync + 'static,
    ) -> Self {
        self.observer = Some(Arc::new(observer));
        self
    }

    /// The query endpoint, without credentials (for logs and messages).
    pub fn url(&self) -> &str {
        &self.shown_url
    }

    /// The retry policy in force.
    pub fn retry_policy(&self) -> RetryPolicy {
        self.retry
    }

    /// HTTP requests sent since the client was built, retries included.
    pub fn queries_sent(&self) -> u64 {
        self.queries_sent.load(Ordering::Relaxed)
    }

    /// Runs an instant query of `promql` evaluated at `time`.
    ///
    /// Transient failures are retried according to the [`RetryPolicy`]; the error returned is
    /// the last attempt's.
    pub async fn query(
        &self,
        promql: &str,
        time: DateTime<Utc>,
    ) -> Result<QueryResponse, PromError> {
        let params = [("time", format_unix_time(time))];
        self.send(&self.query_url, promql, &params).await
    }

    /// Runs a range query (`/api/v1/query_range`) of `promql` at `start`, `start + step`, …
    /// up to `end`; the answer is a matrix. Retried like [`PrometheusClient::query`].
    /// Prometheus refuses more than 11,000 points per series: callers chunk longer ranges.
    pub async fn query_range(
        &self,
        promql: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        step: Duration,
    ) -> Result<QueryResponse, PromError> {
        let params = [
            ("start", format_unix_time(start)),
            ("end", format_unix_time(end)),
            ("step", format_timeout(step)),
        ];
        self.send(&self.range_url, promql, &params).await
    }

    /// Sends one query to `url` with `params`, retrying transient failures.
    async fn send(
        &self,
        url: &Url,
        promql: &str,
        params: &[(&str, String)],
    ) -> Result<QueryResponse, PromError> {
        let started = Instant::now();
        let budget = self.retry.budget(self.timeout);
        let max_attempts = self.retry.max_attempts.max(1);
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let remaining = budget.saturating_sub(started.elapsed());
            let attempt_timeout = self.timeout.min(remaining);
            let attempt_started = Instant::now();
            let result = self.attempt(url, promql, params, attempt_timeout).await;
            if let Some(observer) = &self.observer {
                observer(&AttemptReport {
                    query: promql,
                    attempt,
                    elapsed: attempt_started.elapsed(),
                    outcome: match &result {
                        Ok(_) => AttemptOutcome::Success,
                        Err(failure) => failure.outcome(),
                    },
                });
            }
            match result {
                Ok(parsed) => {
                    return Ok(QueryResponse {
                        data: parsed.data,
                        warnings: parsed.warnings,
                        infos: parsed.infos,
                        elapsed: started.elapsed(),
                        attempts: attempt,
                    })
                }
                Err(failure) => {
                    if failure.is_transient() && attempt < max_attempts {
                        let backoff = self.retry.backoff(attempt);
                        // Retry only if, after the sleep, a meaningful part of the budget is left.
                        let left_after_sleep = budget
                            .saturating_sub(started.elapsed())
                            .saturating_sub(backoff);
                        if left_after_sleep >= Duration::from_millis(10) {
                            tokio::time::sleep(backoff).await;
                            continue;
                        }
                    }
                    return Err(failure.into_error(&self.shown_url, promql, attempt));
                }
            }
        }
    }

    /// One HTTP request and its parsed answer.
    async fn attempt(
        &self,
        url: &Url,
        promql: &str,
        params: &[(&str, String)],
        timeout: Duration,
    ) -> Result<Parsed, Failure> {
        let timeout_param = format_timeout(timeout);
        let mut form: Vec<(&str, &str)> = vec![("query", promql), ("timeout", &timeout_param)];
        form.extend(params.iter().map(|(k, v)| (*k, v.as_str())));
        let request = self
            .http
            .post(url.clone())
            .headers(self.headers.clone())
            .form(&form);
        self.queries_sent.fetch_add(1, Ordering::Relaxed);
        let exchange = async {
            let response = request.send().await?;
            let status = response.status();
            let body = response.bytes().await?;
            Ok::<_, reqwest::Error>((status, body))
        };
        match tokio::time::timeout(timeout, exchange).await {
            Err(_) => Err(Failure::Timeout(timeout)),
            Ok(Err(e)) if e.is_timeout() => Err(Failure::Timeout(timeout)),
            Ok(Err(e)) if e.is_connect() => Err(Failure::Connect(e.without_url())),
            Ok(Err(e)) => Err(Failure::Transport(e.without_url())),
            Ok(Ok((status, body))) => interpret(status, &body),
        }
    }
}

/// The body of a successful answer.
#[derive(Debug)]
struct Parsed {
    data: QueryData,
    warnings: Vec<String>,
    infos: Vec<String>,
}

/// What went wrong in one attempt, before the query context is attached.
#[derive(Debug)]
enum Failure {
    Connect(reqwest::Error),
    Transport(reqwest::Error),
    Timeout(Duration),
    Http {
        status: u16,
        error_type: Option<String>,
        message: String,
    },
    BadResponse {
        status: u16,
        reason: String,
    },
}

impl Failure {
    fn is_transient(&self) -> bool {
        match self {
            Failure::Connect(_) | Failure::Transport(_) | Failure::Timeout(_) => true,
            Failure::Http { status, .. } => is_gateway_status(*status),
            Failure::BadResponse { .. } => false,
        }
    }

    fn outcome(&self) -> AttemptOutcome {
        match self {
            Failure::Connect(_) => AttemptOutcome::Connect,
            Failure::Transport(_) => AttemptOutcome::Transport,
            Failure::Timeout(_) => AttemptOutcome::Timeout,
            Failure::Http { status, .. } => AttemptOutcome::HttpStatus(*status),
            Failure::BadResponse { .. } => AttemptOutcome::BadResponse,
        }
    }

    fn into_error(self, url: &str, query: &str, attempts: u32) -> PromError {
        let url = url.to_string();
        let query = query.to_string();
        match self {
            Failure::Connect(source) => PromError::Connect {
                url,
                query,
                reason: innermost_cause(&source),
                attempts,
                source,
            },
            Failure::Transport(source) => PromError::Transport {
                url,
                query,
                reason: innermost_cause(&source),
                attempts,
                source,
            },
            Failure::Timeout(timeout) => PromError::Timeout {
                url,
                query,
                timeout,
                attempts,
            },
            Failure::Http {
                status,
                error_type,
                message,
            } => PromError::Http {
                url,
                query,
                status,
                error_type,
                message,
                attempts,
            },
            Failure::BadResponse { status, reason } => PromError::BadResponse {
                url,
                query,
                status,
                reason,
            },
        }
    }
}

/// Turns a status and body into parsed data or a failure.
fn interpret(status: StatusCode, body: &[u8]) -> Result<Parsed, Failure> {
    let code = status.as_u16();
    if !status.is_success() {
        let (error_type, message) = match serde_json::from_slice::<RawResponse>(body) {
            Ok(RawResponse {
                error: Some(error),
                error_type,
                ..
            }) => (error_type, error),
            _ if body.iter().all(u8::is_ascii_whitespace) => (
                None,
                status
                    .canonical_reason()
                    .unwrap_or("no reason given")
                    .to_string(),
            ),
            _ => (None, body_excerpt(body)),
        };
        return Err(Failure::Http {
            status: code,
            error_type,
            message,
        });
    }
    let raw: RawResponse = serde_json::from_slice(body).map_err(|e| Failure::BadResponse {
        status: code,
        reason: format!(
            "not a Prometheus JSON response ({e}): {}",
            body_excerpt(body)
        ),
    })?;
    match raw.status.as_str() {
        "success" => {}
        "error" => {
            return Err(Failure::Http {
                status: code,
                error_type: raw.error_type,
                message: raw
                    .error
                    .unwrap_or_else(|| "no error message given".to_string()),
            })
        }
        other => {
            return Err(Failure::BadResponse {
                status: code,
                reason: format!("unknown status `{}`", other.escape_debug()),
            })
        }
    }
    let data = raw.data.ok_or_else(|| Failure::BadResponse {
        status: code,
        reason: "status is success but there is no `data`".to_string(),
    })?;
    let data = data.into_public().map_err(|reason| Failure::BadResponse {
        status: code,
        reason,
    })?;
    Ok(Parsed {
        data,
        warnings: raw.warnings,
        infos: raw.infos,
    })
}

/// Parses a complete query API body, as the client does for a 2xx answer.
///
/// Exposed for benchmarks and for tools that read saved responses.
pub fn parse_response_body(body: &[u8]) -> Result<(QueryData, Vec<String>), String> {
    match interpret(StatusCode::OK, body) {
        Ok(parsed) => Ok((parsed.data, parsed.warnings)),
        Err(Failure::Http {
            error_type,
            message,
            ..
        }) => Err(format!("error{}: {message}", error_type_note(&error_type))),
        Err(Failure::BadResponse { reason, .. }) => Err(reason),
        Err(other) => Err(format!("{other:?}")),
    }
}

fn body_excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.is_empty() {
        return "empty body".to_string();
    }
    match one_line.char_indices().nth(MAX_BODY_IN_MESSAGE) {
        Some((cut, _)) => format!("`{}…`", &one_line[..cut]),
        None => format!("`{one_line}`"),
    }
}

/// The last error in a `source()` chain, which names the actual cause
/// (e.g. `Connection refused (os error 111)`).
fn innermost_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut current = error;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}

/// `base` with `path` appended below its own path (keeping a prefix such as `/prometheus`).
fn join_api_path(base: &Url, path: &str) -> Url {
    let mut url = base.clone();
    let prefix = base.path().trim_end_matches('/');
    url.set_path(&format!("{prefix}/{path}"));
    url
}

/// The URL as text without user name or password.
fn strip_userinfo(url: &Url) -> String {
    let mut shown = url.clone();
    // Both only fail for URLs that cannot carry credentials, which then have none to strip.
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.to_string()
}

/// Like [`strip_userinfo`] for text that did not parse as a URL.
fn strip_userinfo_str(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}{}", &url[..scheme_end + 3], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

/// Unix seconds with milliseconds, as the query API's `time` parameter.
fn format_unix_time(time: DateTime<Utc>) -> String {
    let millis = time.timestamp_millis();
    format!("{}.{:03}", millis.div_euclid(1000), millis.rem_euclid(1000))
}

/// Seconds with milliseconds, as the query API's `timeout` parameter.
fn format_timeout(timeout: Duration) -> String {
    format!("{}.{:03}", timeout.as_secs(), timeout.subsec_millis())
}

// ---------------------------------------------------------------------------------------------
// Wire format.

#[derive(Deserialize)]
struct RawResponse {
    status: String,
    #[serde(default)]
    data: Option<RawData>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    warnings: Vec<String>,
    #[serde(default)]
    infos: Vec<String>,
}

#[derive(Deserialize)]
#[serde(tag = "resultType", content = "result", rename_all = "lowercase")]
enum RawData {
    Vector(Vec<RawSample>),
    Matrix(Vec<RawSeries>),
    Scalar(Point),
    String(StringPoint),
}

#[derive(Deserialize)]
struct RawSample {
    #[serde(default)]
    metric: BTreeMap<String, String>,
    #[serde(default)]
    value: Option<Point>,
    #[serde(default)]
    histogram: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct RawSeries {
    #[serde(default)]
    metric: BTreeMap<String, String>,
    #[serde(default)]
    values: Vec<Point>,
    #[serde(default)]
    histograms: Option<IgnoredAny>,
}

impl RawData {
    fn into_public(self) -> Result<QueryData, String> {
        let histogram_error = |metric: &BTreeMap<String, String>| {
            format!(
                "series {} holds native histogram samples, which gate cannot use as SLI counters",
                format_labels(metric)
            )
        };
        Ok(match self {
            RawData::Vector(raw) => {
                let mut samples = Vec::with_capacity(raw.len());
                for sample in raw {
                    match sample.value {
                        Some(point) => samples.push(Sample {
                            metric: sample.metric,
                            timestamp: point.timestamp,
                            value: point.value,
                        }),
                        None if sample.histogram.is_some() => {
                            return Err(histogram_error(&sample.metric))
                        }
                        None => {
                            return Err(format!(
                                "series {} has no `value`",
                                format_labels(&sample.metric)
                            ))
                        }
                    }
                }
                QueryData::Vector(samples)
            }
            RawData::Matrix(raw) => {
                let mut series = Vec::with_capacity(raw.len());
                for s in raw {
                    if s.histograms.is_some() {
                        return Err(histogram_error(&s.metric));
                    }
                    series.push(Series {
                        metric: s.metric,
                        values: s.values,
                    });
                }
                QueryData::Matrix(series)
            }
            RawData::Scalar(point) => QueryData::Scalar(point),
            RawData::String(StringPoint { timestamp, value }) => {
                QueryData::String { timestamp, value }
            }
        })
    }
}

fn format_labels(metric: &BTreeMap<String, String>) -> String {
    let inner: Vec<String> = metric.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", inner.join(", "))
}

impl<'de> Deserialize<'de> for Point {
    /// Reads `[<unix seconds>, "<value>"]` without allocating the value string.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PointVisitor;
        impl<'de> Visitor<'de> for PointVisitor {
            type Value = Point;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a [timestamp, \"value\"] pair")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Point, A::Error> {
                let timestamp: f64 = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(0, &self))?;
                let SampleValue(value) = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(1, &self))?;
                if seq.next_element::<IgnoredAny>()?.is_some() {
                    return Err(de::Error::invalid_length(3, &self));
                }
                Ok(Point { timestamp, value })
            }
        }
        deserializer.deserialize_seq(PointVisitor)
    }
}

/// A sample value: a string holding a float (`"1.5"`, `"NaN"`, `"+Inf"`, `"-Inf"`), read
/// from a borrowed `&str` when the JSON has no escapes.
struct SampleValue(f64);

impl<'de> Deserialize<'de> for SampleValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ValueVisitor;
        impl<'de> Visitor<'de> for ValueVisitor {
            type Value = SampleValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a sample value string such as \"1.5\", \"NaN\" or \"+Inf\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<SampleValue, E> {
                parse_sample_value(v)
                    .map(SampleValue)
                    .ok_or_else(|| E::invalid_value(de::Unexpected::Str(v), &self))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<SampleValue, E> {
                Ok(SampleValue(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<SampleValue, E> {
                Ok(SampleValue(v as f64))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<SampleValue, E> {
                Ok(SampleValue(v as f64))
            }
        }
        deserializer.deserialize_any(ValueVisitor)
    }
}

/// Parses Prometheus' float spelling: Go's `strconv.FormatFloat` output plus `NaN`, `+Inf`,
/// `-Inf`.
fn parse_sample_value(text: &str) -> Option<f64> {
    match text {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        _ => text.parse::<f64>().ok(),
    }
}

/// `[<unix seconds>, "<string>"]`, the result of a string query.
struct StringPoint {
    timestamp: f64,
    value: String,
}

impl<'de> Deserialize<'de> for StringPoint {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StringPointVisitor;
        impl<'de> Visitor<'de> for StringPointVisitor {
            type Value = StringPoint;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a [timestamp, \"string\"] pair")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<StringPoint, A::Error> {
                let timestamp: f64 = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(0, &self))?;
                let value: String = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(1, &self))?;
                if seq.next_element::<IgnoredAny>()?.is_some() {
                    return Err(de::Error::invalid_length(3, &self));
                }
                Ok(StringPoint { timestamp, value })
            }
        }
        deserializer.deserialize_seq(StringPointVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gate_rules::duration::PromDuration;
    use std::sync::Mutex;
    use wiremock::matchers::{header, method, path};
    use wiremock::{Mock, MockServer, Request, ResponseTemplate};

    /// 2026-11-01T12:00:00Z.
    fn eval_time() -> DateTime<Utc> {
        DateTime::from_timestamp(1_793_534_400, 0).expect("valid time")
    }

    fn config(url: &str, timeout: Duration) -> PrometheusConfig {
        PrometheusConfig {
            url: url.to_string(),
            timeout: PromDuration::from_duration(timeout).expect("non-zero timeout"),
            headers: BTreeMap::new(),
            bearer_token_env: None,
        }
    }

    fn fast_retries() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(20),
            max_elapsed: Some(Duration::from_secs(10)),
        }
    }

    fn client(url: &str) -> PrometheusClient {
        PrometheusClient::new(&config(url, Duration::from_secs(5)), None)
            .expect("client")
            .with_retry_policy(fast_retries())
    }

    fn vector_body(result: serde_json::Value) -> serde_json::Value {
        serde_json::json!({"status": "success", "data": {"resultType": "vector", "result": result}})
    }

    fn form_of(request: &Request) -> BTreeMap<String, String> {
        let body = String::from_utf8(request.body.clone()).expect("utf-8 form body");
        Url::parse(&format!("http://x/?{body}"))
            .expect("form body parses as a query string")
            .query_pairs()
            .into_owned()
            .collect()
    }

    #[tokio::test]
    async fn retries_a_503_then_returns_the_answer() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/api/v1/query"))
            .respond_with(ResponseTemplate::new(503).set_body_string("overloaded"))
            .up_to_n_times(1)
            .with_priority(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/api/v1/query"))
            .respond_with(ResponseTemplate::new(200).set_body_json(vector_body(
                serde_json::json!([
                    {"metric": {"train_id": "t-1"}, "value": [1793534400, "42"]}
                ]),
            )))
            .mount(&server)
            .await;

        let client = client(&server.uri());
        let response = client
            .query("up", eval_time())
            .await
            .expect("retried to success");
        assert_eq!(response.attempts, 2);
        assert_eq!(client.queries_sent(), 2);
        assert_eq!(server.received_requests().await.expect("recorded").len(), 2);
        let samples = response.data.into_vector().expect("vector");
        assert_eq!(samples.len(), 1);
        assert_eq!(samples[0].value, 42.0);
        assert_eq!(samples[0].metric["train_id"], "t-1");
    }

    #[tokio::test]
    async fn a_422_is_not_retried_and_its_error_text_is_reported() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(422).set_body_json(serde_json::json!({
                "status": "error", "errorType": "execution",
                "error": "query processing would load too many samples into memory"
            })))
            .mount(&server)
            .await;

        let client = client(&server.uri());
        let err = client
            .query("sum(rate(x[1y]))", eval_time())
            .await
            .expect_err("422 fails");
        assert_eq!(server.received_requests().await.expect("recorded").len(), 1);
        assert_eq!(err.status(), Some(422));
        assert!(!err.is_unreachable());
        let message = err.to_string();
        assert!(message.contains("too many samples"), "{message}");
        assert!(message.contains("HTTP 422 (execution)"), "{message}");
        assert!(message.contains("sum(rate(x[1y]))"), "{message}");
        assert!(message.contains(&server.uri()), "{message}");
    }

    #[tokio::test]
    async fn a_400_bad_data_is_not_retried() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(400).set_body_json(serde_json::json!({
                "status": "error", "errorType": "bad_data",
                "error": "1:5: parse error: unexpected end of input"
            })))
            .mount(&server)
            .await;
        let client = client(&server.uri());
        let err = client
            .query("sum(", eval_time())
            .await
            .expect_err("400 fails");
        assert_eq!(client.queries_sent(), 1);
        match &err {
            PromError::Http {
                status,
                error_type,
                message,
                attempts,
                ..
            } => {
                assert_eq!(*status, 400);
                assert_eq!(error_type.as_deref(), Some("bad_data"));
                assert!(message.contains("unexpected end of input"));
                assert_eq!(*attempts, 1);
            }
            other => panic!("expected an HTTP error, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn persistent_gateway_errors_exhaust_the_attempts() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(502).set_body_string("<html>bad gateway</html>"))
            .mount(&server)
            .await;
        let client = client(&server.uri());
        let err = client
            .query("up", eval_time())
            .await
            .expect_err("502 fails");
        assert_eq!(server.received_requests().await.expect("recorded").len(), 3);
        assert!(err.is_unreachable());
        let message = err.to_string();
        assert!(message.contains("HTTP 502"), "{message}");
        assert!(message.contains("after 3 attempts"), "{message}");
        assert!(message.contains("bad gateway"), "{message}");
    }

    #[tokio::test]
    async fn a_slow_server_times_out_with_bounded_attempts() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(vector_body(serde_json::json!([])))
                    .set_delay(Duration::from_secs(30)),
            )
            .mount(&server)
            .await;
        let client =
            PrometheusClient::new(&config(&server.uri(), Duration::from_millis(150)), None)
                .expect("client")
                .with_retry_policy(RetryPolicy {
                    max_elapsed: Some(Duration::from_secs(5)),
                    ..fast_retries()
                });
        let started = std::time::Instant::now();
        let err = client
            .query("up", eval_time())
            .await
            .expect_err("times out");
        let took = started.elapsed();
        assert!(
            matches!(err, PromError::Timeout { attempts: 3, .. }),
            "{err:?}"
        );
        assert!(err.is_unreachable());
        assert_eq!(client.queries_sent(), 3);
        assert!(took < Duration::from_secs(3), "took {took:?}");
        assert!(
            err.to_string().contains("did not answer within 150ms"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn the_total_time_budget_cuts_retries_short() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(30)))
            .mount(&server)
            .await;
        // 200 ms per attempt but 300 ms in total: the second attempt gets what is left.
        let client =
            PrometheusClient::new(&config(&server.uri(), Duration::from_millis(200)), None)
                .expect("client")
                .with_retry_policy(RetryPolicy {
                    max_attempts: 10,
                    max_elapsed: Some(Duration::from_millis(300)),
                    ..fast_retries()
                });
        let started = std::time::Instant::now();
        let err = client
            .query("up", eval_time())
            .await
            .expect_err("times out");
        let took = started.elapsed();
        match err {
            PromError::Timeout { attempts, .. } => assert!(attempts <= 3, "{attempts} attempts"),
            other => panic!("expected a timeout, got {other:?}"),
        }
        assert!(took < Duration::from_millis(1500), "took {took:?}");
    }

    #[tokio::test]
    async fn a_refused_connection_is_unreachable_and_hides_credentials() {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            listener.local_addr().expect("addr").port()
        };
        let client = client(&format!("http://alice:s3cret@127.0.0.1:{port}"));
        let err = client
            .query("up{job=\"x\"}", eval_time())
            .await
            .expect_err("refused");
        assert!(
            matches!(err, PromError::Connect { attempts: 3, .. }),
            "{err:?}"
        );
        assert!(err.is_unreachable());
        let message = err.to_string();
        assert!(
            message.contains(&format!("127.0.0.1:{port}/api/v1/query")),
            "{message}"
        );
        assert!(message.contains("up{job=\"x\"}"), "{message}");
        assert!(
            !message.contains("s3cret") && !message.contains("alice"),
            "{message}"
        );
        let mut chain = String::new();
        let mut source = std::error::Error::source(&err);
        while let Some(cause) = source {
            chain.push_str(&cause.to_string());
            source = cause.source();
        }
        assert!(!chain.contains("s3cret"), "{chain}");
    }

    #[tokio::test]
    async fn garbage_bodies_are_a_clear_error_and_not_retried() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_body_string("<html>login page</html>"))
            .mount(&server)
            .await;
        let client = client(&server.uri());
        let err = client.query("up", eval_time()).await.expect_err("garbage");
        assert!(
            matches!(err, PromError::BadResponse { status: 200, .. }),
            "{err:?}"
        );
        assert!(!err.is_unreachable());
        assert_eq!(client.queries_sent(), 1);
        let message = err.to_string();
        assert!(
            message.contains("not a Prometheus JSON response"),
            "{message}"
        );
        assert!(message.contains("login page"), "{message}");
    }

    #[tokio::test]
    async fn status_error_in_a_200_is_an_error() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "status": "error", "errorType": "internal", "error": "store unavailable"
            })))
            .mount(&server)
            .await;
        let client = client(&server.uri());
        let err = client
            .query("up", eval_time())
            .await
            .expect_err("status error");
        assert_eq!(client.queries_sent(), 1);
        assert!(err.to_string().contains("store unavailable"), "{err}");
    }

    #[tokio::test]
    async fn special_values_empty_vectors_and_warnings() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(wiremock::matchers::body_string_contains("special"))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "status": "success",
                "data": {"resultType": "vector", "result": [
                    {"metric": {"train_id": "a"}, "value": [1793534400.5, "NaN"]},
                    {"metric": {"train_id": "b"}, "value": [1793534400.5, "+Inf"]},
                    {"metric": {"train_id": "c"}, "value": [1793534400.5, "-Inf"]},
                    {"metric": {"train_id": "d"}, "value": [1793534400.5, "1.5e-3"]}
                ]},
                "warnings": ["partial response: store gateway down"]
            })))
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(wiremock::matchers::body_string_contains("empty"))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(vector_body(serde_json::json!([]))),
            )
            .mount(&server)
            .await;
        let client = client(&server.uri());

        let response = client.query("special", eval_time()).await.expect("parsed");
        assert_eq!(
            response.warnings,
            vec!["partial response: store gateway down".to_string()]
        );
        let samples = response.data.into_vector().expect("vector");
        let value = |id: &str| {
            samples
                .iter()
                .find(|s| s.metric["train_id"] == id)
                .map(|s| s.value)
                .expect("series present")
        };
        assert!(value("a").is_nan());
        assert_eq!(value("b"), f64::INFINITY);
        assert_eq!(value("c"), f64::NEG_INFINITY);
        assert_eq!(value("d"), 0.0015);
        assert_eq!(samples[0].timestamp, 1_793_534_400.5);

        let empty = client.query("empty", eval_time()).await.expect("parsed");
        assert!(empty.warnings.is_empty());
        assert_eq!(empty.data, QueryData::Vector(Vec::new()));
    }

    #[tokio::test]
    async fn sends_headers_bearer_token_and_form_under_the_path_prefix() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/prometheus/api/v1/query"))
            .and(header("X-Scope-OrgID", "team-a"))
            .and(header("authorization", "Bearer tok-123"))
            .and(header("content-type", "application/x-www-form-urlencoded"))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(vector_body(serde_json::json!([]))),
            )
            .mount(&server)
            .await;
        let mut cfg = config(
            &format!("{}/prometheus/", server.uri()),
            Duration::from_secs(7),
        );
        cfg.headers.insert("X-Scope-OrgID".into(), "team-a".into());
        let client = PrometheusClient::new(&cfg, Some("tok-123".into())).expect("client");
        assert_eq!(
            client.url(),
            format!("{}/prometheus/api/v1/query", server.uri())
        );

        let query = r#"sum by (train_id) (increase(http_requests_total{code=~"5.."}[5m]))"#;
        let at = DateTime::from_timestamp(1_793_534_400, 250_000_000).expect("time");
        client.query(query, at).await.expect("matched every header");

        let requests = server.received_requests().await.expect("recorded");
        assert_eq!(requests.len(), 1);
        let form = form_of(&requests[0]);
        assert_eq!(form["query"], query);
        assert_eq!(form["time"], "1793534400.250");
        assert_eq!(form["timeout"], "7.000");
    }

    #[tokio::test]
    async fn the_observer_sees_every_attempt() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(504))
            .up_to_n_times(1)
            .with_priority(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(vector_body(serde_json::json!([]))),
            )
            .mount(&server)
            .await;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&seen);
        let client = client(&server.uri()).with_observer(move |report| {
            sink.lock().expect("lock").push((
                report.attempt,
                report.outcome,
                report.query.to_string(),
            ));
        });
        let response = client
            .query("up", eval_time())
            .await
            .expect("second attempt succeeds");
        assert!(
            response.elapsed >= Duration::from_millis(5),
            "{:?}",
            response.elapsed
        );
        let seen = seen.lock().expect("lock").clone();
        assert_eq!(
            seen,
            vec![
                (1, AttemptOutcome::HttpStatus(504), "up".to_string()),
                (2, AttemptOutcome::Success, "up".to_string()),
            ]
        );
    }

    #[test]
    fn parses_matrix_scalar_and_string_results() {
        let matrix = br#"{"status":"success","data":{"resultType":"matrix","result":[
            {"metric":{"__name__":"up","job":"p"},"values":[[1000,"1"],[1015.5,"0"]]}]}}"#;
        let (data, _) = parse_response_body(matrix).expect("matrix");
        assert_eq!(
            data,
            QueryData::Matrix(vec![Series {
                metric: BTreeMap::from([
                    ("__name__".to_string(), "up".to_string()),
                    ("job".to_string(), "p".to_string())
                ]),
                values: vec![
                    Point {
                        timestamp: 1000.0,
                        value: 1.0
                    },
                    Point {
                        timestamp: 1015.5,
                        value: 0.0
                    }
                ],
            }])
        );

        let scalar =
            br#"{"status":"success","data":{"resultType":"scalar","result":[1793534400,"0.25"]}}"#;
        let (data, _) = parse_response_body(scalar).expect("scalar");
        assert_eq!(data.kind(), "scalar");
        assert_eq!(data.scalar(), Some(0.25));

        let string =
            br#"{"status":"success","data":{"resultType":"string","result":[12,"hello \"x\""]}}"#;
        let (data, _) = parse_response_body(string).expect("string");
        assert_eq!(
            data,
            QueryData::String {
                timestamp: 12.0,
                value: "hello \"x\"".to_string()
            }
        );
    }

    #[test]
    fn rejects_malformed_results_with_a_reason() {
        let cases: [(&[u8], &str); 5] = [
            (br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"abc"]}]}}"#, "abc"),
            (br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"1",2]}]}}"#, "invalid length"),
            (br#"{"status":"success","data":{"resultType":"tensor","result":[]}}"#, "tensor"),
            (br#"{"status":"success"}"#, "no `data`"),
            (br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"a":"b"},"histogram":[1,{"count":"2"}]}]}}"#, "native histogram"),
        ];
        for (body, expected) in cases {
            let err = parse_response_body(body).expect_err("malformed");
            assert!(err.contains(expected), "{err} should mention {expected}");
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let policy = RetryPolicy {
            max_attempts: 6,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(350),
            max_elapsed: None,
        };
        let sleeps: Vec<u128> = (1..=5).map(|n| policy.backoff(n).as_millis()).collect();
        assert_eq!(sleeps, vec![100, 200, 350, 350, 350]);
        assert_eq!(policy.backoff(u32::MAX), Duration::from_millis(350));
        assert_eq!(
            policy.budget(Duration::from_secs(10)),
            Duration::from_secs(20)
        );
        assert_eq!(RetryPolicy::default().max_attempts, 3);
    }

    #[test]
    fn formats_times_and_timeouts_for_the_form() {
        let t = DateTime::from_timestamp(1_793_534_400, 5_000_000).expect("time");
        assert_eq!(format_unix_time(t), "1793534400.005");
        let before_epoch = DateTime::from_timestamp(-2, 500_000_000).expect("time");
        assert_eq!(format_unix_time(before_epoch), "-2.500");
        assert_eq!(format_timeout(Duration::from_millis(9750)), "9.750");
    }

    #[test]
    fn rejects_bad_configuration() {
        let cases = [
            ("ftp://prom:9090", "http:// or https://"),
            ("not a url", "not a URL"),
        ];
        for (url, expected) in cases {
            let err = PrometheusClient::new(&config(url, Duration::from_secs(1)), None)
                .expect_err("invalid url");
            assert!(err.to_string().contains(expected), "{err}");
        }
        let mut cfg = config("http://prom:9090", Duration::from_secs(1));
        cfg.headers.insert("Bad Header".into(), "x".into());
        let err = PrometheusClient::new(&cfg, None).expect_err("invalid header");
        assert!(err.to_string().contains("Bad Header"), "{err}");
        let err = PrometheusClient::new(
            &config("http://prom:9090", Duration::from_secs(1)),
            Some("a\nb".into()),
        )
        .expect_err("invalid token");
        assert!(err.to_string().contains("bearer token"), "{err}");
        assert!(!err.to_string().contains("a\nb"));
    }

    #[test]
    fn strips_credentials_from_urls() {
        let url = Url::parse("https://user:pw@mimir.example/prometheus").expect("url");
        assert_eq!(strip_userinfo(&url), "https://mimir.example/prometheus");
        assert_eq!(
            strip_userinfo_str("http://u:p@host:9/x y"),
            "http://host:9/x y"
        );
        assert_eq!(
            join_api_path(
                &Url::parse("http://h/prometheus/").expect("url"),
                "api/v1/query"
            )
            .as_str(),
            "http://h/prometheus/api/v1/query"
        );
        assert_eq!(
            join_api_path(&Url::parse("http://h:9090").expect("url"), "api/v1/query").as_str(),
            "http://h:9090/api/v1/query"
        );
    }

    #[test]
    fn long_queries_are_shortened_in_messages() {
        let long = format!("sum({})", "x".repeat(1000));
        let shown = shorten(&long);
        assert!(shown.ends_with('…'));
        assert_eq!(shown.chars().count(), MAX_QUERY_IN_MESSAGE + 1);
        assert_eq!(shorten("a\n   b"), "a b");
    }
}
