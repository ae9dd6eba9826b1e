//! Helpers of the session tests: a lab folder with a gated job, `supervisor <workdir>` started
//! in a pseudo-terminal, typing, and engines that are interrupted when a test ends.
//!
//! Every wait is for something the session prints or the workdir shows (rexpect's
//! `exp_string`/`exp_regex`, polling with a deadline); no sleep is the only synchronisation.

#![allow(dead_code)]

use autoresearch_adapters::workflow::events::{RunEvent, RunEventLine};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use rexpect::session::{PtySession, spawn_command};
use serde_json::{Value, json};

/// Timeout of every expectation (a slow 2-core machine builds and runs other tests meanwhile).
pub(crate) const TIMEOUT_MS: u64 = 30_000;

/// The binary under test.
pub(crate) fn supervisor() -> &'static str {
    env!("CARGO_BIN_EXE_supervisor")
}

/// A temp folder with `job.sh`: `sh job.sh X` waits until the file `gate` exists (at most
/// 60 s), then prints `METRIC score=X`. Engines still running on `wd` are interrupted on drop.
pub(crate) struct Lab {
    _dir: tempfile::TempDir,
    /// The folder (jobs run here).
    pub root: PathBuf,
    /// The workdir, `<root>/wd`.
    pub wd: PathBuf,
}

impl Lab {
    /// A new lab; the gate is closed.
    pub(crate) fn new() -> Lab {
        let dir = tempfile::Builder::new()
            .prefix("session-test-")
            .tempdir()
            .unwrap();
        let root = dir.path().canonicalize().unwrap();
        let script = format!(
            "root='{}'\n\
             i=0\n\
             while [ ! -e \"$root/gate\" ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done\n\
             echo \"METRIC score=$1\"\n",
            root.display()
        );
        std::fs::write(root.join("job.sh"), script).unwrap();
        let wd = root.join("wd");
        Lab {
            _dir: dir,
            root,
            wd,
        }
    }

    /// Lets every waiting job finish.
    pub(crate) fn open_gate(&self) {
        std::fs::write(self.root.join("gate"), "open").unwrap();
    }

    /// Writes `wd/config.json`: parameter `x`, the baseline `x=1`, seeds `s_a`… with `x = 5, 6,
    /// …`, planner `none`, one job at a time, at most `max_experiments`.
    pub(crate) fn configure(&self, seeds: usize, max_experiments: u64) {
        let seeds: Vec<Value> = (0..seeds)
            .map(|k| {
                json!({"name": format!("s_{}", (b'a' + k as u8) as char), "params": {"x": 5 + k}})
            })
            .collect();
        let config = json!({
            "objective": {"metric": "score", "direction": "maximize"},
            "job": {"command": "sh job.sh {x}", "cwd": self.root, "timeout_s": 120},
            "search_space": {"x": {"min": 1, "max": 100, "type": "int"}},
            "baseline": {"x": 1},
            "seeds": seeds,
            "planner": {"kind": "none"},
            "limits": {"max_experiments": max_experiments, "max_concurrency": 1, "patience": 20}
        });
        std::fs::create_dir_all(&self.wd).unwrap();
        std::fs::write(
            self.wd.join("config.json"),
            serde_json::to_vec_pretty(&config).unwrap(),
        )
        .unwrap();
    }

    /// `supervisor <wd>` in a pseudo-terminal, with `env` added to its environment.
    pub(crate) fn session_with(&self, env: &[(&str, &str)]) -> PtySession {
        let mut cmd = Command::new(supervisor());
        cmd.arg(&self.wd)
            .current_dir(&self.root)
            .env("NO_COLOR", "1")
            .env("TERM", "xterm")
            .env_remove("RUST_LOG");
        for (k, v) in env {
            cmd.env(k, v);
        }
        spawn_command(cmd, Some(TIMEOUT_MS)).expect("spawning the session in a pty")
    }

    /// `supervisor <wd>` in a pseudo-terminal.
    pub(crate) fn session(&self) -> PtySession {
        self.session_with(&[])
    }

