//! The built-in search planner: determinism for a seed and history, no repeated parameter sets
//! (also with 4 slots and pending experiments), unordered and ordered choices, domains, never
//! stopping while untried points remain, and the shape of its proposals.

use std::collections::HashSet;
use std::path::Path;

use autoresearch_adapters::config::{Config, canonical_params_key};
use autoresearch_adapters::planner::search::SearchPlanner;
use autoresearch_adapters::planner::{Plan, PlanRequest, Proposal, Trial, TrialState};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

fn config(space: Value, baseline: Value, direction: &str, patience: u32) -> Config {
    let text = json!({
        "objective": { "metric": "score", "direction": direction, "min_improvement": 0 },
        "job": { "command": "true" },
        "search_space": space,
        "baseline": baseline,
        "limits": { "patience": patience, "max_experiments": 1000 },
    });
    Config::from_json_str(&text.to_string(), Path::new("config.json")).unwrap()
}

/// A tuning-like space: log int, linear int, unordered strings, ordered numbers, log float.
fn mixed_config() -> Config {
    config(
        json!({
            "batch": { "min": 1, "max": 4096, "scale": "log", "type": "int" },
            "layers": { "min": 1, "max": 8, "type": "int" },
            "algo": ["gemm", "winograd", "direct", "fft"],
            "width": [32, 64, 128, 256],
            "lr": { "min": 0.00001, "max": 1, "scale": "log" },
            "frac": { "min": 0, "max": 1 },
        }),
        json!({ "batch": 32, "layers": 2, "algo": "gemm", "width": 64, "lr": 0.01, "frac": 0.5 }),
        "minimize",
        1000,
    )
}

/// Smooth, minimum 1 at batch 145, layers 5, fft, width 128, lr 1e-3, frac 0.6.
fn mixed_score(p: &Map<String, Value>) -> f64 {
    let f = |k: &str| p[k].as_f64().unwrap();
    let algo = match p["algo"].as_str().unwrap() {
        "fft" => 1.0,
        "gemm" => 1.5,
        "winograd" => 1.3,
        _ => 1.8,
    };
    algo * (1.0
        + 0.05 * (f("batch") / 145.0).log2().powi(2)
        + 0.02 * (f("layers") - 5.0).powi(2)
        + 0.1 * (f("width") / 128.0).log2().powi(2)
        + 0.05 * (f("lr").log10() + 3.0).powi(2)
        + (f("frac") - 0.6).powi(2))
}

fn params(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

fn trial(id: &str, p: Map<String, Value>, primary: Option<f64>, state: TrialState) -> Trial {
    Trial {
        node_id: id.to_string(),
        params: p,
        primary,
        state,
        spread: None,
    }
}

fn request<'a>(
    config: &'a Config,
    history: &'a [Trial],
    max_proposals: usize,
    seed: u64,
) -> PlanRequest<'a> {
    PlanRequest {
        config,
        history,
        from: history
            .last()
            .map_or("001_baseline", |t| t.node_id.as_str()),
        plateau: 0,
        max_proposals,
        seed,
    }
}

fn launched(plan: Plan) -> Vec<Proposal> {
    match plan {
        Plan::Launch(p) => p,
        Plan::Stop(reason) => panic!("unexpected stop: {reason}"),
    }
}

fn key(c: &Config, p: &Map<String, Value>) -> String {
    canonical_params_key(&c.complete_params(p))
}

