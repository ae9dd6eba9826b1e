//! The built-in search planner (`docs/adapters.md`, "Planners"): deterministic for a given seed and
//! history, no network. It ranks the completed experiments by the primary metric and proposes
//! coordinate neighbours of the best ones (the best first, then the next best, up to the top
//! three; before anything completed, neighbours of the baseline): the adjacent choice of a
//! choice parameter, an additive step of (max − min)/8 on a linear range (at least 1 for ints),
//! a factor of 2 on a log range.
//!
//! - Each coordinate direction tries its basic step first. Once that is tried, larger steps
//!   follow, starting at ×2^max(1, plateau/2) (capped at ×8): larger moves after failures to
//!   improve. When the basic step failed both ways (the parameter's optimum is bracketed),
//!   finer steps (÷2, ÷4, ÷8 of a numeric step) come first.
//! - Across coordinates, moves of less-explored directions come first, so every parameter gets
//!   its turn before one of them is pushed further.
//! - From a plateau of 3 on, about a quarter of the proposals (every third round with one
//!   proposal per round) are random points of the space, seeded by `seed` and the history
//!   length.
//! - A parameter set already in the history (any state; `8` equals `8.0`) is never proposed,
//!   nor twice in one answer.
//! - It answers "stop" when patience is spent or when the best experiment has no untried
//!   neighbour at any step size.

use std::collections::HashSet;

use serde_json::{Map, Number, Value};

use super::{Plan, PlanRequest, Proposal, Trial, TrialState};
use crate::config::{
    Config, NumType, Param, Range, Scale, canonical_params_key, value_to_raw, values_equal,
};

/// Largest step level: steps are multiplied by up to 2^MAX_LEVEL.
const MAX_LEVEL: i32 = 3;
/// Smallest step level: numeric steps are divided by down to 2^-MIN_LEVEL (refinement near
/// the best; choice parameters have no step below the adjacent choice).
const MIN_LEVEL: i32 = -3;
/// How many of the best experiments get neighbours.
const TOP_CENTERS: usize = 3;
/// From this plateau on, some proposals are random points of the space.
const RANDOM_AFTER_PLATEAU: u32 = 3;
/// Tries per wanted random point before giving up (the space may be nearly exhausted).
const RANDOM_ATTEMPTS: usize = 64;
/// Significant digits kept in proposed float values.
const FLOAT_DIGITS: i32 = 6;
/// Changed parameters listed in a proposal's name before `_plus_N`.
const NAME_CHANGES: usize = 3;

/// The built-in search planner. Stateless: everything comes from the [`PlanRequest`].
#[derive(Debug, Clone, Copy, Default)]
pub struct SearchPlanner;

/// An experiment whose neighbours are proposed.
struct Center {
    node_id: String,
    params: Map<String, Value>,
}

/// One parameter changed relative to the center.
struct Change {
    name: String,
    from: Value,
    to: Value,
}

