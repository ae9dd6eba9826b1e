//! Tests of the views: synthetic workdirs written with the model types, rendered, and checked by
//! decoding the PNGs and parsing the text views.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use autoresearch_adapters::model::{
    Failure, FailureKind, JobRecord, NodeResult, NodeSpec, NodeStatus, RunState,
};
use autoresearch_supervisor::render::{
    self, BEST_GOLD, COMPLETED_GREY, FAILED_RED, IMPROVED_GREEN, RUNNING_BLUE, RenderDebouncer,
    RenderError, RenderReport, RunView,
    debounce::ManualClock,
    importance::importance,
    param_axes::{AxisKind, param_axes},
    render_all, render_report,
    table::unescape_cell,
    tree::{MAX_SIDE, tidy_layout},
};
use plotters::style::RGBColor;
use serde_json::{Map, Value, json};

// ---------------------------------------------------------------------------------------------
// Workdir builder

struct Wd {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

fn write_json(path: &Path, v: &impl serde::Serialize) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, serde_json::to_vec(v).unwrap()).unwrap();
}

impl Wd {
    fn new(direction: &str) -> Wd {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("wd");
        fs::create_dir_all(root.join("engine/nodes")).unwrap();
        write_json(
            &root.join("config.json"),
            &json!({
                "objective": {"metric": "throughput", "direction": direction, "min_improvement": 0.01},
                "job": {"command": "sh bench.sh --workers {workers}", "cwd": "bench dir", "timeout_s": 60, "env": {}},
                "limits": {"max_experiments": 40, "patience": 8, "time_budget_s": null, "max_concurrency": 2}
            }),
        );
        Wd { _dir: dir, root }
    }

    fn spec(&self, id: &str, name: &str, parent: Option<&str>, params: Value, hypothesis: &str) {
        let params: Map<String, Value> = params.as_object().cloned().unwrap_or_default();
        write_json(
            &self.root.join("engine/nodes").join(id).join("spec.json"),
            &NodeSpec {
                node_id: id.into(),
                name: name.into(),
                parent_id: parent.map(str::to_owned),
                hypothesis: hypothesis.into(),
                command: format!(
                    "sh bench.sh --workers {}",
                    params.get("workers").cloned().unwrap_or(json!(1))
                ),
                params,
                changes: None,
                priority: 0.0,
                created_at: "2026-01-01T00:00:00Z".into(),
            },
        );
    }

    fn status(&self, id: &str, status: NodeStatus) {
        fs::write(
            self.root.join("engine/nodes").join(id).join("status.txt"),
            format!("{status}\n"),
        )
        .unwrap();
    }

    fn completed(&self, id: &str, value: f64, improved: bool) {
        let mut metrics = BTreeMap::new();
        metrics.insert("throughput".to_owned(), value);
        metrics.insert("latency_ms".to_owned(), 1000.0 / value);
        write_json(
            &self.root.join("engine/nodes").join(id).join("result.json"),
            &NodeResult {
                metrics,
                primary: Some(value),
                improved,
                duration_s: 12.5,
                exit_code: Some(0),
                children: vec![],
                analysis: String::new(),
                metrics_dropped: 0,
                ..Default::default()
            },
        );
        self.status(id, NodeStatus::Completed);
    }

    fn failed(&self, id: &str, kind: FailureKind) {
        write_json(
            &self.root.join("engine/nodes").join(id).join("failure.json"),
            &Failure {
                kind,
                phase: NodeStatus::Running,
                message: "exit status 3\nstderr: boom".into(),
                retryable: false,
                details: Value::Null,
                created_at: "2026-01-01T00:00:00Z".into(),
            },
        );
        self.status(id, NodeStatus::Failed);
    }

    fn running(&self, id: &str) {
        write_json(
            &self.root.join("runs").join(id).join("job.json"),
            &JobRecord {
                job_id: "local:4242".into(),
                executor: "local".into(),
                pid: Some(4242),
                pid_start_ticks: Some(1),
                slurm_id: None,
                host: "testhost".into(),
                started_at: "2026-01-01T00:00:00Z".into(),
                attempt: 1,
            },
        );
        self.status(id, NodeStatus::Running);
    }

    fn state(&self, best: Option<(&str, f64)>, baseline: Option<(&str, f64)>) {
        write_json(
            &self.root.join("state.json"),
            &RunState {
                schema_version: 1,
                metric: "throughput".into(),
                direction: "maximize".into(),
                best_node: best.map(|b| b.0.to_owned()),
                best_value: best.map(|b| b.1),
                baseline_node: baseline.map(|b| b.0.to_owned()),
                baseline_value: baseline.map(|b| b.1),
                plateau: 2,
                experiments_started: 5,
                experiments_completed: 3,
                experiments_failed: 1,
                time_used_s: 125.0,
                planner_rounds: 3,
                next_index: 6,
                stop_reason: None,
                fail_fast: None,
                updated_at: "2026-01-01T00:00:00Z".into(),
                ..Default::default()
            },
        );
    }

    fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// With `RENDER_TEST_KEEP=DIR`, copies the rendered images to `DIR/<tag>-*.png` for a look.
    fn keep(&self, tag: &str) {
        let Some(dir) = std::env::var_os("RENDER_TEST_KEEP") else {
            return;
        };
        let dir = PathBuf::from(dir);
        fs::create_dir_all(&dir).unwrap();
        for f in [
            "progress.png",
            "hypothesis_tree.png",
            "params.png",
            "parallel.png",
        ] {
            if self.path(f).is_file() {
                fs::copy(self.path(f), dir.join(format!("{tag}-{f}"))).unwrap();
            }
        }
    }
}

/// A small run with every status: baseline (improved), a better child (improved, best), a worse
/// child, a failure, a running node and a queued one.
fn mixed_run() -> Wd {
    let wd = Wd::new("maximize");
    wd.spec(
        "000_baseline",
        "baseline",
        None,
        json!({"workers": 1}),
        "the baseline",
    );
    wd.completed("000_baseline", 100.0, true);
    wd.spec(
        "001_workers_2",
        "workers_2",
        Some("000_baseline"),
        json!({"workers": 2}),
        "more workers",
    );
    wd.completed("001_workers_2", 150.0, true);
    wd.spec(
        "002_workers_4",
        "workers_4",
        Some("001_workers_2"),
        json!({"workers": 4}),
        "even more",
    );
    wd.completed("002_workers_4", 140.0, false);
    wd.spec(
        "003_workers_8",
        "workers_8",
        Some("001_workers_2"),
        json!({"workers": 8}),
        "way more",
    );
    wd.failed("003_workers_8", FailureKind::NonzeroExit);
    wd.spec(
        "004_workers_3",
        "workers_3",
        Some("001_workers_2"),
        json!({"workers": 3}),
        "3",
    );
    wd.running("004_workers_3");
    wd.spec(
        "005_workers_5",
        "workers_5",
        Some("002_workers_4"),
        json!({"workers": 5}),
        "5",
    );
    wd.status("005_workers_5", NodeStatus::Queued);
    wd.state(
        Some(("001_workers_2", 150.0)),
        Some(("000_baseline", 100.0)),
    );
    wd
}

/// Completed without improvement and queued only: no green, red or blue anywhere.
fn grey_run() -> Wd {
    let wd = Wd::new("maximize");
    wd.spec(
        "000_baseline",
        "baseline",
        None,
        json!({"workers": 1}),
        "the baseline",
    );
    wd.completed("000_baseline", 100.0, false);
    wd.spec(
        "001_workers_2",
        "workers_2",
        Some("000_baseline"),
        json!({"workers": 2}),
        "h",
    );
    wd.completed("001_workers_2", 90.0, false);
    wd.spec(
        "002_workers_4",
        "workers_4",
        Some("000_baseline"),
        json!({"workers": 4}),
        "h",
    );
    wd.status("002_workers_4", NodeStatus::Queued);
    wd
}

/// A run over a configured search space: `workers` (int, log-scaled) decides the metric,
/// `opt` (choices) and `lr` (float) are noise; 24 completed experiments and 2 failures.
fn space_run() -> Wd {
    let wd = Wd::new("maximize");
    write_json(
        &wd.path("config.json"),
        &json!({
            "objective": {"metric": "throughput", "direction": "maximize", "min_improvement": 0.01},
            "job": {"command": "sh bench.sh --workers {workers} --opt {opt} --lr {lr}", "timeout_s": 60},
            "search_space": {
                "workers": {"min": 1, "max": 64, "scale": "log", "type": "int"},
                "opt": ["sgd", "adam", "lamb"],
                "lr": {"min": 0.001, "max": 0.1}
            },
            "baseline": {"workers": 1, "opt": "sgd", "lr": 0.01},
            "limits": {"max_experiments": 40, "patience": 8, "max_concurrency": 2}
        }),
    );
    let workers = [1, 2, 4, 8, 16, 32, 64, 8];
    let mut best: (String, f64) = (String::new(), f64::MIN);
    let mut prev: Option<String> = None;
    for k in 0..26usize {
        let id = format!("{k:03}_e{k}");
        let w = workers[k % workers.len()];
        let opt = ["sgd", "adam", "lamb"][(k / 8) % 3];
        let params = json!({
            "workers": w,
            "opt": opt,
            "lr": 0.001 + 0.004 * (k % 5) as f64,
        });
        wd.spec(&id, &format!("e{k}"), prev.as_deref(), params, "h");
        if k == 5 || k == 13 {
            wd.failed(&id, FailureKind::NonzeroExit);
        } else {
            // Throughput is the number of workers (up to 32) plus a little noise.
            let value = f64::from(w.min(32)) * 10.0 + (k % 3) as f64;
            let improved = value > best.1;
            if improved {
                best = (id.clone(), value);
            }
            wd.completed(&id, value, improved);
        }
        prev = Some(id);
    }
    wd.state(Some((&best.0, best.1)), Some(("000_e0", 10.0)));
    wd
}

// ---------------------------------------------------------------------------------------------
// PNG helpers

struct Image {
    width: u32,
    height: u32,
    rgb: Vec<u8>,
}

