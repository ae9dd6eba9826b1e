//! Parameter importance: for each parameter, the share of the primary metric's variance that
//! the parameter's value explains (the correlation ratio η², "per-parameter variance of
//! means").
//!
//! Method, over the completed experiments with a finite primary value:
//! 1. Bin the parameter's values: a categorical parameter gets one bin per category; a numeric
//!    one up to [`MAX_BINS`] bins of (nearly) equal counts by rank, equal values always in the
//!    same bin. Experiments without the parameter are left out for it.
//! 2. η² = Σ_bins n_b · (mean_b − mean)² / Σ_all (y − mean)²: 0 when every bin has the same mean,
//!    1 when the metric is constant within each bin.
//!
//! It sees one parameter at a time and is biased upwards with few experiments per bin; the
//! search is adaptive, so parameters changed together are confounded. `docs/views.md` says how
//! to read it.

use std::fmt::Write as _;

use autoresearch_adapters::model::NodeStatus;

use super::fmt_value;
use super::load::RunView;
use super::param_axes::{AxisKind, param_axes};
use super::summary::{md_cell, md_code};

/// Most bins of a numeric parameter.
pub const MAX_BINS: usize = 5;
/// Fewest experiments (with the parameter and a primary value) for a share to be computed.
pub const MIN_SAMPLES: usize = 4;

/// The importance of one parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct Importance {
    /// The parameter.
    pub name: String,
    /// Share of the primary metric's variance explained by the bins, in `0..=1`; `None` when
    /// there are fewer than [`MIN_SAMPLES`] experiments, a single bin, or no variance at all.
    pub share: Option<f64>,
    /// Experiments used.
    pub samples: usize,
    /// Number of bins.
    pub bins: usize,
    /// The bin with the best mean (per the objective's direction): its label and mean.
    pub best_bin: Option<(String, f64)>,
}

/// One bin: a label and the metric values in it.
struct Bin {
    label: String,
    values: Vec<f64>,
}

