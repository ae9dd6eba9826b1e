//! The experiment workflow through the real engine with real jobs (small shell scripts):
//! results and files of a success, each kind of failure, timeouts killing whole process groups,
//! parameter values and node names that must stay inert, the search planner's determinism, and
//! the refusal of a forbidden configuration change on resume.
//!
//! Kill-and-resume scenarios are in `workflow_resume.rs`.

use crate::support;

use std::collections::HashSet;
use std::path::Path;

use autoresearch_adapters::config::canonical_params_key;
use autoresearch_adapters::session::{SessionError, resolve_config};
use autoresearch_engine::EngineStatus;
use serde_json::{Map, Value, json};
use support::{Fixture, group_members, read_json};

/// A configuration with objective `score` (maximize) and `planner.kind = none`.
fn batch_config(command: &str, search_space: Value, baseline: Value, seeds: Value) -> Value {
    json!({
        "objective": { "metric": "score", "direction": "maximize" },
        "job": { "command": command, "timeout_s": 60 },
        "search_space": search_space,
        "baseline": baseline,
        "seeds": seeds,
        "planner": { "kind": "none" },
        "limits": { "max_concurrency": 1, "max_experiments": 100, "patience": 100 }
    })
}

/// Whether `id` matches `^[0-9]{3}_[A-Za-z0-9._-]+$`.
fn is_safe_id(id: &str) -> bool {
    let b = id.as_bytes();
    b.len() > 4
        && b[..3].iter().all(u8::is_ascii_digit)
        && b[3] == b'_'
        && b[4..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || b"._-".contains(c))
}

