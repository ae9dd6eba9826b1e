//! The `plan` prompt: [`PlanContext`] (everything the planner needs to know) rendered into the
//! plan template **under a size limit** however long the run.
//!
//! The history table keeps, at each level of detail, the best rows, the most recent rows, the
//! dead ends (failed experiments and non-improving leaves), the baseline and the path to the best;
//! every other row is summarized (counts by status, the metric's range, failure kinds, the values
//! each parameter took). Long texts are cut per field. Rendering starts detailed and halves the
//! detail until the prompt fits `max_bytes`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde_json::{Map, Value};

use super::template::{Template, TemplateError};
use crate::config::{Direction, MinImprovement, format_number, value_to_raw};
use crate::model::{NoiseFloor, Spread};

/// One experiment of the history, as the planner sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryRow {
    /// Node id.
    pub id: String,
    /// Parent node id.
    pub parent: Option<String>,
    /// `completed`, `failed`, ...
    pub status: String,
    /// Parameter values.
    pub params: Map<String, Value>,
    /// Primary metric (the aggregate of its runs when it ran more than once).
    pub primary: Option<f64>,
    /// Spread of the primary over its runs, when it ran more than once.
    pub spread: Option<Spread>,
    /// Whether it improved on the best at the time.
    pub improved: bool,
    /// It beat the best at first, but its confirmation runs did not hold it.
    pub unconfirmed: bool,
    /// Why it was tried.
    pub hypothesis: String,
    /// Summary of its code change, if any.
    pub change: Option<String>,
    /// Failure kind and reason, when failed.
    pub failure: Option<String>,
}

/// A finding of the analyze phase, with the node it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// The node analysed.
    pub node_id: String,
    /// The fact.
    pub text: String,
}

/// An experiment queued or running right now.
#[derive(Debug, Clone, PartialEq)]
pub struct InFlight {
    /// Node id.
    pub id: String,
    /// Parent node id.
    pub parent: Option<String>,
    /// `queued`, `running`, ...
    pub status: String,
    /// Parameter values.
    pub params: Map<String, Value>,
    /// Why it is tried.
    pub hypothesis: String,
    /// Its code-change instruction, if any.
    pub changes: Option<String>,
}

/// Everything a planning round tells the agent.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanContext {
    /// Primary metric name.
    pub metric: String,
    /// Which way is better.
    pub direction: Direction,
    /// Improvement that counts (a relative margin, or k × the noise floor).
    pub min_improvement: MinImprovement,
    /// The run's noise floor, once some experiment ran more than once.
    pub noise_floor: Option<NoiseFloor>,
    /// The search space, as text (e.g. its JSON).
    pub search_space: String,
    /// Budget and progress, as text (experiments left, cost spent, plateau).
    pub budget: String,
    /// The node this round plans from.
    pub planned_from: String,
    /// Every finished experiment in creation order.
    pub history: Vec<HistoryRow>,
    /// Node ids from the baseline to the best.
    pub best_path: Vec<String>,
    /// Findings so far, oldest first.
    pub findings: Vec<Finding>,
    /// Experiments queued and running right now.
    pub in_flight: Vec<InFlight>,
    /// How many proposals to ask for (free concurrency slots).
    pub slots: usize,
    /// Protected path globs.
    pub protected: Vec<String>,
}

/// The plan prompt could not be rendered within the limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanPromptError {
    /// The template is invalid.
    #[error(transparent)]
    Template(#[from] TemplateError),
    /// Even the least detailed rendering is larger than the limit.
    #[error(
        "the plan prompt needs at least {size} bytes, more than planner.agent.max_prompt_bytes \
         = {limit}: raise the limit or shorten the template or the search space"
    )]
    TooLarge {
        /// Smallest size reached.
        size: usize,
        /// The limit.
        limit: usize,
    },
}

/// Detail levels tried in order (rows per category).
pub(crate) const LEVELS: [usize; 7] = [40, 20, 10, 6, 3, 2, 1];

