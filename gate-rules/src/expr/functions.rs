//! gate's rule functions and the static types of the rule language: names, parameters, what
//! each returns, the fields of `error_delta(...)`, and how operators print in messages.
//! [`super::check`] reads this table; adding a rule function starts here.

use cel::common::ast::operators;

use crate::duration::PromDuration;
use crate::vocab::SignalRef;

/// gate's rule functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Func {
    BurnRate,
    ErrorRatio,
    Requests,
    Errors,
    ServiceBurnRate,
    ServiceErrorRatio,
    BudgetRemaining,
    ErrorDelta,
    Age,
    Query,
}

/// What an argument of a gate function is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Param {
    Slo,
    Window,
    Promql,
}

impl Param {
    pub(super) fn name(self) -> &'static str {
        match self {
            Param::Slo => "slo",
            Param::Window => "window",
            Param::Promql => "promql",
        }
    }
}

impl Func {
    pub(super) const ALL: [Func; 10] = [
        Func::BurnRate,
        Func::ErrorRatio,
        Func::Requests,
        Func::Errors,
        Func::ServiceBurnRate,
        Func::ServiceErrorRatio,
        Func::BudgetRemaining,
        Func::ErrorDelta,
        Func::Age,
        Func::Query,
    ];

    pub(super) fn name(self) -> &'static str {
        match self {
            Func::BurnRate => "burn_rate",
            Func::ErrorRatio => "error_ratio",
            Func::Requests => "requests",
            Func::Errors => "errors",
            Func::ServiceBurnRate => "service_burn_rate",
            Func::ServiceErrorRatio => "service_error_ratio",
            Func::BudgetRemaining => "budget_remaining",
            Func::ErrorDelta => "error_delta",
            Func::Age => "age",
            Func::Query => "query",
        }
    }

    pub(super) fn params(self) -> &'static [Param] {
        match self {
            Func::BurnRate
            | Func::ErrorRatio
            | Func::Requests
            | Func::Errors
            | Func::ServiceBurnRate
            | Func::ServiceErrorRatio => &[Param::Slo, Param::Window],
            Func::BudgetRemaining | Func::ErrorDelta => &[Param::Slo],
            Func::Age => &[],
            Func::Query => &[Param::Promql],
        }
    }

    pub(super) fn returns(self) -> Ty {
        match self {
            Func::ErrorDelta => Ty::Delta,
            _ => Ty::Double,
        }
    }

    pub(super) fn by_name(name: &str) -> Option<Func> {
        Func::ALL.into_iter().find(|f| f.name() == name)
    }

    /// `burn_rate(slo, window)`.
    pub(super) fn signature(self) -> String {
        let params: Vec<&str> = self.params().iter().map(|p| p.name()).collect();
        format!("{}({})", self.name(), params.join(", "))
    }

    pub(super) fn signal(self, args: &[String]) -> Option<SignalRef> {
        let slo = || args.first().cloned();
        let window = || args.get(1)?.parse::<PromDuration>().ok();
        Some(match self {
            Func::BurnRate => SignalRef::BurnRate {
                slo: slo()?,
                window: window()?,
            },
            Func::ErrorRatio => SignalRef::ErrorRatio {
                slo: slo()?,
                window: window()?,
            },
            Func::Requests => SignalRef::Requests {
                slo: slo()?,
                window: window()?,
            },
            Func::Errors => SignalRef::Errors {
                slo: slo()?,
                window: window()?,
            },
            Func::ServiceBurnRate => SignalRef::ServiceBurnRate {
                slo: slo()?,
                window: window()?,
            },
            Func::ServiceErrorRatio => SignalRef::ServiceErrorRatio {
                slo: slo()?,
                window: window()?,
            },
            Func::BudgetRemaining => SignalRef::BudgetRemaining { slo: slo()? },
            Func::ErrorDelta => SignalRef::ErrorDelta { slo: slo()? },
            Func::Age => SignalRef::Age,
            Func::Query => SignalRef::Query {
                promql: args.first()?.clone(),
            },
        })
    }
}

/// The fields of `error_delta(...)` and their types.
pub(super) const DELTA_FIELDS: [(&str, Ty); 10] = [
    ("absolute", Ty::Double),
    ("relative", Ty::Double),
    ("e_value", Ty::Double),
    ("p_value", Ty::Double),
    ("significant", Ty::Bool),
    ("ratio_lower", Ty::Double),
    ("looks", Ty::Double),
    ("dispersion", Ty::Double),
    ("train_ratio", Ty::Double),
    ("baseline_ratio", Ty::Double),
];

/// The static type of a sub-expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ty {
    Bool,
    Int,
    Uint,
    Double,
    String,
    Bytes,
    Null,
    /// `error_delta(...)`.
    Delta,
    /// Not known: a problem was already reported for it, so it is compatible with anything.
    Unknown,
}

impl Ty {
    pub(super) fn numeric(self) -> bool {
        matches!(self, Ty::Int | Ty::Uint | Ty::Double)
    }

    /// "a double", "an int", ...
    pub(super) fn article(self) -> &'static str {
        match self {
            Ty::Bool => "a bool",
            Ty::Int => "an int",
            Ty::Uint => "a uint",
            Ty::Double => "a double",
            Ty::String => "a string",
            Ty::Bytes => "bytes",
            Ty::Null => "null",
            Ty::Delta => "an error_delta",
            Ty::Unknown => "unknown",
        }
    }

    /// How to turn a value of this type into the bool a condition needs.
    pub(super) fn bool_hint(self) -> Option<String> {
        match self {
            Ty::Int | Ty::Uint | Ty::Double => {
                Some("compare it with a threshold, e.g. `burn_rate(\"slo\", \"1h\") > 14.4`".into())
            }
            Ty::Delta => {
                Some("use one of its fields, e.g. `.significant` or `.relative > 0.5`".into())
            }
            _ => None,
        }
    }
}

pub(super) fn is_operator(name: &str) -> bool {
    name.starts_with('_')
        || name.starts_with('@')
        || name == operators::LOGICAL_NOT
        || name == operators::NEGATE
}

/// An operator as written in CEL source.
pub(super) fn operator_text(name: &str) -> &str {
    match name {
        operators::LOGICAL_NOT => "!",
        operators::NEGATE => "-",
        operators::IN => "in",
        operators::INDEX | operators::OPT_INDEX => "[]",
        operators::OPT_SELECT => ".?",
        operators::CONDITIONAL => "?:",
        _ => name.trim_matches('_'),
    }
}

/// The closest candidate to `word`, if it is close enough to be a likely typo.
pub(super) fn closest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    crate::hint::closest(word, candidates, 2)
}

pub(super) fn all_functions() -> String {
    Func::ALL
        .iter()
        .map(|f| f.signature())
        .collect::<Vec<_>>()
        .join(", ")
}
