//! A train judged by several gates: its verdict is the most severe of its gates' decisions.
//!
//! Each gate decides its part of the train on its own (its SLOs, rules, state, holds); the
//! train's verdict is then rollback if any gate rolls back, else pause if any pauses, else
//! pending if any is pending, and promote only when every gate promotes. Among gates of equal
//! severity the first in the train's order speaks for the train, so the reason names the gate
//! that holds it back (`pricing: rollback: fast-burn …`).

use crate::vocab::Decision;

/// How severe a decision is for a train: rollback > pause > pending > promote.
pub fn severity(decision: Decision) -> u8 {
    match decision {
        Decision::Rollback => 3,
        Decision::Pause => 2,
        Decision::Pending => 1,
        Decision::Promote => 0,
    }
}

/// One gate's current decision about a train.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GateDecision<'a> {
    /// The gate.
    pub gate: &'a str,
    /// Its decision.
    pub decision: Decision,
    /// Its reason.
    pub reason: &'a str,
    /// Its deciding rule, if one did.
    pub rule: Option<&'a str>,
}

/// The verdict of a train over its gates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrainVerdict {
    /// The most severe decision.
    pub decision: Decision,
    /// `<gate>: <its reason>` of the gate that decides; for promote, every gate named.
    pub reason: String,
    /// The deciding gate's rule (none for promote).
    pub rule: Option<String>,
    /// The index of the deciding gate (the first of the most severe).
    pub deciding: usize,
}

/// The train's verdict over `gates` (in the train's order; at least one).
pub fn train_verdict(gates: &[GateDecision<'_>]) -> TrainVerdict {
    let deciding = gates
        .iter()
        .enumerate()
        .rev()
        .max_by_key(|(_, g)| severity(g.decision))
        .map_or(0, |(i, _)| i);
    let Some(first) = gates.get(deciding) else {
        return TrainVerdict {
            decision: Decision::Pending,
            reason: "no gate".to_string(),
            rule: None,
            deciding: 0,
        };
    };
    if first.decision == Decision::Promote {
        let names: Vec<&str> = gates.iter().map(|g| g.gate).collect();
        return TrainVerdict {
            decision: Decision::Promote,
            reason: format!("every gate promotes ({})", names.join(", ")),
            rule: None,
            deciding,
        };
    }
    TrainVerdict {
        decision: first.decision,
        reason: format!("{}: {}", first.gate, first.reason),
        rule: first.rule.map(str::to_string),
        deciding,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g<'a>(gate: &'a str, decision: Decision, reason: &'a str) -> GateDecision<'a> {
        GateDecision {
            gate,
            decision,
            reason,
            rule: None,
        }
    }

    #[test]
    fn the_most_severe_gate_decides_and_promote_needs_every_gate() {
        use Decision::*;
        let table = [
            (
                vec![Promote, Promote],
                Promote,
                "every gate promotes (a, b)",
            ),
            (vec![Promote, Pending], Pending, "b: r1"),
            (vec![Pending, Pause], Pause, "b: r1"),
            (vec![Rollback, Pause], Rollback, "a: r0"),
            (vec![Pause, Rollback], Rollback, "b: r1"),
            (vec![Pending, Pending], Pending, "a: r0"),
            (vec![Promote, Rollback], Rollback, "b: r1"),
        ];
        for (decisions, verdict, reason) in table {
            let gates: Vec<GateDecision<'_>> = decisions
                .iter()
                .enumerate()
                .map(|(i, d)| g(["a", "b"][i], *d, ["r0", "r1"][i]))
                .collect();
            let v = train_verdict(&gates);
            assert_eq!(v.decision, verdict, "{decisions:?}");
            assert_eq!(v.reason, reason, "{decisions:?}");
        }
    }

    #[test]
    fn severity_orders_the_decisions() {
        let mut all = Decision::ALL.to_vec();
        all.sort_by_key(|d| std::cmp::Reverse(severity(*d)));
        assert_eq!(
            all,
            [
                Decision::Rollback,
                Decision::Pause,
                Decision::Pending,
                Decision::Promote
            ]
        );
    }
}
