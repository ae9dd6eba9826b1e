//! `parallel.png`: parallel coordinates. One vertical axis per parameter (in parameter order)
//! and a last one for the primary metric; every completed experiment is a line through its
//! values, coloured by its metric from worst (dark purple) to best (yellow) per the objective's
//! direction. The best experiment is drawn last, thick, in black over gold. Log-scaled ranges
//! are spaced by their logarithm; categories sit at even positions in the configured order.
//! An experiment without a value for a parameter skips that axis.

use std::path::Path;

use autoresearch_adapters::model::NodeStatus;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::font::{FAMILY, TextMeasure, one_line};
use super::load::RunView;
use super::param_axes::{AxisKind, nice_ticks, param_axes};
use super::{BEST_GOLD, PARALLEL_FILE, RenderError, fmt_value, write_png_atomic};

/// Image width in pixels (wider when there are many parameters).
pub const MIN_WIDTH: u32 = 1600;
/// Image height in pixels.
pub const HEIGHT: u32 = 760;
/// Most parameter axes drawn (the first ones in order); the title says when some were left out.
pub const MAX_AXES: usize = 40;

const TEXT: RGBColor = RGBColor(30, 30, 30);
const AXIS: RGBColor = RGBColor(90, 90, 90);
const HEADER_H: i32 = 64;
const TOP: i32 = HEADER_H + 56;
const BOTTOM_MARGIN: i32 = 70;
const LEFT: i32 = 90;
const RIGHT: i32 = 150;
const AXIS_SPACING: i32 = 150;

type DrawResult = Result<(), Box<dyn std::error::Error>>;

