//! One node's lifecycle: each phase is persisted (`status.txt`) before the next starts, and a
//! resumed node continues from the phase on disk.
//!
//! Whose fault an error is decides what happens to the node ([`Stop`]): the experiment's (its
//! job failed, timed out, printed no metric) makes it `failed`; the environment's (the
//! workflow's own files could not be written or read: disk full, I/O error, a planted link)
//! never does: the node stays at its persisted phase and the engine retries it later
//! ([`WorkError::Retry`]), continuing from that phase.

use std::path::Path;

use autoresearch_engine::{RunContext, WorkError, WorkSpec};

use super::events::NodeEvent;
use super::nodes::NodeError;
use super::stop::{Fail, Stop};
use super::{ExperimentWorkflow, Notice, now_millis};
use crate::model::{Failure, FailureKind, HandPayload, NodeSpec, NodeStatus};

impl ExperimentWorkflow {
    pub(crate) async fn run_node(
        &self,
        spec: WorkSpec,
        ctx: RunContext,
    ) -> Result<Vec<WorkSpec>, WorkError> {
        let id = spec.id.clone();
        if !crate::workdir::is_node_id(&id) {
            return Err(WorkError::msg(format!(
                "{id:?} cannot name a node (`.` and `..` would name the engine's own folders): \
                 remove this entry from engine/checkpoint.json"
            )));
        }
        match self.run_node_steps(&spec, &ctx).await {
            Ok(children) => Ok(children),
            Err(Stop::Interrupted) => Err(WorkError::Interrupted),
            Err(Stop::Env(message)) => {
                tracing::warn!(
                    node = %id,
                    "the workflow's own files failed ({message}): the experiment is not failed; \
                     it stays at its phase and is retried"
                );
                // Children a round already created must not wait for the retry.
                let children = self.queued_children(&id);
                if let Ok(mut f) = self.followups.lock() {
                    f.insert(id.clone(), children);
                }
                Err(WorkError::Retry(message))
            }
            Err(Stop::Fail(fail)) => Err(WorkError::Failed(fail.message)),
        }
    }

    async fn run_node_steps(
        &self,
        spec: &WorkSpec,
        ctx: &RunContext,
    ) -> Result<Vec<WorkSpec>, Stop> {
        let id = spec.id.clone();
        let info = match self.nodes.get(&id) {
            Some(info) => info,
            None => self.adopt(spec)?,
        };
        match info.status {
            NodeStatus::Completed => {
                // Resumed after its end: a round may still be owed to it, and the children
                // its rounds created may not have reached the queue.
                self.plan_phase(&id, ctx).await?;
                return Ok(self.queued_children(&id));
            }
            NodeStatus::Failed => {
                self.plan_phase(&id, ctx).await?;
                return Err(self.failed_again(&id)?);
            }
            _ => {}
        }
        match self.advance(&info.spec, info.status, ctx).await {
            Err(Stop::Fail(fail)) => {
                let message = self.record_failure(&id, fail)?;
                self.release_worktree(&id).await;
                // Follow-ups after a failure come from the same single planning round.
                self.plan_phase(&id, ctx).await?;
                let followups = self.queued_children(&id);
                if let Ok(mut f) = self.followups.lock() {
                    f.insert(id.clone(), followups);
                }
                Err(Stop::Fail(Fail::new(
                    FailureKind::Unexpected,
                    NodeStatus::Failed,
                    message,
                )))
            }
            other => other,
        }
    }

    /// A failed node started again (resume or retry): its children go out as follow-ups and
    /// it ends failed again with its recorded message.
    fn failed_again(&self, id: &str) -> Result<Stop, NodeError> {
        let followups = self.queued_children(id);
        if let Ok(mut f) = self.followups.lock() {
            f.insert(id.to_string(), followups);
        }
        let message = self
            .nodes
            .read_file::<Failure>(id, "failure.json")?
            .map(|f| f.message)
            .unwrap_or_else(|| format!("{id} failed earlier"));
        Ok(Stop::Fail(Fail::new(
            FailureKind::Unexpected,
            NodeStatus::Failed,
            message,
        )))
    }

