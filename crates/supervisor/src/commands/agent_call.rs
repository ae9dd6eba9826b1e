//! The agent behind `report --agent` and `ask`: which one (the run's `planner.agent`, or the
//! `--agent-*` flags), and one run-level call through the planner's agent client (own process
//! group, timeout, `logs/agent/`, journal under `engine/agent/`), its cost appended to
//! `logs/agent/costs.jsonl` (never to `state.json`, which a running engine owns).

use std::path::Path;

use anyhow::{Context, Result};
use autoresearch_adapters::agent::cost_log::{self, CostLine};
use autoresearch_adapters::agent::{AgentClient, AgentPhase, CallOutcome};
use autoresearch_adapters::config::agent::{AgentConfig, AgentPreset};
use autoresearch_adapters::config::{Config, PlannerKind};
use autoresearch_adapters::workdir::Workdir;
use clap::{Args, ValueEnum};

/// Which agent to call when the run's planner is not the agent (or to call another one).
#[derive(Debug, Args, Default, Clone, PartialEq)]
pub struct AgentFlags {
    /// The agent preset: claude (Claude Code) or codex (Codex CLI).
    #[arg(long, value_enum, value_name = "PRESET")]
    pub agent_preset: Option<PresetArg>,
    /// The agent's command line (program and arguments, no shell); takes every following
    /// argument up to `--`, so give it last or end it with `--`. Its stdout is the answer
    /// (with --agent-preset, decoded in the preset's output format).
    #[arg(long, num_args = 1.., allow_hyphen_values = true, value_terminator = "--", value_name = "ARGV")]
    pub agent_command: Option<Vec<String>>,
    /// Model name for the preset (`--model` / `-m`).
    #[arg(long, value_name = "NAME")]
    pub agent_model: Option<String>,
    /// Time limit of the call in seconds (default: the run's planner.agent.timeout_s, else 900).
    #[arg(long, value_name = "SECONDS", value_parser = positive_seconds)]
    pub agent_timeout_s: Option<f64>,
}

fn positive_seconds(s: &str) -> Result<f64, String> {
    s.parse::<f64>()
        .ok()
        .filter(|x| x.is_finite() && *x > 0.0)
        .ok_or_else(|| format!("expected a positive number of seconds, found {s:?}"))
}

/// `--agent-preset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PresetArg {
    /// Claude Code (`claude -p --output-format json`).
    Claude,
    /// Codex CLI (`codex exec --json`).
    Codex,
}

impl AgentFlags {
    /// Whether an agent was chosen on the command line.
    pub fn given(&self) -> bool {
        self.agent_preset.is_some() || self.agent_command.is_some()
    }
}

/// What to say when no agent is configured (nothing is called: never a paid service unasked).
pub fn no_agent_message(command: &str) -> String {
    format!(
        "no agent is configured, so none was called. The run's planner is not the agent \
         (planner.kind = \"agent\" with planner.agent in config.json); choose one for this \
         command: `{command} --agent-preset claude` (Claude Code, billed to your account), \
         `--agent-preset codex` (Codex CLI), or `--agent-command PROGRAM [ARGS...]` (any \
         program that reads the prompt on stdin and prints its answer, e.g. a local model's \
         CLI; give it last). See docs/agent.md."
    )
}

/// The run's `planner.agent` when its planner is the agent, read from `config.json` as raw JSON
/// (the configuration type gains that field with the planner's integration; this is the one
/// place to switch to it).
pub fn run_agent_config(workdir: &Path) -> Result<Option<AgentConfig>> {
    let path = Workdir::new(workdir).config();
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let config: Config = serde_json::from_slice(&bytes)
        .with_context(|| format!("{}: not a valid configuration", path.display()))?;
    if config.planner.kind != PlannerKind::Agent {
        return Ok(None);
    }
    let Some(agent) = config.planner.agent else {
        return Ok(None);
    };
    agent.validate(&path)?;
    Ok(Some(agent))
}

/// The agent to call: the flags when given (they override the run's), else the run's
/// `planner.agent`, else `None`.
pub fn select_agent(workdir: &Path, flags: &AgentFlags) -> Result<Option<AgentConfig>> {
    let run = run_agent_config(workdir)?;
    let mut config = if flags.given() {
        // Retries, time limit and prompt size come from the run's settings when it has them.
        let mut config = run.unwrap_or_default();
        config.preset = match flags.agent_preset {
            Some(PresetArg::Claude) => AgentPreset::Claude,
            Some(PresetArg::Codex) => AgentPreset::Codex,
            None => AgentPreset::None,
        };
        config.command = flags.agent_command.clone();
        config.model = flags.agent_model.clone();
        config
            .validate(Path::new("the --agent-* flags"))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        config
    } else {
        match run {
            Some(c) => c,
            None => return Ok(None),
        }
    };
    if let Some(t) = flags.agent_timeout_s {
        config.timeout_s = t;
    }
    Ok(Some(config))
}

