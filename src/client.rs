//! A small typed client of the gate HTTP API (SPEC §6), for `train`, `status`, `wait` and
//! `override`.
//!
//! Every call returns the server's JSON as a [`serde_json::Value`] *and* its typed view, in
//! the wire types of the `gate-api` crate that the server serializes ([`Train`],
//! [`DecisionBody`], [`Event`]): `--format json` prints what the server said, unchanged, while
//! the human renderers and `wait` read the typed fields. The views are read strictly (the
//! types deny unknown fields): client and server are built from the same types, and a field
//! that differs is a bug to fail on, not to paper over.
//!
//! Errors are sorted the way a pipeline needs them ([`ClientError`]): the server could not be
//! reached (exit 6, and what `gate wait` retries), the server answered with an API error
//! (`{"error": {"code", "message"}}`, shown as is), or the answer made no sense. The mapping
//! to exit codes lives in [`ClientError::into_exit`], next to the classification.

use std::fmt;
use std::time::Duration;

pub use gate_api::{DecisionBody, Delivery, Event, OverrideRequest, RegisterRequest};
use gate_api::{EventList, RedriveReport, RedriveRequest, TrainList};
use gate_engine::report::EvaluationReport;
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;

use crate::exit;

/// The server when neither `--server` nor `GATE_SERVER` says otherwise.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:9797";
/// The variable holding the bearer token sent to the server.
pub const TOKEN_ENV: &str = "GATE_API_TOKEN";
/// Timeout of an ordinary (not long-polling) request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Extra time a long-poll request gets beyond the wait it asks the server for.
const LONG_POLL_GRACE: Duration = Duration::from_secs(15);
/// Timeout of establishing a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The `--server` option shared by every command that talks to the daemon.
#[derive(clap::Args, Debug, Clone)]
pub struct ServerArgs {
    /// The gate server (`gate serve`). The bearer token, if the server wants one, is read
    /// from GATE_API_TOKEN.
    #[arg(long, env = "GATE_SERVER", default_value = DEFAULT_SERVER)]
    pub server: String,
}

impl ServerArgs {
    /// A client of this server, with the token from [`TOKEN_ENV`].
    pub fn client(&self) -> anyhow::Result<Client> {
        let token = std::env::var(TOKEN_ENV).ok().filter(|t| !t.is_empty());
        Client::new(&self.server, token).map_err(|e| exit::usage(e.to_string()))
    }
}

/// A train as the server shows it (`GET /v1/trains/{id}`, items of `GET /v1/trains`), with
/// its latest evaluation read as the report `gate eval` prints.
pub type Train = gate_api::Train<EvaluationReport>;

/// A server answer: the JSON as sent and its typed view.
#[derive(Debug, Clone)]
pub struct Answer<T> {
    /// The HTTP status (201 when a registration created the train, 200 when it existed).
    pub status: StatusCode,
    /// The JSON as the server sent it.
    pub raw: serde_json::Value,
    /// The typed view.
    pub value: T,
}

/// Why a call failed.
#[derive(Debug)]
pub enum ClientError {
    /// Nothing answered (connection refused, DNS, timeout, connection reset).
    Unreachable {
        /// The server URL.
        server: String,
        /// The transport error.
        source: reqwest::Error,
    },
    /// The server answered with an error status.
    Api {
        /// The HTTP status.
        status: StatusCode,
        /// The error code from the body (`error.code`), or the status' reason.
        code: String,
        /// The message from the body (`error.message`), or the body itself.
        message: String,
    },
    /// The answer could not be understood.
    Protocol {
        /// The request's URL.
        url: String,
        /// What was wrong.
        detail: String,
    },
}

impl ClientError {
    /// Whether `gate wait` should try again later: the server is unreachable or briefly
    /// unable to answer (a 5xx while it restarts or its store is busy).
    pub fn is_transient(&self) -> bool {
        match self {
            ClientError::Unreachable { .. } => true,
            ClientError::Api { status, .. } => status.is_server_error(),
            ClientError::Protocol { .. } => false,
        }
    }

