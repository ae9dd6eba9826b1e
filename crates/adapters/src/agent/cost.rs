//! What agent calls cost: dollars when the CLI reports them (Claude Code's `total_cost_usd`),
//! token counts when it reports those (Codex's `turn.completed.usage`), and the number of calls.
//! [`CostBook`] is the serde form summed per run, per phase and per node for `state.json`.

use std::collections::BTreeMap;
use std::ops::{Add, AddAssign};

use serde::{Deserialize, Serialize};

use super::AgentPhase;

/// The cost of one or more agent calls.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Cost {
    /// US dollars, when the agent reported them (`None` when no call did).
    #[serde(default)]
    pub usd: Option<f64>,
    /// Input tokens (including cached ones, as the CLIs report them).
    #[serde(default)]
    pub input_tokens: u64,
    /// Input tokens served from the provider's cache.
    #[serde(default)]
    pub cached_input_tokens: u64,
    /// Output tokens.
    #[serde(default)]
    pub output_tokens: u64,
    /// Agent processes started.
    #[serde(default)]
    pub calls: u64,
}

impl Cost {
    /// One call that reported nothing.
    pub fn one_call() -> Self {
        Cost {
            calls: 1,
            ..Cost::default()
        }
    }

    /// Dollars spent (0 when none were reported).
    pub fn usd_or_zero(&self) -> f64 {
        self.usd.unwrap_or(0.0)
    }

    /// Short human form, e.g. `$0.0312, 12.3k in / 1.1k out tokens, 2 calls`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(usd) = self.usd {
            parts.push(format!("${usd:.4}"));
        }
        if self.input_tokens + self.output_tokens > 0 {
            parts.push(format!(
                "{} in / {} out tokens",
                short_count(self.input_tokens),
                short_count(self.output_tokens)
            ));
        }
        parts.push(format!(
            "{} call{}",
            self.calls,
            if self.calls == 1 { "" } else { "s" }
        ));
        parts.join(", ")
    }
}

fn short_count(n: u64) -> String {
    if n >= 10_000 {
        format!("{:.1}k", n as f64 / 1000.0)
    } else {
        n.to_string()
    }
}

impl Add for Cost {
    type Output = Cost;
    fn add(self, other: Cost) -> Cost {
        Cost {
            usd: match (self.usd, other.usd) {
                (None, None) => None,
                (a, b) => Some(a.unwrap_or(0.0) + b.unwrap_or(0.0)),
            },
            input_tokens: self.input_tokens.saturating_add(other.input_tokens),
            cached_input_tokens: self
                .cached_input_tokens
                .saturating_add(other.cached_input_tokens),
            output_tokens: self.output_tokens.saturating_add(other.output_tokens),
            calls: self.calls.saturating_add(other.calls),
        }
    }
}

impl AddAssign for Cost {
    fn add_assign(&mut self, other: Cost) {
        *self = *self + other;
    }
}

impl std::iter::Sum for Cost {
    fn sum<I: Iterator<Item = Cost>>(iter: I) -> Cost {
        iter.fold(Cost::default(), Add::add)
    }
}

/// Agent costs summed per run, per phase and per node (the `agent_cost` object the integration
/// keeps in `state.json`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CostBook {
    /// Everything.
    #[serde(default)]
    pub total: Cost,
    /// By phase (`plan`, `apply`, `analyze`).
    #[serde(default)]
    pub by_phase: BTreeMap<AgentPhase, Cost>,
    /// By node id (the node planned from, applied or analysed).
    #[serde(default)]
    pub by_node: BTreeMap<String, Cost>,
}

impl CostBook {
    /// Adds one call's cost.
    pub fn add(&mut self, node_id: &str, phase: AgentPhase, cost: Cost) {
        self.total += cost;
        *self.by_phase.entry(phase).or_default() += cost;
        *self.by_node.entry(node_id.to_string()).or_default() += cost;
    }

    /// Whether the dollars spent reached `budget_usd` (`limits.agent_cost_usd`).
    pub fn budget_spent(&self, budget_usd: Option<f64>) -> bool {
        budget_usd.is_some_and(|b| self.total.usd_or_zero() >= b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adding_keeps_unknown_dollars_unknown() {
        let tokens = Cost {
            input_tokens: 10,
            output_tokens: 2,
            calls: 1,
            ..Cost::default()
        };
        assert_eq!((tokens + tokens).usd, None);
        let paid = Cost {
            usd: Some(0.5),
            calls: 1,
            ..Cost::default()
        };
        let sum = tokens + paid + paid;
        assert_eq!(sum.usd, Some(1.0));
        assert_eq!(sum.calls, 3);
        assert_eq!(sum.input_tokens, 10);
    }

    #[test]
    fn the_book_sums_per_phase_and_node_and_checks_the_budget() {
        let mut book = CostBook::default();
        let c = Cost {
            usd: Some(0.25),
            calls: 1,
            ..Cost::default()
        };
        book.add("001_a", AgentPhase::Plan, c);
        book.add("001_a", AgentPhase::Apply, c);
        book.add("002_b", AgentPhase::Plan, c);
        assert_eq!(book.total.usd, Some(0.75));
        assert_eq!(book.by_phase[&AgentPhase::Plan].calls, 2);
        assert_eq!(book.by_node["001_a"].usd, Some(0.5));
        assert!(!book.budget_spent(Some(1.0)));
        assert!(book.budget_spent(Some(0.75)));
        assert!(!book.budget_spent(None));
        let json = serde_json::to_string(&book).unwrap();
        let back: CostBook = serde_json::from_str(&json).unwrap();
        assert_eq!(back, book);
        assert!(json.contains("\"plan\""), "{json}");
    }
}
