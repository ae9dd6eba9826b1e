//! What the supervisor's own agent calls (`report`, `ask`) cost: `logs/agent/costs.jsonl`, one
//! [`CostLine`] per call, appended by the supervisor.
//!
//! While an engine runs, `state.json` belongs to it (it rewrites the file whole), so the
//! supervisor never writes there; it appends to this file instead (through the engine's
//! `nofollow::open_append`: a planted symlink is refused). The run's agent cost is the sum of
//! `state.json`'s `agent_cost` (the engine's calls: [`RunState::agent_cost`], a
//! [`CostBook`](super::CostBook)) and this file: [`AgentCostSummary`], the one figure `status`,
//! `summary.md`, the dashboard, the agent's run brief and the `limits.agent_cost_usd` budget
//! use. A line torn by a crash is skipped without losing the next.

use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{AgentPhase, Cost, CostBook};
#[cfg(doc)]
use crate::model::RunState;

/// Largest `costs.jsonl` read (about 100,000 calls).
const MAX_LOG_BYTES: u64 = 64 << 20;

/// One agent call made by the supervisor (a line of `logs/agent/costs.jsonl`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CostLine {
    /// When the call ended (RFC 3339).
    pub at: String,
    /// `report` or `ask`.
    pub phase: AgentPhase,
    /// Whether it produced a valid answer.
    pub ok: bool,
    /// What the agent processes of this call cost (a re-used recorded answer costs nothing).
    pub cost: Cost,
}

/// `logs/agent/costs.jsonl` of `workdir`.
pub fn cost_log_path(workdir: &Path) -> PathBuf {
    workdir.join("logs").join("agent").join("costs.jsonl")
}

/// Appends `line` to the workdir's cost log (creating it).
pub fn append(workdir: &Path, line: &CostLine) -> io::Result<()> {
    let path = cost_log_path(workdir);
    if let Some(dir) = path.parent() {
        autoresearch_engine::nofollow::create_dir_under(workdir, dir)?;
    }
    let mut text = serde_json::to_string(line).map_err(io::Error::other)?;
    text.push('\n');
    let mut file = autoresearch_engine::nofollow::open_append(&path)?;
    // One write: concurrent appenders never interleave inside a line.
    file.write_all(text.as_bytes())?;
    file.sync_data()
}

/// The calls recorded in the workdir's cost log (none when it does not exist).
pub fn read(workdir: &Path) -> io::Result<Vec<CostLine>> {
    let path = cost_log_path(workdir);
    let Some(bytes) = autoresearch_engine::nofollow::read_regular(&path, MAX_LOG_BYTES)? else {
        return Ok(Vec::new());
    };
    let text = String::from_utf8_lossy(&bytes);
    Ok(text.lines().filter_map(parse_line).collect())
}

/// A line, or the record after a torn one on the same line (a crash cut a write short).
fn parse_line(line: &str) -> Option<CostLine> {
    let line = line.trim();
    if line.is_empty() {
        return None;
    }
    serde_json::from_str(line).ok().or_else(|| {
        line.match_indices('{')
            .skip(1)
            .find_map(|(i, _)| serde_json::from_str(&line[i..]).ok())
    })
}

/// The agent cost of a run: the engine's (plan, apply, analyze; from `state.json`) and the
/// supervisor's (report, ask; from `logs/agent/costs.jsonl`).
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct AgentCostSummary {
    /// Both together.
    pub total: Cost,
    /// The engine's calls: `state.json`'s `agent_cost.total`, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub engine: Option<Cost>,
    /// The supervisor's calls (`report --agent`, `ask`): `logs/agent/costs.jsonl`, when it
    /// exists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub supervisor: Option<Cost>,
}

