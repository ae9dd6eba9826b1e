//! The unit of work: [`WorkSpec`] and its validation rules.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One unit of work. Lower `priority` runs first; equal priorities run in insertion order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkSpec {
    /// Unique among queued and running specs; matches `[A-Za-z0-9._-]{1,128}`.
    pub id: String,
    /// Lower runs first. Must be finite.
    pub priority: f64,
    /// Free-form kind, interpreted by the workflow.
    pub kind: String,
    /// Free-form JSON object, interpreted by the workflow.
    pub payload: Map<String, Value>,
}

/// Why a [`WorkSpec`] is not acceptable.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SpecError {
    /// The id does not match `[A-Za-z0-9._-]{1,128}`.
    #[error("id {0:?} is not valid: expected 1 to 128 characters from A-Z a-z 0-9 . _ -")]
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

/// True when `id` matches `[A-Za-z0-9._-]{1,128}`.
pub fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}
