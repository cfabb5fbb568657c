//! The train routes: register, list, show, the (long-polled) decision, override, approve,
//! the audit trail and stop.
//!
//! Reads are served from memory ([`crate::daemon::state`]); the store is read only for trains
//! the daemon does not hold (finished before the last restart) and for the audit trail.
//! Writes go to the store first and are published after, under the daemon's write lock.
//!
//! Long-polls (`wait` + `after_seq`) subscribe to the train's watch channel: they return as
//! soon as a change with a higher seq is published, at the deadline (at most [`MAX_WAIT`]),
//! or when the daemon shuts down — always with the current decision and status 200.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use gate_api::{
    ApproveRequest, DecisionBody, ErrorBody, Event, EventList, OverrideRequest, RegisterRequest,
    Train, TrainList,
};
use gate_rules::decide;
use gate_rules::Decision;
use gate_rules::TrainId;
use serde::Deserialize;
use tokio::sync::watch;

use super::auth::Caller;
use super::extract::train_id;
use super::{json_body, ApiError, ApiJson, ApiQuery, AppState, TrainPath, MAX_WAIT};
use crate::daemon::list::{self, ListFilter};
use crate::daemon::scheduler::webhook_events;
use crate::daemon::state::{self, TrainView};
use crate::daemon::{BlockingError, Shared};
use crate::store::{
    ApprovalWrite, AuditEvent, ConflictReason, Evidence, Lifecycle, NewTrain, OverrideAction,
    OverrideWrite, Registration, StoreError, TrainFilter,
};
use crate::webhook::DecisionChange;

fn summary_response(shared: &Shared, status: StatusCode, view: &TrainView) -> Response {
    let config = shared.runtime().config.clone();
    json_body(
        status,
        &view.summary(shared.evaluating(view, &config), true),
    )
}

/// The view of a train: from memory, or loaded from the store (and then held).
async fn view_of(shared: &Shared, id: &TrainId) -> Result<Arc<TrainView>, ApiError> {
    if let Some(view) = shared.trains.get(id) {
        return Ok(view);
    }
    let _lock = shared.write_lock.lock().await;
    if let Some(view) = shared.trains.get(id) {
        return Ok(view);
    }
    let key = id.clone();
    let record = shared.blocking(move |store| store.train(&key)).await?;
    let record = record.ok_or_else(|| ApiError::not_found(id))?;
    let view = TrainView::new(record);
    shared.publish(Arc::clone(&view));
    Ok(view)
}

/// The gates a registration names: `gate`, or `gates` (one or more, no repeats).
fn gate_names(gate: Option<String>, gates: Option<Vec<String>>) -> Result<Vec<String>, ApiError> {
    let invalid = |m: String| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_body", m);
    let names = match (gate, gates) {
        (Some(gate), None) => vec![gate],
        (None, Some(gates)) if !gates.is_empty() => gates,
        (None, Some(_)) => return Err(invalid("`gates` is empty: name at least one gate".into())),
        (None, None) => {
            return Err(invalid(
                "name the gate that judges the train: `gate` (one) or `gates` (several)".into(),
            ))
        }
        (Some(_), Some(_)) => {
            return Err(invalid(
                "give `gate` (one gate) or `gates` (several), not both".into(),
            ))
        }
    };
    for (i, name) in names.iter().enumerate() {
        if names[..i].contains(name) {
            return Err(invalid(format!("gate `{name}` is listed twice in `gates`")));
        }
    }
    Ok(names)
}