fn decode(path: &Path) -> Image {
    let decoder = png::Decoder::new(fs::File::open(path).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(info.color_type, png::ColorType::Rgb, "{}", path.display());
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    buf.truncate(info.buffer_size());
    Image {
        width: info.width,
        height: info.height,
        rgb: buf,
    }
}

/// Width and height from the PNG header only (no decoding).
fn dims(path: &Path) -> (u32, u32) {
    let reader = png::Decoder::new(fs::File::open(path).unwrap())
        .read_info()
        .unwrap();
    let info = reader.info();
    (info.width, info.height)
}

impl Image {
    fn count(&self, c: RGBColor) -> usize {
        self.rgb
            .chunks_exact(3)
            .filter(|p| p[0] == c.0 && p[1] == c.1 && p[2] == c.2)
            .count()
    }

    /// Pixels darker than `limit` in every channel within the top `rows` rows (text).
    fn dark_in_top(&self, rows: u32, limit: u8) -> usize {
        let end = (rows.min(self.height) * self.width * 3) as usize;
        self.rgb[..end]
            .chunks_exact(3)
            .filter(|p| p[0] < limit && p[1] < limit && p[2] < limit)
            .count()
    }
}

// ---------------------------------------------------------------------------------------------
// TSV helpers

fn read_tsv(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let text = fs::read_to_string(path).unwrap();
    assert!(text.ends_with('\n'));
    let mut lines = text.split_terminator('\n');
    let header: Vec<String> = lines
        .next()
        .unwrap()
        .split('\t')
        .map(unescape_cell)
        .collect();
    let rows: Vec<Vec<String>> = lines
        .map(|l| l.split('\t').map(unescape_cell).collect())
        .collect();
    for r in &rows {
        assert_eq!(r.len(), header.len(), "row {r:?}");
    }
    (header, rows)
}

fn col(header: &[String], name: &str) -> usize {
    header.iter().position(|h| h == name).unwrap()
}

// ---------------------------------------------------------------------------------------------
// Tests

#[test]
fn render_all_writes_the_six_views() {
    let wd = mixed_run();
    let report = render_all(&wd.root).unwrap();
    assert_eq!(report.nodes, 6);
    assert_eq!(report.written.len(), 6, "{report:?}");
    for f in [
        "master_table.tsv",
        "summary.md",
        "progress.png",
        "hypothesis_tree.png",
        "params.png",
        "parallel.png",
    ] {
        assert!(wd.path(f).is_file(), "{f}");
    }
    // No temp files left behind.
    let leftovers: Vec<_> = fs::read_dir(&wd.root)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp."))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn parameters_become_axes_in_configured_order_with_their_kind() {
    let wd = space_run();
    let view = RunView::load(&wd.root).unwrap();
    let axes = param_axes(&view);
    let names: Vec<&str> = axes.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["workers", "opt", "lr"], "declaration order");
    assert_eq!(
        axes[0].kind,
        AxisKind::Numeric {
            log: true,
            min: 1.0,
            max: 64.0
        }
    );
    assert_eq!(
        axes[1].kind,
        AxisKind::Categorical(vec!["sgd".into(), "adam".into(), "lamb".into()])
    );
    assert!(matches!(axes[2].kind, AxisKind::Numeric { log: false, .. }));
    // Log axes place values by their logarithm: 8 is halfway between 1 and 64.
    assert!((axes[0].unit(8.0) - 0.5).abs() < 1e-12);
}

#[test]
fn params_and_parallel_plots_show_every_parameter_and_the_best() {
    let wd = space_run();
    let report = render_all(&wd.root).unwrap();
    wd.keep("space");
    assert_eq!(report.written.len(), 6, "{report:?}");

    let params = decode(&wd.path("params.png"));
    // Three panels in one row, the best drawn as a gold dot in each, improvements green,
    // the two failures red, and text (title, axis names) drawn with the embedded font.
    assert_eq!(params.width, 1600);
    assert!(params.dark_in_top(40, 90) > 200, "title");
    let gold = params.count(BEST_GOLD);
    assert!(gold > 3 * 60, "a gold best dot per panel: {gold} px");
    assert!(params.count(IMPROVED_GREEN) > 3 * 20, "improvements");
    assert!(params.count(COMPLETED_GREY) > 3 * 20, "the others");
    assert!(params.count(FAILED_RED) > 3 * 10, "failures");

    let parallel = decode(&wd.path("parallel.png"));
    assert!(parallel.dark_in_top(40, 90) > 200, "title");
    assert!(parallel.count(BEST_GOLD) > 500, "the best line");
    // Lines coloured by the metric: both ends of the colour scale appear (the bar and lines).
    let worst = render::parallel::metric_colour(0.0);
    let best = render::parallel::metric_colour(1.0);
    assert!(parallel.count(worst) > 15, "worst colour");
    assert!(parallel.count(best) > 15, "best colour");
    // Many distinct colours: the lines are coloured per experiment, not all alike.
    let distinct: std::collections::HashSet<[u8; 3]> = parallel
        .rgb
        .chunks_exact(3)
        .map(|p| [p[0], p[1], p[2]])
        .collect();
    assert!(distinct.len() > 100, "{} colours", distinct.len());
}

#[test]
fn a_run_without_parameters_still_gets_both_plots() {
    let wd = Wd::new("minimize");
    wd.spec("000_baseline", "baseline", None, json!({}), "");
    wd.completed("000_baseline", 3.0, true);
    let report = render_all(&wd.root).unwrap();
    assert_eq!(report.written.len(), 6, "{report:?}");
    assert!(decode(&wd.path("params.png")).dark_in_top(40, 90) > 200);
    assert!(decode(&wd.path("parallel.png")).dark_in_top(40, 90) > 200);
}

