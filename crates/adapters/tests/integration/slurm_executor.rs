//! Tests of the Slurm executor against a real Slurm (start one with `scripts/slurm-local.sh up`).
//!
//! The cluster tests are `#[ignore = "needs slurm"]` and fail when Slurm is missing;
//! `scripts/test.sh` (CI) starts a local Slurm and runs them with `--include-ignored`. The retry
//! tests at the end use fake Slurm commands and always run.
//!
//! The tests are written for a small node (2 CPUs, jobs using 1 CPU each): jobs may have to wait
//! in the queue, so every wait is bounded generously.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use autoresearch_adapters::executor::slurm::{SUBMITTING_MARKER, SlurmConfig, SlurmExecutor};
use autoresearch_adapters::executor::{
    ExecError, Executor, JobEnd, JobRequest, Probe, WaitOutcome, read_exit_code,
};
use autoresearch_adapters::model::JobRecord;
use tokio_util::sync::CancellationToken;

/// Longest a test waits for anything on the cluster (jobs may be queued behind others).
const PATIENCE: Duration = Duration::from_secs(180);

// ---------------------------------------------------------------------------------------------
// helpers

/// Fails the test, saying why, unless a usable Slurm is here. Tests that call it are
/// `#[ignore = "needs slurm"]`: `cargo test` lists them as ignored, and `scripts/test.sh` (CI) runs
/// them with `--include-ignored` after starting a local Slurm.
async fn require_slurm() {
    if let Err(why) = slurm_check().await {
        panic!("slurm not available: {why} (run `bash scripts/slurm-local.sh up`)");
    }
}

