//! Planning rounds: at most one in flight per run, whatever the planner.
//!
//! - A finished node (completed or failed) enters `awaiting_planning` in `state.json` in the
//!   same write that records its result ([`super::ledger`]), then calls [`plan_phase`]. If no
//!   round is in flight it leads one; otherwise it returns at once (its engine slot is free for
//!   the next experiment) and the leader, which checks `awaiting_planning` again before it lets
//!   go, runs one more round for it. So completions that arrive during a round are coalesced
//!   into the next one, and nobody waits idle for a round.
//! - A round sees every node and asks the planner for exactly as many proposals as keep the
//!   slots busy: `wanted = min(max_concurrency - queued - running, planner.batch,
//!   max_experiments - started - queued)`. Proposals equal to an existing node (parameters and
//!   changes) are dropped with a log line; the round is the only creator of planned nodes, so
//!   the check and the creation cannot race.
//! - Crash safety: the round creates its nodes, records them in the leader's `result.json`
//!   (`children`), completes the nodes it answered, and only then removes them from
//!   `awaiting_planning`. A kill anywhere before that leaves the round owed: the nodes still
//!   awaiting are started again on resume and one of them leads a new round, which sees the
//!   nodes already created (dedup makes re-applying a round idempotent). Nodes created but not
//!   yet recorded are found on resume as queued nodes no node claims (see `rederive`).
//!
//! [`plan_phase`]: ExperimentWorkflow::plan_phase

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};

use autoresearch_engine::{RunContext, WorkSpec};
use serde_json::{Map, Value};

use super::ExperimentWorkflow;
use super::nodes::{NodeError, NodeInfo};
use super::stop::Stop;
use crate::model::{NodeResult, NodeStatus};
use crate::planner::round::{RoundInput, RoundPlanner};
use crate::planner::{Plan, Proposal};

/// The single-flight state of planning rounds.
#[derive(Default)]
pub(crate) struct Rounds {
    state: Mutex<RoundsState>,
}

#[derive(Default)]
struct RoundsState {
    /// A round is in flight (its leader is between taking and releasing the lead).
    leading: bool,
    /// Nodes a round created but could not record in its leader's result (its write failed):
    /// the next round records them.
    unclaimed: Vec<String>,
}

impl Rounds {
    fn lock(&self) -> MutexGuard<'_, RoundsState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Releases the lead if the leader stops early (error, interrupt, abort).
struct Lead<'a> {
    rounds: &'a Rounds,
    held: bool,
}

impl Drop for Lead<'_> {
    fn drop(&mut self) {
        if self.held {
            self.rounds.lock().leading = false;
        }
    }
}

/// What a parameter set (with its code) is compared by: the full parameter set, and either the
/// code change (the same instruction is never tried twice, whatever it builds on) or, for a
/// parameter-only experiment, the code it runs (see [`code_lineage`]), so a parameter set tried
/// on the baseline's code may be tried again on an improved one.
fn dedup_key(
    config: &crate::config::Config,
    params: &Map<String, Value>,
    changes: Option<&str>,
    parent_code: &str,
) -> String {
    let mut key = crate::config::canonical_params_key(&config.complete_params(params));
    match changes.filter(|c| !c.trim().is_empty()) {
        Some(c) => {
            key.push('\u{1c}');
            key.push_str(c);
        }
        None => {
            key.push('\u{1e}');
            key.push_str(parent_code);
        }
    }
    key
}

/// The code a node runs, as the code changes on its path from its root (a node without
/// `changes` runs its parent's code): two nodes with the same parameters and the same lineage
/// are the same experiment. Without code changes it is empty for every node.
fn code_lineage(nodes: &[NodeInfo]) -> HashMap<String, String> {
    let by_id: HashMap<&str, &NodeInfo> =
        nodes.iter().map(|n| (n.spec.node_id.as_str(), n)).collect();
    let mut out: HashMap<String, String> = HashMap::with_capacity(nodes.len());
    for n in nodes {
        // The chain up to the first node already known (or a root).
        let mut chain = Vec::new();
        let mut cur = Some(n);
        let mut base = String::new();
        while let Some(c) = cur {
            if let Some(known) = out.get(&c.spec.node_id) {
                base = known.clone();
                break;
            }
            if chain.len() > nodes.len() {
                break; // a cycle in hand-edited files
            }
            chain.push(c);
            cur = c
                .spec
                .parent_id
                .as_deref()
                .and_then(|p| by_id.get(p).copied());
        }
        for c in chain.into_iter().rev() {
            if let Some(ch) = c.spec.changes.as_deref().filter(|x| !x.trim().is_empty()) {
                base.push('\u{1d}');
                base.push_str(ch);
            }
            out.insert(c.spec.node_id.clone(), base.clone());
        }
    }
    out
}

