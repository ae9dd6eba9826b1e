//! The coding-agent planner's building blocks (see `docs/agent.md`): calling an agent CLI
//! (Claude Code, Codex, or any argv) with the prompt on stdin, decoding and checking its
//! answers, journaling calls for crash safety, logging them, adding up their cost, and building
//! bounded prompts from templates.
//!
//! - [`phase`]: `plan` / `apply` / `analyze` (a node's), `report` / `ask` (run-level).
//! - [`runner`]: one agent process (own process group, timeout kills the group, capped output).
//! - [`preset`]: each preset's command line and output decoding.
//! - [`reply`] and [`schema`]: finding the JSON answer and checking it (typed `PlanReply`,
//!   `AnalyzeReply`), and the retry prompt.
//! - [`journal`] and [`calllog`]: crash-safe call records and the human log under `logs/agent/`.
//! - [`client`]: all of the above for one call (`AgentClient::plan` / `apply` / `analyze`,
//!   `call_run_level` for `report` and `ask`).
//! - [`cost`]: `Cost` and the per run/phase/node `CostBook`.
//! - [`template`], [`plan_prompt`], [`step_prompts`]: prompt templates and renderers;
//!   [`synthetic`]: a long synthetic run for the prompt-size benchmark.
//! - [`run_brief`]: what `report` and `ask` are told about the run, within a size limit;
//!   [`final_report`]: the report's prompt, answer check and citation flags; [`ask`]: a
//!   question's prompt and its answer with proposed queue actions; [`cost_log`]: the cost of
//!   those calls in `logs/agent/costs.jsonl`.

pub mod ask;
pub mod calllog;
pub mod client;
pub mod cost;
pub mod cost_log;
pub mod final_report;
pub mod journal;
pub mod phase;
pub mod plan_prompt;
pub mod preset;
pub mod reply;
pub mod run_brief;
pub mod runner;
pub mod schema;
pub mod step_prompts;
pub mod synthetic;
pub mod template;

pub use client::{AgentClient, AgentFailure, CallOutcome, FailureKind};
pub use cost::{Cost, CostBook};
pub use phase::AgentPhase;
pub use schema::{AnalyzeReply, PlanAction, PlanReply, ProposedExperiment};
