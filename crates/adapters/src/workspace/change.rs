//! After the agent's apply: what changed in a worktree, the protected-path check, the engine's
//! commit with trailers, and the ref `refs/autoresearch/<run>/<id>` kept for every experiment
//! commit (failures and protected-path violations included: no idea's diff is lost).
//!
//! Apply is idempotent: [`Workspace::prepare_apply`] returns the committed change when the ref
//! exists (or when the worktree's HEAD is the engine's commit for this node and only the ref is
//! missing: a crash between commit and ref), and otherwise a clean worktree at the parent
//! commit for the apply to be (re)done.

use std::path::PathBuf;

use super::git::{git, git_text, identity_env};
use super::worktree::{Workspace, WorkspaceError};

/// The trailer naming the node in the engine's commits.
pub const NODE_TRAILER: &str = "Autoresearch-Node";
/// The trailer carrying the hypothesis.
pub const HYPOTHESIS_TRAILER: &str = "Autoresearch-Hypothesis";

/// A committed code change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedChange {
    /// The engine's commit.
    pub commit: String,
    /// Its parent (the parent node's commit).
    pub parent: String,
    /// Repository-relative paths it changes.
    pub changed: Vec<String>,
    /// The protected ones among them (non-empty: the node must fail).
    pub violations: Vec<String>,
}

/// What [`Workspace::prepare_apply`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyState {
    /// The change is committed already: reuse it, do not call the agent.
    Committed(AppliedChange),
    /// A clean worktree at the parent commit: run the agent's apply here.
    Ready(PathBuf),
}

/// What the commit message says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitInfo {
    /// The experiment's name.
    pub name: String,
    /// Its hypothesis (trailer).
    pub hypothesis: String,
    /// The change instruction (body).
    pub changes: String,
}

