//! The local executor against real processes: exit codes, output files and the job record,
//! timeouts and cancellation killing whole process groups, detaching, re-attaching from a record
//! (a new executor instance standing in for a restarted engine), pid reuse, and the job's
//! environment, finding a started job after a crash without waiting, the wrapper's refusal to
//! write through planted links and its log cap, and an engine restarted faster than the old
//! 2 s pid-file poll still launching. Every test kills what it starts, even when an assertion
//! fails.

use crate::support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use autoresearch_adapters::executor::local::LocalExecutor;
use autoresearch_adapters::executor::{
    ExecError, Executor, JobEnd, JobRequest, Probe, WaitOutcome,
};
use autoresearch_adapters::model::JobRecord;
use tokio_util::sync::CancellationToken;

/// A run dir and a working dir with `command.sh` written into the run dir.
struct Job {
    _tmp: tempfile::TempDir,
    req: JobRequest,
}

fn job(command: &str) -> Job {
    let tmp = tempfile::tempdir().expect("tempdir");
    let run_dir = tmp.path().join("runs").join("001_test");
    let cwd = tmp.path().join("work");
    std::fs::create_dir_all(&run_dir).expect("run dir");
    std::fs::create_dir_all(&cwd).expect("cwd");
    std::fs::write(run_dir.join("command.sh"), command).expect("command.sh");
    Job {
        req: JobRequest {
            node_id: "001_test".into(),
            run_dir,
            cwd,
            env: Vec::new(),
            timeout: None,
            attempt: 1,
            log_limit_bytes: 64 << 20,
        },
        _tmp: tmp,
    }
}

/// SIGKILLs a process group when dropped, so no test leaves processes behind.
struct GroupGuard(i32);

impl GroupGuard {
    fn of(record: &JobRecord) -> Self {
        let pid = record.pid.expect("record has a pid");
        GroupGuard(i32::try_from(pid).expect("pid fits i32"))
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if self.0 > 1 {
            // SAFETY: kill(2) has no memory-safety preconditions.
            unsafe { libc::kill(-self.0, libc::SIGKILL) };
        }
    }
}

/// Kills and reaps a process the test spawned directly, when dropped.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// (state, pgrp, session, start ticks) of a process, from `/proc/<pid>/stat`.
fn stat(pid: u32) -> Option<(char, i32, i32, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some((
        f.first()?.chars().next()?,
        f.get(2)?.parse().ok()?,
        f.get(3)?.parse().ok()?,
        f.get(19)?.parse().ok()?,
    ))
}

fn is_live(state: char) -> bool {
    !matches!(state, 'Z' | 'X' | 'x')
}

/// Pids of the live (non-zombie) processes of group `pgid`.
fn live_group_members(pgid: i32) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        if let Some((state, pgrp, _, _)) = stat(pid)
            && pgrp == pgid
            && is_live(state)
        {
            pids.push(pid);
        }
    }
    pids
}

fn pid_is_live(pid: u32) -> bool {
    stat(pid).is_some_and(|(state, ..)| is_live(state))
}

fn pgid(record: &JobRecord) -> i32 {
    i32::try_from(record.pid.expect("pid")).expect("pid fits i32")
}

/// Waits (test-side polling is fine) until `path` exists.
async fn wait_for_file(path: &Path, limit: Duration) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if path.exists() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    path.exists()
}

