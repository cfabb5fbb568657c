//! Reading another tool's YAML with positions: the config's positioned YAML tree
//! ([`crate::config::yaml`]) plus the file name and line lookups, so every refusal can say
//! `file:line`.

use crate::config::diagnostic::LineIndex;
use crate::config::yaml::{self, Kind, Node};

use super::{ImportError, Input};

/// One parsed input file.
pub(super) struct Doc<'a> {
    pub file: &'a str,
    text: &'a str,
    index: LineIndex,
}

/// A node of a [`Doc`].
#[derive(Clone, Copy)]
pub(super) struct At<'d> {
    pub doc: &'d Doc<'d>,
    pub node: &'d Node,
}

impl<'a> Doc<'a> {
    /// Parses every YAML document of `input`; a syntax error is one [`ImportError`].
    pub fn parse(input: Input<'a>) -> Result<(Doc<'a>, Vec<Node>), ImportError> {
        let index = LineIndex::new(input.text);
        let doc = Doc {
            file: input.file,
            text: input.text,
            index,
        };
        match yaml::parse_documents(input.text, &doc.index) {
            Ok(nodes) => Ok((doc, nodes)),
            Err(e) => Err(ImportError {
                file: input.file.to_string(),
                line: doc.index.line_col(input.text, e.span.start).0,
                construct: "YAML".to_string(),
                reason: e.message,
            }),
        }
    }

    /// The node wrapped for reading.
    pub fn at<'d>(&'d self, node: &'d Node) -> At<'d> {
        At { doc: self, node }
    }
}

impl<'d> At<'d> {
    /// 1-based line of the node.
    pub fn line(&self) -> usize {
        self.doc
            .index
            .line_col(self.doc.text, self.node.span.start)
            .0
    }

    /// The value of `key` in a mapping (the first of any spellings given).
    pub fn get(&self, keys: &[&str]) -> Option<At<'d>> {
        let Kind::Map(entries) = &self.node.kind else {
            return None;
        };
        keys.iter().find_map(|key| {
            entries
                .iter()
                .find(|(k, _)| k.name == *key)
                .map(|(_, v)| self.doc.at(v))
        })
    }

    /// The items of a sequence (none for anything else).
    pub fn items(&self) -> Vec<At<'d>> {
        match &self.node.kind {
            Kind::Seq(items) => items.iter().map(|n| self.doc.at(n)).collect(),
            _ => Vec::new(),
        }
    }

    /// The node as text: strings as they are, numbers and booleans as written.
    pub fn text(&self) -> Option<String> {
        match &self.node.kind {
            Kind::Str(s) => Some(s.clone()),
            Kind::Int(i) => Some(i.to_string()),
            Kind::Float(f) => Some(f.to_string()),
            Kind::Bool => {
                let raw = self
                    .doc
                    .text
                    .get(self.node.span.start..self.node.span.start + self.node.span.len)?;
                Some(raw.trim().to_string())
            }
            _ => None,
        }
    }

    /// The node as a number (YAML numbers, or strings holding one).
    pub fn number(&self) -> Option<f64> {
        match &self.node.kind {
            Kind::Int(i) => Some(*i as f64),
            Kind::Float(f) => Some(*f),
            Kind::Str(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    /// Whether the node is `true`.
    pub fn is_true(&self) -> bool {
        matches!(&self.node.kind, Kind::Bool) && self.text().as_deref() == Some("true")
    }

    /// The string value of `key`, if present and a scalar.
    pub fn str(&self, keys: &[&str]) -> Option<String> {
        self.get(keys).and_then(|v| v.text())
    }

    /// An [`ImportError`] at this node.
    pub fn error(&self, construct: impl Into<String>, reason: impl Into<String>) -> ImportError {
        ImportError {
            file: self.doc.file.to_string(),
            line: self.line(),
            construct: construct.into(),
            reason: reason.into(),
        }
    }
}
