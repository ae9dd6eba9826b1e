//! `supervisor ask WORKDIR "question"` (and the session's `ask <question>`): the coding agent
//! answers from a read-only view of the run (the same bounded brief as the final report, plus
//! the files of the nodes the question names). Its answer is shown line by line as it arrives
//! when the agent prints plain text. Proposed queue actions (bump, drop, add) change nothing
//! until the user confirms; they are then applied through `supervisor queue`'s code.

use std::path::Path;

use anyhow::Result;
use autoresearch_adapters::agent::ask::{
    AskAnswer, MAX_QUESTION_BYTES, QueueAction, named_nodes, parse_ask, render_ask_prompt,
};
use autoresearch_adapters::agent::template::{TemplateName, Templates};
use autoresearch_adapters::agent::{AgentPhase, Cost};

use super::agent_call::{self, AgentFlags, describe_agent, no_agent_message};
use super::final_report::block_on;
use super::{queue, run_brief};
use crate::exit::Exit;
use crate::render::RunView;
use autoresearch_adapters::config::shell_word as shell_quote;

/// An answered question.
#[derive(Debug, Clone)]
pub struct Asked {
    /// The answer and its proposed actions.
    pub answer: AskAnswer,
    /// Whether the answer was already shown line by line.
    pub streamed: bool,
    /// Whether an earlier answer to the same prompt was re-used (nothing paid).
    pub reused: bool,
    /// What this call cost.
    pub cost: Cost,
    /// The nodes whose files were given to the agent.
    pub named: Vec<String>,
}

/// Asks the agent `question` about the run in `workdir`. `on_line` gets the answer's lines as
/// they arrive (plain-text agents); `say` gets progress lines. `command` is how the user asked
/// (for the message when no agent is configured). No agent configured: exit 2, nothing called.
pub fn ask(
    workdir: &Path,
    question: &str,
    flags: &AgentFlags,
    command: &str,
    on_line: &mut dyn FnMut(&str),
    say: &mut dyn FnMut(&str),
) -> Result<Asked> {
    super::require_workdir(workdir).map_err(Exit::bad_input_err)?;
    let question = question.trim();
    if question.is_empty() {
        return Err(Exit::bad_input(
            "ask needs a question, e.g. `ask \"why did 014 fail?\"`",
        ));
    }
    if question.len() > MAX_QUESTION_BYTES {
        return Err(Exit::bad_input(format!(
            "the question is {} bytes long; ask in at most {MAX_QUESTION_BYTES} bytes (name the \
             experiments by id: their files are added to the prompt)",
            question.len()
        )));
    }
    let config = agent_call::select_agent(workdir, flags).map_err(Exit::bad_input_err)?;
    let Some(config) = config else {
        return Err(Exit::bad_input(no_agent_message(command)));
    };
    let template = Templates::load_one(workdir, TemplateName::Ask).map_err(Exit::bad_input_err)?;
    let view = RunView::load(workdir)?;
    let mut warnings = Vec::new();
    let brief = block_on(run_brief::build(&view, &mut warnings))?;
    for w in &warnings {
        say(&format!("note: {w}"));
    }
    let named = named_nodes(question, view.nodes.iter().map(|n| n.id.as_str()));
    let files = run_brief::node_files(&view, &named);
    let prompt = render_ask_prompt(&brief, question, &files, &template, config.max_prompt_bytes)
        .map_err(Exit::bad_input_err)?;
    let about = if named.is_empty() {
        String::new()
    } else {
        format!(" with the files of {}", named.join(", "))
    };
    say(&format!(
        "asking the agent ({}){about}…",
        describe_agent(&config)
    ));
    let called = agent_call::call(
        workdir,
        &config,
        AgentPhase::Ask,
        &prompt,
        parse_ask,
        Some(on_line),
    )?;
    let outcome = called.outcome;
    match outcome.result {
        Ok(answer) => Ok(Asked {
            answer,
            streamed: called.streamed,
            reused: outcome.reused,
            cost: outcome.fresh_cost,
            named,
        }),
        Err(failure) => anyhow::bail!(
            "the agent did not answer: {failure}. Nothing was changed. The prompt and the \
             agent's output are in {}_prompt.md and {}_output.md.",
            called.log_stem,
            called.log_stem
        ),
    }
}

