//! The little dense linear algebra the surrogate model needs: a Cholesky factor that can grow by
//! one row, triangular solves and the inverse from the factor. Matrices are small (at most a few
//! hundred rows), so plain loops are enough.

/// Lower-triangular Cholesky factor `L` of a symmetric positive-definite matrix, row by row
/// (row `i` holds `L[i][0..=i]`).
#[derive(Debug, Clone, Default)]
pub(crate) struct Cholesky {
    rows: Vec<Vec<f64>>,
}

impl Cholesky {
    /// The factor of the `n × n` row-major matrix `a`, or None when it is not positive
    /// definite (numerically).
    pub(super) fn new(a: &[f64], n: usize) -> Option<Cholesky> {
        let mut c = Cholesky {
            rows: Vec::with_capacity(n),
        };
        for i in 0..n {
            c.push(&a[i * n..i * n + i], a[i * n + i])?;
        }
        Some(c)
    }

    /// Extends the factor by one row and column: `cross` are the new column's entries above
    /// the diagonal, `diagonal` its diagonal entry. None (and unchanged) when the extended
    /// matrix is not positive definite.
    pub(super) fn push(&mut self, cross: &[f64], diagonal: f64) -> Option<()> {
        let mut row = self.solve_lower(cross);
        let d = diagonal - row.iter().map(|v| v * v).sum::<f64>();
        if d.is_nan() || d <= 0.0 || d.is_infinite() {
            return None;
        }
        row.push(d.sqrt());
        self.rows.push(row);
        Some(())
    }

    /// `x` with `L x = b`.
    pub(super) fn solve_lower(&self, b: &[f64]) -> Vec<f64> {
        let mut x = Vec::with_capacity(b.len());
        for (i, row) in self.rows.iter().enumerate() {
            let s: f64 = row[..i].iter().zip(&x).map(|(l, v)| l * v).sum();
            x.push((b[i] - s) / row[i]);
        }
        x
    }

    /// `x` with `Lᵀ x = b`.
    pub(super) fn solve_upper(&self, b: &[f64]) -> Vec<f64> {
        let n = self.rows.len();
        let mut x = b.to_vec();
        for i in (0..n).rev() {
            x[i] /= self.rows[i][i];
            let xi = x[i];
            for (j, l) in self.rows[i][..i].iter().enumerate() {
                x[j] -= l * xi;
            }
        }
        x
    }

    /// `A⁻¹ b`.
    pub(super) fn solve(&self, b: &[f64]) -> Vec<f64> {
        self.solve_upper(&self.solve_lower(b))
    }

    /// `log det A`.
    pub(super) fn log_det(&self) -> f64 {
        2.0 * self
            .rows
            .iter()
            .enumerate()
            .map(|(i, r)| r[i].ln())
            .sum::<f64>()
    }

    /// `A⁻¹`, row-major.
    pub(super) fn inverse(&self) -> Vec<f64> {
        let n = self.rows.len();
        // L⁻¹ column by column, then A⁻¹ = L⁻ᵀ L⁻¹.
        let mut linv = vec![0.0; n * n];
        for j in 0..n {
            let mut e = vec![0.0; n];
            e[j] = 1.0;
            let col = self.solve_lower(&e);
            for i in 0..n {
                linv[i * n + j] = col[i];
            }
        }
        let mut inv = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..=i {
                let s: f64 = (i..n).map(|k| linv[k * n + i] * linv[k * n + j]).sum();
                inv[i * n + j] = s;
                inv[j * n + i] = s;
            }
        }
        inv
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn solves_and_inverts_a_small_matrix() {
        let a = [4.0, 2.0, 0.6, 2.0, 5.0, 1.0, 0.6, 1.0, 3.0];
        let c = Cholesky::new(&a, 3).unwrap();
        let x = c.solve(&[1.0, 2.0, 3.0]);
        for i in 0..3 {
            let ax: f64 = (0..3).map(|j| a[i * 3 + j] * x[j]).sum();
            assert!((ax - [1.0, 2.0, 3.0][i]).abs() < 1e-12);
        }
        let inv = c.inverse();
        for i in 0..3 {
            for j in 0..3 {
                let v: f64 = (0..3).map(|k| a[i * 3 + k] * inv[k * 3 + j]).sum();
                assert!((v - f64::from(u8::from(i == j))).abs() < 1e-12);
            }
        }
        let det: f64 = 4.0 * (5.0 * 3.0 - 1.0) - 2.0 * (2.0 * 3.0 - 0.6) + 0.6 * (2.0 - 5.0 * 0.6);
        assert!((c.log_det() - det.ln()).abs() < 1e-12);
        assert!(Cholesky::new(&[1.0, 2.0, 2.0, 1.0], 2).is_none());
    }
}
