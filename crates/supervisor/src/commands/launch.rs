//! Starting the engine in the background: a detached `supervisor run <workdir>` in its own
//! session, its output appended to `<workdir>/logs/engine.log`.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// Starts `supervisor run <workdir>` detached and waits until it holds the lock; returns its pid.
pub fn spawn_background(workdir: &Path) -> Result<u32> {
    if let Some(pid) = autoresearch_engine::lock::holder(workdir)? {
        return Ok(pid);
    }
    let exe = std::env::current_exe().context("finding the supervisor binary")?;
    let logs = workdir.join("logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    let log_path = logs.join("engine.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("opening {}", log_path.display()))?;
    let err = log.try_clone().context("duplicating the log handle")?;
    let mut cmd = Command::new(exe);
    cmd.arg("run")
        .arg(workdir)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(err));
    // SAFETY: setsid() is async-signal-safe; it detaches the engine from our terminal session.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .context("starting `supervisor run` in the background")?;
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if autoresearch_engine::lock::holder(workdir)? == Some(pid) {
            // Reap it in the background so it never lingers as a zombie of this process.
            std::thread::spawn(move || {
                let _ = child.wait();
            });
            return Ok(pid);
        }
        if let Some(status) = child.try_wait()? {
            // Another engine took the workdir first (two sessions starting at once): use it.
            if let Some(pid) = autoresearch_engine::lock::holder(workdir)? {
                return Ok(pid);
            }
            let tail = std::fs::read_to_string(&log_path).unwrap_or_default();
            let tail: Vec<&str> = tail.lines().rev().take(5).collect();
            bail!(
                "the engine exited at once ({status}); {}:\n{}",
                log_path.display(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        if Instant::now() >= deadline {
            bail!(
                "the engine (pid {pid}) did not start within 20 s; see {}",
                log_path.display()
            );
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}
