//! Slurm executor: runs each experiment's job as a Slurm batch job.
//!
//! The engine stays on the login node; every job is submitted with `sbatch --parsable` as a
//! generated batch script (`runs/<id>/job.sbatch`) that runs the shared [`wrapper`] on the compute
//! node, so the job itself writes `pid`, `stdout.log`, `stderr.log` and finally `exit_code` into
//! its run dir. The run dir must therefore be on a filesystem shared between the login node and
//! the compute nodes, at the same path.
//!
//! State comes from `squeue` (while the job is queued or running) and `scontrol show job` (for
//! `MinJobAge` seconds after it ended); the `exit_code` file is always the final truth. Slurm
//! gives no exit notification, so [`Executor::wait`] polls with a modest, growing interval.
//! Cancel and timeout use `scancel`.
//!
//! Transient failures of the Slurm commands (controller unreachable, socket timeouts, a command
//! that could not be spawned, ...) are retried with exponential backoff; only then do they become
//! an [`ExecError::Slurm`] naming the command and its stderr.
//!
//! Crash safety of the submission: before `sbatch` runs, a `submitting` marker is written into the
//! run dir. Every job carries its node id as its Slurm job name and a comment that names the run
//! dir and attempt, so a submission whose `job.json` was never written (engine crash, or an
//! `sbatch` that failed with a timeout after the controller had accepted the job) is found again
//! and adopted instead of being submitted a second time (see [`SlurmExecutor::recover`]).

use std::ffi::OsString;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::{
    BoxFut, ExecError, Executor, JobEnd, JobRequest, Probe, WaitOutcome, read_exit_code, wrapper,
};
use crate::model::JobRecord;

/// File name of the generated batch script inside the run dir.
pub const BATCH_SCRIPT_NAME: &str = "job.sbatch";

/// File name of the marker written right before `sbatch` runs and removed once `job.json` is
/// written. While it exists, a job for this run dir may have been submitted.
pub const SUBMITTING_MARKER: &str = "submitting";

/// Minutes added to `job.timeout_s` for Slurm's own `--time` limit, so the engine's timeout
/// (which `scancel`s the job and records a timeout) normally fires first.
pub const TIME_LIMIT_MARGIN_MIN: u64 = 1;

/// Longest time one Slurm command may run before it is killed and treated as a transient failure.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);
/// First and largest poll interval of `wait`.
const POLL_MIN: Duration = Duration::from_millis(250);
const POLL_MAX: Duration = Duration::from_secs(2);
/// How long `wait` tolerates a Slurm controller that keeps failing before giving up.
const MAX_OUTAGE: Duration = Duration::from_secs(600);
/// After Slurm reports a job finished, how long to look for a late `exit_code` file (a shared
/// filesystem may show the file written on the compute node with some delay).
const EXIT_CODE_GRACE: Duration = Duration::from_secs(10);
/// How long `kill` waits for `squeue` to stop listing a cancelled job.
const KILL_WAIT: Duration = Duration::from_secs(90);
/// Out files older than the `submitting` marker by more than this belong to an earlier attempt.
const OUT_FILE_SLACK: Duration = Duration::from_secs(2);

/// Job states in which the job still exists on the cluster (it may still write its files).
const ACTIVE_STATES: &[&str] = &[
    "PENDING",
    "RUNNING",
    "CONFIGURING",
    "COMPLETING",
    "SUSPENDED",
    "STOPPED",
    "REQUEUED",
    "REQUEUE_HOLD",
    "REQUEUE_FED",
    "RESIZING",
    "SIGNALING",
    "STAGE_OUT",
    "RESV_DEL_HOLD",
    "SPECIAL_EXIT",
];

/// stderr fragments (lowercase) of Slurm command failures worth retrying.
const TRANSIENT_PATTERNS: &[&str] = &[
    "socket timed out",
    "timed out on send/recv",
    "unable to contact slurm controller",
    "transient",
    "connection refused",
    "connection reset",
    "zero bytes were transmitted",
    "resource temporarily unavailable",
    "temporarily unavailable",
    "communication connection failure",
    "slurmctld not responding",
    "try again",
    "munge encode failed",
    "munge decode failed",
];

/// The `executor.slurm` settings. Every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SlurmConfig {
    /// `--partition`; the cluster's default partition when unset.
    pub partition: Option<String>,
    /// `--account`; the user's default account when unset.
    pub account: Option<String>,
    /// Extra `sbatch` arguments, passed on the command line exactly as given (they override the
    /// script's `#SBATCH` lines), e.g. `["--cpus-per-task=4", "--mem=8G"]`.
    pub sbatch_args: Vec<String>,
    /// `--time` in minutes. When unset it is derived from `job.timeout_s`, rounded up to minutes
    /// plus [`TIME_LIMIT_MARGIN_MIN`]; with neither, the partition's default applies.
    pub time_limit_min: Option<u64>,
}

