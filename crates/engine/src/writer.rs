//! The writer: a dedicated thread that appends buffered events and atomically replaces
//! `checkpoint.json`, `queue.json`, `active.json` and `engine_state.json` from a snapshot handed
//! over by the scheduler. The scheduler never waits on disk except for the first and last
//! checkpoint and for applied control commands.
//!
//! Before replacing `checkpoint.json` the writer checks that the file is still the one it last
//! wrote; if someone edited it, it skips the checkpoint and raises a flag so the scheduler can
//! apply (or set aside) the edit. An edit is never silently overwritten.
//!
//! A transient failure (disk full, I/O error, too many open files) is retried with back-off,
//! from the file that failed on, for at most [`EngineConfig::max_write_stall`]
//! (crate::EngineConfig); meanwhile the writer reports itself stalled and the scheduler starts no
//! new work. A failure that persists, or is not transient, is kept for the scheduler, which
//! stops the engine as interrupted with a message naming the file.

use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::append::Appender;
use crate::checkpoint::{Document, SCHEMA_VERSION, Specs};
use crate::error::WriteError;
use crate::paths::EnginePaths;
use crate::queue::Entry;
use crate::state::{EngineState, EngineStatus};
use crate::views::{ActiveSpec, ActiveView, QueueView, QueuedSpec};

/// Identity of a file version: device, inode, modification time and length (of the entry
/// itself: a link is not followed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileStamp {
    dev: u64,
    ino: u64,
    mtime_ns: i128,
    len: u64,
}

impl FileStamp {
    pub(crate) fn of(path: &Path) -> Option<FileStamp> {
        let m = std::fs::symlink_metadata(path).ok()?;
        Some(FileStamp {
            dev: m.dev(),
            ino: m.ino(),
            mtime_ns: m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128,
            len: m.len(),
        })
    }
}

/// One running spec for `active.json`.
#[derive(Debug)]
pub(crate) struct ActiveEntry {
    pub(crate) id: Arc<str>,
    pub(crate) kind: String,
    pub(crate) started_at: String,
    pub(crate) annotation: Option<Value>,
}

/// What to write.
#[derive(Debug)]
pub(crate) struct Snapshot {
    pub(crate) updated_at: String,
    /// `None` when the queue did not change (only events/heartbeat).
    pub(crate) checkpoint: Option<CheckpointData>,
    pub(crate) events: Vec<u8>,
    pub(crate) state: EngineState,
}

/// The checkpoint and its views.
#[derive(Debug)]
pub(crate) struct CheckpointData {
    pub(crate) revision: u64,
    pub(crate) status: EngineStatus,
    /// Queued entries in run order.
    pub(crate) queued: Vec<Arc<Entry>>,
    pub(crate) running: Vec<Arc<RawValue>>,
    pub(crate) active: Vec<ActiveEntry>,
    pub(crate) extra: Map<String, Value>,
}

#[derive(Debug, Default)]
pub(crate) struct Shared {
    busy: AtomicBool,
    external_edit: AtomicBool,
    stalled: AtomicBool,
    pub(crate) stamp: Mutex<Option<FileStamp>>,
    writes: AtomicU64,
    bytes: AtomicU64,
    last_ns: AtomicU64,
    /// A failure that outlasted the retries (or was not transient).
    failure: Mutex<Option<WriteError>>,
}

type Reply = tokio::sync::oneshot::Sender<Result<(), WriteError>>;

