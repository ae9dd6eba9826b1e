//! The order in which nodes finished ([`completion_order`]): from the event log when it names
//! them, else from file times.

use std::collections::HashMap;
use std::fs;
use std::io;

use autoresearch_adapters::workdir::Workdir;

use super::node_view::NodeView;

/// How the completion order of [`RunView::completion_order`](super::load::RunView::completion_order) was established.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompletionSource {
    /// From the order of the first completion event (`node_completed`/`node_failed`) per node in
    /// `engine/events.jsonl`; finished nodes without an event yet (the engine buffers events)
    /// follow, by file time.
    Events,
    /// From the modification times of `result.json` / `failure.json` (ties by creation order),
    /// when the event log names no finished node.
    Mtime,
}

pub(super) fn completion_order(
    wd: &Workdir,
    nodes: &[NodeView],
    by_id: &HashMap<String, usize>,
    warnings: &mut Vec<String>,
) -> (Vec<usize>, CompletionSource) {
    let finished: Vec<usize> = (0..nodes.len())
        .filter(|&i| nodes[i].status.is_terminal())
        .collect();
    let by_mtime = |a: &usize, b: &usize| {
        nodes[*a]
            .finished_at
            .cmp(&nodes[*b].finished_at)
            .then_with(|| a.cmp(b))
    };
    let pos = events_positions(wd, by_id, warnings);
    if finished.iter().any(|i| pos.contains_key(i)) {
        // Nodes named by a completion event in log order, then the others (their events are
        // still buffered by the engine, so they are the most recent) by file time.
        let (mut logged, mut rest): (Vec<usize>, Vec<usize>) =
            finished.into_iter().partition(|i| pos.contains_key(i));
        logged.sort_by_key(|i| (pos[i], *i));
        rest.sort_by(by_mtime);
        logged.extend(rest);
        return (logged, CompletionSource::Events);
    }
    let mut order = finished;
    order.sort_by(by_mtime);
    (order, CompletionSource::Mtime)
}

/// Line number of the first completion event per node in `engine/events.jsonl`: the
/// workflow's `node_completed`/`node_failed`, or the engine's `spec_completed`/`spec_failed`
/// for a spec that ended without one. Other and unparseable lines (a torn last line) are
/// skipped.
fn events_positions(
    wd: &Workdir,
    by_id: &HashMap<String, usize>,
    warnings: &mut Vec<String>,
) -> HashMap<usize, usize> {
    use autoresearch_adapters::workflow::events::{NodeEvent, RunEvent, RunEventLine};
    use autoresearch_engine::Event;
    let mut pos: HashMap<usize, usize> = HashMap::new();
    let path = wd.engine_dir().join("events.jsonl");
    let text = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return pos,
        Err(e) => {
            warnings.push(format!(
                "engine/events.jsonl: {e}; completion order from file times"
            ));
            return pos;
        }
    };
    for (line_no, line) in text.split(|&b| b == b'\n').enumerate() {
        // Cheap prefilter: only lines about completion are parsed.
        if !contains(line, b"completed") && !contains(line, b"failed") {
            continue;
        }
        let Ok(ev) = serde_json::from_slice::<RunEventLine>(line) else {
            continue;
        };
        let id = match &ev.event {
            RunEvent::Node(
                NodeEvent::NodeCompleted { id, .. } | NodeEvent::NodeFailed { id, .. },
            )
            | RunEvent::Engine(Event::SpecCompleted { id } | Event::SpecFailed { id, .. }) => id,
            _ => continue,
        };
        if let Some(&i) = by_id.get(id) {
            pos.entry(i).or_insert(line_no);
        }
    }
    pos
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}
