//! The font embedded in the binary (DejaVu Sans, see `assets/README.md`) and text measuring.
//!
//! Rendering never looks at system fonts: plotters is built with its `ab_glyph` feature only,
//! and the embedded font is registered under the family name `sans-serif` before anything is
//! drawn, so the views render the same with no fonts installed, no fontconfig and no `HOME`.

use std::collections::HashMap;
use std::sync::OnceLock;

use plotters::style::{FontStyle, IntoFont};

use super::RenderError;

/// The bytes of `assets/DejaVuSans.ttf`.
pub const FONT_BYTES: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");

/// The family name the embedded font is registered under (plotters' `FontFamily::SansSerif`).
pub const FAMILY: &str = "sans-serif";

static REGISTERED: OnceLock<bool> = OnceLock::new();

/// Registers the embedded font with plotters (once per process; later calls are free).
pub fn ensure_registered() -> Result<(), RenderError> {
    let ok = *REGISTERED.get_or_init(|| {
        plotters::style::register_font(FAMILY, FontStyle::Normal, FONT_BYTES).is_ok()
    });
    if ok { Ok(()) } else { Err(RenderError::Font) }
}

/// Measures and elides text drawn with the embedded font (advance widths are cached per
/// character; kerning is ignored, which errs on the wide side by a pixel or two).
#[derive(Debug, Default)]
pub struct TextMeasure {
    advance: HashMap<char, f64>,
}

const REF_SIZE: f64 = 100.0;

impl TextMeasure {
    /// A measurer with an empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    fn char_advance(&mut self, c: char) -> f64 {
        if let Some(a) = self.advance.get(&c) {
            return *a;
        }
        let mut buf = [0u8; 4];
        let w = (FAMILY, REF_SIZE)
            .into_font()
            .box_size(c.encode_utf8(&mut buf))
            .map(|(w, _)| f64::from(w) / REF_SIZE)
            .unwrap_or(0.6);
        self.advance.insert(c, w);
        w
    }

    /// Width in pixels of `text` at font size `size`.
    pub fn width(&mut self, text: &str, size: f64) -> f64 {
        text.chars().map(|c| self.char_advance(c)).sum::<f64>() * size
    }

    /// `text` if it fits in `max_w` pixels at `size`, else its longest prefix that fits with an
    /// ellipsis (`…`) appended; `None` when not even the ellipsis fits.
    pub fn elide(&mut self, text: &str, size: f64, max_w: f64) -> Option<String> {
        if max_w <= 0.0 {
            return None;
        }
        let full = self.width(text, size);
        if full <= max_w {
            return if text.is_empty() {
                None
            } else {
                Some(text.to_owned())
            };
        }
        let ell = self.char_advance('…') * size;
        if ell > max_w {
            return None;
        }
        let mut w = ell;
        let mut out = String::new();
        for c in text.chars() {
            let a = self.char_advance(c) * size;
            if w + a > max_w {
                break;
            }
            w += a;
            out.push(c);
        }
        let trimmed = out.trim_end();
        if trimmed.is_empty() {
            return None;
        }
        let mut s = trimmed.to_owned();
        s.push('…');
        Some(s)
    }
}

/// Replaces control characters (newlines, tabs, …) by spaces so a value fits on one label line.
pub fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}
