//! The views of a workdir (design §4, `docs/views.md`): `master_table.tsv`, `summary.md`,
//! `progress.png`, `hypothesis_tree.png` and `report.md`.
//!
//! Rendering reads only workdir files (never the engine's memory), so it works on a live, an
//! interrupted or a copied workdir: [`RunView::load`] takes a snapshot, tolerating missing and
//! torn files (they become [`RenderReport::warnings`]), and the `render_*` functions turn the
//! snapshot into text or images. Every view is written atomically (temp file in the workdir,
//! fsync, rename, fsync of the folder), so a reader never sees a half-written view.
//!
//! During a run, use [`RenderDebouncer`] to re-render off the scheduling path.

pub mod debounce;
pub mod font;
pub mod load;
pub mod progress;
pub mod report;
pub mod summary;
pub mod table;
pub mod tree;

use std::fs;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use plotters::coord::Shift;
use plotters::prelude::*;

pub use debounce::RenderDebouncer;
pub use load::{Direction, NodeView, RunView};
pub use progress::render_progress;
pub use report::render_report_md;
pub use summary::render_summary;
pub use table::render_table;
pub use tree::render_tree;

/// File name of the node table in the workdir root.
pub const TABLE_FILE: &str = "master_table.tsv";
/// File name of the summary in the workdir root.
pub const SUMMARY_FILE: &str = "summary.md";
/// File name of the progress plot in the workdir root.
pub const PROGRESS_FILE: &str = "progress.png";
/// File name of the hypothesis tree image in the workdir root.
pub const TREE_FILE: &str = "hypothesis_tree.png";
/// File name of the final report in the workdir root.
pub const REPORT_FILE: &str = "report.md";

/// Fill colour of improved nodes (tree) and improvement dots (progress plot).
pub const IMPROVED_GREEN: RGBColor = RGBColor(44, 160, 44);
/// Fill colour of failed nodes (tree) and failure crosses (progress plot).
pub const FAILED_RED: RGBColor = RGBColor(214, 39, 40);
/// Fill colour of nodes in an active phase (preparing … planning).
pub const RUNNING_BLUE: RGBColor = RGBColor(31, 119, 180);
/// Fill colour of nodes completed without improvement, and of the other dots of the plot.
pub const COMPLETED_GREY: RGBColor = RGBColor(178, 178, 178);
/// Border colour of the best node (a thick outline, with a thin black line outside).
pub const BEST_GOLD: RGBColor = RGBColor(255, 184, 0);
/// Colour of the running-best step line of the progress plot.
pub const BEST_LINE: RGBColor = RGBColor(20, 90, 30);

/// Why rendering failed.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The folder has neither `engine/` nor `config.json`.
    #[error(
        "{}: not an autoresearch workdir (no engine/ folder and no config.json); \
         pass the folder that was given to `supervisor run`",
        path.display()
    )]
    NotAWorkdir {
        /// The folder given.
        path: PathBuf,
    },
    /// A folder or file needed for every view could not be read.
    #[error("cannot read {}: {source}; check the permissions of the workdir", path.display())]
    Read {
        /// What could not be read.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A view could not be written.
    #[error(
        "cannot write {}: {source}; check free space and permissions of the workdir",
        path.display()
    )]
    Write {
        /// The view being written.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Drawing an image failed (a plotters error or a panic while drawing).
    #[error("drawing {view} failed: {message}")]
    Draw {
        /// The view (`progress.png`, `hypothesis_tree.png`).
        view: &'static str,
        /// What went wrong.
        message: String,
    },
    /// The embedded font could not be registered (a corrupt build).
    #[error("the embedded font could not be loaded; rebuild the supervisor")]
    Font,
}

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