#[utoipa::path(
    post, path = "/v1/trains", tag = "trains",
    description = "Registers a train, judged by one gate (`gate`) or by several (`gates`: the train's verdict is the most severe of theirs). The same body again is idempotent (200); a different body for the same ID, or the ID of a stopped train, is a conflict.",
    request_body = RegisterRequest,
    responses(
        (status = 201, description = "Registered", body = Train),
        (status = 200, description = "The same body was registered before", body = Train),
        (status = 400, description = "The body is not JSON (`malformed_json`) or an ID is invalid (`invalid_train_id`)", body = ErrorBody),
        (status = 413, description = "The body is over 64 KiB (`body_too_large`)", body = ErrorBody),
        (status = 415, description = "No `Content-Type: application/json` (`unsupported_media_type`)", body = ErrorBody),
        (status = 401, description = "Token missing or wrong (`unauthorized`)", body = ErrorBody),
        (status = 403, description = "The token lacks the `register` scope (`forbidden`)", body = ErrorBody),
        (status = 409, description = "Registered with a different body, or stopped (`conflict`)", body = ErrorBody),
        (status = 422, description = "JSON of the wrong shape, neither or both of `gate` and `gates`, or a gate listed twice (`invalid_body`), a `labels.artifact` that is not a package URL (`invalid_label`), an unknown gate, also one among several (`unknown_gate`; nothing is registered), or a `started_at` more than a minute ahead (`started_at_in_future`) or older than the gate's `max_train_age` (`started_at_too_old`)", body = ErrorBody),
        (status = 500, description = "The store failed (`internal`)", body = ErrorBody),
        (status = 503, description = "As many trains are active as the daemon evaluates (`too_many_trains`, with `Retry-After`)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn register(
    State(shared): AppState,
    ApiJson(body): ApiJson<RegisterRequest>,
) -> Result<Response, ApiError> {
    let id = train_id(&body.id)?;
    let baseline = body
        .baseline
        .as_deref()
        .map(|b| {
            train_id(b).map_err(|mut e| {
                e.message = format!("baseline: {}", e.message);
                e
            })
        })
        .transpose()?;
    if let Some(artifact) = body.labels.get("artifact") {
        if !crate::webhook::purl::is_purl(artifact) {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_label",
                format!(
                    "labels.artifact: `{artifact}` is not a package URL \
                     (pkg:<type>/<name>[@<version>], e.g. pkg:oci/checkout@sha256%3Aab12…)"
                ),
            ));
        }
    }
    let config = shared.runtime().config.clone();
    let names = gate_names(body.gate, body.gates)?;
    let unknown: Vec<&str> = names
        .iter()
        .map(String::as_str)
        .filter(|n| config.gate(n).is_none())
        .collect();
    if !unknown.is_empty() {
        let known: Vec<&str> = config.gates.iter().map(|g| g.name.as_str()).collect();
        let which = unknown
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ");
        let noun = if unknown.len() == 1 { "gate" } else { "gates" };
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_gate",
            format!(
                "unknown {noun} {which}; the config has: {}; nothing was registered",
                known.join(", ")
            ),
        ));
    }
    if let Some(started_at) = body.started_at {
        for gate in names.iter().filter_map(|n| config.gate(n)) {
            gate_rules::registration::check_started_at(gate, started_at, shared.clock.now())
                .map_err(|e| {
                    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.code(), e.to_string())
                })?;
        }
    }
    let gate = names[0].clone();
    let gates = if names.len() > 1 { names } else { Vec::new() };
    let train = NewTrain {
        id,
        gate,
        gates,
        started_at: body.started_at,
        baseline,
        labels: body.labels,
    };
    let now = shared.clock.now();
    let _lock = shared.write_lock.lock().await;
    let max = shared.api.limits.max_active_trains;
    if shared.trains.get(&train.id).is_none() {
        let active: i64 = shared
            .trains
            .count_by_lifecycle()
            .into_iter()
            .filter(|(lifecycle, _)| lifecycle.is_active())
            .map(|(_, n)| n)
            .sum();
        if active >= max as i64 {
            shared.metrics.limit_refused("active_trains");
            return Err(ApiError::overloaded(
                "too_many_trains",
                format!(
                    "{active} trains are active, the most this daemon evaluates \
                     (--max-active-trains): stop finished trains, or try again later"
                ),
                60,
            ));
        }
    }
    let registration = shared
        .blocking(move |store| store.register(&train, now))
        .await
        .map_err(|e| match e {
            BlockingError::Store(StoreError::Conflict { id, reason }) => ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                match reason {
                    ConflictReason::DifferentBody => format!(
                        "train {id} is already registered with a different body; \
                         register it with the same body, or use another ID"
                    ),
                    _ => format!("train {id} cannot be registered: {reason}"),
                },
            ),
            other => other.into(),
        })?;
    let (status, record) = match registration {
        Registration::Created(r) => {
            tracing::info!(train = %r.id, gate = %r.gate, "train {} registered (gate {})", r.id, r.gate);
            (StatusCode::CREATED, r)
        }
        Registration::Existing(r) => (StatusCode::OK, r),
    };
    let view = match shared.trains.get(&record.id) {
        Some(held) if status == StatusCode::OK => held,
        _ => {
            let view = TrainView::new(record);
            shared.publish(Arc::clone(&view));
            view
        }
    };
    Ok(summary_response(&shared, status, &view))
}

/// `GET /v1/trains` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListQuery {
    /// `active` (default: trains neither done nor stopped), `all`, or states among
    /// `verifying`, `promoted`, `paused`, `rolled_back`, `done`, `stopped`, comma-separated.
    #[serde(default)]
    #[param(
        pattern = r"^(active|all|(verifying|promoted|paused|rolled_back|done|stopped)(,(verifying|promoted|paused|rolled_back|done|stopped))*)$"
    )]
    state: Option<String>,
    /// Only the trains of this gate.
    #[serde(default)]
    gate: Option<String>,
    /// At most this many trains (1–1000); without it, the list is not cut.
    #[serde(default)]
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    limit: Option<String>,
    /// The `next_cursor` of the previous page.
    #[serde(default)]
    cursor: Option<String>,
    /// `true`: each train carries its latest `evaluation` (rules and signals), as
    /// `GET /v1/trains/{id}` shows it; `false` (default): without.
    #[serde(default)]
    #[param(value_type = Option<bool>)]
    evaluation: Option<String>,
}

