//! The [`Workflow`] trait: what a user of the engine plugs in.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::events::{Event, EventLog};
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
#[non_exhaustive]
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
    /// The engine's event log: keep a clone to append the workflow's own events to
    /// `events.jsonl` outside a spec run (see [`EventLog::emit`]).
    pub events: EventLog,
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
#[derive(Debug, Clone)]
pub struct RunContext {
    /// Fires when the engine is interrupted; the spec should persist its phase and return.
    pub cancel: CancellationToken,
    /// True when this spec ran before (the previous engine stopped while it ran, or it returned
    /// [`WorkError::Retry`]): continue from its persisted phase.
    pub resumed: bool,
    pub(crate) shared: Arc<RunShared>,
    pub(crate) id: Arc<str>,
}

/// What the running specs share with the scheduler.
#[derive(Debug, Default)]
pub(crate) struct RunShared {
    pub(crate) events: EventLog,
    pub(crate) annotations: Mutex<HashMap<String, Value>>,
    /// Set when an annotation changed (`active.json` is due).
    pub(crate) dirty: AtomicBool,
    /// Specs handed over by running specs ([`RunContext::enqueue`]), waiting for the scheduler.
    pub(crate) handed: Mutex<Vec<WorkSpec>>,
    /// Wakes the scheduler when `handed` got specs.
    pub(crate) handed_wake: tokio::sync::Notify,
}

impl RunContext {
    /// The id of the spec being run.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Appends a `spec_phase` event for this spec to `events.jsonl` (with optional detail).
    pub fn phase(&self, phase: &str, detail: Option<Value>) {
        self.shared.events.record(&Event::SpecPhase {
            id: self.id.to_string(),
            phase: phase.to_string(),
            detail,
        });
        self.shared.dirty.store(true, Ordering::Release);
    }

    /// Appends one of the workflow's own events to `events.jsonl` (see [`EventLog::emit`] for
    /// what it must look like).
    pub fn emit(&self, event: impl Serialize) {
        self.shared.events.emit(event);
    }

    /// Puts `specs` into the queue now, while this spec still runs (a spec's children otherwise
    /// enter the queue only when it returns, through [`Workflow::on_outcome`]). They get the same
    /// treatment as children: each is validated, and an id already queued or running is skipped
    /// with a warning; an invalid one is rejected with a `warning` event. The scheduler picks
    /// them up at once (it is woken), logs `spec_queued` for each and includes them in the next
    /// checkpoint; specs handed over while the engine is stopping still reach the final
    /// checkpoint. Use it when a long-running spec produces work in steps (for example a planner
    /// loop whose rounds each create new specs). The engine keeps no record of finished ids: a
    /// spec handed over here that already ran would run again if the spec also returned it, so
    /// return only what was not handed over (or what has not started yet).
    pub fn enqueue(&self, specs: Vec<WorkSpec>) {
        if specs.is_empty() {
            return;
        }
        match self.shared.handed.lock() {
            Ok(mut h) => h.extend(specs),
            Err(p) => p.into_inner().extend(specs),
        }
        self.shared.handed_wake.notify_one();
    }

    /// Sets this spec's annotation shown in `active.json` (for example the id of an external task). It must
    /// serialize to JSON; readers load it with their own type (see
    /// [`views::read_active`](crate::views::read_active)).
    pub fn annotate(&self, annotation: impl Serialize) {
        match serde_json::to_value(annotation) {
            Ok(v) => {
                if let Ok(mut a) = self.shared.annotations.lock() {
                    a.insert(self.id.to_string(), v);
                }
                self.shared.dirty.store(true, Ordering::Release);
            }
            Err(e) => tracing::warn!(id = %self.id, "annotation not kept: {e}"),
        }
    }
}

/// The domain side of the engine: supplies specs, runs them, and reacts to outcomes.
///
/// # Examples
///
/// A workflow that squares numbers, reports a phase, logs an event of its own to
/// `events.jsonl`, and stops the engine once a result is large enough:
///
/// ```
/// use autoresearch_engine::events::{EventLine, read_events};
/// use autoresearch_engine::{
///     AsyncWorkEngine, Decision, EngineConfig, Outcome, RunContext, SignalHandlerKind,
///     StartInfo, WorkError, WorkSpec, Workflow,
/// };
/// use serde::{Deserialize, Serialize};
///
/// /// The workflow's own event (its names must not start with `spec_` or `engine_`).
/// #[derive(Serialize, Deserialize, PartialEq, Debug)]
/// #[serde(tag = "event", rename_all = "snake_case")]
/// enum Squared {
///     NumberSquared { id: String, square: u64 },
/// }
///
/// struct Squares;
///
/// fn number(n: u64) -> WorkSpec {
///     let payload = serde_json::json!({ "n": n }).as_object().cloned().unwrap_or_default();
///     WorkSpec { id: format!("n{n}"), priority: n as f64, kind: "number".into(), payload }
/// }
///
/// impl Workflow for Squares {
///     async fn initial_specs(&self, start: &StartInfo) -> Result<Vec<WorkSpec>, WorkError> {
///         Ok(if start.resumed { vec![] } else { vec![number(2)] })
///     }
///
///     async fn run(&self, spec: WorkSpec, ctx: RunContext) -> Result<Vec<WorkSpec>, WorkError> {
///         let n = spec.payload["n"].as_u64().ok_or_else(|| WorkError::msg("no n"))?;
///         ctx.phase("squaring", None);
///         ctx.emit(Squared::NumberSquared { id: spec.id.clone(), square: n * n });
///         Ok(vec![number(n * n)])
///     }
///
///     async fn on_outcome(&self, spec: &WorkSpec, outcome: &Outcome) -> Decision {
///         let big = spec.payload["n"].as_u64().unwrap_or(0) >= 256;
///         match outcome {
///             Outcome::Completed { children } if !big => Decision {
///                 enqueue: children.clone(),
///                 stop: None,
///             },
///             _ => Decision { enqueue: vec![], stop: Some("large enough".into()) },
///         }
///     }
/// }
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let mut config = EngineConfig::new(dir.path());
/// config.signals = SignalHandlerKind::Noop;
/// let report = tokio::runtime::Runtime::new()?
///     .block_on(async { AsyncWorkEngine::open(config, Squares)?.run().await })?;
/// assert_eq!(report.stop_reason.as_deref(), Some("large enough"));
/// // 2, 4, 16, 256 ran; the workflow's events are in the log beside the engine's.
/// let (mine, _) = read_events::<Squared>(&dir.path().join("engine/events.jsonl"), 0)?;
/// let squares: Vec<u64> = mine
///     .into_iter()
///     .map(|line: EventLine<Squared>| match line.event {
///         Squared::NumberSquared { square, .. } => square,
///     })
///     .collect();
/// assert_eq!(squares, [4, 16, 256, 65536]);
/// # Ok(())
/// # }
/// ```
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
