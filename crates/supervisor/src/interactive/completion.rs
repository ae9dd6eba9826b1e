//! The rustyline helper of the session: tab completion of command names and node ids (every
//! node for `show` and `logs`, the queued ones for `bump` and `drop`), a grey hint with the
//! arguments a command expects, no validation (every line is accepted; the command parser
//! reports mistakes).

use std::borrow::Cow;
use std::path::PathBuf;

use rustyline::completion::{Completer, Pair};
use rustyline::highlight::{CmdKind, Highlighter};
use rustyline::hint::Hinter;
use rustyline::validate::Validator;
use rustyline::{Context, Helper};

use autoresearch_adapters::workdir::Workdir;

use clap::ValueEnum;

use super::commands::{commands, takes_node_id, takes_queued_id};
use super::limits::LimitKey;
use super::style;
use crate::commands::queue;

/// Completion and hints for the session prompt.
#[derive(Debug)]
pub struct SessionHelper {
    workdir: PathBuf,
}

impl SessionHelper {
    /// A helper completing the node ids of the workdir at `workdir`.
    pub fn new(workdir: PathBuf) -> Self {
        SessionHelper { workdir }
    }

    /// Ids of the queued nodes (the queue of a running engine, else the checkpoint's) starting
    /// with `prefix`, sorted.
    pub fn queued_ids(&self, prefix: &str) -> Vec<String> {
        let mut ids: Vec<String> = queue::list(&self.workdir)
            .unwrap_or_default()
            .into_iter()
            .map(|e| e.id)
            .filter(|id| id.starts_with(prefix))
            .collect();
        ids.sort();
        ids
    }

    /// Node ids (directory names under `engine/nodes/`) starting with `prefix`, sorted.
    pub fn node_ids(&self, prefix: &str) -> Vec<String> {
        let mut ids: Vec<String> = std::fs::read_dir(Workdir::new(&self.workdir).nodes_dir())
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|name| name.starts_with(prefix) && !name.starts_with('.'))
            .collect();
        ids.sort();
        ids
    }

    /// Start of the word being completed and the candidates for `line[..pos]`.
    pub fn candidates(&self, line: &str, pos: usize) -> (usize, Vec<Pair>) {
        let before = &line[..pos];
        let start = before
            .rfind(char::is_whitespace)
            .map(|i| i + 1)
            .unwrap_or(0);
        let word = &before[start..];
        let previous: Vec<&str> = before[..start].split_whitespace().collect();
        let pairs = match previous.as_slice() {
            [] => commands()
                .iter()
                .filter(|c| c.name.starts_with(word))
                .map(|c| Pair {
                    display: c.name.clone(),
                    replacement: if c.args.is_empty() {
                        c.name.clone()
                    } else {
                        format!("{} ", c.name)
                    },
                })
                .collect(),
            [cmd] if takes_node_id(cmd) => {
                let ids = if takes_queued_id(cmd) {
                    self.queued_ids(word)
                } else {
                    self.node_ids(word)
                };
                ids.into_iter()
                    .map(|id| Pair {
                        replacement: format!("{id} "),
                        display: id,
                    })
                    .collect()
            }
            [cmd] if *cmd == "set" => LimitKey::value_variants()
                .iter()
                .map(|k| k.name())
                .filter(|k| k.starts_with(word))
                .map(|k| Pair {
                    display: k.to_owned(),
                    replacement: format!("{k} "),
                })
                .collect(),
            [cmd] if *cmd == "help" || *cmd == "?" => commands()
                .iter()
                .filter(|c| c.name.starts_with(word))
                .map(|c| Pair {
                    display: c.name.clone(),
                    replacement: c.name.clone(),
                })
                .collect(),
            _ => Vec::new(),
        };
        (start, pairs)
    }

    /// The grey text shown after the cursor: the rest of a unique command name, or the
    /// arguments a command still needs.
    pub fn hint_for(&self, line: &str, pos: usize) -> Option<String> {
        if pos != line.len() || line.trim().is_empty() {
            return None;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let ends_with_space = line.ends_with(char::is_whitespace);
        if words.len() == 1 && !ends_with_space {
            let matches: Vec<_> = commands()
                .iter()
                .filter(|c| c.name.starts_with(words[0]))
                .collect();
            if let [only] = matches.as_slice() {
                let rest = &only.name[words[0].len()..];
                return Some(if only.args.is_empty() {
                    rest.to_string()
                } else {
                    format!("{rest} {}", only.args)
                });
            }
            return None;
        }
        let cmd = commands().iter().find(|c| c.name == words[0])?;
        let args: Vec<&str> = cmd.args.split_whitespace().collect();
        let given = words.len() - 1;
        if !ends_with_space || given >= args.len() {
            return None;
        }
        Some(args[given..].join(" "))
    }
}

