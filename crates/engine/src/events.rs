//! `engine/events.jsonl`: the append-only event log, and its one typed definition.
//!
//! Each line is one JSON object `{"ts": "<RFC 3339, ms>", "event": "<name>", …}`: an
//! [`EventLine`] around an [`Event`] of the engine, or around an event of the workflow (appended
//! through [`EventLog::emit`] or [`RunContext::emit`](crate::RunContext::emit), typed by the
//! workflow). Events are buffered in memory and appended by the engine's writer, whole lines
//! only, so logging never blocks the scheduler on disk.
//!
//! Readers must tolerate a torn last line: [`read_events`] leaves it for the next call.

use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One line of `events.jsonl`: the time and the event's own fields (flattened beside it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventLine<E> {
    /// When the event happened (RFC 3339 UTC, milliseconds).
    pub ts: String,
    /// The event, tagged by its `event` field.
    #[serde(flatten)]
    pub event: E,
}

/// Whether a live hand edit of the checkpoint was applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EditResult {
    /// Applied to the queue.
    Applied,
    /// Set aside as `checkpoint.rejected-<time>.json`.
    Rejected,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// An event of the engine. Spec events carry the spec's `id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The engine started (fresh or resumed).
    EngineStarted {
        /// Whether a checkpoint was loaded.
        resumed: bool,
        /// The engine's process id.
        pid: u32,
    },
    /// The engine was interrupted (signal, cancellation, or its own I/O kept failing).
    EngineInterrupted {
        /// Why, when it was not a plain interrupt.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// The engine stopped: the queue drained or the workflow asked it to.
    EngineStopped {
        /// Why.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// A spec entered the queue.
    SpecQueued {
        /// The spec id.
        id: String,
        /// Its priority.
        priority: f64,
        /// Its kind.
        kind: String,
    },
    /// A spec started.
    SpecStarted {
        /// The spec id.
        id: String,
        /// True when it continues a run that was interrupted (or retried).
        #[serde(default, skip_serializing_if = "is_false")]
        resumed: bool,
    },
    /// A running spec reported a phase.
    SpecPhase {
        /// The spec id.
        id: String,
        /// The phase name (the workflow's).
        phase: String,
        /// Optional detail.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<Value>,
    },
    /// A spec completed.
    SpecCompleted {
        /// The spec id.
        id: String,
    },
    /// A spec failed or panicked.
    SpecFailed {
        /// The spec id.
        id: String,
        /// The error text.
        error: String,
        /// True when it panicked.
        #[serde(default, skip_serializing_if = "is_false")]
        panic: bool,
    },
    /// A spec was cancelled by an interrupt (it stays running in the checkpoint).
    SpecCancelled {
        /// The spec id.
        id: String,
    },
    /// A queued spec's priority changed.
    SpecBumped {
        /// The spec id.
        id: String,
        /// The new priority.
        priority: f64,
    },
    /// A spec was dropped from the queue.
    SpecDropped {
        /// The spec id.
        id: String,
    },
    /// A hand edit of the checkpoint was applied or rejected.
    CheckpointEdit {
        /// Applied or rejected.
        result: EditResult,
        /// What changed, or why it was rejected.
        message: String,
        /// Where a rejected edit was set aside.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        file: Option<String>,
    },
    /// Something the user should know (a skipped spec, an environment error being retried).
    Warning {
        /// The message.
        message: String,
        /// The spec concerned, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
    },
}

/// Event names the engine owns: a workflow event may not use them (nor start with `engine_`,
/// `spec_` or `checkpoint_`), so a reader never mistakes one for the other.
fn reserved(name: &str) -> bool {
    name == "warning"
        || name.starts_with("engine_")
        || name.starts_with("spec_")
        || name.starts_with("checkpoint_")
}

/// Appends events to `events.jsonl` (through the engine's writer). Cheap to clone; every clone
/// feeds the same log. A workflow gets one in [`StartInfo::events`](crate::StartInfo) for events
/// outside a spec run; [`RunContext::emit`](crate::RunContext::emit) is the same for a run.
#[derive(Debug, Clone, Default)]
pub struct EventLog {
    inner: Arc<Buffer>,
}

#[derive(Debug, Default)]
struct Buffer {
    lines: Mutex<Vec<u8>>,
    pending: AtomicBool,
}

impl EventLog {
    /// Appends a workflow event. `event` must serialize as a JSON object with a string field
    /// `event` naming it (an enum with `#[serde(tag = "event")]` does) and no field `ts`; names of
    /// the engine's own events are refused. A refused event is logged as a warning, never
    /// written.
    pub fn emit(&self, event: impl Serialize) {
        let checked = serde_json::to_value(event)
            .map_err(|e| e.to_string())
            .and_then(|v| match v {
                Value::Object(m) => match m.get("event") {
                    Some(Value::String(name)) if reserved(name) => Err(format!(
                        "event name {name:?} is reserved for the engine's own events"
                    )),
                    Some(Value::String(_)) if m.contains_key("ts") => {
                        Err("a workflow event may not have a `ts` field".into())
                    }
                    Some(Value::String(_)) => Ok(m),
                    _ => Err("a workflow event needs a string field `event`".into()),
                },
                _ => Err("a workflow event must serialize as a JSON object".into()),
            });
        match checked {
            Ok(map) => self.push(&map),
            Err(e) => tracing::warn!("workflow event not logged: {e}"),
        }
    }

    /// Buffers one engine event.
    pub(crate) fn record(&self, event: &Event) {
        self.push(event);
    }

    fn push<T: Serialize + ?Sized>(&self, event: &T) {
        let line = EventLine {
            ts: crate::util::now_rfc3339_millis(),
            event,
        };
        let Ok(mut buf) = self.inner.lines.lock() else {
            return;
        };
        let start = buf.len();
        match serde_json::to_writer(&mut *buf, &line) {
            Ok(()) => {
                buf.push(b'\n');
                self.inner.pending.store(true, Ordering::Release);
            }
            Err(e) => {
                buf.truncate(start);
                tracing::warn!("event not logged: {e}");
            }
        }
    }

    /// Whether events wait to be written.
    pub(crate) fn has_pending(&self) -> bool {
        self.inner.pending.load(Ordering::Acquire)
    }

    /// Takes everything buffered so far (whole lines).
    pub(crate) fn take(&self) -> Vec<u8> {
        let Ok(mut buf) = self.inner.lines.lock() else {
            return Vec::new();
        };
        self.inner.pending.store(false, Ordering::Release);
        std::mem::take(&mut *buf)
    }
}

/// Reads events from byte `offset` on; returns those that parse as `E` and the offset after the
/// last whole line. Lines of other event types are skipped; a torn last line (no newline yet) is
/// left for the next call. Read the engine's events with `E =` [`Event`], a workflow's with its
/// own type, or both with an untagged enum of the two.
pub fn read_events<E: DeserializeOwned>(
    path: &Path,
    offset: u64,
) -> std::io::Result<(Vec<EventLine<E>>, u64)> {
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
        if let Ok(ev) = serde_json::from_slice::<EventLine<E>>(&line) {
            events.push(ev);
        }
    }
    Ok((events, pos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip_and_workflow_events_share_the_log() {
        let log = EventLog::default();
        log.record(&Event::SpecStarted {
            id: "a\"b".into(),
            resumed: true,
        });
        #[derive(Serialize)]
        #[serde(tag = "event", rename_all = "snake_case")]
        enum Mine {
            ThingDone { n: u32 },
        }
        log.emit(&Mine::ThingDone { n: 3 });
        log.emit(serde_json::json!({"event": "spec_started", "id": "forged"}));
        log.emit(serde_json::json!("not an object"));
        let bytes = log.take();
        let text = String::from_utf8(bytes).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        let first: EventLine<Event> = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(
            first.event,
            Event::SpecStarted {
                id: "a\"b".into(),
                resumed: true
            }
        );
        assert!(lines[0].starts_with("{\"ts\":\""), "{}", lines[0]);
        assert!(
            lines[1].contains("\"event\":\"thing_done\",\"n\":3"),
            "{}",
            lines[1]
        );
        assert!(serde_json::from_str::<EventLine<Event>>(lines[1]).is_err());
    }

    #[test]
    fn reader_skips_foreign_lines_and_waits_for_a_torn_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        std::fs::write(
            &path,
            "{\"ts\":\"t\",\"event\":\"spec_completed\",\"id\":\"a\"}\n{\"ts\":\"t\",\"event\":\"other\"}\n{\"ts\":\"t\",\"ev",
        )
        .unwrap();
        let (events, offset) = read_events::<Event>(&path, 0).unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].event, Event::SpecCompleted { id: "a".into() });
        assert_eq!(offset, 72);
    }
}
