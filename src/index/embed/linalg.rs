//! The little linear algebra the built-in embedder needs: a sparse symmetric matrix, a
//! randomized eigen-decomposition of it, and Jacobi's method for the small dense core.

use rayon::prelude::*;

/// A square sparse matrix in compressed rows.
pub struct Csr {
    pub n: usize,
    pub row_start: Vec<usize>,
    pub cols: Vec<u32>,
    pub vals: Vec<f32>,
}

/// A dense row-major matrix.
#[derive(Clone)]
pub struct Dense {
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<f32>,
}

impl Dense {
    pub fn zeros(rows: usize, cols: usize) -> Dense {
        Dense {
            rows,
            cols,
            data: vec![0.0; rows * cols],
        }
    }
    pub fn row(&self, r: usize) -> &[f32] {
        &self.data[r * self.cols..(r + 1) * self.cols]
    }
}

impl Csr {
    /// `self · x` for a dense `x` with `n` rows.
    pub fn mul(&self, x: &Dense) -> Dense {
        let k = x.cols;
        let mut out = Dense::zeros(self.n, k);
        out.data.par_chunks_mut(k).enumerate().for_each(|(r, row)| {
            for i in self.row_start[r]..self.row_start[r + 1] {
                let v = self.vals[i];
                let src = x.row(self.cols[i] as usize);
                for (o, s) in row.iter_mut().zip(src) {
                    *o += v * s;
                }
            }
        });
        out
    }
}

/// `a · b` accumulated in f64 over eight running sums, so the additions do not each wait for
/// the one before (a single running sum is bound by the latency of an f64 add). The order is
/// fixed, so the result is the same on every run and machine.
fn dot(a: &[f32], b: &[f32]) -> f64 {
    let (xs, ys) = (a.chunks_exact(8), b.chunks_exact(8));
    let (x_tail, y_tail) = (xs.remainder(), ys.remainder());
    let mut sums = [0.0f64; 8];
    for (x, y) in xs.zip(ys) {
        for i in 0..8 {
            sums[i] += f64::from(x[i]) * f64::from(y[i]);
        }
    }
    let tail: f64 = x_tail
        .iter()
        .zip(y_tail)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    sums.iter().sum::<f64>() + tail
}

/// Orthonormalise the columns of `m` in place (modified Gram–Schmidt, run twice for accuracy).
/// Columns that turn out dependent become zero.
///
/// The work is done on a column-major copy, so each dot product and update streams through
/// one contiguous column instead of striding across rows, and dot products keep eight running
/// sums ([`dot`]); on cargo's 12,110 × 144 matrices this is what the embedder's training
/// spends most of its time on.
pub fn orthonormalise(m: &mut Dense) {
    let (rows, cols) = (m.rows, m.cols);
    let mut by_col = vec![0f32; rows * cols];
    for r in 0..rows {
        for j in 0..cols {
            by_col[j * rows + r] = m.data[r * cols + j];
        }
    }
    let norm_of = |col: &[f32]| dot(col, col).sqrt();
    for _pass in 0..2 {
        for j in 0..cols {
            let (done, rest) = by_col.split_at_mut(j * rows);
            let col = &mut rest[..rows];
            let before = norm_of(col);
            for p in 0..j {
                let prev = &done[p * rows..(p + 1) * rows];
                let projection = dot(col, prev) as f32;
                for (x, y) in col.iter_mut().zip(prev) {
                    *x -= projection * y;
                }
            }
            let norm = norm_of(col);
            // What is left of a column that lay in the span of the earlier ones is rounding
            // noise; normalising it would make a column that is not orthogonal to them.
            let independent = norm > 1e-4 * before && norm > 1e-12;
            for x in col.iter_mut() {
                *x = if independent {
                    (f64::from(*x) / norm) as f32
                } else {
                    0.0
                };
            }
        }
    }
    for r in 0..rows {
        for j in 0..cols {
            m.data[r * cols + j] = by_col[j * rows + r];
        }
    }
}

