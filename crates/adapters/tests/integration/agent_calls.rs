//! Agent calls end to end with the stand-in agent (a real process speaking the agent contract):
//! well-formed, prose-wrapped and enveloped replies, retries, failures, timeouts that kill the
//! whole process group, a 5 MB reply, and the call journal re-using a recorded answer.

use std::path::{Path, PathBuf};
use std::time::Duration;

use autoresearch_adapters::agent::journal::CallStatus;
use autoresearch_adapters::agent::plan_prompt::{PlanContext, render_plan_prompt};
use autoresearch_adapters::agent::synthetic::synthetic_context;
use autoresearch_adapters::agent::template::Templates;
use autoresearch_adapters::agent::{AgentClient, AgentPhase, FailureKind, PlanAction};
use autoresearch_adapters::config::agent::AgentConfig;
use serde_json::json;

const STANDIN: &str = env!("CARGO_BIN_EXE_autoresearch-standin-agent");

struct Setup {
    _tmp: tempfile::TempDir,
    wd: PathBuf,
    ideas: PathBuf,
    calls: PathBuf,
}

fn setup() -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let wd = tmp.path().join("wd");
    std::fs::create_dir_all(&wd).unwrap();
    let ideas = tmp.path().join("ideas.json");
    std::fs::write(
        &ideas,
        json!([
            {"name": "buffered_writer", "hypothesis": "fewer syscalls", "params": {"n": 1},
             "changes": "Open the output with a buffer.", "edits": []},
            {"name": "builtin_sum", "hypothesis": "C loop", "params": {},
             "changes": "Use sum() instead of the loop.", "edits": []},
            {"name": "bigger_chunks", "hypothesis": "params only", "params": {"chunk": 64}}
        ])
        .to_string(),
    )
    .unwrap();
    let calls = tmp.path().join("calls.txt");
    Setup {
        wd,
        ideas,
        calls,
        _tmp: tmp,
    }
}

impl Setup {
    /// A client running the stand-in with `mode`, `format` and extra `VAR=value` settings.
    fn client(&self, preset: &str, mode: &str, format: &str, env: &[String]) -> AgentClient {
        let mut argv = vec![
            "env".to_string(),
            format!("STANDIN_CALLS={}", self.calls.display()),
        ];
        argv.extend(env.iter().cloned());
        argv.extend([
            STANDIN.to_string(),
            "--ideas".into(),
            self.ideas.display().to_string(),
            "--mode".into(),
            mode.into(),
            "--format".into(),
            format.into(),
        ]);
        let config: AgentConfig = serde_json::from_value(json!({
            "preset": preset, "command": argv, "timeout_s": 20, "max_retries": 1
        }))
        .unwrap();
        config.validate(Path::new("test")).unwrap();
        let mut client = AgentClient::new(config, &self.wd);
        client.kill_grace = Duration::from_millis(300);
        client
    }

    fn calls(&self) -> usize {
        std::fs::read_to_string(&self.calls)
            .map(|s| s.lines().count())
            .unwrap_or(0)
    }
}

fn small_prompt(slots: usize) -> String {
    let mut ctx: PlanContext = synthetic_context(3);
    ctx.slots = slots;
    render_plan_prompt(&ctx, &Templates::builtin().plan, 60_000).unwrap()
}

#[tokio::test]
async fn a_well_formed_reply_is_typed_journaled_and_logged() {
    let s = setup();
    let client = s.client("none", "ideas", "plain", &[]);
    let prompt = small_prompt(2);
    let out = client.plan("002_idea_number_2", &prompt).await;
    let plan = out.result.expect("a valid plan");
    assert_eq!(plan.action, PlanAction::Launch);
    let names: Vec<_> = plan.experiments.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        ["buffered_writer", "builtin_sum"],
        "exactly the free slots"
    );
    assert_eq!(
        plan.experiments[0].changes.as_deref(),
        Some("Open the output with a buffer.")
    );
    assert_eq!(
        (out.attempts, out.reused, out.fresh_cost.calls),
        (1, false, 1)
    );
    let logs = s.wd.join("logs/agent");
    for f in ["prompt.md", "output.md", "raw.json"] {
        assert!(
            logs.join(format!("002_idea_number_2_plan_{f}")).is_file(),
            "{f}"
        );
    }
    let logged = std::fs::read_to_string(logs.join("002_idea_number_2_plan_prompt.md")).unwrap();
    assert_eq!(logged, prompt);
    let record = client
        .recorded("002_idea_number_2", AgentPhase::Plan, &prompt)
        .unwrap()
        .unwrap();
    assert_eq!(record.attempts.len(), 1);
    assert_eq!(
        record.attempts[0].answer.as_ref().unwrap().status,
        CallStatus::Valid
    );
}

