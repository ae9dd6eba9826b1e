//! Human messages for serde errors, shared by every loader of a hand-editable file in the
//! workspace (the engine's checkpoint, the configuration of the program that embeds it).
//!
//! serde speaks Rust (`invalid type: string "high", expected f64 at line 7 column 38`); a user
//! editing a file needs the file's terms, the position and the field path
//! (`7:38: queued[1].priority: expected a finite number, found string "high"`).
//! [`from_json_slice`] deserializes with the field path tracked and unknown keys reported;
//! [`humanize`] rewrites a message; [`did_you_mean`] and [`field_names`] give "did you mean"
//! hints from the derived type itself, so no second list of known keys is kept by hand.

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use serde_json::{Map, Value};

/// The syntax a message is about (the words for objects and arrays differ).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Syntax {
    /// JSON: "a JSON object", "a JSON array".
    Json,
    /// TOML: "a table", "an array".
    Toml,
}

/// A deserialization error with its position and field path, in the file's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// 1-based line (0 when unknown).
    pub line: usize,
    /// 1-based column (0 when unknown).
    pub column: usize,
    /// Field path such as `queued[3].priority`; empty for syntax errors and the top level.
    pub path: String,
    /// What was expected and what was found.
    pub message: String,
}

/// Deserializes JSON `bytes` into `T`, tracking the field path of an error and calling
/// `ignored` with the path of every key `T` does not know (for warnings or errors).
/// Trailing characters after the value are an error too.
pub fn from_json_slice<'de, T: Deserialize<'de>>(
    bytes: &'de [u8],
    mut ignored: impl FnMut(String),
) -> Result<T, Located> {
    // The common case, a valid file, without tracking paths (which costs an allocation per key).
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let mut report = |path: serde_ignored::Path| ignored(path_text(&path));
    let fast = T::deserialize(serde_ignored::Deserializer::new(&mut de, &mut report));
    if let Ok(value) = fast
        && de.end().is_ok()
    {
        return Ok(value);
    }
    // Something is wrong: again, tracking the field path for the message.
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = match serde_path_to_error::deserialize(&mut de) {
        Ok(v) => v,
        Err(e) => {
            let path = clean_path(&e.path().to_string());
            let inner = e.into_inner();
            return Err(Located {
                line: inner.line(),
                column: inner.column(),
                path,
                message: message(&inner),
            });
        }
    };
    de.end().map_err(|e| Located {
        line: e.line(),
        column: e.column(),
        path: String::new(),
        message: message(&e),
    })?;
    Ok(value)
}

/// A path as `queued[0].colour` (serde_ignored writes `queued.0.colour`).
fn path_text(path: &serde_ignored::Path) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", path_text(parent)),
        Path::Map { parent, key } => match path_text(parent) {
            p if p.is_empty() => key.clone(),
            p => format!("{p}.{key}"),
        },
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => path_text(parent),
    }
}

/// serde_path_to_error writes `?` for a position it could not name (syntax errors) and `.`
/// for the top level: both become an empty path or are trimmed away.
fn clean_path(path: &str) -> String {
    let p = path.trim_end_matches(".?").trim_end_matches('?');
    if p == "." {
        String::new()
    } else {
        p.to_string()
    }
}

/// The message of a serde_json error in the file's terms, without its " at line L column C".
pub fn message(e: &serde_json::Error) -> String {
    humanize(&e.to_string(), Syntax::Json)
}

