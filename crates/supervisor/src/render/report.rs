//! `report.md`: the final report. Best configuration and the exact command that reproduces it,
//! the path from the baseline to the best, the table of all nodes, failures by kind.

use std::fmt::Write as _;

use autoresearch_adapters::model::NodeStatus;

use super::code::{NodeDiffs, write_markdown};
use super::format::fmt_spread;
use super::importance::write_importance;
use super::load::RunView;
use super::summary::{
    best_line, confidence_line, elide_chars, improved_cell, md_cell, md_code, noise_floor_line,
    value_cells, write_failures,
};
use super::{fmt_secs, fmt_value};

use autoresearch_adapters::config::shell_word as quoted;

/// The shell command that reproduces node `i`: `cd <job.cwd> && [env K=V …] <spec.command>`.
pub fn reproduce_command(view: &RunView, i: usize) -> Option<String> {
    let spec = view.nodes[i].spec.as_ref()?;
    let mut cmd = String::new();
    let job = view.config.as_ref().map(|c| &c.job);
    if let Some(cwd) = job
        .map(|j| j.cwd.to_string_lossy())
        .filter(|c| !c.is_empty())
    {
        let _ = write!(cmd, "cd {} && ", quoted(&cwd));
    }
    if let Some(env) = job.map(|j| &j.env).filter(|e| !e.is_empty()) {
        cmd.push_str("env");
        for (k, v) in env {
            let _ = write!(cmd, " {}", quoted(&format!("{k}={v}")));
        }
        cmd.push(' ');
    }
    cmd.push_str(&spec.command);
    Some(cmd)
}

