//! The built-in search planner: determinism, no repeated parameter sets, convergence on simple
//! functions, stopping rules, and the shape of its proposals.

use std::collections::HashSet;
use std::path::Path;

use autoresearch_adapters::config::{Config, canonical_params_key};
use autoresearch_adapters::planner::search::SearchPlanner;
use autoresearch_adapters::planner::{Plan, PlanRequest, Proposal, Trial, TrialState};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

fn config(space: Value, baseline: Value, direction: &str, patience: u32) -> Config {
    let text = json!({
        "objective": { "metric": "score", "direction": direction },
        "job": { "command": "true" },
        "search_space": space,
        "baseline": baseline,
        "limits": { "patience": patience, "max_experiments": 1000 },
    });
    Config::from_json_str(&text.to_string(), Path::new("config.json")).unwrap()
}

/// x: int 0..=20 (linear), y: [1, 2, 4, 8, 16, 32], mode: ["a", "b", "c"].
fn small_config(patience: u32) -> Config {
    config(
        json!({
            "x": { "min": 0, "max": 20, "type": "int" },
            "y": [1, 2, 4, 8, 16, 32],
            "mode": ["a", "b", "c"],
        }),
        json!({ "x": 0, "y": 1, "mode": "a" }),
        "maximize",
        patience,
    )
}

/// Unimodal and separable, maximum 5 at x = 13, y = 8, mode = "b".
fn score(p: &Map<String, Value>) -> f64 {
    let x = p["x"].as_f64().unwrap();
    let y = p["y"].as_f64().unwrap().log2();
    let mode = match p["mode"].as_str().unwrap() {
        "a" => 0.0,
        "b" => 5.0,
        _ => 2.0,
    };
    mode - (x - 13.0).powi(2) - 3.0 * (y - 3.0).powi(2)
}

