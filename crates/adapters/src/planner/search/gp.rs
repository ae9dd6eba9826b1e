//! The surrogate model: a Gaussian process with a Matérn-5/2 kernel over the numeric
//! coordinates (one length scale each) times an overlap kernel over the unordered choices
//! (`exp(−θ)` per differing choice), fitted by maximising the marginal likelihood plus weak
//! priors (projected L-BFGS in log space, analytic gradient). Targets are standardized by the
//! caller; lower is better.

use super::linalg::Cholesky;

/// Bounds of the log hyperparameters.
const LOG_LS: (f64, f64) = (-5.3, 3.0); // length scale 0.005 … 20 (the space is [0, 1])
const LOG_THETA: (f64, f64) = (-4.6, 3.0); // category mismatch 0.01 … 20
const LOG_SF2: (f64, f64) = (-3.0, 3.0);
const LOG_SN2: (f64, f64) = (-13.8, 0.0); // noise variance 1e-6 … 1
const MIX: (f64, f64) = (-4.0, 4.0); // logit of the product part's weight
/// The mix logit when the kernel has no additive part (weight 1 − 2e-9).
const NO_ADDITIVE: f64 = 20.0;

const SQRT5: f64 = 2.236_067_977_499_79;

/// How hard [`Gp::fit`] works.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FitOptions {
    /// L-BFGS iterations at most.
    pub iterations: usize,
    /// Gamma prior (shape, rate) on numeric length scales (the space is [0, 1]): with the
    /// log-scale Jacobian its mode is shape / rate. Measured (search benchmark, budget 30, 20
    /// seeds, the listed and six random baselines): `(4, 12)`, mode 1/3 of a range, against
    /// `(3, 6)`, mode 1/2, took the chance of beating a TPE run on Styblinski–Tang-6 from 0.46
    /// to 0.80 (1 slot) and 0.41 to 0.70 (4 slots), Ackley-5 from 0.63 / 0.50 to 0.81 / 0.67,
    /// the other functions equal or better; mode 1/4 (`(3, 12)`) lost Ackley-5 with 4 slots
    /// (0.49), mode 1/6 (`(3, 18)`) more so (0.25). A long scale smooths a handful of results
    /// in 5–6 dimensions into one broad bowl, so the expected improvement is flat and the
    /// proposals drift; a third of a range keeps the good regions apart.
    pub ls_prior: (f64, f64),
    /// Gamma prior (shape, rate) on the noise variance.
    pub noise_prior: (f64, f64),
    /// Whether the kernel mixes in an additive part (one term per coordinate), which lets the
    /// model carry what it learned about one parameter to other values of the others.
    pub additive: bool,
}

impl Default for FitOptions {
    fn default() -> Self {
        FitOptions {
            iterations: 40,
            ls_prior: (4.0, 12.0),
            noise_prior: (1.1, 0.05),
            additive: true,
        }
    }
}

/// A fitted Gaussian process.
#[derive(Debug, Clone)]
pub(crate) struct Gp {
    /// Which coordinates are unordered choices.
    cat: Vec<bool>,
    /// Length scale (numeric coordinates) or mismatch weight θ (choices), per coordinate.
    scale: Vec<f64>,
    /// Signal variance.
    sf2: f64,
    /// Noise variance.
    sn2: f64,
    /// Weight of the product part (the additive part has `1 − w`).
    w: f64,
    /// Training inputs (including fantasies added by [`condition`](Self::condition)).
    x: Vec<Vec<f64>>,
    /// Training targets.
    y: Vec<f64>,
    chol: Cholesky,
    alpha: Vec<f64>,
}

impl Gp {
    /// Fits the hyperparameters to `(x, y)` and conditions on the data. None when the data
    /// cannot be fitted (empty, or numerically hopeless).
    pub(super) fn fit(
        x: Vec<Vec<f64>>,
        y: Vec<f64>,
        cat: Vec<bool>,
        opts: &FitOptions,
    ) -> Option<Gp> {
        if x.is_empty() {
            return None;
        }
        let problem = Problem::new(&x, &y, &cat, opts);
        let mut start: Vec<f64> = cat
            .iter()
            .map(|&c| if c { 0.0 } else { (0.3f64).ln() })
            .collect();
        start.push(0.0);
        start.push((1e-3f64).ln());
        start.push(if opts.additive { 1.0 } else { NO_ADDITIVE });
        let theta = minimize(&problem, start, opts.iterations);
        Gp::with_hyper(x, y, cat, &theta)
    }

