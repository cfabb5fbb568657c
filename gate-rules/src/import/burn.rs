//! Multiwindow, multi-burn-rate rules, computed the way Sloth computes its alerts.
//!
//! Sloth (after the Google SRE workbook) alerts on four window pairs. Each pair has a share of
//! the error budget that may be spent within its long window; the burn-rate factor is that
//! share × period ÷ long window:
//!
//! | severity | short | long | budget share | 30d factor | 28d factor |
//! |---|---|---|---|---|---|
//! | page   | 5m  | 1h | 2 %  | 14.4 | 13.44 |
//! | page   | 30m | 6h | 5 %  | 6    | 5.6   |
//! | ticket | 2h  | 1d | 10 % | 3    | 2.8   |
//! | ticket | 6h  | 3d | 10 % | 1    | 0.93… |
//!
//! A pair fires when the burn rate over both windows exceeds the factor (the long window
//! shows the budget is really burning, the short one that it still is). In gate a page pair
//! rolls the train back and a ticket pair pauses it. The factor is computed in exact integer
//! steps (percent × period hours ÷ (100 × window hours)), so 30d gives exactly `14.4`, not
//! `14.399999999999999`; periods other than 30d and 28d use the same formula.

use super::{ImportedRule, ImportedSlo};

/// One window pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowPair {
    /// `page` (rollback) or `ticket` (pause).
    pub severity: Severity,
    /// The short window, Prometheus duration.
    pub short: &'static str,
    /// The long window, Prometheus duration.
    pub long: &'static str,
    /// The long window in hours.
    pub long_hours: u64,
    /// Percent of the error budget the pair allows within its long window.
    pub budget_percent: u64,
}

/// Sloth's alert severities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Page: roll the train back.
    Page,
    /// Ticket: pause the train.
    Ticket,
}

/// Sloth's default window pairs, fastest first.
pub const PAIRS: [WindowPair; 4] = [
    WindowPair {
        severity: Severity::Page,
        short: "5m",
        long: "1h",
        long_hours: 1,
        budget_percent: 2,
    },
    WindowPair {
        severity: Severity::Page,
        short: "30m",
        long: "6h",
        long_hours: 6,
        budget_percent: 5,
    },
    WindowPair {
        severity: Severity::Ticket,
        short: "2h",
        long: "1d",
        long_hours: 24,
        budget_percent: 10,
    },
    WindowPair {
        severity: Severity::Ticket,
        short: "6h",
        long: "3d",
        long_hours: 72,
        budget_percent: 10,
    },
];

/// The burn-rate factor of `pair` for a period of `period_secs` seconds.
pub fn factor(pair: &WindowPair, period_secs: f64) -> f64 {
    let period_hours = period_secs / 3600.0;
    (pair.budget_percent as f64 * period_hours) / (100.0 * pair.long_hours as f64)
}

/// The window-pair rules of `slo` (page pairs and ticket pairs as the SLO asks for them).
pub fn rules(slo: &ImportedSlo) -> Vec<ImportedRule> {
    PAIRS
        .iter()
        .filter(|pair| match pair.severity {
            Severity::Page => slo.page_rules,
            Severity::Ticket => slo.ticket_rules,
        })
        .map(|pair| {
            let factor = factor(pair, slo.period.as_secs_f64());
            let (kind, then) = match pair.severity {
                Severity::Page => ("page", "rollback"),
                Severity::Ticket => ("ticket", "pause"),
            };
            let call = |window: &str| {
                format!(
                    "burn_rate({}, \"{window}\")",
                    serde_json::to_string(&slo.name).unwrap_or_default()
                )
            };
            ImportedRule {
                name: format!("{kind}-{}-{}", pair.long, pair.short),
                comment: vec![format!(
                    "{kind}: {}% of the {} budget within {} ({} × {} h ÷ {} h = {factor}x), \
                     still burning over {}",
                    pair.budget_percent,
                    slo.period,
                    pair.long,
                    pair.budget_percent as f64 / 100.0,
                    slo.period.as_secs_f64() / 3600.0,
                    pair.long_hours,
                    pair.short
                )],
                when: format!(
                    "{} > {factor} && {} > {factor}",
                    call(pair.long),
                    call(pair.short)
                ),
                then,
                for_evaluations: None,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn factors_are_sloths_for_30d_and_28d() {
        let day = 86_400.0;
        let f30: Vec<f64> = PAIRS.iter().map(|p| factor(p, 30.0 * day)).collect();
        assert_eq!(f30, [14.4, 6.0, 3.0, 1.0]);
        let f28: Vec<String> = PAIRS
            .iter()
            .map(|p| factor(p, 28.0 * day).to_string())
            .collect();
        assert_eq!(f28, ["13.44", "5.6", "2.8", "0.9333333333333333"]);
    }
}
