//! The command line of each agent preset and how its output is decoded into a reply text, a
//! cost and a success or failure.
//!
//! - `claude`: `claude -p --output-format json --no-session-persistence [--model M]`, plus
//!   `--allowedTools Edit` for `apply` (file edits, which Claude Code confines to its working
//!   directory, the worktree) and `--disallowedTools Edit Bash` for `plan` and `analyze`. The
//!   reply is the envelope's `result`; `is_error: true` or a `subtype` other than `success` is a
//!   failure even with exit status 0; cost from `total_cost_usd` and `usage`.
//! - `codex`: `codex exec --json --skip-git-repo-check -C <dir> -s <read-only|workspace-write>
//!   [-m M] -`: the reply is the last `agent_message` item; tokens from `turn.completed.usage`;
//!   `turn.failed` and `error` events are failures. (`-p` is `--profile` there: never used.)
//! - any other argv (`planner.agent.command`): stdout is the reply. A stdout that is a Claude
//!   envelope (`"type": "result"` with `is_error`) is decoded as one.

use std::path::Path;

use serde_json::Value;

use super::runner::RawOutput;
use super::{AgentPhase, Cost};
use crate::config::agent::{AgentConfig, AgentPreset};

/// How an agent's stdout is turned into a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyFormat {
    /// stdout is the reply (a Claude envelope is still recognised).
    Plain,
    /// One Claude Code `--output-format json` result object.
    ClaudeJson,
    /// Codex `exec --json` events, one JSON object per line.
    CodexJsonl,
}

/// The argv for `phase` with `cwd` as the agent's working directory, and how to decode it.
pub fn command_line(
    config: &AgentConfig,
    phase: AgentPhase,
    cwd: &Path,
) -> (Vec<String>, ReplyFormat) {
    let format = match config.preset {
        AgentPreset::Claude => ReplyFormat::ClaudeJson,
        AgentPreset::Codex => ReplyFormat::CodexJsonl,
        AgentPreset::None => ReplyFormat::Plain,
    };
    if let Some(argv) = &config.command {
        return (argv.clone(), format);
    }
    let s = |x: &str| x.to_string();
    let argv = match config.preset {
        AgentPreset::Claude => {
            let mut argv = vec![
                s("claude"),
                s("-p"),
                s("--output-format"),
                s("json"),
                s("--no-session-persistence"),
            ];
            if phase.writes() {
                argv.extend([s("--allowedTools"), s("Edit")]);
            } else {
                argv.extend([s("--disallowedTools"), s("Edit"), s("Bash")]);
            }
            if let Some(model) = &config.model {
                argv.extend([s("--model"), model.clone()]);
            }
            argv
        }
        AgentPreset::Codex => {
            let sandbox = if phase.writes() {
                "workspace-write"
            } else {
                "read-only"
            };
            let mut argv = vec![
                s("codex"),
                s("exec"),
                s("--json"),
                s("--skip-git-repo-check"),
                s("-C"),
                cwd.display().to_string(),
                s("-s"),
                s(sandbox),
            ];
            if let Some(model) = &config.model {
                argv.extend([s("-m"), model.clone()]);
            }
            argv.push(s("-"));
            argv
        }
        AgentPreset::None => Vec::new(),
    };
    (argv, format)
}

/// A decoded, successful agent call.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    /// The reply text (what the agent answered).
    pub text: String,
    /// What the call cost (`calls` = 1).
    pub cost: Cost,
    /// Agent turns, when reported.
    pub turns: Option<u64>,
}

/// Why a finished agent process counts as a failed call.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    /// Exit status other than 0.
    #[error("the agent exited with {status}{}", detail_suffix(detail))]
    Exit {
        /// `status 3` or `signal 9`.
        status: String,
        /// The end of stderr (or the reported error).
        detail: String,
        /// What the output still reported about cost.
        cost: Cost,
    },
    /// The agent reported an error (Claude `is_error`/`subtype`, Codex `turn.failed`/`error`).
    #[error("the agent reported an error ({kind}): {message}")]
    Reported {
        /// `is_error`, `subtype error_max_turns`, `turn.failed`, …
        kind: String,
        /// Its message.
        message: String,
        /// The cost it reported.
        cost: Cost,
    },
    /// The output is not in the preset's format or holds no reply.
    #[error("cannot read the agent's output: {0}")]
    Format(String),
}

