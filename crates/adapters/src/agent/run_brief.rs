//! What the run-level agent calls (`report`, `ask`) are told about a run: [`RunBrief`] and its
//! sections, rendered at a level of detail so the prompt stays under a size limit however long
//! the run.
//!
//! The history table, the findings and the queue are the plan prompt's own sections
//! ([`super::plan_prompt`]: the best, recent and dead-end rows kept, the rest summarized); the
//! brief adds the best node, the path from the baseline to the best with each step's change and
//! diff stat, the per-node analyses, the failures by kind, the noise floor and the agent cost.
//! Rendering starts detailed and halves the detail until the prompt fits.

use std::fmt::Write as _;

use serde_json::{Map, Value};

use super::plan_prompt::{
    LEVELS, PlanContext, cell, findings_section, history_section, in_flight_section, params_text,
    value_text,
};
use super::template::{Template, TemplateError};
use crate::config::Direction;
use crate::model::Spread;

/// The placeholders of the run sections, shared by the `report` and `ask` templates.
pub const SECTIONS: &[&str] = &[
    "metric",
    "direction",
    "min_improvement",
    "run",
    "noise",
    "best",
    "best_path",
    "history",
    "analyses",
    "findings",
    "failures",
    "queue",
];

/// The best node.
#[derive(Debug, Clone, PartialEq)]
pub struct BestNode {
    /// Node id.
    pub id: String,
    /// Its primary metric.
    pub value: f64,
    /// Spread of the primary over its runs, when it ran more than once.
    pub spread: Option<Spread>,
    /// Relative change against the baseline, in percent.
    pub vs_baseline_pct: Option<f64>,
    /// Its parameters.
    pub params: Map<String, Value>,
    /// Why it was tried.
    pub hypothesis: String,
    /// Its code-change instruction, if any.
    pub changes: Option<String>,
    /// The git ref of its code, when it has one (`refs/autoresearch/<run>/<id>`).
    pub git_ref: Option<String>,
}

/// One step of the path from the baseline to the best.
#[derive(Debug, Clone, PartialEq)]
pub struct PathStep {
    /// Node id.
    pub id: String,
    /// What it changed relative to its parent: the parameters that differ, or the code change.
    pub change: String,
    /// `git diff --stat` against the parent's commit, when both have commits.
    pub diff_stat: Option<String>,
    /// Its primary metric.
    pub value: Option<f64>,
    /// Spread of the primary over its runs, when it ran more than once.
    pub spread: Option<Spread>,
    /// Relative change against the baseline, in percent.
    pub vs_baseline_pct: Option<f64>,
    /// Whether it improved on the best at the time.
    pub improved: bool,
}

/// A node's analysis (`runs/<id>/analysis.md`).
#[derive(Debug, Clone, PartialEq)]
pub struct NodeAnalysis {
    /// Node id.
    pub node_id: String,
    /// The analysis text (Markdown).
    pub text: String,
    /// Whether the node is on the path to the best (shown first).
    pub on_path: bool,
}

/// The failed nodes of one failure kind.
#[derive(Debug, Clone, PartialEq)]
pub struct FailureGroup {
    /// `nonzero_exit`, `timeout`, ...
    pub kind: String,
    /// (node id, message), oldest first.
    pub nodes: Vec<(String, String)>,
}

/// Everything a run-level agent call is told about the run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunBrief {
    /// The run as the planner sees it: objective, search space, budget, history, path to the
    /// best (`best_path`), findings and the experiments queued and running (`in_flight`).
    /// `planned_from` is the best node (kept in the history at every level of detail).
    pub run: PlanContext,
    /// Counts, engine status, stop reason, time used: a few lines of text.
    pub status: String,
    /// The best node, if any.
    pub best: Option<BestNode>,
    /// The path from the baseline to the best, baseline first.
    pub steps: Vec<PathStep>,
    /// Analyses of nodes.
    pub analyses: Vec<NodeAnalysis>,
    /// Failures grouped by kind.
    pub failures: Vec<FailureGroup>,
    /// The noise floor, when the run measured one.
    pub noise_floor: Option<String>,
    /// What the agent has cost so far, when anything was spent.
    pub agent_cost: Option<String>,
}

