//! Crash safety of the submission: before `sbatch` runs, a `submitting` marker is written into
//! the run dir; every job carries its node id as its Slurm job name and a comment naming the run
//! dir and attempt, so a submission whose `job.json` was never written is found again and
//! adopted instead of being submitted a second time.

use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::command::{cmd_error, current_uid};
use super::executor::SlurmExecutor;
use super::parse::{SlurmJob, newest};
use super::script::job_comment;
use crate::executor::{ExecError, JOB_RECORD, JobRequest, blocking, read_record};
use crate::model::JobRecord;

/// File name of the marker written right before `sbatch` runs and removed once `job.json` is
/// written. While it exists, a job for this run dir may have been submitted.
pub const SUBMITTING_MARKER: &str = "submitting";

/// Out files older than the `submitting` marker by more than this belong to an earlier attempt.
pub(super) const OUT_FILE_SLACK: Duration = Duration::from_secs(2);

/// The `submitting` marker's content.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Marker {
    /// The attempt being submitted.
    pub attempt: u32,
    /// When the marker was written.
    pub created_at: String,
    /// The job's Slurm comment.
    pub comment: String,
}

impl SlurmExecutor {
    /// The id of the newest job of the current user named `node_id` that Slurm still knows
    /// (queued, running, or finished less than `MinJobAge` ago), if any.
    ///
    /// Node ids repeat across workdirs (every run has a baseline), so prefer
    /// [`SlurmExecutor::find_job`], which also matches the run dir and attempt.
    pub async fn find_by_name(&self, node_id: &str) -> Result<Option<String>, ExecError> {
        let jobs = self.jobs_named(node_id).await?;
        Ok(newest(jobs.into_iter().map(|(id, _)| id)))
    }

    /// The id of the job submitted for exactly this request (node id, run dir and attempt), if
    /// Slurm still knows it; otherwise, if a `submitting` marker for this attempt exists, the
    /// newest `slurm-<id>.out` file written into the run dir after that marker.
    pub async fn find_job(&self, req: &JobRequest) -> Result<Option<String>, ExecError> {
        let comment = job_comment(req)?;
        let jobs = self.jobs_named(&req.node_id).await?;
        if let Some(id) = newest(
            jobs.into_iter()
                .filter(|(_, c)| c == &comment)
                .map(|(id, _)| id),
        ) {
            return Ok(Some(id));
        }
        let run_dir = req.run_dir.clone();
        let attempt = req.attempt;
        blocking(req.run_dir.clone(), move || {
            Ok(out_file_job(&run_dir, attempt))
        })
        .await
    }

    /// Recovers the record of a job already submitted for this request, without submitting
    /// anything: `job.json` when it exists for this attempt; otherwise, when a `submitting`
    /// marker shows that a submission may have happened, the job found by
    /// [`SlurmExecutor::find_job`] (its `job.json` is then written and the marker removed).
    /// `None` means no job was submitted for this attempt: launching is safe.
    ///
    /// [`Executor::launch`] calls this first, so launching again after a crash never submits a
    /// duplicate.
    pub(super) async fn recover_job(
        &self,
        req: &JobRequest,
    ) -> Result<Option<JobRecord>, ExecError> {
        let run_dir = req.run_dir.clone();
        let attempt = req.attempt;
        let (existing, marker) = blocking(req.run_dir.clone(), move || {
            let existing = read_record(&run_dir, "slurm", attempt)?;
            Ok((existing, read_marker(&run_dir)))
        })
        .await?;
        if let Some(rec) = existing
            && SlurmJob::from_record(&rec).is_ok()
        {
            return Ok(Some(rec));
        }
        let Some(marker) = marker else {
            return Ok(None);
        };
        let Some(found) = self.find_job(req).await? else {
            return Ok(None);
        };
        let job = SlurmJob::parse(&found).ok_or_else(|| ExecError::Slurm {
            command: "squeue".into(),
            message: format!("unexpected Slurm job id {found:?}"),
        })?;
        tracing::info!(
            node = %req.node_id,
            slurm_id = %job.id,
            "adopting a Slurm job submitted before job.json was written"
        );
        let started_at = if marker.attempt == req.attempt {
            marker.created_at
        } else {
            now_rfc3339()
        };
        let record = make_record(req, &job, started_at);
        self.persist_record(req, &record).await?;
        Ok(Some(record))
    }