    /// A process with the given log hyperparameters, conditioned on `(x, y)`.
    fn with_hyper(x: Vec<Vec<f64>>, y: Vec<f64>, cat: Vec<bool>, theta: &[f64]) -> Option<Gp> {
        let d = cat.len();
        let mut gp = Gp {
            scale: theta[..d].iter().map(|v| v.exp()).collect(),
            sf2: theta[d].exp(),
            sn2: theta[d + 1].exp(),
            w: logistic(theta[d + 2]),
            cat,
            x: Vec::new(),
            y: Vec::new(),
            chol: Cholesky::default(),
            alpha: Vec::new(),
        };
        for (xi, yi) in x.into_iter().zip(y) {
            if !gp.add(xi, yi) {
                return None;
            }
        }
        gp.alpha = gp.chol.solve(&gp.y);
        Some(gp)
    }

    /// Adds one observation to the factor (jittering the noise if needed); false if that fails.
    fn add(&mut self, x: Vec<f64>, y: f64) -> bool {
        let cross: Vec<f64> = self.x.iter().map(|xi| self.k(xi, &x)).collect();
        let diag = self.sf2 + self.sn2;
        let mut jitter = 0.0;
        for _ in 0..6 {
            if self.chol.push(&cross, diag + jitter).is_some() {
                self.x.push(x);
                self.y.push(y);
                return true;
            }
            jitter = if jitter == 0.0 {
                1e-8 * self.sf2
            } else {
                jitter * 100.0
            };
        }
        false
    }

    /// Conditions on one more (fantasy) observation, keeping the hyperparameters.
    pub(super) fn condition(&mut self, x: Vec<f64>, y: f64) {
        if self.add(x, y) {
            self.alpha = self.chol.solve(&self.y);
        }
    }

    /// Kernel value between two points.
    pub(super) fn k(&self, a: &[f64], b: &[f64]) -> f64 {
        let mut row = [0.0; 64];
        let mut heap = Vec::new();
        let row: &mut [f64] = if self.cat.len() <= row.len() {
            &mut row[..self.cat.len()]
        } else {
            heap.resize(self.cat.len(), 0.0);
            &mut heap
        };
        for (i, r) in row.iter_mut().enumerate() {
            *r = pair_diff(self.cat[i], a[i], b[i]);
        }
        self.sf2 * unit_kernel(&self.cat, row, &self.scale, self.w, None).0
    }

    /// The correlation of the product part between two points (1 at the same point, near 0
    /// several length scales apart in any coordinate).
    pub(super) fn correlation(&self, a: &[f64], b: &[f64]) -> f64 {
        let mut r2 = 0.0;
        let mut mismatch = 0.0;
        for (i, &c) in self.cat.iter().enumerate() {
            if c {
                if a[i] != b[i] {
                    mismatch += self.scale[i];
                }
            } else {
                let d = (a[i] - b[i]) / self.scale[i];
                r2 += d * d;
            }
        }
        let r = r2.sqrt();
        (1.0 + SQRT5 * r + 5.0 / 3.0 * r2) * (-SQRT5 * r - mismatch).exp()
    }

    /// Posterior mean and variance (of the latent function, without noise) at `z`.
    pub(super) fn predict(&self, z: &[f64]) -> (f64, f64) {
        let kz: Vec<f64> = self.x.iter().map(|xi| self.k(xi, z)).collect();
        let mean: f64 = kz.iter().zip(&self.alpha).map(|(a, b)| a * b).sum();
        let v = self.chol.solve_lower(&kz);
        let var = (self.sf2 - v.iter().map(|a| a * a).sum::<f64>()).max(1e-12 * self.sf2);
        (mean, var)
    }
}

/// The fitting problem: pairwise coordinate differences precomputed once.
struct Problem<'a> {
    n: usize,
    cat: &'a [bool],
    y: &'a [f64],
    /// Per pair `(i < j)`, row-major over pairs: per coordinate the squared difference
    /// (numeric) or 1/0 for a differing/equal choice.
    diff: Vec<f64>,
    opts: &'a FitOptions,
}

