//! Launching, re-attaching to and waiting for a node's job, so that a job is launched once.
//!
//! - Before launching, `runs/<id>/launch.json` marks the attempt. On resume in `launching`, a
//!   job that may have started (its `job.json`, the wrapper's `pid` file, or a Slurm job with the
//!   node's name) is re-attached instead of launched again.
//! - The only relaunch is of a job known dead with no exit code; it becomes attempt N+1, and the
//!   previous attempt's files move to `runs/<id>/attempt-N/`. Archiving is idempotent and a
//!   relaunch cut short (a crash or a full disk between archiving and the new `job.json`) is
//!   recognised from the files and finished, never taken for a lost job.
//! - A job the engine itself killed because it was stopping (`cancel_jobs_on_stop`) is marked
//!   `runs/<id>/cancelled.json`; on resume it is relaunched without counting as a lost attempt.
//! - How a job ended is kept in `runs/<id>/exit_code` (written by the wrapper) and
//!   `runs/<id>/ending.json`, so analysis can resume too.
//!
//! Each run of a node's job (its repeats and confirmation runs, see [`super::repeats`]) has
//! its own run dir and goes through these steps on its own.

use std::path::{Path, PathBuf};

use autoresearch_engine::RunContext;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::events::JobAnnotation;
use super::nodes::{NodeError, read_json_capped};
use super::stop::{Fail, Stop};
use super::{ExperimentWorkflow, now_millis};
use crate::executor::{
    Exec, ExecError, Executor, JobEnd, JobRequest, Probe, WaitOutcome, read_exit_code,
};
use crate::model::{FailureKind, JobRecord, NodeSpec, NodeStatus};
use crate::workdir::Workdir;

/// A job is declared lost after this many attempts found dead (cancels by the engine's own
/// stop do not count).
const MAX_ATTEMPTS: u32 = 3;
/// The launch marker: the attempt about to be launched.
const LAUNCH_MARKER: &str = "launch.json";
/// Written when the engine killed the job because it was stopping.
const CANCELLED_MARKER: &str = "cancelled.json";
/// Largest run-dir marker or record read.
const MAX_SMALL_FILE: u64 = 64 << 10;
/// Files of an attempt moved to `attempt-N/` before a relaunch, `job.json` first (a run dir
/// without it is how a cut-short relaunch is recognised) and the launch marker last.
const ATTEMPT_FILES: [&str; 9] = [
    "job.json",
    "pid",
    "stdout.log",
    "stderr.log",
    "metrics.json",
    "exit_code",
    "ending.json",
    CANCELLED_MARKER,
    LAUNCH_MARKER,
];

/// How a job ended, as analysis needs it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum JobEnding {
    Exited(i32),
    TimedOut,
    Lost(String),
}

/// What a run dir without `job.json` in the running phase needs.
enum Relaunch {
    /// The new attempt's marker is written: it may have started; recover or launch it.
    Recover,
    /// The previous attempt is archived: launch this attempt.
    Launch(u32),
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> NodeError + '_ {
    move |source| NodeError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// An executor's error: its own files failing is the environment's fault; anything else is
/// the experiment's, recorded with `kind`.
fn exec_stop(e: ExecError, kind: FailureKind, phase: NodeStatus) -> Stop {
    match e {
        ExecError::Io { path, source } => Stop::Env(format!("{}: {source}", path.display())),
        // Starting a process failed for lack of resources (too many processes or open
        // files, no memory): the environment's fault, not the job's.
        e @ ExecError::Spawn { .. } if e.is_transient() => Stop::Env(e.to_string()),
        other => Fail::new(kind, phase, other.to_string()).into(),
    }
}

/// `runs/<id>/launch.json` (written before a launch) and `runs/<id>/cancelled.json` (written
/// when the engine's own stop killed the job): which attempt, and when.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct AttemptMarker {
    /// The attempt (1-based).
    pub attempt: u32,
    /// When it was written (RFC 3339).
    pub at: String,
}

