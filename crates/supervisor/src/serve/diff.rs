//! Code diffs of experiments that change code (the agent planner), through the one helper
//! [`autoresearch_adapters::workspace::node_diff`]: a node's commit comes from its
//! `engine/nodes/<id>/commit.json`, its diff is shown against its parent's commit and against
//! the baseline's (`workspace.base`). A node whose code is its parent's and the baseline's
//! (parameter-only, or a run without a `workspace`) has no diff, and the page shows none.

use autoresearch_adapters::workspace::node_diff::NodeCode;

use crate::render::load::RunView;

/// The largest diff shown, in bytes.
pub const MAX_DIFF: usize = 1024 * 1024;

/// The commits of node `i`, or `None` when its code is the same as its parent's and the
/// baseline's (or unreadable: the page then shows no diff).
pub fn commits(view: &RunView, i: usize) -> Option<NodeCode> {
    NodeCode::load(&view.root, &view.nodes[i].id)
        .ok()
        .flatten()
        .filter(NodeCode::has_diff)
}
