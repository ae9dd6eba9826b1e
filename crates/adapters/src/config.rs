//! Run configuration (`<workdir>/config.json`, design §3): the objective, the job to run, the
//! search space, baseline and seeds, planner, executor and limits.
//!
//! [`Config::from_json_str`], [`Config::from_toml_str`] and [`Config::load`] parse and validate;
//! every error names the file, the field path, what was expected and what was found (and the
//! line and column for syntax and type errors). Unknown keys are errors that list the known
//! keys. [`Config::merge_for_resume`] applies the resume rules; [`render_command`] and
//! [`param_env`] turn a parameter set into the job's command line and environment.

pub mod agent;
mod params;
mod render;
mod resume;
pub mod workspace;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

pub use params::{
    NumType, Param, Range, Scale, SearchSpace, canonical_params_key, format_number, value_to_raw,
    values_equal,
};
pub use render::{is_param_name, param_env, placeholders, render_command, shell_quote};
pub use resume::{FieldDiff, RESUMABLE_PATHS};

use params::{compact_json, ser_num, ser_opt_num};

/// Largest allowed `limits.max_concurrency`.
pub const MAX_CONCURRENCY: usize = 1024;

/// The whole run configuration. Compare with `==` (the [`origin`](Config::origin) is ignored).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Config {
    /// What is measured and which way is better.
    pub objective: Objective,
    /// The command each experiment runs.
    pub job: JobConfig,
    /// Parameters and their domains, in declaration order.
    #[serde(default)]
    pub search_space: SearchSpace,
    /// A value for every search-space parameter: the first experiment.
    #[serde(default)]
    pub baseline: Map<String, Value>,
    /// Extra starting experiments (parameters missing from a seed come from the baseline).
    #[serde(default)]
    pub seeds: Vec<Seed>,
    /// Who proposes follow-ups.
    #[serde(default)]
    pub planner: PlannerConfig,
    /// Where jobs run.
    #[serde(default)]
    pub executor: ExecutorConfig,
    /// Budgets (totals across resumes).
    #[serde(default)]
    pub limits: Limits,
    /// The file this configuration was read from (used in error messages; not serialized and
    /// ignored by `==`). Empty for a configuration built in code.
    #[serde(skip)]
    pub origin: PathBuf,
}

impl PartialEq for Config {
    fn eq(&self, other: &Self) -> bool {
        let Config {
            objective,
            job,
            search_space,
            baseline,
            seeds,
            planner,
            executor,
            limits,
            origin: _,
        } = self;
        *objective == other.objective
            && *job == other.job
            && *search_space == other.search_space
            && *baseline == other.baseline
            && *seeds == other.seeds
            && *planner == other.planner
            && *executor == other.executor
            && *limits == other.limits
    }
}

/// `objective`: the primary metric and what "better" means.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Objective {
    /// Name of the primary metric (as printed in `METRIC <name>=<number>`).
    pub metric: String,
    /// `maximize` or `minimize`.
    pub direction: Direction,
    /// Smallest relative improvement over the best that counts (default 0.01, ≥ 0).
    #[serde(default = "default_min_improvement", serialize_with = "ser_num")]
    pub min_improvement: f64,
}

impl Objective {
    /// Whether `value` improves on `best` by at least `min_improvement` (relative to |best|).
    /// Any finite value improves on no best at all.
    pub fn is_improvement(&self, value: f64, best: Option<f64>) -> bool {
        if !value.is_finite() {
            return false;
        }
        let Some(best) = best else { return true };
        let margin = self.min_improvement * best.abs();
        match self.direction {
            Direction::Maximize => value > best + margin,
            Direction::Minimize => value < best - margin,
        }
    }
}

/// Which way the primary metric is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Larger is better.
    Maximize,
    /// Smaller is better.
    Minimize,
}

impl Direction {
    /// Whether `a` is strictly better than `b`.
    pub fn is_better(self, a: f64, b: f64) -> bool {
        match self {
            Direction::Maximize => a > b,
            Direction::Minimize => a < b,
        }
    }

