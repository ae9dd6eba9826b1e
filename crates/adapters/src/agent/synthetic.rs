//! A synthetic long run for the prompt-size benchmark (`examples/prompt_bench.rs`) and tests:
//! `n` finished experiments with long hypotheses, code changes, failures and findings, as a long
//! agent run has, plus a few in flight.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::plan_prompt::{Finding, HistoryRow, InFlight, PlanContext};
use crate::config::Direction;

/// A synthetic run of `n` finished experiments (and a few in flight), for the size benchmark
/// and tests: long hypotheses, code changes, failures and findings, as a long agent run has.
pub fn synthetic_context(n: usize) -> PlanContext {
    let p0 = |p: Option<f64>| p.unwrap_or(0.0);
    let mut history = Vec::with_capacity(n);
    let mut best: Option<(usize, f64)> = None;
    let mut findings = Vec::new();
    for i in 0..n {
        let id = format!("{i:03}_idea_number_{i}");
        let parent = (i > 0).then(|| history_id(best.map_or(0, |b| b.0).min(i - 1)));
        let failed = i % 7 == 3;
        let primary = (!failed).then(|| 100.0 - (i as f64).sqrt() + ((i * 37) % 11) as f64);
        let improved = match (primary, best) {
            (Some(p), None) => {
                best = Some((i, p));
                true
            }
            (Some(p), Some((_, b))) if p < b * 0.99 => {
                best = Some((i, p));
                true
            }
            _ => false,
        };
        let mut params = Map::new();
        params.insert("workers".into(), Value::from(1 << (i % 5)));
        params.insert("chunk".into(), Value::from(16 * (1 + i % 64)));
        params.insert("mode".into(), Value::from(["fast", "safe", "mixed"][i % 3]));
        history.push(HistoryRow {
            id,
            parent,
            status: if failed { "failed" } else { "completed" }.into(),
            params,
            primary,
            spread: (i % 5 == 0)
                .then(|| crate::noise::spread(&[p0(primary) - 0.8, p0(primary) + 0.8]))
                .flatten(),
            improved,
            unconfirmed: !improved && i % 11 == 5,
            hypothesis: format!(
                "Idea {i}: reduce the per-item overhead in the hot loop by batching writes and \
                 hoisting the allocation out of the loop; this should cut system time noticeably \
                 because the profile shows {i}% in write(2)."
            ),
            change: (i % 2 == 0).then(|| {
                format!("In src/main.py, replace the per-line write with a buffered writer ({i}).")
            }),
            failure: failed
                .then(|| "nonzero_exit: Traceback (most recent call last): NameError".into()),
        });
        if i % 10 == 0 {
            findings.push(Finding {
                node_id: history_id(i),
                text: format!("Finding {i}: the writer dominates at small chunk sizes; batching helps up to 4 KiB."),
            });
        }
    }
    let mut best_path = Vec::new();
    let index: BTreeMap<String, usize> = history
        .iter()
        .enumerate()
        .map(|(i, r)| (r.id.clone(), i))
        .collect();
    let mut cur = best.map(|b| b.0);
    while let Some(i) = cur {
        best_path.push(history[i].id.clone());
        cur = history[i]
            .parent
            .as_ref()
            .and_then(|p| index.get(p).copied());
    }
    best_path.reverse();
    let in_flight = (0..4)
        .map(|k| InFlight {
            id: format!("{:03}_pending_{k}", n + k),
            parent: best_path.last().cloned(),
            status: if k < 2 { "running" } else { "queued" }.into(),
            params: history.last().map(|r| r.params.clone()).unwrap_or_default(),
            hypothesis: "try a larger buffer".into(),
            changes: Some("Use a 64 KiB write buffer in src/main.py.".into()),
        })
        .collect();
    PlanContext {
        metric: "seconds".into(),
        direction: Direction::Minimize,
        min_improvement: crate::config::MinImprovement::Relative(0.01),
        noise_floor: Some(crate::model::NoiseFloor {
            relative: 0.012,
            dof: 6,
            nodes: 3,
        }),
        search_space: r#"{"workers": [1, 2, 4, 8, 16], "chunk": {"min": 16, "max": 1024, "type": "int"}, "mode": ["fast", "safe", "mixed"]}"#.into(),
        budget: format!("{n} of 2000 experiments used; agent cost $12.34 of $50; plateau 3 of 8"),
        planned_from: history.last().map(|r| r.id.clone()).unwrap_or_default(),
        history,
        best_path,
        findings,
        in_flight,
        slots: 2,
        protected: vec!["bench/**".into(), "evaluate.py".into()],
    }
}

fn history_id(i: usize) -> String {
    format!("{i:03}_idea_number_{i}")
}
