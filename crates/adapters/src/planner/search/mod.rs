//! The built-in search planner: model-based optimisation, deterministic for a given
//! configuration, seed and history, no network.
//!
//! - **Start** ([`design`]): until the history holds a few experiments (`max(d + 1, 8)` with
//!   `d` parameters, the baseline included, at most a third of `limits.max_experiments` and half
//!   of `limits.patience`, at least 4), it proposes the points of a space-filling design (a
//!   maximin Latin hypercube drawn from the seed), so the first results cover the whole space
//!   whatever the baseline.
//! - **Model** ([`gp`], [`model`]): then a Gaussian process is fitted to the results (lower is
//!   better; failures count as the worst result; the best third and the nearest to the best when
//!   there are many; from 15 results on its kernel also has an additive part, one term per
//!   parameter), and each proposal maximises the expected improvement over the best result
//!   ([`acquisition`]). Unordered choices (the configuration's `ordered` flag, by default lists
//!   that are not all numbers) are compared by equality only, so every other choice is a
//!   neighbour; ordered choices stay ordered.
//! - **Batches and pending experiments**: experiments still queued or running, and the points
//!   already chosen in the same round, count as if they had returned their predicted value, so
//!   several free slots get different points instead of crowding one spot.
//! - It never proposes a parameter set already in the history (any state; `8` equals `8.0`) nor
//!   twice in one answer. When the model's candidates are all tried it falls back to random
//!   untried points, and on a finite space to the remaining untried points; it answers "stop"
//!   only when patience is spent or every point of the space has been tried.
//!
//! The answer is a pure function of the configuration, the seed, the history (pending trials
//! included) and `max_proposals`.

mod acquisition;
mod design;
mod explain;
mod gp;
mod linalg;
mod model;
pub mod space;

use std::collections::HashSet;

use serde_json::{Map, Value};

use super::{Plan, PlanRequest, Proposal};
use crate::config::{Config, canonical_params_key};
use acquisition::{Chooser, Effort};
use explain::{percent, proposal};
pub use model::Transform;
use model::{Observed, Point};
use space::Space;

/// Salt of the start design's random stream (the design depends on the seed only).
const DESIGN_SALT: u64 = 0x5EED_DE51_6E00_0001;
/// How many of the best points the candidate search perturbs.
const INCUMBENTS: usize = 5;
/// Completed results from which the kernel has an additive part. Measured (search benchmark,
/// budget 30, 10 seeds): with it from the start, Styblinski–Tang-6 reached 85 % of TPE with 4
/// slots (an additive model learnt from a handful of points, and batch fantasies lowering its
/// uncertainty along every coordinate of a pending point, kept the batch off the good values);
/// without it at all, 89–91 % at budget 100, where it carries what one coordinate learnt to
/// the others. From 15 results on: ≥ 98 % at 30 and 106–113 % at 100. Measured again with the
/// length-scale prior of mode 1/3 (budget 30, 20 seeds, 7 baselines, chance of beating TPE
/// with 4 slots): from 10 results, Ackley-5 0.67 → 0.56; never, Rosenbrock-4 0.56 → 0.50 and
/// Levy-4 0.76 → 0.67; 15 stays.
const ADDITIVE_FROM: usize = 15;
/// Smallest start design (baseline included). Measured (search benchmark, budget 30, the listed
/// and six random baselines, TPE recorded from the same baselines): with 4 slots on
/// Styblinski–Tang-6 the chance that a run ends better than a TPE run went from 0.25 (4 points)
/// to 0.42 (8 points) over 20 seeds, other functions unchanged within noise; 6 and 10 points
/// were worse than 8. The gain is from the random baselines: a small design let a poor start
/// steer the model.
const MIN_DESIGN: usize = 8;
/// Random untried points tried per missing proposal before giving up on random search.
const RANDOM_ATTEMPTS: usize = 200;

/// Knobs of the search, for experiments with the benchmark; [`Tuning::default`] is what runs.
#[doc(hidden)]
#[derive(Debug, Clone)]
pub struct Tuning {
    /// Size of the start design (baseline included); None for `max(d + 1, 8)`, at most a third
    /// of the experiment budget and half the patience (at least 4).
    pub initial: Option<usize>,
    /// Transform of the results before the fit.
    pub transform: Transform,
    /// Most points the model is fitted on.
    pub max_points: usize,
    /// Random candidates per round.
    pub random_candidates: usize,
    /// Perturbations of the best points per round.
    pub local_candidates: usize,
    /// Candidates refined per choice.
    pub refined: usize,

