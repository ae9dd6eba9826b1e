//! The coding agent's phases of a node (see `docs/agent.md`) and what they cost:
//!
//! - `applying` ([`ExperimentWorkflow::apply_phase`]): a clean worktree at the parent's commit,
//!   the agent's `apply` call in it (told the protected paths), then the engine's commit, its
//!   ref, the protected-path check and `commit.json`. Idempotent: a committed change (its ref
//!   exists) is reused; an uncommitted one is redone from a clean worktree.
//! - the optional analysis ([`ExperimentWorkflow::agent_analysis`], `planner.agent.analyze`):
//!   after a node's job, before its planning round; writes `runs/<id>/analysis.md` and
//!   `findings` in `result.json`. The engine has already decided `improved`.
//! - Cost: every call's fresh cost goes to `state.json`'s `agent_cost` (per run, phase and
//!   node); at start it is rebuilt from the call journals, so a crash between a call and its
//!   booking loses nothing. The workflow is the planner's [`RoundBook`].

use autoresearch_engine::RunContext;

use super::events::NodeEvent;
use super::stop::{Fail, Stop, tail};
use super::workspace::ws_stop;
use super::{ExperimentWorkflow, Notice, now_millis};
use crate::agent::cost_log::AgentCostSummary;
use crate::agent::journal::CallJournal;
use crate::agent::step_prompts::{
    AnalyzeContext, ApplyContext, render_analyze_prompt, render_apply_prompt,
};
use crate::agent::{AgentPhase, Cost, CostBook, FailureKind as CallFailure};
use crate::config::format_number;
use crate::model::{FailureKind, NodeCommit, NodeResult, NodeSpec, NodeStatus};
use crate::planner::round::RoundBook;
use crate::workspace::{ApplyState, CommitInfo};

/// Lines of the job's output given to the analysis (its last 8 KiB at most).
const ANALYSIS_TAIL_LINES: usize = 200;

impl ExperimentWorkflow {
    /// Books what an agent call cost (a failed write is only logged: the next start rebuilds
    /// the cost from the call journals).
    pub(crate) fn book_cost(&self, node: &str, phase: AgentPhase, cost: Cost) {
        if let Err(e) = self.ledger.add_agent_cost(node, phase, cost) {
            tracing::warn!(node, "could not record the agent's cost in state.json: {e}");
        }
    }

    /// Dollars the agent has cost the run so far: the engine's calls (`state.json`) plus the
    /// supervisor's `report`/`ask` calls (`logs/agent/costs.jsonl`), the figure
    /// `limits.agent_cost_usd` is checked against.
    pub(crate) fn agent_spent_usd(&self) -> f64 {
        let state = self.ledger.snapshot();
        AgentCostSummary::spent_usd(state.agent_cost.as_ref(), &self.wd.root)
    }

