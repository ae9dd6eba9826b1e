//! Linux process facts read from `/proc`, and signals sent to whole process groups.
//!
//! A pid alone does not identify a process: after it exits its number may be given to another
//! one. A job is therefore identified by its pid *and* its start time (field 22 of
//! `/proc/<pid>/stat`, in clock ticks since boot), which never changes for a process and differs
//! for any later process that reuses the number.

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::process::Child;

/// How often a process group is checked for survivors while it is being killed.
const GROUP_CHECK_INTERVAL: Duration = Duration::from_millis(25);

/// The fields of `/proc/<pid>/stat` this executor uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ProcStat {
    /// Field 3: `R`, `S`, `D`, `Z` (zombie), `X` (dead), ...
    pub state: char,
    /// Field 5: the process group id.
    pub pgrp: i32,
    /// Field 6: the session id.
    pub session: i32,
    /// Field 22: the start time in clock ticks since boot.
    pub start_ticks: u64,
}

impl ProcStat {
    /// Whether the process has exited (a zombie waiting to be reaped, or being torn down).
    pub(super) fn has_exited(&self) -> bool {
        matches!(self.state, 'Z' | 'X' | 'x')
    }
}

/// Parses the text of `/proc/<pid>/stat`.
///
/// The command name (field 2) is in parentheses and may itself contain spaces and parentheses,
/// so the fields after it are found after the *last* `)`.
pub(super) fn parse_stat(text: &str) -> Option<ProcStat> {
    let close = text.rfind(')')?;
    let mut fields = text.get(close + 1..)?.split_ascii_whitespace();
    let state = fields.next()?.chars().next()?; // field 3
    let _ppid = fields.next()?; // field 4
    let pgrp = fields.next()?.parse().ok()?; // field 5
    let session = fields.next()?.parse().ok()?; // field 6
    // nth(0) is field 7, so nth(15) is field 22.
    let start_ticks = fields.nth(15)?.parse().ok()?;
    Some(ProcStat {
        state,
        pgrp,
        session,
        start_ticks,
    })
}

/// Reads `/proc/<pid>/stat`; `Ok(None)` when no such process exists.
pub(super) fn read_stat(pid: u32) -> io::Result<Option<ProcStat>> {
    let path = format!("/proc/{pid}/stat");
    match std::fs::read_to_string(&path) {
        Ok(text) => parse_stat(&text).map(Some).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{path}: unexpected format"),
            )
        }),
        Err(e) if is_gone(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Whether an error reading `/proc/<pid>/...` means the process does not exist (any more).
fn is_gone(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ESRCH)
}

/// What a recorded `(pid, start ticks)` pair refers to now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum PidState {
    /// The job's process is running.
    Running,
    /// The job's process has exited but is not reaped yet (a zombie).
    Exited,
    /// No process has this pid.
    Missing,
    /// Another process has this pid now (its start ticks differ from the record's).
    Reused {
        /// The start ticks of the process that has the pid now.
        start_ticks: u64,
    },
}

/// Finds out whether the process `pid` that started at `start_ticks` still runs.
pub(super) fn pid_state(pid: u32, start_ticks: u64) -> io::Result<PidState> {
    Ok(match read_stat(pid)? {
        None => PidState::Missing,
        Some(st) if st.start_ticks != start_ticks => PidState::Reused {
            start_ticks: st.start_ticks,
        },
        Some(st) if st.has_exited() => PidState::Exited,
        Some(_) => PidState::Running,
    })
}

/// If process `pid` is a job wrapper (`/bin/sh <run_dir>/wrapper.sh <run_dir> <cwd> [<attempt>
/// ...]`), its run dir and attempt; `Ok(None)` for any other process or no process.
pub(super) fn wrapper_of(pid: u32) -> io::Result<Option<(PathBuf, Option<u32>)>> {
    let bytes = match std::fs::read(format!("/proc/{pid}/cmdline")) {
        Ok(bytes) => bytes,
        Err(e) if is_gone(&e) => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut args = bytes.split(|&b| b == 0);
    let (Some(_shell), Some(wrapper), Some(run_dir)) = (args.next(), args.next(), args.next())
    else {
        return Ok(None);
    };
    let attempt = args
        .nth(1)
        .and_then(|a| std::str::from_utf8(a).ok())
        .and_then(|a| a.parse().ok());
    let run_dir = PathBuf::from(OsStr::from_bytes(run_dir));
    let expected = run_dir.join(crate::executor::wrapper::WRAPPER_NAME);
    Ok((Path::new(OsStr::from_bytes(wrapper)) == expected).then_some((run_dir, attempt)))
}

/// Converts a recorded pid into a process group id that is safe to signal as `-pgid`.
///
/// 0 and 1 are refused: `kill(0, _)` signals our own group and `kill(-1, _)` every process.
pub(super) fn pgid_of(pid: u32) -> io::Result<i32> {
    match i32::try_from(pid) {
        Ok(p) if p > 1 => Ok(p),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("refusing to signal process group {pid}"),
        )),
    }
}

