//! Opening a run on a workdir: the configuration rules of a first run and of a resume, and
//! the engine + workflow pair that runs it.
//!
//! - First run: the given configuration is validated, its `job.cwd` made absolute (relative to
//!   the config file's folder, or the current directory for flags; with a `workspace`, relative
//!   to the repository), its `workspace.base` resolved to a commit (see
//!   [`crate::workspace::settle`]), and written to `<workdir>/config.json`. A `job.cwd` that is not an existing folder is refused, on a
//!   first run and on resume, before anything is written.
//! - Resume: `config.json` is the source of truth. A given configuration may change only
//!   `limits.*` and `executor.slurm.*`; any other difference is refused with a diff and nothing
//!   is written.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use autoresearch_engine::{
    AsyncWorkEngine, CancellationToken, EngineConfig, EngineError, RunReport,
};

use crate::config::{Config, ConfigError};
use crate::workdir::Workdir;
use crate::workflow::{ExperimentWorkflow, WorkflowError};

/// Errors opening or running a session.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The configuration is invalid or a forbidden change was attempted.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// There is no configuration to run with.
    #[error("{} has no config.json: give a configuration (--config FILE, or --command/--metric/--param flags) to start a new run there", .0.display())]
    NoConfig(PathBuf),
    /// The engine refused or failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The workflow could not open the workdir's files.
    #[error(transparent)]
    Workflow(#[from] WorkflowError),
    /// A file could not be written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// Options of a session that are not part of the configuration.
#[derive(Debug, Clone)]
pub struct SessionOptions {
    /// Grace period for running specs after an interrupt.
    pub grace_period: Duration,
    /// Install SIGINT/SIGTERM handlers.
    pub handle_signals: bool,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").finish_non_exhaustive()
    }
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            grace_period: Duration::from_secs(10),
            handle_signals: true,
        }
    }
}

/// Whether the workdir already has a configuration.
pub fn has_config(root: &Path) -> bool {
    Workdir::new(root).config().is_file()
}

/// The configuration to run with, following the first-run and resume rules. Writes
/// `config.json` on a first run, or when a resume overrides limits.
pub fn resolve_config(root: &Path, given: Option<Config>) -> Result<Config, SessionError> {
    let wd = Workdir::new(root);
    let path = wd.config();
    if path.is_file() {
        let stored = Config::load(&path)?;
        let Some(given) = given else {
            stored.check_cwd()?;
            return Ok(stored);
        };
        let mut given = given;
        crate::workspace::settle::settle(&mut given, Some(&stored))?;
        absolutize_cwd(&mut given);
        let merged = Config::merge_for_resume(&stored, &given)?;
        merged.check_cwd()?;
        if merged != stored {
            write_config(&path, &merged)?;
        }
        return Ok(merged);
    }
    let Some(mut config) = given else {
        return Err(SessionError::NoConfig(root.to_path_buf()));
    };
    config.validate()?;
    crate::workspace::settle::settle(&mut config, None)?;
    absolutize_cwd(&mut config);
    config.check_cwd()?;
    std::fs::create_dir_all(root).map_err(|source| SessionError::Io {
        path: root.to_path_buf(),
        source,
    })?;
    write_config(&path, &config)?;
    Ok(config)
}

fn write_config(path: &Path, config: &Config) -> Result<(), SessionError> {
    let mut text = config.to_json_pretty();
    text.push('\n');
    autoresearch_engine::atomic::write_atomic(path, text.as_bytes()).map_err(|source| {
        SessionError::Io {
            path: path.to_path_buf(),
            source,
        }
    })
}

/// Makes `job.cwd` absolute: relative to the config file's folder, or the current directory.
fn absolutize_cwd(config: &mut Config) {
    if config.job.cwd.is_absolute() {
        return;
    }
    let base = config
        .origin
        .parent()
        .filter(|p| !p.as_os_str().is_empty() && config.origin.is_file())
        .map(Path::to_path_buf)
        .or_else(|| std::env::current_dir().ok())
        .unwrap_or_else(|| PathBuf::from("."));
    let joined = base.join(&config.job.cwd);
    config.job.cwd = joined.canonicalize().unwrap_or(joined);
}

/// An engine with the experiment workflow, ready to run.
pub struct Session {
    engine: AsyncWorkEngine<ExperimentWorkflow>,
}

impl Session {
    /// Takes the workdir's lock and opens the workflow on it.
    pub fn open(
        root: &Path,
        config: Config,
        options: &SessionOptions,
    ) -> Result<Session, SessionError> {
        let mut ec = EngineConfig::new(root);
        ec.max_concurrency = config.limits.max_concurrency;
        ec.grace_period = options.grace_period;
        ec.signals = if options.handle_signals {
            autoresearch_engine::SignalHandlerKind::Standard
        } else {
            autoresearch_engine::SignalHandlerKind::Noop
        };
        // Lock first: a second engine must be refused before it touches any file.
        let lock_probe = autoresearch_engine::lock::holder(root).ok().flatten();
        if let Some(pid) = lock_probe {
            return Err(SessionError::Engine(EngineError::Locked {
                path: autoresearch_engine::paths::EnginePaths::new(root).lock(),
                pid: Some(pid),
            }));
        }
        let workflow = ExperimentWorkflow::open(Workdir::new(root), config)?;
        let engine = AsyncWorkEngine::open(ec, workflow)?;
        Ok(Session { engine })
    }

    /// The workflow (to subscribe to notices or read state).
    pub fn workflow(&self) -> Arc<ExperimentWorkflow> {
        self.engine.workflow().clone()
    }

    /// Cancelling it interrupts the run like SIGINT.
    pub fn cancellation_token(&self) -> CancellationToken {
        self.engine.cancellation_token()
    }

    /// Runs until done, stopped or interrupted, then persists the final run state.
    pub async fn run(self) -> Result<RunReport, SessionError> {
        let workflow = self.engine.workflow().clone();
        let report = self.engine.run().await?;
        workflow.finish(&report)?;
        Ok(report)
    }
}
