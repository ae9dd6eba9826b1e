//! Hostile input: checkpoint edits a user or an attacker with write access could make (ids
//! `.` and `..`, a duplicate key, values outside the search space) and parameter values made
//! to break out of every quoting context of `job.command`.
//!
//! Each case passes when the input is refused with a clear error or made harmless; it fails
//! when a value reaches a shell, a file lands outside its folder, or a queue is silently lost.

use std::path::Path;

use autoresearch_adapters::config::Config;
use autoresearch_adapters::session::Session;
use serde_json::{Value, json};

use crate::support::{Fixture, test_options};

/// A job that records its first argument verbatim into `got/<node id>` and succeeds.
const RECORDING_JOB: &str = "mkdir -p got\nprintf '%s' \"$1\" > \"got/$AUTORESEARCH_NODE_ID\"\n\
                             echo \"$1\" >> args.log\necho METRIC score=1\n";

fn base(fx: &Fixture, command: &str, values: &[&str]) -> Value {
    let seeds: Vec<Value> = values[1..]
        .iter()
        .enumerate()
        .map(|(i, v)| json!({ "name": format!("s{i}"), "params": { "p": v } }))
        .collect();
    json!({
        "objective": { "metric": "score", "direction": "maximize" },
        "job": { "command": command, "timeout_s": 30, "cwd": fx.work.display().to_string() },
        "search_space": { "p": values },
        "baseline": { "p": values[0] },
        "seeds": seeds,
        "planner": { "kind": "none" },
        "limits": { "max_concurrency": 2, "max_experiments": 100, "patience": 100 }
    })
}

/// Runs the baseline to completion, then stops; returns the fixture.
async fn finished_run() -> Fixture {
    let fx = Fixture::new();
    fx.script("job.sh", RECORDING_JOB);
    let cfg = base(&fx, "sh job.sh {p}", &["a", "b"]);
    fx.run(Some(fx.config(cfg))).await;
    fx
}

fn write_checkpoint(fx: &Fixture, text: &str) {
    std::fs::write(fx.path("engine/checkpoint.json"), text).unwrap();
}

/// Opens and runs the engine; `Err` with the message when it refuses to start.
async fn try_run(fx: &Fixture) -> Result<(), String> {
    let session =
        Session::open(&fx.wd, fx.resolve(None), &test_options()).map_err(|e| e.to_string())?;
    match tokio::time::timeout(std::time::Duration::from_secs(60), session.run()).await {
        Ok(r) => r.map(|_| ()).map_err(|e| e.to_string()),
        Err(_) => Err("the engine did not finish in 60 s".into()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoint_ids_dot_and_dotdot_never_name_a_folder() {
    let fx = finished_run().await;
    write_checkpoint(
        &fx,
        r#"{"schema_version":1,"status":"interrupted","updated_at":"2026-11-30T00:00:00Z",
            "queued":[{"id":".","priority":0,"kind":"experiment","payload":{"params":{"p":"a"}}},
                      {"id":"..","priority":0,"kind":"experiment","payload":{"params":{"p":"b"}}}],
            "running":[]}"#,
    );
    let outcome = try_run(&fx).await;
    for stray in [
        "spec.json",
        "status.txt",
        "command.sh",
        "engine/spec.json",
        "engine/status.txt",
        "engine/nodes/spec.json",
        "engine/nodes/status.txt",
        "runs/command.sh",
        "runs/launch.json",
    ] {
        assert!(
            !fx.path(stray).exists(),
            "{stray} was written ({outcome:?}): {}",
            std::fs::read_to_string(fx.path(stray)).unwrap_or_default()
        );
    }
    assert_eq!(fx.node_ids(), vec!["000_baseline", "001_s0"], "{outcome:?}");
}

/// Depends on the engine's checkpoint validation (a duplicate key is an error).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_key_in_the_checkpoint_is_refused_and_the_file_kept() {
    let fx = finished_run().await;
    let text = r#"{"schema_version":1,"status":"interrupted","updated_at":"2026-11-30T00:00:00Z",
        "queued":[{"id":"900_x","priority":0,"kind":"experiment","payload":{"params":{"p":"a"}}}],
        "queued":[],"running":[]}"#;
    write_checkpoint(&fx, text);
    let outcome = try_run(&fx).await;
    let err = outcome.expect_err("a checkpoint with `queued` twice was accepted");
    assert!(err.contains("queued"), "the error names the key: {err}");
    assert_eq!(
        std::fs::read_to_string(fx.path("engine/checkpoint.json")).unwrap(),
        text,
        "the file is left as it was"
    );
}

/// Depends on the checkpoint specs being checked against the search space.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoint_values_outside_the_search_space_never_reach_a_job() {
    let fx = finished_run().await;
    write_checkpoint(
        &fx,
        r#"{"schema_version":1,"status":"interrupted","updated_at":"2026-11-30T00:00:00Z",
            "queued":[{"id":"900_evil","priority":0,"kind":"experiment",
                       "payload":{"params":{"p":"$(touch pwned)"}}}],
            "running":[]}"#,
    );
    let outcome = try_run(&fx).await;
    let args = std::fs::read_to_string(fx.work.join("args.log")).unwrap_or_default();
    assert!(
        !args.contains("pwned"),
        "a value outside the search space reached the job ({outcome:?}): {args}"
    );
    assert!(!fx.work.join("pwned").exists());
}

/// Values made to escape their quotes.
const HOSTILE: [&str; 8] = [
    "plain",
    "$(touch pwned_dollar)",
    "`touch pwned_backtick`",
    "; touch pwned_semicolon",
    "' ; touch pwned_single ; '",
    "\" ; touch pwned_double ; \"",
    "\\\"$(touch pwned_escaped)\\\"",
    "a\ntouch pwned_newline",
];

/// What the job's first argument must be for a value.
type Expect = fn(&str) -> String;

/// Depends on placeholders being safe in every quoting context (refused or passed verbatim).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_values_are_inert_in_every_quoting_context() {
    let contexts: [(&str, Expect); 6] = [
        ("sh job.sh {p}", |v| v.to_string()),
        ("sh job.sh \"{p}\"", |v| v.to_string()),
        ("sh job.sh '{p}'", |v| v.to_string()),
        ("sh job.sh --name={p}", |v| format!("--name={v}")),
        ("sh job.sh --name=\"{p}\"", |v| format!("--name={v}")),
        ("sh job.sh \"pre{p}post\"", |v| format!("pre{v}post")),
    ];
    let mut refused = Vec::new();
    for (template, expect) in contexts {
        let fx = Fixture::new();
        fx.script("job.sh", RECORDING_JOB);
        let value = base(&fx, template, &HOSTILE);
        let config = match Config::from_json_str(&value.to_string(), Path::new("test")) {
            Ok(c) => c,
            Err(e) => {
                let message = e.to_string();
                assert!(
                    message.contains("{p}") || message.contains("job.command"),
                    "{template}: the refusal says where: {message}"
                );
                refused.push(template);
                continue;
            }
        };
        fx.run(Some(config)).await;
        let pwned: Vec<String> = std::fs::read_dir(&fx.work)
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("pwned"))
            .collect();
        assert!(pwned.is_empty(), "{template}: a value ran code: {pwned:?}");
        for id in fx.node_ids() {
            let spec = fx.spec(&id);
            let v = spec["params"]["p"].as_str().unwrap().to_string();
            let got = std::fs::read_to_string(fx.work.join("got").join(&id)).unwrap_or_default();
            assert_eq!(got, expect(&v), "{template}: {id} got another value");
        }
    }
    eprintln!("quoting contexts refused at config time: {refused:?}");
}
