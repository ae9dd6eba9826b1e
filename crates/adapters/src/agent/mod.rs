//! The coding-agent planner's building blocks (see `docs/agent.md`): calling an agent CLI
//! (Claude Code, Codex, or any argv) with the prompt on stdin, decoding and checking its
//! answers, journaling calls for crash safety, logging them, adding up their cost, and building
//! bounded prompts from templates.
//!
//! - [`phase`]: `plan` / `apply` / `analyze`.
//! - [`runner`]: one agent process (own process group, timeout kills the group, capped output).
//! - [`preset`]: each preset's command line and output decoding.
//! - [`reply`] and [`schema`]: finding the JSON answer and checking it (typed `PlanReply`,
//!   `AnalyzeReply`), and the retry prompt.
//! - [`journal`] and [`calllog`]: crash-safe call records and the human log under `logs/agent/`.
//! - [`client`]: all of the above for one call (`AgentClient::plan` / `apply` / `analyze`).
//! - [`cost`]: `Cost` and the per run/phase/node `CostBook`.
//! - [`template`], [`plan_prompt`], [`step_prompts`]: prompt templates and renderers;
//!   [`synthetic`]: a long synthetic run for the prompt-size benchmark.

pub mod calllog;
pub mod client;
pub mod cost;
pub mod journal;
pub mod phase;
pub mod plan_prompt;
pub mod preset;
pub mod reply;
pub mod runner;
pub mod schema;
pub mod step_prompts;
pub mod synthetic;
pub mod template;

pub use client::{AgentClient, AgentFailure, CallOutcome, FailureKind};
pub use cost::{Cost, CostBook};
pub use phase::AgentPhase;
pub use schema::{AnalyzeReply, PlanAction, PlanReply, ProposedExperiment};
