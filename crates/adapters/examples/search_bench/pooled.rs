//! The comparison pooled over baselines: per function, budget and slot count, how often a run
//! of ours ends better than a run of TPE started from the same baseline.
//!
//! A 5-seed median is a noisy figure: a group of 5 of TPE's own recorded seeds lands below the
//! median of all of them in about half the cells (`tpe_selfcheck.py`). The pooled figure compares every run of ours with
//! every TPE run from the same baseline (the Vargha–Delaney A statistic: the chance that ours
//! ends lower, ties counting half), which is 0.5 for a method exactly as good as TPE.

use crate::reference::median;

/// One cell of a per-baseline table.
pub(crate) struct Cell {
    /// Function name.
    pub function: &'static str,
    /// Budget reported.
    pub budget: usize,
    /// Slots.
    pub slots: usize,
    /// f(baseline).
    pub base: f64,
    /// Best true value per seed, ours.
    pub ours: Vec<f64>,
    /// Best true value per seed, TPE from the same baseline (empty if not recorded).
    pub tpe: Vec<f64>,
}

/// The chance that a run of ours ends lower than a TPE run (ties: half).
fn a_statistic(ours: &[f64], tpe: &[f64]) -> (f64, usize) {
    let mut wins = 0.0;
    let mut pairs = 0;
    for o in ours {
        for t in tpe {
            pairs += 1;
            if (o - t).abs() <= 1e-12 * t.abs().max(1.0) {
                wins += 0.5;
            } else if o < t {
                wins += 1.0;
            }
        }
    }
    (wins, pairs)
}

/// Prints the pooled table: per function, budget and slots, the A statistic over all pairs,
/// the baselines where the median of ours reached 100 % of TPE's, and the median ratio.
pub(crate) fn print(cells: &[Cell], slots: &[usize]) {
    let mut keys: Vec<(&str, usize)> = cells.iter().map(|c| (c.function, c.budget)).collect();
    keys.sort();
    keys.dedup();
    let header: String = slots
        .iter()
        .map(|s| format!(" {s} slot(s): A vs TPE | ≥ 100 % | median % |"))
        .collect();
    println!(
        "\nPooled over baselines (A = chance that a run of ours ends better than a TPE run from the same baseline; 0.5 = as good):"
    );
    println!("\n| function | budget |{header}");
    println!("|---|---|{}", "---|---|---|".repeat(slots.len()));
    for (function, budget) in keys {
        let mut line = format!("| {function} | {budget} |");
        for &s in slots {
            let mine: Vec<&Cell> = cells
                .iter()
                .filter(|c| c.function == function && c.budget == budget && c.slots == s)
                .filter(|c| !c.tpe.is_empty())
                .collect();
            let (mut wins, mut pairs) = (0.0, 0);
            let mut ratios = Vec::new();
            for c in &mine {
                let (w, p) = a_statistic(&c.ours, &c.tpe);
                wins += w;
                pairs += p;
                let t = median(&c.tpe);
                if c.base - t > 1e-12 {
                    ratios.push((c.base - median(&c.ours)) / (c.base - t) * 100.0);
                }
            }
            let a = if pairs > 0 {
                format!("{:.2}", wins / pairs as f64)
            } else {
                "-".into()
            };
            let reached = ratios.iter().filter(|r| **r >= 100.0).count();
            let med = if ratios.is_empty() {
                "n/a".into()
            } else {
                format!("{:.1}%", median(&ratios))
            };
            line.push_str(&format!(" {a} | {reached}/{} | {med} |", ratios.len()));
        }
        println!("{line}");
    }
}