#[test]
fn importance_ranks_the_parameter_that_decides_the_metric_first() {
    let wd = space_run();
    let view = RunView::load(&wd.root).unwrap();
    let imp = importance(&view);
    let names: Vec<&str> = imp.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names[0], "workers", "{imp:?}");
    let workers = &imp[0];
    assert_eq!(workers.samples, 24, "completed experiments only");
    assert!(workers.share.unwrap() > 0.7, "{workers:?}");
    for other in &imp[1..] {
        assert!(other.share.unwrap() < 0.3, "{other:?}");
    }
    // The best bin of workers holds the largest values.
    let (label, mean) = workers.best_bin.clone().unwrap();
    assert!(label.contains("32") || label.contains("64"), "{label}");
    assert!(mean > 300.0, "{mean}");

    render_all(&wd.root).unwrap();
    render_report(&wd.root).unwrap();
    for f in ["summary.md", "report.md"] {
        let text = fs::read_to_string(wd.path(f)).unwrap();
        let section = text
            .split("## Parameter importance")
            .nth(1)
            .unwrap_or_else(|| panic!("{f} has no importance section:\n{text}"));
        let first_row = section.lines().find(|l| l.starts_with("| `")).unwrap();
        assert!(first_row.starts_with("| `workers` | "), "{f}: {first_row}");
    }

    // Too few experiments: a sentence instead of a table.
    let few = mixed_run();
    render_all(&few.root).unwrap();
    let s = fs::read_to_string(few.path("summary.md")).unwrap();
    assert!(s.contains("Not enough completed experiments yet"), "{s}");
}

#[test]
fn table_has_one_row_per_node_in_creation_order_and_round_trips_tricky_values() {
    let wd = Wd::new("maximize");
    let tricky_hyp = "tab\there\nnew line \\ back\\slash \\t literal, unicode: 日本語 ✓ 🚀\r\nend";
    let tricky_name = "na\tme\\x";
    wd.spec("009_a", "a", None, json!({"workers": 1}), "plain");
    wd.completed("009_a", 1.5, true);
    // 1000_ sorts after 999_ numerically (not as text).
    wd.spec(
        "1000_z",
        tricky_name,
        Some("009_a"),
        json!({"path": "a\tb\nc\\d"}),
        tricky_hyp,
    );
    wd.completed("1000_z", 1e-7, false);
    wd.spec("010_b", "b", Some("009_a"), json!({"workers": 2}), "");
    wd.failed("010_b", FailureKind::Timeout);
    wd.spec("999_q", "q", Some("010_b"), json!({}), "queued one");
    wd.status("999_q", NodeStatus::Queued);
    render_all(&wd.root).unwrap();

    let (header, rows) = read_tsv(&wd.path("master_table.tsv"));
    assert_eq!(
        header,
        [
            "node_id",
            "name",
            "parent_id",
            "status",
            "throughput",
            "runs",
            "spread_min",
            "spread_max",
            "spread_stdev",
            "latency_ms",
            "duration_s",
            "improved",
            "unconfirmed",
            "params_path",
            "params_workers",
            "params",
            "hypothesis",
            "failure"
        ]
    );
    assert_eq!(rows.len(), 4, "one row per node");
    let ids: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(ids, ["009_a", "010_b", "999_q", "1000_z"]);
    let z = &rows[3];
    assert_eq!(z[col(&header, "name")], tricky_name);
    assert_eq!(z[col(&header, "hypothesis")], tricky_hyp);
    assert_eq!(z[col(&header, "parent_id")], "009_a");
    assert_eq!(z[col(&header, "status")], "completed");
    assert_eq!(z[col(&header, "throughput")].parse::<f64>().unwrap(), 1e-7);
    assert_eq!(z[col(&header, "improved")], "false");
    let params: Value = serde_json::from_str(&z[col(&header, "params")]).unwrap();
    assert_eq!(params, json!({"path": "a\tb\nc\\d"}));
    // One column per parameter, empty where the node has no such parameter.
    assert_eq!(z[col(&header, "params_path")], "a\tb\nc\\d");
    assert_eq!(z[col(&header, "params_workers")], "");
    assert_eq!(rows[0][col(&header, "params_workers")], "1");
    assert_eq!(rows[1][col(&header, "params_workers")], "2");
    let b = &rows[1];
    assert_eq!(b[col(&header, "status")], "failed");
    assert_eq!(b[col(&header, "throughput")], "");
    assert_eq!(
        b[col(&header, "failure")],
        "timeout: exit status 3\nstderr: boom"
    );
    assert_eq!(rows[0][col(&header, "throughput")], "1.5");
    assert_eq!(rows[0][col(&header, "duration_s")], "12.5");
    assert_eq!(rows[2][col(&header, "status")], "queued");

    // Re-rendering never duplicates rows.
    render_all(&wd.root).unwrap();
    let (_, rows) = read_tsv(&wd.path("master_table.tsv"));
    assert_eq!(rows.len(), 4);
}

