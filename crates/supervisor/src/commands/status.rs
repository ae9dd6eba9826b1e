//! `supervisor status`: status, counts, best, running jobs, crash detection. Reads only a few
//! small files (`engine_state.json`, `state.json`, `active.json`; the checkpoint only when the
//! engine is not running), so it answers quickly on any workdir size.

use std::path::Path;

use anyhow::Result;
use autoresearch_adapters::agent::cost_log::AgentCostSummary;
use autoresearch_adapters::model::{JobRecord, NoiseFloor, RunState};
use autoresearch_adapters::workdir::Workdir;
use autoresearch_adapters::workflow::events::JobAnnotation;
use autoresearch_engine::EngineStatus;
use serde::Serialize;

/// Spec counts.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CountsInfo {
    /// Waiting in the queue.
    pub queued: u64,
    /// Running now (or left running by an interrupt).
    pub running: u64,
    /// Experiments completed.
    pub completed: u64,
    /// Experiments failed.
    pub failed: u64,
}

/// The best (or baseline) result.
#[derive(Debug, Clone, Serialize)]
pub struct BestInfo {
    /// Node id.
    pub node_id: String,
    /// Metric name.
    pub metric: String,
    /// Value.
    pub value: f64,
}

/// A running experiment.
#[derive(Debug, Clone, Serialize)]
pub struct RunningInfo {
    /// Node id.
    pub node_id: String,
    /// Executor job id, when known.
    pub job_id: Option<String>,
}

/// Everything `status` reports.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    /// The workdir.
    pub workdir: String,
    /// `new`, `running`, `interrupted`, `stopped` or `crashed`.
    pub status: String,
    /// Pid of the engine (running) or of the last engine.
    pub pid: Option<u32>,
    /// Host of the engine.
    pub host: Option<String>,
    /// Last heartbeat of the engine.
    pub heartbeat_at: Option<String>,
    /// Counts.
    pub counts: CountsInfo,
    /// Best result so far.
    pub best: Option<BestInfo>,
    /// Baseline result.
    pub baseline: Option<BestInfo>,
    /// Running experiments with job ids.
    pub running: Vec<RunningInfo>,
    /// Experiments started (counts against max_experiments).
    pub experiments_started: u64,
    /// Experiments in a row without improvement.
    pub plateau: u32,
    /// Wall time used over all resumes.
    pub time_used_s: f64,
    /// Limits from config.json.
    pub limits: Option<autoresearch_adapters::config::Limits>,
    /// Why the run stopped.
    pub stop_reason: Option<String>,
    /// What to do next when the run stopped: the command that fixes a fail-fast verdict, raises
    /// a reached limit, or adds experiments (null while an engine runs or when nothing is due).
    pub next_step: Option<String>,
    /// A human note, e.g. `crashed (pid 123 gone)`.
    pub message: Option<String>,
    /// What the coding agent cost: the engine's calls (`state.json` `agent_cost`) and the
    /// supervisor's (`report --agent`, `ask`: `logs/agent/costs.jsonl`); `null` when none.
    pub agent_cost: Option<AgentCostSummary>,
    /// The run's noise floor (`state.json` `noise_floor`), once some node ran twice.
    pub noise_floor: Option<NoiseFloor>,
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Option<T> {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
}

