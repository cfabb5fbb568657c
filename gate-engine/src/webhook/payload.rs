//! Webhook bodies: one outbox event per webhook for a decision change, rendered in full.
//!
//! The daemon calls [`events_for_change`] when a train's decision changes and stores the
//! events in the same transaction as the decision ([`crate::store::EvaluationWrite::events`]).
//! The worker in `deliver.rs` sends each stored payload as it is.
//!
//! Design choices a newcomer may question:
//!
//! * **Rendered before it is stored.** The body is built here, once, and kept in the outbox,
//!   so every retry (also after a restart, also after a config change) sends the same event
//!   with the same ID, and the audit trail shows exactly what was sent.
//! * **Event IDs are UUID v7** made from the evaluation time and random bits: unique across
//!   stores and restarts (a receiver never mistakes a new event for a duplicate), sortable by
//!   time, and stable across retries because they are stored, not recomputed.
//! * **CloudEvents carry a CDEvent** (spec [`CDEVENTS_SPEC_VERSION`]). In
//!   `format: cloudevents` the CloudEvent's `data` is a CDEvents object (`context` +
//!   `subject`): `service.rolledback` for rollback, `service.deployed` for promote, and gate's
//!   own custom types (`dev.cdeventsx.gate-decision.<predicate>.0.1.0`) for pause and pending,
//!   for which CDEvents has no type. The standard types' `subject.content` is exactly what
//!   their schema allows (`environment`, `artifactId`); everything gate-specific — the full
//!   decision with its evidence — is the CDEvent's `customData`. The CloudEvent's `id`,
//!   `source`, `type`, `subject` and `time` are the CDEvent's, as the CDEvents CloudEvents
//!   binding requires.
//! * **`artifactId` is a package URL.** A train registered with the label `artifact` (a purl,
//!   checked at registration by [`super::purl::is_purl`]) names its artifact; otherwise gate,
//!   which does not know what a train deploys, names the train:
//!   `pkg:generic/<train, percent-encoded>`.

use chrono::{DateTime, SecondsFormat, Utc};
use gate_rules::config::{Config, Webhook, WebhookFormat};
use gate_rules::Decision;
use gate_rules::TrainId;
use serde_json::{json, Value};

use super::{purl, slack};
use crate::store::NewOutboxEvent;

/// The `type` of a `format: json` body.
pub const JSON_EVENT_TYPE: &str = "gate.decision";
/// The CDEvents spec version the `cloudevents` format follows.
pub const CDEVENTS_SPEC_VERSION: &str = "0.5.1";
/// The `Content-Type` of a `format: json` body.
pub const JSON_CONTENT_TYPE: &str = "application/json";
/// The `Content-Type` of a CloudEvents structured-mode body.
pub const CLOUDEVENTS_CONTENT_TYPE: &str = "application/cloudevents+json";

/// A train's decision changed: what the webhooks are told.
#[derive(Debug, Clone, PartialEq)]
pub struct DecisionChange {
    /// The train.
    pub train: TrainId,
    /// Its gate.
    pub gate: String,
    /// The new decision.
    pub decision: Decision,
    /// The decision before.
    pub previous: Decision,
    /// The one-line reason (the operator's, for an override).
    pub reason: String,
    /// The rule that decided, if one did.
    pub rule: Option<String>,
    /// When the evaluation (or override) happened.
    pub evaluated_at: DateTime<Utc>,
    /// The train's seq after the change.
    pub seq: u64,
    /// The evaluation with its evidence ([`crate::report::EvaluationReport`] as JSON).
    pub evidence: Value,
    /// The train's `artifact` label (a purl), if it was registered with one.
    pub artifact: Option<String>,
    /// A train of several gates: each gate's decision (the change is the train's verdict);
    /// empty for a train of one gate.
    pub gates: Vec<gate_api::GateDecision>,
}

