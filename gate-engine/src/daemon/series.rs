//! `GET /v1/trains/{id}/series?from=&to=&step=`: a train's signals at every step of a time
//! range, for the burn-rate chart of the web page (and anyone who wants the numbers).
//!
//! The values come from Prometheus through [`crate::replay::series`], which reads them as
//! `gate replay` does: range queries on the step grid for the windowed signals, raw samples
//! for the growing ones, so a step's value is the one an evaluation at that instant computes.
//! Nothing is stored: every request reads Prometheus again, with the config in force.
//!
//! The range defaults to the train's life: from its start to now, or to its last evaluation
//! once the daemon no longer evaluates it (rolled back, done) or to when it was stopped. The
//! default step gives at most [`DEFAULT_POINTS`] points; an explicit one may give up to
//! [`MAX_POINTS`], so a request cannot make the daemon read an unbounded range.
//!
//! The route sits behind the API's authentication like every other read: it is merged into
//! the API router before the auth layer.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};
use gate_api::ErrorBody;
use gate_rules::{Decision, PromDuration};
use serde::{Deserialize, Serialize};

use super::api::{ApiError, ApiQuery, TrainPath};
use super::{state, Shared};
use crate::planner::TrainSpec;
use crate::replay::range_plan::Grid;
use crate::replay::series::SeriesPoint;
use crate::replay::ReplayError;
use crate::report::rfc3339;
use crate::store::{StoreError, TrainRecord};

/// Most points a request may ask for.
pub const MAX_POINTS: usize = 1000;
/// Most points of the default step.
pub const DEFAULT_POINTS: usize = 300;
/// The smallest step (Prometheus' resolution is a millisecond, a scrape's seconds).
pub const MIN_STEP: Duration = Duration::from_secs(1);

/// The series route, to merge into the API router inside its authentication.
pub fn router() -> Router<Arc<Shared>> {
    Router::new().route("/v1/trains/{id}/series", get(series))
}

/// `GET /v1/trains/{id}/series` query.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct SeriesQuery {
    /// RFC 3339; default: the train's start.
    #[serde(default)]
    #[param(example = "2026-11-01T11:00:00Z")]
    from: Option<String>,
    /// RFC 3339; default: now while the daemon evaluates the train, else its last
    /// evaluation or its stop.
    #[serde(default)]
    to: Option<String>,
    /// A duration, at least `1s`, at most 1,000 points over the range; default: the
    /// smallest whole number of seconds that gives at most 300 points.
    #[serde(default)]
    #[param(example = "15s")]
    step: Option<String>,
}

/// The steps of a request, validated.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Range {
    from: DateTime<Utc>,
    step: PromDuration,
    points: usize,
}

impl Range {
    fn grid(&self) -> Grid {
        Grid {
            start: self.from,
            step: self.step.as_duration(),
        }
    }
}

/// A rule's comparison of a signal against a constant, for a threshold line.
#[derive(Debug, Serialize)]
struct Threshold<'a> {
    rule: &'a str,
    then: Decision,
    signal: String,
    op: String,
    value: f64,
}

/// The response body.
#[derive(Debug, Serialize)]
struct SeriesBody<'a> {
    train: &'a str,
    gate: &'a str,
    #[serde(with = "rfc3339")]
    from: DateTime<Utc>,
    #[serde(with = "rfc3339")]
    to: DateTime<Utc>,
    step: PromDuration,
    thresholds: Vec<Threshold<'a>>,
    steps: Vec<SeriesPoint>,
}

fn invalid(message: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", message)
}

fn parse_time(name: &str, text: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            invalid(format!(
                "{name}: `{text}` is not an RFC 3339 time (2026-11-01T12:00:00Z)"
            ))
        })
}

/// Where the train's life ends for the chart: now while it is evaluated, else its last
/// evaluation (or its stop).
fn end_of(record: &TrainRecord, now: DateTime<Utc>) -> DateTime<Utc> {
    if state::is_evaluated(record.lifecycle) {
        return now;
    }
    record
        .stopped_at
        .into_iter()
        .chain(record.evaluated_at)
        .max()
        .unwrap_or(now)
        .min(now)
}

