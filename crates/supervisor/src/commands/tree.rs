//! `tree` in the session: the hypothesis tree as indented text.

use std::collections::HashMap;
use std::path::Path;

use anyhow::Result;
use autoresearch_adapters::workdir::Workdir;
use autoresearch_adapters::workflow::nodes::{NodeInfo, NodeStore, change_label};

/// The tree, children indented under their parent, with status and primary metric.
pub fn format_tree(workdir: &Path) -> Result<String> {
    super::require_workdir(workdir)?;
    let store = NodeStore::load(&Workdir::new(workdir))?;
    let nodes = store.all();
    if nodes.is_empty() {
        return Ok("no experiments yet\n".into());
    }
    let by_id: HashMap<&str, &NodeInfo> =
        nodes.iter().map(|n| (n.spec.node_id.as_str(), n)).collect();
    let mut children: HashMap<Option<&str>, Vec<&NodeInfo>> = HashMap::new();
    for n in &nodes {
        let parent = n
            .spec
            .parent_id
            .as_deref()
            .filter(|p| by_id.contains_key(p));
        children.entry(parent).or_default().push(n);
    }
    let mut out = String::new();
    let mut stack: Vec<(&NodeInfo, usize)> = children
        .get(&None)
        .map(|v| v.iter().rev().map(|n| (*n, 0)).collect())
        .unwrap_or_default();
    while let Some((n, depth)) = stack.pop() {
        let parent = n
            .spec
            .parent_id
            .as_deref()
            .and_then(|p| by_id.get(p).copied());
        let change = change_label(n, parent);
        let value = n
            .primary
            .map(crate::render::fmt_value)
            .unwrap_or_else(|| "-".into());
        out.push_str(&format!(
            "{}{}{} [{}] {}{}\n",
            "  ".repeat(depth),
            if depth > 0 { "└ " } else { "" },
            n.spec.node_id,
            n.status.as_str(),
            value,
            if change.is_empty() {
                String::new()
            } else {
                format!("  ({change})")
            }
        ));
        if let Some(kids) = children.get(&Some(n.spec.node_id.as_str())) {
            for k in kids.iter().rev() {
                stack.push((k, depth + 1));
            }
        }
    }
    Ok(out)
}
