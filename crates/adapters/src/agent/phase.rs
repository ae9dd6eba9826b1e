//! The three agent phases of a node's lifecycle.

use serde::{Deserialize, Serialize};

/// Which agent phase a call belongs to (given to the agent as `AUTORESEARCH_AGENT_PHASE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AgentPhase {
    /// Propose the next experiments (read-only).
    Plan,
    /// Make a proposal's code change in its worktree (write-enabled there only).
    Apply,
    /// Read a finished job's output and state findings (read-only).
    Analyze,
}

impl AgentPhase {
    /// All phases.
    pub const ALL: [AgentPhase; 3] = [AgentPhase::Plan, AgentPhase::Apply, AgentPhase::Analyze];

    /// `plan`, `apply` or `analyze`.
    pub fn as_str(self) -> &'static str {
        match self {
            AgentPhase::Plan => "plan",
            AgentPhase::Apply => "apply",
            AgentPhase::Analyze => "analyze",
        }
    }

    /// Parses `plan`, `apply` or `analyze`.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// Whether the agent may write files in this phase (only `apply`).
    pub fn writes(self) -> bool {
        self == AgentPhase::Apply
    }
}

impl std::fmt::Display for AgentPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
