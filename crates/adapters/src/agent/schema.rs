//! The answers the agent must give, as typed structs, and their checks with precise errors
//! (`experiments[2].params: expected an object, found "fast"`).
//!
//! `plan`: `{"action":"launch"|"stop","reasoning":"…","experiments":[{"name","hypothesis",
//! "params":{…},"changes":"…"|null,"parent":"<node id>"|null,"priority":number?}]}`.
//! `analyze`: `{"analysis":"<markdown>","findings":["…"]}`. Keys the schema does not name are
//! ignored (models add commentary fields; refusing them would buy a paid retry for nothing).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Longest accepted experiment name.
pub const MAX_NAME_CHARS: usize = 80;

/// A field of the answer that does not match the schema.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct SchemaError {
    /// Where, e.g. `experiments[2].params` (`(answer)` for the whole object).
    pub path: String,
    /// What was expected and found.
    pub message: String,
}

fn err(path: impl Into<String>, message: impl Into<String>) -> SchemaError {
    SchemaError {
        path: path.into(),
        message: message.into(),
    }
}

/// A JSON value's text for "found …", shortened to 60 characters.
pub fn describe(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 60 {
        format!("{}…", text.chars().take(60).collect::<String>())
    } else {
        text
    }
}

/// `launch` or `stop`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PlanAction {
    /// Run the proposed experiments.
    Launch,
    /// Nothing worth trying is left.
    Stop,
}

/// A valid `plan` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanReply {
    /// Launch or stop.
    pub action: PlanAction,
    /// The agent's reasoning (may be empty).
    pub reasoning: String,
    /// The proposals (empty for `stop`; at least one for `launch`).
    pub experiments: Vec<ProposedExperiment>,
}

/// One proposal of a `plan` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProposedExperiment {
    /// Short name (1–80 characters; sanitized into the node id by the workflow).
    pub name: String,
    /// Why it might help.
    pub hypothesis: String,
    /// Parameter values (may be empty: parameters not given come from the parent).
    pub params: Map<String, Value>,
    /// Instruction for the apply phase, given to it verbatim; `None` for parameter-only.
    pub changes: Option<String>,
    /// The node it builds on (a node id); `None` for the node planned from.
    pub parent: Option<String>,
    /// Queue priority (lower runs first).
    pub priority: Option<f64>,
}

/// A valid `analyze` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnalyzeReply {
    /// Markdown written to `runs/<id>/analysis.md`.
    pub analysis: String,
    /// Established facts, one sentence each.
    pub findings: Vec<String>,
}

impl PlanReply {
    /// Checks a parsed answer against the plan schema.
    pub fn from_json(map: &Map<String, Value>) -> Result<PlanReply, SchemaError> {
        let action = match map.get("action") {
            Some(Value::String(s)) if s == "launch" => PlanAction::Launch,
            Some(Value::String(s)) if s == "stop" => PlanAction::Stop,
            Some(other) => {
                return Err(err(
                    "action",
                    format!("expected \"launch\" or \"stop\", found {}", describe(other)),
                ));
            }
            None => return Err(err("action", "missing; expected \"launch\" or \"stop\"")),
        };
        let reasoning = opt_string(map, "reasoning", "reasoning")?.unwrap_or_default();
        let experiments = match map.get("experiments") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, item)| experiment(i, item))
                .collect::<Result<_, _>>()?,
            Some(other) => {
                return Err(err(
                    "experiments",
                    format!("expected an array, found {}", describe(other)),
                ));
            }
        };
        if action == PlanAction::Launch && experiments.is_empty() {
            return Err(err(
                "experiments",
                "expected at least one experiment when action is \"launch\" (answer \
                 \"stop\" when nothing is worth trying)",
            ));
        }
        Ok(PlanReply {
            action,
            reasoning,
            experiments: if action == PlanAction::Stop {
                Vec::new()
            } else {
                experiments
            },
        })
    }
}

fn experiment(i: usize, item: &Value) -> Result<ProposedExperiment, SchemaError> {
    let at = |field: &str| format!("experiments[{i}].{field}");
    let Value::Object(map) = item else {
        return Err(err(
            format!("experiments[{i}]"),
            format!("expected an object, found {}", describe(item)),
        ));
    };
    let name = match map.get("name") {
        Some(Value::String(s)) if !s.trim().is_empty() => {
            if s.chars().count() > MAX_NAME_CHARS {
                return Err(err(
                    at("name"),
                    format!(
                        "expected at most {MAX_NAME_CHARS} characters, found {}",
                        s.chars().count()
                    ),
                ));
            }
            s.trim().to_string()
        }
        Some(other) => {
            return Err(err(
                at("name"),
                format!("expected a non-empty string, found {}", describe(other)),
            ));
        }
        None => return Err(err(at("name"), "missing; expected a short name")),
    };
    let hypothesis = match map.get("hypothesis") {
        Some(Value::String(s)) => s.clone(),
        Some(other) => {
            return Err(err(
                at("hypothesis"),
                format!("expected a string, found {}", describe(other)),
            ));
        }
        None => return Err(err(at("hypothesis"), "missing; expected why it might help")),
    };
    let params = match map.get("params") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(p)) => p.clone(),
        Some(other) => {
            return Err(err(
                at("params"),
                format!("expected an object, found {}", describe(other)),
            ));
        }
    };
    let changes = opt_string(map, "changes", &at("changes"))?.filter(|c| !c.trim().is_empty());
    let parent = opt_string(map, "parent", &at("parent"))?;
    if let Some(p) = &parent
        && !autoresearch_engine::spec::is_valid_id(p)
    {
        return Err(err(
            at("parent"),
            format!(
                "expected a node id from the history (letters, digits, `.`, `_`, `-`), found {}",
                describe(&Value::String(p.clone()))
            ),
        ));
    }
    let priority = match map.get("priority") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => n.as_f64().filter(|x| x.is_finite()),
        Some(other) => {
            return Err(err(
                at("priority"),
                format!("expected a number, found {}", describe(other)),
            ));
        }
    };
    Ok(ProposedExperiment {
        name,
        hypothesis,
        params,
        changes,
        parent,
        priority,
    })
}

