//! From the history to a fitted surrogate: which trials the model learns from, how their
//! results are transformed (lower is better, failures count as the worst result), and the fit.

use serde_json::{Map, Value};

use super::gp::{FitOptions, Gp};
use super::space::Space;
use crate::config::{Config, Direction};
use crate::planner::{Trial, TrialState};

/// How results are transformed before the fit.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transform {
    /// Standardized values.
    Standardize,
    /// Normal scores of the ranks (only the order of the results matters).
    Ranks,
    /// Logarithm of the distance to the best, standardized (keeps detail near the best).
    Log,
}

/// One trial as the planner sees it: its coordinates and what happened.
#[derive(Debug, Clone)]
pub(crate) struct Point {
    /// Node id.
    pub node_id: String,
    /// Complete parameter set.
    pub params: Map<String, Value>,
    /// Coordinates.
    pub x: Vec<f64>,
    /// Result, lower is better (None: pending or failed).
    pub y: Option<f64>,
    /// Whether it failed (or completed without a usable result).
    pub failed: bool,
}

/// The history split by state, with coordinates.
#[derive(Debug, Clone, Default)]
pub(crate) struct Observed {
    /// Completed with a finite result, in history order.
    pub completed: Vec<Point>,
    /// Failed.
    pub failed: Vec<Point>,
    /// Queued or running.
    pub pending: Vec<Point>,
}

impl Observed {
    /// The trials of the history that lie in the space (others are only never repeated).
    pub(super) fn new(config: &Config, space: &Space, history: &[Trial]) -> Observed {
        let sign = match config.objective.direction {
            Direction::Minimize => 1.0,
            Direction::Maximize => -1.0,
        };
        let mut out = Observed::default();
        for t in history {
            let params = config.complete_params(&t.params);
            let Some(x) = space.encode(&params) else {
                continue;
            };
            let result = t.primary.filter(|p| p.is_finite()).map(|p| sign * p);
            let mut point = Point {
                node_id: t.node_id.clone(),
                params,
                x,
                y: None,
                failed: false,
            };
            match (t.state, result) {
                (TrialState::Completed, Some(y)) => {
                    point.y = Some(y);
                    out.completed.push(point);
                }
                (TrialState::Pending, _) => out.pending.push(point),
                _ => {
                    point.failed = true;
                    out.failed.push(point);
                }
            }
        }
        out
    }

    /// The completed point with the best result (earliest among equals).
    pub(super) fn best(&self) -> Option<&Point> {
        self.completed
            .iter()
            .fold(None, |best: Option<&Point>, p| match best {
                Some(b) if b.y <= p.y => Some(b),
                _ => Some(p),
            })
    }
}

/// A fitted model with what it was fitted on.
pub(crate) struct Model {
    /// The process.
    pub gp: Gp,
    /// The completed points it learned from (index into [`Observed::completed`]).
    pub used: Vec<usize>,
    /// How many completed results it learned from.
    pub results: usize,
    /// How many failures it learned from (as the worst result).
    pub failures: usize,
}

/// Fits the model to the completed and failed points (at most `max_points`: the best third and
/// then those nearest the best). None with fewer than two completed results.
pub(crate) fn fit(
    space: &Space,
    observed: &Observed,
    transform: Transform,
    max_points: usize,
    opts: &FitOptions,
) -> Option<Model> {
    let completed = &observed.completed;
    if completed.len() < 2 {
        return None;
    }
    let ys: Vec<f64> = completed.iter().filter_map(|p| p.y).collect();
    let worst = ys.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    // Completed points first, then failures (which count as the worst result).
    let mut chosen: Vec<(Vec<f64>, f64, Option<usize>)> = completed
        .iter()
        .enumerate()
        .map(|(i, p)| (p.x.clone(), p.y.unwrap_or(worst), Some(i)))
        .chain(observed.failed.iter().map(|p| (p.x.clone(), worst, None)))
        .collect();
    if chosen.len() > max_points {
        let best = observed.best().map(|p| p.x.clone()).unwrap_or_default();
        let mut order: Vec<usize> = (0..chosen.len()).collect();
        order.sort_by(|&a, &b| chosen[a].1.total_cmp(&chosen[b].1).then(a.cmp(&b)));
        let keep_best = max_points / 3;
        let mut keep: Vec<usize> = order[..keep_best].to_vec();
        let mut rest: Vec<usize> = order[keep_best..].to_vec();
        rest.sort_by(|&a, &b| {
            space
                .distance2(&chosen[a].0, &best)
                .total_cmp(&space.distance2(&chosen[b].0, &best))
                .then(a.cmp(&b))
        });
        keep.extend(rest.into_iter().take(max_points - keep_best));
        keep.sort_unstable();
        chosen = keep.into_iter().map(|i| chosen[i].clone()).collect();
    }
    let raw: Vec<f64> = chosen.iter().map(|c| c.1).collect();
    let y = transformed(&raw, transform);
    let failures = chosen.iter().filter(|c| c.2.is_none()).count();
    let used: Vec<usize> = chosen.iter().filter_map(|c| c.2).collect();
    let x: Vec<Vec<f64>> = chosen.into_iter().map(|c| c.0).collect();
    let cat = space.dims.iter().map(|d| d.is_categorical()).collect();
    let gp = Gp::fit(x, y, cat, opts)?;
    Some(Model {
        gp,
        results: used.len(),
        used,
        failures,
    })
}

/// The transformed, standardized targets.
fn transformed(raw: &[f64], transform: Transform) -> Vec<f64> {
    let n = raw.len();
    let values: Vec<f64> = match transform {
        Transform::Standardize => raw.to_vec(),
        Transform::Ranks => {
            let mut order: Vec<usize> = (0..n).collect();
            order.sort_by(|&a, &b| raw[a].total_cmp(&raw[b]));
            let mut ranks = vec![0.0; n];
            let mut i = 0;
            while i < n {
                let mut j = i;
                while j + 1 < n && raw[order[j + 1]] == raw[order[i]] {
                    j += 1;
                }
                let r = (i + j) as f64 / 2.0;
                for k in i..=j {
                    ranks[order[k]] = normal_quantile((r + 0.5) / n as f64);
                }
                i = j + 1;
            }
            ranks
        }
        Transform::Log => {
            let min = raw.iter().copied().fold(f64::INFINITY, f64::min);
            let mut sorted = raw.to_vec();
            sorted.sort_by(f64::total_cmp);
            let spread = sorted[n / 2] - min;
            let eps = if spread > 0.0 { spread * 0.01 } else { 1.0 };
            raw.iter().map(|v| (v - min + eps).ln()).collect()
        }
    };
    let mean = values.iter().sum::<f64>() / n as f64;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64;
    let sd = if var > 0.0 { var.sqrt() } else { 1.0 };
    values.iter().map(|v| (v - mean) / sd).collect()
}

/// The standard normal quantile (Acklam's rational approximation, relative error < 1.2e-9
/// after one Newton step is not needed here).
pub(crate) fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    let p = p.clamp(1e-12, 1.0 - 1e-12);
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < 0.02425 {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - 0.02425 {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}
