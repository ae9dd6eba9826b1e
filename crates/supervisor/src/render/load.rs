//! Reads a workdir into a [`RunView`]: one consistent-enough snapshot of every node's files,
//! the run state, the configuration and the engine state.
//!
//! Reading never fails because of one bad file. A missing or torn file (a workdir written
//! concurrently, an interrupted run, a hand-damaged copy) is skipped and described in
//! [`RunView::warnings`]; what can be inferred from the other files is used instead.
//!
//! A caller that reloads the same workdir again and again (the dashboard, the session's views)
//! passes a [`NodeCache`] to [`RunView::load_cached`]: a finished node whose folder has not
//! changed is taken from the previous load instead of being read again.

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use autoresearch_adapters::model::{NodeStatus, NoiseFloor, RunState, TreeFile};
use autoresearch_adapters::noise::{self, Confidence};
use autoresearch_adapters::workdir::Workdir;
use autoresearch_adapters::workflow::nodes::plain;
use autoresearch_engine::EngineStatus;
use autoresearch_engine::state::EngineState;
use serde_json::{Map, Value};

use autoresearch_adapters::config::Config;

use super::RenderError;
pub use super::completion::CompletionSource;
use super::completion::completion_order;
use super::node_cache::CachedNode;
pub use super::node_cache::NodeCache;
pub use super::node_view::{Direction, NodeView, id_seq};
use super::node_view::{Read, load_node, read_json, rel};

/// A snapshot of a workdir, everything the views need.
#[derive(Debug, Clone)]
pub struct RunView {
    /// The workdir root.
    pub root: PathBuf,
    /// The primary metric (`config.objective.metric`, else `state.metric`, else `primary`).
    pub metric: String,
    /// Better direction of the primary metric.
    pub direction: Direction,
    /// Nodes in creation order (numeric id prefix, then id).
    pub nodes: Vec<NodeView>,
    /// Node id → index in [`RunView::nodes`].
    pub by_id: HashMap<String, usize>,
    /// Indices of the root nodes (no parent, or a parent that is not in the workdir).
    pub roots: Vec<usize>,
    /// `state.json`, when readable.
    pub state: Option<RunState>,
    /// `config.json`, when readable.
    pub config: Option<Config>,
    /// `engine/engine_state.json`, when readable.
    pub engine: Option<EngineState>,
    /// Whether an engine holds `engine/lock` right now: `Some(pid)`, `None` when free, and
    /// `Err` text when it could not be checked.
    pub lock_holder: Result<Option<u32>, String>,
    /// Finished nodes (completed or failed) in completion order.
    pub completion_order: Vec<usize>,
    /// Where [`RunView::completion_order`] comes from.
    pub completion_source: CompletionSource,
    /// The best node: `state.best_node`, else the best primary value among improved nodes,
    /// else the best primary value overall.
    pub best: Option<usize>,
    /// The baseline node: `state.baseline_node`, else a root named `baseline`, else the first
    /// root.
    pub baseline: Option<usize>,
    /// Names of the metrics other than the primary one, sorted.
    pub other_metrics: Vec<String>,
    /// Files that were missing or unreadable and what was done instead.
    pub warnings: Vec<String>,
    /// When the snapshot was taken.
    pub loaded_at: SystemTime,
}

impl RunView {
    /// Reads the workdir at `root`.
    ///
    /// Fails only when `root` is not a workdir (neither `engine/` nor `config.json` exists) or
    /// the nodes folder exists but cannot be listed. Everything else becomes a warning.
    pub fn load(root: &Path) -> Result<RunView, RenderError> {
        Self::load_cached(root, &mut NodeCache::default())
    }

