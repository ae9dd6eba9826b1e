//! Starting and stopping the dashboard: check the arguments, bind, load the workdir (a single
//! workdir is loaded before the URL is printed, so the first page is served from memory), print
//! the URL and what it allows, serve until SIGINT or SIGTERM, then end the live streams and
//! return.

use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::auth::Access;
use super::routes::{AppState, router};
use super::workdirs::Registry;
use crate::exit::Exit;

/// The default port.
pub const DEFAULT_PORT: u16 = 8700;

/// `supervisor serve` arguments.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// A workdir, or a folder of workdirs.
    pub path: PathBuf,
    /// The address to listen on (`127.0.0.1`, `::1`, `0.0.0.0`, `localhost`, …).
    pub bind: String,
    /// The port (0: any free port).
    pub port: u16,
    /// Whether the page may bump, drop and stop.
    pub allow_control: bool,
}

/// Parses `--bind`: an IP address, or `localhost`.
pub fn parse_bind(s: &str) -> Result<IpAddr> {
    if s.eq_ignore_ascii_case("localhost") {
        return Ok(IpAddr::from([127, 0, 0, 1]));
    }
    s.trim_matches(|c| c == '[' || c == ']')
        .parse()
        .map_err(|_| {
            Exit::bad_input(format!(
                "--bind: expected an IP address such as 127.0.0.1, ::1 or 0.0.0.0, found {s:?}"
            ))
        })
}

/// Runs the dashboard until interrupted; returns the exit status (0).
pub fn run(opts: &ServeOptions) -> Result<i32> {
    let path = &opts.path;
    if !path.exists() {
        return Err(Exit::bad_input(format!(
            "{} does not exist: give a workdir (a folder given to `supervisor run`) or a folder of workdirs",
            path.display()
        )));
    }
    let single = crate::commands::require_workdir(path).is_ok();
    if !single && !path.is_dir() {
        return Err(Exit::bad_input(format!(
            "{} is not a folder: give a workdir or a folder of workdirs",
            path.display()
        )));
    }
    let ip = parse_bind(&opts.bind)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(serve(opts, ip, single))
}

async fn serve(opts: &ServeOptions, ip: IpAddr, single: bool) -> Result<i32> {
    let listener = TcpListener::bind((ip, opts.port)).await.with_context(|| {
        format!(
            "cannot listen on {ip} port {}: is another dashboard running there? pass --port N, \
             or --port 0 for any free port",
            opts.port
        )
    })?;
    let port = listener
        .local_addr()
        .context("reading the bound port")?
        .port();
    let access = Arc::new(Access::new(ip, port, opts.allow_control)?);
    let shutdown = CancellationToken::new();
    let registry = Arc::new(if single {
        Registry::single(&opts.path, shutdown.clone())
    } else {
        Registry::folder(&opts.path, shutdown.clone())
    });
    let what = if let Some(key) = registry.single_key() {
        // Load now: the first page is then served from memory, and a broken workdir is
        // reported here rather than in the browser.
        match registry.get(&key).await {
            Some(Ok(live)) => format!(
                "{} ({} nodes, loaded in {:.0} ms)",
                opts.path.display(),
                live.current().view.nodes.len(),
                live.current().load_ms
            ),
            Some(Err(e)) => return Err(Exit::bad_input(e)),
            None => opts.path.display().to_string(),
        }
    } else {
        let n = registry.list_blocking().await.map(|l| l.len()).unwrap_or(0);
        format!("{n} workdir(s) under {}", opts.path.display())
    };

    let mut out = std::io::stdout().lock();
    writeln!(out, "dashboard: {}", access.url())?;
    writeln!(out, "serving {what}")?;
    if access.token_for_reads() {
        writeln!(
            out,
            "bound to {ip}, which is not a loopback address: every request needs the token in \
             the URL above (it changes at every start); anyone with the URL who can reach this \
             port can read the run — prefer an SSH tunnel to 127.0.0.1"
        )?;
    }
    if access.control {
        writeln!(
            out,
            "control on: bump, drop and stop work from a page opened with the token in the URL above"
        )?;
    } else {
        writeln!(
            out,
            "read-only: restart with --allow-control to bump, drop and stop from the page"
        )?;
    }
    writeln!(out, "Ctrl+C stops the dashboard (the run is not affected)")?;
    out.flush()?;
    drop(out);

    let app = router(AppState {
        registry,
        access,
        shutdown: shutdown.clone(),
    });
    let stop = shutdown.clone();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            wait_for_signal().await;
            stop.cancel();
        })
        .await
        .context("serving the dashboard")?;
    Ok(0)
}

async fn wait_for_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}
