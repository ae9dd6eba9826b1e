//! The HTTP surface. Pages (`/`, `/w/…`) all get the same HTML shell, which routes in the
//! browser; data comes from `/api/…`:
//!
//! | route | what |
//! |---|---|
//! | `GET /api/info` | mode (one workdir or a folder), the single workdir's key, control |
//! | `GET /api/workdirs` | the workdirs served, with status, best and experiments |
//! | `GET /api/w/{key}/overview` | run overview ([`api::Overview`]) |
//! | `GET /api/w/{key}/progress` | the progress chart's series |
//! | `GET /api/w/{key}/tree` | the tree with its layout |
//! | `GET /api/w/{key}/nodes?…` | one page of the table ([`table::TableQuery`]) |
//! | `GET /api/w/{key}/csv?…` | the same selection as CSV |
//! | `GET /api/w/{key}/nodes/{id}` | one experiment ([`node::NodeDetail`]) |
//! | `GET /api/w/{key}/nodes/{id}/diff?against=parent\|baseline` | its code diff |
//! | `GET /api/w/{key}/nodes/{id}/log/{stdout\|stderr}?offset=N` | its log: the last lines, then what was appended ([`logs::LogChunk`]) |
//! | `GET /api/w/{key}/events` | live updates (server-sent events) |
//! | `POST /api/w/{key}/queue/bump`, `…/queue/drop`, `…/stop` | control ([`control`]) |

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, middleware};
use serde::Deserialize;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::auth::{self, Access, Authorized};
use super::control::{self, Action, BumpRequest, DropRequest};
use super::feed::{self, Live};
use super::table::TableQuery;
use super::workdirs::Registry;
use super::{api, assets, diff, logs, node, table};
use autoresearch_adapters::workdir::Workdir;

/// What every handler shares.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The workdirs served.
    pub registry: Arc<Registry>,
    /// The access policy.
    pub access: Arc<Access>,
    /// Cancelled when the server shuts down (ends the event streams).
    pub shutdown: CancellationToken,
}

/// The router with every route and the access guard in front.
pub fn router(state: AppState) -> Router {
    let access = state.access.clone();
    Router::new()
        .route("/", get(shell))
        .route("/w/{*rest}", get(shell))
        .route("/assets/{name}", get(asset))
        .route("/api/info", get(info))
        .route("/api/workdirs", get(workdirs))
        .route("/api/w/{key}/overview", get(overview))
        .route("/api/w/{key}/progress", get(progress))
        .route("/api/w/{key}/tree", get(tree))
        .route("/api/w/{key}/nodes", get(nodes))
        .route("/api/w/{key}/csv", get(csv))
        .route("/api/w/{key}/nodes/{id}", get(node_detail))
        .route("/api/w/{key}/nodes/{id}/diff", get(node_diff))
        .route("/api/w/{key}/nodes/{id}/log/{stream}", get(node_log))
        .route("/api/w/{key}/events", get(events))
        .route("/api/w/{key}/queue/bump", post(bump))
        .route("/api/w/{key}/queue/drop", post(drop_queued))
        .route("/api/w/{key}/stop", post(stop))
        .fallback(not_found)
        .layer(middleware::map_response(security_headers))
        .layer(middleware::from_fn_with_state(access, auth::guard))
        .with_state(state)
}

async fn security_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
             img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'",
        ),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({"error": message.into()}))).into_response()
}

async fn not_found() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "no such page; the dashboard starts at /",
    )
}

