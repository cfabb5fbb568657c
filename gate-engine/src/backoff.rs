//! Exponential backoff: the one policy for how long to wait between attempts.
//!
//! Three places retry, and all three use [`Backoff`]: the Prometheus client between attempts
//! of one query ([`crate::prometheus::RetryPolicy`], which adds an attempt count and a time
//! budget), the webhook outbox between deliveries of one event (with full jitter, and the time
//! stored so it holds across restarts), and `gate wait` while the server is unreachable.
//!
//! Why not a retry crate such as `backon`: its policies are iterators driving a sleep loop,
//! while the outbox needs the delay for the *n*-th failure computed from a count read back
//! from the store, and full jitter (uniform between zero and the ceiling) rather than a random
//! amount added on top. What is shared is a few lines of arithmetic, kept here once.

use std::time::Duration;

/// Capped exponential backoff: after the `n`-th failure (1-based) the ceiling is
/// `initial × 2^(n−1)`, capped at `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The ceiling after the first failure.
    pub initial: Duration,
    /// The largest ceiling.
    pub max: Duration,
}

impl Backoff {
    /// The longest wait after `failures` failed attempts (0 counts as 1).
    pub fn ceiling(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(31);
        self.initial
            .checked_mul(1u32 << doublings)
            .unwrap_or(self.max)
            .min(self.max)
    }

    /// The wait after `failures` failed attempts with full jitter, for a random `unit` in
    /// `[0, 1)`: uniformly between zero and the ceiling. Full jitter spreads the retries of many
    /// attempts that failed together instead of bringing them back in waves.
    pub fn delay(&self, failures: u32, unit: f64) -> Duration {
        self.ceiling(failures).mul_f64(unit.clamp(0.0, 1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceiling_doubles_up_to_the_cap() {
        let b = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_millis(350),
        };
        let ceilings: Vec<u128> = (1..=5).map(|n| b.ceiling(n).as_millis()).collect();
        assert_eq!(ceilings, vec![100, 200, 350, 350, 350]);
        assert_eq!(b.ceiling(0), Duration::from_millis(100));
        assert_eq!(b.ceiling(u32::MAX), Duration::from_millis(350));
    }

    #[test]
    fn full_jitter_spans_zero_to_the_ceiling() {
        let b = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(10),
        };
        assert_eq!(b.delay(3, 0.0), Duration::ZERO);
        assert_eq!(b.delay(3, 0.5), Duration::from_millis(200));
        assert_eq!(b.delay(3, 1.0), Duration::from_millis(400));
        assert_eq!(
            b.delay(3, 7.0),
            Duration::from_millis(400),
            "unit is clamped"
        );
        for _ in 0..100 {
            let d = b.delay(5, rand::random::<f64>());
            assert!(d <= Duration::from_millis(1600), "{d:?}");
        }
    }
}