impl AgentCostSummary {
    /// The engine's cost `engine` (`state.json`'s [`RunState::agent_cost`], read by the caller)
    /// plus the supervisor's calls in `workdir`'s cost log; `None` when neither has anything.
    /// An unreadable cost log counts as absent.
    pub fn of(engine: Option<&CostBook>, workdir: &Path) -> Option<AgentCostSummary> {
        let engine = engine.map(|b| b.total);
        let lines = read(workdir).unwrap_or_default();
        let supervisor = (!lines.is_empty()).then(|| lines.iter().map(|l| l.cost).sum::<Cost>());
        if engine.is_none() && supervisor.is_none() {
            return None;
        }
        Some(AgentCostSummary {
            total: engine.unwrap_or_default() + supervisor.unwrap_or_default(),
            engine,
            supervisor,
        })
    }

    /// The dollars of [`AgentCostSummary::of`] (0 when none were reported): what the
    /// `limits.agent_cost_usd` budget is checked against.
    pub fn spent_usd(engine: Option<&CostBook>, workdir: &Path) -> f64 {
        Self::of(engine, workdir).map_or(0.0, |s| s.total.usd_or_zero())
    }

    /// One line, e.g. `$0.0312, 4 calls (engine $0.02, 3 calls; report/ask $0.0112, 1 call)`.
    pub fn describe(&self) -> String {
        match (&self.engine, &self.supervisor) {
            (Some(e), Some(s)) => format!(
                "{} (engine {}; report/ask {})",
                self.total.describe(),
                e.describe(),
                s.describe()
            ),
            (None, Some(_)) => format!("{} (report/ask)", self.total.describe()),
            _ => self.total.describe(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(usd: f64) -> CostLine {
        CostLine {
            at: "2026-12-01T10:00:00Z".into(),
            phase: AgentPhase::Ask,
            ok: true,
            cost: Cost {
                usd: Some(usd),
                calls: 1,
                ..Cost::default()
            },
        }
    }

    #[test]
    fn lines_are_appended_and_a_torn_one_loses_nothing_else() {
        let tmp = tempfile::tempdir().unwrap();
        let wd = tmp.path();
        append(wd, &line(0.5)).unwrap();
        // A crash cut the next write short; the following append lands on the same line.
        let path = cost_log_path(wd);
        let mut f = autoresearch_engine::nofollow::open_append(&path).unwrap();
        f.write_all(b"{\"at\":\"2026-12-01T10:01:00Z\",\"pha")
            .unwrap();
        append(wd, &line(0.25)).unwrap();
        let lines = read(wd).unwrap();
        assert_eq!(lines.len(), 2, "{lines:?}");
        let s = AgentCostSummary::of(None, wd).unwrap();
        assert_eq!(s.total.usd, Some(0.75));
        assert_eq!(s.engine, None);
        assert!(s.describe().contains("(report/ask)"), "{}", s.describe());
    }

    #[test]
    fn the_engine_cost_and_the_supervisor_cost_make_one_figure() {
        let tmp = tempfile::tempdir().unwrap();
        let wd = tmp.path();
        assert!(AgentCostSummary::of(None, wd).is_none());
        let mut book = CostBook::default();
        for _ in 0..3 {
            book.add(
                "001_a",
                AgentPhase::Plan,
                Cost {
                    usd: Some(0.5),
                    calls: 1,
                    ..Cost::default()
                },
            );
        }
        append(wd, &line(0.5)).unwrap();
        let s = AgentCostSummary::of(Some(&book), wd).unwrap();
        assert_eq!(AgentCostSummary::spent_usd(Some(&book), wd), 2.0);
        assert_eq!(s.total.usd, Some(2.0));
        assert_eq!(s.total.calls, 4);
        assert_eq!(s.engine.unwrap().calls, 3);
        assert!(
            s.describe().contains("engine $1.5000, 3 calls"),
            "{}",
            s.describe()
        );
    }

    #[test]
    fn a_planted_symlink_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let wd = tmp.path().join("wd");
        std::fs::create_dir_all(wd.join("logs/agent")).unwrap();
        let outside = tmp.path().join("outside");
        std::fs::write(&outside, "").unwrap();
        std::os::unix::fs::symlink(&outside, cost_log_path(&wd)).unwrap();
        assert!(append(&wd, &line(0.1)).is_err());
        assert_eq!(std::fs::read(&outside).unwrap(), b"");
    }
}
