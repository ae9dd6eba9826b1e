//! Metrics protocol (to be implemented).
