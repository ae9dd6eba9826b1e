//! The scheduler loop: dispatches specs from the queue with bounded concurrency, is woken by
//! task completion (never by a poll interval), reports outcomes to the workflow, retries specs
//! whose environment failed, applies live queue commands and hand edits (see
//! [`live_edit`](crate::live_edit)), and hands snapshots to the writer.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use rustc_hash::FxHashMap;
use serde_json::Map;
use tokio::sync::Notify;
use tokio::task::{JoinError, JoinSet};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::checkpoint::Checkpoint;
use crate::command::{self, Applied, QueueState};
use crate::control::{self, ControlCommand, ControlResult};
use crate::engine::{AsyncWorkEngine, EngineConfig, RunReport};
use crate::error::EngineError;
use crate::events::{Event, EventLog};
use crate::live_edit::Revisions;
use crate::paths::EnginePaths;
use crate::queue::{Entry, Queue};
use crate::spec::WorkSpec;
use crate::state::{Counts, EngineStatus};
use crate::util::now_rfc3339;
use crate::workflow::{Admission, Outcome, RunContext, RunShared, StartInfo, WorkError, Workflow};
use crate::writer::Writer;

/// A spec that is running.
#[derive(Debug)]
pub(crate) struct Running {
    pub(crate) entry: Entry,
    pub(crate) started_at: String,
    pub(crate) seq: u64,
}

type TaskResult = Result<Vec<WorkSpec>, WorkError>;

/// Back-off state of specs that returned [`WorkError::Retry`].
#[derive(Debug)]
struct Backoff {
    /// The next wait.
    pub(crate) delay: Duration,
    /// No spec starts before this.
    pub(crate) paused_until: Option<Instant>,
    /// When the environment started failing (reset by a completed spec).
    pub(crate) since: Option<Instant>,
}

#[derive(Debug)]
pub(crate) struct Scheduler<W: Workflow> {
    pub(crate) workflow: Arc<W>,
    pub(crate) config: EngineConfig,
    pub(crate) paths: EnginePaths,
    pub(crate) cancel: CancellationToken,
    pub(crate) run_cancel: CancellationToken,
    pub(crate) writer: Writer,
    pub(crate) shared: Arc<RunShared>,
    pub(crate) queue: Queue,
    /// Specs to start before any queued one (running when the checkpoint was written, or
    /// retried), with `resumed` set.
    pub(crate) resume_first: VecDeque<Entry>,
    pub(crate) running: FxHashMap<Arc<str>, Running>,
    /// Specs cancelled by an interrupt, with their start sequence; they stay `running`.
    pub(crate) kept: Vec<(u64, Entry)>,
    pub(crate) tasks: JoinSet<TaskResult>,
    pub(crate) task_ids: FxHashMap<tokio::task::Id, Arc<str>>,
    pub(crate) counts: Counts,
    pub(crate) extra: Map<String, serde_json::Value>,
    pub(crate) loaded: Option<Checkpoint>,
    pub(crate) started_at: String,
    pub(crate) seq: u64,
    pub(crate) stop_reason: Option<String>,
    pub(crate) interrupted: bool,
    pub(crate) grace_deadline: Option<Instant>,
    pub(crate) queue_dirty: bool,
    pub(crate) next_write: Instant,
    pub(crate) next_heartbeat: Instant,
    pub(crate) next_housekeeping: Instant,
    pub(crate) revisions: Revisions,
    backoff: Backoff,
}

impl<W: Workflow> Scheduler<W> {
    pub(crate) fn new(engine: &AsyncWorkEngine<W>, paths: EnginePaths, writer: Writer) -> Self {
        let now = Instant::now();
        let loaded_revision = engine.loaded.as_ref().map_or(0, |c| c.revision);
        Scheduler {
            workflow: engine.workflow.clone(),
            config: engine.config.clone(),
            paths,
            cancel: engine.cancel.clone(),
            run_cancel: CancellationToken::new(),
            writer,
            shared: Arc::new(RunShared::default()),
            queue: Queue::default(),
            resume_first: VecDeque::new(),
            running: FxHashMap::default(),
            kept: Vec::new(),
            tasks: JoinSet::new(),
            task_ids: FxHashMap::default(),
            counts: Counts {
                completed: engine.prior.completed,
                failed: engine.prior.failed,
                ..Counts::default()
            },
            extra: Map::new(),
            loaded: engine.loaded.clone(),
            started_at: now_rfc3339(),
            seq: 0,
            stop_reason: None,
            interrupted: false,
            grace_deadline: None,
            queue_dirty: true,
            next_write: now,
            next_heartbeat: now,
            next_housekeeping: now,
            revisions: Revisions::new(loaded_revision),
            backoff: Backoff {
                delay: engine.config.retry_backoff,
                paused_until: None,
                since: None,
            },
        }
    }

