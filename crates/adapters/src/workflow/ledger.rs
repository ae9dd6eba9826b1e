//! The run ledger: `state.json` (best node, plateau counter, budgets used) updated exactly once
//! per finished experiment. The file also lists the node ids already `recorded`; a node whose
//! result reached disk but whose recording did not (a crash in between) is recorded on the next
//! start by [`Ledger::reconcile`], so no result is lost or counted twice.

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::model::{NodeResult, NodeStatus, RunState};
use crate::workdir::Workdir;
use crate::workflow::nodes::{NodeError, NodeStore, read_json};

/// `state.json` as written: the public [`RunState`] plus the list of recorded nodes.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StateFile {
    /// The public run state.
    #[serde(flatten)]
    pub state: RunState,
    /// Node ids whose outcome is already counted in `state`, in completion order.
    #[serde(default)]
    pub recorded: Vec<String>,
}

/// What recording a completed experiment decided.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Verdict {
    /// Improved on the best by at least `min_improvement`.
    pub improved: bool,
    /// The best value before this experiment.
    pub best_before: Option<f64>,
}

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

/// A held ledger lock: decide, write node files, then commit, with no other result in between.
pub struct LedgerGuard<'a> {
    ledger: &'a Ledger,
    file: MutexGuard<'a, StateFile>,
}

impl Ledger {
    /// Loads `state.json` (or starts a new one for `config`'s metric).
    pub fn load(wd: &Workdir, config: &Config) -> Result<Ledger, NodeError> {
        let path = wd.state();
        let mut file = read_json::<StateFile>(&path)?.unwrap_or_default();
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

    /// Records finished nodes that are not yet in the ledger (crash between result and state).
    pub fn reconcile(&self, nodes: &NodeStore, config: &Config) -> Result<Vec<String>, NodeError> {
        let mut fixed = Vec::new();
        for node in nodes.all() {
            let id = &node.spec.node_id;
            if self.is_recorded(id) {
                continue;
            }
            let finished = matches!(
                node.status,
                NodeStatus::Completed | NodeStatus::Failed | NodeStatus::Planning
            );
            if !finished {
                continue;
            }
            let result: Option<NodeResult> = read_json(&nodes.workdir().node_result(id))?;
            let mut g = self.begin();
            match (
                node.status,
                result.and_then(|r| r.primary.map(|p| (p, r.improved))),
            ) {
                (NodeStatus::Failed, _) | (_, None) => g.commit_failure(id)?,
                (_, Some((primary, improved))) => {
                    g.commit_success(id, primary, improved, config)?
                }
            }
            fixed.push(id.clone());
        }
        Ok(fixed)
    }

    /// Changes the state and persists it.
    pub fn update(&self, f: impl FnOnce(&mut RunState)) -> Result<(), NodeError> {
        let mut file = self.file();
        f(&mut file.state);
        self.persist(&mut file)
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

impl LedgerGuard<'_> {
    /// Decides whether `primary` improves on the best so far.
    pub fn judge(&self, primary: f64, config: &Config) -> Verdict {
        let best_before = self.file.state.best_value;
        Verdict {
            improved: config.objective.is_improvement(primary, best_before),
            best_before,
        }
    }

    /// The current plateau counter.
    pub fn plateau(&self) -> u32 {
        self.file.state.plateau
    }

    /// Counts a completed experiment (after its result.json is on disk).
    pub fn commit_success(
        &mut self,
        id: &str,
        primary: f64,
        improved: bool,
        config: &Config,
    ) -> Result<(), NodeError> {
        let s = &mut self.file.state;
        s.experiments_completed += 1;
        let better = match s.best_value {
            None => true,
            Some(b) => config.objective.direction.is_better(primary, b),
        };
        if better {
            s.best_value = Some(primary);
            s.best_node = Some(id.to_string());
        }
        if s.baseline_node.as_deref() == Some(id) {
            s.baseline_value = Some(primary);
        }
        if improved {
            s.plateau = 0;
        } else {
            s.plateau += 1;
        }
        self.finish(id)
    }

    /// Counts a failed experiment (after its failure.json is on disk). Failures count towards
    /// the plateau: a run of failures is not progress.
    pub fn commit_failure(&mut self, id: &str) -> Result<(), NodeError> {
        let s = &mut self.file.state;
        s.experiments_failed += 1;
        s.plateau += 1;
        self.finish(id)
    }

    fn finish(&mut self, id: &str) -> Result<(), NodeError> {
        self.file.recorded.push(id.to_string());
        if let Ok(mut r) = self.ledger.recorded.lock() {
            r.insert(id.to_string());
        }
        self.ledger.persist(&mut self.file)
    }
}
