//! Prints the size of the plan prompt for synthetic runs of up to 1,000 finished experiments
//! (long hypotheses, code changes, failures, findings), rendered under the default limit of
//! `planner.agent.max_prompt_bytes`, and how long rendering took.
//!
//!     cargo run --release -p autoresearch-adapters --example prompt_bench

use std::time::Instant;

use autoresearch_adapters::agent::plan_prompt::render_plan_prompt;
use autoresearch_adapters::agent::synthetic::synthetic_context;
use autoresearch_adapters::agent::template::Templates;
use autoresearch_adapters::config::agent::AgentConfig;

fn main() {
    let limit = AgentConfig::default().max_prompt_bytes;
    let templates = Templates::builtin();
    println!("limit (planner.agent.max_prompt_bytes default): {limit} bytes");
    for n in [10usize, 100, 1000, 5000] {
        let ctx = synthetic_context(n);
        let started = Instant::now();
        match render_plan_prompt(&ctx, &templates.plan, limit) {
            Ok(prompt) => {
                let rows = prompt
                    .lines()
                    .filter(|l| l.starts_with("| ") && !l.starts_with("| id "))
                    .count();
                println!(
                    "{n:>5} nodes: prompt {:>6} bytes ({:>3}% of the limit), {rows:>3} history rows shown, rendered in {:.2} ms",
                    prompt.len(),
                    prompt.len() * 100 / limit,
                    started.elapsed().as_secs_f64() * 1e3
                );
            }
            Err(e) => println!("{n:>5} nodes: {e}"),
        }
    }
}
