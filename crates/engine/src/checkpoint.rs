//! `engine/checkpoint.json`: the source of truth for the queue, and hand-editable.
//!
//! Loading validates every field and reports the first problem as one error naming the file,
//! line, column and field path (`queued[3].priority: expected a finite number, found string
//! "high"`). A failed load never modifies the file. Unknown top-level keys are kept and written
//! back; unknown keys inside a spec are reported as warnings.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::spec::{WorkSpec, is_valid_id};
use crate::state::EngineStatus;

/// The checkpoint format version this engine reads and writes.
pub const SCHEMA_VERSION: u32 = 1;

/// A loaded and validated checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    /// Always [`SCHEMA_VERSION`].
    pub schema_version: u32,
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
    /// Non-fatal findings (unknown keys inside specs).
    pub warnings: Vec<String>,
}

/// A checkpoint that failed validation; its Display is the whole user-facing message.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}:{line}:{column}: {field}{sep}{message}; fix the file (or run `supervisor repair`) and start again — it was left unchanged", path.display(), sep = if field.is_empty() { "" } else { ": " })]
pub struct CheckpointError {
    /// The checkpoint file.
    pub path: PathBuf,
    /// 1-based line of the problem.
    pub line: usize,
    /// 1-based column of the problem.
    pub column: usize,
    /// Field path such as `queued[3].priority` (empty for syntax errors).
    pub field: String,
    /// What was expected and what was found.
    pub message: String,
}

/// Reads and validates the checkpoint at `path`; `Ok(None)` when there is none.
pub fn load(path: &Path) -> Result<Option<Checkpoint>, CheckpointError> {
    match std::fs::read(path) {
        Ok(bytes) => parse(&bytes, path).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
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
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(err(
            1,
            1,
            "",
            "the file is empty; expected a JSON object with schema_version, status, queued and running".into(),
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let raw: RawCheckpoint = match serde_path_to_error::deserialize(&mut de) {
        Ok(raw) => raw,
        Err(e) => {
            let field = e.path().to_string();
            let inner = e.into_inner();
            // serde_path_to_error writes `?` for a position it could not name (syntax errors).
            let field = field
                .trim_end_matches(".?")
                .trim_end_matches('?')
                .to_string();
            let field = if field == "." { String::new() } else { field };
            return Err(err(inner.line(), inner.column(), &field, humanize(&inner)));
        }
    };
    if let Err(e) = de.end() {
        return Err(err(e.line(), e.column(), "", humanize(&e)));
    }
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
        for (i, raw_spec) in specs.iter().enumerate() {
            let id = raw_spec.spec.id.as_str();
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
    let mut warnings = Vec::new();
    for (list, specs) in [("queued", &raw.queued), ("running", &raw.running)] {
        for (i, spec) in specs.iter().enumerate() {
            for key in &spec.unknown {
                warnings.push(format!(
                    "{}: {list}[{i}].{key}: unknown key ignored (a spec has id, priority, kind, payload)",
                    path.display()
                ));
            }
        }
    }
    let strip = |v: Vec<RawSpec>| v.into_iter().map(|r| r.spec).collect();
    Ok(Checkpoint {
        schema_version: version,
        status,
        updated_at: raw.updated_at.unwrap_or_default(),
        queued: strip(raw.queued),
        running: strip(raw.running),
        extra: raw.extra,
        warnings,
    })
}

/// Line and column (1-based) of the `nth` occurrence of `needle`, or (1, 1).
fn locate(text: &str, needle: &str, nth: usize) -> (usize, usize) {
    let Some((offset, _)) = text.match_indices(needle).nth(nth) else {
        return (1, 1);
    };
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = offset - before.rfind('\n').map(|p| p + 1).unwrap_or(0) + 1;
    (line, column)
}

/// Turns serde's "invalid type: X, expected Y at line L column C" into "expected Y, found X".
fn humanize(e: &serde_json::Error) -> String {
    let full = e.to_string();
    let msg = match full.rfind(" at line ") {
        Some(p) => &full[..p],
        None => full.as_str(),
    };
    let msg = msg.replace("expected a map", "expected a JSON object");
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = msg.strip_prefix(prefix)
            && let Some((found, expected)) = rest.split_once(", expected ")
        {
            return format!("expected {expected}, found {found}");
        }
    }
    if msg.starts_with("EOF while parsing") {
        return format!("{msg} (the file is truncated)");
    }
    msg
}

struct RawCheckpoint {
    schema_version: Option<u32>,
    status: Option<EngineStatus>,
    updated_at: Option<String>,
    queued: Vec<RawSpec>,
    running: Vec<RawSpec>,
    extra: Map<String, Value>,
}

impl<'de> de::Deserialize<'de> for RawCheckpoint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawCheckpoint;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object with schema_version, status, queued and running")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawCheckpoint, A::Error> {
                let mut out = RawCheckpoint {
                    schema_version: None,
                    status: None,
                    updated_at: None,
                    queued: Vec::new(),
                    running: Vec::new(),
                    extra: Map::new(),
                };
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "schema_version" => out.schema_version = Some(map.next_value()?),
                        "status" => out.status = Some(map.next_value::<StatusField>()?.0),
                        "updated_at" => out.updated_at = map.next_value()?,
                        "queued" => out.queued = map.next_value::<SpecList>()?.0,
                        "running" => out.running = map.next_value::<SpecList>()?.0,
                        _ => {
                            let v: Value = map.next_value()?;
                            out.extra.insert(key, v);
                        }
                    }
                }
                Ok(out)
            }
        }
        d.deserialize_map(V)
    }
}

