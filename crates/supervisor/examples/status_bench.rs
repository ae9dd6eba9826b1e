//! Benchmark of `supervisor status` (`docs/performance.md`: under 300 ms on a workdir of 10,000 nodes).
//!
//! Generates a workdir of N nodes (default 10,000) with the model types: node files
//! (`spec.json`, `status.txt`, `result.json` or `failure.json`), `runs/<id>/job.json` for the
//! running ones, `state.json`, `engine/engine_state.json`, `engine/checkpoint.json` with queued
//! and running specs, `engine/queue.json`, `engine/active.json` and `engine/tree.json`. Then it
//! times [`status::gather`] (the library function) over 20 runs and the binary
//! `supervisor status <wd> --json` over 5 runs, and prints
//!
//! `nodes=N status_median_ms=… status_max_ms=… binary_ms=…`
//!
//! for the workdir as an interrupted engine left it (status reads the checkpoint), then the same
//! line with `mode=running` while this process holds the engine lock (status reads
//! `active.json`). `binary_ms` is the median of the binary runs, including process start.
//!
//! ```sh
//! cargo build --release -p autoresearch-supervisor --bin supervisor
//! cargo run --release -p autoresearch-supervisor --example status_bench [-- --nodes N --keep DIR --bin PATH]
//! ```
//!
//! The binary is looked up in `--bin PATH`, `$SUPERVISOR_BIN`, then next to this example's
//! folder (`target/<profile>/supervisor`); without one, `binary_ms=NA`.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use autoresearch_adapters::model::{
    Failure, FailureKind, JobRecord, NodeResult, NodeSpec, NodeStatus, RunState, TreeFile, TreeNode,
};
use autoresearch_engine::checkpoint::{self, Checkpoint};
use autoresearch_engine::state::{Counts, EngineState, EngineStatus};
use autoresearch_engine::{WorkSpec, lock};
use autoresearch_supervisor::commands::status;
use serde_json::{Map, Value, json};

const GATHER_RUNS: usize = 20;
const BINARY_RUNS: usize = 5;

fn write_json(path: &Path, v: &impl serde::Serialize) {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).expect("create folder");
    }
    fs::write(path, serde_json::to_vec_pretty(v).expect("to JSON")).expect("write file");
}

