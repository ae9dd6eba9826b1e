//! Latency benchmark: how soon the next experiment starts after a job exits, with
//! the local executor at `max_concurrency = 1`.
//!
//! `cargo run --release -p autoresearch-adapters --example latency_bench -- [N] [--dir DIR] [--keep]`
//!
//! Runs N (default 40) trivial experiments (`echo METRIC score={x}`: the baseline and N-1
//! seeds, `planner.kind = "none"`) through the real engine, then reads the run files: the gap
//! of one experiment is from the previous job's wrapper writing `runs/<prev>/exit_code` (the
//! last thing it does before exiting) to the next job's wrapper writing `runs/<next>/pid` (the
//! first thing it does). Prints, as its last line:
//!
//! `experiments=N median_ms=… p90_ms=… max_ms=…`
//!
//! and before it the median of each step of the gap. The ends are file mtimes (the kernel's
//! timestamp granularity, typically 1–4 ms); the steps in between are the engine's events in
//! `engine/events.jsonl` (millisecond timestamps), so each figure is ± a few ms:
//!
//! - `wake`: `exit_code` written → event `analyzing` of the finished node (the wrapper's last
//!   `mv` and exit, the engine woken by the child's exit, status `analyzing` persisted)
//! - `analyze`: → `planning` (metrics read and judged, result.json, analysis.md, status,
//!   state.json)
//! - `plan+complete`: → `spec_completed` (planner, result.json again, status `completed`)
//! - `dispatch`: → `spec_started` of the next node (outcome, tree.json, next spec admitted)
//! - `prepare`: → its `launching` (status `preparing`, run dir, command.sh, status `launching`)
//! - `launch+spawn`: → its `pid` written (launch.json, wrapper.sh, process spawned, the wrapper's
//!   first line)
//!
//! A line `atomic_write_ms=` gives the median cost of one durable atomic file replacement
//! (write, fsync, rename, fsync of the folder) on the same filesystem: the gap is roughly 15 of
//! those plus ~10 ms of process work, so it depends on the disk and its load.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use autoresearch_adapters::config::Config;
use autoresearch_adapters::session::{Session, SessionOptions, resolve_config};
use serde_json::json;

struct Args {
    experiments: usize,
    dir: Option<PathBuf>,
    keep: bool,
}

fn parse_args() -> Args {
    let mut args = Args {
        experiments: 40,
        dir: None,
        keep: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--dir" => args.dir = it.next().map(PathBuf::from),
            "--keep" => args.keep = true,
            "-h" | "--help" => {
                eprintln!("usage: latency_bench [N] [--dir DIR] [--keep]");
                std::process::exit(0);
            }
            n => match n.parse::<usize>() {
                Ok(n) if n >= 2 => args.experiments = n,
                _ => {
                    eprintln!("latency_bench: expected a number of experiments ≥ 2, found {n:?}");
                    std::process::exit(2);
                }
            },
        }
    }
    args
}

