//! The decision function of SPEC §4: one evaluation of one train.
//!
//! It is a pure function from (gate, train age, telemetry outcome, previous state) to a
//! decision with its evidence. The daemon keeps the returned [`TrainState`] between
//! evaluations (for `for`, `resume_after`, consecutive telemetry errors and the rollback latch);
//! `gate eval` calls it in [`Mode::Stateless`] with a fresh state.
//!
//! It reads rule values through [`crate::signals::Resolver`] and each rule's compiled
//! condition ([`crate::expr::CompiledExpr::evaluate`]); the engine stores the returned state and
//! reports the [`Evaluation`] as evidence.
//!
//! One evaluation goes through these steps, in this order (SPEC §4):
//!
//! 1. **Telemetry failed**: an error, not evidence. The decision stays; after
//!    `max_consecutive_errors` failures in a row (daemon only) a pending train becomes
//!    `on_telemetry_error`. Rule streaks are kept as they were (a failed fetch is neither a
//!    true nor a false condition) and the `error_delta` tests take no look; the clean-evaluation
//!    count that lifts a rule-caused pause starts again, so "clean evaluations in a row" never
//!    spans an outage.
//! 2. **Rules**: the anytime-valid test behind each SLO's `error_delta` takes this evaluation's
//!    look (in both modes: `gate eval` passes a state whose tests already took the looks before
//!    its time), then each condition is true, false or unknown. A rule *takes effect* when its
//!    condition held for `for` consecutive evaluations (daemon) or is true (stateless). The
//!    most severe `then` in effect wins (rollback > pause > promote); among equals, the first
//!    rule in file order decides.
//! 3. **Inconclusive** when no rollback/pause rule took effect and a rule is unknown or an SLO
//!    of the gate saw fewer than `min_requests` events since the start: pending while
//!    `age < verify_for`, then `on_inconclusive`.
//! 4. **Clean**: pending while `age < verify_for`, then promote.
//! 5. **Memory**: rollback is latched (the reason that caused it is kept); a rule-caused pause
//!    lifts after `resume_after` clean evaluations in a row (daemon), other pauses as soon as
//!    their cause clears; a promoted train stays promoted while watched, and only a rollback
//!    rule taking effect changes it. An operator's pinned decision wins over all of this, with
//!    one exception: a promote override is broken by a rollback rule that takes effect after
//!    its condition was false at an evaluation since the override (a regression that appeared
//!    after the operator's call, not the one they overrode); the rollback is latched.
//!
//! After these steps, [`hold`] may still hold a new promotion: a gate's `approval`, freezes
//! and departure windows (see `hold.rs`).
//!
//! **Dry-run rules** (`dry_run: true`) are evaluated, tracked (their streaks count toward
//! their `for`) and reported like any rule, but steps 2–5 see only the enforced rules, so a
//! dry-run rule never changes the decision. The same steps run once more with every rule
//! enforced; when that decision differs, it is the evaluation's `would_have`.
//!
//! Choices a newcomer would question, all on the side of "never promote blind":
//!
//! * A `then: promote` rule never promotes earlier than `verify_for` nor on inconclusive
//!   evidence; when it takes effect after `verify_for` it only names itself in the reason.
//! * A rollback or pause rule whose condition holds but whose `for` is not met yet keeps the
//!   train pending (it does not promote) and does not count as a clean evaluation.
//! * "Clean", for lifting a rule-caused pause, means: no rollback or pause rule's condition is
//!   true (whether or not its `for` is met) and the evidence is conclusive.

use std::collections::{BTreeMap, BTreeSet};

use crate::config::{Gate, Slo};
use crate::signals::{Resolver, Signals};
use crate::vocab::{Decision, HoldDecision, SignalValues, Truth};

mod hold;
mod outcome;
mod state;
mod train;

pub use hold::{hold, hold_reason, AWAITING_APPROVAL};
pub use outcome::{Evaluation, RuleOutcome};
pub use state::{PauseCause, PinWatch, TrainState};
pub use train::{severity, train_verdict, GateDecision, TrainVerdict};

/// Whether `for` and `resume_after` apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `gate eval`: one evaluation, `for`/`resume_after` do not apply.
    Stateless,
    /// `gate serve`: state carries over between evaluations.
    Daemon,
}

