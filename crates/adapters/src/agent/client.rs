//! One agent call from prompt to checked answer, crash-safe and logged: [`AgentClient::call`].
//!
//! 1. The call's identity is (node, phase, sha256 of the prompt). If the journal holds a
//!    recorded answer for it, that answer is re-used and the agent is **not** called again.
//! 2. Otherwise the intent is journaled, the prompt logged, the agent run (runner + preset),
//!    its output decoded and the reply checked by the phase's validator; the answer is journaled
//!    and logged with its duration and cost.
//! 3. An invalid reply is retried up to `planner.agent.max_retries` times with
//!    [`retry_prompt`](super::reply::retry_prompt) (the error shown to the agent). A failed
//!    call (could not start, timeout, non-zero exit, reported error) is not retried: it is
//!    returned, and recorded, as the call's failure.
//!
//! For `apply` the journal only keeps the record: whether an apply is done is decided by the
//! workspace (a committed ref), since an answered but uncommitted apply is redone from a clean
//! worktree. An `apply` call is therefore always made; its attempts are numbered after the
//! recorded ones, which stay in the record with their cost.
//!
//! Run-level calls ([`AgentClient::call_run_level`]: `report`, `ask`) are the same, journaled
//! under `engine/agent/` and logged as `logs/agent/run_<phase>-<hash>_…`, with the workdir as
//! the working directory and an empty `AUTORESEARCH_NODE_ID`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::calllog::CallLog;
use super::journal::{CallAnswer, CallJournal, CallRecord, CallStatus, JournalError, sha256_hex};
use super::preset::{self, DecodeError, ReplyFormat};
use super::runner::{self, Invocation, RunError};
use super::schema::{AnalyzeReply, PlanReply, parse_analyze, parse_plan};
use super::{AgentPhase, Cost};
use crate::config::agent::AgentConfig;

/// Calls the configured agent.
#[derive(Debug, Clone)]
pub struct AgentClient {
    config: AgentConfig,
    workdir: PathBuf,
    /// Cap of captured stdout/stderr (default 32 MiB).
    pub output_cap: usize,
    /// SIGTERM-to-SIGKILL grace on timeout.
    pub kill_grace: Duration,
    /// Whether a recorded call that ended without a valid answer (failed, timed out, invalid
    /// after its retries) is replayed as that failure (default `true`, the planner's resume
    /// rule: never pay twice for the same failure). A command the user starts again (`report`,
    /// `ask`) sets it to `false` to call the agent again.
    pub replay_failures: bool,
    /// Receives a copy of the agent's stdout as it arrives (see [`Invocation::stdout_tap`]).
    pub stdout_tap: Option<tokio::sync::mpsc::UnboundedSender<Vec<u8>>>,
}

/// Where a call's journal and logs go.
#[derive(Debug, Clone, Copy)]
enum Scope<'a> {
    /// A node's call: `engine/nodes/<id>/agent/`, `logs/agent/<id>_<phase>_…`.
    Node(&'a str),
    /// A run-level call: `engine/agent/`, `logs/agent/run_<phase>-<hash>_…`.
    Run,
}

/// What kind of failure ended a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The agent could not be started.
    Spawn,
    /// It ran past `timeout_s` (its process group was killed).
    Timeout,
    /// Non-zero exit status.
    Exit,
    /// The agent reported an error (`is_error`, `turn.failed`, …).
    Reported,
    /// Its output was unreadable, empty or larger than the cap.
    Output,
    /// Its replies stayed invalid after the retries.
    Invalid,
    /// The engine's own I/O (journal, logs) failed: not the agent's fault.
    EngineIo,
}

/// A failed call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct AgentFailure {
    /// What kind.
    pub kind: FailureKind,
    /// What happened and what to do.
    pub message: String,
}

/// The outcome of [`AgentClient::call`].
#[derive(Debug, Clone)]
pub struct CallOutcome<T> {
    /// The checked answer, or why there is none.
    pub result: Result<T, AgentFailure>,
    /// The reply text of the last answered attempt (empty if none).
    pub text: String,
    /// Cost of the agent processes started by this invocation (to add to the run's totals).
    pub fresh_cost: Cost,
    /// Cost of every attempt in the call's record (re-used ones included).
    pub total_cost: Cost,
    /// Attempts made in all (re-used and new).
    pub attempts: u32,
    /// Whether the answer came from the journal without calling the agent.
    pub reused: bool,
}

