//! Live updates: a watcher per workdir that notices changes and reloads the [`Snapshot`], and
//! the server-sent-event stream that tells the pages (one per page: a browser keeps at most six
//! connections to a host, so logs are polled instead, see [`super::logs`]).
//!
//! Changes are found by polling every [`POLL`]: the size of `engine/events.jsonl` (new lines are
//! read with the engine's own reader, which leaves a torn last line for the next poll), the
//! modification times of the few files and folders that change with the queue and the nodes,
//! and whether an engine holds the workdir's lock. Polling, not inotify, so that a workdir on a
//! network file system written by another host (a Slurm cluster's shared disk) is seen too. A
//! change triggers a reload at most every [`MIN_RELOAD_GAP`] or once the last reload's duration
//! has passed again, whichever is longer: a busy run of 10,000 nodes keeps at most half a core
//! busy with reloads, and a new result is shown about one to two reload times after it is written.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use autoresearch_adapters::workflow::events::{NodeEvent, RunEvent, RunEventLine};
use autoresearch_engine::Event as EngineEvent;
use autoresearch_engine::events::read_events;
use axum::response::sse::Event;
use futures_util::Stream;
use serde::Serialize;
use serde_json::json;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::snapshot::Snapshot;
use crate::render::RenderError;
use crate::render::load::NodeCache;

/// How often the workdir's files are looked at.
pub const POLL: Duration = Duration::from_millis(100);
/// The shortest time between two reloads of a workdir.
pub const MIN_RELOAD_GAP: Duration = Duration::from_millis(150);
/// How many recent events a snapshot carries.
pub const RECENT_EVENTS: usize = 200;
/// How far back from the end of `events.jsonl` the first read starts.
const FIRST_READ_WINDOW: u64 = 64 * 1024;

/// One line of `engine/events.jsonl`, reduced to what the pages show.
#[derive(Debug, Clone, Serialize)]
pub struct EventBrief {
    /// Position in the stream read by this server (increasing; not a line number).
    pub seq: u64,
    /// The event's time (RFC 3339), as written.
    pub ts: String,
    /// The event's name (`engine_started`, `node_completed`, …).
    pub event: String,
    /// The node or spec it is about.
    pub id: Option<String>,
    /// A reason, message, error, phase or priority carried by the event, as text.
    pub detail: Option<String>,
}

impl EventBrief {
    fn from_line(seq: u64, line: &RunEventLine) -> EventBrief {
        let (event, id, detail) = describe(&line.event);
        EventBrief {
            seq,
            ts: line.ts.clone(),
            event: event.to_string(),
            id: id.map(str::to_string),
            detail,
        }
    }
}

/// An event's name, the node or spec it is about, and its reason/message/phase/priority as text.
fn describe(event: &RunEvent) -> (&'static str, Option<&str>, Option<String>) {
    let num = |p: &f64| Some(autoresearch_adapters::config::format_number(*p));
    match event {
        RunEvent::Engine(e) => match e {
            EngineEvent::EngineStarted { resumed, .. } => (
                "engine_started",
                None,
                resumed.then(|| "resumed".to_string()),
            ),
            EngineEvent::EngineInterrupted { reason } => {
                ("engine_interrupted", None, reason.clone())
            }
            EngineEvent::EngineStopped { reason } => ("engine_stopped", None, reason.clone()),
            EngineEvent::SpecQueued { id, priority, .. } => {
                ("spec_queued", Some(id), num(priority))
            }
            EngineEvent::SpecStarted { id, .. } => ("spec_started", Some(id), None),
            EngineEvent::SpecPhase { id, phase, .. } => {
                ("spec_phase", Some(id), Some(phase.clone()))
            }
            EngineEvent::SpecCompleted { id } => ("spec_completed", Some(id), None),
            EngineEvent::SpecFailed { id, error, .. } => {
                ("spec_failed", Some(id), Some(error.clone()))
            }
            EngineEvent::SpecCancelled { id } => ("spec_cancelled", Some(id), None),
            EngineEvent::SpecBumped { id, priority } => ("spec_bumped", Some(id), num(priority)),
            EngineEvent::SpecDropped { id } => ("spec_dropped", Some(id), None),
            EngineEvent::CheckpointEdit { message, .. } => {
                ("checkpoint_edit", None, Some(message.clone()))
            }
            EngineEvent::Warning { message, id } => {
                ("warning", id.as_deref(), Some(message.clone()))
            }
        },
        RunEvent::Node(n) => match n {
            NodeEvent::NodeStarted { id, .. } => ("node_started", Some(id), None),
            NodeEvent::NodeCompleted { id, primary, .. } => {
                ("node_completed", Some(id), num(primary))
            }
            NodeEvent::NodeFailed { id, message, .. } => {
                ("node_failed", Some(id), Some(message.clone()))
            }
            NodeEvent::PlannerFailed { id, message } => {
                ("planner_failed", Some(id), Some(message.clone()))
            }
        },
    }
}

