//! [`AsyncWorkEngine`]: the scheduler loop. It dispatches specs from the queue with bounded
//! concurrency, is woken by task completion (never by a poll interval), reports outcomes to the
//! workflow, applies live queue commands and hand edits, and hands snapshots to the writer.

use std::collections::{HashMap, HashSet, VecDeque};

use rustc_hash::FxHashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use tokio::task::{JoinError, JoinSet};
use tokio_util::sync::CancellationToken;

use crate::checkpoint::{self, Checkpoint};
use crate::control::{self, ControlCommand, ControlResult};
use crate::error::EngineError;
use crate::events::{EventBuffer, names};
use crate::lock::{self, EngineLock};
use crate::paths::EnginePaths;
use crate::queue::{Entry, Queue};
use crate::spec::WorkSpec;
use crate::state::{Counts, EngineState, EngineStatus};
use crate::util::now_rfc3339;
use crate::workflow::{Admission, Outcome, Reporter, RunContext, StartInfo, WorkError, Workflow};
use crate::writer::{ActiveView, CheckpointData, FileStamp, Snapshot, Writer};

/// How the engine runs.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The workdir; the engine's files go to `<workdir>/engine/`.
    pub workdir: PathBuf,
    /// At most this many specs run at once (≥ 1).
    pub max_concurrency: usize,
    /// After an interrupt, how long running specs get to return before they are aborted.
    pub grace_period: Duration,
    /// The grace period left after a second signal.
    pub short_grace_period: Duration,
    /// Install SIGINT/SIGTERM handlers that interrupt the engine.
    pub handle_signals: bool,
    /// Minimum time between two coalesced checkpoint writes (the writer also waits at least
    /// three times its last write's duration, so checkpoint cost stays a bounded share of time).
    pub checkpoint_interval: Duration,
    /// How often `engine_state.json`'s heartbeat is refreshed.
    pub heartbeat_interval: Duration,
}

impl EngineConfig {
    /// Defaults: concurrency 2, grace 10 s (1 s after a second signal), signals handled,
    /// checkpoint at most every 100 ms, heartbeat every 2 s.
    pub fn new(workdir: impl Into<PathBuf>) -> Self {
        EngineConfig {
            workdir: workdir.into(),
            max_concurrency: 2,
            grace_period: Duration::from_secs(10),
            short_grace_period: Duration::from_secs(1),
            handle_signals: true,
            checkpoint_interval: Duration::from_millis(100),
            heartbeat_interval: Duration::from_secs(2),
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// `Interrupted` or `Stopped`.
    pub status: EngineStatus,
    /// Why it stopped, when the workflow asked it to.
    pub stop_reason: Option<String>,
    /// Final counts (completed/failed are totals over all resumes).
    pub counts: Counts,
    /// Checkpoint files written by this process.
    pub checkpoint_writes: u64,
    /// Bytes of checkpoint written by this process.
    pub checkpoint_bytes: u64,
}

/// The generic work engine. Build it with [`AsyncWorkEngine::open`], then [`AsyncWorkEngine::run`].
pub struct AsyncWorkEngine<W: Workflow> {
    config: EngineConfig,
    workflow: Arc<W>,
    cancel: CancellationToken,
    loaded: Option<Checkpoint>,
    stamp: Option<FileStamp>,
    prior: Counts,
    _lock: EngineLock,
}

impl<W: Workflow> AsyncWorkEngine<W> {
    /// Takes the workdir's lock and loads (and validates) an existing checkpoint. A bad
    /// checkpoint is an error and the file is left untouched.
    pub fn open(config: EngineConfig, workflow: W) -> Result<Self, EngineError> {
        if config.max_concurrency == 0 {
            return Err(EngineError::Config(
                "max_concurrency must be at least 1".into(),
            ));
        }
        let lock = lock::acquire(&config.workdir)?;
        let paths = EnginePaths::new(&config.workdir);
        let cp_path = paths.checkpoint();
        let loaded = checkpoint::load(&cp_path)?;
        let stamp = FileStamp::of(&cp_path);
        let prior = crate::state::read_state(&config.workdir)
            .ok()
            .flatten()
            .map(|s| s.counts)
            .unwrap_or_default();
        Ok(AsyncWorkEngine {
            config,
            workflow: Arc::new(workflow),
            cancel: CancellationToken::new(),
            loaded,
            stamp,
            prior,
            _lock: lock,
        })
    }

    /// Cancelling this token interrupts the engine, like SIGINT.
    pub fn cancellation_token(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// The checkpoint loaded at open, if this is a resume.
    pub fn loaded_checkpoint(&self) -> Option<&Checkpoint> {
        self.loaded.as_ref()
    }

    /// The workflow.
    pub fn workflow(&self) -> &Arc<W> {
        &self.workflow
    }

    /// Runs until the queue drains, the workflow stops it, or it is interrupted.
    pub async fn run(self) -> Result<RunReport, EngineError> {
        let paths = EnginePaths::new(&self.config.workdir);
        crate::atomic::create_dir_durable(&paths.control())
            .map_err(|e| EngineError::io(&paths.control(), e))?;
        let writer =
            Writer::start(paths.clone(), self.stamp).map_err(|e| EngineError::io(&paths.dir, e))?;
        let signals = Arc::new(tokio::sync::Notify::new());
        let signal_task = if self.config.handle_signals {
            Some(spawn_signal_handler(self.cancel.clone(), signals.clone())?)
        } else {
            None
        };
        let mut sched = Scheduler::new(&self, paths, writer);
        let result = sched.run(signals).await;
        if let Some(t) = signal_task {
            t.abort();
        }
        result
    }
}

fn spawn_signal_handler(
    cancel: CancellationToken,
    again: Arc<tokio::sync::Notify>,
) -> Result<tokio::task::JoinHandle<()>, EngineError> {
    use tokio::signal::unix::{SignalKind, signal};
    let io = |e| EngineError::io(std::path::Path::new("signal handler"), e);
    let mut int = signal(SignalKind::interrupt()).map_err(io)?;
    let mut term = signal(SignalKind::terminate()).map_err(io)?;
    Ok(tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            if cancel.is_cancelled() {
                again.notify_one();
            } else {
                tracing::warn!(
                    "signal received: interrupting (send again to shorten the grace period)"
                );
                cancel.cancel();
            }
        }
    }))
}

