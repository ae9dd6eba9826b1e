//! Choosing points with the model: the expected improvement over the best result (on the log
//! scale, so far-off candidates still rank), maximised over random points of the space and
//! perturbations of the best points, then refined by coordinate moves (every other choice of an
//! unordered parameter, adjacent values of ordered ones, shrinking steps on numeric ones).
//!
//! A batch is chosen one point at a time: each chosen point, like each pending experiment, is
//! added to the model as if it had returned its predicted value ("kriging believer"), which
//! removes the model's uncertainty there, so the next point goes elsewhere.

use std::collections::HashSet;

use serde_json::{Map, Value};

use super::gp::Gp;
use super::space::Space;

/// How much effort goes into each choice.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Effort {
    /// Uniformly random candidates per round.
    pub random: usize,
    /// Perturbations of the best points per round.
    pub local: usize,
    /// Candidates refined by coordinate moves per choice.
    pub refined: usize,
}

/// A chosen point.
#[derive(Debug, Clone)]
pub(crate) struct Pick {
    /// Coordinates.
    pub x: Vec<f64>,
    /// Parameter set.
    pub params: Map<String, Value>,
    /// The model's probability that it beats the best result so far.
    pub improve_prob: f64,
    /// Whether the model is more uncertain here than it expects improvement (exploring).
    pub exploring: bool,
}

/// A candidate (snapped onto the space) with its score.
#[derive(Clone)]
struct Candidate {
    x: Vec<f64>,
    key: Vec<u64>,
    score: f64,
}

/// What [`choose`] needs besides the model.
pub(crate) struct Chooser<'a> {
    /// The space.
    pub space: &'a Space,
    /// Points to perturb, best first.
    pub incumbents: Vec<Vec<f64>>,
    /// Effort.
    pub effort: Effort,
    /// Points to keep away from by penalising the score near them (pending experiments), or
    /// None when they are in the model as fantasies instead.
    pub penalized: Option<Vec<Vec<f64>>>,
}

