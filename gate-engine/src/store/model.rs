//! The typed values that go into and come out of the store.
//!
//! Everything here is plain data: the store turns it into rows and back, nothing else. Times
//! are `DateTime<Utc>` passed in by callers and kept at millisecond precision (the columns are
//! unix milliseconds), so a value read back may have lost its sub-millisecond part. Webhook
//! payloads are opaque `serde_json::Value`s and an evaluation's evidence is [`Evidence`]: the store
//! writes their JSON, it never looks inside.
//!
//! Evidence is never a `serde_json::Value`: the daemon holds the latest evaluation of every
//! train and replaces all of them every cycle, and a `Value` tree costs about twice the heap of
//! the text and an allocation per node. An evaluation of this process is kept as its typed
//! report and encoded only when something reads it as JSON (the API, a webhook, the store's
//! write — once a minute for an evaluation that changed nothing); evidence read back from the
//! store stays the text it was.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use gate_rules::decide::TrainState;
use gate_rules::Decision;
use gate_rules::TrainId;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::value::RawValue;

use crate::report::EvaluationReport;

/// The lifecycle, override and delivery states are the API's: the store keeps their names
/// ([`Lifecycle::as_str`] and the like) in its columns.
/// The delivery record of one webhook event is the API's, as `events` and `status` show it.
pub use gate_api::{Delivery, DeliveryState, Lifecycle, OverrideAction};

/// An evaluation's evidence: its report as this process built it, or the JSON text the store
/// kept.
///
/// Cloning shares it. Serializing writes the report's JSON (text read back is embedded as it
/// is, not as a string); equality compares the JSON.
#[derive(Clone)]
pub struct Evidence(Arc<Repr>);

enum Repr {
    /// Built by an evaluation of this process: encoded when read as JSON.
    Report(EvaluationReport),
    /// JSON text, e.g. read back from the store.
    Text(Box<RawValue>),
}

impl Evidence {
    /// The evidence of an evaluation report; encoded to JSON only when read as JSON.
    pub fn of_report(report: EvaluationReport) -> Evidence {
        Evidence(Arc::new(Repr::Report(report)))
    }

    /// Encodes `report` as JSON.
    pub fn encode<T: Serialize + ?Sized>(report: &T) -> Result<Evidence, serde_json::Error> {
        serde_json::value::to_raw_value(report).map(|raw| Evidence(Arc::new(Repr::Text(raw))))
    }

    /// Evidence from JSON text (e.g. read back from the store); fails if it is not JSON.
    pub fn from_json(text: String) -> Result<Evidence, serde_json::Error> {
        RawValue::from_string(text).map(|raw| Evidence(Arc::new(Repr::Text(raw))))
    }

    /// The report, when this process built it (`None` for text read back).
    pub fn report(&self) -> Option<&EvaluationReport> {
        match &*self.0 {
            Repr::Report(report) => Some(report),
            Repr::Text(_) => None,
        }
    }

    /// The JSON text: borrowed when it is text, encoded when it is a report.
    pub fn json(&self) -> Cow<'_, str> {
        match &*self.0 {
            Repr::Text(raw) => Cow::Borrowed(raw.get()),
            // A report has string keys and finite-or-named numbers only: it always encodes.
            Repr::Report(report) => {
                Cow::Owned(serde_json::to_string(report).unwrap_or_else(|_| "null".to_owned()))
            }
        }
    }

    /// The evidence parsed into a `serde_json::Value` (for a webhook payload); `null` only if
    /// text nests deeper than serde_json's parser allows.
    pub fn to_value(&self) -> serde_json::Value {
        match &*self.0 {
            Repr::Text(raw) => serde_json::from_str(raw.get()).unwrap_or(serde_json::Value::Null),
            Repr::Report(report) => serde_json::to_value(report).unwrap_or(serde_json::Value::Null),
        }
    }
}

impl<'de> Deserialize<'de> for Evidence {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Box::<RawValue>::deserialize(deserializer).map(|raw| Evidence(Arc::new(Repr::Text(raw))))
    }
}

impl fmt::Debug for Evidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Evidence").field(&self.json()).finish()
    }
}

impl PartialEq for Evidence {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.json() == other.json()
    }
}

impl Serialize for Evidence {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match &*self.0 {
            Repr::Text(raw) => raw.serialize(serializer),
            Repr::Report(report) => report.serialize(serializer),
        }
    }
}

