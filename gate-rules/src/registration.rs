//! What a train registration may claim about when the train started.
//!
//! The daemon's API calls [`check_started_at`] before it stores a registration, with the
//! clock's now. Two claims are refused because they quietly break verification:
//!
//! * a start in the **future** (beyond [`CLOCK_SKEW`], which allows a deployer's clock to run
//!   a little ahead): the train would be "younger than zero" at every evaluation, its windows
//!   empty;
//! * a start older than the gate's **`max_train_age`**: the train would be past `verify_for`
//!   at its first evaluation (promoting on whatever one look shows), and every since-start
//!   and baseline query would stretch over its whole age — years, for a mistyped date.
//!
//! The check is pure (times are passed in), so the API, tests and anything else that registers
//! trains share one rule.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::config::Gate;
use crate::duration::PromDuration;

/// How far a registration's `started_at` may lie ahead of the daemon's clock.
pub const CLOCK_SKEW: Duration = Duration::from_secs(60);

/// Why a train's `started_at` is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The start is more than [`CLOCK_SKEW`] ahead of now.
    #[error(
        "started_at {started_at} is {ahead} in the future (more than 1m of clock skew): \
         send the time the deployment started, from a synchronized clock"
    )]
    InFuture {
        /// The claimed start, RFC 3339.
        started_at: String,
        /// How far ahead of now, e.g. `5m`.
        ahead: String,
    },
    /// The start is older than the gate's `max_train_age`.
    #[error(
        "started_at {started_at} is {age} ago, beyond gate `{gate}`'s max_train_age of \
         {max_train_age}: the train would skip verify_for and every query would span its whole \
         age; register a train when it starts (or raise max_train_age)"
    )]
    TooOld {
        /// The claimed start, RFC 3339.
        started_at: String,
        /// How long ago, e.g. `9d`.
        age: String,
        /// The gate.
        gate: String,
        /// The gate's `max_train_age`.
        max_train_age: PromDuration,
    },
}

impl StartError {
    /// The API's error code for this refusal.
    pub fn code(&self) -> &'static str {
        match self {
            StartError::InFuture { .. } => "started_at_in_future",
            StartError::TooOld { .. } => "started_at_too_old",
        }
    }
}

/// Checks a registration's `started_at` against the clock's `now` and the gate's
/// `max_train_age` (see the module docs).
pub fn check_started_at(
    gate: &Gate,
    started_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), StartError> {
    let written = || started_at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
    let span = |d: chrono::Duration| {
        d.to_std()
            .ok()
            .and_then(|d| PromDuration::from_duration(d).ok())
            .map_or_else(|| "0s".to_string(), |d| d.to_string())
    };
    let ahead = started_at.signed_duration_since(now);
    if ahead.to_std().is_ok_and(|d| d > CLOCK_SKEW) {
        return Err(StartError::InFuture {
            started_at: written(),
            ahead: span(ahead),
        });
    }
    let age = now.signed_duration_since(started_at);
    if age
        .to_std()
        .is_ok_and(|d| d > gate.max_train_age.as_duration())
    {
        return Err(StartError::TooOld {
            started_at: written(),
            age: span(age),
            gate: gate.name.clone(),
            max_train_age: gate.max_train_age,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_str;

    fn gate(max_train_age: &str) -> Gate {
        let text = format!(
            "slos:\n  - name: a\n    objective: 99\n    errors: e\n    total: t\ngates:\n  - name: checkout\n    slos: [a]\n    max_train_age: {max_train_age}\n"
        );
        load_str("t.yaml", &text).unwrap().gates[0].clone()
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-01T12:00:00Z")
            .unwrap()
            .to_utc()
    }

    #[test]
    fn a_start_within_the_skew_and_the_age_limit_is_accepted() {
        let g = gate("7d");
        for offset in [
            chrono::Duration::seconds(60),
            chrono::Duration::zero(),
            -chrono::Duration::hours(1),
            -chrono::Duration::days(7),
        ] {
            assert_eq!(
                check_started_at(&g, now() + offset, now()),
                Ok(()),
                "{offset}"
            );
        }
    }

    #[test]
    fn a_start_in_the_future_is_refused() {
        let err = check_started_at(&gate("7d"), now() + chrono::Duration::seconds(61), now())
            .unwrap_err();
        assert_eq!(err.code(), "started_at_in_future");
        assert_eq!(
            err.to_string(),
            "started_at 2026-11-01T12:01:01Z is 1m1s in the future (more than 1m of clock skew): \
             send the time the deployment started, from a synchronized clock"
        );
    }

    #[test]
    fn a_start_older_than_max_train_age_is_refused() {
        let started = now() - chrono::Duration::days(2) - chrono::Duration::seconds(1);
        let err = check_started_at(&gate("2d"), started, now()).unwrap_err();
        assert_eq!(err.code(), "started_at_too_old");
        assert_eq!(
            err.to_string(),
            "started_at 2026-10-30T11:59:59Z is 2d1s ago, beyond gate `checkout`'s max_train_age \
             of 2d: the train would skip verify_for and every query would span its whole age; \
             register a train when it starts (or raise max_train_age)"
        );
        let years = DateTime::parse_from_rfc3339("2020-01-01T00:00:00Z")
            .unwrap()
            .to_utc();
        assert!(check_started_at(&gate("7d"), years, now()).is_err());
    }
}
