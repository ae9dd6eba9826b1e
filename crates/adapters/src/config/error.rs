//! Errors of loading, validating, merging and rendering a configuration, and the rewriting of
//! the parsers' messages into the file's terms: field paths, `expected … found …`, line and
//! column, and a "did you mean" for a misspelt key or value.

use std::path::{Path, PathBuf};

use super::resume::{self, FieldDiff};

/// Errors of loading, validating, merging and rendering a configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read the configuration file {}: {source}", show_origin(path))]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file name ends neither in `.json` nor in `.toml`.
    #[error(
        "{}: unsupported configuration file type {found:?}: expected a .json or .toml file",
        show_origin(path)
    )]
    UnsupportedFormat {
        /// The file.
        path: PathBuf,
        /// Its extension (empty if none).
        found: String,
    },
    /// The text is not valid JSON/TOML.
    #[error(
        "{}: {format} syntax error at line {line}, column {column}: {message}",
        show_origin(origin)
    )]
    Syntax {
        /// The file.
        origin: PathBuf,
        /// `JSON` or `TOML`.
        format: &'static str,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What the parser expected and found.
        message: String,
    },
    /// A field has the wrong type or an invalid value, or a key is unknown.
    #[error(
        "{}: {path}: {message}{}",
        show_origin(origin),
        show_location(*line, *column)
    )]
    Invalid {
        /// The file.
        origin: PathBuf,
        /// Field path, e.g. `search_space.chunk.min` or `limits.max_concurrency`.
        path: String,
        /// What was expected and what was found.
        message: String,
        /// 1-based line, when known.
        line: Option<usize>,
        /// 1-based column, when known.
        column: Option<usize>,
    },
    /// On resume, fields other than `limits.*` and `executor.slurm.*` differ.
    #[error("{}", resume::forbidden_change_message(diff))]
    ForbiddenChange {
        /// The differing fields.
        diff: Vec<FieldDiff>,
    },
    /// A parameter set from outside the file (the checkpoint, a hand-added spec) does not fit
    /// the search space.
    #[error("parameter `{name}`: {message}")]
    Param {
        /// The parameter's name as given.
        name: String,
        /// What was expected and what was found.
        message: String,
    },
    /// `job.command` could not be rendered for a parameter set.
    #[error("job.command: {message}")]
    Render {
        /// What is missing.
        message: String,
    },
}

impl ConfigError {
    /// The field path of an [`Invalid`](ConfigError::Invalid) error.
    pub fn field_path(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { path, .. } => Some(path),
            _ => None,
        }
    }
}

pub(crate) fn show_origin(path: &Path) -> String {
    if path.as_os_str().is_empty() {
        "<configuration>".to_string()
    } else {
        path.display().to_string()
    }
}

fn show_location(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(" (at line {l}, column {c})"),
        (Some(l), None) => format!(" (at line {l})"),
        _ => String::new(),
    }
}

/// Removes serde_json's " at line L column C" suffix from a message.
pub(crate) fn strip_json_location(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) if message[i..].contains(" column ") => humanize(&message[..i]),
        _ => humanize(message),
    }
}

/// Rewrites serde's Rust-flavoured words in a parser message (`expected u64`, `sequence`) in
/// the file's terms, on one line.
pub(crate) fn humanize(message: &str) -> String {
    const WORDS: [(&str, &str); 10] = [
        ("expected usize", "expected a non-negative integer"),
        ("expected u64", "expected a non-negative integer"),
        ("expected u32", "expected a non-negative integer"),
        ("expected i64", "expected an integer"),
        ("expected f64", "expected a number"),
        ("expected a map", "expected an object"),
        ("expected a sequence", "expected an array"),
        ("expected a boolean", "expected true or false"),
        ("invalid type: sequence", "invalid type: array"),
        ("invalid type: map", "invalid type: object"),
    ];
    let mut out = message.trim().to_string();
    for (from, to) in WORDS {
        out = out.replace(from, to);
    }
    out.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// 1-based line and column of a byte offset.
pub(crate) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

pub(crate) fn show_path(path: &serde_path_to_error::Path) -> String {
    let s = path.to_string();
    if s == "." {
        "(top level)".to_string()
    } else {
        s
    }
}

/// Rewrites serde's "unknown field" and "unknown variant" messages: names the key or value,
/// adds a "did you mean" for a near miss and lists what is expected, in the file's terms.
/// Returns the key of an unknown field (to complete the field path) with the new message.
pub(crate) fn explain_unknown(message: &str) -> (Option<String>, String) {
    for (prefix, what) in [("unknown field `", "key"), ("unknown variant `", "value")] {
        let Some(rest) = message.strip_prefix(prefix) else {
            continue;
        };
        let Some((word, tail)) = rest.split_once('`') else {
            continue;
        };
        let expected: Vec<&str> = tail
            .split('`')
            .skip(1)
            .step_by(2)
            .filter(|s| !s.is_empty())
            .collect();
        let hint = did_you_mean(word, &expected);
        let list = if expected.is_empty() {
            "this object takes no keys".to_string()
        } else {
            format!("expected one of: {}", expected.join(", "))
        };
        let key = (what == "key").then(|| word.to_string());
        return (key, format!("unknown {what} `{word}`{hint}; {list}"));
    }
    (None, message.to_string())
}

/// ` (did you mean `x`?)` when `word` is close to one of `known`, else empty.
pub(crate) fn did_you_mean(word: &str, known: &[&str]) -> String {
    let close = |k: &str| {
        let d = strsim::damerau_levenshtein(word, k);
        // An abbreviation (`lin` for `linear`) counts as close too.
        let abbreviation = word.len() >= 2 && k.starts_with(word);
        (d <= 2.max(k.len() / 3) && d < k.len().max(word.len())) || abbreviation
    };
    known
        .iter()
        .filter(|k| close(k))
        .map(|k| {
            (
                (!k.starts_with(word), strsim::damerau_levenshtein(word, k)),
                *k,
            )
        })
        .min_by_key(|(rank, _)| *rank)
        .map(|(_, k)| format!(" (did you mean `{k}`?)"))
        .unwrap_or_default()
}
