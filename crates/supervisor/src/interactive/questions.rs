//! The configuration questionnaire of a new workdir: one question per required field, each
//! with a default where one makes sense, each answer checked as it is given (a bad answer is
//! re-asked with the reason). The answers become the JSON of `config.json` (design §3), which
//! the caller validates as a whole with `Config::from_json_str` before writing it.

use std::path::Path;

use autoresearch_adapters::config::{
    MAX_CONCURRENCY, NumType, Param, Range, Scale, format_number, is_metric_name, is_param_name,
    placeholders, value_to_raw,
};
use serde_json::{Map, Value, json};

/// What a prompt read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// A line (without its newline).
    Line(String),
    /// End of input (Ctrl+D).
    Eof,
    /// Ctrl+C.
    Interrupted,
}

/// Where questions are asked: the terminal (rustyline) in the session, a script in tests.
pub trait Prompter {
    /// Shows `prompt` and reads one answer.
    fn ask(&mut self, prompt: &str) -> Answer;
    /// Prints a line of explanation or an error.
    fn say(&mut self, text: &str);
}

/// The user left the questionnaire (Ctrl+C or Ctrl+D): nothing is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Abort {
    /// Ctrl+D / end of input.
    Eof,
    /// Ctrl+C.
    Interrupted,
}

/// Asks `question` until a valid answer: an empty answer takes `default` (when there is one);
/// `parse` turns the text into a value or says what is wrong.
pub fn ask_value<T>(
    p: &mut dyn Prompter,
    question: &str,
    default: Option<&str>,
    mut parse: impl FnMut(&str) -> Result<T, String>,
) -> Result<T, Abort> {
    let prompt = match default {
        Some(d) if !d.is_empty() => format!("{question} [{d}]: "),
        _ => format!("{question}: "),
    };
    loop {
        let text = match p.ask(&prompt) {
            Answer::Line(s) => s,
            Answer::Eof => return Err(Abort::Eof),
            Answer::Interrupted => return Err(Abort::Interrupted),
        };
        let text = text.trim();
        let text = if text.is_empty() {
            default.unwrap_or("")
        } else {
            text
        };
        match parse(text) {
            Ok(v) => return Ok(v),
            Err(e) => p.say(&format!("  ✗ {e}; please try again")),
        }
    }
}

/// A yes/no question (`[Y/n]` or `[y/N]`); an empty answer takes the default.
pub fn ask_yes_no(p: &mut dyn Prompter, question: &str, default_yes: bool) -> Result<bool, Abort> {
    let hint = if default_yes { "Y/n" } else { "y/N" };
    let prompt = format!("{question} [{hint}] ");
    loop {
        let text = match p.ask(&prompt) {
            Answer::Line(s) => s,
            Answer::Eof => return Err(Abort::Eof),
            Answer::Interrupted => return Err(Abort::Interrupted),
        };
        match text.trim().to_ascii_lowercase().as_str() {
            "" => return Ok(default_yes),
            "y" | "yes" => return Ok(true),
            "n" | "no" => return Ok(false),
            other => p.say(&format!("  ✗ expected y or n, found {other:?}")),
        }
    }
}