fn mtime(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// `b - a` in milliseconds (negative when `b` is earlier).
fn ms(a: SystemTime, b: SystemTime) -> f64 {
    match b.duration_since(a) {
        Ok(d) => d.as_secs_f64() * 1e3,
        Err(e) => -e.duration().as_secs_f64() * 1e3,
    }
}

/// The `q` quantile (nearest rank) of sorted values.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

/// `(spec id, event)` → time, from `events.jsonl`; `spec_phase` events are keyed by their phase.
fn read_events(path: &Path) -> std::collections::HashMap<(String, String), SystemTime> {
    use autoresearch_engine::Event;
    let mut out = std::collections::HashMap::new();
    let (lines, _) = autoresearch_engine::events::read_events::<Event>(path, 0).unwrap_or_default();
    for line in lines {
        let (id, what) = match line.event {
            Event::SpecPhase { id, phase, .. } => (id, phase),
            Event::SpecStarted { id, .. } => (id, "spec_started".to_string()),
            Event::SpecCompleted { id } => (id, "spec_completed".to_string()),
            _ => continue,
        };
        if let Ok(t) = humantime::parse_rfc3339_weak(&line.ts) {
            out.entry((id, what)).or_insert(t);
        }
    }
    out
}

/// Median time of one durable atomic file replacement (temp file, fsync, rename, fsync of the
/// folder) in `dir`: the unit cost of every phase boundary the workflow persists.
fn atomic_write_ms(dir: &Path) -> f64 {
    let cal = dir.join("calibration");
    std::fs::create_dir_all(&cal).expect("calibration dir");
    let file = cal.join("status.txt");
    let times: Vec<f64> = (0..20)
        .map(|i| {
            let t = Instant::now();
            autoresearch_engine::atomic::write_atomic(&file, format!("{i}\n").as_bytes())
                .expect("atomic write");
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    let _ = std::fs::remove_dir_all(&cal);
    quantile(&sorted(times), 0.5)
}

fn main() {
    let args = parse_args();
    let n = args.experiments;
    let tmp = match &args.dir {
        Some(d) => {
            std::fs::create_dir_all(d).expect("--dir");
            tempfile::Builder::new()
                .prefix("latency-")
                .tempdir_in(d)
                .expect("temp dir")
        }
        None => tempfile::Builder::new()
            .prefix("latency-")
            .tempdir()
            .expect("temp dir"),
    };
    let root = tmp.path().join("wd");
    let work = tmp.path().join("work");
    std::fs::create_dir_all(&work).expect("work dir");

    let seeds: Vec<_> = (1..n)
        .map(|i| json!({ "name": format!("e{i}"), "params": { "x": i } }))
        .collect();
    let config = json!({
        "objective": { "metric": "score", "direction": "maximize", "min_improvement": 0 },
        "job": { "command": "echo METRIC score={x}", "cwd": work, "timeout_s": 60 },
        "search_space": { "x": { "min": 0, "max": n, "type": "int" } },
        "baseline": { "x": 0 },
        "seeds": seeds,
        "planner": { "kind": "none" },
        "executor": { "kind": "local" },
        "limits": { "max_concurrency": 1, "max_experiments": n, "patience": n + 1 }
    });
    let config = Config::from_json_str(&config.to_string(), Path::new("latency_bench"))
        .expect("benchmark config");
    let config = resolve_config(&root, Some(config)).expect("resolve config");

    let atomic_ms = atomic_write_ms(tmp.path());

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let wall = Instant::now();
    let report = rt.block_on(async {
        let options = SessionOptions {
            grace_period: Duration::from_secs(5),
            handle_signals: true,
        };
        let session = Session::open(&root, config, &options).expect("session");
        session.run().await.expect("engine run")
    });
    let wall_s = wall.elapsed().as_secs_f64();

    // Nodes in the order their jobs started.
    let nodes_dir = root.join("engine").join("nodes");
    let runs = root.join("runs");
    let mut ids: Vec<(SystemTime, String)> = std::fs::read_dir(&nodes_dir)
        .expect("engine/nodes")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter_map(|id| mtime(&runs.join(&id).join("pid")).map(|t| (t, id)))
        .collect();
    ids.sort();
    let completed = std::fs::read_dir(&nodes_dir)
        .expect("engine/nodes")
        .filter_map(Result::ok)
        .filter(|e| {
            std::fs::read_to_string(e.path().join("status.txt"))
                .is_ok_and(|s| s.trim() == "completed")
        })
        .count();

    // Engine events (millisecond timestamps) by (node, event or phase).
    let events = read_events(&root.join("engine").join("events.jsonl"));
    let ev = |id: &str, what: &str| events.get(&(id.to_string(), what.to_string())).copied();

    let mut gaps = Vec::new();
    let steps = [
        "wake",
        "analyze",
        "plan+complete",
        "dispatch",
        "prepare",
        "launch+spawn",
    ];
    let mut step_ms: Vec<Vec<f64>> = vec![Vec::new(); steps.len()];
    for pair in ids.windows(2) {
        let (prev, next) = (&pair[0].1, &pair[1].1);
        let points = [
            mtime(&runs.join(prev).join("exit_code")),
            ev(prev, "analyzing"),
            ev(prev, "planning"),
            ev(prev, "spec_completed"),
            ev(next, "spec_started"),
            ev(next, "launching"),
            mtime(&runs.join(next).join("pid")),
        ];
        let (Some(exit), Some(start)) = (points[0], points[6]) else {
            continue;
        };
        gaps.push(ms(exit, start));
        for (i, w) in points.windows(2).enumerate() {
            if let (Some(a), Some(b)) = (w[0], w[1]) {
                step_ms[i].push(ms(a, b));
            }
        }
    }
    let gaps = sorted(gaps);

    println!(
        "status={:?} completed={completed} wall_s={wall_s:.2} per_experiment_ms={:.1} \
         atomic_write_ms={atomic_ms:.2} dir={}",
        report.status,
        wall_s * 1e3 / n as f64,
        tmp.path().display()
    );
    for (name, v) in steps.iter().zip(step_ms) {
        let v = sorted(v);
        println!(
            "step {name:<14} median_ms={:.1} p90_ms={:.1} max_ms={:.1}",
            quantile(&v, 0.5),
            quantile(&v, 0.9),
            v.last().copied().unwrap_or(f64::NAN)
        );
    }
    println!(
        "experiments={n} median_ms={:.1} p90_ms={:.1} max_ms={:.1}",
        quantile(&gaps, 0.5),
        quantile(&gaps, 0.9),
        gaps.last().copied().unwrap_or(f64::NAN)
    );
    if args.keep {
        let kept = tmp.keep();
        eprintln!("kept {}", kept.display());
    }
}
