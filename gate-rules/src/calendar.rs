//! When a gate may promote: its departure windows and freezes, at a given time.
//!
//! A gate with `departures` promotes only inside one of its windows; a gate with `freezes`
//! never promotes inside one. Both only *hold* a promotion: the decision function
//! ([`crate::decide`]) still runs as always, and a train whose rules would promote it stays
//! `pending` with the reason this module writes ([`hold_reason`]) until the first evaluation
//! at which the calendar allows it. Rollback and pause are never held.
//!
//! Windows are wall-clock times in an IANA time zone (`chrono-tz`), so a window "09:00–16:00
//! Europe/Berlin" is 08:00–15:00 UTC in winter and 07:00–14:00 UTC in summer. A window never
//! spans midnight (`to` is after `from`, checked by the config). On the day clocks spring
//! forward, an opening time that does not exist (02:30 in a 02:00→03:00 gap) opens an hour
//! later; on the day they fall back, an ambiguous time is its first occurrence.
//!
//! Like everything in `gate-rules`, no function here reads the clock: the time is passed in.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

use crate::config::{Departure, Freeze, Gate};

/// `time` on `date` in `tz`, as UTC: the first occurrence of an ambiguous time, an hour later
/// for a time that does not exist that day.
fn localize(tz: Tz, date: NaiveDate, time: NaiveTime) -> Option<DateTime<Utc>> {
    let local = date.and_time(time);
    tz.from_local_datetime(&local)
        .earliest()
        .or_else(|| {
            tz.from_local_datetime(&(local + Duration::hours(1)))
                .earliest()
        })
        .map(|t| t.with_timezone(&Utc))
}

/// One opening of a departure window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window<'a> {
    /// When it opens.
    pub opens: DateTime<Utc>,
    /// When it closes.
    pub closes: DateTime<Utc>,
    /// The departure it is an opening of.
    pub departure: &'a Departure,
}

impl Departure {
    /// Whether the window is open at `at` (`from` included, `to` excluded).
    pub fn is_open(&self, at: DateTime<Utc>) -> bool {
        let local = at.with_timezone(&self.timezone);
        let time = local.time();
        self.days.contains(&local.weekday()) && self.from <= time && time < self.to
    }

    /// The openings whose local date is `date`, if the window opens that weekday.
    fn on(&self, date: NaiveDate) -> Option<Window<'_>> {
        if !self.days.contains(&date.weekday()) {
            return None;
        }
        let opens = localize(self.timezone, date, self.from)?;
        let closes = localize(self.timezone, date, self.to)?;
        (closes > opens).then_some(Window {
            opens,
            closes,
            departure: self,
        })
    }

    /// The openings that end after `after`, in time order, starting the local day before
    /// `after` (a window open at `after` comes first).
    pub fn windows_after(&self, after: DateTime<Utc>) -> impl Iterator<Item = Window<'_>> {
        let start = after.with_timezone(&self.timezone).date_naive() - Duration::days(1);
        start
            .iter_days()
            .take(3660)
            .filter_map(move |date| self.on(date))
            .filter(move |w| w.closes > after)
    }

    /// The first opening strictly after `after`.
    fn next_open(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.windows_after(after)
            .map(|w| w.opens)
            .find(|opens| *opens > after)
    }
}

impl Freeze {
    /// Whether `at` is inside the freeze (`from` included, `to` excluded).
    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        self.from <= at && at < self.to
    }
}

/// The first time at or after `at` at which `gate` may promote (no freeze, inside a window
/// if it has any), with the window it falls in. `None` if there is none within ten years.
pub fn next_departure(
    gate: &Gate,
    at: DateTime<Utc>,
) -> Option<(DateTime<Utc>, Option<&Departure>)> {
    let horizon = at + Duration::days(3650);
    let mut t = at;
    while t < horizon {
        if let Some(freeze) = gate.freezes.iter().find(|f| f.contains(t)) {
            t = freeze.to;
            continue;
        }
        if gate.departures.is_empty() {
            return Some((t, None));
        }
        if let Some(open) = gate.departures.iter().find(|d| d.is_open(t)) {
            return Some((t, Some(open)));
        }
        t = gate
            .departures
            .iter()
            .filter_map(|d| d.next_open(t))
            .min()?;
    }
    None
}

