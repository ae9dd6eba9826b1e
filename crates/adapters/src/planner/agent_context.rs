//! What a planning round tells the coding agent: the [`PlanContext`] built from the round's
//! input (every node with its status, parameters, metric, hypothesis, code change and failure;
//! the path from the baseline to the best; the findings of the analyses so far; the experiments
//! queued and running; how many proposals are wanted; the protected paths).
//!
//! The context depends only on the run's files, never on the time or on what the agent cost, so
//! a round made again after a crash renders the same prompt and gets its recorded answer back
//! from the call journal instead of paying for a new one.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use crate::agent::plan_prompt::{Finding, HistoryRow, InFlight, PlanContext};
use crate::config::Config;
use crate::model::{Failure, NodeResult, NodeStatus};
use crate::planner::round::RoundInput;
use crate::workdir::Workdir;
use crate::workflow::nodes::{NodeInfo, read_json};

/// What a finished node's files add to the index (read once: they no longer change).
#[derive(Debug, Clone, Default)]
struct Facts {
    /// `<kind>: <message>` of its failure.
    failure: Option<String>,
    /// Its analysis' findings.
    findings: Vec<String>,
    /// It beat the best at first, but its confirmation runs did not hold it.
    unconfirmed: bool,
}

/// Builds plan contexts, keeping the facts of finished nodes read from their files.
#[derive(Debug, Default)]
pub struct ContextBuilder {
    facts: Mutex<HashMap<String, Facts>>,
}

impl ContextBuilder {
    /// The facts of a finished node (from `failure.json` and `result.json`), cached once they
    /// can no longer change (the node is completed or failed and, with `analyze`, its analysis
    /// is recorded): files that can still change are read again.
    fn facts(&self, wd: &Workdir, node: &NodeInfo, analyze: bool) -> Facts {
        let id = &node.spec.node_id;
        if let Some(f) = self.facts.lock().ok().and_then(|m| m.get(id).cloned()) {
            return f;
        }
        let failure = (node.status == NodeStatus::Failed)
            .then(|| read_json::<Failure>(&wd.node_failure(id)).ok().flatten())
            .flatten()
            .map(|f| format!("{}: {}", f.kind.as_str(), f.message));
        let result = read_json::<NodeResult>(&wd.node_result(id)).ok().flatten();
        let analysed = result.as_ref().is_some_and(|r| r.findings.is_some());
        let facts = Facts {
            failure,
            unconfirmed: result.as_ref().is_some_and(|r| r.unconfirmed),
            findings: result.and_then(|r| r.findings).unwrap_or_default(),
        };
        let settled = node.status.is_terminal() && (analysed || !analyze);
        if settled && let Ok(mut m) = self.facts.lock() {
            m.insert(id.clone(), facts.clone());
        }
        facts
    }

