//! Statistics of noisy measurements (see `docs/noise.md`): the aggregate and spread of a node's
//! repeated runs, the run's noise floor (the pooled relative noise of one measurement), the
//! rule that decides whether a result that beats the best must be confirmed first, and the
//! confidence of an improvement shown in the report.
//!
//! Everything here is a pure function of numbers; the workflow calls it under the ledger's
//! lock and the views call it on the files.

use crate::config::{Aggregate, Confirm, Direction, Objective};
use crate::model::{ConfirmReason, NoiseFloor, Spread};

/// The finite values of `values`, sorted ascending.
fn sorted(values: &[f64]) -> Vec<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    v
}

/// The median of sorted values (mean of the two middle ones for an even count).
fn median_sorted(v: &[f64]) -> Option<f64> {
    match v.len() {
        0 => None,
        n if n % 2 == 1 => Some(v[n / 2]),
        n => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

/// The arithmetic mean of `values`, `None` when empty.
pub fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

/// The sample standard deviation (n − 1 in the denominator), `None` below two values.
pub fn stdev(values: &[f64]) -> Option<f64> {
    if values.len() < 2 {
        return None;
    }
    let m = mean(values)?;
    let ss: f64 = values.iter().map(|x| (x - m) * (x - m)).sum();
    Some((ss / (values.len() - 1) as f64).sqrt())
}

/// The aggregate of a node's runs (`objective.aggregate`) over its finite values; `None`
/// when there is none.
pub fn aggregate(kind: Aggregate, values: &[f64]) -> Option<f64> {
    let v = sorted(values);
    match kind {
        Aggregate::Median => median_sorted(&v),
        Aggregate::Mean => mean(&v),
        Aggregate::Min => v.first().copied(),
        Aggregate::Max => v.last().copied(),
    }
}

/// The spread of `values` (their finite ones), `None` below two values.
pub fn spread(values: &[f64]) -> Option<Spread> {
    let v = sorted(values);
    if v.len() < 2 {
        return None;
    }
    let median = median_sorted(&v)?;
    let deviations = sorted(&v.iter().map(|x| (x - median).abs()).collect::<Vec<_>>());
    Some(Spread {
        n: v.len() as u32,
        min: v[0],
        max: v[v.len() - 1],
        mean: mean(&v)?,
        median,
        stdev: stdev(&v)?,
        mad: median_sorted(&deviations)?,
    })
}

/// The relative variance of one node's values, (s/|mean|)², with its degrees of freedom
/// (n − 1); `None` below two values or with a mean of 0.
pub fn relative_variance(values: &[f64]) -> Option<(f64, u32)> {
    let v = sorted(values);
    let m = mean(&v)?;
    let s = stdev(&v)?;
    (m != 0.0).then(|| ((s / m.abs()).powi(2), (v.len() - 1) as u32))
}

/// The noise floor with one more node's repeats pooled in: the degrees-of-freedom-weighted
/// mean of the nodes' relative variances, as a coefficient of variation. A node measured
/// once (or with a mean of 0) changes nothing.
pub fn pool(floor: Option<NoiseFloor>, values: &[f64]) -> Option<NoiseFloor> {
    let Some((var, dof)) = relative_variance(values) else {
        return floor;
    };
    let (sum, total, nodes) = match floor {
        Some(f) => (f.relative * f.relative * f64::from(f.dof), f.dof, f.nodes),
        None => (0.0, 0, 0),
    };
    let total = total + dof;
    Some(NoiseFloor {
        relative: ((sum + var * f64::from(dof)) / f64::from(total)).sqrt(),
        dof: total,
        nodes: nodes + 1,
    })
}

/// The improvement of `value` over `best` relative to |best|, positive when better for
/// `direction` (`None` when `best` is 0).
pub fn relative_gain(direction: Direction, value: f64, best: f64) -> Option<f64> {
    if best == 0.0 || !best.is_finite() || !value.is_finite() {
        return None;
    }
    let d = (value - best) / best.abs();
    Some(match direction {
        Direction::Maximize => d,
        Direction::Minimize => -d,
    })
}

/// The relative standard error of the difference between a value aggregating `n` runs and
/// one aggregating `best_n`, with relative noise `noise` per run: noise·√(1/n + 1/best_n).
pub fn difference_error(noise: f64, n: u32, best_n: u32) -> f64 {
    noise * (1.0 / f64::from(n.max(1)) + 1.0 / f64::from(best_n.max(1))).sqrt()
}

/// What a result that reached the judging is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// A new best, counted now.
    Improved,
    /// Not a new best.
    NotImproved,
    /// It beats the best, but must be re-run first (`objective.confirm`).
    Confirm(ConfirmReason),
}

/// What the first judging of a result needs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    /// The node's value (aggregate of its runs).
    pub value: f64,
    /// How many runs it aggregates.
    pub n: u32,
    /// The best value so far.
    pub best: Option<f64>,
    /// How many runs the best aggregates.
    pub best_n: u32,
    /// The relative noise floor, when known.
    pub noise: Option<f64>,
}