impl DecodeError {
    /// The cost the failed call still reported (calls = 1).
    pub fn cost(&self) -> Cost {
        match self {
            DecodeError::Exit { cost, .. } | DecodeError::Reported { cost, .. } => *cost,
            DecodeError::Format(_) => Cost::one_call(),
        }
    }
}

fn detail_suffix(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(": {detail}")
    }
}

/// Decodes a finished process's output.
pub fn decode(format: ReplyFormat, raw: &RawOutput) -> Result<Decoded, DecodeError> {
    let stdout = raw.stdout_text();
    let format = match format {
        ReplyFormat::Plain if claude_envelope(&stdout).is_some() => ReplyFormat::ClaudeJson,
        f => f,
    };
    let decoded = match format {
        ReplyFormat::Plain => Ok(Decoded {
            text: stdout.clone(),
            cost: Cost::one_call(),
            turns: None,
        }),
        ReplyFormat::ClaudeJson => decode_claude(&stdout),
        ReplyFormat::CodexJsonl => decode_codex(&stdout),
    };
    if !raw.success() {
        let status = match (raw.exit_code, raw.signal) {
            (Some(c), _) => format!("status {c}"),
            (None, Some(s)) => format!("signal {s}"),
            _ => "an unknown status".into(),
        };
        let (detail, cost) = match &decoded {
            Err(DecodeError::Reported { message, cost, .. }) => (message.clone(), *cost),
            Ok(d) => (raw.stderr_tail(2000), d.cost),
            Err(_) => (raw.stderr_tail(2000), Cost::one_call()),
        };
        let detail = if detail.is_empty() {
            tail_of(&stdout, 500)
        } else {
            detail
        };
        return Err(DecodeError::Exit {
            status,
            detail,
            cost,
        });
    }
    let decoded = decoded?;
    if decoded.text.trim().is_empty() {
        return Err(DecodeError::Format(
            "the reply is empty (nothing on stdout)".into(),
        ));
    }
    Ok(decoded)
}

fn tail_of(text: &str, max: usize) -> String {
    super::runner::tail_text(text.as_bytes(), max)
}

/// The Claude result object in `stdout`: the whole text, or else its last line starting
/// with `{`, when it is an object with `"type": "result"` and an `is_error` field.
fn claude_envelope(stdout: &str) -> Option<serde_json::Map<String, Value>> {
    let is_envelope = |v: &Value| {
        v.get("type").and_then(Value::as_str) == Some("result") && v.get("is_error").is_some()
    };
    let whole = serde_json::from_str::<Value>(stdout.trim()).ok();
    let candidate = match whole {
        Some(v) => Some(v),
        None => stdout
            .lines()
            .rev()
            .find(|l| l.trim_start().starts_with('{'))
            .and_then(|l| serde_json::from_str::<Value>(l.trim()).ok()),
    };
    match candidate {
        Some(Value::Object(map)) if is_envelope(&Value::Object(map.clone())) => Some(map),
        _ => None,
    }
}

