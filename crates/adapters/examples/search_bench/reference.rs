//! Optuna's recorded figures (`reference.tsv` from the listed baselines and
//! `reference_baselines.tsv` from the random ones, both written by `optuna_reference.py`).

use std::collections::BTreeMap;

/// The recorded files, built into the benchmark so running it needs no Python.
const TSV: [&str; 2] = [
    include_str!("reference.tsv"),
    include_str!("reference_baselines.tsv"),
];

/// Recorded figures.
pub(crate) struct Reference {
    /// The first line of `reference.tsv` (Optuna version and command).
    pub header: String,
    /// f(baseline) per function.
    pub baseline: BTreeMap<String, f64>,
    /// Best true value per (function, method, budget), one per seed.
    pub best: BTreeMap<(String, String, usize), Vec<f64>>,
}

impl Reference {
    /// Parses the built-in file.
    pub(crate) fn load() -> Reference {
        let mut r = Reference {
            header: String::new(),
            baseline: BTreeMap::new(),
            best: BTreeMap::new(),
        };
        for line in TSV.iter().flat_map(|t| t.lines()) {
            if let Some(h) = line.strip_prefix("# ") {
                if r.header.is_empty() {
                    r.header = h.to_string();
                }
                continue;
            }
            let f: Vec<&str> = line.split('\t').collect();
            if f.len() < 6 || f[0] == "function" {
                continue;
            }
            let value: f64 = f[4].parse().expect("reference.tsv: best");
            if f[1] == "baseline" {
                r.baseline.insert(f[0].to_string(), value);
            } else {
                let budget: usize = f[3].parse().expect("reference.tsv: budget");
                r.best
                    .entry((f[0].to_string(), f[1].to_string(), budget))
                    .or_default()
                    .push(value);
            }
        }
        r
    }

    /// A method's best values, one per seed (empty if not recorded).
    pub(crate) fn runs(&self, function: &str, method: &str, budget: usize) -> &[f64] {
        self.best
            .get(&(function.to_string(), method.to_string(), budget))
            .map_or(&[], Vec::as_slice)
    }

    /// Median of a method's best values, if recorded.
    pub(crate) fn median(&self, function: &str, method: &str, budget: usize) -> Option<f64> {
        self.best
            .get(&(function.to_string(), method.to_string(), budget))
            .map(|v| median(v))
    }
}

/// Median (mean of the middle two for an even count).
pub(crate) fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}
