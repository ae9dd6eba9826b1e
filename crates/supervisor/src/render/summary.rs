//! `summary.md`: status and counts, best node against the baseline, plateau and budgets, what
//! runs now, the last results and failures by kind.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::SystemTime;

use autoresearch_adapters::agent::cost_log::AgentCostSummary;
use autoresearch_adapters::model::NodeStatus;

use super::format::fmt_spread;
use super::importance::write_importance;
use super::load::{CompletionSource, RunView};
use super::{fmt_secs, fmt_value, pct_change};

/// How many recent results the summary lists.
pub const LAST_RESULTS: usize = 10;
/// How many warnings the summary lists (the rest are counted).
pub const MAX_WARNINGS: usize = 20;

/// Escapes text for a markdown table cell (one line, `|` escaped).
pub fn md_cell(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '|' => out.push_str("\\|"),
            '\n' | '\r' | '\t' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// Escapes text for inline code (backticks replaced by `'`, one line).
pub fn md_code(s: &str) -> String {
    let s: String = s
        .chars()
        .map(|c| match c {
            '`' => '\'',
            '\n' | '\r' | '\t' => ' ',
            c => c,
        })
        .collect();
    format!("`{s}`")
}

/// "`012_x` (value, +3.2 % vs baseline)" style description of the best against the baseline.
pub(crate) fn best_line(view: &RunView) -> Option<String> {
    let bi = view.best?;
    let best = &view.nodes[bi];
    let mut s = format!("{} ({})", md_code(&best.id), md_cell(best.name()));
    match view.best_value() {
        Some(v) => {
            let _ = write!(s, ": {} = **{}**", md_code(&view.metric), fmt_value(v));
            if let Some(sp) = best.spread() {
                let _ = write!(s, " ± {} (n={})", fmt_value(sp.stdev), sp.n);
            }
            if let Some(b) = view.baseline_value() {
                let base_id = view
                    .baseline
                    .map(|i| view.nodes[i].id.as_str())
                    .unwrap_or("baseline");
                let base_spread = view.baseline.and_then(|i| view.nodes[i].spread());
                let _ = write!(
                    s,
                    " vs baseline {} = {}",
                    md_code(base_id),
                    fmt_spread(b, base_spread)
                );
                if let Some(p) = pct_change(v, b) {
                    let better = view.direction.is_better(v, b);
                    let worse = view.direction.is_better(b, v);
                    let word = if better {
                        "better"
                    } else if worse {
                        "worse"
                    } else {
                        "same"
                    };
                    let _ = write!(s, " ({p:+.2} %, {word})");
                }
            }
        }
        None => s.push_str(": value unknown"),
    }
    Some(s)
}

/// The noise floor line: `±4.2 % per run (…)`, or why it is not known.
pub(crate) fn noise_floor_line(view: &RunView) -> String {
    match view.noise_floor() {
        Some(f) => format!(
            "{}; a result must beat the best by more than the noise to count at once, \
             otherwise it is re-run first (see docs/noise.md)",
            f.describe()
        ),
        None => "not measured yet (no experiment has run more than once)".to_owned(),
    }
}

/// How sure the best's improvement over the baseline is: the gain in noise floors, the 95 %
/// interval over the raw runs, and whether re-runs confirmed it (`None` without a best and a
/// baseline value, or when the best is the baseline).
pub(crate) fn confidence_line(view: &RunView) -> Option<String> {
    let bi = view.best?;
    if Some(bi) == view.baseline {
        return None;
    }
    let c = view.confidence()?;
    let node = &view.nodes[bi];
    let mut parts = vec![format!("{:+.1} % over the baseline", c.gain * 100.0)];
    if let Some(k) = c.in_noise_floors {
        parts.push(format!("{k:.1} noise floors"));
    }
    if let Some((lo, hi)) = c.interval {
        let runs = |i: usize| view.nodes[i].spread().map_or(1, |s| s.n);
        parts.push(format!(
            "95 % interval {:+.1} % … {:+.1} % (Welch, {} vs {} runs)",
            lo * 100.0,
            hi * 100.0,
            runs(bi),
            view.baseline.map_or(1, runs)
        ));
    }
    let how = match node.result.as_ref().and_then(|r| r.confirmation.as_ref()) {
        Some(conf) if conf.confirmed == Some(true) => {
            format!("confirmed by {} more runs", conf.runs)
        }
        _ if view.noise_floor().is_some() => {
            "counted without re-runs (it beat the best by more than the noise)".to_owned()
        }
        _ => "not confirmed by re-runs (no noise floor was known)".to_owned(),
    };
    parts.push(how);
    Some(parts.join("; "))
}

/// The improvement mark of node `i`: `yes`, `yes (confirmed)`, `unconfirmed` or empty.
pub(crate) fn improved_cell(view: &RunView, i: usize) -> &'static str {
    let n = &view.nodes[i];
    match (n.improved(), n.confirmed(), n.unconfirmed()) {
        (true, true, _) => "yes (confirmed)",
        (true, false, _) => "yes",
        (false, _, true) => "unconfirmed",
        _ => "",
    }
}

