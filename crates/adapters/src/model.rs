//! Types of the experiment workdir files (`docs/workdir-format.md`): node spec, status, result,
//! failure, job record, tree and run-level state, the spread of repeated runs and the
//! confirmation of a new best. Readers (the supervisor's views) use the same types.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The payload of a spec added by hand (`supervisor queue add`, `retry`, `ask`, or an edit of
/// `engine/checkpoint.json`): what the workflow needs to make its node. Written by those
/// commands, read by the workflow when it adopts the spec; every field may be missing in a
/// hand edit (the name defaults to the spec id, the hypothesis to "added by hand").
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HandPayload {
    /// Short name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Parameter values (checked against the search space before the node is made).
    #[serde(default)]
    pub params: Map<String, Value>,
    /// The node it builds on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<String>,
    /// Why it is worth running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hypothesis: Option<String>,
    /// The code change to apply (agent runs), repeated by a retry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changes: Option<String>,
    /// The failed node this spec retries (`supervisor retry`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_of: Option<String>,
}

impl HandPayload {
    /// Reads a spec's payload.
    pub fn from_map(payload: &Map<String, Value>) -> Result<HandPayload, serde_json::Error> {
        HandPayload::deserialize(payload)
    }

    /// The payload of a spec.
    pub fn to_map(&self) -> Map<String, Value> {
        match serde_json::to_value(self) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        }
    }
}

/// `engine/nodes/<id>/spec.json`: what an experiment is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeSpec {
    /// `NNN_<sanitized name>`.
    pub node_id: String,
    /// Human name (unsanitized).
    pub name: String,
    /// The node it was planned from; `None` for baseline and seeds.
    pub parent_id: Option<String>,
    /// Why this experiment is worth running.
    pub hypothesis: String,
    /// Parameter values.
    pub params: Map<String, Value>,
    /// Code change description (agent planner), if any.
    pub changes: Option<String>,
    /// The command with parameters substituted.
    pub command: String,
    /// Queue priority (lower runs first).
    pub priority: f64,
    /// RFC 3339.
    pub created_at: String,
}

/// `engine/nodes/<id>/status.txt`: the lifecycle phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeStatus {
    /// Waiting in the queue.
    Queued,
    /// Run dir and command being prepared (and, in a run with a workspace, the experiment's
    /// worktree at its parent's commit).
    Preparing,
    /// The coding agent applying the experiment's code change in its worktree, then the engine
    /// committing it (only experiments with `changes`, in a run with a workspace).
    Applying,
    /// Job being submitted.
    Launching,
    /// Job running.
    Running,
    /// Metrics being read and compared.
    Analyzing,
    /// Planner proposing children.
    Planning,
    /// Done, result recorded.
    Completed,
    /// Done, failure recorded.
    Failed,
}

impl NodeStatus {
    /// All statuses in lifecycle order.
    pub const ALL: [NodeStatus; 9] = [
        NodeStatus::Queued,
        NodeStatus::Preparing,
        NodeStatus::Applying,
        NodeStatus::Launching,
        NodeStatus::Running,
        NodeStatus::Analyzing,
        NodeStatus::Planning,
        NodeStatus::Completed,
        NodeStatus::Failed,
    ];

    /// The word written in `status.txt`.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeStatus::Queued => "queued",
            NodeStatus::Preparing => "preparing",
            NodeStatus::Applying => "applying",
            NodeStatus::Launching => "launching",
            NodeStatus::Running => "running",
            NodeStatus::Analyzing => "analyzing",
            NodeStatus::Planning => "planning",
            NodeStatus::Completed => "completed",
            NodeStatus::Failed => "failed",
        }
    }

    /// Parses the word in `status.txt` (surrounding whitespace ignored).
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        NodeStatus::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Completed or failed.
    pub fn is_terminal(self) -> bool {
        matches!(self, NodeStatus::Completed | NodeStatus::Failed)
    }

    /// Between launch and the end (a job may exist).
    pub fn is_active(self) -> bool {
        !self.is_terminal() && self != NodeStatus::Queued
    }
}