impl AttemptMarker {
    fn now(attempt: u32) -> Self {
        AttemptMarker {
            attempt,
            at: now_millis(),
        }
    }
}

/// One run of a node's job: which node, which run (1-based) and its run dir.
pub(crate) struct JobRun<'a> {
    /// The node.
    pub spec: &'a NodeSpec,
    /// 1 for the first run; the repeats and confirmation runs follow.
    pub repeat: u32,
    /// `runs/<id>/` for run 1, `runs/<id>/repeat-<k>/` for the others.
    pub dir: PathBuf,
}

impl JobRun<'_> {
    /// A key naming this run (for endings kept across a retry).
    pub(crate) fn key(&self) -> String {
        format!("{}#{}", self.spec.node_id, self.repeat)
    }
}

impl ExperimentWorkflow {
    fn request(&self, run: &JobRun, attempt: u32) -> JobRequest {
        let spec = run.spec;
        let run_dir = run.dir.clone();
        let mut env: Vec<(String, String)> = vec![
            ("AUTORESEARCH_RUN_DIR".into(), run_dir.display().to_string()),
            ("AUTORESEARCH_NODE_ID".into(), spec.node_id.clone()),
            ("AUTORESEARCH_REPEAT".into(), run.repeat.to_string()),
        ];
        env.extend(crate::config::param_env(&spec.params));
        env.extend(
            self.config
                .job
                .env
                .iter()
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        JobRequest {
            node_id: spec.node_id.clone(),
            run_dir,
            cwd: self.job_cwd(&spec.node_id),
            env,
            timeout: self.config.job.timeout(),
            attempt,
            log_limit_bytes: self.config.job.log_limit_mb.saturating_mul(1 << 20),
        }
    }

    pub(crate) fn record(&self, run_dir: &Path) -> Result<Option<JobRecord>, NodeError> {
        let path = run_dir.join("job.json");
        self.wd.check(&path).map_err(io_error(&path))?;
        read_json_capped(&path, MAX_SMALL_FILE)
    }

    /// The attempt in `runs/<id>/launch.json`, if any.
    fn marker_attempt(&self, run_dir: &Path) -> Result<Option<u32>, NodeError> {
        let marker = run_dir.join(LAUNCH_MARKER);
        self.wd.check(&marker).map_err(io_error(&marker))?;
        Ok(read_json_capped::<AttemptMarker>(&marker, MAX_SMALL_FILE)?.map(|m| m.attempt))
    }

    /// Launches the node's job, unless an earlier engine already did (then re-attaches).
    pub(crate) async fn launch_or_recover(
        &self,
        run: &JobRun<'_>,
        ctx: &RunContext,
    ) -> Result<(), Stop> {
        let run_dir = &run.dir;
        if let Some(record) = self.record(run_dir)? {
            ctx.annotate(JobAnnotation {
                job_id: record.job_id.clone(),
            });
            return Ok(());
        }
        let attempt = self.marker_attempt(run_dir)?;
        if let Some(attempt) = attempt
            && let Some(record) = self.find_started(run, attempt).await
        {
            write_record(&self.wd, run_dir, &record)?;
            ctx.annotate(JobAnnotation {
                job_id: record.job_id.clone(),
            });
            return Ok(());
        }
        self.launch(run, attempt.unwrap_or(1), ctx).await
    }

    async fn launch(&self, run: &JobRun<'_>, attempt: u32, ctx: &RunContext) -> Result<(), Stop> {
        let run_dir = &run.dir;
        let marker = run_dir.join(LAUNCH_MARKER);
        self.wd.check(&marker).map_err(io_error(&marker))?;
        autoresearch_engine::atomic::write_json_atomic(&marker, &AttemptMarker::now(attempt))
            .map_err(io_error(&marker))?;
        let req = self.request(run, attempt);
        let launched = self.exec.launch(&req).await;
        let record = match launched {
            Ok(record) => record,
            Err(e) => return Err(self.launch_failed(run, e)),
        };
        ctx.annotate(JobAnnotation {
            job_id: record.job_id.clone(),
        });
        Ok(())
    }

    /// A launch that failed. When the executor's own files failed, the job is not running (the
    /// executor kills a job it cannot record): the same attempt is launched again on retry, so
    /// the dead wrapper's `pid` is removed lest it be taken for a started job.
    fn launch_failed(&self, run: &JobRun, e: ExecError) -> Stop {
        if matches!(e, ExecError::Io { .. }) && matches!(self.exec, Exec::Local(_)) {
            let _ = std::fs::remove_file(run.dir.join("pid"));
        }
        match exec_stop(e, FailureKind::Launch, NodeStatus::Launching) {
            Stop::Fail(f) => f.details(json!({ "command": run.spec.command })).into(),
            other => other,
        }
    }

    /// Evidence that an earlier engine started the job before it could write `job.json`: the
    /// executor's `recover` (exact match on this run dir and attempt; it answers without
    /// waiting, so repeated restarts cannot hold a slot).
    async fn find_started(&self, run: &JobRun<'_>, attempt: u32) -> Option<JobRecord> {
        match self.exec.recover(&self.request(run, attempt)).await {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(node = %run.spec.node_id, repeat = run.repeat, error = %e, "could not look for an already started job");
                None
            }
        }
    }

