//! The session commands (`docs/supervisor-session.md`): parsing a line into a [`Command`] and
//! carrying it out on the workdir.
//!
//! A line is split into words like a shell does (`shlex`: quotes group words) and parsed with
//! clap, so arity, numbers and names are checked in one place; clap's errors are turned into
//! one-line answers (`usage: bump <id> <priority>`, `unknown command `sta` (did you mean
//! status, start, stop?)`). Every command works whether or not an engine is running; queue
//! changes go through `supervisor queue`'s code (the control inbox when live, a checkpoint edit
//! when not).

use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::LazyLock;
use std::time::Duration;

use anyhow::Result;
use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{CommandFactory, Parser, Subcommand};

use super::inspect::{logs, show};
use super::limits::{self, LimitKey};
use crate::commands::agent_call::AgentFlags;
use crate::commands::{
    final_report, launch, queue, queue_add, reanalyze, retry, status, stop, table, tree,
};

/// How long `stop` waits for the engine to write its final checkpoint.
const STOP_TIMEOUT: Duration = Duration::from_secs(120);
/// Lines shown per file by `logs` unless a count is given.
pub const DEFAULT_LOG_LINES: usize = 20;

/// A session command's name, its arguments (for help and hints) and what it does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandInfo {
    /// The word typed.
    pub name: String,
    /// Its arguments, e.g. `<id> <priority>` (empty if none; optional ones in brackets).
    pub args: String,
    /// One line of help.
    pub help: String,
}

/// A parsed session command. The doc comment of each variant is its line in `help`.
#[derive(Debug, Clone, PartialEq, Subcommand)]
pub enum Command {
    /// engine status, counts, best so far, running jobs
    Status,
    /// all experiments as a table
    Table,
    /// the hypothesis tree as indented text
    Tree,
    /// one experiment: parameters, command, result or failure, job
    Show {
        /// The node.
        #[arg(value_name = "id", value_parser = node_id)]
        id: String,
    },
    /// the end of an experiment's stdout.log and stderr.log
    Logs {
        /// The node.
        #[arg(value_name = "id", value_parser = node_id)]
        id: String,
        /// Lines per file.
        #[arg(value_name = "lines", default_value_t = DEFAULT_LOG_LINES, value_parser = line_count)]
        lines: usize,
    },
    /// queued experiments in run order
    Queue,
    /// set a queued experiment's priority (lower runs first)
    Bump {
        /// The node.
        #[arg(value_name = "id", value_parser = node_id)]
        id: String,
        /// The new priority.
        #[arg(value_name = "priority", allow_negative_numbers = true, value_parser = priority)]
        priority: f64,
    },
    /// remove a queued experiment
    Drop {
        /// The node.
        #[arg(value_name = "id", value_parser = node_id)]
        id: String,
    },
    /// add an experiment by hand (parameters left out take the baseline's value)
    Add {
        /// The experiment's name.
        #[arg(value_name = "name")]
        name: String,
        /// Parameter values.
        #[arg(value_name = "param=value")]
        params: Vec<String>,
        /// Queue priority (lower runs first; default -100).
        #[arg(long, allow_negative_numbers = true, value_parser = priority)]
        priority: Option<f64>,
        /// The experiment it follows from.
        #[arg(long, value_parser = node_id)]
        parent: Option<String>,
        /// Why it is worth running.
        #[arg(long)]
        hypothesis: Option<String>,
    },
    /// run failed experiments again, as new experiments (`retry --all-failed` for all)
    Retry {
        /// Failed experiments.
        #[arg(value_name = "id", value_parser = node_id, required_unless_present = "all_failed", conflicts_with = "all_failed")]
        ids: Vec<String>,
        /// Every failed experiment not retried already.
        #[arg(long)]
        all_failed: bool,
    },
    /// re-read the results, optionally with another metric name (`--metric NAME`); engine stopped
    Reanalyze {
        /// The new objective.metric.
        #[arg(long)]
        metric: Option<String>,
    },
    /// change a limit in config.json (max_experiments, patience, time_budget_s, max_concurrency)
    Set {
        /// The limit.
        #[arg(value_name = "limit", value_enum)]
        key: LimitKey,
        /// Its new value.
        #[arg(value_name = "value", allow_negative_numbers = true)]
        value: String,
    },
    /// allow n more experiments (raises limits.max_experiments)
    Extend {
        /// How many more.
        #[arg(value_name = "n", value_parser = clap::value_parser!(u64).range(1..))]
        n: u64,
    },
    /// interrupt the engine gracefully (running jobs keep going; `start` resumes)
    Stop,
    /// start (or resume) the engine in the background
    #[command(alias = "resume")]
    Start,
    /// write the views (master_table.tsv, summary.md and the PNGs)
    Render,
    /// write report.md; with --agent also final_report.md, by the coding agent
    Report {
        /// Also ask the coding agent for final_report.md.
        #[arg(long)]
        agent: bool,
        /// Which agent (default: the run's planner.agent).
        #[command(flatten)]
        agent_flags: AgentFlags,
    },
    /// ask the coding agent about the run; queue changes it proposes need your yes
    Ask {
        /// The question (the rest of the line, as typed).
        #[arg(value_name = "question", required = true, num_args = 1.., trailing_var_arg = true, allow_hyphen_values = true)]
        question: Vec<String>,
        /// Which agent (default: the run's planner.agent); options go before `--`.
        #[command(flatten)]
        agent_flags: AgentFlags,
    },
    /// clear the screen
    Clear,
    /// this list, or the usage of one command
    #[command(alias = "?")]
    Help {
        /// A command.
        #[arg(value_name = "command")]
        command: Option<String>,
    },
    /// leave the session (Ctrl+D too); the engine keeps running
    #[command(alias = "exit")]
    Quit,
}

