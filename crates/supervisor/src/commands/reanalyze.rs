//! `supervisor reanalyze <workdir> [--metric NAME]`: re-reads every finished experiment's
//! metrics from its run files (optionally with another `objective.metric`, the only field it
//! changes), judges improvements again in completion order, rebuilds `state.json`, and
//! re-renders the views. Refused while an engine runs. See
//! `autoresearch_adapters::reanalyze` for what changes and how a crash is survived.

use std::path::Path;

use anyhow::Result;
use autoresearch_adapters::config::{is_metric_name, shell_word};
use autoresearch_adapters::reanalyze::{self, ReanalyzeError, ReanalyzeReport};
use autoresearch_engine::EngineError;

use crate::exit::Exit;

/// Runs the reanalysis and renders the views; returns what to tell the user.
pub fn run(workdir: &Path, metric: Option<&str>) -> Result<String> {
    super::require_workdir(workdir).map_err(Exit::bad_input_err)?;
    let wd = shell_word(&workdir.display().to_string());
    if let Some(m) = metric
        && !is_metric_name(m)
    {
        return Err(Exit::bad_input(format!(
            "--metric {m:?}: expected a metric name made of letters, digits and _ . : / - (as \
             the job prints it: `METRIC <name>=<number>`); nothing was changed"
        )));
    }
    let report = reanalyze::reanalyze(workdir, metric).map_err(|e| match e {
        ReanalyzeError::Engine(EngineError::Locked { pid, .. }) => Exit {
            code: 3,
            message: format!(
                "an engine is running on {}{}: reanalyze rewrites its results, so stop it first \
                 (`supervisor stop {wd}`), then `supervisor reanalyze {wd}`",
                workdir.display(),
                pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
            ),
        }
        .into(),
        ReanalyzeError::Config(e) => Exit::bad_input(format!(
            "{e}; nothing was changed (objective.metric is a name the job prints as `METRIC \
             <name>=<number>`)"
        )),
        other => anyhow::Error::from(other),
    })?;
    let mut out = format_report(&report);
    match crate::render::render_all(workdir) {
        Ok(r) => {
            for w in &r.warnings {
                out.push_str(&format!("warning: {w}\n"));
            }
            out.push_str(&format!("views re-rendered ({} nodes)\n", r.nodes));
        }
        Err(e) => out.push_str(&format!(
            "warning: the views could not be rendered ({e:#}); `supervisor render {wd}` retries\n"
        )),
    }
    out.push_str(&format!("`supervisor run {wd}` goes on from here\n"));
    Ok(out)
}

/// The report as text: the metric change, each node that changed, the new best and counts.
pub fn format_report(r: &ReanalyzeReport) -> String {
    let mut out = String::new();
    if let Some(m) = &r.finished_pending {
        out.push_str(&format!(
            "finished a reanalyze (metric `{m}`) that was cut short\n"
        ));
    }
    let (before, after) = &r.metric;
    if before == after {
        out.push_str(&format!("objective.metric: `{after}` (unchanged)\n"));
    } else {
        out.push_str(&format!(
            "objective.metric: `{before}` → `{after}` (config.json)\n"
        ));
    }
    out.push_str(&format!(
        "{} finished experiments re-read, {} changed\n",
        r.nodes,
        r.changed.len()
    ));
    for c in &r.changed {
        let star = if c.improved.1 { "  ★ improved" } else { "" };
        match c.primary.1 {
            Some(v) => out.push_str(&format!(
                "  {}: {} → {}, {after} = {v}{star}\n",
                c.id, c.status.0, c.status.1
            )),
            None => out.push_str(&format!(
                "  {}: {} → failed (it did not report `{after}`)\n",
                c.id, c.status.0
            )),
        }
    }
    if r.nodes > 0 && r.best.is_none() {
        out.push_str(&format!(
            "warning: no finished experiment reports `{after}`: check the name against the \
             METRIC lines in runs/<id>/stdout.log\n"
        ));
    }
    match &r.best {
        Some((id, v)) => out.push_str(&format!("best: {id} {after} = {v}\n")),
        None => out.push_str("best: none\n"),
    }
    out.push_str(&format!(
        "completed {}, failed {}, plateau {}\n",
        r.counts.0, r.counts.1, r.plateau
    ));
    out
}
