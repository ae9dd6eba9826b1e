//! The views of a workdir (`docs/views.md`): `master_table.tsv`, `summary.md`, `progress.png`,
//! `hypothesis_tree.png`, `params.png`, `parallel.png` and `report.md` (with the best node's
//! code change, [`code`]).
//!
//! Rendering reads only workdir files (never the engine's memory), so it works on a live, an
//! interrupted or a copied workdir: [`RunView::load`] takes a snapshot, tolerating missing and
//! torn files (they become [`RenderReport::warnings`]), and the `render_*` functions turn the
//! snapshot into text or images. Every view is written atomically (temp file in the workdir,
//! fsync, rename, fsync of the folder), so a reader never sees a half-written view.
//!
//! During a run, use [`RenderDebouncer`] to re-render off the scheduling path.

pub mod code;
mod completion;
pub mod debounce;
pub mod error;
pub mod font;
pub mod format;
pub mod importance;
pub mod load;
mod node_cache;
mod node_view;
pub mod palette;
pub mod parallel;
pub mod param_axes;
pub mod params_plot;
pub mod progress;
pub mod report;
pub mod summary;
pub mod table;
pub mod tree;
pub mod views;
mod write;

pub use debounce::RenderDebouncer;
pub use error::RenderError;
pub use format::{fmt_secs, fmt_spread, fmt_value, pct_change};
pub use load::{Direction, NodeCache, NodeView, RunView};
pub use palette::*;
pub use parallel::render_parallel;
pub use params_plot::render_params;
pub use progress::render_progress;
pub use report::render_report_md;
pub use summary::render_summary;
pub use table::render_table;
pub use tree::render_tree;
pub use views::*;
pub(crate) use write::write_png_atomic;
