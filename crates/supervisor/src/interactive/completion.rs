//! The rustyline helper of the session: tab completion of command names and node ids (the
//! directory names under `engine/nodes/`), a grey hint with the arguments a command expects,
//! no validation (every line is accepted; the command parser reports mistakes).

use std::borrow::Cow;
use std::path::PathBuf;

use rustyline::completion::{Completer, Pair};
use rustyline::highlight::{CmdKind, Highlighter};
use rustyline::hint::Hinter;
use rustyline::validate::Validator;
use rustyline::{Context, Helper};

use super::commands::{COMMANDS, takes_node_id};
use super::style;

/// Completion and hints for the session prompt.
pub struct SessionHelper {
    nodes_dir: PathBuf,
}

impl SessionHelper {
    /// A helper completing the node ids of the workdir whose `engine/nodes/` is `nodes_dir`.
    pub fn new(nodes_dir: PathBuf) -> Self {
        SessionHelper { nodes_dir }
    }

    /// Node ids (directory names under `engine/nodes/`) starting with `prefix`, sorted.
    pub fn node_ids(&self, prefix: &str) -> Vec<String> {
        let mut ids: Vec<String> = std::fs::read_dir(&self.nodes_dir)
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
            [] => COMMANDS
                .iter()
                .filter(|c| c.name.starts_with(word))
                .map(|c| Pair {
                    display: c.name.to_string(),
                    replacement: if c.args.is_empty() {
                        c.name.to_string()
                    } else {
                        format!("{} ", c.name)
                    },
                })
                .collect(),
            [cmd] if takes_node_id(cmd) => self
                .node_ids(word)
                .into_iter()
                .map(|id| Pair {
                    replacement: format!("{id} "),
                    display: id,
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
            let matches: Vec<_> = COMMANDS
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
        let cmd = COMMANDS.iter().find(|c| c.name == words[0])?;
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

    fn helper() -> (tempfile::TempDir, SessionHelper) {
        let dir = tempfile::tempdir().unwrap();
        for id in ["000_baseline", "001_big", "002_bigger", "010_other"] {
            std::fs::create_dir_all(dir.path().join(id)).unwrap();
        }
        std::fs::write(dir.path().join("000_file"), "").unwrap();
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
        assert_eq!(c.len(), COMMANDS.len());
    }

    #[test]
    fn completes_node_ids_after_id_commands() {
        let (_d, h) = helper();
        let (start, c) = h.candidates("show 00", 7);
        assert_eq!(start, 5);
        assert_eq!(names(&c), ["000_baseline ", "001_big ", "002_bigger "]);
        let (_, c) = h.candidates("bump  001", 9);
        assert_eq!(names(&c), ["001_big "]);
        let (_, c) = h.candidates("logs ", 5);
        assert_eq!(c.len(), 4);
        // Not after commands without ids, nor for the priority.
        assert!(h.candidates("status 0", 8).1.is_empty());
        assert!(h.candidates("bump 001_big 0", 14).1.is_empty());
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
        assert_eq!(h.hint_for("he", 2).as_deref(), Some("lp"));
    }
}
