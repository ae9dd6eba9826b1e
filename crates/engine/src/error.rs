//! Typed errors of the engine.

use std::path::{Path, PathBuf};

use crate::checkpoint::CheckpointError;

/// Everything that can stop the engine from running.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Another engine holds the workdir's lock.
    #[error(
        "{} is locked by another engine (pid {}); stop it first (`supervisor stop`) or use another workdir",
        path.display(),
        pid.map(|p| p.to_string()).unwrap_or_else(|| "unknown".into())
    )]
    Locked {
        /// The lock file.
        path: PathBuf,
        /// The holder's pid, when readable.
        pid: Option<u32>,
    },
    /// The checkpoint on disk is not valid; it was left untouched.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// A file operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The workflow failed to supply its starting specs.
    #[error("workflow failed to start: {0}")]
    Workflow(String),
    /// A configuration value is out of range.
    #[error("invalid engine configuration: {0}")]
    Config(String),
}

impl EngineError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        EngineError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
