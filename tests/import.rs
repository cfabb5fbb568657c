//! `gate import` against the upstream examples and against Sloth's own arithmetic.
//!
//! * Every OpenSLO and Sloth example in `fixtures/import/` (copied unmodified from the
//!   upstream repositories) either imports into a config that passes the `gate check` loader,
//!   or is refused with `file:line`, the construct and a reason — and `docs/import.md` says
//!   which, file by file.
//! * The `gate import` command prints a config `gate check` accepts, and refuses with exit 2.
//! * For Sloth's `getting-started.yml`, imported as is, the burn rates `gate eval` computes
//!   on fixture data in a real Prometheus equal Sloth's recording rules
//!   (`slo:sli_error:ratio_rate<window>` = error query ÷ total query over the window) divided
//!   by the error budget, evaluated by that same Prometheus, to 1e-9.

mod common;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::prometheus::TestPrometheus;
use gate_rules::import::{self, Input};
use serde_json::Value;

fn import_dir() -> PathBuf {
    common::repo_root().join("fixtures").join("import")
}

/// Every example file under `fixtures/import/<tool>/`, as paths relative to `fixtures/import`.
fn examples(tool: &str) -> Vec<String> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml")
            ) {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(&import_dir().join(tool), &mut files);
    let mut names: Vec<String> = files
        .iter()
        .map(|p| {
            p.strip_prefix(import_dir())
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

/// `docs/import.md`'s table: example path → `imports` or `refused`.
fn documented_outcomes() -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(common::repo_root().join("docs/import.md")).unwrap();
    text.lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let path = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
            let outcome = cells.get(2)?;
            Some((path.to_string(), outcome.to_string()))
        })
        .collect()
}

#[test]
fn every_upstream_example_imports_or_is_refused_as_documented() {
    let documented = documented_outcomes();
    let mut report = String::new();
    let mut imported = 0;
    let mut mismatches = Vec::new();
    for tool in ["openslo", "sloth"] {
        let files = examples(tool);
        assert!(files.len() >= 10, "{tool}: {files:?}");
        for file in files {
            let text = std::fs::read_to_string(import_dir().join(&file)).unwrap();
            let inputs = [Input {
                file: &file,
                text: &text,
            }];
            let result = match tool {
                "openslo" => import::openslo::import(&inputs),
                _ => import::sloth::import(&inputs, None),
            };
            let outcome = match result {
                Ok(config) => {
                    if let Err(e) = gate_rules::config::load_str(&file, &config) {
                        panic!(
                            "{file}: the imported config fails gate check:\n{}\n{config}",
                            e.render_plain()
                        );
                    }
                    assert!(
                        config.contains(&format!("# Imported by `gate import {tool}` from {file}"))
                    );
                    imported += 1;
                    writeln!(report, "{file}: imports").unwrap();
                    "imports"
                }
                Err(errors) => {
                    assert!(!errors.is_empty(), "{file}");
                    for e in &errors {
                        assert_eq!(e.file, file);
                        let lines = text.lines().count();
                        assert!(e.line >= 1 && e.line <= lines.max(1), "{e}");
                        assert!(!e.construct.is_empty() && e.reason.len() > 10, "{e}");
                        writeln!(report, "{e}").unwrap();
                    }
                    "refused"
                }
            };
            if documented.get(&file).map(String::as_str) != Some(outcome) {
                mismatches.push(format!(
                    "{file}: {outcome}, docs/import.md says {:?}",
                    documented.get(&file)
                ));
            }
        }
    }
    assert!(mismatches.is_empty(), "{mismatches:#?}\n\n{report}");
    assert!(imported >= 5, "only {imported} examples import:\n{report}");
}

