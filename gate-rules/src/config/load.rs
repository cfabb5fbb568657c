//! YAML loading and validation passes.

use std::path::Path;

use super::model::Config;

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file name as given.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// Byte offset and length of the offending text in the file.
    pub span: (usize, usize),
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub hint: Option<String>,
}

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
    let _ = (file, text);
    todo!()
}
