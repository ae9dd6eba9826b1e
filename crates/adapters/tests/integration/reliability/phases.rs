//! Signals in every phase: the engine (a child process) is frozen with SIGSTOP the moment a
//! node's `status.txt` shows the phase, and gets SIGKILL or SIGTERM while the node is in it
//! (checked again while frozen). After every case the run resumes; at the end nothing was lost
//! or repeated.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::reliability::harness::{
    check_invariants, check_no_repeats, grouped_workdir, run_to_end, search_config,
};
use crate::support::{Fixture, wait_until};

/// How long one (phase, signal) case may look for its moment.
const CASE_LIMIT: Duration = Duration::from_secs(60);

/// Statuses of the most recent nodes (the ones in flight).
fn recent_statuses(fx: &Fixture) -> Vec<(String, String)> {
    let ids = fx.node_ids();
    let from = ids.len().saturating_sub(16);
    ids[from..]
        .iter()
        .map(|id| (id.clone(), fx.status(id)))
        .collect()
}

/// `engine/engine_state.json`, if readable.
fn maybe_state(fx: &Fixture) -> Option<Value> {
    let bytes = std::fs::read(fx.path("engine/engine_state.json")).ok()?;
    serde_json::from_slice(&bytes).ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_and_sigterm_in_every_phase() {
    let max_experiments = 120;
    let (fx, _barrier) = grouped_workdir(
        |fx| search_config(fx, 4, max_experiments as u64),
        4,
        Duration::from_millis(20),
    );
    let mut report = Vec::new();
    for phase in ["preparing", "launching", "running", "analyzing", "planning"] {
        for (signal, name) in [(libc::SIGKILL, "SIGKILL"), (libc::SIGTERM, "SIGTERM")] {
            let start = Instant::now();
            let mut tries = 0;
            let hit = loop {
                assert!(
                    start.elapsed() < CASE_LIMIT,
                    "{name} in {phase}: never caught a node in that phase in {tries} tries: {:?}",
                    fx.statuses()
                );
                tries += 1;
                let mut child = fx.spawn_engine();
                let pid = child.pid();
                // Only phases this engine reached count: wait until it runs (its signal
                // handlers are in place), and remember what earlier engines left on disk.
                let started = wait_until(Duration::from_secs(30), || {
                    maybe_state(&fx).is_some_and(|s| s["pid"] == pid && s["status"] == "running")
                });
                assert!(started, "the engine did not start: {}", fx.child_log());
                let before: HashMap<String, String> = fx.statuses().into_iter().collect();
                let moved_into = |fx: &Fixture| {
                    recent_statuses(fx)
                        .into_iter()
                        .find(|(id, s)| s == phase && before.get(id) != Some(s))
                        .map(|(id, _)| id)
                };
                let deadline = Instant::now() + Duration::from_secs(5);
                let mut caught = None;
                while Instant::now() < deadline && caught.is_none() {
                    if child.wait(Duration::ZERO).is_some() {
                        panic!("the run ended before {name} in {phase}: raise max_experiments");
                    }
                    if moved_into(&fx).is_some() {
                        child.signal(libc::SIGSTOP);
                        // Frozen: what is on disk now is what the signal finds.
                        caught = moved_into(&fx);
                        if caught.is_none() {
                            child.signal(libc::SIGCONT);
                        }
                    }
                    std::thread::sleep(Duration::from_micros(300));
                }
                match caught {
                    Some(id) => {
                        child.signal(signal);
                        child.signal(libc::SIGCONT);
                        if signal == libc::SIGTERM {
                            let code = child.wait(Duration::from_secs(20));
                            assert_eq!(
                                code,
                                Some(0),
                                "{name} in {phase}: the engine did not stop cleanly\n{}",
                                fx.child_log()
                            );
                        } else {
                            child.kill9();
                        }
                        break id;
                    }
                    None => child.kill9(),
                }
            };
            check_no_repeats(&fx, &format!("{name} in {phase} ({hit})"));
            report.push(format!("{name}@{phase}:{hit} after {tries} tries"));
        }
    }
    run_to_end(&fx, max_experiments, 2).await;
    let tally = check_invariants(&fx, "signals in every phase");
    assert_eq!(tally.completed, tally.nodes, "{:?}", fx.statuses());
    assert_eq!(tally.relaunches, 0);
    eprintln!("phases: {report:?} {tally:?}");
}