/// One outbox event for each webhook whose `on` lists the new decision, in config order, each
/// with its payload rendered in the webhook's format.
pub fn events_for_change(config: &Config, change: &DecisionChange) -> Vec<NewOutboxEvent> {
    config
        .webhooks
        .iter()
        .filter(|w| w.on.contains(&change.decision))
        .map(|webhook| {
            let event_id = new_event_id(change.evaluated_at, rand::random());
            NewOutboxEvent {
                payload: render(webhook, &event_id, change, config.public_url.as_deref()),
                webhook: webhook.name.clone(),
                event_id,
            }
        })
        .collect()
}

/// The payload of one event for `webhook`; `public_url` (the config's) lets chat messages link
/// the train.
pub fn render(
    webhook: &Webhook,
    event_id: &str,
    change: &DecisionChange,
    public_url: Option<&str>,
) -> Value {
    match webhook.format {
        WebhookFormat::Json => json_body(event_id, change),
        WebhookFormat::Cloudevents => cloudevent(event_id, change),
        WebhookFormat::Slack => slack::message(change, public_url),
    }
}

/// The `Content-Type` a payload of this format is sent with.
pub fn content_type(format: WebhookFormat) -> &'static str {
    match format {
        WebhookFormat::Json | WebhookFormat::Slack => JSON_CONTENT_TYPE,
        WebhookFormat::Cloudevents => CLOUDEVENTS_CONTENT_TYPE,
    }
}

/// A UUID v7: the time in its first 48 bits (milliseconds), then `random`.
pub fn new_event_id(at: DateTime<Utc>, random: [u8; 10]) -> String {
    let millis = u64::try_from(at.timestamp_millis()).unwrap_or(0);
    uuid::Builder::from_unix_timestamp_millis(millis, &random)
        .into_uuid()
        .to_string()
}

/// The `format: json` body (SPEC §7).
fn json_body(event_id: &str, change: &DecisionChange) -> Value {
    let mut body = json!({
        "id": event_id,
        "type": JSON_EVENT_TYPE,
        "train": change.train.as_str(),
        "gate": change.gate,
        "decision": change.decision,
        "previous": change.previous,
        "reason": change.reason,
        "rule": change.rule,
        "evaluated_at": rfc3339(change.evaluated_at),
        "seq": change.seq,
        "evidence": change.evidence,
    });
    if !change.gates.is_empty() {
        body["gates"] = json!(change.gates);
    }
    body
}

/// The CDEvents type for a decision: a standard one where it fits, gate's extension otherwise.
pub fn cdevents_type(decision: Decision) -> &'static str {
    match decision {
        Decision::Rollback => "dev.cdevents.service.rolledback.0.3.0",
        Decision::Promote => "dev.cdevents.service.deployed.0.3.0",
        Decision::Pause => "dev.cdeventsx.gate-decision.paused.0.1.0",
        Decision::Pending => "dev.cdeventsx.gate-decision.pending.0.1.0",
    }
}

/// A CloudEvents 1.0 structured-mode event whose `data` is a CDEvent.
fn cloudevent(event_id: &str, change: &DecisionChange) -> Value {
    let source = format!("/gate/{}", change.gate);
    let time = rfc3339(change.evaluated_at);
    let kind = cdevents_type(change.decision);
    let content = match change.decision {
        Decision::Rollback | Decision::Promote => json!({
            "environment": {"id": change.gate, "source": source},
            "artifactId": artifact_id(change),
        }),
        Decision::Pause | Decision::Pending => json!({
            "gate": change.gate,
            "decision": change.decision,
            "previous": change.previous,
            "reason": change.reason,
            "rule": change.rule,
        }),
    };
    json!({
        "specversion": "1.0",
        "id": event_id,
        "source": source,
        "type": kind,
        "subject": change.train.as_str(),
        "time": time,
        "datacontenttype": JSON_CONTENT_TYPE,
        "data": {
            "context": {
                "specversion": CDEVENTS_SPEC_VERSION,
                "id": event_id,
                "source": source,
                "type": kind,
                "timestamp": time,
            },
            "subject": {
                "id": change.train.as_str(),
                "source": source,
                "content": content,
            },
            "customData": json_body(event_id, change),
            "customDataContentType": JSON_CONTENT_TYPE,
        },
    })
}

