//! The table as data: a real run (engine, jobs, files), then `master_table.tsv`,
//! `supervisor export --format csv` and `--format json` read back by Python's `csv` and `json`
//! modules, as a pandas user would: one column per parameter, the right values, one row per
//! experiment.

use crate::support;

use std::process::Command;

use serde_json::{Value, json};
use support::Lab;

/// The job prints a score computed from two parameters; `mode` has values that need quoting in
/// CSV (a comma, a double quote) and a tab that the TSV escapes.
fn finished_run(lab: &Lab) -> &'static str {
    lab.open_gate();
    let cfg = json!({
        "objective": {"metric": "score", "direction": "maximize"},
        "job": {"command": "sh job.sh {workers}", "cwd": lab.root, "timeout_s": 120},
        "search_space": {
            "workers": [1, 2, 4, 8],
            "mode": ["plain", "a,b \"q\"", "tab\there"],
            "lr": {"min": 0.001, "max": 1, "scale": "log"}
        },
        "baseline": {"workers": 1, "mode": "plain", "lr": 0.01},
        "seeds": [
            {"name": "w2", "params": {"workers": 2, "mode": "a,b \"q\""}},
            {"name": "w4", "params": {"workers": 4, "mode": "tab\there", "lr": 0.5}},
            {"name": "w8", "params": {"workers": 8}}
        ],
        "planner": {"kind": "none"},
        "limits": {"max_experiments": 4, "max_concurrency": 1, "patience": 20}
    });
    let path = lab.write("cfg.json", &serde_json::to_string_pretty(&cfg).unwrap());
    lab.sup(&["run", "wd", "--config", path.to_str().unwrap()])
        .ok();
    "wd"
}

/// Runs a Python program with `args`; returns its stdout parsed as JSON.
fn python(program: &str, args: &[&str]) -> Value {
    let out = Command::new("python3")
        .arg("-c")
        .arg(program)
        .args(args)
        .output()
        .expect("python3 runs (it is installed on CI machines)");
    assert!(
        out.status.success(),
        "python failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "python printed no JSON ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Reads a delimited file with Python's csv module: `{"header": [...], "rows": [[...]]}`.
const READ_WITH_CSV: &str = r#"
import csv, json, sys
path, fmt = sys.argv[1], sys.argv[2]
with open(path, newline="") as f:
    if fmt == "tsv":
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
    else:
        reader = csv.reader(f)
    rows = list(reader)
print(json.dumps({"header": rows[0], "rows": rows[1:]}))
"#;

fn column(table: &Value, name: &str) -> Vec<String> {
    let header: Vec<&str> = table["header"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let k = header
        .iter()
        .position(|h| *h == name)
        .unwrap_or_else(|| panic!("no column {name} in {header:?}"));
    table["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r[k].as_str().unwrap().to_owned())
        .collect()
}

const EXPECTED_HEADER: [&str; 19] = [
    "node_id",
    "name",
    "parent_id",
    "status",
    "score",
    "runs",
    "spread_min",
    "spread_max",
    "spread_stdev",
    "other",
    "duration_s",
    "improved",
    "unconfirmed",
    "params_workers",
    "params_mode",
    "params_lr",
    "params",
    "hypothesis",
    "failure",
];

#[test]
fn tsv_and_csv_load_with_one_column_per_parameter() {
    let lab = Lab::new();
    let wd = finished_run(&lab);

    // master_table.tsv (rendered at the end of the run).
    let tsv = python(
        READ_WITH_CSV,
        &[
            lab.path(wd).join("master_table.tsv").to_str().unwrap(),
            "tsv",
        ],
    );
    assert_eq!(tsv["header"], json!(EXPECTED_HEADER));
    assert_eq!(
        tsv["rows"].as_array().unwrap().len(),
        4,
        "one row per experiment"
    );
    assert_eq!(column(&tsv, "params_workers"), ["1", "2", "4", "8"]);
    // The TSV escapes tabs (`\t`), so the tab in a value never splits a row.
    assert_eq!(
        column(&tsv, "params_mode"),
        ["plain", "a,b \"q\"", "tab\\there", "plain"]
    );
    assert_eq!(column(&tsv, "params_lr"), ["0.01", "0.01", "0.5", "0.01"]);
    assert_eq!(column(&tsv, "score"), ["1", "2", "4", "8"]);
    assert_eq!(column(&tsv, "status"), ["completed"; 4]);

    // CSV export to a file: exact values, quoted where needed.
    lab.sup(&["export", wd, "--format", "csv", "--output", "table.csv"])
        .ok();
    let csv = python(
        READ_WITH_CSV,
        &[lab.path("table.csv").to_str().unwrap(), "csv"],
    );
    assert_eq!(csv["header"], json!(EXPECTED_HEADER));
    assert_eq!(csv["rows"].as_array().unwrap().len(), 4);
    assert_eq!(column(&csv, "params_workers"), ["1", "2", "4", "8"]);
    assert_eq!(
        column(&csv, "params_mode"),
        ["plain", "a,b \"q\"", "tab\there", "plain"]
    );
    assert_eq!(column(&csv, "score"), ["1", "2", "4", "8"]);
    assert_eq!(column(&csv, "other"), ["10", "20", "40", "80"]);
    let params: Value = serde_json::from_str(&column(&csv, "params")[2]).unwrap();
    assert_eq!(
        params,
        json!({"workers": 4, "mode": "tab\there", "lr": 0.5})
    );
}

#[test]
fn json_export_has_typed_values() {
    let lab = Lab::new();
    let wd = finished_run(&lab);
    let out = lab.sup(&["export", wd, "--format", "json"]);
    out.ok();
    let rows: Value = serde_json::from_str(&out.stdout).unwrap();
    let rows = rows.as_array().expect("an array");
    assert_eq!(rows.len(), 4);
    let keys: Vec<&str> = rows[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, EXPECTED_HEADER, "keys in column order");
    assert_eq!(rows[1]["params_workers"], json!(2));
    assert_eq!(rows[1]["params_mode"], json!("a,b \"q\""));
    assert_eq!(rows[2]["params_lr"], json!(0.5));
    assert_eq!(rows[3]["score"], json!(8.0));
    assert_eq!(rows[0]["improved"], json!(true));
    assert_eq!(rows[0]["parent_id"], Value::Null);
    assert_eq!(rows[0]["failure"], Value::Null);
    assert_eq!(
        rows[2]["params"],
        json!({"workers": 4, "mode": "tab\there", "lr": 0.5})
    );
}

#[test]
fn export_refuses_what_is_not_a_workdir_and_an_unknown_format() {
    let lab = Lab::new();
    lab.sup(&["export", "nowhere", "--format", "csv"])
        .readable_error(2);
    let out = lab.sup(&["export", "nowhere", "--format", "xlsx"]);
    out.expect_code(2);
    assert!(
        out.stderr.contains("csv") && out.stderr.contains("json"),
        "{}",
        out.stderr
    );
    assert!(!lab.path("nowhere").exists(), "nothing was created");
}
