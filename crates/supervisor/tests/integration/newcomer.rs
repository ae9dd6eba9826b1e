//! A newcomer's mistakes and repairs, through the real binary: a run whose first experiments
//! fail stops early with the fix (fail-fast), a stopped run extended with larger limits runs
//! more, experiments are added by hand (live and offline), failed ones retried, results
//! re-read with a corrected metric name (`reanalyze`, crash-safe), and the stop reason printed
//! is always the real one.

use crate::support;

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use support::{Lab, assert_same, listed_ids, snapshot, start_order};

fn read(path: &Path) -> Value {
    serde_json::from_slice(&fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .unwrap()
}

/// A configuration for `sh <script> {v}` with the search space `v` 0..=9 (choices).
fn config(lab: &Lab, script: &str, metric: &str, seeds: &[(&str, i64)], extra: Value) -> Value {
    let seeds: Vec<Value> = seeds
        .iter()
        .enumerate()
        .map(|(i, (name, v))| json!({"name": name, "params": {"v": v}, "priority": i as f64 + 1.0}))
        .collect();
    let mut c = json!({
        "objective": {"metric": metric, "direction": "maximize"},
        "job": {"command": format!("sh {script} {{v}}"), "cwd": lab.root, "timeout_s": 120},
        "search_space": {"v": [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]},
        "baseline": {"v": 1},
        "seeds": seeds,
        "planner": {"kind": "none"},
        "limits": {"max_experiments": 10, "max_concurrency": 1, "patience": 20}
    });
    merge(&mut c, extra);
    c
}

fn merge(into: &mut Value, from: Value) {
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (slot, v) => *slot = v,
    }
}

fn config_file(lab: &Lab, name: &str, c: &Value) -> String {
    lab.write(name, &serde_json::to_string_pretty(c).unwrap())
        .display()
        .to_string()
}

/// The last line of `run`'s stderr that says why it stopped.
fn stop_line(stderr: &str) -> String {
    stderr
        .lines()
        .rev()
        .find(|l| l.starts_with("stopped") || l.starts_with("interrupted"))
        .unwrap_or_else(|| panic!("no stop line in:\n{stderr}"))
        .to_string()
}

fn node_ids(wd: &Path) -> Vec<String> {
    let mut ids: Vec<String> = fs::read_dir(wd.join("engine/nodes"))
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    ids
}

