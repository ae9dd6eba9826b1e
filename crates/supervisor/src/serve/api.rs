//! The JSON the pages read, built from a [`Snapshot`]: the run overview, the progress chart's
//! series, the hypothesis tree with its layout, and the list of workdirs. The chart and the tree
//! are the same for every client and are serialised once per snapshot.

use autoresearch_adapters::model::NodeStatus;
use axum::body::Bytes;
use plotters::style::RGBColor;
use serde::Serialize;

use super::feed::EventBrief;
use super::snapshot::Snapshot;
use crate::render::load::RunView;
use crate::render::tree::{status_fill, tidy_layout};
use crate::render::{
    BEST_GOLD, BEST_LINE, COMPLETED_GREY, FAILED_RED, IMPROVED_GREEN, RUNNING_BLUE, pct_change,
};

/// How many queued experiments the overview lists.
pub const OVERVIEW_QUEUE: usize = 50;
/// How many finished experiments the overview lists.
pub const OVERVIEW_RECENT: usize = 10;
/// How many events the overview lists.
pub const OVERVIEW_EVENTS: usize = 30;
/// How many warnings the overview lists.
pub const OVERVIEW_WARNINGS: usize = 20;

/// The colours of the views (`hypothesis_tree.png`, `progress.png`) as CSS colours, so the
/// pages draw what the images draw.
#[derive(Debug, Clone, Serialize)]
pub struct Palette {
    /// Improved nodes and improvement dots.
    pub improved: String,
    /// Completed without improvement.
    pub completed: String,
    /// Failed.
    pub failed: String,
    /// In an active phase.
    pub running: String,
    /// Outline of the best node.
    pub best: String,
    /// The running-best line.
    pub best_line: String,
}

fn css(c: RGBColor) -> String {
    format!("#{:02x}{:02x}{:02x}", c.0, c.1, c.2)
}

/// The palette of the views.
pub fn palette() -> Palette {
    Palette {
        improved: css(IMPROVED_GREEN),
        completed: css(COMPLETED_GREY),
        failed: css(FAILED_RED),
        running: css(RUNNING_BLUE),
        best: css(BEST_GOLD),
        best_line: css(BEST_LINE),
    }
}

/// A node named in a payload.
#[derive(Debug, Clone, Serialize)]
pub struct NodeRef {
    /// Node id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its primary metric value, when known.
    pub value: Option<f64>,
    /// The spread of its runs, when it ran more than once.
    pub spread: Option<autoresearch_adapters::model::Spread>,
}

fn node_ref(view: &RunView, i: usize) -> NodeRef {
    NodeRef {
        id: view.nodes[i].id.clone(),
        name: view.nodes[i].name().to_owned(),
        value: view.primary(i),
        spread: view.nodes[i].spread().copied(),
    }
}

/// Node counts.
#[derive(Debug, Clone, Serialize)]
pub struct Counts {
    /// All nodes.
    pub total: usize,
    /// Queued.
    pub queued: usize,
    /// In an active phase.
    pub running: usize,
    /// Completed.
    pub completed: usize,
    /// Completed with an improvement.
    pub improved: usize,
    /// Failed.
    pub failed: usize,
}

/// A running experiment.
#[derive(Debug, Clone, Serialize)]
pub struct Running {
    /// Node id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its phase (`preparing` … `planning`).
    pub phase: String,
    /// The executor's job id, when launched.
    pub job_id: Option<String>,
    /// When the job started (RFC 3339).
    pub started_at: Option<String>,
    /// The launch attempt (2 and more: relaunched after its job was lost).
    pub attempt: Option<u32>,
}

/// A queued experiment.
#[derive(Debug, Clone, Serialize)]
pub struct Queued {
    /// Node id.
    pub id: String,
    /// Its name (when its node folder exists).
    pub name: Option<String>,
    /// Queue priority (lower runs first).
    pub priority: f64,
}

/// A finished experiment.
#[derive(Debug, Clone, Serialize)]
pub struct Finished {
    /// Node id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// `completed` or `failed`.
    pub status: String,
    /// Primary metric value.
    pub value: Option<f64>,
    /// Whether it improved on the best.
    pub improved: bool,
    /// Failure kind and message, for failures.
    pub failure: Option<String>,
}

