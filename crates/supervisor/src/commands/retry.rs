//! `supervisor retry <workdir> ID… | --all-failed`: runs failed experiments again, as new
//! experiments.
//!
//! A retry is a new, explicit request of the user, recorded as such: a new node (id
//! `retry-<time>-<name>`) with the failed node's name, parameters and code change, its parent
//! the failed node, its hypothesis `retry of <id> …`. The failed node keeps its files and
//! stays failed, so "nothing runs twice" stays true of what the engine decides on its own, and
//! every run of the same parameters is a node of its own in the table. A node is retried once:
//! a failed retry is retried by its own id. Each retry counts against `max_experiments`. It
//! goes through the engine's control inbox when an engine runs, else a checkpoint edit; bad
//! input changes nothing.

use std::collections::HashMap;
use std::path::Path;

use anyhow::Result;
use autoresearch_adapters::config::{Config, canonical_params_key, shell_word};
use autoresearch_adapters::model::{Failure, HandPayload, NodeStatus, RunState};
use autoresearch_adapters::workdir::Workdir;
use autoresearch_adapters::workflow::nodes::{NodeInfo, NodeStore, read_json};

use super::queue::{HandSpec, add_specs};
use super::queue_add::DEFAULT_PRIORITY;
use crate::exit::Exit;

/// The failed nodes that already have a retry (a node or a queued spec), with its id.
fn retries(workdir: &Path, config: &Config, nodes: &[NodeInfo]) -> HashMap<String, String> {
    let key = |n: &NodeInfo| {
        (
            canonical_params_key(&config.complete_params(&n.spec.params)),
            n.spec.changes.clone(),
        )
    };
    let by_id: HashMap<&str, &NodeInfo> =
        nodes.iter().map(|n| (n.spec.node_id.as_str(), n)).collect();
    let mut out = HashMap::new();
    for n in nodes {
        if let Some(parent) = n.spec.parent_id.as_deref().and_then(|p| by_id.get(p))
            && parent.status == NodeStatus::Failed
            && key(parent) == key(n)
        {
            out.insert(parent.spec.node_id.clone(), n.spec.node_id.clone());
        }
    }
    let checkpoint = autoresearch_engine::paths::EnginePaths::new(workdir).checkpoint();
    if let Ok(Some(cp)) = autoresearch_engine::checkpoint::load(&checkpoint) {
        for spec in cp.queued.iter().chain(&cp.running) {
            if let Some(of) = HandPayload::from_map(&spec.payload)
                .ok()
                .and_then(|p| p.retry_of)
            {
                out.insert(of, spec.id.clone());
            }
        }
    }
    out
}

