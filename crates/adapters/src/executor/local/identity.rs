//! Who a recorded job is: a pid is trusted only together with the process start time recorded
//! at launch, or, for a record rebuilt from the wrapper's `pid` file, only if the live process
//! is this run dir's wrapper; and finding a wrapper still running for a run dir (to re-attach
//! after a crash between spawning it and writing `job.json`) without waiting.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use super::exitwatch::{self, ExitWatch};
use super::procfs::{self, PidState};
use super::{KILL_GRACE, proc_path};
use crate::executor::ExecError;
use crate::model::JobRecord;

/// Starts watching the exit of the job `(pid, ticks)`, or says why it is not running.
///
/// The pidfd is opened first and the start time checked after: if the pid still belongs to the
/// job once the pidfd exists, the pidfd refers to the job (not to a later owner of the pid).
pub(super) fn watch_exit(pid: u32, ticks: u64) -> io::Result<Result<ExitWatch, PidState>> {
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
pub(super) async fn kill_verified(pid: u32, ticks: u64, pgid: i32) -> Result<(), ExecError> {
    match procfs::pid_state(pid, ticks).map_err(|e| ExecError::io(proc_path(pid), e))? {
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
                .map_err(|e| ExecError::io(proc_path(pid), e))
        }
    }
}

/// Why a recorded job is not running, in words.
pub(super) fn gone_reason(pid: u32, ticks: Option<u64>, state: &PidState) -> String {
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
pub(super) fn identify(
    record: &JobRecord,
    run_dir: Option<&Path>,
    record_path: &Path,
) -> Result<(u32, Result<u64, PidState>), ExecError> {
    let Some(pid) = record.pid else {
        return Err(ExecError::io(
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
    let proc_err = |e| ExecError::io(proc_path(pid), e);
    let Some(stat) = procfs::read_stat(pid).map_err(proc_err)? else {
        return Ok((pid, Err(PidState::Missing)));
    };
    if stat.has_exited() {
        return Ok((pid, Err(PidState::Exited)));
    }
    let is_job = wrapper_run_dir(pid).map_err(proc_err)?.is_some_and(|dir| {
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
pub(super) fn read_pid_file(run_dir: &Path) -> Option<u32> {
    std::fs::read_to_string(run_dir.join("pid"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
}

/// The pid of a live wrapper of `run_dir` for `attempt`, found by its command line in `/proc`
/// (`/bin/sh <run_dir>/wrapper.sh <run_dir> <cwd> <attempt> ...`), with its start ticks.
pub(super) fn find_wrapper(run_dir: &Path, attempt: u32) -> io::Result<Option<(u32, u64)>> {
    let entries = std::fs::read_dir("/proc")?;
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(Some((dir, att))) = procfs::wrapper_of(pid) else {
            continue;
        };
        if dir == run_dir && att == Some(attempt) {
            match procfs::read_stat(pid)? {
                Some(stat) if !stat.has_exited() => return Ok(Some((pid, stat.start_ticks))),
                _ => {}
            }
        }
    }
    Ok(None)
}

/// The run dir a process is the wrapper of, if it is one.
pub(super) fn wrapper_run_dir(pid: u32) -> io::Result<Option<PathBuf>> {
    Ok(procfs::wrapper_of(pid)?.map(|(dir, _)| dir))
}
