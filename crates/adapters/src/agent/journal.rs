//! The call journal: crash safety of agent calls.
//!
//! Before a call its intent (node, phase, attempt, prompt sha256, start time) is written; after
//! it, its answer (text, status, error, cost, duration). Both writes are atomic. On resume,
//! [`CallJournal::lookup`] tells whether a call for (node, phase, prompt hash) already has a
//! recorded answer, so it is re-used instead of paid for again; an attempt with an intent but
//! no answer (the engine died during the call) is made again.
//!
//! Files: `engine/nodes/<id>/agent/<phase>-<first 16 hex digits of the prompt's sha256>.json`,
//! one [`CallRecord`] per call (its retries are attempts inside it); run-level calls (`report`,
//! `ask`) go to `engine/agent/<phase>-<16 hex>.json` with an empty `node_id`.

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{AgentPhase, Cost};
use autoresearch_engine::nofollow::{create_dir_under, read_regular};

use crate::workdir::Workdir;

/// Largest journal file read (a reply is capped at 32 MiB of output).
const MAX_RECORD_BYTES: u64 = 128 << 20;

/// The sha256 of `text` in lowercase hex.
pub fn sha256_hex(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallStatus {
    /// A reply that passed the phase's schema.
    Valid,
    /// A reply that did not (the error says why); a retry may follow.
    Invalid,
    /// The agent failed (could not start, non-zero exit, reported error, unreadable output).
    Failed,
    /// The agent ran past `planner.agent.timeout_s`.
    Timeout,
}

/// The recorded answer of one attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallAnswer {
    /// How it ended.
    pub status: CallStatus,
    /// The reply text (empty when the agent failed).
    pub text: String,
    /// Why it is invalid or failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What it cost.
    pub cost: Cost,
    /// Agent turns, when reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub turns: Option<u64>,
    /// Wall time of the call.
    pub duration_s: f64,
    /// RFC 3339.
    pub finished_at: String,
}

/// One attempt of a call: its intent, then its answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptRecord {
    /// 1 for the first call, 2 for the first retry, ...
    pub attempt: u32,
    /// sha256 of the prompt this attempt sent (a retry's prompt carries the error).
    pub prompt_sha256: String,
    /// RFC 3339.
    pub started_at: String,
    /// `None` while the call runs (or when the engine died during it).
    pub answer: Option<CallAnswer>,
}

/// One agent call and its attempts (`engine/nodes/<id>/agent/<phase>-<hash>.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallRecord {
    /// Format version (1).
    pub schema_version: u32,
    /// The node planned from, applied or analysed (empty for a run-level call).
    pub node_id: String,
    /// The phase.
    pub phase: AgentPhase,
    /// sha256 of the call's original prompt: the call's identity.
    pub prompt_sha256: String,
    /// Attempts in order.
    pub attempts: Vec<AttemptRecord>,
}

impl CallRecord {
    /// The sum of the recorded attempts' costs.
    pub fn cost(&self) -> Cost {
        self.attempts
            .iter()
            .filter_map(|a| a.answer.as_ref().map(|x| x.cost))
            .sum()
    }
}

/// Errors of the journal's own I/O (an engine problem, never the agent's).
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The node id is not `[A-Za-z0-9._-]{1,128}` or is `.`/`..`.
    #[error("invalid node id {0:?}: expected [A-Za-z0-9._-]{{1,128}}, not . or ..")]
    BadNodeId(String),
    /// Reading or writing a journal file failed.
    #[error("agent call journal {}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A journal file is not a call record.
    #[error("agent call journal {}: not a call record ({message}); move it away to call the agent again", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
}

/// Whether `id` is a node id usable as a folder name: `[A-Za-z0-9._-]{1,128}`, not `.`/`..`.
pub fn is_safe_node_id(id: &str) -> bool {
    autoresearch_engine::spec::is_valid_id(id) && id != "." && id != ".."
}