impl AgentClient {
    /// A client for `config` in `workdir`.
    pub fn new(config: AgentConfig, workdir: impl Into<PathBuf>) -> Self {
        AgentClient {
            config,
            workdir: workdir.into(),
            output_cap: runner::DEFAULT_OUTPUT_CAP,
            kill_grace: runner::DEFAULT_KILL_GRACE,
            replay_failures: true,
            stdout_tap: None,
        }
    }

    /// Whether the agent's stdout is its reply as plain text (no preset: `command` alone), so
    /// it can be shown while it arrives; a preset's JSON output is shown once decoded.
    pub fn streams_plain_text(&self, phase: AgentPhase) -> bool {
        preset::command_line(&self.config, phase, &self.workdir).1 == ReplyFormat::Plain
    }

    /// A run-level call of `phase` (`report`, `ask`) with `prompt`, run in the workdir, its
    /// reply checked by `validate`.
    pub async fn call_run_level<T>(
        &self,
        phase: AgentPhase,
        prompt: &str,
        validate: impl Fn(&str) -> Result<T, String>,
    ) -> CallOutcome<T> {
        let cwd = self.workdir.clone();
        self.call_in(Scope::Run, phase, prompt, &cwd, validate)
            .await
    }

    /// The configuration.
    pub fn config(&self) -> &AgentConfig {
        &self.config
    }

    /// A `plan` call from `node_id` (working directory: the workdir).
    pub async fn plan(&self, node_id: &str, prompt: &str) -> CallOutcome<PlanReply> {
        self.call(
            node_id,
            AgentPhase::Plan,
            prompt,
            &self.workdir.clone(),
            parse_plan,
        )
        .await
    }

    /// An `analyze` call for `node_id` (working directory: the workdir).
    pub async fn analyze(&self, node_id: &str, prompt: &str) -> CallOutcome<AnalyzeReply> {
        self.call(
            node_id,
            AgentPhase::Analyze,
            prompt,
            &self.workdir.clone(),
            parse_analyze,
        )
        .await
    }

    /// An `apply` call for `node_id` with `worktree` as the working directory; the answer is the
    /// agent's summary text (what counts is what it changed in the worktree).
    pub async fn apply(&self, node_id: &str, prompt: &str, worktree: &Path) -> CallOutcome<String> {
        self.call(node_id, AgentPhase::Apply, prompt, worktree, |t| {
            Ok(t.trim().to_string())
        })
        .await
    }

    /// One call of `phase` for `node_id` with `prompt`, run in `cwd`, its reply checked by
    /// `validate` (which returns the error shown to the agent on a retry).
    pub async fn call<T>(
        &self,
        node_id: &str,
        phase: AgentPhase,
        prompt: &str,
        cwd: &Path,
        validate: impl Fn(&str) -> Result<T, String>,
    ) -> CallOutcome<T> {
        self.call_in(Scope::Node(node_id), phase, prompt, cwd, validate)
            .await
    }

