//! Configuration: defaults, JSON/TOML equivalence, error messages naming the file and the field
//! path, resume rules, and shell-safe command rendering.

use crate::support;

use std::path::Path;
use std::process::Command;

use autoresearch_adapters::config::{
    Config, ConfigError, Direction, ExecutorKind, MinImprovement, NumType, Param, ParamSpec,
    PlannerKind, Scale, canonical_params_key, check_template, param_env, render_command,
};
use serde_json::{Map, Value, json};

const DESIGN_JSON: &str = r#"{
  "objective": { "metric": "throughput", "direction": "maximize", "min_improvement": 0.01 },
  "job": { "command": "sh bench.sh --workers {workers} --chunk {chunk}", "cwd": ".",
           "timeout_s": 600, "env": {} },
  "search_space": { "workers": [1, 2, 4, 8],
                    "chunk": { "min": 16, "max": 4096, "scale": "log", "type": "int" } },
  "baseline": { "workers": 1, "chunk": 64 },
  "seeds": [ { "name": "big_chunks", "params": { "workers": 2, "chunk": 1024 }, "priority": -10 } ],
  "planner": { "kind": "search" },
  "executor": { "kind": "local" },
  "limits": { "max_experiments": 40, "patience": 8, "time_budget_s": null, "max_concurrency": 2 }
}"#;

const DESIGN_TOML: &str = r#"
[objective]
metric = "throughput"
direction = "maximize"
min_improvement = 0.01

[job]
command = "sh bench.sh --workers {workers} --chunk {chunk}"
cwd = "."
timeout_s = 600
env = {}

[search_space]
workers = [1, 2, 4, 8]
chunk = { min = 16, max = 4096, scale = "log", type = "int" }

[baseline]
workers = 1
chunk = 64

[[seeds]]
name = "big_chunks"
params = { workers = 2, chunk = 1024 }
priority = -10

[planner]
kind = "search"

[executor]
kind = "local"

[limits]
max_experiments = 40
patience = 8
max_concurrency = 2
"#;

const MINIMAL: &str = r#"{
  "objective": { "metric": "loss", "direction": "minimize" },
  "job": { "command": "python train.py --lr {lr}" },
  "search_space": { "lr": { "min": 0.0001, "max": 1, "scale": "log" } },
  "baseline": { "lr": 0.01 }
}"#;

fn json_origin() -> &'static Path {
    Path::new("/runs/exp/config.json")
}

/// Parses `DESIGN_JSON` with `edit` applied to its value.
fn with_edit(edit: impl FnOnce(&mut Value)) -> Result<Config, ConfigError> {
    let mut v: Value = serde_json::from_str(DESIGN_JSON).unwrap();
    edit(&mut v);
    Config::from_json_str(&serde_json::to_string_pretty(&v).unwrap(), json_origin())
}

