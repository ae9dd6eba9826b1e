//! Interrupting and resuming the experiment workflow with real jobs: the engine SIGKILLed while
//! a job runs (it runs in a child process: `adapters-test-child`),
//! a job ending while no engine runs, a reused pid, limits across resumes, and `repair`.
//!
//! Jobs append their node id to `launches.log` in their cwd each time they start, so "launched
//! exactly once" is read from there.

use crate::support;

use std::collections::HashMap;
use std::time::Duration;

use autoresearch_adapters::repair::repair;
use autoresearch_engine::EngineStatus;
use serde_json::{Value, json};
use support::{Fixture, alive, gated_job, kill_group, wait_until};

/// `planner.kind = none`: the baseline then `seeds` (names), each running `script {x}`.
fn batch(fx: &Fixture, script_body: &str, seeds: &[&str]) -> Value {
    let script = fx.script("job.sh", script_body);
    let seeds: Vec<Value> = seeds
        .iter()
        .enumerate()
        .map(|(i, n)| json!({ "name": n, "params": { "x": i + 2 } }))
        .collect();
    json!({
        "objective": { "metric": "score", "direction": "maximize" },
        "job": { "command": format!("sh {} {{x}}", script.display()), "timeout_s": 120 },
        "search_space": { "x": { "min": 1, "max": 100, "type": "int" } },
        "baseline": { "x": 1 },
        "seeds": seeds,
        "planner": { "kind": "none" },
        "limits": { "max_concurrency": 1, "max_experiments": 100, "patience": 100 }
    })
}

/// Waits until the node named `name` exists, is `running` and its job has started; returns
/// its id.
fn wait_running(fx: &Fixture, name: &str) -> String {
    let mut id = None;
    let ok = wait_until(Duration::from_secs(30), || {
        let found = fx
            .node_ids()
            .into_iter()
            .find(|i| fx.node_dir(i).join("spec.json").exists() && fx.spec(i)["name"] == name);
        if let Some(i) = &found {
            id = found.clone();
            return fx.status(i) == "running" && fx.launches_of(i) == 1;
        }
        false
    });
    assert!(
        ok,
        "{name} never ran: {:?}\n{}",
        fx.statuses(),
        fx.child_log()
    );
    id.unwrap()
}

/// Ids in the order they appear in `state.json`'s `recorded`, with their counts.
fn recorded_counts(fx: &Fixture) -> HashMap<String, usize> {
    let mut out = HashMap::new();
    for r in fx.state()["recorded"].as_array().expect("recorded") {
        *out.entry(r.as_str().unwrap().to_string()).or_insert(0) += 1;
    }
    out
}

