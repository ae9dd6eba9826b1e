//! One node's lifecycle: each phase is persisted (`status.txt`) before the next starts, and a
//! resumed node continues from the phase on disk.

use std::path::Path;

use autoresearch_engine::{RunContext, WorkError, WorkSpec};
use serde_json::{Map, Value, json};

use super::events::NodeEvent;
use super::jobs::JobEnding;
use super::{ExperimentWorkflow, Notice, now_millis};
use crate::model::{Failure, FailureKind, NodeResult, NodeSpec, NodeStatus};

/// A failure to record: kind, phase, message and details.
pub(crate) struct Fail {
    pub kind: FailureKind,
    pub phase: NodeStatus,
    pub message: String,
    pub retryable: bool,
    pub details: Value,
}

impl Fail {
    pub fn new(kind: FailureKind, phase: NodeStatus, message: impl Into<String>) -> Self {
        Fail {
            kind,
            phase,
            message: message.into(),
            retryable: matches!(
                kind,
                FailureKind::Timeout | FailureKind::Lost | FailureKind::Launch
            ),
            details: Value::Null,
        }
    }

    pub fn details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }
}

/// Either a step's failure to record, or an interrupt that leaves the node resumable.
pub(crate) enum Stop {
    Fail(Fail),
    Interrupted,
}

impl From<Fail> for Stop {
    fn from(f: Fail) -> Self {
        Stop::Fail(f)
    }
}

fn unexpected(phase: NodeStatus) -> impl Fn(super::nodes::NodeError) -> Stop {
    move |e| Stop::Fail(Fail::new(FailureKind::Unexpected, phase, e.to_string()))
}

impl ExperimentWorkflow {
    pub(crate) async fn run_node(
        &self,
        spec: WorkSpec,
        ctx: RunContext,
    ) -> Result<Vec<WorkSpec>, WorkError> {
        let id = spec.id.clone();
        let info = match self.nodes.get(&id) {
            Some(info) => info,
            None => self.adopt(&spec)?,
        };
        match info.status {
            NodeStatus::Completed => return Ok(self.queued_children(&id)),
            NodeStatus::Failed => return Ok(Vec::new()),
            _ => {}
        }
        match self.advance(&info.spec, info.status, &ctx).await {
            Ok(children) => Ok(children),
            Err(Stop::Interrupted) => Err(WorkError::Interrupted),
            Err(Stop::Fail(fail)) => {
                let message = self.record_failure(&id, fail);
                let followups = self.plan_followups(&id);
                if let Ok(mut f) = self.followups.lock() {
                    f.insert(id.clone(), followups);
                }
                Err(WorkError::Failed(message))
            }
        }
    }

