//! The experiment workflow: plugs experiments into the generic engine.
//!
//! Every experiment is a node of the hypothesis tree with its files under `engine/nodes/<id>/`
//! and `runs/<id>/`. A node goes `queued → preparing → [applying →] launching → running →
//! analyzing → planning → completed | failed`, and each phase boundary is on disk before the
//! next phase starts, so a resumed node continues from its phase (see `docs/resume.md`). At most
//! one planning round is in flight per run (see [`planning`] and `docs/planning.md`). In a run
//! with a `workspace` every experiment runs in its own git worktree at its own commit, and the
//! coding agent applies code changes there (see [`workspace`], [`agent_phases`] and
//! `docs/agent.md`).

mod agent_phases;
mod analysis;
pub mod events;
pub mod fail_fast;
mod jobs;
pub mod ledger;
mod lifecycle;
mod limits;
pub mod nodes;
mod planning;
mod repeats;
mod start;
mod stop;
mod workspace;

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use autoresearch_engine::{
    Admission, Decision, Outcome, RunContext, RunReport, StartInfo, WorkError, WorkSpec, Workflow,
};
use serde_json::{Map, Value, json};
use tokio::sync::broadcast;

use crate::config::Config;
use crate::executor::Exec;
use crate::model::{NodeSpec, NodeStatus};
use crate::planner::round::RoundPlanner;
use crate::workdir::Workdir;
pub(crate) use analysis::{analysis_text, missing_metric};
use jobs::JobEnding;
use ledger::Ledger;
use nodes::{NodeError, NodeStore};

/// The engine `kind` of experiment specs.
pub const SPEC_KIND: &str = "experiment";
/// Priority of the baseline (runs before seeds and planned experiments).
pub const BASELINE_PRIORITY: f64 = -1000.0;
/// Priority given to nodes found mid-flight without a checkpoint (they go first).
pub const RECOVER_PRIORITY: f64 = -1.0e9;
/// Marker file that keeps a dropped node from being re-derived on resume.
pub const DROPPED_MARKER: &str = "dropped";

/// What the workflow tells listeners (progress bar, renderer, interactive session).
#[derive(Debug, Clone, PartialEq)]
pub enum Notice {
    /// A node's job started.
    Started {
        /// Node id.
        id: String,
    },
    /// A node completed with its primary metric.
    Completed {
        /// Node id.
        id: String,
        /// Primary metric.
        primary: f64,
        /// Whether it is a new best.
        improved: bool,
    },
    /// A node failed.
    Failed {
        /// Node id.
        id: String,
        /// Why.
        message: String,
    },
    /// Something the user should see that is not a node's outcome (a planner failure that fell
    /// back).
    Warning {
        /// What happened.
        message: String,
    },
}

