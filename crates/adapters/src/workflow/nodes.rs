//! The node store: reads and writes `engine/nodes/<id>/…` atomically and keeps an in-memory
//! index of every node (spec, status, primary metric, children) so nothing has to be re-read
//! from disk on the hot path. Node ids are `NNN_<sanitized name>`.
//!
//! Every path is checked for symbolic links below the workdir root before it is used, and every
//! file is read with a size cap (`read_regular`): a planted link, FIFO or huge file gets an
//! error naming it, and nothing is read or written through it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use autoresearch_engine::atomic::write_atomic;
use autoresearch_engine::nofollow;
use serde::de::DeserializeOwned;

use crate::model::{Failure, NodeResult, NodeSpec, NodeStatus, Spread, TreeFile, TreeNode};
use crate::workdir::Workdir;

/// Largest `status.txt` read.
const MAX_STATUS_BYTES: u64 = 256;
/// Largest node JSON file read (`spec.json`, `result.json`, `failure.json`, run-dir JSON).
pub const MAX_NODE_FILE_BYTES: u64 = 16 << 20;

/// Errors of the node store. None of them is the experiment's fault: they are the
/// environment's (disk full, I/O error, a planted link) or a damaged file to repair.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// A node file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A node file is not valid.
    #[error("{}: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// Result alias for node operations.
pub type NodeResultT<T> = Result<T, NodeError>;

/// What the index knows about one node.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    /// The node's spec.
    pub spec: NodeSpec,
    /// Its lifecycle status.
    pub status: NodeStatus,
    /// Primary metric, once analyzed.
    pub primary: Option<f64>,
    /// Whether it improved on the best.
    pub improved: bool,
    /// Nodes created by the planning rounds this node led (`result.json`'s `children`).
    pub children: Vec<String>,
    /// The spread of its runs' primary metric, when it ran more than once.
    pub spread: Option<Spread>,
}

#[derive(Default)]
struct Index {
    nodes: HashMap<String, NodeInfo>,
    order: Vec<String>,
    next_index: u64,
}

/// Node files plus their in-memory index.
pub struct NodeStore {
    wd: Workdir,
    index: Mutex<Index>,
}

impl std::fmt::Debug for NodeStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeStore")
            .field("wd", &self.wd)
            .finish_non_exhaustive()
    }
}

/// Turns a free-form name into the safe part of a node id: `[A-Za-z0-9._-]`, no leading dots,
/// at most 100 characters; never empty.
pub fn sanitize_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len().min(100));
    let mut last_us = false;
    for c in name.chars() {
        let ok = c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_';
        let c = if ok { c } else { '_' };
        if c == '_' && last_us {
            continue;
        }
        last_us = c == '_';
        out.push(c);
        if out.len() >= 100 {
            break;
        }
    }
    let trimmed = out.trim_matches(|c| c == '.' || c == '_' || c == '-');
    // No `..` anywhere: collapse dot runs.
    let mut clean = String::with_capacity(trimmed.len());
    for c in trimmed.chars() {
        if c == '.' && clean.ends_with('.') {
            continue;
        }
        clean.push(c);
    }
    if clean.is_empty() {
        "node".to_string()
    } else {
        clean
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> NodeError + '_ {
    move |source| NodeError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Reads a JSON node or run-dir file of at most [`MAX_NODE_FILE_BYTES`]; `Ok(None)` when
/// missing. A link, FIFO or device there is an error naming it.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> NodeResultT<Option<T>> {
    read_json_capped(path, MAX_NODE_FILE_BYTES)
}

/// [`read_json`] with an explicit size cap.
pub fn read_json_capped<T: DeserializeOwned>(path: &Path, cap: u64) -> NodeResultT<Option<T>> {
    match nofollow::read_regular(path, cap).map_err(io(path))? {
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| NodeError::Invalid {
                path: path.to_path_buf(),
                message: format!("not valid JSON for this file: {e}"),
            }),
        None => Ok(None),
    }
}