    pub(crate) fn events(&self) -> &EventLog {
        &self.shared.events
    }

    pub(crate) async fn run(mut self, signals: Arc<Notify>) -> Result<RunReport, EngineError> {
        let start = self.load_start().await?;
        self.flush_now(EngineStatus::Running).await?;
        tracing::info!(
            queued = self.queue.len(),
            resumed = start.resumed,
            "engine started"
        );

        let mut tick = tokio::time::interval(self.config.housekeeping_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            self.dispatch();
            if self.tasks.is_empty() && self.finished() {
                break;
            }
            let deadline = self.grace_deadline;
            let paused = self.backoff.paused_until;
            tokio::select! {
                biased;
                Some(res) = self.tasks.join_next_with_id(), if !self.tasks.is_empty() => {
                    self.on_task_end(res).await;
                }
                _ = self.shared.handed_wake.notified() => self.take_handed(),
                _ = self.cancel.cancelled(), if !self.interrupted => self.begin_interrupt(None),
                _ = signals.notified() => self.shorten_grace(),
                _ = sleep_until_opt(deadline), if deadline.is_some() => {
                    tracing::warn!(running = self.tasks.len(), "grace period over: aborting running specs");
                    self.grace_deadline = None;
                    self.tasks.abort_all();
                }
                _ = sleep_until_opt(paused), if paused.is_some() => self.backoff.paused_until = None,
                _ = tick.tick() => {}
            }
            if let Some(e) = self.writer.take_failure() {
                self.begin_interrupt(Some(write_failure_reason(&e)));
            }
            self.housekeeping().await;
            self.maybe_write();
        }
        self.finish().await
    }

    fn finished(&self) -> bool {
        self.interrupted
            || self.stop_reason.is_some()
            || (self.queue.is_empty() && self.resume_first.is_empty())
    }

    /// Loads the checkpoint (resume) and asks the workflow for its starting specs.
    async fn load_start(&mut self) -> Result<StartInfo, EngineError> {
        let mut start = StartInfo {
            events: self.events().clone(),
            ..StartInfo::default()
        };
        if let Some(cp) = self.loaded.take() {
            for w in &cp.warnings {
                tracing::warn!("{w}");
                self.warn(w, None);
            }
            start.resumed = true;
            start.running = cp.running.iter().map(|s| s.id.clone()).collect();
            start.queued = cp.queued.iter().map(|s| s.id.clone()).collect();
            start.checkpoint_updated_at = Some(cp.updated_at.clone());
            if cp.status == EngineStatus::Running {
                tracing::warn!(
                    "the previous engine did not shut down cleanly (checkpoint says running); resuming"
                );
            }
            // As loaded: an edit of the loaded revision changes them.
            let rev = cp.revision;
            for spec in cp.running {
                self.resume_first.push_back(Entry::new(spec, rev));
            }
            for spec in cp.queued {
                self.queue.push(Entry::new(spec, rev));
            }
            self.extra = cp.extra;
        }
        self.events().record(&Event::EngineStarted {
            resumed: start.resumed,
            pid: std::process::id(),
        });
        let initial = self
            .workflow
            .initial_specs(&start)
            .await
            .map_err(EngineError::Workflow)?;
        for spec in initial {
            self.enqueue(spec);
        }
        Ok(start)
    }

    pub(crate) fn warn(&self, message: &str, id: Option<&str>) {
        self.events().record(&Event::Warning {
            message: message.to_string(),
            id: id.map(str::to_string),
        });
    }

    /// Whether the id is queued, waiting to resume, or running.
    pub(crate) fn known(&self, id: &str) -> bool {
        self.queue.contains(id)
            || self.is_active(id)
            || self.resume_first.iter().any(|e| e.spec.id == id)
    }