impl<'a> Problem<'a> {
    fn new(x: &[Vec<f64>], y: &'a [f64], cat: &'a [bool], opts: &'a FitOptions) -> Self {
        let n = x.len();
        let d = cat.len();
        let mut diff = Vec::with_capacity(n * (n - 1) / 2 * d);
        for i in 0..n {
            for j in 0..i {
                for k in 0..d {
                    diff.push(pair_diff(cat[k], x[i][k], x[j][k]));
                }
            }
        }
        Problem {
            n,
            cat,
            y,
            diff,
            opts,
        }
    }

    fn bounds(&self, i: usize) -> (f64, f64) {
        let d = self.cat.len();
        if i < d {
            if self.cat[i] { LOG_THETA } else { LOG_LS }
        } else if i == d {
            LOG_SF2
        } else if i == d + 1 {
            LOG_SN2
        } else if self.opts.additive {
            MIX
        } else {
            (NO_ADDITIVE, NO_ADDITIVE)
        }
    }

    /// Negative log marginal likelihood minus log prior, and its gradient; None when the
    /// kernel matrix is not positive definite.
    fn value(&self, theta: &[f64]) -> Option<(f64, Vec<f64>)> {
        let (n, d) = (self.n, self.cat.len());
        let scale: Vec<f64> = theta[..d].iter().map(|v| v.exp()).collect();
        let sf2 = theta[d].exp();
        let sn2 = theta[d + 1].exp();
        let w = logistic(theta[d + 2]);
        let mut kmat = vec![0.0; n * n];
        // Per pair: ∂k/∂(log scale) per coordinate, then (product − additive) part.
        let mut terms = vec![0.0; n * n.saturating_sub(1) / 2 * (d + 1)];
        let mut p = 0;
        for i in 0..n {
            kmat[i * n + i] = sf2 + sn2;
            for j in 0..i {
                let row = &self.diff[p * d..(p + 1) * d];
                let cached = &mut terms[p * (d + 1)..(p + 1) * (d + 1)];
                let (k, product, additive) =
                    unit_kernel(self.cat, row, &scale, w, Some(&mut cached[..d]));
                cached[d] = product - additive;
                kmat[i * n + j] = sf2 * k;
                kmat[j * n + i] = sf2 * k;
                p += 1;
            }
        }
        let chol = Cholesky::new(&kmat, n)?;
        let alpha = chol.solve(self.y);
        let fit: f64 = self.y.iter().zip(&alpha).map(|(a, b)| a * b).sum();
        let lml =
            -0.5 * fit - 0.5 * chol.log_det() - 0.5 * n as f64 * (2.0 * std::f64::consts::PI).ln();
        let kinv = chol.inverse();

        // ∂/∂θ of −LML = −½ Σ_ij W_ij ∂K_ij/∂θ with W = ααᵀ − K⁻¹.
        let mut grad = vec![0.0; d + 3];
        let mut p = 0;
        for i in 0..n {
            let wii = alpha[i] * alpha[i] - kinv[i * n + i];
            grad[d] -= 0.5 * wii * sf2;
            grad[d + 1] -= 0.5 * wii * sn2;
            for j in 0..i {
                let c = -0.5 * 2.0 * (alpha[i] * alpha[j] - kinv[i * n + j]) * sf2;
                let cached = &terms[p * (d + 1)..(p + 1) * (d + 1)];
                for (g, ds) in grad[..d].iter_mut().zip(&cached[..d]) {
                    *g += c * ds;
                }
                grad[d] += c * kmat[i * n + j] / sf2;
                grad[d + 2] += c * w * (1.0 - w) * cached[d];
                p += 1;
            }
        }

        // Priors (on the log scale, Jacobian included): Gamma on numeric length scales, on
        // the mismatch weights, on the signal and on the noise variance.
        let mut prior = 0.0;
        let (a, b) = self.opts.ls_prior;
        for k in 0..d {
            let (a, b) = if self.cat[k] { (2.0, 1.0) } else { (a, b) };
            prior += a * theta[k] - b * scale[k];
            grad[k] -= a - b * scale[k];
        }
        prior += 2.0 * theta[d] - 0.15 * sf2;
        grad[d] -= 2.0 - 0.15 * sf2;
        let (a, b) = self.opts.noise_prior;
        prior += a * theta[d + 1] - b * sn2;
        grad[d + 1] -= a - b * sn2;
        if self.opts.additive {
            // Logistic prior on the mix logit: ln w + ln(1 − w).
            prior += w.ln() + (1.0 - w).ln();
            grad[d + 2] -= 1.0 - 2.0 * w;
        }

        let value = -(lml + prior);
        value.is_finite().then_some((value, grad))
    }
}

