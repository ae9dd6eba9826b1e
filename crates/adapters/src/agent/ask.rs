//! A question about the run (`supervisor ask`, the session's `ask`): its prompt, the node ids a
//! question names, and the answer with its proposed queue actions.
//!
//! The answer is text (Markdown). It may end with one fenced JSON block of proposed queue
//! actions, which the user confirms before anything changes:
//!
//! ```json
//! {"actions": [{"action": "bump", "id": "012_x", "priority": -5},
//!              {"action": "drop", "id": "013_y"},
//!              {"action": "add", "name": "wider", "hypothesis": "…", "params": {"chunk": 64},
//!               "parent": "004_z", "priority": 0}]}
//! ```
//!
//! The last fenced block holding an object with `actions` counts; an answer without one
//! proposes nothing. An `add` is parameter-only (`changes` must be absent or null).

use std::collections::HashSet;
use std::fmt::Write as _;

use serde_json::{Map, Value};

use super::run_brief::{BriefPromptError, RunBrief, render_within};
use super::schema::{ProposedExperiment, SchemaError, describe, err, experiment};
use super::template::Template;

/// Longest accepted question, in bytes.
pub const MAX_QUESTION_BYTES: usize = 8 * 1024;

/// Most nodes whose files a question brings into the prompt.
pub const MAX_NAMED_NODES: usize = 5;

/// One file of a node, for the prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeFile {
    /// Its path relative to the workdir, e.g. `runs/014_x/stderr.log`.
    pub name: String,
    /// Its text.
    pub text: String,
    /// Whether its end matters (logs) rather than its beginning.
    pub tail: bool,
}

/// The files of a node named in the question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeFiles {
    /// Node id.
    pub id: String,
    /// Its status (`completed`, `failed`, ...).
    pub status: String,
    /// Its files (missing ones left out).
    pub files: Vec<NodeFile>,
}

/// The node ids `question` names, at most [`MAX_NAMED_NODES`], in order: a word that is a node
/// id, or a number that is a node's numeric prefix (`014` or `14` for `014_wider`).
pub fn named_nodes<'a>(question: &str, ids: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let ids: Vec<&str> = ids.into_iter().collect();
    let exact: HashSet<&str> = ids.iter().copied().collect();
    let mut out: Vec<String> = Vec::new();
    let words = question
        .split(|c: char| !(c.is_ascii_alphanumeric() || "._-".contains(c)))
        .map(|w| w.trim_end_matches(['.', '-', '_']))
        .filter(|w| !w.is_empty());
    for word in words {
        let found: Option<&str> = if exact.contains(word) {
            Some(word)
        } else if word.bytes().all(|b| b.is_ascii_digit()) && word.len() <= 9 {
            let n: u64 = word.parse().unwrap_or(u64::MAX);
            ids.iter().copied().find(|id| {
                id.split_once('_')
                    .and_then(|(d, _)| d.parse::<u64>().ok())
                    .is_some_and(|d| d == n)
            })
        } else {
            None
        };
        if let Some(id) = found
            && !out.iter().any(|o| o == id)
        {
            out.push(id.to_string());
            if out.len() == MAX_NAMED_NODES {
                break;
            }
        }
    }
    out
}

/// Renders the ask prompt within `max_bytes`: the run at the most detailed level that fits,
/// with the named nodes' files cut to fit as well (logs keep their end, other files their
/// beginning).
pub fn render_ask_prompt(
    brief: &RunBrief,
    question: &str,
    nodes: &[NodeFiles],
    template: &Template,
    max_bytes: usize,
) -> Result<String, BriefPromptError> {
    render_within(
        brief,
        template,
        max_bytes,
        "ask",
        ", or ask a shorter question about fewer experiments",
        |level| {
            vec![
                ("question", question.trim().to_string()),
                ("node_files", node_files_section(nodes, level * 200)),
            ]
        },
    )
}

fn node_files_section(nodes: &[NodeFiles], per_file: usize) -> String {
    if nodes.is_empty() {
        return "(the question names no experiment)\n".into();
    }
    let mut out = String::new();
    for n in nodes {
        let _ = writeln!(out, "### {} ({})", n.id, n.status);
        if n.files.is_empty() {
            out.push_str("(no files)\n");
        }
        for f in &n.files {
            let _ = writeln!(out, "`{}`:", f.name);
            out.push_str(&fenced_cut(&f.text, per_file, f.tail));
        }
        out.push('\n');
    }
    out
}

