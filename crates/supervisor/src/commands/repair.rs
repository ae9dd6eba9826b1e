//! `supervisor repair`: rebuild the checkpoint and tree from the node files.

use std::path::Path;

use anyhow::Result;
use autoresearch_adapters::repair::RepairError;
use autoresearch_engine::EngineError;

use crate::exit::Exit;

/// Runs repair and describes what it found and did.
pub fn repair(workdir: &Path, dry_run: bool) -> Result<String> {
    super::require_workdir(workdir)?;
    let r = autoresearch_adapters::repair::repair(workdir, dry_run).map_err(|e| match e {
        // A live engine holds the workdir: exit 3 like `run`, naming its pid.
        RepairError::Engine(EngineError::Locked { pid, .. }) => {
            Exit::locked(pid.unwrap_or(0), workdir)
        }
        other => other.into(),
    })?;
    let mut out = String::new();
    let counts: Vec<String> = r
        .by_status
        .iter()
        .map(|(s, n)| format!("{n} {}", s.as_str()))
        .collect();
    out.push_str(&format!(
        "found {} nodes: {}\n",
        r.by_status.iter().map(|(_, n)| n).sum::<usize>(),
        if counts.is_empty() {
            "none".into()
        } else {
            counts.join(", ")
        }
    ));
    if let Some(p) = &r.old_checkpoint_problem {
        out.push_str(&format!("old checkpoint: {p}\n"));
    }
    for s in &r.skipped {
        out.push_str(&format!("skipped: {s}\n"));
    }
    let resume_first = if r.running.is_empty() {
        String::new()
    } else {
        format!(" ({})", r.running.join(", "))
    };
    out.push_str(&format!(
        "{} checkpoint: {} queued, {} to resume first{resume_first}\n",
        if dry_run { "would write" } else { "wrote" },
        r.queued.len(),
        r.running.len(),
    ));
    for b in &r.backups {
        out.push_str(&format!("backup: {}\n", b.display()));
    }
    if dry_run {
        out.push_str("dry run: nothing was changed\n");
    }
    Ok(out)
}
