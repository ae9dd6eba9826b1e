//! The fixture of the coding-agent tests: a git repository with a small program (`bench.sh`,
//! protected, scoring `code.txt` by its number of lines), an ideas file for the stand-in agent,
//! and the configuration, run and inspection helpers around [`Fixture`].

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::support::{self, Fixture, kill_group, read_json};
use serde_json::{Value, json};

/// The stand-in agent built with the workspace.
pub(crate) const STANDIN: &str = env!("CARGO_BIN_EXE_autoresearch-standin-agent");

/// `git -C dir args…` with a fixed identity; panics with git's message on failure.
pub(crate) fn git(dir: &Path, args: &[&str]) -> String {
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
pub(crate) const BENCH: &str = "#!/bin/sh\n\
echo \"$AUTORESEARCH_NODE_ID\" >> \"$LAUNCHES\"\n\
if [ -n \"$GATES\" ]; then while [ ! -e \"$GATES/$AUTORESEARCH_NODE_ID\" ]; do sleep 0.05; done; fi\n\
echo \"code: $(tr '\\n' ' ' < code.txt)\"\n\
echo \"METRIC score=$(wc -l < code.txt)\"\n";

/// A run with a git repository, an ideas file and the stand-in agent.
pub(crate) struct Agentic {
    pub fx: Fixture,
    pub repo: PathBuf,
    pub ideas: PathBuf,
    /// Every agent call appends its phase here.
    pub calls: PathBuf,
}

pub(crate) fn idea(name: &str) -> Value {
    json!({"name": name, "hypothesis": format!("{name} helps"),
           "changes": format!("In code.txt, add the line {name} after base."),
           "edits": [{"file": "code.txt", "find": "base", "replace": format!("base\n{name}")}]})
}

impl Agentic {
    pub(crate) fn new(ideas: Value) -> Self {
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
    pub(crate) fn agent(&self, vars: &[(&str, String)], args: &[&str]) -> Value {
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
    pub(crate) fn config(&self, agent: Value, extra: Value) -> Value {
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

    pub(crate) fn launches(&self) -> PathBuf {
        self.fx.work.join("launches.log")
    }

    /// Agent calls of `phase` so far.
    pub(crate) fn calls_of(&self, phase: &str) -> usize {
        std::fs::read_to_string(&self.calls)
            .unwrap_or_default()
            .lines()
            .filter(|l| *l == phase)
            .count()
    }

    /// Runs the engine in this process to its end.
    pub(crate) async fn run(&self, config: Value) -> autoresearch_engine::RunReport {
        self.fx.run(Some(self.fx.config(config))).await
    }

    /// The run id of the refs (`engine/run_id`).
    pub(crate) fn run_id(&self) -> String {
        std::fs::read_to_string(self.fx.path("engine/run_id"))
            .expect("engine/run_id")
            .trim()
            .to_string()
    }

    /// The commit of node `id`'s ref, if any.
    pub(crate) fn node_ref(&self, id: &str) -> Option<String> {
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
    pub(crate) fn extra_worktrees(&self) -> Vec<String> {
        git(&self.repo, &["worktree", "list", "--porcelain"])
            .lines()
            .filter_map(|l| l.strip_prefix("worktree "))
            .filter(|p| Path::new(p) != self.repo.canonicalize().unwrap_or_default())
            .filter(|p| Path::new(p) != self.repo)
            .map(str::to_string)
            .collect()
    }

    /// Every node has a ref and a `commit.json` with the same commit (failed applies aside).
    pub(crate) fn assert_refs(&self) {
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

    pub(crate) fn stdout_of(&self, id: &str) -> String {
        std::fs::read_to_string(self.fx.run_dir(id).join("stdout.log")).unwrap_or_default()
    }
}

/// The nodes planned after the baseline, by name.
pub(crate) fn planned_names(fx: &Fixture) -> Vec<String> {
    fx.node_ids()
        .iter()
        .map(|id| fx.spec(id)["name"].as_str().unwrap_or("").to_string())
        .filter(|n| n != "baseline")
        .collect()
}

impl Agentic {
    /// Writes `config.json` (a first run) without running.
    pub(crate) fn write_config(&self, config: Value) {
        self.fx.resolve(Some(self.fx.config(config)));
    }

    /// Kills the stand-in agent whose pid is in `pidfile` (orphaned by the engine's SIGKILL).
    pub(crate) fn kill_agent(&self, pidfile: &Path) {
        let pid: i32 = std::fs::read_to_string(pidfile)
            .expect("the waiting agent wrote its pid")
            .trim()
            .parse()
            .unwrap();
        // The agent leads its own process group.
        assert!(kill_group(pid), "the agent {pid} survived");
    }

    /// Runs the engine in a child process to its end.
    pub(crate) fn resume_to_end(&self) {
        let mut child = self.fx.spawn_engine();
        let code = child.wait(Duration::from_secs(120));
        assert_eq!(code, Some(0), "{}", self.fx.child_log());
    }

    /// No two nodes with the same name, everything finished, a ref per node, no worktree left.
    pub(crate) fn assert_clean_end(&self) {
        let names = planned_names(&self.fx);
        let unique: BTreeSet<&String> = names.iter().collect();
        assert_eq!(unique.len(), names.len(), "duplicate nodes: {names:?}");
        for id in self.fx.node_ids() {
            let st = self.fx.status(&id);
            assert!(st == "completed" || st == "failed", "{id}: {st}");
        }
        self.assert_refs();
        assert!(
            self.extra_worktrees().is_empty(),
            "{:?}",
            self.extra_worktrees()
        );
        let left: Vec<String> = std::fs::read_dir(self.fx.path("engine/worktrees"))
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        assert!(left.is_empty(), "worktree folders left: {left:?}");
    }
}

/// Polls `f` (every 20 ms, at most 60 s) and fails the test naming `what` if it never holds.
pub(crate) async fn wait_for(what: &str, f: impl FnMut() -> bool) {
    assert!(
        support::wait_until_async(Duration::from_secs(60), f).await,
        "timed out waiting for {what}"
    );
}

/// Gates `<tmp>/gates/<phase>_<n>` for the first 20 calls of every phase.
pub(crate) fn open_all_gates(dir: &Path) {
    for phase in ["plan", "apply", "analyze"] {
        for n in 1..=20 {
            std::fs::write(dir.join(format!("{phase}_{n}")), "").unwrap();
        }
    }
}