/// `text` in a fence, cut to `max` bytes at its end (`tail`) or its beginning.
fn fenced_cut(text: &str, max: usize, tail: bool) -> String {
    if text.trim().is_empty() {
        return "(empty)\n".into();
    }
    let body = text.replace("```", "'''");
    let (body, note) = if body.len() <= max {
        (body, String::new())
    } else if tail {
        let mut start = body.len() - max;
        while !body.is_char_boundary(start) {
            start += 1;
        }
        (
            body[start..].to_string(),
            format!("({start} earlier bytes not shown)\n"),
        )
    } else {
        let mut end = max;
        while !body.is_char_boundary(end) {
            end -= 1;
        }
        let rest = body.len() - end;
        (
            body[..end].to_string(),
            format!("({rest} more bytes not shown)\n"),
        )
    };
    if tail {
        format!("{note}```\n{}\n```\n", body.trim_end())
    } else {
        format!("```\n{}\n```\n{note}", body.trim_end())
    }
}

/// A queue change the agent proposes.
#[derive(Debug, Clone, PartialEq)]
pub enum QueueAction {
    /// Set a queued experiment's priority.
    Bump {
        /// Node id.
        id: String,
        /// New priority (lower runs first).
        priority: f64,
    },
    /// Remove a queued experiment.
    Drop {
        /// Node id.
        id: String,
    },
    /// Queue a new parameter-only experiment.
    Add(ProposedExperiment),
}

impl QueueAction {
    /// One line for the user, e.g. `bump 012_x to priority -5`.
    pub fn describe(&self) -> String {
        match self {
            QueueAction::Bump { id, priority } => {
                format!(
                    "bump {id} to priority {}",
                    crate::config::format_number(*priority)
                )
            }
            QueueAction::Drop { id } => format!("drop {id} from the queue"),
            QueueAction::Add(e) => {
                let mut s = format!(
                    "add experiment `{}` ({})",
                    e.name,
                    super::plan_prompt::params_text(&e.params)
                );
                if let Some(p) = &e.parent {
                    let _ = write!(s, " on {p}");
                }
                if let Some(p) = e.priority {
                    let _ = write!(s, ", priority {}", crate::config::format_number(p));
                }
                if !e.hypothesis.trim().is_empty() {
                    let _ = write!(s, ": {}", e.hypothesis.trim());
                }
                s
            }
        }
    }
}

/// A checked answer to a question.
#[derive(Debug, Clone, PartialEq)]
pub struct AskAnswer {
    /// The answer as the agent wrote it.
    pub text: String,
    /// The queue actions it proposes (none when it has no actions block).
    pub actions: Vec<QueueAction>,
}

/// Checks an answer: not empty; its last fenced `{"actions": […]}` block, if any, matches the
/// schema. The error is shown to the agent on a retry.
pub fn parse_ask(text: &str) -> Result<AskAnswer, String> {
    if text.trim().is_empty() {
        return Err("the answer is empty; expected an answer in plain text".into());
    }
    let block = super::reply::fenced_objects(text)
        .into_iter()
        .rev()
        .find(|m| m.contains_key("actions"));
    let actions = match block {
        None => Vec::new(),
        Some(map) => actions(&map).map_err(|e| e.to_string())?,
    };
    Ok(AskAnswer {
        text: text.trim_end().to_string(),
        actions,
    })
}

fn actions(map: &Map<String, Value>) -> Result<Vec<QueueAction>, SchemaError> {
    let items = match map.get("actions") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(other) => {
            return Err(err(
                "actions",
                format!("expected an array, found {}", describe(other)),
            ));
        }
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| action(&format!("actions[{i}]"), item))
        .collect()
}

