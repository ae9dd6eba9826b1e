//! Reading a configuration from JSON or TOML text or a file. Syntax errors give the line and
//! column; type errors and unknown keys give the field path as well; then the configuration
//! is validated as a whole.

use std::path::Path;

use serde_json::Value;

use autoresearch_engine::serde_error::{self, Syntax, line_column};

use super::error::{ConfigError, explain_unknown, show_path};
use super::types::Config;
use super::values::found;

impl Config {
    /// Parses and validates a JSON configuration; `origin` names the file in errors.
    pub fn from_json_str(text: &str, origin: &Path) -> Result<Config, ConfigError> {
        let value: Value = serde_json::from_str(text).map_err(|e| ConfigError::Syntax {
            origin: origin.to_path_buf(),
            format: "JSON",
            line: e.line().max(1),
            column: e.column().max(1),
            message: serde_error::message(&e),
        })?;
        check_root(&value, origin, "a JSON object")?;
        let mut de = serde_json::Deserializer::from_str(text);
        let config: Config = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = show_path(e.path());
            let inner = e.into_inner();
            let located = inner.line() > 0;
            invalid(
                origin,
                path,
                serde_error::strip_position(&inner.to_string()),
                Syntax::Json,
                located.then_some(inner.line()),
                located.then_some(inner.column().max(1)),
            )
        })?;
        finish(config, origin)
    }

    /// Parses and validates a TOML configuration (same fields as JSON); `origin` names the
    /// file in errors.
    pub fn from_toml_str(text: &str, origin: &Path) -> Result<Config, ConfigError> {
        let table: toml::Table = toml::from_str(text).map_err(|e| {
            let (line, column) = e
                .span()
                .map_or((1, 1), |span| line_column(text, span.start));
            ConfigError::Syntax {
                origin: origin.to_path_buf(),
                format: "TOML",
                line,
                column,
                message: serde_error::humanize(e.message(), Syntax::Toml),
            }
        })?;
        let value = serde_json::to_value(&table).map_err(|e| ConfigError::Invalid {
            origin: origin.to_path_buf(),
            path: "(top level)".to_string(),
            message: format!("cannot represent the TOML document as JSON: {e}"),
            line: None,
            column: None,
        })?;
        check_root(&value, origin, "a TOML table")?;
        let config: Config = serde_path_to_error::deserialize(toml::Deserializer::new(text))
            .map_err(|e| {
                let path = show_path(e.path());
                let inner = e.into_inner();
                let location = inner.span().map(|span| line_column(text, span.start));
                invalid(
                    origin,
                    path,
                    inner.message(),
                    Syntax::Toml,
                    location.map(|l| l.0),
                    location.map(|l| l.1),
                )
            })?;
        finish(config, origin)
    }

    /// Reads `path` (`.json` or `.toml`, by extension) and validates it.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        if ext != "json" && ext != "toml" {
            return Err(ConfigError::UnsupportedFormat {
                path: path.to_path_buf(),
                found: ext,
            });
        }
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        if ext == "json" {
            Self::from_json_str(&text, path)
        } else {
            Self::from_toml_str(&text, path)
        }
    }
}

/// An [`ConfigError::Invalid`] from a deserializer's message: an unknown key is added to the
/// field path and explained (with a "did you mean"); any other message is put in the file's
/// terms.
fn invalid(
    origin: &Path,
    mut path: String,
    message: &str,
    syntax: Syntax,
    line: Option<usize>,
    column: Option<usize>,
) -> ConfigError {
    let (key, message) =
        explain_unknown(message).unwrap_or_else(|| (None, serde_error::humanize(message, syntax)));
    if let Some(key) = key {
        let last = path.rsplit('.').next().unwrap_or_default();
        if last != key {
            path = if path == "(top level)" {
                key
            } else {
                format!("{path}.{key}")
            };
        }
    }
    ConfigError::Invalid {
        origin: origin.to_path_buf(),
        path,
        message,
        line,
        column,
    }
}

fn check_root(value: &Value, origin: &Path, expected: &str) -> Result<(), ConfigError> {
    if value.is_object() {
        return Ok(());
    }
    Err(ConfigError::Invalid {
        origin: origin.to_path_buf(),
        path: "(top level)".to_string(),
        message: format!("expected {expected}, found {}", found(value)),
        line: None,
        column: None,
    })
}

fn finish(mut config: Config, origin: &Path) -> Result<Config, ConfigError> {
    config.origin = origin.to_path_buf();
    config.validate()?;
    Ok(config)
}