    /// Rebuilds `agent_cost` from the call journals of every node (at start, before anything
    /// runs): the journal records every answered call with its cost.
    pub(crate) fn rebuild_agent_cost(&self) -> Result<(), String> {
        if self.agent.is_none() && self.ledger.snapshot().agent_cost.is_none() {
            return Ok(());
        }
        let mut book = CostBook::default();
        for node in self.nodes.all() {
            let id = node.spec.node_id.as_str();
            let journal = CallJournal::new(&self.wd.root, id).map_err(|e| e.to_string())?;
            for phase in [AgentPhase::Plan, AgentPhase::Apply, AgentPhase::Analyze] {
                for record in journal.records(phase).map_err(|e| e.to_string())? {
                    let cost = record.cost();
                    if cost != Cost::default() {
                        book.add(id, phase, cost);
                    }
                }
            }
        }
        let current = self.ledger.snapshot().agent_cost.unwrap_or_default();
        if book != current {
            if book.total != current.total {
                tracing::info!(
                    "agent cost rebuilt from the call journals: {} (state.json had {})",
                    book.total.describe(),
                    current.total.describe()
                );
            }
            self.ledger
                .set_agent_cost(book)
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// `applying`: the agent's change in the node's worktree, committed by the engine.
    pub(crate) async fn apply_phase(&self, spec: &NodeSpec, ctx: &RunContext) -> Result<(), Stop> {
        let id = spec.node_id.as_str();
        let phase = NodeStatus::Applying;
        let Some(ws) = self.workspace() else {
            return Err(Fail::new(
                FailureKind::Apply,
                phase,
                "the experiment changes code but the run has no workspace",
            )
            .into());
        };
        let record = match self.read_commit(id)? {
            Some(done) => done,
            None => {
                let parent = self.parent_commit(spec)?;
                let prepared = ws
                    .prepare_apply(id, &parent)
                    .await
                    .map_err(|e| ws_stop(e, FailureKind::Apply, phase))?;
                let change = match prepared {
                    ApplyState::Committed(change) => {
                        tracing::info!(node = id, "the code change was committed before: re-used");
                        change
                    }
                    ApplyState::Ready(worktree) => {
                        self.call_apply(spec, &worktree, ctx).await?;
                        let info = CommitInfo {
                            name: spec.name.clone(),
                            hypothesis: spec.hypothesis.clone(),
                            changes: spec.changes.clone().unwrap_or_default(),
                        };
                        ws.commit_apply(id, &parent, &info)
                            .await
                            .map_err(|e| ws_stop(e, FailureKind::Apply, phase))?
                    }
                };
                let record = NodeCommit {
                    commit: change.commit,
                    parent_commit: change.parent,
                    ref_name: ws.ref_name(id),
                    changed: change.changed,
                    violations: change.violations,
                    created_at: now_millis(),
                };
                self.write_commit(id, &record)?;
                record
            }
        };
        if !record.violations.is_empty() {
            return Err(Fail::new(
                FailureKind::ProtectedPath,
                phase,
                format!(
                    "the code change touched protected paths (workspace.protected): {}; the \
                     experiment did not run. Its commit {} is kept as {}",
                    record.violations.join(", "),
                    &record.commit[..record.commit.len().min(12)],
                    record.ref_name
                ),
            )
            .details(serde_json::json!({
                "violations": record.violations,
                "commit": record.commit,
                "ref": record.ref_name,
            }))
            .into());
        }
        if record.changed.is_empty() {
            tracing::warn!(
                node = id,
                "the agent's apply changed nothing: the experiment runs its parent's code"
            );
        }
        Ok(())
    }

    /// The agent's `apply` call in `worktree` (its working directory).
    async fn call_apply(
        &self,
        spec: &NodeSpec,
        worktree: &std::path::Path,
        ctx: &RunContext,
    ) -> Result<(), Stop> {
        let id = spec.node_id.as_str();
        let phase = NodeStatus::Applying;
        let Some(client) = &self.agent else {
            return Err(Fail::new(
                FailureKind::Apply,
                phase,
                "the experiment changes code, but the run's planner is not the coding agent, so \
                 no one can apply it",
            )
            .into());
        };
        let apply_ctx = ApplyContext {
            node_id: id.to_string(),
            name: spec.name.clone(),
            parent: spec.parent_id.clone(),
            hypothesis: spec.hypothesis.clone(),
            params: spec.params.clone(),
            changes: spec.changes.clone().unwrap_or_default(),
            protected: self
                .config
                .workspace
                .as_ref()
                .map(|w| w.protected.clone())
                .unwrap_or_default(),
        };
        let prompt = render_apply_prompt(&apply_ctx, &self.templates.apply)
            .map_err(|e| Fail::new(FailureKind::Apply, phase, format!("no apply prompt: {e}")))?;
        let outcome = tokio::select! {
            outcome = client.apply(id, &prompt, worktree) => outcome,
            // The agent's process group is killed with the call; the apply is redone on resume.
            () = ctx.cancel.cancelled() => return Err(Stop::Interrupted),
        };
        self.book_cost(id, AgentPhase::Apply, outcome.fresh_cost);
        match outcome.result {
            Ok(_) => Ok(()),
            Err(f) if f.kind == CallFailure::EngineIo => Err(Stop::Env(f.message)),
            Err(f) => Err(Fail::new(
                FailureKind::Apply,
                phase,
                format!("the coding agent could not apply the change: {f}"),
            )
            .into()),
        }
    }

    /// The optional analysis of a finished node (`planner.agent.analyze`), before its planning
    /// round: once per node (a node whose `result.json` has `findings` is done; a resumed call
    /// gets its recorded answer back). A failed analysis is logged and skipped.
    pub(crate) async fn agent_analysis(&self, id: &str, ctx: &RunContext) -> Result<(), Stop> {
        let Some(client) = self.agent.as_ref().filter(|c| c.config().analyze) else {
            return Ok(());
        };
        let Some(node) = self.nodes.get(id) else {
            return Ok(());
        };
        let Some(mut result) = self.nodes.read_file::<NodeResult>(id, "result.json")? else {
            // It never ran a job (it failed before): nothing to analyse.
            return Ok(());
        };
        if result.findings.is_some() {
            return Ok(());
        }
        if let Some(budget) = self.config.limits.agent_cost_usd
            && self.agent_spent_usd() >= budget
        {
            tracing::info!(node = id, "agent cost budget spent: no analysis");
            return Ok(());
        }
        let state = self.ledger.snapshot();
        let outcome = match (node.status, result.primary) {
            (NodeStatus::Failed, _) | (_, None) => {
                let failure = self
                    .nodes
                    .read_file::<crate::model::Failure>(id, "failure.json")?
                    .map(|f| format!("{}: {}", f.kind.as_str(), f.message))
                    .unwrap_or_else(|| "no primary metric".into());
                format!("failed: {failure}")
            }
            (_, Some(_)) if result.improved => "completed (an improvement: the new best)".into(),
            (_, Some(_)) => "completed (not an improvement)".into(),
        };
        let mut reference = Vec::new();
        if let (Some(b), Some(v)) = (&state.baseline_node, state.baseline_value) {
            reference.push(format!("baseline {b}: {}", format_number(v)));
        }
        if let (Some(b), Some(v)) = (&state.best_node, state.best_value) {
            reference.push(format!("best so far {b}: {}", format_number(v)));
        }
        if let Some(p) = node
            .spec
            .parent_id
            .as_deref()
            .and_then(|p| self.nodes.get(p))
            && let Some(v) = p.primary
        {
            reference.push(format!("parent {}: {}", p.spec.node_id, format_number(v)));
        }
        let run_dir = self.wd.run_dir(id);
        let analyze_ctx = AnalyzeContext {
            metric: self.config.objective.metric.clone(),
            direction: self.config.objective.direction,
            node_id: id.to_string(),
            parent: node.spec.parent_id.clone(),
            hypothesis: node.spec.hypothesis.clone(),
            changes: node.spec.changes.clone(),
            params: node.spec.params.clone(),
            outcome,
            metrics: result.metrics.clone(),
            reference: if reference.is_empty() {
                "(none yet)".into()
            } else {
                reference.join("; ")
            },
            stdout: tail(&run_dir.join("stdout.log"), ANALYSIS_TAIL_LINES),
            stderr: tail(&run_dir.join("stderr.log"), ANALYSIS_TAIL_LINES),
        };
        let max = client.config().max_prompt_bytes;
        let prompt = match render_analyze_prompt(&analyze_ctx, &self.templates.analyze, max) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(node = id, "no analysis: {e}");
                return Ok(());
            }
        };
        let call = tokio::select! {
            call = client.analyze(id, &prompt) => call,
            () = ctx.cancel.cancelled() => return Err(Stop::Interrupted),
        };
        self.book_cost(id, AgentPhase::Analyze, call.fresh_cost);
        let reply = match call.result {
            Ok(reply) => reply,
            Err(f) if f.kind == CallFailure::EngineIo => return Err(Stop::Env(f.message)),
            Err(f) => {
                tracing::warn!(node = id, "the agent's analysis failed: {f}");
                return Ok(());
            }
        };
        let path = run_dir.join("analysis.md");
        let text = format!(
            "# {id}\n\n{}\n\n## The agent's analysis\n\n{}\n\n## Findings\n\n{}\n",
            result.analysis,
            reply.analysis.trim(),
            reply
                .findings
                .iter()
                .map(|f| format!("- {f}\n"))
                .collect::<String>()
        );
        self.wd
            .check(&path)
            .and_then(|()| autoresearch_engine::atomic::write_atomic(&path, text.as_bytes()))
            .map_err(|e| Stop::Env(format!("{}: {e}", path.display())))?;
        result.findings = Some(reply.findings);
        self.nodes.write_result(id, &result)?;
        Ok(())
    }
}

impl RoundBook for ExperimentWorkflow {
    fn add_cost(&self, node: &str, phase: AgentPhase, cost: Cost) {
        self.book_cost(node, phase, cost);
    }

    fn planner_failed(&self, node: &str, message: &str) {
        tracing::warn!(node, "planner failure: {message}");
        if let Err(e) = self
            .ledger
            .count_planner_failure(&format!("{node}: {message}"))
        {
            tracing::warn!(
                node,
                "could not count the planner failure in state.json: {e}"
            );
        }
        self.notify(Notice::Warning {
            message: format!("planner failure (planning from {node}): {message}"),
        });
        self.emit(NodeEvent::PlannerFailed {
            id: node.to_string(),
            message: message.to_string(),
        });
    }

    fn spent_usd(&self) -> f64 {
        self.agent_spent_usd()
    }
}
