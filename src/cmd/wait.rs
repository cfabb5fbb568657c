//! `gate wait ID`: block a pipeline until the train's decision is final.
//!
//! It long-polls `GET /v1/trains/{id}/decision?wait=30s&after_seq=N` and exits with the
//! verdict: 0 promote, 3 rollback, 4 pause with `--fail-on-pause` (without it a pause is
//! waited out: it lifts on its own or by override), 5 when `--timeout` passes first, 6 when
//! the server was unreachable when the timeout passed. A daemon restart or a network blip is
//! ridden out: while the server cannot be reached, polls are retried with capped
//! exponential backoff, and the seq (stored by the daemon) lets the wait pick up where it was.
//!
//! Output: on a terminal, one live line (train, decision, verification progress, worst burn
//! rate against its threshold) and the verdict with its reason at the end. When piped, or with
//! `--format json`, JSON lines on stdout, one per change, then a result line:
//!
//! ```text
//! {"type":"decision","train":"t-1","decision":"pending","reason":"…","seq":0,"evaluated_at":null}
//! {"type":"unreachable","train":"t-1","error":"gate server … unreachable: …","retry_in_secs":0.25}
//! {"type":"decision","train":"t-1","decision":"promote","reason":"…","seq":1,"evaluated_at":"2026-11-01T12:30:00Z"}
//! {"type":"result","train":"t-1","exit_code":0,"outcome":"promote","decision":"promote","reason":"…","seq":1}
//! ```
//!
//! The waiting logic ([`wait_for_decision`]) is separate from HTTP and printing: it takes a
//! [`Source`] of decisions and reports [`Update`]s to a callback, and every deadline and
//! backoff sleep is a `tokio::time` one, so its tests run on paused time.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use gate_engine::backoff::Backoff;
use gate_rules::Decision;
use serde::Serialize;
use tokio::time::Instant;

use super::{status, train_id, Format};
use crate::client::{Client, ClientError, DecisionBody, ServerArgs, Train};
use crate::{exit, render};
use gate_api::Lifecycle;

/// How long one long poll asks the server to hold the request (JSON mode).
const POLL_WAIT: Duration = Duration::from_secs(30);
/// The same on a terminal: shorter, so the live line's numbers stay fresh.
const POLL_WAIT_LIVE: Duration = Duration::from_secs(10);
/// The least time between two polls that bring no change, in case a server answers a long
/// poll at once.
const MIN_POLL_GAP: Duration = Duration::from_secs(1);
/// First retry delay while the server is unreachable.
const BACKOFF_INITIAL: Duration = Duration::from_millis(250);
/// Longest retry delay while the server is unreachable.
const BACKOFF_CAP: Duration = Duration::from_secs(5);

/// Arguments of `gate wait`.
#[derive(clap::Args, Debug)]
#[command(after_help = crate::exit::HELP)]
pub struct Args {
    /// The train ID.
    pub id: String,
    /// Give up after this long (e.g. 45m, 1h30m, 90 = seconds): exit 5, or 6 if the server is
    /// unreachable.
    #[arg(long, default_value = "45m", value_parser = parse_timeout)]
    pub timeout: Duration,
    /// Treat pause as final: exit 4 instead of waiting for it to lift.
    #[arg(long)]
    pub fail_on_pause: bool,
    /// Output format. Default: a live line on a terminal, JSON lines when piped.
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    #[command(flatten)]
    pub server: ServerArgs,
}

/// `--timeout`: one of gate's durations ([`gate_rules::duration::parse_duration`]).
pub(crate) fn parse_timeout(s: &str) -> Result<Duration, String> {
    gate_rules::duration::parse_duration(s).map_err(|e| e.to_string())
}

/// One successful poll: the decision, and the train's details when they could be fetched.
#[derive(Debug, Clone)]
pub struct Polled {
    /// The decision.
    pub view: DecisionBody,
    /// The train with its latest evaluation.
    pub train: Option<Train>,
}

/// Where decisions come from: the server, or a script in tests.
pub trait Source {
    /// The decision; with `after_seq`, the first one after that seq, waiting up to `wait`.
    fn poll(
        &mut self,
        after_seq: Option<u64>,
        wait: Duration,
    ) -> impl Future<Output = Result<Polled, ClientError>>;
}