/// A short description of the agent, e.g. `claude preset` or `` `my-agent --fast` ``.
pub fn describe_agent(config: &AgentConfig) -> String {
    match (&config.command, config.preset) {
        (Some(argv), AgentPreset::None) => format!("`{}`", argv.join(" ")),
        (Some(argv), p) => format!("`{}` ({} output)", argv.join(" "), p.as_str()),
        (None, p) => {
            let model = config
                .model
                .as_deref()
                .map(|m| format!(", model {m}"))
                .unwrap_or_default();
            format!("{} preset{model}", p.as_str())
        }
    }
}

/// Splits streamed stdout into lines for a callback; holds back output that starts like a JSON
/// envelope (shown decoded at the end instead).
struct LineSplitter<'a> {
    buf: Vec<u8>,
    on_line: &'a mut dyn FnMut(&str),
    streamed: bool,
    held: bool,
}

impl LineSplitter<'_> {
    fn push(&mut self, chunk: &[u8]) {
        if self.held {
            return;
        }
        self.buf.extend_from_slice(chunk);
        if !self.streamed {
            match self.buf.iter().find(|b| !b.is_ascii_whitespace()) {
                None => return,
                Some(b'{') => {
                    self.held = true;
                    return;
                }
                Some(_) => {}
            }
        }
        while let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=i).collect();
            let text = String::from_utf8_lossy(&line[..line.len() - 1]);
            (self.on_line)(text.trim_end_matches('\r'));
            self.streamed = true;
        }
    }

    fn finish(&mut self) {
        if !self.held && !self.buf.is_empty() {
            let text = String::from_utf8_lossy(&self.buf).into_owned();
            self.buf.clear();
            if !text.trim().is_empty() {
                (self.on_line)(text.trim_end());
                self.streamed = true;
            }
        }
    }
}

/// A finished run-level call.
#[derive(Debug)]
pub struct Called<T> {
    /// The call's outcome (answer or failure, cost, attempts).
    pub outcome: CallOutcome<T>,
    /// Whether the answer was shown line by line while the agent wrote it.
    pub streamed: bool,
    /// `logs/agent/run_<phase>-<hash>` (add `_prompt.md`, `_output.md`, `_raw.json`).
    pub log_stem: String,
}

/// Calls `config`'s agent once for `phase` with `prompt` (run-level: journal `engine/agent/`,
/// logs `logs/agent/run_<phase>-<hash>_…`), its answer checked by `validate`. With `on_line`,
/// a plain-text answer is passed on line by line as it arrives. The fresh cost is appended to
/// `logs/agent/costs.jsonl`. A recorded valid answer to the same prompt is re-used (nothing is
/// paid again); a recorded failure is not (the agent is called again).
pub fn call<T>(
    workdir: &Path,
    config: &AgentConfig,
    phase: AgentPhase,
    prompt: &str,
    validate: impl Fn(&str) -> Result<T, String>,
    on_line: Option<&mut dyn FnMut(&str)>,
) -> Result<Called<T>> {
    let root =
        std::path::absolute(workdir).with_context(|| format!("resolving {}", workdir.display()))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let mut client = AgentClient::new(config.clone(), &root);
    client.replay_failures = false;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
    let stream = on_line.is_some() && client.streams_plain_text(phase);
    if stream {
        client.stdout_tap = Some(tx);
    } else {
        drop(tx);
    }
    let mut sink = |_: &str| {};
    let mut splitter = LineSplitter {
        buf: Vec::new(),
        on_line: match on_line {
            Some(f) => f,
            None => &mut sink,
        },
        streamed: false,
        held: false,
    };
    let outcome = rt.block_on(async {
        let call = client.call_run_level(phase, prompt, validate);
        tokio::pin!(call);
        let mut open = stream;
        loop {
            tokio::select! {
                outcome = &mut call => {
                    while let Ok(chunk) = rx.try_recv() {
                        splitter.push(&chunk);
                    }
                    break outcome;
                }
                chunk = rx.recv(), if open => match chunk {
                    Some(c) => splitter.push(&c),
                    None => open = false,
                },
            }
        }
    });
    splitter.finish();
    let streamed = splitter.streamed;
    // A re-used answer was not shown while arriving: the caller shows it.
    let streamed = streamed && !outcome.reused;
    let line = CostLine {
        at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        phase,
        ok: outcome.result.is_ok(),
        cost: outcome.fresh_cost,
    };
    if outcome.fresh_cost.calls > 0
        && let Err(e) = cost_log::append(&root, &line)
    {
        eprintln!(
            "warning: could not record the call's cost in {}: {e}",
            cost_log::cost_log_path(&root).display()
        );
    }
    let key = autoresearch_adapters::agent::journal::sha256_hex(prompt);
    Ok(Called {
        outcome,
        streamed,
        log_stem: format!("logs/agent/run_{}-{}", phase.as_str(), &key[..16]),
    })
}