/// `supervisor ask`: the answer on stdout (line by line as it arrives, for a plain-text agent),
/// progress on stderr, then the proposed actions: applied with `yes`, else listed with the
/// commands that apply them. Returns the exit status.
pub fn run_cli(workdir: &Path, question: &str, yes: bool, flags: &AgentFlags) -> Result<i32> {
    use std::io::Write as _;
    let command = format!("supervisor ask {} \"…\"", workdir.display());
    let mut print_line = |l: &str| {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{l}");
        let _ = out.flush();
    };
    let asked = ask(
        workdir,
        question,
        flags,
        &command,
        &mut print_line,
        &mut |l| eprintln!("{l}"),
    )?;
    if !asked.streamed {
        println!("{}", asked.answer.text);
    }
    eprintln!("{}", cost_line(&asked));
    let actions = &asked.answer.actions;
    if actions.is_empty() {
        return Ok(0);
    }
    println!("\nProposed queue actions:\n{}", format_actions(actions));
    if yes {
        for line in apply_actions(workdir, actions) {
            println!("{line}");
        }
    } else {
        println!("Nothing was changed. To apply them, run:");
        for c in queue_commands(workdir, actions) {
            println!("  {c}");
        }
        println!("(or ask again with --yes to apply all of them)");
    }
    Ok(0)
}

/// `(agent cost: …)` of an answer.
pub fn cost_line(asked: &Asked) -> String {
    if asked.reused {
        "(an earlier answer to the same question about the same run state was re-used; nothing \
         was paid)"
            .into()
    } else {
        format!("(agent cost: {})", asked.cost.describe())
    }
}

/// The proposed actions as a numbered list (empty when there are none).
pub fn format_actions(actions: &[QueueAction]) -> String {
    let mut out = String::new();
    for (i, a) in actions.iter().enumerate() {
        out.push_str(&format!("  {}. {}\n", i + 1, a.describe()));
    }
    out
}

/// The `supervisor queue` commands equivalent to `actions` (an `add` has none: it is applied
/// with `supervisor ask … --yes` or from the session).
pub fn queue_commands(workdir: &Path, actions: &[QueueAction]) -> Vec<String> {
    let wd = shell_quote(&workdir.display().to_string());
    actions
        .iter()
        .map(|a| match a {
            QueueAction::Bump { id, priority } => {
                format!("supervisor queue {wd} bump {} {priority}", shell_quote(id))
            }
            QueueAction::Drop { id } => format!("supervisor queue {wd} drop {}", shell_quote(id)),
            QueueAction::Add(e) => format!(
                "(add `{}`: no `supervisor queue` command adds an experiment; rerun with --yes \
                 or use the session's `ask`)",
                e.name
            ),
        })
        .collect()
}

/// Applies `actions` in order through `supervisor queue`'s code (the control inbox when an
/// engine runs, a checkpoint edit when none does); one result line per action. An action that
/// fails does not stop the others.
pub fn apply_actions(workdir: &Path, actions: &[QueueAction]) -> Vec<String> {
    let view = RunView::load(workdir).ok();
    actions
        .iter()
        .map(|a| {
            let result = match a {
                QueueAction::Bump { id, priority } => queue::bump(workdir, id, *priority),
                QueueAction::Drop { id } => queue::drop(workdir, id),
                QueueAction::Add(e) => match (&e.parent, &view) {
                    (Some(p), Some(v)) if v.node(p).is_none() => {
                        Err(anyhow::anyhow!("parent {p} is not a node of this run"))
                    }
                    _ => queue::add(
                        workdir,
                        &e.name,
                        &e.params,
                        e.parent.as_deref(),
                        &e.hypothesis,
                        e.priority.unwrap_or(0.0),
                    ),
                },
            };
            match result {
                Ok(msg) => format!("done: {} ({msg})", a.describe()),
                Err(e) => format!("not applied: {}: {e:#}", a.describe()),
            }
        })
        .collect()
}
