//! SIGINT/SIGTERM: the first interrupts the engine (like cancelling its token), each further one
//! shortens the grace period. [`SignalHandlerKind::Noop`] installs nothing, for tests and for
//! programs that handle signals themselves and cancel the engine's token.

use std::sync::Arc;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::error::EngineError;

/// Which signal handler the engine installs while it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SignalHandlerKind {
    /// SIGINT and SIGTERM interrupt the engine; a second one shortens the grace period.
    #[default]
    Standard,
    /// No handler: only the cancellation token interrupts the engine.
    Noop,
}

/// The installed handler; uninstalled when dropped.
#[derive(Debug)]
pub(crate) struct SignalHandler {
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for SignalHandler {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

/// Installs the handler: the first signal cancels `cancel`, later ones notify `again`.
pub(crate) fn install(
    kind: SignalHandlerKind,
    cancel: CancellationToken,
    again: Arc<Notify>,
) -> Result<SignalHandler, EngineError> {
    if kind == SignalHandlerKind::Noop {
        return Ok(SignalHandler { task: None });
    }
    use tokio::signal::unix::{SignalKind, signal};
    let io = |e| EngineError::io(std::path::Path::new("signal handler"), e);
    let mut int = signal(SignalKind::interrupt()).map_err(io)?;
    let mut term = signal(SignalKind::terminate()).map_err(io)?;
    let task = tokio::spawn(async move {
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
    });
    Ok(SignalHandler { task: Some(task) })
}