/// xorshift64*: deterministic values without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn f(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Writes a workdir of `n` nodes: the last `n / 20` queued, 2 running, the rest finished (about
/// one in ten failed).
fn generate(root: &Path, n: usize) {
    let mut rng = Rng(0x5eed_0000 + n as u64);
    write_json(
        &root.join("config.json"),
        &json!({
            "objective": {"metric": "throughput", "direction": "maximize", "min_improvement": 0.01},
            "job": {"command": "sh bench.sh --workers {workers}", "cwd": "/tmp", "timeout_s": 600, "env": {}},
            "search_space": {"workers": {"min": 1, "max": 100000, "type": "int"}},
            "baseline": {"workers": 1},
            "limits": {"max_experiments": n + 100, "patience": 1000, "time_budget_s": null, "max_concurrency": 2}
        }),
    );
    let queued_from = n - n / 20;
    let running_from = queued_from - 2;
    let now = "2026-01-01T00:00:00Z";
    let (mut completed, mut failed) = (0u64, 0u64);
    let (mut best, mut best_id) = (f64::NEG_INFINITY, None::<String>);
    let mut tree = Vec::with_capacity(n);
    let mut queued = Vec::new();
    let mut running = Vec::new();
    let mut active = Vec::new();
    for k in 0..n {
        let name = if k == 0 {
            "baseline".to_string()
        } else {
            format!("workers_{k}")
        };
        let id = format!("{k:05}_{name}");
        // A ternary tree: node k descends from node (k - 1) / 3.
        let parent = (k > 0).then(|| {
            let p = (k - 1) / 3;
            if p == 0 {
                "00000_baseline".to_string()
            } else {
                format!("{p:05}_workers_{p}")
            }
        });
        let mut params = Map::new();
        params.insert("workers".into(), json!(k + 1));
        let status = if k >= queued_from {
            NodeStatus::Queued
        } else if k >= running_from {
            NodeStatus::Running
        } else if k > 0 && rng.f() < 0.1 {
            NodeStatus::Failed
        } else {
            NodeStatus::Completed
        };
        let spec = NodeSpec {
            node_id: id.clone(),
            name: name.clone(),
            parent_id: parent.clone(),
            hypothesis: format!("{k} workers should raise throughput"),
            params: params.clone(),
            changes: None,
            command: format!("sh bench.sh --workers {}", k + 1),
            priority: k as f64,
            created_at: now.into(),
        };
        let dir = root.join("engine/nodes").join(&id);
        write_json(&dir.join("spec.json"), &spec);
        fs::write(dir.join("status.txt"), format!("{status}\n")).expect("status.txt");
        let mut primary = None;
        let mut improved = false;
        match status {
            NodeStatus::Completed => {
                completed += 1;
                let q = 100.0 + 50.0 * rng.f() + k as f64 * 0.001;
                improved = q > best * 1.01;
                if q > best {
                    best = q;
                    best_id = Some(id.clone());
                }
                primary = Some(q);
                let mut metrics = BTreeMap::new();
                metrics.insert("throughput".to_string(), q);
                metrics.insert("latency_ms".to_string(), 1000.0 / q);
                write_json(
                    &dir.join("result.json"),
                    &NodeResult {
                        metrics,
                        primary,
                        improved,
                        duration_s: 10.0 * rng.f(),
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
                write_json(
                    &dir.join("failure.json"),
                    &Failure {
                        kind: FailureKind::NonzeroExit,
                        phase: NodeStatus::Running,
                        message: "the job exited with status 1".into(),
                        retryable: false,
                        details: json!({"exit_code": 1}),
                        created_at: now.into(),
                    },
                );
            }
            _ => {}
        }
        if status != NodeStatus::Queued {
            let run_dir = root.join("runs").join(&id);
            write_json(
                &run_dir.join("job.json"),
                &JobRecord {
                    job_id: format!("local:{}", 100_000 + k),
                    executor: "local".into(),
                    pid: Some(100_000 + k as u32),
                    pid_start_ticks: Some(k as u64),
                    slurm_id: None,
                    host: "bench".into(),
                    started_at: now.into(),
                    attempt: 1,
                },
            );
            fs::write(run_dir.join("stdout.log"), "METRIC throughput=100\n").expect("log");
        }
        let mut payload = Map::new();
        payload.insert("name".into(), json!(name));
        payload.insert("params".into(), Value::Object(params));
        payload.insert("parent_id".into(), json!(parent));
        let work = WorkSpec {
            id: id.clone(),
            priority: k as f64,
            kind: "experiment".into(),
            payload,
        };
        match status {
            NodeStatus::Queued => queued.push(work),
            NodeStatus::Running => {
                active.push(json!({
                    "id": id, "kind": "experiment", "started_at": now,
                    "annotation": {"job_id": format!("local:{}", 100_000 + k)}
                }));
                running.push(work);
            }
            _ => {}
        }
        tree.push(TreeNode {
            id,
            name,
            parent_id: parent,
            status,
            primary,
            improved,
            change: format!("workers={}", k + 1),
        });
    }
    write_json(
        &root.join("engine/tree.json"),
        &TreeFile {
            schema_version: 1,
            nodes: tree,
        },
    );
    write_json(
        &root.join("state.json"),
        &RunState {
            schema_version: 1,
            metric: "throughput".into(),
            direction: "maximize".into(),
            best_node: best_id,
            best_value: Some(best),
            baseline_node: Some("00000_baseline".into()),
            baseline_value: Some(100.0),
            plateau: 12,
            experiments_started: queued_from as u64,
            experiments_completed: completed,
            experiments_failed: failed,
            time_used_s: 36_000.0,
            planner_rounds: n as u64 / 2,
            next_index: n as u64,
            stop_reason: None,
            fail_fast: None,
            updated_at: now.into(),
            ..Default::default()
        },
    );
    write_json(
        &root.join("engine/engine_state.json"),
        &EngineState {
            schema_version: 1,
            status: EngineStatus::Interrupted,
            pid: std::process::id(),
            host: "bench".into(),
            started_at: now.into(),
            heartbeat_at: now.into(),
            max_concurrency: 2,
            counts: Counts {
                queued: queued.len() as u64,
                running: running.len() as u64,
                completed,
                failed,
            },
            stop_reason: None,
        },
    );
    let queue_view: Vec<Value> = queued
        .iter()
        .map(|s| json!({"id": s.id, "priority": s.priority, "kind": s.kind}))
        .collect();
    write_json(
        &root.join("engine/queue.json"),
        &json!({"updated_at": now, "queued": queue_view}),
    );
    write_json(
        &root.join("engine/active.json"),
        &json!({"updated_at": now, "running": active}),
    );
    checkpoint::save(
        &root.join("engine/checkpoint.json"),
        &Checkpoint {
            schema_version: checkpoint::SCHEMA_VERSION,
            revision: 1,
            status: EngineStatus::Interrupted,
            updated_at: now.into(),
            queued,
            running,
            extra: Map::new(),
            warnings: Vec::new(),
        },
    )
    .expect("checkpoint.json");
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Times `gather` over [`GATHER_RUNS`] runs: (median, max) in ms, and the status it found.
fn time_gather(root: &Path) -> (f64, f64, status::StatusReport) {
    let mut times = Vec::with_capacity(GATHER_RUNS);
    let mut last = None;
    for _ in 0..GATHER_RUNS {
        let t = Instant::now();
        let r = status::gather(root).expect("status::gather");
        times.push(ms(t.elapsed()));
        last = Some(r);
    }
    let max = times.iter().copied().fold(0.0, f64::max);
    (median(times), max, last.expect("at least one run"))
}

/// Median wall time of `supervisor status <wd> --json`, or `None` without a binary.
fn time_binary(bin: Option<&Path>, root: &Path, expect: &str) -> Option<f64> {
    let bin = bin?;
    let mut times = Vec::with_capacity(BINARY_RUNS);
    for _ in 0..BINARY_RUNS {
        let t = Instant::now();
        let out = Command::new(bin)
            .args(["status", root.to_str().expect("UTF-8 path"), "--json"])
            .stdin(Stdio::null())
            .output()
            .expect("run supervisor status");
        times.push(ms(t.elapsed()));
        assert!(
            out.status.success(),
            "supervisor status failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).expect("status --json is JSON");
        assert_eq!(v["status"], expect, "{v:#}");
    }
    Some(median(times))
}

fn find_binary(given: Option<PathBuf>) -> Option<PathBuf> {
    let candidates = given
        .into_iter()
        .chain(std::env::var_os("SUPERVISOR_BIN").map(PathBuf::from))
        .chain(
            std::env::current_exe()
                .ok()
                .and_then(|e| Some(e.parent()?.parent()?.join("supervisor"))),
        );
    candidates.into_iter().find(|c| c.is_file())
}

fn line(n: usize, mode: &str, gather: (f64, f64), binary: Option<f64>) -> String {
    format!(
        "{mode}nodes={n} status_median_ms={:.2} status_max_ms={:.2} binary_ms={}",
        gather.0,
        gather.1,
        binary
            .map(|b| format!("{b:.1}"))
            .unwrap_or_else(|| "NA".into())
    )
}

fn main() {
    let mut n = 10_000usize;
    let mut keep: Option<PathBuf> = None;
    let mut bin: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match (a.as_str(), args.next()) {
            ("--nodes", Some(v)) if v.parse::<usize>().is_ok_and(|v| v >= 40) => {
                n = v.parse().unwrap_or(n)
            }
            ("--keep", Some(v)) => keep = Some(PathBuf::from(v)),
            ("--bin", Some(v)) => bin = Some(PathBuf::from(v)),
            _ => {
                eprintln!("usage: status_bench [--nodes N (≥ 40)] [--keep DIR] [--bin PATH]");
                std::process::exit(2);
            }
        }
    }
    let tmp = tempfile::tempdir().expect("temp dir");
    let root = match &keep {
        Some(k) => k.join(format!("wd-{n}")),
        None => tmp.path().join(format!("wd-{n}")),
    };
    let _ = fs::remove_dir_all(&root);
    let t = Instant::now();
    generate(&root, n);
    eprintln!("generated {n} nodes in {:.1} s", t.elapsed().as_secs_f64());
    let bin = find_binary(bin);
    if bin.is_none() {
        eprintln!(
            "no supervisor binary found (build it with `cargo build --release -p autoresearch-supervisor --bin supervisor`, or pass --bin PATH): binary_ms=NA"
        );
    }

    // As an interrupted engine left it: status reads the checkpoint and the running jobs.
    let (med, max, report) = time_gather(&root);
    assert_eq!(report.status, "interrupted");
    assert_eq!(report.counts.queued, (n / 20) as u64);
    assert_eq!(report.running.len(), 2);
    assert!(report.best.is_some());
    let binary = time_binary(bin.as_deref(), &root, "interrupted");
    println!("{}", line(n, "", (med, max), binary));

    // While an engine holds the lock (this process): status reads active.json.
    let held = lock::acquire(&root).expect("engine lock");
    let (med, max, report) = time_gather(&root);
    assert_eq!(report.status, "running");
    assert_eq!(report.running.len(), 2);
    let binary = time_binary(bin.as_deref(), &root, "running");
    println!("{}", line(n, "mode=running ", (med, max), binary));
    drop(held);
}