/// Rewrites a serde message in the file's terms: drops serde_json's position suffix, turns
/// "invalid type: X, expected Y" into "expected Y, found X", Rust type names into words, and
/// joins the message on one line.
pub fn humanize(message: &str, syntax: Syntax) -> String {
    let msg = strip_position(message);
    let (object, array) = match syntax {
        Syntax::Json => ("a JSON object", "a JSON array"),
        Syntax::Toml => ("a table", "an array"),
    };
    let words: [(&str, &str); 10] = [
        ("expected usize", "expected a non-negative integer"),
        ("expected u64", "expected a non-negative integer"),
        ("expected u32", "expected a non-negative integer"),
        ("expected i64", "expected an integer"),
        ("expected f64", "expected a finite number"),
        ("expected a map", &format!("expected {object}")),
        ("expected a sequence", &format!("expected {array}")),
        ("expected a boolean", "expected true or false"),
        ("invalid type: sequence", "invalid type: array"),
        ("invalid type: map", "invalid type: object"),
    ];
    let mut out = msg.trim().to_string();
    for (from, to) in words {
        out = out.replace(from, to);
    }
    // "expected struct SpecEntry": the Rust type name means nothing in the file.
    if let Some(at) = out.find("expected struct ") {
        let rest = &out[at + "expected struct ".len()..];
        let end = rest
            .find(|c: char| !c.is_alphanumeric() && c != '_')
            .unwrap_or(rest.len());
        out = format!("{}expected {object}{}", &out[..at], &rest[end..]);
    }
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = out.strip_prefix(prefix)
            && let Some((found, expected)) = rest.split_once(", expected ")
        {
            out = format!("expected {expected}, found {found}");
            break;
        }
    }
    if let Some(rest) = out.strip_prefix("unknown variant ")
        && let Some((found, expected)) = rest.split_once(", expected ")
    {
        out = format!(
            "expected {}, found string {}",
            expected.replace('`', "\""),
            found.replace('`', "\"")
        );
    }
    if let Some(rest) = out.strip_prefix("duplicate field ") {
        out = format!(
            "duplicate key {}: each key may appear only once",
            rest.trim()
        );
    }
    if out.starts_with("EOF while parsing") {
        out.push_str(" (the file is truncated)");
    }
    out.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// `message` without serde_json's " at line L column C" suffix.
pub fn strip_position(message: &str) -> &str {
    match message.rfind(" at line ") {
        Some(i) if message[i..].contains(" column ") => &message[..i],
        _ => message,
    }
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// The known word closest to `word` (at most two edits away, clearly similar, or abbreviated
/// as in `lin` for `linear`), for a "did you mean" hint. An abbreviation wins over an edit.
pub fn did_you_mean<'a>(word: &str, known: &[&'a str]) -> Option<&'a str> {
    let abbreviates = |k: &str| word.len() >= 2 && k.starts_with(word) && k != word;
    known
        .iter()
        .map(|k| {
            (
                !abbreviates(k),
                strsim::levenshtein(word, k),
                strsim::jaro_winkler(word, k),
                *k,
            )
        })
        .filter(|(not_abbrev, d, jw, k)| {
            !*not_abbrev || ((*d <= 2 && *d < k.len().max(word.len())) || *jw >= 0.9)
        })
        .min_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)).then(b.2.total_cmp(&a.2)))
        .map(|(_, _, _, k)| k)
}

/// "unknown key `colour` (did you mean `color`?); expected one of: a, b".
pub fn unknown_key(key: &str, known: &[&str]) -> String {
    let hint = did_you_mean(key, known)
        .map(|k| format!(" (did you mean `{k}`?)"))
        .unwrap_or_default();
    format!(
        "unknown key `{key}`{hint}; expected one of: {}",
        known.join(", ")
    )
}

/// The field names of a struct that derives `Deserialize` (or the variant names of an enum),
/// read from the derive itself: the one list of known keys.
pub fn field_names<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    let mut names: &'static [&'static str] = &[];
    let _ = T::deserialize(NamesOf(&mut names));
    names
}

/// A deserializer that only records the field (or variant) names it is asked for.
struct NamesOf<'a>(&'a mut &'static [&'static str]);

#[derive(Debug)]
struct Stop;
impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("names read")
    }
}
impl std::error::Error for Stop {}
impl de::Error for Stop {
    fn custom<T: std::fmt::Display>(_: T) -> Self {
        Stop
    }
}

