//! Search benchmark: the built-in search planner against Optuna's recorded TPE figures on
//! standard test functions and tuning-like mixed spaces, with 1 and 4 slots, 5 seeds by default
//! (`--seeds`).
//!
//! ```text
//! cargo run --release -p autoresearch-adapters --example search_bench -- [MODE] [OPTIONS]
//! ```
//!
//! Modes:
//! - `inprocess` (default): the planner called directly, jobs simulated under the planning-round
//!   model (one round in flight, each round asked for as many proposals as there are free
//!   slots, pending experiments in the history). Seconds per function.
//! - `engine`: every search runs through the real `ExperimentWorkflow` with the local executor;
//!   every experiment is a real process (this binary's `eval` subcommand) printing
//!   `METRIC value=<f>`. Minutes per function.
//! - `timing`: planning time with 1,000 experiments of history.
//! - `baselines`: the random baselines 1..=6 of every function as JSON (the input of
//!   `optuna_reference.py --baselines`).
//! - `eval FUNCTION NOISE_SEED name=value…`: one job (prints `METRIC value=<f>`).
//!
//! Options: `--functions a,b` (default all), `--seeds N` (seeds 0..N, default 5),
//! `--slots 1,4`, `--budget N` (default 100; budgets 30 and N are reported),
//! `--durations random|equal` (in-process job durations), `--dir DIR` (engine workdirs, kept),
//! `--set knob=value` (in-process experiments with the planner's knobs), `--baseline N[,N…]|all`
//! (0, the default: the baseline listed in `functions.rs`; N > 0: a uniformly random point of
//! the space drawn with seed N, the same for every seed and slot count; the ratio then uses f of
//! that point and TPE's figures recorded from the same point, `reference_baselines.tsv`; `all`
//! is 0–6; with several baselines a table pooled over them follows, see `pooled.rs`).
//!
//! Each table row: f(baseline), Optuna TPE's median best (20 seeds, `reference.tsv`), ours (median
//! of the best true value reached within the budget) and "% of TPE" = (f(baseline) − ours) /
//! (f(baseline) − TPE). The last line per row gives min–max over seeds, repeated parameter sets
//! and early stops. Reference figures: `python3 optuna_reference.py` (one-off; needs optuna;
//! `--baselines baselines.json` for the random baselines); how noisy a 5-seed median is:
//! `python3 tpe_selfcheck.py`.

mod engine;
mod functions;
mod inprocess;
mod pooled;
mod reference;

use std::path::PathBuf;
use std::time::Instant;

use autoresearch_adapters::planner::search::{SearchPlanner, Transform, Tuning};
use autoresearch_adapters::planner::{PlanRequest, Trial, TrialState};
use serde_json::{Map, Value};

use functions::Function;
use inprocess::{Durations, Run};
use reference::{Reference, median};

/// Budgets reported (the second is `--budget`).
const SHORT_BUDGET: usize = 30;

struct Args {
    mode: String,
    functions: Option<Vec<String>>,
    seeds: u64,
    slots: Vec<usize>,
    budget: usize,
    durations: Durations,
    dir: Option<PathBuf>,
    tuning: Tuning,
    baselines: Vec<u64>,
}

fn usage(message: &str) -> ! {
    eprintln!("search_bench: {message}");
    eprintln!(
        "usage: search_bench [inprocess|engine|timing] [--functions a,b] [--seeds N] \
         [--slots 1,4] [--budget N] [--durations random|equal] [--dir DIR] [--set knob=value] [--baseline N[,N…]|all]\n       \
         search_bench baselines"
    );
    std::process::exit(2)
}

