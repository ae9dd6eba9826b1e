//! [`Workspace`]: the user's repository and the experiments' worktrees under
//! `<workdir>/engine/worktrees/<id>`.
//!
//! [`Workspace::ensure_worktree`] gives a worktree of node `<id>` at a commit, clean, whatever a
//! crash left behind: an existing worktree at the right commit is reused (reset to a clean tree
//! when asked); one at another commit, a half-created one (git leaves
//! `.git/worktrees/<name>/locked` saying "initializing"), or a folder that is not a registered
//! worktree is removed (`worktree unlock`, `worktree remove --force --force`, the folder,
//! `worktree prune`) and created again with `git worktree add --detach`. Adding, removing and
//! pruning hold the repository lock ([`super::lock`]) and retry on git's lock errors.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::git::{GitError, git, git_text};
use super::lock::lock_repo;
use super::protected::ProtectedPaths;
use crate::agent::journal::is_safe_node_id;
use crate::config::workspace::WorkspaceConfig;

/// Errors of the workspace.
#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    /// A git command failed.
    #[error(transparent)]
    Git(#[from] GitError),
    /// `workspace.repo` is not a git working tree.
    #[error("workspace.repo {}: not a git repository with a working tree ({message})", path.display())]
    NotARepo {
        /// The configured path.
        path: PathBuf,
        /// git's answer.
        message: String,
    },
    /// The node id cannot name a worktree folder and a ref.
    #[error(
        "node id {0:?} cannot name a worktree and a ref: expected [A-Za-z0-9._-]{{1,128}}, not starting or ending with `.`, without `..` or a `.lock` ending"
    )]
    BadNodeId(String),
    /// A revision does not name a commit.
    #[error("{rev:?} does not name a commit in {}: {message}", repo.display())]
    Revision {
        /// The revision.
        rev: String,
        /// The repository.
        repo: PathBuf,
        /// git's answer.
        message: String,
    },
    /// The engine's own file operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A protected glob does not compile.
    #[error("workspace.protected: {0}")]
    Glob(#[from] globset::Error),
    /// An `include` entry cannot be used.
    #[error("workspace.include {entry:?}: {message}")]
    Include {
        /// The entry.
        entry: String,
        /// Why.
        message: String,
    },
    /// No worktree exists for the node.
    #[error("no worktree for node {0}: create it first")]
    NoWorktree(String),
}

pub(super) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> WorkspaceError + '_ {
    move |source| WorkspaceError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The workspace of one run.
#[derive(Debug)]
pub struct Workspace {
    pub(super) repo: PathBuf,
    pub(super) common_dir: PathBuf,
    pub(super) root: PathBuf,
    pub(super) run_id: String,
    pub(super) protected: ProtectedPaths,
    pub(super) include: Vec<String>,
    pub(super) include_resolved: tokio::sync::OnceCell<Vec<super::include::IncludeItem>>,
}

/// A registered worktree, from `git worktree list --porcelain -z`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorktreeEntry {
    /// Its folder.
    pub path: PathBuf,
    /// Its HEAD commit (`None` when git could not read it).
    pub head: Option<String>,
    /// The lock reason, when locked.
    pub locked: Option<String>,
}

/// Whether `id` can name a worktree folder and a ref component.
pub fn is_worktree_id(id: &str) -> bool {
    is_safe_node_id(id)
        && !id.starts_with('.')
        && !id.ends_with('.')
        && !id.contains("..")
        && !id.ends_with(".lock")
}

impl Workspace {
    /// Opens the workspace of `workdir` for `config` (checked with `validate` before): finds the
    /// repository, reads or makes the run id, compiles the protected globs and creates
    /// `engine/worktrees/`.
    pub async fn open(workdir: &Path, config: &WorkspaceConfig) -> Result<Self, WorkspaceError> {
        let not_repo = |message: String| WorkspaceError::NotARepo {
            path: config.repo.clone(),
            message,
        };
        if !config.repo.is_dir() {
            return Err(not_repo("no such folder".into()));
        }
        let top = git_text(&config.repo, &["rev-parse", "--show-toplevel"])
            .await
            .map_err(|e| not_repo(e.stderr().to_string()))?;
        if top.is_empty() {
            return Err(not_repo("a bare repository has no working tree".into()));
        }
        let repo = PathBuf::from(top);
        let common = git_text(&repo, &["rev-parse", "--git-common-dir"])
            .await
            .map_err(|e| not_repo(e.stderr().to_string()))?;
        let common_dir = repo.join(common);
        let common_dir = std::fs::canonicalize(&common_dir).map_err(io_err(&common_dir))?;
        let run_id = super::run_id::load_or_create(workdir).map_err(io_err(workdir))?;
        let root = workdir.join("engine").join("worktrees");
        autoresearch_engine::nofollow::create_dir_under(workdir, &root).map_err(io_err(&root))?;
        let root = std::fs::canonicalize(&root).map_err(io_err(&root))?;
        Ok(Workspace {
            repo,
            common_dir,
            root,
            run_id,
            protected: ProtectedPaths::new(&config.protected)?,
            include: config.include.clone(),
            include_resolved: Default::default(),
        })
    }

