//! The gates' calendars on the wire: `GET /v1/calendar`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `GET /v1/calendar`: when each gate may promote, from the time of the request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Calendar {
    /// The time the calendar was computed at.
    pub at: DateTime<Utc>,
    /// Until when `windows` are listed (`at` + 7 days).
    pub until: DateTime<Utc>,
    /// One entry per gate, in config order (one with `?gate=`).
    pub gates: Vec<GateCalendar>,
}

/// One gate's calendar.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GateCalendar {
    /// The gate.
    pub gate: String,
    /// Whether a verified train of this gate would promote at `at` (no freeze, inside a
    /// window if the gate has windows; approval aside).
    pub open: bool,
    /// Why it would not, in the words of a held train's reason (`frozen: … until …`,
    /// `holding for the departure window: opens Tue 09:00 CET`); `null` when open.
    pub hold: Option<String>,
    /// The first time from `at` on at which the gate may promote (`at` itself when open;
    /// `null` if none within ten years).
    pub next_departure: Option<DateTime<Utc>>,
    /// Whether a verified train also waits for `gate approve` (`approval: required`).
    pub approval_required: bool,
    /// The window openings that end after `at` and open before `until`, in time order;
    /// empty when the gate has no `departures` (it may promote at any time).
    pub windows: Vec<Window>,
    /// The freezes that end after `at`, in time order.
    pub freezes: Vec<Freeze>,
}

/// One opening of a departure window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Window {
    /// When it opens.
    pub opens: DateTime<Utc>,
    /// When it closes.
    pub closes: DateTime<Utc>,
    /// The IANA time zone of the window's `from` and `to`.
    #[schema(example = "Europe/Berlin")]
    pub timezone: String,
    /// The opening on the window's own clock, e.g. `Tue 09:00 CET`.
    #[schema(example = "Tue 09:00 CET")]
    pub local: String,
}

/// A freeze: no promotion from `from` (included) to `to` (excluded).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Freeze {
    /// Start.
    pub from: DateTime<Utc>,
    /// End.
    pub to: DateTime<Utc>,
    /// Why.
    pub reason: String,
}