fn params(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

fn trial(id: &str, p: Value, primary: Option<f64>, state: TrialState) -> Trial {
    Trial {
        node_id: id.to_string(),
        params: params(p),
        primary,
        state,
        spread: None,
    }
}

fn request<'a>(
    config: &'a Config,
    history: &'a [Trial],
    plateau: u32,
    max_proposals: usize,
    seed: u64,
) -> PlanRequest<'a> {
    PlanRequest {
        config,
        history,
        from: history.last().map_or("000_none", |t| t.node_id.as_str()),
        plateau,
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

/// Runs the planner in a loop, "running" every proposal at once with `f` and tracking the
/// plateau as the workflow does. Returns the history and the stop reason.
fn simulate(
    config: &Config,
    batch: usize,
    seed: u64,
    max_rounds: usize,
    f: impl Fn(&Map<String, Value>) -> f64,
) -> (Vec<Trial>, Option<String>) {
    let baseline = config.complete_params(&Map::new());
    let mut history = vec![Trial {
        node_id: "001_baseline".into(),
        primary: Some(f(&baseline)),
        params: baseline,
        state: TrialState::Completed,
        spread: None,
    }];
    let mut best = history[0].primary;
    let mut plateau = 0u32;
    for _ in 0..max_rounds {
        let plan = SearchPlanner.plan(&request(config, &history, plateau, batch, seed));
        let proposals = match plan {
            Plan::Stop(reason) => return (history, Some(reason)),
            Plan::Launch(p) => p,
        };
        assert!(!proposals.is_empty(), "Launch with no proposals");
        for p in proposals {
            let value = f(&p.params);
            if config.objective.is_improvement(value, best) {
                best = Some(value);
                plateau = 0;
            } else {
                plateau += 1;
            }
            let id = format!("{:03}_{}", history.len() + 1, p.name);
            history.push(Trial {
                node_id: id,
                params: p.params,
                primary: Some(value),
                state: TrialState::Completed,
                spread: None,
            });
        }
    }
    (history, None)
}

fn assert_no_repeats(history: &[Trial]) {
    let mut keys = HashSet::new();
    for t in history {
        assert!(
            keys.insert(canonical_params_key(&t.params)),
            "parameter set repeated: {} {:?}",
            t.node_id,
            t.params
        );
    }
}

fn best(history: &[Trial], maximize: bool) -> &Trial {
    history
        .iter()
        .max_by(|a, b| {
            let (a, b) = (a.primary.unwrap(), b.primary.unwrap());
            if maximize {
                a.total_cmp(&b)
            } else {
                b.total_cmp(&a)
            }
        })
        .unwrap()
}

#[test]
fn proposal_shape() {
    let c = small_config(8);
    let history = [trial(
        "001_baseline",
        json!({ "x": 4, "y": 2, "mode": "a" }),
        Some(1.0),
        TrialState::Completed,
    )];
    let props = launched(SearchPlanner.plan(&request(&c, &history, 0, 6, 0)));
    let names: Vec<&str> = props.iter().map(|p| p.name.as_str()).collect();
    // (20 - 0) / 8 = 2.5 rounds to 3 (x ± 3); choices move to the adjacent one.
    // One step of every coordinate first, then the larger steps (x + 5).
    assert_eq!(names, ["x_7", "x_1", "y_4", "y_1", "mode_b", "x_9"]);
    let first = &props[0];
    assert_eq!(first.hypothesis, "neighbour of 001_baseline: x 4 → 7");
    assert_eq!(first.parent.as_deref(), Some("001_baseline"));
    assert_eq!(first.priority, None);
    assert_eq!(first.changes, None);
    assert_eq!(
        Value::Object(first.params.clone()),
        json!({ "x": 7, "y": 2, "mode": "a" })
    );
    assert_eq!(props[2].hypothesis, "neighbour of 001_baseline: y 2 → 4");
    // The step at the upper edge of the choice list is not repeated.
    assert_eq!(props.iter().filter(|p| p.name == "mode_b").count(), 1);
}

#[test]
fn neighbours_of_the_best_first_then_next_best() {
    let c = small_config(8);
    let history = [
        trial(
            "001_a",
            json!({ "x": 4, "y": 2, "mode": "a" }),
            Some(1.0),
            TrialState::Completed,
        ),
        trial(
            "002_b",
            json!({ "x": 10, "y": 2, "mode": "a" }),
            Some(3.0),
            TrialState::Completed,
        ),
        trial(
            "003_c",
            json!({ "x": 16, "y": 2, "mode": "a" }),
            None,
            TrialState::Failed,
        ),
    ];
    let props = launched(SearchPlanner.plan(&request(&c, &history, 0, 20, 0)));
    assert_eq!(props.len(), 20);
    let parents: Vec<&str> = props.iter().map(|p| p.parent.as_deref().unwrap()).collect();
    // All 14 distinct coordinate moves of 002_b (steps ÷8 to ×8), then 001_a's.
    assert_eq!(&parents[..14], ["002_b"; 14]);
    assert_eq!(&parents[14..], ["001_a"; 6]);
    let names: Vec<&str> = props[..5].iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["x_13", "x_7", "y_4", "y_1", "mode_b"]);
}

#[test]
fn minimize_ranks_low_values_first() {
    let c = config(
        json!({ "x": { "min": 0, "max": 80, "type": "int" } }),
        json!({ "x": 40 }),
        "minimize",
        8,
    );
    let history = [
        trial(
            "001_base",
            json!({ "x": 40 }),
            Some(5.0),
            TrialState::Completed,
        ),
        trial(
            "002_low",
            json!({ "x": 20 }),
            Some(1.0),
            TrialState::Completed,
        ),
    ];
    let props = launched(SearchPlanner.plan(&request(&c, &history, 0, 2, 0)));
    assert!(props.iter().all(|p| p.parent.as_deref() == Some("002_low")));
    // x + 10 first would be natural, but 002_low's upward ×2 step (x = 40) is already tried,
    // so the unexplored direction goes first.
    let names: Vec<&str> = props.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["x_10", "x_30"]);
}

#[test]
fn starts_from_the_baseline_when_nothing_completed() {
    let c = small_config(8);
    let history = [trial(
        "001_baseline",
        json!({ "x": 0, "y": 1, "mode": "a" }),
        None,
        TrialState::Pending,
    )];
    let props = launched(SearchPlanner.plan(&request(&c, &history, 0, 3, 0)));
    assert_eq!(props.len(), 3);
    assert!(
        props
            .iter()
            .all(|p| p.parent.as_deref() == Some("001_baseline"))
    );
    assert_eq!(props[0].name, "x_3");
}

