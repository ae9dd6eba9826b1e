//! Launching, re-attaching to and waiting for a node's job, so that a job is launched once.
//!
//! - Before launching, `runs/<id>/launch.json` marks the attempt. On resume in `launching`, a
//!   job that may have started (its `job.json`, the wrapper's `pid` file, or a Slurm job with the
//!   node's name) is re-attached instead of launched again.
//! - The only relaunch is of a job known dead with no exit code; it becomes attempt N+1, and the
//!   previous attempt's files move to `runs/<id>/attempt-N/`.
//! - How a job ended is kept in `runs/<id>/exit_code` (written by the wrapper) or, for a
//!   timeout or a lost job, in `runs/<id>/ending.json`, so analysis can resume too.

use std::path::Path;

use autoresearch_engine::RunContext;
use serde_json::json;

use super::lifecycle::{Fail, Stop};
use super::{ExperimentWorkflow, now_millis};
use crate::executor::{Executor, JobEnd, JobRequest, Probe, WaitOutcome, read_exit_code};
use crate::model::{FailureKind, JobRecord, NodeSpec, NodeStatus};

/// Jobs are relaunched at most this many times after being found dead.
const MAX_ATTEMPTS: u32 = 3;

/// How a job ended, as analysis needs it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum JobEnding {
    Exited(i32),
    TimedOut,
    Lost(String),
}

impl ExperimentWorkflow {
    fn request(&self, spec: &NodeSpec, attempt: u32) -> JobRequest {
        let run_dir = self.wd.run_dir(&spec.node_id);
        let mut env: Vec<(String, String)> = vec![
            ("AUTORESEARCH_RUN_DIR".into(), run_dir.display().to_string()),
            ("AUTORESEARCH_NODE_ID".into(), spec.node_id.clone()),
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
            cwd: self.config.job.cwd.clone(),
            env,
            timeout: self.config.job.timeout(),
            attempt,
            log_limit_bytes: self.config.job.log_limit_mb.saturating_mul(1 << 20),
        }
    }

    fn record(&self, id: &str) -> Option<JobRecord> {
        super::nodes::read_json::<JobRecord>(&self.wd.run_dir(id).join("job.json"))
            .ok()
            .flatten()
    }

    /// Launches the node's job, unless an earlier engine already did (then re-attaches).
    pub(crate) async fn launch_or_recover(
        &self,
        spec: &NodeSpec,
        ctx: &RunContext,
    ) -> Result<(), Stop> {
        let id = spec.node_id.as_str();
        let run_dir = self.wd.run_dir(id);
        if let Some(record) = self.record(id) {
            ctx.annotate(json!({ "job_id": record.job_id }));
            return Ok(());
        }
        let marker = run_dir.join("launch.json");
        let attempt = super::nodes::read_json::<serde_json::Value>(&marker)
            .ok()
            .flatten()
            .and_then(|v| v.get("attempt").and_then(|a| a.as_u64()))
            .map(|a| a as u32);
        if let Some(attempt) = attempt
            && let Some(record) = self.find_started(spec, attempt).await
        {
            write_record(&run_dir, &record)?;
            ctx.annotate(json!({ "job_id": record.job_id }));
            return Ok(());
        }
        self.launch(spec, attempt.unwrap_or(1), ctx).await
    }

    async fn launch(&self, spec: &NodeSpec, attempt: u32, ctx: &RunContext) -> Result<(), Stop> {
        let run_dir = self.wd.run_dir(&spec.node_id);
        autoresearch_engine::atomic::write_json_atomic(
            &run_dir.join("launch.json"),
            &json!({ "attempt": attempt, "at": now_millis() }),
        )
        .map_err(|e| Fail::new(FailureKind::Launch, NodeStatus::Launching, e.to_string()))?;
        let req = self.request(spec, attempt);
        let record = self.exec.launch(&req).await.map_err(|e| {
            Fail::new(FailureKind::Launch, NodeStatus::Launching, e.to_string())
                .details(json!({ "command": spec.command }))
        })?;
        ctx.annotate(json!({ "job_id": record.job_id }));
        Ok(())
    }

