//! Schemas for the types this crate borrows from `gate-rules` ([`Decision`], [`TrainId`]),
//! which stays free of OpenAPI concerns, and the serde helpers the wire types share.
//!
//! A borrowed type is named in a field's `#[schema(value_type = …)]` by its stand-in here; a
//! test checks that each stand-in lists exactly the values the real type serializes to.

use serde::{Deserialize, Deserializer};
use utoipa::ToSchema;

#[allow(unused_imports)]
use gate_rules::{Decision, TrainId};

/// What gate tells the pipeline (the schema of [`Decision`]).
#[derive(ToSchema)]
#[schema(as = Decision)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum DecisionSchema {
    /// Still verifying.
    Pending,
    /// Verification passed.
    Promote,
    /// Hold the train.
    Pause,
    /// Undo the train (latched).
    Rollback,
}

/// A train ID (the schema of [`TrainId`]): letters, digits and `._:-/`, 1–128 characters.
#[derive(ToSchema)]
#[schema(as = TrainId, value_type = String, pattern = r"^[A-Za-z0-9._:/-]{1,128}$", example = "t-123")]
#[allow(dead_code)]
pub struct TrainIdSchema(String);

/// Deserializes a field that may be absent (`None`), `null` (`Some(None)`) or a value.
pub fn present<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

#[cfg(test)]
mod tests {
    use utoipa::PartialSchema;

    use super::*;

    #[test]
    fn the_decision_schema_lists_every_decision() {
        let schema = serde_json::to_value(DecisionSchema::schema()).unwrap();
        let names: Vec<serde_json::Value> = Decision::ALL
            .iter()
            .map(|d| serde_json::to_value(d).unwrap())
            .collect();
        assert_eq!(schema["enum"], serde_json::Value::Array(names), "{schema}");
    }

    #[test]
    fn the_train_id_pattern_agrees_with_validation() {
        let schema = serde_json::to_value(TrainIdSchema::schema()).unwrap();
        let pattern = schema["pattern"].as_str().unwrap();
        assert_eq!(
            pattern,
            format!("^[A-Za-z0-9._:/-]{{1,{}}}$", gate_rules::train_id::MAX_LEN)
        );
    }
}