/// Every node appears exactly once in tree.json, recorded once, and (if started) launched
/// `launches` times.
fn assert_once_each(fx: &Fixture) {
    let tree = fx.tree();
    let tree_ids: Vec<&str> = tree["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap())
        .collect();
    let ids = fx.node_ids();
    assert_eq!(tree_ids, ids, "tree.json lists each node once");
    let rec = recorded_counts(fx);
    for id in &ids {
        let status = fx.status(id);
        if status == "completed" || status == "failed" {
            assert_eq!(rec.get(id), Some(&1), "{id} recorded once: {rec:?}");
        } else {
            assert_eq!(rec.get(id), None, "{id} ({status}) recorded: {rec:?}");
        }
    }
    let state = fx.state();
    let completed = ids.iter().filter(|i| fx.status(i) == "completed").count();
    let failed = ids.iter().filter(|i| fx.status(i) == "failed").count();
    assert_eq!(state["experiments_completed"], json!(completed), "{state}");
    assert_eq!(state["experiments_failed"], json!(failed), "{state}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkilled_engine_reattaches_and_records_once() {
    let fx = Fixture::new();
    let cfg = fx.config(batch(&fx, &gated_job("4$1"), &["second"]));
    fx.resolve(Some(cfg));
    let mut child = fx.spawn_engine();
    let base = wait_running(&fx, "baseline");
    child.kill9();
    let pid = fx.job_pid(&base).expect("pid");
    assert!(alive(pid), "the job must survive the engine");
    assert_eq!(fx.status(&base), "running");

    // Resume while the job still runs, then let it finish.
    let session = fx.session(None);
    let handle = tokio::spawn(support::run_session(session));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(fx.launches_of(&base), 1, "relaunched on resume");
    assert_eq!(fx.status(&base), "running");
    std::fs::write(fx.work_file("release"), "").unwrap();
    let report = handle.await.unwrap();
    assert_eq!(report.status, EngineStatus::Stopped);

    let second = fx.id_of("second");
    assert_eq!(fx.launches_of(&base), 1);
    assert_eq!(fx.launches_of(&second), 1);
    assert_eq!(fx.status(&base), "completed", "{}", fx.failure(&base));
    assert_eq!(fx.result(&base)["primary"], json!(41.0));
    assert_eq!(fx.result(&second)["primary"], json!(42.0));
    assert_eq!(fx.job_record(&base)["attempt"], json!(1));
    assert!(!fx.run_dir(&base).join("attempt-1").exists());
    assert_once_each(&fx);
    let state = fx.state();
    assert_eq!(state["experiments_completed"], json!(2), "{state}");
    assert_eq!(state["experiments_started"], json!(2), "{state}");
    assert_eq!(state["best_node"], json!(second), "{state}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_that_ends_while_no_engine_runs_is_collected_on_resume() {
    let fx = Fixture::new();
    let cfg = fx.config(batch(&fx, &gated_job("7$1"), &[]));
    fx.resolve(Some(cfg));
    let mut child = fx.spawn_engine();
    let base = wait_running(&fx, "baseline");
    child.kill9();
    std::fs::write(fx.work_file("release"), "").unwrap();
    let exit_code = fx.run_dir(&base).join("exit_code");
    assert!(
        wait_until(Duration::from_secs(10), || exit_code.exists()),
        "the job did not finish"
    );
    assert_eq!(fx.status(&base), "running", "nobody watched it end");

    let report = fx.run(None).await;
    assert_eq!(report.status, EngineStatus::Stopped);
    assert_eq!(fx.status(&base), "completed", "{}", fx.failure(&base));
    assert_eq!(fx.result(&base)["primary"], json!(71.0));
    assert_eq!(fx.result(&base)["exit_code"], json!(0));
    assert_eq!(fx.launches_of(&base), 1, "relaunched");
    assert_eq!(fx.job_record(&base)["attempt"], json!(1));
    assert_once_each(&fx);
    assert_eq!(fx.state()["best_value"], json!(71.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reused_pid_is_not_mistaken_for_the_job() {
    let fx = Fixture::new();
    let cfg = fx.config(batch(&fx, &gated_job("9$1"), &[]));
    fx.resolve(Some(cfg));
    let mut child = fx.spawn_engine();
    let base = wait_running(&fx, "baseline");
    child.kill9();
    let pgid = fx.job_pid(&base).expect("pid");
    assert!(kill_group(pgid), "could not kill the job");
    assert!(!fx.run_dir(&base).join("exit_code").exists());

    // An unrelated live process takes the job's place in job.json.
    let other = support::ChildGuard(
        std::process::Command::new("sleep")
            .arg("1000")
            .spawn()
            .unwrap(),
    );
    let other_pid = other.0.id();
    let job_path = fx.run_dir(&base).join("job.json");
    let mut job = support::read_json(&job_path);
    let ticks = job["pid_start_ticks"].clone();
    assert!(ticks.as_u64().is_some(), "{job}");
    job["pid"] = json!(other_pid);
    std::fs::write(&job_path, serde_json::to_vec_pretty(&job).unwrap()).unwrap();
    std::fs::write(fx.work_file("release"), "").unwrap();

    let report = tokio::time::timeout(Duration::from_secs(30), fx.run(None))
        .await
        .expect("the resumed engine waited on the unrelated process");
    let other_alive = alive(other_pid as i32);
    drop(other);
    assert!(other_alive, "the unrelated process was signalled");
    assert_eq!(report.status, EngineStatus::Stopped);
    assert_eq!(fx.status(&base), "completed", "{}", fx.failure(&base));
    assert_eq!(fx.result(&base)["primary"], json!(91.0));
    let job = fx.job_record(&base);
    assert_eq!(job["attempt"], json!(2), "{job}");
    assert_ne!(job["pid"], json!(other_pid), "{job}");
    let archived = fx.run_dir(&base).join("attempt-1");
    assert!(archived.is_dir(), "runs/{base}/attempt-1 missing");
    assert_eq!(
        support::read_json(&archived.join("job.json"))["pid"],
        json!(other_pid)
    );
    assert_eq!(fx.launches_of(&base), 2, "relaunched once as attempt 2");
    assert_once_each(&fx);
}

/// SIGKILLs the engine at pseudo-random moments until the run is done, then checks that every
/// job was launched once and every result recorded once. `AUTORESEARCH_TEST_SEED` picks other
/// moments (for stress runs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_loses_and_repeats_nothing() {
    let fx = Fixture::new();
    let body = "echo \"$AUTORESEARCH_NODE_ID\" >> launches.log\nsleep 0.1\necho METRIC score=$1\n";
    let seeds = ["s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8"];
    let mut cfg = batch(&fx, body, &seeds);
    cfg["limits"]["max_concurrency"] = json!(2);
    fx.resolve(Some(fx.config(cfg)));
    let seed = std::env::var("AUTORESEARCH_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20261123);
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut kills = 0;
    for round in 0..30 {
        let mut child = fx.spawn_engine();
        // Early rounds also hit the engine's start (creating nodes, first checkpoint).
        let delay = Duration::from_millis(rng.u64(0..if round < 3 { 60 } else { 250 }));
        std::thread::sleep(delay);
        if child.wait(Duration::ZERO).is_some() {
            break; // finished on its own
        }
        child.kill9();
        kills += 1;
        eprintln!("round {round}: killed after {delay:?}: {:?}", fx.statuses());
    }
    assert!(kills >= 3, "only {kills} kills");
    let report = fx.run(None).await;
    assert_eq!(report.status, EngineStatus::Stopped, "{}", fx.child_log());
    let names: Vec<String> = fx
        .node_ids()
        .iter()
        .map(|id| fx.spec(id)["name"].as_str().unwrap().to_string())
        .collect();
    let mut want = vec!["baseline".to_string()];
    want.extend(seeds.iter().map(|s| s.to_string()));
    assert_eq!(names, want, "seed {seed}");
    for id in fx.node_ids() {
        assert_eq!(fx.status(&id), "completed", "{id}: {}", fx.child_log());
        let attempts = fx.job_record(&id)["attempt"].as_u64().unwrap() as usize;
        assert_eq!(
            fx.launches_of(&id),
            attempts,
            "{id} launched {attempts} time(s)"
        );
        assert_eq!(attempts, 1, "{id}: the engine's death never kills a job");
    }
    assert_once_each(&fx);
    assert_eq!(fx.state()["experiments_started"], json!(want.len()));
}

/// A search run whose score is `x` (so it keeps improving), with a short sleep.
fn search(fx: &Fixture, max_experiments: u64, patience: u32, constant: bool) -> Value {
    let score = if constant { "1" } else { "$1" };
    let body = format!(
        "echo \"$AUTORESEARCH_NODE_ID\" >> launches.log\nsleep 0.2\necho METRIC score={score}\n"
    );
    let script = fx.script("job.sh", &body);
    json!({
        "objective": { "metric": "score", "direction": "maximize" },
        "job": { "command": format!("sh {} {{x}}", script.display()), "timeout_s": 60 },
        "search_space": { "x": { "min": 1, "max": 100000, "type": "int" },
                          "y": { "min": 1, "max": 100000, "type": "int" } },
        "baseline": { "x": 500, "y": 500 },
        "planner": { "kind": "search", "seed": 1 },
        "limits": { "max_concurrency": 1, "max_experiments": max_experiments,
                    "patience": patience }
    })
}

fn assert_launched_once(fx: &Fixture) {
    for id in fx.node_ids() {
        let expect = usize::from(fx.status(&id) != "queued");
        assert_eq!(fx.launches_of(&id), expect, "{id} ({})", fx.status(&id));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_experiments_holds_across_two_resumes_and_can_be_raised() {
    let fx = Fixture::new();
    let cfg = fx.config(search(&fx, 6, 100, false));
    let (report, fired) = fx.run_until(Some(cfg), |f| f.started() >= 2).await;
    assert!(fired && report.status == EngineStatus::Interrupted);
    assert!(fx.started() <= 6);
    let (report, fired) = fx.run_until(None, |f| f.started() >= 4).await;
    assert!(fired && report.status == EngineStatus::Interrupted);
    assert!(fx.started() <= 6);
    let report = fx.run(None).await;
    assert_eq!(report.status, EngineStatus::Stopped);
    assert_eq!(fx.started(), 6, "{:?}", fx.statuses());
    let state = fx.state();
    assert_eq!(state["experiments_started"], json!(6), "{state}");
    assert!(
        state["stop_reason"]
            .as_str()
            .is_some_and(|r| r.contains("max_experiments")),
        "{state}"
    );
    assert_launched_once(&fx);
    assert_once_each(&fx);

    // Resuming again changes nothing; a new total lets it go on to that total.
    fx.run(None).await;
    assert_eq!(fx.started(), 6, "{:?}", fx.statuses());
    let raised = fx.config(search(&fx, 8, 100, false));
    let report = fx.run(Some(raised)).await;
    assert_eq!(report.status, EngineStatus::Stopped);
    assert_eq!(fx.started(), 8, "{:?}", fx.statuses());
    assert_eq!(fx.state()["experiments_started"], json!(8));
    assert_eq!(
        support::read_json(&fx.path("config.json"))["limits"]["max_experiments"],
        json!(8)
    );
    assert_launched_once(&fx);
    assert_once_each(&fx);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patience_holds_across_two_resumes() {
    let fx = Fixture::new();
    // Constant score: the baseline is the only improvement, then 3 in a row without one.
    let cfg = fx.config(search(&fx, 50, 3, true));
    let (report, fired) = fx.run_until(Some(cfg), |f| f.started() >= 2).await;
    assert!(fired && report.status == EngineStatus::Interrupted);
    let (report, fired) = fx.run_until(None, |f| f.started() >= 3).await;
    assert!(fired && report.status == EngineStatus::Interrupted);
    let report = fx.run(None).await;
    assert_eq!(report.status, EngineStatus::Stopped);
    assert_eq!(fx.started(), 4, "{:?}", fx.statuses());
    let state = fx.state();
    assert_eq!(state["plateau"], json!(3), "{state}");
    assert_eq!(state["experiments_started"], json!(4), "{state}");
    assert!(
        state["stop_reason"]
            .as_str()
            .is_some_and(|r| r.contains("plateau") || r.contains("patience")),
        "{state}"
    );
    assert_launched_once(&fx);
    assert_once_each(&fx);
}

/// Interrupts with the first node running and the seeds queued, damages the checkpoint with
/// `damage`, repairs, and resumes to completion.
async fn repair_case(
    damage: impl FnOnce(&Fixture),
) -> (Fixture, autoresearch_adapters::repair::RepairReport) {
    let fx = Fixture::new();
    let cfg = fx.config(batch(&fx, &gated_job("1$1"), &["s1", "s2"]));
    let (report, fired) = fx
        .run_until(Some(cfg), |f| {
            f.node_ids()
                .first()
                .is_some_and(|b| f.status(b) == "running" && f.launches_of(b) == 1)
        })
        .await;
    assert!(fired && report.status == EngineStatus::Interrupted);
    let base = fx.id_of("baseline");
    assert_eq!(fx.status(&base), "running");
    damage(&fx);
    let rep = repair(&fx.wd, false).expect("repair");
    assert!(rep.written);
    let s1 = fx.id_of("s1");
    let s2 = fx.id_of("s2");
    assert_eq!(rep.running, vec![base.clone()], "{rep:?}");
    assert_eq!(rep.queued, vec![s1.clone(), s2.clone()], "{rep:?}");
    let cp = fx.checkpoint();
    let ids = |k: &str| -> Vec<String> {
        cp[k]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(ids("running"), vec![base.clone()], "{cp}");
    assert_eq!(ids("queued"), vec![s1.clone(), s2.clone()], "{cp}");
    assert_eq!(cp["status"], "interrupted");
    assert!(fx.path("engine/tree.json").is_file());

    std::fs::write(fx.work_file("release"), "").unwrap();
    let report = fx.run(None).await;
    assert_eq!(report.status, EngineStatus::Stopped);
    for id in [&base, &s1, &s2] {
        assert_eq!(fx.status(id), "completed", "{id}: {}", fx.failure(id));
        assert_eq!(fx.launches_of(id), 1, "{id}");
    }
    assert_once_each(&fx);
    (fx, rep)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repair_rebuilds_a_deleted_checkpoint() {
    let (fx, rep) = repair_case(|fx| {
        std::fs::remove_file(fx.path("engine/checkpoint.json")).unwrap();
    })
    .await;
    assert!(rep.old_checkpoint_problem.is_some(), "{rep:?}");
    // Only the tree existed to be backed up.
    assert_eq!(rep.backups.len(), 1, "{rep:?}");
    assert!(
        rep.backups[0]
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("tree.json.bak-")
    );
    assert!(rep.backups[0].is_file());
    drop(fx);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repair_rebuilds_a_corrupted_checkpoint_and_backs_it_up() {
    let garbage = b"{ \"schema_version\": 1, \"queued\": [ tor";
    let (_fx, rep) = repair_case(|fx| {
        std::fs::write(fx.path("engine/checkpoint.json"), garbage).unwrap();
    })
    .await;
    assert!(rep.old_checkpoint_problem.is_some(), "{rep:?}");
    let backup = rep
        .backups
        .iter()
        .find(|b| {
            b.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("checkpoint.json.bak-")
        })
        .unwrap_or_else(|| panic!("no checkpoint backup: {rep:?}"));
    assert_eq!(std::fs::read(backup).unwrap(), garbage);
}

/// The engine died while creating the first run's nodes: the baseline's files are on disk, the
/// seeds' are not, and no checkpoint was written yet. Resuming must still run every seed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_while_creating_the_first_nodes_loses_no_seed() {
    use autoresearch_adapters::model::NodeSpec;
    use autoresearch_adapters::workdir::Workdir;
    use autoresearch_adapters::workflow::BASELINE_PRIORITY;
    use autoresearch_adapters::workflow::nodes::NodeStore;

    let fx = Fixture::new();
    let body = "echo \"$AUTORESEARCH_NODE_ID\" >> launches.log\necho METRIC score=$1\n";
    let config = fx.resolve(Some(fx.config(batch(&fx, body, &["s1", "s2"]))));
    // What the first engine wrote before it was killed (as `fresh_specs` writes it).
    let store = NodeStore::load(&Workdir::new(&fx.wd)).unwrap();
    let params = config.complete_params(&config.baseline);
    store
        .create(NodeSpec {
            node_id: store.allocate_id("baseline"),
            name: "baseline".into(),
            parent_id: None,
            hypothesis: "the configuration as given".into(),
            command: config.render(&params).unwrap(),
            params,
            changes: None,
            priority: BASELINE_PRIORITY,
            created_at: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
        })
        .unwrap();
    assert!(!fx.path("engine/checkpoint.json").exists());

    let report = fx.run(None).await;
    assert_eq!(report.status, EngineStatus::Stopped);
    let names: Vec<String> = fx
        .node_ids()
        .iter()
        .map(|id| fx.spec(id)["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["baseline", "s1", "s2"], "{:?}", fx.statuses());
    for id in fx.node_ids() {
        assert_eq!(fx.status(&id), "completed", "{id}");
        assert_eq!(fx.launches_of(&id), 1, "{id}");
    }
    assert_eq!(fx.state()["baseline_node"], json!(fx.id_of("baseline")));
    assert_once_each(&fx);
}

/// A job re-attached after the engine was SIGKILLed still has its timeout (counted from its
/// start), and the timeout kills its whole process group.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reattached_job_still_times_out_and_its_group_is_killed() {
    let fx = Fixture::new();
    let body = "echo \"$AUTORESEARCH_NODE_ID\" >> launches.log\n\
                sleep 1000 & echo $! >> kids\nsleep 1000 & echo $! >> kids\nwait\n";
    let mut cfg = batch(&fx, body, &[]);
    cfg["job"]["timeout_s"] = json!(3);
    fx.resolve(Some(fx.config(cfg)));
    let mut child = fx.spawn_engine();
    let base = wait_running(&fx, "baseline");
    child.kill9();
    let pgid = fx.job_pid(&base).expect("pid");
    assert!(alive(pgid));

    let started = std::time::Instant::now();
    let report = tokio::time::timeout(Duration::from_secs(30), fx.run(None))
        .await
        .expect("the re-attached job never timed out");
    assert_eq!(report.status, EngineStatus::Stopped);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    let f = fx.failure(&base);
    assert_eq!(f["kind"], "timeout", "{f}");
    let survivors = support::group_members(pgid);
    assert!(survivors.is_empty(), "group {pgid} survived: {survivors:?}");
    let kids = std::fs::read_to_string(fx.work_file("kids")).unwrap();
    for k in kids.lines() {
        assert!(!alive(k.trim().parse().unwrap()), "child {k} survived");
    }
    assert_eq!(fx.launches_of(&base), 1);
    assert_once_each(&fx);
}

/// The engine died between spawning the job and writing `job.json` (status still `launching`):
/// on resume the job is found through the wrapper's `pid` file and re-attached, not launched
/// again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn death_between_spawn_and_job_record_does_not_relaunch() {
    let fx = Fixture::new();
    let cfg = fx.config(batch(&fx, &gated_job("5$1"), &[]));
    fx.resolve(Some(cfg));
    let mut child = fx.spawn_engine();
    let base = wait_running(&fx, "baseline");
    child.kill9();
    // What a death right after the spawn leaves: no job record, status `launching`.
    std::fs::remove_file(fx.run_dir(&base).join("job.json")).unwrap();
    std::fs::write(fx.node_dir(&base).join("status.txt"), "launching\n").unwrap();
    assert!(fx.run_dir(&base).join("launch.json").is_file());
    let pid = fx.job_pid(&base).unwrap();

    let session = fx.session(None);
    let handle = tokio::spawn(support::run_session(session));
    assert!(
        support::wait_until_async(Duration::from_secs(10), || fx
            .run_dir(&base)
            .join("job.json")
            .is_file())
        .await,
        "the job record was not rebuilt"
    );
    std::fs::write(fx.work_file("release"), "").unwrap();
    let report = handle.await.unwrap();
    assert_eq!(report.status, EngineStatus::Stopped);
    assert_eq!(fx.status(&base), "completed", "{}", fx.failure(&base));
    assert_eq!(fx.result(&base)["primary"], json!(51.0));
    assert_eq!(fx.launches_of(&base), 1, "relaunched");
    let job = fx.job_record(&base);
    assert_eq!(job["pid"], json!(pid), "{job}");
    assert_eq!(job["attempt"], json!(1), "{job}");
    assert_once_each(&fx);
}
