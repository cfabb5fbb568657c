//! The PromQL train-matcher rewrite: arbitrary selectors and queries × arbitrary train IDs.
//!
//! Input: the PromQL text, a NUL byte, then bytes that `arbitrary` turns into the builder
//! (selector counter, `*_query` counter or a rule's `query()`), the train label and the train
//! IDs. The property: whenever gate accepts the text (`validate_selector` / `validate_query`,
//! as `gate check` does), the built query parses, has as many series selectors as the input,
//! and every selector — in every `or` group — carries exactly one matcher on the train label:
//! `label="id"` for one train, `label=~"<escaped ids joined by |>"` for several.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use gate_rules::query::{self, TrainFilter};
use gate_rules::{Counter, PromDuration, TrainId};
use libfuzzer_sys::fuzz_target;
use promql_parser::label::{MatchOp, Matcher};
use promql_parser::parser::{self, Expr, VectorSelector};

#[derive(Debug, Arbitrary)]
enum Builder {
    Selector,
    Query,
    Custom,
}

#[derive(Debug, Arbitrary)]
enum Label {
    Train,
    ReleaseTrain,
    Other(String),
}

#[derive(Debug, Arbitrary)]
struct Params {
    builder: Builder,
    label: Label,
    window_secs: u32,
    /// Each becomes an ID by mapping its bytes onto the characters train IDs allow.
    ids: Vec<Vec<u8>>,
    /// Tried as a train ID as is (kept when it validates).
    raw_id: String,
}

const ID_CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:-/";

fn train_ids(params: &Params) -> Vec<TrainId> {
    let mut ids: Vec<TrainId> = params
        .ids
        .iter()
        .take(16)
        .filter_map(|bytes| {
            let id: String = bytes
                .iter()
                .take(128)
                .map(|b| ID_CHARS[*b as usize % ID_CHARS.len()] as char)
                .collect();
            gate_rules::train_id::validate(&id).ok()
        })
        .collect();
    if let Ok(id) = gate_rules::train_id::validate(&params.raw_id) {
        ids.push(id);
    }
    if ids.is_empty() {
        ids.push(gate_rules::train_id::validate("v1.2.3").unwrap());
    }
    ids
}

/// Whether the train matcher is a regex, and its value.
fn expected_matcher(ids: &[TrainId]) -> (bool, String) {
    match ids {
        [one] => (false, one.as_str().to_string()),
        many => (
            true,
            many.iter()
                .map(|id| {
                    let mut escaped = String::new();
                    for c in id.as_str().chars() {
                        if "\\.+*?()|[]{}^$".contains(c) {
                            escaped.push('\\');
                        }
                        escaped.push(c);
                    }
                    escaped
                })
                .collect::<Vec<_>>()
                .join("|"),
        ),
    }
}

/// Every vector selector of `expr`, aggregation parameters and subqueries included.
fn selectors<'e>(expr: &'e Expr, out: &mut Vec<&'e VectorSelector>) {
    match expr {
        Expr::Aggregate(a) => {
            if let Some(param) = &a.param {
                selectors(param, out);
            }
            selectors(&a.expr, out);
        }
        Expr::Unary(u) => selectors(&u.expr, out),
        Expr::Binary(b) => {
            selectors(&b.lhs, out);
            selectors(&b.rhs, out);
        }
        Expr::Paren(p) => selectors(&p.expr, out),
        Expr::Subquery(s) => selectors(&s.expr, out),
        Expr::Call(c) => {
            for arg in &c.args.args {
                selectors(arg, out);
            }
        }
        Expr::VectorSelector(vs) => out.push(vs),
        Expr::MatrixSelector(ms) => out.push(&ms.vs),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}

fn check_group(built: &str, label: &str, group: &[Matcher], expected: &(bool, String)) {
    let on_label: Vec<&Matcher> = group.iter().filter(|m| m.name == label).collect();
    assert_eq!(
        on_label.len(),
        1,
        "`{built}`: a selector group has {} matchers on `{label}`",
        on_label.len()
    );
    let m = on_label[0];
    let (regex, value) = expected;
    let op_ok = match &m.op {
        MatchOp::Equal => !regex,
        MatchOp::Re(_) => *regex,
        _ => false,
    };
    assert!(op_ok, "`{built}`: the train matcher is {m}");
    assert_eq!(&m.value, value, "`{built}`: the train matcher is {m}");
}

fuzz_target!(|data: &[u8]| {
    let (text, rest) = match data.iter().position(|&b| b == 0) {
        Some(nul) => (&data[..nul], &data[nul + 1..]),
        None => (data, &[][..]),
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let Ok(params) = Params::arbitrary(&mut Unstructured::new(rest)) else {
        return;
    };
    let label = match &params.label {
        Label::Train => "train",
        Label::ReleaseTrain => "release_train",
        Label::Other(s) => s.as_str(),
    };
    let ids = train_ids(&params);
    let window = PromDuration::from_secs(u64::from(params.window_secs % 2_592_000).max(1));
    let filter = TrainFilter::Trains(&ids);

    let (built, input_selectors) = match params.builder {
        Builder::Selector => {
            if query::validate_selector(text).is_err() {
                return;
            }
            let counter = Counter::Selector(text.to_string());
            (query::window_query(&counter, window, label, filter), 1)
        }
        Builder::Query => {
            if query::validate_query(text).is_err() {
                return;
            }
            let substituted = text.replace(query::WINDOW_PLACEHOLDER, &window.to_string());
            let Ok(input) = parser::parse(&substituted) else {
                panic!("`{text}` validates but does not parse with window {window}");
            };
            let mut found = Vec::new();
            selectors(&input, &mut found);
            let counter = Counter::Query(text.to_string());
            (
                query::window_query(&counter, window, label, filter),
                found.len(),
            )
        }
        Builder::Custom => {
            if query::validate_query(text).is_err() || text.contains(query::WINDOW_PLACEHOLDER) {
                return;
            }
            let input = parser::parse(text).expect("a validated query parses");
            let mut found = Vec::new();
            selectors(&input, &mut found);
            (query::custom_query(text, label, filter), found.len())
        }
    };
    let built = match built {
        Ok(built) => built,
        // The only refusal left for accepted text is a label that is not a label name.
        Err(_) if !matches!(params.label, Label::Other(_)) => {
            panic!("`{text}` validates but building its query failed")
        }
        Err(_) => return,
    };
    let output = parser::parse(&built).unwrap_or_else(|e| {
        panic!("the built query does not parse: {e}\n`{built}`\nfrom `{text}`")
    });
    let mut found = Vec::new();
    selectors(&output, &mut found);
    assert_eq!(
        found.len(),
        input_selectors,
        "`{built}` has {} selectors, `{text}` had {input_selectors}",
        found.len()
    );
    let expected = expected_matcher(&ids);
    for vs in found {
        if label == "__name__" {
            assert!(
                vs.name.is_none(),
                "`{built}`: a metric name beside a train matcher on __name__"
            );
        }
        if vs.matchers.or_matchers.is_empty() {
            check_group(&built, label, &vs.matchers.matchers, &expected);
        } else {
            assert!(
                vs.matchers.matchers.iter().all(|m| m.name != label),
                "`{built}`: a train matcher outside the or groups"
            );
            for group in &vs.matchers.or_matchers {
                check_group(&built, label, group, &expected);
            }
        }
    }
});
