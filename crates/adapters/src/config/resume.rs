//! Resuming with a configuration: which fields may change (`limits.*`, `executor.slurm.*`) and
//! a field-by-field diff of those that may not.

use std::fmt;

use serde_json::Value;

use super::values::{compact_json, values_equal};
use super::{Config, ConfigError};

/// Field paths that may differ between the stored and the given configuration on resume.
pub const RESUMABLE_PATHS: [&str; 2] = ["limits", "executor.slurm"];

/// One field that differs between the stored configuration and the given one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldDiff {
    /// Field path, e.g. `job.command`, `search_space.chunk.max`, `seeds[0].params.workers`.
    pub path: String,
    /// The stored value as compact JSON (`(absent)` if the stored file lacks it).
    pub stored: String,
    /// The given value as compact JSON (`(absent)` if the given configuration lacks it).
    pub given: String,
}

impl fmt::Display for FieldDiff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: stored {}, given {}",
            self.path, self.stored, self.given
        )
    }
}

/// The message of [`ConfigError::ForbiddenChange`].
pub(crate) fn forbidden_change_message(diff: &[FieldDiff]) -> String {
    let mut msg = String::from(
        "the configuration differs from the one stored in the workdir in fields that cannot \
         change on resume:",
    );
    for d in diff {
        msg.push_str("\n  ");
        msg.push_str(&d.to_string());
    }
    msg.push_str(
        "\nOn resume only limits.* and executor.slurm.* may change; to run a different \
         experiment, use a new workdir.",
    );
    msg
}

/// The stored configuration with `limits` and `executor.slurm` taken from `given`; any other
/// difference is refused with the list of differing fields.
pub(crate) fn merge_for_resume(stored: &Config, given: &Config) -> Result<Config, ConfigError> {
    let a = serde_json::to_value(stored).unwrap_or(Value::Null);
    let b = serde_json::to_value(given).unwrap_or(Value::Null);
    let mut diff = Vec::new();
    diff_values("", Some(&a), Some(&b), &mut diff);
    if !diff.is_empty() {
        return Err(ConfigError::ForbiddenChange { diff });
    }
    let mut merged = stored.clone();
    merged.limits = given.limits.clone();
    merged.executor.slurm = given.executor.slurm.clone();
    merged.validate()?;
    Ok(merged)
}

fn diff_values(path: &str, a: Option<&Value>, b: Option<&Value>, out: &mut Vec<FieldDiff>) {
    if RESUMABLE_PATHS.contains(&path) {
        return;
    }
    match (a, b) {
        (Some(Value::Object(x)), Some(Value::Object(y))) => {
            let keys = x.keys().chain(y.keys().filter(|k| !x.contains_key(*k)));
            for key in keys {
                let sub = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                diff_values(&sub, x.get(key), y.get(key), out);
            }
        }
        (Some(Value::Array(x)), Some(Value::Array(y))) => {
            for i in 0..x.len().max(y.len()) {
                diff_values(&format!("{path}[{i}]"), x.get(i), y.get(i), out);
            }
        }
        (Some(x), Some(y)) if values_equal(x, y) => {}
        (None, None) => {}
        _ => out.push(FieldDiff {
            path: if path.is_empty() {
                "(top level)".to_string()
            } else {
                path.to_string()
            },
            stored: a.map_or_else(|| "(absent)".to_string(), compact_json),
            given: b.map_or_else(|| "(absent)".to_string(), compact_json),
        }),
    }
}
