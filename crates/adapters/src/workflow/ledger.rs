//! The run ledger: `state.json` (best node, plateau counter, budgets used) updated exactly once
//! per finished experiment. The file also lists the node ids already `recorded`; a node whose
//! result reached disk but whose recording did not (a crash in between) is recorded on the next
//! start by [`Ledger::reconcile`] (or when the node is retried), so no result is lost or counted
//! twice.
//!
//! It also keeps `awaiting_planning`: the finished nodes no planning round has answered yet.
//! A node enters it in the same write that records it and leaves it when a round that saw it
//! has created its proposals, so a crash anywhere in between leaves the round owed, never lost.
//!
//! Every change is written first and applied in memory only once the write succeeded: a failed
//! write (disk full) leaves memory and file as they were, so retrying is safe.

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::model::{NodeResult, NodeStatus, RunState};
use crate::workdir::Workdir;
use crate::workflow::nodes::{NodeError, NodeInfo, NodeStore, read_json_capped};

/// `state.json` as written: the public [`RunState`] plus the list of recorded nodes.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StateFile {
    /// The public run state.
    #[serde(flatten)]
    pub state: RunState,
    /// Node ids whose outcome is already counted in `state`, in completion order.
    #[serde(default)]
    pub recorded: Vec<String>,
    /// Finished nodes (completed or failed) that no planning round has answered yet, in
    /// completion order.
    #[serde(default)]
    pub awaiting_planning: Vec<String>,
}

/// Largest `state.json` read (it lists every finished node).
const MAX_STATE_BYTES: u64 = 256 << 20;

/// The ledger; every method persists what it changes before returning.
pub struct Ledger {
    path: PathBuf,
    file: Mutex<StateFile>,
    recorded: Mutex<std::collections::HashSet<String>>,
    base_time_s: f64,
    since: Instant,
    /// Experiments started (kept by the workflow, written with every update).
    pub(crate) started: std::sync::atomic::AtomicU64,
    /// The next node index (kept by the node store, written with every update).
    pub(crate) next_index: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// A held ledger lock: decide, write node files, then commit, with no other result in between.
pub struct LedgerGuard<'a> {
    ledger: &'a Ledger,
    file: MutexGuard<'a, StateFile>,
}

impl std::fmt::Debug for LedgerGuard<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LedgerGuard").finish_non_exhaustive()
    }
}

impl Ledger {
    /// Loads `state.json` (or starts a new one for `config`'s metric).
    pub fn load(wd: &Workdir, config: &Config) -> Result<Ledger, NodeError> {
        let path = wd.state();
        let mut file = read_json_capped::<StateFile>(&path, MAX_STATE_BYTES)?.unwrap_or_default();
        file.state.schema_version = 1;
        file.state.metric = config.objective.metric.clone();
        file.state.direction = config.objective.direction.as_str().to_string();
        let recorded = file.recorded.iter().cloned().collect();
        Ok(Ledger {
            path,
            base_time_s: file.state.time_used_s,
            file: Mutex::new(file),
            recorded: Mutex::new(recorded),
            since: Instant::now(),
            started: Default::default(),
            next_index: Default::default(),
        })
    }

    fn file(&self) -> MutexGuard<'_, StateFile> {
        self.file.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A copy of the current state.
    pub fn snapshot(&self) -> RunState {
        use std::sync::atomic::Ordering::Relaxed;
        let mut s = self.file().state.clone();
        s.time_used_s = self.time_used_s();
        s.experiments_started = self.started.load(Relaxed);
        s.next_index = self.next_index.load(Relaxed);
        s
    }

    /// Wall time the engine ran, over all resumes.
    pub fn time_used_s(&self) -> f64 {
        self.base_time_s + self.since.elapsed().as_secs_f64()
    }

    /// Whether `id` is already counted.
    pub fn is_recorded(&self, id: &str) -> bool {
        self.recorded
            .lock()
            .map(|r| r.contains(id))
            .unwrap_or(false)
    }

