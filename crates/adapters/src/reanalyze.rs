//! Re-reading a stopped run's results (for `supervisor reanalyze`), optionally with another
//! primary metric name (`objective.metric`, the only field it changes).
//!
//! Every finished node's metrics are read again from its run files (`runs/<id>/stdout.log`,
//! `stderr.log`, `metrics.json`; a run dir that is gone keeps the metrics of its `result.json`),
//! improvements are judged again in completion order (`state.json`'s `recorded`), and
//! `state.json`'s best, baseline value, counts and plateau are rebuilt. A node that failed
//! only because the primary metric was missing (`missing_metric`) and now has it becomes
//! completed; a completed node without it becomes failed (`missing_metric`); other failures
//! stay as they are.
//!
//! Crash safety: the whole outcome is computed first, without writing anything, then written to
//! the journal `reanalyze.journal.json` (atomically: the commit point), then applied file by
//! file (each atomic, each idempotent), and the journal removed. A crash before the journal
//! leaves the old state; after it, the new state is decided and [`reanalyze`] (run again)
//! finishes applying it before anything else. An engine must not start while the journal
//! exists ([`pending`]).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::{Config, ConfigError, PlannerKind};
use crate::model::{Failure, FailureKind, NodeResult, NodeStatus};
use crate::workdir::Workdir;
use crate::workflow::ledger::StateFile;
use crate::workflow::nodes::{NodeError, NodeInfo, NodeStore, read_json_capped};

/// The journal of a reanalysis being applied (in the workdir).
pub const JOURNAL: &str = "reanalyze.journal.json";
/// Largest journal or `state.json` read.
const MAX_JOURNAL_BYTES: u64 = 1 << 30;

/// Errors of a reanalysis. Nothing is changed when one is returned before the journal exists.
#[derive(Debug, thiserror::Error)]
pub enum ReanalyzeError {
    /// A running engine holds the workdir.
    #[error(transparent)]
    Engine(#[from] autoresearch_engine::EngineError),
    /// The new metric name or the configuration is not valid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Node or state files could not be read or written.
    #[error(transparent)]
    Node(#[from] NodeError),
}

/// How one node's outcome changed.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeChange {
    /// Node id.
    pub id: String,
    /// Status before and after.
    pub status: (NodeStatus, NodeStatus),
    /// Primary metric before and after.
    pub primary: (Option<f64>, Option<f64>),
    /// Improvement flag before and after.
    pub improved: (bool, bool),
}

/// What a reanalysis did.
#[derive(Debug, Clone, Default)]
pub struct ReanalyzeReport {
    /// `objective.metric` before and after.
    pub metric: (String, String),
    /// Nodes whose outcome changed, in completion order.
    pub changed: Vec<NodeChange>,
    /// Finished nodes re-read.
    pub nodes: usize,
    /// Best node and value after.
    pub best: Option<(String, f64)>,
    /// Completed and failed counts after.
    pub counts: (u64, u64),
    /// Plateau counter after.
    pub plateau: u32,
    /// A reanalysis that was cut short was finished first (its metric).
    pub finished_pending: Option<String>,
}

/// One node's files after the reanalysis.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct NodeWrite {
    id: String,
    status: NodeStatus,
    result: NodeResult,
    /// `None`: `failure.json` is removed.
    failure: Option<Failure>,
    /// `runs/<id>/analysis.md`, for a completed node.
    analysis: Option<String>,
}

/// The decided outcome, written before any other file changes.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Journal {
    metric_before: String,
    metric: String,
    /// The new `config.json`, as written.
    config_text: String,
    state: StateFile,
    nodes: Vec<NodeWrite>,
}

/// Whether a reanalysis was cut short (its journal exists): it must be finished (by
/// [`reanalyze`]) before an engine starts on the workdir.
pub fn pending(root: &Path) -> bool {
    std::fs::symlink_metadata(root.join(JOURNAL)).is_ok()
}