struct Running {
    entry: Entry,
    started_at: String,
    seq: u64,
}

struct EngineReporter {
    events: EventBuffer,
    annotations: Mutex<HashMap<String, Value>>,
    dirty: AtomicBool,
}

impl Reporter for EngineReporter {
    fn phase(&self, id: &str, phase: &str, detail: Option<Value>) {
        let mut extra = Map::new();
        extra.insert("phase".into(), Value::String(phase.into()));
        if let Some(d) = detail {
            extra.insert("detail".into(), d);
        }
        self.events.push(names::NODE_PHASE, Some(id), Some(&extra));
        self.dirty.store(true, Ordering::Release);
    }

    fn annotate(&self, id: &str, annotation: Value) {
        if let Ok(mut a) = self.annotations.lock() {
            a.insert(id.to_string(), annotation);
        }
        self.dirty.store(true, Ordering::Release);
    }
}

type TaskResult = Result<Vec<WorkSpec>, WorkError>;

struct Scheduler<W: Workflow> {
    workflow: Arc<W>,
    config: EngineConfig,
    paths: EnginePaths,
    cancel: CancellationToken,
    run_cancel: CancellationToken,
    writer: Writer,
    reporter: Arc<EngineReporter>,
    queue: Queue,
    resume_first: VecDeque<Entry>,
    running: FxHashMap<Arc<str>, Running>,
    /// Specs cancelled by an interrupt, with their start sequence; they stay `running`.
    kept: Vec<(u64, Entry)>,
    tasks: JoinSet<TaskResult>,
    task_ids: FxHashMap<tokio::task::Id, Arc<str>>,
    counts: Counts,
    extra: Map<String, Value>,
    loaded: Option<Checkpoint>,
    started_at: String,
    seq: u64,
    stop_reason: Option<String>,
    interrupted: bool,
    grace_deadline: Option<tokio::time::Instant>,
    queue_dirty: bool,
    next_write: Instant,
    next_heartbeat: Instant,
    next_housekeeping: Instant,
}

