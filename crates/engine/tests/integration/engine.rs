//! In-process engine tests: outcomes of failing and panicking specs, ordering and the
//! concurrency bound (property test), resume order, live hand edits and control commands.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::support::{
    TestFlow, config, events, gated, lines, sleeper, spawn_engine, spec, wait_until,
};
use autoresearch_engine::checkpoint::{self, Checkpoint};
use autoresearch_engine::control::{self, ControlCommand};
use autoresearch_engine::events::EditResult;
use autoresearch_engine::{AsyncWorkEngine, EngineStatus, Event, RunReport, WorkSpec};
use proptest::prelude::*;
use serde_json::json;

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
    let failures: Vec<(String, String, bool)> = events(dir.path())
        .into_iter()
        .filter_map(|e| match e.event {
            Event::SpecFailed { id, error, panic } => Some((id, error, panic)),
            _ => None,
        })
        .collect();
    assert!(
        failures.contains(&("boom".into(), "panicked: boom in boom".into(), true)),
        "{failures:?}"
    );
    assert!(
        failures.contains(&("bad".into(), "bad failed on purpose".into(), false)),
        "{failures:?}"
    );
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
        let starts: Vec<String> = events(dir.path())
            .into_iter()
            .filter_map(|e| match e.event {
                Event::SpecStarted { id, .. } => Some(id),
                _ => None,
            })
            .collect();
        prop_assert_eq!(starts, want);
    }
}

#[test]
fn specs_handed_over_while_a_spec_runs_start_before_it_returns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let leader = spec("leader", 0.0, json!({ "gate": true, "hand": 2 }));
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (report, flow) = rt.block_on(async {
        let engine = AsyncWorkEngine::open(
            config(dir.path(), 3),
            TestFlow::new(dir.path(), vec![leader]),
        )
        .expect("open engine");
        let flow = engine.workflow().clone();
        let run = tokio::spawn(engine.run());
        // The handed specs run and finish while the leader is still held at its gate.
        let done = |id: &str| lines(dir.path(), "done.log").iter().any(|l| l == id);
        let mut waited = 0;
        while !(done("leader.h0") && done("leader.h1")) {
            assert!(
                waited < 500,
                "handed specs did not run while the leader ran"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
            waited += 1;
        }
        assert!(!done("leader"), "the leader is still running");
        flow.open_gate("leader");
        (run.await.expect("join").expect("run"), flow)
    });
    // The flow hands each spec twice: the copy of a queued or running id is skipped.
    assert_eq!(report.counts.completed, 3, "{:?}", flow.start_order());
    let queued: Vec<String> = events(dir.path())
        .into_iter()
        .filter_map(|e| match e.event {
            Event::SpecQueued { id, .. } => Some(id),
            _ => None,
        })
        .collect();
    assert_eq!(queued, ["leader", "leader.h0", "leader.h1"]);
}

#[test]
fn resume_starts_running_specs_first_and_marks_them_resumed() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("engine")).expect("mkdir");
    let cp = Checkpoint {
        schema_version: 1,
        revision: 3,
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
    let starts = flow.start_order();
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

/// Waits until the engine logged a `checkpoint_edit` event with this result; returns its message.
fn edit_seen(d: &Path, want: EditResult, nth: usize) -> String {
    let mut message = String::new();
    wait_until("the edit handled", || {
        let found: Vec<String> = events(d)
            .into_iter()
            .filter_map(|e| match e.event {
                Event::CheckpointEdit {
                    result, message, ..
                } if result == want => Some(message),
                _ => None,
            })
            .collect();
        match found.into_iter().nth(nth) {
            Some(m) => {
                message = m;
                true
            }
            None => false,
        }
    });
    message
}

fn rejected_file(d: &Path) -> Option<std::path::PathBuf> {
    std::fs::read_dir(d.join("engine"))
        .expect("dir")
        .filter_map(Result::ok)
        .find(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("checkpoint.rejected-")
        })
        .map(|e| e.path())
}

