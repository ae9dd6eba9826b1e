//! End-to-end runs on the real local Slurm (`scripts/slurm-local.sh up`): the quickstart with
//! `--executor slurm`, and an engine killed with SIGKILL while a Slurm job runs, whose job is
//! re-attached on resume (not resubmitted) and recorded once.
//!
//! Both are `#[ignore = "needs slurm"]` and fail when Slurm is missing; `scripts/test.sh` (CI)
//! runs them with `--include-ignored`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Fails the test, saying why, unless `sinfo` shows a usable node. The tests that call it are
/// `#[ignore = "needs slurm"]`; `scripts/test.sh` (CI) runs them with `--include-ignored`.
fn require_slurm() {
    let out = Command::new("sinfo").args(["-h", "-o", "%T"]).output();
    let states = match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
        Ok(o) => panic!(
            "slurm not available: sinfo failed: {} (run `bash scripts/slurm-local.sh up`)",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => panic!(
            "slurm not available: cannot run sinfo: {e} (run `bash scripts/slurm-local.sh up`)"
        ),
    };
    assert!(
        states
            .lines()
            .any(|s| ["idle", "mixed", "allocated", "completing"].contains(&s.trim())),
        "slurm not available: sinfo shows no usable node ({states:?}): run `bash scripts/slurm-local.sh up`"
    );
}

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_supervisor")
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap_or_default())
        .unwrap_or(serde_json::Value::Null)
}

fn squeue_lists(job_id: &str) -> bool {
    let out = Command::new("squeue")
        .args(["-h", "-j", job_id, "-o", "%i"])
        .output()
        .expect("squeue");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.trim() == job_id)
}

#[test]
#[ignore = "needs slurm"]
fn quickstart_runs_end_to_end_on_slurm() {
    require_slurm();
    let dir = tempfile::tempdir().expect("tempdir");
    let wd = dir.path().join("wd");
    let config = repo_root().join("examples/quickstart/config.json");
    let out = Command::new(bin())
        .arg("run")
        .arg(&wd)
        .arg("--config")
        .arg(&config)
        .args([
            "--executor",
            "slurm",
            "--max-experiments",
            "4",
            "--no-render",
        ])
        .env("QUICKSTART_MB", "32")
        .output()
        .expect("run supervisor");
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let state = read_json(&wd.join("state.json"));
    assert_eq!(state["experiments_completed"], 4, "{state}");
    assert!(state["best_value"].as_f64().unwrap_or(0.0) > 0.0);
    let job = read_json(&wd.join("runs/000_baseline/job.json"));
    assert_eq!(job["executor"], "slurm");
    assert!(
        job["slurm_id"].as_str().is_some_and(|s| !s.is_empty()),
        "{job}"
    );
    let stdout =
        std::fs::read_to_string(wd.join("runs/000_baseline/stdout.log")).unwrap_or_default();
    assert!(stdout.contains("METRIC throughput="), "{stdout}");
}

#[test]
#[ignore = "needs slurm"]
fn sigkill_during_a_slurm_job_reattaches_without_resubmitting() {
    require_slurm();
    let dir = tempfile::tempdir().expect("tempdir");
    let wd = dir.path().join("wd");
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).expect("mkdir");
    // Each launch appends a line; the job takes 4 s.
    let script = work.join("job.sh");
    std::fs::write(
        &script,
        "echo \"$AUTORESEARCH_NODE_ID\" >> launches.log\nsleep 4\necho METRIC score=$1\n",
    )
    .expect("script");
    let config = serde_json::json!({
        // One baseline run (the default measures the baseline 3 times for the noise floor).
        "objective": {"metric": "score", "direction": "maximize", "baseline_repeats": 1},
        "job": {"command": "sh job.sh {x}", "cwd": work, "timeout_s": 120},
        "search_space": {"x": [1, 2]},
        "baseline": {"x": 1},
        "planner": {"kind": "none"},
        "executor": {"kind": "slurm"},
        "limits": {"max_experiments": 1, "max_concurrency": 1}
    });
    let cfg_path = dir.path().join("config.json");
    std::fs::write(&cfg_path, serde_json::to_vec_pretty(&config).expect("json")).expect("write");
    let mut child = Command::new(bin())
        .arg("run")
        .arg(&wd)
        .arg("--config")
        .arg(&cfg_path)
        .arg("--no-render")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn run");
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::fs::read_to_string(work.join("launches.log"))
        .unwrap_or_default()
        .is_empty()
    {
        assert!(Instant::now() < deadline, "the Slurm job never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().expect("SIGKILL the engine");
    let _ = child.wait();
    let job = read_json(&wd.join("runs/000_baseline/job.json"));
    let slurm_id = job["slurm_id"].as_str().unwrap_or_default().to_string();
    assert!(
        !slurm_id.is_empty(),
        "job.json written before the kill: {job}"
    );
    assert!(squeue_lists(&slurm_id), "the job outlives the engine");

    let out = Command::new(bin())
        .arg("run")
        .arg(&wd)
        .arg("--no-render")
        .output()
        .expect("resume");
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let launches = std::fs::read_to_string(work.join("launches.log")).unwrap_or_default();
    assert_eq!(launches.lines().count(), 1, "launched once: {launches}");
    let job_after = read_json(&wd.join("runs/000_baseline/job.json"));
    assert_eq!(
        job_after["slurm_id"].as_str(),
        Some(slurm_id.as_str()),
        "re-attached, not resubmitted"
    );
    let state = read_json(&wd.join("state.json"));
    assert_eq!(state["experiments_completed"], 1);
    assert_eq!(
        state["recorded"].as_array().map(Vec::len),
        Some(1),
        "recorded once: {state}"
    );
    let result = read_json(&wd.join("engine/nodes/000_baseline/result.json"));
    assert_eq!(result["primary"], 1.0);
}