#[test]
fn larger_steps_after_plateau() {
    let c = small_config(8);
    let base = || {
        trial(
            "001_baseline",
            json!({ "x": 4, "y": 4, "mode": "a" }),
            Some(1.0),
            TrialState::Completed,
        )
    };
    let worse = |id: &str, x: i64| {
        trial(
            id,
            json!({ "x": x, "y": 4, "mode": "a" }),
            Some(0.5),
            TrialState::Completed,
        )
    };
    let find = |props: &[Proposal], prefix: &str| -> Proposal {
        props
            .iter()
            .find(|p| p.name.starts_with(prefix))
            .unwrap_or_else(|| panic!("no proposal {prefix}: {props:#?}"))
            .clone()
    };

    // After x + 3 failed, the next step up is ×2 at plateau 0, ×4 at plateau 4, ×8 at plateau
    // 6; the untried basic step down (x − 3) still comes first.
    let history = [base(), worse("002_x_7", 7)];
    for (plateau, expected, label) in [(0, "x_9", "×2"), (4, "x_14", "×4"), (6, "x_20", "×8")] {
        let props = launched(SearchPlanner.plan(&request(&c, &history, plateau, 20, 0)));
        assert_eq!(props[0].name, "x_1", "untried basic steps come first");
        let up: Vec<&Proposal> = props
            .iter()
            .filter(|p| p.params["x"].as_i64().unwrap() > 4)
            .collect();
        assert_eq!(up[0].name, expected, "plateau {plateau}");
        assert!(
            up[0].hypothesis.contains(&format!("(step {label})")),
            "{}",
            up[0].hypothesis
        );
    }

    // Basic step failed both ways: the finer step comes before the larger ones.
    let history = [base(), worse("002_x_7", 7), worse("003_x_1", 1)];
    let props = launched(SearchPlanner.plan(&request(&c, &history, 2, 20, 0)));
    let x: Vec<&str> = props
        .iter()
        .filter(|p| p.name.starts_with("x_"))
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(&x[..2], ["x_5", "x_3"], "{x:?}");
    assert!(find(&props, "x_5").hypothesis.contains("(step ÷2)"));
}

#[test]
fn log_ranges_step_by_factors() {
    let c = config(
        json!({
            "chunk": { "min": 16, "max": 4096, "scale": "log", "type": "int" },
            "lr": { "min": 0.0001, "max": 1, "scale": "log" },
        }),
        json!({ "chunk": 64, "lr": 0.01 }),
        "maximize",
        8,
    );
    let history = [trial(
        "001_baseline",
        json!({ "chunk": 64, "lr": 0.01 }),
        Some(1.0),
        TrialState::Completed,
    )];
    let props = launched(SearchPlanner.plan(&request(&c, &history, 0, 4, 0)));
    let names: Vec<&str> = props.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["chunk_128", "chunk_32", "lr_0.02", "lr_0.005"]);
}

#[test]
fn random_points_after_a_few_plateau_rounds() {
    let c = small_config(20);
    let history = [trial(
        "001_baseline",
        json!({ "x": 4, "y": 4, "mode": "a" }),
        Some(1.0),
        TrialState::Completed,
    )];
    let early = launched(SearchPlanner.plan(&request(&c, &history, 1, 8, 0)));
    assert!(early.iter().all(|p| !p.hypothesis.starts_with("random")));
    let late = launched(SearchPlanner.plan(&request(&c, &history, 5, 8, 0)));
    assert_eq!(late.len(), 8);
    let random = late
        .iter()
        .filter(|p| p.hypothesis.starts_with("random"))
        .count();
    assert_eq!(random, 2, "{late:#?}");
    assert!(
        late.iter()
            .all(|p| p.parent.as_deref() == Some("001_baseline"))
    );
}

#[test]
fn stops_when_plateau_reaches_patience() {
    let c = small_config(4);
    let history = [trial(
        "001_baseline",
        json!({ "x": 4, "y": 4, "mode": "a" }),
        Some(1.0),
        TrialState::Completed,
    )];
    assert!(matches!(
        SearchPlanner.plan(&request(&c, &history, 3, 2, 0)),
        Plan::Launch(_)
    ));
    for plateau in [4, 5, 100] {
        match SearchPlanner.plan(&request(&c, &history, plateau, 2, 0)) {
            Plan::Stop(reason) => assert!(reason.contains("patience"), "{reason}"),
            other => panic!("expected a stop at plateau {plateau}, got {other:?}"),
        }
    }
}

