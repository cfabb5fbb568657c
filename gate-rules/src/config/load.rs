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

/// Reads and validates a config file.
pub fn load_file(path: &Path) -> Result<Config, ConfigError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        file: file.clone(),
        source,
    })?;
    load_str(&file, &text)
}

/// Validates config text; `file` names it in diagnostics.
pub fn load_str(file: &str, text: &str) -> Result<Config, ConfigError> {
    let mut sink = Sink::new(file, text);
    let config = match yaml::parse(text, sink.index()) {
        Err((message, span, hint)) => {
            sink.error(span, message, hint);
            None
        }
        Ok(root) => raw::read(&root, &mut sink).and_then(|raw| validate::validate(&raw, &mut sink)),
    };
    match config {
        Some(config) if sink.is_empty() => Ok(config),
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
