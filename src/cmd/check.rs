//! `gate check`: validate a config file, never querying anything.
//!
//! Loading is `gate_rules::config::load_file`, which runs every validation pass and collects
//! every problem. This command only decides how to show the outcome:
//!
//! * valid: one summary line on stdout (`ok: gate.yaml: 1 SLOs, 1 gates, 4 rules, 1 webhooks`),
//!   or with `--effective` the whole config with defaults applied, as YAML that loads again;
//!   what works but likely not as meant (a `then: promote` rule) as one
//!   `file:line:col: warning: message (hint)` line each on stderr; exit 0;
//! * invalid: every problem on stderr — drawn by `miette` (snippet, label, hint) when stderr is
//!   a terminal, else one stable `file:line:col: message (hint)` line each, which scripts and
//!   CI logs can grep — then `N error(s)`; exit 2;
//! * unreadable: the path and the reason; exit 2 (it is a usage error, not an internal one).
//!
//! The rendering is a pure function of the outcome ([`check`]) so it is tested without a
//! terminal; [`run`] only writes it out.

use std::io::{IsTerminal, Write};
use std::path::Path;

use gate_rules::config::{self, Config, ConfigError};

use crate::exit;

/// Runs `gate check`; returns the exit code (0 valid, 2 invalid or unreadable).
pub fn run(config: &Path, effective: bool) -> anyhow::Result<i32> {
    let fancy = std::io::stderr().is_terminal();
    let outcome = check(config, effective, fancy);
    if !outcome.stdout.is_empty() {
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(outcome.stdout.as_bytes())?;
        stdout.flush()?;
    }
    if !outcome.stderr.is_empty() {
        let mut stderr = std::io::stderr().lock();
        stderr.write_all(outcome.stderr.as_bytes())?;
        stderr.flush()?;
    }
    Ok(outcome.code)
}

/// What `gate check` prints and returns.
#[derive(Debug)]
struct Outcome {
    code: i32,
    stdout: String,
    stderr: String,
}

fn check(path: &Path, effective: bool, fancy: bool) -> Outcome {
    match config::check_file(path) {
        Ok(checked) => Outcome {
            code: exit::OK,
            stdout: if effective {
                config::effective_yaml(&checked.config)
            } else {
                summary(path, &checked.config)
            },
            stderr: checked
                .warnings
                .iter()
                .map(|w| {
                    let (file, line, column) = (&w.file, w.line, w.column);
                    match &w.hint {
                        Some(hint) => {
                            format!("{file}:{line}:{column}: warning: {} ({hint})\n", w.message)
                        }
                        None => format!("{file}:{line}:{column}: warning: {}\n", w.message),
                    }
                })
                .collect(),
        },
        Err(err) => Outcome {
            code: exit::USAGE,
            stdout: String::new(),
            stderr: render_errors(&err, fancy),
        },
    }
}

fn summary(path: &Path, config: &Config) -> String {
    let rules: usize = config.gates.iter().map(|g| g.rules.len()).sum();
    format!(
        "ok: {}: {} SLOs, {} gates, {} rules, {} webhooks\n",
        path.display(),
        config.slos.len(),
        config.gates.len(),
        rules,
        config.webhooks.len()
    )
}