/// Limits and how much of them is used.
#[derive(Debug, Clone, Serialize)]
pub struct Budget {
    /// `limits.max_experiments`.
    pub max_experiments: Option<f64>,
    /// Experiments started.
    pub experiments_started: Option<u64>,
    /// `limits.patience`.
    pub patience: Option<f64>,
    /// Completed experiments in a row without improvement.
    pub plateau: Option<u32>,
    /// `limits.time_budget_s`.
    pub time_budget_s: Option<f64>,
    /// Wall time used over all resumes.
    pub time_used_s: Option<f64>,
    /// `limits.max_concurrency`.
    pub max_concurrency: Option<f64>,
    /// Planner rounds so far.
    pub planner_rounds: Option<u64>,
    /// Agent spending so far (USD): the engine's calls and `report`/`ask`, the figure
    /// `limits.agent_cost_usd` is checked against (`None` when no call reported dollars).
    pub agent_cost_usd: Option<f64>,
    /// Agent calls so far (all phases, `report` and `ask` included).
    pub agent_calls: Option<u64>,
    /// `limits.agent_cost_usd`.
    pub agent_cost_limit_usd: Option<f64>,
}

/// What the page may offer for steering.
#[derive(Debug, Clone, Serialize)]
pub struct ControlInfo {
    /// `--allow-control` was given.
    pub enabled: bool,
    /// This request presented the token (buttons work).
    pub authorized: bool,
}

/// `GET /api/w/{key}/overview`.
#[derive(Debug, Clone, Serialize)]
pub struct Overview {
    /// Snapshot version.
    pub version: u64,
    /// The workdir's key.
    pub key: String,
    /// The workdir's path.
    pub workdir: String,
    /// `new`, `running`, `interrupted`, `stopped`, `crashed` (`unknown` when unreadable).
    pub status: String,
    /// The status as a sentence part (`crashed (pid 123 gone)`).
    pub status_text: String,
    /// The engine's pid (running) or the last engine's.
    pub pid: Option<u32>,
    /// The engine's host.
    pub host: Option<String>,
    /// The engine's last heartbeat.
    pub heartbeat_at: Option<String>,
    /// Node counts.
    pub counts: Counts,
    /// Primary metric name.
    pub metric: String,
    /// `maximize` or `minimize`.
    pub direction: String,
    /// The best node.
    pub best: Option<NodeRef>,
    /// The baseline node.
    pub baseline: Option<NodeRef>,
    /// Relative change of the best against the baseline, in percent.
    pub change_pct: Option<f64>,
    /// The run's noise floor (`state.json`), once some experiment ran more than once.
    pub noise_floor: Option<autoresearch_adapters::model::NoiseFloor>,
    /// Limits and their use.
    pub budget: Budget,
    /// `planner.kind`.
    pub planner: Option<String>,
    /// `executor.kind`.
    pub executor: Option<String>,
    /// Why the run stopped.
    pub stop_reason: Option<String>,
    /// Experiments running now.
    pub running: Vec<Running>,
    /// The first queued experiments, in run order.
    pub queue: Vec<Queued>,
    /// How many are queued in all.
    pub queue_total: usize,
    /// Why the queue could not be read.
    pub queue_error: Option<String>,
    /// The last finished experiments, latest first.
    pub recent: Vec<Finished>,
    /// The last events, latest last.
    pub events: Vec<EventBrief>,
    /// Files that could not be read, and what was done instead (the first ones).
    pub warnings: Vec<String>,
    /// How many warnings there are.
    pub warnings_total: usize,
    /// Parameter names.
    pub params: Vec<String>,
    /// Names of the other metrics.
    pub other_metrics: Vec<String>,
    /// Steering.
    pub control: ControlInfo,
    /// Time the snapshot took to load, in milliseconds.
    pub load_ms: f64,
}

/// Failure text: `kind: message` (first line).
pub fn failure_text(view: &RunView, i: usize) -> Option<String> {
    let f = view.nodes[i].failure.as_ref()?;
    let first = f.message.lines().next().unwrap_or("");
    Some(format!("{}: {first}", f.kind.as_str()))
}

