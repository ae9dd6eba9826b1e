//! One node as the views see it ([`NodeView`], read from its folder by [`load_node`]), the
//! direction of the primary metric, and the tolerant file readers of the loader: a missing or
//! torn file becomes a warning, never an error.

use std::fs;
use std::io;
use std::path::Path;
use std::time::SystemTime;

use autoresearch_adapters::model::{Failure, JobRecord, NodeResult, NodeSpec, NodeStatus, Spread};
use autoresearch_adapters::workdir::Workdir;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// Whether a larger or a smaller primary metric is better (the configuration's type).
pub use autoresearch_adapters::config::Direction;

/// One node of the hypothesis tree as read from `engine/nodes/<id>/` (and `runs/<id>/job.json`).
#[derive(Debug, Clone)]
pub struct NodeView {
    /// The node id (`NNN_<name>`), the folder name.
    pub id: String,
    /// The numeric prefix of the id (`u64::MAX` when it has none); creation order.
    pub seq: u64,
    /// `spec.json`, when readable.
    pub spec: Option<NodeSpec>,
    /// The status: `status.txt` when readable, else inferred (failure.json → failed,
    /// result.json → completed, otherwise queued).
    pub status: NodeStatus,
    /// Whether `status.txt` was readable (false: [`NodeView::status`] is inferred).
    pub status_from_file: bool,
    /// `result.json`, when readable.
    pub result: Option<NodeResult>,
    /// `failure.json`, when readable.
    pub failure: Option<Failure>,
    /// `runs/<id>/job.json` for nodes in an active phase, when readable.
    pub job: Option<JobRecord>,
    /// Modification time of `result.json` or `failure.json`.
    pub finished_at: Option<SystemTime>,
    /// The change label from `engine/tree.json` (`TreeNode.change`), when present and non-empty.
    pub tree_change: Option<String>,
    /// Index of the parent in [`RunView::nodes`](super::load::RunView::nodes) (`None` for roots and unknown parents).
    pub parent: Option<usize>,
    /// Indices of the children in [`RunView::nodes`](super::load::RunView::nodes), in creation order.
    pub children: Vec<usize>,
}

impl NodeView {
    /// The human name (from the spec, else the id without its numeric prefix).
    pub fn name(&self) -> &str {
        match &self.spec {
            Some(s) => &s.name,
            None => match self.id.split_once('_') {
                Some((_, rest)) if !rest.is_empty() => rest,
                _ => &self.id,
            },
        }
    }

    /// The parent id written in the spec.
    pub fn parent_id(&self) -> Option<&str> {
        self.spec.as_ref().and_then(|s| s.parent_id.as_deref())
    }

    /// The parameters (empty when the spec is unreadable).
    pub fn params(&self) -> Option<&Map<String, Value>> {
        self.spec.as_ref().map(|s| &s.params)
    }

    /// The value of metric `name` from the result.
    pub fn metric(&self, name: &str) -> Option<f64> {
        self.result.as_ref()?.metrics.get(name).copied()
    }

    /// Whether the result says it improved on the best.
    pub fn improved(&self) -> bool {
        self.result.as_ref().is_some_and(|r| r.improved)
    }

    /// Whether it beat the best at first but its confirmation runs did not hold it.
    pub fn unconfirmed(&self) -> bool {
        self.result.as_ref().is_some_and(|r| r.unconfirmed)
    }

    /// Whether its improvement was confirmed by re-runs.
    pub fn confirmed(&self) -> bool {
        self.result.as_ref().is_some_and(|r| r.confirmed())
    }

    /// The spread of its runs, when it ran more than once.
    pub fn spread(&self) -> Option<&Spread> {
        self.result.as_ref()?.spread.as_ref()
    }

    /// Whether the node is in one of the phases between queued and the end.
    pub fn is_active(&self) -> bool {
        self.status.is_active()
    }
}

/// The numeric prefix of a node id (`"012_x"` → 12), `u64::MAX` without one.
pub fn id_seq(id: &str) -> u64 {
    let digits: &str = id.split('_').next().unwrap_or("");
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return u64::MAX;
    }
    digits.parse().unwrap_or(u64::MAX)
}

