//! Typed errors of the engine. Messages say what failed and where; they name no program (the
//! binary that embeds the engine adds its own hints).

use std::path::{Path, PathBuf};

use crate::checkpoint::CheckpointError;
use crate::spec::SpecError;
use crate::workflow::WorkError;

/// Everything that can stop the engine from running, or a queue edit from applying.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// Another engine holds the workdir's lock.
    #[error(
        "{} is locked by another engine (pid {}); stop that engine first or use another workdir",
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
        #[source]
        source: std::io::Error,
    },
    /// The engine could not write one of its files.
    #[error(transparent)]
    Write(#[from] WriteError),
    /// The workflow failed to supply its starting specs.
    #[error("workflow failed to start: {0}")]
    Workflow(#[source] WorkError),
    /// A configuration value is out of range.
    #[error("invalid engine configuration: {0}")]
    Config(String),
    /// A queue edit names a spec that is not queued.
    #[error("{id} is not in the queue")]
    NotQueued {
        /// The spec id.
        id: String,
    },
    /// A queue edit names a spec that already runs.
    #[error("{id} is already running; only queued specs can be changed")]
    AlreadyRunning {
        /// The spec id.
        id: String,
    },
    /// A spec to add has the id of a queued or running spec.
    #[error("{id} is already queued or running")]
    AlreadyKnown {
        /// The spec id.
        id: String,
    },
    /// A spec to add (or a new priority) is not valid.
    #[error(transparent)]
    Spec(#[from] SpecError),
}

impl EngineError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        EngineError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// A file of the engine that could not be written (after retrying, when the error was
/// transient): names the file and keeps the cause.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {}: {source}", path.display())]
pub struct WriteError {
    /// The file that failed.
    pub path: PathBuf,
    /// The cause.
    #[source]
    pub source: std::io::Error,
}

impl WriteError {
    pub(crate) fn new(path: &Path, source: std::io::Error) -> Self {
        WriteError {
            path: path.to_path_buf(),
            source,
        }
    }

    /// Whether the cause is a temporary failure of the environment (see
    /// [`nofollow::is_transient`](crate::nofollow::is_transient)).
    pub fn is_transient(&self) -> bool {
        crate::nofollow::is_transient(&self.source)
    }
}
