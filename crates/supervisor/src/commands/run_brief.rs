//! A run's workdir files turned into the [`RunBrief`] the `report` and `ask` prompts are made
//! from, and the files of the nodes a question names.
//!
//! Everything comes from the workdir (a [`RunView`] snapshot plus a few raw reads), so it works
//! on a live, a stopped or a copied run. Diff stats come from the workspace's git refs
//! (`refs/autoresearch/<run>/<id>`) when the run has a `workspace`.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use autoresearch_adapters::agent::ask::{NodeFile, NodeFiles};
use autoresearch_adapters::agent::cost_log::AgentCostSummary;
use autoresearch_adapters::agent::plan_prompt::{Finding, HistoryRow, InFlight, PlanContext};
use autoresearch_adapters::agent::run_brief::{
    BestNode, FailureGroup, NodeAnalysis, PathStep, RunBrief,
};
use autoresearch_adapters::config::{Direction, format_number};
use autoresearch_adapters::model::NodeResult;
use autoresearch_adapters::model::NodeStatus;
use autoresearch_adapters::workdir::Workdir;
use autoresearch_adapters::workspace::Workspace;
use autoresearch_engine::nofollow::read_regular;

use crate::render::{RunView, pct_change};

/// Largest file read into a prompt (a prompt shows at most its end or beginning anyway).
const MAX_FILE_BYTES: u64 = 8 << 20;

/// Largest search-space text put into a prompt.
const MAX_SPACE_CHARS: usize = 2000;