impl<'de> Deserializer<'de> for NamesOf<'_> {
    type Error = Stop;
    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
        Err(Stop)
    }
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Stop> {
        *self.0 = fields;
        Err(Stop)
    }
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        variants: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Stop> {
        *self.0 = variants;
        Err(Stop)
    }
    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map identifier ignored_any
    }
}

/// Deserializes a JSON object into a [`Map`], refusing a key that appears twice in it or in any
/// object nested inside (serde_json would silently keep the last copy). Use it with
/// `#[serde(deserialize_with = "…")]` for free-form objects of hand-edited files.
pub fn unique_keys_object<'de, D: Deserializer<'de>>(d: D) -> Result<Map<String, Value>, D::Error> {
    d.deserialize_map(ObjectVisitor)
}

struct ObjectVisitor;
impl<'de> Visitor<'de> for ObjectVisitor {
    type Value = Map<String, Value>;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a map")
    }
    fn visit_map<A: de::MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            if map.contains_key(&key) {
                return Err(de::Error::custom(format_args!(
                    "duplicate key `{key}`: each key may appear only once"
                )));
            }
            let value = access.next_value::<UniqueKeys>()?.0;
            map.insert(key, value);
        }
        Ok(map)
    }
}

/// Any JSON value whose objects have unique keys.
struct UniqueKeys(Value);
impl<'de> Deserialize<'de> for UniqueKeys {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValueVisitor).map(UniqueKeys)
    }
}

struct ValueVisitor;
impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element::<UniqueKeys>()? {
            out.push(v.0);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: de::MapAccess<'de>>(self, access: A) -> Result<Value, A::Error> {
        ObjectVisitor.visit_map(access).map(Value::Object)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Sample {
        alpha: u32,
        #[serde(default, deserialize_with = "unique_keys_object")]
        payload: Map<String, Value>,
    }

    #[test]
    fn errors_name_position_path_and_found_value() {
        let text = b"{\n  \"alpha\": \"x\"\n}";
        let e = from_json_slice::<Sample>(text, |_| {}).err().unwrap();
        assert_eq!((e.line, e.path.as_str()), (2, "alpha"));
        assert_eq!(
            e.message,
            "expected a non-negative integer, found string \"x\""
        );
    }

    #[test]
    fn duplicate_keys_are_refused_at_any_depth() {
        let e = from_json_slice::<Sample>(b"{\"alpha\":1,\"alpha\":2}", |_| {})
            .err()
            .unwrap();
        assert!(e.message.contains("duplicate key `alpha`"), "{e:?}");
        let text = b"{\"alpha\":1,\"payload\":{\"p\":{\"a\":1,\n\"a\":2}}}";
        let e = from_json_slice::<Sample>(text, |_| {}).err().unwrap();
        assert!(e.message.contains("duplicate key `a`"), "{e:?}");
        assert_eq!((e.line, e.path.as_str()), (2, "payload.p"));
    }

    #[test]
    fn unknown_keys_are_reported_with_a_hint_from_the_derive() {
        let mut seen = Vec::new();
        let _ = from_json_slice::<Sample>(b"{\"alpha\":1,\"alpah\":2}", |p| seen.push(p));
        assert_eq!(seen, vec!["alpah"]);
        let mut seen = Vec::new();
        let _ = from_json_slice::<Vec<Sample>>(b"[{\"alpha\":1,\"x\":2}]", |p| seen.push(p));
        assert_eq!(seen, vec!["[0].x"]);
        assert_eq!(field_names::<Sample>(), &["alpha", "payload"]);
        assert_eq!(
            unknown_key("alpah", field_names::<Sample>()),
            "unknown key `alpah` (did you mean `alpha`?); expected one of: alpha, payload"
        );
        assert_eq!(did_you_mean("zzz", &["alpha"]), None);
    }

    #[test]
    fn line_column_counts_characters() {
        assert_eq!(line_column("ab\nçd", 5), (2, 2));
        assert_eq!(line_column("", 3), (1, 1));
    }
}