#[utoipa::path(
    get, path = "/v1/trains", tag = "trains",
    description = "The trains by start time (then ID), each with `worst_burn`, and with `evaluation` when `evaluation=true`; with `limit`, one page and the `next_cursor` of the next.",
    params(ListQuery),
    responses(
        (status = 200, description = "The trains", body = TrainList),
        (status = 400, description = "A bad train ID or query parameter (`invalid_train_id`, `invalid_query`, `invalid_path`)", body = ErrorBody),
        (status = 401, description = "Token missing or wrong (`unauthorized`)", body = ErrorBody),
        (status = 403, description = "The token lacks the `read` scope (`forbidden`)", body = ErrorBody),
        (status = 500, description = "The store failed (`internal`)", body = ErrorBody),
    ),
    security((), ("bearer" = []))
)]
pub(crate) async fn list(
    State(shared): AppState,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Response, ApiError> {
    let filter = ListFilter::parse(
        query.state.as_deref(),
        query.gate.as_deref(),
        query.limit.as_deref(),
        query.cursor.as_deref(),
    )
    .and_then(|f| f.with_evaluation(query.evaluation.as_deref()))
    .map_err(|m| ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", m))?;
    let config = shared.runtime().config.clone();
    let (trains, next_cursor) = if filter.needs_store() {
        let records = shared
            .blocking(|store| store.trains(TrainFilter::All))
            .await?;
        list::page(
            records.iter().map(|r| {
                let evaluating = state::is_evaluated(r.lifecycle)
                    && r.gate_names().iter().all(|g| config.gate(g).is_some());
                (r, evaluating)
            }),
            &filter,
        )
    } else {
        let views = shared.trains.filter(|v| v.record.lifecycle.is_active());
        list::page(
            views
                .iter()
                .map(|v| (&v.record, shared.evaluating(v, &config))),
            &filter,
        )
    };
    Ok(json_body(
        StatusCode::OK,
        &TrainList {
            trains,
            next_cursor,
        },
    ))
}

#[utoipa::path(
    get, path = "/v1/trains/{id}", tag = "trains",
    description = "The train with its latest evaluation (`null` until the first) and `worst_burn`.",
    params(("id" = gate_api::schema::TrainIdSchema, Path, description = "The train ID; percent-encode a `/` (`team%2Fcheckout:42`)")),
    responses(
        (status = 200, description = "The train", body = Train),
        (status = 400, description = "A bad train ID or query parameter (`invalid_train_id`, `invalid_query`, `invalid_path`)", body = ErrorBody),
        (status = 401, description = "Token missing or wrong (`unauthorized`)", body = ErrorBody),
        (status = 403, description = "The token lacks the `read` scope (`forbidden`)", body = ErrorBody),
        (status = 404, description = "Unknown train (`train_not_found`)", body = ErrorBody),
        (status = 500, description = "The store failed (`internal`)", body = ErrorBody),
    ),
    security((), ("bearer" = []))
)]
pub(crate) async fn show(
    State(shared): AppState,
    TrainPath(id): TrainPath,
) -> Result<Response, ApiError> {
    let view = view_of(&shared, &id).await?;
    let config = shared.runtime().config.clone();
    let train = Train {
        worst_burn: Some(view.record.evaluation.as_ref().and_then(list::worst_burn)),
        ..view.summary(shared.evaluating(&view, &config), true)
    };
    Ok(json_body(StatusCode::OK, &train))
}

/// `GET /v1/trains/{id}/decision` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct DecisionQuery {
    /// Long-poll up to this long (at most 5 minutes): `30s`, `5m`, `1h30m`, `500ms`, bare
    /// seconds (`90`) or `0` (answer at once).
    #[serde(default)]
    #[param(example = "30s")]
    wait: Option<String>,
    /// Answer as soon as the train's seq is greater than this (default: the current seq).
    #[serde(default)]
    after_seq: Option<u64>,
}

/// `wait`: one of gate's durations ([`gate_rules::duration::parse_duration`]).
fn parse_wait(s: &str) -> Result<std::time::Duration, ApiError> {
    gate_rules::duration::parse_duration(s).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            format!("wait: {e}"),
        )
    })
}

fn decision_response(view: &TrainView) -> Response {
    (
        [
            (CONTENT_TYPE, HeaderValue::from_static("application/json")),
            (CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        view.decision_body(),
    )
        .into_response()
}

#[utoipa::path(
    get, path = "/v1/trains/{id}/decision", tag = "trains",
    description = "The compact decision. With `wait` it long-polls: it answers as soon as the train's seq is greater than `after_seq`, or at the deadline with the current decision (always 200); during shutdown at once.",
    params(("id" = gate_api::schema::TrainIdSchema, Path, description = "The train ID; percent-encode a `/` (`team%2Fcheckout:42`)"), DecisionQuery),
    responses(
        (status = 200, description = "The current decision", body = DecisionBody),
        (status = 400, description = "A bad train ID or query parameter (`invalid_train_id`, `invalid_query`, `invalid_path`)", body = ErrorBody),
        (status = 401, description = "Token missing or wrong (`unauthorized`)", body = ErrorBody),
        (status = 403, description = "The token lacks the `read` scope (`forbidden`)", body = ErrorBody),
        (status = 404, description = "Unknown train (`train_not_found`)", body = ErrorBody),
        (status = 500, description = "The store failed (`internal`)", body = ErrorBody),
        (status = 503, description = "As many long-polls are open as the daemon holds (`too_many_long_polls`, with `Retry-After`)", body = ErrorBody),
    ),
    security((), ("bearer" = []))
)]
pub(crate) async fn decision(
    State(shared): AppState,
    TrainPath(id): TrainPath,
    ApiQuery(query): ApiQuery<DecisionQuery>,
) -> Result<Response, ApiError> {
    let wait = query.wait.as_deref().map(parse_wait).transpose()?;
    let view = view_of(&shared, &id).await?;
    let Some(wait) = wait.filter(|w| !w.is_zero()) else {
        return Ok(decision_response(&view));
    };
    let after = query.after_seq.unwrap_or(view.record.seq);
    if view.record.seq > after {
        return Ok(decision_response(&view));
    }
    let max = shared.api.limits.max_long_polls;
    let Some(_slot) = shared.long_polls.acquire(max, &shared.metrics) else {
        return Err(ApiError::overloaded(
            "too_many_long_polls",
            format!("{max} long-polls are open, the most this daemon holds: poll again shortly"),
            1,
        ));
    };
    let Some(rx) = shared.trains.subscribe(&id) else {
        return Ok(decision_response(&view));
    };
    // The wait holds only the train's receiver: the view read above would keep a replaced
    // view (its whole evidence) alive for as long as the request waits.
    drop(view);
    let current = wait_for_seq(rx, after, wait.min(MAX_WAIT), shared.shutdown.subscribe()).await;
    Ok(decision_response(&current))
}

