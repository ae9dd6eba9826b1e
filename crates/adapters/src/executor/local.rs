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
mod identity;
mod procfs;

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use autoresearch_engine::atomic::write_json_atomic;
use tokio::process::Child;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use self::identity::{gone_reason, identify, kill_verified, read_pid_file, watch_exit};
use self::procfs::PidState;
use super::{
    ExecError, Executor, JOB_RECORD, JobEnd, JobRequest, Probe, WaitOutcome, blocking,
    read_exit_code, read_record, wrapper,
};
use crate::model::JobRecord;

/// Time a process group gets between SIGTERM and SIGKILL.
pub(super) const KILL_GRACE: Duration = Duration::from_secs(2);
/// How long to wait for the `exit_code` file after the job's process is gone (the wrapper
/// renames it into place just before exiting; this covers slow or racing filesystems).
const EXIT_CODE_SETTLE: Duration = Duration::from_millis(200);
/// Longest wait for the `pid` of a wrapper that holds the launch lock but has not started yet
/// (forked by an engine that died before its `exec`).
const FORK_WINDOW: Duration = Duration::from_secs(2);
/// Check interval while waiting for the `exit_code` file to settle.
const EXIT_CODE_CHECK: Duration = Duration::from_millis(20);

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
            return Err(ExecError::io(command, e));
        }
        let run_dir = req.run_dir.clone();
        let (wrapper_path, lock, wrapper_log) =
            blocking(req.run_dir.clone(), move || prepare_launch(&run_dir)).await?;
        let lock_fd = lock.as_raw_fd();
        let mut cmd = std::process::Command::new("/bin/sh");
        cmd.arg(&wrapper_path)
            .arg(&req.run_dir)
            .arg(&req.cwd)
            .arg(req.attempt.to_string())
            .arg(req.log_limit_bytes.to_string())
            .envs(req.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(wrapper_log));
        // SAFETY: the hook runs in the forked child before exec, where only async-signal-safe
        // calls are allowed: setsid(2), dup2(2) and fcntl(2) are, and reading errno allocates
        // nothing.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setsid() == -1 {
                    return Err(io::Error::last_os_error());
                }
                // The wrapper keeps the launch lock on fd 9: dup2 gives a copy without
                // close-on-exec, except onto itself, where the flag is cleared instead.
                let kept = if lock_fd == wrapper::LOCK_FD {
                    libc::fcntl(lock_fd, libc::F_SETFD, 0)
                } else {
                    libc::dup2(lock_fd, wrapper::LOCK_FD)
                };
                if kept == -1 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut cmd = tokio::process::Command::from(cmd);
        cmd.kill_on_drop(false);

        let started = Instant::now();
        let started_at = SystemTime::now();
        let spawned = cmd.spawn();
        // The child holds the lock now (or nothing was started): the engine's copy goes.
        drop(lock);
        let mut child = spawned.map_err(|source| ExecError::Spawn {
            program: format!("/bin/sh {}", wrapper_path.display()),
            source,
        })?;
        let Some(pid) = child.id() else {
            return Err(ExecError::Vanished { pid: 0 });
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
            Ok(None) => {
                abandon_launch(pid, &mut child).await;
                return Err(ExecError::Vanished { pid });
            }
            Err(e) => {
                abandon_launch(pid, &mut child).await;
                return Err(ExecError::io(proc_path(pid).join("stat"), e));
            }
        };

        let record_path = req.run_dir.join(JOB_RECORD);
        let to_write = record.clone();
        let written = blocking(record_path.clone(), move || {
            write_json_atomic(&record_path, &to_write).map_err(|e| ExecError::io(record_path, e))
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

    /// Finds a job an earlier engine started for this request before it wrote `job.json`,
    /// without sleeping: `job.json` of this attempt; else the wrapper's `pid` file; else a live
    /// wrapper of this run dir and attempt found in `/proc` while it holds the launch lock.
    /// `None` (the lock is free and no `pid` file exists) means nothing was started.
    ///
    /// Only when the lock is held by a process that is not yet the wrapper (forked, not yet
    /// started: a window of microseconds) does it wait, at most [`FORK_WINDOW`], for its `pid`.
    async fn recover_job(&self, req: &JobRequest) -> Result<Option<JobRecord>, ExecError> {
        let deadline = Instant::now() + FORK_WINDOW;
        loop {
            let run_dir = req.run_dir.clone();
            let attempt = req.attempt;
            match blocking(req.run_dir.clone(), move || recover_in(&run_dir, attempt)).await {
                Err(ExecError::AlreadyRunning { .. }) if Instant::now() < deadline => {
                    tokio::time::sleep(EXIT_CODE_CHECK).await;
                }
                other => return other,
            }
        }
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
        let pgid = procfs::pgid_of(pid).map_err(|e| ExecError::io(proc_path(pid), e))?;
        let deadline = req.timeout.map(|t| own.started + t);
        tokio::select! {
            biased;
            status = own.child.wait() => {
                let status = status.map_err(|e| ExecError::io(proc_path(pid), e))?;
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
                    .map_err(|e| ExecError::io(proc_path(pid), e))?;
                Ok(WaitOutcome::Ended(JobEnd::TimedOut))
            }
            () = stop.cancelled() => {
                if self.cancel_jobs_on_stop {
                    tracing::info!(node = %req.node_id, pid, "stopping: killing local job");
                    procfs::kill_group(pgid, Some(&mut own.child), KILL_GRACE)
                        .await
                        .map_err(|e| ExecError::io(proc_path(pid), e))?;
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
        let pgid = procfs::pgid_of(pid).map_err(|e| ExecError::io(proc_path(pid), e))?;
        let watched = match identity {
            Ok(ticks) => watch_exit(pid, ticks)
                .map_err(|e| ExecError::io(proc_path(pid), e))?
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
                exited.map_err(|e| ExecError::io(proc_path(pid), e))?;
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
            Ok(ticks) => {
                procfs::pid_state(pid, ticks).map_err(|e| ExecError::io(proc_path(pid), e))?
            }
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
        let pgid = procfs::pgid_of(pid).map_err(|e| ExecError::io(proc_path(pid), e))?;
        if let Some(mut own) = self.take_child_by_pid(pid) {
            tracing::info!(pid, "killing local job");
            return procfs::kill_group(pgid, Some(&mut own.child), KILL_GRACE)
                .await
                .map_err(|e| ExecError::io(proc_path(pid), e));
        }
        match identity {
            Ok(ticks) => kill_verified(pid, ticks, pgid).await,
            // Another process has the pid: the job is long gone and that process is not ours.
            Err(PidState::Reused { .. }) => Ok(()),
            // The leader is gone or a zombie; members of its group may remain.
            Err(_) => procfs::kill_group(pgid, None, KILL_GRACE)
                .await
                .map_err(|e| ExecError::io(proc_path(pid), e)),
        }
    }
}

impl Executor for LocalExecutor {
    fn name(&self) -> &'static str {
        "local"
    }

    async fn launch(&self, req: &JobRequest) -> Result<JobRecord, ExecError> {
        self.launch_job(req).await
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
        self.wait_job(req, record, stop).await
    }

    async fn probe(&self, req: &JobRequest, record: &JobRecord) -> Result<Probe, ExecError> {
        self.probe_job(req, record).await
    }

    async fn kill(&self, record: &JobRecord) -> Result<(), ExecError> {
        self.kill_job(record).await
    }
}

/// [`LocalExecutor::recover`] without waiting (see there).
fn recover_in(run_dir: &Path, attempt: u32) -> Result<Option<JobRecord>, ExecError> {
    if let Some(record) = read_record(run_dir, "local", attempt)? {
        return Ok(Some(record));
    }
    let rebuilt = |pid: u32, ticks: Option<u64>| JobRecord {
        job_id: format!("local:{pid}"),
        executor: "local".into(),
        pid: Some(pid),
        pid_start_ticks: ticks,
        slurm_id: None,
        host: autoresearch_engine::state::hostname(),
        started_at: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
        attempt,
    };
    if let Some(pid) = read_pid_file(run_dir) {
        // The wrapper writes `pid` first. Its start time is not read here: the pid may have
        // been reused since; without it, the process is accepted only if it is this run dir's
        // wrapper (its command line and `pid` file say so).
        return Ok(Some(rebuilt(pid, None)));
    }
    if !run_dir.is_dir() {
        return Ok(None);
    }
    if try_lock(run_dir)?.is_some() {
        // No wrapper of this run dir is alive and none wrote a pid: nothing was started.
        return Ok(None);
    }
    match identity::find_wrapper(run_dir, attempt).map_err(|e| ExecError::io("/proc", e))? {
        Some((pid, ticks)) => Ok(Some(rebuilt(pid, Some(ticks)))),
        None => Err(ExecError::AlreadyRunning {
            run_dir: run_dir.to_path_buf(),
        }),
    }
}

/// Writes the wrapper, takes the run dir's launch lock and opens `wrapper.log`, never through a
/// link. A lock already held means a wrapper for this run dir is alive: launching again would
/// run the job twice, so it is refused.
fn prepare_launch(run_dir: &Path) -> Result<(PathBuf, File, File), ExecError> {
    let wrapper_path = wrapper::write_wrapper(run_dir)
        .map_err(|e| ExecError::io(run_dir.join(wrapper::WRAPPER_NAME), e))?;
    let lock = match try_lock(run_dir)? {
        Some(lock) => lock,
        None => {
            return Err(ExecError::AlreadyRunning {
                run_dir: run_dir.to_path_buf(),
            });
        }
    };
    // The wrapper's own complaints (a run dir it cannot write, a cwd it cannot enter) go to
    // `wrapper.log`; the job's output goes to stdout.log/stderr.log through the wrapper.
    let log_path = run_dir.join(WRAPPER_LOG);
    let log = autoresearch_engine::nofollow::open_append(&log_path)
        .map_err(|e| ExecError::io(log_path, e))?;
    Ok((wrapper_path, lock, log))
}

/// The run dir's launch lock, taken, or `None` when a live wrapper holds it.
fn try_lock(run_dir: &Path) -> Result<Option<File>, ExecError> {
    let path = run_dir.join(wrapper::LAUNCH_LOCK);
    let file =
        autoresearch_engine::nofollow::open_rw(&path).map_err(|e| ExecError::io(&path, e))?;
    // SAFETY: flock(2) on a valid open fd; no memory is involved.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(Some(file));
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(None)
    } else {
        Err(ExecError::io(path, e))
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

/// The procfs directory of `pid`, used to name a process in errors.
pub(super) fn proc_path(pid: u32) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}"))
}