    /// The error with its exit code (SPEC §5): unreachable or unavailable server 6, a
    /// request the server refused (unknown train, bad input, conflict, missing token) 2,
    /// anything else 1.
    pub fn into_exit(self) -> anyhow::Error {
        let message = self.to_string();
        match &self {
            ClientError::Unreachable { .. } => exit::unreachable(message),
            ClientError::Api { status, .. }
                if *status == StatusCode::SERVICE_UNAVAILABLE
                    || *status == StatusCode::BAD_GATEWAY
                    || *status == StatusCode::GATEWAY_TIMEOUT =>
            {
                exit::unreachable(message)
            }
            ClientError::Api { status, .. } if status.is_client_error() => exit::usage(message),
            _ => anyhow::Error::new(self),
        }
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Unreachable { server, source } => {
                write!(
                    f,
                    "gate server {server} unreachable: {}",
                    transport_cause(source)
                )
            }
            ClientError::Api {
                status,
                code,
                message,
            } => {
                write!(f, "{message} ({code}, HTTP {})", status.as_u16())?;
                if *status == StatusCode::UNAUTHORIZED || *status == StatusCode::FORBIDDEN {
                    write!(f, "; set {TOKEN_ENV} to the server's API token")?;
                }
                Ok(())
            }
            ClientError::Protocol { url, detail } => {
                write!(f, "unexpected answer from {url}: {detail}")
            }
        }
    }
}

impl std::error::Error for ClientError {}

/// The innermost cause of a transport error: "connection refused" rather than "error
/// sending request for url (…)".
fn transport_cause(err: &reqwest::Error) -> String {
    if err.is_timeout() {
        return "timed out".to_string();
    }
    let mut cause: &dyn std::error::Error = err;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

/// A client of one gate server.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    token: Option<String>,
}

impl Client {
    /// A client of `server` (`http://host:port`; `host:port` means http), sending `token` as
    /// a bearer token when given.
    pub fn new(server: &str, token: Option<String>) -> Result<Client, String> {
        let with_scheme = if server.contains("://") {
            server.to_string()
        } else {
            format!("http://{server}")
        };
        let mut base = Url::parse(&with_scheme)
            .map_err(|e| format!("--server `{server}` is not a URL: {e}"))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(format!("--server `{server}` must be an http(s) URL"));
        }
        // Keep a path prefix (a server behind a reverse proxy) and append to it.
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("gate/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Client { http, base, token })
    }

    /// The server's base URL, as shown in messages.
    pub fn server(&self) -> &str {
        self.base.as_str().trim_end_matches('/')
    }

    /// `POST /v1/trains`: registers a train (idempotent for the same body).
    pub async fn register(&self, train: &RegisterRequest) -> Result<Answer<Train>, ClientError> {
        let body = serde_json::to_value(train).map_err(|e| self.protocol("v1/trains", e))?;
        self.call(Method::POST, &["v1", "trains"], &[], Some(body), None)
            .await
    }

    /// `GET /v1/trains` (`state=active`, or `all`): every train in one request, each with
    /// its `worst_burn`, and with its latest evaluation when `evaluation` is set.
    pub async fn trains(
        &self,
        all: bool,
        evaluation: bool,
    ) -> Result<Answer<Vec<Train>>, ClientError> {
        let state = if all { "all" } else { "active" };
        let mut query = vec![("state", state.to_string())];
        if evaluation {
            query.push(("evaluation", "true".to_string()));
        }
        let answer: Answer<TrainList<EvaluationReport>> = self
            .call(Method::GET, &["v1", "trains"], &query, None, None)
            .await?;
        Ok(Answer {
            status: answer.status,
            raw: answer.raw,
            value: answer.value.trains,
        })
    }

    /// `GET /v1/trains/{id}`: the train with its latest evaluation.
    pub async fn train(&self, id: &str) -> Result<Answer<Train>, ClientError> {
        self.call(Method::GET, &["v1", "trains", id], &[], None, None)
            .await
    }

