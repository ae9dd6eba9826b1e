//! The session commands (design §5): parsing a line into a [`Command`] and carrying it out on
//! the workdir. Every command works whether or not an engine is running; queue changes go
//! through `supervisor queue`'s code (the control inbox when live, a checkpoint edit when not).

use std::fmt::Write as _;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use autoresearch_adapters::config::{format_number, value_to_raw};
use autoresearch_adapters::model::{Failure, JobRecord, NodeResult, NodeSpec};
use autoresearch_adapters::workdir::Workdir;

use crate::commands::{launch, queue, status, stop, table, tree};

/// How long `stop` waits for the engine to write its final checkpoint.
const STOP_TIMEOUT: Duration = Duration::from_secs(120);
/// Lines shown per file by `logs` unless a count is given.
const DEFAULT_LOG_LINES: usize = 20;

/// A session command's name, its arguments (for help and hints) and what it does.
#[derive(Debug, Clone, Copy)]
pub struct CommandInfo {
    /// The word typed.
    pub name: &'static str,
    /// Its arguments, e.g. `<id> <priority>` (empty if none).
    pub args: &'static str,
    /// One line of help.
    pub help: &'static str,
}

/// Every session command, in the order `help` lists them.
pub const COMMANDS: &[CommandInfo] = &[
    CommandInfo {
        name: "status",
        args: "",
        help: "engine status, counts, best so far, running jobs",
    },
    CommandInfo {
        name: "table",
        args: "",
        help: "all experiments as a table",
    },
    CommandInfo {
        name: "tree",
        args: "",
        help: "the hypothesis tree as indented text",
    },
    CommandInfo {
        name: "show",
        args: "<id>",
        help: "one experiment: parameters, command, result or failure, job",
    },
    CommandInfo {
        name: "logs",
        args: "<id> [lines]",
        help: "the end of an experiment's stdout.log and stderr.log",
    },
    CommandInfo {
        name: "queue",
        args: "",
        help: "queued experiments in run order",
    },
    CommandInfo {
        name: "bump",
        args: "<id> <priority>",
        help: "set a queued experiment's priority (lower runs first)",
    },
    CommandInfo {
        name: "drop",
        args: "<id>",
        help: "remove a queued experiment",
    },
    CommandInfo {
        name: "stop",
        args: "",
        help: "interrupt the engine gracefully (running jobs keep going; `start` resumes)",
    },
    CommandInfo {
        name: "start",
        args: "",
        help: "start (or resume) the engine in the background",
    },
    CommandInfo {
        name: "render",
        args: "",
        help: "write master_table.tsv, summary.md, progress.png, hypothesis_tree.png",
    },
    CommandInfo {
        name: "report",
        args: "",
        help: "write report.md",
    },
    CommandInfo {
        name: "help",
        args: "",
        help: "this list",
    },
    CommandInfo {
        name: "quit",
        args: "",
        help: "leave the session (Ctrl+D too); the engine keeps running",
    },
];

/// Whether the command's first argument is a node id (completed from `engine/nodes/`).
pub fn takes_node_id(name: &str) -> bool {
    matches!(name, "show" | "logs" | "bump" | "drop")
}

/// A parsed session command.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// `status`
    Status,
    /// `table`
    Table,
    /// `tree`
    Tree,
    /// `show <id>`
    Show(String),
    /// `logs <id> [lines]`
    Logs(String, usize),
    /// `queue`
    Queue,
    /// `bump <id> <priority>`
    Bump(String, f64),
    /// `drop <id>`
    Drop(String),
    /// `stop`
    Stop,
    /// `start`
    Start,
    /// `render`
    Render,
    /// `report`
    Report,
    /// `help`
    Help,
    /// `quit`
    Quit,
}

