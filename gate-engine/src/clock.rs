//! Where the engine's wall-clock time comes from.
//!
//! Every time the engine writes — evaluation time, registration, override, stop, a webhook's
//! next attempt and dead-letter time — is read from a [`Clock`], never from `Utc::now()`
//! directly, so tests drive time with a [`ManualClock`] (or their own implementation) and
//! assert exact ages, promotion times and retry times. The daemon and the webhook outbox share
//! this one trait. *Waiting* is separate: sleeps and ticks use tokio timers, which tests
//! control with `tokio::time::pause()`.
//!
//! Times are truncated to whole milliseconds ([`gate_rules::time::truncate_ms`]), the precision
//! of the store: a time served from
//! memory before a restart is the same value the store serves after it.

use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};
use gate_rules::time::truncate_ms;

/// A source of the current time.
pub trait Clock: Send + Sync + 'static {
    /// The current time, truncated to whole milliseconds.
    fn now(&self) -> DateTime<Utc>;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        truncate_ms(Utc::now())
    }
}

/// A clock that only moves when told to (tests).
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<DateTime<Utc>>,
}

impl ManualClock {
    /// A clock standing at `at`.
    pub fn new(at: DateTime<Utc>) -> Self {
        ManualClock {
            now: Mutex::new(truncate_ms(at)),
        }
    }

    /// Moves the clock to `at`.
    pub fn set(&self, at: DateTime<Utc>) {
        *self.lock() = truncate_ms(at);
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: std::time::Duration) {
        let by = Duration::from_std(by).unwrap_or(Duration::MAX);
        let mut now = self.lock();
        *now = truncate_ms(now.checked_add_signed(by).unwrap_or(*now));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, DateTime<Utc>> {
        self.now.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.lock()
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let t0 = Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap();
        let clock = ManualClock::new(t0);
        assert_eq!(clock.now(), t0);
        clock.advance(std::time::Duration::from_millis(1500));
        assert_eq!(clock.now(), t0 + Duration::milliseconds(1500));
        clock.set(t0 + Duration::hours(1));
        assert_eq!(clock.now(), t0 + Duration::hours(1));
    }

    #[test]
    fn times_are_truncated_to_milliseconds() {
        let t = Utc.timestamp_opt(1_793_534_400, 123_456_789).unwrap();
        assert_eq!(truncate_ms(t).timestamp_subsec_nanos(), 123_000_000);
        assert_eq!(
            ManualClock::new(t).now().timestamp_subsec_nanos(),
            123_000_000
        );
        assert_eq!(SystemClock.now().timestamp_subsec_nanos() % 1_000_000, 0);
    }
}
