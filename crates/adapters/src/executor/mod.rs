//! Executors: where and how an experiment's job runs (local detached process, Slurm).
//!
//! Every executor runs the job through the same wrapper ([`wrapper`]) which writes the job's pid
//! first and its exit code last into the run dir, so a job's end is known even when no engine
//! was alive to see it. The `exit_code` file is the final truth.
//!
//! [`Exec`] is the one dispatch over the executors a run can use (an enum match; the
//! [`Executor`] trait has native `async fn`s, no boxed futures).

pub mod local;
pub mod slurm;
pub mod wrapper;

use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::ExecutorConfig;
use crate::model::JobRecord;

/// Everything an executor needs to run one job.
#[derive(Debug, Clone)]
pub struct JobRequest {
    /// The node id (used for job names).
    pub node_id: String,
    /// `runs/<id>/`, absolute; exists and holds `command.sh` (exactly what runs).
    pub run_dir: PathBuf,
    /// Working directory of the job, absolute.
    pub cwd: PathBuf,
    /// Extra environment (`AUTORESEARCH_*` and `job.env`).
    pub env: Vec<(String, String)>,
    /// Wall-time limit, counted from the record's `started_at`.
    pub timeout: Option<Duration>,
    /// 1 for the first launch, 2+ for a relaunch of a job known dead.
    pub attempt: u32,
    /// Largest size of `stdout.log` and `stderr.log` each, in bytes (`job.log_limit_mb`).
    pub log_limit_bytes: u64,
}

/// How a job ended.
#[derive(Debug, Clone, PartialEq)]
pub enum JobEnd {
    /// The wrapper recorded this exit code (128+N when killed by signal N).
    Exited {
        /// The exit code.
        code: i32,
    },
    /// The executor killed it after its timeout.
    TimedOut,
    /// The executor killed it on request.
    Cancelled,
    /// It is gone with no exit code.
    Lost {
        /// What is known.
        reason: String,
    },
}

/// What waiting on a job produced.
#[derive(Debug, Clone, PartialEq)]
pub enum WaitOutcome {
    /// The job ended.
    Ended(JobEnd),
    /// The engine is stopping and the job was left running (to be re-attached on resume).
    Detached,
}

/// The state of a job found on resume.
#[derive(Debug, Clone, PartialEq)]
pub enum Probe {
    /// Still running: re-attach.
    Running,
    /// Ended while no engine watched; its exit code.
    Ended(i32),
    /// Not running and no exit code: known dead.
    Dead(String),
}

/// Errors of executors. Each names the file, process or command it is about.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// A file or folder could not be read or written (or a process's `/proc` entry read).
    #[error("{}: {source}", path.display())]
    Io {
        /// The file, folder or `/proc/<pid>` entry.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The job's process could not be started.
    #[error("could not start {program}: {source}")]
    Spawn {
        /// What was being started.
        program: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The job exited before its pid could be read: nothing is running for it.
    #[error("the job's wrapper (pid {pid}) was gone before it could be recorded")]
    Vanished {
        /// The wrapper's pid.
        pid: u32,
    },
    /// A wrapper for this run dir is already running (a second launch would run the job
    /// twice).
    #[error(
        "a job is already running for {} (its wrapper holds {}): not launching it a second time",
        run_dir.display(),
        wrapper::LAUNCH_LOCK
    )]
    AlreadyRunning {
        /// The run dir.
        run_dir: PathBuf,
    },
    /// A job record (`job.json`) lacks what identifies its job.
    #[error("{}: {message}", path.display())]
    BadRecord {
        /// The record.
        path: PathBuf,
        /// What is missing.
        message: String,
    },
    /// A path or value cannot be put into a batch script.
    #[error("{what} {value:?} cannot be written into a batch script: {why}")]
    Unscriptable {
        /// What it is (`run dir`, `environment variable name`, ...).
        what: &'static str,
        /// The value.
        value: String,
        /// Why not.
        why: &'static str,
    },
    /// The cluster refused the job for good (bad partition, account, option...).
    #[error("`{command}` rejected the job: {stderr}")]
    Rejected {
        /// The command as run.
        command: String,
        /// Its error output.
        stderr: String,
    },
    /// A Slurm command failed (after retries, for transient failures).
    #[error("slurm: `{command}` failed: {message}")]
    Slurm {
        /// The command as run.
        command: String,
        /// What it printed or why it could not run.
        message: String,
    },
    /// Blocking file work could not complete (the runtime is shutting down).
    #[error("{}: the file task was cancelled: {source}", path.display())]
    Task {
        /// The file being worked on.
        path: PathBuf,
        /// The cause.
        #[source]
        source: tokio::task::JoinError,
    },
}

impl ExecError {
    /// An [`ExecError::Io`].
    pub fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        ExecError::Io {
            path: path.into(),
            source,
        }
    }

    /// Whether this is a temporary failure of the environment (disk full, I/O error, too many
    /// open files) rather than of the job: worth retrying later.
    pub fn is_transient(&self) -> bool {
        match self {
            ExecError::Io { source, .. } | ExecError::Spawn { source, .. } => {
                autoresearch_engine::nofollow::is_transient(source)
            }
            _ => false,
        }
    }
}

