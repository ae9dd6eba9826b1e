//! Command-line tests of `supervisor`: every command on real workdirs, run by the
//! binary with small shell jobs that print `METRIC score=<n>`.
//!
//! The jobs of the default configuration wait for a gate file before reporting, so a test
//! decides when the first experiment ends: while it runs the engine is observably `running`,
//! can be bumped, stopped, locked or killed. Everything that waits polls with a deadline.

use crate::support;

use std::fs;

use autoresearch_engine::checkpoint;
use serde_json::{Value, json};
use support::{
    Lab, SEEDS, assert_readable, assert_same, listed_ids, running_ids, snapshot, start_order,
};

// ---------------------------------------------------------------------------------------------
// status

#[test]
fn status_new_workdir_with_only_a_config() {
    let lab = Lab::new();
    let wd = lab.path("fresh");
    fs::create_dir_all(&wd).unwrap();
    fs::write(
        wd.join("config.json"),
        serde_json::to_string_pretty(&lab.config(SEEDS, 10)).unwrap(),
    )
    .unwrap();
    let before = snapshot(&wd);

    let s = lab.status("fresh");
    assert_eq!(s["status"], "new");
    assert_eq!(s["pid"], Value::Null);
    assert_eq!(
        s["counts"],
        json!({"queued": 0, "running": 0, "completed": 0, "failed": 0})
    );
    assert_eq!(s["best"], Value::Null);
    assert_eq!(s["running"], json!([]));

    let text = lab.sup(&["status", "fresh"]);
    text.ok();
    assert!(text.stdout.contains("new"), "{}", text.stdout);
    assert!(text.stdout.contains("best: none yet"), "{}", text.stdout);
    assert_same(&before, &snapshot(&wd), "status");
}

#[test]
fn status_on_an_invalid_checkpoint_says_so_and_fails() {
    let lab = Lab::new();
    let wd = lab.path("broken");
    fs::create_dir_all(wd.join("engine")).unwrap();
    fs::write(
        wd.join("config.json"),
        serde_json::to_string_pretty(&lab.config(SEEDS, 10)).unwrap(),
    )
    .unwrap();
    fs::write(
        wd.join("engine/checkpoint.json"),
        "{\"schema_version\": 1, \"status\": \"stopped\",\n\"queued\": [], \"queued\": []}\n",
    )
    .unwrap();
    let out = lab.sup(&["status", "broken"]);
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(
        out.stderr.contains("checkpoint.json:2:")
            && out.stderr.contains("duplicate key `queued`")
            && out.stderr.contains("supervisor repair"),
        "{}",
        out.stderr
    );
}

#[test]
fn status_running_then_stopped_with_best_and_counts() {
    let lab = Lab::new();
    let mut seeds = SEEDS.to_vec();
    seeds.push(("zero", 0, 4.0)); // fails: exit status 3
    let cfg = lab.write(
        "cfg.json",
        &serde_json::to_string(&lab.config(&seeds, 10)).unwrap(),
    );
    let mut engine = lab.start_run("wd", &["--config", cfg.to_str().unwrap()]);

    let s = lab.wait_running("wd", "000_baseline", 4);
    assert_eq!(running_ids(&s), ["000_baseline"]);
    assert_eq!(s["pid"], json!(engine.pid()));
    assert_eq!(s["best"], Value::Null);
    assert_eq!(s["counts"]["running"], 1);
    assert_eq!(s["counts"]["completed"], 0);
    let job = s["running"][0]["job_id"].as_str().unwrap_or_default();
    assert!(job.starts_with("local:"), "job id of a running node: {s:#}");
    let text = lab.sup(&["status", "wd"]);
    text.ok();
    assert!(
        text.stdout
            .contains(&format!("wd: running (pid {})", engine.pid())),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout.contains("running: 000_baseline local:"),
        "{}",
        text.stdout
    );

    lab.open_gate();
    engine.expect_exit(0);

    let s = lab.status("wd");
    assert_eq!(s["status"], "stopped", "{s:#}");
    assert_eq!(s["pid"], json!(engine.pid()));
    assert_eq!(
        s["counts"],
        json!({"queued": 0, "running": 0, "completed": 4, "failed": 1})
    );
    assert_eq!(
        s["best"],
        json!({"node_id": "003_c", "metric": "score", "value": 4.0})
    );
    assert_eq!(s["running"], json!([]));
    let text = lab.sup(&["status", "wd"]);
    text.ok();
    assert!(
        text.stdout.contains("best: 003_c score = 4"),
        "{}",
        text.stdout
    );
}

