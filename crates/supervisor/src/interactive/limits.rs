//! The run's limits in the session: which ones a stopped run has reached (so the session says
//! how to raise them instead of offering a resume that would stop at once), and `set <limit>
//! <value>` / `extend <n>`, which change `limits` in `config.json` through the same resume path
//! as `supervisor run <workdir> --max-experiments N` (a documented, validated change; every
//! other field stays as it is).

use std::path::Path;

use anyhow::{Context, Result, bail};
use autoresearch_adapters::config::{Config, format_number};
use autoresearch_adapters::model::RunState;
use autoresearch_adapters::session::resolve_config;
use autoresearch_adapters::workdir::Workdir;
use clap::ValueEnum;

use crate::cli::ConfigFlags;
use crate::flags::config_from_flags;

/// A limit the session can change (`limits.<name>` in `config.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum LimitKey {
    /// Experiments ever started.
    MaxExperiments,
    /// Completed experiments in a row without improvement before stopping.
    Patience,
    /// Wall time the engine may run, in seconds (or a duration such as `2h`).
    TimeBudgetS,
    /// Experiments running at once.
    MaxConcurrency,
}

impl LimitKey {
    /// The field name in `config.json` (`limits.<name>`).
    pub fn name(self) -> &'static str {
        match self {
            LimitKey::MaxExperiments => "max_experiments",
            LimitKey::Patience => "patience",
            LimitKey::TimeBudgetS => "time_budget_s",
            LimitKey::MaxConcurrency => "max_concurrency",
        }
    }

    fn current(self, config: &Config) -> String {
        let l = &config.limits;
        match self {
            LimitKey::MaxExperiments => l.max_experiments.to_string(),
            LimitKey::Patience => l.patience.to_string(),
            LimitKey::TimeBudgetS => l
                .time_budget_s
                .map(format_number)
                .unwrap_or_else(|| "none".into()),
            LimitKey::MaxConcurrency => l.max_concurrency.to_string(),
        }
    }
}

pub(crate) fn read_state(workdir: &Path) -> Option<RunState> {
    std::fs::read(Workdir::new(workdir).state())
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
}

/// A limit the run has reached, with a value that raises it.
#[derive(Debug, Clone, PartialEq)]
pub struct ReachedLimit {
    /// Which limit.
    pub key: LimitKey,
    /// What is reached, e.g. `patience spent (10 experiments in a row without an improvement,
    /// patience 10)`.
    pub what: String,
    /// A value that raises it (the current value plus as much again, or 20 more experiments).
    pub raise_to: String,
}

impl ReachedLimit {
    /// The `supervisor run` flag that sets this limit.
    pub fn flag(&self) -> String {
        format!("--{}", self.key.name().replace('_', "-"))
    }
}

/// The limits `state` has reached against `config`'s, in the order experiments, patience,
/// time.
pub fn reached_limits(config: &Config, state: &RunState) -> Vec<ReachedLimit> {
    let l = &config.limits;
    let mut out = Vec::new();
    if state.experiments_started >= l.max_experiments {
        out.push(ReachedLimit {
            key: LimitKey::MaxExperiments,
            what: format!(
                "max_experiments reached ({} of {} started)",
                state.experiments_started, l.max_experiments
            ),
            raise_to: (l.max_experiments.max(state.experiments_started) + 20).to_string(),
        });
    }
    if state.plateau >= l.patience {
        out.push(ReachedLimit {
            key: LimitKey::Patience,
            what: format!(
                "patience spent ({} experiments in a row without an improvement, patience {})",
                state.plateau, l.patience
            ),
            raise_to: (state.plateau + l.patience).to_string(),
        });
    }
    if let Some(budget) = l.time_budget_s
        && state.time_used_s >= budget
    {
        out.push(ReachedLimit {
            key: LimitKey::TimeBudgetS,
            what: format!(
                "time budget used ({:.0} s of {:.0} s)",
                state.time_used_s, budget
            ),
            raise_to: format!("{:.0}", state.time_used_s + budget),
        });
    }
    out
}

