//! The parameters of a run as axes for the views: their order (the configuration's search
//! space in declaration order, then any other parameter found in a node spec, by name) and how
//! each one is placed on an axis (numbers, linear or log, or categories as positions).
//!
//! Used by the table's per-parameter columns, `params.png`, `parallel.png` and the
//! parameter-importance table, so they all agree on order and kind.

use std::collections::BTreeSet;

use autoresearch_adapters::config::{Param, Scale};
use autoresearch_adapters::workflow::nodes::plain;
use serde_json::Value;

use super::load::RunView;

/// How a parameter's values are placed on an axis.
#[derive(Debug, Clone, PartialEq)]
pub enum AxisKind {
    /// Numbers on a linear or logarithmic scale, between `min` and `max` (the configured range,
    /// widened to every value seen).
    Numeric {
        /// Whether the range is log-scaled (`"scale": "log"`); then `min > 0`.
        log: bool,
        /// Smallest value on the axis.
        min: f64,
        /// Largest value on the axis.
        max: f64,
    },
    /// Categories at positions `0, 1, …` in this order: the configured choices, then any other
    /// value seen, in order of first appearance (as plain text).
    Categorical(Vec<String>),
}

/// One parameter as an axis.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamAxis {
    /// The parameter name.
    pub name: String,
    /// How its values are placed.
    pub kind: AxisKind,
}

impl ParamAxis {
    /// Where `value` goes on this axis: the number itself (numeric axes; `None` for a value
    /// that is not a finite number, or not positive on a log axis) or the category's position.
    pub fn position(&self, value: &Value) -> Option<f64> {
        match &self.kind {
            AxisKind::Numeric { log, .. } => {
                let x = value.as_f64().filter(|x| x.is_finite())?;
                (!*log || x > 0.0).then_some(x)
            }
            AxisKind::Categorical(cats) => {
                let text = plain(value);
                cats.iter().position(|c| *c == text).map(|p| p as f64)
            }
        }
    }

    /// `position` mapped to `0..=1` along the axis (log axes by the logarithm; a one-value axis
    /// gives 0.5).
    pub fn unit(&self, position: f64) -> f64 {
        let (lo, hi, x) = match &self.kind {
            AxisKind::Numeric {
                log: true,
                min,
                max,
            } => (min.ln(), max.ln(), position.ln()),
            AxisKind::Numeric { min, max, .. } => (*min, *max, position),
            AxisKind::Categorical(cats) => (0.0, cats.len().saturating_sub(1) as f64, position),
        };
        if hi - lo > 0.0 {
            ((x - lo) / (hi - lo)).clamp(0.0, 1.0)
        } else {
            0.5
        }
    }

    /// Ticks along the axis as (position, label): every category (every n-th past 12), or
    /// round numbers (1, 2, 5 × 10ⁿ; on log axes the 1-2-5 values of each decade).
    pub fn ticks(&self) -> Vec<(f64, String)> {
        match &self.kind {
            AxisKind::Categorical(cats) => {
                let step = cats.len().div_ceil(12).max(1);
                cats.iter()
                    .enumerate()
                    .step_by(step)
                    .map(|(i, c)| (i as f64, c.clone()))
                    .collect()
            }
            AxisKind::Numeric {
                log: true,
                min,
                max,
            } => log_ticks(*min, *max)
                .into_iter()
                .map(|v| (v, super::fmt_value(v)))
                .collect(),
            AxisKind::Numeric { min, max, .. } => nice_ticks(*min, *max, 5)
                .into_iter()
                .map(|v| (v, super::fmt_value(v)))
                .collect(),
        }
    }
}

/// Round values (1, 2 or 5 × 10ⁿ apart) inside `min..=max`, about `target` of them; just the
/// ends when the range is empty.
pub fn nice_ticks(min: f64, max: f64, target: usize) -> Vec<f64> {
    if !(min.is_finite() && max.is_finite()) || max <= min {
        return if min.is_finite() {
            vec![min]
        } else {
            Vec::new()
        };
    }
    let raw = (max - min) / target.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let first = (min / step - 1e-9).ceil() as i64;
    let last = (max / step + 1e-9).floor() as i64;
    (first..=last)
        .map(|k| {
            // Snap float noise (0.30000000000000004 → 0.3).
            let v = k as f64 * step;
            if mag < 1.0 {
                let inv = (1.0 / mag).round();
                (v * inv).round() / inv
            } else {
                (v / mag).round() * mag
            }
        })
        .collect()
}