async fn slurm_check() -> Result<(), String> {
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::process::Command::new("sinfo")
            .args(["--noheader", "--format=%T"])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .map_err(|_| "sinfo did not answer within 30 s".to_string())?
    .map_err(|e| format!("cannot run sinfo: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "sinfo failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let states = String::from_utf8_lossy(&out.stdout).to_string();
    if states
        .lines()
        .any(|s| ["idle", "mixed", "allocated", "completing"].contains(&s.trim()))
    {
        Ok(())
    } else {
        Err(format!(
            "no usable node (sinfo states: {:?})",
            states.trim()
        ))
    }
}

/// Runs a command and returns its stdout (panics on failure to run).
async fn cmd(program: &str, args: &[&str]) -> (bool, String, String) {
    let out = tokio::process::Command::new(program)
        .args(args)
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Ids of all jobs Slurm knows (in any state) with this name.
async fn jobs_named(name: &str) -> Vec<String> {
    let (ok, out, err) = cmd(
        "squeue",
        &[
            "--noheader",
            "--states=all",
            &format!("--name={name}"),
            "--format=%i",
        ],
    )
    .await;
    assert!(ok, "squeue --name failed: {err}");
    out.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

/// Whether `squeue -j <id>` still lists the job (queued, running, completing...).
async fn squeue_lists(id: &str) -> bool {
    let (ok, out, err) = cmd("squeue", &["--noheader", "-j", id, "--format=%T"]).await;
    if !ok {
        assert!(
            err.contains("Invalid job id"),
            "squeue -j {id} failed: {err}"
        );
        return false;
    }
    !out.trim().is_empty()
}

/// `JobState` from `scontrol show job`.
async fn scontrol_state(id: &str) -> String {
    let (_, out, _) = cmd("scontrol", &["show", "job", "-o", id]).await;
    out.split_whitespace()
        .find_map(|t| t.strip_prefix("JobState="))
        .unwrap_or("?")
        .to_string()
}

/// A workdir with one run dir holding `command.sh`.
struct Fixture {
    _tmp: tempfile::TempDir,
    req: JobRequest,
}

impl Fixture {
    fn new(name: &str, command: &str) -> Fixture {
        // Node ids repeat across workdirs; a random suffix keeps test jobs apart on the cluster.
        let node_id = format!(
            "9{:02}_{name}_{}",
            fastrand::u8(..100),
            fastrand::u32(100_000..999_999)
        );
        let tmp = tempfile::Builder::new()
            .prefix("slurm-exec-test")
            .tempdir()
            .expect("tempdir");
        let run_dir = tmp.path().join("runs").join(&node_id);
        std::fs::create_dir_all(&run_dir).expect("run dir");
        std::fs::write(run_dir.join("command.sh"), command).expect("command.sh");
        let req = JobRequest {
            node_id: node_id.clone(),
            run_dir: run_dir.clone(),
            cwd: tmp.path().to_path_buf(),
            env: vec![
                (
                    "AUTORESEARCH_RUN_DIR".into(),
                    run_dir.to_string_lossy().into(),
                ),
                ("AUTORESEARCH_NODE_ID".into(), node_id),
            ],
            timeout: Some(Duration::from_secs(600)),
            attempt: 1,
            log_limit_bytes: 64 << 20,
        };
        Fixture { _tmp: tmp, req }
    }

    fn run_dir(&self) -> &Path {
        &self.req.run_dir
    }

    fn read(&self, file: &str) -> String {
        std::fs::read_to_string(self.run_dir().join(file)).unwrap_or_default()
    }

    fn record_on_disk(&self) -> JobRecord {
        let bytes = std::fs::read(self.run_dir().join("job.json")).expect("job.json");
        serde_json::from_slice(&bytes).expect("job.json parses")
    }
}

fn slurm_id(rec: &JobRecord) -> String {
    rec.slurm_id.clone().expect("slurm_id in the record")
}

fn executor(cancel_on_stop: bool) -> SlurmExecutor {
    SlurmExecutor::new(SlurmConfig::default(), cancel_on_stop)
}

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < PATIENCE,
            "timed out waiting for {what} after {:?}",
            PATIENCE
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_bounded(
    exec: &SlurmExecutor,
    req: &JobRequest,
    rec: &JobRecord,
    stop: CancellationToken,
) -> WaitOutcome {
    tokio::time::timeout(PATIENCE, exec.wait(req, rec, stop))
        .await
        .expect("wait did not return in time")
        .expect("wait failed")
}

/// A directory with the real Slurm commands linked in, for fake `sbatch` variants.
fn bin_dir_with_real_commands(dir: &Path) {
    for name in ["squeue", "scontrol", "scancel", "sbatch"] {
        let real = which(name).unwrap_or_else(|| panic!("{name} not on PATH"));
        let link = if name == "sbatch" {
            dir.join("real-sbatch")
        } else {
            dir.join(name)
        };
        std::os::unix::fs::symlink(real, link).expect("symlink");
    }
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    })
}

fn write_script(path: &Path, body: &str) {
    std::fs::write(path, body).expect("write script");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

// ---------------------------------------------------------------------------------------------
// against the cluster

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs slurm"]
async fn job_succeeds_with_output_in_run_dir() {
    require_slurm().await;
    let mut fx = Fixture::new(
        "ok",
        "echo \"METRIC score=42.5\"\nprintf 'VAR=%s\\n' \"$TRICKY\"\necho to-stderr >&2\nexit 0\n",
    );
    let tricky = "it's a \"test\" with $HOME, `ticks` and \\ backslash";
    fx.req.env.push(("TRICKY".into(), tricky.into()));
    let exec = executor(false);
    let rec = exec.launch(&fx.req).await.expect("launch");

    assert_eq!(rec.executor, "slurm");
    let id = slurm_id(&rec);
    assert_eq!(rec.job_id, format!("slurm:{id}"));
    assert_eq!(rec.attempt, 1);
    assert!(!rec.host.is_empty());
    assert!(humantime::parse_rfc3339_weak(&rec.started_at).is_ok());
    assert_eq!(
        fx.record_on_disk(),
        rec,
        "job.json holds the returned record"
    );
    assert!(
        !fx.run_dir().join(SUBMITTING_MARKER).exists(),
        "marker removed"
    );
    let script = fx.read("job.sbatch");
    assert!(
        script.contains(&format!("#SBATCH --job-name={}", fx.req.node_id)),
        "{script}"
    );
    assert!(script.contains("#SBATCH --time=11"), "{script}");

    let out = wait_bounded(&exec, &fx.req, &rec, CancellationToken::new()).await;
    assert_eq!(out, WaitOutcome::Ended(JobEnd::Exited { code: 0 }));
    assert_eq!(read_exit_code(fx.run_dir()), Some(0));
    let stdout = fx.read("stdout.log");
    assert!(
        stdout.contains("METRIC score=42.5"),
        "stdout.log: {stdout:?}"
    );
    assert!(
        stdout.contains(&format!("VAR={tricky}\n")),
        "env quoting: {stdout:?}"
    );
    assert!(fx.read("stderr.log").contains("to-stderr"));
    assert!(fx.run_dir().join("pid").exists(), "wrapper wrote pid");
    assert!(
        fx.run_dir().join(format!("slurm-{id}.out")).exists(),
        "slurm output file in the run dir"
    );
    assert_eq!(
        exec.probe(&fx.req, &rec).await.expect("probe"),
        Probe::Ended(0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs slurm"]
async fn nonzero_exit_is_reported() {
    require_slurm().await;
    let fx = Fixture::new("fails", "echo partial\nexit 3\n");
    let exec = executor(false);
    let rec = exec.launch(&fx.req).await.expect("launch");
    let out = wait_bounded(&exec, &fx.req, &rec, CancellationToken::new()).await;
    assert_eq!(out, WaitOutcome::Ended(JobEnd::Exited { code: 3 }));
    assert_eq!(read_exit_code(fx.run_dir()), Some(3));
    assert_eq!(
        exec.probe(&fx.req, &rec).await.expect("probe"),
        Probe::Ended(3)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs slurm"]
async fn stop_cancels_the_slurm_job() {
    require_slurm().await;
    let fx = Fixture::new("cancel", "sleep 300\n");
    let exec = executor(true);
    let rec = exec.launch(&fx.req).await.expect("launch");
    let id = slurm_id(&rec);
    let pid_file = fx.run_dir().join("pid");
    wait_for("the job to start", || pid_file.exists()).await;

    let stop = CancellationToken::new();
    let waiter = {
        let (exec, req, rec, stop) = (exec.clone(), fx.req.clone(), rec.clone(), stop.clone());
        tokio::spawn(async move { wait_bounded(&exec, &req, &rec, stop).await })
    };
    tokio::time::sleep(Duration::from_millis(800)).await;
    stop.cancel();
    let out = waiter.await.expect("wait task");
    assert_eq!(out, WaitOutcome::Ended(JobEnd::Cancelled));
    assert!(!squeue_lists(&id).await, "squeue -j {id} still lists it");
    assert_eq!(scontrol_state(&id).await, "CANCELLED");
    assert!(
        matches!(read_exit_code(fx.run_dir()), None | Some(143)),
        "the wrapper is killed, or records its command's death by SIGTERM"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs slurm"]
async fn stop_without_cancel_detaches_and_kill_ends_it() {
    require_slurm().await;
    let fx = Fixture::new("detach", "sleep 300\n");
    let exec = executor(false);
    let rec = exec.launch(&fx.req).await.expect("launch");
    let id = slurm_id(&rec);
    let stop = CancellationToken::new();
    stop.cancel();
    let out = wait_bounded(&exec, &fx.req, &rec, stop).await;
    assert_eq!(out, WaitOutcome::Detached);
    assert!(squeue_lists(&id).await, "a detached job keeps running");
    assert_eq!(
        exec.probe(&fx.req, &rec).await.expect("probe"),
        Probe::Running
    );

    exec.kill(&rec).await.expect("kill");
    assert!(!squeue_lists(&id).await, "squeue -j {id} still lists it");
    assert_eq!(scontrol_state(&id).await, "CANCELLED");
    // The wrapper is killed too (no exit_code: Dead), or outlives its command by a moment and
    // records the SIGTERM (143).
    match exec.probe(&fx.req, &rec).await.expect("probe") {
        Probe::Dead(reason) => assert!(reason.contains("cancelled"), "{reason}"),
        Probe::Ended(143) => {}
        other => panic!("expected Dead or Ended(143) after kill, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs slurm"]
async fn timeout_cancels_the_slurm_job() {
    require_slurm().await;
    let mut fx = Fixture::new("timeout", "sleep 300\n");
    fx.req.timeout = Some(Duration::from_secs(3));
    let exec = executor(false);
    let start = Instant::now();
    let rec = exec.launch(&fx.req).await.expect("launch");
    let id = slurm_id(&rec);
    assert!(fx.read("job.sbatch").contains("#SBATCH --time=2\n"));
    let out = wait_bounded(&exec, &fx.req, &rec, CancellationToken::new()).await;
    assert_eq!(out, WaitOutcome::Ended(JobEnd::TimedOut));
    assert!(
        start.elapsed() >= Duration::from_secs(2),
        "timed out too early"
    );
    assert!(
        start.elapsed() < Duration::from_secs(60),
        "timeout took {:?}",
        start.elapsed()
    );
    assert!(!squeue_lists(&id).await, "squeue -j {id} still lists it");
    assert!(
        matches!(read_exit_code(fx.run_dir()), None | Some(143)),
        "the wrapper is killed, or records its command's death by SIGTERM"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs slurm"]
async fn a_new_instance_reattaches_without_resubmitting() {
    require_slurm().await;
    let fx = Fixture::new("reattach", "sleep 4\necho \"METRIC x=1\"\nexit 7\n");
    {
        let first = executor(false);
        first.launch(&fx.req).await.expect("launch");
        // The first engine goes away here.
    }
    let rec = fx.record_on_disk();
    let id = slurm_id(&rec);
    let second = executor(false);
    assert_eq!(
        second.probe(&fx.req, &rec).await.expect("probe"),
        Probe::Running
    );
    let out = wait_bounded(&second, &fx.req, &rec, CancellationToken::new()).await;
    assert_eq!(out, WaitOutcome::Ended(JobEnd::Exited { code: 7 }));
    assert!(fx.read("stdout.log").contains("METRIC x=1"));

    // Launching the same attempt again (a resume that missed the record) adopts the job.
    let again = second.launch(&fx.req).await.expect("launch again");
    assert_eq!(slurm_id(&again), id);
    assert_eq!(
        jobs_named(&fx.req.node_id).await,
        vec![id],
        "exactly one job with this name"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs slurm"]
async fn find_by_name_finds_the_job() {
    require_slurm().await;
    let fx = Fixture::new("findme", "sleep 1\n");
    let exec = executor(false);
    assert_eq!(
        exec.find_by_name(&fx.req.node_id).await.expect("find"),
        None
    );
    assert_eq!(exec.find_job(&fx.req).await.expect("find_job"), None);
    let rec = exec.launch(&fx.req).await.expect("launch");
    let id = slurm_id(&rec);
    assert_eq!(
        exec.find_by_name(&fx.req.node_id).await.expect("find"),
        Some(id.clone())
    );
    assert_eq!(
        exec.find_job(&fx.req).await.expect("find_job"),
        Some(id.clone())
    );
    // Another attempt of the same node is a different submission.
    let mut next = fx.req.clone();
    next.attempt = 2;
    assert_eq!(exec.find_job(&next).await.expect("find_job"), None);
    let out = wait_bounded(&exec, &fx.req, &rec, CancellationToken::new()).await;
    assert_eq!(out, WaitOutcome::Ended(JobEnd::Exited { code: 0 }));
    // Still found after it ended (Slurm keeps it for MinJobAge).
    assert_eq!(
        exec.find_by_name(&fx.req.node_id).await.expect("find"),
        Some(id)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs slurm"]
async fn sbatch_failing_after_queueing_is_not_resubmitted() {
    require_slurm().await;
    let bin = tempfile::tempdir().expect("tempdir");
    bin_dir_with_real_commands(bin.path());
    // Queues the job, then fails the way a lost controller reply does.
    write_script(
        &bin.path().join("sbatch"),
        &format!(
            "#!/bin/sh\n\"{}/real-sbatch\" \"$@\" >/dev/null || exit 1\n\
             echo 'sbatch: error: Batch job submission failed: Socket timed out on send/recv operation' >&2\n\
             exit 1\n",
            bin.path().display()
        ),
    );
    let fx = Fixture::new("lostreply", "exit 5\n");
    let exec = executor(false)
        .with_bin_dir(bin.path())
        .with_retry(5, Duration::from_millis(100));
    let rec = exec.launch(&fx.req).await.expect("launch adopts the job");
    let id = slurm_id(&rec);
    assert_eq!(jobs_named(&fx.req.node_id).await, vec![id.clone()]);
    let out = wait_bounded(&exec, &fx.req, &rec, CancellationToken::new()).await;
    assert_eq!(out, WaitOutcome::Ended(JobEnd::Exited { code: 5 }));
    assert_eq!(jobs_named(&fx.req.node_id).await, vec![id]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs slurm"]
async fn launch_interrupted_after_sbatch_is_adopted_on_resume() {
    require_slurm().await;
    let bin = tempfile::tempdir().expect("tempdir");
    bin_dir_with_real_commands(bin.path());
    // Queues the job, then hangs: the engine dies before it learns the job id.
    write_script(
        &bin.path().join("sbatch"),
        &format!(
            "#!/bin/sh\n\"{}/real-sbatch\" \"$@\" >/dev/null || exit 1\nexec sleep 600\n",
            bin.path().display()
        ),
    );
    let fx = Fixture::new("crashed", "sleep 2\nexit 4\n");
    let crashing = executor(false).with_bin_dir(bin.path());
    let interrupted = tokio::time::timeout(Duration::from_secs(5), crashing.launch(&fx.req)).await;
    assert!(
        interrupted.is_err(),
        "the hanging sbatch should not have returned"
    );
    assert!(!fx.run_dir().join("job.json").exists());
    assert!(fx.run_dir().join(SUBMITTING_MARKER).exists());

    // Resume: a new engine launches the node again.
    let resumed = executor(false);
    let rec = resumed.launch(&fx.req).await.expect("launch on resume");
    let id = slurm_id(&rec);
    assert_eq!(fx.record_on_disk(), rec);
    assert!(!fx.run_dir().join(SUBMITTING_MARKER).exists());
    assert_eq!(
        jobs_named(&fx.req.node_id).await,
        vec![id.clone()],
        "no second job was submitted"
    );
    let out = wait_bounded(&resumed, &fx.req, &rec, CancellationToken::new()).await;
    assert_eq!(out, WaitOutcome::Ended(JobEnd::Exited { code: 4 }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs slurm"]
async fn rejected_submission_is_a_launch_error() {
    require_slurm().await;
    let fx = Fixture::new("badpart", "exit 0\n");
    let exec = SlurmExecutor::new(
        SlurmConfig {
            partition: Some("no-such-partition-xyz".into()),
            ..Default::default()
        },
        false,
    );
    match exec.launch(&fx.req).await {
        Err(ExecError::Rejected { command, stderr }) => {
            assert!(command.contains("sbatch"), "{command}");
            assert!(stderr.to_lowercase().contains("partition"), "{stderr}");
        }
        other => panic!("expected a launch error, got {other:?}"),
    }
    assert!(!fx.run_dir().join("job.json").exists());
    assert!(!fx.run_dir().join(SUBMITTING_MARKER).exists());
}

// ---------------------------------------------------------------------------------------------
// retries, with fake Slurm commands (no cluster needed)

fn fake_record(id: &str) -> JobRecord {
    JobRecord {
        job_id: format!("slurm:{id}"),
        executor: "slurm".into(),
        pid: None,
        pid_start_ticks: None,
        slurm_id: Some(id.into()),
        host: "test".into(),
        started_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        attempt: 1,
    }
}

#[tokio::test]
async fn transient_squeue_failures_are_retried() {
    let bin = tempfile::tempdir().expect("tempdir");
    let counter = bin.path().join("count");
    // Fails twice like an overloaded controller, then reports the job running.
    write_script(
        &bin.path().join("squeue"),
        &format!(
            "#!/bin/sh\nPATH=/usr/bin:/bin\nn=$(cat '{c}' 2>/dev/null || echo 0)\nn=$((n+1))\necho $n > '{c}'\n\
             if [ $n -le 2 ]; then echo 'squeue: error: slurm_load_jobs error: Socket timed out on send/recv operation' >&2; exit 1; fi\n\
             echo RUNNING\n",
            c = counter.display()
        ),
    );
    let fx = Fixture::new("retry", "exit 0\n");
    let exec = executor(false)
        .with_bin_dir(bin.path())
        .with_retry(5, Duration::from_millis(10));
    let probe = exec.probe(&fx.req, &fake_record("12345")).await;
    assert_eq!(probe.expect("probe after retries"), Probe::Running);
    assert_eq!(std::fs::read_to_string(&counter).unwrap().trim(), "3");
}

#[tokio::test]
async fn persistent_failures_become_a_slurm_error() {
    let bin = tempfile::tempdir().expect("tempdir");
    write_script(
        &bin.path().join("squeue"),
        "#!/bin/sh\necho 'squeue: error: Unable to contact slurm controller (connect failure)' >&2\nexit 1\n",
    );
    let fx = Fixture::new("down", "exit 0\n");
    let exec = executor(false)
        .with_bin_dir(bin.path())
        .with_retry(3, Duration::from_millis(10));
    match exec.probe(&fx.req, &fake_record("12345")).await {
        Err(e @ ExecError::Slurm { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("squeue"), "{msg}");
            assert!(msg.contains("Unable to contact slurm controller"), "{msg}");
            assert!(msg.contains("3 tries"), "{msg}");
        }
        other => panic!("expected ExecError::Slurm, got {other:?}"),
    }
    // A missing command is retried too, then reported.
    let exec = executor(false)
        .with_bin_dir(bin.path().join("nowhere"))
        .with_retry(2, Duration::from_millis(10));
    assert!(matches!(
        exec.probe(&fx.req, &fake_record("1")).await,
        Err(ExecError::Slurm { .. })
    ));
}

#[tokio::test]
async fn exit_code_file_wins_without_asking_slurm() {
    let fx = Fixture::new("done", "exit 0\n");
    std::fs::write(fx.run_dir().join("exit_code"), "9\n").expect("exit_code");
    // No Slurm commands at all: the exit_code file is the final truth.
    let exec = executor(false).with_bin_dir("/nonexistent");
    let rec = fake_record("777");
    assert_eq!(
        exec.probe(&fx.req, &rec).await.expect("probe"),
        Probe::Ended(9)
    );
    let out = exec
        .wait(&fx.req, &rec, CancellationToken::new())
        .await
        .expect("wait");
    assert_eq!(out, WaitOutcome::Ended(JobEnd::Exited { code: 9 }));
}
