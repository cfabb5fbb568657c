//! Trains on the wire: the registration request, the train as the API shows it, the list, and
//! the compact decision that pipelines long-poll.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use gate_rules::{Decision, TrainId};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

use crate::schema::{present, DecisionSchema, TrainIdSchema};

/// Where a train is in its life: `verifying` (pending) → `promoted` (watched for `watch_for`,
/// then `done`), `paused` ⇄ `verifying`, `rolled_back` (latched), `stopped` (by `DELETE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Lifecycle {
    /// Being verified: decision `pending`.
    Verifying,
    /// Promoted and still watched for `watch_for`.
    Promoted,
    /// Held.
    Paused,
    /// Rolled back (the decision is latched).
    RolledBack,
    /// Finished: no longer evaluated (e.g. the watch after promotion ended).
    Done,
    /// Stopped by an operator (`DELETE /v1/trains/{id}`); kept in history.
    Stopped,
}

impl Lifecycle {
    /// All states.
    pub const ALL: [Lifecycle; 6] = [
        Lifecycle::Verifying,
        Lifecycle::Promoted,
        Lifecycle::Paused,
        Lifecycle::RolledBack,
        Lifecycle::Done,
        Lifecycle::Stopped,
    ];

    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Lifecycle::Verifying => "verifying",
            Lifecycle::Promoted => "promoted",
            Lifecycle::Paused => "paused",
            Lifecycle::RolledBack => "rolled_back",
            Lifecycle::Done => "done",
            Lifecycle::Stopped => "stopped",
        }
    }

    /// Whether the daemon still evaluates a train in this state (all but `done`, `stopped`).
    pub fn is_active(self) -> bool {
        !matches!(self, Lifecycle::Done | Lifecycle::Stopped)
    }
}

impl fmt::Display for Lifecycle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Lifecycle {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Lifecycle::ALL
            .into_iter()
            .find(|l| l.as_str() == s)
            .ok_or_else(|| format!("unknown lifecycle state `{s}`"))
    }
}

/// `POST /v1/trains`: a train registration. Registering the same body again is idempotent;
/// a different body for the same `id` is a conflict.
///
/// The IDs are plain strings here so that the server can answer a bad one with
/// `400 invalid_train_id` rather than a generic `422 invalid_body`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// The train ID: letters, digits and `._:-/`, 1–128 characters.
    #[schema(example = "t-123", pattern = r"^[A-Za-z0-9._:/-]{1,128}$")]
    pub id: String,
    /// The gate (by name in the config) that judges the train. Give `gate` or `gates`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "checkout")]
    pub gate: Option<String>,
    /// The gates that judge the train together, in order (one per service or team): the
    /// train's verdict is the most severe of their decisions. Give `gate` or `gates`; a list
    /// of one is the same train as `gate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = json!(["checkout", "pricing"]))]
    pub gates: Option<Vec<String>>,
    /// When the train started: RFC 3339 or unix seconds, kept to the millisecond (finer
    /// digits are dropped). Defaults to the registration time.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "time_or_unix"
    )]
    #[schema(value_type = Option<TimeOrUnix>)]
    pub started_at: Option<DateTime<Utc>>,
    /// The baseline train for `baseline: previous_train`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "t-122")]
    pub baseline: Option<String>,
    /// Free-form labels shown with the train.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// A time as RFC 3339 (`2026-11-01T11:00:00Z`) or unix seconds (`1793530800`, also as a
/// string, with up to millisecond fractions).
#[derive(ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum TimeOrUnix {
    /// RFC 3339.
    #[schema(value_type = String, format = DateTime)]
    Rfc3339(String),
    /// Unix seconds.
    Unix(f64),
}

fn time_or_unix<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Text(String),
        Unix(f64),
    }
    let parsed = match Option::<Raw>::deserialize(d)? {
        None => return Ok(None),
        Some(Raw::Text(s)) => gate_rules::time::parse_time(&s),
        Some(Raw::Unix(secs)) => gate_rules::time::from_unix_secs(secs),
    };
    parsed
        .map(Some)
        .map_err(|e| serde::de::Error::custom(format!("started_at: {e}")))
}

