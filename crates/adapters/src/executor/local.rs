//! Local executor (to be implemented).
