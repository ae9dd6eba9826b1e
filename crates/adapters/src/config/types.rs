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

/// Largest `objective.repeats`, `objective.baseline_repeats` and `objective.confirm_runs`.
pub const MAX_REPEATS: u32 = 100;

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

/// `objective`: the primary metric, what "better" means, and how noise is handled (repeats,
/// the noise floor, confirmation of a new best; see `docs/noise.md`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Objective {
    /// Name of the primary metric (as printed in `METRIC <name>=<number>`).
    pub metric: String,
    /// `maximize` or `minimize`.
    pub direction: Direction,
    /// Smallest improvement over the best that counts: a relative margin (default 0.01, ≥ 0)
    /// or `"noise"` (`noise_k` × the noise floor).
    #[serde(default)]
    pub min_improvement: MinImprovement,
    /// How many times each experiment's job runs, one after the other (default 1).
    #[serde(default = "default_repeats")]
    pub repeats: u32,
    /// How the repeats' values become the experiment's value (default `median`).
    #[serde(default)]
    pub aggregate: Aggregate,
    /// How many times the baseline runs, to measure the noise floor (`null`: 3 when `repeats`
    /// is 1, else `repeats`).
    #[serde(default)]
    pub baseline_repeats: Option<u32>,
    /// When a new best is re-run before it counts (default `auto`).
    #[serde(default)]
    pub confirm: Confirm,
    /// How many more runs confirm a new best (default 2).
    #[serde(default = "default_confirm_runs")]
    pub confirm_runs: u32,
    /// How many noise floors make a clear difference (default 2).
    #[serde(default = "default_noise_k", serialize_with = "ser_num")]
    pub noise_k: f64,
}

impl Objective {
    /// The relative margin an improvement must exceed right now: `min_improvement`, or
    /// `noise_k` × `noise` (the relative noise floor; 0 while it is unknown).
    pub fn margin(&self, noise: Option<f64>) -> f64 {
        match self.min_improvement {
            MinImprovement::Relative(x) => x,
            MinImprovement::Noise => self.noise_k * noise.unwrap_or(0.0),
        }
    }

    /// Whether `value` improves on `best` by more than `margin` (relative to |best|). Any
    /// finite value improves on no best at all.
    pub fn improves_by(&self, value: f64, best: Option<f64>, margin: f64) -> bool {
        if !value.is_finite() {
            return false;
        }
        let Some(best) = best else { return true };
        let margin = margin * best.abs();
        match self.direction {
            Direction::Maximize => value > best + margin,
            Direction::Minimize => value < best - margin,
        }
    }

    /// Whether `value` improves on `best` by at least `min_improvement`, with `noise` the
    /// relative noise floor (used by `min_improvement = "noise"`).
    pub fn improves(&self, value: f64, best: Option<f64>, noise: Option<f64>) -> bool {
        self.improves_by(value, best, self.margin(noise))
    }

    /// [`improves`](Self::improves) with no noise floor known (`"noise"` then counts any
    /// gain).
    pub fn is_improvement(&self, value: f64, best: Option<f64>) -> bool {
        self.improves(value, best, None)
    }

    /// How many times a node runs its job: `baseline_repeats` (or its default) for the
    /// baseline, `repeats` for every other experiment.
    pub fn runs_of(&self, baseline: bool) -> u32 {
        if !baseline {
            return self.repeats;
        }
        self.baseline_repeats
            .unwrap_or(if self.repeats <= 1 { 3 } else { self.repeats })
    }
}

/// `objective.min_improvement`: a relative margin, or `"noise"`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MinImprovement {
    /// This fraction of |best| (`0.01` = 1 %).
    Relative(f64),
    /// `objective.noise_k` × the run's noise floor.
    Noise,
}

impl Default for MinImprovement {
    fn default() -> Self {
        MinImprovement::Relative(0.01)
    }
}

impl MinImprovement {
    /// The relative margin, or `None` for `"noise"`.
    pub fn relative(self) -> Option<f64> {
        match self {
            MinImprovement::Relative(x) => Some(x),
            MinImprovement::Noise => None,
        }
    }
}

impl fmt::Display for MinImprovement {
    /// `1%`, or `noise_k × the noise floor`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MinImprovement::Relative(x) => {
                let pct = (x * 100.0 * 1e6).round() / 1e6;
                write!(f, "{}%", super::values::format_number(pct))
            }
            MinImprovement::Noise => f.write_str("noise_k × the noise floor"),
        }
    }
}

impl Serialize for MinImprovement {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            MinImprovement::Relative(x) => ser_num(x, serializer),
            MinImprovement::Noise => serializer.serialize_str("noise"),
        }
    }
}

impl<'de> Deserialize<'de> for MinImprovement {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = MinImprovement;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a relative margin such as 0.01, or \"noise\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(MinImprovement::Relative(v as f64))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(MinImprovement::Relative(v as f64))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(MinImprovement::Relative(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                if v == "noise" {
                    Ok(MinImprovement::Noise)
                } else {
                    Err(de::Error::invalid_value(de::Unexpected::Str(v), &self))
                }
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// `objective.aggregate`: how the repeats' values become the experiment's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Aggregate {
    /// The middle value (the mean of the two middle ones for an even count); the default.
    #[default]
    Median,
    /// The arithmetic mean.
    Mean,
    /// The smallest value.
    Min,
    /// The largest value.
    Max,
}

impl Aggregate {
    /// `median`, `mean`, `min` or `max`.
    pub fn as_str(self) -> &'static str {
        match self {
            Aggregate::Median => "median",
            Aggregate::Mean => "mean",
            Aggregate::Min => "min",
            Aggregate::Max => "max",
        }
    }
}

/// `objective.confirm`: when a new best is re-run before it counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Confirm {
    /// When it beats the best by less than `noise_k` standard errors of the difference (or
    /// the noise floor is not known yet); the default.
    #[default]
    Auto,
    /// Every new best.
    Always,
    /// Never: one aggregate beating the best counts at once.
    Off,
}

impl Confirm {
    /// `auto`, `always` or `off`.
    pub fn as_str(self) -> &'static str {
        match self {
            Confirm::Auto => "auto",
            Confirm::Always => "always",
            Confirm::Off => "off",
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

impl PlannerKind {
    /// `search`, `none` or `agent`.
    pub fn as_str(self) -> &'static str {
        match self {
            PlannerKind::Search => "search",
            PlannerKind::None => "none",
            PlannerKind::Agent => "agent",
        }
    }
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

impl ExecutorKind {
    /// `local` or `slurm`.
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutorKind::Local => "local",
            ExecutorKind::Slurm => "slurm",
        }
    }
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

fn default_repeats() -> u32 {
    1
}
fn default_confirm_runs() -> u32 {
    2
}
fn default_noise_k() -> f64 {
    2.0
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
