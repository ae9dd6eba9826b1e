//! The engine's integration tests, one binary: bad checkpoints, the engine in process (outcomes,
//! order, resume, live edits, commands, retries on paused time), and engines in child processes
//! (signals, locks, SIGKILL).

mod checkpoint;
mod engine;
mod process;
mod retry;
mod support;
