//! The one implementation of the queue commands (bump, drop, add), applied to the live queue of
//! a running engine (control inbox) and to the checkpoint of a stopped one
//! ([`control::edit_offline`](crate::control::edit_offline)) with the same checks and messages.

use std::fmt;

use crate::control::ControlCommand;
use crate::error::EngineError;
use crate::spec::{SpecError, WorkSpec};

/// A queue a command can be applied to.
pub(crate) trait QueueState {
    /// Sets the priority of a queued spec; false when it is not queued.
    fn set_priority(&mut self, id: &str, priority: f64) -> bool;
    /// Removes a queued spec; false when it is not queued.
    fn remove(&mut self, id: &str) -> bool;
    /// Whether the spec is running (or kept running by an interrupt).
    fn is_running(&self, id: &str) -> bool;
    /// Whether the id is queued or running.
    fn is_known(&self, id: &str) -> bool;
    /// Adds a valid spec whose id is not known.
    fn add(&mut self, spec: WorkSpec);
}

/// What a command did.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Applied {
    Bumped { id: String, priority: f64 },
    Dropped { id: String },
    Added { id: String },
}

impl fmt::Display for Applied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Applied::Bumped { id, priority } => write!(f, "{id}: priority set to {priority}"),
            Applied::Dropped { id } => write!(f, "{id}: dropped from the queue"),
            Applied::Added { id } => write!(f, "{id}: added to the queue"),
        }
    }
}

/// Applies one command; on error nothing changed.
pub(crate) fn apply(
    state: &mut impl QueueState,
    cmd: &ControlCommand,
) -> Result<Applied, EngineError> {
    let missing = |state: &dyn QueueState, id: &str| {
        if state.is_running(id) {
            EngineError::AlreadyRunning { id: id.to_string() }
        } else {
            EngineError::NotQueued { id: id.to_string() }
        }
    };
    match cmd {
        ControlCommand::Bump { id, priority } => {
            if !priority.is_finite() {
                return Err(SpecError::NonFinitePriority {
                    id: id.clone(),
                    priority: *priority,
                }
                .into());
            }
            if state.set_priority(id, *priority) {
                Ok(Applied::Bumped {
                    id: id.clone(),
                    priority: *priority,
                })
            } else {
                Err(missing(state, id))
            }
        }
        ControlCommand::Drop { id } => {
            if state.remove(id) {
                Ok(Applied::Dropped { id: id.clone() })
            } else {
                Err(missing(state, id))
            }
        }
        ControlCommand::Add { spec } => {
            spec.validate()?;
            if state.is_known(&spec.id) {
                return Err(EngineError::AlreadyKnown {
                    id: spec.id.clone(),
                });
            }
            state.add(spec.clone());
            Ok(Applied::Added {
                id: spec.id.clone(),
            })
        }
    }
}
