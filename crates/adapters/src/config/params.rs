//! Search-space parameters: lists of choices and numeric ranges, membership checks, and the
//! canonical forms used to compare parameter sets (an int `8` equals a float `8.0`).

use std::collections::BTreeMap;
use std::fmt;

use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Number, Value};

/// How a numeric range is explored: evenly (`linear`) or by factors (`log`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scale {
    /// Additive steps (default).
    #[default]
    Linear,
    /// Multiplicative steps; the range's `min` must be > 0.
    Log,
}

/// Whether a numeric range holds integers or floats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NumType {
    /// Integers only (`min` and `max` must be integral).
    Int,
    /// Any finite number in the range (default).
    #[default]
    Float,
}

/// A numeric range `{min, max, scale, type}` (bounds included).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Range {
    /// Smallest allowed value.
    #[serde(serialize_with = "ser_num")]
    pub min: f64,
    /// Largest allowed value.
    #[serde(serialize_with = "ser_num")]
    pub max: f64,
    /// `linear` (default) or `log`.
    #[serde(default)]
    pub scale: Scale,
    /// `float` (default) or `int`; written `type` in the file.
    #[serde(rename = "type", default)]
    pub kind: NumType,
}

impl Range {
    /// The smallest and largest values actually allowed (integral bounds for int ranges).
    pub fn bounds(&self) -> (f64, f64) {
        match self.kind {
            NumType::Int => (self.min.ceil(), self.max.floor()),
            NumType::Float => (self.min, self.max),
        }
    }
}

/// One search-space parameter: a list of choices or a numeric range.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    /// A JSON array of numbers, strings or booleans (non-empty, no duplicates).
    Choices(Vec<Value>),
    /// A numeric range.
    Range(Range),
}

impl Param {
    /// The canonical form of `value` if it belongs to this parameter's domain: the matching
    /// choice (numbers compared numerically), an integer for int ranges, a float otherwise.
    pub fn canonicalize(&self, value: &Value) -> Option<Value> {
        match self {
            Param::Choices(choices) => choices.iter().find(|c| values_equal(c, value)).cloned(),
            Param::Range(range) => {
                let x = value.as_f64()?;
                if !x.is_finite() || x < range.min || x > range.max {
                    return None;
                }
                match range.kind {
                    NumType::Int => (x.fract() == 0.0).then(|| int_value(x)),
                    NumType::Float => Number::from_f64(x).map(Value::Number),
                }
            }
        }
    }

    /// Whether `value` belongs to this parameter's domain.
    pub fn contains(&self, value: &Value) -> bool {
        self.canonicalize(value).is_some()
    }

    /// A short description of the domain, for messages: `one of [1, 2, 4]`,
    /// `an integer from 16 to 4096`, `a number from 0.1 to 1`.
    pub fn describe(&self) -> String {
        match self {
            Param::Choices(choices) => {
                let items: Vec<String> = choices.iter().map(compact_json).collect();
                format!("one of [{}]", items.join(", "))
            }
            Param::Range(r) => match r.kind {
                NumType::Int => format!(
                    "an integer from {} to {}",
                    format_number(r.min),
                    format_number(r.max)
                ),
                NumType::Float => format!(
                    "a number from {} to {}",
                    format_number(r.min),
                    format_number(r.max)
                ),
            },
        }
    }
}

impl Serialize for Param {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Param::Choices(choices) => choices.serialize(serializer),
            Param::Range(range) => range.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Param {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ParamVisitor;
        impl<'de> Visitor<'de> for ParamVisitor {
            type Value = Param;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "an array of choices or a range object {\"min\", \"max\", \"scale\", \"type\"}",
                )
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Param, A::Error> {
                Vec::<Value>::deserialize(SeqAccessDeserializer::new(seq)).map(Param::Choices)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Param, A::Error> {
                Range::deserialize(MapAccessDeserializer::new(map)).map(Param::Range)
            }
        }
        deserializer.deserialize_any(ParamVisitor)
    }
}

/// The search space: parameters by name, in the order the file declares them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SearchSpace {
    params: Vec<(String, Param)>,
}

impl SearchSpace {
    /// A search space from `(name, param)` pairs, in order. Names are not checked here;
    /// [`Config::validate`](super::Config::validate) checks them.
    pub fn new(params: Vec<(String, Param)>) -> Self {
        SearchSpace { params }
    }