    /// A spec added by hand (checkpoint edit or `queue add`) with no node files: make a node.
    fn adopt(&self, spec: &WorkSpec) -> Result<super::nodes::NodeInfo, WorkError> {
        let p = &spec.payload;
        let name = p.get("name").and_then(Value::as_str).unwrap_or(&spec.id);
        let params = p
            .get("params")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        // A spec from the checkpoint or added by hand runs only inside the search space.
        self.config
            .check_params(&params)
            .map_err(|e| WorkError::msg(format!("{}: refused: {e}", spec.id)))?;
        let params = self.config.complete_params(&params);
        let command = self
            .config
            .render(&params)
            .map_err(|e| WorkError::msg(format!("{}: {e}", spec.id)))?;
        let node = NodeSpec {
            node_id: spec.id.clone(),
            name: name.to_string(),
            parent_id: p
                .get("parent_id")
                .and_then(Value::as_str)
                .map(str::to_string),
            hypothesis: p
                .get("hypothesis")
                .and_then(Value::as_str)
                .unwrap_or("added by hand")
                .to_string(),
            params,
            changes: None,
            command,
            priority: spec.priority,
            created_at: now_millis(),
        };
        self.nodes.create(node).map_err(WorkError::msg)?;
        self.nodes
            .get(&spec.id)
            .ok_or_else(|| WorkError::msg(format!("{}: node vanished", spec.id)))
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
                    self.nodes
                        .set_status(id, NodeStatus::Preparing)
                        .map_err(unexpected(NodeStatus::Preparing))?;
                    self.prepare(spec)
                        .map_err(unexpected(NodeStatus::Preparing))?;
                    status = NodeStatus::Launching;
                    self.nodes
                        .set_status(id, status)
                        .map_err(unexpected(status))?;
                }
                NodeStatus::Launching => {
                    self.launch_or_recover(spec, ctx).await?;
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
                    self.nodes
                        .set_status(id, status)
                        .map_err(unexpected(status))?;
                }
                NodeStatus::Running => {
                    let ending = self.wait_job(spec, ctx).await?;
                    if let Some(ending) = ending {
                        self.write_ending(id, &ending)
                            .map_err(unexpected(NodeStatus::Running))?;
                    }
                    status = NodeStatus::Analyzing;
                    self.nodes
                        .set_status(id, status)
                        .map_err(unexpected(status))?;
                }
                NodeStatus::Analyzing => {
                    self.analyze(spec)?;
                    status = NodeStatus::Planning;
                }
                NodeStatus::Planning => {
                    return self.plan_children(spec);
                }
                NodeStatus::Completed | NodeStatus::Failed => return Ok(Vec::new()),
            }
        }
    }

    /// Writes `runs/<id>/command.sh` (exactly what runs).
    fn prepare(&self, spec: &NodeSpec) -> Result<(), super::nodes::NodeError> {
        let run_dir = self.wd.run_dir(&spec.node_id);
        let io = |e| super::nodes::NodeError::Io {
            path: run_dir.clone(),
            source: e,
        };
        autoresearch_engine::atomic::create_dir_durable(&run_dir).map_err(io)?;
        let script = format!(
            "#!/bin/sh\n# autoresearch node {} ({})\n{}\n",
            spec.node_id,
            spec.name.replace('\n', " "),
            spec.command
        );
        autoresearch_engine::atomic::write_atomic(&run_dir.join("command.sh"), script.as_bytes())
            .map_err(io)
    }

    /// Reads the job's end, its metrics, decides improvement and writes `result.json`.
    fn analyze(&self, spec: &NodeSpec) -> Result<(), Stop> {
        let id = spec.node_id.as_str();
        let phase = NodeStatus::Analyzing;
        let run_dir = self.wd.run_dir(id);
        let ending = self.read_ending(id);
        let duration_s = job_duration(&run_dir);
        let metrics = crate::metrics::collect(&run_dir).map_err(|e| {
            Fail::new(
                FailureKind::Unexpected,
                phase,
                format!("cannot read metrics: {e}"),
            )
        });
        let exit_code = match &ending {
            JobEnding::Exited(code) => Some(*code),
            _ => None,
        };
        let partial = NodeResult {
            metrics: metrics.as_ref().cloned().unwrap_or_default(),
            primary: None,
            improved: false,
            duration_s,
            exit_code,
            children: Vec::new(),
            analysis: String::new(),
        };
        let stderr_tail = tail(&run_dir.join("stderr.log"), 10);
        let fail = match &ending {
            JobEnding::TimedOut => Some(
                Fail::new(
                    FailureKind::Timeout,
                    NodeStatus::Running,
                    format!(
                        "the job ran longer than job.timeout_s = {} s; its process group was killed",
                        self.config.job.timeout_s.unwrap_or_default()
                    ),
                )
                .details(json!({ "stderr_tail": stderr_tail })),
            ),
            JobEnding::Lost(reason) => Some(Fail::new(
                FailureKind::Lost,
                NodeStatus::Running,
                format!("the job disappeared without an exit code: {reason}"),
            )),
            JobEnding::Exited(code) if *code != 0 => Some(
                Fail::new(
                    FailureKind::NonzeroExit,
                    NodeStatus::Running,
                    format!("the job exited with status {code}; see runs/{id}/stderr.log"),
                )
                .details(json!({ "exit_code": code, "stderr_tail": stderr_tail })),
            ),
            JobEnding::Exited(_) => None,
        };
        if let Some(fail) = fail {
            let _ = self.nodes.write_result(id, &partial);
            return Err(Stop::Fail(fail));
        }
        let metrics = metrics?;
        let metric = &self.config.objective.metric;
        let Some(&primary) = metrics.get(metric) else {
            let _ = self.nodes.write_result(id, &partial);
            let seen: Vec<&String> = metrics.keys().collect();
            return Err(Stop::Fail(
                Fail::new(
                    FailureKind::MissingMetric,
                    phase,
                    format!(
                        "the job did not report the primary metric `{metric}`: print a line `METRIC {metric}=<number>` or write it to $AUTORESEARCH_RUN_DIR/metrics.json (metrics seen: {seen:?})"
                    ),
                )
                .details(json!({ "metrics": metrics })),
            ));
        };
        // Decide, write, and count under one lock so concurrent results are judged in order.
        let mut ledger = self.ledger.begin();
        let verdict = ledger.judge(primary, &self.config);
        let analysis = analysis_text(spec, metric, primary, verdict.improved, verdict.best_before);
        let result = NodeResult {
            metrics,
            primary: Some(primary),
            improved: verdict.improved,
            duration_s,
            exit_code,
            children: Vec::new(),
            analysis: analysis.clone(),
        };
        let _ = autoresearch_engine::atomic::write_atomic(
            &run_dir.join("analysis.md"),
            format!("# {id}\n\n{analysis}\n").as_bytes(),
        );
        self.nodes
            .write_result(id, &result)
            .map_err(unexpected(phase))?;
        self.nodes
            .set_status(id, NodeStatus::Planning)
            .map_err(unexpected(phase))?;
        ledger
            .commit_success(id, primary, verdict.improved, &self.config)
            .map_err(unexpected(phase))?;
        drop(ledger);
        self.notify(Notice::Completed {
            id: id.to_string(),
            primary,
            improved: verdict.improved,
        });
        self.emit(NodeEvent::NodeCompleted {
            id: id.to_string(),
            primary,
            improved: verdict.improved,
        });
        Ok(())
    }

    /// Writes failure.json, sets `failed`, counts it once. Returns the message.
    pub(crate) fn record_failure(&self, id: &str, fail: Fail) -> String {
        let failure = Failure {
            kind: fail.kind,
            phase: fail.phase,
            message: fail.message.clone(),
            retryable: fail.retryable,
            details: fail.details,
            created_at: now_millis(),
        };
        if self.ledger.is_recorded(id) {
            return fail.message;
        }
        let mut ledger = self.ledger.begin();
        if let Err(e) = self.nodes.write_failure(id, &failure) {
            tracing::error!("{id}: {e}");
        }
        if let Err(e) = self.nodes.set_status(id, NodeStatus::Failed) {
            tracing::error!("{id}: {e}");
        }
        if let Err(e) = ledger.commit_failure(id) {
            tracing::error!("{id}: {e}");
        }
        drop(ledger);
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
        fail.message
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
        self.record_failure(
            id,
            Fail::new(
                FailureKind::Unexpected,
                status.unwrap_or(NodeStatus::Running),
                format!("internal error: {message}"),
            ),
        );
    }
}