    async fn call_in<T>(
        &self,
        scope: Scope<'_>,
        phase: AgentPhase,
        prompt: &str,
        cwd: &Path,
        validate: impl Fn(&str) -> Result<T, String>,
    ) -> CallOutcome<T> {
        let node_id = match scope {
            Scope::Node(id) => id,
            Scope::Run => "",
        };
        let mut out = CallOutcome {
            result: Err(AgentFailure {
                kind: FailureKind::Invalid,
                message: String::new(),
            }),
            text: String::new(),
            fresh_cost: Cost::default(),
            total_cost: Cost::default(),
            attempts: 0,
            reused: false,
        };
        let engine_io = |e: JournalError| AgentFailure {
            kind: FailureKind::EngineIo,
            message: e.to_string(),
        };
        let journal = match scope {
            Scope::Run => CallJournal::run_level(&self.workdir),
            Scope::Node(id) => match CallJournal::new(&self.workdir, id) {
                Ok(j) => j,
                Err(e) => {
                    out.result = Err(engine_io(e));
                    return out;
                }
            },
        };
        let key = sha256_hex(prompt);
        let record = match journal.lookup(phase, &key) {
            Ok(r) => r,
            Err(e) => {
                out.result = Err(engine_io(e));
                return out;
            }
        };
        // An apply is redone whenever it is asked for (its answer is worthless without the
        // worktree it changed, which a resumed apply resets): its earlier attempts stay in the
        // record, with their cost, and the new ones are numbered after them.
        let earlier = match (phase, &record) {
            (AgentPhase::Apply, Some(r)) => r.attempts.last().map_or(0, |a| a.attempt),
            _ => 0,
        };
        if phase == AgentPhase::Apply {
            out.total_cost = record.as_ref().map(CallRecord::cost).unwrap_or_default();
        }
        // A call the user starts again after a failure is made again.
        let record = record
            .filter(|_| phase != AgentPhase::Apply)
            .filter(|r| self.replay_failures || has_valid_answer(r));
        let max_attempts = earlier + 1 + self.config.max_retries;
        let mut attempt = earlier + 1;
        let mut last_error: Option<String> = None;
        // Replay what the journal holds.
        if let Some(record) = &record {
            out.total_cost = record.cost();
            for a in &record.attempts {
                let Some(answer) = &a.answer else { break };
                out.attempts = a.attempt;
                out.reused = true;
                match replay(answer, &validate) {
                    Replay::Done(result) => {
                        out.text = answer.text.clone();
                        out.result = result;
                        return out;
                    }
                    Replay::Invalid(error) => {
                        out.text = answer.text.clone();
                        last_error = Some(error);
                        attempt = a.attempt + 1;
                    }
                }
            }
            if attempt > max_attempts {
                out.result = Err(invalid_failure(out.attempts, last_error.as_deref()));
                return out;
            }
        }
        // Call the agent.
        while attempt <= max_attempts {
            let attempt_prompt = match &last_error {
                None => prompt.to_string(),
                Some(e) => super::reply::retry_prompt(prompt, e),
            };
            if let Err(e) = journal.begin(phase, &key, attempt, &sha256_hex(&attempt_prompt)) {
                out.result = Err(engine_io(e));
                return out;
            }
            let log = match scope {
                Scope::Node(id) => CallLog::new(&self.workdir, id, phase, attempt),
                Scope::Run => CallLog::run_level(&self.workdir, phase, &key, attempt),
            };
            if let Err(e) = log.write_prompt(&attempt_prompt) {
                tracing::warn!("cannot write {}: {e}", log.prompt_path().display());
            }
            let (argv, format) = preset::command_line(&self.config, phase, cwd);
            let inv = Invocation {
                argv: argv.clone(),
                prompt: attempt_prompt,
                cwd: cwd.to_path_buf(),
                phase,
                node_id: node_id.to_string(),
                workdir: self.workdir.clone(),
                timeout: self.config.timeout(),
                kill_grace: self.kill_grace,
                output_cap: self.output_cap,
                env: Vec::new(),
                stdout_tap: self.stdout_tap.clone(),
            };
            let started = std::time::Instant::now();
            let run = runner::run(&inv).await;
            let (answer, raw, result) = match run {
                Err(e) => {
                    let (status, kind) = match &e {
                        RunError::Timeout { .. } => (CallStatus::Timeout, FailureKind::Timeout),
                        RunError::Spawn { .. } | RunError::EmptyCommand => {
                            (CallStatus::Failed, FailureKind::Spawn)
                        }
                        RunError::OutputTooLarge { .. } => {
                            (CallStatus::Failed, FailureKind::Output)
                        }
                        RunError::Io(_) => (CallStatus::Failed, FailureKind::EngineIo),
                    };
                    let cost = if matches!(e, RunError::Spawn { .. } | RunError::EmptyCommand) {
                        Cost::default()
                    } else {
                        Cost::one_call()
                    };
                    let answer = answer_of(
                        status,
                        String::new(),
                        Some(e.to_string()),
                        cost,
                        None,
                        started,
                    );
                    let failure = AgentFailure {
                        kind,
                        message: e.to_string(),
                    };
                    (answer, None, Err(failure))
                }
                Ok(raw) => match preset::decode(format, &raw) {
                    Err(e) => {
                        let kind = match &e {
                            DecodeError::Exit { .. } => FailureKind::Exit,
                            DecodeError::Reported { .. } => FailureKind::Reported,
                            DecodeError::Format(_) => FailureKind::Output,
                        };
                        let answer = answer_of(
                            CallStatus::Failed,
                            String::new(),
                            Some(e.to_string()),
                            e.cost(),
                            None,
                            started,
                        );
                        (
                            answer,
                            Some(raw),
                            Err(AgentFailure {
                                kind,
                                message: e.to_string(),
                            }),
                        )
                    }
                    Ok(d) => match validate(&d.text) {
                        Ok(v) => (
                            answer_of(CallStatus::Valid, d.text, None, d.cost, d.turns, started),
                            Some(raw),
                            Ok(Some(v)),
                        ),
                        Err(error) => (
                            answer_of(
                                CallStatus::Invalid,
                                d.text,
                                Some(error),
                                d.cost,
                                d.turns,
                                started,
                            ),
                            Some(raw),
                            Ok(None),
                        ),
                    },
                },
            };
            out.attempts = attempt;
            out.fresh_cost += answer.cost;
            out.total_cost += answer.cost;
            out.text = answer.text.clone();
            if let Err(e) = log.write_outcome(&argv, cwd, &answer, raw.as_ref()) {
                tracing::warn!("cannot write {}: {e}", log.output_path().display());
            }
            let error = answer.error.clone();
            if let Err(e) = journal.finish(phase, &key, attempt, answer) {
                out.result = Err(engine_io(e));
                return out;
            }
            match result {
                Ok(Some(v)) => {
                    out.result = Ok(v);
                    return out;
                }
                Ok(None) => {
                    tracing::info!(
                        "agent {phase} answer for {node_id} invalid (attempt {attempt}/{max_attempts}): {}",
                        error.as_deref().unwrap_or("")
                    );
                    last_error = error;
                    attempt += 1;
                }
                Err(failure) => {
                    out.result = Err(failure);
                    return out;
                }
            }
        }
        out.result = Err(invalid_failure(out.attempts, last_error.as_deref()));
        out
    }

