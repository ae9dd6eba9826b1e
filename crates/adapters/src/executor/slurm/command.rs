//! Running Slurm's commands: one try killed after a timeout, transient failures (controller
//! unreachable, socket timeouts, a command that could not be spawned) retried with exponential
//! backoff, and errors that name the command and its stderr.

use std::ffi::OsString;
use std::process::Stdio;
use std::time::Duration;

use super::executor::SlurmExecutor;
use crate::config::shell_quote;
use crate::executor::ExecError;

/// Longest time one Slurm command may run before it is killed and treated as a transient failure.
pub(super) const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// stderr fragments (lowercase) of Slurm command failures worth retrying.
pub(super) const TRANSIENT_PATTERNS: &[&str] = &[
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

/// What one Slurm command produced.
#[derive(Debug)]
pub(super) struct CmdOut {
    /// Whether it exited 0.
    pub success: bool,
    /// Its output.
    pub stdout: String,
    /// Its error output.
    pub stderr: String,
}

/// One try of a Slurm command: finished (successfully or with a permanent error), or a transient
/// failure to retry.
pub(super) enum Try {
    Done(CmdOut),
    Transient(String),
}

impl SlurmExecutor {
    pub(super) fn program(&self, name: &str) -> OsString {
        match &self.bin_dir {
            Some(dir) => dir.join(name).into_os_string(),
            None => name.into(),
        }
    }

    /// Runs a Slurm command once (never blocking the runtime, killed after [`COMMAND_TIMEOUT`]).
    pub(super) async fn run_once(&self, name: &str, args: &[OsString]) -> Try {
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
    pub(super) async fn run_retrying(
        &self,
        name: &str,
        args: &[OsString],
    ) -> Result<CmdOut, ExecError> {
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
        Err(ExecError::Slurm {
            command: show_cmd(name, args),
            message: format!("{} tries, the last: {last}", self.tries),
        })
    }
}

pub(super) fn is_transient(stderr: &str) -> bool {
    let e = stderr.to_ascii_lowercase();
    TRANSIENT_PATTERNS.iter().any(|p| e.contains(p))
}

pub(super) fn is_invalid_job(stderr: &str) -> bool {
    stderr.to_ascii_lowercase().contains("invalid job id")
}

pub(super) fn cmd_error(name: &str, args: &[OsString], out: &CmdOut) -> ExecError {
    ExecError::Slurm {
        command: show_cmd(name, args),
        message: out.stderr.trim().to_string(),
    }
}

pub(super) fn show_cmd(name: &str, args: &[OsString]) -> String {
    let mut s = name.to_string();
    for a in args {
        let a = a.to_string_lossy();
        s.push(' ');
        match shell_quote(&a) {
            Ok(q) => s.push_str(&q),
            Err(_) => s.push_str(&a),
        }
    }
    s
}

/// The current user's id (for `squeue --user`).
pub(super) fn current_uid() -> u32 {
    // SAFETY: getuid(2) cannot fail and touches no memory.
    unsafe { libc::getuid() }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
