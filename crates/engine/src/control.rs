//! Live queue commands: `engine/control/` is an inbox of JSON files, one command each.
//!
//! A client writes `engine/control/<name>.json` atomically; the running engine applies the
//! commands in name order between dispatches, writes the result to `engine/control/done/<name>.json`
//! (`{"ok": bool, "message": "..."}`) and removes the command file. When no engine runs, the same
//! commands can be applied to the checkpoint directly with [`crate::checkpoint::edit_offline`].

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::paths::EnginePaths;
use crate::spec::WorkSpec;

/// One queue command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum ControlCommand {
    /// Change the priority of a queued spec.
    Bump {
        /// The spec id.
        id: String,
        /// The new priority (lower runs first).
        priority: f64,
    },
    /// Remove a queued spec.
    Drop {
        /// The spec id.
        id: String,
    },
    /// Add a spec to the queue.
    Add {
        /// The spec.
        spec: WorkSpec,
    },
}

/// The engine's answer to a command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ControlResult {
    /// Whether it was applied.
    pub ok: bool,
    /// What happened, for the user.
    pub message: String,
}

static SEQ: AtomicU64 = AtomicU64::new(0);

/// Drops `cmd` into the inbox; returns the command's file name (its ticket).
pub fn submit(workdir: &Path, cmd: &ControlCommand) -> std::io::Result<String> {
    let dir = EnginePaths::new(workdir).control();
    crate::atomic::create_dir_durable(&dir)?;
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let name = format!(
        "{nanos:024}-{}-{}.json",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    );
    crate::atomic::write_json_atomic(&dir.join(&name), cmd)?;
    Ok(name)
}

/// Waits up to `timeout` for the engine's answer to ticket `name`, then removes the answer.
pub fn wait_result(
    workdir: &Path,
    name: &str,
    timeout: Duration,
) -> std::io::Result<Option<ControlResult>> {
    let done = done_dir(workdir).join(name);
    let deadline = Instant::now() + timeout;
    loop {
        match std::fs::read(&done) {
            Ok(bytes) => {
                let result = serde_json::from_slice(&bytes).map_err(std::io::Error::other)?;
                let _ = std::fs::remove_file(&done);
                return Ok(Some(result));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `engine/control/done/`
pub fn done_dir(workdir: &Path) -> PathBuf {
    EnginePaths::new(workdir).control().join("done")
}

/// Pending command files in apply order.
pub(crate) fn pending(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.extension().is_some_and(|x| x == "json")
                && p.file_name()
                    .is_some_and(|n| !n.to_string_lossy().starts_with('.'))
        })
        .collect();
    files.sort();
    files
}
