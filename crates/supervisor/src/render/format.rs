//! Number formatting for labels and markdown: compact metric values, changes against the
//! baseline, durations. (The table writes numbers exactly, with
//! `autoresearch_adapters::config::format_number`.)

/// Formats a metric value compactly for labels and markdown (up to 6 significant digits).
pub fn fmt_value(v: f64) -> String {
    if !v.is_finite() {
        return format!("{v}");
    }
    let a = v.abs();
    if a != 0.0 && !(1e-4..1e9).contains(&a) {
        return format!("{v:.4e}");
    }
    let digits = if a == 0.0 {
        0
    } else {
        (5 - a.log10().floor() as i32).clamp(0, 9) as usize
    };
    let s = format!("{v:.digits$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
}

/// A value with the spread of its runs: `123.4 ± 5.6 (n=3)` (± the sample standard
/// deviation), or the value alone for a single run.
pub fn fmt_spread(v: f64, spread: Option<&autoresearch_adapters::model::Spread>) -> String {
    match spread {
        Some(s) if s.n > 1 => format!("{} ± {} (n={})", fmt_value(v), fmt_value(s.stdev), s.n),
        _ => fmt_value(v),
    }
}

/// Relative change of `v` against `base` in percent, `None` when `base` is 0 or not finite.
pub fn pct_change(v: f64, base: f64) -> Option<f64> {
    if base == 0.0 || !base.is_finite() || !v.is_finite() {
        return None;
    }
    Some((v - base) / base.abs() * 100.0)
}

/// Formats a duration in seconds with its two largest units (`12.5s`, `5m 3s`, `2h 10m`,
/// `3d 4h`).
pub fn fmt_secs(s: f64) -> String {
    if !s.is_finite() || s < 0.0 {
        return "?".to_owned();
    }
    if s < 10.0 {
        return format!("{s:.1}s");
    }
    let t = s.round() as u64;
    let units = [(86_400, "d"), (3_600, "h"), (60, "m"), (1, "s")];
    let mut parts = Vec::new();
    let mut rest = t;
    for (size, name) in units {
        let q = rest / size;
        rest %= size;
        if q > 0 || !parts.is_empty() {
            parts.push(format!("{q}{name}"));
        }
        if parts.len() == 2 {
            break;
        }
    }
    // Drop a trailing zero unit ("2h 0m" → "2h").
    if parts.len() == 2 && parts[1].starts_with('0') {
        parts.pop();
    }
    parts.join(" ")
}
