//! The git workspace on real repositories in temp folders, with the stand-in agent making the
//! changes: concurrent worktrees at different commits, commits with trailers and refs, the
//! protected-path check, crash leftovers cleaned and recreated, idempotent apply, includes.

use std::path::{Path, PathBuf};
use std::process::Command;

use autoresearch_adapters::agent::AgentClient;
use autoresearch_adapters::agent::step_prompts::{ApplyContext, render_apply_prompt};
use autoresearch_adapters::agent::template::Templates;
use autoresearch_adapters::config::agent::AgentConfig;
use autoresearch_adapters::config::workspace::WorkspaceConfig;
use autoresearch_adapters::workspace::{ApplyState, CommitInfo, Workspace};
use serde_json::json;

const STANDIN: &str = env!("CARGO_BIN_EXE_autoresearch-standin-agent");

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

struct Repo {
    _tmp: tempfile::TempDir,
    repo: PathBuf,
    wd: PathBuf,
    ideas: PathBuf,
    /// The first commit and a second one that changes `main.py`.
    c1: String,
    c2: String,
}

fn repo() -> Repo {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let wd = tmp.path().join("wd");
    std::fs::create_dir_all(&repo).unwrap();
    std::fs::create_dir_all(&wd).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    std::fs::write(repo.join("main.py"), "N = 10\nMODE = 'slow'\n").unwrap();
    std::fs::write(repo.join("bench.py"), "print('METRIC seconds=1')\n").unwrap();
    std::fs::write(repo.join(".gitignore"), "data/\n.env\n").unwrap();
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-qm", "first"]);
    let c1 = git(&repo, &["rev-parse", "HEAD"]);
    std::fs::write(repo.join("main.py"), "N = 20\nMODE = 'slow'\n").unwrap();
    git(&repo, &["commit", "-qam", "second"]);
    let c2 = git(&repo, &["rev-parse", "HEAD"]);
    let ideas = tmp.path().join("ideas.json");
    std::fs::write(
        &ideas,
        json!([
            {"name": "fast_mode", "hypothesis": "fast is faster",
             "changes": "Set MODE to fast.",
             "edits": [{"file": "main.py", "find": "MODE = 'slow'", "replace": "MODE = 'fast'"}]},
            {"name": "add_helper", "hypothesis": "a helper module",
             "changes": "Add a helper file and import it.",
             "edits": [{"file": "main.py", "find": "N = ", "replace": "import helper\nN = "}]}
        ])
        .to_string(),
    )
    .unwrap();
    Repo {
        _tmp: tmp,
        repo,
        wd,
        ideas,
        c1,
        c2,
    }
}

impl Repo {
    fn config(&self, protected: &[&str], include: &[&str]) -> WorkspaceConfig {
        let c: WorkspaceConfig = serde_json::from_value(json!({
            "repo": self.repo, "protected": protected, "include": include
        }))
        .unwrap();
        c.validate(Path::new("test")).unwrap();
        c
    }

    fn agent(&self, mode: &str) -> AgentClient {
        let config: AgentConfig = serde_json::from_value(json!({
            "command": [STANDIN, "--ideas", self.ideas, "--mode", mode], "timeout_s": 30
        }))
        .unwrap();
        AgentClient::new(config, &self.wd)
    }
}

fn apply_prompt(id: &str, changes: &str, protected: &[String]) -> String {
    let ctx = ApplyContext {
        node_id: id.into(),
        name: id.into(),
        parent: None,
        hypothesis: "h".into(),
        params: Default::default(),
        changes: changes.into(),
        protected: protected.to_vec(),
    };
    render_apply_prompt(&ctx, &Templates::builtin().apply).unwrap()
}

