//! `supervisor export <workdir> --format csv|json [--output FILE]`: the node table with one
//! column per parameter, for pandas and spreadsheets.
//!
//! Both formats hold exactly the columns of `master_table.tsv` (same names, same order, see
//! `docs/views.md`). CSV is RFC 4180 (fields quoted when they hold a comma, a quote or a line
//! break, through the `csv` crate), values unescaped. JSON is an array with one object per
//! node, keys in column order, values typed: numbers as numbers, `improved` as a boolean,
//! parameters as the spec has them, `params` as an object, missing values as `null`.

use std::path::Path;

use anyhow::{Context, Result};
use clap::ValueEnum;
use serde_json::{Map, Value};

use crate::render::RunView;
use crate::render::table::{Table, build_table};

/// The export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Comma-separated values with a header line.
    Csv,
    /// A JSON array of objects with typed values.
    Json,
}

/// The table of `workdir` in `format`.
pub fn export(workdir: &Path, format: Format) -> Result<Vec<u8>> {
    super::require_workdir(workdir)?;
    let view = RunView::load(workdir)?;
    let table = build_table(&view);
    match format {
        Format::Csv => to_csv(&table),
        Format::Json => to_json(&table),
    }
}

/// Writes the export to `output` atomically (a reader never sees half a file), or to stdout.
pub fn run(workdir: &Path, format: Format, output: Option<&Path>) -> Result<String> {
    let bytes = export(workdir, format)?;
    match output {
        Some(path) => {
            autoresearch_engine::atomic::write_atomic(path, &bytes).with_context(|| {
                format!(
                    "writing {}: check that its folder exists and is writable",
                    path.display()
                )
            })?;
            Ok(format!("wrote {}", path.display()))
        }
        None => {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            out.write_all(&bytes)
                .and_then(|()| out.flush())
                .context("writing to standard output")?;
            Ok(String::new())
        }
    }
}

fn to_csv(table: &Table) -> Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(&table.columns)?;
    for row in &table.rows {
        w.write_record(row.iter().map(|c| c.text()))?;
    }
    w.into_inner().context("finishing the CSV")
}

fn to_json(table: &Table) -> Result<Vec<u8>> {
    let rows: Vec<Value> = table
        .rows
        .iter()
        .map(|row| {
            let obj: Map<String, Value> = table
                .columns
                .iter()
                .cloned()
                .zip(row.iter().map(|c| c.json()))
                .collect();
            Value::Object(obj)
        })
        .collect();
    let mut bytes = serde_json::to_vec_pretty(&rows)?;
    bytes.push(b'\n');
    Ok(bytes)
}
