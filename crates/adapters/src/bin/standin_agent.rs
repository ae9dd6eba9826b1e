//! `autoresearch-standin-agent`: a stand-in coding agent without any LLM, speaking the agent
//! command-line contract (prompt on stdin, reply on stdout, `AUTORESEARCH_AGENT_PHASE` in the
//! environment, working directory = the worktree for `apply`). Used by the tests and by
//! `examples/agent-demo` (see `docs/agent.md`).
//!
//! - `plan`: proposes the ideas of an ideas file (`--ideas FILE` or `STANDIN_IDEAS`) whose name
//!   does not appear in the prompt yet, as many as the prompt's `Free slots: N` line asks for,
//!   each building on the best node so far (the last id of the prompt's path from the baseline
//!   to the best; the node planned from when there is none); `stop` when none is left.
//! - `apply`: finds the idea whose `changes` text is in the prompt and really edits the files in
//!   its working directory (each edit: `file`, `find`, `replace`; the text must be found).
//! - `analyze`: a short analysis with one finding.
//! - `report`: a final report in Markdown built from the prompt's best node, path and failures,
//!   citing their node ids (mode `cite-unknown` also cites `999_imaginary_idea`, which no run
//!   has).
//! - `ask`: a plain-text answer printed line by line (waiting after the first line until the
//!   file `STANDIN_GATE` exists, when set), naming the best node and the files it was given of
//!   the nodes in the question, and proposing to bump the first queued experiment to priority
//!   -5 (or the actions JSON in `STANDIN_ACTIONS`, `{"actions": [...]}`).
//!
//! Ideas file: `[{"name", "hypothesis", "params": {…}, "changes": "…", "edits": [{"file",
//! "find", "replace"}]}]`.
//!
//! Reply wrapping (`--format` or `STANDIN_FORMAT`): `plain` (JSON alone, default), `prose`
//! (JSON in a fenced block inside text), `claude` (Claude Code's result envelope, cost from
//! `STANDIN_COST_USD`, default 0.01), `codex` (Codex `exec --json` events).
//!
//! Test modes (`--mode` or `STANDIN_MODE`): `ideas` (default), `garbage`, `garbage-then-good`
//! (garbage on the first call, state kept in `STANDIN_STATE`), `hang` (starts a grandchild
//! `sleep`, writes both pids to `STANDIN_PIDFILE`, sleeps forever), `exit` (status 3),
//! `huge` (a valid 5 MB reply), `stop`, `claude-error` (an envelope with `is_error: true`),
//! `protected` (apply also writes `STANDIN_PROTECTED_FILE`, default `bench.py`), `duplicate`
//! (proposes the first idea twice, ignoring the history). Every call appends its phase to
//! `STANDIN_CALLS` when set, so tests can count calls.
//!
//! `STANDIN_WAIT_FILE`: after doing its work (an apply has edited the files) and before printing
//! its answer, the agent waits until this file exists (at most 120 s), having written its pid to
//! `STANDIN_PIDFILE` when set; `{n}` in the path is the number of calls of this phase so far
//! (counted in `STANDIN_CALLS`), so each call can have its own gate. `STANDIN_WAIT_PHASE`
//! limits the wait to one phase. Tests use it to kill the engine in the middle of a call.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Debug, Deserialize)]
struct Idea {
    name: String,
    #[serde(default)]
    hypothesis: String,
    #[serde(default)]
    params: serde_json::Map<String, Value>,
    #[serde(default)]
    changes: Option<String>,
    #[serde(default)]
    edits: Vec<Edit>,
}

#[derive(Debug, Deserialize)]
struct Edit {
    file: String,
    find: String,
    replace: String,
}

struct Options {
    ideas: Option<PathBuf>,
    mode: String,
    format: String,
}

