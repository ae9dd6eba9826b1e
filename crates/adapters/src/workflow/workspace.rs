//! Experiments in git worktrees (a run with a `workspace`; see `docs/agent.md`): **every**
//! experiment runs in its own worktree `engine/worktrees/<id>` at its own commit, recorded in
//! `engine/nodes/<id>/commit.json` ([`NodeCommit`]) and kept as `refs/autoresearch/<run>/<id>`.
//!
//! - `preparing`: a parameter-only experiment (no `changes`) gets a worktree at its parent's
//!   commit (the baseline and the seeds: `workspace.base`), its ref set to that commit, then its
//!   `commit.json`. An experiment with `changes` goes on to `applying`.
//! - `applying` ([`super::agent_phases`]): the agent changes a clean worktree at the parent's
//!   commit, the engine commits it and checks it against `workspace.protected`.
//! - `launching`: the worktree is made sure of (recreated at the recorded commit if a crash or a
//!   hand removed it) and the job runs in `job.cwd`'s folder inside it.
//! - After its analysis (or its failure) the node's worktree is removed; its ref stays. At start,
//!   the worktrees of nodes that finished while no engine ran are removed too.
//!
//! The parent's commit is the one in its `commit.json`. A parent without one (its change could
//! not be applied) or whose change touched a protected path is skipped: the experiment builds on
//! the nearest ancestor with usable code, else on `workspace.base`.
//!
//! Every step is idempotent (an existing worktree at the right commit is reused, `git
//! update-ref` to the same commit changes nothing), so a node resumed in `preparing` or
//! `launching` after a SIGKILL simply does it again.

use std::collections::HashSet;
use std::path::PathBuf;

use super::nodes::NodeError;
use super::stop::{Fail, Stop};
use super::{ExperimentWorkflow, now_millis};
use crate::model::{FailureKind, NodeCommit, NodeSpec, NodeStatus};
use crate::workspace::{Workspace, WorkspaceError};

/// The file of a node's commit record.
pub(crate) const COMMIT_FILE: &str = crate::model::NODE_COMMIT_FILE;

/// A workspace error in `phase`: the engine's own files failing is the environment's fault
/// (retried); anything else fails the experiment with `kind`.
pub(crate) fn ws_stop(e: WorkspaceError, kind: FailureKind, phase: NodeStatus) -> Stop {
    match e {
        WorkspaceError::Io { path, source } => Stop::Env(format!("{}: {source}", path.display())),
        other => Fail::new(kind, phase, format!("the experiment's worktree: {other}")).into(),
    }
}

impl ExperimentWorkflow {
    /// The run's workspace (opened at start), if it has one.
    pub(crate) fn workspace(&self) -> Option<&Workspace> {
        self.workspace.get()
    }

    /// Opens the workspace of a run that has one (at start, before any node runs), and removes
    /// the worktrees of nodes that finished while no engine ran.
    pub(crate) async fn open_workspace(&self) -> Result<(), String> {
        let Some(config) = &self.config.workspace else {
            return Ok(());
        };
        let ws = Workspace::open(&self.wd.root, config)
            .await
            .map_err(|e| format!("cannot open the workspace: {e}"))?;
        let top = std::fs::canonicalize(ws.repo()).unwrap_or(ws.repo().to_path_buf());
        let _ = self.repo_top.set(top);
        let _ = self.workspace.set(ws);
        self.remove_stale_worktrees().await;
        Ok(())
    }

    /// Removes the worktrees whose node is finished (or unknown): left by a crash between a
    /// node's end and the removal of its worktree.
    async fn remove_stale_worktrees(&self) {
        let Some(ws) = self.workspace() else { return };
        let Some(root) = ws.worktree_path("x").parent().map(PathBuf::from) else {
            return;
        };
        let mut ids: HashSet<String> = std::fs::read_dir(&root)
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        if let Ok(list) = ws.list_worktrees().await {
            ids.extend(
                list.iter()
                    .filter(|e| e.path.parent() == Some(root.as_path()))
                    .filter_map(|e| e.path.file_name())
                    .map(|n| n.to_string_lossy().into_owned()),
            );
        }
        for id in ids {
            let finished = self
                .nodes
                .get(&id)
                .is_none_or(|n| n.status.is_terminal() || n.status == NodeStatus::Planning);
            if finished && crate::workspace::worktree::is_worktree_id(&id) {
                tracing::info!(node = %id, "removing the worktree of a finished experiment");
                if let Err(e) = ws.remove_worktree(&id).await {
                    tracing::warn!(node = %id, "could not remove its worktree: {e}");
                }
            }
        }
    }

    /// `engine/nodes/<id>/commit.json`, if written.
    pub(crate) fn read_commit(&self, id: &str) -> Result<Option<NodeCommit>, NodeError> {
        self.nodes.read_file(id, COMMIT_FILE)
    }

