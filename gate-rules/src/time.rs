//! Times as users write them: RFC 3339 or unix seconds, kept to the millisecond.
//!
//! One parser serves the command line (`--at`, `--started-at`, `demo-data --end`) and the API
//! (`started_at` of a registration), so the same text means the same instant everywhere.
//!
//! gate keeps times at millisecond precision (the store's columns are unix milliseconds), so
//! a parsed time is **truncated** to the millisecond: digits finer than a millisecond are
//! dropped, never rounded up, in both forms. `2026-11-01T11:00:00.1239Z` and
//! `1793530800.1239` are both `…:00.123Z`. Unix seconds are read as the decimal the user
//! wrote, not through a float, so `1793530800.123` is exactly `.123` (a float times 1000 is
//! `…122.99…`); a JSON number is first printed back in its shortest form, which is the
//! decimal that was sent.

use chrono::{DateTime, DurationRound, TimeDelta, Utc};

/// Why a time was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TimeError {
    /// Neither RFC 3339 nor non-negative unix seconds.
    #[error("`{0}` is not a time: use RFC 3339 (2026-11-01T12:00:00Z) or unix seconds")]
    Invalid(String),
}

/// Parses RFC 3339 (any offset, converted to UTC) or non-negative unix seconds with an
/// optional fraction, truncated to the millisecond.
pub fn parse_time(s: &str) -> Result<DateTime<Utc>, TimeError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(truncate_ms(t.with_timezone(&Utc)));
    }
    unix(s).ok_or_else(|| TimeError::Invalid(s.to_string()))
}

/// A time from unix seconds given as a number (a JSON `started_at`), truncated to the
/// millisecond like [`parse_time`].
pub fn from_unix_secs(secs: f64) -> Result<DateTime<Utc>, TimeError> {
    // `Display` of an f64 is its shortest round-trip decimal: the number as it was written.
    let text = secs.to_string();
    unix(&text).ok_or(TimeError::Invalid(text))
}

/// `t` without its sub-millisecond part.
pub fn truncate_ms(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(TimeDelta::milliseconds(1)).unwrap_or(t)
}

fn unix(s: &str) -> Option<DateTime<Utc>> {
    let (whole, fraction) = s.split_once('.').unwrap_or((s, ""));
    let all_digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !all_digits(whole) || !all_digits(fraction) {
        return None;
    }
    let secs: i64 = whole.parse().ok()?;
    let millis: i64 = format!("{:0<3}", &fraction[..fraction.len().min(3)])
        .parse()
        .ok()?;
    DateTime::from_timestamp_millis(secs.checked_mul(1000)?.checked_add(millis)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(t: DateTime<Utc>) -> i64 {
        t.timestamp_millis()
    }

    #[test]
    fn rfc3339_and_unix_seconds_name_the_same_instant() {
        let t = parse_time("2026-11-01T12:00:00Z").unwrap();
        assert_eq!(t.timestamp(), 1_793_534_400);
        assert_eq!(parse_time("1793534400").unwrap(), t);
        assert_eq!(parse_time("2026-11-01T13:00:00+01:00").unwrap(), t);
        assert_eq!(from_unix_secs(1_793_534_400.0).unwrap(), t);
    }

    #[test]
    fn finer_than_a_millisecond_is_truncated_in_both_forms() {
        let base = 1_793_534_400_000;
        assert_eq!(
            ms(parse_time("2026-11-01T12:00:00.1239Z").unwrap()),
            base + 123
        );
        assert_eq!(ms(parse_time("1793534400.1239").unwrap()), base + 123);
        assert_eq!(ms(parse_time("1793534400.123").unwrap()), base + 123);
        assert_eq!(ms(parse_time("1793534400.5").unwrap()), base + 500);
        assert_eq!(ms(from_unix_secs(1_793_534_400.123).unwrap()), base + 123);
        assert_eq!(ms(from_unix_secs(1_793_534_400.9999).unwrap()), base + 999);
        assert_eq!(
            parse_time("2026-11-01T12:00:00.123456789Z")
                .unwrap()
                .timestamp_subsec_nanos(),
            123_000_000
        );
    }

    #[test]
    fn refuses_what_is_not_a_time() {
        for bad in [
            "yesterday",
            "-5",
            "",
            ".5",
            "1e9",
            "12:00",
            "+5",
            "5.x",
            "5.5.5",
        ] {
            assert!(parse_time(bad).is_err(), "{bad:?} accepted");
        }
        assert!(from_unix_secs(-1.0).is_err());
        assert!(from_unix_secs(f64::NAN).is_err());
        assert!(from_unix_secs(f64::INFINITY).is_err());
    }
}