/// The train's `artifact` label when it is a purl, else a generic purl naming the train.
fn artifact_id(change: &DecisionChange) -> String {
    match &change.artifact {
        Some(artifact) if purl::is_purl(artifact) => artifact.clone(),
        _ => purl::generic(change.train.as_str()),
    }
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use chrono::TimeZone;
    use gate_rules::PromDuration;

    use super::*;

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap()
    }

    fn hook(name: &str, on: &[Decision], format: WebhookFormat) -> Webhook {
        Webhook {
            name: name.to_string(),
            url: "http://127.0.0.1:1/hook".to_string(),
            on: on.to_vec(),
            format,
            secret_env: None,
            timeout: PromDuration::from_secs(10),
            max_attempts: None,
        }
    }

    fn config(webhooks: Vec<Webhook>) -> Config {
        let text =
            "slos:\n  - name: a\n    objective: 99.9\n    errors: e_total\n    total: t_total\n\
                    gates:\n  - name: checkout\n    rules:\n      - name: r\n        \
                    when: burn_rate(\"a\", \"1h\") > 14.4\n        then: rollback\n";
        let mut config = gate_rules::config::load_str("gate.yaml", text).unwrap();
        config.webhooks = webhooks;
        config
    }

    fn change(decision: Decision) -> DecisionChange {
        DecisionChange {
            train: gate_rules::train_id::validate("t-123").unwrap(),
            gate: "checkout".to_string(),
            decision,
            previous: Decision::Pending,
            reason: "fast-burn: burn_rate 15.5 > 14.4".to_string(),
            rule: Some("fast-burn".to_string()),
            evaluated_at: at(),
            seq: 3,
            evidence: json!({"rules": [{"name": "fast-burn", "fired": true}]}),
            artifact: None,
            gates: Vec::new(),
        }
    }

    #[test]
    fn one_event_per_webhook_that_listens_for_the_decision() {
        let config = config(vec![
            hook(
                "deployer",
                &[Decision::Rollback, Decision::Promote],
                WebhookFormat::Json,
            ),
            hook("audit", &Decision::ALL, WebhookFormat::Cloudevents),
            hook("pager", &[Decision::Pause], WebhookFormat::Json),
        ]);
        let rollback = events_for_change(&config, &change(Decision::Rollback));
        let names: Vec<&str> = rollback.iter().map(|e| e.webhook.as_str()).collect();
        assert_eq!(names, ["deployer", "audit"]);
        let pending = events_for_change(&config, &change(Decision::Pending));
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].webhook, "audit");

        let ids: HashSet<&str> = rollback
            .iter()
            .chain(&pending)
            .map(|e| e.event_id.as_str())
            .collect();
        assert_eq!(ids.len(), 3, "event IDs are unique");
        for event in rollback.iter().chain(&pending) {
            assert_eq!(event.payload["id"], event.event_id.as_str());
        }
    }

    #[test]
    fn json_body_has_every_field_of_the_spec() {
        let config = config(vec![hook("deployer", &Decision::ALL, WebhookFormat::Json)]);
        let event = events_for_change(&config, &change(Decision::Rollback)).remove(0);
        let body = &event.payload;
        let mut keys: Vec<&str> = body
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "decision",
                "evaluated_at",
                "evidence",
                "gate",
                "id",
                "previous",
                "reason",
                "rule",
                "seq",
                "train",
                "type"
            ]
        );
        assert_eq!(body["type"], "gate.decision");
        assert_eq!(body["train"], "t-123");
        assert_eq!(body["gate"], "checkout");
        assert_eq!(body["decision"], "rollback");
        assert_eq!(body["previous"], "pending");
        assert_eq!(body["rule"], "fast-burn");
        assert_eq!(body["evaluated_at"], "2026-11-01T12:00:00Z");
        assert_eq!(body["seq"], 3);
        assert_eq!(body["evidence"], change(Decision::Rollback).evidence);
        let no_rule = DecisionChange {
            rule: None,
            ..change(Decision::Promote)
        };
        assert_eq!(json_body("x", &no_rule)["rule"], Value::Null);
    }

    #[test]
    fn cloudevents_carry_a_cdevent_of_the_fitting_type() {
        let cases = [
            (Decision::Rollback, "dev.cdevents.service.rolledback.0.3.0"),
            (Decision::Promote, "dev.cdevents.service.deployed.0.3.0"),
            (Decision::Pause, "dev.cdeventsx.gate-decision.paused.0.1.0"),
            (
                Decision::Pending,
                "dev.cdeventsx.gate-decision.pending.0.1.0",
            ),
        ];
        for (decision, kind) in cases {
            let ce = cloudevent("ev-1", &change(decision));
            assert_eq!(ce["specversion"], "1.0");
            assert_eq!(ce["id"], "ev-1");
            assert_eq!(ce["source"], "/gate/checkout");
            assert_eq!(ce["type"], kind);
            assert_eq!(ce["subject"], "t-123");
            assert_eq!(ce["time"], "2026-11-01T12:00:00Z");
            assert_eq!(ce["datacontenttype"], "application/json");
            let data = &ce["data"];
            assert_eq!(
                data["context"],
                json!({"specversion": "0.5.1", "id": "ev-1", "source": "/gate/checkout",
                       "type": kind, "timestamp": "2026-11-01T12:00:00Z"})
            );
            let mut subject_keys: Vec<&String> =
                data["subject"].as_object().unwrap().keys().collect();
            subject_keys.sort_unstable();
            assert_eq!(subject_keys, ["content", "id", "source"]);
            assert_eq!(data["subject"]["id"], "t-123");
            assert_eq!(data["customData"]["decision"], decision.as_str());
            assert_eq!(data["customData"]["evidence"], change(decision).evidence);
            assert_eq!(data["customDataContentType"], "application/json");
        }
        let deployed = cloudevent("ev-2", &change(Decision::Promote));
        assert_eq!(
            deployed["data"]["subject"]["content"],
            json!({"environment": {"id": "checkout", "source": "/gate/checkout"},
                   "artifactId": "pkg:generic/t-123"})
        );
        assert_eq!(
            content_type(WebhookFormat::Cloudevents),
            "application/cloudevents+json"
        );
    }

    #[test]
    fn the_artifact_label_is_the_artifact_id_when_it_is_a_purl() {
        let labelled = |artifact: &str| DecisionChange {
            artifact: Some(artifact.to_string()),
            ..change(Decision::Rollback)
        };
        let purl = "pkg:oci/checkout@sha256%3Aab12?repository_url=ghcr.io/acme";
        let ce = cloudevent("ev-3", &labelled(purl));
        assert_eq!(ce["data"]["subject"]["content"]["artifactId"], purl);
        let ce = cloudevent("ev-4", &labelled("checkout v1.2"));
        assert_eq!(
            ce["data"]["subject"]["content"]["artifactId"],
            "pkg:generic/t-123"
        );
    }

    #[test]
    fn event_ids_are_uuid_v7_of_the_evaluation_time() {
        let id = new_event_id(at(), [7; 10]);
        let uuid = uuid::Uuid::parse_str(&id).unwrap();
        assert_eq!(uuid.get_version_num(), 7);
        let (secs, _) = uuid.get_timestamp().unwrap().to_unix();
        assert_eq!(secs as i64, at().timestamp());
        assert_ne!(id, new_event_id(at(), [8; 10]));
        assert_eq!(id, new_event_id(at(), [7; 10]));
    }
}
