//! Built-in search planner (to be implemented).
