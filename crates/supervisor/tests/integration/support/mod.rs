//! Helpers of the command-line tests: a temp "lab" folder with a gated job script, the
//! `supervisor` binary run with timeouts, engines in the background that are killed on drop,
//! polling with deadlines (never fixed sleeps), workdir snapshots and readable-error checks.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// How long a condition may take to come true on a slow machine.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(30);

/// How long a whole `supervisor` command may take.
pub(crate) const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// The binary under test.
pub(crate) fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_supervisor")
}

static SEQ: AtomicU64 = AtomicU64::new(0);

/// A finished `supervisor` command.
#[derive(Debug)]
pub(crate) struct Out {
    /// The arguments, for messages.
    pub args: Vec<String>,
    /// Exit code (`None` when killed by a signal).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Out {
    /// Fails unless the command exited with `code`.
    #[track_caller]
    pub(crate) fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            Some(code),
            "`supervisor {}` exited with {:?}, expected {code}\n--- stdout\n{}\n--- stderr\n{}",
            self.args.join(" "),
            self.code,
            self.stdout,
            self.stderr
        );
        self
    }

    /// Fails unless the command succeeded.
    #[track_caller]
    pub(crate) fn ok(&self) -> &Self {
        self.expect_code(0)
    }

    /// Fails unless the command exited with `code` and a readable error on stderr.
    #[track_caller]
    pub(crate) fn readable_error(&self, code: i32) -> &Self {
        self.expect_code(code);
        assert_readable(&self.stderr, &self.args);
        self
    }
}

/// Fails when `stderr` is empty or shows Rust internals (`Debug` output, a panic).
#[track_caller]
pub(crate) fn assert_readable(stderr: &str, args: &[String]) {
    assert!(
        stderr.trim().len() > 10,
        "`supervisor {}` failed without saying why: {stderr:?}",
        args.join(" ")
    );
    for bad in [
        "Os {",
        "Custom {",
        "{ kind:",
        "Error {",
        "panicked",
        "RUST_BACKTRACE",
        "stack backtrace",
        "Some(",
        "None)",
    ] {
        assert!(
            !stderr.contains(bad),
            "`supervisor {}` wrote internals ({bad:?}) to stderr:\n{stderr}",
            args.join(" ")
        );
    }
}

/// Polls `cond` every 25 ms until it holds; fails after `timeout` saying what was awaited.
#[track_caller]
pub(crate) fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// A seed of the test configuration: name, value reported by the job, queue priority.
pub(crate) type SeedDef<'a> = (&'a str, i64, f64);

