//! A custom workflow in a few lines: explore the Collatz tree backwards from 1, as a tree of
//! specs, with at most 4 running at once and a durable, resumable checkpoint in `./collatz-run`.
//! Interrupt it with Ctrl+C and run it again: it resumes where it stopped.
//!
//! `cargo run -p autoresearch-engine --example custom_workflow -- [workdir] [max_value]`

use autoresearch_engine::{
    AsyncWorkEngine, Decision, EngineConfig, Outcome, RunContext, StartInfo, WorkError, WorkSpec,
    Workflow,
};
use serde_json::{Map, json};

struct Collatz {
    max: u64,
}

fn number(n: u64) -> WorkSpec {
    let mut payload = Map::new();
    payload.insert("n".into(), json!(n));
    // Smaller numbers first: priority is the value itself.
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
        // Predecessors of n in the Collatz graph: 2n, and (n-1)/3 when that is an odd integer > 1.
        let mut next = vec![2 * n];
        if n > 4 && (n - 1) % 3 == 0 && ((n - 1) / 3) % 2 == 1 {
            next.push((n - 1) / 3);
        }
        Ok(next
            .into_iter()
            .filter(|&m| m <= self.max)
            .map(number)
            .collect())
    }

    async fn on_outcome(&self, spec: &WorkSpec, outcome: &Outcome) -> Decision {
        if let Outcome::Completed { children } = outcome {
            println!(
                "{} -> {:?}",
                spec.id,
                children.iter().map(|c| &c.id).collect::<Vec<_>>()
            );
            return Decision {
                enqueue: children.clone(),
                stop: None,
            };
        }
        Decision::default()
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
        "{:?}: {} specs completed ({workdir}/engine/)",
        report.status, report.counts.completed
    );
    Ok(())
}
