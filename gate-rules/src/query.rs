//! PromQL building through the AST.
//!
//! Every query gate sends is built here from the SLI counters of the config
//! ([`Counter::Selector`] or [`Counter::Query`]) and from the custom `query("...")` calls of the
//! rules. The engine's planner calls the builders ([`window_query`], [`service_query`],
//! [`anchored_query`], [`custom_query`]) and sends the strings to Prometheus; config loading
//! calls [`validate_selector`] and [`validate_query`] so that a bad selector is reported by
//! `gate check`, not at 3 a.m.
//!
//! The design choice a newcomer would question: **no string is ever pasted into PromQL.** The
//! configured selector or query is parsed with `promql-parser`, the train matcher is added to
//! the AST, the surrounding `sum by (...)`, `increase(...[w])`, `label_replace(...)` and `@`
//! are AST nodes, and the result is printed with the parser's `Display`, which escapes label
//! values (`\\`, `"`, newlines). A train ID such as `x"} or vector(1) #` therefore stays one
//! label value; the property test at the bottom proves it for arbitrary strings.
//!
//! The train matcher is added to *every* series selector: plain and range selectors, inside
//! function calls, binary operations, subqueries, and aggregation parameters (which
//! `promql_parser::util::walk_expr_mut` does not visit), and to each group of an `or` matcher
//! list (`{a="1" or b="2"}` becomes `{a="1",t="x" or b="2",t="x"}`). A matcher the selector
//! already has on the train label is **replaced**: gate decides which trains a query reads.
//!
//! One train gets `label="id"`; several get `label=~"id1|id2"` with the IDs regex-escaped
//! (a `.` in an ID must not match any character).

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, SystemTime};

use promql_parser::label::{Labels, MatchOp, Matcher, Matchers};
use promql_parser::parser::token::{TokenType, T_EQL_REGEX, T_LOR, T_SUM};
use promql_parser::parser::value::ValueType;
use promql_parser::parser::{
    self, AggregateExpr, AtModifier, BinaryExpr, Call, Expr, Function, FunctionArgs, LabelModifier,
    MatrixSelector, ParenExpr, StringLiteral, VectorSelector,
};

use crate::duration::PromDuration;
use crate::train_id::TrainId;
use crate::vocab::Counter;

/// The placeholder for the window in `*_query` counters.
pub const WINDOW_PLACEHOLDER: &str = "$window";

/// A PromQL problem in a selector or query from the config.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
#[non_exhaustive]
pub struct QueryError {
    /// Byte offset within the PromQL text, when the parser gives one.
    pub offset: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl QueryError {
    fn new(message: impl Into<String>) -> Self {
        QueryError {
            offset: None,
            message: message.into(),
        }
    }
}

/// Which trains a query selects.
#[derive(Debug, Clone, Copy)]
pub enum TrainFilter<'a> {
    /// `label=~"a|b|c"` (regex-escaped IDs); a single train gets `label="a"`.
    Trains(&'a [TrainId]),
    /// No train matcher: every series with the train label (still grouped by it).
    All,
}

/// One train's anchored baseline term: counts over `window` ending at unix time `at`,
/// reported under the label value `train`.
#[derive(Debug, Clone, Copy)]
pub struct Anchored<'a> {
    /// The train the result is reported for.
    pub train: &'a TrainId,
    /// The train whose series are counted (`previous_train`), or `None` for service-wide
    /// (`before_start`).
    pub source: Option<&'a TrainId>,
    /// Window length.
    pub window: PromDuration,
    /// End of the window, unix seconds (rendered with the `@` modifier).
    pub at: i64,
}

/// Checks that a config selector is a valid PromQL vector selector.
///
/// It must be a plain series selector such as `http_requests_total{code=~"5.."}`: no range
/// (`[5m]`, gate adds the window), no function, no `@` (gate anchors baselines itself).
pub fn validate_selector(selector: &str) -> Result<(), QueryError> {
    parse_selector(selector).map(|_| ())
}

/// Checks that a full `*_query` (or `query()` argument) parses, with `$window` substituted.
///
/// The query must return an instant vector (gate wraps it in `sum by (<label>)`) and contain
/// at least one series selector (the train matcher goes there).
pub fn validate_query(promql: &str) -> Result<(), QueryError> {
    parse_query(&promql.replace(WINDOW_PLACEHOLDER, "5m")).map(|_| ())
}

/// Checks a `*_query` counter of the config for what can never work: besides
/// [`validate_query`], no `@` modifier (gate sets evaluation times itself, and anchors
/// baselines with `@`), and the train label `label` must survive the query once gate keeps it
/// through aggregations and vector matching (see [`keep_label`]): a function that drops it
/// (`absent`) or overwrites it (`label_replace`, `label_join`, `count_values` into it) would
/// leave every train without data, forever.
pub fn validate_counter_query(promql: &str, label: &str) -> Result<(), QueryError> {
    let mut expr = parse_query(&promql.replace(WINDOW_PLACEHOLDER, "5m"))?;
    if has_at(&expr) {
        return Err(QueryError::new(
            "the query uses the @ modifier, which would pin every window to one instant",
        ));
    }
    keep_label(&mut expr, label);
    match drops_label(&expr, label) {
        Some(why) => Err(QueryError::new(format!(
            "the result loses the train label `{label}`: {why}, so no train would ever have data"
        ))),
        None => Ok(()),
    }
}

/// `sum by (<label>) (increase(<selector>{<label> matcher}[<window>]))`, or for a
/// [`Counter::Query`] the query with `$window` substituted, the matcher added to every
/// selector, wrapped in `sum by (<label>)`.
pub fn window_query(
    counter: &Counter,
    window: PromDuration,
    label: &str,
    filter: TrainFilter<'_>,
) -> Result<String, QueryError> {
    let ids = filter_ids(filter);
    window_query_ids(counter, window, label, ids.as_deref())
}

/// Service-wide counts: `sum(increase(<selector>[<window>]))`, no train matcher.
pub fn service_query(counter: &Counter, window: PromDuration) -> Result<String, QueryError> {
    Ok(sum(counter_expr(counter, window, None)?).to_string())
}

