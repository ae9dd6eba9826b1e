//! Paths of the experiment workflow's files inside a workdir, and the two checks every
//! access under it goes through: no component below the root is a symbolic link
//! ([`Workdir::check`], [`Workdir::create_dir`]), and node ids name one folder
//! ([`is_node_id`]). The root itself is trusted (the user chose it). See
//! `docs/workdir-format.md`.

use std::io;
use std::path::{Path, PathBuf};

use autoresearch_engine::nofollow;

/// Paths of one workdir.
#[derive(Debug, Clone)]
pub struct Workdir {
    /// The workdir root.
    pub root: PathBuf,
}

impl Workdir {
    /// Paths for `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Workdir { root: root.into() }
    }
    /// `config.json`
    pub fn config(&self) -> PathBuf {
        self.root.join("config.json")
    }
    /// `state.json`
    pub fn state(&self) -> PathBuf {
        self.root.join("state.json")
    }
    /// `engine/`
    pub fn engine_dir(&self) -> PathBuf {
        self.root.join("engine")
    }
    /// `engine/nodes/`
    pub fn nodes_dir(&self) -> PathBuf {
        self.engine_dir().join("nodes")
    }
    /// `engine/nodes/<id>/`
    pub fn node_dir(&self, id: &str) -> PathBuf {
        self.nodes_dir().join(id)
    }
    /// `engine/nodes/<id>/spec.json`
    pub fn node_spec(&self, id: &str) -> PathBuf {
        self.node_dir(id).join("spec.json")
    }
    /// `engine/nodes/<id>/status.txt`
    pub fn node_status(&self, id: &str) -> PathBuf {
        self.node_dir(id).join("status.txt")
    }
    /// `engine/nodes/<id>/result.json`
    pub fn node_result(&self, id: &str) -> PathBuf {
        self.node_dir(id).join("result.json")
    }
    /// `engine/nodes/<id>/failure.json`
    pub fn node_failure(&self, id: &str) -> PathBuf {
        self.node_dir(id).join("failure.json")
    }
    /// `engine/tree.json`
    pub fn tree(&self) -> PathBuf {
        self.engine_dir().join("tree.json")
    }
    /// `runs/`
    pub fn runs_dir(&self) -> PathBuf {
        self.root.join("runs")
    }
    /// `runs/<id>/`
    pub fn run_dir(&self, id: &str) -> PathBuf {
        self.runs_dir().join(id)
    }
    /// The run dir of run `k` (1-based) of node `id`'s job: `runs/<id>/` for the first run,
    /// `runs/<id>/repeat-<k>/` for the others (repeats and confirmation runs; see
    /// `docs/noise.md`).
    pub fn repeat_run_dir(&self, id: &str, k: u32) -> PathBuf {
        let dir = self.run_dir(id);
        if k <= 1 {
            dir
        } else {
            dir.join(format!("{REPEAT_PREFIX}{k}"))
        }
    }
    /// `logs/`
    pub fn logs_dir(&self) -> PathBuf {
        self.root.join("logs")
    }

    /// Checks that no existing component of `path` below the root is a symbolic link (the
    /// error names the link). Call it before writing or reading under the workdir.
    pub fn check(&self, path: &Path) -> io::Result<()> {
        nofollow::check_under(&self.root, path)
    }

    /// Creates `dir` and its missing parents below the root as real folders, durably, never
    /// through a symbolic link.
    pub fn create_dir(&self, dir: &Path) -> io::Result<()> {
        nofollow::create_dir_under(&self.root, dir)
    }
}

/// The folder name prefix of the run dirs of runs 2, 3, … of a node (`repeat-2`).
pub const REPEAT_PREFIX: &str = "repeat-";

/// Whether `id` can name a node: the engine's id pattern (`[A-Za-z0-9._-]{1,128}`) and not
/// `.` or `..`, which would name `engine/nodes/` or `engine/` themselves.
pub fn is_node_id(id: &str) -> bool {
    autoresearch_engine::spec::is_valid_id(id) && id != "." && id != ".."
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_ids_are_not_node_ids() {
        assert!(is_node_id("001_baseline"));
        assert!(is_node_id(".hidden"));
        for bad in [".", "..", "", "a/b", "../x"] {
            assert!(!is_node_id(bad), "{bad:?}");
        }
    }
}