#[test]
fn stop_interrupts_the_engine_and_run_exits_130() {
    let lab = Lab::new();
    let cfg = lab.default_config_file();
    let mut engine = lab.start_run("wd", &["--config", cfg.to_str().unwrap()]);
    lab.wait_running("wd", "000_baseline", 3);

    let out = lab.sup(&["stop", "wd"]);
    out.ok();
    assert!(out.stdout.contains("interrupted"), "{}", out.stdout);
    engine.expect_exit(130);

    let s = lab.status("wd");
    assert_eq!(s["status"], "interrupted", "{s:#}");
    assert_eq!(s["pid"], json!(engine.pid()));
    assert_eq!(s["best"], Value::Null);
    assert_eq!(s["counts"]["queued"], 3);
    // The job keeps running after an interrupt: the checkpoint lists it as running.
    assert_eq!(running_ids(&s), ["000_baseline"]);
    assert!(
        s["running"][0]["job_id"]
            .as_str()
            .is_some_and(|j| j.starts_with("local:")),
        "{s:#}"
    );
    let text = lab.sup(&["status", "wd"]);
    text.ok();
    assert!(
        text.stdout.contains(&format!(
            "wd: interrupted (last engine: pid {})",
            engine.pid()
        )),
        "{}",
        text.stdout
    );

    // A second stop finds nothing to stop.
    let again = lab.sup(&["stop", "wd"]);
    again.ok();
    assert!(
        again.stdout.contains("no engine is running"),
        "{}",
        again.stdout
    );

    let list = lab.sup(&["list", lab.root.to_str().unwrap()]);
    list.ok();
    let line = list
        .stdout
        .lines()
        .find(|l| l.ends_with("/wd"))
        .unwrap_or_else(|| panic!("wd not listed:\n{}", list.stdout));
    assert!(line.starts_with("interrupted"), "{line}");

    // Resuming finishes the run: the interrupted job is re-attached, not relaunched.
    lab.open_gate();
    lab.sup(&["run", "wd", "--no-render"]).ok();
    let s = lab.status("wd");
    assert_eq!(s["status"], "stopped");
    assert_eq!(s["counts"]["completed"], 4);
    let job: Value =
        serde_json::from_slice(&fs::read(lab.path("wd/runs/000_baseline/job.json")).unwrap())
            .unwrap();
    assert_eq!(
        job["attempt"], 1,
        "the interrupted job was relaunched: {job:#}"
    );
}

#[test]
fn sigkill_of_run_shows_crashed() {
    let lab = Lab::new();
    let cfg = lab.default_config_file();
    let mut engine = lab.start_run("wd", &["--config", cfg.to_str().unwrap()]);
    // Wait until the checkpoint on disk lists the running job.
    lab.wait_running("wd", "000_baseline", 3);
    let pid = engine.pid();
    engine.kill();

    let s = lab.status("wd");
    assert_eq!(s["status"], "crashed", "{s:#}");
    assert_eq!(s["pid"], json!(pid));
    assert_eq!(s["message"], json!(format!("crashed (pid {pid} gone)")));
    assert_eq!(running_ids(&s), ["000_baseline"]);
    assert!(
        s["running"][0]["job_id"]
            .as_str()
            .is_some_and(|j| j.starts_with("local:")),
        "{s:#}"
    );
    let text = lab.sup(&["status", "wd"]);
    text.ok();
    assert!(
        text.stdout.contains(&format!("crashed (pid {pid} gone)")),
        "{}",
        text.stdout
    );

    let list = lab.sup(&["list", lab.root.to_str().unwrap()]);
    list.ok();
    assert!(
        list.stdout
            .lines()
            .any(|l| l.starts_with(&format!("crashed (pid {pid} gone)")) && l.ends_with("/wd")),
        "{}",
        list.stdout
    );

    // A crashed workdir resumes like an interrupted one.
    lab.open_gate();
    lab.sup(&["run", "wd", "--no-render"]).ok();
    let s = lab.status("wd");
    assert_eq!(s["status"], "stopped", "{s:#}");
    assert_eq!(s["counts"]["completed"], 4);
}