impl SearchPlanner {
    /// Proposes up to `req.max_proposals` untried parameter sets, or stops.
    pub fn plan(&self, req: &PlanRequest) -> Plan {
        let config = req.config;
        let space = &config.search_space;
        if req.plateau >= config.limits.patience {
            return Plan::Stop(format!(
                "patience spent: {} completed experiments in a row without an improvement of \
                 at least {} (limits.patience = {})",
                req.plateau,
                relative(config.objective.min_improvement),
                config.limits.patience
            ));
        }
        if space.is_empty() {
            return Plan::Stop("the search space is empty: there is nothing to search".into());
        }
        if req.max_proposals == 0 {
            return Plan::Launch(Vec::new());
        }

        let mut seen: HashSet<String> = req
            .history
            .iter()
            .map(|t| canonical_params_key(&config.complete_params(&t.params)))
            .collect();
        let centers = centers(req);
        let Some(best) = centers.first() else {
            return Plan::Stop("no experiment to start from".into());
        };

        let base_level = (req.plateau / 2).min(MAX_LEVEL as u32) as i32;
        let mut candidates: Vec<Candidate> = Vec::new();
        for (rank, center) in centers.iter().enumerate() {
            candidates.extend(coordinate_moves(config, center, rank, base_level, &seen));
        }
        if !candidates.iter().any(|c| c.rank == 0) {
            return Plan::Stop(format!(
                "no untried neighbour left near the best experiment {}, with steps from ÷{} to \
                 ×{}",
                best.node_id,
                1u32 << -MIN_LEVEL,
                1u32 << MAX_LEVEL
            ));
        }
        // Best center first; within a center, the least explored coordinates first, so every
        // parameter gets its turn before one of them is pushed further.
        candidates.sort_by_key(|c| (c.rank, c.order));
        let local: Vec<(String, Proposal)> = candidates
            .into_iter()
            .map(|c| {
                let center = &centers[c.rank];
                let step = match c.level {
                    0 => String::new(),
                    l if l > 0 => format!(" (step ×{})", 1u32 << l),
                    l => format!(" (step ÷{})", 1u32 << -l),
                };
                let hypothesis = format!(
                    "neighbour of {}{step}: {}",
                    center.node_id,
                    describe_changes(&c.changes)
                );
                let key = canonical_params_key(&c.params);
                (key, proposal(center, c.params, &c.changes, hypothesis))
            })
            .collect();

        let max = req.max_proposals;
        let exploring = req.plateau >= RANDOM_AFTER_PLATEAU;
        let reserved_random = match (exploring, max) {
            (false, _) => 0,
            // With one proposal per round, every third round is a random point.
            (true, 1) => usize::from(req.plateau.is_multiple_of(RANDOM_AFTER_PLATEAU)),
            (true, _) => (max / 4).max(1),
        };

        let mut out: Vec<Proposal> = Vec::new();
        let mut local_iter = local.into_iter();
        take_local(&mut local_iter, &mut seen, &mut out, max - reserved_random);
        if exploring {
            let mut rng = fastrand::Rng::with_seed(mix(req.seed, req.history.len() as u64));
            let wanted = max - out.len();
            let mut found = 0;
            let mut attempts = 0;
            while found < wanted && attempts < RANDOM_ATTEMPTS * wanted {
                attempts += 1;
                let params = random_point(config, &mut rng);
                let key = canonical_params_key(&params);
                if seen.contains(&key) {
                    continue;
                }
                let changes = diff(&best.params, &params);
                if changes.is_empty() {
                    continue;
                }
                seen.insert(key);
                let hypothesis = format!(
                    "random point of the search space (exploring after {} experiments without \
                     improvement), relative to {}: {}",
                    req.plateau,
                    best.node_id,
                    describe_changes(&changes)
                );
                out.push(proposal(best, params, &changes, hypothesis));
                found += 1;
            }
        }
        take_local(&mut local_iter, &mut seen, &mut out, max);
        Plan::Launch(out)
    }
}

/// Moves proposals from `local` into `out` until it holds `limit`, skipping sets in `seen`.
fn take_local(
    local: &mut impl Iterator<Item = (String, Proposal)>,
    seen: &mut HashSet<String>,
    out: &mut Vec<Proposal>,
    limit: usize,
) {
    while out.len() < limit {
        let Some((key, p)) = local.next() else { return };
        if seen.insert(key) {
            out.push(p);
        }
    }
}

/// The best completed experiments (best first, earlier first among equals), or the baseline
/// when nothing has completed yet.
fn centers(req: &PlanRequest) -> Vec<Center> {
    let config = req.config;
    let direction = config.objective.direction;
    let mut ranked: Vec<(usize, &Trial, f64)> = req
        .history
        .iter()
        .enumerate()
        .filter_map(|(i, t)| match (t.state, t.primary) {
            (TrialState::Completed, Some(p)) if p.is_finite() => Some((i, t, p)),
            _ => None,
        })
        .collect();
    ranked.sort_by(|a, b| direction.best_first(a.2, b.2).then(a.0.cmp(&b.0)));
    let mut centers: Vec<Center> = ranked
        .into_iter()
        .take(TOP_CENTERS)
        .map(|(_, t, _)| Center {
            node_id: t.node_id.clone(),
            params: config.complete_params(&t.params),
        })
        .collect();
    if centers.is_empty() {
        let params = config.complete_params(&Map::new());
        let key = canonical_params_key(&params);
        let node_id = req
            .history
            .iter()
            .find(|t| canonical_params_key(&config.complete_params(&t.params)) == key)
            .map_or_else(|| req.from.to_string(), |t| t.node_id.clone());
        centers.push(Center { node_id, params });
    }
    centers
}

/// An untried coordinate move of one center.
struct Candidate {
    /// Rank of the center (0 = best).
    rank: usize,
    /// Preference within the center: (tried moves in this direction + position among the
    /// untried ones, parameter index, direction).
    order: (usize, usize, usize),
    /// Step level (the step is scaled by 2^level).
    level: i32,
    params: Map<String, Value>,
    changes: Vec<Change>,
}