fn action(at: &str, item: &Value) -> Result<QueueAction, SchemaError> {
    let Value::Object(map) = item else {
        return Err(err(
            at,
            format!("expected an object, found {}", describe(item)),
        ));
    };
    let id = || match map.get("id") {
        Some(Value::String(s)) if crate::agent::journal::is_safe_node_id(s) => Ok(s.clone()),
        Some(other) => Err(err(
            format!("{at}.id"),
            format!("expected a queued node id, found {}", describe(other)),
        )),
        None => Err(err(
            format!("{at}.id"),
            "missing; expected a queued node id",
        )),
    };
    match map.get("action").and_then(Value::as_str) {
        Some("bump") => {
            let id = id()?;
            let priority = match map.get("priority") {
                Some(Value::Number(n)) if n.as_f64().is_some_and(f64::is_finite) => {
                    n.as_f64().unwrap_or_default()
                }
                Some(other) => {
                    return Err(err(
                        format!("{at}.priority"),
                        format!("expected a number, found {}", describe(other)),
                    ));
                }
                None => {
                    return Err(err(
                        format!("{at}.priority"),
                        "missing; expected a number (lower runs first)",
                    ));
                }
            };
            Ok(QueueAction::Bump { id, priority })
        }
        Some("drop") => Ok(QueueAction::Drop { id: id()? }),
        Some("add") => {
            let e = experiment(at, item)?;
            if e.changes.is_some() {
                return Err(err(
                    format!("{at}.changes"),
                    "an experiment added from a question cannot change code; give params only \
                     (or leave the code change to the planner)",
                ));
            }
            Ok(QueueAction::Add(e))
        }
        _ => Err(err(
            format!("{at}.action"),
            format!(
                "expected \"bump\", \"drop\" or \"add\", found {}",
                map.get("action").map_or("nothing".into(), describe)
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn questions_name_nodes_by_id_or_number() {
        let ids = ["000_baseline", "014_wider", "015_x"];
        assert_eq!(
            named_nodes("why did 014 fail? and 000_baseline.", ids),
            ["014_wider", "000_baseline"]
        );
        assert_eq!(named_nodes("compare 15 with 15_x", ids), ["015_x"]);
        assert!(named_nodes("what next?", ids).is_empty());
    }

    #[test]
    fn actions_are_taken_from_the_last_actions_block() {
        let text = "Run 012 first.\n```json\n{\"other\": 1}\n```\n```json\n{\"actions\": [\
                    {\"action\": \"bump\", \"id\": \"012_x\", \"priority\": -5},\
                    {\"action\": \"drop\", \"id\": \"013_y\"},\
                    {\"action\": \"add\", \"name\": \"wide\", \"hypothesis\": \"h\", \
                     \"params\": {\"chunk\": 64}, \"parent\": \"004_z\"}]}\n```\n";
        let a = parse_ask(text).unwrap();
        assert_eq!(a.actions.len(), 3);
        assert_eq!(
            a.actions[0],
            QueueAction::Bump {
                id: "012_x".into(),
                priority: -5.0
            }
        );
        assert_eq!(a.actions[0].describe(), "bump 012_x to priority -5");
        assert!(a.actions[2].describe().contains("(chunk=64) on 004_z"));
        assert!(parse_ask("No change needed.").unwrap().actions.is_empty());
    }

    #[test]
    fn bad_actions_are_precise_errors() {
        let e = parse_ask("```json\n{\"actions\": [{\"action\": \"bump\", \"id\": \"a b\"}]}\n```")
            .unwrap_err();
        assert!(
            e.starts_with("actions[0].id: expected a queued node id"),
            "{e}"
        );
        let e = parse_ask(
            "```json\n{\"actions\": [{\"action\": \"add\", \"name\": \"n\", \"hypothesis\": \"h\", \
             \"changes\": \"edit main.py\"}]}\n```",
        )
        .unwrap_err();
        assert!(e.starts_with("actions[0].changes:"), "{e}");
        let e = parse_ask("```json\n{\"actions\": [{\"action\": \"run\"}]}\n```").unwrap_err();
        assert!(e.contains("expected \"bump\", \"drop\" or \"add\""), "{e}");
    }

    #[test]
    fn files_are_cut_at_the_right_end() {
        let log = format!("{}\nTraceback: NameError\n", "x".repeat(5000));
        let s = fenced_cut(&log, 100, true);
        assert!(
            s.contains("NameError") && s.contains("earlier bytes not shown"),
            "{s}"
        );
        let s = fenced_cut(&format!("{{\"a\": 1}}{}", "y".repeat(5000)), 100, false);
        assert!(
            s.contains("{\"a\": 1}") && s.contains("more bytes not shown"),
            "{s}"
        );
    }
}
