//! The interactive session `supervisor <workdir>` driven through a pseudo-terminal, one test
//! per behaviour: the configuration questions, events streaming in with local times, tab
//! completion and a live bump, the history, `quit` leaving the engine running and attaching to
//! it again, the resume offer after a stop, a run at its limit (told how to extend it, then
//! extended), and typing mistakes (non-ASCII input included) answered without a crash.

use crate::pty;

use std::process::Command;

use autoresearch_adapters::workflow::events::RunEvent;
use autoresearch_engine::Event;
use pty::{
    Lab, answer, command, lock_holder, pid_alive, prompt, supervisor, type_text, wait_until,
};

#[test]
fn questionnaire_reasks_a_wrong_answer_writes_the_config_and_starts_the_engine() {
    let lab = Lab::new();
    let mut s = lab.session();
    answer(&mut s, "Primary metric name", "bad metric!");
    s.exp_string("letters, digits").unwrap(); // the reason, then the same question again
    answer(&mut s, "Primary metric name", "score");
    // No default direction: an empty answer is asked again.
    answer(&mut s, "Is a higher or a lower metric better?", "");
    s.exp_string("direction is required").unwrap();
    answer(&mut s, "Is a higher or a lower metric better?", "max");
    answer(&mut s, "Command of one experiment", "sh job.sh {x}");
    answer(&mut s, "Working directory of the command", "");
    answer(&mut s, "parameter 1", "x=1..50");
    // A parameter once given can be redefined.
    answer(&mut s, "parameter 2", "x=1..100");
    s.exp_string("x redefined: an integer from 1 to 100")
        .unwrap();
    answer(&mut s, "parameter 2", "");
    answer(&mut s, "Baseline value of x [1]", "");
    answer(&mut s, "seed 1", "s_a x=5");
    answer(&mut s, "seed 2", "");
    answer(&mut s, "Maximum number of experiments [40]", "12");
    answer(&mut s, "Experiments running at once [2]", "1");
    s.exp_string("config.json").unwrap();
    s.exp_string("engine started in the background (pid ")
        .unwrap();
    prompt(&mut s);
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(lab.wd.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["objective"]["metric"], "score");
    assert_eq!(config["limits"]["max_concurrency"], 1);
    assert_eq!(config["limits"]["max_experiments"], 12);
    assert_eq!(config["seeds"].as_array().unwrap().len(), 1);
    assert!(lock_holder(&lab.wd).is_some(), "the engine runs");
}

#[test]
fn events_stream_above_the_prompt_in_local_time() {
    let lab = Lab::new();
    lab.configure(0, 1);
    // Three hours east of UTC, whatever the machine's zone.
    let mut s = lab.session_with(&[("TZ", "XYZ-3")]);
    answer(&mut s, "Start the run now? [Y/n]", "y");
    let (_, line) = s
        .exp_regex(r"[0-9]{2}:[0-9]{2}:[0-9]{2} \S+ [0-9]{3}_baseline started")
        .unwrap();
    let shown = &line[..8];
    let words: Vec<&str> = line.split(' ').collect();
    let id = words[words.len() - 2].to_owned();
    let started = lab
        .events()
        .into_iter()
        .find(
            |e| matches!(&e.event, RunEvent::Engine(Event::SpecStarted { id: i, .. }) if *i == id),
        )
        .expect("the start event");
    let ts = started.ts.as_str();
    let utc = humantime::parse_rfc3339_weak(ts).unwrap();
    let local = humantime::format_rfc3339_seconds(utc + std::time::Duration::from_secs(3 * 3600))
        .to_string();
    assert_eq!(shown, &local[11..19], "event at {ts} shown as {shown}");

    lab.open_gate();
    s.exp_regex(r"completed: score=1 in [0-9.]+s").unwrap();
    s.exp_string("new best").unwrap();
}

#[test]
fn tab_completes_and_a_live_bump_runs_the_bumped_node_next() {
    let lab = Lab::new();
    lab.configure(4, 12);
    let mut s = lab.started_session();
    // The baseline runs (held by the gate); the four seeds wait in the queue. Read from the
    // workdir, not the stream: its `started` line may come before the first prompt, which
    // `started_session` has already consumed.
    wait_until("the baseline running", || {
        (lab.status()["counts"]["running"].as_u64() == Some(1)).then_some(())
    });
    let s_d = lab.node_id("s_d");

    type_text(&mut s, "bu\t");
    s.exp_string("bump ").unwrap();
    type_text(&mut s, &format!("{}\t", &s_d[..3]));
    s.exp_string(&format!("{s_d} ")).unwrap();
    command(&mut s, "-100", &format!("{s_d}: priority set to -100"));

    lab.open_gate();
    s.exp_string(&format!("{s_d} started")).unwrap();
    let events = lab.events();
    let bumped = events
        .iter()
        .position(
            |e| matches!(&e.event, RunEvent::Engine(Event::SpecBumped { id, .. }) if *id == s_d),
        )
        .expect("a bump event");
    let next = events[bumped..]
        .iter()
        .find_map(|e| match &e.event {
            RunEvent::Engine(Event::SpecStarted { id, .. }) => Some(id.clone()),
            _ => None,
        })
        .expect("a start after the bump");
    assert_eq!(next, s_d, "after the bump {s_d} runs next");
}