/// One query for many trains' baselines: for each item,
/// `label_replace(sum(increase(<selector>{<label>="<source>"}[<window>] @ <at>)), "<label>", "<train>", "", "")`,
/// joined with `or`.
///
/// For a [`Counter::Query`] every selector and subquery of the query gets the `@ <at>`
/// modifier (replacing any it had); selectors inside a subquery keep following the
/// subquery's steps.
pub fn anchored_query(
    counter: &Counter,
    label: &str,
    items: &[Anchored<'_>],
) -> Result<String, QueryError> {
    let items: Vec<AnchoredIds<'_>> = items
        .iter()
        .map(|item| AnchoredIds {
            train: item.train.as_str(),
            source: item.source.map(TrainId::as_str),
            window: item.window,
            at: item.at,
        })
        .collect();
    anchored_query_ids(counter, label, &items)
}

/// A rule's custom `query("...")`: matcher added to every selector, wrapped in `sum by (<label>)`.
pub fn custom_query(
    promql: &str,
    label: &str,
    filter: TrainFilter<'_>,
) -> Result<String, QueryError> {
    let ids = filter_ids(filter);
    custom_query_ids(promql, label, ids.as_deref())
}

/// The train IDs of a filter as strings; `None` for [`TrainFilter::All`].
fn filter_ids<'a>(filter: TrainFilter<'a>) -> Option<Vec<&'a str>> {
    match filter {
        TrainFilter::Trains(trains) => Some(trains.iter().map(TrainId::as_str).collect()),
        TrainFilter::All => None,
    }
}

/// [`window_query`] over raw label values, so tests can pass strings no [`TrainId`] allows.
fn window_query_ids(
    counter: &Counter,
    window: PromDuration,
    label: &str,
    ids: Option<&[&str]>,
) -> Result<String, QueryError> {
    check_label_name(label)?;
    let matcher = ids.map(|ids| train_matcher(label, ids)).transpose()?;
    let mut expr = counter_expr(counter, window, matcher.as_ref())?;
    keep_label(&mut expr, label);
    Ok(sum_by(label, expr).to_string())
}

/// [`custom_query`] over raw label values.
fn custom_query_ids(promql: &str, label: &str, ids: Option<&[&str]>) -> Result<String, QueryError> {
    check_label_name(label)?;
    if promql.contains(WINDOW_PLACEHOLDER) {
        return Err(QueryError::new(format!(
            "`{WINDOW_PLACEHOLDER}` has no value in a rule's query(): write the range, e.g. [5m]"
        )));
    }
    let mut expr = parse_query(promql)?;
    if let Some(ids) = ids {
        let matcher = train_matcher(label, ids)?;
        for_each_selector_mut(&mut expr, &mut |vs| set_matcher(&mut vs.matchers, &matcher));
    }
    keep_label(&mut expr, label);
    Ok(sum_by(label, expr).to_string())
}

/// [`Anchored`] over raw label values.
struct AnchoredIds<'a> {
    train: &'a str,
    source: Option<&'a str>,
    window: PromDuration,
    at: i64,
}

/// [`anchored_query`] over raw label values.
fn anchored_query_ids(
    counter: &Counter,
    label: &str,
    items: &[AnchoredIds<'_>],
) -> Result<String, QueryError> {
    check_label_name(label)?;
    let terms = items
        .iter()
        .map(|item| {
            let matcher = item
                .source
                .map(|source| Matcher::new(MatchOp::Equal, label, source));
            let mut expr = counter_expr(counter, item.window, matcher.as_ref())?;
            anchor(&mut expr, &at_modifier(item.at)?);
            Ok(label_replace(sum(expr), label, item.train))
        })
        .collect::<Result<Vec<_>, QueryError>>()?;
    or_balanced(terms)
        .map(|expr| expr.to_string())
        .ok_or_else(|| QueryError::new("an anchored query needs at least one train"))
}

/// Joins terms with `or` as a balanced tree: `(a or b) or (c or d)`. `or` is a union of
/// disjoint label sets here, so grouping does not change the result, and a balanced tree
/// keeps the AST's depth logarithmic — ten thousand trains nest 14 deep, not 10,000 (which
/// would overflow the stack when the query is printed or dropped).
fn or_balanced(mut terms: Vec<Expr>) -> Option<Expr> {
    while terms.len() > 1 {
        let mut next = Vec::with_capacity(terms.len().div_ceil(2));
        let mut it = terms.into_iter();
        while let Some(lhs) = it.next() {
            next.push(match it.next() {
                Some(rhs) => {
                    let paren = |e: Expr| match e {
                        e @ Expr::Binary(_) => Expr::Paren(ParenExpr { expr: Box::new(e) }),
                        e => e,
                    };
                    Expr::Binary(BinaryExpr {
                        op: TokenType::new(T_LOR),
                        lhs: Box::new(paren(lhs)),
                        rhs: Box::new(paren(rhs)),
                        modifier: None,
                    })
                }
                None => lhs,
            });
        }
        terms = next;
    }
    terms.pop()
}

/// The counter as an expression over `window`, with `matcher` on every selector:
/// `increase(<selector>[<window>])`, or the query with `$window` substituted.
fn counter_expr(
    counter: &Counter,
    window: PromDuration,
    matcher: Option<&Matcher>,
) -> Result<Expr, QueryError> {
    match counter {
        Counter::Selector(selector) => {
            let mut vs = parse_selector(selector)?;
            if let Some(matcher) = matcher {
                set_matcher(&mut vs.matchers, matcher);
            }
            Ok(increase(vs, window))
        }
        Counter::Query(query) => {
            // The substituted text is a PromDuration's Display, which gate generates.
            let text = query.replace(WINDOW_PLACEHOLDER, &window.to_string());
            let mut expr = parse_query(&text)?;
            if let Some(matcher) = matcher {
                for_each_selector_mut(&mut expr, &mut |vs| set_matcher(&mut vs.matchers, matcher));
            }
            Ok(expr)
        }
    }
}

/// Parses PromQL text, refusing text whose printed form does not parse again: gate sends the
/// printed AST, never the text, so `rate(x[0])` — which parses, but prints as `[0s]`, which
/// neither promql-parser nor Prometheus accepts — must fail at `gate check`, not every cycle.
fn parse(text: &str) -> Result<Expr, QueryError> {
    let expr = parser::parse(text)
        .map_err(|message| QueryError::new(format!("invalid PromQL: {message}")))?;
    let printed = expr.to_string();
    parser::parse(&printed).map_err(|message| {
        QueryError::new(format!(
            "invalid PromQL: `{text}` would be sent as `{printed}`, which is invalid: {message}"
        ))
    })?;
    Ok(expr)
}

/// Parsed selectors by their text, at most [`PARSED_SELECTORS_MAX`] of them.
static PARSED_SELECTORS: LazyLock<Mutex<HashMap<String, VectorSelector>>> =
    LazyLock::new(Default::default);
/// Bound on [`PARSED_SELECTORS`]: a config has a handful of selectors, so the memo is cleared
/// rather than managed when something passes many different ones.
const PARSED_SELECTORS_MAX: usize = 256;

/// [`parse_selector_uncached`], memoized: anchored baseline queries and the evidence of every
/// train's baseline term build one term per train from the same few config selectors, and
/// parsing costs far more than cloning the parsed selector.
fn parse_selector(selector: &str) -> Result<VectorSelector, QueryError> {
    if let Some(vs) = PARSED_SELECTORS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(selector)
    {
        return Ok(vs.clone());
    }
    let vs = parse_selector_uncached(selector)?;
    let mut memo = PARSED_SELECTORS.lock().unwrap_or_else(|e| e.into_inner());
    if memo.len() >= PARSED_SELECTORS_MAX {
        memo.clear();
    }
    memo.insert(selector.to_string(), vs.clone());
    Ok(vs)
}

fn parse_selector_uncached(selector: &str) -> Result<VectorSelector, QueryError> {
    match parse(selector)? {
        Expr::VectorSelector(vs) if vs.at.is_some() => Err(QueryError::new(format!(
            "`{selector}` uses the @ modifier: give the plain counter selector; gate sets evaluation times itself"
        ))),
        Expr::VectorSelector(vs) => Ok(vs),
        Expr::MatrixSelector(_) => Err(QueryError::new(format!(
            "`{selector}` has a range: give the counter selector without `[...]`; gate adds the window"
        ))),
        _ => Err(QueryError::new(format!(
            "`{selector}` is not a series selector such as `http_requests_total{{code=~\"5..\"}}`; \
             write full PromQL in `errors_query`/`total_query` instead"
        ))),
    }
}

fn parse_query(text: &str) -> Result<Expr, QueryError> {
    let expr = parse(text)?;
    let returns = match expr.value_type() {
        ValueType::Vector => None,
        ValueType::Matrix => Some("a range vector"),
        ValueType::Scalar => Some("a scalar"),
        ValueType::String => Some("a string"),
    };
    if let Some(returns) = returns {
        return Err(QueryError::new(format!(
            "the query returns {returns}; it must return an instant vector"
        )));
    }
    let mut selectors = 0;
    for_each_selector(&expr, &mut |_| selectors += 1);
    if selectors == 0 {
        return Err(QueryError::new(
            "the query has no series selector, so gate cannot restrict it to a train",
        ));
    }
    Ok(expr)
}

/// Label names gate puts into PromQL: `[a-zA-Z_][a-zA-Z0-9_]*`, which every
/// Prometheus-compatible backend accepts without quoting.
fn check_label_name(label: &str) -> Result<(), QueryError> {
    let mut chars = label.chars();
    let valid = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        Ok(())
    } else {
        Err(QueryError::new(format!(
            "`{label}` is not a label name (letters, digits and _, not starting with a digit)"
        )))
    }
}

