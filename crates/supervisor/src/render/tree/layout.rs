//! Tidy layout of a forest: [`tidy_layout`] places each node on a horizontal slot grid so that
//! parents are centred above their children and sibling subtrees never overlap.
//!
//! It is a post-order contour placement: each subtree is built from its children's subtrees
//! placed left to right as close as their contours (leftmost and rightmost position per depth)
//! allow, one slot apart, and the parent is centred above its first and last child. Every node
//! gets a whole or half slot position. Pure: no drawing, no workdir.

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
