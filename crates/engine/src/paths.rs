//! Where the engine's files live inside a workdir.

use std::path::{Path, PathBuf};

/// Paths of the engine's files under `<workdir>/engine/`.
#[derive(Debug, Clone)]
pub struct EnginePaths {
    /// `<workdir>/engine`
    pub dir: PathBuf,
}

impl EnginePaths {
    /// Paths for a workdir.
    pub fn new(workdir: &Path) -> Self {
        EnginePaths {
            dir: workdir.join("engine"),
        }
    }
    /// `engine/checkpoint.json`
    pub fn checkpoint(&self) -> PathBuf {
        self.dir.join("checkpoint.json")
    }
    /// `engine/engine_state.json`
    pub fn state(&self) -> PathBuf {
        self.dir.join("engine_state.json")
    }
    /// `engine/queue.json`
    pub fn queue_view(&self) -> PathBuf {
        self.dir.join("queue.json")
    }
    /// `engine/active.json`
    pub fn active_view(&self) -> PathBuf {
        self.dir.join("active.json")
    }
    /// `engine/events.jsonl`
    pub fn events(&self) -> PathBuf {
        self.dir.join("events.jsonl")
    }
    /// `engine/control/`
    pub fn control(&self) -> PathBuf {
        self.dir.join("control")
    }
    /// `engine/lock`
    pub fn lock(&self) -> PathBuf {
        self.dir.join("lock")
    }
}