/// Gathers the status of a workdir.
pub fn gather(workdir: &Path) -> Result<StatusReport> {
    super::require_workdir(workdir)?;
    let wd = Workdir::new(workdir);
    let holder = autoresearch_engine::lock::holder(workdir).unwrap_or(None);
    let engine = autoresearch_engine::state::read_state(workdir)
        .ok()
        .flatten();
    let run: Option<RunState> = read_json(&wd.state());
    let config: Option<autoresearch_adapters::config::Config> = read_json(&wd.config());
    let (status, message) = match (&holder, &engine) {
        (Some(_), _) => ("running", None),
        (None, None) => ("new", None),
        (None, Some(e)) => match e.status {
            EngineStatus::Running | EngineStatus::Failed => {
                ("crashed", Some(format!("crashed (pid {} gone)", e.pid)))
            }
            EngineStatus::Interrupted => ("interrupted", None),
            EngineStatus::Stopped => ("stopped", None),
        },
    };
    let metric = run.as_ref().map(|r| r.metric.clone()).unwrap_or_default();
    let best = run.as_ref().and_then(|r| {
        Some(BestInfo {
            node_id: r.best_node.clone()?,
            metric: metric.clone(),
            value: r.best_value?,
        })
    });
    let baseline = run.as_ref().and_then(|r| {
        Some(BestInfo {
            node_id: r.baseline_node.clone()?,
            metric: metric.clone(),
            value: r.baseline_value?,
        })
    });
    let running: Vec<RunningInfo> = if holder.is_some() {
        // A view being replaced may be missing for an instant: then no running list.
        autoresearch_engine::views::read_active::<JobAnnotation>(workdir)
            .ok()
            .flatten()
            .map(|view| {
                view.running
                    .into_iter()
                    .map(|r| RunningInfo {
                        node_id: r.id.into_owned(),
                        job_id: r.annotation.map(|a| a.job_id),
                    })
                    .collect()
            })
            .unwrap_or_default()
    } else {
        // Not running: what the checkpoint kept as running (their jobs may still be alive).
        // An invalid checkpoint is said, not skipped: the next start would refuse it.
        let cp = autoresearch_engine::checkpoint::load(&wd.engine_dir().join("checkpoint.json"))
            .map_err(|e| {
                crate::exit::engine_error(autoresearch_engine::EngineError::Checkpoint(e), workdir)
            })?;
        cp.map(|c| c.running)
            .unwrap_or_default()
            .into_iter()
            .map(|s| RunningInfo {
                job_id: read_json::<JobRecord>(&wd.run_dir(&s.id).join("job.json"))
                    .map(|j| j.job_id),
                node_id: s.id,
            })
            .collect()
    };
    // The files are written at different moments: a node may have finished (and become the
    // best) before active.json or the checkpoint say so. A finished node is not running, and
    // never both best and running.
    let mut running = running;
    running.retain(|r| {
        let finished = std::fs::read_to_string(wd.node_status(&r.node_id))
            .ok()
            .and_then(|s| autoresearch_adapters::model::NodeStatus::parse(&s))
            .is_some_and(|s| s.is_terminal());
        !finished && best.as_ref().is_none_or(|b| b.node_id != r.node_id)
    });
    let counts = CountsInfo {
        queued: engine.as_ref().map(|e| e.counts.queued).unwrap_or(0),
        running: running.len() as u64,
        completed: run.as_ref().map(|r| r.experiments_completed).unwrap_or(0),
        failed: run.as_ref().map(|r| r.experiments_failed).unwrap_or(0),
    };
    let time_used_s = run.as_ref().map(|r| r.time_used_s).unwrap_or(0.0);
    // Never fewer started than completed, failed and running together.
    let experiments_started = run
        .as_ref()
        .map(|r| r.experiments_started)
        .unwrap_or(0)
        .max(counts.completed + counts.failed + counts.running);
    Ok(StatusReport {
        workdir: workdir.display().to_string(),
        status: status.to_string(),
        pid: holder.or(engine.as_ref().map(|e| e.pid)),
        host: engine.as_ref().map(|e| e.host.clone()),
        heartbeat_at: engine.as_ref().map(|e| e.heartbeat_at.clone()),
        counts,
        best,
        baseline,
        running,
        experiments_started,
        plateau: run.as_ref().map(|r| r.plateau).unwrap_or(0),
        time_used_s,
        limits: config.as_ref().map(|c| c.limits.clone()),
        stop_reason: run.as_ref().and_then(|r| r.stop_reason.clone()),
        next_step: match (&run, status) {
            (Some(r), "stopped") => super::next_step::after_stop(
                workdir,
                autoresearch_adapters::config::Config::load(&wd.config())
                    .ok()
                    .as_ref(),
                r,
            ),
            _ => None,
        },
        message,
        agent_cost: AgentCostSummary::of(run.as_ref().and_then(|r| r.agent_cost.as_ref()), workdir),
        noise_floor: run.as_ref().and_then(|r| r.noise_floor),
    })
}

