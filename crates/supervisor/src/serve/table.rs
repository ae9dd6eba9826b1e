//! The experiments table: filter (status, text, parameter ranges), sort (any column), page,
//! and the same selection as CSV. Works on a [`Snapshot`] in memory, so a page of a
//! 10,000-node run costs a filter and a sort of 10,000 rows, not a read of 10,000 files.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use autoresearch_adapters::model::NodeStatus;
use serde::Serialize;
use serde_json::{Map, Value};

use super::api::failure_text;
use super::snapshot::Snapshot;
use autoresearch_adapters::workflow::nodes::plain;

/// Rows per page unless asked otherwise.
pub const DEFAULT_LIMIT: usize = 50;
/// The most rows one page may have.
pub const MAX_LIMIT: usize = 1000;

/// A parsed table request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TableQuery {
    /// First row (0-based) of the page.
    pub offset: usize,
    /// Rows per page.
    pub limit: usize,
    /// Sort column: `id` (creation order, the default), `name`, `status`, `value` (primary
    /// metric), `finished` (completion order), `duration`, `parent`, `m:<metric>`, `p:<param>`.
    pub sort: String,
    /// Descending order.
    pub desc: bool,
    /// Statuses kept (`queued`, `running` = every active phase, a phase name, `completed`,
    /// `improved`, `failed`); empty keeps all.
    pub status: Vec<String>,
    /// Words that must all occur in a row's text (case-insensitive).
    pub words: Vec<String>,
    /// Numeric ranges on parameters: name → (min, max), both inclusive.
    pub ranges: BTreeMap<String, (Option<f64>, Option<f64>)>,
}

/// Why a table request was refused.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct QueryError(pub String);

impl TableQuery {
    /// Parses the query string pairs: `offset`, `limit`, `sort`, `desc`, `status` (comma
    /// list), `q`, `min.<param>`, `max.<param>`. Unknown keys are ignored (`token`).
    pub fn parse(pairs: &[(String, String)]) -> Result<TableQuery, QueryError> {
        let mut q = TableQuery {
            limit: DEFAULT_LIMIT,
            sort: "id".to_owned(),
            ..TableQuery::default()
        };
        let num = |k: &str, v: &str| -> Result<f64, QueryError> {
            v.trim()
                .parse::<f64>()
                .ok()
                .filter(|f| f.is_finite())
                .ok_or_else(|| QueryError(format!("{k}: expected a number, found {v:?}")))
        };
        for (k, v) in pairs {
            match k.as_str() {
                "offset" => {
                    q.offset = v.parse().map_err(|_| {
                        QueryError(format!("offset: expected a row number, found {v:?}"))
                    })?
                }
                "limit" => {
                    let l: usize = v.parse().map_err(|_| {
                        QueryError(format!("limit: expected a number of rows, found {v:?}"))
                    })?;
                    if l == 0 || l > MAX_LIMIT {
                        return Err(QueryError(format!(
                            "limit: expected 1 to {MAX_LIMIT} rows, found {l}"
                        )));
                    }
                    q.limit = l;
                }
                "sort" if !v.is_empty() => q.sort = v.clone(),
                "desc" => q.desc = matches!(v.as_str(), "1" | "true" | "yes"),
                "status" => {
                    q.status = v
                        .split(',')
                        .map(|s| s.trim().to_ascii_lowercase())
                        .filter(|s| !s.is_empty())
                        .collect();
                    for s in &q.status {
                        if !matches!(s.as_str(), "running" | "improved")
                            && NodeStatus::parse(s).is_none()
                        {
                            return Err(QueryError(format!(
                                "status: expected queued, running, completed, improved, failed or a phase name, found {s:?}"
                            )));
                        }
                    }
                }
                "q" => {
                    q.words = v.split_whitespace().map(str::to_lowercase).collect();
                }
                _ => {
                    if let Some(p) = k.strip_prefix("min.") {
                        if !v.trim().is_empty() {
                            q.ranges.entry(p.to_owned()).or_default().0 = Some(num(k, v)?);
                        }
                    } else if let Some(p) = k.strip_prefix("max.")
                        && !v.trim().is_empty()
                    {
                        q.ranges.entry(p.to_owned()).or_default().1 = Some(num(k, v)?);
                    }
                }
            }
        }
        Ok(q)
    }
}