/// Renders the plan prompt within `max_bytes`.
pub fn render_plan_prompt(
    ctx: &PlanContext,
    template: &Template,
    max_bytes: usize,
) -> Result<String, PlanPromptError> {
    let mut smallest = usize::MAX;
    for &level in &LEVELS {
        let prompt = render_at(ctx, template, level)?;
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

fn render_at(
    ctx: &PlanContext,
    template: &Template,
    level: usize,
) -> Result<String, TemplateError> {
    let text_cap = (level * 8).clamp(60, 240);
    let direction = match ctx.direction {
        Direction::Maximize => "maximizing",
        Direction::Minimize => "minimizing",
    };
    let min_improvement = ctx.min_improvement.to_string();
    let history = history_section(ctx, level, text_cap);
    let best_path = path_section(&ctx.best_path, level * 2);
    let findings = findings_section(&ctx.findings, level * 2, text_cap.max(200));
    let in_flight = in_flight_section(&ctx.in_flight, level * 2, text_cap * 2);
    let protected = if ctx.protected.is_empty() {
        "(none)".to_string()
    } else {
        ctx.protected
            .iter()
            .map(|p| format!("- `{p}`\n"))
            .collect::<String>()
    };
    let slots = ctx.slots.to_string();
    let budget = if ctx.budget.is_empty() {
        "(not given)"
    } else {
        &ctx.budget
    };
    template.render(&[
        ("metric", &ctx.metric),
        ("direction", direction),
        ("min_improvement", &min_improvement),
        ("search_space", &ctx.search_space),
        ("budget", budget),
        ("planned_from", &ctx.planned_from),
        ("history", &history),
        ("best_path", &best_path),
        ("findings", &findings),
        ("in_flight", &in_flight),
        ("protected", &protected),
        ("slots", &slots),
    ])
}

/// `text` on one line, `|` escaped, cut to `cap` characters.
pub(crate) fn cell(text: &str, cap: usize) -> String {
    let one_line: String = text
        .chars()
        .map(|c| {
            if c == '\n' || c == '\r' || c == '\t' {
                ' '
            } else {
                c
            }
        })
        .collect();
    let one_line = one_line.trim();
    let cut: String = if one_line.chars().count() > cap {
        let mut s: String = one_line.chars().take(cap.saturating_sub(1)).collect();
        s.push('…');
        s
    } else {
        one_line.to_string()
    };
    cut.replace('|', "\\|")
}

pub(crate) fn params_text(params: &Map<String, Value>) -> String {
    params
        .iter()
        .map(|(k, v)| format!("{k}={}", value_to_raw(v)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The row's value, `± stdev (n=…)` when it ran more than once; `-` without a value.
fn metric_text(row: &HistoryRow) -> String {
    row.primary
        .map_or("-".into(), |p| value_text(p, row.spread.as_ref()))
}

/// `value`, with `± stdev (n=…)` when it ran more than once (stdev to 3 significant digits):
/// how every prompt shows a metric value.
pub(crate) fn value_text(value: f64, spread: Option<&Spread>) -> String {
    match spread {
        Some(s) if s.n > 1 => format!(
            "{} ± {} (n={})",
            format_number(value),
            format_number(round_sig(s.stdev, 3)),
            s.n
        ),
        _ => format_number(value),
    }
}

/// `x` rounded to `digits` significant digits.
fn round_sig(x: f64, digits: i32) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    let scale = 10f64.powi(digits - 1 - x.abs().log10().floor() as i32);
    (x * scale).round() / scale
}

/// How noisy one measurement is, for the history's header.
fn noise_text(ctx: &PlanContext) -> String {
    let repeated = ctx
        .history
        .iter()
        .any(|r| r.spread.is_some_and(|s| s.n > 1));
    let mut out = match &ctx.noise_floor {
        Some(f) => format!(
            "Noise floor: {}. A difference smaller than about twice that is likely noise, not \
             an effect.",
            f.describe()
        ),
        None => "Noise floor: not measured yet (no experiment ran more than once).".into(),
    };
    if repeated {
        out.push_str(
            " A value `v ± s (n=k)` is the aggregate of k runs ± their standard deviation.",
        );
    }
    out.push('\n');
    out
}

/// Indexes of the rows shown at `level`.
fn selected_rows(ctx: &PlanContext, level: usize) -> BTreeSet<usize> {
    let rows = &ctx.history;
    let mut keep = BTreeSet::new();
    if rows.is_empty() {
        return keep;
    }
    // The roots (baseline, seeds), at most `level`.
    keep.extend(
        rows.iter()
            .enumerate()
            .filter(|(_, r)| r.parent.is_none())
            .map(|(i, _)| i)
            .take(level),
    );
    // The best.
    let mut scored: Vec<(usize, f64)> = rows
        .iter()
        .enumerate()
        .filter(|(_, r)| r.failure.is_none())
        .filter_map(|(i, r)| r.primary.map(|p| (i, p)))
        .collect();
    scored.sort_by(|a, b| ctx.direction.best_first(a.1, b.1).then(a.0.cmp(&b.0)));
    keep.extend(scored.iter().take(level).map(|(i, _)| *i));
    // The most recent.
    keep.extend((rows.len().saturating_sub(level)..rows.len()).collect::<Vec<_>>());
    // Dead ends: failures and non-improving leaves, most recent first.
    let parents: BTreeSet<&str> = rows.iter().filter_map(|r| r.parent.as_deref()).collect();
    let dead: Vec<usize> = rows
        .iter()
        .enumerate()
        .rev()
        .filter(|(_, r)| r.failure.is_some() || (!r.improved && !parents.contains(r.id.as_str())))
        .map(|(i, _)| i)
        .take(level)
        .collect();
    keep.extend(dead);
    // The path to the best (its last `level` steps).
    let index: BTreeMap<&str, usize> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| (r.id.as_str(), i))
        .collect();
    let path_len = ctx.best_path.len();
    keep.extend(
        ctx.best_path[path_len.saturating_sub(level)..]
            .iter()
            .filter_map(|id| index.get(id.as_str()).copied()),
    );
    // The node planned from.
    if let Some(&i) = index.get(ctx.planned_from.as_str()) {
        keep.insert(i);
    }
    keep
}

pub(crate) fn history_section(ctx: &PlanContext, level: usize, text_cap: usize) -> String {
    let rows = &ctx.history;
    if rows.is_empty() {
        return "(no experiment has finished yet)\n".into();
    }
    let keep = selected_rows(ctx, level);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} experiments finished; {} shown (the best, the most recent, dead ends, the path to \
         the best), the rest summarized below.\n",
        rows.len(),
        keep.len()
    );
    out.push_str(&noise_text(ctx));
    out.push('\n');
    out.push_str("| id | parent | status | metric | params | hypothesis / change | failure |\n");
    out.push_str("|---|---|---|---|---|---|---|\n");
    for &i in &keep {
        let r = &rows[i];
        let mut what = cell(&r.hypothesis, text_cap);
        if let Some(c) = &r.change {
            let _ = write!(what, " [change: {}]", cell(c, text_cap));
        }
        let _ = writeln!(
            out,
            "| {}{} | {} | {} | {} | {} | {} | {} |",
            r.id,
            if r.improved {
                " *"
            } else if r.unconfirmed {
                " ?"
            } else {
                ""
            },
            r.parent.as_deref().unwrap_or("-"),
            r.status,
            metric_text(r),
            cell(&params_text(&r.params), text_cap * 2),
            what,
            r.failure
                .as_deref()
                .map_or("-".into(), |f| cell(f, text_cap / 2 + 20)),
        );
    }
    out.push_str(
        "(`*` = improved on the best at the time; `?` = beat the best at first, but re-runs did \
         not confirm it: treat it as noise)\n",
    );
    let omitted: Vec<&HistoryRow> = rows
        .iter()
        .enumerate()
        .filter(|(i, _)| !keep.contains(i))
        .map(|(_, r)| r)
        .collect();
    if !omitted.is_empty() {
        out.push('\n');
        out.push_str(&summarize(&omitted, ctx.direction));
    }
    out
}

/// The numeric range and (some of) the other values a parameter took.
type ParamSpread = (Option<(f64, f64)>, BTreeSet<String>);

/// Counts and ranges of rows not shown.
fn summarize(rows: &[&HistoryRow], direction: Direction) -> String {
    let mut by_status: BTreeMap<&str, usize> = BTreeMap::new();
    let mut failures: BTreeMap<String, usize> = BTreeMap::new();
    let mut values: Vec<f64> = Vec::new();
    let mut changed = 0usize;
    let mut params: BTreeMap<&str, ParamSpread> = BTreeMap::new();
    for r in rows {
        *by_status.entry(r.status.as_str()).or_default() += 1;
        if let Some(f) = &r.failure {
            let kind = f.split([':', ' ']).next().unwrap_or("").to_string();
            *failures.entry(kind).or_default() += 1;
        }
        if let Some(p) = r.primary.filter(|p| p.is_finite()) {
            values.push(p);
        }
        if r.change.is_some() {
            changed += 1;
        }
        for (k, v) in &r.params {
            let entry = params.entry(k.as_str()).or_default();
            match v.as_f64() {
                Some(x) => {
                    entry.0 = Some(match entry.0 {
                        None => (x, x),
                        Some((lo, hi)) => (lo.min(x), hi.max(x)),
                    })
                }
                None => {
                    if entry.1.len() < 6 {
                        entry.1.insert(value_to_raw(v));
                    }
                }
            }
        }
    }
    let mut out = String::new();
    let statuses = by_status
        .iter()
        .map(|(s, n)| format!("{n} {s}"))
        .collect::<Vec<_>>()
        .join(", ");
    let _ = write!(out, "Not shown: {} experiments ({statuses})", rows.len());
    if changed > 0 {
        let _ = write!(out, ", {changed} with code changes");
    }
    out.push_str(".\n");
    if !values.is_empty() {
        values.sort_by(|a, b| direction.best_first(*a, *b));
        let _ = writeln!(
            out,
            "- their metric: best {}, worst {}, median {}",
            format_number(values[0]),
            format_number(values[values.len() - 1]),
            format_number(values[values.len() / 2])
        );
    }
    if !failures.is_empty() {
        let f = failures
            .iter()
            .map(|(k, n)| format!("{n}× {k}"))
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(out, "- their failures: {f}");
    }
    for (name, (range, others)) in params {
        let mut parts = Vec::new();
        if let Some((lo, hi)) = range {
            parts.push(format!("{}..{}", format_number(lo), format_number(hi)));
        }
        if !others.is_empty() {
            parts.push(others.into_iter().collect::<Vec<_>>().join(", "));
        }
        let _ = writeln!(out, "- {name} tried: {}", cell(&parts.join("; "), 160));
    }
    out
}

fn path_section(path: &[String], max: usize) -> String {
    if path.is_empty() {
        return "(no best yet)\n".into();
    }
    let max = max.max(2);
    if path.len() <= max {
        return format!("{}\n", path.join(" → "));
    }
    let head = &path[..1];
    let tail = &path[path.len() - (max - 1)..];
    format!(
        "{} → … ({} steps) … → {}\n",
        head.join(" → "),
        path.len() - max,
        tail.join(" → ")
    )
}

pub(crate) fn findings_section(findings: &[Finding], max: usize, cap: usize) -> String {
    if findings.is_empty() {
        return "(none yet)\n".into();
    }
    let mut out = String::new();
    let skip = findings.len().saturating_sub(max);
    if skip > 0 {
        let _ = writeln!(out, "({skip} older findings not shown)");
    }
    for f in &findings[skip..] {
        let _ = writeln!(out, "- [{}] {}", f.node_id, cell(&f.text, cap));
    }
    out
}

pub(crate) fn in_flight_section(items: &[InFlight], max: usize, cap: usize) -> String {
    if items.is_empty() {
        return "(none)\n".into();
    }
    let mut out = String::new();
    let shown = items.len().min(max.max(4));
    for it in &items[..shown] {
        let _ = write!(
            out,
            "- {} ({}, parent {}): {}",
            it.id,
            it.status,
            it.parent.as_deref().unwrap_or("-"),
            cell(&params_text(&it.params), cap)
        );
        if !it.hypothesis.is_empty() {
            let _ = write!(out, "; hypothesis: {}", cell(&it.hypothesis, cap / 2));
        }
        if let Some(c) = &it.changes {
            let _ = write!(out, "; change: {}", cell(c, cap));
        }
        out.push('\n');
    }
    if items.len() > shown {
        let _ = writeln!(out, "- … and {} more", items.len() - shown);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::synthetic::synthetic_context;
    use crate::agent::template::Templates;

    #[test]
    fn a_thousand_nodes_fit_the_limit_and_keep_what_matters() {
        let ctx = synthetic_context(1000);
        let t = Templates::builtin();
        let prompt = render_plan_prompt(&ctx, &t.plan, 60_000).unwrap();
        assert!(prompt.len() <= 60_000, "{}", prompt.len());
        let best = ctx.best_path.last().unwrap();
        assert!(
            prompt.contains(&format!("| {best} *")),
            "the best row is shown"
        );
        assert!(
            prompt.contains(&ctx.history[999].id),
            "the most recent row is shown"
        );
        assert!(prompt.contains("Not shown:"), "the rest is summarized");
        assert!(prompt.contains("Free slots: 2"));
        assert!(prompt.contains("000_pending_") || prompt.contains("1000_pending_0"));
        // A smaller limit still fits, with less detail.
        let small = render_plan_prompt(&ctx, &t.plan, 12_000).unwrap();
        assert!(small.len() <= 12_000, "{}", small.len());
        assert!(small.contains(&format!("| {best} *")));
    }

    #[test]
    fn an_impossible_limit_is_a_clear_error() {
        let ctx = synthetic_context(10);
        let e = render_plan_prompt(&ctx, &Templates::builtin().plan, 500).unwrap_err();
        assert!(
            e.to_string()
                .contains("planner.agent.max_prompt_bytes = 500"),
            "{e}"
        );
    }

    #[test]
    fn an_empty_run_renders() {
        let ctx = synthetic_context(0);
        let p = render_plan_prompt(&ctx, &Templates::builtin().plan, 60_000).unwrap();
        assert!(p.contains("no experiment has finished yet"));
    }

    #[test]
    fn values_show_their_spread_the_noise_floor_and_unconfirmed_wins() {
        let mut ctx = synthetic_context(12);
        let p = render_plan_prompt(&ctx, &Templates::builtin().plan, 60_000).unwrap();
        assert!(
            p.contains("Noise floor: ±1.2 % per run (3 nodes, 6 degrees of freedom)"),
            "{p}"
        );
        // Row 0 ran twice (value ± 0.8·√2 = 1.13).
        assert!(p.contains(" ± 1.13 (n=2) |"), "{p}");
        // Row 5 is an unconfirmed win.
        assert!(p.contains(&format!("| {} ? |", ctx.history[5].id)), "{p}");
        assert!(p.contains("`?` = beat the best at first"), "{p}");
        ctx.noise_floor = None;
        ctx.min_improvement = MinImprovement::Noise;
        let p = render_plan_prompt(&ctx, &Templates::builtin().plan, 60_000).unwrap();
        assert!(p.contains("Noise floor: not measured yet"), "{p}");
        assert!(p.contains("at least noise_k × the noise floor"), "{p}");
    }

    #[test]
    fn cells_are_one_line_escaped_and_cut() {
        assert_eq!(cell("a|b\nc", 10), "a\\|b c");
        assert_eq!(cell("abcdefghijkl", 5), "abcd…");
    }
}