/// The primary value of node `i` (`± stdev (n=…)` when it ran more than once) and its change
/// against the baseline (`+3.20 %`), as the two markdown cells every results table shows
/// (empty when unknown).
pub(crate) fn value_cells(view: &RunView, i: usize) -> (String, String) {
    let v = view.primary(i);
    let vs = match (v, view.baseline_value()) {
        (Some(v), Some(b)) => pct_change(v, b)
            .map(|p| format!("{p:+.2} %"))
            .unwrap_or_default(),
        _ => String::new(),
    };
    (
        v.map(|v| fmt_spread(v, view.nodes[i].spread()))
            .unwrap_or_default(),
        vs,
    )
}

/// Failure counts per kind (`unknown` when `failure.json` is unreadable), with the latest node.
pub(crate) fn failures_by_kind(view: &RunView) -> BTreeMap<String, (usize, usize)> {
    let mut by: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for &i in &view.completion_order {
        let n = &view.nodes[i];
        if n.status != NodeStatus::Failed {
            continue;
        }
        let kind = n
            .failure
            .as_ref()
            .map(|f| f.kind.as_str())
            .unwrap_or("unknown");
        let e = by.entry(kind.to_owned()).or_insert((0, i));
        e.0 += 1;
        e.1 = i;
    }
    by
}

/// Writes the "failures by kind" markdown table into `out`.
pub(crate) fn write_failures(view: &RunView, out: &mut String) {
    let by = failures_by_kind(view);
    if by.is_empty() {
        out.push_str("No failures.\n");
        return;
    }
    out.push_str("| kind | count | latest | message |\n|---|---:|---|---|\n");
    for (kind, (count, last)) in &by {
        let n = &view.nodes[*last];
        let msg = n.failure.as_ref().map(|f| f.message.as_str()).unwrap_or("");
        let _ = writeln!(
            out,
            "| {} | {count} | {} | {} |",
            md_cell(kind),
            md_code(&n.id),
            md_cell(&elide_chars(msg, 120))
        );
    }
}