/// A train registration as the pipeline sent it (`POST /v1/trains`).
///
/// The body is kept verbatim: registering the same ID again with an equal body is idempotent,
/// with a different body it is a conflict. `started_at` stays `None` when the caller did not
/// give one (the store then uses the registration time), so a retried request without
/// `started_at` is still the same body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewTrain {
    /// The train ID.
    pub id: TrainId,
    /// The gate that judges the train (the first of `gates` when there are several).
    pub gate: String,
    /// Every gate that judges the train, in order, when there are two or more; empty for a
    /// train of one gate (whose stored form is as it always was).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gates: Vec<String>,
    /// When the train started; `None`: at registration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    /// The baseline train for `baseline: previous_train`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<TrainId>,
    /// Free-form labels shown with the train.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// The outcome of [`crate::store::Store::register`].
#[derive(Debug, Clone, PartialEq)]
pub enum Registration {
    /// The train is new.
    Created(TrainRecord),
    /// The train was already registered with the same body: nothing changed.
    Existing(TrainRecord),
}

impl Registration {
    /// The train, new or existing.
    pub fn record(&self) -> &TrainRecord {
        match self {
            Registration::Created(r) | Registration::Existing(r) => r,
        }
    }

    /// Whether this call created the train.
    pub fn is_created(&self) -> bool {
        matches!(self, Registration::Created(_))
    }
}

/// Which trains [`crate::store::Store::trains`] lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrainFilter {
    /// Trains still evaluated ([`Lifecycle::is_active`]).
    Active,
    /// Every train ever registered.
    All,
}

/// A train as stored: registration, current decision and latest evaluation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrainRecord {
    /// The train ID.
    pub id: TrainId,
    /// Its gate.
    pub gate: String,
    /// When it started (the registration time if none was given).
    pub started_at: DateTime<Utc>,
    /// Its baseline train, if any.
    pub baseline: Option<TrainId>,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Where it is in its life.
    pub lifecycle: Lifecycle,
    /// The current decision (`pending` from registration until the first change).
    pub decision: Decision,
    /// Bumped by every decision change and override; 0 at registration.
    pub seq: u64,
    /// The one-line reason for the current decision (latest evaluation or override).
    pub reason: String,
    /// The rule that decided, if one did.
    pub rule: Option<String>,
    /// When the latest evaluation ran, if one has.
    pub evaluated_at: Option<DateTime<Utc>>,
    /// What the decision function remembers between evaluations.
    pub state: TrainState,
    /// The latest evaluation with its evidence, as the caller wrote it.
    pub evaluation: Option<Evidence>,
    /// When the train was registered.
    pub registered_at: DateTime<Utc>,
    /// When the decision last became `promote`.
    pub promoted_at: Option<DateTime<Utc>>,
    /// When the train was stopped.
    pub stopped_at: Option<DateTime<Utc>>,
    /// For a train of several gates, each gate's part, in the train's order (the decision
    /// above is then the train's verdict over them); empty for a train of one gate.
    pub gates: Vec<GateLeg>,
}

impl TrainRecord {
    /// The names of the gates that judge the train.
    pub fn gate_names(&self) -> Vec<&str> {
        if self.gates.is_empty() {
            vec![self.gate.as_str()]
        } else {
            self.gates.iter().map(|g| g.gate.as_str()).collect()
        }
    }

    /// Whether `gate` judges the train.
    pub fn has_gate(&self, gate: &str) -> bool {
        self.gate_names().contains(&gate)
    }

    /// The part of a train of several gates that `gate` judges.
    pub fn leg(&self, gate: &str) -> Option<&GateLeg> {
        self.gates.iter().find(|g| g.gate == gate)
    }
}

/// One gate's part of a train judged by several gates: the gate's own decision, state and
/// latest evaluation. Stored with the train (`gates_json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateLeg {
    /// The gate.
    pub gate: String,
    /// Where this gate's part is: `promoted` while watched, `done` when its watch ended.
    pub lifecycle: Lifecycle,
    /// The gate's decision.
    pub decision: Decision,
    /// Its reason.
    pub reason: String,
    /// Its deciding rule, if any.
    pub rule: Option<String>,
    /// When the gate last evaluated the train.
    pub evaluated_at: Option<DateTime<Utc>>,
    /// What the decision function remembers for this gate.
    pub state: TrainState,
    /// The gate's latest evaluation with its evidence.
    pub evaluation: Option<Evidence>,
}

