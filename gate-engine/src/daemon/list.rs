//! The train list of `GET /v1/trains`: filtered by lifecycle state and gate, ordered by
//! start time then ID, cut into pages.
//!
//! The cursor is opaque to clients: the start time (unix nanoseconds) and ID of the last
//! train of the page, `"<nanos>.<id>"`. The next page starts strictly after it in the list's
//! order, so trains registered or finished between two pages neither repeat nor shift the
//! others. Each entry carries `worst_burn`, the burn-rate threshold its latest evaluation
//! came closest to (or exceeded most), so a list can show how close each train is to a
//! rule firing without fetching every evaluation; it is computed for the page only. With
//! `evaluation=true` each entry also carries its latest evaluation, so a client that shows
//! every train's evidence (`gate status --format json`) reads the whole fleet in one request.

use chrono::{DateTime, Utc};
use gate_api::{Train, WorstBurn};
use serde::Deserialize;

use super::state::train_body;
use crate::store::{Evidence, Lifecycle, TrainRecord};

/// Largest page a client may ask for (without `limit`, the list is not cut).
pub const MAX_LIMIT: usize = 1000;

/// Which trains a list request asks for, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct ListFilter {
    /// `None`: every state (`all`); `Some(states)`: those states only.
    pub states: Option<Vec<Lifecycle>>,
    /// Only trains of this gate.
    pub gate: Option<String>,
    /// At most this many trains; `None`: all of them.
    pub limit: Option<usize>,
    /// Start after this position.
    pub after: Option<(i64, String)>,
    /// Whether each entry carries its latest evaluation.
    pub evaluation: bool,
}