#[test]
fn summary_names_the_best_node_and_its_change_against_the_baseline() {
    let wd = mixed_run();
    render_all(&wd.root).unwrap();
    let s = fs::read_to_string(wd.path("summary.md")).unwrap();
    assert!(s.contains("`001_workers_2`"), "{s}");
    assert!(s.contains("**150**"), "{s}");
    assert!(s.contains("+50.00 %"), "{s}");
    assert!(s.contains("| nonzero_exit | 1 |"), "{s}");
    assert!(
        s.contains("`004_workers_3` | running | `local:4242`"),
        "{s}"
    );
    assert!(s.contains("Plateau: 2 of 8 (patience)"), "{s}");
    assert!(
        s.contains("6** (3 completed, 2 of them improved; 1 failed; 1 running; 1 queued)"),
        "{s}"
    );
}

#[test]
fn report_gives_the_command_and_the_path_from_baseline_to_best() {
    let wd = mixed_run();
    let p = render_report(&wd.root).unwrap();
    assert_eq!(p, wd.path("report.md"));
    let r = fs::read_to_string(p).unwrap();
    assert!(
        r.contains("cd 'bench dir' && sh bench.sh --workers 2"),
        "{r}"
    );
    let path_section = r.split("## Path from baseline to best").nth(1).unwrap();
    let a = path_section.find("`000_baseline`").unwrap();
    let b = path_section.find("`001_workers_2`").unwrap();
    assert!(a < b);
    assert!(path_section.contains("workers=2"), "{path_section}");
    assert!(r.contains("## All experiments"));
    assert!(r.contains("`005_workers_5`"));
}

#[test]
fn status_colours_appear_only_when_that_status_exists() {
    let wd = mixed_run();
    render_all(&wd.root).unwrap();
    wd.keep("mixed");
    let tree = decode(&wd.path("hypothesis_tree.png"));
    assert!(tree.count(IMPROVED_GREEN) > 100, "green in tree");
    assert!(tree.count(FAILED_RED) > 100, "red in tree");
    assert!(tree.count(RUNNING_BLUE) > 100, "blue in tree");
    assert!(tree.count(COMPLETED_GREY) > 100, "grey in tree");
    let progress = decode(&wd.path("progress.png"));
    assert!(progress.count(IMPROVED_GREEN) > 20, "green in progress");
    assert!(progress.count(FAILED_RED) > 5, "red in progress");

    let wd = grey_run();
    render_all(&wd.root).unwrap();
    wd.keep("grey");
    let tree = decode(&wd.path("hypothesis_tree.png"));
    assert_eq!(tree.count(IMPROVED_GREEN), 0, "no improvement, no green");
    assert_eq!(tree.count(FAILED_RED), 0, "no failure, no red");
    assert_eq!(tree.count(RUNNING_BLUE), 0, "nothing running, no blue");
    assert!(tree.count(COMPLETED_GREY) > 100);
    let progress = decode(&wd.path("progress.png"));
    assert_eq!(progress.count(IMPROVED_GREEN), 0);
    assert_eq!(progress.count(FAILED_RED), 0);
    assert_eq!(progress.count(RUNNING_BLUE), 0);
}

#[test]
fn torn_and_missing_files_are_skipped_with_warnings() {
    let wd = mixed_run();
    // A torn result, a missing status, a torn spec, a garbage failure, a torn state.
    fs::write(
        wd.path("engine/nodes/002_workers_4/result.json"),
        b"{\"metrics\": {\"throughput\": 1",
    )
    .unwrap();
    fs::remove_file(wd.path("engine/nodes/000_baseline/status.txt")).unwrap();
    fs::write(
        wd.path("engine/nodes/005_workers_5/spec.json"),
        b"{\"node_id\"",
    )
    .unwrap();
    fs::write(
        wd.path("engine/nodes/003_workers_8/failure.json"),
        b"\x00\xff",
    )
    .unwrap();
    fs::write(wd.path("state.json"), b"{").unwrap();
    fs::write(
        wd.path("engine/events.jsonl"),
        b"{\"ts\":1,\"event\":\"comp",
    )
    .unwrap();
    // A node folder with nothing in it yet (being created).
    fs::create_dir_all(wd.path("engine/nodes/006_new")).unwrap();

    let report: RenderReport = render_all(&wd.root).unwrap();
    wd.keep("torn");
    let w = report.warnings.join("\n");
    assert!(w.contains("002_workers_4/result.json"), "{w}");
    assert!(w.contains("000_baseline/status.txt"), "{w}");
    assert!(w.contains("005_workers_5/spec.json"), "{w}");
    assert!(w.contains("003_workers_8/failure.json"), "{w}");
    assert!(w.contains("state.json"), "{w}");
    let (_, rows) = read_tsv(&wd.path("master_table.tsv"));
    assert_eq!(rows.len(), 7);
    // The baseline's status is inferred from its result.
    assert_eq!(rows[0][3], "completed");
    let s = fs::read_to_string(wd.path("summary.md")).unwrap();
    assert!(s.contains("## Skipped files"), "{s}");
    decode(&wd.path("hypothesis_tree.png"));
    decode(&wd.path("progress.png"));
}

