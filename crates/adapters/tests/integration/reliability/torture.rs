//! Crash torture: the engine (a child process) SIGKILLed at random moments while jobs finish
//! in bursts of four, with the search planner at concurrency 4. 30 kills by default;
//! `AUTORESEARCH_TORTURE_KILLS=300` for the long mode. A workdir's run ends when its budget
//! (60 experiments) is used or the planner has nothing left; the kills then go on in a fresh
//! workdir. Before each kill the engine is frozen (SIGSTOP) and the phases on disk are counted,
//! so the report says where the kills landed.

use std::collections::BTreeMap;

use crate::reliability::harness::{
    check_invariants, check_no_repeats, env_count, rng, run_to_end, search_config,
    spawn_and_freeze, torture_workdir,
};

const PER_WORKDIR: usize = 60;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_torture_loses_and_repeats_nothing() {
    let wanted = env_count("AUTORESEARCH_TORTURE_KILLS", 30);
    let (mut rng, seed) = rng(20261130);
    let mut kills = 0;
    let mut phases: BTreeMap<String, usize> = BTreeMap::new();
    let (mut workdirs, mut nodes, mut launches, mut relaunches) = (0, 0, 0, 0);
    while kills < wanted {
        let (fx, _barrier) = torture_workdir(|fx| search_config(fx, 4, PER_WORKDIR as u64));
        workdirs += 1;
        let mut here = 0;
        while kills < wanted {
            // Early kills also hit the start (loading, re-deriving, the first checkpoint);
            // every fourth engine lives longer, so runs move on whatever a restart costs.
            let delay = match here {
                0..5 => rng.u64(0..80),
                n if n % 4 == 3 => rng.u64(500..2500),
                _ => rng.u64(0..400),
            };
            // Frozen: see which phases are on disk, then kill it.
            let Some(mut child) = spawn_and_freeze(&fx, delay) else {
                break; // this workdir's run is over
            };
            for status in fx.statuses().into_values() {
                let phase = if status.is_empty() {
                    "being created".to_string()
                } else {
                    status
                };
                *phases.entry(phase).or_insert(0) += 1;
            }
            child.kill9();
            kills += 1;
            here += 1;
            if kills % 10 == 0 {
                check_no_repeats(&fx, &format!("seed {seed}, after {kills} kills"));
            }
        }
        // Jobs left waiting end while no engine runs; the run then goes on to its end.
        run_to_end(&fx, PER_WORKDIR, 3).await;
        let context = format!("seed {seed}, workdir {workdirs}, {here} kills there");
        let tally = check_invariants(&fx, &context);
        assert_eq!(
            tally.completed,
            tally.nodes,
            "{context}: {:?}",
            fx.statuses()
        );
        assert_eq!(
            tally.relaunches, 0,
            "{context}: the engine's death never kills a job, so nothing is relaunched"
        );
        nodes += tally.nodes;
        launches += tally.launches;
        relaunches += tally.relaunches;
    }
    eprintln!(
        "torture: seed {seed} kills={kills} workdirs={workdirs} nodes={nodes} \
         launches={launches} relaunches={relaunches} jobs_lost=0 jobs_duplicated=0 \
         parameter_sets_twice=0 phases_on_disk_at_kills={phases:?}"
    );
}
