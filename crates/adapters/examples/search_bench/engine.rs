//! The engine mode: each search runs through the real `ExperimentWorkflow` with the local
//! executor; every experiment is a real process (this benchmark's own binary, `eval`
//! subcommand) printing `METRIC value=<f>`.

use std::path::Path;
use std::time::Duration;

use autoresearch_adapters::config::canonical_params_key;
use autoresearch_adapters::session::{Session, SessionOptions, resolve_config};
use autoresearch_adapters::workdir::Workdir;
use autoresearch_adapters::workflow::Notice;
use autoresearch_adapters::workflow::nodes::NodeStore;

use crate::functions::Function;
use crate::inprocess::{Run, config};

/// Runs one search through the engine in a fresh workdir under `dir` (named after the
/// function, the baseline `n`, the seed and the slots; a workdir left by an earlier benchmark
/// run is removed first, or the engine would resume it and report its old results).
pub(crate) fn run(
    f: &Function,
    n: u64,
    seed: u64,
    slots: usize,
    budget: usize,
    exe: &Path,
    dir: &Path,
) -> Result<Run, String> {
    let root = dir.join(format!("{}-b{n}-seed{seed}-slots{slots}", f.name));
    if root.exists() {
        std::fs::remove_dir_all(&root)
            .map_err(|e| format!("removing the old workdir {}: {e}", root.display()))?;
    }
    let args: Vec<String> = f.names().iter().map(|n| format!("{n}={{{n}}}")).collect();
    let exe = exe.to_string_lossy();
    let exe = autoresearch_adapters::config::shell_quote(&exe)
        .map_err(|e| format!("benchmark path {exe}: {e}"))?;
    let command = format!("{exe} eval {} {seed} {}", f.name, args.join(" "));
    let config = config(f, seed, budget, slots, &command);
    let config = resolve_config(&root, Some(config)).map_err(|e| e.to_string())?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let started: Vec<String> = rt.block_on(async {
        let options = SessionOptions {
            grace_period: Duration::from_secs(5),
            handle_signals: false,
        };
        let session = Session::open(&root, config.clone(), &options).map_err(|e| e.to_string())?;
        let mut notices = session.workflow().subscribe();
        session.run().await.map_err(|e| e.to_string())?;
        let mut started = Vec::new();
        while let Ok(n) = notices.try_recv() {
            if let Notice::Started { id } = n {
                started.push(id);
            }
        }
        Ok::<_, String>(started)
    })?;
    let store = NodeStore::load(&Workdir::new(&root)).map_err(|e| e.to_string())?;
    let mut nodes = store.all();
    // Start order (node creation order for any start the notices missed).
    let position = |id: &str| started.iter().position(|s| s == id).unwrap_or(usize::MAX);
    nodes.sort_by_key(|n| (position(&n.spec.node_id), n.spec.node_id.clone()));
    let trials = nodes
        .iter()
        .filter(|n| n.primary.is_some() || position(&n.spec.node_id) != usize::MAX)
        .map(|n| {
            let params = config.complete_params(&n.spec.params);
            (
                f.value(&params),
                n.primary.unwrap_or(f64::NAN),
                canonical_params_key(&params),
            )
        })
        .collect();
    let state = std::fs::read_to_string(root.join("state.json")).unwrap_or_default();
    let stop = serde_json::from_str::<serde_json::Value>(&state)
        .ok()
        .and_then(|v| v["stop_reason"].as_str().map(str::to_string));
    Ok(Run { trials, stop })
}