struct StatusField(EngineStatus);
impl<'de> de::Deserialize<'de> for StatusField {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = StatusField;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("one of \"running\", \"interrupted\", \"stopped\"")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<StatusField, E> {
                match s {
                    "running" => Ok(StatusField(EngineStatus::Running)),
                    "interrupted" => Ok(StatusField(EngineStatus::Interrupted)),
                    "stopped" => Ok(StatusField(EngineStatus::Stopped)),
                    other => Err(E::invalid_value(de::Unexpected::Str(other), &self)),
                }
            }
        }
        d.deserialize_str(V)
    }
}

struct SpecList(Vec<RawSpec>);
impl<'de> de::Deserialize<'de> for SpecList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = SpecList;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON array of specs")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<SpecList, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 20));
                while let Some(spec) = seq.next_element::<RawSpec>()? {
                    out.push(spec);
                }
                Ok(SpecList(out))
            }
        }
        d.deserialize_seq(V)
    }
}

struct RawSpec {
    spec: WorkSpec,
    unknown: Vec<String>,
}

impl<'de> de::Deserialize<'de> for RawSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawSpec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a spec object {\"id\", \"priority\", \"kind\", \"payload\"}")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawSpec, A::Error> {
                let mut id = None;
                let mut priority = None;
                let mut kind = None;
                let mut payload = None;
                let mut unknown = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "id" => id = Some(map.next_value::<IdField>()?.0),
                        "priority" => priority = Some(map.next_value::<PriorityField>()?.0),
                        "kind" => kind = Some(map.next_value::<String>()?),
                        "payload" => payload = Some(map.next_value::<Map<String, Value>>()?),
                        _ => {
                            map.next_value::<de::IgnoredAny>()?;
                            unknown.push(key);
                        }
                    }
                }
                let id = id.ok_or_else(|| {
                    de::Error::custom(
                        "missing field `id`; expected a spec id such as \"007_workers_8\"",
                    )
                })?;
                Ok(RawSpec {
                    spec: WorkSpec {
                        id,
                        priority: priority.unwrap_or(0.0),
                        kind: kind.unwrap_or_default(),
                        payload: payload.unwrap_or_default(),
                    },
                    unknown,
                })
            }
        }
        d.deserialize_map(V)
    }
}

struct IdField(String);
impl<'de> de::Deserialize<'de> for IdField {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = IdField;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an id of 1 to 128 characters from A-Z a-z 0-9 . _ -")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<IdField, E> {
                if is_valid_id(s) {
                    Ok(IdField(s.to_string()))
                } else {
                    Err(E::invalid_value(de::Unexpected::Str(s), &self))
                }
            }
        }
        d.deserialize_str(V)
    }
}

struct PriorityField(f64);
impl<'de> de::Deserialize<'de> for PriorityField {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = PriorityField;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a finite number")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<PriorityField, E> {
                if v.is_finite() {
                    Ok(PriorityField(v))
                } else {
                    Err(E::invalid_value(de::Unexpected::Float(v), &self))
                }
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<PriorityField, E> {
                Ok(PriorityField(v as f64))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<PriorityField, E> {
                Ok(PriorityField(v as f64))
            }
        }
        d.deserialize_any(V)
    }
}