/// The importance of every parameter of `view`, most important first (parameters without a
/// share last, in parameter order).
pub fn importance(view: &RunView) -> Vec<Importance> {
    let mut out: Vec<Importance> = param_axes(view)
        .into_iter()
        .map(|axis| {
            // (position on the axis, metric value) of completed experiments.
            let mut points: Vec<(f64, f64)> = Vec::new();
            for (i, n) in view.nodes.iter().enumerate() {
                if n.status != NodeStatus::Completed {
                    continue;
                }
                let (Some(y), Some(v)) =
                    (view.primary(i), n.params().and_then(|p| p.get(&axis.name)))
                else {
                    continue;
                };
                if let Some(x) = axis.position(v) {
                    points.push((x, y));
                }
            }
            let bins = match &axis.kind {
                AxisKind::Categorical(cats) => categorical_bins(&points, cats),
                AxisKind::Numeric { .. } => numeric_bins(points.clone()),
            };
            let share = eta_squared(&bins).filter(|_| points.len() >= MIN_SAMPLES);
            let best_bin = bins
                .iter()
                .filter(|b| !b.values.is_empty())
                .map(|b| (b.label.clone(), mean(&b.values)))
                .reduce(|a, b| {
                    if view.direction.is_better(b.1, a.1) {
                        b
                    } else {
                        a
                    }
                });
            Importance {
                name: axis.name,
                share,
                samples: points.len(),
                bins: bins.len(),
                best_bin,
            }
        })
        .collect();
    out.sort_by(|a, b| match (a.share, b.share) {
        (Some(x), Some(y)) => y.total_cmp(&x),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    });
    out
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

fn categorical_bins(points: &[(f64, f64)], cats: &[String]) -> Vec<Bin> {
    let mut bins: Vec<Bin> = cats
        .iter()
        .map(|c| Bin {
            label: c.clone(),
            values: Vec::new(),
        })
        .collect();
    for &(x, y) in points {
        if let Some(b) = bins.get_mut(x as usize) {
            b.values.push(y);
        }
    }
    bins.retain(|b| !b.values.is_empty());
    bins
}

/// Up to [`MAX_BINS`] bins of nearly equal counts by rank; equal values share a bin (a group
/// of equal values goes to the bin where its first rank falls).
fn numeric_bins(mut points: Vec<(f64, f64)>) -> Vec<Bin> {
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    let n = points.len();
    let mut bins: Vec<(f64, f64, Vec<f64>)> = Vec::new(); // (lo, hi, values)
    let mut bin_of_last: Option<usize> = None;
    for (rank, &(x, y)) in points.iter().enumerate() {
        let same_as_previous = rank > 0 && points[rank - 1].0 == x;
        let b = match (same_as_previous, bin_of_last) {
            (true, Some(b)) => b,
            _ => rank * MAX_BINS / n.max(1),
        };
        if bin_of_last != Some(b) {
            bins.push((x, x, Vec::new()));
            bin_of_last = Some(b);
        }
        if let Some(last) = bins.last_mut() {
            last.1 = x;
            last.2.push(y);
        }
    }
    bins.into_iter()
        .map(|(lo, hi, values)| Bin {
            label: if lo == hi {
                fmt_value(lo)
            } else {
                format!("{}–{}", fmt_value(lo), fmt_value(hi))
            },
            values,
        })
        .collect()
}

/// Between-bin sum of squares over the total sum of squares; `None` with fewer than two bins
/// or no variance.
fn eta_squared(bins: &[Bin]) -> Option<f64> {
    if bins.len() < 2 {
        return None;
    }
    let all: Vec<f64> = bins.iter().flat_map(|b| b.values.iter().copied()).collect();
    let m = mean(&all);
    let total: f64 = all.iter().map(|y| (y - m).powi(2)).sum();
    if total <= 0.0 || !total.is_finite() {
        return None;
    }
    let between: f64 = bins
        .iter()
        .map(|b| b.values.len() as f64 * (mean(&b.values) - m).powi(2))
        .sum();
    Some((between / total).clamp(0.0, 1.0))
}

/// Writes the "Parameter importance" markdown section body (a table, or a sentence saying why
/// there is none) into `out`.
pub fn write_importance(view: &RunView, out: &mut String) {
    let rows = importance(view);
    if rows.is_empty() {
        out.push_str("No parameters.\n");
        return;
    }
    if rows.iter().all(|r| r.share.is_none()) {
        let _ = writeln!(
            out,
            "Not enough completed experiments yet (at least {MIN_SAMPLES} with two or more \
             different values of a parameter)."
        );
        return;
    }
    let _ = writeln!(
        out,
        "Share of the variance of {} explained by each parameter's value (η², one parameter at \
         a time; see docs/views.md for what it can and cannot tell).\n",
        md_code(&view.metric)
    );
    out.push_str("| parameter | share | experiments | bins | best bin (mean) |\n");
    out.push_str("|---|---:|---:|---:|---|\n");
    for r in rows {
        let share = r
            .share
            .map(|s| format!("{:.0} %", s * 100.0))
            .unwrap_or_else(|| "–".to_owned());
        let best = r
            .best_bin
            .map(|(label, m)| format!("{} ({})", md_cell(&label), fmt_value(m)))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "| {} | {share} | {} | {} | {best} |",
            md_code(&r.name),
            r.samples,
            r.bins
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bin(values: &[f64]) -> Bin {
        Bin {
            label: String::new(),
            values: values.to_vec(),
        }
    }

    #[test]
    fn eta_squared_is_one_when_bins_explain_everything_and_zero_when_nothing() {
        assert_eq!(
            eta_squared(&[bin(&[1.0, 1.0]), bin(&[3.0, 3.0])]),
            Some(1.0)
        );
        assert_eq!(
            eta_squared(&[bin(&[1.0, 3.0]), bin(&[3.0, 1.0])]),
            Some(0.0)
        );
        assert_eq!(eta_squared(&[bin(&[1.0, 3.0])]), None);
        assert_eq!(eta_squared(&[bin(&[2.0]), bin(&[2.0])]), None);
        // Between 0 and 1 otherwise: means 1.5 and 3.5 around 2.5, total 2·(1+0.25·... )
        let e = eta_squared(&[bin(&[1.0, 2.0]), bin(&[3.0, 4.0])]).unwrap();
        assert!((e - 0.8).abs() < 1e-12, "{e}");
    }

    #[test]
    fn numeric_bins_keep_equal_values_together() {
        let pts: Vec<(f64, f64)> = [1.0, 1.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]
            .iter()
            .map(|&x| (x, x))
            .collect();
        let bins = numeric_bins(pts);
        assert!(bins.len() <= MAX_BINS);
        assert_eq!(bins.iter().map(|b| b.values.len()).sum::<usize>(), 10);
        assert_eq!(bins[0].label, "1");
        assert_eq!(bins[0].values.len(), 3);
    }
}
