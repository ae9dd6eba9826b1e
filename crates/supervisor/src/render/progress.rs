//! `progress.png`: the primary metric per finished experiment in completion order.
//!
//! Improvements are green dots labelled with their names (a label that would overlap another
//! one, a dot or the best line is left out; one confirmed by re-runs has a dark ring), the best
//! so far (the value of the latest improvement) is a dark green step line, other completed
//! experiments are grey dots, unconfirmed wins orange rings, and failures are red crosses along
//! the bottom of the axis. An experiment that ran more than once has an error bar from the
//! smallest to the largest of its runs. One smaller panel follows per other metric (the first
//! three by name). The title gives the counts.

use std::path::Path;

use autoresearch_adapters::model::NodeStatus;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::font::{FAMILY, TextMeasure, one_line};
use super::load::RunView;
use super::{
    BEST_LINE, COMPLETED_GREY, FAILED_RED, IMPROVED_GREEN, PROGRESS_FILE, RenderError, SPREAD_BAR,
    UNCONFIRMED_ORANGE, fmt_value, pct_change, write_png_atomic,
};

/// Image width in pixels.
pub const WIDTH: u32 = 1600;
/// Height of the header (title and legend).
const HEADER_H: u32 = 64;
/// Height of the primary metric panel.
const MAIN_H: u32 = 560;
/// Height of each other-metric panel.
const PANEL_H: u32 = 240;
/// Most other-metric panels drawn.
pub const MAX_PANELS: usize = 3;

const TEXT: RGBColor = RGBColor(30, 30, 30);
const LABEL_TEXT: RGBColor = RGBColor(10, 70, 20);

/// One finished experiment's dot.
#[derive(Clone, Copy)]
struct Point {
    /// Position in completion order (1-based).
    x: f64,
    /// Its value.
    y: f64,
    /// Counted as an improvement.
    improved: bool,
    /// Its improvement was confirmed by re-runs.
    confirmed: bool,
    /// It beat the best at first, but the re-runs did not hold it.
    unconfirmed: bool,
    /// The smallest and largest of its runs, when it ran more than once.
    range: Option<(f64, f64)>,
}

struct Series {
    points: Vec<Point>,
    /// x of failures
    failures: Vec<f64>,
}

/// The image size for `view`.
pub fn size(view: &RunView) -> (u32, u32) {
    let panels = view.other_metrics.len().min(MAX_PANELS) as u32;
    (WIDTH, HEADER_H + MAIN_H + panels * PANEL_H)
}

/// Draws `progress.png` for `view` and writes it atomically to `out`.
pub fn render_progress(view: &RunView, out: &Path) -> Result<(), RenderError> {
    let dims = size(view);
    write_png_atomic(out, PROGRESS_FILE, dims, |root| {
        draw(view, root).map_err(|e| e.to_string())
    })
}

type DrawResult = Result<(), Box<dyn std::error::Error>>;

fn collect(view: &RunView, metric: Option<&str>) -> Series {
    let mut s = Series {
        points: Vec::new(),
        failures: Vec::new(),
    };
    for (k, &i) in view.completion_order.iter().enumerate() {
        let x = (k + 1) as f64;
        let n = &view.nodes[i];
        match n.status {
            NodeStatus::Failed => s.failures.push(x),
            _ => {
                let v = match metric {
                    None => view.primary(i),
                    Some(m) => n.metric(m).filter(|v| v.is_finite()),
                };
                // Only the primary metric's runs are kept one by one.
                let range = match metric {
                    None => n
                        .spread()
                        .filter(|s| s.n > 1 && s.min.is_finite() && s.max.is_finite())
                        .map(|s| (s.min, s.max)),
                    Some(_) => None,
                };
                if let Some(y) = v {
                    s.points.push(Point {
                        x,
                        y,
                        improved: n.improved(),
                        confirmed: n.improved() && n.confirmed(),
                        unconfirmed: n.unconfirmed(),
                        range,
                    });
                }
            }
        }
    }
    s
}

fn y_range(points: &[Point], room_for_failures: bool) -> (f64, f64) {
    let (mut lo, mut hi) = points
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
            let (a, b) = p.range.unwrap_or((p.y, p.y));
            (lo.min(p.y).min(a), hi.max(p.y).max(b))
        });
    if !lo.is_finite() || !hi.is_finite() {
        return (0.0, 1.0);
    }
    if hi - lo < 1e-12 * hi.abs().max(1e-12) {
        let pad = if lo == 0.0 { 1.0 } else { lo.abs() * 0.05 };
        lo -= pad;
        hi += pad;
    }
    let span = hi - lo;
    let bottom = if room_for_failures { 0.10 } else { 0.05 };
    (lo - span * bottom, hi + span * 0.08)
}