fn decode_claude(stdout: &str) -> Result<Decoded, DecodeError> {
    let Some(env) = claude_envelope(stdout) else {
        return Err(DecodeError::Format(format!(
            "expected Claude Code's JSON result object (`--output-format json`) on stdout, \
             found: {}",
            tail_of(stdout, 300)
        )));
    };
    let usage = env.get("usage");
    let tok = |key: &str| {
        usage
            .and_then(|u| u.get(key))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    let cost = Cost {
        usd: env
            .get("total_cost_usd")
            .or_else(|| env.get("cost_usd"))
            .and_then(Value::as_f64),
        input_tokens: tok("input_tokens")
            + tok("cache_read_input_tokens")
            + tok("cache_creation_input_tokens"),
        cached_input_tokens: tok("cache_read_input_tokens"),
        output_tokens: tok("output_tokens"),
        calls: 1,
    };
    let turns = env.get("num_turns").and_then(Value::as_u64);
    let result = env.get("result").and_then(Value::as_str).unwrap_or("");
    let subtype = env.get("subtype").and_then(Value::as_str).unwrap_or("");
    if env.get("is_error").and_then(Value::as_bool) != Some(false) {
        return Err(DecodeError::Reported {
            kind: format!("is_error, subtype {subtype:?}"),
            message: if result.is_empty() {
                "no message".into()
            } else {
                tail_of(result, 1000)
            },
            cost,
        });
    }
    if subtype != "success" {
        return Err(DecodeError::Reported {
            kind: format!("subtype {subtype:?}"),
            message: if result.is_empty() {
                "no message".into()
            } else {
                tail_of(result, 1000)
            },
            cost,
        });
    }
    Ok(Decoded {
        text: result.to_string(),
        cost,
        turns,
    })
}

fn decode_codex(stdout: &str) -> Result<Decoded, DecodeError> {
    let mut cost = Cost::one_call();
    let mut reply: Option<String> = None;
    let mut turns = 0u64;
    let mut failure: Option<(String, String)> = None;
    let mut events = 0usize;
    for line in stdout.lines() {
        let line = line.trim();
        if !line.starts_with('{') {
            continue;
        }
        let Ok(event) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        events += 1;
        match event.get("type").and_then(Value::as_str).unwrap_or("") {
            "item.completed" => {
                let item = event.get("item");
                let kind = item.and_then(|i| i.get("type")).and_then(Value::as_str);
                if kind == Some("agent_message")
                    && let Some(text) = item.and_then(|i| i.get("text")).and_then(Value::as_str)
                {
                    reply = Some(text.to_string());
                }
            }
            "turn.completed" => {
                turns += 1;
                let usage = event.get("usage");
                let tok = |k: &str| {
                    usage
                        .and_then(|u| u.get(k))
                        .and_then(Value::as_u64)
                        .unwrap_or(0)
                };
                cost.input_tokens += tok("input_tokens");
                cost.cached_input_tokens += tok("cached_input_tokens");
                cost.output_tokens += tok("output_tokens");
            }
            "turn.failed" => {
                let message = event
                    .pointer("/error/message")
                    .and_then(Value::as_str)
                    .unwrap_or("no message");
                failure = Some(("turn.failed".into(), message.to_string()));
            }
            "error" => {
                let message = event
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("no message");
                failure = Some(("error".into(), message.to_string()));
            }
            _ => {}
        }
    }
    if let Some((kind, message)) = failure {
        return Err(DecodeError::Reported {
            kind,
            message,
            cost,
        });
    }
    match reply {
        Some(text) => Ok(Decoded {
            text,
            cost,
            turns: Some(turns),
        }),
        None if events == 0 => Err(DecodeError::Format(format!(
            "expected Codex `exec --json` events on stdout, found: {}",
            tail_of(stdout, 300)
        ))),
        None => Err(DecodeError::Format(
            "the agent's events hold no `agent_message` item (no reply)".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn raw(code: i32, stdout: &str) -> RawOutput {
        RawOutput {
            exit_code: Some(code),
            signal: None,
            stdout: stdout.as_bytes().to_vec(),
            stderr: b"oops on stderr".to_vec(),
            duration: Duration::from_millis(5),
        }
    }

    fn config(json: &str) -> AgentConfig {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn claude_argv_is_read_only_except_for_apply() {
        let c = config(r#"{"preset":"claude","model":"sonnet"}"#);
        let (plan, f) = command_line(&c, AgentPhase::Plan, Path::new("/wd"));
        assert_eq!(f, ReplyFormat::ClaudeJson);
        assert_eq!(
            plan.join(" "),
            "claude -p --output-format json --no-session-persistence --disallowedTools Edit \
             Bash --model sonnet"
        );
        let (apply, _) = command_line(&c, AgentPhase::Apply, Path::new("/wt"));
        assert!(
            apply
                .join(" ")
                .contains("--allowedTools Edit --model sonnet")
        );
    }

    #[test]
    fn codex_argv_uses_the_sandbox_and_stdin_never_dash_p() {
        let c = config(r#"{"preset":"codex","model":"o4"}"#);
        let (plan, f) = command_line(&c, AgentPhase::Analyze, Path::new("/wd"));
        assert_eq!(f, ReplyFormat::CodexJsonl);
        assert_eq!(
            plan.join(" "),
            "codex exec --json --skip-git-repo-check -C /wd -s read-only -m o4 -"
        );
        let (apply, _) = command_line(&c, AgentPhase::Apply, Path::new("/wt/1"));
        assert!(apply.join(" ").contains("-C /wt/1 -s workspace-write"));
        assert!(!apply.contains(&"-p".to_string()));
    }

    #[test]
    fn command_overrides_the_argv_but_not_the_format() {
        let c = config(r#"{"preset":"claude","command":["my-claude","--x"]}"#);
        let (argv, f) = command_line(&c, AgentPhase::Plan, Path::new("/wd"));
        assert_eq!(argv, vec!["my-claude", "--x"]);
        assert_eq!(f, ReplyFormat::ClaudeJson);
    }

    #[test]
    fn claude_envelope_success_error_and_subtype() {
        let ok = r#"{"type":"result","subtype":"success","is_error":false,"result":"hi","total_cost_usd":0.02,"num_turns":3,"usage":{"input_tokens":10,"cache_read_input_tokens":5,"output_tokens":7}}"#;
        let d = decode(ReplyFormat::ClaudeJson, &raw(0, ok)).unwrap();
        assert_eq!(d.text, "hi");
        assert_eq!(d.cost.usd, Some(0.02));
        assert_eq!(d.cost.input_tokens, 15);
        assert_eq!(d.cost.cached_input_tokens, 5);
        assert_eq!(d.turns, Some(3));
        let err = r#"{"type":"result","subtype":"success","is_error":true,"result":"API Error: 529","total_cost_usd":0.01}"#;
        let e = decode(ReplyFormat::ClaudeJson, &raw(0, err)).unwrap_err();
        assert!(e.to_string().contains("API Error: 529"), "{e}");
        assert_eq!(e.cost().usd, Some(0.01));
        let turns = r#"{"type":"result","subtype":"error_max_turns","is_error":false}"#;
        let e = decode(ReplyFormat::ClaudeJson, &raw(0, turns)).unwrap_err();
        assert!(e.to_string().contains("error_max_turns"), "{e}");
        // A plain agent printing an envelope is decoded as one.
        let e = decode(ReplyFormat::Plain, &raw(0, err)).unwrap_err();
        assert!(matches!(e, DecodeError::Reported { .. }), "{e}");
    }

    #[test]
    fn codex_events_last_message_tokens_and_failures() {
        let ok = concat!(
            "{\"type\":\"thread.started\",\"thread_id\":\"t\"}\n",
            "{\"type\":\"item.completed\",\"item\":{\"id\":\"1\",\"type\":\"agent_message\",\"text\":\"first\"}}\n",
            "{\"type\":\"item.completed\",\"item\":{\"id\":\"2\",\"type\":\"reasoning\",\"text\":\"hmm\"}}\n",
            "{\"type\":\"item.completed\",\"item\":{\"id\":\"3\",\"type\":\"agent_message\",\"text\":\"last\"}}\n",
            "{\"type\":\"turn.completed\",\"usage\":{\"input_tokens\":100,\"cached_input_tokens\":40,\"output_tokens\":9}}\n",
        );
        let d = decode(ReplyFormat::CodexJsonl, &raw(0, ok)).unwrap();
        assert_eq!(d.text, "last");
        assert_eq!(
            (
                d.cost.input_tokens,
                d.cost.cached_input_tokens,
                d.cost.output_tokens
            ),
            (100, 40, 9)
        );
        assert_eq!(d.cost.usd, None);
        let failed = "{\"type\":\"turn.failed\",\"error\":{\"message\":\"rate limited\"}}\n";
        let e = decode(ReplyFormat::CodexJsonl, &raw(0, failed)).unwrap_err();
        assert!(e.to_string().contains("rate limited"), "{e}");
        let e = decode(ReplyFormat::CodexJsonl, &raw(0, "not events")).unwrap_err();
        assert!(matches!(e, DecodeError::Format(_)), "{e}");
    }

    #[test]
    fn nonzero_exit_fails_with_stderr_and_empty_stdout_fails() {
        let e = decode(ReplyFormat::Plain, &raw(3, "partial")).unwrap_err();
        assert!(e.to_string().contains("status 3: oops on stderr"), "{e}");
        let e = decode(ReplyFormat::Plain, &raw(0, "  \n")).unwrap_err();
        assert!(e.to_string().contains("empty"), "{e}");
    }
}
