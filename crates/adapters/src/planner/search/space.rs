//! The search space as the model sees it: every parameter is one coordinate. Numeric ranges and
//! ordered choices (the configuration's `ordered` flag: by default lists of numbers) map to
//! `[0, 1]` (log ranges by the logarithm), unordered choices to the index of the choice (all
//! other choices are equally near). [`Space::decode`] turns coordinates back
//! into a valid parameter set: ints rounded, floats cut to [`FLOAT_DIGITS`] significant digits,
//! bounds respected.

use serde_json::{Map, Number, Value};

use crate::config::{Config, NumType, Param, Range, Scale};

/// Significant digits kept in proposed float values.
pub(crate) const FLOAT_DIGITS: i32 = 6;
/// Largest finite space [`Space::enumerate`] lists.
pub(crate) const MAX_ENUMERATED: u64 = 200_000;

/// How one coordinate is encoded.
#[derive(Debug, Clone)]
pub(crate) enum DimKind {
    /// A numeric range, as `[0, 1]` (by the logarithm on log ranges).
    Numeric(Range),
    /// Ordered choices, as `index / (len − 1)`.
    Ordered(Vec<Value>),
    /// Unordered choices, as the choice's index.
    Unordered(Vec<Value>),
}

/// One parameter of the space.
#[derive(Debug, Clone)]
pub(crate) struct Dim {
    /// Parameter name.
    pub name: String,
    /// Encoding.
    pub kind: DimKind,
}

impl Dim {
    /// Whether this coordinate holds a category index (compared by equality only).
    pub(crate) fn is_categorical(&self) -> bool {
        matches!(self.kind, DimKind::Unordered(_))
    }

    /// Number of categories of an unordered coordinate (0 otherwise).
    pub(crate) fn categories(&self) -> usize {
        match &self.kind {
            DimKind::Unordered(c) => c.len(),
            _ => 0,
        }
    }

    /// The smallest meaningful move of a `[0, 1]` coordinate (one int or one choice), or 0.
    pub(crate) fn unit(&self) -> f64 {
        match &self.kind {
            DimKind::Numeric(r) => {
                let (lo, hi) = r.bounds();
                match (r.kind, r.scale) {
                    (NumType::Int, Scale::Linear) if hi > lo => 1.0 / (hi - lo),
                    _ => 0.0,
                }
            }
            DimKind::Ordered(c) if c.len() > 1 => 1.0 / (c.len() - 1) as f64,
            _ => 0.0,
        }
    }

    /// Number of distinct values, if finite and countable here (ints and choices).
    fn cardinality(&self) -> Option<u64> {
        match &self.kind {
            DimKind::Numeric(r) => {
                let (lo, hi) = r.bounds();
                match r.kind {
                    NumType::Int if hi >= lo && hi - lo < 1e15 => Some((hi - lo) as u64 + 1),
                    NumType::Int => Some(0),
                    NumType::Float if hi == lo => Some(1),
                    NumType::Float => None,
                }
            }
            DimKind::Ordered(c) | DimKind::Unordered(c) => Some(c.len() as u64),
        }
    }

    /// The coordinates of every value of a countable parameter (one for a fixed float).
    fn all_coordinates(&self) -> Vec<f64> {
        match &self.kind {
            DimKind::Numeric(r) => {
                let (lo, hi) = r.bounds();
                match r.kind {
                    NumType::Int => {
                        let n = self.cardinality().unwrap_or(0);
                        (0..n).map(|i| to_unit(r, lo + i as f64)).collect()
                    }
                    NumType::Float => vec![to_unit(r, hi)],
                }
            }
            DimKind::Ordered(c) => (0..c.len())
                .map(|i| {
                    if c.len() > 1 {
                        i as f64 / (c.len() - 1) as f64
                    } else {
                        0.5
                    }
                })
                .collect(),
            DimKind::Unordered(c) => (0..c.len()).map(|i| i as f64).collect(),
        }
    }

    /// The coordinate of `value`, if it belongs to this parameter.
    fn encode(&self, value: &Value) -> Option<f64> {
        match &self.kind {
            DimKind::Numeric(r) => {
                let x = value.as_f64()?;
                let (lo, hi) = r.bounds();
                if !x.is_finite() || x < lo || x > hi {
                    return None;
                }
                Some(to_unit(r, x))
            }
            DimKind::Ordered(c) => {
                let i = position(c, value)?;
                Some(if c.len() > 1 {
                    i as f64 / (c.len() - 1) as f64
                } else {
                    0.5
                })
            }
            DimKind::Unordered(c) => position(c, value).map(|i| i as f64),
        }
    }

    /// The value at coordinate `u` (clamped into the domain).
    fn decode(&self, u: f64) -> Value {
        match &self.kind {
            DimKind::Numeric(r) => range_value(r, from_unit(r, u)),
            DimKind::Ordered(c) => {
                let i = (u.clamp(0.0, 1.0) * (c.len() - 1) as f64).round() as usize;
                c[i.min(c.len() - 1)].clone()
            }
            DimKind::Unordered(c) => c[(u.max(0.0) as usize).min(c.len() - 1)].clone(),
        }
    }
}