/// The gate server as a [`Source`].
pub struct ServerSource<'a> {
    client: &'a Client,
    id: String,
    details: bool,
}

impl Source for ServerSource<'_> {
    async fn poll(
        &mut self,
        after_seq: Option<u64>,
        wait: Duration,
    ) -> Result<Polled, ClientError> {
        let view = self.client.decision(&self.id, after_seq, wait).await?.value;
        // Details only feed the live line: a failure to fetch them is not one of the poll.
        let train = if self.details {
            self.client.train(&self.id).await.ok().map(|a| a.value)
        } else {
            None
        };
        Ok(Polled { view, train })
    }
}

/// Knobs of [`wait_for_decision`].
#[derive(Debug, Clone, Copy)]
pub struct WaitOptions {
    /// Give up after this long.
    pub timeout: Duration,
    /// Pause is final.
    pub fail_on_pause: bool,
    /// Long-poll wait per request.
    pub poll_wait: Duration,
}

/// What the wait reports while it runs.
#[derive(Debug)]
pub enum Update<'a> {
    /// The first decision, or a new one (its seq changed).
    Decision(&'a Polled),
    /// The same decision with fresher details.
    Refreshed(&'a Polled),
    /// A poll failed transiently; the next is in `retry_in`. `first` marks the start of an
    /// outage.
    Unreachable {
        /// The failure.
        error: &'a ClientError,
        /// Delay before the next attempt.
        retry_in: Duration,
        /// Whether the previous poll succeeded (or there was none).
        first: bool,
    },
}

/// How the wait ended.
#[derive(Debug)]
pub enum Outcome {
    /// A final decision: promote, rollback, or pause with `fail_on_pause`.
    Final(DecisionBody),
    /// The timeout passed; `failing` holds the error of the last poll if it failed.
    TimedOut {
        /// The last decision seen.
        last: Option<DecisionBody>,
        /// The last poll's failure, if it failed (the server unreachable).
        failing: Option<String>,
    },
    /// The train was stopped before a final decision.
    Stopped(DecisionBody),
    /// The server refused the request (unknown train, bad token): no point retrying.
    Refused(ClientError),
}

impl Outcome {
    /// The exit code (SPEC §5).
    pub fn exit_code(&self) -> i32 {
        match self {
            Outcome::Final(v) => exit::for_decision(v.decision),
            Outcome::TimedOut {
                failing: Some(_), ..
            } => exit::UNREACHABLE,
            Outcome::TimedOut { failing: None, .. } | Outcome::Stopped(_) => exit::PENDING,
            Outcome::Refused(e) => match e {
                ClientError::Api { status, .. } if status.is_client_error() => exit::USAGE,
                _ => exit::INTERNAL,
            },
        }
    }

    /// A short name for the JSON result line.
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Final(v) => v.decision.as_str(),
            Outcome::TimedOut {
                failing: Some(_), ..
            } => "unreachable",
            Outcome::TimedOut { failing: None, .. } => "timeout",
            Outcome::Stopped(_) => "stopped",
            Outcome::Refused(_) => "error",
        }
    }

    fn last(&self) -> Option<&DecisionBody> {
        match self {
            Outcome::Final(v) | Outcome::Stopped(v) => Some(v),
            Outcome::TimedOut { last, .. } => last.as_ref(),
            Outcome::Refused(_) => None,
        }
    }
}

/// Retries while the server is unreachable: the engine's capped exponential backoff, 250 ms,
/// 500 ms, 1 s, … up to 5 s, counted from the last success.
#[derive(Debug, Clone, Default)]
pub struct Reconnect {
    failures: u32,
}

impl Reconnect {
    const POLICY: Backoff = Backoff {
        initial: BACKOFF_INITIAL,
        max: BACKOFF_CAP,
    };

    /// The delay before the next attempt; doubles up to the cap.
    pub fn next_delay(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        Self::POLICY.ceiling(self.failures)
    }

