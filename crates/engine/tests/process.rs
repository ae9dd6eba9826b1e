//! Engine tests with real child processes and real signals: interrupt then resume, a second
//! signal shortening the grace period, two engines on one workdir, and SIGKILL at random moments.
//!
//! The child is this test binary re-executed with `ENGINE_CHILD_WORKDIR` set: the `child_engine`
//! "test" then runs an engine instead of returning.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use autoresearch_engine::checkpoint;
use autoresearch_engine::{AsyncWorkEngine, EngineConfig, EngineError, EngineStatus};
use common::{TestFlow, lines, spec};
use serde_json::json;

/// Not a test on its own: the body of the child process.
#[test]
fn child_engine() {
    let Ok(dir) = std::env::var("ENGINE_CHILD_WORKDIR") else {
        return;
    };
    let dir = Path::new(&dir);
    let n: usize = env_num("ENGINE_CHILD_SPECS", 6) as usize;
    let ms = env_num("ENGINE_CHILD_MS", 300);
    let children = env_num("ENGINE_CHILD_CHILDREN", 0);
    let stubborn = std::env::var("ENGINE_CHILD_STUBBORN").is_ok();
    let initial = (0..n)
        .map(|i| {
            spec(
                &format!("s{i:03}"),
                i as f64,
                json!({ "ms": ms, "stubborn": stubborn, "children": children, "depth": 2 }),
            )
        })
        .collect();
    let mut config = EngineConfig::new(dir);
    config.max_concurrency = env_num("ENGINE_CHILD_CONC", 2) as usize;
    config.grace_period = Duration::from_millis(env_num("ENGINE_CHILD_GRACE_MS", 5000));
    config.short_grace_period = Duration::from_millis(300);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let code = rt.block_on(async {
        match AsyncWorkEngine::open(config, TestFlow::new(dir, initial)) {
            Ok(engine) => match engine.run().await {
                Ok(r) if r.status == EngineStatus::Interrupted => 130,
                Ok(_) => 0,
                Err(e) => {
                    eprintln!("{e}");
                    1
                }
            },
            Err(EngineError::Locked { .. }) => 3,
            Err(e) => {
                eprintln!("{e}");
                2
            }
        }
    });
    std::process::exit(code);
}

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn spawn_child(dir: &Path, env: &[(&str, &str)]) -> Child {
    let exe = std::env::current_exe().expect("test binary path");
    let mut cmd = Command::new(exe);
    cmd.args(["--exact", "child_engine", "--nocapture", "--test-threads=1"])
        .env("ENGINE_CHILD_WORKDIR", dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().expect("spawn child engine")
}

fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn wait_exit(child: &mut Child, timeout: Duration) -> i32 {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status.code().unwrap_or(-1);
        }
        assert!(Instant::now() < deadline, "child did not exit in time");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: plain kill(2) on our own child's pid.
    unsafe {
        libc_kill(child.id() as i32, sig);
    }
}

unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}
const SIGINT: i32 = 2;
const SIGKILL: i32 = 9;

fn ids(specs: &[autoresearch_engine::WorkSpec]) -> Vec<String> {
    specs.iter().map(|s| s.id.clone()).collect()
}

#[test]
fn interrupt_then_resume_restarts_running_first_and_loses_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let env = [("ENGINE_CHILD_SPECS", "6"), ("ENGINE_CHILD_MS", "800")];
    let mut child = spawn_child(d, &env);
    wait_for("two starts", Duration::from_secs(20), || {
        lines(d, "starts.log").len() >= 2
    });
    signal(&child, SIGINT);
    assert_eq!(wait_exit(&mut child, Duration::from_secs(20)), 130);

    let cp = checkpoint::load(&d.join("engine/checkpoint.json"))
        .expect("valid checkpoint")
        .expect("checkpoint exists");
    assert_eq!(cp.status, EngineStatus::Interrupted);
    assert_eq!(ids(&cp.running), vec!["s000", "s001"]);
    assert_eq!(ids(&cp.queued), vec!["s002", "s003", "s004", "s005"]);
    assert!(
        lines(d, "done.log").is_empty(),
        "nothing finished before the interrupt"
    );
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("engine/engine_state.json")).expect("state"))
            .expect("state json");
    assert_eq!(state["status"], "interrupted");

    let mut child = spawn_child(d, &env);
    assert_eq!(wait_exit(&mut child, Duration::from_secs(60)), 0);
    // The engine's dispatch order (the tasks' own log lines may interleave).
    let events = std::fs::read_to_string(d.join("engine/events.jsonl")).expect("events");
    let second_run: Vec<serde_json::Value> = events
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .skip_while(|e: &serde_json::Value| e["event"] != "engine_interrupted")
        .filter(|e| e["event"] == "node_started")
        .collect();
    let first_two: Vec<(&str, bool)> = second_run[..2]
        .iter()
        .map(|e| (e["id"].as_str().unwrap_or(""), e["resumed"] == true))
        .collect();
    assert_eq!(
        first_two,
        vec![("s000", true), ("s001", true)],
        "running specs restart first"
    );
    let mut restarted = lines(d, "starts.log")[2..4].to_vec();
    restarted.sort();
    assert_eq!(restarted, ["s000", "s001"]);
    let mut done = lines(d, "done.log");
    done.sort();
    assert_eq!(done, vec!["s000", "s001", "s002", "s003", "s004", "s005"]);
    let cp = checkpoint::load(&d.join("engine/checkpoint.json"))
        .expect("valid")
        .expect("exists");
    assert_eq!(cp.status, EngineStatus::Stopped);
    assert!(cp.queued.is_empty() && cp.running.is_empty());
    let events = std::fs::read_to_string(d.join("engine/events.jsonl")).expect("events");
    assert_eq!(events.matches("\"engine_interrupted\"").count(), 1);
    assert_eq!(events.matches("\"engine_stopped\"").count(), 1);
}