#[tokio::test]
async fn concurrent_worktrees_each_see_only_their_own_committed_change() {
    let r = repo();
    let ws = Workspace::open(&r.wd, &r.config(&["bench.py"], &[]))
        .await
        .unwrap();
    // Many concurrent adds (two Workspace values too): no lock race.
    let ws2 = Workspace::open(&r.wd, &r.config(&["bench.py"], &[]))
        .await
        .unwrap();
    let ids: Vec<String> = (0..6).map(|i| format!("00{i}_n")).collect();
    let futs = ids.iter().enumerate().map(|(i, id)| {
        let (w, c) = if i % 2 == 0 {
            (&ws, &r.c1)
        } else {
            (&ws2, &r.c2)
        };
        w.ensure_worktree(id, c, true)
    });
    let paths = futures_join_all(futs).await;
    for (i, p) in paths.iter().enumerate() {
        let p = p.as_ref().unwrap_or_else(|e| panic!("worktree {i}: {e}"));
        let head = git(p, &["rev-parse", "HEAD"]);
        assert_eq!(head, if i % 2 == 0 { &r.c1 } else { &r.c2 }.as_str());
    }
    // Two applies at once, at different commits.
    let agent = r.agent("ideas");
    let (wa, wb) = (ws.worktree_path("000_n"), ws.worktree_path("001_n"));
    let pa = apply_prompt("000_n", "Set MODE to fast.", &[]);
    let pb = apply_prompt("001_n", "Add a helper file and import it.", &[]);
    let (a, b) = tokio::join!(
        agent.apply("000_n", &pa, &wa),
        agent.apply("001_n", &pb, &wb)
    );
    a.result.unwrap();
    b.result.unwrap();
    let info = |h: &str| CommitInfo {
        name: "x".into(),
        hypothesis: h.into(),
        changes: "c".into(),
    };
    let (ia, ib) = (info("fast is faster"), info("helper"));
    let (ca, cb) = tokio::join!(
        ws.commit_apply("000_n", &r.c1, &ia),
        ws.commit_apply("001_n", &r.c2, &ib)
    );
    let (ca, cb) = (ca.unwrap(), cb.unwrap());
    assert_eq!(ca.changed, ["main.py"]);
    assert!(ca.violations.is_empty());
    assert_eq!(
        (ca.parent.as_str(), cb.parent.as_str()),
        (r.c1.as_str(), r.c2.as_str())
    );
    let main_a = std::fs::read_to_string(wa.join("main.py")).unwrap();
    let main_b = std::fs::read_to_string(wb.join("main.py")).unwrap();
    assert_eq!(main_a, "N = 10\nMODE = 'fast'\n");
    assert_eq!(main_b, "import helper\nN = 20\nMODE = 'slow'\n");
    // The user's own checkout is untouched.
    assert_eq!(
        std::fs::read_to_string(r.repo.join("main.py")).unwrap(),
        "N = 20\nMODE = 'slow'\n"
    );
    // Refs and trailers, with the engine's identity.
    assert_eq!(
        ws.node_commit("000_n").await.unwrap().as_deref(),
        Some(ca.commit.as_str())
    );
    let r_ref = git(
        &r.repo,
        &[
            "rev-parse",
            &format!("refs/autoresearch/{}/001_n", ws.run_id()),
        ],
    );
    assert_eq!(r_ref, cb.commit);
    let trailers = git(
        &r.repo,
        &["log", "-1", "--format=%(trailers)%an <%ae>", &ca.commit],
    );
    assert!(trailers.contains("Autoresearch-Node: 000_n"), "{trailers}");
    assert!(
        trailers.contains("Autoresearch-Hypothesis: fast is faster"),
        "{trailers}"
    );
    assert!(
        trailers.contains("autoresearch <autoresearch@localhost>"),
        "{trailers}"
    );
    // Diffs for views; removal keeps the ref.
    let diff = ws.diff(&ca.parent, &ca.commit).await.unwrap();
    assert!(
        diff.contains("-MODE = 'slow'") && diff.contains("+MODE = 'fast'"),
        "{diff}"
    );
    ws.remove_worktree("000_n").await.unwrap();
    assert!(!wa.exists());
    assert_eq!(
        ws.node_commit("000_n").await.unwrap().as_deref(),
        Some(ca.commit.as_str())
    );
    let listed = ws.list_worktrees().await.unwrap();
    assert!(!listed.iter().any(|e| e.path.ends_with("000_n")));
}