/// The limits the run has reached, each as one line saying how to raise it in the session.
/// Empty when none is reached (or the workdir has no configuration yet).
pub fn reached(workdir: &Path) -> Vec<String> {
    let Ok(config) = Config::load(&Workdir::new(workdir).config()) else {
        return Vec::new();
    };
    let Some(state) = read_state(workdir) else {
        return Vec::new();
    };
    reached_limits(&config, &state)
        .into_iter()
        .map(|r| {
            let how = match r.key {
                LimitKey::MaxExperiments => {
                    format!("`extend 20` or `set max_experiments {}`", r.raise_to)
                }
                _ => format!("`set {} {}`", r.key.name(), r.raise_to),
            };
            format!("{}: {how} raises it", r.what)
        })
        .collect()
}

/// Parses `value` for `key`: whole numbers ≥ 1 for counts; seconds or a duration (`90m`,
/// `2h`) for the time budget.
fn flags_for(key: LimitKey, value: &str) -> Result<ConfigFlags, String> {
    let mut flags = ConfigFlags::default();
    let count = |what: &str| -> Result<u64, String> {
        value
            .parse::<u64>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| format!("{}: expected {what}, found {value:?}", key.name()))
    };
    match key {
        LimitKey::MaxExperiments => {
            flags.max_experiments = Some(count("a whole number of experiments ≥ 1")?);
        }
        LimitKey::Patience => {
            let n = count("a whole number of experiments ≥ 1")?;
            flags.patience =
                Some(u32::try_from(n).map_err(|_| format!("patience: {value} is too large"))?);
        }
        LimitKey::MaxConcurrency => {
            let n = count("a whole number of experiments ≥ 1")?;
            flags.max_concurrency = Some(
                usize::try_from(n).map_err(|_| format!("max_concurrency: {value} is too large"))?,
            );
        }
        LimitKey::TimeBudgetS => {
            let secs = value
                .parse::<f64>()
                .ok()
                .or_else(|| humantime::parse_duration(value).ok().map(|d| d.as_secs_f64()))
                .filter(|s| s.is_finite() && *s > 0.0)
                .ok_or_else(|| {
                    format!(
                        "time_budget_s: expected seconds (e.g. 7200) or a duration (e.g. 2h), found {value:?}"
                    )
                })?;
            flags.time_budget_s = Some(secs);
        }
    }
    Ok(flags)
}

/// Sets `limits.<key>` to `value` in `config.json` (the resume path of
/// `supervisor run --<key> VALUE`). Refused while an engine runs: it reads its limits when it
/// starts.
pub fn set(workdir: &Path, key: LimitKey, value: &str) -> Result<String> {
    if let Some(pid) = autoresearch_engine::lock::holder(workdir)? {
        bail!(
            "the engine is running (pid {pid}) and reads its limits when it starts: `stop`, then `set {} {value}`, then `start`",
            key.name()
        );
    }
    let path = Workdir::new(workdir).config();
    let stored = Config::load(&path).map_err(anyhow::Error::msg)?;
    let before = key.current(&stored);
    let flags = flags_for(key, value).map_err(anyhow::Error::msg)?;
    let given = config_from_flags(&flags, Some(&stored))?;
    let config = resolve_config(workdir, given)
        .with_context(|| format!("changing limits.{} in {}", key.name(), path.display()))?;
    let after = key.current(&config);
    let mut out = format!(
        "limits.{}: {before} → {after} (written to {})",
        key.name(),
        path.display()
    );
    let still = reached(workdir);
    if still.is_empty() {
        out.push_str("; `start` resumes the run");
    } else {
        out.push_str("; still reached:");
        for s in still {
            out.push_str("\n  ");
            out.push_str(&s);
        }
    }
    Ok(out)
}

/// Allows `n` more experiments: `max_experiments` becomes the larger of the current limit and
/// the experiments started so far, plus `n` (never lower than before).
pub fn extend(workdir: &Path, n: u64) -> Result<String> {
    let stored = Config::load(&Workdir::new(workdir).config()).map_err(anyhow::Error::msg)?;
    let started = read_state(workdir)
        .map(|s| s.experiments_started)
        .unwrap_or(0);
    let target = stored.limits.max_experiments.max(started).saturating_add(n);
    set(workdir, LimitKey::MaxExperiments, &target.to_string())
}
