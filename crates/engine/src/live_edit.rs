//! Hand edits of `checkpoint.json` while the engine runs.
//!
//! The engine notices that the file is not the one it last wrote and merges the edit: the
//! user's changes are those between the revision they edited (the file's `revision`) and their
//! file; the engine's own changes since that revision are kept. So an edit saved from a copy
//! taken before a spec was dropped, started or finished never brings it back. The engine
//! remembers, for this process, the revision at which each queued spec last changed and at
//! which each spec left the queue; an edit of a revision it does not know (from before this
//! engine started, or without a `revision`) is set aside as rejected, like an invalid one.

use std::collections::HashSet;
use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::checkpoint::{self, Checkpoint};
use crate::events::{EditResult, Event};
use crate::queue::{Entry, Queue};
use crate::scheduler::Scheduler;
use crate::workflow::Workflow;
use crate::writer::FileStamp;

/// The most spec removals remembered; past it, edits of older revisions are refused.
const MAX_REMEMBERED: usize = 1 << 20;

/// Revisions of the checkpoint and when each spec last changed.
#[derive(Debug)]
pub(crate) struct Revisions {
    /// The last revision handed to the writer (or loaded).
    current: u64,
    /// The oldest revision an edit may be based on.
    floor: u64,
    /// When each spec left the queue (started, dropped, removed by an edit).
    removed: FxHashMap<Arc<str>, u64>,
}

impl Revisions {
    pub(crate) fn new(loaded: u64) -> Self {
        Revisions {
            current: loaded,
            floor: loaded.max(1),
            removed: FxHashMap::default(),
        }
    }

    /// The revision that will contain changes made now.
    pub(crate) fn next(&self) -> u64 {
        self.current + 1
    }

    /// Starts a new revision for a checkpoint about to be written; returns its number.
    pub(crate) fn written(&mut self) -> u64 {
        self.current += 1;
        self.current
    }

    /// Remembers that `id` left the queue now.
    pub(crate) fn removed(&mut self, id: Arc<str>) {
        if self.removed.len() >= MAX_REMEMBERED {
            self.removed.clear();
            self.floor = self.next();
        }
        let rev = self.next();
        self.removed.insert(id, rev);
    }

    fn removed_after(&self, id: &str, base: u64) -> bool {
        self.removed.get(id).is_some_and(|&r| r > base)
    }
}

/// Where the user wants a spec.
#[derive(Clone, Copy, PartialEq)]
enum Place {
    Queue,
    First,
}

#[derive(Default)]
struct Tally {
    changed: usize,
    added: usize,
    removed: usize,
    kept_engine: usize,
    gone: usize,
    running: usize,
}

impl<W: Workflow> Scheduler<W> {
    /// Applies (or sets aside) a hand edit of the checkpoint, if there is one.
    pub(crate) fn check_live_edit(&mut self) {
        if self.writer.busy() {
            return;
        }
        let path = self.paths.checkpoint();
        let flagged = self.writer.take_external_edit();
        let current = FileStamp::of(&path);
        let last = self.writer.shared.stamp.lock().map(|s| *s).unwrap_or(None);
        if current.is_none() || (!flagged && current == last) {
            return;
        }
        let verdict = checkpoint::load(&path)
            .map_err(|e| e.to_string())
            .and_then(|cp| cp.ok_or_else(|| "the file vanished".to_string()))
            .and_then(|cp| self.merge_edit(cp));
        match verdict {
            Ok(summary) => {
                tracing::info!("hand edit of {} applied: {summary}", path.display());
                self.events().record(&Event::CheckpointEdit {
                    result: EditResult::Applied,
                    message: summary,
                    file: None,
                });
            }
            Err(err) => self.set_aside(&path, &err),
        }
        if let Ok(mut s) = self.writer.shared.stamp.lock() {
            *s = FileStamp::of(&path);
        }
        self.queue_dirty = true;
        self.next_write = tokio::time::Instant::now();
    }

