//! `autoresearch-engine`: a generic, domain-free asynchronous work engine.
//!
//! The engine runs [`WorkSpec`]s supplied by a [`Workflow`] from a priority queue with bounded
//! concurrency, persists the queue to `engine/checkpoint.json` (atomically, coalesced), survives
//! interruption and crashes, and resumes where it left off. It knows nothing about what the work
//! is: experiments, jobs and metrics live in the workflow that plugs into it.
//!
//! Files it owns under `<workdir>/engine/`: `checkpoint.json`, `engine_state.json`, `queue.json`,
//! `active.json`, `events.jsonl`, `control/`, `lock`. See `docs/workdir-format.md`.

pub mod atomic;
pub mod checkpoint;
pub mod control;
mod engine;
pub mod error;
pub mod events;
pub mod lock;
pub mod nofollow;
pub mod paths;
mod queue;
pub mod spec;
pub mod state;
mod util;
pub mod workflow;
mod writer;

pub use engine::{AsyncWorkEngine, EngineConfig, RunReport};
pub use error::EngineError;
pub use spec::{SpecError, WorkSpec};
pub use state::EngineStatus;
pub use tokio_util::sync::CancellationToken;
pub use workflow::{Admission, Decision, Outcome, RunContext, StartInfo, WorkError, Workflow};