impl ExperimentWorkflow {
    /// The planning phase of a finished node: makes sure a planning round answers it (leading
    /// one, or leaving it to the round in flight), and completes it. A finished node that no
    /// round owes anything returns at once.
    pub(crate) async fn plan_phase(&self, id: &str, ctx: &RunContext) -> Result<(), Stop> {
        // The coding agent's analysis (optional) comes first, so its findings reach the round.
        self.agent_analysis(id, ctx).await?;
        let Some(planner) = self.planner.as_deref() else {
            // `planner.kind = none`: nothing to plan.
            if self
                .nodes
                .get(id)
                .is_some_and(|n| n.status == NodeStatus::Planning)
            {
                self.nodes.set_status(id, NodeStatus::Completed)?;
            }
            return Ok(());
        };
        // Counted and awaiting before it looks for a leader (a retry after a failed write).
        if let Some(node) = self.nodes.get(id) {
            self.ledger.record_one(&self.nodes, &node, &self.config)?;
        }
        {
            let mut st = self.rounds.lock();
            if st.leading {
                tracing::debug!(
                    node = id,
                    "a planning round is in flight: this completion joins the next one"
                );
                return Ok(());
            }
            st.leading = true;
        }
        let mut lead = Lead {
            rounds: &self.rounds,
            held: true,
        };
        loop {
            let answering = self.ledger.awaiting();
            let unclaimed = !self.rounds.lock().unclaimed.is_empty();
            if !answering.is_empty() || unclaimed {
                self.round(planner, id, &answering, ctx).await?;
            }
            // Completions recorded while the round ran are in `awaiting_planning` before their
            // node looks for a leader, and it looks under this lock: either it sees `leading`
            // (and this loop sees it awaiting), or it leads itself.
            let mut st = self.rounds.lock();
            if self.ledger.awaiting().is_empty() && st.unclaimed.is_empty() {
                st.leading = false;
                lead.held = false;
                return Ok(());
            }
        }
    }

    /// One planning round led by `leader`, answering the nodes in `answering`.
    async fn round(
        &self,
        planner: &dyn RoundPlanner,
        leader: &str,
        answering: &[String],
        ctx: &RunContext,
    ) -> Result<(), Stop> {
        let nodes = self.nodes.all();
        let (queued, running) = self.slot_use(&nodes);
        let limits = &self.config.limits;
        let free = limits.max_concurrency.saturating_sub(queued + running);
        let budget = limits
            .max_experiments
            .saturating_sub(self.experiments_started() + queued as u64);
        // A run that failed fast, or whose patience or time is spent, starts nothing more: the
        // planner is not asked, and the stop reason says which limit it was (the latest word,
        // like the planner's: an improvement that lands later lets the next round plan again).
        let spent = self.patience_spent().or_else(|| self.time_budget_used());
        let halted = self.fail_fast().is_some() || spent.is_some();
        if spent.is_some() {
            self.set_planner_stop(spent);
        }
        let wanted = if halted { 0 } else { free }
            .min(self.config.batch())
            .min(usize::try_from(budget).unwrap_or(usize::MAX));
        if budget == 0 && free > 0 {
            // Nothing more may start: say why the run ends once the queue is done.
            self.set_stop_reason(format!(
                "max_experiments reached ({} experiments started or queued)",
                limits.max_experiments
            ));
        }
        let from = answering.last().map(String::as_str).unwrap_or(leader);
        let mut created: Vec<String> = std::mem::take(&mut self.rounds.lock().unclaimed);
        let mut asked = false;
        if wanted > 0 && !answering.is_empty() {
            let input = RoundInput {
                config: &self.config,
                nodes: &nodes,
                answering,
                from,
                wanted,
                queued,
                running,
                plateau: self.ledger.snapshot().plateau,
                cancel: ctx.cancel.clone(),
                book: self,
            };
            asked = true;
            tracing::debug!(
                planner = planner.name(),
                answering = answering.len(),
                wanted,
                queued,
                running,
                "planning round"
            );
            match planner.plan(&input).await {
                Ok(Plan::Stop(reason)) => {
                    tracing::info!(node = from, %reason, "planner: stop");
                    self.set_planner_stop(Some(format!("planner: {reason}")));
                }
                Ok(Plan::Launch(proposals)) => {
                    let made = self.create_proposals(proposals, from, wanted, &nodes, &mut created);
                    if let Err(e) = made {
                        self.rounds.lock().unclaimed.extend(created);
                        return Err(e.into());
                    }
                }
                Err(e) if ctx.cancel.is_cancelled() => {
                    tracing::info!(planner = planner.name(), "planning round interrupted: {e}");
                    self.rounds.lock().unclaimed.extend(created);
                    return Err(Stop::Interrupted);
                }
                Err(e) => {
                    tracing::warn!(
                        planner = planner.name(),
                        "the planner failed ({e}); this round creates nothing"
                    );
                    self.set_planner_stop(Some(format!(
                        "planner: it failed ({e}); see logs/autoresearch.log"
                    )));
                }
            }
        }
        if !created.is_empty() {
            if let Err(e) = self.claim(leader, &created) {
                self.rounds.lock().unclaimed.extend(created);
                return Err(e.into());
            }
            self.set_planner_stop(None);
            {
                let mut handed = self.handed.lock().unwrap_or_else(|p| p.into_inner());
                handed.extend(created.iter().cloned());
            }
            // To the queue now: the leader may lead more (slow) rounds before it returns.
            ctx.enqueue(
                created
                    .iter()
                    .filter_map(|c| self.nodes.get(c))
                    .map(|n| Self::work_spec(&n.spec))
                    .collect(),
            );
        }
        for id in answering {
            if self
                .nodes
                .get(id)
                .is_some_and(|n| n.status == NodeStatus::Planning)
            {
                self.nodes.set_status(id, NodeStatus::Completed)?;
            }
        }
        self.ledger.finish_round(answering, asked)?;
        Ok(())
    }

