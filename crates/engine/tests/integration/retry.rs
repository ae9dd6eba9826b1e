//! `WorkError::Retry`: a spec whose environment failed is started again (resumed) after a
//! back-off that doubles, no outcome reaches the workflow, nothing else starts meanwhile, and
//! past the bounded wait the engine stops as interrupted. On tokio's paused clock: the back-offs
//! are checked exactly, without waiting for them.

use std::time::Duration;

use crate::support::{TestFlow, config, events, sleeper, spec};
use autoresearch_engine::{AsyncWorkEngine, EngineStatus, Event, WorkSpec};
use serde_json::json;

fn retrying(id: &str, priority: f64, times: u64) -> WorkSpec {
    spec(id, priority, json!({ "retry": times }))
}

#[tokio::test(start_paused = true)]
async fn a_retried_spec_restarts_resumed_after_a_doubling_backoff_and_is_not_failed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let specs = vec![retrying("r", 0.0, 3), sleeper("other", 1.0, 1)];
    let engine = AsyncWorkEngine::open(config(d, 1), TestFlow::new(d, specs)).expect("open");
    let flow = engine.workflow().clone();
    let report = engine.run().await.expect("run");
    assert_eq!(report.status, EngineStatus::Stopped);
    assert_eq!(report.counts.completed, 2);
    assert_eq!(report.counts.failed, 0);
    let starts = flow.starts.lock().expect("lock").clone();
    let order: Vec<(&str, bool)> = starts.iter().map(|(id, r, _)| (id.as_str(), *r)).collect();
    assert_eq!(
        order,
        [
            ("r", false),
            ("r", true),
            ("r", true),
            ("r", true),
            ("other", false)
        ],
        "retried first, resumed, and nothing else started meanwhile"
    );
    let gaps: Vec<Duration> = starts.windows(2).map(|w| w[1].2 - w[0].2).collect();
    for (gap, want) in gaps.iter().zip([1, 2, 4]) {
        let want = Duration::from_secs(want);
        assert!(
            *gap >= want && *gap < want + Duration::from_millis(500),
            "back-off {gap:?}, expected {want:?}: {gaps:?}"
        );
    }
    let outcomes = flow.outcomes.lock().expect("lock").clone();
    assert_eq!(
        outcomes,
        [
            ("r".to_string(), "completed".to_string()),
            ("other".to_string(), "completed".to_string())
        ],
        "no outcome for a retried attempt"
    );
    let warnings: Vec<String> = events(d)
        .into_iter()
        .filter_map(|e| match e.event {
            Event::Warning {
                message,
                id: Some(id),
            } if id == "r" => Some(message),
            _ => None,
        })
        .collect();
    assert_eq!(warnings.len(), 3, "{warnings:?}");
    assert!(
        warnings[0].contains("disk full (attempt 1)"),
        "{warnings:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_environment_that_keeps_failing_stops_the_engine_as_interrupted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let specs = vec![retrying("r", 0.0, u64::MAX), sleeper("other", 1.0, 1)];
    let mut cfg = config(d, 1);
    cfg.max_write_stall = Duration::from_secs(60);
    let engine = AsyncWorkEngine::open(cfg, TestFlow::new(d, specs)).expect("open");
    let flow = engine.workflow().clone();
    let t = tokio::time::Instant::now();
    let report = engine.run().await.expect("run");
    assert_eq!(report.status, EngineStatus::Interrupted);
    let reason = report.stop_reason.unwrap_or_default();
    assert!(
        reason.contains("r: the environment kept failing for 60 s: disk full"),
        "{reason}"
    );
    assert!(t.elapsed() >= Duration::from_secs(60));
    assert!(flow.outcomes.lock().expect("lock").is_empty());
    let cp = autoresearch_engine::checkpoint::load(&d.join("engine/checkpoint.json"))
        .expect("valid")
        .expect("exists");
    assert_eq!(cp.status, EngineStatus::Interrupted);
    let ids = |v: &[WorkSpec]| v.iter().map(|s| s.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&cp.running), ["r"], "kept to resume first");
    assert_eq!(ids(&cp.queued), ["other"]);
    assert!(events(d).iter().any(|e| matches!(
        &e.event,
        Event::EngineInterrupted { reason: Some(r) } if r.contains("kept failing")
    )));
}
