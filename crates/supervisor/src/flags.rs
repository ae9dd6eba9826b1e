//! Turning command-line flags into a configuration: a whole new one (first run), or the stored
//! one with limits and Slurm settings overridden (resume). Validation is the configuration's own.

use std::path::Path;

use anyhow::{Context, Result, bail};
use autoresearch_adapters::config::{Config, Param, ParamSpec};
use serde_json::{Map, Value, json};

use crate::cli::ConfigFlags;

/// The configuration these flags describe, if any: `None` when no flag was given.
///
/// With a stored `config.json`, the result is the stored configuration with the flags applied
/// (so forbidden changes show up in the resume diff). Without one, `--config` or
/// `--command`/`--metric`/`--param` build a new configuration.
pub fn config_from_flags(flags: &ConfigFlags, stored: Option<&Config>) -> Result<Option<Config>> {
    let mut value = match (&flags.config, stored) {
        (Some(path), _) => {
            let cfg = Config::load(path)?;
            let origin = cfg.origin.clone();
            let mut v = serde_json::to_value(&cfg).context("configuration to JSON")?;
            apply(flags, &mut v)?;
            return parse(v, &origin).map(Some);
        }
        (None, Some(stored)) => {
            if !any_flag(flags) {
                return Ok(None);
            }
            serde_json::to_value(stored).context("configuration to JSON")?
        }
        (None, None) => {
            if !any_flag(flags) {
                return Ok(None);
            }
            let command = flags
                .command
                .clone()
                .context("--command is required for a new run (or give --config FILE)")?;
            let metric = flags
                .metric
                .clone()
                .context("--metric is required for a new run (the name the job prints as `METRIC <name>=<number>`)")?;
            let direction = flags.direction.context(
                "--direction is required for a new run: maximize (higher is better) or minimize \
                 (lower is better); max and min also work",
            )?;
            json!({
                "objective": { "metric": metric, "direction": direction.direction().as_str() },
                "job": { "command": command },
            })
        }
    };
    apply(flags, &mut value)?;
    parse(value, Path::new("<command line>")).map(Some)
}

fn any_flag(f: &ConfigFlags) -> bool {
    f.config.is_some()
        || f.command.is_some()
        || f.metric.is_some()
        || f.direction.is_some()
        || f.min_improvement.is_some()
        || !f.params.is_empty()
        || !f.baseline.is_empty()
        || f.cwd.is_some()
        || f.timeout_s.is_some()
        || f.planner.is_some()
        || f.executor.is_some()
        || f.partition.is_some()
        || f.account.is_some()
        || !f.sbatch_args.is_empty()
        || f.cancel_jobs_on_stop
        || f.max_experiments.is_some()
        || f.patience.is_some()
        || f.time_budget_s.is_some()
        || f.max_concurrency.is_some()
}

fn parse(value: Value, origin: &Path) -> Result<Config> {
    let text = serde_json::to_string_pretty(&value).context("configuration to JSON")?;
    Ok(Config::from_json_str(&text, origin)?)
}

fn obj<'a>(v: &'a mut Value, key: &str) -> &'a mut Map<String, Value> {
    if !v.get(key).is_some_and(Value::is_object) {
        v[key] = json!({});
    }
    match v.get_mut(key) {
        Some(Value::Object(m)) => m,
        _ => unreachable!("just made an object"),
    }
}

