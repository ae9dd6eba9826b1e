//! In-process engine tests: outcomes of failing and panicking specs, ordering and the
//! concurrency bound (property test), resume order, live hand edits and control commands.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use autoresearch_engine::checkpoint::{self, Checkpoint};
use autoresearch_engine::control::{self, ControlCommand};
use autoresearch_engine::{AsyncWorkEngine, EngineConfig, EngineStatus, RunReport, WorkSpec};
use common::{TestFlow, lines, sleeper, spec};
use proptest::prelude::*;
use serde_json::json;

fn config(dir: &Path, concurrency: usize) -> EngineConfig {
    let mut c = EngineConfig::new(dir);
    c.max_concurrency = concurrency;
    c.handle_signals = false;
    c
}

fn run_engine(dir: &Path, conc: usize, specs: Vec<WorkSpec>) -> (RunReport, Arc<TestFlow>) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let engine = AsyncWorkEngine::open(config(dir, conc), TestFlow::new(dir, specs))
            .expect("open engine");
        let flow = engine.workflow().clone();
        (engine.run().await.expect("run"), flow)
    })
}

#[test]
fn a_failing_and_a_panicking_spec_are_reported_and_the_rest_completes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut specs: Vec<WorkSpec> = (0..8).map(|i| sleeper(&format!("ok{i}"), 0.0, 5)).collect();
    specs.insert(2, spec("boom", 0.0, json!({"panic": true})));
    specs.insert(4, spec("bad", 0.0, json!({"fail": true})));
    let (report, flow) = run_engine(dir.path(), 3, specs);
    assert_eq!(report.status, EngineStatus::Stopped);
    assert_eq!(report.counts.completed, 8);
    assert_eq!(report.counts.failed, 2);
    let outcomes = flow.outcomes.lock().expect("lock").clone();
    let of = |id: &str| {
        outcomes
            .iter()
            .find(|(i, _)| i == id)
            .map(|(_, k)| k.clone())
            .expect("outcome recorded")
    };
    assert_eq!(of("boom"), "panicked");
    assert_eq!(of("bad"), "failed");
    assert_eq!(of("ok7"), "completed");
    let events = std::fs::read_to_string(dir.path().join("engine/events.jsonl")).expect("events");
    assert!(events.contains("\"panicked: boom in boom\""), "{events}");
    assert!(events.contains("bad failed on purpose"));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, .. ProptestConfig::default() })]

    #[test]
    fn order_and_concurrency_bound_hold(
        prios in proptest::collection::vec(-3i32..3, 1..25),
        conc in 1usize..5,
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let specs: Vec<WorkSpec> = prios
            .iter()
            .enumerate()
            .map(|(i, p)| sleeper(&format!("s{i:02}"), *p as f64, 2))
            .collect();
        let (report, flow) = run_engine(dir.path(), conc, specs);
        prop_assert_eq!(report.counts.completed as usize, prios.len());
        prop_assert!(flow.max_in_flight.load(std::sync::atomic::Ordering::SeqCst) <= conc);
        let mut expected: Vec<(i32, usize)> = prios.iter().copied().zip(0..).collect();
        expected.sort();
        let want: Vec<String> = expected.iter().map(|(_, i)| format!("s{i:02}")).collect();
        // Start order is exactly priority order, insertion order on ties.
        let events = std::fs::read_to_string(dir.path().join("engine/events.jsonl")).expect("events");
        let starts: Vec<String> = events
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|e| e["event"] == "node_started")
            .filter_map(|e| e["id"].as_str().map(str::to_string))
            .collect();
        prop_assert_eq!(starts, want);
    }
}

#[test]
fn resume_starts_running_specs_first_and_marks_them_resumed() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("engine")).expect("mkdir");
    let cp = Checkpoint {
        schema_version: 1,
        status: EngineStatus::Interrupted,
        updated_at: "2026-11-23T18:00:00Z".into(),
        queued: vec![sleeper("urgent", -100.0, 1), sleeper("later", 5.0, 1)],
        running: vec![sleeper("was_running", 50.0, 1)],
        extra: [("note".to_string(), json!("kept"))].into_iter().collect(),
        warnings: vec![],
    };
    checkpoint::save(&dir.path().join("engine/checkpoint.json"), &cp).expect("save");
    let (report, flow) = run_engine(dir.path(), 1, vec![]);
    assert_eq!(report.counts.completed, 3);
    let starts = flow.starts.lock().expect("lock").clone();
    assert_eq!(
        starts,
        vec![
            ("was_running".to_string(), true),
            ("urgent".to_string(), false),
            ("later".to_string(), false)
        ]
    );
    let text = std::fs::read_to_string(dir.path().join("engine/checkpoint.json")).expect("read");
    assert!(
        text.contains("\"note\": \"kept\""),
        "unknown top-level keys are kept: {text}"
    );
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Starts an engine on a thread; returns its join handle and the cancellation token.
fn spawn_engine(
    dir: &Path,
    specs: Vec<WorkSpec>,
) -> (
    std::thread::JoinHandle<RunReport>,
    autoresearch_engine::CancellationToken,
) {
    let engine = AsyncWorkEngine::open(config(dir, 1), TestFlow::new(dir, specs)).expect("open");
    let token = engine.cancellation_token();
    let handle = std::thread::spawn(move || {
        tokio::runtime::Runtime::new()
            .expect("runtime")
            .block_on(engine.run())
            .expect("run")
    });
    (handle, token)
}

