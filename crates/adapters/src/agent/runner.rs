//! Runs one agent process: the argv with the prompt on **stdin**, a given working directory,
//! `AUTORESEARCH_AGENT_PHASE` / `AUTORESEARCH_NODE_ID` / `AUTORESEARCH_WORKDIR` in its
//! environment, in its own process group.
//!
//! A timeout kills the whole group (SIGTERM, then SIGKILL after a grace period), so tools the
//! agent started go too; when the agent exits normally, whatever it left running in its group is
//! killed as well. Dropping the future (the engine shutting down) kills the group. stdout and
//! stderr are captured up to a cap (default 32 MiB each); past it the call fails with a clear
//! error rather than growing without bound.

use std::io;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

use super::AgentPhase;

/// Default cap of captured stdout and stderr (each).
pub const DEFAULT_OUTPUT_CAP: usize = 32 << 20;

/// Default time between SIGTERM and SIGKILL when a call times out.
pub const DEFAULT_KILL_GRACE: Duration = Duration::from_secs(3);

/// One agent process to run.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// Program and arguments (no shell).
    pub argv: Vec<String>,
    /// Written to the agent's stdin, which is then closed.
    pub prompt: String,
    /// The agent's working directory.
    pub cwd: PathBuf,
    /// `AUTORESEARCH_AGENT_PHASE`.
    pub phase: AgentPhase,
    /// `AUTORESEARCH_NODE_ID`.
    pub node_id: String,
    /// `AUTORESEARCH_WORKDIR`.
    pub workdir: PathBuf,
    /// Wall-time limit.
    pub timeout: Duration,
    /// Time between SIGTERM and SIGKILL on timeout.
    pub kill_grace: Duration,
    /// Largest stdout (and stderr) kept, in bytes.
    pub output_cap: usize,
    /// Extra environment variables (after the three above).
    pub env: Vec<(String, String)>,
}

/// What a finished agent process produced.
#[derive(Debug, Clone)]
pub struct RawOutput {
    /// Exit code, `None` when killed by a signal.
    pub exit_code: Option<i32>,
    /// Signal that ended it, if any.
    pub signal: Option<i32>,
    /// Captured stdout.
    pub stdout: Vec<u8>,
    /// Captured stderr.
    pub stderr: Vec<u8>,
    /// Wall time of the call.
    pub duration: Duration,
}

impl RawOutput {
    /// Whether the process exited with status 0.
    pub fn success(&self) -> bool {
        self.exit_code == Some(0)
    }

    /// stdout as text (invalid UTF-8 replaced).
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// The last `max` bytes of stderr as text, for error messages.
    pub fn stderr_tail(&self, max: usize) -> String {
        tail_text(&self.stderr, max)
    }
}

/// The last `max` bytes of `bytes` as trimmed text (starting at a character boundary).
pub fn tail_text(bytes: &[u8], max: usize) -> String {
    let start = bytes.len().saturating_sub(max);
    let text = String::from_utf8_lossy(&bytes[start..]);
    let text = text.trim();
    if start > 0 {
        format!("…{text}")
    } else {
        text.to_string()
    }
}

/// Why an agent process produced no output to decode.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The argv is empty.
    #[error("the agent command is empty: set planner.agent.command or planner.agent.preset")]
    EmptyCommand,
    /// The program could not be started.
    #[error(
        "cannot start the agent `{program}` in {}: {source} (is it installed and on PATH? \
         set planner.agent.command to its full path)",
        cwd.display()
    )]
    Spawn {
        /// argv[0].
        program: String,
        /// The working directory.
        cwd: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The call ran past its time limit; the agent's process group was killed.
    #[error(
        "the agent did not answer within {}s (planner.agent.timeout_s); its process group was \
         killed{}",
        after.as_secs_f64(),
        stderr_suffix(stderr_tail)
    )]
    Timeout {
        /// The limit.
        after: Duration,
        /// What it had printed on stderr.
        stderr_tail: String,
    },
    /// stdout or stderr exceeded the cap; the agent's process group was killed.
    #[error(
        "the agent wrote more than {} MiB on {stream}; its process group was killed (a reply \
         that large is not a plan: check the agent's command line)",
        cap >> 20
    )]
    OutputTooLarge {
        /// `stdout` or `stderr`.
        stream: &'static str,
        /// The cap in bytes.
        cap: usize,
    },
    /// Reading the agent's output or waiting for it failed.
    #[error("cannot read the agent's output: {0}")]
    Io(#[source] io::Error),
}

fn stderr_suffix(tail: &str) -> String {
    if tail.is_empty() {
        String::new()
    } else {
        format!("; stderr ends with: {tail}")
    }
}

/// Kills the agent's process group when dropped, unless disarmed.
struct GroupGuard {
    pgid: Option<i32>,
}

impl GroupGuard {
    fn kill(&self, sig: libc::c_int) {
        if let Some(pgid) = self.pgid {
            signal_group(pgid, sig);
        }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill(libc::SIGKILL);
    }
}

/// Sends `sig` to process group `pgid` (> 1); a group that is gone is not an error.
fn signal_group(pgid: i32, sig: libc::c_int) {
    if pgid > 1 {
        // SAFETY: kill(2) has no memory-safety preconditions; a negative pid names the group,
        // and pgid > 1 excludes our own group (0) and every process (-1).
        unsafe {
            libc::kill(-pgid, sig);
        }
    }
}