    /// A spec added by hand (checkpoint edit, `queue add`, `retry`, `ask`) with no node files:
    /// make a node (its payload: `name`, `params`, `parent_id`, `hypothesis`, `changes`).
    fn adopt(&self, spec: &WorkSpec) -> Result<super::nodes::NodeInfo, Stop> {
        let p = HandPayload::from_map(&spec.payload).map_err(|e| {
            Stop::Fail(Fail::new(
                FailureKind::Launch,
                NodeStatus::Queued,
                format!(
                    "{}: refused: its payload in engine/checkpoint.json is not valid: {e} \
                     (expected name, params, parent_id, hypothesis, changes: see docs/workdir-format.md)",
                    spec.id
                ),
            ))
        })?;
        let params = p.params.clone();
        // A spec from the checkpoint or added by hand runs only inside the search space.
        self.config.check_params(&params).map_err(|e| {
            Stop::Fail(Fail::new(
                FailureKind::Launch,
                NodeStatus::Queued,
                format!("{}: refused: {e}", spec.id),
            ))
        })?;
        let params = self.config.complete_params(&params);
        let command = self.config.render(&params).map_err(|e| {
            Stop::Fail(Fail::new(
                FailureKind::Launch,
                NodeStatus::Queued,
                format!("{}: {e}", spec.id),
            ))
        })?;
        let node = NodeSpec {
            node_id: spec.id.clone(),
            name: p.name.clone().unwrap_or_else(|| spec.id.clone()),
            parent_id: p.parent_id.clone(),
            hypothesis: p
                .hypothesis
                .clone()
                .unwrap_or_else(|| "added by hand".to_string()),
            params,
            // A retry (`supervisor retry`) repeats the failed node's code change too.
            changes: p.changes.clone(),
            command,
            priority: spec.priority,
            created_at: now_millis(),
        };
        self.nodes.create(node)?;
        // A retry of the failed baseline (`supervisor retry`) is the run's baseline from now on.
        if let Some(of) = p.retry_of.as_deref()
            && self.ledger.snapshot().baseline_node.as_deref() == Some(of)
        {
            self.ledger.update(|s| {
                s.baseline_node = Some(spec.id.clone());
                s.baseline_value = None;
            })?;
        }
        self.nodes
            .get(&spec.id)
            .ok_or_else(|| Stop::Env(format!("{}: node vanished from the index", spec.id)))
    }

    /// The phase machine from `status` to completion.
    async fn advance(
        &self,
        spec: &NodeSpec,
        mut status: NodeStatus,
        ctx: &RunContext,
    ) -> Result<Vec<WorkSpec>, Stop> {
        let id = spec.node_id.as_str();
        loop {
            ctx.phase(status.as_str(), None);
            match status {
                NodeStatus::Queued | NodeStatus::Preparing => {
                    self.nodes.set_status(id, NodeStatus::Preparing)?;
                    self.prepare_run(spec, &self.wd.run_dir(id))?;
                    // In a run with a workspace: the worktree, or on to `applying`.
                    status = self.prepare_code(spec).await?;
                    self.nodes.set_status(id, status)?;
                }
                NodeStatus::Applying => {
                    self.apply_phase(spec, ctx).await?;
                    status = NodeStatus::Launching;
                    self.nodes.set_status(id, status)?;
                }
                NodeStatus::Launching => {
                    self.ready_worktree(spec).await?;
                    self.launch_or_recover(&self.job_run(spec, 1), ctx).await?;
                    self.notify(Notice::Started { id: id.to_string() });
                    self.emit(NodeEvent::NodeStarted {
                        id: id.to_string(),
                        job_id: super::nodes::read_json::<crate::model::JobRecord>(
                            &self.wd.run_dir(id).join("job.json"),
                        )
                        .ok()
                        .flatten()
                        .map(|r| r.job_id),
                    });
                    status = NodeStatus::Running;
                    self.nodes.set_status(id, status)?;
                }
                NodeStatus::Running => {
                    // Every run of the job (repeats, confirmation runs), one after the other,
                    // in the experiment's worktree (recreated when a crash left it half-made).
                    self.ready_worktree(spec).await?;
                    self.run_all(spec, ctx).await?;
                    status = NodeStatus::Analyzing;
                    self.nodes.set_status(id, status)?;
                }
                NodeStatus::Analyzing => {
                    status = match self.analyze(spec)? {
                        super::analysis::Analyzed::Recorded => {
                            self.release_worktree(id).await;
                            NodeStatus::Planning
                        }
                        super::analysis::Analyzed::MoreRuns => {
                            self.nodes.set_status(id, NodeStatus::Running)?;
                            NodeStatus::Running
                        }
                    };
                }
                NodeStatus::Planning => {
                    self.plan_phase(id, ctx).await?;
                    return Ok(self.queued_children(id));
                }
                NodeStatus::Completed | NodeStatus::Failed => return Ok(Vec::new()),
            }
        }
    }

