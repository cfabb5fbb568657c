//! Importing SLOs written for other tools: OpenSLO v1 ([`openslo`]) and Sloth
//! ([`sloth`]) files become a gate config.
//!
//! The converters are pure: the text of each input file (with its name) goes in, the config
//! YAML text comes out — or every construct gate cannot express, each as an [`ImportError`]
//! naming `file:line` and the construct. The `gate import` command reads the files and prints
//! the result; `gate check` validates it like any hand-written config.
//!
//! How it fits together: both readers turn their format into the same [`ImportedSlo`]s
//! (objective, period, the SLI as gate counters, extra alert rules); [`render`] writes the
//! config from them, each SLO with a gate carrying the multiwindow, multi-burn-rate rules of
//! [`burn`]; [`window_query`] rewrites window-templated PromQL into gate's `*_query` form.
//!
//! Design choices a newcomer may question:
//!
//! * **All or nothing.** One refused construct refuses the whole import (every refusal is
//!   reported, not just the first). A config with some SLOs quietly missing would look
//!   complete and gate releases on less than the team wrote down.
//! * **Refuse rather than approximate.** Timeslices budgeting, calendar windows, non-Prometheus
//!   sources, raw ratios without event counts, threshold metrics and Sloth plugins have no
//!   exact gate equivalent; importing them "close enough" would be a different SLO under the
//!   same name.
//! * **Comments carry provenance.** Every SLO, gate and rule in the output names the source
//!   file, line and object it came from, so a reviewer can check each one.

pub mod burn;
mod node;
pub mod openslo;
pub mod sloth;
pub mod window_query;

use std::fmt;
use std::fmt::Write as _;

use crate::duration::PromDuration;

/// A construct that cannot be imported, or input that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {construct}: {reason}")]
#[non_exhaustive]
pub struct ImportError {
    /// The input file, as given.
    pub file: String,
    /// 1-based line of the construct.
    pub line: usize,
    /// What was refused, as written in the input (e.g. `budgetingMethod: Timeslices`).
    pub construct: String,
    /// Why, and what to do instead.
    pub reason: String,
}

/// One input file: its name (shown in comments and errors) and its text.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    /// The file name as the user gave it.
    pub file: &'a str,
    /// Its contents.
    pub text: &'a str,
}

/// An SLO read from another tool, in gate's terms.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportedSlo {
    /// The gate SLO (and gate) name.
    pub name: String,
    /// Where it came from.
    pub origin: Origin,
    /// Percent of events that must be good.
    pub objective: f64,
    /// The error-budget period.
    pub period: PromDuration,
    /// Why this period (e.g. "OpenSLO timeWindow 28d, rolling").
    pub period_note: String,
    /// The SLI as gate counters.
    pub sli: Sli,
    /// Whether the Sloth-style page rules (rollback) are generated.
    pub page_rules: bool,
    /// Whether the Sloth-style ticket rules (pause) are generated.
    pub ticket_rules: bool,
    /// Further rules (OpenSLO burn-rate alert conditions).
    pub rules: Vec<ImportedRule>,
    /// Remarks shown as comments above the SLO (what was read but has no gate meaning).
    pub notes: Vec<String>,
}

/// Where an imported object is in its input: shown as `file:line what`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The input file.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// The object, e.g. "OpenSLO SLO `web-availability`".
    pub what: String,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{} {}", self.file, self.line, self.what)
    }
}

/// An SLI as gate counters: `(field, value)` pairs such as `("errors_query", "…")`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sli {
    /// The bad- or good-events counter: `errors`, `good`, `errors_query` or `good_query`.
    pub events: (&'static str, String),
    /// The total counter: `total` or `total_query`.
    pub total: (&'static str, String),
}

/// A gate rule with its provenance.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportedRule {
    /// Rule name.
    pub name: String,
    /// Comment lines above it.
    pub comment: Vec<String>,
    /// The CEL condition.
    pub when: String,
    /// `rollback` or `pause`.
    pub then: &'static str,
    /// Consecutive evaluations (`for`), when more than one.
    pub for_evaluations: Option<u32>,
}

/// The gate config for `slos`, as YAML with provenance comments; `tool` names the command
/// (`gate import sloth`) and `files` the inputs, for the header.
pub fn render(tool: &str, files: &[&str], slos: &[ImportedSlo]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Imported by `{tool}` from {}.", files.join(", "));
    out.push_str(
        "# gate evaluates every SLO per release train: the queries read the series of the\n\
         # train being gated (label `train_id`), so the instrumented services must carry it.\n",
    );
    out.push_str("slos:\n");
    for slo in slos {
        let _ = writeln!(out, "  # {}", slo.origin);
        for note in &slo.notes {
            let _ = writeln!(out, "  # {note}");
        }
        let _ = writeln!(out, "  - name: {}", quote(&slo.name));
        let _ = writeln!(out, "    objective: {}", slo.objective);
        let _ = writeln!(out, "    period: {}  # {}", slo.period, slo.period_note);
        let (field, value) = &slo.sli.events;
        let _ = writeln!(out, "    {field}: {}", quote(value));
        let (field, value) = &slo.sli.total;
        let _ = writeln!(out, "    {field}: {}", quote(value));
    }
    out.push_str("gates:\n");
    for slo in slos {
        let _ = writeln!(out, "  # {}", slo.origin);
        let _ = writeln!(out, "  - name: {}", quote(&slo.name));
        let _ = writeln!(out, "    slos: [{}]", quote(&slo.name));
        let rules = burn::rules(slo)
            .into_iter()
            .chain(slo.rules.iter().cloned())
            .collect::<Vec<_>>();
        if rules.is_empty() {
            out.push_str(
                "    # no alerts in the source: the gate only holds trains without data\n",
            );
            out.push_str("    rules: []\n");
            continue;
        }
        out.push_str("    rules:\n");
        for rule in rules {
            for line in &rule.comment {
                let _ = writeln!(out, "      # {line}");
            }
            let _ = writeln!(out, "      - name: {}", quote(&rule.name));
            let _ = writeln!(out, "        when: {}", quote(&rule.when));
            let _ = writeln!(out, "        then: {}", rule.then);
            if let Some(n) = rule.for_evaluations {
                let _ = writeln!(out, "        for: {n}");
            }
        }
    }
    out
}

/// A YAML double-quoted scalar (JSON string syntax is valid YAML).
fn quote(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| format!("{text:?}"))
}

/// Checks that SLO names are unique across the inputs: two objects named alike would become
/// one gate SLO.
fn check_unique(slos: &[ImportedSlo], errors: &mut Vec<ImportError>) {
    for (i, slo) in slos.iter().enumerate() {
        if let Some(first) = slos[..i].iter().find(|s| s.name == slo.name) {
            errors.push(ImportError {
                file: slo.origin.file.clone(),
                line: slo.origin.line,
                construct: slo.origin.what.clone(),
                reason: format!(
                    "its gate name `{}` is already taken by {}; rename one of them",
                    slo.name, first.origin
                ),
            });
        }
    }
}

impl fmt::Display for Sli {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}, {}: {}",
            self.events.0, self.events.1, self.total.0, self.total.1
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendered_strings_are_quoted_yaml() {
        assert_eq!(quote("a\"b\nc"), r#""a\"b\nc""#);
    }
}