/// Parses a line; `Ok(None)` for an empty line, `Err` with what to type instead.
pub fn parse(line: &str) -> Result<Option<Command>, String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let Some((&name, args)) = words.split_first() else {
        return Ok(None);
    };
    let usage = |name: &str| -> String {
        let info = COMMANDS.iter().find(|c| c.name == name);
        match info {
            Some(c) if !c.args.is_empty() => format!("usage: {} {}", c.name, c.args),
            _ => format!("usage: {name} (no arguments)"),
        }
    };
    let arity = |min: usize, max: usize| -> Result<(), String> {
        if args.len() < min || args.len() > max {
            Err(usage(name))
        } else {
            Ok(())
        }
    };
    let id = |s: &str| -> Result<String, String> {
        if is_node_id(s) {
            Ok(s.to_string())
        } else {
            Err(format!(
                "{s:?} is not a node id (letters, digits, `.`, `_`, `-`; Tab completes them)"
            ))
        }
    };
    let cmd = match name {
        "status" => arity(0, 0).map(|_| Command::Status)?,
        "table" => arity(0, 0).map(|_| Command::Table)?,
        "tree" => arity(0, 0).map(|_| Command::Tree)?,
        "queue" => arity(0, 0).map(|_| Command::Queue)?,
        "stop" => arity(0, 0).map(|_| Command::Stop)?,
        "start" | "resume" => arity(0, 0).map(|_| Command::Start)?,
        "render" => arity(0, 0).map(|_| Command::Render)?,
        "report" => arity(0, 0).map(|_| Command::Report)?,
        "help" | "?" => Command::Help,
        "quit" | "exit" => arity(0, 0).map(|_| Command::Quit)?,
        "show" => {
            arity(1, 1)?;
            Command::Show(id(args[0])?)
        }
        "drop" => {
            arity(1, 1)?;
            Command::Drop(id(args[0])?)
        }
        "logs" => {
            arity(1, 2)?;
            let lines = match args.get(1) {
                None => DEFAULT_LOG_LINES,
                Some(n) => n
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| format!("expected a number of lines ≥ 1, found {n:?}"))?,
            };
            Command::Logs(id(args[0])?, lines)
        }
        "bump" => {
            arity(2, 2)?;
            let priority = args[1]
                .parse::<f64>()
                .ok()
                .filter(|p| p.is_finite())
                .ok_or_else(|| {
                    format!(
                        "expected a priority (a number; lower runs first), found {:?}",
                        args[1]
                    )
                })?;
            Command::Bump(id(args[0])?, priority)
        }
        other => {
            let close: Vec<&str> = COMMANDS
                .iter()
                .map(|c| c.name)
                .filter(|c| c.starts_with(&other[..1.min(other.len())]))
                .collect();
            let hint = if close.is_empty() {
                String::new()
            } else {
                format!(" (did you mean {}?)", close.join(", "))
            };
            return Err(format!(
                "unknown command `{other}`{hint}; `help` lists the commands"
            ));
        }
    };
    Ok(Some(cmd))
}

/// A node id as the engine allows them: `[A-Za-z0-9._-]{1,128}`, and not `.` or `..`.
pub fn is_node_id(s: &str) -> bool {
    (1..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        && s != "."
        && s != ".."
}

/// What the session does after a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Read the next command.
    Continue,
    /// Leave the session.
    Quit,
}