/// The outcome of fetching telemetry for one train.
#[derive(Debug, Clone, Copy)]
pub enum Telemetry<'a> {
    /// All queries succeeded (individual series may still be missing).
    Ok(&'a Signals),
    /// A query failed; the message says which and why.
    Failed(&'a str),
}

/// Decides one evaluation of one train. See the module docs and SPEC §4.
///
/// `age_secs` is the train's age at the evaluation time (NaN or negative counts as 0: the
/// train is never promoted on a broken clock).
pub fn decide(
    gate: &Gate,
    slos: &[Slo],
    age_secs: f64,
    telemetry: Telemetry<'_>,
    prev: &TrainState,
    mode: Mode,
) -> Evaluation {
    match telemetry {
        Telemetry::Failed(message) => telemetry_failed(gate, message, prev, mode),
        Telemetry::Ok(signals) => {
            let watch = pin_watch(prev);
            let mut sequential = prev.sequential.clone();
            let verdicts = signals.look(gate, &mut sequential);
            let resolver = Resolver {
                signals,
                slos,
                gate,
                verdicts: &verdicts,
            };
            let rules = evaluate_rules(gate, &resolver, prev, mode);
            let age_secs = if age_secs.is_finite() {
                age_secs.max(0.0)
            } else {
                0.0
            };
            let enforced: Vec<RuleOutcome>;
            let dry_runs = rules.iter().any(|r| r.dry_run);
            let deciding: &[RuleOutcome] = if dry_runs {
                enforced = rules.iter().filter(|r| !r.dry_run).cloned().collect();
                &enforced
            } else {
                &rules
            };
            let step_with = |rules: &[RuleOutcome]| {
                let ctx = Ctx {
                    gate,
                    signals,
                    age_secs,
                    mode,
                    rules,
                };
                let verdict = ctx.verdict();
                let breaking = watch
                    .as_ref()
                    .and_then(|w| breaks_pin(rules, w).map(|i| (i, &w.by)));
                let step = match (prev.pinned, breaking) {
                    (Some(Decision::Promote), Some((i, by))) => ctx.broke_pin(i, by),
                    (Some(pinned), _) => pin(pinned, ctx.natural(&verdict, prev)),
                    (None, _) => ctx.natural(&verdict, prev),
                };
                (step, ctx.inconclusive_reason().is_some())
            };
            let (step, inconclusive) = step_with(deciding);
            let would_have = dry_runs
                .then(|| step_with(&rules).0.decision)
                .filter(|d| *d != step.decision);
            let streaks = rules.iter().map(|r| (r.name.clone(), r.streak)).collect();
            let broken = watch.is_some() && step.decision == Decision::Rollback;
            let watch = watch.filter(|_| !broken).map(|mut w| {
                w.seen_false.extend(
                    rules
                        .iter()
                        .filter(|r| r.then == Decision::Rollback && r.fired == Some(false))
                        .map(|r| r.name.clone()),
                );
                w
            });
            let mut evaluation = finish(step, rules, inconclusive, None, prev, |state| {
                state.consecutive_errors = 0;
                state.streaks = streaks;
                state.sequential = sequential;
                state.pin_watch = watch;
                if broken {
                    state.pinned = None;
                }
            });
            evaluation.would_have = would_have;
            evaluation.verdicts = verdicts;
            evaluation
        }
    }
}

/// Clears an operator's override and any pause so the train is evaluated afresh: the daemon
/// calls this for `gate override --decision resume`. The decision becomes pending (also after
/// a rollback: resuming is the operator's explicit call) and rule streaks start over.
pub fn resume(state: &mut TrainState) {
    state.pinned = None;
    state.pause_cause = None;
    state.clean_streak = 0;
    state.streaks.clear();
    state.decision = Some(Decision::Pending);
    state.decided_reason = None;
    state.decided_rule = None;
    state.pin_watch = None;
}

/// What one evaluation concluded, before it is folded into the next [`TrainState`].
#[derive(Debug, Clone, PartialEq)]
struct Step {
    decision: Decision,
    reason: String,
    rule: Option<String>,
    pause_cause: Option<PauseCause>,
    clean_streak: u32,
}

impl Step {
    fn new(decision: Decision, reason: String) -> Self {
        Step {
            decision,
            reason,
            rule: None,
            pause_cause: None,
            clean_streak: 0,
        }
    }

    fn with_rule(mut self, rule: Option<String>) -> Self {
        self.rule = rule;
        self
    }

    fn with_pause(mut self, cause: PauseCause, clean_streak: u32) -> Self {
        self.pause_cause = Some(cause);
        self.clean_streak = clean_streak;
        self
    }
}

/// Builds the evaluation and the state to remember from a step.
fn finish(
    step: Step,
    rules: Vec<RuleOutcome>,
    inconclusive: bool,
    telemetry_error: Option<String>,
    prev: &TrainState,
    update: impl FnOnce(&mut TrainState),
) -> Evaluation {
    let mut state = prev.clone();
    update(&mut state);
    let changed = prev.decision != Some(step.decision);
    if changed {
        state.decided_reason = Some(step.reason.clone());
        state.decided_rule = step.rule.clone();
    }
    state.decision = Some(step.decision);
    state.pause_cause = step.pause_cause;
    state.clean_streak = step.clean_streak;
    Evaluation {
        decision: step.decision,
        reason: step.reason,
        rule: step.rule,
        rules,
        inconclusive,
        telemetry_error,
        would_have: None,
        verdicts: BTreeMap::new(),
        state,
    }
}

/// A decision pinned by an override wins; the rules' own view is kept in the reason.
fn pin(pinned: Decision, natural: Step) -> Step {
    let mut reason = format!("override: {pinned}");
    if natural.decision != pinned {
        reason.push_str(&format!(" (rules alone: {})", natural.reason));
    }
    Step::new(pinned, reason)
}

/// The watch of the promote override pinning the train, if one does: carried over from the
/// previous evaluation when it watched the same override, else a new one.
fn pin_watch(prev: &TrainState) -> Option<PinWatch> {
    if prev.pinned != Some(Decision::Promote) {
        return None;
    }
    let by = prev
        .decided_reason
        .clone()
        .unwrap_or_else(|| "override: promote".to_string());
    match &prev.pin_watch {
        Some(watch) if watch.by == by => Some(watch.clone()),
        _ => Some(PinWatch {
            by,
            seen_false: BTreeSet::new(),
        }),
    }
}

/// The first rollback rule in effect whose condition was false at an evaluation since the
/// promote override: it breaks the pin.
fn breaks_pin(rules: &[RuleOutcome], watch: &PinWatch) -> Option<usize> {
    rules.iter().position(|r| {
        r.then == Decision::Rollback && r.in_effect && watch.seen_false.contains(&r.name)
    })
}

/// Step 1 of SPEC §4: the telemetry fetch failed.
fn telemetry_failed(gate: &Gate, message: &str, prev: &TrainState, mode: Mode) -> Evaluation {
    let errors = prev.consecutive_errors.saturating_add(1);
    let unavailable = format!("telemetry unavailable: {message}");
    let in_a_row = format!("{unavailable} ({errors} failures in a row)");
    let step = match (prev.pinned, prev.decision.unwrap_or(Decision::Pending)) {
        (Some(pinned), _) => Step::new(pinned, format!("override: {pinned}; {unavailable}")),
        (None, Decision::Rollback) => latched(prev, Some(&unavailable)),
        (None, Decision::Promote) => {
            Step::new(Decision::Promote, format!("promoted, watching; {in_a_row}"))
                .with_rule(prev.decided_rule.clone())
        }
        (None, Decision::Pause) => Step::new(Decision::Pause, format!("{in_a_row}; still paused"))
            .with_rule(prev.decided_rule.clone())
            .with_pause(prev.pause_cause.unwrap_or(PauseCause::Telemetry), 0),
        (None, Decision::Pending) if mode == Mode::Stateless => {
            Step::new(Decision::Pending, unavailable)
        }
        (None, Decision::Pending) if errors >= gate.max_consecutive_errors => {
            escalate_telemetry(gate, in_a_row)
        }
        (None, Decision::Pending) => Step::new(
            Decision::Pending,
            format!(
                "{unavailable} (failure {errors} of {} before {})",
                gate.max_consecutive_errors,
                gate.on_telemetry_error.decision()
            ),
        ),
    };
    let rules = gate
        .rules
        .iter()
        .map(|rule| RuleOutcome {
            name: rule.name.clone(),
            then: rule.then,
            fired: None,
            in_effect: false,
            values: SignalValues::new(),
            unknown_reason: Some("telemetry unavailable".to_string()),
            streak: prev.streaks.get(&rule.name).copied().unwrap_or(0),
            dry_run: rule.dry_run,
        })
        .collect();
    finish(
        step,
        rules,
        true,
        Some(message.to_string()),
        prev,
        |state| {
            state.consecutive_errors = errors;
        },
    )
}

fn escalate_telemetry(gate: &Gate, reason: String) -> Step {
    match gate.on_telemetry_error {
        HoldDecision::Pause => {
            Step::new(Decision::Pause, reason).with_pause(PauseCause::Telemetry, 0)
        }
        HoldDecision::Pending => Step::new(
            Decision::Pending,
            format!("{reason}; staying pending (on_telemetry_error: pending)"),
        ),
    }
}

/// A latched rollback: the original reason and rule, with a note when given.
fn latched(prev: &TrainState, note: Option<&str>) -> Step {
    let original = prev
        .decided_reason
        .clone()
        .unwrap_or_else(|| "rollback (latched)".to_string());
    let reason = match note {
        Some(note) => format!("{original}; {note}"),
        None => original,
    };
    Step::new(Decision::Rollback, reason).with_rule(prev.decided_rule.clone())
}

/// Evaluates every rule's condition and tracks its streak.
fn evaluate_rules(
    gate: &Gate,
    resolver: &Resolver<'_>,
    prev: &TrainState,
    mode: Mode,
) -> Vec<RuleOutcome> {
    gate.rules
        .iter()
        .map(|rule| {
            let (truth, values) = rule.expr.evaluate(resolver);
            let holds = truth == Truth::True;
            let streak = match (holds, mode) {
                (false, _) => 0,
                (true, Mode::Stateless) => 1,
                (true, Mode::Daemon) => prev
                    .streaks
                    .get(&rule.name)
                    .copied()
                    .unwrap_or(0)
                    .saturating_add(1),
            };
            let in_effect =
                holds && (mode == Mode::Stateless || streak >= rule.for_evaluations.max(1));
            let (fired, unknown_reason) = match truth {
                Truth::True => (Some(true), None),
                Truth::False => (Some(false), None),
                Truth::Unknown(why) => (None, Some(why)),
            };
            RuleOutcome {
                name: rule.name.clone(),
                then: rule.then,
                fired,
                in_effect,
                values,
                unknown_reason,
                streak,
                dry_run: rule.dry_run,
            }
        })
        .collect()
}

/// What the rules and the evidence say in this evaluation alone.
#[derive(Debug, Clone, PartialEq)]
enum Verdict {
    /// The most severe rollback or pause rule in effect (index into the rules).
    Fired(usize),
    /// No rollback/pause rule in effect and the evidence is inconclusive (why).
    Inconclusive(String),
    /// A rollback or pause rule's condition holds but its `for` is not met yet.
    Building(usize),
    /// Nothing against the train; the promote rule in effect, if any.
    Clean(Option<usize>),
}

/// One evaluation with signals.
struct Ctx<'a> {
    gate: &'a Gate,
    signals: &'a Signals,
    age_secs: f64,
    mode: Mode,
    rules: &'a [RuleOutcome],
}

