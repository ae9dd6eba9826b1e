//! The views of a run with repeats and confirmation: value ± spread (n) in summary.md and
//! report.md, the noise floor and the headline's confidence, spread columns in the table,
//! error bars and unconfirmed wins in progress.png, the noise floor in `status`. Synthetic workdirs written with the model
//! types, rendered, and checked by parsing the text and decoding the PNG.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use autoresearch_adapters::model::{
    ConfirmReason, Confirmation, NodeResult, NodeSpec, NoiseFloor, RunState,
};
use autoresearch_adapters::noise;
use autoresearch_supervisor::render::{
    IMPROVED_GREEN, SPREAD_BAR, UNCONFIRMED_ORANGE, render_all, render_report,
};
use serde_json::{Map, json};

fn write_json(path: &Path, v: &impl serde::Serialize) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, serde_json::to_vec(v).unwrap()).unwrap();
}

struct Wd {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Wd {
    fn new() -> Wd {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("wd");
        write_json(
            &root.join("config.json"),
            &json!({
                "objective": {"metric": "score", "direction": "maximize", "repeats": 3},
                "job": {"command": "sh job.sh {x}", "timeout_s": 60},
            }),
        );
        Wd { _dir: dir, root }
    }

    /// A completed node with these runs (median aggregate), improved or not, and its
    /// confirmation when it went through one.
    fn node(&self, id: &str, x: i64, samples: &[f64], improved: bool, conf: Option<bool>) {
        let dir = self.root.join("engine/nodes").join(id);
        let mut params = Map::new();
        params.insert("x".into(), json!(x));
        write_json(
            &dir.join("spec.json"),
            &NodeSpec {
                node_id: id.into(),
                name: id.split_once('_').unwrap().1.into(),
                parent_id: (id != "001_baseline").then(|| "001_baseline".into()),
                hypothesis: String::new(),
                command: format!("sh job.sh {x}"),
                params,
                changes: None,
                priority: 0.0,
                created_at: "2026-01-01T00:00:00Z".into(),
            },
        );
        let value =
            noise::aggregate(autoresearch_adapters::config::Aggregate::Median, samples).unwrap();
        let confirmation = conf.map(|ok| Confirmation {
            reason: ConfirmReason::WithinNoise,
            runs_before: 3,
            runs: 2,
            value: samples[..3].iter().copied().fold(f64::NAN, f64::max),
            best_node: Some("001_baseline".into()),
            best_before: Some(100.0),
            noise_floor: Some(0.05),
            decided_at: "2026-01-01T00:00:00Z".into(),
            confirmed: Some(ok),
        });
        let mut metrics = BTreeMap::new();
        metrics.insert("score".to_owned(), value);
        write_json(
            &dir.join("result.json"),
            &NodeResult {
                metrics,
                primary: Some(value),
                improved,
                duration_s: 3.0,
                exit_code: Some(0),
                samples: samples.to_vec(),
                spread: noise::spread(samples),
                unconfirmed: conf == Some(false),
                confirmation,
                ..Default::default()
            },
        );
        fs::write(dir.join("status.txt"), "completed\n").unwrap();
    }
}

/// Baseline 100 ± (3 runs); `002_lucky` beat it at first (its first runs) but its re-runs did
/// not hold it; `003_real` beat it, was confirmed by 2 more runs and is the best.
fn noisy_run() -> Wd {
    let wd = Wd::new();
    wd.node("001_baseline", 1, &[98.0, 100.0, 103.0], true, None);
    wd.node(
        "002_lucky",
        2,
        &[112.0, 109.0, 111.0, 95.0, 97.0],
        false,
        Some(false),
    );
    wd.node(
        "003_real",
        3,
        &[128.0, 131.0, 125.0, 130.0, 127.0],
        true,
        Some(true),
    );
    wd.node("004_worse", 4, &[90.0, 92.0, 91.0], false, None);
    let floor = [
        &[98.0, 100.0, 103.0][..],
        &[112.0, 109.0, 111.0],
        &[128.0, 131.0, 125.0],
        &[90.0, 92.0, 91.0],
    ]
    .iter()
    .fold(None, |f: Option<NoiseFloor>, s| noise::pool(f, s));
    write_json(
        &wd.root.join("state.json"),
        &RunState {
            schema_version: 1,
            metric: "score".into(),
            direction: "maximize".into(),
            best_node: Some("003_real".into()),
            best_value: Some(128.0),
            baseline_node: Some("001_baseline".into()),
            baseline_value: Some(100.0),
            experiments_started: 4,
            experiments_completed: 4,
            next_index: 5,
            updated_at: "2026-01-01T00:00:00Z".into(),
            best_n: Some(5),
            noise_floor: floor,
            ..Default::default()
        },
    );
    wd
}

#[test]
fn summary_and_report_give_spread_noise_floor_and_a_confirmed_headline() {
    let wd = noisy_run();
    render_all(&wd.root).unwrap();
    let s = fs::read_to_string(wd.root.join("summary.md")).unwrap();
    // Best: the median of its 5 runs ± their stdev; the baseline with its 3.
    let best_sd = noise::spread(&[128.0, 131.0, 125.0, 130.0, 127.0])
        .unwrap()
        .stdev;
    assert!(
        s.contains(&format!(
            "= **128** ± {} (n=5)",
            autoresearch_supervisor::render::fmt_value(best_sd)
        )),
        "{s}"
    );
    assert!(s.contains("vs baseline `001_baseline` = 100 ± "), "{s}");
    assert!(s.contains("- Noise floor: ±"), "{s}");
    assert!(s.contains("per run (4 nodes, 8 degrees of freedom)"), "{s}");
    let conf = s
        .lines()
        .find(|l| l.starts_with("- Confidence:"))
        .expect(&s);
    assert!(conf.contains("+28.0 % over the baseline"), "{conf}");
    assert!(conf.contains("noise floors"), "{conf}");
    assert!(conf.contains("95 % interval"), "{conf}");
    assert!(conf.contains("(Welch, 5 vs 3 runs)"), "{conf}");
    assert!(conf.contains("confirmed by 2 more runs"), "{conf}");
    // Last results: the unconfirmed win is marked, not counted.
    let row = |id: &str| {
        s.lines()
            .find(|l| l.starts_with("| ") && l.contains(id))
            .expect(id)
            .to_owned()
    };
    let lucky = row("`002_lucky`");
    assert!(lucky.contains("| unconfirmed |"), "{lucky}");
    assert!(lucky.contains("(n=5)"), "{lucky}");
    let real = row("`003_real`");
    assert!(real.contains("| yes (confirmed) |"), "{real}");

    let r = fs::read_to_string(render_report(&wd.root).unwrap()).unwrap();
    let best = r.split("## Best configuration").nth(1).unwrap();
    assert!(
        best.contains("- Confidence: +28.0 % over the baseline"),
        "{best}"
    );
    assert!(best.contains("- Noise floor: ±"), "{best}");
    let all = r.split("## All experiments").nth(1).unwrap();
    assert!(all.contains("| unconfirmed |"), "{all}");
    assert!(all.contains("91 ± 1 (n=3)"), "{all}");
}

#[test]
fn table_has_runs_and_spread_columns() {
    let wd = noisy_run();
    render_all(&wd.root).unwrap();
    let text = fs::read_to_string(wd.root.join("master_table.tsv")).unwrap();
    let mut lines = text.lines().map(|l| l.split('\t').collect::<Vec<_>>());
    let header = lines.next().unwrap();
    let col = |name: &str| header.iter().position(|h| *h == name).expect(name);
    let rows: Vec<Vec<&str>> = lines.collect();
    assert_eq!(
        &header[4..9],
        ["score", "runs", "spread_min", "spread_max", "spread_stdev"]
    );
    let lucky = &rows[1];
    assert_eq!(lucky[col("score")], "109");
    assert_eq!(lucky[col("runs")], "5");
    assert_eq!(lucky[col("spread_min")], "95");
    assert_eq!(lucky[col("spread_max")], "112");
    assert_eq!(lucky[col("improved")], "false");
    assert_eq!(lucky[col("unconfirmed")], "true");
    assert_eq!(rows[2][col("unconfirmed")], "false");
    let sd: f64 = rows[3][col("spread_stdev")].parse().unwrap();
    assert!((sd - 1.0).abs() < 1e-12, "{sd}");
}

#[test]
fn progress_draws_error_bars_and_unconfirmed_wins() {
    let wd = noisy_run();
    render_all(&wd.root).unwrap();
    let img = decode(&wd.root.join("progress.png"));
    assert!(img.count(SPREAD_BAR) > 40, "error bars");
    assert!(img.count(UNCONFIRMED_ORANGE) > 20, "unconfirmed ring");
    assert!(img.count(IMPROVED_GREEN) > 20, "improvements");

    // A run measured once has no error bars and no orange.
    let wd = Wd::new();
    wd.node("001_baseline", 1, &[100.0], true, None);
    wd.node("002_b", 2, &[120.0], true, None);
    render_all(&wd.root).unwrap();
    let img = decode(&wd.root.join("progress.png"));
    assert_eq!(img.count(SPREAD_BAR), 0, "no error bars for single runs");
    assert_eq!(img.count(UNCONFIRMED_ORANGE), 0);
}

struct Image {
    rgb: Vec<u8>,
}

impl Image {
    fn count(&self, c: plotters::style::RGBColor) -> usize {
        self.rgb
            .chunks_exact(3)
            .filter(|p| p[0] == c.0 && p[1] == c.1 && p[2] == c.2)
            .count()
    }
}

fn decode(path: &Path) -> Image {
    let mut reader = png::Decoder::new(fs::File::open(path).unwrap())
        .read_info()
        .unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    buf.truncate(info.buffer_size());
    assert_eq!(info.color_type, png::ColorType::Rgb);
    Image { rgb: buf }
}

#[test]
fn status_shows_the_noise_floor() {
    use autoresearch_supervisor::commands::status::{format_human, gather};
    let wd = noisy_run();
    let report = gather(&wd.root).unwrap();
    let floor = report.noise_floor.expect("noise floor");
    assert_eq!((floor.nodes, floor.dof), (4, 8));
    let text = format_human(&report);
    let line = text
        .lines()
        .find(|l| l.starts_with("noise floor: ±"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        line.ends_with("% per run (4 nodes, 8 degrees of freedom)"),
        "{line}"
    );
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["noise_floor"]["nodes"], 4);

    // Not measured yet: no line.
    let wd = Wd::new();
    wd.node("001_baseline", 1, &[100.0], true, None);
    let text = format_human(&gather(&wd.root).unwrap());
    assert!(!text.contains("noise floor"), "{text}");
}