fn parse_args(raw: Vec<String>) -> Args {
    let mut args = Args {
        mode: "inprocess".into(),
        functions: None,
        seeds: 5,
        slots: vec![1, 4],
        budget: 100,
        durations: Durations::Random,
        dir: None,
        tuning: Tuning::default(),
        baselines: vec![0],
    };
    let mut it = raw.into_iter();
    while let Some(a) = it.next() {
        let mut value = |flag: &str| {
            it.next()
                .unwrap_or_else(|| usage(&format!("{flag} needs a value")))
        };
        match a.as_str() {
            "inprocess" | "engine" | "timing" | "baselines" => args.mode = a,
            "--functions" => {
                args.functions = Some(value("--functions").split(',').map(String::from).collect())
            }
            "--seeds" => {
                args.seeds = value("--seeds")
                    .parse()
                    .unwrap_or_else(|_| usage("--seeds N"))
            }
            "--slots" => {
                args.slots = value("--slots")
                    .split(',')
                    .map(|s| s.parse().unwrap_or_else(|_| usage("--slots 1,4")))
                    .collect()
            }
            "--budget" => {
                args.budget = value("--budget")
                    .parse()
                    .unwrap_or_else(|_| usage("--budget N"))
            }
            "--durations" => {
                args.durations = match value("--durations").as_str() {
                    "random" => Durations::Random,
                    "equal" => Durations::Equal,
                    _ => usage("--durations random|equal"),
                }
            }
            "--dir" => args.dir = Some(PathBuf::from(value("--dir"))),
            "--set" => set_knob(&mut args.tuning, &value("--set")),
            "--baseline" => {
                args.baselines = match value("--baseline").as_str() {
                    "all" => (0..=RANDOM_BASELINES).collect(),
                    list => list
                        .split(',')
                        .map(|n| n.parse().unwrap_or_else(|_| usage("--baseline N[,N…]|all")))
                        .collect(),
                }
            }
            "-h" | "--help" => usage("help"),
            other => usage(&format!("unknown argument {other:?}")),
        }
    }
    args
}

fn set_knob(t: &mut Tuning, spec: &str) {
    let Some((k, v)) = spec.split_once('=') else {
        usage("--set knob=value")
    };
    let n = || {
        v.parse::<usize>()
            .unwrap_or_else(|_| usage(&format!("--set {k}: a number")))
    };
    match k {
        "initial" => t.initial = Some(n()),
        "max_points" => t.max_points = n(),
        "random" => t.random_candidates = n(),
        "local" => t.local_candidates = n(),
        "refined" => t.refined = n(),
        "fit_iterations" => t.fit_iterations = n(),
        "additive" => t.additive = v == "true",
        "additive_from" => t.additive_from = n(),
        "penalize" => t.penalize = v == "true",
        "ls_prior" => {
            let f: Vec<f64> = v.split(',').filter_map(|x| x.parse().ok()).collect();
            if f.len() != 2 {
                usage("ls_prior=shape,rate")
            }
            t.ls_prior = (f[0], f[1]);
        }
        "transform" => {
            t.transform = match v {
                "standardize" => Transform::Standardize,
                "ranks" => Transform::Ranks,
                "log" => Transform::Log,
                _ => usage("transform=standardize|ranks|log"),
            }
        }
        _ => usage(&format!("unknown knob {k}")),
    }
}

fn main() {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    if raw.first().map(String::as_str) == Some("eval") {
        eval(&raw[1..]);
        return;
    }
    let args = parse_args(raw);
    let reference = Reference::load();
    let functions: Vec<Function> = functions::all()
        .into_iter()
        .filter(|f| {
            args.functions
                .as_ref()
                .is_none_or(|l| l.iter().any(|n| n == f.name))
        })
        .collect();
    if functions.is_empty() {
        usage("no such function");
    }
    if args.mode == "baselines" {
        print_baselines(&functions);
        return;
    }
    if args.mode == "timing" {
        timing(&args.tuning);
        return;
    }
    let mut cells = Vec::new();
    for &n in &args.baselines {
        let functions: Vec<Function> = functions
            .iter()
            .map(|f| with_baseline(f.clone(), n))
            .collect();
        check_baselines(&functions, &reference, n);
        cells.extend(compare(&args, &args.mode, &functions, &reference, n));
    }
    if args.baselines.len() > 1 {
        pooled::print(&cells, &args.slots);
    }
}

