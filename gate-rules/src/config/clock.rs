//! The config's words for time: day names (`mon` … `sun`), wall-clock times (`"HH:MM"`) and
//! IANA time zone names, as `departures` writes them. Read by the schema pass, written back
//! by `gate check --effective`, and used by [`crate::calendar`].

use chrono::{NaiveTime, Weekday};
use chrono_tz::Tz;

/// The day names of `departures[].days`, Monday first.
pub const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// The config's name of a weekday (`mon` … `sun`).
pub fn day_name(day: Weekday) -> &'static str {
    DAY_NAMES[day.num_days_from_monday() as usize]
}

/// The weekday of a config day name (`mon` … `sun`), if it is one.
pub fn parse_day(name: &str) -> Option<Weekday> {
    let i = DAY_NAMES.iter().position(|d| *d == name)?;
    Weekday::try_from(i as u8).ok()
}

/// A wall-clock time as the config writes it: `HH:MM`, 00:00 to 23:59.
pub fn parse_clock(text: &str) -> Option<NaiveTime> {
    let (h, m) = text.split_once(':')?;
    let two_digits = |p: &str| p.len() == 2 && p.bytes().all(|b| b.is_ascii_digit());
    if !two_digits(h) || !two_digits(m) {
        return None;
    }
    NaiveTime::from_hms_opt(h.parse().ok()?, m.parse().ok()?, 0)
}

/// An IANA time zone by its exact name (`Europe/Berlin`, `UTC`).
pub fn parse_timezone(name: &str) -> Option<Tz> {
    name.parse().ok()
}

/// Every IANA time zone name (for "did you mean" hints).
pub fn timezone_names() -> impl Iterator<Item = &'static str> {
    chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name())
}