/// Runs jobs through Slurm (`sbatch`, `squeue`, `scontrol`, `scancel`).
#[derive(Debug, Clone)]
pub struct SlurmExecutor {
    cfg: SlurmConfig,
    cancel_jobs_on_stop: bool,
    bin_dir: Option<PathBuf>,
    tries: u32,
    first_backoff: Duration,
}

/// A Slurm job id as stored in `job.json`'s `slurm_id`: `<id>` or `<id>;<cluster>`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SlurmJob {
    id: String,
    cluster: Option<String>,
}

impl SlurmJob {
    fn parse(s: &str) -> Option<SlurmJob> {
        let s = s.trim();
        let (id, cluster) = match s.split_once(';') {
            Some((id, c)) => (id.trim(), Some(c.trim()).filter(|c| !c.is_empty())),
            None => (s, None),
        };
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit() || c == '_') {
            return None;
        }
        Some(SlurmJob {
            id: id.to_string(),
            cluster: cluster.map(str::to_string),
        })
    }

    fn from_record(record: &JobRecord) -> Result<SlurmJob, ExecError> {
        let raw = record
            .slurm_id
            .as_deref()
            .or_else(|| record.job_id.strip_prefix("slurm:"))
            .unwrap_or_default();
        SlurmJob::parse(raw).ok_or_else(|| {
            ExecError::Slurm(format!(
                "job record {:?} has no usable Slurm job id",
                record.job_id
            ))
        })
    }

    fn stored(&self) -> String {
        match &self.cluster {
            Some(c) => format!("{};{}", self.id, c),
            None => self.id.clone(),
        }
    }

    /// `-M <cluster>` when the job lives on a named cluster.
    fn cluster_args(&self) -> Vec<OsString> {
        match &self.cluster {
            Some(c) => vec!["-M".into(), c.into()],
            None => Vec::new(),
        }
    }

    /// `squeue` arguments that print just this job's state.
    fn squeue_state_args(&self) -> Vec<OsString> {
        let mut args = self.cluster_args();
        args.extend([
            "--noheader".into(),
            format!("--jobs={}", self.id).into(),
            "--format=%T".into(),
        ]);
        args
    }
}

/// What one Slurm command produced.
#[derive(Debug)]
struct CmdOut {
    success: bool,
    stdout: String,
    stderr: String,
}

/// One try of a Slurm command: finished (successfully or with a permanent error), or a transient
/// failure to retry.
enum Try {
    Done(CmdOut),
    Transient(String),
}

/// What the scheduler says about a job.
#[derive(Debug, Clone, PartialEq)]
enum Observed {
    /// Queued or running (the state word).
    Active(String),
    /// Finished, or no longer known (`state` is `None` then).
    Gone(SlurmEnd),
}

/// The facts about a finished job that `scontrol show job` still had.
#[derive(Debug, Clone, PartialEq, Default)]
struct SlurmEnd {
    state: Option<String>,
    exit_code: Option<String>,
    reason: Option<String>,
}

/// The `submitting` marker's content.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Marker {
    attempt: u32,
    created_at: String,
    comment: String,
}

impl SlurmExecutor {
    /// A Slurm executor with these settings. With `cancel_jobs_on_stop`, stopping the engine
    /// `scancel`s the jobs it waits on; otherwise they keep running and are re-attached on resume.
    pub fn new(cfg: SlurmConfig, cancel_jobs_on_stop: bool) -> Self {
        SlurmExecutor {
            cfg,
            cancel_jobs_on_stop,
            bin_dir: None,
            tries: 5,
            first_backoff: Duration::from_millis(200),
        }
    }

