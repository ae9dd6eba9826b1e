//! The interactive session `supervisor <workdir>` driven through a pseudo-terminal: the
//! configuration questions (a wrong answer is re-asked), events streaming in, tab completion,
//! history, a live bump of a queued experiment, `quit` leaving the engine running, attaching to
//! it again, and the resume offer after a stop.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use rexpect::session::{PtySession, spawn_command};

/// Timeout of every expectation (a slow 2-core machine builds and runs other tests meanwhile).
const TIMEOUT_MS: u64 = 30_000;

fn supervisor() -> &'static str {
    env!("CARGO_BIN_EXE_supervisor")
}

fn session(workdir: &Path, cwd: &Path) -> PtySession {
    let mut cmd = Command::new(supervisor());
    cmd.arg(workdir)
        .current_dir(cwd)
        .env("NO_COLOR", "1")
        .env("TERM", "xterm")
        .env_remove("RUST_LOG");
    spawn_command(cmd, Some(TIMEOUT_MS)).expect("spawning the session in a pty")
}

/// Types like a person, one key at a time.
///
/// rustyline 15 with an external printer (the event stream) handles only the first of several
/// bytes that arrive in one read until another byte arrives (kkawakam/rustyline#976, fixed in
/// later versions), so keys are sent one by one and followed by a harmless Ctrl+E (end of line)
/// that releases anything still held.
fn type_keys(s: &mut PtySession, text: &str) {
    for ch in text.chars() {
        s.send(ch.encode_utf8(&mut [0; 4])).unwrap();
        s.flush().unwrap();
        std::thread::sleep(Duration::from_millis(25));
    }
    nudge(s);
}

/// Sends a key that is several bytes (an escape sequence) in one write, as a terminal does.
fn press(s: &mut PtySession, key: &str) {
    s.send(key).unwrap();
    s.flush().unwrap();
    nudge(s);
}

/// Ctrl+E (end of line: harmless anywhere) after a pause, releasing held bytes (see above).
fn nudge(s: &mut PtySession) {
    std::thread::sleep(Duration::from_millis(150));
    // Errors ignored: after `quit` the session may already be gone.
    let _ = s.send("\x05");
    let _ = s.flush();
}

/// Types a session command and Enter.
fn type_line(s: &mut PtySession, text: &str) {
    type_keys(s, &format!("{text}\n"));
}

/// Answers a question: waits for its prompt, then types the answer and Enter.
fn answer(s: &mut PtySession, prompt: &str, text: &str) {
    s.exp_string(prompt)
        .unwrap_or_else(|e| panic!("waiting for {prompt:?}: {e}"));
    s.send_line(text).unwrap();
}

fn lock_holder(wd: &Path) -> Option<u32> {
    autoresearch_engine::lock::holder(wd).unwrap()
}

fn pid_alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid as libc::pid_t, 0) == 0 }
}

/// Interrupts whatever engine still runs on the workdir when the test ends (also on panic).
struct EngineGuard(PathBuf);

