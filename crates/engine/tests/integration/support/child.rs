//! `engine-test-child WORKDIR`: an engine in its own process for the integration tests
//! (signals, locks, SIGKILL). Runs the test workflow on `ENGINE_CHILD_SPECS` specs of
//! `ENGINE_CHILD_MS` ms each (optionally `ENGINE_CHILD_STUBBORN`; with `ENGINE_CHILD_GATE` each
//! waits first for the file `open` in the workdir; with `ENGINE_CHILD_CHILDREN`
//! children per level for 2 levels), at concurrency `ENGINE_CHILD_CONC`, with a grace period of
//! `ENGINE_CHILD_GRACE_MS`. Exit status: 0 stopped, 130 interrupted, 3 locked, 2 refused, 1 failed.

#[path = "flow.rs"]
mod flow;

use std::time::Duration;

use autoresearch_engine::{AsyncWorkEngine, EngineConfig, EngineError, EngineStatus};
use serde_json::json;

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let Some(dir) = std::env::args_os().nth(1) else {
        eprintln!("usage: engine-test-child WORKDIR");
        std::process::exit(2);
    };
    let dir = std::path::Path::new(&dir);
    let n = env_num("ENGINE_CHILD_SPECS", 6);
    let ms = env_num("ENGINE_CHILD_MS", 300);
    let children = env_num("ENGINE_CHILD_CHILDREN", 0);
    let stubborn = std::env::var_os("ENGINE_CHILD_STUBBORN").is_some();
    let gate_file = std::env::var_os("ENGINE_CHILD_GATE").is_some();
    let initial = (0..n)
        .map(|i| {
            flow::spec(
                &format!("s{i:03}"),
                i as f64,
                json!({
                    "ms": ms,
                    "stubborn": stubborn,
                    "gate_file": gate_file,
                    "children": children,
                    "depth": 2
                }),
            )
        })
        .collect();
    let mut config = EngineConfig::new(dir);
    config.max_concurrency = env_num("ENGINE_CHILD_CONC", 2) as usize;
    config.grace_period = Duration::from_millis(env_num("ENGINE_CHILD_GRACE_MS", 5000));
    config.short_grace_period = Duration::from_millis(300);
    let code = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt.block_on(async {
            match AsyncWorkEngine::open(config, flow::TestFlow::new(dir, initial)) {
                Ok(engine) => match engine.run().await {
                    Ok(r) if r.status == EngineStatus::Interrupted => 130,
                    Ok(_) => 0,
                    Err(e) => {
                        eprintln!("{e}");
                        1
                    }
                },
                Err(EngineError::Locked { .. }) => 3,
                Err(e) => {
                    eprintln!("{e}");
                    2
                }
            }
        }),
        Err(e) => {
            eprintln!("{e}");
            1
        }
    };
    std::process::exit(code);
}