/// Sends `sig` to every process of group `pgid`; a group that no longer exists is not an error.
pub(super) fn signal_group(pgid: i32, sig: libc::c_int) -> io::Result<()> {
    debug_assert!(pgid > 1);
    // SAFETY: kill(2) has no memory-safety preconditions; a negative pid addresses the group.
    let rc = unsafe { libc::kill(-pgid, sig) };
    if rc == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::ESRCH) {
        Ok(())
    } else {
        Err(err)
    }
}

/// Whether any process of group `pgid` is still alive (zombies do not count: they have exited
/// and only wait for their parent, possibly a non-reaping init, to collect them).
pub(super) fn group_alive(pgid: i32) -> bool {
    // SAFETY: signal 0 only checks for existence and permission; nothing is delivered.
    let rc = unsafe { libc::kill(-pgid, 0) };
    if rc != 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH) {
        return false;
    }
    // Some member exists, maybe only zombies: look for a live one.
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return true;
    };
    entries.flatten().any(|entry| {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            return false;
        };
        matches!(read_stat(pid), Ok(Some(st)) if st.pgrp == pgid && !st.has_exited())
    })
}

/// Waits until group `pgid` has no live process or `limit` elapses; returns whether it is gone.
/// Reaps `child` (the group leader, when it is ours) along the way.
async fn wait_group_gone(pgid: i32, child: &mut Option<&mut Child>, limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(c) = child.as_deref_mut() {
            // Reaping only; the exit status is not needed after a kill.
            let _ = c.try_wait();
        }
        if !group_alive(pgid) {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(GROUP_CHECK_INTERVAL).await;
    }
}

/// Kills the whole process group `pgid`: SIGTERM, then SIGKILL after `grace` if anything
/// survives, then waits (bounded) until no live member is left. `child` is the group leader when
/// this process spawned it; it is reaped so no zombie is left behind.
pub(super) async fn kill_group(
    pgid: i32,
    mut child: Option<&mut Child>,
    grace: Duration,
) -> io::Result<()> {
    signal_group(pgid, libc::SIGTERM)?;
    if !wait_group_gone(pgid, &mut child, grace).await {
        tracing::debug!(pgid, "process group survived SIGTERM; sending SIGKILL");
        signal_group(pgid, libc::SIGKILL)?;
        if !wait_group_gone(pgid, &mut child, Duration::from_secs(5)).await {
            tracing::warn!(pgid, "process group still has live processes after SIGKILL");
        }
    }
    if let Some(c) = child {
        // The leader is dead by now; collect it (bounded, in case it is stuck in the kernel).
        let _ = tokio::time::timeout(Duration::from_secs(1), c.wait()).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat_line(comm: &str) -> String {
        // Fields 3..=22 then a few more, as the kernel prints them.
        format!(
            "4242 ({comm}) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 \
             2371584 230 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0"
        )
    }

    #[test]
    fn parses_plain_comm() {
        let st = parse_stat(&stat_line("sleep")).expect("parses");
        assert_eq!(
            st,
            ProcStat {
                state: 'S',
                pgrp: 4242,
                session: 4242,
                start_ticks: 987654
            }
        );
    }

    #[test]
    fn parses_comm_with_spaces_and_parens() {
        let st = parse_stat(&stat_line("a) b (c) Z 9 9")).expect("parses");
        assert_eq!(st.state, 'S');
        assert_eq!(st.start_ticks, 987654);
        assert_eq!(st.pgrp, 4242);
    }

    #[test]
    fn rejects_truncated_stat() {
        assert_eq!(parse_stat("12 (x) S 1 12"), None);
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn reads_own_stat() {
        let st = read_stat(std::process::id())
            .expect("readable")
            .expect("exists");
        assert!(!st.has_exited());
        assert!(st.start_ticks > 0);
    }

    #[test]
    fn refuses_dangerous_pgids() {
        assert!(pgid_of(0).is_err());
        assert!(pgid_of(1).is_err());
        assert!(pgid_of(u32::MAX).is_err());
        assert_eq!(pgid_of(1234).ok(), Some(1234));
    }
}