    /// Writes `engine/nodes/<id>/commit.json`.
    pub(crate) fn write_commit(&self, id: &str, commit: &NodeCommit) -> Result<(), NodeError> {
        self.nodes.write_node_json(id, COMMIT_FILE, commit)
    }

    /// The commit an experiment builds on: its parent's (skipping ancestors without usable
    /// code), else `workspace.base`.
    pub(crate) fn parent_commit(&self, spec: &NodeSpec) -> Result<String, NodeError> {
        let mut seen = HashSet::new();
        let mut cur = spec.parent_id.clone();
        while let Some(p) = cur {
            if !seen.insert(p.clone()) {
                break;
            }
            if let Some(c) = self.read_commit(&p)?
                && c.violations.is_empty()
            {
                return Ok(c.commit);
            }
            tracing::info!(
                node = %spec.node_id,
                parent = %p,
                "the parent has no usable code (its change failed or touched a protected path): building on its ancestor"
            );
            cur = self.nodes.get(&p).and_then(|n| n.spec.parent_id);
        }
        Ok(self
            .config
            .workspace
            .as_ref()
            .and_then(|w| w.base.clone())
            .unwrap_or_else(|| "HEAD".into()))
    }

    /// `preparing`, in a run with a workspace: a parameter-only experiment gets its worktree at
    /// its parent's commit, its ref and its `commit.json`. Returns the next phase: `applying` for
    /// an experiment with `changes`, else `launching`.
    pub(crate) async fn prepare_code(&self, spec: &NodeSpec) -> Result<NodeStatus, Stop> {
        let Some(ws) = self.workspace() else {
            return Ok(NodeStatus::Launching);
        };
        if spec
            .changes
            .as_deref()
            .is_some_and(|c| !c.trim().is_empty())
        {
            return Ok(NodeStatus::Applying);
        }
        let id = spec.node_id.as_str();
        let phase = NodeStatus::Preparing;
        let parent = match self.read_commit(id)? {
            Some(c) => c.parent_commit,
            None => self.parent_commit(spec)?,
        };
        let fail = |e| ws_stop(e, FailureKind::Launch, phase);
        let commit = ws.resolve_commit(&parent).await.map_err(fail)?;
        ws.ensure_worktree(id, &commit, false).await.map_err(fail)?;
        ws.set_node_ref(id, &commit).await.map_err(fail)?;
        if self.read_commit(id)?.is_none() {
            self.write_commit(
                id,
                &NodeCommit {
                    commit: commit.clone(),
                    parent_commit: commit,
                    ref_name: ws.ref_name(id),
                    changed: Vec::new(),
                    violations: Vec::new(),
                    created_at: now_millis(),
                },
            )?;
        }
        Ok(NodeStatus::Launching)
    }

    /// Before `launching`: the node's worktree at its recorded commit (recreated if a crash or a
    /// hand removed it), with `job.cwd`'s folder in it.
    pub(crate) async fn ready_worktree(&self, spec: &NodeSpec) -> Result<(), Stop> {
        let Some(ws) = self.workspace() else {
            return Ok(());
        };
        let id = spec.node_id.as_str();
        let phase = NodeStatus::Launching;
        let Some(record) = self.read_commit(id)? else {
            return Err(Fail::new(
                FailureKind::Launch,
                phase,
                format!(
                    "engine/nodes/{id}/{COMMIT_FILE} is missing: the experiment's code is unknown"
                ),
            )
            .into());
        };
        ws.ensure_worktree(id, &record.commit, false)
            .await
            .map_err(|e| ws_stop(e, FailureKind::Launch, phase))?;
        let cwd = self.job_cwd(id);
        if !cwd.is_dir() {
            return Err(Fail::new(
                FailureKind::Launch,
                phase,
                format!(
                    "job.cwd {} has no folder in the experiment's worktree at commit {} ({}): \
                     the job must run in a folder git tracks",
                    self.config.job.cwd.display(),
                    &record.commit[..record.commit.len().min(12)],
                    cwd.display()
                ),
            )
            .into());
        }
        Ok(())
    }

    /// Where the job of node `id` runs: `job.cwd`, or its folder in the node's worktree.
    pub(crate) fn job_cwd(&self, id: &str) -> PathBuf {
        match (self.workspace(), self.repo_top.get()) {
            (Some(ws), Some(top)) => crate::workspace::settle::job_cwd_in(
                &ws.worktree_path(id),
                top,
                &self.config.job.cwd,
            ),
            _ => self.config.job.cwd.clone(),
        }
    }

    /// Removes a finished node's worktree (its ref stays); a failure is only logged (the next
    /// start removes it).
    pub(crate) async fn release_worktree(&self, id: &str) {
        let Some(ws) = self.workspace() else { return };
        if let Err(e) = ws.remove_worktree(id).await {
            tracing::warn!(node = id, "could not remove the experiment's worktree: {e}");
        }
    }
}
