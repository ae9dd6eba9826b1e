//! `job.command` templates: `{name}` placeholders, `{{`/`}}` escapes, shell quoting of values,
//! and the `AUTORESEARCH_PARAM_<NAME>` environment of a job.

use serde_json::{Map, Value};

use super::ConfigError;
use super::params::value_to_raw;

/// One piece of a parsed command template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Piece<'a> {
    /// Text copied as is (escapes already resolved).
    Text(&'a str),
    /// `{name}`.
    Placeholder(&'a str),
}

/// Splits a template into text and placeholders. `{{` and `}}` are literal braces; `{name}` with
/// `name` matching `[A-Za-z_][A-Za-z0-9_]*` is a placeholder; any other brace is literal text
/// (so `${HOME}`-style shell code needs `{{`/`}}` only when the inside looks like a name).
pub(crate) fn parse_template(template: &str) -> Vec<Piece<'_>> {
    let bytes = template.as_bytes();
    let mut pieces = Vec::new();
    let mut text_start = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'{' | b'}' if bytes.get(i + 1) == Some(&bytes[i]) => {
                // Escaped brace: keep the first one, drop the second.
                pieces.push(Piece::Text(&template[text_start..=i]));
                i += 2;
                text_start = i;
            }
            b'{' => {
                let name_len = ident_len(&bytes[i + 1..]);
                if name_len > 0 && bytes.get(i + 1 + name_len) == Some(&b'}') {
                    if text_start < i {
                        pieces.push(Piece::Text(&template[text_start..i]));
                    }
                    pieces.push(Piece::Placeholder(&template[i + 1..i + 1 + name_len]));
                    i += name_len + 2;
                    text_start = i;
                } else {
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    if text_start < bytes.len() {
        pieces.push(Piece::Text(&template[text_start..]));
    }
    pieces
}

/// Length of the identifier (`[A-Za-z_][A-Za-z0-9_]*`) at the start of `bytes`, 0 if none.
fn ident_len(bytes: &[u8]) -> usize {
    match bytes.first() {
        Some(b) if b.is_ascii_alphabetic() || *b == b'_' => bytes
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
            .count(),
        _ => 0,
    }
}

/// Whether `name` is a valid parameter name: `[A-Za-z_][A-Za-z0-9_]*`.
pub fn is_param_name(name: &str) -> bool {
    !name.is_empty() && ident_len(name.as_bytes()) == name.len()
}

/// The placeholder names of a template, in order of appearance (repeats included).
pub fn placeholders(template: &str) -> Vec<&str> {
    parse_template(template)
        .into_iter()
        .filter_map(|p| match p {
            Piece::Placeholder(name) => Some(name),
            Piece::Text(_) => None,
        })
        .collect()
}

/// Quotes `s` for a POSIX shell so that it is passed as one word, verbatim, and never
/// executed: strings made only of `[A-Za-z0-9_./:,+@%-]` are left bare, anything else is
/// wrapped in single quotes with each `'` written `'\''`.
pub fn shell_quote(s: &str) -> String {
    let safe = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_./:,+@%-".contains(&b));
    if safe {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

/// Replaces each `{name}` in `template` by the shell-quoted value of `params[name]`
/// (numbers canonical: an int is written `8`, never `8.0`); `{{` and `}}` give literal braces.
/// A placeholder with no value in `params` is an error naming it.
pub fn render_command(template: &str, params: &Map<String, Value>) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(template.len() + 16);
    for piece in parse_template(template) {
        match piece {
            Piece::Text(text) => out.push_str(text),
            Piece::Placeholder(name) => match params.get(name) {
                Some(value) => out.push_str(&shell_quote(&value_to_raw(value))),
                None => {
                    let known: Vec<&str> = params.keys().map(String::as_str).collect();
                    return Err(ConfigError::Render {
                        message: format!(
                            "placeholder {{{name}}} has no value: expected one of the parameters \
                             [{}]; write {{{{ and }}}} for literal braces",
                            known.join(", ")
                        ),
                    });
                }
            },
        }
    }
    Ok(out)
}

/// The environment that gives a job its parameters: `AUTORESEARCH_PARAM_<NAME>` (the name
/// uppercased) set to the raw value (strings unquoted, numbers canonical), in `params` order.
pub fn param_env(params: &Map<String, Value>) -> Vec<(String, String)> {
    params
        .iter()
        .map(|(name, value)| {
            (
                format!("AUTORESEARCH_PARAM_{}", name.to_ascii_uppercase()),
                value_to_raw(value),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_pieces() {
        assert_eq!(placeholders("run {a} --x={b_2} {a}"), vec!["a", "b_2", "a"]);
        assert_eq!(
            placeholders("echo {{a}} ${1} {not valid} {}"),
            Vec::<&str>::new()
        );
        let params: Map<String, Value> =
            serde_json::from_str(r#"{"a": 8, "b": 0.5, "s": "x y"}"#).unwrap();
        assert_eq!(
            render_command("p {{{a}}} {b} {s} }} {", &params).unwrap(),
            "p {8} 0.5 'x y' } {"
        );
        assert!(render_command("{zzz}", &params).is_err());
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("abc-1.5"), "abc-1.5");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote("a=b"), "'a=b'");
    }

    #[test]
    fn env() {
        let params: Map<String, Value> =
            serde_json::from_str(r#"{"workers": 8.0, "mode": "fast"}"#).unwrap();
        assert_eq!(
            param_env(&params),
            vec![
                ("AUTORESEARCH_PARAM_WORKERS".to_string(), "8".to_string()),
                ("AUTORESEARCH_PARAM_MODE".to_string(), "fast".to_string())
            ]
        );
    }
}
