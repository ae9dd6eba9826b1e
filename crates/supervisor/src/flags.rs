//! Turning command-line flags into a configuration: a whole new one (first run), or the stored
//! one with limits and Slurm settings overridden (resume). Validation is the configuration's own.

use std::path::Path;

use anyhow::{Context, Result, bail};
use autoresearch_adapters::config::Config;
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
            json!({
                "objective": { "metric": metric, "direction": "maximize" },
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
    if let Some(d) = &f.direction {
        obj(v, "objective").insert("direction".into(), json!(d));
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
        let space = obj(v, "search_space");
        for p in &f.params {
            let (name, spec) = parse_param(p)?;
            space.insert(name, spec);
        }
    }
    let space: Map<String, Value> = v
        .get("search_space")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    {
        let base = obj(v, "baseline");
        for b in &f.baseline {
            let (name, value) = b
                .split_once('=')
                .with_context(|| format!("--baseline {b:?}: expected NAME=VALUE"))?;
            base.insert(name.trim().into(), scalar(value.trim()));
        }
        for (name, spec) in &space {
            if !base.contains_key(name) {
                let default = match spec {
                    Value::Array(a) => a.first().cloned(),
                    Value::Object(o) => o.get("min").cloned(),
                    _ => None,
                };
                if let Some(d) = default {
                    base.insert(name.clone(), d);
                }
            }
        }
    }
    if let Some(p) = &f.planner {
        obj(v, "planner").insert("kind".into(), json!(p));
    }
    if let Some(e) = &f.executor {
        obj(v, "executor").insert("kind".into(), json!(e));
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

/// A scalar from the command line: number, bool, else string.
fn scalar(s: &str) -> Value {
    if let Ok(i) = s.parse::<i64>() {
        return json!(i);
    }
    if let Ok(f) = s.parse::<f64>()
        && f.is_finite()
    {
        return json!(f);
    }
    match s {
        "true" => json!(true),
        "false" => json!(false),
        _ => json!(s),
    }
}

/// `name=1,2,4` → choices; `name=16..4096[:log][:int]` → range.
pub fn parse_param(p: &str) -> Result<(String, Value)> {
    let (name, spec) = p.split_once('=').with_context(|| {
        format!("--param {p:?}: expected NAME=1,2,4 or NAME=MIN..MAX[:log][:int]")
    })?;
    let name = name.trim().to_string();
    let spec = spec.trim();
    let mut parts = spec.split(':');
    let head = parts.next().unwrap_or_default();
    if let Some((lo, hi)) = head.split_once("..") {
        let (Ok(min), Ok(max)) = (lo.trim().parse::<f64>(), hi.trim().parse::<f64>()) else {
            bail!("--param {p:?}: range bounds must be numbers, as in {name}=16..4096:log:int");
        };
        let mut range = Map::new();
        range.insert("min".into(), json!(min));
        range.insert("max".into(), json!(max));
        for flag in parts {
            match flag.trim() {
                "log" => {
                    range.insert("scale".into(), json!("log"));
                }
                "linear" => {
                    range.insert("scale".into(), json!("linear"));
                }
                "int" => {
                    range.insert("type".into(), json!("int"));
                }
                "float" => {
                    range.insert("type".into(), json!("float"));
                }
                other => bail!(
                    "--param {p:?}: unknown option {other:?}; expected log, linear, int or float"
                ),
            }
        }
        if range.get("type") == Some(&json!("int")) {
            range.insert("min".into(), json!(min as i64));
            range.insert("max".into(), json!(max as i64));
        }
        return Ok((name, Value::Object(range)));
    }
    let choices: Vec<Value> = spec.split(',').map(|c| scalar(c.trim())).collect();
    Ok((name, Value::Array(choices)))
}