impl<W: Workflow> Scheduler<W> {
    fn new(engine: &AsyncWorkEngine<W>, paths: EnginePaths, writer: Writer) -> Self {
        let now = Instant::now();
        Scheduler {
            workflow: engine.workflow.clone(),
            config: engine.config.clone(),
            paths,
            cancel: engine.cancel.clone(),
            run_cancel: CancellationToken::new(),
            writer,
            reporter: Arc::new(EngineReporter {
                events: EventBuffer::default(),
                annotations: Mutex::new(HashMap::new()),
                dirty: AtomicBool::new(false),
            }),
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
        }
    }

    fn events(&self) -> &EventBuffer {
        &self.reporter.events
    }

    async fn run(&mut self, signals: Arc<tokio::sync::Notify>) -> Result<RunReport, EngineError> {
        let start = self.load_start().await?;
        self.flush_now(EngineStatus::Running).await?;
        tracing::info!(
            queued = self.queue.len(),
            resumed = start.resumed,
            "engine started"
        );

        let mut tick = tokio::time::interval(Duration::from_millis(100));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            self.dispatch();
            if self.tasks.is_empty() && self.finished() {
                break;
            }
            let deadline = self.grace_deadline;
            tokio::select! {
                biased;
                Some(res) = self.tasks.join_next_with_id(), if !self.tasks.is_empty() => {
                    self.on_task_end(res).await;
                }
                _ = self.cancel.cancelled(), if !self.interrupted => self.begin_interrupt(),
                _ = signals.notified() => self.shorten_grace(),
                _ = sleep_until_opt(deadline), if deadline.is_some() => {
                    tracing::warn!(running = self.tasks.len(), "grace period over: aborting running specs");
                    self.grace_deadline = None;
                    self.tasks.abort_all();
                }
                _ = tick.tick() => {}
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
        let mut start = StartInfo::default();
        if let Some(cp) = self.loaded.take() {
            for w in &cp.warnings {
                tracing::warn!("{w}");
                self.warn(w);
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
            for spec in cp.running {
                self.resume_first.push_back(Entry::new(spec));
            }
            for spec in cp.queued {
                self.queue.push(Entry::new(spec));
            }
            self.extra = cp.extra;
        }
        let mut extra = Map::new();
        extra.insert("resumed".into(), Value::Bool(start.resumed));
        extra.insert("pid".into(), json!(std::process::id()));
        self.events()
            .push(names::ENGINE_STARTED, None, Some(&extra));
        let initial = self
            .workflow
            .initial_specs(&start)
            .await
            .map_err(|e| EngineError::Workflow(e.to_string()))?;
        for spec in initial {
            self.enqueue(spec);
        }
        Ok(start)
    }

    fn warn(&self, message: &str) {
        let mut extra = Map::new();
        extra.insert("message".into(), Value::String(message.into()));
        self.events().push(names::WARNING, None, Some(&extra));
    }

    fn known(&self, id: &str) -> bool {
        self.queue.contains(id)
            || self.running.contains_key(id)
            || self.resume_first.iter().any(|e| e.spec.id == id)
            || self.kept.iter().any(|(_, e)| e.spec.id == id)
    }

    /// Adds a spec to the queue; invalid or duplicate specs are skipped with a warning.
    fn enqueue(&mut self, spec: WorkSpec) -> bool {
        if let Err(e) = spec.validate() {
            tracing::warn!("spec rejected: {e}");
            self.warn(&format!("spec rejected: {e}"));
            return false;
        }
        if self.known(&spec.id) {
            tracing::debug!(id = %spec.id, "spec already queued or running; skipped");
            return false;
        }
        let mut extra = Map::new();
        extra.insert("priority".into(), json!(spec.priority));
        extra.insert("kind".into(), Value::String(spec.kind.clone()));
        self.events()
            .push(names::NODE_QUEUED, Some(&spec.id), Some(&extra));
        self.queue.push(Entry::new(spec));
        self.queue_dirty = true;
        true
    }

    fn dispatch(&mut self) {
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
        let ctx = RunContext {
            cancel: self.run_cancel.child_token(),
            resumed,
            reporter: self.reporter.clone(),
            id: id.clone(),
        };
        let extra = resumed.then(|| {
            let mut m = Map::new();
            m.insert("resumed".into(), Value::Bool(true));
            m
        });
        self.events()
            .push(names::NODE_STARTED, Some(&id), extra.as_ref());
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
        let (task_id, outcome) = match res {
            Ok((tid, Ok(children))) => (tid, Outcome::Completed { children }),
            Ok((tid, Err(WorkError::Failed(message)))) => (tid, Outcome::Failed { message }),
            Ok((tid, Err(WorkError::Interrupted))) => (tid, Outcome::Cancelled),
            // Interim: requeue with back-off is not implemented yet; reported as a failure.
            Ok((tid, Err(WorkError::Retry(message)))) => (tid, Outcome::Failed { message }),
            Err(e) => {
                let tid = e.id();
                if e.is_panic() {
                    let message = panic_message(e.into_panic());
                    (tid, Outcome::Panicked { message })
                } else {
                    (tid, Outcome::Cancelled)
                }
            }
        };
        let Some(id) = self.task_ids.remove(&task_id) else {
            return;
        };
        let Some(run) = self.running.remove(&id) else {
            return;
        };
        if let Ok(mut a) = self.reporter.annotations.lock() {
            a.remove(&*id);
        }
        self.queue_dirty = true;
        let spec = run.entry.spec.clone();
        match &outcome {
            Outcome::Completed { .. } => {
                self.counts.completed += 1;
                self.events().push(names::NODE_COMPLETED, Some(&id), None);
            }
            Outcome::Failed { message } | Outcome::Panicked { message } => {
                self.counts.failed += 1;
                let mut extra = Map::new();
                extra.insert("error".into(), Value::String(message.clone()));
                if matches!(outcome, Outcome::Panicked { .. }) {
                    extra.insert("panic".into(), Value::Bool(true));
                }
                tracing::warn!(id = %id, "spec failed: {message}");
                self.events()
                    .push(names::NODE_FAILED, Some(&id), Some(&extra));
            }
            Outcome::Cancelled => {
                self.events().push(names::NODE_CANCELLED, Some(&id), None);
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

    fn begin_interrupt(&mut self) {
        self.interrupted = true;
        self.run_cancel.cancel();
        if !self.tasks.is_empty() {
            self.grace_deadline = Some(tokio::time::Instant::now() + self.config.grace_period);
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
        let short = tokio::time::Instant::now() + self.config.short_grace_period;
        self.grace_deadline = Some(match self.grace_deadline {
            Some(d) if d < short => d,
            _ => short,
        });
        tracing::warn!("second signal: grace period shortened");
    }

    /// Live edits, control commands. Runs at most every 100 ms.
    async fn housekeeping(&mut self) {
        let now = Instant::now();
        if now < self.next_housekeeping {
            return;
        }
        self.next_housekeeping = now + Duration::from_millis(100);
        self.check_live_edit();
        let pending = control::pending(&self.paths.control());
        if !pending.is_empty() {
            self.apply_control(pending).await;
        }
    }

    fn check_live_edit(&mut self) {
        if self.writer.busy() {
            return;
        }
        let path = self.paths.checkpoint();
        let flagged = self.writer.take_external_edit();
        let current = FileStamp::of(&path);
        let last = self.writer.shared.stamp.lock().map(|s| *s).unwrap_or(None);
        if current.is_none() || (!flagged && current == last) {
            return;
        }
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(_) => return,
        };
        match checkpoint::parse(&bytes, &path) {
            Ok(cp) => {
                let summary = self.apply_edit(cp);
                tracing::info!("hand edit of {} applied: {summary}", path.display());
                let mut extra = Map::new();
                extra.insert("result".into(), json!("applied"));
                extra.insert("message".into(), json!(summary));
                self.events()
                    .push(names::CHECKPOINT_EDIT, None, Some(&extra));
            }
            Err(err) => {
                let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now())
                    .to_string()
                    .replace(':', "-");
                let aside = self
                    .paths
                    .dir
                    .join(format!("checkpoint.rejected-{stamp}.json"));
                let moved = std::fs::rename(&path, &aside);
                let _ = crate::atomic::sync_dir(&self.paths.dir);
                let message = match moved {
                    Ok(()) => format!(
                        "hand edit rejected and set aside as {}: {err}",
                        aside.display()
                    ),
                    Err(e) => format!("hand edit rejected ({err}); could not set it aside: {e}"),
                };
                tracing::warn!("{message}");
                let mut extra = Map::new();
                extra.insert("result".into(), json!("rejected"));
                extra.insert("file".into(), json!(aside.display().to_string()));
                extra.insert("message".into(), json!(message));
                self.events()
                    .push(names::CHECKPOINT_EDIT, None, Some(&extra));
            }
        }
        if let Ok(mut s) = self.writer.shared.stamp.lock() {
            *s = FileStamp::of(&path);
        }
        self.queue_dirty = true;
        self.next_write = Instant::now();
    }

    /// Replaces the queue by the edited file's; running specs cannot be un-run.
    fn apply_edit(&mut self, cp: Checkpoint) -> String {
        let active: HashSet<String> = self
            .running
            .keys()
            .map(|k| k.to_string())
            .chain(self.kept.iter().map(|(_, e)| e.spec.id.clone()))
            .collect();
        let mut queue = Queue::default();
        let mut ignored = 0;
        for spec in cp.queued {
            if active.contains(&spec.id) {
                ignored += 1;
                continue;
            }
            queue.push(Entry::new(spec));
        }
        let before = self.queue.len() + self.resume_first.len();
        self.resume_first.clear();
        let mut promoted = 0;
        for spec in cp.running {
            if !active.contains(&spec.id) && !queue.contains(&spec.id) {
                self.resume_first.push_back(Entry::new(spec));
                promoted += 1;
            }
        }
        self.queue = queue;
        format!(
            "queue now {} (was {before}); {promoted} listed as running will start first; {ignored} entries naming running specs ignored",
            self.queue.len() + self.resume_first.len()
        )
    }

    async fn apply_control(&mut self, files: Vec<PathBuf>) {
        let mut results = Vec::new();
        for file in files {
            let result = match std::fs::read(&file)
                .map_err(|e| e.to_string())
                .and_then(|b| {
                    serde_json::from_slice::<ControlCommand>(&b).map_err(|e| e.to_string())
                }) {
                Ok(cmd) => self.apply_command(cmd),
                Err(e) => ControlResult {
                    ok: false,
                    message: format!("{}: not a valid command: {e}", file.display()),
                },
            };
            results.push((file, result));
        }
        // Make the applied commands durable before acknowledging them.
        if let Err(e) = self.flush_now(EngineStatus::Running).await {
            tracing::error!("checkpoint write after control commands failed: {e}");
        }
        let done = control::done_dir(&self.config.workdir);
        let _ = crate::atomic::create_dir_durable(&done);
        for (file, result) in results {
            if let Some(name) = file.file_name() {
                let _ = crate::atomic::write_json_atomic(&done.join(name), &result);
            }
            let _ = std::fs::remove_file(&file);
        }
        let _ = crate::atomic::sync_dir(&self.paths.control());
    }

    fn apply_command(&mut self, cmd: ControlCommand) -> ControlResult {
        let (ok, message) = match cmd {
            ControlCommand::Bump { id, priority } => {
                if !priority.is_finite() {
                    (false, format!("{id}: priority must be a finite number"))
                } else if self.queue.bump(&id, priority) {
                    let mut extra = Map::new();
                    extra.insert("priority".into(), json!(priority));
                    self.events()
                        .push(names::NODE_BUMPED, Some(&id), Some(&extra));
                    (true, format!("{id}: priority set to {priority}"))
                } else if self.running.contains_key(id.as_str()) {
                    (false, format!("{id} is already running"))
                } else {
                    (false, format!("{id} is not in the queue"))
                }
            }
            ControlCommand::Drop { id } => {
                if self.queue.remove(&id).is_some() {
                    self.events().push(names::NODE_DROPPED, Some(&id), None);
                    (true, format!("{id}: dropped from the queue"))
                } else if self.running.contains_key(id.as_str()) {
                    (
                        false,
                        format!("{id} is already running; it cannot be dropped"),
                    )
                } else {
                    (false, format!("{id} is not in the queue"))
                }
            }
            ControlCommand::Add { spec } => {
                let id = spec.id.clone();
                if let Err(e) = spec.validate() {
                    (false, e.to_string())
                } else if self.known(&id) {
                    (false, format!("{id} is already queued or running"))
                } else {
                    self.enqueue(spec);
                    (true, format!("{id}: added to the queue"))
                }
            }
        };
        self.queue_dirty = true;
        ControlResult { ok, message }
    }

    fn state(&self, status: EngineStatus) -> EngineState {
        let now = now_rfc3339();
        EngineState {
            schema_version: 1,
            status,
            pid: std::process::id(),
            host: crate::state::hostname(),
            started_at: self.started_at.clone(),
            heartbeat_at: now,
            max_concurrency: self.config.max_concurrency,
            counts: Counts {
                queued: (self.queue.len() + self.resume_first.len()) as u64,
                running: (self.running.len() + self.kept.len()) as u64,
                ..self.counts
            },
            stop_reason: self.stop_reason.clone(),
        }
    }

    fn snapshot(&mut self, status: EngineStatus, with_checkpoint: bool) -> Snapshot {
        let checkpoint = with_checkpoint.then(|| {
            let mut running: Vec<&Running> = self.running.values().collect();
            running.sort_by_key(|r| r.seq);
            let annotations = self
                .reporter
                .annotations
                .lock()
                .map(|a| a.clone())
                .unwrap_or_default();
            let active = running
                .iter()
                .map(|r| ActiveView {
                    id: Arc::from(r.entry.spec.id.as_str()),
                    kind: r.entry.spec.kind.clone(),
                    started_at: r.started_at.clone(),
                    annotation: annotations.get(&r.entry.spec.id).cloned(),
                })
                .collect();
            let mut started: Vec<(u64, Arc<str>)> = running
                .iter()
                .map(|r| (r.seq, r.entry.json.clone()))
                .chain(self.kept.iter().map(|(seq, e)| (*seq, e.json.clone())))
                .collect();
            started.sort_by_key(|(seq, _)| *seq);
            let running_json = started
                .into_iter()
                .map(|(_, json)| json)
                .chain(self.resume_first.iter().map(|e| e.json.clone()))
                .collect();
            CheckpointData {
                queued: self.queue.snapshot(),
                running: running_json,
                active,
                extra: self.extra.clone(),
            }
        });
        Snapshot {
            status,
            updated_at: crate::util::now_rfc3339_millis(),
            checkpoint,
            events: self.events().take(),
            state: self.state(status),
        }
    }

    /// Hands a snapshot to the writer when something changed and the coalescing window allows.
    fn maybe_write(&mut self) {
        if self.writer.busy() {
            return;
        }
        let now = Instant::now();
        let dirty = self.queue_dirty || self.reporter.dirty.load(Ordering::Acquire);
        let heartbeat = now >= self.next_heartbeat;
        if !(heartbeat || dirty && now >= self.next_write) {
            return;
        }
        let with_cp = dirty;
        self.queue_dirty = false;
        self.reporter.dirty.store(false, Ordering::Release);
        let snap = self.snapshot(EngineStatus::Running, with_cp);
        self.writer.submit(snap);
        let backoff = self.writer.last_duration() * 3;
        self.next_write = now + self.config.checkpoint_interval.max(backoff);
        self.next_heartbeat = now + self.config.heartbeat_interval;
    }

    /// Waits for the writer, then writes everything now.
    async fn flush_now(&mut self, status: EngineStatus) -> Result<(), EngineError> {
        while self.writer.busy() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        self.queue_dirty = false;
        self.reporter.dirty.store(false, Ordering::Release);
        let snap = self.snapshot(status, true);
        self.next_heartbeat = Instant::now() + self.config.heartbeat_interval;
        self.writer
            .write_now(snap)
            .await
            .map_err(|e| EngineError::io(&self.paths.checkpoint(), std::io::Error::other(e)))
    }

    async fn finish(&mut self) -> Result<RunReport, EngineError> {
        let status = if self.interrupted {
            EngineStatus::Interrupted
        } else {
            EngineStatus::Stopped
        };
        let reason = self.stop_reason.clone().or_else(|| {
            (!self.interrupted && self.queue.is_empty()).then(|| "queue drained".to_string())
        });
        self.stop_reason = reason.clone();
        let mut extra = Map::new();
        if let Some(r) = &reason {
            extra.insert("reason".into(), json!(r));
        }
        let event = if self.interrupted {
            names::ENGINE_INTERRUPTED
        } else {
            names::ENGINE_STOPPED
        };
        self.events().push(event, None, Some(&extra));
        // The final checkpoint is never skipped: if a hand edit arrived meanwhile, apply it first.
        while self.writer.busy() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        self.check_live_edit();
        self.flush_now(status).await?;
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

async fn sleep_until_opt(deadline: Option<tokio::time::Instant>) {
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
