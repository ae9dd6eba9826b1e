//! What a start or a resume finds and queues: the baseline and seeds of a fresh run, the nodes
//! the checkpoint misses (created after it, mid-flight, owed a planning round, orphaned by a
//! round that died), and the tidying of what a crash left half done.

use std::collections::HashSet;

use autoresearch_engine::{StartInfo, WorkError, WorkSpec};

use super::{BASELINE_PRIORITY, ExperimentWorkflow, RECOVER_PRIORITY};
use crate::model::NodeStatus;

impl ExperimentWorkflow {
    /// What the engine asks at start: counts results a crash left unrecorded, tidies what a
    /// crash left half done, and returns the baseline and seeds of a fresh run or the nodes
    /// the checkpoint misses on a resume.
    pub(crate) fn start_specs(&self, start: &StartInfo) -> Result<Vec<WorkSpec>, WorkError> {
        // Under the engine's lock now: count results a crash left unrecorded.
        let fixed = self
            .ledger
            .reconcile(&self.nodes, &self.config)
            .map_err(|e| WorkError::Retry(e.to_string()))?;
        if !fixed.is_empty() {
            tracing::warn!(nodes = ?fixed, "recorded results that a crash left unrecorded");
        }
        // A new engine: why the previous one stopped is no longer the run's state.
        let state = self.ledger.snapshot();
        if state.stop_reason.is_some() || state.fail_fast.is_some() {
            self.ledger
                .update(|s| {
                    s.stop_reason = None;
                    s.fail_fast = None;
                })
                .map_err(|e| WorkError::Retry(e.to_string()))?;
        }
        let unborn = self.nodes.remove_unborn();
        if !unborn.is_empty() {
            tracing::info!(folders = ?unborn, "removed node folders whose creation was cut short");
        }
        self.remove_stale_temps(start);
        let fresh = !start.resumed && self.nodes.all().is_empty();
        if fresh {
            let specs = self.fresh_specs()?;
            self.hand(&specs);
            return Ok(specs);
        }
        self.hand(&self.handed_at_start(start));
        if !start.resumed {
            // No checkpoint yet: the first engine may have died while creating the baseline
            // and seeds. The ones created now are queued, so `rederive` picks them up.
            let created = self.fresh_specs()?;
            if !created.is_empty() {
                tracing::warn!(
                    count = created.len(),
                    "created the seeds a crash left uncreated"
                );
            }
        }
        let mut specs = self.rederive(start);
        if specs.is_empty() && start.queued.is_empty() && start.running.is_empty() {
            specs.extend(self.replan_on_resume()?);
        }
        if !specs.is_empty() {
            tracing::info!(
                count = specs.len(),
                "re-derived nodes missing from the checkpoint"
            );
        }
        self.hand(&specs);
        Ok(specs)
    }

    /// Marks specs as handed to the engine's queue.
    fn hand(&self, specs: &[WorkSpec]) {
        let mut handed = self.handed.lock().unwrap_or_else(|p| p.into_inner());
        handed.extend(specs.iter().map(|s| s.id.clone()));
    }

    /// Baseline and seeds of a fresh run. An engine killed while creating them (before its
    /// first checkpoint) leaves only the first few on disk: those are kept and the missing
    /// ones created, so no seed is lost. Returns the specs of the nodes created.
    fn fresh_specs(&self) -> Result<Vec<WorkSpec>, WorkError> {
        let roots: Vec<String> = self
            .nodes
            .all()
            .into_iter()
            .filter(|n| n.spec.parent_id.is_none())
            .map(|n| n.spec.node_id)
            .collect();
        let expected = 1 + self.config.seeds.len();
        let mut out = Vec::new();
        let base_id = match roots.first() {
            Some(id) => id.clone(),
            None => {
                let base = self.new_node(
                    "baseline",
                    None,
                    "the configuration as given".into(),
                    self.config.baseline.clone(),
                    None,
                    BASELINE_PRIORITY,
                )?;
                out.push(Self::work_spec(&base));
                base.node_id
            }
        };
        if self.ledger.snapshot().baseline_node.is_none() {
            self.ledger
                .update(|s| s.baseline_node = Some(base_id))
                .map_err(|e| WorkError::Retry(e.to_string()))?;
        }
        for seed in self
            .config
            .seeds
            .iter()
            .skip(roots.len().clamp(1, expected) - 1)
        {
            let spec = self.new_node(
                &seed.name,
                None,
                seed.hypothesis
                    .clone()
                    .unwrap_or_else(|| format!("seed {}", seed.name)),
                seed.params.clone(),
                None,
                seed.priority,
            )?;
            out.push(Self::work_spec(&spec));
        }
        self.nodes
            .write_tree()
            .map_err(|e| WorkError::Retry(e.to_string()))?;
        Ok(out)
    }

