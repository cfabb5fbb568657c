//! The API tokens file of `gate serve --tokens`: named tokens with scopes, stored as the
//! SHA-256 of each token, never the token itself.
//!
//! ```yaml
//! - name: deploy-pipeline
//!   sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
//!   scopes: [read, register]
//! ```
//!
//! It is read with the config's YAML layer and reported with its diagnostics, so a bad file
//! gets every problem at once, each at `file:line:col` with a hint, exactly as a bad config
//! does ([`ConfigError`]). Names and digests must be unique: the name is what the audit trail
//! records, so two names for one token (or one name for two) would make it ambiguous.

use std::collections::BTreeSet;
use std::fmt;

use super::diagnostic::{did_you_mean, Sink, Span};
use super::load::ConfigError;
use super::yaml::{self, Kind, Node};

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// Read trains, decisions, events and metrics (only enforced with `--auth-reads`).
    Read,
    /// Register and stop trains.
    Register,
    /// Override a train's decision.
    Override,
    /// Operate the daemon: reload the config.
    Admin,
}

impl Scope {
    /// Every scope.
    pub const ALL: [Scope; 4] = [Scope::Read, Scope::Register, Scope::Override, Scope::Admin];

    /// The name in the tokens file.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Register => "register",
            Scope::Override => "override",
            Scope::Admin => "admin",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One named token of the tokens file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    /// The name the audit trail records for what this token does.
    pub name: String,
    /// The SHA-256 of the token.
    pub sha256: [u8; 32],
    /// What it may do.
    pub scopes: BTreeSet<Scope>,
}

const FIELDS: [&str; 3] = ["name", "sha256", "scopes"];

/// Reads a tokens file's text; `file` names it in diagnostics.
pub fn tokens_from_str(file: &str, text: &str) -> Result<Vec<ApiToken>, ConfigError> {
    let mut sink = Sink::new(file, text);
    let tokens = match yaml::parse(text, sink.index()) {
        Err(err) => {
            sink.error(err.span, err.message, err.hint);
            Vec::new()
        }
        Ok(root) => read(&root, &mut sink),
    };
    if sink.is_empty() {
        return Ok(tokens);
    }
    Err(ConfigError::Invalid {
        file: file.to_string(),
        source_text: text.to_string(),
        diagnostics: sink.finish(),
    })
}

fn read(root: &Node, sink: &mut Sink<'_>) -> Vec<ApiToken> {
    let Kind::Seq(items) = &root.kind else {
        sink.error(
            root.span,
            format!("expected a list of tokens, found {}", root.kind.describe()),
            Some(
                "each item: `- name: …`, `sha256: …`, `scopes: [read, register, override, admin]`"
                    .into(),
            ),
        );
        return Vec::new();
    };
    if items.is_empty() {
        sink.error(
            root.span,
            "the tokens file lists no token",
            Some("add `- name: …` items, or leave --tokens out".into()),
        );
    }
    let mut tokens: Vec<ApiToken> = Vec::new();
    let mut first_at: Vec<Span> = Vec::new();
    for item in items {
        let Some((token, name_span)) = read_token(item, sink) else {
            continue;
        };
        if let Some(i) = tokens.iter().position(|t| t.name == token.name) {
            let (line, _) = sink.index().line_col(sink.text(), first_at[i].start);
            sink.error(
                name_span,
                format!("token name `{}` is used twice", token.name),
                Some(format!(
                    "first used on line {line}; the audit trail needs one name per token"
                )),
            );
        } else if let Some(i) = tokens.iter().position(|t| t.sha256 == token.sha256) {
            sink.error(
                name_span,
                format!(
                    "token `{}` has the same sha256 as `{}`",
                    token.name, tokens[i].name
                ),
                Some("one token, one name: give each caller its own token".into()),
            );
        } else {
            first_at.push(name_span);
            tokens.push(token);
        }
    }
    tokens
}

fn read_token(node: &Node, sink: &mut Sink<'_>) -> Option<(ApiToken, Span)> {
    let Kind::Map(entries) = &node.kind else {
        sink.error(
            node.span,
            format!(
                "expected a token (a mapping), found {}",
                node.kind.describe()
            ),
            None,
        );
        return None;
    };
    let mut name = None;
    let mut sha256 = None;
    let mut scopes = None;
    for (key, value) in entries {
        match key.name.as_str() {
            "name" => name = string(value, "name", sink).map(|n| (n, value.span)),
            "sha256" => sha256 = digest(value, sink),
            "scopes" => scopes = read_scopes(value, sink),
            other => sink.error(
                key.span,
                format!("unknown field `{other}` in a token"),
                did_you_mean(other, FIELDS).or_else(|| Some("fields: name, sha256, scopes".into())),
            ),
        }
    }
    for (field, missing) in [
        ("name", name.is_none()),
        ("sha256", sha256.is_none()),
        ("scopes", scopes.is_none()),
    ] {
        if missing && !entries.iter().any(|(k, _)| k.name == field) {
            sink.error(
                node.span,
                format!("a token needs `{field}`"),
                (field == "sha256").then(|| "`gate token hash` prints it for a token".into()),
            );
        }
    }
    let ((name, span), sha256, scopes) = (name?, sha256?, scopes?);
    Some((
        ApiToken {
            name,
            sha256,
            scopes,
        },
        span,
    ))
}

