//! Prometheus-style durations (`30s`, `5m`, `1h30m`, `1d`, `2w`, `1y`, `500ms`).
//!
//! This is gate's one duration grammar: config windows use [`PromDuration`] (never zero),
//! and waits and timeouts given on the command line or in the API (`gate wait --timeout`,
//! `?wait=`) use [`parse_duration`], the same forms plus `0` and bare seconds (`90`).
//!
//! Windows are rendered back into PromQL range selectors, so a duration keeps the
//! Prometheus spelling: [`PromDuration`]'s `Display` prints the canonical Prometheus form
//! (`90m` → `1h30m`) that `promql-parser` and Prometheus both accept.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A non-zero duration written the way Prometheus writes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PromDuration(Duration);

/// Why a duration string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DurationError {
    /// The text is not of the form `<number><unit>...`.
    #[error("`{0}` is not a duration (expected e.g. 30s, 5m, 1h, 1d)")]
    Invalid(String),
    /// The duration is zero.
    #[error("duration must be greater than zero")]
    Zero,
}

const UNITS: [(&str, u64); 8] = [
    ("y", 365 * 24 * 3600 * 1000),
    ("w", 7 * 24 * 3600 * 1000),
    ("d", 24 * 3600 * 1000),
    ("h", 3600 * 1000),
    ("m", 60 * 1000),
    ("s", 1000),
    ("ms", 1),
    ("", 0),
];

impl PromDuration {
    /// Wraps a non-zero [`Duration`], rounded down to whole milliseconds.
    pub fn from_duration(d: Duration) -> Result<Self, DurationError> {
        let d = Duration::from_millis(d.as_millis() as u64);
        if d.is_zero() {
            return Err(DurationError::Zero);
        }
        Ok(PromDuration(d))
    }

    /// A duration of whole seconds (panics on zero; for constants and tests).
    pub fn from_secs(secs: u64) -> Self {
        Self::from_duration(Duration::from_secs(secs)).expect("non-zero duration")
    }

    /// The duration as a [`Duration`].
    pub fn as_duration(&self) -> Duration {
        self.0
    }

    /// The duration in seconds.
    pub fn as_secs_f64(&self) -> f64 {
        self.0.as_secs_f64()
    }
}

impl FromStr for PromDuration {
    type Err = DurationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || DurationError::Invalid(s.to_string());
        let mut rest = s.trim();
        if rest.is_empty() || rest != s {
            return Err(invalid());
        }
        let mut total: u64 = 0;
        // Units must appear in decreasing order, each at most once, as Prometheus requires.
        let mut last_unit = 0usize;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(|b| b.is_ascii_digit()).count();
            if digits == 0 {
                return Err(invalid());
            }
            let n: u64 = rest[..digits].parse().map_err(|_| invalid())?;
            rest = &rest[digits..];
            let unit_len = rest.bytes().take_while(|b| b.is_ascii_alphabetic()).count();
            let unit = &rest[..unit_len];
            let idx = UNITS[..7]
                .iter()
                .position(|(u, _)| *u == unit)
                .ok_or_else(invalid)?;
            if idx < last_unit || (total > 0 && idx == last_unit) {
                return Err(invalid());
            }
            last_unit = idx;
            total = n
                .checked_mul(UNITS[idx].1)
                .and_then(|v| total.checked_add(v))
                .ok_or_else(invalid)?;
            rest = &rest[unit_len..];
        }
        if total == 0 {
            return Err(DurationError::Zero);
        }
        Ok(PromDuration(Duration::from_millis(total)))
    }
}

impl fmt::Display for PromDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ms = self.0.as_millis() as u64;
        // Printed in days and smaller units: `30d` reads better than `4w2d`, and both parse.
        for (unit, size) in &UNITS[2..7] {
            if ms >= *size {
                write!(f, "{}{}", ms / size, unit)?;
                ms %= size;
            }
        }
        Ok(())
    }
}

impl serde::Serialize for PromDuration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for PromDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A wait or timeout: a Prometheus duration (`30s`, `5m`, `1h30m`, `500ms`), bare seconds
/// (`90`), or zero (`0`, `0s`).
pub fn parse_duration(s: &str) -> Result<Duration, DurationError> {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s
            .parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|_| DurationError::Invalid(s.to_string()));
    }
    match s.parse::<PromDuration>() {
        Ok(d) => Ok(d.as_duration()),
        Err(DurationError::Zero) => Ok(Duration::ZERO),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_take_prometheus_forms_bare_seconds_and_zero() {
        for (text, ms) in [
            ("30s", 30_000),
            ("5m", 300_000),
            ("1h30m", 5_400_000),
            ("500ms", 500),
            ("90", 90_000),
            ("0", 0),
            ("0s", 0),
            ("0m", 0),
        ] {
            assert_eq!(
                parse_duration(text).unwrap(),
                Duration::from_millis(ms),
                "{text}"
            );
        }
        for bad in [
            "",
            "soon",
            "-5",
            "5 m",
            "45min",
            "1h 30m",
            "1.5h",
            "99999999999999999999",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn parses_and_prints_prometheus_forms() {
        for (text, secs, canonical) in [
            ("30s", 30, "30s"),
            ("5m", 300, "5m"),
            ("90m", 5400, "1h30m"),
            ("1h30m", 5400, "1h30m"),
            ("1d", 86400, "1d"),
            ("30d", 30 * 86400, "30d"),
            ("2w", 14 * 86400, "14d"),
        ] {
            let d: PromDuration = text.parse().unwrap();
            assert_eq!(d.as_duration(), Duration::from_secs(secs), "{text}");
            assert_eq!(d.to_string(), canonical, "{text}");
        }
        assert_eq!(
            "500ms".parse::<PromDuration>().unwrap().to_string(),
            "500ms"
        );
    }

    #[test]
    fn refuses_malformed() {
        for text in [
            "", "5", "m", "5x", "1m1h", "1h1h", " 5m", "-5m", "5 m", "0s",
        ] {
            assert!(text.parse::<PromDuration>().is_err(), "{text:?} accepted");
        }
    }
}
