//! The supervisor crate's integration tests, one binary (one link, one place to look):
//!
//! Modules: `agent_commands`, `agent_demo`, `agent_session`, `cli`, `export`, `interactive`,
//! `newcomer`, `render`, `render_noise`, `serve_browser`, `serve_http`, `slurm_end_to_end`; each
//! module's comment says what it covers. Run one with `cargo test -p autoresearch-supervisor
//! --test integration <module>::`. Shared helpers: `support`, `pty`, `serve_support`, `standin`.

mod pty;
mod serve_support;
mod standin;
mod support;

mod agent_commands;
mod agent_demo;
mod agent_session;
mod cli;
mod export;
mod interactive;
mod newcomer;
mod render;
mod render_noise;
mod serve_browser;
mod serve_http;
mod slurm_end_to_end;