/// Handle to the writer thread.
#[derive(Debug)]
pub(crate) struct Writer {
    tx: Option<mpsc::Sender<(Snapshot, Option<Reply>)>>,
    pub(crate) shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Back-off between retries of a failed write.
const FIRST_RETRY: Duration = Duration::from_millis(50);
const MAX_RETRY: Duration = Duration::from_secs(5);

impl Writer {
    pub(crate) fn start(
        paths: EnginePaths,
        initial_stamp: Option<FileStamp>,
        max_stall: Duration,
    ) -> std::io::Result<Writer> {
        let shared = Arc::new(Shared::default());
        if let Ok(mut s) = shared.stamp.lock() {
            *s = initial_stamp;
        }
        let (tx, rx) = mpsc::channel::<(Snapshot, Option<Reply>)>();
        let sh = shared.clone();
        let thread = std::thread::Builder::new()
            .name("checkpoint-writer".into())
            .spawn(move || {
                let mut thread = WriterThread {
                    events: Appender::new(paths.events()),
                    carry: Vec::new(),
                    paths,
                    shared: sh,
                    max_stall,
                };
                while let Ok((snap, reply)) = rx.recv() {
                    let t = Instant::now();
                    let res = thread.write(snap);
                    let sh = &thread.shared;
                    sh.last_ns
                        .store(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
                    if let Err(e) = &res {
                        tracing::error!("{e}");
                        if reply.is_none()
                            && let Ok(mut f) = sh.failure.lock()
                            && f.is_none()
                        {
                            *f = Some(WriteError::new(&e.path, clone_io(&e.source)));
                        }
                    }
                    sh.busy.store(false, Ordering::Release);
                    if let Some(reply) = reply {
                        let _ = reply.send(res);
                    }
                }
            })?;
        Ok(Writer {
            tx: Some(tx),
            shared,
            thread: Some(thread),
        })
    }

    pub(crate) fn busy(&self) -> bool {
        self.shared.busy.load(Ordering::Acquire)
    }

    /// Whether a write is failing and being retried.
    pub(crate) fn stalled(&self) -> bool {
        self.shared.stalled.load(Ordering::Acquire)
    }

    /// A write failure that outlasted the retries, once.
    pub(crate) fn take_failure(&self) -> Option<WriteError> {
        self.shared.failure.lock().ok().and_then(|mut f| f.take())
    }

    /// Hands a snapshot over without waiting. The caller checks `busy()` first.
    pub(crate) fn submit(&self, snap: Snapshot) {
        self.shared.busy.store(true, Ordering::Release);
        if let Some(tx) = &self.tx {
            let _ = tx.send((snap, None));
        }
    }

    /// Writes a snapshot and waits until it is on disk.
    pub(crate) async fn write_now(&self, snap: Snapshot, dir: &Path) -> Result<(), WriteError> {
        let gone = || WriteError::new(dir, std::io::Error::other("the writer thread is gone"));
        let (rtx, rrx) = tokio::sync::oneshot::channel();
        self.shared.busy.store(true, Ordering::Release);
        let tx = self.tx.as_ref().ok_or_else(gone)?;
        tx.send((snap, Some(rtx))).map_err(|_| gone())?;
        rrx.await.map_err(|_| gone())?
    }

    pub(crate) fn last_duration(&self) -> Duration {
        Duration::from_nanos(self.shared.last_ns.load(Ordering::Relaxed))
    }

    pub(crate) fn take_external_edit(&self) -> bool {
        self.shared.external_edit.swap(false, Ordering::AcqRel)
    }

    pub(crate) fn stats(&self) -> (u64, u64) {
        (
            self.shared.writes.load(Ordering::Relaxed),
            self.shared.bytes.load(Ordering::Relaxed),
        )
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn clone_io(e: &std::io::Error) -> std::io::Error {
    match e.raw_os_error() {
        Some(code) => std::io::Error::from_raw_os_error(code),
        None => std::io::Error::new(e.kind(), e.to_string()),
    }
}

/// The files of one snapshot, in the order they are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    Events,
    Checkpoint,
    Queue,
    Active,
    State,
    Done,
}

struct WriterThread {
    paths: EnginePaths,
    shared: Arc<Shared>,
    events: Appender,
    /// Event lines of earlier snapshots that could not be written yet.
    carry: Vec<u8>,
    max_stall: Duration,
}

impl WriterThread {
    /// Writes a snapshot, retrying transient failures with back-off for at most `max_stall`.
    fn write(&mut self, mut snap: Snapshot) -> Result<(), WriteError> {
        if !self.carry.is_empty() {
            let mut lines = std::mem::take(&mut self.carry);
            lines.extend_from_slice(&snap.events);
            snap.events = lines;
        }
        let mut step = Step::Events;
        let mut delay = FIRST_RETRY;
        let mut since: Option<Instant> = None;
        let result = loop {
            match self.write_from(&snap, &mut step) {
                Ok(()) => break Ok(()),
                Err(e) => {
                    let started = *since.get_or_insert_with(Instant::now);
                    if !e.is_transient() || started.elapsed() >= self.max_stall {
                        break Err(e);
                    }
                    if delay == FIRST_RETRY {
                        tracing::warn!(
                            "{e}; retrying (for at most {} s) — no new work starts meanwhile",
                            self.max_stall.as_secs()
                        );
                    }
                    self.shared.stalled.store(true, Ordering::Release);
                    std::thread::sleep(delay.min(self.max_stall.saturating_sub(started.elapsed())));
                    delay = (delay * 2).min(MAX_RETRY);
                }
            }
        };
        if since.is_some() && result.is_ok() {
            tracing::info!("writes succeed again");
        }
        self.shared.stalled.store(false, Ordering::Release);
        if result.is_err() && step == Step::Events {
            self.carry = snap.events;
        }
        result
    }

    /// Writes the snapshot's files from `step` on, advancing `step` past each written one.
    fn write_from(&mut self, snap: &Snapshot, step: &mut Step) -> Result<(), WriteError> {
        while *step != Step::Done {
            match *step {
                Step::Events if !snap.events.is_empty() => {
                    let path = self.events.path().to_path_buf();
                    fault(&path)
                        .and_then(|()| self.events.append(&snap.events))
                        .map_err(|e| WriteError::new(&path, e))?;
                }
                Step::Checkpoint => {
                    if let Some(cp) = &snap.checkpoint {
                        self.write_checkpoint(cp, &snap.updated_at)?;
                    }
                }
                Step::Queue => {
                    if let Some(cp) = &snap.checkpoint {
                        write_queue_view(&self.paths.queue_view(), cp, &snap.updated_at)?;
                    }
                }
                Step::Active => {
                    if let Some(cp) = &snap.checkpoint {
                        write_active_view(&self.paths.active_view(), cp, &snap.updated_at)?;
                    }
                }
                Step::State => {
                    let path = self.paths.state();
                    fault(&path)
                        .and_then(|()| crate::atomic::write_json_atomic(&path, &snap.state))
                        .map_err(|e| WriteError::new(&path, e))?;
                }
                Step::Events | Step::Done => {}
            }
            *step = match *step {
                Step::Events => Step::Checkpoint,
                Step::Checkpoint => Step::Queue,
                Step::Queue => Step::Active,
                Step::Active => Step::State,
                Step::State | Step::Done => Step::Done,
            };
        }
        Ok(())
    }

    fn write_checkpoint(&self, cp: &CheckpointData, updated_at: &str) -> Result<(), WriteError> {
        let path = self.paths.checkpoint();
        let err = |e| WriteError::new(&path, e);
        let mut stamp = self
            .shared
            .stamp
            .lock()
            .map_err(|_| err(std::io::Error::other("stamp lock poisoned")))?;
        let doc = Document {
            schema_version: SCHEMA_VERSION,
            revision: cp.revision,
            status: cp.status,
            updated_at,
            queued: Specs(&cp.queued),
            running: Specs(&cp.running),
            extra: &cp.extra,
        };
        let mut written = 0u64;
        fault(&path).map_err(err)?;
        let replaced = replace_checkpoint(&path, &mut stamp, |w| {
            let mut counter = CountingWriter { inner: w, n: 0 };
            doc.write(&mut counter)?;
            written = counter.n;
            Ok(())
        })
        .map_err(err)?;
        if replaced {
            self.shared.writes.fetch_add(1, Ordering::Relaxed);
            self.shared.bytes.fetch_add(written, Ordering::Relaxed);
        } else {
            self.shared.external_edit.store(true, Ordering::Release);
        }
        Ok(())
    }
}

/// In unit tests, a planted fault for `path`.
fn fault(path: &Path) -> std::io::Result<()> {
    #[cfg(test)]
    crate::faults::check(path)?;
    let _ = path;
    Ok(())
}

fn write_queue_view(path: &Path, cp: &CheckpointData, updated_at: &str) -> Result<(), WriteError> {
    let view = QueueView {
        updated_at: updated_at.into(),
        queued: cp
            .queued
            .iter()
            .map(|e| QueuedSpec {
                id: e.spec.id.as_str().into(),
                priority: e.spec.priority,
                kind: e.spec.kind.as_str().into(),
            })
            .collect(),
    };
    fault(path)
        .and_then(|()| crate::atomic::write_json_atomic(path, &view))
        .map_err(|e| WriteError::new(path, e))
}

fn write_active_view(path: &Path, cp: &CheckpointData, updated_at: &str) -> Result<(), WriteError> {
    let view: ActiveView<'_, &Value> = ActiveView {
        updated_at: updated_at.into(),
        running: cp
            .active
            .iter()
            .map(|a| ActiveSpec {
                id: (&*a.id).into(),
                kind: a.kind.as_str().into(),
                started_at: a.started_at.as_str().into(),
                annotation: a.annotation.as_ref(),
            })
            .collect(),
    };
    fault(path)
        .and_then(|()| crate::atomic::write_json_atomic(path, &view))
        .map_err(|e| WriteError::new(path, e))
}

/// Replaces the checkpoint unless someone else changed it since `stamp` (our last write).
///
/// The new content is written and synced to a temp file first; only then is the current file
/// checked, hard-linked aside and replaced, so the window for an unnoticed edit is a few
/// microseconds. If the old file was edited in place within that window, the edited version is
/// put back. Returns false when the file was left to the user's edit.
fn replace_checkpoint(
    path: &Path,
    stamp: &mut Option<FileStamp>,
    fill: impl FnOnce(&mut std::io::BufWriter<&std::fs::File>) -> std::io::Result<()>,
) -> std::io::Result<bool> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(".checkpoint.json.tmp");
    let prev = dir.join(".checkpoint.json.prev");
    {
        // Never written through a link planted at the temp name.
        let _ = std::fs::remove_file(&tmp);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)?;
        let mut w = std::io::BufWriter::with_capacity(1 << 20, &file);
        let filled = fill(&mut w).and_then(|()| w.flush());
        drop(w);
        if let Err(e) = filled.and_then(|()| file.sync_all()) {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    }
    let current = FileStamp::of(path);
    if current.is_some() && current != *stamp {
        let _ = std::fs::remove_file(&tmp);
        return Ok(false);
    }
    let _ = std::fs::remove_file(&prev);
    let linked = current.is_some() && std::fs::hard_link(path, &prev).is_ok();
    std::fs::rename(&tmp, path)?;
    let new_stamp = FileStamp::of(path);
    if linked {
        if FileStamp::of(&prev) != current {
            // Edited in place while we replaced it: the edit wins and will be applied.
            std::fs::rename(&prev, path)?;
            crate::atomic::sync_dir(dir)?;
            return Ok(false);
        }
        let _ = std::fs::remove_file(&prev);
    }
    crate::atomic::sync_dir(dir)?;
    *stamp = new_stamp;
    Ok(true)
}

struct CountingWriter<'a, W: Write> {
    inner: &'a mut W,
    n: u64,
}

