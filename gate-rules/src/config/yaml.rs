//! The YAML layer: the config text as a tree of nodes that remember where they are.
//!
//! `serde-saphyr` parses the text into a generic [`Node`] tree (through `Spanned<…>`, which
//! records each node's line, column and byte span). The schema pass ([`super::raw`]) then walks
//! this tree by hand.
//!
//! Why a generic tree and not `#[derive(Deserialize)]` straight into the schema with
//! `deny_unknown_fields`: serde stops at the first error, so a file with three mistakes would
//! need three runs of `gate check`. A catch-all `#[serde(flatten)]` map for unknown keys does
//! not work either: with `flatten`, serde buffers the struct and `serde-saphyr` loses every
//! span inside it. Walking our own tree lets the schema pass report every unknown field, every
//! wrong type and every bad value in one go, each at its exact position.
//!
//! The parser is configured for config files rather than for generic YAML:
//! repeated keys are passed through (the schema pass reports them with both positions, and
//! keeps checking), booleans are strict (`on:` and `n:` stay strings: a webhook's `on` key is
//! not YAML 1.1's `true`), and non-finite floats are passed through so that `objective: .inf`
//! is reported as an out-of-range objective rather than a parser failure. Mapping keys are
//! read as strings.
//!
//! Rule conditions and selectors are validated on their *decoded* text (escapes resolved,
//! lines folded), but problems must be shown in the file. [`offset_map`] aligns the decoded
//! text with the scalar's source text so an offset inside a `when` expression becomes a file
//! offset, exactly for plain, single- and double-quoted and block scalars alike.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{DuplicateKeyPolicy, Location, Spanned};

use super::diagnostic::{LineIndex, Span};

/// A YAML node with its position.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub kind: Kind,
    /// Where the node is: for scalars the whole token (quotes included; a block scalar's
    /// content), for collections their start.
    pub span: Span,
}

/// What a node holds.
#[derive(Debug, Clone)]
pub(crate) enum Kind {
    Null,
    Bool,
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Key, Node)>),
}

/// A mapping key with its position.
#[derive(Debug, Clone)]
pub(crate) struct Key {
    pub name: String,
    pub span: Span,
}

impl Kind {
    /// The node's type, as a user reads it in "expected X, found Y".
    pub(crate) fn describe(&self) -> &'static str {
        match self {
            Kind::Null => "nothing",
            Kind::Bool => "a boolean",
            Kind::Int(_) => "an integer",
            Kind::Float(_) => "a number",
            Kind::Str(_) => "a string",
            Kind::Seq(_) => "a list",
            Kind::Map(_) => "a mapping",
        }
    }
}

/// Why the text is not YAML: the one problem reported when parsing fails.
#[derive(Debug)]
pub(crate) struct SyntaxError {
    pub message: String,
    pub span: Span,
    pub hint: Option<String>,
}

/// Parses the config text into a node tree.
pub(super) fn parse(text: &str, index: &LineIndex) -> Result<Node, SyntaxError> {
    match serde_saphyr::from_str_with_options::<Spanned<RawNode>>(text, options()) {
        Ok(node) => Ok(convert(node, text, index)),
        Err(err) => Err(syntax_error(&err, text, index)),
    }
}

/// Every document of a multi-document stream (`---`), for files of other tools (OpenSLO)
/// that put one object per document; empty documents are skipped.
pub(crate) fn parse_documents(text: &str, index: &LineIndex) -> Result<Vec<Node>, SyntaxError> {
    match serde_saphyr::from_multiple_with_options::<Spanned<RawNode>>(text, options()) {
        Ok(nodes) => Ok(nodes
            .into_iter()
            .map(|node| convert(node, text, index))
            .collect()),
        Err(err) => Err(syntax_error(&err, text, index)),
    }
}

fn options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        duplicate_keys: DuplicateKeyPolicy::PassThrough,
        strict_booleans: true,
        non_finite_float_policy: serde_saphyr::options::NonFiniteFloatPolicy::PassThrough,
    }
}

