//! Drawing of `hypothesis_tree.png`: title and legend, row separators, elbow edges, stubs of
//! subtrees drawn apart from their parent, edge labels (the change) and the node boxes coloured
//! by status, the best node outlined.

use std::path::Path;

use autoresearch_adapters::model::NodeStatus;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::super::font::{FAMILY, TextMeasure, one_line};
use super::super::load::RunView;
use super::super::{
    BEST_GOLD, COMPLETED_GREY, FAILED_RED, IMPROVED_GREEN, RUNNING_BLUE, RenderError, TREE_FILE,
    fmt_value, write_png_atomic,
};
use super::rows::Plan;
use super::scale::{BAND_LEVELS, Geometry, HEADER_H, MARGIN, ROW_GAP, choose};

const TEXT: RGBColor = RGBColor(25, 25, 25);
const EDGE: RGBColor = RGBColor(150, 150, 150);
const EDGE_TEXT: RGBColor = RGBColor(70, 70, 70);
const QUEUED_BORDER: RGBColor = RGBColor(90, 90, 90);
const ROW_RULE: RGBColor = RGBColor(225, 225, 225);

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
