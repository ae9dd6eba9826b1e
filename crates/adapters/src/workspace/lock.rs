//! The worktree-creation lock: parallel `git worktree add` races on `.git/config.lock`, so
//! adding, removing and pruning worktrees of one repository is serialized by an in-process
//! mutex (tasks of this engine) **and** an exclusive `flock` on
//! `<git common dir>/autoresearch-worktrees.lock` (other engines on the same repository).

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex as StdMutex, OnceLock};

use tokio::sync::{Mutex, OwnedMutexGuard};

/// Name of the lock file in the repository's common git directory.
pub const LOCK_FILE: &str = "autoresearch-worktrees.lock";

/// Held while a worktree is added, removed or pruned.
#[derive(Debug)]
pub struct RepoLock {
    _file: File,
    _guard: OwnedMutexGuard<()>,
}

fn mutex_for(path: &Path) -> Arc<Mutex<()>> {
    static MUTEXES: OnceLock<StdMutex<HashMap<PathBuf, Arc<Mutex<()>>>>> = OnceLock::new();
    let map = MUTEXES.get_or_init(Default::default);
    let mut map = map.lock().unwrap_or_else(|e| e.into_inner());
    map.entry(path.to_path_buf()).or_default().clone()
}

/// Takes the lock of the repository whose common git directory is `common_dir`.
pub async fn lock_repo(common_dir: &Path) -> std::io::Result<RepoLock> {
    let path = common_dir.join(LOCK_FILE);
    let guard = mutex_for(&path).lock_owned().await;
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    let file = tokio::task::spawn_blocking(move || file.lock().map(|()| file))
        .await
        .map_err(std::io::Error::other)??;
    Ok(RepoLock {
        _file: file,
        _guard: guard,
    })
}