fn status_of(wd: &Path, id: &str) -> String {
    fs::read_to_string(wd.join("engine/nodes").join(id).join("status.txt"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

// ---------------------------------------------------------------------------------------------
// fail-fast

/// `objective.metric` misspelt: the baseline fails, the run stops at once with exit 1 and the
/// command that fixes it; `reanalyze --metric` fixes it without running anything again, and
/// the run goes on.
#[test]
fn a_wrong_metric_name_stops_after_the_baseline_and_reanalyze_fixes_it() {
    let lab = Lab::new();
    lab.open_gate();
    let c = config(
        &lab,
        "job.sh",
        "scroe",
        &[("a", 2), ("b", 3), ("c", 4)],
        json!({}),
    );
    let cfg = config_file(&lab, "cfg.json", &c);
    let out = lab.sup(&["run", "wd", "--config", &cfg, "--no-render"]);
    out.readable_error(1);
    let stop = stop_line(&out.stderr);
    assert!(
        stop.contains("fail-fast: the baseline 000_baseline failed with missing_metric"),
        "{stop}"
    );
    for needle in [
        "the job did not report `scroe`; metrics seen: [other, score]",
        "`supervisor reanalyze wd --metric score`",
    ] {
        assert!(
            out.stderr.contains(needle),
            "no {needle:?} in:\n{}",
            out.stderr
        );
    }
    let s = lab.status("wd");
    assert_eq!(s["experiments_started"], 1, "only the baseline ran: {s:#}");
    assert!(
        s["stop_reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("fail-fast:")),
        "{s:#}"
    );
    assert!(
        s["next_step"]
            .as_str()
            .is_some_and(|r| r.contains("reanalyze wd --metric score")),
        "{s:#}"
    );
    let text = lab.sup(&["status", "wd"]);
    assert!(
        text.stdout.contains("stopped because: fail-fast"),
        "{}",
        text.stdout
    );
    assert!(text.stdout.contains("next: "), "{}", text.stdout);
    let state = read(&lab.path("wd/state.json"));
    assert_eq!(state["fail_fast"]["kind"], "missing_metric", "{state:#}");
    assert_eq!(state["fail_fast"]["suggested_metric"], "score");

    // A bad name changes nothing.
    let before = snapshot(&lab.path("wd"));
    for bad in ["bad name", ""] {
        lab.sup(&["reanalyze", "wd", "--metric", bad])
            .readable_error(2);
        assert_same(&before, &snapshot(&lab.path("wd")), "a refused reanalyze");
    }

    let out = lab.sup(&["reanalyze", "wd", "--metric", "score"]);
    out.ok();
    assert!(
        out.stdout.contains("objective.metric: `scroe` → `score`"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("000_baseline: failed → completed, score = 1"),
        "{}",
        out.stdout
    );
    assert_eq!(
        read(&lab.path("wd/config.json"))["objective"]["metric"],
        "score"
    );
    let state = read(&lab.path("wd/state.json"));
    assert_eq!(state["metric"], "score");
    assert_eq!(state["best_node"], "000_baseline");
    assert_eq!(state["baseline_value"], 1.0);
    assert_eq!(state["experiments_completed"], 1);
    assert_eq!(state["experiments_failed"], 0);
    assert_eq!(state["plateau"], 0);
    assert!(state.get("fail_fast").is_none() && state["stop_reason"].is_null());
    assert!(
        !lab.path("wd/engine/nodes/000_baseline/failure.json")
            .exists()
    );
    assert_eq!(status_of(&lab.path("wd"), "000_baseline"), "completed");
    let result = read(&lab.path("wd/engine/nodes/000_baseline/result.json"));
    assert_eq!(result["primary"], 1.0);
    assert_eq!(result["improved"], true);
    assert!(
        lab.path("wd/master_table.tsv").is_file(),
        "views re-rendered"
    );

    // The seeds run now; nothing ran twice.
    let out = lab.sup(&["run", "wd", "--no-render"]);
    out.ok();
    assert!(
        stop_line(&out.stderr).contains("queue drained: everything queued ran"),
        "{}",
        out.stderr
    );
    assert_eq!(
        start_order(&lab.path("wd")),
        ["000_baseline", "001_a", "002_b", "003_c"]
    );
    let s = lab.status("wd");
    assert_eq!(s["counts"]["completed"], 4);
    assert_eq!(s["best"]["node_id"], "003_c");
}

/// While nothing has completed (the baseline is still running), 3 experiments failing with the
/// same kind stop the run: nothing more starts, the running baseline is let finish, exit 1.
#[test]
fn three_failures_of_one_kind_stop_the_run_before_anything_completed() {
    let lab = Lab::new();
    // `v = 0` fails at once; other values wait for the gate.
    lab.write(
        "fast.sh",
        &format!(
            "if [ \"$1\" = 0 ]; then echo 'no input file' >&2; exit 3; fi\n\
             while [ ! -e '{}/gate' ]; do sleep 0.05; done\n\
             echo \"METRIC score=$1\"\n",
            lab.root.display()
        ),
    );
    let mut c = config(
        &lab,
        "fast.sh",
        "score",
        &[],
        json!({"limits": {"max_concurrency": 2}}),
    );
    c["search_space"] = json!({"v": [0, 1, 2], "w": [1, 2, 3, 4, 5]});
    c["baseline"] = json!({"v": 1, "w": 1});
    c["seeds"] = json!([
        {"name": "a", "params": {"v": 0, "w": 2}, "priority": 1},
        {"name": "b", "params": {"v": 0, "w": 3}, "priority": 2},
        {"name": "c", "params": {"v": 0, "w": 4}, "priority": 3},
        {"name": "d", "params": {"v": 2, "w": 5}, "priority": 4},
    ]);
    c["job"]["command"] = json!("sh fast.sh {v} {w}");
    let cfg = config_file(&lab, "cfg.json", &c);
    let mut engine = lab.start_run("wd", &["--config", &cfg]);
    lab.wait_status("wd", "3 failures", |s| s["counts"]["failed"] == 3);
    lab.open_gate();
    engine.expect_exit(1);
    let stderr = engine.stderr();
    let stop = stop_line(&stderr);
    assert!(
        stop.contains("fail-fast: 3 experiments failed with nonzero_exit (001_a, 002_b, 003_c)"),
        "{stop}"
    );
    assert!(stderr.contains("wd/runs/003_c/stderr.log"), "{stderr}");
    assert!(
        stderr.contains("supervisor retry wd --all-failed"),
        "{stderr}"
    );
    assert!(
        !lab.path("wd/runs/004_d").exists(),
        "d started after the verdict"
    );
    assert_eq!(status_of(&lab.path("wd"), "000_baseline"), "completed");
}

// ---------------------------------------------------------------------------------------------
// extending a stopped run, and the real stop reason

/// A search run stopped by patience, then by max_experiments, runs more each time a limit is
/// raised, and says which limit stopped it (never a bare "queue drained").
#[test]
fn raising_patience_or_max_experiments_on_resume_runs_more() {
    let lab = Lab::new();
    lab.write("flat.sh", "echo \"METRIC score=5\"\n");
    let mut c = config(
        &lab,
        "flat.sh",
        "score",
        &[],
        json!({"planner": {"kind": "search"}, "limits": {"max_experiments": 20, "patience": 2}}),
    );
    // Room enough that the planner never runs out of neighbours.
    c["search_space"] = json!({"v": {"min": 0, "max": 100000, "type": "int"}});
    let cfg = config_file(&lab, "cfg.json", &c);
    let run = |extra: &[&str]| {
        let mut args = vec!["run", "wd", "--no-render"];
        args.extend_from_slice(extra);
        let out = lab.sup(&args);
        out.ok();
        let s = lab.status("wd");
        (stop_line(&out.stderr), out.stderr, s)
    };

    let (stop, stderr, s) = run(&["--config", &cfg]);
    assert_eq!(s["experiments_started"], 3, "{s:#}");
    assert!(
        stop.contains("patience spent: 2 experiments in a row"),
        "{stop}"
    );
    assert!(!stop.contains("queue drained"), "{stop}");
    assert!(
        stderr.contains("to go on, raise it: `supervisor run wd --patience 4`"),
        "{stderr}"
    );

    // Nothing raised: nothing runs, and the reason is still the limit.
    let (stop, _, s) = run(&[]);
    assert_eq!(s["experiments_started"], 3);
    assert!(stop.contains("patience spent"), "{stop}");

    let (stop, _, s) = run(&["--patience", "4"]);
    assert_eq!(s["experiments_started"], 5, "{s:#}");
    assert!(stop.contains("(patience 4)"), "{stop}");

    let (stop, stderr, s) = run(&["--patience", "100", "--max-experiments", "7"]);
    assert_eq!(s["experiments_started"], 7, "{s:#}");
    assert!(stop.contains("max_experiments reached"), "{stop}");
    assert!(stderr.contains("--max-experiments 27"), "{stderr}");
    assert!(
        s["stop_reason"]
            .as_str()
            .is_some_and(|r| r.contains("max_experiments")),
        "{s:#}"
    );

    let (stop, _, s) = run(&["--max-experiments", "9"]);
    assert_eq!(s["experiments_started"], 9, "{s:#}");
    assert!(stop.contains("max_experiments reached"), "{stop}");
}

/// A planner that said "stop" is asked again when a limit is raised; when it says it again,
/// that is the reason given.
#[test]
fn a_planner_stop_is_the_reason_and_is_asked_again_on_resume() {
    let lab = Lab::new();
    lab.open_gate();
    let mut c = config(
        &lab,
        "job.sh",
        "score",
        &[],
        json!({"planner": {"kind": "search"}}),
    );
    c["search_space"] = json!({"v": [1, 2]});
    let cfg = config_file(&lab, "cfg.json", &c);
    let out = lab.sup(&["run", "wd", "--config", &cfg, "--no-render"]);
    out.ok();
    assert!(
        stop_line(&out.stderr).contains("(planner: every point of the search space has been tried"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("supervisor queue wd add NAME"),
        "{}",
        out.stderr
    );
    let rounds = read(&lab.path("wd/state.json"))["planner_rounds"]
        .as_u64()
        .unwrap();
    let out = lab.sup(&["run", "wd", "--max-experiments", "50", "--no-render"]);
    out.ok();
    assert!(
        stop_line(&out.stderr).contains("(planner: "),
        "{}",
        out.stderr
    );
    let state = read(&lab.path("wd/state.json"));
    assert_eq!(
        state["planner_rounds"].as_u64().unwrap(),
        rounds + 1,
        "{state:#}"
    );
    assert_eq!(state["experiments_started"], 2);
}

// ---------------------------------------------------------------------------------------------
// queue add

#[test]
fn queue_add_offline_checks_its_input_and_the_experiment_runs() {
    let lab = Lab::new();
    lab.finished_workdir("wd");
    let before = snapshot(&lab.path("wd"));
    for (args, needle) in [
        (vec!["big", "v=42"], "v=42"),
        (vec!["big", "w=1"], "unknown parameter `w`"),
        (vec!["big", "v=2"], "001_a (completed)"),
        (vec!["big", "v=7", "v=8"], "given twice"),
        (vec!["v=7"], "the first word is the experiment's name"),
        (vec!["big", "v"], "expected PARAM=VALUE"),
        (vec!["big", "v=7", "--parent", "nosuch"], "--parent nosuch"),
        (vec!["big", "v=7", "--priority", "nan"], "--priority"),
    ] {
        let mut full = vec!["queue", "wd", "add"];
        full.extend_from_slice(&args);
        let out = lab.sup(&full);
        out.readable_error(2);
        assert!(
            out.stderr.contains(needle),
            "`{}`: {}",
            full.join(" "),
            out.stderr
        );
        assert_same(&before, &snapshot(&lab.path("wd")), &full.join(" "));
    }

    let out = lab.sup(&[
        "queue",
        "wd",
        "add",
        "big",
        "v=7",
        "--parent",
        "003_c",
        "--hypothesis",
        "seven wins",
    ]);
    out.ok();
    assert!(out.stdout.contains("added"), "{}", out.stdout);
    assert!(
        out.stdout.contains("`supervisor run wd` runs it"),
        "{}",
        out.stdout
    );
    let listed = listed_ids(&lab.sup(&["queue", "wd", "list"]).stdout);
    assert_eq!(listed.len(), 1, "{listed:?}");
    let id = listed[0].clone();
    assert!(id.starts_with("add-") && id.ends_with("-big"), "{id}");
    // The same parameters again: refused, it is queued already.
    let out = lab.sup(&["queue", "wd", "add", "again", "v=7"]);
    out.readable_error(2);
    assert!(out.stderr.contains(&id), "{}", out.stderr);

    lab.sup(&["run", "wd", "--no-render"]).ok();
    assert_eq!(status_of(&lab.path("wd"), &id), "completed");
    let spec = read(&lab.path(&format!("wd/engine/nodes/{id}/spec.json")));
    assert_eq!(spec["params"]["v"], 7);
    assert_eq!(spec["parent_id"], "003_c");
    assert_eq!(spec["hypothesis"], "seven wins");
    assert_eq!(lab.status("wd")["best"]["node_id"], id.as_str());
}

#[test]
fn queue_add_on_a_live_engine_runs_next() {
    let lab = Lab::new();
    let cfg = lab.default_config_file();
    let mut engine = lab.start_run("wd", &["--config", cfg.to_str().unwrap()]);
    lab.wait_running("wd", "000_baseline", 3);
    let out = lab.sup(&["queue", "wd", "add", "live", "v=8", "--priority", "-500"]);
    out.ok();
    assert!(out.stdout.contains("added"), "{}", out.stdout);
    assert!(
        out.stdout.contains("the running engine starts it"),
        "{}",
        out.stdout
    );
    let listed = listed_ids(&lab.sup(&["queue", "wd", "list"]).stdout);
    assert_eq!(listed.len(), 4, "{listed:?}");
    let id = listed[0].clone();
    assert!(id.ends_with("-live"), "{listed:?}");
    lab.open_gate();
    engine.expect_exit(0);
    assert_eq!(
        start_order(&lab.path("wd")),
        ["000_baseline", id.as_str(), "001_a", "002_b", "003_c"]
    );
    assert_eq!(
        read(&lab.path(&format!("wd/engine/nodes/{id}/result.json")))["primary"],
        8.0
    );
}

// ---------------------------------------------------------------------------------------------
// retry

#[test]
fn retry_runs_a_failed_experiment_again_as_a_new_linked_one() {
    let lab = Lab::new();
    // `v = 3` fails until the file `fixed` exists.
    lab.write(
        "flaky.sh",
        "if [ \"$1\" = 3 ] && [ ! -e fixed ]; then echo 'flaky' >&2; exit 4; fi\n\
         echo \"METRIC score=$1\"\n",
    );
    let c = config(
        &lab,
        "flaky.sh",
        "score",
        &[("a", 2), ("b", 3), ("c", 4)],
        json!({"limits": {"max_experiments": 4}}),
    );
    let cfg = config_file(&lab, "cfg.json", &c);
    lab.sup(&["run", "wd", "--config", &cfg, "--no-render"])
        .ok();
    assert_eq!(status_of(&lab.path("wd"), "002_b"), "failed");

    let before = snapshot(&lab.path("wd"));
    for (args, needle) in [
        (vec!["000_baseline"], "completed, not failed"),
        (vec!["nosuch"], "no such experiment"),
        (vec!["002_b", "--all-failed"], "--all-failed"),
    ] {
        let mut full = vec!["retry", "wd"];
        full.extend_from_slice(&args);
        let out = lab.sup(&full);
        out.readable_error(2);
        assert!(
            out.stderr.contains(needle),
            "`{}`: {}",
            full.join(" "),
            out.stderr
        );
        assert_same(&before, &snapshot(&lab.path("wd")), &full.join(" "));
    }

    lab.write("fixed", "");
    let out = lab.sup(&["retry", "wd", "--all-failed"]);
    out.ok();
    assert!(out.stdout.contains("002_b → retry-"), "{}", out.stdout);
    // Counted against max_experiments (4 started): the output says how to make room.
    assert!(out.stdout.contains("--max-experiments 5"), "{}", out.stdout);
    let out = lab.sup(&["retry", "wd", "002_b"]);
    out.readable_error(2);
    assert!(out.stderr.contains("retried already"), "{}", out.stderr);

    // At the limit it does not run: the reason says so.
    let out = lab.sup(&["run", "wd", "--no-render"]);
    out.ok();
    assert!(
        stop_line(&out.stderr).contains("max_experiments reached"),
        "{}",
        out.stderr
    );
    let out = lab.sup(&["run", "wd", "--max-experiments", "5", "--no-render"]);
    out.ok();
    let retry = node_ids(&lab.path("wd"))
        .into_iter()
        .find(|id| id.starts_with("retry-"))
        .expect("the retry node");
    assert!(retry.ends_with("-b"), "{retry}");
    assert_eq!(status_of(&lab.path("wd"), &retry), "completed");
    assert_eq!(status_of(&lab.path("wd"), "002_b"), "failed");
    let spec = read(&lab.path(&format!("wd/engine/nodes/{retry}/spec.json")));
    assert_eq!(spec["parent_id"], "002_b");
    assert_eq!(spec["params"]["v"], 3);
    assert!(
        spec["hypothesis"]
            .as_str()
            .is_some_and(|h| h.starts_with("retry of 002_b")),
        "{spec:#}"
    );
    let s = lab.status("wd");
    assert_eq!(s["experiments_started"], 5);
    assert_eq!(s["counts"]["completed"], 4);
    assert_eq!(s["counts"]["failed"], 1);
    let out = lab.sup(&["retry", "wd", "--all-failed"]);
    out.ok();
    assert!(out.stdout.contains("nothing to retry"), "{}", out.stdout);
}

// ---------------------------------------------------------------------------------------------
// reanalyze

#[test]
fn reanalyze_is_refused_while_an_engine_runs() {
    let lab = Lab::new();
    let cfg = lab.default_config_file();
    let mut engine = lab.start_run("wd", &["--config", cfg.to_str().unwrap()]);
    lab.wait_running("wd", "000_baseline", 3);
    let out = lab.sup(&["reanalyze", "wd", "--metric", "other"]);
    out.readable_error(3);
    assert!(out.stderr.contains("supervisor stop wd"), "{}", out.stderr);
    assert_eq!(
        read(&lab.path("wd/config.json"))["objective"]["metric"],
        "score"
    );
    lab.open_gate();
    engine.expect_exit(0);
}

/// The files a reanalysis decides, for comparison (`updated_at` and times left out).
fn outcome(wd: &Path) -> Value {
    let mut state = read(&wd.join("state.json"));
    state.as_object_mut().unwrap().remove("updated_at");
    let nodes: Vec<Value> = node_ids(wd)
        .iter()
        .map(|id| {
            let dir = wd.join("engine/nodes").join(id);
            json!({
                "id": id,
                "status": status_of(wd, id),
                "result": fs::read(dir.join("result.json")).ok().map(|b| serde_json::from_slice::<Value>(&b).unwrap()),
                "failure": fs::read(dir.join("failure.json")).ok().map(|b| serde_json::from_slice::<Value>(&b).unwrap()["message"].clone()),
            })
        })
        .collect();
    json!({"state": state, "config": read(&wd.join("config.json")), "nodes": nodes})
}

fn copy_dir(from: &Path, to: &Path) {
    let status = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success());
}

/// A reanalysis stopped half-way (a planted link makes a node's write fail after others were
/// written) leaves a journal: `run` refuses to start, and `reanalyze` run again finishes it to
/// exactly the outcome of an uninterrupted one.
#[test]
fn a_reanalyze_cut_short_is_refused_by_run_and_finished_by_reanalyze() {
    let lab = Lab::new();
    lab.finished_workdir("wd");
    copy_dir(&lab.path("wd"), &lab.path("reference"));
    lab.sup(&["reanalyze", "reference", "--metric", "other"])
        .ok();
    let want = outcome(&lab.path("reference"));
    assert_eq!(want["state"]["best_node"], "003_c");
    assert_eq!(want["state"]["best_value"], 40.0);

    // A link where 002_b's analysis.md goes: its result.json is rewritten, then the write fails.
    let analysis = lab.path("wd/runs/002_b/analysis.md");
    fs::remove_file(&analysis).unwrap();
    std::os::unix::fs::symlink(lab.path("elsewhere.md"), &analysis).unwrap();
    let out = lab.sup(&["reanalyze", "wd", "--metric", "other"]);
    out.readable_error(1);
    assert!(out.stderr.contains("002_b/analysis.md"), "{}", out.stderr);
    assert!(
        !lab.path("elsewhere.md").exists(),
        "written through the link"
    );
    assert!(lab.path("wd/reanalyze.journal.json").is_file());
    let run = lab.sup(&["run", "wd", "--no-render"]);
    run.readable_error(2);
    assert!(
        run.stderr.contains("supervisor reanalyze wd"),
        "{}",
        run.stderr
    );

    // Half applied: 001_a has the new metric, 003_c not yet.
    let primary =
        |id: &str| read(&lab.path(&format!("wd/engine/nodes/{id}/result.json")))["primary"].clone();
    assert_eq!(primary("001_a"), 20.0);
    assert_eq!(primary("003_c"), 4.0);
    fs::remove_file(&analysis).unwrap();
    let out = lab.sup(&["reanalyze", "wd"]);
    out.ok();
    assert!(
        out.stdout
            .contains("finished a reanalyze (metric `other`) that was cut short"),
        "{}",
        out.stdout
    );
    assert!(!lab.path("wd/reanalyze.journal.json").exists());
    assert_eq!(outcome(&lab.path("wd")), want);
}

/// Writes a finished run of `n` nodes (files as the workflow writes them) whose jobs reported
/// `score = i` and `other = n - i`: a workdir large enough for a kill to land mid-way.
fn synthetic_run(lab: &Lab, wd: &Path, n: usize) {
    let c = config(
        lab,
        "job.sh",
        "score",
        &[],
        json!({"limits": {"max_experiments": n}}),
    );
    fs::create_dir_all(wd.join("engine/nodes")).unwrap();
    fs::write(
        wd.join("config.json"),
        serde_json::to_vec_pretty(&c).unwrap(),
    )
    .unwrap();
    let mut recorded = Vec::new();
    for i in 0..n {
        let id = format!("{i:03}_n{i}");
        let dir = wd.join("engine/nodes").join(&id);
        let run = wd.join("runs").join(&id);
        fs::create_dir_all(&dir).unwrap();
        fs::create_dir_all(&run).unwrap();
        let spec = json!({"node_id": id, "name": format!("n{i}"), "parent_id": null,
            "hypothesis": "h", "params": {"v": i % 10}, "changes": null,
            "command": "sh job.sh 1", "priority": 0.0, "created_at": "2026-01-01T00:00:00.000Z"});
        fs::write(dir.join("spec.json"), serde_json::to_vec(&spec).unwrap()).unwrap();
        fs::write(dir.join("status.txt"), "completed\n").unwrap();
        let result = json!({"metrics": {"score": i as f64, "other": (n - i) as f64},
            "primary": i as f64, "improved": true, "duration_s": 0.1, "exit_code": 0,
            "children": [], "analysis": ""});
        fs::write(
            dir.join("result.json"),
            serde_json::to_vec(&result).unwrap(),
        )
        .unwrap();
        fs::write(
            run.join("stdout.log"),
            format!("METRIC score={i}\nMETRIC other={}\n", n - i),
        )
        .unwrap();
        recorded.push(id);
    }
    let state = json!({"schema_version": 1, "metric": "score", "direction": "maximize",
        "best_node": recorded.last(), "best_value": (n - 1) as f64,
        "baseline_node": recorded.first(), "baseline_value": 0.0, "plateau": 0,
        "experiments_started": n, "experiments_completed": n, "experiments_failed": 0,
        "time_used_s": 1.0, "planner_rounds": 0, "next_index": n, "stop_reason": "done",
        "updated_at": "2026-01-01T00:00:00.000Z", "recorded": recorded, "awaiting_planning": []});
    fs::write(wd.join("state.json"), serde_json::to_vec(&state).unwrap()).unwrap();
}

/// `reanalyze` killed (SIGKILL) at several moments: the workdir holds the old outcome, or the
/// new one, or a journal that `reanalyze` run again turns into the new one.
#[test]
fn reanalyze_killed_at_any_moment_leaves_the_old_or_the_new_outcome() {
    let lab = Lab::new();
    let n = 300;
    synthetic_run(&lab, &lab.path("base"), n);
    let old = outcome(&lab.path("base"));
    copy_dir(&lab.path("base"), &lab.path("reference"));
    lab.sup(&["reanalyze", "reference", "--metric", "other"])
        .ok();
    let new = outcome(&lab.path("reference"));
    assert_eq!(new["state"]["best_node"], "000_n0");
    assert_ne!(old, new);
    let mut seen = Vec::new();
    for (k, delay_ms) in [0u64, 30, 100, 250, 600, 1200].into_iter().enumerate() {
        let wd = lab.path(&format!("kill{k}"));
        copy_dir(&lab.path("base"), &wd);
        let mut child = Command::new(support::bin())
            .args(["reanalyze", wd.to_str().unwrap(), "--metric", "other"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        let journal = wd.join("reanalyze.journal.json").exists();
        let now = outcome(&wd);
        let case = if journal {
            let out = lab.sup(&["reanalyze", wd.to_str().unwrap()]);
            out.ok();
            assert_eq!(
                outcome(&wd),
                new,
                "kill after {delay_ms} ms, finished by a rerun"
            );
            "journal, finished by a rerun"
        } else if now == old {
            "old"
        } else {
            assert_eq!(
                now, new,
                "kill after {delay_ms} ms: neither the old nor the new"
            );
            "new"
        };
        eprintln!("killed after {delay_ms} ms: {case}");
        seen.push(case);
    }
    eprintln!("cases seen: {seen:?}");
}

// ---------------------------------------------------------------------------------------------
// the other newcomer mistakes of the first hour

/// Malformed ranges are refused with the range they probably meant (the `1-256` case and the
/// missing `--direction` are in cli.rs).
#[test]
fn malformed_ranges_get_a_did_you_mean() {
    let lab = Lab::new();
    for spec in ["cutoff=1:256", "cutoff=[1,256]", "cutoff=1-256"] {
        let out = lab.sup(&[
            "run",
            "new-wd",
            "--command",
            "sh job.sh {cutoff}",
            "--metric",
            "score",
            "--direction",
            "max",
            "--param",
            spec,
        ]);
        out.readable_error(2);
        assert!(
            out.stderr.contains("did you mean cutoff=1..256?"),
            "{spec}: {}",
            out.stderr
        );
        assert!(!lab.path("new-wd").exists());
    }
}

/// A run with `repeats: 3`: `reanalyze --metric` re-reads every run of every node
/// (`runs/<id>/` and `runs/<id>/repeat-<k>/`) and aggregates them, keeping each run's value.
#[test]
fn reanalyze_aggregates_every_run_of_a_repeated_node() {
    let lab = Lab::new();
    lab.open_gate();
    lab.write(
        "rep.sh",
        "echo \"METRIC score=$1\"\necho \"METRIC other=$(( $1 * 10 + AUTORESEARCH_REPEAT ))\"\n",
    );
    let c = config(
        &lab,
        "rep.sh",
        "score",
        &[("a", 2)],
        json!({"objective": {"repeats": 3}, "limits": {"max_experiments": 2}}),
    );
    let cfg = config_file(&lab, "cfg.json", &c);
    lab.sup(&["run", "wd", "--config", &cfg, "--no-render"])
        .ok();
    let result = |id: &str| read(&lab.path(&format!("wd/engine/nodes/{id}/result.json")));
    assert_eq!(result("001_a")["samples"], json!([2.0, 2.0, 2.0]));

    lab.sup(&["reanalyze", "wd", "--metric", "other"]).ok();
    let a = result("001_a");
    assert_eq!(a["samples"], json!([21.0, 22.0, 23.0]), "{a:#}");
    assert_eq!(a["primary"], json!(22.0), "the median: {a:#}");
    assert_eq!(a["spread"]["n"], json!(3), "{a:#}");
    assert_eq!(a["improved"], json!(true), "{a:#}");
    let base = result("000_baseline");
    assert_eq!(base["samples"], json!([11.0, 12.0, 13.0]), "{base:#}");
    let state = read(&lab.path("wd/state.json"));
    assert_eq!(state["best_node"], "001_a", "{state:#}");
    assert_eq!(state["best_n"], 3, "{state:#}");
    assert_eq!(state["noise_floor"]["nodes"], 2, "{state:#}");
}
