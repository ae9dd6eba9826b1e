//! At most one planning round in flight: jobs that finish within milliseconds of each other
//! (released together by a barrier) used to plan concurrently on the same snapshot and run the
//! same parameter set several times.

use std::time::Duration;

use crate::reliability::harness::{
    Barrier, Release, check_invariants, check_no_repeats, grouped_workdir, run_to_end,
    search_config,
};
use crate::support::{Fixture, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_finishing_together_never_repeat_a_parameter_set() {
    let (fx, _barrier) =
        grouped_workdir(|fx| search_config(fx, 8, 40), 8, Duration::from_millis(300));
    run_to_end(&fx, 40, 1).await;
    let tally = check_invariants(&fx, "40 experiments at concurrency 8");
    assert_eq!(tally.nodes, 40, "{:?}", fx.statuses());
    assert_eq!(tally.completed, 40);
    assert_eq!(tally.relaunches, 0);
    assert!(
        tally.planner_rounds <= 40,
        "one round per completion at most: {tally:?}"
    );
    eprintln!("planning: {tally:?}");
}

/// The engine is SIGKILLed while 8 jobs wait at the barrier; the jobs are then released and
/// all end while no engine is alive; the resumed engine finds 8 finished jobs at once. Three
/// times, then the run goes on to its end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_after_all_running_jobs_ended_while_no_engine_was_alive() {
    let fx = Fixture::new();
    let cfg = fx.config(search_config(&fx, 8, 40));
    fx.resolve(Some(cfg));
    let barrier = Barrier::start(&fx, Release::Hold);
    // The baseline alone first.
    let mut engine = fx.spawn_engine();
    assert!(
        wait_until(Duration::from_secs(60), || barrier.waiting().len() == 1),
        "the baseline never ran: {}",
        fx.child_log()
    );
    barrier.release_all();
    for cycle in 0..3 {
        let full = wait_until(Duration::from_secs(60), || barrier.waiting().len() == 8);
        assert!(
            full,
            "cycle {cycle}: 8 jobs never waited together: {:?}\n{}",
            fx.statuses(),
            fx.child_log()
        );
        engine.kill9();
        let ended = barrier.release_all();
        assert!(
            wait_until(Duration::from_secs(30), || ended
                .iter()
                .all(|id| fx.run_dir(id).join("exit_code").exists())),
            "cycle {cycle}: the released jobs did not end"
        );
        check_no_repeats(&fx, &format!("after kill {cycle}"));
        engine = fx.spawn_engine();
    }
    engine.kill9();
    barrier.set(Release::Groups {
        group: 8,
        patience: Duration::from_millis(300),
    });
    run_to_end(&fx, 40, 2).await;
    let tally = check_invariants(&fx, "after three resumes with every job ended");
    assert_eq!(tally.nodes, 40, "{:?}", fx.statuses());
    assert_eq!(tally.completed, 40);
    assert_eq!(tally.relaunches, 0, "a finished job is never relaunched");
    eprintln!("planning after resumes: {tally:?}");
}
