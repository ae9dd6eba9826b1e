//! [`AsyncWorkEngine`]: the public face of the engine — its configuration, opening a workdir
//! (lock, checkpoint) and running it to a [`RunReport`]. The loop itself is in
//! [`scheduler`](crate::scheduler).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::checkpoint::{self, Checkpoint};
use crate::error::EngineError;
use crate::lock::{self, EngineLock};
use crate::paths::EnginePaths;
use crate::scheduler::Scheduler;
use crate::signal::{self, SignalHandlerKind};
use crate::state::{Counts, EngineStatus};
use crate::workflow::Workflow;
use crate::writer::{FileStamp, Writer};

/// How the engine runs. Build it with [`EngineConfig::new`] and change the fields you need.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct EngineConfig {
    /// The workdir; the engine's files go to `<workdir>/engine/`.
    pub workdir: PathBuf,
    /// At most this many specs run at once (≥ 1).
    pub max_concurrency: usize,
    /// After an interrupt, how long running specs get to return before they are aborted.
    pub grace_period: Duration,
    /// The grace period left after a second signal.
    pub short_grace_period: Duration,
    /// Which signal handler to install while running.
    pub signals: SignalHandlerKind,
    /// Minimum time between two coalesced checkpoint writes (the writer also waits at least
    /// three times its last write's duration, so checkpoint cost stays a bounded share of time).
    pub checkpoint_interval: Duration,
    /// How often `engine_state.json`'s heartbeat is refreshed.
    pub heartbeat_interval: Duration,
    /// How often hand edits of the checkpoint and the control inbox are looked at.
    pub housekeeping_interval: Duration,
    /// How long the environment may keep failing — the engine's own writes, or specs returning
    /// [`WorkError::Retry`](crate::WorkError::Retry) — before the engine stops as interrupted.
    pub max_write_stall: Duration,
    /// The first wait before a spec that returned `Retry` starts again; it doubles up to
    /// [`max_retry_backoff`](Self::max_retry_backoff) and is reset by any completed spec.
    pub retry_backoff: Duration,
    /// The longest wait between two retries.
    pub max_retry_backoff: Duration,
}

