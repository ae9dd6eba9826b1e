//! Rebuilding `engine/checkpoint.json` and `engine/tree.json` from the node files (for
//! `supervisor repair`): queued nodes go back to the queue, nodes caught mid-flight go to
//! `running` (they resume first), finished nodes stay finished. Whatever is replaced is backed
//! up first as `<file>.bak-<time>`.

use std::path::{Path, PathBuf};

use autoresearch_engine::checkpoint::{self, Checkpoint};
use autoresearch_engine::paths::EnginePaths;
use autoresearch_engine::{EngineStatus, WorkSpec};

use crate::model::NodeStatus;
use crate::workdir::Workdir;
use crate::workflow::nodes::{NodeError, NodeStore};
use crate::workflow::{DROPPED_MARKER, ExperimentWorkflow};

/// Largest checkpoint or tree backed up.
const MAX_BACKUP_BYTES: u64 = 1 << 30;

/// What repair found and did.
#[derive(Debug, Clone, Default)]
pub struct RepairReport {
    /// Nodes found, by status.
    pub by_status: Vec<(NodeStatus, usize)>,
    /// Ids put in the rebuilt queue.
    pub queued: Vec<String>,
    /// Ids put in the rebuilt running list (they resume first).
    pub running: Vec<String>,
    /// Node dirs skipped as unreadable, with the reason.
    pub skipped: Vec<String>,
    /// Backups written (empty on a dry run).
    pub backups: Vec<PathBuf>,
    /// Whether the old checkpoint was missing or did not load.
    pub old_checkpoint_problem: Option<String>,
    /// Whether anything was written.
    pub written: bool,
}

/// Errors of repair.
#[derive(Debug, thiserror::Error)]
pub enum RepairError {
    /// A running engine holds the workdir.
    #[error(transparent)]
    Engine(#[from] autoresearch_engine::EngineError),
    /// Node files could not be read.
    #[error(transparent)]
    Node(#[from] NodeError),
    /// A file could not be written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// Rebuilds checkpoint and tree from `engine/nodes/*` and `runs/*`; with `dry_run` only reports.
pub fn repair(root: &Path, dry_run: bool) -> Result<RepairReport, RepairError> {
    let wd = Workdir::new(root);
    // Holding the lock guarantees no engine runs while we rewrite its files.
    let _lock = autoresearch_engine::lock::acquire(root)?;
    let nodes = NodeStore::load(&wd)?;
    let mut report = RepairReport::default();
    let paths = EnginePaths::new(root);
    let cp_path = paths.checkpoint();
    let old = match checkpoint::load(&cp_path) {
        Ok(Some(cp)) => Some(cp),
        Ok(None) => {
            report.old_checkpoint_problem = Some("no checkpoint.json".into());
            None
        }
        Err(e) => {
            report.old_checkpoint_problem = Some(e.to_string());
            None
        }
    };
    let mut queued: Vec<WorkSpec> = Vec::new();
    let mut running: Vec<WorkSpec> = Vec::new();
    let mut counts = std::collections::BTreeMap::new();
    for node in nodes.all() {
        *counts.entry(node.status).or_insert(0usize) += 1;
        let id = node.spec.node_id.clone();
        if wd.node_dir(&id).join(DROPPED_MARKER).exists() {
            continue;
        }
        let mut spec = ExperimentWorkflow::work_spec(&node.spec);
        // Keep a priority the user set in the old checkpoint.
        if let Some(old) = &old
            && let Some(s) = old
                .queued
                .iter()
                .chain(old.running.iter())
                .find(|s| s.id == id)
        {
            spec.priority = s.priority;
        }
        match node.status {
            NodeStatus::Queued => queued.push(spec),
            s if s.is_active() => running.push(spec),
            _ => {}
        }
    }
    // Unreadable node dirs are reported, not silently ignored.
    if let Ok(rd) = std::fs::read_dir(wd.nodes_dir()) {
        for e in rd.filter_map(Result::ok) {
            let name = e.file_name().to_string_lossy().into_owned();
            if nodes.get(&name).is_none() {
                report
                    .skipped
                    .push(format!("{name}: no readable spec.json"));
            }
        }
    }
    queued.sort_by(|a, b| a.priority.total_cmp(&b.priority));
    report.by_status = counts.into_iter().collect();
    report.queued = queued.iter().map(|s| s.id.clone()).collect();
    report.running = running.iter().map(|s| s.id.clone()).collect();
    if dry_run {
        return Ok(report);
    }
    let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now())
        .to_string()
        .replace(':', "-");
    for path in [cp_path.clone(), wd.tree()] {
        // Read as a regular file (never through a link) and written by atomic replacement, so
        // a link planted at the backup's name is replaced, not written through.
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| RepairError::Io { path, source }
        };
        wd.check(&path).map_err(io(&path))?;
        let Some(bytes) = autoresearch_engine::nofollow::read_regular(&path, MAX_BACKUP_BYTES)
            .map_err(io(&path))?
        else {
            continue;
        };
        let backup = PathBuf::from(format!("{}.bak-{stamp}", path.display()));
        autoresearch_engine::atomic::write_atomic(&backup, &bytes).map_err(io(&backup))?;
        report.backups.push(backup);
    }
    let cp = Checkpoint {
        schema_version: checkpoint::SCHEMA_VERSION,
        revision: old.as_ref().map_or(0, |o| o.revision) + 1,
        status: EngineStatus::Interrupted,
        updated_at: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
        queued,
        running,
        extra: old.map(|o| o.extra).unwrap_or_default(),
        warnings: Vec::new(),
    };
    checkpoint::save(&cp_path, &cp).map_err(|source| RepairError::Io {
        path: cp_path.clone(),
        source,
    })?;
    nodes.write_tree()?;
    report.written = true;
    Ok(report)
}
