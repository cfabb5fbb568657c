//! Configuration: the YAML file of SPEC §3, loaded and validated in passes.
//!
//! Loading is multi-pass so that one run reports *every* problem in the file, each with
//! `file:line:column`, the offending text and a hint:
//!
//! 1. YAML syntax and schema (unknown fields with "did you mean", types, durations, ranges);
//! 2. references (SLO names in gates and rules, windows, unique names);
//! 3. CEL parse and type check of every rule's `when` ([`crate::expr`]);
//! 4. PromQL parse of every selector and query ([`crate::query`]).
//!
//! A later pass runs on whatever the earlier passes could make sense of, so a config with a
//! YAML type error in one SLO still gets its rules checked. The validated [`Config`] is only
//! returned when no pass found anything.
//!
//! The files: `yaml` parses the text into a tree of positioned nodes (and maps offsets inside
//! a scalar back to the file); `raw` is pass 1, reading that tree into a spanned raw schema;
//! `validate` runs passes 2–4 and assembles the model (`model`, defaults applied); `load` holds
//! the entry points and [`ConfigError`]; `diagnostic` positions and renders problems (plain
//! lines or `miette`); `effective` writes a [`Config`] back as a config file; `tokens` reads the API tokens file of
//! `gate serve --tokens` with the same YAML layer and diagnostics.

pub(crate) mod diagnostic;
mod effective;
mod load;
mod model;
mod raw;
mod tokens;
mod validate;
pub(crate) mod yaml;

pub use effective::{effective_yaml, REDACTED};
pub use load::{check_file, check_str, load_file, load_str, Checked, ConfigError, Diagnostic};
pub use model::*;
pub use tokens::{tokens_from_str, ApiToken, Scope};
