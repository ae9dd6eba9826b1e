//! `planner.agent`: which coding-agent CLI to call and how (see `docs/agent.md`).
//!
//! Parsed with serde (`deny_unknown_fields`, defaults for every field but the choice of agent);
//! [`AgentConfig::validate`] checks values and names the field path in its errors, e.g.
//! `planner.agent.timeout_s: expected a positive number, found -3`.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// Field path of this section in `config.json`.
pub const AGENT_PATH: &str = "planner.agent";

/// `planner.agent`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Which CLI's command line and reply format to use (default `none`: `command` is required).
    #[serde(default)]
    pub preset: AgentPreset,
    /// The agent's argv (program and arguments, no shell); replaces the preset's command line.
    /// The preset still selects how the reply is decoded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// Model name given to the preset (`--model` / `-m`); ignored with `command`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Wall-time limit of one agent call in seconds (default 900).
    #[serde(default = "default_timeout_s")]
    pub timeout_s: f64,
    /// Calls again after an invalid answer, showing the agent its error (default 1).
    #[serde(default = "default_max_retries")]
    pub max_retries: u32,
    /// Run the optional `analyze` phase after each job (default false).
    #[serde(default)]
    pub analyze: bool,
    /// What a planning round does when the agent fails (default `search`).
    #[serde(default)]
    pub fallback: AgentFallback,
    /// Upper bound of a prompt's size in bytes; the history is summarized to fit
    /// (default 60000, at least 4000).
    #[serde(default = "default_max_prompt_bytes")]
    pub max_prompt_bytes: usize,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            preset: AgentPreset::None,
            command: None,
            model: None,
            timeout_s: default_timeout_s(),
            max_retries: default_max_retries(),
            analyze: false,
            fallback: AgentFallback::Search,
            max_prompt_bytes: default_max_prompt_bytes(),
        }
    }
}

/// A known coding-agent CLI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AgentPreset {
    /// Claude Code: `claude -p --output-format json --no-session-persistence`.
    Claude,
    /// Codex CLI: `codex exec --json --skip-git-repo-check -C <dir> -s <sandbox> -`.
    Codex,
    /// No preset: `command` is run as given and its stdout is the reply.
    #[default]
    None,
}

impl AgentPreset {
    /// `claude`, `codex` or `none`.
    pub fn as_str(self) -> &'static str {
        match self {
            AgentPreset::Claude => "claude",
            AgentPreset::Codex => "codex",
            AgentPreset::None => "none",
        }
    }
}

/// What a planning round does after the agent failed (after its retries).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AgentFallback {
    /// Ask the built-in search planner instead (default).
    #[default]
    Search,
    /// Propose nothing this round.
    None,
}

/// Smallest accepted `max_prompt_bytes`.
pub const MIN_PROMPT_BYTES: usize = 4000;

fn default_timeout_s() -> f64 {
    900.0
}
fn default_max_retries() -> u32 {
    1
}
fn default_max_prompt_bytes() -> usize {
    60_000
}

impl AgentConfig {
    /// `timeout_s` as a duration (valid after [`validate`](Self::validate)).
    pub fn timeout(&self) -> Duration {
        Duration::try_from_secs_f64(self.timeout_s).unwrap_or(Duration::from_secs(900))
    }

    /// Checks the values; `origin` names the configuration file in errors.
    pub fn validate(&self, origin: &Path) -> Result<(), ConfigError> {
        let invalid = |field: &str, message: String| ConfigError::Invalid {
            origin: origin.to_path_buf(),
            path: format!("{AGENT_PATH}.{field}"),
            message,
            line: None,
            column: None,
        };
        if !(self.timeout_s.is_finite() && self.timeout_s > 0.0) {
            return Err(invalid(
                "timeout_s",
                format!(
                    "expected a positive number, found {}",
                    super::format_number(self.timeout_s)
                ),
            ));
        }
        if self.max_retries > 10 {
            return Err(invalid(
                "max_retries",
                format!(
                    "expected at most 10 retries, found {} (each retry is a paid call)",
                    self.max_retries
                ),
            ));
        }
        if self.max_prompt_bytes < MIN_PROMPT_BYTES {
            return Err(invalid(
                "max_prompt_bytes",
                format!(
                    "expected at least {MIN_PROMPT_BYTES}, found {}",
                    self.max_prompt_bytes
                ),
            ));
        }
        match &self.command {
            Some(argv) if argv.is_empty() => {
                return Err(invalid(
                    "command",
                    "expected a non-empty array (the program, then its arguments), found []".into(),
                ));
            }
            Some(argv) => {
                if let Some(i) = argv.iter().position(|a| a.contains('\0')) {
                    return Err(invalid(
                        &format!("command[{i}]"),
                        "expected text without NUL characters".into(),
                    ));
                }
                if argv[0].trim().is_empty() {
                    return Err(invalid(
                        "command[0]",
                        "expected the program to run, found an empty string".into(),
                    ));
                }
            }
            None if self.preset == AgentPreset::None => {
                return Err(invalid(
                    "preset",
                    "expected `claude` or `codex`, or a `command` (argv) for any other agent; \
                     found neither"
                        .into(),
                ));
            }
            None => {}
        }
        if let Some(model) = &self.model
            && (model.trim().is_empty() || model.starts_with('-'))
        {
            return Err(invalid(
                "model",
                format!("expected a model name, found {model:?}"),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<AgentConfig, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn defaults_fill_everything_but_the_agent() {
        let c = parse(r#"{"preset":"claude"}"#).unwrap();
        assert_eq!(c.timeout_s, 900.0);
        assert_eq!(c.max_retries, 1);
        assert_eq!(c.fallback, AgentFallback::Search);
        assert!(!c.analyze);
        c.validate(Path::new("config.json")).unwrap();
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = parse(r#"{"preset":"claude","timeout":3}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field `timeout`"), "{err}");
    }

    #[test]
    fn negative_timeout_names_the_field() {
        let c = parse(r#"{"preset":"codex","timeout_s":-3}"#).unwrap();
        let err = c
            .validate(Path::new("config.json"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("planner.agent.timeout_s: expected a positive number, found -3"),
            "{err}"
        );
    }

    #[test]
    fn no_preset_needs_a_command() {
        let c = parse(r#"{}"#).unwrap();
        let err = c.validate(Path::new("c.json")).unwrap_err().to_string();
        assert!(err.contains("planner.agent.preset"), "{err}");
        let c = parse(r#"{"command":[]}"#).unwrap();
        let err = c.validate(Path::new("c.json")).unwrap_err().to_string();
        assert!(err.contains("planner.agent.command"), "{err}");
        let c = parse(r#"{"command":["my-agent","--json"]}"#).unwrap();
        c.validate(Path::new("c.json")).unwrap();
    }

    #[test]
    fn a_model_looking_like_a_flag_is_refused() {
        let c = parse(r#"{"preset":"claude","model":"--dangerously-skip-permissions"}"#).unwrap();
        let err = c.validate(Path::new("c.json")).unwrap_err().to_string();
        assert!(err.contains("planner.agent.model"), "{err}");
    }
}
