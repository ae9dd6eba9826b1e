//! Carrying out a parsed session command ([`Command`]) on the workdir: the queue and run
//! changes go through the code of the matching `supervisor` command, so the session and the
//! command line never disagree.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::Duration;

use anyhow::Result;

use std::fmt::Write as _;

use super::commands::{Command, help, usage};
use super::inspect::{logs, show};
use super::limits::{self};
use crate::commands::{
    final_report, launch, queue, queue_add, reanalyze, retry, status, stop, table, tree,
};

/// How long `stop` waits for the engine to write its final checkpoint.
const STOP_TIMEOUT: Duration = Duration::from_secs(120);

/// What the session does after a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Read the next command.
    Continue,
    /// Leave the session.
    Quit,
}

/// The escape sequence that clears a terminal and its scrollback, and homes the cursor.
pub const CLEAR_SCREEN: &str = "\x1b[H\x1b[2J\x1b[3J";

/// Carries out `cmd` on `workdir`, writing what it has to say to `out` as it goes (so `stop`
/// says what it is doing before it waits).
pub fn execute(workdir: &Path, cmd: &Command, out: &mut dyn Write) -> Result<Flow> {
    match cmd {
        Command::Status => put(out, &status::format_human(&status::gather(workdir)?)),
        Command::Table => put(out, &table::format_table(workdir)?),
        Command::Tree => put(out, &tree::format_tree(workdir)?),
        Command::Show { id } => put(out, &show(workdir, id)?),
        Command::Logs { id, lines } => put(out, &logs(workdir, id, *lines)?),
        Command::Queue => put(out, &queue::format_list(&queue::list(workdir)?)),
        Command::Bump { id, priority } => put(out, &queue::bump(workdir, id, *priority)?),
        Command::Drop { id } => put(out, &queue::drop(workdir, id)?),
        Command::Set { key, value } => put(out, &limits::set(workdir, *key, value)?),
        Command::Extend { n } => put(out, &limits::extend(workdir, *n)?),
        Command::Add {
            name,
            params,
            priority,
            parent,
            hypothesis,
        } => put(
            out,
            &queue_add::add(
                workdir,
                &queue_add::AddRequest {
                    name: name.clone(),
                    assignments: params.clone(),
                    priority: *priority,
                    parent: parent.clone(),
                    hypothesis: hypothesis.clone(),
                },
            )?,
        ),
        Command::Retry { ids, all_failed } => put(out, &retry::retry(workdir, ids, *all_failed)?),
        Command::Reanalyze { metric } => put(out, &reanalyze::run(workdir, metric.as_deref())?),
        Command::Stop => {
            if autoresearch_engine::lock::holder(workdir)?.is_none() {
                put(
                    out,
                    "no engine is running on this workdir (`start` starts one)",
                );
            } else {
                put(out, "stopping the engine (running jobs keep going)…");
                put(out, &stop::stop(workdir, STOP_TIMEOUT)?);
            }
        }
        Command::Start => match autoresearch_engine::lock::holder(workdir)? {
            Some(pid) => put(out, &format!("the engine is already running (pid {pid})")),
            None => {
                let reached = limits::reached(workdir);
                if !reached.is_empty() {
                    let mut msg = String::from(
                        "not started: the run would stop at once, a limit is reached:",
                    );
                    for r in reached {
                        let _ = write!(msg, "\n  {r}");
                    }
                    put(out, &msg);
                    return Ok(Flow::Continue);
                }
                put(out, "starting the engine…");
                let pid = launch::spawn_background(workdir)?;
                put(
                    out,
                    &format!(
                        "engine started in the background (pid {pid}); its output goes to logs/engine.log"
                    ),
                );
            }
        },
        Command::Render => {
            let report = crate::render::render_all(workdir)?;
            for w in &report.warnings {
                put(out, &format!("warning: {w}"));
            }
            for f in &report.written {
                put(out, &format!("wrote {}", f.display()));
            }
        }
        Command::Report { agent, agent_flags } => {
            if *agent || agent_flags.given() {
                final_report::write(workdir, agent_flags, "report --agent", &mut |l| put(out, l))?;
            } else {
                let path = crate::render::render_report(workdir)?;
                put(out, &format!("wrote {}", path.display()));
            }
        }
        // Without a terminal to confirm on, proposed actions are shown, never applied.
        Command::Ask {
            question,
            agent_flags,
        } => super::ask::run(
            workdir,
            &question.join(" "),
            agent_flags,
            &mut |_| false,
            out,
        )?,
        Command::Clear => {
            if std::io::stdout().is_terminal() {
                let _ = out.write_all(CLEAR_SCREEN.as_bytes());
                let _ = out.flush();
            } else {
                put(out, "(clear: the output is not a terminal)");
            }
        }
        Command::Help { command } => match command {
            Some(c) => put(out, &usage(&c.to_lowercase())),
            None => put(out, &help()),
        },
        Command::Quit => return Ok(Flow::Quit),
    }
    Ok(Flow::Continue)
}

/// Writes `s` and a newline if it lacks one, and flushes.
fn put(out: &mut dyn Write, s: &str) {
    let _ = out.write_all(s.as_bytes());
    if !s.ends_with('\n') {
        let _ = out.write_all(b"\n");
    }
    let _ = out.flush();
}
