//! The client: sends instant queries as POST forms, times each attempt, retries transient
//! failures within the [`RetryPolicy`], and reports every attempt to an optional observer.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use gate_rules::config::PrometheusConfig;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION};
use reqwest::Url;
use tokio::time::Instant;

use super::error::{innermost_cause, AttemptOutcome, Failure, PromError};
use super::response::{interpret, Parsed, QueryResponse};
use super::retry::RetryPolicy;
use crate::redact;

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

/// A client for one Prometheus-compatible query API.
///
/// Cheap to share behind an `Arc`: it holds a connection pool and an atomic counter.
pub struct PrometheusClient {
    http: reqwest::Client,
    query_url: Url,
    range_url: Url,
    shown_url: String,
    timeout: Duration,
    max_response_bytes: usize,
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
                redact::url_text(&config.url)
            ))
        })?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(config_error(format!(
                "`{}` must start with http:// or https://",
                redact::url(&base)
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
            shown_url: redact::url(&query_url),
            query_url,
            range_url,
            timeout,
            max_response_bytes: usize::try_from(config.max_response_mib.saturating_mul(1 << 20))
                .unwrap_or(usize::MAX),
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
        let limit = self.max_response_bytes;
        // The body is read chunk by chunk up to the limit: an answer too large to hold fails
        // the query (a telemetry error) instead of the process.
        let exchange = async {
            let mut response = request.send().await?;
            let status = response.status();
            if response.content_length().is_some_and(|n| n > limit as u64) {
                return Ok((status, None));
            }
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await? {
                if body.len() + chunk.len() > limit {
                    return Ok((status, None));
                }
                body.extend_from_slice(&chunk);
            }
            Ok::<_, reqwest::Error>((status, Some(body)))
        };
        match tokio::time::timeout(timeout, exchange).await {
            Err(_) => Err(Failure::Timeout(timeout)),
            Ok(Err(e)) if e.is_timeout() => Err(Failure::Timeout(timeout)),
            Ok(Err(e)) if e.is_connect() => Err(Failure::Connect(e.without_url())),
            Ok(Err(e)) => Err(Failure::Transport(e.without_url())),
            Ok(Ok((status, None))) => Err(Failure::BadResponse {
                status: status.as_u16(),
                reason: format!(
                    "the answer is larger than {} MiB (prometheus.max_response_mib): narrow the \
                     selectors or raise the limit",
                    limit >> 20
                ),
            }),
            Ok(Ok((status, Some(body)))) => interpret(status, &body),
        }
    }
}

/// `base` with `path` appended below its own path (keeping a prefix such as `/prometheus`).
fn join_api_path(base: &Url, path: &str) -> Url {
    let mut url = base.clone();
    let prefix = base.path().trim_end_matches('/');
    url.set_path(&format!("{prefix}/{path}"));
    url
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use gate_rules::duration::PromDuration;
    use wiremock::matchers::{header, method, path};
    use wiremock::{Mock, MockServer, Request, ResponseTemplate};

    use super::*;
    use crate::prometheus::QueryData;

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
            external_url: url.to_string(),
            max_response_mib: 1,
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

        // One request, or more when a loaded machine made the client retry a transient
        // failure: each carries the same form.
        let requests = server.received_requests().await.expect("recorded");
        assert!(!requests.is_empty());
        for request in &requests {
            let form = form_of(request);
            assert_eq!(form["query"], query);
            assert_eq!(form["time"], "1793534400.250");
            assert_eq!(form["timeout"], "7.000");
        }
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
    fn joins_the_api_path_below_a_prefix() {
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

    #[tokio::test]
    async fn an_answer_over_the_size_limit_is_a_telemetry_error() {
        let server = MockServer::start().await;
        // 1 MiB and a bit of valid JSON: a vector of many samples.
        let sample = serde_json::json!({"metric": {"train_id": "t"}, "value": [1, "1"]});
        let samples = vec![sample; 40_000];
        let body = vector_body(serde_json::Value::Array(samples));
        assert!(body.to_string().len() > 1 << 20);
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_body_json(body))
            .mount(&server)
            .await;
        // The test config allows 1 MiB.
        let client =
            PrometheusClient::new(&config(&server.uri(), Duration::from_secs(5)), None).unwrap();
        let err = client.query("up", eval_time()).await.unwrap_err();
        assert!(matches!(err, PromError::BadResponse { .. }), "{err}");
        assert!(err.to_string().contains("larger than 1 MiB"), "{err}");

        let mut roomy = config(&server.uri(), Duration::from_secs(5));
        roomy.max_response_mib = 2;
        let client = PrometheusClient::new(&roomy, None).unwrap();
        assert!(client.query("up", eval_time()).await.is_ok());
    }
}
