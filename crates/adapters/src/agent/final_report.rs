//! The agent's final report (`supervisor report --agent`, `final_report.md`): its prompt, the
//! check of its answer, and the citations of node ids in it.
//!
//! The answer is Markdown. It is valid when it is not empty and cites at least one node id of
//! the run. Every word shaped like a node id (`<digits>_<name>`, e.g. `014_wider_buffer`) that
//! is not a node of the run is an **unverified citation**: [`flag_citations`] marks it inline
//! and lists it, so a claim resting on an invented experiment is visible as such.

use std::collections::{BTreeSet, HashSet};

use super::run_brief::{BriefPromptError, RunBrief, render_within};
use super::template::Template;

/// The marker put after an unverified citation.
pub const UNVERIFIED_MARK: &str = "(⚠ no such node)";

/// Renders the report prompt within `max_bytes`.
pub fn render_report_prompt(
    brief: &RunBrief,
    template: &Template,
    max_bytes: usize,
) -> Result<String, BriefPromptError> {
    render_within(brief, template, max_bytes, "report", "", |_| Vec::new())
}

/// A checked report answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportAnswer {
    /// The report's Markdown (a fence around the whole answer removed).
    pub markdown: String,
}

/// Checks a report answer against the run's node ids: not empty, at least one citation of a
/// node of the run. The error is shown to the agent on a retry.
pub fn parse_report(text: &str, known: &HashSet<String>) -> Result<ReportAnswer, String> {
    let markdown = unfence(text).trim().to_string();
    if markdown.is_empty() {
        return Err("the answer is empty; expected the report in Markdown".into());
    }
    let check = check_citations(&markdown, known);
    if check.cited.is_empty() {
        return Err(
            "the report cites no node id of the run; cite the node ids each claim rests on in \
             square brackets, e.g. [003_baseline], using the ids listed in the prompt"
                .into(),
        );
    }
    Ok(ReportAnswer { markdown })
}

/// The node ids a text cites.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Citations {
    /// Cited ids that are nodes of the run.
    pub cited: BTreeSet<String>,
    /// Cited ids that are not, in order of first appearance.
    pub unknown: Vec<String>,
}

/// Finds the node ids `text` cites: every word made of `[A-Za-z0-9._-]` that is a known id, or
/// that is shaped like one (digits, `_`, then a name with a letter).
pub fn check_citations(text: &str, known: &HashSet<String>) -> Citations {
    let mut out = Citations::default();
    for (_, word) in id_words(text) {
        if known.contains(word) {
            out.cited.insert(word.to_string());
        } else if looks_like_node_id(word) && !out.unknown.iter().any(|u| u == word) {
            out.unknown.push(word.to_string());
        }
    }
    out
}

/// `text` with each unverified citation marked inline ([`UNVERIFIED_MARK`] after it), and the
/// list of those ids.
pub fn flag_citations(text: &str, known: &HashSet<String>) -> (String, Citations) {
    let citations = check_citations(text, known);
    if citations.unknown.is_empty() {
        return (text.to_string(), citations);
    }
    let mut out = String::with_capacity(text.len() + 32 * citations.unknown.len());
    let mut last = 0;
    for (start, word) in id_words(text) {
        if !known.contains(word) && looks_like_node_id(word) {
            let end = start + word.len();
            out.push_str(&text[last..end]);
            out.push(' ');
            out.push_str(UNVERIFIED_MARK);
            last = end;
        }
    }
    out.push_str(&text[last..]);
    (out, citations)
}

fn is_id_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-'
}

/// The maximal `[A-Za-z0-9._-]` runs of `text` with their byte offsets, trailing `.`, `-`,
/// `_` (sentence punctuation) left out.
fn id_words(text: &str) -> Vec<(usize, &str)> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if !is_id_byte(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && is_id_byte(bytes[i]) {
            i += 1;
        }
        let word = text[start..i].trim_end_matches(['.', '-', '_']);
        if !word.is_empty() {
            out.push((start, word));
        }
    }
    out
}

/// `<digits>_<name>` where the name has at least one letter: `014_wider_buffer`, not `3_000`.
fn looks_like_node_id(word: &str) -> bool {
    let Some((digits, name)) = word.split_once('_') else {
        return false;
    };
    !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && name.bytes().any(|b| b.is_ascii_alphabetic())
        && autoresearch_engine::spec::is_valid_id(word)
}

/// The answer without a code fence around the whole of it (```` ```markdown … ``` ````).
fn unfence(text: &str) -> &str {
    let t = text.trim();
    if let Some(rest) = t.strip_prefix("```")
        && let Some(body) = rest.strip_suffix("```")
        && let Some((lang, inner)) = body.split_once('\n')
        && !lang.contains(' ')
        && !inner.contains("\n```")
    {
        return inner;
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known() -> HashSet<String> {
        ["000_baseline", "004_buffered_writer", "ask-1_extra"]
            .into_iter()
            .map(String::from)
            .collect()
    }

    #[test]
    fn citations_of_missing_nodes_are_found_and_marked() {
        let text = "Buffering helped [004_buffered_writer]. The idea of [999_ghost] and 123_made_up. \
                    failed; 3_000 rows is a number, not a node; see ask-1_extra.";
        let (flagged, c) = flag_citations(text, &known());
        assert_eq!(
            c.cited.iter().cloned().collect::<Vec<_>>(),
            ["004_buffered_writer", "ask-1_extra"]
        );
        assert_eq!(c.unknown, ["999_ghost", "123_made_up"]);
        assert!(
            flagged.contains("[999_ghost (⚠ no such node)]"),
            "{flagged}"
        );
        assert!(
            flagged.contains("123_made_up (⚠ no such node). failed"),
            "{flagged}"
        );
        assert!(flagged.contains("[004_buffered_writer]. The"), "{flagged}");
        assert!(!flagged.contains("3_000 (⚠"), "{flagged}");
    }

    #[test]
    fn a_report_must_cite_a_node_of_the_run() {
        let e = parse_report("I am not sure what to do here.", &known()).unwrap_err();
        assert!(e.contains("cites no node id"), "{e}");
        assert!(
            parse_report("  \n", &known())
                .unwrap_err()
                .contains("empty")
        );
        let r = parse_report(
            "```markdown\n## What was learned\nSee [000_baseline].\n```",
            &known(),
        )
        .unwrap();
        assert_eq!(r.markdown, "## What was learned\nSee [000_baseline].");
    }
}
