//! A custom workflow: explore the Collatz tree backwards from 1 as a tree of specs, at most 4
//! running at once, with a durable, resumable checkpoint in `./collatz-run/engine/`.
//! Interrupt it with Ctrl+C and run it again: it resumes where it stopped.
//!
//! `cargo run -p autoresearch-engine --example custom_workflow -- [workdir] [max_value]`

use autoresearch_engine::{
    AsyncWorkEngine, EngineConfig, RunContext, StartInfo, WorkError, WorkSpec, Workflow,
};
use serde_json::json;

struct Collatz {
    max: u64,
}

/// One spec per number; smaller numbers first (priority = value).
fn number(n: u64) -> WorkSpec {
    let payload = json!({ "n": n }).as_object().cloned().unwrap_or_default();
    WorkSpec {
        id: format!("n{n}"),
        priority: n as f64,
        kind: "collatz".into(),
        payload,
    }
}

impl Workflow for Collatz {
    async fn initial_specs(&self, start: &StartInfo) -> Result<Vec<WorkSpec>, WorkError> {
        // On resume the checkpoint already holds the queue.
        Ok(if start.resumed {
            vec![]
        } else {
            vec![number(1)]
        })
    }

    async fn run(&self, spec: WorkSpec, ctx: RunContext) -> Result<Vec<WorkSpec>, WorkError> {
        let n = spec.payload["n"]
            .as_u64()
            .ok_or_else(|| WorkError::msg("payload.n missing"))?;
        ctx.phase("thinking", None);
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_millis(20)) => {}
            _ = ctx.cancel.cancelled() => return Err(WorkError::Interrupted),
        }
        // Predecessors of n: 2n, and (n-1)/3 when that is an odd integer greater than 1.
        let mut next = vec![2 * n];
        if n > 4 && (n - 1) % 3 == 0 && ((n - 1) / 3) % 2 == 1 {
            next.push((n - 1) / 3);
        }
        println!("{} -> {next:?}", spec.id);
        // Returned children enter the queue (the default `on_outcome` enqueues them).
        Ok(next
            .into_iter()
            .filter(|&m| m <= self.max)
            .map(number)
            .collect())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let workdir = args.next().unwrap_or_else(|| "collatz-run".into());
    let max = args.next().map(|s| s.parse()).transpose()?.unwrap_or(200);
    let mut config = EngineConfig::new(&workdir);
    config.max_concurrency = 4;
    let report = AsyncWorkEngine::open(config, Collatz { max })?
        .run()
        .await?;
    println!(
        "{:?}: {} specs completed",
        report.status, report.counts.completed
    );
    Ok(())
}