/// Indices of the nodes the query keeps, in its order.
pub fn select(snap: &Snapshot, q: &TableQuery) -> Vec<usize> {
    let view = &snap.view;
    let mut rows: Vec<usize> = (0..view.nodes.len())
        .filter(|&i| keeps(snap, q, i))
        .collect();
    let key = SortKey::parse(&q.sort);
    rows.sort_by(|&a, &b| {
        let ord = compare(snap, &key, a, b, q.desc);
        ord.then_with(|| a.cmp(&b))
    });
    rows
}

fn keeps(snap: &Snapshot, q: &TableQuery, i: usize) -> bool {
    let n = &snap.view.nodes[i];
    if !q.status.is_empty()
        && !q.status.iter().any(|s| match s.as_str() {
            "running" => n.is_active(),
            "improved" => n.status == NodeStatus::Completed && n.improved(),
            other => n.status.as_str() == other,
        })
    {
        return false;
    }
    if !q.words.iter().all(|w| snap.search[i].contains(w.as_str())) {
        return false;
    }
    for (p, (lo, hi)) in &q.ranges {
        let Some(v) = n.params().and_then(|ps| ps.get(p)).and_then(number) else {
            return false;
        };
        if lo.is_some_and(|lo| v < lo) || hi.is_some_and(|hi| v > hi) {
            return false;
        }
    }
    true
}

/// A parameter value as a number (numbers, and strings that hold one).
fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        Value::Bool(b) => Some(f64::from(u8::from(*b))),
        _ => None,
    }
}

enum SortKey {
    Id,
    Name,
    Status,
    Value,
    Finished,
    Duration,
    Parent,
    Metric(String),
    Param(String),
}

impl SortKey {
    fn parse(s: &str) -> SortKey {
        match s {
            "name" => SortKey::Name,
            "status" => SortKey::Status,
            "value" | "primary" => SortKey::Value,
            "finished" => SortKey::Finished,
            "duration" => SortKey::Duration,
            "parent" => SortKey::Parent,
            _ => {
                if let Some(m) = s.strip_prefix("m:") {
                    SortKey::Metric(m.to_owned())
                } else if let Some(p) = s.strip_prefix("p:") {
                    SortKey::Param(p.to_owned())
                } else {
                    SortKey::Id
                }
            }
        }
    }
}