/// Waits until the train's seq passes `after`, `wait` passes or shutdown begins; returns the
/// train's latest view (the channel keeps it even when the train was dropped meanwhile).
async fn wait_for_seq(
    mut rx: watch::Receiver<Arc<TrainView>>,
    after: u64,
    wait: std::time::Duration,
    mut shutdown: watch::Receiver<bool>,
) -> Arc<TrainView> {
    let changed = async {
        let _ = rx.wait_for(|v| v.record.seq > after).await;
    };
    tokio::select! {
        _ = tokio::time::timeout(wait, changed) => {}
        _ = shutdown.wait_for(|down| *down) => {}
    }
    let current = Arc::clone(&rx.borrow());
    current
}

/// The `reason` and `actor` of an override or approval, trimmed: both required, since the
/// audit trail records them.
fn audited(reason: &str, actor: &str, what: &str) -> Result<(String, String), ApiError> {
    let (reason, actor) = (reason.trim().to_string(), actor.trim().to_string());
    if reason.is_empty() || actor.is_empty() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            format!(
                "{what} needs a non-empty `reason` and `actor`: they are recorded in the audit trail"
            ),
        ));
    }
    Ok((reason, actor))
}

/// Who acts: the named token that called, and the body's actor as whom it acts for when that
/// differs; without tokens, the body's actor. The token proves who called; the body's actor is
/// only who they say they act for.
fn acting(caller: Option<Extension<Caller>>, named: String) -> (String, Option<String>) {
    match caller {
        Some(Extension(Caller { name })) if name == named => (name, None),
        Some(Extension(Caller { name })) => (name, Some(named)),
        None => (named, None),
    }
}

#[utoipa::path(
    post, path = "/v1/trains/{id}/override", tag = "trains",
    description = "Forces a decision (`promote`, `pause`, `rollback` pin it) or lifts one (`resume`). Recorded with who and why; the seq is bumped even when the decision stays.",
    params(("id" = gate_api::schema::TrainIdSchema, Path, description = "The train ID; percent-encode a `/` (`team%2Fcheckout:42`)")),
    request_body = OverrideRequest,
    responses(
        (status = 200, description = "The decision that results", body = DecisionBody),
        (status = 400, description = "The body is not JSON (`malformed_json`) or an ID is invalid (`invalid_train_id`)", body = ErrorBody),
        (status = 413, description = "The body is over 64 KiB (`body_too_large`)", body = ErrorBody),
        (status = 415, description = "No `Content-Type: application/json` (`unsupported_media_type`)", body = ErrorBody),
        (status = 401, description = "Token missing or wrong (`unauthorized`)", body = ErrorBody),
        (status = 403, description = "The token lacks the `override` scope (`forbidden`)", body = ErrorBody),
        (status = 404, description = "Unknown train (`train_not_found`)", body = ErrorBody),
        (status = 409, description = "The train is stopped (`train_stopped`) or there is nothing to resume (`nothing_to_resume`)", body = ErrorBody),
        (status = 422, description = "JSON of the wrong shape, or an empty `reason` or `actor` (`invalid_body`)", body = ErrorBody),
        (status = 500, description = "The store failed (`internal`)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn override_train(
    State(shared): AppState,
    caller: Option<Extension<Caller>>,
    TrainPath(id): TrainPath,
    ApiJson(body): ApiJson<OverrideRequest>,
) -> Result<Response, ApiError> {
    let (reason, named) = audited(&body.reason, &body.actor, "an override")?;
    let (actor, on_behalf_of) = acting(caller, named);
    let held = view_of(&shared, &id).await?;
    let _lock = shared.write_lock.lock().await;
    // Under the lock the held view is what the store has.
    let view = shared.trains.get(&id).unwrap_or(held);
    let prev = &view.record;
    if prev.lifecycle == Lifecycle::Stopped {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "train_stopped",
            format!("train {id} is stopped; a stopped train takes no override"),
        ));
    }
    let mut state = prev.state.clone();
    let text = format!(
        "override {} by {}: {reason}",
        body.decision,
        gate_api::override_by(&actor, on_behalf_of.as_deref())
    );
    let decision = match body.decision {
        OverrideAction::Resume => {
            let resumable = matches!(prev.decision, Decision::Pause | Decision::Rollback)
                || state.pinned.is_some();
            if !resumable {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "nothing_to_resume",
                    format!(
                        "train {id} is {} and not pinned by an override: there is nothing to resume",
                        prev.decision
                    ),
                ));
            }
            Decision::Pending
        }
        OverrideAction::Promote => Decision::Promote,
        OverrideAction::Pause => Decision::Pause,
        OverrideAction::Rollback => Decision::Rollback,
    };
    // A train of several gates is overridden as a whole: every gate's part takes the same
    // pin (or resume), so each gate's next evaluation keeps it.
    let apply = |state: &mut gate_rules::decide::TrainState| {
        if body.decision == OverrideAction::Resume {
            decide::resume(state);
        } else {
            state.pinned = Some(decision);
            state.decision = Some(decision);
            state.pause_cause = None;
            state.clean_streak = 0;
            state.decided_reason = Some(text.clone());
            state.decided_rule = None;
        }
    };
    apply(&mut state);
    let lifecycle = match decision {
        Decision::Pending => Lifecycle::Verifying,
        Decision::Promote => Lifecycle::Promoted,
        Decision::Pause => Lifecycle::Paused,
        Decision::Rollback => Lifecycle::RolledBack,
    };
    let gates = (!prev.gates.is_empty()).then(|| {
        prev.gates
            .iter()
            .map(|leg| {
                let mut leg = leg.clone();
                apply(&mut leg.state);
                leg.decision = decision;
                leg.reason = text.clone();
                leg.rule = None;
                leg.lifecycle = lifecycle;
                leg
            })
            .collect()
    });
    let at = shared.clock.now();
    let events = if decision != prev.decision {
        let config = shared.runtime().config.clone();
        webhook_events(
            &config,
            &DecisionChange {
                train: id.clone(),
                gate: prev.gate.clone(),
                decision,
                previous: prev.decision,
                reason: text.clone(),
                rule: None,
                evaluated_at: at,
                seq: prev.seq + 1,
                evidence: prev
                    .evaluation
                    .as_ref()
                    .map_or(serde_json::Value::Null, Evidence::to_value),
                artifact: prev.labels.get("artifact").cloned(),
                gates: gates
                    .as_deref()
                    .map(state::gate_decisions)
                    .unwrap_or_default(),
            },
        )
    } else {
        Vec::new()
    };
    let queued = !events.is_empty();
    let write = OverrideWrite {
        train: id.clone(),
        action: body.decision,
        decision,
        reason,
        actor,
        on_behalf_of,
        at,
        state,
        lifecycle,
        events,
        gates,
    };
    let record = shared
        .blocking(move |store| {
            store.record_override(&write)?;
            store
                .train(&write.train)?
                .ok_or_else(|| StoreError::NotFound(write.train.clone()))
        })
        .await?;
    if record.decision != prev.decision {
        shared.decision_changed(prev, record.decision, &record.reason, at);
    } else {
        tracing::info!(train = %id, "train {id}: {}", record.reason);
    }
    if queued {
        shared.nudge_webhooks();
    }
    let view = TrainView::new(record);
    shared.publish(Arc::clone(&view));
    Ok(decision_response(&view))
}

