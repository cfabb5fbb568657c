//! The field readers of pass 1: one method per kind of value (string, duration, number,
//! count, enumeration, list, headers, env var name, URL, label name). Each reads one
//! `key: value` entry, reports what is wrong with it, and returns a [`Field`]; the entity
//! readers in [`super`] combine them.

use std::collections::BTreeMap;
use std::time::Duration;

use super::super::diagnostic::{did_you_mean, Span};
use super::super::yaml::{Kind, Node};
use super::{or_list, At, Entry, Field, Reader};
use crate::duration::{DurationError, PromDuration};
use crate::vocab::{Decision, HoldDecision};

impl Reader<'_, '_> {
    pub(super) fn error(&mut self, span: Span, message: impl Into<String>, hint: Option<String>) {
        self.sink.error(span, message, hint);
    }

    pub(super) fn source(&self, node: &Node) -> String {
        let text = self.sink.text();
        text.get(node.span.start..node.span.start + node.span.len)
            .unwrap_or_default()
            .to_string()
    }

    /// A list of entries, each read by `item`. Null is an empty list.
    /// `None` (reported) when the node is not a list.
    pub(super) fn list<T>(
        &mut self,
        entry: Entry<'_>,
        field: &str,
        mut item: impl FnMut(&mut Self, (usize, &Node)) -> T,
    ) -> Option<Vec<T>> {
        let (_, node) = entry?;
        match &node.kind {
            Kind::Null => Some(Vec::new()),
            Kind::Seq(items) => Some(
                items
                    .iter()
                    .enumerate()
                    .map(|pair| item(self, pair))
                    .collect(),
            ),
            other => {
                self.error(
                    node.span,
                    format!("`{field}` must be a list, found {}", other.describe()),
                    Some(format!(
                        "write each entry of `{field}` on its own line starting with `- `"
                    )),
                );
                None
            }
        }
    }

    /// A string (plain numbers and booleans are taken as written). Empty strings are refused.
    pub(super) fn string(&mut self, entry: Entry<'_>) -> Field<String> {
        let Some((key, node)) = entry else {
            return Field::Absent;
        };
        let value = match &node.kind {
            Kind::Str(s) => s.clone(),
            Kind::Int(_) | Kind::Float(_) | Kind::Bool => self.source(node),
            Kind::Null => {
                self.error(
                    node.span,
                    format!("`{}` has no value", key.name),
                    Some("write a value after the colon, or remove the line".to_string()),
                );
                return Field::Invalid;
            }
            other => {
                self.error(
                    node.span,
                    format!(
                        "`{}` must be a string, found {}",
                        key.name,
                        other.describe()
                    ),
                    None,
                );
                return Field::Invalid;
            }
        };
        if value.trim().is_empty() {
            self.error(node.span, format!("`{}` is empty", key.name), None);
            return Field::Invalid;
        }
        Field::Present(At {
            value,
            span: node.span,
        })
    }

    pub(super) fn duration(&mut self, entry: Entry<'_>) -> Field<PromDuration> {
        let Some((key, node)) = entry else {
            return Field::Absent;
        };
        let units = "use a number and a unit: ms, s, m, h, d, w or y, e.g. 30s, 5m, 1h30m, 30d";
        match &node.kind {
            Kind::Str(s) => match s.parse::<PromDuration>() {
                Ok(d) => Field::Present(At {
                    value: d,
                    span: node.span,
                }),
                Err(DurationError::Zero) => {
                    self.error(
                        node.span,
                        format!("`{}` must be greater than zero", key.name),
                        None,
                    );
                    Field::Invalid
                }
                Err(_) => {
                    self.error(
                        node.span,
                        format!("`{}` is not a duration: `{s}`", key.name),
                        Some(units.to_string()),
                    );
                    Field::Invalid
                }
            },
            Kind::Int(n) => {
                self.error(
                    node.span,
                    format!("`{}` is not a duration: `{n}` has no unit", key.name),
                    Some(format!("add a unit, e.g. `{n}s` or `{n}m`")),
                );
                Field::Invalid
            }
            other => {
                self.error(
                    node.span,
                    format!(
                        "`{}` must be a duration, found {}",
                        key.name,
                        other.describe()
                    ),
                    Some(units.to_string()),
                );
                Field::Invalid
            }
        }
    }