    /// Runs `sbatch`, `squeue`, `scontrol` and `scancel` from `dir` instead of `PATH` (site
    /// wrappers, tests).
    pub fn with_bin_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.bin_dir = Some(dir.into());
        self
    }

    /// Sets how often a transiently failing Slurm command is tried (at least once) and the first
    /// backoff, which doubles after each failure. Default: 5 tries, 200 ms.
    pub fn with_retry(mut self, tries: u32, first_backoff: Duration) -> Self {
        self.tries = tries.max(1);
        self.first_backoff = first_backoff;
        self
    }

    /// The settings this executor was built with.
    pub fn config(&self) -> &SlurmConfig {
        &self.cfg
    }

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
        blocking(move || Ok(out_file_job(&run_dir, attempt))).await
    }

    /// Recovers the record of a job already submitted for this request, without submitting
    /// anything: `job.json` when it exists for this attempt; otherwise, when a `submitting`
    /// marker shows that a submission may have happened, the job found by
    /// [`SlurmExecutor::find_job`] (its `job.json` is then written and the marker removed).
    /// `None` means no job was submitted for this attempt: launching is safe.
    ///
    /// [`Executor::launch`] calls this first, so launching again after a crash never submits a
    /// duplicate.
    pub async fn recover(&self, req: &JobRequest) -> Result<Option<JobRecord>, ExecError> {
        let run_dir = req.run_dir.clone();
        let (existing, marker) = blocking(move || {
            let job_json = run_dir.join("job.json");
            let existing = match std::fs::read(&job_json) {
                Ok(bytes) => serde_json::from_slice::<JobRecord>(&bytes).ok(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => {
                    return Err(ExecError::Io {
                        path: job_json,
                        source: e,
                    });
                }
            };
            Ok((existing, read_marker(&run_dir)))
        })
        .await?;
        if let Some(rec) = existing
            && rec.executor == "slurm"
            && rec.attempt == req.attempt
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
        let job = SlurmJob::parse(&found)
            .ok_or_else(|| ExecError::Slurm(format!("unexpected Slurm job id {found:?}")))?;
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
    async fn jobs_named(&self, name: &str) -> Result<Vec<(String, String)>, ExecError> {
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

    fn program(&self, name: &str) -> OsString {
        match &self.bin_dir {
            Some(dir) => dir.join(name).into_os_string(),
            None => name.into(),
        }
    }

    /// Runs a Slurm command once (never blocking the runtime, killed after [`COMMAND_TIMEOUT`]).
    async fn run_once(&self, name: &str, args: &[OsString]) -> Try {
        let mut cmd = tokio::process::Command::new(self.program(name));
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let output = match tokio::time::timeout(COMMAND_TIMEOUT, cmd.output()).await {
            Err(_) => {
                return Try::Transient(format!("no answer within {}s", COMMAND_TIMEOUT.as_secs()));
            }
            Ok(Err(e)) => return Try::Transient(format!("could not run {name}: {e}")),
            Ok(Ok(o)) => o,
        };
        let out = CmdOut {
            success: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        };
        if out.success {
            return Try::Done(out);
        }
        if output.status.code().is_none() {
            return Try::Transient(format!(
                "killed by a signal ({}); stderr: {}",
                output.status,
                out.stderr.trim()
            ));
        }
        if is_transient(&out.stderr) {
            return Try::Transient(out.stderr.trim().to_string());
        }
        Try::Done(out)
    }

    /// Runs a Slurm command, retrying transient failures with exponential backoff. `Ok` holds a
    /// success or a permanent failure (the caller interprets its stderr).
    async fn run_retrying(&self, name: &str, args: &[OsString]) -> Result<CmdOut, ExecError> {
        let mut backoff = self.first_backoff;
        let mut last = String::new();
        for attempt in 1..=self.tries {
            match self.run_once(name, args).await {
                Try::Done(out) => return Ok(out),
                Try::Transient(msg) => {
                    tracing::warn!(command = %show_cmd(name, args), attempt, error = %msg,
                        "transient Slurm failure");
                    last = msg;
                }
            }
            if attempt < self.tries {
                tokio::time::sleep(backoff).await;
                backoff = backoff.saturating_mul(2);
            }
        }
        Err(ExecError::Slurm(format!(
            "`{}` failed {} times: {}",
            show_cmd(name, args),
            self.tries,
            last
        )))
    }

    /// Asks `squeue`, then `scontrol show job`, what became of the job.
    async fn observe(&self, job: &SlurmJob) -> Result<Observed, ExecError> {
        let args = job.squeue_state_args();
        let out = self.run_retrying("squeue", &args).await?;
        if out.success {
            if let Some(state) = out
                .stdout
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty() && !l.starts_with("CLUSTER:"))
            {
                return Ok(Observed::Active(state.to_string()));
            }
        } else if !is_invalid_job(&out.stderr) {
            return Err(cmd_error("squeue", &args, &out));
        }
        // Not queued or running any more: scontrol still knows it for MinJobAge seconds.
        let mut args = job.cluster_args();
        args.extend([
            "show".into(),
            "job".into(),
            "-o".into(),
            job.id.clone().into(),
        ]);
        let out = self.run_retrying("scontrol", &args).await?;
        if !out.success {
            if is_invalid_job(&out.stderr) {
                return Ok(Observed::Gone(SlurmEnd::default()));
            }
            return Err(cmd_error("scontrol", &args, &out));
        }
        let end = parse_scontrol(&out.stdout);
        match &end.state {
            Some(s) if is_active_state(s) => Ok(Observed::Active(s.clone())),
            _ => Ok(Observed::Gone(end)),
        }
    }

    /// Decides how a job that Slurm no longer runs ended: its `exit_code` file (looked for a
    /// little longer when the job completed normally), else Slurm's final state.
    async fn settle(&self, req: &JobRequest, job: &SlurmJob, end: SlurmEnd) -> JobEnd {
        let may_have_exit_code = match end.state.as_deref() {
            Some(s) => {
                let s = base_state(s);
                s == "COMPLETED" || s == "FAILED"
            }
            None => true,
        };
        if let Some(code) = read_exit_code(&req.run_dir) {
            return JobEnd::Exited { code };
        }
        if may_have_exit_code {
            let until = Instant::now() + EXIT_CODE_GRACE;
            while Instant::now() < until {
                tokio::time::sleep(Duration::from_millis(250)).await;
                // Listing the directory makes NFS revalidate its cached entries.
                let _ = std::fs::read_dir(&req.run_dir).map(|d| d.count());
                if let Some(code) = read_exit_code(&req.run_dir) {
                    return JobEnd::Exited { code };
                }
            }
        }
        match end.state.as_deref().map(base_state) {
            Some("TIMEOUT") | Some("DEADLINE") => JobEnd::TimedOut,
            Some("CANCELLED") => JobEnd::Cancelled,
            Some(state) => JobEnd::Lost {
                reason: format!(
                    "Slurm job {} ended in state {state} (exit code {}, reason {}) and its \
                     wrapper wrote no exit_code{}",
                    job.id,
                    end.exit_code.as_deref().unwrap_or("unknown"),
                    end.reason.as_deref().unwrap_or("none"),
                    if state == "COMPLETED" || state == "FAILED" {
                        " (is the run dir on a filesystem shared with the compute nodes?)"
                    } else {
                        ""
                    }
                ),
            },
            None => JobEnd::Lost {
                reason: format!(
                    "Slurm no longer knows job {} (finished more than MinJobAge ago, or \
                     purged) and its wrapper wrote no exit_code",
                    job.id
                ),
            },
        }
    }

    /// `scancel`s the job, then waits (bounded) until `squeue` no longer lists it.
    async fn cancel(&self, job: &SlurmJob) -> Result<(), ExecError> {
        let mut args = job.cluster_args();
        args.push(job.id.clone().into());
        let out = self.run_retrying("scancel", &args).await?;
        if !out.success {
            let err = out.stderr.to_ascii_lowercase();
            if !(is_invalid_job(&out.stderr) || err.contains("already completing or completed")) {
                return Err(cmd_error("scancel", &args, &out));
            }
        }
        let until = Instant::now() + KILL_WAIT;
        let mut interval = Duration::from_millis(200);
        loop {
            match self.squeue_lists(job).await {
                Ok(false) => return Ok(()),
                Ok(true) => {}
                Err(e) => tracing::warn!(slurm_id = %job.id, error = %e,
                    "could not check that the cancelled job is gone"),
            }
            if Instant::now() >= until {
                tracing::warn!(slurm_id = %job.id, "job still listed by squeue {}s after scancel",
                    KILL_WAIT.as_secs());
                return Ok(());
            }
            tokio::time::sleep(interval).await;
            interval = (interval * 3 / 2).min(Duration::from_secs(1));
        }
    }

    /// Whether `squeue` still lists the job (in any state).
    async fn squeue_lists(&self, job: &SlurmJob) -> Result<bool, ExecError> {
        let args = job.squeue_state_args();
        let out = self.run_retrying("squeue", &args).await?;
        if out.success {
            Ok(out
                .stdout
                .lines()
                .any(|l| !l.trim().is_empty() && !l.starts_with("CLUSTER:")))
        } else if is_invalid_job(&out.stderr) {
            Ok(false)
        } else {
            Err(cmd_error("squeue", &args, &out))
        }
    }

    /// Ends a job on timeout or cancel: its exit code if it had already finished on its own,
    /// else `scancel` and `otherwise`. An `exit_code` the wrapper writes after the `scancel`
    /// (its command died of the SIGTERM, 143) does not turn the cancel into an exit.
    async fn end_by_cancel(
        &self,
        req: &JobRequest,
        job: &SlurmJob,
        otherwise: JobEnd,
    ) -> Result<WaitOutcome, ExecError> {
        if let Some(code) = read_exit_code(&req.run_dir) {
            return Ok(WaitOutcome::Ended(JobEnd::Exited { code }));
        }
        self.cancel(job).await?;
        Ok(WaitOutcome::Ended(otherwise))
    }

    async fn persist_record(&self, req: &JobRequest, record: &JobRecord) -> Result<(), ExecError> {
        let run_dir = req.run_dir.clone();
        let record = record.clone();
        blocking(move || {
            let path = run_dir.join("job.json");
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

    async fn launch_impl(&self, req: &JobRequest) -> Result<JobRecord, ExecError> {
        if let Some(record) = self.recover(req).await? {
            tracing::info!(node = %req.node_id, job_id = %record.job_id,
                "job already submitted for this attempt; not submitting again");
            return Ok(record);
        }
        let script = batch_script(req, &self.cfg)?;
        let comment = job_comment(req)?;
        let run_dir = req.run_dir.clone();
        let attempt = req.attempt;
        let script_path = blocking(move || {
            wrapper::write_wrapper(&run_dir).map_err(|source| ExecError::Io {
                path: run_dir.join(wrapper::WRAPPER_NAME),
                source,
            })?;
            let script_path = run_dir.join(BATCH_SCRIPT_NAME);
            autoresearch_engine::atomic::write_atomic(&script_path, script.as_bytes()).map_err(
                |source| ExecError::Io {
                    path: script_path.clone(),
                    source,
                },
            )?;
            let marker = Marker {
                attempt,
                created_at: now_rfc3339(),
                comment,
            };
            let marker_path = run_dir.join(SUBMITTING_MARKER);
            autoresearch_engine::atomic::write_json_atomic(&marker_path, &marker).map_err(
                |source| ExecError::Io {
                    path: marker_path,
                    source,
                },
            )?;
            Ok(script_path)
        })
        .await?;

        let mut args: Vec<OsString> = vec!["--parsable".into()];
        args.extend(self.cfg.sbatch_args.iter().map(OsString::from));
        args.push(script_path.into_os_string());

        let mut backoff = self.first_backoff;
        let mut last = String::new();
        let mut submitted: Option<SlurmJob> = None;
        // `tries` submissions at most; after a transient failure, the controller may have queued
        // the job anyway (its reply was lost), so look for it before submitting again — and
        // never submit blind when that look-up fails. The extra round only looks.
        for round in 1..=self.tries + 1 {
            if round > 1 {
                tokio::time::sleep(backoff).await;
                backoff = backoff.saturating_mul(2);
                match self.find_job(req).await {
                    Ok(Some(id)) => {
                        if let Some(job) = SlurmJob::parse(&id) {
                            tracing::info!(node = %req.node_id, slurm_id = %id,
                                "sbatch failed but the job was queued; adopting it");
                            submitted = Some(job);
                            break;
                        }
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(node = %req.node_id, error = %e,
                            "could not check whether the failed sbatch queued the job");
                        last = format!("{last}; looking for an already queued job failed: {e}");
                        continue;
                    }
                }
            }
            if round > self.tries {
                break;
            }
            match self.run_once("sbatch", &args).await {
                Try::Done(out) if out.success => {
                    let job = parse_sbatch_output(&out.stdout).ok_or_else(|| {
                        ExecError::Slurm(format!(
                            "`{}` printed no job id: stdout {:?}, stderr {:?}",
                            show_cmd("sbatch", &args),
                            out.stdout.trim(),
                            out.stderr.trim()
                        ))
                    })?;
                    submitted = Some(job);
                    break;
                }
                Try::Done(out) => {
                    // Rejected for good (bad partition, account, options...): nothing was queued.
                    let marker = req.run_dir.join(SUBMITTING_MARKER);
                    let _ = blocking(move || {
                        let _ = std::fs::remove_file(marker);
                        Ok(())
                    })
                    .await;
                    return Err(ExecError::Launch(format!(
                        "`{}` rejected the job: {}",
                        show_cmd("sbatch", &args),
                        out.stderr.trim()
                    )));
                }
                Try::Transient(msg) => {
                    tracing::warn!(node = %req.node_id, round, error = %msg,
                        "transient sbatch failure");
                    last = msg;
                }
            }
        }
        let Some(job) = submitted else {
            // The marker stays: a later launch looks the job up again before submitting.
            return Err(ExecError::Slurm(format!(
                "`{}` failed {} times: {}",
                show_cmd("sbatch", &args),
                self.tries,
                last
            )));
        };
        let record = make_record(req, &job, now_rfc3339());
        self.persist_record(req, &record).await?;
        tracing::info!(node = %req.node_id, slurm_id = %job.id, "submitted Slurm job");
        Ok(record)
    }

    async fn wait_impl(
        &self,
        req: &JobRequest,
        record: &JobRecord,
        stop: CancellationToken,
    ) -> Result<WaitOutcome, ExecError> {
        let job = SlurmJob::from_record(record)?;
        let deadline = req.timeout.map(|t| deadline_of(&record.started_at, t));
        let mut interval = POLL_MIN;
        let mut failing_since: Option<Instant> = None;
        loop {
            if let Some(code) = read_exit_code(&req.run_dir) {
                return Ok(WaitOutcome::Ended(JobEnd::Exited { code }));
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                tracing::info!(node = %req.node_id, slurm_id = %job.id, "timeout: scancel");
                return self.end_by_cancel(req, &job, JobEnd::TimedOut).await;
            }
            if stop.is_cancelled() {
                return self.on_stop(req, &job).await;
            }
            match self.observe(&job).await {
                Ok(Observed::Active(_)) => failing_since = None,
                Ok(Observed::Gone(end)) => {
                    return Ok(WaitOutcome::Ended(self.settle(req, &job, end).await));
                }
                Err(e) => {
                    let since = *failing_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= MAX_OUTAGE {
                        return Err(e);
                    }
                    tracing::warn!(slurm_id = %job.id, error = %e,
                        "cannot reach Slurm; still watching the exit_code file");
                    interval = POLL_MAX;
                }
            }
            let mut nap = interval;
            if let Some(d) = deadline {
                nap = nap.min(d.saturating_duration_since(Instant::now()));
            }
            tokio::select! {
                _ = stop.cancelled() => return self.on_stop(req, &job).await,
                _ = tokio::time::sleep(nap) => {}
            }
            interval = (interval * 3 / 2).min(POLL_MAX);
        }
    }

    async fn on_stop(&self, req: &JobRequest, job: &SlurmJob) -> Result<WaitOutcome, ExecError> {
        if self.cancel_jobs_on_stop {
            tracing::info!(node = %req.node_id, slurm_id = %job.id, "stopping: scancel");
            self.end_by_cancel(req, job, JobEnd::Cancelled).await
        } else {
            Ok(WaitOutcome::Detached)
        }
    }

    async fn probe_impl(&self, req: &JobRequest, record: &JobRecord) -> Result<Probe, ExecError> {
        if let Some(code) = read_exit_code(&req.run_dir) {
            return Ok(Probe::Ended(code));
        }
        let job = SlurmJob::from_record(record)?;
        match self.observe(&job).await? {
            Observed::Active(_) => Ok(Probe::Running),
            Observed::Gone(end) => Ok(match self.settle(req, &job, end).await {
                JobEnd::Exited { code } => Probe::Ended(code),
                JobEnd::TimedOut => Probe::Dead(format!(
                    "Slurm job {} hit its time limit and its wrapper wrote no exit_code",
                    job.id
                )),
                JobEnd::Cancelled => Probe::Dead(format!(
                    "Slurm job {} was cancelled and its wrapper wrote no exit_code",
                    job.id
                )),
                JobEnd::Lost { reason } => Probe::Dead(reason),
            }),
        }
    }
}

impl Executor for SlurmExecutor {
    fn name(&self) -> &'static str {
        "slurm"
    }

    fn launch<'a>(&'a self, req: &'a JobRequest) -> BoxFut<'a, Result<JobRecord, ExecError>> {
        Box::pin(self.launch_impl(req))
    }

    fn wait<'a>(
        &'a self,
        req: &'a JobRequest,
        record: &'a JobRecord,
        stop: CancellationToken,
    ) -> BoxFut<'a, Result<WaitOutcome, ExecError>> {
        Box::pin(self.wait_impl(req, record, stop))
    }

    fn probe<'a>(
        &'a self,
        req: &'a JobRequest,
        record: &'a JobRecord,
    ) -> BoxFut<'a, Result<Probe, ExecError>> {
        Box::pin(self.probe_impl(req, record))
    }

    fn kill<'a>(&'a self, record: &'a JobRecord) -> BoxFut<'a, Result<(), ExecError>> {
        Box::pin(async move {
            let job = SlurmJob::from_record(record)?;
            self.cancel(&job).await
        })
    }
}