/// Re-reads every finished node's results with `metric` (default: the configured one) and
/// rebuilds `state.json`, `config.json`, the node files and `engine/tree.json`. Takes the
/// workdir's lock: refused ([`ReanalyzeError::Engine`]) while an engine runs.
pub fn reanalyze(root: &Path, metric: Option<&str>) -> Result<ReanalyzeReport, ReanalyzeError> {
    let wd = Workdir::new(root);
    let _lock = autoresearch_engine::lock::acquire(root)?;
    let mut finished_pending = None;
    if let Some(journal) = read_json_capped::<Journal>(&root.join(JOURNAL), MAX_JOURNAL_BYTES)? {
        finished_pending = Some(journal.metric.clone());
        apply(&wd, &journal)?;
    }
    let config = Config::load(&wd.config())?;
    let metric = metric
        .unwrap_or(&config.objective.metric)
        .trim()
        .to_string();
    let mut new_config = config.clone();
    new_config.objective.metric = metric.clone();
    // The same rules as a new configuration: a valid name, and the rest unchanged.
    new_config.validate()?;
    let nodes = NodeStore::load(&wd)?;
    let state: StateFile = read_json_capped(&wd.state(), MAX_JOURNAL_BYTES)?.unwrap_or_default();
    let (journal, mut report) = decide(&wd, &config, &new_config, &nodes, state)?;
    report.finished_pending = finished_pending;
    autoresearch_engine::atomic::write_json_atomic(&root.join(JOURNAL), &journal)
        .map_err(io(&root.join(JOURNAL)))?;
    apply(&wd, &journal)?;
    Ok(report)
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> NodeError + '_ {
    move |source| NodeError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Computes the outcome (reads only).
fn decide(
    wd: &Workdir,
    old_config: &Config,
    config: &Config,
    nodes: &NodeStore,
    old: StateFile,
) -> Result<(Journal, ReanalyzeReport), ReanalyzeError> {
    let all: Vec<NodeInfo> = nodes.all();
    let by_id: HashMap<&str, &NodeInfo> =
        all.iter().map(|n| (n.spec.node_id.as_str(), n)).collect();
    let finished = |n: &NodeInfo| {
        matches!(
            n.status,
            NodeStatus::Completed | NodeStatus::Failed | NodeStatus::Planning
        )
    };
    // Completion order: the recorded nodes, then finished ones a crash left unrecorded.
    let mut order: Vec<String> = old
        .recorded
        .iter()
        .filter(|id| by_id.get(id.as_str()).is_some_and(|n| finished(n)))
        .cloned()
        .collect();
    let known: HashSet<String> = order.iter().cloned().collect();
    let unrecorded: Vec<String> = all
        .iter()
        .filter(|n| finished(n) && !known.contains(&n.spec.node_id))
        .map(|n| n.spec.node_id.clone())
        .collect();
    order.extend(unrecorded.iter().cloned());

    let mut state = old.clone();
    let s = &mut state.state;
    s.schema_version = 1;
    s.metric = config.objective.metric.clone();
    s.direction = config.objective.direction.as_str().to_string();
    s.best_node = None;
    s.best_value = None;
    s.best_n = None;
    s.noise_floor = None;
    s.baseline_value = None;
    s.plateau = 0;
    s.experiments_completed = 0;
    s.experiments_failed = 0;
    s.stop_reason = None;
    s.fail_fast = None;
    state.recorded = order.clone();
    if config.planner.kind != PlannerKind::None {
        for id in &unrecorded {
            if !state.awaiting_planning.contains(id) {
                state.awaiting_planning.push(id.clone());
            }
        }
    }
    let awaiting: HashSet<String> = state.awaiting_planning.iter().cloned().collect();

    let metric = &config.objective.metric;
    let mut writes = Vec::new();
    let mut changed = Vec::new();
    for id in &order {
        let node = by_id[id.as_str()];
        let old_result: NodeResult = nodes.read_file(id, "result.json")?.unwrap_or_default();
        let old_failure: Option<Failure> = nodes.read_file(id, "failure.json")?;
        let reconsider = match node.status {
            NodeStatus::Failed => old_failure
                .as_ref()
                .is_none_or(|f| f.kind == FailureKind::MissingMetric),
            _ => true,
        };
        let s = &mut state.state;
        if !reconsider {
            s.experiments_failed += 1;
            s.plateau += 1;
            continue;
        }
        // Every run of the node (repeats and confirmation runs: `runs/<id>/repeat-<k>/`),
        // aggregated like the workflow does (see docs/noise.md).
        let runs = old_result.samples.len().max(1) as u32;
        let mut per_run = Vec::new();
        for k in 1..=runs {
            let run_dir = wd.repeat_run_dir(id, k);
            let read = if wd.check(&run_dir).is_ok() && run_dir.is_dir() {
                crate::metrics::collect(&run_dir, metric).ok()
            } else {
                None
            };
            per_run.push(read);
        }
        let mut samples = old_result.samples.clone();
        // Pooled after this node is judged, as in the workflow.
        let mut floor_after = s.noise_floor;
        let metrics = if per_run.iter().any(Option::is_none) {
            // A run dir that is gone keeps the metrics of `result.json`.
            crate::metrics::Metrics {
                values: old_result.metrics.clone(),
                ..Default::default()
            }
        } else if runs == 1 {
            per_run.into_iter().flatten().next().unwrap_or_default()
        } else {
            let (m, s) = aggregate_runs(
                config.objective.aggregate,
                metric,
                per_run.into_iter().flatten(),
            );
            samples = s;
            m
        };
        let mut result = old_result.clone();
        result.metrics = metrics.values.clone();
        result.metrics_dropped = metrics.dropped;
        if runs > 1 {
            result.spread = crate::noise::spread(&samples);
            // The repeats only feed the noise floor, as in the workflow.
            let repeats = match &result.confirmation {
                Some(c) => &samples[..(c.runs_before as usize).min(samples.len())],
                None => &samples[..],
            };
            floor_after = crate::noise::pool(s.noise_floor, repeats);
            result.samples = samples;
        }
        let write = match metrics.values.get(metric).copied() {
            Some(primary) => {
                let best_before = s.best_value;
                let noise = s.noise_floor.map(|f| f.relative);
                let improved = config.objective.improves(primary, best_before, noise);
                s.experiments_completed += 1;
                let legacy = config.objective.confirm == crate::config::Confirm::Off;
                let better =
                    best_before.is_none_or(|b| config.objective.direction.is_better(primary, b));
                if improved || (legacy && better) {
                    s.best_value = Some(primary);
                    s.best_node = Some(id.clone());
                    s.best_n = Some(result.n() as u32);
                }
                if s.baseline_node.as_deref() == Some(id.as_str()) {
                    s.baseline_value = Some(primary);
                }
                s.plateau = if improved { 0 } else { s.plateau + 1 };
                let analysis = crate::workflow::analysis_text(
                    &node.spec,
                    metric,
                    primary,
                    &result.samples,
                    improved,
                    best_before,
                    result.confirmation.as_ref(),
                );
                result.primary = Some(primary);
                result.improved = improved;
                result.unconfirmed = result.confirmation.is_some() && !improved;
                result.analysis = analysis.clone();
                let status = match node.status {
                    NodeStatus::Failed if awaiting.contains(id) => NodeStatus::Planning,
                    NodeStatus::Failed => NodeStatus::Completed,
                    other => other,
                };
                NodeWrite {
                    id: id.clone(),
                    status,
                    result,
                    failure: None,
                    analysis: Some(format!("# {id}\n\n{analysis}\n")),
                }
            }
            None => {
                s.experiments_failed += 1;
                s.plateau += 1;
                result.primary = None;
                result.improved = false;
                result.analysis = String::new();
                let message = crate::workflow::missing_metric(metric, &metrics);
                let failure = Failure {
                    kind: FailureKind::MissingMetric,
                    phase: NodeStatus::Analyzing,
                    message,
                    retryable: false,
                    details: serde_json::json!({
                        "metrics": metrics.values,
                        "rejected": metrics.rejected,
                    }),
                    created_at: old_failure
                        .as_ref()
                        .map(|f| f.created_at.clone())
                        .unwrap_or_else(crate::workflow::now_millis),
                };
                NodeWrite {
                    id: id.clone(),
                    status: NodeStatus::Failed,
                    result,
                    failure: Some(failure),
                    analysis: None,
                }
            }
        };
        state.state.noise_floor = floor_after;
        let same = write.status == node.status
            && write.result == old_result
            && write.failure.as_ref().map(|f| (&f.kind, &f.message))
                == old_failure.as_ref().map(|f| (&f.kind, &f.message));
        if !same {
            changed.push(NodeChange {
                id: id.clone(),
                status: (node.status, write.status),
                primary: (old_result.primary, write.result.primary),
                improved: (old_result.improved, write.result.improved),
            });
            writes.push(write);
        }
    }
    let s = &state.state;
    let report = ReanalyzeReport {
        metric: (
            old_config.objective.metric.clone(),
            config.objective.metric.clone(),
        ),
        changed,
        nodes: order.len(),
        best: s.best_node.clone().zip(s.best_value),
        counts: (s.experiments_completed, s.experiments_failed),
        plateau: s.plateau,
        finished_pending: None,
    };
    let mut config_text = config.to_json_pretty();
    config_text.push('\n');
    Ok((
        Journal {
            metric_before: old_config.objective.metric.clone(),
            metric: config.objective.metric.clone(),
            config_text,
            state,
            nodes: writes,
        },
        report,
    ))
}

/// Writes what the journal decided (each file atomically; running it twice is harmless), then
/// removes the journal and rewrites `engine/tree.json`.
fn apply(wd: &Workdir, journal: &Journal) -> Result<(), NodeError> {
    let write = |path: &Path, bytes: &[u8]| -> Result<(), NodeError> {
        wd.check(path).map_err(io(path))?;
        autoresearch_engine::atomic::write_atomic(path, bytes).map_err(io(path))
    };
    for n in &journal.nodes {
        write(&wd.node_result(&n.id), &pretty(&n.result)?)?;
        let failure = wd.node_failure(&n.id);
        match &n.failure {
            Some(f) => write(&failure, &pretty(f)?)?,
            None => remove(&failure)?,
        }
        let run_dir = wd.run_dir(&n.id);
        if let Some(text) = &n.analysis
            && run_dir.is_dir()
        {
            write(&run_dir.join("analysis.md"), text.as_bytes())?;
        }
        write(
            &wd.node_status(&n.id),
            format!("{}\n", n.status.as_str()).as_bytes(),
        )?;
    }
    let mut state = journal.state.clone();
    state.state.updated_at = crate::workflow::now_millis();
    write(&wd.state(), &pretty(&state)?)?;
    write(&wd.config(), journal.config_text.as_bytes())?;
    let path: PathBuf = wd.root.join(JOURNAL);
    remove(&path)?;
    NodeStore::load(wd)?.write_tree()
}

/// Removes a file (gone already is fine) and makes the removal durable.
fn remove(path: &Path) -> Result<(), NodeError> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io(path)(e)),
    }
    if let Some(dir) = path.parent() {
        autoresearch_engine::atomic::sync_dir(dir).map_err(io(dir))?;
    }
    Ok(())
}

/// A node or state file's bytes: pretty JSON and a final newline.
fn pretty<T: Serialize>(value: &T) -> Result<Vec<u8>, NodeError> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|e| NodeError::Invalid {
        path: PathBuf::from(JOURNAL),
        message: e.to_string(),
    })?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// The metrics of a repeated node's runs aggregated per name (`objective.aggregate`), and the
/// primary metric of each run that reported it, in run order.
fn aggregate_runs(
    kind: crate::config::Aggregate,
    primary: &str,
    runs: impl Iterator<Item = crate::metrics::Metrics>,
) -> (crate::metrics::Metrics, Vec<f64>) {
    let mut names: std::collections::BTreeMap<String, Vec<f64>> = Default::default();
    let mut out = crate::metrics::Metrics::default();
    for m in runs {
        out.dropped = out.dropped.max(m.dropped);
        out.rejected.extend(m.rejected);
        for (k, v) in m.values {
            names.entry(k).or_default().push(v);
        }
    }
    out.values = names
        .iter()
        .filter_map(|(k, vs)| Some((k.clone(), crate::noise::aggregate(kind, vs)?)))
        .collect();
    let samples = names.remove(primary).unwrap_or_default();
    (out, samples)
}
