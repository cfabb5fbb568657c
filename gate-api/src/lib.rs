//! The wire format of gate's HTTP API: every request body, response body, error body and
//! audit event that `gate serve` sends or accepts, defined once and used by the server
//! (`gate-engine`'s `daemon::api`) and the CLI's client alike.
//!
//! The types are plain serde data with [`utoipa::ToSchema`] schemas, so the OpenAPI document
//! (`GET /v1/openapi.json`, `docs/openapi.json`) is generated from the same definitions the
//! code serializes; there is no second description of the format to drift. Field names here
//! are the JSON names (a Rust name that differs says so with `rename`).
//!
//! Responses deny unknown fields: the CLI reads the server's answers strictly, so a field
//! renamed or added on one side fails the client's tests against the real server instead of
//! being ignored. Both sides are built from this crate, so they change together.
//!
//! What is not here: the evaluation report (`gate-engine`'s `report`), which the API embeds
//! as the latest evaluation and which [`train::Train`] carries as a type parameter; the store's
//! records, which the server converts into these types.

#![deny(missing_docs)]

pub mod calendar;
pub mod error;
pub mod events;
pub mod ops;
pub mod overrides;
pub mod report;
pub mod schema;
pub mod train;

pub use calendar::{Calendar, GateCalendar};
pub use error::{ErrorBody, ErrorDetail};
pub use events::{Delivery, DeliveryState, Event, EventList};
pub use ops::{Health, Readiness, RedriveReport, RedriveRequest, ReloadReport, Role};
pub use overrides::{override_by, ApproveRequest, OverrideAction, OverrideRequest};
pub use report::{Figures, Report, TimeToVerdict};
pub use train::{
    DecisionBody, GateDecision, Lifecycle, RegisterRequest, Train, TrainGate, TrainList, WorstBurn,
};