/// One value a coordinate move can reach.
struct Move {
    level: i32,
    value: Value,
    params: Map<String, Value>,
    tried: bool,
}

/// The untried coordinate moves of a center: for each parameter and direction, the distinct
/// values reached with steps ÷8 … ×8, in preference order:
///
/// - the basic step (×1) first;
/// - once the basic step of a direction is tried, larger steps, starting at ×2^max(1,
///   plateau/2) — so steps grow with the plateau (larger moves after failures to improve);
/// - when the basic step failed both ways (the optimum of that parameter is bracketed), finer
///   steps come before larger ones.
///
/// Across coordinates, the move with fewer tried moves before it in its direction comes first,
/// so every parameter gets its turn before one of them is pushed further.
fn coordinate_moves(
    config: &Config,
    center: &Center,
    rank: usize,
    base_level: i32,
    seen: &HashSet<String>,
) -> Vec<Candidate> {
    let mut out = Vec::new();
    for (index, (name, param)) in config.search_space.iter().enumerate() {
        let Some(current) = center.params.get(name) else {
            continue;
        };
        let lists: Vec<Vec<Move>> = [true, false]
            .into_iter()
            .map(|up| direction_moves(param, name, center, current, up, seen))
            .collect();
        // Bracketed: the basic step is tried (or impossible, at an edge) in both directions.
        let bracketed = lists
            .iter()
            .all(|moves| moves.iter().all(|m| m.level != 0 || m.tried));
        for (dir, mut moves) in lists.into_iter().enumerate() {
            let explored = moves.iter().filter(|m| m.tried).count();
            let coarse_from = base_level.max(1);
            moves.sort_by_key(|m| {
                let coarse = ((m.level - coarse_from).abs(), m.level < coarse_from);
                match (m.level, bracketed) {
                    (0, _) => (0, (0, false)),
                    (l, true) if l < 0 => (1, (-l, false)),
                    (l, false) if l < 0 => (3, (-l, false)),
                    _ => (2, coarse),
                }
            });
            let untried = moves.into_iter().filter(|m| !m.tried);
            for (depth, m) in untried.enumerate() {
                out.push(Candidate {
                    rank,
                    order: (explored + depth, index, dir),
                    level: m.level,
                    params: m.params,
                    changes: vec![Change {
                        name: name.to_string(),
                        from: current.clone(),
                        to: m.value,
                    }],
                });
            }
        }
    }
    out
}

/// The distinct values one direction of a parameter reaches with steps ÷8 … ×8 (a value reached
/// by several levels keeps the level nearest ×1), and whether each is already in `seen`.
fn direction_moves(
    param: &Param,
    name: &str,
    center: &Center,
    current: &Value,
    up: bool,
    seen: &HashSet<String>,
) -> Vec<Move> {
    let mut moves: Vec<Move> = Vec::new();
    for level in (MIN_LEVEL..=0).rev().chain(1..=MAX_LEVEL) {
        let Some(value) = step(param, current, up, level) else {
            continue;
        };
        if values_equal(&value, current) || moves.iter().any(|m| values_equal(&m.value, &value)) {
            continue;
        }
        let mut params = center.params.clone();
        params.insert(name.to_string(), value.clone());
        let tried = seen.contains(&canonical_params_key(&params));
        moves.push(Move {
            level,
            value,
            params,
            tried,
        });
    }
    moves
}

/// One step of a parameter from `current`, up or down, scaled by 2^level, within the domain.
fn step(param: &Param, current: &Value, up: bool, level: i32) -> Option<Value> {
    let mult = 2f64.powi(level);
    match param {
        Param::Choices(choices) => {
            if level < 0 {
                return None;
            }
            let idx = choices.iter().position(|c| values_equal(c, current))?;
            let jump = 1usize << level;
            let next = if up {
                (idx + jump).min(choices.len() - 1)
            } else {
                idx.saturating_sub(jump)
            };
            choices.get(next).cloned()
        }
        Param::Range(range) => {
            let x = current.as_f64()?;
            let sign = if up { 1.0 } else { -1.0 };
            let raw = match (range.scale, range.kind) {
                // Int steps are whole numbers (at least 1), so up and down moves are symmetric.
                (Scale::Linear, NumType::Int) => {
                    x + sign * ((range.max - range.min) / 8.0 * mult).round().max(1.0)
                }
                (Scale::Linear, NumType::Float) => x + sign * (range.max - range.min) / 8.0 * mult,
                (Scale::Log, _) => x * 2f64.powf(sign * mult),
            };
            range_value(range, raw, Some((x, sign)))
        }
    }
}

