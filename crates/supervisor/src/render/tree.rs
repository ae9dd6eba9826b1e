//! `hypothesis_tree.png`: the hypothesis tree, laid out tidily and drawn by status.
//!
//! Layout ([`tidy_layout`]) is a post-order contour placement: each subtree is built from its
//! children's subtrees placed left to right as close as their contours (leftmost and rightmost
//! position per depth) allow, one slot apart, and the parent is centred above its first and last
//! child. Subtrees never overlap and every node gets a whole or half slot position.
//!
//! Drawing picks the largest of a few scales (slot width, box size, font size) that keeps the
//! image within [`MAX_SIDE`] pixels per side and [`PIXEL_BUDGET`] pixels in all. A tree too wide
//! for one row at that scale is wrapped: the first row holds the trunk (the nodes whose subtree
//! is wider than a row), later rows hold whole subtrees side by side, each with a stub naming its
//! parent. A tree too deep for one row is first cut into pieces of at most a row's height
//! (about 4,000 px), which are then packed the same way. Labels are elided (`…`) to the room
//! they have (one slot), so they never overlap.

use std::path::Path;

use autoresearch_adapters::model::NodeStatus;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::font::{FAMILY, TextMeasure, one_line};
use super::load::RunView;
use super::{
    BEST_GOLD, COMPLETED_GREY, FAILED_RED, IMPROVED_GREEN, RUNNING_BLUE, RenderError, TREE_FILE,
    fmt_value, write_png_atomic,
};

/// The image never exceeds this many pixels on a side.
pub const MAX_SIDE: u32 = 16_000;
/// The image stays within this many pixels in all (memory and encoding time), unless even the
/// smallest scale needs more.
pub const PIXEL_BUDGET: u64 = 36_000_000;
/// Widest row before the tree is wrapped into rows.
pub const MAX_ROW_WIDTH: f64 = 9_600.0;

const MARGIN: f64 = 24.0;
const HEADER_H: f64 = 70.0;
const ROW_GAP: f64 = 26.0;
const TEXT: RGBColor = RGBColor(25, 25, 25);
const EDGE: RGBColor = RGBColor(150, 150, 150);
const EDGE_TEXT: RGBColor = RGBColor(70, 70, 70);
const QUEUED_BORDER: RGBColor = RGBColor(90, 90, 90);
const ROW_RULE: RGBColor = RGBColor(225, 225, 225);

/// Positions computed by [`tidy_layout`], indexed like the input nodes.
#[derive(Debug, Clone)]
pub struct TreeLayout {
    /// Horizontal position in slots (0 = leftmost); `NaN` for nodes not reachable from a root.
    pub x: Vec<f64>,
    /// Depth (roots are 0).
    pub depth: Vec<usize>,
    /// Leftmost and rightmost position of the node's subtree, relative to the node.
    pub extent: Vec<(f64, f64)>,
    /// Number of levels in the node's subtree (a leaf has 1).
    pub height: Vec<usize>,
    /// Width of the whole forest in slots (rightmost position + 1).
    pub width: f64,
}

impl TreeLayout {
    /// Width in slots of the subtree under `i`.
    pub fn subtree_width(&self, i: usize) -> f64 {
        self.extent[i].1 - self.extent[i].0 + 1.0
    }
}