/// The numeric prefix of a node id (`012_x` → 12).
pub fn id_number(id: &str) -> Option<u64> {
    id.split('_').next().and_then(|n| n.parse().ok())
}

impl NodeStore {
    /// Loads every node under `engine/nodes/` into the index. A symbolic link among the node
    /// folders (or on the way to them) is an error naming it.
    pub fn load(wd: &Workdir) -> NodeResultT<NodeStore> {
        let dir = wd.nodes_dir();
        wd.check(&dir).map_err(io(&dir))?;
        let mut index = Index::default();
        let mut ids: Vec<String> = Vec::new();
        match std::fs::read_dir(&dir) {
            Ok(rd) => {
                for entry in rd {
                    let entry = entry.map_err(io(&dir))?;
                    let path = entry.path();
                    let kind = entry.file_type().map_err(io(&path))?;
                    if kind.is_symlink() {
                        return Err(NodeError::Io {
                            source: nofollow::link_error(&path),
                            path,
                        });
                    }
                    let name = entry.file_name().to_string_lossy().into_owned();
                    if kind.is_dir() && crate::workdir::is_node_id(&name) {
                        ids.push(name);
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&dir)(e)),
        }
        ids.sort_by_key(|id| (id_number(id).unwrap_or(u64::MAX), id.clone()));
        for id in ids {
            // A folder without spec.json is a node whose creation was cut short: ignored.
            let Some(spec) = read_json::<NodeSpec>(&wd.node_spec(&id))? else {
                continue;
            };
            let status = read_status(wd, &id)?.unwrap_or(NodeStatus::Queued);
            let result = if status.is_terminal() || status == NodeStatus::Planning {
                read_json::<NodeResult>(&wd.node_result(&id))?
            } else {
                None
            };
            if let Some(n) = id_number(&id) {
                index.next_index = index.next_index.max(n + 1);
            }
            index.order.push(id.clone());
            index.nodes.insert(
                id,
                NodeInfo {
                    spec,
                    status,
                    primary: result.as_ref().and_then(|r| r.primary),
                    improved: result.as_ref().is_some_and(|r| r.improved),
                    spread: result.as_ref().and_then(|r| r.spread),
                    children: result.map(|r| r.children).unwrap_or_default(),
                },
            );
        }
        Ok(NodeStore {
            wd: wd.clone(),
            index: Mutex::new(index),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Index> {
        // A panic while holding the lock leaves consistent data (every update is one insert).
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The workdir.
    pub fn workdir(&self) -> &Workdir {
        &self.wd
    }

    /// Reserves the next node id for `name`.
    pub fn allocate_id(&self, name: &str) -> String {
        let mut idx = self.lock();
        let n = idx.next_index;
        idx.next_index += 1;
        format!("{n:03}_{}", sanitize_name(name))
    }

    /// Writes a new node and indexes it. `status.txt` (`queued`) is written first and
    /// `spec.json` last: a node exists once its `spec.json` does (folders without one are
    /// ignored), so a creation cut short (a crash, a full disk) never leaves a node behind.
    pub fn create(&self, spec: NodeSpec) -> NodeResultT<()> {
        let id = spec.node_id.clone();
        let dir = self.wd.node_dir(&id);
        self.wd.create_dir(&dir).map_err(io(&dir))?;
        let status = self.wd.node_status(&id);
        let path = self.wd.node_spec(&id);
        let written = self
            .write_file(
                &status,
                format!("{}\n", NodeStatus::Queued.as_str()).as_bytes(),
            )
            .and_then(|()| self.write_json(&path, &spec));
        if let Err(e) = written {
            // Best effort: leave no folder without a spec behind.
            let _ = std::fs::remove_file(&status);
            let _ = std::fs::remove_dir(&dir);
            return Err(e);
        }
        let mut idx = self.lock();
        if !idx.nodes.contains_key(&id) {
            idx.order.push(id.clone());
        }
        idx.nodes.insert(
            id,
            NodeInfo {
                spec,
                status: NodeStatus::Queued,
                primary: None,
                improved: false,
                children: Vec::new(),
                spread: None,
            },
        );
        Ok(())
    }

    /// Removes the folders of nodes whose creation was cut short before their `spec.json`
    /// (they hold nothing but `status.txt` and temp files). Call it under the engine's lock.
    /// Returns the ids removed.
    pub fn remove_unborn(&self) -> Vec<String> {
        let mut removed = Vec::new();
        let Ok(rd) = std::fs::read_dir(self.wd.nodes_dir()) else {
            return removed;
        };
        for entry in rd.filter_map(Result::ok) {
            let id = entry.file_name().to_string_lossy().into_owned();
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            if !is_dir || self.get(&id).is_some() || !crate::workdir::is_node_id(&id) {
                continue;
            }
            let dir = entry.path();
            let Ok(files) = std::fs::read_dir(&dir) else {
                continue;
            };
            let names: Vec<String> = files
                .filter_map(Result::ok)
                .map(|f| f.file_name().to_string_lossy().into_owned())
                .collect();
            let unborn = names
                .iter()
                .all(|n| n == "status.txt" || (n.starts_with('.') && n.contains(".tmp.")));
            if !unborn {
                continue;
            }
            for n in &names {
                let _ = std::fs::remove_file(dir.join(n));
            }
            if std::fs::remove_dir(&dir).is_ok() {
                removed.push(id);
            }
        }
        removed
    }

    /// Checks the path of a node file for links, then replaces it atomically.
    fn write_file(&self, path: &Path, bytes: &[u8]) -> NodeResultT<()> {
        self.wd.check(path).map_err(io(path))?;
        write_atomic(path, bytes).map_err(io(path))
    }

    fn write_json<T: serde::Serialize>(&self, path: &Path, value: &T) -> NodeResultT<()> {
        let mut bytes = serde_json::to_vec_pretty(value).map_err(|e| NodeError::Invalid {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        bytes.push(b'\n');
        self.write_file(path, &bytes)
    }

    /// Persists a phase boundary (`status.txt`) and updates the index.
    pub fn set_status(&self, id: &str, status: NodeStatus) -> NodeResultT<()> {
        let path = self.wd.node_status(id);
        self.write_file(&path, format!("{}\n", status.as_str()).as_bytes())?;
        if let Some(n) = self.lock().nodes.get_mut(id) {
            n.status = status;
        }
        Ok(())
    }

    /// Writes `result.json` and records the primary metric and children in the index.
    pub fn write_result(&self, id: &str, result: &NodeResult) -> NodeResultT<()> {
        let path = self.wd.node_result(id);
        self.write_json(&path, result)?;
        if let Some(n) = self.lock().nodes.get_mut(id) {
            n.primary = result.primary;
            n.improved = result.improved;
            n.children = result.children.clone();
            n.spread = result.spread;
        }
        Ok(())
    }

    /// Writes `failure.json`.
    pub fn write_failure(&self, id: &str, failure: &Failure) -> NodeResultT<()> {
        let path = self.wd.node_failure(id);
        self.write_json(&path, failure)
    }

    /// Writes a JSON file of the node dir atomically (links refused), e.g. `commit.json`.
    pub fn write_node_json<T: serde::Serialize>(
        &self,
        id: &str,
        name: &str,
        value: &T,
    ) -> NodeResultT<()> {
        let path = self.wd.node_dir(id).join(name);
        self.write_json(&path, value)
    }

    /// Reads a JSON file of the node dir (links refused, size capped).
    pub fn read_file<T: DeserializeOwned>(&self, id: &str, name: &str) -> NodeResultT<Option<T>> {
        let path = self.wd.node_dir(id).join(name);
        self.wd.check(&path).map_err(io(&path))?;
        read_json(&path)
    }

    /// A node's index entry.
    pub fn get(&self, id: &str) -> Option<NodeInfo> {
        self.lock().nodes.get(id).cloned()
    }

    /// All nodes in creation order.
    pub fn all(&self) -> Vec<NodeInfo> {
        let idx = self.lock();
        idx.order
            .iter()
            .filter_map(|id| idx.nodes.get(id).cloned())
            .collect()
    }

    /// The index the next node id will get.
    pub fn next_index(&self) -> u64 {
        self.lock().next_index
    }

    /// How many nodes ever left `queued` (experiments started).
    pub fn started_count(&self) -> u64 {
        self.lock()
            .nodes
            .values()
            .filter(|n| n.status != NodeStatus::Queued)
            .count() as u64
    }

    /// Writes `engine/tree.json` from the index.
    pub fn write_tree(&self) -> NodeResultT<()> {
        let tree = {
            let idx = self.lock();
            TreeFile {
                schema_version: 1,
                nodes: idx
                    .order
                    .iter()
                    .filter_map(|id| idx.nodes.get(id))
                    .map(|n| TreeNode {
                        id: n.spec.node_id.clone(),
                        name: n.spec.name.clone(),
                        parent_id: n.spec.parent_id.clone(),
                        status: n.status,
                        primary: n.primary,
                        improved: n.improved,
                        change: change_label(
                            n,
                            idx.nodes.get(n.spec.parent_id.as_deref().unwrap_or("")),
                        ),
                    })
                    .collect(),
            }
        };
        let path = self.wd.tree();
        self.write_json(&path, &tree)
    }
}

/// `status.txt` of a node, if present and valid.
pub fn read_status(wd: &Workdir, id: &str) -> NodeResultT<Option<NodeStatus>> {
    let path = wd.node_status(id);
    let Some(bytes) = nofollow::read_regular(&path, MAX_STATUS_BYTES).map_err(io(&path))? else {
        return Ok(None);
    };
    let s = String::from_utf8_lossy(&bytes);
    NodeStatus::parse(&s)
        .map(Some)
        .ok_or_else(|| NodeError::Invalid {
            path,
            message: format!(
                "unknown status {:?}: expected one of {}",
                s.trim(),
                NodeStatus::ALL.map(NodeStatus::as_str).join(" ")
            ),
        })
}

/// Edge label: the code change if any, else the parameters that differ from the parent.
pub fn change_label(node: &NodeInfo, parent: Option<&NodeInfo>) -> String {
    if let Some(c) = node.spec.changes.as_deref().filter(|c| !c.is_empty()) {
        return c.to_string();
    }
    let Some(parent) = parent else {
        return String::new();
    };
    node.spec
        .params
        .iter()
        .filter(|(k, v)| parent.spec.params.get(*k) != Some(*v))
        .map(|(k, v)| {
            let old = parent
                .spec
                .params
                .get(k)
                .map(plain)
                .unwrap_or_else(|| "∅".into());
            format!("{k} {old}→{}", plain(v))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A JSON value without quotes for strings.
pub fn plain(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitized_names_are_safe_ids() {
        for (raw, want) in [
            ("workers 8", "workers_8"),
            ("../../etc/passwd", "etc_passwd"),
            ("a/b\\c", "a_b_c"),
            ("tab\there\nnl\u{7}", "tab_here_nl"),
            ("..", "node"),
            ("", "node"),
            ("x..y", "x.y"),
            ("ünïcødé", "n_c_d"),
        ] {
            let got = sanitize_name(raw);
            assert_eq!(got, want, "{raw:?}");
            assert!(autoresearch_engine::spec::is_valid_id(&format!(
                "001_{got}"
            )));
            assert!(!got.contains(".."));
        }
        assert!(sanitize_name(&"x".repeat(500)).len() <= 100);
    }
}
