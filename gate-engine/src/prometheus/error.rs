//! Why a query failed: [`PromError`], one line a person understands that names the endpoint
//! (never its credentials) and the query, and [`Failure`], what one attempt came to before
//! that context is attached.

use std::time::Duration;

/// The longest query text shown in an error message; longer queries are shortened with `…`.
const MAX_QUERY_IN_MESSAGE: usize = 240;
/// The longest body excerpt shown in an error message.
pub(super) const MAX_BODY_IN_MESSAGE: usize = 200;

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

pub(super) fn error_type_note(error_type: &Option<String>) -> String {
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

/// What went wrong in one attempt, before the query context is attached.
#[derive(Debug)]
pub(super) enum Failure {
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
    pub(super) fn is_transient(&self) -> bool {
        match self {
            Failure::Connect(_) | Failure::Transport(_) | Failure::Timeout(_) => true,
            Failure::Http { status, .. } => is_gateway_status(*status),
            Failure::BadResponse { .. } => false,
        }
    }

    pub(super) fn outcome(&self) -> AttemptOutcome {
        match self {
            Failure::Connect(_) => AttemptOutcome::Connect,
            Failure::Transport(_) => AttemptOutcome::Transport,
            Failure::Timeout(_) => AttemptOutcome::Timeout,
            Failure::Http { status, .. } => AttemptOutcome::HttpStatus(*status),
            Failure::BadResponse { .. } => AttemptOutcome::BadResponse,
        }
    }

    pub(super) fn into_error(self, url: &str, query: &str, attempts: u32) -> PromError {
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

/// The last error in a `source()` chain, which names the actual cause
/// (e.g. `Connection refused (os error 111)`).
pub(super) fn innermost_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut current = error;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_queries_are_shortened_in_messages() {
        let long = format!("sum({})", "x".repeat(1000));
        let shown = shorten(&long);
        assert!(shown.ends_with('…'));
        assert_eq!(shown.chars().count(), MAX_QUERY_IN_MESSAGE + 1);
        assert_eq!(shorten("a\n   b"), "a b");
    }
}
