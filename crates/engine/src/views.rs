//! `engine/queue.json` and `engine/active.json`: read-only views of the queue and of the running
//! specs, rewritten with the checkpoint. One type each, borrowed when the engine writes it and
//! owned (`'static`) when a reader loads it.

use std::borrow::Cow;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `engine/queue.json`: the queued specs in run order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueView<'a> {
    /// When it was written (RFC 3339, ms).
    pub updated_at: Cow<'a, str>,
    /// Queued specs, first to run first.
    pub queued: Vec<QueuedSpec<'a>>,
}

/// One queued spec in `queue.json` (its payload stays in the checkpoint).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueuedSpec<'a> {
    /// The spec id.
    pub id: Cow<'a, str>,
    /// Its priority.
    pub priority: f64,
    /// Its kind.
    pub kind: Cow<'a, str>,
}

/// `engine/active.json`: the running specs, oldest first. `A` is the type of the workflow's
/// annotations (see [`RunContext::annotate`](crate::RunContext::annotate)).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound(deserialize = "A: DeserializeOwned"))]
pub struct ActiveView<'a, A = Value> {
    /// When it was written (RFC 3339, ms).
    pub updated_at: Cow<'a, str>,
    /// Running specs.
    pub running: Vec<ActiveSpec<'a, A>>,
}

/// One running spec in `active.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound(deserialize = "A: DeserializeOwned"))]
pub struct ActiveSpec<'a, A = Value> {
    /// The spec id.
    pub id: Cow<'a, str>,
    /// Its kind.
    pub kind: Cow<'a, str>,
    /// When it started (RFC 3339).
    pub started_at: Cow<'a, str>,
    /// The workflow's annotation (for example the id of an external task), when it set one.
    #[serde(default = "none")]
    pub annotation: Option<A>,
}

fn none<A>() -> Option<A> {
    None
}

/// Reads `engine/queue.json` of `workdir`; `Ok(None)` when there is none.
pub fn read_queue(workdir: &Path) -> std::io::Result<Option<QueueView<'static>>> {
    read_json(&crate::paths::EnginePaths::new(workdir).queue_view())
}

/// Reads `engine/active.json` of `workdir` with annotations of type `A`; `Ok(None)` when there
/// is none.
pub fn read_active<A: DeserializeOwned>(
    workdir: &Path,
) -> std::io::Result<Option<ActiveView<'static, A>>> {
    read_json(&crate::paths::EnginePaths::new(workdir).active_view())
}

/// Reads a JSON file of the engine (regular file only, at most 1 GiB); errors name the file.
pub(crate) fn read_json<T: DeserializeOwned>(path: &Path) -> std::io::Result<Option<T>> {
    let Some(bytes) = crate::nofollow::read_regular(path, 1 << 30)? else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes).map(Some).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{}: {e}", path.display()),
        )
    })
}
