//! Config diagnostics: one problem with its position, and the two ways to show it.
//!
//! Every validation pass reports through a [`Sink`], which turns a byte span of the file into
//! `line:column` and keeps the problems. A [`Diagnostic`] renders two ways:
//!
//! * plainly, one stable line `file:line:col: message (hint)` ([`Diagnostic::render_plain`]) —
//!   for tests, logs and anything that is not a terminal;
//! * with `miette` (snippet, a label under the offending text, the hint as help): a
//!   [`Diagnostic`] implements [`miette::Diagnostic`] and [`Diagnostic::to_report`] attaches
//!   the file's text under its name so the snippet header reads `file:line:col`.
//!
//! Columns count characters, not bytes, so a line with `é` before the error still points at
//! the right place in an editor; spans stay in bytes because that is what miette slices.

use std::fmt;

use miette::{LabeledSpan, NamedSource};

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

impl Diagnostic {
    /// The stable one-line form: `file:line:col: message (hint)`.
    pub fn render_plain(&self) -> String {
        match &self.hint {
            Some(hint) => format!(
                "{}:{}:{}: {} ({})",
                self.file, self.line, self.column, self.message, hint
            ),
            None => format!(
                "{}:{}:{}: {}",
                self.file, self.line, self.column, self.message
            ),
        }
    }

    /// A `miette` report of this problem over `source_text` (the whole file), named after
    /// [`Diagnostic::file`], ready for a graphical or narratable handler.
    pub fn to_report(&self, source_text: &str) -> miette::Report {
        miette::Report::new(self.clone())
            .with_source_code(NamedSource::new(&self.file, source_text.to_string()))
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Diagnostic {}

impl miette::Diagnostic for Diagnostic {
    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.hint
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let label = LabeledSpan::new_primary_with_span(Some(self.message.clone()), self.span);
        Some(Box::new(std::iter::once(label)))
    }
}

/// Byte offset ↔ line/column conversions for one text.
#[derive(Debug, Clone)]
pub(crate) struct LineIndex {
    /// Byte offset where each line starts.
    starts: Vec<usize>,
}

impl LineIndex {
    pub(crate) fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { starts }
    }

    /// 1-based line and character column of a byte offset (clamped to the text).
    pub(crate) fn line_col(&self, text: &str, offset: usize) -> (usize, usize) {
        let offset = floor_char_boundary(text, offset.min(text.len()));
        let line = self.starts.partition_point(|&s| s <= offset).max(1);
        let start = self.starts[line - 1];
        let column = text[start..offset].chars().count() + 1;
        (line, column)
    }

    /// The byte offset of a 1-based line and character column (clamped to the text).
    pub(super) fn offset(&self, text: &str, line: usize, column: usize) -> usize {
        let Some(&start) = self.starts.get(line.max(1) - 1) else {
            return text.len();
        };
        let rest = &text[start..];
        let line_end = rest.find('\n').unwrap_or(rest.len());
        rest[..line_end]
            .char_indices()
            .nth(column.max(1) - 1)
            .map_or(start + line_end, |(i, _)| start + i)
    }
}

fn floor_char_boundary(text: &str, mut offset: usize) -> usize {
    while offset > 0 && !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

/// A byte range of the config text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Span {
    /// Byte offset of the first byte.
    pub start: usize,
    /// Length in bytes (0 for a point, e.g. where a missing value should be).
    pub len: usize,
}

impl Span {
    pub(super) fn new(start: usize, len: usize) -> Self {
        Span { start, len }
    }
}

/// Collects the problems of one file, in the order found; [`Sink::finish`] sorts them into
/// file order.
#[derive(Debug)]
pub(super) struct Sink<'t> {
    file: String,
    text: &'t str,
    index: LineIndex,
    diagnostics: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
}

impl<'t> Sink<'t> {
    pub(super) fn new(file: &str, text: &'t str) -> Self {
        Sink {
            file: file.to_string(),
            text,
            index: LineIndex::new(text),
            diagnostics: Vec::new(),
            warnings: Vec::new(),
        }
    }

