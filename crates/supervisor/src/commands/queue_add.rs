//! `supervisor queue <workdir> add NAME param=value …`: an experiment added by hand, live (the
//! engine's control inbox) or offline (a checkpoint edit). Each value is read by its
//! parameter's own parser (the one `--baseline` uses) and the set is checked against the
//! search space; a set equal to an existing experiment (or one already queued by hand) is
//! refused, so nothing runs twice. Bad input changes nothing.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result};
use autoresearch_adapters::config::{Config, ConfigError, canonical_params_key};
use autoresearch_adapters::model::HandPayload;
use autoresearch_adapters::workdir::Workdir;
use autoresearch_adapters::workflow::nodes::NodeStore;
use serde_json::{Map, Value};

use super::queue::{HandSpec, add_specs};
use crate::exit::Exit;

/// Default priority of an experiment added by hand: after the baseline (-1000), before the
/// planner's proposals (0).
pub const DEFAULT_PRIORITY: f64 = -100.0;

/// What `queue add` is given.
#[derive(Debug, Clone)]
pub struct AddRequest {
    /// The experiment's name.
    pub name: String,
    /// `param=value` words.
    pub assignments: Vec<String>,
    /// Queue priority (default [`DEFAULT_PRIORITY`]).
    pub priority: Option<f64>,
    /// The node it follows from.
    pub parent: Option<String>,
    /// Why it is worth running.
    pub hypothesis: Option<String>,
}

/// Parses `param=value` words with each parameter's value parser and checks the set against
/// the search space. Errors name the word and say what was expected.
pub fn parse_assignments(config: &Config, words: &[String]) -> Result<Map<String, Value>> {
    let mut params = Map::new();
    for word in words {
        let Some((name, text)) = word.split_once('=') else {
            return Err(Exit::bad_input(format!(
                "{word:?}: expected PARAM=VALUE (for example {}=…)",
                config.search_space.names().next().unwrap_or("workers")
            )));
        };
        let name = name.trim();
        let Some(param) = config.search_space.get(name) else {
            // The search space's own message (with its "did you mean").
            let mut unknown = Map::new();
            unknown.insert(name.to_string(), Value::Null);
            let why = config
                .check_params(&unknown)
                .err()
                .map(|e| match e {
                    ConfigError::Param { message, .. } => message,
                    other => other.to_string(),
                })
                .unwrap_or_else(|| format!("unknown parameter `{name}`"));
            return Err(Exit::bad_input(format!("{word:?}: {why}")));
        };
        if params.contains_key(name) {
            return Err(Exit::bad_input(format!(
                "{word:?}: `{name}` is given twice; give each parameter once"
            )));
        }
        let value = param
            .parse_value(text)
            .map_err(|e| Exit::bad_input(format!("{word:?}: {e}")))?;
        params.insert(name.to_string(), value);
    }
    config.check_params(&params).map_err(Exit::bad_input_err)?;
    Ok(params)
}

/// The full parameter sets of the run's experiments and of the specs queued by hand that have
/// no node yet, by canonical key, with the id that has it.
pub fn known_sets(workdir: &Path, config: &Config) -> Result<HashMap<String, String>> {
    let key = |p: &Map<String, Value>| canonical_params_key(&config.complete_params(p));
    let nodes = NodeStore::load(&Workdir::new(workdir))
        .with_context(|| format!("reading the experiments of {}", workdir.display()))?;
    let mut out: HashMap<String, String> = HashMap::new();
    let wd = Workdir::new(workdir);
    for n in nodes.all() {
        let dropped = wd
            .node_dir(&n.spec.node_id)
            .join(autoresearch_adapters::workflow::DROPPED_MARKER)
            .exists();
        if !dropped && n.spec.changes.as_deref().is_none_or(str::is_empty) {
            out.entry(key(&n.spec.params))
                .or_insert_with(|| format!("{} ({})", n.spec.node_id, n.status));
        }
    }
    let checkpoint = autoresearch_engine::paths::EnginePaths::new(workdir).checkpoint();
    if let Ok(Some(cp)) = autoresearch_engine::checkpoint::load(&checkpoint) {
        for spec in cp.queued.iter().chain(&cp.running) {
            if nodes.get(&spec.id).is_some() || spec.payload.contains_key("changes") {
                continue;
            }
            if let Ok(payload) = HandPayload::from_map(&spec.payload) {
                out.entry(key(&payload.params))
                    .or_insert_with(|| format!("{} (queued by hand)", spec.id));
            }
        }
    }
    Ok(out)
}

/// Queues the experiment; returns what to tell the user.
pub fn add(workdir: &Path, req: &AddRequest) -> Result<String> {
    super::require_workdir(workdir).map_err(Exit::bad_input_err)?;
    let config = Config::load(&Workdir::new(workdir).config()).map_err(Exit::bad_input_err)?;
    let name = req.name.trim();
    if name.is_empty() || name.contains('=') {
        return Err(Exit::bad_input(format!(
            "{:?}: the first word is the experiment's name, then PARAM=VALUE words (for example \
             `supervisor queue {} add bigger_blocks block_kb=256`)",
            req.name,
            workdir.display()
        )));
    }
    let priority = req.priority.unwrap_or(DEFAULT_PRIORITY);
    if !priority.is_finite() {
        return Err(Exit::bad_input(format!(
            "--priority: expected a finite number (lower runs first), found {priority}"
        )));
    }
    let params = parse_assignments(&config, &req.assignments)?;
    if let Some(parent) = &req.parent {
        let wd = Workdir::new(workdir);
        if !autoresearch_adapters::workdir::is_node_id(parent) || !wd.node_spec(parent).is_file() {
            return Err(Exit::bad_input(format!(
                "--parent {parent}: no such experiment in {} (see `supervisor status` or the \
                 table)",
                workdir.display()
            )));
        }
    }
    let key = canonical_params_key(&config.complete_params(&params));
    if let Some(existing) = known_sets(workdir, &config)?.get(&key) {
        return Err(Exit::bad_input(format!(
            "these parameters are those of {existing}: an experiment runs once; a failed one is \
             re-run with `supervisor retry {} ID`",
            workdir.display()
        )));
    }
    let hypothesis = req
        .hypothesis
        .clone()
        .unwrap_or_else(|| "added by hand".to_string());
    let spec = HandSpec {
        origin: "add",
        name,
        params: &params,
        parent: req.parent.as_deref(),
        hypothesis: &hypothesis,
        changes: None,
        retry_of: None,
        priority,
    }
    .work_spec();
    let id = spec.id.clone();
    let mut out = add_specs(workdir, vec![spec])?.join("\n");
    out.push_str(&format!(
        "\n{id}: {}",
        super::retry::budget_note(workdir, &config)
    ));
    Ok(out)
}