    /// A duration that may be zero (`0s`), e.g. a delay.
    pub(super) fn duration_or_zero(&mut self, entry: Entry<'_>) -> Field<Duration> {
        if let Some((_, node)) = entry {
            if let Kind::Str(s) = &node.kind {
                if s.parse::<PromDuration>() == Err(DurationError::Zero) {
                    return Field::Present(At {
                        value: Duration::ZERO,
                        span: node.span,
                    });
                }
            }
        }
        match self.duration(entry) {
            Field::Present(at) => Field::Present(At {
                value: at.value.as_duration(),
                span: at.span,
            }),
            Field::Absent => Field::Absent,
            Field::Invalid => Field::Invalid,
        }
    }

    /// A finite number.
    pub(super) fn number(&mut self, entry: Entry<'_>) -> Field<f64> {
        let Some((key, node)) = entry else {
            return Field::Absent;
        };
        let value = match &node.kind {
            Kind::Int(n) => *n as f64,
            Kind::Float(f) => *f,
            Kind::Str(s) if s.trim().parse::<f64>().is_ok() => {
                self.error(
                    node.span,
                    format!("`{}` must be a number, found a string", key.name),
                    Some("remove the quotes".to_string()),
                );
                return Field::Invalid;
            }
            other => {
                self.error(
                    node.span,
                    format!(
                        "`{}` must be a number, found {}",
                        key.name,
                        other.describe()
                    ),
                    None,
                );
                return Field::Invalid;
            }
        };
        Field::Present(At {
            value,
            span: node.span,
        })
    }

    /// A whole number of at least `min` that fits in `T`.
    pub(super) fn whole<T: TryFrom<i128>>(&mut self, entry: Entry<'_>, min: i128) -> Field<T> {
        let Some((key, node)) = entry else {
            return Field::Absent;
        };
        let n = match &node.kind {
            Kind::Int(n) => *n,
            other => {
                let hint = match other {
                    Kind::Str(s) if s.trim().parse::<i128>().is_ok() => {
                        Some("remove the quotes".to_string())
                    }
                    _ => None,
                };
                self.error(
                    node.span,
                    format!(
                        "`{}` must be a whole number, found {}",
                        key.name,
                        other.describe()
                    ),
                    hint,
                );
                return Field::Invalid;
            }
        };
        if n < min {
            self.error(
                node.span,
                format!("`{}` must be at least {min}, got {n}", key.name),
                None,
            );
            return Field::Invalid;
        }
        match T::try_from(n) {
            Ok(value) => Field::Present(At {
                value,
                span: node.span,
            }),
            Err(_) => {
                self.error(node.span, format!("`{}` is too large: {n}", key.name), None);
                Field::Invalid
            }
        }
    }

    /// `true` or `false`.
    pub(super) fn boolean(&mut self, entry: Entry<'_>) -> Field<bool> {
        let Some((key, node)) = entry else {
            return Field::Absent;
        };
        if let Kind::Bool = node.kind {
            let value = match self.source(node).to_ascii_lowercase().as_str() {
                "true" => Some(true),
                "false" => Some(false),
                _ => None,
            };
            if let Some(value) = value {
                return Field::Present(At {
                    value,
                    span: node.span,
                });
            }
        }
        self.error(
            node.span,
            format!(
                "`{}` must be true or false, found {}",
                key.name,
                node.kind.describe()
            ),
            Some("write `true` or `false`".to_string()),
        );
        Field::Invalid
    }

    pub(super) fn count(&mut self, entry: Entry<'_>, min: i128) -> Field<u32> {
        self.whole(entry, min)
    }

    /// One of `choices` (`(spelling, value)`), with "did you mean".
    pub(super) fn choice<T: Clone>(&mut self, entry: Entry<'_>, choices: &[(&str, T)]) -> Field<T> {
        let Some((key, node)) = entry else {
            return Field::Absent;
        };
        let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
        let expected = format!("expected {}", or_list(&names));
        let Kind::Str(s) = &node.kind else {
            self.error(
                node.span,
                format!(
                    "`{}` must be a string, found {}",
                    key.name,
                    node.kind.describe()
                ),
                Some(expected),
            );
            return Field::Invalid;
        };
        if let Some((_, value)) = choices.iter().find(|(n, _)| n == s) {
            return Field::Present(At {
                value: value.clone(),
                span: node.span,
            });
        }
        let hint = match did_you_mean(s, names.iter().copied()) {
            Some(dym) => format!("{dym} {expected}"),
            None => expected,
        };
        self.error(
            node.span,
            format!("`{s}` is not a valid `{}`", key.name),
            Some(hint),
        );
        Field::Invalid
    }

