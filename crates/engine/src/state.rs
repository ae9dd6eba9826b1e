//! `engine/engine_state.json`: who runs the engine, since when, and how far it got.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// Status of the engine as written in `checkpoint.json` and `engine_state.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineStatus {
    /// The engine is (or claims to be) running.
    Running,
    /// Stopped by a signal or cancellation; resumable.
    Interrupted,
    /// Finished: queue drained or the workflow asked to stop.
    Stopped,
    /// The engine itself failed (only in `engine_state.json`).
    Failed,
}

impl EngineStatus {
    /// The lowercase name used in files.
    pub fn as_str(self) -> &'static str {
        match self {
            EngineStatus::Running => "running",
            EngineStatus::Interrupted => "interrupted",
            EngineStatus::Stopped => "stopped",
            EngineStatus::Failed => "failed",
        }
    }
}

/// Spec counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Specs waiting in the queue.
    pub queued: u64,
    /// Specs running now (or kept running by an interrupt).
    pub running: u64,
    /// Specs that completed, over all resumes.
    pub completed: u64,
    /// Specs that failed or panicked, over all resumes.
    pub failed: u64,
}

/// Contents of `engine/engine_state.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EngineState {
    /// Format version (1).
    pub schema_version: u32,
    /// Engine status.
    pub status: EngineStatus,
    /// Process id of the engine.
    pub pid: u32,
    /// Host name of the engine.
    pub host: String,
    /// When this engine process started (RFC 3339).
    pub started_at: String,
    /// Last heartbeat (RFC 3339).
    pub heartbeat_at: String,
    /// Concurrency bound.
    pub max_concurrency: usize,
    /// Spec counts.
    pub counts: Counts,
    /// Why the engine stopped, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_reason: Option<String>,
}

/// Reads `engine_state.json`; `Ok(None)` when it does not exist. Errors name the file.
pub fn read_state(workdir: &Path) -> std::io::Result<Option<EngineState>> {
    crate::views::read_json(&crate::paths::EnginePaths::new(workdir).state())
}

/// This machine's host name (best effort).
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: buf is valid for 256 bytes; gethostname writes a NUL-terminated name into it.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unknown".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}
