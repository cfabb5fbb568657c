//! `GET /v1/calendar`: when each gate may promote — its next departure windows and its
//! freezes — computed from the config at the clock's now by [`gate_rules::calendar`].

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Duration, Utc};
use gate_api::calendar::{Freeze, Window};
use gate_api::{Calendar, ErrorBody, GateCalendar};
use gate_rules::calendar;
use gate_rules::config::{Approval, Gate};
use serde::Deserialize;

use super::{json_body, ApiError, ApiQuery, AppState};

/// How far ahead `windows` are listed.
const HORIZON_DAYS: i64 = 7;

/// `GET /v1/calendar` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct CalendarQuery {
    /// Only this gate.
    #[serde(default)]
    gate: Option<String>,
}

#[utoipa::path(
    get, path = "/v1/calendar", tag = "trains",
    description = "Each gate's departure windows of the next 7 days and its freezes that have not ended, whether a verified train would promote now, and if not why and when it could.",
    params(CalendarQuery),
    responses(
        (status = 200, description = "The calendars", body = Calendar),
        (status = 400, description = "A bad query parameter (`invalid_query`)", body = ErrorBody),
        (status = 401, description = "Token missing or wrong (`unauthorized`)", body = ErrorBody),
        (status = 403, description = "The token lacks the `read` scope (`forbidden`)", body = ErrorBody),
        (status = 404, description = "No gate of that name in the config (`gate_not_found`)", body = ErrorBody),
    ),
    security((), ("bearer" = []))
)]
pub(crate) async fn calendar(
    State(shared): AppState,
    ApiQuery(query): ApiQuery<CalendarQuery>,
) -> Result<Response, ApiError> {
    let config = shared.runtime().config.clone();
    let at = shared.clock.now();
    let gates: Vec<&Gate> = match &query.gate {
        None => config.gates.iter().collect(),
        Some(name) => match config.gate(name) {
            Some(gate) => vec![gate],
            None => {
                let names: Vec<&str> = config.gates.iter().map(|g| g.name.as_str()).collect();
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    "gate_not_found",
                    format!(
                        "unknown gate `{name}`; the config has: {}",
                        names.join(", ")
                    ),
                ));
            }
        },
    };
    let until = at + Duration::days(HORIZON_DAYS);
    let body = Calendar {
        at,
        until,
        gates: gates
            .into_iter()
            .map(|g| gate_calendar(g, at, until))
            .collect(),
    };
    Ok(json_body(StatusCode::OK, &body))
}

/// One gate's calendar from `at` to `until`.
pub fn gate_calendar(gate: &Gate, at: DateTime<Utc>, until: DateTime<Utc>) -> GateCalendar {
    let hold = calendar::hold_reason(gate, at);
    GateCalendar {
        gate: gate.name.clone(),
        open: hold.is_none(),
        hold,
        next_departure: calendar::next_departure(gate, at).map(|(t, _)| t),
        approval_required: gate.approval == Approval::Required,
        windows: calendar::windows(gate, at, until)
            .into_iter()
            .map(|w| Window {
                opens: w.opens,
                closes: w.closes,
                timezone: w.departure.timezone.name().to_string(),
                local: w
                    .opens
                    .with_timezone(&w.departure.timezone)
                    .format("%a %H:%M %Z")
                    .to_string(),
            })
            .collect(),
        freezes: gate
            .freezes
            .iter()
            .filter(|f| f.to > at)
            .map(|f| Freeze {
                from: f.from,
                to: f.to,
                reason: f.reason.clone(),
            })
            .collect(),
    }
}