    pub(super) fn text(&self) -> &'t str {
        self.text
    }

    pub(super) fn index(&self) -> &LineIndex {
        &self.index
    }

    /// Records a problem at `span`.
    pub(super) fn error(&mut self, span: Span, message: impl Into<String>, hint: Option<String>) {
        let diagnostic = self.diagnostic(span, message.into(), hint);
        self.diagnostics.push(diagnostic);
    }

    /// Records something that works, but likely not as the author meant, at `span`: it does
    /// not make the config invalid.
    pub(super) fn warn(&mut self, span: Span, message: impl Into<String>, hint: Option<String>) {
        let diagnostic = self.diagnostic(span, message.into(), hint);
        self.warnings.push(diagnostic);
    }

    fn diagnostic(&self, span: Span, message: String, hint: Option<String>) -> Diagnostic {
        let start = floor_char_boundary(self.text, span.start.min(self.text.len()));
        let end = floor_char_boundary(self.text, (span.start + span.len).min(self.text.len()));
        let (line, column) = self.index.line_col(self.text, start);
        Diagnostic {
            file: self.file.clone(),
            line,
            column,
            span: (start, end.saturating_sub(start)),
            message,
            hint,
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.diagnostics.is_empty()
    }

    /// The warnings in file order.
    pub(super) fn take_warnings(&mut self) -> Vec<Diagnostic> {
        let mut warnings = std::mem::take(&mut self.warnings);
        warnings.sort_by_key(|d| d.span.0);
        warnings.dedup();
        warnings
    }

    /// The problems in file order (problems at the same place keep the order of the passes).
    pub(super) fn finish(mut self) -> Vec<Diagnostic> {
        self.diagnostics.sort_by_key(|d| d.span.0);
        self.diagnostics.dedup();
        self.diagnostics
    }
}

/// The candidate closest to `word`, if it is close enough to be a likely misspelling.
pub(super) fn closest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    crate::hint::closest(word, candidates, 0)
}

/// `did you mean `x`?` for the closest candidate, if any.
pub(super) fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    closest(word, candidates).map(|c| format!("did you mean `{c}`?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_characters_and_round_trips() {
        let text = "a: 1\né: xy\n\nlast";
        let index = LineIndex::new(text);
        let x = text.find('x').unwrap();
        assert_eq!(index.line_col(text, x), (2, 4));
        assert_eq!(index.offset(text, 2, 4), x);
        assert_eq!(index.line_col(text, 0), (1, 1));
        let last = text.find("last").unwrap();
        assert_eq!(index.line_col(text, last), (4, 1));
        assert_eq!(index.offset(text, 4, 1), last);
        // Past the end of a line clamps to the line end; past the text to its end.
        assert_eq!(index.offset(text, 1, 99), 4);
        assert_eq!(index.offset(text, 99, 1), text.len());
    }

    #[test]
    fn plain_rendering_with_and_without_hint() {
        let mut sink = Sink::new("g.yaml", "slo: []\nx: 1\n");
        sink.error(Span::new(8, 1), "unknown field `x`", None);
        sink.error(
            Span::new(0, 3),
            "unknown field `slo`",
            Some("did you mean `slos`?".into()),
        );
        let lines: Vec<String> = sink.finish().iter().map(|d| d.render_plain()).collect();
        assert_eq!(
            lines,
            [
                "g.yaml:1:1: unknown field `slo` (did you mean `slos`?)",
                "g.yaml:2:1: unknown field `x`",
            ]
        );
    }

    #[test]
    fn closest_prefers_near_misses_and_refuses_strangers() {
        let names = ["slos", "gates", "webhooks", "prometheus"];
        assert_eq!(closest("slo", names), Some("slos"));
        assert_eq!(closest("promethues", names), Some("prometheus"));
        assert_eq!(closest("zzz", names), None);
    }
}