#[test]
fn stops_when_nothing_untried_is_near_the_best() {
    let c = config(json!({ "w": [1, 2] }), json!({ "w": 1 }), "maximize", 8);
    let history = [
        trial(
            "001_baseline",
            json!({ "w": 1 }),
            Some(1.0),
            TrialState::Completed,
        ),
        trial("002_w_2", json!({ "w": 2.0 }), None, TrialState::Pending),
    ];
    match SearchPlanner.plan(&request(&c, &history, 1, 2, 0)) {
        Plan::Stop(reason) => assert!(reason.contains("001_baseline"), "{reason}"),
        other => panic!("expected a stop, got {other:?}"),
    }
}

#[test]
fn failed_and_pending_sets_are_not_repeated() {
    let c = small_config(8);
    let history = [
        trial(
            "001_baseline",
            json!({ "x": 4, "y": 2, "mode": "a" }),
            Some(1.0),
            TrialState::Completed,
        ),
        // Written with floats: still the same sets as x = 7 and y = 4.
        trial(
            "002_x_7",
            json!({ "x": 7.0, "y": 2, "mode": "a" }),
            None,
            TrialState::Failed,
        ),
        trial(
            "003_y_4",
            json!({ "x": 4, "y": 4.0, "mode": "a" }),
            None,
            TrialState::Pending,
        ),
    ];
    let props = launched(SearchPlanner.plan(&request(&c, &history, 0, 3, 0)));
    let names: Vec<&str> = props.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["x_1", "y_1", "mode_b"]);
}

#[test]
fn same_request_same_plan() {
    let c = small_config(20);
    let history = [trial(
        "001_baseline",
        json!({ "x": 4, "y": 4, "mode": "a" }),
        Some(1.0),
        TrialState::Completed,
    )];
    for plateau in [0, 3, 7] {
        let a = SearchPlanner.plan(&request(&c, &history, plateau, 8, 42));
        let b = SearchPlanner.plan(&request(&c, &history, plateau, 8, 42));
        assert_eq!(a, b);
    }
    // The seed matters for the random part.
    let a = launched(SearchPlanner.plan(&request(&c, &history, 7, 8, 1)));
    let b = launched(SearchPlanner.plan(&request(&c, &history, 7, 8, 2)));
    assert_ne!(a, b);
}

#[test]
fn finds_the_optimum_of_a_unimodal_function_and_stops() {
    for (batch, seed) in (1usize..=4).flat_map(|b| (0u64..10).map(move |s| (b, s))) {
        // Patience counts experiments, so a larger batch spends it in fewer planning rounds:
        // give each batch size the same number of rounds (8 with one proposal per round,
        // at least 4 with more).
        let c = small_config(8 * batch.div_ceil(2) as u32);
        let (history, stop) = simulate(&c, batch, seed, 500, score);
        let stop = stop.expect("the planner never stopped");
        assert_no_repeats(&history);
        let top = best(&history, true);
        assert_eq!(
            Value::Object(top.params.clone()),
            json!({ "x": 13, "y": 8, "mode": "b" }),
            "batch {batch}, seed {seed}: best {} after {} experiments, stop: {stop}",
            top.node_id,
            history.len()
        );
        assert!(
            history.len() < 150,
            "searched too much of the space: {}",
            history.len()
        );
    }
}

#[test]
fn finds_the_optimum_when_only_exhaustion_stops_it() {
    // Patience too large to matter: the run must end because the neighbourhood is exhausted.
    let c = small_config(1000);
    let (history, stop) = simulate(&c, 2, 0, 1000, score);
    let stop = stop.expect("the planner never stopped");
    assert!(stop.contains("no untried neighbour"), "{stop}");
    assert_no_repeats(&history);
    assert_eq!(best(&history, true).primary, Some(5.0));
}

#[test]
fn minimizes_on_a_log_float_range() {
    let c = config(
        json!({ "lr": { "min": 0.000001, "max": 1, "scale": "log" } }),
        json!({ "lr": 0.1 }),
        "minimize",
        8,
    );
    let f = |p: &Map<String, Value>| (p["lr"].as_f64().unwrap().log10() + 3.0).powi(2);
    let (history, stop) = simulate(&c, 1, 5, 500, f);
    assert!(stop.is_some(), "the planner never stopped");
    assert_no_repeats(&history);
    let lr = best(&history, false).params["lr"].as_f64().unwrap();
    assert!((lr.log10() + 3.0).abs() < 0.16, "best lr {lr}");
}

