//! The coding-agent planner killed and resumed, with the stand-in agent and real git
//! repositories: the engine SIGKILLed during a plan call, during an apply, and after a plan
//! answer was recorded but before its nodes were made; then resumed: no duplicate node, no
//! worktree left, every ref present, the recorded answer re-used. Also: a round's nodes start
//! while its leader is still planning the next round.

use crate::agentic;
use crate::support;

use std::path::PathBuf;
use std::time::Duration;

use agentic::{Agentic, git, idea, open_all_gates, planned_names, wait_for};
use autoresearch_engine::EngineStatus;
use serde_json::json;
use support::{read_json, wait_until};

/// Runs `a` (one slot) with the stand-in agent held inside its first `phase` call, then
/// SIGKILLs the engine and the agent mid-call; returns the folder of the gates that hold the
/// agent's calls.
fn kill_during_a_call(a: &Agentic, phase: &str) -> std::path::PathBuf {
    let gates = a.fx.tmp.path().join("gates");
    std::fs::create_dir_all(&gates).unwrap();
    let pidfile = a.fx.tmp.path().join("agent.pid");
    let agent = a.agent(
        &[
            (
                "STANDIN_WAIT_FILE",
                format!("{}/{phase}_{{n}}", gates.display()),
            ),
            ("STANDIN_WAIT_PHASE", phase.into()),
            ("STANDIN_PIDFILE", pidfile.display().to_string()),
        ],
        &[],
    );
    a.write_config(a.config(agent, json!({"limits": {"max_concurrency": 1}})));
    let mut child = a.fx.spawn_engine();
    assert!(
        wait_until(Duration::from_secs(60), || a.calls_of(phase) == 1
            && pidfile.exists()),
        "no {phase} call: {}",
        a.fx.child_log()
    );
    child.kill9();
    a.kill_agent(&pidfile);
    gates
}

#[test]
fn sigkill_during_a_plan_call_then_resume_duplicates_nothing() {
    let a = Agentic::new(json!([idea("alpha"), idea("beta")]));
    let gates = kill_during_a_call(&a, "plan");
    let base = a.fx.id_of("baseline");
    assert_eq!(a.fx.status(&base), "planning");
    open_all_gates(&gates);
    a.resume_to_end();
    a.assert_clean_end();
    assert_eq!(planned_names(&a.fx), ["alpha", "beta"]);
    // The killed call had no answer: it was made again; then one call per round.
    assert_eq!(a.calls_of("plan"), 1 + 3);
    // The killed call's record: its first attempt never answered, its second did.
    let record = std::fs::read_dir(a.fx.node_dir(&base).join("agent"))
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| read_json(&e.path()))
        .find(|r| r["phase"] == "plan")
        .unwrap();
    let attempts = record["attempts"].as_array().unwrap();
    assert_eq!(
        attempts.last().unwrap()["answer"]["status"],
        "valid",
        "{record}"
    );
}

#[test]
fn sigkill_during_an_apply_then_resume_redoes_it_from_a_clean_worktree() {
    let a = Agentic::new(json!([idea("alpha"), idea("beta")]));
    let gates = kill_during_a_call(&a, "apply");
    let alpha = a.fx.id_of("alpha");
    assert_eq!(a.fx.status(&alpha), "applying");
    // The agent had edited the worktree; nothing is committed.
    let edited =
        std::fs::read_to_string(a.fx.path(&format!("engine/worktrees/{alpha}/code.txt"))).unwrap();
    assert_eq!(edited, "base\nalpha\n");
    assert_eq!(a.node_ref(&alpha), None);
    open_all_gates(&gates);
    a.resume_to_end();
    a.assert_clean_end();
    assert_eq!(planned_names(&a.fx), ["alpha", "beta"]);
    // Redone from a clean tree: the change is in the commit once.
    let commit = a.node_ref(&alpha).unwrap();
    assert_eq!(
        git(&a.repo, &["show", &format!("{commit}:code.txt")]),
        "base\nalpha"
    );
    // The plan of the first round was not asked again; the apply was.
    assert_eq!(a.calls_of("plan"), 3);
    assert_eq!(a.calls_of("apply"), 3);
    assert_eq!(a.fx.launches_of(&alpha), 1);
}

