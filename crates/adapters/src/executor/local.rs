//! Local executor: each job runs on this machine as a detached process in its own session and
//! process group, through the shared [`wrapper`] which records the job's pid first
//! and its exit code last into `runs/<id>/`.
//!
//! * Jobs survive the engine: they are not killed when it exits (no kill-on-drop), and being in
//!   their own session they do not get the terminal's signals either.
//! * Waiting is woken by the job's exit, never by a polling interval: a job this process spawned
//!   is awaited through its tokio `Child` (which also reaps it); a job re-attached from its
//!   `job.json` after an engine restart is watched through a pidfd (see `exitwatch`).
//! * A pid is only trusted together with the process start time recorded at launch (field 22 of
//!   `/proc/<pid>/stat`), so a pid reused by another process is never mistaken for the job, and
//!   that other process is never signalled.
//! * Timeout and cancellation kill the whole process group: SIGTERM, then SIGKILL after a grace
//!   period.
//! * The `exit_code` file is the final truth: a job that exits without one is `Lost`.

mod exitwatch;
mod procfs;

use std::collections::HashMap;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use autoresearch_engine::atomic::write_json_atomic;
use tokio::process::Child;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use self::exitwatch::ExitWatch;
use self::procfs::PidState;
use super::{
    BoxFut, ExecError, Executor, JobEnd, JobRequest, Probe, WaitOutcome, read_exit_code, wrapper,
};
use crate::model::JobRecord;

/// Time a process group gets between SIGTERM and SIGKILL.
const KILL_GRACE: Duration = Duration::from_secs(2);
/// How long to wait for the `exit_code` file after the job's process is gone (the wrapper
/// renames it into place just before exiting; this covers slow or racing filesystems).
const EXIT_CODE_SETTLE: Duration = Duration::from_millis(200);
/// Check interval while waiting for the `exit_code` file to settle.
const EXIT_CODE_CHECK: Duration = Duration::from_millis(20);
/// Name of the job record in the run dir.
const JOB_RECORD: &str = "job.json";

/// A job this process spawned and still holds: its exit wakes `wait`, which also reaps it.
#[derive(Debug)]
struct OwnChild {
    /// The wrapper's pid (also the process group and session id).
    pid: u32,
    /// The wrapper process.
    child: Child,
    /// When it was spawned (the timeout counts from here, more precisely than `started_at`).
    started: Instant,
}

/// Runs jobs as detached local processes (one session and process group per job).
///
/// Jobs launched by this instance are tracked by node id so that [`Executor::wait`] is woken by
/// their exit; jobs from an earlier engine are re-attached from their [`JobRecord`].
#[derive(Debug)]
pub struct LocalExecutor {
    /// Kill running jobs when `wait`'s stop token fires (instead of detaching from them).
    cancel_jobs_on_stop: bool,
    /// Jobs spawned by this instance and not yet reaped, by node id.
    children: Mutex<HashMap<String, OwnChild>>,
}

impl LocalExecutor {
    /// Creates a local executor. With `cancel_jobs_on_stop`, a job being waited on is killed
    /// when the engine stops (`Ended(Cancelled)`); otherwise it is left running (`Detached`) to
    /// be re-attached on resume.
    pub fn new(cancel_jobs_on_stop: bool) -> Self {
        LocalExecutor {
            cancel_jobs_on_stop,
            children: Mutex::new(HashMap::new()),
        }
    }

    fn children(&self) -> MutexGuard<'_, HashMap<String, OwnChild>> {
        // The map stays consistent even if a holder panicked (every operation is one call).
        self.children
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Takes the child spawned for `node_id` if it is the process `pid`.
    fn take_child(&self, node_id: &str, pid: u32) -> Option<OwnChild> {
        let mut children = self.children();
        match children.get(node_id) {
            Some(own) if own.pid == pid => children.remove(node_id),
            _ => None,
        }
    }

    /// Takes the child with process id `pid`, whatever its node.
    fn take_child_by_pid(&self, pid: u32) -> Option<OwnChild> {
        let mut children = self.children();
        let node = children
            .iter()
            .find(|(_, own)| own.pid == pid)
            .map(|(node, _)| node.clone())?;
        children.remove(&node)
    }

    /// Puts a child back after a detached wait, unless the node was relaunched meanwhile.
    fn put_back(&self, node_id: &str, own: OwnChild) {
        self.children().entry(node_id.to_owned()).or_insert(own);
    }

