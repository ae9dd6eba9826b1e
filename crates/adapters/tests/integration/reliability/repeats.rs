//! Repeats and confirmation under SIGKILL: a search run with `objective.repeats = 3` and
//! `confirm: always` (every new best re-run twice), its runs finishing in bursts of four, the
//! engine (a child process) SIGKILLed at random moments (20 kills by default;
//! `AUTORESEARCH_REPEAT_KILLS` for more). Then: every run of every node launched exactly
//! once, every run's raw value kept in `samples` in run order, every aggregate, spread and the
//! noise floor recomputed from those raw values, confirmation decided once per node.

use std::collections::BTreeMap;

use autoresearch_adapters::config::Aggregate;
use autoresearch_adapters::model::{NodeResult, NoiseFloor};
use autoresearch_adapters::noise;
use serde_json::{Value, json};

use crate::reliability::harness::{env_count, rng, run_to_end, spawn_and_freeze, torture_workdir};
use crate::support::Fixture;

const PER_WORKDIR: usize = 24;

/// Logs `<node> <run>`, prints a score (the sum of the four arguments, ±20 % from a hash of
/// the node and run), then waits until the test releases `<node>-<run>`.
const REPEAT_JOB: &str = r#"id="$AUTORESEARCH_NODE_ID"
k="$AUTORESEARCH_REPEAT"
echo "$id $k" >> launches.log
h=$(printf '%s' "$id:$k" | cksum | cut -d' ' -f1)
awk -v s="$(( $1 + $2 + $3 + $4 ))" -v h="$h" 'BEGIN { printf "METRIC score=%.4f\n", s * (1 + ((h % 4001) - 2000) / 10000) }'
: > "waiting/$id-$k"
while [ ! -e "released/$id-$k" ]; do sleep 0.01; done
"#;

fn repeat_config(fx: &Fixture) -> Value {
    std::fs::create_dir_all(fx.work.join("waiting")).expect("waiting dir");
    std::fs::create_dir_all(fx.work.join("released")).expect("released dir");
    let script = fx.script("job.sh", REPEAT_JOB);
    json!({
        "objective": { "metric": "score", "direction": "maximize", "repeats": 3,
                       "baseline_repeats": 3, "confirm": "always", "confirm_runs": 2 },
        "job": { "command": format!("sh {} {{x}} {{y}} {{z}} {{w}}", script.display()),
                 "timeout_s": 300 },
        "search_space": { "x": { "min": 1, "max": 100000, "type": "int" },
                          "y": { "min": 1, "max": 100000, "type": "int" },
                          "z": { "min": 1, "max": 100000, "type": "int" },
                          "w": { "min": 1, "max": 100000, "type": "int" } },
        "baseline": { "x": 500, "y": 500, "z": 500, "w": 500 },
        "planner": { "kind": "search", "seed": 11 },
        "limits": { "max_concurrency": 4, "max_experiments": PER_WORKDIR, "patience": 10000 }
    })
}

/// Lines of `launches.log`: `<node> <run>` → how many times it was launched.
fn launches(fx: &Fixture) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for line in std::fs::read_to_string(fx.work_file("launches.log"))
        .unwrap_or_default()
        .lines()
    {
        *out.entry(line.trim().to_string()).or_insert(0) += 1;
    }
    out
}

/// Equal up to the last bits a JSON round trip may change.
fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * a.abs().max(b.abs()).max(1.0)
}

/// The run dir of run `k` of node `id`.
fn run_dir(fx: &Fixture, id: &str, k: usize) -> std::path::PathBuf {
    if k == 1 {
        fx.run_dir(id)
    } else {
        fx.run_dir(id).join(format!("repeat-{k}"))
    }
}

/// The score run `k` of `id` printed.
fn printed(fx: &Fixture, id: &str, k: usize) -> f64 {
    let out = std::fs::read_to_string(run_dir(fx, id, k).join("stdout.log")).unwrap();
    out.lines()
        .find_map(|l| l.strip_prefix("METRIC score="))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{id} run {k} printed no score: {out:?}"))
}

/// At any moment: no run launched twice, and a run launched only if its run dir says it was.
fn check_launched_once(fx: &Fixture, context: &str) {
    for (run, n) in launches(fx) {
        assert_eq!(n, 1, "{context}: run {run} launched {n} times");
        let (id, k) = run.split_once(' ').unwrap();
        let dir = run_dir(fx, id, k.parse().unwrap());
        assert!(
            dir.join("launch.json").exists(),
            "{context}: {run} ran without its launch marker"
        );
    }
}