impl Chooser<'_> {
    /// Up to `count` untried points, best first; each chosen point is added to `tried` (keys
    /// of snapped points, [`Space::point_key`]) and to the model (at its predicted value).
    /// `best` is the best (lowest) predicted value of the results, in the model's units.
    pub(super) fn choose(
        &self,
        gp: &mut Gp,
        mut best: f64,
        count: usize,
        tried: &mut HashSet<Vec<u64>>,
        rng: &mut fastrand::Rng,
    ) -> Vec<Pick> {
        let mut pool = self.candidates(tried, rng);
        let mut picks = Vec::new();
        let mut avoid = self.penalized.clone();
        for round in 0..count {
            pool.retain(|c| !tried.contains(&c.key));
            if round == 0 {
                for c in &mut pool {
                    c.score = score(gp, &c.x, best, avoid.as_deref());
                }
                pool.sort_by(|a, b| b.score.total_cmp(&a.score));
            } else {
                self.rescore_top(gp, best, avoid.as_deref(), &mut pool);
            }
            let mut winner: Option<Candidate> = None;
            for start in pool.iter().take(self.effort.refined) {
                let c = self.refine(gp, best, avoid.as_deref(), start.clone(), tried);
                if winner.as_ref().is_none_or(|w| c.score > w.score) {
                    winner = Some(c);
                }
            }
            let Some(w) = winner else { break };
            let (mean, var) = gp.predict(&w.x);
            let sd = var.sqrt();
            let z = (best - mean) / sd;
            picks.push(Pick {
                improve_prob: normal_cdf(z),
                exploring: z < 0.0,
                params: self.space.decode(&w.x),
                x: w.x.clone(),
            });
            tried.insert(w.key);
            match avoid.as_mut() {
                Some(a) => a.push(w.x),
                None => {
                    gp.condition(w.x, mean);
                    best = best.min(mean);
                }
            }
        }
        picks
    }

    /// Brings the pool's `refined` best candidates up to date after a pick, rescoring as few
    /// as possible. A pick only lowers every score (it enters the model at its predicted mean,
    /// which keeps the mean and lowers the uncertainty; the best value can only fall; a penalty
    /// only subtracts), so the stale scores are upper bounds: candidates are rescored in order
    /// of their stale score until the `refined` best fresh scores are at least the next stale
    /// one. The result equals rescoring the whole pool (up to ties), at a fraction of the cost.
    fn rescore_top(&self, gp: &Gp, best: f64, avoid: Option<&[Vec<f64>]>, pool: &mut [Candidate]) {
        let want = self.effort.refined.max(1);
        // Fresh scores so far, best first (at most `want`).
        let mut top: Vec<f64> = Vec::with_capacity(want + 1);
        let mut i = 0;
        while i < pool.len() {
            if top.len() == want && top[want - 1] >= pool[i].score {
                break;
            }
            let s = score(gp, &pool[i].x, best, avoid);
            pool[i].score = s;
            let at = top.partition_point(|&t| t >= s);
            top.insert(at, s);
            top.truncate(want);
            i += 1;
        }
        pool.sort_by(|a, b| b.score.total_cmp(&a.score));
    }

    /// The round's candidate pool: random points and perturbations of the incumbents, untried
    /// and distinct.
    fn candidates(&self, tried: &HashSet<Vec<u64>>, rng: &mut fastrand::Rng) -> Vec<Candidate> {
        let space = self.space;
        let d = space.len();
        let mut raw: Vec<Vec<f64>> = (0..self.effort.random)
            .map(|_| space.random_point(rng))
            .collect();
        if !self.incumbents.is_empty() {
            let k = self.incumbents.len();
            let p = (2.0 / d as f64).min(1.0);
            for _ in 0..self.effort.local {
                // Centres weighted towards the best; step sizes from 0.005 to 0.2 of a range.
                let u = rng.f64();
                let centre = &self.incumbents[((u * u) * k as f64) as usize % k];
                let sigma = 10f64.powf(-2.3 + 1.6 * rng.f64());
                let forced = rng.usize(..d);
                let x: Vec<f64> = space
                    .dims
                    .iter()
                    .enumerate()
                    .map(|(i, dim)| {
                        let c = centre[i];
                        if i != forced && rng.f64() >= p {
                            return c;
                        }
                        let n = dim.categories();
                        if n > 1 {
                            let other = rng.usize(..n - 1);
                            (if other as f64 >= c { other + 1 } else { other }) as f64
                        } else if n == 1 {
                            c
                        } else {
                            let step = (sigma * gaussian(rng)).abs().max(dim.unit());
                            let sign = if rng.bool() { 1.0 } else { -1.0 };
                            (c + sign * step).clamp(0.0, 1.0)
                        }
                    })
                    .collect();
                raw.push(x);
            }
        }
        let mut seen = HashSet::new();
        raw.into_iter()
            .filter_map(|x| {
                let x = space.snap_coords(&x);
                let key = Space::point_key(&x);
                (!tried.contains(&key) && seen.insert(key.clone())).then_some(Candidate {
                    x,
                    key,
                    score: f64::NEG_INFINITY,
                })
            })
            .collect()
    }

    /// Coordinate ascent on the score from `start` over untried points: all other choices of
    /// unordered parameters, ± one value of ordered ones and ints, shrinking steps on floats.
    fn refine(
        &self,
        gp: &Gp,
        best: f64,
        avoid: Option<&[Vec<f64>]>,
        start: Candidate,
        tried: &HashSet<Vec<u64>>,
    ) -> Candidate {
        const STEPS: [f64; 7] = [0.1, 0.04, 0.016, 0.006, 0.0025, 0.001, 0.0004];
        let space = self.space;
        let mut cur = start;
        let mut evals = 0;
        let budget = 60 * space.len().max(1);
        for (level, &step) in STEPS.iter().enumerate() {
            for _pass in 0..2 {
                let mut improved = false;
                for (i, dim) in space.dims.iter().enumerate() {
                    let moves: Vec<f64> = match dim.categories() {
                        0 => {
                            let s = step.max(dim.unit());
                            vec![cur.x[i] + s, cur.x[i] - s]
                        }
                        // Every other choice, once (the first level).
                        n if level == 0 => (0..n).map(|c| c as f64).collect(),
                        _ => Vec::new(),
                    };
                    for v in moves {
                        if evals >= budget {
                            return cur;
                        }
                        let mut x = cur.x.clone();
                        x[i] = if dim.categories() > 0 {
                            v
                        } else {
                            v.clamp(0.0, 1.0)
                        };
                        let x = space.snap_coords(&x);
                        if x == cur.x {
                            continue;
                        }
                        let key = Space::point_key(&x);
                        if tried.contains(&key) {
                            continue;
                        }
                        evals += 1;
                        let s = score(gp, &x, best, avoid);
                        if s > cur.score + 1e-12 {
                            cur = Candidate { x, key, score: s };
                            improved = true;
                        }
                    }
                }
                if !improved {
                    break;
                }
            }
        }
        cur
    }
}

