//! One workdir as the dashboard shows it at one moment: the supervisor's [`RunView`] plus what
//! `status` and `queue list` report, and a few per-node indexes the table needs (parameter
//! names, search text, completion rank). Built in one go by [`Snapshot::load`]; never changed
//! afterwards, so every request reads a consistent picture. Payloads that are the same for every
//! client (the chart, the tree) are serialised once per snapshot and cached.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::OnceLock;
use std::time::Instant;

use axum::body::Bytes;

use super::feed::EventBrief;
use crate::commands::queue::{self, QueueEntry};
use crate::commands::status::{self, StatusReport};
use crate::render::RenderError;
use autoresearch_adapters::workflow::nodes::plain;

use crate::render::load::{NodeCache, RunView};

/// A consistent picture of one workdir.
#[derive(Debug)]
pub struct Snapshot {
    /// Increases by one with every reload of the same workdir (1 for the first).
    pub version: u64,
    /// The nodes, run state, configuration and engine state.
    pub view: RunView,
    /// What `supervisor status` reports, or why it could not.
    pub status: Result<StatusReport, String>,
    /// The queue in run order (`supervisor queue list`), or why it could not be read.
    pub queue: Result<Vec<QueueEntry>, String>,
    /// Every parameter name used by any node, sorted.
    pub params: Vec<String>,
    /// Per node: lower-case text searched by the table's text filter (id, name, status,
    /// hypothesis, parameters, failure message).
    pub search: Vec<String>,
    /// Per node: its position in [`RunView::completion_order`] (`None` while unfinished).
    pub finish_rank: Vec<Option<u32>>,
    /// The last events of `engine/events.jsonl`, oldest first.
    pub events: Vec<EventBrief>,
    /// How long loading took, in milliseconds.
    pub load_ms: f64,
    pub(crate) progress_json: OnceLock<Bytes>,
    pub(crate) tree_json: OnceLock<Bytes>,
}

impl Snapshot {
    /// Reads the workdir at `root`, reusing the unchanged finished nodes of `cache` (see
    /// [`RunView::load_cached`]). Fails only when `root` is not a workdir; unreadable files
    /// become warnings of the view.
    pub fn load(
        root: &Path,
        version: u64,
        events: Vec<EventBrief>,
        cache: &mut NodeCache,
    ) -> Result<Snapshot, RenderError> {
        let started = Instant::now();
        let view = RunView::load_cached(root, cache)?;
        let status = status::gather(root).map_err(|e| format!("{e:#}"));
        let queue = queue::list(root).map_err(|e| format!("{e:#}"));

        let mut names: BTreeSet<&str> = BTreeSet::new();
        for n in &view.nodes {
            if let Some(p) = n.params() {
                names.extend(p.keys().map(String::as_str));
            }
        }
        let params: Vec<String> = names.into_iter().map(str::to_owned).collect();

        let search = view
            .nodes
            .iter()
            .map(|n| {
                let mut s = format!("{} {} {}", n.id, n.name(), n.status);
                if let Some(spec) = &n.spec {
                    s.push(' ');
                    s.push_str(&spec.hypothesis);
                    for (k, v) in &spec.params {
                        s.push_str(&format!(" {k}={}", plain(v)));
                    }
                }
                if let Some(f) = &n.failure {
                    s.push(' ');
                    s.push_str(f.kind.as_str());
                    s.push(' ');
                    s.push_str(&f.message);
                }
                s.to_lowercase()
            })
            .collect();

        let mut finish_rank = vec![None; view.nodes.len()];
        for (rank, &i) in view.completion_order.iter().enumerate() {
            finish_rank[i] = Some(rank as u32);
        }

        Ok(Snapshot {
            version,
            view,
            status,
            queue,
            params,
            search,
            finish_rank,
            events,
            load_ms: started.elapsed().as_secs_f64() * 1000.0,
            progress_json: OnceLock::new(),
            tree_json: OnceLock::new(),
        })
    }

    /// The status word: `new`, `running`, `interrupted`, `stopped`, `crashed` (or `unknown`
    /// when `status` failed).
    pub fn status_word(&self) -> &str {
        match &self.status {
            Ok(s) => &s.status,
            Err(_) => "unknown",
        }
    }
}