    /// The journal record of a call, for inspection (`None` if never started).
    pub fn recorded(
        &self,
        node_id: &str,
        phase: AgentPhase,
        prompt: &str,
    ) -> Result<Option<CallRecord>, JournalError> {
        CallJournal::new(&self.workdir, node_id)?.lookup(phase, &sha256_hex(prompt))
    }
}

fn has_valid_answer(record: &CallRecord) -> bool {
    record.attempts.iter().any(|a| {
        a.answer
            .as_ref()
            .is_some_and(|x| x.status == CallStatus::Valid)
    })
}

enum Replay<T> {
    Done(Result<T, AgentFailure>),
    Invalid(String),
}

fn replay<T>(answer: &CallAnswer, validate: &impl Fn(&str) -> Result<T, String>) -> Replay<T> {
    let message = answer.error.clone().unwrap_or_default();
    match answer.status {
        CallStatus::Valid | CallStatus::Invalid => match validate(&answer.text) {
            Ok(v) => Replay::Done(Ok(v)),
            Err(e) => Replay::Invalid(e),
        },
        CallStatus::Timeout => Replay::Done(Err(AgentFailure {
            kind: FailureKind::Timeout,
            message,
        })),
        CallStatus::Failed => Replay::Done(Err(AgentFailure {
            kind: FailureKind::Exit,
            message,
        })),
    }
}

fn invalid_failure(attempts: u32, error: Option<&str>) -> AgentFailure {
    AgentFailure {
        kind: FailureKind::Invalid,
        message: format!(
            "the agent's answer was invalid after {attempts} attempt{}: {}",
            if attempts == 1 { "" } else { "s" },
            error.unwrap_or("no answer")
        ),
    }
}

fn answer_of(
    status: CallStatus,
    text: String,
    error: Option<String>,
    cost: Cost,
    turns: Option<u64>,
    started: std::time::Instant,
) -> CallAnswer {
    CallAnswer {
        status,
        text,
        error,
        cost,
        turns,
        duration_s: started.elapsed().as_secs_f64(),
        finished_at: super::journal::now_rfc3339(),
    }
}
