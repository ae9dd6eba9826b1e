//! Symbolic links planted inside the workdir are never followed: the run dir and node folders
//! (the workflow's paths) and `engine/lock`, `engine/events.jsonl` and a run's `stdout.log`
//! (the engine's and the executor's). A planted link gets an error naming it and nothing is
//! written outside the workdir.

use std::os::unix::fs::symlink;
use std::time::Duration;

use autoresearch_adapters::session::Session;
use serde_json::json;

use crate::support::{Fixture, test_options};

/// The baseline only (`planner.kind = none`), printing `METRIC score=1`.
fn config(fx: &Fixture) -> autoresearch_adapters::config::Config {
    fx.config(json!({
        "objective": { "metric": "score", "direction": "maximize" },
        "job": { "command": "echo METRIC score={x}", "timeout_s": 30 },
        "search_space": { "x": [1, 2] },
        "baseline": { "x": 1 },
        "planner": { "kind": "none" },
        "limits": { "max_concurrency": 1, "max_experiments": 10, "patience": 10 }
    }))
}

fn events(fx: &Fixture) -> String {
    std::fs::read_to_string(fx.path("engine/events.jsonl")).unwrap_or_default()
}

/// Everything under `dir` (names), to show it stayed empty.
fn listing(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_planted_at_a_run_dir_is_refused_and_nothing_is_written_outside() {
    let fx = Fixture::new();
    fx.resolve(Some(config(&fx)));
    let outside = fx.tmp.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::create_dir_all(fx.path("runs")).unwrap();
    let link = fx.path("runs/000_baseline");
    symlink(&outside, &link).unwrap();
    let named = |f: &Fixture| {
        let ev = events(f);
        ev.contains("symbolic link") && ev.contains("runs/000_baseline")
    };
    let (_report, _) = fx.run_until(None, named).await;
    assert!(named(&fx), "the error names the link: {}", events(&fx));
    assert!(
        listing(&outside).is_empty(),
        "written through the link: {:?}",
        listing(&outside)
    );
    let status = fx.status("000_baseline");
    assert_ne!(
        status, "failed",
        "a planted link is not the experiment's fault"
    );
    assert!(!fx.node_dir("000_baseline").join("failure.json").exists());
    // Once the link is gone, the experiment runs.
    std::fs::remove_file(&link).unwrap();
    fx.run(None).await;
    assert_eq!(fx.status("000_baseline"), "completed", "{}", events(&fx));
    assert!(listing(&outside).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_among_the_node_folders_is_refused_when_the_workdir_opens() {
    let fx = Fixture::new();
    fx.run(Some(config(&fx))).await;
    assert_eq!(fx.status("000_baseline"), "completed");
    // The node folder moved outside and a link left in its place.
    let outside = fx.tmp.path().join("outside_node");
    std::fs::rename(fx.node_dir("000_baseline"), &outside).unwrap();
    symlink(&outside, fx.node_dir("000_baseline")).unwrap();
    let before = listing(&outside);
    let err = match Session::open(&fx.wd, fx.resolve(None), &test_options()) {
        Ok(_) => panic!("a workdir with a linked node folder was opened"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("symbolic link") && err.contains("000_baseline"),
        "the error names the link: {err}"
    );
    assert_eq!(listing(&outside), before);
}

/// Depends on the engine's side of the trust model (its files opened without following links).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_planted_on_engine_files_are_never_written_through() {
    for name in ["lock", "events.jsonl"] {
        let fx = Fixture::new();
        fx.resolve(Some(config(&fx)));
        std::fs::create_dir_all(fx.path("engine")).unwrap();
        let victim = fx.tmp.path().join("victim");
        std::fs::write(&victim, b"keep me").unwrap();
        symlink(&victim, fx.path(&format!("engine/{name}"))).unwrap();
        let outcome = match Session::open(&fx.wd, fx.resolve(None), &test_options()) {
            Ok(session) => tokio::time::timeout(Duration::from_secs(60), session.run())
                .await
                .map(|r| r.map(|_| ()).map_err(|e| e.to_string())),
            Err(e) => Ok(Err(e.to_string())),
        };
        assert_eq!(
            std::fs::read(&victim).unwrap(),
            b"keep me",
            "engine/{name}: written through the link ({outcome:?})"
        );
        if let Ok(Err(message)) = &outcome {
            assert!(
                message.contains(name),
                "the error names engine/{name}: {message}"
            );
        }
    }
}

/// Depends on the executor's side (the wrapper's output files are not opened through links).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_planted_at_a_jobs_output_is_never_written_through() {
    let fx = Fixture::new();
    fx.resolve(Some(config(&fx)));
    let victim = fx.tmp.path().join("victim");
    std::fs::write(&victim, b"keep me").unwrap();
    std::fs::create_dir_all(fx.run_dir("000_baseline")).unwrap();
    symlink(&victim, fx.run_dir("000_baseline").join("stdout.log")).unwrap();
    let _ = fx.run_until(None, |_| false).await;
    assert_eq!(std::fs::read(&victim).unwrap(), b"keep me");
}