/// The default seeds: `001_a` (score 2), `002_b` (3), `003_c` (4), run in that order.
pub(crate) const SEEDS: &[SeedDef<'static>] = &[("a", 2, 1.0), ("b", 3, 2.0), ("c", 4, 3.0)];

/// A temp folder holding workdirs, configuration files, the job script and command outputs.
pub(crate) struct Lab {
    dir: tempfile::TempDir,
    /// Absolute path of the folder (commands run here).
    pub root: PathBuf,
}

impl Lab {
    /// A new lab with `job.sh`: `sh job.sh V` waits for `<root>/gate` (at most 60 s, or until
    /// the lab is deleted), then prints `METRIC score=V`; `V = 0` fails with exit status 3.
    pub(crate) fn new() -> Lab {
        let dir = tempfile::Builder::new()
            .prefix("cli-test-")
            .tempdir()
            .expect("temp dir");
        let root = dir.path().canonicalize().expect("canonical temp dir");
        let script = format!(
            "# sh job.sh VALUE: waits for the gate, then reports VALUE as the score\n\
             root='{}'\n\
             i=0\n\
             while [ ! -e \"$root/gate\" ] && [ -d \"$root\" ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done\n\
             if [ \"$1\" = 0 ]; then echo 'no score for 0' >&2; exit 3; fi\n\
             echo \"METRIC score=$1\"\n\
             echo \"METRIC other=$(( $1 * 10 ))\"\n",
            root.display()
        );
        fs::write(root.join("job.sh"), script).expect("job.sh");
        fs::create_dir_all(root.join(".cli")).expect(".cli");
        Lab { dir, root }
    }

    /// `<root>/<name>`.
    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// Lets every waiting job finish.
    pub(crate) fn open_gate(&self) {
        fs::write(self.root.join("gate"), b"open\n").expect("gate");
    }

    /// The test configuration: planner `none`, one job at a time, baseline score 1.
    pub(crate) fn config(&self, seeds: &[SeedDef], max_experiments: u64) -> Value {
        let seeds: Vec<Value> = seeds
            .iter()
            .map(|(name, v, p)| json!({"name": name, "params": {"v": v}, "priority": p}))
            .collect();
        json!({
            "objective": {"metric": "score", "direction": "maximize"},
            "job": {"command": "sh job.sh {v}", "cwd": self.root, "timeout_s": 120},
            "search_space": {"v": [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]},
            "baseline": {"v": 1},
            "seeds": seeds,
            "planner": {"kind": "none"},
            "limits": {"max_experiments": max_experiments, "max_concurrency": 1, "patience": 20}
        })
    }

    /// Writes `value` (JSON) or `text` as `<root>/<name>` and returns its path.
    pub(crate) fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.root.join(name);
        fs::write(&p, text).expect("write file");
        p
    }

    /// Writes the default configuration as `<root>/cfg.json`.
    pub(crate) fn default_config_file(&self) -> PathBuf {
        let text = serde_json::to_string_pretty(&self.config(SEEDS, 10)).unwrap();
        self.write("cfg.json", &text)
    }

    fn outputs(&self, label: &str) -> (PathBuf, PathBuf) {
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let base = self.root.join(".cli").join(format!("{n:03}-{label}"));
        (base.with_extension("out"), base.with_extension("err"))
    }

    fn command(&self, args: &[&str], out: &Path, err: &Path) -> Command {
        let mut cmd = Command::new(bin());
        cmd.args(args)
            .current_dir(&self.root)
            .env_remove("RUST_BACKTRACE")
            .env_remove("RUST_LIB_BACKTRACE")
            .stdin(Stdio::null())
            .stdout(fs::File::create(out).expect("stdout file"))
            .stderr(fs::File::create(err).expect("stderr file"));
        cmd
    }

    /// Runs `supervisor ARGS` in the lab and waits (at most [`COMMAND_TIMEOUT`]).
    #[track_caller]
    pub(crate) fn sup(&self, args: &[&str]) -> Out {
        let (out, err) = self.outputs(args.first().copied().unwrap_or("none"));
        let mut child = self
            .command(args, &out, &err)
            .spawn()
            .expect("spawn supervisor");
        let status = wait_child(&mut child, COMMAND_TIMEOUT).unwrap_or_else(|| {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "`supervisor {}` did not finish within {COMMAND_TIMEOUT:?}; stderr:\n{}",
                args.join(" "),
                fs::read_to_string(&err).unwrap_or_default()
            )
        });
        Out {
            args: args.iter().map(|s| s.to_string()).collect(),
            code: status.code(),
            stdout: fs::read_to_string(&out).unwrap_or_default(),
            stderr: fs::read_to_string(&err).unwrap_or_default(),
        }
    }

    /// Starts `supervisor run <wd> --no-render ARGS` in the background.
    pub(crate) fn start_run(&self, wd: &str, extra: &[&str]) -> Engine {
        let mut args = vec!["run", wd, "--no-render"];
        args.extend_from_slice(extra);
        let (out, err) = self.outputs("run-bg");
        let child = self.command(&args, &out, &err).spawn().expect("spawn run");
        Engine {
            child,
            stderr: err,
            args: args.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// `supervisor status <wd> --json`, parsed.
    #[track_caller]
    pub(crate) fn status(&self, wd: &str) -> Value {
        let out = self.sup(&["status", wd, "--json"]);
        out.ok();
        serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("status --json is not JSON ({e}):\n{}", out.stdout))
    }

    /// Polls `status --json` until `pred` holds; returns the last status.
    #[track_caller]
    pub(crate) fn wait_status(&self, wd: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            // Before the engine has created the workdir, `status` fails: keep waiting.
            let out = self.sup(&["status", wd, "--json"]);
            let last: Value = match out.code {
                Some(0) => serde_json::from_str(&out.stdout).unwrap_or(Value::Null),
                _ => json!({"error": out.stderr}),
            };
            if pred(&last) {
                return last;
            }
            if Instant::now() >= deadline {
                panic!("timed out waiting for {what}; last status:\n{last:#}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until the engine on `wd` runs `node` (status `running`, node in `running` with
    /// its job id, so its job has been launched) and `queued` specs wait.
    #[track_caller]
    pub(crate) fn wait_running(&self, wd: &str, node: &str, queued: u64) -> Value {
        self.wait_status(
            wd,
            &format!("{node} running on {wd}, {queued} queued"),
            |s| {
                s["status"] == "running"
                    && s["counts"]["queued"] == queued
                    && s["running"].as_array().is_some_and(|r| {
                        r.iter()
                            .any(|r| r["node_id"] == node && r["job_id"].is_string())
                    })
            },
        )
    }

    /// A workdir `wd` that ran the default configuration to the end (gate open).
    #[track_caller]
    pub(crate) fn finished_workdir(&self, wd: &str) {
        self.open_gate();
        let cfg = self.default_config_file();
        self.sup(&["run", wd, "--config", cfg.to_str().unwrap(), "--no-render"])
            .ok();
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Jobs left running by an interrupted or killed engine finish now.
        let _ = fs::write(self.root.join("gate"), b"open\n");
    }
}

/// `running[*].node_id` of a status.
pub(crate) fn running_ids(status: &Value) -> Vec<String> {
    status["running"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| r["node_id"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn wait_child(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A `supervisor run` in the background; killed (SIGKILL) if still alive when dropped.
pub(crate) struct Engine {
    child: Child,
    stderr: PathBuf,
    args: Vec<String>,
}

impl Engine {
    /// The process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What it wrote to stderr so far.
    pub(crate) fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Waits for it to exit (at most [`COMMAND_TIMEOUT`]) and returns its exit code.
    #[track_caller]
    pub(crate) fn wait(&mut self) -> Option<i32> {
        match wait_child(&mut self.child, COMMAND_TIMEOUT) {
            Some(status) => status.code(),
            None => panic!(
                "`supervisor {}` did not exit within {COMMAND_TIMEOUT:?}; stderr:\n{}",
                self.args.join(" "),
                self.stderr()
            ),
        }
    }

    /// Waits for exit and fails unless the exit code is `code`.
    #[track_caller]
    pub(crate) fn expect_exit(&mut self, code: i32) {
        let got = self.wait();
        assert_eq!(
            got,
            Some(code),
            "`supervisor {}` exited with {got:?}, expected {code}; stderr:\n{}",
            self.args.join(" "),
            self.stderr()
        );
    }

    /// SIGKILL, then reap.
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.kill();
        }
    }
}

/// Node ids in the order their first `spec_started` event was logged.
pub(crate) fn start_order(wd: &Path) -> Vec<String> {
    let (lines, _) = autoresearch_engine::events::read_events::<autoresearch_engine::Event>(
        &wd.join("engine/events.jsonl"),
        0,
    )
    .unwrap_or_default();
    let mut out: Vec<String> = Vec::new();
    for line in lines {
        if let autoresearch_engine::Event::SpecStarted { id, .. } = line.event
            && !out.contains(&id)
        {
            out.push(id);
        }
    }
    out
}

/// Every file under `dir` with its bytes (folders as empty entries with a trailing `/`),
/// except `engine/lock`: whoever takes the lock (an offline queue edit, repair) writes its pid
/// there, which is not a change of the workdir's data.
pub(crate) fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for e in entries.filter_map(Result::ok) {
            let p = e.path();
            let rel = p.strip_prefix(base).unwrap().display().to_string();
            if rel == "engine/lock" {
                continue;
            }
            if p.is_dir() {
                out.insert(format!("{rel}/"), Vec::new());
                walk(base, &p, out);
            } else {
                out.insert(rel, fs::read(&p).unwrap_or_default());
            }
        }
    }
    walk(dir, dir, &mut out);
    out
}

/// Fails with the differing paths when two snapshots differ.
#[track_caller]
pub(crate) fn assert_same(
    before: &BTreeMap<String, Vec<u8>>,
    after: &BTreeMap<String, Vec<u8>>,
    what: &str,
) {
    if before == after {
        return;
    }
    let mut diffs = Vec::new();
    for (k, v) in before {
        match after.get(k) {
            None => diffs.push(format!("removed {k}")),
            Some(w) if w != v => diffs.push(format!("changed {k}")),
            _ => {}
        }
    }
    for k in after.keys() {
        if !before.contains_key(k) {
            diffs.push(format!("added {k}"));
        }
    }
    panic!("{what} changed the workdir: {}", diffs.join(", "));
}

/// Queue ids printed by `supervisor queue … list`, in the printed order.
pub(crate) fn listed_ids(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .skip_while(|l| !l.trim_start().starts_with('#'))
        .skip(1)
        .filter_map(|l| l.split_whitespace().last().map(str::to_string))
        .collect()
}