#[tokio::test]
async fn json_in_prose_is_found() {
    let s = setup();
    let out = s
        .client("none", "ideas", "prose", &[])
        .plan("000_base", &small_prompt(1))
        .await;
    let plan = out.result.unwrap();
    assert_eq!(plan.experiments.len(), 1);
    assert!(out.text.starts_with("Here is my answer."));
}

#[tokio::test]
async fn claude_envelope_gives_the_reply_and_its_cost() {
    let s = setup();
    let env = ["STANDIN_COST_USD=0.25".to_string()];
    let out = s
        .client("claude", "ideas", "claude", &env)
        .plan("000_base", &small_prompt(1))
        .await;
    assert!(out.result.is_ok(), "{:?}", out.result);
    assert_eq!(out.fresh_cost.usd, Some(0.25));
    assert_eq!(out.fresh_cost.input_tokens, 100);
}

#[tokio::test]
async fn claude_envelope_with_is_error_is_a_failure_even_with_exit_0() {
    let s = setup();
    let out = s
        .client("claude", "claude-error", "plain", &[])
        .plan("000_base", &small_prompt(1))
        .await;
    let e = out.result.unwrap_err();
    assert_eq!(e.kind, FailureKind::Reported);
    assert!(e.message.contains("API Error: 529"), "{}", e.message);
    assert_eq!(out.fresh_cost.usd, Some(0.002), "a failed call still costs");
    assert_eq!(s.calls(), 1, "a reported failure is not retried");
}

#[tokio::test]
async fn codex_events_give_the_last_message_and_tokens() {
    let s = setup();
    let out = s
        .client("codex", "ideas", "codex", &[])
        .plan("000_base", &small_prompt(1))
        .await;
    assert!(out.result.is_ok(), "{:?}", out.result);
    assert_eq!(out.fresh_cost.usd, None);
    assert_eq!(out.fresh_cost.cached_input_tokens, 60);
}

#[tokio::test]
async fn garbage_then_good_succeeds_on_the_retry_that_shows_the_error() {
    let s = setup();
    let state = s.wd.join("standin.state");
    let env = [format!("STANDIN_STATE={}", state.display())];
    let client = s.client("none", "garbage-then-good", "plain", &env);
    let out = client.plan("000_base", &small_prompt(1)).await;
    assert!(out.result.is_ok(), "{:?}", out.result);
    assert_eq!((out.attempts, s.calls(), out.fresh_cost.calls), (2, 2, 2));
    let retry =
        std::fs::read_to_string(s.wd.join("logs/agent/000_base_plan_retry1_prompt.md")).unwrap();
    assert!(
        retry.contains("Your previous answer was invalid: no JSON object found"),
        "{retry}"
    );
    assert!(retry.contains("JSON only"));
}

#[tokio::test]
async fn garbage_twice_is_an_invalid_failure_with_both_attempts_recorded() {
    let s = setup();
    let client = s.client("none", "garbage", "plain", &[]);
    let prompt = small_prompt(1);
    let out = client.plan("000_base", &prompt).await;
    let e = out.result.unwrap_err();
    assert_eq!(e.kind, FailureKind::Invalid);
    assert!(e.message.contains("after 2 attempts"), "{}", e.message);
    assert_eq!(s.calls(), 2);
    let record = client
        .recorded("000_base", AgentPhase::Plan, &prompt)
        .unwrap()
        .unwrap();
    let statuses: Vec<_> = record
        .attempts
        .iter()
        .map(|a| a.answer.as_ref().unwrap().status)
        .collect();
    assert_eq!(statuses, [CallStatus::Invalid, CallStatus::Invalid]);
    // Resuming does not pay for the failed call again.
    let again = client.plan("000_base", &prompt).await;
    assert!(again.reused && again.result.is_err());
    assert_eq!(s.calls(), 2);
}

fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => false,
        Ok(stat) => {
            let state = stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .split_whitespace()
                .next();
            state != Some("Z") && state != Some("X")
        }
    }
}