/// The encoded search space.
#[derive(Debug, Clone)]
pub(crate) struct Space {
    /// Coordinates in declaration order.
    pub dims: Vec<Dim>,
}

impl Space {
    /// The space of a configuration.
    pub(crate) fn new(config: &Config) -> Space {
        let dims = config
            .search_space
            .iter()
            .map(|(name, param)| Dim {
                name: name.to_string(),
                kind: match param {
                    Param::Range(r) => DimKind::Numeric(r.clone()),
                    Param::Choices(c) if c.is_ordered() => DimKind::Ordered(c.to_vec()),
                    Param::Choices(c) => DimKind::Unordered(c.to_vec()),
                },
            })
            .collect();
        Space { dims }
    }

    /// Number of coordinates.
    pub(crate) fn len(&self) -> usize {
        self.dims.len()
    }

    /// The coordinates of a complete parameter set, or None when a value is missing or outside
    /// its domain (such a trial is left out of the model).
    pub(crate) fn encode(&self, params: &Map<String, Value>) -> Option<Vec<f64>> {
        self.dims
            .iter()
            .map(|d| params.get(&d.name).and_then(|v| d.encode(v)))
            .collect()
    }

    /// The parameter set at coordinates `x`.
    pub(crate) fn decode(&self, x: &[f64]) -> Map<String, Value> {
        self.dims
            .iter()
            .zip(x)
            .map(|(d, &u)| (d.name.clone(), d.decode(u)))
            .collect()
    }

    /// `x` moved onto the nearest point that [`decode`](Self::decode) can produce, with that
    /// parameter set.
    pub(crate) fn snap(&self, x: &[f64]) -> (Vec<f64>, Map<String, Value>) {
        let snapped = self.snap_coords(x);
        let params = self.decode(&snapped);
        (snapped, params)
    }

    /// `x` moved onto the nearest point that [`decode`](Self::decode) can produce (the same as
    /// `encode(decode(x))`, without building the parameter set).
    pub(crate) fn snap_coords(&self, x: &[f64]) -> Vec<f64> {
        self.dims
            .iter()
            .zip(x)
            .map(|(d, &u)| match &d.kind {
                DimKind::Numeric(r) => match range_value(r, from_unit(r, u)).as_f64() {
                    Some(v) => to_unit(r, v),
                    None => u,
                },
                DimKind::Ordered(c) if c.len() > 1 => {
                    let n = (c.len() - 1) as f64;
                    (u.clamp(0.0, 1.0) * n).round() / n
                }
                DimKind::Ordered(_) => 0.5,
                DimKind::Unordered(c) => (u.max(0.0).floor()).min(c.len() as f64 - 1.0),
            })
            .collect()
    }

    /// A key identifying a snapped point (equal keys, equal parameter sets).
    pub(crate) fn point_key(x: &[f64]) -> Vec<u64> {
        x.iter().map(|v| (v + 0.0).to_bits()).collect()
    }

    /// A uniformly random point (log-uniform on log ranges, uniform over ints and choices).
    pub(crate) fn random_point(&self, rng: &mut fastrand::Rng) -> Vec<f64> {
        self.dims
            .iter()
            .map(|d| match &d.kind {
                DimKind::Unordered(c) => rng.usize(..c.len()) as f64,
                _ => {
                    // Uniform over the values the coordinate can take, so the end values of an
                    // int or a choice list are as likely as the inner ones.
                    let unit = d.unit();
                    if unit > 0.0 {
                        let steps = (1.0 / unit).round();
                        (rng.f64() * (steps + 1.0)).floor().min(steps) / steps
                    } else {
                        rng.f64()
                    }
                }
            })
            .collect()
    }

    /// Number of distinct parameter sets, if finite and at most [`MAX_ENUMERATED`].
    pub(crate) fn size(&self) -> Option<u64> {
        let mut total: u64 = 1;
        for d in &self.dims {
            total = total.checked_mul(d.cardinality()?)?;
            if total > MAX_ENUMERATED {
                return None;
            }
        }
        Some(total)
    }

    /// Every point of a finite space (see [`size`](Self::size)), in a fixed order; empty when
    /// the space is not finite or too large.
    pub(crate) fn enumerate(&self) -> Vec<Vec<f64>> {
        let Some(size) = self.size() else {
            return Vec::new();
        };
        let values: Vec<Vec<f64>> = self.dims.iter().map(Dim::all_coordinates).collect();
        let mut out = Vec::with_capacity(size as usize);
        for mut index in 0..size {
            let mut x = Vec::with_capacity(values.len());
            for v in &values {
                let n = v.len() as u64;
                x.push(v[(index % n) as usize]);
                index /= n;
            }
            out.push(x);
        }
        out
    }