    /// Whether the spec runs (or was kept running by an interrupt).
    pub(crate) fn is_active(&self, id: &str) -> bool {
        self.running.contains_key(id) || self.kept.iter().any(|(_, e)| e.spec.id == id)
    }

    /// Adds a spec to the queue; invalid or duplicate specs are skipped with a warning.
    pub(crate) fn enqueue(&mut self, spec: WorkSpec) -> bool {
        if let Err(e) = spec.validate() {
            tracing::warn!("spec rejected: {e}");
            self.warn(&format!("spec rejected: {e}"), None);
            return false;
        }
        if self.known(&spec.id) {
            tracing::debug!(id = %spec.id, "spec already queued or running; skipped");
            return false;
        }
        self.events().record(&Event::SpecQueued {
            id: spec.id.clone(),
            priority: spec.priority,
            kind: spec.kind.clone(),
        });
        self.queue.push(Entry::new(spec, self.revisions.next()));
        self.queue_dirty = true;
        true
    }

    /// Enqueues the specs running specs handed over ([`RunContext::enqueue`]).
    fn take_handed(&mut self) {
        let specs = match self.shared.handed.lock() {
            Ok(mut h) => std::mem::take(&mut *h),
            Err(p) => std::mem::take(&mut *p.into_inner()),
        };
        for spec in specs {
            self.enqueue(spec);
        }
    }

    fn dispatch(&mut self) {
        if self.backoff.paused_until.is_some() || self.writer.stalled() {
            return;
        }
        let max = self.config.max_concurrency;
        while self.tasks.len() < max && !self.interrupted && self.stop_reason.is_none() {
            let (entry, resumed) = if let Some(e) = self.resume_first.pop_front() {
                (e, true)
            } else if let Some(e) = self.queue.pop() {
                (e, false)
            } else {
                break;
            };
            if !resumed && let Admission::Stop(reason) = self.workflow.admit(&entry.spec) {
                tracing::info!(%reason, "workflow asked to stop");
                self.queue.push_front(entry);
                self.stop_reason = Some(reason);
                break;
            }
            self.start(entry, resumed);
        }
    }

    fn start(&mut self, entry: Entry, resumed: bool) {
        let id: Arc<str> = Arc::from(entry.spec.id.as_str());
        self.revisions.removed(id.clone());
        let ctx = RunContext {
            cancel: self.run_cancel.child_token(),
            resumed,
            shared: self.shared.clone(),
            id: id.clone(),
        };
        self.events().record(&Event::SpecStarted {
            id: id.to_string(),
            resumed,
        });
        let wf = self.workflow.clone();
        let spec = entry.spec.clone();
        let handle = self.tasks.spawn(async move { wf.run(spec, ctx).await });
        self.task_ids.insert(handle.id(), id.clone());
        self.seq += 1;
        self.running.insert(
            id,
            Running {
                entry,
                started_at: now_rfc3339(),
                seq: self.seq,
            },
        );
        self.queue_dirty = true;
    }

    async fn on_task_end(&mut self, res: Result<(tokio::task::Id, TaskResult), JoinError>) {
        // What the spec handed over while it ran goes first (its outcome may enqueue it again).
        self.take_handed();
        let (task_id, result) = match res {
            Ok((tid, r)) => (tid, Ok(r)),
            Err(e) => (e.id(), Err(e)),
        };
        let Some(id) = self.task_ids.remove(&task_id) else {
            return;
        };
        let Some(run) = self.running.remove(&id) else {
            return;
        };
        if let Ok(mut a) = self.shared.annotations.lock() {
            a.remove(&*id);
        }
        self.queue_dirty = true;
        let outcome = match result {
            Ok(Ok(children)) => Outcome::Completed { children },
            Ok(Err(WorkError::Failed(message))) => Outcome::Failed { message },
            Ok(Err(WorkError::Interrupted)) => Outcome::Cancelled,
            Ok(Err(WorkError::Retry(message))) => return self.retry_later(run, &message),
            Err(e) if e.is_panic() => Outcome::Panicked {
                message: panic_message(e.into_panic()),
            },
            Err(_) => Outcome::Cancelled,
        };
        let spec = run.entry.spec.clone();
        match &outcome {
            Outcome::Completed { .. } => {
                self.counts.completed += 1;
                self.backoff.delay = self.config.retry_backoff;
                self.backoff.since = None;
                self.events()
                    .record(&Event::SpecCompleted { id: id.to_string() });
            }
            Outcome::Failed { message } | Outcome::Panicked { message } => {
                self.counts.failed += 1;
                tracing::warn!(id = %id, "spec failed: {message}");
                self.events().record(&Event::SpecFailed {
                    id: id.to_string(),
                    error: message.clone(),
                    panic: matches!(outcome, Outcome::Panicked { .. }),
                });
            }
            Outcome::Cancelled => {
                self.events()
                    .record(&Event::SpecCancelled { id: id.to_string() });
                self.kept.push((run.seq, run.entry));
            }
        }
        let decision = self.workflow.on_outcome(&spec, &outcome).await;
        for child in decision.enqueue {
            self.enqueue(child);
        }
        if let Some(reason) = decision.stop
            && self.stop_reason.is_none()
        {
            tracing::info!(%reason, "workflow asked to stop");
            self.stop_reason = Some(reason);
        }
    }