    /// [`RunView::load`], reusing the finished nodes of `cache` whose folders did not change
    /// and leaving in it the finished nodes of this load.
    pub fn load_cached(root: &Path, cache: &mut NodeCache) -> Result<RunView, RenderError> {
        let wd = Workdir::new(root);
        if !wd.engine_dir().is_dir() && !wd.config().is_file() {
            return Err(RenderError::NotAWorkdir {
                path: root.to_path_buf(),
            });
        }
        let mut warnings = Vec::new();
        let warn_read = |warnings: &mut Vec<String>, path: &Path, what: &str, msg: &str| {
            warnings.push(format!("{}: {msg}; {what}", rel(root, path)));
        };

        let config: Option<Config> = match read_json(&wd.config()) {
            Read::Ok(v) => Some(v),
            Read::Missing => None,
            Read::Bad(e) => {
                warn_read(&mut warnings, &wd.config(), "configuration ignored", &e);
                None
            }
        };
        let state: Option<RunState> = match read_json(&wd.state()) {
            Read::Ok(v) => Some(v),
            Read::Missing => None,
            Read::Bad(e) => {
                warn_read(&mut warnings, &wd.state(), "run state ignored", &e);
                None
            }
        };
        let engine_path = wd.engine_dir().join("engine_state.json");
        let engine: Option<EngineState> = match read_json(&engine_path) {
            Read::Ok(v) => Some(v),
            Read::Missing => None,
            Read::Bad(e) => {
                warn_read(&mut warnings, &engine_path, "engine state ignored", &e);
                None
            }
        };
        let lock_holder = autoresearch_engine::lock::holder(root).map_err(|e| e.to_string());

        let metric = config
            .as_ref()
            .map(|c| c.objective.metric.clone())
            .or_else(|| {
                state
                    .as_ref()
                    .map(|s| s.metric.clone())
                    .filter(|m| !m.is_empty())
            })
            .unwrap_or_else(|| "primary".to_owned());
        let direction = match (&config, &state) {
            (Some(c), _) => c.objective.direction,
            (None, Some(s)) if !s.direction.is_empty() => {
                match serde_json::from_value::<Direction>(Value::String(s.direction.clone())) {
                    Ok(d) => d,
                    Err(_) => {
                        warnings.push(format!(
                            "state.json: objective direction {:?} not understood; assuming maximize",
                            s.direction
                        ));
                        Direction::Maximize
                    }
                }
            }
            _ => Direction::Maximize,
        };

        // Tree file: only for the change labels.
        let mut changes: HashMap<String, String> = HashMap::new();
        match read_json::<TreeFile>(&wd.tree()) {
            Read::Ok(t) => {
                for n in t.nodes {
                    if !n.change.trim().is_empty() {
                        changes.insert(n.id, n.change);
                    }
                }
            }
            Read::Missing => {}
            Read::Bad(e) => warn_read(
                &mut warnings,
                &wd.tree(),
                "edge labels come from the node specs",
                &e,
            ),
        }

        // Node folders.
        let mut ids: Vec<String> = Vec::new();
        match fs::read_dir(wd.nodes_dir()) {
            Ok(entries) => {
                for entry in entries.flatten() {
                    let name = entry.file_name().to_string_lossy().into_owned();
                    if name.starts_with('.') {
                        continue;
                    }
                    let is_dir = entry
                        .file_type()
                        .map(|t| t.is_dir() || t.is_symlink())
                        .unwrap_or(false);
                    if is_dir {
                        ids.push(name);
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(RenderError::Read {
                    path: wd.nodes_dir(),
                    source: e,
                });
            }
        }
        ids.sort_by(|a, b| id_seq(a).cmp(&id_seq(b)).then_with(|| a.cmp(b)));

        let mut nodes: Vec<NodeView> = Vec::with_capacity(ids.len());
        let settled_before = SystemTime::now()
            .checked_sub(NodeCache::SETTLED)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let mut kept = HashMap::with_capacity(cache.nodes.len());
        for id in ids {
            let folder_mtime = fs::symlink_metadata(wd.node_dir(&id))
                .and_then(|m| m.modified())
                .ok();
            let reusable = cache
                .nodes
                .remove(&id)
                .filter(|c| Some(c.folder_mtime) == folder_mtime);
            let (mut node, node_warnings) = match reusable {
                Some(c) => (c.node, c.warnings),
                None => {
                    let mut w = Vec::new();
                    (load_node(&wd, root, id.clone(), &mut w), w)
                }
            };
            node.tree_change = changes.remove(&id);
            warnings.extend(node_warnings.iter().cloned());
            if let Some(folder_mtime) = folder_mtime
                && folder_mtime < settled_before
                && node.status.is_terminal()
            {
                kept.insert(
                    id,
                    CachedNode {
                        folder_mtime,
                        node: node.clone(),
                        warnings: node_warnings,
                    },
                );
            }
            nodes.push(node);
        }
        cache.nodes = kept;

        let by_id: HashMap<String, usize> = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.id.clone(), i))
            .collect();
        let mut roots = Vec::new();
        for i in 0..nodes.len() {
            let parent = nodes[i].parent_id().map(str::to_owned);
            match parent {
                Some(p) => match by_id.get(&p) {
                    Some(&pi) if pi != i => {
                        nodes[i].parent = Some(pi);
                        nodes[pi].children.push(i);
                    }
                    _ => {
                        warnings.push(format!(
                            "node {}: parent {p} is not in engine/nodes; drawn as a root",
                            nodes[i].id
                        ));
                        roots.push(i);
                    }
                },
                None => roots.push(i),
            }
        }
        // Break parent cycles (only possible in hand-edited files) so the tree stays a tree.
        break_cycles(&mut nodes, &mut roots, &mut warnings);

        let mut other: BTreeSet<String> = BTreeSet::new();
        for n in &nodes {
            if let Some(r) = &n.result {
                for k in r.metrics.keys() {
                    if *k != metric {
                        other.insert(k.clone());
                    }
                }
            }
        }

        let (completion_order, completion_source) =
            completion_order(&wd, &nodes, &by_id, &mut warnings);

        let mut view = RunView {
            root: root.to_path_buf(),
            metric,
            direction,
            nodes,
            by_id,
            roots,
            state,
            config,
            engine,
            lock_holder,
            completion_order,
            completion_source,
            best: None,
            baseline: None,
            other_metrics: other.into_iter().collect(),
            warnings,
            loaded_at: SystemTime::now(),
        };
        view.best = view.find_best();
        view.baseline = view.find_baseline();
        Ok(view)
    }

