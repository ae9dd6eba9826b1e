//! `job.command` templates: `{name}` placeholders, `{{`/`}}` escapes, the one shell-quoting
//! helper ([`shell_quote`], the `shlex` crate's `try_quote`), the check that every placeholder
//! stands where a quoted value stays one literal word ([`check_template`]), and the
//! `AUTORESEARCH_PARAM_<NAME>` environment of a job.
//!
//! The rule (documented in `docs/config-reference.md`): a placeholder is replaced by its value,
//! shell-quoted, so it must stand where the shell reads a quoted word as one literal argument:
//! bare (`--workers {workers}`) or glued to unquoted text (`--name={name}`). Inside single or
//! double quotes, backticks, `$(…)`, `$((…))`, `${…}`, a comment or a here-document, or right
//! after `\` or `$`, the quoting would not hold, so such a template is refused when the
//! configuration is read.

use std::borrow::Cow;

use serde_json::{Map, Value};

use super::error::ConfigError;
use super::values::value_to_raw;

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

/// Quotes `s` for a POSIX shell so that it is read as one word, verbatim, and never executed
/// (the `shlex` crate's `try_quote`: words of safe characters stay bare). The only refusal is a
/// NUL character, which no shell word can hold.
pub fn shell_quote(s: &str) -> Result<Cow<'_, str>, shlex::QuoteError> {
    shlex::try_quote(s)
}

/// `s` as one shell word for a command shown to a person (in a report or a hint): the same
/// quoting as [`shell_quote`], with a NUL character (which no shell word can hold, and
/// validation keeps out of every file) shown as `\0`.
pub fn shell_word(s: &str) -> String {
    match shlex::try_quote(s) {
        Ok(q) => q.into_owned(),
        Err(_) => shell_word(&s.replace('\0', "\\0")),
    }
}

/// A shell context a placeholder can be found in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ctx {
    /// `'…'`.
    Single,
    /// `"…"`.
    Double,
    /// `` `…` ``.
    Backtick,
    /// `$(…)`.
    Subst,
    /// `$((…))`.
    Arith,
    /// `${…}`.
    Brace,
    /// `(…)`: a subshell or group, parsed like the top level.
    Paren,
}

/// One token of a template: a character of its text or a placeholder.
#[derive(Debug, Clone, Copy)]
enum Tok<'a> {
    Char(char),
    Ph(&'a str),
}

fn tokens(template: &str) -> Vec<Tok<'_>> {
    let mut out = Vec::with_capacity(template.len());
    for piece in parse_template(template) {
        match piece {
            Piece::Text(t) => out.extend(t.chars().map(Tok::Char)),
            Piece::Placeholder(n) => out.push(Tok::Ph(n)),
        }
    }
    out
}

