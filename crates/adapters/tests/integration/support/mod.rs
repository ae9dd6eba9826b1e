//! Helpers of the workflow tests: a temporary workdir with a job folder, configurations, the
//! real engine in this process or in a child process (the test binary re-executed), readers of
//! the workdir's files, and process checks through `/proc`.
//!
//! Every [`Fixture`] SIGKILLs the process groups of the jobs it started when dropped, so a
//! failing test leaves no job behind.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use autoresearch_adapters::config::Config;
use autoresearch_adapters::session::{Session, SessionOptions, resolve_config};
use autoresearch_engine::RunReport;
use serde_json::{Value, json};

/// A temporary workdir (`<tmp>/wd`) and job folder (`<tmp>/work`, the jobs' cwd).
pub(crate) struct Fixture {
    pub tmp: tempfile::TempDir,
    pub wd: PathBuf,
    pub work: PathBuf,
    /// Extra process groups to kill on drop.
    pub groups: std::cell::RefCell<Vec<i32>>,
}

impl Default for Fixture {
    fn default() -> Self {
        Self::new()
    }
}

impl Fixture {
    pub(crate) fn new() -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let wd = tmp.path().join("wd");
        let work = tmp.path().join("work");
        std::fs::create_dir_all(&work).expect("work dir");
        Fixture {
            tmp,
            wd,
            work,
            groups: Default::default(),
        }
    }

    /// A configuration from `value`, with `job.cwd` set to the job folder unless given, and
    /// one run per node unless the objective says otherwise: `baseline_repeats` 1 and
    /// `confirm` off (most tests count launches per node; the noise tests set their repeats
    /// and confirmation themselves).
    pub(crate) fn config(&self, mut value: Value) -> Config {
        if let Some(objective) = value.get_mut("objective").and_then(Value::as_object_mut) {
            objective
                .entry("baseline_repeats")
                .or_insert_with(|| json!(1));
            objective.entry("confirm").or_insert_with(|| json!("off"));
        }
        let job = value
            .get_mut("job")
            .and_then(Value::as_object_mut)
            .expect("the test config has a job");
        job.entry("cwd")
            .or_insert_with(|| json!(self.work.display().to_string()));
        Config::from_json_str(&value.to_string(), Path::new("test"))
            .unwrap_or_else(|e| panic!("test config: {e}"))
    }

    /// Writes an executable shell script into the job folder and returns its absolute path.
    pub(crate) fn script(&self, name: &str, body: &str) -> PathBuf {
        let path = self.work.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}")).expect("script");
        path
    }

    /// The job folder's file `name`.
    pub(crate) fn work_file(&self, name: &str) -> PathBuf {
        self.work.join(name)
    }

    /// Lines of `<work>/launches.log` equal to `id`.
    pub(crate) fn launches_of(&self, id: &str) -> usize {
        std::fs::read_to_string(self.work.join("launches.log"))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.trim() == id)
            .count()
    }

    /// The workdir's file at `rel`.
    pub(crate) fn path(&self, rel: &str) -> PathBuf {
        self.wd.join(rel)
    }

    pub(crate) fn run_dir(&self, id: &str) -> PathBuf {
        self.wd.join("runs").join(id)
    }

    pub(crate) fn node_dir(&self, id: &str) -> PathBuf {
        self.wd.join("engine").join("nodes").join(id)
    }

    pub(crate) fn state(&self) -> Value {
        read_json(&self.wd.join("state.json"))
    }

    pub(crate) fn tree(&self) -> Value {
        read_json(&self.wd.join("engine").join("tree.json"))
    }

    pub(crate) fn checkpoint(&self) -> Value {
        read_json(&self.wd.join("engine").join("checkpoint.json"))
    }

    /// `status.txt` of a node, trimmed (empty when missing).
    pub(crate) fn status(&self, id: &str) -> String {
        std::fs::read_to_string(self.node_dir(id).join("status.txt"))
            .unwrap_or_default()
            .trim()
            .to_string()
    }

    pub(crate) fn result(&self, id: &str) -> Value {
        read_json(&self.node_dir(id).join("result.json"))
    }

    pub(crate) fn failure(&self, id: &str) -> Value {
        read_json(&self.node_dir(id).join("failure.json"))
    }

    pub(crate) fn spec(&self, id: &str) -> Value {
        read_json(&self.node_dir(id).join("spec.json"))
    }

    pub(crate) fn job_record(&self, id: &str) -> Value {
        read_json(&self.run_dir(id).join("job.json"))
    }

    /// Node ids (directories of `engine/nodes/`) in creation order.
    pub(crate) fn node_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = match std::fs::read_dir(self.wd.join("engine").join("nodes")) {
            Ok(rd) => rd
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect(),
            Err(_) => Vec::new(),
        };
        ids.sort_by_key(|id| {
            (
                id.split('_')
                    .next()
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or(u64::MAX),
                id.clone(),
            )
        });
        ids
    }

    /// The id of the node named `name` (from its spec.json).
    pub(crate) fn id_of(&self, name: &str) -> String {
        self.node_ids()
            .into_iter()
            .find(|id| self.spec(id)["name"] == name)
            .unwrap_or_else(|| panic!("no node named {name:?} in {:?}", self.node_ids()))
    }

    /// Statuses of all nodes, by id.
    pub(crate) fn statuses(&self) -> BTreeMap<String, String> {
        self.node_ids()
            .into_iter()
            .map(|id| {
                let s = self.status(&id);
                (id, s)
            })
            .collect()
    }

    /// Nodes whose status is not `queued` (experiments started).
    pub(crate) fn started(&self) -> usize {
        self.statuses().values().filter(|s| *s != "queued").count()
    }

    /// Nodes whose status is `completed` or `failed`.
    pub(crate) fn finished(&self) -> usize {
        self.statuses()
            .values()
            .filter(|s| *s == "completed" || *s == "failed")
            .count()
    }

    /// The pid recorded by the wrapper in `runs/<id>/pid` (also its process group).
    pub(crate) fn job_pid(&self, id: &str) -> Option<i32> {
        std::fs::read_to_string(self.run_dir(id).join("pid"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
    }

    /// Kills `pgid` with SIGKILL when the fixture is dropped.
    pub(crate) fn kill_on_drop(&self, pgid: i32) {
        self.groups.borrow_mut().push(pgid);
    }

    /// Resolves the configuration like the command line (first run or resume).
    pub(crate) fn resolve(&self, given: Option<Config>) -> Config {
        resolve_config(&self.wd, given).unwrap_or_else(|e| panic!("resolve_config: {e}"))
    }

    /// Opens a session on the workdir (no signal handlers: tests share the process).
    pub(crate) fn session(&self, given: Option<Config>) -> Session {
        let config = self.resolve(given);
        Session::open(&self.wd, config, &test_options())
            .unwrap_or_else(|e| panic!("Session::open: {e}"))
    }

    /// Runs the engine to its end in this process (with a 120 s safety limit).
    pub(crate) async fn run(&self, given: Option<Config>) -> RunReport {
        let session = self.session(given);
        run_session(session).await
    }

    /// Runs the engine and cancels it as soon as `stop_when` holds (checked every 20 ms).
    /// Returns the report and whether the cancel fired.
    pub(crate) async fn run_until(
        &self,
        given: Option<Config>,
        stop_when: impl Fn(&Fixture) -> bool,
    ) -> (RunReport, bool) {
        let session = self.session(given);
        let token = session.cancellation_token();
        let handle = tokio::spawn(async move { session.run().await });
        let mut fired = false;
        let deadline = Instant::now() + Duration::from_secs(120);
        while !handle.is_finished() {
            assert!(Instant::now() < deadline, "the engine did not finish");
            if !fired && stop_when(self) {
                token.cancel();
                fired = true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let report = handle
            .await
            .expect("engine task")
            .unwrap_or_else(|e| panic!("engine: {e}"));
        (report, fired)
    }

    /// Starts the engine on the workdir in a child process (`adapters-test-child`, built from
    /// `support/child.rs`), as `supervisor run` would.
    pub(crate) fn spawn_engine(&self) -> EngineChild {
        let exe = env!("CARGO_BIN_EXE_adapters-test-child");
        let log = std::fs::File::create(self.tmp.path().join("child.log")).expect("child log");
        let child = Command::new(exe)
            .arg(&self.wd)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn the engine child");
        EngineChild { child: Some(child) }
    }

    /// The child engine's output (for assertion messages).
    pub(crate) fn child_log(&self) -> String {
        std::fs::read_to_string(self.tmp.path().join("child.log")).unwrap_or_default()
    }

    /// Pids of job wrappers recorded in the run dirs (current and archived attempts).
    fn recorded_groups(&self) -> Vec<i32> {
        let mut out = Vec::new();
        let Ok(rd) = std::fs::read_dir(self.wd.join("runs")) else {
            return out;
        };
        for e in rd.filter_map(Result::ok) {
            let dir = e.path();
            let mut pid_files = vec![dir.join("pid")];
            if let Ok(sub) = std::fs::read_dir(&dir) {
                for s in sub.filter_map(Result::ok) {
                    if s.file_name().to_string_lossy().starts_with("attempt-") {
                        pid_files.push(s.path().join("pid"));
                    }
                }
            }
            for f in pid_files {
                if let Some(pid) = std::fs::read_to_string(&f)
                    .ok()
                    .and_then(|s| s.trim().parse().ok())
                {
                    out.push(pid);
                }
            }
        }
        out
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let mut groups = self.recorded_groups();
        groups.extend(self.groups.borrow().iter().copied());
        for g in groups {
            // Only groups that are still the job's: a job wrapper leads its own session.
            if g > 1 && group_members(g).iter().any(|&p| session_of(p) == Some(g)) {
                // SAFETY: kill(2) has no memory-safety preconditions.
                unsafe { libc::kill(-g, libc::SIGKILL) };
            }
        }
    }
}

/// A child process running the engine; SIGKILLed on drop if still running.
pub(crate) struct EngineChild {
    child: Option<Child>,
}

impl EngineChild {
    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().expect("child").id()
    }

    /// SIGKILLs the engine and reaps it.
    pub(crate) fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends a signal to the engine.
    pub(crate) fn signal(&self, sig: i32) {
        let pid = self.pid() as i32;
        // SAFETY: kill(2) has no memory-safety preconditions.
        unsafe { libc::kill(pid, sig) };
    }

    /// Waits for the engine to exit (at most `limit`) and returns its exit code.
    pub(crate) fn wait(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        let c = self.child.as_mut()?;
        loop {
            if let Some(status) = c.try_wait().expect("try_wait") {
                self.child = None;
                return status.code();
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for EngineChild {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A plain child process (not a job) killed and reaped when dropped.
pub(crate) struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Session options of the tests: no signal handlers, a short grace period.
pub(crate) fn test_options() -> SessionOptions {
    SessionOptions {
        grace_period: Duration::from_secs(5),
        handle_signals: false,
    }
}

/// Runs a session to its end (120 s safety limit).
pub(crate) async fn run_session(session: Session) -> RunReport {
    tokio::time::timeout(Duration::from_secs(120), session.run())
        .await
        .expect("the engine did not finish within 120 s")
        .unwrap_or_else(|e| panic!("engine: {e}"))
}

/// Reads a JSON file, panicking with its path.
pub(crate) fn read_json(path: &Path) -> Value {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Polls `cond` every 20 ms until it holds or `limit` passes; returns whether it held.
pub(crate) fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Async [`wait_until`].
pub(crate) async fn wait_until_async(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// (state, pgrp, session, start ticks) of a process, from `/proc/<pid>/stat`.
pub(crate) fn proc_stat(pid: i32) -> Option<(char, i32, i32, u64)> {
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

fn session_of(pid: i32) -> Option<i32> {
    proc_stat(pid).map(|s| s.2)
}

/// Live (non-zombie) processes whose process group is `pgid`.
pub(crate) fn group_members(pgid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.filter_map(Result::ok) {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if let Some((state, pgrp, _, _)) = proc_stat(pid)
            && pgrp == pgid
            && !matches!(state, 'Z' | 'X' | 'x')
        {
            out.push(pid);
        }
    }
    out
}

/// Whether `pid` is a live (non-zombie) process.
pub(crate) fn alive(pid: i32) -> bool {
    proc_stat(pid).is_some_and(|(state, ..)| !matches!(state, 'Z' | 'X' | 'x'))
}

/// SIGKILLs a process group and waits (5 s at most) until none of its members is alive.
pub(crate) fn kill_group(pgid: i32) -> bool {
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe { libc::kill(-pgid, libc::SIGKILL) };
    wait_until(Duration::from_secs(5), || group_members(pgid).is_empty())
}

/// A job script body that appends its node id to `launches.log` in its cwd, waits until the
/// file `release` exists in its cwd, then prints `METRIC score=<score>`.
pub(crate) fn gated_job(score: &str) -> String {
    format!(
        "echo \"$AUTORESEARCH_NODE_ID\" >> launches.log\n\
         while [ ! -e release ]; do sleep 0.05; done\n\
         echo \"METRIC score={score}\"\n"
    )
}