    /// Jobs of the current user named `name` that Slurm knows: `(id, comment)`.
    pub(super) async fn jobs_named(&self, name: &str) -> Result<Vec<(String, String)>, ExecError> {
        let args: Vec<OsString> = vec![
            "--noheader".into(),
            "--states=all".into(),
            format!("--user={}", current_uid()).into(),
            format!("--name={name}").into(),
            "--format=%i|%k".into(),
        ];
        let out = self.run_retrying("squeue", &args).await?;
        if !out.success {
            return Err(cmd_error("squeue", &args, &out));
        }
        Ok(out
            .stdout
            .lines()
            .filter(|l| !l.starts_with("CLUSTER:"))
            .filter_map(|l| {
                let (id, comment) = l.split_once('|').unwrap_or((l, ""));
                let id = id.trim();
                (!id.is_empty()).then(|| (id.to_string(), comment.to_string()))
            })
            .collect())
    }

    pub(super) async fn persist_record(
        &self,
        req: &JobRequest,
        record: &JobRecord,
    ) -> Result<(), ExecError> {
        let run_dir = req.run_dir.clone();
        let record = record.clone();
        blocking(req.run_dir.clone(), move || {
            let path = run_dir.join(JOB_RECORD);
            autoresearch_engine::atomic::write_json_atomic(&path, &record)
                .map_err(|source| ExecError::Io { path, source })?;
            let marker = run_dir.join(SUBMITTING_MARKER);
            match std::fs::remove_file(&marker) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(ExecError::Io {
                        path: marker,
                        source,
                    });
                }
            }
            Ok(())
        })
        .await
    }
}

pub(super) fn make_record(req: &JobRequest, job: &SlurmJob, started_at: String) -> JobRecord {
    JobRecord {
        job_id: format!("slurm:{}", job.id),
        executor: "slurm".to_string(),
        pid: None,
        pid_start_ticks: None,
        slurm_id: Some(job.stored()),
        host: autoresearch_engine::state::hostname(),
        started_at,
        attempt: req.attempt,
    }
}

pub(super) fn read_marker(run_dir: &Path) -> Option<Marker> {
    let bytes = std::fs::read(run_dir.join(SUBMITTING_MARKER)).ok()?;
    match serde_json::from_slice(&bytes) {
        Ok(m) => Some(m),
        // A marker we cannot read still means "a submission may have happened".
        Err(_) => Some(Marker {
            attempt: 0,
            created_at: now_rfc3339(),
            comment: String::new(),
        }),
    }
}

/// The newest `slurm-<id>.out` in the run dir written after this attempt's `submitting` marker.
pub(super) fn out_file_job(run_dir: &Path, attempt: u32) -> Option<String> {
    let marker_path = run_dir.join(SUBMITTING_MARKER);
    let marker = read_marker(run_dir)?;
    if marker.attempt != attempt {
        return None;
    }
    let since = std::fs::metadata(&marker_path)
        .and_then(|m| m.modified())
        .ok()?
        .checked_sub(OUT_FILE_SLACK)?;
    let entries = std::fs::read_dir(run_dir).ok()?;
    newest(entries.filter_map(|e| {
        let e = e.ok()?;
        let name = e.file_name().into_string().ok()?;
        let id = name.strip_prefix("slurm-")?.strip_suffix(".out")?;
        SlurmJob::parse(id)?;
        let modified = e.metadata().ok()?.modified().ok()?;
        (modified >= since).then(|| id.to_string())
    }))
}

pub(super) use crate::workflow::now_millis as now_rfc3339;