/// After the run: every node completed with all its runs, each launched once (attempt 1:
/// the engine's death never kills a job), its samples the printed scores in run order, its
/// value their median, its spread theirs, and the noise floor pooled from the repeats.
/// Returns (nodes, runs, confirmations, unconfirmed).
fn check_runs(fx: &Fixture, context: &str) -> (usize, usize, usize, usize) {
    check_launched_once(fx, context);
    let launched = launches(fx);
    let state = fx.state();
    let (mut runs, mut confirmations, mut unconfirmed) = (0, 0, 0);
    let ids = fx.node_ids();
    for id in &ids {
        assert_eq!(
            fx.status(id),
            "completed",
            "{context}: {id}: {}",
            fx.failure(id)
        );
        let r: NodeResult = serde_json::from_value(fx.result(id)).unwrap();
        let confirm_file = fx.node_dir(id).join("confirm.json");
        let total = match &r.confirmation {
            Some(c) => {
                assert!(confirm_file.exists(), "{context}: {id}: confirm.json");
                assert_eq!(c.runs_before, 3, "{context}: {id}");
                assert!(
                    c.confirmed.is_some(),
                    "{context}: {id}: judged after its runs"
                );
                confirmations += 1;
                5
            }
            None => {
                assert!(
                    !confirm_file.exists(),
                    "{context}: {id}: confirm.json, no outcome"
                );
                3
            }
        };
        assert_eq!(r.samples.len(), total, "{context}: {id}: {:?}", r.samples);
        for k in 1..=total {
            assert_eq!(
                launched.get(&format!("{id} {k}")),
                Some(&1),
                "{context}: {id} run {k} launched once"
            );
            let job: Value = serde_json::from_slice(
                &std::fs::read(run_dir(fx, id, k).join("job.json")).unwrap(),
            )
            .unwrap();
            assert_eq!(
                job["attempt"],
                json!(1),
                "{context}: {id} run {k}: relaunched"
            );
            assert_eq!(
                r.samples[k - 1],
                printed(fx, id, k),
                "{context}: {id} run {k}: raw value kept in run order"
            );
        }
        assert!(
            !launched.contains_key(&format!("{id} {}", total + 1)),
            "{context}: {id}: a run beyond its plan"
        );
        runs += total;
        let median = noise::aggregate(Aggregate::Median, &r.samples).unwrap();
        assert!(
            close(r.primary.unwrap(), median),
            "{context}: {id}: {:?} is not the median of its runs {:?}",
            r.primary,
            r.samples
        );
        let (got, want) = (r.spread.unwrap(), noise::spread(&r.samples).unwrap());
        assert!(
            got.n == want.n
                && [
                    (got.min, want.min),
                    (got.max, want.max),
                    (got.mean, want.mean),
                    (got.median, want.median),
                    (got.stdev, want.stdev),
                    (got.mad, want.mad),
                ]
                .iter()
                .all(|(a, b)| close(*a, *b)),
            "{context}: {id}: spread {got:?}, recomputed {want:?}"
        );
        if r.unconfirmed {
            unconfirmed += 1;
            assert!(!r.improved, "{context}: {id}: unconfirmed but improved");
            assert_ne!(state["best_node"].as_str(), Some(id.as_str()));
        }
        if r.improved && r.confirmation.is_none() {
            assert!(
                r.analysis.contains("first result"),
                "{context}: {id}: improved without confirmation: {}",
                r.analysis
            );
        }
    }
    // The noise floor: the repeats (not the confirmation runs) of every node, pooled in the
    // order the results were recorded.
    let mut floor: Option<NoiseFloor> = None;
    for id in state["recorded"].as_array().unwrap() {
        let r: NodeResult = serde_json::from_value(fx.result(id.as_str().unwrap())).unwrap();
        floor = noise::pool(floor, &r.samples[..3]);
    }
    let stored: NoiseFloor = serde_json::from_value(state["noise_floor"].clone()).unwrap();
    let floor = floor.unwrap();
    assert_eq!(
        (stored.dof, stored.nodes),
        (floor.dof, floor.nodes),
        "{context}"
    );
    assert!(
        close(stored.relative, floor.relative),
        "{context}: {stored:?} vs {floor:?}"
    );
    // Each node once in the tree and once in the ledger.
    let tree: Vec<String> = fx.tree()["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(tree, ids, "{context}: tree.json lists each node once");
    let recorded: Vec<&str> = state["recorded"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        recorded.len(),
        ids.len(),
        "{context}: each node recorded once"
    );
    (ids.len(), runs, confirmations, unconfirmed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_torture_with_repeats_and_confirmation() {
    let wanted = env_count("AUTORESEARCH_REPEAT_KILLS", 20);
    let (mut rng, seed) = rng(20261201);
    let mut kills = 0;
    let mut at_kill: BTreeMap<String, usize> = BTreeMap::new();
    let (mut workdirs, mut nodes, mut runs, mut confirmations, mut unconfirmed) = (0, 0, 0, 0, 0);
    while kills < wanted {
        let (fx, _barrier) = torture_workdir(repeat_config);
        workdirs += 1;
        let mut here = 0;
        while kills < wanted {
            let delay = match here {
                0..3 => rng.u64(0..80),
                n if n % 4 == 3 => rng.u64(500..2500),
                _ => rng.u64(0..500),
            };
            let Some(mut child) = spawn_and_freeze(&fx, delay) else {
                break; // this workdir's run is over
            };
            for (id, status) in fx.statuses() {
                let confirming = fx.node_dir(&id).join("confirm.json").exists()
                    && !matches!(status.as_str(), "planning" | "completed" | "failed");
                let phase = match (status.as_str(), confirming) {
                    ("", _) => "being created".to_string(),
                    (s, true) => format!("{s} (confirming)"),
                    (s, false) => s.to_string(),
                };
                *at_kill.entry(phase).or_insert(0) += 1;
            }
            child.kill9();
            kills += 1;
            here += 1;
            check_launched_once(&fx, &format!("seed {seed}, after {kills} kills"));
        }
        run_to_end(&fx, PER_WORKDIR, 3).await;
        let context = format!("seed {seed}, workdir {workdirs}, {here} kills there");
        let (n, r, c, u) = check_runs(&fx, &context);
        nodes += n;
        runs += r;
        confirmations += c;
        unconfirmed += u;
    }
    assert!(
        confirmations > 0,
        "no confirmation happened: the test proves nothing"
    );
    eprintln!(
        "repeat torture: seed {seed} kills={kills} workdirs={workdirs} nodes={nodes} \
         runs={runs} confirmations={confirmations} unconfirmed={unconfirmed} \
         runs_launched_twice=0 aggregates_wrong=0 phases_at_kills={at_kill:?}"
    );
}
