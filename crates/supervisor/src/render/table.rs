//! `master_table.tsv`: one row per node in creation order.
//!
//! Columns: `node_id name parent_id status`, the primary metric (named by the metric), the other
//! metrics sorted by name, then `duration_s improved params hypothesis failure`. A value's
//! backslashes, tabs, newlines and carriage returns are written as `\\`, `\t`, `\n`, `\r`, so
//! every row is exactly one line and splitting on tabs is always right. Missing values are empty
//! cells. Numbers use the shortest text that reads back as the same `f64` (`1e-7`, `12.5`).

use std::fmt::Write as _;

use autoresearch_adapters::model::NodeStatus;

use super::load::RunView;

/// The fixed columns after the metrics.
pub const TRAILING_COLUMNS: [&str; 5] =
    ["duration_s", "improved", "params", "hypothesis", "failure"];
/// The fixed columns before the metrics.
pub const LEADING_COLUMNS: [&str; 4] = ["node_id", "name", "parent_id", "status"];

/// Escapes a cell: `\` → `\\`, tab → `\t`, newline → `\n`, carriage return → `\r`.
pub fn escape_cell(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out
}

/// The inverse of [`escape_cell`].
pub fn unescape_cell(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('\\') => out.push('\\'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// A number as the shortest text that parses back to the same value (`NaN`, `inf` as such).
pub fn fmt_number(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_owned()
    } else if v.is_infinite() {
        if v > 0.0 { "inf".into() } else { "-inf".into() }
    } else if v == v.trunc() && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v:?}")
    }
}

/// The header columns for `view`.
pub fn columns(view: &RunView) -> Vec<String> {
    let mut cols: Vec<String> = LEADING_COLUMNS.iter().map(|s| s.to_string()).collect();
    cols.push(view.metric.clone());
    cols.extend(view.other_metrics.iter().cloned());
    cols.extend(TRAILING_COLUMNS.iter().map(|s| s.to_string()));
    cols
}

/// Renders the whole table (header line plus one line per node, each ending in `\n`).
pub fn render_table(view: &RunView) -> String {
    let mut out = String::with_capacity(256 * (view.nodes.len() + 1));
    let header: Vec<String> = columns(view).iter().map(|c| escape_cell(c)).collect();
    out.push_str(&header.join("\t"));
    out.push('\n');
    for (i, n) in view.nodes.iter().enumerate() {
        let mut cells: Vec<String> = Vec::with_capacity(header.len());
        cells.push(escape_cell(&n.id));
        cells.push(escape_cell(n.name()));
        cells.push(escape_cell(n.parent_id().unwrap_or("")));
        cells.push(n.status.as_str().to_owned());
        cells.push(view.primary(i).map(fmt_number).unwrap_or_default());
        for m in &view.other_metrics {
            cells.push(n.metric(m).map(fmt_number).unwrap_or_default());
        }
        let r = n.result.as_ref();
        cells.push(r.map(|r| fmt_number(r.duration_s)).unwrap_or_default());
        cells.push(match (r, n.status) {
            (Some(r), _) => r.improved.to_string(),
            (None, NodeStatus::Failed) => "false".to_owned(),
            (None, _) => String::new(),
        });
        cells.push(
            n.params()
                .map(|p| escape_cell(&serde_json::to_string(p).unwrap_or_default()))
                .unwrap_or_default(),
        );
        cells.push(escape_cell(
            n.spec.as_ref().map(|s| s.hypothesis.as_str()).unwrap_or(""),
        ));
        let failure = match &n.failure {
            Some(f) => {
                let mut s = f.kind.as_str().to_owned();
                if !f.message.is_empty() {
                    let _ = write!(s, ": {}", f.message);
                }
                s
            }
            None if n.status == NodeStatus::Failed => "unknown (failure.json unreadable)".into(),
            None => String::new(),
        };
        cells.push(escape_cell(&failure));
        out.push_str(&cells.join("\t"));
        out.push('\n');
    }
    out
}
