//! `autoresearch-supervisor`: the command line of the autoresearch experiment engine and the
//! views it renders from a workdir.
//!
//! The binary (`supervisor`) runs the engine headless or in an interactive session; this library
//! holds the parts that are useful on their own. [`render`] reads a workdir's files (live,
//! interrupted or copied) and writes `master_table.tsv`, `summary.md`, `progress.png`,
//! `hypothesis_tree.png` and `report.md` (`docs/views.md`); [`serve`] is the live web dashboard
//! (`docs/dashboard.md`).

pub mod cli;
pub mod commands;
pub mod exit;
pub mod flags;
pub mod interactive;
pub mod logging;
pub mod render;
pub mod serve;
