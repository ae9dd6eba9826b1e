//! The planning phase: ask the planner for follow-ups, create their nodes, and finish the node.
//!
//! A round asks for at most `planner.batch` minus the experiments already waiting in the queue,
//! so the queue stays short and every proposal is made from the freshest results.

use autoresearch_engine::WorkSpec;

use super::ExperimentWorkflow;
use super::lifecycle::{Fail, Stop};
use crate::config::PlannerKind;
use crate::model::{FailureKind, NodeResult, NodeStatus};
use crate::planner::search::SearchPlanner;
use crate::planner::{Plan, PlanRequest, Trial, TrialState};

impl ExperimentWorkflow {
    /// Plans children of a completed node, records them in its result and completes it.
    pub(crate) fn plan_children(
        &self,
        spec: &crate::model::NodeSpec,
    ) -> Result<Vec<WorkSpec>, Stop> {
        let id = spec.node_id.as_str();
        let children = self.propose(id).map_err(Stop::Fail)?;
        let mut result: NodeResult = self
            .nodes
            .read_file(id, "result.json")
            .ok()
            .flatten()
            .unwrap_or_default();
        result.children = children.iter().map(|c| c.id.clone()).collect();
        self.nodes.write_result(id, &result).map_err(|e| {
            Stop::Fail(Fail::new(
                FailureKind::Unexpected,
                NodeStatus::Planning,
                e.to_string(),
            ))
        })?;
        self.nodes
            .set_status(id, NodeStatus::Completed)
            .map_err(|e| {
                Stop::Fail(Fail::new(
                    FailureKind::Unexpected,
                    NodeStatus::Planning,
                    e.to_string(),
                ))
            })?;
        Ok(children)
    }

    /// Follow-ups after a failure, so the search goes on from the best node.
    pub(crate) fn plan_followups(&self, id: &str) -> Vec<WorkSpec> {
        match self.propose(id) {
            Ok(children) => children,
            Err(f) => {
                tracing::warn!(node = id, "planning after a failure failed: {}", f.message);
                Vec::new()
            }
        }
    }

    /// Children listed in a completed node's result that are still waiting (re-derivation).
    pub(crate) fn queued_children(&self, id: &str) -> Vec<WorkSpec> {
        let result: Option<NodeResult> = self.nodes.read_file(id, "result.json").ok().flatten();
        result
            .map(|r| r.children)
            .unwrap_or_default()
            .iter()
            .filter_map(|c| self.nodes.get(c))
            .filter(|n| n.status == NodeStatus::Queued)
            .filter(|n| {
                !self
                    .wd
                    .node_dir(&n.spec.node_id)
                    .join(super::DROPPED_MARKER)
                    .exists()
            })
            .map(|n| Self::work_spec(&n.spec))
            .collect()
    }

    fn propose(&self, from: &str) -> Result<Vec<WorkSpec>, Fail> {
        if self.config.planner.kind == PlannerKind::None {
            return Ok(Vec::new());
        }
        let all = self.nodes.all();
        let waiting = all
            .iter()
            .filter(|n| n.status == NodeStatus::Queued)
            .count();
        let max_proposals = self.config.batch().saturating_sub(waiting);
        if max_proposals == 0 {
            return Ok(Vec::new());
        }
        let history: Vec<Trial> = all
            .iter()
            .map(|n| Trial {
                node_id: n.spec.node_id.clone(),
                params: n.spec.params.clone(),
                primary: n.primary,
                state: match n.status {
                    NodeStatus::Completed | NodeStatus::Planning if n.primary.is_some() => {
                        TrialState::Completed
                    }
                    NodeStatus::Failed => TrialState::Failed,
                    NodeStatus::Completed | NodeStatus::Planning => TrialState::Failed,
                    _ => TrialState::Pending,
                },
            })
            .collect();
        let state = self.ledger.snapshot();
        let req = PlanRequest {
            config: &self.config,
            history: &history,
            from,
            plateau: state.plateau,
            max_proposals,
            seed: self.config.planner.seed,
        };
        let plan = SearchPlanner.plan(&req);
        let _ = self.ledger.update(|s| s.planner_rounds += 1);
        let proposals = match plan {
            Plan::Stop(reason) => {
                tracing::info!(node = from, %reason, "planner: stop");
                self.set_planner_stop(Some(format!("planner: {reason}")));
                return Ok(Vec::new());
            }
            Plan::Launch(p) => p,
        };
        if !proposals.is_empty() {
            self.set_planner_stop(None);
        }
        let mut out = Vec::new();
        for p in proposals {
            let parent = p.parent.clone().unwrap_or_else(|| from.to_string());
            let spec = self
                .new_node(
                    &p.name,
                    Some(parent),
                    p.hypothesis,
                    p.params,
                    p.changes,
                    p.priority.unwrap_or(0.0),
                )
                .map_err(|e| {
                    Fail::new(FailureKind::Planner, NodeStatus::Planning, e.to_string())
                })?;
            out.push(Self::work_spec(&spec));
        }
        Ok(out)
    }
}
