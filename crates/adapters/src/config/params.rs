//! Search-space parameters: lists of choices and numeric ranges, their membership checks, and
//! the one parser of the command-line parameter syntax ([`ParamSpec`]), shared by `--param`, the
//! interactive questionnaire and tests.
//!
//! The syntax (see `docs/config-reference.md`):
//!
//! | written | means |
//! |---|---|
//! | `a=1,2,4` | choices; numbers are ordered, strings and booleans unordered |
//! | `a=adam,sgd:ordered` / `a=1,2,4:unordered` | choices with an explicit order flag |
//! | `a="1",'x,y'` | quoted items are strings, taken literally (commas included) |
//! | `a=1..8` | a range: int when both ends are integers, else float; linear |
//! | `a=1e-4..0.1:log`, `a=1..8:float`, `a=1..9:int:linear` | range modifiers |

use std::fmt;
use std::ops::Deref;
use std::str::FromStr;

use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Number, Value};

use super::error::did_you_mean;
use super::render::is_param_name;
use super::values::{MAX_EXACT_INT, compact_json, format_number, int_value, ser_num, values_equal};

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
    /// Integers only (`min` and `max` must be integral, at most 2^53 in magnitude).
    Int,
    /// Any finite number in the range (default in `config.json`).
    #[default]
    Float,
}

/// A numeric range `{min, max, scale, type}` (bounds included).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Range {
    /// Smallest allowed value.
    #[serde(serialize_with = "ser_num")]
    pub min: f64,
    /// Largest allowed value.
    #[serde(serialize_with = "ser_num")]
    pub max: f64,
    /// `linear` (default) or `log`.
    pub scale: Scale,
    /// `float` (default) or `int`; written `type` in the file.
    #[serde(rename = "type")]
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

/// A list of choices and whether their listed order means something (`ordered`: neighbours in
/// the list are neighbours in the search) or not (every other choice is a neighbour).
///
/// Dereferences to the values, so `choices.iter()`, `choices.len()` and `choices[i]` work.
#[derive(Debug, Clone, PartialEq)]
pub struct Choices {
    values: Vec<Value>,
    ordered: bool,
}

impl Choices {
    /// Choices with the default order flag: ordered when every value is a number, unordered
    /// otherwise (strings, booleans, mixed lists).
    pub fn new(values: Vec<Value>) -> Self {
        let ordered = Self::default_ordered(&values);
        Choices { values, ordered }
    }

    /// Choices with an explicit order flag.
    pub fn with_order(values: Vec<Value>, ordered: bool) -> Self {
        Choices { values, ordered }
    }

    /// The order flag a plain list gets: true when every value is a number.
    pub fn default_ordered(values: &[Value]) -> bool {
        !values.is_empty() && values.iter().all(Value::is_number)
    }

    /// Whether the listed order is meaningful.
    pub fn is_ordered(&self) -> bool {
        self.ordered
    }

    /// The values, in listed order.
    pub fn values(&self) -> &[Value] {
        &self.values
    }
}

impl Deref for Choices {
    type Target = [Value];
    fn deref(&self) -> &[Value] {
        &self.values
    }
}

/// One search-space parameter: a list of choices or a numeric range.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    /// Numbers, strings or booleans (non-empty, no duplicates), ordered or not.
    Choices(Choices),
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

    /// Whether neighbouring values are neighbours in the search: true for ranges and ordered
    /// choices, false for unordered choices (where every other choice is a neighbour).
    pub fn is_ordered(&self) -> bool {
        match self {
            Param::Choices(c) => c.is_ordered(),
            Param::Range(_) => true,
        }
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

    /// The default baseline value: the first choice, or the range's smallest allowed value.
    pub fn default_value(&self) -> Value {
        match self {
            Param::Choices(c) => c.first().cloned().unwrap_or(Value::Null),
            Param::Range(r) => {
                let (lo, _) = r.bounds();
                let lo = Value::from(lo);
                self.canonicalize(&lo).unwrap_or(lo)
            }
        }
    }

    /// A value typed by a person for this parameter (`4`, `adam`, `"4"`), checked against the
    /// domain and returned in canonical form.
    pub fn parse_value(&self, text: &str) -> Result<Value, String> {
        let text = text.trim();
        let candidate = match self {
            Param::Choices(choices) => choices
                .iter()
                .find(|c| super::values::value_to_raw(c) == text)
                .cloned()
                .unwrap_or_else(|| scalar(text)),
            Param::Range(_) => scalar(text),
        };
        self.canonicalize(&candidate)
            .ok_or_else(|| format!("expected {}, found {text:?}", self.describe()))
    }
}

