//! `supervisor stop`: a graceful interrupt (SIGINT to the engine), then wait until it has
//! written its final checkpoint and released the lock.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

/// Interrupts the engine on `workdir` and waits up to `timeout`.
pub fn stop(workdir: &Path, timeout: Duration) -> Result<String> {
    super::require_workdir(workdir)?;
    let Some(pid) = autoresearch_engine::lock::holder(workdir)? else {
        let st = super::status::gather(workdir)?;
        return Ok(format!(
            "no engine is running on {} (status: {})",
            workdir.display(),
            st.status
        ));
    };
    if pid == 0 {
        bail!("the engine's lock is held but its pid is unreadable; stop it by hand");
    }
    // SAFETY: kill(2) with a pid read from the lock file and a valid signal number.
    let rc = unsafe { libc::kill(pid as libc::pid_t, libc::SIGINT) };
    if rc != 0 {
        bail!(
            "cannot signal the engine (pid {pid}): {}",
            std::io::Error::last_os_error()
        );
    }
    let deadline = Instant::now() + timeout;
    while autoresearch_engine::lock::holder(workdir)?.is_some() {
        if Instant::now() >= deadline {
            bail!(
                "the engine (pid {pid}) is still shutting down after {} s; run `supervisor stop` again to shorten its grace period",
                timeout.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let st = super::status::gather(workdir)?;
    Ok(format!("engine (pid {pid}) stopped: {}", st.status))
}