/// Checks that every placeholder of `template` stands where its shell-quoted value is read as
/// one literal word (see the module docs); the error says where it stands and how to write it.
pub fn check_template(template: &str) -> Result<(), String> {
    let toks = tokens(template);
    let ch = |i: usize| match toks.get(i) {
        Some(Tok::Char(c)) => Some(*c),
        _ => None,
    };
    let mut stack: Vec<Ctx> = Vec::new();
    let mut escaped = false;
    let mut comment = false;
    let mut word_start = true;
    let mut prev: Option<char> = None;
    // Here-documents whose bodies start at the next newline: (delimiter, strip leading tabs).
    let mut pending: Vec<(String, bool)> = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        let top = stack.last().copied();
        let c = match toks[i] {
            Tok::Ph(name) => {
                let place = if comment {
                    Some("inside a comment")
                } else if escaped {
                    Some("right after a backslash")
                } else if prev == Some('$') {
                    Some("right after `$`")
                } else {
                    match stack.iter().rev().find(|c| **c != Ctx::Paren) {
                        Some(Ctx::Single) => Some("inside single quotes"),
                        Some(Ctx::Double) => Some("inside double quotes"),
                        Some(Ctx::Backtick) => Some("inside a `…` command substitution"),
                        Some(Ctx::Subst) => Some("inside a $(…) command substitution"),
                        Some(Ctx::Arith) => Some("inside $((…))"),
                        Some(Ctx::Brace) => Some("inside ${…}"),
                        Some(Ctx::Paren) | None => None,
                    }
                };
                if let Some(place) = place {
                    return Err(placement_error(name, place));
                }
                escaped = false;
                word_start = false;
                prev = None;
                i += 1;
                continue;
            }
            Tok::Char(c) => c,
        };
        i += 1;
        if comment {
            if c == '\n' {
                comment = false;
            } else {
                continue;
            }
        }
        if escaped {
            escaped = false;
            word_start = false;
            prev = None;
            continue;
        }
        match top {
            Some(Ctx::Single) => {
                if c == '\'' {
                    stack.pop();
                }
            }
            Some(Ctx::Backtick) => match c {
                '\\' => escaped = true,
                '`' => {
                    stack.pop();
                }
                _ => {}
            },
            Some(Ctx::Double) => match c {
                '\\' => escaped = true,
                '"' => {
                    stack.pop();
                }
                '`' => stack.push(Ctx::Backtick),
                '$' => i += open_dollar(&mut stack, ch(i), ch(i + 1)),
                _ => {}
            },
            Some(Ctx::Arith) => match c {
                '(' => stack.push(Ctx::Paren),
                ')' => {
                    stack.pop();
                    if ch(i) == Some(')') {
                        i += 1;
                    }
                }
                '$' => i += open_dollar(&mut stack, ch(i), ch(i + 1)),
                _ => {}
            },
            // The top level and everything parsed like it.
            None | Some(Ctx::Subst | Ctx::Paren | Ctx::Brace) => match c {
                '\\' => escaped = true,
                '\'' => stack.push(Ctx::Single),
                '"' => stack.push(Ctx::Double),
                '`' => stack.push(Ctx::Backtick),
                '$' => i += open_dollar(&mut stack, ch(i), ch(i + 1)),
                '}' if top == Some(Ctx::Brace) => {
                    stack.pop();
                }
                '(' if top != Some(Ctx::Brace) => stack.push(Ctx::Paren),
                ')' if matches!(top, Some(Ctx::Subst | Ctx::Paren)) => {
                    stack.pop();
                }
                '#' if word_start && top != Some(Ctx::Brace) => comment = true,
                '<' if prev != Some('<')
                    && ch(i) == Some('<')
                    && ch(i + 1) != Some('<')
                    && top != Some(Ctx::Brace) =>
                {
                    let (delimiter, strip, used) = heredoc_delimiter(&toks[i + 1..])?;
                    pending.push((delimiter, strip));
                    i += 1 + used;
                }
                '\n' if !pending.is_empty() => {
                    i = skip_heredocs(&toks, i, &mut pending)?;
                }
                _ => {}
            },
        }
        word_start = c.is_whitespace() || ";&|()<>".contains(c);
        prev = Some(c);
    }
    match stack.iter().rev().find(|c| **c != Ctx::Paren) {
        Some(Ctx::Single) => Err("a single quote (') is not closed".into()),
        Some(Ctx::Double) => Err("a double quote (\") is not closed".into()),
        _ => Ok(()),
    }
}

/// After `$`: opens `$((`, `$(` or `${` and returns how many more characters it used.
fn open_dollar(stack: &mut Vec<Ctx>, next: Option<char>, after: Option<char>) -> usize {
    match (next, after) {
        (Some('('), Some('(')) => {
            stack.push(Ctx::Arith);
            2
        }
        (Some('('), _) => {
            stack.push(Ctx::Subst);
            1
        }
        (Some('{'), _) => {
            stack.push(Ctx::Brace);
            1
        }
        _ => 0,
    }
}