impl GateLeg {
    /// A gate's part of a newly registered train.
    pub fn registered(gate: &str, reason: &str) -> GateLeg {
        GateLeg {
            gate: gate.to_string(),
            lifecycle: Lifecycle::Verifying,
            decision: Decision::Pending,
            reason: reason.to_string(),
            rule: None,
            evaluated_at: None,
            state: TrainState::default(),
            evaluation: None,
        }
    }
}

/// A webhook event to queue with a decision change.
#[derive(Debug, Clone, PartialEq)]
pub struct NewOutboxEvent {
    /// Unique event ID (receivers de-duplicate by it).
    pub event_id: String,
    /// The webhook's name in the config.
    pub webhook: String,
    /// The body to send.
    pub payload: serde_json::Value,
}

/// One evaluation of one train, to be written by
/// [`crate::store::Store::record_evaluations`].
#[derive(Debug, Clone, PartialEq)]
pub struct EvaluationWrite {
    /// The train.
    pub train: TrainId,
    /// The train's `seq` the evaluation started from. If the stored seq differs (an override
    /// landed meanwhile), the write is skipped as [`WriteOutcome::Stale`] so the override's
    /// state is not overwritten.
    pub based_on_seq: u64,
    /// The decision.
    pub decision: Decision,
    /// Its one-line reason.
    pub reason: String,
    /// The deciding rule, if any.
    pub rule: Option<String>,
    /// When the evaluation ran.
    pub evaluated_at: DateTime<Utc>,
    /// The state to remember for the next evaluation.
    pub state: TrainState,
    /// The full evaluation with its evidence.
    pub evidence: Evidence,
    /// The train's lifecycle state after this evaluation.
    pub lifecycle: Lifecycle,
    /// Webhook events for the decision change; written only when the decision changed.
    pub events: Vec<NewOutboxEvent>,
    /// For a train of several gates: every gate's part after this evaluation (the decision
    /// above is the train's verdict); `None` for a train of one gate.
    pub gates: Option<Vec<GateLeg>>,
}

/// What happened to one [`EvaluationWrite`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    /// Same decision as stored: latest evaluation and state updated, no history, no events.
    Unchanged,
    /// The decision changed: history and webhook events written under this new seq.
    Changed {
        /// The train's new seq.
        seq: u64,
    },
    /// Not written: the stored seq is no longer the one the evaluation started from.
    Stale {
        /// The stored seq.
        seq: u64,
    },
    /// Not written: the train is stopped.
    Stopped,
    /// Not written: no train with this ID.
    UnknownTrain,
}

/// An override to write with [`crate::store::Store::record_override`].
#[derive(Debug, Clone, PartialEq)]
pub struct OverrideWrite {
    /// The train.
    pub train: TrainId,
    /// What the operator asked for.
    pub action: OverrideAction,
    /// The decision that results.
    pub decision: Decision,
    /// The operator's reason.
    pub reason: String,
    /// Who asked (the token's name when a named token made the request).
    pub actor: String,
    /// Whom the request named as its actor, when that was someone other than `actor`.
    pub on_behalf_of: Option<String>,
    /// When.
    pub at: DateTime<Utc>,
    /// The state after the override (e.g. with `pinned` set or cleared).
    pub state: TrainState,
    /// The train's lifecycle state after the override.
    pub lifecycle: Lifecycle,
    /// Webhook events for the change.
    pub events: Vec<NewOutboxEvent>,
    /// For a train of several gates: every gate's part after the override.
    pub gates: Option<Vec<GateLeg>>,
}

/// An approval to write with [`crate::store::Store::record_approval`].
#[derive(Debug, Clone, PartialEq)]
pub struct ApprovalWrite {
    /// The train.
    pub train: TrainId,
    /// Why.
    pub reason: String,
    /// Who approved.
    pub actor: String,
    /// When.
    pub at: DateTime<Utc>,
    /// The state after the approval (with `approved_by` set).
    pub state: TrainState,
    /// For a train of several gates: every gate's part, each state with `approved_by` set.
    pub gates: Option<Vec<GateLeg>>,
}

/// A pending webhook event due for an attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEvent {
    /// Unique event ID.
    pub event_id: String,
    /// The train.
    pub train: TrainId,
    /// The train's seq the event belongs to.
    pub seq: u64,
    /// The webhook's name.
    pub webhook: String,
    /// The body to send.
    pub payload: serde_json::Value,
    /// When the event was queued.
    pub created_at: DateTime<Utc>,
    /// Attempts made so far.
    pub attempts: u32,
}

