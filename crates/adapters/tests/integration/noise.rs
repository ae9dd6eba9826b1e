//! Noise-aware results with real jobs through the real engine: a job whose true value depends
//! on its parameter, plus seeded noise of ±20 % drawn from the test seed, the parameter and
//! the run (`AUTORESEARCH_REPEAT`). With confirmation on, the reported best is the truly best
//! configuration in at least 9 of 10 seeds and no unconfirmed result counts as an
//! improvement; with it off, the test prints how often the luckiest draw wins and how much it
//! inflates the headline. Repeats: every run's raw value is kept and the value is their
//! aggregate. `NOISE_DEBUG=1` prints every result of every run.

use crate::support;

use std::collections::BTreeMap;

use autoresearch_engine::EngineStatus;
use serde_json::{Value, json};
use support::Fixture;

/// True value of `x` = 1..8: one best at 5; its neighbours are 30 % lower, so a lucky draw
/// (+20 %) of a neighbour beats an unlucky one (−20 %) of the best.
const APART: [f64; 8] = [0.4, 0.5, 0.6, 0.7, 1.0, 0.7, 0.6, 0.5];
/// Three configurations 15 % below the best: one run each cannot tell them apart reliably.
const CLOSE: [f64; 8] = [0.5, 0.6, 0.7, 0.8, 1.0, 0.85, 0.85, 0.85];
const BEST_X: i64 = 5;

/// `score = 100 × truth(x) × (1 + u)`, u uniform in [−0.2, 0.2] from a hash of the test seed,
/// `x` and the run index; appends `<node> <run>` to `launches.log`.
const NOISY_JOB: &str = r#"x=$1
echo "$AUTORESEARCH_NODE_ID $AUTORESEARCH_REPEAT" >> launches.log
h=$(printf '%s' "$NOISE_SEED:$x:$AUTORESEARCH_REPEAT" | cksum | cut -d' ' -f1)
t=$(echo "$TRUTH" | cut -d' ' -f"$x")
awk -v t="$t" -v h="$h" 'BEGIN { printf "METRIC score=%.6f\n", 100 * t * (1 + ((h % 4001) - 2000) / 10000) }'
"#;

fn noisy_config(fx: &Fixture, truth: &[f64; 8], seed: u64, confirm: &str, repeats: u32) -> Value {
    let script = fx.script("job.sh", NOISY_JOB);
    let truth: Vec<String> = truth.iter().map(|t| t.to_string()).collect();
    json!({
        "objective": { "metric": "score", "direction": "maximize", "repeats": repeats,
                       "confirm": confirm, "baseline_repeats": 3 },
        "job": { "command": format!("sh {} {{x}}", script.display()), "timeout_s": 60,
                 "env": { "NOISE_SEED": seed.to_string(), "TRUTH": truth.join(" ") } },
        "search_space": { "x": [1, 2, 3, 4, 5, 6, 7, 8] },
        "baseline": { "x": 1 },
        "planner": { "kind": "search", "seed": seed },
        "limits": { "max_concurrency": 4, "max_experiments": 8, "patience": 8 }
    })
}

/// What one run reported.
struct Outcome {
    best_x: i64,
    best_value: f64,
    runs: usize,
    /// Improvements whose configuration is truly no better than the best before them.
    noise_wins: usize,
}

fn truth_of(truth: &[f64; 8], x: i64) -> f64 {
    truth[x as usize - 1]
}