/// Log expected improvement below `best` at `x`, lowered near the points to `avoid` (by
/// `ln(1 − correlation)` each).
fn score(gp: &Gp, x: &[f64], best: f64, avoid: Option<&[Vec<f64>]>) -> f64 {
    let (mean, var) = gp.predict(x);
    let sd = var.sqrt();
    let penalty: f64 = avoid.map_or(0.0, |points| {
        points
            .iter()
            .map(|p| (1.0 - gp.correlation(x, p)).max(1e-12).ln())
            .sum()
    });
    sd.ln() + log_h((best - mean) / sd) + penalty
}

/// `ln(z Φ(z) + φ(z))`, accurate far into the lower tail.
fn log_h(z: f64) -> f64 {
    const LN_SQRT_2PI: f64 = 0.918_938_533_204_672_8;
    if z > -3.0 {
        (z * normal_cdf(z) + normal_pdf(z)).max(1e-300).ln()
    } else {
        // h(z) = φ(z) (1 − t R(t)) with t = −z and R the Mills ratio (continued fraction).
        let t = -z;
        let mut f = t;
        for k in (1..=60).rev() {
            f = t + k as f64 / f;
        }
        let one_minus = 1.0 - t / f;
        -0.5 * z * z - LN_SQRT_2PI + one_minus.max(1e-300).ln()
    }
}

fn normal_pdf(z: f64) -> f64 {
    (-0.5 * z * z).exp() / (2.0 * std::f64::consts::PI).sqrt()
}

/// Φ(z).
pub(crate) fn normal_cdf(z: f64) -> f64 {
    0.5 * erfc(-z / std::f64::consts::SQRT_2)
}

/// The complementary error function (Numerical Recipes' Chebyshev fit, relative error below
/// 1.2e-7 everywhere).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t
        * (-z * z - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87
                                        + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    if x >= 0.0 { r } else { 2.0 - r }
}