/// `label="id"` for one ID, `label=~"id1|id2"` (regex-escaped) for several.
fn train_matcher(label: &str, ids: &[&str]) -> Result<Matcher, QueryError> {
    match ids {
        [] => Err(QueryError::new(
            "a train-scoped query needs at least one train",
        )),
        [id] => Ok(Matcher::new(MatchOp::Equal, label, id)),
        ids => {
            let pattern = ids
                .iter()
                .map(|id| regex_escape(id))
                .collect::<Vec<_>>()
                .join("|");
            // `MatchOp::Re` carries a compiled Rust regex, which gate never uses: it only
            // prints the matcher, and Prometheus compiles the pattern. Compiling thousands of
            // alternatives here would be slow and can exceed the regex crate's size limit, so
            // the matcher is made with an empty pattern and given the real one as its value.
            let mut matcher = Matcher::new_matcher(T_EQL_REGEX, label.to_string(), String::new())
                .map_err(QueryError::new)?;
            matcher.value = pattern;
            Ok(matcher)
        }
    }
}

/// Escapes the regex metacharacters of RE2 (Prometheus) and Rust's `regex` alike, as Go's
/// `regexp.QuoteMeta` does.
fn regex_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// Puts `matcher` on a selector's matchers, replacing any matcher on the same label, in the
/// plain list or, for an `or` selector, in every group.
fn set_matcher(matchers: &mut Matchers, matcher: &Matcher) {
    matchers.matchers.retain(|m| m.name != matcher.name);
    if matchers.or_matchers.is_empty() {
        matchers.matchers.push(matcher.clone());
    } else {
        for group in &mut matchers.or_matchers {
            group.retain(|m| m.name != matcher.name);
            group.push(matcher.clone());
        }
    }
}

/// Calls `f` on every vector selector of `expr`, including those of range selectors and of
/// aggregation parameters.
fn for_each_selector_mut(expr: &mut Expr, f: &mut dyn FnMut(&mut VectorSelector)) {
    match expr {
        Expr::Aggregate(aggregate) => {
            if let Some(param) = &mut aggregate.param {
                for_each_selector_mut(param, f);
            }
            for_each_selector_mut(&mut aggregate.expr, f);
        }
        Expr::Unary(unary) => for_each_selector_mut(&mut unary.expr, f),
        Expr::Binary(binary) => {
            for_each_selector_mut(&mut binary.lhs, f);
            for_each_selector_mut(&mut binary.rhs, f);
        }
        Expr::Paren(paren) => for_each_selector_mut(&mut paren.expr, f),
        Expr::Subquery(subquery) => for_each_selector_mut(&mut subquery.expr, f),
        Expr::Call(call) => {
            for arg in &mut call.args.args {
                for_each_selector_mut(arg, f);
            }
        }
        Expr::Extension(extension) => {
            let mut children = extension.expr.children().to_vec();
            for child in &mut children {
                for_each_selector_mut(child, f);
            }
            extension.expr = extension.expr.with_new_children(children);
        }
        Expr::VectorSelector(vs) => f(vs),
        Expr::MatrixSelector(ms) => f(&mut ms.vs),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) => {}
    }
}

