//! `params.png`: the primary metric against each parameter, one small scatter per parameter.
//!
//! Every completed experiment is a dot at (its value of the parameter, its primary metric):
//! green when it improved on the best, grey otherwise; the best experiment is a larger gold dot
//! outlined in black, drawn last. Failed experiments (no value) are red crosses along the bottom.
//! Log-scaled ranges get a logarithmic x axis; categorical parameters (lists of choices) are
//! drawn at positions `0, 1, …` in the configured order, slightly spread sideways so equal
//! values stay visible.

use std::path::Path;

use autoresearch_adapters::model::NodeStatus;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::font::{FAMILY, TextMeasure, one_line};
use super::load::RunView;
use super::param_axes::{AxisKind, ParamAxis, param_axes};
use super::{
    BEST_GOLD, COMPLETED_GREY, FAILED_RED, IMPROVED_GREEN, PARAMS_FILE, RenderError, fmt_value,
    write_png_atomic,
};

/// Image width in pixels.
pub const WIDTH: u32 = 1600;
/// Most panels per row.
pub const COLUMNS: usize = 3;
/// Height of one panel.
const PANEL_H: u32 = 380;
/// Height of the title and legend.
const HEADER_H: u32 = 70;
/// Most panels drawn (the first parameters in order); the title says when some were left out.
pub const MAX_PANELS: usize = 30;

const TEXT: RGBColor = RGBColor(30, 30, 30);

type DrawResult = Result<(), Box<dyn std::error::Error>>;

/// The image size for `view` with `panels` parameter panels.
fn size(panels: usize) -> (u32, u32) {
    let rows = panels.div_ceil(COLUMNS).max(1) as u32;
    (WIDTH, HEADER_H + rows * PANEL_H + 10)
}

/// Draws `params.png` for `view` and writes it atomically to `out`. Returns the image size.
pub fn render_params(view: &RunView, out: &Path) -> Result<(u32, u32), RenderError> {
    let axes = param_axes(view);
    let dims = size(axes.len().min(MAX_PANELS));
    write_png_atomic(out, PARAMS_FILE, dims, |root| {
        draw(view, &axes, root).map_err(|e| e.to_string())
    })?;
    Ok(dims)
}

/// A dot of one panel.
#[derive(Clone, Copy)]
struct Dot {
    x: f64,
    y: f64,
    improved: bool,
    best: bool,
}

/// Where `v` goes on the x axis of a panel (the logarithm on log axes).
fn x_of(axis: &ParamAxis, v: f64) -> f64 {
    match axis.kind {
        AxisKind::Numeric { log: true, .. } => v.log10(),
        _ => v,
    }
}

/// A small, deterministic sideways spread for dots on categories (golden-ratio sequence).
fn jitter(k: usize) -> f64 {
    ((k as f64 * 0.618_033_988_75).fract() - 0.5) * 0.5
}

