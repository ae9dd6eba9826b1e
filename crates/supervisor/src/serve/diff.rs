//! Code diffs of experiments that change code (the agent planner).
//!
//! Such an experiment's commit is kept under the ref `refs/autoresearch/<run>/<node id>` in the
//! repository named by `workspace.repo` in `config.json` (relative paths are taken from the
//! workdir). A node's diff is shown against its parent's commit (the nearest ancestor with a
//! commit, else `workspace.base`) and against the baseline (`workspace.base`, else the
//! baseline node's commit). A node without such a ref has no diff, and the page shows none.
//!
//! Git runs without a shell, with fixed arguments, object names it printed itself (checked to be
//! hexadecimal) and `workspace.base` behind `--end-of-options`; external diff drivers and text
//! conversions are off, and the output is cut at [`MAX_DIFF`] bytes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde::Serialize;
use tokio::process::Command;

use crate::render::load::RunView;

/// The largest diff shown, in bytes.
pub const MAX_DIFF: usize = 1024 * 1024;
/// How long one git command may take.
const GIT_TIMEOUT: Duration = Duration::from_secs(20);

/// The commits of one node.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Commits {
    /// The repository.
    #[serde(skip)]
    pub repo: PathBuf,
    /// The node's commit.
    pub node: String,
    /// The commit it was made from (its parent's, or the base).
    pub parent: Option<String>,
    /// The baseline's commit.
    pub baseline: Option<String>,
}

/// A diff.
#[derive(Debug, Clone, Serialize)]
pub struct Diff {
    /// From which commit.
    pub from: String,
    /// To which commit.
    pub to: String,
    /// `git diff` output (cut at [`MAX_DIFF`] bytes).
    pub text: String,
    /// Whether the text was cut.
    pub truncated: bool,
}

fn is_sha(s: &str) -> bool {
    matches!(s.len(), 40 | 64) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The repository of `workspace.repo`, when configured and present.
fn repo_of(view: &RunView) -> Option<PathBuf> {
    let repo = view.config_str("/workspace/repo")?;
    let p = Path::new(repo);
    let p = if p.is_absolute() {
        p.to_path_buf()
    } else {
        view.root.join(p)
    };
    p.is_dir().then_some(p)
}

async fn git(repo: &Path, args: &[&str]) -> Option<Vec<u8>> {
    let mut cmd = Command::new("git");
    cmd.arg("-C")
        .arg(repo)
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_OPTIONAL_LOCKS", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(GIT_TIMEOUT, cmd.output())
        .await
        .ok()?
        .ok()?;
    out.status.success().then_some(out.stdout)
}

/// Node id → commit, from `refs/autoresearch/<run>/<id>`. When several runs used the same
/// repository, a ref of the run named like the workdir folder wins; ids found in several other
/// runs are left out (ambiguous).
async fn node_refs(repo: &Path, run_name: &str) -> HashMap<String, String> {
    let Some(out) = git(
        repo,
        &[
            "for-each-ref",
            "--format=%(objectname) %(refname)",
            "refs/autoresearch/",
        ],
    )
    .await
    else {
        return HashMap::new();
    };
    let mut found: HashMap<String, (String, bool, usize)> = HashMap::new();
    for line in String::from_utf8_lossy(&out).lines() {
        let Some((sha, name)) = line.split_once(' ') else {
            continue;
        };
        let Some(rest) = name.strip_prefix("refs/autoresearch/") else {
            continue;
        };
        let Some((run, id)) = rest.rsplit_once('/') else {
            continue;
        };
        if !is_sha(sha) {
            continue;
        }
        let ours = run == run_name;
        let e = found
            .entry(id.to_owned())
            .or_insert_with(|| (sha.to_owned(), ours, 0));
        e.2 += 1;
        if ours && !e.1 {
            *e = (sha.to_owned(), true, e.2);
        }
    }
    found
        .into_iter()
        .filter(|(_, (_, ours, n))| *ours || *n == 1)
        .map(|(id, (sha, _, _))| (id, sha))
        .collect()
}

async fn base_commit(view: &RunView, repo: &Path) -> Option<String> {
    let base = view.config_str("/workspace/base")?;
    let spec = format!("{base}^{{commit}}");
    let out = git(repo, &["rev-parse", "--verify", "--end-of-options", &spec]).await?;
    let sha = String::from_utf8_lossy(&out).trim().to_owned();
    is_sha(&sha).then_some(sha)
}

/// The commits of node `i`, or `None` when it has no commit (no code change, no repository).
pub async fn commits(view: &RunView, i: usize) -> Option<Commits> {
    let repo = repo_of(view)?;
    let run_name = view
        .root
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let refs = node_refs(&repo, &run_name).await;
    let node = refs.get(&view.nodes[i].id)?.clone();
    let base = base_commit(view, &repo).await;
    let ancestor = view
        .path_to(i)
        .iter()
        .rev()
        .skip(1)
        .find_map(|&a| refs.get(&view.nodes[a].id).cloned());
    let baseline_node = view
        .baseline
        .filter(|&b| b != i)
        .and_then(|b| refs.get(&view.nodes[b].id).cloned());
    Some(Commits {
        parent: ancestor.or_else(|| base.clone()),
        baseline: base.or(baseline_node),
        node,
        repo,
    })
}

/// `git diff FROM TO` in `repo` (both full object names).
pub async fn diff(repo: &Path, from: &str, to: &str) -> Option<Diff> {
    if !is_sha(from) || !is_sha(to) {
        return None;
    }
    let out = git(
        repo,
        &[
            "diff",
            "--no-color",
            "--no-ext-diff",
            "--no-textconv",
            "--stat",
            "--patch",
            from,
            to,
        ],
    )
    .await?;
    let truncated = out.len() > MAX_DIFF;
    let text = String::from_utf8_lossy(&out[..out.len().min(MAX_DIFF)]).into_owned();
    Some(Diff {
        from: from.to_owned(),
        to: to.to_owned(),
        text,
        truncated,
    })
}