/// Runs one workdir to its end and checks what must hold whatever the noise: every run's raw
/// value kept and aggregated, every run launched once, no unconfirmed result counted (and,
/// with `confirm: always`, every improvement after the first confirmed).
async fn run_one(truth: &[f64; 8], seed: u64, confirm: &str, repeats: u32) -> Outcome {
    let fx = Fixture::new();
    let cfg = fx.config(noisy_config(&fx, truth, seed, confirm, repeats));
    fx.resolve(Some(cfg));
    let report = fx.run(None).await;
    assert_eq!(report.status, EngineStatus::Stopped, "{report:?}");
    let launches = std::fs::read_to_string(fx.work_file("launches.log")).unwrap_or_default();
    let mut per_run: BTreeMap<String, usize> = BTreeMap::new();
    for line in launches.lines() {
        *per_run.entry(line.to_string()).or_default() += 1;
    }
    assert!(
        per_run.values().all(|n| *n == 1),
        "seed {seed}: a run launched twice: {per_run:?}"
    );
    let state = fx.state();
    let ctx = format!("seed {seed}, confirm {confirm}");
    for id in fx.node_ids() {
        assert_eq!(
            fx.status(&id),
            "completed",
            "{ctx}: {id}: {}",
            fx.failure(&id)
        );
        let r = fx.result(&id);
        let samples: Vec<f64> = serde_json::from_value(r["samples"].clone()).unwrap();
        let base = if Some(id.as_str()) == state["baseline_node"].as_str() {
            3
        } else {
            repeats
        };
        let confirmation = &r["confirmation"];
        let want = base as usize + confirmation["runs"].as_u64().unwrap_or(0) as usize;
        assert_eq!(samples.len(), want, "{ctx}: {id}: {r}");
        let launched = (1..=want)
            .filter(|k| per_run.contains_key(&format!("{id} {k}")))
            .count();
        assert_eq!(launched, want, "{ctx}: {id}: each run launched once");
        let median = autoresearch_adapters::noise::aggregate(
            autoresearch_adapters::config::Aggregate::Median,
            &samples,
        )
        .unwrap();
        assert_eq!(
            r["primary"].as_f64(),
            Some(median),
            "{ctx}: {id}: the median"
        );
        if r["unconfirmed"] == json!(true) {
            assert_eq!(
                r["improved"],
                json!(false),
                "{ctx}: {id}: unconfirmed counted"
            );
            assert_ne!(
                state["best_node"].as_str(),
                Some(id.as_str()),
                "{ctx}: {id}"
            );
        }
        if confirm == "always" && r["improved"] == json!(true) {
            let first = r["analysis"]
                .as_str()
                .unwrap_or("")
                .contains("first result");
            assert!(
                first || confirmation["confirmed"] == json!(true),
                "{ctx}: {id} counted as an improvement without its confirmation: {r}"
            );
        }
    }
    // Walk the results in the order they were recorded.
    let mut noise_wins = 0;
    let mut best: Option<f64> = None;
    for id in state["recorded"].as_array().unwrap() {
        let id = id.as_str().unwrap();
        if fx.result(id)["improved"] == json!(true) {
            let t = truth_of(truth, fx.spec(id)["params"]["x"].as_i64().unwrap());
            if best.is_some_and(|b| t <= b) {
                noise_wins += 1;
            }
            best = Some(t);
        }
    }
    let best = state["best_node"]
        .as_str()
        .expect("a best node")
        .to_string();
    if std::env::var("NOISE_DEBUG").is_ok() {
        for id in state["recorded"].as_array().unwrap() {
            let id = id.as_str().unwrap();
            let r = fx.result(id);
            eprintln!(
                "{ctx} {id} x={} {} {}",
                fx.spec(id)["params"]["x"],
                r["samples"],
                r["analysis"]
            );
        }
        eprintln!("{ctx} best {best} stop {}", state["stop_reason"]);
    }
    Outcome {
        best_x: fx.spec(&best)["params"]["x"].as_i64().unwrap(),
        best_value: state["best_value"].as_f64().unwrap(),
        runs: per_run.len(),
        noise_wins,
    }
}

/// One arm's figures over its seeds.
struct Arm {
    right: usize,
    inflation: f64,
    runs: usize,
    noise_wins: usize,
}

async fn arm(truth: &[f64; 8], seeds: &[u64], confirm: &str, repeats: u32) -> Arm {
    let mut a = Arm {
        right: 0,
        inflation: 0.0,
        runs: 0,
        noise_wins: 0,
    };
    for &seed in seeds {
        let o = run_one(truth, seed, confirm, repeats).await;
        a.right += usize::from(o.best_x == BEST_X);
        a.inflation += o.best_value / (100.0 * truth_of(truth, o.best_x)) - 1.0;
        a.runs += o.runs;
        a.noise_wins += o.noise_wins;
    }
    a.inflation /= seeds.len() as f64;
    a
}

/// Runs each arm over seeds 1..=10 and prints its figures; returns how often each reported
/// the truly best configuration.
async fn compare(name: &str, truth: &[f64; 8], arms: &[(&str, u32)]) -> Vec<(String, usize)> {
    let seeds: Vec<u64> = (1..=10).collect();
    let mut figures = Vec::new();
    let mut right = Vec::new();
    for &(confirm, repeats) in arms {
        let a = arm(truth, &seeds, confirm, repeats).await;
        figures.push(format!(
            "confirm={confirm} repeats={repeats}: truly best reported in {}/10, noise wins counted {}, \
             headline {:+.1}% over its true value, {} job runs",
            a.right,
            a.noise_wins,
            a.inflation * 100.0,
            a.runs
        ));
        right.push((confirm.to_string(), a.right));
    }
    eprintln!(
        "noise ±20% (uniform), {name}, 8 configurations, baseline run 3 times, 10 seeds:\n  {}",
        figures.join("\n  ")
    );
    right
}

/// The truly best configuration 30 % above the rest: with confirmation on (`auto`, the
/// default, and `always`) it is reported in at least 9 of 10 seeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn confirmation_reports_the_true_best_and_off_shows_the_luckiest_draw() {
    let arms = [("auto", 1), ("always", 1), ("off", 1)];
    let right = compare("best 30% apart", &APART, &arms).await;
    for (confirm, right) in right {
        if confirm != "off" {
            assert!(
                right >= 9,
                "confirm={confirm}: the truly best in only {right}/10"
            );
        }
    }
}

/// Competitors 15 % below the best, within the noise of one run: confirmation cannot find a
/// best whose first draw was unlucky (it is never re-run), so whatever the rule the figures
/// only say how often the luckiest draw wins and how much it inflates the headline (three
/// repeats narrow the inflation; measured 7/10 either way). The invariants of every run hold.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn close_competitors_need_repeats() {
    compare(
        "best 15% apart",
        &CLOSE,
        &[("off", 1), ("always", 1), ("auto", 3)],
    )
    .await;
}