    /// L-BFGS iterations of the fit.
    pub fit_iterations: usize,
    /// Whether the kernel has an additive part.
    pub additive: bool,
    /// Fewest completed results before the kernel gets its additive part (fewer: product part
    /// only).
    pub additive_from: usize,
    /// Pending points lower the score near them instead of entering the model as fantasies.
    pub penalize: bool,
    /// Gamma prior (shape, rate) on numeric length scales.
    pub ls_prior: (f64, f64),
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            initial: None,
            transform: Transform::Standardize,
            max_points: 64,
            random_candidates: 500,
            local_candidates: 500,
            refined: 3,
            fit_iterations: 40,
            additive: true,
            additive_from: ADDITIVE_FROM,
            penalize: false,
            ls_prior: gp::FitOptions::default().ls_prior,
        }
    }
}

impl Tuning {
    /// The start design's size: `max(d + 1, 8)`, at most a third of the experiment budget and
    /// half the patience (the design's points are not aimed at an improvement, so they must
    /// not spend the patience the model needs), at least 4.
    fn initial(&self, dims: usize, budget: u64, patience: u64) -> usize {
        self.initial.unwrap_or_else(|| {
            let cap = (budget / 3).min(patience / 2);
            let cap = usize::try_from(cap).unwrap_or(usize::MAX).max(4);
            (dims + 1).max(MIN_DESIGN).min(cap)
        })
    }
}

/// The built-in search planner. Stateless: everything comes from the [`PlanRequest`].
#[derive(Debug, Clone, Copy, Default)]
pub struct SearchPlanner;

impl SearchPlanner {
    /// Proposes `req.max_proposals` untried parameter sets (fewer only when fewer are left),
    /// or stops.
    pub fn plan(&self, req: &PlanRequest) -> Plan {
        self.plan_tuned(req, &Tuning::default())
    }

    /// [`plan`](Self::plan) with other knobs (benchmark experiments).
    #[doc(hidden)]
    pub fn plan_tuned(&self, req: &PlanRequest, tuning: &Tuning) -> Plan {
        let config = req.config;
        if req.plateau >= config.limits.patience {
            return Plan::Stop(format!(
                "patience spent: {} completed experiments in a row without an improvement of \
                 at least {} (limits.patience = {})",
                req.plateau,
                match config.objective.min_improvement.relative() {
                    Some(x) => relative(x),
                    None => config.objective.min_improvement.to_string(),
                },
                config.limits.patience
            ));
        }
        if config.search_space.is_empty() {
            return Plan::Stop("the search space is empty: there is nothing to search".into());
        }
        if req.max_proposals == 0 {
            return Plan::Launch(Vec::new());
        }
        let round = Round::new(req, tuning);
        round.run()
    }
}

/// One planning round.
struct Round<'a> {
    req: &'a PlanRequest<'a>,
    config: &'a Config,
    tuning: &'a Tuning,
    space: Space,
    observed: Observed,
    tried: HashSet<String>,
    out: Vec<Proposal>,
    /// Coordinates of the proposals made so far in this round.
    chosen: Vec<Vec<f64>>,
    rng: fastrand::Rng,
}

impl<'a> Round<'a> {
    fn new(req: &'a PlanRequest<'a>, tuning: &'a Tuning) -> Self {
        let config = req.config;
        let space = Space::new(config);
        let tried = req
            .history
            .iter()
            .map(|t| params_key(config, &t.params))
            .collect();
        Round {
            req,
            config,
            tuning,
            observed: Observed::new(config, &space, req.history),
            space,
            tried,
            out: Vec::new(),
            chosen: Vec::new(),
            rng: fastrand::Rng::with_seed(mix(req.seed, req.history.len() as u64)),
        }
    }

    fn wanted(&self) -> usize {
        self.req.max_proposals - self.out.len()
    }

    fn run(mut self) -> Plan {
        self.design();
        if self.wanted() > 0 {
            self.model();
        }
        if self.wanted() > 0 {
            self.random();
        }
        if self.wanted() > 0 {
            self.remaining();
        }
        if self.out.is_empty() {
            return Plan::Stop(match self.space.size() {
                Some(n) => format!("every point of the search space has been tried ({n} points)"),
                None => format!(
                    "no untried point found in {} random draws: the search space is nearly \
                     exhausted",
                    RANDOM_ATTEMPTS * self.req.max_proposals
                ),
            });
        }
        Plan::Launch(self.out)
    }

