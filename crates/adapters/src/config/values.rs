//! Parameter values as the configuration compares, prints and stores them: numbers compared
//! numerically (`8 == 8.0`), integral numbers written without `.0`, and a canonical key per
//! parameter set.

use std::collections::BTreeMap;

use serde::Serializer;
use serde_json::{Map, Number, Value};

/// Largest integer magnitude a parameter may have: every integer up to 2^53 is exact as a
/// float, so values compared or stepped numerically never collapse into one another.
pub const MAX_EXACT_INT: f64 = 9_007_199_254_740_992.0;

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

/// Short description of a JSON value's kind and content, for "found …" in messages.
pub(crate) fn found(value: &Value) -> String {
    let text = compact_json(value);
    let text = if text.chars().count() > 60 {
        format!("{}…", text.chars().take(60).collect::<String>())
    } else {
        text
    };
    match value {
        Value::Null => "null".to_string(),
        Value::Bool(_) => format!("boolean {text}"),
        Value::Number(_) => text,
        Value::String(_) => format!("string {text}"),
        Value::Array(_) => format!("array {text}"),
        Value::Object(_) => format!("object {text}"),
    }
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
