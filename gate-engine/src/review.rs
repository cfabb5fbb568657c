//! The monthly review's arithmetic: the trains started in a time range, from their stored
//! histories ([`crate::store::Store::histories`]), turned into the figures of
//! [`gate_api::Report`] — per gate and overall. `GET /v1/report` and `gate report --db` are
//! computed here, and the daemon's `gate_time_to_verdict_seconds` takes its verdict from
//! [`is_verdict`] (its `gate_trains_finished_total` the outcome from
//! [`crate::store::Outcome`], as `finished` here); `docs/report.md` states them for users.
//!
//! A train is counted once overall and once for each gate that judged it ([`gates_of`]: one
//! place to change when a train has several gates). Rates whose denominator is zero are
//! `None` (JSON `null`), never 0 or NaN: "no train finished" is not "no train succeeded".
//!
//! Percentiles interpolate linearly between the two closest ranks (the "type 7" estimator of
//! R and NumPy's default): with the times sorted, the p-quantile of n values is at rank
//! `(n − 1)·p`. It makes the median the familiar one (the mean of the two middle values for
//! an even count) and needs no choice of "nearest" rank.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use gate_api::{Figures, Report, TimeToVerdict};
use gate_rules::{Decision, PromDuration};

use crate::store::{HistoryChange, Outcome, TrainHistory};

/// The gates that judged a train. A train of several gates counts under each of them with
/// the train's outcome (its verdict is theirs together).
pub fn gates_of(train: &TrainHistory) -> Vec<&str> {
    train.gates.iter().map(String::as_str).collect()
}

