//! Proposals as people read them: a short name from the changed parameters and a plain-words
//! hypothesis saying why the point was chosen.

use serde_json::{Map, Value};

use crate::config::{value_to_raw, values_equal};
use crate::planner::Proposal;

/// Changed parameters listed in a proposal's name before `_plus_N`.
const NAME_CHANGES: usize = 3;
/// Changed parameters listed in a hypothesis before "and N more".
const TEXT_CHANGES: usize = 4;

/// One parameter changed relative to the parent.
pub(crate) struct Change {
    name: String,
    from: Value,
    to: Value,
}

/// The parameters whose values differ between `from` and `to`, in `to`'s order.
pub(crate) fn diff(from: &Map<String, Value>, to: &Map<String, Value>) -> Vec<Change> {
    to.iter()
        .filter_map(|(name, v)| {
            let old = from.get(name).cloned().unwrap_or(Value::Null);
            (!values_equal(&old, v)).then(|| Change {
                name: name.clone(),
                from: old,
                to: v.clone(),
            })
        })
        .collect()
}

/// `x 4 → 8, algo gemm → fft` (at most [`TEXT_CHANGES`], then "and N more").
pub(crate) fn describe(changes: &[Change]) -> String {
    if changes.is_empty() {
        return "no parameter changed".into();
    }
    let mut parts: Vec<String> = changes
        .iter()
        .take(TEXT_CHANGES)
        .map(|c| {
            format!(
                "{} {} → {}",
                c.name,
                value_to_raw(&c.from),
                value_to_raw(&c.to)
            )
        })
        .collect();
    if changes.len() > TEXT_CHANGES {
        parts.push(format!("and {} more", changes.len() - TEXT_CHANGES));
    }
    parts.join(", ")
}

/// A proposal for `params`, a child of `parent` (whose parameters are `parent_params`), named
/// after its changes (`workers_8_chunk_256`).
pub(crate) fn proposal(
    parent: &str,
    parent_params: &Map<String, Value>,
    params: Map<String, Value>,
    why: String,
) -> Proposal {
    let changes = diff(parent_params, &params);
    let mut parts: Vec<String> = changes
        .iter()
        .take(NAME_CHANGES)
        .map(|c| format!("{}_{}", c.name, value_to_raw(&c.to)))
        .collect();
    if changes.len() > NAME_CHANGES {
        parts.push(format!("plus_{}", changes.len() - NAME_CHANGES));
    }
    let name = if parts.is_empty() {
        "same".to_string()
    } else {
        parts.join("_")
    };
    Proposal {
        name,
        hypothesis: format!("{why}; from {parent}: {}", describe(&changes)),
        params,
        changes: None,
        priority: None,
        parent: Some(parent.to_string()),
    }
}

/// `0.123456` as `12%`, small probabilities as `<1%`.
pub(crate) fn percent(p: f64) -> String {
    let pct = p * 100.0;
    if pct < 1.0 {
        "<1%".into()
    } else {
        format!("{pct:.0}%")
    }
}