/// Queues a retry of each of `ids` (or of every failed node not yet retried); returns what to
/// tell the user.
pub fn retry(workdir: &Path, ids: &[String], all_failed: bool) -> Result<String> {
    super::require_workdir(workdir).map_err(Exit::bad_input_err)?;
    let wd = Workdir::new(workdir);
    let config = Config::load(&wd.config()).map_err(Exit::bad_input_err)?;
    let store = NodeStore::load(&wd).map_err(Exit::bad_input_err)?;
    let nodes = store.all();
    let done = retries(workdir, &config, &nodes);
    let mut targets: Vec<NodeInfo> = Vec::new();
    if all_failed {
        targets.extend(
            nodes
                .iter()
                .filter(|n| n.status == NodeStatus::Failed)
                .filter(|n| !done.contains_key(&n.spec.node_id))
                .cloned(),
        );
        if targets.is_empty() {
            return Ok(format!(
                "nothing to retry: no failed experiment in {} that is not retried already",
                workdir.display()
            ));
        }
    }
    for id in ids {
        let Some(node) = store.get(id) else {
            return Err(Exit::bad_input(format!(
                "{id}: no such experiment in {} (`supervisor status {}` and master_table.tsv \
                 list them)",
                workdir.display(),
                workdir.display()
            )));
        };
        if node.status != NodeStatus::Failed {
            return Err(Exit::bad_input(format!(
                "{id} is {}, not failed: only failed experiments are retried (`supervisor queue \
                 {} add NAME param=value …` runs new parameters)",
                node.status,
                workdir.display()
            )));
        }
        if let Some(by) = done.get(id) {
            return Err(Exit::bad_input(format!(
                "{id} is retried already by {by}: retry that one if it failed"
            )));
        }
        if !targets.iter().any(|t| t.spec.node_id == *id) {
            targets.push(node);
        }
    }
    let mut specs = Vec::new();
    let mut hypotheses = Vec::new();
    for node in &targets {
        let id = &node.spec.node_id;
        let why = read_json::<Failure>(&wd.node_failure(id))
            .ok()
            .flatten()
            .map(|f| {
                let first: String = f
                    .message
                    .lines()
                    .next()
                    .unwrap_or("")
                    .chars()
                    .take(120)
                    .collect();
                format!("{}: {first}", f.kind.as_str())
            })
            .unwrap_or_else(|| "no failure.json".into());
        hypotheses.push(format!(
            "retry of {id} (asked by hand; it failed with {why})"
        ));
    }
    for (node, hypothesis) in targets.iter().zip(&hypotheses) {
        let spec = HandSpec {
            origin: "retry",
            name: &node.spec.name,
            params: &node.spec.params,
            parent: Some(&node.spec.node_id),
            hypothesis,
            changes: node.spec.changes.as_deref(),
            retry_of: Some(&node.spec.node_id),
            priority: DEFAULT_PRIORITY,
        }
        .work_spec();
        specs.push(spec);
    }
    let ids: Vec<String> = specs.iter().map(|s| s.id.clone()).collect();
    let messages = add_specs(workdir, specs)?;
    let mut out = String::new();
    for ((node, id), message) in targets.iter().zip(&ids).zip(&messages) {
        if message.starts_with("refused") {
            out.push_str(&format!("{}: {message}\n", node.spec.node_id));
        } else {
            out.push_str(&format!(
                "{} → {id}: queued as a new experiment with its parameters{} ({} stays failed)\n",
                node.spec.node_id,
                if node.spec.changes.is_some() {
                    " and code change"
                } else {
                    ""
                },
                node.spec.node_id
            ));
        }
    }
    out.push_str(&budget_note(workdir, &config));
    out.push('\n');
    Ok(out)
}

/// How the experiments queued so far fit `max_experiments`, and what runs them.
pub fn budget_note(workdir: &Path, config: &Config) -> String {
    let wd_word = shell_word(&workdir.display().to_string());
    let started = read_json::<RunState>(&Workdir::new(workdir).state())
        .ok()
        .flatten()
        .map(|s| s.experiments_started)
        .unwrap_or(0);
    let running = autoresearch_engine::lock::holder(workdir)
        .ok()
        .flatten()
        .is_some();
    let queued = if running {
        autoresearch_engine::state::read_state(workdir)
            .ok()
            .flatten()
            .map(|s| s.counts.queued)
            .unwrap_or(0)
    } else {
        autoresearch_engine::checkpoint::load(
            &autoresearch_engine::paths::EnginePaths::new(workdir).checkpoint(),
        )
        .ok()
        .flatten()
        .map(|c| c.queued.len() as u64)
        .unwrap_or(0)
    };
    let max = config.limits.max_experiments;
    if started + queued > max {
        return format!(
            "max_experiments is {max} ({started} started, {queued} queued): not all of the queue \
             can run; raise it with `supervisor run {wd_word} --max-experiments {}`",
            started + queued
        );
    }
    if running {
        format!(
            "the running engine starts it when a slot is free (it counts against \
             max_experiments: {started} of {max} started, {queued} queued)"
        )
    } else {
        format!(
            "`supervisor run {wd_word}` runs it (it counts against max_experiments: {started} of \
             {max} started, {queued} queued)"
        )
    }
}