impl<W: Write> Write for CountingWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.n += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Counts;

    fn state() -> EngineState {
        EngineState {
            schema_version: 1,
            status: EngineStatus::Running,
            pid: 1,
            host: "h".into(),
            started_at: "t".into(),
            heartbeat_at: "t".into(),
            max_concurrency: 1,
            counts: Counts::default(),
            stop_reason: None,
        }
    }

    fn snapshot(revision: u64, events: &[u8]) -> Snapshot {
        Snapshot {
            updated_at: "t".into(),
            checkpoint: Some(CheckpointData {
                revision,
                status: EngineStatus::Running,
                queued: vec![],
                running: vec![],
                active: vec![],
                extra: Map::new(),
            }),
            events: events.to_vec(),
            state: state(),
        }
    }

    #[tokio::test]
    async fn a_transient_failure_is_retried_and_names_the_file_when_it_persists() {
        let dir = tempfile::tempdir().unwrap();
        let paths = EnginePaths::new(dir.path());
        std::fs::create_dir_all(&paths.dir).unwrap();
        let writer = Writer::start(paths.clone(), None, Duration::from_millis(400)).unwrap();
        let cp = paths.checkpoint();
        let suffix = cp.to_string_lossy().into_owned();
        crate::faults::plant_errors(&suffix, libc::ENOSPC, 2);
        writer
            .write_now(snapshot(1, b"{\"a\":1}\n"), &paths.dir)
            .await
            .expect("retried until it succeeded");
        let loaded = crate::checkpoint::load(&cp).unwrap().unwrap();
        assert_eq!(loaded.revision, 1);
        assert_eq!(std::fs::read(paths.events()).unwrap(), b"{\"a\":1}\n");

        let state = paths.state().to_string_lossy().into_owned();
        crate::faults::plant_errors(&state, libc::EIO, 1000);
        let err = writer
            .write_now(snapshot(2, b"{\"b\":2}\n"), &paths.dir)
            .await
            .expect_err("persistent failure");
        assert_eq!(err.path, paths.state());
        assert!(err.to_string().contains("engine_state.json"), "{err}");
        // The files written before the failing one are not written twice.
        assert_eq!(
            std::fs::read(paths.events()).unwrap(),
            b"{\"a\":1}\n{\"b\":2}\n"
        );
        crate::faults::clear(&state);

        // Not transient: no retry.
        crate::faults::plant_errors(&suffix, libc::EACCES, 1);
        let t = Instant::now();
        let err = writer
            .write_now(snapshot(3, b""), &paths.dir)
            .await
            .expect_err("not transient");
        assert!(t.elapsed() < Duration::from_millis(300));
        assert_eq!(err.path, cp);
    }
}