/// Incremental reader of `engine/events.jsonl` keeping the last [`RECENT_EVENTS`] events. The
/// dashboard's only reader of that file.
#[derive(Debug)]
struct EventTail {
    path: PathBuf,
    offset: u64,
    seq: u64,
    recent: VecDeque<EventBrief>,
}

impl EventTail {
    /// Starts near the end of the file (the last [`FIRST_READ_WINDOW`] bytes, from a line
    /// start) and reads what is there.
    fn start(path: PathBuf) -> EventTail {
        let offset = first_line_start(&path).unwrap_or(0);
        let mut tail = EventTail {
            path,
            offset,
            seq: 0,
            recent: VecDeque::new(),
        };
        let _ = tail.poll();
        tail
    }

    /// Reads appended whole lines; true when there were new events. A file that shrank (was
    /// replaced) is read again from its start.
    fn poll(&mut self) -> std::io::Result<bool> {
        let len = match fs::metadata(&self.path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        if len == self.offset {
            return Ok(false);
        }
        if len < self.offset {
            self.offset = 0;
        }
        let (events, offset) = read_events::<RunEvent>(&self.path, self.offset)?;
        self.offset = offset;
        for ev in &events {
            self.seq += 1;
            self.recent.push_back(EventBrief::from_line(self.seq, ev));
            if self.recent.len() > RECENT_EVENTS {
                self.recent.pop_front();
            }
        }
        Ok(!events.is_empty())
    }
}

/// The offset of the first line starting within the last [`FIRST_READ_WINDOW`] bytes.
fn first_line_start(path: &Path) -> Option<u64> {
    let mut f = File::open(path).ok()?;
    let len = f.metadata().ok()?.len();
    if len <= FIRST_READ_WINDOW {
        return Some(0);
    }
    let from = len - FIRST_READ_WINDOW;
    f.seek(SeekFrom::Start(from)).ok()?;
    let mut buf = vec![0u8; FIRST_READ_WINDOW as usize];
    let n = f.read(&mut buf).ok()?;
    let nl = buf[..n].iter().position(|&b| b == b'\n')?;
    Some(from + nl as u64 + 1)
}

/// What is compared between two polls: file sizes and times, and the engine's pid.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fingerprint {
    files: Vec<Option<(u64, SystemTime)>>,
    engine: Option<u32>,
}

fn fingerprint(root: &Path) -> Fingerprint {
    const WATCHED: [&str; 7] = [
        "config.json",
        "state.json",
        "engine",
        "engine/nodes",
        "engine/checkpoint.json",
        "engine/queue.json",
        "engine/engine_state.json",
    ];
    let files = WATCHED
        .iter()
        .map(|p| {
            let m = fs::metadata(root.join(p)).ok()?;
            // engine_state.json is rewritten by every heartbeat: only its size says something
            // (a status word changed length) — status changes also come with events.
            let time = if p.ends_with("engine_state.json") {
                SystemTime::UNIX_EPOCH
            } else {
                m.modified().ok()?
            };
            Some((m.len(), time))
        })
        .collect();
    Fingerprint {
        files,
        engine: autoresearch_engine::lock::holder(root).ok().flatten(),
    }
}

/// The live state of one workdir: the current [`Snapshot`], replaced as the workdir changes.
#[derive(Debug)]
pub struct Live {
    root: PathBuf,
    tx: watch::Sender<Arc<Snapshot>>,
}

