//! Train IDs: the one function that decides what a train ID may be.
//!
//! Train IDs travel into PromQL label matchers, URLs, SQLite and webhook payloads. They are
//! restricted to letters, digits and `._:-/`, at most 128 characters, so they are readable in
//! every one of those places. The restriction is not what keeps PromQL safe — matchers are
//! built through the PromQL AST (see [`crate::query`]) — but it makes hostile IDs fail early
//! with a clear message.

use std::fmt;

/// Longest accepted train ID, in characters.
pub const MAX_LEN: usize = 128;

/// A validated train ID.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct TrainId(String);

/// Why a train ID was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TrainIdError {
    /// The ID is empty.
    #[error("train ID is empty")]
    Empty,
    /// The ID is longer than [`MAX_LEN`].
    #[error("train ID is {0} characters long; at most {MAX_LEN} are allowed")]
    TooLong(usize),
    /// The ID contains a character outside letters, digits and `._:-/`.
    #[error("train ID {id:?} contains {ch:?} at position {pos}; allowed are letters, digits and . _ : - /")]
    BadChar {
        /// The refused ID.
        id: String,
        /// The first offending character.
        ch: char,
        /// Its position (0-based, in characters).
        pos: usize,
    },
}

/// Validates a train ID.
pub fn validate(id: &str) -> Result<TrainId, TrainIdError> {
    if id.is_empty() {
        return Err(TrainIdError::Empty);
    }
    let len = id.chars().count();
    if len > MAX_LEN {
        return Err(TrainIdError::TooLong(len));
    }
    if let Some((pos, ch)) = id
        .chars()
        .enumerate()
        .find(|(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-' | '/')))
    {
        return Err(TrainIdError::BadChar {
            id: id.to_string(),
            ch,
            pos,
        });
    }
    Ok(TrainId(id.to_string()))
}

impl TrainId {
    /// The ID as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for TrainId {
    type Err = TrainIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        validate(s)
    }
}

impl fmt::Display for TrainId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for TrainId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl<'de> serde::Deserialize<'de> for TrainId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        validate(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_usual_ids() {
        for id in [
            "t-123",
            "2026.11.22-rc1",
            "team/checkout:42",
            "A_b",
            &"x".repeat(128),
        ] {
            assert_eq!(validate(id).unwrap().as_str(), id);
        }
    }

    #[test]
    fn refuses_hostile_ids() {
        assert_eq!(validate(""), Err(TrainIdError::Empty));
        assert_eq!(validate(&"x".repeat(129)), Err(TrainIdError::TooLong(129)));
        for id in [
            "a\"b",
            "a}",
            "x\" or vector(1)",
            "a\\b",
            "a\nb",
            "a b",
            "é",
            "a{b",
            "a|b",
            "a~",
        ] {
            assert!(
                matches!(validate(id), Err(TrainIdError::BadChar { .. })),
                "{id:?} accepted"
            );
        }
    }
}
