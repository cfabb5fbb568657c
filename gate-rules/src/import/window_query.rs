//! Window-templated PromQL (Sloth's `{{.window}}`) as a gate `*_query` with `$window`.
//!
//! Sloth's event queries are rates over `{{.window}}`, aggregated to one series:
//! `sum(rate(http_requests_total{code=~"5.."}[{{.window}}]))`. gate needs two things more of a
//! `*_query` (see the config docs): it must **count** events — `requests` and `errors` are
//! shown as counts and `min_requests` compares against them — and it must keep the **train
//! label**, which gate groups by. So, through the PromQL AST:
//!
//! * `rate(x[{{.window}}])` becomes `increase(x[$window])`. Prometheus computes `increase` as
//!   `rate × window` with the same extrapolation, so the error ratio (and thus every burn rate)
//!   is unchanged; only the unit becomes events.
//! * every aggregation keeps `train_id`: `sum(…)` becomes `sum by (train_id) (…)`,
//!   `by (job)` becomes `by (job, train_id)`, `without (train_id)` loses it; binary
//!   operators matching `on (…)` match on `train_id` too.
//!
//! Anything else over the window (`irate`, `*_over_time`, a subquery, a fixed range such as
//! `[2m]`) has no event-count meaning and is refused, as is a query without any window.

use std::time::Duration;

use promql_parser::label::Labels;
use promql_parser::parser::value::ValueType;
use promql_parser::parser::{self, Expr, Function, LabelModifier};
use promql_parser::util::visitor::{walk_expr_mut, ExprVisitorMut};

use crate::query::WINDOW_PLACEHOLDER;

/// The label gate groups by (its default `train_label`).
pub const TRAIN_LABEL: &str = "train_id";

/// A range no real query uses, standing in for the window while the AST is rewritten.
const SENTINEL_SECS: u64 = 10_007;

/// Whether `promql` uses the Sloth window template.
pub fn has_window(promql: &str) -> bool {
    !template_spans(promql).is_empty()
}

/// The byte ranges of every `{{.window}}` (spaces inside the braces allowed).
fn template_spans(promql: &str) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut from = 0;
    while let Some(start) = promql[from..].find("{{").map(|i| from + i) {
        let Some(end) = promql[start..].find("}}").map(|i| start + i + 2) else {
            break;
        };
        if promql[start + 2..end - 2].trim() == ".window" {
            spans.push((start, end));
        }
        from = end;
    }
    spans
}

/// The gate `*_query` for a window-templated event query, or why it cannot count events.
pub fn convert(promql: &str) -> Result<String, String> {
    let sentinel = Duration::from_secs(SENTINEL_SECS);
    let sentinel_text = format!("{SENTINEL_SECS}s");
    if promql.contains(&sentinel_text) {
        return Err(format!("the query contains `{sentinel_text}`"));
    }
    if let Some(other) = other_template(promql) {
        return Err(format!(
            "the template `{other}` has no value in gate; only `{{{{.window}}}}` does"
        ));
    }
    let mut text = promql.to_string();
    for (start, end) in template_spans(promql).into_iter().rev() {
        text.replace_range(start..end, &sentinel_text);
    }
    let mut expr = parser::parse(&text).map_err(|e| format!("not valid PromQL: {e}"))?;
    let mut rewrite = Rewrite {
        sentinel,
        counted: 0,
        window_expected: false,
    };
    walk_expr_mut(&mut rewrite, &mut expr)?;
    if rewrite.counted == 0 {
        return Err(
            "no rate(…[{{.window}}]) or increase(…[{{.window}}]) in it: gate counts events \
             over its windows"
                .to_string(),
        );
    }
    let printed = expr.to_string();
    let shown_sentinel = printed_duration(sentinel);
    Ok(printed.replace(
        &format!("[{shown_sentinel}]"),
        &format!("[{WINDOW_PLACEHOLDER}]"),
    ))
}

/// A `{{…}}` template other than the window, if any.
fn other_template(promql: &str) -> Option<String> {
    let mut from = 0;
    while let Some(start) = promql[from..].find("{{").map(|i| from + i) {
        let end = promql[start..]
            .find("}}")
            .map_or(promql.len(), |i| start + i + 2);
        let inner = promql[start..end]
            .trim_start_matches("{{")
            .trim_end_matches("}}");
        if inner.trim() != ".window" {
            return Some(promql[start..end].to_string());
        }
        from = end;
    }
    None
}

/// How the parser prints a range of this length.
fn printed_duration(d: Duration) -> String {
    let expr = parser::parse(&format!("x[{}s]", d.as_secs())).map(|e| e.to_string());
    expr.ok()
        .and_then(|e| {
            let start = e.find('[')? + 1;
            let end = e.rfind(']')?;
            Some(e[start..end].to_string())
        })
        .unwrap_or_else(|| format!("{}s", d.as_secs()))
}

