//! `workspace.include`: ignored files (data, a virtualenv, `.env`) put into each worktree,
//! since git does not check them out.
//!
//! An entry is a repository-relative path, or a glob matched against what git lists as ignored
//! (`git ls-files --others --ignored --exclude-standard --directory`: a wholly ignored folder is
//! listed once, so name it rather than files inside it). Folders are **symlinked** (no copy of a
//! large dataset or venv per experiment; the agent and the job see the repository's own copy,
//! so a write through the link changes it), files are **copied** (an edit stays in the
//! worktree). Entries are never committed: they are left out of the changed paths.

use std::path::Path;

use super::git::git;
use super::worktree::{Workspace, WorkspaceError, io_err};

/// One resolved include entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncludeItem {
    /// Repository-relative path.
    pub path: String,
    /// Whether it is a folder (symlinked) rather than a file (copied).
    pub is_dir: bool,
}

fn is_glob(entry: &str) -> bool {
    entry.contains(['*', '?', '[', '{'])
}

impl Workspace {
    /// The include entries resolved against the repository (computed once).
    pub async fn include_items(&self) -> Result<&[IncludeItem], WorkspaceError> {
        self.include_resolved
            .get_or_try_init(|| self.resolve_include())
            .await
            .map(Vec::as_slice)
    }

    async fn resolve_include(&self) -> Result<Vec<IncludeItem>, WorkspaceError> {
        let mut items = Vec::new();
        let mut ignored: Option<Vec<String>> = None;
        for entry in &self.include {
            let entry = entry.trim_end_matches('/');
            let paths = if is_glob(entry) {
                if ignored.is_none() {
                    let out = git(
                        &self.repo,
                        &[
                            "ls-files",
                            "-z",
                            "--others",
                            "--ignored",
                            "--exclude-standard",
                            "--directory",
                        ],
                        &[],
                        None,
                    )
                    .await?;
                    ignored = Some(
                        out.split(|&b| b == 0)
                            .filter(|s| !s.is_empty())
                            .map(|s| String::from_utf8_lossy(s).trim_end_matches('/').to_string())
                            .collect(),
                    );
                }
                let glob = globset::GlobBuilder::new(entry)
                    .literal_separator(true)
                    .build()
                    .map_err(|e| WorkspaceError::Include {
                        entry: entry.into(),
                        message: e.to_string(),
                    })?
                    .compile_matcher();
                let matched: Vec<String> = ignored
                    .as_deref()
                    .unwrap_or_default()
                    .iter()
                    .filter(|p| glob.is_match(p.as_str()))
                    .cloned()
                    .collect();
                if matched.is_empty() {
                    tracing::warn!(
                        "workspace.include {entry:?} matches no ignored file or folder of {}",
                        self.repo.display()
                    );
                }
                matched
            } else {
                vec![entry.to_string()]
            };
            for p in paths {
                let src = self.repo.join(&p);
                let meta = std::fs::metadata(&src).map_err(|e| WorkspaceError::Include {
                    entry: entry.into(),
                    message: format!("{}: {e}", src.display()),
                })?;
                items.push(IncludeItem {
                    path: p,
                    is_dir: meta.is_dir(),
                });
            }
        }
        Ok(items)
    }

    /// Puts the include entries into the worktree at `wt` (existing ones are left alone).
    pub(super) async fn hydrate(&self, wt: &Path) -> Result<(), WorkspaceError> {
        for item in self.include_items().await? {
            let dst = wt.join(&item.path);
            if std::fs::symlink_metadata(&dst).is_ok() {
                continue;
            }
            if let Some(parent) = dst.parent() {
                std::fs::create_dir_all(parent).map_err(io_err(parent))?;
            }
            let src = self.repo.join(&item.path);
            if item.is_dir {
                std::os::unix::fs::symlink(&src, &dst).map_err(io_err(&dst))?;
            } else {
                std::fs::copy(&src, &dst).map_err(io_err(&dst))?;
            }
        }
        Ok(())
    }

    /// Whether a repository-relative path is (inside) an include entry.
    pub(super) async fn is_included(&self, path: &str) -> Result<bool, WorkspaceError> {
        Ok(self.include_items().await?.iter().any(|i| {
            path == i.path
                || path
                    .strip_prefix(i.path.as_str())
                    .is_some_and(|rest| rest.starts_with('/'))
        }))
    }
}
