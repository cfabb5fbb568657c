//! Sloth specs → gate SLOs: `version: prometheus/v1` files and the Kubernetes
//! `PrometheusServiceLevel` resource (`apiVersion: sloth.slok.dev/v1`, the same spec with
//! camelCase keys).
//!
//! Each SLO becomes a gate SLO named like Sloth's SLO ID, `<service>-<name>`, with its
//! `objective`, the period (Sloth's default 30d, or the one given), and its event queries
//! rewritten by [`super::window_query`]. Its gate gets Sloth's page and ticket window pairs
//! ([`super::burn`]) unless the spec disables that alert. Refused, each with its line: raw
//! error-ratio SLIs (no event counts), SLI plugins and SLO plugins (Go code gate cannot run),
//! Sloth's `AlertWindows` (custom windows), OpenSLO documents (use `gate import openslo`).

use super::node::{At, Doc};
use super::{check_unique, render, window_query, ImportError, ImportedSlo, Input, Origin, Sli};
use crate::duration::PromDuration;

/// The period Sloth uses when it is not told otherwise.
pub const DEFAULT_PERIOD: &str = "30d";

/// The gate config for the Sloth specs in `inputs`, with `period` as the SLO period
/// (Sloth's `--default-slo-period`; `None`: 30d).
pub fn import(
    inputs: &[Input<'_>],
    period: Option<PromDuration>,
) -> Result<String, Vec<ImportError>> {
    let slos = read(inputs, period)?;
    let files: Vec<&str> = inputs.iter().map(|i| i.file).collect();
    Ok(render("gate import sloth", &files, &slos))
}

/// The SLOs of the Sloth specs in `inputs`, or every construct that cannot be imported.
pub fn read(
    inputs: &[Input<'_>],
    period: Option<PromDuration>,
) -> Result<Vec<ImportedSlo>, Vec<ImportError>> {
    let (period, period_note) = match period {
        Some(p) => (
            p,
            "the period given to `gate import sloth --period`".to_string(),
        ),
        None => (
            DEFAULT_PERIOD.parse().expect("a valid duration"),
            "Sloth's default SLO period".to_string(),
        ),
    };
    let mut slos = Vec::new();
    let mut errors = Vec::new();
    for input in inputs {
        let (doc, nodes) = match Doc::parse(*input) {
            Ok(parsed) => parsed,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        if nodes.is_empty() {
            errors.push(ImportError {
                file: input.file.to_string(),
                line: 1,
                construct: "file".to_string(),
                reason: "no YAML document in it".to_string(),
            });
        }
        for node in &nodes {
            let root = doc.at(node);
            match spec_of(root) {
                Ok(spec) => read_spec(spec, period, &period_note, &mut slos, &mut errors),
                Err(e) => errors.push(e),
            }
        }
    }
    check_unique(&slos, &mut errors);
    if errors.is_empty() {
        Ok(slos)
    } else {
        Err(errors)
    }
}

/// The Sloth spec of a document: the root of a `prometheus/v1` file, or the `spec` of a
/// `PrometheusServiceLevel`.
fn spec_of(root: At<'_>) -> Result<At<'_>, ImportError> {
    if let Some(version) = root.get(&["version"]) {
        return match version.text().as_deref() {
            Some("prometheus/v1") => Ok(root),
            other => Err(version.error(
                format!("version: {}", other.unwrap_or("?")),
                "gate imports Sloth's `prometheus/v1` specs",
            )),
        };
    }
    let api = root.str(&["apiVersion"]).unwrap_or_default();
    let kind = root.str(&["kind"]).unwrap_or_default();
    if api.starts_with("openslo/") {
        return Err(root.error(
            format!("apiVersion: {api}"),
            "an OpenSLO document: import OpenSLO v1 with `gate import openslo`",
        ));
    }
    if api.starts_with("sloth.slok.dev/") {
        return match kind.as_str() {
            "PrometheusServiceLevel" => root
                .get(&["spec"])
                .ok_or_else(|| root.error("kind: PrometheusServiceLevel", "it has no `spec`")),
            "AlertWindows" => Err(root.error(
                "kind: AlertWindows",
                "custom alert windows are not imported: gate's rules use Sloth's default \
                 window pairs (5m/1h, 30m/6h, 2h/1d, 6h/3d) with factors for the SLO period",
            )),
            other => Err(root.error(format!("kind: {other}"), "not a Sloth SLO spec")),
        };
    }
    Err(root.error(
        "document",
        "not a Sloth spec: expected `version: prometheus/v1` or \
         `apiVersion: sloth.slok.dev/v1` with `kind: PrometheusServiceLevel`",
    ))
}

fn read_spec(
    spec: At<'_>,
    period: PromDuration,
    period_note: &str,
    slos: &mut Vec<ImportedSlo>,
    errors: &mut Vec<ImportError>,
) {
    if let Some(plugins) = spec.get(&["slo_plugins", "sloPlugins"]) {
        errors.push(plugins.error(
            "slo_plugins",
            "Sloth SLO plugins change the generated rules in Go code that gate cannot run",
        ));
    }
    let service = spec.str(&["service"]).unwrap_or_default();
    let Some(list) = spec.get(&["slos"]) else {
        errors.push(spec.error("slos", "the spec has no SLOs"));
        return;
    };
    for slo in list.items() {
        match read_slo(slo, &service, period, period_note) {
            Ok(imported) => slos.push(imported),
            Err(mut e) => errors.append(&mut e),
        }
    }
}

fn read_slo(
    slo: At<'_>,
    service: &str,
    period: PromDuration,
    period_note: &str,
) -> Result<ImportedSlo, Vec<ImportError>> {
    let name = slo.str(&["name"]).unwrap_or_default();
    let what = format!("Sloth SLO `{name}` of service `{service}`");
    let mut errors = Vec::new();
    if let Some(plugins) = slo.get(&["plugins"]) {
        errors.push(plugins.error(
            format!("{what}: plugins"),
            "Sloth SLO plugins change the generated rules in Go code that gate cannot run",
        ));
    }
    let objective = slo.get(&["objective"]).and_then(|o| o.number());
    let objective = match objective {
        Some(o) if o > 0.0 && o < 100.0 => Some(o),
        Some(o) => {
            errors.push(slo.get(&["objective"]).unwrap_or(slo).error(
                format!("{what}: objective {o}"),
                "gate needs an objective strictly between 0 and 100 (100 leaves no error budget)",
            ));
            None
        }
        None => {
            errors.push(slo.error(format!("{what}: objective"), "missing or not a number"));
            None
        }
    };
    let sli = read_sli(slo, &what).map_err(|e| errors.push(e)).ok();
    let alerting = slo.get(&["alerting"]);
    let enabled = |keys: &[&str]| {
        !alerting
            .and_then(|a| a.get(keys))
            .and_then(|alert| alert.get(&["disable"]))
            .is_some_and(|d| d.is_true())
    };
    let mut notes = Vec::new();
    if let Some(description) = slo.str(&["description"]) {
        notes.push(description.lines().collect::<Vec<_>>().join(" "));
    }
    match (errors.is_empty(), objective, sli) {
        (true, Some(objective), Some(sli)) => Ok(ImportedSlo {
            name: if service.is_empty() {
                name.clone()
            } else {
                format!("{service}-{name}")
            },
            origin: Origin {
                file: slo.doc.file.to_string(),
                line: slo.line(),
                what,
            },
            objective,
            period,
            period_note: period_note.to_string(),
            sli,
            page_rules: enabled(&["page_alert", "pageAlert"]),
            ticket_rules: enabled(&["ticket_alert", "ticketAlert"]),
            rules: Vec::new(),
            notes,
        }),
        _ => Err(errors),
    }
}

fn read_sli(slo: At<'_>, what: &str) -> Result<Sli, ImportError> {
    let Some(sli) = slo.get(&["sli"]) else {
        return Err(slo.error(format!("{what}: sli"), "the SLO has no `sli`"));
    };
    if let Some(raw) = sli.get(&["raw"]) {
        return Err(raw.error(
            format!("{what}: sli.raw"),
            "a raw error ratio has no event counts; gate needs error (or good) and total \
             events to weigh trains and test significance: use `sli.events`",
        ));
    }
    if let Some(plugin) = sli.get(&["plugin"]) {
        return Err(plugin.error(
            format!(
                "{what}: sli.plugin {}",
                plugin.str(&["id"]).unwrap_or_default()
            ),
            "Sloth SLI plugins build their queries in Go code that gate cannot run: write the \
             queries as `sli.events`",
        ));
    }
    let Some(events) = sli.get(&["events"]) else {
        return Err(sli.error(format!("{what}: sli"), "no `events` SLI"));
    };
    let query = |keys: &[&str]| -> Result<String, ImportError> {
        let node = events
            .get(keys)
            .ok_or_else(|| events.error(format!("{what}: sli.events.{}", keys[0]), "missing"))?;
        let text = node.text().unwrap_or_default();
        window_query::convert(&text)
            .map_err(|reason| node.error(format!("{what}: sli.events.{}", keys[0]), reason))
    };
    let errors_query = query(&["error_query", "errorQuery"])?;
    let total_query = query(&["total_query", "totalQuery"])?;
    Ok(Sli {
        events: ("errors_query", errors_query),
        total: ("total_query", total_query),
    })
}