#[tokio::test]
async fn a_timeout_kills_the_agents_whole_process_group() {
    let s = setup();
    let pidfile = s.wd.join("pids");
    let env = [format!("STANDIN_PIDFILE={}", pidfile.display())];
    let mut client = s.client("none", "hang", "plain", &env);
    let mut config = client.config().clone();
    config.timeout_s = 1.5;
    let grace = client.kill_grace;
    client = AgentClient::new(config, &s.wd);
    client.kill_grace = grace;
    let out = client.plan("000_base", &small_prompt(1)).await;
    let e = out.result.unwrap_err();
    assert_eq!(e.kind, FailureKind::Timeout, "{}", e.message);
    assert!(
        e.message.contains("process group was killed"),
        "{}",
        e.message
    );
    let pids: Vec<u32> = std::fs::read_to_string(&pidfile)
        .unwrap()
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert_eq!(pids.len(), 2, "the agent and its grandchild");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while pids.iter().any(|&p| alive(p)) && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for p in pids {
        assert!(!alive(p), "process {p} of the agent's group is still alive");
    }
}

#[tokio::test]
async fn a_nonzero_exit_is_a_failure_with_stderr() {
    let s = setup();
    let out = s
        .client("none", "exit", "plain", &[])
        .plan("000_base", &small_prompt(1))
        .await;
    let e = out.result.unwrap_err();
    assert_eq!(e.kind, FailureKind::Exit);
    assert!(
        e.message.contains("status 3") && e.message.contains("simulated crash"),
        "{}",
        e.message
    );
}

#[tokio::test]
async fn a_five_megabyte_reply_is_read_whole() {
    let s = setup();
    let out = s
        .client("none", "huge", "plain", &[])
        .plan("000_base", &small_prompt(1))
        .await;
    let plan = out.result.unwrap();
    assert!(plan.reasoning.len() > 5 << 20, "{}", plan.reasoning.len());
}

#[tokio::test]
async fn stop_is_an_answer() {
    let s = setup();
    let out = s
        .client("none", "stop", "plain", &[])
        .plan("000_base", &small_prompt(1))
        .await;
    assert_eq!(out.result.unwrap().action, PlanAction::Stop);
}

#[tokio::test]
async fn tried_ideas_are_not_proposed_again_but_duplicate_mode_does() {
    let s = setup();
    let mut ctx = synthetic_context(2);
    ctx.history[1].id = "001_buffered_writer".into();
    ctx.slots = 3;
    let prompt = render_plan_prompt(&ctx, &Templates::builtin().plan, 60_000).unwrap();
    let plan = s
        .client("none", "ideas", "plain", &[])
        .plan("000_base", &prompt)
        .await
        .result
        .unwrap();
    let names: Vec<_> = plan.experiments.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["builtin_sum", "bigger_chunks"]);
    let dup = s
        .client("none", "duplicate", "plain", &[])
        .plan("001_x", &prompt)
        .await
        .result
        .unwrap();
    assert_eq!(dup.experiments[0], dup.experiments[1]);
}

#[tokio::test]
async fn a_recorded_answer_is_reused_after_a_crash_and_the_agent_not_called_again() {
    let s = setup();
    let prompt = small_prompt(1);
    let first = s
        .client("none", "ideas", "plain", &[])
        .plan("005_x", &prompt)
        .await;
    let first = first.result.unwrap();
    assert_eq!(s.calls(), 1);
    // "Crash": a new client (a resumed engine), even with an agent that would now answer garbage.
    let resumed = s.client("none", "garbage", "plain", &[]);
    let again = resumed.plan("005_x", &prompt).await;
    assert!(again.reused);
    assert_eq!(again.result.unwrap(), first);
    assert_eq!(again.fresh_cost.calls, 0);
    assert_eq!(again.total_cost.calls, 1);
    assert_eq!(s.calls(), 1, "the agent was not called again");
    // A call whose intent was written but whose answer never came is made again.
    let journal = autoresearch_adapters::agent::journal::CallJournal::new(&s.wd, "006_y").unwrap();
    let key = autoresearch_adapters::agent::journal::sha256_hex(&prompt);
    journal.begin(AgentPhase::Plan, &key, 1, &key).unwrap();
    let out = s
        .client("none", "ideas", "plain", &[])
        .plan("006_y", &prompt)
        .await;
    assert!(out.result.is_ok() && !out.reused);
    assert_eq!(s.calls(), 2);
}

#[tokio::test]
async fn a_missing_program_is_a_spawn_failure_naming_it() {
    let s = setup();
    let config: AgentConfig =
        serde_json::from_value(json!({"command": ["/nonexistent/agent-cli"]})).unwrap();
    let out = AgentClient::new(config, &s.wd).plan("000_base", "hi").await;
    let e = out.result.unwrap_err();
    assert_eq!(e.kind, FailureKind::Spawn);
    assert!(
        e.message.contains("/nonexistent/agent-cli"),
        "{}",
        e.message
    );
}