/// Counts of webhook events not delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct OutboxBacklog {
    /// Waiting for an attempt.
    pub pending: u64,
    /// Dead-lettered.
    pub dead: u64,
}

/// One entry of a train's audit trail (`GET /v1/trains/{id}/events`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AuditEvent {
    /// The train was registered (seq 0, decision `pending`).
    Registered {
        /// When.
        at: DateTime<Utc>,
        /// The body as registered.
        registration: NewTrain,
    },
    /// An evaluation changed the decision.
    Decision {
        /// The seq it got.
        seq: u64,
        /// The new decision.
        decision: Decision,
        /// The decision before.
        previous: Decision,
        /// Its reason.
        reason: String,
        /// The deciding rule, if any.
        rule: Option<String>,
        /// When the evaluation ran.
        evaluated_at: DateTime<Utc>,
        /// The evaluation with its evidence.
        evidence: serde_json::Value,
    },
    /// An operator override.
    Override {
        /// The seq it got.
        seq: u64,
        /// What was asked.
        action: OverrideAction,
        /// The resulting decision.
        decision: Decision,
        /// The decision before.
        previous: Decision,
        /// The operator's reason.
        reason: String,
        /// Who asked.
        actor: String,
        /// Whom the request named, when not `actor`.
        on_behalf_of: Option<String>,
        /// When.
        at: DateTime<Utc>,
    },
    /// A person approved the train (`approval: required`).
    Approval {
        /// The seq it got.
        seq: u64,
        /// Why.
        reason: String,
        /// Who.
        actor: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// A webhook event and its delivery.
    Delivery(Delivery),
    /// The train was stopped.
    Stopped {
        /// When.
        at: DateTime<Utc>,
    },
}

/// A train's life as the monthly review reads it ([`crate::store::Store::histories`]): when it
/// started, where it ended up, and every decision change and override in seq order.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainHistory {
    /// The train.
    pub id: TrainId,
    /// Its gate (the first, for a train of several gates).
    pub gate: String,
    /// Every gate that judges it, in the train's order.
    pub gates: Vec<String>,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// Where it is in its life now.
    pub lifecycle: Lifecycle,
    /// How it ended, once it finished.
    pub outcome: Option<Outcome>,
    /// When it was stopped, if it was.
    pub stopped_at: Option<DateTime<Utc>>,
    /// Decision changes and overrides, in seq order.
    pub changes: Vec<HistoryChange>,
}

/// One entry of a [`TrainHistory`]: a decision change by an evaluation, or an override.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryChange {
    /// The train's seq after it.
    pub seq: u64,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// The decision before.
    pub previous: Decision,
    /// The decision after (equal to `previous` for an override that pinned the decision it
    /// had).
    pub decision: Decision,
    /// The deciding rule of an evaluation.
    pub rule: Option<String>,
    /// The operator's action, for an override.
    pub override_action: Option<OverrideAction>,
}

/// How a finished train ended. The store keeps it with the train (a trigger sets it on every
/// change of lifecycle, see `schema.rs`): `promoted` at `done`, `rolled_back` at
/// `rolled_back`, cleared when the train is open again, and a stop keeps the outcome the train
/// already had — a train rolled back, or watched to the end, and then stopped still counts as
/// such.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Watched to the end of `watch_for` after its promotion (lifecycle `done`).
    Promoted,
    /// Rolled back.
    RolledBack,
    /// Stopped by an operator while still open.
    Stopped,
}

impl Outcome {
    /// The name stored and shown (`gate_trains_finished_total{outcome}`).
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Promoted => "promoted",
            Outcome::RolledBack => "rolled_back",
            Outcome::Stopped => "stopped",
        }
    }

    /// The outcome of an open train (verifying, promoted and watched, paused) whose lifecycle
    /// becomes `lifecycle`: `None` while it stays open.
    pub fn on_finishing(lifecycle: Lifecycle) -> Option<Outcome> {
        match lifecycle {
            Lifecycle::Done => Some(Outcome::Promoted),
            Lifecycle::RolledBack => Some(Outcome::RolledBack),
            Lifecycle::Stopped => Some(Outcome::Stopped),
            Lifecycle::Verifying | Lifecycle::Promoted | Lifecycle::Paused => None,
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Outcome {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Outcome::Promoted, Outcome::RolledBack, Outcome::Stopped]
            .into_iter()
            .find(|o| o.as_str() == s)
            .ok_or_else(|| format!("unknown outcome `{s}`"))
    }
}
