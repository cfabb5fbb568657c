//! The signals of one train at every step of a time range: what its rules read (burn rates,
//! error ratios and counts per SLO and window, budgets), step by step, for a chart of the
//! train's life (`GET /v1/trains/{id}/series`).
//!
//! The data is read exactly as [`super::replay`] reads it — [`range_plan::read_chunk`] for a
//! chunk of steps, [`range_plan::step_signals`] to cut each step's answers out of it — so the
//! value at a step is the one `gate eval --at <step>` and the daemon compute at that instant.
//! Unlike a replay, nothing ends early: a rollback or the end of `watch_for` does not stop the
//! signals, which exist whatever the gate decided, and every step of the range is returned.
//!
//! The signals are turned into numbers by the decision function's own report
//! ([`crate::evaluate::decide_train`]), evaluated from an empty [`TrainState`] at every step.
//! That is exact for every windowed signal, which depends on the step's telemetry only; the
//! error delta's anytime-valid test depends on the looks before it, so it is not part of a
//! step.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use gate_rules::config::{Config, Gate};
use gate_rules::decide::{Mode, TrainState};
use serde::Serialize;

use super::range_plan::{self, Grid, SinceStartData, MAX_POINTS};
use super::ReplayError;
use crate::evaluate;
use crate::planner::TrainSpec;
use crate::prometheus::PrometheusClient;
use crate::report::{rfc3339, Keyed, Num};

/// Values per SLO, then per window; `null` is no data.
pub type PerWindow = Keyed<Keyed<Option<Num>>>;

/// The signals of one train at one step.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeriesPoint {
    /// The step's time.
    #[serde(with = "rfc3339")]
    pub at: DateTime<Utc>,
    /// `burn_rate[slo][window]`.
    pub burn_rate: PerWindow,
    /// `error_ratio[slo][window]`.
    pub error_ratio: PerWindow,
    /// `requests[slo][window]`.
    pub requests: PerWindow,
    /// `errors[slo][window]`.
    pub errors: PerWindow,
    /// `budget_remaining[slo]` (service-wide).
    pub budget_remaining: Keyed<Option<Num>>,
    /// The telemetry failure at this step, if any (its values are then `null`).
    pub telemetry_error: Option<String>,
}

/// The signals of `train` (of `gate`) at `grid.at(0)`, …, `grid.at(steps - 1)`.
pub async fn series(
    client: &Arc<PrometheusClient>,
    config: &Config,
    gate: &Gate,
    train: &TrainSpec,
    grid: Grid,
    steps: usize,
) -> Result<Vec<SeriesPoint>, ReplayError> {
    let trains = std::slice::from_ref(train);
    let mut since = SinceStartData::default();
    let mut points = Vec::with_capacity(steps);
    let mut first = 0;
    while first < steps {
        let last = (first + MAX_POINTS).min(steps) - 1;
        let data = range_plan::read_chunk(
            client,
            config,
            gate,
            trains,
            grid,
            (first, last),
            &mut since,
        )
        .await?;
        for k in first..=last {
            let at = grid.at(k);
            let (plan, signals) =
                range_plan::step_signals(client, config, gate, &data, &since, trains, at, k)
                    .await?;
            let missing = Err("no signals were assembled for the train".to_string());
            let signals = signals.get(&train.id).unwrap_or(&missing);
            let (_, report) = evaluate::decide_train(
                config,
                gate,
                train,
                &plan,
                signals,
                &TrainState::default(),
                Mode::Daemon,
            );
            let s = report.signals;
            points.push(SeriesPoint {
                at,
                burn_rate: s.burn_rate,
                error_ratio: s.error_ratio,
                requests: s.requests,
                errors: s.errors,
                budget_remaining: s.budget_remaining,
                telemetry_error: report.telemetry_error,
            });
        }
        first = last + 1;
    }
    Ok(points)
}