/// The report as a few lines of text.
pub fn format_human(r: &StatusReport) -> String {
    let mut out = String::new();
    let status = r.message.clone().unwrap_or_else(|| r.status.clone());
    // A message such as `crashed (pid N gone)` already names the pid.
    let pid = match (&r.message, r.pid) {
        (None, Some(p)) if r.status == "running" => format!(" (pid {p})"),
        (None, Some(p)) => format!(" (last engine: pid {p})"),
        _ => String::new(),
    };
    out.push_str(&format!("{}: {status}{pid}\n", r.workdir));
    let limit = r
        .limits
        .as_ref()
        .map(|l| format!("/{}", l.max_experiments))
        .unwrap_or_default();
    out.push_str(&format!(
        "experiments: {} started{limit}, {} completed, {} failed, {} queued, {} running\n",
        r.experiments_started,
        r.counts.completed,
        r.counts.failed,
        r.counts.queued,
        r.counts.running
    ));
    match (&r.best, &r.baseline) {
        (Some(b), Some(base)) => {
            let pct = if base.value != 0.0 {
                format!(
                    " ({:+.1}% vs baseline {})",
                    (b.value - base.value) / base.value.abs() * 100.0,
                    base.value
                )
            } else {
                String::new()
            };
            out.push_str(&format!(
                "best: {} {} = {}{pct}\n",
                b.node_id, b.metric, b.value
            ));
        }
        (Some(b), None) => {
            out.push_str(&format!("best: {} {} = {}\n", b.node_id, b.metric, b.value))
        }
        _ => out.push_str("best: none yet\n"),
    }
    out.push_str(&format!(
        "plateau: {} · time used: {:.0} s\n",
        r.plateau, r.time_used_s
    ));
    if let Some(f) = &r.noise_floor {
        out.push_str(&format!("noise floor: {}\n", f.describe()));
    }
    for run in &r.running {
        out.push_str(&format!(
            "running: {} {}\n",
            run.node_id,
            run.job_id.as_deref().unwrap_or("")
        ));
    }
    if let Some(reason) = &r.stop_reason {
        out.push_str(&format!("stopped because: {reason}\n"));
    }
    if let Some(next) = &r.next_step {
        out.push_str(&format!("next: {next}\n"));
    }
    if let Some(cost) = &r.agent_cost {
        out.push_str(&format!("agent cost: {}\n", cost.describe()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The files of a stopped run written at slightly different moments: `state.json` counts
    /// fewer started than have finished, and the checkpoint still lists as running a node that
    /// has completed and become the best.
    #[test]
    fn counts_stay_consistent_when_the_files_disagree() {
        let dir = tempfile::tempdir().unwrap();
        let wd = Workdir::new(dir.path());
        std::fs::create_dir_all(wd.engine_dir()).unwrap();
        std::fs::write(wd.config(), "{}").unwrap();
        let state = RunState {
            schema_version: 1,
            metric: "score".into(),
            direction: "maximize".into(),
            best_node: Some("001_b".into()),
            best_value: Some(3.0),
            baseline_node: None,
            baseline_value: None,
            plateau: 0,
            experiments_started: 1,
            experiments_completed: 2,
            experiments_failed: 0,
            time_used_s: 1.0,
            planner_rounds: 0,
            next_index: 3,
            stop_reason: None,
            fail_fast: None,
            updated_at: "2026-01-01T00:00:00Z".into(),
            ..Default::default()
        };
        std::fs::write(wd.state(), serde_json::to_vec(&state).unwrap()).unwrap();
        let spec = |id: &str| {
            format!(r#"{{"id": "{id}", "priority": 0, "kind": "experiment", "payload": {{}}}}"#)
        };
        std::fs::write(
            wd.engine_dir().join("checkpoint.json"),
            format!(
                r#"{{"schema_version": 1, "status": "interrupted", "updated_at": "2026-01-01T00:00:00Z", "queued": [], "running": [{}, {}, {}]}}"#,
                spec("001_b"),
                spec("002_c"),
                spec("003_d")
            ),
        )
        .unwrap();
        for (id, status) in [
            ("001_b", "running"),
            ("002_c", "running"),
            ("003_d", "failed"),
        ] {
            std::fs::create_dir_all(wd.node_dir(id)).unwrap();
            std::fs::write(wd.node_status(id), format!("{status}\n")).unwrap();
        }
        let r = gather(dir.path()).unwrap();
        let running: Vec<&str> = r.running.iter().map(|x| x.node_id.as_str()).collect();
        // 001_b is the best (never also running); 003_d has failed (finished).
        assert_eq!(running, ["002_c"]);
        assert_eq!(r.counts.running, 1);
        assert!(
            r.experiments_started >= r.counts.completed + r.counts.failed + r.counts.running,
            "{r:?}"
        );
        assert_eq!(r.experiments_started, 3);
    }
}