// ---------------------------------------------------------------------------------------------
// queue

#[test]
fn queue_bump_and_drop_on_a_live_engine_change_what_runs_next() {
    let lab = Lab::new();
    let cfg = lab.default_config_file();
    let mut engine = lab.start_run("wd", &["--config", cfg.to_str().unwrap()]);
    lab.wait_running("wd", "000_baseline", 3);

    let list = lab.sup(&["queue", "wd", "list"]);
    list.ok();
    assert_eq!(
        listed_ids(&list.stdout),
        ["001_a", "002_b", "003_c"],
        "{}",
        list.stdout
    );

    let bump = lab.sup(&["queue", "wd", "bump", "003_c", "-50"]);
    bump.ok();
    assert!(bump.stdout.contains("003_c"), "{}", bump.stdout);
    let drop = lab.sup(&["queue", "wd", "drop", "002_b"]);
    drop.ok();
    assert!(drop.stdout.contains("002_b"), "{}", drop.stdout);
    assert!(lab.path("wd/engine/nodes/002_b/dropped").is_file());

    // Default action is list; the live queue is shown in run order.
    let list = lab.sup(&["queue", "wd"]);
    list.ok();
    assert_eq!(
        listed_ids(&list.stdout),
        ["003_c", "001_a"],
        "{}",
        list.stdout
    );

    // Errors from the live engine are readable and exit 2.
    lab.sup(&["queue", "wd", "bump", "nosuch", "1"])
        .readable_error(2);

    lab.open_gate();
    engine.expect_exit(0);
    let wd = lab.path("wd");
    assert_eq!(start_order(&wd), ["000_baseline", "003_c", "001_a"]);
    assert!(!lab.path("wd/runs/002_b").exists(), "a dropped node ran");
    // The jobs themselves started in that order (process start times).
    let ticks: Vec<u64> = ["000_baseline", "003_c", "001_a"]
        .iter()
        .map(|id| {
            let job: Value = serde_json::from_slice(
                &fs::read(wd.join("runs").join(id).join("job.json")).unwrap(),
            )
            .unwrap();
            job["pid_start_ticks"].as_u64().unwrap_or(0)
        })
        .collect();
    assert!(ticks.windows(2).all(|w| w[0] <= w[1]), "{ticks:?}");
}

/// A workdir `wd` interrupted while `000_baseline` runs (gate closed), 3 seeds queued.
fn interrupted(lab: &Lab) {
    let cfg = lab.default_config_file();
    let mut engine = lab.start_run("wd", &["--config", cfg.to_str().unwrap()]);
    lab.wait_running("wd", "000_baseline", 3);
    lab.sup(&["stop", "wd"]).ok();
    engine.expect_exit(130);
}

#[test]
fn queue_list_and_bump_offline() {
    let lab = Lab::new();
    interrupted(&lab);
    let list = lab.sup(&["queue", "wd", "list"]);
    list.ok();
    assert_eq!(
        listed_ids(&list.stdout),
        ["001_a", "002_b", "003_c"],
        "{}",
        list.stdout
    );

    lab.sup(&["queue", "wd", "bump", "002_b", "-7.5"]).ok();
    let list = lab.sup(&["queue", "wd"]);
    list.ok();
    assert_eq!(
        listed_ids(&list.stdout),
        ["002_b", "001_a", "003_c"],
        "{}",
        list.stdout
    );
    assert!(list.stdout.contains("-7.5"), "{}", list.stdout);

    let cp = checkpoint::load(&lab.path("wd/engine/checkpoint.json"))
        .expect("valid checkpoint")
        .expect("a checkpoint");
    let b = cp.queued.iter().find(|s| s.id == "002_b").unwrap();
    assert_eq!(b.priority, -7.5);

    lab.open_gate();
    lab.sup(&["run", "wd", "--no-render"]).ok();
    assert_eq!(
        start_order(&lab.path("wd")),
        ["000_baseline", "002_b", "001_a", "003_c"]
    );
}