/// A run-level prompt could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BriefPromptError {
    /// The template is invalid.
    #[error(transparent)]
    Template(#[from] TemplateError),
    /// Even the least detailed rendering is larger than the limit.
    #[error(
        "the {what} prompt needs at least {size} bytes, more than the limit of {limit} \
         (planner.agent.max_prompt_bytes): raise the limit or shorten the template{hint}"
    )]
    TooLarge {
        /// `report` or `ask`.
        what: &'static str,
        /// Smallest size reached.
        size: usize,
        /// The limit.
        limit: usize,
        /// What else to shorten.
        hint: &'static str,
    },
}

/// The detail levels, most detailed first (rows per category).
pub fn levels() -> &'static [usize] {
    &LEVELS
}

/// `maximize` or `minimize`.
pub fn direction_word(direction: Direction) -> &'static str {
    match direction {
        Direction::Maximize => "maximize",
        Direction::Minimize => "minimize",
    }
}

/// Per-field text limit at `level`.
pub fn text_cap(level: usize) -> usize {
    (level * 8).clamp(60, 240)
}

impl RunBrief {
    /// The run sections at `level` (placeholder name, text), in [`SECTIONS`] order.
    pub fn sections(&self, level: usize) -> Vec<(&'static str, String)> {
        let cap = text_cap(level);
        let ctx = &self.run;
        vec![
            ("metric", ctx.metric.clone()),
            ("direction", direction_word(ctx.direction).to_string()),
            ("min_improvement", ctx.min_improvement.to_string()),
            ("run", self.run_section()),
            (
                "noise",
                self.noise_floor
                    .clone()
                    .unwrap_or_else(|| "(not measured)".into()),
            ),
            ("best", self.best_section(cap)),
            ("best_path", self.path_section(level, cap)),
            ("history", history_section(ctx, level, cap)),
            ("analyses", self.analyses_section(level, cap)),
            (
                "findings",
                findings_section(&ctx.findings, level * 2, cap.max(200)),
            ),
            ("failures", self.failures_section(level, cap)),
            (
                "queue",
                in_flight_section(&ctx.in_flight, level * 2, cap * 2),
            ),
        ]
    }

    fn run_section(&self) -> String {
        let mut out = self.status.trim_end().to_string();
        out.push('\n');
        if !self.run.budget.is_empty() {
            let _ = writeln!(out, "Budget: {}", self.run.budget);
        }
        if !self.run.search_space.is_empty() {
            let _ = writeln!(out, "Parameters searched: {}", self.run.search_space);
        }
        let _ = writeln!(
            out,
            "Agent cost so far: {}",
            self.agent_cost.as_deref().unwrap_or("none")
        );
        out
    }

    fn best_section(&self, cap: usize) -> String {
        let Some(b) = &self.best else {
            return "(no completed experiment with a value yet)\n".into();
        };
        let mut out = format!(
            "Best node: {} with {} = {}",
            b.id,
            self.run.metric,
            value_text(b.value, b.spread.as_ref())
        );
        if let Some(p) = b.vs_baseline_pct {
            let _ = write!(out, " ({p:+.2}% vs the baseline)");
        }
        out.push('\n');
        let _ = writeln!(
            out,
            "Parameters: {}",
            cell(&params_text(&b.params), cap * 2)
        );
        if !b.hypothesis.trim().is_empty() {
            let _ = writeln!(out, "Hypothesis: {}", cell(&b.hypothesis, cap * 2));
        }
        if let Some(c) = &b.changes {
            let _ = writeln!(out, "Code change: {}", cell(c, cap * 2));
        }
        if let Some(r) = &b.git_ref {
            let _ = writeln!(out, "Its code: git ref `{r}`");
        }
        out
    }

    fn path_section(&self, level: usize, cap: usize) -> String {
        if self.steps.is_empty() {
            return "(no best yet)\n".into();
        }
        let max = (level * 2).max(2);
        let n = self.steps.len();
        let shown: Vec<usize> = if n <= max {
            (0..n).collect()
        } else {
            std::iter::once(0).chain(n - (max - 1)..n).collect()
        };
        let mut out = format!(
            "Path: {}\n\n",
            self.steps
                .iter()
                .map(|s| s.id.as_str())
                .collect::<Vec<_>>()
                .join(" → ")
        );
        if out.len() > cap * 8 {
            out = format!("Path: {} steps, shown below.\n\n", n);
        }
        out.push_str("| step | node | change | diff | metric | vs baseline |\n");
        out.push_str("|---:|---|---|---|---:|---:|\n");
        let mut last = None;
        for i in shown {
            if let Some(l) = last
                && i > l + 1
            {
                let _ = writeln!(out, "| … | ({} steps not shown) | | | | |", i - l - 1);
            }
            last = Some(i);
            let s = &self.steps[i];
            let _ = writeln!(
                out,
                "| {i} | {}{} | {} | {} | {} | {} |",
                s.id,
                if s.improved { " *" } else { "" },
                if s.change.is_empty() {
                    "-".into()
                } else {
                    cell(&s.change, cap * 2)
                },
                s.diff_stat
                    .as_deref()
                    .map_or("-".into(), |d| cell(&compact_diff_stat(d), cap * 2)),
                s.value
                    .map_or("-".into(), |v| value_text(v, s.spread.as_ref())),
                s.vs_baseline_pct
                    .map_or("-".into(), |p| format!("{p:+.2}%")),
            );
        }
        out.push_str("(`*` = improved on the best at the time)\n");
        out
    }