async fn shell(headers: HeaderMap) -> Response {
    let mut resp = assets::serve("index.html", &headers);
    // Not kept in the back-forward cache with its live feed open.
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

async fn asset(Path(name): Path<String>, headers: HeaderMap) -> Response {
    assets::serve(&name, &headers)
}

fn control_info(access: &Access, authorized: Authorized) -> api::ControlInfo {
    api::ControlInfo {
        enabled: access.control,
        authorized: access.control && authorized.0,
    }
}

async fn info(State(st): State<AppState>, Extension(authz): Extension<Authorized>) -> Response {
    Json(json!({
        "mode": if st.registry.is_folder() { "folder" } else { "single" },
        "root": st.registry.root().display().to_string(),
        "single": st.registry.single_key(),
        "control": control_info(&st.access, authz),
        "version": env!("CARGO_PKG_VERSION"),
    }))
    .into_response()
}

async fn workdirs(State(st): State<AppState>) -> Response {
    match st.registry.list_blocking().await {
        Ok(list) => {
            Json(json!({"root": st.registry.root().display().to_string(), "workdirs": list}))
                .into_response()
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")),
    }
}

/// The live state of workdir `key`, or the error response.
async fn live(st: &AppState, key: &str) -> Result<Arc<Live>, Response> {
    match st.registry.get(key).await {
        Some(Ok(l)) => Ok(l),
        Some(Err(e)) => Err(error(StatusCode::INTERNAL_SERVER_ERROR, e)),
        None => Err(error(
            StatusCode::NOT_FOUND,
            format!("no workdir {key:?} is served here; the list is at /"),
        )),
    }
}

fn json_bytes(bytes: axum::body::Bytes) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], bytes).into_response()
}

async fn overview(
    State(st): State<AppState>,
    Path(key): Path<String>,
    Extension(authz): Extension<Authorized>,
) -> Response {
    let live = match live(&st, &key).await {
        Ok(l) => l,
        Err(r) => return r,
    };
    let snap = live.current();
    Json(api::overview(&key, &snap, control_info(&st.access, authz))).into_response()
}

async fn progress(State(st): State<AppState>, Path(key): Path<String>) -> Response {
    match live(&st, &key).await {
        Ok(l) => json_bytes(api::progress_json(&l.current())),
        Err(r) => r,
    }
}

async fn tree(State(st): State<AppState>, Path(key): Path<String>) -> Response {
    match live(&st, &key).await {
        Ok(l) => json_bytes(api::tree_json(&l.current())),
        Err(r) => r,
    }
}

fn bad_query(e: table::QueryError) -> Response {
    error(StatusCode::BAD_REQUEST, e.0)
}

async fn nodes(
    State(st): State<AppState>,
    Path(key): Path<String>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Response {
    let q = match TableQuery::parse(&pairs) {
        Ok(q) => q,
        Err(e) => return bad_query(e),
    };
    match live(&st, &key).await {
        Ok(l) => Json(table::page(&l.current(), &q)).into_response(),
        Err(r) => r,
    }
}

async fn csv(
    State(st): State<AppState>,
    Path(key): Path<String>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Response {
    let q = match TableQuery::parse(&pairs) {
        Ok(q) => q,
        Err(e) => return bad_query(e),
    };
    let live = match live(&st, &key).await {
        Ok(l) => l,
        Err(r) => return r,
    };
    let snap = live.current();
    match table::csv(&snap, &q) {
        Ok(bytes) => {
            let name: String = key
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            (
                [
                    (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
                    (
                        header::CONTENT_DISPOSITION,
                        format!("attachment; filename=\"{name}-experiments.csv\""),
                    ),
                ],
                bytes,
            )
                .into_response()
        }
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("writing CSV: {e}"),
        ),
    }
}

async fn node_detail(
    State(st): State<AppState>,
    Path((key, id)): Path<(String, String)>,
) -> Response {
    let live = match live(&st, &key).await {
        Ok(l) => l,
        Err(r) => return r,
    };
    let snap = live.current();
    match node::detail(&snap, &id).await {
        Some(d) => Json(d).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            format!("there is no node {id:?} in this workdir"),
        ),
    }
}

#[derive(Debug, Deserialize)]
struct DiffQuery {
    against: Option<String>,
}

async fn node_diff(
    State(st): State<AppState>,
    Path((key, id)): Path<(String, String)>,
    Query(q): Query<DiffQuery>,
) -> Response {
    let live = match live(&st, &key).await {
        Ok(l) => l,
        Err(r) => return r,
    };
    let snap = live.current();
    let Some(&i) = snap.view.by_id.get(&id) else {
        return error(
            StatusCode::NOT_FOUND,
            format!("there is no node {id:?} in this workdir"),
        );
    };
    let Some(c) = diff::commits(&snap.view, i) else {
        return error(
            StatusCode::NOT_FOUND,
            format!("{id} has no commit (it changes no code, or workspace.repo is not configured)"),
        );
    };
    let against = q.against.as_deref().unwrap_or("parent");
    let d = match against {
        "parent" => c.against_parent(diff::MAX_DIFF).await,
        "baseline" => c.against_baseline(diff::MAX_DIFF).await,
        other => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("against: expected parent or baseline, found {other:?}"),
            );
        }
    };
    match d {
        Ok(Some(d)) => Json(d).into_response(),
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            format!("{id}: its code is the same as its {against}'s"),
        ),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("{id}: {e}")),
    }
}