    async fn launch_job(&self, req: &JobRequest) -> Result<JobRecord, ExecError> {
        let command = req.run_dir.join("command.sh");
        if let Err(e) = tokio::fs::metadata(&command).await {
            return Err(ExecError::Launch(format!("{}: {e}", command.display())));
        }
        let run_dir = req.run_dir.clone();
        let wrapper_path = blocking(req.run_dir.join(wrapper::WRAPPER_NAME), move || {
            wrapper::write_wrapper(&run_dir)
        })
        .await?;

        // The wrapper's own complaints (a run dir it cannot write, a cwd it cannot enter) go to
        // `wrapper.log`; the job's output goes to stdout.log/stderr.log through the wrapper.
        let wrapper_log_path = req.run_dir.join(WRAPPER_LOG);
        let wrapper_log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&wrapper_log_path)
            .map_err(|e| io_err(wrapper_log_path.clone(), e))?;
        let mut cmd = std::process::Command::new("/bin/sh");
        cmd.arg(&wrapper_path)
            .arg(&req.run_dir)
            .arg(&req.cwd)
            .envs(req.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(wrapper_log));
        // SAFETY: the hook runs in the forked child before exec, where only async-signal-safe
        // calls are allowed: setsid(2) is one, and reading errno allocates nothing.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() == -1 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut cmd = tokio::process::Command::from(cmd);
        cmd.kill_on_drop(false);

        let started = Instant::now();
        let started_at = SystemTime::now();
        let mut child = cmd.spawn().map_err(|e| {
            ExecError::Launch(format!("spawning /bin/sh {}: {e}", wrapper_path.display()))
        })?;
        let Some(pid) = child.id() else {
            return Err(ExecError::Launch(
                "the job exited before its pid was known".into(),
            ));
        };

        let record = match procfs::read_stat(pid) {
            // The child is not reaped yet, so this pid is surely still the job's.
            Ok(Some(stat)) => JobRecord {
                job_id: format!("local:{pid}"),
                executor: "local".into(),
                pid: Some(pid),
                pid_start_ticks: Some(stat.start_ticks),
                slurm_id: None,
                host: autoresearch_engine::state::hostname(),
                started_at: humantime::format_rfc3339_millis(started_at).to_string(),
                attempt: req.attempt,
            },
            other => {
                let why = match other {
                    Err(e) => e.to_string(),
                    _ => "no such process".into(),
                };
                abandon_launch(pid, &mut child).await;
                return Err(ExecError::Launch(format!(
                    "reading /proc/{pid}/stat of the new job: {why}"
                )));
            }
        };

        let record_path = req.run_dir.join(JOB_RECORD);
        let to_write = record.clone();
        let written = blocking(record_path.clone(), move || {
            write_json_atomic(&record_path, &to_write)
        })
        .await;
        if let Err(e) = written {
            // Nobody would know about the job: do not leave it running.
            abandon_launch(pid, &mut child).await;
            return Err(e);
        }

