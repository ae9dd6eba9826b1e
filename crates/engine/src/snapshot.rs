//! What the scheduler hands the writer: snapshots of the queue, the running specs, the
//! buffered events and the engine's state, coalesced (at most one write in flight, at least
//! the checkpoint interval apart) except when a write must be durable now.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::value::RawValue;
use tokio::time::Instant;

use crate::error::EngineError;
use crate::scheduler::{Running, Scheduler};
use crate::state::{Counts, EngineState, EngineStatus};
use crate::util::now_rfc3339;
use crate::workflow::Workflow;
use crate::writer::{ActiveEntry, CheckpointData, Snapshot};

impl<W: Workflow> Scheduler<W> {
    pub(crate) fn state(&self, status: EngineStatus) -> EngineState {
        EngineState {
            schema_version: 1,
            status,
            pid: std::process::id(),
            host: crate::state::hostname(),
            started_at: self.started_at.clone(),
            heartbeat_at: now_rfc3339(),
            max_concurrency: self.config.max_concurrency,
            counts: Counts {
                queued: (self.queue.len() + self.resume_first.len()) as u64,
                running: (self.running.len() + self.kept.len()) as u64,
                ..self.counts
            },
            stop_reason: self.stop_reason.clone(),
        }
    }

    fn snapshot(&mut self, status: EngineStatus, with_checkpoint: bool) -> Snapshot {
        let checkpoint = with_checkpoint.then(|| {
            let mut running: Vec<&Running> = self.running.values().collect();
            running.sort_by_key(|r| r.seq);
            let annotations = self
                .shared
                .annotations
                .lock()
                .map(|a| a.clone())
                .unwrap_or_default();
            let active = running
                .iter()
                .map(|r| ActiveEntry {
                    id: Arc::from(r.entry.spec.id.as_str()),
                    kind: r.entry.spec.kind.clone(),
                    started_at: r.started_at.clone(),
                    annotation: annotations.get(&r.entry.spec.id).cloned(),
                })
                .collect();
            let mut started: Vec<(u64, Arc<RawValue>)> = running
                .iter()
                .map(|r| (r.seq, r.entry.json.clone()))
                .chain(self.kept.iter().map(|(seq, e)| (*seq, e.json.clone())))
                .collect();
            started.sort_by_key(|(seq, _)| *seq);
            let running_json = started
                .into_iter()
                .map(|(_, json)| json)
                .chain(self.resume_first.iter().map(|e| e.json.clone()))
                .collect();
            CheckpointData {
                revision: self.revisions.written(),
                status,
                queued: self.queue.snapshot(),
                running: running_json,
                active,
                extra: self.extra.clone(),
            }
        });
        Snapshot {
            updated_at: crate::util::now_rfc3339_millis(),
            checkpoint,
            events: self.events().take(),
            state: self.state(status),
        }
    }

    /// Hands a snapshot to the writer when something changed and the coalescing window allows.
    pub(crate) fn maybe_write(&mut self) {
        if self.writer.busy() {
            return;
        }
        let now = Instant::now();
        let dirty = self.queue_dirty || self.shared.dirty.load(Ordering::Acquire);
        let due = dirty || self.events().has_pending();
        let heartbeat = now >= self.next_heartbeat;
        if !(heartbeat || due && now >= self.next_write) {
            return;
        }
        self.queue_dirty = false;
        self.shared.dirty.store(false, Ordering::Release);
        let snap = self.snapshot(EngineStatus::Running, dirty);
        self.writer.submit(snap);
        let backoff = self.writer.last_duration() * 3;
        self.next_write = now + self.config.checkpoint_interval.max(backoff);
        self.next_heartbeat = now + self.config.heartbeat_interval;
    }

    /// Waits for the writer, then writes everything now.
    pub(crate) async fn flush_now(&mut self, status: EngineStatus) -> Result<(), EngineError> {
        self.wait_writer().await;
        self.queue_dirty = false;
        self.shared.dirty.store(false, Ordering::Release);
        let snap = self.snapshot(status, true);
        self.next_heartbeat = Instant::now() + self.config.heartbeat_interval;
        Ok(self.writer.write_now(snap, &self.paths.dir).await?)
    }

    pub(crate) async fn wait_writer(&self) {
        while self.writer.busy() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}
