//! [`NodeCache`]: the finished nodes of earlier loads of one workdir, reused while their folder
//! is unchanged (the dashboard and the session's views reload the same workdir again and again).

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use super::node_view::NodeView;

/// Finished nodes of earlier loads of one workdir, reused by
/// [`RunView::load_cached`](super::load::RunView::load_cached) while
/// their folder is unchanged.
///
/// Every file of a node folder is replaced by rename, which changes the folder's modification
/// time; a node is reused only when that time is the same as when it was read and was already
/// [`NodeCache::SETTLED`] old then (file times are coarser than the writes they stamp).
/// Running and queued nodes are always read again.
#[derive(Debug, Default)]
pub struct NodeCache {
    pub(super) nodes: HashMap<String, CachedNode>,
}

#[derive(Debug)]
pub(super) struct CachedNode {
    pub(super) folder_mtime: SystemTime,
    pub(super) node: NodeView,
    pub(super) warnings: Vec<String>,
}

impl NodeCache {
    /// How old a node folder's modification time must be before the node is cached.
    pub const SETTLED: Duration = Duration::from_secs(1);

    /// How many nodes are cached.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether no node is cached.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::load::RunView;
    use autoresearch_adapters::model::NodeStatus;
    use std::fs;
    use std::path::Path;

    fn node(root: &Path, id: &str, status: &str) {
        let dir = root.join("engine/nodes").join(id);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("status.txt"), status).unwrap();
    }

    fn age(root: &Path, id: &str) {
        let old = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let dir = fs::File::open(root.join("engine/nodes").join(id)).unwrap();
        dir.set_modified(old).unwrap();
    }

    #[test]
    fn a_settled_finished_node_is_reused_until_its_folder_changes() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        node(root, "000_baseline", "completed");
        node(root, "001_a", "running");
        age(root, "000_baseline");
        age(root, "001_a");
        let mut cache = NodeCache::default();
        let first = RunView::load_cached(root, &mut cache).unwrap();
        assert_eq!(first.nodes.len(), 2);
        assert_eq!(cache.len(), 1, "only the finished node is cached");

        // A file changed in place (not by rename) is not seen while the folder is unchanged:
        // proof that the cached node was used.
        let status = root.join("engine/nodes/000_baseline/status.txt");
        fs::write(&status, "failed").unwrap();
        age(root, "000_baseline");
        let second = RunView::load_cached(root, &mut cache).unwrap();
        assert_eq!(second.nodes[0].status, NodeStatus::Completed);

        // A rename into the folder (how every node file is written) is seen.
        let tmp_file = root.join("engine/nodes/000_baseline/.status.tmp");
        fs::write(&tmp_file, "failed").unwrap();
        fs::rename(&tmp_file, &status).unwrap();
        let third = RunView::load_cached(root, &mut cache).unwrap();
        assert_eq!(third.nodes[0].status, NodeStatus::Failed);
        assert_eq!(
            cache.len(),
            0,
            "a folder changed within the last second is not cached"
        );
        assert_eq!(third.nodes[1].status, NodeStatus::Running);
    }
}