/// Waits until the group has live members (the command has started its processes).
async fn wait_for_members(pgid: i32, at_least: usize) -> Vec<u32> {
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        let members = live_group_members(pgid);
        if members.len() >= at_least || Instant::now() >= end {
            return members;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn read(path: PathBuf) -> String {
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

async fn wait_job(
    exec: &LocalExecutor,
    req: &JobRequest,
    record: &JobRecord,
) -> Result<WaitOutcome, ExecError> {
    let outcome = tokio::time::timeout(
        Duration::from_secs(20),
        exec.wait(req, record, CancellationToken::new()),
    )
    .await;
    outcome.expect("wait did not return within 20 s")
}

#[tokio::test]
async fn success_writes_output_record_and_pid_file() {
    let mut j = job("echo hello\necho oops >&2\npwd\nexit 0\n");
    j.req.attempt = 2;
    let exec = LocalExecutor::new(false);
    assert_eq!(exec.name(), "local");

    let before = SystemTime::now() - Duration::from_secs(1);
    let record = exec.launch(&j.req).await.expect("launch");
    let _guard = GroupGuard::of(&record);
    let pid = record.pid.expect("pid");

    // The record is on disk before launch returns, and says what was returned.
    let on_disk: JobRecord =
        serde_json::from_str(&read(j.req.run_dir.join("job.json"))).expect("job.json parses");
    assert_eq!(on_disk, record);
    assert_eq!(record.job_id, format!("local:{pid}"));
    assert_eq!(record.executor, "local");
    assert_eq!(record.attempt, 2);
    assert_eq!(record.slurm_id, None);
    assert_eq!(record.host, autoresearch_engine::state::hostname());
    let started = humantime::parse_rfc3339_weak(&record.started_at).expect("RFC 3339");
    assert!(started >= before && started <= SystemTime::now() + Duration::from_secs(1));
    let ticks = record.pid_start_ticks.expect("start ticks");
    assert!(ticks > 0);

    let outcome = wait_job(&exec, &j.req, &record).await.expect("wait");
    assert_eq!(outcome, WaitOutcome::Ended(JobEnd::Exited { code: 0 }));

    assert_eq!(read(j.req.run_dir.join("pid")).trim(), pid.to_string());
    assert_eq!(
        read(j.req.run_dir.join("stdout.log")),
        format!("hello\n{}\n", j.req.cwd.display())
    );
    assert_eq!(read(j.req.run_dir.join("stderr.log")), "oops\n");
    assert_eq!(read(j.req.run_dir.join("exit_code")).trim(), "0");
    assert!(j.req.run_dir.join("wrapper.sh").is_file());
    // Reaped: no zombie left behind by this process.
    assert!(stat(pid).is_none(), "the wrapper {pid} was not reaped");
    assert_eq!(
        exec.probe(&j.req, &record).await.expect("probe"),
        Probe::Ended(0)
    );
}

#[tokio::test]
async fn nonzero_exit_code_is_reported_exactly() {
    let j = job("echo failing\nexit 3\n");
    let exec = LocalExecutor::new(false);
    let record = exec.launch(&j.req).await.expect("launch");
    let _guard = GroupGuard::of(&record);
    let outcome = wait_job(&exec, &j.req, &record).await.expect("wait");
    assert_eq!(outcome, WaitOutcome::Ended(JobEnd::Exited { code: 3 }));
}

#[tokio::test]
async fn timeout_kills_the_whole_process_group() {
    let mut j = job("sleep 1000 &\nsleep 1000 &\nsleep 1000\n");
    j.req.timeout = Some(Duration::from_secs(1));
    let exec = LocalExecutor::new(false);
    let launched = Instant::now();
    let record = exec.launch(&j.req).await.expect("launch");
    let _guard = GroupGuard::of(&record);
    let pgid = pgid(&record);
    let pid = record.pid.expect("pid");

    // The job leads its own session and process group, with its grandchildren in that group.
    let members = wait_for_members(pgid, 5).await;
    assert!(
        members.len() >= 5,
        "expected wrapper, command and 3 sleeps in group {pgid}, found {members:?}"
    );
    let (_, pgrp, session, _) = stat(pid).expect("wrapper alive");
    assert_eq!((pgrp, session), (pgid, pgid));

    let outcome = wait_job(&exec, &j.req, &record).await.expect("wait");
    let elapsed = launched.elapsed();
    assert_eq!(outcome, WaitOutcome::Ended(JobEnd::TimedOut));
    assert!(
        elapsed >= Duration::from_millis(950),
        "timed out early: {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_secs(4),
        "timed out late: {elapsed:?}"
    );
    let survivors = live_group_members(pgid);
    assert!(
        survivors.is_empty(),
        "processes of group {pgid} survived: {survivors:?}"
    );
    assert!(!j.req.run_dir.join("exit_code").exists());
}

#[tokio::test]
async fn timeout_escalates_to_sigkill_when_sigterm_is_ignored() {
    // The command and its sleeps ignore SIGTERM (an ignored signal stays ignored across exec).
    let mut j = job("trap '' TERM\nsleep 1000 &\nsleep 1000\n");
    j.req.timeout = Some(Duration::from_millis(500));
    let exec = LocalExecutor::new(false);
    let launched = Instant::now();
    let record = exec.launch(&j.req).await.expect("launch");
    let _guard = GroupGuard::of(&record);
    let pgid = pgid(&record);
    assert!(wait_for_members(pgid, 4).await.len() >= 4);

    let outcome = wait_job(&exec, &j.req, &record).await.expect("wait");
    let elapsed = launched.elapsed();
    assert_eq!(outcome, WaitOutcome::Ended(JobEnd::TimedOut));
    // 0.5 s timeout + 2 s grace before SIGKILL.
    assert!(
        elapsed >= Duration::from_millis(2400),
        "SIGKILL came before the grace period ended: {elapsed:?}"
    );
    assert!(elapsed < Duration::from_secs(6), "too slow: {elapsed:?}");
    let survivors = live_group_members(pgid);
    assert!(survivors.is_empty(), "survivors: {survivors:?}");
}

#[tokio::test]
async fn stop_with_cancel_jobs_on_stop_kills_the_job() {
    let j = job("sleep 1000 &\nsleep 1000\n");
    let exec = LocalExecutor::new(true);
    let record = exec.launch(&j.req).await.expect("launch");
    let _guard = GroupGuard::of(&record);
    let pgid = pgid(&record);
    assert!(wait_for_members(pgid, 4).await.len() >= 4);

    let stop = CancellationToken::new();
    let trigger = stop.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        trigger.cancel();
    });
    let started = Instant::now();
    let outcome = tokio::time::timeout(Duration::from_secs(10), exec.wait(&j.req, &record, stop))
        .await
        .expect("wait returned")
        .expect("wait");
    assert_eq!(outcome, WaitOutcome::Ended(JobEnd::Cancelled));
    assert!(started.elapsed() < Duration::from_secs(3));
    let survivors = live_group_members(pgid);
    assert!(survivors.is_empty(), "survivors: {survivors:?}");
}

#[tokio::test]
async fn stop_without_cancel_detaches_and_the_job_finishes() {
    let j = job("sleep 2\nexit 5\n");
    let exec = LocalExecutor::new(false);
    let record = exec.launch(&j.req).await.expect("launch");
    let _guard = GroupGuard::of(&record);
    let pid = record.pid.expect("pid");

    let stop = CancellationToken::new();
    let trigger = stop.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        trigger.cancel();
    });
    let started = Instant::now();
    let outcome = tokio::time::timeout(Duration::from_secs(5), exec.wait(&j.req, &record, stop))
        .await
        .expect("wait returned")
        .expect("wait");
    assert_eq!(outcome, WaitOutcome::Detached);
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(pid_is_live(pid), "the detached job was killed");
    assert!(!j.req.run_dir.join("exit_code").exists());
    assert_eq!(
        exec.probe(&j.req, &record).await.expect("probe"),
        Probe::Running
    );

    // It keeps running and records its exit code by itself.
    assert!(wait_for_file(&j.req.run_dir.join("exit_code"), Duration::from_secs(10)).await);
    assert_eq!(read(j.req.run_dir.join("exit_code")).trim(), "5");
    // Waiting again (same executor, which kept the child) gives the code and reaps it.
    let outcome = wait_job(&exec, &j.req, &record).await.expect("wait");
    assert_eq!(outcome, WaitOutcome::Ended(JobEnd::Exited { code: 5 }));
}