/// Renders `report.md`; `best_code` is the best node's code change (see [`super::code`]), in a
/// run with a `workspace`.
pub fn render_report_md(view: &RunView, best_code: Option<&NodeDiffs>) -> String {
    let mut out = String::with_capacity(4096 + 200 * view.nodes.len());
    let name = view
        .root
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| view.root.display().to_string());
    let c = view.counts();
    let _ = writeln!(out, "# autoresearch report: {}\n", md_cell(&name));
    let _ = writeln!(
        out,
        "_Rendered {} from `{}`. Objective: {} {}. {} nodes: {} completed ({} improved), {} failed, {} running, {} queued. Engine: {}._\n",
        humantime::format_rfc3339_seconds(view.loaded_at),
        view.root.display(),
        view.direction.as_str(),
        md_code(&view.metric),
        c.total,
        c.completed,
        c.improved,
        c.failed,
        c.running,
        c.queued,
        view.engine_status()
    );
    if let Some(reason) = view.state.as_ref().and_then(|s| s.stop_reason.as_deref()) {
        let _ = writeln!(out, "Stopped because: {}\n", md_cell(reason));
    }

    out.push_str("## Best configuration\n\n");
    match (view.best, best_line(view)) {
        (Some(bi), Some(line)) => {
            let n = &view.nodes[bi];
            let _ = writeln!(out, "- Node: {line}");
            if let Some(c) = confidence_line(view) {
                let _ = writeln!(out, "- Confidence: {c}");
            }
            let _ = writeln!(out, "- Noise floor: {}", noise_floor_line(view));
            if let Some(spec) = &n.spec {
                let _ = writeln!(
                    out,
                    "- Params: {}",
                    md_code(&serde_json::to_string(&spec.params).unwrap_or_default())
                );
                if !spec.hypothesis.trim().is_empty() {
                    let _ = writeln!(out, "- Hypothesis: {}", md_cell(&spec.hypothesis));
                }
            }
            if let Some(r) = &n.result {
                let others: Vec<String> = r
                    .metrics
                    .iter()
                    .filter(|(k, _)| **k != view.metric)
                    .map(|(k, v)| format!("{k}={}", fmt_value(*v)))
                    .collect();
                if !others.is_empty() {
                    let _ = writeln!(out, "- Other metrics: {}", others.join(", "));
                }
                let _ = writeln!(out, "- Duration: {}", fmt_secs(r.duration_s));
            }
            out.push_str("\n### Reproduce\n\n");
            match reproduce_command(view, bi) {
                Some(cmd) => {
                    out.push_str("```sh\n");
                    out.push_str(&cmd);
                    out.push_str("\n```\n\n");
                    let mut notes = Vec::new();
                    if view
                        .config
                        .as_ref()
                        .is_some_and(|c| c.job.cwd.is_relative())
                    {
                        notes.push(
                            "`job.cwd` is relative: run from the folder the experiment run was \
                             started in."
                                .to_owned(),
                        );
                    }
                    if let Some(code) = best_code {
                        notes.push(format!(
                            "It ran at commit `{}` (`{}`): run the command in a checkout of it \
                             (see Code below), in the same folder of the repository.",
                            &code.code.node[..code.code.node.len().min(12)],
                            code.code.ref_name
                        ));
                    } else if let Some(ch) = n.spec.as_ref().and_then(|s| s.changes.as_deref()) {
                        notes.push(format!(
                            "This experiment also changed code ({}), but its commit is not \
                             recorded (no `engine/nodes/{}/commit.json`).",
                            md_cell(&elide_chars(ch, 200)),
                            n.id
                        ));
                    }
                    let script = view.root.join("runs").join(&n.id).join("command.sh");
                    if script.is_file() {
                        notes.push(format!(
                            "Exactly what ran: `runs/{}/command.sh` (with parameters also given \
                             as `AUTORESEARCH_PARAM_*` environment variables).",
                            n.id
                        ));
                    }
                    for note in notes {
                        let _ = writeln!(out, "- {note}");
                    }
                }
                None => out.push_str("The best node's spec.json is unreadable; no command.\n"),
            }
            if let Some(code) = best_code {
                write_markdown(code, &n.id, n.parent_id(), &mut out);
            }
        }
        _ => out.push_str("No completed experiment with a primary metric yet.\n"),
    }
    out.push('\n');

    out.push_str("## Path from baseline to best\n\n");
    match view.best {
        Some(bi) => {
            let path = view.path_to(bi);
            if let Some(bl) = view.baseline
                && path.first() != Some(&bl)
            {
                let _ = writeln!(
                    out,
                    "The best descends from root {}, not from the baseline {}.\n",
                    md_code(&view.nodes[path[0]].id),
                    md_code(&view.nodes[bl].id)
                );
            }
            let _ = writeln!(
                out,
                "| step | node | change | {} | vs baseline | improved |\n|---:|---|---|---:|---:|---|",
                md_cell(&view.metric)
            );
            for (k, &i) in path.iter().enumerate() {
                let n = &view.nodes[i];
                let (value, vs) = value_cells(view, i);
                let _ = writeln!(
                    out,
                    "| {k} | {} ({}) | {} | {value} | {vs} | {} |",
                    md_code(&n.id),
                    md_cell(&elide_chars(n.name(), 40)),
                    md_cell(&elide_chars(&view.change_label(i), 80)),
                    improved_cell(view, i)
                );
            }
        }
        None => out.push_str("No best node yet.\n"),
    }
    out.push('\n');

    out.push_str("## Parameter importance\n\n");
    write_importance(view, &mut out);
    out.push('\n');

    out.push_str("## All experiments\n\n");
    let _ = writeln!(
        out,
        "| node | name | parent | status | {} | improved | duration | failure |\n|---|---|---|---|---:|---|---:|---|",
        md_cell(&view.metric)
    );
    for (i, n) in view.nodes.iter().enumerate() {
        let failure = match (&n.failure, n.status) {
            (Some(f), _) => format!("{}: {}", f.kind.as_str(), elide_chars(&f.message, 80)),
            (None, NodeStatus::Failed) => "unknown".to_owned(),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            md_code(&n.id),
            md_cell(&elide_chars(n.name(), 40)),
            n.parent_id().map(md_code).unwrap_or_default(),
            n.status,
            view.primary(i)
                .map(|v| fmt_spread(v, n.spread()))
                .unwrap_or_default(),
            improved_cell(view, i),
            n.result
                .as_ref()
                .map(|r| fmt_secs(r.duration_s))
                .unwrap_or_default(),
            md_cell(&failure)
        );
    }
    out.push('\n');

    out.push_str("## Failures by kind\n\n");
    write_failures(view, &mut out);
    if !view.warnings.is_empty() {
        let _ = writeln!(
            out,
            "\n_{} file(s) were missing or unreadable and skipped; see summary.md._",
            view.warnings.len()
        );
    }
    out
}