    /// `pause` or `pending`; `promote` is refused with the reason.
    pub(super) fn hold(&mut self, entry: Entry<'_>) -> Field<HoldDecision> {
        if let Some((key, node)) = entry {
            if matches!(&node.kind, Kind::Str(s) if s == "promote") {
                self.error(
                    node.span,
                    format!(
                        "`{}` cannot be `promote`: gate never promotes blind",
                        key.name
                    ),
                    Some("use `pause` to hold the train or `pending` to keep waiting".to_string()),
                );
                return Field::Invalid;
            }
        }
        self.choice(
            entry,
            &[
                ("pause", HoldDecision::Pause),
                ("pending", HoldDecision::Pending),
            ],
        )
    }

    /// A rule's `then`: rollback, pause or promote.
    pub(super) fn then(&mut self, entry: Entry<'_>) -> Field<Decision> {
        if let Some((_, node)) = entry {
            if matches!(&node.kind, Kind::Str(s) if s == "pending") {
                self.error(
                    node.span,
                    "a rule cannot decide `pending`: it is what no rule firing means",
                    Some("expected rollback, pause or promote".to_string()),
                );
                return Field::Invalid;
            }
        }
        self.choice(
            entry,
            &[
                ("rollback", Decision::Rollback),
                ("pause", Decision::Pause),
                ("promote", Decision::Promote),
            ],
        )
    }

    /// A list of strings, each with its span.
    pub(super) fn string_list(&mut self, entry: Entry<'_>) -> Field<Vec<At<String>>> {
        let Some((key, node)) = entry else {
            return Field::Absent;
        };
        let items = match &node.kind {
            Kind::Seq(items) => items,
            Kind::Null => {
                return Field::Present(At {
                    value: Vec::new(),
                    span: node.span,
                })
            }
            Kind::Str(s) => {
                self.error(
                    node.span,
                    format!("`{}` must be a list, found a string", key.name),
                    Some(format!("write `[{s}]`")),
                );
                return Field::Invalid;
            }
            other => {
                self.error(
                    node.span,
                    format!("`{}` must be a list, found {}", key.name, other.describe()),
                    None,
                );
                return Field::Invalid;
            }
        };
        let mut ok = true;
        let mut values = Vec::new();
        for item in items {
            match &item.kind {
                Kind::Str(s) if !s.is_empty() => values.push(At {
                    value: s.clone(),
                    span: item.span,
                }),
                other => {
                    self.error(
                        item.span,
                        format!(
                            "entries of `{}` must be names, found {}",
                            key.name,
                            other.describe()
                        ),
                        None,
                    );
                    ok = false;
                }
            }
        }
        if !ok {
            return Field::Invalid;
        }
        Field::Present(At {
            value: values,
            span: node.span,
        })
    }

    /// A list of decisions (webhook `on`), without repeats.
    pub(super) fn decisions(&mut self, entry: Entry<'_>) -> Field<Vec<At<Decision>>> {
        let Some((key, node)) = entry else {
            return Field::Absent;
        };
        let Field::Present(list) = self.string_list(Some((key, node))) else {
            return Field::Invalid;
        };
        let names: Vec<&str> = Decision::ALL.iter().map(|d| d.as_str()).collect();
        let mut ok = true;
        let mut values: Vec<At<Decision>> = Vec::new();
        for item in list.value {
            match item.value.parse::<Decision>() {
                Ok(d) if values.iter().any(|v| v.value == d) => {
                    self.error(
                        item.span,
                        format!("`{d}` is listed twice in `{}`", key.name),
                        None,
                    );
                    ok = false;
                }
                Ok(d) => values.push(At {
                    value: d,
                    span: item.span,
                }),
                Err(_) => {
                    let expected = format!("expected {}", or_list(&names));
                    let hint = match did_you_mean(&item.value, names.iter().copied()) {
                        Some(dym) => format!("{dym} {expected}"),
                        None => expected,
                    };
                    self.error(
                        item.span,
                        format!("`{}` is not a decision", item.value),
                        Some(hint),
                    );
                    ok = false;
                }
            }
        }
        if values.is_empty() && ok {
            self.error(
                node.span,
                format!(
                    "`{}` is empty: this webhook would never be called",
                    key.name
                ),
                Some("list the decisions to send, or remove the line to send all four".to_string()),
            );
            ok = false;
        }
        if !ok {
            return Field::Invalid;
        }
        Field::Present(At {
            value: values,
            span: list.span,
        })
    }