#[test]
fn a_workdir_written_concurrently_still_renders() {
    let wd = mixed_run();
    let root = wd.root.clone();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = Arc::clone(&stop);
    // A writer that creates nodes and rewrites files in place (not atomically), so the renderer
    // sees missing, empty and half-written files.
    let writer = std::thread::spawn(move || {
        let mut k = 10u64;
        while !stop2.load(Ordering::SeqCst) && k < 300 {
            let id = format!("{k:03}_live");
            let dir = root.join("engine/nodes").join(&id);
            fs::create_dir_all(&dir).unwrap();
            let spec = serde_json::to_vec(&json!({
                "node_id": id, "name": "live", "parent_id": "001_workers_2",
                "hypothesis": "h", "params": {"workers": k}, "changes": null,
                "command": "true", "priority": 0.0, "created_at": "2026-01-01T00:00:00Z"
            }))
            .unwrap();
            fs::write(dir.join("spec.json"), &spec[..spec.len() / 2]).unwrap();
            fs::write(dir.join("spec.json"), &spec).unwrap();
            fs::write(dir.join("status.txt"), "").unwrap();
            fs::write(dir.join("status.txt"), "completed\n").unwrap();
            let result = br#"{"metrics":{"throughput":120.0},"primary":120.0,"improved":false,"duration_s":1.0,"exit_code":0,"children":[],"analysis":""}"#;
            fs::write(dir.join("result.json"), &result[..result.len() / 3]).unwrap();
            fs::write(dir.join("result.json"), result).unwrap();
            fs::write(root.join("state.json"), b"{\"schema_vers").unwrap();
            k += 1;
        }
        k - 10
    });
    for _ in 0..8 {
        let report = render_all(&wd.root).unwrap();
        let (_, rows) = read_tsv(&wd.path("master_table.tsv"));
        assert_eq!(rows.len(), report.nodes);
    }
    stop.store(true, Ordering::SeqCst);
    let written = writer.join().unwrap();
    assert!(written > 0);
    let report = render_all(&wd.root).unwrap();
    assert_eq!(report.nodes as u64, 6 + written);
}

#[test]
fn a_folder_that_is_not_a_workdir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    match render_all(dir.path()) {
        Err(RenderError::NotAWorkdir { .. }) => {}
        other => panic!("{other:?}"),
    }
    assert!(fs::read_dir(dir.path()).unwrap().next().is_none());
}

#[test]
fn an_empty_workdir_renders() {
    let wd = Wd::new("minimize");
    let report = render_all(&wd.root).unwrap();
    wd.keep("empty");
    assert_eq!(report.nodes, 0);
    let (_, rows) = read_tsv(&wd.path("master_table.tsv"));
    assert!(rows.is_empty());
    let img = decode(&wd.path("hypothesis_tree.png"));
    assert!(img.width > 0);
}

#[test]
fn completion_order_follows_the_event_log() {
    let wd = mixed_run();
    let events = [
        r#"{"ts":"t","event":"spec_started","id":"000_baseline"}"#,
        r#"{"ts":"t","event":"node_completed","id":"002_workers_4","primary":1.0,"improved":true}"#,
        r#"{"ts":"t","event":"spec_failed","id":"003_workers_8","error":"boom"}"#,
        r#"{"ts":"t","event":"spec_completed","id":"000_baseline"}"#,
        r#"{"ts":"t","event":"node_completed","id":"002_workers_4","primary":1.0,"improved":false}"#,
        r#"{"ts":"t","event":"node_compl"#,
    ];
    fs::write(wd.path("engine/events.jsonl"), events.join("\n")).unwrap();
    let view = RunView::load(&wd.root).unwrap();
    let ids: Vec<&str> = view
        .completion_order
        .iter()
        .map(|&i| view.nodes[i].id.as_str())
        .collect();
    // 001 has no event yet (buffered by the engine): it comes last.
    assert_eq!(
        ids,
        [
            "002_workers_4",
            "003_workers_8",
            "000_baseline",
            "001_workers_2"
        ]
    );
}

#[test]
fn a_thousand_nodes_render_within_bounds() {
    let wd = Wd::new("maximize");
    let mut rng = 0x2545_f491u64;
    let mut next = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n.max(1)
    };
    let mut ids: Vec<String> = Vec::new();
    for k in 0..1000u64 {
        let id = format!("{k:03}_node_with_a_long_name_{k}");
        let parent = if k < 2 {
            None
        } else {
            Some(ids[(k - 1 - next(k.min(30))) as usize].clone())
        };
        wd.spec(
            &id,
            &format!("node_with_a_long_name_{k}"),
            parent.as_deref(),
            json!({"workers": k % 7, "chunk": 64 * (k % 5)}),
            "h",
        );
        match next(10) {
            0 => wd.failed(&id, FailureKind::Timeout),
            1 if k > 990 => wd.running(&id),
            _ if k > 980 => wd.status(&id, NodeStatus::Queued),
            _ => wd.completed(&id, 100.0 + next(100) as f64, next(20) == 0),
        }
        ids.push(id);
    }
    let t = Instant::now();
    let report = render_all(&wd.root).unwrap();
    wd.keep("thousand");
    eprintln!(
        "1000 nodes rendered in {:?}: {:?}",
        t.elapsed(),
        report.timings
    );
    let (_, rows) = read_tsv(&wd.path("master_table.tsv"));
    assert_eq!(rows.len(), 1000);
    let tree = decode(&wd.path("hypothesis_tree.png"));
    assert!(
        tree.width <= MAX_SIDE && tree.height <= MAX_SIDE,
        "{}x{}",
        tree.width,
        tree.height
    );
    assert!(
        u64::from(tree.width) * u64::from(tree.height) <= render::tree::PIXEL_BUDGET,
        "{}x{}",
        tree.width,
        tree.height
    );
    assert!(tree.count(FAILED_RED) > 0);
    let progress = decode(&wd.path("progress.png"));
    assert!(progress.width <= MAX_SIDE && progress.height <= MAX_SIDE);
}

