//! The coding-agent planner through the real engine and workflow, with the stand-in agent (a
//! real program speaking the agent contract) and real git repositories in temp folders: plans
//! launching experiments, every way an answer can go wrong (prose, envelopes, errors, garbage,
//! timeouts, crashes, huge replies, stop, duplicates) and the fallback, code changes applied and
//! committed in per-experiment worktrees, protected paths, the optional analysis, the cost
//! budget, and SIGKILLs of the engine during plan and apply calls.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use autoresearch_engine::EngineStatus;
use common::{Fixture, alive, read_json, wait_until};
use serde_json::{Value, json};

const STANDIN: &str = env!("CARGO_BIN_EXE_autoresearch-standin-agent");

/// `git -C dir args…` with a fixed identity; panics with git's message on failure.
fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@t"])
        .args(["-c", "commit.gpgsign=false"])
        .args(args)
        .output()
        .expect("git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The evaluator: logs the node, waits for `$GATES/<node id>` when `$GATES` is set, shows the
/// code and scores it by its number of lines (every idea adds one).
const BENCH: &str = "#!/bin/sh\n\
echo \"$AUTORESEARCH_NODE_ID\" >> \"$LAUNCHES\"\n\
if [ -n \"$GATES\" ]; then while [ ! -e \"$GATES/$AUTORESEARCH_NODE_ID\" ]; do sleep 0.05; done; fi\n\
echo \"code: $(tr '\\n' ' ' < code.txt)\"\n\
echo \"METRIC score=$(wc -l < code.txt)\"\n";

/// A run with a git repository, an ideas file and the stand-in agent.
struct Agentic {
    fx: Fixture,
    repo: PathBuf,
    ideas: PathBuf,
    /// Every agent call appends its phase here.
    calls: PathBuf,
}

fn idea(name: &str) -> Value {
    json!({"name": name, "hypothesis": format!("{name} helps"),
           "changes": format!("In code.txt, add the line {name} after base."),
           "edits": [{"file": "code.txt", "find": "base", "replace": format!("base\n{name}")}]})
}

impl Agentic {
    fn new(ideas: Value) -> Self {
        let fx = Fixture::new();
        let repo = fx.tmp.path().join("repo");
        std::fs::create_dir_all(&repo).expect("repo dir");
        git(&repo, &["init", "-q", "-b", "main"]);
        std::fs::write(repo.join("bench.sh"), BENCH).expect("bench.sh");
        std::fs::write(repo.join("code.txt"), "base\n").expect("code.txt");
        git(&repo, &["add", "-A"]);
        git(&repo, &["commit", "-qm", "the program"]);
        let path = fx.tmp.path().join("ideas.json");
        std::fs::write(&path, ideas.to_string()).expect("ideas");
        let calls = fx.tmp.path().join("calls.log");
        Agentic {
            fx,
            repo,
            ideas: path,
            calls,
        }
    }

    /// The agent's argv: `env VARS… standin --ideas FILE ARGS…`.
    fn agent(&self, vars: &[(&str, String)], args: &[&str]) -> Value {
        let mut argv = vec![
            "env".to_string(),
            format!("STANDIN_CALLS={}", self.calls.display()),
        ];
        argv.extend(vars.iter().map(|(k, v)| format!("{k}={v}")));
        argv.push(STANDIN.into());
        argv.push("--ideas".into());
        argv.push(self.ideas.display().to_string());
        argv.extend(args.iter().map(|a| a.to_string()));
        json!(argv)
    }

    /// A configuration: objective `score` (maximize), the job `sh bench.sh` in the repository,
    /// the agent planner with `agent` (extra `planner.agent` fields merged in), the workspace
    /// with `bench.sh` protected.
    fn config(&self, agent: Value, extra: Value) -> Value {
        let mut planner_agent = json!({"command": agent, "timeout_s": 30, "fallback": "none"});
        if let Some(m) = extra.get("agent").and_then(Value::as_object) {
            for (k, v) in m {
                planner_agent[k] = v.clone();
            }
        }
        let mut c = json!({
            "objective": {"metric": "score", "direction": "maximize", "min_improvement": 0.01},
            "job": {"command": "sh bench.sh", "cwd": self.repo.display().to_string(),
                    "timeout_s": 60,
                    "env": {"LAUNCHES": self.launches().display().to_string()}},
            "planner": {"kind": "agent", "agent": planner_agent},
            "workspace": {"repo": self.repo.display().to_string(), "protected": ["bench.sh"]},
            "limits": {"max_experiments": 10, "patience": 5, "max_concurrency": 2}
        });
        for key in [
            "limits",
            "job",
            "planner",
            "workspace",
            "search_space",
            "baseline",
        ] {
            if let Some(m) = extra.get(key).and_then(Value::as_object) {
                if c.get(key).is_none() {
                    c[key] = json!({});
                }
                for (k, v) in m {
                    c[key][k] = v.clone();
                }
            }
        }
        c
    }

    fn launches(&self) -> PathBuf {
        self.fx.work.join("launches.log")
    }

    /// Agent calls of `phase` so far.
    fn calls_of(&self, phase: &str) -> usize {
        std::fs::read_to_string(&self.calls)
            .unwrap_or_default()
            .lines()
            .filter(|l| *l == phase)
            .count()
    }

    /// Runs the engine in this process to its end.
    async fn run(&self, config: Value) -> autoresearch_engine::RunReport {
        self.fx.run(Some(self.fx.config(config))).await
    }

    /// The run id of the refs (`engine/run_id`).
    fn run_id(&self) -> String {
        std::fs::read_to_string(self.fx.path("engine/run_id"))
            .expect("engine/run_id")
            .trim()
            .to_string()
    }

    /// The commit of node `id`'s ref, if any.
    fn node_ref(&self, id: &str) -> Option<String> {
        let r = format!("refs/autoresearch/{}/{id}", self.run_id());
        let out = Command::new("git")
            .arg("-C")
            .arg(&self.repo)
            .args(["rev-parse", "--verify", "--quiet", &r])
            .output()
            .expect("git");
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// The registered worktrees other than the repository itself.
    fn extra_worktrees(&self) -> Vec<String> {
        git(&self.repo, &["worktree", "list", "--porcelain"])
            .lines()
            .filter_map(|l| l.strip_prefix("worktree "))
            .filter(|p| Path::new(p) != self.repo.canonicalize().unwrap_or_default())
            .filter(|p| Path::new(p) != self.repo)
            .map(str::to_string)
            .collect()
    }

    /// Every node has a ref and a `commit.json` with the same commit (failed applies aside).
    fn assert_refs(&self) {
        for id in self.fx.node_ids() {
            let commit = self.fx.node_dir(&id).join("commit.json");
            if !commit.is_file() {
                let f = self.fx.failure(&id);
                assert_eq!(f["kind"], "apply", "{id} has no commit.json: {f}");
                continue;
            }
            let record = read_json(&commit);
            assert_eq!(
                self.node_ref(&id).as_deref(),
                record["commit"].as_str(),
                "{id}: {record}"
            );
        }
    }

    fn stdout_of(&self, id: &str) -> String {
        std::fs::read_to_string(self.fx.run_dir(id).join("stdout.log")).unwrap_or_default()
    }
}

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
            common::wait_until_async(Duration::from_secs(60), move || launched().len() >= n)
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