#[test]
fn a_live_hand_edit_is_applied_and_an_invalid_one_set_aside() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let specs: Vec<WorkSpec> = (0..5).map(|i| gated(&format!("s{i}"), i as f64)).collect();
    let engine = spawn_engine(d, specs);
    wait_until("first start", || lines(d, "starts.log").len() == 1);
    let path = d.join("engine/checkpoint.json");
    // Valid edit while s0 runs: make s4 run next and drop s1.
    let mut cp = checkpoint::load(&path).expect("valid").expect("exists");
    cp.queued.retain(|s| s.id != "s1");
    for s in &mut cp.queued {
        if s.id == "s4" {
            s.priority = -10.0;
        }
    }
    checkpoint::save(&path, &cp).expect("edit");
    let summary = edit_seen(d, EditResult::Applied, 0);
    assert!(
        summary.contains("1 changed, 0 added, 1 removed"),
        "{summary}"
    );
    engine.flow.open_gate("s0");
    engine.flow.open_gate("s4");
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
    edit_seen(d, EditResult::Rejected, 0);
    wait_until("checkpoint rewritten", || {
        checkpoint::load(&path)
            .map(|c| c.is_some())
            .unwrap_or(false)
    });
    engine.token.cancel();
    let report = engine.handle.join().expect("engine thread");
    assert_eq!(report.status, EngineStatus::Interrupted);
    let starts = lines(d, "starts.log");
    assert!(
        !starts.contains(&"s1".to_string()),
        "dropped by the edit: {starts:?}"
    );
    let bytes = std::fs::read(rejected_file(d).expect("rejected file")).expect("read");
    assert!(
        bytes.starts_with(b"{ \"schema_version\": 1"),
        "set aside byte for byte"
    );
}

#[test]
fn an_edit_of_a_copy_taken_before_a_drop_does_not_bring_the_spec_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let specs: Vec<WorkSpec> = (0..4).map(|i| gated(&format!("s{i}"), i as f64)).collect();
    let engine = spawn_engine(d, specs);
    wait_until("first start", || lines(d, "starts.log").len() == 1);
    let path = d.join("engine/checkpoint.json");
    // The user copies the file, then (elsewhere) s2 is dropped through the engine.
    let mut copy = checkpoint::load(&path).expect("valid").expect("exists");
    assert!(copy.queued.iter().any(|s| s.id == "s2"));
    let ticket = control::submit(d, &ControlCommand::Drop { id: "s2".into() }).expect("submit");
    let answer = control::wait_result(d, &ticket, Duration::from_secs(10))
        .expect("read")
        .expect("answered");
    assert!(answer.ok, "{answer:?}");
    // The user saves their copy with one change: s3 first.
    for s in &mut copy.queued {
        if s.id == "s3" {
            s.priority = -5.0;
        }
    }
    checkpoint::save(&path, &copy).expect("save the edited copy");
    let summary = edit_seen(d, EditResult::Applied, 0);
    assert!(
        summary.contains("1 changed, 0 added, 0 removed"),
        "{summary}"
    );
    assert!(
        summary.contains("1 started, finished or dropped since"),
        "{summary}"
    );
    // An edit of a revision the engine does not know is set aside.
    let mut stale = checkpoint::load(&path).expect("valid").expect("exists");
    stale.revision = 0;
    checkpoint::save(&path, &stale).expect("save");
    let why = edit_seen(d, EditResult::Rejected, 0);
    assert!(why.contains("edited from revision 0"), "{why}");
    engine.flow.open_gate("*");
    let report = engine.handle.join().expect("engine thread");
    assert_eq!(report.status, EngineStatus::Stopped);
    assert_eq!(lines(d, "starts.log"), vec!["s0", "s3", "s1"]);
}