impl Serialize for Param {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            // A plain list when the order flag is the default, so files stay as written.
            Param::Choices(c) if c.ordered == Choices::default_ordered(&c.values) => {
                c.values.serialize(serializer)
            }
            Param::Choices(c) => {
                let mut map = serializer.serialize_map(Some(2))?;
                map.serialize_entry("choices", &c.values)?;
                map.serialize_entry("ordered", &c.ordered)?;
                map.end()
            }
            Param::Range(range) => range.serialize(serializer),
        }
    }
}

/// The object form of a parameter: a range (`min`, `max`, `scale`, `type`) or choices with an
/// order flag (`choices`, `ordered`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ParamObject {
    min: Option<f64>,
    max: Option<f64>,
    scale: Option<Scale>,
    #[serde(rename = "type")]
    kind: Option<NumType>,
    choices: Option<Vec<Value>>,
    ordered: Option<bool>,
}

impl ParamObject {
    fn into_param<E: de::Error>(self) -> Result<Param, E> {
        match self {
            ParamObject {
                choices: Some(values),
                ordered,
                min: None,
                max: None,
                scale: None,
                kind: None,
            } => {
                let ordered = ordered.unwrap_or_else(|| Choices::default_ordered(&values));
                Ok(Param::Choices(Choices::with_order(values, ordered)))
            }
            ParamObject {
                choices: Some(_), ..
            } => Err(E::custom(
                "a parameter has either `choices` (and `ordered`) or `min`/`max` (and `scale`, \
                 `type`), not both",
            )),
            ParamObject {
                ordered: Some(_), ..
            } => Err(E::custom(
                "`ordered` applies to `choices`: expected {\"choices\": [...], \"ordered\": ...}",
            )),
            ParamObject {
                min: Some(min),
                max: Some(max),
                scale,
                kind,
                ..
            } => Ok(Param::Range(Range {
                min,
                max,
                scale: scale.unwrap_or_default(),
                kind: kind.unwrap_or_default(),
            })),
            ParamObject { min: None, .. } => Err(E::missing_field("min")),
            ParamObject { .. } => Err(E::missing_field("max")),
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
                    "an array of choices, {\"choices\": [...], \"ordered\": true|false} or a \
                     range object {\"min\", \"max\", \"scale\", \"type\"}",
                )
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Param, A::Error> {
                Vec::<Value>::deserialize(SeqAccessDeserializer::new(seq))
                    .map(|v| Param::Choices(Choices::new(v)))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Param, A::Error> {
                ParamObject::deserialize(MapAccessDeserializer::new(map))?.into_param()
            }
        }
        deserializer.deserialize_any(ParamVisitor)
    }
}

/// A parameter written in the command-line syntax `NAME=SPEC` (see the module docs): the one
/// parser of that syntax.
///
/// ```
/// use autoresearch_adapters::config::{NumType, Param, ParamSpec};
/// let spec: ParamSpec = "workers=1..8".parse().unwrap();
/// assert_eq!(spec.name, "workers");
/// assert!(matches!(spec.param, Param::Range(ref r) if r.kind == NumType::Int));
/// assert!("cutoff=1-256".parse::<ParamSpec>().unwrap_err().to_string()
///     .contains("did you mean cutoff=1..256?"));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ParamSpec {
    /// The parameter's name (`[A-Za-z_][A-Za-z0-9_]*`).
    pub name: String,
    /// Its domain.
    pub param: Param,
}

/// Why a `NAME=SPEC` text is not a parameter: says what was expected, what was found, and (for
/// a near miss) what was probably meant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ParamSyntaxError {
    message: String,
}

/// The grammar in one line, for messages and `--help`.
pub const PARAM_SYNTAX: &str = "NAME=1,2,4 (choices; add :ordered or :unordered) or \
     NAME=MIN..MAX (a range; int when both ends are integers, else float; add :log or :linear, \
     :int or :float)";

fn syntax_err(message: impl Into<String>) -> ParamSyntaxError {
    ParamSyntaxError {
        message: message.into(),
    }
}

