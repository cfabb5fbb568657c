//! What may still hold a promotion the rules decided: a missing approval, a freeze, a closed
//! departure window.
//!
//! [`hold`] runs after [`super::decide`], with the evaluation time, and only ever turns a
//! promotion of a train that has not departed yet into `pending`: a rollback or a pause is
//! never held, a train already promoted stays promoted (it is watched, not departed again),
//! and a promote override wins
//! (the operator's call, recorded with who and why). The held evaluation keeps every rule's
//! outcome, so the evidence still shows the train verified; the next evaluation decides
//! afresh and promotes at the first one the hold no longer applies to.
//!
//! The order of the reasons is the order a person acts on them: approval first (someone has
//! to do something), then the freeze, then the window.

use chrono::{DateTime, Utc};

use super::{Evaluation, TrainState};
use crate::calendar;
use crate::config::{Approval, Gate};
use crate::vocab::Decision;

/// The reason of a verified train whose gate needs an approval it has not had.
pub const AWAITING_APPROVAL: &str = "verified; awaiting approval";

/// Why a promotion of a train of `gate` with `state` is held at `at`, if it is.
pub fn hold_reason(gate: &Gate, state: &TrainState, at: DateTime<Utc>) -> Option<String> {
    if gate.approval == Approval::Required && state.approved_by.is_none() {
        return Some(AWAITING_APPROVAL.to_string());
    }
    calendar::hold_reason(gate, at)
}

/// `evaluation` (decided from `prev`) with a promotion held at `at` (see the module docs).
///
/// `departed` says whether the train has promoted already, in which case nothing is held: for
/// a train of one gate that is `prev`'s decision; for a gate's part of a train of several
/// gates it is the train's verdict, so a gate that promoted its part early is held again
/// while the train has not departed and the gate's window is closed.
pub fn hold(
    gate: &Gate,
    prev: &TrainState,
    departed: bool,
    at: DateTime<Utc>,
    mut evaluation: Evaluation,
) -> Evaluation {
    let new_promotion = evaluation.decision == Decision::Promote
        && !departed
        && evaluation.state.pinned != Some(Decision::Promote);
    if !new_promotion {
        return evaluation;
    }
    let Some(reason) = hold_reason(gate, &evaluation.state, at) else {
        return evaluation;
    };
    let state = &mut evaluation.state;
    state.decision = Some(Decision::Pending);
    if prev.decision == Some(Decision::Pending) {
        state.decided_reason = prev.decided_reason.clone();
        state.decided_rule = prev.decided_rule.clone();
    } else {
        state.decided_reason = Some(reason.clone());
        state.decided_rule = None;
    }
    evaluation.decision = Decision::Pending;
    evaluation.reason = reason;
    evaluation.rule = None;
    if evaluation.would_have == Some(Decision::Pending) {
        evaluation.would_have = None;
    }
    evaluation
}