impl ListFilter {
    /// Parses the query parameters; the error is the message of a `400 invalid_query`.
    pub fn parse(
        state: Option<&str>,
        gate: Option<&str>,
        limit: Option<&str>,
        cursor: Option<&str>,
    ) -> Result<ListFilter, String> {
        let states = match state.unwrap_or("active") {
            "all" => None,
            "active" => Some(
                Lifecycle::ALL
                    .into_iter()
                    .filter(|l| l.is_active())
                    .collect(),
            ),
            list => Some(
                list.split(',')
                    .map(|s| {
                        s.parse::<Lifecycle>().map_err(|_| {
                            format!(
                                "state must be `active`, `all` or states among \
                                 verifying, promoted, paused, rolled_back, done, stopped \
                                 (comma-separated), not `{s}`"
                            )
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            ),
        };
        let limit = match limit {
            None => None,
            Some(text) => match text.parse::<usize>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => Some(n),
                _ => {
                    return Err(format!(
                        "limit must be a whole number from 1 to {MAX_LIMIT}, not `{text}`"
                    ));
                }
            },
        };
        let after = match cursor {
            None | Some("") => None,
            Some(text) => {
                let parsed = text
                    .split_once('.')
                    .and_then(|(nanos, id)| Some((nanos.parse::<i64>().ok()?, id.to_owned())));
                Some(parsed.ok_or_else(|| {
                    format!("cursor `{text}` is not one this API returned as `next_cursor`")
                })?)
            }
        };
        Ok(ListFilter {
            states,
            gate: gate.filter(|g| !g.is_empty()).map(str::to_owned),
            limit,
            after,
            evaluation: false,
        })
    }

    /// The filter with the `evaluation` parameter applied: `true` or `false` (absent: false).
    pub fn with_evaluation(self, evaluation: Option<&str>) -> Result<ListFilter, String> {
        let evaluation = match evaluation {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => {
                return Err(format!(
                    "evaluation must be `true` or `false`, not `{other}`"
                ))
            }
        };
        Ok(ListFilter { evaluation, ..self })
    }

    /// Whether the store must be read: states the daemon does not keep in memory.
    pub fn needs_store(&self) -> bool {
        match &self.states {
            None => true,
            Some(states) => states.iter().any(|s| !s.is_active()),
        }
    }

    fn keeps(&self, r: &TrainRecord) -> bool {
        self.states
            .as_ref()
            .is_none_or(|s| s.contains(&r.lifecycle))
            && self.gate.as_deref().is_none_or(|g| r.has_gate(g))
            && self
                .after
                .as_ref()
                .is_none_or(|(nanos, id)| (position(r), r.id.as_str()) > (*nanos, id.as_str()))
    }
}

fn position(r: &TrainRecord) -> i64 {
    nanos(r.started_at)
}

fn nanos(t: DateTime<Utc>) -> i64 {
    t.timestamp_nanos_opt().unwrap_or(i64::MAX)
}

/// One page of `records` (in list order: start time, then ID) and the cursor of the next.
pub fn page<'a>(
    records: impl IntoIterator<Item = (&'a TrainRecord, bool)>,
    filter: &ListFilter,
) -> (Vec<Train<Evidence>>, Option<String>) {
    let mut kept: Vec<(&TrainRecord, bool)> = records
        .into_iter()
        .filter(|(r, _)| filter.keeps(r))
        .collect();
    kept.sort_by(|(a, _), (b, _)| (position(a), &a.id).cmp(&(position(b), &b.id)));
    let limit = filter.limit.unwrap_or(usize::MAX);
    let more = kept.len() > limit;
    kept.truncate(limit);
    let next = more
        .then(|| {
            kept.last()
                .map(|(r, _)| format!("{}.{}", position(r), r.id))
        })
        .flatten();
    let entries = kept
        .into_iter()
        .map(|(r, evaluating)| Train {
            worst_burn: Some(r.evaluation.as_ref().and_then(worst_burn)),
            ..train_body(r, evaluating, filter.evaluation)
        })
        .collect();
    (entries, next)
}

#[derive(Deserialize)]
struct Report {
    #[serde(default)]
    rules: Vec<Rule>,
}

#[derive(Deserialize)]
struct Rule {
    name: String,
    #[serde(default)]
    values: gate_rules::SignalValues,
    #[serde(default)]
    thresholds: Vec<Threshold>,
}

#[derive(Deserialize)]
struct Threshold {
    signal: String,
    value: f64,
}

/// The burn rate with the highest value-to-threshold ratio among the rules' thresholds.
pub fn worst_burn(evidence: &Evidence) -> Option<WorstBurn> {
    if let Some(report) = evidence.report() {
        return worst_of(report.rules.iter().map(|r| {
            let thresholds = r.thresholds.iter().map(|t| (t.signal.as_str(), t.value));
            (&*r.name, &r.values, thresholds)
        }));
    }
    let report: Report = serde_json::from_str(&evidence.json()).ok()?;
    worst_of(report.rules.iter().map(|r| {
        let thresholds = r.thresholds.iter().map(|t| (t.signal.as_str(), t.value));
        (r.name.as_str(), &r.values, thresholds)
    }))
}

/// [`worst_burn`] over each rule's name, values and thresholds.
fn worst_of<'a, T>(
    rules: impl Iterator<Item = (&'a str, &'a gate_rules::SignalValues, T)>,
) -> Option<WorstBurn>
where
    T: Iterator<Item = (&'a str, f64)>,
{
    let mut worst: Option<(f64, WorstBurn)> = None;
    for (name, values, thresholds) in rules {
        for (signal, threshold) in thresholds {
            if !signal.starts_with("burn_rate(") || threshold <= 0.0 {
                continue;
            }
            let Some(value) = values.get(signal).and_then(|v| v.as_f64()) else {
                continue;
            };
            let ratio = value / threshold;
            if worst.as_ref().is_none_or(|(r, _)| ratio > *r) {
                worst = Some((
                    ratio,
                    WorstBurn {
                        signal: signal.to_owned(),
                        value,
                        threshold,
                        rule: name.to_owned(),
                    },
                ));
            }
        }
    }
    worst.map(|(_, w)| w)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_states_limit_and_cursor() {
        let f = ListFilter::parse(
            Some("paused,rolled_back"),
            Some("checkout"),
            Some("50"),
            Some("17.team/a.1"),
        )
        .unwrap();
        assert_eq!(
            f.states,
            Some(vec![Lifecycle::Paused, Lifecycle::RolledBack])
        );
        assert_eq!(f.gate.as_deref(), Some("checkout"));
        assert_eq!(f.limit, Some(50));
        assert_eq!(f.after, Some((17, "team/a.1".to_owned())));
        assert!(!f.needs_store());
        assert!(ListFilter::parse(Some("all"), None, None, None)
            .unwrap()
            .needs_store());
    }

    #[test]
    fn rejects_bad_parameters_with_the_reason() {
        let e = ListFilter::parse(Some("bogus"), None, None, None).unwrap_err();
        assert!(e.contains("`bogus`"), "{e}");
        assert!(ListFilter::parse(None, None, Some("0"), None)
            .unwrap_err()
            .contains("limit"));
        assert!(ListFilter::parse(None, None, Some("1001"), None).is_err());
        let all = ListFilter::parse(Some("all"), None, None, None).unwrap();
        assert!(!all.evaluation);
        assert!(
            all.clone()
                .with_evaluation(Some("true"))
                .unwrap()
                .evaluation
        );
        assert!(
            !all.clone()
                .with_evaluation(Some("false"))
                .unwrap()
                .evaluation
        );
        assert!(all
            .with_evaluation(Some("yes"))
            .unwrap_err()
            .contains("`true` or `false`"));
        assert!(ListFilter::parse(None, None, None, Some("x"))
            .unwrap_err()
            .contains("cursor"));
    }

    #[test]
    fn pages_follow_the_cursor_without_repeats_and_filter_by_gate() {
        use crate::store::testing::{new_train, t, temp_store};
        let (_dir, store) = temp_store();
        for (i, gate) in [
            (1, "checkout"),
            (2, "payments"),
            (3, "checkout"),
            (4, "checkout"),
        ] {
            let mut train = new_train(&format!("t-{i}"));
            train.gate = gate.to_string();
            train.started_at = Some(t(-100 + i));
            store.register(&train, t(0)).unwrap();
        }
        let records = store.trains(crate::store::TrainFilter::All).unwrap();
        let ids = |filter: &ListFilter| {
            let (entries, next) = page(records.iter().map(|r| (r, true)), filter);
            let ids: Vec<String> = entries.iter().map(|e| e.id.to_string()).collect();
            (ids, next)
        };
        let mut filter = ListFilter::parse(Some("all"), Some("checkout"), Some("2"), None).unwrap();
        let (first, next) = ids(&filter);
        assert_eq!(first, ["t-1", "t-3"]);
        filter =
            ListFilter::parse(Some("all"), Some("checkout"), Some("2"), next.as_deref()).unwrap();
        let (second, next) = ids(&filter);
        assert_eq!((second, next), (vec!["t-4".to_string()], None));
        let everything = ListFilter::parse(Some("all"), None, None, None).unwrap();
        assert_eq!(ids(&everything).0.len(), 4);
        // Without `evaluation=true` the entries leave `evaluation` out; with it, each
        // carries its latest one (`null` before the first).
        let (entries, _) = page(records.iter().map(|r| (r, true)), &everything);
        assert!(entries.iter().all(|e| e.evaluation.is_none()));
        let with = everything.with_evaluation(Some("true")).unwrap();
        let (entries, _) = page(records.iter().map(|r| (r, true)), &with);
        assert!(entries.iter().all(|e| matches!(e.evaluation, Some(None))));
    }

    #[test]
    fn worst_burn_is_the_highest_ratio_to_its_threshold() {
        let evidence = Evidence::from_json(
            r#"{"rules": [
                {"name": "fast", "values": {"burn_rate(\"a\", \"5m\")": 10.0}, "thresholds": [{"signal": "burn_rate(\"a\", \"5m\")", "op": ">", "value": 14.4}]},
                {"name": "slow", "values": {"burn_rate(\"a\", \"1h\")": 5.0, "error_ratio(\"a\", \"1h\")": 9.0}, "thresholds": [{"signal": "burn_rate(\"a\", \"1h\")", "op": ">", "value": 6.0}, {"signal": "error_ratio(\"a\", \"1h\")", "op": ">", "value": 1.0}]}
            ]}"#
                .to_owned(),
        )
        .unwrap();
        let w = worst_burn(&evidence).unwrap();
        assert_eq!(w.rule, "slow");
        assert_eq!(w.value, 5.0);
        assert_eq!(w.threshold, 6.0);
        let none = Evidence::from_json(r#"{"rules": []}"#.to_owned()).unwrap();
        assert_eq!(worst_burn(&none), None);
    }
}