/// Runs blocking file work off the async runtime.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ExecError> + Send + 'static,
) -> Result<T, ExecError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ExecError::Launch(format!("file task failed: {e}")))?
}

fn make_record(req: &JobRequest, job: &SlurmJob, started_at: String) -> JobRecord {
    JobRecord {
        job_id: format!("slurm:{}", job.id),
        executor: "slurm".to_string(),
        pid: None,
        pid_start_ticks: None,
        slurm_id: Some(job.stored()),
        host: hostname(),
        started_at,
        attempt: req.attempt,
    }
}

fn read_marker(run_dir: &Path) -> Option<Marker> {
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
fn out_file_job(run_dir: &Path, attempt: u32) -> Option<String> {
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

/// The highest numeric job id.
fn newest(ids: impl Iterator<Item = String>) -> Option<String> {
    ids.max_by_key(|id| {
        id.split('_')
            .next()
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
    })
}

/// The job's Slurm comment: identifies the run dir and attempt a job was submitted for.
fn job_comment(req: &JobRequest) -> Result<String, ExecError> {
    let dir = utf8(&req.run_dir, "run dir")?;
    Ok(format!(
        "autoresearch attempt={} run_dir={dir}",
        req.attempt
    ))
}

fn utf8<'p>(p: &'p Path, what: &str) -> Result<&'p str, ExecError> {
    p.to_str().ok_or_else(|| {
        ExecError::Launch(format!(
            "the {what} {} is not valid UTF-8 (Slurm needs it in the batch script)",
            p.display()
        ))
    })
}