impl std::fmt::Display for NodeStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `engine/nodes/<id>/result.json`: the outcome of a completed node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct NodeResult {
    /// All metrics the job reported.
    pub metrics: BTreeMap<String, f64>,
    /// The primary metric's value.
    pub primary: Option<f64>,
    /// Whether it improved on the best so far by at least `min_improvement`.
    pub improved: bool,
    /// Wall time of the job.
    pub duration_s: f64,
    /// The job's exit code.
    pub exit_code: Option<i32>,
    /// Ids of the nodes created by the planning rounds this node led (a round answers every
    /// completion since the previous one; see `docs/planning.md`).
    pub children: Vec<String>,
    /// Short analysis text.
    pub analysis: String,
    /// Metric names the job reported beyond the first [`MAX_METRIC_NAMES`] (not kept; the
    /// primary metric is always kept). Absent when 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub metrics_dropped: u64,
    /// Facts the coding agent's analysis established (`planner.agent.analyze`), one sentence
    /// each; absent when no analysis ran. They are shown to every later plan call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub findings: Option<Vec<String>>,
    /// The primary metric of every run of the job, in run order (the repeats, then the
    /// confirmation runs): run 1 is `runs/<id>/`, run k ≥ 2 `runs/<id>/repeat-<k>/`. `primary`
    /// is their aggregate (`objective.aggregate`). Absent in files written before repeats.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub samples: Vec<f64>,
    /// The spread of `samples`, when there are at least two.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spread: Option<Spread>,
    /// The confirmation this node went through (it beat the best and was re-run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmation: Option<Confirmation>,
    /// It beat the best at first but its confirmation runs did not hold the improvement
    /// (`improved` is then false). Absent when false.
    #[serde(default, skip_serializing_if = "is_false")]
    pub unconfirmed: bool,
}

impl NodeResult {
    /// How many runs the primary metric aggregates (1 for files written before repeats).
    pub fn n(&self) -> usize {
        self.samples.len().max(usize::from(self.primary.is_some()))
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The spread of repeated measurements of the primary metric.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    /// How many values.
    pub n: u32,
    /// The smallest.
    pub min: f64,
    /// The largest.
    pub max: f64,
    /// The arithmetic mean.
    pub mean: f64,
    /// The median.
    pub median: f64,
    /// The sample standard deviation (n − 1 in the denominator).
    pub stdev: f64,
    /// The median absolute deviation from the median (not scaled).
    pub mad: f64,
}

/// Why a new best was re-run before it counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConfirmReason {
    /// It beat the best by less than `noise_k` standard errors of the difference.
    WithinNoise,
    /// The noise floor was not known yet (`confirm = auto`).
    NoiseUnknown,
    /// `confirm = always`.
    Always,
}

/// `engine/nodes/<id>/confirm.json` (and `result.json`'s `confirmation`): the decision to
/// re-run a node that beat the best, taken once under the ledger's lock, and its outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Confirmation {
    /// Why it is re-run.
    pub reason: ConfirmReason,
    /// How many runs the node had when it was judged (its repeats).
    pub runs_before: u32,
    /// How many confirmation runs follow them (`objective.confirm_runs`).
    pub runs: u32,
    /// Its value (aggregate of its repeats) when it was judged.
    pub value: f64,
    /// The best node then.
    pub best_node: Option<String>,
    /// The best value then.
    pub best_before: Option<f64>,
    /// The relative noise floor then, when known.
    pub noise_floor: Option<f64>,
    /// RFC 3339.
    pub decided_at: String,
    /// `true`: the aggregate of all its runs still improved on the best; `false`: it did not;
    /// absent while the confirmation runs are going.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmed: Option<bool>,
}

/// `state.json`'s `noise_floor`: the relative noise of one measurement, pooled over every
/// node measured more than once (see `docs/noise.md`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct NoiseFloor {
    /// The pooled coefficient of variation: sqrt(Σ (nᵢ − 1)·(sᵢ/|meanᵢ|)² / Σ (nᵢ − 1)), over
    /// the repeats (not the confirmation runs) of each node measured at least twice.
    pub relative: f64,
    /// Degrees of freedom: Σ (nᵢ − 1).
    pub dof: u32,
    /// How many nodes contributed.
    pub nodes: u32,
}

