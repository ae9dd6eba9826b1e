//! The session's `ask` with the stand-in agent, in a pseudo-terminal against a live engine: the
//! answer is shown, a proposed `bump` changes nothing until the user answers `y`, and then
//! changes the queue through the engine.

use crate::pty;
use crate::standin;

use pty::{Lab, command, expect, prompt, wait_until};
use standin::standin;

/// The priority of `id` in `supervisor queue wd`, if queued.
fn priority(lab: &Lab, id: &str) -> Option<f64> {
    lab.sup(&["queue", lab.wd.to_str().unwrap()])
        .lines()
        .find_map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            (cols.len() == 3 && cols[2] == id).then(|| cols[1].parse().unwrap())
        })
}

#[test]
fn ask_proposes_a_bump_that_changes_nothing_until_confirmed() {
    let lab = Lab::new();
    lab.configure(3, 12);
    let mut s = lab.started_session();
    // The baseline runs (held by the gate); the seeds wait in the queue. Read from the
    // workdir, not the stream: its `started` line may come before the first prompt, which
    // `started_session` has already consumed.
    wait_until("the baseline running", || {
        (lab.status()["counts"]["running"].as_u64() == Some(1)).then_some(())
    });
    let s_a = lab.node_id("s_a");
    assert_eq!(priority(&lab, &s_a), Some(0.0));

    let ask = format!("ask --agent-command {} -- what should run next?", standin());
    command(&mut s, &ask, "Stand-in answer to: what should run next?");
    expect(&mut s, &format!("{s_a} is queued"));
    expect(&mut s, &format!("1. bump {s_a} to priority -5"));
    expect(&mut s, "Apply these queue changes? [y/N]");
    // While the question waits, nothing has changed.
    assert_eq!(priority(&lab, &s_a), Some(0.0));
    s.send_line("n").unwrap();
    expect(&mut s, "nothing was changed");
    prompt(&mut s);
    assert_eq!(priority(&lab, &s_a), Some(0.0), "`n` changes nothing");

    command(&mut s, &ask, "Apply these queue changes? [y/N]");
    s.send_line("y").unwrap();
    expect(&mut s, &format!("done: bump {s_a} to priority -5"));
    prompt(&mut s);
    wait_until("the bump in the engine's queue", || {
        (priority(&lab, &s_a) == Some(-5.0)).then_some(())
    });
    // Both answers were paid for and are shown in `status`.
    command(&mut s, "status", "agent cost: 2 calls (report/ask)");
}