/// The parser of one session line.
#[derive(Debug, Parser)]
#[command(
    name = "",
    no_binary_name = true,
    disable_help_flag = true,
    disable_version_flag = true,
    disable_help_subcommand = true
)]
struct Line {
    #[command(subcommand)]
    command: Command,
}

/// Every session command, in the order `help` lists them (taken from [`Command`]).
pub fn commands() -> &'static [CommandInfo] {
    static INFO: LazyLock<Vec<CommandInfo>> = LazyLock::new(|| {
        Line::command()
            .get_subcommands()
            .map(|c| {
                let args: Vec<String> = c
                    .get_positionals()
                    .map(|a| {
                        let name = a
                            .get_value_names()
                            .and_then(|v| v.first())
                            .map(|s| s.to_string())
                            .unwrap_or_else(|| a.get_id().to_string());
                        if a.is_required_set() {
                            format!("<{name}>")
                        } else {
                            format!("[{name}]")
                        }
                    })
                    .collect();
                CommandInfo {
                    name: c.get_name().to_owned(),
                    args: args.join(" "),
                    help: c.get_about().map(|s| s.to_string()).unwrap_or_default(),
                }
            })
            .collect()
    });
    &INFO
}

/// Whether the command's first argument is a node id (completed from the workdir).
pub fn takes_node_id(name: &str) -> bool {
    matches!(name, "show" | "logs" | "bump" | "drop" | "retry")
}

/// Whether the command's node id must be a queued one (completion offers only those).
pub fn takes_queued_id(name: &str) -> bool {
    matches!(name, "bump" | "drop")
}

fn node_id(s: &str) -> Result<String, String> {
    if is_node_id(s) {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "{s:?} is not a node id (letters, digits, `.`, `_`, `-`; Tab completes them)"
        ))
    }
}

fn line_count(s: &str) -> Result<usize, String> {
    s.parse::<usize>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("expected a number of lines ≥ 1, found {s:?}"))
}

fn priority(s: &str) -> Result<f64, String> {
    s.parse::<f64>()
        .ok()
        .filter(|p| p.is_finite())
        .ok_or_else(|| format!("expected a priority (a number; lower runs first), found {s:?}"))
}

