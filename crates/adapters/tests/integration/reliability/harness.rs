//! What the reliability cases share: a search run whose jobs wait on a barrier the test
//! releases (so they finish together on purpose), and the invariants checked after every
//! scenario.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use autoresearch_adapters::config::canonical_params_key;
use autoresearch_engine::EngineStatus;
use serde_json::{Value, json};

use crate::support::{EngineChild, Fixture};

/// The job: logs its launch, prints its score (the sum of its four arguments) at once, then waits until the test
/// releases it (`released/<id>` in its cwd) and exits 0.
pub(super) const BARRIER_JOB: &str = r#"id="$AUTORESEARCH_NODE_ID"
echo "$id" >> launches.log
echo "METRIC score=$(( $1 + $2 + $3 + $4 ))"
: > "waiting/$id"
while [ ! -e "released/$id" ]; do sleep 0.01; done
"#;

/// A search run of `max_experiments` barrier jobs at `concurrency` over four int parameters
/// (score: their sum, so it keeps improving for ~150 experiments; patience never ends it).
pub(super) fn search_config(fx: &Fixture, concurrency: usize, max_experiments: u64) -> Value {
    std::fs::create_dir_all(fx.work.join("waiting")).expect("waiting dir");
    std::fs::create_dir_all(fx.work.join("released")).expect("released dir");
    let script = fx.script("job.sh", BARRIER_JOB);
    json!({
        "objective": { "metric": "score", "direction": "maximize" },
        "job": { "command": format!("sh {} {{x}} {{y}} {{z}} {{w}}", script.display()),
                 "timeout_s": 300 },
        "search_space": { "x": { "min": 1, "max": 100000, "type": "int" },
                          "y": { "min": 1, "max": 100000, "type": "int" },
                          "z": { "min": 1, "max": 100000, "type": "int" },
                          "w": { "min": 1, "max": 100000, "type": "int" } },
        "baseline": { "x": 500, "y": 500, "z": 500, "w": 500 },
        "planner": { "kind": "search", "seed": 7 },
        "limits": { "max_concurrency": concurrency, "max_experiments": max_experiments,
                    "patience": 10000 }
    })
}

/// How the barrier releases waiting jobs.
#[derive(Debug, Clone, Copy)]
pub(super) enum Release {
    /// All waiting jobs at once, as soon as `group` wait or the first has waited `patience`.
    Groups { group: usize, patience: Duration },
    /// Nobody until told ([`Barrier::release_all`]).
    Hold,
}

/// A thread that releases the jobs waiting in `<work>/waiting/` by creating
/// `<work>/released/<id>`, all of a group within a millisecond.
pub(super) struct Barrier {
    work: PathBuf,
    mode: Arc<Mutex<Release>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Barrier {
    pub(super) fn start(fx: &Fixture, mode: Release) -> Barrier {
        let work = fx.work.clone();
        let mode = Arc::new(Mutex::new(mode));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (work, mode, stop) = (work.clone(), mode.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut first_seen: Option<Instant> = None;
                while !stop.load(Ordering::Relaxed) {
                    let waiting = waiting_ids(&work);
                    if waiting.is_empty() {
                        first_seen = None;
                    } else {
                        let since = *first_seen.get_or_insert_with(Instant::now);
                        let m = *mode.lock().unwrap();
                        if let Release::Groups { group, patience } = m
                            && (waiting.len() >= group || since.elapsed() >= patience)
                        {
                            release(&work, &waiting);
                            first_seen = None;
                        }
                    }
                    std::thread::sleep(Duration::from_millis(3));
                }
            })
        };
        Barrier {
            work,
            mode,
            stop,
            thread: Some(thread),
        }
    }

    pub(super) fn set(&self, mode: Release) {
        *self.mode.lock().unwrap() = mode;
    }

    /// Jobs waiting right now.
    pub(super) fn waiting(&self) -> Vec<String> {
        waiting_ids(&self.work)
    }

    /// Releases every waiting job now; returns their ids.
    pub(super) fn release_all(&self) -> Vec<String> {
        let ids = waiting_ids(&self.work);
        release(&self.work, &ids);
        ids
    }
}

impl Drop for Barrier {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        release(&self.work, &waiting_ids(&self.work));
    }
}

