//! The configuration's types (`<workdir>/config.json`): the objective, the job to run, the
//! search space, baseline and seeds, planner, executor and limits, with their defaults. Every
//! object refuses unknown keys (`deny_unknown_fields`); `docs/config-reference.md` lists every
//! field and is checked against these types by a test.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use super::agent::AgentConfig;
use super::space::SearchSpace;
use super::values::{ser_num, ser_opt_num};
use super::workspace::WorkspaceConfig;

/// Largest allowed `limits.max_concurrency`.
pub const MAX_CONCURRENCY: usize = 1024;

/// Default `job.log_limit_mb`.
pub const DEFAULT_LOG_LIMIT_MB: u64 = 64;

/// The whole run configuration. Compare with `==` (the [`origin`](Config::origin) is ignored).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
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
    /// The git repository each experiment runs in (one worktree per experiment at its own
    /// commit); `None`: jobs run in `job.cwd` and nothing changes code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<WorkspaceConfig>,
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
            workspace,
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
            && *workspace == other.workspace
    }
}

/// `objective`: the primary metric and what "better" means.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
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
#[serde(deny_unknown_fields)]
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
    /// Largest size of `stdout.log` and `stderr.log` each, in MiB (default 64, ≥ 1): past it
    /// the wrapper keeps the first half and the most recent output (see `docs/adapters.md`).
    #[serde(default = "default_log_limit_mb")]
    pub log_limit_mb: u64,
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
#[serde(deny_unknown_fields)]
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
    /// A coding-agent CLI (`planner.agent`; see `docs/agent.md`).
    Agent,
}

/// `planner`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
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
    /// The coding agent (required when `kind` is `agent`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentConfig>,
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
#[serde(deny_unknown_fields)]
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

/// `executor.slurm`: the Slurm executor's settings (the one definition, used by the
/// executor as is). Every field is optional.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlurmConfig {
    /// `--partition`; the cluster's default partition when unset.
    #[serde(default)]
    pub partition: Option<String>,
    /// `--account`; the user's default account when unset.
    #[serde(default)]
    pub account: Option<String>,
    /// Extra `sbatch` arguments, passed on the command line exactly as given (they override the
    /// script's `#SBATCH` lines), e.g. `["--cpus-per-task=4", "--mem=8G"]`.
    #[serde(default)]
    pub sbatch_args: Vec<String>,
    /// `--time` in minutes. When unset it is derived from `job.timeout_s`, rounded up to minutes
    /// plus one minute of margin; with neither, the partition's default applies.
    #[serde(default)]
    pub time_limit_min: Option<u64>,
}

/// `limits`: totals across all resumes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
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
    /// Dollars the coding agent may cost (as reported by the agent CLI), over all resumes:
    /// once spent, no more planning calls are made and the run finishes what is queued.
    /// `None`: no budget.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_opt_num"
    )]
    pub agent_cost_usd: Option<f64>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_experiments: default_max_experiments(),
            patience: default_patience(),
            time_budget_s: None,
            max_concurrency: default_max_concurrency(),
            agent_cost_usd: None,
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
fn default_log_limit_mb() -> u64 {
    DEFAULT_LOG_LIMIT_MB
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

impl Config {
    /// The configuration as pretty JSON (the `config.json` format; reading it back gives an
    /// equal configuration).
    pub fn to_json_pretty(&self) -> String {
        // Every field serializes (strings, numbers, maps with string keys): this cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
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

    /// The command for a parameter set ([`render_command`](super::render_command) of
    /// `job.command`).
    pub fn render(&self, params: &Map<String, Value>) -> Result<String, super::ConfigError> {
        super::render_command(&self.job.command, params)
    }

    /// The stored configuration with `limits` and `executor.slurm` from `given`; any other
    /// difference is refused with [`ConfigError::ForbiddenChange`](super::ConfigError) listing
    /// each field.
    pub fn merge_for_resume(stored: &Config, given: &Config) -> Result<Config, super::ConfigError> {
        super::resume::merge_for_resume(stored, given)
    }
}
