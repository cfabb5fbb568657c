//! The operations routes on the wire: reload, outbox redrive, liveness and readiness.

use gate_rules::TrainId;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::schema::TrainIdSchema;

/// `POST /v1/reload`: what a successful reload changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReloadReport {
    /// The gates now configured.
    pub gates: Vec<String>,
    /// Active trains whose gate is no longer configured: kept, not evaluated.
    #[schema(value_type = Vec<TrainIdSchema>)]
    pub unevaluated_trains: Vec<TrainId>,
}

/// `GET /healthz`: `{"status": "ok"}` while the process runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Health {
    /// Always `ok`.
    #[schema(example = "ok")]
    pub status: String,
}

/// `GET /readyz`: whether the replica is ready, what failed if not, and its role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Readiness {
    /// Whether the daemon is ready.
    pub ready: bool,
    /// `ok`, or why the store does not answer.
    pub store: String,
    /// `ok`, or why Prometheus is not reachable.
    pub prometheus: String,
    /// `leader` (evaluates trains, delivers webhooks) or `follower` (serves the API from the
    /// shared store). A daemon on an SQLite file always leads.
    pub role: Role,
    /// The ID of the replica that leads, when one holds the lease.
    #[serde(default)]
    pub leader: Option<String>,
    /// This replica's ID (`--replica`).
    pub replica: String,
}

/// A replica's role in `/readyz`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Holds the lease: evaluates trains and delivers webhooks.
    Leader,
    /// Serves the API; takes over when the leader's lease lapses.
    Follower,
}

/// `POST /v1/outbox/redrive`: which dead-lettered webhook events to queue again.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedriveRequest {
    /// Only this train's events; every train's when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "t-123")]
    pub train: Option<String>,
}

/// `POST /v1/outbox/redrive`: how many dead letters went back in the queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedriveReport {
    /// Events queued again, each in its place in its train's order, attempts reset.
    pub redriven: u64,
}