/// Calls `f` on every vector selector of `expr` (read-only twin of [`for_each_selector_mut`]).
fn for_each_selector<'e>(expr: &'e Expr, f: &mut dyn FnMut(&'e VectorSelector)) {
    match expr {
        Expr::Aggregate(aggregate) => {
            if let Some(param) = &aggregate.param {
                for_each_selector(param, f);
            }
            for_each_selector(&aggregate.expr, f);
        }
        Expr::Unary(unary) => for_each_selector(&unary.expr, f),
        Expr::Binary(binary) => {
            for_each_selector(&binary.lhs, f);
            for_each_selector(&binary.rhs, f);
        }
        Expr::Paren(paren) => for_each_selector(&paren.expr, f),
        Expr::Subquery(subquery) => for_each_selector(&subquery.expr, f),
        Expr::Call(call) => {
            for arg in &call.args.args {
                for_each_selector(arg, f);
            }
        }
        Expr::Extension(extension) => {
            for child in extension.expr.children() {
                for_each_selector(child, f);
            }
        }
        Expr::VectorSelector(vs) => f(vs),
        Expr::MatrixSelector(ms) => f(&ms.vs),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) => {}
    }
}

/// Keeps `label` through every aggregation and vector matching of `expr`, so that a query
/// written for one train (`sum(rate(x[5m]))`) is computed per train
/// (`sum by (train_id) (rate(x[5m]))`): `by (…)` gains the label, `without (…)` and
/// `ignoring (…)` lose it, `on (…)` gains it, and an aggregation without modifier gets
/// `by (label)`. Every selector already matches only the trains of the query, so for one
/// train the result is the same number; for several it is that number per train. Scalar
/// parts (aggregation parameters, `scalar(…)`) are left as written: a scalar has no labels.
fn keep_label(expr: &mut Expr, label: &str) {
    let keep = |modifier: &mut LabelModifier| match modifier {
        LabelModifier::Include(labels) => {
            if !labels.labels.iter().any(|l| l == label) {
                labels.labels.push(label.to_string());
            }
        }
        LabelModifier::Exclude(labels) => labels.labels.retain(|l| l != label),
    };
    match expr {
        Expr::Aggregate(aggregate) => {
            keep_label(&mut aggregate.expr, label);
            match &mut aggregate.modifier {
                Some(modifier) => keep(modifier),
                None => {
                    aggregate.modifier = Some(LabelModifier::Include(Labels::new(vec![label])));
                }
            }
        }
        Expr::Binary(binary) => {
            keep_label(&mut binary.lhs, label);
            keep_label(&mut binary.rhs, label);
            if let Some(matching) = binary.modifier.as_mut().and_then(|m| m.matching.as_mut()) {
                keep(matching);
            }
        }
        Expr::Unary(unary) => keep_label(&mut unary.expr, label),
        Expr::Paren(paren) => keep_label(&mut paren.expr, label),
        Expr::Subquery(subquery) => keep_label(&mut subquery.expr, label),
        Expr::Call(call) if call.func.return_type == ValueType::Scalar => {}
        Expr::Call(call) => {
            for arg in &mut call.args.args {
                keep_label(arg, label);
            }
        }
        Expr::Extension(extension) => {
            let mut children = extension.expr.children().to_vec();
            for child in &mut children {
                keep_label(child, label);
            }
            extension.expr = extension.expr.with_new_children(children);
        }
        Expr::VectorSelector(_)
        | Expr::MatrixSelector(_)
        | Expr::NumberLiteral(_)
        | Expr::StringLiteral(_) => {}
    }
}

/// Why the series `expr` returns would lack `label` (after [`keep_label`]), if they would.
fn drops_label(expr: &Expr, label: &str) -> Option<String> {
    if !matches!(expr.value_type(), ValueType::Vector | ValueType::Matrix) {
        return None;
    }
    let writes_label =
        |arg: Option<&Expr>| matches!(arg, Some(Expr::StringLiteral(s)) if s.val == label);
    match expr {
        Expr::Aggregate(aggregate) => {
            if aggregate.op.to_string() == "count_values"
                && writes_label(aggregate.param.as_deref())
            {
                return Some(format!("`count_values` writes its values into `{label}`"));
            }
            drops_label(&aggregate.expr, label)
        }
        Expr::Binary(binary) => {
            let (lhs, rhs) = (
                drops_label(&binary.lhs, label),
                drops_label(&binary.rhs, label),
            );
            match binary.op.to_string().as_str() {
                // `x or vector(0)`: the trains' series come from either side.
                "or" => lhs.and(rhs),
                // The left side's series, filtered by the right side's.
                "and" | "unless" => lhs,
                // Arithmetic and comparisons match series by their labels: both sides need it.
                _ => lhs.or(rhs),
            }
        }
        Expr::Unary(unary) => drops_label(&unary.expr, label),
        Expr::Paren(paren) => drops_label(&paren.expr, label),
        Expr::Subquery(subquery) => drops_label(&subquery.expr, label),
        Expr::Call(call) => {
            let name = call.func.name;
            match name {
                "absent" | "absent_over_time" | "vector" => {
                    Some(format!("`{name}()` returns a series without it"))
                }
                "label_replace" | "label_join"
                    if writes_label(call.args.args.get(1).map(|a| &**a)) =>
                {
                    Some(format!("`{name}()` overwrites it"))
                }
                _ => call
                    .args
                    .args
                    .iter()
                    .find_map(|arg| drops_label(arg, label)),
            }
        }
        Expr::Extension(extension) => extension
            .expr
            .children()
            .iter()
            .find_map(|child| drops_label(child, label)),
        Expr::VectorSelector(_)
        | Expr::MatrixSelector(_)
        | Expr::NumberLiteral(_)
        | Expr::StringLiteral(_) => None,
    }
}

/// Whether a selector or subquery of `expr` has an `@` modifier.
fn has_at(expr: &Expr) -> bool {
    match expr {
        Expr::Aggregate(aggregate) => {
            aggregate.param.as_deref().is_some_and(has_at) || has_at(&aggregate.expr)
        }
        Expr::Unary(unary) => has_at(&unary.expr),
        Expr::Binary(binary) => has_at(&binary.lhs) || has_at(&binary.rhs),
        Expr::Paren(paren) => has_at(&paren.expr),
        Expr::Subquery(subquery) => subquery.at.is_some() || has_at(&subquery.expr),
        Expr::Call(call) => call.args.args.iter().any(|arg| has_at(arg)),
        Expr::Extension(extension) => extension.expr.children().iter().any(has_at),
        Expr::VectorSelector(vs) => vs.at.is_some(),
        Expr::MatrixSelector(ms) => ms.vs.at.is_some(),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) => false,
    }
}

