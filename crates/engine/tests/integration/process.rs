//! Engine tests with real child processes and real signals: interrupt then resume, a second
//! signal shortening the grace period, two engines on one workdir, and SIGKILL at random moments.
//!
//! The child is the `engine-test-child` binary (`tests/integration/support/child.rs`).

use std::time::{Duration, Instant};

use crate::support::{TestFlow, lines, signal, spawn_child, wait_exit, wait_until};
use autoresearch_engine::checkpoint;
use autoresearch_engine::{AsyncWorkEngine, EngineConfig, EngineError, EngineStatus, Event};

const SIGINT: i32 = libc::SIGINT;
const SIGKILL: i32 = libc::SIGKILL;

fn ids(specs: &[autoresearch_engine::WorkSpec]) -> Vec<String> {
    specs.iter().map(|s| s.id.clone()).collect()
}

#[test]
fn interrupt_then_resume_restarts_running_first_and_loses_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    // Specs wait for the file `open`: nothing can finish before the interrupt.
    let env = [
        ("ENGINE_CHILD_SPECS", "6"),
        ("ENGINE_CHILD_MS", "1"),
        ("ENGINE_CHILD_GATE", "1"),
    ];
    let mut child = spawn_child(d, &env);
    wait_until("two starts", || lines(d, "starts.log").len() >= 2);
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
    let state = autoresearch_engine::state::read_state(d)
        .expect("state readable")
        .expect("state exists");
    assert_eq!(state.status, EngineStatus::Interrupted);

    std::fs::write(d.join("open"), b"").expect("open the gate");
    let mut child = spawn_child(d, &env);
    assert_eq!(wait_exit(&mut child, Duration::from_secs(60)), 0);
    // The engine's dispatch order (the tasks' own log lines may interleave).
    let events = crate::support::events(d);
    let second_run: Vec<(String, bool)> = events
        .iter()
        .skip_while(|e| !matches!(e.event, Event::EngineInterrupted { .. }))
        .filter_map(|e| match &e.event {
            Event::SpecStarted { id, resumed } => Some((id.clone(), *resumed)),
            _ => None,
        })
        .collect();
    assert_eq!(
        second_run[..2],
        [("s000".to_string(), true), ("s001".to_string(), true)],
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
    let events = crate::support::events(d);
    let count = |f: fn(&Event) -> bool| events.iter().filter(|e| f(&e.event)).count();
    assert_eq!(count(|e| matches!(e, Event::EngineInterrupted { .. })), 1);
    assert_eq!(count(|e| matches!(e, Event::EngineStopped { .. })), 1);
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
    wait_until("two starts", || lines(d, "starts.log").len() >= 2);
    signal(&child, SIGINT);
    // Both running specs saw the first interrupt: the engine handled it (no time window).
    wait_until("the first interrupt handled", || {
        lines(d, "cancelled.log").len() >= 2
    });
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
    wait_until("first start", || !lines(d, "starts.log").is_empty());
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
