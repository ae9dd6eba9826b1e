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
use std::time::{Duration, SystemTime};

use autoresearch_adapters::model::{
    Failure, JobRecord, NodeResult, NodeSpec, NodeStatus, NoiseFloor, RunState, Spread, TreeFile,
};
use autoresearch_adapters::noise::{self, Confidence};
use autoresearch_adapters::workdir::Workdir;
use autoresearch_adapters::workflow::nodes::plain;
use autoresearch_engine::EngineStatus;
use autoresearch_engine::state::EngineState;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::RenderError;

/// Whether a larger or a smaller primary metric is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Larger is better.
    Maximize,
    /// Smaller is better.
    Minimize,
}

impl Direction {
    /// Parses `maximize`/`max`/`minimize`/`min` (case-insensitive).
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "maximize" | "max" | "maximise" => Some(Direction::Maximize),
            "minimize" | "min" | "minimise" => Some(Direction::Minimize),
            _ => None,
        }
    }

    /// The word used in `config.json`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Maximize => "maximize",
            Direction::Minimize => "minimize",
        }
    }

    /// Whether `a` is strictly better than `b`.
    pub fn better(self, a: f64, b: f64) -> bool {
        match self {
            Direction::Maximize => a > b,
            Direction::Minimize => a < b,
        }
    }
}

/// How the completion order of [`RunView::completion_order`] was established.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompletionSource {
    /// From the order of the first completion event (`node_completed`/`node_failed`) per node in
    /// `engine/events.jsonl`; finished nodes without an event yet (the engine buffers events)
    /// follow, by file time.
    Events,
    /// From the modification times of `result.json` / `failure.json` (ties by creation order),
    /// when the event log names no finished node.
    Mtime,
}

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
    /// Index of the parent in [`RunView::nodes`] (`None` for roots and unknown parents).
    pub parent: Option<usize>,
    /// Indices of the children in [`RunView::nodes`], in creation order.
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
    pub config: Option<Value>,
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

/// The numeric prefix of a node id (`"012_x"` → 12), `u64::MAX` without one.
pub fn id_seq(id: &str) -> u64 {
    let digits: &str = id.split('_').next().unwrap_or("");
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return u64::MAX;
    }
    digits.parse().unwrap_or(u64::MAX)
}

enum Read<T> {
    Missing,
    Bad(String),
    Ok(T),
}

fn read_bytes(path: &Path) -> Read<Vec<u8>> {
    match fs::read(path) {
        Ok(b) => Read::Ok(b),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Read::Missing,
        Err(e) => Read::Bad(e.to_string()),
    }
}

fn read_json<T: DeserializeOwned>(path: &Path) -> Read<T> {
    match read_bytes(path) {
        Read::Ok(b) => match serde_json::from_slice(&b) {
            Ok(v) => Read::Ok(v),
            Err(e) => Read::Bad(format!("unreadable JSON ({e})")),
        },
        Read::Missing => Read::Missing,
        Read::Bad(e) => Read::Bad(e),
    }
}