/// Asks for everything `config.json` needs and returns its JSON. `cwd` is the default working
/// directory of the job.
pub fn ask_config(p: &mut dyn Prompter, cwd: &Path) -> Result<Value, Abort> {
    p.say("This workdir has no configuration yet. A few questions (Enter takes the [default]; Ctrl+C cancels, nothing is written until the end):");

    let metric = ask_value(
        p,
        "Primary metric name (the job prints METRIC <name>=<number>)",
        None,
        parse_metric,
    )?;
    let direction = ask_value(
        p,
        "Better is (maximize/minimize)",
        Some("maximize"),
        parse_direction,
    )?;
    let command = ask_value(
        p,
        "Command of one experiment ({param} is replaced by the parameter's value)",
        None,
        parse_command,
    )?;
    let cwd_default = cwd.display().to_string();
    let job_cwd = ask_value(
        p,
        "Working directory of the command",
        Some(&cwd_default),
        |t| parse_dir(t, cwd),
    )?;

    p.say("Search space: one parameter per line, as name=1,2,4,8 (choices) or name=16..4096:log:int (a range; modifiers log|linear and int|float, integer bounds make an int range). An empty line ends the list.");
    let needed: Vec<String> = placeholders(&command)
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut params: Vec<(String, Param)> = Vec::new();
    loop {
        let n = params.len() + 1;
        let done = ask_value(p, &format!("  parameter {n}"), None, |t| {
            if t.is_empty() {
                let missing: Vec<&str> = needed
                    .iter()
                    .filter(|name| !params.iter().any(|(n, _)| n == *name))
                    .map(String::as_str)
                    .collect();
                if !missing.is_empty() {
                    let list: Vec<String> = missing.iter().map(|m| format!("{{{m}}}")).collect();
                    return Err(format!(
                        "the command uses {} but no such parameter is defined yet",
                        list.join(", ")
                    ));
                }
                return Ok(None);
            }
            let (name, param) = parse_param(t)?;
            if params.iter().any(|(n, _)| *n == name) {
                return Err(format!("parameter `{name}` is already defined"));
            }
            Ok(Some((name, param)))
        })?;
        match done {
            None => break,
            Some((name, param)) => {
                p.say(&format!("    {name}: {}", describe(&param)));
                params.push((name, param));
            }
        }
    }

    let mut baseline = Map::new();
    for (name, param) in &params {
        let default = value_to_raw(&default_value(param));
        let value = ask_value(
            p,
            &format!("Baseline value of {name}"),
            Some(&default),
            |t| parse_value(param, t),
        )?;
        baseline.insert(name.clone(), value);
    }

    let mut seeds = Vec::new();
    if !params.is_empty() {
        p.say("Seed experiments (optional): one per line as `name param=value ...` (parameters left out take the baseline value). An empty line ends the list.");
        loop {
            let n = seeds.len() + 1;
            let seed = ask_value(p, &format!("  seed {n}"), None, |t| {
                if t.is_empty() {
                    return Ok(None);
                }
                parse_seed(t, &params).map(Some)
            })?;
            match seed {
                None => break,
                Some(s) => seeds.push(s),
            }
        }
    }

    let max_experiments = ask_value(p, "Maximum number of experiments", Some("40"), |t| match t
        .parse::<u64>()
    {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("expected a whole number ≥ 1, found {t:?}")),
    })?;
    let max_concurrency = ask_value(p, "Experiments running at once", Some("2"), |t| match t
        .parse::<usize>()
    {
        Ok(n) if (1..=MAX_CONCURRENCY).contains(&n) => Ok(n),
        _ => Err(format!(
            "expected a whole number from 1 to {MAX_CONCURRENCY}, found {t:?}"
        )),
    })?;

    let mut space = Map::new();
    for (name, param) in &params {
        space.insert(
            name.clone(),
            serde_json::to_value(param).unwrap_or(Value::Null),
        );
    }
    let mut config = json!({
        "objective": { "metric": metric, "direction": direction },
        "job": { "command": command, "cwd": job_cwd },
        "search_space": space,
        "baseline": baseline,
    });
    if !seeds.is_empty() {
        config["seeds"] = Value::Array(seeds);
    }
    config["limits"] =
        json!({ "max_experiments": max_experiments, "max_concurrency": max_concurrency });
    Ok(config)
}

/// A metric name: `[A-Za-z0-9_.:/-]+`.
pub fn parse_metric(t: &str) -> Result<String, String> {
    if t.is_empty() {
        return Err("a metric name is required".into());
    }
    if !is_metric_name(t) {
        return Err(format!(
            "a metric name is made of letters, digits and _ . : / - only, found {t:?}"
        ));
    }
    Ok(t.to_string())
}

/// `maximize` or `minimize` (also `max`/`min`, any case).
pub fn parse_direction(t: &str) -> Result<String, String> {
    match t.to_ascii_lowercase().as_str() {
        "maximize" | "max" | "maximise" | "higher" => Ok("maximize".into()),
        "minimize" | "min" | "minimise" | "lower" => Ok("minimize".into()),
        _ => Err(format!("expected maximize or minimize, found {t:?}")),
    }
}

/// A non-empty command whose `{placeholders}` are well formed.
pub fn parse_command(t: &str) -> Result<String, String> {
    if t.is_empty() {
        return Err("a command is required".into());
    }
    if t.contains('\0') {
        return Err("the command contains a NUL character".into());
    }
    for name in placeholders(t) {
        if !is_param_name(name) {
            return Err(format!(
                "{{{name}}} is not a valid parameter name (letters, digits and _, not starting with a digit; write {{{{ and }}}} for literal braces)"
            ));
        }
    }
    Ok(t.to_string())
}