#[derive(Debug, Deserialize)]
struct LogQuery {
    offset: Option<u64>,
}

async fn node_log(
    State(st): State<AppState>,
    Path((key, id, stream)): Path<(String, String, String)>,
    Query(q): Query<LogQuery>,
) -> Response {
    let live = match live(&st, &key).await {
        Ok(l) => l,
        Err(r) => return r,
    };
    let file = match stream.as_str() {
        "stdout" => "stdout.log",
        "stderr" => "stderr.log",
        other => {
            return error(
                StatusCode::NOT_FOUND,
                format!("no log {other:?}: expected stdout or stderr"),
            );
        }
    };
    if !live.current().view.by_id.contains_key(&id) {
        return error(
            StatusCode::NOT_FOUND,
            format!("there is no node {id:?} in this workdir"),
        );
    }
    let wd = Workdir::new(live.root());
    if std::fs::symlink_metadata(wd.run_dir(&id)).is_ok() && !node::run_dir_ok(&wd, &id) {
        return error(
            StatusCode::FORBIDDEN,
            format!(
                "{} is a symbolic link; the dashboard does not follow links inside a workdir",
                wd.run_dir(&id).display()
            ),
        );
    }
    let path = wd.run_dir(&id).join(file);
    match tokio::task::spawn_blocking(move || logs::read(&path, q.offset)).await {
        Ok(chunk) => Json(chunk).into_response(),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("reading the log: {e}"),
        ),
    }
}

async fn events(State(st): State<AppState>, Path(key): Path<String>) -> Response {
    match live(&st, &key).await {
        Ok(l) => Sse::new(feed::updates(l, st.shutdown.clone()))
            .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
            .into_response(),
        Err(r) => r,
    }
}

async fn steer(
    st: &AppState,
    key: &str,
    authz: Authorized,
    headers: &HeaderMap,
    action: Action,
) -> Response {
    if let Some(refusal) = control::refusal(&st.access, authz.0, headers) {
        return refusal;
    }
    match live(st, key).await {
        Ok(l) => control::carry_out(l.root().to_path_buf(), action).await,
        Err(r) => r,
    }
}

async fn bump(
    State(st): State<AppState>,
    Path(key): Path<String>,
    Extension(authz): Extension<Authorized>,
    headers: HeaderMap,
    body: Result<Json<BumpRequest>, JsonRejection>,
) -> Response {
    if let Some(refusal) = control::refusal(&st.access, authz.0, &headers) {
        return refusal;
    }
    let b = match body {
        Ok(Json(b)) => b,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("expected a JSON body {{\"id\": NODE_ID, \"priority\": NUMBER}}: {e}"),
            );
        }
    };
    steer(&st, &key, authz, &headers, Action::Bump(b)).await
}

async fn drop_queued(
    State(st): State<AppState>,
    Path(key): Path<String>,
    Extension(authz): Extension<Authorized>,
    headers: HeaderMap,
    body: Result<Json<DropRequest>, JsonRejection>,
) -> Response {
    if let Some(refusal) = control::refusal(&st.access, authz.0, &headers) {
        return refusal;
    }
    let d = match body {
        Ok(Json(d)) => d,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("expected a JSON body {{\"id\": NODE_ID}}: {e}"),
            );
        }
    };
    steer(&st, &key, authz, &headers, Action::Drop(d)).await
}

async fn stop(
    State(st): State<AppState>,
    Path(key): Path<String>,
    Extension(authz): Extension<Authorized>,
    headers: HeaderMap,
) -> Response {
    steer(&st, &key, authz, &headers, Action::Stop).await
}
