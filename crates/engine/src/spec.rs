//! The unit of work: [`WorkSpec`] and its validation rules.

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One unit of work. Lower `priority` runs first; equal priorities run in insertion order.
///
/// Its `Deserialize` is the checkpoint's (and the control inbox's) rule for a spec: the id is
/// checked, a missing `priority` is 0, a missing `kind` empty, a missing `payload` `{}`, and a
/// key repeated inside the payload is an error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkSpec {
    /// Unique among queued and running specs; matches `[A-Za-z0-9._-]{1,128}`, not only dots.
    #[serde(deserialize_with = "valid_id")]
    pub id: String,
    /// Lower runs first. Must be finite.
    #[serde(default)]
    pub priority: f64,
    /// Free-form kind, interpreted by the workflow.
    #[serde(default)]
    pub kind: String,
    /// Free-form JSON object, interpreted by the workflow.
    #[serde(default, deserialize_with = "crate::serde_error::unique_keys_object")]
    pub payload: Map<String, Value>,
}

fn valid_id<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let id = String::deserialize(d)?;
    if is_valid_id(&id) {
        Ok(id)
    } else {
        Err(de::Error::invalid_value(de::Unexpected::Str(&id), &ID_RULE))
    }
}

/// Why a [`WorkSpec`] is not acceptable.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SpecError {
    /// The id does not match `[A-Za-z0-9._-]{1,128}`, or is only dots.
    #[error("id {0:?} is not valid: expected {ID_RULE}")]
    BadId(String),
    /// The priority is NaN or infinite.
    #[error("priority of {id:?} must be a finite number, found {priority}")]
    NonFinitePriority {
        /// The spec's id.
        id: String,
        /// The offending value.
        priority: f64,
    },
}

impl WorkSpec {
    /// Builds a spec and validates its id and priority.
    pub fn new(
        id: impl Into<String>,
        priority: f64,
        kind: impl Into<String>,
        payload: Map<String, Value>,
    ) -> Result<Self, SpecError> {
        let spec = WorkSpec {
            id: id.into(),
            priority,
            kind: kind.into(),
            payload,
        };
        spec.validate()?;
        Ok(spec)
    }

    /// Checks the id pattern and that the priority is finite.
    pub fn validate(&self) -> Result<(), SpecError> {
        if !is_valid_id(&self.id) {
            return Err(SpecError::BadId(self.id.clone()));
        }
        if !self.priority.is_finite() {
            return Err(SpecError::NonFinitePriority {
                id: self.id.clone(),
                priority: self.priority,
            });
        }
        Ok(())
    }
}

/// What a valid id looks like, for messages.
pub const ID_RULE: &str = "an id of 1 to 128 characters from A-Z a-z 0-9 . _ - (not only dots)";

/// True when `id` matches `[A-Za-z0-9._-]{1,128}` and is not only dots (`.` and `..` name
/// folders that are not the spec's own when a workflow uses the id as a file name).
pub fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
        && !id.bytes().all(|b| b == b'.')
}

#[cfg(test)]
mod tests {
    use super::is_valid_id;

    #[test]
    fn ids_of_only_dots_are_refused() {
        for bad in [".", "..", "...", "", "a b", "a/b"] {
            assert!(!is_valid_id(bad), "{bad:?}");
        }
        for good in ["a", ".a", "a..b", "007_workers-8.5"] {
            assert!(is_valid_id(good), "{good:?}");
        }
    }
}