/// The planning-round model with `slots` slots and jobs that all take the same time (they
/// finish together): at most one round at a time, each round sees every node (pending ones
/// included) and is asked for exactly as many proposals as there are free slots. It must answer
/// that many, fewer only when nothing untried is left (and then the next round stops). Returns
/// the history (in start order) and the stop reason, if the planner stopped.
fn simulate(
    c: &Config,
    slots: usize,
    seed: u64,
    budget: usize,
    f: impl Fn(&Map<String, Value>) -> f64,
) -> (Vec<Trial>, Option<String>) {
    let baseline = c.complete_params(&Map::new());
    let mut history = vec![trial("001_baseline", baseline, None, TrialState::Pending)];
    let mut exhausted = false;
    loop {
        // Every running job finishes at once.
        for t in history
            .iter_mut()
            .filter(|t| t.state == TrialState::Pending)
        {
            t.primary = Some(f(&t.params));
            t.state = TrialState::Completed;
        }
        if history.len() >= budget {
            return (history, None);
        }
        let ask = slots.min(budget - history.len());
        match SearchPlanner.plan(&request(c, &history, ask, seed)) {
            Plan::Stop(reason) => return (history, Some(reason)),
            Plan::Launch(props) => {
                assert!(!exhausted, "proposed more after answering fewer than asked");
                assert!(
                    !props.is_empty() && props.len() <= ask,
                    "asked for {ask} proposals"
                );
                exhausted = props.len() < ask;
                for p in props {
                    let id = format!("{:03}_{}", history.len() + 1, p.name);
                    history.push(trial(&id, p.params, None, TrialState::Pending));
                }
            }
        }
    }
}

fn assert_no_repeats(c: &Config, history: &[Trial]) {
    let mut keys = HashSet::new();
    for t in history {
        assert!(
            keys.insert(key(c, &t.params)),
            "parameter set repeated: {} {:?}",
            t.node_id,
            t.params
        );
    }
}

/// A history of `n` completed experiments from a simulated single-slot run.
fn completed_history(c: &Config, n: usize, seed: u64) -> Vec<Trial> {
    simulate(c, 1, seed, n, mixed_score).0
}

#[test]
fn starts_with_a_space_filling_design_around_the_baseline() {
    let c = mixed_config();
    let base = c.complete_params(&Map::new());
    let history = [trial(
        "001_baseline",
        base.clone(),
        Some(3.0),
        TrialState::Completed,
    )];
    let props = launched(SearchPlanner.plan(&request(&c, &history, 3, 0)));
    assert_eq!(props.len(), 3);
    for p in &props {
        assert!(
            p.hypothesis.starts_with("space-filling start"),
            "{}",
            p.hypothesis
        );
        assert!(
            p.hypothesis.contains("from 001_baseline: "),
            "{}",
            p.hypothesis
        );
        assert_eq!(p.parent.as_deref(), Some("001_baseline"));
        assert_eq!(p.priority, None);
        assert_eq!(p.changes, None);
        assert_ne!(key(&c, &p.params), key(&c, &base));
        assert!(!p.name.is_empty() && p.name.len() < 120, "{}", p.name);
    }
}

#[test]
fn model_steps_say_why_they_were_chosen() {
    let c = mixed_config();
    let mut history = completed_history(&c, 12, 0);
    history.push(trial(
        "013_pending",
        params(json!({ "batch": 128, "layers": 5, "algo": "fft", "width": 128, "lr": 0.001, "frac": 0.5 })),
        None,
        TrialState::Pending,
    ));
    let props = launched(SearchPlanner.plan(&request(&c, &history, 2, 0)));
    assert_eq!(props.len(), 2);
    let ids: HashSet<&str> = history.iter().map(|t| t.node_id.as_str()).collect();
    for p in &props {
        assert!(
            p.hypothesis
                .starts_with("model step: a Gaussian process fitted to 12 results"),
            "{}",
            p.hypothesis
        );
        assert!(
            p.hypothesis.contains("counting 1 pending experiments"),
            "{}",
            p.hypothesis
        );
        assert!(
            p.hypothesis.contains("chance to beat the best so far ("),
            "{}",
            p.hypothesis
        );
        // The parent is the nearest completed experiment; the text lists the changes from it.
        let parent = p.parent.as_deref().unwrap();
        assert!(ids.contains(parent) && parent != "013_pending");
        assert!(
            p.hypothesis.contains(&format!("from {parent}: ")),
            "{}",
            p.hypothesis
        );
    }
}

