//! The human-readable log of agent calls: `logs/agent/<node>_<phase>_{prompt.md,output.md,
//! raw.json}` (a retry adds `_retry<N>` after the phase). `prompt.md` is written before the call,
//! so a call that hangs shows what it was asked; `output.md` (duration, cost, status, then the
//! reply) and `raw.json` (argv, exit status, stdout, stderr) after it.

use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::AgentPhase;
use super::journal::CallAnswer;
use super::runner::RawOutput;

/// Where one attempt's log files go.
#[derive(Debug, Clone)]
pub struct CallLog {
    workdir: PathBuf,
    stem: PathBuf,
}

/// `raw.json`: the process's raw facts.
#[derive(Debug, Serialize)]
struct RawRecord<'a> {
    argv: &'a [String],
    cwd: &'a Path,
    exit_code: Option<i32>,
    signal: Option<i32>,
    duration_s: f64,
    stdout: String,
    stderr: String,
}

impl CallLog {
    /// The log of `attempt` of the call (`node_id`, `phase`) in `workdir`.
    pub fn new(workdir: &Path, node_id: &str, phase: AgentPhase, attempt: u32) -> Self {
        let retry = if attempt > 1 {
            format!("_retry{}", attempt - 1)
        } else {
            String::new()
        };
        CallLog {
            workdir: workdir.to_path_buf(),
            stem: workdir
                .join("logs")
                .join("agent")
                .join(format!("{node_id}_{}{retry}", phase.as_str())),
        }
    }

    /// `…_prompt.md`.
    pub fn prompt_path(&self) -> PathBuf {
        self.with_suffix("prompt.md")
    }
    /// `…_output.md`.
    pub fn output_path(&self) -> PathBuf {
        self.with_suffix("output.md")
    }
    /// `…_raw.json`.
    pub fn raw_path(&self) -> PathBuf {
        self.with_suffix("raw.json")
    }

    fn with_suffix(&self, suffix: &str) -> PathBuf {
        let mut name = self.stem.file_name().unwrap_or_default().to_os_string();
        name.push("_");
        name.push(suffix);
        self.stem.with_file_name(name)
    }

    /// Writes the prompt (before the call).
    pub fn write_prompt(&self, prompt: &str) -> io::Result<()> {
        if let Some(dir) = self.stem.parent() {
            autoresearch_engine::nofollow::create_dir_under(&self.workdir, dir)?;
        }
        autoresearch_engine::atomic::write_atomic(&self.prompt_path(), prompt.as_bytes())
    }

    /// Writes the outcome (after the call): `output.md` always, `raw.json` when a process ran
    /// to the end.
    pub fn write_outcome(
        &self,
        argv: &[String],
        cwd: &Path,
        answer: &CallAnswer,
        raw: Option<&RawOutput>,
    ) -> io::Result<()> {
        if let Some(dir) = self.stem.parent() {
            autoresearch_engine::nofollow::create_dir_under(&self.workdir, dir)?;
        }
        let mut md = format!(
            "<!-- status: {:?}; duration: {:.1}s; cost: {} -->\n",
            answer.status,
            answer.duration_s,
            answer.cost.describe()
        );
        if let Some(e) = &answer.error {
            md.push_str(&format!("<!-- error: {} -->\n", e.replace("--", "- -")));
        }
        md.push('\n');
        md.push_str(&answer.text);
        if !md.ends_with('\n') {
            md.push('\n');
        }
        autoresearch_engine::atomic::write_atomic(&self.output_path(), md.as_bytes())?;
        if let Some(raw) = raw {
            let record = RawRecord {
                argv,
                cwd,
                exit_code: raw.exit_code,
                signal: raw.signal,
                duration_s: raw.duration.as_secs_f64(),
                stdout: raw.stdout_text(),
                stderr: String::from_utf8_lossy(&raw.stderr).into_owned(),
            };
            autoresearch_engine::atomic::write_json_atomic(&self.raw_path(), &record)?;
        }
        Ok(())
    }
}