fn options() -> Result<Options> {
    let mut opts = Options {
        ideas: std::env::var_os("STANDIN_IDEAS").map(PathBuf::from),
        mode: std::env::var("STANDIN_MODE").unwrap_or_else(|_| "ideas".into()),
        format: std::env::var("STANDIN_FORMAT").unwrap_or_else(|_| "plain".into()),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |flag: &str| args.next().with_context(|| format!("{flag} needs a value"));
        match a.as_str() {
            "--ideas" => opts.ideas = Some(PathBuf::from(value("--ideas")?)),
            "--mode" => opts.mode = value("--mode")?,
            "--format" => opts.format = value("--format")?,
            other => {
                bail!("unknown argument {other:?} (expected --ideas FILE, --mode M, --format F)")
            }
        }
    }
    Ok(opts)
}

fn load_ideas(path: Option<&Path>) -> Result<Vec<Idea>> {
    let Some(path) = path else {
        bail!("no ideas file: pass --ideas FILE or set STANDIN_IDEAS");
    };
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("{}: expected a JSON array of ideas", path.display()))
}

fn free_slots(prompt: &str) -> usize {
    prompt
        .lines()
        .find_map(|l| l.trim().strip_prefix("Free slots:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(1)
        .max(1)
}

fn proposal(idea: &Idea) -> Value {
    json!({"name": idea.name, "hypothesis": idea.hypothesis, "params": idea.params,
           "changes": idea.changes})
}

/// The best node of the plan prompt: the last id of its path from the baseline to the best.
fn best_node(prompt: &str) -> Option<String> {
    let line = section(prompt, "Path from the baseline to the best")
        .into_iter()
        .next()?;
    let last = line.rsplit('→').next()?.trim();
    (!last.is_empty() && last.starts_with(|c: char| c.is_ascii_digit())).then(|| last.to_string())
}

fn plan(prompt: &str, opts: &Options) -> Result<Value> {
    if opts.mode == "stop" {
        return Ok(json!({"action": "stop", "reasoning": "stand-in: asked to stop"}));
    }
    let ideas = load_ideas(opts.ideas.as_deref())?;
    if opts.mode == "duplicate" {
        let first = ideas.first().context("the ideas file is empty")?;
        return Ok(
            json!({"action": "launch", "reasoning": "stand-in: duplicate on purpose",
                         "experiments": [proposal(first), proposal(first)]}),
        );
    }
    let fresh: Vec<&Idea> = ideas
        .iter()
        .filter(|i| !prompt.contains(i.name.as_str()))
        .collect();
    if fresh.is_empty() {
        return Ok(json!({"action": "stop", "reasoning": "stand-in: every idea has been tried"}));
    }
    let best = best_node(prompt);
    let experiments: Vec<Value> = fresh
        .iter()
        .take(free_slots(prompt))
        .map(|i| {
            let mut p = proposal(i);
            p["parent"] = json!(best);
            p
        })
        .collect();
    let mut reasoning = format!("stand-in: {} untried idea(s) left", fresh.len());
    if opts.mode == "huge" {
        reasoning.push(' ');
        reasoning.push_str(&"x".repeat(5 << 20));
    }
    Ok(json!({"action": "launch", "reasoning": reasoning, "experiments": experiments}))
}

fn apply(prompt: &str, opts: &Options) -> Result<String> {
    let ideas = load_ideas(opts.ideas.as_deref())?;
    let idea = ideas
        .iter()
        .filter(|i| {
            i.changes
                .as_deref()
                .is_some_and(|c| !c.is_empty() && prompt.contains(c))
        })
        .max_by_key(|i| i.changes.as_deref().map_or(0, str::len))
        .context("no idea's `changes` text appears in the prompt")?;
    let cwd = std::env::current_dir()?;
    for e in &idea.edits {
        let path = cwd.join(&e.file);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        if !text.contains(&e.find) {
            bail!("{}: the text to replace is not there: {:?}", e.file, e.find);
        }
        std::fs::write(&path, text.replacen(&e.find, &e.replace, 1))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if opts.mode == "protected" {
        let file = std::env::var("STANDIN_PROTECTED_FILE").unwrap_or_else(|_| "bench.py".into());
        let path = cwd.join(&file);
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        writeln!(f, "# the stand-in agent was here")?;
    }
    Ok(format!(
        "Applied {} edit(s) for {}.",
        idea.edits.len(),
        idea.name
    ))
}

fn wrap(answer: &str, format: &str) -> String {
    let prose = || format!("Here is my answer.\n\n```json\n{answer}\n```\n\nThat is all.");
    match format {
        "prose" => prose(),
        "claude" | "codex" => envelope(&prose(), format),
        _ => answer.to_string(),
    }
}

/// `message` as Claude Code's result envelope or as Codex `exec --json` events.
fn envelope(message: &str, format: &str) -> String {
    let cost = std::env::var("STANDIN_COST_USD")
        .ok()
        .and_then(|c| c.parse::<f64>().ok())
        .unwrap_or(0.01);
    if format == "claude" {
        return json!({"type": "result", "subtype": "success", "is_error": false,
                      "result": message, "total_cost_usd": cost, "num_turns": 1,
                      "usage": {"input_tokens": 100, "output_tokens": 20}})
        .to_string();
    }
    [
        json!({"type": "thread.started", "thread_id": "standin"}),
        json!({"type": "turn.started"}),
        json!({"type": "item.completed", "item": {"id": "0", "type": "reasoning", "text": "thinking"}}),
        json!({"type": "item.completed", "item": {"id": "1", "type": "agent_message", "text": message}}),
        json!({"type": "turn.completed", "usage": {"input_tokens": 100, "cached_input_tokens": 60, "output_tokens": 20}}),
    ]
    .iter()
    .map(|v| v.to_string() + "\n")
    .collect()
}

/// The lines of the prompt's section `## <title>` (up to the next `## `).
fn section<'a>(prompt: &'a str, title: &str) -> Vec<&'a str> {
    let head = format!("## {title}");
    prompt
        .lines()
        .skip_while(|l| l.trim() != head)
        .skip(1)
        .take_while(|l| !l.starts_with("## "))
        .filter(|l| !l.trim().is_empty())
        .collect()
}

/// The cells of a Markdown table row.
fn cells(row: &str) -> Vec<String> {
    row.trim()
        .trim_matches('|')
        .split(" | ")
        .map(|c| c.trim().to_string())
        .collect()
}

fn report(prompt: &str, mode: &str) -> String {
    let best_line = prompt
        .lines()
        .find_map(|l| l.strip_prefix("Best node: "))
        .unwrap_or("");
    let best = best_line.split_whitespace().next().unwrap_or("");
    let path = section(prompt, "Path from the baseline to the best");
    let steps: Vec<Vec<String>> = path
        .iter()
        .filter(|l| l.starts_with("| ") && l[2..].starts_with(|c: char| c.is_ascii_digit()))
        .map(|l| cells(l))
        .filter(|c| c.len() >= 6)
        .collect();
    let ids: Vec<String> = steps
        .iter()
        .map(|c| c[1].trim_end_matches(" *").to_string())
        .collect();
    let mut out = String::from("## What was learned\n");
    if best.is_empty() {
        out.push_str("No experiment has a value yet, so nothing is established.\n");
    } else {
        out.push_str(&format!("The best result is [{best}]: {best_line}."));
        if ids.len() > 1 {
            let cited: Vec<String> = ids.iter().map(|i| format!("[{i}]")).collect();
            out.push_str(&format!(" It was reached by {}.", cited.join(" → ")));
        }
        out.push('\n');
    }
    out.push_str("\n## What worked and why\n");
    let mut any = false;
    for c in steps.iter().skip(1) {
        let id = c[1].trim_end_matches(" *");
        let diff = if c[3] == "-" {
            String::new()
        } else {
            format!(" (code: {})", c[3])
        };
        out.push_str(&format!(
            "- [{id}] changed {}{diff}, giving {} ({} vs the baseline).\n",
            c[2], c[4], c[5]
        ));
        any = true;
    }
    if !any {
        out.push_str("- Nothing beat the baseline.\n");
    }
    out.push_str("\n## What did not work\n");
    let failures: Vec<&str> = section(prompt, "Failures by kind")
        .into_iter()
        .filter(|l| l.starts_with("- "))
        .collect();
    if failures.is_empty() || failures[0].contains("(none)") {
        out.push_str("- No experiment failed.\n");
    }
    for f in failures.iter().filter(|f| !f.contains("(none)")) {
        let (kind, rest) = f[2..].split_once(':').unwrap_or((&f[2..], ""));
        let nodes: Vec<String> = rest
            .split_once("(nodes: ")
            .map(|(_, n)| n.trim_end_matches(')'))
            .unwrap_or("")
            .split(", ")
            .filter(|n| !n.is_empty() && !n.starts_with('…'))
            .map(|n| format!("[{n}]"))
            .collect();
        out.push_str(&format!("- {kind}: {} failed.\n", nodes.join(", ")));
    }
    out.push_str("\n## What to try next\n");
    if !best.is_empty() {
        out.push_str(&format!("- Explore further around [{best}].\n"));
    }
    if mode == "cite-unknown" {
        out.push_str("- Revisit the idea of [999_imaginary_idea], which looked promising.\n");
    }
    out
}

/// The answer to the question in the prompt, as lines.
fn ask(prompt: &str) -> Result<Vec<String>> {
    let question = section(prompt, "The question").join(" ");
    let mut lines = vec![format!("Stand-in answer to: {}", question.trim())];
    if let Some(best) = prompt.lines().find_map(|l| l.strip_prefix("Best node: ")) {
        lines.push(format!("The best so far is {best}."));
    }
    for l in section(prompt, "Files of the experiments named in the question") {
        if let Some(node) = l.strip_prefix("### ") {
            lines.push(format!("I read the files of {node}:"));
        } else if let Some(f) = l.strip_prefix('`').and_then(|f| f.strip_suffix("`:")) {
            lines.push(format!("- {f}"));
        } else if let Some(k) = l.trim().strip_prefix("\"kind\": ") {
            lines.push(format!("  its failure kind is {}", k.trim_end_matches(',')));
        }
    }
    let actions = match std::env::var("STANDIN_ACTIONS") {
        Ok(a) => Some(serde_json::from_str::<Value>(&a).context("STANDIN_ACTIONS is not JSON")?),
        Err(_) => section(prompt, "Queued and running right now")
            .iter()
            .find_map(|l| {
                let (id, rest) = l.strip_prefix("- ")?.split_once(' ')?;
                rest.starts_with("(queued").then(|| id.to_string())
            })
            .map(|id| {
                lines.push(format!(
                    "{id} is queued; running it next would test it sooner."
                ));
                json!({"actions": [{"action": "bump", "id": id, "priority": -5}]})
            }),
    };
    if let Some(a) = actions {
        lines.push(String::new());
        lines.push("```json".into());
        lines.push(a.to_string());
        lines.push("```".into());
    }
    Ok(lines)
}

/// Prints `lines` one by one, flushing each; after the first, waits for `STANDIN_GATE` when set
/// (so a test can see the first line arrive before the rest).
fn stream_lines(lines: &[String]) -> Result<()> {
    let gate = std::env::var_os("STANDIN_GATE").map(PathBuf::from);
    let mut stdout = std::io::stdout().lock();
    for (i, line) in lines.iter().enumerate() {
        writeln!(stdout, "{line}")?;
        stdout.flush()?;
        if i == 0
            && let Some(gate) = &gate
        {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
            while !gate.exists() && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
    }
    Ok(())
}

/// A text answer (report, ask) in the requested output format: as is, or as the message of a
/// Claude or Codex envelope.
fn wrap_text(answer: &str, format: &str) -> String {
    match format {
        "claude" | "codex" => envelope(answer, format),
        _ => answer.to_string(),
    }
}

fn hang() -> Result<()> {
    let child = std::process::Command::new("sleep")
        .arg("1000")
        .spawn()
        .context("starting sleep")?;
    if let Some(file) = std::env::var_os("STANDIN_PIDFILE") {
        std::fs::write(&file, format!("{} {}\n", std::process::id(), child.id()))?;
    }
    loop {
        std::thread::sleep(std::time::Duration::from_secs(60));
    }
}

fn run() -> Result<()> {
    let opts = options()?;
    let phase =
        std::env::var("AUTORESEARCH_AGENT_PHASE").context("AUTORESEARCH_AGENT_PHASE is not set")?;
    let mut prompt = String::new();
    std::io::stdin()
        .read_to_string(&mut prompt)
        .context("reading the prompt from stdin")?;
    if let Some(calls) = std::env::var_os("STANDIN_CALLS") {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(calls)?;
        writeln!(f, "{phase}")?;
    }
    let mut mode = opts.mode.clone();
    if mode == "garbage-then-good" {
        let state =
            std::env::var_os("STANDIN_STATE").context("garbage-then-good needs STANDIN_STATE")?;
        if Path::new(&state).exists() {
            mode = "ideas".into();
        } else {
            std::fs::write(&state, "called\n")?;
            mode = "garbage".into();
        }
    }
    let out = match mode.as_str() {
        "garbage" => "I am not sure what to do here; maybe try something faster?".to_string(),
        "hang" => return hang(),
        "exit" => {
            print!("partial output");
            eprintln!("stand-in agent: simulated crash");
            std::process::exit(3);
        }
        "claude-error" => json!({"type": "result", "subtype": "success", "is_error": true,
                                 "result": "API Error: 529 overloaded", "total_cost_usd": 0.002})
        .to_string(),
        _ => {
            let opts = Options {
                mode: mode.clone(),
                ..opts
            };
            let answer = match phase.as_str() {
                "report" => wrap_text(&report(&prompt, &mode), &opts.format),
                "ask" if opts.format == "plain" => return stream_lines(&ask(&prompt)?),
                "ask" => wrap_text(&ask(&prompt)?.join("\n"), &opts.format),
                "plan" => plan(&prompt, &opts)?.to_string(),
                "apply" => apply(&prompt, &opts)?,
                "analyze" => json!({"analysis": "## Stand-in analysis\nThe job ran.",
                                    "findings": ["the stand-in agent read the job's output"]})
                .to_string(),
                other => bail!("unknown AUTORESEARCH_AGENT_PHASE {other:?}"),
            };
            if matches!(phase.as_str(), "report" | "ask") {
                answer
            } else {
                wrap(&answer, &opts.format)
            }
        }
    };
    wait_for_gate(&phase)?;
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(out.as_bytes())?;
    stdout.flush()?;
    Ok(())
}

/// Waits for `STANDIN_WAIT_FILE` (see the module comment).
fn wait_for_gate(phase: &str) -> Result<()> {
    let Ok(file) = std::env::var("STANDIN_WAIT_FILE") else {
        return Ok(());
    };
    if std::env::var("STANDIN_WAIT_PHASE").is_ok_and(|p| p != phase) {
        return Ok(());
    }
    let n = std::env::var_os("STANDIN_CALLS")
        .and_then(|c| std::fs::read_to_string(c).ok())
        .map_or(0, |t| t.lines().filter(|l| *l == phase).count());
    let gate = PathBuf::from(file.replace("{n}", &n.to_string()));
    if let Some(pidfile) = std::env::var_os("STANDIN_PIDFILE") {
        std::fs::write(&pidfile, format!("{}\n", std::process::id()))?;
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !gate.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("autoresearch-standin-agent: {e:#}");
        std::process::exit(2);
    }
}