#[utoipa::path(
    post, path = "/v1/trains/{id}/approve", tag = "trains",
    description = "Approves a train whose gate has `approval: required`: once verified it promotes at the next evaluation (inside a departure window, outside a freeze). An approval given before verification waits for it; it never lifts a rollback or a pause. Recorded with who and why; the seq is bumped, the decision stays until the next evaluation.",
    params(("id" = gate_api::schema::TrainIdSchema, Path, description = "The train ID; percent-encode a `/` (`team%2Fcheckout:42`)")),
    request_body = ApproveRequest,
    responses(
        (status = 200, description = "The train's decision after the approval", body = DecisionBody),
        (status = 400, description = "The body is not JSON (`malformed_json`) or an ID is invalid (`invalid_train_id`)", body = ErrorBody),
        (status = 413, description = "The body is over 64 KiB (`body_too_large`)", body = ErrorBody),
        (status = 415, description = "No `Content-Type: application/json` (`unsupported_media_type`)", body = ErrorBody),
        (status = 401, description = "Token missing or wrong (`unauthorized`)", body = ErrorBody),
        (status = 404, description = "Unknown train (`train_not_found`)", body = ErrorBody),
        (status = 403, description = "The token lacks the `override` scope (`forbidden`)", body = ErrorBody),
        (status = 409, description = "The train is stopped (`train_stopped`), rolled back (`train_rolled_back`) or finished (`train_done`)", body = ErrorBody),
        (status = 422, description = "JSON of the wrong shape, or an empty `reason` or `actor` (`invalid_body`); none of the train's gates has `approval: required` (`approval_not_required`)", body = ErrorBody),
        (status = 500, description = "The store failed (`internal`)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn approve(
    State(shared): AppState,
    caller: Option<Extension<Caller>>,
    TrainPath(id): TrainPath,
    ApiJson(body): ApiJson<ApproveRequest>,
) -> Result<Response, ApiError> {
    let (reason, named) = audited(&body.reason, &body.actor, "an approval")?;
    let (actor, on_behalf_of) = acting(caller, named);
    let actor = gate_api::override_by(&actor, on_behalf_of.as_deref());
    let held = view_of(&shared, &id).await?;
    let _lock = shared.write_lock.lock().await;
    let view = shared.trains.get(&id).unwrap_or(held);
    let prev = &view.record;
    let refused = match prev.lifecycle {
        Lifecycle::Stopped => Some((
            "train_stopped",
            format!("train {id} is stopped; a stopped train takes no approval"),
        )),
        Lifecycle::RolledBack => Some((
            "train_rolled_back",
            format!(
                "train {id} is rolled back; an approval never lifts a rollback \
                 (an operator can `gate override {id} --decision resume`)"
            ),
        )),
        Lifecycle::Done => Some(("train_done", format!("train {id} is done"))),
        _ => None,
    };
    if let Some((code, message)) = refused {
        return Err(ApiError::new(StatusCode::CONFLICT, code, message));
    }
    let config = shared.runtime().config.clone();
    let gates = prev.gate_names();
    let needs = gates.iter().any(|g| {
        config
            .gate(g)
            .is_some_and(|g| g.approval == gate_rules::config::Approval::Required)
    });
    if !needs {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "approval_not_required",
            format!(
                "train {id} needs no approval: none of its gates ({}) has `approval: required`",
                gates.join(", ")
            ),
        ));
    }
    let by = format!("{actor}: {reason}");
    let mut state = prev.state.clone();
    state.approved_by = Some(by.clone());
    let gates = (!prev.gates.is_empty()).then(|| {
        prev.gates
            .iter()
            .map(|leg| {
                let mut leg = leg.clone();
                leg.state.approved_by = Some(by.clone());
                leg
            })
            .collect()
    });
    let write = ApprovalWrite {
        train: id.clone(),
        reason,
        actor,
        at: shared.clock.now(),
        state,
        gates,
    };
    let record = shared
        .blocking(move |store| {
            store.record_approval(&write)?;
            store
                .train(&write.train)?
                .ok_or_else(|| StoreError::NotFound(write.train.clone()))
        })
        .await?;
    tracing::info!(train = %id, "train {id} approved by {by}");
    let view = TrainView::new(record);
    shared.publish(Arc::clone(&view));
    Ok(decision_response(&view))
}