/// A train as `GET /v1/trains/{id}` (with `evaluation`) and `GET /v1/trains` (without)
/// return it.
///
/// `E` is the type of the latest evaluation report: the server embeds the stored JSON as it
/// is, the CLI reads it as its report type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, bound(deserialize = "E: Deserialize<'de>"))]
#[schema(as = Train, bound = "")]
pub struct Train<E = serde_json::Value> {
    /// Train ID.
    #[serde(rename = "train")]
    #[schema(value_type = TrainIdSchema)]
    pub id: TrainId,
    /// Gate name (the first of `gates` for a train of several gates).
    pub gate: String,
    /// Lifecycle state.
    #[serde(rename = "state")]
    pub lifecycle: Lifecycle,
    /// Current decision (an override included).
    #[schema(value_type = DecisionSchema)]
    pub decision: Decision,
    /// The one-line reason of the current decision.
    pub reason: String,
    /// The deciding rule, if one did.
    pub rule: Option<String>,
    /// Bumped by every decision change and override; never goes back.
    pub seq: u64,
    /// When the latest evaluation ran (`null` before the first).
    pub evaluated_at: Option<DateTime<Utc>>,
    /// When the train started.
    pub started_at: DateTime<Utc>,
    /// The baseline train.
    #[schema(value_type = Option<TrainIdSchema>)]
    pub baseline: Option<TrainId>,
    /// Labels given at registration.
    pub labels: BTreeMap<String, String>,
    /// When the train was registered.
    pub registered_at: DateTime<Utc>,
    /// When the decision last became promote.
    pub promoted_at: Option<DateTime<Utc>>,
    /// When the train was stopped.
    pub stopped_at: Option<DateTime<Utc>>,
    /// A decision pinned by an override: the rules no longer change it until `resume`.
    #[schema(value_type = Option<DecisionSchema>)]
    pub pinned: Option<Decision>,
    /// Telemetry failures in a row.
    pub consecutive_errors: u32,
    /// Whether the daemon evaluates the train: false when rolled back, done, stopped, or its
    /// gate is no longer in the config.
    pub evaluating: bool,
    /// The latest evaluation, exactly as `gate eval --format json` prints it (`null` until
    /// the first evaluation). Only in `GET /v1/trains/{id}`; absent from lists.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    #[schema(value_type = Option<Object>)]
    pub evaluation: Option<Option<E>>,
    /// The burn-rate threshold the latest evaluation came closest to (or exceeded most);
    /// `null` without one. In `GET /v1/trains` and `GET /v1/trains/{id}`; absent from the
    /// answers of writes (register, stop).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    #[schema(value_type = Option<WorstBurn>)]
    pub worst_burn: Option<Option<WorstBurn>>,
    /// A train of several gates: each gate's decision (and, in `GET /v1/trains/{id}`, its
    /// evaluation), in the train's order; the fields above are then the train's verdict.
    /// Absent for a train of one gate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<TrainGate>>)]
    pub gates: Option<Vec<TrainGate<E>>>,
}

/// One gate's part of a train of several gates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, bound(deserialize = "E: Deserialize<'de>"))]
#[schema(as = TrainGate, bound = "")]
pub struct TrainGate<E = serde_json::Value> {
    /// The gate.
    pub gate: String,
    /// Where this gate's part is (`promoted` while watched, `done` after its watch).
    pub state: Lifecycle,
    /// The gate's decision.
    #[schema(value_type = DecisionSchema)]
    pub decision: Decision,
    /// Its reason.
    pub reason: String,
    /// Its deciding rule, if one did.
    pub rule: Option<String>,
    /// When the gate last evaluated the train.
    pub evaluated_at: Option<DateTime<Utc>>,
    /// The gate's latest evaluation (as `gate eval --format json` prints it; `null` until the
    /// first). Only in `GET /v1/trains/{id}`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    #[schema(value_type = Option<Object>)]
    pub evaluation: Option<Option<E>>,
}

impl<E> TrainGate<E> {
    /// The latest evaluation, if the answer has one.
    pub fn evaluation(&self) -> Option<&E> {
        self.evaluation.as_ref().and_then(Option::as_ref)
    }
}

/// A burn rate against the threshold of the rule that reads it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorstBurn {
    /// The signal, as the rule names it, e.g. `burn_rate("availability", "5m")`.
    pub signal: String,
    /// Its value at the latest evaluation.
    pub value: f64,
    /// The rule's threshold.
    pub threshold: f64,
    /// The rule.
    pub rule: String,
}

impl<E> Train<E> {
    /// The latest evaluation, if the answer has one.
    pub fn evaluation(&self) -> Option<&E> {
        self.evaluation.as_ref().and_then(Option::as_ref)
    }
}

/// `GET /v1/trains`: the trains by start time (then ID), each without `evaluation`, cut into
/// pages when `limit` is given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, bound(deserialize = "E: Deserialize<'de>"))]
#[schema(bound = "")]
pub struct TrainList<E = serde_json::Value> {
    /// The trains.
    #[schema(value_type = Vec<Train>)]
    pub trains: Vec<Train<E>>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    pub next_cursor: Option<String>,
}

