//! The workdirs a dashboard serves: one, or every workdir under a folder (found the way
//! `supervisor list` finds them, again on every look at the list, so runs started later show
//! up). Each has a key (its path relative to the folder; the folder name for a single workdir)
//! used in URLs; the key only ever selects an entry of this registry and is never a path.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

use super::feed::Live;
use crate::commands::list;

/// One workdir served.
#[derive(Debug)]
struct Entry {
    path: PathBuf,
    live: OnceCell<Arc<Live>>,
}

/// A workdir as the landing page lists it.
#[derive(Debug, Clone, Serialize)]
pub struct Listed {
    /// Its key in URLs.
    pub key: String,
    /// Its path.
    pub path: String,
    /// Its status, as `supervisor status` says it (`crashed (pid N gone)`, …).
    pub status: String,
    /// The best value so far.
    pub best: Option<f64>,
    /// Experiments started.
    pub experiments: u64,
}

/// What is served.
#[derive(Debug)]
pub struct Registry {
    /// The folder given on the command line (the workdir itself in single mode).
    root: PathBuf,
    /// Whether `root` is a folder of workdirs rather than one workdir.
    folder: bool,
    entries: Mutex<BTreeMap<String, Arc<Entry>>>,
    shutdown: CancellationToken,
}

impl Registry {
    /// Serves the one workdir at `path`.
    pub fn single(path: &Path, shutdown: CancellationToken) -> Registry {
        let key = single_key(path);
        let mut entries = BTreeMap::new();
        entries.insert(
            key,
            Arc::new(Entry {
                path: path.to_path_buf(),
                live: OnceCell::new(),
            }),
        );
        Registry {
            root: path.to_path_buf(),
            folder: false,
            entries: Mutex::new(entries),
            shutdown,
        }
    }

    /// Serves every workdir under `dir` (two levels, like `supervisor list`).
    pub fn folder(dir: &Path, shutdown: CancellationToken) -> Registry {
        Registry {
            root: dir.to_path_buf(),
            folder: true,
            entries: Mutex::new(BTreeMap::new()),
            shutdown,
        }
    }

    /// Whether a folder of workdirs is served (the landing page is the list).
    pub fn is_folder(&self) -> bool {
        self.folder
    }

    /// The path given on the command line.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The key of the single workdir (`None` in folder mode).
    pub fn single_key(&self) -> Option<String> {
        if self.folder {
            return None;
        }
        self.lock().keys().next().cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Arc<Entry>>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Looks for workdirs again (folder mode) and returns them with their status. Blocking.
    pub fn list(&self) -> anyhow::Result<Vec<Listed>> {
        let found: Vec<(String, list::Listed)> = if self.folder {
            list::list(&self.root)?
                .into_iter()
                .map(|l| (folder_key(&self.root, &l.path), l))
                .collect()
        } else {
            let key = self.single_key().unwrap_or_default();
            let st = crate::commands::status::gather(&self.root)?;
            vec![(
                key,
                list::Listed {
                    path: self.root.clone(),
                    status: st.message.unwrap_or(st.status),
                    best: st.best.map(|b| b.value),
                    experiments: st.experiments_started,
                },
            )]
        };
        let mut entries = self.lock();
        for (key, l) in &found {
            entries.entry(key.clone()).or_insert_with(|| {
                Arc::new(Entry {
                    path: l.path.clone(),
                    live: OnceCell::new(),
                })
            });
        }
        Ok(found
            .into_iter()
            .map(|(key, l)| Listed {
                key,
                path: l.path.display().to_string(),
                status: l.status,
                best: l.best,
                experiments: l.experiments,
            })
            .collect())
    }

    /// The live state of the workdir with `key`, started on first use. `None` for an unknown
    /// key (in folder mode the folder is searched again first).
    pub async fn get(self: &Arc<Self>, key: &str) -> Option<Result<Arc<Live>, String>> {
        let mut entry = self.lock().get(key).cloned();
        if entry.is_none() && self.folder {
            let _ = self.list_blocking().await;
            entry = self.lock().get(key).cloned();
        }
        let entry = entry?;
        let shutdown = self.shutdown.clone();
        let path = entry.path.clone();
        Some(
            entry
                .live
                .get_or_try_init(|| Live::start(path, shutdown))
                .await
                .cloned(),
        )
    }

    /// [`Registry::list`] on a blocking thread.
    pub async fn list_blocking(self: &Arc<Self>) -> anyhow::Result<Vec<Listed>> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.list()).await?
    }
}

/// The key of a single workdir: its folder name.
fn single_key(path: &Path) -> String {
    path.canonicalize()
        .ok()
        .as_deref()
        .unwrap_or(path)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "workdir".to_owned())
}

/// The key of a workdir found under `root`: its relative path (`.` for the folder itself).
fn folder_key(root: &Path, path: &Path) -> String {
    match path.strip_prefix(root) {
        Ok(rel) if rel.as_os_str().is_empty() => ".".to_owned(),
        Ok(rel) => rel.to_string_lossy().into_owned(),
        Err(_) => path.to_string_lossy().into_owned(),
    }
}