/// Renders `master_table.tsv`, `summary.md`, `progress.png` and `hypothesis_tree.png` into the
/// workdir root, each written atomically.
///
/// Missing or torn node files are skipped and listed in [`RenderReport::warnings`]. If one view
/// fails, the others are still written and the first error is returned.
pub fn render_all(workdir: &Path) -> Result<RenderReport, RenderError> {
    let start = Instant::now();
    let view = RunView::load(workdir)?;
    let mut report = RenderReport {
        nodes: view.nodes.len(),
        warnings: view.warnings.clone(),
        ..Default::default()
    };
    report.timings.load = start.elapsed();
    let mut first_err: Option<RenderError> = None;
    let mut step = |name: &'static str,
                    f: &mut dyn FnMut() -> Result<PathBuf, RenderError>,
                    report: &mut RenderReport|
     -> Duration {
        let t = Instant::now();
        match guarded(name, f) {
            Ok(p) => report.written.push(p),
            Err(e) => {
                report.warnings.push(format!("{name}: {e}"));
                if first_err.is_none() {
                    first_err = Some(e);
                }
            }
        }
        t.elapsed()
    };
    report.timings.table = step(
        TABLE_FILE,
        &mut || {
            let p = workdir.join(TABLE_FILE);
            write_text(&p, &render_table(&view))?;
            Ok(p)
        },
        &mut report,
    );
    report.timings.summary = step(
        SUMMARY_FILE,
        &mut || {
            let p = workdir.join(SUMMARY_FILE);
            write_text(&p, &render_summary(&view))?;
            Ok(p)
        },
        &mut report,
    );
    report.timings.progress = step(
        PROGRESS_FILE,
        &mut || {
            let p = workdir.join(PROGRESS_FILE);
            render_progress(&view, &p)?;
            Ok(p)
        },
        &mut report,
    );
    report.timings.tree = step(
        TREE_FILE,
        &mut || {
            let p = workdir.join(TREE_FILE);
            render_tree(&view, &p)?;
            Ok(p)
        },
        &mut report,
    );
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
    let text = guarded(REPORT_FILE, &mut || Ok(render_report_md(&view)))?;
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

/// Writes a text view atomically.
pub(crate) fn write_text(path: &Path, text: &str) -> Result<(), RenderError> {
    autoresearch_engine::atomic::write_atomic(path, text.as_bytes()).map_err(|source| {
        RenderError::Write {
            path: path.to_path_buf(),
            source,
        }
    })
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Draws a `w`×`h` PNG with `draw` and replaces `path` with it atomically.
///
/// plotters 0.3.7 does not re-export an image encoder for in-memory buffers, so the bitmap is
/// saved by plotters to a temp file in the same folder (named `.<name>.tmp.<pid>.<n>.png`),
/// which is then fsynced and renamed over `path`, and the folder is fsynced.
pub(crate) fn write_png_atomic(
    path: &Path,
    view: &'static str,
    (w, h): (u32, u32),
    draw: impl FnOnce(&DrawingArea<BitMapBackend<'_>, Shift>) -> Result<(), String>,
) -> Result<(), RenderError> {
    font::ensure_registered()?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| view.to_owned());
    let tmp = dir.join(format!(
        ".{name}.tmp.{}.{}.png",
        std::process::id(),
        TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        {
            let root = BitMapBackend::new(&tmp, (w, h)).into_drawing_area();
            root.fill(&WHITE).map_err(|e| RenderError::Draw {
                view,
                message: e.to_string(),
            })?;
            draw(&root).map_err(|message| RenderError::Draw { view, message })?;
            root.present().map_err(|e| RenderError::Write {
                path: tmp.clone(),
                source: std::io::Error::other(e.to_string()),
            })?;
        }
        let werr = |source| RenderError::Write {
            path: path.to_path_buf(),
            source,
        };
        fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(werr)?;
        fs::rename(&tmp, path).map_err(werr)?;
        autoresearch_engine::atomic::sync_dir(&dir).map_err(werr)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Formats a metric value compactly for labels and markdown (up to 6 significant digits).
pub fn fmt_value(v: f64) -> String {
    if !v.is_finite() {
        return format!("{v}");
    }
    let a = v.abs();
    if a != 0.0 && !(1e-4..1e9).contains(&a) {
        return format!("{v:.4e}");
    }
    let digits = if a == 0.0 {
        0
    } else {
        (5 - a.log10().floor() as i32).clamp(0, 9) as usize
    };
    let s = format!("{v:.digits$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
}

/// Relative change of `v` against `base` in percent, `None` when `base` is 0 or not finite.
pub fn pct_change(v: f64, base: f64) -> Option<f64> {
    if base == 0.0 || !base.is_finite() || !v.is_finite() {
        return None;
    }
    Some((v - base) / base.abs() * 100.0)
}

/// Formats a duration in seconds with its two largest units (`12.5s`, `5m 3s`, `2h 10m`,
/// `3d 4h`).
pub fn fmt_secs(s: f64) -> String {
    if !s.is_finite() || s < 0.0 {
        return "?".to_owned();
    }
    if s < 10.0 {
        return format!("{s:.1}s");
    }
    let t = s.round() as u64;
    let units = [(86_400, "d"), (3_600, "h"), (60, "m"), (1, "s")];
    let mut parts = Vec::new();
    let mut rest = t;
    for (size, name) in units {
        let q = rest / size;
        rest %= size;
        if q > 0 || !parts.is_empty() {
            parts.push(format!("{q}{name}"));
        }
        if parts.len() == 2 {
            break;
        }
    }
    // Drop a trailing zero unit ("2h 0m" → "2h").
    if parts.len() == 2 && parts[1].starts_with('0') {
        parts.pop();
    }
    parts.join(" ")
}