#[test]
fn live_control_commands_bump_drop_and_add() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let specs: Vec<WorkSpec> = (0..4).map(|i| gated(&format!("s{i}"), i as f64)).collect();
    let engine = spawn_engine(d, specs);
    wait_until("first start", || lines(d, "starts.log").len() == 1);
    let submit = |cmd: ControlCommand| control::submit(d, &cmd).expect("submit");
    let t1 = submit(ControlCommand::Bump {
        id: "s3".into(),
        priority: -5.0,
    });
    let t2 = submit(ControlCommand::Drop { id: "s1".into() });
    let t3 = submit(ControlCommand::Add {
        spec: sleeper("new", -1.0, 1),
    });
    let t4 = submit(ControlCommand::Drop { id: "nope".into() });
    let t5 = submit(ControlCommand::Drop { id: "s0".into() });
    let wait = |t: &str| {
        control::wait_result(d, t, Duration::from_secs(10))
            .expect("read result")
            .expect("answered")
    };
    // All answered while s0 still runs (its gate is closed).
    assert!(wait(&t1).ok);
    assert!(wait(&t2).ok);
    assert!(wait(&t3).ok);
    let r4 = wait(&t4);
    assert!(!r4.ok && r4.message == "nope is not in the queue", "{r4:?}");
    let r5 = wait(&t5);
    assert!(
        !r5.ok && r5.message.contains("s0 is already running"),
        "{r5:?}"
    );
    // A file that is not a command is answered with its path and the problem.
    let bad = d.join("engine/control/zz-bad.json");
    autoresearch_engine::atomic::write_atomic(&bad, b"{\"op\": \"bump\", \"id\": \"s2\"}")
        .expect("write");
    let r6 = wait("zz-bad.json");
    assert!(!r6.ok, "{r6:?}");
    assert!(
        r6.message
            .ends_with("zz-bad.json: not a valid command: missing field `priority`"),
        "{r6:?}"
    );
    engine.flow.open_gate("*");
    let report = engine.handle.join().expect("engine thread");
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
        revision: 1,
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
    let msgs = control::edit_offline(
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
    let err = control::edit_offline(d, &[ControlCommand::Drop { id: "zzz".into() }])
        .expect_err("unknown id");
    assert!(
        matches!(&err, autoresearch_engine::EngineError::NotQueued { id } if id == "zzz"),
        "{err}"
    );
    assert_eq!(err.to_string(), "zzz is not in the queue");
    assert_eq!(
        std::fs::read(&path).expect("read"),
        before,
        "unchanged on error"
    );
}

#[test]
fn links_planted_under_the_workdir_are_never_written_through() {
    let outside = tempfile::tempdir().expect("tempdir");
    let victim = outside.path().join("victim");
    std::fs::write(&victim, b"keep").expect("write");
    for name in ["lock", "events.jsonl", "queue.json"] {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        std::fs::create_dir_all(d.join("engine")).expect("mkdir");
        std::os::unix::fs::symlink(&victim, d.join("engine").join(name)).expect("symlink");
        let opened =
            AsyncWorkEngine::open(config(d, 1), TestFlow::new(d, vec![sleeper("a", 0.0, 1)]));
        let outcome = match opened {
            Err(e) => Err(e.to_string()),
            Ok(engine) => tokio::runtime::Runtime::new()
                .expect("runtime")
                .block_on(engine.run())
                .map_err(|e| e.to_string())
                .map(|r| r.status),
        };
        assert_eq!(std::fs::read(&victim).expect("read"), b"keep", "{name}");
        match name {
            // The lock and the event log are refused outright, naming the link.
            "lock" | "events.jsonl" => {
                let err = outcome.expect_err(name);
                assert!(err.contains("symbolic link") && err.contains(name), "{err}");
            }
            // A view is replaced by a real file (the link itself, not its target).
            _ => {
                assert_eq!(outcome, Ok(EngineStatus::Stopped), "{name}");
                let meta = std::fs::symlink_metadata(d.join("engine").join(name)).expect("meta");
                assert!(meta.is_file(), "{name}");
            }
        }
    }
}

#[test]
fn temp_files_left_by_a_crash_are_removed_at_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    std::fs::create_dir_all(d.join("engine")).expect("mkdir");
    // pid 2147483632 is above any real pid_max: its writer is gone.
    let stale = d.join("engine/.checkpoint.json.tmp.2147483632.7");
    std::fs::write(&stale, b"torn").expect("write");
    let (report, _) = run_engine(d, 1, vec![sleeper("a", 0.0, 1)]);
    assert_eq!(report.status, EngineStatus::Stopped);
    assert!(!stale.exists());
}