    /// Orders values best first (for `sort_by`); NaN sorts last.
    pub fn best_first(self, a: f64, b: f64) -> std::cmp::Ordering {
        match (a.is_nan(), b.is_nan()) {
            (true, true) => std::cmp::Ordering::Equal,
            (true, false) => std::cmp::Ordering::Greater,
            (false, true) => std::cmp::Ordering::Less,
            (false, false) => match self {
                Direction::Maximize => b.total_cmp(&a),
                Direction::Minimize => a.total_cmp(&b),
            },
        }
    }

    /// `maximize` or `minimize`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Maximize => "maximize",
            Direction::Minimize => "minimize",
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `job`: the command each experiment runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobConfig {
    /// Shell command with `{name}` placeholders (`{{`/`}}` for literal braces).
    pub command: String,
    /// Working directory, relative to where the run was started (default `.`).
    #[serde(default = "default_cwd")]
    pub cwd: PathBuf,
    /// Wall-time limit in seconds (default 600; `null` or `"none"` for no limit; a duration
    /// string such as `"10m"` is also accepted).
    #[serde(
        default = "default_timeout",
        deserialize_with = "de_opt_seconds",
        serialize_with = "ser_opt_num"
    )]
    pub timeout_s: Option<f64>,
    /// Extra environment variables.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

impl JobConfig {
    /// `timeout_s` as a duration.
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout_s
            .and_then(|s| Duration::try_from_secs_f64(s).ok())
    }
}

/// One seed experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Seed {
    /// Short name (sanitized into the node id).
    pub name: String,
    /// Parameter values; missing ones come from the baseline.
    #[serde(default)]
    pub params: Map<String, Value>,
    /// Queue priority (lower runs first; default 0).
    #[serde(default, serialize_with = "ser_num")]
    pub priority: f64,
    /// Why it might help.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hypothesis: Option<String>,
}

/// Which planner proposes follow-ups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PlannerKind {
    /// The built-in deterministic search (default).
    #[default]
    Search,
    /// No follow-ups: run the baseline and seeds only.
    None,
    /// A coding-agent CLI (not available in this build: refused by validation).
    Agent,
}

/// `planner`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PlannerConfig {
    /// `search` (default), `none` or `agent`.
    #[serde(default)]
    pub kind: PlannerKind,
    /// Seed of the planner's deterministic choices (default 0).
    #[serde(default)]
    pub seed: u64,
    /// Proposals per planning round; `None` (the default) means `limits.max_concurrency`
    /// (see [`Config::batch`]), so it follows a new concurrency on resume.
    #[serde(default)]
    pub batch: Option<usize>,
}

/// Where jobs run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExecutorKind {
    /// Detached local processes (default).
    #[default]
    Local,
    /// A Slurm cluster through `sbatch`.
    Slurm,
}

/// `executor`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ExecutorConfig {
    /// `local` (default) or `slurm`.
    #[serde(default)]
    pub kind: ExecutorKind,
    /// Kill running jobs when the engine stops (default false: they keep running and are
    /// re-attached on resume).
    #[serde(default)]
    pub cancel_jobs_on_stop: bool,
    /// Slurm settings (used when `kind` is `slurm`).
    #[serde(default)]
    pub slurm: SlurmConfig,
}

/// `executor.slurm`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SlurmConfig {
    /// `--partition`.
    #[serde(default)]
    pub partition: Option<String>,
    /// `--account`.
    #[serde(default)]
    pub account: Option<String>,
    /// Extra `sbatch` arguments, passed as is.
    #[serde(default)]
    pub sbatch_args: Vec<String>,
    /// `--time` in minutes.
    #[serde(default)]
    pub time_limit_min: Option<u64>,
}