    /// Squared distance used to pick near points: numeric coordinates by difference, a
    /// differing category counts as 1.
    pub(crate) fn distance2(&self, a: &[f64], b: &[f64]) -> f64 {
        self.dims
            .iter()
            .zip(a.iter().zip(b))
            .map(|(d, (x, y))| {
                if d.is_categorical() {
                    if x == y { 0.0 } else { 1.0 }
                } else {
                    (x - y) * (x - y)
                }
            })
            .sum()
    }
}

fn position(choices: &[Value], value: &Value) -> Option<usize> {
    choices
        .iter()
        .position(|c| crate::config::values_equal(c, value))
}

/// A value of the range as a coordinate in `[0, 1]` (0.5 for a single-value range).
fn to_unit(r: &Range, x: f64) -> f64 {
    let (lo, hi) = r.bounds();
    if hi <= lo {
        return 0.5;
    }
    match r.scale {
        Scale::Linear => (x - lo) / (hi - lo),
        Scale::Log => (x.ln() - lo.ln()) / (hi.ln() - lo.ln()),
    }
}

/// The raw value at coordinate `u` (before rounding).
fn from_unit(r: &Range, u: f64) -> f64 {
    let (lo, hi) = r.bounds();
    let u = u.clamp(0.0, 1.0);
    match r.scale {
        Scale::Linear => lo + u * (hi - lo),
        Scale::Log => (lo.ln() + u * (hi.ln() - lo.ln())).exp(),
    }
}

/// `raw` as a value of the range: clamped, rounded (ints) or cut to [`FLOAT_DIGITS`]
/// significant digits (floats).
fn range_value(range: &Range, raw: f64) -> Value {
    let (lo, hi) = range.bounds();
    let raw = if raw.is_finite() { raw } else { lo };
    match range.kind {
        NumType::Int => Value::from(raw.round().clamp(lo, hi) as i64),
        NumType::Float => {
            let v = round_sig(raw.clamp(lo, hi), FLOAT_DIGITS).clamp(lo, hi);
            Number::from_f64(v).map_or(Value::Null, Value::Number)
        }
    }
}

/// `x` rounded to `digits` significant decimal digits.
pub(crate) fn round_sig(x: f64, digits: i32) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    let magnitude = x.abs().log10().floor() as i32;
    let p = digits - 1 - magnitude;
    if p >= 0 {
        let f = 10f64.powi(p.min(300));
        (x * f).round() / f
    } else {
        let f = 10f64.powi(-p);
        (x / f).round() * f
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn space() -> Space {
        let config: Config = serde_json::from_value(json!({
            "objective": { "metric": "m", "direction": "minimize" },
            "job": { "command": "true" },
            "search_space": {
                "width": [32, 64, 128, 256],
                "algo": ["gemm", "fft", "direct"],
                "level": { "choices": ["low", "mid", "high"], "ordered": true },
                "size": { "choices": [1, 2, 3], "ordered": false },
                "batch": { "min": 1, "max": 4096, "scale": "log", "type": "int" },
                "lr": { "min": 0.0001, "max": 1, "scale": "log" },
            },
        }))
        .unwrap();
        Space::new(&config)
    }

    #[test]
    fn ordered_choices_step_to_adjacent_values_unordered_by_index() {
        let s = space();
        assert!(!s.dims[0].is_categorical() && s.dims[1].is_categorical());
        // The explicit flag wins over the default.
        assert!(!s.dims[2].is_categorical() && s.dims[3].is_categorical());
        // Ordered: evenly spaced, and a coordinate between two choices snaps to the nearer.
        let p = params(&s, &[0.4, 2.0, 0.5, 1.0, 0.5, 0.5]);
        assert_eq!(p["width"], json!(64));
        assert_eq!(p["algo"], json!("direct"));
        assert_eq!(p["level"], json!("mid"));
        assert_eq!(p["size"], json!(2));
        let p = params(&s, &[0.6, 0.0, 0.5, 0.0, 0.5, 0.5]);
        assert_eq!(p["width"], json!(128));
        assert_eq!(s.dims[0].unit(), 1.0 / 3.0);
    }

    #[test]
    fn decoding_respects_types_and_bounds_and_snap_matches_encode_decode() {
        let s = space();
        let mut rng = fastrand::Rng::with_seed(3);
        for _ in 0..500 {
            let mut x = s.random_point(&mut rng);
            // Push some coordinates past the edges.
            x[4] = x[4] * 1.4 - 0.2;
            x[5] = x[5] * 1.4 - 0.2;
            let p = s.decode(&x);
            let batch = p["batch"].as_i64().expect("ints stay ints");
            assert!((1..=4096).contains(&batch));
            let lr = p["lr"].as_f64().unwrap();
            assert!((0.0001..=1.0).contains(&lr), "{lr}");
            assert_eq!(round_sig(lr, FLOAT_DIGITS), lr);
            let snapped = s.snap_coords(&x);
            assert_eq!(Some(snapped.clone()), s.encode(&p));
            assert_eq!(s.decode(&snapped), p);
        }
    }

    fn params(s: &Space, x: &[f64]) -> Map<String, Value> {
        s.decode(x)
    }
}