/// The start of the range `since` before `now` (the earliest representable time when
/// `since` reaches past it).
pub fn range_start(since: PromDuration, now: DateTime<Utc>) -> DateTime<Utc> {
    chrono::Duration::from_std(since.as_duration())
        .ok()
        .and_then(|d| now.checked_sub_signed(d))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// Whether a decision is a verdict: `promote` or `rollback`.
pub fn is_verdict(decision: Decision) -> bool {
    matches!(decision, Decision::Promote | Decision::Rollback)
}

/// The report over `trains` (the histories of the trains started in `[from, to]`), limited
/// to `gate`'s trains when one is given. `since` is the range as the caller wrote it.
pub fn build(
    trains: &[TrainHistory],
    since: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    gate: Option<&str>,
) -> Report {
    let mut overall = Tally::default();
    let mut gates: BTreeMap<String, Tally> = BTreeMap::new();
    for train in trains {
        let judged_by = gates_of(train);
        let chosen: Vec<&str> = judged_by
            .into_iter()
            .filter(|g| gate.is_none_or(|want| want == *g))
            .collect();
        if chosen.is_empty() {
            continue;
        }
        let life = Life::of(train, to);
        overall.add(&life);
        for g in chosen {
            gates.entry(g.to_string()).or_default().add(&life);
        }
    }
    Report {
        since: since.to_string(),
        from,
        to,
        gate: gate.map(str::to_string),
        overall: overall.figures(),
        gates: gates
            .into_iter()
            .map(|(name, tally)| (name, tally.figures()))
            .collect(),
    }
}

/// What one train contributes.
#[derive(Debug, Clone, PartialEq)]
struct Life {
    promoted: bool,
    rolled_back: bool,
    rolled_back_after_promotion: bool,
    paused: bool,
    paused_secs: f64,
    overridden: bool,
    outcome: Option<Outcome>,
    verdict_secs: Option<f64>,
    /// The rule of each change into `rollback`; `None` for an operator's.
    rollbacks: Vec<Option<String>>,
}

impl Life {
    /// Reads a train's history; a pause still on at the end counts up to its stop, or `to`.
    fn of(train: &TrainHistory, to: DateTime<Utc>) -> Life {
        let changed = |c: &&HistoryChange| c.decision != c.previous;
        let mut life = Life {
            promoted: false,
            rolled_back: false,
            rolled_back_after_promotion: false,
            paused: false,
            paused_secs: 0.0,
            overridden: train.changes.iter().any(|c| c.override_action.is_some()),
            outcome: train.outcome,
            verdict_secs: None,
            rollbacks: Vec::new(),
        };
        let mut paused_since: Option<DateTime<Utc>> = None;
        for c in train.changes.iter().filter(changed) {
            if let Some(since) = paused_since.take() {
                life.paused_secs += secs(c.at - since);
            }
            match c.decision {
                Decision::Promote => life.promoted = true,
                Decision::Rollback => {
                    life.rolled_back = true;
                    life.rolled_back_after_promotion |= life.promoted;
                    life.rollbacks.push(match c.override_action {
                        Some(_) => None,
                        None => Some(c.rule.clone().unwrap_or_else(|| "(no rule)".into())),
                    });
                }
                Decision::Pause => {
                    life.paused = true;
                    paused_since = Some(c.at);
                }
                Decision::Pending => {}
            }
            if is_verdict(c.decision) && life.verdict_secs.is_none() {
                life.verdict_secs = Some(secs(c.at - train.started_at).max(0.0));
            }
        }
        if let Some(since) = paused_since {
            let end = train.stopped_at.map_or(to, |s| s.min(to));
            life.paused_secs += secs(end - since).max(0.0);
        }
        life
    }
}

fn secs(d: chrono::Duration) -> f64 {
    d.num_milliseconds() as f64 / 1000.0
}

/// Running totals of a set of trains.
#[derive(Debug, Default)]
struct Tally {
    started: u64,
    promoted: u64,
    rolled_back: u64,
    rolled_back_after_promotion: u64,
    paused: u64,
    paused_secs: f64,
    overridden: u64,
    finished: u64,
    succeeded: u64,
    stopped: u64,
    verdict_secs: Vec<f64>,
    rollback_rules: BTreeMap<String, u64>,
    override_rollbacks: u64,
}

impl Tally {
    fn add(&mut self, life: &Life) {
        let n = |b: bool| u64::from(b);
        self.started += 1;
        self.promoted += n(life.promoted);
        self.rolled_back += n(life.rolled_back);
        self.rolled_back_after_promotion += n(life.rolled_back_after_promotion);
        self.paused += n(life.paused);
        self.paused_secs += life.paused_secs;
        self.overridden += n(life.overridden);
        self.finished += n(life.outcome.is_some());
        self.succeeded += n(life.outcome == Some(Outcome::Promoted));
        self.stopped += n(life.outcome == Some(Outcome::Stopped));
        self.verdict_secs.extend(life.verdict_secs);
        for rule in &life.rollbacks {
            match rule {
                Some(rule) => *self.rollback_rules.entry(rule.clone()).or_default() += 1,
                None => self.override_rollbacks += 1,
            }
        }
    }

    fn figures(mut self) -> Figures {
        let rate = |part: u64, whole: u64| (whole > 0).then(|| part as f64 / whole as f64);
        self.verdict_secs.sort_by(f64::total_cmp);
        Figures {
            started: self.started,
            promoted: self.promoted,
            rolled_back: self.rolled_back,
            rolled_back_after_promotion: self.rolled_back_after_promotion,
            paused: self.paused,
            paused_secs: self.paused_secs,
            overridden: self.overridden,
            finished: self.finished,
            succeeded: self.succeeded,
            stopped: self.stopped,
            release_success_rate: rate(self.succeeded, self.finished),
            rollback_frequency: rate(self.rolled_back, self.started),
            change_failure_rate: rate(self.rolled_back_after_promotion, self.promoted),
            time_to_verdict: TimeToVerdict {
                trains: self.verdict_secs.len() as u64,
                median_secs: quantile(&self.verdict_secs, 0.5),
                p90_secs: quantile(&self.verdict_secs, 0.9),
            },
            rollback_rules: self.rollback_rules,
            override_rollbacks: self.override_rollbacks,
        }
    }
}

/// The `p`-quantile of `sorted` (ascending), interpolated between the closest ranks; `None`
/// when empty.
pub fn quantile(sorted: &[f64], p: f64) -> Option<f64> {
    let last = sorted.len().checked_sub(1)?;
    let rank = last as f64 * p.clamp(0.0, 1.0);
    let below = rank.floor() as usize;
    let above = (below + 1).min(last);
    let fraction = rank - below as f64;
    Some(sorted[below] + fraction * (sorted[above] - sorted[below]))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use gate_rules::TrainId;

    use super::*;
    use crate::store::{Lifecycle, OverrideAction};

    fn t(secs: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap() + chrono::Duration::seconds(secs)
    }

    fn change(
        seq: u64,
        at: i64,
        previous: Decision,
        decision: Decision,
        rule: &str,
    ) -> HistoryChange {
        HistoryChange {
            seq,
            at: t(at),
            previous,
            decision,
            rule: (!rule.is_empty()).then(|| rule.to_string()),
            override_action: None,
        }
    }

    fn train(
        id: &str,
        gate: &str,
        lifecycle: Lifecycle,
        changes: Vec<HistoryChange>,
    ) -> TrainHistory {
        TrainHistory {
            id: id.parse::<TrainId>().unwrap(),
            gate: gate.to_string(),
            gates: vec![gate.to_string()],
            started_at: t(0),
            lifecycle,
            outcome: Outcome::on_finishing(lifecycle),
            stopped_at: None,
            changes,
        }
    }

    use Decision::{Pause, Pending, Promote, Rollback};

    /// Seven trains of two gates in a real store, at explicit times (seconds after
    /// 2026-11-01T12:00:00Z), and every figure they give.
    #[test]
    fn a_store_with_known_trains_gives_exact_figures() {
        use crate::store::testing::{change as store_change, new_train, t as st, temp_store, tid};
        use crate::store::OverrideWrite;

        let (_dir, store) = temp_store();
        let register = |id: &str, gate: &str, start: i64| {
            let mut n = new_train(id);
            n.gate = gate.to_string();
            n.started_at = Some(st(start));
            store.register(&n, st(start)).unwrap();
        };
        let finish = |id: &str, seq: u64, at: i64| {
            // The watch ends: same decision, lifecycle done.
            let mut w = crate::store::testing::eval(id, seq, Promote, st(at), vec![]);
            w.lifecycle = Lifecycle::Done;
            store.record_evaluation(&w).unwrap();
        };
        // c1: promoted at +1800 s, watched to the end.
        register("c1", "checkout", 0);
        store_change(&store, "c1", 0, Promote, st(1800), vec![]);
        finish("c1", 1, 9000);
        // c2: paused 600 s (from +600), then promoted at +2400, watched to the end.
        register("c2", "checkout", 0);
        store_change(&store, "c2", 0, Pause, st(600), vec![]);
        store_change(&store, "c2", 1, Pending, st(1200), vec![]);
        store_change(&store, "c2", 2, Promote, st(2400), vec![]);
        finish("c2", 3, 9600);
        // c3: rolled back by fast-burn at +300, before any promotion; stopped afterwards (it
        // stays a rollback).
        register("c3", "checkout", 0);
        store_change(&store, "c3", 0, Rollback, st(300), vec![]);
        store.stop(&tid("c3"), st(400)).unwrap();
        // c4: promoted at +1800, rolled back during the watch at +3000.
        register("c4", "checkout", 0);
        store_change(&store, "c4", 0, Promote, st(1800), vec![]);
        store_change(&store, "c4", 1, Rollback, st(3000), vec![]);
        // c5: an operator rolls it back at +900.
        register("c5", "checkout", 0);
        store
            .record_override(&OverrideWrite {
                train: tid("c5"),
                action: crate::store::OverrideAction::Rollback,
                decision: Rollback,
                reason: "bad config".into(),
                actor: "alice".into(),
                at: st(900),
                state: Default::default(),
                lifecycle: Lifecycle::RolledBack,
                events: vec![],
                on_behalf_of: None,
                gates: None,
            })
            .unwrap();
        // s1 (gate search): still verifying. s2: stopped at +500 while paused since +200.
        register("s1", "search", 0);
        register("s2", "search", 0);
        store_change(&store, "s2", 0, Pause, st(200), vec![]);
        store.stop(&tid("s2"), st(500)).unwrap();
        // Started before the range: not counted.
        register("old", "checkout", -100);

        let histories = store.histories(st(0), st(20_000)).unwrap();
        let r = build(&histories, "1d", st(0), st(20_000), None);
        let checkout = &r.gates["checkout"];
        assert_eq!(
            (checkout.started, checkout.promoted, checkout.rolled_back),
            (5, 3, 3)
        );
        assert_eq!(checkout.rolled_back_after_promotion, 1);
        assert_eq!((checkout.paused, checkout.paused_secs), (1, 600.0));
        assert_eq!(checkout.overridden, 1);
        assert_eq!(
            (checkout.finished, checkout.succeeded, checkout.stopped),
            (5, 2, 0)
        );
        assert_eq!(checkout.release_success_rate, Some(2.0 / 5.0));
        assert_eq!(checkout.rollback_frequency, Some(3.0 / 5.0));
        assert_eq!(checkout.change_failure_rate, Some(1.0 / 3.0));
        // Verdicts at 1800, 2400, 300, 1800, 900 s: sorted 300, 900, 1800, 1800, 2400.
        assert_eq!(checkout.time_to_verdict.trains, 5);
        assert_eq!(checkout.time_to_verdict.median_secs, Some(1800.0));
        // Rank 4 × 0.9 = 3.6: 1800 + 0.6 × 600.
        let p90 = checkout.time_to_verdict.p90_secs.unwrap();
        assert!((p90 - 2160.0).abs() < 1e-9, "{p90}");
        assert_eq!(
            checkout.rollback_rules,
            BTreeMap::from([("fast-burn".to_string(), 2)])
        );
        assert_eq!(checkout.override_rollbacks, 1);

        let search = &r.gates["search"];
        assert_eq!((search.started, search.finished, search.stopped), (2, 1, 1));
        assert_eq!((search.paused, search.paused_secs), (1, 300.0));
        assert_eq!(search.release_success_rate, Some(0.0));
        assert_eq!(search.rollback_frequency, Some(0.0));
        assert_eq!(search.change_failure_rate, None, "nothing promoted");
        assert_eq!(search.time_to_verdict.trains, 0);
        assert_eq!(search.time_to_verdict.median_secs, None);

        let all = &r.overall;
        assert_eq!((all.started, all.finished, all.succeeded), (7, 6, 2));
        assert_eq!(all.paused_secs, 900.0);
        assert_eq!(all.release_success_rate, Some(2.0 / 6.0));
        assert_eq!(all.rollback_frequency, Some(3.0 / 7.0));
    }

    #[test]
    fn quantiles_interpolate_between_ranks() {
        assert_eq!(quantile(&[], 0.5), None);
        assert_eq!(quantile(&[7.0], 0.9), Some(7.0));
        assert_eq!(quantile(&[1.0, 2.0, 3.0, 4.0], 0.5), Some(2.5));
        // 10 values 10, 20, …, 100: rank 9 × 0.9 = 8.1 → 90 + 0.1 × 10.
        let tens: Vec<f64> = (1..=10).map(|i| f64::from(i) * 10.0).collect();
        let p90 = quantile(&tens, 0.9).unwrap();
        assert!((p90 - 91.0).abs() < 1e-9, "{p90}");
    }

    #[test]
    fn a_pause_counts_until_the_next_change_or_the_end() {
        let paused_then_promoted = train(
            "a",
            "checkout",
            Lifecycle::Promoted,
            vec![
                change(1, 600, Pending, Pause, "slow-burn"),
                change(2, 900, Pause, Pending, ""),
                change(3, 1800, Pending, Promote, ""),
            ],
        );
        let life = Life::of(&paused_then_promoted, t(10_000));
        assert_eq!(life.paused_secs, 300.0);
        assert_eq!(life.verdict_secs, Some(1800.0));
        let mut still_paused = train(
            "b",
            "checkout",
            Lifecycle::Paused,
            vec![change(1, 600, Pending, Pause, "x")],
        );
        assert_eq!(Life::of(&still_paused, t(1000)).paused_secs, 400.0);
        still_paused.lifecycle = Lifecycle::Stopped;
        still_paused.stopped_at = Some(t(700));
        assert_eq!(Life::of(&still_paused, t(1000)).paused_secs, 100.0);
    }

    #[test]
    fn a_pinned_override_is_an_override_but_no_change() {
        let mut pin = change(2, 700, Promote, Promote, "");
        pin.override_action = Some(OverrideAction::Promote);
        let h = train(
            "a",
            "checkout",
            Lifecycle::Promoted,
            vec![change(1, 600, Pending, Promote, ""), pin],
        );
        let life = Life::of(&h, t(1000));
        assert!(life.overridden && life.promoted && !life.rolled_back);
        assert_eq!(life.verdict_secs, Some(600.0));
    }

    #[test]
    fn the_gate_filter_keeps_one_gate_and_overall_follows_it() {
        let trains = [
            train(
                "a",
                "checkout",
                Lifecycle::Done,
                vec![change(1, 60, Pending, Promote, "")],
            ),
            train(
                "b",
                "search",
                Lifecycle::RolledBack,
                vec![change(1, 60, Pending, Rollback, "fast-burn")],
            ),
        ];
        let r = build(&trains, "30d", t(0), t(100), Some("search"));
        assert_eq!(r.gate.as_deref(), Some("search"));
        assert_eq!(r.overall.started, 1);
        assert_eq!(r.overall.rolled_back, 1);
        assert_eq!(r.gates.keys().collect::<Vec<_>>(), ["search"]);
        let r = build(&trains, "30d", t(0), t(100), None);
        assert_eq!(r.overall.started, 2);
        assert_eq!(r.gates.len(), 2);
    }

    #[test]
    fn a_train_of_several_gates_counts_once_overall_and_under_each_gate() {
        let mut both = train(
            "a",
            "checkout",
            Lifecycle::RolledBack,
            vec![change(1, 60, Pending, Rollback, "fast-burn")],
        );
        both.gates = vec!["checkout".into(), "pricing".into()];
        let r = build(&[both], "30d", t(0), t(100), None);
        assert_eq!(r.overall.started, 1);
        assert_eq!(r.overall.rolled_back, 1);
        assert_eq!(r.gates.keys().collect::<Vec<_>>(), ["checkout", "pricing"]);
        assert!(r
            .gates
            .values()
            .all(|g| g.started == 1 && g.rolled_back == 1));
    }
}
