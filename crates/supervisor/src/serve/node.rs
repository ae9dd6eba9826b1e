//! One experiment's page: what the snapshot knows about the node, plus what only its run folder
//! holds (the job record with its attempt, the exact command that ran, the exit code, the
//! analysis, the sizes of the logs) and its code commits. The logs themselves are followed
//! by the page through [`super::logs`].

use std::io::Read;
use std::path::Path;

use autoresearch_adapters::model::{Failure, JobRecord, NodeResult};
use autoresearch_adapters::workdir::Workdir;
use serde::Serialize;
use serde_json::{Map, Value};

use super::diff;
use super::logs::open_no_follow;
use super::snapshot::Snapshot;
use autoresearch_adapters::workspace::node_diff::NodeCode;

/// The most bytes of `command.sh` and `analysis.md` shown.
const MAX_TEXT: u64 = 64 * 1024;

/// A node linked from another.
#[derive(Debug, Clone, Serialize)]
pub struct Link {
    /// Node id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its status.
    pub status: String,
}

/// `GET /api/w/{key}/nodes/{id}`.
#[derive(Debug, Clone, Serialize)]
pub struct NodeDetail {
    /// Snapshot version.
    pub version: u64,
    /// Node id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Lifecycle status.
    pub status: String,
    /// Whether the status is a phase between launch and the end.
    pub active: bool,
    /// Primary metric name.
    pub metric: String,
    /// Primary metric value.
    pub value: Option<f64>,
    /// Whether it is the best node.
    pub best: bool,
    /// Whether it is the baseline.
    pub baseline: bool,
    /// The parent.
    pub parent: Option<Link>,
    /// The children, in creation order.
    pub children: Vec<Link>,
    /// From the root to this node.
    pub path: Vec<Link>,
    /// What it changes relative to its parent.
    pub change: String,
    /// Why it was tried.
    pub hypothesis: Option<String>,
    /// The code change asked of the agent, if any.
    pub changes: Option<String>,
    /// The command (parameters substituted).
    pub command: Option<String>,
    /// Parameter values.
    pub params: Map<String, Value>,
    /// Queue priority.
    pub priority: Option<f64>,
    /// When it was created (RFC 3339).
    pub created_at: Option<String>,
    /// When its result or failure was written (RFC 3339).
    pub finished_at: Option<String>,
    /// `result.json`.
    pub result: Option<NodeResult>,
    /// `failure.json`.
    pub failure: Option<Failure>,
    /// `runs/<id>/job.json`: job id, host, start, attempt.
    pub job: Option<JobRecord>,
    /// `runs/<id>/command.sh`: exactly what ran.
    pub command_sh: Option<String>,
    /// `runs/<id>/exit_code`, as written by the job's wrapper.
    pub exit_code_file: Option<String>,
    /// `runs/<id>/analysis.md`.
    pub analysis_md: Option<String>,
    /// Sizes of `stdout.log` and `stderr.log` (absent: not written).
    pub logs: Map<String, Value>,
    /// Its code commits, when it changes code.
    pub commits: Option<NodeCode>,
}

/// Reads at most [`MAX_TEXT`] bytes of a run-folder file (no symbolic links).
fn read_text(path: &Path) -> Option<String> {
    let mut f = open_no_follow(path).ok()?;
    let mut buf = Vec::new();
    f.by_ref().take(MAX_TEXT).read_to_end(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf).into_owned())
}

/// Whether `runs/` and `runs/<id>/` are real folders (not planted symbolic links).
pub fn run_dir_ok(wd: &Workdir, id: &str) -> bool {
    [wd.runs_dir(), wd.run_dir(id)]
        .iter()
        .all(|p| std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_dir()))
}

fn link(snap: &Snapshot, i: usize) -> Link {
    let n = &snap.view.nodes[i];
    Link {
        id: n.id.clone(),
        name: n.name().to_owned(),
        status: n.status.to_string(),
    }
}

/// The page of node `id`, or `None` when the snapshot has no such node. Blocking reads of the
/// run folder and git run here.
pub async fn detail(snap: &Snapshot, id: &str) -> Option<NodeDetail> {
    let view = &snap.view;
    let i = *view.by_id.get(id)?;
    let n = &view.nodes[i];
    let wd = Workdir::new(&view.root);
    let run_dir = wd.run_dir(id);
    let ok = run_dir_ok(&wd, id);
    let files = tokio::task::spawn_blocking(move || {
        if !ok {
            return (None, None, None, None, Map::new());
        }
        let job: Option<JobRecord> =
            read_text(&run_dir.join("job.json")).and_then(|t| serde_json::from_str(&t).ok());
        let mut logs = Map::new();
        for name in ["stdout.log", "stderr.log"] {
            if let Ok(m) = std::fs::symlink_metadata(run_dir.join(name))
                && m.file_type().is_file()
            {
                logs.insert(name.to_owned(), Value::from(m.len()));
            }
        }
        (
            job,
            read_text(&run_dir.join("command.sh")),
            read_text(&run_dir.join("exit_code")).map(|s| s.trim().to_owned()),
            read_text(&run_dir.join("analysis.md")),
            logs,
        )
    })
    .await
    .ok()?;
    let (job, command_sh, exit_code_file, analysis_md, logs) = files;
    let spec = n.spec.as_ref();
    Some(NodeDetail {
        version: snap.version,
        id: n.id.clone(),
        name: n.name().to_owned(),
        status: n.status.to_string(),
        active: n.is_active(),
        metric: view.metric.clone(),
        value: view.primary(i),
        best: view.best == Some(i),
        baseline: view.baseline == Some(i),
        parent: n.parent.map(|p| link(snap, p)),
        children: n.children.iter().map(|&c| link(snap, c)).collect(),
        path: view.path_to(i).into_iter().map(|p| link(snap, p)).collect(),
        change: view.change_label(i),
        hypothesis: spec.map(|s| s.hypothesis.clone()),
        changes: spec.and_then(|s| s.changes.clone()),
        command: spec.map(|s| s.command.clone()),
        params: n.params().cloned().unwrap_or_default(),
        priority: spec.map(|s| s.priority),
        created_at: spec.map(|s| s.created_at.clone()),
        finished_at: n
            .finished_at
            .map(|t| humantime::format_rfc3339_seconds(t).to_string()),
        result: n.result.clone(),
        failure: n.failure.clone(),
        job: job.or_else(|| n.job.clone()),
        command_sh,
        exit_code_file,
        analysis_md,
        logs,
        commits: diff::commits(view, i),
    })
}
