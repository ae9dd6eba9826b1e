//! The configuration questionnaire of a new workdir: one question per required field, each
//! with a default where one makes sense, each answer checked as it is given (a bad answer is
//! re-asked with the reason). The answers become the JSON of `config.json` (fields in
//! `docs/config-reference.md`), which the caller validates as a whole with
//! `Config::from_json_str` before writing it.

use std::path::Path;

use autoresearch_adapters::config::{
    MAX_CONCURRENCY, PARAM_SYNTAX, Param, ParamSpec, ParamSyntaxError, Scale, check_template,
    is_metric_name, is_param_name, placeholders, value_to_raw,
};
use clap::ValueEnum;

use crate::cli::DirectionArg;
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
        "Is a higher or a lower metric better? (maximize/minimize, or max/min)",
        None,
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

    p.say(&format!("Search space: one parameter per line, as {PARAM_SYNTAX}. Giving a name again redefines it. An empty line ends the list."));
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
            parse_param(t).map(Some)
        })?;
        match done {
            None => break,
            Some((name, param)) => {
                if let Some(slot) = params.iter_mut().find(|(n, _)| *n == name) {
                    p.say(&format!("    {name} redefined: {}", describe(&param)));
                    slot.1 = param;
                } else {
                    p.say(&format!("    {name}: {}", describe(&param)));
                    params.push((name, param));
                }
            }
        }
    }

    let mut baseline = Map::new();
    for (name, param) in &params {
        let default = value_to_raw(&param.default_value());
        let value = ask_value(
            p,
            &format!("Baseline value of {name}"),
            Some(&default),
            |t| param.parse_value(t),
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

/// `maximize` or `minimize` (also `max`/`min`, any case): the words `--direction` takes.
pub fn parse_direction(t: &str) -> Result<String, String> {
    if t.is_empty() {
        return Err("a direction is required: maximize (higher is better) or minimize".into());
    }
    DirectionArg::from_str(t, true)
        .map(|d| d.direction().as_str().to_string())
        .map_err(|_| format!("expected maximize, minimize, max or min, found {t:?}"))
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
    check_template(t)?;
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

/// One parameter line, in the command-line syntax ([`ParamSpec`], shared with `--param`).
pub fn parse_param(t: &str) -> Result<(String, Param), String> {
    let spec: ParamSpec = t.parse().map_err(|e: ParamSyntaxError| e.to_string())?;
    Ok((spec.name, spec.param))
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
        let value = param.parse_value(v).map_err(|e| format!("{k}: {e}"))?;
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
        pub(super) fn new(lines: &[&str]) -> Self {
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
    fn parameter_lines_use_the_shared_syntax() {
        // The same text means the same thing here and in `--param`.
        let (n, p) = parse_param("workers=1..8").unwrap();
        assert_eq!(n, "workers");
        let flag: ParamSpec = "workers=1..8".parse().unwrap();
        assert_eq!(p, flag.param);
        let e = parse_param("cutoff=1-256").unwrap_err();
        assert!(e.contains("did you mean cutoff=1..256?"), "{e}");
        assert!(parse_param("w=").is_err());
    }

    #[test]
    fn direction_words() {
        for (t, d) in [
            ("max", "maximize"),
            ("MIN", "minimize"),
            ("minimize", "minimize"),
        ] {
            assert_eq!(parse_direction(t).unwrap(), d);
        }
        assert!(parse_direction("").is_err());
        assert!(parse_direction("up").is_err());
    }

    #[test]
    fn full_questionnaire_with_a_wrong_answer_reasked() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Script::new(&[
            "bad metric!", // re-asked
            "throughput",
            "",                                                // re-asked: no default
            "max",                                             // maximize
            "sh bench.sh --workers \"{workers}\"",             // refused: quoted placeholder
            "sh bench.sh --workers {workers} --chunk {chunk}", // command
            "",                                                // cwd
            "workers=1,2,4",
            "",             // refused: {chunk} is not defined yet
            "chunk=1-4096", // refused: did you mean
            "chunk=16..4096:log:int",
            "workers=1,2,4,8", // redefined
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
        assert!(shown.contains("direction is required"), "{shown}");
        assert!(shown.contains("inside double quotes"), "{shown}");
        assert!(shown.contains("did you mean chunk=1..4096?"), "{shown}");
        assert!(shown.contains("workers redefined"), "{shown}");
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
        let workers = config.search_space.get("workers").unwrap();
        assert!(workers.contains(&json!(8)), "the redefinition is kept");
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