#[test]
fn same_history_same_proposals() {
    let c = mixed_config();
    let mut history = completed_history(&c, 10, 3);
    history[4].state = TrialState::Failed;
    history[4].primary = None;
    history[9].state = TrialState::Pending;
    history[9].primary = None;
    for max in [1, 4] {
        let a = SearchPlanner.plan(&request(&c, &history, max, 7));
        // A resumed run rebuilds the history from files: an equal copy gives the same answer.
        let copy: Vec<Trial> = history.to_vec();
        let b = SearchPlanner.plan(&request(&c, &copy, max, 7));
        assert_eq!(a, b, "max_proposals {max}");
    }
    // A batch is chosen one point at a time: asking for fewer gives a prefix.
    let one = launched(SearchPlanner.plan(&request(&c, &history, 1, 7)));
    let four = launched(SearchPlanner.plan(&request(&c, &history, 4, 7)));
    assert_eq!(one[0], four[0]);
    // Another seed, another answer.
    let other = launched(SearchPlanner.plan(&request(&c, &history, 4, 8)));
    assert_ne!(four, other);
}

#[test]
fn different_seeds_give_different_start_designs() {
    let c = mixed_config();
    let history = [trial(
        "001_baseline",
        c.complete_params(&Map::new()),
        None,
        TrialState::Pending,
    )];
    let designs: Vec<Vec<String>> = (0..5)
        .map(|seed| {
            launched(SearchPlanner.plan(&request(&c, &history, 3, seed)))
                .iter()
                .map(|p| key(&c, &p.params))
                .collect()
        })
        .collect();
    for i in 0..designs.len() {
        for j in 0..i {
            assert_ne!(designs[i], designs[j], "seeds {i} and {j}");
        }
    }
    // The design depends on the seed only: the same seed gives it again.
    let again: Vec<String> = launched(SearchPlanner.plan(&request(&c, &history, 3, 2)))
        .iter()
        .map(|p| key(&c, &p.params))
        .collect();
    assert_eq!(again, designs[2]);
}

#[test]
fn four_slots_finishing_together_never_repeat_and_spread_out() {
    let c = mixed_config();
    for seed in 0..2 {
        let (history, stop) = simulate(&c, 4, seed, 32, mixed_score);
        assert_eq!(stop, None, "seed {seed}");
        assert_eq!(history.len(), 32);
        assert_no_repeats(&c, &history);
        let best = history
            .iter()
            .map(|t| t.primary.unwrap())
            .fold(f64::INFINITY, f64::min);
        assert!(best < 1.25, "seed {seed}: best {best} after 32 experiments");
    }
    // Four proposals in one round with four experiments pending go to four different places.
    let mut history = completed_history(&c, 12, 1);
    for t in history.iter_mut().rev().take(4) {
        t.state = TrialState::Pending;
        t.primary = None;
    }
    let props = launched(SearchPlanner.plan(&request(&c, &history, 4, 1)));
    let keys: HashSet<String> = props.iter().map(|p| key(&c, &p.params)).collect();
    assert_eq!(keys.len(), 4);
    let tried: HashSet<String> = history.iter().map(|t| key(&c, &t.params)).collect();
    assert!(keys.is_disjoint(&tried));
}

#[test]
fn tries_every_point_of_a_finite_space_before_stopping() {
    // 4 × 3 × 2 = 24 points; patience too large to matter.
    let c = config(
        json!({ "x": { "min": 0, "max": 3, "type": "int" }, "mode": ["a", "b", "c"], "w": [1, 2] }),
        json!({ "x": 0, "mode": "a", "w": 1 }),
        "maximize",
        1000,
    );
    let f = |p: &Map<String, Value>| {
        p["x"].as_f64().unwrap()
            + p["w"].as_f64().unwrap() * if p["mode"] == "b" { 2.0 } else { 1.0 }
    };
    for slots in [1, 4] {
        let (history, stop) = simulate(&c, slots, 0, 1000, f);
        assert_eq!(history.len(), 24, "slots {slots}");
        assert_no_repeats(&c, &history);
        let stop = stop.expect("stops once everything is tried");
        assert!(
            stop.contains("every point of the search space has been tried (24 points)"),
            "{stop}"
        );
    }
}

