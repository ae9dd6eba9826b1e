//! A node's code change as text, for `supervisor show` (plain text) and `report.md` (markdown):
//! its commit and ref, the command that checks it out, and its diffs against its parent and
//! against the baseline, read through [`autoresearch_adapters::workspace::node_diff`] (the helper
//! the dashboard's experiment page uses too).

use std::fmt::Write as _;
use std::path::Path;

use autoresearch_adapters::config::shell_word;
use autoresearch_adapters::workspace::node_diff::{CodeDiff, NodeCode};

/// The most diff text shown per comparison in `show` and `report.md`.
pub const MAX_SHOWN_DIFF: usize = 64 * 1024;

/// A node's commits and diffs.
#[derive(Debug, Clone)]
pub struct NodeDiffs {
    /// Its commits.
    pub code: NodeCode,
    /// Against its parent's commit (`None`: a parameter-only experiment).
    pub against_parent: Option<CodeDiff>,
    /// Against the baseline's commit (`None`: the baseline's code, or the same as
    /// `against_parent`).
    pub against_baseline: Option<CodeDiff>,
    /// Why a diff is missing, when git failed.
    pub problems: Vec<String>,
}

/// The code of node `id`, or `None` in a run without a `workspace` or before the node has a
/// commit. Runs git on a runtime of its own in a helper thread, so it works from async and sync
/// callers alike.
pub fn load(workdir: &Path, id: &str) -> Result<Option<NodeDiffs>, String> {
    let Some(code) = NodeCode::load(workdir, id).map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    std::thread::scope(|s| {
        s.spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("starting the async runtime: {e}"))?;
            Ok(rt.block_on(async {
                let mut problems = Vec::new();
                let against_parent =
                    code.against_parent(MAX_SHOWN_DIFF)
                        .await
                        .unwrap_or_else(|e| {
                            problems.push(e.to_string());
                            None
                        });
                let same = code.baseline.is_some() && code.baseline == code.parent;
                let against_baseline = if same {
                    None
                } else {
                    code.against_baseline(MAX_SHOWN_DIFF)
                        .await
                        .unwrap_or_else(|e| {
                            problems.push(e.to_string());
                            None
                        })
                };
                Some(NodeDiffs {
                    code: code.clone(),
                    against_parent,
                    against_baseline,
                    problems,
                })
            }))
        })
        .join()
        .map_err(|_| "the diff thread panicked".to_string())?
    })
}

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(12)]
}

/// The command that checks node `id`'s code out in a worktree of its own, next to the
/// repository (`<repo>-<id>`).
pub fn checkout_command(code: &NodeCode, id: &str) -> String {
    let name = code
        .repo
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "repo".into());
    format!(
        "git -C {} worktree add --detach {} {}",
        shell_word(&code.repo.display().to_string()),
        shell_word(&format!("../{name}-{id}")),
        shell_word(&code.ref_name)
    )
}

fn cut_note(d: &CodeDiff, repo: &Path) -> String {
    format!(
        "(cut at {} KiB: `git -C {} diff {} {}` shows all)",
        MAX_SHOWN_DIFF / 1024,
        shell_word(&repo.display().to_string()),
        short(&d.from),
        short(&d.to)
    )
}

/// The `show` lines: commit, ref, changed paths, then each diff.
pub fn write_text(d: &NodeDiffs, parent_id: Option<&str>, out: &mut String) {
    let c = &d.code;
    let _ = writeln!(
        out,
        "  {:<11} {} ({})",
        "commit",
        short(&c.node),
        c.ref_name
    );
    if !c.changed.is_empty() {
        let _ = writeln!(out, "  {:<11} {}", "changed", c.changed.join(" "));
    }
    let parent = parent_id.unwrap_or("workspace.base");
    for (what, diff) in [
        (format!("its parent {parent}"), &d.against_parent),
        ("the baseline".to_string(), &d.against_baseline),
    ] {
        let Some(diff) = diff else { continue };
        let _ = writeln!(
            out,
            "\ncode against {what} ({}..{}):",
            short(&diff.from),
            short(&diff.to)
        );
        out.push_str(&diff.text);
        if diff.truncated {
            let _ = writeln!(out, "{}", cut_note(diff, &c.repo));
        }
    }
    if d.against_parent.is_none() && d.against_baseline.is_none() {
        let _ = writeln!(
            out,
            "  {:<11} the same as its parent's and the baseline's",
            "code"
        );
    }
    for p in &d.problems {
        let _ = writeln!(out, "  {:<11} {p}", "diff failed");
    }
}

/// The `report.md` section of the best node's code: the checkout command and the diffs.
pub fn write_markdown(d: &NodeDiffs, id: &str, parent_id: Option<&str>, out: &mut String) {
    let c = &d.code;
    out.push_str("\n### Code\n\n");
    let _ = writeln!(
        out,
        "Commit `{}`, kept as `{}`. Check it out in a worktree of its own:\n",
        short(&c.node),
        c.ref_name
    );
    let _ = writeln!(out, "```sh\n{}\n```\n", checkout_command(c, id));
    let parent = parent_id.unwrap_or("`workspace.base`");
    for (what, diff) in [
        (format!("Against its parent `{parent}`"), &d.against_parent),
        ("Against the baseline".to_string(), &d.against_baseline),
    ] {
        let Some(diff) = diff else { continue };
        let _ = writeln!(
            out,
            "{what} (`{}..{}`):\n",
            short(&diff.from),
            short(&diff.to)
        );
        // A fence longer than any backtick run in the diff, so the diff cannot close it.
        let longest = diff
            .text
            .split(|ch| ch != '`')
            .map(str::len)
            .max()
            .unwrap_or(0);
        let fence = "`".repeat((longest + 1).max(3));
        let _ = writeln!(out, "{fence}diff\n{}{fence}\n", ensure_newline(&diff.text));
        if diff.truncated {
            let _ = writeln!(out, "{}\n", cut_note(diff, &c.repo));
        }
    }
    if d.against_parent.is_none() && d.against_baseline.is_none() {
        out.push_str("Its code is the baseline's (a parameter-only experiment).\n\n");
    }
    for p in &d.problems {
        let _ = writeln!(out, "- Diff failed: {p}");
    }
}

fn ensure_newline(text: &str) -> String {
    if text.is_empty() || text.ends_with('\n') {
        text.to_owned()
    } else {
        format!("{text}\n")
    }
}
