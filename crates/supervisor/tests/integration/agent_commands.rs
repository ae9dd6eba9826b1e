//! `supervisor report --agent` and `supervisor ask` with the stand-in agent (a real program):
//! the report prompt (best node, path, failures, size limit at 1,000 nodes), flagged
//! citations, failing agents (report.md intact, a clear reason, a non-zero exit), no agent
//! configured (nothing called), the answer streamed, proposed queue actions applied only with
//! `--yes`, and the agent cost in `status`.

use crate::standin;
use crate::support;

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use autoresearch_adapters::model::{
    Failure, FailureKind, NodeResult, NodeSpec, NodeStatus, RunState,
};
use serde_json::{Value, json};
use standin::standin;
use support::{Lab, Out};

/// `supervisor ARGS` in the lab with `env` added; waits for it.
fn sup_env(lab: &Lab, args: &[&str], env: &[(&str, &str)]) -> Out {
    let out = Command::new(support::bin())
        .args(args)
        .current_dir(&lab.root)
        .envs(env.iter().copied())
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::null())
        .output()
        .expect("running supervisor");
    Out {
        args: args.iter().map(|s| s.to_string()).collect(),
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `cfg` in `<lab>/wd` to its end (gate open).
fn run_to_end(lab: &Lab, cfg: Value) -> PathBuf {
    lab.open_gate();
    let path = lab.write("cfg.json", &serde_json::to_string_pretty(&cfg).unwrap());
    lab.sup(&[
        "run",
        "wd",
        "--config",
        path.to_str().unwrap(),
        "--no-render",
    ])
    .ok();
    lab.path("wd")
}

/// A finished real run whose search planner climbs from the baseline, with a seed that fails
/// (`001_broken`, exit status 3).
fn search_run(lab: &Lab) -> PathBuf {
    run_to_end(
        lab,
        json!({
            "objective": {"metric": "score", "direction": "maximize"},
            "job": {"command": "sh job.sh {v}", "cwd": lab.root, "timeout_s": 120},
            "search_space": {"v": [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]},
            "baseline": {"v": 1},
            "seeds": [{"name": "broken", "params": {"v": 0}, "priority": -1}],
            "planner": {"kind": "search", "seed": 1},
            "limits": {"max_experiments": 8, "max_concurrency": 1, "patience": 20}
        }),
    )
}

/// A finished real run without a planner: `000_baseline` (score 1), `001_a` (2), `002_broken`
/// (exit status 3), `003_c` (4, the best); `004_d` and `005_e` are left queued when
/// max_experiments (4) is reached.
fn seeded_run(lab: &Lab) -> PathBuf {
    let seeds: Vec<Value> = [
        ("a", 2, 1),
        ("broken", 0, 2),
        ("c", 4, 3),
        ("d", 5, 4),
        ("e", 3, 5),
    ]
    .iter()
    .map(|(n, v, p)| json!({"name": n, "params": {"v": v}, "priority": p}))
    .collect();
    let wd = run_to_end(
        lab,
        json!({
            "objective": {"metric": "score", "direction": "maximize"},
            "job": {"command": "sh job.sh {v}", "cwd": lab.root, "timeout_s": 120},
            "search_space": {"v": [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]},
            "baseline": {"v": 1},
            "seeds": seeds,
            "planner": {"kind": "none"},
            "limits": {"max_experiments": 4, "max_concurrency": 1, "patience": 20}
        }),
    );
    assert!(wd.join("engine/nodes/002_broken/failure.json").is_file());
    wd
}

/// A node's parent id from its spec.
fn parent_of(wd: &Path, id: &str) -> Option<String> {
    let spec: Value = serde_json::from_str(
        &fs::read_to_string(wd.join("engine/nodes").join(id).join("spec.json")).unwrap(),
    )
    .unwrap();
    spec["parent_id"].as_str().map(str::to_owned)
}

/// The one prompt file of the run-level calls of `phase` (exactly one such call was made).
fn prompt_of(wd: &Path, phase: &str) -> String {
    let dir = wd.join("logs/agent");
    let prompts: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy().into_owned();
            n.starts_with(&format!("run_{phase}-"))
                && n.ends_with("_prompt.md")
                && !n.contains("_retry")
        })
        .collect();
    assert_eq!(prompts.len(), 1, "{prompts:?}");
    fs::read_to_string(&prompts[0]).unwrap()
}