#[test]
fn queue_drop_offline_leaves_a_valid_checkpoint_and_resume_skips_it() {
    let lab = Lab::new();
    interrupted(&lab);
    let out = lab.sup(&["queue", "wd", "drop", "001_a"]);
    out.ok();
    assert!(out.stdout.contains("001_a"), "{}", out.stdout);

    let cp = checkpoint::load(&lab.path("wd/engine/checkpoint.json"))
        .expect("valid checkpoint")
        .expect("a checkpoint");
    let queued: Vec<&str> = cp.queued.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(queued, ["002_b", "003_c"]);
    let running: Vec<&str> = cp.running.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(running, ["000_baseline"]);
    assert!(lab.path("wd/engine/nodes/001_a/dropped").is_file());

    // Dropping it again, or an unknown id, is a readable error that changes nothing.
    let before = snapshot(&lab.path("wd"));
    lab.sup(&["queue", "wd", "drop", "001_a"]).readable_error(2);
    lab.sup(&["queue", "wd", "bump", "nosuch", "3"])
        .readable_error(2);
    assert_same(&before, &snapshot(&lab.path("wd")), "a refused queue edit");

    lab.open_gate();
    lab.sup(&["run", "wd", "--no-render"]).ok();
    let order = start_order(&lab.path("wd"));
    assert_eq!(order, ["000_baseline", "002_b", "003_c"]);
    assert!(!lab.path("wd/runs/001_a").exists(), "the dropped node ran");
    let s = lab.status("wd");
    assert_eq!(s["status"], "stopped");
    assert_eq!(s["counts"]["completed"], 3);
}

// ---------------------------------------------------------------------------------------------
// run: locking, bad input, resume rules

#[test]
fn run_on_a_locked_workdir_exits_3_naming_the_pid() {
    let lab = Lab::new();
    let cfg = lab.default_config_file();
    let mut engine = lab.start_run("wd", &["--config", cfg.to_str().unwrap()]);
    lab.wait_running("wd", "000_baseline", 3);
    let pid = engine.pid().to_string();

    for args in [
        vec!["run", "wd", "--no-render"],
        vec!["run", "wd", "--config", cfg.to_str().unwrap()],
        vec!["repair", "wd"],
        vec!["repair", "wd", "--dry-run"],
    ] {
        let out = lab.sup(&args);
        out.readable_error(3);
        assert!(
            out.stderr.contains(&pid),
            "`{}` does not name the holder's pid {pid}: {}",
            args.join(" "),
            out.stderr
        );
    }
    // The live engine is unharmed.
    assert_eq!(lab.status("wd")["status"], "running");
    lab.open_gate();
    engine.expect_exit(0);
    assert_eq!(lab.status("wd")["counts"]["completed"], 4);
}

/// Bad flags and bad configuration files, each with a word its message must contain.
fn bad_inputs(lab: &Lab) -> Vec<(Vec<String>, &'static str)> {
    let good = lab.config(SEEDS, 10);
    let mut unknown = good.clone();
    unknown["limits"]["max_concurency"] = json!(2);
    let mut out_of_range = good.clone();
    out_of_range["baseline"]["v"] = json!(42);
    let files = [
        (
            "invalid.json",
            "{\"objective\": {\"metric\": \"score\",\n".to_string(),
        ),
        (
            "unknown.json",
            serde_json::to_string_pretty(&unknown).unwrap(),
        ),
        (
            "range.json",
            serde_json::to_string_pretty(&out_of_range).unwrap(),
        ),
    ];
    let mut cases: Vec<(Vec<String>, &str)> = Vec::new();
    let flags = |extra: &[&str]| -> Vec<String> {
        [
            "--command",
            "sh job.sh {v}",
            "--metric",
            "score",
            "--direction",
            "max",
            "--param",
            "v=1,2",
        ]
        .iter()
        .chain(extra)
        .map(|s| s.to_string())
        .collect()
    };
    cases.push((flags(&["--max-concurrency", "zero"]), "zero"));
    cases.push((flags(&["--no-such-flag"]), "--no-such-flag"));
    cases.push((flags(&["--max-concurrency", "0"]), "max_concurrency"));
    cases.push((flags(&["--baseline", "v=7"]), "v=7"));
    cases.push((
        flags(&["--param", "cutoff=1-256"]),
        "did you mean cutoff=1..256?",
    ));
    cases.push((flags(&["--param", "v=3,4"]), "both define `v`"));
    cases.push((flags(&["--param", "w="]), "has no values"));
    cases.push((flags(&["--param", "w=1..9007199254740993"]), "2^53"));
    cases.push((flags(&["--timeout-s", "nan"]), "--timeout-s"));
    cases.push((flags(&["--timeout-s", "-5"]), "--timeout-s"));
    cases.push((flags(&["--timeout-s", "inf"]), "--timeout-s"));
    cases.push((flags(&["--direction", "up"]), "--direction"));
    cases.push((
        flags(&["--cwd", "/nonexistent/autoresearch-cwd"]),
        "job.cwd",
    ));
    for (name, text) in files {
        let p = lab.write(name, &text);
        cases.push((
            vec!["--config".into(), p.display().to_string()],
            match name {
                "invalid.json" => "line",
                "unknown.json" => "max_concurency",
                _ => "baseline.v",
            },
        ));
    }
    cases.push((
        vec!["--config".into(), "missing.json".into()],
        "missing.json",
    ));
    cases
}