/// Polls all futures concurrently on this task and returns their outputs in order.
async fn futures_join_all<F: std::future::Future>(futs: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut pending: Vec<_> = futs.map(|f| Some(Box::pin(f))).collect();
    let mut results: Vec<Option<F::Output>> = pending.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        for (slot, result) in pending.iter_mut().zip(results.iter_mut()) {
            if let Some(f) = slot
                && let std::task::Poll::Ready(v) = f.as_mut().poll(cx)
            {
                *result = Some(v);
                *slot = None;
            }
        }
        if pending.iter().all(Option::is_none) {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    results.into_iter().map(Option::unwrap).collect()
}

#[tokio::test]
async fn a_change_to_a_protected_path_is_committed_and_reported() {
    let r = repo();
    let ws = Workspace::open(&r.wd, &r.config(&["bench.py"], &[]))
        .await
        .unwrap();
    let ApplyState::Ready(wt) = ws.prepare_apply("003_p", &r.c2).await.unwrap() else {
        panic!("expected a fresh worktree");
    };
    let prompt = apply_prompt("003_p", "Set MODE to fast.", &["bench.py".into()]);
    r.agent("protected")
        .apply("003_p", &prompt, &wt)
        .await
        .result
        .unwrap();
    let info = CommitInfo {
        name: "p".into(),
        hypothesis: "h".into(),
        changes: "c".into(),
    };
    let change = ws.commit_apply("003_p", &r.c2, &info).await.unwrap();
    assert_eq!(change.changed, ["bench.py", "main.py"]);
    assert_eq!(change.violations, ["bench.py"]);
    assert_eq!(
        ws.node_commit("003_p").await.unwrap(),
        Some(change.commit.clone()),
        "the diff is kept"
    );
}

#[tokio::test]
async fn half_created_and_leftover_worktrees_are_cleaned_and_recreated() {
    let r = repo();
    let ws = Workspace::open(&r.wd, &r.config(&[], &[])).await.unwrap();
    let wt = ws.ensure_worktree("004_h", &r.c1, true).await.unwrap();
    // Simulate a SIGKILL during `git worktree add`: the entry is locked "initializing" and the
    // checkout is incomplete.
    let admin = r.repo.join(".git/worktrees/004_h");
    std::fs::write(admin.join("locked"), "initializing").unwrap();
    std::fs::remove_file(wt.join("main.py")).unwrap();
    let listed = ws.list_worktrees().await.unwrap();
    assert!(listed.iter().any(|e| e.locked.is_some()), "{listed:?}");
    let again = ws.ensure_worktree("004_h", &r.c1, true).await.unwrap();
    assert_eq!(again, wt);
    assert!(wt.join("main.py").is_file(), "recreated with its files");
    let listed = ws.list_worktrees().await.unwrap();
    assert!(listed.iter().all(|e| e.locked.is_none()), "{listed:?}");
    // A half entry without a gitdir yet, plus a folder git does not know.
    let half = r.repo.join(".git/worktrees/005_x");
    std::fs::create_dir_all(&half).unwrap();
    std::fs::write(half.join("locked"), "initializing").unwrap();
    let leftover = ws.worktree_path("005_x");
    std::fs::create_dir_all(&leftover).unwrap();
    std::fs::write(leftover.join("junk"), "x").unwrap();
    let wt5 = ws.ensure_worktree("005_x", &r.c2, true).await.unwrap();
    assert!(!wt5.join("junk").exists());
    assert_eq!(git(&wt5, &["rev-parse", "HEAD"]), r.c2);
    assert!(!half.exists() || !half.join("locked").exists());
    // A worktree at another commit is replaced.
    let wt6 = ws.ensure_worktree("004_h", &r.c2, true).await.unwrap();
    assert_eq!(git(&wt6, &["rev-parse", "HEAD"]), r.c2);
}

#[tokio::test]
async fn apply_is_idempotent_uncommitted_redone_committed_reused() {
    let r = repo();
    let ws = Workspace::open(&r.wd, &r.config(&[], &[])).await.unwrap();
    let ApplyState::Ready(wt) = ws.prepare_apply("006_i", &r.c1).await.unwrap() else {
        panic!()
    };
    // An apply interrupted before its commit: half-edited and an untracked file.
    std::fs::write(wt.join("main.py"), "broken").unwrap();
    std::fs::write(wt.join("new.txt"), "x").unwrap();
    let ApplyState::Ready(wt2) = ws.prepare_apply("006_i", &r.c1).await.unwrap() else {
        panic!()
    };
    assert_eq!(wt2, wt);
    assert_eq!(
        std::fs::read_to_string(wt.join("main.py")).unwrap(),
        "N = 10\nMODE = 'slow'\n"
    );
    assert!(!wt.join("new.txt").exists());
    std::fs::write(wt.join("main.py"), "N = 11\nMODE = 'slow'\n").unwrap();
    let info = CommitInfo {
        name: "i".into(),
        hypothesis: "h".into(),
        changes: "c".into(),
    };
    let done = ws.commit_apply("006_i", &r.c1, &info).await.unwrap();
    match ws.prepare_apply("006_i", &r.c1).await.unwrap() {
        ApplyState::Committed(c) => assert_eq!(c, done),
        other => panic!("expected the committed change, got {other:?}"),
    }
    // A crash between the commit and the ref: the worktree's HEAD is adopted.
    git(&r.repo, &["update-ref", "-d", &ws.ref_name("006_i")]);
    match ws.prepare_apply("006_i", &r.c1).await.unwrap() {
        ApplyState::Committed(c) => assert_eq!(c.commit, done.commit),
        other => panic!("expected the adopted commit, got {other:?}"),
    }
    assert_eq!(ws.node_commit("006_i").await.unwrap(), Some(done.commit));
}

#[tokio::test]
async fn include_links_folders_copies_files_and_never_commits_them() {
    let r = repo();
    std::fs::create_dir_all(r.repo.join("data")).unwrap();
    std::fs::write(r.repo.join("data/x.bin"), "data").unwrap();
    std::fs::write(r.repo.join(".env"), "KEY=1").unwrap();
    let ws = Workspace::open(&r.wd, &r.config(&[], &["data", ".e*"]))
        .await
        .unwrap();
    let wt = ws.ensure_worktree("007_d", &r.c2, true).await.unwrap();
    assert!(
        std::fs::symlink_metadata(wt.join("data"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(
        std::fs::read_to_string(wt.join("data/x.bin")).unwrap(),
        "data"
    );
    assert!(
        std::fs::symlink_metadata(wt.join(".env"))
            .unwrap()
            .is_file()
    );
    assert!(ws.changed_paths("007_d").await.unwrap().is_empty());
    std::fs::write(wt.join("main.py"), "changed").unwrap();
    assert_eq!(ws.changed_paths("007_d").await.unwrap(), ["main.py"]);
    // A reset puts them back.
    ws.reset_clean("007_d").await.unwrap();
    assert!(wt.join("data/x.bin").is_file() && wt.join(".env").is_file());
}

#[tokio::test]
async fn bad_ids_and_revisions_are_refused() {
    let r = repo();
    let ws = Workspace::open(&r.wd, &r.config(&[], &[])).await.unwrap();
    for id in ["..", ".hidden", "a.lock", "a/b"] {
        assert!(ws.ensure_worktree(id, &r.c1, true).await.is_err(), "{id}");
    }
    let e = ws
        .ensure_worktree("008_r", "no-such-branch", true)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("does not name a commit"), "{e}");
    let not_repo: WorkspaceConfig = serde_json::from_value(json!({"repo": r.wd})).unwrap();
    let e = Workspace::open(&r.wd, &not_repo).await.unwrap_err();
    assert!(e.to_string().contains("not a git repository"), "{e}");
}

/// The agent-demo example's ideas apply to its program through the real path (stand-in apply
/// in a worktree, engine commit) and its evaluator accepts all but the broken one.
#[tokio::test]
async fn agent_demo_ideas_apply_and_only_the_broken_one_fails_the_evaluator() {
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/agent-demo");
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let wd = tmp.path().join("wd");
    std::fs::create_dir_all(&wd).unwrap();
    let made = Command::new("bash")
        .arg(demo.join("make-repo.sh"))
        .arg(&repo)
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let base = String::from_utf8_lossy(&made.stdout).trim().to_string();
    let config: WorkspaceConfig =
        serde_json::from_value(json!({"repo": repo, "protected": ["run_bench.sh"]})).unwrap();
    let ws = Workspace::open(&wd, &config).await.unwrap();
    let ideas = demo.join("ideas.json");
    let agent_config: AgentConfig = serde_json::from_value(json!({
        "command": [STANDIN, "--ideas", ideas], "timeout_s": 30
    }))
    .unwrap();
    let agent = AgentClient::new(agent_config, &wd);
    let list: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(&ideas).unwrap()).unwrap();
    for (i, idea) in list.iter().enumerate() {
        let name = idea["name"].as_str().unwrap();
        let id = format!("{:03}_{name}", i + 1);
        let ApplyState::Ready(wt) = ws.prepare_apply(&id, &base).await.unwrap() else {
            panic!()
        };
        let prompt = apply_prompt(
            &id,
            idea["changes"].as_str().unwrap(),
            &["run_bench.sh".into()],
        );
        agent.apply(&id, &prompt, &wt).await.result.unwrap();
        let info = CommitInfo {
            name: name.into(),
            hypothesis: "h".into(),
            changes: "c".into(),
        };
        let change = ws.commit_apply(&id, &base, &info).await.unwrap();
        assert_eq!(change.changed, ["slow.py"], "{name}");
        assert!(change.violations.is_empty());
        let run = Command::new("sh")
            .arg("run_bench.sh")
            .current_dir(&wt)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&run.stdout);
        if name == "typo_refactor" {
            assert!(!run.status.success(), "the broken idea must fail: {stdout}");
        } else {
            assert!(
                run.status.success(),
                "{name}: {}",
                String::from_utf8_lossy(&run.stderr)
            );
            assert!(stdout.contains("METRIC seconds="), "{name}: {stdout}");
        }
    }
}

/// `workspace::node_diff`, the one reader of a node's code for `show`, `report.md` and the
/// dashboard: the parent and baseline commits from `commit.json` and `workspace.base`, the diffs
/// between real commits, a cut at the limit on a line end, a parameter-only node without a diff,
/// and a run without a workspace.
#[tokio::test]
async fn node_diffs_come_from_commit_json_and_real_git() {
    use autoresearch_adapters::model::NodeCommit;
    use autoresearch_adapters::workspace::node_diff::NodeCode;
    let r = repo();
    // c3 on top of c2 changes main.py again.
    std::fs::write(r.repo.join("main.py"), "N = 30\nMODE = 'fast'\n").unwrap();
    git(&r.repo, &["commit", "-qam", "third"]);
    let c3 = git(&r.repo, &["rev-parse", "HEAD"]);
    let config = |ws: serde_json::Value| {
        std::fs::write(
            r.wd.join("config.json"),
            json!({
                "objective": {"metric": "score", "direction": "maximize"},
                "job": {"command": "python3 main.py"},
                "workspace": ws
            })
            .to_string(),
        )
        .unwrap()
    };
    let commit = |id: &str, commit: &str, parent: &str| {
        let dir = r.wd.join("engine/nodes").join(id);
        std::fs::create_dir_all(&dir).unwrap();
        let c = NodeCommit {
            commit: commit.into(),
            parent_commit: parent.into(),
            ref_name: format!("refs/autoresearch/run/{id}"),
            changed: vec!["main.py".into()],
            violations: vec![],
            created_at: "2026-12-01T10:00:00Z".into(),
        };
        std::fs::write(dir.join("commit.json"), serde_json::to_vec(&c).unwrap()).unwrap();
    };
    // No workspace: nothing to show, even with a commit.json.
    config(serde_json::Value::Null);
    commit("002_b", &c3, &r.c2);
    assert_eq!(NodeCode::load(&r.wd, "002_b").unwrap(), None);

    config(json!({"repo": r.repo, "base": r.c1}));
    let code = NodeCode::load(&r.wd, "002_b").unwrap().unwrap();
    assert_eq!(code.parent.as_deref(), Some(r.c2.as_str()));
    assert_eq!(code.baseline.as_deref(), Some(r.c1.as_str()));
    let parent = code.against_parent(1 << 20).await.unwrap().unwrap();
    assert!(
        parent
            .text
            .contains("-N = 20\n-MODE = 'slow'\n+N = 30\n+MODE = 'fast'"),
        "{}",
        parent.text
    );
    assert!(!parent.truncated);
    let base = code.against_baseline(1 << 20).await.unwrap().unwrap();
    assert!(base.text.contains("-N = 10"), "{}", base.text);
    assert!(base.text.contains("1 file changed"), "{}", base.text);
    // Cut at the limit, on a line end.
    let cut = code.against_baseline(40).await.unwrap().unwrap();
    assert!(
        cut.truncated && cut.text.len() <= 40 && cut.text.ends_with('\n'),
        "{cut:?}"
    );

    // A parameter-only node at the baseline's commit has no diff; no commit.json, no code.
    commit("001_a", &r.c1, &r.c1);
    let same = NodeCode::load(&r.wd, "001_a").unwrap().unwrap();
    assert!(!same.has_diff());
    assert_eq!(same.against_parent(1 << 20).await.unwrap(), None);
    assert_eq!(NodeCode::load(&r.wd, "003_c").unwrap(), None);
    // A commit.json that is not a commit id is an error naming the file, never a git argument.
    commit("004_d", "--output=/tmp/x", &r.c1);
    let err = NodeCode::load(&r.wd, "004_d").unwrap_err().to_string();
    assert!(
        err.contains("004_d/commit.json") && err.contains("full commit id"),
        "{err}"
    );
}