fn opt_string(
    map: &Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<String>, SchemaError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(err(
            path,
            format!("expected a string or null, found {}", describe(other)),
        )),
    }
}

impl AnalyzeReply {
    /// Checks a parsed answer against the analyze schema.
    pub fn from_json(map: &Map<String, Value>) -> Result<AnalyzeReply, SchemaError> {
        let analysis = match map.get("analysis") {
            Some(Value::String(s)) => s.clone(),
            Some(other) => {
                return Err(err(
                    "analysis",
                    format!("expected a markdown string, found {}", describe(other)),
                ));
            }
            None => return Err(err("analysis", "missing; expected a markdown string")),
        };
        let findings = match map.get("findings") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Value::String(s) => Ok(s.clone()),
                    other => Err(err(
                        format!("findings[{i}]"),
                        format!("expected a string, found {}", describe(other)),
                    )),
                })
                .collect::<Result<_, _>>()?,
            Some(other) => {
                return Err(err(
                    "findings",
                    format!("expected an array of strings, found {}", describe(other)),
                ));
            }
        };
        Ok(AnalyzeReply { analysis, findings })
    }
}

/// Parses and checks a `plan` answer text (extraction, then the schema).
pub fn parse_plan(text: &str) -> Result<PlanReply, String> {
    let map = super::reply::extract_json(text)?;
    PlanReply::from_json(&map).map_err(|e| e.to_string())
}

/// Parses and checks an `analyze` answer text.
pub fn parse_analyze(text: &str) -> Result<AnalyzeReply, String> {
    let map = super::reply::extract_json(text)?;
    AnalyzeReply::from_json(&map).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn plan(v: Value) -> Result<PlanReply, String> {
        PlanReply::from_json(v.as_object().unwrap()).map_err(|e| e.to_string())
    }

    #[test]
    fn a_full_plan_is_typed() {
        let p = plan(json!({"action":"launch","reasoning":"r","experiments":[
            {"name":"buf","hypothesis":"h","params":{"n":2},"changes":"use a buffer","parent":"003_x","priority":-1},
            {"name":"p","hypothesis":"h2","params":{"n":4}}
        ]}))
        .unwrap();
        assert_eq!(p.action, PlanAction::Launch);
        assert_eq!(p.experiments[0].changes.as_deref(), Some("use a buffer"));
        assert_eq!(p.experiments[0].parent.as_deref(), Some("003_x"));
        assert_eq!(p.experiments[0].priority, Some(-1.0));
        assert_eq!(p.experiments[1].changes, None);
    }

    #[test]
    fn precise_errors() {
        let e = plan(json!({"action":"launch","experiments":[
            {"name":"a","hypothesis":"h"},{"name":"b","hypothesis":"h"},
            {"name":"c","hypothesis":"h","params":"fast"}]}))
        .unwrap_err();
        assert_eq!(
            e,
            "experiments[2].params: expected an object, found \"fast\""
        );
        let e = plan(json!({"action":"go"})).unwrap_err();
        assert_eq!(e, "action: expected \"launch\" or \"stop\", found \"go\"");
        let e = plan(json!({"action":"launch","experiments":[]})).unwrap_err();
        assert!(e.starts_with("experiments: expected at least one"), "{e}");
        let e = plan(json!({"action":"launch","experiments":[{"name":"a","hypothesis":"h","parent":"../x"}]})).unwrap_err();
        assert!(
            e.starts_with("experiments[0].parent: expected a node id"),
            "{e}"
        );
        let e = plan(json!({"action":"launch","experiments":[{"hypothesis":"h"}]})).unwrap_err();
        assert!(e.starts_with("experiments[0].name: missing"), "{e}");
        let e = plan(json!({"action":"launch","experiments":[{"name":"a","hypothesis":"h","priority":"high"}]})).unwrap_err();
        assert_eq!(
            e,
            "experiments[0].priority: expected a number, found \"high\""
        );
    }

    #[test]
    fn stop_needs_no_experiments() {
        let p = plan(json!({"action":"stop","reasoning":"done"})).unwrap();
        assert_eq!(p.action, PlanAction::Stop);
        assert!(p.experiments.is_empty());
    }

    #[test]
    fn analyze_schema() {
        let a = parse_analyze("```json\n{\"analysis\":\"# A\",\"findings\":[\"x is slow\"]}\n```")
            .unwrap();
        assert_eq!(a.findings, vec!["x is slow"]);
        let e = parse_analyze("{\"analysis\":\"a\",\"findings\":[1]}").unwrap_err();
        assert_eq!(e, "findings[0]: expected a string, found 1");
    }
}