    /// The node new points are children of when they do not derive from a result: the
    /// baseline's node if it is in the history, else the planning node.
    fn root(&self) -> (String, Map<String, Value>) {
        let baseline = self.config.complete_params(&Map::new());
        let key = canonical_params_key(&baseline);
        let id = self
            .req
            .history
            .iter()
            .find(|t| params_key(self.config, &t.params) == key)
            .map_or_else(|| self.req.from.to_string(), |t| t.node_id.clone());
        (id, baseline)
    }

    /// Records a proposal unless its parameter set is tried; true if recorded.
    fn push(
        &mut self,
        x: Vec<f64>,
        params: Map<String, Value>,
        parent: (&str, &Map<String, Value>),
        why: String,
    ) -> bool {
        let key = params_key(self.config, &params);
        if !self.tried.insert(key) {
            return false;
        }
        self.out.push(proposal(parent.0, parent.1, params, why));
        self.chosen.push(x);
        true
    }

    /// The start design's untried points while the history is shorter than the design, and
    /// more space-filling points while fewer results than that are in (with several slots the
    /// design is proposed before its results arrive; a model of two or three results would
    /// only guess).
    fn design(&mut self) {
        let size = self.tuning.initial(
            self.space.len(),
            self.config.limits.max_experiments,
            u64::from(self.config.limits.patience),
        );
        let have = self.req.history.len();
        let results = self.observed.completed.len();
        let wanted = if have < size {
            self.wanted().min(size - have)
        } else if results < size {
            self.wanted()
        } else {
            return;
        };
        let baseline = self.space.encode(&self.config.complete_params(&Map::new()));
        let mut rng = fastrand::Rng::with_seed(mix(self.req.seed, DESIGN_SALT));
        let first = design::latin_hypercube(&self.space, size - 1, baseline.as_deref(), &mut rng);
        let more = design::latin_hypercube(&self.space, 2 * size, baseline.as_deref(), &mut rng);
        let (root, root_params) = self.root();
        let mut added = 0;
        for (i, x) in first.into_iter().chain(more).enumerate() {
            if added == wanted {
                break;
            }
            let params = self.space.decode(&x);
            let why = if i + 1 < size {
                format!(
                    "space-filling start: point {} of {} of a Latin hypercube over the whole \
                     search space (seed {}), so the model sees every region before it chooses",
                    i + 1,
                    size - 1,
                    self.req.seed
                )
            } else {
                format!(
                    "space-filling start, continued: {results} of the {size} results the model \
                     starts from are in, so another point of a Latin hypercube (seed {})",
                    self.req.seed
                )
            };
            if self.push(x, params, (&root, &root_params), why) {
                added += 1;
            }
        }
    }

