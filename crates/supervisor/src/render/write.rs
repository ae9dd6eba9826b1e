//! Atomic writing of the views: text as it is, images drawn into memory and encoded as PNG,
//! both through the engine's atomic write (temp file, fsync, rename, fsync of the folder).

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{RenderError, font};

/// Writes a text view atomically.
pub(crate) fn write_text(path: &Path, text: &str) -> Result<(), RenderError> {
    autoresearch_engine::atomic::write_atomic(path, text.as_bytes()).map_err(|source| {
        RenderError::Write {
            path: path.to_path_buf(),
            source,
        }
    })
}

/// Draws a `w`×`h` PNG with `draw` and replaces `path` with it atomically.
///
/// The picture is drawn into an RGB buffer in memory, encoded as PNG there, and written with the
/// engine's atomic write (temp file, fsync, rename, fsync of the folder): a reader never sees a
/// half-written image, and a failure leaves the previous image in place.
pub(crate) fn write_png_atomic(
    path: &Path,
    view: &'static str,
    (w, h): (u32, u32),
    draw: impl FnOnce(&DrawingArea<BitMapBackend<'_>, Shift>) -> Result<(), String>,
) -> Result<(), RenderError> {
    font::ensure_registered()?;
    let draw_err = |message: String| RenderError::Draw { view, message };
    let mut rgb = vec![0u8; w as usize * h as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| draw_err(e.to_string()))?;
        draw(&root).map_err(draw_err)?;
        root.present().map_err(|e| draw_err(e.to_string()))?;
    }
    let png = encode_png(&rgb, (w, h)).map_err(|e| draw_err(format!("PNG encoding: {e}")))?;
    autoresearch_engine::atomic::write_atomic(path, &png).map_err(|source| RenderError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// Encodes an 8-bit RGB buffer as PNG.
fn encode_png(rgb: &[u8], (w, h): (u32, u32)) -> Result<Vec<u8>, png::EncodingError> {
    let mut out = Vec::with_capacity(rgb.len() / 8);
    let mut enc = png::Encoder::new(&mut out, w, h);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    enc.set_compression(png::Compression::Fast);
    let mut writer = enc.write_header()?;
    writer.write_image_data(rgb)?;
    writer.finish()?;
    Ok(out)
}