/// Serializes a checkpoint document from pre-serialized spec JSON (one spec per line).
pub(crate) fn render<'a>(
    out: &mut impl std::io::Write,
    status: EngineStatus,
    updated_at: &str,
    queued: impl Iterator<Item = &'a str>,
    running: impl Iterator<Item = &'a str>,
    extra: &Map<String, Value>,
) -> std::io::Result<()> {
    write!(
        out,
        "{{\n  \"schema_version\": {SCHEMA_VERSION},\n  \"status\": \"{}\",\n  \"updated_at\": \"{updated_at}\",\n",
        status.as_str()
    )?;
    write_list(out, "queued", queued)?;
    out.write_all(b",\n")?;
    write_list(out, "running", running)?;
    for (k, v) in extra {
        write!(
            out,
            ",\n  {}: {}",
            serde_json::to_string(k)?,
            serde_json::to_string(v)?
        )?;
    }
    out.write_all(b"\n}\n")
}

fn write_list<'a>(
    out: &mut impl std::io::Write,
    name: &str,
    items: impl Iterator<Item = &'a str>,
) -> std::io::Result<()> {
    write!(out, "  \"{name}\": [")?;
    let mut empty = true;
    for (i, item) in items.enumerate() {
        out.write_all(if i == 0 { b"\n    " } else { b",\n    " })?;
        out.write_all(item.as_bytes())?;
        empty = false;
    }
    if empty {
        out.write_all(b"]")
    } else {
        out.write_all(b"\n  ]")
    }
}

/// Writes a whole checkpoint atomically (used by offline edits and repair).
pub fn save(path: &Path, cp: &Checkpoint) -> std::io::Result<()> {
    let ser = |v: &[WorkSpec]| -> std::io::Result<Vec<String>> {
        v.iter()
            .map(|s| serde_json::to_string(s).map_err(std::io::Error::other))
            .collect()
    };
    let queued = ser(&cp.queued)?;
    let running = ser(&cp.running)?;
    crate::atomic::write_atomic_with(path, |w| {
        render(
            w,
            cp.status,
            &cp.updated_at,
            queued.iter().map(String::as_str),
            running.iter().map(String::as_str),
            &cp.extra,
        )
    })
}

/// Applies queue commands to the checkpoint of a stopped engine (atomic rewrite).
///
/// Fails with a message when the engine is running (use the control inbox then) or a command
/// does not apply; the file is unchanged on failure.
pub fn edit_offline(
    workdir: &Path,
    commands: &[crate::control::ControlCommand],
) -> Result<Vec<String>, crate::EngineError> {
    use crate::control::ControlCommand;
    let lock = crate::lock::acquire(workdir)?;
    let path = crate::paths::EnginePaths::new(workdir).checkpoint();
    let mut cp = load(&path)?.ok_or_else(|| crate::EngineError::Io {
        path: path.clone(),
        source: std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "no checkpoint yet: start the run first",
        ),
    })?;
    let mut messages = Vec::new();
    for cmd in commands {
        let msg = match cmd {
            ControlCommand::Bump { id, priority } => {
                if !priority.is_finite() {
                    return Err(crate::EngineError::Config(format!(
                        "priority for {id} must be a finite number"
                    )));
                }
                let spec = cp
                    .queued
                    .iter_mut()
                    .find(|s| &s.id == id)
                    .ok_or_else(|| not_queued(id))?;
                spec.priority = *priority;
                format!("{id}: priority set to {priority}")
            }
            ControlCommand::Drop { id } => {
                let pos = cp
                    .queued
                    .iter()
                    .position(|s| &s.id == id)
                    .ok_or_else(|| not_queued(id))?;
                cp.queued.remove(pos);
                format!("{id}: dropped from the queue")
            }
            ControlCommand::Add { spec } => {
                spec.validate()
                    .map_err(|e| crate::EngineError::Config(e.to_string()))?;
                if cp
                    .queued
                    .iter()
                    .chain(cp.running.iter())
                    .any(|s| s.id == spec.id)
                {
                    return Err(crate::EngineError::Config(format!(
                        "{}: id already queued or running",
                        spec.id
                    )));
                }
                cp.queued.push(spec.clone());
                format!("{}: added", spec.id)
            }
        };
        messages.push(msg);
    }
    cp.queued.sort_by(|a, b| a.priority.total_cmp(&b.priority));
    cp.updated_at = crate::util::now_rfc3339();
    save(&path, &cp).map_err(|e| crate::EngineError::io(&path, e))?;
    drop(lock);
    Ok(messages)
}

fn not_queued(id: &str) -> crate::EngineError {
    crate::EngineError::Config(format!(
        "{id} is not in the queue (see `supervisor queue <workdir> list`)"
    ))
}