        tracing::info!(node = %req.node_id, pid, attempt = req.attempt, "local job launched");
        let own = OwnChild {
            pid,
            child,
            started,
        };
        // A previous attempt's child, if any, is dropped here: tokio reaps it when it exits.
        self.children().insert(req.node_id.clone(), own);
        Ok(record)
    }

    async fn wait_job(
        &self,
        req: &JobRequest,
        record: &JobRecord,
        stop: CancellationToken,
    ) -> Result<WaitOutcome, ExecError> {
        if let Some(pid) = record.pid
            && let Some(own) = self.take_child(&req.node_id, pid)
        {
            return self.wait_own(req, own, stop).await;
        }
        self.wait_reattached(req, record, stop).await
    }

    /// Waits for a job this instance spawned.
    async fn wait_own(
        &self,
        req: &JobRequest,
        mut own: OwnChild,
        stop: CancellationToken,
    ) -> Result<WaitOutcome, ExecError> {
        let pid = own.pid;
        let pgid = procfs::pgid_of(pid).map_err(|e| io_err(proc_path(pid), e))?;
        let deadline = req.timeout.map(|t| own.started + t);
        tokio::select! {
            biased;
            status = own.child.wait() => {
                let status = status.map_err(|e| io_err(proc_path(pid), e))?;
                let reason = format!(
                    "the job wrapper (pid {pid}) ended ({status}) without an exit code{}",
                    wrapper_complaint(&req.run_dir)
                );
                Ok(WaitOutcome::Ended(settle_exit(&req.run_dir, reason).await))
            }
            () = sleep_until_opt(deadline) => {
                tracing::info!(node = %req.node_id, pid, "local job timed out; killing its group");
                procfs::kill_group(pgid, Some(&mut own.child), KILL_GRACE)
                    .await
                    .map_err(|e| io_err(proc_path(pid), e))?;
                Ok(WaitOutcome::Ended(JobEnd::TimedOut))
            }
            () = stop.cancelled() => {
                if self.cancel_jobs_on_stop {
                    tracing::info!(node = %req.node_id, pid, "stopping: killing local job");
                    procfs::kill_group(pgid, Some(&mut own.child), KILL_GRACE)
                        .await
                        .map_err(|e| io_err(proc_path(pid), e))?;
                    Ok(WaitOutcome::Ended(JobEnd::Cancelled))
                } else {
                    tracing::info!(node = %req.node_id, pid, "stopping: leaving the job running");
                    self.put_back(&req.node_id, own);
                    Ok(WaitOutcome::Detached)
                }
            }
        }
    }

    /// Waits for a job from its record only (launched by an earlier engine, or by another
    /// instance): watched through a pidfd after checking its identity.
    async fn wait_reattached(
        &self,
        req: &JobRequest,
        record: &JobRecord,
        stop: CancellationToken,
    ) -> Result<WaitOutcome, ExecError> {
        if let Some(code) = read_exit_code(&req.run_dir) {
            return Ok(WaitOutcome::Ended(JobEnd::Exited { code }));
        }
        let record_path = req.run_dir.join(JOB_RECORD);
        let (pid, identity) = identify(record, Some(&req.run_dir), &record_path)?;
        let pgid = procfs::pgid_of(pid).map_err(|e| io_err(proc_path(pid), e))?;
        let watched = match identity {
            Ok(ticks) => watch_exit(pid, ticks)
                .map_err(|e| io_err(proc_path(pid), e))?
                .map(|watch| (watch, ticks)),
            Err(gone) => Err(gone),
        };
        let (mut watch, ticks) = match watched {
            Ok(watched) => watched,
            Err(gone) => {
                let reason = gone_reason(pid, record.pid_start_ticks, &gone);
                return Ok(WaitOutcome::Ended(settle_exit(&req.run_dir, reason).await));
            }
        };

        let deadline = req
            .timeout
            .map(|t| deadline_from_record(&record.started_at, t));
        tokio::select! {
            biased;
            exited = watch.exited() => {
                exited.map_err(|e| io_err(proc_path(pid), e))?;
                let reason = format!("the job wrapper (pid {pid}) ended without an exit code");
                Ok(WaitOutcome::Ended(settle_exit(&req.run_dir, reason).await))
            }
            () = sleep_until_opt(deadline) => {
                drop(watch);
                tracing::info!(node = %req.node_id, pid, "re-attached job timed out; killing it");
                kill_verified(pid, ticks, pgid).await?;
                Ok(WaitOutcome::Ended(JobEnd::TimedOut))
            }
            () = stop.cancelled() => {
                if self.cancel_jobs_on_stop {
                    drop(watch);
                    tracing::info!(node = %req.node_id, pid, "stopping: killing re-attached job");
                    kill_verified(pid, ticks, pgid).await?;
                    Ok(WaitOutcome::Ended(JobEnd::Cancelled))
                } else {
                    Ok(WaitOutcome::Detached)
                }
            }
        }
    }

    async fn probe_job(&self, req: &JobRequest, record: &JobRecord) -> Result<Probe, ExecError> {
        if let Some(code) = read_exit_code(&req.run_dir) {
            return Ok(Probe::Ended(code));
        }
        let record_path = req.run_dir.join(JOB_RECORD);
        let (pid, identity) = identify(record, Some(&req.run_dir), &record_path)?;
        let state = match identity {
            Ok(ticks) => procfs::pid_state(pid, ticks).map_err(|e| io_err(proc_path(pid), e))?,
            Err(gone) => gone,
        };
        match state {
            PidState::Running => Ok(Probe::Running),
            gone => {
                // It may have ended between the first look at `exit_code` and now.
                let reason = gone_reason(pid, record.pid_start_ticks, &gone);
                match settle_exit(&req.run_dir, reason).await {
                    JobEnd::Exited { code } => Ok(Probe::Ended(code)),
                    JobEnd::Lost { reason } => Ok(Probe::Dead(reason)),
                    other => Ok(Probe::Dead(format!("{other:?}"))),
                }
            }
        }
    }

    async fn kill_job(&self, record: &JobRecord) -> Result<(), ExecError> {
        let (pid, identity) = identify(record, None, Path::new(JOB_RECORD))?;
        let pgid = procfs::pgid_of(pid).map_err(|e| io_err(proc_path(pid), e))?;
        if let Some(mut own) = self.take_child_by_pid(pid) {
            tracing::info!(pid, "killing local job");
            return procfs::kill_group(pgid, Some(&mut own.child), KILL_GRACE)
                .await
                .map_err(|e| io_err(proc_path(pid), e));
        }
        match identity {
            Ok(ticks) => kill_verified(pid, ticks, pgid).await,
            // Another process has the pid: the job is long gone and that process is not ours.
            Err(PidState::Reused { .. }) => Ok(()),
            // The leader is gone or a zombie; members of its group may remain.
            Err(_) => procfs::kill_group(pgid, None, KILL_GRACE)
                .await
                .map_err(|e| io_err(proc_path(pid), e)),
        }
    }
}

