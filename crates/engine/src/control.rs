//! Queue commands: `engine/control/` is the inbox of a running engine, one command per JSON file;
//! [`edit_offline`] applies the same commands to the checkpoint of a stopped one.
//!
//! A client writes `engine/control/<name>.json` atomically ([`submit`]); the running engine
//! applies the commands in name order between dispatches, makes the result durable in the
//! checkpoint, writes its answer to `engine/control/done/<name>.json` ([`ControlResult`]) and
//! removes the command file ([`wait_result`] reads the answer).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::checkpoint;
use crate::command::{self, QueueState};
use crate::error::EngineError;
use crate::paths::EnginePaths;
use crate::spec::WorkSpec;

/// The largest command file the engine reads.
const MAX_COMMAND_BYTES: u64 = 16 << 20;

/// One queue command (a file of the inbox).
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

/// The engine's answer to a command (a file of `control/done/`).
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
    crate::nofollow::create_dir_under(workdir, &dir)?;
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
        if let Some(bytes) = crate::nofollow::read_regular(&done, MAX_COMMAND_BYTES)? {
            let result = serde_json::from_slice(&bytes).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}: {e}", done.display()),
                )
            })?;
            let _ = std::fs::remove_file(&done);
            return Ok(Some(result));
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

/// Reads one command file; the error names the file and says what is wrong with it.
pub(crate) fn read_command(file: &Path) -> Result<ControlCommand, String> {
    let bytes = match crate::nofollow::read_regular(file, MAX_COMMAND_BYTES) {
        Ok(Some(b)) => b,
        Ok(None) => return Err(format!("{}: the command file vanished", file.display())),
        Err(e) => return Err(format!("{}: cannot read the command: {e}", file.display())),
    };
    crate::serde_error::from_json_slice(&bytes, |_| {}).map_err(|e| {
        let field = if e.path.is_empty() {
            String::new()
        } else {
            format!("{}: ", e.path)
        };
        let at = if e.line == 0 {
            String::new()
        } else {
            format!(":{}:{}", e.line, e.column)
        };
        format!(
            "{}{at}: not a valid command: {field}{}",
            file.display(),
            e.message
        )
    })
}

/// Applies queue commands to the checkpoint of a stopped engine (atomic rewrite).
///
/// Takes the workdir's lock (so it fails with [`EngineError::Locked`] when an engine runs: use
/// the inbox then). Every command must apply, or the file is left unchanged and the first
/// failure returned ([`EngineError::NotQueued`], …). Returns one message per command.
pub fn edit_offline(
    workdir: &Path,
    commands: &[ControlCommand],
) -> Result<Vec<String>, EngineError> {
    let lock = crate::lock::acquire(workdir)?;
    let path = EnginePaths::new(workdir).checkpoint();
    let mut cp = checkpoint::load(&path)?.ok_or_else(|| {
        EngineError::io(
            &path,
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no checkpoint yet: start the run first",
            ),
        )
    })?;
    let mut messages = Vec::new();
    for cmd in commands {
        messages.push(command::apply(&mut Offline(&mut cp), cmd)?.to_string());
    }
    cp.queued.sort_by(|a, b| a.priority.total_cmp(&b.priority));
    cp.updated_at = crate::util::now_rfc3339_millis();
    cp.revision += 1;
    checkpoint::save(&path, &cp).map_err(|e| EngineError::io(&path, e))?;
    drop(lock);
    Ok(messages)
}

/// The lists of a checkpoint file as a queue.
struct Offline<'a>(&'a mut checkpoint::Checkpoint);

impl QueueState for Offline<'_> {
    fn set_priority(&mut self, id: &str, priority: f64) -> bool {
        match self.0.queued.iter_mut().find(|s| s.id == id) {
            Some(spec) => {
                spec.priority = priority;
                true
            }
            None => false,
        }
    }
    fn remove(&mut self, id: &str) -> bool {
        let before = self.0.queued.len();
        self.0.queued.retain(|s| s.id != id);
        self.0.queued.len() != before
    }
    fn is_running(&self, id: &str) -> bool {
        self.0.running.iter().any(|s| s.id == id)
    }
    fn is_known(&self, id: &str) -> bool {
        self.0
            .queued
            .iter()
            .chain(&self.0.running)
            .any(|s| s.id == id)
    }
    fn add(&mut self, spec: WorkSpec) {
        self.0.queued.push(spec);
    }
}