    /// `name: value` pairs of HTTP headers.
    pub(super) fn headers(&mut self, entry: Entry<'_>) -> Field<BTreeMap<String, String>> {
        let Some((key, node)) = entry else {
            return Field::Absent;
        };
        let entries = match &node.kind {
            Kind::Map(entries) => entries.as_slice(),
            Kind::Null => &[],
            other => {
                self.error(
                    node.span,
                    format!(
                        "`{}` must be a mapping, found {}",
                        key.name,
                        other.describe()
                    ),
                    Some("e.g. `headers: {X-Scope-OrgID: team-a}`".to_string()),
                );
                return Field::Invalid;
            }
        };
        let mut ok = true;
        let mut headers = BTreeMap::new();
        for (name, value) in entries {
            let valid_name = !name.name.is_empty()
                && name
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
            if !valid_name {
                self.error(
                    name.span,
                    format!("`{}` is not a valid HTTP header name", name.name),
                    None,
                );
                ok = false;
                continue;
            }
            if headers
                .keys()
                .any(|k: &String| k.eq_ignore_ascii_case(&name.name))
            {
                self.error(
                    name.span,
                    format!("header `{}` is given twice", name.name),
                    None,
                );
                ok = false;
                continue;
            }
            let text = match &value.kind {
                Kind::Str(s) => s.clone(),
                Kind::Int(_) | Kind::Float(_) | Kind::Bool => self.source(value),
                other => {
                    self.error(
                        value.span,
                        format!(
                            "the value of header `{}` must be a string, found {}",
                            name.name,
                            other.describe()
                        ),
                        None,
                    );
                    ok = false;
                    continue;
                }
            };
            if text.contains(['\r', '\n']) {
                self.error(
                    value.span,
                    format!("the value of header `{}` contains a line break", name.name),
                    None,
                );
                ok = false;
                continue;
            }
            headers.insert(name.name.clone(), text);
        }
        if !ok {
            return Field::Invalid;
        }
        Field::Present(At {
            value: headers,
            span: node.span,
        })
    }

    /// The name of an environment variable (never its value: secrets stay out of the file).
    pub(super) fn env_name(&mut self, entry: Entry<'_>) -> Field<String> {
        let Some((key, _)) = entry else {
            return Field::Absent;
        };
        let field = self.string(entry);
        if let Field::Present(at) = &field {
            let name = &at.value;
            let valid = name
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !valid {
                self.error(
                    at.span,
                    format!(
                        "`{}` must name an environment variable, not hold a value",
                        key.name
                    ),
                    Some(
                        "letters, digits and `_`, e.g. GATE_WEBHOOK_SECRET; the secret itself goes in that variable"
                            .to_string(),
                    ),
                );
                return Field::Invalid;
            }
        }
        field
    }

    /// An `http://` or `https://` URL with a host.
    pub(super) fn url(&mut self, entry: Entry<'_>) -> Field<String> {
        let Some((key, _)) = entry else {
            return Field::Absent;
        };
        let field = self.string(entry);
        if let Field::Present(at) = &field {
            let rest = at
                .value
                .strip_prefix("http://")
                .or_else(|| at.value.strip_prefix("https://"));
            let host = rest.map(|r| r.split(['/', '?', '#']).next().unwrap_or_default());
            let problem = match host {
                None => Some("must start with http:// or https://"),
                Some(h) if h.is_empty() || h.ends_with('@') => Some("has no host"),
                Some(h) if h.contains(char::is_whitespace) => Some("contains a space"),
                Some(_) if at.value.contains(char::is_whitespace) => Some("contains a space"),
                Some(_) => None,
            };
            if let Some(problem) = problem {
                self.error(
                    at.span,
                    format!("`{}` {problem}: `{}`", key.name, at.value),
                    Some("e.g. http://127.0.0.1:9090".to_string()),
                );
                return Field::Invalid;
            }
        }
        field
    }

    /// A Prometheus label name, e.g. `train_id`.
    pub(super) fn label_name(&mut self, entry: Entry<'_>) -> Field<String> {
        let Some((key, _)) = entry else {
            return Field::Absent;
        };
        let field = self.string(entry);
        if let Field::Present(at) = &field {
            let name = &at.value;
            let valid = name
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                && !name.starts_with("__");
            if !valid {
                self.error(
                    at.span,
                    format!(
                        "`{}` is not a valid Prometheus label name: `{name}`",
                        key.name
                    ),
                    Some("letters, digits and `_`, not starting with a digit or `__`".to_string()),
                );
                return Field::Invalid;
            }
        }
        field
    }
}
