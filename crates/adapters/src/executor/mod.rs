//! Executors: where and how an experiment's job runs (local detached process, Slurm).
//!
//! Every executor runs the job through the same wrapper ([`wrapper`]) which writes the job's pid
//! first and its exit code last into the run dir, so a job's end is known even when no engine
//! was alive to see it. The `exit_code` file is the final truth.

pub mod local;
pub mod slurm;
pub mod wrapper;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::model::JobRecord;

/// A boxed, sendable future (executors are used as trait objects).
pub type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

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

/// Errors of executors.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The job could not be started.
    #[error("could not launch the job: {0}")]
    Launch(String),
    /// A file in the run dir could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The cluster scheduler failed after retries.
    #[error("slurm: {0}")]
    Slurm(String),
}

/// Runs jobs. Implementations must never block the async runtime for long.
pub trait Executor: Send + Sync {
    /// `local` or `slurm`.
    fn name(&self) -> &'static str;

    /// Starts the job detached through the wrapper and writes `runs/<id>/job.json` atomically
    /// before returning its record. The job must keep running if the engine dies.
    fn launch<'a>(&'a self, req: &'a JobRequest) -> BoxFut<'a, Result<JobRecord, ExecError>>;

    /// Waits until the job ends — woken by its exit, not by a polling interval where the platform
    /// allows it — enforcing `req.timeout` (kill, then `TimedOut`). When `stop` fires: if the
    /// executor was built to cancel jobs on stop, kill and return `Ended(Cancelled)`; otherwise
    /// return `Detached` and leave the job running. Works for jobs launched by this process and
    /// for jobs re-attached from a record.
    fn wait<'a>(
        &'a self,
        req: &'a JobRequest,
        record: &'a JobRecord,
        stop: CancellationToken,
    ) -> BoxFut<'a, Result<WaitOutcome, ExecError>>;

    /// Finds out what became of a job launched by an earlier engine.
    fn probe<'a>(
        &'a self,
        req: &'a JobRequest,
        record: &'a JobRecord,
    ) -> BoxFut<'a, Result<Probe, ExecError>>;

    /// Kills the job (the whole process group, or `scancel`).
    fn kill<'a>(&'a self, record: &'a JobRecord) -> BoxFut<'a, Result<(), ExecError>>;
}

/// Reads `runs/<id>/exit_code` if the wrapper wrote it.
pub fn read_exit_code(run_dir: &std::path::Path) -> Option<i32> {
    std::fs::read_to_string(run_dir.join("exit_code"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
}