impl FromStr for ParamSpec {
    type Err = ParamSyntaxError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let Some((name, spec)) = text.split_once('=') else {
            return Err(syntax_err(format!(
                "expected {PARAM_SYNTAX}, found {text:?} (no `=`)"
            )));
        };
        let name = name.trim();
        let spec = spec.trim();
        if !is_param_name(name) {
            return Err(syntax_err(format!(
                "expected a parameter name of letters, digits and _ not starting with a digit, \
                 found {name:?}"
            )));
        }
        if spec.is_empty() {
            return Err(syntax_err(format!(
                "`{name}` has no values: expected {name}=1,2,4 or {name}=MIN..MAX"
            )));
        }
        if let Some(fix) = range_typo(spec) {
            return Err(syntax_err(format!(
                "`{name}={spec}` is not a range: did you mean {name}={fix}? (a range is \
                 written MIN..MAX)"
            )));
        }
        let param = if let Some((lo, rest)) = spec.split_once("..") {
            parse_range(name, lo, rest)?
        } else {
            parse_choices(name, spec)?
        };
        Ok(ParamSpec {
            name: name.to_string(),
            param,
        })
    }
}

/// `1-256`, `1:256`, `[1,256]`, `(1, 256)`, `1...256`, `1…256` → `Some("1..256")`.
fn range_typo(spec: &str) -> Option<String> {
    let is_num = |s: &str| {
        let s = s.trim();
        !s.is_empty() && s.parse::<f64>().is_ok_and(f64::is_finite)
    };
    let inner = spec
        .strip_prefix(['[', '('])
        .and_then(|s| s.strip_suffix([']', ')']))
        .unwrap_or(spec);
    let bracketed = inner.len() != spec.len();
    for sep in ["...", "…", ",", ":", "-", " to "] {
        if sep == "," && !bracketed {
            continue;
        }
        // Skip a leading minus sign when splitting on `-` (`-5-5`).
        let start = usize::from(sep == "-" && inner.starts_with('-'));
        if let Some(i) = inner[start..].find(sep) {
            let (lo, hi) = (&inner[..start + i], &inner[start + i + sep.len()..]);
            if is_num(lo) && is_num(hi) {
                return Some(format!("{}..{}", lo.trim(), hi.trim()));
            }
        }
    }
    None
}

fn parse_range(name: &str, lo: &str, rest: &str) -> Result<Param, ParamSyntaxError> {
    let mut parts = rest.split(':');
    let hi = parts.next().unwrap_or("").trim();
    let lo = lo.trim();
    let bound = |s: &str, which: &str| -> Result<f64, ParamSyntaxError> {
        s.parse::<f64>()
            .ok()
            .filter(|x| x.is_finite())
            .ok_or_else(|| {
                syntax_err(format!(
                    "`{name}`: expected a number as the {which} bound of MIN..MAX, found {s:?}"
                ))
            })
    };
    let min = bound(lo, "lower")?;
    let max = bound(hi, "upper")?;
    let mut scale = None;
    let mut kind = None;
    for m in parts {
        match m.trim() {
            "log" if scale.is_none() => scale = Some(Scale::Log),
            "linear" if scale.is_none() => scale = Some(Scale::Linear),
            "int" if kind.is_none() => kind = Some(NumType::Int),
            "float" if kind.is_none() => kind = Some(NumType::Float),
            other => {
                let hint = did_you_mean(other, &["log", "linear", "int", "float"]);
                return Err(syntax_err(format!(
                    "`{name}`: unknown or repeated range modifier {other:?}{hint}: expected \
                     :log or :linear, and :int or :float"
                )));
            }
        }
    }
    let looks_int = |s: &str| s.parse::<i64>().is_ok();
    let kind = kind.unwrap_or(if looks_int(lo) && looks_int(hi) {
        NumType::Int
    } else {
        NumType::Float
    });
    let shown = format!("{}..{}", format_number(min), format_number(max));
    if min >= max {
        return Err(syntax_err(format!(
            "`{name}`: expected MIN < MAX, found {shown}"
        )));
    }
    if kind == NumType::Int {
        if min.fract() != 0.0 || max.fract() != 0.0 {
            return Err(syntax_err(format!(
                "`{name}`: an int range needs whole-number bounds, found {shown} (drop :int for \
                 a float range)"
            )));
        }
        let too_big = |x: f64, text: &str| {
            x.abs() > MAX_EXACT_INT
                || text
                    .parse::<i128>()
                    .is_ok_and(|i| i.unsigned_abs() > MAX_EXACT_INT as u128)
        };
        if too_big(min, lo) || too_big(max, hi) {
            return Err(syntax_err(format!(
                "`{name}`: int bounds must be at most 2^53 (9007199254740992) in magnitude, \
                 found {lo}..{hi}; use :float for larger numbers"
            )));
        }
    }
    let scale = scale.unwrap_or_default();
    if scale == Scale::Log && min <= 0.0 {
        return Err(syntax_err(format!(
            "`{name}`: a :log range needs MIN > 0, found {}",
            format_number(min)
        )));
    }
    Ok(Param::Range(Range {
        min,
        max,
        scale,
        kind,
    }))
}