    /// Back to the first delay, after a success.
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

/// Whether `d` ends the wait.
fn is_final(d: Decision, fail_on_pause: bool) -> bool {
    match d {
        Decision::Promote | Decision::Rollback => true,
        Decision::Pause => fail_on_pause,
        Decision::Pending => false,
    }
}

/// Polls `source` until the decision is final, the train is stopped, the server refuses,
/// or `opts.timeout` passes; reports every change to `on_update`.
pub async fn wait_for_decision<S: Source>(
    source: &mut S,
    opts: WaitOptions,
    mut on_update: impl FnMut(Update<'_>),
) -> Outcome {
    let deadline = Instant::now() + opts.timeout;
    let mut last: Option<DecisionBody> = None;
    let mut failing: Option<String> = None;
    let mut backoff = Reconnect::default();
    let timed_out =
        |last: Option<DecisionBody>, failing: Option<String>| Outcome::TimedOut { last, failing };
    loop {
        let started = Instant::now();
        if started >= deadline {
            return timed_out(last, failing);
        }
        let wait = opts.poll_wait.min(deadline - started);
        let after_seq = last.as_ref().map(|v| v.seq);
        let result = match tokio::time::timeout_at(deadline, source.poll(after_seq, wait)).await {
            Ok(result) => result,
            Err(_) => return timed_out(last, failing),
        };
        match result {
            Ok(polled) => {
                backoff.reset();
                failing = None;
                let changed = last
                    .as_ref()
                    .is_none_or(|l| l.seq != polled.view.seq || l.decision != polled.view.decision);
                on_update(if changed {
                    Update::Decision(&polled)
                } else {
                    Update::Refreshed(&polled)
                });
                last = Some(polled.view.clone());
                if is_final(polled.view.decision, opts.fail_on_pause) {
                    return Outcome::Final(polled.view);
                }
                let stopped = polled.view.state == Lifecycle::Stopped
                    || polled
                        .train
                        .as_ref()
                        .is_some_and(|t| t.lifecycle == Lifecycle::Stopped);
                if stopped {
                    return Outcome::Stopped(polled.view);
                }
                if !changed {
                    // A server that answers long polls at once must not make us spin.
                    tokio::time::sleep_until((started + MIN_POLL_GAP).min(deadline)).await;
                }
            }
            Err(error) if error.is_transient() => {
                let retry_in = backoff.next_delay();
                on_update(Update::Unreachable {
                    error: &error,
                    retry_in,
                    first: failing.is_none(),
                });
                failing = Some(error.to_string());
                tokio::time::sleep_until((Instant::now() + retry_in).min(deadline)).await;
            }
            Err(error) => return Outcome::Refused(error),
        }
    }
}

/// A JSON line of `gate wait`.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Line<'a> {
    Decision {
        train: &'a str,
        decision: Decision,
        reason: &'a str,
        seq: u64,
        #[serde(with = "opt_time")]
        evaluated_at: Option<chrono::DateTime<Utc>>,
    },
    Unreachable {
        train: &'a str,
        error: String,
        retry_in_secs: f64,
    },
    Result {
        train: &'a str,
        exit_code: i32,
        outcome: &'a str,
        decision: Option<Decision>,
        reason: String,
        seq: Option<u64>,
    },
}

mod opt_time {
    use chrono::{DateTime, Utc};
    use serde::Serializer;

    pub fn serialize<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&gate_engine::report::format_time(*t)),
            None => s.serialize_none(),
        }
    }
}

/// Writes a JSON line to stdout, best effort: the exit code is the verdict, and a reader that
/// went away (`gate wait ID | head -1`) must not turn a rollback into a clean exit, so write
/// failures are ignored rather than ending the wait.
fn json_line(line: &Line<'_>) {
    if let Ok(mut text) = serde_json::to_string(line) {
        text.push('\n');
        let _ = render::write_stdout(&text);
    }
}

/// What the live line shows, refreshed by the updates and re-rendered every second.
#[derive(Debug, Default)]
struct Live {
    view: Option<DecisionBody>,
    train: Option<Train>,
    trouble: Option<String>,
}