impl Ctx<'_> {
    fn verdict(&self) -> Verdict {
        let in_effect = |then: Decision| {
            self.rules
                .iter()
                .position(|r| r.in_effect && r.then == then)
        };
        if let Some(i) = in_effect(Decision::Rollback).or_else(|| in_effect(Decision::Pause)) {
            return Verdict::Fired(i);
        }
        if let Some(why) = self.inconclusive_reason() {
            return Verdict::Inconclusive(why);
        }
        let building = self
            .rules
            .iter()
            .position(|r| r.then != Decision::Promote && r.fired == Some(true));
        match building {
            Some(i) => Verdict::Building(i),
            None => Verdict::Clean(in_effect(Decision::Promote)),
        }
    }

    /// Why the evidence is inconclusive: too little traffic, then unknown rules.
    fn inconclusive_reason(&self) -> Option<String> {
        let mut parts = Vec::new();
        if let Some(short) = self.signals.min_requests_shortfall(self.gate) {
            let seen = match self.signals.since_start_requests(&short.slo) {
                Some(seen) => fmt_count(seen),
                None => "no data".to_string(),
            };
            parts.push(format!(
                "too little traffic for {} ({seen} < {} requests since start)",
                short.slo, short.needed
            ));
        }
        let unknown: Vec<&RuleOutcome> = self.rules.iter().filter(|r| r.fired.is_none()).collect();
        if let Some(first) = unknown.first() {
            let why = first.unknown_reason.as_deref().unwrap_or("no data");
            let mut part = format!("{} is unknown ({why})", first.name);
            if unknown.len() > 1 {
                part.push_str(&format!(" and {} more rules unknown", unknown.len() - 1));
            }
            parts.push(part);
        }
        (!parts.is_empty()).then(|| parts.join("; "))
    }

    fn verifying(&self) -> bool {
        self.age_secs < self.gate.verify_for.as_secs_f64()
    }

    fn elapsed(&self) -> String {
        format!(
            "{} of {} elapsed",
            fmt_secs(self.age_secs),
            self.gate.verify_for
        )
    }

    /// The decision from the rules, the evidence and the remembered state (no override).
    fn natural(&self, verdict: &Verdict, prev: &TrainState) -> Step {
        let before = prev.decision.unwrap_or(Decision::Pending);
        if before == Decision::Rollback {
            return latched(prev, None);
        }
        if let Verdict::Fired(i) = verdict {
            if self.rules[*i].then == Decision::Rollback {
                return self.fired(*i);
            }
        }
        if before == Decision::Promote {
            return self.watching(verdict, prev);
        }
        if let Verdict::Fired(i) = verdict {
            return self.fired(*i);
        }
        let rule_pause = before == Decision::Pause && prev.pause_cause == Some(PauseCause::Rule);
        if rule_pause && self.mode == Mode::Daemon {
            if let Some(hold) = self.hold_rule_pause(verdict, prev) {
                return hold;
            }
        }
        self.fresh(verdict)
    }

    /// A rollback or pause rule took effect.
    fn fired(&self, i: usize) -> Step {
        let rule = &self.rules[i];
        let reason = format!("{}: {}", rule.then, fired_text(rule, self.gate.alpha));
        let step = Step::new(rule.then, reason).with_rule(Some(rule.name.clone()));
        match rule.then {
            Decision::Pause => step.with_pause(PauseCause::Rule, 0),
            _ => step,
        }
    }

    /// A rollback rule that newly holds since a promote override breaks it.
    fn broke_pin(&self, i: usize, by: &str) -> Step {
        let rule = &self.rules[i];
        let reason = format!(
            "rollback: {}; it was false since the override, which it breaks ({by})",
            fired_text(rule, self.gate.alpha)
        );
        Step::new(Decision::Rollback, reason).with_rule(Some(rule.name.clone()))
    }

    /// A promoted train under watch: only a rollback rule changes it (handled before).
    fn watching(&self, verdict: &Verdict, prev: &TrainState) -> Step {
        let now = match verdict {
            Verdict::Fired(i) => format!(
                "{} (pause rules do not un-promote)",
                fired_text(&self.rules[*i], self.gate.alpha)
            ),
            Verdict::Inconclusive(why) => format!("inconclusive now: {why}"),
            Verdict::Building(i) => self.building_text(*i),
            Verdict::Clean(_) => "no rule fired".to_string(),
        };
        Step::new(Decision::Promote, format!("promoted, watching: {now}"))
            .with_rule(prev.decided_rule.clone())
    }

    /// A pause caused by a rule: counts clean evaluations until `resume_after`. `None` when the
    /// pause lifts now.
    fn hold_rule_pause(&self, verdict: &Verdict, prev: &TrainState) -> Option<Step> {
        let clean = matches!(verdict, Verdict::Clean(_));
        let count = if clean {
            prev.clean_streak.saturating_add(1)
        } else {
            0
        };
        let needed = self.gate.resume_after;
        if clean && count >= needed {
            return None;
        }
        let by = prev.decided_rule.as_deref().unwrap_or("a rule");
        let mut reason = format!("paused by {by}; {count}/{needed} clean evaluations to resume");
        match verdict {
            Verdict::Inconclusive(why) => reason.push_str(&format!(" (inconclusive: {why})")),
            Verdict::Building(i) => reason.push_str(&format!(" ({})", self.building_text(*i))),
            Verdict::Fired(_) | Verdict::Clean(_) => {}
        }
        Some(
            Step::new(Decision::Pause, reason)
                .with_rule(prev.decided_rule.clone())
                .with_pause(PauseCause::Rule, count),
        )
    }

    /// No rollback/pause rule in effect and nothing held over: steps 3 and 4 of SPEC §4.
    fn fresh(&self, verdict: &Verdict) -> Step {
        match verdict {
            Verdict::Fired(i) => self.fired(*i),
            Verdict::Inconclusive(why) => self.inconclusive(why),
            Verdict::Building(i) if self.verifying() => Step::new(
                Decision::Pending,
                format!("verifying: {}; {}", self.elapsed(), self.building_text(*i)),
            ),
            Verdict::Building(i) => Step::new(
                Decision::Pending,
                format!("holding: {}; not promoting", self.building_text(*i)),
            ),
            Verdict::Clean(promote) => self.clean(*promote),
        }
    }

    fn inconclusive(&self, why: &str) -> Step {
        if self.verifying() {
            return Step::new(
                Decision::Pending,
                format!("verifying: {}; inconclusive so far: {why}", self.elapsed()),
            );
        }
        match self.gate.on_inconclusive {
            HoldDecision::Pause => Step::new(Decision::Pause, format!("inconclusive: {why}"))
                .with_pause(PauseCause::Inconclusive, 0),
            HoldDecision::Pending => Step::new(
                Decision::Pending,
                format!("inconclusive: {why}; waiting (on_inconclusive: pending)"),
            ),
        }
    }

    fn clean(&self, promote: Option<usize>) -> Step {
        let rule = promote.map(|i| &self.rules[i]);
        if self.verifying() {
            let what = match rule {
                Some(r) => format!(
                    "{}; promoting no earlier than {}",
                    fired_text(r, self.gate.alpha),
                    self.gate.verify_for
                ),
                None => "no rule fired".to_string(),
            };
            return Step::new(
                Decision::Pending,
                format!("verifying: {}, {what}", self.elapsed()),
            );
        }
        let what = match rule {
            Some(r) => fired_text(r, self.gate.alpha),
            None => "no rule fired".to_string(),
        };
        Step::new(
            Decision::Promote,
            format!(
                "verified for {}: {what}, {}",
                self.gate.verify_for,
                self.requests_text()
            ),
        )
        .with_rule(rule.map(|r| r.name.clone()))
    }

    fn building_text(&self, i: usize) -> String {
        let rule = &self.rules[i];
        let needed = self
            .gate
            .rules
            .iter()
            .find(|r| r.name == rule.name)
            .map_or(1, |r| r.for_evaluations.max(1));
        format!(
            "{} ({}) holds {}/{needed} evaluations: {}",
            rule.name,
            rule.then,
            rule.streak,
            fmt_values(&rule.values, self.gate.alpha)
        )
    }

    /// Events since start, e.g. `12034 requests` or `requests a=120, b=3400`.
    fn requests_text(&self) -> String {
        let count = |slo: &str| {
            self.signals
                .since_start_requests(slo)
                .map_or_else(|| "no data".to_string(), fmt_count)
        };
        match self.gate.slos.as_slice() {
            [one] => format!("{} requests", count(one)),
            many => {
                let list: Vec<String> = many
                    .iter()
                    .map(|slo| format!("{slo}={}", count(slo)))
                    .collect();
                format!("requests {}", list.join(", "))
            }
        }
    }
}

/// `fast-burn fired: burn_rate("x", "1h")=20.1, burn_rate("x", "5m")=19.8`.
fn fired_text(rule: &RuleOutcome, alpha: f64) -> String {
    if rule.values.is_empty() {
        format!("{} fired", rule.name)
    } else {
        format!("{} fired: {}", rule.name, fmt_values(&rule.values, alpha))
    }
}

/// The values a rule read, `call=value` each; a significant `error_delta` reads as its
/// anytime-valid bound, e.g. `error_delta("x"): error rate ≥ 1.7× baseline (99 %, anytime-valid)`.
fn fmt_values(values: &SignalValues, alpha: f64) -> String {
    let parts: Vec<String> = values
        .iter()
        .map(|(call, v)| match significant_bound(v) {
            Some(lower) => format!(
                "{call}: error rate ≥ {}× baseline ({} %, anytime-valid)",
                fmt_num(lower),
                fmt_num((1.0 - alpha) * 100.0)
            ),
            None => format!("{call}={}", fmt_value(v)),
        })
        .collect();
    parts.join(", ")
}

/// `ratio_lower` of an `error_delta` value that is significant.
fn significant_bound(v: &serde_json::Value) -> Option<f64> {
    let fields = v.as_object()?;
    if fields.get("significant")?.as_bool()? {
        fields.get("ratio_lower")?.as_f64()
    } else {
        None
    }
}

fn fmt_value(v: &serde_json::Value) -> String {
    use serde_json::Value;
    match v {
        Value::Null => "no data".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.as_f64().map_or_else(|| n.to_string(), fmt_num),
        Value::String(s) => s.clone(),
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(fmt_value).collect();
            format!("[{}]", parts.join(", "))
        }
        Value::Object(fields) => {
            let parts: Vec<String> = fields
                .iter()
                .map(|(k, v)| format!("{k}={}", fmt_value(v)))
                .collect();
            format!("{{{}}}", parts.join(", "))
        }
    }
}

