//! The coding-agent planner (`planner.kind = "agent"`, see `docs/agent.md`) as a
//! [`RoundPlanner`]: each planning round renders the plan prompt from the round's input
//! ([`ContextBuilder`]), calls the agent through [`AgentClient`] (journaled: a round made again
//! after a crash gets the recorded answer back), checks the proposals and turns them into
//! [`Proposal`]s.
//!
//! - Proposals are checked against the configuration: parameters with
//!   [`Config::check_params`], code changes only in a run with a `workspace`. An invalid one is
//!   dropped with a log line; when every proposal of a `launch` is invalid the answer is invalid
//!   and the agent is asked again, shown the errors (`planner.agent.max_retries`).
//! - A proposal's `parent` must be a node of the run, else the node planned from; parameters it
//!   leaves out keep its parent's values.
//! - `stop` is the round's [`Plan::Stop`] (the run ends once nothing else runs).
//! - When the call fails (after its retries, or the prompt cannot be made), the failure is booked
//!   ([`RoundBook::planner_failed`](super::round::RoundBook::planner_failed): a warning and a count in `state.json`) and the round falls
//!   back to `planner.agent.fallback`: the built-in search, or nothing.
//! - `limits.agent_cost_usd`: once the agent's dollars reach it, no plan call is made; the round
//!   answers stop and the run finishes what is queued.

use serde_json::{Map, Value};

use super::agent_context::ContextBuilder;
use super::round::{PlanFuture, PlannerError, RoundInput, RoundPlanner};
use super::search::SearchPlanner;
use super::{Plan, Proposal};
use crate::agent::plan_prompt::render_plan_prompt;
use crate::agent::schema::{PlanAction, PlanReply, parse_plan};
use crate::agent::template::{TemplateError, Templates};
use crate::agent::{AgentClient, AgentPhase, FailureKind};
use crate::config::agent::{AgentConfig, AgentFallback};
use crate::config::{Config, format_number};
use crate::workdir::Workdir;

/// A checked plan answer: the valid proposals and why the others were dropped.
#[derive(Debug, Clone)]
struct Checked {
    reply: PlanReply,
    dropped: Vec<String>,
}

/// The coding-agent planner.
pub struct AgentPlanner {
    client: AgentClient,
    wd: Workdir,
    templates: Templates,
    protected: Vec<String>,
    code_changes: bool,
    context: ContextBuilder,
}

impl std::fmt::Debug for AgentPlanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentPlanner")
            .field("code_changes", &self.code_changes)
            .finish_non_exhaustive()
    }
}

impl AgentPlanner {
    /// The planner of `config` (its `planner.agent`) in `wd`; the prompt templates are loaded
    /// (an override in `<workdir>/prompts/` with an unknown placeholder is an error here).
    pub fn new(config: &Config, agent: &AgentConfig, wd: &Workdir) -> Result<Self, TemplateError> {
        Ok(AgentPlanner {
            client: AgentClient::new(agent.clone(), wd.root.clone()),
            wd: wd.clone(),
            templates: Templates::load(&wd.root)?,
            protected: config
                .workspace
                .as_ref()
                .map(|w| w.protected.clone())
                .unwrap_or_default(),
            code_changes: config.workspace.is_some(),
            context: ContextBuilder::default(),
        })
    }

    /// Checks an answer: the schema, then each proposal against the configuration.
    fn check(&self, config: &Config, text: &str) -> Result<Checked, String> {
        let mut reply = parse_plan(text)?;
        let mut dropped = Vec::new();
        if reply.action == PlanAction::Launch {
            let mut kept = Vec::new();
            for (i, mut e) in std::mem::take(&mut reply.experiments)
                .into_iter()
                .enumerate()
            {
                e.changes = e.changes.filter(|c| !c.trim().is_empty());
                if let Err(err) = config.check_params(&e.params) {
                    dropped.push(format!("experiments[{i}].params: {err}"));
                } else if e.changes.is_some() && !self.code_changes {
                    dropped.push(format!(
                        "experiments[{i}].changes: this run has no workspace, so code cannot \
                         change: propose parameters only (`\"changes\": null`)"
                    ));
                } else {
                    kept.push(e);
                }
            }
            if kept.is_empty() && !dropped.is_empty() {
                return Err(dropped.join("; "));
            }
            reply.experiments = kept;
        }
        Ok(Checked { reply, dropped })
    }