fn syntax_error(err: &serde_saphyr::Error, text: &str, index: &LineIndex) -> SyntaxError {
    let err = err.without_snippet();
    let span = err
        .location()
        .map_or(Span::new(0, 0), |loc| location_span(&loc, text, index));
    if matches!(err, serde_saphyr::Error::MultipleDocuments { .. }) {
        return SyntaxError {
            message: "the config must be a single YAML document".to_string(),
            span,
            hint: Some("remove the `---` separator and merge the documents".to_string()),
        };
    }
    let message =
        serde_saphyr::MessageFormatter::format_message(&serde_saphyr::DefaultMessageFormatter, err);
    SyntaxError {
        message: format!("YAML syntax error: {message}"),
        span,
        hint: Some("nothing else is checked until the file parses".to_string()),
    }
}

/// A location's byte span; derived from line and column when the parser gives no byte offset.
fn location_span(loc: &Location, text: &str, index: &LineIndex) -> Span {
    let span = loc.span();
    match (span.byte_offset(), span.byte_len()) {
        (Some(start), Some(len)) => {
            let start = usize::try_from(start).unwrap_or(text.len()).min(text.len());
            let len = usize::try_from(len).unwrap_or(0).min(text.len() - start);
            Span::new(start, len)
        }
        _ => {
            let line = usize::try_from(loc.line()).unwrap_or(usize::MAX);
            let column = usize::try_from(loc.column()).unwrap_or(usize::MAX);
            let start = index.offset(text, line, column);
            let len = text[start..].chars().next().map_or(0, char::len_utf8);
            Span::new(start, len)
        }
    }
}

fn convert(node: Spanned<RawNode>, text: &str, index: &LineIndex) -> Node {
    let span = location_span(&node.referenced, text, index);
    let kind = match node.value {
        RawNode::Null => Kind::Null,
        RawNode::Bool => Kind::Bool,
        RawNode::Int(i) => Kind::Int(i),
        RawNode::Float(f) => Kind::Float(f),
        RawNode::Str(s) => Kind::Str(s),
        RawNode::Seq(items) => {
            Kind::Seq(items.into_iter().map(|n| convert(n, text, index)).collect())
        }
        RawNode::Map(entries) => Kind::Map(
            entries
                .into_iter()
                .map(|(k, v)| {
                    let key = Key {
                        span: location_span(&k.referenced, text, index),
                        name: k.value,
                    };
                    (key, convert(v, text, index))
                })
                .collect(),
        ),
    };
    Node { kind, span }
}

/// The tree as `serde-saphyr` hands it over; converted to [`Node`] right away.
enum RawNode {
    Null,
    Bool,
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<Spanned<RawNode>>),
    Map(Vec<(Spanned<String>, Spanned<RawNode>)>),
}

struct RawNodeVisitor;

