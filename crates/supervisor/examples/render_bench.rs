//! Benchmark of the views: generates workdirs of 100 and 1,000 nodes (random tree, mixed
//! statuses, 3 metrics) in a temp dir, renders all views and prints one line per size:
//!
//! `nodes=N table_ms=… summary_ms=… progress_ms=… tree_ms=… params_ms=… parallel_ms=…
//! total_ms=…`
//!
//! Run with `cargo run --release -p autoresearch-supervisor --example render_bench`. Pass sizes
//! as arguments to override (`… --example render_bench -- 15 1000`), and `--keep DIR` to keep
//! the generated workdirs (and their images) under `DIR`.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use autoresearch_adapters::model::{
    Failure, FailureKind, JobRecord, NodeResult, NodeSpec, NodeStatus, RunState,
};
use autoresearch_supervisor::render::render_all;
use serde_json::{Map, Value, json};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn f(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn write_json(path: &Path, v: &impl serde::Serialize) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, serde_json::to_vec_pretty(v).unwrap()).unwrap();
}

/// Writes a synthetic workdir with `n` nodes under `root`.
fn generate(root: &Path, n: usize, seed: u64) {
    let mut rng = Rng(seed | 1);
    let words = [
        "workers",
        "chunk",
        "prefetch",
        "batch",
        "lr",
        "cache",
        "pin_memory",
        "threads",
    ];
    write_json(
        &root.join("config.json"),
        &json!({
            "objective": {"metric": "throughput", "direction": "maximize", "min_improvement": 0.01},
            "job": {"command": "sh bench.sh --workers {workers} --chunk {chunk}", "cwd": ".", "timeout_s": 600, "env": {}},
            "search_space": {
                "workers": {"min": 1, "max": 64, "scale": "log", "type": "int"},
                "chunk": {"min": 64, "max": 32768, "scale": "log", "type": "int"}
            },
            "baseline": {"workers": 1, "chunk": 64},
            "limits": {"max_experiments": n + 50, "patience": 40, "time_budget_s": 86400, "max_concurrency": 2}
        }),
    );
    let running_from = n.saturating_sub(n / 20 + 3);
    let queued_from = n.saturating_sub(n / 20);
    let mut params_of: Vec<Map<String, Value>> = Vec::new();
    let mut best = f64::NEG_INFINITY;
    let mut best_id = None;
    let mut plateau = 0u32;
    let (mut completed, mut failed) = (0u64, 0u64);
    let mut quality: Vec<f64> = Vec::new();
    let mut ids: Vec<String> = Vec::new();
    for k in 0..n {
        let roots = 3.min(n);
        let parent = if k < roots {
            None
        } else if rng.f() < 0.7 {
            Some(k - 1 - rng.below(k.min(40)))
        } else {
            Some(rng.below(k))
        };
        let mut params = parent.map(|p| params_of[p].clone()).unwrap_or_else(|| {
            let mut m = Map::new();
            m.insert("workers".into(), json!(1 + rng.below(4)));
            m.insert("chunk".into(), json!(64 << rng.below(4)));
            m
        });
        let w = words[rng.below(words.len())];
        let val = match rng.below(3) {
            0 => json!(1 << rng.below(6)),
            1 => json!(16 << rng.below(8)),
            _ => json!(format!("v{}", rng.below(9))),
        };
        params.insert(w.to_owned(), val.clone());
        params_of.push(params.clone());
        let name = if k == 0 {
            "baseline".to_owned()
        } else {
            format!("{w}_{}", val.to_string().trim_matches('"'))
        };
        let id = format!("{k:03}_{name}");
        ids.push(id.clone());
        let dir = root.join("engine/nodes").join(&id);
        let status = if k >= queued_from {
            NodeStatus::Queued
        } else if k >= running_from {
            [
                NodeStatus::Running,
                NodeStatus::Analyzing,
                NodeStatus::Preparing,
            ][k % 3]
        } else if k > 0 && rng.f() < 0.12 {
            NodeStatus::Failed
        } else {
            NodeStatus::Completed
        };
        write_json(
            &dir.join("spec.json"),
            &NodeSpec {
                node_id: id.clone(),
                name: name.clone(),
                parent_id: parent.map(|p| ids[p].clone()),
                hypothesis: format!("Changing {w} to {val} should raise throughput"),
                params,
                changes: None,
                command: format!("sh bench.sh --{w} {val}"),
                priority: -(k as f64),
                created_at: "2026-01-01T00:00:00Z".into(),
            },
        );
        fs::write(dir.join("status.txt"), format!("{status}\n")).unwrap();
        let q = parent.map(|p| quality[p]).unwrap_or(100.0) * (0.93 + 0.12 * rng.f());
        quality.push(q);
        match status {
            NodeStatus::Completed => {
                completed += 1;
                let improved = q > best * 1.01 || best_id.is_none();
                if improved {
                    best = q;
                    best_id = Some(id.clone());
                    plateau = 0;
                } else {
                    plateau += 1;
                }
                let mut metrics = BTreeMap::new();
                metrics.insert("throughput".to_owned(), q);
                metrics.insert("latency_ms".to_owned(), 1000.0 / q + rng.f());
                metrics.insert("memory_mb".to_owned(), 500.0 + 300.0 * rng.f());
                write_json(
                    &dir.join("result.json"),
                    &NodeResult {
                        metrics,
                        primary: Some(q),
                        improved,
                        duration_s: 5.0 + 100.0 * rng.f(),
                        exit_code: Some(0),
                        children: Vec::new(),
                        analysis: String::new(),
                        metrics_dropped: 0,
                        ..Default::default()
                    },
                );
            }
            NodeStatus::Failed => {
                failed += 1;
                let kind = [
                    FailureKind::NonzeroExit,
                    FailureKind::Timeout,
                    FailureKind::MissingMetric,
                ][rng.below(3)];
                write_json(
                    &dir.join("failure.json"),
                    &Failure {
                        kind,
                        phase: NodeStatus::Running,
                        message: format!("job ended: {}", kind.as_str()),
                        retryable: false,
                        details: Value::Null,
                        created_at: "2026-01-01T00:00:00Z".into(),
                    },
                );
            }
            s if s.is_active() => write_json(
                &root.join("runs").join(&id).join("job.json"),
                &JobRecord {
                    job_id: format!("local:{}", 1000 + k),
                    executor: "local".into(),
                    pid: Some(1000 + k as u32),
                    pid_start_ticks: None,
                    slurm_id: None,
                    host: "bench".into(),
                    started_at: "2026-01-01T00:00:00Z".into(),
                    attempt: 1,
                },
            ),
            _ => {}
        }
    }
    write_json(
        &root.join("state.json"),
        &RunState {
            schema_version: 1,
            metric: "throughput".into(),
            direction: "maximize".into(),
            best_node: best_id,
            best_value: Some(best),
            baseline_node: Some("000_baseline".into()),
            baseline_value: Some(100.0),
            plateau,
            experiments_started: (n - n / 20) as u64,
            experiments_completed: completed,
            experiments_failed: failed,
            time_used_s: 3600.0,
            planner_rounds: n as u64 / 2,
            next_index: n as u64,
            stop_reason: None,
            fail_fast: None,
            updated_at: "2026-01-01T00:00:00Z".into(),
            ..Default::default()
        },
    );
    write_json(
        &root.join("engine/engine_state.json"),
        &json!({"schema_version": 1, "status": "interrupted", "pid": 1, "host": "bench",
                "started_at": "2026-01-01T00:00:00Z", "heartbeat_at": "2026-01-01T01:00:00Z",
                "max_concurrency": 2,
                "counts": {"queued": n / 20, "running": 3, "completed": completed, "failed": failed}}),
    );
}