    /// `GET /v1/trains/{id}/decision`: the current decision at once, or with `after_seq`
    /// the next one after that seq, waiting up to `wait` for it (then the current one).
    pub async fn decision(
        &self,
        id: &str,
        after_seq: Option<u64>,
        wait: Duration,
    ) -> Result<Answer<DecisionBody>, ClientError> {
        let mut query = Vec::new();
        let mut timeout = REQUEST_TIMEOUT;
        if let Some(seq) = after_seq {
            let secs = wait.as_secs().max(1);
            query.push(("wait", format!("{secs}s")));
            query.push(("after_seq", seq.to_string()));
            timeout = Duration::from_secs(secs) + LONG_POLL_GRACE;
        }
        self.call(
            Method::GET,
            &["v1", "trains", id, "decision"],
            &query,
            None,
            Some(timeout),
        )
        .await
    }

    /// `GET /v1/trains/{id}/events`: the audit trail, oldest first.
    pub async fn events(&self, id: &str) -> Result<Answer<Vec<Event>>, ClientError> {
        let answer: Answer<EventList> = self
            .call(
                Method::GET,
                &["v1", "trains", id, "events"],
                &[],
                None,
                None,
            )
            .await?;
        Ok(Answer {
            status: answer.status,
            raw: answer.raw,
            value: answer.value.events,
        })
    }

    /// `POST /v1/trains/{id}/override`: the decision that results.
    pub async fn override_decision(
        &self,
        id: &str,
        request: &OverrideRequest,
    ) -> Result<Answer<DecisionBody>, ClientError> {
        let body = serde_json::to_value(request).map_err(|e| self.protocol("override", e))?;
        self.call(
            Method::POST,
            &["v1", "trains", id, "override"],
            &[],
            Some(body),
            None,
        )
        .await
    }

    /// `DELETE /v1/trains/{id}`: stops watching the train.
    pub async fn stop(&self, id: &str) -> Result<Answer<Train>, ClientError> {
        self.call(Method::DELETE, &["v1", "trains", id], &[], None, None)
            .await
    }

    /// `POST /v1/outbox/redrive`: queues dead-lettered webhook events again.
    pub async fn redrive(
        &self,
        request: &RedriveRequest,
    ) -> Result<Answer<RedriveReport>, ClientError> {
        let body = serde_json::to_value(request).map_err(|e| self.protocol("redrive", e))?;
        self.call(
            Method::POST,
            &["v1", "outbox", "redrive"],
            &[],
            Some(body),
            None,
        )
        .await
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, String)],
        body: Option<serde_json::Value>,
        timeout: Option<Duration>,
    ) -> Result<Answer<T>, ClientError> {
        let (status, raw) = self
            .call_raw(method, segments, query, body, timeout)
            .await?;
        let value = serde_json::from_value(raw.clone())
            .map_err(|e| self.protocol(&segments.join("/"), e))?;
        Ok(Answer { status, raw, value })
    }

    async fn call_raw(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, String)],
        body: Option<serde_json::Value>,
        timeout: Option<Duration>,
    ) -> Result<(StatusCode, serde_json::Value), ClientError> {
        let url = self.url(segments);
        let mut request = self
            .http
            .request(method, url.clone())
            .timeout(timeout.unwrap_or(REQUEST_TIMEOUT))
            .header(reqwest::header::ACCEPT, "application/json");
        if !query.is_empty() {
            request = request.query(query);
        }
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let unreachable = |source| ClientError::Unreachable {
            server: self.server().to_string(),
            source,
        };
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(unreachable)?;
        if !status.is_success() {
            return Err(api_error(status, &bytes));
        }
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok((status, serde_json::Value::Null));
        }
        let value = serde_json::from_slice(&bytes).map_err(|e| ClientError::Protocol {
            url: url.to_string(),
            detail: format!("not JSON ({e})"),
        })?;
        Ok((status, value))
    }

    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    fn protocol(&self, path: &str, err: impl fmt::Display) -> ClientError {
        ClientError::Protocol {
            url: format!("{}/{path}", self.server()),
            detail: err.to_string(),
        }
    }
}

