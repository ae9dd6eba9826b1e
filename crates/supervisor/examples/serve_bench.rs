//! Benchmark of `supervisor serve` on a 10,000-node workdir: the first page load, a page of the
//! experiments table, and the delay from a job's `exit_code` to its row reaching a page through
//! the live feed (targets: ≤ 200 ms, ≤ 200 ms, ≤ 1 s).
//!
//! It writes a workdir of N nodes with the model types (finished nodes, about one in ten
//! failed, and `--jobs` queued ones whose command really runs), as an interrupted engine would
//! leave it. Then it starts the release binary's `supervisor serve` on a free loopback port and
//! measures, from outside, as a browser would:
//!
//! - `first_page_ms`: the HTML shell, every script and style sheet, `/api/info`, the overview
//!   and the progress chart's data, one after the other (a browser fetches some in parallel, so
//!   this is an upper bound); the first (cold) load and the median of 5 more;
//! - `table_page_ms`: page 101 of 50 rows sorted by the metric, and a filtered page (text,
//!   status and a parameter range), median and max of 20;
//! - `live_delay_ms`: it resumes the engine on the workdir (the queued jobs run for real),
//!   follows `/api/…/events` like a page does, fetches the table page (newest first) after each
//!   update, and
//!   times each new row against the modification time of its `runs/<id>/exit_code`.
//!
//! ```sh
//! cargo build --release -p autoresearch-supervisor --bin supervisor
//! cargo run --release -p autoresearch-supervisor --example serve_bench [-- --nodes N --jobs J --keep DIR --bin PATH]
//! ```

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use autoresearch_adapters::model::{
    Failure, FailureKind, JobRecord, NodeResult, NodeSpec, NodeStatus, RunState, TreeFile, TreeNode,
};
use autoresearch_engine::WorkSpec;
use autoresearch_engine::checkpoint::{self, Checkpoint};
use autoresearch_engine::state::{Counts, EngineState, EngineStatus};
use futures_util::StreamExt;
use serde_json::{Map, Value, json};

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

/// Writes a workdir of `n` nodes: the last `jobs` queued (their job sleeps 0.3 s and reports a
/// throughput), the others finished, as an interrupted engine leaves it.
fn generate(root: &Path, n: usize, jobs: usize) {
    let mut rng = Rng(0x5eed_0000 + n as u64);
    fs::create_dir_all(root).expect("workdir");
    let script = root.parent().expect("parent").join("bench-job.sh");
    fs::write(
        &script,
        "sleep 0.3\necho \"METRIC throughput=$((100 + $1 % 97))\"\necho \"METRIC latency_ms=$((1 + $1 % 13))\"\n",
    )
    .expect("job script");
    let cwd = script.parent().expect("folder").display().to_string();
    write_json(
        &root.join("config.json"),
        &json!({
            "objective": {"metric": "throughput", "direction": "maximize", "min_improvement": 0.01},
            "job": {"command": "sh bench-job.sh {workers}", "cwd": cwd, "timeout_s": 600, "env": {}},
            "search_space": {"workers": {"min": 1, "max": 1000000, "type": "int"}},
            "baseline": {"workers": 1},
            "planner": {"kind": "none"},
            "limits": {"max_experiments": n + 100, "patience": 100000, "time_budget_s": null, "max_concurrency": 2}
        }),
    );
    let queued_from = n - jobs;
    let now = "2026-01-01T00:00:00Z";
    let (mut completed, mut failed) = (0u64, 0u64);
    let (mut best, mut best_id) = (f64::NEG_INFINITY, None::<String>);
    let mut tree = Vec::with_capacity(n);
    let mut queued = Vec::new();
    let mut recorded: Vec<String> = Vec::new();
    for k in 0..n {
        let name = if k == 0 {
            "baseline".to_string()
        } else {
            format!("workers_{k}")
        };
        let id = format!("{k:05}_{name}");
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
        } else if k > 0 && rng.f() < 0.1 {
            NodeStatus::Failed
        } else {
            NodeStatus::Completed
        };
        let spec = NodeSpec {
            node_id: id.clone(),
            name: name.clone(),
            parent_id: parent.clone(),
            hypothesis: format!("{} workers should raise throughput", k + 1),
            params: params.clone(),
            changes: None,
            command: format!("sh bench-job.sh {}", k + 1),
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
            recorded.push(id.clone());
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
            fs::write(run_dir.join("exit_code"), "0\n").expect("exit_code");
        } else {
            let mut payload = Map::new();
            payload.insert("name".into(), json!(name));
            payload.insert("params".into(), Value::Object(params));
            payload.insert("parent_id".into(), json!(parent));
            queued.push(WorkSpec {
                id: id.clone(),
                priority: k as f64,
                kind: "experiment".into(),
                payload,
            });
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
    // The run state as the workflow writes it: the public record plus the finished nodes
    // already counted (`recorded`), so a resume does not count them again.
    let mut state = serde_json::to_value(RunState {
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
        updated_at: now.into(),
        ..RunState::default()
    })
    .expect("state to JSON");
    state["recorded"] = json!(recorded);
    write_json(&root.join("state.json"), &state);
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
                running: 0,
                completed,
                failed,
            },
            stop_reason: None,
        },
    );
    checkpoint::save(
        &root.join("engine/checkpoint.json"),
        &Checkpoint {
            schema_version: checkpoint::SCHEMA_VERSION,
            revision: 1,
            status: EngineStatus::Interrupted,
            updated_at: now.into(),
            queued,
            running: Vec::new(),
            extra: Map::new(),
            warnings: Vec::new(),
        },
    )
    .expect("checkpoint.json");
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn stats(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    let pick = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    (pick(0.5), pick(0.9), v[v.len() - 1])
}