    /// The parameter called `name`.
    pub fn get(&self, name: &str) -> Option<&Param> {
        self.params.iter().find(|(n, _)| n == name).map(|(_, p)| p)
    }

    /// Parameters in declaration order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Param)> + '_ {
        self.params.iter().map(|(n, p)| (n.as_str(), p))
    }

    /// Parameter names in declaration order.
    pub fn names(&self) -> impl Iterator<Item = &str> + '_ {
        self.params.iter().map(|(n, _)| n.as_str())
    }

    /// Number of parameters.
    pub fn len(&self) -> usize {
        self.params.len()
    }

    /// Whether there are no parameters.
    pub fn is_empty(&self) -> bool {
        self.params.is_empty()
    }
}

impl Serialize for SearchSpace {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.params.len()))?;
        for (name, param) in &self.params {
            map.serialize_entry(name, param)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for SearchSpace {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SpaceVisitor;
        impl<'de> Visitor<'de> for SpaceVisitor {
            type Value = SearchSpace;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object mapping parameter names to choices or ranges")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SearchSpace, A::Error> {
                let mut params: Vec<(String, Param)> = Vec::new();
                while let Some(name) = map.next_key::<String>()? {
                    if params.iter().any(|(n, _)| *n == name) {
                        return Err(de::Error::custom(format!(
                            "parameter `{name}` is defined twice"
                        )));
                    }
                    let param = map.next_value::<Param>()?;
                    params.push((name, param));
                }
                Ok(SearchSpace { params })
            }
        }
        deserializer.deserialize_map(SpaceVisitor)
    }
}

/// Whether two parameter values are equal, numbers compared numerically (`8 == 8.0`).
pub fn values_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => x == y,
            _ => x == y,
        },
        _ => a == b,
    }
}

/// A number as written in commands, names and keys: integral values without `.0`
/// (`8`, `-3`), others in Rust's shortest round-trip form (`0.25`, `1e-7`).
pub fn format_number(x: f64) -> String {
    if x.is_finite() && x.fract() == 0.0 && x.abs() < 1e15 {
        // Integral and well inside i64: print as an integer (also turns -0 into 0).
        format!("{}", x as i64)
    } else {
        format!("{x:?}")
    }
}

/// A parameter value as a plain string: strings unquoted, numbers canonical
/// ([`format_number`]), booleans `true`/`false`, anything else as compact JSON.
pub fn value_to_raw(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => number_to_string(n),
        Value::Bool(b) => b.to_string(),
        other => compact_json(other),
    }
}

/// A canonical string for a parameter set, equal for sets that are equal up to key order and
/// number representation (`{"a": 8, "b": "x"}` and `{"b": "x", "a": 8.0}` give the same key).
pub fn canonical_params_key(params: &Map<String, Value>) -> String {
    let sorted: BTreeMap<&str, &Value> = params.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut key = String::new();
    for (name, value) in sorted {
        key.push_str(name);
        key.push('=');
        match value {
            Value::Number(n) => key.push_str(&number_to_string(n)),
            other => key.push_str(&compact_json(other)),
        }
        key.push('\u{1f}');
    }
    key
}

/// Compact JSON text of a value (for messages and keys).
pub(crate) fn compact_json(value: &Value) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| String::from("?"))
}

fn number_to_string(n: &Number) -> String {
    if let Some(i) = n.as_i64() {
        i.to_string()
    } else if let Some(u) = n.as_u64() {
        u.to_string()
    } else {
        format_number(n.as_f64().unwrap_or(f64::NAN))
    }
}

/// An integral f64 as a JSON integer.
pub(crate) fn int_value(x: f64) -> Value {
    if x.abs() < 9.0e15 {
        Value::from(x as i64)
    } else {
        Number::from_f64(x).map_or(Value::Null, Value::Number)
    }
}

/// Serializes an f64 as an integer when it is integral (so `600.0` is written `600`).
pub(crate) fn ser_num<S: Serializer>(x: &f64, serializer: S) -> Result<S::Ok, S::Error> {
    if x.is_finite() && x.fract() == 0.0 && x.abs() < 9.0e15 {
        serializer.serialize_i64(*x as i64)
    } else {
        serializer.serialize_f64(*x)
    }
}

/// [`ser_num`] for an optional value (`None` is written `null`).
pub(crate) fn ser_opt_num<S: Serializer>(
    x: &Option<f64>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match x {
        Some(x) => ser_num(x, serializer),
        None => serializer.serialize_none(),
    }
}