/// Errors building the workflow.
#[derive(Debug, thiserror::Error)]
pub enum WorkflowError {
    /// A node or state file is unreadable.
    #[error(transparent)]
    Node(#[from] NodeError),
    /// The configuration cannot be used.
    #[error("{0}")]
    Config(String),
}

/// Why a node could not be created.
#[derive(Debug)]
pub(crate) enum NewNodeError {
    /// Its command cannot be built from its parameters (the proposal's fault).
    Render(String),
    /// Its files could not be written (the environment's fault).
    Io(NodeError),
}

impl std::fmt::Display for NewNodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NewNodeError::Render(m) => f.write_str(m),
            NewNodeError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl From<NewNodeError> for WorkError {
    fn from(e: NewNodeError) -> Self {
        match e {
            NewNodeError::Render(m) => WorkError::Failed(m),
            NewNodeError::Io(e) => WorkError::Retry(e.to_string()),
        }
    }
}

/// The experiment workflow (implements the engine's [`Workflow`]).
pub struct ExperimentWorkflow {
    pub(crate) wd: Workdir,
    pub(crate) config: Config,
    pub(crate) nodes: NodeStore,
    pub(crate) ledger: Ledger,
    pub(crate) exec: Exec,
    /// Specs admitted by the engine in this process.
    admitted: Mutex<HashSet<String>>,
    /// Queued nodes known to be in the engine's queue (or about to be handed to it): the
    /// checkpoint's, the re-derived ones and every node a planning round created.
    handed: Mutex<HashSet<String>>,
    /// Single flight of planning rounds.
    rounds: planning::Rounds,
    /// The planner (`None` for `planner.kind = "none"`).
    planner: Option<Box<dyn RoundPlanner>>,
    /// Job endings seen but not yet written (their write failed): used by the retry.
    endings: Mutex<HashMap<String, JobEnding>>,
    /// Serializes admission decisions (the count itself lives in the ledger).
    admission: Mutex<()>,
    /// When `tree.json` was last written (it is rewritten at most once a second).
    tree_written: Mutex<Option<std::time::Instant>>,
    followups: Mutex<HashMap<String, Vec<WorkSpec>>>,
    stop_reason: Mutex<Option<String>>,
    planner_stop: Mutex<Option<String>>,
    /// Set when the run fails fast (see [`fail_fast`]).
    fail_fast: Mutex<Option<crate::model::FailFast>>,
    notices: broadcast::Sender<Notice>,
    /// The engine's event log, handed over when the engine starts the workflow.
    events: std::sync::OnceLock<autoresearch_engine::EventLog>,
    /// The coding agent (`planner.kind = "agent"`): apply and analyze calls.
    pub(crate) agent: Option<crate::agent::AgentClient>,
    /// The prompt templates of apply and analyze.
    pub(crate) templates: crate::agent::template::Templates,
    /// The run's workspace, opened at start (a run with `workspace`).
    pub(crate) workspace: std::sync::OnceLock<crate::workspace::Workspace>,
    /// The repository's top folder, canonical (a run with `workspace`).
    pub(crate) repo_top: std::sync::OnceLock<std::path::PathBuf>,
}

impl std::fmt::Debug for ExperimentWorkflow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExperimentWorkflow")
            .field("wd", &self.wd)
            .finish_non_exhaustive()
    }
}

impl ExperimentWorkflow {
    /// Opens the workflow on a workdir whose `config.json` is `config` (already validated).
    ///
    /// A relative workdir is made absolute: jobs run in `job.cwd`, and the paths they are given
    /// (`AUTORESEARCH_RUN_DIR`, the wrapper's run dir) must not depend on it.
    pub fn open(wd: Workdir, config: Config) -> Result<Self, WorkflowError> {
        let wd = Workdir::new(std::path::absolute(&wd.root).map_err(|source| {
            WorkflowError::Node(NodeError::Io {
                path: wd.root.clone(),
                source,
            })
        })?);
        let exec = Exec::from_config(&config.executor);
        let nodes = NodeStore::load(&wd)?;
        let ledger = Ledger::load(&wd, &config)?;
        ledger
            .started
            .store(nodes.started_count(), std::sync::atomic::Ordering::Relaxed);
        ledger
            .next_index
            .store(nodes.next_index(), std::sync::atomic::Ordering::Relaxed);
        let (notices, _) = broadcast::channel(1024);
        let planner = crate::planner::round::for_config(&config, &wd)
            .map_err(|e| WorkflowError::Config(e.message))?;
        let templates = crate::agent::template::Templates::load(&wd.root)
            .map_err(|e| WorkflowError::Config(e.to_string()))?;
        let agent = match (config.planner.kind, &config.planner.agent) {
            (crate::config::PlannerKind::Agent, Some(a)) => {
                Some(crate::agent::AgentClient::new(a.clone(), wd.root.clone()))
            }
            _ => None,
        };
        Ok(ExperimentWorkflow {
            wd,
            config,
            nodes,
            ledger,
            exec,
            admitted: Mutex::new(HashSet::new()),
            handed: Mutex::new(HashSet::new()),
            rounds: planning::Rounds::default(),
            planner,
            endings: Mutex::new(HashMap::new()),
            admission: Mutex::new(()),
            tree_written: Mutex::new(None),
            followups: Mutex::new(HashMap::new()),
            stop_reason: Mutex::new(None),
            planner_stop: Mutex::new(None),
            fail_fast: Mutex::new(None),
            notices,
            events: std::sync::OnceLock::new(),
            agent,
            templates,
            workspace: std::sync::OnceLock::new(),
            repo_top: std::sync::OnceLock::new(),
        })
    }