    /// Waits for the job; `None` when the ending is already on disk (`exit_code`).
    pub(crate) async fn wait_job(
        &self,
        run: &JobRun<'_>,
        ctx: &RunContext,
    ) -> Result<Option<JobEnding>, Stop> {
        let id = run.spec.node_id.as_str();
        let run_dir = &run.dir;
        // A job this engine did not watch: ask the executor before waiting.
        let mut probe_first = ctx.resumed;
        loop {
            let record = match self.record(run_dir)? {
                Some(record) => record,
                None => match self.cut_short_relaunch(run_dir)? {
                    Some(Relaunch::Recover) => {
                        self.launch_or_recover(run, ctx).await?;
                        probe_first = true;
                        continue;
                    }
                    Some(Relaunch::Launch(attempt)) => {
                        tracing::warn!(node = id, attempt, "finishing a relaunch cut short");
                        self.launch(run, attempt, ctx).await?;
                        probe_first = false;
                        continue;
                    }
                    None => {
                        return Ok(Some(JobEnding::Lost("no job.json in the run dir".into())));
                    }
                },
            };
            ctx.annotate(JobAnnotation {
                job_id: record.job_id.clone(),
            });
            let req = self.request(run, record.attempt);
            if probe_first && self.cancelled_by_engine(run_dir, record.attempt)? {
                match read_exit_code(run_dir) {
                    // It had ended on its own before the kill.
                    Some(code) if (0..128).contains(&code) => return Ok(None),
                    _ => {
                        tracing::info!(
                            node = id,
                            attempt = record.attempt,
                            "the job was cancelled by the engine's stop: relaunching it (not a lost attempt)"
                        );
                        self.relaunch(run, record.attempt, ctx).await?;
                        probe_first = false;
                        continue;
                    }
                }
            }
            let outcome = if probe_first {
                let probed = self.exec.probe(&req, &record).await;
                match probed {
                    Ok(Probe::Ended(_)) => return Ok(None),
                    Ok(Probe::Dead(reason)) => WaitOutcome::Ended(JobEnd::Lost { reason }),
                    Ok(Probe::Running) => self.wait_once(&req, &record, ctx).await?,
                    Err(e) => {
                        return Err(exec_stop(e, FailureKind::Unexpected, NodeStatus::Running));
                    }
                }
            } else {
                self.wait_once(&req, &record, ctx).await?
            };
            probe_first = false;
            match outcome {
                WaitOutcome::Detached => return Err(Stop::Interrupted),
                WaitOutcome::Ended(JobEnd::Exited { code }) => {
                    return Ok((read_exit_code(&req.run_dir) != Some(code))
                        .then_some(JobEnding::Exited(code)));
                }
                WaitOutcome::Ended(JobEnd::TimedOut) => return Ok(Some(JobEnding::TimedOut)),
                WaitOutcome::Ended(JobEnd::Cancelled) => {
                    // Killed because the engine is stopping with --cancel-jobs-on-stop: not the
                    // job's fault and not a lost attempt; relaunched on resume.
                    if let Err(e) = self.mark_cancelled(run_dir, record.attempt) {
                        tracing::warn!(node = id, "could not mark the job as cancelled: {e}");
                    }
                    return Err(Stop::Interrupted);
                }
                WaitOutcome::Ended(JobEnd::Lost { reason }) => {
                    if read_exit_code(&req.run_dir).is_some() {
                        return Ok(None);
                    }
                    let cancelled = cancelled_attempts(run_dir, record.attempt);
                    let lost = record.attempt.saturating_sub(cancelled);
                    if lost >= MAX_ATTEMPTS {
                        let also = if cancelled > 0 {
                            format!(", {cancelled} more cancelled by the engine's stop")
                        } else {
                            String::new()
                        };
                        return Ok(Some(JobEnding::Lost(format!(
                            "{reason} (after {lost} attempts{also})"
                        ))));
                    }
                    tracing::warn!(node = id, attempt = record.attempt, %reason, "job is dead with no exit code: relaunching as a new attempt");
                    self.relaunch(run, record.attempt, ctx).await?;
                }
            }
        }
    }