    /// Nodes the checkpoint does not know but the node files say should run:
    /// - queued nodes created after the checkpoint was written (or all, without a checkpoint);
    /// - queued nodes a planning round created but no node claims (the round's leader died
    ///   before recording them in its `result.json`);
    /// - nodes found mid-flight, and finished nodes still awaiting a planning round (they go
    ///   first, and one of them leads the owed round).
    ///
    /// A queued node that the checkpoint no longer lists, that is older than it and claimed by
    /// a node that is not resuming, was removed by hand: it stays out.
    fn rederive(&self, start: &StartInfo) -> Vec<WorkSpec> {
        let known: HashSet<&str> = start
            .queued
            .iter()
            .chain(start.running.iter())
            .map(String::as_str)
            .collect();
        let all = self.nodes.all();
        let claimed: HashSet<&str> = all
            .iter()
            .flat_map(|n| n.children.iter().map(String::as_str))
            .collect();
        let awaiting: HashSet<String> = self.ledger.awaiting().into_iter().collect();
        let since = start.checkpoint_updated_at.as_deref();
        let mut out = Vec::new();
        for node in &all {
            let id = node.spec.node_id.as_str();
            if known.contains(id) || self.is_dropped(id) {
                continue;
            }
            let newer = match since {
                None => true,
                Some(t) => node.spec.created_at.as_str() > t,
            };
            let orphan = node.spec.parent_id.is_some() && !claimed.contains(id);
            if node.status == NodeStatus::Queued && (newer || orphan) {
                out.push(Self::work_spec(&node.spec));
            } else if node.status.is_active() || awaiting.contains(id) {
                let mut spec = Self::work_spec(&node.spec);
                spec.priority = RECOVER_PRIORITY;
                out.push(spec);
            }
        }
        out
    }

    /// A resume with nothing to run: if the planner may still propose (budget left), the best
    /// node (or the one recorded last) is owed a round and started again to lead it.
    ///
    /// This is what makes a stopped run extendable: raising `--max-experiments`, `--patience`
    /// or `--time-budget-s` on resume gives the planner a fresh round, and a planner that said
    /// "stop" is asked again (it may say it again: that is then the stop reason). When a limit
    /// is still reached, no round is owed and that limit is the stop reason.
    fn replan_on_resume(&self) -> Result<Option<WorkSpec>, WorkError> {
        if self.planner.is_none() {
            return Ok(None);
        }
        if let Some(reason) = self.limit_reached() {
            tracing::info!("nothing left to run and {reason}: the planner is not asked");
            self.set_stop_reason(reason);
            return Ok(None);
        }
        let from = self
            .ledger
            .snapshot()
            .best_node
            .or_else(|| self.ledger.last_recorded());
        let Some(node) = from.and_then(|id| self.nodes.get(&id)) else {
            return Ok(None);
        };
        self.ledger
            .owe_round(&node.spec.node_id)
            .map_err(|e| WorkError::Retry(e.to_string()))?;
        tracing::info!(node = %node.spec.node_id, "nothing left to run: asking the planner for more");
        let mut spec = Self::work_spec(&node.spec);
        spec.priority = RECOVER_PRIORITY;
        Ok(Some(spec))
    }

    /// Deletes the temp files a process that died mid-write left in the workflow's folders:
    /// the workdir root (`state.json`), `engine/` (`tree.json`), and the node and run folders
    /// of every node that may have been written to since it last finished (not finished,
    /// awaiting a round, or resuming).
    fn remove_stale_temps(&self, start: &StartInfo) {
        use autoresearch_engine::atomic::remove_stale_temps;
        let awaiting: HashSet<String> = self.ledger.awaiting().into_iter().collect();
        let resuming: HashSet<&str> = start.running.iter().map(String::as_str).collect();
        let mut dirs = vec![self.wd.root.clone(), self.wd.engine_dir()];
        for node in self.nodes.all() {
            let id = node.spec.node_id.as_str();
            if !node.status.is_terminal() || awaiting.contains(id) || resuming.contains(id) {
                dirs.push(self.wd.node_dir(id));
                dirs.extend(self.run_dirs(id));
            }
        }
        let mut removed = 0;
        for dir in dirs {
            if self.wd.check(&dir).is_ok() {
                removed += remove_stale_temps(&dir).unwrap_or(0);
            }
        }
        if removed > 0 {
            tracing::info!(
                removed,
                "removed temp files left by a process that died mid-write"
            );
        }
    }

    /// The queued nodes the engine holds at start: the checkpoint's queue and the children
    /// that resuming nodes will hand over again.
    fn handed_at_start(&self, start: &StartInfo) -> Vec<WorkSpec> {
        let mut specs: Vec<WorkSpec> = start
            .queued
            .iter()
            .filter_map(|id| self.nodes.get(id))
            .map(|n| Self::work_spec(&n.spec))
            .collect();
        for id in &start.running {
            specs.extend(self.queued_children(id));
        }
        specs
    }
}
