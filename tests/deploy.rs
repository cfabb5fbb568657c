//! The files in `deploy/`: the Grafana dashboard and the Prometheus alert rules read only
//! metrics `gate serve` exports and their PromQL parses; the alert rules pass
//! `promtool check rules`; the systemd unit passes `systemd-analyze verify` where systemd is
//! installed.
//!
//! The exported metric names come from the daemon's own registration code: the test
//! registers the daemon's and the webhook deliverer's metrics in a registry, exactly as
//! `gate serve` does, and reads the names from the exposition text.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use gate_engine::daemon::{Metrics, Registry};
use gate_engine::webhook::WebhookMetrics;
use promql_parser::parser::{self, Expr};
use promql_parser::util::{walk_expr, ExprVisitor};
use serde_json::Value;

fn deploy(path: &str) -> PathBuf {
    common::repo_root().join("deploy").join(path)
}

/// Every series name `gate serve`'s `/metrics` can show (`_total`, `_bucket`, … included),
/// from the registrations in the daemon's and the webhook deliverer's metrics code (families
/// without series yet do not show in an exposition, so a scrape would miss them).
fn exported_metrics() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for file in [
        "gate-engine/src/daemon/metrics.rs",
        "gate-engine/src/webhook/deliver.rs",
    ] {
        let text = std::fs::read_to_string(common::repo_root().join(file)).unwrap();
        for registration in text.split("registry.register(").skip(1) {
            let name = registration
                .split('"')
                .nth(1)
                .expect("a metric name after registry.register(");
            for suffix in ["", "_total", "_bucket", "_sum", "_count"] {
                names.insert(format!("{name}{suffix}"));
            }
        }
    }
    // The names registered are the ones a real registry exposes.
    let mut registry = Registry::default();
    let _daemon = Metrics::register(&mut registry);
    let _webhooks = WebhookMetrics::register(&mut registry);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
        let name = line.split_whitespace().nth(2).unwrap();
        assert!(names.contains(name), "{name} is exported but not found");
    }
    for expected in [
        "gate_train_burn_rate",
        "gate_webhook_outbox_backlog",
        "gate_trains",
    ] {
        assert!(names.contains(expected), "{names:?}");
    }
    names
}

/// The metric names a PromQL expression reads.
fn metric_names(expr: &Expr) -> BTreeSet<String> {
    struct Names(BTreeSet<String>);
    impl ExprVisitor for Names {
        type Error = ();
        fn pre_visit(&mut self, expr: &Expr) -> Result<bool, ()> {
            let vs = match expr {
                Expr::VectorSelector(vs) => Some(vs),
                Expr::MatrixSelector(m) => Some(&m.vs),
                _ => None,
            };
            if let Some(vs) = vs {
                let name = vs.name.clone().or_else(|| {
                    vs.matchers
                        .matchers
                        .iter()
                        .find(|m| m.name == "__name__")
                        .map(|m| m.value.clone())
                });
                self.0.insert(name.unwrap_or_default());
            }
            Ok(true)
        }
    }
    let mut names = Names(BTreeSet::new());
    walk_expr(&mut names, expr).unwrap();
    names.0
}

/// Grafana's variables replaced by values of the same type, so the query parses as PromQL.
fn without_grafana_variables(expr: &str) -> String {
    expr.replace("$__rate_interval", "5m")
        .replace("$__interval", "1m")
        .replace("$__range", "1h")
        .replace("$job", ".*")
}

fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        out.push(panel);
        if let Some(nested) = panel["panels"].as_array() {
            out.extend(nested);
        }
    }
    out
}