    /// Listens to node notices.
    pub fn subscribe(&self) -> broadcast::Receiver<Notice> {
        self.notices.subscribe()
    }

    pub(crate) fn notify(&self, notice: Notice) {
        let _ = self.notices.send(notice);
    }

    /// The configuration in use.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Experiments started so far (over all resumes).
    pub fn experiments_started(&self) -> u64 {
        self.ledger
            .started
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The run state (best, plateau, budgets).
    pub fn state(&self) -> crate::model::RunState {
        let mut s = self.ledger.snapshot();
        s.experiments_started = self.experiments_started();
        s
    }

    /// Persists the final state after the engine returned (time used, experiments started, why
    /// it stopped, the fail-fast verdict) and the final `tree.json`.
    ///
    /// The reason is the real one: the fail-fast verdict, else the limit that stopped the run,
    /// else the planner's word, else what the engine says (a queue that drained is explained).
    pub fn finish(&self, report: &RunReport) -> Result<(), WorkflowError> {
        let fail_fast = self.fail_fast();
        let reason = self
            .fail_fast_reason()
            .or_else(|| self.stop_reason.lock().ok().and_then(|r| r.clone()))
            .or_else(|| self.planner_stop.lock().ok().and_then(|r| r.clone()))
            .or_else(|| {
                report
                    .stop_reason
                    .clone()
                    .map(|r| self.explain_engine_stop(r))
            });
        let interrupted = report.status == autoresearch_engine::EngineStatus::Interrupted;
        self.ledger.update(|s| {
            s.stop_reason = if interrupted { None } else { reason };
            s.fail_fast = if interrupted { None } else { fail_fast };
        })?;
        self.nodes.write_tree()?;
        Ok(())
    }

    /// The engine's stop reason in the run's words: a queue that drained is said to be done
    /// with what the configuration asked (`planner.kind = none`) or with what the planner
    /// proposed.
    fn explain_engine_stop(&self, reason: String) -> String {
        if reason != "queue drained" {
            return reason;
        }
        if self.planner.is_none() {
            "queue drained: everything queued ran (planner.kind = none plans nothing more)".into()
        } else {
            "queue drained: the planner had nothing left to propose".into()
        }
    }

    /// Rewrites `engine/tree.json` unless it was written less than a second ago (it is a view
    /// of the node files, rewritten in full; `finish` writes it once more at the end).
    fn write_tree_debounced(&self) {
        let mut last = self.tree_written.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_some_and(|t| t.elapsed() < std::time::Duration::from_secs(1)) {
            return;
        }
        *last = Some(std::time::Instant::now());
        drop(last);
        if let Err(e) = self.nodes.write_tree() {
            tracing::warn!("could not write tree.json: {e}");
        }
    }

    /// The planner's latest word: `Some(reason)` when it had nothing to propose, `None` when it
    /// launched something after all.
    pub(crate) fn set_planner_stop(&self, reason: Option<String>) {
        if let Ok(mut r) = self.planner_stop.lock() {
            *r = reason;
        }
    }

    pub(crate) fn set_stop_reason(&self, reason: String) {
        if let Ok(mut r) = self.stop_reason.lock()
            && r.is_none()
        {
            *r = Some(reason);
        }
    }

    /// The engine spec for a node.
    pub(crate) fn work_spec(spec: &NodeSpec) -> WorkSpec {
        let mut payload = Map::new();
        payload.insert("name".into(), json!(spec.name));
        payload.insert("params".into(), Value::Object(spec.params.clone()));
        payload.insert("parent_id".into(), json!(spec.parent_id));
        WorkSpec {
            id: spec.node_id.clone(),
            priority: spec.priority,
            kind: SPEC_KIND.into(),
            payload,
        }
    }

    /// Creates a node for a proposal and returns its spec.
    pub(crate) fn new_node(
        &self,
        name: &str,
        parent_id: Option<String>,
        hypothesis: String,
        params: Map<String, Value>,
        changes: Option<String>,
        priority: f64,
    ) -> Result<NodeSpec, NewNodeError> {
        let params = self.config.complete_params(&params);
        let command = self.config.render(&params).map_err(|e| {
            NewNodeError::Render(format!("cannot build the command for {name}: {e}"))
        })?;
        let spec = NodeSpec {
            node_id: {
                let id = self.nodes.allocate_id(name);
                self.ledger.next_index.store(
                    self.nodes.next_index(),
                    std::sync::atomic::Ordering::Relaxed,
                );
                id
            },
            name: name.to_string(),
            parent_id,
            hypothesis,
            params,
            changes,
            command,
            priority,
            created_at: now_millis(),
        };
        self.nodes.create(spec.clone()).map_err(NewNodeError::Io)?;
        Ok(spec)
    }

    /// Keeps a job ending whose write failed, for the node's retry.
    pub(crate) fn keep_ending(&self, id: &str, ending: JobEnding) {
        if let Ok(mut e) = self.endings.lock() {
            e.insert(id.to_string(), ending);
        }
    }

    /// The job ending kept by [`keep_ending`](Self::keep_ending), if any.
    pub(crate) fn take_kept_ending(&self, id: &str) -> Option<JobEnding> {
        self.endings.lock().ok().and_then(|mut e| e.remove(id))
    }
}

/// Now, RFC 3339 with milliseconds.
pub(crate) fn now_millis() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

impl Workflow for ExperimentWorkflow {
    async fn initial_specs(&self, start: &StartInfo) -> Result<Vec<WorkSpec>, WorkError> {
        let _ = self.events.set(start.events.clone());
        self.open_workspace().await.map_err(WorkError::Failed)?;
        self.rebuild_agent_cost().map_err(WorkError::Retry)?;
        self.start_specs(start)
    }