/// A node id as the engine allows them: `[A-Za-z0-9._-]{1,128}`, and not `.` or `..`.
pub fn is_node_id(s: &str) -> bool {
    (1..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        && s != "."
        && s != ".."
}

/// The command names closest to `word`: those it starts, then those within a small edit
/// distance (`stauts` → status).
fn similar(word: &str) -> Vec<String> {
    let word = word.to_lowercase();
    let mut close: Vec<(f64, String)> = commands()
        .iter()
        .map(|c| c.name.clone())
        .filter_map(|name| {
            let score = if !word.is_empty() && name.starts_with(&word) {
                2.0
            } else {
                strsim::jaro_winkler(&word, &name)
            };
            (score >= 0.8).then_some((score, name))
        })
        .collect();
    close.sort_by(|a, b| b.0.total_cmp(&a.0));
    close.into_iter().map(|(_, n)| n).take(3).collect()
}

/// `usage: <name> <args>` of a command.
fn usage(name: &str) -> String {
    match commands().iter().find(|c| c.name == name) {
        Some(c) if !c.args.is_empty() => format!("usage: {} {}", c.name, c.args),
        Some(c) => format!("usage: {} (no arguments)", c.name),
        None => format!("unknown command `{name}`; `help` lists the commands"),
    }
}

/// Turns a clap error into one line saying what to type instead.
fn explain(e: &clap::Error, words: &[String]) -> String {
    let first = words.first().cloned().unwrap_or_default();
    let name = commands()
        .iter()
        .find(|c| c.name == first)
        .map(|c| c.name.clone())
        .or_else(|| {
            Line::command()
                .get_subcommands()
                .find(|c| c.get_all_aliases().any(|a| a == first))
                .map(|c| c.get_name().to_owned())
        })
        .unwrap_or(first.clone());
    match e.kind() {
        ErrorKind::InvalidSubcommand | ErrorKind::UnknownArgument if words.len() <= 1 => {
            let close = similar(&first);
            let hint = if close.is_empty() {
                String::new()
            } else {
                format!(" (did you mean {}?)", close.join(", "))
            };
            format!("unknown command `{first}`{hint}; `help` lists the commands")
        }
        ErrorKind::ValueValidation => {
            // Our own value parsers say exactly what was expected.
            match std::error::Error::source(e) {
                Some(inner) => inner.to_string(),
                None => usage(&name),
            }
        }
        ErrorKind::InvalidValue => {
            let found = match e.get(ContextKind::InvalidValue) {
                Some(ContextValue::String(s)) => s.clone(),
                _ => String::new(),
            };
            let valid = match e.get(ContextKind::ValidValue) {
                Some(ContextValue::Strings(v)) => v.join(", "),
                _ => String::new(),
            };
            let arg = match e.get(ContextKind::InvalidArg) {
                Some(ContextValue::String(s)) => s.clone(),
                _ => "value".to_owned(),
            };
            let close = strsim_best(&found, e);
            format!("{arg}: unknown value {found:?}{close}; expected one of {valid}")
        }
        _ => usage(&name),
    }
}

/// ` (did you mean X?)` for an invalid enum value, from clap's suggestion or edit distance.
fn strsim_best(found: &str, e: &clap::Error) -> String {
    if let Some(ContextValue::String(s)) = e.get(ContextKind::SuggestedValue) {
        return format!(" (did you mean {s}?)");
    }
    if let Some(ContextValue::Strings(valid)) = e.get(ContextKind::ValidValue)
        && let Some(best) = valid
            .iter()
            .max_by(|a, b| {
                strsim::jaro_winkler(found, a).total_cmp(&strsim::jaro_winkler(found, b))
            })
            .filter(|b| strsim::jaro_winkler(found, b) >= 0.7)
    {
        return format!(" (did you mean {best}?)");
    }
    String::new()
}

/// Parses a line; `Ok(None)` for an empty line, `Err` with what to type instead.
pub fn parse(line: &str) -> Result<Option<Command>, String> {
    let Some(words) = ask_words(line).or_else(|| shlex::split(line)) else {
        return Err("unbalanced quotes: close the quote, or escape it with \\".to_owned());
    };
    if words.is_empty() {
        return Ok(None);
    }
    // Command names are case-insensitive (`Status`); arguments are kept as typed.
    let mut args = words.clone();
    if let Some(first) = args.first_mut() {
        *first = first.to_lowercase();
    }
    match Line::try_parse_from(&args) {
        Ok(line) => Ok(Some(line.command)),
        Err(e) => Err(explain(&e, &args)),
    }
}

/// The words of an `ask` line: the question is the rest of the line as typed (an apostrophe is
/// not a quote), after `--` when agent options come first (`ask --agent-preset claude -- why?`).
/// `None` for other commands.
fn ask_words(line: &str) -> Option<Vec<String>> {
    let trimmed = line.trim_start();
    let (first, rest) = trimmed
        .split_once(char::is_whitespace)
        .unwrap_or((trimmed, ""));
    if !first.eq_ignore_ascii_case("ask") {
        return None;
    }
    let rest = rest.trim();
    let (options, question) = match rest.strip_prefix("--") {
        Some(_) => match rest.split_once(" -- ") {
            Some((o, q)) => (shlex::split(o)?, q.trim()),
            // Options and no question: let clap say what is missing.
            None => (shlex::split(rest)?, ""),
        },
        None => (Vec::new(), rest),
    };
    let mut words = vec!["ask".to_string()];
    words.extend(options);
    if !question.is_empty() {
        words.push("--".into());
        words.push(question.to_string());
    }
    Some(words)
}

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

/// The list of commands.
pub fn help() -> String {
    let mut out = String::from(
        "commands (Tab completes commands and node ids; ↑/↓ browse the history; quotes group words):\n",
    );
    for c in commands() {
        let usage = if c.args.is_empty() {
            c.name.clone()
        } else {
            format!("{} {}", c.name, c.args)
        };
        let _ = writeln!(out, "  {usage:<26} {}", c.help);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_command() {
        let ok = |s: &str| parse(s).unwrap().unwrap();
        assert_eq!(ok("status"), Command::Status);
        assert_eq!(ok("  table "), Command::Table);
        assert_eq!(ok("Status"), Command::Status);
        assert_eq!(ok("tree"), Command::Tree);
        assert_eq!(ok("show 001_a"), Command::Show { id: "001_a".into() });
        assert_eq!(
            ok("logs 001_a"),
            Command::Logs {
                id: "001_a".into(),
                lines: DEFAULT_LOG_LINES
            }
        );
        assert_eq!(
            ok("logs 001_a 5"),
            Command::Logs {
                id: "001_a".into(),
                lines: 5
            }
        );
        assert_eq!(ok("queue"), Command::Queue);
        assert_eq!(
            ok("bump 001_a -10.5"),
            Command::Bump {
                id: "001_a".into(),
                priority: -10.5
            }
        );
        assert_eq!(ok("drop '001_a'"), Command::Drop { id: "001_a".into() });
        assert_eq!(
            ok("set max_experiments 60"),
            Command::Set {
                key: LimitKey::MaxExperiments,
                value: "60".into()
            }
        );
        assert_eq!(
            ok("set time_budget_s 2h"),
            Command::Set {
                key: LimitKey::TimeBudgetS,
                value: "2h".into()
            }
        );
        assert_eq!(ok("extend 20"), Command::Extend { n: 20 });
        assert_eq!(
            ok("add big v=8 --priority -5 --hypothesis 'big is better'"),
            Command::Add {
                name: "big".into(),
                params: vec!["v=8".into()],
                priority: Some(-5.0),
                parent: None,
                hypothesis: Some("big is better".into()),
            }
        );
        assert_eq!(
            ok("retry 001_a 002_b"),
            Command::Retry {
                ids: vec!["001_a".into(), "002_b".into()],
                all_failed: false
            }
        );
        assert_eq!(
            ok("retry --all-failed"),
            Command::Retry {
                ids: vec![],
                all_failed: true
            }
        );
        assert!(parse("retry").is_err());
        assert!(parse("retry 001_a --all-failed").is_err());
        assert_eq!(
            ok("reanalyze --metric throughput"),
            Command::Reanalyze {
                metric: Some("throughput".into())
            }
        );
        assert_eq!(ok("stop"), Command::Stop);
        assert_eq!(ok("start"), Command::Start);
        assert_eq!(ok("resume"), Command::Start);
        assert_eq!(ok("render"), Command::Render);
        assert_eq!(
            ok("report"),
            Command::Report {
                agent: false,
                agent_flags: AgentFlags::default()
            }
        );
        assert!(matches!(
            ok("report --agent"),
            Command::Report { agent: true, .. }
        ));
        assert_eq!(
            ok("ask what's the plateau? --not an option"),
            Command::Ask {
                question: vec!["what's the plateau? --not an option".into()],
                agent_flags: AgentFlags::default()
            }
        );
        match ok("ask --agent-command my-agent --fast -- why did 014 fail?") {
            Command::Ask {
                question,
                agent_flags,
            } => {
                assert_eq!(question, ["why did 014 fail?"]);
                assert_eq!(
                    agent_flags.agent_command,
                    Some(vec!["my-agent".to_string(), "--fast".to_string()])
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(parse("ask").unwrap_err().contains("usage: ask <question>"));
        assert_eq!(ok("clear"), Command::Clear);
        assert_eq!(ok("help"), Command::Help { command: None });
        assert_eq!(
            ok("? bump"),
            Command::Help {
                command: Some("bump".into())
            }
        );
        assert_eq!(ok("quit"), Command::Quit);
        assert_eq!(ok("exit"), Command::Quit);
        assert_eq!(parse("   ").unwrap(), None);
        for c in commands() {
            assert!(parse(&c.name).is_ok() || !c.args.is_empty(), "{}", c.name);
        }
    }

    #[test]
    fn explains_bad_commands() {
        let err = |s: &str| parse(s).unwrap_err();
        assert_eq!(err("bump 001_a"), "usage: bump <id> <priority>");
        assert!(err("bump 001_a high").contains("expected a priority"));
        assert!(err("bump 001_a NaN").contains("expected a priority"));
        assert_eq!(err("show"), "usage: show <id>");
        assert!(err("show ../etc").contains("not a node id"));
        assert_eq!(err("status now"), "usage: status (no arguments)");
        assert!(err("logs a 0").contains("number of lines"));
        assert_eq!(err("logs a 1 2"), "usage: logs <id> [lines]");
        assert!(err("extend 0").starts_with("usage: extend <n>") || err("extend 0").contains('0'));
        let e = err("sta");
        assert!(
            e.contains("unknown command `sta`") && e.contains("status"),
            "{e}"
        );
        let e = err("stauts");
        assert!(e.contains("did you mean status"), "{e}");
        let e = err("set max_experimnts 3");
        assert!(
            e.contains("did you mean max_experiments") && e.contains("patience"),
            "{e}"
        );
        assert!(err("show 'unbalanced").contains("unbalanced quotes"));
    }

    #[test]
    fn non_ascii_input_is_an_error_not_a_panic() {
        for line in [
            "ütatus",
            "日本",
            "é",
            "show 日本",
            "bump ü 1",
            "ß x y",
            "\u{0301}",
        ] {
            let e = parse(line).unwrap_err();
            assert!(!e.is_empty(), "{line}");
        }
        assert!(
            parse("ütatus")
                .unwrap_err()
                .contains("unknown command `ütatus`")
        );
    }

    #[test]
    fn help_lists_all_commands() {
        let h = help();
        for c in commands() {
            assert!(h.contains(&c.name));
            assert!(!c.help.is_empty(), "{} has no help line", c.name);
        }
        let names: Vec<&str> = commands().iter().map(|c| c.name.as_str()).collect();
        for want in [
            "status",
            "bump",
            "set",
            "extend",
            "add",
            "retry",
            "reanalyze",
            "clear",
            "quit",
        ] {
            assert!(names.contains(&want), "{names:?}");
        }
        assert_eq!(
            commands().iter().find(|c| c.name == "bump").unwrap().args,
            "<id> <priority>"
        );
        assert_eq!(
            commands().iter().find(|c| c.name == "add").unwrap().args,
            "<name> [param=value]"
        );
    }
}
