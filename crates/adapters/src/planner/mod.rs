//! Planners: who proposes the next experiments. `search` is built in and deterministic;
//! `agent` asks a coding-agent CLI ([`agent`]); `none` runs only the baseline and seeds.

pub mod agent;
pub mod agent_context;
pub mod round;
pub mod search;

use serde_json::{Map, Value};

/// One finished or pending experiment, as the planner sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Trial {
    /// Node id.
    pub node_id: String,
    /// Parameter values.
    pub params: Map<String, Value>,
    /// Primary metric (None while pending or when failed): the aggregate of the experiment's
    /// runs (`objective.aggregate`) when it ran more than once.
    pub primary: Option<f64>,
    /// `Pending` (queued or running), `Completed` or `Failed`.
    pub state: TrialState,
    /// The spread of its runs (n, min, max, stdev, MAD), when it ran more than once.
    pub spread: Option<crate::model::Spread>,
}

/// Where a trial is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrialState {
    /// Queued or running.
    Pending,
    /// Finished with a primary metric.
    Completed,
    /// Failed.
    Failed,
}

/// What a planner is asked.
#[derive(Debug, Clone)]
pub struct PlanRequest<'a> {
    /// The run's configuration (objective, search space, limits).
    pub config: &'a crate::config::Config,
    /// Every experiment so far, in creation order (pending ones included).
    pub history: &'a [Trial],
    /// The node whose planning phase this is.
    pub from: &'a str,
    /// Completed experiments in a row without improvement.
    pub plateau: u32,
    /// How many proposals at most.
    pub max_proposals: usize,
    /// Seed for deterministic choices.
    pub seed: u64,
}

/// One proposed experiment.
#[derive(Debug, Clone, PartialEq)]
pub struct Proposal {
    /// Short name (sanitized into the node id).
    pub name: String,
    /// Why it might help.
    pub hypothesis: String,
    /// Full parameter set.
    pub params: Map<String, Value>,
    /// Code change description (agent planner only).
    pub changes: Option<String>,
    /// Priority (lower runs first); None for the workflow's default.
    pub priority: Option<f64>,
    /// The node it derives from (its parent in the tree); None for `from`.
    pub parent: Option<String>,
}

/// A planner's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// Run these.
    Launch(Vec<Proposal>),
    /// Nothing left worth trying; the reason.
    Stop(String),
}
