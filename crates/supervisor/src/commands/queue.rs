//! `supervisor queue`: list, bump and drop queued experiments — through `engine/control/` when
//! an engine runs, by an atomic checkpoint edit when none does. A dropped node is also marked
//! (`engine/nodes/<id>/dropped`) so a resume never re-derives it.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use autoresearch_adapters::model::HandPayload;
use autoresearch_adapters::workdir::Workdir;
use autoresearch_adapters::workflow::DROPPED_MARKER;
use autoresearch_engine::control::{self, ControlCommand};
use serde_json::Value;

/// One queued experiment.
#[derive(Debug, Clone, serde::Serialize)]
pub struct QueueEntry {
    /// Node id.
    pub id: String,
    /// Priority (lower runs first).
    pub priority: f64,
}

/// The queue in run order.
pub fn list(workdir: &Path) -> Result<Vec<QueueEntry>> {
    super::require_workdir(workdir)?;
    let engine = autoresearch_engine::paths::EnginePaths::new(workdir);
    if autoresearch_engine::lock::holder(workdir)?.is_some()
        && let Some(view) = autoresearch_engine::views::read_queue(workdir)?
    {
        return Ok(view
            .queued
            .into_iter()
            .map(|e| QueueEntry {
                id: e.id.into_owned(),
                priority: e.priority,
            })
            .collect());
    }
    let cp = autoresearch_engine::checkpoint::load(&engine.checkpoint())?;
    let mut queued: Vec<QueueEntry> = cp
        .map(|c| c.queued)
        .unwrap_or_default()
        .into_iter()
        .map(|s| QueueEntry {
            id: s.id,
            priority: s.priority,
        })
        .collect();
    queued.sort_by(|a, b| a.priority.total_cmp(&b.priority));
    Ok(queued)
}

/// The queue as text.
pub fn format_list(entries: &[QueueEntry]) -> String {
    if entries.is_empty() {
        return "the queue is empty\n".into();
    }
    let mut out = format!("{:>4}  {:>10}  {}\n", "#", "priority", "node");
    for (i, e) in entries.iter().enumerate() {
        out.push_str(&format!("{:>4}  {:>10}  {}\n", i + 1, e.priority, e.id));
    }
    out
}

fn apply(workdir: &Path, cmd: ControlCommand) -> Result<String> {
    super::require_workdir(workdir)?;
    if autoresearch_engine::lock::holder(workdir)?.is_some() {
        let ticket =
            control::submit(workdir, &cmd).context("writing the command to engine/control/")?;
        return match control::wait_result(workdir, &ticket, Duration::from_secs(15))? {
            Some(r) if r.ok => Ok(r.message),
            // Refused by the engine (not queued, already running, …): bad input, nothing changed.
            Some(r) => Err(crate::exit::Exit::bad_input(format!(
                "{} (see `supervisor queue {} list`)",
                r.message,
                workdir.display()
            ))),
            None => bail!(
                "the engine did not answer within 15 s; the command stays in engine/control/ and will be applied when it does"
            ),
        };
    }
    // Without a checkpoint there is no queue to edit; say so before `edit_offline` takes the
    // lock, which would create `engine/` in a workdir that has never run.
    require_checkpoint(workdir)?;
    match control::edit_offline(workdir, std::slice::from_ref(&cmd)) {
        Ok(mut msgs) => Ok(msgs.pop().unwrap_or_default()),
        // An engine started meanwhile: go through it.
        Err(autoresearch_engine::EngineError::Locked { .. }) => apply(workdir, cmd),
        Err(e) => Err(crate::exit::engine_error(e, workdir)),
    }
}

/// Sets a queued experiment's priority.
pub fn bump(workdir: &Path, id: &str, priority: f64) -> Result<String> {
    if !priority.is_finite() {
        bail!("priority must be a finite number, found {priority}");
    }
    apply(
        workdir,
        ControlCommand::Bump {
            id: id.to_string(),
            priority,
        },
    )
}

/// Removes a queued experiment (it will not be re-derived on resume).
pub fn drop(workdir: &Path, id: &str) -> Result<String> {
    let msg = apply(workdir, ControlCommand::Drop { id: id.to_string() })?;
    let node_dir = Workdir::new(workdir).node_dir(id);
    if node_dir.is_dir() {
        autoresearch_engine::atomic::write_atomic(
            &node_dir.join(DROPPED_MARKER),
            b"dropped from the queue\n",
        )
        .with_context(|| format!("marking {} as dropped", node_dir.display()))?;
    }
    Ok(msg)
}

