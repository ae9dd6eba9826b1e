//! Small helpers shared inside the engine.

use std::time::SystemTime;

/// Current time as RFC 3339 UTC with second precision.
pub(crate) fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

/// Current time as RFC 3339 UTC with millisecond precision (for events).
pub(crate) fn now_rfc3339_millis() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}
