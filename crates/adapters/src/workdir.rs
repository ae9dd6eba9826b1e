//! Paths of the experiment workflow's files inside a workdir (design §3).

use std::path::PathBuf;

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
    /// `logs/`
    pub fn logs_dir(&self) -> PathBuf {
        self.root.join("logs")
    }
}
