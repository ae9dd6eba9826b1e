//! The runs of a node's job: `objective.repeats` of them (the baseline's
//! `objective.baseline_repeats`), one after the other inside the node, and `confirm_runs` more
//! when the node beat the best within the noise (see [`super::analysis`] and `docs/noise.md`).
//!
//! - Run k has its own run dir: run 1 is `runs/<id>/` itself (a node run once is laid out as
//!   it always was), run k ≥ 2 is `runs/<id>/repeat-<k>/`. Each holds one job's files
//!   (`command.sh`, `launch.json`, `job.json`, `pid`, logs, `exit_code`, `ending.json`,
//!   `attempt-N/`) and goes through the launch-once steps of [`super::jobs`] on its own: a
//!   run is launched only when it has neither `job.json` nor an archived attempt, and then
//!   through `launch_or_recover`, which re-attaches when its launch marker says it may have
//!   started. A run is done once its `ending.json` is written, so a resumed node skips the
//!   runs that ended, waits for (or probes) the one in flight and launches the next.
//! - The job sees `AUTORESEARCH_REPEAT=<k>` and `AUTORESEARCH_RUN_DIR` = that run's dir.
//! - A run that fails (non-zero exit, timeout, lost, no primary metric) ends the sequence:
//!   no later run is launched, and analysis fails the node naming the run.
//! - How many runs a node makes is fixed by the configuration (which cannot change on
//!   resume), whether it is the baseline (`state.json`'s `baseline_node`, set before it
//!   runs) and its `engine/nodes/<id>/confirm.json`, written once when it is sent to
//!   confirmation.

use std::path::{Path, PathBuf};

use autoresearch_engine::RunContext;
use serde_json::json;

use super::ExperimentWorkflow;
use super::jobs::{JobEnding, JobRun, archived_attempts};
use super::nodes::NodeError;
use super::stop::Stop;
use crate::metrics::MetricsError;
use crate::model::{Confirmation, NodeSpec};
use crate::workdir::REPEAT_PREFIX;

/// The node file that records the decision to confirm a node.
pub(crate) const CONFIRM_FILE: &str = "confirm.json";

/// How many runs a node makes.
pub(crate) struct RunPlan {
    /// Its repeats (`objective.repeats`, or `baseline_repeats` for the baseline).
    pub base: u32,
    /// The confirmation it was sent to, if any (`confirm.json`).
    pub confirmation: Option<Confirmation>,
}

impl RunPlan {
    /// All its runs: the repeats, then the confirmation runs.
    pub(crate) fn total(&self) -> u32 {
        match &self.confirmation {
            Some(c) => c.runs_before + c.runs,
            None => self.base,
        }
    }
}

impl ExperimentWorkflow {
    /// Run `k` (1-based) of a node.
    pub(crate) fn job_run<'a>(&self, spec: &'a NodeSpec, k: u32) -> JobRun<'a> {
        JobRun {
            spec,
            repeat: k,
            dir: self.wd.repeat_run_dir(&spec.node_id, k),
        }
    }

    /// How many runs node `id` makes.
    pub(crate) fn run_plan(&self, id: &str) -> Result<RunPlan, NodeError> {
        let baseline = self.ledger.snapshot().baseline_node.as_deref() == Some(id);
        Ok(RunPlan {
            base: self.config.objective.runs_of(baseline),
            confirmation: self.nodes.read_file::<Confirmation>(id, CONFIRM_FILE)?,
        })
    }

    /// The run dirs of node `id` that exist: `runs/<id>/` and its `repeat-<k>/` folders.
    pub(crate) fn run_dirs(&self, id: &str) -> Vec<PathBuf> {
        let first = self.wd.run_dir(id);
        let mut dirs = vec![first.clone()];
        if let Ok(rd) = std::fs::read_dir(&first) {
            dirs.extend(
                rd.filter_map(Result::ok)
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .filter(|e| {
                        e.file_name()
                            .to_str()
                            .and_then(|n| n.strip_prefix(REPEAT_PREFIX))
                            .is_some_and(|k| k.parse::<u32>().is_ok())
                    })
                    .map(|e| e.path()),
            );
        }
        dirs
    }

    /// Runs the node's runs that have not ended, one after the other, until all have ended
    /// or one failed. Run 1 was launched by the `launching` phase.
    pub(crate) async fn run_all(&self, spec: &NodeSpec, ctx: &RunContext) -> Result<(), Stop> {
        let plan = self.run_plan(&spec.node_id)?;
        let total = plan.total();
        for k in 1..=total {
            let run = self.job_run(spec, k);
            if total > 1 {
                ctx.phase(
                    "running",
                    Some(json!({ "run": k, "of": total, "confirming": k > plan.base })),
                );
            }
            let ending = match self.written_ending(&run.dir)? {
                Some(ending) => ending,
                None => self.finish_run(&run, ctx).await?,
            };
            if !self.run_succeeded(&run, &ending)? {
                break;
            }
        }
        Ok(())
    }

    /// Launches run `run` if it never was, waits for its end and writes its `ending.json`.
    async fn finish_run(&self, run: &JobRun<'_>, ctx: &RunContext) -> Result<JobEnding, Stop> {
        if run.repeat > 1 && self.record(&run.dir)?.is_none() && archived_attempts(&run.dir) == 0 {
            self.prepare_run(run.spec, &run.dir)?;
            self.launch_or_recover(run, ctx).await?;
            tracing::info!(node = %run.spec.node_id, run = run.repeat, "run started");
        }
        let ending = match self.take_kept_ending(&run.key()) {
            Some(ending) => ending,
            None => match self.wait_job(run, ctx).await? {
                Some(ending) => ending,
                None => self.read_ending(&run.dir)?,
            },
        };
        if let Err(e) = self.write_ending(&run.dir, &ending) {
            // Kept for the retry: the job is over and must not be waited for again.
            self.keep_ending(&run.key(), ending);
            return Err(e.into());
        }
        Ok(ending)
    }

    /// The ending recorded in `ending.json`, if the run has one (it is done).
    pub(crate) fn written_ending(&self, dir: &Path) -> Result<Option<JobEnding>, NodeError> {
        let path = dir.join("ending.json");
        let io = |source| NodeError::Io {
            path: path.clone(),
            source,
        };
        self.wd.check(&path).map_err(io)?;
        match std::fs::symlink_metadata(&path) {
            Ok(_) => self.read_ending(dir).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(e)),
        }
    }

    /// Whether a finished run lets the next one start: it exited with 0 and reported the
    /// primary metric.
    fn run_succeeded(&self, run: &JobRun<'_>, ending: &JobEnding) -> Result<bool, Stop> {
        if *ending != JobEnding::Exited(0) {
            return Ok(false);
        }
        match crate::metrics::collect(&run.dir, &self.config.objective.metric) {
            Ok(m) => Ok(m.values.contains_key(&self.config.objective.metric)),
            Err(MetricsError::Io { path, source })
                if autoresearch_engine::nofollow::is_transient(&source) =>
            {
                Err(Stop::Env(format!("{}: {source}", path.display())))
            }
            Err(_) => Ok(false),
        }
    }
}
