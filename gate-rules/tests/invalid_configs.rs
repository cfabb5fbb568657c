//! Every broken config in `fixtures/invalid/` against its expected errors.
//!
//! Each `NN-name.yaml` has a `NN-name.expected` holding the exact plain rendering of its
//! errors (`file:line:col: message (hint)`, one per line), with the file named by its base name.
//! The `.expected` files are the specification of gate's config messages: review every change.
//! `GATE_BLESS=1 cargo test -p gate-rules --test invalid_configs` rewrites them from the
//! current output.

use std::path::{Path, PathBuf};

use gate_rules::config::{load_str, ConfigError};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/invalid")
}

fn cases() -> Vec<PathBuf> {
    let mut cases: Vec<PathBuf> = std::fs::read_dir(fixtures())
        .expect("fixtures/invalid exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    cases.sort();
    cases
}

fn errors_of(path: &Path) -> String {
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let text = std::fs::read_to_string(path).expect("fixture readable");
    match load_str(&name, &text) {
        Ok(_) => panic!("{name} loaded without errors"),
        Err(err @ ConfigError::Invalid { .. }) => err.render_plain(),
        Err(other) => panic!("{name}: unexpected error {other}"),
    }
}

#[test]
fn every_invalid_config_reports_exactly_its_expected_errors() {
    let bless = std::env::var_os("GATE_BLESS").is_some_and(|v| v == "1");
    let cases = cases();
    assert!(cases.len() >= 18, "only {} invalid configs", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let actual = errors_of(case);
        let expected_path = case.with_extension("expected");
        if bless {
            std::fs::write(&expected_path, &actual).expect("write .expected");
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path)
            .unwrap_or_else(|_| panic!("missing {}", expected_path.display()));
        if actual != expected {
            failures.push(format!(
                "{}\n--- expected\n{expected}--- actual\n{actual}",
                case.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_expected_file_has_its_config() {
    for entry in std::fs::read_dir(fixtures()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "expected") {
            assert!(
                path.with_extension("yaml").exists(),
                "{} has no config",
                path.display()
            );
        }
    }
}

#[test]
fn three_mistakes_are_three_errors() {
    let path = fixtures().join("19-three-errors.yaml");
    let rendered = errors_of(&path);
    let lines: Vec<&str> = rendered.lines().collect();
    assert_eq!(lines.len(), 3, "{rendered}");
    assert!(lines[0].contains("`period`"), "{rendered}");
    assert!(lines[1].contains("`verfiy_for`"), "{rendered}");
    assert!(lines[2].contains("checkout-availabilty"), "{rendered}");
}

#[test]
fn a_syntax_error_is_one_error_with_its_position() {
    let rendered = errors_of(&fixtures().join("01-yaml-syntax.yaml"));
    assert_eq!(rendered.lines().count(), 1, "{rendered}");
    assert!(rendered.starts_with("01-yaml-syntax.yaml:9:"), "{rendered}");
}
