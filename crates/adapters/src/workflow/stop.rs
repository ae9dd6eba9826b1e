//! Why a step of a node's lifecycle did not finish ([`Stop`]): the experiment failed
//! ([`Fail`], recorded as the node's failure with the tails of its logs), the engine is stopping,
//! or the environment failed (retried later, never the experiment's failure). Shared by every
//! phase (`lifecycle`, `jobs`, `analysis`, `repeats`, `planning`), so none of them imports another
//! for its error type.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use serde_json::Value;

use super::nodes::NodeError;
use crate::model::{FailureKind, NodeStatus};

/// Longest tail of a log kept in failure details.
const TAIL_BYTES: u64 = 8192;

/// A failure to record: kind, phase, message and details.
pub(crate) struct Fail {
    pub kind: FailureKind,
    pub phase: NodeStatus,
    pub message: String,
    pub retryable: bool,
    pub details: Value,
}

impl Fail {
    pub(crate) fn new(kind: FailureKind, phase: NodeStatus, message: impl Into<String>) -> Self {
        Fail {
            kind,
            phase,
            message: message.into(),
            retryable: matches!(
                kind,
                FailureKind::Timeout | FailureKind::Lost | FailureKind::Launch
            ),
            details: Value::Null,
        }
    }

    pub(crate) fn details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }
}

/// Why a step did not finish: the experiment failed (recorded), the engine is stopping, or
/// the environment failed (retried later, never recorded as the experiment's failure).
pub(crate) enum Stop {
    Fail(Fail),
    Interrupted,
    /// The workflow's own I/O failed; the text names the file.
    Env(String),
}

impl From<Fail> for Stop {
    fn from(f: Fail) -> Self {
        Stop::Fail(f)
    }
}

impl From<NodeError> for Stop {
    fn from(e: NodeError) -> Self {
        Stop::Env(e.to_string())
    }
}

/// The last `n` lines of a text file (lossy, from its last 8 KiB), for failure details. A link
/// or anything but a regular file gives an empty tail.
pub(crate) fn tail(path: &Path, n: usize) -> String {
    use std::os::unix::fs::OpenOptionsExt;
    let Ok(mut file) = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
    else {
        return String::new();
    };
    let Ok(meta) = file.metadata() else {
        return String::new();
    };
    if !meta.is_file() {
        return String::new();
    }
    let start = meta.len().saturating_sub(TAIL_BYTES);
    let mut bytes = Vec::new();
    if file.seek(SeekFrom::Start(start)).is_err()
        || file.take(TAIL_BYTES).read_to_end(&mut bytes).is_err()
    {
        return String::new();
    }
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
