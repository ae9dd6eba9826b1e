//! `supervisor repair`: rebuild the checkpoint and tree from the node files.

use std::path::Path;

use anyhow::Result;

/// Runs repair and describes what it found and did.
pub fn repair(workdir: &Path, dry_run: bool) -> Result<String> {
    super::require_workdir(workdir)?;
    let r = autoresearch_adapters::repair::repair(workdir, dry_run)?;
    let mut out = String::new();
    let counts: Vec<String> = r
        .by_status
        .iter()
        .map(|(s, n)| format!("{n} {}", s.as_str()))
        .collect();
    out.push_str(&format!(
        "found {} nodes: {}\n",
        r.by_status.iter().map(|(_, n)| n).sum::<usize>(),
        if counts.is_empty() { "none".into() } else { counts.join(", ") }
    ));
    if let Some(p) = &r.old_checkpoint_problem {
        out.push_str(&format!("old checkpoint: {p}\n"));
    }
    for s in &r.skipped {
        out.push_str(&format!("skipped: {s}\n"));
    }
    out.push_str(&format!(
        "{} checkpoint: {} queued, {} to resume first ({})\n",
        if dry_run { "would write" } else { "wrote" },
        r.queued.len(),
        r.running.len(),
        r.running.join(", ")
    ));
    for b in &r.backups {
        out.push_str(&format!("backup: {}\n", b.display()));
    }
    if dry_run {
        out.push_str("dry run: nothing was changed\n");
    }
    Ok(out)
}
