//! `supervisor run`: the headless engine in the foreground. Fresh run from flags or `--config`,
//! resume from the workdir alone. A progress bar on a terminal, plain lines otherwise; tracing
//! to `logs/autoresearch.log`; views re-rendered (debounced, on another thread) after results.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use autoresearch_adapters::config::Config;
use autoresearch_adapters::session::{self, Session, SessionOptions};
use autoresearch_adapters::workflow::{ExperimentWorkflow, Notice};
use autoresearch_engine::EngineStatus;
use indicatif::{ProgressBar, ProgressStyle};

use crate::cli::RunArgs;
use crate::exit::Exit;

/// Runs the engine; returns the exit status (0 finished, 1 failed fast, 130 interrupted).
pub fn run(args: &RunArgs) -> Result<i32> {
    let workdir = args.workdir.as_path();
    if workdir.exists() && !workdir.is_dir() {
        return Err(Exit::bad_input(format!(
            "{} is a file; give a folder for the workdir",
            workdir.display()
        )));
    }
    if let Some(pid) = autoresearch_engine::lock::holder(workdir).unwrap_or(None) {
        return Err(Exit::locked(pid, workdir));
    }
    if !args.grace_s.is_finite() || args.grace_s < 0.0 {
        return Err(Exit::bad_input(format!(
            "--grace-s: expected a non-negative number of seconds, found {}",
            args.grace_s
        )));
    }
    if autoresearch_adapters::reanalyze::pending(workdir) {
        let wd = autoresearch_adapters::config::shell_word(&workdir.display().to_string());
        return Err(Exit::bad_input(format!(
            "a `supervisor reanalyze` of {} was cut short ({} exists): finish it with              `supervisor reanalyze {wd}`, then run again",
            workdir.display(),
            workdir
                .join(autoresearch_adapters::reanalyze::JOURNAL)
                .display()
        )));
    }
    let stored = if session::has_config(workdir) {
        Some(Config::load(&workdir.join("config.json")).map_err(Exit::bad_input_err)?)
    } else {
        None
    };
    let given = crate::flags::config_from_flags(&args.config, stored.as_ref())
        .map_err(Exit::bad_input_err)?;
    let config = session::resolve_config(workdir, given).map_err(Exit::from_session)?;
    let _log_guard = crate::logging::init_file(workdir)?;
    let options = SessionOptions {
        grace_period: Duration::from_secs_f64(args.grace_s),
        handle_signals: true,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async move {
        let session = Session::open(workdir, config, &options).map_err(Exit::from_session)?;
        let workflow = session.workflow();
        let debouncer = (!args.no_render).then(|| {
            crate::render::RenderDebouncer::new(workdir.to_path_buf(), Duration::from_secs(2))
        });
        let debouncer = debouncer.map(Arc::new);
        let display = tokio::spawn(show_progress(workflow.clone(), debouncer.clone()));
        let report = session.run().await.map_err(Exit::from_session)?;
        display.abort();
        // The aborted display task may still hold a clone: finish through the shared handle.
        if let Some(Some(Err(e))) = debouncer.as_ref().map(|d| d.finish()) {
            eprintln!("warning: rendering the views failed: {e}");
        }
        let state = workflow.state();
        let best = match (&state.best_node, state.best_value) {
            (Some(n), Some(v)) => format!("best {n} {} = {v}", state.metric),
            _ => "no result yet".into(),
        };
        // The workflow's reason is the real one (the limit, the planner's word, the fail-fast
        // verdict); the engine's is only what the engine saw (`queue drained`).
        let why = state
            .stop_reason
            .clone()
            .or(report.stop_reason.clone())
            .map(|r| format!(" ({r})"))
            .unwrap_or_default();
        eprintln!(
            "{}{why}: {} completed, {} failed; {best}; views in {}",
            report.status.as_str(),
            state.experiments_completed,
            state.experiments_failed,
            workdir.display()
        );
        if report.status == EngineStatus::Interrupted {
            return Ok(130);
        }
        if let Some(next) = super::next_step::after_stop(workdir, Some(workflow.config()), &state) {
            eprintln!("next: {next}");
        }
        // A run that failed fast did not do what it was asked: exit 1 ("anything else").
        Ok(if state.fail_fast.is_some() { 1 } else { 0 })
    })
}

/// A progress bar on a terminal, one line per event otherwise; requests a render per result.
async fn show_progress(
    workflow: Arc<ExperimentWorkflow>,
    debouncer: Option<Arc<crate::render::RenderDebouncer>>,
) {
    let mut rx = workflow.subscribe();
    let limit = workflow.config().limits.max_experiments;
    let metric = workflow.config().objective.metric.clone();
    let bar = std::io::stderr().is_terminal().then(|| {
        let b = ProgressBar::new(limit);
        b.set_style(
            ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} experiments · {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        b.enable_steady_tick(Duration::from_millis(200));
        b
    });
    let mut running: Vec<String> = Vec::new();
    loop {
        let notice = match rx.recv().await {
            Ok(n) => n,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
            Err(_) => break,
        };
        let line = match &notice {
            Notice::Started { id } => {
                running.push(id.clone());
                format!("started   {id}")
            }
            Notice::Completed {
                id,
                primary,
                improved,
            } => {
                running.retain(|r| r != id);
                let mark = if *improved { "  ★ new best" } else { "" };
                format!("completed {id}  {metric}={primary}{mark}")
            }
            Notice::Failed { id, message } => {
                running.retain(|r| r != id);
                format!("failed    {id}: {message}")
            }
            Notice::Warning { message } => format!("warning   {message}"),
        };
        if !matches!(notice, Notice::Started { .. })
            && let Some(d) = &debouncer
        {
            d.request();
        }
        let state = workflow.state();
        match &bar {
            Some(b) => {
                b.set_position(workflow.experiments_started().min(limit));
                let best = match (&state.best_node, state.best_value) {
                    (Some(n), Some(v)) => format!("best {v} ({n})"),
                    _ => "no result yet".into(),
                };
                // The agent's cost so far (the engine's calls; `status` adds report/ask).
                let cost = state
                    .agent_cost
                    .as_ref()
                    .map(|c| format!(" · agent {}", c.total.describe()))
                    .unwrap_or_default();
                b.set_message(format!("{best}{cost} · running {}", running.join(", ")));
                if !matches!(notice, Notice::Started { .. }) {
                    b.println(line);
                }
            }
            None => eprintln!("{line}"),
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
}