/// One line, trailer-safe.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl Workspace {
    /// The commit of node `id`'s ref, if set.
    pub async fn node_commit(&self, id: &str) -> Result<Option<String>, WorkspaceError> {
        Self::check_id(id)?;
        let r = self.ref_name(id);
        match git_text(
            &self.repo,
            &[
                "rev-parse",
                "--verify",
                "--quiet",
                &format!("{r}^{{commit}}"),
            ],
        )
        .await
        {
            Ok(c) if !c.is_empty() => Ok(Some(c)),
            Ok(_) => Ok(None),
            Err(e) if e.stderr().is_empty() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Sets node `id`'s ref to `commit` (also for parameter-only nodes, whose commit is their
    /// parent's, so every node's code is one lookup away).
    pub async fn set_node_ref(&self, id: &str, commit: &str) -> Result<(), WorkspaceError> {
        Self::check_id(id)?;
        let commit = self.resolve_commit(commit).await?;
        git(
            &self.repo,
            &["update-ref", &self.ref_name(id), &commit],
            &[],
            None,
        )
        .await?;
        Ok(())
    }

    /// Before an apply of node `id` on `parent_commit`: the committed change if there is one,
    /// else a clean worktree at the parent (an uncommitted earlier apply is thrown away).
    pub async fn prepare_apply(
        &self,
        id: &str,
        parent_commit: &str,
    ) -> Result<ApplyState, WorkspaceError> {
        Self::check_id(id)?;
        let parent = self.resolve_commit(parent_commit).await?;
        if let Some(commit) = self.node_commit(id).await? {
            return Ok(ApplyState::Committed(self.describe_commit(&commit).await?));
        }
        let path = self.worktree_path(id);
        if path.join(".git").is_file()
            && let Ok(head) = git_text(&path, &["rev-parse", "--verify", "--quiet", "HEAD"]).await
            && head != parent
        {
            let head_parent = git_text(&path, &["rev-parse", "--verify", "--quiet", "HEAD^"])
                .await
                .unwrap_or_default();
            let node = git_text(
                &path,
                &[
                    "log",
                    "-1",
                    &format!("--format=%(trailers:key={NODE_TRAILER},valueonly,separator=%x2C)"),
                    "HEAD",
                ],
            )
            .await
            .unwrap_or_default();
            let author = git_text(&path, &["log", "-1", "--format=%ae", "HEAD"])
                .await
                .unwrap_or_default();
            if head_parent == parent && node.trim() == id && author == super::git::COMMIT_EMAIL {
                git(
                    &self.repo,
                    &["update-ref", &self.ref_name(id), &head],
                    &[],
                    None,
                )
                .await?;
                return Ok(ApplyState::Committed(self.describe_commit(&head).await?));
            }
        }
        Ok(ApplyState::Ready(
            self.ensure_worktree(id, &parent, true).await?,
        ))
    }

    /// The paths changed in node `id`'s worktree relative to its HEAD: staged, unstaged and
    /// untracked (ignored files and `include` entries left out), sorted.
    pub async fn changed_paths(&self, id: &str) -> Result<Vec<String>, WorkspaceError> {
        Self::check_id(id)?;
        let path = self.worktree_path(id);
        if !path.join(".git").is_file() {
            return Err(WorkspaceError::NoWorktree(id.into()));
        }
        let out = git(
            &path,
            &[
                "status",
                "--porcelain=v1",
                "-z",
                "--untracked-files=all",
                "--no-renames",
            ],
            &[],
            None,
        )
        .await?;
        let mut paths = Vec::new();
        for entry in out.split(|&b| b == 0) {
            if entry.len() < 4 {
                continue;
            }
            let p = String::from_utf8_lossy(&entry[3..]).into_owned();
            if !self.is_included(&p).await? {
                paths.push(p);
            }
        }
        paths.sort();
        paths.dedup();
        Ok(paths)
    }

    /// Commits everything the agent changed in node `id`'s worktree on top of `parent_commit`
    /// (commits the agent made itself are folded in), with the engine's identity and the
    /// trailers, sets the node's ref, and reports protected-path violations. An apply that
    /// changed nothing still gets an (empty) commit and a ref; `changed` is then empty.
    pub async fn commit_apply(
        &self,
        id: &str,
        parent_commit: &str,
        info: &CommitInfo,
    ) -> Result<AppliedChange, WorkspaceError> {
        Self::check_id(id)?;
        let parent = self.resolve_commit(parent_commit).await?;
        let path = self.worktree_path(id);
        if !path.join(".git").is_file() {
            return Err(WorkspaceError::NoWorktree(id.into()));
        }
        let head = git_text(&path, &["rev-parse", "HEAD"]).await?;
        if head != parent {
            // The agent committed on its own: keep its changes, but as one engine commit.
            git(&path, &["reset", "--soft", "--quiet", &parent], &[], None).await?;
        }
        let changed = self.changed_paths(id).await?;
        let violations = self.protected.violations(&changed);
        if !changed.is_empty() {
            let mut list = Vec::new();
            for p in &changed {
                list.extend_from_slice(p.as_bytes());
                list.push(0);
            }
            git(
                &path,
                &["add", "-A", "--pathspec-from-file=-", "--pathspec-file-nul"],
                &[("GIT_LITERAL_PATHSPECS", "1")],
                Some(&list),
            )
            .await?;
        }
        let message = format!(
            "autoresearch {id}: {}\n\n{}\n\n{NODE_TRAILER}: {id}\n{HYPOTHESIS_TRAILER}: {}\n",
            one_line(&info.name),
            info.changes.trim(),
            one_line(&info.hypothesis),
        );
        let env = identity_env();
        git(
            &path,
            &[
                "commit",
                "--quiet",
                "--no-verify",
                "--allow-empty",
                "--cleanup=verbatim",
                "-F",
                "-",
            ],
            &env,
            Some(message.as_bytes()),
        )
        .await?;
        let commit = git_text(&path, &["rev-parse", "HEAD"]).await?;
        git(
            &self.repo,
            &["update-ref", &self.ref_name(id), &commit],
            &[],
            None,
        )
        .await?;
        Ok(AppliedChange {
            commit,
            parent,
            changed,
            violations,
        })
    }

    /// The change of an engine commit (its parent, changed paths, violations).
    async fn describe_commit(&self, commit: &str) -> Result<AppliedChange, WorkspaceError> {
        let parent = git_text(&self.repo, &["rev-parse", &format!("{commit}^")]).await?;
        let out = git(
            &self.repo,
            &["diff", "--name-only", "-z", "--no-renames", &parent, commit],
            &[],
            None,
        )
        .await?;
        let changed: Vec<String> = out
            .split(|&b| b == 0)
            .filter(|s| !s.is_empty())
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect();
        let violations = self.protected.violations(&changed);
        Ok(AppliedChange {
            commit: commit.to_string(),
            parent,
            changed,
            violations,
        })
    }

    /// `git diff from to` (any revisions), for `supervisor show` and `report.md`.
    pub async fn diff(&self, from: &str, to: &str) -> Result<String, WorkspaceError> {
        let from = self.resolve_commit(from).await?;
        let to = self.resolve_commit(to).await?;
        let out = git(
            &self.repo,
            &[
                "diff",
                "--no-color",
                "--no-ext-diff",
                "--no-textconv",
                &from,
                &to,
            ],
            &[],
            None,
        )
        .await?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    /// `git diff --stat from to`.
    pub async fn diff_stat(&self, from: &str, to: &str) -> Result<String, WorkspaceError> {
        let from = self.resolve_commit(from).await?;
        let to = self.resolve_commit(to).await?;
        Ok(git_text(&self.repo, &["diff", "--no-color", "--stat", &from, &to]).await?)
    }
}
