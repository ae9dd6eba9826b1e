//! `supervisor list`: workdirs under a folder (and one level deeper) with their status.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// One workdir found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Listed {
    /// Its path.
    pub path: PathBuf,
    /// Its status (as `status` reports it).
    pub status: String,
    /// Best value, if any.
    pub best: Option<f64>,
    /// Experiments started.
    pub experiments: u64,
}

fn is_workdir(p: &Path) -> bool {
    p.join("config.json").is_file() && p.join("engine").is_dir()
        || p.join("engine/checkpoint.json").is_file()
}

/// Finds workdirs in `dir` and its subfolders (two levels).
pub fn list(dir: &Path) -> Result<Vec<Listed>> {
    let mut found = Vec::new();
    let mut candidates = vec![dir.to_path_buf()];
    let entries = std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
    for e in entries.filter_map(Result::ok) {
        let p = e.path();
        if p.is_dir() {
            candidates.push(p.clone());
            if let Ok(inner) = std::fs::read_dir(&p) {
                candidates.extend(
                    inner
                        .filter_map(Result::ok)
                        .map(|e| e.path())
                        .filter(|p| p.is_dir()),
                );
            }
        }
    }
    candidates.sort();
    for c in candidates {
        if !is_workdir(&c) {
            continue;
        }
        if let Ok(s) = super::status::gather(&c) {
            found.push(Listed {
                path: c,
                status: s.message.unwrap_or(s.status),
                best: s.best.map(|b| b.value),
                experiments: s.experiments_started,
            });
        }
    }
    Ok(found)
}

/// The list as text.
pub fn format_list(items: &[Listed]) -> String {
    if items.is_empty() {
        return "no workdirs found\n".into();
    }
    let mut out = String::new();
    for l in items {
        out.push_str(&format!(
            "{:<28}  {:>5} exp  best {:<12}  {}\n",
            l.status,
            l.experiments,
            l.best
                .map(crate::render::fmt_value)
                .unwrap_or_else(|| "-".into()),
            l.path.display()
        ));
    }
    out
}
