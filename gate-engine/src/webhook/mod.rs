//! Webhooks (SPEC §7): decision changes told to receivers, at least once, in order per train.
//!
//! How it fits together:
//!
//! 1. When a train's decision changes, the daemon builds a [`DecisionChange`] and calls
//!    [`events_for_change`]; the returned outbox events go into the same store transaction as
//!    the decision ([`crate::store::EvaluationWrite::events`]), so a decision is never stored
//!    without its events, nor an event without its decision.
//! 2. At startup the daemon turns the config's webhooks into [`WebhookTarget`]s with
//!    [`resolve_webhooks`] (reading each `secret_env`; a missing variable is a startup error)
//!    and runs one [`Deliverer`], nudging it ([`Nudger::nudge`]) after each commit that queued
//!    events.
//! 3. The [`Deliverer`] drains the outbox: signs ([`sign`]) and POSTs each event, records the
//!    outcome in the store, retries with backoff, dead-letters what cannot be delivered.
//!    `gate outbox redrive` (or the API) puts dead letters back with
//!    [`crate::store::Store::redrive_dead`].
//!
//! The outbox in the store is the only queue: nothing about a delivery lives only in memory,
//! so a restart (even after SIGKILL) loses nothing — at worst an event whose 2xx was not yet
//! recorded is sent again, which is why receivers de-duplicate by event ID.
//!
//! Webhook URLs may carry credentials (`https://user:pass@host/…?token=…`); they are shown only
//! through [`crate::redact::url`], which drops the user info and the query string. A `format: slack`
//! URL carries its secret in the path (`https://hooks.slack.com/services/T…/B…/secret`), so
//! its whole path is dropped too ([`WebhookTarget::shown_url`]).

mod deliver;
mod payload;
pub mod purl;
pub mod sign;
mod slack;

use std::fmt;
use std::time::Duration;

use gate_rules::config::{Webhook, WebhookFormat};
use reqwest::Url;

use crate::redact;

pub use deliver::{Deliverer, DeliveryOptions, Nudger, WebhookMetrics};
pub use payload::{
    cdevents_type, content_type, events_for_change, new_event_id, render, DecisionChange,
    CDEVENTS_SPEC_VERSION, CLOUDEVENTS_CONTENT_TYPE, JSON_CONTENT_TYPE, JSON_EVENT_TYPE,
};
pub use sign::Secret;

/// An error setting up webhooks.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookError {
    /// The variable named by `secret_env` is not set (or empty).
    #[error("webhook `{webhook}`: the environment variable {var} (its secret_env) is not set")]
    MissingSecret {
        /// The webhook.
        webhook: String,
        /// The variable.
        var: String,
    },
    /// The URL does not parse or is not http(s).
    #[error("webhook `{webhook}`: invalid url `{url}`: {reason}")]
    InvalidUrl {
        /// The webhook.
        webhook: String,
        /// The URL without credentials.
        url: String,
        /// Why.
        reason: String,
    },
    /// The HTTP client could not be built (e.g. no TLS backend).
    #[error("cannot build the webhook HTTP client")]
    Client(#[source] reqwest::Error),
}

/// A webhook ready to send to: the config's webhook with its URL parsed and its secret read.
#[derive(Clone)]
pub struct WebhookTarget {
    /// The webhook's name (the outbox events' `webhook`).
    pub name: String,
    /// Where to POST, credentials included.
    pub url: Url,
    /// The payload format (decides the `Content-Type`).
    pub format: WebhookFormat,
    /// The HMAC secret; `None`: requests are not signed.
    pub secret: Option<Secret>,
    /// Per-attempt timeout (connect, send, response headers).
    pub timeout: Duration,
    /// Attempts before dead-lettering; `None`: until [`DeliveryOptions::give_up_after`].
    pub max_attempts: Option<u32>,
}

impl WebhookTarget {
    /// The URL as logs and errors show it: [`redact::url`], and for `format: slack` without
    /// its path (`https://hooks.slack.com/…`).
    pub fn shown_url(&self) -> String {
        shown_url(&self.url, self.format)
    }
}

fn shown_url(url: &Url, format: WebhookFormat) -> String {
    match format {
        WebhookFormat::Slack => {
            let mut shown = url.clone();
            shown.set_path("");
            format!("{}…", redact::url(&shown))
        }
        WebhookFormat::Json | WebhookFormat::Cloudevents => redact::url(url),
    }
}

impl fmt::Debug for WebhookTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookTarget")
            .field("name", &self.name)
            .field("url", &self.shown_url())
            .field("format", &self.format)
            .field("secret", &self.secret)
            .field("timeout", &self.timeout)
            .field("max_attempts", &self.max_attempts)
            .finish()
    }
}