/// Reads `reader` to the end, keeping at most `cap` bytes; `Err(())` once past the cap.
async fn read_capped<R: AsyncRead + Unpin>(
    mut reader: R,
    cap: usize,
) -> io::Result<Result<Vec<u8>, ()>> {
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = reader.read(&mut chunk).await?;
        if n == 0 {
            return Ok(Ok(buf));
        }
        if buf.len() + n > cap {
            return Ok(Err(()));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Runs the agent and waits for it (or its timeout).
pub async fn run(inv: &Invocation) -> Result<RawOutput, RunError> {
    let program = inv.argv.first().ok_or(RunError::EmptyCommand)?;
    let started = Instant::now();
    let mut cmd = Command::new(program);
    cmd.args(&inv.argv[1..])
        .current_dir(&inv.cwd)
        .env("AUTORESEARCH_AGENT_PHASE", inv.phase.as_str())
        .env("AUTORESEARCH_NODE_ID", &inv.node_id)
        .env("AUTORESEARCH_WORKDIR", &inv.workdir)
        .envs(inv.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|source| RunError::Spawn {
        program: program.clone(),
        cwd: inv.cwd.clone(),
        source,
    })?;
    let mut guard = GroupGuard {
        pgid: child.id().and_then(|p| i32::try_from(p).ok()),
    };

    let mut stdin = child.stdin.take().expect("stdin is piped");
    let prompt = inv.prompt.clone().into_bytes();
    let writer = tokio::spawn(async move {
        // An agent that exits without reading its whole prompt closes the pipe: not our error.
        let _ = stdin.write_all(&prompt).await;
        let _ = stdin.shutdown().await;
    });
    let cap = inv.output_cap;
    let mut out_task = tokio::spawn(read_capped(child.stdout.take().expect("piped"), cap));
    let mut err_task = tokio::spawn(read_capped(child.stderr.take().expect("piped"), cap));

    enum End {
        Exited(io::Result<std::process::ExitStatus>),
        TimedOut,
        Overflow(&'static str),
    }
    let deadline = tokio::time::sleep(inv.timeout);
    tokio::pin!(deadline);
    let mut out_done: Option<Vec<u8>> = None;
    let mut err_done: Option<Vec<u8>> = None;
    let end = loop {
        tokio::select! {
            status = child.wait() => break End::Exited(status),
            () = &mut deadline => break End::TimedOut,
            r = &mut out_task, if out_done.is_none() => match flatten(r) {
                Ok(Ok(b)) => out_done = Some(b),
                Ok(Err(())) => break End::Overflow("stdout"),
                Err(e) => return Err(RunError::Io(e)),
            },
            r = &mut err_task, if err_done.is_none() => match flatten(r) {
                Ok(Ok(b)) => err_done = Some(b),
                Ok(Err(())) => break End::Overflow("stderr"),
                Err(e) => return Err(RunError::Io(e)),
            },
        }
    };
    writer.abort();
    match end {
        End::TimedOut => {
            guard.kill(libc::SIGTERM);
            let waited = tokio::time::timeout(inv.kill_grace, child.wait()).await;
            guard.kill(libc::SIGKILL);
            if waited.is_err() {
                let _ = child.wait().await;
            }
            guard.pgid = None;
            let stderr = collect(err_done, err_task).await;
            Err(RunError::Timeout {
                after: inv.timeout,
                stderr_tail: tail_text(&stderr, 2000),
            })
        }
        End::Overflow(stream) => {
            guard.kill(libc::SIGKILL);
            let _ = child.wait().await;
            guard.pgid = None;
            out_task.abort();
            err_task.abort();
            Err(RunError::OutputTooLarge { stream, cap })
        }
        End::Exited(status) => {
            let status = status.map_err(RunError::Io)?;
            // Whatever the agent left behind in its group (a tool still holding our pipes)
            // goes now, so the reads below end. (The group id cannot have been reused yet:
            // a pid stays taken while its group has members.)
            guard.kill(libc::SIGKILL);
            guard.pgid = None;
            let stdout = match out_done {
                Some(b) => b,
                None => match flatten(out_task.await) {
                    Ok(Ok(b)) => b,
                    Ok(Err(())) => {
                        return Err(RunError::OutputTooLarge {
                            stream: "stdout",
                            cap,
                        });
                    }
                    Err(e) => return Err(RunError::Io(e)),
                },
            };
            let stderr = match err_done {
                Some(b) => b,
                None => match flatten(err_task.await) {
                    Ok(Ok(b)) => b,
                    Ok(Err(())) => {
                        return Err(RunError::OutputTooLarge {
                            stream: "stderr",
                            cap,
                        });
                    }
                    Err(e) => return Err(RunError::Io(e)),
                },
            };
            use std::os::unix::process::ExitStatusExt;
            Ok(RawOutput {
                exit_code: status.code(),
                signal: status.signal(),
                stdout,
                stderr,
                duration: started.elapsed(),
            })
        }
    }
}

type Capped = io::Result<Result<Vec<u8>, ()>>;

fn flatten(r: Result<Capped, tokio::task::JoinError>) -> Capped {
    r.map_err(io::Error::other)?
}

/// What a stream produced, waiting briefly for a reader that has not finished.
async fn collect(done: Option<Vec<u8>>, task: tokio::task::JoinHandle<Capped>) -> Vec<u8> {
    if let Some(b) = done {
        return b;
    }
    match tokio::time::timeout(Duration::from_secs(2), task).await {
        Ok(r) => flatten(r).ok().and_then(Result::ok).unwrap_or_default(),
        Err(_) => Vec::new(),
    }
}