/// The `eval` subcommand: one job.
fn eval(raw: &[String]) {
    let (Some(name), Some(seed)) = (raw.first(), raw.get(1).and_then(|s| s.parse::<u64>().ok()))
    else {
        eprintln!("usage: search_bench eval FUNCTION NOISE_SEED name=value…");
        std::process::exit(2);
    };
    let Some(f) = functions::all().into_iter().find(|f| f.name == name) else {
        eprintln!("search_bench eval: unknown function {name:?}");
        std::process::exit(2);
    };
    let mut params = Map::new();
    for kv in &raw[2..] {
        let Some((k, v)) = kv.split_once('=') else {
            eprintln!("search_bench eval: expected name=value, found {kv:?}");
            std::process::exit(2);
        };
        let value = v
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map_or_else(|| Value::String(v.to_string()), Value::Number);
        params.insert(k.to_string(), value);
    }
    println!("METRIC value={}", f.observed(&params, seed));
}

/// `f` with a uniformly random baseline drawn with seed `n` (`n` = 0: unchanged).
fn with_baseline(mut f: Function, n: u64) -> Function {
    if n > 0 {
        let config = inprocess::config(&f, 0, 2, 1, "true");
        let mut rng = fastrand::Rng::with_seed(n ^ 0xBA5E);
        f.baseline = Value::Object(random_params(&config, &mut rng));
    }
    f
}

/// Random baselines recorded for Optuna (`reference_baselines.tsv`).
const RANDOM_BASELINES: u64 = 6;

/// The `baselines` mode: `{function: {"N": params}}` for the random baselines 1..=6.
fn print_baselines(functions: &[Function]) {
    let all: Map<String, Value> = functions
        .iter()
        .map(|f| {
            let by_n: Map<String, Value> = (1..=RANDOM_BASELINES)
                .map(|n| (n.to_string(), with_baseline(f.clone(), n).baseline))
                .collect();
            (f.name.to_string(), Value::Object(by_n))
        })
        .collect();
    println!("{}", Value::Object(all));
}

/// The name of `function` started from random baseline `n` in the reference files
/// (`name@bN`; the listed baseline: the name itself).
fn reference_name(function: &str, n: u64) -> String {
    if n == 0 {
        function.to_string()
    } else {
        format!("{function}@b{n}")
    }
}

/// f(baseline) must equal the recorded one: the Python and Rust functions are the same.
/// A random baseline without recorded figures is not checked (the ratio then uses the listed
/// baseline's TPE figures, and the table says so).
fn check_baselines(functions: &[Function], reference: &Reference, n: u64) {
    for f in functions {
        let base = f.value(f.baseline.as_object().unwrap());
        let name = reference_name(f.name, n);
        match reference.baseline.get(&name) {
            Some(r) if (r - base).abs() <= 1e-9 * r.abs().max(1.0) => {}
            None if n > 0 => {}
            other => {
                eprintln!(
                    "search_bench: f(baseline) of {name} is {base}, the reference files say \
                     {other:?}: functions.rs and optuna_reference.py disagree"
                );
                std::process::exit(1);
            }
        }
    }
}

/// Best true value among the first `budget` started experiments (by observed value).
fn best_within(run: &Run, budget: usize) -> f64 {
    run.trials
        .iter()
        .take(budget)
        .filter(|t| t.1.is_finite())
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map_or(f64::NAN, |t| t.0)
}

fn repeats(run: &Run) -> usize {
    let mut keys: Vec<&String> = run.trials.iter().map(|t| &t.2).collect();
    let n = keys.len();
    keys.sort();
    keys.dedup();
    n - keys.len()
}

