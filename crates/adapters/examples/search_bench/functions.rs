//! The benchmark's test functions, their search spaces and baselines. They must stay identical
//! to `optuna_reference.py` (the benchmark checks f(baseline) against `reference.tsv`).

use serde_json::{Map, Value, json};

/// Relative noise of the noisy functions (the result is multiplied by `1 + NOISE · z`).
pub(crate) const NOISE: f64 = 0.05;

/// A test function to minimise.
#[derive(Clone)]
pub(crate) struct Function {
    /// Name (as in `reference.tsv`).
    pub name: &'static str,
    /// `search_space` of the configuration.
    pub space: Value,
    /// `baseline` of the configuration.
    pub baseline: Value,
    /// Whether results carry [`NOISE`].
    pub noisy: bool,
    eval: fn(&Map<String, Value>) -> f64,
}

impl Function {
    /// The true value at `p`.
    pub(crate) fn value(&self, p: &Map<String, Value>) -> f64 {
        (self.eval)(p)
    }

    /// The value a job reports at `p` (noisy functions add seeded noise).
    pub(crate) fn observed(&self, p: &Map<String, Value>, noise_seed: u64) -> f64 {
        let v = self.value(p);
        if self.noisy {
            v * (1.0 + NOISE * noise_z(noise_seed, &self.names(), p))
        } else {
            v
        }
    }

    /// Parameter names in declaration order.
    pub(crate) fn names(&self) -> Vec<String> {
        self.space.as_object().unwrap().keys().cloned().collect()
    }
}

/// Every function, in table order.
pub(crate) fn all() -> Vec<Function> {
    let floats = |d: usize, lo: f64, hi: f64, base: f64| -> (Value, Value) {
        let mut space = Map::new();
        let mut baseline = Map::new();
        for i in 1..=d {
            space.insert(format!("x{i}"), json!({ "min": lo, "max": hi }));
            baseline.insert(format!("x{i}"), json!(base));
        }
        (Value::Object(space), Value::Object(baseline))
    };
    let mixed_space = json!({
        "batch": { "min": 1, "max": 4096, "scale": "log", "type": "int" },
        "workers": { "min": 1, "max": 32, "scale": "log", "type": "int" },
        "algo": ["gemm", "winograd", "direct", "fft"],
        "frac": { "min": 0.0, "max": 1.0 },
    });
    let mixed_baseline = json!({ "batch": 32, "workers": 2, "algo": "gemm", "frac": 0.5 });
    let f = |name, (space, baseline): (Value, Value), noisy, eval| Function {
        name,
        space,
        baseline,
        noisy,
        eval,
    };
    vec![
        f(
            "branin",
            (
                json!({ "x1": { "min": -5.0, "max": 10.0 }, "x2": { "min": 0.0, "max": 15.0 } }),
                json!({ "x1": 2.5, "x2": 7.5 }),
            ),
            false,
            branin,
        ),
        f("hartmann6", floats(6, 0.0, 1.0, 0.5), false, hartmann6),
        f("rosenbrock4", floats(4, -5.0, 5.0, 0.0), false, |p| {
            rosenbrock(&xs(p, 4))
        }),
        f(
            "mixed",
            (mixed_space.clone(), mixed_baseline.clone()),
            false,
            mixed,
        ),
        f("mixed_noisy", (mixed_space, mixed_baseline), true, mixed),
        f("ackley5", floats(5, -10.0, 30.0, 10.0), false, |p| {
            ackley(&xs(p, 5))
        }),
        f("levy4", floats(4, -5.0, 15.0, 5.0), false, |p| {
            levy(&xs(p, 4))
        }),
        f("styblinski6", floats(6, -5.0, 5.0, 0.0), false, |p| {
            styblinski_tang(&xs(p, 6))
        }),
        f(
            "training",
            (
                json!({
                    "lr": { "min": 1e-5, "max": 1.0, "scale": "log" },
                    "optimizer": ["sgd", "momentum", "adam", "adamw", "rmsprop"],
                    "width": [32, 64, 128, 256, 512, 1024],
                    "layers": { "min": 1, "max": 8, "type": "int" },
                    "dropout": { "min": 0.0, "max": 0.6 },
                    "activation": ["relu", "gelu", "tanh", "silu"],
                }),
                json!({
                    "lr": 0.01, "optimizer": "sgd", "width": 64, "layers": 2,
                    "dropout": 0.0, "activation": "relu",
                }),
            ),
            false,
            training,
        ),
    ]
}

fn num(p: &Map<String, Value>, name: &str) -> f64 {
    p[name].as_f64().unwrap_or(f64::NAN)
}

fn xs(p: &Map<String, Value>, d: usize) -> Vec<f64> {
    (1..=d).map(|i| num(p, &format!("x{i}"))).collect()
}

fn branin(p: &Map<String, Value>) -> f64 {
    let (x1, x2) = (num(p, "x1"), num(p, "x2"));
    let pi = std::f64::consts::PI;
    let b = 5.1 / (4.0 * pi * pi);
    let c = 5.0 / pi;
    let t = 1.0 / (8.0 * pi);
    (x2 - b * x1 * x1 + c * x1 - 6.0).powi(2) + 10.0 * (1.0 - t) * x1.cos() + 10.0
}