/// Orders two optional keys; a missing key goes last whatever the direction.
fn opt<T>(a: Option<T>, b: Option<T>, desc: bool, cmp: impl Fn(&T, &T) -> Ordering) -> Ordering {
    match (a, b) {
        (Some(x), Some(y)) => {
            let o = cmp(&x, &y);
            if desc { o.reverse() } else { o }
        }
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

/// Numbers before text; numbers by value, text by its characters.
fn cmp_values(a: &Value, b: &Value) -> Ordering {
    match (number(a), number(b)) {
        (Some(x), Some(y)) => x.total_cmp(&y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => plain(a).cmp(&plain(b)),
    }
}

fn compare(snap: &Snapshot, key: &SortKey, a: usize, b: usize, desc: bool) -> Ordering {
    let view = &snap.view;
    let (na, nb) = (&view.nodes[a], &view.nodes[b]);
    let f = |x: &f64, y: &f64| x.total_cmp(y);
    match key {
        SortKey::Id => {
            let o = (na.seq, &na.id).cmp(&(nb.seq, &nb.id));
            if desc { o.reverse() } else { o }
        }
        SortKey::Name => {
            let o = na.name().cmp(nb.name());
            if desc { o.reverse() } else { o }
        }
        SortKey::Status => {
            let o = na.status.cmp(&nb.status);
            if desc { o.reverse() } else { o }
        }
        SortKey::Value => opt(view.primary(a), view.primary(b), desc, f),
        SortKey::Finished => opt(snap.finish_rank[a], snap.finish_rank[b], desc, |x, y| {
            x.cmp(y)
        }),
        SortKey::Duration => opt(
            na.result.as_ref().map(|r| r.duration_s),
            nb.result.as_ref().map(|r| r.duration_s),
            desc,
            f,
        ),
        SortKey::Parent => opt(na.parent_id(), nb.parent_id(), desc, |x, y| x.cmp(y)),
        SortKey::Metric(m) => opt(
            na.metric(m).filter(|v| v.is_finite()),
            nb.metric(m).filter(|v| v.is_finite()),
            desc,
            f,
        ),
        SortKey::Param(p) => opt(
            na.params().and_then(|ps| ps.get(p)),
            nb.params().and_then(|ps| ps.get(p)),
            desc,
            |x, y| cmp_values(x, y),
        ),
    }
}

/// One row of the table.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Node id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Lifecycle status.
    pub status: String,
    /// Parent id.
    pub parent: Option<String>,
    /// Primary metric value (the aggregate of its runs).
    pub value: Option<f64>,
    /// The spread of its runs, when it ran more than once.
    pub spread: Option<autoresearch_adapters::model::Spread>,
    /// It beat the best at first but its confirmation runs did not hold it.
    pub unconfirmed: bool,
    /// Every metric reported.
    pub metrics: BTreeMap<String, f64>,
    /// Parameter values.
    pub params: Map<String, Value>,
    /// Wall time of the job.
    pub duration_s: Option<f64>,
    /// Whether it improved on the best.
    pub improved: bool,
    /// Whether it is the best node.
    pub best: bool,
    /// Position in completion order (0 = finished first).
    pub finished: Option<u32>,
    /// Failure kind and message.
    pub failure: Option<String>,
    /// Why it was tried.
    pub hypothesis: String,
}

fn row(snap: &Snapshot, i: usize) -> Row {
    let view = &snap.view;
    let n = &view.nodes[i];
    Row {
        id: n.id.clone(),
        name: n.name().to_owned(),
        status: n.status.to_string(),
        parent: n.parent_id().map(str::to_owned),
        value: view.primary(i),
        spread: n.spread().copied(),
        unconfirmed: n.unconfirmed(),
        metrics: n
            .result
            .as_ref()
            .map(|r| r.metrics.clone())
            .unwrap_or_default(),
        params: n.params().cloned().unwrap_or_default(),
        duration_s: n.result.as_ref().map(|r| r.duration_s),
        improved: n.improved(),
        best: view.best == Some(i),
        finished: snap.finish_rank[i],
        failure: failure_text(view, i),
        hypothesis: n
            .spec
            .as_ref()
            .map(|s| s.hypothesis.clone())
            .unwrap_or_default(),
    }
}

/// `GET /api/w/{key}/nodes`: one page of the selection.
#[derive(Debug, Clone, Serialize)]
pub struct Page {
    /// Snapshot version.
    pub version: u64,
    /// All nodes.
    pub total: usize,
    /// Nodes the filter keeps.
    pub matched: usize,
    /// First row of this page.
    pub offset: usize,
    /// Rows per page.
    pub limit: usize,
    /// Primary metric name.
    pub metric: String,
    /// Other metric names (one column each).
    pub metrics: Vec<String>,
    /// Parameter names (one column each).
    pub params: Vec<String>,
    /// The rows of this page.
    pub rows: Vec<Row>,
}

/// One page of the table.
pub fn page(snap: &Snapshot, q: &TableQuery) -> Page {
    let sel = select(snap, q);
    let rows = sel
        .iter()
        .skip(q.offset)
        .take(q.limit)
        .map(|&i| row(snap, i))
        .collect();
    Page {
        version: snap.version,
        total: snap.view.nodes.len(),
        matched: sel.len(),
        offset: q.offset,
        limit: q.limit,
        metric: snap.view.metric.clone(),
        metrics: snap.view.other_metrics.clone(),
        params: snap.params.clone(),
        rows,
    }
}

/// A text cell that a spreadsheet would take for a formula (`=`, `+`, `-`, `@`, tab, CR at the
/// start) gets a leading `'`, so opening the CSV runs nothing. Numbers are not text cells.
fn text_cell(s: &str) -> String {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_owned()
    }
}

fn num_cell(v: Option<f64>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

/// The whole selection as CSV, columns as in `master_table.tsv`: `node_id name parent_id status`,
/// the primary metric, the other metrics, `duration_s improved`, one column per parameter, then
/// `hypothesis failure`.
pub fn csv(snap: &Snapshot, q: &TableQuery) -> Result<Vec<u8>, csv::Error> {
    let view = &snap.view;
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut header: Vec<String> = ["node_id", "name", "parent_id", "status"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    header.push(view.metric.clone());
    header.extend(view.other_metrics.iter().cloned());
    header.extend(["duration_s".to_owned(), "improved".to_owned()]);
    header.extend(snap.params.iter().cloned());
    header.extend(["hypothesis".to_owned(), "failure".to_owned()]);
    w.write_record(&header)?;
    for i in select(snap, q) {
        let r = row(snap, i);
        let mut rec: Vec<String> = vec![
            text_cell(&r.id),
            text_cell(&r.name),
            text_cell(r.parent.as_deref().unwrap_or("")),
            r.status.clone(),
            num_cell(r.value),
        ];
        for m in &view.other_metrics {
            rec.push(num_cell(r.metrics.get(m).copied()));
        }
        rec.push(num_cell(r.duration_s));
        rec.push(r.improved.to_string());
        for p in &snap.params {
            rec.push(match r.params.get(p) {
                Some(v @ Value::Number(_)) => v.to_string(),
                Some(v) => text_cell(&plain(v)),
                None => String::new(),
            });
        }
        rec.push(text_cell(&r.hypothesis));
        rec.push(text_cell(r.failure.as_deref().unwrap_or("")));
        w.write_record(&rec)?;
    }
    w.into_inner().map_err(|e| e.into_error().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(s: &[(&str, &str)]) -> Vec<(String, String)> {
        s.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_a_full_query() {
        let q = TableQuery::parse(&pairs(&[
            ("offset", "100"),
            ("limit", "25"),
            ("sort", "p:workers"),
            ("desc", "1"),
            ("status", "completed, failed"),
            ("q", "Big  chunk"),
            ("min.workers", "2"),
            ("max.workers", "8"),
            ("max.chunk", ""),
            ("token", "ignored"),
        ]))
        .unwrap();
        assert_eq!(q.offset, 100);
        assert_eq!(q.limit, 25);
        assert_eq!(q.sort, "p:workers");
        assert!(q.desc);
        assert_eq!(q.status, ["completed", "failed"]);
        assert_eq!(q.words, ["big", "chunk"]);
        assert_eq!(q.ranges["workers"], (Some(2.0), Some(8.0)));
        assert!(!q.ranges.contains_key("chunk"));
    }

    #[test]
    fn refuses_bad_values_with_the_field_named() {
        for (k, v, says) in [
            ("limit", "0", "limit: expected 1 to 1000"),
            ("limit", "many", "limit: expected a number"),
            ("offset", "-1", "offset: expected a row number"),
            ("status", "done", "status: expected queued"),
            ("min.workers", "lots", "min.workers: expected a number"),
            ("max.workers", "inf", "max.workers: expected a number"),
        ] {
            let e = TableQuery::parse(&pairs(&[(k, v)])).unwrap_err();
            assert!(e.0.starts_with(says), "{k}={v}: {e}");
        }
    }

    #[test]
    fn csv_text_cells_cannot_be_formulas() {
        assert_eq!(text_cell("=cmd|' /C calc'!A0"), "'=cmd|' /C calc'!A0");
        assert_eq!(text_cell("-2+3"), "'-2+3");
        assert_eq!(text_cell("plain"), "plain");
    }
}
