//! `engine/events.jsonl`: the append-only event log. Each line is a JSON object with `ts` and
//! `event`; node events carry `id`. Events are buffered in memory and appended by the
//! checkpoint writer, so logging never blocks the scheduler on disk.
//!
//! Readers must tolerate a torn last line: [`read_events`] skips it.

use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value};

/// Event names written by the engine.
pub mod names {
    /// The engine started (fresh or resumed).
    pub const ENGINE_STARTED: &str = "engine_started";
    /// The engine was interrupted.
    pub const ENGINE_INTERRUPTED: &str = "engine_interrupted";
    /// The engine stopped (finished or asked to stop).
    pub const ENGINE_STOPPED: &str = "engine_stopped";
    /// A spec entered the queue.
    pub const NODE_QUEUED: &str = "node_queued";
    /// A spec started.
    pub const NODE_STARTED: &str = "node_started";
    /// A running spec reported a phase.
    pub const NODE_PHASE: &str = "node_phase";
    /// A spec completed.
    pub const NODE_COMPLETED: &str = "node_completed";
    /// A spec failed or panicked.
    pub const NODE_FAILED: &str = "node_failed";
    /// A spec was cancelled by an interrupt (it stays running in the checkpoint).
    pub const NODE_CANCELLED: &str = "node_cancelled";
    /// A spec was dropped from the queue.
    pub const NODE_DROPPED: &str = "node_dropped";
    /// A spec's priority changed.
    pub const NODE_BUMPED: &str = "node_bumped";
    /// A hand edit of the checkpoint was applied or rejected.
    pub const CHECKPOINT_EDIT: &str = "checkpoint_edit";
    /// A warning for the user.
    pub const WARNING: &str = "warning";
}

/// A shared in-memory buffer of event lines waiting to be appended.
#[derive(Clone, Default)]
pub(crate) struct EventBuffer {
    inner: Arc<Mutex<Vec<u8>>>,
}

impl EventBuffer {
    /// Buffers one event line.
    pub fn push(&self, event: &str, id: Option<&str>, extra: Option<&Map<String, Value>>) {
        let mut line = String::with_capacity(96);
        line.push_str("{\"ts\":\"");
        line.push_str(&crate::util::now_rfc3339_millis());
        line.push_str("\",\"event\":\"");
        line.push_str(event);
        line.push('"');
        if let Some(id) = id {
            line.push_str(",\"id\":");
            push_json_str(&mut line, id);
        }
        if let Some(extra) = extra {
            for (k, v) in extra {
                line.push(',');
                push_json_str(&mut line, k);
                line.push(':');
                line.push_str(&serde_json::to_string(v).unwrap_or_else(|_| "null".into()));
            }
        }
        line.push_str("}\n");
        if let Ok(mut buf) = self.inner.lock() {
            buf.extend_from_slice(line.as_bytes());
        }
    }

    /// Takes everything buffered so far.
    pub fn take(&self) -> Vec<u8> {
        self.inner
            .lock()
            .map(|mut b| std::mem::take(&mut *b))
            .unwrap_or_default()
    }
}

fn push_json_str(out: &mut String, s: &str) {
    if s.bytes()
        .all(|b| b >= 0x20 && b != b'"' && b != b'\\' && b < 0x7f)
    {
        out.push('"');
        out.push_str(s);
        out.push('"');
    } else {
        out.push_str(&serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into()));
    }
}

/// Reads events from byte `offset` on; returns them and the offset after the last whole line.
/// A torn last line (no newline yet, or not valid JSON) is left for the next call.
pub fn read_events(path: &Path, offset: u64) -> std::io::Result<(Vec<Map<String, Value>>, u64)> {
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), offset)),
        Err(e) => return Err(e),
    };
    let len = file.metadata()?.len();
    let start = if offset > len { 0 } else { offset };
    file.seek(SeekFrom::Start(start))?;
    let mut reader = BufReader::new(file.take(len - start));
    let mut events = Vec::new();
    let mut pos = start;
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line)?;
        if n == 0 || line.last() != Some(&b'\n') {
            break;
        }
        pos += n as u64;
        if let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(&line) {
            events.push(map);
        }
    }
    Ok((events, pos))
}