fn parse_choices(name: &str, spec: &str) -> Result<Param, ParamSyntaxError> {
    let (body, ordered) = match spec.rsplit_once(':') {
        Some((body, "ordered")) => (body, Some(true)),
        Some((body, "unordered")) => (body, Some(false)),
        _ => (spec, None),
    };
    let mut values: Vec<Value> = Vec::new();
    for item in split_items(name, body)? {
        let value = match item {
            Item::Quoted(s) => Value::String(s),
            Item::Bare(s) if s.is_empty() => {
                return Err(syntax_err(format!(
                    "`{name}`: empty choice in {body:?} (quote it as \"\" for an empty string)"
                )));
            }
            Item::Bare(s) => scalar(&s),
        };
        if value
            .as_i64()
            .is_some_and(|i| i.unsigned_abs() > MAX_EXACT_INT as u64)
        {
            return Err(syntax_err(format!(
                "`{name}`: integer choices must be at most 2^53 (9007199254740992) in \
                 magnitude, found {value}; quote it to make it a string"
            )));
        }
        if let Some(first) = values.iter().find(|c| values_equal(c, &value)) {
            return Err(syntax_err(format!(
                "`{name}`: choice {} is listed twice",
                compact_json(first)
            )));
        }
        values.push(value);
    }
    let choices = match ordered {
        Some(o) => Choices::with_order(values, o),
        None => Choices::new(values),
    };
    Ok(Param::Choices(choices))
}

/// One comma-separated item of a choice list.
enum Item {
    /// `"…"` or `'…'`: a string, taken literally.
    Quoted(String),
    /// Anything else, trimmed.
    Bare(String),
}

/// Splits `a, "b,c", 'd'` on commas outside quotes.
fn split_items(name: &str, body: &str) -> Result<Vec<Item>, ParamSyntaxError> {
    let mut items = Vec::new();
    let mut chars = body.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let item = match chars.peek() {
            Some(&q @ ('"' | '\'')) => {
                chars.next();
                let mut s = String::new();
                loop {
                    match chars.next() {
                        Some(c) if c == q => break,
                        Some(c) => s.push(c),
                        None => {
                            return Err(syntax_err(format!("`{name}`: unclosed {q} in {body:?}")));
                        }
                    }
                }
                while chars.next_if(|c| c.is_whitespace()).is_some() {}
                if chars.peek().is_some_and(|c| *c != ',') {
                    return Err(syntax_err(format!(
                        "`{name}`: expected `,` after the quoted choice {q}{s}{q} in {body:?}"
                    )));
                }
                Item::Quoted(s)
            }
            _ => {
                let mut s = String::new();
                while let Some(c) = chars.next_if(|c| *c != ',') {
                    s.push(c);
                }
                Item::Bare(s.trim().to_string())
            }
        };
        items.push(item);
        if chars.next().is_none() {
            return Ok(items);
        }
    }
}

/// A bare word as typed: an integer, a number, `true`/`false`, or a string.
fn scalar(item: &str) -> Value {
    if let Ok(i) = item.parse::<i64>() {
        return Value::from(i);
    }
    if let Some(n) = item
        .parse::<f64>()
        .ok()
        .filter(|x| x.is_finite())
        .and_then(Number::from_f64)
    {
        return Value::Number(n);
    }
    match item {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        _ => Value::String(item.to_string()),
    }
}