/// The error of a non-2xx answer: `{"error": {"code", "message"}}` when the body has it,
/// else the status and the start of the body.
fn api_error(status: StatusCode, body: &[u8]) -> ClientError {
    let reason = status.canonical_reason().unwrap_or("error").to_string();
    match serde_json::from_slice::<gate_api::ErrorBody>(body) {
        Ok(b) => ClientError::Api {
            status,
            code: if b.error.code.is_empty() {
                reason
            } else {
                b.error.code
            },
            message: if b.error.message.is_empty() {
                format!("the server answered {status}")
            } else {
                b.error.message
            },
        },
        Err(_) => {
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            let snippet: String = text.chars().take(200).collect();
            ClientError::Api {
                status,
                code: reason,
                message: if snippet.is_empty() {
                    format!("the server answered {status}")
                } else {
                    format!("the server answered {status}: {snippet}")
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_urls_get_a_scheme_and_keep_a_path_prefix() {
        let c = Client::new("127.0.0.1:9797", None).unwrap();
        assert_eq!(
            c.url(&["v1", "trains"]).as_str(),
            "http://127.0.0.1:9797/v1/trains"
        );
        let c = Client::new("https://gate.example/api/", None).unwrap();
        assert_eq!(
            c.url(&["v1", "trains", "t-1"]).as_str(),
            "https://gate.example/api/v1/trains/t-1"
        );
        let c = Client::new("http://h:1/api", None).unwrap();
        assert_eq!(c.url(&["v1"]).as_str(), "http://h:1/api/v1");
        assert!(Client::new("ftp://h/", None).is_err());
        assert!(Client::new("http://exa mple", None).is_err());
    }

    #[test]
    fn train_ids_are_one_path_segment() {
        let c = Client::new("http://h:1", None).unwrap();
        assert_eq!(
            c.url(&["v1", "trains", "team/t 1", "decision"]).as_str(),
            "http://h:1/v1/trains/team%2Ft%201/decision"
        );
    }

    #[test]
    fn api_error_bodies_become_clear_errors() {
        let body = br#"{"error":{"code":"unknown_train","message":"no train t-9"}}"#;
        let err = api_error(StatusCode::NOT_FOUND, body);
        assert_eq!(err.to_string(), "no train t-9 (unknown_train, HTTP 404)");
        assert!(!err.is_transient());

        let err = api_error(
            StatusCode::UNAUTHORIZED,
            br#"{"error":{"code":"unauthorized","message":"missing bearer token"}}"#,
        );
        assert!(err.to_string().contains(TOKEN_ENV), "{err}");

        let err = api_error(StatusCode::BAD_GATEWAY, b"<html>bad gateway</html>");
        assert!(
            err.to_string().contains("<html>bad gateway</html>"),
            "{err}"
        );
        assert!(err.is_transient());
    }

    #[test]
    fn exit_codes_follow_the_kind_of_failure() {
        let code = |e: ClientError| {
            e.into_exit()
                .downcast_ref::<exit::Exit>()
                .map(|x| x.code)
                .unwrap_or(exit::INTERNAL)
        };
        let api = |status| ClientError::Api {
            status,
            code: "x".into(),
            message: "y".into(),
        };
        assert_eq!(code(api(StatusCode::NOT_FOUND)), exit::USAGE);
        assert_eq!(code(api(StatusCode::CONFLICT)), exit::USAGE);
        assert_eq!(
            code(api(StatusCode::SERVICE_UNAVAILABLE)),
            exit::UNREACHABLE
        );
        assert_eq!(code(api(StatusCode::INTERNAL_SERVER_ERROR)), exit::INTERNAL);
        let protocol = ClientError::Protocol {
            url: "u".into(),
            detail: "d".into(),
        };
        assert_eq!(code(protocol), exit::INTERNAL);
    }

    #[tokio::test]
    async fn nothing_listening_is_unreachable() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        // The listener is dropped: nothing accepts on the port any more.
        let c = Client::new(&format!("127.0.0.1:{port}"), None).unwrap();
        let err = c.train("t-1").await.unwrap_err();
        assert!(matches!(err, ClientError::Unreachable { .. }), "{err}");
        assert!(err.is_transient());
        assert!(err.to_string().contains("unreachable"), "{err}");
    }
}
