//! `engine/checkpoint.json`: the source of truth for the queue, and hand-editable.
//!
//! Loading validates every field and reports the first problem as one error naming the file,
//! line, column and field path (`queued[3].priority: expected a finite number, found string
//! "high"`). A failed load never modifies the file. A key repeated anywhere is an error (JSON
//! parsers silently keep the last copy, which could drop a whole queue). Unknown top-level keys
//! are kept and written back; unknown keys inside a spec are reported as warnings.
//!
//! Every file the engine writes carries a `revision`, one more than the last: a live hand edit
//! says which revision it was made from, so the engine can tell the user's changes from its own
//! (see `docs/workdir-format.md`).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::serde_error::{self, Located};
use crate::spec::WorkSpec;
use crate::state::EngineStatus;

/// The checkpoint format version this engine reads and writes.
pub const SCHEMA_VERSION: u32 = 1;

/// The largest checkpoint the engine reads (a larger file is refused, never loaded into memory).
pub const MAX_BYTES: u64 = 4 << 30;

/// A loaded and validated checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    /// Always [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The write this file came from (0 when the file has none).
    pub revision: u64,
    /// `running`, `interrupted` or `stopped`.
    pub status: EngineStatus,
    /// When it was written (RFC 3339), as found.
    pub updated_at: String,
    /// Queued specs (in file order).
    pub queued: Vec<WorkSpec>,
    /// Specs that were running when it was written.
    pub running: Vec<WorkSpec>,
    /// Unknown top-level keys, kept as they are.
    pub extra: Map<String, Value>,
    /// Non-fatal findings (unknown keys).
    pub warnings: Vec<String>,
}

/// A checkpoint that failed validation; its Display is the whole user-facing message.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}:{line}:{column}: {field}{sep}{message}; fix the file and start again — it was left unchanged", path.display(), sep = if field.is_empty() { "" } else { ": " })]
pub struct CheckpointError {
    /// The checkpoint file.
    pub path: PathBuf,
    /// 1-based line of the problem (0 when the file could not be read).
    pub line: usize,
    /// 1-based column of the problem.
    pub column: usize,
    /// Field path such as `queued[3].priority` (empty for syntax errors).
    pub field: String,
    /// What was expected and what was found.
    pub message: String,
}

/// The statuses a checkpoint may have (`failed` exists only in `engine_state.json`).
#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum Status {
    Running,
    Interrupted,
    Stopped,
}

/// The file as written, before the checks that span fields.
#[derive(Deserialize)]
struct CheckpointFile {
    schema_version: Option<u32>,
    #[serde(default)]
    revision: u64,
    status: Option<Status>,
    updated_at: Option<String>,
    #[serde(default)]
    queued: Vec<WorkSpec>,
    #[serde(default)]
    running: Vec<WorkSpec>,
}

/// Reads and validates the checkpoint at `path`; `Ok(None)` when there is none. Only a regular
/// file of at most [`MAX_BYTES`] is read (a link, FIFO or device is an error naming it).
pub fn load(path: &Path) -> Result<Option<Checkpoint>, CheckpointError> {
    match crate::nofollow::read_regular(path, MAX_BYTES) {
        Ok(Some(bytes)) => parse(&bytes, path).map(Some),
        Ok(None) => Ok(None),
        Err(e) => Err(CheckpointError {
            path: path.to_path_buf(),
            line: 0,
            column: 0,
            field: String::new(),
            message: format!("cannot read the file: {e}"),
        }),
    }
}