fn string(node: &Node, field: &str, sink: &mut Sink<'_>) -> Option<String> {
    match &node.kind {
        Kind::Str(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Kind::Str(_) => {
            sink.error(node.span, format!("`{field}` is empty"), None);
            None
        }
        other => {
            sink.error(
                node.span,
                format!("`{field}` must be a string, found {}", other.describe()),
                None,
            );
            None
        }
    }
}

/// The digest from the scalar's text as written: a digest of decimal digits alone would
/// otherwise be read as a number.
fn digest(node: &Node, sink: &mut Sink<'_>) -> Option<[u8; 32]> {
    if matches!(node.kind, Kind::Seq(_) | Kind::Map(_) | Kind::Null) {
        sink.error(
            node.span,
            format!("`sha256` must be a string, found {}", node.kind.describe()),
            None,
        );
        return None;
    }
    let source = sink
        .text()
        .get(node.span.start..node.span.start + node.span.len)
        .unwrap_or_default();
    let text = source.trim().trim_matches(['"', '\'']);
    let parsed = (text.len() == 64)
        .then(|| {
            let mut out = [0u8; 32];
            for (i, pair) in text.as_bytes().chunks(2).enumerate() {
                let pair = std::str::from_utf8(pair).ok()?;
                out[i] = u8::from_str_radix(pair, 16).ok()?;
            }
            Some(out)
        })
        .flatten();
    if parsed.is_none() {
        sink.error(
            node.span,
            "`sha256` must be 64 hexadecimal digits: the SHA-256 of the token, not the token",
            Some("`gate token hash` reads the token on stdin and prints this line".into()),
        );
    }
    parsed
}

fn read_scopes(node: &Node, sink: &mut Sink<'_>) -> Option<BTreeSet<Scope>> {
    let Kind::Seq(items) = &node.kind else {
        sink.error(
            node.span,
            format!("`scopes` must be a list, found {}", node.kind.describe()),
            Some("e.g. `scopes: [read, register]`".into()),
        );
        return None;
    };
    if items.is_empty() {
        sink.error(
            node.span,
            "`scopes` is empty: the token could do nothing",
            Some("scopes: read, register, override, admin".into()),
        );
        return None;
    }
    let mut scopes = BTreeSet::new();
    let mut ok = true;
    for item in items {
        let found = match &item.kind {
            Kind::Str(s) => Scope::ALL.into_iter().find(|scope| scope.as_str() == s),
            _ => None,
        };
        match found {
            Some(scope) => {
                scopes.insert(scope);
            }
            None => {
                ok = false;
                let word = match &item.kind {
                    Kind::Str(s) => s.as_str(),
                    _ => "",
                };
                sink.error(
                    item.span,
                    "unknown scope: expected read, register, override or admin",
                    did_you_mean(word, Scope::ALL.map(Scope::as_str)),
                );
            }
        }
    }
    ok.then_some(scopes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    fn errors(text: &str) -> Vec<String> {
        tokens_from_str("tokens.yaml", text)
            .expect_err("invalid")
            .diagnostics()
            .iter()
            .map(|d| d.render_plain())
            .collect()
    }

    #[test]
    fn a_valid_file_reads_names_digests_and_scopes() {
        let text = format!(
            "- name: deploy-pipeline\n  sha256: {HASH}\n  scopes: [read, register]\n\
             - name: oncall\n  sha256: {}\n  scopes: [override, admin, read]\n",
            HASH.to_uppercase().replace("9F86", "0000")
        );
        let tokens = tokens_from_str("tokens.yaml", &text).expect("valid");
        assert_eq!(tokens.len(), 2);
        assert_eq!(tokens[0].name, "deploy-pipeline");
        assert_eq!(tokens[0].sha256[..2], [0x9f, 0x86]);
        assert_eq!(tokens[0].sha256[31], 0x08);
        assert_eq!(
            tokens[0].scopes.iter().copied().collect::<Vec<_>>(),
            [Scope::Read, Scope::Register]
        );
        assert_eq!(tokens[1].sha256[..2], [0, 0]);
        assert_eq!(tokens[1].scopes.len(), 3);
    }

    #[test]
    fn every_problem_is_reported_with_its_position() {
        let text = format!(
            "- name: a\n  sha256: {HASH}\n  scopes: [read, regster]\n\
             - name: a\n  sha256: 1234\n  scopes: [admin]\n\
             - nme: c\n  sha256: {HASH}\n  scopes: []\n"
        );
        let errors = errors(&text);
        assert_eq!(
            errors,
            [
                "tokens.yaml:3:18: unknown scope: expected read, register, override or admin (did you mean `register`?)",
                "tokens.yaml:5:11: `sha256` must be 64 hexadecimal digits: the SHA-256 of the token, not the token (`gate token hash` reads the token on stdin and prints this line)",
                "tokens.yaml:7:3: unknown field `nme` in a token (did you mean `name`?)",
                "tokens.yaml:7:3: a token needs `name`",
                "tokens.yaml:9:11: `scopes` is empty: the token could do nothing (scopes: read, register, override, admin)",
            ],
        );
    }

    #[test]
    fn names_and_digests_are_unique() {
        let other = HASH.replace("9f86", "0000");
        let errors = errors(&format!(
            "- name: a\n  sha256: {HASH}\n  scopes: [read]\n\
             - name: a\n  sha256: {other}\n  scopes: [read]\n\
             - name: b\n  sha256: {HASH}\n  scopes: [read]\n"
        ));
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].starts_with("tokens.yaml:4:9: token name `a` is used twice"));
        assert!(errors[1].starts_with("tokens.yaml:7:9: token `b` has the same sha256 as `a`"));
    }

    #[test]
    fn not_a_list_or_not_yaml_is_one_error() {
        assert_eq!(errors("name: a\n").len(), 1);
        assert_eq!(errors("[]\n").len(), 1);
        assert_eq!(errors("- name: [\n").len(), 1);
    }
}
