//! Row planning of the tree image: which row, column and level each node is drawn at, for a
//! given row capacity. A tree too wide for one row is wrapped (the trunk first, then whole
//! subtrees packed side by side, each with a stub naming its parent); a tree too deep is first
//! cut into pieces of at most a row's height.

use super::super::load::RunView;
use super::layout::tidy_layout;

/// Where a node is drawn: column (slots from the left) and level inside its row.
#[derive(Debug, Clone, Copy)]
pub(super) struct Spot {
    /// The row (0 = top).
    pub(super) row: usize,
    /// Column in slots from the left edge.
    pub(super) col: f64,
    /// Level inside the row (0 = the row's top level).
    pub(super) level: usize,
}

/// Where every node goes: the result of [`plan_rows`].
#[derive(Debug, Clone)]
pub(super) struct Plan {
    /// Per node: where it is drawn (`None` for nodes not reachable from a root).
    pub(super) spots: Vec<Option<Spot>>,
    /// Levels per row.
    pub(super) row_levels: Vec<usize>,
    /// Whether a row starts with a band for the stubs of moved subtrees.
    pub(super) row_band: Vec<bool>,
    /// Width in slots of the widest row.
    pub(super) cols: f64,
    /// Nodes drawn apart from their parent (a subtree moved to another row, or a piece of a
    /// deep tree): a stub above them names the parent instead of an edge.
    pub(super) stubs: Vec<usize>,
    /// Per node: whether it is in `stubs`.
    pub(super) is_stub: Vec<bool>,
    /// Whether the tree was wrapped into rows.
    pub(super) wrapped: bool,
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
pub(super) fn plan_rows(view: &RunView, capacity: f64, max_levels: usize) -> Plan {
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
