//! The one error body of the API: `{"error": {"code", "message", "details"?}}`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Every error the API answers, malformed requests included.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorDetail {
    /// A stable, machine-readable code, e.g. `train_not_found`, `conflict`, `invalid_body`
    /// (docs/api.md lists them with their statuses).
    #[schema(example = "conflict")]
    pub code: String,
    /// A sentence for people.
    pub message: String,
    /// One line per problem, for a refused config (`invalid_config`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<String>,
}

impl ErrorBody {
    /// An error body.
    pub fn new(code: impl Into<String>, message: impl Into<String>, details: Vec<String>) -> Self {
        ErrorBody {
            error: ErrorDetail {
                code: code.into(),
                message: message.into(),
                details,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details_appear_only_when_there_are_some() {
        let plain = ErrorBody::new("not_found", "no such endpoint", Vec::new());
        assert_eq!(
            serde_json::to_value(&plain).unwrap(),
            serde_json::json!({"error": {"code": "not_found", "message": "no such endpoint"}})
        );
        let config = ErrorBody::new("invalid_config", "bad", vec!["a:1:1: x".into()]);
        assert_eq!(
            serde_json::to_value(&config).unwrap()["error"]["details"],
            serde_json::json!(["a:1:1: x"])
        );
    }
}
