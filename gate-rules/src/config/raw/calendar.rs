//! Pass 1 for a gate's calendar: `departures`, `freezes` and `approval`.
//!
//! Each entry is judged on its own (day names, `HH:MM` times, IANA zone names, RFC 3339
//! times, `to` after `from`), then the freezes against each other (no two overlap, so "frozen
//! until" always names the end of the one freeze the train is in). Every problem is reported
//! with its position, all at once, like the rest of the schema.

use chrono::{DateTime, NaiveTime, Utc, Weekday};
use chrono_tz::Tz;

use super::super::clock as calendar;
use super::super::diagnostic::did_you_mean;
use super::super::model::Approval;
use super::super::yaml::Node;
use super::{At, Entry, Field, Fields, Reader};

const DEPARTURE_FIELDS: &[&str] = &["days", "from", "to", "timezone"];
const FREEZE_FIELDS: &[&str] = &["from", "to", "reason"];

/// One `departures:` entry.
#[derive(Debug)]
pub(in crate::config) struct RawDeparture {
    pub days: Field<Vec<Weekday>>,
    pub from: Field<NaiveTime>,
    pub to: Field<NaiveTime>,
    pub timezone: Field<Tz>,
}

/// One `freezes:` entry.
#[derive(Debug)]
pub(in crate::config) struct RawFreeze {
    pub from: Field<DateTime<Utc>>,
    pub to: Field<DateTime<Utc>>,
    pub reason: Field<String>,
}

impl Reader<'_, '_> {
    /// `departures:`; `None` (reported) when it is not a list.
    pub(super) fn departures(&mut self, entry: Entry<'_>) -> Option<Vec<RawDeparture>> {
        self.list(entry, "departures", |r, item| r.departure(item))
    }

    fn departure(&mut self, (position, node): (usize, &Node)) -> RawDeparture {
        let what = format!("departure #{}", position + 1);
        let fields = Fields::read(self.sink, node, &format!("in {what}"), DEPARTURE_FIELDS);
        let get = |name: &str| fields.as_ref().and_then(|f| f.get(name));
        let mut departure = RawDeparture {
            days: self.days(get("days")),
            from: self.clock(get("from")),
            to: self.clock(get("to")),
            timezone: self.timezone(get("timezone")),
        };
        if fields.is_none() {
            return departure;
        }
        for &name in DEPARTURE_FIELDS {
            if get(name).is_none() && !Fields::explains_missing(&fields, name) {
                let hint = match name {
                    "days" => "add e.g. `days: [mon, tue, wed, thu]`",
                    "timezone" => {
                        "add the IANA zone of `from` and `to`, e.g. `timezone: Europe/Berlin`"
                    }
                    _ => "add a local time as `\"HH:MM\"`, e.g. `from: \"09:00\"`",
                };
                self.error(
                    node.span,
                    format!("{what} has no `{name}`"),
                    Some(hint.to_string()),
                );
            }
        }
        if let (Some(from), Some(to)) = (departure.from.get(), departure.to.get()) {
            if to.value <= from.value {
                self.error(
                    to.span,
                    format!(
                        "`to` must be after `from` ({}), got {}",
                        from.value.format("%H:%M"),
                        to.value.format("%H:%M")
                    ),
                    Some(
                        "a window does not span midnight: split it into two windows on consecutive days"
                            .to_string(),
                    ),
                );
                departure.to = Field::Invalid;
            }
        }
        departure
    }

    fn days(&mut self, entry: Entry<'_>) -> Field<Vec<Weekday>> {
        let At { value, span } = match self.string_list(entry) {
            Field::Present(at) => at,
            Field::Absent => return Field::Absent,
            Field::Invalid => return Field::Invalid,
        };
        let mut days = Vec::new();
        let mut ok = true;
        for name in value {
            match calendar::parse_day(&name.value) {
                Some(day) => days.push(day),
                None => {
                    let expected = format!("day names are {}", calendar::DAY_NAMES.join(", "));
                    let hint =
                        match did_you_mean(&name.value.to_ascii_lowercase(), calendar::DAY_NAMES) {
                            Some(dym) => format!("{dym} {expected}"),
                            None => expected,
                        };
                    self.error(
                        name.span,
                        format!("`{}` is not a day name", name.value),
                        Some(hint),
                    );
                    ok = false;
                }
            }
        }
        if !ok {
            return Field::Invalid;
        }
        if days.is_empty() {
            self.error(
                span,
                "`days` is empty: the window would never open",
                Some("list the days it opens, e.g. `[mon, tue, wed, thu]`".to_string()),
            );
            return Field::Invalid;
        }
        Field::Present(At { value: days, span })
    }