    /// Archives attempt `n` (idempotent) and launches attempt `n + 1`.
    async fn relaunch(&self, run: &JobRun<'_>, n: u32, ctx: &RunContext) -> Result<(), Stop> {
        archive_attempt(&self.wd, &run.dir, n)?;
        self.launch(run, n + 1, ctx).await
    }

    /// A running node without `job.json`: a relaunch cut short between archiving attempt N
    /// and recording attempt N+1 (`Some`), or a job that left nothing (`None`).
    fn cut_short_relaunch(&self, run_dir: &Path) -> Result<Option<Relaunch>, NodeError> {
        let archived = archived_attempts(run_dir);
        if archived == 0 {
            return Ok(None);
        }
        match self.marker_attempt(run_dir)? {
            Some(a) if a > archived => Ok(Some(Relaunch::Recover)),
            Some(_) => {
                // Half archived: finish moving attempt N's files.
                archive_attempt(&self.wd, run_dir, archived)?;
                Ok(Some(Relaunch::Launch(archived + 1)))
            }
            None => Ok(Some(Relaunch::Launch(archived + 1))),
        }
    }

    fn mark_cancelled(&self, run_dir: &Path, attempt: u32) -> Result<(), NodeError> {
        let path = run_dir.join(CANCELLED_MARKER);
        self.wd.check(&path).map_err(io_error(&path))?;
        autoresearch_engine::atomic::write_json_atomic(&path, &AttemptMarker::now(attempt))
            .map_err(io_error(&path))
    }

    /// Whether the engine's own stop killed attempt `attempt`.
    fn cancelled_by_engine(&self, run_dir: &Path, attempt: u32) -> Result<bool, NodeError> {
        let path = run_dir.join(CANCELLED_MARKER);
        self.wd.check(&path).map_err(io_error(&path))?;
        Ok(
            read_json_capped::<AttemptMarker>(&path, MAX_SMALL_FILE)?.map(|m| m.attempt)
                == Some(attempt),
        )
    }

    async fn wait_once(
        &self,
        req: &JobRequest,
        record: &JobRecord,
        ctx: &RunContext,
    ) -> Result<WaitOutcome, Stop> {
        self.exec
            .wait(req, record, ctx.cancel.clone())
            .await
            .map_err(|e| exec_stop(e, FailureKind::Unexpected, NodeStatus::Running))
    }

    pub(crate) fn write_ending(&self, run_dir: &Path, ending: &JobEnding) -> Result<(), NodeError> {
        let path = run_dir.join("ending.json");
        self.wd.check(&path).map_err(io_error(&path))?;
        autoresearch_engine::atomic::write_json_atomic(&path, &EndingFile::from(ending))
            .map_err(io_error(&path))
    }