/// Judges a result the first time: not an improvement (it does not beat the best by
/// `min_improvement`), an improvement (the first result, `confirm = off`, or with `auto` a
/// margin of at least `noise_k` standard errors of the difference), or one to confirm.
pub fn judge(objective: &Objective, c: Candidate) -> Verdict {
    if !objective.improves(c.value, c.best, c.noise) {
        return Verdict::NotImproved;
    }
    let Some(best) = c.best else {
        return Verdict::Improved;
    };
    match objective.confirm {
        Confirm::Off => Verdict::Improved,
        Confirm::Always => Verdict::Confirm(ConfirmReason::Always),
        Confirm::Auto => {
            let Some(noise) = c.noise else {
                return Verdict::Confirm(ConfirmReason::NoiseUnknown);
            };
            let gain = relative_gain(objective.direction, c.value, best).unwrap_or(f64::INFINITY);
            if gain < objective.noise_k * difference_error(noise, c.n, c.best_n) {
                Verdict::Confirm(ConfirmReason::WithinNoise)
            } else {
                Verdict::Improved
            }
        }
    }
}

/// Judges a result after its confirmation runs: the aggregate of all its runs must still
/// improve on the best (the best now: it may have moved meanwhile) by `min_improvement`.
pub fn judge_confirmed(
    objective: &Objective,
    value: f64,
    best: Option<f64>,
    noise: Option<f64>,
) -> bool {
    objective.improves(value, best, noise)
}

/// How sure an improvement is (the report's headline).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Confidence {
    /// The relative gain of the best over the baseline (positive: better).
    pub gain: f64,
    /// The gain in units of the noise floor, when known.
    pub in_noise_floors: Option<f64>,
    /// Welch's 95 % interval of the relative gain over the raw runs (difference of the means
    /// over the baseline's mean, signed like `gain`), when both have at least two runs.
    pub interval: Option<(f64, f64)>,
}

/// The confidence of the improvement of `best` (its value and raw runs) over `baseline`.
pub fn confidence(
    direction: Direction,
    best: (f64, &[f64]),
    baseline: (f64, &[f64]),
    noise: Option<f64>,
) -> Option<Confidence> {
    let gain = relative_gain(direction, best.0, baseline.0)?;
    let in_noise_floors = noise.filter(|n| *n > 0.0).map(|n| gain / n);
    Some(Confidence {
        gain,
        in_noise_floors,
        interval: welch_interval(direction, best.1, baseline.1),
    })
}