/// Lays out the forest given by `children` (per node, in drawing order) and `roots`.
///
/// Guarantees: nodes at the same depth are at least one slot apart; a parent is centred over its
/// first and last child; the subtrees of two siblings do not interleave at any depth. Runs in
/// O(n · height) time without recursion.
pub fn tidy_layout(children: &[Vec<usize>], roots: &[usize]) -> TreeLayout {
    let n = children.len();
    // Pre-order (parents before children); processing it reversed sees children first.
    let mut order = Vec::with_capacity(n);
    let mut depth = vec![0usize; n];
    let mut seen = vec![false; n];
    let mut stack: Vec<usize> = roots.iter().rev().copied().collect();
    while let Some(v) = stack.pop() {
        if seen[v] {
            continue;
        }
        seen[v] = true;
        order.push(v);
        for &c in children[v].iter().rev() {
            if !seen[c] {
                depth[c] = depth[v] + 1;
                stack.push(c);
            }
        }
    }
    let depth_ref = &depth;
    let kids = move |v: usize| {
        let dv = depth_ref[v];
        children[v]
            .iter()
            .copied()
            .filter(move |&c| depth_ref[c] == dv + 1)
    };

    let mut offset = vec![0.0f64; n];
    let mut contour: Vec<Option<(Vec<f64>, Vec<f64>)>> = vec![None; n];
    let mut extent = vec![(0.0, 0.0); n];
    let mut height = vec![1usize; n];

    // Places the subtrees `items` side by side; returns their merged contours with the
    // offsets written into `offset` (relative to the midpoint of the first and last).
    let place = |items: &mut dyn Iterator<Item = usize>,
                 contour: &mut Vec<Option<(Vec<f64>, Vec<f64>)>>,
                 offset: &mut Vec<f64>|
     -> Option<(Vec<f64>, Vec<f64>, Vec<usize>)> {
        let mut placed: Vec<usize> = Vec::new();
        let mut acc: Option<(Vec<f64>, Vec<f64>)> = None;
        for c in items {
            let (cl, cr) = contour[c].take().unwrap_or((vec![0.0], vec![0.0]));
            match &mut acc {
                None => {
                    offset[c] = 0.0;
                    acc = Some((cl, cr));
                }
                Some((al, ar)) => {
                    let common = ar.len().min(cl.len());
                    let shift = (0..common)
                        .map(|d| ar[d] - cl[d] + 1.0)
                        .fold(f64::NEG_INFINITY, f64::max);
                    offset[c] = shift;
                    for d in 0..cl.len() {
                        if d < ar.len() {
                            ar[d] = cr[d] + shift;
                        } else {
                            al.push(cl[d] + shift);
                            ar.push(cr[d] + shift);
                        }
                    }
                }
            }
            placed.push(c);
        }
        let (al, ar) = acc?;
        let mid = (offset[placed[0]] + offset[*placed.last().unwrap_or(&placed[0])]) / 2.0;
        for &c in &placed {
            offset[c] -= mid;
        }
        Some((
            al.into_iter().map(|v| v - mid).collect(),
            ar.into_iter().map(|v| v - mid).collect(),
            placed,
        ))
    };

    for &v in order.iter().rev() {
        match place(&mut kids(v), &mut contour, &mut offset) {
            None => {
                contour[v] = Some((vec![0.0], vec![0.0]));
            }
            Some((al, ar, _)) => {
                let mut l = Vec::with_capacity(al.len() + 1);
                let mut r = Vec::with_capacity(ar.len() + 1);
                l.push(0.0);
                r.push(0.0);
                l.extend(al);
                r.extend(ar);
                contour[v] = Some((l, r));
            }
        }
        if let Some((l, r)) = &contour[v] {
            extent[v] = (
                l.iter().copied().fold(0.0, f64::min),
                r.iter().copied().fold(0.0, f64::max),
            );
            height[v] = l.len();
        }
    }
    // The roots are placed like the children of an invisible super-root.
    let mut root_iter = roots.iter().copied().filter(|&r| depth[r] == 0 && seen[r]);
    let _ = place(&mut root_iter, &mut contour, &mut offset);

    let mut x = vec![f64::NAN; n];
    for &v in &order {
        x[v] = offset[v];
        for c in kids(v) {
            // Children are after their parent in `order`; offsets become absolute here.
            offset[c] += offset[v];
        }
    }
    let min = x
        .iter()
        .copied()
        .filter(|v| v.is_finite())
        .fold(f64::INFINITY, f64::min);
    let max = x
        .iter()
        .copied()
        .filter(|v| v.is_finite())
        .fold(f64::NEG_INFINITY, f64::max);
    let width = if min.is_finite() {
        for v in x.iter_mut() {
            *v -= min;
        }
        max - min + 1.0
    } else {
        0.0
    };
    TreeLayout {
        x,
        depth,
        extent,
        height,
        width,
    }
}