    /// How the job of `run_dir` ended: `ending.json`, else its `exit_code`, else lost.
    pub(crate) fn read_ending(&self, run_dir: &Path) -> Result<JobEnding, NodeError> {
        let path = run_dir.join("ending.json");
        self.wd.check(&path).map_err(io_error(&path))?;
        let ending = match read_json_capped::<EndingFile>(&path, MAX_SMALL_FILE) {
            Ok(ending) => ending,
            // A torn or hand-damaged file: the exit code decides, as when it is missing.
            Err(NodeError::Invalid { .. }) => None,
            Err(e) => return Err(e),
        };
        Ok(match ending {
            Some(EndingFile::Exited { code }) => JobEnding::Exited(code),
            Some(EndingFile::TimedOut) => JobEnding::TimedOut,
            Some(EndingFile::Lost { reason }) => JobEnding::Lost(reason),
            None => match read_exit_code(run_dir) {
                Some(code) => JobEnding::Exited(code),
                None => JobEnding::Lost("the job left no exit code".into()),
            },
        })
    }
}

/// `runs/<id>/ending.json`: how a run's job ended, written once it did.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub(crate) enum EndingFile {
    /// It exited with `code`.
    Exited {
        /// The exit code.
        code: i32,
    },
    /// It ran past `job.timeout_s`.
    #[serde(rename = "timeout")]
    TimedOut,
    /// It was lost (why).
    Lost {
        /// Why.
        reason: String,
    },
}

impl From<&JobEnding> for EndingFile {
    fn from(e: &JobEnding) -> Self {
        match e {
            JobEnding::Exited(code) => EndingFile::Exited { code: *code },
            JobEnding::TimedOut => EndingFile::TimedOut,
            JobEnding::Lost(reason) => EndingFile::Lost {
                reason: reason.clone(),
            },
        }
    }
}

fn write_record(wd: &Workdir, run_dir: &Path, record: &JobRecord) -> Result<(), NodeError> {
    let path = run_dir.join("job.json");
    wd.check(&path).map_err(io_error(&path))?;
    autoresearch_engine::atomic::write_json_atomic(&path, record).map_err(io_error(&path))
}

/// The highest N of the `attempt-N/` folders of a run dir (0 when none).
pub(crate) fn archived_attempts(run_dir: &Path) -> u32 {
    let Ok(rd) = std::fs::read_dir(run_dir) else {
        return 0;
    };
    rd.filter_map(Result::ok)
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_prefix("attempt-")?
                .parse::<u32>()
                .ok()
        })
        .max()
        .unwrap_or(0)
}

/// How many attempts before `attempt` the engine's own stop cancelled.
fn cancelled_attempts(run_dir: &Path, attempt: u32) -> u32 {
    (1..attempt)
        .filter(|n| {
            std::fs::symlink_metadata(run_dir.join(format!("attempt-{n}")).join(CANCELLED_MARKER))
                .is_ok()
        })
        .count() as u32
}

/// Moves attempt `attempt`'s files to `runs/<id>/attempt-<attempt>/`. Idempotent: files
/// already moved are skipped, so a crash halfway is finished by calling it again.
fn archive_attempt(wd: &Workdir, run_dir: &Path, attempt: u32) -> Result<(), NodeError> {
    let dest = run_dir.join(format!("attempt-{attempt}"));
    wd.create_dir(&dest).map_err(io_error(&dest))?;
    for name in ATTEMPT_FILES {
        let from = run_dir.join(name);
        match std::fs::symlink_metadata(&from) {
            Ok(_) => std::fs::rename(&from, dest.join(name)).map_err(io_error(&from))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error(&from)(e)),
        }
    }
    autoresearch_engine::atomic::sync_dir(&dest).map_err(io_error(&dest))?;
    autoresearch_engine::atomic::sync_dir(run_dir).map_err(io_error(run_dir))
}
