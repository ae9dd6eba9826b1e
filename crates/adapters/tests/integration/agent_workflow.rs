//! The coding-agent planner through the real engine and workflow, with the stand-in agent (a
//! real program speaking the agent contract) and real git repositories in temp folders: a plan
//! launching code changes in per-experiment worktrees, every way an answer can go wrong (prose,
//! envelopes, reported errors, garbage, timeouts, crashes, huge replies, stop, duplicates) and
//! the fallback, protected paths, the optional analysis and the cost budget. Kill-and-resume
//! scenarios are in `agent_resume.rs`.

use crate::agentic;
use crate::support;

use std::collections::BTreeSet;
use std::time::Duration;

use agentic::{Agentic, BENCH, git, idea, planned_names};
use autoresearch_engine::EngineStatus;
use serde_json::{Value, json};
use support::{alive, read_json, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_launches_code_changes_each_in_its_own_worktree_and_commit() {
    let a = Agentic::new(json!([idea("alpha"), idea("beta"), idea("gamma")]));
    let gates = a.fx.tmp.path().join("gates");
    std::fs::create_dir_all(&gates).unwrap();
    let mut config = a.config(a.agent(&[], &[]), json!({}));
    config["job"]["env"]["GATES"] = json!(gates.display().to_string());
    let launched = || -> Vec<String> {
        std::fs::read_to_string(a.launches())
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    };
    let release = |ids: &[String]| {
        for id in ids {
            std::fs::write(gates.join(id), "").unwrap();
        }
    };
    let (report, seen) = tokio::join!(a.run(config), async {
        let wait = |n: usize| {
            support::wait_until_async(Duration::from_secs(60), move || launched().len() >= n)
        };
        assert!(wait(1).await, "the baseline did not start");
        release(&launched());
        // alpha and beta run at once, each in its own worktree with its own change only.
        assert!(
            wait(3).await,
            "two experiments did not run at once: {:?}",
            launched()
        );
        let running = launched()[1..3].to_vec();
        let code: Vec<String> = running
            .iter()
            .map(|id| {
                std::fs::read_to_string(a.fx.path(&format!("engine/worktrees/{id}/code.txt")))
                    .unwrap_or_default()
            })
            .collect();
        release(&launched());
        assert!(wait(4).await, "the third idea did not start");
        release(&launched());
        (running, code)
    });
    assert_eq!(report.status, EngineStatus::Stopped, "{report:?}");
    let (running, code) = seen;
    let base = a.fx.id_of("baseline");
    let alpha = a.fx.id_of("alpha");
    let beta = a.fx.id_of("beta");
    let gamma = a.fx.id_of("gamma");
    assert_eq!(
        running.iter().collect::<BTreeSet<_>>(),
        [&alpha, &beta].into_iter().collect::<BTreeSet<_>>()
    );
    for (id, text) in running.iter().zip(&code) {
        let own = if *id == alpha { "alpha" } else { "beta" };
        let other = if *id == alpha { "beta" } else { "alpha" };
        assert!(
            text.contains(own) && !text.contains(other),
            "{id}: {text:?}"
        );
    }
    for id in [&base, &alpha, &beta, &gamma] {
        assert_eq!(a.fx.status(id), "completed", "{id}: {:?}", a.fx.statuses());
    }
    assert!(
        a.stdout_of(&alpha).contains("code: base alpha "),
        "{}",
        a.stdout_of(&alpha)
    );
    assert!(
        a.stdout_of(&beta).contains("code: base beta "),
        "{}",
        a.stdout_of(&beta)
    );
    a.assert_refs();
    assert!(a.extra_worktrees().is_empty(), "{:?}", a.extra_worktrees());
    // The code-changing commits carry the node trailer; the baseline's is the base commit, a
    // code change's parent is its parent node's commit.
    let alpha_commit = a.node_ref(&alpha).unwrap();
    let msg = git(&a.repo, &["log", "-1", "--format=%B", &alpha_commit]);
    assert!(
        msg.contains(&format!("Autoresearch-Node: {alpha}")),
        "{msg}"
    );
    let head = git(&a.repo, &["rev-parse", "HEAD"]);
    assert_eq!(a.node_ref(&base), Some(head.clone()));
    assert_eq!(
        git(&a.repo, &["rev-parse", &format!("{alpha_commit}^")]),
        head
    );
    let gamma_record = read_json(&a.fx.node_dir(&gamma).join("commit.json"));
    let gamma_parent = a.fx.spec(&gamma)["parent_id"].as_str().unwrap().to_string();
    assert_eq!(
        gamma_record["parent_commit"].as_str(),
        a.node_ref(&gamma_parent).as_deref(),
        "{gamma_record}"
    );
    assert_eq!(gamma_record["changed"], json!(["code.txt"]));
    assert_eq!(
        a.fx.spec(&alpha)["changes"],
        "In code.txt, add the line alpha after base."
    );
    // The repository's own working tree is untouched.
    assert_eq!(
        std::fs::read_to_string(a.repo.join("code.txt")).unwrap(),
        "base\n"
    );
    assert!(a.fx.state()["best_value"].as_f64().unwrap() >= 2.0);
    assert_eq!(a.calls_of("apply"), 3);
}

/// A search space for the fallback tests (`x` is not used by the job).
fn with_space(extra: Value) -> Value {
    let mut e = extra;
    e["search_space"] = json!({"x": [1, 2, 3, 4]});
    e["baseline"] = json!({"x": 1});
    e
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_in_prose_and_in_the_claude_envelope_is_read_and_its_cost_kept() {
    // Prose around a fenced block.
    let a = Agentic::new(json!([idea("alpha")]));
    let report = a
        .run(a.config(a.agent(&[], &["--format", "prose"]), json!({})))
        .await;
    assert_eq!(report.status, EngineStatus::Stopped);
    assert_eq!(planned_names(&a.fx), ["alpha"]);
    assert_eq!(a.fx.status(&a.fx.id_of("alpha")), "completed");

    // The Claude Code envelope: the reply in `result`, the cost in `total_cost_usd`.
    let b = Agentic::new(json!([idea("alpha")]));
    let agent = b.agent(
        &[("STANDIN_COST_USD", "0.25".into())],
        &["--format", "claude"],
    );
    let report = b
        .run(b.config(agent, json!({"agent": {"preset": "claude"}})))
        .await;
    assert_eq!(report.status, EngineStatus::Stopped);
    assert_eq!(planned_names(&b.fx), ["alpha"]);
    let state = b.fx.state();
    let cost = &state["agent_cost"];
    // Two plan calls (alpha, then stop) and one apply.
    assert_eq!(cost["total"]["calls"], 3, "{state}");
    assert!(
        (cost["total"]["usd"].as_f64().unwrap() - 0.75).abs() < 1e-9,
        "{state}"
    );
    assert_eq!(cost["by_phase"]["plan"]["calls"], 2, "{state}");
    assert_eq!(cost["by_phase"]["apply"]["calls"], 1, "{state}");
    let alpha = b.fx.id_of("alpha");
    assert_eq!(
        cost["by_node"][&alpha]["calls"], 2,
        "apply and the plan from it: {state}"
    );
    assert!(state.get("planner_failures").is_none(), "{state}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claude_error_envelope_is_a_planner_failure_and_the_round_falls_back_to_search() {
    let a = Agentic::new(json!([idea("alpha")]));
    let agent = a.agent(&[], &["--mode", "claude-error"]);
    let extra = with_space(json!({"agent": {"preset": "claude", "fallback": "search"},
                                   "limits": {"max_experiments": 3}}));
    let report = a.run(a.config(agent, extra)).await;
    assert_eq!(report.status, EngineStatus::Stopped);
    let state = a.fx.state();
    assert!(state["planner_failures"].as_u64().unwrap() >= 1, "{state}");
    let last = state["last_planner_failure"].as_str().unwrap();
    assert!(last.contains("529 overloaded"), "{last}");
    assert!(last.contains("built-in search"), "{last}");
    // The search planned the follow-ups (parameter neighbours, no code change).
    let names = planned_names(&a.fx);
    assert!(
        !names.is_empty() && names.iter().all(|n| n.starts_with("x_")),
        "{names:?}"
    );
    // Not retried: a reported error is a failed call, not an invalid answer.
    assert_eq!(
        a.calls_of("plan") as u64,
        state["planner_failures"].as_u64().unwrap()
    );
    let events = std::fs::read_to_string(a.fx.path("engine/events.jsonl")).unwrap();
    assert!(events.contains("\"event\":\"planner_failed\""), "{events}");
    // The failed call is logged with its cost.
    let base = a.fx.id_of("baseline");
    let output =
        std::fs::read_to_string(a.fx.path(&format!("logs/agent/{base}_plan_output.md"))).unwrap();
    assert!(output.contains("529"), "{output}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_then_a_good_answer_is_retried_once_with_the_error() {
    let a = Agentic::new(json!([idea("alpha")]));
    let state_file = a.fx.tmp.path().join("standin.state");
    let agent = a.agent(
        &[("STANDIN_STATE", state_file.display().to_string())],
        &["--mode", "garbage-then-good"],
    );
    let report = a.run(a.config(agent, json!({}))).await;
    assert_eq!(report.status, EngineStatus::Stopped);
    assert_eq!(planned_names(&a.fx), ["alpha"]);
    let base = a.fx.id_of("baseline");
    let retry =
        std::fs::read_to_string(a.fx.path(&format!("logs/agent/{base}_plan_retry1_prompt.md")))
            .expect("the retry's prompt is logged");
    assert!(
        retry.contains("Your previous answer was invalid"),
        "{retry}"
    );
    assert!(a.fx.state().get("planner_failures").is_none());
    // Two calls for the first round (garbage, then good), one more that says stop.
    assert_eq!(a.calls_of("plan"), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_twice_records_a_planner_failure_and_falls_back_to_nothing() {
    let a = Agentic::new(json!([idea("alpha")]));
    let report = a
        .run(a.config(a.agent(&[], &["--mode", "garbage"]), json!({})))
        .await;
    assert_eq!(report.status, EngineStatus::Stopped);
    assert!(
        planned_names(&a.fx).is_empty(),
        "{:?}",
        planned_names(&a.fx)
    );
    let state = a.fx.state();
    assert_eq!(state["planner_failures"], 1, "{state}");
    assert_eq!(a.calls_of("plan"), 2, "the answer and its one retry");
    let reason = state["stop_reason"].as_str().unwrap();
    assert!(reason.contains("fallback is none"), "{reason}");
    assert!(reason.contains("invalid after 2 attempts"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_kills_the_agents_whole_process_group() {
    let a = Agentic::new(json!([idea("alpha")]));
    let pids = a.fx.tmp.path().join("agent.pids");
    let agent = a.agent(
        &[("STANDIN_PIDFILE", pids.display().to_string())],
        &["--mode", "hang"],
    );
    let report = a
        .run(a.config(agent, json!({"agent": {"timeout_s": 1}})))
        .await;
    assert_eq!(report.status, EngineStatus::Stopped);
    let text = std::fs::read_to_string(&pids).expect("the stand-in wrote its pids");
    let pids: Vec<i32> = text
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert_eq!(pids.len(), 2, "the agent and its grandchild: {text}");
    for pid in &pids {
        assert!(
            wait_until(Duration::from_secs(5), || !alive(*pid)),
            "process {pid} of the agent's group survived the timeout"
        );
    }
    let state = a.fx.state();
    assert_eq!(state["planner_failures"], 1, "{state}");
    assert!(
        state["last_planner_failure"]
            .as_str()
            .unwrap()
            .contains("timed out")
            || state["last_planner_failure"]
                .as_str()
                .unwrap()
                .contains("timeout"),
        "{state}"
    );
    assert!(planned_names(&a.fx).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nonzero_exit_is_a_planner_failure() {
    let a = Agentic::new(json!([idea("alpha")]));
    let extra = with_space(json!({"agent": {"fallback": "search"},
                                   "limits": {"max_experiments": 2}}));
    let report = a
        .run(a.config(a.agent(&[], &["--mode", "exit"]), extra))
        .await;
    assert_eq!(report.status, EngineStatus::Stopped);
    let state = a.fx.state();
    assert!(state["planner_failures"].as_u64().unwrap() >= 1, "{state}");
    assert!(
        state["last_planner_failure"]
            .as_str()
            .unwrap()
            .contains("status 3"),
        "{state}"
    );
    assert_eq!(
        a.fx.node_ids().len(),
        2,
        "the search's follow-up: {:?}",
        a.fx.node_ids()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_five_megabyte_reply_is_read() {
    let a = Agentic::new(json!([idea("alpha")]));
    let report = a
        .run(a.config(
            a.agent(&[], &["--mode", "huge"]),
            json!({"limits": {"max_experiments": 2}}),
        ))
        .await;
    assert_eq!(report.status, EngineStatus::Stopped);
    assert_eq!(planned_names(&a.fx), ["alpha"]);
    assert!(a.fx.state().get("planner_failures").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_ends_the_run_with_the_agents_reason() {
    let a = Agentic::new(json!([idea("alpha")]));
    let report = a
        .run(a.config(a.agent(&[], &["--mode", "stop"]), json!({})))
        .await;
    assert_eq!(report.status, EngineStatus::Stopped);
    assert!(planned_names(&a.fx).is_empty());
    let reason = a.fx.state()["stop_reason"].as_str().unwrap().to_string();
    assert!(
        reason.contains("the agent answered stop: stand-in: asked to stop"),
        "{reason}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_proposal_is_dropped() {
    let a = Agentic::new(json!([idea("alpha"), idea("beta")]));
    let report = a
        .run(a.config(a.agent(&[], &["--mode", "duplicate"]), json!({})))
        .await;
    assert_eq!(report.status, EngineStatus::Stopped);
    // alpha twice in the first answer, and again in the next: one node.
    assert_eq!(planned_names(&a.fx), ["alpha"]);
    assert!(a.calls_of("plan") >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_to_a_protected_path_fails_the_node_and_keeps_its_commit() {
    let a = Agentic::new(json!([idea("alpha")]));
    let agent = a.agent(
        &[("STANDIN_PROTECTED_FILE", "bench.sh".into())],
        &["--mode", "protected"],
    );
    let report = a
        .run(a.config(agent, json!({"limits": {"max_experiments": 2}})))
        .await;
    assert_eq!(report.status, EngineStatus::Stopped);
    let alpha = a.fx.id_of("alpha");
    assert_eq!(a.fx.status(&alpha), "failed");
    let f = a.fx.failure(&alpha);
    assert_eq!(f["kind"], "protected_path", "{f}");
    assert_eq!(f["phase"], "applying", "{f}");
    let msg = f["message"].as_str().unwrap();
    assert!(
        msg.contains("bench.sh") && msg.contains("did not run"),
        "{msg}"
    );
    // The job never ran; the commit and its ref are kept, and the repository is untouched.
    assert!(!a.fx.run_dir(&alpha).join("stdout.log").exists());
    assert_eq!(a.fx.launches_of(&alpha), 0);
    let record = read_json(&a.fx.node_dir(&alpha).join("commit.json"));
    assert_eq!(record["violations"], json!(["bench.sh"]), "{record}");
    let commit = a.node_ref(&alpha).expect("the ref of the failed change");
    assert_eq!(record["commit"], commit);
    let diff = git(&a.repo, &["show", "--stat", "--format=", &commit]);
    assert!(
        diff.contains("bench.sh") && diff.contains("code.txt"),
        "{diff}"
    );
    assert!(a.extra_worktrees().is_empty(), "{:?}", a.extra_worktrees());
    assert_eq!(
        std::fs::read_to_string(a.repo.join("bench.sh")).unwrap(),
        BENCH
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cost_budget_stops_planning_and_the_queue_finishes() {
    let a = Agentic::new(json!([
        idea("alpha"),
        idea("beta"),
        idea("gamma"),
        idea("delta")
    ]));
    let agent = a.agent(
        &[("STANDIN_COST_USD", "0.5".into())],
        &["--format", "claude"],
    );
    let extra = json!({"agent": {"preset": "claude"}, "limits": {"agent_cost_usd": 0.6,
                       "max_concurrency": 2}});
    let report = a.run(a.config(agent, extra)).await;
    assert_eq!(report.status, EngineStatus::Stopped);
    // One plan call ($0.50) asked for two ideas; their applies ($1.00) finished; no plan after.
    assert_eq!(a.calls_of("plan"), 1);
    assert_eq!(planned_names(&a.fx).len(), 2, "{:?}", planned_names(&a.fx));
    for id in a.fx.node_ids() {
        assert_eq!(a.fx.status(&id), "completed", "{id}");
    }
    let state = a.fx.state();
    assert!(
        (state["agent_cost"]["total"]["usd"].as_f64().unwrap() - 1.5).abs() < 1e-9,
        "{state}"
    );
    let reason = state["stop_reason"].as_str().unwrap();
    assert!(reason.contains("agent cost budget spent"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_and_ask_costs_count_against_the_same_budget() {
    use autoresearch_adapters::agent::cost_log::{self, AgentCostSummary, CostLine};
    use autoresearch_adapters::agent::{AgentPhase, Cost};
    let a = Agentic::new(json!([idea("alpha")]));
    // An earlier `supervisor ask` cost $0.70 (logs/agent/costs.jsonl): with a budget of $0.60
    // the planner is never called; the baseline still runs.
    std::fs::create_dir_all(&a.fx.wd).unwrap();
    cost_log::append(
        &a.fx.wd,
        &CostLine {
            at: "2026-12-01T10:00:00Z".into(),
            phase: AgentPhase::Ask,
            ok: true,
            cost: Cost {
                usd: Some(0.7),
                calls: 1,
                ..Cost::default()
            },
        },
    )
    .unwrap();
    let agent = a.agent(&[], &[]);
    let extra = json!({"limits": {"agent_cost_usd": 0.6}});
    let report = a.run(a.config(agent, extra)).await;
    assert_eq!(report.status, EngineStatus::Stopped);
    assert_eq!(a.calls_of("plan"), 0);
    assert_eq!(a.fx.node_ids(), vec![a.fx.id_of("baseline")]);
    let state = a.fx.state();
    let reason = state["stop_reason"].as_str().unwrap();
    assert!(
        reason.contains("agent cost budget spent ($0.7 of"),
        "{reason}"
    );
    let total = AgentCostSummary::of(None, &a.fx.wd).unwrap().total;
    assert_eq!((total.usd, total.calls), (Some(0.7), 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_analysis_writes_findings_that_reach_the_next_plan_prompt() {
    let a = Agentic::new(json!([idea("alpha")]));
    let report = a
        .run(a.config(a.agent(&[], &[]), json!({"agent": {"analyze": true}})))
        .await;
    assert_eq!(report.status, EngineStatus::Stopped);
    let base = a.fx.id_of("baseline");
    let alpha = a.fx.id_of("alpha");
    for id in [&base, &alpha] {
        let r = a.fx.result(id);
        assert_eq!(
            r["findings"],
            json!(["the stand-in agent read the job's output"]),
            "{r}"
        );
        let md = std::fs::read_to_string(a.fx.run_dir(id).join("analysis.md")).unwrap();
        assert!(md.contains("Stand-in analysis"), "{md}");
    }
    // The engine decided `improved`, not the agent.
    assert_eq!(a.fx.result(&alpha)["improved"], true);
    let prompt =
        std::fs::read_to_string(a.fx.path(&format!("logs/agent/{alpha}_plan_prompt.md"))).unwrap();
    assert!(
        prompt.contains(&format!(
            "[{base}] the stand-in agent read the job's output"
        )),
        "{prompt}"
    );
    assert_eq!(a.calls_of("analyze"), 2);
}
