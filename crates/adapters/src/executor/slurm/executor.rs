//! The Slurm executor: submit (`sbatch`), wait (`squeue`, `scontrol`, the `exit_code` file),
//! probe after a restart, cancel (`scancel`).

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use tokio_util::sync::CancellationToken;

use super::command::{Try, cmd_error, is_invalid_job, show_cmd};
use super::parse::{
    Observed, SlurmEnd, SlurmJob, base_state, is_active_state, parse_sbatch_output, parse_scontrol,
};
use super::recover::{Marker, SUBMITTING_MARKER, make_record, now_rfc3339};
use super::script::{BATCH_SCRIPT_NAME, batch_script, job_comment};
use crate::config::SlurmConfig;
use crate::executor::{
    ExecError, Executor, JobEnd, JobRequest, Probe, WaitOutcome, blocking, read_exit_code, wrapper,
};
use crate::model::JobRecord;

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

/// Runs jobs through Slurm (`sbatch`, `squeue`, `scontrol`, `scancel`).
#[derive(Debug, Clone)]
pub struct SlurmExecutor {
    cfg: SlurmConfig,
    cancel_jobs_on_stop: bool,
    pub(super) bin_dir: Option<PathBuf>,
    pub(super) tries: u32,
    pub(super) first_backoff: Duration,
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

    /// Asks `squeue`, then `scontrol show job`, what became of the job.
    pub(super) async fn observe(&self, job: &SlurmJob) -> Result<Observed, ExecError> {
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

    async fn launch_impl(&self, req: &JobRequest) -> Result<JobRecord, ExecError> {
        if let Some(record) = self.recover_job(req).await? {
            tracing::info!(node = %req.node_id, job_id = %record.job_id,
                "job already submitted for this attempt; not submitting again");
            return Ok(record);
        }
        let script = batch_script(req, &self.cfg)?;
        let comment = job_comment(req)?;
        let run_dir = req.run_dir.clone();
        let attempt = req.attempt;
        let script_path = blocking(req.run_dir.clone(), move || {
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
                    let job = parse_sbatch_output(&out.stdout).ok_or_else(|| ExecError::Slurm {
                        command: show_cmd("sbatch", &args),
                        message: format!(
                            "printed no job id: stdout {:?}, stderr {:?}",
                            out.stdout.trim(),
                            out.stderr.trim()
                        ),
                    })?;
                    submitted = Some(job);
                    break;
                }
                Try::Done(out) => {
                    // Rejected for good (bad partition, account, options...): nothing was queued.
                    let marker = req.run_dir.join(SUBMITTING_MARKER);
                    let _ = blocking(req.run_dir.clone(), move || {
                        let _ = std::fs::remove_file(marker);
                        Ok(())
                    })
                    .await;
                    return Err(ExecError::Rejected {
                        command: show_cmd("sbatch", &args),
                        stderr: out.stderr.trim().to_string(),
                    });
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
            return Err(ExecError::Slurm {
                command: show_cmd("sbatch", &args),
                message: format!("{} tries, the last: {last}", self.tries),
            });
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

    async fn launch(&self, req: &JobRequest) -> Result<JobRecord, ExecError> {
        self.launch_impl(req).await
    }

    async fn recover(&self, req: &JobRequest) -> Result<Option<JobRecord>, ExecError> {
        self.recover_job(req).await
    }

    async fn wait(
        &self,
        req: &JobRequest,
        record: &JobRecord,
        stop: CancellationToken,
    ) -> Result<WaitOutcome, ExecError> {
        self.wait_impl(req, record, stop).await
    }

    async fn probe(&self, req: &JobRequest, record: &JobRecord) -> Result<Probe, ExecError> {
        self.probe_impl(req, record).await
    }

    async fn kill(&self, record: &JobRecord) -> Result<(), ExecError> {
        let job = SlurmJob::from_record(record)?;
        self.cancel(&job).await
    }
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