#[test]
fn a_deep_chain_renders_within_bounds() {
    let wd = Wd::new("maximize");
    let mut prev: Option<String> = None;
    for k in 0..1500u64 {
        let id = format!("{k:04}_step");
        wd.spec(&id, "step", prev.as_deref(), json!({"k": k}), "");
        wd.completed(&id, k as f64, true);
        prev = Some(id);
    }
    let t = Instant::now();
    let report = render_all(&wd.root).unwrap();
    eprintln!(
        "1500-deep chain rendered in {:?}: {:?}",
        t.elapsed(),
        report.timings
    );
    wd.keep("chain");
    let (w, h) = dims(&wd.path("hypothesis_tree.png"));
    assert!(w <= MAX_SIDE && h <= MAX_SIDE, "{w}x{h}");
    assert!(
        u64::from(w) * u64::from(h) <= render::tree::PIXEL_BUDGET,
        "{w}x{h}"
    );
}

/// Runs `supervisor render` as a child with an empty environment (no HOME, no fontconfig, no
/// XDG dirs) and checks that every view is written and the images have text drawn in them.
#[test]
fn renders_without_home_or_fontconfig() {
    let wd = mixed_run();
    let out = Command::new(env!("CARGO_BIN_EXE_supervisor"))
        .arg("render")
        .arg(&wd.root)
        .env_clear()
        .env("FONTCONFIG_FILE", "/nonexistent/fonts.conf")
        .env("FONTCONFIG_PATH", "/nonexistent")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for f in [
        "progress.png",
        "hypothesis_tree.png",
        "params.png",
        "parallel.png",
    ] {
        assert!(
            stdout.contains(&format!("wrote {}", wd.path(f).display())),
            "{stdout}"
        );
        // The title is text drawn with the embedded font: dark pixels at the top.
        let img = decode(&wd.path(f));
        assert!(img.dark_in_top(40, 90) > 200, "{f}: no title text");
    }
}

#[test]
fn tidy_layout_centres_parents_and_never_overlaps_subtrees() {
    let mut seed = 7u64;
    let mut rnd = move |n: usize| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((seed >> 33) as usize) % n.max(1)
    };
    for trial in 0..40 {
        let n = 2 + rnd(300);
        let roots_n = 1 + rnd(3).min(n - 1);
        let mut children: Vec<Vec<usize>> = vec![Vec::new(); n];
        let mut parent = vec![None; n];
        for (v, slot) in parent.iter_mut().enumerate().skip(roots_n) {
            let p = if trial % 2 == 0 {
                rnd(v)
            } else {
                v - 1 - rnd(v.min(4))
            };
            children[p].push(v);
            *slot = Some(p);
        }
        let roots: Vec<usize> = (0..roots_n).collect();
        let lay = tidy_layout(&children, &roots);
        // Parents centred over first and last child.
        for (v, kids) in children.iter().enumerate() {
            if let (Some(f), Some(l)) = (kids.first(), kids.last()) {
                let mid = (lay.x[*f] + lay.x[*l]) / 2.0;
                assert!((lay.x[v] - mid).abs() < 1e-9, "trial {trial} node {v}");
            }
        }
        // Same depth: at least one slot apart.
        let max_depth = *lay.depth.iter().max().unwrap();
        for d in 0..=max_depth {
            let mut xs: Vec<f64> = (0..n)
                .filter(|&v| lay.depth[v] == d)
                .map(|v| lay.x[v])
                .collect();
            xs.sort_by(f64::total_cmp);
            for w in xs.windows(2) {
                assert!(w[1] - w[0] >= 1.0 - 1e-9, "trial {trial} depth {d}: {w:?}");
            }
        }
        // Siblings' subtrees do not interleave at any depth.
        let mut subtree_of = vec![Vec::new(); n];
        for v in 0..n {
            let mut a = Some(v);
            while let Some(u) = a {
                subtree_of[u].push(v);
                a = parent[u];
            }
        }
        let sib_groups: Vec<Vec<usize>> = children
            .iter()
            .cloned()
            .chain(std::iter::once(roots.clone()))
            .collect();
        for sibs in sib_groups {
            for w in sibs.windows(2) {
                let (a, b) = (w[0], w[1]);
                for d in 0..=max_depth {
                    let ra = subtree_of[a]
                        .iter()
                        .filter(|&&v| lay.depth[v] == d)
                        .map(|&v| lay.x[v])
                        .fold(f64::NEG_INFINITY, f64::max);
                    let lb = subtree_of[b]
                        .iter()
                        .filter(|&&v| lay.depth[v] == d)
                        .map(|&v| lay.x[v])
                        .fold(f64::INFINITY, f64::min);
                    assert!(
                        ra < lb,
                        "trial {trial}: subtrees of {a} and {b} overlap at depth {d}"
                    );
                }
            }
        }
        assert!(lay.x.iter().all(|x| x.is_finite() && *x >= 0.0));
        assert!(lay.x.iter().cloned().fold(0.0, f64::max) + 1.0 <= lay.width + 1e-9);
    }
}