/// An experiment queued by hand (`queue add`, `retry`, `ask`): a spec in the engine's queue
/// whose node the workflow makes when it first runs it (parameters checked against the search
/// space and completed from the baseline then).
#[derive(Debug, Clone)]
pub struct HandSpec<'a> {
    /// Who asked: the id's prefix (`add`, `retry`, `ask`).
    pub origin: &'a str,
    /// The experiment's name.
    pub name: &'a str,
    /// Its parameters (the others come from the baseline).
    pub params: &'a serde_json::Map<String, Value>,
    /// The node it follows from, if any.
    pub parent: Option<&'a str>,
    /// Why it is worth running.
    pub hypothesis: &'a str,
    /// A code change to apply (a retry repeats the failed node's).
    pub changes: Option<&'a str>,
    /// The failed node this retries (`supervisor retry`).
    pub retry_of: Option<&'a str>,
    /// Queue priority (lower runs first).
    pub priority: f64,
}

impl HandSpec<'_> {
    /// The engine spec. Its id is `<origin>-<UTC time>-<name>`, which never collides with the
    /// workflow's numbered ids.
    pub fn work_spec(&self) -> autoresearch_engine::spec::WorkSpec {
        let stamp = humantime::format_rfc3339_millis(std::time::SystemTime::now())
            .to_string()
            .replace(['-', ':', '.', 'Z'], "");
        let clean: String = self
            .name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .take(60)
            .collect();
        let payload = HandPayload {
            name: Some(self.name.to_string()),
            params: self.params.clone(),
            parent_id: self.parent.map(str::to_string),
            hypothesis: Some(self.hypothesis.to_string()),
            changes: self.changes.map(str::to_string),
            retry_of: self.retry_of.map(str::to_string),
        }
        .to_map();
        autoresearch_engine::spec::WorkSpec {
            id: format!("{}-{stamp}-{clean}", self.origin),
            priority: self.priority,
            kind: autoresearch_adapters::workflow::SPEC_KIND.into(),
            payload,
        }
    }
}

/// Queues a new parameter-only experiment for `ask` (see [`HandSpec`]; its id starts with
/// `ask-`): the engine's control `add` when an engine runs, a checkpoint edit when none does.
pub fn add(
    workdir: &Path,
    name: &str,
    params: &serde_json::Map<String, Value>,
    parent: Option<&str>,
    hypothesis: &str,
    priority: f64,
) -> Result<String> {
    if !priority.is_finite() {
        bail!("priority must be a finite number, found {priority}");
    }
    let spec = HandSpec {
        origin: "ask",
        name,
        params,
        parent,
        hypothesis,
        changes: None,
        retry_of: None,
        priority,
    }
    .work_spec();
    apply(workdir, ControlCommand::Add { spec })
}

/// Queues specs: through the engine's control inbox when one runs (all submitted, then each
/// answer awaited), else in one atomic checkpoint edit (all or nothing). Returns one message
/// per spec.
pub fn add_specs(
    workdir: &Path,
    specs: Vec<autoresearch_engine::spec::WorkSpec>,
) -> Result<Vec<String>> {
    super::require_workdir(workdir)?;
    let cmds: Vec<ControlCommand> = specs
        .into_iter()
        .map(|spec| ControlCommand::Add { spec })
        .collect();
    if cmds.len() == 1 || autoresearch_engine::lock::holder(workdir)?.is_none() {
        if let [cmd] = cmds.as_slice() {
            return Ok(vec![apply(workdir, cmd.clone())?]);
        }
        require_checkpoint(workdir)?;
        match control::edit_offline(workdir, &cmds) {
            Ok(msgs) => return Ok(msgs),
            Err(autoresearch_engine::EngineError::Locked { .. }) => {}
            Err(e) => return Err(crate::exit::engine_error(e, workdir)),
        }
    }
    let tickets = cmds
        .iter()
        .map(|cmd| control::submit(workdir, cmd))
        .collect::<std::io::Result<Vec<String>>>()
        .context("writing the commands to engine/control/")?;
    let mut out = Vec::new();
    for ticket in tickets {
        match control::wait_result(workdir, &ticket, Duration::from_secs(15))? {
            Some(r) if r.ok => out.push(r.message),
            Some(r) => out.push(format!("refused: {}", r.message)),
            None => bail!(
                "the engine did not answer within 15 s; the commands stay in engine/control/ and will be applied when it does"
            ),
        }
    }
    Ok(out)
}

/// Fails unless the workdir has a checkpoint (a queue to edit offline).
fn require_checkpoint(workdir: &Path) -> Result<()> {
    let checkpoint = autoresearch_engine::paths::EnginePaths::new(workdir).checkpoint();
    if !checkpoint.is_file() {
        return Err(crate::exit::Exit::bad_input(format!(
            "{} has no queue yet ({} does not exist): start the run first (`supervisor run {}`)",
            workdir.display(),
            checkpoint.display(),
            workdir.display()
        )));
    }
    Ok(())
}