#[utoipa::path(
    get, path = "/v1/trains/{id}/events", tag = "trains",
    description = "The train's audit trail in seq order.",
    params(("id" = gate_api::schema::TrainIdSchema, Path, description = "The train ID; percent-encode a `/` (`team%2Fcheckout:42`)")),
    responses(
        (status = 200, description = "The audit trail", body = EventList),
        (status = 400, description = "A bad train ID or query parameter (`invalid_train_id`, `invalid_query`, `invalid_path`)", body = ErrorBody),
        (status = 401, description = "Token missing or wrong (`unauthorized`)", body = ErrorBody),
        (status = 403, description = "The token lacks the `read` scope (`forbidden`)", body = ErrorBody),
        (status = 404, description = "Unknown train (`train_not_found`)", body = ErrorBody),
        (status = 500, description = "The store failed (`internal`)", body = ErrorBody),
    ),
    security((), ("bearer" = []))
)]
pub(crate) async fn events(
    State(shared): AppState,
    TrainPath(id): TrainPath,
) -> Result<Response, ApiError> {
    let key = id.clone();
    let events = shared.blocking(move |store| store.events(&key)).await?;
    let events = events.into_iter().map(event_body).collect();
    Ok(json_body(StatusCode::OK, &EventList { train: id, events }))
}

/// A stored audit event as the API shows it.
fn event_body(e: AuditEvent) -> Event {
    match e {
        AuditEvent::Registered { at, registration } => Event::Registered {
            at,
            registration: RegisterRequest {
                id: registration.id.to_string(),
                gate: registration.gates.is_empty().then_some(registration.gate),
                gates: (!registration.gates.is_empty()).then_some(registration.gates),
                started_at: registration.started_at,
                baseline: registration.baseline.map(|b| b.to_string()),
                labels: registration.labels,
            },
        },
        AuditEvent::Decision {
            seq,
            decision,
            previous,
            reason,
            rule,
            evaluated_at,
            evidence,
        } => Event::Decision {
            seq,
            decision,
            previous,
            reason,
            rule,
            evaluated_at,
            evidence,
        },
        AuditEvent::Override {
            seq,
            action,
            decision,
            previous,
            reason,
            actor,
            on_behalf_of,
            at,
        } => Event::Override {
            seq,
            action,
            decision,
            previous,
            reason,
            actor,
            on_behalf_of,
            at,
        },
        AuditEvent::Approval {
            seq,
            reason,
            actor,
            at,
        } => Event::Approval {
            seq,
            reason,
            actor,
            at,
        },
        AuditEvent::Delivery(d) => Event::Delivery(d),
        AuditEvent::Stopped { at } => Event::Stopped { at },
    }
}