    /// Locks the ledger for one decision.
    pub fn begin(&self) -> LedgerGuard<'_> {
        LedgerGuard {
            ledger: self,
            file: self.file(),
        }
    }

    /// Records finished nodes that are not yet in the ledger (crash between result and state),
    /// and puts nodes left in `planning` by an older version back in `awaiting_planning`.
    pub fn reconcile(&self, nodes: &NodeStore, config: &Config) -> Result<Vec<String>, NodeError> {
        let mut fixed = Vec::new();
        for node in nodes.all() {
            if self.record_one(nodes, &node, config)? {
                fixed.push(node.spec.node_id.clone());
            }
        }
        let awaiting = self.awaiting();
        let owed: Vec<String> = nodes
            .all()
            .into_iter()
            .filter(|n| n.status == NodeStatus::Planning)
            .map(|n| n.spec.node_id)
            .filter(|id| !awaiting.contains(id))
            .collect();
        if !owed.is_empty() && plans(config) {
            self.change(|f| f.awaiting_planning.extend(owed))?;
        }
        Ok(fixed)
    }

    /// Records one finished node (planning, completed or failed) if it is not yet recorded,
    /// from its files. Returns whether it recorded it.
    pub fn record_one(
        &self,
        nodes: &NodeStore,
        node: &NodeInfo,
        config: &Config,
    ) -> Result<bool, NodeError> {
        let id = &node.spec.node_id;
        let finished = matches!(
            node.status,
            NodeStatus::Completed | NodeStatus::Failed | NodeStatus::Planning
        );
        if !finished || self.is_recorded(id) {
            return Ok(false);
        }
        let result: Option<NodeResult> = nodes.read_file(id, "result.json")?;
        let mut g = self.begin();
        match result.filter(|r| r.primary.is_some()) {
            Some(result) if node.status != NodeStatus::Failed => {
                g.commit_success(id, &result, config)?
            }
            _ => g.commit_failure(id, config)?,
        }
        Ok(true)
    }

    /// Finished nodes no planning round has answered yet, oldest first.
    pub fn awaiting(&self) -> Vec<String> {
        self.file().awaiting_planning.clone()
    }

    /// Marks `id` as awaiting a planning round (a resume with nothing left to run, so the
    /// planner gets a chance to go on, for example after `max_experiments` was raised).
    pub fn owe_round(&self, id: &str) -> Result<(), NodeError> {
        self.change(|f| {
            if !f.awaiting_planning.iter().any(|a| a == id) {
                f.awaiting_planning.push(id.to_string());
            }
        })
    }

    /// The node recorded last, if any.
    pub fn last_recorded(&self) -> Option<String> {
        self.file().recorded.last().cloned()
    }

    /// A planning round answered `answered`: they leave `awaiting_planning`, and the round is
    /// counted when the planner was asked.
    pub fn finish_round(&self, answered: &[String], asked: bool) -> Result<(), NodeError> {
        self.change(|f| {
            f.awaiting_planning.retain(|id| !answered.contains(id));
            if asked {
                f.state.planner_rounds += 1;
            }
        })
    }

    /// Adds what an agent call cost (`agent_cost` in `state.json`).
    pub fn add_agent_cost(
        &self,
        node: &str,
        phase: crate::agent::AgentPhase,
        cost: crate::agent::Cost,
    ) -> Result<(), NodeError> {
        if cost == crate::agent::Cost::default() {
            return Ok(());
        }
        self.change(|f| {
            f.state
                .agent_cost
                .get_or_insert_with(Default::default)
                .add(node, phase, cost)
        })
    }

    /// Replaces `agent_cost` (rebuilt from the call journals at start).
    pub fn set_agent_cost(&self, book: crate::agent::CostBook) -> Result<(), NodeError> {
        self.change(|f| f.state.agent_cost = Some(book))
    }

    /// Counts a planning round whose agent failed and fell back.
    pub fn count_planner_failure(&self, message: &str) -> Result<(), NodeError> {
        self.change(|f| {
            f.state.planner_failures += 1;
            f.state.last_planner_failure = Some(message.to_string());
        })
    }

    /// Changes the state and persists it.
    pub fn update(&self, f: impl FnOnce(&mut RunState)) -> Result<(), NodeError> {
        self.change(|file| f(&mut file.state))
    }

    /// Applies `f` to a copy, writes the copy, and only then makes it current.
    fn change(&self, f: impl FnOnce(&mut StateFile)) -> Result<(), NodeError> {
        let mut file = self.file();
        let mut next = file.clone();
        f(&mut next);
        self.persist(&mut next)?;
        *file = next;
        Ok(())
    }

    fn persist(&self, file: &mut StateFile) -> Result<(), NodeError> {
        use std::sync::atomic::Ordering::Relaxed;
        file.state.time_used_s = self.time_used_s();
        file.state.experiments_started = self.started.load(Relaxed);
        file.state.next_index = self.next_index.load(Relaxed);
        file.state.updated_at =
            humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
        autoresearch_engine::atomic::write_json_atomic(&self.path, &*file).map_err(|source| {
            NodeError::Io {
                path: self.path.clone(),
                source,
            }
        })
    }
}

