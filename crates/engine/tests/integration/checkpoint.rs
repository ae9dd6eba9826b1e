//! Every bad hand-edited checkpoint gives one precise error (file, line, column, field path,
//! what was expected) and leaves the file byte-identical.

use std::path::Path;

use autoresearch_engine::{
    AsyncWorkEngine, EngineConfig, EngineError, StartInfo, WorkError, WorkSpec, Workflow,
};

struct Nothing;
impl Workflow for Nothing {
    async fn initial_specs(&self, _: &StartInfo) -> Result<Vec<WorkSpec>, WorkError> {
        Ok(vec![])
    }
    async fn run(
        &self,
        _: WorkSpec,
        _: autoresearch_engine::RunContext,
    ) -> Result<Vec<WorkSpec>, WorkError> {
        Ok(vec![])
    }
}

/// Writes `text` as the checkpoint, opens an engine, returns the error text and line/column.
fn open_bad(text: &str) -> (String, usize, usize, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine_dir = dir.path().join("engine");
    std::fs::create_dir_all(&engine_dir).expect("mkdir");
    let path = engine_dir.join("checkpoint.json");
    std::fs::write(&path, text).expect("write");
    let err = AsyncWorkEngine::open(EngineConfig::new(dir.path()), Nothing)
        .err()
        .expect("bad checkpoint must be refused");
    assert_eq!(
        std::fs::read(&path).expect("read"),
        text.as_bytes(),
        "file left byte-identical"
    );
    let names: Vec<String> = std::fs::read_dir(&engine_dir)
        .expect("dir")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "lock")
        .collect();
    assert_eq!(names, vec!["checkpoint.json"], "nothing else written");
    match err {
        EngineError::Checkpoint(e) => {
            let msg = e.to_string();
            assert!(
                msg.contains(&path.display().to_string()),
                "names the file: {msg}"
            );
            (msg, e.line, e.column, e.field)
        }
        other => panic!("expected a checkpoint error, got {other}"),
    }
}

const HEAD: &str =
    "{\n  \"schema_version\": 1,\n  \"status\": \"interrupted\",\n  \"updated_at\": \"x\",\n";

fn with_queued(entries: &str) -> String {
    format!("{HEAD}  \"queued\": [\n{entries}\n  ],\n  \"running\": []\n}}\n")
}

#[test]
fn invalid_json() {
    let (msg, line, col, _) =
        open_bad("{\n  \"schema_version\": 1,\n  \"status\": \"stopped\" oops\n}");
    assert_eq!((line, col), (3, 23), "{msg}");
    assert!(!msg.contains("?:"), "no placeholder field path: {msg}");
    assert!(msg.contains("expected"), "{msg}");
}

#[test]
fn truncated_file() {
    let full =
        with_queued("    {\"id\": \"a\", \"priority\": 1, \"kind\": \"k\", \"payload\": {}}");
    let cut = &full[..full.len() / 2];
    let (msg, line, _, _) = open_bad(cut);
    assert!(msg.contains("truncated"), "{msg}");
    assert!(line >= 5, "{msg}");
}

#[test]
fn empty_file() {
    let (msg, line, col, _) = open_bad("");
    assert_eq!((line, col), (1, 1));
    assert!(msg.contains("empty"), "{msg}");
}

#[test]
fn string_priority() {
    let text = with_queued(
        "    {\"id\": \"a\", \"priority\": 0, \"payload\": {}},\n    {\"id\": \"b\", \"priority\": \"high\", \"payload\": {}}",
    );
    let (msg, line, _, field) = open_bad(&text);
    assert_eq!(field, "queued[1].priority");
    assert_eq!(line, 7);
    assert!(
        msg.contains("queued[1].priority: expected a finite number, found string \"high\""),
        "{msg}"
    );
}