impl Completer for SessionHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        Ok(self.candidates(line, pos))
    }
}

impl Hinter for SessionHelper {
    type Hint = String;

    fn hint(&self, line: &str, pos: usize, _ctx: &Context<'_>) -> Option<String> {
        self.hint_for(line, pos)
    }
}

impl Highlighter for SessionHelper {
    fn highlight_hint<'h>(&self, hint: &'h str) -> Cow<'h, str> {
        if style::enabled() {
            Cow::Owned(style::dim(hint))
        } else {
            Cow::Borrowed(hint)
        }
    }

    fn highlight_char(&self, _line: &str, _pos: usize, _kind: CmdKind) -> bool {
        false
    }
}

impl Validator for SessionHelper {}

impl Helper for SessionHelper {}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stopped workdir with four nodes, two of them queued in the checkpoint.
    fn helper() -> (tempfile::TempDir, SessionHelper) {
        let dir = tempfile::tempdir().unwrap();
        let nodes = dir.path().join("engine").join("nodes");
        for id in ["000_baseline", "001_big", "002_bigger", "010_other"] {
            std::fs::create_dir_all(nodes.join(id)).unwrap();
        }
        std::fs::write(nodes.join("000_file"), "").unwrap();
        let spec = |id: &str, p: u32| {
            format!(r#"{{"id": "{id}", "priority": {p}, "kind": "experiment", "payload": {{}}}}"#)
        };
        std::fs::write(
            dir.path().join("engine").join("checkpoint.json"),
            format!(
                r#"{{"schema_version": 1, "status": "interrupted", "updated_at": "2026-01-01T00:00:00Z", "queued": [{}, {}], "running": []}}"#,
                spec("002_bigger", 1),
                spec("010_other", 2)
            ),
        )
        .unwrap();
        let h = SessionHelper::new(dir.path().to_path_buf());
        (dir, h)
    }

    fn names(pairs: &[Pair]) -> Vec<&str> {
        pairs.iter().map(|p| p.replacement.as_str()).collect()
    }

    #[test]
    fn completes_commands() {
        let (_d, h) = helper();
        let (start, c) = h.candidates("st", 2);
        assert_eq!(start, 0);
        assert_eq!(names(&c), ["status", "stop", "start"]);
        let (_, c) = h.candidates("bu", 2);
        assert_eq!(names(&c), ["bump "]);
        let (_, c) = h.candidates("", 0);
        assert_eq!(c.len(), commands().len());
        let (_, c) = h.candidates("set max_e", 9);
        assert_eq!(names(&c), ["max_experiments "]);
        let (_, c) = h.candidates("help bu", 7);
        assert_eq!(names(&c), ["bump"]);
    }

    #[test]
    fn completes_node_ids_after_id_commands() {
        let (_d, h) = helper();
        // show and logs: every node.
        let (start, c) = h.candidates("show 00", 7);
        assert_eq!(start, 5);
        assert_eq!(names(&c), ["000_baseline ", "001_big ", "002_bigger "]);
        let (_, c) = h.candidates("logs ", 5);
        assert_eq!(c.len(), 4);
        // bump and drop: only the queued ones.
        let (_, c) = h.candidates("bump  00", 8);
        assert_eq!(names(&c), ["002_bigger "]);
        let (_, c) = h.candidates("drop ", 5);
        assert_eq!(names(&c), ["002_bigger ", "010_other "]);
        assert!(
            h.candidates("bump 001", 8).1.is_empty(),
            "001_big is not queued"
        );
        // Not after commands without ids, nor for the priority.
        assert!(h.candidates("status 0", 8).1.is_empty());
        assert!(h.candidates("bump 002_bigger 0", 17).1.is_empty());
        // Completing in the middle of the line uses the text before the cursor.
        let (start, c) = h.candidates("drop 01 -5", 7);
        assert_eq!((start, names(&c)), (5, vec!["010_other "]));
    }

    #[test]
    fn hints_arguments() {
        let (_d, h) = helper();
        assert_eq!(h.hint_for("bu", 2).as_deref(), Some("mp <id> <priority>"));
        assert_eq!(h.hint_for("bump ", 5).as_deref(), Some("<id> <priority>"));
        assert_eq!(
            h.hint_for("bump 001_big ", 13).as_deref(),
            Some("<priority>")
        );
        assert_eq!(h.hint_for("bump 001_big 3", 14), None);
        assert_eq!(h.hint_for("st", 2), None);
        assert_eq!(h.hint_for("he", 2).as_deref(), Some("lp [command]"));
        assert_eq!(h.hint_for("ex", 2).as_deref(), Some("tend <n>"));
        assert_eq!(h.hint_for("ext", 3).as_deref(), Some("end <n>"));
    }
}