impl NoiseFloor {
    /// `±4.2 % per run (2 nodes, 5 degrees of freedom)`: how views and prompts show it.
    pub fn describe(&self) -> String {
        format!(
            "±{:.1} % per run ({} node{}, {} degree{} of freedom)",
            self.relative * 100.0,
            self.nodes,
            if self.nodes == 1 { "" } else { "s" },
            self.dof,
            if self.dof == 1 { "" } else { "s" }
        )
    }
}

impl NodeResult {
    /// Whether its improvement was confirmed by re-runs (`confirmation.confirmed`).
    pub fn confirmed(&self) -> bool {
        self.confirmation
            .as_ref()
            .is_some_and(|c| c.confirmed == Some(true))
    }
}

/// At most this many metric names are kept per experiment (in `result.json` and the table).
pub const MAX_METRIC_NAMES: usize = 256;

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Kinds of failure recorded in `failure.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The job could not be started.
    Launch,
    /// The job ran past `job.timeout_s`.
    Timeout,
    /// The job exited with a status other than 0.
    NonzeroExit,
    /// The job did not report the primary metric.
    MissingMetric,
    /// The job disappeared (dead with no exit code).
    Lost,
    /// The planner failed.
    Planner,
    /// The coding agent could not apply the experiment's code change (its call failed, or the
    /// workspace could not be prepared).
    Apply,
    /// The code change touched a path of `workspace.protected` (its commit and ref are kept).
    ProtectedPath,
    /// The job was cancelled.
    Cancelled,
    /// Anything else.
    Unexpected,
}

impl FailureKind {
    /// The snake_case name used in files.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Launch => "launch",
            FailureKind::Timeout => "timeout",
            FailureKind::NonzeroExit => "nonzero_exit",
            FailureKind::MissingMetric => "missing_metric",
            FailureKind::Lost => "lost",
            FailureKind::Planner => "planner",
            FailureKind::Apply => "apply",
            FailureKind::ProtectedPath => "protected_path",
            FailureKind::Cancelled => "cancelled",
            FailureKind::Unexpected => "unexpected",
        }
    }
}

/// `engine/nodes/<id>/failure.json`: why a node failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    /// What kind of failure.
    pub kind: FailureKind,
    /// The phase it happened in.
    pub phase: NodeStatus,
    /// Human-readable reason.
    pub message: String,
    /// Whether running it again might succeed.
    pub retryable: bool,
    /// Extra facts (exit code, stderr tail, ...).
    pub details: Value,
    /// RFC 3339.
    pub created_at: String,
}

/// `runs/<id>/job.json`: where a job runs, written right after launch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    /// Executor-specific id (`local:<pid>` or the Slurm job id).
    pub job_id: String,
    /// `local` or `slurm`.
    pub executor: String,
    /// Process id of the wrapper (local).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// Process start time in clock ticks since boot (local; guards against pid reuse).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid_start_ticks: Option<u64>,
    /// Slurm job id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slurm_id: Option<String>,
    /// Host that launched it.
    pub host: String,
    /// RFC 3339.
    pub started_at: String,
    /// 1 for the first launch; a relaunch of a job known dead is attempt 2, ...
    #[serde(default = "one")]
    pub attempt: u32,
}

fn one() -> u32 {
    1
}

/// One node in `engine/tree.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TreeNode {
    /// Node id.
    pub id: String,
    /// Human name.
    pub name: String,
    /// Parent id.
    pub parent_id: Option<String>,
    /// Lifecycle status.
    pub status: NodeStatus,
    /// Primary metric, when known.
    pub primary: Option<f64>,
    /// Whether it improved on the best.
    pub improved: bool,
    /// The change it makes relative to its parent (for edge labels).
    #[serde(default)]
    pub change: String,
}

