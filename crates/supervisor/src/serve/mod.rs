//! `supervisor serve`: a live web dashboard of one workdir, or of every workdir under a folder.
//!
//! The server (axum on the tokio runtime) reads the workdir only through the supervisor's own
//! loading code ([`crate::render::load::RunView`], [`crate::commands::status`],
//! [`crate::commands::queue::list`]) and keeps one in-memory [`snapshot::Snapshot`] per workdir,
//! reloaded when a short poll of the workdir's files sees a change ([`feed`]). Pages are a
//! single-page app embedded in the binary ([`assets`]); they fetch JSON from `/api/…` and are
//! told of every new snapshot by server-sent events, so nothing reloads the page.
//!
//! The dashboard never writes to a workdir, except through the control endpoints
//! (`--allow-control`), which call the same functions as `supervisor queue` and
//! `supervisor stop` ([`control`]). Who may call what is decided in [`auth`].
//!
//! Index: [`server`] (start, bind, shut down), [`routes`] (the HTTP surface), [`workdirs`] (the
//! workdirs served), [`snapshot`], [`feed`] (live updates and log tails), [`api`] (JSON
//! payloads), [`table`] (filter, sort, page, CSV), [`node`] (one experiment), [`logs`] (a job's
//! logs, read in pieces), [`diff`] (code
//! diffs of agent experiments), [`control`], [`auth`], [`assets`].

pub mod api;
pub mod assets;
pub mod auth;
pub mod control;
pub mod diff;
pub mod feed;
pub mod logs;
pub mod node;
pub mod routes;
pub mod server;
pub mod snapshot;
pub mod table;
pub mod workdirs;

pub use server::{ServeOptions, run};