    /// The plan context of a round.
    pub fn build(&self, wd: &Workdir, input: &RoundInput<'_>, protected: &[String]) -> PlanContext {
        let config = input.config;
        let analyze = config.planner.agent.as_ref().is_some_and(|a| a.analyze);
        let finished = |n: &NodeInfo| {
            matches!(
                n.status,
                NodeStatus::Completed | NodeStatus::Failed | NodeStatus::Planning
            )
        };
        let mut history = Vec::new();
        let mut findings = Vec::new();
        for n in input.nodes.iter().filter(|n| finished(n)) {
            let facts = self.facts(wd, n, analyze);
            findings.extend(facts.findings.iter().map(|text| Finding {
                node_id: n.spec.node_id.clone(),
                text: text.clone(),
            }));
            history.push(HistoryRow {
                id: n.spec.node_id.clone(),
                parent: n.spec.parent_id.clone(),
                status: if n.status == NodeStatus::Planning {
                    "completed".into()
                } else {
                    n.status.as_str().into()
                },
                params: n.spec.params.clone(),
                primary: n.primary,
                spread: n.spread,
                improved: n.improved,
                unconfirmed: facts.unconfirmed,
                hypothesis: n.spec.hypothesis.clone(),
                change: n.spec.changes.clone().filter(|c| !c.trim().is_empty()),
                failure: facts.failure,
            });
        }
        let in_flight = input
            .nodes
            .iter()
            .filter(|n| !finished(n))
            .filter(|n| !is_dropped(wd, &n.spec.node_id))
            .map(|n| InFlight {
                id: n.spec.node_id.clone(),
                parent: n.spec.parent_id.clone(),
                status: n.status.as_str().into(),
                params: n.spec.params.clone(),
                hypothesis: n.spec.hypothesis.clone(),
                changes: n.spec.changes.clone().filter(|c| !c.trim().is_empty()),
            })
            .collect();
        PlanContext {
            metric: config.objective.metric.clone(),
            direction: config.objective.direction,
            min_improvement: config.objective.min_improvement,
            search_space: search_space_text(config),
            budget: budget_text(config, input),
            planned_from: input.from.to_string(),
            history,
            best_path: best_path(config, input.nodes),
            findings,
            in_flight,
            slots: input.wanted,
            protected: protected.to_vec(),
            noise_floor: read_json::<crate::model::RunState>(&wd.state())
                .ok()
                .flatten()
                .and_then(|s| s.noise_floor),
        }
    }
}

fn is_dropped(wd: &Workdir, id: &str) -> bool {
    std::fs::symlink_metadata(wd.node_dir(id).join(crate::workflow::DROPPED_MARKER)).is_ok()
}

/// The search space as JSON, or a note when there are no parameters.
fn search_space_text(config: &Config) -> String {
    if config.search_space.is_empty() {
        return "(no parameters: every experiment is a code change; give `\"params\": {}`)".into();
    }
    let mut text = serde_json::to_string(&config.search_space).unwrap_or_default();
    text.push_str("\nBaseline: ");
    text.push_str(&serde_json::to_string(&config.baseline).unwrap_or_default());
    text.push_str("\nParameters left out of a proposal keep the values of its parent.");
    text
}

/// Experiments and patience left (no time, no cost: the prompt must not change by itself).
fn budget_text(config: &Config, input: &RoundInput<'_>) -> String {
    let l = &config.limits;
    let started = input
        .nodes
        .iter()
        .filter(|n| n.status != NodeStatus::Queued)
        .count() as u64;
    format!(
        "Experiments: {started} started of at most {} ({} queued, {} running). Patience: {} \
         experiments in a row without an improvement (at least {}) so far; the run stops at {}.",
        l.max_experiments,
        input.queued,
        input.running,
        input.plateau,
        config.objective.min_improvement,
        l.patience
    )
}

/// Node ids from a root to the best completed node (the first of equal values).
pub fn best_path(config: &Config, nodes: &[NodeInfo]) -> Vec<String> {
    let direction = config.objective.direction;
    let mut best: Option<&NodeInfo> = None;
    for n in nodes {
        let ok = matches!(n.status, NodeStatus::Completed | NodeStatus::Planning);
        let Some(p) = n.primary.filter(|p| ok && p.is_finite()) else {
            continue;
        };
        if best
            .and_then(|b| b.primary)
            .is_none_or(|b| direction.is_better(p, b))
        {
            best = Some(n);
        }
    }
    let Some(best) = best else {
        return Vec::new();
    };
    let by_id: HashMap<&str, &NodeInfo> =
        nodes.iter().map(|n| (n.spec.node_id.as_str(), n)).collect();
    let mut path = vec![best.spec.node_id.clone()];
    let mut seen: HashSet<&str> = HashSet::new();
    let mut cur = best;
    while let Some(parent) = cur.spec.parent_id.as_deref() {
        let Some(p) = by_id.get(parent) else { break };
        if !seen.insert(parent) {
            break;
        }
        path.push(p.spec.node_id.clone());
        cur = p;
    }
    path.reverse();
    path
}
