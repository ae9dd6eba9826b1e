//! The space-filling start: a maximin Latin hypercube whose points depend only on the search
//! space, the baseline and the seed, so every planning round of a run (and a resumed run) sees
//! the same design.

use super::space::Space;

/// Latin hypercubes drawn; the one whose closest pair (the baseline included) is farthest
/// apart is kept.
const DRAWS: usize = 32;

/// `count` points spread over the space: each numeric coordinate takes one value in each of
/// `count` equal slices, each unordered choice is used about equally often, and among
/// [`DRAWS`] such designs the one keeping its points (and the baseline) farthest apart wins.
pub(crate) fn latin_hypercube(
    space: &Space,
    count: usize,
    baseline: Option<&[f64]>,
    rng: &mut fastrand::Rng,
) -> Vec<Vec<f64>> {
    if count == 0 {
        return Vec::new();
    }
    let mut best: Option<(f64, Vec<Vec<f64>>)> = None;
    for _ in 0..DRAWS {
        let design = draw(space, count, rng);
        let mut closest = f64::INFINITY;
        for (i, a) in design.iter().enumerate() {
            for b in design[..i]
                .iter()
                .chain(baseline.map(|b| b.to_vec()).as_ref())
            {
                closest = closest.min(space.distance2(a, b));
            }
        }
        if best.as_ref().is_none_or(|(d, _)| closest > *d) {
            best = Some((closest, design));
        }
    }
    best.map(|(_, d)| d).unwrap_or_default()
}

/// One random Latin hypercube, snapped onto the space.
fn draw(space: &Space, count: usize, rng: &mut fastrand::Rng) -> Vec<Vec<f64>> {
    let mut points = vec![Vec::with_capacity(space.len()); count];
    for dim in &space.dims {
        let mut slots: Vec<usize> = (0..count).collect();
        rng.shuffle(&mut slots);
        let categories = dim.categories();
        for (point, slot) in points.iter_mut().zip(slots) {
            let u = (slot as f64 + rng.f64()) / count as f64;
            point.push(if categories > 0 {
                (u * categories as f64).floor().min(categories as f64 - 1.0)
            } else {
                u
            });
        }
    }
    points.into_iter().map(|p| space.snap(&p).0).collect()
}
