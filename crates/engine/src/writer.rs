//! The checkpoint writer: a dedicated thread that appends buffered events and atomically
//! replaces `checkpoint.json`, `queue.json`, `active.json` and `engine_state.json` from a
//! snapshot handed over by the scheduler. The scheduler never waits on disk except for the
//! first and last checkpoint and for applied control commands.
//!
//! Before replacing `checkpoint.json` the writer checks that the file is still the one it last
//! wrote; if someone edited it, it skips the checkpoint and raises a flag so the scheduler can
//! apply (or set aside) the edit. An edit is never silently overwritten.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use crate::paths::EnginePaths;
use crate::state::{EngineState, EngineStatus};

/// Identity of a file version: device, inode, modification time and length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileStamp {
    dev: u64,
    ino: u64,
    mtime_ns: i128,
    len: u64,
}

impl FileStamp {
    pub fn of(path: &Path) -> Option<FileStamp> {
        let m = std::fs::metadata(path).ok()?;
        Some(FileStamp {
            dev: m.dev(),
            ino: m.ino(),
            mtime_ns: m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128,
            len: m.len(),
        })
    }
}

/// One running spec as shown in `active.json`.
pub(crate) struct ActiveView {
    pub id: Arc<str>,
    pub kind: String,
    pub started_at: String,
    pub annotation: Option<Value>,
}

/// What to write.
pub(crate) struct Snapshot {
    pub status: EngineStatus,
    pub updated_at: String,
    /// `None` when the queue did not change (only events/heartbeat).
    pub checkpoint: Option<CheckpointData>,
    pub events: Vec<u8>,
    pub state: EngineState,
}

pub(crate) struct CheckpointData {
    /// Queued entries in run order.
    pub queued: Vec<Arc<crate::queue::Entry>>,
    pub running: Vec<Arc<str>>,
    pub active: Vec<ActiveView>,
    pub extra: Map<String, Value>,
}

#[derive(Default)]
pub(crate) struct Shared {
    busy: AtomicBool,
    external_edit: AtomicBool,
    pub stamp: Mutex<Option<FileStamp>>,
    writes: AtomicU64,
    bytes: AtomicU64,
    last_ns: AtomicU64,
    last_error: Mutex<Option<String>>,
}

type Reply = tokio::sync::oneshot::Sender<Result<(), String>>;