/// Welch's 95 % interval of (mean(a) − mean(b)) / |mean(b)|, signed for `direction`.
pub fn welch_interval(direction: Direction, a: &[f64], b: &[f64]) -> Option<(f64, f64)> {
    let (a, b) = (sorted(a), sorted(b));
    if a.len() < 2 || b.len() < 2 {
        return None;
    }
    let (ma, mb) = (mean(&a)?, mean(&b)?);
    if mb == 0.0 {
        return None;
    }
    let (va, vb) = (
        stdev(&a)?.powi(2) / a.len() as f64,
        stdev(&b)?.powi(2) / b.len() as f64,
    );
    let se = (va + vb).sqrt();
    let df = if se == 0.0 {
        f64::INFINITY
    } else {
        (va + vb).powi(2) / (va * va / (a.len() - 1) as f64 + vb * vb / (b.len() - 1) as f64)
    };
    let half = t_975(df) * se;
    let diff = ma - mb;
    let (lo, hi) = ((diff - half) / mb.abs(), (diff + half) / mb.abs());
    Some(match direction {
        Direction::Maximize => (lo, hi),
        Direction::Minimize => (-hi, -lo),
    })
}

/// The 97.5 % quantile of Student's t with `df` degrees of freedom: table values at df 1–5
/// (linear in between), the Cornish–Fisher expansion above (error below 0.2 %).
pub fn t_975(df: f64) -> f64 {
    const Z: f64 = 1.959_963_984_540_054;
    if !df.is_finite() {
        return Z;
    }
    let df = df.max(1.0);
    if df < 5.0 {
        let table = [
            12.706_204_736,
            4.302_652_730,
            3.182_446_305,
            2.776_445_105,
            2.570_581_836,
        ];
        let i = (df.floor() as usize - 1).min(3);
        let frac = df - (i + 1) as f64;
        return table[i] + (table[i + 1] - table[i]) * frac;
    }
    let z3 = Z.powi(3);
    let z5 = Z.powi(5);
    let z7 = Z.powi(7);
    Z + (z3 + Z) / (4.0 * df)
        + (5.0 * z5 + 16.0 * z3 + 3.0 * Z) / (96.0 * df * df)
        + (3.0 * z7 + 19.0 * z5 + 17.0 * z3 - 15.0 * Z) / (384.0 * df.powi(3))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, MinImprovement};
    use std::path::Path;

    fn objective(confirm: &str, min_improvement: serde_json::Value) -> Objective {
        let cfg = serde_json::json!({
            "objective": { "metric": "m", "direction": "maximize", "confirm": confirm,
                           "min_improvement": min_improvement },
            "job": { "command": "true" },
        });
        Config::from_json_str(&cfg.to_string(), Path::new("t"))
            .expect("config")
            .objective
    }

    #[test]
    fn aggregates_and_spread() {
        let v = [3.0, 1.0, 2.0, 10.0];
        assert_eq!(aggregate(Aggregate::Median, &v), Some(2.5));
        assert_eq!(aggregate(Aggregate::Mean, &v), Some(4.0));
        assert_eq!(aggregate(Aggregate::Min, &v), Some(1.0));
        assert_eq!(aggregate(Aggregate::Max, &v), Some(10.0));
        assert_eq!(aggregate(Aggregate::Median, &[]), None);
        let s = spread(&v).unwrap();
        assert_eq!(
            (s.n, s.min, s.max, s.median, s.mean),
            (4, 1.0, 10.0, 2.5, 4.0)
        );
        // Deviations from 2.5: 0.5 1.5 0.5 7.5 → median 1.0.
        assert_eq!(s.mad, 1.0);
        assert!((s.stdev - (50.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert_eq!(spread(&[1.0]), None);
        assert_eq!(
            spread(&[1.0, f64::NAN]),
            None,
            "non-finite values are ignored"
        );
    }

    #[test]
    fn pooled_noise_floor_weights_by_degrees_of_freedom() {
        // Node A: cv 0.1 over 3 runs (mean 10, s 1); node B: cv 0.2 over 2 runs.
        let a = [9.0, 10.0, 11.0];
        let b = [100.0 - 20.0 / 2f64.sqrt(), 100.0 + 20.0 / 2f64.sqrt()];
        let f = pool(None, &a).unwrap();
        assert!((f.relative - 0.1).abs() < 1e-12);
        assert_eq!((f.dof, f.nodes), (2, 1));
        let f = pool(Some(f), &b).unwrap();
        let want = ((2.0 * 0.01 + 1.0 * 0.04) / 3.0f64).sqrt();
        assert!((f.relative - want).abs() < 1e-12, "{f:?}");
        assert_eq!((f.dof, f.nodes), (3, 2));
        assert_eq!(pool(Some(f), &[5.0]), Some(f), "one run adds nothing");
        assert_eq!(pool(None, &[0.0, 0.0]), None, "a zero mean adds nothing");
    }

    #[test]
    fn judging_confirms_wins_within_the_noise() {
        let o = objective("auto", serde_json::json!(0.01));
        let c = |value, noise| Candidate {
            value,
            n: 1,
            best: Some(100.0),
            best_n: 3,
            noise,
        };
        assert_eq!(judge(&o, c(100.5, Some(0.05))), Verdict::NotImproved);
        // 2 × 0.05 × √(1 + 1/3) ≈ 11.5 %.
        assert_eq!(
            judge(&o, c(110.0, Some(0.05))),
            Verdict::Confirm(ConfirmReason::WithinNoise)
        );
        assert_eq!(judge(&o, c(112.0, Some(0.05))), Verdict::Improved);
        assert_eq!(
            judge(&o, c(150.0, None)),
            Verdict::Confirm(ConfirmReason::NoiseUnknown)
        );
        let first = Candidate {
            best: None,
            ..c(1.0, None)
        };
        assert_eq!(judge(&o, first), Verdict::Improved, "the first result");
        let always = objective("always", serde_json::json!(0.01));
        assert_eq!(
            judge(&always, c(500.0, Some(0.01))),
            Verdict::Confirm(ConfirmReason::Always)
        );
        let off = objective("off", serde_json::json!(0.01));
        assert_eq!(judge(&off, c(101.5, Some(0.05))), Verdict::Improved);
    }

    #[test]
    fn noise_margin_needs_k_noise_floors() {
        let o = objective("off", serde_json::json!("noise"));
        assert_eq!(o.min_improvement, MinImprovement::Noise);
        assert!((o.margin(Some(0.05)) - 0.1).abs() < 1e-12);
        assert!(!o.improves(109.0, Some(100.0), Some(0.05)));
        assert!(o.improves(111.0, Some(100.0), Some(0.05)));
        // Unknown floor: any gain counts (and `auto` would confirm it).
        assert!(o.improves(100.1, Some(100.0), None));
    }

    #[test]
    fn minimize_gains_and_intervals_are_signed_for_the_direction() {
        assert_eq!(relative_gain(Direction::Minimize, 80.0, 100.0), Some(0.2));
        assert_eq!(relative_gain(Direction::Maximize, 80.0, 100.0), Some(-0.2));
        let (lo, hi) = welch_interval(
            Direction::Minimize,
            &[79.0, 80.0, 81.0],
            &[99.0, 100.0, 101.0],
        )
        .unwrap();
        assert!(lo > 0.15 && hi < 0.25 && lo < 0.2 && hi > 0.2, "{lo} {hi}");
    }

    #[test]
    fn t_quantiles_match_tables() {
        for (df, t) in [
            (1.0, 12.706),
            (2.0, 4.303),
            (3.0, 3.182),
            (4.0, 2.776),
            (5.0, 2.571),
            (10.0, 2.228),
            (30.0, 2.042),
        ] {
            assert!((t_975(df) - t).abs() / t < 3e-3, "df {df}: {}", t_975(df));
        }
        assert!((t_975(f64::INFINITY) - 1.96).abs() < 1e-3);
    }
}
