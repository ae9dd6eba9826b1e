//! The interactive session, `supervisor <workdir>` (`docs/supervisor-session.md`).
//!
//! 1. A workdir without `config.json` gets a questionnaire ([`questions`]); the answers are
//!    validated as a whole and written as `config.json`.
//! 2. The engine runs detached in the background (`supervisor run <workdir>`, output in
//!    `logs/engine.log`). A workdir whose engine already runs is attached to (never a second
//!    engine); an interrupted, stopped or crashed one is offered a resume, unless a limit is
//!    reached: then the session says which one and how to raise it ([`limits`]).
//! 3. Events of `engine/events.jsonl` are streamed above the prompt ([`stream`]), with local
//!    times ([`local_time`]), while the session takes commands ([`commands`]) with tab
//!    completion of commands and node ids ([`completion`]) and a history kept in
//!    `<workdir>/.supervisor_history`.
//! 4. `quit` or Ctrl+D leaves the session; the engine keeps running.

pub mod ask;
pub mod commands;
pub mod completion;
pub mod execute;
pub mod inspect;
pub mod limits;
pub mod local_time;
pub mod questions;
pub mod stream;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use autoresearch_adapters::config::Config;
use autoresearch_adapters::session::{has_config, resolve_config};
use autoresearch_adapters::workdir::Workdir;
use rustyline::config::Configurer;
use rustyline::error::ReadlineError;
use rustyline::history::FileHistory;
use rustyline::{Editor, ExternalPrinter as _};

use crate::commands::{launch, status};
use crate::exit::Exit;
use completion::SessionHelper;
use execute::Flow;
use questions::{Abort, Answer, Prompter, ask_config, ask_yes_no};
use stream::{EventTail, Printer, Streamer};

/// Name of the history file inside the workdir.
pub const HISTORY_FILE: &str = ".supervisor_history";
/// Entries kept in the history file.
const HISTORY_SIZE: usize = 1000;

type SessionEditor = Editor<SessionHelper, FileHistory>;

/// Runs the interactive session on `workdir`; returns the process exit status (0 after `quit`,
/// 130 when the questionnaire is cancelled with Ctrl+C, 2 when it gets no answers).
pub fn run(workdir: &Path) -> Result<i32> {
    let root =
        std::path::absolute(workdir).with_context(|| format!("resolving {}", workdir.display()))?;
    let wd = Workdir::new(&root);
    let mut editor = new_editor()?;

    let mut fresh = false;
    if !has_config(&root) {
        match questionnaire(&mut editor, &root)? {
            Ok(()) => fresh = true,
            Err(Abort::Interrupted) => {
                println!("cancelled; nothing was written");
                return Ok(130);
            }
            Err(Abort::Eof) => {
                return Err(Exit::bad_input(
                    "the configuration questions got no answer (end of input); nothing was written. Answer them in a terminal, or start the run with `supervisor run <workdir> --config FILE`",
                ));
            }
        }
    }
    let metric = Config::load(&wd.config())
        .map(|c| c.objective.metric)
        .map_err(Exit::bad_input_err)?;

    // Tail from here on, so the new engine's first events are shown.
    let tail = EventTail::from_end(stream::events_path(&root));
    let report = status::gather(&root)?;
    let start = match report.status.as_str() {
        "running" => {
            println!(
                "attached to the running engine{}",
                report
                    .pid
                    .map(|p| format!(" (pid {p})"))
                    .unwrap_or_default()
            );
            print!("{}", status::format_human(&report));
            false
        }
        _ if fresh => true,
        "new" => confirm(&mut editor, "Start the run now?")?,
        _ => {
            print!("{}", status::format_human(&report));
            let reached = limits::reached(&root);
            if reached.is_empty() {
                confirm(&mut editor, "Resume the run now?")?
            } else {
                // A resume would stop at once: say why and how to go on instead of asking.
                println!("The run has reached a limit, so it is not resumed:");
                for r in &reached {
                    println!("  {r}");
                }
                println!("Then `start` resumes it.");
                false
            }
        }
    };
    if start {
        match launch::spawn_background(&root) {
            Ok(pid) => println!(
                "engine started in the background (pid {pid}); its output goes to {}",
                root.join("logs").join("engine.log").display()
            ),
            Err(e) => println!(
                "{}",
                style::red(&format!(
                    "the engine did not start: {e:#}\n(fix the cause, then `start`)"
                ))
            ),
        }
    }

    editor.set_helper(Some(SessionHelper::new(root.clone())));
    let history = root.join(HISTORY_FILE);
    if history.is_file()
        && let Err(e) = editor.load_history(&history)
    {
        println!("(could not read the history {}: {e})", history.display());
    }
    let streamer = Streamer::start(&root, metric, tail, printer(&mut editor));
    println!(
        "Type `help` for the commands; Tab completes; `quit` or Ctrl+D leaves (the engine keeps running)."
    );

    let prompt = format!(
        "{}> ",
        root.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "supervisor".into())
    );
    loop {
        match editor.readline(&prompt) {
            Ok(raw) => {
                let line = raw.trim();
                if line.is_empty() {
                    continue;
                }
                // A line typed with a leading space stays out of the history (as in shells).
                if !raw.starts_with(char::is_whitespace) {
                    let _ = editor.add_history_entry(line);
                }
                if let Err(e) = save_history(&mut editor, &history) {
                    println!("(could not save the history {}: {e})", history.display());
                }
                let cmd = match commands::parse(line) {
                    Ok(Some(cmd)) => cmd,
                    Ok(None) => continue,
                    Err(e) => {
                        println!("{}", style::red(&e));
                        continue;
                    }
                };
                let done = match &cmd {
                    // `ask` confirms proposed queue actions on the terminal.
                    commands::Command::Ask {
                        question,
                        agent_flags,
                    } => ask::run(
                        &root,
                        &question.join(" "),
                        agent_flags,
                        &mut |q| confirm_no(&mut editor, q),
                        &mut std::io::stdout(),
                    )
                    .map(|()| Flow::Continue),
                    _ => execute::execute(&root, &cmd, &mut std::io::stdout()),
                };
                match done {
                    Ok(Flow::Continue) => {}
                    Ok(Flow::Quit) => break,
                    Err(e) => println!("{}", style::red(&format!("error: {e:#}"))),
                }
            }
            Err(ReadlineError::Interrupted) => {
                println!("(type `quit` or press Ctrl+D to leave; the engine keeps running)");
            }
            Err(ReadlineError::Eof) => break,
            Err(e) => {
                streamer.stop();
                return Err(e).context("reading the terminal");
            }
        }
    }
    streamer.stop();
    match autoresearch_engine::lock::holder(&root).ok().flatten() {
        Some(pid) => println!(
            "The engine keeps running (pid {pid}). `supervisor {}` re-attaches; `supervisor stop {}` stops it.",
            workdir.display(),
            workdir.display()
        ),
        None => println!(
            "No engine is running; `supervisor {}` resumes the run.",
            workdir.display()
        ),
    }
    Ok(0)
}