#[test]
fn stops_when_patience_is_spent() {
    let c = config(
        json!({ "x": { "min": 0, "max": 1 } }),
        json!({ "x": 0.5 }),
        "maximize",
        4,
    );
    let history = [trial(
        "001_baseline",
        params(json!({ "x": 0.5 })),
        Some(1.0),
        TrialState::Completed,
    )];
    let mut req = request(&c, &history, 2, 0);
    req.plateau = 3;
    assert!(matches!(SearchPlanner.plan(&req), Plan::Launch(_)));
    req.plateau = 4;
    match SearchPlanner.plan(&req) {
        Plan::Stop(reason) => assert!(reason.contains("patience"), "{reason}"),
        other => panic!("expected a stop, got {other:?}"),
    }
}

#[test]
fn failed_and_pending_sets_are_not_repeated() {
    // 3 × 2 = 6 points, 5 in the history (one written with a float): one is left.
    let c = config(
        json!({ "x": [1, 2, 3], "m": ["a", "b"] }),
        json!({ "x": 1, "m": "a" }),
        "maximize",
        100,
    );
    let history = [
        trial(
            "001",
            params(json!({ "x": 1, "m": "a" })),
            Some(1.0),
            TrialState::Completed,
        ),
        trial(
            "002",
            params(json!({ "x": 2.0, "m": "a" })),
            None,
            TrialState::Failed,
        ),
        trial(
            "003",
            params(json!({ "x": 3, "m": "a" })),
            None,
            TrialState::Pending,
        ),
        trial(
            "004",
            params(json!({ "x": 1, "m": "b" })),
            Some(0.5),
            TrialState::Completed,
        ),
        trial(
            "005",
            params(json!({ "x": 3, "m": "b" })),
            None,
            TrialState::Pending,
        ),
    ];
    let props = launched(SearchPlanner.plan(&request(&c, &history, 3, 0)));
    assert_eq!(props.len(), 1, "{props:#?}");
    assert_eq!(
        Value::Object(props[0].params.clone()),
        json!({ "x": 2, "m": "b" })
    );
}

#[test]
fn unordered_choices_are_all_neighbours() {
    // Only the last listed choice is good, and the listed order suggests nothing: stepping
    // through adjacent choices from "c0" would need 7 steps through worse ones. The search
    // treats every other choice as a neighbour, so it gets there well within the budget and
    // then tunes the float next to it. Strings default to unordered.
    let choices: Vec<String> = (0..8).map(|i| format!("c{i}")).collect();
    let c = config(
        json!({ "kind": choices, "x": { "min": 0, "max": 1 } }),
        json!({ "kind": "c0", "x": 0.5 }),
        "maximize",
        1000,
    );
    let f = |p: &Map<String, Value>| {
        let x = p["x"].as_f64().unwrap();
        let bonus = match p["kind"].as_str().unwrap() {
            "c7" => 3.0,
            "c0" => 1.0,
            _ => 0.0,
        };
        bonus - (x - 0.3).powi(2)
    };
    for seed in 0..3 {
        let (history, _) = simulate(&c, 1, seed, 24, f);
        assert_no_repeats(&c, &history);
        let best = history
            .iter()
            .max_by(|a, b| a.primary.unwrap().total_cmp(&b.primary.unwrap()))
            .unwrap();
        assert_eq!(best.params["kind"], "c7", "seed {seed}");
        assert!(
            best.primary.unwrap() > 2.99,
            "seed {seed}: {:?}",
            best.params
        );
    }
}

#[test]
fn converges_on_a_smooth_function_of_two_floats() {
    let c = config(
        json!({ "a": { "min": 0, "max": 1 }, "b": { "min": -5, "max": 5 } }),
        json!({ "a": 0.0, "b": 5.0 }),
        "maximize",
        1000,
    );
    let f = |p: &Map<String, Value>| {
        let (a, b) = (p["a"].as_f64().unwrap(), p["b"].as_f64().unwrap());
        10.0 - (a - 0.37).powi(2) * 10.0 - (b - 1.3).powi(2)
    };
    for seed in 0..2 {
        let (history, _) = simulate(&c, 1, seed, 25, f);
        assert_no_repeats(&c, &history);
        let best = history
            .iter()
            .map(|t| t.primary.unwrap())
            .fold(f64::NEG_INFINITY, f64::max);
        assert!(best > 9.99, "seed {seed}: best {best} after 25 experiments");
    }
}