/// Sets `at` on every selector and subquery of `expr`, not descending into subqueries (whose
/// inner selectors follow the subquery's steps).
fn anchor(expr: &mut Expr, at: &AtModifier) {
    match expr {
        Expr::Aggregate(aggregate) => {
            if let Some(param) = &mut aggregate.param {
                anchor(param, at);
            }
            anchor(&mut aggregate.expr, at);
        }
        Expr::Unary(unary) => anchor(&mut unary.expr, at),
        Expr::Binary(binary) => {
            anchor(&mut binary.lhs, at);
            anchor(&mut binary.rhs, at);
        }
        Expr::Paren(paren) => anchor(&mut paren.expr, at),
        Expr::Subquery(subquery) => subquery.at = Some(at.clone()),
        Expr::Call(call) => {
            for arg in &mut call.args.args {
                anchor(arg, at);
            }
        }
        Expr::Extension(extension) => {
            let mut children = extension.expr.children().to_vec();
            for child in &mut children {
                anchor(child, at);
            }
            extension.expr = extension.expr.with_new_children(children);
        }
        Expr::VectorSelector(vs) => vs.at = Some(at.clone()),
        Expr::MatrixSelector(ms) => ms.vs.at = Some(at.clone()),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) => {}
    }
}

fn at_modifier(at: i64) -> Result<AtModifier, QueryError> {
    u64::try_from(at)
        .ok()
        .and_then(|secs| SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(secs)))
        .map(AtModifier::At)
        .ok_or_else(|| QueryError::new(format!("{at} is not a valid time for the @ modifier")))
}

/// `increase(<vs>[<window>])`.
fn increase(vs: VectorSelector, window: PromDuration) -> Expr {
    Expr::Call(Call {
        func: Function::new(
            "increase",
            vec![ValueType::Matrix],
            0,
            ValueType::Vector,
            false,
        ),
        args: FunctionArgs::new_args(Expr::MatrixSelector(MatrixSelector {
            vs,
            range: window.as_duration(),
        })),
    })
}

/// `sum(<expr>)`.
fn sum(expr: Expr) -> Expr {
    Expr::Aggregate(AggregateExpr {
        op: TokenType::new(T_SUM),
        expr: Box::new(expr),
        param: None,
        modifier: None,
    })
}

/// `sum by (<label>) (<expr>)`.
fn sum_by(label: &str, expr: Expr) -> Expr {
    Expr::Aggregate(AggregateExpr {
        op: TokenType::new(T_SUM),
        expr: Box::new(expr),
        param: None,
        modifier: Some(LabelModifier::Include(Labels::new(vec![label]))),
    })
}

/// `label_replace(<expr>, "<label>", "<value>", "", "")`: sets `label` to `value`.
fn label_replace(expr: Expr, label: &str, value: &str) -> Expr {
    let string = |val: &str| {
        Box::new(Expr::StringLiteral(StringLiteral {
            val: val.to_string(),
        }))
    };
    Expr::Call(Call {
        func: Function::new(
            "label_replace",
            vec![
                ValueType::Vector,
                ValueType::String,
                ValueType::String,
                ValueType::String,
                ValueType::String,
            ],
            0,
            ValueType::Vector,
            false,
        ),
        args: FunctionArgs {
            args: vec![
                Box::new(expr),
                string(label),
                string(value),
                string(""),
                string(""),
            ],
        },
    })
}

/// The raw samples of a selector counter over `range` before the query time:
/// `<selector>{<label> matcher}[<range>]`, a range vector for an instant query. `source`
/// selects the series: the trains of a [`TrainFilter`], or every series of the selector.
/// `None` for a [`Counter::Query`], which has no series of its own to read.
///
/// `gate replay` derives windows that grow with each evaluation (a train's events since its
/// start, the equal-length baseline before it) from these samples, the way `increase()` does.
pub fn samples_query(
    counter: &Counter,
    label: &str,
    filter: TrainFilter<'_>,
    range: PromDuration,
) -> Result<Option<String>, QueryError> {
    let Counter::Selector(selector) = counter else {
        return Ok(None);
    };
    check_label_name(label)?;
    let mut vs = parse_selector(selector)?;
    if let Some(ids) = filter_ids(filter) {
        set_matcher(&mut vs.matchers, &train_matcher(label, &ids)?);
    }
    Ok(Some(
        Expr::MatrixSelector(MatrixSelector {
            vs,
            range: range.as_duration(),
        })
        .to_string(),
    ))
}