#[test]
fn a_live_hand_edit_is_applied_and_an_invalid_one_set_aside() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let specs: Vec<WorkSpec> = (0..5)
        .map(|i| sleeper(&format!("s{i}"), i as f64, 400))
        .collect();
    let (handle, token) = spawn_engine(d, specs);
    wait_until("first start", || lines(d, "starts.log").len() == 1);
    let path = d.join("engine/checkpoint.json");
    // Valid edit: make s4 run next and drop s1.
    let mut cp = checkpoint::load(&path).expect("valid").expect("exists");
    cp.queued.retain(|s| s.id != "s1");
    for s in &mut cp.queued {
        if s.id == "s4" {
            s.priority = -10.0;
        }
    }
    checkpoint::save(&path, &cp).expect("edit");
    wait_until("second start", || lines(d, "starts.log").len() >= 2);
    assert_eq!(
        lines(d, "starts.log")[1],
        "s4",
        "the edit changed what runs next"
    );
    // Invalid edit: it is set aside, never silently overwritten, and the engine goes on.
    std::fs::write(
        &path,
        b"{ \"schema_version\": 1, \"status\": \"running\", \"queued\": [ {\"id\": \"x y\"} ] }",
    )
    .expect("write invalid");
    wait_until("rejected file", || {
        std::fs::read_dir(d.join("engine"))
            .expect("dir")
            .filter_map(Result::ok)
            .any(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with("checkpoint.rejected-")
            })
    });
    wait_until("checkpoint rewritten", || {
        checkpoint::load(&path)
            .map(|c| c.is_some())
            .unwrap_or(false)
    });
    token.cancel();
    let report = handle.join().expect("engine thread");
    assert_eq!(report.status, EngineStatus::Interrupted);
    let starts = lines(d, "starts.log");
    assert!(
        !starts.contains(&"s1".to_string()),
        "dropped by the edit: {starts:?}"
    );
    let events = std::fs::read_to_string(d.join("engine/events.jsonl")).expect("events");
    assert!(events.contains("\"result\":\"applied\""));
    assert!(events.contains("\"result\":\"rejected\""));
    let rejected = std::fs::read_dir(d.join("engine"))
        .expect("dir")
        .filter_map(Result::ok)
        .find(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("checkpoint.rejected-")
        })
        .expect("rejected file");
    let bytes = std::fs::read(rejected.path()).expect("read");
    assert!(
        bytes.starts_with(b"{ \"schema_version\": 1"),
        "set aside byte for byte"
    );
}

#[test]
fn live_control_commands_bump_drop_and_add() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let specs: Vec<WorkSpec> = (0..4)
        .map(|i| sleeper(&format!("s{i}"), i as f64, 300))
        .collect();
    let (handle, token) = spawn_engine(d, specs);
    wait_until("first start", || lines(d, "starts.log").len() == 1);
    let t1 = control::submit(
        d,
        &ControlCommand::Bump {
            id: "s3".into(),
            priority: -5.0,
        },
    )
    .expect("submit");
    let t2 = control::submit(d, &ControlCommand::Drop { id: "s1".into() }).expect("submit");
    let t3 = control::submit(
        d,
        &ControlCommand::Add {
            spec: sleeper("new", -1.0, 10),
        },
    )
    .expect("submit");
    let t4 = control::submit(d, &ControlCommand::Drop { id: "nope".into() }).expect("submit");
    let wait = |t: &str| {
        control::wait_result(d, t, Duration::from_secs(10))
            .expect("read result")
            .expect("answered")
    };
    assert!(wait(&t1).ok);
    assert!(wait(&t2).ok);
    assert!(wait(&t3).ok);
    let r4 = wait(&t4);
    assert!(!r4.ok && r4.message.contains("not in the queue"), "{r4:?}");
    let report = handle.join().expect("engine thread");
    let _ = token;
    assert_eq!(report.status, EngineStatus::Stopped);
    assert_eq!(lines(d, "starts.log"), vec!["s0", "s3", "new", "s2"]);
}

#[test]
fn offline_edit_rewrites_a_valid_checkpoint_and_refuses_unknown_ids() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    std::fs::create_dir_all(d.join("engine")).expect("mkdir");
    let path = d.join("engine/checkpoint.json");
    let cp = Checkpoint {
        schema_version: 1,
        status: EngineStatus::Interrupted,
        updated_at: String::new(),
        queued: vec![
            sleeper("a", 1.0, 1),
            sleeper("b", 2.0, 1),
            sleeper("c", 3.0, 1),
        ],
        running: vec![],
        extra: Default::default(),
        warnings: vec![],
    };
    checkpoint::save(&path, &cp).expect("save");
    let msgs = checkpoint::edit_offline(
        d,
        &[
            ControlCommand::Drop { id: "b".into() },
            ControlCommand::Bump {
                id: "c".into(),
                priority: 0.0,
            },
        ],
    )
    .expect("edit");
    assert_eq!(msgs.len(), 2);
    let after = checkpoint::load(&path).expect("valid").expect("exists");
    let ids: Vec<&str> = after.queued.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, vec!["c", "a"]);
    let before = std::fs::read(&path).expect("read");
    let err = checkpoint::edit_offline(d, &[ControlCommand::Drop { id: "zzz".into() }])
        .expect_err("unknown id");
    assert!(err.to_string().contains("zzz"));
    assert_eq!(
        std::fs::read(&path).expect("read"),
        before,
        "unchanged on error"
    );
}
