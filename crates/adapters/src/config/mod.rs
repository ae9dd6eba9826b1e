//! Run configuration (`<workdir>/config.json`): the objective, the job to run, the search
//! space, baseline and seeds, planner, executor and limits. Every field is listed in
//! `docs/config-reference.md`.
//!
//! [`Config::from_json_str`], [`Config::from_toml_str`] and [`Config::load`] parse and validate;
//! every error names the file, the field path, what was expected and what was found (and the
//! line and column for syntax, type and unknown-key errors, with a "did you mean" for a near
//! miss). [`Config::merge_for_resume`] applies the resume rules; [`Config::check_params`] checks
//! a parameter set from the checkpoint; [`render_command`] and [`param_env`] turn a parameter
//! set into the job's command line and environment; [`ParamSpec`] parses the `NAME=SPEC`
//! parameter syntax of the command line.

pub mod agent;
mod error;
mod params;
mod parse;
mod render;
mod resume;
mod space;
mod types;
mod validate;
mod values;
pub mod workspace;

pub use error::ConfigError;
pub use params::{
    Choices, NumType, PARAM_SYNTAX, Param, ParamSpec, ParamSyntaxError, Range, Scale,
};
pub use render::{
    check_template, is_param_name, param_env, placeholders, render_command, shell_quote, shell_word,
};
pub use resume::{FieldDiff, RESUMABLE_PATHS};
pub use space::SearchSpace;
pub use types::{
    Aggregate, Config, Confirm, DEFAULT_LOG_LIMIT_MB, Direction, ExecutorConfig, ExecutorKind,
    JobConfig, Limits, MAX_CONCURRENCY, MAX_REPEATS, MinImprovement, Objective, PlannerConfig,
    PlannerKind, Seed, SlurmConfig,
};
pub use validate::is_metric_name;
pub use values::{MAX_EXACT_INT, canonical_params_key, format_number, value_to_raw, values_equal};