/// The call journal of one node.
#[derive(Debug, Clone)]
pub struct CallJournal {
    node_id: String,
    workdir: PathBuf,
    dir: PathBuf,
}

impl CallJournal {
    /// The journal of `node_id` in `workdir` (`engine/nodes/<id>/agent/`, created on first write).
    pub fn new(workdir: &Path, node_id: &str) -> Result<Self, JournalError> {
        if !is_safe_node_id(node_id) {
            return Err(JournalError::BadNodeId(node_id.to_string()));
        }
        Ok(CallJournal {
            node_id: node_id.to_string(),
            workdir: workdir.to_path_buf(),
            dir: Workdir::new(workdir).node_dir(node_id).join("agent"),
        })
    }

    /// The journal of run-level calls (`report`, `ask`) in `workdir`: `engine/agent/`, created
    /// on first write; their records have an empty `node_id`.
    pub fn run_level(workdir: &Path) -> Self {
        CallJournal {
            node_id: String::new(),
            workdir: workdir.to_path_buf(),
            dir: Workdir::new(workdir).engine_dir().join("agent"),
        }
    }

    /// The journal folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file of the call (`phase`, `prompt_sha256`).
    pub fn path(&self, phase: AgentPhase, prompt_sha256: &str) -> PathBuf {
        let short = prompt_sha256.get(..16).unwrap_or(prompt_sha256);
        self.dir.join(format!("{}-{short}.json", phase.as_str()))
    }

    /// The record of the call (`phase`, `prompt_sha256`), if one was started.
    pub fn lookup(
        &self,
        phase: AgentPhase,
        prompt_sha256: &str,
    ) -> Result<Option<CallRecord>, JournalError> {
        let path = self.path(phase, prompt_sha256);
        let bytes = match read_regular(&path, MAX_RECORD_BYTES) {
            Ok(Some(b)) => b,
            Ok(None) => return Ok(None),
            Err(source) => return Err(JournalError::Io { path, source }),
        };
        let record: CallRecord =
            serde_json::from_slice(&bytes).map_err(|e| JournalError::Corrupt {
                path: path.clone(),
                message: e.to_string(),
            })?;
        // A record of another prompt whose hash shares the 16-digit prefix is not this call.
        if record.prompt_sha256 != prompt_sha256 || record.phase != phase {
            return Ok(None);
        }
        Ok(Some(record))
    }

    /// Every call record of `phase` for this node (any prompt), in file-name order.
    pub fn records(&self, phase: AgentPhase) -> Result<Vec<CallRecord>, JournalError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(JournalError::Io {
                    path: self.dir.clone(),
                    source,
                });
            }
        };
        let prefix = format!("{}-", phase.as_str());
        let mut names: Vec<String> = entries
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| n.starts_with(&prefix) && n.ends_with(".json"))
            .collect();
        names.sort();
        let mut out = Vec::new();
        for name in names {
            let path = self.dir.join(&name);
            let bytes = read_regular(&path, MAX_RECORD_BYTES)
                .and_then(|b| b.ok_or_else(|| io::ErrorKind::NotFound.into()))
                .map_err(|source| JournalError::Io {
                    path: path.clone(),
                    source,
                })?;
            let record = serde_json::from_slice(&bytes).map_err(|e| JournalError::Corrupt {
                path: path.clone(),
                message: e.to_string(),
            })?;
            out.push(record);
        }
        Ok(out)
    }

    /// Records the intent of `attempt` (before the call) and returns the updated record.
    pub fn begin(
        &self,
        phase: AgentPhase,
        prompt_sha256: &str,
        attempt: u32,
        attempt_prompt_sha256: &str,
    ) -> Result<CallRecord, JournalError> {
        let mut record = self.lookup(phase, prompt_sha256)?.unwrap_or(CallRecord {
            schema_version: 1,
            node_id: self.node_id.clone(),
            phase,
            prompt_sha256: prompt_sha256.to_string(),
            attempts: Vec::new(),
        });
        record.attempts.retain(|a| a.attempt < attempt);
        record.attempts.push(AttemptRecord {
            attempt,
            prompt_sha256: attempt_prompt_sha256.to_string(),
            started_at: now_rfc3339(),
            answer: None,
        });
        self.save(&record)?;
        Ok(record)
    }

    /// Records the answer of `attempt` (after the call).
    pub fn finish(
        &self,
        phase: AgentPhase,
        prompt_sha256: &str,
        attempt: u32,
        answer: CallAnswer,
    ) -> Result<CallRecord, JournalError> {
        let path = self.path(phase, prompt_sha256);
        let mut record = self
            .lookup(phase, prompt_sha256)?
            .ok_or_else(|| JournalError::Io {
                path: path.clone(),
                source: io::Error::new(
                    io::ErrorKind::NotFound,
                    "the call's intent was not recorded before its answer",
                ),
            })?;
        match record.attempts.iter_mut().find(|a| a.attempt == attempt) {
            Some(a) => a.answer = Some(answer),
            None => {
                return Err(JournalError::Io {
                    path,
                    source: io::Error::new(
                        io::ErrorKind::NotFound,
                        format!("attempt {attempt} was not recorded before its answer"),
                    ),
                });
            }
        }
        self.save(&record)?;
        Ok(record)
    }

    fn save(&self, record: &CallRecord) -> Result<(), JournalError> {
        let io_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| JournalError::Io { path, source }
        };
        create_dir_under(&self.workdir, &self.dir).map_err(io_err(&self.dir))?;
        let path = self.path(record.phase, &record.prompt_sha256);
        autoresearch_engine::atomic::write_json_atomic(&path, record).map_err(io_err(&path))
    }
}