fn tree_ids(fx: &Fixture) -> Vec<String> {
    fx.tree()["nodes"]
        .as_array()
        .expect("tree.json nodes")
        .iter()
        .map(|n| n["id"].as_str().expect("id").to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn success_writes_result_state_tree_and_run_files() {
    let fx = Fixture::new();
    let config = fx.config(batch_config(
        "echo METRIC score={x}; echo 'METRIC other=7' >&2",
        json!({ "x": [1, 2, 3] }),
        json!({ "x": 1 }),
        json!([
            { "name": "three", "params": { "x": 3 } },
            { "name": "two", "params": { "x": 2 } }
        ]),
    ));
    let report = fx.run(Some(config)).await;
    assert_eq!(report.status, EngineStatus::Stopped);

    let ids = fx.node_ids();
    assert_eq!(ids.len(), 3, "{ids:?}");
    let base = fx.id_of("baseline");
    let three = fx.id_of("three");
    let two = fx.id_of("two");
    for (id, score, improved) in [(&base, 1.0, true), (&three, 3.0, true), (&two, 2.0, false)] {
        assert_eq!(fx.status(id), "completed", "{id}");
        let r = fx.result(id);
        assert_eq!(r["metrics"]["score"], json!(score), "{id}: {r}");
        assert_eq!(r["metrics"]["other"], json!(7.0), "{id}: {r}");
        assert_eq!(r["primary"], json!(score), "{id}: {r}");
        assert_eq!(r["improved"], json!(improved), "{id}: {r}");
        assert_eq!(r["exit_code"], json!(0), "{id}: {r}");
        assert!(r["duration_s"].as_f64().is_some_and(|d| d >= 0.0), "{r}");
        assert!(!fx.node_dir(id).join("failure.json").exists());
        let run = fx.run_dir(id);
        for f in [
            "command.sh",
            "stdout.log",
            "stderr.log",
            "job.json",
            "exit_code",
        ] {
            assert!(run.join(f).is_file(), "{id}: runs/{id}/{f} missing");
        }
        let command = std::fs::read_to_string(run.join("command.sh")).unwrap();
        assert!(
            command.contains(&format!("echo METRIC score={score}")),
            "{command}"
        );
        assert_eq!(
            std::fs::read_to_string(run.join("exit_code"))
                .unwrap()
                .trim(),
            "0"
        );
        let job = fx.job_record(id);
        assert_eq!(job["executor"], "local");
        assert!(job["pid"].as_u64().is_some(), "{job}");
        assert!(job["started_at"].as_str().is_some(), "{job}");
        assert!(job["host"].as_str().is_some(), "{job}");
    }

    let state = fx.state();
    assert_eq!(state["best_node"], json!(three), "{state}");
    assert_eq!(state["best_value"], json!(3.0), "{state}");
    assert_eq!(state["baseline_node"], json!(base), "{state}");
    assert_eq!(state["baseline_value"], json!(1.0), "{state}");
    assert_eq!(state["experiments_started"], json!(3), "{state}");
    assert_eq!(state["experiments_completed"], json!(3), "{state}");
    assert_eq!(state["experiments_failed"], json!(0), "{state}");
    assert_eq!(state["plateau"], json!(1), "{state}");
    assert_eq!(
        state["recorded"].as_array().map(Vec::len),
        Some(3),
        "{state}"
    );

    let tree = fx.tree();
    assert_eq!(tree_ids(&fx), ids, "{tree}");
    for n in tree["nodes"].as_array().unwrap() {
        assert_eq!(n["status"], "completed", "{n}");
        assert!(n["primary"].as_f64().is_some(), "{n}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_run_lists_every_node_in_the_tree() {
    let fx = Fixture::new();
    let mut cfg = batch_config(
        "echo METRIC score={x}",
        json!({ "x": { "min": 1, "max": 50, "type": "int" } }),
        json!({ "x": 10 }),
        json!([]),
    );
    cfg["planner"] = json!({ "kind": "search", "seed": 3 });
    cfg["limits"]["max_experiments"] = json!(5);
    let report = fx.run(Some(fx.config(cfg))).await;
    assert_eq!(report.status, EngineStatus::Stopped);
    let ids = fx.node_ids();
    assert_eq!(fx.started(), 5, "{:?}", fx.statuses());
    assert_eq!(tree_ids(&fx), ids);
    for n in fx.tree()["nodes"].as_array().unwrap() {
        let id = n["id"].as_str().unwrap();
        assert_eq!(n["status"].as_str().unwrap(), fx.status(id), "{id}");
        let spec = fx.spec(id);
        assert_eq!(n["parent_id"], spec["parent_id"], "{id}");
        if spec["name"] != "baseline" {
            assert!(
                spec["parent_id"].is_string(),
                "planned nodes have a parent: {spec}"
            );
        }
    }
    let state = fx.state();
    assert_eq!(state["experiments_started"], json!(5), "{state}");
    assert!(
        state["stop_reason"]
            .as_str()
            .is_some_and(|r| r.contains("max_experiments")),
        "{state}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nonzero_exit_is_a_failed_node() {
    let fx = Fixture::new();
    let config = fx.config(batch_config(
        "echo METRIC score=5; echo boom >&2; exit 3",
        json!({ "x": [1] }),
        json!({ "x": 1 }),
        json!([]),
    ));
    fx.run(Some(config)).await;
    let id = fx.id_of("baseline");
    assert_eq!(fx.status(&id), "failed");
    let f = fx.failure(&id);
    assert_eq!(f["kind"], "nonzero_exit", "{f}");
    assert_eq!(f["phase"], "running", "{f}");
    assert_eq!(f["details"]["exit_code"], json!(3), "{f}");
    assert!(
        f["details"]["stderr_tail"]
            .as_str()
            .is_some_and(|t| t.contains("boom")),
        "{f}"
    );
    assert!(f["message"].as_str().unwrap().contains('3'), "{f}");
    let state = fx.state();
    assert_eq!(state["experiments_failed"], json!(1), "{state}");
    assert_eq!(state["experiments_completed"], json!(0), "{state}");
    assert!(state["best_node"].is_null(), "{state}");
    assert_eq!(fx.tree()["nodes"][0]["status"], "failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_kills_the_whole_process_group() {
    let fx = Fixture::new();
    let mut cfg = batch_config(
        "sleep 1000 & echo $! >> kids; sleep 1000 & echo $! >> kids; echo started; wait",
        json!({ "x": [1] }),
        json!({ "x": 1 }),
        json!([]),
    );
    cfg["job"]["timeout_s"] = json!(1);
    fx.run(Some(fx.config(cfg))).await;
    let id = fx.id_of("baseline");
    assert_eq!(fx.status(&id), "failed");
    let f = fx.failure(&id);
    assert_eq!(f["kind"], "timeout", "{f}");
    assert_eq!(f["phase"], "running", "{f}");
    assert_eq!(f["retryable"], json!(true), "{f}");

    let pgid = fx.job_pid(&id).expect("runs/<id>/pid");
    let job = fx.job_record(&id);
    assert_eq!(job["pid"], json!(pgid), "{job}");
    let survivors = group_members(pgid);
    assert!(survivors.is_empty(), "group {pgid} survived: {survivors:?}");
    let kids: Vec<i32> = std::fs::read_to_string(fx.work_file("kids"))
        .expect("the job started its background children")
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect();
    assert_eq!(kids.len(), 2, "{kids:?}");
    for k in kids {
        assert!(
            !support::alive(k),
            "background child {k} survived the timeout"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_primary_metric_names_the_metric() {
    let fx = Fixture::new();
    let config = fx.config(batch_config(
        "echo METRIC other=1",
        json!({ "x": [1] }),
        json!({ "x": 1 }),
        json!([]),
    ));
    fx.run(Some(config)).await;
    let id = fx.id_of("baseline");
    assert_eq!(fx.status(&id), "failed");
    let f = fx.failure(&id);
    assert_eq!(f["kind"], "missing_metric", "{f}");
    assert!(f["message"].as_str().unwrap().contains("score"), "{f}");
    assert_eq!(f["details"]["metrics"]["other"], json!(1.0), "{f}");
    assert_eq!(fx.result(&id)["exit_code"], json!(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parameter_values_reach_the_job_verbatim_and_are_never_executed() {
    let fx = Fixture::new();
    let script = fx.script(
        "record.sh",
        "printf '%s' \"$1\" > \"$AUTORESEARCH_RUN_DIR/arg.txt\"\n\
         printf '%s' \"$AUTORESEARCH_PARAM_S\" > \"$AUTORESEARCH_RUN_DIR/env.txt\"\n\
         printf '%s' \"$#\" > \"$AUTORESEARCH_RUN_DIR/argc.txt\"\n\
         echo METRIC score=1\n",
    );
    let values = [
        "two words",
        "it's \"quoted\"",
        "a;touch semi_marker",
        "$(touch subst_marker)",
        "`touch tick_marker`",
        "x && touch and_marker | cat > pipe_marker",
        "$HOME ${PATH} $1 \\ back\\slash",
        "tab\there\nnew line",
        "-n",
        "'",
        "{x} {{s}}",
    ];
    let seeds: Vec<Value> = values
        .iter()
        .enumerate()
        .skip(1)
        .map(|(i, v)| json!({ "name": format!("v{i}"), "params": { "s": v } }))
        .collect();
    let config = fx.config(batch_config(
        &format!("sh {} {{s}}", script.display()),
        json!({ "s": values }),
        json!({ "s": values[0] }),
        Value::Array(seeds),
    ));
    fx.run(Some(config)).await;

    for (i, v) in values.iter().enumerate() {
        let id = if i == 0 {
            fx.id_of("baseline")
        } else {
            fx.id_of(&format!("v{i}"))
        };
        assert_eq!(fx.status(&id), "completed", "{id}: {}", fx.failure(&id));
        let run = fx.run_dir(&id);
        let read = |f: &str| std::fs::read_to_string(run.join(f)).unwrap();
        assert_eq!(read("arg.txt"), *v, "{id}: argument");
        assert_eq!(read("env.txt"), *v, "{id}: AUTORESEARCH_PARAM_S");
        assert_eq!(read("argc.txt"), "1", "{id}: one argument");
        assert_eq!(fx.spec(&id)["params"]["s"], json!(v), "{id}");
    }
    let mut markers = Vec::new();
    find_named(fx.tmp.path(), "marker", &mut markers);
    assert!(
        markers.is_empty(),
        "a parameter value was executed: {markers:?}"
    );
}

fn find_named(dir: &Path, needle: &str, out: &mut Vec<String>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.filter_map(Result::ok) {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.contains(needle) {
            out.push(e.path().display().to_string());
        }
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            find_named(&e.path(), needle, out);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsafe_names_give_safe_node_ids() {
    let fx = Fixture::new();
    let names = [
        "../../etc/passwd",
        "a/b/../c",
        "..",
        ".",
        "/abs/path",
        "tab\there",
        "bell\u{7}esc\u{1b}[31mred",
        "new\nline",
        "ünïcødé ✓",
        "-",
        "x..y",
        &"long".repeat(80),
    ];
    let seeds: Vec<Value> = names
        .iter()
        .map(|n| json!({ "name": n, "params": { "x": 1 } }))
        .collect();
    let config = fx.config(batch_config(
        "echo METRIC score=1",
        json!({ "x": [1] }),
        json!({ "x": 1 }),
        Value::Array(seeds),
    ));
    fx.run(Some(config)).await;

    let nodes_dir = fx.path("engine/nodes").canonicalize().unwrap();
    let runs_dir = fx.path("runs").canonicalize().unwrap();
    let ids = fx.node_ids();
    assert_eq!(ids.len(), names.len() + 1, "{ids:?}");
    assert_eq!(tree_ids(&fx), ids);
    let mut seen = HashSet::new();
    for id in &ids {
        assert!(is_safe_id(id), "unsafe node id {id:?}");
        assert!(!id.contains(".."), "{id:?}");
        assert!(seen.insert(id.clone()), "duplicate id {id}");
        let dir = fx.node_dir(id).canonicalize().unwrap();
        assert_eq!(dir.parent(), Some(nodes_dir.as_path()), "{id}");
        let run = fx.run_dir(id).canonicalize().unwrap();
        assert_eq!(run.parent(), Some(runs_dir.as_path()), "{id}");
        assert_eq!(fx.status(id), "completed", "{id}");
    }
    // The names are kept as given, only the ids are sanitized.
    for n in names {
        let id = fx.id_of(n);
        assert_eq!(fx.spec(&id)["name"], json!(n));
    }
    // Nothing was written outside the workdir and the job folder.
    let mut top: Vec<String> = std::fs::read_dir(fx.tmp.path())
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    top.sort();
    assert_eq!(top, ["wd", "work"]);
    assert!(!fx.path("etc").exists() && !fx.path("engine/etc").exists());
}

/// The (name, parent, params) of every node, in creation order.
fn sequence(fx: &Fixture) -> Vec<(String, Value, Map<String, Value>)> {
    fx.node_ids()
        .iter()
        .map(|id| {
            let spec = fx.spec(id);
            (
                id.clone(),
                spec["parent_id"].clone(),
                spec["params"].as_object().unwrap().clone(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_planner_is_deterministic_and_never_repeats() {
    let a = Fixture::new();
    let b = Fixture::new();
    let body = "awk -v a=\"$1\" -v b=\"$2\" -v c=\"$3\" \
                'BEGIN { printf \"METRIC score=%.6f\\n\", a * b - (c - 3) * (c - 3) }'\n";
    let make = |fx: &Fixture| {
        let script = fx.script("score.sh", body);
        let mut cfg = batch_config(
            &format!("sh {} {{a}} {{b}} {{c}}", script.display()),
            json!({
                "a": { "min": 1, "max": 20, "type": "int" },
                "b": [1, 2, 3, 4],
                "c": { "min": 0.1, "max": 10, "scale": "log" }
            }),
            json!({ "a": 5, "b": 2, "c": 1 }),
            json!([]),
        );
        cfg["planner"] = json!({ "kind": "search", "seed": 7 });
        cfg["limits"]["max_experiments"] = json!(14);
        fx.config(cfg)
    };
    let ca = make(&a);
    let cb = make(&b);
    a.run(Some(ca)).await;
    b.run(Some(cb)).await;
    let sa = sequence(&a);
    let sb = sequence(&b);
    assert!(a.started() >= 10, "{:?}", a.statuses());
    assert_eq!(sa, sb, "same seed, same config: same nodes");
    for (fx, seq) in [(&a, &sa), (&b, &sb)] {
        let mut keys = HashSet::new();
        for (id, _, params) in seq {
            assert!(
                keys.insert(canonical_params_key(params)),
                "{id} repeats a parameter set: {params:?}"
            );
        }
        assert_eq!(
            fx.statuses().values().filter(|s| *s == "failed").count(),
            0,
            "{:?}",
            fx.statuses()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forbidden_change_on_resume_is_refused_and_changes_nothing() {
    let fx = Fixture::new();
    let cfg = batch_config(
        "echo METRIC score={x}",
        json!({ "x": [1, 2] }),
        json!({ "x": 1 }),
        json!([]),
    );
    fx.run(Some(fx.config(cfg.clone()))).await;
    let config_path = fx.path("config.json");
    let before = std::fs::read(&config_path).unwrap();
    let ids = fx.node_ids();
    let state_before = std::fs::read(fx.path("state.json")).unwrap();

    let mut changed = cfg.clone();
    changed["job"]["command"] = json!("echo METRIC score={x}; true");
    // A permitted change next to the forbidden one is not applied either.
    changed["limits"]["max_experiments"] = json!(7);
    let err = resolve_config(&fx.wd, Some(fx.config(changed))).expect_err("refused");
    assert!(matches!(err, SessionError::Config(_)), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("job.command"), "{msg}");
    assert!(msg.contains("echo METRIC score={x}; true"), "{msg}");
    assert!(
        !msg.lines().any(|l| l.trim_start().starts_with("limits")),
        "only forbidden fields are listed: {msg}"
    );

    assert_eq!(
        std::fs::read(&config_path).unwrap(),
        before,
        "config.json changed"
    );
    assert_eq!(fx.node_ids(), ids, "a node was created");
    assert_eq!(std::fs::read(fx.path("state.json")).unwrap(), state_before);
    let stored = read_json(&config_path);
    assert_eq!(stored["job"]["command"], "echo METRIC score={x}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_finite_primary_metric_is_named_in_the_failure() {
    let fx = Fixture::new();
    let config = fx.config(batch_config(
        "echo METRIC score=nan; echo METRIC other=2",
        json!({ "x": [1] }),
        json!({ "x": 1 }),
        json!([]),
    ));
    fx.run(Some(config)).await;
    let id = fx.id_of("baseline");
    let f = fx.failure(&id);
    let message = f["message"].as_str().unwrap();
    assert_eq!(f["kind"], "missing_metric", "{f}");
    assert!(
        message.contains("`score`") && message.contains("`nan`") && message.contains("finite"),
        "{message}"
    );
    assert_eq!(f["details"]["rejected"]["score"], "nan", "{f}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metric_names_are_capped_with_a_count_of_the_rest() {
    let fx = Fixture::new();
    let script = fx.script(
        "many.sh",
        "awk 'BEGIN { for (i = 0; i < 100000; i++) print \"METRIC m\" i \"=1\" }'\n\
         echo METRIC score=3\n",
    );
    let config = fx.config(batch_config(
        &format!("sh {} {{x}}", script.display()),
        json!({ "x": [1] }),
        json!({ "x": 1 }),
        json!([]),
    ));
    fx.run(Some(config)).await;
    let id = fx.id_of("baseline");
    assert_eq!(fx.status(&id), "completed", "{}", fx.failure(&id));
    let result = fx.result(&id);
    let metrics = result["metrics"].as_object().unwrap();
    assert_eq!(
        metrics.len(),
        autoresearch_adapters::model::MAX_METRIC_NAMES + 1
    );
    assert_eq!(
        metrics["score"],
        json!(3.0),
        "the primary metric is always kept"
    );
    assert_eq!(result["primary"], json!(3.0));
    assert_eq!(
        result["metrics_dropped"],
        json!(100_000 - autoresearch_adapters::model::MAX_METRIC_NAMES)
    );
    let bytes = std::fs::metadata(fx.node_dir(&id).join("result.json"))
        .unwrap()
        .len();
    assert!(bytes < 64 * 1024, "result.json is {bytes} bytes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_from_an_unreadable_file_names_the_file() {
    let fx = Fixture::new();
    // The job leaves a folder where its metrics file should be.
    let config = fx.config(batch_config(
        "mkdir \"$AUTORESEARCH_RUN_DIR/metrics.json\"; echo METRIC score={x}",
        json!({ "x": [1] }),
        json!({ "x": 1 }),
        json!([]),
    ));
    fx.run(Some(config)).await;
    let id = fx.id_of("baseline");
    assert_eq!(fx.status(&id), "failed");
    let message = fx.failure(&id)["message"].as_str().unwrap().to_string();
    let path = fx.run_dir(&id).join("metrics.json");
    assert!(
        message.contains(&path.display().to_string()),
        "the message names {}: {message}",
        path.display()
    );
}
