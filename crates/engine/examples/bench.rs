//! Engine benchmark: runs no-op specs through the engine with checkpointing on.
//!
//! `cargo run --release -p autoresearch-engine --example bench -- --shape flat|tree --specs N --concurrency C`
//! prints, as its last line:
//! `specs=N wall_s=… specs_per_s=… checkpoint_writes=… checkpoint_bytes=… peak_rss_mb=…`
//!
//! `--load-only N` instead writes a checkpoint with N queued specs and times loading it:
//! `load_specs=N load_s=… file_bytes=…`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use autoresearch_engine::{
    AsyncWorkEngine, EngineConfig, StartInfo, WorkError, WorkSpec, Workflow,
};

struct NoOp {
    shape: String,
    total: u64,
    created: AtomicU64,
}

impl NoOp {
    fn spec(i: u64) -> WorkSpec {
        WorkSpec {
            id: format!("s{i}"),
            priority: (i % 7) as f64,
            kind: "noop".into(),
            payload: Default::default(),
        }
    }
}

impl Workflow for NoOp {
    async fn initial_specs(&self, _: &StartInfo) -> Result<Vec<WorkSpec>, WorkError> {
        let n = if self.shape == "flat" { self.total } else { 1 };
        self.created.store(n, Ordering::Relaxed);
        Ok((0..n).map(NoOp::spec).collect())
    }

    async fn run(
        &self,
        _spec: WorkSpec,
        _ctx: autoresearch_engine::RunContext,
    ) -> Result<Vec<WorkSpec>, WorkError> {
        if self.shape == "flat" {
            return Ok(Vec::new());
        }
        // Tree: each spec adds up to two children until `total` specs exist.
        let mut children = Vec::new();
        for _ in 0..2 {
            let i = self.created.fetch_add(1, Ordering::Relaxed);
            if i >= self.total {
                break;
            }
            children.push(NoOp::spec(i));
        }
        Ok(children)
    }
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<f64>().ok())
            })
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let dir = tempdir()?;
    if let Some(n) = arg(&args, "--load-only") {
        let n: usize = n.parse()?;
        let cp = autoresearch_engine::checkpoint::Checkpoint {
            schema_version: 1,
            revision: 1,
            status: autoresearch_engine::EngineStatus::Interrupted,
            updated_at: "2026-11-23T18:00:00Z".into(),
            queued: (0..n as u64).map(NoOp::spec).collect(),
            running: Vec::new(),
            extra: Default::default(),
            warnings: Vec::new(),
        };
        let path = dir.join("checkpoint.json");
        autoresearch_engine::checkpoint::save(&path, &cp)?;
        let t = Instant::now();
        let loaded = autoresearch_engine::checkpoint::load(&path)?;
        let secs = t.elapsed().as_secs_f64();
        let count = loaded.map(|c| c.queued.len()).unwrap_or(0);
        println!(
            "load_specs={count} load_s={secs:.3} file_bytes={}",
            std::fs::metadata(&path)?.len()
        );
        std::fs::remove_dir_all(&dir)?;
        return Ok(());
    }
    let shape = arg(&args, "--shape").unwrap_or_else(|| "flat".into());
    if shape != "flat" && shape != "tree" {
        return Err(format!("--shape: expected flat or tree, found {shape}").into());
    }
    let total: u64 = arg(&args, "--specs")
        .unwrap_or_else(|| "100000".into())
        .parse()?;
    let concurrency: usize = arg(&args, "--concurrency")
        .unwrap_or_else(|| "8".into())
        .parse()?;
    let rt = if std::env::var_os("BENCH_CURRENT_THREAD").is_some() {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
    };
    let mut config = EngineConfig::new(&dir);
    config.max_concurrency = concurrency;
    config.signals = autoresearch_engine::SignalHandlerKind::Noop;
    let wf = NoOp {
        shape,
        total,
        created: AtomicU64::new(0),
    };
    let t = Instant::now();
    let report = rt.block_on(async { AsyncWorkEngine::open(config, wf)?.run().await })?;
    let wall = t.elapsed().as_secs_f64();
    let done = report.counts.completed;
    println!(
        "specs={done} wall_s={wall:.3} specs_per_s={:.0} checkpoint_writes={} checkpoint_bytes={} peak_rss_mb={:.1}",
        done as f64 / wall,
        report.checkpoint_writes,
        report.checkpoint_bytes,
        peak_rss_mb()
    );
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

fn tempdir() -> std::io::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("autoresearch-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