#[test]
fn bad_flags_and_config_files_exit_2_and_create_nothing() {
    let lab = Lab::new();
    for (extra, word) in bad_inputs(&lab) {
        let mut args = vec!["run", "new-wd"];
        args.extend(extra.iter().map(String::as_str));
        let out = lab.sup(&args);
        out.readable_error(2);
        assert!(
            out.stderr.contains(word),
            "`{}`: the error does not mention {word:?}: {}",
            args.join(" "),
            out.stderr
        );
        assert!(
            !lab.path("new-wd").exists(),
            "`{}` created the workdir",
            args.join(" ")
        );
    }
}

#[test]
fn bad_flags_and_config_files_leave_an_existing_workdir_byte_identical() {
    let lab = Lab::new();
    lab.finished_workdir("wd");
    let before = snapshot(&lab.path("wd"));
    for (extra, _) in bad_inputs(&lab) {
        let mut args = vec!["run", "wd"];
        args.extend(extra.iter().map(String::as_str));
        lab.sup(&args).readable_error(2);
        assert_same(&before, &snapshot(&lab.path("wd")), &args.join(" "));
    }
    // Other refused commands leave it alone too.
    for args in [
        vec!["run", "wd", "--grace-s", "-1"],
        vec!["queue", "wd", "drop", "nosuch"],
        vec!["queue", "wd", "bump", "nosuch", "nan"],
        vec!["queue", "wd", "bump", "nosuch", "high"],
        vec!["run", "wd", "--command", "sh other.sh {v}"],
    ] {
        lab.sup(&args).readable_error(2);
        assert_same(&before, &snapshot(&lab.path("wd")), &args.join(" "));
    }
}

#[test]
fn forbidden_change_on_resume_exits_2_with_a_diff() {
    let lab = Lab::new();
    lab.finished_workdir("wd");
    let before = snapshot(&lab.path("wd"));
    let out = lab.sup(&["run", "wd", "--command", "sh other.sh {v}", "--no-render"]);
    out.readable_error(2);
    assert!(out.stderr.contains("job.command"), "{}", out.stderr);
    assert!(out.stderr.contains("sh other.sh {v}"), "{}", out.stderr);
    assert!(out.stderr.contains("sh job.sh {v}"), "{}", out.stderr);
    assert_same(&before, &snapshot(&lab.path("wd")), "a refused resume");

    let out = lab.sup(&["run", "wd", "--metric", "other", "--direction", "minimize"]);
    out.readable_error(2);
    assert!(out.stderr.contains("objective.metric"), "{}", out.stderr);
    assert!(out.stderr.contains("objective.direction"), "{}", out.stderr);
    assert_same(&before, &snapshot(&lab.path("wd")), "a refused resume");
}