pub(crate) fn render_errors(err: &ConfigError, fancy: bool) -> String {
    let diagnostics = err.diagnostics();
    if diagnostics.is_empty() {
        return format!("error: {err}\n");
    }
    let mut out = String::new();
    if fancy {
        let handler = miette::GraphicalReportHandler::new();
        for report in err.reports() {
            if handler.render_report(&mut out, report.as_ref()).is_err() {
                out.push_str(&report.to_string());
            }
            out.push('\n');
        }
    } else {
        out.push_str(&err.render_plain());
    }
    out.push_str(&format!("{} error(s)\n", diagnostics.len()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/examples")
            .join(name)
    }

    fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> std::path::PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn a_valid_config_prints_one_summary_line() {
        let path = example("gate.yaml");
        let outcome = check(&path, false, false);
        assert_eq!(outcome.code, 0, "{}", outcome.stderr);
        assert_eq!(
            outcome.stdout,
            format!(
                "ok: {}: 1 SLOs, 1 gates, 4 rules, 1 webhooks\n",
                path.display()
            )
        );
        assert_eq!(outcome.stderr, "");
    }

    #[test]
    fn effective_never_shows_header_values() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "prometheus:\n  headers: {{Authorization: Basic czNjcmV0, X-Scope-OrgID: tenant-7}}\n{}",
            std::fs::read_to_string(example("minimal.yaml")).unwrap()
        );
        let outcome = check(&write(&dir, "secret.yaml", &text), true, false);
        assert_eq!(outcome.code, 0, "{}", outcome.stderr);
        assert!(!outcome.stdout.contains("czNjcmV0"), "{}", outcome.stdout);
        assert!(!outcome.stdout.contains("tenant-7"), "{}", outcome.stdout);
        assert!(
            outcome.stdout.contains("Authorization: <redacted>"),
            "{}",
            outcome.stdout
        );
    }

    #[test]
    fn effective_prints_defaults_as_yaml_that_loads_again() {
        let outcome = check(&example("minimal.yaml"), true, false);
        assert_eq!(outcome.code, 0, "{}", outcome.stderr);
        for default in [
            "url: http://127.0.0.1:9090",
            "train_label: train_id",
            "verify_for: 30m",
            "on_inconclusive: pause",
            "min_requests: 100",
        ] {
            assert!(
                outcome.stdout.contains(default),
                "{default} missing:\n{}",
                outcome.stdout
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "effective.yaml", &outcome.stdout);
        let again = check(&path, true, false);
        assert_eq!(again.code, 0, "{}", again.stderr);
        assert_eq!(again.stdout, outcome.stdout);
    }

    #[test]
    fn an_invalid_config_lists_every_error_then_the_count() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            &dir,
            "bad.yaml",
            "slo: []\nslos:\n  - name: a\n    objective: 100\n    errors: e\n    total: t\n",
        );
        let outcome = check(&path, false, false);
        assert_eq!(outcome.code, 2);
        assert_eq!(outcome.stdout, "");
        let file = path.display();
        assert_eq!(
            outcome.stderr,
            format!(
                "{file}:1:1: unknown field `slo` at the top level (did you mean `slos`?)\n\
                 {file}:4:16: `objective` must be between 0 and 100 (exclusive), got 100 \
                 (an objective of 100 leaves no error budget; use e.g. 99.9)\n\
                 2 error(s)\n"
            )
        );
    }

    #[test]
    fn the_terminal_rendering_shows_the_snippet_and_the_hint() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "bad.yaml", "slo: []\n");
        let outcome = check(&path, false, true);
        assert_eq!(outcome.code, 2);
        let text = &outcome.stderr;
        assert!(text.contains("bad.yaml:1:1"), "{text}");
        assert!(text.contains("slo: []"), "snippet missing: {text}");
        assert!(
            text.contains("did you mean `slos`?"),
            "hint missing: {text}"
        );
        assert!(text.ends_with("1 error(s)\n"), "{text}");
    }

    #[test]
    fn a_promote_rule_is_a_warning_not_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            &dir,
            "promote.yaml",
            "slos:\n  - name: a\n    objective: 99\n    errors: e\n    total: t\ngates:\n  - name: g\n    slos: [a]\n    rules:\n      - name: old-enough\n        when: age() > 600\n        then: promote\n",
        );
        let outcome = check(&path, false, false);
        assert_eq!(outcome.code, 0, "{}", outcome.stderr);
        assert!(outcome.stdout.starts_with("ok: "), "{}", outcome.stdout);
        assert_eq!(
            outcome.stderr,
            format!(
                "{}:12:15: warning: rule `old-enough` (`then: promote`) does not gate promotion: \
                 a train promotes after `verify_for` when no rollback or pause rule fires and the \
                 evidence is conclusive, whether or not this rule holds (to hold promotion until \
                 a condition holds, write its negation as a `then: pause` rule)\n",
                path.display()
            )
        );
    }

    #[test]
    fn an_unreadable_file_is_a_usage_error_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing.yaml");
        let outcome = check(&path, false, false);
        assert_eq!(outcome.code, 2);
        assert!(
            outcome.stderr.starts_with("error: cannot read "),
            "{}",
            outcome.stderr
        );
        assert!(
            outcome.stderr.contains("missing.yaml"),
            "{}",
            outcome.stderr
        );
    }
}