#[test]
fn converges_on_a_smooth_function_of_two_floats() {
    let c = config(
        json!({ "a": { "min": 0, "max": 1 }, "b": { "min": -5, "max": 5 } }),
        json!({ "a": 0.0, "b": 5.0 }),
        "maximize",
        10,
    );
    let f = |p: &Map<String, Value>| {
        let (a, b) = (p["a"].as_f64().unwrap(), p["b"].as_f64().unwrap());
        10.0 - (a - 0.37).powi(2) * 10.0 - (b - 1.3).powi(2)
    };
    for seed in 0..5 {
        let (history, stop) = simulate(&c, 2, seed, 1000, f);
        assert!(stop.is_some(), "the planner never stopped");
        assert_no_repeats(&history);
        let top = best(&history, true);
        let (a, b) = (
            top.params["a"].as_f64().unwrap(),
            top.params["b"].as_f64().unwrap(),
        );
        assert!(
            (a - 0.37).abs() < 0.05 && (b - 1.3).abs() < 0.35,
            "seed {seed}: best a = {a}, b = {b} after {} experiments",
            history.len()
        );
    }
}

fn space_for_props() -> Config {
    config(
        json!({
            "x": { "min": 0, "max": 12, "type": "int" },
            "y": [1, 2, 4, 8],
            "lr": { "min": 0.001, "max": 1, "scale": "log" },
        }),
        json!({ "x": 0, "y": 1, "lr": 0.01 }),
        "maximize",
        8,
    )
}

fn arb_trial() -> impl Strategy<Value = (i64, usize, u32, bool, u8, f64)> {
    (
        0i64..=12,
        0usize..4,
        0u32..6,
        any::<bool>(),
        0u8..3,
        -100.0f64..100.0,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, .. ProptestConfig::default() })]

    #[test]
    fn plans_are_deterministic_new_and_valid(
        raw in prop::collection::vec(arb_trial(), 0..30),
        seed in any::<u64>(),
        plateau in 0u32..10,
        max_proposals in 0usize..10,
    ) {
        let c = space_for_props();
        let ys = [1, 2, 4, 8];
        let history: Vec<Trial> = raw
            .iter()
            .enumerate()
            .map(|(i, &(x, yi, lr_exp, as_float, state, primary))| {
                let lr = 0.01 * 2f64.powi(lr_exp as i32);
                let x = if as_float { json!(x as f64) } else { json!(x) };
                let state = [TrialState::Completed, TrialState::Failed, TrialState::Pending][state as usize];
                let primary = (state == TrialState::Completed).then_some(primary);
                trial(&format!("{:03}_t", i + 1), json!({ "x": x, "y": ys[yi], "lr": lr }), primary, state)
            })
            .collect();
        let req = request(&c, &history, plateau, max_proposals, seed);
        let plan = SearchPlanner.plan(&req);
        prop_assert_eq!(&plan, &SearchPlanner.plan(&req));
        let tried: HashSet<String> =
            history.iter().map(|t| canonical_params_key(&c.complete_params(&t.params))).collect();
        let ids: HashSet<&str> = history.iter().map(|t| t.node_id.as_str()).chain([req.from]).collect();
        match plan {
            Plan::Stop(reason) => {
                prop_assert!(!reason.is_empty());
                prop_assert!(plateau >= 8 || !history.is_empty(), "stopped with nothing tried: {}", reason);
            }
            Plan::Launch(props) => {
                prop_assert!(plateau < 8);
                prop_assert!(props.len() <= max_proposals);
                prop_assert!(max_proposals == 0 || !props.is_empty());
                let mut keys = HashSet::new();
                for p in &props {
                    let key = canonical_params_key(&p.params);
                    prop_assert!(!tried.contains(&key), "repeats history: {:?}", p.params);
                    prop_assert!(keys.insert(key), "proposed twice: {:?}", p.params);
                    prop_assert_eq!(p.params.len(), 3);
                    for (name, param) in c.search_space.iter() {
                        prop_assert!(param.contains(&p.params[name]), "{} = {} outside its domain", name, p.params[name]);
                    }
                    prop_assert!(ids.contains(p.parent.as_deref().unwrap_or("")));
                    prop_assert!(!p.name.is_empty() && !p.hypothesis.is_empty());
                    prop_assert!(p.priority.is_none() && p.changes.is_none());
                }
            }
        }
    }
}