fn draw(
    view: &RunView,
    axes: &[ParamAxis],
    root: &DrawingArea<BitMapBackend<'_>, Shift>,
) -> DrawResult {
    let mut tm = TextMeasure::new();
    let (w, _) = root.dim_in_pixel();
    let (header, body) = root.split_vertically(HEADER_H);
    let completed: Vec<usize> = (0..view.nodes.len())
        .filter(|&i| view.nodes[i].status == NodeStatus::Completed && view.primary(i).is_some())
        .collect();
    let failed: Vec<usize> = (0..view.nodes.len())
        .filter(|&i| view.nodes[i].status == NodeStatus::Failed)
        .collect();

    let mut title = format!(
        "{} ({}) vs each parameter: {} completed experiments, {} failed",
        one_line(&view.metric),
        view.direction.as_str(),
        completed.len(),
        failed.len()
    );
    if axes.len() > MAX_PANELS {
        title.push_str(&format!(
            " (first {MAX_PANELS} of {} parameters)",
            axes.len()
        ));
    }
    if let Some(t) = tm.elide(&title, 20.0, f64::from(w) - 30.0) {
        header.draw(&Text::new(
            t,
            (15, 8),
            (FAMILY, 20.0).into_font().color(&TEXT),
        ))?;
    }
    // Legend.
    let ly = 48;
    let mut lx = 15;
    let lfont = (FAMILY, 15.0).into_font().color(&TEXT);
    let mut item = |mark: u8, text: &str, lx: &mut i32| -> DrawResult {
        match mark {
            0 => header.draw(&Circle::new((*lx + 6, ly), 5, IMPROVED_GREEN.filled()))?,
            1 => header.draw(&Circle::new((*lx + 6, ly), 4, COMPLETED_GREY.filled()))?,
            2 => {
                header.draw(&Circle::new((*lx + 6, ly), 8, BLACK.filled()))?;
                header.draw(&Circle::new((*lx + 6, ly), 6, BEST_GOLD.filled()))?;
            }
            _ => header.draw(&Cross::new((*lx + 6, ly), 5, FAILED_RED.stroke_width(2)))?,
        }
        header.draw(&Text::new(
            text.to_owned(),
            (*lx + 20, ly),
            lfont.pos(Pos::new(HPos::Left, VPos::Center)),
        ))?;
        *lx += 20 + tm.width(text, 15.0) as i32 + 24;
        Ok(())
    };
    item(0, "improved", &mut lx)?;
    item(1, "no improvement", &mut lx)?;
    if view.best.is_some() {
        item(2, "best", &mut lx)?;
    }
    if !failed.is_empty() {
        item(3, "failed (no value)", &mut lx)?;
    }

    if axes.is_empty() {
        body.draw(&Text::new(
            "the run has no parameters".to_owned(),
            (15, 20),
            lfont.clone(),
        ))?;
        return Ok(());
    }
    let shown = &axes[..axes.len().min(MAX_PANELS)];
    let rows = shown.len().div_ceil(COLUMNS);
    let cols = shown.len().min(COLUMNS);
    let panels = body.split_evenly((rows, cols));

    // The y range is shared by all panels (same metric).
    let ys: Vec<f64> = completed.iter().filter_map(|&i| view.primary(i)).collect();
    let (ylo, yhi) = y_range(&ys, !failed.is_empty());

    for (axis, area) in shown.iter().zip(panels.iter()) {
        let dots: Vec<Dot> = completed
            .iter()
            .enumerate()
            .filter_map(|(k, &i)| {
                let v = view.nodes[i].params()?.get(&axis.name)?;
                let pos = axis.position(v)?;
                let x = match axis.kind {
                    AxisKind::Categorical(_) => pos + jitter(k),
                    _ => x_of(axis, pos),
                };
                Some(Dot {
                    x,
                    y: view.primary(i)?,
                    improved: view.nodes[i].improved(),
                    best: view.best == Some(i),
                })
            })
            .collect();
        let fails: Vec<f64> = failed
            .iter()
            .enumerate()
            .filter_map(|(k, &i)| {
                let v = view.nodes[i].params()?.get(&axis.name)?;
                let pos = axis.position(v)?;
                Some(match axis.kind {
                    AxisKind::Categorical(_) => pos + jitter(k),
                    _ => x_of(axis, pos),
                })
            })
            .collect();
        draw_panel(area, axis, &dots, &fails, (ylo, yhi), &view.metric, &mut tm)?;
    }
    Ok(())
}

