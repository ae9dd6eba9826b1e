//! Run configuration (to be implemented).
/// Placeholder.
#[derive(Debug, Clone)]
pub struct Config;
