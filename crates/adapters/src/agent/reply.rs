//! Finding the JSON object in an agent's reply text, and the prompt that asks again after an
//! invalid answer.
//!
//! Accepted, in this order: the whole text is a JSON object; the text is a Claude envelope
//! (`"type": "result"`) whose `result` holds the answer; the **last** fenced code block
//! (```` ```json ```` or plain ```` ``` ````) that parses as an object; the last object that
//! starts a line and parses to its end.

use serde_json::{Map, Value};

/// Finds the answer object in `text`; the error says what was expected.
pub fn extract_json(text: &str) -> Result<Map<String, Value>, String> {
    extract(text, 0)
}

fn extract(text: &str, depth: u8) -> Result<Map<String, Value>, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err("the answer is empty; expected a JSON object".into());
    }
    if let Ok(value) = serde_json::from_str::<Value>(trimmed) {
        return match value {
            Value::Object(map) => {
                if depth == 0
                    && map.get("type").and_then(Value::as_str) == Some("result")
                    && let Some(inner) = map.get("result").and_then(Value::as_str)
                {
                    return extract(inner, depth + 1);
                }
                Ok(map)
            }
            other => Err(format!(
                "expected a JSON object, found {}",
                super::schema::describe(&other)
            )),
        };
    }
    if let Some(map) = last_fenced_object(trimmed) {
        return Ok(map);
    }
    if let Some(map) = last_line_object(trimmed) {
        return Ok(map);
    }
    Err(
        "no JSON object found in the answer; expected the JSON object alone or in a \
         ```json fenced block"
            .into(),
    )
}

/// The last fenced block whose content parses as a JSON object.
fn last_fenced_object(text: &str) -> Option<Map<String, Value>> {
    let mut blocks: Vec<String> = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        let t = line.trim_start();
        match &mut current {
            None if t.starts_with("```") => current = Some(String::new()),
            Some(body) if t.trim_end() == "```" => {
                blocks.push(std::mem::take(body));
                current = None;
            }
            Some(body) => {
                body.push_str(line);
                body.push('\n');
            }
            None => {}
        }
    }
    blocks
        .iter()
        .rev()
        .find_map(|b| match serde_json::from_str(b.trim()) {
            Ok(Value::Object(map)) => Some(map),
            _ => None,
        })
}

/// The last `{` at the start of a line from which the rest of the text parses as one object
/// (trailing prose after it is allowed).
fn last_line_object(text: &str) -> Option<Map<String, Value>> {
    let starts: Vec<usize> = text
        .match_indices('\n')
        .map(|(i, _)| i + 1)
        .chain(std::iter::once(0))
        .filter(|&i| text[i..].trim_start_matches([' ', '\t']).starts_with('{'))
        .collect();
    let mut starts = starts;
    starts.sort_unstable();
    starts.iter().rev().find_map(|&i| {
        let mut stream = serde_json::Deserializer::from_str(&text[i..]).into_iter::<Value>();
        match stream.next() {
            Some(Ok(Value::Object(map))) => Some(map),
            _ => None,
        }
    })
}

/// The prompt of a retry after an invalid answer: the original prompt (calls are stateless),
/// then the error and the request to answer with JSON only.
pub fn retry_prompt(original: &str, error: &str) -> String {
    format!(
        "{original}\n\n---\n\nYour previous answer was invalid: {error}\n\
         Answer again with JSON only: one JSON object in the format described above, nothing \
         else.\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_alone() {
        let m = extract_json(" {\"action\":\"stop\"} \n").unwrap();
        assert_eq!(m["action"], "stop");
    }

    #[test]
    fn last_fenced_block_that_parses_wins() {
        let text = "Thinking...\n```json\n{\"n\":1}\n```\nmore\n```\n{\"n\":2}\n```\n\
                    and a broken one\n```json\n{\"n\":\n```\nbye";
        assert_eq!(extract_json(text).unwrap()["n"], 2);
    }

    #[test]
    fn envelope_result_is_unwrapped() {
        let inner = "Here:\n```json\n{\"action\":\"launch\"}\n```";
        let env = serde_json::json!({"type":"result","is_error":false,"result":inner});
        assert_eq!(extract_json(&env.to_string()).unwrap()["action"], "launch");
    }

    #[test]
    fn object_in_prose_without_fence() {
        let text = "My plan:\n{\"action\": \"stop\",\n \"reasoning\": \"done\"}\nThanks!";
        assert_eq!(extract_json(text).unwrap()["reasoning"], "done");
    }

    #[test]
    fn garbage_and_non_objects_are_errors() {
        let e = extract_json("I could not decide.").unwrap_err();
        assert!(e.contains("no JSON object"), "{e}");
        let e = extract_json("[1,2]").unwrap_err();
        assert!(e.contains("expected a JSON object, found [1,2]"), "{e}");
    }

    #[test]
    fn retry_prompt_keeps_the_original_and_shows_the_error() {
        let p = retry_prompt("PROMPT", "experiments[0].name: expected a string");
        assert!(p.starts_with("PROMPT"));
        assert!(
            p.contains("your previous answer was invalid: experiments[0].name")
                || p.contains("Your previous answer was invalid: experiments[0].name")
        );
        assert!(p.contains("JSON only"));
    }
}
