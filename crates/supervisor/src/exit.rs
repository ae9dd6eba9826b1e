//! Exit statuses: 0 finished, 130 interrupted, 2 bad input (nothing changed),
//! 3 workdir locked by another engine, 1 anything else. Errors carry their status.

use std::path::Path;

use autoresearch_adapters::session::SessionError;
use autoresearch_engine::EngineError;

/// An error with the exit status it should produce.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Exit {
    /// Exit status.
    pub code: i32,
    /// What to tell the user.
    pub message: String,
}

impl Exit {
    /// Bad input: exit 2.
    pub fn bad_input(message: impl Into<String>) -> anyhow::Error {
        Exit {
            code: 2,
            message: message.into(),
        }
        .into()
    }

    /// Bad input from any error: exit 2. The alternate form keeps an `anyhow` error's causes
    /// (`reading DIR: No such file or directory`), not only its outermost context.
    pub fn bad_input_err(e: impl std::fmt::Display) -> anyhow::Error {
        Self::bad_input(format!("{e:#}"))
    }

    /// Locked by another engine: exit 3.
    pub fn locked(pid: u32, workdir: &Path) -> anyhow::Error {
        Exit {
            code: 3,
            message: format!(
                "{} is in use by another engine (pid {pid}); use `supervisor status` or `supervisor stop {}`",
                workdir.display(),
                workdir.display()
            ),
        }
        .into()
    }

    /// Maps a session error to its exit status, with the command that helps.
    pub fn from_session(e: SessionError) -> anyhow::Error {
        let code = match &e {
            SessionError::Config(_) | SessionError::NoConfig(_) => 2,
            SessionError::Engine(EngineError::Locked { .. }) => 3,
            SessionError::Engine(EngineError::Checkpoint(_)) => 2,
            SessionError::Engine(EngineError::Config(_)) => 2,
            _ => 1,
        };
        let hint = match &e {
            SessionError::Engine(engine) => hint(engine, None),
            _ => String::new(),
        };
        Exit {
            code,
            message: format!("{e}{hint}"),
        }
        .into()
    }
}

/// The `supervisor` command that helps with an engine error (the engine names no program).
fn hint(e: &EngineError, workdir: Option<&Path>) -> String {
    let wd = workdir.map_or_else(|| "<workdir>".to_string(), |w| w.display().to_string());
    match e {
        EngineError::Locked { .. } => {
            format!(" (`supervisor status {wd}` shows it; `supervisor stop {wd}` stops it)")
        }
        EngineError::Checkpoint(_) => {
            format!(" (or rebuild it from the node files with `supervisor repair {wd}`)")
        }
        EngineError::NotQueued { .. } | EngineError::AlreadyRunning { .. } => {
            format!(" (see `supervisor queue {wd} list`)")
        }
        _ => String::new(),
    }
}

/// An engine error as an exit error: its status (2 for bad input, 3 for a locked workdir) and
/// the command that helps.
pub fn engine_error(e: EngineError, workdir: &Path) -> anyhow::Error {
    let code = match &e {
        EngineError::Locked { .. } => 3,
        EngineError::Checkpoint(_)
        | EngineError::Config(_)
        | EngineError::NotQueued { .. }
        | EngineError::AlreadyRunning { .. }
        | EngineError::AlreadyKnown { .. }
        | EngineError::Spec(_) => 2,
        _ => 1,
    };
    let hint = hint(&e, Some(workdir));
    Exit {
        code,
        message: format!("{e}{hint}"),
    }
    .into()
}

/// The exit status for an error.
pub fn code_of(e: &anyhow::Error) -> i32 {
    if let Some(x) = e.downcast_ref::<Exit>() {
        return x.code;
    }
    if let Some(EngineError::Locked { .. }) = e.downcast_ref::<EngineError>() {
        return 3;
    }
    if let Some(
        EngineError::Checkpoint(_)
        | EngineError::NotQueued { .. }
        | EngineError::AlreadyRunning { .. }
        | EngineError::AlreadyKnown { .. }
        | EngineError::Spec(_),
    ) = e.downcast_ref::<EngineError>()
    {
        return 2;
    }
    1
}
