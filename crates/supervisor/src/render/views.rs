//! Rendering every view of a workdir: [`render_all`] (the table, the summary and the images)
//! and [`render_report`] (`report.md`), each view guarded so one failure (or panic) never stops
//! the others.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::write::write_text;
use super::{
    NodeCache, RenderError, RunView, render_parallel, render_params, render_progress,
    render_report_md, render_summary, render_table, render_tree,
};

/// File name of the node table in the workdir root.
pub const TABLE_FILE: &str = "master_table.tsv";
/// File name of the summary in the workdir root.
pub const SUMMARY_FILE: &str = "summary.md";
/// File name of the progress plot in the workdir root.
pub const PROGRESS_FILE: &str = "progress.png";
/// File name of the hypothesis tree image in the workdir root.
pub const TREE_FILE: &str = "hypothesis_tree.png";
/// File name of the metric-vs-parameter scatter plots in the workdir root.
pub const PARAMS_FILE: &str = "params.png";
/// File name of the parallel-coordinates plot in the workdir root.
pub const PARALLEL_FILE: &str = "parallel.png";
/// File name of the final report in the workdir root.
pub const REPORT_FILE: &str = "report.md";

/// Time spent on each step of [`render_all`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ViewTimings {
    /// Reading the workdir into a [`RunView`].
    pub load: Duration,
    /// `master_table.tsv` (render + write).
    pub table: Duration,
    /// `summary.md` (render + write).
    pub summary: Duration,
    /// `progress.png` (draw + encode + write).
    pub progress: Duration,
    /// `hypothesis_tree.png` (layout + draw + encode + write).
    pub tree: Duration,
    /// `params.png` (draw + encode + write).
    pub params: Duration,
    /// `parallel.png` (draw + encode + write).
    pub parallel: Duration,
    /// All of it.
    pub total: Duration,
}

/// What [`render_all`] did.
#[derive(Debug, Clone, Default)]
pub struct RenderReport {
    /// The files written.
    pub written: Vec<PathBuf>,
    /// Files that were missing or unreadable (skipped) and other things worth knowing.
    pub warnings: Vec<String>,
    /// Number of nodes rendered.
    pub nodes: usize,
    /// Time per step.
    pub timings: ViewTimings,
}

/// Renders `master_table.tsv`, `summary.md`, `progress.png`, `hypothesis_tree.png`,
/// `params.png` and `parallel.png` into the workdir root, each written atomically.
///
/// Missing or torn node files are skipped and listed in [`RenderReport::warnings`]. If one view
/// fails, the others are still written and the first error is returned.
pub fn render_all(workdir: &Path) -> Result<RenderReport, RenderError> {
    render_all_cached(workdir, &mut NodeCache::default())
}

/// [`render_all`] for a caller that renders the same workdir again and again: the finished
/// nodes of `cache` whose folders did not change are not read again (see [`NodeCache`]).
pub fn render_all_cached(
    workdir: &Path,
    cache: &mut NodeCache,
) -> Result<RenderReport, RenderError> {
    let start = Instant::now();
    let view = RunView::load_cached(workdir, cache)?;
    let mut report = RenderReport {
        nodes: view.nodes.len(),
        warnings: view.warnings.clone(),
        ..Default::default()
    };
    report.timings.load = start.elapsed();
    type Render = fn(&RunView, &Path) -> Result<(), RenderError>;
    let views: [(&'static str, Render); 6] = [
        (TABLE_FILE, |v, p| write_text(p, &render_table(v))),
        (SUMMARY_FILE, |v, p| write_text(p, &render_summary(v))),
        (PROGRESS_FILE, render_progress),
        (TREE_FILE, |v, p| render_tree(v, p).map(|_| ())),
        (PARAMS_FILE, |v, p| render_params(v, p).map(|_| ())),
        (PARALLEL_FILE, |v, p| render_parallel(v, p).map(|_| ())),
    ];
    let mut first_err: Option<RenderError> = None;
    for (name, render) in views {
        let t = Instant::now();
        let path = workdir.join(name);
        match guarded(name, &mut || render(&view, &path)) {
            Ok(()) => report.written.push(path),
            Err(e) => {
                report.warnings.push(format!("{name}: {e}"));
                first_err.get_or_insert(e);
            }
        }
        let took = t.elapsed();
        let slot = match name {
            TABLE_FILE => &mut report.timings.table,
            SUMMARY_FILE => &mut report.timings.summary,
            PROGRESS_FILE => &mut report.timings.progress,
            TREE_FILE => &mut report.timings.tree,
            PARAMS_FILE => &mut report.timings.params,
            _ => &mut report.timings.parallel,
        };
        *slot = took;
    }
    report.timings.total = start.elapsed();
    match first_err {
        Some(e) => Err(e),
        None => Ok(report),
    }
}

/// Writes `report.md` (best configuration, the command that reproduces it, the path from the
/// baseline to the best, the table, failures) into the workdir root and returns its path.
pub fn render_report(workdir: &Path) -> Result<PathBuf, RenderError> {
    let view = RunView::load(workdir)?;
    let p = workdir.join(REPORT_FILE);
    // The best node's code change (a run with a `workspace`); unreadable: the report goes
    // without it.
    let best_code = view
        .best
        .and_then(|b| super::code::load(workdir, &view.nodes[b].id).ok().flatten());
    let text = guarded(REPORT_FILE, &mut || {
        Ok(render_report_md(&view, best_code.as_ref()))
    })?;
    write_text(&p, &text)?;
    Ok(p)
}

/// Runs `f`, turning a panic into [`RenderError::Draw`] so one broken view never takes the
/// caller (or the debouncer thread) down.
fn guarded<T>(
    view: &'static str,
    f: &mut dyn FnMut() -> Result<T, RenderError>,
) -> Result<T, RenderError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panic".to_owned());
            Err(RenderError::Draw {
                view,
                message: format!("panicked: {message}"),
            })
        }
    }
}
