//! Errors of loading, validating, merging and rendering a configuration, and the rewriting of
//! the parsers' messages into the file's terms: field paths, `expected … found …`, line and
//! column, and a "did you mean" for a misspelt key or value.

use std::path::{Path, PathBuf};

use autoresearch_engine::serde_error;

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

pub(crate) fn show_path(path: &serde_path_to_error::Path) -> String {
    let s = path.to_string();
    if s == "." {
        "(top level)".to_string()
    } else {
        s
    }
}

/// Explains serde's "unknown field" and "unknown variant" messages: names the key or value,
/// adds a "did you mean" for a near miss and lists what is expected, in the file's terms.
/// Returns the key of an unknown field (to complete the field path) with the new message, or
/// None for any other message.
pub(crate) fn explain_unknown(message: &str) -> Option<(Option<String>, String)> {
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
        return Some((key, format!("unknown {what} `{word}`{hint}; {list}")));
    }
    None
}

/// ` (did you mean `x`?)` when `word` is close to one of `known`, else empty.
pub(crate) fn did_you_mean(word: &str, known: &[&str]) -> String {
    serde_error::did_you_mean(word, known)
        .map(|k| format!(" (did you mean `{k}`?)"))
        .unwrap_or_default()
}