#[test]
fn limits_change_on_resume_is_accepted_and_runs_to_the_new_total() {
    let lab = Lab::new();
    lab.open_gate();
    let cfg = lab.write(
        "cfg.json",
        &serde_json::to_string(&lab.config(SEEDS, 2)).unwrap(),
    );
    lab.sup(&[
        "run",
        "wd",
        "--config",
        cfg.to_str().unwrap(),
        "--no-render",
    ])
    .ok();
    let s = lab.status("wd");
    assert_eq!(s["status"], "stopped");
    assert_eq!(s["experiments_started"], 2);
    assert_eq!(s["counts"]["completed"], 2);
    assert!(
        s["stop_reason"]
            .as_str()
            .is_some_and(|r| r.contains("max_experiments")),
        "{s:#}"
    );

    lab.sup(&["run", "wd", "--max-experiments", "4", "--no-render"])
        .ok();
    let s = lab.status("wd");
    assert_eq!(s["status"], "stopped", "{s:#}");
    assert_eq!(s["experiments_started"], 4);
    assert_eq!(s["counts"]["completed"], 4);
    assert_eq!(s["limits"]["max_experiments"], 4);
    assert_eq!(
        start_order(&lab.path("wd")),
        ["000_baseline", "001_a", "002_b", "003_c"]
    );
    let stored: Value =
        serde_json::from_slice(&fs::read(lab.path("wd/config.json")).unwrap()).unwrap();
    assert_eq!(stored["limits"]["max_experiments"], 4);
    assert_eq!(stored["job"]["command"], "sh job.sh {v}");
}

// ---------------------------------------------------------------------------------------------
// report, render, repair, list

#[test]
fn report_names_the_best_node_and_its_command() {
    let lab = Lab::new();
    lab.finished_workdir("wd");
    let out = lab.sup(&["report", "wd"]);
    out.ok();
    assert!(out.stdout.contains("report.md"), "{}", out.stdout);
    let report = fs::read_to_string(lab.path("wd/report.md")).unwrap();
    let spec: Value =
        serde_json::from_slice(&fs::read(lab.path("wd/engine/nodes/003_c/spec.json")).unwrap())
            .unwrap();
    let command = spec["command"].as_str().unwrap();
    assert_eq!(command, "sh job.sh 4");
    assert!(report.contains("003_c"), "{report}");
    assert!(report.contains(command), "{report}");
}

#[test]
fn render_writes_the_six_views() {
    let lab = Lab::new();
    lab.finished_workdir("wd");
    let out = lab.sup(&["render", "wd"]);
    out.ok();
    for name in [
        "master_table.tsv",
        "summary.md",
        "progress.png",
        "hypothesis_tree.png",
        "params.png",
        "parallel.png",
    ] {
        let p = lab.path("wd").join(name);
        let bytes = fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        assert!(!bytes.is_empty(), "{name} is empty");
        assert!(out.stdout.contains(name), "{}", out.stdout);
        if name.ends_with(".png") {
            assert!(
                bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
                "{name} is not a PNG"
            );
        }
    }
    let table = fs::read_to_string(lab.path("wd/master_table.tsv")).unwrap();
    assert_eq!(table.lines().count(), 1 + 4, "{table}");
    assert!(
        table.lines().nth(1).unwrap().starts_with("000_baseline\t"),
        "{table}"
    );
}

#[test]
fn repair_dry_run_changes_nothing_and_repair_writes_backups() {
    let lab = Lab::new();
    interrupted(&lab);
    let wd = lab.path("wd");
    let before = snapshot(&wd);
    let dry = lab.sup(&["repair", "wd", "--dry-run"]);
    dry.ok();
    assert!(dry.stdout.contains("found 4 nodes"), "{}", dry.stdout);
    assert!(dry.stdout.contains("nothing was changed"), "{}", dry.stdout);
    assert_same(&before, &snapshot(&wd), "repair --dry-run");

    let out = lab.sup(&["repair", "wd"]);
    out.ok();
    let backups: Vec<&str> = out
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("backup: "))
        .collect();
    assert!(!backups.is_empty(), "{}", out.stdout);
    for b in &backups {
        let p = lab.root.join(b);
        assert!(p.is_file(), "backup {} missing", p.display());
    }
    assert!(
        backups.iter().any(|b| b.contains("checkpoint.json")),
        "{backups:?}"
    );
    // The rebuilt checkpoint is valid: the baseline resumes first, the seeds stay queued.
    let cp = checkpoint::load(&wd.join("engine/checkpoint.json"))
        .expect("valid checkpoint")
        .expect("a checkpoint");
    let running: Vec<&str> = cp.running.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(running, ["000_baseline"]);
    assert_eq!(cp.queued.len(), 3);

    lab.open_gate();
    lab.sup(&["run", "wd", "--no-render"]).ok();
    assert_eq!(lab.status("wd")["counts"]["completed"], 4);
}