    /// Points chosen by the model.
    fn model(&mut self) {
        // A long history (more points than the model takes) is a long run: half the effort per
        // round keeps planning fast there, while short runs get the full search.
        let points = self.observed.completed.len() + self.observed.failed.len();
        let divisor = if points > self.tuning.max_points {
            2
        } else {
            1
        };
        let opts = gp::FitOptions {
            iterations: self.tuning.fit_iterations / divisor,
            additive: self.tuning.additive
                && self.observed.completed.len() >= self.tuning.additive_from,
            ls_prior: self.tuning.ls_prior,
            ..gp::FitOptions::default()
        };
        let Some(fitted) = model::fit(
            &self.space,
            &self.observed,
            self.tuning.transform,
            self.tuning.max_points,
            &opts,
        ) else {
            return;
        };
        let mut gp = fitted.gp;
        // Best predicted value among the results, and the best points to perturb.
        let mut ranked: Vec<(f64, &Point)> = fitted
            .used
            .iter()
            .map(|&i| {
                let p = &self.observed.completed[i];
                (gp.predict(&p.x).0, p)
            })
            .collect();
        ranked.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut best = ranked.first().map_or(0.0, |r| r.0);
        let incumbents: Vec<Vec<f64>> = ranked
            .iter()
            .take(INCUMBENTS)
            .map(|r| r.1.x.clone())
            .collect();
        // Pending experiments and this round's earlier proposals return their predicted value.
        let pending: Vec<Vec<f64>> = self
            .observed
            .pending
            .iter()
            .map(|p| p.x.clone())
            .chain(self.chosen.iter().cloned())
            .collect();
        if !self.tuning.penalize {
            for x in &pending {
                let mean = gp.predict(x).0;
                gp.condition(x.clone(), mean);
                best = best.min(mean);
            }
        }
        let config = self.config;
        let chooser = Chooser {
            space: &self.space,
            incumbents,
            effort: Effort {
                random: self.tuning.random_candidates / divisor,
                local: self.tuning.local_candidates / divisor,
                refined: (self.tuning.refined / divisor).max(1),
            },
            penalized: self.tuning.penalize.then(|| pending.clone()),
        };
        // Every point of the history and of this round, as snapped coordinates.
        let mut tried: HashSet<Vec<u64>> = self
            .observed
            .completed
            .iter()
            .chain(&self.observed.failed)
            .chain(&self.observed.pending)
            .map(|p| Space::point_key(&self.space.snap_coords(&p.x)))
            .chain(self.chosen.iter().map(|x| Space::point_key(x)))
            .collect();
        let picks = chooser.choose(&mut gp, best, self.wanted(), &mut tried, &mut self.rng);

        let best_point = self.observed.best().cloned();
        let best_text = best_point.as_ref().map_or_else(String::new, |b| {
            let value = b.y.map(|y| match config.objective.direction {
                crate::config::Direction::Minimize => y,
                crate::config::Direction::Maximize => -y,
            });
            format!(
                " ({} = {})",
                b.node_id,
                value.map_or("?".into(), crate::config::format_number)
            )
        });
        let failures = if fitted.failures > 0 {
            format!(" and {} failures (as the worst result)", fitted.failures)
        } else {
            String::new()
        };
        let pending_text = if pending.is_empty() {
            String::new()
        } else {
            format!(
                ", counting {} pending experiments as returning their predicted values",
                pending.len()
            )
        };
        for pick in picks {
            let nearest = self
                .observed
                .completed
                .iter()
                .min_by(|a, b| {
                    self.space
                        .distance2(&a.x, &pick.x)
                        .total_cmp(&self.space.distance2(&b.x, &pick.x))
                })
                .cloned();
            let Some(parent) = nearest else { continue };
            let role = if pick.exploring {
                "it explores where the model is least sure"
            } else {
                "it is where the model expects the most improvement"
            };
            let why = format!(
                "model step: a Gaussian process fitted to {} results{failures}{pending_text} gives \
                 this point a {} chance to beat the best so far{best_text}; {role}",
                fitted.results,
                percent(pick.improve_prob),
            );
            self.push(pick.x, pick.params, (&parent.node_id, &parent.params), why);
        }
    }

    /// Random untried points (before a model can be fitted, or when its candidates are all
    /// tried).
    fn random(&mut self) {
        let (root, root_params) = self.root();
        let attempts = RANDOM_ATTEMPTS * self.wanted();
        for _ in 0..attempts {
            if self.wanted() == 0 {
                break;
            }
            let x = self.space.random_point(&mut self.rng);
            let (x, params) = self.space.snap(&x);
            let why = if self.observed.completed.len() < 2 {
                "random point of the search space: too few results for a model yet".to_string()
            } else {
                "random untried point: the model's best candidates were all tried".to_string()
            };
            self.push(x, params, (&root, &root_params), why);
        }
    }

    /// On a finite space, the remaining untried points (nearest the best first).
    fn remaining(&mut self) {
        let all = self.space.enumerate();
        if all.is_empty() {
            return;
        }
        let best = self.observed.best().cloned();
        let mut untried: Vec<(Vec<f64>, Map<String, Value>)> = all
            .into_iter()
            .map(|x| {
                let params = self.space.decode(&x);
                (x, params)
            })
            .filter(|(_, p)| !self.tried.contains(&params_key(self.config, p)))
            .collect();
        if let Some(b) = &best {
            untried.sort_by(|a, c| {
                self.space
                    .distance2(&a.0, &b.x)
                    .total_cmp(&self.space.distance2(&c.0, &b.x))
            });
        }
        let left = untried.len();
        let (root, root_params) = self.root();
        let parent = best.map_or((root, root_params), |b| (b.node_id, b.params));
        for (x, params) in untried {
            if self.wanted() == 0 {
                break;
            }
            let why = format!("one of the last {left} untried points of the search space");
            self.push(x, params, (&parent.0, &parent.1), why);
        }
    }
}

/// The key of a (possibly partial) parameter set, completed from the baseline.
fn params_key(config: &Config, params: &Map<String, Value>) -> String {
    canonical_params_key(&config.complete_params(params))
}

/// `0.01` as `1%`.
fn relative(x: f64) -> String {
    format!(
        "{}%",
        crate::config::format_number(space::round_sig(x * 100.0, 6))
    )
}

/// SplitMix64 of `seed` combined with `salt`: a well-spread RNG seed.
fn mix(seed: u64, salt: u64) -> u64 {
    let mut z = seed ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