/// Builds the overview.
pub fn overview(key: &str, snap: &Snapshot, control: ControlInfo) -> Overview {
    let view = &snap.view;
    let c = view.counts();
    let st = snap.status.as_ref().ok();
    let run = view.state.as_ref();
    let agent_cost = st.and_then(|s| s.agent_cost.as_ref());
    let best = view.best.map(|i| node_ref(view, i));
    let baseline = view.baseline.map(|i| node_ref(view, i));
    let change_pct = match (view.best_value(), view.baseline_value()) {
        (Some(b), Some(base)) => pct_change(b, base),
        _ => None,
    };
    let running = view
        .nodes
        .iter()
        .filter(|n| n.is_active())
        .map(|n| Running {
            id: n.id.clone(),
            name: n.name().to_owned(),
            phase: n.status.to_string(),
            job_id: n.job.as_ref().map(|j| j.job_id.clone()),
            started_at: n.job.as_ref().map(|j| j.started_at.clone()),
            attempt: n.job.as_ref().map(|j| j.attempt),
        })
        .collect();
    let (queue, queue_total, queue_error) = match &snap.queue {
        Ok(q) => (
            q.iter()
                .take(OVERVIEW_QUEUE)
                .map(|e| Queued {
                    id: e.id.clone(),
                    name: view.node(&e.id).map(|n| n.name().to_owned()),
                    priority: e.priority,
                })
                .collect(),
            q.len(),
            None,
        ),
        Err(e) => (Vec::new(), 0, Some(e.clone())),
    };
    let recent = view
        .completion_order
        .iter()
        .rev()
        .take(OVERVIEW_RECENT)
        .map(|&i| Finished {
            id: view.nodes[i].id.clone(),
            name: view.nodes[i].name().to_owned(),
            status: view.nodes[i].status.to_string(),
            value: view.primary(i),
            improved: view.nodes[i].improved(),
            failure: failure_text(view, i),
        })
        .collect();
    let events = snap
        .events
        .iter()
        .skip(snap.events.len().saturating_sub(OVERVIEW_EVENTS))
        .cloned()
        .collect();
    Overview {
        version: snap.version,
        key: key.to_owned(),
        workdir: view.root.display().to_string(),
        status: snap.status_word().to_owned(),
        status_text: match &snap.status {
            Ok(s) => s.message.clone().unwrap_or_else(|| s.status.clone()),
            Err(e) => format!("unknown ({e})"),
        },
        pid: st.and_then(|s| s.pid),
        host: st.and_then(|s| s.host.clone()),
        heartbeat_at: st.and_then(|s| s.heartbeat_at.clone()),
        counts: Counts {
            total: c.total,
            queued: c.queued,
            running: c.running,
            completed: c.completed,
            improved: c.improved,
            failed: c.failed,
        },
        metric: view.metric.clone(),
        direction: view.direction.as_str().to_owned(),
        best,
        baseline,
        change_pct,
        noise_floor: view.noise_floor(),
        budget: Budget {
            max_experiments: view.limits().map(|l| l.max_experiments as f64),
            experiments_started: run.map(|r| r.experiments_started),
            patience: view.limits().map(|l| f64::from(l.patience)),
            plateau: run.map(|r| r.plateau),
            time_budget_s: view.limits().and_then(|l| l.time_budget_s),
            time_used_s: run.map(|r| r.time_used_s),
            max_concurrency: view.limits().map(|l| l.max_concurrency as f64),
            planner_rounds: run.map(|r| r.planner_rounds),
            agent_cost_usd: agent_cost.and_then(|c| c.total.usd),
            agent_calls: agent_cost.map(|c| c.total.calls),
            agent_cost_limit_usd: view.limits().and_then(|l| l.agent_cost_usd),
        },
        planner: view
            .config
            .as_ref()
            .map(|c| c.planner.kind.as_str().to_owned()),
        executor: view
            .config
            .as_ref()
            .map(|c| c.executor.kind.as_str().to_owned()),
        stop_reason: run
            .and_then(|r| r.stop_reason.clone())
            .or_else(|| st.and_then(|s| s.stop_reason.clone())),
        running,
        queue,
        queue_total,
        queue_error,
        recent,
        events,
        warnings: view
            .warnings
            .iter()
            .take(OVERVIEW_WARNINGS)
            .cloned()
            .collect(),
        warnings_total: view.warnings.len(),
        params: snap.params.clone(),
        other_metrics: view.other_metrics.clone(),
        control,
        load_ms: snap.load_ms,
    }
}