fn domain_config() -> Config {
    config(
        json!({
            "n": { "min": 0, "max": 12, "type": "int" },
            "chunk": { "min": 16, "max": 4096, "scale": "log", "type": "int" },
            "lr": { "min": 0.0001, "max": 1, "scale": "log" },
            "frac": { "min": -1, "max": 1 },
            "width": [32, 64, 128],
            "algo": ["a", "b", "c"],
        }),
        json!({ "n": 0, "chunk": 64, "lr": 0.01, "frac": 0, "width": 32, "algo": "a" }),
        "maximize",
        8,
    )
}

/// Significant decimal digits of a float as written.
fn significant_digits(x: f64) -> usize {
    let s = format!("{:e}", x.abs());
    let mantissa = s.split('e').next().unwrap();
    mantissa.chars().filter(char::is_ascii_digit).count()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

    #[test]
    fn proposals_are_deterministic_new_and_inside_their_domains(
        raw in prop::collection::vec((0i64..=12, 0u32..9, 0u8..3, -100.0f64..100.0, any::<bool>()), 0..16),
        seed in any::<u64>(),
        plateau in 0u32..10,
        max_proposals in 0usize..6,
    ) {
        let c = domain_config();
        let history: Vec<Trial> = raw
            .iter()
            .enumerate()
            .map(|(i, &(n, e, state, primary, as_float))| {
                let n = if as_float { json!(n as f64) } else { json!(n) };
                let state = [TrialState::Completed, TrialState::Failed, TrialState::Pending][state as usize];
                let width = [32, 64, 128][(e % 3) as usize];
                let algo = ["a", "b", "c"][i % 3];
                let p = params(json!({
                    "n": n, "chunk": 16 << (e % 9), "lr": 0.0001 * 3f64.powi(e as i32),
                    "frac": (primary / 100.0), "width": width,
                    "algo": algo,
                }));
                trial(&format!("{:03}_t", i + 1), p, (state == TrialState::Completed).then_some(primary), state)
            })
            .collect();
        let mut req = request(&c, &history, max_proposals, seed);
        req.plateau = plateau;
        let plan = SearchPlanner.plan(&req);
        prop_assert_eq!(&plan, &SearchPlanner.plan(&req));
        let tried: HashSet<String> = history.iter().map(|t| key(&c, &t.params)).collect();
        let ids: HashSet<&str> = history.iter().map(|t| t.node_id.as_str()).chain([req.from]).collect();
        match plan {
            Plan::Stop(reason) => prop_assert!(plateau >= 8, "stopped with untried points: {}", reason),
            Plan::Launch(props) => {
                prop_assert!(plateau < 8);
                prop_assert_eq!(props.len(), max_proposals);
                let mut keys = HashSet::new();
                for p in &props {
                    let k = key(&c, &p.params);
                    prop_assert!(!tried.contains(&k), "repeats history: {:?}", p.params);
                    prop_assert!(keys.insert(k), "proposed twice: {:?}", p.params);
                    prop_assert_eq!(p.params.len(), 6);
                    for (name, param) in c.search_space.iter() {
                        prop_assert!(param.contains(&p.params[name]), "{} = {} outside its domain", name, p.params[name]);
                    }
                    // Ints are written as ints, floats keep at most 6 significant digits.
                    prop_assert!(p.params["n"].is_i64() && p.params["chunk"].is_i64());
                    for name in ["lr", "frac"] {
                        let x = p.params[name].as_f64().unwrap();
                        prop_assert!(significant_digits(x) <= 6, "{} = {}", name, x);
                    }
                    prop_assert!(ids.contains(p.parent.as_deref().unwrap_or("")));
                    prop_assert!(!p.name.is_empty() && !p.hypothesis.is_empty());
                }
            }
        }
    }
}