    /// A spec whose environment failed: back to the front, started again (resumed) after the
    /// back-off; no outcome reaches the workflow. Past the bounded wait, the engine stops.
    fn retry_later(&mut self, run: Running, message: &str) {
        let id = run.entry.spec.id.clone();
        let mut entry = run.entry;
        entry.rev = self.revisions.next();
        self.resume_first.push_front(entry);
        let now = Instant::now();
        let since = *self.backoff.since.get_or_insert(now);
        if now.duration_since(since) >= self.config.max_write_stall {
            let reason = format!(
                "{id}: the environment kept failing for {} s: {message}",
                self.config.max_write_stall.as_secs()
            );
            tracing::error!("{reason}; stopping");
            self.warn(&reason, Some(&id));
            self.begin_interrupt(Some(reason));
            return;
        }
        let delay = self.backoff.delay;
        let text = format!(
            "{id}: environment error, starting it again in {:.1} s (no new work starts meanwhile): {message}",
            delay.as_secs_f64()
        );
        tracing::warn!("{text}");
        self.warn(&text, Some(&id));
        self.backoff.paused_until = Some(now + delay);
        self.backoff.delay = (delay * 2).min(self.config.max_retry_backoff);
    }

    fn begin_interrupt(&mut self, reason: Option<String>) {
        if self.interrupted {
            return;
        }
        self.interrupted = true;
        if reason.is_some() {
            self.stop_reason = reason;
        }
        self.run_cancel.cancel();
        if !self.tasks.is_empty() {
            self.grace_deadline = Some(Instant::now() + self.config.grace_period);
            tracing::info!(
                running = self.tasks.len(),
                grace_s = self.config.grace_period.as_secs_f64(),
                "interrupting: waiting for running specs to return"
            );
        }
    }

    fn shorten_grace(&mut self) {
        if !self.interrupted {
            return;
        }
        let short = Instant::now() + self.config.short_grace_period;
        self.grace_deadline = Some(match self.grace_deadline {
            Some(d) if d < short => d,
            _ => short,
        });
        tracing::warn!("second signal: grace period shortened");
    }

    /// Live edits, control commands; at most once per housekeeping interval.
    async fn housekeeping(&mut self) {
        let now = Instant::now();
        if now < self.next_housekeeping {
            return;
        }
        self.next_housekeeping = now + self.config.housekeeping_interval;
        self.check_live_edit();
        let pending = control::pending(&self.paths.control());
        if !pending.is_empty() {
            self.apply_control(pending).await;
        }
    }

    async fn apply_control(&mut self, files: Vec<std::path::PathBuf>) {
        let mut results = Vec::new();
        for file in files {
            let result = match control::read_command(&file) {
                Ok(cmd) => self.apply_command(&cmd),
                Err(message) => ControlResult { ok: false, message },
            };
            results.push((file, result));
        }
        // Make the applied commands durable before acknowledging them.
        if let Err(e) = self.flush_now(EngineStatus::Running).await {
            tracing::error!("{e}");
        }
        let done = control::done_dir(&self.config.workdir);
        for (file, result) in results {
            if let Some(name) = file.file_name()
                && let Err(e) = crate::atomic::write_json_atomic(&done.join(name), &result)
            {
                tracing::warn!("{}: cannot answer the command: {e}", done.display());
            }
            let _ = std::fs::remove_file(&file);
        }
        let _ = crate::atomic::sync_dir(&self.paths.control());
    }