fn new_editor() -> Result<SessionEditor> {
    let mut editor: SessionEditor = Editor::new().context("opening the terminal")?;
    editor.set_auto_add_history(false);
    let _ = editor.set_history_ignore_dups(true);
    editor.set_history_ignore_space(true);
    let _ = editor.set_max_history_size(HISTORY_SIZE);
    editor.set_completion_type(rustyline::CompletionType::List);
    Ok(editor)
}

/// Appends the new entries to the history file (creating it), so a killed session loses none.
fn save_history(editor: &mut SessionEditor, path: &Path) -> rustyline::Result<()> {
    if path.is_file() {
        editor.append_history(path)
    } else {
        editor.save_history(path)
    }
}

/// A printer for the event stream: above the prompt on a terminal, plain stdout otherwise.
fn printer(editor: &mut SessionEditor) -> Printer {
    match editor.create_external_printer() {
        Ok(mut p) => Box::new(move |s: String| {
            let _ = p.print(s);
        }),
        Err(_) => Box::new(|s: String| {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(s.as_bytes());
            let _ = out.flush();
        }),
    }
}

/// Questions on the terminal through the session's editor (no helper, no history).
struct TerminalPrompter<'a> {
    editor: &'a mut SessionEditor,
}

impl Prompter for TerminalPrompter<'_> {
    fn ask(&mut self, prompt: &str) -> Answer {
        match self.editor.readline(prompt) {
            Ok(line) => Answer::Line(line),
            Err(ReadlineError::Interrupted) => Answer::Interrupted,
            Err(_) => Answer::Eof,
        }
    }

    fn say(&mut self, text: &str) {
        println!("{text}");
    }
}

/// A yes/no question answered `no` by Enter, Ctrl+C or Ctrl+D.
fn confirm_no(editor: &mut SessionEditor, question: &str) -> bool {
    let mut p = TerminalPrompter { editor };
    ask_yes_no(&mut p, question, false).unwrap_or(false)
}

fn confirm(editor: &mut SessionEditor, question: &str) -> Result<bool> {
    let mut p = TerminalPrompter { editor };
    Ok(ask_yes_no(&mut p, question, true).unwrap_or(false))
}

/// Asks for the configuration and writes `config.json`. The outer error is a failure to
/// write; the inner one says the user left.
fn questionnaire(editor: &mut SessionEditor, root: &Path) -> Result<Result<(), Abort>> {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let config_path = Workdir::new(root).config();
    let mut p = TerminalPrompter { editor };
    loop {
        let json = match ask_config(&mut p, &cwd) {
            Ok(v) => v,
            Err(a) => return Ok(Err(a)),
        };
        let text = serde_json::to_string_pretty(&json)?;
        match Config::from_json_str(&text, &config_path) {
            Ok(config) => {
                resolve_config(root, Some(config))?;
                println!("wrote {}", config_path.display());
                return Ok(Ok(()));
            }
            Err(e) => {
                p.say(&style::red(&format!(
                    "the configuration is not valid: {e}\nlet's go through the questions again"
                )));
            }
        }
    }
}

/// ANSI colours, only on a terminal and unless `NO_COLOR` is set.
pub(crate) mod style {
    use std::io::IsTerminal;
    use std::sync::OnceLock;

    /// Whether output is coloured.
    pub(crate) fn enabled() -> bool {
        static ON: OnceLock<bool> = OnceLock::new();
        *ON.get_or_init(|| {
            std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                && std::env::var("TERM").map_or(true, |t| t != "dumb")
                && std::io::stdout().is_terminal()
        })
    }

    fn paint(code: &str, s: &str) -> String {
        if enabled() {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }

    /// Grey.
    pub(crate) fn dim(s: &str) -> String {
        paint("2", s)
    }
    /// Green.
    pub(crate) fn green(s: &str) -> String {
        paint("32", s)
    }
    /// Red.
    pub(crate) fn red(s: &str) -> String {
        paint("31", s)
    }
    /// Yellow.
    pub(crate) fn yellow(s: &str) -> String {
        paint("33", s)
    }
}