/// An existing directory, relative to `base` unless absolute; returned absolute.
fn parse_dir(t: &str, base: &Path) -> Result<String, String> {
    let path = base.join(t);
    if !path.is_dir() {
        return Err(format!("{} is not a directory", path.display()));
    }
    let path = path.canonicalize().unwrap_or(path);
    Ok(path.display().to_string())
}

/// One parameter line: `name=1,2,4,8` or `name=16..4096[:log|:linear][:int|:float]`.
pub fn parse_param(t: &str) -> Result<(String, Param), String> {
    let Some((name, domain)) = t.split_once('=') else {
        return Err(format!(
            "expected name=1,2,4 or name=MIN..MAX[:log][:int], found {t:?}"
        ));
    };
    let name = name.trim();
    let domain = domain.trim();
    if !is_param_name(name) {
        return Err(format!(
            "a parameter name is letters, digits and _ and does not start with a digit, found {name:?}"
        ));
    }
    if domain.is_empty() {
        return Err(format!(
            "`{name}` has no values: expected name=1,2,4 or name=MIN..MAX"
        ));
    }
    let param = if let Some((lo, rest)) = domain.split_once("..") {
        parse_range(name, lo, rest)?
    } else {
        parse_choices(name, domain)?
    };
    Ok((name.to_string(), param))
}

fn parse_range(name: &str, lo: &str, rest: &str) -> Result<Param, String> {
    let mut parts = rest.split(':');
    let hi = parts.next().unwrap_or("").trim();
    let lo = lo.trim();
    let num = |s: &str, which: &str| -> Result<f64, String> {
        s.parse::<f64>()
            .ok()
            .filter(|x| x.is_finite())
            .ok_or_else(|| format!("`{name}`: the {which} bound must be a number, found {s:?}"))
    };
    let min = num(lo, "lower")?;
    let max = num(hi, "upper")?;
    let mut scale = None;
    let mut kind = None;
    for m in parts {
        match m.trim().to_ascii_lowercase().as_str() {
            "log" if scale.is_none() => scale = Some(Scale::Log),
            "linear" | "lin" if scale.is_none() => scale = Some(Scale::Linear),
            "int" | "integer" if kind.is_none() => kind = Some(NumType::Int),
            "float" | "real" if kind.is_none() => kind = Some(NumType::Float),
            other => {
                return Err(format!(
                    "`{name}`: unknown or repeated modifier {other:?}: expected log or linear, and int or float"
                ));
            }
        }
    }
    let looks_int = |s: &str| s.parse::<i64>().is_ok();
    let kind = kind.unwrap_or(if looks_int(lo) && looks_int(hi) {
        NumType::Int
    } else {
        NumType::Float
    });
    let scale = scale.unwrap_or_default();
    if min >= max {
        return Err(format!(
            "`{name}`: expected MIN < MAX, found {}..{}",
            format_number(min),
            format_number(max)
        ));
    }
    if kind == NumType::Int && (min.fract() != 0.0 || max.fract() != 0.0) {
        return Err(format!(
            "`{name}`: an int range needs whole-number bounds, found {}..{}",
            format_number(min),
            format_number(max)
        ));
    }
    if scale == Scale::Log && min <= 0.0 {
        return Err(format!(
            "`{name}`: a log range needs MIN > 0, found {}",
            format_number(min)
        ));
    }
    Ok(Param::Range(Range {
        min,
        max,
        scale,
        kind,
    }))
}

fn parse_choices(name: &str, domain: &str) -> Result<Param, String> {
    let mut choices: Vec<Value> = Vec::new();
    for item in domain.split(',') {
        let item = item.trim();
        if item.is_empty() {
            return Err(format!("`{name}`: empty choice in {domain:?}"));
        }
        let value = choice_value(item);
        if choices
            .iter()
            .any(|c| autoresearch_adapters::config::values_equal(c, &value))
        {
            return Err(format!("`{name}`: choice {item} is listed twice"));
        }
        choices.push(value);
    }
    Ok(Param::Choices(choices))
}