#[test]
fn non_finite_priority() {
    // JSON has no NaN/Infinity literals; a number too large for f64 parses as infinity.
    let text = with_queued("    {\"id\": \"a\", \"priority\": 1e999, \"payload\": {}}");
    let (msg, _, _, field) = open_bad(&text);
    assert!(field.is_empty() || field == "queued[0].priority", "{msg}");
    assert!(
        msg.contains("out of range") || msg.contains("finite"),
        "{msg}"
    );
}

#[test]
fn wrong_type_for_payload() {
    let text = with_queued("    {\"id\": \"a\", \"priority\": 1, \"payload\": \"x\"}");
    let (msg, _, _, field) = open_bad(&text);
    assert_eq!(field, "queued[0].payload");
    assert!(
        msg.contains("expected a JSON object, found string \"x\""),
        "{msg}"
    );
}

#[test]
fn wrong_type_for_queued() {
    let text = format!("{HEAD}  \"queued\": {{}},\n  \"running\": []\n}}\n");
    let (msg, _, _, field) = open_bad(&text);
    assert_eq!(field, "queued");
    assert!(msg.contains("expected a JSON array"), "{msg}");
}

#[test]
fn duplicate_ids_across_queued_and_running() {
    let text = format!(
        "{HEAD}  \"queued\": [\n    {{\"id\": \"same\", \"priority\": 1, \"payload\": {{}}}}\n  ],\n  \"running\": [\n    {{\"id\": \"same\", \"priority\": 1, \"payload\": {{}}}}\n  ]\n}}\n"
    );
    let (msg, line, _, field) = open_bad(&text);
    assert_eq!(field, "running[0].id");
    assert_eq!(line, 9, "{msg}");
    assert!(msg.contains("duplicate id \"same\""), "{msg}");
}

#[test]
fn id_outside_pattern() {
    for bad in ["has space", "", "slash/x", &"x".repeat(129)] {
        let text = with_queued(&format!(
            "    {{\"id\": \"{bad}\", \"priority\": 1, \"payload\": {{}}}}"
        ));
        let (msg, line, _, field) = open_bad(&text);
        assert_eq!(field, "queued[0].id", "{msg}");
        assert_eq!(line, 6);
        assert!(
            msg.contains("expected an id of 1 to 128 characters"),
            "{msg}"
        );
    }
}

#[test]
fn missing_id() {
    let text = with_queued("    {\"priority\": 1, \"payload\": {}}");
    let (msg, _, _, field) = open_bad(&text);
    assert_eq!(field, "queued[0]");
    assert!(msg.contains("missing field `id`"), "{msg}");
}

#[test]
fn unknown_status() {
    let text = "{\n  \"schema_version\": 1,\n  \"status\": \"paused\",\n  \"queued\": [], \"running\": []\n}\n";
    let (msg, line, _, field) = open_bad(text);
    assert_eq!(field, "status");
    assert_eq!(line, 3);
    assert!(
        msg.contains(
            "expected one of \"running\", \"interrupted\", \"stopped\", found string \"paused\""
        ),
        "{msg}"
    );
}

#[test]
fn wrong_schema_version() {
    let text = "{\n  \"schema_version\": 7,\n  \"status\": \"stopped\",\n  \"queued\": [], \"running\": []\n}\n";
    let (msg, line, _, field) = open_bad(text);
    assert_eq!(field, "schema_version");
    assert_eq!(line, 2);
    assert!(msg.contains("expected 1, found 7"), "{msg}");
}

#[test]
fn unknown_keys_in_a_spec_are_warned_about_not_fatal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("checkpoint.json");
    let text =
        with_queued("    {\"id\": \"a\", \"priority\": 1, \"payload\": {}, \"colour\": \"red\"}");
    std::fs::write(&path, &text).expect("write");
    let cp = autoresearch_engine::checkpoint::load(&path)
        .expect("valid")
        .expect("exists");
    assert_eq!(cp.queued.len(), 1);
    assert_eq!(cp.warnings.len(), 1);
    assert!(cp.warnings[0].contains("queued[0].colour"));
    let _ = Path::new("");
}