#[tokio::test]
async fn reattached_job_is_running_and_waited_until_its_exit() {
    let j = job("sleep 2\nexit 7\n");
    let record = {
        let first_engine = LocalExecutor::new(false);
        first_engine.launch(&j.req).await.expect("launch")
        // The first engine goes away; the job must not.
    };
    let _guard = GroupGuard::of(&record);
    let pid = record.pid.expect("pid");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(pid_is_live(pid), "the job died with its executor");

    let restarted = LocalExecutor::new(false);
    assert_eq!(
        restarted.probe(&j.req, &record).await.expect("probe"),
        Probe::Running
    );
    let outcome = wait_job(&restarted, &j.req, &record).await.expect("wait");
    let returned_at = SystemTime::now();
    assert_eq!(outcome, WaitOutcome::Ended(JobEnd::Exited { code: 7 }));

    // Woken by the exit: the wrapper wrote `exit_code` just before exiting.
    let exited_at = std::fs::metadata(j.req.run_dir.join("exit_code"))
        .and_then(|m| m.modified())
        .expect("exit_code mtime");
    let lag = returned_at
        .duration_since(exited_at)
        .unwrap_or(Duration::ZERO);
    assert!(
        lag < Duration::from_secs(1),
        "wait returned {lag:?} after the job ended"
    );
}

