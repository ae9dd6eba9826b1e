//! The `workspace` section made concrete when a run's configuration is resolved (first run or
//! resume): `workspace.repo` made absolute, `workspace.base` resolved to the full id of a commit
//! (`HEAD` when not given) so the run's baseline stays at that commit for the run's life, and a
//! relative `job.cwd` taken relative to the repository's top folder (the job runs in the same
//! folder of its experiment's worktree), which must lie inside the repository.

use std::path::{Path, PathBuf};

use super::git::git_text_blocking;
use crate::config::{Config, ConfigError};

fn invalid(config: &Config, path: &str, message: String) -> ConfigError {
    ConfigError::Invalid {
        origin: config.origin.clone(),
        path: path.to_string(),
        message,
        line: None,
        column: None,
    }
}

/// The folder relative paths of `config` are taken from: the configuration file's folder, or
/// the current directory.
fn base_dir(config: &Config) -> PathBuf {
    config
        .origin
        .parent()
        .filter(|p| !p.as_os_str().is_empty() && config.origin.is_file())
        .map(Path::to_path_buf)
        .or_else(|| std::env::current_dir().ok())
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The top folder of the working tree `repo` is in (canonical).
pub fn repo_top(repo: &Path) -> Result<PathBuf, String> {
    if !repo.is_dir() {
        return Err(format!(
            "expected the folder of a git repository, found no folder at {}",
            repo.display()
        ));
    }
    let top = git_text_blocking(repo, &["rev-parse", "--show-toplevel"]).map_err(|e| {
        format!(
            "expected a git repository with a working tree at {}, but git says: {}",
            repo.display(),
            if e.stderr().is_empty() {
                e.to_string()
            } else {
                e.stderr().to_string()
            }
        )
    })?;
    if top.is_empty() {
        return Err(format!(
            "{} is a bare repository: expected one with a working tree",
            repo.display()
        ));
    }
    let top = PathBuf::from(top);
    Ok(std::fs::canonicalize(&top).unwrap_or(top))
}

/// Resolves `config.workspace` in place (see the module comment). `stored` is the run's stored
/// configuration on a resume: a `base` left out then means the stored one.
pub fn settle(config: &mut Config, stored: Option<&Config>) -> Result<(), ConfigError> {
    let Some(ws) = config.workspace.clone() else {
        return Ok(());
    };
    let mut ws = ws;
    if ws.repo.is_relative() {
        ws.repo = base_dir(config).join(&ws.repo);
    }
    ws.repo = std::fs::canonicalize(&ws.repo).unwrap_or(ws.repo);
    let top = repo_top(&ws.repo).map_err(|m| invalid(config, "workspace.repo", m))?;
    let stored_base = stored
        .and_then(|s| s.workspace.as_ref())
        .and_then(|w| w.base.clone());
    ws.base = match (ws.base.take(), stored_base) {
        (None, Some(stored)) => Some(stored),
        (rev, _) => {
            let rev = rev.unwrap_or_else(|| "HEAD".to_string());
            let spec = format!("{rev}^{{commit}}");
            let commit = git_text_blocking(&top, &["rev-parse", "--verify", "--quiet", &spec])
                .ok()
                .filter(|c| !c.is_empty())
                .ok_or_else(|| {
                    invalid(
                        config,
                        "workspace.base",
                        format!(
                            "expected a commit, tag or branch of {}, found {rev:?}, which names \
                             no commit there{}",
                            top.display(),
                            if rev == "HEAD" {
                                " (a repository without any commit: commit the program first)"
                            } else {
                                ""
                            }
                        ),
                    )
                })?;
            Some(commit)
        }
    };
    if config.job.cwd.is_relative() {
        let joined = top.join(&config.job.cwd);
        config.job.cwd = joined.canonicalize().unwrap_or(joined);
    }
    let cwd = std::fs::canonicalize(&config.job.cwd).unwrap_or(config.job.cwd.clone());
    if !cwd.starts_with(&top) {
        return Err(invalid(
            config,
            "job.cwd",
            format!(
                "expected a folder inside workspace.repo ({}) since each job runs in its \
                 experiment's worktree of it, found {}; give a path relative to the repository \
                 (e.g. \".\" or \"bench\")",
                top.display(),
                config.job.cwd.display()
            ),
        ));
    }
    config.workspace = Some(ws);
    Ok(())
}

/// Where the job of an experiment runs: `job.cwd`, taken relative to the repository's top
/// folder, inside the experiment's worktree.
pub fn job_cwd_in(worktree: &Path, repo_top: &Path, job_cwd: &Path) -> PathBuf {
    let cwd = std::fs::canonicalize(job_cwd).unwrap_or(job_cwd.to_path_buf());
    match cwd.strip_prefix(repo_top) {
        Ok(rel) if rel.as_os_str().is_empty() => worktree.to_path_buf(),
        Ok(rel) => worktree.join(rel),
        Err(_) => worktree.to_path_buf(),
    }
}