    fn admit(&self, spec: &WorkSpec) -> Admission {
        if let Some(r) = self.fail_fast_reason() {
            return Admission::Stop(r);
        }
        let already = self
            .nodes
            .get(&spec.id)
            .is_some_and(|n| n.status != NodeStatus::Queued);
        let mut admitted = self.admitted.lock().unwrap_or_else(|p| p.into_inner());
        let counted = already || admitted.contains(&spec.id);
        let _one_at_a_time = self.admission.lock().unwrap_or_else(|p| p.into_inner());
        let reached = match self.max_experiments_reached() {
            Some(r) if !counted => Some(r),
            _ => self.patience_spent().or_else(|| self.time_budget_used()),
        };
        if let Some(r) = reached {
            self.set_stop_reason(r.clone());
            return Admission::Stop(r);
        }
        if !counted {
            admitted.insert(spec.id.clone());
            self.ledger
                .started
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        Admission::Start
    }

    async fn run(&self, spec: WorkSpec, ctx: RunContext) -> Result<Vec<WorkSpec>, WorkError> {
        self.run_node(spec, ctx).await
    }

    async fn on_outcome(&self, spec: &WorkSpec, outcome: &Outcome) -> Decision {
        let enqueue = match outcome {
            Outcome::Completed { children } => children.clone(),
            Outcome::Failed { .. } | Outcome::Panicked { .. } => self
                .followups
                .lock()
                .ok()
                .and_then(|mut f| f.remove(&spec.id))
                .unwrap_or_default(),
            Outcome::Cancelled => Vec::new(),
        };
        if let Outcome::Panicked { message } = outcome {
            // A bug, not the job: record it so the node does not stay "running" forever.
            self.record_unexpected(&spec.id, message);
        }
        if !matches!(outcome, Outcome::Cancelled) {
            self.write_tree_debounced();
        }
        Decision {
            enqueue,
            stop: self.fail_fast_reason(),
        }
    }
}