/// Whether finished nodes wait for a planning round (every planner but `none`).
fn plans(config: &Config) -> bool {
    config.planner.kind != crate::config::PlannerKind::None
}

impl LedgerGuard<'_> {
    /// The run state as it stands under this lock.
    pub fn state(&self) -> &RunState {
        &self.file.state
    }

    /// The current plateau counter.
    pub fn plateau(&self) -> u32 {
        self.file.state.plateau
    }

    /// Counts a completed experiment (after its `result.json` is on disk) and marks it as
    /// awaiting a planning round: a new best when it `improved` (or, with `objective.confirm
    /// = off`, whenever it is strictly better), the plateau counter, and its repeats pooled
    /// into the noise floor (see `docs/noise.md`).
    pub fn commit_success(
        &mut self,
        id: &str,
        result: &NodeResult,
        config: &Config,
    ) -> Result<(), NodeError> {
        let Some(primary) = result.primary else {
            return self.commit_failure(id, config);
        };
        let mut next = self.file.clone();
        let s = &mut next.state;
        s.experiments_completed += 1;
        let better = match s.best_value {
            None => true,
            Some(b) => config.objective.direction.is_better(primary, b),
        };
        let legacy = config.objective.confirm == crate::config::Confirm::Off;
        if result.improved || (legacy && better) {
            s.best_value = Some(primary);
            s.best_node = Some(id.to_string());
            s.best_n = Some(result.n() as u32);
        }
        if s.baseline_node.as_deref() == Some(id) {
            s.baseline_value = Some(primary);
        }
        if result.improved {
            s.plateau = 0;
        } else {
            s.plateau += 1;
        }
        // The repeats only: confirmation runs were chosen for beating the best.
        let repeats = match &result.confirmation {
            Some(c) => &result.samples[..(c.runs_before as usize).min(result.samples.len())],
            None => &result.samples[..],
        };
        s.noise_floor = crate::noise::pool(s.noise_floor, repeats);
        self.finish(id, next, config)
    }

    /// Counts a failed experiment (after its failure.json is on disk) and marks it as awaiting
    /// a planning round (follow-ups after a failure). Failures count towards the plateau: a
    /// run of failures is not progress.
    pub fn commit_failure(&mut self, id: &str, config: &Config) -> Result<(), NodeError> {
        let mut next = self.file.clone();
        next.state.experiments_failed += 1;
        next.state.plateau += 1;
        self.finish(id, next, config)
    }

    fn finish(&mut self, id: &str, mut next: StateFile, config: &Config) -> Result<(), NodeError> {
        next.recorded.push(id.to_string());
        if plans(config) && !next.awaiting_planning.iter().any(|a| a == id) {
            next.awaiting_planning.push(id.to_string());
        }
        self.ledger.persist(&mut next)?;
        *self.file = next;
        if let Ok(mut r) = self.ledger.recorded.lock() {
            r.insert(id.to_string());
        }
        Ok(())
    }
}