/// Drawing sizes at one level of detail.
#[derive(Debug, Clone, Copy)]
struct Scale {
    slot: f64,
    box_h: f64,
    level_h: f64,
    font: f64,
    edge_font: f64,
    two_lines: bool,
}

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

/// Where a node is drawn: column (slots from the left) and level inside its row.
#[derive(Debug, Clone, Copy)]
struct Spot {
    row: usize,
    col: f64,
    level: usize,
}

#[derive(Debug, Clone)]
struct Plan {
    spots: Vec<Option<Spot>>,
    /// Levels per row.
    row_levels: Vec<usize>,
    /// Whether a row starts with a band for the stubs of moved subtrees.
    row_band: Vec<bool>,
    /// Width in slots of the widest row.
    cols: f64,
    /// Nodes drawn apart from their parent (a subtree moved to another row, or a piece of a
    /// deep tree): a stub above them names the parent instead of an edge.
    stubs: Vec<usize>,
    /// Per node: whether it is in `stubs`.
    is_stub: Vec<bool>,
    /// Whether the tree was wrapped into rows.
    wrapped: bool,
}

/// Tallest row, in pixels, before a deep tree is cut into bands of levels.
const MAX_ROW_HEIGHT: f64 = 4_000.0;

fn max_levels(scale: &Scale) -> usize {
    ((MAX_ROW_HEIGHT / scale.level_h).floor() as usize).max(12)
}

