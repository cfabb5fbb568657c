//! Operator overrides on the wire: `POST /v1/trains/{id}/override`, and approvals:
//! `POST /v1/trains/{id}/approve`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What an operator forces: `promote`, `pause`, `rollback` (each pins the decision) or
/// `resume` (clears a pin or a pause, also a rollback: the rules decide again).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OverrideAction {
    /// Force `promote`.
    Promote,
    /// Force `pause`.
    Pause,
    /// Force `rollback`.
    Rollback,
    /// Lift a pause or a pinned decision; the rules decide again.
    Resume,
}

impl OverrideAction {
    /// All actions.
    pub const ALL: [OverrideAction; 4] = [
        OverrideAction::Promote,
        OverrideAction::Pause,
        OverrideAction::Rollback,
        OverrideAction::Resume,
    ];

    /// The name used in the API and CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            OverrideAction::Promote => "promote",
            OverrideAction::Pause => "pause",
            OverrideAction::Rollback => "rollback",
            OverrideAction::Resume => "resume",
        }
    }
}

impl fmt::Display for OverrideAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OverrideAction {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        OverrideAction::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| {
                format!("unknown override `{s}` (expected promote, pause, rollback or resume)")
            })
    }
}

/// `POST /v1/trains/{id}/override`: `reason` and `actor` are required (not blank) and
/// recorded in the audit trail. With a named token (`gate serve --tokens`) the trail's actor
/// is the token's name and this `actor` is kept as `on_behalf_of`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OverrideRequest {
    /// What to force.
    pub decision: OverrideAction,
    /// Why.
    #[schema(example = "freeze for the sale", pattern = r"\S")]
    pub reason: String,
    /// Who.
    #[schema(example = "alice", pattern = r"\S")]
    pub actor: String,
}

/// Who an override names in a reason and in human output: `actor`, or
/// `actor (on behalf of someone)` when a named token acted for someone.
pub fn override_by(actor: &str, on_behalf_of: Option<&str>) -> String {
    match on_behalf_of {
        Some(person) => format!("{actor} (on behalf of {person})"),
        None => actor.to_string(),
    }
}

/// `POST /v1/trains/{id}/approve`: a person's go for a train whose gate has
/// `approval: required`. `reason` and `actor` are required (not blank) and recorded in the
/// audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApproveRequest {
    /// Why.
    #[schema(example = "release notes reviewed")]
    pub reason: String,
    /// Who.
    #[schema(example = "alice")]
    pub actor: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_names_are_their_json() {
        for a in OverrideAction::ALL {
            assert_eq!(serde_json::to_value(a).unwrap(), a.as_str());
            assert_eq!(a.as_str().parse::<OverrideAction>().unwrap(), a);
        }
        assert!("ship-it".parse::<OverrideAction>().is_err());
    }

    #[test]
    fn on_behalf_of_follows_the_actor() {
        assert_eq!(override_by("alice", None), "alice");
        assert_eq!(
            override_by("deploy-bot", Some("alice")),
            "deploy-bot (on behalf of alice)"
        );
    }
}
