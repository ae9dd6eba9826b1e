//! The rules a configuration must follow beyond its types (names, domains, bounds, limits,
//! placeholders in safe positions), and [`Config::check_params`], which checks a parameter set
//! from elsewhere (the checkpoint, a hand-added spec) against the search space.

use serde_json::{Map, Value};

use super::error::ConfigError;
use super::params::{NumType, Param, Scale};
use super::render::{check_template, is_param_name, placeholders};
use super::types::{Config, MAX_CONCURRENCY, MAX_REPEATS, MinImprovement, PlannerKind};
use super::values::{MAX_EXACT_INT, compact_json, format_number, found, values_equal};

/// Whether `name` can appear in a `METRIC <name>=<number>` line: `[A-Za-z0-9_.:/-]+`.
pub fn is_metric_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.:/-".contains(&b))
}

impl Config {
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
        if let MinImprovement::Relative(x) = o.min_improvement
            && !(x.is_finite() && x >= 0.0)
        {
            return Err(self.invalid(
                "objective.min_improvement",
                format!(
                    "expected a finite number ≥ 0 or \"noise\", found {}",
                    format_number(x)
                ),
            ));
        }
        let counts = [
            ("objective.repeats", Some(o.repeats)),
            ("objective.baseline_repeats", o.baseline_repeats),
            ("objective.confirm_runs", Some(o.confirm_runs)),
        ];
        for (path, n) in counts {
            if let Some(n) = n
                && !(1..=MAX_REPEATS).contains(&n)
            {
                return Err(self.invalid(
                    path,
                    format!("expected a whole number from 1 to {MAX_REPEATS}, found {n}"),
                ));
            }
        }
        if !(o.noise_k.is_finite() && o.noise_k > 0.0) {
            return Err(self.invalid(
                "objective.noise_k",
                format!(
                    "expected a finite number > 0 (how many noise floors make a clear \
                     difference, e.g. 2), found {}",
                    format_number(o.noise_k)
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
        if job.log_limit_mb == 0 {
            return Err(self.invalid(
                "job.log_limit_mb",
                "expected a number of MiB ≥ 1 for stdout.log and stderr.log each, found 0",
            ));
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
        check_template(&job.command).map_err(|message| self.invalid("job.command", message))
    }

    /// Checks that `job.cwd` (made absolute by the caller) is an existing folder.
    pub fn check_cwd(&self) -> Result<(), ConfigError> {
        let cwd = &self.job.cwd;
        match std::fs::metadata(cwd) {
            Ok(m) if m.is_dir() => Ok(()),
            Ok(_) => Err(self.invalid(
                "job.cwd",
                format!(
                    "expected a folder to run the job in, found a file at {}; give a folder \
                     (--cwd DIR)",
                    cwd.display()
                ),
            )),
            Err(e) => Err(self.invalid(
                "job.cwd",
                format!(
                    "expected an existing folder to run the job in, found none at {} ({e}); \
                     create it or give another one (--cwd DIR)",
                    cwd.display()
                ),
            )),
        }
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
                        let magnitude = c.as_i64().map(i64::unsigned_abs).or_else(|| c.as_u64());
                        if let Some(m) = magnitude
                            && m > MAX_EXACT_INT as u64
                        {
                            return Err(self.invalid(
                                format!("{path}[{i}]"),
                                format!(
                                    "expected an integer of at most 2^53 \
                                         (9007199254740992) in magnitude, found {}; write it \
                                         as a string if it is a label",
                                    compact_json(c)
                                ),
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
                        if r.kind == NumType::Int && x.abs() > MAX_EXACT_INT {
                            return Err(self.invalid(
                                format!("{path}.{field}"),
                                format!(
                                    "expected an integer of at most 2^53 (9007199254740992) in \
                                     magnitude for an \"int\" range, found {}; use \"type\": \
                                     \"float\" for larger numbers",
                                    format_number(x)
                                ),
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

    /// Checks a parameter set from outside the configuration (the checkpoint, a hand-added
    /// spec, `queue add`) against the search space: every name must be a parameter and every
    /// value in its domain (right type, inside the range, one of the choices). Parameters left
    /// out are fine (they come from the baseline).
    pub fn check_params(&self, params: &Map<String, Value>) -> Result<(), ConfigError> {
        for (name, value) in params {
            self.check_param(name, value)
                .map_err(|message| ConfigError::Param {
                    name: name.clone(),
                    message,
                })?;
        }
        Ok(())
    }

    /// Why `value` is not a valid value of the parameter `name`, if it is not.
    fn check_param(&self, name: &str, value: &Value) -> Result<(), String> {
        let Some(param) = self.search_space.get(name) else {
            let known: Vec<&str> = self.search_space.names().collect();
            let hint = super::error::did_you_mean(name, &known);
            return Err(format!(
                "unknown parameter `{name}`{hint}: expected one of the search-space parameters \
                 [{}]",
                known.join(", ")
            ));
        };
        if param.contains(value) {
            return Ok(());
        }
        Err(format!(
            "expected {}, found {}",
            param.describe(),
            found(value)
        ))
    }

    /// Checks a parameter set of the file (`baseline`, `seeds[i].params`); with `complete`,
    /// every parameter must be given.
    fn validate_params(
        &self,
        path: &str,
        params: &Map<String, Value>,
        complete: bool,
    ) -> Result<(), ConfigError> {
        for (name, value) in params {
            self.check_param(name, value)
                .map_err(|message| self.invalid(format!("{path}.{name}"), message))?;
        }
        if complete {
            for name in self.search_space.names() {
                if !params.contains_key(name) {
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
        match &self.planner.agent {
            Some(agent) => agent.validate(&self.origin)?,
            None if self.planner.kind == PlannerKind::Agent => {
                return Err(self.invalid(
                    "planner.agent",
                    "missing: planner.kind = \"agent\" needs the agent to call, e.g. \
                     {\"preset\": \"claude\"}, {\"preset\": \"codex\"} or {\"command\": \
                     [\"my-agent\", \"--json\"]} (see docs/agent.md)",
                ));
            }
            None => {}
        }
        if let Some(ws) = &self.workspace {
            ws.validate(&self.origin)?;
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
        if let Some(usd) = l.agent_cost_usd
            && !(usd.is_finite() && usd > 0.0)
        {
            return Err(self.invalid(
                "limits.agent_cost_usd",
                format!(
                    "expected a number of dollars > 0 (or null for no budget), found {}",
                    format_number(usd)
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