fn analysis_text(
    spec: &NodeSpec,
    metric: &str,
    primary: f64,
    improved: bool,
    best: Option<f64>,
) -> String {
    let params = spec
        .params
        .iter()
        .map(|(k, v)| format!("{k}={}", super::nodes::plain(v)))
        .collect::<Vec<_>>()
        .join(" ");
    match best {
        None => format!("{params}: {metric} = {primary} (first result)"),
        Some(b) => {
            let pct = if b != 0.0 {
                (primary - b) / b.abs() * 100.0
            } else {
                0.0
            };
            let verdict = if improved {
                "new best"
            } else {
                "no improvement"
            };
            format!("{params}: {metric} = {primary} ({pct:+.1}% vs best {b}): {verdict}")
        }
    }
}

/// Seconds between the job's `started_at` and its `exit_code` file (or now).
fn job_duration(run_dir: &Path) -> f64 {
    let started = std::fs::read(run_dir.join("job.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<Map<String, Value>>(&b).ok())
        .and_then(|m| {
            m.get("started_at")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .and_then(|s| humantime::parse_rfc3339_weak(&s).ok());
    let ended = std::fs::metadata(run_dir.join("exit_code"))
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| std::time::SystemTime::now());
    started
        .and_then(|s| ended.duration_since(s).ok())
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The last `n` lines of a text file (lossy), for failure details.
pub(crate) fn tail(path: &Path, n: usize) -> String {
    let Ok(bytes) = std::fs::read(path) else {
        return String::new();
    };
    let start = bytes.len().saturating_sub(8192);
    let text = String::from_utf8_lossy(&bytes[start..]);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