/// Runs every function from baseline `n` and prints its table; returns its cells.
fn compare(
    args: &Args,
    mode: &str,
    functions: &[Function],
    reference: &Reference,
    n: u64,
) -> Vec<pooled::Cell> {
    let exe = std::env::current_exe().expect("current executable");
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join("search_bench"));
    println!(
        "mode={mode} seeds=0..{} budget={} slots={:?} baseline={} reference: {}",
        args.seeds, args.budget, args.slots, n, reference.header
    );
    let mut budgets = vec![SHORT_BUDGET.min(args.budget), args.budget];
    budgets.dedup();
    let mut summary: Vec<String> = Vec::new();
    let mut cells = Vec::new();
    let wall = Instant::now();
    for f in functions {
        let base = f.value(f.baseline.as_object().unwrap());
        // runs[slot index][seed]
        let mut runs: Vec<Vec<Run>> = Vec::new();
        for &slots in &args.slots {
            let jobs: Vec<u64> = (0..args.seeds).collect();
            let results: Vec<Run> = parallel(
                &jobs,
                |&seed| match mode {
                    "engine" => engine::run(f, n, seed, slots, args.budget, &exe, &dir)
                        .unwrap_or_else(|e| panic!("{} seed {seed}: {e}", f.name)),
                    _ => {
                        let config = inprocess::config(f, seed, args.budget, slots, "true");
                        inprocess::simulate(
                            f,
                            &config,
                            seed,
                            slots,
                            args.budget,
                            args.durations,
                            &args.tuning,
                        )
                    }
                },
                2,
            );
            runs.push(results);
        }
        let name = reference_name(f.name, n);
        let own = reference.median(&name, "tpe", SHORT_BUDGET).is_some();
        for &budget in &budgets {
            let tpe = reference
                .median(&name, "tpe", budget)
                .or_else(|| reference.median(f.name, "tpe", budget));
            let pct = |ours: f64| match tpe {
                Some(t) if base - t > 1e-12 => {
                    format!("{:.1}%", (base - ours) / (base - t) * 100.0)
                }
                _ => "n/a".to_string(),
            };
            let mut line = format!(
                "| {} | {budget} | {} | {}{} |",
                f.name,
                g(base),
                tpe.map_or("-".into(), g),
                if own { "" } else { " (listed baseline)" }
            );
            let mut detail = String::new();
            for (i, &slots) in args.slots.iter().enumerate() {
                let bests: Vec<f64> = runs[i].iter().map(|r| best_within(r, budget)).collect();
                let m = median(&bests);
                if own {
                    cells.push(pooled::Cell {
                        function: f.name,
                        budget,
                        slots,
                        base,
                        ours: bests.clone(),
                        tpe: reference.runs(&name, "tpe", budget).to_vec(),
                    });
                }
                line.push_str(&format!(" {} | {} |", g(m), pct(m)));
                let lo = bests.iter().copied().fold(f64::INFINITY, f64::min);
                let hi = bests.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let reps: usize = runs[i].iter().map(repeats).sum();
                let short = runs[i].iter().filter(|r| r.trials.len() < budget).count();
                let stops: Vec<&str> = runs[i]
                    .iter()
                    .filter(|r| r.trials.len() < budget)
                    .filter_map(|r| r.stop.as_deref())
                    .collect();
                detail.push_str(&format!(
                    " [slots {slots}: {}–{} repeats={reps} short_runs={short}{}]",
                    g(lo),
                    g(hi),
                    stops.first().map_or(String::new(), |s| format!(" ({s})"))
                ));
            }
            println!("{line}{detail}");
            summary.push(line);
        }
    }
    let header = args
        .slots
        .iter()
        .map(|s| format!(" ours {s} slot(s) | % of TPE |"))
        .collect::<String>();
    println!("\n| function | budget | f(baseline) | TPE |{header}");
    println!("|---|---|---|---|{}", "---|---|".repeat(args.slots.len()));
    for l in summary {
        println!("{l}");
    }
    println!("wall_s={:.1}", wall.elapsed().as_secs_f64());
    cells
}

