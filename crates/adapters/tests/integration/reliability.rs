//! The reliability suite: the engine's promises under attack, with real jobs, real signals,
//! real files and a real full disk. Every case is listed with what it injects and what was
//! observed in `docs/reliability.md`.
//!
//! - `planning`: jobs that finish together (a shared barrier) never make a parameter set run
//!   twice, in a plain run and after resumes where every running job ended while no engine
//!   was alive.
//! - `torture`: SIGKILLs at random moments (30 by default; `AUTORESEARCH_TORTURE_KILLS=300` for
//!   the long mode), then: no finished job lost, none launched twice, no parameter set run
//!   twice, one recorded row per node.
//! - `repeats`: SIGKILLs at random moments in a run with `repeats: 3` and `confirm: always`:
//!   every run of every node launched once, every aggregate recomputed from the raw values.
//! - `phases`: SIGKILL and SIGTERM delivered while a node is in each lifecycle phase.
//! - `enospc`: the workdir on a small tmpfs filled for a few seconds (needs root, as in CI).
//! - `links`: symbolic links planted on the workflow's and the engine's paths.
//! - `hostile`: hostile checkpoint edits and parameter values in every quoting context.

mod harness;

mod enospc;
mod hostile;
mod links;
mod phases;
mod planning;
mod repeats;
mod torture;