fn main() {
    let mut sizes: Vec<usize> = Vec::new();
    let mut keep: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--keep" {
            keep = args.next().map(PathBuf::from);
        } else if let Ok(n) = a.parse() {
            sizes.push(n);
        } else {
            eprintln!("usage: render_bench [--keep DIR] [SIZES…]");
            std::process::exit(2);
        }
    }
    if sizes.is_empty() {
        sizes = vec![100, 1000];
    }
    let tmp = tempfile::tempdir().expect("temp dir");
    for n in sizes {
        let root = match &keep {
            Some(k) => k.join(format!("wd-{n}")),
            None => tmp.path().join(format!("wd-{n}")),
        };
        let _ = fs::remove_dir_all(&root);
        generate(&root, n, 0x5eed + n as u64);
        let report = render_all(&root).expect("render");
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
        let t = report.timings;
        println!(
            "nodes={n} table_ms={:.1} summary_ms={:.1} progress_ms={:.1} tree_ms={:.1} params_ms={:.1} parallel_ms={:.1} total_ms={:.1}",
            ms(t.table),
            ms(t.summary),
            ms(t.progress),
            ms(t.tree),
            ms(t.params),
            ms(t.parallel),
            ms(t.total)
        );
        if keep.is_some() {
            eprintln!("kept {}", root.display());
        }
    }
}