/// Resolves the config's webhooks: parses each URL and reads each `secret_env` through `env`
/// (the daemon passes `|var| std::env::var(var).ok()`). Fails on the first webhook whose URL is
/// invalid or whose secret variable is unset or empty, naming the webhook and the variable.
pub fn resolve_webhooks(
    webhooks: &[Webhook],
    env: impl Fn(&str) -> Option<String>,
) -> Result<Vec<WebhookTarget>, WebhookError> {
    webhooks
        .iter()
        .map(|w| {
            let url = parse_url(&w.name, &w.url, w.format)?;
            let secret = match &w.secret_env {
                None => None,
                Some(var) => match env(var) {
                    Some(value) if !value.is_empty() => Some(Secret::new(value)),
                    _ => {
                        return Err(WebhookError::MissingSecret {
                            webhook: w.name.clone(),
                            var: var.clone(),
                        })
                    }
                },
            };
            Ok(WebhookTarget {
                name: w.name.clone(),
                url,
                format: w.format,
                secret,
                timeout: w.timeout.as_duration(),
                max_attempts: w.max_attempts,
            })
        })
        .collect()
}

fn parse_url(webhook: &str, text: &str, format: WebhookFormat) -> Result<Url, WebhookError> {
    let invalid = |reason: String| WebhookError::InvalidUrl {
        webhook: webhook.to_string(),
        url: match format {
            WebhookFormat::Slack => "(a slack webhook URL, not shown)".to_string(),
            WebhookFormat::Json | WebhookFormat::Cloudevents => redact::url_text(text),
        },
        reason,
    };
    let url = Url::parse(text).map_err(|e| invalid(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(format!(
            "the scheme must be http or https, not `{}`",
            url.scheme()
        )));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use gate_rules::Decision;
    use gate_rules::PromDuration;

    use super::*;

    fn hook(name: &str, url: &str, secret_env: Option<&str>) -> Webhook {
        Webhook {
            name: name.to_string(),
            url: url.to_string(),
            on: Decision::ALL.to_vec(),
            format: WebhookFormat::Cloudevents,
            secret_env: secret_env.map(str::to_string),
            timeout: PromDuration::from_secs(3),
            max_attempts: Some(5),
        }
    }

    #[test]
    fn secrets_are_read_through_env_and_a_missing_one_is_named() {
        let hooks = [
            hook(
                "deployer",
                "https://u:p@hooks.example/x?k=v",
                Some("DEPLOYER_SECRET"),
            ),
            hook("audit", "http://127.0.0.1:9/audit", None),
        ];
        let targets = resolve_webhooks(&hooks, |var| {
            (var == "DEPLOYER_SECRET").then(|| "s3cret".to_string())
        })
        .unwrap();
        assert_eq!(targets.len(), 2);
        assert_eq!(targets[0].secret, Some(Secret::new("s3cret")));
        assert_eq!(targets[0].timeout, Duration::from_secs(3));
        assert_eq!(targets[0].max_attempts, Some(5));
        assert_eq!(
            targets[0].url.password(),
            Some("p"),
            "the URL is kept whole"
        );
        assert_eq!(targets[1].secret, None);
        let shown = format!("{:?}", targets[0]);
        assert!(!shown.contains("s3cret") && !shown.contains(":p@") && !shown.contains("k=v"));

        for env_value in [None, Some(String::new())] {
            let err = resolve_webhooks(&hooks, |_| env_value.clone()).unwrap_err();
            assert!(
                matches!(&err, WebhookError::MissingSecret { webhook, var }
                    if webhook == "deployer" && var == "DEPLOYER_SECRET"),
                "{err:?}"
            );
            assert!(err.to_string().contains("DEPLOYER_SECRET"), "{err}");
        }
    }

    #[test]
    fn slack_urls_are_shown_without_their_path() {
        let mut slack = hook(
            "chat",
            "https://hooks.slack.com/services/T000/B000/XXXXsecretXXXX",
            None,
        );
        slack.format = WebhookFormat::Slack;
        let targets = resolve_webhooks(&[slack.clone()], |_| None).unwrap();
        assert_eq!(targets[0].shown_url(), "https://hooks.slack.com/…");
        assert!(!format!("{:?}", targets[0]).contains("XXXXsecretXXXX"));
        slack.url = "ftp://hooks.slack.com/services/T000/B000/XXXXsecretXXXX".to_string();
        let err = resolve_webhooks(&[slack], |_| None).unwrap_err();
        assert!(!err.to_string().contains("XXXXsecretXXXX"), "{err}");
    }

    #[test]
    fn invalid_urls_are_refused_without_showing_credentials() {
        for url in [
            "not a url",
            "ftp://u:pw@files.example/x",
            "http://u:pw@[::1/x",
        ] {
            let err = resolve_webhooks(&[hook("w", url, None)], |_| None).unwrap_err();
            assert!(
                matches!(err, WebhookError::InvalidUrl { .. }),
                "{url}: {err:?}"
            );
            assert!(!err.to_string().contains("pw"), "{err}");
        }
    }
}
