//! The agent phases: three of a node's lifecycle (`plan`, `apply`, `analyze`) and two run-level
//! ones the supervisor starts (`report`, `ask`).

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
    /// Write the run's final report, `final_report.md` (read-only, run-level).
    Report,
    /// Answer a user's question about the run (read-only, run-level).
    Ask,
}

impl AgentPhase {
    /// All phases.
    pub const ALL: [AgentPhase; 5] = [
        AgentPhase::Plan,
        AgentPhase::Apply,
        AgentPhase::Analyze,
        AgentPhase::Report,
        AgentPhase::Ask,
    ];

    /// `plan`, `apply`, `analyze`, `report` or `ask`.
    pub fn as_str(self) -> &'static str {
        match self {
            AgentPhase::Plan => "plan",
            AgentPhase::Apply => "apply",
            AgentPhase::Analyze => "analyze",
            AgentPhase::Report => "report",
            AgentPhase::Ask => "ask",
        }
    }

    /// Parses `plan`, `apply`, `analyze`, `report` or `ask`.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// Whether the agent may write files in this phase (only `apply`).
    pub fn writes(self) -> bool {
        self == AgentPhase::Apply
    }

    /// Whether calls of this phase are about the whole run rather than one node (`report`,
    /// `ask`): journaled under `engine/agent/`, `AUTORESEARCH_NODE_ID` empty.
    pub fn run_level(self) -> bool {
        matches!(self, AgentPhase::Report | AgentPhase::Ask)
    }
}

impl std::fmt::Display for AgentPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