#[test]
fn list_shows_workdirs_with_their_status() {
    let lab = Lab::new();
    lab.finished_workdir("wd");
    fs::create_dir_all(lab.path("projects")).unwrap();
    lab.sup(&[
        "run",
        "projects/deep",
        "--config",
        "cfg.json",
        "--no-render",
    ])
    .ok();
    fs::create_dir_all(lab.path("not-a-workdir/sub")).unwrap();

    let out = lab.sup(&["list", lab.root.to_str().unwrap()]);
    out.ok();
    let line_of = |suffix: &str| {
        out.stdout
            .lines()
            .find(|l| l.ends_with(suffix))
            .unwrap_or_else(|| panic!("{suffix} not listed:\n{}", out.stdout))
            .to_string()
    };
    for wd in ["/wd", "/projects/deep"] {
        let line = line_of(wd);
        assert!(line.starts_with("stopped"), "{line}");
        assert!(line.contains("4 exp"), "{line}");
        assert!(line.contains("best 4"), "{line}");
    }
    assert!(!out.stdout.contains("not-a-workdir"), "{}", out.stdout);
    assert_eq!(out.stdout.lines().count(), 2, "{}", out.stdout);

    // The current folder by default; an empty folder says so.
    let empty = lab.path("empty");
    fs::create_dir_all(&empty).unwrap();
    let out = lab.sup(&["list", empty.to_str().unwrap()]);
    out.ok();
    assert!(out.stdout.contains("no workdirs found"), "{}", out.stdout);
    let here = lab.sup(&["list"]);
    here.ok();
    assert!(
        here.stdout.lines().any(|l| l.ends_with("/wd")),
        "{}",
        here.stdout
    );
}

// ---------------------------------------------------------------------------------------------
// readable errors

#[test]
fn failing_commands_explain_themselves() {
    let lab = Lab::new();
    fs::create_dir_all(lab.path("plain-folder")).unwrap();
    fs::create_dir_all(lab.path("fresh")).unwrap();
    fs::write(
        lab.path("fresh/config.json"),
        serde_json::to_string(&lab.config(SEEDS, 10)).unwrap(),
    )
    .unwrap();
    let fresh_before = snapshot(&lab.path("fresh"));
    let cases: Vec<Vec<&str>> = vec![
        vec![],
        vec!["status", "missing"],
        vec!["status", "plain-folder"],
        vec!["status", "missing", "--json"],
        vec!["queue", "missing"],
        vec!["queue", "plain-folder", "list"],
        vec!["queue", "fresh", "drop", "001_a"],
        vec!["queue", "fresh", "bump", "001_a", "1"],
        vec!["queue", "missing", "bump", "x"],
        vec!["stop", "missing"],
        vec!["report", "missing"],
        vec!["render", "plain-folder"],
        vec!["repair", "missing"],
        vec!["list", "missing"],
        vec!["run", "fresh/config.json"],
        vec!["run", "plain-folder"],
        vec!["frobnicate", "wd"],
    ];
    for args in cases {
        let out = lab.sup(&args);
        out.readable_error(2);
    }
    assert_same(
        &fresh_before,
        &snapshot(&lab.path("fresh")),
        "a refused queue edit on a new workdir",
    );
    assert!(!lab.path("missing").exists());
    assert!(
        fs::read_dir(lab.path("plain-folder"))
            .unwrap()
            .next()
            .is_none(),
        "a refused command wrote into a plain folder"
    );
}