    /// A session on a configured workdir that has started its engine (answered yes to "Start
    /// the run now?") and shows the prompt.
    pub(crate) fn started_session(&self) -> PtySession {
        let mut s = self.session();
        answer(&mut s, "Start the run now? [Y/n]", "y");
        s.exp_string("engine started in the background (pid ")
            .unwrap();
        prompt(&mut s);
        s
    }

    /// `supervisor ARGS` (not in a terminal); fails unless it succeeds; returns stdout.
    pub(crate) fn sup(&self, args: &[&str]) -> String {
        let out = Command::new(supervisor())
            .args(args)
            .current_dir(&self.root)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "supervisor {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `supervisor status --json <wd>`.
    pub(crate) fn status(&self) -> Value {
        let out = self.sup(&["status", "--json", self.wd.to_str().unwrap()]);
        serde_json::from_str(&out).unwrap()
    }

    /// The node id whose name is `name` (waits until its spec and status are written).
    pub(crate) fn node_id(&self, name: &str) -> String {
        let nodes = self.wd.join("engine").join("nodes");
        wait_until(&format!("a node named {name}"), || {
            std::fs::read_dir(&nodes)
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .find(|n| {
                    n.ends_with(&format!("_{name}"))
                        && nodes.join(n).join("spec.json").is_file()
                        && nodes.join(n).join("status.txt").is_file()
                })
        })
    }

    /// The events of `wd/engine/events.jsonl`.
    pub(crate) fn events(&self) -> Vec<RunEventLine> {
        autoresearch_engine::events::read_events::<RunEvent>(
            &self.wd.join("engine").join("events.jsonl"),
            0,
        )
        .unwrap()
        .0
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Jobs of an engine left running finish, and the engine is interrupted.
        let _ = std::fs::write(self.root.join("gate"), "open");
        let Some(pid) = autoresearch_engine::lock::holder(&self.wd).ok().flatten() else {
            return;
        };
        // SAFETY: signalling the engine this test started.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGINT) };
        let deadline = Instant::now() + Duration::from_secs(30);
        while pid_alive(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        if pid_alive(pid) {
            // SAFETY: as above.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        }
    }
}

/// Whether process `pid` exists.
pub(crate) fn pid_alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid as libc::pid_t, 0) == 0 }
}

/// The pid holding the workdir's lock.
pub(crate) fn lock_holder(wd: &Path) -> Option<u32> {
    autoresearch_engine::lock::holder(wd).unwrap()
}

/// Polls `f` until it returns something (at most 30 s).
#[track_caller]
pub(crate) fn wait_until<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_millis(TIMEOUT_MS);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Waits for the session's prompt (`wd> `).
#[track_caller]
pub(crate) fn prompt(s: &mut PtySession) {
    s.exp_string("wd> ")
        .unwrap_or_else(|e| panic!("waiting for the prompt: {e}"));
}

/// Answers a question: waits for its prompt, then types the answer and Enter.
#[track_caller]
pub(crate) fn answer(s: &mut PtySession, question: &str, text: &str) {
    s.exp_string(question)
        .unwrap_or_else(|e| panic!("waiting for {question:?}: {e}"));
    s.send_line(text).unwrap();
}

/// Types `text` (one write, as a paste) without Enter.
pub(crate) fn type_text(s: &mut PtySession, text: &str) {
    s.send(text).unwrap();
    s.flush().unwrap();
}

/// `text` as rexpect shows it: rexpect turns each byte of the output into one `char`, so
/// non-ASCII text (`→`, `ü`) is matched through its UTF-8 bytes.
pub(crate) fn as_read(text: &str) -> String {
    text.bytes().map(char::from).collect()
}

/// Waits for `text` (which may be non-ASCII) in the output; returns the text before it.
#[track_caller]
pub(crate) fn expect(s: &mut PtySession, text: &str) -> String {
    s.exp_string(&as_read(text))
        .unwrap_or_else(|e| panic!("waiting for {text:?}: {e}"))
}

/// Types a command and Enter, then waits for `expect` in the output; returns the text before
/// it.
#[track_caller]
pub(crate) fn command(s: &mut PtySession, line: &str, expect: &str) -> String {
    s.send_line(line).unwrap();
    s.exp_string(&as_read(expect))
        .unwrap_or_else(|e| panic!("after `{line}`, waiting for {expect:?}: {e}"))
}