fn draw(view: &RunView, root: &DrawingArea<BitMapBackend<'_>, Shift>) -> DrawResult {
    let mut tm = TextMeasure::new();
    let (w, _) = root.dim_in_pixel();
    let (header, rest) = root.split_vertically(HEADER_H);
    let main = collect(view, None);
    let c = view.counts();

    // Title: the counts; the best goes right-aligned on the legend line.
    let title = format!(
        "{} ({}) per experiment: {} finished = {} completed ({} improved) + {} failed; {} running, {} queued",
        one_line(&view.metric),
        view.direction.as_str(),
        view.completion_order.len(),
        c.completed,
        c.improved,
        c.failed,
        c.running,
        c.queued
    );
    let title_size = 20.0;
    let title = tm
        .elide(&title, title_size, f64::from(w) - 30.0)
        .unwrap_or_default();
    header.draw(&Text::new(
        title,
        (15, 8),
        (FAMILY, title_size).into_font().color(&TEXT),
    ))?;
    let mut best_text = String::new();
    if let (Some(bi), Some(bv)) = (view.best, view.best_value()) {
        best_text = format!(
            "best: {} = {}",
            one_line(view.nodes[bi].name()),
            fmt_value(bv)
        );
        if let Some(p) = view.baseline_value().and_then(|b| pct_change(bv, b)) {
            best_text.push_str(&format!(" ({p:+.1}% vs baseline)"));
        }
    }

    // Legend (only the marks that appear, so colours in the image mean something is there).
    let mut lx = 15i32;
    let ly = 46i32;
    let legend_font = (FAMILY, 15.0).into_font().color(&TEXT);
    let legend_item = |mark: u8, text: &str, lx: &mut i32, tm: &mut TextMeasure| -> DrawResult {
        match mark {
            0 => header.draw(&Circle::new((*lx + 6, ly), 5, IMPROVED_GREEN.filled()))?,
            4 => {
                header.draw(&Circle::new((*lx + 6, ly), 5, IMPROVED_GREEN.filled()))?;
                header.draw(&Circle::new((*lx + 6, ly), 7, BEST_LINE.stroke_width(2)))?
            }
            5 => header.draw(&Circle::new(
                (*lx + 6, ly),
                5,
                UNCONFIRMED_ORANGE.stroke_width(2),
            ))?,
            6 => header.draw(&PathElement::new(
                vec![(*lx + 6, ly - 7), (*lx + 6, ly + 7)],
                SPREAD_BAR.stroke_width(1),
            ))?,
            1 => header.draw(&PathElement::new(
                vec![(*lx, ly), (*lx + 14, ly)],
                BEST_LINE.stroke_width(3),
            ))?,
            2 => header.draw(&Circle::new((*lx + 6, ly), 4, COMPLETED_GREY.filled()))?,
            _ => header.draw(&Cross::new((*lx + 6, ly), 5, FAILED_RED.stroke_width(2)))?,
        }
        header.draw(&Text::new(
            text.to_owned(),
            (*lx + 20, ly),
            legend_font.pos(Pos::new(HPos::Left, VPos::Center)),
        ))?;
        *lx += 20 + tm.width(text, 15.0) as i32 + 24;
        Ok(())
    };
    if main.points.iter().any(|p| p.improved) {
        legend_item(0, "improvement (named)", &mut lx, &mut tm)?;
    }
    if main.points.iter().any(|p| p.confirmed) {
        legend_item(4, "confirmed by re-runs", &mut lx, &mut tm)?;
    }
    if !main.points.is_empty() {
        legend_item(1, "best so far", &mut lx, &mut tm)?;
    }
    if main.points.iter().any(|p| !p.improved && !p.unconfirmed) {
        legend_item(2, "no improvement", &mut lx, &mut tm)?;
    }
    if main.points.iter().any(|p| p.unconfirmed) {
        legend_item(5, "unconfirmed win", &mut lx, &mut tm)?;
    }
    if main.points.iter().any(|p| p.range.is_some()) {
        legend_item(6, "min–max of runs", &mut lx, &mut tm)?;
    }
    if !main.failures.is_empty() {
        legend_item(3, "failed (no value)", &mut lx, &mut tm)?;
    }
    if view.completion_order.is_empty() {
        header.draw(&Text::new(
            "no finished experiments yet".to_owned(),
            (lx, ly),
            legend_font.pos(Pos::new(HPos::Left, VPos::Center)),
        ))?;
        lx += 20 + tm.width("no finished experiments yet", 15.0) as i32;
    }
    let best_size = 16.0;
    if let Some(t) = tm.elide(&best_text, best_size, f64::from(w) - 15.0 - f64::from(lx)) {
        header.draw(&Text::new(
            t,
            (w as i32 - 15, ly),
            (FAMILY, best_size)
                .into_font()
                .color(&TEXT)
                .pos(Pos::new(HPos::Right, VPos::Center)),
        ))?;
    }

    let panels = view.other_metrics.len().min(MAX_PANELS);
    let (main_area, mut rest) = rest.split_vertically(MAIN_H);
    let n = view.completion_order.len().max(1) as f64;
    let names: Vec<String> = view
        .completion_order
        .iter()
        .map(|&i| one_line(view.nodes[i].name()))
        .collect();
    draw_panel(
        &main_area,
        &view.metric,
        &main,
        n,
        true,
        view.direction,
        &names,
        &mut tm,
    )?;
    for m in view.other_metrics.iter().take(panels) {
        let (area, r) = rest.split_vertically(PANEL_H);
        rest = r;
        let s = collect(view, Some(m));
        draw_panel(&area, m, &s, n, false, view.direction, &names, &mut tm)?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn draw_panel(
    area: &DrawingArea<BitMapBackend<'_>, Shift>,
    metric: &str,
    s: &Series,
    n: f64,
    primary: bool,
    direction: super::Direction,
    names: &[String],
    tm: &mut TextMeasure,
) -> DrawResult {
    let (ylo, yhi) = y_range(&s.points, primary && !s.failures.is_empty());
    let mut chart = ChartBuilder::on(area)
        .margin_left(10)
        .margin_right(30)
        .margin_top(if primary { 6 } else { 14 })
        .margin_bottom(6)
        .x_label_area_size(if primary { 44 } else { 36 })
        .y_label_area_size(96)
        .build_cartesian_2d(0.5..n + 0.5, ylo..yhi)?;
    let label_font = (FAMILY, 14.0).into_font();
    let metric_label = one_line(metric);
    chart
        .configure_mesh()
        .light_line_style(RGBColor(238, 238, 238))
        .bold_line_style(RGBColor(215, 215, 215))
        .axis_style(RGBColor(120, 120, 120))
        .x_desc(if primary {
            "experiment (completion order)"
        } else {
            ""
        })
        .y_desc(metric_label.as_str())
        .label_style(label_font.clone())
        .axis_desc_style((FAMILY, 15.0))
        .x_label_formatter(&|v| {
            // Ticks fall on fractions for small runs: label whole experiment numbers only.
            if (v - v.round()).abs() < 1e-9 && *v >= 1.0 {
                format!("{v:.0}")
            } else {
                String::new()
            }
        })
        .x_labels((n as usize).clamp(2, 12))
        .y_label_formatter(&|v| fmt_value(*v))
        .y_labels(if primary { 10 } else { 5 })
        .draw()?;
    if !primary {
        let (px, py) = chart.plotting_area().get_base_pixel();
        area.draw(&Text::new(
            metric_label.clone(),
            (
                px + 8 - area.get_base_pixel().0,
                py + 4 - area.get_base_pixel().1,
            ),
            (FAMILY, 15.0).into_font().color(&TEXT),
        ))?;
    }

    let many = s.points.len() > 300;
    let grey_r = if many { 2 } else { 3 };
    let green_r = if many { 4 } else { 5 };

    // Error bars first, grey points, then the best line, then the green points on top.
    // Caps about 5 px either side (the plot is about 1,450 px wide); none when crowded.
    let cap = if many { 0.0 } else { 5.0 * n / 1450.0 };
    for p in &s.points {
        if let Some((lo, hi)) = p.range {
            chart.draw_series(std::iter::once(PathElement::new(
                vec![(p.x, lo), (p.x, hi)],
                SPREAD_BAR.stroke_width(1),
            )))?;
            if cap > 0.0 {
                for y in [lo, hi] {
                    chart.draw_series(std::iter::once(PathElement::new(
                        vec![(p.x - cap, y), (p.x + cap, y)],
                        SPREAD_BAR.stroke_width(1),
                    )))?;
                }
            }
        }
    }
    chart.draw_series(
        s.points
            .iter()
            .filter(|p| !p.improved && !p.unconfirmed)
            .map(|p| Circle::new((p.x, p.y), grey_r, COMPLETED_GREY.filled())),
    )?;
    chart.draw_series(
        s.points
            .iter()
            .filter(|p| p.unconfirmed)
            .map(|p| Circle::new((p.x, p.y), green_r, UNCONFIRMED_ORANGE.stroke_width(2))),
    )?;
    let mut step: Vec<(f64, f64)> = Vec::new();
    if primary && !s.points.is_empty() {
        // The engine's notion of best: it moves only at improvements (a result better by less
        // than `min_improvement` does not count). Runs without improvement flags fall back to
        // the best value so far.
        let by_flag = s.points.iter().any(|p| p.improved);
        let mut best: Option<f64> = None;
        for p in &s.points {
            let better = if by_flag {
                p.improved
            } else {
                best.is_none_or(|b| direction.is_better(p.y, b))
            };
            if better {
                if let Some(b) = best {
                    step.push((p.x, b));
                }
                best = Some(p.y);
                step.push((p.x, p.y));
            }
        }
        if let Some(b) = best {
            step.push((n + 0.5, b));
        }
        chart.draw_series(LineSeries::new(
            step.iter().copied(),
            BEST_LINE.stroke_width(2),
        ))?;
    }
    chart.draw_series(
        s.points
            .iter()
            .filter(|p| p.improved)
            .map(|p| Circle::new((p.x, p.y), green_r, IMPROVED_GREEN.filled())),
    )?;
    chart.draw_series(
        s.points
            .iter()
            .filter(|p| p.confirmed)
            .map(|p| Circle::new((p.x, p.y), green_r + 2, BEST_LINE.stroke_width(2))),
    )?;
    if primary && !s.failures.is_empty() {
        let y = ylo + (yhi - ylo) * 0.045;
        let size = if s.failures.len() > 300 { 3 } else { 4 };
        chart.draw_series(
            s.failures
                .iter()
                .map(|&x| Cross::new((x, y), size, FAILED_RED.stroke_width(2))),
        )?;
    }

    // Names of the improvements, placed where they overlap nothing already labelled.
    if primary {
        let (xr, yr) = chart.plotting_area().get_pixel_range();
        let font_size = 13.0;
        let font = (FAMILY, font_size).into_font().color(&LABEL_TEXT);
        // Obstacles: labels already placed, the green dots and the best line.
        let mut placed: Vec<(i32, i32, i32, i32)> = Vec::new();
        for p in s.points.iter().filter(|p| p.improved) {
            let (cx, cy) = chart.backend_coord(&(p.x, p.y));
            let r = green_r + 3;
            placed.push((cx - r, cy - r, cx + r, cy + r));
        }
        for w in step.windows(2) {
            let (ax, ay) = chart.backend_coord(&w[0]);
            let (bx, by) = chart.backend_coord(&w[1]);
            placed.push((
                ax.min(bx) - 1,
                ay.min(by) - 2,
                ax.max(bx) + 1,
                ay.max(by) + 2,
            ));
        }
        let base = area.get_base_pixel();
        // Label the later improvements first: they are the ones that matter most.
        for p in s.points.iter().rev().filter(|p| p.improved) {
            let idx = p.x as usize - 1;
            let Some(name) = names.get(idx) else { continue };
            let Some(text) = tm.elide(name, font_size, 180.0) else {
                continue;
            };
            let tw = tm.width(&text, font_size).ceil() as i32 + 2;
            let th = 16;
            let (cx, cy) = chart.backend_coord(&(p.x, p.y));
            let candidates = [
                (cx + 7, cy - th - 3),
                (cx - tw - 7, cy - th - 3),
                (cx + 7, cy + 4),
                (cx - tw - 7, cy + 4),
                (cx - tw / 2, cy - th - 9),
                (cx - tw / 2, cy + 9),
            ];
            let spot = candidates.into_iter().find(|&(x, y)| {
                x >= xr.start
                    && x + tw <= xr.end
                    && y >= yr.start
                    && y + th <= yr.end
                    && placed
                        .iter()
                        .all(|&(a, b, c, d)| x + tw <= a || x >= c || y + th <= b || y >= d)
            });
            if let Some((x, y)) = spot {
                placed.push((x, y, x + tw, y + th));
                // A light veil behind the label keeps it readable over dots and the best line.
                area.draw(&Rectangle::new(
                    [
                        (x - base.0 - 1, y - base.1),
                        (x + tw - base.0, y + th - base.1 - 1),
                    ],
                    WHITE.mix(0.75).filled(),
                ))?;
                area.draw(&Text::new(text, (x - base.0, y - base.1), font.clone()))?;
            }
        }
    }
    Ok(())
}
