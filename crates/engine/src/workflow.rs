//! The [`Workflow`] trait: what a user of the engine plugs in.

use std::future::Future;
use std::sync::Arc;

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::spec::WorkSpec;

/// How a spec's `run` did not complete.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WorkError {
    /// The spec failed; the text is reported as its failure.
    #[error("{0}")]
    Failed(String),
    /// The spec stopped because the engine is being interrupted. It is not a failure: the spec
    /// stays in `running` in the checkpoint and is started again first on resume.
    #[error("interrupted")]
    Interrupted,
    /// The environment failed, not the spec: the workflow could not persist or read its own
    /// files (disk full, I/O error, too many open files; see
    /// [`nofollow::is_transient`](crate::nofollow::is_transient)). The spec is not failed and
    /// its outcome is not reported: it goes back to the front of the queue and is started
    /// again (with [`RunContext::resumed`] set, so it continues from its persisted phase) once
    /// the engine's back-off has passed. Dispatching pauses meanwhile; when the environment
    /// stays broken past the engine's bounded wait, the engine stops as `interrupted` with a
    /// message naming the error.
    #[error("environment error (will retry): {0}")]
    Retry(String),
}

impl WorkError {
    /// A failure with a message.
    pub fn msg(message: impl std::fmt::Display) -> Self {
        WorkError::Failed(message.to_string())
    }
}

/// What the engine knows when it asks the workflow for its starting specs.
#[derive(Debug, Clone, Default)]
pub struct StartInfo {
    /// True when a checkpoint was loaded (this is a resume).
    pub resumed: bool,
    /// Ids of specs queued in the loaded checkpoint.
    pub queued: Vec<String>,
    /// Ids of specs that were running when the checkpoint was written.
    pub running: Vec<String>,
    /// `updated_at` of the loaded checkpoint (RFC 3339): work created after it is missing from
    /// the checkpoint because the engine died before writing it, not because a user removed it.
    pub checkpoint_updated_at: Option<String>,
}

/// How one spec ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// `run` returned `Ok`, with the child specs it proposed.
    Completed {
        /// Proposed children; they enter the queue only through [`Decision::enqueue`].
        children: Vec<WorkSpec>,
    },
    /// `run` returned [`WorkError::Failed`].
    Failed {
        /// The error text.
        message: String,
    },
    /// `run` panicked.
    Panicked {
        /// The panic message.
        message: String,
    },
    /// The engine was interrupted while the spec ran (it returned [`WorkError::Interrupted`] or
    /// was aborted after the grace period); it stays in `running` in the checkpoint and is
    /// started again first on resume.
    Cancelled,
}

/// What the workflow wants done after seeing an outcome.
#[derive(Debug, Clone, Default)]
pub struct Decision {
    /// Specs to add to the queue (ids already queued or running are skipped with a warning).
    pub enqueue: Vec<WorkSpec>,
    /// Stop starting new work, let running specs finish, then end with status `stopped`.
    pub stop: Option<String>,
}

/// Whether a spec may start now.
#[derive(Debug, Clone, PartialEq)]
pub enum Admission {
    /// Start it.
    Start,
    /// Do not start it (it stays queued) and stop the engine gracefully with this reason.
    Stop(String),
}

/// Handed to [`Workflow::run`]: cancellation, resume flag and a way to report progress.
#[derive(Clone)]
pub struct RunContext {
    /// Fires when the engine is interrupted; the spec should persist its phase and return.
    pub cancel: CancellationToken,
    /// True when this spec was running when the previous engine stopped.
    pub resumed: bool,
    pub(crate) reporter: Arc<dyn Reporter>,
    pub(crate) id: Arc<str>,
}

impl RunContext {
    /// Appends a `phase` event for this spec to `events.jsonl` (with optional detail).
    pub fn phase(&self, phase: &str, detail: Option<Value>) {
        self.reporter.phase(&self.id, phase, detail);
    }

    /// Sets this spec's annotation shown in `active.json` (for example a job id).
    pub fn annotate(&self, annotation: Value) {
        self.reporter.annotate(&self.id, annotation);
    }
}

pub(crate) trait Reporter: Send + Sync {
    fn phase(&self, id: &str, phase: &str, detail: Option<Value>);
    fn annotate(&self, id: &str, annotation: Value);
}

/// The domain side of the engine: supplies specs, runs them, and reacts to outcomes.
pub trait Workflow: Send + Sync + 'static {
    /// Specs to add at start. On a fresh run these are the initial specs; on a resume, any extra
    /// specs (for example children re-derived from persisted results). Known ids are skipped.
    fn initial_specs(
        &self,
        start: &StartInfo,
    ) -> impl Future<Output = Result<Vec<WorkSpec>, WorkError>> + Send;

    /// Called just before a spec starts. The default admits everything.
    fn admit(&self, _spec: &WorkSpec) -> Admission {
        Admission::Start
    }

    /// Runs one spec to completion; `Ok` carries proposed child specs.
    fn run(
        &self,
        spec: WorkSpec,
        ctx: RunContext,
    ) -> impl Future<Output = Result<Vec<WorkSpec>, WorkError>> + Send;

    /// Sees every outcome before children enter the queue. The default enqueues all children.
    fn on_outcome(
        &self,
        _spec: &WorkSpec,
        outcome: &Outcome,
    ) -> impl Future<Output = Decision> + Send {
        let enqueue = match outcome {
            Outcome::Completed { children } => children.clone(),
            _ => Vec::new(),
        };
        async move {
            Decision {
                enqueue,
                stop: None,
            }
        }
    }
}
