//! Fail-fast: a run whose first experiments all fail stops early instead of spending its whole
//! budget on the same mistake (a wrong metric name, a command that cannot run).
//!
//! While no experiment of the run has completed (over all resumes), the run stops as soon as
//! the baseline fails, or as soon as [`FAIL_FAST_AFTER`] experiments have failed with the same
//! [`FailureKind`]. The verdict ([`FailFast`]) stops the engine (no new experiment starts,
//! running ones finish, no planning round asks the planner for more), and is written to
//! `state.json` (`fail_fast`, with the stop reason) when the engine ends. A resume starts
//! afresh: the rule is checked again only when the next failure is recorded.

use std::collections::BTreeSet;

use super::ExperimentWorkflow;
use crate::model::{FAIL_FAST_AFTER, FailFast, Failure, FailureKind, NodeStatus};

impl ExperimentWorkflow {
    /// Looks at the run after `id` failed with `kind` (its failure is recorded): fails fast
    /// when the rule holds. Called once per recorded failure.
    pub(crate) fn check_fail_fast(&self, id: &str, kind: FailureKind) {
        if self.fail_fast().is_some() {
            return;
        }
        let state = self.ledger.snapshot();
        if state.experiments_completed > 0 {
            return;
        }
        let baseline = state.baseline_node.as_deref();
        let nodes: Vec<String> = if baseline == Some(id) {
            vec![id.to_string()]
        } else {
            let same: Vec<String> = self
                .nodes
                .all()
                .into_iter()
                .filter(|n| n.status == NodeStatus::Failed)
                .map(|n| n.spec.node_id)
                .filter(|n| self.failure_of(n).is_some_and(|f| f.kind == kind))
                .collect();
            if same.len() < FAIL_FAST_AFTER {
                return;
            }
            same
        };
        let verdict = self.verdict(kind, nodes, baseline);
        tracing::warn!(
            kind = kind.as_str(),
            "failing fast: {}",
            verdict_reason(&verdict)
        );
        if let Ok(mut f) = self.fail_fast.lock() {
            *f = Some(verdict);
        }
    }

    /// The run's fail-fast verdict in this engine process, if it failed fast.
    pub fn fail_fast(&self) -> Option<FailFast> {
        self.fail_fast.lock().ok().and_then(|f| f.clone())
    }

    /// The stop reason of the verdict, if the run failed fast.
    pub(crate) fn fail_fast_reason(&self) -> Option<String> {
        self.fail_fast().map(|f| verdict_reason(&f))
    }

    fn failure_of(&self, id: &str) -> Option<Failure> {
        self.nodes.read_file::<Failure>(id, "failure.json").ok()?
    }

    /// The verdict on `nodes` (failed with `kind`): the latest message and, for a missing
    /// metric, the metrics the jobs reported instead and the one probably meant.
    fn verdict(&self, kind: FailureKind, nodes: Vec<String>, baseline: Option<&str>) -> FailFast {
        let baseline = baseline.is_some_and(|b| nodes.iter().any(|n| n == b));
        let metric = self.config.objective.metric.clone();
        let failures: Vec<Failure> = nodes.iter().filter_map(|n| self.failure_of(n)).collect();
        let message = failures
            .last()
            .map(|f| f.message.clone())
            .unwrap_or_default();
        let mut seen = BTreeSet::new();
        if kind == FailureKind::MissingMetric {
            for f in &failures {
                if let Some(m) = f.details.get("metrics").and_then(|m| m.as_object()) {
                    seen.extend(m.keys().cloned());
                }
            }
        }
        let metrics_seen: Vec<String> = seen.into_iter().collect();
        let suggested_metric = suggest_metric(&metric, &metrics_seen);
        FailFast {
            kind,
            nodes,
            baseline,
            metric,
            message,
            metrics_seen,
            suggested_metric,
        }
    }
}

/// The stop reason of a verdict, in the workflow's words: which rule, which kind, the latest
/// message. (What to do about it is said by the command line, which knows its commands.)
pub fn verdict_reason(f: &FailFast) -> String {
    let which = if f.nodes.len() == 1 && f.baseline {
        format!(
            "the baseline {} failed with {}",
            f.nodes[0],
            f.kind.as_str()
        )
    } else {
        format!(
            "{} experiments failed with {} ({})",
            f.nodes.len(),
            f.kind.as_str(),
            f.nodes.join(", ")
        )
    };
    format!(
        "fail-fast: {which} before any experiment completed: {}",
        f.message
    )
}

/// The reported metric that is probably the one meant: the only one reported, else the one
/// whose name is closest to `metric` (case aside, an edit distance of at most a third of its
/// length).
pub fn suggest_metric(metric: &str, seen: &[String]) -> Option<String> {
    if let [only] = seen {
        return Some(only.clone());
    }
    let wanted = metric.to_lowercase();
    seen.iter()
        .map(|s| (strsim::damerau_levenshtein(&wanted, &s.to_lowercase()), s))
        .filter(|(d, s)| *d <= (s.len().max(wanted.len()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, s)| s.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_the_only_metric_or_a_close_one() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            suggest_metric("thruput", &s(&["throughput"])).as_deref(),
            Some("throughput")
        );
        assert_eq!(
            suggest_metric("thruput", &s(&["seconds", "throughput"])).as_deref(),
            Some("throughput")
        );
        assert_eq!(
            suggest_metric("Score", &s(&["loss", "score"])).as_deref(),
            Some("score")
        );
        assert_eq!(suggest_metric("latency", &s(&["loss", "score"])), None);
        assert_eq!(suggest_metric("latency", &s(&[])), None);
    }

    #[test]
    fn the_reason_names_the_rule_the_kind_and_the_message() {
        let mut f = FailFast {
            kind: FailureKind::MissingMetric,
            nodes: vec!["000_baseline".into()],
            baseline: true,
            metric: "thruput".into(),
            message: "the job did not report the primary metric `thruput`".into(),
            metrics_seen: vec!["throughput".into()],
            suggested_metric: Some("throughput".into()),
        };
        let r = verdict_reason(&f);
        assert!(r.starts_with(
            "fail-fast: the baseline 000_baseline failed with missing_metric before any \
             experiment completed"
        ));
        assert!(r.contains("`thruput`"), "{r}");
        f.nodes = vec!["001_a".into(), "002_b".into(), "003_c".into()];
        f.baseline = false;
        let r = verdict_reason(&f);
        assert!(
            r.contains("3 experiments failed with missing_metric (001_a, 002_b, 003_c)"),
            "{r}"
        );
    }
}