impl Live {
    /// Loads the first snapshot of `root` and starts its watcher, which runs until `shutdown`.
    pub async fn start(root: PathBuf, shutdown: CancellationToken) -> Result<Arc<Live>, String> {
        let path = root.clone();
        let (tail, first, cache) = tokio::task::spawn_blocking(move || {
            let tail = EventTail::start(path.join("engine").join("events.jsonl"));
            let events = tail.recent.iter().cloned().collect();
            let mut cache = NodeCache::default();
            let snap = Snapshot::load(&path, 1, events, &mut cache);
            (tail, snap, cache)
        })
        .await
        .map_err(|e| format!("loading {}: {e}", root.display()))?;
        let first = first.map_err(|e: RenderError| e.to_string())?;
        let (tx, _) = watch::channel(Arc::new(first));
        let live = Arc::new(Live { root, tx });
        tokio::spawn(watch_loop(live.clone(), tail, cache, shutdown));
        Ok(live)
    }

    /// The current snapshot.
    pub fn current(&self) -> Arc<Snapshot> {
        self.tx.borrow().clone()
    }

    /// A receiver that sees every new snapshot (intermediate ones may be skipped).
    pub fn subscribe(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.tx.subscribe()
    }

    /// The workdir.
    pub fn root(&self) -> &Path {
        &self.root
    }
}

/// Polls the workdir and reloads the snapshot when it changed, reusing the finished nodes of
/// the previous load (`cache`), at most once per load time (and [`MIN_RELOAD_GAP`]).
async fn watch_loop(
    live: Arc<Live>,
    tail: EventTail,
    cache: NodeCache,
    shutdown: CancellationToken,
) {
    let mut cache = Some(cache);
    let root = live.root.clone();
    let probe_root = root.clone();
    let mut state = tokio::task::spawn_blocking(move || (tail, fingerprint(&probe_root)))
        .await
        .ok();
    let mut pending = false;
    let mut next_allowed = Instant::now();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(POLL) => {}
        }
        let Some((mut tail, fp)) = state.take() else {
            return;
        };
        let probe_root = root.clone();
        let polled = tokio::task::spawn_blocking(move || {
            let grew = tail.poll().unwrap_or(false);
            let now = fingerprint(&probe_root);
            let changed = grew || now != fp;
            (tail, now, changed)
        })
        .await;
        let Ok((tail, fp, changed)) = polled else {
            return;
        };
        pending |= changed;
        if pending && Instant::now() >= next_allowed {
            pending = false;
            let version = live.current().version + 1;
            let events: Vec<EventBrief> = tail.recent.iter().cloned().collect();
            let load_root = root.clone();
            let mut nodes = cache.take().unwrap_or_default();
            let loaded = tokio::task::spawn_blocking(move || {
                let snap = Snapshot::load(&load_root, version, events, &mut nodes);
                (snap, nodes)
            })
            .await
            .map(|(snap, nodes)| {
                cache = Some(nodes);
                snap
            });
            match loaded {
                Ok(Ok(snap)) => {
                    let gap = Duration::from_secs_f64(snap.load_ms / 1000.0);
                    next_allowed = Instant::now() + gap.max(MIN_RELOAD_GAP);
                    live.tx.send_replace(Arc::new(snap));
                }
                Ok(Err(e)) => {
                    tracing::warn!("reloading {}: {e}", root.display());
                    next_allowed = Instant::now() + Duration::from_secs(1);
                }
                Err(e) => tracing::warn!("reloading {}: {e}", root.display()),
            }
        }
        state = Some((tail, fp));
    }
}

/// The server-sent events of one workdir: an `update` event at once and for every new
/// snapshot, with `{version, status, events}` (the events not sent yet on this stream). Ends at
/// `shutdown`.
pub fn updates(
    live: Arc<Live>,
    shutdown: CancellationToken,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let rx = live.subscribe();
    futures_util::stream::unfold(
        (rx, 0u64, true, shutdown),
        |(mut rx, last_seq, first, shutdown)| async move {
            if !first {
                tokio::select! {
                    _ = shutdown.cancelled() => return None,
                    r = rx.changed() => r.ok()?,
                }
            }
            let snap = rx.borrow_and_update().clone();
            let events: Vec<&EventBrief> = snap
                .events
                .iter()
                .filter(|e| first || e.seq > last_seq)
                .collect();
            let seq = snap.events.last().map(|e| e.seq).unwrap_or(last_seq);
            let data = json!({
                "version": snap.version,
                "status": snap.status_word(),
                "events": if first { Vec::new() } else { events },
            });
            let ev = Event::default().event("update").data(data.to_string());
            Some((Ok(ev), (rx, seq, false, shutdown)))
        },
    )
}