/// Per coordinate: the squared difference (numeric) or 1/0 for a differing/equal choice.
fn pair_diff(categorical: bool, a: f64, b: f64) -> f64 {
    if categorical {
        f64::from(u8::from(a != b))
    } else {
        (a - b) * (a - b)
    }
}

/// The kernel over the signal variance for one pair, from [`pair_diff`] per coordinate:
/// `w · Matérn(r) · e^{−Σ θ·mismatch} + (1 − w) · mean over coordinates of the 1-D terms`.
/// Returns (value, product part, additive part); with `grad`, also the derivative of the value
/// by each coordinate's log scale.
fn unit_kernel(
    cat: &[bool],
    row: &[f64],
    scale: &[f64],
    w: f64,
    mut grad: Option<&mut [f64]>,
) -> (f64, f64, f64) {
    let d = cat.len();
    let mut r2 = 0.0;
    let mut mismatch = 0.0;
    for k in 0..d {
        if cat[k] {
            mismatch += row[k] * scale[k];
        } else {
            r2 += row[k] / (scale[k] * scale[k]);
        }
    }
    let r = r2.sqrt();
    let e = (-SQRT5 * r - mismatch).exp();
    let product = (1.0 + SQRT5 * r + 5.0 / 3.0 * r2) * e;
    let additive_on = w < 1.0 - 1e-6;
    let mut additive = 0.0;
    let inv_d = 1.0 / d as f64;
    for k in 0..d {
        let (term, dterm) = if !additive_on {
            (0.0, 0.0)
        } else if cat[k] {
            let t = (-scale[k] * row[k]).exp();
            (t, -scale[k] * row[k] * t)
        } else {
            let rk2 = row[k] / (scale[k] * scale[k]);
            let rk = rk2.sqrt();
            let ek = (-SQRT5 * rk).exp();
            (
                (1.0 + SQRT5 * rk + 5.0 / 3.0 * rk2) * ek,
                5.0 / 3.0 * (1.0 + SQRT5 * rk) * ek * rk2,
            )
        };
        additive += term * inv_d;
        if let Some(g) = grad.as_deref_mut() {
            let dproduct = if cat[k] {
                -scale[k] * row[k] * product
            } else {
                5.0 / 3.0 * (1.0 + SQRT5 * r) * e * row[k] / (scale[k] * scale[k])
            };
            g[k] = w * dproduct + (1.0 - w) * dterm * inv_d;
        }
    }
    (w * product + (1.0 - w) * additive, product, additive)
}

