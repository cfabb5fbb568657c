//! A train's audit trail on the wire: `GET /v1/trains/{id}/events`.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use gate_rules::{Decision, TrainId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::schema::{DecisionSchema, TrainIdSchema};
use crate::{OverrideAction, RegisterRequest};

/// `GET /v1/trains/{id}/events`: the audit trail in seq order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventList {
    /// The train.
    #[schema(value_type = TrainIdSchema)]
    pub train: TrainId,
    /// Its events, oldest first.
    pub events: Vec<Event>,
}

/// One entry of a train's audit trail, tagged by `kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Event {
    /// The train was registered (seq 0, decision `pending`).
    Registered {
        /// When.
        at: DateTime<Utc>,
        /// The body as registered.
        registration: RegisterRequest,
    },
    /// An evaluation changed the decision.
    Decision {
        /// The seq it got.
        seq: u64,
        /// The new decision.
        #[schema(value_type = DecisionSchema)]
        decision: Decision,
        /// The decision before.
        #[schema(value_type = DecisionSchema)]
        previous: Decision,
        /// Its reason.
        reason: String,
        /// The deciding rule, if any.
        rule: Option<String>,
        /// When the evaluation ran.
        evaluated_at: DateTime<Utc>,
        /// The evaluation with its evidence, as `gate eval --format json` prints it.
        #[schema(value_type = Object)]
        evidence: serde_json::Value,
    },
    /// An operator override.
    Override {
        /// The seq it got.
        seq: u64,
        /// What was asked.
        action: OverrideAction,
        /// The resulting decision.
        #[schema(value_type = DecisionSchema)]
        decision: Decision,
        /// The decision before.
        #[schema(value_type = DecisionSchema)]
        previous: Decision,
        /// The operator's reason.
        reason: String,
        /// Who asked: the name of the token that made the request, or, on a daemon without
        /// tokens, the request's `actor`.
        actor: String,
        /// The request's `actor` when a named token made the override and it names someone
        /// else ("on behalf of"); null otherwise.
        on_behalf_of: Option<String>,
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

/// Where a webhook event is in its delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Waiting for its (next) attempt.
    Pending,
    /// A 2xx was received.
    Delivered,
    /// Given up after `max_attempts`: dead-lettered until redriven.
    Dead,
}

impl DeliveryState {
    /// All states.
    pub const ALL: [DeliveryState; 3] = [
        DeliveryState::Pending,
        DeliveryState::Delivered,
        DeliveryState::Dead,
    ];

    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Dead => "dead",
        }
    }
}

impl FromStr for DeliveryState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DeliveryState::ALL
            .into_iter()
            .find(|d| d.as_str() == s)
            .ok_or_else(|| format!("unknown delivery state `{s}`"))
    }
}

/// The delivery of one webhook event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Delivery {
    /// Unique event ID (receivers de-duplicate by it).
    pub event_id: String,
    /// The webhook's name in the config.
    pub webhook: String,
    /// The train's seq the event belongs to.
    pub seq: u64,
    /// Where the delivery is.
    pub state: DeliveryState,
    /// Attempts made so far.
    pub attempts: u32,
    /// When the event was queued.
    pub created_at: DateTime<Utc>,
    /// When the next attempt is due (meaningful while pending).
    pub next_attempt_at: DateTime<Utc>,
    /// The last failure, if any.
    pub last_error: Option<String>,
    /// The last HTTP status received, if any.
    pub last_status: Option<u16>,
    /// When it was delivered.
    pub delivered_at: Option<DateTime<Utc>>,
    /// When it was dead-lettered.
    pub dead_at: Option<DateTime<Utc>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_tagged_by_kind_and_strict() {
        let stopped = serde_json::json!({"kind": "stopped", "at": "2026-11-01T12:00:00Z"});
        let event: Event = serde_json::from_value(stopped.clone()).unwrap();
        assert!(matches!(event, Event::Stopped { .. }));
        assert_eq!(serde_json::to_value(&event).unwrap(), stopped);
        let mut extra = stopped;
        extra["by"] = serde_json::json!("alice");
        assert!(serde_json::from_value::<Event>(extra).is_err());
        for d in DeliveryState::ALL {
            assert_eq!(serde_json::to_value(d).unwrap(), d.as_str());
            assert_eq!(d.as_str().parse::<DeliveryState>().unwrap(), d);
        }
    }
}