/// The colour for `t` in `0..=1` (0 worst, 1 best) on a viridis-like scale.
pub fn metric_colour(t: f64) -> RGBColor {
    const STOPS: [(f64, f64, f64); 5] = [
        (68.0, 1.0, 84.0),
        (59.0, 82.0, 139.0),
        (33.0, 145.0, 140.0),
        (94.0, 201.0, 98.0),
        (253.0, 231.0, 37.0),
    ];
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let f = t * (STOPS.len() - 1) as f64;
    let i = (f.floor() as usize).min(STOPS.len() - 2);
    let u = f - i as f64;
    let (a, b) = (STOPS[i], STOPS[i + 1]);
    let mix = |x: f64, y: f64| (x + (y - x) * u).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// Draws `parallel.png` for `view` and writes it atomically to `out`. Returns the image size.
pub fn render_parallel(view: &RunView, out: &Path) -> Result<(u32, u32), RenderError> {
    let axes = param_axes(view).len().min(MAX_AXES) as i32;
    let width = (LEFT + RIGHT + AXIS_SPACING * axes).max(MIN_WIDTH as i32) as u32;
    let dims = (width, HEIGHT);
    write_png_atomic(out, PARALLEL_FILE, dims, |root| {
        draw(view, root).map_err(|e| e.to_string())
    })?;
    Ok(dims)
}

fn draw(view: &RunView, root: &DrawingArea<BitMapBackend<'_>, Shift>) -> DrawResult {
    let mut tm = TextMeasure::new();
    let (w, h) = root.dim_in_pixel();
    let (w, h) = (w as i32, h as i32);
    let all_axes = param_axes(view);
    let axes = &all_axes[..all_axes.len().min(MAX_AXES)];
    let lines: Vec<usize> = (0..view.nodes.len())
        .filter(|&i| view.nodes[i].status == NodeStatus::Completed && view.primary(i).is_some())
        .collect();

    let mut title = format!(
        "Parallel coordinates: {} completed experiments over {} parameters, coloured by {} ({})",
        lines.len(),
        all_axes.len(),
        one_line(&view.metric),
        view.direction.as_str()
    );
    if all_axes.len() > MAX_AXES {
        title.push_str(&format!(" (first {MAX_AXES} parameters)"));
    }
    if let Some(t) = tm.elide(&title, 20.0, f64::from(w) - 30.0) {
        root.draw(&Text::new(
            t,
            (15, 8),
            (FAMILY, 20.0).into_font().color(&TEXT),
        ))?;
    }
    let small = (FAMILY, 13.0).into_font().color(&TEXT);
    if let (Some(bi), Some(bv)) = (view.best, view.best_value()) {
        let text = format!(
            "best (thick black line): {} = {}",
            one_line(view.nodes[bi].name()),
            fmt_value(bv)
        );
        if let Some(t) = tm.elide(&text, 15.0, f64::from(w) - 30.0) {
            root.draw(&Text::new(
                t,
                (15, 40),
                (FAMILY, 15.0).into_font().color(&TEXT),
            ))?;
        }
    }
    if lines.is_empty() {
        root.draw(&Text::new(
            "no completed experiments yet".to_owned(),
            (15, TOP),
            (FAMILY, 15.0).into_font().color(&TEXT),
        ))?;
        return Ok(());
    }

    // Axis positions: the parameters, then the metric.
    let n_axes = axes.len() + 1;
    let span = (w - LEFT - RIGHT).max(1);
    let axis_x = |k: usize| -> i32 {
        if n_axes == 1 {
            LEFT + span / 2
        } else {
            LEFT + (span as f64 * k as f64 / (n_axes - 1) as f64).round() as i32
        }
    };
    let bottom = h - BOTTOM_MARGIN;
    let y_of = |u: f64| -> i32 { bottom - ((bottom - TOP) as f64 * u).round() as i32 };

    // The metric axis: worst at the bottom for "higher is better", so up is always better.
    let values: Vec<f64> = lines.iter().filter_map(|&i| view.primary(i)).collect();
    let (mlo, mhi) = values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    let goodness = |v: f64| -> f64 {
        let u = if mhi > mlo {
            (v - mlo) / (mhi - mlo)
        } else {
            0.5
        };
        match view.direction {
            super::Direction::Maximize => u,
            super::Direction::Minimize => 1.0 - u,
        }
    };

    // Lines, worst first so the good ones end up on top; the best last.
    let mut order = lines.clone();
    order.sort_by(|&a, &b| {
        let (va, vb) = (
            view.primary(a).unwrap_or(0.0),
            view.primary(b).unwrap_or(0.0),
        );
        goodness(va).total_cmp(&goodness(vb))
    });
    let alpha = if order.len() > 200 { 0.35 } else { 0.75 };
    let path_of = |i: usize| -> Vec<(i32, i32)> {
        let mut pts = Vec::with_capacity(n_axes);
        let params = view.nodes[i].params();
        for (k, axis) in axes.iter().enumerate() {
            if let Some(pos) = params
                .and_then(|p| p.get(&axis.name))
                .and_then(|v| axis.position(v))
            {
                pts.push((axis_x(k), y_of(axis.unit(pos))));
            }
        }
        if let Some(v) = view.primary(i) {
            pts.push((axis_x(n_axes - 1), y_of(goodness(v))));
        }
        pts
    };
    for &i in &order {
        if view.best == Some(i) {
            continue;
        }
        let colour = metric_colour(view.primary(i).map(goodness).unwrap_or(0.0));
        root.draw(&PathElement::new(
            path_of(i),
            colour.mix(alpha).stroke_width(1),
        ))?;
    }
    if let Some(bi) = view.best.filter(|b| lines.contains(b)) {
        let pts = path_of(bi);
        root.draw(&PathElement::new(pts.clone(), BEST_GOLD.stroke_width(7)))?;
        root.draw(&PathElement::new(pts, BLACK.stroke_width(3)))?;
    }

    // Axes with their names and ticks (over the lines, on a light backdrop).
    let room = (span as f64 / n_axes.max(2) as f64 * 0.95).max(40.0);
    let tick_label = |text: String, x: i32, y: i32, tm: &mut TextMeasure| -> DrawResult {
        if let Some(t) = tm.elide(&text, 13.0, room * 0.9) {
            let tw = tm.width(&t, 13.0) as i32;
            root.draw(&Rectangle::new(
                [(x + 4, y - 8), (x + 8 + tw, y + 8)],
                WHITE.mix(0.8).filled(),
            ))?;
            root.draw(&Text::new(
                t,
                (x + 6, y),
                small.pos(Pos::new(HPos::Left, VPos::Center)),
            ))?;
        }
        Ok(())
    };
    for k in 0..n_axes {
        let x = axis_x(k);
        root.draw(&PathElement::new(
            vec![(x, TOP), (x, bottom)],
            AXIS.stroke_width(2),
        ))?;
        let (name, ticks): (String, Vec<(f64, String)>) = if k < axes.len() {
            let axis = &axes[k];
            let name = match axis.kind {
                AxisKind::Numeric { log: true, .. } => format!("{} (log)", one_line(&axis.name)),
                _ => one_line(&axis.name),
            };
            let ticks = axis
                .ticks()
                .into_iter()
                .map(|(pos, label)| (axis.unit(pos), one_line(&label)))
                .collect();
            (name, ticks)
        } else {
            let ticks = nice_ticks(mlo, mhi, 5)
                .into_iter()
                .map(|v| (goodness(v), fmt_value(v)))
                .collect();
            (format!("{} (better up)", one_line(&view.metric)), ticks)
        };
        if let Some(t) = tm.elide(&name, 14.0, room) {
            root.draw(&Text::new(
                t,
                (x, TOP - 12),
                (FAMILY, 14.0)
                    .into_font()
                    .color(&TEXT)
                    .pos(Pos::new(HPos::Center, VPos::Bottom)),
            ))?;
        }
        for (u, label) in ticks {
            let y = y_of(u);
            root.draw(&PathElement::new(
                vec![(x - 4, y), (x + 4, y)],
                AXIS.stroke_width(1),
            ))?;
            tick_label(label, x, y, &mut tm)?;
        }
    }

    // Colour bar: worst at the bottom, best at the top.
    let bx = w - 45;
    for y in TOP..=bottom {
        let u = f64::from(bottom - y) / f64::from((bottom - TOP).max(1));
        root.draw(&PathElement::new(
            vec![(bx, y), (bx + 18, y)],
            metric_colour(u).stroke_width(1),
        ))?;
    }
    root.draw(&Text::new(
        "best".to_owned(),
        (bx + 9, TOP - 6),
        small.pos(Pos::new(HPos::Center, VPos::Bottom)),
    ))?;
    root.draw(&Text::new(
        "worst".to_owned(),
        (bx + 9, bottom + 6),
        small.pos(Pos::new(HPos::Center, VPos::Top)),
    ))?;
    Ok(())
}