/// Handle to the writer thread.
pub(crate) struct Writer {
    tx: Option<mpsc::Sender<(Snapshot, Option<Reply>)>>,
    pub shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    pub fn start(paths: EnginePaths, initial_stamp: Option<FileStamp>) -> std::io::Result<Writer> {
        let shared = Arc::new(Shared::default());
        if let Ok(mut s) = shared.stamp.lock() {
            *s = initial_stamp;
        }
        let (tx, rx) = mpsc::channel::<(Snapshot, Option<Reply>)>();
        let sh = shared.clone();
        let thread = std::thread::Builder::new()
            .name("checkpoint-writer".into())
            .spawn(move || {
                let mut events = None;
                while let Ok((snap, reply)) = rx.recv() {
                    let t = Instant::now();
                    let res = write_snapshot(&paths, &sh, &mut events, snap);
                    sh.last_ns
                        .store(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
                    if let Err(e) = &res {
                        tracing::error!("checkpoint writer: {e}");
                        if let Ok(mut le) = sh.last_error.lock() {
                            *le = Some(e.clone());
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

    pub fn busy(&self) -> bool {
        self.shared.busy.load(Ordering::Acquire)
    }

    /// Hands a snapshot over without waiting. The caller checks `busy()` first.
    pub fn submit(&self, snap: Snapshot) {
        self.shared.busy.store(true, Ordering::Release);
        if let Some(tx) = &self.tx {
            let _ = tx.send((snap, None));
        }
    }

    /// Writes a snapshot and waits until it is on disk.
    pub async fn write_now(&self, snap: Snapshot) -> Result<(), String> {
        let (rtx, rrx) = tokio::sync::oneshot::channel();
        self.shared.busy.store(true, Ordering::Release);
        match &self.tx {
            Some(tx) => tx
                .send((snap, Some(rtx)))
                .map_err(|_| "checkpoint writer is gone".to_string())?,
            None => return Err("checkpoint writer is gone".into()),
        }
        rrx.await
            .map_err(|_| "checkpoint writer is gone".to_string())?
    }

    pub fn last_duration(&self) -> Duration {
        Duration::from_nanos(self.shared.last_ns.load(Ordering::Relaxed))
    }

    pub fn take_external_edit(&self) -> bool {
        self.shared.external_edit.swap(false, Ordering::AcqRel)
    }

    pub fn stats(&self) -> (u64, u64) {
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

fn write_snapshot(
    paths: &EnginePaths,
    shared: &Shared,
    events: &mut Option<std::fs::File>,
    snap: Snapshot,
) -> Result<(), String> {
    let ctx = |p: &Path| {
        let p = p.display().to_string();
        move |e: std::io::Error| format!("{p}: {e}")
    };
    if !snap.events.is_empty() {
        let path = paths.events();
        if events.is_none() {
            *events = Some(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .map_err(ctx(&path))?,
            );
        }
        if let Some(f) = events.as_mut() {
            f.write_all(&snap.events).map_err(ctx(&path))?;
            f.sync_data().map_err(ctx(&path))?;
        }
    }
    if let Some(cp) = snap.checkpoint {
        let path = paths.checkpoint();
        let mut stamp = shared
            .stamp
            .lock()
            .map_err(|_| "stamp lock poisoned".to_string())?;
        let mut written = 0u64;
        let replaced = replace_checkpoint(&path, &mut stamp, |w| {
            let mut counter = CountingWriter { inner: w, n: 0 };
            crate::checkpoint::render(
                &mut counter,
                snap.status,
                &snap.updated_at,
                cp.queued.iter().map(|e| &*e.json),
                cp.running.iter().map(|s| &**s),
                &cp.extra,
            )?;
            written = counter.n;
            Ok(())
        })
        .map_err(ctx(&path))?;
        if replaced {
            shared.writes.fetch_add(1, Ordering::Relaxed);
            shared.bytes.fetch_add(written, Ordering::Relaxed);
        } else {
            shared.external_edit.store(true, Ordering::Release);
        }
        drop(stamp);
        let qpath = paths.queue_view();
        crate::atomic::write_atomic_with(&qpath, |w| {
            write!(
                w,
                "{{\n  \"updated_at\": \"{}\",\n  \"queued\": [",
                snap.updated_at
            )?;
            for (i, e) in cp.queued.iter().enumerate() {
                w.write_all(if i == 0 { b"\n    " } else { b",\n    " })?;
                write!(w, "{{\"id\":")?;
                serde_json::to_writer(&mut *w, &e.spec.id)?;
                write!(w, ",\"priority\":{},\"kind\":", e.spec.priority)?;
                serde_json::to_writer(&mut *w, &e.spec.kind)?;
                w.write_all(b"}")?;
            }
            w.write_all(b"\n  ]\n}\n")
        })
        .map_err(ctx(&qpath))?;
        let apath = paths.active_view();
        let active: Vec<Value> = cp
            .active
            .iter()
            .map(|a| {
                serde_json::json!({
                    "id": &*a.id,
                    "kind": a.kind,
                    "started_at": a.started_at,
                    "annotation": a.annotation,
                })
            })
            .collect();
        crate::atomic::write_json_atomic(
            &apath,
            &serde_json::json!({ "updated_at": snap.updated_at, "running": active }),
        )
        .map_err(ctx(&apath))?;
    }
    let spath = paths.state();
    crate::atomic::write_json_atomic(&spath, &snap.state).map_err(ctx(&spath))?;
    Ok(())
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
        let file = std::fs::File::create(&tmp)?;
        let mut w = std::io::BufWriter::with_capacity(1 << 20, &file);
        fill(&mut w)?;
        w.flush()?;
        drop(w);
        file.sync_all()?;
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
