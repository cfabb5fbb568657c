//! Loading: the entry points that run the validation passes in order.
//!
//! [`load_str`] is the whole pipeline: YAML syntax ([`super::yaml`]), then the schema pass
//! ([`super::raw`]), then references, rule expressions and PromQL ([`super::validate`]). A
//! YAML syntax error is the only problem that stops the pipeline: until the text parses there
//! is no tree to check. Every other problem is collected, and [`ConfigError::Invalid`] carries
//! them all, in file order, with the file's text so they can be shown with snippets.
//!
//! [`load_file`] is the one place in `gate-rules` that touches the filesystem.

use std::fmt::Write as _;
use std::path::Path;

pub use super::diagnostic::Diagnostic;
use super::diagnostic::{Sink, Span};
use super::model::Config;
use super::{raw, validate, yaml};

/// A config that could not be loaded: every problem found.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {file}: {source}")]
    Read {
        /// The path.
        file: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file was read but is invalid.
    #[error("{file}: {} error(s) in config", diagnostics.len())]
    Invalid {
        /// The path.
        file: String,
        /// The file's text (for rendering snippets).
        source_text: String,
        /// Every problem, in file order.
        diagnostics: Vec<Diagnostic>,
    },
}

impl ConfigError {
    /// Every problem found (empty for [`ConfigError::Read`]).
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            ConfigError::Read { .. } => &[],
            ConfigError::Invalid { diagnostics, .. } => diagnostics,
        }
    }

    /// One line per problem, `file:line:col: message (hint)`, each ending in a newline;
    /// for [`ConfigError::Read`] the single line `cannot read <file>: <reason>`.
    pub fn render_plain(&self) -> String {
        match self {
            ConfigError::Read { .. } => format!("{self}\n"),
            ConfigError::Invalid { diagnostics, .. } => {
                let mut out = String::new();
                for d in diagnostics {
                    let _ = writeln!(out, "{}", d.render_plain());
                }
                out
            }
        }
    }

    /// One `miette` report per problem, each with the file's snippet under the file's name,
    /// for a graphical handler (`miette::GraphicalReportHandler`).
    pub fn reports(&self) -> Vec<miette::Report> {
        match self {
            ConfigError::Read { .. } => Vec::new(),
            ConfigError::Invalid {
                source_text,
                diagnostics,
                ..
            } => diagnostics
                .iter()
                .map(|d| d.to_report(source_text))
                .collect(),
        }
    }
}

/// As a single `miette` diagnostic: the summary, with every problem as a related diagnostic
/// over the file's text. [`ConfigError::reports`] renders each problem under the file name.
impl miette::Diagnostic for ConfigError {
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        match self {
            ConfigError::Read { .. } => None,
            ConfigError::Invalid { source_text, .. } => Some(source_text),
        }
    }

    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn miette::Diagnostic> + 'a>> {
        match self {
            ConfigError::Read { .. } => None,
            ConfigError::Invalid { diagnostics, .. } => Some(Box::new(
                diagnostics.iter().map(|d| d as &dyn miette::Diagnostic),
            )),
        }
    }
}

/// A valid config and what looks unintended in it.
#[derive(Debug)]
pub struct Checked {
    /// The config.
    pub config: Config,
    /// Things that work, but likely not as the author meant (e.g. a `then: promote` rule,
    /// which does not gate promotion), in file order.
    pub warnings: Vec<Diagnostic>,
}

/// Reads and validates a config file.
pub fn load_file(path: &Path) -> Result<Config, ConfigError> {
    check_file(path).map(|checked| checked.config)
}

/// Reads and validates a config file, keeping its warnings (`gate check`).
pub fn check_file(path: &Path) -> Result<Checked, ConfigError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        file: file.clone(),
        source,
    })?;
    check_str(&file, &text)
}

/// Validates config text; `file` names it in diagnostics.
pub fn load_str(file: &str, text: &str) -> Result<Config, ConfigError> {
    check_str(file, text).map(|checked| checked.config)
}