    fn apply_command(&mut self, cmd: &ControlCommand) -> ControlResult {
        let result = command::apply(&mut Live(self), cmd);
        self.queue_dirty = true;
        match result {
            Ok(applied) => {
                let message = applied.to_string();
                match applied {
                    Applied::Bumped { id, priority } => {
                        self.events().record(&Event::SpecBumped { id, priority })
                    }
                    Applied::Dropped { id } => self.events().record(&Event::SpecDropped { id }),
                    // `enqueue` logged `spec_queued`.
                    Applied::Added { .. } => {}
                }
                ControlResult { ok: true, message }
            }
            Err(e) => ControlResult {
                ok: false,
                message: e.to_string(),
            },
        }
    }

    async fn finish(mut self) -> Result<RunReport, EngineError> {
        // Specs handed over by specs that ran until the end belong in the final checkpoint.
        self.take_handed();
        // A write that failed in the background while the last specs ran: the run ends
        // interrupted (its checkpoint is not final), not with an error.
        if let Some(e) = self.writer.take_failure() {
            self.begin_interrupt(Some(write_failure_reason(&e)));
        }
        let status = if self.interrupted {
            EngineStatus::Interrupted
        } else {
            EngineStatus::Stopped
        };
        let reason = self.stop_reason.clone().or_else(|| {
            (!self.interrupted && self.queue.is_empty()).then(|| "queue drained".to_string())
        });
        self.stop_reason = reason.clone();
        self.events().record(&if self.interrupted {
            Event::EngineInterrupted {
                reason: reason.clone(),
            }
        } else {
            Event::EngineStopped {
                reason: reason.clone(),
            }
        });
        // The final checkpoint is never skipped: if a hand edit arrived meanwhile, apply it first.
        self.wait_writer().await;
        self.check_live_edit();
        let (status, reason) = match self.flush_now(status).await {
            Ok(()) => (status, reason),
            // Already stopping because writes fail: the last checkpoint written stays valid.
            Err(e) if self.interrupted && reason.is_some() => {
                tracing::error!("final checkpoint not written: {e}");
                (status, reason)
            }
            // The final checkpoint failed on its own: the run is interrupted, not finished,
            // and resuming it starts from the last checkpoint that was written.
            Err(e) => {
                let why = write_failure_reason(&e);
                tracing::error!("final checkpoint not written: {why}");
                self.events().record(&Event::EngineInterrupted {
                    reason: Some(why.clone()),
                });
                (EngineStatus::Interrupted, Some(why))
            }
        };
        let counts = self.state(status).counts;
        let (checkpoint_writes, checkpoint_bytes) = self.writer.stats();
        tracing::info!(status = status.as_str(), ?counts, "engine finished");
        Ok(RunReport {
            status,
            stop_reason: reason,
            counts,
            checkpoint_writes,
            checkpoint_bytes,
        })
    }
}

/// The stop reason of a run whose files cannot be written.
fn write_failure_reason(e: &dyn std::fmt::Display) -> String {
    format!(
        "{e}; the engine stopped because it cannot write its files (fix the cause and start it again)"
    )
}

/// The live queue as seen by the queue commands.
struct Live<'a, W: Workflow>(&'a mut Scheduler<W>);

impl<W: Workflow> QueueState for Live<'_, W> {
    fn set_priority(&mut self, id: &str, priority: f64) -> bool {
        let rev = self.0.revisions.next();
        self.0.queue.bump(id, priority, rev)
    }
    fn remove(&mut self, id: &str) -> bool {
        let removed = self.0.queue.remove(id).is_some();
        if removed {
            self.0.revisions.removed(Arc::from(id));
        }
        removed
    }
    fn is_running(&self, id: &str) -> bool {
        self.0.is_active(id)
    }
    fn is_known(&self, id: &str) -> bool {
        self.0.known(id)
    }
    fn add(&mut self, spec: WorkSpec) {
        self.0.enqueue(spec);
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        format!("panicked: {s}")
    } else if let Some(s) = payload.downcast_ref::<String>() {
        format!("panicked: {s}")
    } else {
        "panicked".to_string()
    }
}