impl EngineConfig {
    /// Defaults: concurrency 2, grace 10 s (1 s after a second signal), standard signal
    /// handler, checkpoint at most every 100 ms, heartbeat every 2 s, housekeeping every 100 ms,
    /// retries from 1 s doubling to 30 s, and at most 5 min of a failing environment.
    pub fn new(workdir: impl Into<PathBuf>) -> Self {
        EngineConfig {
            workdir: workdir.into(),
            max_concurrency: 2,
            grace_period: Duration::from_secs(10),
            short_grace_period: Duration::from_secs(1),
            signals: SignalHandlerKind::Standard,
            checkpoint_interval: Duration::from_millis(100),
            heartbeat_interval: Duration::from_secs(2),
            housekeeping_interval: Duration::from_millis(100),
            max_write_stall: Duration::from_secs(300),
            retry_backoff: Duration::from_secs(1),
            max_retry_backoff: Duration::from_secs(30),
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RunReport {
    /// `Interrupted` or `Stopped`.
    pub status: EngineStatus,
    /// Why it stopped: the workflow's reason, "queue drained", or why the engine interrupted
    /// itself (its environment kept failing).
    pub stop_reason: Option<String>,
    /// Final counts (completed/failed are totals over all resumes).
    pub counts: Counts,
    /// Checkpoint files written by this process.
    pub checkpoint_writes: u64,
    /// Bytes of checkpoint written by this process.
    pub checkpoint_bytes: u64,
}

/// The generic work engine. Build it with [`AsyncWorkEngine::open`], then [`AsyncWorkEngine::run`].
///
/// # Examples
///
/// Runs three specs that each add one child, with at most two at once:
///
/// ```
/// use autoresearch_engine::{
///     AsyncWorkEngine, EngineConfig, EngineStatus, RunContext, SignalHandlerKind, StartInfo,
///     WorkError, WorkSpec, Workflow,
/// };
///
/// struct Halves;
///
/// impl Workflow for Halves {
///     async fn initial_specs(&self, _: &StartInfo) -> Result<Vec<WorkSpec>, WorkError> {
///         (0..3)
///             .map(|i| WorkSpec::new(format!("n{i}"), 0.0, "root", Default::default()))
///             .collect::<Result<_, _>>()
///             .map_err(WorkError::msg)
///     }
///
///     async fn run(&self, spec: WorkSpec, _ctx: RunContext) -> Result<Vec<WorkSpec>, WorkError> {
///         if spec.kind == "child" {
///             return Ok(vec![]);
///         }
///         let child = WorkSpec::new(format!("{}.half", spec.id), 1.0, "child", Default::default())
///             .map_err(WorkError::msg)?;
///         Ok(vec![child])
///     }
/// }
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let mut config = EngineConfig::new(dir.path());
/// config.max_concurrency = 2;
/// config.signals = SignalHandlerKind::Noop;
/// let report = tokio::runtime::Runtime::new()?
///     .block_on(async { AsyncWorkEngine::open(config, Halves)?.run().await })?;
/// assert_eq!(report.status, EngineStatus::Stopped);
/// assert_eq!(report.counts.completed, 6);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct AsyncWorkEngine<W: Workflow> {
    pub(crate) config: EngineConfig,
    pub(crate) workflow: Arc<W>,
    pub(crate) cancel: CancellationToken,
    pub(crate) loaded: Option<Checkpoint>,
    stamp: Option<FileStamp>,
    pub(crate) prior: Counts,
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
        // Temp files of a writer that died mid-write (we hold the lock: they are not ours).
        match crate::atomic::remove_stale_temps(&paths.dir) {
            Ok(0) => {}
            Ok(n) => tracing::info!("removed {n} temp files left by a crash"),
            Err(e) => tracing::warn!("{}: cannot clean temp files: {e}", paths.dir.display()),
        }
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
        for dir in [
            paths.control(),
            crate::control::done_dir(&self.config.workdir),
        ] {
            crate::nofollow::create_dir_under(&self.config.workdir, &dir)
                .map_err(|e| EngineError::io(&dir, e))?;
        }
        let writer = Writer::start(paths.clone(), self.stamp, self.config.max_write_stall)
            .map_err(|e| EngineError::io(&paths.dir, e))?;
        let again = Arc::new(tokio::sync::Notify::new());
        let _signals = signal::install(self.config.signals, self.cancel.clone(), again.clone())?;
        Scheduler::new(&self, paths, writer).run(again).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{RunContext, StartInfo, WorkError, WorkSpec};

    /// Ten short specs; the third plants a lasting I/O error on `queue.json`.
    struct Breaks(std::path::PathBuf);

    impl Workflow for Breaks {
        async fn initial_specs(&self, _: &StartInfo) -> Result<Vec<WorkSpec>, WorkError> {
            (0..10)
                .map(|i| WorkSpec::new(format!("s{i}"), i as f64, "k", Default::default()))
                .collect::<Result<_, _>>()
                .map_err(WorkError::msg)
        }

        async fn run(&self, spec: WorkSpec, _: RunContext) -> Result<Vec<WorkSpec>, WorkError> {
            if spec.id == "s2" {
                let queue = self.0.join("engine/queue.json");
                crate::faults::plant_errors(&queue.to_string_lossy(), libc::EIO, u32::MAX);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok(vec![])
        }
    }

    #[tokio::test]
    async fn writes_that_keep_failing_stop_the_engine_as_interrupted_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = EngineConfig::new(dir.path());
        config.max_concurrency = 1;
        config.signals = SignalHandlerKind::Noop;
        config.max_write_stall = Duration::from_millis(300);
        let engine = AsyncWorkEngine::open(config, Breaks(dir.path().to_path_buf())).unwrap();
        let report = engine.run().await.expect("stops, does not fail");
        assert_eq!(report.status, EngineStatus::Interrupted);
        let reason = report.stop_reason.unwrap_or_default();
        assert!(
            reason.contains("queue.json") && reason.contains("os error 5"),
            "{reason}"
        );
        assert_eq!(report.counts.failed, 0, "no spec failed because of it");
        let cp = checkpoint::load(&dir.path().join("engine/checkpoint.json"))
            .unwrap()
            .unwrap();
        assert!(!cp.queued.is_empty(), "the last good checkpoint is kept");
        let queue = dir.path().join("engine/queue.json");
        crate::faults::clear(&queue.to_string_lossy());
    }
}
