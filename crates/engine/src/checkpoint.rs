//! `engine/checkpoint.json` (being written).

/// A checkpoint that failed validation.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct CheckpointError(pub String);