fn waiting_ids(work: &Path) -> Vec<String> {
    let released: HashSet<String> = names(&work.join("released")).into_iter().collect();
    names(&work.join("waiting"))
        .into_iter()
        .filter(|id| !released.contains(id))
        .collect()
}

fn names(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn release(work: &Path, ids: &[String]) {
    for id in ids {
        let _ = std::fs::write(work.join("released").join(id), b"");
    }
}

/// What the invariants found (for the report lines of `docs/reliability.md`).
#[derive(Debug, Default)]
pub(super) struct Tally {
    pub nodes: usize,
    pub completed: usize,
    pub launches: usize,
    pub relaunches: usize,
    pub planner_rounds: u64,
}

/// What holds at any moment, even right after a SIGKILL: no parameter set in two nodes, no job
/// launched more often than its attempts, no node failed.
pub(super) fn check_no_repeats(fx: &Fixture, context: &str) -> Tally {
    let ids = node_ids(fx);
    // No parameter set (with its change) in two nodes.
    let mut by_params: HashMap<String, Vec<String>> = HashMap::new();
    for id in &ids {
        let spec = fx.spec(id);
        let params = spec["params"].as_object().cloned().unwrap_or_default();
        let mut key = canonical_params_key(&params);
        key.push_str(spec["changes"].as_str().unwrap_or(""));
        by_params.entry(key).or_default().push(id.clone());
    }
    let twice: Vec<&Vec<String>> = by_params.values().filter(|v| v.len() > 1).collect();
    assert!(
        twice.is_empty(),
        "{context}: parameter sets in more than one node: {twice:?}"
    );
    // Launched once per attempt, never otherwise.
    let launches = launch_counts(fx);
    let mut tally = Tally {
        nodes: ids.len(),
        ..Tally::default()
    };
    for id in &ids {
        let status = fx.status(id);
        let launched = launches.get(id).copied().unwrap_or(0);
        tally.launches += launched;
        if status == "queued" {
            assert_eq!(launched, 0, "{context}: queued {id} was launched");
            continue;
        }
        assert_ne!(
            status,
            "failed",
            "{context}: {id} failed: {}",
            fx.failure(id)
        );
        let attempts = attempts(fx, id);
        assert!(
            launched <= attempts,
            "{context}: {id} launched {launched} times for {attempts} attempt(s)"
        );
        tally.relaunches += attempts.saturating_sub(1);
        if status == "completed" {
            assert_eq!(
                launched, attempts,
                "{context}: {id} launched {launched} times for {attempts} attempt(s)"
            );
            tally.completed += 1;
        }
    }
    for id in launches.keys() {
        assert!(
            ids.contains(id),
            "{context}: a job ran for unknown node {id}"
        );
    }
    tally
}

/// After a run ended cleanly: [`check_no_repeats`], and every node once in `tree.json` and
/// once in `state.json`'s `recorded` (the rows `master_table.tsv` is rendered from). Panics
/// naming the violation.
pub(super) fn check_invariants(fx: &Fixture, context: &str) -> Tally {
    let mut tally = check_no_repeats(fx, context);
    let ids = fx.node_ids();
    assert_eq!(
        ids,
        node_ids(fx),
        "{context}: node folders without spec.json left behind"
    );
    // One row per node: tree.json and the ledger.
    let tree = fx.tree();
    let tree_ids: Vec<&str> = tree["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap())
        .collect();
    assert_eq!(tree_ids, ids, "{context}: tree.json lists each node once");
    let state = fx.state();
    let mut recorded: BTreeMap<String, usize> = BTreeMap::new();
    for r in state["recorded"].as_array().expect("recorded") {
        *recorded.entry(r.as_str().unwrap().to_string()).or_insert(0) += 1;
    }
    for id in &ids {
        let status = fx.status(id);
        let want = usize::from(status == "completed" || status == "failed");
        assert_eq!(
            recorded.get(id).copied().unwrap_or(0),
            want,
            "{context}: {id} ({status}) recorded {:?} times",
            recorded.get(id)
        );
    }
    assert_eq!(
        state["experiments_completed"],
        json!(tally.completed),
        "{context}: {state}"
    );
    assert_eq!(state["experiments_failed"], json!(0), "{context}: {state}");
    tally.planner_rounds = state["planner_rounds"].as_u64().unwrap_or(0);
    tally
}

/// Nodes: folders of `engine/nodes/` with a `spec.json` (a folder without one is a creation a
/// kill cut short, removed by the next engine).
fn node_ids(fx: &Fixture) -> Vec<String> {
    fx.node_ids()
        .into_iter()
        .filter(|id| fx.node_dir(id).join("spec.json").exists())
        .collect()
}

/// The attempt a node is at: its `job.json`'s, or its launch marker's before that exists.
fn attempts(fx: &Fixture, id: &str) -> usize {
    ["job.json", "launch.json"]
        .iter()
        .map(|f| fx.run_dir(id).join(f))
        .find(|p| p.exists())
        .and_then(|p| std::fs::read(p).ok())
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .and_then(|v| v["attempt"].as_u64())
        .unwrap_or(0) as usize
}

/// Lines of `launches.log` per node id.
pub(super) fn launch_counts(fx: &Fixture) -> HashMap<String, usize> {
    let mut out = HashMap::new();
    for line in std::fs::read_to_string(fx.work.join("launches.log"))
        .unwrap_or_default()
        .lines()
    {
        *out.entry(line.trim().to_string()).or_insert(0) += 1;
    }
    out
}

/// Runs the engine in this process until the run is over: every node finished, and either the
/// budget used or the planner out of proposals (at most `runs` engine runs: a node retried after
/// an environment error may need a resume while the engine's back-off is not in place). A run
/// that drains its queue with neither would have lost a planning round.
pub(super) async fn run_to_end(fx: &Fixture, max_experiments: usize, runs: usize) {
    for _ in 0..runs {
        let report = fx.run(None).await;
        assert_eq!(report.status, EngineStatus::Stopped, "{report:?}");
        let statuses = fx.statuses();
        let done = statuses.values().all(|s| s == "completed" || s == "failed");
        let planner_done = fx.state()["stop_reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("planner:"));
        if done && (statuses.len() >= max_experiments || planner_done) {
            return;
        }
    }
    panic!(
        "the run did not end after {runs} runs: {:?}\nstate: {}",
        fx.statuses(),
        fx.state()
    );
}

/// Pseudo-random delays from `AUTORESEARCH_TEST_SEED` (or `default`).
pub(super) fn rng(default: u64) -> (fastrand::Rng, u64) {
    let seed = std::env::var("AUTORESEARCH_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default);
    (fastrand::Rng::with_seed(seed), seed)
}

/// The number from environment variable `name`, or `default`.
pub(super) fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// A fresh workdir for a crash torture: the configuration `config` builds is resolved into it,
/// and a barrier releases its jobs in groups of four, so jobs finish together. Keep the
/// barrier alive while the workdir is used.
pub(super) fn torture_workdir(config: impl FnOnce(&Fixture) -> Value) -> (Fixture, Barrier) {
    grouped_workdir(config, 4, Duration::from_millis(60))
}

/// A fresh workdir with the configuration `config` builds resolved into it, and a barrier that
/// releases its jobs in groups of `group` (or after `patience` when fewer are waiting), so
/// jobs finish together. Keep the barrier alive while the workdir is used.
pub(super) fn grouped_workdir(
    config: impl FnOnce(&Fixture) -> Value,
    group: usize,
    patience: Duration,
) -> (Fixture, Barrier) {
    let fx = Fixture::new();
    let cfg = fx.config(config(&fx));
    fx.resolve(Some(cfg));
    let barrier = Barrier::start(&fx, Release::Groups { group, patience });
    (fx, barrier)
}

/// Starts the workdir's engine in a child process, lets it run for `delay_ms`, then freezes it
/// (SIGSTOP) so the phases on disk can be read before it is killed; `None` when the run ended
/// on its own first. Shared by the crash tortures.
pub(crate) fn spawn_and_freeze(fx: &Fixture, delay_ms: u64) -> Option<EngineChild> {
    let mut child = fx.spawn_engine();
    std::thread::sleep(Duration::from_millis(delay_ms));
    if child.wait(Duration::ZERO).is_some() {
        return None;
    }
    child.signal(libc::SIGSTOP);
    std::thread::sleep(Duration::from_millis(2));
    Some(child)
}