/// `raw` as a value of the range: clamped, rounded (ints) or cut to [`FLOAT_DIGITS`]
/// significant digits (floats). For an int step from `from`, a rounding that would not move
/// moves by 1 in the step's direction.
fn range_value(range: &Range, raw: f64, from: Option<(f64, f64)>) -> Option<Value> {
    if !raw.is_finite() {
        return None;
    }
    let (lo, hi) = range.bounds();
    match range.kind {
        NumType::Int => {
            let mut v = raw.round();
            if let Some((x, sign)) = from
                && v == x
            {
                v = x + sign;
            }
            let v = v.clamp(lo, hi);
            Some(Value::from(v as i64))
        }
        NumType::Float => {
            let v = round_sig(raw.clamp(lo, hi), FLOAT_DIGITS).clamp(lo, hi);
            Number::from_f64(v).map(Value::Number)
        }
    }
}

/// `x` rounded to `digits` significant decimal digits.
fn round_sig(x: f64, digits: i32) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    let magnitude = x.abs().log10().floor() as i32;
    let p = digits - 1 - magnitude;
    if p >= 0 {
        let f = 10f64.powi(p.min(300));
        (x * f).round() / f
    } else {
        let f = 10f64.powi(-p);
        (x / f).round() * f
    }
}

/// A uniformly random point of the space (log-uniform on log ranges).
fn random_point(config: &Config, rng: &mut fastrand::Rng) -> Map<String, Value> {
    let mut params = Map::new();
    for (name, param) in config.search_space.iter() {
        let value = match param {
            Param::Choices(choices) => choices[rng.usize(..choices.len())].clone(),
            Param::Range(range) => {
                let (lo, hi) = range.bounds();
                let u = rng.f64();
                let raw = match range.scale {
                    Scale::Linear => match range.kind {
                        // Uniform over the integers lo..=hi.
                        NumType::Int => (lo + (u * (hi - lo + 1.0)).floor()).min(hi),
                        NumType::Float => lo + u * (hi - lo),
                    },
                    Scale::Log => (lo.ln() + u * (hi.ln() - lo.ln())).exp(),
                };
                match range_value(range, raw, None) {
                    Some(v) => v,
                    None => continue,
                }
            }
        };
        params.insert(name.to_string(), value);
    }
    params
}

/// The parameters whose values differ between `from` and `to`, in `to`'s order.
fn diff(from: &Map<String, Value>, to: &Map<String, Value>) -> Vec<Change> {
    to.iter()
        .filter_map(|(name, v)| {
            let old = from.get(name).cloned().unwrap_or(Value::Null);
            (!values_equal(&old, v)).then(|| Change {
                name: name.clone(),
                from: old,
                to: v.clone(),
            })
        })
        .collect()
}

/// A proposal derived from `center`, named after its changes (`workers_8_chunk_256`).
fn proposal(
    center: &Center,
    params: Map<String, Value>,
    changes: &[Change],
    hypothesis: String,
) -> Proposal {
    let mut parts: Vec<String> = changes
        .iter()
        .take(NAME_CHANGES)
        .map(|c| format!("{}_{}", c.name, value_to_raw(&c.to)))
        .collect();
    if changes.len() > NAME_CHANGES {
        parts.push(format!("plus_{}", changes.len() - NAME_CHANGES));
    }
    Proposal {
        name: parts.join("_"),
        hypothesis,
        params,
        changes: None,
        priority: None,
        parent: Some(center.node_id.clone()),
    }
}

/// `workers 4 → 8, chunk 64 → 256`.
fn describe_changes(changes: &[Change]) -> String {
    changes
        .iter()
        .map(|c| {
            format!(
                "{} {} → {}",
                c.name,
                value_to_raw(&c.from),
                value_to_raw(&c.to)
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `0.01` as `1%`.
fn relative(x: f64) -> String {
    format!("{}%", crate::config::format_number(round_sig(x * 100.0, 6)))
}

/// SplitMix64 of `seed` combined with `salt`: a well-spread RNG seed per planning round.
fn mix(seed: u64, salt: u64) -> u64 {
    let mut z = seed ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