impl<'de> Visitor<'de> for RawNodeVisitor {
    type Value = RawNode;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E>(self) -> Result<RawNode, E> {
        Ok(RawNode::Null)
    }
    fn visit_none<E>(self) -> Result<RawNode, E> {
        Ok(RawNode::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<RawNode, D::Error> {
        d.deserialize_any(RawNodeVisitor)
    }
    fn visit_bool<E>(self, _: bool) -> Result<RawNode, E> {
        Ok(RawNode::Bool)
    }
    fn visit_i64<E>(self, v: i64) -> Result<RawNode, E> {
        Ok(RawNode::Int(i128::from(v)))
    }
    fn visit_u64<E>(self, v: u64) -> Result<RawNode, E> {
        Ok(RawNode::Int(i128::from(v)))
    }
    fn visit_i128<E>(self, v: i128) -> Result<RawNode, E> {
        Ok(RawNode::Int(v))
    }
    fn visit_u128<E>(self, v: u128) -> Result<RawNode, E> {
        Ok(RawNode::Int(i128::try_from(v).unwrap_or(i128::MAX)))
    }
    fn visit_f64<E>(self, v: f64) -> Result<RawNode, E> {
        Ok(RawNode::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<RawNode, E> {
        Ok(RawNode::Str(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<RawNode, E> {
        Ok(RawNode::Str(v))
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<RawNode, E> {
        String::from_utf8(v.to_vec())
            .map(RawNode::Str)
            .map_err(|_| E::custom("binary values are not supported"))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawNode, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<RawNode>>()? {
            items.push(item);
        }
        Ok(RawNode::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawNode, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Spanned<String>>()? {
            let value = map.next_value::<Spanned<RawNode>>()?;
            entries.push((key, value));
        }
        Ok(RawNode::Map(entries))
    }
}

impl<'de> Deserialize<'de> for RawNode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<RawNode, D::Error> {
        d.deserialize_any(RawNodeVisitor)
    }
}

/// Maps byte offsets in a scalar's decoded value to byte offsets in its source text `raw`
/// (the scalar's span, quotes included). The result has one entry per decoded byte plus one
/// for the end; bytes inside a multi-byte character map to the character's start.
///
/// The decoded text is aligned with the source: quotes, indentation, escapes (`\"`, `\n`,
/// `\u00e9`, escaped line breaks), doubled single quotes and folded line breaks are skipped
/// or matched as the YAML spec produces them. Each quoting style is tried on its own terms
/// and the first that aligns without a mismatch wins, so a block scalar whose content starts
/// with `"` is not mistaken for a quoted one.
pub(super) fn offset_map(raw: &str, decoded: &str) -> Vec<usize> {
    let styles: &[Style] = match raw.as_bytes().first() {
        Some(b'"') => &[Style::Double, Style::Plain],
        Some(b'\'') => &[Style::Single, Style::Plain],
        _ => &[Style::Plain],
    };
    let mut fallback = None;
    for &style in styles {
        let (map, exact) = align(raw, decoded, style);
        if exact {
            return map;
        }
        fallback.get_or_insert(map);
    }
    fallback.unwrap_or_else(|| vec![0; decoded.len() + 1])
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Style {
    Plain,
    Single,
    Double,
}

fn is_yaml_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

/// Aligns `decoded` with `raw` under one quoting style; returns the map and whether every
/// decoded character found its source.
fn align(raw: &str, decoded: &str, style: Style) -> (Vec<usize>, bool) {
    let (mut j, end) = match style {
        Style::Plain => (0, raw.len()),
        Style::Single | Style::Double => {
            if raw.len() < 2 {
                return (vec![0; decoded.len() + 1], false);
            }
            (1, raw.len() - 1)
        }
    };
    let at = |j: usize| raw[j..end].chars().next();
    let mut map = Vec::with_capacity(decoded.len() + 1);
    let mut exact = true;
    for c in decoded.chars() {
        let mapped = loop {
            let Some(r) = at(j) else {
                exact = false;
                break j.min(end);
            };
            if style == Style::Double && r == '\\' {
                let escape_start = j;
                let rest = &raw[j + 1..end];
                let Some(e) = rest.chars().next() else {
                    exact = false;
                    break j;
                };
                if e == '\n' || e == '\r' {
                    // An escaped line break: it and the next line's indentation vanish.
                    j += 1;
                    while let Some(s) = at(j).filter(|s| is_yaml_space(*s)) {
                        j += s.len_utf8();
                    }
                    continue;
                }
                let digits = match e {
                    'x' => 2,
                    'u' => 4,
                    'U' => 8,
                    _ => 0,
                };
                j = (j + 1 + e.len_utf8() + digits).min(end);
                break escape_start;
            }
            if style == Style::Single && r == '\'' && c == '\'' && raw[j + 1..end].starts_with('\'')
            {
                let start = j;
                j += 2;
                break start;
            }
            if r == c {
                let start = j;
                j += r.len_utf8();
                break start;
            }
            if is_yaml_space(r) {
                if c == ' ' || c == '\n' {
                    // A folded line break: the whole run of source whitespace becomes `c`.
                    let start = j;
                    while let Some(s) = at(j).filter(|s| is_yaml_space(*s)) {
                        j += s.len_utf8();
                    }
                    break start;
                }
                // Indentation or a dropped line break before the next character.
                j += r.len_utf8();
                continue;
            }
            exact = false;
            let start = j;
            j += r.len_utf8();
            break start;
        };
        map.extend(std::iter::repeat_n(mapped, c.len_utf8()));
    }
    map.push(j.min(end));
    (map, exact)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(text: &str) -> Node {
        parse(text, &LineIndex::new(text)).expect("parses")
    }

    fn map_entries(node: &Node) -> &[(Key, Node)] {
        match &node.kind {
            Kind::Map(entries) => entries,
            other => panic!("not a map: {other:?}"),
        }
    }

    #[test]
    fn keys_are_strings_and_duplicates_pass_through() {
        let text = "on: [pause]\nn: 1\na: 1\na: 2\n";
        let root = tree(text);
        let names: Vec<&str> = map_entries(&root)
            .iter()
            .map(|(k, _)| k.name.as_str())
            .collect();
        assert_eq!(names, ["on", "n", "a", "a"]);
        let (second_a, _) = &map_entries(&root)[3];
        assert_eq!(&text[second_a.span.start..][..1], "a");
        assert_eq!(second_a.span.start, text.rfind("a:").unwrap());
    }

    #[test]
    fn scalar_spans_cover_the_token() {
        let text = "a: \"x y\"\nb: 99.9\nc: .inf\n";
        let root = tree(text);
        let entries = map_entries(&root);
        let a = &entries[0].1;
        assert_eq!(&text[a.span.start..a.span.start + a.span.len], "\"x y\"");
        assert!(matches!(entries[1].1.kind, Kind::Float(f) if f == 99.9));
        assert!(matches!(entries[2].1.kind, Kind::Float(f) if f.is_infinite()));
    }

    #[test]
    fn syntax_error_is_positioned() {
        let text = "a: [1, 2\nb: 3\n";
        let err = parse(text, &LineIndex::new(text)).unwrap_err();
        assert!(
            err.message.starts_with("YAML syntax error"),
            "{}",
            err.message
        );
        assert_eq!(LineIndex::new(text).line_col(text, err.span.start).0, 2);
    }

    /// Checks that every decoded character maps to the same character in the source.
    fn assert_aligned(raw: &str, decoded: &str, expect_at: &[(&str, &str)]) {
        let map = offset_map(raw, decoded);
        assert_eq!(map.len(), decoded.len() + 1);
        for (needle, source_needle) in expect_at {
            let d = decoded.find(needle).expect("needle in decoded");
            let r = raw.find(source_needle).expect("needle in raw");
            assert_eq!(map[d], r, "{needle:?} in {raw:?}");
        }
    }

    #[test]
    fn offset_map_plain_and_quoted() {
        assert_aligned("a && foo(x)", "a && foo(x)", &[("foo", "foo")]);
        assert_aligned(
            r#""burn_rate(\"x\", \"1h\") > foo""#,
            r#"burn_rate("x", "1h") > foo"#,
            &[("foo", "foo"), ("\"1h", "\\\"1h"), ("1h", "1h")],
        );
        assert_aligned(
            "'burn_rate(''x'', ''1h'') > foo'",
            "burn_rate('x', '1h') > foo",
            &[("foo", "foo"), ("1h", "1h"), ("x'", "x''")],
        );
        assert_aligned(
            r#""\u00e9 é foo""#,
            "é é foo",
            &[("foo", "foo"), (" é", " é")],
        );
    }

    #[test]
    fn offset_map_multi_line_and_block() {
        assert_aligned(
            "a > 1 &&\n    foo(x)",
            "a > 1 && foo(x)",
            &[("foo", "foo"), ("&&", "&&")],
        );
        assert_aligned(
            "a > 1 &&\n  foo(x)\n",
            "a > 1 &&\nfoo(x)\n",
            &[("foo", "foo")],
        );
        assert_aligned(
            "\"a > 1 &&\\\n   foo(x)\"",
            "a > 1 &&foo(x)",
            &[("foo", "foo")],
        );
        // A block scalar whose content starts with a quote is not decoded as quoted.
        assert_aligned(
            "\"x\" == foo\n",
            "\"x\" == foo\n",
            &[("foo", "foo"), ("\"x", "\"x")],
        );
    }

    #[test]
    fn offset_map_from_parsed_scalars() {
        let text = "a: |\n  x &&\n  foo\nb: >-\n  x &&\n  foo\nc: \"x\\t&& foo\"\n";
        let root = tree(text);
        for (_, node) in map_entries(&root) {
            let Kind::Str(decoded) = &node.kind else {
                panic!("string expected")
            };
            let raw = &text[node.span.start..node.span.start + node.span.len];
            let map = offset_map(raw, decoded);
            let d = decoded.find("foo").unwrap();
            assert_eq!(&raw[map[d]..map[d] + 3], "foo", "{raw:?}");
        }
    }
}
