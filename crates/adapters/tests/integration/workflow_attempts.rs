//! Attempts of a job: a relaunch cut short between archiving the dead attempt and recording
//! the next one is finished on resume (never taken for a lost job), and the engine's own
//! cancels (`cancel_jobs_on_stop`) are never counted as lost attempts.

use crate::support;

use std::time::Duration;

use autoresearch_engine::EngineStatus;
use serde_json::{Value, json};
use support::{Fixture, gated_job, kill_group, wait_until, wait_until_async};

/// The baseline only, a gated job scoring `5`.
fn one_gated(fx: &Fixture, cancel_on_stop: bool) -> Value {
    let script = fx.script("job.sh", &gated_job("5"));
    json!({
        "objective": { "metric": "score", "direction": "maximize" },
        "job": { "command": format!("sh {} {{x}}", script.display()), "timeout_s": 120 },
        "search_space": { "x": [1, 2] },
        "baseline": { "x": 1 },
        "planner": { "kind": "none" },
        "executor": { "kind": "local", "cancel_jobs_on_stop": cancel_on_stop },
        "limits": { "max_concurrency": 1, "max_experiments": 10, "patience": 10 }
    })
}

const BASE: &str = "000_baseline";

/// Runs the engine in a child until the baseline's job runs, SIGKILLs the engine, then kills
/// the job's whole process group: a job known dead with no exit code.
fn dead_job(fx: &Fixture) {
    let mut child = fx.spawn_engine();
    assert!(
        wait_until(Duration::from_secs(30), || fx.status(BASE) == "running"
            && fx.launches_of(BASE) == 1),
        "the job never ran: {}",
        fx.child_log()
    );
    child.kill9();
    let pid = fx.job_pid(BASE).expect("pid");
    assert!(kill_group(pid), "the job's group did not die");
    assert!(!fx.run_dir(BASE).join("exit_code").exists());
}

/// Moves `names` of the run dir into `attempt-1/`, as the archiving step does.
fn archive_by_hand(fx: &Fixture, names: &[&str]) {
    let run = fx.run_dir(BASE);
    std::fs::create_dir_all(run.join("attempt-1")).unwrap();
    for name in names {
        let from = run.join(name);
        if from.exists() {
            std::fs::rename(&from, run.join("attempt-1").join(name)).unwrap();
        }
    }
}

/// Each crash point between archiving attempt 1 and recording attempt 2, as the files are left
/// by it; the resumed engine finishes the relaunch: attempt 2 runs once and completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relaunch_cut_short_is_finished_on_resume_not_failed_as_lost() {
    let cases: [(&str, &[&str], Option<u32>); 3] = [
        ("half archived", &["job.json", "pid"], None),
        (
            "archived, attempt 2 not marked",
            &["job.json", "pid", "stdout.log", "stderr.log", "launch.json"],
            None,
        ),
        (
            "attempt 2 marked, not spawned",
            &["job.json", "pid", "stdout.log", "stderr.log", "launch.json"],
            Some(2),
        ),
    ];
    for (case, moved, marker) in cases {
        let fx = Fixture::new();
        fx.resolve(Some(fx.config(one_gated(&fx, false))));
        dead_job(&fx);
        archive_by_hand(&fx, moved);
        if let Some(attempt) = marker {
            std::fs::write(
                fx.run_dir(BASE).join("launch.json"),
                json!({ "attempt": attempt, "at": "2026-11-30T00:00:00Z" }).to_string(),
            )
            .unwrap();
        }
        std::fs::write(fx.work_file("release"), "").unwrap();
        let report = fx.run(None).await;
        assert_eq!(report.status, EngineStatus::Stopped, "{case}");
        assert_eq!(fx.status(BASE), "completed", "{case}: {}", fx.failure(BASE));
        assert_eq!(fx.job_record(BASE)["attempt"], json!(2), "{case}");
        assert_eq!(
            fx.launches_of(BASE),
            2,
            "{case}: attempt 1 and attempt 2, once each"
        );
        let archived = fx.run_dir(BASE).join("attempt-1");
        for name in ["job.json", "launch.json"] {
            assert!(archived.join(name).exists(), "{case}: attempt-1/{name}");
        }
        assert_eq!(fx.result(BASE)["primary"], json!(5.0), "{case}");
    }
}

/// Four user interrupts with `cancel_jobs_on_stop`: each kills the job; each resume relaunches
/// it as a new attempt, and none counts towards the three lost attempts a job may have.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engines_own_cancels_are_not_lost_attempts() {
    let fx = Fixture::new();
    let cfg = fx.config(one_gated(&fx, true));
    fx.resolve(Some(cfg));
    for round in 1..=4 {
        let session = fx.session(None);
        let token = session.cancellation_token();
        let handle = tokio::spawn(support::run_session(session));
        let running = wait_until_async(Duration::from_secs(30), || {
            fx.launches_of(BASE) == round && fx.status(BASE) == "running"
        })
        .await;
        assert!(running, "round {round}: the job never ran");
        token.cancel();
        let report = handle.await.unwrap();
        assert_eq!(report.status, EngineStatus::Interrupted, "round {round}");
        assert_ne!(
            fx.status(BASE),
            "failed",
            "round {round}: {}",
            fx.failure(BASE)
        );
        let pid = fx.job_pid(BASE).expect("pid");
        assert!(
            wait_until(Duration::from_secs(10), || support::group_members(pid)
                .is_empty()),
            "round {round}: the cancelled job still runs"
        );
    }
    std::fs::write(fx.work_file("release"), "").unwrap();
    let report = fx.run(None).await;
    assert_eq!(report.status, EngineStatus::Stopped);
    assert_eq!(fx.status(BASE), "completed", "{}", fx.failure(BASE));
    assert_eq!(fx.job_record(BASE)["attempt"], json!(5));
    assert_eq!(fx.launches_of(BASE), 5);
    for n in 1..=4 {
        let marker = fx.run_dir(BASE).join(format!("attempt-{n}/cancelled.json"));
        assert!(
            marker.exists(),
            "attempt {n} is marked as cancelled by the engine"
        );
    }
}

/// Temp files of writes a crash cut short (a dead writer's pid in their name) are removed when
/// the next engine starts; a file that merely looks similar is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temp_files_a_crash_left_are_removed_on_resume() {
    let fx = Fixture::new();
    fx.resolve(Some(fx.config(one_gated(&fx, false))));
    dead_job(&fx);
    // pid 2147483632 is above any real pid_max: its writer is surely gone.
    let stale = [
        fx.path(".state.json.tmp.2147483632.0"),
        fx.path("engine/.tree.json.tmp.2147483632.1"),
        fx.node_dir(BASE).join(".status.txt.tmp.2147483632.2"),
        fx.run_dir(BASE).join(".launch.json.tmp.2147483632.3"),
    ];
    for path in &stale {
        std::fs::write(path, b"torn").unwrap();
    }
    let keep = fx.node_dir(BASE).join("notes.tmp.txt");
    std::fs::write(&keep, b"mine").unwrap();
    std::fs::write(fx.work_file("release"), "").unwrap();
    fx.run(None).await;
    assert_eq!(fx.status(BASE), "completed", "{}", fx.failure(BASE));
    for path in &stale {
        assert!(!path.exists(), "{} was left", path.display());
    }
    assert!(keep.exists());
}