/// `aᵀ · b` for two matrices with the same number of rows.
pub fn at_b(a: &Dense, b: &Dense) -> Vec<f64> {
    let mut out = vec![0.0f64; a.cols * b.cols];
    for r in 0..a.rows {
        let ar = a.row(r);
        let br = b.row(r);
        for (i, &x) in ar.iter().enumerate() {
            if x == 0.0 {
                continue;
            }
            for (j, &y) in br.iter().enumerate() {
                out[i * b.cols + j] += f64::from(x) * f64::from(y);
            }
        }
    }
    out
}

/// Eigenvalues and eigenvectors (as columns, row-major `n × n`) of a symmetric matrix, by cyclic
/// Jacobi rotations.
pub fn jacobi_eigen(mut a: Vec<f64>, n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut v = vec![0.0f64; n * n];
    for i in 0..n {
        v[i * n + i] = 1.0;
    }
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i * n + j] * a[i * n + j])
            .sum();
        if off < 1e-18 {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p * n + q];
                if apq.abs() < 1e-30 {
                    continue;
                }
                let theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let akp = a[k * n + p];
                    let akq = a[k * n + q];
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let apk = a[p * n + k];
                    let aqk = a[q * n + k];
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
                for k in 0..n {
                    let vkp = v[k * n + p];
                    let vkq = v[k * n + q];
                    v[k * n + p] = c * vkp - s * vkq;
                    v[k * n + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    ((0..n).map(|i| a[i * n + i]).collect(), v)
}

/// The `k` largest eigenpairs of the symmetric `m`, by a randomized range finder with `power`
/// power iterations. Returns eigenvalues (descending) and the `n × k` eigenvectors.
pub fn top_eigen(m: &Csr, k: usize, power: usize, seed: u64) -> (Vec<f64>, Dense) {
    let width = (k + 16).min(m.n);
    let mut rng = SplitMix(seed);
    let mut omega = Dense::zeros(m.n, width);
    for x in &mut omega.data {
        *x = rng.normal();
    }
    let mut q = m.mul(&omega);
    orthonormalise(&mut q);
    for _ in 0..power {
        q = m.mul(&q);
        orthonormalise(&mut q);
    }
    let mq = m.mul(&q);
    let t = at_b(&q, &mq);
    // Symmetrise against rounding.
    let mut t_sym = t.clone();
    for i in 0..width {
        for j in 0..width {
            t_sym[i * width + j] = 0.5 * (t[i * width + j] + t[j * width + i]);
        }
    }
    let (values, vectors) = jacobi_eigen(t_sym, width);
    let mut order: Vec<usize> = (0..width).collect();
    order.sort_by(|&a, &b| values[b].total_cmp(&values[a]));
    let keep = &order[..k.min(width)];
    let mut u = Dense::zeros(m.n, keep.len());
    for r in 0..m.n {
        let qr = q.row(r);
        for (c, &e) in keep.iter().enumerate() {
            let mut s = 0.0f64;
            for (i, &qv) in qr.iter().enumerate() {
                s += f64::from(qv) * vectors[i * width + e];
            }
            u.data[r * keep.len() + c] = s as f32;
        }
    }
    (keep.iter().map(|&e| values[e]).collect(), u)
}

/// A small deterministic generator, so training is reproducible.
pub struct SplitMix(pub u64);

impl SplitMix {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn normal(&mut self) -> f32 {
        let u1 = self.uniform().max(1e-12);
        let u2 = self.uniform();
        ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Gram–Schmidt as first written, striding down the row-major columns: the oracle.
    fn orthonormalise_by_rows(m: &mut Dense) {
        let (rows, cols) = (m.rows, m.cols);
        let norm_of = |m: &Dense, j: usize| {
            (0..rows)
                .map(|r| f64::from(m.data[r * cols + j]).powi(2))
                .sum::<f64>()
                .sqrt()
        };
        for _pass in 0..2 {
            for j in 0..cols {
                let before = norm_of(m, j);
                for p in 0..j {
                    let mut dot = 0.0f64;
                    for r in 0..rows {
                        dot += f64::from(m.data[r * cols + j]) * f64::from(m.data[r * cols + p]);
                    }
                    let dot = dot as f32;
                    for r in 0..rows {
                        let v = m.data[r * cols + p];
                        m.data[r * cols + j] -= dot * v;
                    }
                }
                let norm = norm_of(m, j);
                let independent = norm > 1e-4 * before && norm > 1e-12;
                for r in 0..rows {
                    m.data[r * cols + j] = if independent {
                        (f64::from(m.data[r * cols + j]) / norm) as f32
                    } else {
                        0.0
                    };
                }
            }
        }
    }

    #[test]
    fn orthonormalise_by_columns_agrees_with_the_row_oracle_and_repeats_to_the_bit() {
        let mut rng = SplitMix(3);
        let (rows, cols) = (301, 19);
        let mut m = Dense::zeros(rows, cols);
        for x in m.data.iter_mut() {
            *x = rng.normal();
        }
        // A dependent column: twice column 2.
        for r in 0..rows {
            m.data[r * cols + 5] = 2.0 * m.data[r * cols + 2];
        }
        let mut oracle = m.clone();
        let mut again = m.clone();
        orthonormalise(&mut m);
        orthonormalise(&mut again);
        orthonormalise_by_rows(&mut oracle);
        let bits = |d: &Dense| d.data.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert!(bits(&m) == bits(&again), "two runs differ");
        // Only the order of the additions in the dot products differs from the oracle.
        let worst = m
            .data
            .iter()
            .zip(&oracle.data)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(worst < 1e-5, "{worst} away from the oracle");
        assert!(m.data.iter().skip(5).step_by(cols).all(|x| *x == 0.0));
        // Orthonormal: QᵀQ is the identity, but for the dependent column.
        let qtq = at_b(&m, &m);
        for i in 0..cols {
            for j in 0..cols {
                let want = if i == j && i != 5 { 1.0 } else { 0.0 };
                let got = qtq[i * cols + j];
                assert!((got - want).abs() < 1e-5, "QᵀQ[{i},{j}] = {got}");
            }
        }
    }

    #[test]
    fn dot_keeps_its_tail_and_sums_in_f64() {
        let a: Vec<f32> = (0..19).map(|i| i as f32).collect();
        let b = vec![1.0f32; 19];
        assert_eq!(dot(&a, &b), (0..19).sum::<i32>() as f64);
        // 2^24 + 1 is not an f32, but the f64 sums keep it.
        let big = [16_777_216.0f32, 1.0];
        assert_eq!(dot(&big, &[1.0, 1.0]), 16_777_217.0);
    }

    #[test]
    fn jacobi_finds_known_eigenpairs() {
        // [[2,1],[1,2]] has eigenvalues 3 and 1.
        let (mut vals, _) = jacobi_eigen(vec![2.0, 1.0, 1.0, 2.0], 2);
        vals.sort_by(f64::total_cmp);
        assert!((vals[0] - 1.0).abs() < 1e-9 && (vals[1] - 3.0).abs() < 1e-9);
    }

    #[test]
    fn randomized_eigen_recovers_the_top_of_a_diagonal_matrix() {
        // diag(10, 9, ..., 1) over 40 rows (the rest zero).
        let n = 40;
        let mut row_start = vec![0];
        let (mut cols, mut vals) = (Vec::new(), Vec::new());
        for r in 0..n {
            if r < 10 {
                cols.push(r as u32);
                vals.push((10 - r) as f32);
            }
            row_start.push(cols.len());
        }
        let m = Csr {
            n,
            row_start,
            cols,
            vals,
        };
        let (values, u) = top_eigen(&m, 3, 2, 7);
        for (got, want) in values.iter().zip([10.0, 9.0, 8.0]) {
            assert!((got - want).abs() < 1e-3, "{values:?}");
        }
        // The first eigenvector is ±e0.
        assert!((u.row(0)[0].abs() - 1.0).abs() < 1e-3);
    }
}
