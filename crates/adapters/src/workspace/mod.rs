//! The code workspace of the coding-agent planner (see `docs/agent.md`): one git worktree per
//! experiment under `<workdir>/engine/worktrees/<id>`, made by shelling out to `git`.
//!
//! - [`worktree`]: `Workspace` (open, create/reuse/clean up worktrees, remove them).
//! - [`change`]: changed paths, the protected-path check, the engine's commit with trailers and
//!   the ref `refs/autoresearch/<run>/<id>`, idempotent apply, diffs.
//! - [`include`]: ignored files linked or copied into each worktree.
//! - [`protected`]: the protected-path globs.
//! - [`node_diff`]: a node's commits and its diffs against its parent and the baseline, for
//!   views (`supervisor show`, `report.md`, the dashboard).
//! - [`lock`]: serializing `git worktree add`/`remove`/`prune` (in-process mutex + `flock`).
//! - [`run_id`]: the stable run id (`engine/run_id`).
//! - [`settle`]: the `workspace` section made concrete when a run's configuration is resolved.
//! - [`git`]: running git with a hardened environment.

pub mod change;
pub mod git;
pub mod include;
pub mod lock;
pub mod node_diff;
pub mod protected;
pub mod run_id;
pub mod settle;
pub mod worktree;

pub use change::{AppliedChange, ApplyState, CommitInfo};
pub use protected::ProtectedPaths;
pub use worktree::{Workspace, WorkspaceError, WorktreeEntry};