struct Rewrite {
    sentinel: Duration,
    counted: usize,
    /// The next node is the range selector of a `rate`/`increase` over the window.
    window_expected: bool,
}

impl Rewrite {
    fn is_window(&self, range: Duration) -> bool {
        range == self.sentinel
    }
}

impl ExprVisitorMut for Rewrite {
    type Error = String;

    fn pre_visit(&mut self, expr: &mut Expr) -> Result<bool, String> {
        match expr {
            Expr::Call(call) => {
                let window_arg = call.args.args.iter().find_map(|arg| match arg.as_ref() {
                    Expr::MatrixSelector(m) => Some(m.range),
                    _ => None,
                });
                match (call.func.name, window_arg) {
                    ("rate" | "increase", Some(range)) if self.is_window(range) => {
                        call.func = Function::new(
                            "increase",
                            vec![ValueType::Matrix],
                            0,
                            ValueType::Vector,
                            false,
                        );
                        self.counted += 1;
                        self.window_expected = true;
                        return Ok(true);
                    }
                    (name, Some(range)) if self.is_window(range) => {
                        return Err(format!(
                            "`{name}(…[{{{{.window}}}}])` does not count events; only rate() \
                             and increase() over the window do"
                        ));
                    }
                    _ => {}
                }
            }
            Expr::MatrixSelector(m) => {
                if std::mem::take(&mut self.window_expected) && self.is_window(m.range) {
                    return Ok(true);
                }
                return Err(if self.is_window(m.range) {
                    "a range over {{.window}} outside rate()/increase()".to_string()
                } else {
                    format!(
                        "the fixed range [{}] does not follow gate's windows; use [{{{{.window}}}}]",
                        printed_duration(m.range)
                    )
                });
            }
            Expr::Subquery(_) => {
                return Err("subqueries are not event counts".to_string());
            }
            Expr::Aggregate(agg) => {
                agg.modifier = Some(match agg.modifier.take() {
                    None => LabelModifier::Include(Labels::new(vec![TRAIN_LABEL])),
                    Some(LabelModifier::Include(labels)) => {
                        LabelModifier::Include(with_train(labels))
                    }
                    Some(LabelModifier::Exclude(labels)) => {
                        LabelModifier::Exclude(without_train(labels))
                    }
                });
            }
            Expr::Binary(binary) => {
                if let Some(modifier) = binary.modifier.as_mut() {
                    modifier.matching = match modifier.matching.take() {
                        Some(LabelModifier::Include(labels)) => {
                            Some(LabelModifier::Include(with_train(labels)))
                        }
                        Some(LabelModifier::Exclude(labels)) => {
                            Some(LabelModifier::Exclude(without_train(labels)))
                        }
                        None => None,
                    };
                }
            }
            _ => {}
        }
        Ok(true)
    }

    fn post_visit(&mut self, _: &mut Expr) -> Result<bool, String> {
        Ok(true)
    }
}

fn with_train(labels: Labels) -> Labels {
    if labels.labels.iter().any(|l| l == TRAIN_LABEL) {
        labels
    } else {
        labels.append(TRAIN_LABEL.to_string())
    }
}

fn without_train(mut labels: Labels) -> Labels {
    labels.labels.retain(|l| l != TRAIN_LABEL);
    labels
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_over_the_window_become_per_train_counts() {
        assert_eq!(
            convert(r#"sum(rate(http_requests_total{code=~"5.."}[{{.window}}]))"#).unwrap(),
            r#"sum by (train_id) (increase(http_requests_total{code=~"5.."}[$window]))"#
        );
        let latency = "(\n  sum(rate(a_count{verb!=\"WATCH\"}[{{ .window }}]))\n  -\n  \
                       sum by (le) (rate(a_bucket{le=\"0.4\"}[{{.window}}]))\n)";
        assert_eq!(
            convert(latency).unwrap(),
            r#"(sum by (train_id) (increase(a_count{verb!="WATCH"}[$window])) - sum by (le, train_id) (increase(a_bucket{le="0.4"}[$window])))"#
        );
        let converted = convert("sum(rate(x[{{.window}}]))").unwrap();
        crate::query::validate_query(&converted).unwrap();
    }

    #[test]
    fn what_does_not_count_events_over_the_window_is_refused() {
        for (query, why) in [
            ("sum(irate(x[{{.window}}]))", "irate"),
            ("sum(rate(x[5m]))", "fixed range"),
            ("sum(x)", "no rate"),
            ("avg_over_time(x[{{.window}}])", "avg_over_time"),
            (
                "sum(rate(x{job=\"{{.service}}\"}[{{.window}}]))",
                "{{.service}}",
            ),
            ("max_over_time(rate(x[{{.window}}])[1h:1m])", "subqueries"),
            ("sum(rate(x[{{.window}}]", "not valid PromQL"),
        ] {
            let err = convert(query).unwrap_err();
            assert!(err.contains(why), "{query}: {err}");
        }
    }
}