fn y_range(ys: &[f64], room_for_failures: bool) -> (f64, f64) {
    let (mut lo, mut hi) = ys
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &y| {
            (lo.min(y), hi.max(y))
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
    let bottom = if room_for_failures { 0.12 } else { 0.06 };
    (lo - span * bottom, hi + span * 0.08)
}

fn draw_panel(
    area: &DrawingArea<BitMapBackend<'_>, Shift>,
    axis: &ParamAxis,
    dots: &[Dot],
    fails: &[f64],
    (ylo, yhi): (f64, f64),
    metric: &str,
    tm: &mut TextMeasure,
) -> DrawResult {
    let (xlo, xhi) = match &axis.kind {
        AxisKind::Categorical(cats) => (-0.5, cats.len().max(1) as f64 - 0.5),
        AxisKind::Numeric { log, min, max } => {
            let (a, b) = if *log {
                (min.log10(), max.log10())
            } else {
                (*min, *max)
            };
            let pad = if b > a { (b - a) * 0.05 } else { 0.5 };
            (a - pad, b + pad)
        }
    };
    let (aw, _) = area.dim_in_pixel();
    let name = match axis.kind {
        AxisKind::Numeric { log: true, .. } => format!("{} (log scale)", one_line(&axis.name)),
        AxisKind::Categorical(_) => format!("{} (choices)", one_line(&axis.name)),
        _ => one_line(&axis.name),
    };
    let mut chart = ChartBuilder::on(area)
        .margin(12)
        .margin_top(30)
        .x_label_area_size(30)
        .y_label_area_size(76)
        .build_cartesian_2d(xlo..xhi, ylo..yhi)?;
    // x ticks are drawn by hand (round numbers, 1-2-5 per decade on log axes, category names),
    // so plotters draws only the y labels and the horizontal grid.
    chart
        .configure_mesh()
        .disable_x_mesh()
        .light_line_style(RGBColor(240, 240, 240))
        .bold_line_style(RGBColor(222, 222, 222))
        .axis_style(RGBColor(120, 120, 120))
        .label_style((FAMILY, 13.0))
        .x_labels(0)
        .y_labels(5)
        .y_label_formatter(&|v| fmt_value(*v))
        .y_desc(one_line(metric))
        .axis_desc_style((FAMILY, 13.0))
        .draw()?;
    // Panel title: the parameter.
    if let Some(t) = tm.elide(&name, 16.0, f64::from(aw) - 100.0) {
        area.draw(&Text::new(
            t,
            (86, 8),
            (FAMILY, 16.0).into_font().color(&TEXT),
        ))?;
    }
    let ticks = axis.ticks();
    let (xr, _) = chart.plotting_area().get_pixel_range();
    let room = f64::from((xr.end - xr.start).max(1)) / ticks.len().max(1) as f64 - 4.0;
    let base = area.get_base_pixel();
    for (pos, label) in &ticks {
        let x = x_of(axis, *pos);
        let (px, py) = chart.backend_coord(&(x, ylo));
        let (px, py) = (px - base.0, py - base.1);
        chart.plotting_area().draw(&PathElement::new(
            vec![(x, ylo), (x, yhi)],
            RGBColor(236, 236, 236).stroke_width(1),
        ))?;
        area.draw(&PathElement::new(
            vec![(px, py), (px, py + 4)],
            RGBColor(120, 120, 120).stroke_width(1),
        ))?;
        if let Some(t) = tm.elide(&one_line(label), 13.0, room) {
            area.draw(&Text::new(
                t,
                (px, py + 7),
                (FAMILY, 13.0)
                    .into_font()
                    .color(&TEXT)
                    .pos(Pos::new(HPos::Center, VPos::Top)),
            ))?;
        }
    }
    let many = dots.len() > 300;
    let r = if many { 2 } else { 3 };
    chart.draw_series(
        dots.iter()
            .filter(|d| !d.improved && !d.best)
            .map(|d| Circle::new((d.x, d.y), r, COMPLETED_GREY.filled())),
    )?;
    chart.draw_series(
        dots.iter()
            .filter(|d| d.improved && !d.best)
            .map(|d| Circle::new((d.x, d.y), r + 1, IMPROVED_GREEN.filled())),
    )?;
    if !fails.is_empty() {
        let y = ylo + (yhi - ylo) * 0.05;
        chart.draw_series(
            fails
                .iter()
                .map(|&x| Cross::new((x, y), 4, FAILED_RED.stroke_width(2))),
        )?;
    }
    for d in dots.iter().filter(|d| d.best) {
        chart.draw_series([
            Circle::new((d.x, d.y), 8, BLACK.filled()),
            Circle::new((d.x, d.y), 6, BEST_GOLD.filled()),
        ])?;
    }
    Ok(())
}
