//! The adapters crate's integration tests, one binary (one link, one place to look):
//!
//! Modules: `agent_calls`, `agent_resume`, `agent_workflow`, `config`, `local_executor`, `noise`,
//! `reliability`, `search_planner`, `slurm_executor`, `workflow`, `workflow_attempts`,
//! `workflow_resume`, `workspace`; each module's comment says what it covers. Run one with `cargo
//! test -p autoresearch-adapters --test integration <module>::`. Shared helpers: `agentic`,
//! `support`.

mod agentic;
mod support;

mod agent_calls;
mod agent_resume;
mod agent_workflow;
mod config;
mod local_executor;
mod noise;
mod reliability;
mod search_planner;
mod slurm_executor;
mod workflow;
mod workflow_attempts;
mod workflow_resume;
mod workspace;