/// How long to wait for the render thread to settle (real time, only an upper bound).
const SETTLE: Duration = Duration::from_secs(30);

#[test]
fn debouncer_coalesces_requests_and_renders_once_per_interval_of_its_clock() {
    let count = Arc::new(AtomicU64::new(0));
    let c = Arc::clone(&count);
    let clock = ManualClock::new();
    let deb = RenderDebouncer::with_clock(
        Duration::from_millis(200),
        Box::new(move || {
            c.fetch_add(1, Ordering::SeqCst);
            Ok(RenderReport::default())
        }),
        clock.clone(),
    );
    assert!(deb.wait_idle(SETTLE));
    assert_eq!(deb.renders(), 0, "nothing rendered before a request");

    // The first request renders at once.
    deb.request();
    assert!(deb.wait_idle(SETTLE));
    assert_eq!(deb.renders(), 1);

    // Many requests within the interval: none renders until the clock reaches it, then one.
    for _ in 0..100 {
        deb.request();
    }
    assert!(deb.wait_idle(SETTLE));
    assert_eq!(deb.renders(), 1, "requests inside the interval wait");
    clock.advance(Duration::from_millis(150));
    assert!(deb.wait_idle(SETTLE));
    assert_eq!(deb.renders(), 1, "150 ms of 200: still waiting");
    clock.advance(Duration::from_millis(50));
    assert!(deb.wait_idle(SETTLE));
    assert_eq!(
        deb.renders(),
        2,
        "the coalesced requests make exactly one render"
    );

    // Without requests, time passing renders nothing.
    clock.advance(Duration::from_secs(10));
    assert!(deb.wait_idle(SETTLE));
    assert_eq!(deb.renders(), 2);

    // A request long after the last render goes at once.
    deb.request();
    assert!(deb.wait_idle(SETTLE));
    assert_eq!(deb.renders(), 3);

    // flush renders once more even inside the interval, and joins the thread.
    deb.request();
    let last = deb.flush();
    assert!(matches!(last, Some(Ok(_))));
    assert_eq!(count.load(Ordering::SeqCst), 4);

    // Flushing an idle debouncer renders exactly once.
    let count = Arc::new(AtomicU64::new(0));
    let c = Arc::clone(&count);
    let deb = RenderDebouncer::with_clock(
        Duration::from_secs(60),
        Box::new(move || {
            c.fetch_add(1, Ordering::SeqCst);
            Err("boom".into())
        }),
        ManualClock::new(),
    );
    assert_eq!(deb.renders(), 0);
    assert!(matches!(deb.flush(), Some(Err(e)) if e == "boom"));
    assert_eq!(count.load(Ordering::SeqCst), 1);
}

#[test]
fn debouncer_request_returns_while_a_render_is_in_flight() {
    // The renderer blocks until the test lets it go: request() must return meanwhile.
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let rx = std::sync::Mutex::new(rx);
    let started = Arc::new(AtomicU64::new(0));
    let s2 = Arc::clone(&started);
    let deb = RenderDebouncer::with_clock(
        Duration::from_millis(200),
        Box::new(move || {
            s2.fetch_add(1, Ordering::SeqCst);
            let _ = rx.lock().unwrap().recv();
            Ok(RenderReport::default())
        }),
        ManualClock::new(),
    );
    deb.request();
    let deadline = Instant::now() + SETTLE;
    while started.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "the render never started");
        std::thread::yield_now();
    }
    // The render is in flight and cannot finish: these calls would hang if request() waited.
    for _ in 0..1000 {
        deb.request();
    }
    assert_eq!(deb.renders(), 0);
    tx.send(()).unwrap();
    assert!(deb.wait_idle(SETTLE));
    assert_eq!(deb.renders(), 1, "the later requests wait for the interval");
    tx.send(()).unwrap();
    drop(deb.flush());
}

#[test]
fn debouncer_finish_works_through_a_shared_reference() {
    let count = Arc::new(AtomicU64::new(0));
    let c = Arc::clone(&count);
    let deb = Arc::new(RenderDebouncer::with_renderer(
        Duration::from_secs(60),
        Box::new(move || {
            c.fetch_add(1, Ordering::SeqCst);
            Ok(RenderReport::default())
        }),
    ));
    let other = Arc::clone(&deb); // e.g. held by a task that was aborted but not dropped yet
    deb.request();
    deb.request(); // coalesced with the first or rendered at once; the interval blocks more
    assert!(matches!(deb.finish(), Some(Ok(_))));
    let n = count.load(Ordering::SeqCst);
    assert!((1..=2).contains(&n), "{n}");
    // After finish: requests are ignored, finish again only reports.
    other.request();
    assert!(matches!(other.finish(), Some(Ok(_))));
    assert!(other.wait_idle(SETTLE), "the thread is gone");
    assert_eq!(count.load(Ordering::SeqCst), n);
}

#[test]
fn debouncer_renders_a_real_workdir() {
    let wd = mixed_run();
    let deb = RenderDebouncer::new(&wd.root, Duration::from_millis(50));
    deb.request();
    deb.request();
    let last = deb.flush();
    assert!(
        matches!(last, Some(Ok(ref r)) if r.written.len() == 6),
        "{last:?}"
    );
    assert!(wd.path("hypothesis_tree.png").is_file());
}