    fn set_aside(&mut self, path: &std::path::Path, err: &str) {
        let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now())
            .to_string()
            .replace(':', "-");
        let aside = self
            .paths
            .dir
            .join(format!("checkpoint.rejected-{stamp}.json"));
        let moved = std::fs::rename(path, &aside);
        let _ = crate::atomic::sync_dir(&self.paths.dir);
        let message = match moved {
            Ok(()) => format!(
                "hand edit rejected and set aside as {}: {err}",
                aside.display()
            ),
            Err(e) => format!("hand edit rejected ({err}); could not set it aside: {e}"),
        };
        tracing::warn!("{message}");
        self.events().record(&Event::CheckpointEdit {
            result: EditResult::Rejected,
            message,
            file: Some(aside.display().to_string()),
        });
    }

    /// Merges the user's changes (their file against the revision they edited) into the queue.
    fn merge_edit(&mut self, cp: Checkpoint) -> Result<String, String> {
        let base = cp.revision;
        let (floor, current) = (self.revisions.floor, self.revisions.current);
        if base < floor || base > current {
            return Err(format!(
                "it was edited from revision {base}, which this engine does not know (it knows {floor} to {current}): copy the current file, edit it again and save it"
            ));
        }
        for w in &cp.warnings {
            tracing::warn!("{w}");
            self.warn(w, None);
        }
        let before = self.queue.len() + self.resume_first.len();
        let mut tally = Tally::default();
        let mut listed = HashSet::with_capacity(cp.queued.len() + cp.running.len());
        let wanted = cp
            .queued
            .into_iter()
            .map(|s| (s, Place::Queue))
            .chain(cp.running.into_iter().map(|s| (s, Place::First)));
        for (spec, place) in wanted {
            listed.insert(spec.id.clone());
            if self.is_active(&spec.id) {
                tally.running += 1;
                continue;
            }
            let now_at = self.place_of(&spec.id);
            if let Some((entry, at)) = now_at {
                if entry.rev > base {
                    tally.kept_engine += 1;
                } else if entry.spec != spec || at != place {
                    self.take(&spec.id);
                    self.put(Entry::new(spec, self.revisions.next()), place);
                    tally.changed += 1;
                }
            } else if self.revisions.removed_after(&spec.id, base) {
                tally.gone += 1;
            } else {
                self.events().record(&Event::SpecQueued {
                    id: spec.id.clone(),
                    priority: spec.priority,
                    kind: spec.kind.clone(),
                });
                self.put(Entry::new(spec, self.revisions.next()), place);
                tally.added += 1;
            }
        }
        // Entries the user deleted; those the engine added or changed since stay.
        let deleted: Vec<String> = self
            .queue
            .snapshot()
            .iter()
            .map(|e| (&e.spec.id, e.rev))
            .chain(self.resume_first.iter().map(|e| (&e.spec.id, e.rev)))
            .filter(|(id, rev)| *rev <= base && !listed.contains(id.as_str()))
            .map(|(id, _)| id.clone())
            .collect();
        for id in deleted {
            self.take(&id);
            self.revisions.removed(Arc::from(id.as_str()));
            self.events().record(&Event::SpecDropped { id });
            tally.removed += 1;
        }
        let t = tally;
        Ok(format!(
            "queue now {} (was {before}): {} changed, {} added, {} removed; kept as the engine has them: {} changed by the engine since revision {base}, {} started, finished or dropped since revision {base} (not brought back), {} naming running specs",
            self.queue.len() + self.resume_first.len(),
            t.changed,
            t.added,
            t.removed,
            t.kept_engine,
            t.gone,
            t.running
        ))
    }

    /// The queued (or waiting to resume) entry with this id, and where it is.
    fn place_of(&self, id: &str) -> Option<(Entry, Place)> {
        if let Some(e) = self.queue.get(id) {
            return Some((e.clone(), Place::Queue));
        }
        self.resume_first
            .iter()
            .find(|e| e.spec.id == id)
            .map(|e| (e.clone(), Place::First))
    }

    fn take(&mut self, id: &str) {
        if self.queue.remove(id).is_none() {
            self.resume_first.retain(|e| e.spec.id != id);
        }
    }

    fn put(&mut self, entry: Entry, place: Place) {
        match place {
            Place::Queue => Queue::push(&mut self.queue, entry),
            Place::First => self.resume_first.push_back(entry),
        }
    }
}