/// `s` cut to at most `max` characters with `…`.
pub(crate) fn elide_chars(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

fn age(ts: &str, now: SystemTime) -> Option<String> {
    let t = humantime::parse_rfc3339_weak(ts).ok()?;
    let d = now.duration_since(t).ok()?;
    Some(fmt_secs(d.as_secs_f64()))
}

/// Renders `summary.md`.
pub fn render_summary(view: &RunView) -> String {
    let mut out = String::with_capacity(8192);
    let name = view
        .root
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| view.root.display().to_string());
    let now = view.loaded_at;
    let _ = writeln!(out, "# autoresearch summary: {}\n", md_cell(&name));
    let _ = writeln!(
        out,
        "_Rendered {} from the files in `{}`._\n",
        humantime::format_rfc3339_seconds(now),
        view.root.display()
    );

    // Status and counts.
    out.push_str("## Status\n\n");
    let mut engine_line = format!("- Engine: **{}**", view.engine_status());
    if let Some(e) = &view.engine {
        let _ = write!(engine_line, ", pid {} on {}", e.pid, md_cell(&e.host));
        if let Some(a) = age(&e.heartbeat_at, now) {
            let _ = write!(engine_line, ", last heartbeat {a} ago");
        }
    }
    out.push_str(&engine_line);
    out.push('\n');
    let _ = writeln!(
        out,
        "- Objective: {} {}",
        view.direction.as_str(),
        md_code(&view.metric)
    );
    let c = view.counts();
    let _ = writeln!(
        out,
        "- Nodes: **{}** ({} completed, {} of them improved; {} failed; {} running; {} queued)",
        c.total, c.completed, c.improved, c.failed, c.running, c.queued
    );
    if let Some(reason) = view.state.as_ref().and_then(|s| s.stop_reason.as_deref()) {
        let _ = writeln!(out, "- Stopped because: {}", md_cell(reason));
    }
    out.push('\n');

    // Best.
    out.push_str("## Best\n\n");
    match best_line(view) {
        Some(l) => {
            let _ = writeln!(out, "- Best: {l}");
            if let Some(c) = confidence_line(view) {
                let _ = writeln!(out, "- Confidence: {c}");
            }
            if let Some(bi) = view.best
                && let Some(p) = view.nodes[bi].params()
            {
                let _ = writeln!(
                    out,
                    "- Params: {}",
                    md_code(&serde_json::to_string(p).unwrap_or_default())
                );
            }
        }
        None => out.push_str("- No completed experiment with a primary metric yet.\n"),
    }
    let _ = writeln!(out, "- Noise floor: {}", noise_floor_line(view));
    out.push('\n');

    out.push_str("## Parameter importance\n\n");
    write_importance(view, &mut out);
    out.push('\n');

    // Plateau and budgets.
    out.push_str("## Budgets\n\n");
    let st = view.state.as_ref();
    let limits = view.limits();
    let of = |used: String, lim: Option<f64>, what: &str| match lim {
        Some(l) => format!("{used} of {} ({what})", fmt_value(l)),
        None => format!("{used} (no {what})"),
    };
    let started = st
        .map(|s| s.experiments_started)
        .unwrap_or((c.completed + c.failed + c.running) as u64);
    let _ = writeln!(
        out,
        "- Experiments started: {}",
        of(
            started.to_string(),
            limits.map(|l| l.max_experiments as f64),
            "max_experiments"
        )
    );
    match st {
        Some(s) => {
            let time = match limits.and_then(|l| l.time_budget_s) {
                Some(l) => format!(
                    "{} of {} (time_budget_s)",
                    fmt_secs(s.time_used_s),
                    fmt_secs(l)
                ),
                None => format!("{} (no time_budget_s)", fmt_secs(s.time_used_s)),
            };
            let _ = writeln!(out, "- Time used: {time}");
            let _ = writeln!(
                out,
                "- Plateau: {}",
                of(
                    s.plateau.to_string(),
                    limits.map(|l| f64::from(l.patience)),
                    "patience"
                )
            );
            let _ = writeln!(out, "- Planner rounds: {}", s.planner_rounds);
            if let Some(cost) = AgentCostSummary::of(s.agent_cost.as_ref(), &view.root) {
                let budget = limits
                    .and_then(|l| l.agent_cost_usd)
                    .map(|b| format!(" of ${} (agent_cost_usd)", fmt_value(b)))
                    .unwrap_or_default();
                let _ = writeln!(out, "- Agent cost: {}{budget}", md_cell(&cost.describe()));
            }
        }
        None => out.push_str("- No state.json yet: time used and plateau unknown.\n"),
    }
    out.push('\n');

    // Running now.
    out.push_str("## Running now\n\n");
    let active: Vec<usize> = (0..view.nodes.len())
        .filter(|&i| view.nodes[i].is_active())
        .collect();
    if active.is_empty() {
        out.push_str("Nothing is running.\n");
    } else {
        out.push_str("| node | phase | job | host | running for |\n|---|---|---|---|---|\n");
        for &i in &active {
            let n = &view.nodes[i];
            let (job, host, since) = match &n.job {
                Some(j) => (
                    md_code(&j.job_id),
                    md_cell(&j.host),
                    age(&j.started_at, now).unwrap_or_default(),
                ),
                None => ("-".to_owned(), String::new(), String::new()),
            };
            let _ = writeln!(
                out,
                "| {} | {} | {job} | {host} | {since} |",
                md_code(&n.id),
                n.status
            );
        }
    }
    out.push('\n');

    // Last results.
    let _ = writeln!(out, "## Last results\n");
    if view.completion_order.is_empty() {
        out.push_str("No finished experiments yet.\n");
    } else {
        let _ = writeln!(
            out,
            "| # | node | status | {} | vs baseline | improved | duration |\n|---:|---|---|---:|---:|---|---:|",
            md_cell(&view.metric)
        );
        let total = view.completion_order.len();
        for (k, &i) in view
            .completion_order
            .iter()
            .enumerate()
            .skip(total.saturating_sub(LAST_RESULTS))
            .rev()
        {
            let n = &view.nodes[i];
            let (value, vs) = value_cells(view, i);
            let status = match (&n.failure, n.status) {
                (Some(f), NodeStatus::Failed) => format!("failed: {}", f.kind.as_str()),
                (_, s) => s.to_string(),
            };
            let _ = writeln!(
                out,
                "| {} | {} ({}) | {} | {} | {vs} | {} | {} |",
                k + 1,
                md_code(&n.id),
                md_cell(&elide_chars(n.name(), 40)),
                status,
                value,
                improved_cell(view, i),
                n.result
                    .as_ref()
                    .map(|r| fmt_secs(r.duration_s))
                    .unwrap_or_default()
            );
        }
        if view.completion_source == CompletionSource::Mtime {
            out.push_str("\n_Completion order from file modification times._\n");
        }
    }
    out.push('\n');

    out.push_str("## Failures by kind\n\n");
    write_failures(view, &mut out);

    if !view.warnings.is_empty() {
        out.push_str("\n## Skipped files\n\n");
        for w in view.warnings.iter().take(MAX_WARNINGS) {
            let _ = writeln!(out, "- {}", md_cell(w));
        }
        if view.warnings.len() > MAX_WARNINGS {
            let _ = writeln!(out, "- … and {} more", view.warnings.len() - MAX_WARNINGS);
        }
    }
    out
}