/// Carries out `cmd` on `workdir`, writing what it has to say to `out` as it goes (so `stop`
/// says what it is doing before it waits).
pub fn execute(workdir: &Path, cmd: &Command, out: &mut dyn Write) -> Result<Flow> {
    match cmd {
        Command::Status => put(out, &status::format_human(&status::gather(workdir)?)),
        Command::Table => put(out, &table::format_table(workdir)?),
        Command::Tree => put(out, &tree::format_tree(workdir)?),
        Command::Show(id) => put(out, &show(workdir, id)?),
        Command::Logs(id, n) => put(out, &logs(workdir, id, *n)?),
        Command::Queue => put(out, &queue::format_list(&queue::list(workdir)?)),
        Command::Bump(id, p) => put(out, &queue::bump(workdir, id, *p)?),
        Command::Drop(id) => put(out, &queue::drop(workdir, id)?),
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
        Command::Report => {
            let path = crate::render::render_report(workdir)?;
            put(out, &format!("wrote {}", path.display()));
        }
        Command::Help => put(out, &help()),
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
    let mut out =
        String::from("commands (Tab completes commands and node ids; ↑/↓ browse the history):\n");
    for c in COMMANDS {
        let usage = if c.args.is_empty() {
            c.name.to_string()
        } else {
            format!("{} {}", c.name, c.args)
        };
        let _ = writeln!(out, "  {usage:<22} {}", c.help);
    }
    out
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Option<T> {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
}

/// `show <id>`: everything known about one node.
pub fn show(workdir: &Path, id: &str) -> Result<String> {
    let wd = Workdir::new(workdir);
    if !wd.node_dir(id).is_dir() {
        bail!("there is no node {id} (`table` lists them; Tab completes ids)");
    }
    let spec: Option<NodeSpec> = read_json(&wd.node_spec(id));
    let status = std::fs::read_to_string(wd.node_status(id))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    let result: Option<NodeResult> = read_json(&wd.node_result(id));
    let failure: Option<Failure> = read_json(&wd.node_failure(id));
    let job: Option<JobRecord> = read_json(&wd.run_dir(id).join("job.json"));
    let metric = read_json::<serde_json::Value>(&wd.config())
        .and_then(|c| c["objective"]["metric"].as_str().map(str::to_string))
        .unwrap_or_else(|| "primary".into());

    let mut out = String::new();
    let name = spec.as_ref().map(|s| s.name.as_str()).unwrap_or("?");
    let _ = writeln!(out, "{id} ({name}): {status}");
    let mut field = |k: &str, v: &str| {
        if !v.is_empty() {
            let _ = writeln!(out, "  {k:<11} {v}");
        }
    };
    if let Some(s) = &spec {
        field("parent", s.parent_id.as_deref().unwrap_or("(root)"));
        let params: Vec<String> = s
            .params
            .iter()
            .map(|(k, v)| format!("{k}={}", value_to_raw(v)))
            .collect();
        field("params", &params.join(" "));
        field("command", &s.command);
        field("hypothesis", &s.hypothesis);
        if let Some(c) = &s.changes {
            field("changes", c);
        }
        field("priority", &format_number(s.priority));
        field("created", &s.created_at);
    }
    if let Some(r) = &result {
        let value = r.primary.map(format_number).unwrap_or_else(|| "?".into());
        let best = if r.improved {
            " (improved on the best)"
        } else {
            ""
        };
        let exit = r
            .exit_code
            .map(|c| format!(", exit {c}"))
            .unwrap_or_default();
        field(
            "result",
            &format!("{metric}={value}{best} in {:.1}s{exit}", r.duration_s),
        );
        let others: Vec<String> = r
            .metrics
            .iter()
            .filter(|(k, _)| **k != metric)
            .map(|(k, v)| format!("{k}={}", format_number(*v)))
            .collect();
        field("metrics", &others.join(" "));
        field("children", &r.children.join(" "));
        field("analysis", r.analysis.lines().next().unwrap_or(""));
    }
    if let Some(f) = &failure {
        field(
            "failure",
            &format!("{} in {}: {}", f.kind.as_str(), f.phase, f.message),
        );
    }
    if let Some(j) = &job {
        let attempt = if j.attempt > 1 {
            format!(" (attempt {})", j.attempt)
        } else {
            String::new()
        };
        field(
            "job",
            &format!(
                "{} on {}, started {}{attempt}",
                j.job_id, j.host, j.started_at
            ),
        );
    }
    let run_dir = wd.run_dir(id);
    if run_dir.is_dir() {
        field("run dir", &run_dir.display().to_string());
    }
    Ok(out)
}

/// `logs <id> [lines]`: the last lines of the node's stdout and stderr.
pub fn logs(workdir: &Path, id: &str, lines: usize) -> Result<String> {
    let wd = Workdir::new(workdir);
    let run_dir = wd.run_dir(id);
    if !run_dir.is_dir() {
        if wd.node_dir(id).is_dir() {
            bail!("{id} has not run yet: no {}", run_dir.display());
        }
        bail!("there is no node {id} (`table` lists them; Tab completes ids)");
    }
    let mut out = String::new();
    for name in ["stdout.log", "stderr.log"] {
        let path: PathBuf = run_dir.join(name);
        match tail_lines(&path, lines) {
            Ok(tail) if tail.is_empty() => {
                let _ = writeln!(out, "── {name}: empty");
            }
            Ok(tail) => {
                let _ = writeln!(out, "── {name} (last {} lines)", tail.len());
                for l in tail {
                    let _ = writeln!(out, "{l}");
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let _ = writeln!(out, "── {name}: not written yet");
            }
            Err(e) => {
                return Err(e).with_context(|| format!("reading {}", path.display()));
            }
        }
    }
    Ok(out)
}

/// The last `n` lines of a file, reading at most its last 256 KiB.
pub fn tail_lines(path: &Path, n: usize) -> std::io::Result<Vec<String>> {
    const WINDOW: u64 = 256 * 1024;
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    let start = len.saturating_sub(WINDOW);
    file.seek(SeekFrom::Start(start))?;
    let mut bytes = Vec::with_capacity((len - start) as usize);
    file.read_to_end(&mut bytes)?;
    let text = String::from_utf8_lossy(&bytes);
    let mut all: Vec<&str> = text.lines().collect();
    if start > 0 && !all.is_empty() {
        all.remove(0); // probably cut in the middle
    }
    let from = all.len().saturating_sub(n);
    Ok(all[from..].iter().map(|s| s.to_string()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_command() {
        let ok = |s: &str| parse(s).unwrap().unwrap();
        assert_eq!(ok("status"), Command::Status);
        assert_eq!(ok("  table "), Command::Table);
        assert_eq!(ok("tree"), Command::Tree);
        assert_eq!(ok("show 001_a"), Command::Show("001_a".into()));
        assert_eq!(
            ok("logs 001_a"),
            Command::Logs("001_a".into(), DEFAULT_LOG_LINES)
        );
        assert_eq!(ok("logs 001_a 5"), Command::Logs("001_a".into(), 5));
        assert_eq!(ok("queue"), Command::Queue);
        assert_eq!(ok("bump 001_a -10.5"), Command::Bump("001_a".into(), -10.5));
        assert_eq!(ok("drop 001_a"), Command::Drop("001_a".into()));
        assert_eq!(ok("stop"), Command::Stop);
        assert_eq!(ok("start"), Command::Start);
        assert_eq!(ok("render"), Command::Render);
        assert_eq!(ok("report"), Command::Report);
        assert_eq!(ok("help"), Command::Help);
        assert_eq!(ok("quit"), Command::Quit);
        assert_eq!(ok("exit"), Command::Quit);
        assert_eq!(parse("   ").unwrap(), None);
        for c in COMMANDS {
            assert!(parse(c.name).is_ok() || !c.args.is_empty(), "{}", c.name);
        }
    }

    #[test]
    fn explains_bad_commands() {
        assert!(
            parse("bump 001_a")
                .unwrap_err()
                .contains("usage: bump <id> <priority>")
        );
        assert!(
            parse("bump 001_a high")
                .unwrap_err()
                .contains("expected a priority")
        );
        assert!(
            parse("bump 001_a NaN")
                .unwrap_err()
                .contains("expected a priority")
        );
        assert!(parse("show").unwrap_err().contains("usage: show <id>"));
        assert!(parse("show ../etc").unwrap_err().contains("not a node id"));
        assert!(parse("status now").unwrap_err().contains("no arguments"));
        assert!(parse("logs a 0").unwrap_err().contains("number of lines"));
        let e = parse("sta").unwrap_err();
        assert!(
            e.contains("unknown command `sta`") && e.contains("status"),
            "{e}"
        );
    }

    #[test]
    fn shows_a_node_and_its_logs() {
        let dir = tempfile::tempdir().unwrap();
        let wd = Workdir::new(dir.path());
        std::fs::create_dir_all(wd.node_dir("001_a")).unwrap();
        std::fs::create_dir_all(wd.run_dir("001_a")).unwrap();
        std::fs::write(
            wd.config(),
            r#"{"objective":{"metric":"score","direction":"maximize"}}"#,
        )
        .unwrap();
        std::fs::write(
            wd.node_spec("001_a"),
            r#"{"node_id":"001_a","name":"a","parent_id":"000_baseline","hypothesis":"more is better","params":{"x":4},"changes":null,"command":"run --x 4","priority":-3,"created_at":"2026-01-01T00:00:00Z"}"#,
        )
        .unwrap();
        std::fs::write(wd.node_status("001_a"), "completed\n").unwrap();
        std::fs::write(
            wd.node_result("001_a"),
            r#"{"metrics":{"score":7,"mem":3},"primary":7,"improved":true,"duration_s":1.5,"exit_code":0,"children":["002_b"],"analysis":"fine"}"#,
        )
        .unwrap();
        let text = show(dir.path(), "001_a").unwrap();
        for want in [
            "001_a (a): completed",
            "parent      000_baseline",
            "params      x=4",
            "command     run --x 4",
            "score=7 (improved on the best) in 1.5s, exit 0",
            "metrics     mem=3",
            "children    002_b",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
        assert!(show(dir.path(), "009_nope").is_err());

        let lines: String = (1..=30).map(|i| format!("line {i}\n")).collect();
        std::fs::write(wd.run_dir("001_a").join("stdout.log"), lines).unwrap();
        let text = logs(dir.path(), "001_a", 3).unwrap();
        assert!(
            text.contains("stdout.log (last 3 lines)\nline 28\nline 29\nline 30\n"),
            "{text}"
        );
        assert!(text.contains("stderr.log: not written yet"), "{text}");
    }

    #[test]
    fn help_lists_all_commands() {
        let h = help();
        for c in COMMANDS {
            assert!(h.contains(c.name));
        }
    }
}