/// Plans rows for `view` with at most `capacity` slots per row and `max_levels` levels per
/// piece.
///
/// 1. Depth: every node at a depth that is a multiple of `max_levels` starts a new piece (its
///    edge to its parent becomes a stub), so no piece is taller than `max_levels`.
/// 2. Width: if the pieces fit side by side in one row and nothing was cut, that is the plan.
///    Otherwise pieces (and subtrees) wider than a row form the trunk, drawn in the first row;
///    the remaining maximal subtrees that fit are packed into later rows, left to right in
///    depth-first order, each with a stub naming its parent.
fn plan_rows(view: &RunView, capacity: f64, max_levels: usize) -> Plan {
    let n = view.nodes.len();
    // Depth and pre-order in the whole forest.
    let mut depth = vec![0usize; n];
    let mut order = Vec::with_capacity(n);
    let mut stack: Vec<usize> = view.roots.iter().rev().copied().collect();
    let mut seen = vec![false; n];
    while let Some(v) = stack.pop() {
        if seen[v] {
            continue;
        }
        seen[v] = true;
        order.push(v);
        for &c in view.nodes[v].children.iter().rev() {
            depth[c] = depth[v] + 1;
            stack.push(c);
        }
    }
    let max_levels = max_levels.max(1);
    let cut: Vec<bool> = (0..n)
        .map(|i| depth[i] > 0 && depth[i].is_multiple_of(max_levels))
        .collect();
    let any_cut = cut.iter().any(|c| *c);
    let kids: Vec<Vec<usize>> = view
        .nodes
        .iter()
        .map(|nv| nv.children.iter().copied().filter(|&c| !cut[c]).collect())
        .collect();
    let piece_roots: Vec<usize> = order
        .iter()
        .copied()
        .filter(|&i| cut[i] || view.nodes[i].parent.is_none())
        .collect();
    let lay = tidy_layout(&kids, &piece_roots);

    let mut spots: Vec<Option<Spot>> = vec![None; n];
    if !any_cut && lay.width <= capacity {
        let mut levels = 0;
        for (i, spot) in spots.iter_mut().enumerate() {
            if lay.x[i].is_finite() {
                *spot = Some(Spot {
                    row: 0,
                    col: lay.x[i],
                    level: lay.depth[i],
                });
                levels = levels.max(lay.depth[i] + 1);
            }
        }
        return Plan {
            spots,
            row_levels: vec![levels.max(1)],
            row_band: vec![false],
            cols: lay.width.max(1.0),
            stubs: Vec::new(),
            is_stub: vec![false; n],
            wrapped: false,
        };
    }
    // Trunk: nodes whose subtree (within its piece) is wider than a row; closed upwards within
    // a piece. Units: maximal subtrees that fit, in depth-first order.
    let mut trunk = vec![false; n];
    let mut units: Vec<usize> = Vec::new();
    for &r in &piece_roots {
        let mut stack = vec![r];
        while let Some(v) = stack.pop() {
            if !lay.x[v].is_finite() {
                continue;
            }
            if lay.subtree_width(v) > capacity {
                trunk[v] = true;
                stack.extend(kids[v].iter().rev().copied());
            } else {
                units.push(v);
            }
        }
    }
    let trunk_children: Vec<Vec<usize>> = (0..n)
        .map(|v| {
            if trunk[v] {
                kids[v].iter().copied().filter(|&c| trunk[c]).collect()
            } else {
                Vec::new()
            }
        })
        .collect();
    let trunk_roots: Vec<usize> = piece_roots.iter().copied().filter(|&r| trunk[r]).collect();
    let tl = tidy_layout(&trunk_children, &trunk_roots);
    let mut row_levels = vec![0usize];
    let mut cols = tl.width;
    let mut stubs = Vec::new();
    for &r in &trunk_roots {
        if view.nodes[r].parent.is_some() {
            stubs.push(r);
        }
    }
    for v in 0..n {
        if trunk[v] && tl.x[v].is_finite() {
            spots[v] = Some(Spot {
                row: 0,
                col: tl.x[v],
                level: tl.depth[v],
            });
            row_levels[0] = row_levels[0].max(tl.depth[v] + 1);
        }
    }
    let mut row = 0;
    // With a trunk, units start on the next row; without one, on the first.
    let mut cursor = if trunk_roots.is_empty() {
        0.0
    } else {
        capacity + 1.0
    };
    for &u in &units {
        let w = lay.subtree_width(u);
        if cursor > 0.0 && cursor + w > capacity {
            row += 1;
            row_levels.push(0);
            cursor = 0.0;
        }
        let left = lay.x[u] + lay.extent[u].0;
        let mut st = vec![u];
        while let Some(v) = st.pop() {
            spots[v] = Some(Spot {
                row,
                col: cursor + lay.x[v] - left,
                level: lay.depth[v] - lay.depth[u],
            });
            st.extend(kids[v].iter().copied());
        }
        row_levels[row] = row_levels[row].max(lay.height[u]);
        if view.nodes[u].parent.is_some() {
            stubs.push(u);
        }
        cursor += w + 1.0;
        cols = cols.max(cursor - 1.0);
    }
    let mut is_stub = vec![false; n];
    let mut row_band = vec![false; row_levels.len()];
    for &s in &stubs {
        is_stub[s] = true;
        if let Some(sp) = spots[s] {
            row_band[sp.row] = true;
        }
    }
    Plan {
        spots,
        row_levels,
        row_band,
        cols: cols.max(1.0),
        stubs,
        is_stub,
        wrapped: true,
    }
}

/// Height of the stub band of a wrapped row, in levels.
const BAND_LEVELS: f64 = 0.6;