#[test]
fn a_recorded_plan_answer_is_reused_after_a_sigkill_before_its_nodes_were_made() {
    let a = Agentic::new(json!([idea("alpha"), idea("beta")]));
    let gates = a.fx.tmp.path().join("gates");
    std::fs::create_dir_all(&gates).unwrap();
    let agent = a.agent(
        &[
            (
                "STANDIN_WAIT_FILE",
                format!("{}/plan_{{n}}", gates.display()),
            ),
            ("STANDIN_WAIT_PHASE", "plan".into()),
        ],
        &[],
    );
    a.write_config(a.config(agent, json!({"limits": {"max_concurrency": 1}})));
    let mut child = a.fx.spawn_engine();
    assert!(
        wait_until(Duration::from_secs(60), || a.calls_of("plan") == 1),
        "no plan call: {}",
        a.fx.child_log()
    );
    // The round cannot create its nodes (a planted link where they would go: the environment's
    // fault, retried), so its answer is recorded but nothing is made of it when the engine dies.
    let elsewhere = a.fx.tmp.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let links: Vec<PathBuf> = (1..10)
        .map(|i| a.fx.node_dir(&format!("{i:03}_alpha")))
        .collect();
    for l in &links {
        std::os::unix::fs::symlink(&elsewhere, l).unwrap();
    }
    std::fs::write(gates.join("plan_1"), "").unwrap();
    let events = a.fx.path("engine/events.jsonl");
    assert!(
        wait_until(Duration::from_secs(60), || {
            std::fs::read_to_string(&events)
                .unwrap_or_default()
                .contains("environment error")
        }),
        "the round did not fail on the planted link: {}",
        a.fx.child_log()
    );
    child.kill9();
    for l in &links {
        std::fs::remove_file(l).unwrap();
    }
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
    open_all_gates(&gates);
    a.resume_to_end();
    a.assert_clean_end();
    assert_eq!(planned_names(&a.fx), ["alpha", "beta"]);
    // The first round's answer came from the journal: one call for it, then one per round.
    assert_eq!(a.calls_of("plan"), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rounds_nodes_start_while_its_leader_plans_the_next_round() {
    let a = Agentic::new(json!([idea("alpha"), idea("beta"), idea("gamma")]));
    let gates = a.fx.tmp.path().join("gates");
    std::fs::create_dir_all(&gates).unwrap();
    let agent = a.agent(
        &[
            (
                "STANDIN_WAIT_FILE",
                format!("{}/plan_{{n}}", gates.display()),
            ),
            ("STANDIN_WAIT_PHASE", "plan".into()),
        ],
        &[],
    );
    // The agent's time limit is past the test's waits: round 2's call is still running when
    // round 1's node must have started.
    let mut config = a.config(
        agent,
        json!({"limits": {"max_concurrency": 2}, "agent": {"timeout_s": 110}}),
    );
    config["seeds"] = json!([{"name": "seed"}]);
    config["job"]["env"]["GATES"] = json!(gates.display().to_string());
    let fx = &a.fx;
    let launched = || -> Vec<String> {
        std::fs::read_to_string(a.launches())
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    };
    let (report, during) = tokio::join!(a.run(config), async {
        // The baseline and the seed run; the baseline ends and leads a round (call 1 waits).
        wait_for("the baseline and the seed", || launched().len() == 2).await;
        let base = fx.id_of("baseline");
        let seed = fx.id_of("seed");
        std::fs::write(gates.join(&base), "").unwrap();
        wait_for("the first plan call", || a.calls_of("plan") == 1).await;
        // The seed ends during that round: it waits for the next one.
        std::fs::write(gates.join(&seed), "").unwrap();
        wait_for("the seed to wait for a round", || {
            fx.state()["awaiting_planning"]
                .as_array()
                .is_some_and(|w| w.iter().any(|x| *x == json!(seed)))
        })
        .await;
        // Round 1 answers (two nodes); the first starts (the leader holds the other slot) while
        // the same leader waits for round 2's answer.
        std::fs::write(gates.join("plan_1"), "").unwrap();
        wait_for("the second plan call", || a.calls_of("plan") == 2).await;
        wait_for("the first round's node", || launched().len() == 3).await;
        let during = launched()[2..].to_vec();
        assert!(!gates.join("plan_2").exists());
        open_all_gates(&gates);
        // Release every job as it comes until the run ends.
        for _ in 0..600 {
            for id in fx.node_ids() {
                std::fs::write(gates.join(id), "").unwrap();
            }
            if fx.finished() == fx.node_ids().len() && a.calls_of("plan") >= 3 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        during
    });
    assert_eq!(report.status, EngineStatus::Stopped, "{report:?}");
    let names: Vec<String> = during
        .iter()
        .map(|id| a.fx.spec(id)["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["alpha"]);
    assert!(a.fx.state().get("planner_failures").is_none());
}
