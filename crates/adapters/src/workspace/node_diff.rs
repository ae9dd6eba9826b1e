//! A node's code for views: its `engine/nodes/<id>/commit.json` ([`NodeCommit`]) and `git diff`
//! against its parent's commit and against the baseline's (`workspace.base`). The one helper
//! behind `supervisor show`, `report.md` and the dashboard's experiment page.
//!
//! It only reads: no worktree, run id or ref is made. Git runs with the hardened environment of
//! [`super::git`], fixed arguments and full commit ids (checked to be hexadecimal, so no
//! revision can be read as an option); external diff drivers and text conversions are off; a
//! call taking longer than [`GIT_TIMEOUT`] is killed; the text is cut at the caller's limit.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use super::git::git;
use crate::config::workspace::WorkspaceConfig;
use crate::model::NodeCommit;
use crate::workdir::Workdir;

/// How long one git command may take.
pub const GIT_TIMEOUT: Duration = Duration::from_secs(20);

/// Largest `commit.json` or `config.json` read.
const MAX_FILE_BYTES: u64 = 8 << 20;

/// The commits of one node of a run with a `workspace`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeCode {
    /// The repository (`workspace.repo`).
    #[serde(skip)]
    pub repo: PathBuf,
    /// The commit the node's job ran at.
    pub node: String,
    /// `refs/autoresearch/<run>/<id>`, pointing at `node`.
    #[serde(rename = "ref")]
    pub ref_name: String,
    /// The commit it was made from (its parent node's; the baseline's is `workspace.base`),
    /// when its code differs from it (`None` for a parameter-only experiment).
    pub parent: Option<String>,
    /// The baseline's commit (`workspace.base`), when the node's code differs from it.
    pub baseline: Option<String>,
    /// Repository paths its own change changed.
    pub changed: Vec<String>,
}

/// A diff between two commits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CodeDiff {
    /// From which commit.
    pub from: String,
    /// To which commit.
    pub to: String,
    /// `git diff --stat --patch` output, cut at the caller's limit.
    pub text: String,
    /// Whether the text was cut.
    pub truncated: bool,
}

/// Why a node's code could not be read or diffed.
#[derive(Debug, thiserror::Error)]
pub enum NodeDiffError {
    /// A file could not be read or parsed.
    #[error("{}: {message}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// git failed or took too long.
    #[error("{0}")]
    Git(String),
}

fn is_sha(s: &str) -> bool {
    matches!(s.len(), 40 | 64) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, NodeDiffError> {
    let err = |message: String| NodeDiffError::File {
        path: path.to_path_buf(),
        message,
    };
    let Some(bytes) = autoresearch_engine::nofollow::read_regular(path, MAX_FILE_BYTES)
        .map_err(|e| err(e.to_string()))?
    else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| err(e.to_string()))
}

/// The `workspace` section of the workdir's `config.json`, when it has one.
fn workspace_of(workdir: &Path) -> Result<Option<WorkspaceConfig>, NodeDiffError> {
    let path = Workdir::new(workdir).config();
    Ok(read_json::<crate::config::Config>(&path)?.and_then(|c| c.workspace))
}

impl NodeCode {
    /// The code of node `id` in `workdir`, or `None` when the run has no `workspace` or the
    /// node has no commit yet (it never got a worktree).
    pub fn load(workdir: &Path, id: &str) -> Result<Option<NodeCode>, NodeDiffError> {
        let Some(ws) = workspace_of(workdir)? else {
            return Ok(None);
        };
        let path = Workdir::new(workdir)
            .node_dir(id)
            .join(crate::model::NODE_COMMIT_FILE);
        let Some(c) = read_json::<NodeCommit>(&path)? else {
            return Ok(None);
        };
        if !is_sha(&c.commit) || !is_sha(&c.parent_commit) {
            return Err(NodeDiffError::File {
                path,
                message: "commit or parent_commit is not a full commit id".into(),
            });
        }
        let repo = if ws.repo.is_absolute() {
            ws.repo.clone()
        } else {
            workdir.join(&ws.repo)
        };
        let base = ws.base.filter(|b| is_sha(b));
        Ok(Some(NodeCode {
            repo,
            parent: (c.parent_commit != c.commit).then_some(c.parent_commit),
            baseline: base.filter(|b| *b != c.commit),
            node: c.commit,
            ref_name: c.ref_name,
            changed: c.changed,
        }))
    }

    /// Whether the node's code differs from its parent's or the baseline's.
    pub fn has_diff(&self) -> bool {
        self.parent.is_some() || self.baseline.is_some()
    }

    /// The diff against its parent (`None` for a parameter-only experiment).
    pub async fn against_parent(
        &self,
        max_bytes: usize,
    ) -> Result<Option<CodeDiff>, NodeDiffError> {
        match &self.parent {
            Some(p) => diff(&self.repo, p, &self.node, max_bytes).await.map(Some),
            None => Ok(None),
        }
    }

    /// The diff against the baseline (`None` when the code is the baseline's).
    pub async fn against_baseline(
        &self,
        max_bytes: usize,
    ) -> Result<Option<CodeDiff>, NodeDiffError> {
        match &self.baseline {
            Some(b) => diff(&self.repo, b, &self.node, max_bytes).await.map(Some),
            None => Ok(None),
        }
    }
}

/// `git diff --stat --patch FROM TO` in `repo` (both full commit ids), cut at `max_bytes`.
pub async fn diff(
    repo: &Path,
    from: &str,
    to: &str,
    max_bytes: usize,
) -> Result<CodeDiff, NodeDiffError> {
    if !is_sha(from) || !is_sha(to) {
        return Err(NodeDiffError::Git(format!(
            "not full commit ids: {from:?}, {to:?}"
        )));
    }
    let args = [
        "diff",
        "--no-color",
        "--no-ext-diff",
        "--no-textconv",
        "--stat",
        "--patch",
        from,
        to,
    ];
    let out = tokio::time::timeout(GIT_TIMEOUT, git(repo, &args, &[], None))
        .await
        .map_err(|_| {
            NodeDiffError::Git(format!(
                "`git diff {from} {to}` in {} took longer than {}s",
                repo.display(),
                GIT_TIMEOUT.as_secs()
            ))
        })?
        .map_err(|e| NodeDiffError::Git(e.to_string()))?;
    let truncated = out.len() > max_bytes;
    let mut text = String::from_utf8_lossy(&out[..out.len().min(max_bytes)]).into_owned();
    if truncated {
        // Cut at a line end, so a view never shows half a line.
        if let Some(end) = text.rfind('\n') {
            text.truncate(end + 1);
        }
    }
    Ok(CodeDiff {
        from: from.to_owned(),
        to: to.to_owned(),
        text,
        truncated,
    })
}