/// `engine/tree.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct TreeFile {
    /// Format version (1).
    pub schema_version: u32,
    /// Nodes in creation order.
    pub nodes: Vec<TreeNode>,
}

/// `state.json`: run-level state, totals across resumes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct RunState {
    /// Format version (1).
    pub schema_version: u32,
    /// Primary metric name.
    pub metric: String,
    /// `maximize` or `minimize`.
    pub direction: String,
    /// Best node so far.
    pub best_node: Option<String>,
    /// Its primary metric.
    pub best_value: Option<f64>,
    /// The baseline node.
    pub baseline_node: Option<String>,
    /// The baseline's primary metric.
    pub baseline_value: Option<f64>,
    /// Completed experiments in a row without improvement.
    pub plateau: u32,
    /// Experiments ever started (counts against `max_experiments`).
    pub experiments_started: u64,
    /// Experiments completed.
    pub experiments_completed: u64,
    /// Experiments failed.
    pub experiments_failed: u64,
    /// Wall time the engine ran, over all resumes.
    pub time_used_s: f64,
    /// Planner rounds so far.
    pub planner_rounds: u64,
    /// Node id counter (the next node gets `next_index`).
    pub next_index: u64,
    /// Why the run stopped, when it did.
    pub stop_reason: Option<String>,
    /// Set when the run stopped early because its first experiments failed (see
    /// `docs/resume.md`, "Fail-fast"); absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_fast: Option<FailFast>,
    /// RFC 3339.
    pub updated_at: String,
    /// How many runs the best node's value aggregates (absent: 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_n: Option<u32>,
    /// The relative noise of one measurement, once some node was measured at least twice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noise_floor: Option<NoiseFloor>,
    /// What the coding agent's calls cost, per run, phase and node (absent until one is made).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_cost: Option<crate::agent::CostBook>,
    /// Planning rounds whose agent call failed (after its retries) and fell back to
    /// `planner.agent.fallback`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub planner_failures: u64,
    /// The last of those failures: the node planned from and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_planner_failure: Option<String>,
}

/// The file name of [`NodeCommit`] in the node's folder.
pub const NODE_COMMIT_FILE: &str = "commit.json";

/// `engine/nodes/<id>/commit.json`: the code an experiment ran, in a run with a workspace.
/// Written when its worktree is ready (a parameter-only experiment) or when its code change is
/// committed (after `apply`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeCommit {
    /// The commit the job runs at.
    pub commit: String,
    /// The commit it was made from: the parent node's (the baseline's is `workspace.base`);
    /// equal to `commit` for a parameter-only experiment.
    pub parent_commit: String,
    /// `refs/autoresearch/<run>/<id>`, pointing at `commit`.
    #[serde(rename = "ref")]
    pub ref_name: String,
    /// Repository paths the code change changed (empty without one).
    #[serde(default)]
    pub changed: Vec<String>,
    /// The protected ones among them (non-empty: the experiment failed, never ran).
    #[serde(default)]
    pub violations: Vec<String>,
    /// RFC 3339.
    pub created_at: String,
}

/// Why a run failed fast (`state.json`'s `fail_fast`): while no experiment of the run has
/// completed, the baseline failed, or [`FAIL_FAST_AFTER`] experiments failed with the same kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailFast {
    /// The failure kind they share.
    pub kind: FailureKind,
    /// The failed nodes the verdict rests on, oldest first.
    pub nodes: Vec<String>,
    /// Whether the baseline is among them.
    pub baseline: bool,
    /// The primary metric the run looks for (`objective.metric`).
    pub metric: String,
    /// The message of the latest of these failures.
    pub message: String,
    /// Metric names the failed jobs did report (sorted; `missing_metric` only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics_seen: Vec<String>,
    /// The reported metric that is probably the one meant (the only one reported, or one
    /// whose name is close to `metric`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suggested_metric: Option<String>,
}

/// How many experiments failing with the same kind (while none has completed) stop a run.
pub const FAIL_FAST_AFTER: usize = 3;
