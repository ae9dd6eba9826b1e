//! Running `git` (no libgit2): one place that sets the environment every call needs.
//!
//! Every call runs `git -C <dir> -c core.hooksPath=/dev/null -c gc.auto=0
//! -c maintenance.auto=false -c commit.gpgsign=false …` with `LC_ALL=C` (stable messages),
//! `GIT_TERMINAL_PROMPT=0` (never waits for a password) and without inherited `GIT_DIR`,
//! `GIT_WORK_TREE` or `GIT_INDEX_FILE` (which would redirect it to another repository). The
//! user's hooks never run on the engine's worktrees and commits.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::AsyncWriteExt;

/// The fixed identity of the engine's commits (works without any user git configuration).
pub const COMMIT_NAME: &str = "autoresearch";
/// The fixed e-mail of the engine's commits.
pub const COMMIT_EMAIL: &str = "autoresearch@localhost";

/// A failed git command.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// git could not be started.
    #[error("cannot run git in {}: {source} (is git installed?)", dir.display())]
    Spawn {
        /// Where.
        dir: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// git exited with a non-zero status.
    #[error("`git {args}` in {} failed ({status}): {stderr}", dir.display())]
    Failed {
        /// Where.
        dir: PathBuf,
        /// Its arguments.
        args: String,
        /// Exit status.
        status: String,
        /// Its stderr (trimmed).
        stderr: String,
    },
}

impl GitError {
    /// git's stderr, when it ran.
    pub fn stderr(&self) -> &str {
        match self {
            GitError::Failed { stderr, .. } => stderr,
            GitError::Spawn { .. } => "",
        }
    }
}

/// `git -C <dir> <hardened options> args…` with the environment every call needs.
fn command(dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> std::process::Command {
    let mut cmd = std::process::Command::new("git");
    cmd.arg("-C")
        .arg(dir)
        .args([
            "-c",
            "core.hooksPath=/dev/null",
            "-c",
            "gc.auto=0",
            "-c",
            "maintenance.auto=false",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .env("LC_ALL", "C")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE")
        .env_remove("GIT_COMMON_DIR")
        .envs(envs.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// The outcome of a finished git process.
fn outcome(dir: &Path, args: &[&str], out: std::process::Output) -> Result<Vec<u8>, GitError> {
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(GitError::Failed {
            dir: dir.to_path_buf(),
            args: args.join(" "),
            status: match out.status.code() {
                Some(c) => format!("exit status {c}"),
                None => "killed by a signal".into(),
            },
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// Runs `git args…` in `dir` and returns its stdout; `stdin` is written to it when given.
pub async fn git(
    dir: &Path,
    args: &[&str],
    envs: &[(&str, &str)],
    stdin: Option<&[u8]>,
) -> Result<Vec<u8>, GitError> {
    let mut cmd = tokio::process::Command::from(command(dir, args, envs));
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|source| GitError::Spawn {
        dir: dir.to_path_buf(),
        source,
    })?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        let input = input.to_vec();
        tokio::spawn(async move {
            let _ = pipe.write_all(&input).await;
            let _ = pipe.shutdown().await;
        });
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(|source| GitError::Spawn {
            dir: dir.to_path_buf(),
            source,
        })?;
    outcome(dir, args, out)
}

/// [`git_text`] for callers outside an async runtime (reading the configuration): blocks the
/// thread until git is done.
pub fn git_text_blocking(dir: &Path, args: &[&str]) -> Result<String, GitError> {
    let out = command(dir, args, &[])
        .stdin(Stdio::null())
        .output()
        .map_err(|source| GitError::Spawn {
            dir: dir.to_path_buf(),
            source,
        })?;
    let out = outcome(dir, args, out)?;
    Ok(String::from_utf8_lossy(&out).trim().to_string())
}

/// Runs git and returns its stdout as trimmed text.
pub async fn git_text(dir: &Path, args: &[&str]) -> Result<String, GitError> {
    let out = git(dir, args, &[], None).await?;
    Ok(String::from_utf8_lossy(&out).trim().to_string())
}

/// The environment giving commits the engine's fixed identity.
pub fn identity_env() -> [(&'static str, &'static str); 4] {
    [
        ("GIT_AUTHOR_NAME", COMMIT_NAME),
        ("GIT_AUTHOR_EMAIL", COMMIT_EMAIL),
        ("GIT_COMMITTER_NAME", COMMIT_NAME),
        ("GIT_COMMITTER_EMAIL", COMMIT_EMAIL),
    ]
}