const H6_ALPHA: [f64; 4] = [1.0, 1.2, 3.0, 3.2];
const H6_A: [[f64; 6]; 4] = [
    [10.0, 3.0, 17.0, 3.5, 1.7, 8.0],
    [0.05, 10.0, 17.0, 0.1, 8.0, 14.0],
    [3.0, 3.5, 1.7, 10.0, 17.0, 8.0],
    [17.0, 8.0, 0.05, 10.0, 0.1, 14.0],
];
const H6_P: [[f64; 6]; 4] = [
    [0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886],
    [0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991],
    [0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650],
    [0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381],
];

fn hartmann6(p: &Map<String, Value>) -> f64 {
    let x = xs(p, 6);
    let mut total = 0.0;
    for i in 0..4 {
        let mut inner = 0.0;
        for j in 0..6 {
            inner += H6_A[i][j] * (x[j] - H6_P[i][j]).powi(2);
        }
        total += H6_ALPHA[i] * (-inner).exp();
    }
    -total
}

fn rosenbrock(x: &[f64]) -> f64 {
    (0..x.len() - 1)
        .map(|i| 100.0 * (x[i + 1] - x[i] * x[i]).powi(2) + (1.0 - x[i]).powi(2))
        .sum()
}

fn ackley(x: &[f64]) -> f64 {
    let d = x.len() as f64;
    let s1 = x.iter().map(|v| v * v).sum::<f64>() / d;
    let s2 = x
        .iter()
        .map(|v| (2.0 * std::f64::consts::PI * v).cos())
        .sum::<f64>()
        / d;
    -20.0 * (-0.2 * s1.sqrt()).exp() - s2.exp() + 20.0 + std::f64::consts::E
}

fn levy(x: &[f64]) -> f64 {
    let pi = std::f64::consts::PI;
    let w: Vec<f64> = x.iter().map(|v| 1.0 + (v - 1.0) / 4.0).collect();
    let d = w.len();
    let mut total = (pi * w[0]).sin().powi(2);
    for wi in &w[..d - 1] {
        total += (wi - 1.0).powi(2) * (1.0 + 10.0 * (pi * wi + 1.0).sin().powi(2));
    }
    total + (w[d - 1] - 1.0).powi(2) * (1.0 + (2.0 * pi * w[d - 1]).sin().powi(2))
}

fn styblinski_tang(x: &[f64]) -> f64 {
    0.5 * x
        .iter()
        .map(|v| v.powi(4) - 16.0 * v * v + 5.0 * v)
        .sum::<f64>()
}

fn mixed(p: &Map<String, Value>) -> f64 {
    let (factor, best_batch) = match p["algo"].as_str().unwrap_or("") {
        "gemm" => (1.5, 256.0),
        "winograd" => (1.25, 64.0),
        "direct" => (1.8, 32.0),
        _ => (1.0, 145.0),
    };
    let lb = (num(p, "batch") / best_batch).log2();
    let lw = (num(p, "workers") / 6.0).log2();
    let fr = num(p, "frac") - 0.62;
    factor * (1.0 + 0.06 * lb * lb + 0.12 * lw * lw + 0.04 * lb * lw + 1.5 * fr * fr)
}

fn training(p: &Map<String, Value>) -> f64 {
    let (base, best_lr) = match p["optimizer"].as_str().unwrap_or("") {
        "sgd" => (0.45, -1.3),
        "momentum" => (0.30, -2.0),
        "adam" => (0.22, -3.2),
        "adamw" => (0.20, -3.0),
        _ => (0.28, -3.6),
    };
    let act = match p["activation"].as_str().unwrap_or("") {
        "relu" => 0.03,
        "gelu" => 0.0,
        "tanh" => 0.08,
        _ => 0.01,
    };
    let lw = (num(p, "width") / 256.0).log2();
    let layers = num(p, "layers");
    base + act
        + 0.08 * (num(p, "lr").log10() - best_lr).powi(2)
        + 0.015 * (layers - 5.0 - lw).powi(2)
        + 0.012 * lw * lw
        + 0.6 * (num(p, "dropout") - 0.05 * layers).powi(2)
}

fn splitmix64(z: u64) -> u64 {
    let mut z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A standard normal draw that depends only on the seed and the parameter values.
fn noise_z(seed: u64, names: &[String], p: &Map<String, Value>) -> f64 {
    let mut data = seed.to_le_bytes().to_vec();
    for name in names {
        match &p[name] {
            Value::String(s) => {
                data.extend_from_slice(s.as_bytes());
                data.push(0xff);
            }
            v => data.extend_from_slice(&v.as_f64().unwrap_or(f64::NAN).to_le_bytes()),
        }
    }
    let mut h: u64 = 0xCBF2_9CE4_8422_2325;
    for b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01B3);
    }
    let u1 = (splitmix64(h) >> 11) as f64 / (1u64 << 53) as f64;
    let u2 = (splitmix64(h ^ 0x9E37_79B9_7F4A_7C15) >> 11) as f64 / (1u64 << 53) as f64;
    (-2.0 * (1.0 - u1).ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}