    /// The round's plan from a checked answer.
    fn to_plan(&self, input: &RoundInput<'_>, checked: Checked) -> Plan {
        for d in &checked.dropped {
            tracing::info!(node = input.from, "the agent's proposal was dropped: {d}");
        }
        let reply = checked.reply;
        if reply.action == PlanAction::Stop {
            let why = reply.reasoning.trim();
            return Plan::Stop(if why.is_empty() {
                "the agent answered stop".into()
            } else {
                format!("the agent answered stop: {}", one_line(why, 300))
            });
        }
        let node = |id: &str| input.nodes.iter().find(|n| n.spec.node_id == id);
        let proposals = reply
            .experiments
            .into_iter()
            .map(|e| {
                let parent = match e.parent.as_deref() {
                    Some(p) if node(p).is_some() => p.to_string(),
                    Some(p) => {
                        tracing::info!(
                            proposal = %e.name,
                            "the agent named parent {p:?}, which is no node of the run: it builds on {} instead",
                            input.from
                        );
                        input.from.to_string()
                    }
                    None => input.from.to_string(),
                };
                let mut params: Map<String, Value> = node(&parent)
                    .map(|n| n.spec.params.clone())
                    .unwrap_or_default();
                params.extend(e.params);
                Proposal {
                    name: e.name,
                    hypothesis: e.hypothesis,
                    params,
                    changes: e.changes,
                    priority: e.priority,
                    parent: Some(parent),
                }
            })
            .collect();
        Plan::Launch(proposals)
    }

    /// What the round does after the agent failed: booked, then `planner.agent.fallback`.
    async fn fall_back(&self, input: &RoundInput<'_>, why: String) -> Result<Plan, PlannerError> {
        let fallback = self.client.config().fallback;
        let what = match fallback {
            AgentFallback::Search => "this round uses the built-in search instead",
            AgentFallback::None => "this round proposes nothing (planner.agent.fallback = none)",
        };
        input
            .book
            .planner_failed(input.from, &format!("{why}; {what}"));
        match fallback {
            AgentFallback::Search => RoundPlanner::plan(&SearchPlanner, input).await,
            AgentFallback::None => Ok(Plan::Stop(format!(
                "the agent failed ({}) and planner.agent.fallback is none",
                one_line(&why, 200)
            ))),
        }
    }
}

/// `text` on one line, cut to `max` characters.
fn one_line(text: &str, max: usize) -> String {
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() > max {
        let mut cut: String = line.chars().take(max.saturating_sub(1)).collect();
        cut.push('…');
        cut
    } else {
        line
    }
}

impl RoundPlanner for AgentPlanner {
    fn name(&self) -> &'static str {
        "agent"
    }

    fn plan<'a>(&'a self, input: &'a RoundInput<'a>) -> PlanFuture<'a> {
        Box::pin(async move {
            let config = input.config;
            if let Some(budget) = config.limits.agent_cost_usd {
                let spent = input.book.spent_usd();
                if spent >= budget {
                    return Ok(Plan::Stop(format!(
                        "agent cost budget spent (${} of limits.agent_cost_usd = ${}): no more \
                         planning; the queued experiments finish",
                        format_number((spent * 10_000.0).round() / 10_000.0),
                        format_number(budget)
                    )));
                }
            }
            let ctx = self.context.build(&self.wd, input, &self.protected);
            let max = self.client.config().max_prompt_bytes;
            let prompt = match render_plan_prompt(&ctx, &self.templates.plan, max) {
                Ok(p) => p,
                Err(e) => return self.fall_back(input, format!("no plan prompt: {e}")).await,
            };
            let call = self.client.call(
                input.from,
                AgentPhase::Plan,
                &prompt,
                &self.wd.root,
                |text| self.check(config, text),
            );
            let outcome = tokio::select! {
                outcome = call => outcome,
                () = input.cancel.cancelled() => {
                    // The agent's process group is killed with the call; the round is owed again.
                    return Err(PlannerError { message: "interrupted during the agent's plan call".into() });
                }
            };
            input
                .book
                .add_cost(input.from, AgentPhase::Plan, outcome.fresh_cost);
            match outcome.result {
                Ok(checked) => {
                    if outcome.reused {
                        tracing::info!(
                            node = input.from,
                            "the agent's plan answer was recorded before: re-used, not paid again"
                        );
                    }
                    Ok(self.to_plan(input, checked))
                }
                Err(f) if f.kind == FailureKind::EngineIo => Err(PlannerError {
                    message: format!("the agent call's journal could not be written: {f}"),
                }),
                Err(f) => {
                    self.fall_back(input, format!("the agent's plan call failed: {f}"))
                        .await
                }
            }
        })
    }
}