#[utoipa::path(
    delete, path = "/v1/trains/{id}", tag = "trains",
    description = "Stops evaluating the train; its history stays. Also 200 when it was already stopped. A stopped train's ID cannot be registered again.",
    params(("id" = gate_api::schema::TrainIdSchema, Path, description = "The train ID; percent-encode a `/` (`team%2Fcheckout:42`)")),
    responses(
        (status = 200, description = "The stopped train", body = Train),
        (status = 400, description = "A bad train ID or query parameter (`invalid_train_id`, `invalid_query`, `invalid_path`)", body = ErrorBody),
        (status = 401, description = "Token missing or wrong (`unauthorized`)", body = ErrorBody),
        (status = 403, description = "The token lacks the `register` scope (`forbidden`)", body = ErrorBody),
        (status = 404, description = "Unknown train (`train_not_found`)", body = ErrorBody),
        (status = 500, description = "The store failed (`internal`)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn stop(
    State(shared): AppState,
    TrainPath(id): TrainPath,
) -> Result<Response, ApiError> {
    let at = shared.clock.now();
    let _lock = shared.write_lock.lock().await;
    let key = id.clone();
    let record = shared.blocking(move |store| store.stop(&key, at)).await?;
    tracing::info!(train = %id, "train {id} stopped; its history is kept");
    let view = TrainView::new(record);
    shared.publish(Arc::clone(&view));
    Ok(summary_response(&shared, StatusCode::OK, &view))
}
#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::body::Body;
    use axum::http::Request;
    use serde_json::{json, Value};

    use super::*;
    use crate::daemon::api::tests::{plain, train};
    use crate::daemon::tests::{send, t0, tid};
    use crate::daemon::ApiOptions;

    #[tokio::test]
    async fn registration_is_idempotent_and_a_different_body_conflicts() {
        let h = plain().await;
        let (status, body) = h.call("POST", "/v1/trains", Some(train("t-1")), None).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(body["train"], "t-1");
        assert_eq!(body["decision"], "pending");
        assert_eq!(body["state"], "verifying");
        assert_eq!(body["seq"], 0);
        assert_eq!(body["started_at"], "2026-11-01T11:00:00Z");
        assert_eq!(body["evaluating"], true);
        assert_eq!(body["evaluation"], Value::Null);

        let (status, again) = h.call("POST", "/v1/trains", Some(train("t-1")), None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(again, body);

        let mut other = train("t-1");
        other["started_at"] = json!("2026-11-01T11:30:00Z");
        let (status, err) = h.call("POST", "/v1/trains", Some(other), None).await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(err["error"]["code"], "conflict");
        assert!(err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("different body"));
    }

    #[tokio::test]
    async fn registration_without_started_at_starts_now_and_accepts_unix_seconds() {
        let h = plain().await;
        let (status, body) = h
            .call(
                "POST",
                "/v1/trains",
                Some(json!({"id": "t-now", "gate": "checkout"})),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(
            body["started_at"], "2026-11-01T12:00:00Z",
            "the clock's now"
        );
        // A retry later, still without started_at, is the same registration.
        h.clock.advance(Duration::from_secs(90));
        let (status, _) = h
            .call(
                "POST",
                "/v1/trains",
                Some(json!({"id": "t-now", "gate": "checkout"})),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK);

        let (status, body) = h
            .call(
                "POST",
                "/v1/trains",
                Some(json!({"id": "t-unix", "gate": "checkout", "started_at": 1793530800})),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(body["started_at"], "2026-11-01T11:00:00Z");
    }

    #[tokio::test]
    async fn invalid_train_ids_are_400_and_unknown_gates_422() {
        let h = plain().await;
        for id in ["", "a b", "x\" or vector(1)", &"x".repeat(129)] {
            let (status, err) = h
                .call(
                    "POST",
                    "/v1/trains",
                    Some(json!({"id": id, "gate": "checkout"})),
                    None,
                )
                .await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{id:?}: {err}");
            assert_eq!(err["error"]["code"], "invalid_train_id");
        }
        let (status, err) = h
            .call(
                "POST",
                "/v1/trains",
                Some(json!({"id": "t-1", "gate": "checkout", "baseline": "no way"})),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(err["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("baseline: "));

        let (status, err) = h
            .call(
                "POST",
                "/v1/trains",
                Some(json!({"id": "t-1", "gate": "chekout"})),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(err["error"]["code"], "unknown_gate");
        assert!(err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("checkout"));

        let (status, err) = h.call("GET", "/v1/trains/a%20b/decision", None, None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(err["error"]["code"], "invalid_train_id");

        let (status, err) = h.call("GET", "/v1/trains/t-404", None, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(err["error"]["code"], "train_not_found");
    }

    #[tokio::test]
    async fn train_ids_with_a_slash_work_percent_encoded() {
        let h = plain().await;
        let (status, _) = h
            .call(
                "POST",
                "/v1/trains",
                Some(json!({"id": "team/checkout:42", "gate": "checkout"})),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
        let (status, body) = h
            .call("GET", "/v1/trains/team%2Fcheckout:42/decision", None, None)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["train"], "team/checkout:42");
    }

    #[tokio::test(start_paused = true)]
    async fn long_poll_returns_as_soon_as_the_decision_changes() {
        let h = plain().await;
        h.call("POST", "/v1/trains", Some(train("t-1")), None).await;
        let router = h.router.clone();
        let started = tokio::time::Instant::now();
        let poll = tokio::spawn(async move {
            let req = Request::get("/v1/trains/t-1/decision?wait=30s&after_seq=0")
                .body(Body::empty())
                .unwrap();
            let out = send(&router, req).await;
            (out, started.elapsed())
        });
        // The poll is parked on the train's channel before anything changes.
        while h.shared().trains.watchers(&tid("t-1")) < 1 {
            tokio::task::yield_now().await;
        }
        let (status, _) = h
            .call(
                "POST",
                "/v1/trains/t-1/override",
                Some(json!({"decision": "pause", "reason": "incident INC-7", "actor": "alice"})),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        let ((status, body), waited) = poll.await.unwrap();
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["seq"], 1);
        assert_eq!(body["decision"], "pause");
        assert!(
            waited < Duration::from_secs(30),
            "returned at the deadline: {waited:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn long_poll_returns_the_current_decision_at_the_deadline() {
        let h = plain().await;
        h.call("POST", "/v1/trains", Some(train("t-1")), None).await;
        let started = tokio::time::Instant::now();
        let (status, body) = h
            .call(
                "GET",
                "/v1/trains/t-1/decision?wait=20s&after_seq=0",
                None,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["seq"], 0);
        assert_eq!(body["decision"], "pending");
        assert!(started.elapsed() >= Duration::from_secs(20));

        // Already past after_seq: no wait at all.
        let (_, body) = h
            .call("GET", "/v1/trains/t-1/decision?wait=5m", None, None)
            .await;
        assert_eq!(body["seq"], 0);
        let (status, err) = h
            .call(
                "GET",
                "/v1/trains/t-1/decision?wait=soon&after_seq=0",
                None,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(err["error"]["code"], "invalid_query");
    }

    #[tokio::test]
    async fn overrides_are_recorded_with_who_and_why_and_resume_clears_them() {
        let h = plain().await;
        h.call("POST", "/v1/trains", Some(train("t-1")), None).await;
        h.clock.advance(Duration::from_secs(60));
        let (status, body) = h
            .call(
                "POST",
                "/v1/trains/t-1/override",
                Some(
                    json!({"decision": "pause", "reason": "freeze for the sale", "actor": "alice"}),
                ),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["decision"], "pause");
        assert_eq!(body["seq"], 1);
        assert_eq!(body["state"], "paused");
        assert!(body["reason"].as_str().unwrap().contains("alice"));

        let (_, shown) = h.call("GET", "/v1/trains/t-1", None, None).await;
        assert_eq!(shown["pinned"], "pause");

        let (status, body) = h
            .call(
                "POST",
                "/v1/trains/t-1/override",
                Some(json!({"decision": "resume", "reason": "sale over", "actor": "bob"})),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["decision"], "pending");
        assert_eq!(body["seq"], 2);
        let (_, shown) = h.call("GET", "/v1/trains/t-1", None, None).await;
        assert_eq!(shown["pinned"], Value::Null);

        let (status, err) = h
            .call(
                "POST",
                "/v1/trains/t-1/override",
                Some(json!({"decision": "resume", "reason": "again", "actor": "bob"})),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(err["error"]["code"], "nothing_to_resume");

        let (status, err) = h
            .call(
                "POST",
                "/v1/trains/t-1/override",
                Some(json!({"decision": "promote", "reason": " ", "actor": "bob"})),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
        let (status, _) = h
            .call(
                "POST",
                "/v1/trains/t-1/override",
                Some(json!({"decision": "ship-it", "reason": "x", "actor": "bob"})),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

        let (status, events) = h.call("GET", "/v1/trains/t-1/events", None, None).await;
        assert_eq!(status, StatusCode::OK);
        let overrides: Vec<&Value> = events["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "override")
            .collect();
        assert_eq!(overrides.len(), 2, "{events}");
        assert_eq!(overrides[0]["actor"], "alice");
        assert_eq!(overrides[0]["reason"], "freeze for the sale");
        assert_eq!(overrides[0]["decision"], "pause");
        assert_eq!(overrides[0]["previous"], "pending");
        assert_eq!(overrides[1]["action"], "resume");
        assert_eq!(overrides[1]["actor"], "bob");
        // The pause changed the decision, so the deployer webhook was queued with it.
        let deliveries: Vec<&Value> = events["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "delivery")
            .collect();
        assert_eq!(deliveries.len(), 1, "{events}");
        assert_eq!(deliveries[0]["webhook"], "deployer");
        assert_eq!(deliveries[0]["seq"], 1);
    }

    #[tokio::test]
    async fn stopping_keeps_history_and_refuses_later_overrides() {
        let h = plain().await;
        h.call("POST", "/v1/trains", Some(train("t-1")), None).await;
        h.call("POST", "/v1/trains", Some(train("t-2")), None).await;
        let (status, body) = h.call("DELETE", "/v1/trains/t-1", None, None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["state"], "stopped");
        assert_eq!(body["evaluating"], false);
        let (status, _) = h.call("DELETE", "/v1/trains/t-1", None, None).await;
        assert_eq!(status, StatusCode::OK, "stopping twice is harmless");
        let (status, _) = h.call("DELETE", "/v1/trains/t-9", None, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);

        let (_, active) = h.call("GET", "/v1/trains", None, None).await;
        let ids: Vec<&Value> = active["trains"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| &t["train"])
            .collect();
        assert_eq!(ids, [&json!("t-2")]);
        let (_, all) = h.call("GET", "/v1/trains?state=all", None, None).await;
        assert_eq!(all["trains"].as_array().unwrap().len(), 2);

        let (status, err) = h
            .call(
                "POST",
                "/v1/trains/t-1/override",
                Some(json!({"decision": "promote", "reason": "x", "actor": "bob"})),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(err["error"]["code"], "train_stopped");
        let (_, events) = h.call("GET", "/v1/trains/t-1/events", None, None).await;
        assert_eq!(
            events["events"].as_array().unwrap().last().unwrap()["kind"],
            "stopped"
        );
    }

    #[tokio::test]
    async fn a_train_finished_before_a_restart_is_read_from_the_store() {
        let h = plain().await;
        h.call("POST", "/v1/trains", Some(train("t-1")), None).await;
        h.call("DELETE", "/v1/trains/t-1", None, None).await;
        let dir = h.dir;
        drop(h.daemon);
        let h = crate::daemon::tests::harness_in(dir, "", ApiOptions::default()).await;
        assert!(
            h.shared().trains.get(&tid("t-1")).is_none(),
            "only active trains are loaded"
        );
        let (status, body) = h.call("GET", "/v1/trains/t-1/decision", None, None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["state"], "stopped");
        assert!(
            h.shared().trains.get(&tid("t-1")).is_some(),
            "held after the first read"
        );
        let _ = t0();
    }
}