    /// The repository's top-level folder.
    pub fn repo(&self) -> &Path {
        &self.repo
    }

    /// The run id of `refs/autoresearch/<run>/<id>`.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// The protected paths.
    pub fn protected(&self) -> &ProtectedPaths {
        &self.protected
    }

    /// `engine/worktrees/<id>` (the folder may not exist).
    pub fn worktree_path(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    /// `refs/autoresearch/<run>/<id>`.
    pub fn ref_name(&self, id: &str) -> String {
        format!("refs/autoresearch/{}/{id}", self.run_id)
    }

    pub(super) fn check_id(id: &str) -> Result<(), WorkspaceError> {
        if is_worktree_id(id) {
            Ok(())
        } else {
            Err(WorkspaceError::BadNodeId(id.to_string()))
        }
    }

    /// The full commit id of `rev` (a commit, tag, branch or `HEAD`).
    pub async fn resolve_commit(&self, rev: &str) -> Result<String, WorkspaceError> {
        let spec = format!("{rev}^{{commit}}");
        if rev.starts_with('-') {
            return Err(WorkspaceError::Revision {
                rev: rev.into(),
                repo: self.repo.clone(),
                message: "a revision cannot start with `-`".into(),
            });
        }
        git_text(&self.repo, &["rev-parse", "--verify", "--quiet", &spec])
            .await
            .map_err(|e| WorkspaceError::Revision {
                rev: rev.into(),
                repo: self.repo.clone(),
                message: if e.stderr().is_empty() {
                    "unknown revision".into()
                } else {
                    e.stderr().into()
                },
            })
    }

    /// The registered worktrees of the repository.
    pub async fn list_worktrees(&self) -> Result<Vec<WorktreeEntry>, WorkspaceError> {
        let out = git(
            &self.repo,
            &["worktree", "list", "--porcelain", "-z"],
            &[],
            None,
        )
        .await?;
        let mut entries = Vec::new();
        let mut cur: Option<WorktreeEntry> = None;
        for field in out.split(|&b| b == 0) {
            let field = String::from_utf8_lossy(field);
            if field.is_empty() {
                if let Some(e) = cur.take() {
                    entries.push(e);
                }
                continue;
            }
            if let Some(p) = field.strip_prefix("worktree ") {
                if let Some(e) = cur.take() {
                    entries.push(e);
                }
                cur = Some(WorktreeEntry {
                    path: PathBuf::from(p),
                    head: None,
                    locked: None,
                });
            } else if let Some(e) = cur.as_mut() {
                if let Some(h) = field.strip_prefix("HEAD ") {
                    e.head = Some(h.to_string()).filter(|h| h.bytes().any(|b| b != b'0'));
                } else if field == "locked" {
                    e.locked = Some(String::new());
                } else if let Some(r) = field.strip_prefix("locked ") {
                    e.locked = Some(r.to_string());
                }
            }
        }
        if let Some(e) = cur {
            entries.push(e);
        }
        Ok(entries)
    }

    async fn entry_for(&self, path: &Path) -> Result<Option<WorktreeEntry>, WorkspaceError> {
        Ok(self
            .list_worktrees()
            .await?
            .into_iter()
            .find(|e| e.path == path || std::fs::canonicalize(&e.path).is_ok_and(|c| c == path)))
    }

    /// A worktree of node `id` at `commit` (any revision), clean, with the `include` files in it.
    ///
    /// An existing worktree at that commit is reused; with `reset` true, a dirty one is reset
    /// to a clean tree (`git reset --hard` + `git clean -fdx`, inside it only). Anything else
    /// at that path (another commit, a half-created or unregistered worktree) is removed and
    /// the worktree created again.
    pub async fn ensure_worktree(
        &self,
        id: &str,
        commit: &str,
        reset: bool,
    ) -> Result<PathBuf, WorkspaceError> {
        Self::check_id(id)?;
        let commit = self.resolve_commit(commit).await?;
        let path = self.worktree_path(id);
        {
            let _lock = lock_repo(&self.common_dir)
                .await
                .map_err(io_err(&self.common_dir))?;
            let entry = self.entry_for(&path).await?;
            let usable = entry.as_ref().is_some_and(|e| {
                e.locked.is_none()
                    && e.head.as_deref() == Some(&commit)
                    && path.join(".git").is_file()
            });
            if usable {
                if reset && !self.is_clean(&path).await? {
                    self.reset_clean(id).await?;
                }
            } else {
                if let Some(e) = &entry {
                    tracing::info!(
                        "worktree {} is stale (head {:?}, locked {:?}): recreating it",
                        path.display(),
                        e.head,
                        e.locked
                    );
                    self.discard(&e.path).await?;
                }
                self.remove_folder(&path)?;
                self.release_half_entries(&path)?;
                let _ = git(&self.repo, &["worktree", "prune"], &[], None).await;
                self.add(&path, &commit).await?;
            }
        }
        self.hydrate(&path).await?;
        Ok(path)
    }

    /// Whether the worktree at `path` has no changes (untracked files included, ignored ones
    /// not).
    pub(super) async fn is_clean(&self, path: &Path) -> Result<bool, WorkspaceError> {
        let out = git(
            path,
            &["status", "--porcelain", "-z", "--untracked-files=all"],
            &[],
            None,
        )
        .await?;
        Ok(out.is_empty())
    }

    async fn add(&self, path: &Path, commit: &str) -> Result<(), WorkspaceError> {
        let path_text = path.to_string_lossy().into_owned();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            match git(
                &self.repo,
                &["worktree", "add", "--detach", "--quiet", &path_text, commit],
                &[],
                None,
            )
            .await
            {
                Ok(_) => return Ok(()),
                Err(e) if attempt < 6 && is_lock_race(e.stderr()) => {
                    tracing::info!(
                        "git worktree add raced on a lock (attempt {attempt}): {}",
                        e.stderr()
                    );
                    tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt))).await;
                    self.remove_folder(path)?;
                    let _ = git(&self.repo, &["worktree", "prune"], &[], None).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Unregisters the worktree at `path` (unlocking it first) and removes its folder.
    async fn discard(&self, path: &Path) -> Result<(), WorkspaceError> {
        let p = path.to_string_lossy().into_owned();
        let _ = git(&self.repo, &["worktree", "unlock", &p], &[], None).await;
        let _ = git(
            &self.repo,
            &["worktree", "remove", "--force", "--force", &p],
            &[],
            None,
        )
        .await;
        self.remove_folder(path)
    }

    /// Removes `path` (inside `engine/worktrees/`) without following symlinks.
    fn remove_folder(&self, path: &Path) -> Result<(), WorkspaceError> {
        if !path.starts_with(&self.root) || path == self.root {
            return Ok(());
        }
        match std::fs::symlink_metadata(path) {
            Err(_) => Ok(()),
            Ok(m) if m.is_dir() => std::fs::remove_dir_all(path).map_err(io_err(path)),
            Ok(_) => std::fs::remove_file(path).map_err(io_err(path)),
        }
    }

    /// Unlocks git's entries for `path` left half-created by a crash (a `locked` file, and
    /// possibly no `gitdir` yet), so `worktree prune` can drop them.
    fn release_half_entries(&self, path: &Path) -> Result<(), WorkspaceError> {
        let admin = self.common_dir.join("worktrees");
        let Ok(entries) = std::fs::read_dir(&admin) else {
            return Ok(());
        };
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let ours = path.join(".git");
        for entry in entries.flatten() {
            let dir = entry.path();
            let gitdir = std::fs::read_to_string(dir.join("gitdir")).ok();
            let points_here = gitdir
                .as_deref()
                .map(str::trim)
                .is_some_and(|g| Path::new(g) == ours);
            let entry_name = entry.file_name().to_string_lossy().into_owned();
            let same_name = entry_name == name
                || entry_name.strip_prefix(name.as_str()).is_some_and(|rest| {
                    !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit())
                });
            let half = gitdir.is_none() && same_name;
            if points_here || half {
                let locked = dir.join("locked");
                if locked.exists() {
                    std::fs::remove_file(&locked).map_err(io_err(&locked))?;
                }
                if half {
                    std::fs::remove_dir_all(&dir).map_err(io_err(&dir))?;
                }
            }
        }
        Ok(())
    }