/// A choice as typed: an integer, a number, true/false, or a string (quotes optional).
fn choice_value(item: &str) -> Value {
    if let Ok(i) = item.parse::<i64>() {
        return Value::from(i);
    }
    if let Some(x) = item.parse::<f64>().ok().filter(|x| x.is_finite())
        && let Some(n) = serde_json::Number::from_f64(x)
    {
        return Value::Number(n);
    }
    match item {
        "true" => return Value::Bool(true),
        "false" => return Value::Bool(false),
        _ => {}
    }
    let unquoted = item
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .or_else(|| item.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')))
        .unwrap_or(item);
    Value::String(unquoted.to_string())
}

/// The default baseline value of a parameter: its first choice, or its range's minimum.
pub fn default_value(param: &Param) -> Value {
    match param {
        Param::Choices(c) => c.first().cloned().unwrap_or(Value::Null),
        Param::Range(r) => {
            let (lo, _) = r.bounds();
            param.canonicalize(&json!(lo)).unwrap_or_else(|| json!(lo))
        }
    }
}

/// A value typed for `param`, checked against its domain.
pub fn parse_value(param: &Param, t: &str) -> Result<Value, String> {
    let candidate = match param {
        Param::Choices(choices) => choices
            .iter()
            .find(|c| value_to_raw(c) == t)
            .cloned()
            .unwrap_or_else(|| choice_value(t)),
        Param::Range(_) => match t.parse::<f64>() {
            Ok(x) if x.is_finite() => json!(x),
            _ => return Err(format!("expected {}, found {t:?}", param.describe())),
        },
    };
    param
        .canonicalize(&candidate)
        .ok_or_else(|| format!("expected {}, found {t:?}", param.describe()))
}

/// One seed line: `name param=value ...`.
fn parse_seed(t: &str, params: &[(String, Param)]) -> Result<Value, String> {
    let mut words = t.split_whitespace();
    let name = words.next().unwrap_or("");
    if name.contains('=') {
        return Err(format!(
            "a seed starts with its name, then param=value pairs, found {t:?}"
        ));
    }
    let mut values = Map::new();
    for word in words {
        let Some((k, v)) = word.split_once('=') else {
            return Err(format!("expected param=value, found {word:?}"));
        };
        let Some((_, param)) = params.iter().find(|(n, _)| n == k) else {
            let known: Vec<&str> = params.iter().map(|(n, _)| n.as_str()).collect();
            return Err(format!(
                "unknown parameter `{k}`: expected one of [{}]",
                known.join(", ")
            ));
        };
        let value = parse_value(param, v).map_err(|e| format!("{k}: {e}"))?;
        values.insert(k.to_string(), value);
    }
    if values.is_empty() {
        return Err(format!(
            "seed `{name}` sets no parameter: expected `{name} param=value ...`"
        ));
    }
    Ok(json!({ "name": name, "params": values }))
}

/// `one of [1, 2]`, `an integer from 16 to 4096 (log scale)`.
fn describe(param: &Param) -> String {
    match param {
        Param::Range(r) if r.scale == Scale::Log => format!("{} (log scale)", param.describe()),
        _ => param.describe(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    /// Answers from a script; records everything shown.
    pub(crate) struct Script {
        answers: VecDeque<Answer>,
        pub shown: Vec<String>,
    }

    impl Script {
        pub fn new(lines: &[&str]) -> Self {
            Script {
                answers: lines.iter().map(|s| Answer::Line(s.to_string())).collect(),
                shown: Vec::new(),
            }
        }
    }

    impl Prompter for Script {
        fn ask(&mut self, prompt: &str) -> Answer {
            self.shown.push(prompt.to_string());
            self.answers.pop_front().unwrap_or(Answer::Eof)
        }
        fn say(&mut self, text: &str) {
            self.shown.push(text.to_string());
        }
    }

    #[test]
    fn parses_choices_and_ranges() {
        let (n, p) = parse_param("workers=1,2,4,8").unwrap();
        assert_eq!(n, "workers");
        assert_eq!(
            p,
            Param::Choices(vec![json!(1), json!(2), json!(4), json!(8)])
        );
        let (_, p) = parse_param("opt = adam, sgd ,true,0.5").unwrap();
        assert_eq!(
            p,
            Param::Choices(vec![json!("adam"), json!("sgd"), json!(true), json!(0.5)])
        );
        let (_, p) = parse_param("chunk=16..4096:log:int").unwrap();
        assert_eq!(
            p,
            Param::Range(Range {
                min: 16.0,
                max: 4096.0,
                scale: Scale::Log,
                kind: NumType::Int
            })
        );
        let (_, p) = parse_param("lr=0.0001..0.1:log").unwrap();
        assert!(matches!(
            p,
            Param::Range(Range {
                kind: NumType::Float,
                scale: Scale::Log,
                ..
            })
        ));
        let (_, p) = parse_param("n=1..8").unwrap();
        assert!(matches!(
            p,
            Param::Range(Range {
                kind: NumType::Int,
                scale: Scale::Linear,
                ..
            })
        ));
        let (_, p) = parse_param("f=0..1:float").unwrap();
        assert!(matches!(
            p,
            Param::Range(Range {
                kind: NumType::Float,
                ..
            })
        ));
    }

    #[test]
    fn rejects_bad_parameters() {
        for bad in [
            "workers",
            "1x=1,2",
            "w=",
            "w=1,,2",
            "w=1,1",
            "w=8..1",
            "w=0..10:log",
            "w=1.5..3:int",
            "w=a..3",
            "w=1..3:cubic",
            "w=1..3:log:log",
        ] {
            assert!(parse_param(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn values_are_checked_against_the_domain() {
        let (_, p) = parse_param("w=1,2,4").unwrap();
        assert_eq!(parse_value(&p, "4").unwrap(), json!(4));
        assert_eq!(parse_value(&p, "4.0").unwrap(), json!(4));
        assert!(parse_value(&p, "3").is_err());
        let (_, p) = parse_param("c=16..4096:log:int").unwrap();
        assert_eq!(parse_value(&p, "64").unwrap(), json!(64));
        assert!(parse_value(&p, "64.5").is_err());
        assert!(parse_value(&p, "8").is_err());
        assert_eq!(default_value(&p), json!(16));
        let (_, p) = parse_param("o=adam,sgd").unwrap();
        assert_eq!(parse_value(&p, "sgd").unwrap(), json!("sgd"));
        assert_eq!(default_value(&p), json!("adam"));
    }

    #[test]
    fn full_questionnaire_with_a_wrong_answer_reasked() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Script::new(&[
            "bad metric!", // re-asked
            "throughput",
            "",                                                // maximize
            "sh bench.sh --workers {workers} --chunk {chunk}", // command
            "",                                                // cwd
            "workers=1,2,4,8",
            "", // refused: {chunk} is not defined yet
            "chunk=16..4096:log:int",
            "",
            "",   // baseline workers = 1
            "64", // baseline chunk
            "big_chunks workers=2 chunk=1024",
            "",
            "",
            "3",
        ]);
        let v = ask_config(&mut s, dir.path()).unwrap();
        let shown = s.shown.join("\n");
        assert!(shown.contains("letters, digits"), "{shown}");
        assert!(shown.contains("{chunk} but no such parameter"), "{shown}");
        assert_eq!(v["objective"]["metric"], "throughput");
        assert_eq!(v["objective"]["direction"], "maximize");
        assert_eq!(v["baseline"], json!({"workers": 1, "chunk": 64}));
        assert_eq!(
            v["seeds"][0]["params"],
            json!({"workers": 2, "chunk": 1024})
        );
        assert_eq!(
            v["limits"],
            json!({"max_experiments": 40, "max_concurrency": 3})
        );
        let text = serde_json::to_string(&v).unwrap();
        let config = autoresearch_adapters::config::Config::from_json_str(
            &text,
            &dir.path().join("config.json"),
        )
        .unwrap();
        assert_eq!(config.search_space.len(), 2);
    }

    #[test]
    fn eof_aborts() {
        let mut s = Script::new(&["score"]);
        assert_eq!(ask_config(&mut s, Path::new(".")), Err(Abort::Eof));
    }

    #[test]
    fn yes_no() {
        let mut s = Script::new(&["", "maybe", "n"]);
        assert!(ask_yes_no(&mut s, "Go?", true).unwrap());
        assert!(!ask_yes_no(&mut s, "Go?", true).unwrap());
        assert!(s.shown.iter().any(|l| l.contains("expected y or n")));
    }
}
