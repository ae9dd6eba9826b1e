//! The session's `ask <question>`: the answer shown as the agent writes it, then its proposed
//! queue actions, applied only when the user answers `y` (see `commands::ask`).

use std::cell::RefCell;
use std::io::Write;
use std::path::Path;

use anyhow::Result;

use crate::commands::agent_call::AgentFlags;
use crate::commands::ask::{apply_actions, ask, cost_line, format_actions};

/// Asks, shows the answer, and applies its proposed actions if `confirm` says yes.
pub fn run(
    workdir: &Path,
    question: &str,
    flags: &AgentFlags,
    confirm: &mut dyn FnMut(&str) -> bool,
    out: &mut dyn Write,
) -> Result<()> {
    let out = RefCell::new(out);
    let put = |l: &str| {
        let mut o = out.borrow_mut();
        let _ = writeln!(o, "{l}");
        let _ = o.flush();
    };
    // The answer's lines are shown as they arrive; progress is dimmed.
    let asked = ask(workdir, question, flags, "ask", &mut |l| put(l), &mut |l| {
        put(&super::style::dim(l))
    })?;
    if !asked.streamed {
        put(&asked.answer.text);
    }
    put(&super::style::dim(&cost_line(&asked)));
    let actions = &asked.answer.actions;
    if actions.is_empty() {
        return Ok(());
    }
    put(&format!(
        "The agent proposes:\n{}",
        format_actions(actions).trim_end()
    ));
    if !confirm("Apply these queue changes?") {
        put("nothing was changed");
        return Ok(());
    }
    for l in apply_actions(workdir, actions) {
        put(&l);
    }
    Ok(())
}