#[test]
fn the_history_recalls_lines_and_is_kept_in_the_workdir() {
    let lab = Lab::new();
    lab.configure(1, 3);
    let mut s = lab.started_session();
    let s_a = lab.node_id("s_a");
    command(&mut s, &format!("show {s_a}"), "params      x=5");
    prompt(&mut s);
    // ↑ recalls `show <s_a>` (an escape sequence arrives whole), Enter runs it again.
    type_text(&mut s, "\x1b[A");
    s.exp_string(&format!("show {s_a}")).unwrap();
    command(&mut s, "", "params      x=5");
    command(&mut s, " status", ": running (pid "); // a leading space keeps it out
    command(&mut s, "quit", "The engine keeps running");
    s.exp_eof().unwrap();
    let history = std::fs::read_to_string(lab.wd.join(".supervisor_history")).unwrap();
    assert!(history.contains(&format!("show {s_a}")), "{history}");
    assert!(history.contains("quit"), "{history}");
    assert!(!history.contains("status"), "{history}");
}

#[test]
fn quit_leaves_the_engine_running_and_reopening_attaches_to_it() {
    let lab = Lab::new();
    lab.configure(1, 3);
    let mut s = lab.started_session();
    command(&mut s, "quit", "The engine keeps running (pid");
    s.exp_eof().unwrap();
    let pid = lock_holder(&lab.wd).expect("the engine holds the lock after quit");
    assert!(pid_alive(pid));
    assert_eq!(lab.status()["status"], "running");

    let mut s = lab.session();
    s.exp_string(&format!("attached to the running engine (pid {pid})"))
        .unwrap();
    prompt(&mut s);
    command(&mut s, "status", ": running (pid ");
    type_text(&mut s, "\x04"); // Ctrl+D
    s.exp_string("The engine keeps running").unwrap();
    s.exp_eof().unwrap();
    assert_eq!(
        lock_holder(&lab.wd),
        Some(pid),
        "still the same single engine"
    );
}

#[test]
fn a_stopped_run_is_offered_a_resume_and_declining_leaves_it_stopped() {
    let lab = Lab::new();
    lab.configure(1, 3);
    let mut s = lab.started_session();
    command(&mut s, "quit", "The engine keeps running");
    s.exp_eof().unwrap();
    lab.sup(&["stop", lab.wd.to_str().unwrap()]);
    assert_eq!(lock_holder(&lab.wd), None);

    let mut s = lab.session();
    s.exp_string(": interrupted").unwrap();
    answer(&mut s, "Resume the run now? [Y/n]", "n");
    prompt(&mut s);
    command(&mut s, "quit", "No engine is running");
    s.exp_eof().unwrap();
    assert_eq!(lock_holder(&lab.wd), None);
    assert_eq!(lab.status()["status"], "interrupted");
}

#[test]
fn a_run_at_its_limit_is_told_how_to_extend_and_extend_runs_more() {
    let lab = Lab::new();
    lab.configure(3, 2);
    lab.open_gate();
    // Headless to the limit: the baseline and s_a run, s_b and s_c stay queued.
    let out = Command::new(supervisor())
        .args(["run", lab.wd.to_str().unwrap(), "--no-render"])
        .current_dir(&lab.root)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(lab.status()["experiments_started"], 2);

    let mut s = lab.session();
    s.exp_string("max_experiments reached (2 of 2 started)")
        .unwrap();
    let before_prompt = s.exp_string("wd> ").unwrap();
    assert!(
        !before_prompt.contains("Resume"),
        "no resume offer at a limit:\n{before_prompt}"
    );
    command(&mut s, "start", "not started: the run would stop at once");
    command(&mut s, "extend 2", "limits.max_experiments: 2 → 4");
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(lab.wd.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["limits"]["max_experiments"], 4);
    command(&mut s, "start", "engine started in the background");
    s.exp_regex(r"[0-9]{3}_s_c completed").unwrap();
    let started = pty::wait_until("the engine to stop after 4 experiments", || {
        let st = lab.status();
        (st["status"] != "running").then_some(st["experiments_started"].clone())
    });
    assert_eq!(started, 4);
}

#[test]
fn typing_mistakes_get_an_answer_not_a_crash() {
    let lab = Lab::new();
    lab.configure(0, 1);
    let mut s = lab.session();
    answer(&mut s, "Start the run now? [Y/n]", "n");
    prompt(&mut s);
    // A non-ASCII first character used to panic on a char boundary.
    command(&mut s, "ütatus", "unknown command `ütatus`");
    command(&mut s, "日本", "unknown command `日本`");
    command(&mut s, "stauts", "did you mean status");
    command(&mut s, "bump 001_x", "usage: bump <id> <priority>");
    command(&mut s, "set patiense 3", "did you mean patience");
    command(&mut s, "show 'unclosed", "unbalanced quotes");
    command(&mut s, "status", ": new");
    command(&mut s, "clear", "\x1b[2J");
    command(&mut s, "quit", "No engine is running");
    s.exp_eof().unwrap();
}

#[test]
fn add_retry_and_reanalyze_work_in_the_session() {
    let lab = Lab::new();
    lab.configure(1, 4);
    lab.open_gate();
    let out = Command::new(supervisor())
        .args(["run", lab.wd.to_str().unwrap(), "--no-render"])
        .current_dir(&lab.root)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut s = lab.session();
    answer(&mut s, "Resume the run now? [Y/n]", "n");
    prompt(&mut s);
    command(&mut s, "add big x=500", "expected an integer from 1 to 100");
    command(
        &mut s,
        "add big x=50 --hypothesis 'fifty'",
        "added to the queue",
    );
    command(&mut s, "queue", "-100  add-");
    command(&mut s, "retry 000_baseline", "not failed");
    command(&mut s, "retry --all-failed", "nothing to retry");
    command(
        &mut s,
        "reanalyze --metric 'no good'",
        "expected a metric name",
    );
    command(&mut s, "reanalyze", "objective.metric: `score` (unchanged)");
    command(&mut s, "start", "engine started in the background");
    pty::wait_until("the hand-added experiment to run", || {
        let st = lab.status();
        (st["status"] != "running" && st["counts"]["completed"] == 3).then_some(())
    });
}