/// A number with four significant digits, trailing zeros trimmed: `20.1`, `0.00073`, `12034`.
fn fmt_num(v: f64) -> String {
    if !v.is_finite() {
        return if v.is_nan() {
            "NaN".to_string()
        } else if v > 0.0 {
            "+Inf".to_string()
        } else {
            "-Inf".to_string()
        };
    }
    if v == 0.0 {
        return "0".to_string();
    }
    let magnitude = v.abs().log10().floor();
    if !(-4.0..15.0).contains(&magnitude) {
        return format!("{v:.3e}");
    }
    let decimals = (3.0 - magnitude).max(0.0) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// An event count (extrapolated by Prometheus, so possibly fractional) as a whole number.
fn fmt_count(v: f64) -> String {
    format!("{:.0}", v)
}

/// Seconds as `45s`, `12m`, `12m30s`, `1h5m`, `2d3h`.
fn fmt_secs(secs: f64) -> String {
    let s = secs.max(0.0) as u64;
    let units = [(86_400, "d"), (3_600, "h"), (60, "m"), (1, "s")];
    let parts: Vec<String> = units
        .iter()
        .scan(s, |rest, &(size, name)| {
            let n = *rest / size;
            *rest %= size;
            Some((n, name))
        })
        .skip_while(|(n, _)| *n == 0)
        .take(2)
        .filter(|(n, _)| *n > 0)
        .map(|(n, name)| format!("{n}{name}"))
        .collect();
    if parts.is_empty() {
        "0s".to_string()
    } else {
        parts.concat()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{BadOrGood, BaselineKind, Rule};
    use crate::duration::PromDuration;
    use crate::expr;
    use crate::vocab::{Counter, Counts};

    const SLO: &str = "checkout-availability";
    /// Ten minutes: inside the 30m verification window.
    const EARLY: f64 = 600.0;
    /// Forty minutes: past the 30m verification window.
    const LATE: f64 = 2400.0;

    fn d(s: &str) -> PromDuration {
        s.parse().unwrap()
    }

    fn rule(name: &str, when: &str, then: Decision, for_evaluations: u32) -> Rule {
        Rule {
            name: name.into(),
            when: when.into(),
            then,
            for_evaluations,
            dry_run: false,
            expr: expr::compile(when, &[SLO]).expect("test rule compiles"),
        }
    }

    fn slos() -> Vec<Slo> {
        vec![Slo {
            name: SLO.into(),
            objective: 99.9,
            period: d("30d"),
            counts: BadOrGood::Errors,
            events: Counter::Selector(r#"http_requests_total{code=~"5.."}"#.into()),
            total: Counter::Selector("http_requests_total".into()),
        }]
    }

    /// The gate of SPEC §3.
    fn gate() -> Gate {
        Gate {
            name: "checkout".into(),
            slos: vec![SLO.into()],
            interval: d("30s"),
            verify_for: d("30m"),
            watch_for: d("2h"),
            min_requests: 500,
            baseline: BaselineKind::PreviousTrain,
            on_inconclusive: HoldDecision::Pause,
            on_telemetry_error: HoldDecision::Pause,
            max_consecutive_errors: 3,
            resume_after: 4,
            alpha: 0.01,
            dry_run: false,
            min_effect: 0.05,
            evaluation_delay: std::time::Duration::ZERO,
            max_train_age: PromDuration::from_secs(7 * 24 * 3600),
            departures: Vec::new(),
            freezes: Vec::new(),
            approval: crate::config::Approval::None,
            rules: vec![
                rule(
                    "fast-burn",
                    r#"burn_rate("checkout-availability", "1h") > 14.4 && burn_rate("checkout-availability", "5m") > 14.4"#,
                    Decision::Rollback,
                    1,
                ),
                rule(
                    "slow-burn",
                    r#"burn_rate("checkout-availability", "6h") > 6 && burn_rate("checkout-availability", "30m") > 6"#,
                    Decision::Pause,
                    1,
                ),
                rule(
                    "regression",
                    r#"error_delta("checkout-availability").significant && error_delta("checkout-availability").relative > 0.5"#,
                    Decision::Rollback,
                    1,
                ),
                rule(
                    "budget-exhausted",
                    r#"budget_remaining("checkout-availability") <= 0"#,
                    Decision::Pause,
                    2,
                ),
            ],
        }
    }

    fn with_promote_rule(mut g: Gate) -> Gate {
        g.rules
            .push(rule("long-enough", "age() > 60", Decision::Promote, 1));
        g
    }

    fn counts(errors: f64, total: f64) -> Option<Counts> {
        Some(Counts { errors, total })
    }

    /// 10,000 events with the errors that burn a 99.9% budget at `burn`.
    fn burning_counts(burn: f64) -> Option<Counts> {
        counts(burn * 10.0, 10_000.0)
    }

    /// Burn rate 0.1 everywhere, 100,000 events since start like the baseline, 90% budget left.
    fn healthy() -> Signals {
        let mut s = Signals {
            age_secs: LATE,
            ..Signals::default()
        };
        for w in ["5m", "30m", "1h", "6h"] {
            s.windows.insert((SLO.into(), d(w)), burning_counts(0.1));
        }
        s.since_start.insert(SLO.into(), counts(10.0, 100_000.0));
        s.baseline.insert(SLO.into(), counts(10.0, 100_000.0));
        s.service.insert(SLO.into(), counts(100.0, 1e6));
        s
    }

    fn burning(windows: &[&str], burn: f64) -> Signals {
        let mut s = healthy();
        for w in windows {
            s.windows.insert((SLO.into(), d(w)), burning_counts(burn));
        }
        s
    }

    /// 1h and 5m at burn 20: fast-burn (rollback).
    fn fast_burn() -> Signals {
        burning(&["1h", "5m"], 20.0)
    }

    /// 6h and 30m at burn 8: slow-burn (pause).
    fn slow_burn() -> Signals {
        burning(&["6h", "30m"], 8.0)
    }

    /// Service-wide budget spent twice over: budget-exhausted (pause, `for: 2`).
    fn budget_gone() -> Signals {
        let mut s = healthy();
        s.service.insert(SLO.into(), counts(2000.0, 1e6));
        s
    }

    /// No service-wide series: budget-exhausted is unknown.
    fn budget_unknown() -> Signals {
        let mut s = healthy();
        s.service.insert(SLO.into(), None);
        s
    }

    /// 42 events since start against `min_requests: 500`.
    fn little_traffic() -> Signals {
        let mut s = healthy();
        s.since_start.insert(SLO.into(), counts(0.0, 42.0));
        s
    }

    /// What one evaluation is fed.
    #[derive(Clone)]
    enum Input {
        Ok(Signals),
        Fail(&'static str),
    }

    fn eval(g: &Gate, prev: &TrainState, age: f64, input: &Input, mode: Mode) -> Evaluation {
        let telemetry = match input {
            Input::Ok(s) => Telemetry::Ok(s),
            Input::Fail(m) => Telemetry::Failed(m),
        };
        decide(g, &slos(), age, telemetry, prev, mode)
    }

    /// Daemon evaluations in a row from a new train; every evaluation is returned.
    fn run(g: &Gate, inputs: &[(f64, Input)]) -> Vec<Evaluation> {
        let mut state = TrainState::default();
        let mut out = Vec::new();
        for (age, input) in inputs {
            let e = eval(g, &state, *age, input, Mode::Daemon);
            state = e.state.clone();
            out.push(e);
        }
        out
    }

    fn decisions(evals: &[Evaluation]) -> Vec<Decision> {
        evals.iter().map(|e| e.decision).collect()
    }

    fn ok(s: Signals) -> Input {
        Input::Ok(s)
    }

    fn late(input: Input) -> (f64, Input) {
        (LATE, input)
    }

    /// One row of the SPEC §4 table: a history of daemon evaluations, then the evaluation
    /// under test.
    struct Row {
        /// The SPEC §4 sentence this row tests.
        spec: &'static str,
        gate: Gate,
        history: Vec<(f64, Input)>,
        /// Applied to the state after the history (overrides).
        operator: fn(&mut TrainState),
        age: f64,
        input: Input,
        mode: Mode,
        want: Decision,
        /// Text the reason must contain.
        reason: &'static str,
        /// The deciding rule.
        rule: Option<&'static str>,
    }

    fn row(spec: &'static str, input: Input, want: Decision, reason: &'static str) -> Row {
        Row {
            spec,
            gate: gate(),
            history: vec![],
            operator: |_| {},
            age: LATE,
            input,
            mode: Mode::Daemon,
            want,
            reason,
            rule: None,
        }
    }

    fn spec_table() -> Vec<Row> {
        use Decision::*;
        let fail = || Input::Fail("connection refused");
        vec![
            // 1. Telemetry failed.
            Row {
                age: EARLY,
                ..row(
                    "telemetry failed: the evaluation is an error; the decision stays what it \
                     was (pending for a new train)",
                    fail(),
                    Pending,
                    "telemetry unavailable: connection refused",
                )
            },
            Row {
                history: vec![late(ok(slow_burn()))],
                ..row(
                    "telemetry failed: the decision stays what it was (a paused train stays \
                     paused)",
                    fail(),
                    Pause,
                    "telemetry unavailable: connection refused",
                )
            },
            Row {
                history: vec![late(fail()), late(fail())],
                ..row(
                    "after max_consecutive_errors in a row the decision becomes \
                     on_telemetry_error, reason `telemetry unavailable: …`",
                    fail(),
                    Pause,
                    "telemetry unavailable: connection refused (3 failures in a row)",
                )
            },
            Row {
                mode: Mode::Stateless,
                gate: Gate {
                    max_consecutive_errors: 1,
                    ..gate()
                },
                ..row(
                    "the stateless `gate eval` exits 6 instead (reports the failure, never \
                     escalates)",
                    fail(),
                    Pending,
                    "telemetry unavailable: connection refused",
                )
            },
            // 2. Rules.
            Row {
                rule: Some("fast-burn"),
                ..row(
                    "the decision is the most severe `then` among rules that fired: rollback \
                     beats pause",
                    ok(burning(&["1h", "5m", "6h", "30m"], 20.0)),
                    Rollback,
                    r#"rollback: fast-burn fired: burn_rate("checkout-availability", "1h")=20"#,
                )
            },
            Row {
                gate: with_promote_rule(gate()),
                rule: Some("slow-burn"),
                ..row(
                    "the decision is the most severe `then` among rules that fired: pause \
                     beats promote",
                    ok(slow_burn()),
                    Pause,
                    r#"pause: slow-burn fired: burn_rate("checkout-availability", "30m")=8"#,
                )
            },
            Row {
                ..row(
                    "`for` is honoured by the daemon: a `for: 2` rule true once does not take \
                     effect",
                    ok(budget_gone()),
                    Pending,
                    "budget-exhausted (pause) holds 1/2 evaluations",
                )
            },
            Row {
                history: vec![late(ok(budget_gone()))],
                rule: Some("budget-exhausted"),
                ..row(
                    "`for` is honoured by the daemon: a `for: 2` rule true twice takes effect",
                    ok(budget_gone()),
                    Pause,
                    "pause: budget-exhausted fired",
                )
            },
            Row {
                mode: Mode::Stateless,
                rule: Some("budget-exhausted"),
                ..row(
                    "`for` does not apply to the stateless `gate eval`",
                    ok(budget_gone()),
                    Pause,
                    "pause: budget-exhausted fired",
                )
            },
            // 3. Inconclusive.
            Row {
                age: EARLY,
                ..row(
                    "no rule fired, a rule was unknown: inconclusive, pending while age < \
                     verify_for",
                    ok(budget_unknown()),
                    Pending,
                    "verifying: 10m of 30m elapsed; inconclusive so far: budget-exhausted is \
                     unknown",
                )
            },
            row(
                "no rule fired, a rule was unknown: inconclusive, else on_inconclusive",
                ok(budget_unknown()),
                Pause,
                "inconclusive: budget-exhausted is unknown",
            ),
            Row {
                age: EARLY,
                ..row(
                    "no rule fired, requests(since start) < min_requests: inconclusive, pending \
                     while age < verify_for",
                    ok(little_traffic()),
                    Pending,
                    "too little traffic for checkout-availability (42 < 500 requests since \
                     start)",
                )
            },
            row(
                "no rule fired, requests(since start) < min_requests: inconclusive, else \
                 on_inconclusive",
                ok(little_traffic()),
                Pause,
                "inconclusive: too little traffic for checkout-availability (42 < 500",
            ),
            // 4. Clean.
            Row {
                age: EARLY,
                ..row(
                    "no rule fired, evidence sufficient: pending while age < verify_for",
                    ok(healthy()),
                    Pending,
                    "verifying: 10m of 30m elapsed, no rule fired",
                )
            },
            row(
                "no rule fired, evidence sufficient: else promote",
                ok(healthy()),
                Promote,
                "verified for 30m: no rule fired, 100000 requests",
            ),
            // 5. Memory and overrides.
            Row {
                history: vec![late(ok(fast_burn()))],
                rule: Some("fast-burn"),
                ..row(
                    "rollback is latched (a clean evaluation keeps it, with its reason)",
                    ok(healthy()),
                    Rollback,
                    "rollback: fast-burn fired",
                )
            },
            Row {
                history: vec![
                    late(ok(slow_burn())),
                    late(ok(healthy())),
                    late(ok(healthy())),
                    late(ok(healthy())),
                ],
                ..row(
                    "a pause caused by rules lifts after resume_after clean evaluations",
                    ok(healthy()),
                    Promote,
                    "verified for 30m: no rule fired",
                )
            },
            Row {
                operator: |s| s.pinned = Some(Decision::Promote),
                ..row(
                    "an override (promote) wins",
                    ok(fast_burn()),
                    Promote,
                    "override: promote (rules alone: rollback: fast-burn fired",
                )
            },
            Row {
                operator: |s| s.pinned = Some(Decision::Pause),
                ..row(
                    "an override (pause) wins",
                    ok(healthy()),
                    Pause,
                    "override: pause",
                )
            },
            Row {
                operator: |s| s.pinned = Some(Decision::Rollback),
                ..row(
                    "an override (rollback) wins",
                    ok(healthy()),
                    Rollback,
                    "override: rollback",
                )
            },
            Row {
                history: vec![late(ok(fast_burn()))],
                operator: resume,
                ..row(
                    "an override (resume) wins: even a latched rollback is evaluated afresh",
                    ok(healthy()),
                    Promote,
                    "verified for 30m",
                )
            },
        ]
    }

    #[test]
    fn spec_section_4_table() {
        for row in spec_table() {
            let mut state = TrainState::default();
            for (age, input) in &row.history {
                state = eval(&row.gate, &state, *age, input, Mode::Daemon).state;
            }
            (row.operator)(&mut state);
            let e = eval(&row.gate, &state, row.age, &row.input, row.mode);
            assert_eq!(e.decision, row.want, "{}: reason {:?}", row.spec, e.reason);
            assert!(
                e.reason.contains(row.reason),
                "{}: reason {:?} lacks {:?}",
                row.spec,
                e.reason,
                row.reason
            );
            if let Some(rule) = row.rule {
                assert_eq!(e.rule.as_deref(), Some(rule), "{}", row.spec);
            }
            assert!(!e.reason.contains('\n'), "{}: one line", row.spec);
        }
    }

    #[test]
    fn each_rule_is_true_false_or_unknown() {
        let mut s = budget_unknown();
        s.windows
            .insert((SLO.into(), d("5m")), burning_counts(20.0));
        s.windows
            .insert((SLO.into(), d("1h")), burning_counts(20.0));
        let e = eval(&gate(), &TrainState::default(), LATE, &ok(s), Mode::Daemon);
        let fired: Vec<Option<bool>> = e.rules.iter().map(|r| r.fired).collect();
        assert_eq!(fired, [Some(true), Some(false), Some(false), None]);
        let unknown = &e.rules[3];
        assert!(unknown.unknown_reason.is_some());
        assert_eq!(
            unknown
                .values
                .get(r#"budget_remaining("checkout-availability")"#),
            Some(&serde_json::Value::Null)
        );
        assert!(e.rules[0].in_effect);
        assert!(!e.rules[1].in_effect);
    }

    #[test]
    fn unknown_rule_does_not_stop_rollback() {
        // budget-exhausted is unknown, fast-burn fires: rollback, and the evidence is flagged.
        let mut s = budget_unknown();
        s.windows
            .insert((SLO.into(), d("5m")), burning_counts(20.0));
        s.windows
            .insert((SLO.into(), d("1h")), burning_counts(20.0));
        for mode in [Mode::Daemon, Mode::Stateless] {
            let e = eval(&gate(), &TrainState::default(), EARLY, &ok(s.clone()), mode);
            assert_eq!(e.decision, Decision::Rollback);
            assert_eq!(e.rule.as_deref(), Some("fast-burn"));
            assert!(e.inconclusive);
        }
    }

    #[test]
    fn nan_and_infinite_counts_never_promote() {
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            // Both fast-burn windows unusable: the rule is unknown.
            let mut s = healthy();
            for w in ["1h", "5m"] {
                s.windows.insert((SLO.into(), d(w)), counts(bad, bad));
            }
            let e = eval(&gate(), &TrainState::default(), LATE, &ok(s), Mode::Daemon);
            assert_eq!(e.decision, Decision::Pause, "{bad}: {}", e.reason);
            assert!(e.inconclusive);
            assert_eq!(e.rules[0].fired, None, "{bad}");
            assert!(
                e.reason.starts_with("inconclusive: fast-burn is unknown"),
                "{}",
                e.reason
            );

            // Since-start counts unusable: too little traffic, never promote.
            let mut s = healthy();
            s.since_start.insert(SLO.into(), counts(bad, bad));
            let e = eval(
                &gate(),
                &TrainState::default(),
                LATE,
                &ok(s),
                Mode::Stateless,
            );
            assert_eq!(e.decision, Decision::Pause, "{bad}: {}", e.reason);
            assert!(
                e.reason
                    .contains("too little traffic for checkout-availability (no data < 500"),
                "{}",
                e.reason
            );
        }
    }

    #[test]
    fn zero_traffic_is_inconclusive() {
        let mut s = healthy();
        for w in ["5m", "30m", "1h", "6h"] {
            s.windows.insert((SLO.into(), d(w)), counts(0.0, 0.0));
        }
        s.since_start.insert(SLO.into(), counts(0.0, 0.0));
        let e = eval(&gate(), &TrainState::default(), LATE, &ok(s), Mode::Daemon);
        assert_eq!(e.decision, Decision::Pause);
        assert!(e.inconclusive);
        assert!(
            e.reason
                .starts_with("inconclusive: too little traffic for checkout-availability (0 < 500"),
            "{}",
            e.reason
        );
        assert_eq!(e.state.pause_cause, Some(PauseCause::Inconclusive));
    }

    #[test]
    fn a_dry_run_rule_is_reported_but_never_decides() {
        let mut g = gate();
        let fast = g.rules.iter_mut().find(|r| r.name == "fast-burn").unwrap();
        fast.dry_run = true;
        let enforced = eval(
            &gate(),
            &TrainState::default(),
            LATE,
            &ok(fast_burn()),
            Mode::Daemon,
        );
        assert_eq!(enforced.decision, Decision::Rollback);
        assert_eq!(enforced.would_have, None);

        let e = eval(
            &g,
            &TrainState::default(),
            LATE,
            &ok(fast_burn()),
            Mode::Daemon,
        );
        assert_eq!(e.decision, Decision::Promote, "{}", e.reason);
        assert_eq!(e.would_have, Some(Decision::Rollback));
        assert!(!e.inconclusive);
        let outcome = e.rules.iter().find(|r| r.name == "fast-burn").unwrap();
        assert_eq!((outcome.fired, outcome.dry_run), (Some(true), true));
        assert_eq!(e.state.streaks["fast-burn"], 1, "its streak is tracked");

        // A promoted train keeps its promotion while the dry-run rule goes on firing.
        let again = eval(&g, &e.state, LATE, &ok(fast_burn()), Mode::Daemon);
        assert_eq!(again.decision, Decision::Promote);
        assert_eq!(again.would_have, Some(Decision::Rollback));

        // Nothing to say when the dry-run rule agrees.
        let calm = eval(
            &g,
            &TrainState::default(),
            LATE,
            &ok(healthy()),
            Mode::Daemon,
        );
        assert_eq!((calm.decision, calm.would_have), (Decision::Promote, None));

        // An unknown dry-run rule does not make the evidence inconclusive.
        let mut blind = healthy();
        blind.windows.remove(&(SLO.to_string(), d("5m")));
        blind.windows.remove(&(SLO.to_string(), d("1h")));
        let e = eval(&g, &TrainState::default(), LATE, &ok(blind), Mode::Daemon);
        let outcome = e.rules.iter().find(|r| r.name == "fast-burn").unwrap();
        assert_eq!(outcome.fired, None);
        assert_eq!(e.decision, Decision::Promote, "{}", e.reason);
        assert!(!e.inconclusive);
    }

    #[test]
    fn on_inconclusive_pending_keeps_waiting() {
        let g = Gate {
            on_inconclusive: HoldDecision::Pending,
            ..gate()
        };
        let e = eval(
            &g,
            &TrainState::default(),
            LATE,
            &ok(little_traffic()),
            Mode::Daemon,
        );
        assert_eq!(e.decision, Decision::Pending);
        assert!(
            e.reason.contains("on_inconclusive: pending"),
            "{}",
            e.reason
        );
        assert_eq!(e.state.pause_cause, None);
    }

    #[test]
    fn inconclusive_pause_lifts_as_soon_as_conclusive() {
        let evals = run(&gate(), &[late(ok(little_traffic())), late(ok(healthy()))]);
        assert_eq!(decisions(&evals), [Decision::Pause, Decision::Promote]);
    }

    #[test]
    fn rollback_stays_latched_with_its_original_reason() {
        let mut inputs = vec![(EARLY, ok(fast_burn()))];
        inputs.extend((0..5).map(|_| late(ok(healthy()))));
        let evals = run(&gate(), &inputs);
        assert!(decisions(&evals).iter().all(|d| *d == Decision::Rollback));
        let first = &evals[0].reason;
        assert!(first.starts_with("rollback: fast-burn fired"), "{first}");
        for e in &evals[1..] {
            assert_eq!(&e.reason, first);
            assert_eq!(e.rule.as_deref(), Some("fast-burn"));
        }
    }

    #[test]
    fn rule_pause_lifts_after_exactly_resume_after_clean_evaluations() {
        let mut inputs = vec![late(ok(slow_burn()))];
        inputs.extend((0..5).map(|_| late(ok(healthy()))));
        let evals = run(&gate(), &inputs);
        use Decision::*;
        assert_eq!(
            decisions(&evals),
            [Pause, Pause, Pause, Pause, Promote, Promote]
        );
        assert!(
            evals[2]
                .reason
                .starts_with("paused by slow-burn; 2/4 clean evaluations to resume"),
            "{}",
            evals[2].reason
        );
        assert_eq!(evals[3].state.clean_streak, 3);
        assert_eq!(evals[4].state.pause_cause, None);
    }

    #[test]
    fn unclean_evaluation_restarts_the_resume_count() {
        let inputs = [
            late(ok(slow_burn())),
            late(ok(healthy())),
            late(ok(healthy())),
            // Inconclusive: not clean.
            late(ok(little_traffic())),
            late(ok(healthy())),
        ];
        let evals = run(&gate(), &inputs);
        assert!(decisions(&evals).iter().all(|d| *d == Decision::Pause));
        assert!(evals[3].reason.contains("0/4 clean"), "{}", evals[3].reason);
        assert!(
            evals[3].reason.contains("inconclusive"),
            "{}",
            evals[3].reason
        );
        assert!(evals[4].reason.contains("1/4 clean"), "{}", evals[4].reason);
    }

    #[test]
    fn stateless_rule_pause_does_not_wait_for_resume_after() {
        let prev = run(&gate(), &[late(ok(slow_burn()))])[0].state.clone();
        let e = eval(&gate(), &prev, LATE, &ok(healthy()), Mode::Stateless);
        assert_eq!(e.decision, Decision::Promote);
    }

    #[test]
    fn for_two_needs_two_consecutive_trues() {
        use Decision::*;
        // Inside verify_for, so a clean evaluation stays pending instead of promoting.
        let early = |s: Signals| (EARLY, ok(s));
        let evals = run(
            &gate(),
            &[
                early(budget_gone()),
                early(healthy()),
                early(budget_gone()),
                early(budget_gone()),
            ],
        );
        assert_eq!(decisions(&evals), [Pending, Pending, Pending, Pause]);
        let streaks: Vec<u32> = evals.iter().map(|e| e.rules[3].streak).collect();
        assert_eq!(streaks, [1, 0, 1, 2]);
        let in_effect: Vec<bool> = evals.iter().map(|e| e.rules[3].in_effect).collect();
        assert_eq!(in_effect, [false, false, false, true]);
        assert!(
            evals[0]
                .reason
                .starts_with("verifying: 10m of 30m elapsed; budget-exhausted (pause) holds 1/2"),
            "{}",
            evals[0].reason
        );
        assert_eq!(evals[3].rule.as_deref(), Some("budget-exhausted"));
    }

    #[test]
    fn unknown_resets_a_streak() {
        let evals = run(
            &gate(),
            &[
                late(ok(budget_gone())),
                late(ok(budget_unknown())),
                late(ok(budget_gone())),
            ],
        );
        let streaks: Vec<u32> = evals.iter().map(|e| e.rules[3].streak).collect();
        assert_eq!(streaks, [1, 0, 1]);
        assert_ne!(evals[2].decision, Decision::Pause);
    }

    #[test]
    fn telemetry_errors_below_and_at_the_limit() {
        let fail = || late(Input::Fail("timeout after 10s"));
        let evals = run(
            &gate(),
            &[fail(), fail(), fail(), fail(), late(ok(healthy()))],
        );
        use Decision::*;
        assert_eq!(decisions(&evals), [Pending, Pending, Pause, Pause, Promote]);
        let errors: Vec<u32> = evals.iter().map(|e| e.state.consecutive_errors).collect();
        assert_eq!(errors, [1, 2, 3, 4, 0]);
        assert!(
            evals[0]
                .reason
                .starts_with("telemetry unavailable: timeout after 10s (failure 1 of 3"),
            "{}",
            evals[0].reason
        );
        assert_eq!(evals[2].state.pause_cause, Some(PauseCause::Telemetry));
        assert!(evals
            .iter()
            .take(4)
            .all(|e| e.telemetry_error.as_deref() == Some("timeout after 10s")));
        assert_eq!(evals[4].telemetry_error, None);
    }

    #[test]
    fn success_resets_the_telemetry_error_count() {
        let fail = || late(Input::Fail("503"));
        let evals = run(
            &gate(),
            &[fail(), fail(), (EARLY, ok(healthy())), fail(), fail()],
        );
        assert!(decisions(&evals).iter().all(|d| *d == Decision::Pending));
        assert_eq!(evals[4].state.consecutive_errors, 2);
    }

    #[test]
    fn on_telemetry_error_pending_stays_pending() {
        let g = Gate {
            on_telemetry_error: HoldDecision::Pending,
            ..gate()
        };
        let fail = || late(Input::Fail("503"));
        let evals = run(&g, &[fail(), fail(), fail()]);
        assert!(decisions(&evals).iter().all(|d| *d == Decision::Pending));
        assert!(
            evals[2].reason.contains("on_telemetry_error: pending"),
            "{}",
            evals[2].reason
        );
    }

    #[test]
    fn a_telemetry_failure_restarts_the_resume_count() {
        let fail = || late(Input::Fail("503"));
        let inputs = [
            late(ok(slow_burn())),
            late(ok(healthy())),
            late(ok(healthy())),
            late(ok(healthy())),
            fail(),
            late(ok(healthy())),
            late(ok(healthy())),
            late(ok(healthy())),
            late(ok(healthy())),
        ];
        let evals = run(&gate(), &inputs);
        use Decision::*;
        assert_eq!(
            decisions(&evals),
            [Pause, Pause, Pause, Pause, Pause, Pause, Pause, Pause, Promote]
        );
        assert_eq!(evals[3].state.clean_streak, 3);
        assert_eq!(evals[4].state.clean_streak, 0);
        assert!(evals[5].reason.contains("1/4 clean"), "{}", evals[5].reason);
    }

    #[test]
    fn telemetry_failures_keep_rule_streaks() {
        let evals = run(
            &gate(),
            &[
                late(ok(budget_gone())),
                late(Input::Fail("503")),
                late(ok(budget_gone())),
            ],
        );
        assert_eq!(evals[1].rules[3].streak, 1);
        assert_eq!(evals[1].rules[3].fired, None);
        assert_eq!(evals[2].decision, Decision::Pause);
    }

    #[test]
    fn telemetry_failure_keeps_latched_rollback_and_watched_promote() {
        let fail = || late(Input::Fail("503"));
        let evals = run(&gate(), &[late(ok(fast_burn())), fail(), fail(), fail()]);
        assert!(decisions(&evals).iter().all(|d| *d == Decision::Rollback));
        assert!(
            evals[3].reason.starts_with("rollback: fast-burn fired"),
            "{}",
            evals[3].reason
        );
        assert_eq!(evals[3].state.decided_reason, evals[0].state.decided_reason);

        let evals = run(&gate(), &[late(ok(healthy())), fail(), fail(), fail()]);
        assert!(decisions(&evals).iter().all(|d| *d == Decision::Promote));
        assert!(
            evals[3]
                .reason
                .starts_with("promoted, watching; telemetry unavailable"),
            "{}",
            evals[3].reason
        );
    }

    #[test]
    fn promoted_train_is_watched_until_a_rollback_rule_fires() {
        use Decision::*;
        let evals = run(
            &gate(),
            &[
                late(ok(healthy())),
                late(ok(slow_burn())),
                late(ok(little_traffic())),
                late(ok(fast_burn())),
                late(ok(healthy())),
            ],
        );
        assert_eq!(
            decisions(&evals),
            [Promote, Promote, Promote, Rollback, Rollback]
        );
        assert!(
            evals[1]
                .reason
                .starts_with("promoted, watching: slow-burn fired"),
            "{}",
            evals[1].reason
        );
        assert!(
            evals[2].reason.contains("inconclusive now"),
            "{}",
            evals[2].reason
        );
        assert_eq!(evals[3].rule.as_deref(), Some("fast-burn"));
    }

    /// Look `k` of a train at 30 errors per 10,000 events against a baseline at 1 per 10,000.
    fn regressing(k: f64) -> Signals {
        let mut s = healthy();
        s.since_start
            .insert(SLO.into(), counts(30.0 * k, 10_000.0 * k));
        s.baseline.insert(SLO.into(), counts(k, 10_000.0 * k));
        s
    }

    #[test]
    fn regression_rule_rolls_back_once_the_evidence_accumulates() {
        use Decision::*;
        // 30× the baseline's error rate: every look adds the capped 1.5 nats to the e-value
        // of the large alternatives, so ln E = 4.5 − (a little) < ln 100 after three looks
        // and about 6 after four: significant at the fourth look, not before.
        let inputs: Vec<(f64, Input)> = (1..=5)
            .map(|k| (EARLY, ok(regressing(f64::from(k)))))
            .collect();
        let evals = run(&gate(), &inputs);
        assert_eq!(
            decisions(&evals),
            [Pending, Pending, Pending, Rollback, Rollback]
        );
        assert_eq!(evals[3].rule.as_deref(), Some("regression"));
        let verdict = evals[3].verdicts[SLO];
        assert_eq!(verdict.looks, 4);
        assert!(
            verdict.significant && verdict.ratio_lower >= 1.05,
            "{verdict:?}"
        );
        assert!(!evals[2].verdicts[SLO].significant);
        let bound = format!(
            r#"error_delta("checkout-availability"): error rate ≥ {}× baseline (99 %, anytime-valid)"#,
            fmt_num(verdict.ratio_lower)
        );
        assert!(evals[3].reason.contains(&bound), "{}", evals[3].reason);
        // One evaluation alone, however strong, is never significant.
        let one = eval(
            &gate(),
            &TrainState::default(),
            EARLY,
            &ok(regressing(4.0)),
            Mode::Stateless,
        );
        assert_eq!(one.decision, Decision::Pending);
    }

    #[test]
    fn failed_telemetry_takes_no_look_and_the_test_survives_a_restart() {
        let g = gate();
        let mut state = TrainState::default();
        for k in 1..=2 {
            state = eval(
                &g,
                &state,
                EARLY,
                &ok(regressing(f64::from(k))),
                Mode::Daemon,
            )
            .state;
        }
        let failed = eval(&g, &state, EARLY, &Input::Fail("timeout"), Mode::Daemon);
        assert_eq!(failed.state.sequential, state.sequential);
        assert!(failed.verdicts.is_empty());
        // Stored and loaded (as the daemon does across a restart), the test goes on.
        let json = serde_json::to_string(&failed.state).unwrap();
        let restored: TrainState = serde_json::from_str(&json).unwrap();
        assert_eq!(restored.sequential, state.sequential);
        let next = eval(&g, &restored, EARLY, &ok(regressing(3.0)), Mode::Daemon);
        assert_eq!(next.verdicts[SLO].looks, 3);
        // Invalid counts: no look, and error_delta is no data (the rule is unknown).
        let mut bad = regressing(4.0);
        bad.since_start
            .insert(SLO.into(), counts(f64::NAN, 40_000.0));
        let e = eval(&g, &next.state, EARLY, &ok(bad), Mode::Daemon);
        assert_eq!(e.state.sequential, next.state.sequential);
        let regression = e.rules.iter().find(|r| r.name == "regression").unwrap();
        assert_eq!(regression.fired, None, "{regression:?}");
    }

    #[test]
    fn promote_rule_never_promotes_early_or_blind() {
        let g = with_promote_rule(gate());
        let e = eval(
            &g,
            &TrainState::default(),
            EARLY,
            &ok(healthy()),
            Mode::Stateless,
        );
        assert_eq!(e.decision, Decision::Pending);
        assert!(e.reason.contains("long-enough fired"), "{}", e.reason);
        assert!(
            e.reason.contains("promoting no earlier than 30m"),
            "{}",
            e.reason
        );

        let e = eval(
            &g,
            &TrainState::default(),
            LATE,
            &ok(little_traffic()),
            Mode::Stateless,
        );
        assert_eq!(e.decision, Decision::Pause, "{}", e.reason);

        let e = eval(
            &g,
            &TrainState::default(),
            LATE,
            &ok(healthy()),
            Mode::Stateless,
        );
        assert_eq!(e.decision, Decision::Promote);
        assert_eq!(e.rule.as_deref(), Some("long-enough"));
        assert!(
            e.reason
                .starts_with("verified for 30m: long-enough fired: age()=2400"),
            "{}",
            e.reason
        );
    }

    #[test]
    fn override_pins_while_rules_are_still_tracked() {
        let mut state = TrainState {
            pinned: Some(Decision::Pause),
            ..TrainState::default()
        };
        for _ in 0..2 {
            let e = eval(&gate(), &state, LATE, &ok(budget_gone()), Mode::Daemon);
            assert_eq!(e.decision, Decision::Pause);
            assert!(e.reason.starts_with("override: pause"), "{}", e.reason);
            assert_eq!(e.rule, None);
            state = e.state;
        }
        assert_eq!(state.streaks.get("budget-exhausted"), Some(&2));

        resume(&mut state);
        assert_eq!(state.pinned, None);
        assert!(state.streaks.is_empty());
        assert_eq!(state.decision, Some(Decision::Pending));
        let e = eval(&gate(), &state, LATE, &ok(healthy()), Mode::Daemon);
        assert_eq!(e.decision, Decision::Promote);
    }

    /// The state right after `gate override --decision promote` by carol.
    fn pinned_promote(reason: &str) -> TrainState {
        TrainState {
            pinned: Some(Decision::Promote),
            decision: Some(Decision::Promote),
            decided_reason: Some(format!("override promote by carol: {reason}")),
            ..TrainState::default()
        }
    }

    #[test]
    fn a_rollback_condition_that_newly_holds_breaks_a_promote_override() {
        use Decision::*;
        let g = gate();
        let mut state = pinned_promote("known noisy canary");
        let mut decided = Vec::new();
        let mut reasons = Vec::new();
        // The rollback the operator overrode keeps holding: the pin stands.
        for input in [fast_burn(), fast_burn(), healthy(), fast_burn(), healthy()] {
            let e = eval(&g, &state, LATE, &ok(input), Mode::Daemon);
            decided.push(e.decision);
            reasons.push(e.reason.clone());
            state = e.state;
        }
        assert_eq!(decided, [Promote, Promote, Promote, Rollback, Rollback]);
        assert!(
            reasons[1].starts_with("override: promote"),
            "{}",
            reasons[1]
        );
        assert!(
            reasons[3].starts_with("rollback: fast-burn fired")
                && reasons[3].contains("override promote by carol: known noisy canary"),
            "{}",
            reasons[3]
        );
        assert_eq!(
            reasons[4], reasons[3],
            "latched with the reason that broke the pin"
        );
        assert_eq!(state.pinned, None);
        assert_eq!(state.decided_rule.as_deref(), Some("fast-burn"));
    }

    #[test]
    fn a_new_promote_override_starts_a_new_watch() {
        let g = gate();
        let healthy_then = eval(
            &g,
            &pinned_promote("first call"),
            LATE,
            &ok(healthy()),
            Mode::Daemon,
        );
        let seen = healthy_then.state.pin_watch.as_ref().unwrap();
        assert!(seen.seen_false.contains("fast-burn"), "{seen:?}");
        let mut state = healthy_then.state;
        state.decided_reason = Some("override promote by carol: second call".into());
        let e = eval(&g, &state, LATE, &ok(fast_burn()), Mode::Daemon);
        assert_eq!(e.decision, Decision::Promote, "{}", e.reason);
        // An unknown condition is not a false one.
        let mut unknown = fast_burn();
        unknown.windows.insert((SLO.into(), d("5m")), None);
        let mut state = pinned_promote("third call");
        for input in [unknown, fast_burn()] {
            let e = eval(&g, &state, LATE, &ok(input), Mode::Daemon);
            assert_eq!(e.decision, Decision::Promote, "{}", e.reason);
            state = e.state;
        }
        // A dry-run rollback rule that newly holds only reports what would have happened.
        let mut dry = gate();
        dry.rules[0].dry_run = true;
        let mut state = pinned_promote("fourth call");
        let mut last = None;
        for input in [healthy(), fast_burn()] {
            let e = eval(&dry, &state, LATE, &ok(input), Mode::Daemon);
            state = e.state.clone();
            last = Some(e);
        }
        let last = last.unwrap();
        assert_eq!(last.decision, Decision::Promote, "{}", last.reason);
        assert_eq!(last.would_have, Some(Decision::Rollback));
        assert_eq!(state.pinned, Some(Decision::Promote));
    }

    #[test]
    fn resume_lifts_a_rule_pause_at_once() {
        let mut state = run(&gate(), &[late(ok(slow_burn()))])[0].state.clone();
        assert_eq!(state.pause_cause, Some(PauseCause::Rule));
        resume(&mut state);
        assert_eq!(state.pause_cause, None);
        assert_eq!(state.clean_streak, 0);
        let e = eval(&gate(), &state, LATE, &ok(healthy()), Mode::Daemon);
        assert_eq!(e.decision, Decision::Promote);
    }

    #[test]
    fn age_that_is_not_a_number_never_promotes() {
        let e = eval(
            &gate(),
            &TrainState::default(),
            f64::NAN,
            &ok(healthy()),
            Mode::Stateless,
        );
        assert_eq!(e.decision, Decision::Pending);
    }

    #[test]
    fn state_without_new_fields_still_deserializes() {
        let old = r#"{"decision":"pause","consecutive_errors":0,"streaks":{},"clean_streak":1,"pause_cause":"rule","pinned":null}"#;
        let state: TrainState = serde_json::from_str(old).unwrap();
        assert_eq!(state.decision, Some(Decision::Pause));
        assert_eq!(state.decided_reason, None);
    }

    #[test]
    fn numbers_and_durations_read_well() {
        assert_eq!(fmt_num(20.1), "20.1");
        assert_eq!(fmt_num(19.8), "19.8");
        assert_eq!(fmt_num(14.4), "14.4");
        assert_eq!(fmt_num(0.00073), "0.00073");
        assert_eq!(fmt_num(12034.0), "12034");
        assert_eq!(fmt_num(1.0 / 3.0), "0.3333");
        assert_eq!(fmt_num(-0.5), "-0.5");
        assert_eq!(fmt_num(0.0), "0");
        assert_eq!(fmt_num(1.5e-9), "1.500e-9");
        assert_eq!(fmt_num(f64::INFINITY), "+Inf");
        assert_eq!(fmt_secs(45.0), "45s");
        assert_eq!(fmt_secs(600.0), "10m");
        assert_eq!(fmt_secs(750.0), "12m30s");
        assert_eq!(fmt_secs(3_900.0), "1h5m");
        assert_eq!(fmt_secs(3_605.0), "1h");
        assert_eq!(fmt_secs(0.0), "0s");
        assert_eq!(fmt_secs(-3.0), "0s");
    }

    // Holds: approval, freezes, departure windows (hold.rs).

    fn at(s: &str) -> chrono::DateTime<chrono::Utc> {
        s.parse().unwrap()
    }

    fn frozen_gate() -> Gate {
        let mut g = gate();
        g.freezes = vec![crate::config::Freeze {
            from: at("2026-12-20T00:00:00Z"),
            to: at("2027-01-04T00:00:00Z"),
            reason: "year-end freeze".into(),
        }];
        g
    }

    fn held(g: &Gate, prev: &TrainState, age: f64, input: &Input, when: &str) -> Evaluation {
        let departed = prev.decision == Some(Decision::Promote);
        hold(
            g,
            prev,
            departed,
            at(when),
            eval(g, prev, age, input, Mode::Daemon),
        )
    }

    #[test]
    fn an_approval_gate_holds_a_verified_train_until_it_is_approved() {
        let mut g = gate();
        g.approval = crate::config::Approval::Required;
        let when = "2026-12-01T10:00:00Z";
        let first = held(&g, &TrainState::default(), LATE, &ok(healthy()), when);
        assert_eq!(first.decision, Decision::Pending);
        assert_eq!(first.reason, AWAITING_APPROVAL);
        assert_eq!(first.rule, None);
        assert_eq!(first.state.decision, Some(Decision::Pending));
        // The evidence still shows a verified train.
        assert!(!first.inconclusive);
        let again = held(&g, &first.state, LATE, &ok(healthy()), when);
        assert_eq!(again.reason, AWAITING_APPROVAL);

        let mut approved = again.state.clone();
        approved.approved_by = Some("alice: notes reviewed".into());
        let next = held(&g, &approved, LATE, &ok(healthy()), when);
        assert_eq!(next.decision, Decision::Promote, "{}", next.reason);
        assert_eq!(next.state.decision, Some(Decision::Promote));
    }

    #[test]
    fn an_early_approval_waits_for_verification() {
        let mut g = gate();
        g.approval = crate::config::Approval::Required;
        let state = TrainState {
            approved_by: Some("alice: go".into()),
            ..TrainState::default()
        };
        let early = held(&g, &state, EARLY, &ok(healthy()), "2026-12-01T10:00:00Z");
        assert_eq!(early.decision, Decision::Pending);
        assert_ne!(early.reason, AWAITING_APPROVAL);
        assert!(early.reason.contains("of 30m elapsed"), "{}", early.reason);
        let late = held(
            &g,
            &early.state,
            LATE,
            &ok(healthy()),
            "2026-12-01T10:00:00Z",
        );
        assert_eq!(late.decision, Decision::Promote);
    }

    #[test]
    fn a_freeze_holds_a_promotion_but_never_a_rollback_or_a_pause() {
        let g = frozen_gate();
        let inside = "2026-12-24T12:00:00Z";
        let promote = held(&g, &TrainState::default(), LATE, &ok(healthy()), inside);
        assert_eq!(promote.decision, Decision::Pending);
        assert_eq!(
            promote.reason,
            "frozen: year-end freeze until 2027-01-04T00:00:00Z"
        );
        let rollback = held(&g, &promote.state, LATE, &ok(fast_burn()), inside);
        assert_eq!(rollback.decision, Decision::Rollback);
        let pause = held(&g, &TrainState::default(), LATE, &ok(slow_burn()), inside);
        assert_eq!(pause.decision, Decision::Pause);
        // After the freeze the same evidence promotes.
        let after = held(
            &g,
            &promote.state,
            LATE,
            &ok(healthy()),
            "2027-01-04T00:00:00Z",
        );
        assert_eq!(after.decision, Decision::Promote);
    }

    #[test]
    fn a_promote_override_and_a_promoted_train_are_not_held() {
        let g = frozen_gate();
        let inside = "2026-12-24T12:00:00Z";
        let pinned = TrainState {
            pinned: Some(Decision::Promote),
            decision: Some(Decision::Promote),
            decided_reason: Some("override promote by alice: hotfix".into()),
            ..TrainState::default()
        };
        let e = held(&g, &pinned, LATE, &ok(healthy()), inside);
        assert_eq!(e.decision, Decision::Promote);
        let promoted = TrainState {
            decision: Some(Decision::Promote),
            ..TrainState::default()
        };
        let e = held(&g, &promoted, LATE, &ok(healthy()), inside);
        assert_eq!(e.decision, Decision::Promote, "{}", e.reason);
    }

    #[test]
    fn a_gates_early_promotion_is_held_again_while_its_train_has_not_departed() {
        // One gate of several promoted its part before the freeze; the train has not
        // departed (another gate was still verifying), so inside the freeze the part is held.
        let g = frozen_gate();
        let promoted = TrainState {
            decision: Some(Decision::Promote),
            ..TrainState::default()
        };
        let inside = at("2026-12-24T12:00:00Z");
        let e = hold(
            &g,
            &promoted,
            false,
            inside,
            eval(&g, &promoted, LATE, &ok(healthy()), Mode::Daemon),
        );
        assert_eq!(e.decision, Decision::Pending);
        assert_eq!(
            e.reason,
            "frozen: year-end freeze until 2027-01-04T00:00:00Z"
        );
        assert_eq!(e.state.decision, Some(Decision::Pending));
        assert_eq!(e.state.decided_reason.as_deref(), Some(e.reason.as_str()));
        // Once the train departed, the same part is watched, not held.
        let e = hold(
            &g,
            &promoted,
            true,
            inside,
            eval(&g, &promoted, LATE, &ok(healthy()), Mode::Daemon),
        );
        assert_eq!(e.decision, Decision::Promote);
    }
}
