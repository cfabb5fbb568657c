//! How a query is retried after a transient failure: attempts, backoff and a time budget.

use std::time::Duration;

use crate::backoff::Backoff;

/// How a query is retried after a transient failure.
///
/// Attempt `n` (1-based) that fails transiently is followed by a sleep of
/// `initial_backoff × 2^(n−1)`, capped at `max_backoff`, then attempt `n+1`, as long as fewer
/// than `max_attempts` attempts were made and the total time stays within `max_elapsed`. Each
/// attempt's timeout is the configured timeout, shortened to what is left of `max_elapsed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, including the first (at least 1).
    pub max_attempts: u32,
    /// Sleep after the first failed attempt.
    pub initial_backoff: Duration,
    /// Upper bound of one sleep.
    pub max_backoff: Duration,
    /// Total time budget for all attempts and sleeps; `None` means twice the per-attempt
    /// timeout.
    pub max_elapsed: Option<Duration>,
}

impl Default for RetryPolicy {
    /// Three attempts, backoff 250 ms then 500 ms, within twice the per-attempt timeout.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(2),
            max_elapsed: None,
        }
    }
}

impl RetryPolicy {
    /// A policy that makes exactly one attempt.
    pub fn no_retries() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        }
    }

    /// The sleep after failed attempt number `failed_attempt` (1-based).
    pub fn backoff(&self, failed_attempt: u32) -> Duration {
        Backoff {
            initial: self.initial_backoff,
            max: self.max_backoff,
        }
        .ceiling(failed_attempt)
    }

    /// The total time budget for a client whose per-attempt timeout is `timeout`.
    pub fn budget(&self, timeout: Duration) -> Duration {
        self.max_elapsed.unwrap_or(timeout.saturating_mul(2))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let policy = RetryPolicy {
            max_attempts: 6,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(350),
            max_elapsed: None,
        };
        let sleeps: Vec<u128> = (1..=5).map(|n| policy.backoff(n).as_millis()).collect();
        assert_eq!(sleeps, vec![100, 200, 350, 350, 350]);
        assert_eq!(policy.backoff(u32::MAX), Duration::from_millis(350));
        assert_eq!(
            policy.budget(Duration::from_secs(10)),
            Duration::from_secs(20)
        );
        assert_eq!(RetryPolicy::default().max_attempts, 3);
    }
}