/// `limits`: totals across all resumes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    /// Experiments ever started (default 40, ≥ 1).
    #[serde(default = "default_max_experiments")]
    pub max_experiments: u64,
    /// Completed experiments in a row without improvement before stopping (default 8, ≥ 1).
    #[serde(default = "default_patience")]
    pub patience: u32,
    /// Wall time the engine may run, in seconds (`null` = no budget; a duration string such
    /// as `"2h"` is also accepted).
    #[serde(
        default,
        deserialize_with = "de_opt_seconds",
        serialize_with = "ser_opt_num"
    )]
    pub time_budget_s: Option<f64>,
    /// Experiments running at once (default 2, 1..=1024).
    #[serde(default = "default_max_concurrency")]
    pub max_concurrency: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_experiments: default_max_experiments(),
            patience: default_patience(),
            time_budget_s: None,
            max_concurrency: default_max_concurrency(),
        }
    }
}

fn default_min_improvement() -> f64 {
    0.01
}
fn default_cwd() -> PathBuf {
    PathBuf::from(".")
}
fn default_timeout() -> Option<f64> {
    Some(600.0)
}
fn default_max_experiments() -> u64 {
    40
}
fn default_patience() -> u32 {
    8
}
fn default_max_concurrency() -> usize {
    2
}

/// Reads a number of seconds: a number, `null`/`"none"` (no limit) or a duration string.
fn de_opt_seconds<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<f64>, D::Error> {
    struct SecondsVisitor;
    impl<'de> Visitor<'de> for SecondsVisitor {
        type Value = Option<f64>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a number of seconds, a duration such as \"10m\", or null/\"none\"")
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
            d.deserialize_any(SecondsVisitor)
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(v as f64))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(v as f64))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            Ok(Some(v))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            let t = v.trim();
            if t.eq_ignore_ascii_case("none") {
                return Ok(None);
            }
            humantime::parse_duration(t)
                .map(|d| Some(d.as_secs_f64()))
                .map_err(|_| de::Error::invalid_value(de::Unexpected::Str(v), &self))
        }
    }
    deserializer.deserialize_any(SecondsVisitor)
}

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

fn show_origin(path: &Path) -> String {
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
fn strip_json_location(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) if message[i..].contains(" column ") => humanize(&message[..i]),
        _ => humanize(message),
    }
}