/// Validates checkpoint bytes; `path` is only used in messages.
pub fn parse(bytes: &[u8], path: &Path) -> Result<Checkpoint, CheckpointError> {
    let err = |line, column, field: &str, message: String| CheckpointError {
        path: path.to_path_buf(),
        line,
        column,
        field: field.to_string(),
        message,
    };
    let located = |l: Located| err(l.line, l.column, &l.path, l.message);
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(err(
            1,
            1,
            "",
            "the file is empty; expected a JSON object with schema_version, status, queued and running".into(),
        ));
    }
    let mut unknown = Vec::new();
    let raw: CheckpointFile =
        serde_error::from_json_slice(bytes, |p| unknown.push(p)).map_err(located)?;
    let text = String::from_utf8_lossy(bytes);
    let position_of = |needle: &str, nth: usize| locate(&text, needle, nth);
    let Some(version) = raw.schema_version else {
        return Err(err(
            1,
            1,
            "schema_version",
            format!("missing; expected {SCHEMA_VERSION}"),
        ));
    };
    if version != SCHEMA_VERSION {
        let (l, c) = position_of("\"schema_version\"", 0);
        return Err(err(
            l,
            c,
            "schema_version",
            format!(
                "expected {SCHEMA_VERSION}, found {version} (written by another version of the engine?)"
            ),
        ));
    }
    let Some(status) = raw.status else {
        return Err(err(
            1,
            1,
            "status",
            "missing; expected one of running, interrupted, stopped".into(),
        ));
    };
    // Ids must be unique across both lists.
    let mut seen: HashSet<&str> = HashSet::with_capacity(raw.queued.len() + raw.running.len());
    for (list, specs) in [("queued", &raw.queued), ("running", &raw.running)] {
        for (i, spec) in specs.iter().enumerate() {
            let id = spec.id.as_str();
            if !seen.insert(id) {
                let encoded = serde_json::to_string(id).unwrap_or_default();
                // The duplicate is (at the earliest) the second time the id appears in the text.
                let (l, c) = position_of(&encoded, 1);
                return Err(err(
                    l,
                    c,
                    &format!("{list}[{i}].id"),
                    format!("duplicate id {encoded}: ids must be unique across queued and running"),
                ));
            }
        }
    }
    let (extra, warnings) = unknown_keys(bytes, &unknown, path).map_err(located)?;
    Ok(Checkpoint {
        schema_version: version,
        revision: raw.revision,
        status: match status {
            Status::Running => EngineStatus::Running,
            Status::Interrupted => EngineStatus::Interrupted,
            Status::Stopped => EngineStatus::Stopped,
        },
        updated_at: raw.updated_at.unwrap_or_default(),
        queued: raw.queued,
        running: raw.running,
        extra,
        warnings,
    })
}

/// Unknown keys: top-level ones are kept (their values read in a second pass, only when there
/// are any), those inside a spec become warnings. A repeated unknown key is an error.
fn unknown_keys(
    bytes: &[u8],
    unknown: &[String],
    path: &Path,
) -> Result<(Map<String, Value>, Vec<String>), Located> {
    let mut extra = Map::new();
    let mut warnings = Vec::new();
    let mut seen = HashSet::new();
    let text = String::from_utf8_lossy(bytes);
    for key in unknown {
        if !seen.insert(key.as_str()) {
            let name = key.rsplit('.').next().unwrap_or(key);
            let (line, column) = locate(&text, &format!("\"{name}\""), 1);
            return Err(Located {
                line,
                column,
                path: key.clone(),
                message: format!("duplicate key `{name}`: each key may appear only once"),
            });
        }
    }
    let top_level: Vec<&String> = unknown.iter().filter(|k| !k.contains(['.', '['])).collect();
    if !top_level.is_empty() {
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let mut all = serde_error::unique_keys_object(&mut de).map_err(|e| Located {
            line: e.line(),
            column: e.column(),
            path: String::new(),
            message: serde_error::message(&e),
        })?;
        for key in top_level {
            if let Some(v) = all.remove(key.as_str()) {
                extra.insert(key.clone(), v);
            }
            let known = serde_error::field_names::<CheckpointFile>();
            if let Some(k) = serde_error::did_you_mean(key, known) {
                warnings.push(format!(
                    "{}: unknown top-level key `{key}` kept as is (did you mean `{k}`?)",
                    path.display()
                ));
            }
        }
    }
    for key in unknown.iter().filter(|k| k.contains(['.', '['])) {
        let name = key.rsplit('.').next().unwrap_or(key);
        warnings.push(format!(
            "{}: {key}: {} (the key was ignored)",
            path.display(),
            serde_error::unknown_key(name, serde_error::field_names::<WorkSpec>())
        ));
    }
    Ok((extra, warnings))
}

/// Line and column (1-based) of the `nth` occurrence of `needle`, or (1, 1).
fn locate(text: &str, needle: &str, nth: usize) -> (usize, usize) {
    match text.match_indices(needle).nth(nth) {
        Some((offset, _)) => serde_error::line_column(text, offset),
        None => (1, 1),
    }
}

/// A spec already serialized (once, when it was queued).
pub(crate) trait SpecJson {
    /// The spec's JSON.
    fn json(&self) -> &RawValue;
}

impl SpecJson for Box<RawValue> {
    fn json(&self) -> &RawValue {
        self
    }
}

impl SpecJson for Arc<RawValue> {
    fn json(&self) -> &RawValue {
        self
    }
}

/// A list of pre-serialized specs, written as they are.
pub(crate) struct Specs<'a, T>(pub &'a [T]);

impl<T: SpecJson> Serialize for Specs<'_, T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(SpecJson::json))
    }
}

/// The checkpoint document as written: pretty, with one spec per line.
#[derive(Serialize)]
pub(crate) struct Document<'a, Q: Serialize, R: Serialize> {
    pub schema_version: u32,
    pub revision: u64,
    pub status: EngineStatus,
    pub updated_at: &'a str,
    pub queued: Q,
    pub running: R,
    #[serde(flatten)]
    pub extra: &'a Map<String, Value>,
}