/// `GET /v1/trains/{id}/decision` and `POST /v1/trains/{id}/override`: the compact decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    /// Train ID.
    #[schema(value_type = TrainIdSchema)]
    pub train: TrainId,
    /// Gate name.
    pub gate: String,
    /// The current decision.
    #[schema(value_type = DecisionSchema)]
    pub decision: Decision,
    /// Its one-line reason.
    pub reason: String,
    /// The deciding rule, if one did.
    pub rule: Option<String>,
    /// Bumped by every decision change and override: loop on `after_seq` = the last seen.
    pub seq: u64,
    /// When the latest evaluation ran (`null` before the first).
    pub evaluated_at: Option<DateTime<Utc>>,
    /// Lifecycle state.
    pub state: Lifecycle,
    /// A train of several gates: each gate's decision, in the train's order (the fields
    /// above are the train's verdict). Absent for a train of one gate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gates: Option<Vec<GateDecision>>,
}

/// One gate's decision about a train of several gates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GateDecision {
    /// The gate.
    pub gate: String,
    /// Its decision.
    #[schema(value_type = DecisionSchema)]
    pub decision: Decision,
    /// Its reason.
    pub reason: String,
    /// Its deciding rule, if one did.
    pub rule: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifecycle_names_are_their_json() {
        for l in Lifecycle::ALL {
            assert_eq!(serde_json::to_value(l).unwrap(), l.as_str());
            assert_eq!(l.as_str().parse::<Lifecycle>().unwrap(), l);
        }
        assert!("gone".parse::<Lifecycle>().is_err());
    }

    #[test]
    fn registration_takes_gate_or_gates() {
        let parse = |v: serde_json::Value| serde_json::from_value::<RegisterRequest>(v);
        let one = parse(serde_json::json!({"id": "t", "gate": "g"})).unwrap();
        assert_eq!(one.gate.as_deref(), Some("g"));
        assert_eq!(one.gates, None);
        let two = parse(serde_json::json!({"id": "t", "gates": ["a", "b"]})).unwrap();
        assert_eq!(two.gate, None);
        assert_eq!(two.gates, Some(vec!["a".to_string(), "b".to_string()]));
        assert_eq!(
            serde_json::to_value(&two).unwrap(),
            serde_json::json!({"id": "t", "gates": ["a", "b"]})
        );
    }

    #[test]
    fn registration_takes_rfc3339_or_unix_seconds_and_refuses_unknown_fields() {
        let parse = |v: serde_json::Value| serde_json::from_value::<RegisterRequest>(v);
        let rfc = parse(serde_json::json!({"id": "t", "gate": "g",
            "started_at": "2026-11-01T11:00:00.123456Z"}))
        .unwrap();
        let unix = parse(serde_json::json!({"id": "t", "gate": "g", "started_at": 1793530800.123}))
            .unwrap();
        assert_eq!(rfc, unix);
        assert_eq!(
            serde_json::to_value(&rfc).unwrap()["started_at"],
            "2026-11-01T11:00:00.123Z"
        );
        let err =
            parse(serde_json::json!({"id": "t", "gate": "g", "started_at": "soon"})).unwrap_err();
        assert!(err.to_string().starts_with("started_at: "), "{err}");
        assert!(parse(serde_json::json!({"id": "t", "gate": "g", "startd_at": 1})).is_err());
        let bare = parse(serde_json::json!({"id": "t", "gate": "g"})).unwrap();
        assert_eq!(
            serde_json::to_value(&bare).unwrap(),
            serde_json::json!({"id": "t", "gate": "g"})
        );
    }

    #[test]
    fn a_train_tells_a_null_evaluation_from_none() {
        let mut v = serde_json::json!({"train": "t-1", "gate": "g", "state": "verifying",
            "decision": "pending", "reason": "", "rule": null, "seq": 0, "evaluated_at": null,
            "started_at": "2026-11-01T11:00:00Z", "baseline": null, "labels": {},
            "registered_at": "2026-11-01T11:00:00Z", "promoted_at": null, "stopped_at": null,
            "pinned": null, "consecutive_errors": 0, "evaluating": true});
        let listed: Train = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(listed.evaluation, None);
        assert_eq!(serde_json::to_value(&listed).unwrap(), v);
        v["evaluation"] = serde_json::Value::Null;
        let detail: Train = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(detail.evaluation, Some(None));
        assert_eq!(serde_json::to_value(&detail).unwrap(), v);
        v["renamed"] = serde_json::json!(1);
        assert!(serde_json::from_value::<Train>(v).is_err());
    }
}