/// The `--time` value in minutes for this request.
pub fn time_limit_minutes(cfg: &SlurmConfig, timeout: Option<Duration>) -> Option<u64> {
    if let Some(m) = cfg.time_limit_min {
        return Some(m.max(1));
    }
    timeout.map(|t| t.as_secs().div_ceil(60).max(1) + TIME_LIMIT_MARGIN_MIN)
}

/// Generates `job.sbatch`: `#SBATCH` directives, the job's environment exported with shell
/// quoting, then the shared wrapper.
pub fn batch_script(req: &JobRequest, cfg: &SlurmConfig) -> Result<String, ExecError> {
    let run_dir = utf8(&req.run_dir, "run dir")?;
    let cwd = utf8(&req.cwd, "job working directory")?;
    let out_pattern = format!("{}/slurm-%j.out", run_dir.replace('%', "%%"));
    let err_pattern = format!("{}/slurm-%j.err", run_dir.replace('%', "%%"));
    let mut s = String::new();
    s.push_str("#!/bin/sh\n");
    let mut directive = |opt: &str, value: &str| -> Result<(), ExecError> {
        s.push_str(&format!("#SBATCH --{opt}={}\n", directive_quote(value)?));
        Ok(())
    };
    directive("job-name", &req.node_id)?;
    directive("output", &out_pattern)?;
    directive("error", &err_pattern)?;
    directive("chdir", cwd)?;
    directive("comment", &job_comment(req)?)?;
    if let Some(p) = cfg.partition.as_deref().filter(|p| !p.is_empty()) {
        directive("partition", p)?;
    }
    if let Some(a) = cfg.account.as_deref().filter(|a| !a.is_empty()) {
        directive("account", a)?;
    }
    if let Some(m) = time_limit_minutes(cfg, req.timeout) {
        directive("time", &m.to_string())?;
    }
    directive("export", "ALL")?;
    // A requeued job would run the experiment a second time behind the engine's back.
    s.push_str("#SBATCH --no-requeue\n");
    s.push_str("#\n# Generated by autoresearch for one attempt of one experiment.\n");
    if !cfg.sbatch_args.is_empty() {
        s.push_str("# Extra sbatch arguments (given on the sbatch command line):\n#  ");
        for a in &cfg.sbatch_args {
            s.push(' ');
            s.push_str(&shell_quote(&a.replace('\n', " ")));
        }
        s.push('\n');
    }
    s.push_str(
        "# The wrapper writes pid, stdout.log, stderr.log and, last, exit_code into the run dir.\n",
    );
    for (name, value) in &req.env {
        if !is_env_name(name) {
            return Err(ExecError::Launch(format!(
                "environment variable name {name:?} cannot be exported by a shell"
            )));
        }
        s.push_str(&format!("export {name}={}\n", shell_quote(value)));
    }
    s.push_str(&format!(
        "exec /bin/sh {} {} {}\n",
        shell_quote(&format!("{run_dir}/{}", wrapper::WRAPPER_NAME)),
        shell_quote(run_dir),
        shell_quote(cwd)
    ));
    Ok(s)
}