fn queue_priority(lab: &Lab, id: &str) -> Option<f64> {
    let out = lab.sup(&["queue", "wd"]);
    out.ok();
    out.stdout.lines().find_map(|l| {
        let cols: Vec<&str> = l.split_whitespace().collect();
        (cols.len() == 3 && cols[2] == id).then(|| cols[1].parse().unwrap())
    })
}

#[test]
fn report_agent_writes_report_md_then_a_final_report_from_a_prompt_with_best_path_and_failures() {
    let lab = Lab::new();
    let wd = search_run(&lab);
    let state: Value =
        serde_json::from_str(&fs::read_to_string(wd.join("state.json")).unwrap()).unwrap();
    let best = state["best_node"].as_str().unwrap().to_string();
    let mut path = vec![best.clone()];
    while let Some(p) = parent_of(&wd, path.last().unwrap()) {
        path.push(p);
    }
    path.reverse();
    assert!(path.len() >= 3, "the search climbs a few steps: {path:?}");

    let out = lab.sup(&["report", "wd", "--agent", "--agent-command", standin()]);
    out.ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(
        lines[0].starts_with("wrote ") && lines[0].ends_with("report.md"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("final_report.md"), "{}", out.stdout);

    let prompt = prompt_of(&wd, "report");
    assert!(
        prompt.contains(&format!("Best node: {best} with score = ")),
        "{prompt}"
    );
    assert!(
        prompt.contains(&format!("Path: {}", path.join(" → "))),
        "{prompt}"
    );
    // Each step with its parameter change against its parent.
    let v1: Value = serde_json::from_str(
        &fs::read_to_string(wd.join("engine/nodes").join(&path[1]).join("spec.json")).unwrap(),
    )
    .unwrap();
    let row = prompt
        .lines()
        .find(|l| l.starts_with(&format!("| 1 | {} * | ", path[1])))
        .unwrap_or_else(|| panic!("no row for step 1:\n{prompt}"));
    let change = row.split(" | ").nth(2).unwrap();
    assert!(
        change.starts_with('v') && change.ends_with(&v1["params"]["v"].to_string()),
        "the step's change names the parameter and its new value: {row}"
    );
    // The baseline ran three times (noise.baseline_repeats): its step shows the spread.
    let row = prompt
        .lines()
        .find(|l| l.starts_with(&format!("| 0 | {} ", path[0])))
        .unwrap_or_else(|| panic!("no row for step 0:\n{prompt}"));
    assert!(row.contains(" ± 0 (n=3) | "), "{row}");
    assert!(
        prompt.contains("- nonzero_exit: 1 (nodes: 001_broken)"),
        "{prompt}"
    );

    let report = fs::read_to_string(wd.join("final_report.md")).unwrap();
    assert!(report.starts_with("# Final report: wd"), "{report}");
    for section in [
        "## What was learned",
        "## What worked and why",
        "## What did not work",
        "## What to try next",
    ] {
        assert!(report.contains(section), "{section} missing:\n{report}");
    }
    assert!(
        report.contains(&format!("[{best}]")) && report.contains("[001_broken]"),
        "{report}"
    );
    assert!(!report.contains("Unverified"), "{report}");
    assert!(wd.join("report.md").is_file());

    // The call is journaled run-level, logged, and its cost recorded for `status`.
    assert_eq!(fs::read_dir(wd.join("engine/agent")).unwrap().count(), 1);
    let costs = fs::read_to_string(wd.join("logs/agent/costs.jsonl")).unwrap();
    assert_eq!(costs.lines().count(), 1, "{costs}");
    assert!(costs.contains("\"phase\":\"report\""), "{costs}");
    let status = lab.status("wd");
    assert_eq!(status["agent_cost"]["total"]["calls"], 1, "{status:#}");
    let human = lab.sup(&["status", "wd"]);
    assert!(
        human.stdout.contains("agent cost: 1 call (report/ask)"),
        "{}",
        human.stdout
    );
}

#[test]
fn citations_of_node_ids_that_do_not_exist_are_flagged_in_the_final_report() {
    let lab = Lab::new();
    let wd = seeded_run(&lab);
    let out = sup_env(
        &lab,
        &["report", "wd", "--agent", "--agent-command", standin()],
        &[("STANDIN_MODE", "cite-unknown")],
    );
    out.ok();
    assert!(
        out.stdout.contains("not in this run: 999_imaginary_idea"),
        "the command warns:\n{}",
        out.stdout
    );
    let report = fs::read_to_string(wd.join("final_report.md")).unwrap();
    assert!(
        report.contains("**Unverified citations.**") && report.contains("`999_imaginary_idea`"),
        "{report}"
    );
    assert!(
        report.contains("[999_imaginary_idea (⚠ no such node)]"),
        "{report}"
    );
    assert!(
        report.contains("[003_c]"),
        "real citations are left alone:\n{report}"
    );
}

#[test]
fn an_agent_that_fails_leaves_report_md_intact_and_says_why() {
    let lab = Lab::new();
    let wd = seeded_run(&lab);
    // An earlier final report must survive a failed call untouched.
    fs::write(wd.join("final_report.md"), "earlier report\n").unwrap();
    let pidfile = lab.path("hang.pids");
    let calls = lab.path("calls.txt");
    let cases: [(&str, &str, &[&str]); 3] = [
        ("exit", "the agent exited with status 3", &[]),
        ("garbage", "cites no node id", &[]),
        (
            "hang",
            "did not answer within 1s",
            &["--agent-timeout-s", "1"],
        ),
    ];
    for (mode, why, extra) in cases {
        fs::remove_file(wd.join("report.md")).ok();
        fs::remove_file(&calls).ok();
        let mut args = vec!["report", "wd", "--agent"];
        args.extend_from_slice(extra);
        args.extend(["--agent-command", standin()]);
        let out = sup_env(
            &lab,
            &args,
            &[
                ("STANDIN_MODE", mode),
                ("STANDIN_PIDFILE", pidfile.to_str().unwrap()),
                ("STANDIN_CALLS", calls.to_str().unwrap()),
            ],
        );
        out.readable_error(1);
        assert!(out.stderr.contains(why), "{mode}: {}", out.stderr);
        assert!(
            out.stderr.contains("report.md is intact")
                && out
                    .stderr
                    .contains("the earlier final_report.md is left as it was"),
            "{mode}: {}",
            out.stderr
        );
        let report = fs::read_to_string(wd.join("report.md")).unwrap();
        assert!(
            report.contains("003_c"),
            "{mode}: report.md was written first"
        );
        assert_eq!(
            fs::read_to_string(wd.join("final_report.md")).unwrap(),
            "earlier report\n"
        );
        let n = fs::read_to_string(&calls).unwrap().lines().count();
        // An invalid answer is retried once (max_retries 1); a failed call is not.
        assert_eq!(n, if mode == "garbage" { 2 } else { 1 }, "{mode}");
    }
    // The hung agent's whole process group is gone.
    let pids: Vec<i32> = fs::read_to_string(&pidfile)
        .unwrap()
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert_eq!(pids.len(), 2);
    for pid in pids {
        support::wait_for(
            "the hung agent's processes to be gone",
            support::TIMEOUT,
            || {
                // SAFETY: signal 0 only checks whether the process exists.
                unsafe { libc::kill(pid, 0) != 0 }
            },
        );
    }
    // Every failed call was paid for and recorded.
    let status = lab.status("wd");
    assert_eq!(status["agent_cost"]["total"]["calls"], 4, "{status:#}");

    // An agent that cannot start costs nothing, so the next attempt sends the same prompt: its
    // recorded failure is not replayed, the agent (installed meanwhile) is called.
    let missing = lab.path("not-installed-agent");
    let out = lab.sup(&[
        "report",
        "wd",
        "--agent",
        "--agent-command",
        missing.to_str().unwrap(),
    ]);
    out.readable_error(1);
    assert!(
        out.stderr.contains("cannot start the agent"),
        "{}",
        out.stderr
    );
    fs::copy(standin(), &missing).unwrap();
    let out = lab.sup(&[
        "report",
        "wd",
        "--agent",
        "--agent-command",
        missing.to_str().unwrap(),
    ]);
    out.ok();
    assert!(
        fs::read_to_string(wd.join("final_report.md"))
            .unwrap()
            .contains("[003_c]")
    );
}

#[test]
fn without_an_agent_nothing_is_called_and_the_message_says_how_to_configure_one() {
    let lab = Lab::new();
    seeded_run(&lab);
    // A `claude` and a `codex` on PATH that record any call: neither may be called unasked.
    let bin = lab.path("bin");
    fs::create_dir_all(&bin).unwrap();
    let marker = lab.path("paid-service-called");
    for name in ["claude", "codex"] {
        let p = bin.join(name);
        fs::write(
            &p,
            format!("#!/bin/sh\necho called > '{}'\n", marker.display()),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    }
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for args in [
        vec!["report", "wd", "--agent"],
        vec!["ask", "wd", "what next?"],
    ] {
        let out = sup_env(&lab, &args, &[("PATH", &path)]);
        out.readable_error(2);
        for hint in [
            "none was called",
            "--agent-preset claude",
            "--agent-command",
        ] {
            assert!(
                out.stderr.contains(hint),
                "{args:?}: {hint} missing: {}",
                out.stderr
            );
        }
    }
    assert!(
        !marker.exists(),
        "a paid agent was called without being asked"
    );
    assert!(
        lab.path("wd/report.md").is_file(),
        "report.md is written even so"
    );
    assert!(!lab.path("wd/final_report.md").exists());
    assert!(!lab.path("wd/logs/agent/costs.jsonl").exists());
}

#[test]
fn ask_streams_the_answer_and_changes_the_queue_only_with_yes() {
    let lab = Lab::new();
    let wd = seeded_run(&lab);
    assert_eq!(queue_priority(&lab, "004_d"), Some(4.0));

    // The answer arrives line by line: its first line is shown while the agent still waits.
    let gate = lab.path("ask.gate");
    let mut child = Command::new(support::bin())
        .args([
            "ask",
            "wd",
            "why did 002 fail, and what should run next?",
            "--agent-command",
            standin(),
        ])
        .current_dir(&lab.root)
        .env("STANDIN_GATE", &gate)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    assert!(
        first.starts_with("Stand-in answer to: why did 002 fail"),
        "{first:?}"
    );
    assert!(
        child.try_wait().unwrap().is_none(),
        "the agent is still answering"
    );
    fs::write(&gate, "go").unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    assert!(child.wait().unwrap().success());
    // The files of the node named by its number were given to the agent.
    assert!(
        rest.contains("I read the files of 002_broken (failed):"),
        "{rest}"
    );
    assert!(rest.contains("runs/002_broken/stderr.log"), "{rest}");
    assert!(
        rest.contains("its failure kind is \"nonzero_exit\""),
        "{rest}"
    );
    assert!(
        rest.contains("Proposed queue actions:\n  1. bump 004_d to priority -5"),
        "{rest}"
    );
    assert!(rest.contains("Nothing was changed."), "{rest}");
    assert!(rest.contains("supervisor queue wd bump 004_d -5"), "{rest}");
    assert_eq!(
        queue_priority(&lab, "004_d"),
        Some(4.0),
        "nothing changed without --yes"
    );
    let prompt = prompt_of(&wd, "ask");
    assert!(prompt.contains("### 002_broken (failed)"), "{prompt}");

    // With --yes the same proposal is applied, and an `add` goes through the engine's queue.
    let actions = json!({"actions": [
        {"action": "bump", "id": "004_d", "priority": -5},
        {"action": "add", "name": "nine", "hypothesis": "the top of the range", "params": {"v": 9},
         "parent": "003_c", "priority": 3}
    ]});
    let out = sup_env(
        &lab,
        &[
            "ask",
            "wd",
            "what should run next?",
            "--yes",
            "--agent-command",
            standin(),
        ],
        &[("STANDIN_ACTIONS", &actions.to_string())],
    );
    out.ok();
    assert!(
        out.stdout.contains("done: bump 004_d to priority -5"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("done: add experiment `nine` (v=9) on 003_c"),
        "{}",
        out.stdout
    );
    assert_eq!(queue_priority(&lab, "004_d"), Some(-5.0));
    let queue = lab.sup(&["queue", "wd"]).stdout;
    assert!(queue.contains("-nine"), "{queue}");
}

#[test]
fn status_adds_the_engines_agent_cost_and_the_supervisors() {
    let lab = Lab::new();
    let wd = seeded_run(&lab);
    // What the engine's planner spent, as the integration keeps it in state.json.
    let mut state: Value =
        serde_json::from_str(&fs::read_to_string(wd.join("state.json")).unwrap()).unwrap();
    state["agent_cost"] =
        json!({"total": {"usd": 1.25, "calls": 5}, "by_phase": {}, "by_node": {}});
    fs::write(wd.join("state.json"), state.to_string()).unwrap();
    let out = lab.sup(&[
        "ask",
        "wd",
        "is the plateau real?",
        "--agent-preset",
        "claude",
        "--agent-command",
        standin(),
        "--format",
        "claude",
    ]);
    out.ok();
    assert!(
        out.stdout
            .contains("Stand-in answer to: is the plateau real?"),
        "{}",
        out.stdout
    );
    assert!(
        out.stderr.contains("(agent cost: $0.0100"),
        "{}",
        out.stderr
    );
    let status = lab.status("wd");
    assert_eq!(status["agent_cost"]["total"]["usd"], 1.26, "{status:#}");
    assert_eq!(status["agent_cost"]["engine"]["calls"], 5);
    assert_eq!(status["agent_cost"]["supervisor"]["calls"], 1);
    let human = lab.sup(&["status", "wd"]).stdout;
    assert!(
        human.contains("agent cost: $1.2600, 100 in / 20 out tokens, 6 calls (engine $1.2500, 5 calls; report/ask $0.0100"),
        "{human}"
    );
}

// ---------------------------------------------------------------------------------------------
// A long run: 1,000 nodes written with the model types.

fn write_json(path: &Path, v: &impl serde::Serialize) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, serde_json::to_vec(v).unwrap()).unwrap();
}

/// 1,000 finished nodes: a chain of improvements every 10th node, failures of three kinds,
/// long hypotheses and analyses; returns the best node and the path to it.
fn thousand_node_run(wd: &Path) -> (String, Vec<String>) {
    write_json(
        &wd.join("config.json"),
        &json!({
            "objective": {"metric": "seconds", "direction": "minimize", "min_improvement": 0.01},
            "job": {"command": "python bench.py --chunk {chunk}", "cwd": "/tmp", "timeout_s": 60},
            "search_space": {"chunk": {"min": 1, "max": 4096, "type": "int"}, "mode": ["a", "b"]},
            "limits": {"max_experiments": 1000}
        }),
    );
    let kinds = [
        FailureKind::NonzeroExit,
        FailureKind::Timeout,
        FailureKind::MissingMetric,
    ];
    let mut best: Option<(String, f64)> = None;
    let mut path = Vec::new();
    for i in 0..1000usize {
        let id = format!("{i:04}_idea_{i}");
        let parent = best.as_ref().map(|b| b.0.clone());
        let dir = wd.join("engine/nodes").join(&id);
        let mut params = serde_json::Map::new();
        params.insert("chunk".into(), json!(1 + (i * 37) % 4096));
        params.insert("mode".into(), json!(if i % 2 == 0 { "a" } else { "b" }));
        write_json(
            &dir.join("spec.json"),
            &NodeSpec {
                node_id: id.clone(),
                name: format!("idea_{i}"),
                parent_id: parent.clone(),
                hypothesis: format!(
                    "Idea {i}: hoist the allocation out of the hot loop and batch the writes, \
                     since the profile shows {i}% of the time in write(2) and malloc."
                ),
                params,
                changes: (i % 3 == 0).then(|| format!("In bench.py, buffer the writer ({i}).")),
                command: "python bench.py".into(),
                priority: 0.0,
                created_at: "2026-01-01T00:00:00Z".into(),
            },
        );
        let status = if i % 9 == 4 {
            write_json(
                &dir.join("failure.json"),
                &Failure {
                    kind: kinds[(i / 9) % 3],
                    phase: NodeStatus::Running,
                    message: format!("Traceback (most recent call last): … NameError in idea {i}"),
                    retryable: false,
                    details: Value::Null,
                    created_at: "2026-01-01T00:00:00Z".into(),
                },
            );
            NodeStatus::Failed
        } else {
            let value = if i % 10 == 0 {
                1000.0 - i as f64
            } else {
                1000.0 - i as f64 + 50.0
            };
            let improved = best.as_ref().is_none_or(|b| value < b.1 * 0.99);
            if improved {
                best = Some((id.clone(), value));
                path = parent
                    .iter()
                    .flat_map(|_| path.clone())
                    .chain(std::iter::once(id.clone()))
                    .collect();
            }
            let mut metrics = BTreeMap::new();
            metrics.insert("seconds".to_string(), value);
            write_json(
                &dir.join("result.json"),
                &NodeResult {
                    metrics,
                    primary: Some(value),
                    improved,
                    duration_s: 1.0,
                    exit_code: Some(0),
                    ..Default::default()
                },
            );
            fs::create_dir_all(wd.join("runs").join(&id)).unwrap();
            fs::write(
                wd.join("runs").join(&id).join("analysis.md"),
                format!(
                    "# {id}\nThe writer dominates; chunk {i} changed little. {}\n",
                    "x".repeat(400)
                ),
            )
            .unwrap();
            NodeStatus::Completed
        };
        fs::write(dir.join("status.txt"), format!("{status}\n")).unwrap();
    }
    let (best_id, best_value) = best.unwrap();
    write_json(
        &wd.join("state.json"),
        &RunState {
            schema_version: 1,
            metric: "seconds".into(),
            direction: "minimize".into(),
            best_node: Some(best_id.clone()),
            best_value: Some(best_value),
            baseline_node: Some("0000_idea_0".into()),
            baseline_value: Some(1000.0),
            experiments_started: 1000,
            experiments_completed: 889,
            experiments_failed: 111,
            ..RunState::default()
        },
    );
    (best_id, path)
}

#[test]
fn the_report_prompt_of_a_thousand_node_run_stays_under_its_limit_and_keeps_what_matters() {
    let lab = Lab::new();
    let wd = lab.path("wd");
    let (best, path) = thousand_node_run(&wd);
    assert!(path.len() > 50, "a long path: {}", path.len());
    let started = std::time::Instant::now();
    let out = lab.sup(&["report", "wd", "--agent", "--agent-command", standin()]);
    out.ok();
    let prompt = prompt_of(&wd, "report");
    eprintln!(
        "report prompt of a 1,000-node run: {} bytes (limit 60000), command took {} ms",
        prompt.len(),
        started.elapsed().as_millis()
    );
    assert!(prompt.len() <= 60_000, "{} bytes", prompt.len());
    assert!(
        prompt.contains(&format!("Best node: {best} with seconds = ")),
        "the best"
    );
    assert!(
        prompt.contains(&format!("| {best} *")),
        "the best in the history table"
    );
    assert!(
        prompt.contains(&format!("Path: {}", path.join(" → ")))
            || prompt.contains("steps, shown below")
    );
    assert!(
        prompt.contains(&format!("| {} | {best} * |", path.len() - 1)),
        "the path's last step"
    );
    assert!(
        prompt.contains("| 0 | 0000_idea_0 * |"),
        "the path's first step"
    );
    assert!(
        prompt.contains("steps not shown"),
        "the middle of the path is elided"
    );
    for kind in ["missing_metric: 37", "nonzero_exit: 37", "timeout: 37"] {
        assert!(prompt.contains(&format!("- {kind} (nodes: ")), "{kind}");
    }
    assert!(
        prompt.contains("Not shown:"),
        "the rest of the history is summarized"
    );
    let report = fs::read_to_string(wd.join("final_report.md")).unwrap();
    assert!(report.contains(&format!("[{best}]")), "{report}");
}

fn git(repo: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(repo)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@t")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@t")
        .output()
        .expect("git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn each_code_step_on_the_path_shows_its_diff_stat_from_the_runs_git_refs() {
    let lab = Lab::new();
    let wd = lab.path("wd");
    // The user's repository: a base commit and one experiment commit that changes app.py.
    let repo = lab.path("repo");
    fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q"]);
    fs::write(
        repo.join("app.py"),
        "for i in range(n):\n    out.write(i)\n",
    )
    .unwrap();
    git(&repo, &["add", "app.py"]);
    git(&repo, &["commit", "-qm", "base"]);
    let base = git(&repo, &["rev-parse", "HEAD"]);
    fs::write(
        repo.join("app.py"),
        "buf = []\nfor i in range(n):\n    buf.append(i)\nout.write(buf)\n",
    )
    .unwrap();
    git(&repo, &["commit", "-qam", "buffered"]);
    let buffered = git(&repo, &["rev-parse", "HEAD"]);
    let run = "20261201T143005-3fa9";
    for (id, commit) in [
        ("000_baseline", &base),
        ("001_buffered", &buffered),
        ("002_more_workers", &buffered),
    ] {
        git(
            &repo,
            &[
                "update-ref",
                &format!("refs/autoresearch/{run}/{id}"),
                commit,
            ],
        );
    }
    write_json(
        &wd.join("config.json"),
        &json!({
            "objective": {"metric": "seconds", "direction": "minimize"},
            "job": {"command": "python app.py {workers}"},
            "workspace": {"repo": repo, "protected": []}
        }),
    );
    fs::create_dir_all(wd.join("engine")).unwrap();
    fs::write(wd.join("engine/run_id"), format!("{run}\n")).unwrap();
    let nodes = [
        ("000_baseline", None, 10.0, None),
        (
            "001_buffered",
            Some("000_baseline"),
            6.0,
            Some("Buffer the writes in app.py."),
        ),
        ("002_more_workers", Some("001_buffered"), 4.0, None),
    ];
    for (i, (id, parent, value, changes)) in nodes.into_iter().enumerate() {
        let dir = wd.join("engine/nodes").join(id);
        write_json(
            &dir.join("spec.json"),
            &NodeSpec {
                node_id: id.into(),
                name: id[4..].into(),
                parent_id: parent.map(str::to_owned),
                hypothesis: String::new(),
                params: json!({"workers": 1 + i}).as_object().unwrap().clone(),
                changes: changes.map(str::to_owned),
                command: "python app.py".into(),
                priority: 0.0,
                created_at: "2026-01-01T00:00:00Z".into(),
            },
        );
        let mut metrics = BTreeMap::new();
        metrics.insert("seconds".to_string(), value);
        write_json(
            &dir.join("result.json"),
            &NodeResult {
                metrics,
                primary: Some(value),
                improved: true,
                ..NodeResult::default()
            },
        );
        fs::write(dir.join("status.txt"), "completed\n").unwrap();
    }
    lab.sup(&["report", "wd", "--agent", "--agent-command", standin()])
        .ok();
    let prompt = prompt_of(&wd, "report");
    let row = |id: &str| {
        prompt
            .lines()
            .find(|l| l.contains(&format!(" | {id} * | ")))
            .unwrap_or_else(|| panic!("no path row for {id}:\n{prompt}"))
            .to_string()
    };
    assert!(
        row("001_buffered")
            .contains("| app.py (4); 1 file changed, 3 insertions(+), 1 deletion(-) |"),
        "{}",
        row("001_buffered")
    );
    // A parameter-only step shares its parent's commit: its change is the parameter, no diff.
    assert!(
        row("002_more_workers").contains("| workers=3 | - |"),
        "{}",
        row("002_more_workers")
    );
    assert!(
        prompt.contains(&format!(
            "Its code: git ref `refs/autoresearch/{run}/002_more_workers`"
        )),
        "{prompt}"
    );
}