/// Validates the parameters against the train; the defaults span its life.
fn range(query: &SeriesQuery, record: &TrainRecord, now: DateTime<Utc>) -> Result<Range, ApiError> {
    let from = query
        .from
        .as_deref()
        .map(|t| parse_time("from", t))
        .transpose()?;
    let to = query
        .to
        .as_deref()
        .map(|t| parse_time("to", t))
        .transpose()?;
    let explicit = from.is_some() || to.is_some();
    let from = from.unwrap_or(record.started_at);
    let mut to = to.unwrap_or_else(|| end_of(record, now));
    if from > to {
        if explicit {
            return Err(invalid(format!(
                "from {} is after to {}",
                rfc3339_text(from),
                rfc3339_text(to)
            )));
        }
        to = from;
    }
    let span_ms = (to - from).num_milliseconds().max(0) as u128;
    let step = match query.step.as_deref() {
        Some(text) => {
            let step: PromDuration = text
                .parse()
                .map_err(|e| invalid(format!("step: `{text}`: {e}")))?;
            if step.as_duration() < MIN_STEP {
                return Err(invalid(format!(
                    "step: `{text}` is shorter than {}s",
                    MIN_STEP.as_secs()
                )));
            }
            let points = span_ms / step.as_duration().as_millis() + 1;
            if points > MAX_POINTS as u128 {
                let least = span_ms.div_ceil((MAX_POINTS - 1) as u128 * 1000).max(1);
                return Err(invalid(format!(
                    "step: `{text}` gives {points} points from {} to {}, more than {MAX_POINTS}; \
                     use a step of at least {least}s, or a shorter range",
                    rfc3339_text(from),
                    rfc3339_text(to)
                )));
            }
            step
        }
        None => {
            let secs = span_ms.div_ceil((DEFAULT_POINTS - 1) as u128 * 1000).max(1);
            PromDuration::from_secs(secs as u64)
        }
    };
    let points = (span_ms / step.as_duration().as_millis()) as usize + 1;
    Ok(Range { from, step, points })
}

fn rfc3339_text(t: DateTime<Utc>) -> String {
    crate::report::format_time(t)
}

fn prometheus_error(e: ReplayError) -> ApiError {
    match e {
        ReplayError::Plan(e) => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("cannot plan the queries: {e}"),
        ),
        e => ApiError::new(
            StatusCode::BAD_GATEWAY,
            "prometheus_error",
            format!("cannot read the series from Prometheus: {e}"),
        ),
    }
}

