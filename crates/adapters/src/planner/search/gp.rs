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

const SQRT5: f64 = 2.236_067_977_499_79;

/// How hard [`Gp::fit`] works.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FitOptions {
    /// L-BFGS iterations at most.
    pub iterations: usize,
    /// Gamma prior (shape, rate) on numeric length scales.
    pub ls_prior: (f64, f64),
    /// Gamma prior (shape, rate) on the noise variance.
    pub noise_prior: (f64, f64),
}

impl Default for FitOptions {
    fn default() -> Self {
        FitOptions {
            iterations: 40,
            ls_prior: (3.0, 6.0),
            noise_prior: (1.1, 0.05),
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
    pub fn fit(x: Vec<Vec<f64>>, y: Vec<f64>, cat: Vec<bool>, opts: &FitOptions) -> Option<Gp> {
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
    pub fn condition(&mut self, x: Vec<f64>, y: f64) {
        if self.add(x, y) {
            self.alpha = self.chol.solve(&self.y);
        }
    }

    /// Kernel value between two points.
    pub fn k(&self, a: &[f64], b: &[f64]) -> f64 {
        let mut r2 = 0.0;
        let mut mismatch = 0.0;
        for i in 0..self.cat.len() {
            if self.cat[i] {
                if a[i] != b[i] {
                    mismatch += self.scale[i];
                }
            } else {
                let d = (a[i] - b[i]) / self.scale[i];
                r2 += d * d;
            }
        }
        let r = r2.sqrt();
        self.sf2 * (1.0 + SQRT5 * r + 5.0 / 3.0 * r2) * (-SQRT5 * r - mismatch).exp()
    }

    /// Posterior mean and variance (of the latent function, without noise) at `z`.
    pub fn predict(&self, z: &[f64]) -> (f64, f64) {
        let kz: Vec<f64> = self.x.iter().map(|xi| self.k(xi, z)).collect();
        let mean: f64 = kz.iter().zip(&self.alpha).map(|(a, b)| a * b).sum();
        let v = self.chol.solve_lower(&kz);
        let var = (self.sf2 - v.iter().map(|a| a * a).sum::<f64>()).max(1e-12 * self.sf2);
        (mean, var)
    }

    /// The noise variance the fit settled on.
    pub fn noise(&self) -> f64 {
        self.sn2
    }

    /// The signal variance the fit settled on.
    pub fn signal(&self) -> f64 {
        self.sf2
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
                    diff.push(if cat[k] {
                        f64::from(u8::from(x[i][k] != x[j][k]))
                    } else {
                        (x[i][k] - x[j][k]).powi(2)
                    });
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
        } else {
            LOG_SN2
        }
    }

    /// Negative log marginal likelihood minus log prior, and its gradient; None when the
    /// kernel matrix is not positive definite.
    fn value(&self, theta: &[f64]) -> Option<(f64, Vec<f64>)> {
        let (n, d) = (self.n, self.cat.len());
        let scale: Vec<f64> = theta[..d].iter().map(|v| v.exp()).collect();
        let inv_ls2: Vec<f64> = scale.iter().map(|s| 1.0 / (s * s)).collect();
        let sf2 = theta[d].exp();
        let sn2 = theta[d + 1].exp();
        let mut kmat = vec![0.0; n * n];
        let mut p = 0;
        for i in 0..n {
            kmat[i * n + i] = sf2 + sn2;
            for j in 0..i {
                let row = &self.diff[p * d..(p + 1) * d];
                let (r2, mismatch) = pair_terms(self.cat, row, &inv_ls2, &scale);
                let r = r2.sqrt();
                let v = sf2 * (1.0 + SQRT5 * r + 5.0 / 3.0 * r2) * (-SQRT5 * r - mismatch).exp();
                kmat[i * n + j] = v;
                kmat[j * n + i] = v;
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
        let mut grad = vec![0.0; d + 2];
        let mut p = 0;
        for i in 0..n {
            let w = alpha[i] * alpha[i] - kinv[i * n + i];
            grad[d] -= 0.5 * w * sf2;
            grad[d + 1] -= 0.5 * w * sn2;
            for j in 0..i {
                let w = 2.0 * (alpha[i] * alpha[j] - kinv[i * n + j]);
                let row = &self.diff[p * d..(p + 1) * d];
                let kij = kmat[i * n + j];
                let (r2, mismatch) = pair_terms(self.cat, row, &inv_ls2, &scale);
                let r = r2.sqrt();
                // ∂k/∂log ℓ_k = sf2 · 5/3 (1 + √5 r) e^{−√5 r − mismatch} · Δ_k²/ℓ_k².
                let common = sf2 * 5.0 / 3.0 * (1.0 + SQRT5 * r) * (-SQRT5 * r - mismatch).exp();
                for k in 0..d {
                    let dk = if self.cat[k] {
                        -scale[k] * row[k] * kij
                    } else {
                        common * row[k] * inv_ls2[k]
                    };
                    grad[k] -= 0.5 * w * dk;
                }
                grad[d] -= 0.5 * w * kij;
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

        let value = -(lml + prior);
        value.is_finite().then_some((value, grad))
    }
}

/// `(Σ numeric Δ²/ℓ², Σ θ over differing choices)` for one pair.
fn pair_terms(cat: &[bool], row: &[f64], inv_ls2: &[f64], scale: &[f64]) -> (f64, f64) {
    let mut r2 = 0.0;
    let mut mismatch = 0.0;
    for k in 0..cat.len() {
        if cat[k] {
            mismatch += row[k] * scale[k];
        } else {
            r2 += row[k] * inv_ls2[k];
        }
    }
    (r2, mismatch)
}

/// Projected L-BFGS with a backtracking (Armijo) line search inside the bounds. Returns the
/// best point seen (the start if nothing could be evaluated).
fn minimize(problem: &Problem, start: Vec<f64>, iterations: usize) -> Vec<f64> {
    const MEMORY: usize = 6;
    let dim = start.len();
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
        let _ = dim;
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
        let theta = vec![-1.0, -0.5, 0.2, 0.1, -4.0];
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