/// `f` over `items` on up to `threads` threads, results in order.
fn parallel<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync, threads: usize) -> Vec<R> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let slots: Vec<std::sync::Mutex<Option<R>>> =
        items.iter().map(|_| Default::default()).collect();
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= items.len() {
                        break;
                    }
                    let r = f(&items[i]);
                    *slots[i].lock().unwrap() = Some(r);
                }
            });
        }
    });
    slots
        .into_iter()
        .map(|m| m.into_inner().unwrap().expect("result"))
        .collect()
}

/// A number with 4 significant digits.
fn g(x: f64) -> String {
    if !x.is_finite() || x == 0.0 {
        return format!("{x}");
    }
    let s = format!("{:.4e}", x);
    let v: f64 = s.parse().unwrap_or(x);
    let digits = 3 - v.abs().log10().floor().max(-10.0) as i32;
    format!("{:.*}", digits.max(0) as usize, v)
}

/// Planning time with 1,000 experiments of history (random points, all completed, plus four
/// pending), for 1 and 4 proposals.
fn timing(tuning: &Tuning) {
    for f in functions::all()
        .into_iter()
        .filter(|f| ["hartmann6", "training"].contains(&f.name))
    {
        let config = inprocess::config(&f, 0, 2000, 4, "true");
        let mut rng = fastrand::Rng::with_seed(7);
        let mut history: Vec<Trial> = (0..1000)
            .map(|i| {
                let params = random_params(&config, &mut rng);
                Trial {
                    node_id: format!("{:04}", i + 1),
                    primary: Some(f.value(&params)),
                    params,
                    state: TrialState::Completed,
                    spread: None,
                }
            })
            .collect();
        for t in history.iter_mut().rev().take(4) {
            t.primary = None;
            t.state = TrialState::Pending;
        }
        for max in [1, 4] {
            let mut times = Vec::new();
            let mut cpu = Vec::new();
            for rep in 0..5 {
                let req = PlanRequest {
                    config: &config,
                    history: &history,
                    from: "1000",
                    plateau: 0,
                    max_proposals: max,
                    seed: rep,
                };
                let (t, c) = (Instant::now(), thread_cpu_ms());
                let plan = SearchPlanner.plan_tuned(&req, tuning);
                times.push(t.elapsed().as_secs_f64() * 1e3);
                cpu.push(thread_cpu_ms() - c);
                std::hint::black_box(plan);
            }
            println!(
                "timing function={} history=1000 max_proposals={max} median_ms={:.1} max_ms={:.1} \
                 cpu_median_ms={:.1} cpu_max_ms={:.1}",
                f.name,
                median(&times),
                times.iter().copied().fold(0.0, f64::max),
                median(&cpu),
                cpu.iter().copied().fold(0.0, f64::max)
            );
        }
    }
}

/// CPU time of the calling thread in milliseconds (wall time on a loaded machine counts the
/// other processes' turns too).
fn thread_cpu_ms() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return f64::NAN;
    }
    ts.tv_sec as f64 * 1e3 + ts.tv_nsec as f64 / 1e6
}

/// A uniformly random parameter set of the configuration's space (log-uniform on log ranges).
fn random_params(
    config: &autoresearch_adapters::config::Config,
    rng: &mut fastrand::Rng,
) -> Map<String, Value> {
    use autoresearch_adapters::config::{NumType, Param, Scale};
    config
        .search_space
        .iter()
        .map(|(name, param)| {
            let v = match param {
                Param::Choices(c) => c[rng.usize(..c.len())].clone(),
                Param::Range(r) => {
                    let u = rng.f64();
                    let x = match r.scale {
                        Scale::Linear => r.min + u * (r.max - r.min),
                        Scale::Log => (r.min.ln() + u * (r.max.ln() - r.min.ln())).exp(),
                    };
                    match r.kind {
                        NumType::Int => Value::from(x.round() as i64),
                        NumType::Float => serde_json::json!(x),
                    }
                }
            };
            (name.to_string(), v)
        })
        .collect()
}