/// The 1-2-5 values of each decade inside `min..=max` (`min > 0`); only the powers of ten when
/// that gives at least three ticks, and the ends when there is none.
pub fn log_ticks(min: f64, max: f64) -> Vec<f64> {
    if !(min > 0.0 && max >= min && max.is_finite()) {
        return Vec::new();
    }
    let lo = min.log10().floor() as i32;
    let hi = max.log10().ceil() as i32;
    let inside = |v: &f64| *v >= min * (1.0 - 1e-9) && *v <= max * (1.0 + 1e-9);
    let decades: Vec<f64> = (lo..=hi).map(|e| 10f64.powi(e)).filter(inside).collect();
    if decades.len() >= 3 {
        return decades;
    }
    let ticks: Vec<f64> = (lo..=hi)
        .flat_map(|e| [1.0, 2.0, 5.0].map(|m| m * 10f64.powi(e)))
        .filter(inside)
        .collect();
    if ticks.len() >= 2 {
        ticks
    } else {
        vec![min, max]
    }
}

/// The parameters of `view` as axes: the configured ones in declaration order, then the others
/// that appear in node specs, by name. A parameter missing from the configuration is numeric
/// (linear) when every value seen is a number, else categorical.
pub fn param_axes(view: &RunView) -> Vec<ParamAxis> {
    let space = view.search_space();
    let mut names: Vec<String> = space
        .as_ref()
        .map(|s| s.names().map(str::to_owned).collect())
        .unwrap_or_default();
    let extra: BTreeSet<&String> = view
        .nodes
        .iter()
        .filter_map(|n| n.params())
        .flat_map(|p| p.keys())
        .filter(|k| !names.contains(k))
        .collect();
    names.extend(extra.into_iter().cloned());

    names
        .into_iter()
        .map(|name| {
            let values: Vec<&Value> = view
                .nodes
                .iter()
                .filter_map(|n| n.params()?.get(&name))
                .collect();
            let kind = match space.as_ref().and_then(|s| s.get(&name)) {
                Some(Param::Range(r)) => {
                    let log = r.scale == Scale::Log;
                    numeric(log, Some(r.bounds()), &values)
                }
                Some(Param::Choices(choices)) => {
                    categorical(choices.iter().chain(values.iter().copied()))
                }
                None if !values.is_empty() && values.iter().all(|v| v.is_number()) => {
                    numeric(false, None, &values)
                }
                None => categorical(values.iter().copied()),
            };
            ParamAxis { name, kind }
        })
        .collect()
}

fn numeric(log: bool, bounds: Option<(f64, f64)>, values: &[&Value]) -> AxisKind {
    let (mut min, mut max) = bounds.unwrap_or((f64::INFINITY, f64::NEG_INFINITY));
    for x in values.iter().filter_map(|v| v.as_f64()) {
        if x.is_finite() && (!log || x > 0.0) {
            min = min.min(x);
            max = max.max(x);
        }
    }
    if !min.is_finite() || !max.is_finite() || (log && min <= 0.0) {
        (min, max) = if log { (1.0, 10.0) } else { (0.0, 1.0) };
    }
    AxisKind::Numeric { log, min, max }
}

fn categorical<'a>(values: impl Iterator<Item = &'a Value>) -> AxisKind {
    let mut cats: Vec<String> = Vec::new();
    for v in values {
        let t = plain(v);
        if !cats.contains(&t) {
            cats.push(t);
        }
    }
    AxisKind::Categorical(cats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn positions_and_units() {
        let log = ParamAxis {
            name: "lr".into(),
            kind: AxisKind::Numeric {
                log: true,
                min: 0.001,
                max: 1.0,
            },
        };
        assert_eq!(log.position(&json!(0.01)), Some(0.01));
        assert_eq!(log.position(&json!(0)), None);
        assert!((log.unit(0.031_622_776) - 0.5).abs() < 1e-6);
        let labels: Vec<String> = log.ticks().into_iter().map(|t| t.1).collect();
        assert_eq!(labels, ["0.001", "0.01", "0.1", "1"]);
        let cat = ParamAxis {
            name: "opt".into(),
            kind: AxisKind::Categorical(vec!["sgd".into(), "adam".into(), "8".into()]),
        };
        assert_eq!(cat.position(&json!("adam")), Some(1.0));
        assert_eq!(cat.position(&json!(8)), Some(2.0));
        assert_eq!(cat.position(&json!("x")), None);
        assert_eq!(cat.unit(1.0), 0.5);
        assert_eq!(cat.ticks()[2], (2.0, "8".to_owned()));
    }

    #[test]
    fn ticks_are_round_numbers() {
        assert_eq!(nice_ticks(0.001, 0.1, 5), [0.02, 0.04, 0.06, 0.08, 0.1]);
        assert_eq!(nice_ticks(-1.0, 1.0, 4), [-1.0, -0.5, 0.0, 0.5, 1.0]);
        assert_eq!(nice_ticks(0.0, 0.3, 3), [0.0, 0.1, 0.2, 0.3]);
        assert_eq!(log_ticks(1.0, 64.0), [1.0, 2.0, 5.0, 10.0, 20.0, 50.0]);
        assert_eq!(log_ticks(1e-4, 1.0), [1e-4, 1e-3, 1e-2, 1e-1, 1.0]);
    }
}
