//! Scales of the tree image: the sizes at each level of detail, the pixel geometry of a row
//! plan at a scale, and `choose`, which picks the largest scale that keeps the image within
//! [`MAX_SIDE`] pixels per side and [`PIXEL_BUDGET`] pixels in all.

use super::super::load::RunView;
use super::rows::{Plan, plan_rows};

/// The image never exceeds this many pixels on a side.
pub const MAX_SIDE: u32 = 16_000;
/// The image stays within this many pixels in all (memory and encoding time), unless even the
/// smallest scale needs more.
pub const PIXEL_BUDGET: u64 = 36_000_000;
/// Widest row before the tree is wrapped into rows.
pub const MAX_ROW_WIDTH: f64 = 9_600.0;

/// Margin around the drawing, in pixels.
pub(super) const MARGIN: f64 = 24.0;
/// Height of the title and legend, in pixels.
pub(super) const HEADER_H: f64 = 70.0;
/// Gap between two rows of a wrapped tree, in pixels.
pub(super) const ROW_GAP: f64 = 26.0;
/// Height of the stub band of a wrapped row, in levels.
pub(super) const BAND_LEVELS: f64 = 0.6;
/// Tallest row, in pixels, before a deep tree is cut into bands of levels.
const MAX_ROW_HEIGHT: f64 = 4_000.0;

/// Drawing sizes at one level of detail.
#[derive(Debug, Clone, Copy)]
pub(super) struct Scale {
    /// Width of one slot (a node's column), in pixels.
    pub(super) slot: f64,
    /// Height of a node's box.
    pub(super) box_h: f64,
    /// Height of one level (box plus the room for edges and their labels).
    pub(super) level_h: f64,
    /// Font size of the node names (0: no text).
    pub(super) font: f64,
    /// Font size of the edge labels (0: none).
    pub(super) edge_font: f64,
    /// Whether a box shows a second line (sequence number and value).
    pub(super) two_lines: bool,
}

/// The levels of detail, largest first.
const SCALES: [Scale; 7] = [
    Scale {
        slot: 150.0,
        box_h: 38.0,
        level_h: 92.0,
        font: 13.0,
        edge_font: 11.0,
        two_lines: true,
    },
    Scale {
        slot: 112.0,
        box_h: 34.0,
        level_h: 82.0,
        font: 12.0,
        edge_font: 10.5,
        two_lines: true,
    },
    Scale {
        slot: 96.0,
        box_h: 22.0,
        level_h: 56.0,
        font: 10.5,
        edge_font: 9.5,
        two_lines: false,
    },
    Scale {
        slot: 66.0,
        box_h: 18.0,
        level_h: 48.0,
        font: 9.5,
        edge_font: 8.5,
        two_lines: false,
    },
    Scale {
        slot: 40.0,
        box_h: 14.0,
        level_h: 40.0,
        font: 8.0,
        edge_font: 7.5,
        two_lines: false,
    },
    Scale {
        slot: 22.0,
        box_h: 10.0,
        level_h: 30.0,
        font: 0.0,
        edge_font: 0.0,
        two_lines: false,
    },
    Scale {
        slot: 12.0,
        box_h: 7.0,
        level_h: 20.0,
        font: 0.0,
        edge_font: 0.0,
        two_lines: false,
    },
];

/// Most levels of a piece of a deep tree at `scale` (at least 12).
pub(super) fn max_levels(scale: &Scale) -> usize {
    ((MAX_ROW_HEIGHT / scale.level_h).floor() as usize).max(12)
}

/// Pixel geometry of a plan at a scale.
#[derive(Debug, Clone)]
pub(super) struct Geometry {
    /// The scale, possibly squeezed to fit.
    pub(super) scale: Scale,
    /// Top of each row's first level of boxes (below its stub band, if any).
    pub(super) row_top: Vec<f64>,
    /// Image width in pixels.
    pub(super) width: u32,
    /// Image height in pixels.
    pub(super) height: u32,
}

fn geometry(plan: &Plan, scale: Scale) -> Geometry {
    let mut row_top = Vec::with_capacity(plan.row_levels.len());
    let mut y = HEADER_H;
    for (r, &l) in plan.row_levels.iter().enumerate() {
        if plan.row_band[r] {
            y += BAND_LEVELS * scale.level_h;
        }
        row_top.push(y);
        y += l as f64 * scale.level_h + ROW_GAP;
    }
    let width = (2.0 * MARGIN + plan.cols * scale.slot).ceil();
    let height = (y + MARGIN).ceil();
    Geometry {
        scale,
        row_top,
        width: width.min(f64::from(u32::MAX)) as u32,
        height: height.min(f64::from(u32::MAX)) as u32,
    }
}

fn fits(g: &Geometry) -> bool {
    g.width <= MAX_SIDE
        && g.height <= MAX_SIDE
        && u64::from(g.width) * u64::from(g.height) <= PIXEL_BUDGET
}

/// Chooses a scale and row plan for `view`: the largest scale that fits in one row, else the
/// largest that fits wrapped into rows, else the smallest squeezed to fit.
pub(super) fn choose(view: &RunView) -> (Plan, Geometry) {
    let cap = |s: &Scale| ((MAX_ROW_WIDTH - 2.0 * MARGIN) / s.slot).floor().max(1.0);
    for s in SCALES.iter().take(3) {
        let plan = plan_rows(view, cap(s), max_levels(s));
        if !plan.wrapped {
            let g = geometry(&plan, *s);
            if fits(&g) {
                return (plan, g);
            }
        }
    }
    for s in SCALES.iter() {
        let plan = plan_rows(view, cap(s), max_levels(s));
        let g = geometry(&plan, *s);
        if fits(&g) {
            return (plan, g);
        }
    }
    // Huge trees: squeeze the levels of the smallest scale until the height fits.
    let mut s = SCALES[SCALES.len() - 1];
    let plan = plan_rows(view, cap(&s), max_levels(&s));
    let levels: f64 = plan.row_levels.iter().sum::<usize>() as f64
        + BAND_LEVELS * plan.row_band.iter().filter(|b| **b).count() as f64;
    let avail = f64::from(MAX_SIDE) - HEADER_H - MARGIN - ROW_GAP * plan.row_levels.len() as f64;
    s.level_h = (avail / levels.max(1.0)).clamp(1.0, s.level_h);
    s.box_h = (s.level_h * 0.5).clamp(1.0, s.box_h);
    let mut g = geometry(&plan, s);
    g.width = g.width.min(MAX_SIDE);
    g.height = g.height.min(MAX_SIDE);
    (plan, g)
}