/// Rewrites serde's Rust-flavoured words in a parser message (`expected u64`, `sequence`) in
/// the file's terms, on one line.
fn humanize(message: &str) -> String {
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
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

fn show_path(path: &serde_path_to_error::Path) -> String {
    let s = path.to_string();
    if s == "." {
        "(top level)".to_string()
    } else {
        s
    }
}

/// Known keys of each object in the file, by field path (`*` matches any key or index).
const KNOWN_KEYS: &[(&str, &[&str])] = &[
    (
        "",
        &[
            "objective",
            "job",
            "search_space",
            "baseline",
            "seeds",
            "planner",
            "executor",
            "limits",
        ],
    ),
    ("objective", &["metric", "direction", "min_improvement"]),
    ("job", &["command", "cwd", "timeout_s", "env"]),
    ("search_space.*", &["min", "max", "scale", "type"]),
    ("seeds[*]", &["name", "params", "priority", "hypothesis"]),
    ("planner", &["kind", "seed", "batch"]),
    ("executor", &["kind", "cancel_jobs_on_stop", "slurm"]),
    (
        "executor.slurm",
        &["partition", "account", "sbatch_args", "time_limit_min"],
    ),
    (
        "limits",
        &[
            "max_experiments",
            "patience",
            "time_budget_s",
            "max_concurrency",
        ],
    ),
];

/// Checks every object of the parsed file for keys the configuration does not know.
fn check_unknown_keys(root: &Value, origin: &Path) -> Result<(), ConfigError> {
    fn check(origin: &Path, pattern: &str, path: &str, value: &Value) -> Result<(), ConfigError> {
        let Some(obj) = value.as_object() else {
            return Ok(());
        };
        let Some((_, known)) = KNOWN_KEYS.iter().find(|(p, _)| *p == pattern) else {
            return Ok(());
        };
        for key in obj.keys() {
            if !known.contains(&key.as_str()) {
                let full = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                let hint = known
                    .iter()
                    .filter(|k| edit_distance(k, key) <= 2)
                    .min_by_key(|k| edit_distance(k, key))
                    .map(|k| format!(" (did you mean `{k}`?)"))
                    .unwrap_or_default();
                return Err(ConfigError::Invalid {
                    origin: origin.to_path_buf(),
                    path: full,
                    message: format!(
                        "unknown key `{key}`{hint}; expected one of: {}",
                        known.join(", ")
                    ),
                    line: None,
                    column: None,
                });
            }
        }
        Ok(())
    }
    check(origin, "", "", root)?;
    for section in [
        "objective",
        "job",
        "planner",
        "executor",
        "limits",
        "executor.slurm",
    ] {
        let mut v = Some(root);
        for part in section.split('.') {
            v = v.and_then(|v| v.get(part));
        }
        if let Some(v) = v {
            check(origin, section, section, v)?;
        }
    }
    if let Some(space) = root.get("search_space").and_then(Value::as_object) {
        for (name, param) in space {
            check(
                origin,
                "search_space.*",
                &format!("search_space.{name}"),
                param,
            )?;
        }
    }
    if let Some(seeds) = root.get("seeds").and_then(Value::as_array) {
        for (i, seed) in seeds.iter().enumerate() {
            check(origin, "seeds[*]", &format!("seeds[{i}]"), seed)?;
        }
    }
    Ok(())
}

/// Levenshtein distance (for "did you mean" hints).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Short description of a JSON value's kind and content, for "found …" in messages.
fn found(value: &Value) -> String {
    let text = compact_json(value);
    let text = if text.chars().count() > 60 {
        format!("{}…", text.chars().take(60).collect::<String>())
    } else {
        text
    };
    match value {
        Value::Null => "null".to_string(),
        Value::Bool(_) => format!("boolean {text}"),
        Value::Number(_) => text,
        Value::String(_) => format!("string {text}"),
        Value::Array(_) => format!("array {text}"),
        Value::Object(_) => format!("object {text}"),
    }
}

/// Whether `name` can appear in a `METRIC <name>=<number>` line: `[A-Za-z0-9_.:/-]+`.
pub fn is_metric_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.:/-".contains(&b))
}

