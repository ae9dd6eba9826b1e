//! `table` in the session: the nodes as a terminal table.

use std::path::Path;

use anyhow::Result;
use autoresearch_adapters::workdir::Workdir;
use autoresearch_adapters::workflow::nodes::{NodeStore, plain};

/// All nodes, one line each: id, status, primary metric (★ when improved), parameters.
pub fn format_table(workdir: &Path) -> Result<String> {
    super::require_workdir(workdir)?;
    let store = NodeStore::load(&Workdir::new(workdir))?;
    let nodes = store.all();
    if nodes.is_empty() {
        return Ok("no experiments yet\n".into());
    }
    let width = nodes
        .iter()
        .map(|n| n.spec.node_id.len())
        .max()
        .unwrap_or(8)
        .max(4);
    let mut out = format!(
        "{:<width$}  {:<10}  {:>14}  params\n",
        "node", "status", "primary"
    );
    for n in nodes {
        let primary = match n.primary {
            Some(v) => format!(
                "{}{}",
                if n.improved { "★ " } else { "" },
                crate::render::fmt_value(v)
            ),
            None => "-".into(),
        };
        let params = n
            .spec
            .params
            .iter()
            .map(|(k, v)| format!("{k}={}", plain(v)))
            .collect::<Vec<_>>()
            .join(" ");
        out.push_str(&format!(
            "{:<width$}  {:<10}  {:>14}  {params}\n",
            n.spec.node_id,
            n.status.as_str(),
            primary
        ));
    }
    Ok(out)
}
