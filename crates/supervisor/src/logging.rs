//! Tracing to `<workdir>/logs/autoresearch.log` (level from `AUTORESEARCH_LOG`, default info).

use std::path::Path;
use std::sync::Mutex;

use anyhow::{Context, Result};
use autoresearch_engine::nofollow;
use tracing_subscriber::EnvFilter;

/// Keeps the subscriber installed for the life of the command.
#[derive(Debug)]
pub struct LogGuard;

/// Sends tracing output to the workdir's log file.
pub fn init_file(workdir: &Path) -> Result<LogGuard> {
    // No writes through a link planted in the workdir (docs/reliability.md).
    std::fs::create_dir_all(workdir).with_context(|| format!("creating {}", workdir.display()))?;
    let dir = workdir.join("logs");
    nofollow::create_dir_under(workdir, &dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("autoresearch.log");
    let file =
        nofollow::open_append(&path).with_context(|| format!("opening {}", path.display()))?;
    let filter =
        EnvFilter::try_from_env("AUTORESEARCH_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(Mutex::new(file))
        .try_init();
    Ok(LogGuard)
}