impl Executor for LocalExecutor {
    fn name(&self) -> &'static str {
        "local"
    }

    fn launch<'a>(&'a self, req: &'a JobRequest) -> BoxFut<'a, Result<JobRecord, ExecError>> {
        Box::pin(self.launch_job(req))
    }

    fn wait<'a>(
        &'a self,
        req: &'a JobRequest,
        record: &'a JobRecord,
        stop: CancellationToken,
    ) -> BoxFut<'a, Result<WaitOutcome, ExecError>> {
        Box::pin(self.wait_job(req, record, stop))
    }

    fn probe<'a>(
        &'a self,
        req: &'a JobRequest,
        record: &'a JobRecord,
    ) -> BoxFut<'a, Result<Probe, ExecError>> {
        Box::pin(self.probe_job(req, record))
    }

    fn kill<'a>(&'a self, record: &'a JobRecord) -> BoxFut<'a, Result<(), ExecError>> {
        Box::pin(self.kill_job(record))
    }
}

/// Starts watching the exit of the job `(pid, ticks)`, or says why it is not running.
///
/// The pidfd is opened first and the start time checked after: if the pid still belongs to the
/// job once the pidfd exists, the pidfd refers to the job (not to a later owner of the pid).
fn watch_exit(pid: u32, ticks: u64) -> io::Result<Result<ExitWatch, PidState>> {
    let pidfd = match exitwatch::pidfd_open(pid) {
        Ok(pidfd) => Some(pidfd),
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return Ok(Err(PidState::Missing)),
        Err(e) if exitwatch::pidfd_unsupported(&e) => {
            static WARNED: AtomicBool = AtomicBool::new(false);
            if !WARNED.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    "pidfd_open unavailable ({e}); re-attached jobs are checked at an interval"
                );
            }
            None
        }
        Err(e) => return Err(e),
    };
    match procfs::pid_state(pid, ticks)? {
        PidState::Running => match pidfd {
            Some(pidfd) => ExitWatch::from_pidfd(pidfd).map(Ok),
            None => Ok(Ok(ExitWatch::fallback(pid, ticks))),
        },
        gone => Ok(Err(gone)),
    }
}

/// Kills the group of a job known from its record, unless its pid now belongs to another
/// process (then the job is long gone and the new owner must not be touched). When the leader
/// is gone but members of its group may remain, the group is still killed: a pid cannot be
/// reused while a process group with that id exists.
async fn kill_verified(pid: u32, ticks: u64, pgid: i32) -> Result<(), ExecError> {
    match procfs::pid_state(pid, ticks).map_err(|e| io_err(proc_path(pid), e))? {
        PidState::Reused { start_ticks } => {
            tracing::debug!(
                pid,
                start_ticks,
                "pid reused by another process; the job is gone"
            );
            Ok(())
        }
        _ => {
            tracing::info!(pid, "killing local job");
            procfs::kill_group(pgid, None, KILL_GRACE)
                .await
                .map_err(|e| io_err(proc_path(pid), e))
        }
    }
}