fn find_binary(given: Option<PathBuf>) -> PathBuf {
    let candidates = given
        .into_iter()
        .chain(std::env::var_os("SUPERVISOR_BIN").map(PathBuf::from))
        .chain(
            std::env::current_exe()
                .ok()
                .and_then(|e| Some(e.parent()?.parent()?.join("supervisor"))),
        );
    candidates
        .into_iter()
        .find(|c| c.is_file())
        .unwrap_or_else(|| {
            eprintln!(
                "no supervisor binary found: build it with `cargo build --release -p autoresearch-supervisor --bin supervisor`, or pass --bin PATH"
            );
            std::process::exit(2)
        })
}

/// A child process killed on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child: SIGINT, so an engine writes its checkpoint.
        unsafe {
            libc::kill(self.0.id() as libc::pid_t, libc::SIGINT);
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `supervisor serve ROOT --port 0`; returns it, its base URL and the load time it
/// printed.
fn start_server(bin: &Path, root: &Path) -> (Proc, String, String) {
    let mut child = Command::new(bin)
        .args(["serve", root.to_str().expect("UTF-8 path"), "--port", "0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start supervisor serve");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let url = lines
        .next()
        .and_then(Result::ok)
        .and_then(|l| l.strip_prefix("dashboard: ").map(str::to_owned))
        .expect("the dashboard's URL");
    let serving = lines.next().and_then(Result::ok).unwrap_or_default();
    std::thread::spawn(move || for _ in lines {});
    (Proc(child), url.trim_end_matches('/').to_owned(), serving)
}

const PAGE_ASSETS: &[&str] = &[
    "/assets/app.css",
    "/assets/app.js",
    "/assets/util.js",
    "/assets/chart.js",
    "/assets/overview.js",
    "/assets/table.js",
    "/assets/tree.js",
    "/assets/node.js",
    "/assets/dejavu-sans.ttf",
];

async fn fetch(c: &reqwest::Client, url: &str) -> usize {
    let r = c.get(url).send().await.expect("GET");
    assert!(r.status().is_success(), "GET {url}: {}", r.status());
    r.bytes().await.expect("body").len()
}

/// One first page load: (milliseconds, bytes).
async fn first_page(base: &str, key: &str) -> (f64, usize) {
    let c = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let t = Instant::now();
    let mut bytes = fetch(&c, &format!("{base}/w/{key}")).await;
    for a in PAGE_ASSETS {
        bytes += fetch(&c, &format!("{base}{a}")).await;
    }
    bytes += fetch(&c, &format!("{base}/api/info")).await;
    bytes += fetch(&c, &format!("{base}/api/w/{key}/overview")).await;
    bytes += fetch(&c, &format!("{base}/api/w/{key}/progress")).await;
    (ms(t.elapsed()), bytes)
}

async fn time_get(c: &reqwest::Client, url: &str, runs: usize) -> (f64, f64) {
    let mut v = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        fetch(c, url).await;
        v.push(ms(t.elapsed()));
    }
    let (med, _, max) = stats(v);
    (med, max)
}

/// Follows the live feed while the engine runs the queued jobs; returns the delay from each
/// job's `exit_code` to its row being read by a client, in ms.
async fn live_delays(bin: &Path, root: &Path, base: &str, key: &str, jobs: usize) -> Vec<f64> {
    let c = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let events = c
        .get(format!("{base}/api/w/{key}/events"))
        .send()
        .await
        .expect("events");
    let mut stream = events.bytes_stream();
    let _engine = Proc(
        Command::new(bin)
            .args(["run", root.to_str().expect("UTF-8"), "--no-render"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the engine"),
    );
    let mut seen: HashMap<String, SystemTime> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(180);
    let page = format!("{base}/api/w/{key}/nodes?sort=id&desc=1&limit=50&status=completed,failed");
    while seen.len() < jobs && Instant::now() < deadline {
        let Ok(Some(Ok(chunk))) = tokio::time::timeout(Duration::from_secs(5), stream.next()).await
        else {
            continue;
        };
        if !String::from_utf8_lossy(&chunk).contains("event: update") {
            continue;
        }
        let v: Value = c
            .get(&page)
            .send()
            .await
            .expect("page")
            .json()
            .await
            .expect("JSON");
        let now = SystemTime::now();
        for r in v["rows"].as_array().into_iter().flatten() {
            let id = r["id"].as_str().unwrap_or("").to_string();
            if r["finished"].is_u64() && is_new_job(root, &id) {
                seen.entry(id).or_insert(now);
            }
        }
    }
    seen.iter()
        .filter_map(|(id, t)| {
            let exit = fs::metadata(root.join("runs").join(id).join("exit_code"))
                .and_then(|m| m.modified())
                .ok()?;
            Some(ms(t.duration_since(exit).unwrap_or_default()))
        })
        .collect()
}

/// Whether `id` is one of the jobs run during the benchmark (its `job.json` is not the
/// generated one).
fn is_new_job(root: &Path, id: &str) -> bool {
    fs::read_to_string(root.join("runs").join(id).join("job.json"))
        .map(|t| !t.contains("\"host\": \"bench\""))
        .unwrap_or(false)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut n = 10_000usize;
    let mut jobs = 20usize;
    let mut keep: Option<PathBuf> = None;
    let mut bin: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match (a.as_str(), args.next()) {
            ("--nodes", Some(v)) if v.parse::<usize>().is_ok_and(|v| v >= 100) => {
                n = v.parse().unwrap_or(n)
            }
            ("--jobs", Some(v)) if v.parse::<usize>().is_ok_and(|v| v >= 1) => {
                jobs = v.parse().unwrap_or(jobs)
            }
            ("--keep", Some(v)) => keep = Some(PathBuf::from(v)),
            ("--bin", Some(v)) => bin = Some(PathBuf::from(v)),
            _ => {
                eprintln!(
                    "usage: serve_bench [--nodes N (≥ 100)] [--jobs J] [--keep DIR] [--bin PATH]"
                );
                std::process::exit(2);
            }
        }
    }
    let bin = find_binary(bin);
    let tmp = tempfile::tempdir().expect("temp dir");
    let root = match &keep {
        Some(k) => k.join(format!("wd-{n}")),
        None => tmp.path().join(format!("wd-{n}")),
    };
    let _ = fs::remove_dir_all(&root);
    let t = Instant::now();
    generate(&root, n, jobs);
    eprintln!("generated {n} nodes in {:.1} s", t.elapsed().as_secs_f64());
    let key = root.file_name().unwrap().to_string_lossy().into_owned();

    let (server, base, serving) = start_server(&bin, &root);
    eprintln!("{serving}");
    let (cold, bytes) = first_page(&base, &key).await;
    let mut warm = Vec::new();
    for _ in 0..5 {
        warm.push(first_page(&base, &key).await.0);
    }
    let (warm_med, _, warm_max) = stats(warm);
    let c = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let (table_med, table_max) = time_get(
        &c,
        &format!("{base}/api/w/{key}/nodes?offset=5000&limit=50&sort=value&desc=1"),
        20,
    )
    .await;
    let (filt_med, filt_max) = time_get(
        &c,
        &format!("{base}/api/w/{key}/nodes?q=workers_9&status=completed&min.workers=100&max.workers=9000&sort=p:workers&limit=50"),
        20,
    )
    .await;
    let (csv_med, _) = time_get(&c, &format!("{base}/api/w/{key}/csv"), 3).await;
    println!(
        "nodes={n} {serving_ms} first_page_ms={cold:.1} (cold) first_page_warm_median_ms={warm_med:.1} first_page_warm_max_ms={warm_max:.1} first_page_kb={kb}",
        serving_ms = serving
            .split("loaded in ")
            .nth(1)
            .map(|s| format!("startup_load_ms={}", s.trim_end_matches(" ms)")))
            .unwrap_or_default(),
        kb = bytes / 1024
    );
    println!(
        "nodes={n} table_page_median_ms={table_med:.1} table_page_max_ms={table_max:.1} filtered_page_median_ms={filt_med:.1} filtered_page_max_ms={filt_max:.1} csv_all_median_ms={csv_med:.1}"
    );
    let delays = live_delays(&bin, &root, &base, &key, jobs).await;
    drop(server);
    if delays.is_empty() {
        println!("nodes={n} live_delay: no job finished within the time limit");
        drop(tmp);
        std::process::exit(1);
    }
    let count = delays.len();
    let (med, p90, max) = stats(delays);
    println!(
        "nodes={n} jobs={count} live_delay_median_ms={med:.0} live_delay_p90_ms={p90:.0} live_delay_max_ms={max:.0}"
    );
}