impl<Q: Serialize, R: Serialize> Document<'_, Q, R> {
    /// Writes the document followed by a newline.
    pub(crate) fn write(&self, out: &mut impl std::io::Write) -> std::io::Result<()> {
        serde_json::to_writer_pretty(&mut *out, self)?;
        out.write_all(b"\n")
    }
}

/// Writes a whole checkpoint atomically (used by offline edits and repair).
pub fn save(path: &Path, cp: &Checkpoint) -> std::io::Result<()> {
    let raw = |v: &[WorkSpec]| -> std::io::Result<Vec<Box<RawValue>>> {
        v.iter()
            .map(|s| serde_json::value::to_raw_value(s).map_err(std::io::Error::other))
            .collect()
    };
    let queued = raw(&cp.queued)?;
    let running = raw(&cp.running)?;
    let doc = Document {
        schema_version: SCHEMA_VERSION,
        revision: cp.revision,
        status: cp.status,
        updated_at: &cp.updated_at,
        queued: Specs(&queued),
        running: Specs(&running),
        extra: &cp.extra,
    };
    crate::atomic::write_atomic_with(path, |w| doc.write(w))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_then_load_round_trips_an_awkward_updated_at() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("checkpoint.json");
        let cp = Checkpoint {
            schema_version: SCHEMA_VERSION,
            revision: 7,
            status: EngineStatus::Interrupted,
            updated_at: "2026 \"quoted\" \\ time".into(),
            queued: vec![WorkSpec::new("a", 1.0, "k", Map::new()).unwrap()],
            running: vec![],
            extra: [("note".to_string(), Value::from("kept"))]
                .into_iter()
                .collect(),
            warnings: vec![],
        };
        save(&path, &cp).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("\n    {\"id\":\"a\",\"priority\":1.0,\"kind\":\"k\",\"payload\":{}}\n"),
            "{text}"
        );
        assert_eq!(load(&path).unwrap().unwrap(), cp);
    }

    #[test]
    fn a_repeated_key_anywhere_is_an_error_with_its_position() {
        let p = Path::new("cp.json");
        let text = "{\"schema_version\": 1, \"status\": \"stopped\",\n\"queued\": [{\"id\": \"a\"}],\n\"queued\": [], \"running\": []}";
        let e = parse(text.as_bytes(), p).unwrap_err();
        assert_eq!(e.line, 3, "{e}");
        assert!(e.message.contains("duplicate key `queued`"), "{e}");
        let text = "{\"schema_version\": 1, \"status\": \"stopped\", \"queued\": [{\"id\": \"a\", \"payload\": {\"x\": 1,\n \"x\": 2}}]}";
        let e = parse(text.as_bytes(), p).unwrap_err();
        assert_eq!((e.line, e.field.as_str()), (2, "queued[0].payload"), "{e}");
        assert!(e.message.contains("duplicate key `x`"), "{e}");
        let text = "{\"schema_version\": 1, \"status\": \"stopped\", \"note\": 1, \"note\": 2}";
        assert!(
            parse(text.as_bytes(), p)
                .unwrap_err()
                .message
                .contains("duplicate key `note`")
        );
    }

    #[test]
    fn ids_of_only_dots_are_refused() {
        for id in [".", ".."] {
            let text = format!(
                "{{\"schema_version\": 1, \"status\": \"stopped\", \"queued\": [{{\"id\": \"{id}\"}}]}}"
            );
            let e = parse(text.as_bytes(), Path::new("cp.json")).unwrap_err();
            assert_eq!(e.field, "queued[0].id", "{e}");
        }
    }

    #[test]
    fn a_fifo_or_a_device_is_refused_without_hanging() {
        let e = load(Path::new("/dev/zero")).unwrap_err();
        assert!(e.message.contains("device"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("checkpoint.json");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = load(&fifo).unwrap_err();
        assert!(e.message.contains("FIFO"), "{e}");
    }

    #[test]
    fn a_typo_in_a_key_gets_a_hint() {
        let text = "{\"schema_version\": 1, \"status\": \"stopped\", \"queud\": [], \"queued\": [{\"id\": \"a\", \"priorty\": 3}]}";
        let cp = parse(text.as_bytes(), Path::new("cp.json")).unwrap();
        assert!(cp.extra.contains_key("queud"));
        let all = cp.warnings.join("\n");
        assert!(all.contains("did you mean `queued`"), "{all}");
        assert!(
            all.contains("queued[0].priorty: unknown key `priorty` (did you mean `priority`?)"),
            "{all}"
        );
    }
}