/// Why `gate` may not promote at `at`, or `None` when it may: `frozen: <reason> until
/// <end>` inside a freeze, `holding for the departure window: opens Tue 09:00 CET` outside
/// every window (the next time it may promote, on the window's own clock).
pub fn hold_reason(gate: &Gate, at: DateTime<Utc>) -> Option<String> {
    if let Some(freeze) = gate.freezes.iter().find(|f| f.contains(at)) {
        return Some(format!(
            "frozen: {} until {}",
            freeze.reason,
            freeze
                .to
                .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
        ));
    }
    if gate.departures.is_empty() || gate.departures.iter().any(|d| d.is_open(at)) {
        return None;
    }
    let opens = match next_departure(gate, at) {
        Some((t, Some(departure))) => {
            let local = t.with_timezone(&departure.timezone);
            let format = if t - at < Duration::days(6) {
                "%a %H:%M %Z"
            } else {
                "%a %Y-%m-%d %H:%M %Z"
            };
            local.format(format).to_string()
        }
        _ => "not within ten years".to_string(),
    };
    Some(format!("holding for the departure window: opens {opens}"))
}

/// The openings of `gate`'s windows that end after `from` and open before `until`, in time
/// order.
pub fn windows(gate: &Gate, from: DateTime<Utc>, until: DateTime<Utc>) -> Vec<Window<'_>> {
    let mut all: Vec<Window<'_>> = gate
        .departures
        .iter()
        .flat_map(|d| d.windows_after(from).take_while(|w| w.opens < until))
        .collect();
    all.sort_by_key(|w| (w.opens, w.closes));
    all
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::clock::{day_name, parse_clock, parse_day, parse_timezone};
    use crate::config::load_str;
    use chrono::Weekday;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn gate(extra: &str) -> Gate {
        let text = format!(
            r#"
slos:
  - name: a
    objective: 99.9
    errors: e
    total: t
gates:
  - name: g
    slos: [a]
    rules:
      - name: r
        when: 'burn_rate("a", "1h") > 14.4'
        then: rollback
{extra}"#
        );
        let config = load_str("gate.yaml", &text).unwrap_or_else(|e| panic!("{e:?}"));
        config.gates[0].clone()
    }

    const BERLIN: &str = r#"    departures:
      - days: [mon, tue, wed, thu]
        from: "09:00"
        to: "16:00"
        timezone: Europe/Berlin