#[test]
fn a_reader_that_goes_away_does_not_cause_a_panic() {
    let lab = Lab::new();
    lab.finished_workdir("wd");
    for args in [
        vec!["status", "wd", "--json"],
        vec!["queue", "wd", "list"],
        vec!["list", "."],
    ] {
        let (reader, writer) = std::io::pipe().expect("pipe");
        drop(reader);
        let err = lab.path(".cli/pipe.err");
        let status = std::process::Command::new(support::bin())
            .args(&args)
            .current_dir(&lab.root)
            .env_remove("RUST_BACKTRACE")
            .stdout(writer)
            .stderr(fs::File::create(&err).unwrap())
            .status()
            .expect("spawn");
        let stderr = fs::read_to_string(&err).unwrap();
        assert!(
            !stderr.contains("panicked") && status.code() != Some(101),
            "`supervisor {}` with a closed stdout: {status:?}\n{stderr}",
            args.join(" ")
        );
        if !stderr.is_empty() {
            assert_readable(
                &stderr,
                &args.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            );
        }
    }
}

/// Regression: a relative workdir, with the job's cwd elsewhere, must still give the job (and its
/// wrapper) usable paths. It used to fail every experiment as "ended without an exit code".
#[test]
fn relative_workdir_with_job_cwd_elsewhere_runs() {
    let base = tempfile::tempdir().expect("tempdir");
    let project = base.path().join("project");
    std::fs::create_dir_all(&project).expect("mkdir");
    std::fs::write(
        project.join("job.sh"),
        "printf 'METRIC score=%s\\n' \"$1\"\ntest -d \"$AUTORESEARCH_RUN_DIR\" || exit 9\n",
    )
    .expect("script");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_supervisor"))
        .current_dir(base.path())
        .args([
            "run",
            "runs/rel",
            "--command",
            "sh job.sh {x}",
            "--metric",
            "score",
            "--direction",
            "maximize",
        ])
        .args(["--param", "x=1,2,3", "--planner", "none", "--no-render"])
        .arg("--cwd")
        .arg(&project)
        .output()
        .expect("run supervisor");
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let state: serde_json::Value = serde_json::from_slice(
        &std::fs::read(base.path().join("runs/rel/state.json")).expect("state.json"),
    )
    .expect("json");
    assert_eq!(state["experiments_completed"], 1, "{state}");
    assert_eq!(state["experiments_failed"], 0, "{state}");
    let job: serde_json::Value = serde_json::from_slice(
        &std::fs::read(base.path().join("runs/rel/runs/000_baseline/job.json")).expect("job.json"),
    )
    .expect("json");
    assert_eq!(job["attempt"], 1);
}

/// The mistakes a newcomer makes on a first run from flags: each exits 2, says what to do, and
/// creates nothing.
#[test]
fn new_run_mistakes_exit_2_with_a_hint() {
    let lab = Lab::new();
    let base = ["run", "new-wd", "--metric", "score"];
    let cmd = ["--command", "sh job.sh {v}"];
    for (extra, needles) in [
        (
            &[cmd[0], cmd[1], "--param", "v=1,2"][..],
            &["--direction is required", "maximize", "minimize"][..],
        ),
        (
            &[
                cmd[0],
                cmd[1],
                "--direction",
                "min",
                "--param",
                "v=1..8:lin",
            ],
            &["did you mean `linear`?"],
        ),
        (
            &[
                "--direction",
                "min",
                "--param",
                "v=1,2",
                "--command",
                "sh job.sh \"{v}\"",
            ],
            &["job.command", "inside double quotes", "--v={v}"],
        ),
        (
            &[
                cmd[0],
                cmd[1],
                "--direction",
                "sideways",
                "--param",
                "v=1,2",
            ],
            &["--direction", "maximize", "minimize"],
        ),
    ] {
        let mut args: Vec<&str> = base.to_vec();
        args.extend_from_slice(extra);
        let out = lab.sup(&args);
        out.readable_error(2);
        for n in needles {
            assert!(
                out.stderr.contains(n),
                "`{}`: the error does not mention {n:?}: {}",
                args.join(" "),
                out.stderr
            );
        }
        assert!(
            !lab.path("new-wd").exists(),
            "`{}` created the workdir",
            args.join(" ")
        );
    }
    // `--help` shows the parameter grammar and the default type.
    let help = lab.sup(&["run", "--help"]);
    for n in [
        "NAME=MIN..MAX",
        "int range when both ends are integers",
        ":log",
        ":ordered",
    ] {
        assert!(
            help.stdout.contains(n),
            "--help lacks {n:?}: {}",
            help.stdout
        );
    }
}
