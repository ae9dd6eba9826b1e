//! The `apply` and `analyze` prompts: their contexts and renderers.
//!
//! The apply prompt carries the planner's `changes` instruction **verbatim** (never cut) and the
//! protected paths. The analyze prompt carries the ends of the job's stdout and stderr, cut so
//! the prompt stays within the size limit.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::plan_prompt::PlanPromptError;
use super::template::{Template, TemplateError};
use crate::config::{Direction, format_number, value_to_raw};

/// What the apply phase is told.
#[derive(Debug, Clone, PartialEq)]
pub struct ApplyContext {
    /// The experiment's node id.
    pub node_id: String,
    /// Its name.
    pub name: String,
    /// Its parent node id.
    pub parent: Option<String>,
    /// Why it might help.
    pub hypothesis: String,
    /// Its parameters.
    pub params: Map<String, Value>,
    /// The planner's instruction, given verbatim.
    pub changes: String,
    /// Protected path globs.
    pub protected: Vec<String>,
}

/// Renders the apply prompt (never cut: the instruction is verbatim).
pub fn render_apply_prompt(
    ctx: &ApplyContext,
    template: &Template,
) -> Result<String, TemplateError> {
    let protected = protected_list(&ctx.protected);
    let params = params_line(&ctx.params);
    template.render(&[
        ("node_id", &ctx.node_id),
        ("name", &ctx.name),
        ("parent", ctx.parent.as_deref().unwrap_or("(baseline)")),
        ("hypothesis", &ctx.hypothesis),
        ("params", &params),
        ("changes", &ctx.changes),
        ("protected", &protected),
    ])
}

/// What the analyze phase is told.
#[derive(Debug, Clone, PartialEq)]
pub struct AnalyzeContext {
    /// Primary metric name.
    pub metric: String,
    /// Which way is better.
    pub direction: Direction,
    /// The node analysed.
    pub node_id: String,
    /// Its parent.
    pub parent: Option<String>,
    /// Its hypothesis.
    pub hypothesis: String,
    /// Its code change, if any.
    pub changes: Option<String>,
    /// Its parameters.
    pub params: Map<String, Value>,
    /// `completed (improved)`, `completed`, `failed: <reason>`.
    pub outcome: String,
    /// The metrics the engine parsed.
    pub metrics: BTreeMap<String, f64>,
    /// Reference values (baseline, best, parent), as text.
    pub reference: String,
    /// The job's stdout (its end is shown).
    pub stdout: String,
    /// The job's stderr (its end is shown).
    pub stderr: String,
}

/// Renders the analyze prompt within `max_bytes`, cutting the output tails as needed.
pub fn render_analyze_prompt(
    ctx: &AnalyzeContext,
    template: &Template,
    max_bytes: usize,
) -> Result<String, PlanPromptError> {
    let direction = match ctx.direction {
        Direction::Maximize => "maximize",
        Direction::Minimize => "minimize",
    };
    let metrics = if ctx.metrics.is_empty() {
        "(none reported)".to_string()
    } else {
        ctx.metrics
            .iter()
            .map(|(k, v)| format!("{k}={}", format_number(*v)))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let params = params_line(&ctx.params);
    let mut smallest = usize::MAX;
    for tail in [16_000usize, 8_000, 4_000, 2_000, 1_000, 400, 0] {
        let out = tail_fenced(&ctx.stdout, tail);
        let err = tail_fenced(&ctx.stderr, tail);
        let prompt = template.render(&[
            ("metric", &ctx.metric),
            ("direction", direction),
            ("node_id", &ctx.node_id),
            ("parent", ctx.parent.as_deref().unwrap_or("(none)")),
            ("hypothesis", &ctx.hypothesis),
            (
                "changes",
                ctx.changes.as_deref().unwrap_or("(parameters only)"),
            ),
            ("params", &params),
            ("outcome", &ctx.outcome),
            ("metrics", &metrics),
            ("reference", &ctx.reference),
            ("stdout_tail", &out),
            ("stderr_tail", &err),
        ])?;
        if prompt.len() <= max_bytes {
            return Ok(prompt);
        }
        smallest = smallest.min(prompt.len());
    }
    Err(PlanPromptError::TooLarge {
        size: smallest,
        limit: max_bytes,
    })
}

/// The last `max` bytes of `text` in a fenced block (starting on a character boundary).
fn tail_fenced(text: &str, max: usize) -> String {
    if text.trim().is_empty() {
        return "(empty)".into();
    }
    if max == 0 {
        return format!("({} bytes not shown)", text.len());
    }
    let mut start = text.len().saturating_sub(max);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    let body = text[start..].replace("```", "'''");
    let cut = if start > 0 {
        format!("({start} earlier bytes not shown)\n")
    } else {
        String::new()
    };
    format!("{cut}```\n{}\n```", body.trim_end())
}

fn protected_list(globs: &[String]) -> String {
    if globs.is_empty() {
        "(none)".into()
    } else {
        globs
            .iter()
            .map(|p| format!("- `{p}`"))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn params_line(params: &Map<String, Value>) -> String {
    if params.is_empty() {
        return "(none)".into();
    }
    params
        .iter()
        .map(|(k, v)| format!("{k}={}", value_to_raw(v)))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::template::Templates;

    #[test]
    fn apply_prompt_has_the_instruction_verbatim_and_the_protected_paths() {
        let changes = "Replace `for i in range(n): s += i*i` with\n```python\ns = sum(i*i for i in range(n))\n```\n{{not_expanded}}";
        let ctx = ApplyContext {
            node_id: "004_sum".into(),
            name: "sum".into(),
            parent: Some("001_base".into()),
            hypothesis: "builtin sum is faster".into(),
            params: Map::new(),
            changes: changes.into(),
            protected: vec!["bench.py".into()],
        };
        let p = render_apply_prompt(&ctx, &Templates::builtin().apply).unwrap();
        assert!(p.contains(changes));
        assert!(p.contains("- `bench.py`"));
    }

    #[test]
    fn analyze_prompt_cuts_long_output_to_fit() {
        let ctx = AnalyzeContext {
            metric: "seconds".into(),
            direction: Direction::Minimize,
            node_id: "004_sum".into(),
            parent: None,
            hypothesis: "h".into(),
            changes: None,
            params: Map::new(),
            outcome: "completed".into(),
            metrics: [("seconds".to_string(), 1.5)].into(),
            reference: "baseline 2.0".into(),
            stdout: "x".repeat(100_000) + "\nMETRIC seconds=1.5\n",
            stderr: String::new(),
        };
        let p = render_analyze_prompt(&ctx, &Templates::builtin().analyze, 10_000).unwrap();
        assert!(p.len() <= 10_000, "{}", p.len());
        assert!(p.contains("METRIC seconds=1.5"));
        assert!(p.contains("earlier bytes not shown"));
    }
}