impl Config {
    /// Parses and validates a JSON configuration; `origin` names the file in errors.
    pub fn from_json_str(text: &str, origin: &Path) -> Result<Config, ConfigError> {
        let value: Value = serde_json::from_str(text).map_err(|e| ConfigError::Syntax {
            origin: origin.to_path_buf(),
            format: "JSON",
            line: e.line().max(1),
            column: e.column().max(1),
            message: strip_json_location(&e.to_string()),
        })?;
        Self::check_root(&value, origin, "a JSON object")?;
        let mut de = serde_json::Deserializer::from_str(text);
        let config: Config = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = show_path(e.path());
            let inner = e.into_inner();
            ConfigError::Invalid {
                origin: origin.to_path_buf(),
                path,
                message: strip_json_location(&inner.to_string()),
                line: (inner.line() > 0).then_some(inner.line()),
                column: (inner.line() > 0).then_some(inner.column().max(1)),
            }
        })?;
        Self::finish(config, origin)
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
                message: humanize(e.message()),
            }
        })?;
        let value = serde_json::to_value(&table).map_err(|e| ConfigError::Invalid {
            origin: origin.to_path_buf(),
            path: "(top level)".to_string(),
            message: format!("cannot represent the TOML document as JSON: {e}"),
            line: None,
            column: None,
        })?;
        Self::check_root(&value, origin, "a TOML table")?;
        let config: Config = serde_path_to_error::deserialize(toml::Deserializer::new(text))
            .map_err(|e| {
                let path = show_path(e.path());
                let inner = e.into_inner();
                let location = inner.span().map(|span| line_column(text, span.start));
                ConfigError::Invalid {
                    origin: origin.to_path_buf(),
                    path,
                    message: humanize(inner.message()),
                    line: location.map(|l| l.0),
                    column: location.map(|l| l.1),
                }
            })?;
        Self::finish(config, origin)
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

    fn check_root(value: &Value, origin: &Path, expected: &str) -> Result<(), ConfigError> {
        if !value.is_object() {
            return Err(ConfigError::Invalid {
                origin: origin.to_path_buf(),
                path: "(top level)".to_string(),
                message: format!("expected {expected}, found {}", found(value)),
                line: None,
                column: None,
            });
        }
        check_unknown_keys(value, origin)
    }

    fn finish(mut config: Config, origin: &Path) -> Result<Config, ConfigError> {
        config.origin = origin.to_path_buf();
        config.validate()?;
        Ok(config)
    }

    /// The configuration as pretty JSON (the `config.json` format; reading it back gives an
    /// equal configuration).
    pub fn to_json_pretty(&self) -> String {
        serde_json::to_string_pretty(self).expect("a Config always serializes to JSON")
    }

    /// Proposals per planning round: `planner.batch`, or `limits.max_concurrency` if unset.
    pub fn batch(&self) -> usize {
        self.planner.batch.unwrap_or(self.limits.max_concurrency)
    }

    /// A full parameter set: the baseline overlaid with `partial`, in search-space order, each
    /// value in canonical form (ints as integers). Keys outside the search space are dropped.
    pub fn complete_params(&self, partial: &Map<String, Value>) -> Map<String, Value> {
        let mut out = Map::new();
        for (name, param) in self.search_space.iter() {
            let value = partial.get(name).or_else(|| self.baseline.get(name));
            if let Some(v) = value {
                out.insert(name.to_string(), param.canonicalize(v).unwrap_or(v.clone()));
            }
        }
        out
    }

    /// The command for a parameter set ([`render_command`] of `job.command`).
    pub fn render(&self, params: &Map<String, Value>) -> Result<String, ConfigError> {
        render_command(&self.job.command, params)
    }

    /// The stored configuration with `limits` and `executor.slurm` from `given`; any other
    /// difference is refused with [`ConfigError::ForbiddenChange`] listing each field.
    pub fn merge_for_resume(stored: &Config, given: &Config) -> Result<Config, ConfigError> {
        resume::merge_for_resume(stored, given)
    }

    fn invalid(&self, path: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            origin: self.origin.clone(),
            path: path.into(),
            message: message.into(),
            line: None,
            column: None,
        }
    }

    /// Checks every rule of the configuration; the first violation is returned.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_objective()?;
        self.validate_job()?;
        self.validate_search_space()?;
        self.validate_params("baseline", &self.baseline, true)?;
        for (i, seed) in self.seeds.iter().enumerate() {
            let path = format!("seeds[{i}]");
            if seed.name.trim().is_empty() {
                return Err(self.invalid(
                    format!("{path}.name"),
                    format!("expected a non-empty name, found {:?}", seed.name),
                ));
            }
            if !seed.priority.is_finite() {
                return Err(self.invalid(
                    format!("{path}.priority"),
                    format!("expected a finite number, found {}", seed.priority),
                ));
            }
            self.validate_params(&format!("{path}.params"), &seed.params, false)?;
        }
        self.validate_planner()?;
        self.validate_executor()?;
        self.validate_limits()
    }

    fn validate_objective(&self) -> Result<(), ConfigError> {
        let o = &self.objective;
        if !is_metric_name(&o.metric) {
            return Err(self.invalid(
                "objective.metric",
                format!(
                    "expected a metric name made of letters, digits and _ . : / -, found {:?}",
                    o.metric
                ),
            ));
        }
        if !(o.min_improvement.is_finite() && o.min_improvement >= 0.0) {
            return Err(self.invalid(
                "objective.min_improvement",
                format!(
                    "expected a finite number ≥ 0, found {}",
                    format_number(o.min_improvement)
                ),
            ));
        }
        Ok(())
    }

    fn validate_job(&self) -> Result<(), ConfigError> {
        let job = &self.job;
        if job.command.trim().is_empty() {
            return Err(self.invalid("job.command", "expected a non-empty command, found \"\""));
        }
        if job.command.contains('\0') {
            return Err(self.invalid("job.command", "expected no NUL character, found one"));
        }
        if job.cwd.as_os_str().is_empty() {
            return Err(self.invalid("job.cwd", "expected a directory, found \"\""));
        }
        if let Some(t) = job.timeout_s
            && !(t.is_finite() && t > 0.0)
        {
            return Err(self.invalid(
                "job.timeout_s",
                format!(
                    "expected a number of seconds > 0 (or null for no limit), found {}",
                    format_number(t)
                ),
            ));
        }
        for (key, value) in &job.env {
            if key.is_empty() || key.contains('=') || key.contains('\0') {
                return Err(self.invalid(
                    format!("job.env.{key}"),
                    format!(
                        "expected an environment variable name without '=' or NUL, found {key:?}"
                    ),
                ));
            }
            if value.contains('\0') {
                return Err(self.invalid(
                    format!("job.env.{key}"),
                    "expected a value without NUL characters, found one",
                ));
            }
        }
        for name in placeholders(&job.command) {
            if self.search_space.get(name).is_none() {
                let known: Vec<&str> = self.search_space.names().collect();
                return Err(self.invalid(
                    "job.command",
                    format!(
                        "placeholder {{{name}}} is not a search-space parameter: expected one of \
                         [{}] (write {{{{ and }}}} for literal braces)",
                        known.join(", ")
                    ),
                ));
            }
        }
        Ok(())
    }

    fn validate_search_space(&self) -> Result<(), ConfigError> {
        for (name, param) in self.search_space.iter() {
            let path = format!("search_space.{name}");
            if !is_param_name(name) {
                return Err(self.invalid(
                    &path,
                    format!(
                        "expected a parameter name matching [A-Za-z_][A-Za-z0-9_]*, found {name:?}"
                    ),
                ));
            }
            match param {
                Param::Choices(choices) => {
                    if choices.is_empty() {
                        return Err(
                            self.invalid(&path, "expected a non-empty array of choices, found []")
                        );
                    }
                    for (i, c) in choices.iter().enumerate() {
                        let ok = match c {
                            Value::Number(n) => n.as_f64().is_some_and(f64::is_finite),
                            Value::String(s) => !s.contains('\0'),
                            Value::Bool(_) => true,
                            _ => false,
                        };
                        if !ok {
                            return Err(self.invalid(
                                format!("{path}[{i}]"),
                                format!("expected a number, string or boolean, found {}", found(c)),
                            ));
                        }
                        if let Some(j) = choices[..i].iter().position(|d| values_equal(c, d)) {
                            return Err(self.invalid(
                                format!("{path}[{i}]"),
                                format!(
                                    "expected distinct choices, found {} again (also at [{j}])",
                                    compact_json(c)
                                ),
                            ));
                        }
                    }
                }
                Param::Range(r) => {
                    for (field, x) in [("min", r.min), ("max", r.max)] {
                        if !x.is_finite() {
                            return Err(self.invalid(
                                format!("{path}.{field}"),
                                format!("expected a finite number, found {x}"),
                            ));
                        }
                        if r.kind == NumType::Int && x.fract() != 0.0 {
                            return Err(self.invalid(
                                format!("{path}.{field}"),
                                format!(
                                    "expected an integer (the range has type \"int\"), found {}",
                                    format_number(x)
                                ),
                            ));
                        }
                    }
                    if r.min >= r.max {
                        return Err(self.invalid(
                            format!("{path}.min"),
                            format!(
                                "expected min < max, found min {} and max {}",
                                format_number(r.min),
                                format_number(r.max)
                            ),
                        ));
                    }
                    if r.scale == Scale::Log && r.min <= 0.0 {
                        return Err(self.invalid(
                            format!("{path}.min"),
                            format!(
                                "expected min > 0 for a \"log\" scale, found {}",
                                format_number(r.min)
                            ),
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// Checks a parameter set: only search-space names, values in their domains; with
    /// `complete`, every parameter must be given.
    fn validate_params(
        &self,
        path: &str,
        params: &Map<String, Value>,
        complete: bool,
    ) -> Result<(), ConfigError> {
        let known: Vec<&str> = self.search_space.names().collect();
        for (name, value) in params {
            let Some(param) = self.search_space.get(name) else {
                return Err(self.invalid(
                    format!("{path}.{name}"),
                    format!(
                        "unknown parameter `{name}`: expected one of the search-space \
                         parameters [{}]",
                        known.join(", ")
                    ),
                ));
            };
            if !param.contains(value) {
                return Err(self.invalid(
                    format!("{path}.{name}"),
                    format!("expected {}, found {}", param.describe(), found(value)),
                ));
            }
        }
        if complete {
            for name in &known {
                if !params.contains_key(*name) {
                    return Err(self.invalid(
                        format!("{path}.{name}"),
                        format!(
                            "missing: expected a value for every search-space parameter, found \
                             none for `{name}`"
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    fn validate_planner(&self) -> Result<(), ConfigError> {
        if self.planner.kind == PlannerKind::Agent {
            return Err(self.invalid(
                "planner.kind",
                "the \"agent\" planner is not available in this build: expected \"search\" or \
                 \"none\", found \"agent\"",
            ));
        }
        if self.planner.batch == Some(0) {
            return Err(self.invalid(
                "planner.batch",
                "expected a number of proposals ≥ 1 (or leave it out for \
                 limits.max_concurrency), found 0",
            ));
        }
        Ok(())
    }

    fn validate_executor(&self) -> Result<(), ConfigError> {
        let s = &self.executor.slurm;
        for (field, v) in [("partition", &s.partition), ("account", &s.account)] {
            if let Some(v) = v
                && (v.trim().is_empty() || v.contains('\0'))
            {
                return Err(self.invalid(
                    format!("executor.slurm.{field}"),
                    format!("expected a non-empty name (or null), found {v:?}"),
                ));
            }
        }
        if let Some(i) = s.sbatch_args.iter().position(|a| a.contains('\0')) {
            return Err(self.invalid(
                format!("executor.slurm.sbatch_args[{i}]"),
                "expected an argument without NUL characters, found one",
            ));
        }
        if s.time_limit_min == Some(0) {
            return Err(self.invalid(
                "executor.slurm.time_limit_min",
                "expected a number of minutes ≥ 1 (or null), found 0",
            ));
        }
        Ok(())
    }

    fn validate_limits(&self) -> Result<(), ConfigError> {
        let l = &self.limits;
        if l.max_experiments == 0 {
            return Err(self.invalid("limits.max_experiments", "expected an integer ≥ 1, found 0"));
        }
        if l.patience == 0 {
            return Err(self.invalid("limits.patience", "expected an integer ≥ 1, found 0"));
        }
        if let Some(t) = l.time_budget_s
            && !(t.is_finite() && t > 0.0)
        {
            return Err(self.invalid(
                "limits.time_budget_s",
                format!(
                    "expected a number of seconds > 0 (or null for no budget), found {}",
                    format_number(t)
                ),
            ));
        }
        if !(1..=MAX_CONCURRENCY).contains(&l.max_concurrency) {
            return Err(self.invalid(
                "limits.max_concurrency",
                format!(
                    "expected an integer from 1 to {MAX_CONCURRENCY}, found {}",
                    l.max_concurrency
                ),
            ));
        }
        Ok(())
    }
}
