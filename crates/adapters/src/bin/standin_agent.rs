//! `autoresearch-standin-agent`: a stand-in coding agent without any LLM, speaking the agent
//! command-line contract (prompt on stdin, reply on stdout, `AUTORESEARCH_AGENT_PHASE` in the
//! environment, working directory = the worktree for `apply`). Used by the tests and by
//! `examples/agent-demo` (see `docs/agent.md`).
//!
//! - `plan`: proposes the ideas of an ideas file (`--ideas FILE` or `STANDIN_IDEAS`) whose name
//!   does not appear in the prompt yet, as many as the prompt's `Free slots: N` line asks for;
//!   `stop` when none is left.
//! - `apply`: finds the idea whose `changes` text is in the prompt and really edits the files in
//!   its working directory (each edit: `file`, `find`, `replace`; the text must be found).
//! - `analyze`: a short analysis with one finding.
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
    let experiments: Vec<Value> = fresh
        .iter()
        .take(free_slots(prompt))
        .map(|i| proposal(i))
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
    let cost = std::env::var("STANDIN_COST_USD")
        .ok()
        .and_then(|c| c.parse::<f64>().ok())
        .unwrap_or(0.01);
    match format {
        "prose" => prose(),
        "claude" => json!({"type": "result", "subtype": "success", "is_error": false,
                           "result": prose(), "total_cost_usd": cost, "num_turns": 1,
                           "usage": {"input_tokens": 100, "output_tokens": 20}})
        .to_string(),
        "codex" => [
            json!({"type": "thread.started", "thread_id": "standin"}),
            json!({"type": "turn.started"}),
            json!({"type": "item.completed", "item": {"id": "0", "type": "reasoning", "text": "thinking"}}),
            json!({"type": "item.completed", "item": {"id": "1", "type": "agent_message", "text": prose()}}),
            json!({"type": "turn.completed", "usage": {"input_tokens": 100, "cached_input_tokens": 60, "output_tokens": 20}}),
        ]
        .iter()
        .map(|v| v.to_string() + "\n")
        .collect(),
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
                "plan" => plan(&prompt, &opts)?.to_string(),
                "apply" => apply(&prompt, &opts)?,
                "analyze" => json!({"analysis": "## Stand-in analysis\nThe job ran.",
                                    "findings": ["the stand-in agent read the job's output"]})
                .to_string(),
                other => bail!("unknown AUTORESEARCH_AGENT_PHASE {other:?}"),
            };
            wrap(&answer, &opts.format)
        }
    };
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(out.as_bytes())?;
    stdout.flush()?;
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("autoresearch-standin-agent: {e:#}");
        std::process::exit(2);
    }
}