/// Kills and reaps a job whose launch could not be completed.
async fn abandon_launch(pid: u32, child: &mut Child) {
    match procfs::pgid_of(pid) {
        Ok(pgid) => {
            if let Err(e) = procfs::kill_group(pgid, Some(child), KILL_GRACE).await {
                tracing::warn!(pid, "could not kill a job whose launch failed: {e}");
            }
        }
        Err(_) => {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
    }
}

/// The outcome of a job whose process is gone: its exit code if the wrapper wrote one
/// (waiting up to [`EXIT_CODE_SETTLE`] for it to land), else `Lost`.
async fn settle_exit(run_dir: &Path, reason: String) -> JobEnd {
    let deadline = Instant::now() + EXIT_CODE_SETTLE;
    loop {
        if let Some(code) = read_exit_code(run_dir) {
            return JobEnd::Exited { code };
        }
        if Instant::now() >= deadline {
            return JobEnd::Lost { reason };
        }
        tokio::time::sleep(EXIT_CODE_CHECK).await;
    }
}

/// Why a recorded job is not running, in words.
fn gone_reason(pid: u32, ticks: Option<u64>, state: &PidState) -> String {
    match (state, ticks) {
        (PidState::Reused { start_ticks }, Some(ticks)) => format!(
            "pid {pid} now belongs to another process (started at tick {start_ticks}, \
             the job at tick {ticks}) and there is no exit code"
        ),
        (PidState::Reused { .. }, None) => format!(
            "pid {pid} now belongs to another process (not the job's wrapper) and there is \
             no exit code"
        ),
        (PidState::Exited, _) => format!("the job (pid {pid}) exited without an exit code"),
        (PidState::Missing | PidState::Running, _) => {
            format!("no process {pid} and no exit code")
        }
    }
}

/// Identifies the job of a local record: its pid and start ticks, or why no process is the job.
///
/// Records written by [`LocalExecutor::launch`] carry both. A record rebuilt from the wrapper's
/// `pid` file (an engine that died between spawning the job and writing `job.json`) may lack the
/// start time; then the live process `pid` is the job only if it is the wrapper of the job's run
/// dir (its command line says so and that run dir's `pid` file names it). `run_dir` is the job's
/// run dir when known; `record_path` names the record in errors.
fn identify(
    record: &JobRecord,
    run_dir: Option<&Path>,
    record_path: &Path,
) -> Result<(u32, Result<u64, PidState>), ExecError> {
    let Some(pid) = record.pid else {
        return Err(io_err(
            record_path,
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("local job record {} has no pid", record.job_id),
            ),
        ));
    };
    if let Some(ticks) = record.pid_start_ticks {
        return Ok((pid, Ok(ticks)));
    }
    let proc_err = |e| io_err(proc_path(pid), e);
    let Some(stat) = procfs::read_stat(pid).map_err(proc_err)? else {
        return Ok((pid, Err(PidState::Missing)));
    };
    if stat.has_exited() {
        return Ok((pid, Err(PidState::Exited)));
    }
    let is_job = procfs::wrapper_run_dir(pid)
        .map_err(proc_err)?
        .is_some_and(|dir| {
            run_dir.is_none_or(|expected| expected == dir) && read_pid_file(&dir) == Some(pid)
        });
    if is_job {
        Ok((pid, Ok(stat.start_ticks)))
    } else {
        Ok((
            pid,
            Err(PidState::Reused {
                start_ticks: stat.start_ticks,
            }),
        ))
    }
}

/// The pid the wrapper recorded in `<run_dir>/pid`.
fn read_pid_file(run_dir: &Path) -> Option<u32> {
    std::fs::read_to_string(run_dir.join("pid"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
}

/// File in the run dir that receives the wrapper's own error output.
pub const WRAPPER_LOG: &str = "wrapper.log";

/// `: <last line of wrapper.log>` when the wrapper complained, else empty.
fn wrapper_complaint(run_dir: &std::path::Path) -> String {
    std::fs::read_to_string(run_dir.join(WRAPPER_LOG))
        .ok()
        .and_then(|t| {
            t.lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .map(str::to_string)
        })
        .map(|l| format!(": {l}"))
        .unwrap_or_default()
}

/// The instant a re-attached job times out: `started_at + timeout`, counted on the wall clock.
fn deadline_from_record(started_at: &str, timeout: Duration) -> Instant {
    match humantime::parse_rfc3339_weak(started_at) {
        Ok(start) => {
            let remaining = (start + timeout)
                .duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO);
            Instant::now() + remaining
        }
        Err(e) => {
            tracing::warn!(
                started_at,
                "unreadable started_at ({e}); timeout counted from now"
            );
            Instant::now() + timeout
        }
    }
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Runs blocking file work off the async runtime; errors name `path`.
async fn blocking<T: Send + 'static>(
    path: PathBuf,
    work: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> Result<T, ExecError> {
    match tokio::task::spawn_blocking(work).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(source)) => Err(io_err(path, source)),
        Err(join) => Err(io_err(path, io::Error::other(join.to_string()))),
    }
}

fn io_err(path: impl Into<PathBuf>, source: io::Error) -> ExecError {
    ExecError::Io {
        path: path.into(),
        source,
    }
}

/// The procfs directory of `pid`, used to name a process in errors.
fn proc_path(pid: u32) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}"))
}