    fn clock(&mut self, entry: Entry<'_>) -> Field<NaiveTime> {
        let name = entry.map(|(k, _)| k.name.clone()).unwrap_or_default();
        let At { value, span } = match self.string(entry) {
            Field::Present(at) => at,
            Field::Absent => return Field::Absent,
            Field::Invalid => return Field::Invalid,
        };
        match calendar::parse_clock(&value) {
            Some(time) => Field::Present(At { value: time, span }),
            None => {
                self.error(
                    span,
                    format!("`{name}` is not a time of day: `{value}`"),
                    Some("write it as \"HH:MM\" on a 24-hour clock, e.g. \"09:00\"".to_string()),
                );
                Field::Invalid
            }
        }
    }

    fn timezone(&mut self, entry: Entry<'_>) -> Field<Tz> {
        let At { value, span } = match self.string(entry) {
            Field::Present(at) => at,
            Field::Absent => return Field::Absent,
            Field::Invalid => return Field::Invalid,
        };
        match calendar::parse_timezone(&value) {
            Some(tz) => Field::Present(At { value: tz, span }),
            None => {
                let hint = did_you_mean(&value, calendar::timezone_names()).unwrap_or_else(|| {
                    "use an IANA time zone name, e.g. Europe/Berlin, America/New_York or UTC"
                        .to_string()
                });
                self.error(span, format!("unknown time zone `{value}`"), Some(hint));
                Field::Invalid
            }
        }
    }

    /// `freezes:`, each checked, then checked against each other; `None` (reported) when it
    /// is not a list.
    pub(super) fn freezes(&mut self, entry: Entry<'_>) -> Option<Vec<RawFreeze>> {
        let freezes = self.list(entry, "freezes", |r, item| r.freeze(item))?;
        let mut seen: Vec<(usize, DateTime<Utc>, DateTime<Utc>)> = Vec::new();
        for (i, freeze) in freezes.iter().enumerate() {
            let (Some(from), Some(to)) = (freeze.from.get(), freeze.to.get()) else {
                continue;
            };
            if let Some((j, a, b)) = seen
                .iter()
                .find(|(_, a, b)| from.value < *b && *a < to.value)
            {
                self.error(
                    from.span,
                    format!(
                        "freeze #{} overlaps freeze #{} ({} to {})",
                        i + 1,
                        j + 1,
                        a.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
                        b.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
                    ),
                    Some(
                        "merge the two freezes into one, or make one end where the other starts"
                            .to_string(),
                    ),
                );
            }
            seen.push((i, from.value, to.value));
        }
        Some(freezes)
    }

    fn freeze(&mut self, (position, node): (usize, &Node)) -> RawFreeze {
        let what = format!("freeze #{}", position + 1);
        let fields = Fields::read(self.sink, node, &format!("in {what}"), FREEZE_FIELDS);
        let get = |name: &str| fields.as_ref().and_then(|f| f.get(name));
        let mut freeze = RawFreeze {
            from: self.instant(get("from")),
            to: self.instant(get("to")),
            reason: self.string(get("reason")),
        };
        if fields.is_none() {
            return freeze;
        }
        for &name in FREEZE_FIELDS {
            if get(name).is_none() && !Fields::explains_missing(&fields, name) {
                let hint = match name {
                    "reason" => "add why, e.g. `reason: year-end freeze`; it is shown to everyone the freeze holds",
                    _ => "add an RFC 3339 time, e.g. `2026-12-20T00:00:00Z`",
                };
                self.error(
                    node.span,
                    format!("{what} has no `{name}`"),
                    Some(hint.to_string()),
                );
            }
        }
        if let (Some(from), Some(to)) = (freeze.from.get(), freeze.to.get()) {
            if to.value <= from.value {
                self.error(
                    to.span,
                    format!(
                        "`to` must be after `from` ({}), got {}",
                        from.value
                            .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
                        to.value
                            .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
                    ),
                    Some("the freeze is inverted: swap `from` and `to`".to_string()),
                );
                freeze.to = Field::Invalid;
            }
        }
        freeze
    }

    fn instant(&mut self, entry: Entry<'_>) -> Field<DateTime<Utc>> {
        let name = entry.map(|(k, _)| k.name.clone()).unwrap_or_default();
        let At { value, span } = match self.string(entry) {
            Field::Present(at) => at,
            Field::Absent => return Field::Absent,
            Field::Invalid => return Field::Invalid,
        };
        match DateTime::parse_from_rfc3339(&value) {
            Ok(t) => Field::Present(At {
                value: crate::time::truncate_ms(t.with_timezone(&Utc)),
                span,
            }),
            Err(_) => {
                self.error(
                    span,
                    format!("`{name}` is not a time: `{value}`"),
                    Some("use RFC 3339 with a zone, e.g. 2026-12-20T00:00:00Z".to_string()),
                );
                Field::Invalid
            }
        }
    }

    /// `approval: none | required`.
    pub(super) fn approval(&mut self, entry: Entry<'_>) -> Field<Approval> {
        self.choice(
            entry,
            &[("none", Approval::None), ("required", Approval::Required)],
        )
    }
}