    /// The primary metric value of node `i` (`result.primary`, else the metric by name).
    pub fn primary(&self, i: usize) -> Option<f64> {
        let r = self.nodes[i].result.as_ref()?;
        r.primary
            .or_else(|| r.metrics.get(&self.metric).copied())
            .filter(|v| v.is_finite())
    }

    /// The node with id `id`.
    pub fn node(&self, id: &str) -> Option<&NodeView> {
        self.by_id.get(id).map(|&i| &self.nodes[i])
    }

    /// The search space of `config.json` (parameters in declaration order), when the
    /// configuration is readable.
    pub fn search_space(&self) -> Option<&autoresearch_adapters::config::SearchSpace> {
        self.config.as_ref().map(|c| &c.search_space)
    }

    /// The run's limits (`config.json`'s `limits`), when the configuration is readable.
    pub fn limits(&self) -> Option<&autoresearch_adapters::config::Limits> {
        self.config.as_ref().map(|c| &c.limits)
    }

    /// Counts of nodes per status group.
    pub fn counts(&self) -> StatusCounts {
        let mut c = StatusCounts::default();
        for n in &self.nodes {
            match n.status {
                NodeStatus::Queued => c.queued += 1,
                NodeStatus::Completed => {
                    c.completed += 1;
                    if n.improved() {
                        c.improved += 1;
                    }
                }
                NodeStatus::Failed => c.failed += 1,
                _ => c.running += 1,
            }
        }
        c.total = self.nodes.len();
        c
    }

    /// The engine status word for display: `new`, `crashed (pid N gone)`, or the status in
    /// `engine_state.json`.
    pub fn engine_status(&self) -> String {
        let Some(engine) = &self.engine else {
            return if self.nodes.is_empty() {
                "new".to_owned()
            } else {
                "unknown (no engine/engine_state.json)".to_owned()
            };
        };
        if engine.status == EngineStatus::Running && matches!(self.lock_holder, Ok(None)) {
            return format!("crashed (pid {} gone)", engine.pid);
        }
        engine.status.as_str().to_owned()
    }

    /// The path from a root to node `i` (following `parent_id`), root first.
    pub fn path_to(&self, i: usize) -> Vec<usize> {
        let mut path = vec![i];
        let mut cur = i;
        while let Some(p) = self.nodes[cur].parent {
            if path.len() > self.nodes.len() {
                break;
            }
            path.push(p);
            cur = p;
        }
        path.reverse();
        path
    }

    /// What node `i` changes relative to its parent, for edge labels: `TreeNode.change` from
    /// `engine/tree.json`, else the spec's `changes`, else the parameters that differ from the
    /// parent's (`chunk=1024, workers=8`; `-name` for a removed one). Empty for roots without
    /// a change.
    pub fn change_label(&self, i: usize) -> String {
        let n = &self.nodes[i];
        if let Some(c) = &n.tree_change {
            return c.clone();
        }
        if let Some(c) = n.spec.as_ref().and_then(|s| s.changes.as_deref())
            && !c.trim().is_empty()
        {
            return c.to_owned();
        }
        let Some(params) = n.params() else {
            return String::new();
        };
        let empty = Map::new();
        let parent = match n.parent {
            Some(p) => self.nodes[p].params().unwrap_or(&empty),
            None => return String::new(),
        };
        let mut parts: Vec<String> = Vec::new();
        for (k, v) in params {
            if parent.get(k) != Some(v) {
                parts.push(format!("{k}={}", plain(v)));
            }
        }
        for k in parent.keys() {
            if !params.contains_key(k) {
                parts.push(format!("-{k}"));
            }
        }
        parts.join(", ")
    }

