//! The node table: one row per node in creation order, built once as typed [`Cell`]s and
//! written as `master_table.tsv` ([`render_table`]) or exported as CSV or JSON
//! (`supervisor export`, [`crate::commands::export`]).
//!
//! Columns: `node_id name parent_id status`, the primary metric (named by the metric),
//! `runs spread_min spread_max spread_stdev`, the other metrics sorted by name,
//! `duration_s improved unconfirmed`, one `params_<name>` column per parameter (in
//! the order of [`param_axes`]), then `params` (all of them as one JSON object),
//! `hypothesis failure`. In the TSV, a value's backslashes, tabs, newlines and carriage returns
//! are written as `\\`, `\t`, `\n`, `\r`, so every row is exactly one line and splitting on
//! tabs is always right. Missing values are empty cells. Numbers use the shortest text that
//! reads back as the same `f64` (`1e-7`, `12.5`).

use std::fmt::Write as _;

use autoresearch_adapters::config::format_number;
use autoresearch_adapters::model::NodeStatus;
use autoresearch_adapters::workflow::nodes::plain;
use serde_json::{Map, Value};

use super::load::RunView;
use super::param_axes::param_axes;

/// The fixed columns right after the primary metric: how many runs it aggregates and their
/// spread (empty below two runs).
pub const SPREAD_COLUMNS: [&str; 4] = ["runs", "spread_min", "spread_max", "spread_stdev"];
/// The fixed columns between the metrics and the per-parameter columns.
pub const RESULT_COLUMNS: [&str; 3] = ["duration_s", "improved", "unconfirmed"];
/// The fixed columns after the per-parameter columns.
pub const TRAILING_COLUMNS: [&str; 3] = ["params", "hypothesis", "failure"];
/// Prefix of the per-parameter columns (`params_lr` for parameter `lr`).
pub const PARAM_PREFIX: &str = "params_";
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

/// One cell of the table, typed so each output format writes it its own way.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// No value (an empty cell; `null` in JSON).
    Empty,
    /// Text.
    Text(String),
    /// A number (`NaN` and infinities become `null` in JSON).
    Number(f64),
    /// `true` or `false`.
    Bool(bool),
    /// A parameter value as the spec has it (a string, number or boolean).
    Value(Value),
    /// All parameters: compact JSON text in the TSV and CSV, an object in JSON.
    Params(Map<String, Value>),
}

impl Cell {
    /// The cell as text (unescaped): numbers as the shortest text that reads back the same,
    /// strings as they are, the parameter object as compact JSON.
    pub fn text(&self) -> String {
        match self {
            Cell::Empty => String::new(),
            Cell::Text(s) => s.clone(),
            Cell::Number(v) => format_number(*v),
            Cell::Bool(b) => b.to_string(),
            Cell::Value(v) => plain(v),
            Cell::Params(p) => serde_json::to_string(p).unwrap_or_default(),
        }
    }

    /// The cell as a typed JSON value.
    pub fn json(&self) -> Value {
        match self {
            Cell::Empty => Value::Null,
            Cell::Text(s) => Value::String(s.clone()),
            Cell::Number(v) => serde_json::Number::from_f64(*v).map_or(Value::Null, Value::Number),
            Cell::Bool(b) => Value::Bool(*b),
            Cell::Value(v) => v.clone(),
            Cell::Params(p) => Value::Object(p.clone()),
        }
    }
}

/// The node table: column names and one row of cells per node (same length as the columns).
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// The column names, in order.
    pub columns: Vec<String>,
    /// One row per node, in creation order.
    pub rows: Vec<Vec<Cell>>,
}

/// Builds the node table of `view`.
pub fn build_table(view: &RunView) -> Table {
    let params: Vec<String> = param_axes(view).into_iter().map(|a| a.name).collect();
    let mut columns: Vec<String> = LEADING_COLUMNS.iter().map(|s| s.to_string()).collect();
    columns.push(view.metric.clone());
    columns.extend(SPREAD_COLUMNS.iter().map(|s| s.to_string()));
    columns.extend(view.other_metrics.iter().cloned());
    columns.extend(RESULT_COLUMNS.iter().map(|s| s.to_string()));
    columns.extend(params.iter().map(|p| format!("{PARAM_PREFIX}{p}")));
    columns.extend(TRAILING_COLUMNS.iter().map(|s| s.to_string()));

    let text = |s: &str| Cell::Text(s.to_owned());
    let number = |v: Option<f64>| v.map_or(Cell::Empty, Cell::Number);
    let rows = view
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let mut cells: Vec<Cell> = Vec::with_capacity(columns.len());
            cells.push(text(&n.id));
            cells.push(text(n.name()));
            cells.push(n.parent_id().map_or(Cell::Empty, text));
            cells.push(text(n.status.as_str()));
            cells.push(number(view.primary(i)));
            let r = n.result.as_ref();
            let runs = r.map(|r| r.n()).filter(|n| *n > 0);
            cells.push(runs.map_or(Cell::Empty, |n| Cell::Number(n as f64)));
            let spread = n.spread();
            cells.push(number(spread.map(|s| s.min)));
            cells.push(number(spread.map(|s| s.max)));
            cells.push(number(spread.map(|s| s.stdev)));
            for m in &view.other_metrics {
                cells.push(number(n.metric(m)));
            }
            cells.push(number(r.map(|r| r.duration_s)));
            cells.push(match (r, n.status) {
                (Some(r), _) => Cell::Bool(r.improved),
                (None, NodeStatus::Failed) => Cell::Bool(false),
                (None, _) => Cell::Empty,
            });
            cells.push(match r {
                Some(r) => Cell::Bool(r.unconfirmed),
                None => Cell::Empty,
            });
            let node_params = n.params();
            for p in &params {
                cells.push(
                    node_params
                        .and_then(|np| np.get(p))
                        .map_or(Cell::Empty, |v| Cell::Value(v.clone())),
                );
            }
            cells.push(node_params.map_or(Cell::Empty, |p| Cell::Params(p.clone())));
            cells.push(text(
                n.spec.as_ref().map(|s| s.hypothesis.as_str()).unwrap_or(""),
            ));
            cells.push(match &n.failure {
                Some(f) => {
                    let mut s = f.kind.as_str().to_owned();
                    if !f.message.is_empty() {
                        let _ = write!(s, ": {}", f.message);
                    }
                    Cell::Text(s)
                }
                None if n.status == NodeStatus::Failed => text("unknown (failure.json unreadable)"),
                None => Cell::Empty,
            });
            cells
        })
        .collect();
    Table { columns, rows }
}

/// The header columns for `view`.
pub fn columns(view: &RunView) -> Vec<String> {
    build_table(view).columns
}

/// Renders the whole table as TSV (header line plus one line per node, each ending in `\n`).
pub fn render_table(view: &RunView) -> String {
    let table = build_table(view);
    let mut out = String::with_capacity(256 * (table.rows.len() + 1));
    let header: Vec<String> = table.columns.iter().map(|c| escape_cell(c)).collect();
    out.push_str(&header.join("\t"));
    out.push('\n');
    for row in &table.rows {
        for (k, cell) in row.iter().enumerate() {
            if k > 0 {
                out.push('\t');
            }
            out.push_str(&escape_cell(&cell.text()));
        }
        out.push('\n');
    }
    out
}