#[test]
fn the_dashboard_queries_parse_and_read_only_exported_metrics() {
    let exported = exported_metrics();
    let text = std::fs::read_to_string(deploy("grafana/gate.json")).unwrap();
    let dashboard: Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    assert_eq!(dashboard["uid"], "gate-overview");
    let mut read = BTreeSet::new();
    let mut queries = 0;
    for panel in panels(&dashboard) {
        let title = panel["title"].as_str().unwrap_or("?");
        let targets = panel["targets"].as_array();
        assert!(
            targets.is_some_and(|t| !t.is_empty()),
            "panel `{title}` has no query"
        );
        for target in targets.unwrap() {
            let expr = target["expr"].as_str().expect("a PromQL expr");
            let parsed = parser::parse(&without_grafana_variables(expr))
                .unwrap_or_else(|e| panic!("panel `{title}`: `{expr}` does not parse: {e}"));
            for name in metric_names(&parsed) {
                assert!(
                    exported.contains(&name),
                    "panel `{title}` reads `{name}`, which gate does not export"
                );
                read.insert(name);
            }
            queries += 1;
        }
    }
    assert!(queries >= 10, "{queries} queries");
    // What the dashboard is for: each of these is on it.
    for name in [
        "gate_trains",
        "gate_decisions_total",
        "gate_train_burn_rate",
        "gate_webhook_outbox_backlog",
        "gate_evaluation_cycle_seconds_bucket",
        "gate_prometheus_queries_total",
    ] {
        assert!(read.contains(name), "no panel reads {name}");
    }
}

#[test]
fn the_alert_rules_pass_promtool_and_read_only_exported_metrics() {
    let path = deploy("prometheus/gate-alerts.yaml");
    let out = Command::new(promtool())
        .args(["check", "rules"])
        .arg(&path)
        .output()
        .expect("run promtool");
    assert!(
        out.status.success(),
        "promtool check rules failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let exported = exported_metrics();
    let text = std::fs::read_to_string(&path).unwrap();
    let rules: Value = serde_saphyr::from_str(&text).expect("YAML");
    let mut alerts = BTreeSet::new();
    for group in rules["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            let name = rule["alert"].as_str().expect("only alerting rules");
            let expr = parser::parse(rule["expr"].as_str().unwrap()).unwrap();
            for metric in metric_names(&expr) {
                // `up` is Prometheus' own scrape health of the gate target.
                assert!(
                    metric == "up" || exported.contains(&metric),
                    "alert {name} reads `{metric}`, which gate does not export"
                );
            }
            alerts.insert(name.to_string());
        }
    }
    for expected in [
        "GateDown",
        "GateEvaluationsFailing",
        "GateCyclesSlow",
        "GateWebhookDeadLetters",
        "GatePrometheusErrors",
    ] {
        assert!(alerts.contains(expected), "no {expected} in {alerts:?}");
    }
}

fn promtool() -> PathBuf {
    std::env::var_os("PROMTOOL_BIN").map_or_else(|| PathBuf::from("promtool"), PathBuf::from)
}

#[test]
fn the_systemd_unit_is_hardened_and_verifies() {
    let unit = std::fs::read_to_string(deploy("systemd/gate.service")).unwrap();
    for directive in [
        "DynamicUser=yes",
        "StateDirectory=gate",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "CapabilityBoundingSet=\n",
        "--log-format json",
        "--db ${STATE_DIRECTORY}/gate.db",
    ] {
        assert!(unit.contains(directive), "the unit lacks `{directive}`");
    }
    let Some(analyze) = which("systemd-analyze") else {
        eprintln!("systemd-analyze is not installed: the unit was not verified");
        return;
    };
    // `verify` checks that ExecStart's binary exists: point it at the one under test.
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("gate.service");
    std::fs::write(
        &copy,
        unit.replace("/usr/local/bin/gate", env!("CARGO_BIN_EXE_gate")),
    )
    .unwrap();
    let out = Command::new(analyze)
        .arg("verify")
        .arg(&copy)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "systemd-analyze verify:\n{stderr}");
    let complaints: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("gate.service"))
        .collect();
    assert!(complaints.is_empty(), "{complaints:#?}");
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| Path::new(dir).join(program))
        .find(|p| p.is_file())
}