#[tokio::test]
async fn job_that_ended_unwatched_is_probed_ended() {
    let j = job("exit 4\n");
    let record = {
        let first_engine = LocalExecutor::new(false);
        first_engine.launch(&j.req).await.expect("launch")
    };
    let _guard = GroupGuard::of(&record);
    assert!(wait_for_file(&j.req.run_dir.join("exit_code"), Duration::from_secs(10)).await);

    let restarted = LocalExecutor::new(false);
    assert_eq!(
        restarted.probe(&j.req, &record).await.expect("probe"),
        Probe::Ended(4)
    );
    let outcome = wait_job(&restarted, &j.req, &record).await.expect("wait");
    assert_eq!(outcome, WaitOutcome::Ended(JobEnd::Exited { code: 4 }));
}

#[tokio::test]
async fn reused_pid_is_not_mistaken_for_the_job() {
    let j = job("exit 0\n");
    // A live process standing in for whoever got the job's pid after the job was gone.
    let other = KillOnDrop(
        std::process::Command::new("sleep")
            .arg("1000")
            .spawn()
            .expect("spawn sleep"),
    );
    let other_pid = other.0.id();
    let (_, _, _, other_ticks) = stat(other_pid).expect("sleep is alive");
    let record = JobRecord {
        job_id: format!("local:{other_pid}"),
        executor: "local".into(),
        pid: Some(other_pid),
        pid_start_ticks: Some(other_ticks + 12_345),
        slurm_id: None,
        host: autoresearch_engine::state::hostname(),
        started_at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        attempt: 1,
    };
    let exec = LocalExecutor::new(true);

    let probe = exec.probe(&j.req, &record).await.expect("probe");
    assert!(
        matches!(&probe, Probe::Dead(reason) if reason.contains("another process")),
        "{probe:?}"
    );
    let started = Instant::now();
    let outcome = wait_job(&exec, &j.req, &record).await.expect("wait");
    assert!(
        matches!(outcome, WaitOutcome::Ended(JobEnd::Lost { .. })),
        "{outcome:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(1));
    // Killing the job must not touch the process that now has its pid.
    exec.kill(&record).await.expect("kill");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(pid_is_live(other_pid), "an unrelated process was killed");

    // Without a recorded start time, a live process that is not the job's wrapper is not the job.
    let unverifiable = JobRecord {
        pid_start_ticks: None,
        ..record.clone()
    };
    assert!(matches!(
        exec.probe(&j.req, &unverifiable).await.expect("probe"),
        Probe::Dead(_)
    ));
    exec.kill(&unverifiable).await.expect("kill");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(pid_is_live(other_pid), "an unrelated process was killed");

    // The test process itself, with a wrong start time, is not the job either.
    let own_pid = std::process::id();
    let (_, _, _, own_ticks) = stat(own_pid).expect("own stat");
    let mine = JobRecord {
        pid: Some(own_pid),
        pid_start_ticks: Some(own_ticks + 1),
        ..record.clone()
    };
    assert!(matches!(
        exec.probe(&j.req, &mine).await.expect("probe"),
        Probe::Dead(_)
    ));
}

#[tokio::test]
async fn env_vars_reach_the_job() {
    let mut j = job("printf '%s|%s' \"$AUTORESEARCH_NODE_ID\" \"$JOB_GREETING\"\n");
    j.req.env = vec![
        ("AUTORESEARCH_NODE_ID".into(), "001_test".into()),
        ("JOB_GREETING".into(), "hello (big) world".into()),
    ];
    let exec = LocalExecutor::new(false);
    let record = exec.launch(&j.req).await.expect("launch");
    let _guard = GroupGuard::of(&record);
    let outcome = wait_job(&exec, &j.req, &record).await.expect("wait");
    assert_eq!(outcome, WaitOutcome::Ended(JobEnd::Exited { code: 0 }));
    assert_eq!(
        read(j.req.run_dir.join("stdout.log")),
        "001_test|hello (big) world"
    );
}

#[tokio::test]
async fn reattached_timeout_counts_from_started_at() {
    let mut j = job("sleep 1000 &\nsleep 1000\n");
    let launched = Instant::now();
    let record = {
        let first_engine = LocalExecutor::new(false);
        first_engine.launch(&j.req).await.expect("launch")
    };
    let _guard = GroupGuard::of(&record);
    let pgid = pgid(&record);
    assert!(wait_for_members(pgid, 4).await.len() >= 4);
    tokio::time::sleep(Duration::from_millis(500)).await;

    j.req.timeout = Some(Duration::from_secs(2));
    let restarted = LocalExecutor::new(false);
    let outcome = wait_job(&restarted, &j.req, &record).await.expect("wait");
    let elapsed = launched.elapsed();
    assert_eq!(outcome, WaitOutcome::Ended(JobEnd::TimedOut));
    // `started_at` has whole seconds, so the deadline is 1-2 s after the launch.
    assert!(elapsed >= Duration::from_millis(900), "{elapsed:?}");
    assert!(elapsed < Duration::from_millis(4500), "{elapsed:?}");
    let survivors = live_group_members(pgid);
    assert!(survivors.is_empty(), "survivors: {survivors:?}");
}

#[tokio::test]
async fn kill_ends_the_group_and_tolerates_a_gone_one() {
    let j = job("sleep 1000 &\nsleep 1000\n");
    let exec = LocalExecutor::new(false);
    let record = exec.launch(&j.req).await.expect("launch");
    let _guard = GroupGuard::of(&record);
    let pgid = pgid(&record);
    assert!(wait_for_members(pgid, 4).await.len() >= 4);

    // Killed from its record by another instance (re-attached), then again by its launcher.
    LocalExecutor::new(false)
        .kill(&record)
        .await
        .expect("kill from record");
    let survivors = live_group_members(pgid);
    assert!(survivors.is_empty(), "survivors: {survivors:?}");
    exec.kill(&record).await.expect("killing a gone group");
    exec.kill(&record)
        .await
        .expect("killing a gone group again");
    let pid = record.pid.expect("pid");
    assert!(stat(pid).is_none(), "the wrapper {pid} was not reaped");
}

#[tokio::test]
async fn wrapper_killed_without_exit_code_is_lost() {
    let j = job("sleep 1000\n");
    let exec = LocalExecutor::new(false);
    let record = exec.launch(&j.req).await.expect("launch");
    let _guard = GroupGuard::of(&record);
    let pid = record.pid.expect("pid");
    assert!(wait_for_members(pgid(&record), 3).await.len() >= 3);
    // SAFETY: kill(2) has no memory-safety preconditions; `pid` is our own child.
    unsafe { libc::kill(i32::try_from(pid).expect("pid"), libc::SIGKILL) };
    let outcome = wait_job(&exec, &j.req, &record).await.expect("wait");
    assert!(
        matches!(outcome, WaitOutcome::Ended(JobEnd::Lost { .. })),
        "{outcome:?}"
    );
    assert!(matches!(
        exec.probe(&j.req, &record).await.expect("probe"),
        Probe::Dead(_)
    ));
    let without_ticks = JobRecord {
        pid_start_ticks: None,
        ..record.clone()
    };
    assert!(matches!(
        exec.probe(&j.req, &without_ticks).await.expect("probe"),
        Probe::Dead(_)
    ));
}

#[tokio::test]
async fn record_rebuilt_from_pid_file_is_reattached_through_the_wrapper_command_line() {
    // An engine that died between spawning the job and writing `job.json` leaves only the
    // wrapper's `pid` file: the rebuilt record has no start time.
    let j = job("sleep 1\nexit 6\n");
    let launched = {
        let first_engine = LocalExecutor::new(false);
        first_engine.launch(&j.req).await.expect("launch")
    };
    let _guard = GroupGuard::of(&launched);
    assert!(wait_for_file(&j.req.run_dir.join("pid"), Duration::from_secs(5)).await);
    let pid: u32 = read(j.req.run_dir.join("pid"))
        .trim()
        .parse()
        .expect("pid file");
    let rebuilt = JobRecord {
        pid: Some(pid),
        pid_start_ticks: None,
        ..launched.clone()
    };
    let restarted = LocalExecutor::new(false);
    assert_eq!(
        restarted.probe(&j.req, &rebuilt).await.expect("probe"),
        Probe::Running
    );
    // The same pid under another run dir is not this job.
    let mut elsewhere = j.req.clone();
    elsewhere.run_dir = j.req.cwd.clone();
    assert!(matches!(
        restarted.probe(&elsewhere, &rebuilt).await.expect("probe"),
        Probe::Dead(_)
    ));
    let outcome = wait_job(&restarted, &j.req, &rebuilt).await.expect("wait");
    assert_eq!(outcome, WaitOutcome::Ended(JobEnd::Exited { code: 6 }));
}

#[tokio::test]
async fn missing_command_is_a_launch_error() {
    let j = job("exit 0\n");
    std::fs::remove_file(j.req.run_dir.join("command.sh")).expect("remove");
    let exec = LocalExecutor::new(false);
    let err = exec.launch(&j.req).await.expect_err("launch must fail");
    assert!(
        matches!(&err, ExecError::Io { path, .. } if path.ends_with("command.sh")),
        "{err:?}"
    );
    assert!(!j.req.run_dir.join("job.json").exists());
}

#[tokio::test(start_paused = true)]
async fn recover_answers_without_waiting_when_nothing_was_started() {
    // A run dir left between the launch marker and the spawn: no pid, no record, no wrapper.
    let j = job("exit 0\n");
    std::fs::write(j.req.run_dir.join("launch.json"), r#"{"attempt":1}"#).unwrap();
    let exec = LocalExecutor::new(false);
    let before = tokio::time::Instant::now();
    assert_eq!(exec.recover(&j.req).await.expect("recover"), None);
    // Paused time only moves when something sleeps: recover did not.
    assert_eq!(before.elapsed(), Duration::ZERO);
    tokio::time::resume();
    // And a launch is then allowed (the lock recover probed is free again).
    let record = exec.launch(&j.req).await.expect("launch");
    let _guard = GroupGuard::of(&record);
    let outcome = wait_job(&exec, &j.req, &record).await.expect("wait");
    assert_eq!(outcome, WaitOutcome::Ended(JobEnd::Exited { code: 0 }));
}

#[tokio::test]
async fn recover_finds_a_started_job_from_its_pid_file_or_its_wrapper_process() {
    let j = job("sleep 30\n");
    let exec = LocalExecutor::new(false);
    let launched = exec.launch(&j.req).await.expect("launch");
    let _guard = GroupGuard::of(&launched);
    assert!(wait_for_file(&j.req.run_dir.join("pid"), Duration::from_secs(5)).await);
    let restarted = LocalExecutor::new(false);
    // With job.json: that record.
    assert_eq!(
        restarted.recover(&j.req).await.unwrap(),
        Some(launched.clone())
    );
    // Without it: from the wrapper's pid file.
    std::fs::remove_file(j.req.run_dir.join("job.json")).unwrap();
    let from_pid = restarted
        .recover(&j.req)
        .await
        .unwrap()
        .expect("found by pid file");
    assert_eq!(from_pid.pid, launched.pid);
    // Without the pid file either (a wrapper not yet past its first line): found in /proc by
    // its command line while it holds the launch lock, with its start time.
    std::fs::remove_file(j.req.run_dir.join("pid")).unwrap();
    let from_proc = restarted
        .recover(&j.req)
        .await
        .unwrap()
        .expect("found in /proc");
    assert_eq!(from_proc.pid, launched.pid);
    assert_eq!(from_proc.pid_start_ticks, launched.pid_start_ticks);
    // Another attempt of the same run dir is not this job.
    let mut other = j.req.clone();
    other.attempt = 2;
    assert!(
        restarted.recover(&other).await.is_err(),
        "the lock is held by attempt 1"
    );
    // A second launch while the wrapper lives is refused instead of running the job twice.
    let err = restarted.launch(&j.req).await.expect_err("second launch");
    assert!(matches!(err, ExecError::AlreadyRunning { .. }), "{err:?}");
    restarted.kill(&launched).await.expect("kill");
}

#[tokio::test]
async fn the_wrapper_never_writes_through_a_planted_link() {
    let j = job("echo out; echo err >&2\n");
    let outside = tempfile::tempdir().unwrap();
    for name in ["stdout.log", "stderr.log", ".pid.tmp", ".exit_code.tmp"] {
        let target = outside.path().join(name);
        std::fs::write(&target, "keep").unwrap();
        std::os::unix::fs::symlink(&target, j.req.run_dir.join(name)).unwrap();
    }
    let exec = LocalExecutor::new(false);
    let record = exec.launch(&j.req).await.expect("launch");
    let _guard = GroupGuard::of(&record);
    let outcome = wait_job(&exec, &j.req, &record).await.expect("wait");
    assert_eq!(outcome, WaitOutcome::Ended(JobEnd::Exited { code: 0 }));
    for name in ["stdout.log", "stderr.log", ".pid.tmp", ".exit_code.tmp"] {
        assert_eq!(
            read(outside.path().join(name)),
            "keep",
            "{name} was written through"
        );
    }
    for (name, text) in [("stdout.log", "out\n"), ("stderr.log", "err\n")] {
        let path = j.req.run_dir.join(name);
        assert!(!path.symlink_metadata().unwrap().is_symlink(), "{name}");
        assert_eq!(read(path), text);
    }
}

#[tokio::test]
async fn logs_are_capped_keeping_the_start_and_the_end() {
    // 3 MiB of output with a 1 MiB limit: the first and the last 512 KiB are kept.
    let mut j = job(
        "i=0; while [ $i -lt 3072 ]; do printf '%01023d\\n' $i; i=$((i+1)); done\n\
         echo 'METRIC score=7'\n",
    );
    j.req.log_limit_bytes = 1 << 20;
    let exec = LocalExecutor::new(false);
    let record = exec.launch(&j.req).await.expect("launch");
    let _guard = GroupGuard::of(&record);
    let outcome = wait_job(&exec, &j.req, &record).await.expect("wait");
    assert_eq!(outcome, WaitOutcome::Ended(JobEnd::Exited { code: 0 }));
    let log = read(j.req.run_dir.join("stdout.log"));
    assert!(log.len() as u64 <= 1 << 20, "{} bytes", log.len());
    assert!(log.len() as u64 >= (1 << 20) - 4096, "{} bytes", log.len());
    assert!(log.starts_with(&format!("{:01023}\n", 0)));
    assert!(log.ends_with("METRIC score=7\n"));
}

/// An engine restarted again and again, each time for less than the 2 s the old pid-file poll
/// held a slot, still launches a node left between its launch marker and its spawn.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_faster_than_two_seconds_still_launch() {
    use serde_json::json;
    use support::Fixture;
    let fx = Fixture::new();
    let script = fx.script(
        "job.sh",
        "echo \"$AUTORESEARCH_NODE_ID\" >> launches.log\n\
         while [ ! -e release ]; do sleep 0.05; done\necho 'METRIC score=1'\n",
    );
    let cfg = fx.config(json!({
        "objective": { "metric": "score", "direction": "maximize" },
        "job": { "command": format!("sh {}", script.display()), "timeout_s": 120 },
        "planner": { "kind": "none" },
        "limits": { "max_concurrency": 1, "max_experiments": 5, "patience": 5 }
    }));
    fx.resolve(Some(cfg));
    // A first engine creates the baseline and launches it; then the state a death between the
    // launch marker and the spawn leaves is made: no job, no record, status `launching`.
    let (_, fired) = fx
        .run_until(None, |fx| {
            fx.node_ids()
                .first()
                .is_some_and(|id| fx.run_dir(id).join("job.json").is_file())
        })
        .await;
    assert!(fired);
    let base = fx.node_ids()[0].clone();
    let pid = fx.job_pid(&base).expect("pid");
    // SAFETY: kill(2) of the job's own process group.
    unsafe { libc::kill(-pid, libc::SIGKILL) };
    for name in [
        "job.json",
        "pid",
        "stdout.log",
        "stderr.log",
        "exit_code",
        "launches.log",
    ] {
        let _ = std::fs::remove_file(fx.run_dir(&base).join(name));
    }
    let _ = std::fs::remove_file(fx.work_file("launches.log"));
    std::fs::write(fx.node_dir(&base).join("status.txt"), "launching\n").unwrap();
    // Restarts, each stopped after at most 1.5 s (or as soon as the job runs).
    let mut launched_at = None;
    for restart in 1..=3 {
        let started = Instant::now();
        let (_, _) = fx
            .run_until(None, |fx| {
                fx.launches_of(&base) > 0 || started.elapsed() > Duration::from_millis(1500)
            })
            .await;
        if fx.launches_of(&base) > 0 && launched_at.is_none() {
            launched_at = Some(restart);
        }
    }
    assert_eq!(
        launched_at,
        Some(1),
        "the first restart must launch the node"
    );
    std::fs::write(fx.work_file("release"), "").unwrap();
    let report = fx.run(None).await;
    assert_eq!(
        fx.status(&base),
        "completed",
        "{report:?} {}",
        fx.failure(&base)
    );
    assert_eq!(fx.launches_of(&base), 1, "launched twice");
}
