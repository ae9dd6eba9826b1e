//! The agent-demo example end to end, as a user runs it: `examples/agent-demo/run.sh WORKDIR`
//! with the built `supervisor` and the stand-in coding agent on PATH. The stand-in really edits
//! the demo program in each experiment's worktree; the run must find a commit that is faster
//! than the baseline, keep a ref for it in the demo repository, and leave the protected
//! evaluator untouched; the dashboard serves the same diffs over HTTP. Running `run.sh` again
//! on the same workdir reports the finished run without starting anything.

use crate::serve_support::{Dashboard, get, get_json, http};
use crate::standin;

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use autoresearch_adapters::agent::AgentPhase;
use autoresearch_adapters::model::{NodeCommit, RunState};
use standin::standin;

/// Runs `examples/agent-demo/run.sh wd` with both binaries first on PATH.
fn run_demo(wd: &Path) -> Output {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let supervisor = PathBuf::from(env!("CARGO_BIN_EXE_supervisor"));
    let agent = PathBuf::from(standin());
    let mut dirs = vec![
        supervisor.parent().unwrap().to_path_buf(),
        agent.parent().unwrap().to_path_buf(),
    ];
    dirs.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    let path: OsString = std::env::join_paths(dirs).unwrap();
    let out = Command::new("bash")
        .arg(root.join("examples/agent-demo/run.sh"))
        .arg(wd)
        .env("PATH", path)
        .output()
        .expect("bash runs examples/agent-demo/run.sh");
    assert!(
        out.status.success(),
        "run.sh failed ({})\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `git -C repo args…`, its trimmed stdout; fails the test unless git succeeds.
fn git(repo: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn state(wd: &Path) -> RunState {
    serde_json::from_slice(&fs::read(wd.join("state.json")).unwrap()).unwrap()
}

#[test]
fn the_agent_demo_finds_a_faster_commit_than_the_baseline() {
    let tmp = tempfile::tempdir().unwrap();
    let wd = tmp.path().join("demo");
    let out = run_demo(&wd);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let repo = tmp.path().join("demo.repo");

    let s = state(&wd);
    let (baseline, best) = (
        s.baseline_node.clone().unwrap(),
        s.best_node.clone().unwrap(),
    );
    let (base_v, best_v) = (s.baseline_value.unwrap(), s.best_value.unwrap());
    assert_ne!(best, baseline, "an experiment beat the baseline");
    assert!(
        best_v < base_v,
        "best {best} = {best_v} is faster than baseline {baseline} = {base_v}"
    );
    // The agent planned and applied code changes, and every call is counted.
    let cost = s.agent_cost.as_ref().expect("agent_cost in state.json");
    assert!(cost.by_phase[&AgentPhase::Plan].calls >= 1);
    assert!(cost.by_phase[&AgentPhase::Apply].calls >= 1);

    // The cost is one figure, in `status` and `summary.md` alike.
    let status = Command::new(env!("CARGO_BIN_EXE_supervisor"))
        .arg("status")
        .arg(&wd)
        .output()
        .unwrap();
    let status = String::from_utf8_lossy(&status.stdout);
    let calls = format!("{} calls", cost.total.calls);
    assert!(status.contains(&format!("agent cost: {calls}")), "{status}");
    let summary = fs::read_to_string(wd.join("summary.md")).unwrap();
    assert!(
        summary.contains(&format!("- Agent cost: {calls}")),
        "{summary}"
    );

    // The best experiment's code is a real commit, kept under the run's ref.
    let commit: NodeCommit = serde_json::from_slice(
        &fs::read(wd.join("engine/nodes").join(&best).join("commit.json")).unwrap(),
    )
    .unwrap();
    let run = fs::read_to_string(wd.join("engine/run_id")).unwrap();
    assert_eq!(
        commit.ref_name,
        format!("refs/autoresearch/{}/{best}", run.trim())
    );
    let at_ref = git(&repo, &["rev-parse", "--verify", &commit.ref_name]);
    assert_eq!(at_ref, commit.commit, "the ref points at the node's commit");
    assert!(
        commit.changed.iter().any(|p| p == "slow.py"),
        "the best experiment changed the program: {:?}",
        commit.changed
    );
    assert!(
        stdout.contains(&commit.ref_name),
        "run.sh names the best commit:\n{stdout}"
    );
    // Its history starts at the demo's first commit (the baseline's), and the protected
    // evaluator is the same there.
    let first = git(&repo, &["rev-list", "--max-parents=0", &commit.commit]);
    let base: NodeCommit = serde_json::from_slice(
        &fs::read(wd.join("engine/nodes").join(&baseline).join("commit.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(first, base.commit);
    let diff = git(
        &repo,
        &["diff", "--name-only", &base.commit, &commit.commit],
    );
    assert!(
        !diff.lines().any(|p| p == "run_bench.sh"),
        "evaluator untouched: {diff}"
    );
    // Every experiment that got a commit has its ref; no worktree is left behind.
    let refs = git(
        &repo,
        &[
            "for-each-ref",
            "--format=%(refname)",
            &format!("refs/autoresearch/{}/", run.trim()),
        ],
    );
    assert!(refs.lines().count() as u64 >= s.experiments_started - s.experiments_failed);
    let worktrees = git(&repo, &["worktree", "list", "--porcelain"]);
    assert_eq!(
        worktrees
            .lines()
            .filter(|l| l.starts_with("worktree "))
            .count(),
        1,
        "only the main worktree is left: {worktrees}"
    );

    // `supervisor show` and report.md show the code change against the parent and the
    // baseline; report.md says how to check the best commit out.
    let show = Command::new(env!("CARGO_BIN_EXE_supervisor"))
        .arg("show")
        .arg(&wd)
        .arg(&best)
        .output()
        .unwrap();
    assert!(show.status.success(), "{show:?}");
    let show = String::from_utf8_lossy(&show.stdout);
    assert!(show.contains(&commit.ref_name), "{show}");
    assert!(show.contains("code against its parent"), "{show}");
    assert!(show.contains("diff --git a/slow.py b/slow.py"), "{show}");
    for bad in ["999_nope", "../.."] {
        let out = Command::new(env!("CARGO_BIN_EXE_supervisor"))
            .arg("show")
            .arg(&wd)
            .arg(bad)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(
            err.contains("there is no experiment") && err.contains("engine/nodes/"),
            "{err}"
        );
    }
    let report = fs::read_to_string(wd.join("report.md")).unwrap();
    let checkout = format!(
        "git -C {} worktree add --detach ../demo.repo-{best} {}",
        repo.display(),
        commit.ref_name
    );
    assert!(report.contains(&checkout), "{report}");
    assert!(report.contains("```diff\n"), "{report}");
    // The command really checks the best code out.
    let out = Command::new("sh")
        .arg("-c")
        .arg(&checkout)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let checked = tmp.path().join(format!("demo.repo-{best}"));
    assert_eq!(git(&checked, &["rev-parse", "HEAD"]), commit.commit);
    git(
        &repo,
        &["worktree", "remove", "--force", checked.to_str().unwrap()],
    );

    // The dashboard serves the same diffs over HTTP, from the real commits.
    dashboard_diffs(tmp.path(), &best, &baseline, &commit, &base);

    // Again on the same workdir: the finished run is reported, nothing runs again.
    run_demo(&wd);
    let again = state(&wd);
    assert_eq!(again.experiments_started, s.experiments_started);
    assert_eq!(again.best_node, s.best_node);
}

/// `supervisor serve` on the finished demo (`dir/demo`): the best node's page names its
/// commits, its diff against the baseline is the real `git diff` between the two commits, the
/// baseline has no diff, and a bad `against` or node is refused with a reason.
fn dashboard_diffs(dir: &Path, best: &str, baseline: &str, commit: &NodeCommit, base: &NodeCommit) {
    let d = Dashboard::start(dir, "demo", &[]);
    let api = format!("{}/api/w/demo/nodes", d.base);
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let c = http();
        let node = get_json(&c, &format!("{api}/{best}")).await;
        assert!(node["commits"].is_object(), "{node:#}");
        let diff = get_json(&c, &format!("{api}/{best}/diff?against=baseline")).await;
        assert_eq!(diff["from"], base.commit.as_str(), "{diff:#}");
        assert_eq!(diff["to"], commit.commit.as_str(), "{diff:#}");
        let text = diff["text"].as_str().unwrap();
        assert!(text.contains("diff --git a/slow.py b/slow.py"), "{text}");
        assert!(
            !text.contains("run_bench.sh"),
            "evaluator untouched: {text}"
        );
        assert_eq!(diff["truncated"], false);
        let parent = get_json(&c, &format!("{api}/{best}/diff")).await;
        assert_eq!(parent["to"], commit.commit.as_str(), "{parent:#}");

        let (status, body) = get(&c, &format!("{api}/{baseline}/diff")).await;
        assert_eq!(status, 404, "{body}");
        assert!(body.contains("has no commit"), "{body}");
        let (status, body) = get(&c, &format!("{api}/{best}/diff?against=main")).await;
        assert_eq!(status, 400, "{body}");
        assert!(body.contains("expected parent or baseline"), "{body}");
        let (status, body) = get(&c, &format!("{api}/999_nope/diff")).await;
        assert_eq!(status, 404, "{body}");
    });
}