/// A standard normal draw (Box–Muller).
fn gaussian(rng: &mut fastrand::Rng) -> f64 {
    let u1 = 1.0 - rng.f64();
    let u2 = rng.f64();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

#[cfg(test)]
mod tests {
    use super::super::gp::FitOptions;
    use super::*;
    use crate::config::{Choices, NumType, Param, Range, Scale, SearchSpace};

    /// Refinement treats every other choice of an unordered parameter as a neighbour: from
    /// choice 0 it reaches choice 4 although choices 1–3 (adjacent in the list) are worse.
    #[test]
    fn refinement_tries_every_other_choice() {
        let choices: Vec<Value> = (0..6).map(|i| Value::from(format!("c{i}"))).collect();
        let config_space = SearchSpace::new(vec![
            ("kind".into(), Param::Choices(Choices::new(choices))),
            (
                "x".into(),
                Param::Range(Range {
                    min: 0.0,
                    max: 1.0,
                    scale: Scale::Linear,
                    kind: NumType::Float,
                }),
            ),
        ]);
        let mut config: crate::config::Config = serde_json::from_value(serde_json::json!({
            "objective": { "metric": "m", "direction": "minimize" },
            "job": { "command": "true" },
        }))
        .unwrap();
        config.search_space = config_space;
        let space = Space::new(&config);
        assert!(space.dims[0].is_categorical());
        // Lower is better: choice 4 is best, 1–3 are bad, 0 and 5 in between.
        let value = [1.0, 3.0, 3.0, 3.0, -2.0, 1.0];
        let mut x = Vec::new();
        let mut y = Vec::new();
        for (c, v) in value.iter().enumerate() {
            for &u in &[0.2, 0.8] {
                x.push(vec![c as f64, u]);
                y.push(v + (u - 0.5) * 0.1);
            }
        }
        let gp = Gp::fit(x, y, vec![true, false], &FitOptions::default()).unwrap();
        let chooser = Chooser {
            space: &space,
            incumbents: Vec::new(),
            effort: Effort {
                random: 0,
                local: 0,
                refined: 1,
            },
            penalized: None,
        };
        let start = vec![0.0, 0.5];
        let best = -2.0;
        let cand = Candidate {
            key: Space::point_key(&start),
            score: score(&gp, &start, best, None),
            x: start,
        };
        let refined = chooser.refine(&gp, best, None, cand, &HashSet::new());
        assert_eq!(refined.x[0], 4.0, "{:?}", refined.x);
    }

    /// After a pick enters the model, rescoring only the pool's top (stale scores as upper
    /// bounds) finds the same best candidates as rescoring everything, with fewer evaluations.
    #[test]
    fn lazy_rescoring_matches_full_rescoring() {
        let text = serde_json::json!({
            "objective": { "metric": "m", "direction": "minimize" },
            "job": { "command": "true" },
            "search_space": {
                "a": { "min": 0.0, "max": 1.0 },
                "b": { "min": 0.0, "max": 1.0 },
                "c": { "min": 0.0, "max": 1.0 },
            },
            "baseline": { "a": 0.5, "b": 0.5, "c": 0.5 },
        });
        let config = crate::config::Config::from_json_str(
            &text.to_string(),
            std::path::Path::new("config.json"),
        )
        .unwrap();
        let space = Space::new(&config);
        let mut rng = fastrand::Rng::with_seed(3);
        let x: Vec<Vec<f64>> = (0..20).map(|_| space.random_point(&mut rng)).collect();
        let y: Vec<f64> = x
            .iter()
            .map(|p| (p[0] - 0.3).powi(2) + (p[1] * 5.0).sin() + p[2])
            .collect();
        let mut gp = Gp::fit(x, y, vec![false; 3], &FitOptions::default()).unwrap();
        let chooser = Chooser {
            space: &space,
            incumbents: Vec::new(),
            effort: Effort {
                random: 400,
                local: 0,
                refined: 3,
            },
            penalized: None,
        };
        let mut pool = chooser.candidates(&HashSet::new(), &mut rng);
        let best = -1.0;
        for c in &mut pool {
            c.score = score(&gp, &c.x, best, None);
        }
        pool.sort_by(|a, b| b.score.total_cmp(&a.score));
        let pick = pool.remove(0).x;
        let mean = gp.predict(&pick).0;
        gp.condition(pick, mean);
        let mut full = pool.clone();
        for c in &mut full {
            c.score = score(&gp, &c.x, best, None);
        }
        full.sort_by(|a, b| b.score.total_cmp(&a.score));
        chooser.rescore_top(&gp, best, None, &mut pool);
        for (lazy, exact) in pool.iter().zip(&full).take(3) {
            assert_eq!(lazy.key, exact.key);
            assert!((lazy.score - exact.score).abs() < 1e-12);
        }
        let stale = pool
            .iter()
            .filter(|c| (c.score - score(&gp, &c.x, best, None)).abs() > 1e-12)
            .count();
        assert!(
            stale > pool.len() / 2,
            "only {stale} of {} left stale",
            pool.len()
        );
    }

    #[test]
    fn log_h_is_continuous_and_matches_the_direct_formula() {
        for z in [-2.9, -2.0, -1.0, 0.0, 1.5, 4.0] {
            let direct = (z * normal_cdf(z) + normal_pdf(z)).ln();
            assert!((log_h(z) - direct).abs() < 1e-5, "z = {z}");
        }
        let (a, b) = (log_h(-3.0 + 1e-9), log_h(-3.0 - 1e-9));
        assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        // Far in the tail: h(z) ≈ φ(z)/z².
        let z = -30.0f64;
        let approx = -0.5 * z * z - 0.918_938_533_204_672_8 - 2.0 * (-z).ln();
        assert!((log_h(z) - approx).abs() < 0.01);
        assert!(log_h(-40.0) < log_h(-39.0));
    }
}