    fn find_best(&self) -> Option<usize> {
        if let Some(id) = self.state.as_ref().and_then(|s| s.best_node.as_deref())
            && let Some(&i) = self.by_id.get(id)
        {
            return Some(i);
        }
        let pick = |only_improved: bool| {
            let mut best: Option<(usize, f64)> = None;
            for i in 0..self.nodes.len() {
                if only_improved && !self.nodes[i].improved() {
                    continue;
                }
                if self.nodes[i].status != NodeStatus::Completed {
                    continue;
                }
                if let Some(v) = self.primary(i)
                    && best.is_none_or(|(_, b)| self.direction.is_better(v, b))
                {
                    best = Some((i, v));
                }
            }
            best.map(|(i, _)| i)
        };
        pick(true).or_else(|| pick(false))
    }

    fn find_baseline(&self) -> Option<usize> {
        if let Some(id) = self.state.as_ref().and_then(|s| s.baseline_node.as_deref())
            && let Some(&i) = self.by_id.get(id)
        {
            return Some(i);
        }
        self.roots
            .iter()
            .copied()
            .find(|&i| self.nodes[i].name() == "baseline")
            .or_else(|| self.roots.first().copied())
    }

    /// The best node's primary value (the node's result, else `state.best_value`).
    pub fn best_value(&self) -> Option<f64> {
        self.best
            .and_then(|i| self.primary(i))
            .or_else(|| self.state.as_ref().and_then(|s| s.best_value))
    }

    /// The run's noise floor (`state.json` `noise_floor`), once known.
    pub fn noise_floor(&self) -> Option<NoiseFloor> {
        self.state.as_ref()?.noise_floor
    }

    /// How sure the best's improvement over the baseline is: the gain, in noise floors, and
    /// the 95 % interval over their raw runs when both ran at least twice.
    pub fn confidence(&self) -> Option<Confidence> {
        let (bi, li) = (self.best?, self.baseline?);
        let samples = |i: usize| {
            self.nodes[i]
                .result
                .as_ref()
                .map(|r| r.samples.clone())
                .unwrap_or_default()
        };
        let direction = match self.direction {
            Direction::Maximize => autoresearch_adapters::config::Direction::Maximize,
            Direction::Minimize => autoresearch_adapters::config::Direction::Minimize,
        };
        noise::confidence(
            direction,
            (self.primary(bi)?, &samples(bi)),
            (self.primary(li)?, &samples(li)),
            self.noise_floor().map(|f| f.relative),
        )
    }

    /// The baseline's primary value (the node's result, else `state.baseline_value`).
    pub fn baseline_value(&self) -> Option<f64> {
        self.baseline
            .and_then(|i| self.primary(i))
            .or_else(|| self.state.as_ref().and_then(|s| s.baseline_value))
    }
}

/// Node counts by status group.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatusCounts {
    /// All nodes.
    pub total: usize,
    /// Waiting in the queue.
    pub queued: usize,
    /// In any active phase (preparing … planning).
    pub running: usize,
    /// Completed.
    pub completed: usize,
    /// Completed with an improvement.
    pub improved: usize,
    /// Failed.
    pub failed: usize,
}

fn break_cycles(nodes: &mut [NodeView], roots: &mut Vec<usize>, warnings: &mut Vec<String>) {
    // Every node must be reachable from a root; a node on a cycle is not. Cut the cycle at its
    // first (lowest index) node and make it a root.
    let n = nodes.len();
    let mut reached = vec![false; n];
    let mut stack: Vec<usize> = roots.clone();
    while let Some(i) = stack.pop() {
        if reached[i] {
            continue;
        }
        reached[i] = true;
        stack.extend(nodes[i].children.iter().copied());
    }
    for i in 0..n {
        if reached[i] {
            continue;
        }
        if let Some(p) = nodes[i].parent.take() {
            nodes[p].children.retain(|&c| c != i);
        }
        warnings.push(format!(
            "node {}: its parent chain is a cycle; drawn as a root",
            nodes[i].id
        ));
        roots.push(i);
        let mut stack = vec![i];
        while let Some(j) = stack.pop() {
            if reached[j] {
                continue;
            }
            reached[j] = true;
            stack.extend(nodes[j].children.iter().copied());
        }
    }
    roots.sort_unstable();
}