#[test]
fn second_signal_shortens_grace_but_keeps_final_checkpoint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let env = [
        ("ENGINE_CHILD_SPECS", "3"),
        ("ENGINE_CHILD_MS", "60000"),
        ("ENGINE_CHILD_STUBBORN", "1"),
        ("ENGINE_CHILD_GRACE_MS", "60000"),
    ];
    let mut child = spawn_child(d, &env);
    wait_for("two starts", Duration::from_secs(20), || {
        lines(d, "starts.log").len() >= 2
    });
    signal(&child, SIGINT);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        child.try_wait().expect("try_wait").is_none(),
        "still in its 60 s grace"
    );
    let t = Instant::now();
    signal(&child, SIGINT);
    assert_eq!(wait_exit(&mut child, Duration::from_secs(20)), 130);
    assert!(
        t.elapsed() < Duration::from_secs(15),
        "second signal shortened the grace"
    );
    let cp = checkpoint::load(&d.join("engine/checkpoint.json"))
        .expect("valid")
        .expect("exists");
    assert_eq!(cp.status, EngineStatus::Interrupted);
    assert_eq!(
        ids(&cp.running),
        vec!["s000", "s001"],
        "aborted specs kept as running"
    );
    assert_eq!(ids(&cp.queued), vec!["s002"]);
}

#[test]
fn second_engine_on_same_workdir_is_refused_with_holder_pid() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let mut child = spawn_child(
        d,
        &[("ENGINE_CHILD_SPECS", "2"), ("ENGINE_CHILD_MS", "30000")],
    );
    wait_for("first start", Duration::from_secs(20), || {
        !lines(d, "starts.log").is_empty()
    });
    let err = AsyncWorkEngine::open(EngineConfig::new(d), TestFlow::new(d, vec![]))
        .err()
        .expect("second engine must be refused");
    match &err {
        EngineError::Locked { pid, .. } => assert_eq!(*pid, Some(child.id())),
        other => panic!("expected Locked, got {other}"),
    }
    assert!(err.to_string().contains(&child.id().to_string()));
    assert_eq!(
        autoresearch_engine::lock::holder(d).expect("holder"),
        Some(child.id())
    );
    // A second child process gets exit status 3 too.
    let mut second = spawn_child(d, &[]);
    assert_eq!(wait_exit(&mut second, Duration::from_secs(20)), 3);
    signal(&child, SIGKILL);
    wait_exit(&mut child, Duration::from_secs(20));
    assert_eq!(autoresearch_engine::lock::holder(d).expect("holder"), None);
}

#[test]
fn sigkill_at_random_moments_always_leaves_a_loadable_checkpoint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    // 40 roots, each with 3 children per level for 2 levels: 40 * (1 + 3 + 9) = 520 specs.
    let env = [
        ("ENGINE_CHILD_SPECS", "40"),
        ("ENGINE_CHILD_MS", "3"),
        ("ENGINE_CHILD_CHILDREN", "3"),
        ("ENGINE_CHILD_CONC", "4"),
    ];
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    for round in 0..25 {
        let mut child = spawn_child(d, &env);
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let delay = 20 + rng % 250;
        std::thread::sleep(Duration::from_millis(delay));
        signal(&child, SIGKILL);
        wait_exit(&mut child, Duration::from_secs(20));
        let path = d.join("engine/checkpoint.json");
        match checkpoint::load(&path) {
            Ok(_) => {}
            Err(e) => panic!("round {round}: checkpoint does not load after SIGKILL: {e}"),
        }
    }
    // Finish the run: every spec of the tree completed at least once, none is lost.
    let mut child = spawn_child(d, &env);
    assert_eq!(wait_exit(&mut child, Duration::from_secs(120)), 0);
    let mut done = lines(d, "done.log");
    done.sort();
    done.dedup();
    assert_eq!(done.len(), 520, "all 520 specs completed");
    let cp = checkpoint::load(&d.join("engine/checkpoint.json"))
        .expect("valid")
        .expect("exists");
    assert_eq!(cp.status, EngineStatus::Stopped);
}
