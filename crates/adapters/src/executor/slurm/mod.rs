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
//!
//! Files: `command.rs` (running Slurm commands with retries), `script.rs` (the batch script),
//! `parse.rs` (reading Slurm's output), `recover.rs` (finding a submission after a crash),
//! `executor.rs` (launch, wait, probe, kill).

mod command;
mod executor;
mod parse;
mod recover;
mod script;

pub use crate::config::SlurmConfig;
pub use executor::SlurmExecutor;
pub use recover::SUBMITTING_MARKER;
pub use script::{BATCH_SCRIPT_NAME, TIME_LIMIT_MARGIN_MIN, batch_script, time_limit_minutes};
