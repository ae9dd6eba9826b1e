//! `workspace`: the user's git repository in which the coding agent changes code, one git
//! worktree per experiment (see `docs/agent.md`).
//!
//! Parsed with serde (`deny_unknown_fields`); [`WorkspaceConfig::validate`] checks the globs and
//! paths and names the field path in its errors (`workspace.protected[1]: …`).

use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// Field path of this section in `config.json`.
pub const WORKSPACE_PATH: &str = "workspace";

/// `workspace`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceConfig {
    /// The git repository (any folder inside its working tree); jobs run in a worktree of it.
    pub repo: PathBuf,
    /// The commit the baseline runs at (a revision: commit, tag, branch). `None` means `HEAD`
    /// at the first run; the integration stores the resolved commit so it stays fixed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
    /// Globs of repository paths the agent may not change (e.g. the benchmark or evaluator). A
    /// change there fails the node. `*` stays within one folder, `**` crosses folders, and a
    /// pattern also covers everything under a folder it names.
    #[serde(default)]
    pub protected: Vec<String>,
    /// Ignored files or folders (repository-relative paths or globs) linked or copied into each
    /// worktree, e.g. data or a virtualenv: folders are symlinked, files copied.
    #[serde(default)]
    pub include: Vec<String>,
}

impl WorkspaceConfig {
    /// Checks the globs and paths; `origin` names the configuration file in errors.
    pub fn validate(&self, origin: &Path) -> Result<(), ConfigError> {
        let invalid = |field: String, message: String| ConfigError::Invalid {
            origin: origin.to_path_buf(),
            path: format!("{WORKSPACE_PATH}.{field}"),
            message,
            line: None,
            column: None,
        };
        if self.repo.as_os_str().is_empty() {
            return Err(invalid(
                "repo".into(),
                "expected the path of a git repository, found an empty string".into(),
            ));
        }
        if let Some(base) = &self.base
            && (base.trim().is_empty() || base.starts_with('-') || base.contains(['\0', '\n']))
        {
            return Err(invalid(
                "base".into(),
                format!("expected a commit, tag or branch name, found {base:?}"),
            ));
        }
        for (i, pattern) in self.protected.iter().enumerate() {
            if let Err(message) = check_repo_pattern(pattern) {
                return Err(invalid(format!("protected[{i}]"), message));
            }
            if let Err(e) = globset::Glob::new(pattern) {
                return Err(invalid(
                    format!("protected[{i}]"),
                    format!("expected a glob, found {pattern:?}: {}", e.kind()),
                ));
            }
        }
        for (i, entry) in self.include.iter().enumerate() {
            if let Err(message) = check_repo_pattern(entry) {
                return Err(invalid(format!("include[{i}]"), message));
            }
            if let Err(e) = globset::Glob::new(entry) {
                return Err(invalid(
                    format!("include[{i}]"),
                    format!("expected a path or glob, found {entry:?}: {}", e.kind()),
                ));
            }
        }
        Ok(())
    }
}

/// A repository-relative path or glob: not empty, not absolute, no `..`, not `.git`.
fn check_repo_pattern(pattern: &str) -> Result<(), String> {
    if pattern.trim().is_empty() {
        return Err("expected a repository-relative path or glob, found an empty string".into());
    }
    let path = Path::new(pattern);
    if path.is_absolute() {
        return Err(format!(
            "expected a path relative to the repository root, found the absolute path {pattern:?}"
        ));
    }
    if path.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(format!(
            "expected a path inside the repository, found {pattern:?} (contains `..`)"
        ));
    }
    if path
        .components()
        .next()
        .is_some_and(|c| c.as_os_str() == ".git")
    {
        return Err(format!(
            "expected a path in the working tree, found {pattern:?} (inside .git)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> WorkspaceConfig {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn a_minimal_workspace_is_valid() {
        let w = parse(r#"{"repo":"/src/app"}"#);
        assert!(w.protected.is_empty() && w.include.is_empty() && w.base.is_none());
        w.validate(Path::new("c.json")).unwrap();
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = serde_json::from_str::<WorkspaceConfig>(r#"{"repo":"x","protect":[]}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `protect`"), "{err}");
    }

    #[test]
    fn bad_entries_name_their_index() {
        let w = parse(r#"{"repo":"r","protected":["bench.py","src/[x"]}"#);
        let err = w.validate(Path::new("c.json")).unwrap_err().to_string();
        assert!(
            err.contains("workspace.protected[1]: expected a glob"),
            "{err}"
        );
        let w = parse(r#"{"repo":"r","include":["../data"]}"#);
        let err = w.validate(Path::new("c.json")).unwrap_err().to_string();
        assert!(err.contains("workspace.include[0]"), "{err}");
        let w = parse(r#"{"repo":"r","base":"--upload-pack=x"}"#);
        let err = w.validate(Path::new("c.json")).unwrap_err().to_string();
        assert!(err.contains("workspace.base"), "{err}");
    }
}