/// Runs jobs. Implementations must never block the async runtime for long.
pub trait Executor: Send + Sync {
    /// `local` or `slurm`.
    fn name(&self) -> &'static str;

    /// Starts the job detached through the wrapper and writes `runs/<id>/job.json` atomically
    /// before returning its record. The job must keep running if the engine dies.
    fn launch(&self, req: &JobRequest)
    -> impl Future<Output = Result<JobRecord, ExecError>> + Send;

    /// Finds a job an earlier engine started for this request (same run dir and attempt)
    /// before it could write `job.json`, without starting anything and without waiting:
    /// `None` means nothing was started and launching is safe.
    fn recover(
        &self,
        req: &JobRequest,
    ) -> impl Future<Output = Result<Option<JobRecord>, ExecError>> + Send;

    /// Waits until the job ends — woken by its exit, not by a polling interval where the platform
    /// allows it — enforcing `req.timeout` (kill, then `TimedOut`). When `stop` fires: if the
    /// executor was built to cancel jobs on stop, kill and return `Ended(Cancelled)`; otherwise
    /// return `Detached` and leave the job running. Works for jobs launched by this process and
    /// for jobs re-attached from a record.
    fn wait(
        &self,
        req: &JobRequest,
        record: &JobRecord,
        stop: CancellationToken,
    ) -> impl Future<Output = Result<WaitOutcome, ExecError>> + Send;

    /// Finds out what became of a job launched by an earlier engine.
    fn probe(
        &self,
        req: &JobRequest,
        record: &JobRecord,
    ) -> impl Future<Output = Result<Probe, ExecError>> + Send;

    /// Kills the job (the whole process group, or `scancel`).
    fn kill(&self, record: &JobRecord) -> impl Future<Output = Result<(), ExecError>> + Send;
}

/// The executor a run uses: the one dispatch over the kinds of executor.
#[derive(Debug)]
pub enum Exec {
    /// Local detached processes.
    Local(local::LocalExecutor),
    /// Slurm batch jobs.
    Slurm(slurm::SlurmExecutor),
}

impl Exec {
    /// The executor `executor.kind` names, with its settings.
    pub fn from_config(cfg: &ExecutorConfig) -> Self {
        match cfg.kind {
            crate::config::ExecutorKind::Local => {
                Exec::Local(local::LocalExecutor::new(cfg.cancel_jobs_on_stop))
            }
            crate::config::ExecutorKind::Slurm => Exec::Slurm(slurm::SlurmExecutor::new(
                cfg.slurm.clone(),
                cfg.cancel_jobs_on_stop,
            )),
        }
    }
}

impl Executor for Exec {
    fn name(&self) -> &'static str {
        match self {
            Exec::Local(e) => e.name(),
            Exec::Slurm(e) => e.name(),
        }
    }

    async fn launch(&self, req: &JobRequest) -> Result<JobRecord, ExecError> {
        match self {
            Exec::Local(e) => e.launch(req).await,
            Exec::Slurm(e) => e.launch(req).await,
        }
    }

    async fn recover(&self, req: &JobRequest) -> Result<Option<JobRecord>, ExecError> {
        match self {
            Exec::Local(e) => e.recover(req).await,
            Exec::Slurm(e) => e.recover(req).await,
        }
    }

    async fn wait(
        &self,
        req: &JobRequest,
        record: &JobRecord,
        stop: CancellationToken,
    ) -> Result<WaitOutcome, ExecError> {
        match self {
            Exec::Local(e) => e.wait(req, record, stop).await,
            Exec::Slurm(e) => e.wait(req, record, stop).await,
        }
    }

    async fn probe(&self, req: &JobRequest, record: &JobRecord) -> Result<Probe, ExecError> {
        match self {
            Exec::Local(e) => e.probe(req, record).await,
            Exec::Slurm(e) => e.probe(req, record).await,
        }
    }

    async fn kill(&self, record: &JobRecord) -> Result<(), ExecError> {
        match self {
            Exec::Local(e) => e.kill(record).await,
            Exec::Slurm(e) => e.kill(record).await,
        }
    }
}

/// Reads `runs/<id>/exit_code` if the wrapper wrote it.
pub fn read_exit_code(run_dir: &Path) -> Option<i32> {
    std::fs::read_to_string(run_dir.join("exit_code"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
}

/// Reads `job.json` of the run dir if it is a record of `executor` for `attempt`.
pub(crate) fn read_record(
    run_dir: &Path,
    executor: &str,
    attempt: u32,
) -> Result<Option<JobRecord>, ExecError> {
    let path = run_dir.join(JOB_RECORD);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ExecError::io(path, e)),
    };
    Ok(serde_json::from_slice::<JobRecord>(&bytes)
        .ok()
        .filter(|r| r.executor == executor && r.attempt == attempt))
}

/// Name of the job record in the run dir.
pub const JOB_RECORD: &str = "job.json";

/// Runs blocking file work off the async runtime; a cancelled task names `path`.
pub(crate) async fn blocking<T: Send + 'static>(
    path: PathBuf,
    work: impl FnOnce() -> Result<T, ExecError> + Send + 'static,
) -> Result<T, ExecError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|source| ExecError::Task { path, source })?
}