fn rel(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// Finished nodes of earlier loads of one workdir, reused by [`RunView::load_cached`] while
/// their folder is unchanged.
///
/// Every file of a node folder is replaced by rename, which changes the folder's modification
/// time; a node is reused only when that time is the same as when it was read and was already
/// [`NodeCache::SETTLED`] old then (file times are coarser than the writes they stamp).
/// Running and queued nodes are always read again.
#[derive(Debug, Default)]
pub struct NodeCache {
    nodes: HashMap<String, CachedNode>,
}

#[derive(Debug)]
struct CachedNode {
    folder_mtime: SystemTime,
    node: NodeView,
    warnings: Vec<String>,
}

impl NodeCache {
    /// How old a node folder's modification time must be before the node is cached.
    pub const SETTLED: Duration = Duration::from_secs(1);

    /// How many nodes are cached.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether no node is cached.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
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

        let config: Option<Value> = match read_json(&wd.config()) {
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

        let cfg_str = |ptr: &str| {
            config
                .as_ref()
                .and_then(|c| c.pointer(ptr))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let metric = cfg_str("/objective/metric")
            .or_else(|| {
                state
                    .as_ref()
                    .map(|s| s.metric.clone())
                    .filter(|m| !m.is_empty())
            })
            .unwrap_or_else(|| "primary".to_owned());
        let direction_word = cfg_str("/objective/direction").or_else(|| {
            state
                .as_ref()
                .map(|s| s.direction.clone())
                .filter(|d| !d.is_empty())
        });
        let direction = match direction_word.as_deref().map(Direction::parse) {
            Some(Some(d)) => d,
            Some(None) => {
                warnings.push(format!(
                    "objective direction {:?} not understood; assuming maximize",
                    direction_word.unwrap_or_default()
                ));
                Direction::Maximize
            }
            None => Direction::Maximize,
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

    /// A string from `config.json` at JSON pointer `ptr`.
    pub fn config_str(&self, ptr: &str) -> Option<&str> {
        self.config.as_ref()?.pointer(ptr)?.as_str()
    }

    /// The search space of `config.json` (parameters in declaration order), when the
    /// configuration is readable.
    pub fn search_space(&self) -> Option<autoresearch_adapters::config::SearchSpace> {
        let config = self.config.clone()?;
        serde_json::from_value::<autoresearch_adapters::config::Config>(config)
            .ok()
            .map(|c| c.search_space)
    }

    /// A number from `config.json` at JSON pointer `ptr`.
    pub fn config_f64(&self, ptr: &str) -> Option<f64> {
        self.config.as_ref()?.pointer(ptr)?.as_f64()
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
                    && best.is_none_or(|(_, b)| self.direction.better(v, b))
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

/// Reads one node folder (its tree label is set by the caller).
fn load_node(wd: &Workdir, root: &Path, id: String, warnings: &mut Vec<String>) -> NodeView {
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

fn mtime(path: &Path) -> Option<SystemTime> {
    fs::metadata(path).and_then(|m| m.modified()).ok()
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

fn completion_order(
    wd: &Workdir,
    nodes: &[NodeView],
    by_id: &HashMap<String, usize>,
    warnings: &mut Vec<String>,
) -> (Vec<usize>, CompletionSource) {
    let finished: Vec<usize> = (0..nodes.len())
        .filter(|&i| nodes[i].status.is_terminal())
        .collect();
    let by_mtime = |a: &usize, b: &usize| {
        nodes[*a]
            .finished_at
            .cmp(&nodes[*b].finished_at)
            .then_with(|| a.cmp(b))
    };
    let pos = events_positions(wd, by_id, warnings);
    if finished.iter().any(|i| pos.contains_key(i)) {
        // Nodes named by a completion event in log order, then the others (their events are
        // still buffered by the engine, so they are the most recent) by file time.
        let (mut logged, mut rest): (Vec<usize>, Vec<usize>) =
            finished.into_iter().partition(|i| pos.contains_key(i));
        logged.sort_by_key(|i| (pos[i], *i));
        rest.sort_by(by_mtime);
        logged.extend(rest);
        return (logged, CompletionSource::Events);
    }
    let mut order = finished;
    order.sort_by(by_mtime);
    (order, CompletionSource::Mtime)
}

/// Line number of the first completion event per node in `engine/events.jsonl`: the
/// workflow's `node_completed`/`node_failed`, or the engine's `spec_completed`/`spec_failed`
/// for a spec that ended without one. Other and unparseable lines (a torn last line) are
/// skipped.
fn events_positions(
    wd: &Workdir,
    by_id: &HashMap<String, usize>,
    warnings: &mut Vec<String>,
) -> HashMap<usize, usize> {
    use autoresearch_adapters::workflow::events::{NodeEvent, RunEvent, RunEventLine};
    use autoresearch_engine::Event;
    let mut pos: HashMap<usize, usize> = HashMap::new();
    let path = wd.engine_dir().join("events.jsonl");
    let text = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return pos,
        Err(e) => {
            warnings.push(format!(
                "engine/events.jsonl: {e}; completion order from file times"
            ));
            return pos;
        }
    };
    for (line_no, line) in text.split(|&b| b == b'\n').enumerate() {
        // Cheap prefilter: only lines about completion are parsed.
        if !contains(line, b"completed") && !contains(line, b"failed") {
            continue;
        }
        let Ok(ev) = serde_json::from_slice::<RunEventLine>(line) else {
            continue;
        };
        let id = match &ev.event {
            RunEvent::Node(
                NodeEvent::NodeCompleted { id, .. } | NodeEvent::NodeFailed { id, .. },
            )
            | RunEvent::Engine(Event::SpecCompleted { id } | Event::SpecFailed { id, .. }) => id,
            _ => continue,
        };
        if let Some(&i) = by_id.get(id) {
            pos.entry(i).or_insert(line_no);
        }
    }
    pos
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use autoresearch_adapters::model::NodeStatus;

    fn node(root: &Path, id: &str, status: &str) {
        let dir = root.join("engine/nodes").join(id);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("status.txt"), status).unwrap();
    }

    fn age(root: &Path, id: &str) {
        let old = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let dir = fs::File::open(root.join("engine/nodes").join(id)).unwrap();
        dir.set_modified(old).unwrap();
    }

    #[test]
    fn a_settled_finished_node_is_reused_until_its_folder_changes() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        node(root, "000_baseline", "completed");
        node(root, "001_a", "running");
        age(root, "000_baseline");
        age(root, "001_a");
        let mut cache = NodeCache::default();
        let first = RunView::load_cached(root, &mut cache).unwrap();
        assert_eq!(first.nodes.len(), 2);
        assert_eq!(cache.len(), 1, "only the finished node is cached");

        // A file changed in place (not by rename) is not seen while the folder is unchanged:
        // proof that the cached node was used.
        let status = root.join("engine/nodes/000_baseline/status.txt");
        fs::write(&status, "failed").unwrap();
        age(root, "000_baseline");
        let second = RunView::load_cached(root, &mut cache).unwrap();
        assert_eq!(second.nodes[0].status, NodeStatus::Completed);

        // A rename into the folder (how every node file is written) is seen.
        let tmp_file = root.join("engine/nodes/000_baseline/.status.tmp");
        fs::write(&tmp_file, "failed").unwrap();
        fs::rename(&tmp_file, &status).unwrap();
        let third = RunView::load_cached(root, &mut cache).unwrap();
        assert_eq!(third.nodes[0].status, NodeStatus::Failed);
        assert_eq!(
            cache.len(),
            0,
            "a folder changed within the last second is not cached"
        );
        assert_eq!(third.nodes[1].status, NodeStatus::Running);
    }
}