impl Live {
    fn line(&self, id: &str) -> String {
        let Some(view) = &self.view else {
            return match &self.trouble {
                Some(t) => format!("{id}: {t}"),
                None => format!("{id}: asking the gate server…"),
            };
        };
        let mut parts = vec![format!("{id} {}", view.decision.as_str().to_uppercase())];
        if let Some(train) = &self.train {
            if let Some(e) = train.evaluation() {
                let age = (Utc::now() - train.started_at).num_seconds();
                let verify = e.verify_for_secs as i64;
                parts.push(if age < verify {
                    format!(
                        "verify {}/{}",
                        render::short_duration(age),
                        render::short_duration(verify)
                    )
                } else {
                    format!("verified {}", render::short_duration(verify))
                });
                if let Some(w) = train.worst_burn.clone().flatten() {
                    parts.push(format!("worst burn {}", status::burn_text(&w)));
                }
            } else {
                parts.push("not evaluated yet".to_string());
            }
        }
        match &self.trouble {
            Some(t) => parts.push(t.clone()),
            None => parts.push(view.reason.clone()),
        }
        parts.join(" · ")
    }
}

/// Runs `gate wait`.
pub async fn run(args: Args) -> anyhow::Result<i32> {
    let id = train_id(&args.id)?;
    let id = id.as_str().to_string();
    let client = args.server.client()?;
    let format = Format::resolve(args.format);
    let opts = WaitOptions {
        timeout: args.timeout,
        fail_on_pause: args.fail_on_pause,
        poll_wait: match format {
            Format::Json => POLL_WAIT,
            Format::Human => POLL_WAIT_LIVE,
        },
    };
    let mut source = ServerSource {
        client: &client,
        id: id.clone(),
        details: format == Format::Human,
    };
    let began = Instant::now();

    let outcome = match format {
        Format::Json => {
            wait_for_decision(&mut source, opts, |update| {
                let line = match update {
                    Update::Decision(p) => Line::Decision {
                        train: &id,
                        decision: p.view.decision,
                        reason: &p.view.reason,
                        seq: p.view.seq,
                        evaluated_at: p.view.evaluated_at,
                    },
                    Update::Unreachable {
                        error,
                        retry_in,
                        first: true,
                    } => Line::Unreachable {
                        train: &id,
                        error: error.to_string(),
                        retry_in_secs: retry_in.as_secs_f64(),
                    },
                    _ => return,
                };
                json_line(&line);
            })
            .await
        }
        Format::Human => {
            let live = Arc::new(Mutex::new(Live::default()));
            let bar = indicatif::ProgressBar::new_spinner();
            if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner:.cyan} {wide_msg}")
            {
                bar.set_style(style);
            }
            bar.enable_steady_tick(Duration::from_millis(120));
            let ticker = {
                let (bar, live, id) = (bar.clone(), live.clone(), id.clone());
                tokio::spawn(async move {
                    let mut every = tokio::time::interval(Duration::from_secs(1));
                    loop {
                        every.tick().await;
                        let line = live.lock().map(|l| l.line(&id)).unwrap_or_default();
                        bar.set_message(line);
                    }
                })
            };
            let outcome = wait_for_decision(&mut source, opts, |update| {
                let Ok(mut l) = live.lock() else { return };
                match update {
                    Update::Decision(p) | Update::Refreshed(p) => {
                        let changed = matches!(update, Update::Decision(_));
                        if changed && l.view.is_some() {
                            // Keep a record of each change above the live line.
                            let at = Utc::now().format("%H:%M:%S");
                            bar.println(format!(
                                "{at}  {id} → {}: {}",
                                p.view.decision.as_str(),
                                p.view.reason
                            ));
                        }
                        l.view = Some(p.view.clone());
                        if p.train.is_some() {
                            l.train = p.train.clone();
                        }
                        l.trouble = None;
                    }
                    Update::Unreachable {
                        error, retry_in, ..
                    } => {
                        l.trouble = Some(format!(
                            "{error} (retrying in {:.1}s)",
                            retry_in.as_secs_f64()
                        ));
                    }
                }
                bar.set_message(l.line(&id));
            })
            .await;
            ticker.abort();
            bar.finish_and_clear();
            outcome
        }
    };

    let waited = render::short_duration(began.elapsed().as_secs() as i64);
    let code = outcome.exit_code();
    let last = outcome.last();
    let summary = match &outcome {
        Outcome::Final(v) => format!("{} after {waited}: {}", v.decision.as_str(), v.reason),
        Outcome::TimedOut {
            failing: Some(e), ..
        } => format!("gave up after {waited}: {e}"),
        Outcome::TimedOut { last, .. } => format!(
            "timed out after {waited}: still {}{}",
            last.as_ref().map_or("unknown", |v| v.decision.as_str()),
            last.as_ref()
                .map(|v| format!(" ({})", v.reason))
                .unwrap_or_default()
        ),
        Outcome::Stopped(v) => format!(
            "the train was stopped while {}: no final decision ({})",
            v.decision.as_str(),
            v.reason
        ),
        Outcome::Refused(e) => e.to_string(),
    };
    match format {
        Format::Json => {
            json_line(&Line::Result {
                train: &id,
                exit_code: code,
                outcome: outcome.name(),
                decision: last.map(|v| v.decision),
                reason: last
                    .map(|v| v.reason.clone())
                    .unwrap_or_else(|| summary.clone()),
                seq: last.map(|v| v.seq),
            });
            eprintln!("gate wait: {id}: {summary}");
        }
        Format::Human => match &outcome {
            Outcome::Final(v) => {
                // Best effort, as for JSON lines: the exit code carries the verdict.
                let _ = render::write_stdout(&format!(
                    "{}  train {id}  after {waited}\n  {}\n",
                    render::verdict(v.decision, render::color_stdout()),
                    v.reason
                ));
            }
            _ => eprintln!("gate wait: {id}: {summary}"),
        },
    }
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::StatusCode;
    use std::collections::VecDeque;

    fn view(decision: Decision, seq: u64) -> DecisionBody {
        DecisionBody {
            train: gate_rules::train_id::validate("t-1").unwrap(),
            gate: "checkout".into(),
            decision,
            reason: format!("{} because", decision.as_str()),
            rule: None,
            seq,
            evaluated_at: None,
            state: Lifecycle::Verifying,
        }
    }

    fn unavailable() -> ClientError {
        ClientError::Api {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "unavailable".into(),
            message: "restarting".into(),
        }
    }

    /// A server played from a script: each step is consumed by one poll. `Change` answers
    /// after `after` of (virtual) time; `Hold` is a long poll with no change, answered after
    /// the wait the client asked for; `Down` fails at once.
    enum Step {
        Change(DecisionBody, Duration),
        Hold,
        Down,
        Refuse,
    }

    struct Script {
        steps: VecDeque<Step>,
        current: Option<DecisionBody>,
        polls: Vec<(Duration, Option<u64>)>,
        start: Instant,
    }

    impl Script {
        fn new(steps: Vec<Step>) -> Self {
            Script {
                steps: steps.into(),
                current: None,
                polls: Vec::new(),
                start: Instant::now(),
            }
        }
    }

    impl Source for Script {
        async fn poll(
            &mut self,
            after_seq: Option<u64>,
            wait: Duration,
        ) -> Result<Polled, ClientError> {
            self.polls.push((self.start.elapsed(), after_seq));
            let step = self.steps.pop_front().unwrap_or(Step::Hold);
            let view = match step {
                Step::Change(v, after) => {
                    tokio::time::sleep(after).await;
                    self.current = Some(v.clone());
                    v
                }
                Step::Hold => {
                    tokio::time::sleep(wait).await;
                    self.current.clone().expect("a decision before holding")
                }
                Step::Down => return Err(unavailable()),
                Step::Refuse => {
                    return Err(ClientError::Api {
                        status: StatusCode::NOT_FOUND,
                        code: "not_found".into(),
                        message: "no train t-1".into(),
                    })
                }
            };
            Ok(Polled { view, train: None })
        }
    }

    fn opts(timeout_secs: u64, fail_on_pause: bool) -> WaitOptions {
        WaitOptions {
            timeout: Duration::from_secs(timeout_secs),
            fail_on_pause,
            poll_wait: POLL_WAIT,
        }
    }

    async fn run_script(
        steps: Vec<Step>,
        o: WaitOptions,
    ) -> (Outcome, Vec<String>, Script, Duration) {
        let mut script = Script::new(steps);
        let mut seen = Vec::new();
        let start = Instant::now();
        let outcome = wait_for_decision(&mut script, o, |u| {
            seen.push(match u {
                Update::Decision(p) => {
                    format!("decision {} #{}", p.view.decision.as_str(), p.view.seq)
                }
                Update::Refreshed(p) => format!("same #{}", p.view.seq),
                Update::Unreachable {
                    retry_in, first, ..
                } => {
                    format!(
                        "down {}ms{}",
                        retry_in.as_millis(),
                        if first { " first" } else { "" }
                    )
                }
            })
        })
        .await;
        (outcome, seen, script, start.elapsed())
    }

    #[tokio::test(start_paused = true)]
    async fn promote_after_pending_ends_with_0() {
        let (outcome, seen, script, took) = run_script(
            vec![
                Step::Change(view(Decision::Pending, 0), Duration::ZERO),
                Step::Hold,
                Step::Change(view(Decision::Promote, 1), Duration::from_secs(12)),
            ],
            opts(600, false),
        )
        .await;
        assert_eq!(outcome.exit_code(), exit::OK);
        assert_eq!(
            seen,
            ["decision pending #0", "same #0", "decision promote #1"]
        );
        // The first poll asks for the current decision, later ones long-poll after its seq.
        let after: Vec<Option<u64>> = script.polls.iter().map(|p| p.1).collect();
        assert_eq!(after, [None, Some(0), Some(0)]);
        assert_eq!(took, Duration::from_secs(30 + 12));
    }

    #[tokio::test(start_paused = true)]
    async fn rollback_ends_with_3_and_pause_with_4_only_when_asked() {
        let (o, ..) = run_script(
            vec![Step::Change(view(Decision::Rollback, 2), Duration::ZERO)],
            opts(60, false),
        )
        .await;
        assert_eq!(o.exit_code(), exit::ROLLBACK);
        assert_eq!(o.name(), "rollback");

        let steps = || {
            vec![
                Step::Change(view(Decision::Pause, 1), Duration::ZERO),
                Step::Change(view(Decision::Promote, 2), Duration::from_secs(5)),
            ]
        };
        let (o, seen, ..) = run_script(steps(), opts(60, true)).await;
        assert_eq!(o.exit_code(), exit::PAUSE);
        assert_eq!(seen, ["decision pause #1"]);

        let (o, seen, ..) = run_script(steps(), opts(60, false)).await;
        assert_eq!(o.exit_code(), exit::OK);
        assert_eq!(seen, ["decision pause #1", "decision promote #2"]);
    }

    #[tokio::test(start_paused = true)]
    async fn timeout_while_pending_ends_with_5_exactly_at_the_deadline() {
        let (o, _, script, took) = run_script(
            vec![Step::Change(view(Decision::Pending, 0), Duration::ZERO)],
            opts(95, false),
        )
        .await;
        assert_eq!(o.exit_code(), exit::PENDING);
        assert_eq!(o.name(), "timeout");
        assert_eq!(took, Duration::from_secs(95));
        // The last long poll asks only for what is left before the deadline.
        assert_eq!(
            script.polls.last().map(|p| p.0),
            Some(Duration::from_secs(90))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_server_down_past_the_timeout_ends_with_6_after_capped_backoff() {
        let steps = (0..100).map(|_| Step::Down).collect();
        let (o, seen, script, took) = run_script(steps, opts(20, false)).await;
        assert_eq!(o.exit_code(), exit::UNREACHABLE);
        assert_eq!(o.name(), "unreachable");
        assert_eq!(took, Duration::from_secs(20));
        let times: Vec<u128> = script.polls.iter().map(|p| p.0.as_millis()).collect();
        // 250 ms, 500 ms, 1 s, 2 s, 4 s, then capped at 5 s.
        assert_eq!(times, [0, 250, 750, 1750, 3750, 7750, 12750, 17750]);
        assert_eq!(seen.first().map(String::as_str), Some("down 250ms first"));
        assert!(seen[1..].iter().all(|s| !s.contains("first")), "{seen:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn an_outage_in_the_middle_is_ridden_out_and_the_backoff_resets() {
        let (o, seen, script, _) = run_script(
            vec![
                Step::Change(view(Decision::Pending, 0), Duration::ZERO),
                Step::Down,
                Step::Down,
                Step::Down,
                Step::Change(view(Decision::Pending, 0), Duration::ZERO),
                Step::Down,
                Step::Change(view(Decision::Rollback, 1), Duration::ZERO),
            ],
            opts(600, false),
        )
        .await;
        assert_eq!(o.exit_code(), exit::ROLLBACK);
        assert_eq!(
            seen,
            [
                "decision pending #0",
                "down 250ms first",
                "down 500ms",
                "down 1000ms",
                "same #0",
                "down 250ms first",
                "decision rollback #1"
            ]
        );
        // After the outage the wait resumes after the seq it had seen.
        assert!(
            script.polls[1..].iter().all(|p| p.1 == Some(0)),
            "{:?}",
            script.polls
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_unknown_train_is_refused_at_once() {
        let (o, _, script, took) = run_script(vec![Step::Refuse], opts(600, false)).await;
        assert_eq!(o.exit_code(), exit::USAGE);
        assert_eq!(script.polls.len(), 1);
        assert_eq!(took, Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn a_server_that_ignores_wait_is_not_hammered() {
        let steps = (0..1000)
            .map(|_| Step::Change(view(Decision::Pending, 0), Duration::ZERO))
            .collect();
        let (o, _, script, _) = run_script(steps, opts(10, false)).await;
        assert_eq!(o.exit_code(), exit::PENDING);
        // The first answer is new; then one poll a second: 0, 0, 1, …, 9.
        assert_eq!(script.polls.len(), 11, "{:?}", script.polls);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stopped_train_ends_the_wait_with_5() {
        struct Stopped;
        impl Source for Stopped {
            async fn poll(&mut self, _: Option<u64>, _: Duration) -> Result<Polled, ClientError> {
                let train: Train = serde_json::from_value(serde_json::json!({
                    "train": "t-1", "gate": "g", "started_at": "2026-11-01T11:00:00Z",
                    "state": "stopped", "decision": "pending", "seq": 0, "reason": "stopped",
                    "rule": null, "evaluated_at": null, "baseline": null, "labels": {},
                    "registered_at": "2026-11-01T11:00:00Z", "promoted_at": null,
                    "stopped_at": "2026-11-01T11:30:00Z", "pinned": null,
                    "consecutive_errors": 0, "evaluating": false
                }))
                .unwrap();
                Ok(Polled {
                    view: view(Decision::Pending, 0),
                    train: Some(train),
                })
            }
        }
        let o = wait_for_decision(&mut Stopped, opts(600, false), |_| {}).await;
        assert_eq!(o.exit_code(), exit::PENDING);
        assert_eq!(o.name(), "stopped");
    }

    #[test]
    fn json_lines_have_the_documented_shape() {
        let line = Line::Decision {
            train: "t-1",
            decision: Decision::Promote,
            reason: "ok",
            seq: 3,
            evaluated_at: Some(chrono::DateTime::from_timestamp(1_793_534_400, 0).unwrap()),
        };
        assert_eq!(
            serde_json::to_string(&line).unwrap(),
            r#"{"type":"decision","train":"t-1","decision":"promote","reason":"ok","seq":3,"evaluated_at":"2026-11-01T12:00:00Z"}"#
        );
        let line = Line::Result {
            train: "t-1",
            exit_code: 5,
            outcome: "timeout",
            decision: Some(Decision::Pending),
            reason: "r".into(),
            seq: Some(0),
        };
        assert_eq!(
            serde_json::to_string(&line).unwrap(),
            r#"{"type":"result","train":"t-1","exit_code":5,"outcome":"timeout","decision":"pending","reason":"r","seq":0}"#
        );
    }
}