/// Quotes a value for an `#SBATCH` line: Slurm reads double quotes with `\"` and `\\` escapes
/// (and treats an unquoted `#` as a comment). Newlines cannot be represented.
fn directive_quote(v: &str) -> Result<String, ExecError> {
    if v.contains(['\n', '\r', '\0']) {
        return Err(ExecError::Launch(format!(
            "{v:?} cannot appear in an #SBATCH line (line break)"
        )));
    }
    if !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=,+%@".contains(c))
    {
        return Ok(v.to_string());
    }
    Ok(format!(
        "\"{}\"",
        v.replace('\\', "\\\\").replace('"', "\\\"")
    ))
}

/// POSIX shell single-quoting.
fn shell_quote(v: &str) -> String {
    if !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=,+@".contains(c))
    {
        return v.to_string();
    }
    format!("'{}'", v.replace('\'', "'\\''"))
}

fn is_env_name(n: &str) -> bool {
    let mut chars = n.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// Parses `sbatch --parsable` output: `<id>` or `<id>;<cluster>` (the last non-empty line).
fn parse_sbatch_output(stdout: &str) -> Option<SlurmJob> {
    stdout
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .and_then(SlurmJob::parse)
}

/// Reads `JobState`, `ExitCode` and `Reason` from `scontrol show job -o` output.
fn parse_scontrol(out: &str) -> SlurmEnd {
    let field = |key: &str| -> Option<String> {
        out.split_whitespace()
            .find_map(|tok| tok.strip_prefix(key))
            .map(str::to_string)
            .filter(|v| !v.is_empty())
    };
    SlurmEnd {
        state: field("JobState="),
        exit_code: field("ExitCode="),
        reason: field("Reason=").filter(|r| r != "None"),
    }
}

/// `CANCELLED by 0` → `CANCELLED`.
fn base_state(s: &str) -> &str {
    s.split_whitespace()
        .next()
        .unwrap_or(s)
        .trim_end_matches('+')
}

fn is_active_state(s: &str) -> bool {
    ACTIVE_STATES.contains(&base_state(s))
}

fn is_transient(stderr: &str) -> bool {
    let e = stderr.to_ascii_lowercase();
    TRANSIENT_PATTERNS.iter().any(|p| e.contains(p))
}

fn is_invalid_job(stderr: &str) -> bool {
    stderr.to_ascii_lowercase().contains("invalid job id")
}

fn cmd_error(name: &str, args: &[OsString], out: &CmdOut) -> ExecError {
    ExecError::Slurm(format!(
        "`{}` failed: {}",
        show_cmd(name, args),
        out.stderr.trim()
    ))
}

fn show_cmd(name: &str, args: &[OsString]) -> String {
    let mut s = name.to_string();
    for a in args {
        s.push(' ');
        s.push_str(&shell_quote(&a.to_string_lossy()));
    }
    s
}

/// When the job's timeout expires, counted from the record's `started_at`.
fn deadline_of(started_at: &str, timeout: Duration) -> Instant {
    let now = Instant::now();
    let started = match humantime::parse_rfc3339_weak(started_at) {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(started_at, error = %e, "unreadable started_at; counting from now");
            return now + timeout;
        }
    };
    let elapsed = SystemTime::now()
        .duration_since(started)
        .unwrap_or(Duration::ZERO);
    now + timeout.saturating_sub(elapsed)
}

fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".to_string())
}

fn current_uid() -> u32 {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req() -> JobRequest {
        JobRequest {
            node_id: "003_big chunks".into(),
            run_dir: PathBuf::from("/w/runs/003 x%y\"z"),
            cwd: PathBuf::from("/w/proj"),
            env: vec![("A_B".into(), "it's $HOME".into())],
            timeout: Some(Duration::from_secs(61)),
            attempt: 2,
        }
    }

    #[test]
    fn sbatch_output_parsing() {
        assert_eq!(
            parse_sbatch_output("123\n").map(|j| j.stored()),
            Some("123".into())
        );
        assert_eq!(
            parse_sbatch_output("42;clusterA\n").map(|j| (j.id, j.cluster)),
            Some(("42".into(), Some("clusterA".into())))
        );
        assert_eq!(parse_sbatch_output(""), None);
        assert_eq!(parse_sbatch_output("Submitted batch job 5"), None);
    }

    #[test]
    fn time_limit() {
        let cfg = SlurmConfig::default();
        assert_eq!(time_limit_minutes(&cfg, None), None);
        assert_eq!(
            time_limit_minutes(&cfg, Some(Duration::from_secs(3))),
            Some(2)
        );
        assert_eq!(
            time_limit_minutes(&cfg, Some(Duration::from_secs(600))),
            Some(11)
        );
        assert_eq!(
            time_limit_minutes(&cfg, Some(Duration::from_secs(601))),
            Some(12)
        );
        let cfg = SlurmConfig {
            time_limit_min: Some(30),
            ..Default::default()
        };
        assert_eq!(
            time_limit_minutes(&cfg, Some(Duration::from_secs(3))),
            Some(30)
        );
    }

    #[test]
    fn script_quotes_everything() {
        let cfg = SlurmConfig {
            partition: Some("debug".into()),
            account: Some("proj".into()),
            sbatch_args: vec!["--mem=1G".into()],
            time_limit_min: None,
        };
        let s = batch_script(&req(), &cfg).unwrap();
        assert!(s.contains("#SBATCH --job-name=\"003_big chunks\"\n"), "{s}");
        assert!(
            s.contains("#SBATCH --output=\"/w/runs/003 x%%y\\\"z/slurm-%j.out\"\n"),
            "{s}"
        );
        assert!(s.contains("#SBATCH --chdir=/w/proj\n"), "{s}");
        assert!(s.contains("#SBATCH --partition=debug\n"), "{s}");
        assert!(s.contains("#SBATCH --account=proj\n"), "{s}");
        assert!(s.contains("#SBATCH --time=3\n"), "{s}");
        assert!(s.contains("#SBATCH --export=ALL\n"), "{s}");
        assert!(s.contains("export A_B='it'\\''s $HOME'\n"), "{s}");
        assert!(
            s.contains("exec /bin/sh '/w/runs/003 x%y\"z/wrapper.sh'"),
            "{s}"
        );
    }

    #[test]
    fn bad_env_name_refused() {
        let mut r = req();
        r.env.push(("A-B".into(), "x".into()));
        assert!(batch_script(&r, &SlurmConfig::default()).is_err());
    }

    #[test]
    fn scontrol_parsing() {
        let e = parse_scontrol(
            "JobId=7 JobName=x JobState=NODE_FAIL Reason=NodeDown Dependency=(null) \
             ExitCode=0:0 Comment=autoresearch a b",
        );
        assert_eq!(e.state.as_deref(), Some("NODE_FAIL"));
        assert_eq!(e.exit_code.as_deref(), Some("0:0"));
        assert_eq!(e.reason.as_deref(), Some("NodeDown"));
        assert!(is_active_state("RUNNING"));
        assert!(!is_active_state("CANCELLED"));
        assert_eq!(base_state("CANCELLED by 0"), "CANCELLED");
    }

    #[test]
    fn transient_classification() {
        assert!(is_transient(
            "squeue: error: slurm_load_jobs error: Socket timed out on send/recv operation"
        ));
        assert!(is_transient(
            "sbatch: error: Batch job submission failed: Unable to contact slurm controller (connect failure)"
        ));
        assert!(!is_transient(
            "slurm_load_jobs error: Invalid job id specified"
        ));
        assert!(is_invalid_job(
            "slurm_load_jobs error: Invalid job id specified"
        ));
    }

    #[test]
    fn newest_id() {
        assert_eq!(
            newest(["9", "10", "2"].into_iter().map(String::from)),
            Some("10".into())
        );
    }
}