    /// Removes node `id`'s worktree (its ref stays).
    pub async fn remove_worktree(&self, id: &str) -> Result<(), WorkspaceError> {
        Self::check_id(id)?;
        let path = self.worktree_path(id);
        let _lock = lock_repo(&self.common_dir)
            .await
            .map_err(io_err(&self.common_dir))?;
        if let Some(e) = self.entry_for(&path).await? {
            self.discard(&e.path).await?;
        }
        self.remove_folder(&path)?;
        self.release_half_entries(&path)?;
        let _ = git(&self.repo, &["worktree", "prune"], &[], None).await;
        Ok(())
    }

    /// Resets node `id`'s worktree to a clean tree at its HEAD (`git reset --hard`, `git clean
    /// -fdx`, inside it only), then puts the `include` files back.
    pub async fn reset_clean(&self, id: &str) -> Result<(), WorkspaceError> {
        Self::check_id(id)?;
        let path = self.worktree_path(id);
        if !path.join(".git").is_file() {
            return Err(WorkspaceError::NoWorktree(id.into()));
        }
        git(&path, &["reset", "--hard", "--quiet"], &[], None).await?;
        git(&path, &["clean", "-fdxq"], &[], None).await?;
        self.hydrate(&path).await
    }
}

/// Whether git's message says it lost a race on a lock file.
fn is_lock_race(stderr: &str) -> bool {
    let s = stderr.to_ascii_lowercase();
    s.contains("could not lock")
        || s.contains(".lock': file exists")
        || s.contains("unable to create") && s.contains(".lock")
}