fn apply(f: &ConfigFlags, v: &mut Value) -> Result<()> {
    if let Some(c) = &f.command {
        obj(v, "job").insert("command".into(), json!(c));
    }
    if let Some(m) = &f.metric {
        obj(v, "objective").insert("metric".into(), json!(m));
    }
    if let Some(d) = f.direction {
        obj(v, "objective").insert("direction".into(), json!(d.direction().as_str()));
    }
    if let Some(x) = f.min_improvement {
        obj(v, "objective").insert("min_improvement".into(), json!(x));
    }
    if let Some(c) = &f.cwd {
        let abs = std::path::absolute(c).unwrap_or_else(|_| c.clone());
        obj(v, "job").insert("cwd".into(), json!(abs));
    }
    if let Some(t) = f.timeout_s {
        obj(v, "job").insert("timeout_s".into(), json!(t));
    }
    if !f.params.is_empty() {
        let specs = parse_params(&f.params)?;
        let space = obj(v, "search_space");
        for spec in specs {
            let value = serde_json::to_value(&spec.param).context("parameter to JSON")?;
            space.insert(spec.name, value);
        }
    }
    let space: Vec<(String, Param)> = v
        .get("search_space")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, p)| Some((k.clone(), serde_json::from_value(p.clone()).ok()?)))
                .collect()
        })
        .unwrap_or_default();
    {
        let base = obj(v, "baseline");
        for b in &f.baseline {
            let (name, text) = b
                .split_once('=')
                .with_context(|| format!("--baseline {b:?}: expected NAME=VALUE"))?;
            let name = name.trim();
            let Some((_, param)) = space.iter().find(|(n, _)| n == name) else {
                let known: Vec<&str> = space.iter().map(|(n, _)| n.as_str()).collect();
                bail!(
                    "--baseline {b:?}: unknown parameter `{name}`: expected one of [{}] (define \
                     it with --param {name}=...)",
                    known.join(", ")
                );
            };
            let value = param
                .parse_value(text)
                .map_err(|e| anyhow::anyhow!("--baseline {b:?}: {e}"))?;
            base.insert(name.into(), value);
        }
        for (name, param) in &space {
            if !base.contains_key(name) {
                base.insert(name.clone(), param.default_value());
            }
        }
    }
    if let Some(p) = f.planner {
        obj(v, "planner").insert("kind".into(), json!(p.kind()));
    }
    if let Some(e) = f.executor {
        obj(v, "executor").insert("kind".into(), json!(e.kind()));
    }
    if f.cancel_jobs_on_stop {
        obj(v, "executor").insert("cancel_jobs_on_stop".into(), json!(true));
    }
    if f.partition.is_some() || f.account.is_some() || !f.sbatch_args.is_empty() {
        let slurm = obj(obj_value(v, "executor"), "slurm");
        if let Some(p) = &f.partition {
            slurm.insert("partition".into(), json!(p));
        }
        if let Some(a) = &f.account {
            slurm.insert("account".into(), json!(a));
        }
        if !f.sbatch_args.is_empty() {
            slurm.insert("sbatch_args".into(), json!(f.sbatch_args));
        }
    }
    let limits = obj(v, "limits");
    if let Some(x) = f.max_experiments {
        limits.insert("max_experiments".into(), json!(x));
    }
    if let Some(x) = f.patience {
        limits.insert("patience".into(), json!(x));
    }
    if let Some(x) = f.time_budget_s {
        limits.insert("time_budget_s".into(), json!(x));
    }
    if let Some(x) = f.max_concurrency {
        limits.insert("max_concurrency".into(), json!(x));
    }
    Ok(())
}

fn obj_value<'a>(v: &'a mut Value, key: &str) -> &'a mut Value {
    obj(v, key);
    &mut v[key]
}

/// Parses every `--param` (with [`ParamSpec`], the one parser of the syntax); a name given
/// twice is an error naming both flags.
pub fn parse_params(flags: &[String]) -> Result<Vec<ParamSpec>> {
    let mut specs: Vec<(ParamSpec, &str)> = Vec::new();
    for text in flags {
        let spec: ParamSpec = text
            .parse()
            .map_err(|e| anyhow::anyhow!("--param {text:?}: {e}"))?;
        if let Some((_, first)) = specs.iter().find(|(s, _)| s.name == spec.name) {
            bail!(
                "--param {first:?} and --param {text:?} both define `{}`: give each parameter \
                 once",
                spec.name
            );
        }
        specs.push((spec, text));
    }
    Ok(specs.into_iter().map(|(s, _)| s).collect())
}
