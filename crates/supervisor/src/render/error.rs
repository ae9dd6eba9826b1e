//! [`RenderError`]: why a view could not be rendered.

use std::path::PathBuf;

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