pub(super) enum Read<T> {
    Missing,
    Bad(String),
    Ok(T),
}

pub(super) fn read_bytes(path: &Path) -> Read<Vec<u8>> {
    match fs::read(path) {
        Ok(b) => Read::Ok(b),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Read::Missing,
        Err(e) => Read::Bad(e.to_string()),
    }
}

pub(super) fn read_json<T: DeserializeOwned>(path: &Path) -> Read<T> {
    match read_bytes(path) {
        Read::Ok(b) => match serde_json::from_slice(&b) {
            Ok(v) => Read::Ok(v),
            Err(e) => Read::Bad(format!("unreadable JSON ({e})")),
        },
        Read::Missing => Read::Missing,
        Read::Bad(e) => Read::Bad(e),
    }
}

pub(super) fn rel(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// Reads one node folder (its tree label is set by the caller).
pub(super) fn load_node(
    wd: &Workdir,
    root: &Path,
    id: String,
    warnings: &mut Vec<String>,
) -> NodeView {
    let spec_path = wd.node_spec(&id);
    let spec: Option<NodeSpec> = match read_json(&spec_path) {
        Read::Ok(s) => Some(s),
        Read::Missing => {
            warnings.push(format!(
                "{}: missing; node shown without name, parent or params",
                rel(root, &spec_path)
            ));
            None
        }
        Read::Bad(e) => {
            warnings.push(format!(
                "{}: {e}; node shown without name, parent or params",
                rel(root, &spec_path)
            ));
            None
        }
    };
    let result_path = wd.node_result(&id);
    let mut finished_at = None;
    let mut result_missing = false;
    let result: Option<NodeResult> = match read_json(&result_path) {
        Read::Ok(r) => {
            finished_at = mtime(&result_path);
            Some(r)
        }
        Read::Missing => {
            result_missing = true;
            None
        }
        Read::Bad(e) => {
            warnings.push(format!("{}: {e}; result skipped", rel(root, &result_path)));
            None
        }
    };
    let failure_path = wd.node_failure(&id);
    let failure: Option<Failure> = match read_json(&failure_path) {
        Read::Ok(f) => {
            if finished_at.is_none() {
                finished_at = mtime(&failure_path);
            }
            Some(f)
        }
        Read::Missing => None,
        Read::Bad(e) => {
            warnings.push(format!(
                "{}: {e}; failure details skipped",
                rel(root, &failure_path)
            ));
            None
        }
    };
    let status_path = wd.node_status(&id);
    let from_file = match read_bytes(&status_path) {
        Read::Ok(b) => NodeStatus::parse(&String::from_utf8_lossy(&b)),
        _ => None,
    };
    let inferred = if failure.is_some() {
        NodeStatus::Failed
    } else if result.is_some() {
        NodeStatus::Completed
    } else {
        NodeStatus::Queued
    };
    let status = match from_file {
        Some(s) => s,
        None => {
            warnings.push(format!(
                "{}: missing or unreadable; status taken as {inferred}",
                rel(root, &status_path)
            ));
            inferred
        }
    };
    if status == NodeStatus::Completed && result_missing {
        warnings.push(format!(
            "{}: missing for a completed node; its metrics are unknown",
            rel(root, &result_path)
        ));
    }
    if finished_at.is_none() && status.is_terminal() {
        finished_at = mtime(&status_path);
    }
    let job = if status.is_active() {
        let job_path = wd.run_dir(&id).join("job.json");
        match read_json::<JobRecord>(&job_path) {
            Read::Ok(j) => Some(j),
            Read::Missing => None,
            Read::Bad(e) => {
                warnings.push(format!(
                    "{}: {e}; job shown as unknown",
                    rel(root, &job_path)
                ));
                None
            }
        }
    } else {
        None
    };
    NodeView {
        seq: id_seq(&id),
        id,
        spec,
        status,
        status_from_file: from_file.is_some(),
        result,
        failure,
        job,
        finished_at,
        tree_change: None,
        parent: None,
        children: Vec::new(),
    }
}

pub(super) fn mtime(path: &Path) -> Option<SystemTime> {
    fs::metadata(path).and_then(|m| m.modified()).ok()
}