#[test]
fn refusals_name_the_line_and_the_construct() {
    let file = "openslo/OpenSLO/examples/budgeting-method/timeslices-slo.yaml";
    let text = std::fs::read_to_string(import_dir().join(file)).unwrap();
    let errors = import::openslo::read(&[Input { file, text: &text }]).unwrap_err();
    let shown: Vec<String> = errors.iter().map(ToString::to_string).collect();
    let budgeting = text
        .lines()
        .position(|l| l.contains("budgetingMethod: Timeslices"))
        .unwrap()
        + 1;
    assert!(
        shown
            .iter()
            .any(|e| e.starts_with(&format!("{file}:{budgeting}: ")) && e.contains("Timeslices")),
        "{shown:#?}"
    );
    assert!(
        shown.iter().any(|e| e.contains("metricSource type Any")),
        "{shown:#?}"
    );

    let file = "sloth/examples/plugin-getting-started.yml";
    let text = std::fs::read_to_string(import_dir().join(file)).unwrap();
    let errors = import::sloth::read(&[Input { file, text: &text }], None).unwrap_err();
    // A mapping is located where its content starts: the line after `plugin:`.
    let plugin = text.lines().position(|l| l.contains("plugin:")).unwrap() + 2;
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!((errors[0].line, errors[0].file.as_str()), (plugin, file));
    assert!(errors[0].construct.contains("sli.plugin"), "{}", errors[0]);
}

#[test]
fn sloth_rules_are_the_multiwindow_multi_burn_rate_alerts() {
    let file = "sloth/examples/getting-started.yml";
    let text = std::fs::read_to_string(import_dir().join(file)).unwrap();
    let config = import::sloth::import(&[Input { file, text: &text }], None).unwrap();
    let loaded = gate_rules::config::load_str(file, &config).unwrap();
    let slo = &loaded.slos[0];
    assert_eq!(slo.name, "myservice-requests-availability");
    assert_eq!(slo.objective, 99.9);
    assert_eq!(slo.period.to_string(), "30d");
    let gate = &loaded.gates[0];
    let rules: Vec<(&str, &str, String)> = gate
        .rules
        .iter()
        .map(|r| (r.name.as_str(), r.when.as_str(), r.then.to_string()))
        .collect();
    let s = "\"myservice-requests-availability\"";
    assert_eq!(
        rules,
        [
            (
                "page-1h-5m",
                format!("burn_rate({s}, \"1h\") > 14.4 && burn_rate({s}, \"5m\") > 14.4"),
                "rollback"
            ),
            (
                "page-6h-30m",
                format!("burn_rate({s}, \"6h\") > 6 && burn_rate({s}, \"30m\") > 6"),
                "rollback"
            ),
            (
                "ticket-1d-2h",
                format!("burn_rate({s}, \"1d\") > 3 && burn_rate({s}, \"2h\") > 3"),
                "pause"
            ),
            (
                "ticket-3d-6h",
                format!("burn_rate({s}, \"3d\") > 1 && burn_rate({s}, \"6h\") > 1"),
                "pause"
            ),
        ]
        .iter()
        .map(|(n, w, t)| (*n, w.as_str(), t.to_string()))
        .collect::<Vec<_>>()
    );
    // 28d: Sloth's 13.44 / 5.6 / 2.8 / 0.93.
    let config =
        import::sloth::import(&[Input { file, text: &text }], Some("28d".parse().unwrap()))
            .unwrap();
    for factor in ["> 13.44", "> 5.6", "> 2.8", "> 0.9333333333333333"] {
        assert!(config.contains(factor), "{factor} in\n{config}");
    }
}