/// Validates config text, keeping its warnings; `file` names it in diagnostics.
pub fn check_str(file: &str, text: &str) -> Result<Checked, ConfigError> {
    let mut sink = Sink::new(file, text);
    let config = match yaml::parse(text, sink.index()) {
        Err(err) => {
            sink.error(err.span, err.message, err.hint);
            None
        }
        Ok(root) => raw::read(&root, &mut sink).and_then(|raw| validate::validate(&raw, &mut sink)),
    };
    match config {
        Some(config) if sink.is_empty() => Ok(Checked {
            config,
            warnings: sink.take_warnings(),
        }),
        _ => {
            if sink.is_empty() {
                // Every pass that refuses a config reports why; this guards the invariant.
                sink.error(Span::new(0, 0), "the config could not be validated", None);
            }
            Err(ConfigError::Invalid {
                file: file.to_string(),
                source_text: text.to_string(),
                diagnostics: sink.finish(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const VALID: &str = "slos:\n  - name: s\n    objective: 99.9\n    errors: e_total\n    total: t_total\ngates:\n  - &base\n    name: a\n    slos: [s]\n    verify_for: 1h\n  - <<: *base\n    name: b\n";

    #[test]
    fn merge_keys_and_aliases_share_settings() {
        let config = load_str("t.yaml", VALID).expect("valid");
        let names: Vec<&str> = config.gates.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(config.gates[1].verify_for, config.gates[0].verify_for);
        assert_eq!(config.gates[1].slos, ["s"]);
    }

    #[test]
    fn a_config_error_renders_through_miette_with_every_problem() {
        let err = load_str("t.yaml", "slo: []\nslos:\n  - name: s\n    objective: 0\n")
            .expect_err("invalid");
        assert_eq!(err.diagnostics().len(), 4, "{}", err.render_plain());
        let mut out = String::new();
        miette::NarratableReportHandler::new()
            .render_report(&mut out, &err)
            .unwrap();
        for d in err.diagnostics() {
            assert!(
                out.contains(&d.message),
                "{} missing from:\n{out}",
                d.message
            );
        }
        assert!(out.contains("objective: 0"), "snippet missing:\n{out}");

        let mut one = String::new();
        let report = &err.reports()[0];
        miette::NarratableReportHandler::new()
            .render_report(&mut one, report.as_ref())
            .unwrap();
        assert!(
            one.contains("snippet for t.yaml starting at line 1, column 1"),
            "{one}"
        );
        assert!(one.contains("did you mean `slos`?"), "{one}");
    }

    #[test]
    fn an_unreadable_file_names_its_path() {
        let err = load_file(Path::new("/nonexistent/gate.yaml")).expect_err("unreadable");
        assert!(matches!(err, ConfigError::Read { .. }));
        assert!(err
            .render_plain()
            .starts_with("cannot read /nonexistent/gate.yaml: "));
        assert!(err.diagnostics().is_empty());
    }

    /// Checks the invariants of any outcome: never a panic, positions inside the text and
    /// consistent with the span.
    fn check_outcome(text: &str) {
        if let Err(err) = load_str("f.yaml", text) {
            let ConfigError::Invalid { diagnostics, .. } = &err else {
                panic!("unexpected {err}");
            };
            assert!(!diagnostics.is_empty());
            let index = super::super::diagnostic::LineIndex::new(text);
            for d in diagnostics {
                let (start, len) = d.span;
                assert!(start + len <= text.len(), "{d:?}");
                assert!(text.is_char_boundary(start) && text.is_char_boundary(start + len));
                assert_eq!(index.line_col(text, start), (d.line, d.column), "{d:?}");
            }
        }
    }

    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow() {
        let text = format!("slos: {}{}\n", "[".repeat(20_000), "]".repeat(20_000));
        let err = load_str("t.yaml", &text).expect_err("refused");
        assert_eq!(err.diagnostics().len(), 1, "{}", err.render_plain());
    }

    proptest! {
        #[test]
        fn mangled_configs_never_panic(
            cut in 0usize..400,
            len in 0usize..12,
            insert in "[ -~\n]{0,6}",
        ) {
            let base = format!("{VALID}    rules:\n      - name: r\n        when: 'burn_rate(\"s\", \"1h\") > 2 && age() > 60'\n        then: pause\nwebhooks:\n  - name: w\n    url: http://h\n    on: [pause]\n");
            let cut = cut.min(base.len());
            let end = (cut + len).min(base.len());
            let mangled = format!("{}{insert}{}", &base[..cut], &base[end..]);
            check_outcome(&mangled);
        }

        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,80}") {
            check_outcome(&text);
        }
    }
}
