//! The experiment workflow's own events in `engine/events.jsonl`, beside the engine's spec
//! events: one typed definition, used by the workflow that writes them and by every reader.

use autoresearch_engine::{Event, EventLine};
use serde::{Deserialize, Serialize};

use crate::model::FailureKind;

/// An event of an experiment (a node of the hypothesis tree).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum NodeEvent {
    /// The node's job started (or was found running after a restart).
    NodeStarted {
        /// Node id.
        id: String,
        /// The executor's job id, when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        job_id: Option<String>,
    },
    /// The node completed with its primary metric.
    NodeCompleted {
        /// Node id.
        id: String,
        /// The primary metric.
        primary: f64,
        /// Whether it is a new best.
        improved: bool,
    },
    /// The node failed (its `failure.json` has the details).
    NodeFailed {
        /// Node id.
        id: String,
        /// The kind of failure.
        kind: FailureKind,
        /// Why.
        message: String,
    },
    /// A planning round's coding agent failed (after its retries); the round fell back to
    /// `planner.agent.fallback`.
    PlannerFailed {
        /// The node planned from.
        id: String,
        /// What failed and what the round did instead.
        message: String,
    },
}

/// The annotation the workflow sets on a running experiment (shown in `engine/active.json`;
/// read it with `autoresearch_engine::views::read_active::<JobAnnotation>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobAnnotation {
    /// The executor's job id.
    pub job_id: String,
}

/// Any event of a run's log: the engine's or the workflow's. Read the log with
/// `autoresearch_engine::events::read_events::<RunEvent>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RunEvent {
    /// An event of the engine (`engine_*`, `spec_*`, `checkpoint_edit`, `warning`).
    Engine(Event),
    /// An event of the experiment workflow (`node_*`).
    Node(NodeEvent),
}

/// One line of a run's event log.
pub type RunEventLine = EventLine<RunEvent>;

impl super::ExperimentWorkflow {
    /// Appends a node event to the run's event log (once the engine has started the workflow).
    pub(crate) fn emit(&self, event: NodeEvent) {
        if let Some(log) = self.events.get() {
            log.emit(&event);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_and_node_events_read_back_as_one_type() {
        let node: RunEventLine = serde_json::from_str(
            r#"{"ts":"t","event":"node_failed","id":"a","kind":"nonzero_exit","message":"m"}"#,
        )
        .unwrap();
        assert_eq!(
            node.event,
            RunEvent::Node(NodeEvent::NodeFailed {
                id: "a".into(),
                kind: FailureKind::NonzeroExit,
                message: "m".into()
            })
        );
        let spec: RunEventLine =
            serde_json::from_str(r#"{"ts":"t","event":"spec_completed","id":"a"}"#).unwrap();
        assert_eq!(
            spec.event,
            RunEvent::Engine(Event::SpecCompleted { id: "a".into() })
        );
        assert!(serde_json::from_str::<RunEventLine>(r#"{"ts":"t","event":"other"}"#).is_err());
    }
}