    /// Writes `command.sh` (exactly what runs) in a run dir of the node (`runs/<id>/`, or a
    /// repeat's) that is a real folder.
    pub(crate) fn prepare_run(&self, spec: &NodeSpec, run_dir: &Path) -> Result<(), NodeError> {
        let run_dir = run_dir.to_path_buf();
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| NodeError::Io { path, source }
        };
        self.wd.create_dir(&run_dir).map_err(io(&run_dir))?;
        let script = format!(
            "#!/bin/sh\n# autoresearch node {} ({})\n{}\n",
            spec.node_id,
            spec.name.replace('\n', " "),
            spec.command
        );
        let path = run_dir.join("command.sh");
        self.wd.check(&path).map_err(io(&path))?;
        autoresearch_engine::atomic::write_atomic(&path, script.as_bytes()).map_err(io(&path))
    }

    /// Writes failure.json, sets `failed`, counts it once. Returns the message. Each write is
    /// atomic and the ledger is written last, so a write that fails (disk full) leaves the
    /// node at its phase, to be retried, and a retry records it exactly once.
    pub(crate) fn record_failure(&self, id: &str, fail: Fail) -> Result<String, NodeError> {
        if self.ledger.is_recorded(id) {
            return Ok(fail.message);
        }
        let failure = Failure {
            kind: fail.kind,
            phase: fail.phase,
            message: fail.message.clone(),
            retryable: fail.retryable,
            details: fail.details,
            created_at: now_millis(),
        };
        let mut ledger = self.ledger.begin();
        self.nodes.write_failure(id, &failure)?;
        self.nodes.set_status(id, NodeStatus::Failed)?;
        ledger.commit_failure(id, &self.config)?;
        drop(ledger);
        self.check_fail_fast(id, fail.kind);
        tracing::warn!(
            node = id,
            kind = fail.kind.as_str(),
            "experiment failed: {}",
            fail.message
        );
        self.notify(Notice::Failed {
            id: id.to_string(),
            message: fail.message.clone(),
        });
        self.emit(NodeEvent::NodeFailed {
            id: id.to_string(),
            kind: fail.kind,
            message: fail.message.clone(),
        });
        Ok(fail.message)
    }

    /// A panic inside the workflow: record it as an unexpected failure.
    pub(crate) fn record_unexpected(&self, id: &str, message: &str) {
        let status = self.nodes.get(id).map(|n| n.status);
        if matches!(
            status,
            Some(NodeStatus::Completed | NodeStatus::Failed) | None
        ) {
            return;
        }
        if let Err(e) = self.record_failure(
            id,
            Fail::new(
                FailureKind::Unexpected,
                status.unwrap_or(NodeStatus::Running),
                format!("internal error: {message}"),
            ),
        ) {
            tracing::error!(node = id, "could not record the internal error: {e}");
        }
    }
}
