//! Steering from the dashboard (`--allow-control` only): bump, drop and stop go through the
//! very functions of `supervisor queue bump|drop` and `supervisor stop`, so they behave the same
//! on a running engine (through `engine/control/`) and on a stopped one (an atomic checkpoint
//! edit). Every refusal is a `403` saying what to do; a refused command changes nothing.

use std::path::PathBuf;
use std::time::Duration;

use axum::Json;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::auth::{Access, forbidden};
use crate::commands::{queue, stop};
use crate::interactive::commands::is_node_id;

/// How long a stop from the dashboard waits for the engine to finish its checkpoint.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(120);

/// `POST /api/w/{key}/queue/bump`.
#[derive(Debug, Clone, Deserialize)]
pub struct BumpRequest {
    /// Node id of a queued experiment.
    pub id: String,
    /// Its new priority (lower runs first).
    pub priority: f64,
}

/// `POST /api/w/{key}/queue/drop`.
#[derive(Debug, Clone, Deserialize)]
pub struct DropRequest {
    /// Node id of a queued experiment.
    pub id: String,
}

/// A control command.
#[derive(Debug, Clone)]
pub enum Action {
    /// `supervisor queue bump`.
    Bump(BumpRequest),
    /// `supervisor queue drop`.
    Drop(DropRequest),
    /// `supervisor stop`.
    Stop,
}

/// Whether this request may steer: `Some` is the refusal to send.
pub fn refusal(access: &Access, authorized: bool, headers: &HeaderMap) -> Option<Response> {
    if !access.control {
        return Some(forbidden(
            "control is off: this dashboard is read-only; restart it with \
             `supervisor serve … --allow-control` to bump, drop and stop from the page",
        ));
    }
    if !authorized {
        return Some(forbidden(
            "this request does not carry the dashboard's token: open the dashboard through the \
             URL `supervisor serve` printed at start (it ends in ?token=…)",
        ));
    }
    if !access.origin_allowed(headers) {
        let origin = headers
            .get("origin")
            .and_then(|o| o.to_str().ok())
            .unwrap_or("?");
        return Some(forbidden(format!(
            "refused a control request from another site (Origin {origin}); use the dashboard's \
             own page"
        )));
    }
    None
}

/// Carries out `action` on `workdir` (blocking work on a blocking thread) and answers
/// `{ok, message}`: 200 when done, 400 when the command was refused (unknown id, …).
pub async fn carry_out(workdir: PathBuf, action: Action) -> Response {
    let id = match &action {
        Action::Bump(b) => Some(b.id.as_str()),
        Action::Drop(d) => Some(d.id.as_str()),
        Action::Stop => None,
    };
    if let Some(id) = id
        && !is_node_id(id)
    {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"ok": false, "message": format!("id: expected a node id ([A-Za-z0-9._-], at most 128 characters), found {id:?}")})),
        )
            .into_response();
    }
    let done = tokio::task::spawn_blocking(move || match action {
        Action::Bump(b) => queue::bump(&workdir, &b.id, b.priority),
        Action::Drop(d) => queue::drop(&workdir, &d.id),
        Action::Stop => stop::stop(&workdir, STOP_TIMEOUT),
    })
    .await;
    match done {
        Ok(Ok(message)) => Json(json!({"ok": true, "message": message})).into_response(),
        Ok(Err(e)) => (
            StatusCode::BAD_REQUEST,
            Json(json!({"ok": false, "message": format!("{e:#}")})),
        )
            .into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"ok": false, "message": format!("the command did not finish: {e}")})),
        )
            .into_response(),
    }
}