/// When a train was first seen: `min(min_over_time(timestamp(<selector>{<label>="<train>"})[<lookback>:1m]))`,
/// the unix time of the earliest sample of the train's series within `lookback`, for
/// `gate eval` without `--started-at`. Only for selector counters: a full query has no single
/// series to date.
pub fn first_seen_query(
    counter: &Counter,
    label: &str,
    train: &TrainId,
    lookback: PromDuration,
) -> Result<String, QueryError> {
    let Counter::Selector(selector) = counter else {
        return Err(QueryError::new(
            "the start of a train cannot be found from a `*_query` SLI; give the start time explicitly"
                .to_string(),
        ));
    };
    let mut vs = parse_selector(selector)?;
    set_matcher(&mut vs.matchers, &train_matcher(label, &[train.as_str()])?);
    // The template holds no input: only a placeholder selector and a generated duration.
    let mut expr = parse(&format!(
        "min(min_over_time(timestamp(gate_placeholder)[{lookback}:1m]))"
    ))?;
    let mut vs = Some(vs);
    for_each_selector_mut(&mut expr, &mut |slot| {
        if let Some(vs) = vs.take() {
            *slot = vs;
        }
    });
    Ok(expr.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ids(list: &[&str]) -> Vec<TrainId> {
        list.iter().map(|id| id.parse().unwrap()).collect()
    }

    fn selector(text: &str) -> Counter {
        Counter::Selector(text.to_string())
    }

    fn dur(text: &str) -> PromDuration {
        text.parse().unwrap()
    }

    /// Found by the `promql_matcher` fuzz target: `rate(foo[0])` passed `gate check`, but the
    /// query built from it (`[0s]`) is refused by every parser, so each cycle failed.
    #[test]
    fn a_query_that_does_not_parse_once_printed_is_refused_at_check() {
        for text in ["rate(foo[0])", "sum(increase(foo[0]))"] {
            let err = validate_query(text).unwrap_err();
            assert!(
                err.message.contains("duration must be greater than 0"),
                "{err}"
            );
            assert!(custom_query(text, "train", TrainFilter::Trains(&ids(&["v1"]))).is_err());
        }
        let counter = Counter::Query("sum(increase(foo[$window])) - sum(rate(bar[0]))".to_string());
        assert!(window_query(&counter, dur("5m"), "train", TrainFilter::All).is_err());
        // A zero-free range still passes.
        validate_query("rate(foo[1m])").unwrap();
    }

    #[test]
    fn memoized_selectors_equal_fresh_parses_and_errors_are_not_remembered() {
        for text in [
            r#"http_requests_total{service="checkout", code=~"5.."}"#,
            r#"{__name__="up", job="a" or job="b"}"#,
        ] {
            let fresh = parse_selector_uncached(text).unwrap().to_string();
            assert_eq!(parse_selector(text).unwrap().to_string(), fresh);
            // The second call is answered from the memo; it must be the same selector.
            assert_eq!(parse_selector(text).unwrap().to_string(), fresh);
        }
        for _ in 0..2 {
            let err = parse_selector("rate(x[5m])").unwrap_err();
            assert!(err.message.contains("not a series selector"), "{err}");
        }
    }

    #[test]
    fn the_selector_memo_stays_bounded() {
        for i in 0..PARSED_SELECTORS_MAX + 10 {
            parse_selector(&format!("memo_bound_metric_{i}")).unwrap();
        }
        let len = PARSED_SELECTORS.lock().unwrap().len();
        assert!(len <= PARSED_SELECTORS_MAX, "{len} entries");
    }

    /// Every vector selector of a query, as (metric name, matchers as printed).
    fn selectors_of(query: &str) -> Vec<VectorSelector> {
        let expr = parser::parse(query).unwrap_or_else(|e| panic!("{query:?} does not parse: {e}"));
        let mut found = Vec::new();
        for_each_selector(&expr, &mut |vs| found.push(vs.clone()));
        found
    }

    /// The values of the matchers on `label` in every matcher group of a selector.
    fn label_matchers<'a>(vs: &'a VectorSelector, label: &str) -> Vec<&'a Matcher> {
        let groups: Vec<&Vec<Matcher>> = if vs.matchers.or_matchers.is_empty() {
            vec![&vs.matchers.matchers]
        } else {
            vs.matchers.or_matchers.iter().collect()
        };
        groups
            .into_iter()
            .flat_map(|group| group.iter().filter(|m| m.name == label))
            .collect()
    }

    #[test]
    fn window_query_one_train() {
        let q = window_query(
            &selector(r#"http_requests_total{service="checkout", code=~"5.."}"#),
            dur("1h"),
            "train_id",
            TrainFilter::Trains(&ids(&["t-123"])),
        )
        .unwrap();
        assert_eq!(
            q,
            r#"sum by (train_id) (increase(http_requests_total{code=~"5..",service="checkout",train_id="t-123"}[1h]))"#
        );
    }

    #[test]
    fn window_query_several_trains_escapes_dots() {
        let q = window_query(
            &selector("http_requests_total"),
            dur("90m"),
            "train_id",
            TrainFilter::Trains(&ids(&["2026.11.22-rc1", "t-2"])),
        )
        .unwrap();
        assert_eq!(
            q,
            r#"sum by (train_id) (increase(http_requests_total{train_id=~"2026\\.11\\.22-rc1|t-2"}[1h30m]))"#
        );
        let vs = &selectors_of(&q)[0];
        let m = label_matchers(vs, "train_id")[0];
        assert!(m.is_match("2026.11.22-rc1"));
        assert!(m.is_match("t-2"));
        assert!(
            !m.is_match("2026x11.22-rc1"),
            "a dot must not match any character"
        );
        assert!(!m.is_match("t-"));
    }

    #[test]
    fn thousands_of_trains_fit_in_one_matcher() {
        let many: Vec<TrainId> = (0..20_000)
            .map(|i| format!("release-2026.11.{i}-rc1").parse().unwrap())
            .collect();
        let q = window_query(
            &selector("x_total"),
            dur("1h"),
            "train_id",
            TrainFilter::Trains(&many),
        )
        .unwrap();
        let expected: Vec<String> = many
            .iter()
            .map(|id| id.as_str().replace('.', "\\\\."))
            .collect();
        assert_eq!(
            q,
            format!(
                r#"sum by (train_id) (increase(x_total{{train_id=~"{}"}}[1h]))"#,
                expected.join("|")
            )
        );
    }

    #[test]
    fn window_query_all_trains_has_no_matcher() {
        let q = window_query(
            &selector("x_total"),
            dur("5m"),
            "train_id",
            TrainFilter::All,
        )
        .unwrap();
        assert_eq!(q, "sum by (train_id) (increase(x_total[5m]))");
    }

    #[test]
    fn window_query_replaces_an_existing_train_matcher() {
        let q = window_query(
            &selector(r#"x_total{train_id!="", job="a"}"#),
            dur("5m"),
            "train_id",
            TrainFilter::Trains(&ids(&["t-1"])),
        )
        .unwrap();
        assert_eq!(
            q,
            r#"sum by (train_id) (increase(x_total{job="a",train_id="t-1"}[5m]))"#
        );
    }

    #[test]
    fn window_query_for_a_full_query() {
        let counter = Counter::Query(
            "sum by (train_id) (increase(a_total[$window])) + sum by (train_id) (increase(b_total{x=\"1\"}[$window]))"
                .to_string(),
        );
        let q = window_query(
            &counter,
            dur("30m"),
            "train_id",
            TrainFilter::Trains(&ids(&["t-9"])),
        )
        .unwrap();
        assert_eq!(
            q,
            r#"sum by (train_id) (sum by (train_id) (increase(a_total{train_id="t-9"}[30m])) + sum by (train_id) (increase(b_total{train_id="t-9",x="1"}[30m])))"#
        );
    }

    #[test]
    fn or_matcher_groups_each_get_the_train() {
        let q = window_query(
            &selector(r#"x_total{code="500" or code="503"}"#),
            dur("5m"),
            "train_id",
            TrainFilter::Trains(&ids(&["t-1"])),
        )
        .unwrap();
        assert_eq!(
            q,
            r#"sum by (train_id) (increase(x_total{code="500", train_id="t-1" or code="503", train_id="t-1"}[5m]))"#
        );
        let vs = &selectors_of(&q)[0];
        assert_eq!(vs.matchers.or_matchers.len(), 2);
        for group in &vs.matchers.or_matchers {
            assert!(
                group
                    .iter()
                    .any(|m| m.name == "train_id" && m.value == "t-1"),
                "{group:?}"
            );
        }
    }

    #[test]
    fn aggregation_params_and_subqueries_get_the_matcher() {
        let q = custom_query(
            "topk(scalar(count(k)), x) or quantile_over_time(0.9, y[5m]) \
             or max_over_time(rate(z[5m])[1h:1m]) or count_values(\"v\", w)",
            "train_id",
            TrainFilter::Trains(&ids(&["t-1"])),
        )
        .unwrap();
        let found = selectors_of(&q);
        let names: Vec<_> = found.iter().map(|vs| vs.name.clone().unwrap()).collect();
        assert_eq!(names, ["k", "x", "y", "z", "w"]);
        for vs in &found {
            let ms = label_matchers(vs, "train_id");
            assert_eq!(ms.len(), 1, "{vs}");
            assert_eq!(ms[0].value, "t-1");
        }
        assert!(
            q.starts_with(
                "sum by (train_id) (topk by (train_id) (scalar(count(k{train_id=\"t-1\"}))"
            ),
            "{q}"
        );
    }

    #[test]
    fn service_query_has_no_matcher() {
        assert_eq!(
            service_query(&selector(r#"x_total{job="a"}"#), dur("30d")).unwrap(),
            r#"sum(increase(x_total{job="a"}[30d]))"#
        );
        assert_eq!(
            service_query(
                &Counter::Query("sum(rate(x_total[$window])) * 60".into()),
                dur("1h")
            )
            .unwrap(),
            "sum(sum(rate(x_total[1h])) * 60)"
        );
    }

    #[test]
    fn anchored_query_builds_one_term_per_train() {
        let t2 = "t-2".parse::<TrainId>().unwrap();
        let t1 = "t-1".parse::<TrainId>().unwrap();
        let t3 = "t-3".parse::<TrainId>().unwrap();
        let q = anchored_query(
            &selector(r#"x_total{code=~"5.."}"#),
            "train_id",
            &[
                Anchored {
                    train: &t2,
                    source: Some(&t1),
                    window: dur("1h"),
                    at: 1_700_000_000,
                },
                Anchored {
                    train: &t3,
                    source: None,
                    window: dur("30m"),
                    at: 1_700_003_600,
                },
            ],
        )
        .unwrap();
        assert_eq!(
            q,
            r#"label_replace(sum(increase(x_total{code=~"5..",train_id="t-1"}[1h] @ 1700000000.000)), "train_id", "t-2", "", "") or label_replace(sum(increase(x_total{code=~"5.."}[30m] @ 1700003600.000)), "train_id", "t-3", "", "")"#
        );
        assert_eq!(selectors_of(&q).len(), 2);
    }

    #[test]
    fn anchored_query_for_a_full_query_anchors_selectors_and_subqueries() {
        let t2 = "t-2".parse::<TrainId>().unwrap();
        let t1 = "t-1".parse::<TrainId>().unwrap();
        let q = anchored_query(
            &Counter::Query(
                "increase(a_total[$window]) + max_over_time(rate(b_total[1m])[$window:1m])".into(),
            ),
            "train_id",
            &[Anchored {
                train: &t2,
                source: Some(&t1),
                window: dur("1h"),
                at: 100,
            }],
        )
        .unwrap();
        assert_eq!(
            q,
            r#"label_replace(sum(increase(a_total{train_id="t-1"}[1h] @ 100.000) + max_over_time(rate(b_total{train_id="t-1"}[1m])[1h:1m] @ 100.000)), "train_id", "t-2", "", "")"#
        );
        assert!(parser::parse(&q).is_ok());
    }

    #[test]
    fn builders_refuse_what_they_cannot_build() {
        let none: [TrainId; 0] = [];
        assert!(window_query(
            &selector("x"),
            dur("5m"),
            "train_id",
            TrainFilter::Trains(&none)
        )
        .is_err());
        assert!(window_query(&selector("x"), dur("5m"), "train id", TrainFilter::All).is_err());
        assert!(window_query(&selector("x"), dur("5m"), "0t", TrainFilter::All).is_err());
        assert!(anchored_query(&selector("x"), "train_id", &[]).is_err());
        assert!(custom_query("sum(x[$window])", "train_id", TrainFilter::All).is_err());
        let t = "t".parse::<TrainId>().unwrap();
        let before_epoch = Anchored {
            train: &t,
            source: None,
            window: dur("5m"),
            at: -1,
        };
        assert!(anchored_query(&selector("x"), "train_id", &[before_epoch]).is_err());
    }

    #[test]
    fn validate_selector_accepts_plain_selectors_only() {
        for ok in [
            "x_total",
            r#"x_total{code=~"5..", job="a"}"#,
            r#"{__name__="x", a="1" or b="2"}"#,
            "x offset 5m",
        ] {
            assert_eq!(validate_selector(ok), Ok(()), "{ok}");
        }
        for (bad, needle) in [
            ("x_total[5m]", "has a range"),
            ("rate(x_total[5m])", "not a series selector"),
            ("sum(x_total)", "not a series selector"),
            ("x_total @ 100", "@ modifier"),
            ("x_total{", "invalid PromQL"),
            ("", "invalid PromQL"),
        ] {
            let err = validate_selector(bad).unwrap_err();
            assert!(err.message.contains(needle), "{bad}: {}", err.message);
        }
    }

    #[test]
    fn validate_query_substitutes_the_window() {
        assert_eq!(validate_query("sum(increase(x_total[$window]))"), Ok(()));
        assert_eq!(validate_query("x_total"), Ok(()));
        for (bad, needle) in [
            ("sum(increase(x_total[$window])", "invalid PromQL"),
            ("x_total[$window]", "range vector"),
            ("1 + 1", "scalar"),
            ("vector(1)", "no series selector"),
        ] {
            let err = validate_query(bad).unwrap_err();
            assert!(err.message.contains(needle), "{bad}: {}", err.message);
        }
    }

    #[test]
    fn aggregations_keep_the_train_label() {
        let q = |promql: &str| {
            window_query(
                &Counter::Query(promql.to_string()),
                dur("1h"),
                "train_id",
                TrainFilter::Trains(&ids(&["t-1"])),
            )
            .unwrap()
        };
        for (written, built) in [
            (
                "sum(rate(x[$window]))",
                r#"sum by (train_id) (sum by (train_id) (rate(x{train_id="t-1"}[1h])))"#,
            ),
            (
                "sum by (job) (increase(x[$window]))",
                r#"sum by (train_id) (sum by (job, train_id) (increase(x{train_id="t-1"}[1h])))"#,
            ),
            (
                "sum without (instance, train_id) (increase(x[$window]))",
                r#"sum by (train_id) (sum without (instance) (increase(x{train_id="t-1"}[1h])))"#,
            ),
            (
                "sum(increase(a[$window])) / ignoring(train_id, code) sum(increase(b[$window]))",
                r#"sum by (train_id) (sum by (train_id) (increase(a{train_id="t-1"}[1h])) / ignoring (code) sum by (train_id) (increase(b{train_id="t-1"}[1h])))"#,
            ),
            (
                "max(increase(a[$window])) * on(job) group_left(v) max by (job) (b)",
                r#"sum by (train_id) (max by (train_id) (increase(a{train_id="t-1"}[1h])) * on (job, train_id) group_left (v) max by (job, train_id) (b{train_id="t-1"}))"#,
            ),
            (
                "sum(increase(x[$window])) or vector(0)",
                r#"sum by (train_id) (sum by (train_id) (increase(x{train_id="t-1"}[1h])) or vector(0))"#,
            ),
        ] {
            let got = q(written);
            assert_eq!(got, built, "{written}");
            assert_eq!(parser::parse(&got).unwrap().to_string(), got, "re-parses");
            assert_eq!(
                validate_counter_query(written, "train_id"),
                Ok(()),
                "{written}"
            );
        }
        // Service-wide queries are not per train: left as written.
        assert_eq!(
            service_query(&Counter::Query("sum(rate(x[$window]))".into()), dur("1h")).unwrap(),
            "sum(sum(rate(x[1h])))"
        );
    }

    #[test]
    fn counter_queries_that_lose_the_train_label_or_pin_a_time_are_refused() {
        for (bad, needle) in [
            (
                "absent(increase(x_total[$window]))",
                "`absent()` returns a series without it",
            ),
            (
                "label_replace(increase(x[$window]), \"train_id\", \"all\", \"\", \"\")",
                "`label_replace()` overwrites it",
            ),
            (
                "count_values(\"train_id\", increase(x[$window]))",
                "`count_values` writes its values into `train_id`",
            ),
            (
                "increase(x[$window]) / vector(2)",
                "`vector()` returns a series without it",
            ),
            ("sum(increase(x[$window] @ 1700000000))", "@ modifier"),
            (
                "max_over_time(rate(x[5m])[$window:1m] @ end())",
                "@ modifier",
            ),
        ] {
            let err = validate_counter_query(bad, "train_id").unwrap_err();
            assert!(err.message.contains(needle), "{bad}: {}", err.message);
        }
        // Another label may be rewritten freely.
        assert_eq!(
            validate_counter_query(
                "label_replace(increase(x[$window]), \"job\", \"a\", \"\", \"\")",
                "train_id"
            ),
            Ok(())
        );
    }

    /// The counters of the property test and how many selectors each has.
    fn counters() -> Vec<(Counter, usize)> {
        vec![
            (selector(r#"http_requests_total{code=~"5..", train_id="other"}"#), 1),
            (Counter::Query("sum by (train_id) (increase(a[$window])) / on(train_id) sum by (train_id) (increase(b{x=\"y\" or z=\"w\"}[$window]))".into()), 2),
            (Counter::Query("topk(1, a) + quantile_over_time(0.5, rate(b[1m])[$window:1m])".into()), 2),
        ]
    }

    proptest! {
        /// Arbitrary label values cannot escape their matcher: the query parses back, every
        /// selector carries exactly the given value, and no selector was added or lost.
        #[test]
        fn train_values_cannot_inject_promql(
            id in prop_oneof![
                any::<String>(),
                Just("\"} or vector(1) #".to_string()),
                Just("a\\\"b\nc{}".to_string()),
                "[\"\\\\{}()|.*\\n\\r\\t #`'a-zé☃]{0,12}",
            ],
            other in "[\"\\\\{}|.*\\n a-z]{0,6}",
        ) {
            let window = PromDuration::from_secs(300);
            for (counter, expected) in counters() {
                let q = window_query_ids(&counter, window, "train_id", Some(&[id.as_str()])).unwrap();
                let found = selectors_of(&q);
                prop_assert_eq!(found.len(), expected, "{}", q);
                for vs in &found {
                    let ms = label_matchers(vs, "train_id");
                    prop_assert!(!ms.is_empty());
                    for m in ms {
                        prop_assert_eq!(&m.op, &MatchOp::Equal);
                        prop_assert_eq!(&m.value, &id);
                    }
                }

                // Several trains: the regex matches exactly the given values.
                let q = window_query_ids(&counter, window, "train_id", Some(&[id.as_str(), other.as_str()])).unwrap();
                let found = selectors_of(&q);
                prop_assert_eq!(found.len(), expected, "{}", q);
                for vs in &found {
                    for m in label_matchers(vs, "train_id") {
                        prop_assert!(m.is_match(&id), "{} does not match {:?}", m, id);
                        prop_assert!(m.is_match(&other), "{} does not match {:?}", m, other);
                        let longer = format!("{id}{other}x");
                        prop_assert!(!m.is_match(&longer), "{} matches {:?}", m, longer);
                    }
                }

                // Anchored: the source is the matcher, the train the label_replace value.
                let items = [AnchoredIds { train: &other, source: Some(&id), window, at: 1_700_000_000 }];
                let q = anchored_query_ids(&counter, "train_id", &items).unwrap();
                let expr = parser::parse(&q).unwrap();
                let mut found = Vec::new();
                for_each_selector(&expr, &mut |vs| found.push(vs.clone()));
                prop_assert_eq!(found.len(), expected, "{}", q);
                for vs in &found {
                    for m in label_matchers(vs, "train_id") {
                        prop_assert_eq!(&m.value, &id);
                    }
                }
                let Expr::Call(call) = &expr else { panic!("{q}: not a call") };
                let Expr::StringLiteral(value) = call.args.args[2].as_ref() else { panic!("{q}") };
                prop_assert_eq!(&value.val, &other);
            }

            let q = custom_query_ids("sum(rate(a[5m])) + b", "train_id", Some(&[id.as_str()])).unwrap();
            let found = selectors_of(&q);
            prop_assert_eq!(found.len(), 2, "{}", q);
            for vs in &found {
                prop_assert_eq!(&label_matchers(vs, "train_id")[0].value, &id);
            }
        }
    }

    #[test]
    fn first_seen_query_dates_the_trains_series() {
        let id: TrainId = "t.1".parse().unwrap();
        let q = first_seen_query(
            &Counter::Selector(r#"http_requests_total{service="checkout"}"#.into()),
            "train_id",
            &id,
            PromDuration::from_secs(86_400),
        )
        .unwrap();
        assert_eq!(
            q,
            r#"min(min_over_time(timestamp(http_requests_total{service="checkout",train_id="t.1"})[1d:1m]))"#
        );
        assert!(first_seen_query(
            &Counter::Query("sum(rate(x[$window]))".into()),
            "train_id",
            &id,
            PromDuration::from_secs(60)
        )
        .is_err());
    }
}