impl Drop for EngineGuard {
    fn drop(&mut self) {
        let Some(pid) = autoresearch_engine::lock::holder(&self.0).ok().flatten() else {
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

/// The node id (directory under `engine/nodes/`) whose name ends with `_<name>`.
fn node_id(wd: &Path, name: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let found = std::fs::read_dir(wd.join("engine").join("nodes"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .find(|n| n.ends_with(&format!("_{name}")));
        if let Some(id) = found {
            return id;
        }
        assert!(Instant::now() < deadline, "no node named {name} appeared");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn status_json(wd: &Path) -> serde_json::Value {
    let out = Command::new(supervisor())
        .args(["status", "--json"])
        .arg(wd)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn interactive_session_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    let job_dir = tmp.path().join("job");
    std::fs::create_dir(&job_dir).unwrap();
    let wd = tmp.path().join("wd");
    let _guard = EngineGuard(wd.clone());

    // 1. A new workdir: the questionnaire.
    let mut s = session(&wd, &job_dir);
    answer(&mut s, "Primary metric name", "bad metric!");
    s.exp_string("letters, digits").unwrap(); // the reason, then the same question again
    answer(&mut s, "Primary metric name", "score");
    // No default direction: an empty answer is asked again.
    answer(&mut s, "Is a higher or a lower metric better?", "");
    s.exp_string("direction is required").unwrap();
    answer(&mut s, "Is a higher or a lower metric better?", "max");
    answer(
        &mut s,
        "Command of one experiment",
        "sleep 2 && echo METRIC score={x}",
    );
    answer(&mut s, "Working directory of the command", "");
    answer(&mut s, "parameter 1", "x=1..50");
    // A parameter once given can be redefined.
    answer(&mut s, "parameter 2", "x=1..100");
    s.exp_string("x redefined: an integer from 1 to 100")
        .unwrap();
    answer(&mut s, "parameter 2", "");
    answer(&mut s, "Baseline value of x [1]", "");
    answer(&mut s, "seed 1", "s_a x=5");
    answer(&mut s, "seed 2", "s_b x=6");
    answer(&mut s, "seed 3", "s_c x=7");
    answer(&mut s, "seed 4", "s_d x=8");
    answer(&mut s, "seed 5", "");
    answer(&mut s, "Maximum number of experiments [40]", "12");
    answer(&mut s, "Experiments running at once [2]", "1");
    s.exp_string("config.json").unwrap();
    s.exp_string("engine started in the background (pid ")
        .unwrap();
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(wd.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["objective"]["metric"], "score");
    assert_eq!(config["limits"]["max_concurrency"], 1);
    assert_eq!(config["seeds"].as_array().unwrap().len(), 4);

    // 2. Events stream in: the baseline starts first (the seeds wait in the queue) and
    // completes with its metric (the first result is a new best).
    let (_, started) = s.exp_regex(r"[0-9]{3}_[0-9A-Za-z_]+ started").unwrap();
    assert!(
        started.ends_with("_baseline started"),
        "first start: {started}"
    );
    s.exp_regex(r"completed: score=1 in [0-9.]+s").unwrap();
    s.exp_string("new best").unwrap();
    let s_a = node_id(&wd, "s_a");
    let s_d = node_id(&wd, "s_d");

    // 3. Tab completion of the command and of the node id, then a live bump of the last seed
    // (three experiments of 2 s are ahead of it): it runs next.
    type_keys(&mut s, "bu\t");
    type_keys(&mut s, &format!("{}\t", &s_d[..3]));
    type_line(&mut s, "-100");
    s.exp_string(&format!("{s_d}: priority set to -100"))
        .unwrap();
    s.exp_string(&format!("{s_d} started")).unwrap();
    let (events, _) =
        autoresearch_engine::events::read_events(&wd.join("engine").join("events.jsonl"), 0)
            .unwrap();
    let bumped = events
        .iter()
        .position(|e| e["event"] == "node_bumped" && e["id"] == s_d.as_str())
        .expect("a node_bumped event");
    let next = events[bumped..]
        .iter()
        .find(|e| e["event"] == "node_started")
        .expect("a start after the bump");
    assert_eq!(next["id"], s_d.as_str(), "after the bump {s_d} runs next");

    // 4. Commands, and the history (↑ recalls the previous line).
    type_line(&mut s, "status");
    s.exp_string(": running (pid ").unwrap();
    type_line(&mut s, &format!("show {s_a}"));
    s.exp_string("params      x=5").unwrap();
    press(&mut s, "\x1b[A"); // ↑: `show <s_a>` again (an escape sequence arrives whole)
    type_line(&mut s, "");
    s.exp_string("params      x=5").unwrap();
    type_keys(&mut s, "sh\t");
    type_keys(&mut s, &format!("{}\t", &s_d[..3]));
    type_line(&mut s, "");
    s.exp_string("params      x=8").unwrap();
    type_line(&mut s, "queue");
    s.exp_regex("priority +node|the queue is empty").unwrap();
    type_line(&mut s, "frobnicate");
    s.exp_string("unknown command `frobnicate`").unwrap();

    // 5. quit: the engine keeps running.
    type_line(&mut s, "quit");
    s.exp_string("The engine keeps running (pid").unwrap();
    s.exp_eof().unwrap();
    let pid = lock_holder(&wd).expect("the engine holds the lock after quit");
    assert!(pid_alive(pid));
    let st = status_json(&wd);
    assert_eq!(st["status"], "running", "{st}");
    let state: serde_json::Value = serde_json::from_slice(
        &std::fs::read(wd.join("engine").join("engine_state.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(state["pid"], pid);
    let history = std::fs::read_to_string(wd.join(".supervisor_history")).unwrap();
    for line in [
        format!("bump {s_d} -100"),
        format!("show {s_a}"),
        "status".into(),
        "queue".into(),
        "quit".into(),
    ] {
        assert!(
            history.contains(&line),
            "history lacks {line:?}:\n{history}"
        );
    }

    // 6. Reopening attaches to the running engine (no second one); Ctrl+D leaves.
    let mut s = session(&wd, &job_dir);
    s.exp_string(&format!("attached to the running engine (pid {pid})"))
        .unwrap();
    s.exp_string("wd> ").unwrap();
    type_line(&mut s, "status");
    s.exp_string(": running (pid ").unwrap();
    type_keys(&mut s, "\x04"); // Ctrl+D
    s.exp_string("The engine keeps running").unwrap();
    s.exp_eof().unwrap();
    assert_eq!(lock_holder(&wd), Some(pid), "still the same single engine");

    // 7. Stopped: reopening offers to resume; declining leaves it stopped.
    let out = Command::new(supervisor())
        .arg("stop")
        .arg(&wd)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(lock_holder(&wd), None);
    let mut s = session(&wd, &job_dir);
    s.exp_string(": interrupted").unwrap();
    answer(&mut s, "Resume the run now? [Y/n]", "n");
    s.exp_string("wd> ").unwrap();
    type_line(&mut s, "quit");
    s.exp_string("No engine is running").unwrap();
    s.exp_eof().unwrap();
    assert_eq!(lock_holder(&wd), None);
    assert_eq!(status_json(&wd)["status"], "interrupted");
}