    /// Experiments waiting (queued in the engine) and holding a slot (admitted, not yet
    /// analysed) right now, from the node index.
    fn slot_use(&self, nodes: &[NodeInfo]) -> (usize, usize) {
        let admitted = self.admitted.lock().unwrap_or_else(|p| p.into_inner());
        let handed = self.handed.lock().unwrap_or_else(|p| p.into_inner());
        let (mut queued, mut running) = (0, 0);
        for n in nodes {
            let id = n.spec.node_id.as_str();
            match n.status {
                NodeStatus::Queued if admitted.contains(id) => running += 1,
                NodeStatus::Queued => {
                    if handed.contains(id) && !self.is_dropped(id) {
                        queued += 1;
                    }
                }
                NodeStatus::Preparing
                | NodeStatus::Applying
                | NodeStatus::Launching
                | NodeStatus::Running
                | NodeStatus::Analyzing => running += 1,
                NodeStatus::Planning | NodeStatus::Completed | NodeStatus::Failed => {}
            }
        }
        (queued, running)
    }

    /// Creates the nodes of the proposals that are new, up to `wanted`; ids go to `created`.
    fn create_proposals(
        &self,
        proposals: Vec<Proposal>,
        from: &str,
        wanted: usize,
        nodes: &[NodeInfo],
        created: &mut Vec<String>,
    ) -> Result<(), NodeError> {
        let lineage = code_lineage(nodes);
        let code_of = |id: Option<&str>| id.and_then(|i| lineage.get(i)).map_or("", String::as_str);
        let mut seen: HashMap<String, String> = nodes
            .iter()
            .map(|n| {
                let key = dedup_key(
                    &self.config,
                    &n.spec.params,
                    n.spec.changes.as_deref(),
                    code_of(n.spec.parent_id.as_deref()),
                );
                (key, n.spec.node_id.clone())
            })
            .collect();
        let mut made = 0;
        for p in proposals {
            if made >= wanted {
                tracing::info!(proposal = %p.name, wanted, "the planner proposed more than asked: dropped");
                continue;
            }
            let parent = p
                .parent
                .clone()
                .filter(|parent| self.nodes.get(parent).is_some())
                .unwrap_or_else(|| from.to_string());
            let key = dedup_key(
                &self.config,
                &p.params,
                p.changes.as_deref(),
                code_of(Some(&parent)),
            );
            if let Some(existing) = seen.get(&key) {
                tracing::info!(
                    proposal = %p.name,
                    existing = %existing,
                    "the planner proposed an existing node again (same parameters, same code change or code): dropped"
                );
                continue;
            }
            let spec = match self.new_node(
                &p.name,
                Some(parent),
                p.hypothesis,
                p.params,
                p.changes,
                p.priority.unwrap_or(0.0),
            ) {
                Ok(spec) => spec,
                Err(super::NewNodeError::Io(e)) => return Err(e),
                Err(super::NewNodeError::Render(message)) => {
                    tracing::warn!(proposal = %p.name, "proposal dropped: {message}");
                    continue;
                }
            };
            seen.insert(key, spec.node_id.clone());
            created.push(spec.node_id);
            made += 1;
        }
        Ok(())
    }

    /// Records `created` in the leader's `result.json` (`children`), so a resumed leader hands
    /// them to the engine again.
    fn claim(&self, leader: &str, created: &[String]) -> Result<(), NodeError> {
        let mut result: NodeResult = self
            .nodes
            .read_file(leader, "result.json")?
            .unwrap_or_default();
        let known: HashSet<String> = result.children.iter().cloned().collect();
        result
            .children
            .extend(created.iter().filter(|c| !known.contains(*c)).cloned());
        self.nodes.write_result(leader, &result)
    }

    /// Children recorded in a node's result that are still waiting (not started, not dropped).
    pub(crate) fn queued_children(&self, id: &str) -> Vec<WorkSpec> {
        let Some(node) = self.nodes.get(id) else {
            return Vec::new();
        };
        node.children
            .iter()
            .filter_map(|c| self.nodes.get(c))
            .filter(|n| n.status == NodeStatus::Queued)
            .filter(|n| !self.is_dropped(&n.spec.node_id))
            .map(|n| Self::work_spec(&n.spec))
            .collect()
    }

    /// Whether `supervisor queue drop` removed the node from the queue.
    pub(crate) fn is_dropped(&self, id: &str) -> bool {
        std::fs::symlink_metadata(self.wd.node_dir(id).join(super::DROPPED_MARKER)).is_ok()
    }
}
