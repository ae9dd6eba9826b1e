//! Waiting for the exit of a process that is not our child (a job re-attached after an engine
//! restart), woken by the exit itself through a Linux pidfd.
//!
//! A pidfd becomes readable when its process exits. Tokio's `AsyncFd` would watch it on the
//! runtime's reactor, but it needs tokio's `net` feature, which this workspace does not enable;
//! so a small dedicated thread blocks in `poll(2)` on the pidfd together with the read end of a
//! pipe. Dropping the [`ExitWatch`] closes the pipe's write end, which wakes the thread so it
//! ends: no thread outlives the wait. Where pidfds are unavailable (kernels before 5.3, some
//! seccomp sandboxes), the exit is detected by checking `/proc` at a short interval instead.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use tokio::sync::oneshot;

use super::procfs::{self, PidState};

/// Check interval of the fallback used when the kernel offers no pidfds.
const FALLBACK_INTERVAL: Duration = Duration::from_millis(100);

/// Opens a pidfd for `pid` (close-on-exec, as pidfd_open(2) always sets it).
pub(super) fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    let pid = libc::pid_t::try_from(pid)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "pid out of range"))?;
    // SAFETY: pidfd_open takes (pid_t, unsigned int flags) and returns a new fd or -1; it
    // touches no memory of ours.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = libc::c_int::try_from(fd)
        .map_err(|_| io::Error::other("pidfd_open returned an out-of-range fd"))?;
    // SAFETY: `fd` was just returned by the kernel, is open, and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Whether a pidfd_open error means "no pidfd support here" (rather than "no such process").
pub(super) fn pidfd_unsupported(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOSYS) | Some(libc::EPERM) | Some(libc::EINVAL)
    )
}

/// Creates a close-on-exec pipe, so jobs spawned concurrently never inherit either end (an
/// inherited write end would keep the watcher thread from ever being woken by a drop).
fn cloexec_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` is a valid, writable array of two c_ints, as pipe2(2) requires.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both fds were just created by pipe2 and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Blocks until `pidfd` is readable (`Ok(true)`: the process exited) or `wake` hangs up
/// (`Ok(false)`: the watcher was dropped).
fn block_until_exit(pidfd: &OwnedFd, wake: &OwnedFd) -> io::Result<bool> {
    loop {
        let mut fds = [
            libc::pollfd {
                fd: pidfd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: wake.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: `fds` is a valid array of 2 pollfds that lives across the call; both fds are
        // open (owned by this thread's borrows).
        let rc = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        if rc < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        if fds[0].revents != 0 {
            return Ok(true);
        }
        if fds[1].revents != 0 {
            return Ok(false);
        }
    }
}

/// Waits for the exit of one process that is not necessarily our child.
#[derive(Debug)]
pub(super) enum ExitWatch {
    /// A thread blocked on the process's pidfd.
    Pidfd {
        /// Receives the thread's result.
        done: oneshot::Receiver<io::Result<bool>>,
        /// Dropping it wakes and ends the thread.
        _wake: OwnedFd,
    },
    /// No pidfds: `/proc` is checked at [`FALLBACK_INTERVAL`].
    Fallback {
        /// The process.
        pid: u32,
        /// Its start time, to tell it from a later process with the same pid.
        start_ticks: u64,
    },
}

impl ExitWatch {
    /// Starts watching the process behind `pidfd`.
    pub(super) fn from_pidfd(pidfd: OwnedFd) -> io::Result<Self> {
        let (wake_read, wake_write) = cloexec_pipe()?;
        let (tx, rx) = oneshot::channel();
        std::thread::Builder::new()
            .name("local-job-exit".into())
            .spawn(move || {
                let result = block_until_exit(&pidfd, &wake_read);
                // The receiver is gone when the wait was abandoned; nothing to report then.
                let _ = tx.send(result);
            })?;
        Ok(ExitWatch::Pidfd {
            done: rx,
            _wake: wake_write,
        })
    }

    /// Watches `/proc/<pid>` at an interval (platforms without pidfds).
    pub(super) fn fallback(pid: u32, start_ticks: u64) -> Self {
        ExitWatch::Fallback { pid, start_ticks }
    }

    /// Resolves when the process has exited. Cancel-safe (a dropped call may be repeated) until
    /// it has resolved once; call it no more after that.
    pub(super) async fn exited(&mut self) -> io::Result<()> {
        match self {
            ExitWatch::Pidfd { done, .. } => match done.await {
                Ok(Ok(true)) => Ok(()),
                Ok(Err(e)) => Err(e),
                Ok(Ok(false)) | Err(_) => Err(io::Error::other("exit watcher thread ended early")),
            },
            ExitWatch::Fallback { pid, start_ticks } => loop {
                match procfs::pid_state(*pid, *start_ticks)? {
                    PidState::Running => tokio::time::sleep(FALLBACK_INTERVAL).await,
                    _ => return Ok(()),
                }
            },
        }
    }
}