/// One finished experiment of the progress chart.
#[derive(Debug, Clone, Serialize)]
struct Point {
    id: String,
    name: String,
    /// Primary value (`null` for failures and results without it).
    v: Option<f64>,
    /// `true` for a failure.
    failed: bool,
    improved: bool,
    /// The best so far after this point: the value of the latest improvement.
    best: Option<f64>,
}

/// `GET /api/w/{key}/progress`: finished experiments in completion order with the primary
/// metric and every other metric (arrays aligned with `points`).
#[derive(Debug, Clone, Serialize)]
struct Progress<'a> {
    version: u64,
    metric: &'a str,
    direction: &'a str,
    points: Vec<Point>,
    others: Vec<(String, Vec<Option<f64>>)>,
    palette: Palette,
}

/// The progress chart's JSON (cached per snapshot).
pub fn progress_json(snap: &Snapshot) -> Bytes {
    snap.progress_json
        .get_or_init(|| {
            let view = &snap.view;
            let mut best: Option<f64> = None;
            let points: Vec<Point> = view
                .completion_order
                .iter()
                .map(|&i| {
                    let n = &view.nodes[i];
                    let failed = n.status == NodeStatus::Failed;
                    let v = if failed { None } else { view.primary(i) };
                    if n.improved() && v.is_some() {
                        best = v;
                    }
                    Point {
                        id: n.id.clone(),
                        name: n.name().to_owned(),
                        v,
                        failed,
                        improved: n.improved(),
                        best,
                    }
                })
                .collect();
            let others = view
                .other_metrics
                .iter()
                .map(|m| {
                    let vals = view
                        .completion_order
                        .iter()
                        .map(|&i| view.nodes[i].metric(m).filter(|v| v.is_finite()))
                        .collect();
                    (m.clone(), vals)
                })
                .collect();
            let p = Progress {
                version: snap.version,
                metric: &view.metric,
                direction: view.direction.as_str(),
                points,
                others,
                palette: palette(),
            };
            Bytes::from(serde_json::to_vec(&p).unwrap_or_default())
        })
        .clone()
}

/// One node of the tree payload.
#[derive(Debug, Clone, Serialize)]
struct TreeNodeOut {
    id: String,
    name: String,
    /// Index of the parent in `nodes`.
    parent: Option<usize>,
    status: &'static str,
    /// Fill colour, as in `hypothesis_tree.png`.
    fill: String,
    value: Option<f64>,
    improved: bool,
    /// What it changes relative to its parent (edge label).
    change: String,
    /// Horizontal position in slots (tidy layout) and depth.
    x: f64,
    depth: usize,
}

#[derive(Debug, Clone, Serialize)]
struct TreeOut<'a> {
    version: u64,
    metric: &'a str,
    best: Option<usize>,
    width: f64,
    nodes: Vec<TreeNodeOut>,
    palette: Palette,
}

/// The tree's JSON with the tidy layout of `hypothesis_tree.png` (cached per snapshot).
pub fn tree_json(snap: &Snapshot) -> Bytes {
    snap.tree_json
        .get_or_init(|| {
            let view = &snap.view;
            let children: Vec<Vec<usize>> = view.nodes.iter().map(|n| n.children.clone()).collect();
            let layout = tidy_layout(&children, &view.roots);
            let nodes = view
                .nodes
                .iter()
                .enumerate()
                .map(|(i, n)| TreeNodeOut {
                    id: n.id.clone(),
                    name: n.name().to_owned(),
                    parent: n.parent,
                    status: n.status.as_str(),
                    fill: css(status_fill(n.status, n.improved())),
                    value: view.primary(i),
                    improved: n.improved(),
                    change: view.change_label(i),
                    x: if layout.x[i].is_finite() {
                        layout.x[i]
                    } else {
                        0.0
                    },
                    depth: layout.depth[i],
                })
                .collect();
            let t = TreeOut {
                version: snap.version,
                metric: &view.metric,
                best: view.best,
                width: layout.width,
                nodes,
                palette: palette(),
            };
            Bytes::from(serde_json::to_vec(&t).unwrap_or_default())
        })
        .clone()
}
