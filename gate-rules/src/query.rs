//! PromQL building through the AST.

use crate::config::Counter;
use crate::duration::PromDuration;
use crate::train_id::TrainId;

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
pub fn validate_selector(selector: &str) -> Result<(), QueryError> {
    let _ = selector;
    todo!()
}

/// Checks that a full `*_query` (or `query()` argument) parses, with `$window` substituted.
pub fn validate_query(promql: &str) -> Result<(), QueryError> {
    let _ = promql;
    todo!()
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
    let _ = (counter, window, label, filter);
    todo!()
}

/// Service-wide counts: `sum(increase(<selector>[<window>]))`, no train matcher.
pub fn service_query(counter: &Counter, window: PromDuration) -> Result<String, QueryError> {
    let _ = (counter, window);
    todo!()
}

/// One query for many trains' baselines: for each item,
/// `label_replace(sum(increase(<selector>{<label>="<source>"}[<window>] @ <at>)), "<label>", "<train>", "", "")`,
/// joined with `or`.
pub fn anchored_query(
    counter: &Counter,
    label: &str,
    items: &[Anchored<'_>],
) -> Result<String, QueryError> {
    let _ = (counter, label, items);
    todo!()
}

/// A rule's custom `query("...")`: matcher added to every selector, wrapped in `sum by (<label>)`.
pub fn custom_query(promql: &str, label: &str, filter: TrainFilter<'_>) -> Result<String, QueryError> {
    let _ = (promql, label, filter);
    todo!()
}
