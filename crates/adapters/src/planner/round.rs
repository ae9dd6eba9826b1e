//! The interface a planning round calls: whatever the planner (`search`, `none`, `agent`), it
//! is handed a snapshot of every node and the number of proposals wanted, and answers with
//! proposals or "stop". The call is async (an agent's call can take minutes) and may watch
//! [`RoundInput::cancel`] to give up when the engine is interrupted. What an agent's calls cost
//! and its failures are booked through [`RoundInput::book`].
//!
//! The round itself (single flight, dedup, node creation, crash safety) is the workflow's; see
//! `docs/planning.md`.

use std::future::Future;
use std::pin::Pin;

use tokio_util::sync::CancellationToken;

use super::agent::AgentPlanner;
use super::search::SearchPlanner;
use super::{Plan, PlanRequest, Trial, TrialState};
use crate::agent::{AgentPhase, Cost};
use crate::config::{Config, PlannerKind};
use crate::model::NodeStatus;
use crate::workdir::Workdir;
use crate::workflow::nodes::NodeInfo;

/// The future a [`RoundPlanner`] returns.
pub type PlanFuture<'a> = Pin<Box<dyn Future<Output = Result<Plan, PlannerError>> + Send + 'a>>;

/// A planner that could not answer (the round then creates nothing; the error is logged).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct PlannerError {
    /// What went wrong, naming the planner's command or file where there is one.
    pub message: String,
}

/// What one planning round shows the planner.
#[derive(Clone)]
pub struct RoundInput<'a> {
    /// The run's configuration (objective, search space, limits).
    pub config: &'a Config,
    /// Every node, in creation order: completed, failed, queued and running ones.
    pub nodes: &'a [NodeInfo],
    /// The finished nodes (completed or failed) this round answers, oldest first: every
    /// completion since the previous round, coalesced.
    pub answering: &'a [String],
    /// The node planned from (the latest of `answering`): the default parent of proposals.
    pub from: &'a str,
    /// Exactly how many proposals keep the concurrency slots busy (see `docs/planning.md`);
    /// at least 1 (a round that wants none does not call the planner).
    pub wanted: usize,
    /// Experiments waiting in the queue right now.
    pub queued: usize,
    /// Experiments between admission and analysis right now (jobs holding a slot).
    pub running: usize,
    /// Completed experiments in a row without improvement.
    pub plateau: u32,
    /// Fires when the engine is interrupted: a long call should stop and return an error.
    pub cancel: CancellationToken,
    /// Where the planner books what its agent calls cost and its failures (`state.json`).
    pub book: &'a dyn RoundBook,
}

impl std::fmt::Debug for RoundInput<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoundInput")
            .field("nodes", &self.nodes.len())
            .field("answering", &self.answering)
            .finish_non_exhaustive()
    }
}

/// What a planner books in the run's state (`state.json`): the cost of its agent calls and the
/// rounds whose agent failed. Implemented by the workflow; a planner without an agent ignores it.
pub trait RoundBook: Send + Sync {
    /// Adds what a call made for `node` (the node planned from) cost.
    fn add_cost(&self, node: &str, phase: AgentPhase, cost: Cost);
    /// Records a round whose agent failed and fell back (a warning and a count).
    fn planner_failed(&self, node: &str, message: &str);
    /// Dollars the agent has cost so far (0 when none were reported).
    fn spent_usd(&self) -> f64;
}

/// A planner as a planning round calls it.
pub trait RoundPlanner: Send + Sync {
    /// The planner's name for logs (`search`, `agent`, ...).
    fn name(&self) -> &'static str;

    /// Proposes up to `input.wanted` experiments, or stops. Proposals beyond `wanted` and
    /// proposals equal to an existing node (parameters and changes) are dropped by the round.
    fn plan<'a>(&'a self, input: &'a RoundInput<'a>) -> PlanFuture<'a>;
}

/// The planner of `config` in the workdir `wd`, or `None` for `planner.kind = "none"` (no
/// follow-ups). Fails when the agent's prompt templates cannot be loaded (the message names the
/// override file).
pub fn for_config(
    config: &Config,
    wd: &Workdir,
) -> Result<Option<Box<dyn RoundPlanner>>, PlannerError> {
    Ok(match (config.planner.kind, &config.planner.agent) {
        (PlannerKind::Search, _) => Some(Box::new(SearchPlanner)),
        (PlannerKind::None, _) => None,
        (PlannerKind::Agent, Some(agent)) => Some(Box::new(
            AgentPlanner::new(config, agent, wd).map_err(|e| PlannerError {
                message: e.to_string(),
            })?,
        )),
        (PlannerKind::Agent, None) => {
            return Err(PlannerError {
                message: "planner.kind = \"agent\" needs planner.agent".into(),
            });
        }
    })
}

/// The planner's view of the nodes: finished ones with their metric (the aggregate of their
/// runs) and its spread, the rest pending.
pub fn trials(nodes: &[NodeInfo]) -> Vec<Trial> {
    nodes
        .iter()
        .map(|n| Trial {
            node_id: n.spec.node_id.clone(),
            params: n.spec.params.clone(),
            primary: n.primary,
            spread: n.spread,
            state: match n.status {
                NodeStatus::Completed | NodeStatus::Planning if n.primary.is_some() => {
                    TrialState::Completed
                }
                NodeStatus::Completed | NodeStatus::Planning | NodeStatus::Failed => {
                    TrialState::Failed
                }
                _ => TrialState::Pending,
            },
        })
        .collect()
}

impl RoundPlanner for SearchPlanner {
    fn name(&self) -> &'static str {
        "search"
    }

    fn plan<'a>(&'a self, input: &'a RoundInput<'a>) -> PlanFuture<'a> {
        Box::pin(async move {
            let history = trials(input.nodes);
            let req = PlanRequest {
                config: input.config,
                history: &history,
                from: input.from,
                plateau: input.plateau,
                max_proposals: input.wanted,
                seed: input.config.planner.seed,
            };
            Ok(SearchPlanner::plan(self, &req))
        })
    }
}
