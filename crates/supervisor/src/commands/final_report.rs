//! `supervisor report WORKDIR --agent` (and the session's `report --agent`): the deterministic
//! `report.md` first (so a failed or missing agent never leaves the user without a report),
//! then `final_report.md`, synthesised by the coding agent from a bounded prompt of the run.
//! Citations of node ids that are not in the run are marked inline and listed at the top.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use autoresearch_adapters::agent::AgentPhase;
use autoresearch_adapters::agent::final_report::{
    UNVERIFIED_MARK, flag_citations, parse_report, render_report_prompt,
};
use autoresearch_adapters::agent::template::{TemplateName, Templates};

use super::agent_call::{self, AgentFlags, describe_agent, no_agent_message};
use super::run_brief;
use crate::exit::Exit;
use crate::render::RunView;

/// File name of the agent's report in the workdir root.
pub const FINAL_REPORT_FILE: &str = "final_report.md";

/// Writes `report.md`, then asks the agent for `final_report.md`; `say` gets progress lines.
/// `command` is how the user asked (for the message when no agent is configured). Fails (after
/// `report.md` is written) when no agent is configured (exit 2) or the agent failed (exit 1),
/// saying why; the previous `final_report.md`, if any, is then left as it was.
pub fn write(
    workdir: &Path,
    flags: &AgentFlags,
    command: &str,
    say: &mut dyn FnMut(&str),
) -> Result<PathBuf> {
    super::require_workdir(workdir).map_err(Exit::bad_input_err)?;
    let report = crate::render::render_report(workdir)?;
    say(&format!("wrote {}", report.display()));

    let config = agent_call::select_agent(workdir, flags).map_err(Exit::bad_input_err)?;
    let Some(config) = config else {
        return Err(Exit::bad_input(no_agent_message(command)));
    };
    let template =
        Templates::load_one(workdir, TemplateName::Report).map_err(Exit::bad_input_err)?;
    let view = RunView::load(workdir)?;
    if !view.nodes.iter().any(|n| n.status.is_terminal()) {
        return Err(Exit::bad_input(
            "no experiment has finished yet, so there is nothing for the agent to report on              (none was called); run the experiments first",
        ));
    }
    let mut warnings = Vec::new();
    let brief = block_on(run_brief::build(&view, &mut warnings))?;
    for w in &warnings {
        say(&format!("note: {w}"));
    }
    let prompt = render_report_prompt(&brief, &template, config.max_prompt_bytes)
        .map_err(Exit::bad_input_err)?;
    let known: HashSet<String> = view.by_id.keys().cloned().collect();
    say(&format!(
        "asking the agent ({}) for the final report ({} KB prompt, time limit {} s)…",
        describe_agent(&config),
        prompt.len().div_ceil(1024),
        config.timeout_s
    ));
    let called = agent_call::call(
        workdir,
        &config,
        AgentPhase::Report,
        &prompt,
        |text| parse_report(text, &known),
        None,
    )?;
    let outcome = called.outcome;
    let path = workdir.join(FINAL_REPORT_FILE);
    let answer = match outcome.result {
        Ok(a) => a,
        Err(failure) => {
            let kept = if path.is_file() {
                format!(" (the earlier {FINAL_REPORT_FILE} is left as it was)")
            } else {
                String::new()
            };
            anyhow::bail!(
                "the agent's final report failed: {failure}. {} is intact; {FINAL_REPORT_FILE} \
                 was not written{kept}. The prompt and the agent's output are in \
                 {}_prompt.md and {}_output.md.",
                report.display(),
                called.log_stem,
                called.log_stem
            );
        }
    };
    let (markdown, citations) = flag_citations(&answer.markdown, &known);
    let name = view
        .root
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let cost = if outcome.reused {
        "nothing (an earlier answer to the same prompt was re-used)".to_string()
    } else {
        outcome.fresh_cost.describe()
    };
    let mut doc = format!("# Final report: {name}\n\n");
    let _ = writeln!(
        doc,
        "_Written by the coding agent ({}) on {} from the run's files ({} experiments); cost: \
         {cost}. Every claim should cite the node ids it rests on; the measured facts are in \
         [report.md](report.md). Prompt and raw answer: `{}_prompt.md`, `{}_output.md`._\n",
        describe_agent(&config),
        humantime::format_rfc3339_seconds(std::time::SystemTime::now()),
        view.nodes.len(),
        called.log_stem,
        called.log_stem
    );
    if !citations.unknown.is_empty() {
        let _ = writeln!(
            doc,
            "> **Unverified citations.** The agent cited node ids that are not in this run: {}. \
             They are marked {UNVERIFIED_MARK} below; treat the claims resting on them as \
             unverified.\n",
            citations
                .unknown
                .iter()
                .map(|u| format!("`{u}`"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    doc.push_str(markdown.trim_end());
    doc.push('\n');
    autoresearch_engine::atomic::write_atomic(&path, doc.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    say(&format!(
        "wrote {} (agent cost: {cost}; {} node ids cited)",
        path.display(),
        citations.cited.len()
    ));
    if !citations.unknown.is_empty() {
        say(&format!(
            "warning: the agent cited node ids that are not in this run: {} (marked in {FINAL_REPORT_FILE})",
            citations.unknown.join(", ")
        ));
    }
    Ok(path)
}

/// Runs `fut` to completion on a small runtime of its own.
pub(crate) fn block_on<F: std::future::Future>(fut: F) -> Result<F::Output> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(fut))
}