"#;

    #[test]
    fn a_window_follows_the_local_clock_across_dst() {
        let g = gate(BERLIN);
        let d = &g.departures[0];
        // Winter: CET = UTC+1. Tue 2026-12-01.
        assert!(!d.is_open(t("2026-12-01T07:59:59Z")));
        assert!(d.is_open(t("2026-12-01T08:00:00Z")));
        assert!(d.is_open(t("2026-12-01T14:59:59Z")));
        assert!(!d.is_open(t("2026-12-01T15:00:00Z")));
        // Summer: CEST = UTC+2. Tue 2026-07-07.
        assert!(d.is_open(t("2026-07-07T07:00:00Z")));
        assert!(!d.is_open(t("2026-07-07T14:00:00Z")));
        // Friday is not a departure day.
        assert!(!d.is_open(t("2026-12-04T10:00:00Z")));
        // The Monday after the spring change (2027-03-28) opens at 07:00 UTC.
        let w: Vec<_> = d.windows_after(t("2027-03-27T12:00:00Z")).take(1).collect();
        assert_eq!(w[0].opens, t("2027-03-29T07:00:00Z"));
        assert_eq!(w[0].closes, t("2027-03-29T14:00:00Z"));
    }

    #[test]
    fn the_hold_reason_names_the_next_opening_on_the_windows_clock() {
        let g = gate(BERLIN);
        // Thu 2026-12-03 17:00 CET: closed until Mon 09:00 CET.
        assert_eq!(
            hold_reason(&g, t("2026-12-03T16:00:00Z")).as_deref(),
            Some("holding for the departure window: opens Mon 09:00 CET")
        );
        // Mon 2026-12-07 08:30 CET: opens the same morning.
        assert_eq!(
            hold_reason(&g, t("2026-12-07T07:30:00Z")).as_deref(),
            Some("holding for the departure window: opens Mon 09:00 CET")
        );
        assert_eq!(hold_reason(&g, t("2026-12-07T08:00:00Z")), None);
        // A summer Friday: CEST.
        assert_eq!(
            hold_reason(&g, t("2026-07-10T10:00:00Z")).as_deref(),
            Some("holding for the departure window: opens Mon 09:00 CEST")
        );
    }

    #[test]
    fn a_freeze_holds_and_pushes_the_next_opening_past_it() {
        let g = gate(&format!(
            "{BERLIN}    freezes:\n      - from: 2026-12-20T00:00:00Z\n        to: 2027-01-04T00:00:00Z\n        reason: year-end freeze\n"
        ));
        assert_eq!(
            hold_reason(&g, t("2026-12-22T10:00:00Z")).as_deref(),
            Some("frozen: year-end freeze until 2027-01-04T00:00:00Z")
        );
        // Thu 2026-12-17 after closing: the next windows (Mon 21st …) are frozen; the first
        // one after the freeze is Mon 2027-01-04 09:00 CET.
        assert_eq!(
            hold_reason(&g, t("2026-12-17T16:00:00Z")).as_deref(),
            Some("holding for the departure window: opens Mon 2027-01-04 09:00 CET")
        );
        assert_eq!(
            next_departure(&g, t("2026-12-17T16:00:00Z")).map(|(at, _)| at),
            Some(t("2027-01-04T08:00:00Z"))
        );
        // The freeze ends on a Monday at 01:00 CET: 00:00Z is before the window.
        assert_eq!(hold_reason(&g, t("2027-01-04T08:00:00Z")), None);
    }

    #[test]
    fn without_windows_or_freezes_a_gate_may_always_promote() {
        let g = gate("");
        assert_eq!(hold_reason(&g, t("2026-12-25T03:00:00Z")), None);
        assert!(windows(&g, t("2026-12-01T00:00:00Z"), t("2026-12-08T00:00:00Z")).is_empty());
    }

    #[test]
    fn windows_lists_the_openings_in_a_range() {
        let g = gate(BERLIN);
        // From Tue 2026-12-01 10:00Z (open) for a week: Tue, Wed, Thu, Mon, Tue.
        let w = windows(&g, t("2026-12-01T10:00:00Z"), t("2026-12-08T10:00:00Z"));
        let opens: Vec<_> = w.iter().map(|w| w.opens.to_rfc3339()).collect();
        assert_eq!(
            opens,
            [
                "2026-12-01T08:00:00+00:00",
                "2026-12-02T08:00:00+00:00",
                "2026-12-03T08:00:00+00:00",
                "2026-12-07T08:00:00+00:00",
                "2026-12-08T08:00:00+00:00",
            ]
        );
    }

    #[test]
    fn names_and_clock_times_parse_strictly() {
        assert_eq!(parse_day("tue"), Some(Weekday::Tue));
        assert_eq!(parse_day("Tue"), None);
        assert_eq!(parse_day("tues"), None);
        assert_eq!(day_name(Weekday::Sun), "sun");
        assert_eq!(parse_clock("09:00"), NaiveTime::from_hms_opt(9, 0, 0));
        assert_eq!(parse_clock("9:00"), None);
        assert_eq!(parse_clock("24:00"), None);
        assert_eq!(
            parse_timezone("Europe/Berlin"),
            Some(chrono_tz::Europe::Berlin)
        );
        assert_eq!(parse_timezone("Europe/Berlim"), None);
    }
}