#[utoipa::path(
    get, path = "/v1/trains/{id}/series", tag = "trains",
    description = "The train's signals at every step of a time range, read from Prometheus: \
        `{train, gate, from, to, step, thresholds: [{rule, then, signal, op, value}], steps: \
        [{at, burn_rate, error_ratio, requests, errors, budget_remaining, telemetry_error}]}` \
        (see docs/api.md).",
    params(
        ("id" = gate_api::schema::TrainIdSchema, Path, description = "The train ID; percent-encode a `/` (`team%2Fcheckout:42`)"),
        SeriesQuery,
    ),
    responses(
        (status = 200, description = "The steps", body = Object),
        (status = 400, description = "A bad train ID, time, step or too many points (`invalid_train_id`, `invalid_query`, `invalid_path`)", body = ErrorBody),
        (status = 401, description = "Token missing or wrong (`unauthorized`)", body = ErrorBody),
        (status = 403, description = "The token lacks the `read` scope (`forbidden`)", body = ErrorBody),
        (status = 404, description = "Unknown train (`train_not_found`)", body = ErrorBody),
        (status = 409, description = "The train's gate is no longer in the config (`unknown_gate`)", body = ErrorBody),
        (status = 502, description = "Prometheus failed or answered with warnings (`prometheus_error`)", body = ErrorBody),
    ),
    security((), ("bearer" = []))
)]
pub(crate) async fn series(
    State(shared): State<Arc<Shared>>,
    TrainPath(id): TrainPath,
    ApiQuery(query): ApiQuery<SeriesQuery>,
) -> Result<Response, ApiError> {
    let record = match shared.trains.get(&id) {
        Some(view) => view.record.clone(),
        None => {
            let key = id.clone();
            shared
                .blocking(move |store| store.train(&key))
                .await?
                .ok_or_else(|| {
                    ApiError::from(super::BlockingError::Store(StoreError::NotFound(
                        id.clone(),
                    )))
                })?
        }
    };
    let runtime = shared.runtime();
    let config = runtime.config.clone();
    let Some(gate) = config.gate(&record.gate) else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "unknown_gate",
            format!(
                "train {id}'s gate `{}` is no longer in the config: its signals are not defined",
                record.gate
            ),
        ));
    };
    let range = range(&query, &record, shared.clock.now())?;
    let spec = TrainSpec {
        id: record.id.clone(),
        started_at: record.started_at,
        baseline: record.baseline.clone(),
    };
    let steps = crate::replay::series::series(
        &runtime.client,
        &config,
        gate,
        &spec,
        range.grid(),
        range.points,
    )
    .await
    .map_err(prometheus_error)?;
    let thresholds = gate
        .rules
        .iter()
        .flat_map(|rule| {
            crate::report::thresholds_of(rule)
                .into_iter()
                .map(|t| Threshold {
                    rule: &rule.name,
                    then: rule.then,
                    signal: t.signal,
                    op: t.op,
                    value: t.value,
                })
        })
        .collect();
    let body = SeriesBody {
        train: record.id.as_str(),
        gate: &record.gate,
        from: range.from,
        to: range.grid().at(range.points - 1),
        step: range.step,
        thresholds,
        steps,
    };
    let bytes = serde_json::to_vec(&body)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    Ok((
        [
            (CONTENT_TYPE, HeaderValue::from_static("application/json")),
            (CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        bytes,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::store::Lifecycle;

    fn t(secs: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap() + chrono::Duration::seconds(secs)
    }

    fn record(lifecycle: Lifecycle) -> TrainRecord {
        let mut r = crate::daemon::state::tests::record("t-1", 1, Decision::Pending);
        r.started_at = t(0);
        r.evaluated_at = Some(t(600));
        r.lifecycle = lifecycle;
        r
    }

    fn query(from: Option<&str>, to: Option<&str>, step: Option<&str>) -> SeriesQuery {
        SeriesQuery {
            from: from.map(str::to_owned),
            to: to.map(str::to_owned),
            step: step.map(str::to_owned),
        }
    }

    fn message(e: ApiError) -> String {
        let text = format!("{e:?}");
        assert!(
            text.contains("400") && text.contains("invalid_query"),
            "{text}"
        );
        text
    }

    #[test]
    fn defaults_span_the_life_of_the_train_in_at_most_the_default_points() {
        let now = t(3600);
        let active = range(&query(None, None, None), &record(Lifecycle::Verifying), now).unwrap();
        assert_eq!(active.from, t(0));
        // 3600 s in at most 300 points: 13 s steps (3600 / 299 rounded up), 277 points.
        assert_eq!(active.step, PromDuration::from_secs(13));
        assert_eq!(active.points, 277);
        assert!(active.points <= DEFAULT_POINTS);
        // A rolled-back train's life ends at its last evaluation.
        let ended = range(
            &query(None, None, None),
            &record(Lifecycle::RolledBack),
            now,
        )
        .unwrap();
        assert_eq!(ended.grid().at(ended.points - 1), t(600));
        assert_eq!(ended.step, PromDuration::from_secs(3));
        // A train that has not started yet: one point at its start.
        let early = range(
            &query(None, None, None),
            &record(Lifecycle::Verifying),
            t(-60),
        )
        .unwrap();
        assert_eq!((early.from, early.points), (t(0), 1));
    }

    #[test]
    fn explicit_parameters_give_their_grid() {
        let r = range(
            &query(
                Some("2026-11-01T12:01:00Z"),
                Some("2026-11-01T12:02:00Z"),
                Some("15s"),
            ),
            &record(Lifecycle::Verifying),
            t(3600),
        )
        .unwrap();
        assert_eq!(
            (r.from, r.step, r.points),
            (t(60), PromDuration::from_secs(15), 5)
        );
        assert_eq!(r.grid().at(4), t(120));
    }

    #[test]
    fn bad_parameters_are_400_with_the_reason() {
        let rec = record(Lifecycle::Verifying);
        let now = t(3600);
        let e = |q: SeriesQuery| message(range(&q, &rec, now).unwrap_err());
        assert!(e(query(Some("yesterday"), None, None)).contains("from: `yesterday`"));
        assert!(e(query(None, Some("12:00"), None)).contains("to: `12:00`"));
        assert!(e(query(None, None, Some("fast"))).contains("step: `fast`"));
        assert!(e(query(None, None, Some("500ms"))).contains("shorter than 1s"));
        let too_many = e(query(None, None, Some("1s")));
        assert!(
            too_many.contains("3601 points") && too_many.contains("at least 4s"),
            "{too_many}"
        );
        assert!(e(query(
            Some("2026-11-01T13:00:00Z"),
            Some("2026-11-01T12:00:00Z"),
            None
        ))
        .contains("is after"));
        // The step the message suggests is accepted.
        assert!(range(&query(None, None, Some("4s")), &rec, now).is_ok());
    }
}