    fn analyses_section(&self, level: usize, cap: usize) -> String {
        if self.analyses.is_empty() {
            return "(none)\n".into();
        }
        // The path's analyses first, then the most recent others.
        let mut order: Vec<&NodeAnalysis> = self.analyses.iter().filter(|a| a.on_path).collect();
        order.extend(self.analyses.iter().rev().filter(|a| !a.on_path));
        let mut out = String::new();
        for a in order.iter().take(level.max(1)) {
            let _ = writeln!(out, "- [{}] {}", a.node_id, cell(&a.text, cap * 4));
        }
        if order.len() > level.max(1) {
            let _ = writeln!(
                out,
                "({} more analyses not shown)",
                order.len() - level.max(1)
            );
        }
        out
    }

    fn failures_section(&self, level: usize, cap: usize) -> String {
        if self.failures.is_empty() {
            return "(none)\n".into();
        }
        let mut out = String::new();
        let examples = level.clamp(1, 10);
        for g in &self.failures {
            let ids: Vec<&str> = g.nodes.iter().map(|(id, _)| id.as_str()).collect();
            let listed = ids.len().min(examples * 3);
            let _ = write!(
                out,
                "- {}: {} (nodes: {}",
                g.kind,
                g.nodes.len(),
                ids[..listed].join(", ")
            );
            if ids.len() > listed {
                let _ = write!(out, ", … {} more", ids.len() - listed);
            }
            out.push_str(")\n");
            for (id, message) in g.nodes.iter().rev().take(examples) {
                let _ = writeln!(out, "  - {id}: {}", cell(message, cap));
            }
        }
        out
    }
}

/// `git diff --stat` output on one line: `a.py (12), b.py (3); 2 files changed, …`.
pub fn compact_diff_stat(stat: &str) -> String {
    let lines: Vec<&str> = stat
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let Some((summary, files)) = lines.split_last() else {
        return "no change".into();
    };
    let files: Vec<String> = files
        .iter()
        .map(|l| match l.split_once('|') {
            Some((path, n)) => format!(
                "{} ({})",
                path.trim(),
                n.split_whitespace().next().unwrap_or("")
            ),
            None => l.to_string(),
        })
        .collect();
    if files.is_empty() {
        summary.to_string()
    } else {
        format!("{}; {summary}", files.join(", "))
    }
}

/// Renders `template` with the brief's sections plus `extra` (placeholder, text for a level) at
/// the most detailed level that fits `max_bytes`.
pub fn render_within(
    brief: &RunBrief,
    template: &Template,
    max_bytes: usize,
    what: &'static str,
    hint: &'static str,
    extra: impl Fn(usize) -> Vec<(&'static str, String)>,
) -> Result<String, BriefPromptError> {
    let mut smallest = usize::MAX;
    for &level in levels() {
        let mut values = brief.sections(level);
        values.extend(extra(level));
        for (_, v) in &mut values {
            v.truncate(v.trim_end().len());
        }
        let pairs: Vec<(&str, &str)> = values.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let prompt = template.render(&pairs)?;
        if prompt.len() <= max_bytes {
            return Ok(prompt);
        }
        smallest = smallest.min(prompt.len());
    }
    Err(BriefPromptError::TooLarge {
        what,
        size: smallest,
        limit: max_bytes,
        hint,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_stats_are_compacted_to_one_line() {
        let stat = " src/main.py | 12 +++++++----\n bench.py    |  3 ++-\n 2 files changed, \
                    9 insertions(+), 6 deletions(-)\n";
        assert_eq!(
            compact_diff_stat(stat),
            "src/main.py (12), bench.py (3); 2 files changed, 9 insertions(+), 6 deletions(-)"
        );
        assert_eq!(compact_diff_stat(""), "no change");
    }
}