/// Asserts that `result` is an error whose text names the file and contains every `needle`.
fn assert_err(result: Result<Config, ConfigError>, needles: &[&str]) -> String {
    let err = match result {
        Ok(c) => panic!("expected an error containing {needles:?}, got {c:?}"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("config.json") || err.contains("config.toml"),
        "error does not name the file: {err}"
    );
    for needle in needles {
        assert!(
            err.contains(needle),
            "error {err:?} does not contain {needle:?}"
        );
    }
    err
}

#[test]
fn defaults_are_applied() {
    let c = Config::from_json_str(MINIMAL, json_origin()).unwrap();
    assert_eq!(c.objective.direction, Direction::Minimize);
    assert_eq!(c.objective.min_improvement.relative(), Some(0.01));
    assert_eq!(c.job.cwd, Path::new("."));
    assert_eq!(c.job.timeout_s, Some(600.0));
    assert!(c.job.env.is_empty());
    assert!(c.seeds.is_empty());
    assert_eq!(c.planner.kind, PlannerKind::Search);
    assert_eq!(c.planner.seed, 0);
    assert_eq!(c.planner.batch, None);
    assert_eq!(c.batch(), 2, "batch defaults to limits.max_concurrency");
    assert_eq!(c.executor.kind, ExecutorKind::Local);
    assert!(!c.executor.cancel_jobs_on_stop);
    assert_eq!(c.executor.slurm, Default::default());
    assert_eq!(c.limits.max_experiments, 40);
    assert_eq!(c.limits.patience, 8);
    assert_eq!(c.limits.time_budget_s, None);
    assert_eq!(c.limits.max_concurrency, 2);
    match c.search_space.get("lr") {
        Some(Param::Range(r)) => {
            assert_eq!(r.scale, Scale::Log);
            assert_eq!(r.kind, NumType::Float);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(c.origin, json_origin());
}

#[test]
fn explicit_values_and_null_timeout() {
    let c = with_edit(|v| {
        v["job"]["timeout_s"] = Value::Null;
        v["planner"]["batch"] = json!(5);
        v["limits"]["max_concurrency"] = json!(3);
        v["limits"]["time_budget_s"] = json!("2h");
    })
    .unwrap();
    assert_eq!(c.job.timeout_s, None);
    assert_eq!(c.job.timeout(), None);
    assert_eq!(c.batch(), 5);
    assert_eq!(c.limits.time_budget_s, Some(7200.0));
    assert_eq!(c.seeds[0].priority, -10.0);
    assert_eq!(c.seeds[0].hypothesis, None);
}

#[test]
fn toml_can_say_no_timeout() {
    let text = DESIGN_TOML.replace("timeout_s = 600", "timeout_s = \"none\"");
    let c = Config::from_toml_str(&text, Path::new("config.toml")).unwrap();
    assert_eq!(c.job.timeout_s, None);
    let text = DESIGN_TOML.replace("timeout_s = 600", "timeout_s = \"90s\"");
    let c = Config::from_toml_str(&text, Path::new("config.toml")).unwrap();
    assert_eq!(c.job.timeout_s, Some(90.0));
}

#[test]
fn json_and_toml_give_equal_configs() {
    let a = Config::from_json_str(DESIGN_JSON, json_origin()).unwrap();
    let b = Config::from_toml_str(DESIGN_TOML, Path::new("/runs/exp/config.toml")).unwrap();
    assert_eq!(a, b);
    let names: Vec<&str> = b.search_space.names().collect();
    assert_eq!(names, ["workers", "chunk"], "declaration order is kept");
}

#[test]
fn pretty_json_round_trips() {
    let a = Config::from_toml_str(DESIGN_TOML, Path::new("config.toml")).unwrap();
    let text = a.to_json_pretty();
    let b = Config::from_json_str(&text, Path::new("config.json")).unwrap();
    assert_eq!(a, b);
    // Integral numbers are written as integers, no timeout is written as null.
    assert!(text.contains("\"timeout_s\": 600,"), "{text}");
    assert!(text.contains("\"min\": 16,"), "{text}");
    let none = with_edit(|v| v["job"]["timeout_s"] = Value::Null).unwrap();
    let back = Config::from_json_str(&none.to_json_pretty(), json_origin()).unwrap();
    assert_eq!(back.job.timeout_s, None);
}

#[test]
fn load_by_extension() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("config.json");
    let toml = dir.path().join("config.toml");
    std::fs::write(&json, DESIGN_JSON).unwrap();
    std::fs::write(&toml, DESIGN_TOML).unwrap();
    assert_eq!(Config::load(&json).unwrap(), Config::load(&toml).unwrap());
    let yaml = dir.path().join("config.yaml");
    std::fs::write(&yaml, "x: 1").unwrap();
    let err = Config::load(&yaml).unwrap_err().to_string();
    assert!(
        err.contains("config.yaml") && err.contains(".json"),
        "{err}"
    );
    let missing = Config::load(&dir.path().join("nope.json"))
        .unwrap_err()
        .to_string();
    assert!(missing.contains("nope.json"), "{missing}");
}

#[test]
fn unknown_top_level_key() {
    let err = assert_err(
        with_edit(|v| v["limts"] = json!({})),
        &["limts", "objective", "search_space", "limits"],
    );
    assert!(err.contains("did you mean `limits`"), "{err}");
}

#[test]
fn unknown_nested_key() {
    assert_err(
        with_edit(|v| v["limits"]["max_concurency"] = json!(3)),
        &["limits.max_concurency", "max_concurrency"],
    );
    assert_err(
        with_edit(|v| v["search_space"]["chunk"]["step"] = json!(3)),
        &["search_space.chunk.step", "scale"],
    );
}

#[test]
fn wrong_type() {
    assert_err(
        with_edit(|v| v["limits"]["max_concurrency"] = json!("two")),
        &["limits.max_concurrency", "\"two\"", "line"],
    );
    assert_err(
        with_edit(|v| v["search_space"]["chunk"]["min"] = json!("small")),
        &["search_space.chunk.min", "small"],
    );
    assert_err(
        with_edit(|v| v["search_space"]["workers"] = json!("1,2")),
        &["search_space.workers", "array of choices"],
    );
}

#[test]
fn wrong_type_in_toml_names_path_and_line() {
    let text = DESIGN_TOML.replace("patience = 8", "patience = \"eight\"");
    let err = Config::from_toml_str(&text, Path::new("exp/config.toml"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("exp/config.toml"), "{err}");
    assert!(err.contains("limits.patience"), "{err}");
    let line = text
        .lines()
        .position(|l| l.starts_with("patience"))
        .unwrap()
        + 1;
    assert!(err.contains(&format!("line {line}, column 12")), "{err}");
}

#[test]
fn direction_up() {
    assert_err(
        with_edit(|v| v["objective"]["direction"] = json!("up")),
        &["objective.direction", "up", "maximize", "minimize"],
    );
}

#[test]
fn empty_choices() {
    assert_err(
        with_edit(|v| v["search_space"]["workers"] = json!([])),
        &["search_space.workers", "non-empty"],
    );
}

#[test]
fn duplicate_and_bad_choices() {
    assert_err(
        with_edit(|v| v["search_space"]["workers"] = json!([1, 2, 2.0])),
        &["search_space.workers[2]", "distinct"],
    );
    assert_err(
        with_edit(|v| v["search_space"]["workers"] = json!([1, null])),
        &["search_space.workers[1]", "null"],
    );
}

#[test]
fn min_greater_than_max() {
    assert_err(
        with_edit(|v| v["search_space"]["chunk"]["min"] = json!(5000)),
        &["search_space.chunk.min", "min < max", "5000", "4096"],
    );
}

#[test]
fn log_with_min_zero() {
    assert_err(
        with_edit(|v| v["search_space"]["chunk"]["min"] = json!(0)),
        &["search_space.chunk.min", "log", "> 0", "found 0"],
    );
}

#[test]
fn baseline_outside_range() {
    assert_err(
        with_edit(|v| v["baseline"]["chunk"] = json!(8192)),
        &["baseline.chunk", "16", "4096", "8192"],
    );
    assert_err(
        with_edit(|v| v["baseline"]["chunk"] = json!(64.5)),
        &["baseline.chunk", "integer", "64.5"],
    );
    assert_err(
        with_edit(|v| v["baseline"]["workers"] = json!(3)),
        &["baseline.workers", "one of [1, 2, 4, 8]", "3"],
    );
}

#[test]
fn baseline_missing_or_extra_param() {
    assert_err(
        with_edit(|v| {
            v["baseline"].as_object_mut().unwrap().remove("chunk");
        }),
        &["baseline.chunk", "missing"],
    );
    assert_err(
        with_edit(|v| v["baseline"]["threads"] = json!(1)),
        &["baseline.threads", "unknown parameter", "workers, chunk"],
    );
}

#[test]
fn seed_params_are_checked() {
    assert_err(
        with_edit(|v| v["seeds"][0]["params"]["chunk"] = json!(1)),
        &["seeds[0].params.chunk", "16"],
    );
    // Partial seeds are fine.
    let c = with_edit(|v| v["seeds"][0]["params"] = json!({ "workers": 8 })).unwrap();
    let full = c.complete_params(&c.seeds[0].params);
    assert_eq!(Value::Object(full), json!({ "workers": 8, "chunk": 64 }));
}

#[test]
fn placeholder_not_in_search_space() {
    assert_err(
        with_edit(|v| v["job"]["command"] = json!("sh bench.sh {workers} {threads}")),
        &["job.command", "{threads}", "workers, chunk"],
    );
    // Escaped braces and non-name braces are not placeholders.
    with_edit(|v| v["job"]["command"] = json!("awk '{{threads}}' ${1} {workers}")).unwrap();
}

#[test]
fn bad_param_name() {
    assert_err(
        with_edit(|v| {
            v["search_space"]["bad-name"] = json!([1, 2]);
            v["baseline"]["bad-name"] = json!(1);
        }),
        &["search_space.bad-name", "[A-Za-z_]"],
    );
}

#[test]
fn max_concurrency_zero_and_other_limits() {
    assert_err(
        with_edit(|v| v["limits"]["max_concurrency"] = json!(0)),
        &["limits.max_concurrency", "1 to 1024", "found 0"],
    );
    assert_err(
        with_edit(|v| v["limits"]["max_concurrency"] = json!(2000)),
        &["limits.max_concurrency", "2000"],
    );
    assert_err(
        with_edit(|v| v["limits"]["patience"] = json!(0)),
        &["limits.patience"],
    );
    assert_err(
        with_edit(|v| v["limits"]["time_budget_s"] = json!(-1)),
        &["limits.time_budget_s", "-1"],
    );
    assert_err(
        with_edit(|v| v["objective"]["min_improvement"] = json!(-0.5)),
        &["objective.min_improvement", "-0.5"],
    );
    assert_err(
        with_edit(|v| v["job"]["timeout_s"] = json!(0)),
        &["job.timeout_s", "found 0"],
    );
}

#[test]
fn noise_fields_have_defaults_and_bounds() {
    let c = with_edit(|_| {}).expect("design config");
    let o = &c.objective;
    assert_eq!(
        (o.repeats, o.baseline_repeats, o.confirm_runs, o.noise_k),
        (1, None, 2, 2.0)
    );
    assert_eq!(
        o.runs_of(true),
        3,
        "the baseline runs 3 times when repeats is 1"
    );
    assert_eq!(o.runs_of(false), 1);
    let c = with_edit(|v| {
        v["objective"]["repeats"] = json!(5);
        v["objective"]["min_improvement"] = json!("noise");
        v["objective"]["aggregate"] = json!("min");
        v["objective"]["confirm"] = json!("always");
    })
    .expect("noise config");
    assert_eq!(
        c.objective.runs_of(true),
        5,
        "else the baseline runs `repeats` times"
    );
    assert_eq!(c.objective.min_improvement, MinImprovement::Noise);
    // Written back as given.
    let written = serde_json::to_value(&c).unwrap();
    assert_eq!(written["objective"]["min_improvement"], json!("noise"));
    assert_eq!(written["objective"]["aggregate"], json!("min"));
    assert_eq!(written["objective"]["confirm"], json!("always"));
    for (field, value, needles) in [
        (
            "repeats",
            json!(0),
            &["objective.repeats", "1 to 100", "found 0"][..],
        ),
        (
            "baseline_repeats",
            json!(101),
            &["objective.baseline_repeats", "101"][..],
        ),
        ("confirm_runs", json!(0), &["objective.confirm_runs"][..]),
        ("noise_k", json!(0), &["objective.noise_k", "> 0"][..]),
        (
            "min_improvement",
            json!("nois"),
            &["objective.min_improvement", "\"noise\""][..],
        ),
        (
            "confirm",
            json!("sometimes"),
            &["objective.confirm", "auto"][..],
        ),
        (
            "aggregate",
            json!("avg"),
            &["objective.aggregate", "median"][..],
        ),
    ] {
        assert_err(with_edit(|v| v["objective"][field] = value), needles);
    }
}

#[test]
fn agent_planner_without_its_agent_section_is_refused() {
    assert_err(
        with_edit(|v| v["planner"]["kind"] = json!("agent")),
        &[
            "planner.agent: missing",
            "{\"preset\": \"claude\"}",
            "docs/agent.md",
        ],
    );
}

#[test]
fn json_syntax_error_has_line_and_column() {
    let text = "{\n  \"objective\": { \"metric\": \"x\",, }\n}";
    let err = Config::from_json_str(text, json_origin()).unwrap_err();
    match &err {
        ConfigError::Syntax { line, column, .. } => {
            assert_eq!(*line, 2);
            assert!(*column > 0);
        }
        other => panic!("expected a syntax error, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains("config.json") && msg.contains("line 2, column"),
        "{msg}"
    );
}

#[test]
fn toml_syntax_error_has_line_and_column() {
    let text = "[objective]\nmetric = \"x\"\ndirection = maximize\n";
    let err = Config::from_toml_str(text, Path::new("a/config.toml")).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("a/config.toml"), "{msg}");
    assert!(msg.contains("line 3, column 13"), "{msg}");
}

#[test]
fn top_level_not_an_object() {
    assert_err(
        Config::from_json_str("[1, 2]", json_origin()),
        &["(top level)", "object", "array"],
    );
}

#[test]
fn merge_for_resume_accepts_limits_and_slurm() {
    let stored = Config::from_json_str(DESIGN_JSON, json_origin()).unwrap();
    let given = with_edit(|v| {
        v["limits"]["max_experiments"] = json!(100);
        v["limits"]["max_concurrency"] = json!(8);
        v["executor"]["slurm"] = json!({ "partition": "gpu", "sbatch_args": ["--gres=gpu:1"] });
    })
    .unwrap();
    let merged = Config::merge_for_resume(&stored, &given).unwrap();
    assert_eq!(merged.limits.max_experiments, 100);
    assert_eq!(merged.limits.max_concurrency, 8);
    assert_eq!(merged.batch(), 8);
    assert_eq!(merged.executor.slurm.partition.as_deref(), Some("gpu"));
    assert_eq!(merged.job, stored.job);
    assert_eq!(merged.origin, stored.origin);
}

#[test]
fn merge_for_resume_refuses_other_changes() {
    let stored = with_edit(|v| v["job"]["command"] = json!("sh a.sh {workers} {chunk}")).unwrap();
    let given = with_edit(|v| {
        v["job"]["command"] = json!("sh b.sh {workers} {chunk}");
        v["search_space"]["workers"] = json!([1, 2, 4, 8, 16]);
        v["limits"]["patience"] = json!(3);
    })
    .unwrap();
    let err = Config::merge_for_resume(&stored, &given).unwrap_err();
    let ConfigError::ForbiddenChange { diff } = &err else {
        panic!("expected ForbiddenChange, got {err:?}");
    };
    let paths: Vec<&str> = diff.iter().map(|d| d.path.as_str()).collect();
    assert_eq!(paths, ["job.command", "search_space.workers[4]"]);
    let msg = err.to_string();
    assert!(
        msg.contains(
            r#"job.command: stored "sh a.sh {workers} {chunk}", given "sh b.sh {workers} {chunk}""#
        ),
        "{msg}"
    );
    assert!(
        msg.contains("new workdir") && msg.contains("limits"),
        "{msg}"
    );
}

#[test]
fn merge_treats_equal_numbers_as_equal() {
    let stored = Config::from_json_str(DESIGN_JSON, json_origin()).unwrap();
    let given = with_edit(|v| v["search_space"]["workers"] = json!([1.0, 2, 4, 8])).unwrap();
    Config::merge_for_resume(&stored, &given).unwrap();
}

const NASTY: &[&str] = &[
    "two words",
    "it's",
    "say \"hi\"",
    "a; touch /tmp/PWNED",
    "$(touch PWNED)",
    "`touch PWNED`",
    "'; touch PWNED; echo '",
    "\\n and \\",
    "",
    "  leading and trailing  ",
    "ünïcödé * ? [a] ~ # &",
    "$(touch /tmp/autoresearch-render-test-x)",
    "a\nb",
];

#[test]
fn render_command_passes_values_verbatim() {
    let dir = tempfile::tempdir().unwrap();
    for raw in NASTY {
        let mut params = Map::new();
        params.insert("v".into(), Value::String(raw.to_string()));
        params.insert("n".into(), json!(8.0));
        let cmd = render_command("printf '%s\\n' {v} {n}", &params).unwrap();
        let out = Command::new("sh")
            .arg("-c")
            .arg(&cmd)
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{cmd}: {out:?}");
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            format!("{raw}\n8\n"),
            "command: {cmd}"
        );
    }
    let created: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(created.is_empty(), "a value was executed: {created:?}");
    assert!(!Path::new("/tmp/PWNED").exists());
    assert!(!Path::new("/tmp/autoresearch-render-test-x").exists());
}

#[test]
fn render_command_numbers_and_escapes() {
    let c = Config::from_json_str(DESIGN_JSON, json_origin()).unwrap();
    let params = c.complete_params(&serde_json::from_str(r#"{"chunk": 256.0}"#).unwrap());
    assert_eq!(
        c.render(&params).unwrap(),
        "sh bench.sh --workers 1 --chunk 256"
    );
    let lr: Map<String, Value> = serde_json::from_str(r#"{"lr": 0.001, "b": true}"#).unwrap();
    assert_eq!(
        render_command("x {{lr}} {lr} {b} }}", &lr).unwrap(),
        "x {lr} 0.001 true }"
    );
    let err = render_command("x {missing}", &lr).unwrap_err().to_string();
    assert!(
        err.contains("{missing}") && err.contains("job.command"),
        "{err}"
    );
}

#[test]
fn param_env_uses_raw_values() {
    let params: Map<String, Value> =
        serde_json::from_str(r#"{"workers": 4, "mode": "it's fast", "lr": 1e-7}"#).unwrap();
    assert_eq!(
        param_env(&params),
        vec![
            ("AUTORESEARCH_PARAM_WORKERS".to_string(), "4".to_string()),
            (
                "AUTORESEARCH_PARAM_MODE".to_string(),
                "it's fast".to_string()
            ),
            ("AUTORESEARCH_PARAM_LR".to_string(), "1e-7".to_string()),
        ]
    );
}

#[test]
fn canonical_keys_ignore_order_and_number_form() {
    let a: Map<String, Value> = serde_json::from_str(r#"{"a": 8, "b": "x"}"#).unwrap();
    let b: Map<String, Value> = serde_json::from_str(r#"{"b": "x", "a": 8.0}"#).unwrap();
    let c: Map<String, Value> = serde_json::from_str(r#"{"b": "x", "a": "8"}"#).unwrap();
    assert_eq!(canonical_params_key(&a), canonical_params_key(&b));
    assert_ne!(canonical_params_key(&a), canonical_params_key(&c));
}

#[test]
fn improvement_is_relative() {
    let c = Config::from_json_str(DESIGN_JSON, json_origin()).unwrap();
    assert!(c.objective.is_improvement(1.0, None));
    assert!(c.objective.is_improvement(102.0, Some(100.0)));
    assert!(!c.objective.is_improvement(100.5, Some(100.0)));
    let m = Config::from_json_str(MINIMAL, json_origin()).unwrap();
    assert!(m.objective.is_improvement(0.5, Some(1.0)));
    assert!(!m.objective.is_improvement(0.995, Some(1.0)));
}

mod no_panics {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

        /// Damaged files give errors (naming the file), never panics.
        #[test]
        fn damaged_files_give_errors(cut in 0usize..2000, len in 0usize..40, junk in "\\PC{0,8}") {
            for (text, name) in [(DESIGN_JSON, "config.json"), (DESIGN_TOML, "config.toml")] {
                let mut chars: Vec<char> = text.chars().collect();
                let at = cut % chars.len();
                let end = (at + len).min(chars.len());
                chars.splice(at..end, junk.chars());
                let damaged: String = chars.into_iter().collect();
                let origin = Path::new(name);
                let result = if name.ends_with("json") {
                    Config::from_json_str(&damaged, origin)
                } else {
                    Config::from_toml_str(&damaged, origin)
                };
                if let Err(e) = result {
                    prop_assert!(e.to_string().contains(name), "{}", e);
                }
            }
        }
    }

    #[test]
    fn toml_datetime_is_a_type_error() {
        let text = DESIGN_TOML.replace("metric = \"throughput\"", "metric = 1979-05-27");
        let err = Config::from_toml_str(&text, Path::new("config.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("objective.metric"), "{err}");
    }
}

mod param_syntax {
    use super::*;

    fn parse(s: &str) -> Result<Param, String> {
        s.parse::<ParamSpec>()
            .map(|p| p.param)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn ranges_are_int_when_both_ends_are_integers() {
        let Param::Range(r) = parse("w=1..8").unwrap() else {
            panic!()
        };
        assert_eq!((r.kind, r.scale), (NumType::Int, Scale::Linear));
        let Param::Range(r) = parse("w=0.5..2:log").unwrap() else {
            panic!()
        };
        assert_eq!((r.kind, r.scale), (NumType::Float, Scale::Log));
        let Param::Range(r) = parse("w=1..8:float:linear").unwrap() else {
            panic!()
        };
        assert_eq!(r.kind, NumType::Float);
        assert!(parse("w=1.5..8:int").unwrap_err().contains("whole-number"));
        assert!(parse("w=0..1:lin").unwrap_err().contains("`linear`"));
        assert!(
            parse("w=1..9007199254740993").unwrap_err().contains("2^53"),
            "int bounds beyond 2^53"
        );
        assert!(parse("w=1..9007199254740993:float").is_ok());
    }

    #[test]
    fn malformed_ranges_suggest_the_range_syntax() {
        for bad in [
            "cutoff=1-256",
            "cutoff=1:256",
            "cutoff=[1,256]",
            "cutoff=1...256",
            "cutoff=(1, 256)",
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains("did you mean cutoff=1..256?"), "{bad}: {e}");
        }
        assert!(
            parse("x=-5-5")
                .unwrap_err()
                .contains("did you mean x=-5..5?")
        );
    }

    #[test]
    fn choices_quotes_and_order() {
        let Param::Choices(c) = parse(r#"x=1, "2", 'a,b', true, "", 0.5"#).unwrap() else {
            panic!()
        };
        assert_eq!(
            c.values(),
            [
                json!(1),
                json!("2"),
                json!("a,b"),
                json!(true),
                json!(""),
                json!(0.5)
            ]
        );
        assert!(!c.is_ordered());
        assert!(parse("x=1,2,4").unwrap().is_ordered());
        assert!(!parse("x=adam,sgd").unwrap().is_ordered());
        assert!(parse("x=adam,sgd:ordered").unwrap().is_ordered());
        assert!(!parse("x=1,2:unordered").unwrap().is_ordered());
        // A colon that is not a known flag stays part of the choice.
        let Param::Choices(c) = parse("dev=cuda:0,cuda:1").unwrap() else {
            panic!()
        };
        assert_eq!(c.values(), [json!("cuda:0"), json!("cuda:1")]);
        for bad in [
            "x",
            "x=",
            "1x=1",
            "x=1,,2",
            "x=1,1",
            "x=\"a",
            "x=8..1",
            "x=0..4:log",
        ] {
            assert!(parse(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn values_typed_for_a_parameter() {
        let p = parse("w=1,2,4").unwrap();
        assert_eq!(p.parse_value("4.0").unwrap(), json!(4));
        assert!(p.parse_value("3").is_err());
        let p = parse("c=16..4096:log:int").unwrap();
        assert_eq!(p.parse_value("64").unwrap(), json!(64));
        assert!(p.parse_value("64.5").is_err());
        assert_eq!(p.default_value(), json!(16));
        assert_eq!(parse("o=adam,sgd").unwrap().default_value(), json!("adam"));
    }

    #[test]
    fn order_flag_round_trips_and_plain_lists_stay_plain() {
        for (text, ordered) in [
            (r#"[1, 2]"#, true),
            (r#"["a", "b"]"#, false),
            (r#"{"choices": ["a", "b"], "ordered": true}"#, true),
            (r#"{"choices": [1, 2], "ordered": false}"#, false),
        ] {
            let p: Param = serde_json::from_str(text).unwrap();
            assert_eq!(p.is_ordered(), ordered, "{text}");
            let back: Param = serde_json::from_value(serde_json::to_value(&p).unwrap()).unwrap();
            assert_eq!(back, p);
        }
        let plain: Param = serde_json::from_str(r#"{"choices": ["a"], "ordered": false}"#).unwrap();
        assert_eq!(serde_json::to_value(&plain).unwrap(), json!(["a"]));
        assert!(serde_json::from_str::<Param>(r#"{"choices": [1], "min": 0}"#).is_err());
        assert!(serde_json::from_str::<Param>(r#"{"min": 0}"#).is_err());
    }
}

#[test]
fn unknown_keys_and_values_have_a_location_and_a_hint() {
    let text = DESIGN_JSON.replace("\"patience\": 8", "\"patiense\": 8");
    let err = Config::from_json_str(&text, json_origin())
        .unwrap_err()
        .to_string();
    assert!(err.contains("limits.patiense"), "{err}");
    assert!(err.contains("did you mean `patience`?"), "{err}");
    assert!(err.contains("line 11, column"), "{err}");
    assert_err(
        with_edit(|v| v["objective"]["direction"] = json!("maximise")),
        &["objective.direction", "did you mean `maximize`?"],
    );
    assert_err(
        with_edit(|v| v["search_space"]["workers"] = json!({"choices": [1, 2], "order": true})),
        &["search_space.workers.order", "did you mean `ordered`?"],
    );
}

#[test]
fn choices_carry_an_order_flag() {
    let c = with_edit(|v| {
        v["search_space"]["opt"] = json!(["adam", "sgd"]);
        v["search_space"]["size"] = json!({"choices": ["s", "m", "l"], "ordered": true});
        v["baseline"]["opt"] = json!("adam");
        v["baseline"]["size"] = json!("m");
    })
    .unwrap();
    assert!(c.search_space.get("workers").unwrap().is_ordered());
    assert!(!c.search_space.get("opt").unwrap().is_ordered());
    assert!(c.search_space.get("size").unwrap().is_ordered());
    assert!(c.search_space.get("chunk").unwrap().is_ordered());
    let back = Config::from_json_str(&c.to_json_pretty(), json_origin()).unwrap();
    assert_eq!(back, c);
}

#[test]
fn int_bounds_beyond_2_pow_53_are_refused() {
    assert_err(
        with_edit(|v| v["search_space"]["chunk"]["max"] = json!(1.0e17)),
        &["search_space.chunk.max", "2^53", "float"],
    );
    assert_err(
        with_edit(|v| v["search_space"]["workers"] = json!([1, 9007199254740993_u64])),
        &["search_space.workers[1]", "2^53"],
    );
}

#[test]
fn log_limit_has_a_default_and_must_be_positive() {
    let c = Config::from_json_str(DESIGN_JSON, json_origin()).unwrap();
    assert_eq!(c.job.log_limit_mb, 64);
    assert_err(
        with_edit(|v| v["job"]["log_limit_mb"] = json!(0)),
        &["job.log_limit_mb", "≥ 1"],
    );
}

#[test]
fn quoted_placeholders_are_refused_with_how_to_write_them() {
    for command in [
        "sh bench.sh --workers \"{workers}\" --chunk {chunk}",
        "sh bench.sh --workers='{workers}' --chunk {chunk}",
        "sh bench.sh --workers `echo {workers}` --chunk {chunk}",
        "sh bench.sh --workers $(echo {workers}) --chunk {chunk}",
    ] {
        let err = assert_err(
            with_edit(|v| v["job"]["command"] = json!(command)),
            &["job.command", "{workers}", "--workers={workers}"],
        );
        assert!(err.contains("AUTORESEARCH_PARAM_WORKERS"), "{err}");
    }
    assert!(
        with_edit(|v| v["job"]["command"] = json!("sh b.sh --workers={workers} {chunk}")).is_ok()
    );
}

#[test]
fn cwd_must_be_an_existing_folder() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Config::from_json_str(DESIGN_JSON, json_origin()).unwrap();
    c.job.cwd = dir.path().join("missing");
    let err = c.check_cwd().unwrap_err().to_string();
    assert!(
        err.contains("job.cwd") && err.contains("missing") && err.contains("--cwd"),
        "{err}"
    );
    std::fs::write(dir.path().join("file"), "x").unwrap();
    c.job.cwd = dir.path().join("file");
    assert!(
        c.check_cwd()
            .unwrap_err()
            .to_string()
            .contains("found a file")
    );
    c.job.cwd = dir.path().to_path_buf();
    c.check_cwd().unwrap();
}

#[test]
fn checkpoint_params_are_checked_against_the_search_space() {
    let c = Config::from_json_str(DESIGN_JSON, json_origin()).unwrap();
    let ok: Map<String, Value> = serde_json::from_str(r#"{"workers": 4.0, "chunk": 64}"#).unwrap();
    c.check_params(&ok).unwrap();
    for (bad, needles) in [
        (
            r#"{"wrokers": 4}"#,
            &["wrokers", "did you mean `workers`?"][..],
        ),
        (
            r#"{"workers": 3}"#,
            &["workers", "one of [1, 2, 4, 8]", "found 3"][..],
        ),
        (r#"{"workers": "4"}"#, &["workers", "string \"4\""][..]),
        (r#"{"chunk": 8}"#, &["chunk", "from 16 to 4096"][..]),
        (r#"{"chunk": 64.5}"#, &["chunk", "integer"][..]),
        (
            r#"{"workers": "$(touch X)"}"#,
            &["workers", "$(touch X)"][..],
        ),
    ] {
        let params: Map<String, Value> = serde_json::from_str(bad).unwrap();
        let err = c.check_params(&params).unwrap_err().to_string();
        for n in needles {
            assert!(err.contains(n), "{bad}: {err} lacks {n}");
        }
    }
}

/// Hostile parameter values through real `sh -c`, in every placeholder position the
/// configuration accepts: the program receives exactly the value and nothing is executed.
mod hostile_values {
    use super::*;
    use proptest::prelude::*;

    const FRAGMENTS: &[&str] = &[
        "$(touch A)",
        "`touch B`",
        ";touch C",
        "&& touch D",
        "| touch E",
        "'",
        "\"",
        "\\",
        "\n",
        "$HOME",
        "${HOME}",
        "*",
        "~",
        "#",
        "{x}",
        "' ; touch F ; '",
        "\"$(touch G)\"",
        "\ttab",
        "-n",
        "=",
        "!",
        "ü日本",
    ];

    /// (template with `{v}`, what `printf '%s\n'` prints for value `v`).
    /// What `printf` prints for a value.
    type Expected = fn(&str) -> String;

    fn positions() -> Vec<(&'static str, Expected)> {
        vec![
            ("printf '%s\\n' {v}", |v| format!("{v}\n")),
            ("printf '%s\\n' --name={v}", |v| format!("--name={v}\n")),
            ("printf '%s\\n' x{v}y", |v| format!("x{v}y\n")),
            ("printf '%s\\n' {v}{v}", |v| format!("{v}{v}\n")),
            ("true && (printf '%s\\n' {v}) | cat", |v| format!("{v}\n")),
            ("cat <<'EOF'\nhead\nEOF\nprintf '%s\\n' {v}", |v| {
                format!("head\n{v}\n")
            }),
            (
                "printf '%s\\n' \"$HOME\" {v} >/dev/null; printf '%s\\n' {v}",
                |v| format!("{v}\n"),
            ),
        ]
    }

    fn value() -> impl Strategy<Value = String> {
        (
            proptest::collection::vec(proptest::sample::select(FRAGMENTS), 0..4),
            "[^\u{0}]{0,12}",
        )
            .prop_map(|(frags, tail)| {
                let mut s: String = frags.concat();
                s.push_str(&tail);
                s
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

        #[test]
        fn hostile_values_reach_the_program_verbatim(v in value()) {
            let dir = tempfile::tempdir().unwrap();
            for (template, expected) in positions() {
                prop_assert_eq!(check_template(template), Ok(()), "{}", template);
                let mut params = Map::new();
                params.insert("v".into(), Value::String(v.clone()));
                let cmd = render_command(template, &params).unwrap();
                let out = Command::new("sh")
                    .arg("-c")
                    .arg(&cmd)
                    .current_dir(dir.path())
                    .env("HOME", "/nonexistent-home")
                    .output()
                    .unwrap();
                prop_assert!(out.status.success(), "{}: {:?}", cmd, out);
                prop_assert_eq!(String::from_utf8_lossy(&out.stdout), expected(&v), "{}", cmd);
                let created: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
                prop_assert!(created.is_empty(), "{} executed something: {:?}", cmd, created);
            }
        }
    }
}

/// `docs/config-reference.md` lists exactly the fields the configuration types accept: a
/// configuration with every field set is read (so each is accepted), written back (so a field
/// added to the types shows up here, defaults included), and its field paths compared with the
/// page's table, both ways.
#[test]
fn config_reference_lists_every_field() {
    let full = json!({
        "objective": { "metric": "m", "direction": "minimize", "min_improvement": 0.02 },
        "job": { "command": "run {a} {b} {c}", "cwd": "/", "timeout_s": 5,
                 "env": { "K": "v" }, "log_limit_mb": 8 },
        "search_space": {
            "a": [1, 2],
            "b": { "choices": ["x", "y"], "ordered": true },
            "c": { "min": 1, "max": 8, "scale": "log", "type": "int" }
        },
        "baseline": { "a": 1, "b": "x", "c": 2 },
        "seeds": [ { "name": "s", "params": { "a": 2 }, "priority": 1, "hypothesis": "h" } ],
        "planner": { "kind": "none", "seed": 3, "batch": 2,
                     "agent": { "preset": "claude", "command": ["a"], "model": "m",
                                "timeout_s": 60, "max_retries": 2, "analyze": true,
                                "fallback": "none", "max_prompt_bytes": 5000 } },
        "executor": { "kind": "slurm", "cancel_jobs_on_stop": true,
                      "slurm": { "partition": "p", "account": "a", "sbatch_args": ["--x"],
                                 "time_limit_min": 5 } },
        "limits": { "max_experiments": 3, "patience": 2, "time_budget_s": 60,
                    "max_concurrency": 2, "agent_cost_usd": 2.5 },
        "workspace": { "repo": "/src", "base": "main", "protected": ["bench.py"],
                       "include": ["data"] }
    });
    let config = Config::from_json_str(&full.to_string(), json_origin()).expect("full config");
    let written = serde_json::to_value(&config).unwrap();

    fn walk(path: &str, v: &Value, out: &mut std::collections::BTreeSet<String>) {
        let generic = |parent: &str, key: &str| -> String {
            match parent {
                "search_space" | "baseline" | "seeds[].params" => format!("{parent}.<name>"),
                "job.env" => format!("{parent}.<NAME>"),
                "" => key.to_string(),
                _ => format!("{parent}.{key}"),
            }
        };
        match v {
            Value::Object(map) => {
                for (k, sub) in map {
                    walk(&generic(path, k), sub, out);
                }
            }
            Value::Array(items) if path == "seeds" => {
                for item in items {
                    walk("seeds[]", item, out);
                }
            }
            _ => {
                out.insert(path.to_string());
            }
        }
    }
    let mut from_types = std::collections::BTreeSet::new();
    walk("", &written, &mut from_types);

    let page = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/config-reference.md"),
    )
    .expect("docs/config-reference.md");
    let section = page
        .split("## Fields")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("a `## Fields` section");
    let from_page: std::collections::BTreeSet<String> = section
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .map(str::to_string)
        .collect();
    let undocumented: Vec<_> = from_types.difference(&from_page).collect();
    let unknown: Vec<_> = from_page.difference(&from_types).collect();
    assert!(
        undocumented.is_empty() && unknown.is_empty(),
        "docs/config-reference.md is out of date: fields missing from the page {undocumented:?}, \
         fields the configuration does not have {unknown:?}"
    );
}

/// A spec added by hand (or planted in the checkpoint) whose parameters are outside the search
/// space is refused with a message naming the parameter; nothing of it runs, and a valid one
/// added next to it does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hand_added_specs_are_checked_against_the_search_space() {
    use autoresearch_engine::WorkSpec;
    use autoresearch_engine::control::ControlCommand;
    let fx = support::Fixture::new();
    let script = fx.script("job.sh", "echo \"METRIC score=$1\"\n");
    let cfg = fx.config(json!({
        "objective": { "metric": "score", "direction": "maximize" },
        "job": { "command": format!("sh {} {{x}}", script.display()) },
        "search_space": { "x": [1, 2, 3] },
        "baseline": { "x": 1 },
        "planner": { "kind": "none" },
        "limits": { "max_concurrency": 1, "max_experiments": 10, "patience": 10 }
    }));
    fx.run(Some(cfg)).await;
    let spec = |id: &str, x: Value| {
        let mut payload = Map::new();
        payload.insert("name".into(), json!(id));
        payload.insert("params".into(), json!({ "x": x }));
        WorkSpec {
            id: id.into(),
            priority: 0.0,
            kind: "experiment".into(),
            payload,
        }
    };
    autoresearch_engine::control::edit_offline(
        &fx.wd,
        &[
            ControlCommand::Add {
                spec: spec("900_evil", json!("$(touch PWNED)")),
            },
            ControlCommand::Add {
                spec: spec("901_good", json!(3)),
            },
        ],
    )
    .expect("queue add");
    fx.run(None).await;
    assert!(!fx.work_file("PWNED").exists(), "the hostile value ran");
    assert!(
        !fx.run_dir("900_evil").exists(),
        "the refused spec got a run dir"
    );
    assert!(
        !fx.node_dir("900_evil").exists(),
        "the refused spec became a node"
    );
    let events = std::fs::read_to_string(fx.path("engine/events.jsonl")).unwrap();
    let refusal = events
        .lines()
        .find(|l| l.contains("900_evil") && l.contains("refused"))
        .unwrap_or_else(|| panic!("no refusal event: {events}"));
    assert!(
        refusal.contains("parameter `x`") && refusal.contains("one of [1, 2, 3]"),
        "{refusal}"
    );
    assert_eq!(fx.status("901_good"), "completed");
}

/// Every shipped example configuration (`examples/*/config*.json`) parses and validates, so the
/// examples that cannot run in CI (they need a paid agent CLI) still match the code.
#[test]
fn every_example_configuration_parses() {
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut checked = Vec::new();
    for dir in std::fs::read_dir(&examples).unwrap() {
        let dir = dir.unwrap().path();
        let Ok(files) = std::fs::read_dir(&dir) else {
            continue;
        };
        for f in files {
            let f = f.unwrap().path();
            let name = f.file_name().unwrap().to_string_lossy().into_owned();
            if name.starts_with("config") && name.ends_with(".json") {
                if let Err(e) = autoresearch_adapters::config::Config::load(&f) {
                    panic!("{}: {e}", f.display());
                }
                checked.push(f);
            }
        }
    }
    for must in [
        "quickstart/config.json",
        "agent-demo/config.example.json",
        "agent-claude/config.json",
        "agent-codex/config.json",
    ] {
        assert!(
            checked.iter().any(|p| p.ends_with(must)),
            "{must} not checked: {checked:?}"
        );
    }
}