/// Reads the delimiter after `<<` (`-` strips tabs; quotes are removed). Returns it, the strip
/// flag and the number of tokens used.
fn heredoc_delimiter(toks: &[Tok<'_>]) -> Result<(String, bool, usize), String> {
    let mut i = 0;
    let strip = matches!(toks.first(), Some(Tok::Char('-')));
    if strip {
        i += 1;
    }
    while matches!(toks.get(i), Some(Tok::Char(' ' | '\t'))) {
        i += 1;
    }
    let mut word = String::new();
    let mut quote: Option<char> = None;
    while let Some(tok) = toks.get(i) {
        match *tok {
            Tok::Ph(name) => {
                return Err(placement_error(name, "in a here-document delimiter"));
            }
            Tok::Char(c) if quote == Some(c) => quote = None,
            Tok::Char(c @ ('\'' | '"')) if quote.is_none() => quote = Some(c),
            Tok::Char('\\') if quote.is_none() => {}
            Tok::Char(c) if quote.is_none() && (c.is_whitespace() || ";&|()<>".contains(c)) => {
                break;
            }
            Tok::Char(c) => word.push(c),
        }
        i += 1;
    }
    Ok((word, strip, i))
}

/// Skips the bodies of the pending here-documents that start after the newline at `i - 1`;
/// a placeholder in a body is refused. Returns the index after the last delimiter line.
fn skip_heredocs(
    toks: &[Tok<'_>],
    mut i: usize,
    pending: &mut Vec<(String, bool)>,
) -> Result<usize, String> {
    for (delimiter, strip) in pending.drain(..) {
        loop {
            if i >= toks.len() {
                return Ok(i);
            }
            let mut line = String::new();
            while let Some(tok) = toks.get(i) {
                i += 1;
                match *tok {
                    Tok::Char('\n') => break,
                    Tok::Char(c) => line.push(c),
                    Tok::Ph(name) => {
                        return Err(placement_error(name, "inside a here-document"));
                    }
                }
            }
            let line = if strip {
                line.trim_start_matches('\t')
            } else {
                &line
            };
            if line == delimiter {
                break;
            }
        }
    }
    Ok(i)
}

fn placement_error(name: &str, place: &str) -> String {
    let env = format!("AUTORESEARCH_PARAM_{}", name.to_ascii_uppercase());
    format!(
        "placeholder {{{name}}} is {place}, where its value could be read as shell code: \
         expected it bare, as in `--{name} {{{name}}}` or `--{name}={{{name}}}` (the value is \
         shell-quoted for you, so do not add quotes), or use the environment variable \
         \"${env}\" inside quotes or scripts"
    )
}

/// Replaces each `{name}` in `template` by the shell-quoted value of `params[name]`
/// (numbers canonical: an int is written `8`, never `8.0`); `{{` and `}}` give literal braces.
/// A placeholder with no value in `params`, or a value with a NUL character, is an error
/// naming it.
pub fn render_command(template: &str, params: &Map<String, Value>) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(template.len() + 16);
    for piece in parse_template(template) {
        match piece {
            Piece::Text(text) => out.push_str(text),
            Piece::Placeholder(name) => match params.get(name) {
                Some(value) => {
                    let raw = value_to_raw(value);
                    let quoted = shell_quote(&raw).map_err(|_| ConfigError::Render {
                        message: format!(
                            "the value of {{{name}}} contains a NUL character, which no shell \
                             argument can hold"
                        ),
                    })?;
                    out.push_str(&quoted);
                }
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
    fn placeholders_in_safe_positions_are_accepted() {
        for ok in [
            "run {p}",
            "run --name={p} x{p}y {p}{p}",
            "cd 'a dir' && run {p} # comment with {{braces}}",
            "run \"$HOME/x\" {p} | tee 'log' ; (cd sub && run {p})",
            "echo $(date) {p} `date` {p}",
            "cat <<EOF\nhello\nEOF\nrun {p}",
            "cat <<-'END'\n\thello $x\n\tEND\nrun {p}",
            "x=${HOME:-/} run {p} <<< {p}",
            "for i in 1 2; do run {p} $i; done",
        ] {
            assert_eq!(check_template(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn placeholders_where_quoting_breaks_are_refused() {
        for (bad, place) in [
            ("run \"{p}\"", "double quotes"),
            ("run --name=\"{p}\"", "double quotes"),
            ("run '{p}'", "single quotes"),
            ("run `echo {p}`", "`…`"),
            ("run $(echo {p})", "$(…)"),
            ("run \"$(echo {p})\"", "$(…)"),
            ("echo $(( {p} + 1 ))", "$((…))"),
            ("echo ${x:-{p}}", "${…}"),
            ("run # {p}", "comment"),
            ("run \\{p}", "backslash"),
            ("run ${p}", "`$`"),
            ("cat <<EOF\n{p}\nEOF", "here-document"),
        ] {
            let e = check_template(bad).unwrap_err();
            assert!(e.contains(place), "{bad}: {e}");
            assert!(e.contains("--p={p}"), "{bad}: {e}");
        }
        assert!(check_template("run 'unclosed {p}").is_err());
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("abc-1.5").unwrap(), "abc-1.5");
        assert_eq!(shell_quote("").unwrap(), "''");
        assert!(shell_quote("a\0b").is_err());
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