    /// Evidence that an earlier engine started the job before it could write `job.json`: the
    /// executor's `recover` (exact match on this run dir and attempt; it answers without
    /// waiting, so repeated restarts cannot hold a slot).
    async fn find_started(&self, spec: &NodeSpec, attempt: u32) -> Option<JobRecord> {
        match self.exec.recover(&self.request(spec, attempt)).await {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(node = %spec.node_id, error = %e, "could not look for an already started job");
                None
            }
        }
    }

    /// Waits for the job; `None` when the ending is already on disk (`exit_code`).
    pub(crate) async fn wait_job(
        &self,
        spec: &NodeSpec,
        ctx: &RunContext,
    ) -> Result<Option<JobEnding>, Stop> {
        let id = spec.node_id.as_str();
        loop {
            let Some(record) = self.record(id) else {
                return Ok(Some(JobEnding::Lost("no job.json in the run dir".into())));
            };
            ctx.annotate(json!({ "job_id": record.job_id }));
            let req = self.request(spec, record.attempt);
            let exec = &self.exec;
            let outcome = if ctx.resumed {
                match exec.probe(&req, &record).await {
                    Ok(Probe::Ended(_)) => return Ok(None),
                    Ok(Probe::Dead(reason)) => WaitOutcome::Ended(JobEnd::Lost { reason }),
                    Ok(Probe::Running) => self.wait_once(&req, &record, ctx).await?,
                    Err(e) => {
                        return Err(Fail::new(
                            FailureKind::Unexpected,
                            NodeStatus::Running,
                            e.to_string(),
                        )
                        .into());
                    }
                }
            } else {
                self.wait_once(&req, &record, ctx).await?
            };
            match outcome {
                WaitOutcome::Detached => return Err(Stop::Interrupted),
                WaitOutcome::Ended(JobEnd::Exited { code }) => {
                    return Ok((read_exit_code(&req.run_dir) != Some(code))
                        .then_some(JobEnding::Exited(code)));
                }
                WaitOutcome::Ended(JobEnd::TimedOut) => return Ok(Some(JobEnding::TimedOut)),
                WaitOutcome::Ended(JobEnd::Cancelled) => {
                    // Killed because the engine is stopping with --cancel-jobs-on-stop: resumable.
                    return Err(Stop::Interrupted);
                }
                WaitOutcome::Ended(JobEnd::Lost { reason }) => {
                    if read_exit_code(&req.run_dir).is_some() {
                        return Ok(None);
                    }
                    if record.attempt >= MAX_ATTEMPTS {
                        return Ok(Some(JobEnding::Lost(format!(
                            "{reason} (after {} attempts)",
                            record.attempt
                        ))));
                    }
                    tracing::warn!(node = id, attempt = record.attempt, %reason, "job is dead with no exit code: relaunching as a new attempt");
                    archive_attempt(&req.run_dir, record.attempt).map_err(|e| {
                        Fail::new(FailureKind::Unexpected, NodeStatus::Running, e.to_string())
                    })?;
                    self.launch(spec, record.attempt + 1, ctx).await?;
                }
            }
        }
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
            .map_err(|e| {
                Fail::new(FailureKind::Unexpected, NodeStatus::Running, e.to_string()).into()
            })
    }

    pub(crate) fn write_ending(
        &self,
        id: &str,
        ending: &JobEnding,
    ) -> Result<(), super::nodes::NodeError> {
        let value = match ending {
            JobEnding::Exited(code) => json!({ "kind": "exited", "code": code }),
            JobEnding::TimedOut => json!({ "kind": "timeout" }),
            JobEnding::Lost(reason) => json!({ "kind": "lost", "reason": reason }),
        };
        let path = self.wd.run_dir(id).join("ending.json");
        autoresearch_engine::atomic::write_json_atomic(&path, &value)
            .map_err(|source| super::nodes::NodeError::Io { path, source })
    }

    pub(crate) fn read_ending(&self, id: &str) -> JobEnding {
        let run_dir = self.wd.run_dir(id);
        let ending = super::nodes::read_json::<serde_json::Value>(&run_dir.join("ending.json"))
            .ok()
            .flatten();
        match ending
            .as_ref()
            .and_then(|v| v.get("kind"))
            .and_then(|k| k.as_str())
        {
            Some("timeout") => JobEnding::TimedOut,
            Some("lost") => JobEnding::Lost(
                ending
                    .as_ref()
                    .and_then(|v| v.get("reason"))
                    .and_then(|r| r.as_str())
                    .unwrap_or("unknown")
                    .to_string(),
            ),
            Some("exited") => JobEnding::Exited(
                ending
                    .as_ref()
                    .and_then(|v| v.get("code"))
                    .and_then(|c| c.as_i64())
                    .unwrap_or(-1) as i32,
            ),
            _ => match read_exit_code(&run_dir) {
                Some(code) => JobEnding::Exited(code),
                None => JobEnding::Lost("the job left no exit code".into()),
            },
        }
    }
}

fn write_record(run_dir: &Path, record: &JobRecord) -> Result<(), Stop> {
    autoresearch_engine::atomic::write_json_atomic(&run_dir.join("job.json"), record).map_err(|e| {
        Fail::new(
            FailureKind::Unexpected,
            NodeStatus::Launching,
            e.to_string(),
        )
        .into()
    })
}

/// Moves a dead attempt's files to `runs/<id>/attempt-<n>/`.
fn archive_attempt(run_dir: &Path, attempt: u32) -> std::io::Result<()> {
    let dest = run_dir.join(format!("attempt-{attempt}"));
    autoresearch_engine::atomic::create_dir_durable(&dest)?;
    for name in [
        "job.json",
        "pid",
        "stdout.log",
        "stderr.log",
        "launch.json",
        "ending.json",
    ] {
        let from = run_dir.join(name);
        if from.exists() {
            std::fs::rename(&from, dest.join(name))?;
        }
    }
    autoresearch_engine::atomic::sync_dir(run_dir)
}