/// The current time in RFC 3339 with milliseconds (the workflow's one clock format).
pub(crate) use crate::workflow::now_millis as now_rfc3339;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_empty_text() {
        assert_eq!(
            sha256_hex(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn intent_then_answer_then_lookup() {
        let tmp = tempfile::tempdir().unwrap();
        let j = CallJournal::new(tmp.path(), "003_x").unwrap();
        let key = sha256_hex("prompt");
        assert!(j.lookup(AgentPhase::Plan, &key).unwrap().is_none());
        let r = j.begin(AgentPhase::Plan, &key, 1, &key).unwrap();
        assert!(r.attempts[0].answer.is_none());
        let again = j.lookup(AgentPhase::Plan, &key).unwrap().unwrap();
        assert_eq!(again, r);
        let answer = CallAnswer {
            status: CallStatus::Valid,
            text: "{}".into(),
            error: None,
            cost: Cost::one_call(),
            turns: None,
            duration_s: 0.1,
            finished_at: now_rfc3339(),
        };
        j.finish(AgentPhase::Plan, &key, 1, answer.clone()).unwrap();
        let r = j.lookup(AgentPhase::Plan, &key).unwrap().unwrap();
        assert_eq!(r.attempts[0].answer.as_ref(), Some(&answer));
        assert!(j.lookup(AgentPhase::Analyze, &key).unwrap().is_none());
        assert_eq!(j.records(AgentPhase::Plan).unwrap().len(), 1);
        assert!(
            tmp.path()
                .join("engine/nodes/003_x/agent")
                .join(format!("plan-{}.json", &key[..16]))
                .is_file()
        );
    }

    #[test]
    fn a_planted_symlink_is_never_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        let wd = tmp.path().join("wd");
        std::fs::create_dir_all(wd.join("engine/nodes/007_s")).unwrap();
        std::os::unix::fs::symlink(&outside, wd.join("engine/nodes/007_s/agent")).unwrap();
        let j = CallJournal::new(&wd, "007_s").unwrap();
        let key = sha256_hex("p");
        let e = j.begin(AgentPhase::Plan, &key, 1, &key).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
    }

    #[test]
    fn unsafe_ids_are_refused() {
        for id in [".", "..", "a/b", "", "x y"] {
            assert!(CallJournal::new(Path::new("/tmp"), id).is_err(), "{id:?}");
        }
    }
}