#[test]
fn the_command_prints_a_config_gate_check_accepts_or_refuses_with_exit_2() {
    let gate = env!("CARGO_BIN_EXE_gate");
    let dir = tempfile::tempdir().unwrap();
    let sloth = import_dir().join("sloth/examples/kubernetes-apiserver.yml");
    let out = Command::new(gate)
        .args(["import", "sloth"])
        .arg(&sloth)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let config = dir.path().join("imported.yaml");
    std::fs::write(&config, &out.stdout).unwrap();
    let check = Command::new(gate)
        .args(["check", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(
        check.status.code(),
        Some(0),
        "{}\n{}",
        String::from_utf8_lossy(&check.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains(&format!("# {}:", sloth.display())), "{text}");

    let openslo =
        import_dir().join("openslo/OpenSLO/examples/budgeting-method/ratio-timeslices.yaml");
    let out = Command::new(gate)
        .args(["import", "openslo"])
        .arg(&openslo)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty(), "nothing is printed on refusal");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{}:29:", openslo.display()))
            && stderr.contains("RatioTimeslices"),
        "{stderr}"
    );
}

// ---------------------------------------------------------------------------------------------
// Burn rates: gate against Sloth's recording rules, in one Prometheus.

/// The evaluation time: 2026-11-01T12:00:00Z.
const T: i64 = 1_793_534_400;
const STEP: i64 = 15;
const DAYS: i64 = 4;

/// Requests per minute by code at `t` seconds before T: a steady service whose errors grow
/// in steps, so every window sees a different error ratio.
fn per_minute(code: u16, ago: i64) -> u64 {
    match code {
        200 => 600,
        429 => 1,
        500 if ago <= 3 * 60 => 120,
        500 if ago <= 20 * 60 => 30,
        500 if ago <= 90 * 60 => 3,
        500 if ago <= 26 * 3600 => 1,
        _ => 0,
    }
}

/// OpenMetrics for the `http_request_duration_seconds_count` counter of Sloth's example, for
/// train `t-1`, every 15 s over 4 days up to T.
fn sloth_example_data() -> String {
    let mut out = String::new();
    out.push_str("# TYPE http_request_duration_seconds_count unknown\n");
    for code in [200u16, 429, 500] {
        let mut count = 0.0f64;
        let mut t = T - DAYS * 86_400;
        while t <= T {
            writeln!(
                out,
                "http_request_duration_seconds_count{{code=\"{code}\",job=\"myservice\",train_id=\"t-1\"}} {count} {t}"
            )
            .unwrap();
            count += per_minute(code, T - t) as f64 * STEP as f64 / 60.0;
            t += STEP;
        }
    }
    out.push_str("# EOF\n");
    out
}

fn instant_query(prometheus: &str, expr: &str) -> f64 {
    let url = format!("{prometheus}/api/v1/query");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let body: Value = runtime.block_on(async {
        reqwest::Client::new()
            .post(&url)
            .form(&[("query", expr), ("time", &T.to_string())])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    });
    let result = &body["data"]["result"];
    assert_eq!(result.as_array().map(Vec::len), Some(1), "{expr}: {body}");
    result[0]["value"][1].as_str().unwrap().parse().unwrap()
}

#[test]
fn gate_burn_rates_equal_sloths_recording_rules_in_a_real_prometheus() {
    let prometheus = TestPrometheus::start_with(|dir| {
        let path = dir.join("sloth-example.om");
        std::fs::write(&path, sloth_example_data()).unwrap();
        vec![path]
    });
    let file = "sloth/examples/getting-started.yml";
    let spec = std::fs::read_to_string(import_dir().join(file)).unwrap();
    let config = import::sloth::import(&[Input { file, text: &spec }], None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gate.yaml");
    std::fs::write(
        &path,
        format!("prometheus:\n  url: {}\n{config}", prometheus.url()),
    )
    .unwrap();

    let out = Command::new(env!("CARGO_BIN_EXE_gate"))
        .args(["eval", "--config"])
        .arg(&path)
        .args([
            "--gate",
            "myservice-requests-availability",
            "--train",
            "t-1",
        ])
        .args(["--started-at", &(T - DAYS * 86_400).to_string()])
        .args(["--at", &T.to_string(), "--format", "json"])
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "gate eval printed no report: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            prometheus.log()
        )
    });
    let rates = &report["signals"]["burn_rate"]["myservice-requests-availability"];

    // Sloth's SLI recording rule, as `sloth generate` writes it for this spec.
    let error_query = r#"sum(rate(http_request_duration_seconds_count{job="myservice",code=~"(5..|429)"}[{{.window}}]))"#;
    let total_query =
        r#"sum(rate(http_request_duration_seconds_count{job="myservice"}[{{.window}}]))"#;
    let budget = 1.0 - 99.9 / 100.0;
    let mut distinct = Vec::new();
    for window in ["5m", "30m", "1h", "2h", "6h", "1d", "3d"] {
        let sloth = format!(
            "({})\n/\n({})",
            error_query.replace("{{.window}}", window),
            total_query.replace("{{.window}}", window)
        );
        let expected = instant_query(prometheus.url(), &sloth) / budget;
        let gate = rates[window]
            .as_f64()
            .unwrap_or_else(|| panic!("no burn rate for {window} in {report:#}"));
        assert!(
            (gate - expected).abs() <= 1e-9 * expected.abs().max(1.0),
            "{window}: gate {gate} ≠ Sloth {expected}"
        );
        distinct.push(expected);
    }
    // The data makes the windows differ, so a mix-up of windows would show.
    distinct.dedup_by(|a, b| (*a - *b).abs() < 1e-6);
    assert_eq!(distinct.len(), 7, "{distinct:?}");
}