/// Pixel geometry of a plan at a scale.
#[derive(Debug, Clone)]
struct Geometry {
    scale: Scale,
    /// Top of each row's first level of boxes (below its stub band, if any).
    row_top: Vec<f64>,
    width: u32,
    height: u32,
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
fn choose(view: &RunView) -> (Plan, Geometry) {
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

/// The fill colour of a node: green improved, grey completed, red failed, blue active, white
/// queued.
pub fn status_fill(status: NodeStatus, improved: bool) -> RGBColor {
    match status {
        NodeStatus::Completed if improved => IMPROVED_GREEN,
        NodeStatus::Completed => COMPLETED_GREY,
        NodeStatus::Failed => FAILED_RED,
        NodeStatus::Queued => WHITE,
        _ => RUNNING_BLUE,
    }
}

/// Draws `hypothesis_tree.png` for `view` and writes it atomically to `out`. Returns the image
/// size.
pub fn render_tree(view: &RunView, out: &Path) -> Result<(u32, u32), RenderError> {
    let (plan, geo) = choose(view);
    // Small trees get at least the width of their title (up to 1,800 px).
    let title_w = TextMeasure::new().width(&title(view), TITLE_SIZE) + 2.0 * MARGIN;
    let min_w = title_w.clamp(480.0, 1800.0).ceil() as u32;
    let dims = (geo.width.max(min_w), geo.height.max(160));
    write_png_atomic(out, TREE_FILE, dims, |root| {
        draw(view, &plan, &geo, root).map_err(|e| e.to_string())
    })?;
    Ok(dims)
}

type DrawResult = Result<(), Box<dyn std::error::Error>>;

const TITLE_SIZE: f64 = 20.0;

fn title(view: &RunView) -> String {
    let c = view.counts();
    let mut title = format!(
        "Hypothesis tree: {} nodes, {} completed ({} improved), {} failed, {} running, {} queued",
        c.total, c.completed, c.improved, c.failed, c.running, c.queued
    );
    if let (Some(bi), Some(bv)) = (view.best, view.best_value()) {
        title.push_str(&format!(
            "  ·  best {} {} = {}",
            one_line(view.nodes[bi].name()),
            one_line(&view.metric),
            fmt_value(bv)
        ));
    }
    title
}

fn center(plan: &Plan, geo: &Geometry, i: usize) -> Option<(f64, f64)> {
    let s = plan.spots[i]?;
    let sc = geo.scale;
    Some((
        MARGIN + (s.col + 0.5) * sc.slot,
        geo.row_top[s.row] + (s.level as f64 + 0.5) * sc.level_h + (sc.level_h - sc.box_h) * 0.25,
    ))
}

fn px(v: f64) -> i32 {
    v.round() as i32
}

fn dashed_rect(
    root: &DrawingArea<BitMapBackend<'_>, Shift>,
    (x0, y0, x1, y1): (i32, i32, i32, i32),
    color: RGBColor,
) -> DrawResult {
    let (dash, gap) = (4, 3);
    let mut segs: Vec<((i32, i32), (i32, i32))> = Vec::new();
    let mut x = x0;
    while x < x1 {
        let e = (x + dash).min(x1);
        segs.push(((x, y0), (e, y0)));
        segs.push(((x, y1), (e, y1)));
        x += dash + gap;
    }
    let mut y = y0;
    while y < y1 {
        let e = (y + dash).min(y1);
        segs.push(((x0, y), (x0, e)));
        segs.push(((x1, y), (x1, e)));
        y += dash + gap;
    }
    for (a, b) in segs {
        root.draw(&PathElement::new(vec![a, b], color))?;
    }
    Ok(())
}

/// Text centred on `(cx, y)` over a white backdrop of half-size `(half_w, half_h)`, so a label
/// stays legible where it crosses an edge.
fn label_on_white(
    root: &DrawingArea<BitMapBackend<'_>, Shift>,
    text: String,
    (cx, y): (f64, f64),
    (half_w, half_h): (f64, f64),
    font: &TextStyle<'_>,
) -> DrawResult {
    root.draw(&Rectangle::new(
        [
            (px(cx - half_w), px(y - half_h)),
            (px(cx + half_w), px(y + half_h)),
        ],
        WHITE.filled(),
    ))?;
    root.draw(&Text::new(
        text,
        (px(cx), px(y)),
        font.pos(Pos::new(HPos::Center, VPos::Center)),
    ))?;
    Ok(())
}

fn darker(c: RGBColor) -> RGBColor {
    RGBColor(
        (f64::from(c.0) * 0.7) as u8,
        (f64::from(c.1) * 0.7) as u8,
        (f64::from(c.2) * 0.7) as u8,
    )
}

fn draw(
    view: &RunView,
    plan: &Plan,
    geo: &Geometry,
    root: &DrawingArea<BitMapBackend<'_>, Shift>,
) -> DrawResult {
    let mut tm = TextMeasure::new();
    let sc = geo.scale;
    let (w, _) = root.dim_in_pixel();
    let c = view.counts();

    // Title and legend.
    let title = title(view);
    let tsize = TITLE_SIZE;
    if let Some(t) = tm.elide(&title, tsize, f64::from(w) - 2.0 * MARGIN) {
        root.draw(&Text::new(
            t,
            (px(MARGIN), 10),
            (FAMILY, tsize).into_font().color(&TEXT),
        ))?;
    }
    let ly = 50;
    let mut lx = px(MARGIN);
    let lfont = (FAMILY, 14.0).into_font().color(&TEXT);
    let mut entries: Vec<(RGBColor, &str, bool)> = Vec::new();
    if c.improved > 0 {
        entries.push((IMPROVED_GREEN, "improved", false));
    }
    if c.completed > c.improved {
        entries.push((COMPLETED_GREY, "completed, no improvement", false));
    }
    if c.failed > 0 {
        entries.push((FAILED_RED, "failed", false));
    }
    if c.running > 0 {
        entries.push((RUNNING_BLUE, "running", false));
    }
    if c.queued > 0 {
        entries.push((WHITE, "queued", true));
    }
    for (color, label, dashed) in entries {
        root.draw(&Rectangle::new(
            [(lx, ly - 7), (lx + 22, ly + 7)],
            color.filled(),
        ))?;
        if dashed {
            dashed_rect(root, (lx, ly - 7, lx + 22, ly + 7), QUEUED_BORDER)?;
        }
        root.draw(&Text::new(
            label.to_owned(),
            (lx + 28, ly),
            lfont.pos(Pos::new(HPos::Left, VPos::Center)),
        ))?;
        lx += 28 + tm.width(label, 14.0) as i32 + 22;
    }
    if view.best.is_some() {
        root.draw(&Rectangle::new(
            [(lx - 1, ly - 9), (lx + 23, ly + 9)],
            BLACK.stroke_width(1),
        ))?;
        root.draw(&Rectangle::new(
            [(lx, ly - 8), (lx + 22, ly + 8)],
            BEST_GOLD.filled(),
        ))?;
        root.draw(&Rectangle::new(
            [(lx + 4, ly - 4), (lx + 18, ly + 4)],
            WHITE.filled(),
        ))?;
        root.draw(&Text::new(
            "best".to_owned(),
            (lx + 28, ly),
            lfont.pos(Pos::new(HPos::Left, VPos::Center)),
        ))?;
        lx += 28 + tm.width("best", 14.0) as i32 + 22;
    }
    if plan.wrapped {
        let note = "large tree wrapped into rows: a subtree drawn apart from its parent has a stub naming the parent (↑), and the parent says how many went elsewhere (↓)";
        if let Some(t) = tm.elide(note, 14.0, f64::from(w) - f64::from(lx) - MARGIN) {
            root.draw(&Text::new(
                t,
                (lx, ly),
                lfont.pos(Pos::new(HPos::Left, VPos::Center)),
            ))?;
        }
    }
    if view.nodes.is_empty() {
        root.draw(&Text::new(
            "no nodes yet".to_owned(),
            (px(MARGIN), px(HEADER_H + 10.0)),
            lfont.clone(),
        ))?;
        return Ok(());
    }
    // Row separators.
    for (r, &top) in geo.row_top.iter().enumerate().skip(1) {
        let band = if plan.row_band[r] {
            BAND_LEVELS * sc.level_h
        } else {
            0.0
        };
        let y = px(top - band - ROW_GAP / 2.0);
        root.draw(&PathElement::new(
            vec![(px(MARGIN / 2.0), y), (w as i32 - px(MARGIN / 2.0), y)],
            ROW_RULE.stroke_width(1),
        ))?;
    }

    let bw = (sc.slot - (sc.slot * 0.12).max(4.0)).max(3.0);
    let bh = sc.box_h;
    let gap_above = sc.level_h - bh; // room between a parent's box and its children's boxes

    // Edges (elbows) inside rows.
    for (i, n) in view.nodes.iter().enumerate() {
        let Some((cx, cy)) = center(plan, geo, i) else {
            continue;
        };
        let Some(p) = n.parent else { continue };
        let (Some(ps), Some(cs)) = (plan.spots[p], plan.spots[i]) else {
            continue;
        };
        if ps.row != cs.row || plan.is_stub[i] {
            continue;
        }
        let Some((pxc, pyc)) = center(plan, geo, p) else {
            continue;
        };
        let bus = pyc + bh / 2.0 + gap_above * 0.35;
        root.draw(&PathElement::new(
            vec![
                (px(pxc), px(pyc + bh / 2.0)),
                (px(pxc), px(bus)),
                (px(cx), px(bus)),
                (px(cx), px(cy - bh / 2.0)),
            ],
            EDGE.stroke_width(1),
        ))?;
    }
    // Stubs of subtrees moved to later rows, and the matching marks under trunk nodes.
    let stub_font = (FAMILY, sc.edge_font.max(8.0))
        .into_font()
        .color(&EDGE_TEXT);
    let mut moved_from: Vec<usize> = vec![0; view.nodes.len()];
    for &u in &plan.stubs {
        let Some((cx, cy)) = center(plan, geo, u) else {
            continue;
        };
        let Some(p) = view.nodes[u].parent else {
            continue;
        };
        moved_from[p] += 1;
        let top = cy - bh / 2.0 - (sc.level_h - bh) * 0.35 - BAND_LEVELS * sc.level_h * 0.8;
        root.draw(&PathElement::new(
            vec![(px(cx), px(top)), (px(cx), px(cy - bh / 2.0))],
            EDGE.stroke_width(1),
        ))?;
        if sc.edge_font > 0.0 {
            let text = format!(
                "↑ #{} {}",
                view.nodes[p].seq,
                one_line(view.nodes[p].name())
            );
            if let Some(t) = tm.elide(&text, sc.edge_font, sc.slot - 4.0) {
                let tw = tm.width(&t, sc.edge_font);
                let y = top + sc.edge_font * 0.2;
                let backdrop = (tw / 2.0 + 2.0, sc.edge_font * 0.7);
                label_on_white(root, t, (cx, y), backdrop, &stub_font)?;
            }
        }
    }
    for (p, &k) in moved_from.iter().enumerate() {
        if k == 0 {
            continue;
        }
        let Some((cx, cy)) = center(plan, geo, p) else {
            continue;
        };
        // Just under the box, above the bus line and the children's edge labels.
        let y0 = cy + bh / 2.0;
        let text = format!("↓ {k} below");
        match (sc.edge_font > 0.0)
            .then(|| tm.elide(&text, sc.edge_font, sc.slot - 4.0))
            .flatten()
        {
            Some(t) => {
                let tw = tm.width(&t, sc.edge_font);
                let y = y0 + sc.edge_font * 0.65;
                root.draw(&Rectangle::new(
                    [
                        (px(cx - tw / 2.0 - 2.0), px(y0 + 1.0)),
                        (px(cx + tw / 2.0 + 2.0), px(y + sc.edge_font * 0.55)),
                    ],
                    WHITE.filled(),
                ))?;
                root.draw(&Text::new(
                    t,
                    (px(cx), px(y)),
                    stub_font.pos(Pos::new(HPos::Center, VPos::Center)),
                ))?;
            }
            None => {
                root.draw(&PathElement::new(
                    vec![(px(cx), px(y0)), (px(cx), px(y0 + gap_above * 0.3))],
                    EDGE.stroke_width(1),
                ))?;
            }
        }
    }

    // Edge labels: the change, just above the child (one slot wide, so they never overlap).
    if sc.edge_font > 0.0 {
        let efont = (FAMILY, sc.edge_font).into_font().color(&EDGE_TEXT);
        for (i, n) in view.nodes.iter().enumerate() {
            if n.parent.is_none() {
                continue;
            }
            let Some((cx, cy)) = center(plan, geo, i) else {
                continue;
            };
            let label = one_line(&view.change_label(i));
            let Some(t) = tm.elide(&label, sc.edge_font, sc.slot - 6.0) else {
                continue;
            };
            let tw = tm.width(&t, sc.edge_font);
            let y = cy - bh / 2.0 - sc.edge_font * 0.85;
            let backdrop = (tw / 2.0 + 1.0, sc.edge_font * 0.6);
            label_on_white(root, t, (cx, y), backdrop, &efont)?;
        }
    }

    // Boxes.
    let name_font = (FAMILY, sc.font).into_font();
    let sub_font = (FAMILY, sc.font * 0.85).into_font();
    for (i, n) in view.nodes.iter().enumerate() {
        let Some((cx, cy)) = center(plan, geo, i) else {
            continue;
        };
        let r = (
            px(cx - bw / 2.0),
            px(cy - bh / 2.0),
            px(cx + bw / 2.0),
            px(cy + bh / 2.0),
        );
        let fill = status_fill(n.status, n.improved());
        if view.best == Some(i) {
            let t = if bh >= 14.0 { 4 } else { 2 };
            root.draw(&Rectangle::new(
                [(r.0 - t - 1, r.1 - t - 1), (r.2 + t + 1, r.3 + t + 1)],
                BLACK.filled(),
            ))?;
            root.draw(&Rectangle::new(
                [(r.0 - t, r.1 - t), (r.2 + t, r.3 + t)],
                BEST_GOLD.filled(),
            ))?;
        }
        root.draw(&Rectangle::new([(r.0, r.1), (r.2, r.3)], fill.filled()))?;
        if n.status == NodeStatus::Queued {
            dashed_rect(root, r, QUEUED_BORDER)?;
        } else if view.best != Some(i) {
            root.draw(&Rectangle::new(
                [(r.0, r.1), (r.2, r.3)],
                darker(fill).stroke_width(1),
            ))?;
        }
        if sc.font <= 0.0 {
            continue;
        }
        let text_color = match fill {
            c if c == COMPLETED_GREY || c == WHITE => TEXT,
            _ => WHITE,
        };
        let name = one_line(n.name());
        let room = bw - 6.0;
        if sc.two_lines {
            let value = match (view.primary(i), n.status) {
                (Some(v), _) => format!("#{}: {}", n.seq, fmt_value(v)),
                (None, NodeStatus::Failed) => format!(
                    "#{}: {}",
                    n.seq,
                    n.failure
                        .as_ref()
                        .map(|f| f.kind.as_str())
                        .unwrap_or("failed")
                ),
                (None, s) => format!("#{}: {}", n.seq, s.as_str()),
            };
            if let Some(t) = tm.elide(&name, sc.font, room) {
                root.draw(&Text::new(
                    t,
                    (px(cx), px(cy - bh * 0.22)),
                    name_font
                        .color(&text_color)
                        .pos(Pos::new(HPos::Center, VPos::Center)),
                ))?;
            }
            if let Some(t) = tm.elide(&value, sc.font * 0.85, room) {
                root.draw(&Text::new(
                    t,
                    (px(cx), px(cy + bh * 0.25)),
                    sub_font
                        .color(&text_color)
                        .pos(Pos::new(HPos::Center, VPos::Center)),
                ))?;
            }
        } else if let Some(t) = tm.elide(&name, sc.font, room) {
            root.draw(&Text::new(
                t,
                (px(cx), px(cy)),
                name_font
                    .color(&text_color)
                    .pos(Pos::new(HPos::Center, VPos::Center)),
            ))?;
        }
    }
    Ok(())
}