fn logistic(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Projected L-BFGS with a backtracking (Armijo) line search inside the bounds. Returns the
/// best point seen (the start if nothing could be evaluated).
fn minimize(problem: &Problem, start: Vec<f64>, iterations: usize) -> Vec<f64> {
    const MEMORY: usize = 6;
    let project = |x: &mut Vec<f64>| {
        for (i, v) in x.iter_mut().enumerate() {
            let (lo, hi) = problem.bounds(i);
            *v = v.clamp(lo, hi);
        }
    };
    let mut x = start;
    project(&mut x);
    let Some((mut fx, mut gx)) = problem.value(&x) else {
        return x;
    };
    let mut history: Vec<(Vec<f64>, Vec<f64>)> = Vec::new();
    for _ in 0..iterations {
        // Two-loop recursion for the search direction.
        let mut q = gx.clone();
        let mut alphas = Vec::with_capacity(history.len());
        for (s, y) in history.iter().rev() {
            let rho = 1.0 / dot(y, s);
            let a = rho * dot(s, &q);
            axpy(&mut q, -a, y);
            alphas.push((rho, a));
        }
        if let Some((s, y)) = history.last() {
            let gamma = dot(s, y) / dot(y, y);
            q.iter_mut().for_each(|v| *v *= gamma);
        } else {
            let norm = dot(&gx, &gx).sqrt().max(1e-12);
            q.iter_mut().for_each(|v| *v /= norm);
        }
        for ((s, y), (rho, a)) in history.iter().zip(alphas.into_iter().rev()) {
            let b = rho * dot(y, &q);
            axpy(&mut q, a - b, s);
        }
        let mut dir: Vec<f64> = q.iter().map(|v| -v).collect();
        // Do not push against an active bound.
        for (i, d) in dir.iter_mut().enumerate() {
            let (lo, hi) = problem.bounds(i);
            if (x[i] <= lo && *d < 0.0) || (x[i] >= hi && *d > 0.0) {
                *d = 0.0;
            }
        }
        if dot(&dir, &gx) >= 0.0 {
            history.clear();
            dir = gx.iter().map(|v| -v).collect();
        }
        let mut step = 1.0;
        let mut accepted = None;
        for _ in 0..25 {
            let mut nx: Vec<f64> = x.iter().zip(&dir).map(|(a, d)| a + step * d).collect();
            project(&mut nx);
            let moved: Vec<f64> = nx.iter().zip(&x).map(|(a, b)| a - b).collect();
            if let Some((fn_, gn)) = problem.value(&nx)
                && fn_ <= fx + 1e-4 * dot(&gx, &moved)
            {
                accepted = Some((nx, fn_, gn, moved));
                break;
            }
            step *= 0.5;
        }
        let Some((nx, fn_, gn, s)) = accepted else {
            break;
        };
        let y: Vec<f64> = gn.iter().zip(&gx).map(|(a, b)| a - b).collect();
        let improvement = fx - fn_;
        if dot(&s, &y) > 1e-12 {
            history.push((s, y));
            if history.len() > MEMORY {
                history.remove(0);
            }
        }
        x = nx;
        fx = fn_;
        gx = gn;
        if improvement < 1e-7 * fx.abs().max(1.0) {
            break;
        }
    }
    x
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn axpy(y: &mut [f64], a: f64, x: &[f64]) {
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi += a * xi;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The analytic gradient agrees with finite differences.
    #[test]
    fn gradient_matches_finite_differences() {
        let x: Vec<Vec<f64>> = (0..12)
            .map(|i| {
                let t = i as f64 / 11.0;
                vec![t, (t * 7.3).fract(), f64::from(i % 3)]
            })
            .collect();
        let y: Vec<f64> = x
            .iter()
            .map(|p| (p[0] * 3.0).sin() + p[1] - 0.3 * p[2])
            .collect();
        let cat = [false, false, true];
        let opts = FitOptions::default();
        let problem = Problem::new(&x, &y, &cat, &opts);
        let theta = vec![-1.0, -0.5, 0.2, 0.1, -4.0, 0.3];
        let (_, grad) = problem.value(&theta).unwrap();
        for k in 0..theta.len() {
            let h = 1e-6;
            let mut up = theta.clone();
            up[k] += h;
            let mut down = theta.clone();
            down[k] -= h;
            let fd = (problem.value(&up).unwrap().0 - problem.value(&down).unwrap().0) / (2.0 * h);
            assert!(
                (fd - grad[k]).abs() < 1e-4 * (1.0 + fd.abs()),
                "coordinate {k}: analytic {} vs numeric {fd}",
                grad[k]
            );
        }
    }

    /// A fitted process interpolates a smooth function and is uncertain far from the data.
    #[test]
    fn fit_interpolates() {
        let x: Vec<Vec<f64>> = (0..15).map(|i| vec![i as f64 / 14.0]).collect();
        let y: Vec<f64> = x.iter().map(|p| (p[0] * 6.0).sin()).collect();
        let gp = Gp::fit(x, y, vec![false], &FitOptions::default()).unwrap();
        let (m, v) = gp.predict(&[0.5 / 14.0 * 3.0]);
        assert!((m - (0.5 / 14.0 * 3.0 * 6.0f64).sin()).abs() < 0.05, "{m}");
        assert!(v < 0.01, "{v}");
    }
}
