//! The in-process mode: the planner called directly, jobs simulated, under the planning-round
//! model (at most one round in flight; each round sees every node, pending ones included, and
//! is asked for exactly as many proposals as there are free slots).

use std::path::Path;

use autoresearch_adapters::config::{Config, canonical_params_key};
use autoresearch_adapters::planner::search::{SearchPlanner, Tuning};
use autoresearch_adapters::planner::{Plan, PlanRequest, Trial, TrialState};
use serde_json::{Map, Value, json};

use crate::functions::Function;

/// One experiment of a run, in start order.
#[derive(Debug, Clone)]
pub(crate) struct Run {
    /// (true value, observed value, parameter key) per started experiment.
    pub trials: Vec<(f64, f64, String)>,
    /// Why the planner stopped, if it did.
    pub stop: Option<String>,
}

/// Job durations in the simulation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Durations {
    /// Every job takes the same time (they finish together).
    Equal,
    /// Seeded uniform durations in [1, 2).
    Random,
}

/// The benchmark configuration of a function (minimise `value`).
pub(crate) fn config(
    f: &Function,
    seed: u64,
    budget: usize,
    slots: usize,
    command: &str,
) -> Config {
    let text = json!({
        "objective": { "metric": "value", "direction": "minimize", "min_improvement": 0 },
        "job": { "command": command, "timeout_s": 60 },
        "search_space": f.space,
        "baseline": f.baseline,
        "planner": { "kind": "search", "seed": seed },
        "limits": { "max_experiments": budget, "patience": budget + 1, "max_concurrency": slots },
    });
    Config::from_json_str(&text.to_string(), Path::new("search_bench")).expect("bench config")
}

/// Runs one simulated search.
pub(crate) fn simulate(
    f: &Function,
    config: &Config,
    seed: u64,
    slots: usize,
    budget: usize,
    durations: Durations,
    tuning: &Tuning,
) -> Run {
    let mut rng = fastrand::Rng::with_seed(seed ^ 0xD0D0);
    let mut duration = || match durations {
        Durations::Equal => 1.0,
        Durations::Random => 1.0 + rng.f64(),
    };
    let mut history: Vec<Trial> = Vec::new();
    let mut truth: Vec<f64> = Vec::new();
    let mut running: Vec<(f64, usize)> = Vec::new();
    let mut now = 0.0;
    let mut stop = None;
    let baseline = config.complete_params(&Map::new());
    history.push(trial("001_baseline", baseline));
    truth.push(f64::NAN);
    running.push((duration(), 0));
    let (mut best, mut plateau) = (None::<f64>, 0u32);
    loop {
        // Finish every job due now (jobs finishing together are seen together).
        if !running.is_empty() {
            running.sort_by(|a, b| a.0.total_cmp(&b.0));
            now = running[0].0;
            while running.first().is_some_and(|r| r.0 <= now) {
                let (_, i) = running.remove(0);
                let t = &mut history[i];
                let v = f.value(&t.params);
                let obs = f.observed(&t.params, seed);
                truth[i] = v;
                t.primary = Some(obs);
                t.state = TrialState::Completed;
                if config.objective.is_improvement(obs, best) {
                    best = Some(obs);
                    plateau = 0;
                } else {
                    plateau += 1;
                }
            }
        }
        let free = slots - running.len();
        if free > 0 && history.len() < budget && stop.is_none() {
            let ask = free.min(budget - history.len());
            let from = history
                .last()
                .map(|t| t.node_id.clone())
                .unwrap_or_default();
            let req = PlanRequest {
                config,
                history: &history,
                from: &from,
                plateau,
                max_proposals: ask,
                seed,
            };
            match SearchPlanner.plan_tuned(&req, tuning) {
                Plan::Stop(reason) => stop = Some(reason),
                Plan::Launch(props) => {
                    assert!(props.len() <= ask, "asked for {ask}, got {}", props.len());
                    if props.is_empty() {
                        stop = Some("empty launch".into());
                    }
                    for p in props {
                        let id = format!("{:03}_{}", history.len() + 1, p.name);
                        history.push(trial(&id, p.params));
                        truth.push(f64::NAN);
                        running.push((now + duration(), history.len() - 1));
                    }
                }
            }
        }
        if running.is_empty() {
            break;
        }
    }
    let trials = history
        .iter()
        .zip(truth)
        .map(|(t, v)| {
            (
                v,
                t.primary.unwrap_or(f64::NAN),
                canonical_params_key(&config.complete_params(&t.params)),
            )
        })
        .collect();
    Run { trials, stop }
}

fn trial(id: &str, params: Map<String, Value>) -> Trial {
    Trial {
        node_id: id.to_string(),
        params,
        primary: None,
        state: TrialState::Pending,
        spread: None,
    }
}