/// Reads a small text file under the workdir without following links; `None` when missing or
/// unreadable.
fn read_text(path: &Path) -> Option<String> {
    let bytes = read_regular(path, MAX_FILE_BYTES).ok().flatten()?;
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

/// The last `max` bytes of a regular file (logs can be large), without following a link.
fn read_tail(path: &Path, max: u64) -> Option<String> {
    use std::io::{Read, Seek, SeekFrom};
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .ok()?;
    let meta = f.metadata().ok()?;
    if !meta.is_file() {
        return None;
    }
    let start = meta.len().saturating_sub(max);
    f.seek(SeekFrom::Start(start)).ok()?;
    let mut buf = Vec::new();
    f.take(max).read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    Some(if start > 0 {
        format!("({start} earlier bytes not read)\n{text}")
    } else {
        text
    })
}

/// The findings of a node: `findings` in its `result.json`.
fn findings_of(wd: &Workdir, id: &str) -> Vec<String> {
    read_text(&wd.node_result(id))
        .and_then(|t| serde_json::from_str::<NodeResult>(&t).ok())
        .and_then(|r| r.findings)
        .unwrap_or_default()
}

/// A node's analysis: `runs/<id>/analysis.md`, else the `analysis` of its result.
fn analysis_of(view: &RunView, i: usize) -> Option<String> {
    let n = &view.nodes[i];
    let wd = Workdir::new(&view.root);
    read_text(&wd.run_dir(&n.id).join("analysis.md"))
        .filter(|t| !t.trim().is_empty())
        .or_else(|| {
            n.result
                .as_ref()
                .map(|r| r.analysis.clone())
                .filter(|a| !a.trim().is_empty())
        })
}

fn direction(view: &RunView) -> Direction {
    match view.direction {
        crate::render::Direction::Maximize => Direction::Maximize,
        crate::render::Direction::Minimize => Direction::Minimize,
    }
}

/// The git refs of the nodes of `ids` that have one (`refs/autoresearch/<run>/<id>`) and the
/// diff stat of each node against the one before it; empty without a workspace or refs.
async fn refs_and_stats(
    view: &RunView,
    ids: &[String],
    warnings: &mut Vec<String>,
) -> (HashMap<String, String>, HashMap<String, String>) {
    let mut refs = HashMap::new();
    let mut commits = HashMap::new();
    let mut stats = HashMap::new();
    let Some(ws) = view.config.as_ref().and_then(|c| c.workspace.clone()) else {
        return (refs, stats);
    };
    // No run id yet: no experiment has a ref (and opening the workspace would make one).
    if !autoresearch_adapters::workspace::run_id::run_id_path(&view.root).is_file() {
        return (refs, stats);
    }
    let workspace = match Workspace::open(&view.root, &ws).await {
        Ok(w) => w,
        Err(e) => {
            warnings.push(format!("no diff stats: {e}"));
            return (refs, stats);
        }
    };
    for id in ids {
        match workspace.node_commit(id).await {
            Ok(Some(c)) => {
                commits.insert(id.clone(), c);
                refs.insert(id.clone(), workspace.ref_name(id));
            }
            Ok(None) => {}
            Err(e) => warnings.push(format!("{id}: {e}")),
        }
    }
    for pair in ids.windows(2) {
        let (Some(from), Some(to)) = (commits.get(&pair[0]), commits.get(&pair[1])) else {
            continue;
        };
        if from == to {
            continue;
        }
        match workspace.diff_stat(from, to).await {
            Ok(s) if !s.trim().is_empty() => {
                stats.insert(pair[1].clone(), s);
            }
            Ok(_) => {}
            Err(e) => warnings.push(format!("{}: {e}", pair[1])),
        }
    }
    (refs, stats)
}

/// The brief of the run in `view`; problems that only remove detail (no diff stats) are added
/// to `warnings`.
pub async fn build(view: &RunView, warnings: &mut Vec<String>) -> RunBrief {
    let wd = Workdir::new(&view.root);
    let path: Vec<usize> = view.best.map(|b| view.path_to(b)).unwrap_or_default();
    let path_ids: Vec<String> = path.iter().map(|&i| view.nodes[i].id.clone()).collect();
    let (refs, stats) = refs_and_stats(view, &path_ids, warnings).await;
    let base = view.baseline_value();

    let mut history = Vec::new();
    let mut in_flight = Vec::new();
    let mut findings = Vec::new();
    let mut analyses = Vec::new();
    let mut failures: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for (i, n) in view.nodes.iter().enumerate() {
        let spec = n.spec.as_ref();
        let params = spec.map(|s| s.params.clone()).unwrap_or_default();
        let hypothesis = spec.map(|s| s.hypothesis.clone()).unwrap_or_default();
        let changes = spec.and_then(|s| s.changes.clone());
        if !n.status.is_terminal() {
            in_flight.push(InFlight {
                id: n.id.clone(),
                parent: n.parent_id().map(str::to_owned),
                status: n.status.to_string(),
                params,
                hypothesis,
                changes,
            });
            continue;
        }
        let failure = match (&n.failure, n.status) {
            (Some(f), _) => Some((f.kind.as_str().to_string(), f.message.clone())),
            (None, NodeStatus::Failed) => Some(("unknown".into(), "no failure.json".into())),
            _ => None,
        };
        if let Some((kind, message)) = &failure {
            failures
                .entry(kind.clone())
                .or_default()
                .push((n.id.clone(), message.clone()));
        }
        history.push(HistoryRow {
            id: n.id.clone(),
            parent: n.parent_id().map(str::to_owned),
            status: n.status.to_string(),
            params,
            primary: view.primary(i),
            spread: n.spread().copied(),
            improved: n.improved(),
            unconfirmed: n.unconfirmed(),
            hypothesis,
            change: changes,
            failure: failure.map(|(k, m)| format!("{k}: {m}")),
        });
        for text in findings_of(&wd, &n.id) {
            findings.push(Finding {
                node_id: n.id.clone(),
                text,
            });
        }
        if let Some(text) = analysis_of(view, i) {
            analyses.push(NodeAnalysis {
                node_id: n.id.clone(),
                text,
                on_path: path.contains(&i),
            });
        }
    }

    let steps = path
        .iter()
        .map(|&i| {
            let n = &view.nodes[i];
            let value = view.primary(i);
            PathStep {
                id: n.id.clone(),
                change: view.change_label(i),
                diff_stat: stats.get(&n.id).cloned(),
                value,
                spread: n.spread().copied(),
                vs_baseline_pct: value.zip(base).and_then(|(v, b)| pct_change(v, b)),
                improved: n.improved(),
            }
        })
        .collect();
    let best = view.best.and_then(|b| {
        let n = &view.nodes[b];
        let value = view.primary(b)?;
        Some(BestNode {
            id: n.id.clone(),
            value,
            spread: n.spread().copied(),
            vs_baseline_pct: base.and_then(|base| pct_change(value, base)),
            params: n.params().cloned().unwrap_or_default(),
            hypothesis: n
                .spec
                .as_ref()
                .map(|s| s.hypothesis.clone())
                .unwrap_or_default(),
            changes: n.spec.as_ref().and_then(|s| s.changes.clone()),
            git_ref: refs.get(&n.id).cloned(),
        })
    });

    let mut space = view
        .search_space()
        .and_then(|s| serde_json::to_string(s).ok())
        .unwrap_or_default();
    if space.chars().count() > MAX_SPACE_CHARS {
        space = space.chars().take(MAX_SPACE_CHARS).collect::<String>() + "…";
    }
    let engine_cost = view.state.as_ref().and_then(|s| s.agent_cost.as_ref());
    let cost = AgentCostSummary::of(engine_cost, &view.root).map(|c| c.describe());
    RunBrief {
        run: PlanContext {
            metric: view.metric.clone(),
            direction: direction(view),
            min_improvement: view
                .config
                .as_ref()
                .map(|c| c.objective.min_improvement)
                .unwrap_or_default(),
            noise_floor: view.noise_floor(),
            search_space: space,
            budget: budget_text(view),
            planned_from: view
                .best
                .map(|b| view.nodes[b].id.clone())
                .unwrap_or_default(),
            history,
            best_path: path_ids,
            findings,
            in_flight,
            slots: 0,
            protected: Vec::new(),
        },
        status: status_text(view),
        best,
        steps,
        analyses,
        failures: failures
            .into_iter()
            .map(|(kind, nodes)| FailureGroup { kind, nodes })
            .collect(),
        noise_floor: view.noise_floor().map(|n| n.describe()),
        agent_cost: cost,
    }
}

fn status_text(view: &RunView) -> String {
    let c = view.counts();
    let name = view
        .root
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut out = format!(
        "Run `{name}`: {} experiments ({} completed, {} of them improved; {} failed; {} running; \
         {} queued). Engine: {}.\n",
        c.total,
        c.completed,
        c.improved,
        c.failed,
        c.running,
        c.queued,
        view.engine_status()
    );
    if let Some(s) = &view.state {
        out.push_str(&format!(
            "Time used: {} s; planner rounds: {}; completed in a row without improvement: {}.\n",
            format_number(s.time_used_s.round()),
            s.planner_rounds,
            s.plateau
        ));
        if let Some(r) = &s.stop_reason {
            out.push_str(&format!("Stopped because: {r}\n"));
        }
    }
    if let (Some(b), Some(v)) = (view.baseline, view.baseline_value()) {
        out.push_str(&format!(
            "Baseline: {} with {} = {}.\n",
            view.nodes[b].id,
            view.metric,
            format_number(v)
        ));
    }
    out
}

fn budget_text(view: &RunView) -> String {
    let Some(limits) = view
        .limits()
        .and_then(|l| serde_json::to_value(l).ok())
        .and_then(|v| v.as_object().cloned())
    else {
        return String::new();
    };
    limits
        .iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| format!("{k} = {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The files of the nodes `ids` (spec, status, result, failure, job, analysis, and the last
/// 64 KiB of the job's stdout and stderr), for a question about them.
pub fn node_files(view: &RunView, ids: &[String]) -> Vec<NodeFiles> {
    let wd = Workdir::new(&view.root);
    ids.iter()
        .filter_map(|id| view.node(id))
        .map(|n| {
            let mut files = Vec::new();
            let rel = |p: &Path| {
                p.strip_prefix(&view.root)
                    .unwrap_or(p)
                    .display()
                    .to_string()
            };
            let run = wd.run_dir(&n.id);
            let whole = [
                wd.node_spec(&n.id),
                wd.node_result(&n.id),
                wd.node_failure(&n.id),
                run.join("job.json"),
                run.join("analysis.md"),
            ];
            for p in whole {
                if let Some(text) = read_text(&p) {
                    files.push(NodeFile {
                        name: rel(&p),
                        text,
                        tail: false,
                    });
                }
            }
            for log in ["stdout.log", "stderr.log"] {
                let p = run.join(log);
                if let Some(text) = read_tail(&p, 64 * 1024) {
                    files.push(NodeFile {
                        name: rel(&p),
                        text,
                        tail: true,
                    });
                }
            }
            NodeFiles {
                id: n.id.clone(),
                status: n.status.to_string(),
                files,
            }
        })
        .collect()
}
